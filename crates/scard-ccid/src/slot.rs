//! The slot engine: one card slot of a CCID reader, sans-IO.
//!
//! An operation starts with a method that returns the first bulk-out message
//! ([`Slot::power_on`], [`Slot::transmit`], [`Slot::power_off`], ...). The caller writes it,
//! reads the bulk-in answer and feeds it to [`Slot::on_bulk_in`], which returns the next
//! [`Step`]: another message to send, "read again" (time extension, or a stale answer that
//! was discarded), or the [`Outcome`]. Errors end the operation; the slot stays usable.
//!
//! What the engine does (CCID Rev 1.1 and ISO/IEC 7816-3):
//! - bSeq: every command gets the next sequence number (§6.1); an answer carrying an older one
//!   (a late answer to an abandoned command) is discarded, one carrying a number never sent is
//!   an error; answers for another slot are discarded (a multi-slot reader shares the pipe);
//! - bStatus (§6.2.6): time extension (80h) means keep waiting, at most
//!   [`SlotConfig::max_time_extensions`] times; a failed command becomes
//!   [`Error::CommandFailed`] with bError, or [`Error::CardAbsent`];
//! - power on (§6.1.1): automatic voltage when the reader selects it, otherwise from the lowest
//!   class the reader supplies upwards (ISO/IEC 7816-3 §6.2.4), retrying the next class when
//!   the card stays mute (as libccid does) or its ATR class indicator excludes the class;
//! - protocol and parameters (ISO/IEC 7816-3 §9, CCID §6.1.7): unless the reader negotiates by
//!   itself (dwFeatures 40h), a PPS exchange through XfrBlock at TPDU level when the reader does
//!   not do PPS itself (80h) and TA1 or the protocol differ from the defaults, then
//!   SetParameters from the ATR; at TPDU level with T=1, S(IFS) to the reader's IFSD unless the
//!   reader does it (400h);
//! - APDU exchange at the reader's level: TPDU T=0 ([`crate::t0`]), TPDU T=1 ([`crate::t1`]),
//!   short APDU (61xx left to the layer above), extended APDU chained with wLevelParameter and
//!   bChainParameter when the message exceeds dwMaxCCIDMessageLength - 10; character level is
//!   refused.
//!
//! The loop a USB shell runs (here over the simulated reader):
//!
//! ```
//! # #[cfg(feature = "sim")] {
//! use std::time::Duration;
//! use scard_ccid::sim::{SimCard, SimConfig, SimReader};
//! use scard_ccid::{CcidUsb, Outcome, Slot, SlotConfig, Step};
//!
//! let atr = [0x3B, 0x08, 0x52, 0x55, 0x53, 0x54, 0x43, 0x43, 0x49, 0x44];
//! let mut usb = SimReader::new(SimConfig::tpdu_t0(), Some(SimCard::new(&atr, |_| vec![0x90, 0x00])));
//! let mut slot = Slot::new(&usb.descriptor(), SlotConfig::default())?;
//! let mut step = slot.power_on()?;
//! let outcome = loop {
//!     match step {
//!         Step::Send { message, .. } => usb.bulk_out(&message, Duration::from_secs(5)).unwrap(),
//!         Step::Receive { .. } => {}
//!         Step::Done(outcome) => break outcome,
//!     }
//!     let answer = usb.bulk_in(Duration::from_secs(5)).unwrap();
//!     step = slot.on_bulk_in(&answer)?;
//! };
//! assert!(matches!(outcome, Outcome::PoweredOn(_)));
//! # }
//! # Ok::<(), scard_ccid::Error>(())
//! ```

use scard_iso7816::apdu::CommandApdu;
use scard_iso7816::atr::{Atr, Convention, EdcKind};
use zeroize::Zeroizing;

use crate::descriptor::{ClassDescriptor, ExchangeLevel, Features, Protocols, VoltageSupport};
use crate::error::Error;
use crate::message::{
    Body, ChainParameter, ClassRequest, ClockCommand, ClockStatus, Command, CommandStatus,
    DecodeOptions, IccStatus, Interrupt, LevelParameter, MechanicalFunction, MessageType, Payload,
    PinModify, PinOperation, PinVerify, PowerSelect, ProtocolData, Response, SlotError, Status,
    T0Parameters, T1Parameters,
};
use crate::t0::{T0Exchange, T0Options, T0Step};
use crate::t1::{Fault, T1, T1Config, T1Step};

/// Configuration of a slot engine; the caller's bounds and choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotConfig {
    /// The slot index (bSlot).
    pub slot: u8,
    /// Consecutive time extension answers (bStatus 80h) accepted for one command before
    /// [`Error::TimeExtensionLimit`].
    pub max_time_extensions: u32,
    /// Stale answers (old bSeq, other slot) discarded for one command before
    /// [`Error::TooManyStaleResponses`].
    pub max_stale_responses: u32,
    /// The first voltage to try when the reader does not select it automatically; `None`: the
    /// lowest the reader supplies (ISO/IEC 7816-3 §6.2.4).
    pub voltage: Option<PowerSelect>,
    /// The protocol to use when the card offers both T=0 and T=1; `None`: the card's first.
    pub protocol: Option<u8>,
    /// The IFSD to announce; `None`: dwMaxIFSD capped at 254.
    pub ifsd: Option<u8>,
    /// Failed exchanges of one T=1 block before resynchronisation.
    pub t1_max_attempts: u8,
    /// T=1 resynchronisations per exchange.
    pub t1_max_resynch: u8,
    /// The T=0 mapping's choices.
    pub t0: T0Options,
    /// Largest response APDU.
    pub max_response: usize,
    /// Named reader quirks for decoding.
    pub decode: DecodeOptions,
}

impl Default for SlotConfig {
    fn default() -> Self {
        Self {
            slot: 0,
            max_time_extensions: 60,
            max_stale_responses: 16,
            voltage: None,
            protocol: None,
            ifsd: None,
            t1_max_attempts: 3,
            t1_max_resynch: 3,
            t0: T0Options::default(),
            max_response: 65538,
            decode: DecodeOptions::default(),
        }
    }
}

impl SlotConfig {
    /// The default configuration for slot `slot`.
    pub fn for_slot(slot: u8) -> Self {
        Self { slot, ..Self::default() }
    }
}

/// What the caller does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write `message` to the bulk-out endpoint, then read the answer from bulk-in, waiting
    /// up to the normal timeout times `wait_multiplier`.
    Send {
        /// The bulk-out message (may hold a PIN: zeroized on drop).
        message: Zeroizing<Vec<u8>>,
        /// Timeout multiplier for the answer (1: normal; T=1 WTX or time extension).
        wait_multiplier: u32,
    },
    /// Read bulk-in again (the reader asked for more time, or a stale answer was discarded).
    Receive {
        /// Timeout multiplier for the read.
        wait_multiplier: u32,
    },
    /// The operation is complete.
    Done(Outcome),
}

