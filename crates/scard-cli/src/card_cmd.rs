//! Card commands over the minidriver layer: the card section of `scard info`, `scard pin`,
//! `scard keygen`, `scard cert`, `scard sign`, `scard decrypt`, `scard agree`.
//!
//! Every command opens the card through the profile registry (card model by ATR, else by
//! probing), does its work inside one transaction, and never retries a failed VERIFY.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use scard_minidriver::{
    CardError, CardModule, ContainerInfo, DecryptPadding, HashAlg, KeyAlgorithm, KeySpec, Pin,
    PinId, PinInfo, PinType, PublicKey, SignPadding, SignRequest, with_transaction,
};
use serde::Serialize;

use crate::readers_cmd::{self, ReaderArgs};
use crate::secrets::Secrets;
use crate::{EXIT_BAD_INPUT, EXIT_FAILURE, Outcome, to_json};

/// Where the user PIN comes from.
#[derive(Debug, Args)]
pub(crate) struct PinArgs {
    /// Read the PIN from this environment variable (else: standard input when it is not a
    /// terminal, else a prompt with echo off). PINs are never taken from the command line.
    #[arg(long, value_name = "VAR")]
    pin_env: Option<String>,
}

impl PinArgs {
    /// The variable named by `--pin-env`.
    pub(crate) fn pin_env(&self) -> Option<&str> {
        self.pin_env.as_deref()
    }
}

/// Where the admin credential comes from.
#[derive(Debug, Args)]
pub(crate) struct AdminArgs {
    /// Read the admin credential from this environment variable: the PIV management key in
    /// hex, the OpenPGP admin PIN (PW3), the GIDS admin key in hex (else standard input or a
    /// prompt).
    #[arg(long, value_name = "VAR")]
    admin_env: Option<String>,
    /// Cards whose writes also need the user PIN (GIDS: the user owns the key containers)
    /// read it from this environment variable (else standard input or a prompt), asked only
    /// when the card says so.
    #[arg(long, value_name = "VAR")]
    pin_env: Option<String>,
}

/// `--json` of the card commands.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct JsonArg {
    /// Print one JSON object on standard output, on failure too (with "error" and
    /// "exit_status"). Secrets (plaintexts, shared secrets) never go into it.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PinCommand {
    /// Verify a PIN (and show the tries left).
    Verify {
        #[command(flatten)]
        reader: ReaderArgs,
        /// PIN id: 1 user, 2 admin, 3-7 card-specific (scard info lists them).
        #[arg(long, default_value_t = 1)]
        pin_id: u8,
        #[command(flatten)]
        pin: PinArgs,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Change a PIN: the old value, then the new one.
    Change {
        #[command(flatten)]
        reader: ReaderArgs,
        #[arg(long, default_value_t = 1)]
        pin_id: u8,
        #[command(flatten)]
        pin: PinArgs,
        /// Read the new PIN from this environment variable.
        #[arg(long, value_name = "VAR")]
        new_pin_env: Option<String>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Unblock a PIN with the unblock code (PUK, resetting code) or admin credential the card
    /// uses, and set a new value.
    Unblock {
        #[command(flatten)]
        reader: ReaderArgs,
        #[arg(long, default_value_t = 1)]
        pin_id: u8,
        /// Read the unblock code (PUK / admin PIN / admin key) from this environment variable.
        #[arg(long, value_name = "VAR")]
        unblock_env: Option<String>,
        /// Read the new PIN from this environment variable.
        #[arg(long, value_name = "VAR")]
        new_pin_env: Option<String>,
        #[command(flatten)]
        json: JsonArg,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum CertCommand {
    /// Write a certificate (DER or PEM; `-` reads standard input) to a container.
    Import {
        #[command(flatten)]
        reader: ReaderArgs,
        #[arg(long)]
        container: u8,
        #[command(flatten)]
        admin: AdminArgs,
        file: PathBuf,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Read a container's certificate as DER (`-` writes standard output; with --json the
    /// certificate goes into the JSON as PEM instead).
    Export {
        #[command(flatten)]
        reader: ReaderArgs,
        #[arg(long)]
        container: u8,
        file: PathBuf,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Remove a container's certificate.
    Delete {
        #[command(flatten)]
        reader: ReaderArgs,
        #[arg(long)]
        container: u8,
        #[command(flatten)]
        admin: AdminArgs,
        #[command(flatten)]
        json: JsonArg,
    },
}

#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    #[command(flatten)]
    reader: ReaderArgs,
    /// Container index (PIV 0 = 9A, 1 = 9C, 2 = 9D, 3 = 9E, 4.. = 82..; OpenPGP 0 signature,
    /// 1 decryption, 2 authentication).
    #[arg(long)]
    container: u8,
    /// rsa2048, rsa3072, rsa4096, p256, p384.
    #[arg(long)]
    alg: String,
    /// Write the public key here as PEM (else it is printed).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    json: JsonArg,
}

/// Signature algorithms of `scard sign`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SignAlg {
    RsaPkcs1Sha1,
    RsaPkcs1Sha256,
    RsaPkcs1Sha384,
    RsaPkcs1Sha512,
    RsaPssSha256,
    RsaPssSha384,
    RsaPssSha512,
    EcdsaSha1,
    EcdsaSha256,
    EcdsaSha384,
    EcdsaSha512,
}

impl SignAlg {
    fn hash(self) -> HashAlg {
        use SignAlg::*;
        match self {
            RsaPkcs1Sha1 | EcdsaSha1 => HashAlg::Sha1,
            RsaPkcs1Sha256 | RsaPssSha256 | EcdsaSha256 => HashAlg::Sha256,
            RsaPkcs1Sha384 | RsaPssSha384 | EcdsaSha384 => HashAlg::Sha384,
            RsaPkcs1Sha512 | RsaPssSha512 | EcdsaSha512 => HashAlg::Sha512,
        }
    }
    fn padding(self) -> SignPadding {
        use SignAlg::*;
        match self {
            RsaPkcs1Sha1 | RsaPkcs1Sha256 | RsaPkcs1Sha384 | RsaPkcs1Sha512 => SignPadding::Pkcs1,
            // RFC 8017 §9.1: the usual salt length is the hash length.
            RsaPssSha256 | RsaPssSha384 | RsaPssSha512 => {
                SignPadding::Pss { salt_len: self.hash().len() }
            }
            EcdsaSha1 | EcdsaSha256 | EcdsaSha384 | EcdsaSha512 => SignPadding::None,
        }
    }
    fn is_ecdsa(self) -> bool {
        self.padding() == SignPadding::None
    }
}

/// ECDSA signature encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SigFormat {
    /// ECDSA-Sig-Value (RFC 3279 §2.2.3), what OpenSSL verifies.
    Der,
    /// r || s, each the curve's field size.
    Raw,
}

#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    #[command(flatten)]
    reader: ReaderArgs,
    #[arg(long)]
    container: u8,
    #[arg(long, value_enum)]
    alg: SignAlg,
    /// The data to sign (hashed here); `-` reads standard input.
    #[arg(long = "in")]
    input: PathBuf,
    /// Where the signature goes; `-` writes standard output (with --json, the signature goes
    /// into the JSON in hex instead).
    #[arg(long)]
    out: PathBuf,
    /// ECDSA output encoding (RSA signatures have one).
    #[arg(long, value_enum, default_value_t = SigFormat::Der)]
    format: SigFormat,
    #[command(flatten)]
    pin: PinArgs,
    #[command(flatten)]
    json: JsonArg,
}

/// Decryption algorithms of `scard decrypt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DecryptAlg {
    RsaPkcs1,
    RsaOaepSha1,
    RsaOaepSha256,
    RsaOaepSha384,
    RsaOaepSha512,
    RsaRaw,
}

