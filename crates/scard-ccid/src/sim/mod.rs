//! A simulated CCID reader (feature `sim`): a USB-level stand-in that implements
//! [`CcidUsb`] in memory, for tests of the driver's every path.
//!
//! The reader is configured as a TPDU T=1, TPDU T=0, short APDU or extended APDU reader
//! ([`SimConfig`]) with one or more slots, each holding a [`SimCard`]: an ATR and a closure
//! from command APDU to response APDU. At TPDU level the simulator plays the card's side of
//! the protocol: for T=1 a card-side block handler (chaining to the announced IFSD, S-blocks,
//! retransmission), for T=0 a card that answers `6Cxx` to a wrong Le and offers response data
//! of case 4 commands with `61xx` and GET RESPONSE. [`Knobs`] inject what real readers and
//! cards do: time extensions, stale answers, lost and corrupted T=1 blocks, WTX and IFS
//! requests from the card, PPS refusal, PIN pad input; [`SimReader::insert_card`] and
//! [`SimReader::remove_card`] queue NotifySlotChange interrupts.

mod t1_card;

use std::collections::VecDeque;
use std::time::Duration;

use scard_iso7816::atr::{Atr, EdcKind};

use crate::descriptor::{ClassDescriptor, Features, HEADER_LEN};
use crate::error::UsbFailure;
use crate::message::{
    ChainParameter, ClockStatus, CommandStatus, ControlSetup, IccStatus, Interrupt, LevelParameter,
    MessageType, PowerSelect, ProtocolData, REQUEST_ABORT, REQUEST_GET_CLOCK_FREQUENCIES,
    REQUEST_GET_DATA_RATES, SlotError, Status, decode_command, reply,
};
use crate::usb::CcidUsb;

pub(crate) use t1_card::{CardBehaviour, CardT1};

/// The behaviour of a simulated card: command APDU in, response APDU out.
pub type CardFn = Box<dyn FnMut(&[u8]) -> Vec<u8> + Send>;

/// A card: its ATR, the classes of operating conditions it works at, and its behaviour as a
/// closure from command APDU to response APDU.
pub struct SimCard {
    atr: Vec<u8>,
    voltages: u8,
    apdu: CardFn,
}

impl core::fmt::Debug for SimCard {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SimCard").field("atr", &self.atr).field("voltages", &self.voltages).finish()
    }
}

impl SimCard {
    /// A card with `atr` answering with `apdu`; it works at every class (A, B, C).
    pub fn new(atr: &[u8], apdu: impl FnMut(&[u8]) -> Vec<u8> + Send + 'static) -> Self {
        Self { atr: atr.to_vec(), voltages: 0x07, apdu: Box::new(apdu) }
    }

    /// Restricts the classes the card answers at (bits: 01h 5 V, 02h 3 V, 04h 1.8 V); at any
    /// other voltage it stays mute.
    pub fn with_voltages(mut self, classes: u8) -> Self {
        self.voltages = classes;
        self
    }
}

/// The exchange level the simulated reader offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimLevel {
    /// TPDU level, the card speaks T=1.
    TpduT1,
    /// TPDU level, the card speaks T=0.
    TpduT0,
    /// Short APDU level.
    ShortApdu,
    /// Short and extended APDU level.
    ExtendedApdu,
}

/// The simulated reader's class descriptor values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimConfig {
    /// The exchange level (and the card protocol at TPDU level).
    pub level: SimLevel,
    /// Number of slots (1..=8).
    pub slots: u8,
    /// dwFeatures (the exchange level bit is set from `level`).
    pub features: u32,
    /// dwProtocols.
    pub protocols: u32,
    /// bVoltageSupport.
    pub voltage_support: u8,
    /// dwMaxCCIDMessageLength.
    pub max_message_length: u32,
    /// dwMaxIFSD.
    pub max_ifsd: u32,
    /// bPINSupport.
    pub pin_support: u8,
    /// bNumClockSupported / bNumDataRatesSupported lists.
    pub clocks_khz: [u32; 1],
    /// Data rates for GET_DATA_RATES.
    pub data_rates: [u32; 2],
}

