//! The `ccid:` backend of scard-transport: USB CCID readers driven by this crate's core.
//!
//! [`CcidBackend`] implements [`Backend`] over any [`UsbBus`] (the rusb shell's
//! `RusbBus` for real readers, an in-memory bus of simulated readers in the tests), and
//! [`CcidTransport`] implements [`CardTransport`] over a slot of an opened reader.
//!
//! **Reader names.** One reader per slot: `ccid:<vid>:<pid>:<serial>`, vid and pid as four
//! lower-case hex digits, the serial the device's iSerialNumber string. A device without a
//! serial number is named by its bus and address instead, `@<bus>.<address>` (these change
//! when it is plugged in again). A multi-slot reader (bMaxSlotIndex > 0) has one name per
//! slot, with `#<slot>` appended: `ccid:076b:3021:1234#0`, `ccid:076b:3021:1234#1`. When
//! connecting, `ccid:<vid>:<pid>` (no serial) names the first such reader with a card,
//! `ccid:<vid>:<pid>:<serial>` without `#` the first slot of that reader with a card, and
//! `ccid:*` the first CCID slot with a card. (A device with two CCID interfaces gets the same
//! names for both; the first interface wins.)
//!
//! **Sharing the reader with pcscd.** On a desktop, pcscd with libccid usually serves the same
//! USB readers, and a USB interface has one owner at a time. So the backend claims a reader's
//! interface only while a connection of this process uses it:
//! - Listing readers claims each interface briefly: it reads the notifications the reader
//!   queued, asks GetSlotStatus of every slot, and releases the interface. It never powers a
//!   card on: a present card is listed with its ATR when a connection of this process powered
//!   it (the interface is then still claimed), otherwise with an empty ATR, shown as "ATR
//!   unknown (not powered)" ([`ReaderInfo::atr`]). Connecting powers the card on and reads
//!   the ATR.
//! - A reader whose interface another process or driver holds (libusb Busy; pcscd's libccid
//!   claims its readers for as long as it runs), or that the system does not let us open
//!   (Access), is left out of the list and reported apart, as
//!   [`TransportError::ReaderInUse`] "in use by another driver (pcscd?)"
//!   ([`Backend::unusable`]): the other readers are listed as usual. Connecting to it fails
//!   with that error.
//! - A connection claims the interface when it is made (a kernel driver bound to it is
//!   detached, and attached again on release) and the last connection to the reader releases
//!   it on disconnect or drop. Connections of this process to one reader share the claim.
//!
//! **What the backend does.**
//! - Connects: the card is powered on (IccPowerOn, ATR) unless it already is by this
//!   connection's claim; exchanges go through the slot engine (TPDU T=0 / T=1, short or
//!   extended APDU, whatever the reader's level), each within the connection's deadline
//!   ([`CardTransport::set_timeout`]; a reader asking for more time (bStatus 80h) is followed
//!   up to the engine's cap, [`crate::SlotConfig::max_time_extensions`]).
//! - Reconnect with reset: IccPowerOff then IccPowerOn, ATR read again; other connections to
//!   the slot get [`TransportError::CardReset`] once.
//! - Card removal: NotifySlotChange on the interrupt pipe (read before an exchange when it was
//!   not read for [`CcidConfig::event_poll`], while an answer is awaited
//!   ([`crate::DriverConfig::event_check`]), and by [`Backend::wait_events`]), or a command
//!   answered with "no ICC present", ends the connection's session:
//!   [`TransportError::CardRemoved`] until [`CardTransport::reconnect`].
//! - Events: card inserted / removed, from the interrupt pipe of the readers a connection
//!   holds, and for the others by a brief look (as when listing) every [`CcidConfig::rescan`];
//!   reader added / removed by enumerating the bus again (every [`CcidConfig::rescan`]). The
//!   first look is the baseline: it produces no events. An insertion carries the ATR when a
//!   connection holds the reader (the new card is powered on to read it, as pcscd does), an
//!   empty ATR otherwise (the card is not powered on just to report it). A card swapped
//!   between two brief looks, with nobody holding the reader, is not seen as a change.
//!
//! Connections in one process share the opened reader: sharing modes and transactions are
//! enforced between them (while the interface is claimed, no other process can use it).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use scard_transport::{
    Backend, CardTransport, Disposition, Protocol, ReaderEvent, ReaderInfo, ReaderName, ShareMode,
    TransportError, command_name,
};

use crate::descriptor::{ClassDescriptor, ExchangeLevel};
use crate::error::{Error, UsbFailure};
use crate::message::IccStatus;
use crate::slot::SlotEvent;
use crate::usb::{CcidUsb, Driver, DriverConfig};

/// The backend's name in [`TransportError::BackendUnavailable`].
pub const BACKEND: &str = "CCID";

/// The control code of a CCID Escape command (PC_to_RDR_Escape), as pcsc-lite's libccid
/// defines it: `SCARD_CTL_CODE(3500)`, which is `0x42000000 + 3500` on pcsc-lite.
pub const IOCTL_CCID_ESCAPE: u32 = 0x4200_0000 + 3500;

/// Shortest wait on the interrupt pipe (libusb waits forever on 0).
const MIN_WAIT: Duration = Duration::from_millis(1);

/// Longest single wait on one reader's interrupt pipe inside [`Backend::wait_events`], so
/// connections on other threads are not held up longer.
const MAX_SLICE: Duration = Duration::from_millis(100);

/// A CCID interface found on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// idVendor.
    pub vid: u16,
    /// idProduct.
    pub pid: u16,
    /// The iSerialNumber string, when the device has one.
    pub serial: Option<String>,
    /// The iProduct string, when the device has one.
    pub product: Option<String>,
    /// The bus number.
    pub bus: u8,
    /// The device address on the bus.
    pub address: u8,
    /// bInterfaceNumber of the CCID interface.
    pub interface: u8,
    /// Its CCID class descriptor.
    pub descriptor: ClassDescriptor,
}

