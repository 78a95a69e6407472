//! Logon certificates the way Windows selects them (`scard_certs`): `scard logon-check`
//! (certificate files), `scard logon-enumerate` (a card described in a JSON file) and
//! `scard certs` (a real card, through its profile).
//!
//! Exit status: 0 when every file was processed (even if ineligible or malformed), 1 when a
//! file could not be read (or the card could not be used), 2 for a usage error or a bad
//! setting.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use scard_certs::{
    Card, Container, KeyKind, KeySpec, LogonCert, Policy, Setting, Timestamp, enumerate, evaluate,
    oid,
};
use serde::{Deserialize, Serialize};

use crate::policy::{PolicyArgs, PolicyError};
use crate::readers_cmd::ReaderArgs;
use crate::{EXIT_BAD_INPUT, EXIT_FAILURE, Outcome, to_json};

/// The key spec of the container a certificate's key lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum KeySpecArg {
    /// AT_KEYEXCHANGE (RSA decryption, or an ECC key that also does ECDH).
    Exchange,
    /// AT_SIGNATURE (a signature-only key).
    Signature,
}

/// `scard logon-check`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// Certificate files (DER; PEM text is rejected).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Evaluate at this time (RFC 3339, e.g. 2025-06-30T12:00:00Z) instead of now.
    #[arg(long, value_name = "RFC3339")]
    at: Option<String>,
    #[command(flatten)]
    policy: PolicyArgs,
    /// The key spec of the container holding the key.
    #[arg(long, value_enum, default_value_t = KeySpecArg::Exchange)]
    key_spec: KeySpecArg,
    /// One JSON object per file and line.
    #[arg(long)]
    json: bool,
}