/// The result of a powered-on card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoweredOn {
    /// The card's ATR.
    pub atr: Atr,
    /// The protocol in use (0 or 1).
    pub protocol: u8,
    /// The voltage that worked (`Automatic` when the reader chose).
    pub voltage: PowerSelect,
    /// The parameters set with SetParameters, when the engine sent it.
    pub parameters: Option<ProtocolData>,
    /// The IFSD negotiated with S(IFS) (TPDU level, T=1), when the engine did it.
    pub ifsd: Option<u8>,
}

/// The result of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// [`Slot::power_on`].
    PoweredOn(Box<PoweredOn>),
    /// [`Slot::power_off`]: the ICC status after power off.
    PoweredOff(IccStatus),
    /// [`Slot::get_slot_status`].
    SlotStatus {
        /// bmICCStatus.
        icc: IccStatus,
        /// bClockStatus.
        clock: ClockStatus,
        /// bError (ICC_MUTE when the reader could not talk to the card).
        error: SlotError,
    },
    /// [`Slot::transmit`], [`Slot::verify_pin`], [`Slot::modify_pin`]: the response APDU.
    Response(Zeroizing<Vec<u8>>),
    /// [`Slot::get_parameters`], [`Slot::set_parameters`], [`Slot::reset_parameters`]:
    /// bProtocolNum and abProtocolDataStructure as decoded (`None` when empty or malformed).
    Parameters {
        /// bProtocolNum.
        protocol: u8,
        /// The decoded structure.
        data: Option<ProtocolData>,
    },
    /// [`Slot::escape`]: abData of RDR_to_PC_Escape.
    Escape(Vec<u8>),
    /// [`Slot::abort`].
    Aborted,
    /// [`Slot::command`] (IccClock, T0APDU, Mechanical, SetDataRateAndClockFrequency).
    Reply {
        /// The answer's message type.
        message_type: MessageType,
        /// bStatus.
        status: Status,
        /// bError.
        error: SlotError,
        /// dwClockFrequency and dwDataRate for SetDataRateAndClockFrequency.
        data_rate_and_clock: Option<(u32, u32)>,
    },
}

/// A change of the slot reported on the interrupt pipe (CCID §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlotEvent {
    /// A card is present now (after a change).
    CardInserted,
    /// The card was removed.
    CardRemoved,
    /// RDR_to_PC_HardwareError for the slot.
    HardwareError(crate::message::HardwareErrorCode),
}

/// The slot events of one interrupt-in message, by slot index; slots without a change are
/// left out.
pub fn slot_events(interrupt: &[u8]) -> Result<Vec<(u8, SlotEvent)>, Error> {
    let msg = Interrupt::decode(interrupt)?;
    Ok(match msg {
        Interrupt::HardwareError { slot, code, .. } => vec![(slot, SlotEvent::HardwareError(code))],
        Interrupt::NotifySlotChange { .. } => msg
            .slot_changes()
            .into_iter()
            .filter(|c| c.changed)
            .map(|c| {
                (c.slot, if c.present { SlotEvent::CardInserted } else { SlotEvent::CardRemoved })
            })
            .collect(),
    })
}

/// The powered card.
#[derive(Debug)]
struct Session {
    atr: Atr,
    protocol: u8,
    /// The T=1 engine (TPDU level, T=1 only).
    t1: Option<T1>,
}

/// The command in flight.
#[derive(Debug, Clone, Copy)]
struct Pending {
    command: MessageType,
    seq: u8,
    extensions: u32,
    stale: u32,
}

/// Power-on progress.
#[derive(Debug)]
struct PowerOnCtx {
    /// Voltages still to try after the current one.
    remaining: Vec<PowerSelect>,
    voltage: PowerSelect,
    atr: Option<Atr>,
    protocol: u8,
    fi_di: u8,
    parameters: Option<ProtocolData>,
    ifsd: Option<u8>,
    t1: Option<T1>,
}

#[derive(Debug)]
enum PowerStage {
    /// IccPowerOn in flight.
    PowerOn,
    /// IccPowerOff before retrying with the next class.
    PowerOffForClass,
    /// PPS request in flight (XfrBlock).
    Pps(Vec<u8>),
    /// SetParameters in flight.
    SetParameters,
    /// S(IFS) exchange in flight (XfrBlock).
    Ifsd,
}

#[derive(Debug)]
enum Extended {
    /// Command chunk `sent..sent+chunk` in flight.
    Sending { sent: usize, chunk: usize },
    /// Receiving the response; `last` is the previous bChainParameter.
    Receiving { last: Option<ChainParameter> },
}

#[derive(Debug)]
enum Op {
    PowerOn(Box<PowerOnCtx>, PowerStage),
    PowerOff,
    Status,
    T0(T0Exchange),
    T1,
    /// One XfrBlock (short APDU, extended APDU in one message) or a Secure with an APDU answer.
    Single,
    Extended {
        cmd: Zeroizing<Vec<u8>>,
        rx: Zeroizing<Vec<u8>>,
        state: Extended,
    },
    Parameters,
    Escape,
    Abort,
    Raw,
}

/// One slot of a CCID reader. See the module documentation.
#[derive(Debug)]
pub struct Slot {
    index: u8,
    level: ExchangeLevel,
    features: Features,
    protocols: Protocols,
    voltage_support: VoltageSupport,
    max_payload: usize,
    max_ifsd: Option<u8>,
    default_clock_khz: u32,
    max_data_rate: u32,
    pin_verify: bool,
    pin_modify: bool,
    config: SlotConfig,
    seq: u8,
    session: Option<Session>,
    op: Option<Op>,
    pending: Option<Pending>,
}

impl Slot {
    /// A slot engine for slot `config.slot` of the reader `descriptor` describes. Fails for
    /// character-level readers, an inconsistent exchange level, a slot beyond bMaxSlotIndex
    /// or a dwMaxCCIDMessageLength that leaves no room for data.
    pub fn new(descriptor: &ClassDescriptor, config: SlotConfig) -> Result<Self, Error> {
        let level = descriptor.exchange_level()?;
        if level == ExchangeLevel::Character {
            return Err(Error::CharacterLevelUnsupported);
        }
        if config.slot > descriptor.max_slot_index() {
            return Err(Error::NoSuchSlot {
                slot: config.slot,
                max_slot_index: descriptor.max_slot_index(),
            });
        }
        let max_payload = descriptor.max_payload();
        // CCID §5.1: the smallest dwMaxCCIDMessageLength carries a 5-byte TPDU header.
        if max_payload < 5 {
            return Err(Error::InvalidDescriptor {
                field: "dwMaxCCIDMessageLength",
                value: descriptor.max_message_length(),
                reason: "leaves no room for a command",
            });
        }
        Ok(Self {
            index: config.slot,
            level,
            features: descriptor.features(),
            protocols: descriptor.protocols(),
            voltage_support: descriptor.voltage_support(),
            max_payload,
            max_ifsd: config.ifsd.or(descriptor.ifsd()),
            default_clock_khz: descriptor.default_clock_khz(),
            max_data_rate: descriptor.max_data_rate(),
            pin_verify: descriptor.pin_support().verify(),
            pin_modify: descriptor.pin_support().modify(),
            config,
            seq: 0,
            session: None,
            op: None,
            pending: None,
        })
    }

