//! CCID messages (CCID Rev 1.1 §6): the bulk-out commands PC_to_RDR_* (§6.1), the bulk-in
//! responses RDR_to_PC_* (§6.2), the interrupt-in messages (§6.3) and the class-specific
//! control requests (§5.3).
//!
//! Every bulk message starts with the same 10-byte header (§6.1, §6.2):
//!
//! ```text
//! offset 0  bMessageType
//! offset 1  dwLength      (u32 LE: length of abData)
//! offset 5  bSlot
//! offset 6  bSeq
//! offset 7  three message-specific bytes (bulk-in: bStatus, bError, one more)
//! offset 10 abData
//! ```
//!
//! Commands are encoded by [`Command::encode`], which cannot fail: the constructors of
//! [`Payload`] and the PIN structures enforce the limits. Responses are decoded by
//! [`Response::decode`], which never panics and rejects truncated or over-long messages. The
//! reader-side encoders in [`reply`] exist for the simulator, the tests and the fuzz
//! round trips.

use core::fmt;

use zeroize::Zeroizing;

use crate::descriptor::HEADER_LEN;
use crate::error::Error;
use scard_iso7816::cursor::Cursor;

/// The largest abData of a CCID message: dwMaxCCIDMessageLength is at most 65544 + 10
/// (CCID §5.1, extended APDU level).
pub const MAX_PAYLOAD: usize = 65544;

open_newtype! {
    /// bMessageType (CCID §6.1, §6.2, §6.3). Unknown values are kept.
    MessageType(u8), 4;
    /// 62h PC_to_RDR_IccPowerOn (§6.1.1).
    ICC_POWER_ON = 0x62, "PC_to_RDR_IccPowerOn";
    /// 63h PC_to_RDR_IccPowerOff (§6.1.2).
    ICC_POWER_OFF = 0x63, "PC_to_RDR_IccPowerOff";
    /// 65h PC_to_RDR_GetSlotStatus (§6.1.3).
    GET_SLOT_STATUS = 0x65, "PC_to_RDR_GetSlotStatus";
    /// 6Fh PC_to_RDR_XfrBlock (§6.1.4).
    XFR_BLOCK = 0x6F, "PC_to_RDR_XfrBlock";
    /// 6Ch PC_to_RDR_GetParameters (§6.1.5).
    GET_PARAMETERS = 0x6C, "PC_to_RDR_GetParameters";
    /// 6Dh PC_to_RDR_ResetParameters (§6.1.6).
    RESET_PARAMETERS = 0x6D, "PC_to_RDR_ResetParameters";
    /// 61h PC_to_RDR_SetParameters (§6.1.7).
    SET_PARAMETERS = 0x61, "PC_to_RDR_SetParameters";
    /// 6Bh PC_to_RDR_Escape (§6.1.8).
    ESCAPE = 0x6B, "PC_to_RDR_Escape";
    /// 6Eh PC_to_RDR_IccClock (§6.1.9).
    ICC_CLOCK = 0x6E, "PC_to_RDR_IccClock";
    /// 6Ah PC_to_RDR_T0APDU (§6.1.10).
    T0_APDU = 0x6A, "PC_to_RDR_T0APDU";
    /// 69h PC_to_RDR_Secure (§6.1.11).
    SECURE = 0x69, "PC_to_RDR_Secure";
    /// 71h PC_to_RDR_Mechanical (§6.1.12).
    MECHANICAL = 0x71, "PC_to_RDR_Mechanical";
    /// 72h PC_to_RDR_Abort (§6.1.13).
    ABORT = 0x72, "PC_to_RDR_Abort";
    /// 73h PC_to_RDR_SetDataRateAndClockFrequency (§6.1.14).
    SET_DATA_RATE_AND_CLOCK_FREQUENCY = 0x73, "PC_to_RDR_SetDataRateAndClockFrequency";
    /// 80h RDR_to_PC_DataBlock (§6.2.1).
    DATA_BLOCK = 0x80, "RDR_to_PC_DataBlock";
    /// 81h RDR_to_PC_SlotStatus (§6.2.2).
    SLOT_STATUS = 0x81, "RDR_to_PC_SlotStatus";
    /// 82h RDR_to_PC_Parameters (§6.2.3).
    PARAMETERS = 0x82, "RDR_to_PC_Parameters";
    /// 83h RDR_to_PC_Escape (§6.2.4).
    ESCAPE_RESPONSE = 0x83, "RDR_to_PC_Escape";
    /// 84h RDR_to_PC_DataRateAndClockFrequency (§6.2.5).
    DATA_RATE_AND_CLOCK_FREQUENCY = 0x84, "RDR_to_PC_DataRateAndClockFrequency";
    /// 50h RDR_to_PC_NotifySlotChange (§6.3.1).
    NOTIFY_SLOT_CHANGE = 0x50, "RDR_to_PC_NotifySlotChange";
    /// 51h RDR_to_PC_HardwareError (§6.3.2).
    HARDWARE_ERROR = 0x51, "RDR_to_PC_HardwareError";
}

impl MessageType {
    /// The response message type the reader sends for this command (CCID §6.1, table 6.1-1).
    pub fn response_type(self) -> Option<MessageType> {
        Some(match self {
            Self::ICC_POWER_ON | Self::XFR_BLOCK | Self::SECURE => Self::DATA_BLOCK,
            Self::ICC_POWER_OFF
            | Self::GET_SLOT_STATUS
            | Self::ICC_CLOCK
            | Self::T0_APDU
            | Self::MECHANICAL
            | Self::ABORT => Self::SLOT_STATUS,
            Self::GET_PARAMETERS | Self::RESET_PARAMETERS | Self::SET_PARAMETERS => {
                Self::PARAMETERS
            }
            Self::ESCAPE => Self::ESCAPE_RESPONSE,
            Self::SET_DATA_RATE_AND_CLOCK_FREQUENCY => Self::DATA_RATE_AND_CLOCK_FREQUENCY,
            _ => return None,
        })
    }
}

open_newtype! {
    /// bError, the slot error register (CCID §6.2.6 table 6.2-2). 01h..7Fh name the offset of
    /// the bad parameter in the command ([`SlotError::bad_parameter_offset`]); 81h..C0h are
    /// vendor defined. During a time extension bError is the waiting time multiplier instead.
    SlotError(u8), 4;
    /// FFh: the host aborted the current activity.
    CMD_ABORTED = 0xFF, "CMD_ABORTED";
    /// FEh: the CCID timed out while talking to the ICC.
    ICC_MUTE = 0xFE, "ICC_MUTE";
    /// FDh: parity error while talking to the ICC.
    XFR_PARITY_ERROR = 0xFD, "XFR_PARITY_ERROR";
    /// FCh: overrun error while talking to the ICC.
    XFR_OVERRUN = 0xFC, "XFR_OVERRUN";
    /// FBh: an all-inclusive hardware error during the activation.
    HW_ERROR = 0xFB, "HW_ERROR";
    /// F8h: invalid TS in the ATR.
    BAD_ATR_TS = 0xF8, "BAD_ATR_TS";
    /// F7h: wrong TCK in the ATR.
    BAD_ATR_TCK = 0xF7, "BAD_ATR_TCK";
    /// F6h: protocol not supported.
    ICC_PROTOCOL_NOT_SUPPORTED = 0xF6, "ICC_PROTOCOL_NOT_SUPPORTED";
    /// F5h: class (voltage) not supported.
    ICC_CLASS_NOT_SUPPORTED = 0xF5, "ICC_CLASS_NOT_SUPPORTED";
    /// F4h: procedure byte conflict (T=0).
    PROCEDURE_BYTE_CONFLICT = 0xF4, "PROCEDURE_BYTE_CONFLICT";
    /// F3h: deactivated protocol.
    DEACTIVATED_PROTOCOL = 0xF3, "DEACTIVATED_PROTOCOL";
    /// F2h: busy with an automatic sequence (automatic activation in progress).
    BUSY_WITH_AUTO_SEQUENCE = 0xF2, "BUSY_WITH_AUTO_SEQUENCE";
    /// F0h: PIN entry timed out.
    PIN_TIMEOUT = 0xF0, "PIN_TIMEOUT";
    /// EFh: PIN entry cancelled by the user.
    PIN_CANCELLED = 0xEF, "PIN_CANCELLED";
    /// E0h: a second command was sent to a slot already processing a command.
    CMD_SLOT_BUSY = 0xE0, "CMD_SLOT_BUSY";
    /// 00h: command not supported.
    CMD_NOT_SUPPORTED = 0x00, "CMD_NOT_SUPPORTED";
    /// 01h: bad dwLength (offset 1 of the command).
    BAD_LENGTH = 0x01, "bad dwLength";
    /// 05h: bad bSlot: the slot does not exist (offset 5 of the command).
    BAD_SLOT = 0x05, "slot does not exist";
    /// 07h: bad value at offset 7 (bPowerSelect, bProtocolNum, bClockCommand, ...).
    BAD_OFFSET_7 = 0x07, "bad parameter at offset 7";
    /// 08h: bad value at offset 8 (wLevelParameter, bClassGetResponse).
    BAD_OFFSET_8 = 0x08, "bad parameter at offset 8";
}

