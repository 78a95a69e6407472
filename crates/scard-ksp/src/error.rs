//! The one error type of the key storage provider, and [`ErrorKind`], the classifier that a
//! boundary (the PKCS#11 module's CK_RV, the CLI's exit status) maps in one function.

use scard_minidriver::{CardError, PinId};
use scard_transport::TransportError;

/// Errors of the key storage provider. Card and transport errors are wrapped as they are;
/// the provider's own conditions (a PIN is needed but the call is silent, the user cancelled,
/// no such key) have their own variants with the reader, PIN or key they concern.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KspError {
    /// The card or its profile failed or refused (wrong PIN, unsupported padding, ...).
    #[error(transparent)]
    Card(#[from] CardError),
    /// A reader or connection failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The operation needs a PIN that is neither verified nor cached, and the call was
    /// silent ([`crate::OpFlags::silent`]) or the PIN source had nothing to give.
    #[error("{reader}: {pin} is needed (the call was silent: nothing was asked)")]
    PinNeeded {
        /// The reader of the card.
        reader: String,
        /// The PIN.
        pin: PinId,
    },
    /// The user cancelled the PIN entry.
    #[error("{reader}: entry of {pin} cancelled")]
    Cancelled {
        /// The reader of the card.
        reader: String,
        /// The PIN that was asked for.
        pin: PinId,
    },
    /// A PIN source failed (a variable not set, no pinentry program, a broken pinentry).
    #[error("PIN source {source_name}: {reason}")]
    PinSource {
        /// Which source ("environment", "pinentry", "standard input", ...).
        source_name: &'static str,
        /// What went wrong (never the PIN).
        reason: String,
    },
    /// No key of that name on any open card.
    #[error("no key {name:?}")]
    KeyNotFound {
        /// The name asked for.
        name: String,
    },
    /// A key name that does not parse.
    #[error("invalid key name {name:?}: {reason}")]
    InvalidKeyName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// The provider does not serve this reader (not in its configuration, or gone).
    #[error("no reader {reader:?} (readers: {known})")]
    UnknownReader {
        /// The reader asked for.
        reader: String,
        /// The readers the provider has.
        known: String,
    },
    /// The reader has no card (or no card the provider could open).
    #[error("{reader}: no card")]
    NoCard {
        /// The reader.
        reader: String,
    },
    /// The card went away during the operation; it was closed and its cached PINs dropped.
    #[error("{reader}: the card was removed")]
    CardRemoved {
        /// The reader.
        reader: String,
    },
    /// The reader holds a card that no card profile knows.
    #[error("{reader}: card not recognised: {reason}")]
    UnrecognizedCard {
        /// The reader.
        reader: String,
        /// What the profile registry said.
        reason: String,
    },
    /// The card did not answer in time while it was opened; it is left alone until it is
    /// removed or another card is inserted.
    #[error("{reader}: the card does not answer ({reason}); remove it and insert it again")]
    CardNotResponding {
        /// The reader.
        reader: String,
        /// What timed out.
        reason: String,
    },
    /// A mechanism the key or provider does not do (RSA padding on an EC key, ECDH with an
    /// RSA key, a hash the card does not take), reported before any PIN is needed.
    #[error("unsupported: {what}")]
    UnsupportedMechanism {
        /// What was asked.
        what: String,
    },
    /// A key of one type used with a mechanism of another (RSA padding on an EC key).
    #[error("key {key}: {reason}")]
    KeyTypeMismatch {
        /// The key name.
        key: String,
        /// What does not fit.
        reason: String,
    },
    /// The key exists but may not do this (decrypt with a signature-only key).
    #[error("key {key} may not {operation}")]
    KeyUsage {
        /// The key name.
        key: String,
        /// The operation refused.
        operation: &'static str,
    },
    /// An argument that cannot be right (data of the wrong length, a certificate that is not
    /// one, a peer key on another curve).
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// What was wrong.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The configuration file (or `SCARD_READERS`) is wrong: names the file, line and field.
    #[error("{file}:{line}: {field}: {reason}")]
    Config {
        /// The file (or `SCARD_READERS`).
        file: String,
        /// 1-based line (1 for the environment variable).
        line: usize,
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A reader kind this build cannot serve (`sim:` without the `sim` feature).
    #[error("{reader}: {reason}")]
    ReaderUnavailable {
        /// The reader (or reader pattern).
        reader: String,
        /// Why.
        reason: String,
    },
}

/// What an error means to a caller, independently of the layer it came from. The PKCS#11
/// module maps this (not the variants) to CK_RV in one function; the names say which code
/// each is meant for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A PIN is needed and was not given (CKR_USER_NOT_LOGGED_IN).
    PinNeeded,
    /// The card said the PIN was wrong (CKR_PIN_INCORRECT).
    PinIncorrect,
    /// The PIN is blocked (CKR_PIN_LOCKED).
    PinLocked,
    /// The PIN was refused before it was sent: length or characters (CKR_PIN_LEN_RANGE).
    PinLenRange,
    /// The user cancelled (CKR_FUNCTION_CANCELED).
    Cancelled,
    /// No such key or container (CKR_KEY_HANDLE_INVALID / CKR_OBJECT_HANDLE_INVALID).
    KeyNotFound,
    /// No such reader (CKR_SLOT_ID_INVALID).
    ReaderNotFound,
    /// The reader has no card (CKR_TOKEN_NOT_PRESENT).
    NoCard,
    /// The card was removed (CKR_DEVICE_REMOVED).
    CardRemoved,
    /// No profile knows the card (CKR_TOKEN_NOT_RECOGNIZED).
    CardNotRecognized,
    /// Unsupported algorithm, padding or key size (CKR_MECHANISM_INVALID).
    MechanismInvalid,
    /// A mechanism parameter that cannot be used: a peer key on another curve, a bad salt
    /// length (CKR_MECHANISM_PARAM_INVALID).
    MechanismParamInvalid,
    /// A mechanism of another key type (CKR_KEY_TYPE_INCONSISTENT).
    KeyTypeInconsistent,
    /// The key may not do this (CKR_KEY_FUNCTION_NOT_PERMITTED).
    KeyFunctionNotPermitted,
    /// Input data of a wrong length (CKR_DATA_LEN_RANGE).
    DataLenRange,
    /// A ciphertext of a wrong length (CKR_ENCRYPTED_DATA_LEN_RANGE).
    EncryptedDataLenRange,
    /// A ciphertext whose padding does not check (CKR_ENCRYPTED_DATA_INVALID).
    EncryptedDataInvalid,
    /// An argument that cannot be right (CKR_ARGUMENTS_BAD).
    ArgumentsBad,
    /// The card (or its model) is read-only (CKR_TOKEN_WRITE_PROTECTED).
    WriteProtected,
    /// No free container (CKR_DEVICE_MEMORY).
    DeviceMemory,
    /// Another connection holds the card exclusively (CKR_DEVICE_ERROR, or retry later).
    Busy,
    /// The card or reader failed: status words, malformed answers, time-outs
    /// (CKR_DEVICE_ERROR).
    DeviceError,
    /// Configuration errors (CKR_GENERAL_ERROR, or CKR_ARGUMENTS_BAD from C_Initialize).
    Config,
    /// The PIN source failed (CKR_FUNCTION_FAILED).
    PinSourceFailed,
    /// Anything else (CKR_FUNCTION_FAILED).
    General,
}

