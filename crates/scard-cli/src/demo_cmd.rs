//! `scard demo`: the whole path on one card in about a screen of output. With no reader named
//! it uses a fresh in-process simulated card (PIV by default, `--card openpgp|gids`), so it
//! runs on any machine with nothing installed; `--reader R` runs it on a real card (it
//! generates keys: it overwrites the containers it uses).
//!
//! Steps: reader and ATR, card model, PINs and tries, key generation, a certificate made by a
//! throwaway host CA and written to the card, PIN verification, a signature verified on the
//! host, a decryption round trip, ECDH, and the logon eligibility of the card's certificates
//! with reasons (scard-certs, the Windows client's rules). Exit 0 only if every step checked
//! out.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use clap::{Args, ValueEnum};
use scard_certs::{Policy, Timestamp, enumerate};
use scard_minidriver::{
    CardError, CardModule, Curve, DecryptPadding, HashAlg, KeyAlgorithm, Pin, PinId, PinType,
    PublicKey, with_transaction,
};

use serde::Serialize;

use crate::host::{self, DecryptCase, Ephemeral, Scheme, SignCase};
use crate::readers_cmd::ReaderArgs;
use crate::style::{self, Tone};
use crate::{EXIT_FAILURE, Outcome, to_json};

/// The simulated card families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DemoCard {
    Piv,
    Openpgp,
    Gids,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Which simulated card to use when no --reader is given.
    #[arg(long, value_enum, default_value_t = DemoCard::Piv)]
    card: DemoCard,
    /// A real card instead (keys are generated on it: containers are overwritten).
    #[arg(long, value_name = "READER")]
    reader: Option<String>,
    /// The user PIN from this variable (default for simulated cards: their default PIN).
    #[arg(long, value_name = "VAR")]
    pin_env: Option<String>,
    /// The admin credential from this variable (PIV management key / GIDS admin key in hex,
    /// OpenPGP PW3; default for simulated cards: their default).
    #[arg(long, value_name = "VAR")]
    admin_env: Option<String>,
    /// Seconds each exchange with the card may take.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    timeout: u64,
    /// Print one JSON object when done: the reader, each step with its result, and whether
    /// every step checked out.
    #[arg(long)]
    json: bool,
}

/// The UPN the demo certificate carries.
const DEMO_UPN: &str = "demo.user@example.com";

/// What the demo does with a family: which container signs and decrypts (RSA), which one
/// agrees (EC), and the default credentials of the simulated card.
struct Plan {
    family: &'static str,
    rsa: u8,
    /// The container that signs (OpenPGP signs with its signature key, decrypts with its
    /// decryption key).
    sign: u8,
    ecdh: u8,
    pin: &'static str,
    admin: &'static str,
}

const PIV: Plan = Plan {
    family: "piv",
    rsa: 0,
    sign: 0,
    ecdh: 2,
    pin: "123456",
    admin: "010203040506070801020304050607080102030405060708",
};
const OPENPGP: Plan =
    Plan { family: "openpgp", rsa: 1, sign: 0, ecdh: 1, pin: "123456", admin: "12345678" };
const GIDS: Plan = Plan {
    family: "gids",
    rsa: 0,
    sign: 0,
    ecdh: 1,
    pin: "123456",
    admin: "000000000000000000000000000000000000000000000000",
};

/// The demo's steps: printed as they go (a terminal), gathered as text, or as JSON.
struct Report {
    text: String,
    failed: usize,
    step: usize,
    live: bool,
    /// Colour on the marks (a terminal that wants it).
    colour: bool,
    steps: Vec<StepJson>,
}

/// `scard demo --json`.
#[derive(Debug, Serialize)]
struct DemoJson {
    reader: String,
    simulated: bool,
    steps: Vec<StepJson>,
    failed: usize,
    passed: bool,
}

/// One step of the demo: its name, whether it checked out, what was seen.
#[derive(Debug, Serialize)]
struct StepJson {
    step: usize,
    name: String,
    ok: bool,
    detail: String,
}

impl Report {
    fn line(&mut self, name: &str, result: Result<String, String>) -> bool {
        self.step += 1;
        let (mark, detail, ok) = match result {
            Ok(detail) => (style::paint("ok  ", Tone::Good, self.colour), detail, true),
            Err(detail) => (style::paint("FAIL", Tone::Bad, self.colour), detail, false),
        };
        if !ok {
            self.failed += 1;
        }
        self.steps.push(StepJson {
            step: self.step,
            name: name.to_owned(),
            ok,
            detail: detail.clone(),
        });
        let mut lines = detail.lines();
        let mut out =
            format!("{:>2}. {mark} {name:<12} {}\n", self.step, lines.next().unwrap_or_default());
        for more in lines {
            out.push_str(&format!("{:>22}{more}\n", ""));
        }
        self.emit(&out);
        ok
    }