impl DeviceInfo {
    /// What identifies the interface while the device stays plugged in.
    fn key(&self) -> InterfaceKey {
        (self.bus, self.address, self.interface, self.vid, self.pid)
    }

    /// The serial part of the reader names: the serial number, or `@<bus>.<address>`.
    pub fn serial_name(&self) -> String {
        match &self.serial {
            Some(serial) => serial.clone(),
            None => format!("@{}.{}", self.bus, self.address),
        }
    }

    /// The reader name of `slot` (see the module documentation).
    pub fn reader_name(&self, slot: u8) -> String {
        let base = format!("ccid:{:04x}:{:04x}:{}", self.vid, self.pid, self.serial_name());
        if self.descriptor.max_slot_index() > 0 { format!("{base}#{slot}") } else { base }
    }

    /// The slots of this interface that `name` designates (empty: none).
    fn slots_named(&self, name: &ReaderName) -> Vec<u8> {
        let all = || (0..=self.descriptor.max_slot_index()).collect();
        let serial = match name {
            ReaderName::CcidAny => return all(),
            ReaderName::Ccid { vid, pid, .. } if (*vid, *pid) != (self.vid, self.pid) => {
                return Vec::new();
            }
            ReaderName::Ccid { serial, .. } => serial.as_deref(),
            _ => return Vec::new(),
        };
        let serial_name = self.serial_name();
        match serial {
            None => all(),
            Some(s) if s == serial_name => all(),
            Some(s) => match s.rsplit_once('#') {
                Some((base, n)) if base == serial_name => match n.parse::<u8>() {
                    Ok(n) if n <= self.descriptor.max_slot_index() => vec![n],
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            },
        }
    }

    fn describe(&self) -> String {
        format!(
            "{:04x}:{:04x} ({}bus {} address {})",
            self.vid,
            self.pid,
            self.product.as_deref().map(|p| format!("{p}, ")).unwrap_or_default(),
            self.bus,
            self.address
        )
    }
}

/// Bus, address, interface, vid, pid: an interface while its device stays plugged in.
type InterfaceKey = (u8, u8, u8, u16, u16);

/// Where the backend finds and opens CCID interfaces: the rusb shell for real USB, an
/// in-memory bus of simulated readers in tests. An opened interface is claimed until the
/// value [`UsbBus::open`] returned is dropped.
pub trait UsbBus: Send {
    /// The transfers of an opened interface; dropping it releases the interface.
    type Usb: CcidUsb + Send + 'static;

    /// The CCID interfaces on the bus now.
    fn scan(&mut self) -> Result<Vec<DeviceInfo>, Error>;

    /// Opens and claims the interface `device` describes, for a connection. A claim held by
    /// another process or driver fails with [`UsbFailure::Busy`], a device the system does
    /// not let us open with [`UsbFailure::Access`].
    fn open(&mut self, device: &DeviceInfo) -> Result<Self::Usb, Error>;

    /// Opens and claims the interface for a brief look (queued notifications, slot status);
    /// it is released as soon as the look is over. Default: [`UsbBus::open`]. The rusb shell
    /// does not detach a kernel driver for a look (the reader is in use by that driver).
    fn open_to_look(&mut self, device: &DeviceInfo) -> Result<Self::Usb, Error> {
        self.open(device)
    }
}

/// Timings of the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CcidConfig {
    /// The driver's timeouts and engine configuration; its `deadline` is the initial
    /// deadline of each connection's exchanges (default 30 s).
    pub driver: DriverConfig,
    /// Before an exchange, the interrupt pipe is read when it was not read for this long.
    pub event_poll: Duration,
    /// [`Backend::wait_events`] enumerates the bus again, and takes a brief look at the
    /// readers no connection holds, after this long.
    pub rescan: Duration,
    /// How long to wait for notifications already queued when an interface is claimed.
    pub drain: Duration,
}

impl Default for CcidConfig {
    fn default() -> Self {
        Self {
            driver: DriverConfig::default(),
            event_poll: Duration::from_millis(100),
            rescan: Duration::from_millis(500),
            drain: Duration::from_millis(10),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock must not take every reader down.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A change of a slot not yet reported as an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Inserted,
    Removed,
}

/// What the backend knows about one slot.
#[derive(Debug, Clone, Default)]
struct SlotState {
    present: bool,
    /// The ATR of the card as we powered it on; `None` while not powered by us (always
    /// `None` while the interface is not claimed by a connection).
    atr: Option<Vec<u8>>,
    protocol: u8,
    /// Incremented on every insertion and removal: a connection made before sees the change.
    card_events: u64,
    /// Incremented on every power on and power off: other connections see a reset.
    power_ons: u64,
    /// Whether the interrupt pipe reported on this slot since the interface was claimed (the
    /// first report may be the reader's initial one, already known from GetSlotStatus).
    settled: bool,
    connections: usize,
    exclusive: bool,
}

/// A reader on the bus, claimed or not.
struct Device<U: CcidUsb> {
    info: DeviceInfo,
    /// The driver over the claimed interface: while connections of this process use the
    /// reader, and for the span of a brief look. Dropping it releases the interface.
    driver: Option<Driver<U>>,
    slots: Vec<SlotState>,
    changes: Vec<(u8, Change)>,
    /// The device went away (unplugged, or USB reported it gone).
    gone: bool,
    last_poll: Option<Instant>,
    /// Whether the slots' status was read once (the first look sets the state silently).
    looked: bool,
    /// Plugged in after the backend's baseline: its first look reports its cards inserted.
    announce: bool,
    /// Why the interface could not be claimed at the last attempt (another driver holds it,
    /// access denied, ...); cleared by the next successful claim.
    unusable: Option<Error>,
}

impl<U: CcidUsb> std::fmt::Debug for Device<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("info", &self.info)
            .field("claimed", &self.driver.is_some())
            .field("gone", &self.gone)
            .finish()
    }
}

