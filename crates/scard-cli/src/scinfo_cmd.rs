//! `scard scinfo`, the analogue of Windows' `certutil -scinfo`: for every reader with a card
//! (or the one `--reader` names), the ATR decoded, the card model, every container with its
//! certificate, a test signature and a test decryption (or ECDH) per key checked on the host,
//! the logon verdict per certificate, and what failed and why. The PIN is asked once per card,
//! when the first key needs it.

use std::time::SystemTime;

use clap::Args;
use scard_certs::{Policy, Timestamp, enumerate};
use scard_minidriver::{
    CardError, CardModule, ContainerInfo, DecryptPadding, HashAlg, KeyAlgorithm, KeySpec, Pin,
    PinId, PublicKey, with_transaction,
};
use scard_transport::ShareMode;
use serde::Serialize;

use crate::card_cmd::{PinArgs, input_error};
use crate::host::{self, DecryptCase, Ephemeral, Scheme, SignCase};
use crate::readers_cmd::{self, ReaderArgs};
use crate::secrets::Secrets;
use crate::{EXIT_FAILURE, Outcome, to_json};

#[derive(Debug, Args)]
pub(crate) struct ScinfoArgs {
    #[command(flatten)]
    reader: ReaderArgs,
    #[command(flatten)]
    pin: PinArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct ScinfoJson {
    readers: Vec<ReaderReport>,
    /// Checks that failed, over all readers.
    failures: usize,
}

#[derive(Debug, Serialize, Default)]
struct ReaderReport {
    reader: String,
    atr: String,
    /// What the ATR says (protocols, historical bytes), or why it does not parse.
    atr_decoded: String,
    model: Option<String>,
    family: Option<String>,
    card_id: Option<String>,
    serial: Option<String>,
    containers: Vec<ContainerReport>,
    /// What failed outside the containers (connecting, opening the card, reading it).
    errors: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ContainerReport {
    index: u8,
    name: String,
    label: String,
    key_spec: Option<String>,
    algorithm: Option<String>,
    certificate: Option<String>,
    logon: Option<Logon>,
    sign: Check,
    decrypt: Check,
}

#[derive(Debug, Serialize)]
struct Logon {
    eligible: bool,
    upn: Option<String>,
    reasons: Vec<String>,
}

/// One test on a key.
#[derive(Debug, Serialize)]
struct Check {
    status: &'static str,
    detail: String,
}

impl Check {
    fn pass(detail: impl Into<String>) -> Self {
        Check { status: "pass", detail: detail.into() }
    }
    fn fail(detail: impl Into<String>) -> Self {
        Check { status: "fail", detail: detail.into() }
    }
    fn skip(detail: impl Into<String>) -> Self {
        Check { status: "skip", detail: detail.into() }
    }
}

pub(crate) fn run(args: &ScinfoArgs) -> Outcome {
    let names = match reader_names(&args.reader) {
        Ok(names) => names,
        Err(outcome) => return outcome,
    };
    let mut secrets = Secrets::new(false);
    let mut readers = Vec::new();
    for name in names {
        readers.push(inspect(&args.reader, &name, &args.pin, &mut secrets));
    }
    let failures = readers
        .iter()
        .map(|r| {
            r.errors.len()
                + r.containers
                    .iter()
                    .filter(|c| c.sign.status == "fail" || c.decrypt.status == "fail")
                    .count()
        })
        .sum();
    let status = if failures == 0 { 0 } else { EXIT_FAILURE };
    let report = ScinfoJson { readers, failures };
    if args.json {
        return to_json(&report, status);
    }
    Outcome { text: text(&report), status }
}

/// The readers to look at: the one named, else every reader with a card.
fn reader_names(args: &ReaderArgs) -> Result<Vec<String>, Outcome> {
    if let Some(name) = &args.reader {
        return Ok(vec![name.clone()]);
    }
    let mut registry = readers_cmd::registry(args)
        .map_err(|e| Outcome::error(e.to_string(), readers_cmd::status_of(&e)))?;
    let (list, _) = registry.readers();
    let names: Vec<String> = list.into_iter().filter(|r| r.has_card()).map(|r| r.name).collect();
    if names.is_empty() {
        return Err(Outcome::error(
            "no reader with a card (name one with --reader, e.g. --reader sim:piv)".to_owned(),
            EXIT_FAILURE,
        ));
    }
    Ok(names)
}

fn inspect(args: &ReaderArgs, name: &str, pin: &PinArgs, secrets: &mut Secrets) -> ReaderReport {
    let mut report = ReaderReport { reader: name.to_owned(), ..ReaderReport::default() };
    let one = ReaderArgs { reader: Some(name.to_owned()), timeout: args.timeout, wait: args.wait };
    let transport = match readers_cmd::registry(&one)
        .and_then(|mut r| r.connect(Some(name), ShareMode::Shared))
    {
        Ok(t) => t,
        Err(e) => {
            report.errors.push(format!("connecting: {e}"));
            return report;
        }
    };
    report.reader = transport.reader().to_owned();
    report.atr = scard_iso7816::hex::encode_spaced(transport.atr());
    report.atr_decoded = match scard_iso7816::Atr::parse(transport.atr()) {
        Ok(atr) => {
            let protocols: Vec<String> = atr.protocols().iter().map(|t| format!("T={t}")).collect();
            format!(
                "{}; historical bytes {}",
                protocols.join(", "),
                scard_iso7816::hex::encode_spaced(atr.historical())
            )
        }
        Err(e) => format!("does not parse: {e}"),
    };
    let mut card = match crate::profiles::registry().open(transport) {
        Ok(card) => card,
        Err(e) => {
            report.errors.push(format!("no card profile: {e}"));
            return report;
        }
    };
    if let Err(e) = with_transaction(card.as_mut(), |card| {
        read_card(card, &mut report, pin, secrets);
        Ok(())
    }) {
        report.errors.push(e.to_string());
    }
    report
}

fn read_card(
    card: &mut dyn CardModule,
    report: &mut ReaderReport,
    pin: &PinArgs,
    secrets: &mut Secrets,
) {
    match card.properties() {
        Ok(p) => {
            report.model = Some(p.model);
            report.family = Some(p.family);
            report.card_id = Some(scard_iso7816::hex::encode_upper(&p.card_id));
            report.serial = Some(p.serial);
        }
        Err(e) => report.errors.push(format!("properties: {e}")),
    }
    let containers = match card.containers() {
        Ok(c) => c,
        Err(e) => {
            report.errors.push(format!("containers: {e}"));
            return;
        }
    };
    // Logon verdicts by container name (Windows client rules, default settings).
    let now = Timestamp::from_system_time(SystemTime::now());
    let verdicts = crate::logon_cmd::card_of(card)
        .map(|view| enumerate(&view, now, &Policy::new()).outcomes)
        .unwrap_or_else(|e| {
            report.errors.push(format!("logon enumeration: {e}"));
            Vec::new()
        });
    // The PIN, asked once per card; a wrong one is never presented again.
    let mut user_pin: Option<Result<Pin, String>> = None;
    for info in containers.into_iter().filter(ContainerInfo::has_key) {
        let index = info.index;
        let info = card.container(index).unwrap_or(info);
        let certificate = card.certificate(index).ok().flatten();
        let public = info
            .public_key
            .clone()
            .or_else(|| certificate.as_deref().and_then(|d| host::certificate_key(d).ok()));
        let logon = verdicts.iter().find(|o| o.name == info.name).map(|o| Logon {
            eligible: o.displayed(),
            upn: o.cert.as_ref().and_then(|c| c.upn()).map(str::to_owned),
            reasons: o.rejection.as_ref().map(|r| r.lines()).unwrap_or_default(),
        });
        let subject = certificate.as_deref().map(|d| match host::certificate_subject(d) {
            Ok(s) => s,
            Err(e) => format!("(unreadable: {e})"),
        });
        let mut with_pin =
            |card: &mut dyn CardModule,
             op: &mut dyn FnMut(&mut dyn CardModule) -> Result<Check, CardError>| {
                test_with_pin(card, &info, pin, secrets, &mut user_pin, op)
            };
        let (sign, decrypt) = match public.as_ref() {
            None => (Check::skip("no public key to check against"), Check::skip("no public key")),
            Some(key) => (
                with_pin(card, &mut |card| sign_check(card, &info, key)),
                with_pin(card, &mut |card| decrypt_check(card, &info, key)),
            ),
        };
        report.containers.push(ContainerReport {
            index,
            name: info.name.clone(),
            label: info.label.clone(),
            key_spec: info.key_spec.map(|k| k.name().to_owned()),
            algorithm: info.algorithm.map(|a| a.to_string()),
            certificate: subject,
            logon,
            sign,
            decrypt,
        });
    }
}

/// Runs a key test, verifying the key's PIN first when needed (asked once per card).
fn test_with_pin(
    card: &mut dyn CardModule,
    info: &ContainerInfo,
    args: &PinArgs,
    secrets: &mut Secrets,
    cached: &mut Option<Result<Pin, String>>,
    op: &mut dyn FnMut(&mut dyn CardModule) -> Result<Check, CardError>,
) -> Check {
    if info.pin != PinId::EVERYONE
        && (info.always_authenticate || !card.channel().authenticated().contains(info.pin))
    {
        if cached.is_none() {
            *cached = Some(
                secrets.get("PIN", args.pin_env(), false).map_err(|e| input_error(e).to_string()),
            );
        }
        let value = match cached.as_ref() {
            Some(Ok(value)) => value.clone(),
            Some(Err(e)) => return Check::skip(format!("no PIN: {e}")),
            None => return Check::skip("no PIN"),
        };
        if let Err(e) = card.authenticate(info.pin, &value) {
            if e.is_pin_failure() {
                *cached = Some(Err(format!("the PIN was refused ({e}); not presented again")));
            }
            return Check::fail(format!("PIN: {e}"));
        }
    }
    match op(card) {
        Ok(check) => check,
        Err(CardError::Unsupported { what, .. }) => Check::skip(format!("not supported: {what}")),
        Err(e) => Check::fail(e.to_string()),
    }
}

fn sign_check(
    card: &mut dyn CardModule,
    info: &ContainerInfo,
    key: &PublicKey,
) -> Result<Check, CardError> {
    let (alg, case) = match (info.algorithm, info.key_spec) {
        (_, Some(KeySpec::Ecdh(_))) => {
            return Ok(Check::skip("a key-agreement key (ECDH) does not sign"));
        }
        (Some(alg @ KeyAlgorithm::Rsa(_)), _) => {
            (alg, SignCase { name: "pkcs1-sha256", hash: HashAlg::Sha256, scheme: Scheme::Pkcs1 })
        }
        (Some(alg @ KeyAlgorithm::Ec(_)), _) => {
            (alg, SignCase { name: "ecdsa-sha256", hash: HashAlg::Sha256, scheme: Scheme::Ecdsa })
        }
        (None, _) => return Ok(Check::skip("algorithm unknown")),
    };
    let input =
        case.input(alg).map_err(|reason| CardError::Crypto { operation: "sign", reason })?;
    let request = case.request(&input);
    card.check_sign(info.index, &request)?;
    let signature = card.sign(info.index, &request)?;
    Ok(match case.verify(key, &signature) {
        Ok(()) => Check::pass(format!("{} {}: verified on the host", alg, case.name)),
        Err(e) => Check::fail(format!("{} {}: does not verify: {e}", alg, case.name)),
    })
}

fn decrypt_check(
    card: &mut dyn CardModule,
    info: &ContainerInfo,
    key: &PublicKey,
) -> Result<Check, CardError> {
    match (info.algorithm, info.key_spec) {
        (_, Some(KeySpec::Signature | KeySpec::Ecdsa(_))) => {
            Ok(Check::skip("a signature key does not decrypt or agree"))
        }
        (Some(KeyAlgorithm::Rsa(_)), _) => {
            let case = DecryptCase { name: "pkcs1", padding: DecryptPadding::Pkcs1 };
            let (plain, ct) = case
                .encrypt(key)
                .map_err(|reason| CardError::Crypto { operation: "decrypt", reason })?;
            card.check_decrypt(info.index, &case.padding)?;
            let back = card.decrypt(info.index, &case.padding, &ct)?;
            Ok(if back.expose() == plain.as_slice() {
                Check::pass("PKCS#1 v1.5: the card gave the host's plaintext back")
            } else {
                Check::fail("PKCS#1 v1.5: the card decrypted to something else")
            })
        }
        (Some(KeyAlgorithm::Ec(curve)), _) => {
            let host = Ephemeral::new(curve)
                .map_err(|reason| CardError::Crypto { operation: "ECDH", reason })?;
            let secret = card.agree(info.index, &host.public())?;
            let expected = host
                .shared(key)
                .map_err(|reason| CardError::Crypto { operation: "ECDH", reason })?;
            Ok(if secret.expose() == expected.as_slice() {
                Check::pass("ECDH: the card's shared secret equals the host's")
            } else {
                Check::fail("ECDH: the shared secrets differ")
            })
        }
        (None, _) => Ok(Check::skip("algorithm unknown")),
    }
}

fn text(report: &ScinfoJson) -> String {
    let colour = crate::style::stdout();
    let paint = |status: &str| {
        use crate::style::Tone;
        let tone = match status {
            "pass" => Tone::Good,
            "fail" => Tone::Bad,
            _ => Tone::Quiet,
        };
        crate::style::paint(status, tone, colour)
    };
    let mut out = String::new();
    for r in &report.readers {
        out.push_str(&format!("=== {}\n", r.reader));
        if !r.atr.is_empty() {
            out.push_str(&format!("ATR        {}\n           {}\n", r.atr, r.atr_decoded));
        }
        if let (Some(model), Some(family)) = (&r.model, &r.family) {
            out.push_str(&format!("Card       {model} ({family})\n"));
        }
        if let Some(id) = &r.card_id {
            out.push_str(&format!("Card id    {id}\n"));
        }
        for c in &r.containers {
            out.push_str(&format!(
                "--- container {} {} [{}] {}\n",
                c.index,
                c.label,
                c.key_spec.as_deref().unwrap_or("?"),
                c.algorithm.as_deref().unwrap_or("?")
            ));
            match &c.certificate {
                Some(s) => out.push_str(&format!("  certificate  {s}\n")),
                None => out.push_str("  certificate  none\n"),
            }
            if let Some(l) = &c.logon {
                if l.eligible {
                    out.push_str(&format!(
                        "  logon        eligible ({})\n",
                        l.upn.as_deref().unwrap_or("no UPN")
                    ));
                } else {
                    out.push_str(&format!(
                        "  logon        not eligible: {}\n",
                        l.reasons.join("; ")
                    ));
                }
            }
            out.push_str(&format!("  sign         {} {}\n", paint(c.sign.status), c.sign.detail));
            out.push_str(&format!(
                "  decrypt      {} {}\n",
                paint(c.decrypt.status),
                c.decrypt.detail
            ));
        }
        for e in &r.errors {
            out.push_str(&format!("error: {e}\n"));
        }
    }
    out.push_str(&if report.failures == 0 {
        "scinfo: every test passed or was skipped with its reason\n".to_owned()
    } else {
        format!("scinfo: {} failure(s)\n", report.failures)
    });
    out
}