impl DecryptAlg {
    fn padding(self) -> DecryptPadding {
        let oaep = |hash| DecryptPadding::Oaep { hash, label: Vec::new() };
        match self {
            DecryptAlg::RsaPkcs1 => DecryptPadding::Pkcs1,
            DecryptAlg::RsaOaepSha1 => oaep(HashAlg::Sha1),
            DecryptAlg::RsaOaepSha256 => oaep(HashAlg::Sha256),
            DecryptAlg::RsaOaepSha384 => oaep(HashAlg::Sha384),
            DecryptAlg::RsaOaepSha512 => oaep(HashAlg::Sha512),
            DecryptAlg::RsaRaw => DecryptPadding::None,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct DecryptArgs {
    #[command(flatten)]
    reader: ReaderArgs,
    #[arg(long)]
    container: u8,
    #[arg(long, value_enum)]
    alg: DecryptAlg,
    /// The cryptogram; `-` reads standard input.
    #[arg(long = "in")]
    input: PathBuf,
    /// Where the plaintext goes (created with mode 0600); `-` writes standard output (not
    /// with --json: the plaintext is a secret and never goes into a report).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    pin: PinArgs,
    #[command(flatten)]
    json: JsonArg,
}

#[derive(Debug, Args)]
pub(crate) struct AgreeArgs {
    #[command(flatten)]
    reader: ReaderArgs,
    #[arg(long)]
    container: u8,
    /// The peer's public key (PEM or DER SubjectPublicKeyInfo).
    #[arg(long)]
    peer: PathBuf,
    /// Where the shared secret goes (mode 0600); `-` writes standard output (not with
    /// --json: the secret never goes into a report).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    pin: PinArgs,
    #[command(flatten)]
    json: JsonArg,
}

/// A failure: message and exit status.
pub(crate) struct Failure(pub(crate) String, pub(crate) u8);

impl From<CardError> for Failure {
    fn from(err: CardError) -> Self {
        let status = match &err {
            CardError::InvalidInput { .. }
            | CardError::PinFormat { .. }
            | CardError::NoContainer { .. } => EXIT_BAD_INPUT,
            CardError::Transport(t) => readers_cmd::status_of(t),
            _ => EXIT_FAILURE,
        };
        // What to do next, where there is one thing to do.
        let hint = match &err {
            CardError::PinBlocked { pin } if *pin == PinId::USER => {
                "; unblock it with 'scard pin unblock' (the PUK or admin credential)"
            }
            CardError::PinBlocked { .. } => "; only the card's issuer can help now",
            CardError::WrongPin { tries_left: Some(1), .. } => "; one more wrong try blocks it",
            _ => "",
        };
        Failure(format!("{err}{hint}"), status)
    }
}

impl From<scard_transport::TransportError> for Failure {
    fn from(err: scard_transport::TransportError) -> Self {
        let status = readers_cmd::status_of(&err);
        Failure(err.to_string(), status)
    }
}

pub(crate) fn bad(message: impl Into<String>) -> Failure {
    Failure(message.into(), EXIT_BAD_INPUT)
}

pub(crate) fn outcome(result: Result<Outcome, Failure>) -> Outcome {
    result.unwrap_or_else(|Failure(message, status)| Outcome::error(message, status))
}

/// Connects and opens the card with its profile.
pub(crate) fn open(reader: &ReaderArgs) -> Result<Box<dyn CardModule>, Failure> {
    let transport = readers_cmd::connect(reader)?;
    let registry = crate::profiles::registry();
    Ok(registry.open(transport)?)
}

fn pin_id(id: u8) -> Result<PinId, Failure> {
    PinId::new(id).map_err(Failure::from)
}

fn read_input(path: &Path) -> Result<Vec<u8>, Failure> {
    if path == Path::new("-") {
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut data)
            .map_err(|e| Failure(format!("reading standard input: {e}"), EXIT_FAILURE))?;
        return Ok(data);
    }
    std::fs::read(path).map_err(|e| bad(format!("{}: {e}", path.display())))
}

/// Writes output; `secret` files are created with mode 0600.
fn write_output(path: &Path, data: &[u8], secret: bool) -> Result<(), Failure> {
    use std::io::Write;
    if path == Path::new("-") {
        let mut out = std::io::stdout().lock();
        return out
            .write_all(data)
            .and_then(|_| out.flush())
            .map_err(|e| Failure(format!("writing standard output: {e}"), EXIT_FAILURE));
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let _ = secret;
    options
        .open(path)
        .and_then(|mut f| f.write_all(data))
        .map_err(|e| Failure(format!("{}: {e}", path.display()), EXIT_FAILURE))
}

/// Where the credentials of a write as admin come from: the command line's `--admin-env` /
/// `--pin-env` with standard input or a prompt ([`ArgsCredentials`]), or values a caller
/// already holds (the conformance suite).
pub(crate) trait AdminCredentials {
    /// The admin credential: a key in hex when `is_key` (PIV management key, GIDS admin
    /// key), else the admin PIN.
    fn admin(&mut self, is_key: bool) -> Result<Pin, CardError>;
    /// Another PIN the card wants for the write (GIDS: the user owns the key containers).
    fn pin(&mut self, pin: PinId) -> Result<Pin, CardError>;
}

/// The credentials named by [`AdminArgs`].
pub(crate) struct ArgsCredentials<'a> {
    args: &'a AdminArgs,
    secrets: &'a mut Secrets,
}

impl AdminCredentials for ArgsCredentials<'_> {
    fn admin(&mut self, is_key: bool) -> Result<Pin, CardError> {
        let what = if is_key { "admin key (hex)" } else { "admin PIN" };
        self.secrets.get(what, self.args.admin_env.as_deref(), false).map_err(input_error)
    }

    fn pin(&mut self, pin: PinId) -> Result<Pin, CardError> {
        self.secrets
            .get(&format!("{pin}"), self.args.pin_env.as_deref(), false)
            .map_err(input_error)
    }
}

/// Whether the admin role (PIN id 2) is a key for challenge-response (PIV management key,
/// GIDS admin key) rather than a PIN.
pub(crate) fn admin_is_key(card: &mut dyn CardModule) -> Result<bool, CardError> {
    let pins = card.pins()?;
    let admin = pins.iter().find(|p| p.id == PinId::ADMIN);
    Ok(admin.is_some_and(|p| p.pin_type == PinType::ChallengeResponse))
}

/// Authenticates the admin role with a credential in hand: a key in hex for
/// challenge-response admins (`is_key`), else the admin PIN.
pub(crate) fn authenticate_admin_with(
    card: &mut dyn CardModule,
    is_key: bool,
    secret: &Pin,
) -> Result<(), CardError> {
    if is_key {
        let not_hex = |reason: String| CardError::InvalidInput { what: "admin key", reason };
        let text = std::str::from_utf8(secret.expose()).map_err(|_| not_hex("not hex".into()))?;
        let key = scard_iso7816::hex::decode_lenient(text).map_err(|e| not_hex(e.to_string()))?;
        card.authenticate_admin_key(&Pin::new(key))
    } else {
        card.authenticate(PinId::ADMIN, secret)
    }
}

/// Authenticates the admin role (PIN id 2): a key in hex for challenge-response admins (PIV
/// management key, GIDS admin key), else the admin PIN.
pub(crate) fn authenticate_admin(
    card: &mut dyn CardModule,
    credentials: &mut dyn AdminCredentials,
) -> Result<(), CardError> {
    let is_key = admin_is_key(card)?;
    let secret = credentials.admin(is_key)?;
    authenticate_admin_with(card, is_key, &secret)
}

/// Runs a write as admin: authenticates the admin first; when the card answers that the
/// write also needs another PIN (GIDS containers belong to the user), that PIN is asked for
/// and verified once, and the write is made again. A failed VERIFY is never repeated.
pub(crate) fn admin_write<R>(
    card: &mut dyn CardModule,
    credentials: &mut dyn AdminCredentials,
    mut write: impl FnMut(&mut dyn CardModule) -> Result<R, CardError>,
) -> Result<R, CardError> {
    authenticate_admin(card, credentials)?;
    match write(card) {
        Err(CardError::AuthRequired { pin, .. }) if pin != PinId::ADMIN => {
            let value = credentials.pin(pin)?;
            card.authenticate(pin, &value)?;
            write(card)
        }
        other => other,
    }
}

/// Verifies the PIN of a container's key; a key usable by everyone (PIV 9E) needs none.
fn authenticate_user(
    card: &mut dyn CardModule,
    pin: PinId,
    args: &PinArgs,
    secrets: &mut Secrets,
) -> Result<(), CardError> {
    if pin == PinId::EVERYONE {
        return Ok(());
    }
    let value = secrets.get("PIN", args.pin_env.as_deref(), false).map_err(input_error)?;
    card.authenticate(pin, &value)
}

/// A secret that could not be read (no variable, no terminal, empty input).
pub(crate) fn input_error(reason: String) -> CardError {
    CardError::InvalidInput { what: "secret input", reason }
}

/// A failure as JSON: the message and the exit status.
#[derive(Debug, Serialize)]
struct ErrorJson<'a> {
    error: &'a str,
    exit_status: u8,
}