impl SlotError {
    /// For 01h..7Fh: the offset in the command of the field the reader rejected (§6.2.6).
    pub fn bad_parameter_offset(self) -> Option<u8> {
        (1..=0x7F).contains(&self.0).then_some(self.0)
    }

    /// 81h..C0h: a vendor-defined error (§6.2.6).
    pub fn is_user_defined(self) -> bool {
        (0x81..=0xC0).contains(&self.0)
    }
}

/// bmCommandStatus, bits 7-6 of bStatus (CCID §6.2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandStatus {
    /// 00b: processed without error.
    Processed,
    /// 01b: failed; bError says why.
    Failed,
    /// 10b: time extension requested; bError is the multiplier.
    TimeExtension,
    /// 11b: RFU.
    Rfu,
}

/// bmICCStatus, bits 1-0 of bStatus (CCID §6.2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IccStatus {
    /// 00b: an ICC is present and active (powered and reset).
    PresentActive,
    /// 01b: an ICC is present and inactive (not activated or shut down).
    PresentInactive,
    /// 10b: no ICC is present.
    Absent,
    /// 11b: RFU.
    Rfu,
}

/// bStatus of a bulk-in message (CCID §6.2.6): command status in bits 7-6, ICC status in bits
/// 1-0, bits 5-2 RFU.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Status(pub u8);

impl Status {
    /// Builds bStatus from its two fields.
    pub fn new(command: CommandStatus, icc: IccStatus) -> Self {
        let c = match command {
            CommandStatus::Processed => 0,
            CommandStatus::Failed => 1,
            CommandStatus::TimeExtension => 2,
            CommandStatus::Rfu => 3,
        };
        let i = match icc {
            IccStatus::PresentActive => 0,
            IccStatus::PresentInactive => 1,
            IccStatus::Absent => 2,
            IccStatus::Rfu => 3,
        };
        Self(c << 6 | i)
    }

    /// bmCommandStatus.
    pub fn command(self) -> CommandStatus {
        match self.0 >> 6 {
            0 => CommandStatus::Processed,
            1 => CommandStatus::Failed,
            2 => CommandStatus::TimeExtension,
            _ => CommandStatus::Rfu,
        }
    }

    /// bmICCStatus.
    pub fn icc(self) -> IccStatus {
        match self.0 & 0x03 {
            0 => IccStatus::PresentActive,
            1 => IccStatus::PresentInactive,
            2 => IccStatus::Absent,
            _ => IccStatus::Rfu,
        }
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Status({:#04X} {:?} {:?})", self.0, self.command(), self.icc())
    }
}

open_newtype! {
    /// bClockStatus of RDR_to_PC_SlotStatus (CCID §6.2.2).
    ClockStatus(u8), 4;
    /// 00h: clock running.
    RUNNING = 0x00, "running";
    /// 01h: clock stopped in state L.
    STOPPED_L = 0x01, "stopped in state L";
    /// 02h: clock stopped in state H.
    STOPPED_H = 0x02, "stopped in state H";
    /// 03h: clock stopped in an unknown state.
    STOPPED_UNKNOWN = 0x03, "stopped in an unknown state";
}

open_newtype! {
    /// wLevelParameter of PC_to_RDR_XfrBlock at extended APDU level (CCID §6.1.4).
    LevelParameter(u16), 6;
    /// 0000h: the command APDU begins and ends with this command.
    BEGIN_AND_END = 0x0000, "begins and ends";
    /// 0001h: the command APDU begins with this command and continues in the next.
    BEGIN = 0x0001, "begins, continues";
    /// 0002h: abData continues a command APDU and ends it.
    END = 0x0002, "continues, ends";
    /// 0003h: abData continues a command APDU and another block follows.
    CONTINUE = 0x0003, "continues, more follows";
    /// 0010h: empty abData; the continuation of the response APDU is expected.
    NEXT_RESPONSE = 0x0010, "next response block";
}

open_newtype! {
    /// bChainParameter of RDR_to_PC_DataBlock at extended APDU level (CCID §6.2.1).
    ChainParameter(u8), 4;
    /// 00h: the response APDU begins and ends in this message.
    BEGIN_AND_END = 0x00, "begins and ends";
    /// 01h: the response APDU begins with this message and is to continue.
    BEGIN = 0x01, "begins, continues";
    /// 02h: abData continues the response APDU and ends it.
    END = 0x02, "continues, ends";
    /// 03h: abData continues the response APDU and another block follows.
    CONTINUE = 0x03, "continues, more follows";
    /// 10h: empty abData; the continuation of the command APDU is expected.
    NEXT_COMMAND = 0x10, "next command block expected";
}

open_newtype! {
    /// bHardwareErrorCode of RDR_to_PC_HardwareError (CCID §6.3.2).
    HardwareErrorCode(u8), 4;
    /// 01h: overcurrent.
    OVERCURRENT = 0x01, "overcurrent";
}

/// bPowerSelect of PC_to_RDR_IccPowerOn (CCID §6.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PowerSelect {
    /// 00h: automatic voltage selection.
    Automatic,
    /// 01h: 5.0 V (class A).
    V5_0,
    /// 02h: 3.0 V (class B).
    V3_0,
    /// 03h: 1.8 V (class C).
    V1_8,
}

impl PowerSelect {
    /// The bPowerSelect byte.
    pub fn byte(self) -> u8 {
        match self {
            Self::Automatic => 0,
            Self::V5_0 => 1,
            Self::V3_0 => 2,
            Self::V1_8 => 3,
        }
    }

    /// The bPowerSelect for a byte (bits outside 0..=3 are not a selection).
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Automatic,
            1 => Self::V5_0,
            2 => Self::V3_0,
            3 => Self::V1_8,
            _ => return None,
        })
    }

    /// The bVoltageSupport bit of this voltage (none for automatic).
    pub fn support_bit(self) -> u8 {
        match self {
            Self::Automatic => 0,
            Self::V5_0 => 0x01,
            Self::V3_0 => 0x02,
            Self::V1_8 => 0x04,
        }
    }

    /// The class indicator bit of ISO/IEC 7816-3 §8.3 table 10 (A 01h, B 02h, C 04h).
    pub fn class_bit(self) -> u8 {
        self.support_bit()
    }
}

/// bClockCommand of PC_to_RDR_IccClock (CCID §6.1.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClockCommand {
    /// 00h: restart the clock.
    Restart,
    /// 01h: stop the clock in the state of bClockStop.
    Stop,
}

/// bFunction of PC_to_RDR_Mechanical (CCID §6.1.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MechanicalFunction {
    /// 01h: accept card.
    Accept,
    /// 02h: eject card.
    Eject,
    /// 03h: capture card.
    Capture,
    /// 04h: lock card.
    Lock,
    /// 05h: unlock card.
    Unlock,
}

impl MechanicalFunction {
    fn byte(self) -> u8 {
        match self {
            Self::Accept => 1,
            Self::Eject => 2,
            Self::Capture => 3,
            Self::Lock => 4,
            Self::Unlock => 5,
        }
    }
}

/// abData of a command: at most [`MAX_PAYLOAD`] bytes, zeroized on drop (it may hold a PIN).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Payload(Zeroizing<Vec<u8>>);