    /// Progress while a slow step runs (key generation), on a terminal only.
    fn progress(&self, what: &str) {
        if self.live {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "    ... {what}\r");
            let _ = err.flush();
        }
    }

    fn emit(&mut self, out: &str) {
        if self.live {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(out.as_bytes());
            let _ = stdout.flush();
        } else {
            self.text.push_str(out);
        }
    }
}

pub(crate) fn run(args: &DemoArgs) -> Outcome {
    let (reader, plan, simulated) = match &args.reader {
        Some(r) => (r.clone(), None, false),
        None => {
            let plan = match args.card {
                DemoCard::Piv => &PIV,
                DemoCard::Openpgp => &OPENPGP,
                DemoCard::Gids => &GIDS,
            };
            (format!("sim:{}", plan.family), Some(plan), true)
        }
    };
    // With --json nothing is printed until the report is complete.
    let live = !args.json && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let colour = !args.json && crate::style::stdout();
    let mut report =
        Report { text: String::new(), failed: 0, step: 0, live, colour, steps: Vec::new() };
    report.emit(&format!(
        "scard demo on {reader}{}\n",
        if simulated {
            " (a simulated card in this process, nothing installed needed)"
        } else {
            ""
        }
    ));
    let outcome = demo(args, &reader, plan, &mut report);
    if let Err(message) = outcome {
        report.line("stopped", Err(message));
    }
    let summary = if report.failed == 0 {
        format!("all {} steps checked out\n", report.step)
    } else {
        format!("{} of {} steps failed\n", report.failed, report.step)
    };
    report.emit(&summary);
    let status = if report.failed == 0 { 0 } else { EXIT_FAILURE };
    if args.json {
        let json = DemoJson {
            reader,
            simulated,
            failed: report.failed,
            passed: report.failed == 0,
            steps: report.steps,
        };
        return to_json(&json, status);
    }
    Outcome { text: report.text, status }
}

fn secret(var: Option<&str>, default: Option<&str>, what: &str) -> Result<Pin, String> {
    match (var, default) {
        (Some(var), _) => std::env::var(var)
            .map(|v| Pin::new(v.into_bytes()))
            .map_err(|_| format!("{what}: environment variable {var} is not set")),
        (None, Some(d)) => Ok(Pin::new(d.as_bytes())),
        (None, None) => Err(format!("{what}: a real card needs --{}-env VAR", what.to_lowercase())),
    }
}