/// The outcome of a card command: the JSON report (`--json`) or the line of text; a failure
/// is `{"error", "exit_status"}` on standard output with `--json`, a message on standard
/// error otherwise.
fn finish<T: Serialize>(json: JsonArg, result: Result<(T, String), Failure>) -> Outcome {
    match result {
        Ok((report, _)) if json.json => to_json(&report, 0),
        Ok((_, text)) => Outcome { text, status: 0 },
        Err(Failure(message, status)) if json.json => {
            to_json(&ErrorJson { error: &message, exit_status: status }, status)
        }
        Err(Failure(message, status)) => Outcome::error(message, status),
    }
}

/// The name clap shows for a value (`ecdsa-sha256`, `rsa-oaep-sha256`).
fn value_name(value: &impl ValueEnum) -> String {
    value.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default()
}

/// A path for a report: `None` for standard output.
fn path_json(path: &Path) -> Option<String> {
    (path != Path::new("-")).then(|| path.display().to_string())
}

/// `scard pin ... --json`: what was done to which PIN and the tries left afterwards; on a
/// wrong or blocked PIN, also what the card said.
#[derive(Debug, Serialize)]
struct PinResultJson {
    action: &'static str,
    pin: u8,
    name: Option<String>,
    ok: bool,
    tries_left: Option<u8>,
    blocked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_status: Option<u8>,
}