/// `scard logon-enumerate`.
#[derive(Debug, clap::Args)]
pub(crate) struct EnumerateArgs {
    /// The card: {"supports_user_certstore": bool, "containers": [{"name", "cert": "<DER file,
    /// relative to this file's folder unless absolute>", "default": bool, "key_spec":
    /// "AT_KEYEXCHANGE"|"AT_SIGNATURE"}]}.
    #[arg(long, value_name = "CARD.json")]
    card: PathBuf,
    /// Evaluate at this time (RFC 3339) instead of now.
    #[arg(long, value_name = "RFC3339")]
    at: Option<String>,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `scard certs`.
#[derive(Debug, clap::Args)]
pub(crate) struct CertsArgs {
    #[command(flatten)]
    reader: ReaderArgs,
    /// Evaluate at this time (RFC 3339) instead of now.
    #[arg(long, value_name = "RFC3339")]
    at: Option<String>,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// A usage error, as JSON (`{"error": ...}`) or as a message.
fn usage(message: String, status: u8, json: bool) -> Outcome {
    if json {
        let text = serde_json::json!({ "error": message }).to_string();
        Outcome { text, status }
    } else {
        Outcome::error(message, status)
    }
}

/// `now`, or the time `--at` names.
fn when(at: Option<&str>) -> Result<Timestamp, String> {
    match at {
        Some(text) => Timestamp::parse_rfc3339(text).map_err(|e| format!("--at: {e}")),
        None => Ok(Timestamp::from_system_time(SystemTime::now())),
    }
}

/// Settings and time, or the outcome of a usage error.
fn setup(
    policy: &PolicyArgs,
    at: Option<&str>,
    json: bool,
) -> Result<(Policy, Timestamp), Outcome> {
    let policy = crate::policy::load(policy)
        .map_err(|PolicyError { message, status }| usage(message, status, json))?;
    let now = when(at).map_err(|m| usage(m, EXIT_BAD_INPUT, json))?;
    Ok((policy, now))
}

/// The key as JSON: `{"alg": "rsa", "bits": 2048}`, `{"alg": "ec", "curve": "P-256"}`,
/// `{"alg": "ed25519"}`, ...
fn key_json(key: &KeyKind) -> serde_json::Value {
    match key {
        KeyKind::Rsa { bits } | KeyKind::RsaPss { bits } => {
            serde_json::json!({ "alg": key.alg_name(), "bits": bits })
        }
        KeyKind::Ec { curve } => serde_json::json!({ "alg": "ec", "curve": curve.to_string() }),
        other => serde_json::json!({ "alg": other.alg_name() }),
    }
}

/// A name for the EKUs people meet.
fn eku_name(id: &oid::Oid) -> Option<&'static str> {
    Some(match *id {
        oid::KP_SMARTCARD_LOGON => "Smart Card Logon",
        oid::KP_CLIENT_AUTH => "Client Authentication",
        oid::ANY_EXTENDED_KEY_USAGE => "anyExtendedKeyUsage",
        oid::PKINIT_KP_CLIENT_AUTH => "id-pkinit-KPClientAuth",
        _ => match id.to_string().as_str() {
            "1.3.6.1.5.5.7.3.1" => "Server Authentication",
            "1.3.6.1.5.5.7.3.4" => "E-mail Protection",
            "1.3.6.1.5.5.7.3.3" => "Code Signing",
            "1.3.6.1.4.1.311.10.3.4" => "Encrypting File System",
            _ => return None,
        },
    })
}

/// One `logon-check` result (JSON field order as documented).
#[derive(Serialize)]
struct CheckJson {
    file: String,
    parse_ok: bool,
    error: Option<String>,
    eligible: bool,
    upn: Option<String>,
    subject: Option<String>,
    eku: Option<Vec<String>>,
    key: Option<serde_json::Value>,
    not_before: Option<String>,
    not_after: Option<String>,
    reasons: String,
    notes: String,
}

/// `scard logon-check`.
pub(crate) fn check(args: &CheckArgs) -> Outcome {
    let (policy, now) = match setup(&args.policy, args.at.as_deref(), args.json) {
        Ok(v) => v,
        Err(outcome) => return outcome,
    };
    let key_spec = match args.key_spec {
        KeySpecArg::Exchange => KeySpec::Exchange,
        KeySpecArg::Signature => KeySpec::Signature,
    };
    let reverse = policy.flag(Setting::ReverseSubject);
    let mut status = 0;
    let mut out = Vec::new();
    for file in &args.files {
        let name = file.display().to_string();
        let data = match std::fs::read(file) {
            Ok(data) => data,
            Err(e) => {
                status = EXIT_FAILURE;
                let error = format!("cannot read {name}: {e}");
                if args.json {
                    out.push(json_line(&failed(name, error)));
                } else {
                    out.push(format!("{name}: not read: {error}\n"));
                }
                continue;
            }
        };
        let cert = match LogonCert::from_der(&data) {
            Ok(cert) => cert,
            Err(e) => {
                if args.json {
                    out.push(json_line(&failed(name, e.to_string())));
                } else {
                    out.push(format!("{name}: rejected: {e}\n"));
                }
                continue;
            }
        };
        let evaluation = evaluate(&cert, key_spec, now, &policy);
        let reasons: Vec<String> = evaluation.reasons.iter().map(ToString::to_string).collect();
        let notes: Vec<String> = evaluation.notes.iter().map(ToString::to_string).collect();
        if args.json {
            out.push(json_line(&CheckJson {
                file: name,
                parse_ok: true,
                error: None,
                eligible: evaluation.eligible(),
                upn: cert.upn().map(str::to_owned),
                subject: Some(cert.subject_for_display(reverse)),
                eku: cert.eku().map(|e| e.iter().map(ToString::to_string).collect()),
                key: Some(key_json(cert.key())),
                not_before: Some(cert.not_before().to_string()),
                not_after: Some(cert.not_after().to_string()),
                reasons: reasons.join("\n"),
                notes: notes.join("\n"),
            }));
        } else {
            let verdict = if evaluation.eligible() { "eligible" } else { "not eligible" };
            let mut text = format!("{name}: {verdict}\n");
            text.push_str(&describe(&cert, reverse));
            for r in &reasons {
                text.push_str(&format!("  reason:     {r}\n"));
            }
            for n in &notes {
                text.push_str(&format!("  note:       {n}\n"));
            }
            out.push(text);
        }
    }
    Outcome { text: out.join("\n"), status }
}

fn failed(file: String, error: String) -> CheckJson {
    CheckJson {
        file,
        parse_ok: false,
        error: Some(error),
        eligible: false,
        upn: None,
        subject: None,
        eku: None,
        key: None,
        not_before: None,
        not_after: None,
        reasons: String::new(),
        notes: String::new(),
    }
}

fn json_line<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"JSON: {e}\"}}"))
}

