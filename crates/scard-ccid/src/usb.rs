//! The USB boundary of the driver and a blocking runner over it.
//!
//! [`CcidUsb`] is the whole of what the protocol core needs from USB: the four transfers of a
//! CCID interface (CCID Rev 1.1 §5.2: bulk-out for commands, bulk-in for responses,
//! interrupt-in for slot changes, the default control pipe for class requests). A rusb shell
//! implements it over a claimed interface; `sim::SimReader` (feature `sim`) implements it in memory.
//! [`Driver`] runs [`Slot`] engines over it: it moves bytes, applies the timeouts, and aborts a
//! command the reader does not answer in time. Time is read here (a shell), never in the
//! engine.
//!
//! **Card removal while an answer is awaited.** A reader may never answer the command pending
//! when the card goes: QEMU 7.2's usb-ccid drops that answer (tests/qemu-ccid/README.md). So
//! while the driver waits for an answer longer than [`DriverConfig::event_check`], it reads the
//! interrupt pipe between waits of that length (over [`CcidUsb::bulk_in_started_within`], so no
//! message is cut in two): a NotifySlotChange reporting the slot changed (card removed, or
//! removed and another inserted) ends the wait at once with [`Error::CardAbsent`]. The
//! notifications read there are kept and returned by the next [`Driver::poll_events`]. A
//! GetSlotStatus cannot be asked instead: the slot engine has one command in flight per slot
//! (answers are matched by bSeq) and a reader answers a second command to a busy slot with
//! CMD_SLOT_BUSY, so readers without an interrupt endpoint wait for the answer or the deadline.

use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::descriptor::{ClassDescriptor, decode_dword_list};
use crate::error::{Error, UsbFailure, UsbOperation};
use crate::message::{
    ClassRequest, ClockStatus, ControlSetup, IccStatus, MessageType, PinModify, PinVerify,
    ProtocolData,
};
use crate::slot::{Outcome, PoweredOn, RawCommand, Slot, SlotConfig, SlotEvent, Step, slot_events};

/// The USB transfers of one CCID interface.
pub trait CcidUsb {
    /// Writes one CCID message to the bulk-out endpoint (the shell splits it into packets; the
    /// reader knows the message's end from its dwLength, so no zero-length packet follows a
    /// message that fills its last packet, as with libccid).
    fn bulk_out(&mut self, message: &[u8], timeout: Duration) -> Result<(), UsbFailure>;
    /// Reads one CCID message from the bulk-in endpoint, reassembled from its packets, within
    /// `timeout`.
    fn bulk_in(&mut self, timeout: Duration) -> Result<Vec<u8>, UsbFailure>;
    /// Like [`CcidUsb::bulk_in`], but returns `Ok(None)` when no message has started to arrive
    /// within `start` (shorter than `timeout`): the driver then looks at the interrupt pipe and
    /// waits again. A message whose first packet came within `start` has all of `timeout` to
    /// complete, so a wait in slices never cuts a message in two.
    ///
    /// The default waits for the whole message within `timeout` (it never returns `Ok(None)`):
    /// right for transports without partial messages or real waiting (the simulated reader),
    /// which are then not read in slices.
    fn bulk_in_started_within(
        &mut self,
        start: Duration,
        timeout: Duration,
    ) -> Result<Option<Vec<u8>>, UsbFailure> {
        let _ = start;
        self.bulk_in(timeout).map(Some)
    }
    /// Reads one interrupt-in message; [`UsbFailure::Timeout`] when none came.
    fn interrupt_in(&mut self, timeout: Duration) -> Result<Vec<u8>, UsbFailure>;
    /// A class request on the control pipe: an IN request returns what the device sent (at
    /// most wLength bytes), an OUT request sends `data`.
    fn control(
        &mut self,
        setup: &ControlSetup,
        data: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, UsbFailure>;
}

/// Timeouts and engine configuration of a [`Driver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverConfig {
    /// bInterfaceNumber of the CCID interface (wIndex of class requests).
    pub interface: u8,
    /// Timeout of one bulk read, multiplied by the engine's wait multiplier.
    pub read_timeout: Duration,
    /// Timeout of bulk writes and control transfers.
    pub write_timeout: Duration,
    /// Deadline of a whole operation (DESIGN: every exchange has a deadline, 30 s default).
    pub deadline: Duration,
    /// Read timeout and deadline while the reader waits for PIN entry (PC_to_RDR_Secure);
    /// libccid allows at least 90 s.
    pub pin_entry_timeout: Duration,
    /// While an answer is awaited longer than this, the interrupt pipe is read between waits of
    /// this length, and a change of the slot ends the wait (see the module documentation).
    /// `None`: one wait per answer, the interrupt pipe is not read.
    pub event_check: Option<Duration>,
    /// The slot engine configuration (its `slot` field is set per slot).
    pub slot: SlotConfig,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            interface: 0,
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            deadline: Duration::from_secs(30),
            pin_entry_timeout: Duration::from_secs(90),
            event_check: Some(Duration::from_millis(100)),
            slot: SlotConfig::default(),
        }
    }
}