impl PinCommand {
    fn json(&self) -> JsonArg {
        match self {
            PinCommand::Verify { json, .. }
            | PinCommand::Change { json, .. }
            | PinCommand::Unblock { json, .. } => *json,
        }
    }
}

impl CertCommand {
    fn json(&self) -> JsonArg {
        match self {
            CertCommand::Import { json, .. }
            | CertCommand::Export { json, .. }
            | CertCommand::Delete { json, .. } => *json,
        }
    }
}

pub(crate) fn pin(command: &PinCommand) -> Outcome {
    let json = command.json();
    match run_pin(command) {
        Ok(PinRun { report, text }) if !json.json => match (report.error, report.exit_status) {
            (Some(message), Some(status)) => Outcome::error(message, status),
            _ => Outcome { text, status: 0 },
        },
        Ok(PinRun { report, .. }) => {
            let status = report.exit_status.unwrap_or(0);
            to_json(&report, status)
        }
        Err(failure) => finish::<()>(json, Err(failure)),
    }
}

/// A PIN command that reached the card: its report (a wrong PIN included) and its text.
struct PinRun {
    report: PinResultJson,
    text: String,
}

fn run_pin(command: &PinCommand) -> Result<PinRun, Failure> {
    let mut secrets = Secrets::new(false);
    let (action, id, reader) = match command {
        PinCommand::Verify { reader, pin_id, .. } => ("verify", pin_id, reader),
        PinCommand::Change { reader, pin_id, .. } => ("change", pin_id, reader),
        PinCommand::Unblock { reader, pin_id, .. } => ("unblock", pin_id, reader),
    };
    let id = pin_id(*id)?;
    // Secrets from variables or standard input are read before the card is touched.
    let values = match command {
        PinCommand::Verify { .. } => None,
        PinCommand::Change { pin, new_pin_env, .. } => {
            let old = secrets.get("current PIN", pin.pin_env.as_deref(), false).map_err(bad)?;
            let new = secrets.get("new PIN", new_pin_env.as_deref(), true).map_err(bad)?;
            Some((old, new))
        }
        PinCommand::Unblock { unblock_env, new_pin_env, .. } => {
            let code = secrets.get("unblock code", unblock_env.as_deref(), false).map_err(bad)?;
            let new = secrets.get("new PIN", new_pin_env.as_deref(), true).map_err(bad)?;
            Some((code, new))
        }
    };
    let json = command.json().json;
    let mut card = open(reader)?;
    let result = with_transaction(card.as_mut(), |card| {
        let done = match (command, &values) {
            (PinCommand::Verify { pin, .. }, _) => {
                let value =
                    secrets.get("PIN", pin.pin_env.as_deref(), false).map_err(input_error)?;
                card.authenticate(id, &value)
            }
            (PinCommand::Change { .. }, Some((old, new))) => card.change_pin(id, old, new),
            (PinCommand::Unblock { .. }, Some((code, new))) => card.unblock_pin(id, code, new),
            _ => Err(CardError::InvalidInput { what: "PIN command", reason: "no values".into() }),
        };
        // The report names the PIN and the tries left; the text needs neither (no extra
        // APDU for people).
        let name = if json {
            card.pins().ok().and_then(|pins| pins.into_iter().find(|p| p.id == id)).map(|p| p.name)
        } else {
            None
        };
        let tries = match &done {
            Err(CardError::WrongPin { tries_left, .. }) => *tries_left,
            Err(CardError::PinBlocked { .. }) => Some(0),
            _ if json => card.tries_left(id).ok().flatten(),
            _ => None,
        };
        Ok((done, name, tries))
    });
    let (done, name, tries_left) = result?;
    let (error, exit_status, blocked) = match done {
        Ok(()) => (None, None, false),
        // A wrong or blocked PIN is a result the report describes; other errors are failures.
        Err(err @ (CardError::WrongPin { .. } | CardError::PinBlocked { .. })) => {
            let blocked = matches!(err, CardError::PinBlocked { .. });
            let Failure(message, status) = Failure::from(err);
            (Some(message), Some(status), blocked)
        }
        Err(err) => return Err(err.into()),
    };
    let text = match action {
        "verify" => format!("{id} verified"),
        "change" => format!("{id} changed"),
        _ => format!("{id} unblocked and set"),
    };
    let report = PinResultJson {
        action,
        pin: id.get(),
        name,
        ok: error.is_none(),
        tries_left,
        blocked,
        error,
        exit_status,
    };
    Ok(PinRun { report, text })
}