impl<U: CcidUsb> Device<U> {
    /// A reader seen on the bus, not claimed yet.
    fn new(info: DeviceInfo, announce: bool) -> Self {
        let slots = vec![SlotState::default(); info.descriptor.slot_count()];
        Self {
            info,
            driver: None,
            slots,
            changes: Vec::new(),
            gone: false,
            last_poll: None,
            looked: false,
            announce,
            unusable: None,
        }
    }

    /// Takes the claimed interface `usb`: sets up the driver and reads the notifications
    /// already queued.
    fn attach(&mut self, usb: U, config: &CcidConfig) -> Result<(), Error> {
        let driver_config = DriverConfig { interface: self.info.interface, ..config.driver };
        let mut driver = Driver::new(usb, self.info.descriptor.clone(), driver_config)?;
        for s in &mut self.slots {
            s.settled = false;
        }
        // Notifications queued before we looked (QEMU's usb-ccid: NotifySlotChange "present,
        // changed" right after the claim) say what GetSlotStatus says next.
        for _ in 0..8 {
            match driver.poll_events(config.drain) {
                Ok(events) if events.is_empty() => break,
                Ok(events) => {
                    for (slot, _) in events {
                        if let Some(s) = self.slots.get_mut(usize::from(slot)) {
                            s.settled = true;
                        }
                    }
                }
                Err(err) => {
                    tracing::debug!("{}: interrupt pipe: {err}", self.info.describe());
                    break;
                }
            }
        }
        self.driver = Some(driver);
        self.last_poll = Some(Instant::now());
        self.unusable = None;
        Ok(())
    }

    /// Releases the interface. What we powered on is not ours to know any more.
    fn release(&mut self) {
        if self.driver.take().is_some() {
            tracing::debug!("{}: interface released", self.info.describe());
        }
        for s in &mut self.slots {
            s.atr = None;
        }
    }

    /// Releases the interface when no connection of ours uses the reader.
    fn release_if_idle(&mut self) {
        if self.slots.iter().all(|s| s.connections == 0) {
            self.release();
        }
    }

    fn driver_mut(&mut self) -> Result<&mut Driver<U>, Error> {
        self.driver.as_mut().ok_or(Error::NotClaimed)
    }

    /// Whether the slot engine has the card of `slot` powered (by this claim).
    fn engine_powered(&self, slot: u8) -> bool {
        self.driver.as_ref().and_then(|d| d.slot(slot)).is_some_and(|e| e.is_powered())
    }

    fn slot(&self, slot: u8) -> Option<&SlotState> {
        self.slots.get(usize::from(slot))
    }

    fn slot_mut(&mut self, slot: u8) -> Option<&mut SlotState> {
        self.slots.get_mut(usize::from(slot))
    }

    fn note_failure(&mut self, err: &Error) {
        if matches!(
            err,
            Error::Usb { failure: UsbFailure::NoDevice, .. }
                | Error::UsbDevice { failure: UsbFailure::NoDevice, .. }
        ) {
            self.gone = true;
        }
    }

    /// GetSlotStatus: whether a card is present.
    fn status(&mut self, slot: u8) -> Result<bool, Error> {
        match self.driver_mut()?.slot_status(slot) {
            Ok((icc, _)) => Ok(icc != IccStatus::Absent),
            Err(err) if err.is_card_absent() => Ok(false),
            Err(err) => {
                self.note_failure(&err);
                Err(err)
            }
        }
    }

    /// Asks GetSlotStatus and records a change it reveals (a reader without notifications,
    /// or one not read yet).
    fn sync_status(&mut self, slot: u8) -> Result<bool, Error> {
        let present = self.status(slot)?;
        let known = self.slot(slot).is_some_and(|s| s.present);
        match (known, present) {
            (false, true) => self.apply(slot, SlotEvent::CardInserted),
            (true, false) => self.apply(slot, SlotEvent::CardRemoved),
            _ => {}
        }
        Ok(present)
    }

    /// Asks the status of every slot (the interface is claimed). The first time, the state
    /// is taken as it is, unless the reader was plugged in after the baseline.
    fn read_slots(&mut self) -> Result<(), Error> {
        for slot in 0..=self.info.descriptor.max_slot_index() {
            if self.looked || self.announce {
                self.sync_status(slot)?;
            } else {
                let present = self.status(slot)?;
                if let Some(s) = self.slot_mut(slot) {
                    s.present = present;
                }
            }
        }
        self.looked = true;
        Ok(())
    }

    /// Reads the interrupt pipe, waiting up to `wait` for the first message, and records the
    /// changes it reports.
    fn poll(&mut self, wait: Duration) -> Result<(), Error> {
        self.last_poll = Some(Instant::now());
        let mut wait = wait.max(MIN_WAIT);
        for _ in 0..8 {
            let events = match self.driver_mut()?.poll_events(wait) {
                Ok(events) => events,
                Err(err) => {
                    self.note_failure(&err);
                    return Err(err);
                }
            };
            if events.is_empty() {
                break;
            }
            for (slot, event) in events {
                self.apply(slot, event);
            }
            wait = MIN_WAIT;
        }
        Ok(())
    }