impl SimConfig {
    fn base(level: SimLevel, level_bit: u32, protocols: u32) -> Self {
        Self {
            level,
            slots: 1,
            features: level_bit
                | Features::AUTO_VOLTAGE
                | Features::AUTO_CLOCK
                | Features::AUTO_BAUD,
            protocols,
            voltage_support: 0x07,
            max_message_length: 271,
            max_ifsd: 254,
            pin_support: 0x03,
            clocks_khz: [4000],
            data_rates: [10753, 344_086],
        }
    }

    /// A TPDU reader with a T=1 card; the host negotiates IFSD and sends SetParameters.
    pub fn tpdu_t1() -> Self {
        Self::base(SimLevel::TpduT1, Features::TPDU | Features::AUTO_PPS, 0x0003)
    }
    /// A TPDU reader with a T=0 card.
    pub fn tpdu_t0() -> Self {
        Self::base(SimLevel::TpduT0, Features::TPDU | Features::AUTO_PPS, 0x0003)
    }
    /// A short APDU reader.
    pub fn short_apdu() -> Self {
        Self::base(
            SimLevel::ShortApdu,
            Features::SHORT_APDU | Features::AUTO_PARAMETER_NEGOTIATION,
            0x0003,
        )
    }
    /// An extended APDU reader whose messages hold 261 bytes of data (chaining above).
    pub fn extended_apdu() -> Self {
        Self::base(
            SimLevel::ExtendedApdu,
            Features::EXTENDED_APDU | Features::AUTO_PARAMETER_NEGOTIATION,
            0x0003,
        )
    }

    /// The class descriptor of this configuration.
    pub fn descriptor(&self) -> ClassDescriptor {
        use crate::descriptor::{LcdLayout, Mechanical, PinSupport, Protocols, VoltageSupport};
        ClassDescriptor {
            bcd_ccid: 0x0110,
            max_slot_index: self.slots.saturating_sub(1),
            voltage_support: VoltageSupport(self.voltage_support),
            protocols: Protocols(self.protocols),
            default_clock: 4000,
            maximum_clock: 8000,
            num_clock_supported: u8::try_from(self.clocks_khz.len()).unwrap_or(0),
            data_rate: 10753,
            max_data_rate: 344_086,
            num_data_rates_supported: u8::try_from(self.data_rates.len()).unwrap_or(0),
            max_ifsd: self.max_ifsd,
            synch_protocols: 0,
            mechanical: Mechanical(0),
            features: Features(self.features),
            max_message_length: self.max_message_length,
            class_get_response: 0xFF,
            class_envelope: 0xFF,
            lcd_layout: LcdLayout::default(),
            pin_support: PinSupport(self.pin_support),
            max_busy_slots: 1,
        }
    }

    /// The 54 bytes of the class descriptor.
    pub fn descriptor_bytes(&self) -> Vec<u8> {
        self.descriptor().to_bytes().to_vec()
    }
}

/// Run-time behaviour of the simulated reader and cards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Knobs {
    /// Time extension answers (bStatus 80h) sent before every answer.
    pub time_extensions: u32,
    /// Stale answers (the previous bSeq) sent before the next answer, then cleared.
    pub stale_answers: u32,
    /// T=1: the next N blocks of the card are lost (the reader reports ICC_MUTE).
    pub lose_card_blocks: u32,
    /// T=1: the next N blocks of the host never reach the card (ICC_MUTE).
    pub lose_host_blocks: u32,
    /// T=1: the next N blocks of the card arrive with a wrong LRC/CRC.
    pub corrupt_card_blocks: u32,
    /// T=1: the card asks for this waiting time extension before each response.
    pub card_wtx: Option<u8>,
    /// T=1: with `card_wtx`, the card asks again this many times after each S(WTX response)
    /// before it answers (`u32::MAX`: it never answers).
    pub card_wtx_repeat: u32,
    /// T=1: the card announces this IFSC before its next response.
    pub card_ifs_request: Option<u8>,
    /// T=1: the card answers S(IFS request) with an R-block.
    pub card_ignores_ifs: bool,
    /// The card answers a PPS request with garbage.
    pub card_rejects_pps: bool,
    /// The digits the user types on the PIN pad (ASCII); `None`: the user cancels.
    pub pinpad_input: Option<Vec<u8>>,
    /// The reader answers every command of this type with "command failed, not supported".
    pub unsupported: Option<MessageType>,
}