/// `scard keygen --json`.
#[derive(Debug, Serialize)]
struct KeygenJson {
    container: u8,
    algorithm: String,
    public_key: String,
    out: Option<String>,
}

pub(crate) fn keygen(args: &KeygenArgs) -> Outcome {
    finish(
        args.json,
        (|| {
            let alg = KeyAlgorithm::parse(&args.alg)?;
            let mut secrets = Secrets::new(false);
            let mut card = open(&args.reader)?;
            let public = with_transaction(card.as_mut(), |card| {
                card.container(args.container)?;
                admin_write(
                    card,
                    &mut ArgsCredentials { args: &args.admin, secrets: &mut secrets },
                    |card| card.generate_key(args.container, alg),
                )
            })?;
            let pem = public.to_pem()?;
            let text = match &args.out {
                Some(path) => {
                    write_output(path, pem.as_bytes(), false)?;
                    format!(
                        "{alg} key generated in container {}; public key in {}",
                        args.container,
                        path.display()
                    )
                }
                None => pem.clone(),
            };
            let report = KeygenJson {
                container: args.container,
                algorithm: alg.to_string(),
                public_key: pem,
                out: args.out.as_deref().and_then(path_json),
            };
            Ok((report, text))
        })(),
    )
}

/// `scard cert ... --json`.
#[derive(Debug, Serialize)]
struct CertResultJson {
    action: &'static str,
    container: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<CertJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    out: Option<String>,
    /// The certificate itself, when it was asked for on standard output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pem: Option<String>,
}

pub(crate) fn cert(command: &CertCommand) -> Outcome {
    finish(command.json(), run_cert(command, command.json().json))
}