    /// Applies a slot change to what the backend knows.
    fn apply(&mut self, slot: u8, event: SlotEvent) {
        let describe = self.info.describe();
        let Some(s) = self.slots.get_mut(usize::from(slot)) else { return };
        let first = !core::mem::replace(&mut s.settled, true);
        match event {
            // The reader's first report of a card GetSlotStatus already showed.
            SlotEvent::CardInserted if first && s.present => {}
            SlotEvent::CardInserted => {
                // CCID §6.3.1: "changed" with "present" means at least one change since the
                // last report: the card there now may not be the one that was powered.
                if s.present {
                    self.changes.push((slot, Change::Removed));
                }
                s.present = true;
                s.atr = None;
                s.card_events += 1;
                self.changes.push((slot, Change::Inserted));
            }
            SlotEvent::CardRemoved => {
                if s.present {
                    s.present = false;
                    s.atr = None;
                    s.card_events += 1;
                    self.changes.push((slot, Change::Removed));
                }
            }
            SlotEvent::HardwareError(code) => {
                tracing::warn!("{describe}: slot {slot}: hardware error {code}");
                // The card's session is over (the engine dropped it).
                s.atr = None;
                s.card_events += 1;
            }
        }
    }

    /// Records a removal found by a failed command.
    fn card_gone(&mut self, slot: u8) {
        self.apply(slot, SlotEvent::CardRemoved);
    }

    /// Powers the card in `slot` on; returns its ATR.
    fn power_on(&mut self, slot: u8) -> Result<Vec<u8>, Error> {
        match self.driver_mut()?.power_on(slot) {
            Ok(on) => {
                let atr = on.atr.bytes().to_vec();
                if let Some(s) = self.slot_mut(slot) {
                    s.present = true;
                    s.atr = Some(atr.clone());
                    s.protocol = on.protocol;
                    s.power_ons += 1;
                }
                Ok(atr)
            }
            Err(err) => {
                self.note_failure(&err);
                if err.is_card_absent() {
                    self.card_gone(slot);
                }
                Err(err)
            }
        }
    }

    /// Powers the card in `slot` off.
    fn power_off(&mut self, slot: u8) -> Result<(), Error> {
        let result = self.driver_mut()?.power_off(slot).map(|_| ());
        if let Some(s) = self.slot_mut(slot) {
            s.atr = None;
            s.power_ons += 1;
        }
        match result {
            Err(err) if err.is_card_absent() => {
                self.card_gone(slot);
                Ok(())
            }
            Err(err) => {
                self.note_failure(&err);
                Err(err)
            }
            Ok(()) => Ok(()),
        }
    }

    /// The ATR of the card in `slot`, powering it on when this claim did not yet.
    fn atr(&mut self, slot: u8) -> Result<Vec<u8>, Error> {
        match self.slot(slot).and_then(|s| s.atr.clone()) {
            Some(atr) if self.engine_powered(slot) => Ok(atr),
            _ => self.power_on(slot),
        }
    }

    /// The unreported changes as reader events. A card inserted into a reader a connection
    /// holds is powered on for its ATR; otherwise the ATR is left empty (not powered on just
    /// to report it).
    fn take_events(&mut self) -> Vec<ReaderEvent> {
        let changes = core::mem::take(&mut self.changes);
        let held = self.driver.is_some() && self.slots.iter().any(|s| s.connections > 0);
        let mut events = Vec::with_capacity(changes.len());
        for (slot, change) in changes {
            let reader = self.info.reader_name(slot);
            match change {
                Change::Removed => events.push(ReaderEvent::CardRemoved { reader }),
                Change::Inserted => {
                    let present = self.slot(slot).is_some_and(|s| s.present);
                    let atr = if present && held {
                        self.atr(slot).unwrap_or_else(|err| {
                            tracing::warn!("{reader}: card inserted, power on failed: {err}");
                            Vec::new()
                        })
                    } else {
                        Vec::new()
                    };
                    events.push(ReaderEvent::CardInserted { reader, atr });
                }
            }
        }
        events
    }

    /// The readers of this device as listed: a present card with its ATR when we powered it,
    /// an empty ATR otherwise.
    fn reader_infos(&self) -> Vec<ReaderInfo> {
        (0..=self.info.descriptor.max_slot_index())
            .map(|slot| {
                let state = self.slot(slot);
                let atr = state.filter(|s| s.present).map(|s| {
                    s.atr.clone().filter(|_| self.engine_powered(slot)).unwrap_or_default()
                });
                ReaderInfo { name: self.info.reader_name(slot), atr }
            })
            .collect()
    }

    /// Why this reader cannot be used now, as the error a connection to `slot` would get.
    fn unusable_error(&self, slot: u8, timeout: Duration) -> Option<TransportError> {
        let err = self.unusable.as_ref()?;
        Some(claim_error(err.clone(), &self.info.reader_name(slot), timeout))
    }
}

/// The error of a failed claim for the reader `reader`: another driver holding the interface
/// (Busy) or the system denying access is [`TransportError::ReaderInUse`].
fn claim_error(err: Error, reader: &str, timeout: Duration) -> TransportError {
    match err {
        Error::Usb { failure: failure @ (UsbFailure::Busy | UsbFailure::Access), .. }
        | Error::UsbDevice { failure: failure @ (UsbFailure::Busy | UsbFailure::Access), .. } => {
            TransportError::ReaderInUse { reader: reader.to_owned(), detail: failure.to_string() }
        }
        other => map_error(other, reader, || "claiming the USB interface".to_owned(), timeout),
    }
}