    /// The slot index.
    pub fn index(&self) -> u8 {
        self.index
    }
    /// The reader's exchange level.
    pub fn level(&self) -> ExchangeLevel {
        self.level
    }
    /// The ATR of the powered card.
    pub fn atr(&self) -> Option<&Atr> {
        self.session.as_ref().map(|s| &s.atr)
    }
    /// The protocol of the powered card.
    pub fn protocol(&self) -> Option<u8> {
        self.session.as_ref().map(|s| s.protocol)
    }
    /// Whether a card is powered (as far as the engine knows).
    pub fn is_powered(&self) -> bool {
        self.session.is_some()
    }
    /// Whether an operation is in progress.
    pub fn is_busy(&self) -> bool {
        self.op.is_some()
    }
    /// The command in flight, if any.
    pub fn pending_command(&self) -> Option<MessageType> {
        self.pending.map(|p| p.command)
    }
    /// The bSeq the next command will carry.
    pub fn next_seq(&self) -> u8 {
        self.seq
    }
    /// Sets the bSeq of the next command (a reader driver sharing one counter between slots).
    pub fn set_next_seq(&mut self, seq: u8) {
        self.seq = seq;
    }

    fn start(&mut self, op: Op, command: Command, wait_multiplier: u32) -> Result<Step, Error> {
        if self.op.is_some() {
            return Err(self.busy());
        }
        self.op = Some(op);
        Ok(self.send(command, wait_multiplier))
    }

    fn send(&mut self, command: Command, wait_multiplier: u32) -> Step {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let command_type = command.message_type();
        self.pending = Some(Pending { command: command_type, seq, extensions: 0, stale: 0 });
        tracing::debug!(slot = self.index, seq, command = %command_type, "CCID >>");
        Step::Send {
            message: command.encode(self.index, seq),
            wait_multiplier: wait_multiplier.max(1),
        }
    }

    fn xfr(&mut self, data: &[u8], bwi: u8, level: LevelParameter) -> Result<Step, Error> {
        if data.len() > self.max_payload {
            return Err(self.abandon_with(Error::CommandTooLong {
                slot: self.index,
                len: data.len(),
                reason: "longer than dwMaxCCIDMessageLength - 10",
            }));
        }
        let payload = Payload::new(data.to_vec())?;
        Ok(self.send(Command::XfrBlock { bwi, level, data: payload }, u32::from(bwi)))
    }

    /// Powers the card on (CCID §6.1.1) and sets it up for exchanges (see the module
    /// documentation). Ends with [`Outcome::PoweredOn`].
    pub fn power_on(&mut self) -> Result<Step, Error> {
        let voltages = self.voltage_plan();
        let (first, rest) =
            voltages.split_first().map_or((PowerSelect::Automatic, &[][..]), |(f, r)| (*f, r));
        self.session = None;
        let ctx = PowerOnCtx {
            remaining: rest.to_vec(),
            voltage: first,
            atr: None,
            protocol: 0,
            fi_di: 0x11,
            parameters: None,
            ifsd: None,
            t1: None,
        };
        self.start(Op::PowerOn(Box::new(ctx), PowerStage::PowerOn), Command::IccPowerOn(first), 1)
    }

    /// The voltages to try, in order.
    fn voltage_plan(&self) -> Vec<PowerSelect> {
        // CCID §5.1 dwFeatures 08h: the reader selects the voltage itself.
        if self.features.contains(Features::AUTO_VOLTAGE) || self.voltage_support.0 & 0x07 == 0 {
            return vec![PowerSelect::Automatic];
        }
        // ISO/IEC 7816-3 §6.2.4: from the lowest class upwards (C 1.8 V, B 3 V, A 5 V).
        let ascending = [PowerSelect::V1_8, PowerSelect::V3_0, PowerSelect::V5_0];
        let supported: Vec<_> = ascending
            .into_iter()
            .filter(|v| self.voltage_support.0 & v.support_bit() != 0)
            .collect();
        match self.config.voltage {
            Some(PowerSelect::Automatic) => vec![PowerSelect::Automatic],
            Some(start) => {
                let mut plan = vec![start];
                plan.extend(supported.into_iter().skip_while(|v| *v != start).skip(1));
                plan
            }
            None => supported,
        }
    }

    /// Powers the card off (CCID §6.1.2). Ends with [`Outcome::PoweredOff`].
    pub fn power_off(&mut self) -> Result<Step, Error> {
        let step = self.start(Op::PowerOff, Command::IccPowerOff, 1)?;
        self.session = None;
        Ok(step)
    }

    /// Traces a command APDU (`>>`, data blanked for instructions carrying secrets).
    fn trace_apdu(&self, apdu: &[u8]) {
        tracing::trace!(slot = self.index, ">> {}", scard_iso7816::apdu::trace_command(apdu));
    }

    /// Asks for the slot status (CCID §6.1.3). Ends with [`Outcome::SlotStatus`].
    pub fn get_slot_status(&mut self) -> Result<Step, Error> {
        self.start(Op::Status, Command::GetSlotStatus, 1)
    }

    /// Reads the protocol parameters (CCID §6.1.5). Ends with [`Outcome::Parameters`].
    pub fn get_parameters(&mut self) -> Result<Step, Error> {
        self.start(Op::Parameters, Command::GetParameters, 1)
    }

    /// Restores the default parameters (CCID §6.1.6). Ends with [`Outcome::Parameters`].
    pub fn reset_parameters(&mut self) -> Result<Step, Error> {
        self.start(Op::Parameters, Command::ResetParameters, 1)
    }

    /// Sets protocol parameters (CCID §6.1.7). Ends with [`Outcome::Parameters`].
    pub fn set_parameters(&mut self, data: ProtocolData) -> Result<Step, Error> {
        self.start(Op::Parameters, Command::SetParameters(data), 1)
    }