fn run_cert(command: &CertCommand, json: bool) -> Result<(CertResultJson, String), Failure> {
    match command {
        CertCommand::Import { reader, container, admin, file, .. } => {
            let bytes = read_input(file)?;
            let der = match scard_minidriver::pem_decode(&bytes, "CERTIFICATE")? {
                Some(der) => der,
                None => bytes,
            };
            check_certificate(&der)?;
            let mut secrets = Secrets::new(file == Path::new("-"));
            let mut card = open(reader)?;
            with_transaction(card.as_mut(), |card| {
                card.container(*container)?;
                admin_write(
                    card,
                    &mut ArgsCredentials { args: admin, secrets: &mut secrets },
                    |card| card.put_certificate(*container, Some(&der)),
                )
            })?;
            let text =
                format!("certificate ({} bytes) written to container {container}", der.len());
            let report = CertResultJson {
                action: "import",
                container: *container,
                bytes: Some(der.len()),
                certificate: Some(cert_json(&der)),
                out: None,
                pem: None,
            };
            Ok((report, text))
        }
        CertCommand::Export { reader, container, file, .. } => {
            let mut card = open(reader)?;
            let der = with_transaction(card.as_mut(), |card| card.certificate(*container))?;
            let der = der.ok_or_else(|| {
                Failure(format!("container {container} has no certificate"), EXIT_FAILURE)
            })?;
            let to_stdout = file == Path::new("-");
            // With --json, standard output carries the report: the certificate goes into it.
            let pem = if json && to_stdout {
                Some(scard_minidriver::pem_encode("CERTIFICATE", &der)?)
            } else {
                write_output(file, &der, false)?;
                None
            };
            let text = quiet_or(file, format!("certificate ({} bytes) written to", der.len()));
            let report = CertResultJson {
                action: "export",
                container: *container,
                bytes: Some(der.len()),
                certificate: Some(cert_json(&der)),
                out: path_json(file),
                pem,
            };
            Ok((report, text))
        }
        CertCommand::Delete { reader, container, admin, .. } => {
            let mut secrets = Secrets::new(false);
            let mut card = open(reader)?;
            with_transaction(card.as_mut(), |card| {
                card.container(*container)?;
                admin_write(
                    card,
                    &mut ArgsCredentials { args: admin, secrets: &mut secrets },
                    |card| card.put_certificate(*container, None),
                )
            })?;
            let report = CertResultJson {
                action: "delete",
                container: *container,
                bytes: None,
                certificate: None,
                out: None,
                pem: None,
            };
            Ok((report, format!("certificate of container {container} removed")))
        }
    }
}

/// A certificate must be one DER X.509 certificate (RFC 5280 §4.1) before it goes to a card.
fn check_certificate(der: &[u8]) -> Result<(), Failure> {
    use x509_cert::der::Decode;
    x509_cert::Certificate::from_der(der)
        .map(|_| ())
        .map_err(|e| bad(format!("not a DER or PEM X.509 certificate: {e}")))
}

/// `scard sign --json`: the signature is public, so it is in the report (hex).
#[derive(Debug, Serialize)]
struct SignJson {
    container: u8,
    algorithm: String,
    format: String,
    bytes: usize,
    out: Option<String>,
    signature: String,
}

pub(crate) fn sign(args: &SignArgs) -> Outcome {
    finish(
        args.json,
        (|| {
            let data = read_input(&args.input)?;
            let hash = args.alg.hash();
            let digest = hash.digest(&data);
            let request =
                SignRequest { hash: Some(hash), padding: args.alg.padding(), data: &digest };
            let mut secrets = Secrets::new(args.input == Path::new("-"));
            let mut card = open(&args.reader)?;
            let (signature, container) = with_transaction(card.as_mut(), |card| {
                let container = card.container(args.container)?;
                check_alg_matches(card, &container, args.alg.is_ecdsa())?;
                // Refused before any PIN when the card cannot do it.
                card.check_sign(args.container, &request)?;
                authenticate_user(card, container.pin, &args.pin, &mut secrets)?;
                let signature = card.sign(args.container, &request)?;
                // What a broken or hostile card answers with 9000 is checked before it is
                // written out (scard_minidriver::verify).
                if let Some(public) = &container.public_key {
                    scard_minidriver::verify_signature(public, &request, &signature)?;
                }
                Ok((signature, container))
            })?;
            let (out, format) = match (args.alg.is_ecdsa(), args.format) {
                (true, SigFormat::Der) => (ecdsa_der(&signature, &container)?, "der"),
                (true, SigFormat::Raw) => (signature, "raw"),
                (false, _) => (signature, "pkcs1"),
            };
            let to_stdout = args.out == Path::new("-");
            if !(args.json.json && to_stdout) {
                write_output(&args.out, &out, false)?;
            }
            let text = quiet_or(&args.out, format!("signature ({} bytes) written to", out.len()));
            let report = SignJson {
                container: args.container,
                algorithm: value_name(&args.alg),
                format: format.to_owned(),
                bytes: out.len(),
                out: path_json(&args.out),
                signature: scard_iso7816::hex::encode_upper(&out),
            };
            Ok((report, text))
        })(),
    )
}

/// An RSA algorithm on an EC key (or the reverse) is the caller's mistake: say so before PINs.
fn check_alg_matches(
    card: &dyn CardModule,
    container: &ContainerInfo,
    ecdsa: bool,
) -> Result<(), CardError> {
    let _ = card;
    match container.algorithm {
        Some(alg) if alg.is_rsa() == ecdsa => Err(CardError::InvalidInput {
            what: "algorithm",
            reason: format!("container {} holds a {alg} key", container.index),
        }),
        None if !container.has_key() => {
            Err(CardError::EmptyContainer { index: container.index, what: "key" })
        }
        _ => Ok(()),
    }
}