impl Payload {
    /// Wraps `data`; fails when longer than [`MAX_PAYLOAD`].
    pub fn new(data: impl Into<Vec<u8>>) -> Result<Self, Error> {
        let data = Zeroizing::new(data.into());
        if data.len() > MAX_PAYLOAD {
            return Err(Error::DataTooLong { what: "abData", len: data.len(), max: MAX_PAYLOAD });
        }
        Ok(Self(data))
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// The length.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the bytes: they may be a VERIFY with a PIN.
        write!(f, "Payload({} bytes)", self.0.len())
    }
}

/// The protocol data structure for T=0 (CCID §6.1.7 table 6.1-4 (SetParameters), §6.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct T0Parameters {
    /// bmFindexDindex: FI in bits 7-4, DI in bits 3-0 (TA1 or 11h).
    pub findex_dindex: u8,
    /// bmTCCKST0: bit 1 is the convention (1 inverse); the other bits are 0.
    pub tcck: u8,
    /// bGuardTimeT0: extra guard time (TC1).
    pub guard_time: u8,
    /// bWaitingIntegerT0: WI (TC2, default 0Ah).
    pub waiting_integer: u8,
    /// bClockStop: 00h not allowed, 01h stop with clock L, 02h with clock H, 03h either.
    pub clock_stop: u8,
}

/// The protocol data structure for T=1 (CCID §6.1.7 table 6.1-5, §6.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct T1Parameters {
    /// bmFindexDindex.
    pub findex_dindex: u8,
    /// bmTCCKST1: 10h | bit 1 convention (1 inverse) | bit 0 checksum (1 CRC).
    pub tcck: u8,
    /// bGuardTimeT1 (TC1).
    pub guard_time: u8,
    /// bmWaitingIntegersT1: BWI in bits 7-4, CWI in bits 3-0 (first TB for T=1, default 4Dh).
    pub waiting_integers: u8,
    /// bClockStop.
    pub clock_stop: u8,
    /// bIFSC (first TA for T=1, default 20h).
    pub ifsc: u8,
    /// bNadValue.
    pub nad: u8,
}

/// abProtocolDataStructure with its bProtocolNum (CCID §6.1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolData {
    /// bProtocolNum 00h, 5 bytes.
    T0(T0Parameters),
    /// bProtocolNum 01h, 7 bytes.
    T1(T1Parameters),
}

impl ProtocolData {
    /// bProtocolNum.
    pub fn protocol(&self) -> u8 {
        match self {
            Self::T0(_) => 0,
            Self::T1(_) => 1,
        }
    }

    /// abProtocolDataStructure.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::T0(p) => {
                vec![p.findex_dindex, p.tcck, p.guard_time, p.waiting_integer, p.clock_stop]
            }
            Self::T1(p) => vec![
                p.findex_dindex,
                p.tcck,
                p.guard_time,
                p.waiting_integers,
                p.clock_stop,
                p.ifsc,
                p.nad,
            ],
        }
    }

    /// Decodes abProtocolDataStructure for `protocol` (0 or 1): exactly 5 or 7 bytes.
    pub fn decode(protocol: u8, data: &[u8]) -> Result<Self, Error> {
        let mut c = Cursor::new(data);
        let parsed = match protocol {
            0 => {
                let [findex_dindex, tcck, guard_time, waiting_integer, clock_stop] =
                    c.take_array::<5>("T=0 protocol data")?;
                Self::T0(T0Parameters {
                    findex_dindex,
                    tcck,
                    guard_time,
                    waiting_integer,
                    clock_stop,
                })
            }
            1 => {
                let [findex_dindex, tcck, guard_time, waiting_integers, clock_stop, ifsc, nad] =
                    c.take_array::<7>("T=1 protocol data")?;
                Self::T1(T1Parameters {
                    findex_dindex,
                    tcck,
                    guard_time,
                    waiting_integers,
                    clock_stop,
                    ifsc,
                    nad,
                })
            }
            _ => {
                return Err(Error::InvalidDescriptor {
                    field: "bProtocolNum",
                    value: protocol.into(),
                    reason: "only T=0 (00h) and T=1 (01h) have a protocol data structure",
                });
            }
        };
        c.finish("protocol data")?;
        Ok(parsed)
    }
}

/// The fields PIN verification and modification share (CCID §6.1.11.7, §6.1.11.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PinFormat {
    /// bTimeOut: seconds to wait for the first key (00h: reader default).
    pub timeout: u8,
    /// bmFormatString: bit 7 unit (1 byte, 0 bit), bits 6-3 PIN position, bit 2 justification
    /// (1 right), bits 1-0 format (00 binary, 01 BCD, 10 ASCII).
    pub format_string: u8,
    /// bmPINBlockString: bits 7-4 PIN length size in bits, bits 3-0 PIN block size in bytes.
    pub pin_block_string: u8,
    /// bmPINLengthFormat: bit 4 unit, bits 3-0 PIN length position.
    pub pin_length_format: u8,
    /// Minimum PIN size in digits (XX of wPINMaxExtraDigit).
    pub min_digits: u8,
    /// Maximum PIN size in digits (YY of wPINMaxExtraDigit).
    pub max_digits: u8,
    /// bEntryValidationCondition: 01h max size reached, 02h validation key, 04h timeout.
    pub entry_validation: u8,
    /// wLangId for the messages.
    pub lang_id: u16,
}

/// The APDU template of a PIN structure (abPINApdu, or an empty T=1 prologue): at most
/// [`MAX_PAYLOAD`] - 64 bytes, so the whole Secure message always fits.
#[derive(Clone, PartialEq, Eq)]
pub struct PinApdu(Zeroizing<Vec<u8>>);

impl PinApdu {
    /// Wraps the APDU the reader completes with the PIN.
    pub fn new(apdu: impl Into<Vec<u8>>) -> Result<Self, Error> {
        let apdu = Zeroizing::new(apdu.into());
        let max = MAX_PAYLOAD - 64;
        if apdu.len() > max {
            return Err(Error::DataTooLong { what: "abPINApdu", len: apdu.len(), max });
        }
        Ok(Self(apdu))
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for PinApdu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PinApdu({} bytes)", self.0.len())
    }
}

/// The PIN Verification Data Structure (CCID §6.1.11.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinVerify {
    /// The shared fields.
    pub format: PinFormat,
    /// bNumberMessage: 00h none, 01h one, FFh the reader's default.
    pub number_message: u8,
    /// bMsgIndex.
    pub msg_index: u8,
    /// bTeoPrologue: the T=1 prologue (NAD PCB LEN) the reader uses at TPDU level T=1; the
    /// slot engine fills it.
    pub teo_prologue: [u8; 3],
    /// abPINApdu.
    pub apdu: PinApdu,
}

/// The PIN Modification Data Structure (CCID §6.1.11.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinModify {
    /// The shared fields.
    pub format: PinFormat,
    /// bInsertionOffsetOld: where the current PIN goes in the APDU data.
    pub insertion_offset_old: u8,
    /// bInsertionOffsetNew: where the new PIN goes.
    pub insertion_offset_new: u8,
    /// bConfirmPIN: bit 0 confirm the new PIN, bit 1 enter the current PIN.
    pub confirm_pin: u8,
    /// bNumberMessage: 00h..03h, FFh the reader's default.
    pub number_message: u8,
    /// bMsgIndex1, bMsgIndex2, bMsgIndex3. As libccid reads §6.1.11.8, bMsgIndex2 is sent
    /// only when bNumberMessage is not 0 and bMsgIndex3 only when it is 3 or more.
    pub msg_index: [u8; 3],
    /// bTeoPrologue.
    pub teo_prologue: [u8; 3],
    /// abPINApdu.
    pub apdu: PinApdu,
}

/// bPINOperation and its data (CCID §6.1.11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinOperation {
    /// 00h: PIN verification.
    Verify(PinVerify),
    /// 01h: PIN modification.
    Modify(PinModify),
    /// 02h: transfer the PIN from the reader's cache.
    TransferPin,
    /// 03h: wait for the ICC response.
    WaitIccResponse,
    /// 04h: cancel the PIN function.
    Cancel,
    /// 05h: resend the last I-block (T=1).
    ResendIBlock,
    /// 06h: send the next part of the APDU (T=1).
    SendNextApduPart,
}