impl KspError {
    /// What the error means to a caller (see [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            KspError::Card(e) => card_kind(e),
            KspError::Transport(e) => transport_kind(e),
            KspError::PinNeeded { .. } => ErrorKind::PinNeeded,
            KspError::Cancelled { .. } => ErrorKind::Cancelled,
            KspError::PinSource { .. } => ErrorKind::PinSourceFailed,
            KspError::KeyNotFound { .. } => ErrorKind::KeyNotFound,
            KspError::InvalidKeyName { .. } => ErrorKind::KeyNotFound,
            KspError::UnknownReader { .. } => ErrorKind::ReaderNotFound,
            KspError::NoCard { .. } => ErrorKind::NoCard,
            KspError::CardRemoved { .. } => ErrorKind::CardRemoved,
            KspError::UnrecognizedCard { .. } => ErrorKind::CardNotRecognized,
            KspError::CardNotResponding { .. } => ErrorKind::DeviceError,
            KspError::UnsupportedMechanism { .. } => ErrorKind::MechanismInvalid,
            KspError::KeyTypeMismatch { .. } => ErrorKind::KeyTypeInconsistent,
            KspError::KeyUsage { .. } => ErrorKind::KeyFunctionNotPermitted,
            KspError::InvalidInput { what, .. } => input_kind(what),
            KspError::Config { .. } | KspError::ReaderUnavailable { .. } => ErrorKind::Config,
        }
    }

    /// Whether the card counted a failed PIN try (wrong or blocked PIN).
    pub fn is_pin_failure(&self) -> bool {
        matches!(self, KspError::Card(e) if e.is_pin_failure())
    }
}