    /// A vendor escape command (CCID §6.1.8). Ends with [`Outcome::Escape`].
    pub fn escape(&mut self, data: &[u8]) -> Result<Step, Error> {
        let payload = Payload::new(data.to_vec())?;
        self.start(Op::Escape, Command::Escape(payload), 1)
    }

    /// IccClock, T0APDU, Mechanical or SetDataRateAndClockFrequency (CCID §6.1.9, §6.1.10,
    /// §6.1.12, §6.1.14). Ends with [`Outcome::Reply`].
    pub fn command(&mut self, command: RawCommand) -> Result<Step, Error> {
        let cmd = match command {
            RawCommand::IccClock(c) => Command::IccClock(c),
            RawCommand::T0Apdu { changes, class_get_response, class_envelope } => {
                Command::T0Apdu { changes, class_get_response, class_envelope }
            }
            RawCommand::Mechanical(f) => Command::Mechanical(f),
            RawCommand::SetDataRateAndClockFrequency { clock_khz, data_rate_bps } => {
                Command::SetDataRateAndClockFrequency { clock_khz, data_rate_bps }
            }
        };
        self.start(Op::Raw, cmd, 1)
    }

    /// Forgets the operation in progress without telling the reader (the shell lost the
    /// USB connection, or gave up waiting and will abort).
    pub fn cancel(&mut self) {
        self.op = None;
        self.pending = None;
        if let Some(t1) = self.session.as_mut().and_then(|s| s.t1.as_mut()) {
            t1.reset_after_abort();
        }
    }

    /// Aborts the operation in progress (CCID §5.3.1, §6.1.13): send the returned class
    /// request on the control pipe, then the message of the returned step on bulk-out; the
    /// answers to the aborted command are discarded. Ends with [`Outcome::Aborted`].
    pub fn abort(&mut self) -> (ClassRequest, Step) {
        self.cancel();
        let seq = self.seq;
        self.op = Some(Op::Abort);
        let step = self.send(Command::Abort, 1);
        (ClassRequest::Abort { slot: self.index, seq }, step)
    }

    /// Exchanges a command APDU with the powered card at the reader's level. Ends with
    /// [`Outcome::Response`] (the response APDU).
    pub fn transmit(&mut self, apdu: &[u8]) -> Result<Step, Error> {
        if self.op.is_some() {
            return Err(self.busy());
        }
        let cmd = CommandApdu::decode(apdu)?;
        self.trace_apdu(apdu);
        let protocol = self
            .session
            .as_ref()
            .map(|s| s.protocol)
            .ok_or(Error::NotPowered { slot: self.index })?;
        match (self.level, protocol) {
            (ExchangeLevel::Tpdu, 0) => {
                let (ex, tpdu) = T0Exchange::new(apdu, self.config.t0)?;
                self.op = Some(Op::T0(ex));
                self.xfr(&tpdu, 0, LevelParameter::BEGIN_AND_END)
            }
            (ExchangeLevel::Tpdu, _) => {
                let step = self.t1()?.transmit(apdu)?;
                self.op = Some(Op::T1);
                self.t1_step(step)
            }
            (ExchangeLevel::ShortApdu, _) => {
                if cmd.is_extended() {
                    return Err(Error::CommandTooLong {
                        slot: self.index,
                        len: apdu.len(),
                        reason: "extended APDU on a short APDU level reader",
                    });
                }
                self.op = Some(Op::Single);
                self.xfr(apdu, 0, LevelParameter::BEGIN_AND_END)
            }
            (ExchangeLevel::ExtendedApdu, _) => {
                // CCID §6.1.4: one message (wLevelParameter 0000h), or parts 0001h, 0003h ...,
                // 0002h; the response may come in parts either way.
                let chunk = apdu.len().min(self.max_payload);
                let level = if chunk < apdu.len() {
                    LevelParameter::BEGIN
                } else {
                    LevelParameter::BEGIN_AND_END
                };
                let first = apdu.get(..chunk).unwrap_or(apdu).to_vec();
                self.op = Some(Op::Extended {
                    cmd: Zeroizing::new(apdu.to_vec()),
                    rx: Zeroizing::new(Vec::new()),
                    state: Extended::Sending { sent: 0, chunk },
                });
                self.xfr(&first, 0, level)
            }
            (ExchangeLevel::Character, _) => Err(Error::CharacterLevelUnsupported),
        }
    }

    /// PIN verification on the reader's PIN pad (CCID §6.1.11, bPINOperation 00h). At TPDU
    /// level with T=1 the engine fills bTeoPrologue. Ends with [`Outcome::Response`].
    pub fn verify_pin(&mut self, mut verify: PinVerify) -> Result<Step, Error> {
        if !self.pin_verify {
            return Err(Error::NotSupported {
                slot: self.index,
                what: "PIN verification (bPINSupport)",
            });
        }
        let len = verify.apdu.as_slice().len();
        let prologue = self.secure_prologue(len)?;
        if let Some(p) = prologue {
            verify.teo_prologue = p;
        }
        self.secure(PinOperation::Verify(verify), prologue.is_some())
    }

    /// PIN modification on the reader's PIN pad (CCID §6.1.11, bPINOperation 01h). Ends with
    /// [`Outcome::Response`].
    pub fn modify_pin(&mut self, mut modify: PinModify) -> Result<Step, Error> {
        if !self.pin_modify {
            return Err(Error::NotSupported {
                slot: self.index,
                what: "PIN modification (bPINSupport)",
            });
        }
        let len = modify.apdu.as_slice().len();
        let prologue = self.secure_prologue(len)?;
        if let Some(p) = prologue {
            modify.teo_prologue = p;
        }
        self.secure(PinOperation::Modify(modify), prologue.is_some())
    }

    fn secure_prologue(&mut self, apdu_len: usize) -> Result<Option<[u8; 3]>, Error> {
        if self.op.is_some() {
            return Err(self.busy());
        }
        let session = self.session.as_mut().ok_or(Error::NotPowered { slot: self.index })?;
        match (self.level, session.t1.as_mut()) {
            (ExchangeLevel::Tpdu, Some(t1)) => Ok(Some(t1.external_i_block(apdu_len)?)),
            _ => Ok(None),
        }
    }

    fn secure(&mut self, operation: PinOperation, t1: bool) -> Result<Step, Error> {
        let command = Command::Secure {
            bwi: 0,
            level: LevelParameter::BEGIN_AND_END,
            operation: Box::new(operation),
        };
        // The answer is a T=1 block at TPDU level with T=1, the response APDU otherwise.
        self.start(if t1 { Op::T1 } else { Op::Single }, command, 1)
    }

    /// The error for a state the engine cannot be in (an operation without its context).
    fn lost(&self) -> Error {
        Error::NoOperation { slot: self.index }
    }