/// r || s to an ECDSA-Sig-Value (RFC 3279 §2.2.3).
fn ecdsa_der(raw: &[u8], container: &ContainerInfo) -> Result<Vec<u8>, Failure> {
    let bad_sig = |e: String| Failure(format!("the card's ECDSA signature: {e}"), EXIT_FAILURE);
    match container.algorithm {
        Some(KeyAlgorithm::Ec(scard_minidriver::Curve::P384)) => {
            p384::ecdsa::Signature::from_slice(raw)
                .map(|s| s.to_der().as_bytes().to_vec())
                .map_err(|e| bad_sig(e.to_string()))
        }
        _ => p256::ecdsa::Signature::from_slice(raw)
            .map(|s| s.to_der().as_bytes().to_vec())
            .map_err(|e| bad_sig(e.to_string())),
    }
}

/// `scard decrypt --json` / `scard agree --json`: where the secret went and how long it is,
/// never the secret itself.
#[derive(Debug, Serialize)]
struct SecretOutJson {
    container: u8,
    algorithm: String,
    bytes: usize,
    out: String,
}

/// A secret result cannot go to standard output when standard output carries the report.
fn secret_out(json: JsonArg, out: &Path, what: &str) -> Result<(), Failure> {
    if json.json && out == Path::new("-") {
        return Err(bad(format!(
            "--json with --out -: the {what} is a secret and never goes into a report; name a \
             file with --out"
        )));
    }
    Ok(())
}

pub(crate) fn decrypt(args: &DecryptArgs) -> Outcome {
    finish(
        args.json,
        (|| {
            secret_out(args.json, &args.out, "plaintext")?;
            let data = read_input(&args.input)?;
            let padding = args.alg.padding();
            let mut secrets = Secrets::new(args.input == Path::new("-"));
            let mut card = open(&args.reader)?;
            let plain = with_transaction(card.as_mut(), |card| {
                let container = card.container(args.container)?;
                check_alg_matches(card, &container, false)?;
                card.check_decrypt(args.container, &padding)?;
                authenticate_user(card, container.pin, &args.pin, &mut secrets)?;
                card.decrypt(args.container, &padding, &data)
            })?;
            write_output(&args.out, plain.expose(), true)?;
            let bytes = plain.expose().len();
            let report = SecretOutJson {
                container: args.container,
                algorithm: value_name(&args.alg),
                bytes,
                out: args.out.display().to_string(),
            };
            Ok((report, quiet_or(&args.out, format!("plaintext ({bytes} bytes) written to"))))
        })(),
    )
}

pub(crate) fn agree(args: &AgreeArgs) -> Outcome {
    finish(
        args.json,
        (|| {
            secret_out(args.json, &args.out, "shared secret")?;
            let peer = PublicKey::from_pem_or_der(&read_input(&args.peer)?)?;
            let mut secrets = Secrets::new(false);
            let mut card = open(&args.reader)?;
            let (secret, algorithm) = with_transaction(card.as_mut(), |card| {
                let container = card.container(args.container)?;
                check_alg_matches(card, &container, true)?;
                authenticate_user(card, container.pin, &args.pin, &mut secrets)?;
                let secret = card.agree(args.container, &peer)?;
                Ok((secret, container.algorithm))
            })?;
            write_output(&args.out, secret.expose(), true)?;
            let bytes = secret.expose().len();
            let report = SecretOutJson {
                container: args.container,
                algorithm: algorithm.map(|a| format!("ecdh-{a}")).unwrap_or_else(|| "ecdh".into()),
                bytes,
                out: args.out.display().to_string(),
            };
            Ok((report, quiet_or(&args.out, format!("shared secret ({bytes} bytes) written to"))))
        })(),
    )
}

/// The text after writing to `out`: nothing when the data went to standard output.
fn quiet_or(out: &Path, lead: String) -> String {
    if out == Path::new("-") { String::new() } else { format!("{lead} {}", out.display()) }
}

/// The card part of `scard info`.
#[derive(Debug, Serialize)]
pub(crate) struct CardJson {
    family: String,
    model: String,
    card_id: String,
    serial: String,
    key_generation: bool,
    read_only: bool,
    algorithms: Vec<String>,
    free_containers: usize,
    pins: Vec<PinJson>,
    containers: Vec<ContainerJson>,
}

#[derive(Debug, Serialize)]
struct PinJson {
    id: u8,
    name: String,
    #[serde(rename = "type")]
    pin_type: String,
    tries_left: Option<u8>,
    cache_policy: String,
}

#[derive(Debug, Serialize)]
struct ContainerJson {
    index: u8,
    key_ref: String,
    name: String,
    label: String,
    default: bool,
    key_spec: Option<String>,
    algorithm: Option<String>,
    always_authenticate: bool,
    /// The public key as PEM, when the card lets us read it without a PIN.
    public_key: Option<String>,
    certificate: Option<CertJson>,
}