/// Maps a driver error to the transport error of `reader` (the one place this is decided).
fn map_error(
    err: Error,
    reader: &str,
    command: impl FnOnce() -> String,
    after: Duration,
) -> TransportError {
    let reader = reader.to_owned();
    if err.is_card_absent() || matches!(err, Error::NotPowered { .. }) {
        return TransportError::CardRemoved { reader };
    }
    if err.is_timeout() {
        return TransportError::Timeout { reader, command: command(), after };
    }
    match err {
        // The reader was unplugged: so was the card, as far as the connection can tell.
        Error::Usb { failure: UsbFailure::NoDevice, .. }
        | Error::UsbDevice { failure: UsbFailure::NoDevice, .. } => {
            TransportError::CardRemoved { reader }
        }
        Error::Usb { failure, .. } | Error::UsbDevice { failure, .. } => {
            let kind = match failure {
                UsbFailure::Access => std::io::ErrorKind::PermissionDenied,
                UsbFailure::Busy => std::io::ErrorKind::ResourceBusy,
                UsbFailure::Timeout => std::io::ErrorKind::TimedOut,
                UsbFailure::NotSupported | UsbFailure::Unavailable => {
                    std::io::ErrorKind::Unsupported
                }
                UsbFailure::NoDevice => std::io::ErrorKind::NotConnected,
                UsbFailure::Stall | UsbFailure::Overflow | UsbFailure::Io => {
                    std::io::ErrorKind::Other
                }
            };
            TransportError::Io { reader, source: std::io::Error::new(kind, err) }
        }
        other => TransportError::Protocol { reader, reason: other.to_string() },
    }
}

fn unavailable(err: &Error) -> TransportError {
    TransportError::BackendUnavailable { backend: BACKEND, reason: err.to_string() }
}

const POWER_ON: &str = "power on (PC_to_RDR_IccPowerOn)";
const POWER_OFF: &str = "power off (PC_to_RDR_IccPowerOff)";
const SLOT_STATUS: &str = "slot status (PC_to_RDR_GetSlotStatus)";

type Shared<U> = Arc<Mutex<Device<U>>>;

/// A slot of a reader: the reader and the slot index.
type SlotOf<U> = (Shared<U>, u8);

/// The `ccid:` backend. See the module documentation.
pub struct CcidBackend<B: UsbBus> {
    bus: Result<B, Error>,
    config: CcidConfig,
    devices: Vec<Shared<B::Usb>>,
    events: VecDeque<ReaderEvent>,
    /// Whether the first look (the baseline, which produces no events) was taken.
    baseline: bool,
    last_scan: Option<Instant>,
}

impl<B: UsbBus> std::fmt::Debug for CcidBackend<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let devices: Vec<String> = self.devices.iter().map(|d| lock(d).info.describe()).collect();
        f.debug_struct("CcidBackend")
            .field("available", &self.bus.as_ref().err().map_or("yes".into(), ToString::to_string))
            .field("devices", &devices)
            .finish()
    }
}

#[cfg(feature = "usb")]
impl CcidBackend<crate::rusb_shell::RusbBus> {
    /// The backend over the system's USB (libusb, vendored). Creating it never fails: without
    /// USB its calls report [`TransportError::BackendUnavailable`] and it has no events.
    pub fn system() -> Self {
        match crate::rusb_shell::RusbBus::new() {
            Ok(bus) => Self::new(bus),
            Err(err) => Self::unavailable(err),
        }
    }
}

impl<B: UsbBus> CcidBackend<B> {
    /// The backend over `bus`.
    pub fn new(bus: B) -> Self {
        Self::from_bus(Ok(bus))
    }

    /// A backend that reports `why` for every call (USB could not be initialised).
    pub fn unavailable(why: Error) -> Self {
        Self::from_bus(Err(why))
    }

    fn from_bus(bus: Result<B, Error>) -> Self {
        Self {
            bus,
            config: CcidConfig::default(),
            devices: Vec::new(),
            events: VecDeque::new(),
            baseline: false,
            last_scan: None,
        }
    }

    /// Replaces the timings.
    pub fn with_config(mut self, config: CcidConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the initial deadline of each connection's exchanges (default 30 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.config.driver.deadline = timeout;
        self
    }

    /// Enumerates the bus: notes readers seen for the first time (not claimed: they are
    /// looked at when listed), drops readers gone, and (after the baseline) queues reader
    /// added / removed events.
    fn refresh(&mut self) -> Result<(), TransportError> {
        let bus = self.bus.as_mut().map_err(|e| unavailable(e))?;
        let found = bus.scan().map_err(|e| unavailable(&e))?;
        self.last_scan = Some(Instant::now());
        let baseline = self.baseline;
        let mut events = Vec::new();
        self.devices.retain(|dev| {
            let mut d = lock(dev);
            let still = !d.gone && found.iter().any(|f| f.key() == d.info.key());
            if !still {
                d.gone = true;
                tracing::debug!("{}: gone", d.info.describe());
                if baseline {
                    for slot in 0..=d.info.descriptor.max_slot_index() {
                        let reader = d.info.reader_name(slot);
                        if d.slot(slot).is_some_and(|s| s.present) {
                            events.push(ReaderEvent::CardRemoved { reader: reader.clone() });
                        }
                        events.push(ReaderEvent::ReaderRemoved { reader });
                    }
                }
            }
            still
        });
        for info in found {
            if self.devices.iter().any(|d| lock(d).info.key() == info.key()) {
                continue;
            }
            tracing::debug!("{}: found", info.describe());
            if baseline {
                for slot in 0..=info.descriptor.max_slot_index() {
                    events.push(ReaderEvent::ReaderAdded { reader: info.reader_name(slot) });
                }
            }
            self.devices.push(Arc::new(Mutex::new(Device::new(info, baseline))));
        }
        self.baseline = true;
        self.events.extend(events);
        Ok(())
    }