/// The certificate's facts, as indented lines.
fn describe(cert: &LogonCert, reverse: bool) -> String {
    let eku = match cert.eku() {
        None => "absent".to_owned(),
        Some(list) => list
            .iter()
            .map(|o| match eku_name(o) {
                Some(name) => format!("{name} ({o})"),
                None => o.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
    };
    let key_usage = match cert.key_usage_names() {
        None => "absent".to_owned(),
        Some(names) => names.join(", "),
    };
    let mut text = String::new();
    let mut line = |label: &str, value: &str| text.push_str(&format!("  {label:11} {value}\n"));
    line("subject:", &cert.subject_for_display(reverse));
    line("upn:", cert.upn().unwrap_or("none"));
    if let Some(mail) = cert.email() {
        line("e-mail:", mail);
    }
    line("issuer:", &cert.issuer());
    line("serial:", &cert.serial_hex());
    line("sha1:", &cert.thumbprint_hex());
    line("key:", &cert.key().to_string());
    line("valid:", &format!("{} .. {}", cert.not_before(), cert.not_after()));
    line("key usage:", &key_usage);
    line("eku:", &eku);
    text
}

// --- logon-enumerate ---

/// CARD.json.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CardFile {
    supports_user_certstore: bool,
    containers: Vec<ContainerFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContainerFile {
    name: String,
    cert: PathBuf,
    #[serde(default)]
    default: bool,
    key_spec: KeySpecName,
}

#[derive(Debug, Clone, Copy, Deserialize)]
enum KeySpecName {
    #[serde(rename = "AT_KEYEXCHANGE")]
    KeyExchange,
    #[serde(rename = "AT_SIGNATURE")]
    Signature,
}

/// `scard logon-enumerate`.
pub(crate) fn enumerate_file(args: &EnumerateArgs) -> Outcome {
    let (policy, now) = match setup(&args.policy, args.at.as_deref(), args.json) {
        Ok(v) => v,
        Err(outcome) => return outcome,
    };
    let card_path = args.card.display().to_string();
    let text = match std::fs::read_to_string(&args.card) {
        Ok(text) => text,
        Err(e) => return usage(format!("{card_path}: {e}"), EXIT_FAILURE, args.json),
    };
    let file: CardFile = match serde_json::from_str(&text) {
        Ok(file) => file,
        Err(e) => return usage(format!("{card_path}: {e}"), EXIT_BAD_INPUT, args.json),
    };
    let folder = args.card.parent().unwrap_or(Path::new("."));
    let mut status = 0;
    let mut unreadable = Vec::new();
    let containers = file
        .containers
        .into_iter()
        .map(|c| {
            let path = if c.cert.is_absolute() { c.cert.clone() } else { folder.join(&c.cert) };
            let certificate = match std::fs::read(&path) {
                Ok(der) => Some(der),
                Err(e) => {
                    status = EXIT_FAILURE;
                    unreadable
                        .push((c.name.clone(), format!("cannot read {}: {e}", path.display())));
                    None
                }
            };
            Container {
                name: c.name,
                certificate,
                default: c.default,
                key_spec: match c.key_spec {
                    KeySpecName::KeyExchange => KeySpec::Exchange,
                    KeySpecName::Signature => KeySpec::Signature,
                },
            }
        })
        .collect();
    let card = match Card::new(file.supports_user_certstore, containers) {
        Ok(card) => card,
        Err(e) => return usage(format!("{card_path}: {e}"), EXIT_BAD_INPUT, args.json),
    };
    let mut outcome = report(&card, now, &policy, args.json, &unreadable);
    outcome.status = outcome.status.max(status);
    outcome
}

#[derive(Serialize)]
struct EnumerationJson {
    displayed: Vec<String>,
    rejected: Vec<RejectedJson>,
}

#[derive(Serialize)]
struct RejectedJson {
    name: String,
    reasons: String,
}

/// Enumerates `card` and reports: `{"displayed": [...], "rejected": [{"name", "reasons"}]}`.
/// `unreadable` replaces the "no certificate" reason of containers whose file could not be
/// read.
fn report(
    card: &Card,
    now: Timestamp,
    policy: &Policy,
    json: bool,
    unreadable: &[(String, String)],
) -> Outcome {
    let result = enumerate(card, now, policy);
    let reverse = policy.flag(Setting::ReverseSubject);
    let rejected: Vec<RejectedJson> = result
        .rejected()
        .into_iter()
        .map(|(name, rejection)| {
            let reasons = unreadable
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, why)| why.clone())
                .unwrap_or_else(|| rejection.lines().join("\n"));
            RejectedJson { name: name.to_owned(), reasons }
        })
        .collect();
    if json {
        let displayed = result.displayed().into_iter().map(str::to_owned).collect();
        return to_json(&EnumerationJson { displayed, rejected }, 0);
    }
    let mut text = String::from("displayed:\n");
    let shown: Vec<_> = result.outcomes.iter().filter(|o| o.displayed()).collect();
    if shown.is_empty() {
        text.push_str("  (none)\n");
    }
    for o in shown {
        let who = o.cert.as_ref().map(|c| c.display_name(reverse)).unwrap_or_default();
        text.push_str(&format!("  {}  {who}\n", o.name));
    }
    text.push_str("rejected:\n");
    if rejected.is_empty() {
        text.push_str("  (none)\n");
    }
    for r in &rejected {
        let mut lines = r.reasons.lines();
        text.push_str(&format!("  {}: {}\n", r.name, lines.next().unwrap_or_default()));
        for more in lines {
            text.push_str(&format!("  {:width$}  {more}\n", "", width = r.name.len()));
        }
    }
    Outcome { text, status: 0 }
}

