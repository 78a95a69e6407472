//! The one error type of this crate. Every variant carries the data needed to say what was
//! wrong and where (offsets are absolute within the buffer given to the decoder).

use crate::status::StatusWord;

/// Errors of the ISO/IEC 7816 codec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ----- generic decoding (cursor) -----
    /// The input ended before a field was complete.
    #[error("{what}: truncated at offset {offset}: needed {needed} byte(s), {available} left")]
    Truncated { what: &'static str, offset: usize, needed: usize, available: usize },
    /// Bytes were left after a structure that must fill its buffer.
    #[error("{what}: {count} trailing byte(s) at offset {offset}")]
    TrailingBytes { what: &'static str, offset: usize, count: usize },
    /// Hex text that is not a whole number of hex bytes.
    #[error("invalid hex at character {offset}: {reason}")]
    InvalidHex { offset: usize, reason: &'static str },

    // ----- command APDU (ISO/IEC 7816-3 §12.1, 7816-4 §5.1) -----
    /// Fewer than the four header bytes CLA INS P1 P2.
    #[error("command APDU too short: {len} byte(s), the header alone is 4")]
    CommandTooShort { len: usize },
    /// The Lc field announces a data length that does not match the bytes that follow.
    #[error("Lc says {lc} data byte(s) but {available} byte(s) follow the Lc field")]
    LcMismatch { lc: usize, available: usize },
    /// An Le field of a length that no case allows, or bytes after Le.
    #[error("malformed Le field at offset {offset}: {reason}")]
    LeMalformed { offset: usize, reason: &'static str },
    /// The extended-length marker (a 00 byte where Lc or Le would begin) used wrongly.
    #[error("extended length marker misused at offset {offset}: {reason}")]
    ExtendedMarker { offset: usize, reason: &'static str },
    /// Command data longer than the 65535 bytes an extended Lc can carry.
    #[error("command data of {len} bytes exceeds the maximum of 65535")]
    DataTooLong { len: usize },
    /// Ne outside 1..=65536.
    #[error("Ne {ne} outside 1..=65536")]
    NeOutOfRange { ne: u32 },

    // ----- response APDU (ISO/IEC 7816-4 §5.1) -----
    /// Fewer than the two status bytes SW1 SW2.
    #[error("response APDU too short: {len} byte(s), SW1 SW2 alone are 2")]
    ResponseTooShort { len: usize },

    // ----- exchange engine -----
    /// The card returned more bytes than the command's Ne allowed.
    #[error("card returned {got} data byte(s), more than the {ne} the command allowed")]
    ResponseTooLong { ne: u32, got: usize },
    /// The card kept answering 61xx beyond the engine's bound.
    #[error("card answered 61xx {rounds} times: GET RESPONSE loop stopped")]
    GetResponseLoop { rounds: u16 },
    /// The card answered 6Cxx to a command that was already resent with its corrected Le.
    #[error("card answered {sw} again after the command was resent with the corrected Le")]
    WrongLengthLoop { sw: StatusWord },
    /// Command data longer than the card accepts and the card cannot chain.
    #[error("command data of {len} bytes exceeds the card's limit of {max} and chaining is off")]
    CommandTooLong { len: usize, max: usize },
    /// The command's CLA already has the chaining bit set, or its class cannot chain.
    #[error("CLA {cla:02X} cannot be chained: {reason}")]
    ChainingNotPossible { cla: u8, reason: &'static str },
    /// The engine was given a response after it had already finished.
    #[error("exchange already finished")]
    ExchangeFinished,
    /// Card limits that make no exchange possible.
    #[error("invalid card limits: {reason}")]
    InvalidLimits { reason: &'static str },

    // ----- TLV (ISO/IEC 7816-4 §5.2 BER-TLV and SIMPLE-TLV, §8.1.1 COMPACT-TLV) -----
    /// Tag number encoded in more bytes than allowed.
    #[error("tag at offset {offset} is longer than {max} bytes")]
    TagTooLong { offset: usize, max: usize },
    /// A tag that the encoding rules forbid (e.g. 00 or FF, or a padded subsequent byte).
    #[error("invalid tag at offset {offset}: {reason}")]
    InvalidTag { offset: usize, reason: &'static str },
    /// The indefinite length form 80 (not allowed in ISO/IEC 7816 BER-TLV).
    #[error("indefinite length at offset {offset} is not allowed")]
    IndefiniteLength { offset: usize },
    /// A length field longer than 4 bytes (81..84 are allowed).
    #[error("length field at offset {offset} uses {octets} subsequent bytes, at most 4 allowed")]
    LengthTooLong { offset: usize, octets: usize },
    /// A length in more bytes than needed, rejected unless the option allows it.
    #[error("non-minimal length encoding at offset {offset}")]
    NonMinimalLength { offset: usize },
    /// A length that runs past the end of its enclosing buffer.
    #[error("length {len} at offset {offset} runs past the end ({available} byte(s) left)")]
    LengthOverrun { offset: usize, len: usize, available: usize },
    /// Constructed objects nested deeper than the limit.
    #[error("TLV nesting deeper than {limit} levels at offset {offset}")]
    DepthExceeded { offset: usize, limit: usize },
    /// A value that does not fit the length field of the encoding asked for.
    #[error("value of {len} bytes does not fit a {encoding} length field")]
    ValueTooLong { len: usize, encoding: &'static str },

    // ----- ATR (ISO/IEC 7816-3 §8) -----
    /// An ATR shorter than TS T0.
    #[error("ATR too short: {len} byte(s)")]
    AtrTooShort { len: usize },
    /// An ATR longer than the 33 bytes ISO/IEC 7816-3 §8.2.1 allows.
    #[error("ATR too long: {len} bytes, at most 33")]
    AtrTooLong { len: usize },
    /// TS other than 3B (direct) or 3F (inverse).
    #[error("invalid TS byte {ts:02X}: expected 3B (direct) or 3F (inverse)")]
    InvalidTs { ts: u8 },
    /// The ATR ends before a byte that T0 or a TDi announces (ISO/IEC 7816-3 §8.2.2-§8.2.5).
    #[error("ATR truncated at offset {offset}: {missing} missing")]
    AtrTruncated { missing: crate::atr::AtrField, offset: usize },
    /// Historical bytes that do not follow the format their category indicator announces
    /// (ISO/IEC 7816-4 §8.1.1). Never raised by `Atr::parse`, only by `Atr::historical_info`.
    #[error("historical bytes malformed at offset {offset}: {reason}")]
    InvalidHistorical { offset: usize, reason: &'static str },
}