#[derive(Debug, Default)]
struct T0Card {
    /// Response data offered with 61xx, fetched with GET RESPONSE.
    pending: Vec<u8>,
}

impl T0Card {
    fn handle(&mut self, tpdu: &[u8], card: &mut dyn FnMut(&[u8]) -> Vec<u8>) -> Vec<u8> {
        let Some((header, rest)) = tpdu.split_first_chunk::<5>() else { return vec![0x67, 0x00] };
        let [cla, ins, p1, p2, p3] = *header;
        let le = if p3 == 0 { 256 } else { usize::from(p3) };
        if ins == 0xC0 && !self.pending.is_empty() {
            let avail = self.pending.len();
            if le > avail {
                return vec![0x6C, u8::try_from(avail % 256).unwrap_or(0)];
            }
            let mut out: Vec<u8> = self.pending.drain(..le).collect();
            let left = self.pending.len();
            out.extend_from_slice(&if left == 0 {
                [0x90, 0x00]
            } else {
                [0x61, u8::try_from(left.min(256) % 256).unwrap_or(0)]
            });
            return out;
        }
        self.pending.clear();
        if rest.is_empty() {
            // Case 1 or 2: P3 is Le.
            let response = card(&[cla, ins, p1, p2, p3]);
            let Some((data, _)) = response.split_last_chunk::<2>() else { return vec![0x6F, 0x00] };
            if data.is_empty() || data.len() == le {
                return response;
            }
            if data.len() > le {
                // More than Le: the first Le bytes, the rest offered with 61xx.
                let mut out = data.get(..le).unwrap_or(&[]).to_vec();
                self.pending = data.get(le..).unwrap_or(&[]).to_vec();
                out.extend_from_slice(&[
                    0x61,
                    u8::try_from(self.pending.len().min(256) % 256).unwrap_or(0),
                ]);
                return out;
            }
            // ISO/IEC 7816-3 §10.3.3: a wrong Le is answered 6Cxx with the right one.
            return vec![0x6C, u8::try_from(data.len() % 256).unwrap_or(0)];
        }
        if rest.len() != usize::from(p3) {
            return vec![0x67, 0x00];
        }
        // Case 3 or 4: the data; the APDU-level card gets Le 00 so it may return data, which a
        // T=0 card offers with 61xx.
        let mut apdu = header.to_vec();
        apdu.extend_from_slice(rest);
        apdu.push(0x00);
        let response = card(&apdu);
        let Some((data, sw)) = response.split_last_chunk::<2>() else { return vec![0x6F, 0x00] };
        if data.is_empty() || *sw != [0x90, 0x00] {
            return sw.to_vec();
        }
        self.pending = data.to_vec();
        vec![0x61, u8::try_from(self.pending.len().min(256) % 256).unwrap_or(0)]
    }
}

#[derive(Debug, Default)]
struct Extended {
    /// The command being assembled from chained parts.
    command: Vec<u8>,
    /// Response parts still to send.
    response: Vec<u8>,
}

#[derive(Debug)]
struct SimSlot {
    card: Option<SimCard>,
    powered: bool,
    t1: CardT1,
    t0: T0Card,
    ext: Extended,
    parameters: ProtocolData,
    /// No exchange since power on: a PPS request is possible.
    fresh: bool,
}

impl SimSlot {
    fn new(card: Option<SimCard>) -> Self {
        Self {
            card,
            powered: false,
            t1: CardT1::new(EdcKind::Lrc, 32),
            t0: T0Card::default(),
            ext: Extended::default(),
            parameters: ProtocolData::T0(crate::message::T0Parameters {
                findex_dindex: 0x11,
                tcck: 0,
                guard_time: 0,
                waiting_integer: 0x0A,
                clock_stop: 0,
            }),
            fresh: false,
        }
    }

    fn icc(&self) -> IccStatus {
        match (&self.card, self.powered) {
            (None, _) => IccStatus::Absent,
            (Some(_), true) => IccStatus::PresentActive,
            (Some(_), false) => IccStatus::PresentInactive,
        }
    }
}

