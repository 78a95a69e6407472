//! The one error type of this crate. Variants carry what is needed to say what went wrong and
//! where: the slot, the CCID command, the reader's bError, offsets into the message.

use crate::message::{IccStatus, MessageType, SlotError};

/// What a USB transfer reported, as the shell maps it (a rusb shell maps `rusb::Error` here,
/// the simulated reader produces it directly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsbFailure {
    /// The transfer did not complete in time.
    Timeout,
    /// The endpoint stalled (or the request is not supported, for control transfers).
    Stall,
    /// The device is gone.
    NoDevice,
    /// The device sent more data than the buffer holds.
    Overflow,
    /// The operating system denied access to the device (permissions: a udev rule).
    Access,
    /// Another driver or process holds the interface (pcscd's libccid, a kernel driver).
    Busy,
    /// The operation is not supported on this platform or by the device.
    NotSupported,
    /// USB itself is unavailable (libusb could not be initialised: no usbfs, no USB stack).
    Unavailable,
    /// Any other I/O failure.
    Io,
}

impl core::fmt::Display for UsbFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Timeout => "timed out",
            Self::Stall => "stalled",
            Self::NoDevice => "device gone",
            Self::Overflow => "overflow",
            Self::Access => "access denied (insufficient permissions)",
            Self::Busy => "busy (claimed by another driver or process)",
            Self::NotSupported => "not supported",
            Self::Unavailable => "USB not available",
            Self::Io => "I/O error",
        })
    }
}

/// Which USB operation failed (for [`Error::Usb`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsbOperation {
    /// A bulk-out write of a command message.
    BulkOut,
    /// A bulk-in read of a response message.
    BulkIn,
    /// An interrupt-in read.
    InterruptIn,
    /// A control transfer (class request).
    Control,
    /// Initialising the USB library.
    Init,
    /// Listing the devices on the bus.
    Enumerate,
    /// Reading a device's descriptors (configuration, strings).
    Descriptor,
    /// Opening a device.
    Open,
    /// Detaching the kernel driver from an interface.
    DetachKernelDriver,
    /// Claiming an interface (or selecting its alternate setting).
    Claim,
}