fn push_format(out: &mut Vec<u8>, f: &PinFormat) {
    out.extend_from_slice(&[f.timeout, f.format_string, f.pin_block_string, f.pin_length_format]);
}

impl PinOperation {
    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            // §6.1.11.7: bTimeOut bmFormatString bmPINBlockString bmPINLengthFormat
            // wPINMaxExtraDigit bEntryValidationCondition bNumberMessage wLangId bMsgIndex
            // bTeoPrologue abPINApdu.
            Self::Verify(v) => {
                out.push(0x00);
                push_format(out, &v.format);
                // wPINMaxExtraDigit = XXYY (min, max), little endian on the wire.
                out.extend_from_slice(&[v.format.max_digits, v.format.min_digits]);
                out.extend_from_slice(&[v.format.entry_validation, v.number_message]);
                out.extend_from_slice(&v.format.lang_id.to_le_bytes());
                out.push(v.msg_index);
                out.extend_from_slice(&v.teo_prologue);
                out.extend_from_slice(v.apdu.as_slice());
            }
            // §6.1.11.8: ... bInsertionOffsetOld bInsertionOffsetNew wPINMaxExtraDigit
            // bConfirmPIN bEntryValidationCondition bNumberMessage wLangId bMsgIndex1
            // [bMsgIndex2] [bMsgIndex3] bTeoPrologue abPINApdu.
            Self::Modify(m) => {
                out.push(0x01);
                push_format(out, &m.format);
                out.extend_from_slice(&[m.insertion_offset_old, m.insertion_offset_new]);
                out.extend_from_slice(&[m.format.max_digits, m.format.min_digits]);
                out.extend_from_slice(&[
                    m.confirm_pin,
                    m.format.entry_validation,
                    m.number_message,
                ]);
                out.extend_from_slice(&m.format.lang_id.to_le_bytes());
                let [i1, i2, i3] = m.msg_index;
                out.push(i1);
                if m.number_message != 0 {
                    out.push(i2);
                }
                if m.number_message >= 3 {
                    out.push(i3);
                }
                out.extend_from_slice(&m.teo_prologue);
                out.extend_from_slice(m.apdu.as_slice());
            }
            Self::TransferPin => out.push(0x02),
            Self::WaitIccResponse => out.push(0x03),
            Self::Cancel => out.push(0x04),
            Self::ResendIBlock => out.push(0x05),
            Self::SendNextApduPart => out.push(0x06),
        }
    }
}

/// A PC_to_RDR command (CCID §6.1), without bSlot and bSeq (given to [`Command::encode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// §6.1.1 PC_to_RDR_IccPowerOn.
    IccPowerOn(PowerSelect),
    /// §6.1.2 PC_to_RDR_IccPowerOff.
    IccPowerOff,
    /// §6.1.3 PC_to_RDR_GetSlotStatus.
    GetSlotStatus,
    /// §6.1.4 PC_to_RDR_XfrBlock.
    XfrBlock {
        /// bBWI: multiplier of the block waiting time for this transfer (T=1 WTX).
        bwi: u8,
        /// wLevelParameter (extended APDU chaining; expected length at character level).
        level: LevelParameter,
        /// abData: a TPDU, a T=1 block or (part of) an APDU.
        data: Payload,
    },
    /// §6.1.5 PC_to_RDR_GetParameters.
    GetParameters,
    /// §6.1.6 PC_to_RDR_ResetParameters.
    ResetParameters,
    /// §6.1.7 PC_to_RDR_SetParameters.
    SetParameters(ProtocolData),
    /// §6.1.8 PC_to_RDR_Escape.
    Escape(Payload),
    /// §6.1.9 PC_to_RDR_IccClock.
    IccClock(ClockCommand),
    /// §6.1.10 PC_to_RDR_T0APDU.
    T0Apdu {
        /// bmChanges: bit 0 take bClassGetResponse, bit 1 take bClassEnvelope.
        changes: u8,
        /// bClassGetResponse.
        class_get_response: u8,
        /// bClassEnvelope.
        class_envelope: u8,
    },
    /// §6.1.11 PC_to_RDR_Secure.
    Secure {
        /// bBWI.
        bwi: u8,
        /// wLevelParameter.
        level: LevelParameter,
        /// bPINOperation and abPINDataStructure.
        operation: Box<PinOperation>,
    },
    /// §6.1.12 PC_to_RDR_Mechanical.
    Mechanical(MechanicalFunction),
    /// §6.1.13 PC_to_RDR_Abort.
    Abort,
    /// §6.1.14 PC_to_RDR_SetDataRateAndClockFrequency.
    SetDataRateAndClockFrequency {
        /// dwClockFrequency in kHz.
        clock_khz: u32,
        /// dwDataRate in bps.
        data_rate_bps: u32,
    },
}

impl Command {
    /// bMessageType.
    pub fn message_type(&self) -> MessageType {
        match self {
            Self::IccPowerOn(_) => MessageType::ICC_POWER_ON,
            Self::IccPowerOff => MessageType::ICC_POWER_OFF,
            Self::GetSlotStatus => MessageType::GET_SLOT_STATUS,
            Self::XfrBlock { .. } => MessageType::XFR_BLOCK,
            Self::GetParameters => MessageType::GET_PARAMETERS,
            Self::ResetParameters => MessageType::RESET_PARAMETERS,
            Self::SetParameters(_) => MessageType::SET_PARAMETERS,
            Self::Escape(_) => MessageType::ESCAPE,
            Self::IccClock(_) => MessageType::ICC_CLOCK,
            Self::T0Apdu { .. } => MessageType::T0_APDU,
            Self::Secure { .. } => MessageType::SECURE,
            Self::Mechanical(_) => MessageType::MECHANICAL,
            Self::Abort => MessageType::ABORT,
            Self::SetDataRateAndClockFrequency { .. } => {
                MessageType::SET_DATA_RATE_AND_CLOCK_FREQUENCY
            }
        }
    }

    /// The message for slot `slot` with sequence number `seq` (CCID §6.1): the 10-byte
    /// header and abData. Zeroized on drop: abData may hold a PIN.
    pub fn encode(&self, slot: u8, seq: u8) -> Zeroizing<Vec<u8>> {
        let mut data: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::new());
        // Offsets 7..10: the three message-specific bytes.
        let specific: [u8; 3] = match self {
            Self::IccPowerOn(power) => [power.byte(), 0, 0],
            Self::XfrBlock { bwi, level, data: payload } => {
                data.extend_from_slice(payload.as_slice());
                let [lo, hi] = level.0.to_le_bytes();
                [*bwi, lo, hi]
            }
            Self::SetParameters(params) => {
                data.extend_from_slice(&params.to_bytes());
                [params.protocol(), 0, 0]
            }
            Self::Escape(payload) => {
                data.extend_from_slice(payload.as_slice());
                [0, 0, 0]
            }
            Self::IccClock(cmd) => [u8::from(*cmd == ClockCommand::Stop), 0, 0],
            Self::T0Apdu { changes, class_get_response, class_envelope } => {
                [*changes, *class_get_response, *class_envelope]
            }
            Self::Secure { bwi, level, operation } => {
                operation.encode_into(&mut data);
                let [lo, hi] = level.0.to_le_bytes();
                [*bwi, lo, hi]
            }
            Self::Mechanical(function) => [function.byte(), 0, 0],
            Self::SetDataRateAndClockFrequency { clock_khz, data_rate_bps } => {
                data.extend_from_slice(&clock_khz.to_le_bytes());
                data.extend_from_slice(&data_rate_bps.to_le_bytes());
                [0, 0, 0]
            }
            Self::IccPowerOff
            | Self::GetSlotStatus
            | Self::GetParameters
            | Self::ResetParameters
            | Self::Abort => [0, 0, 0],
        };
        let mut out = Zeroizing::new(Vec::with_capacity(HEADER_LEN + data.len()));
        out.push(self.message_type().0);
        // Bounded by MAX_PAYLOAD through the constructors of Payload and PinApdu.
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&[slot, seq]);
        out.extend_from_slice(&specific);
        out.extend_from_slice(&data);
        out
    }
}