    fn busy(&self) -> Error {
        Error::Busy {
            slot: self.index,
            running: self.pending.map_or(MessageType(0), |p| p.command),
        }
    }

    fn t1(&mut self) -> Result<&mut T1, Error> {
        let index = self.index;
        self.session.as_mut().and_then(|s| s.t1.as_mut()).ok_or(Error::NotPowered { slot: index })
    }

    /// Ends the operation and returns `e`.
    fn abandon_with(&mut self, e: Error) -> Error {
        self.cancel();
        if e.is_card_absent() {
            self.session = None;
        }
        e
    }

    fn done(&mut self, outcome: Outcome) -> Result<Step, Error> {
        self.op = None;
        self.pending = None;
        Ok(Step::Done(outcome))
    }

    /// Feeds one bulk-in message.
    pub fn on_bulk_in(&mut self, message: &[u8]) -> Result<Step, Error> {
        let Some(mut pending) = self.pending else {
            return Err(Error::NoOperation { slot: self.index });
        };
        let r = match Response::decode_with(message, self.config.decode) {
            Ok(r) => r,
            Err(e) => return Err(self.abandon_with(e)),
        };
        // A message for another slot, or the late answer to an older command: discard it.
        let stale = if r.slot() != self.index {
            true
        } else if r.seq() != pending.seq {
            let behind = pending.seq.wrapping_sub(r.seq());
            if !(1..=127).contains(&behind) {
                return Err(self.abandon_with(Error::SequenceMismatch {
                    slot: self.index,
                    command: pending.command,
                    expected: pending.seq,
                    found: r.seq(),
                }));
            }
            true
        } else {
            false
        };
        if stale {
            tracing::debug!(slot = self.index, seq = r.seq(), "CCID: stale answer discarded");
            pending.stale += 1;
            self.pending = Some(pending);
            if pending.stale > self.config.max_stale_responses {
                return Err(self.abandon_with(Error::TooManyStaleResponses {
                    slot: self.index,
                    command: pending.command,
                    count: pending.stale,
                }));
            }
            return Ok(Step::Receive { wait_multiplier: 1 });
        }
        let status = r.status();
        match status.command() {
            CommandStatus::Rfu => {
                return Err(self.abandon_with(Error::InvalidStatus {
                    slot: self.index,
                    command: pending.command,
                    status: status.0,
                }));
            }
            // §6.2.6: time extension; bError carries the multiplier.
            CommandStatus::TimeExtension => {
                pending.extensions += 1;
                self.pending = Some(pending);
                if pending.extensions > self.config.max_time_extensions {
                    return Err(self.abandon_with(Error::TimeExtensionLimit {
                        slot: self.index,
                        command: pending.command,
                        count: pending.extensions,
                    }));
                }
                return Ok(Step::Receive { wait_multiplier: u32::from(r.error().0).max(1) });
            }
            CommandStatus::Processed | CommandStatus::Failed => {}
        }
        let failed = status.command() == CommandStatus::Failed;
        let expected = pending.command.response_type();
        // A failed command may be answered by SlotStatus (seen with QEMU for Escape, Secure).
        let type_ok = Some(r.message_type()) == expected
            || (failed && r.message_type() == MessageType::SLOT_STATUS);
        if !type_ok {
            return Err(self.abandon_with(Error::UnexpectedMessage {
                slot: self.index,
                command: pending.command,
                found: r.message_type(),
            }));
        }
        self.pending = None;
        if status.icc() == IccStatus::Absent {
            self.session = None;
            // CCID §6.2.6 bmICCStatus 2, no ICC present: an exchange with the card cannot have
            // an answer from it, whatever the command status says. QEMU's usb-ccid answers
            // the XfrBlock pending when the card goes away with an empty DataBlock, command
            // status "processed", ICC absent (../shared/qemu-ccid.md §8, CardRemove).
            let with_card = matches!(
                pending.command,
                MessageType::XFR_BLOCK | MessageType::SECURE | MessageType::ICC_POWER_ON
            );
            if with_card && !failed {
                return Err(self.abandon_with(Error::CardAbsent {
                    slot: self.index,
                    command: pending.command,
                }));
            }
        }
        let result = if failed {
            self.on_failure(pending.command, &r)
        } else {
            self.on_success(pending.command, &r)
        };
        match result {
            Ok(step) => Ok(step),
            Err(e) => Err(self.abandon_with(e)),
        }
    }

    fn failure(&self, command: MessageType, r: &Response<'_>) -> Error {
        if r.status().icc() == IccStatus::Absent {
            Error::CardAbsent { slot: self.index, command }
        } else {
            Error::CommandFailed {
                slot: self.index,
                command,
                error: r.error(),
                icc: r.status().icc(),
            }
        }
    }

    fn on_failure(&mut self, command: MessageType, r: &Response<'_>) -> Result<Step, Error> {
        let op = self.op.take();
        match op {
            Some(Op::PowerOn(mut ctx, PowerStage::PowerOn)) => {
                // Retry with the next class when the card did not answer at this one (libccid
                // CmdPowerOn); a missing card is final.
                let retry = matches!(
                    r.error(),
                    SlotError::ICC_MUTE
                        | SlotError::ICC_CLASS_NOT_SUPPORTED
                        | SlotError::BAD_ATR_TS
                        | SlotError::BAD_ATR_TCK
                        | SlotError::HW_ERROR
                        | SlotError::BAD_OFFSET_7
                );
                if retry && r.status().icc() != IccStatus::Absent && !ctx.remaining.is_empty() {
                    let next = ctx.remaining.remove(0);
                    tracing::debug!(slot = self.index, from = ?ctx.voltage, to = ?next, "power on failed, next class");
                    ctx.voltage = next;
                    self.op = Some(Op::PowerOn(ctx, PowerStage::PowerOn));
                    return Ok(self.send(Command::IccPowerOn(next), 1));
                }
                Err(self.failure(command, r))
            }
            Some(Op::PowerOn(ctx, PowerStage::Ifsd)) => {
                let fault = t1_fault(r.error()).ok_or_else(|| self.failure(command, r))?;
                let mut ctx = ctx;
                let step = match ctx.t1.as_mut() {
                    Some(t1) => t1.receive_fault(fault)?,
                    None => return Err(self.lost()),
                };
                self.power_on_ifsd_step(ctx, step)
            }
            Some(Op::T1) => {
                let fault = t1_fault(r.error()).ok_or_else(|| self.failure(command, r))?;
                let step = self.t1()?.receive_fault(fault)?;
                self.op = Some(Op::T1);
                self.t1_step(step)
            }
            // libccid: "card absent or mute is not a communication error" for GetSlotStatus.
            Some(Op::Status) if r.error() == SlotError::ICC_MUTE => {
                let clock = match r.body() {
                    Body::SlotStatus { clock } => *clock,
                    _ => ClockStatus::RUNNING,
                };
                self.done(Outcome::SlotStatus { icc: r.status().icc(), clock, error: r.error() })
            }
            _ => Err(self.failure(command, r)),
        }
    }