    /// Looks at the slots of `dev`: through the claim of the connections that hold it (the
    /// interrupt pipe, GetSlotStatus), or by claiming the interface for the look only. A
    /// claim that fails leaves the reader marked unusable, with why.
    fn look(bus: &mut B, config: &CcidConfig, dev: &Shared<B::Usb>) {
        let mut d = lock(dev);
        if d.gone {
            return;
        }
        if d.driver.is_some() {
            if let Err(err) = d.poll(MIN_WAIT) {
                tracing::debug!("{}: interrupt pipe: {err}", d.info.describe());
            }
            if let Err(err) = d.read_slots() {
                tracing::warn!("{}: slot status: {err}", d.info.describe());
            }
            return;
        }
        let opened = bus.open_to_look(&d.info);
        let result = opened.and_then(|usb| {
            d.attach(usb, config)?;
            let looked = d.read_slots();
            d.release();
            looked
        });
        if let Err(err) = result {
            d.note_failure(&err);
            if d.gone {
                return;
            }
            if d.unusable.as_ref() != Some(&err) {
                tracing::info!("{}: cannot be used now: {err}", d.info.describe());
            }
            d.unusable = Some(err);
        }
    }

    /// Looks at every reader (see [`CcidBackend::look`]), or, with `name`, at the readers
    /// that name designates.
    fn look_at_all(&mut self, name: Option<&ReaderName>) {
        let Ok(bus) = self.bus.as_mut() else { return };
        for dev in &self.devices {
            let wanted = match name {
                Some(name) => !lock(dev).info.slots_named(name).is_empty(),
                None => true,
            };
            if wanted {
                Self::look(bus, &self.config, dev);
            }
        }
    }

    /// The slot `name` designates among the usable readers: the first with a card, else the
    /// first. When only readers that cannot be used now match, why the first cannot.
    fn resolve(&self, name: &ReaderName) -> Result<Option<SlotOf<B::Usb>>, TransportError> {
        let mut candidates: Vec<SlotOf<B::Usb>> = Vec::new();
        let mut unusable = None;
        for dev in &self.devices {
            let d = lock(dev);
            let slots = d.info.slots_named(name);
            if d.gone || slots.is_empty() {
                continue;
            }
            if let Some(first) = slots.first() {
                if let Some(err) = d.unusable_error(*first, self.config.driver.deadline) {
                    unusable.get_or_insert(err);
                    continue;
                }
            }
            candidates.extend(slots.into_iter().map(|slot| (Arc::clone(dev), slot)));
        }
        let with_card = candidates
            .iter()
            .position(|(dev, slot)| lock(dev).slot(*slot).is_some_and(|s| s.present))
            .unwrap_or(0);
        if candidates.is_empty() {
            return unusable.map_or(Ok(None), Err);
        }
        Ok(Some(candidates.swap_remove(with_card)))
    }

    /// Connects to the slot `name` designates: the typed form of [`Backend::connect`]. The
    /// reader's interface is claimed for the connection (and released when the last
    /// connection to it ends).
    pub fn connect_reader(
        &mut self,
        name: &ReaderName,
        mode: ShareMode,
    ) -> Result<Option<CcidTransport<B::Usb>>, TransportError> {
        if !matches!(name, ReaderName::Ccid { .. } | ReaderName::CcidAny) {
            return Ok(None);
        }
        self.refresh()?;
        self.look_at_all(Some(name));
        let Some((dev, slot)) = self.resolve(name)? else { return Ok(None) };
        {
            let bus = self.bus.as_mut().map_err(|e| unavailable(e))?;
            let mut d = lock(&dev);
            if d.driver.is_none() {
                let reader = d.info.reader_name(slot);
                let timeout = self.config.driver.deadline;
                let claimed = bus.open(&d.info).and_then(|usb| d.attach(usb, &self.config));
                if let Err(err) = claimed {
                    d.note_failure(&err);
                    if !d.gone {
                        d.unusable = Some(err.clone());
                    }
                    return Err(claim_error(err, &reader, timeout));
                }
                tracing::debug!("{reader}: interface claimed for a connection");
            }
        }
        let opened = CcidTransport::open(Arc::clone(&dev), slot, mode, &self.config);
        if opened.is_err() {
            lock(&dev).release_if_idle();
        }
        opened.map(Some)
    }
}