/// A decoded bulk-out command header (the reader's view; used by the simulator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandHeader {
    /// bMessageType.
    pub message_type: MessageType,
    /// bSlot.
    pub slot: u8,
    /// bSeq.
    pub seq: u8,
    /// The three message-specific bytes at offsets 7..10.
    pub specific: [u8; 3],
}

/// Splits a bulk-out message into its header and abData (dwLength must match).
pub fn decode_command(bytes: &[u8]) -> Result<(CommandHeader, &[u8]), Error> {
    let mut c = Cursor::new(bytes);
    let message_type = MessageType(c.take_u8("bMessageType")?);
    let length = c.take_u32_le("dwLength")?;
    let slot = c.take_u8("bSlot")?;
    let seq = c.take_u8("bSeq")?;
    let specific = c.take_array::<3>("message-specific bytes")?;
    let data = c.take_rest();
    if usize::try_from(length).ok() != Some(data.len()) {
        return Err(Error::LengthMismatch {
            message: message_type,
            declared: length,
            actual: data.len(),
        });
    }
    Ok((CommandHeader { message_type, slot, seq, specific }, data))
}

/// Decoding choices for bulk-in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DecodeOptions {
    /// Named quirk of QEMU's usb-ccid up to 7.2: RDR_to_PC_Parameters with dwLength 0 followed
    /// by the 5 or 7 bytes of the protocol data (../shared/qemu-ccid.md §5). When set, such a
    /// message decodes with those bytes as abProtocolDataStructure.
    pub parameters_length_zero: bool,
}

/// The body of a bulk-in message, by bMessageType (CCID §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'a> {
    /// §6.2.1 RDR_to_PC_DataBlock.
    DataBlock {
        /// bChainParameter.
        chain: ChainParameter,
        /// abData: the ATR, a TPDU response, a T=1 block or (part of) a response APDU.
        data: &'a [u8],
    },
    /// §6.2.2 RDR_to_PC_SlotStatus.
    SlotStatus {
        /// bClockStatus.
        clock: ClockStatus,
    },
    /// §6.2.3 RDR_to_PC_Parameters.
    Parameters {
        /// bProtocolNum.
        protocol: u8,
        /// abProtocolDataStructure (empty when the command failed).
        data: &'a [u8],
    },
    /// §6.2.4 RDR_to_PC_Escape.
    Escape {
        /// abData.
        data: &'a [u8],
    },
    /// §6.2.5 RDR_to_PC_DataRateAndClockFrequency.
    DataRateAndClockFrequency {
        /// dwClockFrequency (kHz) and dwDataRate (bps); `None` when dwLength is 0.
        values: Option<(u32, u32)>,
    },
}

/// A decoded bulk-in message (CCID §6.2); built only by [`Response::decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'a> {
    message_type: MessageType,
    slot: u8,
    seq: u8,
    status: Status,
    error: SlotError,
    /// The byte at offset 9 as received (RFU for Escape and DataRateAndClockFrequency).
    specific: u8,
    body: Body<'a>,
}

impl<'a> Response<'a> {
    /// Decodes a bulk-in message strictly: a 10-byte header, dwLength equal to the bytes that
    /// follow, a known RDR_to_PC message type.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, Error> {
        Self::decode_with(bytes, DecodeOptions::default())
    }

    /// Decodes with the given options (named reader quirks).
    pub fn decode_with(bytes: &'a [u8], options: DecodeOptions) -> Result<Self, Error> {
        let mut c = Cursor::new(bytes);
        // §6.2: offset 0 bMessageType, 1 dwLength, 5 bSlot, 6 bSeq, 7 bStatus, 8 bError, 9 one
        // message-specific byte.
        let message_type = MessageType(c.take_u8("bMessageType")?);
        let length = c.take_u32_le("dwLength")?;
        let slot = c.take_u8("bSlot")?;
        let seq = c.take_u8("bSeq")?;
        let status = Status(c.take_u8("bStatus")?);
        let error = SlotError(c.take_u8("bError")?);
        let specific = c.take_u8("message-specific byte")?;
        let data = c.take_rest();
        if usize::try_from(length).ok() != Some(data.len()) {
            let quirk = options.parameters_length_zero
                && message_type == MessageType::PARAMETERS
                && length == 0
                && matches!(data.len(), 5 | 7);
            if !quirk {
                return Err(Error::LengthMismatch {
                    message: message_type,
                    declared: length,
                    actual: data.len(),
                });
            }
        }
        let body = match message_type {
            MessageType::DATA_BLOCK => Body::DataBlock { chain: ChainParameter(specific), data },
            MessageType::SLOT_STATUS => {
                // §6.2.2: dwLength is 0.
                if !data.is_empty() {
                    return Err(Error::TrailingBytes {
                        what: "RDR_to_PC_SlotStatus",
                        offset: HEADER_LEN,
                        count: data.len(),
                    });
                }
                Body::SlotStatus { clock: ClockStatus(specific) }
            }
            MessageType::PARAMETERS => Body::Parameters { protocol: specific, data },
            MessageType::ESCAPE_RESPONSE => Body::Escape { data },
            MessageType::DATA_RATE_AND_CLOCK_FREQUENCY => {
                // §6.2.5: dwLength 8: dwClockFrequency, dwDataRate.
                let values = if data.is_empty() {
                    None
                } else {
                    let mut d = Cursor::new(data);
                    let clock = d.take_u32_le("dwClockFrequency")?;
                    let rate = d.take_u32_le("dwDataRate")?;
                    d.finish("RDR_to_PC_DataRateAndClockFrequency")?;
                    Some((clock, rate))
                };
                Body::DataRateAndClockFrequency { values }
            }
            found => return Err(Error::UnknownMessageType { found }),
        };
        Ok(Self { message_type, slot, seq, status, error, specific, body })
    }

    /// bMessageType.
    pub fn message_type(&self) -> MessageType {
        self.message_type
    }
    /// bSlot.
    pub fn slot(&self) -> u8 {
        self.slot
    }
    /// bSeq.
    pub fn seq(&self) -> u8 {
        self.seq
    }
    /// bStatus.
    pub fn status(&self) -> Status {
        self.status
    }
    /// bError.
    pub fn error(&self) -> SlotError {
        self.error
    }
    /// The byte at offset 9 as received (bChainParameter, bClockStatus, bProtocolNum, or RFU).
    pub fn specific(&self) -> u8 {
        self.specific
    }
    /// The message-specific part.
    pub fn body(&self) -> &Body<'a> {
        &self.body
    }

    /// Re-encodes the message (the inverse of [`Response::decode`]).
    pub fn encode(&self) -> Vec<u8> {
        let header = |specific: u8| ReplyHeader {
            message_type: self.message_type,
            slot: self.slot,
            seq: self.seq,
            status: self.status,
            error: self.error,
            specific,
        };
        match self.body {
            Body::DataBlock { chain, data } => header(chain.0).encode(data),
            Body::SlotStatus { clock } => header(clock.0).encode(&[]),
            Body::Parameters { protocol, data } => header(protocol).encode(data),
            Body::Escape { data } => header(self.specific).encode(data),
            Body::DataRateAndClockFrequency { values } => {
                let mut d = Vec::new();
                if let Some((clock, rate)) = values {
                    d.extend_from_slice(&clock.to_le_bytes());
                    d.extend_from_slice(&rate.to_le_bytes());
                }
                header(self.specific).encode(&d)
            }
        }
    }
}

/// The header of a bulk-in message, for the reader-side encoders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader {
    /// bMessageType.
    pub message_type: MessageType,
    /// bSlot.
    pub slot: u8,
    /// bSeq.
    pub seq: u8,
    /// bStatus.
    pub status: Status,
    /// bError.
    pub error: SlotError,
    /// The message-specific byte at offset 9.
    pub specific: u8,
}

impl ReplyHeader {
    /// The message with `data` as abData.
    pub fn encode(&self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + data.len());
        out.push(self.message_type.0);
        out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&[self.slot, self.seq, self.status.0, self.error.0, self.specific]);
        out.extend_from_slice(data);
        out
    }
}

/// Reader-side encoders of bulk-in messages (for the simulator and tests).
pub mod reply {
    use super::*;