    fn on_success(&mut self, command: MessageType, r: &Response<'_>) -> Result<Step, Error> {
        let op = self.op.take();
        let Some(op) = op else { return Err(Error::NoOperation { slot: self.index }) };
        match (op, r.body()) {
            (Op::PowerOn(ctx, stage), body) => self.power_on_step(ctx, stage, body),
            (Op::PowerOff, _) => {
                self.session = None;
                self.done(Outcome::PoweredOff(r.status().icc()))
            }
            (Op::Status, Body::SlotStatus { clock }) => {
                if r.status().icc() != IccStatus::PresentActive {
                    self.session = None;
                }
                self.done(Outcome::SlotStatus {
                    icc: r.status().icc(),
                    clock: *clock,
                    error: r.error(),
                })
            }
            (Op::T0(mut ex), Body::DataBlock { data, .. }) => match ex.receive(data)? {
                T0Step::Send(tpdu) => {
                    self.op = Some(Op::T0(ex));
                    self.xfr(&tpdu, 0, LevelParameter::BEGIN_AND_END)
                }
                T0Step::Done(response) => self.done(Outcome::Response(response)),
            },
            (Op::T1, Body::DataBlock { data, .. }) => {
                let step = self.t1()?.receive(data)?;
                self.op = Some(Op::T1);
                self.t1_step(step)
            }
            (Op::Single, Body::DataBlock { chain, data }) => {
                if *chain != ChainParameter::BEGIN_AND_END {
                    return Err(Error::ChainViolation {
                        slot: self.index,
                        chain: chain.0,
                        reason: "a response in several messages to a single-message command",
                    });
                }
                self.response(data.to_vec())
            }
            (Op::Extended { cmd, rx, state }, Body::DataBlock { chain, data }) => {
                self.extended_step(cmd, rx, state, *chain, data)
            }
            (Op::Parameters, Body::Parameters { protocol, data }) => {
                let decoded = ProtocolData::decode(*protocol, data).ok();
                self.done(Outcome::Parameters { protocol: *protocol, data: decoded })
            }
            (Op::Escape, Body::Escape { data }) => self.done(Outcome::Escape(data.to_vec())),
            (Op::Abort, _) => self.done(Outcome::Aborted),
            (Op::Raw, body) => {
                let data_rate_and_clock = match body {
                    Body::DataRateAndClockFrequency { values } => *values,
                    _ => None,
                };
                self.done(Outcome::Reply {
                    message_type: r.message_type(),
                    status: r.status(),
                    error: r.error(),
                    data_rate_and_clock,
                })
            }
            // The message type was checked against the command; anything else is a failed
            // command answered with SlotStatus, handled in on_failure.
            _ => {
                Err(Error::UnexpectedMessage { slot: self.index, command, found: r.message_type() })
            }
        }
    }

    fn response(&mut self, data: Vec<u8>) -> Result<Step, Error> {
        if data.len() < 2 {
            return Err(Error::ResponseTooShort { slot: self.index, len: data.len() });
        }
        if data.len() > self.config.max_response {
            return Err(Error::ResponseTooLong { slot: self.index, max: self.config.max_response });
        }
        self.done(Outcome::Response(Zeroizing::new(data)))
    }

    fn t1_step(&mut self, step: T1Step) -> Result<Step, Error> {
        match step {
            T1Step::Send { block, wtx } => self.xfr(&block, wtx, LevelParameter::BEGIN_AND_END),
            T1Step::Response(response) => {
                if response.len() < 2 {
                    return Err(Error::ResponseTooShort { slot: self.index, len: response.len() });
                }
                self.done(Outcome::Response(response))
            }
            T1Step::IfsdSet(_) | T1Step::Aborted | T1Step::Resynchronised => Err(self.lost()),
        }
    }

    fn extended_step(
        &mut self,
        cmd: Zeroizing<Vec<u8>>,
        mut rx: Zeroizing<Vec<u8>>,
        state: Extended,
        chain: ChainParameter,
        data: &[u8],
    ) -> Result<Step, Error> {
        let slot = self.index;
        let violation = |reason| Error::ChainViolation { slot, chain: chain.0, reason };
        match state {
            Extended::Sending { sent, chunk } if sent + chunk < cmd.len() => {
                // §6.2.1 bChainParameter 10h: empty, the next part of the command is expected.
                if chain != ChainParameter::NEXT_COMMAND || !data.is_empty() {
                    return Err(violation(
                        "expected an empty block asking for the next command part (10h)",
                    ));
                }
                let start = sent + chunk;
                let next_chunk = (cmd.len() - start).min(self.max_payload);
                let last = start + next_chunk >= cmd.len();
                let part = cmd.get(start..start + next_chunk).unwrap_or(&[]).to_vec();
                self.op = Some(Op::Extended {
                    cmd,
                    rx,
                    state: Extended::Sending { sent: start, chunk: next_chunk },
                });
                self.xfr(
                    &part,
                    0,
                    if last { LevelParameter::END } else { LevelParameter::CONTINUE },
                )
            }
            Extended::Sending { .. } | Extended::Receiving { .. } => {
                let last = match state {
                    Extended::Receiving { last } => last,
                    Extended::Sending { .. } => None,
                };
                let first = last.is_none();
                let more = match chain {
                    ChainParameter::BEGIN_AND_END if first => false,
                    ChainParameter::BEGIN if first => true,
                    ChainParameter::CONTINUE if !first => true,
                    ChainParameter::END if !first => false,
                    _ => return Err(violation("response parts out of order")),
                };
                if more && data.is_empty() {
                    return Err(violation("an empty response part that announces more"));
                }
                if rx.len() + data.len() > self.config.max_response {
                    return Err(Error::ResponseTooLong { slot, max: self.config.max_response });
                }
                rx.extend_from_slice(data);
                if !more {
                    let response = core::mem::replace(&mut rx, Zeroizing::new(Vec::new()));
                    return self.response(response.to_vec());
                }
                self.op = Some(Op::Extended {
                    cmd,
                    rx,
                    state: Extended::Receiving { last: Some(chain) },
                });
                // §6.1.4 wLevelParameter 0010h: empty, the next response part is expected.
                self.xfr(&[], 0, LevelParameter::NEXT_RESPONSE)
            }
        }
    }

