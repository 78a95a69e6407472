//! The one error type of the transport layer.

use std::time::Duration;

/// Errors of readers and card connections. Every variant names the reader it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A reader name that does not parse.
    #[error("invalid reader name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    /// No reader of that name.
    #[error("no reader {name:?} (known: {known})")]
    UnknownReader { name: String, known: String },
    /// No reader has a card (when no reader was named).
    #[error("no reader with a card (readers: {known})")]
    NoCardAnywhere { known: String },
    /// The reader has no card.
    #[error("{reader}: no card present")]
    NoCard { reader: String },
    /// The card went away during the connection.
    #[error("{reader}: card removed")]
    CardRemoved { reader: String },
    /// The card was reset by someone else: drop authentication state, select again.
    #[error("{reader}: card was reset by another application; select again")]
    CardReset { reader: String },
    /// The card (or reader) did not answer in time.
    #[error("{reader}: no answer to {command} within {after:?}")]
    Timeout { reader: String, command: String, after: Duration },
    /// The peer broke its wire protocol.
    #[error("{reader}: protocol error: {reason}")]
    Protocol { reader: String, reason: String },
    /// An I/O error on the reader's channel.
    #[error("{reader}: {source}")]
    Io { reader: String, source: std::io::Error },
    /// The backend cannot do this.
    #[error("{reader}: {what} not supported")]
    Unsupported { reader: String, what: &'static str },
    /// A whole backend is unavailable (e.g. "PC/SC not available: libpcsclite.so.1 not found").
    #[error("{backend} not available: {reason}")]
    BackendUnavailable { backend: &'static str, reason: String },
    /// The card's answers to `command` (e.g. "GET DATA (INS CB)", from [`command_name`])
    /// broke ISO/IEC 7816-4 (more data than Ne, 61xx forever, no status word, ...).
    #[error("{reader}: {command}: {source}")]
    Card { reader: String, command: String, source: scard_iso7816::Error },
    /// Another connection holds the card exclusively.
    #[error("{reader}: card in use by another connection")]
    Sharing { reader: String },
    /// No reader of a group has a card (`group:<name>` instead of a reader name); `readers`
    /// lists the group's readers, or says it has none.
    #[error("no reader with a card in group {group} (its readers: {readers})")]
    NoCardInGroup { group: String, readers: String },
    /// Another driver or process holds the reader (pcscd's libccid has claimed the USB
    /// interface), or the operating system denies access to it; `detail` says which.
    #[error("{reader}: in use by another driver (pcscd?): {detail}")]
    ReaderInUse { reader: String, detail: String },
}

impl TransportError {
    /// Whether the error means the card is gone or was reset (the caller's session is over).
    pub fn ends_session(&self) -> bool {
        matches!(self, Self::CardRemoved { .. } | Self::CardReset { .. } | Self::NoCard { .. })
    }

    /// The reader the error concerns, when it concerns one reader.
    pub fn reader(&self) -> Option<&str> {
        match self {
            Self::NoCard { reader }
            | Self::CardRemoved { reader }
            | Self::CardReset { reader }
            | Self::Timeout { reader, .. }
            | Self::Protocol { reader, .. }
            | Self::Io { reader, .. }
            | Self::Unsupported { reader, .. }
            | Self::Card { reader, .. }
            | Self::Sharing { reader }
            | Self::ReaderInUse { reader, .. } => Some(reader),
            Self::InvalidName { .. }
            | Self::UnknownReader { .. }
            | Self::NoCardAnywhere { .. }
            | Self::BackendUnavailable { .. }
            | Self::NoCardInGroup { .. } => None,
        }
    }
}

/// A short name of a command APDU for error messages: its INS with the instruction name.
pub fn command_name(command: &[u8]) -> String {
    match command.get(1) {
        Some(ins) => {
            let ins = scard_iso7816::apdu::Ins(*ins);
            match ins.name() {
                Some(name) => format!("{name} (INS {ins})"),
                None => format!("INS {ins}"),
            }
        }
        None => "a malformed command".to_owned(),
    }
}