// --- certs ---

/// `scard certs`: the same enumeration on a card, through its profile. Our card modules
/// return every certificate at once (`supports_user_certstore`); containers without a key
/// are left out; an ECC container whose key also does ECDH counts as key exchange.
pub(crate) fn certs(args: &CertsArgs) -> Outcome {
    let (policy, now) = match setup(&args.policy, args.at.as_deref(), args.json) {
        Ok(v) => v,
        Err(outcome) => return outcome,
    };
    let card = match read_card(&args.reader) {
        Ok(card) => card,
        Err((message, status)) => return usage(message, status, args.json),
    };
    report(&card, now, &policy, args.json, &[])
}

/// Connects to the card the reader arguments name and reads its containers and certificates.
pub(crate) fn read_card(reader: &ReaderArgs) -> Result<Card, (String, u8)> {
    let transport = crate::readers_cmd::connect(reader)
        .map_err(|e| (e.to_string(), crate::readers_cmd::status_of(&e)))?;
    let mut module =
        crate::profiles::registry().open(transport).map_err(|e| (e.to_string(), EXIT_FAILURE))?;
    card_of(module.as_mut()).map_err(|e| (e.to_string(), EXIT_FAILURE))
}

/// The enumeration view of an open card.
pub(crate) fn card_of(
    module: &mut dyn scard_minidriver::CardModule,
) -> Result<Card, scard_minidriver::CardError> {
    let mut containers = Vec::new();
    for info in module.containers()? {
        let Some(spec) = info.key_spec else { continue };
        let certificate = module.certificate(info.index)?;
        containers.push(Container {
            name: info.name.clone(),
            certificate,
            default: info.default,
            key_spec: if spec.is_exchange() { KeySpec::Exchange } else { KeySpec::Signature },
        });
    }
    Card::new(true, containers).map_err(|e| scard_minidriver::CardError::InvalidInput {
        what: "card containers",
        reason: e.to_string(),
    })
}