    fn power_on_step(
        &mut self,
        mut ctx: Box<PowerOnCtx>,
        stage: PowerStage,
        body: &Body<'_>,
    ) -> Result<Step, Error> {
        match stage {
            PowerStage::PowerOn => {
                let Body::DataBlock { data, .. } = body else {
                    return Err(Error::UnexpectedMessage {
                        slot: self.index,
                        command: MessageType::ICC_POWER_ON,
                        found: MessageType::SLOT_STATUS,
                    });
                };
                let atr = Atr::parse(data)
                    .map_err(|source| Error::InvalidAtr { slot: self.index, source })?;
                tracing::debug!(slot = self.index, %atr, "ATR");
                // ISO/IEC 7816-3 §6.2.4: a class indicator without the current class means
                // deactivate and try the next class.
                let excluded = atr.class_indicator().is_some_and(|ci| {
                    ctx.voltage != PowerSelect::Automatic
                        && ci.classes() & ctx.voltage.class_bit() == 0
                });
                if excluded && !ctx.remaining.is_empty() {
                    self.op = Some(Op::PowerOn(ctx, PowerStage::PowerOffForClass));
                    return Ok(self.send(Command::IccPowerOff, 1));
                }
                ctx.protocol = self.choose_protocol(&atr)?;
                ctx.atr = Some(atr);
                self.parameters(ctx)
            }
            PowerStage::PowerOffForClass => {
                let next = ctx.remaining.remove(0);
                ctx.voltage = next;
                self.op = Some(Op::PowerOn(ctx, PowerStage::PowerOn));
                Ok(self.send(Command::IccPowerOn(next), 1))
            }
            PowerStage::Pps(request) => {
                let Body::DataBlock { data, .. } = body else { return Err(self.lost()) };
                // ISO/IEC 7816-3 §9.3: a successful exchange echoes PPSS and PPS0's protocol;
                // PPS1 is echoed (accepted) or absent (default Fi/Di); PCK checks.
                let ok = pps_confirms(&request, data);
                match ok {
                    Some(fi_di) => {
                        ctx.fi_di = fi_di;
                        self.set_parameters_stage(ctx)
                    }
                    None => {
                        Err(Error::PpsFailed { slot: self.index, request, response: data.to_vec() })
                    }
                }
            }
            PowerStage::SetParameters => {
                if let Body::Parameters { protocol, data } = body {
                    if let Ok(decoded) = ProtocolData::decode(*protocol, data) {
                        ctx.parameters = Some(decoded);
                    }
                }
                self.after_parameters(ctx)
            }
            PowerStage::Ifsd => {
                let Body::DataBlock { data, .. } = body else { return Err(self.lost()) };
                let step = match ctx.t1.as_mut() {
                    Some(t1) => t1.receive(data)?,
                    None => return Err(self.lost()),
                };
                self.power_on_ifsd_step(ctx, step)
            }
        }
    }

    fn power_on_ifsd_step(
        &mut self,
        mut ctx: Box<PowerOnCtx>,
        step: T1Step,
    ) -> Result<Step, Error> {
        match step {
            T1Step::Send { block, wtx } => {
                self.op = Some(Op::PowerOn(ctx, PowerStage::Ifsd));
                self.xfr(&block, wtx, LevelParameter::BEGIN_AND_END)
            }
            T1Step::IfsdSet(v) => {
                ctx.ifsd = Some(v);
                self.finish_power_on(ctx)
            }
            _ => Err(self.lost()),
        }
    }

    fn choose_protocol(&self, atr: &Atr) -> Result<u8, Error> {
        let card = [atr.offers(0), atr.offers(1)];
        let none = || Error::NoCommonProtocol { slot: self.index, card, reader: self.protocols.0 };
        // ISO/IEC 7816-3 §8.3 TA2: specific mode, the protocol is imposed.
        if let Some(mode) = atr.specific_mode() {
            return if mode.protocol <= 1 && self.protocols.supports(mode.protocol) {
                Ok(mode.protocol)
            } else {
                Err(none())
            };
        }
        let usable: Vec<u8> = atr
            .protocols()
            .iter()
            .copied()
            .filter(|t| *t <= 1 && self.protocols.supports(*t))
            .collect();
        match self.config.protocol {
            Some(t) if usable.contains(&t) => Ok(t),
            _ => usable.first().copied().ok_or_else(none),
        }
    }

    /// PPS and SetParameters, unless the reader negotiates by itself.
    fn parameters(&mut self, mut ctx: Box<PowerOnCtx>) -> Result<Step, Error> {
        // CCID §5.1 dwFeatures 40h: "automatic parameters negotiation made by the CCID": no
        // PPS and no SetParameters from the host (libccid does the same).
        if self.features.contains(Features::AUTO_PARAMETER_NEGOTIATION) {
            return self.after_parameters(ctx);
        }
        let Some(atr) = ctx.atr.as_ref() else { return Err(self.lost()) };
        let specific = atr.specific_mode();
        if specific.is_some_and(|m| m.implicit_parameters) {
            return Err(Error::ImplicitParameters { slot: self.index });
        }
        let fi_di = match specific {
            // Specific mode: the card already uses TA1.
            Some(_) => atr.ta1().unwrap_or(0x11),
            None => self.speed(atr).unwrap_or(0x11),
        };
        ctx.fi_di = fi_di;
        let default_protocol = atr.protocols().first().copied().unwrap_or(0);
        // ISO/IEC 7816-3 §9.1: PPS only in negotiable mode; CCID dwFeatures 80h: the reader
        // does PPS itself from SetParameters.
        let needs_pps = self.level == ExchangeLevel::Tpdu
            && !self.features.contains(Features::AUTO_PPS)
            && specific.is_none()
            && (ctx.protocol != default_protocol || fi_di != 0x11);
        if needs_pps {
            let request = pps_request(ctx.protocol, (fi_di != 0x11).then_some(fi_di));
            self.op = Some(Op::PowerOn(ctx, PowerStage::Pps(request.clone())));
            return self.xfr(&request, 0, LevelParameter::BEGIN_AND_END);
        }
        self.set_parameters_stage(ctx)
    }

    /// TA1 when the card asks for a speed above the default and the reader reaches it
    /// (libccid IFDHSetProtocolParameters: card baud rate = clock * D / F).
    fn speed(&self, atr: &Atr) -> Option<u8> {
        let ta1 = atr.ta1()?;
        let (fi, di) = (u64::from(atr.fi()?), u64::from(atr.di()?));
        let clock = u64::from(self.default_clock_khz) * 1000;
        let card_baud = clock * di / fi.max(1);
        let default_baud = clock / 372;
        (ta1 != 0x11 && card_baud > default_baud && card_baud <= u64::from(self.max_data_rate))
            .then_some(ta1)
    }