impl<B: UsbBus> Backend for CcidBackend<B> {
    fn prefix(&self) -> &'static str {
        "ccid"
    }

    fn readers(&mut self) -> Result<Vec<ReaderInfo>, TransportError> {
        self.refresh()?;
        if self.devices.is_empty() {
            return Err(TransportError::BackendUnavailable {
                backend: BACKEND,
                reason: "no USB readers".to_owned(),
            });
        }
        self.look_at_all(None);
        let mut readers = Vec::new();
        for dev in &self.devices {
            let d = lock(dev);
            if !d.gone && d.unusable.is_none() {
                readers.extend(d.reader_infos());
            }
        }
        Ok(readers)
    }

    fn unusable(&mut self) -> Vec<TransportError> {
        let timeout = self.config.driver.deadline;
        let mut found = Vec::new();
        for dev in &self.devices {
            let d = lock(dev);
            if d.gone {
                continue;
            }
            for slot in 0..=d.info.descriptor.max_slot_index() {
                found.extend(d.unusable_error(slot, timeout));
            }
        }
        found
    }

    fn connect(
        &mut self,
        name: &ReaderName,
        mode: ShareMode,
    ) -> Result<Option<Box<dyn CardTransport>>, TransportError> {
        Ok(self.connect_reader(name, mode)?.map(|t| Box::new(t) as Box<dyn CardTransport>))
    }

    fn wait_events(&mut self, timeout: Duration) -> Result<Vec<ReaderEvent>, TransportError> {
        if self.bus.is_err() {
            // Nothing to wait for but time.
            std::thread::sleep(timeout);
            return Ok(Vec::new());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let due = self.last_scan.is_none_or(|t| t.elapsed() >= self.config.rescan);
            if due {
                if let Err(err) = self.refresh() {
                    tracing::debug!("CCID: enumeration failed: {err}");
                }
                // The readers nobody holds: a brief look (the held ones are read below).
                if let Ok(bus) = self.bus.as_mut() {
                    for dev in &self.devices {
                        if lock(dev).driver.is_none() {
                            Self::look(bus, &self.config, dev);
                        }
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let held: Vec<_> = self
                .devices
                .iter()
                .filter(|d| {
                    let d = lock(d);
                    d.driver.is_some() && !d.gone
                })
                .map(Arc::clone)
                .collect();
            if held.is_empty() {
                std::thread::sleep(left.min(MAX_SLICE).min(self.config.rescan).max(MIN_WAIT));
            } else {
                let count = u32::try_from(held.len()).unwrap_or(u32::MAX);
                let slice = (left / count).clamp(MIN_WAIT, MAX_SLICE);
                for dev in held {
                    let mut d = lock(&dev);
                    if let Err(err) = d.poll(slice) {
                        tracing::debug!("{}: interrupt pipe: {err}", d.info.describe());
                    }
                }
            }
            for dev in &self.devices {
                let events = lock(dev).take_events();
                self.events.extend(events);
            }
            if !self.events.is_empty() || Instant::now() >= deadline {
                return Ok(self.events.drain(..).collect());
            }
        }
    }
}

/// A connection to the card in one slot of a CCID reader.
pub struct CcidTransport<U: CcidUsb + Send> {
    device: Shared<U>,
    slot: u8,
    reader: String,
    atr: Vec<u8>,
    protocol: Protocol,
    extended: bool,
    card_events: u64,
    power_ons: u64,
    timeout: Duration,
    event_poll: Duration,
    exclusive: bool,
    connected: bool,
}

impl<U: CcidUsb + Send> std::fmt::Debug for CcidTransport<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CcidTransport")
            .field("reader", &self.reader)
            .field("protocol", &self.protocol)
            .field("atr", &scard_iso7816::hex::Hex(&self.atr))
            .field("connected", &self.connected)
            .finish()
    }
}

impl<U: CcidUsb + Send> CcidTransport<U> {
    fn open(
        device: Shared<U>,
        slot: u8,
        mode: ShareMode,
        config: &CcidConfig,
    ) -> Result<Self, TransportError> {
        let mut d = lock(&device);
        let reader = d.info.reader_name(slot);
        let timeout = config.driver.deadline;
        let fail = |e: Error, what: &str| map_error(e, &reader, || what.to_owned(), timeout);
        let no_card = || TransportError::NoCard { reader: reader.clone() };
        if d.gone {
            return Err(no_card());
        }
        let present = d.sync_status(slot).map_err(|e| fail(e, SLOT_STATUS))?;
        if !present {
            return Err(no_card());
        }
        let Some(state) = d.slot(slot) else { return Err(no_card()) };
        if state.exclusive || (mode == ShareMode::Exclusive && state.connections > 0) {
            return Err(TransportError::Sharing { reader: reader.clone() });
        }
        let atr = d.atr(slot).map_err(|e| fail(e, POWER_ON))?;
        let level = d.info.descriptor.exchange_level().ok();
        let state = d.slot_mut(slot).ok_or_else(no_card)?;
        state.connections += 1;
        state.exclusive = mode == ShareMode::Exclusive;
        let (protocol, card_events, power_ons) =
            (state.protocol, state.card_events, state.power_ons);
        drop(d);
        tracing::debug!("{reader}: connected (T={protocol}, {mode:?})");
        Ok(Self {
            device,
            slot,
            reader,
            atr,
            protocol: if protocol == 1 { Protocol::T1 } else { Protocol::T0 },
            extended: extended_length(level, protocol),
            card_events,
            power_ons,
            timeout,
            event_poll: config.event_poll,
            exclusive: mode == ShareMode::Exclusive,
            connected: true,
        })
    }

    /// The slot index in its reader.
    pub fn slot(&self) -> u8 {
        self.slot
    }

    fn fail(&self, err: Error, command: impl FnOnce() -> String) -> TransportError {
        map_error(err, &self.reader, command, self.timeout)
    }

    /// Takes the card's state after a (re)connection.
    fn adopt(&mut self, d: &Device<U>) {
        if let Some(s) = d.slot(self.slot) {
            self.card_events = s.card_events;
            self.power_ons = s.power_ons;
            self.atr = s.atr.clone().unwrap_or_default();
            self.protocol = if s.protocol == 1 { Protocol::T1 } else { Protocol::T0 };
            let level = d.info.descriptor.exchange_level().ok();
            self.extended = extended_length(level, s.protocol);
        }
    }

    /// Checks that the card of this connection is still there and powered: the interrupt
    /// pipe is read when it was not for a while; a removal is [`TransportError::CardRemoved`]
    /// (until reconnect), a reset by another connection [`TransportError::CardReset`] (once).
    fn check(&mut self, d: &mut Device<U>) -> Result<(), TransportError> {
        if !self.connected {
            return Err(TransportError::NoCard { reader: self.reader.clone() });
        }
        if d.gone {
            return Err(TransportError::CardRemoved { reader: self.reader.clone() });
        }
        if d.last_poll.is_none_or(|t| t.elapsed() >= self.event_poll) {
            if let Err(err) = d.poll(MIN_WAIT) {
                if d.gone {
                    return Err(TransportError::CardRemoved { reader: self.reader.clone() });
                }
                tracing::debug!("{}: interrupt pipe: {err}", self.reader);
            }
        }
        let removed =
            d.slot(self.slot).is_none_or(|s| !s.present || s.card_events != self.card_events);
        if removed {
            return Err(TransportError::CardRemoved { reader: self.reader.clone() });
        }
        let powered =
            d.engine_powered(self.slot) && d.slot(self.slot).is_some_and(|s| s.atr.is_some());
        if !powered {
            // Powered off by another connection: power it on again; that is a reset for us.
            d.power_on(self.slot).map_err(|e| self.fail(e, || POWER_ON.to_owned()))?;
        }
        if d.slot(self.slot).is_some_and(|s| s.power_ons != self.power_ons) {
            self.adopt(d);
            return Err(TransportError::CardReset { reader: self.reader.clone() });
        }
        Ok(())
    }