/// The kind of an invalid-input error, by what was invalid. The `what` values are the
/// minidriver layer's and this crate's own (`&'static str`, not messages).
fn input_kind(what: &str) -> ErrorKind {
    match what {
        "digest" | "data to sign" | "data" => ErrorKind::DataLenRange,
        "ciphertext" => ErrorKind::EncryptedDataLenRange,
        "peer key" | "salt length" | "OAEP label" => ErrorKind::MechanismParamInvalid,
        _ => ErrorKind::ArgumentsBad,
    }
}

fn card_kind(err: &CardError) -> ErrorKind {
    match err {
        CardError::Transport(t) => transport_kind(t),
        CardError::WrongPin { .. } => ErrorKind::PinIncorrect,
        CardError::PinBlocked { .. } => ErrorKind::PinLocked,
        CardError::PinFormat { .. } => ErrorKind::PinLenRange,
        CardError::AuthRequired { .. } => ErrorKind::PinNeeded,
        CardError::Unsupported { .. } => ErrorKind::MechanismInvalid,
        CardError::NoContainer { .. } | CardError::EmptyContainer { .. } => ErrorKind::KeyNotFound,
        CardError::NoFreeContainer => ErrorKind::DeviceMemory,
        CardError::ReadOnly { .. } => ErrorKind::WriteProtected,
        CardError::InvalidInput { what, .. } => input_kind(what),
        CardError::UnknownCard { .. } => ErrorKind::CardNotRecognized,
        CardError::Model { .. } => ErrorKind::Config,
        // Padding checks of decrypted blocks (RFC 8017 §7.1.2 / §7.2.2: decryption error).
        CardError::Crypto { operation: "decrypt", .. } => ErrorKind::EncryptedDataInvalid,
        CardError::Status { .. }
        | CardError::Malformed { .. }
        | CardError::CardReset { .. }
        | CardError::Codec { .. }
        | CardError::FileNotFound { .. } => ErrorKind::DeviceError,
        CardError::Crypto { .. } | CardError::Io { .. } => ErrorKind::General,
        _ => ErrorKind::General,
    }
}

fn transport_kind(err: &TransportError) -> ErrorKind {
    match err {
        TransportError::InvalidName { .. } | TransportError::UnknownReader { .. } => {
            ErrorKind::ReaderNotFound
        }
        TransportError::NoCard { .. }
        | TransportError::NoCardAnywhere { .. }
        | TransportError::NoCardInGroup { .. } => ErrorKind::NoCard,
        TransportError::CardRemoved { .. } => ErrorKind::CardRemoved,
        TransportError::Sharing { .. } | TransportError::ReaderInUse { .. } => ErrorKind::Busy,
        TransportError::BackendUnavailable { .. } => ErrorKind::Config,
        _ => ErrorKind::DeviceError,
    }
}

