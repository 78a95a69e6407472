//! The one error type of the minidriver layer and the card profiles.

use scard_iso7816::StatusWord;
use scard_transport::TransportError;

use crate::types::PinId;

/// Errors of card modules. Variants carry the operation and what the card said, so a message
/// names both (DESIGN.md: one error enum per crate, structured data).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CardError {
    /// The reader or the channel failed (card removed, timeout, protocol error, ...).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The card refused an operation with a status word that has no more specific variant.
    #[error("{operation}: card answered {sw}")]
    Status { operation: &'static str, sw: StatusWord },
    /// The card's answer broke the profile's specification.
    #[error("{operation}: malformed card response: {reason}")]
    Malformed { operation: &'static str, reason: String },
    /// A PIN (or admin key) was wrong; the card counted one try.
    #[error("wrong {pin}{}", tries(*tries_left))]
    WrongPin { pin: PinId, tries_left: Option<u8> },
    /// A PIN is blocked (no tries left).
    #[error("{pin} is blocked")]
    PinBlocked { pin: PinId },
    /// A PIN was refused before anything was sent (length or character rules of the card).
    #[error("{pin} not sent to the card: {reason}")]
    PinFormat { pin: PinId, reason: String },
    /// The operation needs an authentication that is not (or no longer) there.
    #[error("{operation} needs {pin} to be verified first")]
    AuthRequired { operation: &'static str, pin: PinId },
    /// The card, its profile or its model does not do this (reported before any PIN is needed).
    #[error("{what} is not supported by this card ({model})")]
    Unsupported { what: String, model: String },
    /// A container index outside the card's containers.
    #[error("no container {index} on this card (it has {count})")]
    NoContainer { index: u8, count: usize },
    /// The container holds no key (or not of the asked key spec).
    #[error("container {index} has no {what}")]
    EmptyContainer { index: u8, what: &'static str },
    /// Every container holds a key.
    #[error("no free container")]
    NoFreeContainer,
    /// A file of the logical file system that does not exist.
    #[error("no file {path:?}")]
    FileNotFound { path: String },
    /// The card (or its model) is read-only.
    #[error("the card is read-only ({model})")]
    ReadOnly { model: String },
    /// A caller's argument that cannot be right (data length for a key, a bad file name, ...).
    #[error("invalid {what}: {reason}")]
    InvalidInput { what: &'static str, reason: String },
    /// A card-model TOML that does not load. Names file, line and field.
    #[error("{file}:{line}: {field}: {reason}")]
    Model { file: String, line: usize, field: String, reason: String },
    /// No profile recognised the card.
    #[error("no card profile for this card (ATR {atr}; probed {probed})")]
    UnknownCard { atr: String, probed: String },
    /// The card was reset (by another application or a reconnect) during an operation that
    /// depends on authentication: authenticate again, then repeat.
    #[error("{operation}: the card was reset and its authentication state lost")]
    CardReset { operation: &'static str },
    /// A codec error on card data (TLV, APDU).
    #[error("{operation}: {source}")]
    Codec { operation: &'static str, source: scard_iso7816::Error },
    /// A host-side cryptographic step failed (key encoding, padding check).
    #[error("{operation}: {reason}")]
    Crypto { operation: &'static str, reason: String },
    /// An I/O error of a host file (card models, the cache).
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

fn tries(tries_left: Option<u8>) -> String {
    match tries_left {
        Some(1) => ": 1 try left".to_owned(),
        Some(n) => format!(": {n} tries left"),
        None => ": the card did not say how many tries are left".to_owned(),
    }
}

impl CardError {
    /// Maps a status word of a card operation to the most specific error: `63Cx` and `6983`
    /// become PIN errors for `pin` (ISO/IEC 7816-4 §5.6, Table 6), `6982` an authentication
    /// requirement, everything else [`CardError::Status`].
    pub fn from_status(operation: &'static str, sw: StatusWord, pin: Option<PinId>) -> Self {
        match (sw.tries_left(), pin) {
            (Some(0), Some(pin)) => return Self::PinBlocked { pin },
            (Some(n), Some(pin)) => return Self::WrongPin { pin, tries_left: Some(n) },
            _ => {}
        }
        match (sw.0, pin) {
            // A wrong PIN whose answer does not carry a count (e.g. piv-authenticator's 6300).
            (0x6300, Some(pin)) => Self::WrongPin { pin, tries_left: None },
            (0x6983, Some(pin)) => Self::PinBlocked { pin },
            (0x6982, Some(pin)) => Self::AuthRequired { operation, pin },
            _ => Self::Status { operation, sw },
        }
    }

    /// Whether the card said "blocked" or "wrong" (a try was counted).
    pub fn is_pin_failure(&self) -> bool {
        matches!(self, Self::WrongPin { .. } | Self::PinBlocked { .. })
    }
}

/// Result type of this crate.
pub type Result<T, E = CardError> = std::result::Result<T, E>;