fn demo(
    args: &DemoArgs,
    reader: &str,
    plan: Option<&Plan>,
    report: &mut Report,
) -> Result<(), String> {
    let reader_args =
        ReaderArgs { reader: Some(reader.to_owned()), timeout: args.timeout, wait: 10 };
    let transport = crate::readers_cmd::connect(&reader_args).map_err(|e| e.to_string())?;
    let atr = transport.atr().to_vec();
    let protocol = transport.protocol();
    report.line(
        "reader",
        Ok(format!(
            "{} ({protocol:?}), ATR {}",
            transport.reader(),
            scard_iso7816::hex::encode_spaced(&atr)
        )),
    );
    let mut card = crate::profiles::registry().open(transport).map_err(|e| e.to_string())?;
    let card = card.as_mut();
    let props = card.properties().map_err(|e| e.to_string())?;
    report.line(
        "card",
        Ok(format!(
            "{} ({}), card id {}, serial {}",
            props.model,
            props.family,
            scard_iso7816::hex::encode_upper(&props.card_id),
            props.serial
        )),
    );
    let plan = match plan {
        Some(p) => p,
        None => match props.family.as_str() {
            "piv" => &PIV,
            "openpgp" => &OPENPGP,
            "gids" => &GIDS,
            other => return Err(format!("no demo plan for the {other} family")),
        },
    };
    let defaults = args.reader.is_none();
    let pin = secret(args.pin_env.as_deref(), defaults.then_some(plan.pin), "PIN")?;
    let admin = secret(args.admin_env.as_deref(), defaults.then_some(plan.admin), "Admin")?;

    let pins = card.pins().map_err(|e| e.to_string())?;
    let summary: Vec<String> = pins
        .iter()
        .map(|p| match p.tries_left {
            Some(n) => format!("{} {n} tries", p.name),
            None => p.name.clone(),
        })
        .collect();
    report.line("PINs", Ok(summary.join("; ")));

    let admin_is_key =
        pins.iter().any(|p| p.id == PinId::ADMIN && p.pin_type == PinType::ChallengeResponse);

    // OpenPGP agrees only with its decryption key (3.4 §7.2.11), which then gets the RSA key:
    // ECDH goes first there.
    if plan.ecdh == plan.rsa {
        ecdh(card, report, plan, &admin, admin_is_key, &pin)?;
    }

    // Key generation (admin; GIDS containers also need the user PIN).
    let rsa_key = generate(
        card,
        report,
        plan,
        plan.rsa,
        KeyAlgorithm::Rsa(2048),
        &admin,
        admin_is_key,
        &pin,
    )?;
    let sign_key = if plan.sign == plan.rsa {
        rsa_key.clone()
    } else {
        generate(
            card,
            report,
            plan,
            plan.sign,
            KeyAlgorithm::Rsa(2048),
            &admin,
            admin_is_key,
            &pin,
        )?
    };

    // A logon certificate for the RSA (key exchange) key, issued by a throwaway host CA.
    let cert = host::logon_certificate(&rsa_key, DEMO_UPN)
        .map_err(|e| format!("making the certificate: {e}"))?;
    let written = with_transaction(card, |card| {
        authenticate_admin(card, &admin, admin_is_key)?;
        with_user_pin_if_asked(card, &pin, |card| card.put_certificate(plan.rsa, Some(&cert)))?;
        card.certificate(plan.rsa)
    });
    report.line(
        "certificate",
        match written {
            Ok(Some(back)) if back == cert => Ok(format!(
                "CN=scard demo user, UPN {DEMO_UPN}, Smart Card Logon EKU: {} bytes written to container {} and read back",
                cert.len(),
                plan.rsa
            )),
            Ok(_) => Err("the certificate read back differs from the one written".to_owned()),
            Err(e) => Err(e.to_string()),
        },
    );

    // PIN, signature, decryption: one transaction, PIN right before the key is used.
    let case = SignCase { name: "pkcs1-sha256", hash: HashAlg::Sha256, scheme: Scheme::Pkcs1 };
    let input = case.input(KeyAlgorithm::Rsa(2048))?;
    let request = case.request(&input);
    let signed = with_transaction(card, |card| {
        card.check_sign(plan.sign, &request)?;
        let container = card.container(plan.sign)?;
        card.authenticate(container.pin, &pin)?;
        card.sign(plan.sign, &request)
    });
    let verified = signed
        .as_ref()
        .map_err(ToString::to_string)
        .and_then(|sig| case.verify(&sign_key, sig).map(|()| sig.len()));
    let tries = card.tries_left(PinId::USER).ok().flatten();
    report.line(
        "PIN",
        match &signed {
            Ok(_) => Ok(format!(
                "verified{}",
                tries.map(|n| format!(" ({n} tries left)")).unwrap_or_default()
            )),
            Err(CardError::WrongPin { .. } | CardError::PinBlocked { .. }) => {
                Err(signed.as_ref().err().map(ToString::to_string).unwrap_or_default())
            }
            Err(_) => Ok("(see the signature step)".to_owned()),
        },
    );
    report.line(
        "sign",
        verified.map(|n| {
            format!("RSA PKCS#1 v1.5 SHA-256, {n} bytes: verified on the host with the public key")
        }),
    );

    let case = if props.family == "openpgp" {
        // OpenPGP cards remove PKCS#1 v1.5 padding themselves and know no OAEP (3.4 §7.2.11).
        DecryptCase { name: "PKCS#1 v1.5", padding: DecryptPadding::Pkcs1 }
    } else {
        let padding = DecryptPadding::Oaep { hash: HashAlg::Sha256, label: Vec::new() };
        DecryptCase { name: "OAEP SHA-256", padding }
    };
    let (padding, padding_name) = (&case.padding, case.name);
    let decrypted = case.encrypt(&rsa_key).and_then(|(plain, ct)| {
        with_transaction(card, |card| {
            card.check_decrypt(plan.rsa, padding)?;
            let container = card.container(plan.rsa)?;
            card.authenticate(container.pin, &pin)?;
            card.decrypt(plan.rsa, padding, &ct)
        })
        .map(|p| p.expose() == plain.as_slice())
        .map_err(|e| e.to_string())
    });
    report.line(
        "decrypt",
        match decrypted {
            Ok(true) => Ok(format!(
                "RSA {padding_name}: encrypted on the host, the card gave the plaintext back"
            )),
            Ok(false) => Err("the card decrypted to something else".to_owned()),
            Err(e) => Err(e),
        },
    );

    if plan.ecdh != plan.rsa {
        ecdh(card, report, plan, &admin, admin_is_key, &pin)?;
    }

    // Logon eligibility of every certificate on the card (Windows client rules).
    let now = Timestamp::from_system_time(SystemTime::now());
    let logon = crate::logon_cmd::card_of(card).map_err(|e| e.to_string()).map(|view| {
        let result = enumerate(&view, now, &Policy::new());
        let mut lines = Vec::new();
        for o in &result.outcomes {
            match &o.rejection {
                None => lines.push(format!(
                    "{}: eligible ({})",
                    o.name,
                    o.cert.as_ref().and_then(|c| c.upn()).unwrap_or("no UPN")
                )),
                Some(r) => {
                    lines.push(format!("{}: not eligible: {}", o.name, r.lines().join("; ")))
                }
            }
        }
        (result.displayed().len(), lines)
    });
    report.line(
        "logon",
        match logon {
            Ok((shown, lines)) if shown > 0 => Ok(lines.join("\n")),
            Ok((_, lines)) => {
                Err(format!("the demo certificate is not eligible:\n{}", lines.join("\n")))
            }
            Err(e) => Err(e),
        },
    );
    Ok(())
}