    /// Power off and on: a cold reset with the ATR read again.
    fn power_cycle(&mut self, d: &mut Device<U>) -> Result<(), TransportError> {
        d.power_off(self.slot).map_err(|e| self.fail(e, || POWER_OFF.to_owned()))?;
        d.power_on(self.slot).map_err(|e| self.fail(e, || POWER_ON.to_owned()))?;
        Ok(())
    }
}

/// Whether the exchange level and protocol carry extended-length APDUs: T=1 and extended
/// APDU level do; T=0 (no ENVELOPE here) and short APDU level do not.
fn extended_length(level: Option<ExchangeLevel>, protocol: u8) -> bool {
    match level {
        Some(ExchangeLevel::ExtendedApdu) => true,
        Some(ExchangeLevel::Tpdu) => protocol == 1,
        _ => false,
    }
}

impl<U: CcidUsb + Send> CardTransport for CcidTransport<U> {
    fn reader(&self) -> &str {
        &self.reader
    }

    fn atr(&self) -> &[u8] {
        &self.atr
    }

    fn protocol(&self) -> Protocol {
        self.protocol
    }

    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let device = Arc::clone(&self.device);
        let mut d = lock(&device);
        self.check(&mut d)?;
        let result = d.driver_mut().and_then(|driver| {
            driver.set_deadline(self.timeout);
            driver.transmit(self.slot, command)
        });
        match result {
            Ok(response) => Ok(response.to_vec()),
            Err(err) => {
                d.note_failure(&err);
                if err.is_card_absent() || matches!(err, Error::NotPowered { .. }) {
                    d.card_gone(self.slot);
                }
                Err(self.fail(err, || command_name(command)))
            }
        }
    }

    fn begin_transaction(&mut self) -> Result<(), TransportError> {
        // One process, one lock per exchange: a transaction only has to be well nested, and
        // the card must still be there.
        let device = Arc::clone(&self.device);
        let mut d = lock(&device);
        self.check(&mut d)
    }

    fn end_transaction(&mut self, disposition: Disposition) -> Result<(), TransportError> {
        if disposition == Disposition::Leave {
            return Ok(());
        }
        self.reconnect(disposition)
    }

    fn reconnect(&mut self, disposition: Disposition) -> Result<(), TransportError> {
        if !self.connected {
            return Err(TransportError::NoCard { reader: self.reader.clone() });
        }
        let device = Arc::clone(&self.device);
        let mut d = lock(&device);
        if d.gone {
            return Err(TransportError::NoCard { reader: self.reader.clone() });
        }
        let _ = d.poll(MIN_WAIT);
        let present =
            d.sync_status(self.slot).map_err(|e| self.fail(e, || SLOT_STATUS.to_owned()))?;
        if !present {
            return Err(TransportError::NoCard { reader: self.reader.clone() });
        }
        let same_card = d.slot(self.slot).is_some_and(|s| s.card_events == self.card_events);
        let powered =
            d.engine_powered(self.slot) && d.slot(self.slot).is_some_and(|s| s.atr.is_some());
        match disposition {
            Disposition::Leave if same_card && powered => {}
            Disposition::Leave => {
                d.power_on(self.slot).map_err(|e| self.fail(e, || POWER_ON.to_owned()))?;
            }
            Disposition::Reset | Disposition::Unpower | Disposition::Eject => {
                self.power_cycle(&mut d)?;
            }
        }
        self.adopt(&d);
        Ok(())
    }

    fn disconnect(&mut self, disposition: Disposition) -> Result<(), TransportError> {
        if !self.connected {
            return Ok(());
        }
        let device = Arc::clone(&self.device);
        let mut d = lock(&device);
        let same_card = !d.gone
            && d.slot(self.slot).is_some_and(|s| s.present && s.card_events == self.card_events);
        let result = match disposition {
            _ if !same_card => Ok(()),
            Disposition::Leave => Ok(()),
            Disposition::Reset => self.power_cycle(&mut d),
            Disposition::Unpower | Disposition::Eject => {
                d.power_off(self.slot).map_err(|e| self.fail(e, || POWER_OFF.to_owned()))
            }
        };
        if let Some(s) = d.slot_mut(self.slot) {
            s.connections = s.connections.saturating_sub(1);
            if self.exclusive {
                s.exclusive = false;
            }
        }
        self.connected = false;
        // The last connection to the reader gives its interface back (to pcscd, say).
        d.release_if_idle();
        result
    }

    fn control(&mut self, code: u32, data: &[u8]) -> Result<Vec<u8>, TransportError> {
        if code != IOCTL_CCID_ESCAPE {
            return Err(TransportError::Unsupported {
                reader: self.reader.clone(),
                what: "control codes other than IOCTL_CCID_ESCAPE",
            });
        }
        let device = Arc::clone(&self.device);
        let mut d = lock(&device);
        let result = d.driver_mut().and_then(|driver| {
            driver.set_deadline(self.timeout);
            driver.escape(self.slot, data)
        });
        result.map_err(|e| {
            self.fail(e, || format!("escape (PC_to_RDR_Escape, control code {code:#010X})"))
        })
    }

    fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    fn extended_length(&self) -> bool {
        self.extended
    }
}

impl<U: CcidUsb + Send> Drop for CcidTransport<U> {
    fn drop(&mut self) {
        let _ = self.disconnect(Disposition::Leave);
    }
}