/// The simulated reader. See the module documentation.
#[derive(Debug)]
pub struct SimReader {
    config: SimConfig,
    slots: Vec<SimSlot>,
    bulk_in: VecDeque<Vec<u8>>,
    interrupts: VecDeque<Vec<u8>>,
    /// The knobs; change them between operations.
    pub knobs: Knobs,
    /// Every bulk-out message received, in order.
    pub log: Vec<Vec<u8>>,
    /// Every control request received.
    pub control_log: Vec<ControlSetup>,
}

impl SimReader {
    /// A reader with `card` in slot 0 (more slots start empty).
    pub fn new(config: SimConfig, card: Option<SimCard>) -> Self {
        let mut slots = vec![SimSlot::new(card)];
        for _ in 1..config.slots.max(1) {
            slots.push(SimSlot::new(None));
        }
        Self {
            config,
            slots,
            bulk_in: VecDeque::new(),
            interrupts: VecDeque::new(),
            knobs: Knobs::default(),
            log: Vec::new(),
            control_log: Vec::new(),
        }
    }

    /// The class descriptor.
    pub fn descriptor(&self) -> ClassDescriptor {
        self.config.descriptor()
    }

    /// Inserts `card` into `slot` and queues NotifySlotChange.
    pub fn insert_card(&mut self, slot: u8, card: SimCard) {
        if let Some(s) = self.slots.get_mut(usize::from(slot)) {
            s.card = Some(card);
            s.powered = false;
        }
        self.notify(slot);
    }

    /// Removes the card from `slot` and queues NotifySlotChange.
    pub fn remove_card(&mut self, slot: u8) {
        if let Some(s) = self.slots.get_mut(usize::from(slot)) {
            s.card = None;
            s.powered = false;
        }
        self.notify(slot);
    }

    /// Queues RDR_to_PC_HardwareError (overcurrent) for `slot`.
    pub fn hardware_error(&mut self, slot: u8) {
        let msg = Interrupt::HardwareError {
            slot,
            seq: 0,
            code: crate::message::HardwareErrorCode::OVERCURRENT,
        };
        self.interrupts.push_back(msg.encode());
    }