#[derive(Debug, Serialize)]
struct CertJson {
    subject: String,
    issuer: String,
    not_before: String,
    not_after: String,
    error: Option<String>,
}

fn pin_json(p: &PinInfo) -> PinJson {
    PinJson {
        id: p.id.get(),
        name: p.name.clone(),
        pin_type: format!("{:?}", p.pin_type),
        tries_left: p.tries_left,
        cache_policy: format!("{:?}", p.cache_policy),
    }
}

fn cert_json(der: &[u8]) -> CertJson {
    use x509_cert::der::Decode;
    match x509_cert::Certificate::from_der(der) {
        Ok(cert) => {
            let tbs = &cert.tbs_certificate;
            CertJson {
                subject: tbs.subject.to_string(),
                issuer: tbs.issuer.to_string(),
                not_before: tbs.validity.not_before.to_string(),
                not_after: tbs.validity.not_after.to_string(),
                error: None,
            }
        }
        Err(e) => CertJson {
            subject: String::new(),
            issuer: String::new(),
            not_before: String::new(),
            not_after: String::new(),
            error: Some(format!("not a DER certificate: {e}")),
        },
    }
}

fn key_spec_name(spec: KeySpec) -> String {
    spec.name().to_owned()
}

/// Reads what `scard info` shows about the card (no PIN needed).
pub(crate) fn card_report(card: &mut dyn CardModule) -> Result<CardJson, CardError> {
    with_transaction(card, |card| {
        let props = card.properties()?;
        let pins = card.pins()?;
        let containers = card.containers()?;
        let mut out = Vec::new();
        for c in &containers {
            // Profiles may leave public keys out of the list (OpenPGP reads each with one
            // more APDU): `info` asks for them.
            let public_key = match &c.public_key {
                Some(k) => Some(k.clone()),
                None if c.has_key() => card.container(c.index)?.public_key,
                None => None,
            };
            let certificate = if c.has_certificate {
                card.certificate(c.index)?.map(|d| cert_json(&d))
            } else {
                None
            };
            out.push(ContainerJson {
                index: c.index,
                key_ref: format!("{:02X}", c.key_ref),
                name: c.name.clone(),
                label: c.label.clone(),
                default: c.default,
                key_spec: c.key_spec.map(key_spec_name),
                algorithm: c.algorithm.map(|a| a.to_string()),
                always_authenticate: c.always_authenticate,
                public_key: public_key.and_then(|k| k.to_pem().ok()),
                certificate,
            });
        }
        Ok(CardJson {
            family: props.family,
            model: props.model,
            card_id: scard_iso7816::hex::encode_upper(&props.card_id),
            serial: props.serial,
            key_generation: props.key_generation,
            read_only: props.read_only,
            algorithms: props.algorithms.iter().map(ToString::to_string).collect(),
            free_containers: props.free_containers,
            pins: pins.iter().map(pin_json).collect(),
            containers: out,
        })
    })
}

/// The card section of `scard info` as text.
pub(crate) fn card_text(card: &CardJson) -> String {
    let mut text = format!(
        "Card model   {} ({})\nCard id      {}\nSerial       {}\nAlgorithms   {}\n",
        card.model,
        card.family,
        card.card_id,
        card.serial,
        card.algorithms.join(", ")
    );
    text.push_str("PINs\n");
    for p in &card.pins {
        let tries = p
            .tries_left
            .map_or_else(|| "tries left unknown".to_owned(), |n| format!("{n} tries left"));
        text.push_str(&format!("  {}  {:<34} {:<18} {}\n", p.id, p.name, p.pin_type, tries));
    }
    text.push_str("Containers\n");
    // Empty containers past the first four (PIV's retired slots) are summed up in one line.
    let hidden = card.containers.iter().filter(|c| c.index >= 4 && c.key_spec.is_none()).count();
    for c in card.containers.iter().filter(|c| c.index < 4 || c.key_spec.is_some()) {
        let key = match (&c.key_spec, &c.algorithm) {
            (Some(spec), Some(alg)) => format!("{alg} {spec}"),
            (Some(spec), None) => spec.clone(),
            _ => "empty".to_owned(),
        };
        text.push_str(&format!(
            "  {:>2} [{}] {:<30} {}{}{}\n",
            c.index,
            c.key_ref,
            c.label,
            key,
            if c.default { ", default" } else { "" },
            if c.always_authenticate { ", PIN before every use" } else { "" },
        ));
        if let Some(cert) = &c.certificate {
            match &cert.error {
                Some(e) => text.push_str(&format!("       certificate: {e}\n")),
                None => text.push_str(&format!(
                    "       certificate: {}\n       valid {} .. {}\n",
                    cert.subject, cert.not_before, cert.not_after
                )),
            }
        }
    }
    if hidden > 0 {
        text.push_str(&format!("  ({hidden} more empty containers; --json lists them)\n"));
    }
    text
}