    /// RDR_to_PC_DataBlock (§6.2.1).
    pub fn data_block(
        slot: u8,
        seq: u8,
        status: Status,
        error: SlotError,
        chain: ChainParameter,
        data: &[u8],
    ) -> Vec<u8> {
        ReplyHeader {
            message_type: MessageType::DATA_BLOCK,
            slot,
            seq,
            status,
            error,
            specific: chain.0,
        }
        .encode(data)
    }

    /// RDR_to_PC_SlotStatus (§6.2.2).
    pub fn slot_status(
        slot: u8,
        seq: u8,
        status: Status,
        error: SlotError,
        clock: ClockStatus,
    ) -> Vec<u8> {
        ReplyHeader {
            message_type: MessageType::SLOT_STATUS,
            slot,
            seq,
            status,
            error,
            specific: clock.0,
        }
        .encode(&[])
    }

    /// RDR_to_PC_Parameters (§6.2.3).
    pub fn parameters(
        slot: u8,
        seq: u8,
        status: Status,
        error: SlotError,
        data: Option<&ProtocolData>,
    ) -> Vec<u8> {
        let (protocol, bytes) = data.map_or((0, Vec::new()), |d| (d.protocol(), d.to_bytes()));
        ReplyHeader {
            message_type: MessageType::PARAMETERS,
            slot,
            seq,
            status,
            error,
            specific: protocol,
        }
        .encode(&bytes)
    }

    /// RDR_to_PC_Escape (§6.2.4).
    pub fn escape(slot: u8, seq: u8, status: Status, error: SlotError, data: &[u8]) -> Vec<u8> {
        ReplyHeader {
            message_type: MessageType::ESCAPE_RESPONSE,
            slot,
            seq,
            status,
            error,
            specific: 0,
        }
        .encode(data)
    }

    /// RDR_to_PC_DataRateAndClockFrequency (§6.2.5).
    pub fn data_rate_and_clock(
        slot: u8,
        seq: u8,
        status: Status,
        error: SlotError,
        clock_khz: u32,
        rate_bps: u32,
    ) -> Vec<u8> {
        let mut d = clock_khz.to_le_bytes().to_vec();
        d.extend_from_slice(&rate_bps.to_le_bytes());
        ReplyHeader {
            message_type: MessageType::DATA_RATE_AND_CLOCK_FREQUENCY,
            slot,
            seq,
            status,
            error,
            specific: 0,
        }
        .encode(&d)
    }
}

/// The state of one slot in RDR_to_PC_NotifySlotChange (CCID §6.3.1: two bits per slot, bit 0
/// the current state (1 present), bit 1 changed since the last message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlotChange {
    /// The slot index.
    pub slot: u8,
    /// A card is present now.
    pub present: bool,
    /// The state changed since the last NotifySlotChange.
    pub changed: bool,
}

/// An interrupt-in message (CCID §6.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interrupt {
    /// §6.3.1 RDR_to_PC_NotifySlotChange: bmSlotICCState, two bits per slot, slot 0 in the
    /// low bits of the first byte.
    NotifySlotChange {
        /// bmSlotICCState as sent.
        states: Vec<u8>,
    },
    /// §6.3.2 RDR_to_PC_HardwareError.
    HardwareError {
        /// bSlot.
        slot: u8,
        /// bSeq of the command the error interrupted.
        seq: u8,
        /// bHardwareErrorCode.
        code: HardwareErrorCode,
    },
}

impl Interrupt {
    /// Decodes an interrupt-in message. NotifySlotChange needs at least one byte of
    /// bmSlotICCState (its size depends on the slot count, so any size is accepted);
    /// HardwareError is exactly 4 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let mut c = Cursor::new(bytes);
        match MessageType(c.take_u8("bMessageType")?) {
            MessageType::NOTIFY_SLOT_CHANGE => {
                let first = c.take_u8("bmSlotICCState")?;
                let mut states = vec![first];
                states.extend_from_slice(c.take_rest());
                Ok(Self::NotifySlotChange { states })
            }
            MessageType::HARDWARE_ERROR => {
                let [slot, seq, code] = c.take_array::<3>("RDR_to_PC_HardwareError")?;
                c.finish("RDR_to_PC_HardwareError")?;
                Ok(Self::HardwareError { slot, seq, code: HardwareErrorCode(code) })
            }
            found => Err(Error::UnknownMessageType { found }),
        }
    }

    /// Builds RDR_to_PC_NotifySlotChange for `slots` (slot index order from 0).
    pub fn notify(slots: &[(bool, bool)]) -> Self {
        let mut states = vec![0u8; slots.len().div_ceil(4).max(1)];
        for (i, (present, changed)) in slots.iter().enumerate() {
            let bits = u8::from(*present) | u8::from(*changed) << 1;
            if let Some(byte) = states.get_mut(i / 4) {
                *byte |= bits << ((i % 4) * 2);
            }
        }
        Self::NotifySlotChange { states }
    }

    /// The slot states of a NotifySlotChange (four per byte), or nothing.
    pub fn slot_changes(&self) -> Vec<SlotChange> {
        let Self::NotifySlotChange { states } = self else { return Vec::new() };
        let mut out = Vec::with_capacity(states.len() * 4);
        for (i, byte) in states.iter().enumerate() {
            for j in 0..4 {
                let bits = byte >> (j * 2);
                let slot = u8::try_from(i * 4 + j).unwrap_or(u8::MAX);
                out.push(SlotChange { slot, present: bits & 1 != 0, changed: bits & 2 != 0 });
            }
        }
        out
    }

    /// The message bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::NotifySlotChange { states } => {
                let mut out = vec![MessageType::NOTIFY_SLOT_CHANGE.0];
                out.extend_from_slice(states);
                out
            }
            Self::HardwareError { slot, seq, code } => {
                vec![MessageType::HARDWARE_ERROR.0, *slot, *seq, code.0]
            }
        }
    }
}

/// The setup packet of a control transfer (USB 2.0 §9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlSetup {
    /// bmRequestType.
    pub request_type: u8,
    /// bRequest.
    pub request: u8,
    /// wValue.
    pub value: u16,
    /// wIndex.
    pub index: u16,
    /// wLength.
    pub length: u16,
}

impl ControlSetup {
    /// Whether data flows from the device (bit 7 of bmRequestType).
    pub fn is_in(&self) -> bool {
        self.request_type & 0x80 != 0
    }
}

/// The class-specific requests of CCID §5.3 (table 5.3-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClassRequest {
    /// §5.3.1 ABORT (01h): sent before PC_to_RDR_Abort with the same bSlot and bSeq.
    Abort {
        /// bSlot.
        slot: u8,
        /// bSeq.
        seq: u8,
    },
    /// §5.3.2 GET_CLOCK_FREQUENCIES (02h): bNumClockSupported dwords.
    GetClockFrequencies {
        /// bNumClockSupported.
        count: u8,
    },
    /// §5.3.3 GET_DATA_RATES (03h): bNumDataRatesSupported dwords.
    GetDataRates {
        /// bNumDataRatesSupported.
        count: u8,
    },
}

/// bRequest of ABORT.
pub const REQUEST_ABORT: u8 = 0x01;
/// bRequest of GET_CLOCK_FREQUENCIES.
pub const REQUEST_GET_CLOCK_FREQUENCIES: u8 = 0x02;
/// bRequest of GET_DATA_RATES.
pub const REQUEST_GET_DATA_RATES: u8 = 0x03;