/// Result type of this crate.
pub type Result<T, E = KspError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use scard_iso7816::StatusWord;

    /// The classifier as a table: one row per variant family the boundary must tell apart.
    #[test]
    fn every_error_has_its_kind() {
        let r = || "sim:piv".to_owned();
        let rows: Vec<(KspError, ErrorKind)> = vec![
            (KspError::PinNeeded { reader: r(), pin: PinId::USER }, ErrorKind::PinNeeded),
            (KspError::Cancelled { reader: r(), pin: PinId::USER }, ErrorKind::Cancelled),
            (
                KspError::PinSource { source_name: "pinentry", reason: "x".into() },
                ErrorKind::PinSourceFailed,
            ),
            (KspError::KeyNotFound { name: "k".into() }, ErrorKind::KeyNotFound),
            (KspError::InvalidKeyName { name: "k".into(), reason: "x" }, ErrorKind::KeyNotFound),
            (
                KspError::UnknownReader { reader: r(), known: String::new() },
                ErrorKind::ReaderNotFound,
            ),
            (KspError::NoCard { reader: r() }, ErrorKind::NoCard),
            (KspError::CardRemoved { reader: r() }, ErrorKind::CardRemoved),
            (
                KspError::UnrecognizedCard { reader: r(), reason: "x".into() },
                ErrorKind::CardNotRecognized,
            ),
            (KspError::UnsupportedMechanism { what: "x".into() }, ErrorKind::MechanismInvalid),
            (
                KspError::KeyTypeMismatch { key: "k".into(), reason: "x".into() },
                ErrorKind::KeyTypeInconsistent,
            ),
            (
                KspError::KeyUsage { key: "k".into(), operation: "decrypt" },
                ErrorKind::KeyFunctionNotPermitted,
            ),
            (
                KspError::InvalidInput { what: "ciphertext", reason: "x".into() },
                ErrorKind::EncryptedDataLenRange,
            ),
            (
                KspError::InvalidInput { what: "digest", reason: "x".into() },
                ErrorKind::DataLenRange,
            ),
            (
                KspError::InvalidInput { what: "peer key", reason: "x".into() },
                ErrorKind::MechanismParamInvalid,
            ),
            (
                KspError::InvalidInput { what: "certificate", reason: "x".into() },
                ErrorKind::ArgumentsBad,
            ),
            (
                KspError::Config {
                    file: "f".into(),
                    line: 1,
                    field: "x".into(),
                    reason: "y".into(),
                },
                ErrorKind::Config,
            ),
            (KspError::ReaderUnavailable { reader: r(), reason: "x".into() }, ErrorKind::Config),
            (
                CardError::WrongPin { pin: PinId::USER, tries_left: Some(2) }.into(),
                ErrorKind::PinIncorrect,
            ),
            (CardError::PinBlocked { pin: PinId::USER }.into(), ErrorKind::PinLocked),
            (
                CardError::PinFormat { pin: PinId::USER, reason: "x".into() }.into(),
                ErrorKind::PinLenRange,
            ),
            (
                CardError::AuthRequired { operation: "sign", pin: PinId::USER }.into(),
                ErrorKind::PinNeeded,
            ),
            (
                CardError::Unsupported { what: "PSS".into(), model: "m".into() }.into(),
                ErrorKind::MechanismInvalid,
            ),
            (CardError::NoContainer { index: 9, count: 3 }.into(), ErrorKind::KeyNotFound),
            (CardError::EmptyContainer { index: 0, what: "key" }.into(), ErrorKind::KeyNotFound),
            (CardError::NoFreeContainer.into(), ErrorKind::DeviceMemory),
            (CardError::ReadOnly { model: "m".into() }.into(), ErrorKind::WriteProtected),
            (
                CardError::Crypto { operation: "decrypt", reason: "x".into() }.into(),
                ErrorKind::EncryptedDataInvalid,
            ),
            (
                CardError::Status { operation: "sign", sw: StatusWord(0x6F00) }.into(),
                ErrorKind::DeviceError,
            ),
            (
                CardError::UnknownCard { atr: "3B00".into(), probed: "piv".into() }.into(),
                ErrorKind::CardNotRecognized,
            ),
            (
                CardError::Transport(TransportError::CardRemoved { reader: r() }).into(),
                ErrorKind::CardRemoved,
            ),
            (TransportError::NoCard { reader: r() }.into(), ErrorKind::NoCard),
            (TransportError::Sharing { reader: r() }.into(), ErrorKind::Busy),
            (
                TransportError::UnknownReader { name: r(), known: String::new() }.into(),
                ErrorKind::ReaderNotFound,
            ),
            (
                TransportError::Timeout {
                    reader: r(),
                    command: "x".into(),
                    after: std::time::Duration::from_secs(1),
                }
                .into(),
                ErrorKind::DeviceError,
            ),
        ];
        for (err, kind) in rows {
            assert_eq!(err.kind(), kind, "{err}");
        }
        let wrong: KspError = CardError::WrongPin { pin: PinId::USER, tries_left: None }.into();
        assert!(wrong.is_pin_failure());
        assert!(!KspError::NoCard { reader: r() }.is_pin_failure());
    }
}