    fn notify(&mut self, changed: u8) {
        let states: Vec<(bool, bool)> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.card.is_some(), i == usize::from(changed)))
            .collect();
        self.interrupts.push_back(Interrupt::notify(&states).encode());
    }

    /// Complete APDUs the T=1 card of `slot` received.
    pub fn t1_apdus(&self, slot: u8) -> usize {
        self.slots.get(usize::from(slot)).map_or(0, |s| s.t1.apdus)
    }

    /// The IFSD the T=1 card of `slot` knows.
    pub fn t1_card_ifsd(&self, slot: u8) -> u8 {
        self.slots.get(usize::from(slot)).map_or(0, |s| s.t1.ifsd())
    }

    /// The protocol parameters the reader holds for `slot`.
    pub fn parameters(&self, slot: u8) -> Option<ProtocolData> {
        self.slots.get(usize::from(slot)).map(|s| s.parameters)
    }

    /// The message types received on bulk-out, in order.
    pub fn commands(&self) -> Vec<MessageType> {
        self.log.iter().filter_map(|m| m.first().map(|t| MessageType(*t))).collect()
    }

    fn max_payload(&self) -> usize {
        usize::try_from(self.config.max_message_length)
            .unwrap_or(usize::MAX)
            .saturating_sub(HEADER_LEN)
    }

    fn answer(&mut self, message: Vec<u8>) {
        let [_, _, _, _, _, slot, seq, ..] = *message.as_slice() else {
            self.bulk_in.push_back(message);
            return;
        };
        for _ in 0..self.knobs.stale_answers {
            self.bulk_in.push_back(reply::slot_status(
                slot,
                seq.wrapping_sub(1),
                Status::new(CommandStatus::Failed, IccStatus::PresentActive),
                SlotError::CMD_ABORTED,
                ClockStatus::RUNNING,
            ));
        }
        self.knobs.stale_answers = 0;
        for _ in 0..self.knobs.time_extensions {
            let mut ext = message.get(..HEADER_LEN).unwrap_or(&[]).to_vec();
            if let [_, l0, l1, l2, l3, _, _, status, error, _] = ext.as_mut_slice() {
                (*l0, *l1, *l2, *l3) = (0, 0, 0, 0);
                *status = Status::new(CommandStatus::TimeExtension, IccStatus::PresentActive).0;
                *error = 1;
            }
            self.bulk_in.push_back(ext);
        }
        self.bulk_in.push_back(message);
    }

    fn handle(&mut self, msg: &[u8]) {
        let (header, data) = match decode_command(msg) {
            Ok(v) => v,
            Err(_) => {
                let slot = msg.get(5).copied().unwrap_or(0);
                let seq = msg.get(6).copied().unwrap_or(0);
                let failed = Status::new(CommandStatus::Failed, IccStatus::PresentActive);
                self.answer(reply::slot_status(
                    slot,
                    seq,
                    failed,
                    SlotError::BAD_LENGTH,
                    ClockStatus::RUNNING,
                ));
                return;
            }
        };
        let (slot, seq) = (header.slot, header.seq);
        let failed_with = |icc: IccStatus| Status::new(CommandStatus::Failed, icc);
        let Some(icc) = self.slots.get(usize::from(slot)).map(SimSlot::icc) else {
            // CCID §6.2.6: bError 05h, bSlot does not exist.
            let r = reply::slot_status(
                slot,
                seq,
                failed_with(IccStatus::Absent),
                SlotError::BAD_SLOT,
                ClockStatus::RUNNING,
            );
            self.answer(r);
            return;
        };
        if self.knobs.unsupported == Some(header.message_type) {
            let r = reply::slot_status(
                slot,
                seq,
                failed_with(icc),
                SlotError::CMD_NOT_SUPPORTED,
                ClockStatus::RUNNING,
            );
            self.answer(r);
            return;
        }
        let ok = |icc: IccStatus| Status::new(CommandStatus::Processed, icc);
        let answer = match header.message_type {
            MessageType::ICC_POWER_ON => self.power_on(slot, seq, header.specific[0]),
            MessageType::ICC_POWER_OFF => {
                if let Some(s) = self.slots.get_mut(usize::from(slot)) {
                    s.powered = false;
                }
                let icc = self.slot_icc(slot);
                reply::slot_status(slot, seq, ok(icc), SlotError(0), ClockStatus::RUNNING)
            }
            MessageType::GET_SLOT_STATUS => {
                reply::slot_status(slot, seq, ok(icc), SlotError(0), ClockStatus::RUNNING)
            }
            MessageType::XFR_BLOCK => {
                if icc != IccStatus::PresentActive {
                    let r = reply::data_block(
                        slot,
                        seq,
                        failed_with(icc),
                        SlotError::ICC_MUTE,
                        ChainParameter(0),
                        &[],
                    );
                    self.answer(r);
                    return;
                }
                let level = u16::from_le_bytes([header.specific[1], header.specific[2]]);
                self.xfr_block(slot, seq, LevelParameter(level), data)
            }
            MessageType::GET_PARAMETERS | MessageType::RESET_PARAMETERS => {
                let p = self.parameters(slot);
                reply::parameters(slot, seq, ok(icc), SlotError(0), p.as_ref())
            }
            MessageType::SET_PARAMETERS => match ProtocolData::decode(header.specific[0], data) {
                Ok(p) if self.config.protocols & (1 << p.protocol()) != 0 => {
                    if let Some(s) = self.slots.get_mut(usize::from(slot)) {
                        s.parameters = p;
                    }
                    reply::parameters(slot, seq, ok(icc), SlotError(0), Some(&p))
                }
                _ => reply::parameters(slot, seq, failed_with(icc), SlotError::BAD_OFFSET_7, None),
            },
            MessageType::ESCAPE => reply::escape(slot, seq, ok(icc), SlotError(0), data),
            MessageType::SECURE => self.secure(slot, seq, data),
            MessageType::ABORT => {
                reply::slot_status(slot, seq, ok(icc), SlotError(0), ClockStatus::RUNNING)
            }
            MessageType::ICC_CLOCK => {
                let clock = if header.specific[0] == 1 {
                    ClockStatus::STOPPED_UNKNOWN
                } else {
                    ClockStatus::RUNNING
                };
                reply::slot_status(slot, seq, ok(icc), SlotError(0), clock)
            }
            MessageType::SET_DATA_RATE_AND_CLOCK_FREQUENCY => {
                let clock = data
                    .get(..4)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map_or(0, u32::from_le_bytes);
                let rate = data
                    .get(4..8)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map_or(0, u32::from_le_bytes);
                reply::data_rate_and_clock(slot, seq, ok(icc), SlotError(0), clock, rate)
            }
            _ => reply::slot_status(
                slot,
                seq,
                failed_with(icc),
                SlotError::CMD_NOT_SUPPORTED,
                ClockStatus::RUNNING,
            ),
        };
        self.answer(answer);
    }

    fn slot_icc(&self, slot: u8) -> IccStatus {
        self.slots.get(usize::from(slot)).map_or(IccStatus::Absent, SimSlot::icc)
    }

    fn power_on(&mut self, slot: u8, seq: u8, power: u8) -> Vec<u8> {
        let voltage_support = self.config.voltage_support;
        let protocol_t1 = self.config.level == SimLevel::TpduT1;
        let Some(s) = self.slots.get_mut(usize::from(slot)) else { return Vec::new() };
        let failed = |icc, e| {
            reply::data_block(
                slot,
                seq,
                Status::new(CommandStatus::Failed, icc),
                e,
                ChainParameter(0),
                &[],
            )
        };
        let Some(card) = s.card.as_ref() else {
            return failed(IccStatus::Absent, SlotError::ICC_MUTE);
        };
        let Some(select) = PowerSelect::from_byte(power) else {
            return failed(IccStatus::PresentInactive, SlotError::BAD_OFFSET_7);
        };
        if select != PowerSelect::Automatic && voltage_support & select.support_bit() == 0 {
            return failed(IccStatus::PresentInactive, SlotError::BAD_OFFSET_7);
        }
        // The card stays mute at a class it does not support.
        if select != PowerSelect::Automatic && card.voltages & select.class_bit() == 0 {
            s.powered = false;
            return failed(IccStatus::PresentInactive, SlotError::ICC_MUTE);
        }
        let atr = card.atr.clone();
        s.powered = true;
        s.fresh = true;
        s.t0 = T0Card::default();
        s.ext = Extended::default();
        let (edc, ifsc) = match Atr::parse(&atr).ok().and_then(|a| a.t1()) {
            Some(p) if protocol_t1 => (p.edc, u8::try_from(p.ifsc).unwrap_or(32)),
            _ => (EdcKind::Lrc, 32),
        };
        s.t1 = CardT1::new(edc, ifsc);
        reply::data_block(
            slot,
            seq,
            Status::new(CommandStatus::Processed, IccStatus::PresentActive),
            SlotError(0),
            ChainParameter(0),
            &atr,
        )
    }

    /// The card's answer to `data` at TPDU level, with the loss and corruption knobs applied;
    /// `None` means the reader reports ICC_MUTE.
    fn tpdu(&mut self, slot: u8, data: &[u8]) -> Option<Vec<u8>> {
        let level = self.config.level;
        let rejects_pps = self.knobs.card_rejects_pps;
        let mut behaviour = CardBehaviour {
            wtx: self.knobs.card_wtx,
            wtx_repeat: self.knobs.card_wtx_repeat,
            ifs_request: self.knobs.card_ifs_request,
            ignore_ifs: self.knobs.card_ignores_ifs,
        };
        if level == SimLevel::TpduT1 && self.knobs.lose_host_blocks > 0 {
            self.knobs.lose_host_blocks -= 1;
            return None;
        }
        let s = self.slots.get_mut(usize::from(slot))?;
        let fresh = core::mem::replace(&mut s.fresh, false);
        // ISO/IEC 7816-3 §9.2: a PPS request right after the ATR (PPSS = FF).
        if fresh && data.first() == Some(&0xFF) {
            return Some(if rejects_pps { vec![0xFF, 0x0E, 0x00] } else { data.to_vec() });
        }
        let card = s.card.as_mut()?;
        let answer = match level {
            SimLevel::TpduT1 => {
                let block = s.t1.handle(data, &mut card.apdu, &mut behaviour);
                self.knobs.card_ifs_request = behaviour.ifs_request;
                block
            }
            _ => s.t0.handle(data, &mut card.apdu),
        };
        if level == SimLevel::TpduT1 {
            if self.knobs.lose_card_blocks > 0 {
                self.knobs.lose_card_blocks -= 1;
                return None;
            }
            if self.knobs.corrupt_card_blocks > 0 {
                self.knobs.corrupt_card_blocks -= 1;
                let mut bad = answer;
                if let Some(last) = bad.last_mut() {
                    *last ^= 0x5A;
                }
                return Some(bad);
            }
        }
        Some(answer)
    }

    fn xfr_block(&mut self, slot: u8, seq: u8, level: LevelParameter, data: &[u8]) -> Vec<u8> {
        let ok = Status::new(CommandStatus::Processed, IccStatus::PresentActive);
        let failed = Status::new(CommandStatus::Failed, IccStatus::PresentActive);
        match self.config.level {
            SimLevel::TpduT1 | SimLevel::TpduT0 => match self.tpdu(slot, data) {
                Some(answer) => {
                    reply::data_block(slot, seq, ok, SlotError(0), ChainParameter(0), &answer)
                }
                None => reply::data_block(
                    slot,
                    seq,
                    failed,
                    SlotError::ICC_MUTE,
                    ChainParameter(0),
                    &[],
                ),
            },
            SimLevel::ShortApdu => {
                let response = self.apdu(slot, data);
                reply::data_block(slot, seq, ok, SlotError(0), ChainParameter(0), &response)
            }
            SimLevel::ExtendedApdu => self.extended(slot, seq, level, data),
        }
    }

    fn apdu(&mut self, slot: u8, apdu: &[u8]) -> Vec<u8> {
        match self.slots.get_mut(usize::from(slot)).and_then(|s| s.card.as_mut()) {
            Some(card) => (card.apdu)(apdu),
            None => vec![0x6F, 0x00],
        }
    }

    fn extended(&mut self, slot: u8, seq: u8, level: LevelParameter, data: &[u8]) -> Vec<u8> {
        let ok = Status::new(CommandStatus::Processed, IccStatus::PresentActive);
        let failed = Status::new(CommandStatus::Failed, IccStatus::PresentActive);
        let max = self.max_payload();
        let Some(s) = self.slots.get_mut(usize::from(slot)) else { return Vec::new() };
        let complete = match level {
            LevelParameter::BEGIN_AND_END => Some(data.to_vec()),
            LevelParameter::BEGIN => {
                s.ext.command = data.to_vec();
                None
            }
            LevelParameter::CONTINUE => {
                s.ext.command.extend_from_slice(data);
                None
            }
            LevelParameter::END => {
                s.ext.command.extend_from_slice(data);
                Some(core::mem::take(&mut s.ext.command))
            }
            LevelParameter::NEXT_RESPONSE => {
                let n = s.ext.response.len().min(max);
                let part: Vec<u8> = s.ext.response.drain(..n).collect();
                let chain = if s.ext.response.is_empty() {
                    ChainParameter::END
                } else {
                    ChainParameter::CONTINUE
                };
                return reply::data_block(slot, seq, ok, SlotError(0), chain, &part);
            }
            _ => {
                return reply::data_block(
                    slot,
                    seq,
                    failed,
                    SlotError::BAD_OFFSET_8,
                    ChainParameter(0),
                    &[],
                );
            }
        };
        let Some(apdu) = complete else {
            // §6.2.1 bChainParameter 10h: the next part of the command is expected.
            return reply::data_block(
                slot,
                seq,
                ok,
                SlotError(0),
                ChainParameter::NEXT_COMMAND,
                &[],
            );
        };
        let response = self.apdu(slot, &apdu);
        if response.len() <= max {
            return reply::data_block(
                slot,
                seq,
                ok,
                SlotError(0),
                ChainParameter::BEGIN_AND_END,
                &response,
            );
        }
        let Some(s) = self.slots.get_mut(usize::from(slot)) else { return Vec::new() };
        let first = response.get(..max).unwrap_or(&[]).to_vec();
        s.ext.response = response.get(max..).unwrap_or(&[]).to_vec();
        reply::data_block(slot, seq, ok, SlotError(0), ChainParameter::BEGIN, &first)
    }

    /// PC_to_RDR_Secure: the PIN pad fills the APDU template and the reader sends it.
    fn secure(&mut self, slot: u8, seq: u8, data: &[u8]) -> Vec<u8> {
        let ok = Status::new(CommandStatus::Processed, IccStatus::PresentActive);
        let failed = Status::new(CommandStatus::Failed, IccStatus::PresentActive);
        let refuse = |e| reply::data_block(slot, seq, failed, e, ChainParameter(0), &[]);
        // §6.1.11.7 / .8: where abPINApdu starts, and bmFormatString.
        let (start, format) = match data.first() {
            Some(0x00) if self.config.pin_support & 1 != 0 => (15, data.get(2).copied()),
            Some(0x01) if self.config.pin_support & 2 != 0 => {
                let n = data.get(11).copied().unwrap_or(0);
                (15 + usize::from(n != 0) + usize::from(n >= 3) + 3, data.get(2).copied())
            }
            _ => return refuse(SlotError::CMD_NOT_SUPPORTED),
        };
        let prologue = data.get(start - 3..start).unwrap_or(&[]).to_vec();
        let Some(mut apdu) = data.get(start..).map(<[u8]>::to_vec) else {
            return refuse(SlotError::BAD_LENGTH);
        };
        let Some(pin) = self.knobs.pinpad_input.clone() else {
            return refuse(SlotError::PIN_CANCELLED);
        };
        // bmFormatString bits 6-3: PIN position in the APDU data, in bytes when bit 7 is set.
        let pos = 5 + usize::from(format.unwrap_or(0) >> 3 & 0x0F);
        for (i, b) in pin.iter().enumerate() {
            if let Some(slot_byte) = apdu.get_mut(pos + i) {
                *slot_byte = *b;
            }
        }
        let answer = match self.config.level {
            SimLevel::TpduT1 => {
                // The reader builds the I-block from bTeoPrologue.
                let mut block = prologue;
                block.extend_from_slice(&apdu);
                let edc = self.slots.get(usize::from(slot)).map_or(EdcKind::Lrc, |s| s.t1.edc());
                match edc {
                    EdcKind::Lrc => {
                        let l = crate::t1::lrc(&block);
                        block.push(l);
                    }
                    EdcKind::Crc => {
                        let c = crate::t1::crc(&block);
                        block.extend_from_slice(&c);
                    }
                }
                self.tpdu(slot, &block)
            }
            SimLevel::TpduT0 => {
                // The PIN APDU is case 3: header and data.
                self.tpdu(slot, &apdu)
            }
            _ => Some(self.apdu(slot, &apdu)),
        };
        match answer {
            Some(a) => reply::data_block(slot, seq, ok, SlotError(0), ChainParameter(0), &a),
            None => refuse(SlotError::ICC_MUTE),
        }
    }
}