impl ClassRequest {
    /// The setup packet for the CCID interface `interface`.
    pub fn setup(&self, interface: u8) -> ControlSetup {
        let index = u16::from(interface);
        match *self {
            // §5.3.1: bmRequestType 00100001b, wValue bSeq (high byte) bSlot (low byte).
            Self::Abort { slot, seq } => ControlSetup {
                request_type: 0x21,
                request: REQUEST_ABORT,
                value: u16::from_be_bytes([seq, slot]),
                index,
                length: 0,
            },
            // §5.3.2: bmRequestType 10100001b, wLength bNumClockSupported * 4.
            Self::GetClockFrequencies { count } => ControlSetup {
                request_type: 0xA1,
                request: REQUEST_GET_CLOCK_FREQUENCIES,
                value: 0,
                index,
                length: u16::from(count) * 4,
            },
            // §5.3.3: bmRequestType 10100001b, wLength bNumDataRatesSupported * 4.
            Self::GetDataRates { count } => ControlSetup {
                request_type: 0xA1,
                request: REQUEST_GET_DATA_RATES,
                value: 0,
                index,
                length: u16::from(count) * 4,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scard_iso7816::hex::decode_lenient as h;

    fn hexs(b: &[u8]) -> String {
        scard_iso7816::hex::encode_spaced(b)
    }

    #[test]
    fn command_encodings() {
        // Each command for slot 0, bSeq 1 (CCID §6.1 message layouts).
        let cases: Vec<(Command, &str)> = vec![
            (Command::IccPowerOn(PowerSelect::Automatic), "62 00 00 00 00 00 01 00 00 00"),
            (Command::IccPowerOn(PowerSelect::V1_8), "62 00 00 00 00 00 01 03 00 00"),
            (Command::IccPowerOff, "63 00 00 00 00 00 01 00 00 00"),
            (Command::GetSlotStatus, "65 00 00 00 00 00 01 00 00 00"),
            (
                Command::XfrBlock {
                    bwi: 0,
                    level: LevelParameter::BEGIN_AND_END,
                    data: Payload::new(h("00 A4 04 00 00").unwrap()).unwrap(),
                },
                "6F 05 00 00 00 00 01 00 00 00 00 A4 04 00 00",
            ),
            (
                Command::XfrBlock {
                    bwi: 2,
                    level: LevelParameter::NEXT_RESPONSE,
                    data: Payload::default(),
                },
                "6F 00 00 00 00 00 01 02 10 00",
            ),
            (Command::GetParameters, "6C 00 00 00 00 00 01 00 00 00"),
            (Command::ResetParameters, "6D 00 00 00 00 00 01 00 00 00"),
            (
                Command::SetParameters(ProtocolData::T0(T0Parameters {
                    findex_dindex: 0x11,
                    tcck: 0,
                    guard_time: 0,
                    waiting_integer: 0x0A,
                    clock_stop: 0,
                })),
                "61 05 00 00 00 00 01 00 00 00 11 00 00 0A 00",
            ),
            (
                Command::SetParameters(ProtocolData::T1(T1Parameters {
                    findex_dindex: 0x96,
                    tcck: 0x11,
                    guard_time: 0xFF,
                    waiting_integers: 0x45,
                    clock_stop: 0,
                    ifsc: 0xFE,
                    nad: 0,
                })),
                "61 07 00 00 00 00 01 01 00 00 96 11 FF 45 00 FE 00",
            ),
            (
                Command::Escape(Payload::new(vec![0x1F, 0x01]).unwrap()),
                "6B 02 00 00 00 00 01 00 00 00 1F 01",
            ),
            (Command::IccClock(ClockCommand::Stop), "6E 00 00 00 00 00 01 01 00 00"),
            (
                Command::T0Apdu { changes: 3, class_get_response: 0x00, class_envelope: 0x80 },
                "6A 00 00 00 00 00 01 03 00 80",
            ),
            (Command::Mechanical(MechanicalFunction::Eject), "71 00 00 00 00 00 01 02 00 00"),
            (Command::Abort, "72 00 00 00 00 00 01 00 00 00"),
            (
                Command::SetDataRateAndClockFrequency { clock_khz: 4000, data_rate_bps: 9600 },
                "73 08 00 00 00 00 01 00 00 00 A0 0F 00 00 80 25 00 00",
            ),
        ];
        for (cmd, expected) in cases {
            let bytes = cmd.encode(0, 1);
            assert_eq!(hexs(&bytes), expected, "{cmd:?}");
            let (header, data) = decode_command(&bytes).unwrap();
            assert_eq!(header.message_type, cmd.message_type());
            assert_eq!(data.len() + 10, bytes.len());
            assert!(cmd.message_type().response_type().is_some());
        }
    }

    #[test]
    fn secure_pin_verify_and_modify() {
        // A PIN verification for OpenPGP card PW1 (VERIFY 00 20 00 81, 8 byte ASCII block):
        // the structure of CCID §6.1.11.7 after bPINOperation 00h.
        let verify = PinOperation::Verify(PinVerify {
            format: PinFormat {
                timeout: 0x1E,
                format_string: 0x82,
                pin_block_string: 0x08,
                pin_length_format: 0x00,
                min_digits: 6,
                max_digits: 8,
                entry_validation: 0x02,
                lang_id: 0x0409,
            },
            number_message: 0x01,
            msg_index: 0,
            teo_prologue: [0, 0, 0],
            apdu: PinApdu::new(h("00 20 00 81 08 FF FF FF FF FF FF FF FF").unwrap()).unwrap(),
        });
        let cmd = Command::Secure {
            bwi: 0,
            level: LevelParameter::BEGIN_AND_END,
            operation: Box::new(verify),
        };
        assert_eq!(
            hexs(&cmd.encode(1, 7)),
            "69 1C 00 00 00 01 07 00 00 00 00 1E 82 08 00 08 06 02 01 09 04 00 00 00 00 \
             00 20 00 81 08 FF FF FF FF FF FF FF FF"
        );
        let modify = |n| {
            PinOperation::Modify(PinModify {
                format: PinFormat {
                    min_digits: 4,
                    max_digits: 8,
                    entry_validation: 2,
                    ..PinFormat::default()
                },
                insertion_offset_old: 0,
                insertion_offset_new: 8,
                confirm_pin: 0x03,
                number_message: n,
                msg_index: [0, 1, 2],
                teo_prologue: [0, 0, 0],
                apdu: PinApdu::new(h("00 24 00 81 10").unwrap()).unwrap(),
            })
        };
        let len = |n| {
            Command::Secure {
                bwi: 0,
                level: LevelParameter::BEGIN_AND_END,
                operation: Box::new(modify(n)),
            }
            .encode(0, 0)
            .len()
        };
        // bMsgIndex2 with bNumberMessage != 0, bMsgIndex3 with >= 3.
        assert_eq!(len(3) - len(1), 1);
        assert_eq!(len(1) - len(0), 1);
        assert_eq!(len(0xFF), len(3));
        let simple = Command::Secure {
            bwi: 0,
            level: LevelParameter::BEGIN_AND_END,
            operation: Box::new(PinOperation::Cancel),
        };
        assert_eq!(hexs(&simple.encode(0, 0)), "69 01 00 00 00 00 00 00 00 00 04");
    }

    #[test]
    fn payload_limits() {
        assert!(Payload::new(vec![0; MAX_PAYLOAD]).is_ok());
        assert!(Payload::new(vec![0; MAX_PAYLOAD + 1]).is_err());
        assert_eq!(format!("{:?}", Payload::new(vec![1, 2, 3]).unwrap()), "Payload(3 bytes)");
    }

    #[test]
    fn status_byte_split() {
        for byte in 0..=255u8 {
            let s = Status(byte);
            if byte & 0x3C == 0 {
                assert_eq!(Status::new(s.command(), s.icc()), s);
            }
        }
        assert_eq!(Status(0x80).command(), CommandStatus::TimeExtension);
        assert_eq!(Status(0x41).command(), CommandStatus::Failed);
        assert_eq!(Status(0x41).icc(), IccStatus::PresentInactive);
        assert_eq!(Status(0x42).icc(), IccStatus::Absent);
        assert_eq!(Status(0xC3).command(), CommandStatus::Rfu);
        assert_eq!(Status(0xC3).icc(), IccStatus::Rfu);
    }

    #[test]
    fn slot_error_names() {
        assert_eq!(format!("{:?}", SlotError(0xFE)), "SlotError(0xFE ICC_MUTE)");
        assert_eq!(SlotError::ICC_MUTE.to_string(), "ICC_MUTE (0xFE)");
        assert_eq!(format!("{:?}", SlotError(0x90)), "SlotError(0x90)");
        assert_eq!(SlotError(0x07).bad_parameter_offset(), Some(7));
        assert_eq!(SlotError(0xFE).bad_parameter_offset(), None);
        assert!(SlotError(0x81).is_user_defined() && !SlotError(0xC1).is_user_defined());
        assert_eq!(MessageType(0x6F).to_string(), "PC_to_RDR_XfrBlock (0x6F)");
    }

    #[test]
    fn response_decoding() {
        // QEMU usb-ccid answers (../shared/qemu-ccid.md §5): the ATR of the passthru test card.
        let atr = h("80 0A 00 00 00 00 05 00 00 00 3B 08 52 55 53 54 43 43 49 44").unwrap();
        let r = Response::decode(&atr).unwrap();
        assert_eq!((r.message_type(), r.slot(), r.seq()), (MessageType::DATA_BLOCK, 0, 5));
        assert_eq!(r.status().command(), CommandStatus::Processed);
        assert_eq!(
            r.body(),
            &Body::DataBlock { chain: ChainParameter::BEGIN_AND_END, data: &atr[10..] }
        );
        assert_eq!(r.encode(), atr);
        // IccPowerOff: present, inactive.
        let off = h("81 00 00 00 00 00 09 01 00 00").unwrap();
        let r = Response::decode(&off).unwrap();
        assert_eq!(r.status().icc(), IccStatus::PresentInactive);
        assert_eq!(r.body(), &Body::SlotStatus { clock: ClockStatus::RUNNING });
        // Escape unsupported: SlotStatus command failed, bError 00.
        let failed = h("81 00 00 00 00 00 0A 40 00 00").unwrap();
        let r = Response::decode(&failed).unwrap();
        assert_eq!(
            (r.status().command(), r.error()),
            (CommandStatus::Failed, SlotError::CMD_NOT_SUPPORTED)
        );
        // QEMU 7.2 Parameters: dwLength 0, 7 bytes follow. Strict: rejected; quirk: accepted.
        let params = h("82 00 00 00 00 00 0B 00 00 00 00 00 00 00 00 FE 00").unwrap();
        assert_eq!(
            Response::decode(&params),
            Err(Error::LengthMismatch { message: MessageType::PARAMETERS, declared: 0, actual: 7 })
        );
        let r =
            Response::decode_with(&params, DecodeOptions { parameters_length_zero: true }).unwrap();
        let Body::Parameters { protocol: 0, data } = *r.body() else { panic!() };
        assert_eq!(data.len(), 7);
        // A well-formed T=1 Parameters.
        let t1 = h("82 07 00 00 00 00 0C 00 00 01 11 10 00 4D 00 20 00").unwrap();
        let r = Response::decode(&t1).unwrap();
        let Body::Parameters { protocol, data } = *r.body() else { panic!() };
        assert_eq!(
            ProtocolData::decode(protocol, data).unwrap(),
            ProtocolData::T1(T1Parameters {
                findex_dindex: 0x11,
                tcck: 0x10,
                guard_time: 0,
                waiting_integers: 0x4D,
                clock_stop: 0,
                ifsc: 0x20,
                nad: 0
            })
        );
        assert_eq!(r.encode(), t1);
        // DataRateAndClockFrequency with and without values.
        let rate = reply::data_rate_and_clock(0, 3, Status(0), SlotError(0), 4000, 9600);
        let r = Response::decode(&rate).unwrap();
        assert_eq!(r.body(), &Body::DataRateAndClockFrequency { values: Some((4000, 9600)) });
        assert_eq!(r.encode(), rate);
        let empty = h("84 00 00 00 00 00 03 40 00 00").unwrap();
        let r = Response::decode(&empty).unwrap();
        assert_eq!(r.body(), &Body::DataRateAndClockFrequency { values: None });
        assert!(
            Response::decode(&h("84 04 00 00 00 00 03 40 00 00 01 02 03 04").unwrap()).is_err()
        );
        // Escape response.
        // RFU bytes survive the round trip (found by the ccid_descriptor fuzzer).
        let rfu = h("84 08 00 00 00 00 03 00 00 7E A0 0F 00 00 80 25 00 00").unwrap();
        assert_eq!(Response::decode(&rfu).unwrap().encode(), rfu);
        let esc = reply::escape(0, 1, Status(0), SlotError(0), &[1, 2]);
        assert_eq!(Response::decode(&esc).unwrap().body(), &Body::Escape { data: &[1, 2] });
    }

    #[test]
    fn response_errors() {
        assert!(matches!(Response::decode(&[]), Err(Error::Truncated { .. })));
        assert!(matches!(Response::decode(&[0x80; 9]), Err(Error::Truncated { .. })));
        // dwLength larger and smaller than the data.
        assert!(matches!(
            Response::decode(&h("80 02 00 00 00 00 00 00 00 00 90").unwrap()),
            Err(Error::LengthMismatch { declared: 2, actual: 1, .. })
        ));
        assert!(matches!(
            Response::decode(&h("80 00 00 00 00 00 00 00 00 00 90").unwrap()),
            Err(Error::LengthMismatch { declared: 0, actual: 1, .. })
        ));
        // A command type on the bulk-in pipe.
        assert_eq!(
            Response::decode(&h("6F 00 00 00 00 00 00 00 00 00").unwrap()),
            Err(Error::UnknownMessageType { found: MessageType::XFR_BLOCK })
        );
        // SlotStatus with data.
        assert!(Response::decode(&h("81 01 00 00 00 00 00 00 00 00 01").unwrap()).is_err());
        // dwLength FFFFFFFF.
        assert!(Response::decode(&h("80 FF FF FF FF 00 00 00 00 00").unwrap()).is_err());
        // Protocol data of the wrong size or protocol.
        assert!(ProtocolData::decode(0, &[0; 7]).is_err());
        assert!(ProtocolData::decode(1, &[0; 5]).is_err());
        assert!(ProtocolData::decode(2, &[]).is_err());
    }

    #[test]
    fn interrupts() {
        // QEMU after claim: 50 03 (slot 0 present and changed).
        let i = Interrupt::decode(&[0x50, 0x03]).unwrap();
        let changes = i.slot_changes();
        assert_eq!(changes[0], SlotChange { slot: 0, present: true, changed: true });
        assert!(changes[1..].iter().all(|c| !c.present && !c.changed));
        assert_eq!(i.encode(), vec![0x50, 0x03]);
        // Two-slot reader: slot 1 removed (changed, absent), slot 0 present unchanged: 1001b.
        let i = Interrupt::notify(&[(true, false), (false, true)]);
        assert_eq!(i.encode(), vec![0x50, 0x09]);
        // Five slots need two bytes.
        let i = Interrupt::notify(&[(false, false); 5]);
        assert_eq!(i.encode().len(), 3);
        assert_eq!(
            Interrupt::decode(&[0x51, 0x00, 0x07, 0x01]).unwrap(),
            Interrupt::HardwareError { slot: 0, seq: 7, code: HardwareErrorCode::OVERCURRENT }
        );
        assert!(Interrupt::decode(&[0x51, 0x00, 0x07]).is_err());
        assert!(Interrupt::decode(&[0x51, 0x00, 0x07, 1, 2]).is_err());
        assert!(Interrupt::decode(&[0x50]).is_err());
        assert!(Interrupt::decode(&[0x80, 0]).is_err());
        assert!(Interrupt::decode(&[]).is_err());
    }

    #[test]
    fn class_requests() {
        let abort = ClassRequest::Abort { slot: 1, seq: 0x22 }.setup(0);
        assert_eq!(
            abort,
            ControlSetup { request_type: 0x21, request: 1, value: 0x2201, index: 0, length: 0 }
        );
        assert!(!abort.is_in());
        // OMNIKEY 3x21: bNumDataRatesSupported 106 -> 424 bytes.
        let rates = ClassRequest::GetDataRates { count: 106 }.setup(2);
        assert_eq!(
            (rates.request_type, rates.request, rates.index, rates.length),
            (0xA1, 3, 2, 424)
        );
        assert!(rates.is_in());
        let clocks = ClassRequest::GetClockFrequencies { count: 1 }.setup(0);
        assert_eq!((clocks.request, clocks.length), (2, 4));
    }

    #[test]
    fn decode_never_panics_on_short_inputs() {
        for len in 0..=20 {
            for fill in [0x00, 0x01, 0x80, 0x81, 0x82, 0x83, 0x84, 0xFF] {
                let mut v = vec![fill; len];
                if let Some(first) = v.first_mut() {
                    *first = 0x80 + (len as u8 % 5);
                }
                let _ = Response::decode(&v);
                let _ = Response::decode_with(&v, DecodeOptions { parameters_length_zero: true });
                let _ = Interrupt::decode(&v);
                let _ = decode_command(&v);
            }
        }
    }
}