    fn set_parameters_stage(&mut self, ctx: Box<PowerOnCtx>) -> Result<Step, Error> {
        let Some(atr) = ctx.atr.as_ref() else { return Err(self.lost()) };
        let data = protocol_data(atr, ctx.protocol, ctx.fi_di);
        self.op = Some(Op::PowerOn(ctx, PowerStage::SetParameters));
        Ok(self.send(Command::SetParameters(data), 1))
    }

    fn after_parameters(&mut self, mut ctx: Box<PowerOnCtx>) -> Result<Step, Error> {
        if self.level != ExchangeLevel::Tpdu || ctx.protocol != 1 {
            return self.finish_power_on(ctx);
        }
        let Some(atr) = ctx.atr.as_ref() else { return Err(self.lost()) };
        let mut cfg = T1Config::from_atr(atr);
        // Blocks must fit one message: prologue 3, epilogue up to 2.
        let room = u8::try_from(self.max_payload.saturating_sub(5).min(254)).unwrap_or(254).max(1);
        cfg.ifsc = cfg.ifsc.min(room);
        cfg.max_attempts = self.config.t1_max_attempts;
        cfg.max_resynch = self.config.t1_max_resynch;
        cfg.max_response = self.config.max_response;
        let mut t1 = T1::new(cfg)?;
        // CCID dwFeatures 400h: the reader does the IFSD exchange itself.
        let ifsd = self.max_ifsd.map(|v| v.min(room));
        match ifsd {
            Some(v) if !self.features.contains(Features::AUTO_IFSD) => {
                let step = t1.negotiate_ifsd(v)?;
                ctx.t1 = Some(t1);
                self.power_on_ifsd_step(ctx, step)
            }
            _ => {
                ctx.t1 = Some(t1);
                self.finish_power_on(ctx)
            }
        }
    }

    fn finish_power_on(&mut self, ctx: Box<PowerOnCtx>) -> Result<Step, Error> {
        let ctx = *ctx;
        let Some(atr) = ctx.atr else { return Err(self.lost()) };
        self.session = Some(Session { atr: atr.clone(), protocol: ctx.protocol, t1: ctx.t1 });
        self.done(Outcome::PoweredOn(Box::new(PoweredOn {
            atr,
            protocol: ctx.protocol,
            voltage: ctx.voltage,
            parameters: ctx.parameters,
            ifsd: ctx.ifsd,
        })))
    }

    /// Applies an event from the interrupt pipe: a change (removal or insertion) ends the
    /// session with the card, as does a hardware error.
    pub fn apply_event(&mut self, event: SlotEvent) {
        match event {
            SlotEvent::CardInserted | SlotEvent::CardRemoved | SlotEvent::HardwareError(_) => {
                self.session = None;
            }
        }
    }
}

/// Raw commands without a protocol meaning for the engine (see [`Slot::command`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RawCommand {
    /// PC_to_RDR_IccClock.
    IccClock(ClockCommand),
    /// PC_to_RDR_T0APDU.
    T0Apdu {
        /// bmChanges.
        changes: u8,
        /// bClassGetResponse.
        class_get_response: u8,
        /// bClassEnvelope.
        class_envelope: u8,
    },
    /// PC_to_RDR_Mechanical.
    Mechanical(MechanicalFunction),
    /// PC_to_RDR_SetDataRateAndClockFrequency.
    SetDataRateAndClockFrequency {
        /// dwClockFrequency (kHz).
        clock_khz: u32,
        /// dwDataRate (bps).
        data_rate_bps: u32,
    },
}

/// The T=1 fault a TPDU-level reader reports in bError, if it is one.
fn t1_fault(error: SlotError) -> Option<Fault> {
    match error {
        SlotError::ICC_MUTE => Some(Fault::Timeout),
        SlotError::XFR_PARITY_ERROR => Some(Fault::Parity),
        _ => None,
    }
}

/// A PPS request (ISO/IEC 7816-3 §9.2): PPSS FF, PPS0 (bit 5: PPS1 present; bits 4-1: T),
/// PPS1, PCK (exclusive-or of all bytes is 00).
pub fn pps_request(protocol: u8, pps1: Option<u8>) -> Vec<u8> {
    let mut out = vec![0xFF, (protocol & 0x0F) | if pps1.is_some() { 0x10 } else { 0 }];
    if let Some(p) = pps1 {
        out.push(p);
    }
    let pck = out.iter().fold(0, |a, b| a ^ b);
    out.push(pck);
    out
}

/// Checks a PPS response against the request (ISO/IEC 7816-3 §9.3); returns the Fi/Di byte in
/// force (PPS1 when echoed, 11h when the card left it out), or `None` when unsuccessful.
pub fn pps_confirms(request: &[u8], response: &[u8]) -> Option<u8> {
    if response == request {
        // Exact echo.
        return Some(if request.get(1)? & 0x10 != 0 { *request.get(2)? } else { 0x11 });
    }
    let [0xFF, pps0, rest @ ..] = response else { return None };
    if response.iter().fold(0, |a, b| a ^ b) != 0 || pps0 & 0x0F != request.get(1)? & 0x0F {
        return None;
    }
    // PPS1 absent in the response: default Fi/Di; PPS2/PPS3 are not requested here.
    if pps0 & 0x70 == 0 && rest.len() == 1 { Some(0x11) } else { None }
}

/// abProtocolDataStructure from the ATR (CCID §6.1.7; the defaults libccid uses).
pub fn protocol_data(atr: &Atr, protocol: u8, fi_di: u8) -> ProtocolData {
    let inverse = atr.convention() == Convention::Inverse;
    if protocol == 1 {
        let t1 = atr.t1();
        let crc = t1.is_some_and(|p| p.edc == EdcKind::Crc);
        ProtocolData::T1(T1Parameters {
            findex_dindex: fi_di,
            // bmTCCKST1: 000100b in bits 7-2, bit 1 convention, bit 0 CRC.
            tcck: 0x10 | if inverse { 0x02 } else { 0 } | u8::from(crc),
            guard_time: atr.extra_guard_time(),
            waiting_integers: atr.first_tb_for(1).unwrap_or(0x4D),
            clock_stop: 0,
            ifsc: atr.first_ta_for(1).unwrap_or(0x20),
            nad: 0,
        })
    } else {
        ProtocolData::T0(T0Parameters {
            findex_dindex: fi_di,
            // bmTCCKST0: bit 1 convention, the others 0.
            tcck: if inverse { 0x02 } else { 0 },
            guard_time: atr.extra_guard_time(),
            waiting_integer: atr.tc(2).filter(|w| *w != 0).unwrap_or(0x0A),
            clock_stop: 0,
        })
    }
}
