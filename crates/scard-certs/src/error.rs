//! The one error type of the certificate layer.

use std::path::PathBuf;

use der::asn1::ObjectIdentifier;

use crate::policy::Setting;

/// Errors of this crate: a certificate file that is not a strict DER certificate (rejected,
/// never "not eligible"), a bad setting, a card description that cannot be right, a store
/// that cannot be written. Messages name what is wrong and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// PEM text (`-----BEGIN CERTIFICATE-----`) where DER was expected.
    #[error("PEM text, not DER (convert it first: openssl x509 -in FILE -outform DER)")]
    Pem,
    /// The bytes are not a DER `Certificate` (RFC 5280 §4.1): truncated, trailing bytes, a
    /// non-minimal or indefinite length, a wrong tag, a bad value.
    #[error("not a DER certificate: {0}")]
    Der(#[source] der::Error),
    /// The bytes decode, but are not the unique DER encoding of what they hold (X.690 §11, e.g.
    /// a DEFAULT value such as `critical FALSE` encoded explicitly).
    #[error("not DER: the certificate re-encodes differently from byte {offset} on (BER, not DER)")]
    NotCanonical {
        /// First byte that differs.
        offset: usize,
    },
    /// An extension this module reads does not decode.
    #[error("extension {name} ({oid}) does not decode: {source}")]
    Extension {
        /// Extension id.
        oid: ObjectIdentifier,
        /// Its name.
        name: &'static str,
        /// What the decoder said.
        #[source]
        source: der::Error,
    },
    /// An extension this module reads decodes but breaks its definition.
    #[error("extension {name} ({oid}): {reason}")]
    ExtensionContent {
        /// Extension id.
        oid: ObjectIdentifier,
        /// Its name.
        name: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The same extension twice (RFC 5280 §4.2: "MUST NOT include more than one instance").
    #[error("extension {oid} appears more than once (RFC 5280 §4.2)")]
    DuplicateExtension {
        /// Extension id.
        oid: ObjectIdentifier,
    },
    /// A field a version 1 or 2 certificate cannot have (RFC 5280 §4.1.2.8, §4.1.2.9).
    #[error("{field} in a version {version} certificate (RFC 5280 §4.1.2.8-9)")]
    FieldNotInVersion {
        /// The field.
        field: &'static str,
        /// The certificate's version (1 or 2).
        version: u8,
    },
    /// The subject public key does not decode for its algorithm.
    #[error("subject public key ({algorithm}): {reason}")]
    PublicKey {
        /// The key algorithm.
        algorithm: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A time that is not RFC 3339 (`--at`), or not representable.
    #[error("time {text:?}: {reason}")]
    Time {
        /// The text given.
        text: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A setting name this module does not know.
    #[error("unknown setting {name:?}{}", origin_suffix(origin.as_ref()))]
    UnknownSetting {
        /// The name given.
        name: String,
        /// The file it came from, if any.
        origin: Option<PathBuf>,
    },
    /// A setting value out of range (or of the wrong type).
    #[error("setting {setting}: {value} is not allowed, expected {expected}{}", origin_suffix(origin.as_ref()))]
    SettingValue {
        /// The setting.
        setting: Setting,
        /// The value given, as text.
        value: String,
        /// What would be allowed.
        expected: &'static str,
        /// The file it came from, if any.
        origin: Option<PathBuf>,
    },
    /// A command-line setting that is not `NAME=VALUE`.
    #[error("setting {arg:?}: expected NAME=VALUE")]
    SettingSyntax {
        /// The argument given.
        arg: String,
    },
    /// A settings file that is not TOML (the message has its line and column).
    #[error("{}: {reason}", path.display())]
    PolicyFile {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message.
        reason: String,
    },
    /// Two containers of a card with the same name.
    #[error("container name {name:?} appears more than once")]
    DuplicateContainer {
        /// The name.
        name: String,
    },
    /// More than one default container.
    #[error("containers {first:?} and {second:?} are both marked default")]
    SeveralDefaults {
        /// The first default container.
        first: String,
        /// The second.
        second: String,
    },
    /// A file of the propagation store that cannot be written, read or removed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// A sidecar of the propagation store that does not parse.
    #[error("{}: not a scard sidecar: {reason}", path.display())]
    Sidecar {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn origin_suffix(origin: Option<&PathBuf>) -> String {
    origin.map(|p| format!(" (in {})", p.display())).unwrap_or_default()
}

impl From<der::Error> for CertError {
    fn from(err: der::Error) -> Self {
        CertError::Der(err)
    }
}