/// ECDH with a P-256 key generated for it, checked against the host's computation.
fn ecdh(
    card: &mut dyn CardModule,
    report: &mut Report,
    plan: &Plan,
    admin: &Pin,
    admin_is_key: bool,
    pin: &Pin,
) -> Result<(), String> {
    let ec_key = generate(
        card,
        report,
        plan,
        plan.ecdh,
        KeyAlgorithm::Ec(Curve::P256),
        admin,
        admin_is_key,
        pin,
    )?;
    let host = Ephemeral::new(Curve::P256)?;
    let host_public = host.public();
    let agreed = with_transaction(card, |card| {
        let container = card.container(plan.ecdh)?;
        card.authenticate(container.pin, pin)?;
        card.agree(plan.ecdh, &host_public)
    });
    report.line(
        "ECDH",
        match (agreed, host.shared(&ec_key)) {
            (Ok(secret), Ok(expected)) if secret.expose() == expected.as_slice() => {
                Ok("P-256: the card's shared secret equals the host's".to_owned())
            }
            (Ok(_), Ok(_)) => Err("the shared secrets differ".to_owned()),
            (Err(e), _) => Err(e.to_string()),
            (_, Err(e)) => Err(e),
        },
    );

    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn generate(
    card: &mut dyn CardModule,
    report: &mut Report,
    plan: &Plan,
    index: u8,
    alg: KeyAlgorithm,
    admin: &Pin,
    admin_is_key: bool,
    pin: &Pin,
) -> Result<PublicKey, String> {
    let _ = plan;
    report.progress(&format!("generating {alg} in container {index}"));
    let started = Instant::now();
    let result = with_transaction(card, |card| {
        authenticate_admin(card, admin, admin_is_key)?;
        with_user_pin_if_asked(card, pin, |card| card.generate_key(index, alg))
    });
    let took = started.elapsed();
    let ok = report.line(
        "keygen",
        result
            .as_ref()
            .map(|_| {
                format!("{alg} in container {index}: generated on the card in {}", seconds(took))
            })
            .map_err(ToString::to_string),
    );
    match result {
        Ok(key) if ok => Ok(key),
        Ok(_) => Err("key generation".to_owned()),
        Err(e) => Err(format!("key generation: {e}")),
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn authenticate_admin(
    card: &mut dyn CardModule,
    admin: &Pin,
    is_key: bool,
) -> Result<(), CardError> {
    if is_key {
        let text = std::str::from_utf8(admin.expose()).unwrap_or_default();
        let key = scard_iso7816::hex::decode_lenient(text)
            .map_err(|e| CardError::InvalidInput { what: "admin key", reason: e.to_string() })?;
        card.authenticate_admin_key(&Pin::new(key))
    } else {
        card.authenticate(PinId::ADMIN, admin)
    }
}

/// Runs a write; when the card says it also needs the user PIN (GIDS), verifies it once and
/// writes again.
fn with_user_pin_if_asked<R>(
    card: &mut dyn CardModule,
    pin: &Pin,
    mut write: impl FnMut(&mut dyn CardModule) -> Result<R, CardError>,
) -> Result<R, CardError> {
    match write(card) {
        Err(CardError::AuthRequired { pin: id, .. }) if id != PinId::ADMIN => {
            card.authenticate(id, pin)?;
            write(card)
        }
        other => other,
    }
}