/// Errors of the CCID driver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ----- decoding (cursor) -----
    /// The input ended before a field was complete.
    #[error("{what}: truncated at offset {offset}: needed {needed} byte(s), {available} left")]
    Truncated { what: &'static str, offset: usize, needed: usize, available: usize },
    /// Bytes were left after a structure that must fill its buffer.
    #[error("{what}: {count} trailing byte(s) at offset {offset}")]
    TrailingBytes { what: &'static str, offset: usize, count: usize },

    // ----- class descriptor (CCID §5.1) -----
    /// A descriptor field with a value the specification does not allow.
    #[error("CCID class descriptor: {field} = {value:#X}: {reason}")]
    InvalidDescriptor { field: &'static str, value: u32, reason: &'static str },
    /// No CCID class descriptor (type 21h, 54 bytes) among the interface's extra descriptors.
    #[error("no CCID class descriptor among the interface descriptors")]
    DescriptorNotFound,

    // ----- messages (CCID §6) -----
    /// A bulk-in message whose bMessageType is not an RDR_to_PC message.
    #[error("unknown bulk-in message type {found}")]
    UnknownMessageType { found: MessageType },
    /// A message whose dwLength does not match the bytes that follow the header.
    #[error("{message}: dwLength {declared} but {actual} byte(s) follow the header")]
    LengthMismatch { message: MessageType, declared: u32, actual: usize },
    /// A bulk-in message of the wrong type for the command it answers.
    #[error("slot {slot}: {found} does not answer {command}")]
    UnexpectedMessage { slot: u8, command: MessageType, found: MessageType },
    /// A response with a bSeq that was never sent (not an old, discarded one).
    #[error("slot {slot}: {command} sent with bSeq {expected}, response carries bSeq {found}")]
    SequenceMismatch { slot: u8, command: MessageType, expected: u8, found: u8 },
    /// More stale responses (old bSeq or another slot) than the configured bound.
    #[error("slot {slot}: {count} stale response(s) while waiting for the answer to {command}")]
    TooManyStaleResponses { slot: u8, command: MessageType, count: u32 },
    /// bStatus with the command status RFU value 11b.
    #[error("slot {slot}: {command}: bStatus {status:#04X} has an RFU command status")]
    InvalidStatus { slot: u8, command: MessageType, status: u8 },
    /// The reader reports the command failed (bmCommandStatus 01b).
    #[error("slot {slot}: {command} failed: bError {error}, ICC {icc:?}")]
    CommandFailed { slot: u8, command: MessageType, error: SlotError, icc: IccStatus },
    /// No card in the slot.
    #[error("slot {slot}: no card present ({command})")]
    CardAbsent { slot: u8, command: MessageType },
    /// The reader kept asking for more time (bStatus 80h) beyond the caller's cap.
    #[error("slot {slot}: {command}: time extension requested {count} time(s), cap reached")]
    TimeExtensionLimit { slot: u8, command: MessageType, count: u32 },
    /// The reader did not answer in time.
    #[error("slot {slot}: timeout waiting for the answer to {command}")]
    Timeout { slot: u8, command: MessageType },
    /// A USB transfer failed.
    #[error("USB {operation:?} failed: {failure}")]
    Usb { operation: UsbOperation, failure: UsbFailure },
    /// A USB operation on a particular device failed (opening, claiming, reading its
    /// descriptors).
    #[error(
        "USB device {vid:04x}:{pid:04x} (bus {bus} address {address}): {operation:?} failed: {failure}"
    )]
    UsbDevice {
        vid: u16,
        pid: u16,
        bus: u8,
        address: u8,
        operation: UsbOperation,
        failure: UsbFailure,
    },
    /// Chained extended APDU transfer out of order (CCID §6.1.4 wLevelParameter, §6.2.1
    /// bChainParameter).
    #[error("slot {slot}: bChainParameter {chain:#04X} not allowed here: {reason}")]
    ChainViolation { slot: u8, chain: u8, reason: &'static str },
    /// A response APDU shorter than SW1 SW2.
    #[error("slot {slot}: response of {len} byte(s), SW1 SW2 alone are 2")]
    ResponseTooShort { slot: u8, len: usize },
    /// A response (APDU or chained data) longer than the bound.
    #[error("slot {slot}: response longer than {max} bytes")]
    ResponseTooLong { slot: u8, max: usize },

    // ----- the slot engine -----
    /// Character-level readers (no exchange level bit in dwFeatures) are not supported.
    #[error("character-level readers are not supported")]
    CharacterLevelUnsupported,
    /// The slot index is beyond bMaxSlotIndex.
    #[error("slot {slot} does not exist (bMaxSlotIndex {max_slot_index})")]
    NoSuchSlot { slot: u8, max_slot_index: u8 },
    /// An operation was started while another one is still running on the slot.
    #[error("slot {slot}: {running} still in progress")]
    Busy { slot: u8, running: MessageType },
    /// A bulk-in message was given while no operation is running.
    #[error("slot {slot}: no operation in progress")]
    NoOperation { slot: u8 },
    /// The reader's interface is not claimed by this process (no connection holds it).
    #[error("the reader's USB interface is not claimed")]
    NotClaimed,
    /// The card is not powered (never powered on, powered off, or removed).
    #[error("slot {slot}: the card is not powered")]
    NotPowered { slot: u8 },
    /// The ATR in the reader's answer is not an ATR.
    #[error("slot {slot}: invalid ATR: {source}")]
    InvalidAtr {
        slot: u8,
        #[source]
        source: scard_iso7816::Error,
    },
    /// No protocol both the card (ATR) and the reader (dwProtocols) offer.
    #[error(
        "slot {slot}: no common protocol: card offers {card:?}, reader dwProtocols {reader:#X}"
    )]
    NoCommonProtocol { slot: u8, card: [bool; 2], reader: u32 },
    /// TA2 announces implicit transmission parameters, which a CCID cannot be told.
    #[error("slot {slot}: TA2 announces implicit parameters (specific mode)")]
    ImplicitParameters { slot: u8 },
    /// The card rejected or garbled the PPS exchange (ISO/IEC 7816-3 §9).
    #[error("slot {slot}: PPS exchange failed: sent {request:02X?}, card answered {response:02X?}")]
    PpsFailed { slot: u8, request: Vec<u8>, response: Vec<u8> },
    /// A command APDU the reader's exchange level cannot carry.
    #[error("slot {slot}: a {len}-byte command cannot be sent at this reader's level: {reason}")]
    CommandTooLong { slot: u8, len: usize, reason: &'static str },
    /// Data longer than the field that carries it.
    #[error("{what} of {len} bytes exceeds the maximum of {max}")]
    DataTooLong { what: &'static str, len: usize, max: usize },
    /// The command is not a valid APDU.
    #[error("invalid command APDU: {0}")]
    Apdu(scard_iso7816::Error),
    /// A command the reader does not announce (bPINSupport, dwMechanical ...).
    #[error("slot {slot}: the reader does not support {what}")]
    NotSupported { slot: u8, what: &'static str },

    // ----- T=0 (ISO/IEC 7816-3 §10, §12.2) -----
    /// A TPDU response shorter than SW1 SW2.
    #[error("T=0: TPDU response of {len} byte(s), SW1 SW2 alone are 2")]
    T0ResponseTooShort { len: usize },
    /// The card kept answering 61xx beyond the bound.
    #[error("T=0: card answered 61xx {rounds} times: GET RESPONSE loop stopped")]
    T0GetResponseLoop { rounds: u16 },
    /// The card answered 6Cxx twice in a row.
    #[error("T=0: card answered 6Cxx again after the resend")]
    T0WrongLengthLoop,
    /// A response TPDU was given after the exchange ended.
    #[error("T=0: the exchange is over")]
    T0Finished,
    /// The response assembled from TPDU responses is longer than the bound.
    #[error("T=0: response longer than {max} bytes")]
    T0ResponseTooLong { max: usize },
    /// Command data longer than a T=0 TPDU carries (255 bytes; ENVELOPE is not used).
    #[error(
        "T=0: command data of {nc} bytes exceeds 255 (extended APDUs need a T=1 or APDU-level reader)"
    )]
    T0CommandTooLong { nc: usize },

    // ----- T=1 (ISO/IEC 7816-3 §11) -----
    /// Resynchronisation failed after the allowed number of S(RESYNCH request)s.
    #[error("T=1: resynchronisation failed after {attempts} attempt(s)")]
    T1ResynchFailed { attempts: u8 },
    /// The card aborted the chain with S(ABORT request).
    #[error("T=1: the card aborted the exchange (S(ABORT request))")]
    T1CardAborted,
    /// The card asked for the retransmission of a block the driver cannot resend (the I-block
    /// the reader built for a PIN pad operation).
    #[error("T=1: the card asked for a block that cannot be retransmitted")]
    T1CannotRetransmit,
    /// An IFS value outside 1..=254 (ISO/IEC 7816-3 §11.4.2).
    #[error("T=1: invalid IFS {value}")]
    T1InvalidIfs { value: u16 },
    /// The engine was given a block while it was not waiting for one.
    #[error("T=1: no exchange in progress")]
    T1Idle,
    /// An exchange was started while another one is in progress.
    #[error("T=1: an exchange is already in progress")]
    T1Busy,
    /// A resynchronisation interrupted an exchange whose command is not repeated
    /// automatically (it may carry a PIN, or the reader built it).
    #[error(
        "T=1: the exchange was interrupted by a resynchronisation; the command was not repeated"
    )]
    T1Resynchronised,
    /// More blocks in one exchange than the bound (endless WTX or empty chained blocks).
    #[error("T=1: more than {blocks} blocks in one exchange")]
    T1ExchangeTooLong { blocks: u32 },
    /// The card's chained response is longer than the bound.
    #[error("T=1: response longer than {max} bytes")]
    T1ResponseTooLong { max: usize },
}

impl Error {
    /// Whether this error means the card is not there (absent, or removed during the command).
    pub fn is_card_absent(&self) -> bool {
        match self {
            Self::CardAbsent { .. } => true,
            Self::CommandFailed { icc, .. } => *icc == IccStatus::Absent,
            _ => false,
        }
    }

    /// Whether this error is a timeout (of the USB transfer, or the time extension cap).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. }
                | Self::TimeExtensionLimit { .. }
                | Self::Usb { failure: UsbFailure::Timeout, .. }
        )
    }
}

/// Decoding goes through scard-iso7816's cursor: its truncation and trailing-byte errors are
/// this crate's own; anything else from the codec is an APDU-level error.
impl From<scard_iso7816::Error> for Error {
    fn from(err: scard_iso7816::Error) -> Self {
        match err {
            scard_iso7816::Error::Truncated { what, offset, needed, available } => {
                Error::Truncated { what, offset, needed, available }
            }
            scard_iso7816::Error::TrailingBytes { what, offset, count } => {
                Error::TrailingBytes { what, offset, count }
            }
            other => Error::Apdu(other),
        }
    }
}