/// A CCID reader driven over [`CcidUsb`].
#[derive(Debug)]
pub struct Driver<U: CcidUsb> {
    usb: U,
    descriptor: ClassDescriptor,
    slots: Vec<Slot>,
    config: DriverConfig,
    /// One bSeq counter for the reader, shared by its slots (as libccid does).
    seq: u8,
    /// Slot events read from the interrupt pipe while waiting for an answer, already applied
    /// to the engines, not yet returned by [`Driver::poll_events`].
    events: Vec<(u8, SlotEvent)>,
}

/// What one wait for a bulk-in answer brought.
enum Received {
    Message(Vec<u8>),
    /// Nothing within the time.
    Timeout,
    /// The slot changed (its card went away) while the answer was awaited.
    SlotChanged,
}

impl<U: CcidUsb> Driver<U> {
    /// A driver for the reader `descriptor` describes, with one engine per slot.
    pub fn new(usb: U, descriptor: ClassDescriptor, config: DriverConfig) -> Result<Self, Error> {
        let slots = (0..=descriptor.max_slot_index())
            .map(|i| Slot::new(&descriptor, SlotConfig { slot: i, ..config.slot }))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { usb, descriptor, slots, config, seq: 0, events: Vec::new() })
    }

    /// The USB side.
    pub fn usb(&self) -> &U {
        &self.usb
    }
    /// The USB side, mutably (tests turn the simulator's knobs through it).
    pub fn usb_mut(&mut self) -> &mut U {
        &mut self.usb
    }
    /// The class descriptor.
    pub fn descriptor(&self) -> &ClassDescriptor {
        &self.descriptor
    }
    /// The configuration.
    pub fn config(&self) -> &DriverConfig {
        &self.config
    }
    /// Sets the deadline of each following operation (DESIGN: every exchange has one).
    pub fn set_deadline(&mut self, deadline: Duration) {
        self.config.deadline = deadline;
    }
    /// The engine of slot `slot`.
    pub fn slot(&self, slot: u8) -> Option<&Slot> {
        self.slots.get(usize::from(slot))
    }

    fn engine(&mut self, slot: u8) -> Result<&mut Slot, Error> {
        let max_slot_index = self.descriptor.max_slot_index();
        self.slots.get_mut(usize::from(slot)).ok_or(Error::NoSuchSlot { slot, max_slot_index })
    }

    /// Starts an operation on `slot` and runs it to its outcome.
    fn run(
        &mut self,
        slot: u8,
        start: impl FnOnce(&mut Slot) -> Result<Step, Error>,
    ) -> Result<Outcome, Error> {
        let seq = self.seq;
        let engine = self.engine(slot)?;
        engine.set_next_seq(seq);
        let first = start(engine);
        let next_seq = engine.next_seq();
        self.seq = next_seq;
        let mut step = first?;
        let started = Instant::now();
        loop {
            let wait = match step {
                Step::Done(outcome) => return Ok(outcome),
                Step::Send { message, wait_multiplier } => {
                    if let Err(failure) = self.usb.bulk_out(&message, self.config.write_timeout) {
                        self.engine(slot)?.cancel();
                        return Err(Error::Usb { operation: UsbOperation::BulkOut, failure });
                    }
                    wait_multiplier
                }
                Step::Receive { wait_multiplier } => wait_multiplier,
            };
            self.seq = self.engine(slot)?.next_seq();
            let command = self.engine(slot)?.pending_command().unwrap_or(MessageType(0));
            let (timeout, deadline) = if command == MessageType::SECURE {
                let pin = self.config.pin_entry_timeout;
                (pin, self.config.deadline.max(pin))
            } else {
                (self.config.read_timeout.saturating_mul(wait.max(1)), self.config.deadline)
            };
            let Some(left) = deadline.checked_sub(started.elapsed()).filter(|l| !l.is_zero())
            else {
                self.abort_quietly(slot);
                return Err(Error::Timeout { slot, command });
            };
            // No read outlasts the deadline of the whole operation.
            let message = match self.receive(slot, timeout.min(left)) {
                Ok(Received::Message(m)) => m,
                Ok(Received::Timeout) => {
                    self.abort_quietly(slot);
                    return Err(Error::Timeout { slot, command });
                }
                Ok(Received::SlotChanged) => {
                    // The reader may never answer (QEMU 7.2 drops the answer): no abort, a late
                    // answer is discarded as stale by its bSeq.
                    self.engine(slot)?.cancel();
                    tracing::debug!(slot, %command, "CCID: slot changed while awaiting the answer");
                    return Err(Error::CardAbsent { slot, command });
                }
                Err(failure) => {
                    self.engine(slot)?.cancel();
                    return Err(Error::Usb { operation: UsbOperation::BulkIn, failure });
                }
            };
            step = self.engine(slot)?.on_bulk_in(&message)?;
        }
    }

    /// Waits up to `budget` for the next bulk-in message; in slices of
    /// [`DriverConfig::event_check`] with a look at the interrupt pipe in between, when the
    /// transport waits in slices (see the module documentation).
    fn receive(&mut self, slot: u8, budget: Duration) -> Result<Received, UsbFailure> {
        let Some(check) = self.config.event_check.filter(|c| !c.is_zero() && *c < budget) else {
            return match self.usb.bulk_in(budget) {
                Ok(m) => Ok(Received::Message(m)),
                Err(UsbFailure::Timeout) => Ok(Received::Timeout),
                Err(failure) => Err(failure),
            };
        };
        let until = Instant::now() + budget;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Received::Timeout);
            }
            match self.usb.bulk_in_started_within(check.min(left), left) {
                Ok(Some(m)) => return Ok(Received::Message(m)),
                Ok(None) => {}
                Err(UsbFailure::Timeout) => return Ok(Received::Timeout),
                Err(failure) => return Err(failure),
            }
            if self.slot_changed(slot) {
                return Ok(Received::SlotChanged);
            }
        }
    }

    /// Reads the interrupt pipe without waiting, applies and keeps what it reports, and says
    /// whether `slot` changed (card removed, or removed and another inserted). A failing
    /// interrupt pipe is no change: the bulk-in wait goes on.
    fn slot_changed(&mut self, slot: u8) -> bool {
        let message = match self.usb.interrupt_in(Duration::from_millis(1)) {
            Ok(m) => m,
            Err(UsbFailure::Timeout) => return false,
            Err(failure) => {
                tracing::debug!("CCID: interrupt pipe while awaiting an answer: {failure}");
                return false;
            }
        };
        let events = match slot_events(&message) {
            Ok(events) => events,
            Err(err) => {
                tracing::debug!("CCID: interrupt message while awaiting an answer: {err}");
                return false;
            }
        };
        let mut changed = false;
        for (s, event) in events {
            changed |=
                s == slot && matches!(event, SlotEvent::CardRemoved | SlotEvent::CardInserted);
            if let Some(engine) = self.slots.get_mut(usize::from(s)) {
                engine.apply_event(event);
            }
            self.events.push((s, event));
        }
        changed
    }

    /// After a timeout: ABORT on the control pipe and PC_to_RDR_Abort (CCID §5.3.1), best
    /// effort; the answers are left for the stale-answer filter.
    fn abort_quietly(&mut self, slot: u8) {
        let seq = self.seq;
        let Ok(engine) = self.engine(slot) else { return };
        engine.set_next_seq(seq);
        let (request, step) = engine.abort();
        engine.cancel();
        self.seq = engine.next_seq();
        let setup = request.setup(self.config.interface);
        let _ = self.usb.control(&setup, &[], self.config.write_timeout);
        if let Step::Send { message, .. } = step {
            let _ = self.usb.bulk_out(&message, self.config.write_timeout);
        }
    }

    /// Powers the card in `slot` on and sets it up.
    pub fn power_on(&mut self, slot: u8) -> Result<PoweredOn, Error> {
        match self.run(slot, Slot::power_on)? {
            Outcome::PoweredOn(p) => Ok(*p),
            _ => Err(Error::NoOperation { slot }),
        }
    }

    /// Powers the card in `slot` off.
    pub fn power_off(&mut self, slot: u8) -> Result<IccStatus, Error> {
        match self.run(slot, Slot::power_off)? {
            Outcome::PoweredOff(icc) => Ok(icc),
            _ => Err(Error::NoOperation { slot }),
        }
    }

    /// The status of `slot`.
    pub fn slot_status(&mut self, slot: u8) -> Result<(IccStatus, ClockStatus), Error> {
        match self.run(slot, Slot::get_slot_status)? {
            Outcome::SlotStatus { icc, clock, .. } => Ok((icc, clock)),
            _ => Err(Error::NoOperation { slot }),
        }
    }

    /// Exchanges a command APDU with the card in `slot`.
    pub fn transmit(&mut self, slot: u8, apdu: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        match self.run(slot, |s| s.transmit(apdu))? {
            Outcome::Response(r) => Ok(r),
            _ => Err(Error::NoOperation { slot }),
        }
    }

    /// PIN verification on the reader's PIN pad.
    pub fn verify_pin(&mut self, slot: u8, verify: PinVerify) -> Result<Zeroizing<Vec<u8>>, Error> {
        match self.run(slot, |s| s.verify_pin(verify))? {
            Outcome::Response(r) => Ok(r),
            _ => Err(Error::NoOperation { slot }),
        }
    }

    /// PIN modification on the reader's PIN pad.
    pub fn modify_pin(&mut self, slot: u8, modify: PinModify) -> Result<Zeroizing<Vec<u8>>, Error> {
        match self.run(slot, |s| s.modify_pin(modify))? {
            Outcome::Response(r) => Ok(r),
            _ => Err(Error::NoOperation { slot }),
        }
    }

    /// A vendor escape command.
    pub fn escape(&mut self, slot: u8, data: &[u8]) -> Result<Vec<u8>, Error> {
        match self.run(slot, |s| s.escape(data))? {
            Outcome::Escape(r) => Ok(r),
            _ => Err(Error::NoOperation { slot }),
        }
    }

    /// GetParameters.
    pub fn get_parameters(&mut self, slot: u8) -> Result<(u8, Option<ProtocolData>), Error> {
        match self.run(slot, Slot::get_parameters)? {
            Outcome::Parameters { protocol, data } => Ok((protocol, data)),
            _ => Err(Error::NoOperation { slot }),
        }
    }

    /// SetParameters.
    pub fn set_parameters(
        &mut self,
        slot: u8,
        data: ProtocolData,
    ) -> Result<(u8, Option<ProtocolData>), Error> {
        match self.run(slot, |s| s.set_parameters(data))? {
            Outcome::Parameters { protocol, data } => Ok((protocol, data)),
            _ => Err(Error::NoOperation { slot }),
        }
    }

    /// IccClock, T0APDU, Mechanical or SetDataRateAndClockFrequency.
    pub fn command(&mut self, slot: u8, command: RawCommand) -> Result<Outcome, Error> {
        self.run(slot, |s| s.command(command))
    }

    /// Aborts whatever `slot` is doing (CCID §5.3.1) and waits for the reader's answer.
    pub fn abort(&mut self, slot: u8) -> Result<(), Error> {
        let seq = self.seq;
        let engine = self.engine(slot)?;
        engine.set_next_seq(seq);
        let (request, step) = engine.abort();
        self.seq = engine.next_seq();
        let setup = request.setup(self.config.interface);
        self.usb
            .control(&setup, &[], self.config.write_timeout)
            .map_err(|failure| Error::Usb { operation: UsbOperation::Control, failure })?;
        match self.run(slot, |_| Ok(step))? {
            Outcome::Aborted => Ok(()),
            _ => Err(Error::NoOperation { slot }),
        }
    }

    /// GET_CLOCK_FREQUENCIES (CCID §5.3.2), in kHz.
    pub fn clock_frequencies(&mut self) -> Result<Vec<u32>, Error> {
        let request =
            ClassRequest::GetClockFrequencies { count: self.descriptor.num_clock_supported() };
        self.dword_request(request)
    }

    /// GET_DATA_RATES (CCID §5.3.3), in bps.
    pub fn data_rates(&mut self) -> Result<Vec<u32>, Error> {
        let request =
            ClassRequest::GetDataRates { count: self.descriptor.num_data_rates_supported() };
        self.dword_request(request)
    }

    fn dword_request(&mut self, request: ClassRequest) -> Result<Vec<u32>, Error> {
        let setup = request.setup(self.config.interface);
        let data = self
            .usb
            .control(&setup, &[], self.config.write_timeout)
            .map_err(|failure| Error::Usb { operation: UsbOperation::Control, failure })?;
        decode_dword_list(&data)
    }

    /// Reads the interrupt pipe once and applies what it says to the slots (a change ends the
    /// session with the card). No message within `timeout` is no event. Events read while an
    /// answer was awaited come first, without reading the pipe.
    pub fn poll_events(&mut self, timeout: Duration) -> Result<Vec<(u8, SlotEvent)>, Error> {
        if !self.events.is_empty() {
            return Ok(core::mem::take(&mut self.events));
        }
        let message = match self.usb.interrupt_in(timeout) {
            Ok(m) => m,
            Err(UsbFailure::Timeout) => return Ok(Vec::new()),
            Err(failure) => {
                return Err(Error::Usb { operation: UsbOperation::InterruptIn, failure });
            }
        };
        let events = slot_events(&message)?;
        for (slot, event) in &events {
            if let Some(engine) = self.slots.get_mut(usize::from(*slot)) {
                engine.apply_event(*event);
            }
        }
        Ok(events)
    }
}