impl CcidUsb for SimReader {
    fn bulk_out(&mut self, message: &[u8], _timeout: Duration) -> Result<(), UsbFailure> {
        self.log.push(message.to_vec());
        self.handle(message);
        Ok(())
    }

    fn bulk_in(&mut self, _timeout: Duration) -> Result<Vec<u8>, UsbFailure> {
        self.bulk_in.pop_front().ok_or(UsbFailure::Timeout)
    }

    fn interrupt_in(&mut self, _timeout: Duration) -> Result<Vec<u8>, UsbFailure> {
        self.interrupts.pop_front().ok_or(UsbFailure::Timeout)
    }

    fn control(
        &mut self,
        setup: &ControlSetup,
        _data: &[u8],
        _timeout: Duration,
    ) -> Result<Vec<u8>, UsbFailure> {
        self.control_log.push(*setup);
        match (setup.request_type, setup.request) {
            (0x21, REQUEST_ABORT) => Ok(Vec::new()),
            (0xA1, REQUEST_GET_CLOCK_FREQUENCIES) => {
                Ok(self.config.clocks_khz.iter().flat_map(|c| c.to_le_bytes()).collect())
            }
            (0xA1, REQUEST_GET_DATA_RATES) => {
                Ok(self.config.data_rates.iter().flat_map(|c| c.to_le_bytes()).collect())
            }
            _ => Err(UsbFailure::Stall),
        }
    }
}
