//! The `ccid:` backend (scard-transport's `Backend` and `CardTransport`) without USB: a bus of
//! simulated readers in the four configurations (TPDU T=1, TPDU T=0, short APDU, extended
//! APDU) holding closure cards; names, connection, exchanges, reset notice, removal,
//! insertion and reader events, time extension and the deadline; interfaces claimed only by
//! connections (never kept by a listing, which powers no card on), readers held by another
//! driver, and a card removed while its answer is awaited (QEMU 7.2 never answers).
// Test code: a failing test panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use scard_ccid::message::{ControlSetup, MessageType};
use scard_ccid::sim::{SimCard, SimConfig, SimReader};
use scard_ccid::{
    CcidBackend, CcidConfig, CcidUsb, DeviceInfo, Error, UsbBus, UsbFailure, UsbOperation,
};
use scard_iso7816::{CardLimits, CommandApdu};
use scard_transport::{
    Backend, CardTransport, Disposition, Protocol, ReaderEvent, ReaderName, Registry, ShareMode,
    TransportError,
};

/// A simulated reader plugged into the test bus.
#[derive(Clone)]
struct Plugged {
    reader: Arc<Mutex<SimReader>>,
    unplugged: Arc<AtomicBool>,
    /// Every bulk-in read takes this long (a slow reader, for the deadline).
    delay: Arc<Mutex<Duration>>,
    /// The next XfrBlock never reaches the card: the card is removed instead, and the reader
    /// never answers the command (QEMU 7.2's usb-ccid drops the pending answer).
    remove_during_next_xfr: Arc<AtomicBool>,
}

impl Plugged {
    fn sim(&self) -> std::sync::MutexGuard<'_, SimReader> {
        self.reader.lock().unwrap()
    }
}

impl CcidUsb for Plugged {
    fn bulk_out(&mut self, message: &[u8], timeout: Duration) -> Result<(), UsbFailure> {
        if self.unplugged.load(Ordering::SeqCst) {
            return Err(UsbFailure::NoDevice);
        }
        if message.first() == Some(&MessageType::XFR_BLOCK.0)
            && self.remove_during_next_xfr.swap(false, Ordering::SeqCst)
        {
            self.sim().remove_card(0);
            return Ok(());
        }
        self.sim().bulk_out(message, timeout)
    }
    fn bulk_in(&mut self, timeout: Duration) -> Result<Vec<u8>, UsbFailure> {
        if self.unplugged.load(Ordering::SeqCst) {
            return Err(UsbFailure::NoDevice);
        }
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            std::thread::sleep(delay.min(timeout));
        }
        self.sim().bulk_in(timeout)
    }
    /// As a real reader: with nothing to send, the slice passes before the driver hears so.
    fn bulk_in_started_within(
        &mut self,
        start: Duration,
        timeout: Duration,
    ) -> Result<Option<Vec<u8>>, UsbFailure> {
        match self.bulk_in(start.min(timeout)) {
            Ok(message) => Ok(Some(message)),
            Err(UsbFailure::Timeout) => {
                std::thread::sleep(start.min(timeout));
                if start < timeout { Ok(None) } else { Err(UsbFailure::Timeout) }
            }
            Err(failure) => Err(failure),
        }
    }
    fn interrupt_in(&mut self, timeout: Duration) -> Result<Vec<u8>, UsbFailure> {
        if self.unplugged.load(Ordering::SeqCst) {
            return Err(UsbFailure::NoDevice);
        }
        self.sim().interrupt_in(timeout)
    }
    fn control(
        &mut self,
        setup: &ControlSetup,
        data: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, UsbFailure> {
        self.sim().control(setup, data, timeout)
    }
}

/// A claimed interface of the test bus: released when dropped.
struct Claim {
    plugged: Plugged,
    claims: Arc<AtomicUsize>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.claims.fetch_sub(1, Ordering::SeqCst);
    }
}

impl CcidUsb for Claim {
    fn bulk_out(&mut self, message: &[u8], timeout: Duration) -> Result<(), UsbFailure> {
        self.plugged.bulk_out(message, timeout)
    }
    fn bulk_in(&mut self, timeout: Duration) -> Result<Vec<u8>, UsbFailure> {
        self.plugged.bulk_in(timeout)
    }
    fn bulk_in_started_within(
        &mut self,
        start: Duration,
        timeout: Duration,
    ) -> Result<Option<Vec<u8>>, UsbFailure> {
        self.plugged.bulk_in_started_within(start, timeout)
    }
    fn interrupt_in(&mut self, timeout: Duration) -> Result<Vec<u8>, UsbFailure> {
        self.plugged.interrupt_in(timeout)
    }
    fn control(
        &mut self,
        setup: &ControlSetup,
        data: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, UsbFailure> {
        self.plugged.control(setup, data, timeout)
    }
}

/// The test bus: readers can be plugged and unplugged while the backend runs; opening a
/// device named in `busy` fails as when another driver holds it (libusb Busy), one named in
/// `denied` as when the system does not let us open it (Access). `claims` counts the
/// interfaces claimed now, `opens` every claim ever made.
#[derive(Clone, Default)]
struct TestBus {
    devices: Arc<Mutex<Vec<(DeviceInfo, Plugged)>>>,
    busy: Arc<Mutex<Vec<String>>>,
    denied: Arc<Mutex<Vec<String>>>,
    claims: Arc<AtomicUsize>,
    opens: Arc<AtomicUsize>,
}

impl TestBus {
    fn plug(
        &self,
        serial: Option<&str>,
        address: u8,
        config: SimConfig,
        card: Option<SimCard>,
    ) -> Plugged {
        let reader = SimReader::new(config, card);
        let info = DeviceInfo {
            vid: 0x08e6,
            pid: 0x4433,
            serial: serial.map(str::to_owned),
            product: Some("Simulated CCID".into()),
            bus: 1,
            address,
            interface: 0,
            descriptor: reader.descriptor(),
        };
        let plugged = Plugged {
            reader: Arc::new(Mutex::new(reader)),
            unplugged: Arc::new(AtomicBool::new(false)),
            delay: Arc::new(Mutex::new(Duration::ZERO)),
            remove_during_next_xfr: Arc::new(AtomicBool::new(false)),
        };
        self.devices.lock().unwrap().push((info, plugged.clone()));
        plugged
    }

    fn unplug(&self, address: u8) {
        let mut devices = self.devices.lock().unwrap();
        for (info, p) in devices.iter() {
            if info.address == address {
                p.unplugged.store(true, Ordering::SeqCst);
            }
        }
        devices.retain(|(info, _)| info.address != address);
    }
}

impl TestBus {
    fn claims(&self) -> usize {
        self.claims.load(Ordering::SeqCst)
    }
}

impl UsbBus for TestBus {
    type Usb = Claim;

    fn scan(&mut self) -> Result<Vec<DeviceInfo>, Error> {
        Ok(self.devices.lock().unwrap().iter().map(|(i, _)| i.clone()).collect())
    }

    fn open(&mut self, device: &DeviceInfo) -> Result<Claim, Error> {
        let refused = |operation, failure| Error::UsbDevice {
            vid: device.vid,
            pid: device.pid,
            bus: device.bus,
            address: device.address,
            operation,
            failure,
        };
        let named = |list: &Mutex<Vec<String>>| {
            list.lock().unwrap().iter().any(|s| Some(s) == device.serial.as_ref())
        };
        if named(&self.busy) {
            return Err(refused(UsbOperation::Claim, UsbFailure::Busy));
        }
        if named(&self.denied) {
            return Err(refused(UsbOperation::Open, UsbFailure::Access));
        }
        let devices = self.devices.lock().unwrap();
        let (_, p) = devices
            .iter()
            .find(|(i, _)| i == device)
            .ok_or(Error::Usb { operation: UsbOperation::Open, failure: UsbFailure::NoDevice })?;
        self.claims.fetch_add(1, Ordering::SeqCst);
        self.opens.fetch_add(1, Ordering::SeqCst);
        Ok(Claim { plugged: p.clone(), claims: Arc::clone(&self.claims) })
    }
}

fn config() -> CcidConfig {
    // Tests read the interrupt pipe before every exchange unless they say otherwise.
    CcidConfig { event_poll: Duration::ZERO, rescan: Duration::ZERO, ..CcidConfig::default() }
}

fn registry(bus: &TestBus, config: CcidConfig) -> Registry {
    let mut registry = Registry::new();
    registry.add(Box::new(CcidBackend::new(bus.clone()).with_config(config)));
    registry
}

fn exchange(t: &mut dyn CardTransport, apdu: &[u8]) -> Vec<u8> {
    let cmd = CommandApdu::decode(apdu).unwrap();
    let limits = if t.extended_length() {
        CardLimits::extended(65535, 65536)
    } else {
        CardLimits::default()
    };
    let r = scard_transport::exchange(t, &cmd, limits).unwrap();
    let mut out = r.data().to_vec();
    out.extend_from_slice(&r.sw().to_bytes());
    out
}

/// The same card behind each of the four reader configurations.
#[test]
fn four_configurations() {
    let cases = [
        ("TPDU T=1", SimConfig::tpdu_t1(), t1_atr(254, false), Protocol::T1, true),
        ("TPDU T=0", SimConfig::tpdu_t0(), h(QEMU_TEST_CARD_ATR), Protocol::T0, false),
        ("short APDU", SimConfig::short_apdu(), h(YUBIKEY_ATR), Protocol::T1, false),
        ("extended APDU", SimConfig::extended_apdu(), h(YUBIKEY_ATR), Protocol::T1, true),
    ];
    for (what, sim, atr, protocol, extended) in cases {
        let bus = TestBus::default();
        let plugged = bus.plug(Some("SIM-1"), 2, sim, Some(card(&atr)));
        let mut registry = registry(&bus, config());
        let (readers, unavailable) = registry.readers();
        assert!(unavailable.is_empty(), "{what}: {unavailable:?}");
        assert_eq!(readers.len(), 1, "{what}");
        assert_eq!(readers[0].name, "ccid:08e6:4433:SIM-1", "{what}");
        // The listing sees the card but does not power it on: its ATR is not known yet.
        assert_eq!(readers[0].atr.as_deref(), Some(&[][..]), "{what}");
        let power_ons = |p: &Plugged| {
            p.sim().commands().iter().filter(|c| **c == MessageType::ICC_POWER_ON).count()
        };
        assert_eq!(power_ons(&plugged), 0, "{what}");
        assert_eq!(bus.claims(), 0, "{what}: the listing released the interface");
        // Connecting (to the first reader with a card) claims the interface and powers the
        // card on, once.
        let mut t = registry.connect(None, ShareMode::Shared).unwrap();
        assert_eq!(power_ons(&plugged), 1, "{what}");
        assert_eq!(bus.claims(), 1, "{what}");
        assert_eq!(t.reader(), "ccid:08e6:4433:SIM-1");
        assert_eq!(t.atr(), &atr[..], "{what}");
        assert_eq!((t.protocol(), t.extended_length()), (protocol, extended), "{what}");
        // Case 1, 2, 3, 4 through the exchange engine above (61xx at short APDU level is
        // the engine's; at TPDU level T=0 the driver's).
        assert_eq!(exchange(t.as_mut(), &h("00 A4 04 00")), h("90 00"), "{what}");
        let (cmd, expected) = read_command(200);
        assert_eq!(exchange(t.as_mut(), &cmd), expected, "{what}");
        assert_eq!(exchange(t.as_mut(), &h("00 20 00 80 06 31 32 33 34 35 36")), h("90 00"));
        let (cmd, expected) = check_command(100);
        assert_eq!(exchange(t.as_mut(), &cmd), expected, "{what}");
        // A raw transmit of the same command: the response APDU.
        assert_eq!(t.transmit(&cmd).unwrap(), expected, "{what}");
        if extended {
            let (cmd, expected) = check_command(1000);
            assert_eq!(t.transmit(&cmd).unwrap(), expected, "{what}");
            let (cmd, expected) = read_command(700);
            assert_eq!(t.transmit(&cmd).unwrap(), expected, "{what}");
        }
        // The named form reaches the same reader, through the same claim; the listing now
        // knows the ATR.
        let u = registry.connect(Some("ccid:08e6:4433:SIM-1"), ShareMode::Shared).unwrap();
        assert_eq!(u.atr(), &atr[..]);
        assert_eq!(bus.claims(), 1, "{what}");
        assert_eq!(registry.readers().0[0].atr.as_deref(), Some(&atr[..]), "{what}");
        drop(u);
        assert_eq!(bus.claims(), 1, "{what}: t still holds the reader");
        assert!(t.disconnect(Disposition::Leave).is_ok());
        assert_eq!(bus.claims(), 0, "{what}: the last connection released the interface");
        assert!(matches!(t.transmit(&h("00 A4 04 00")), Err(TransportError::NoCard { .. })));
        // Released, the ATR is not ours to know any more.
        assert_eq!(registry.readers().0[0].atr.as_deref(), Some(&[][..]), "{what}");
        assert_eq!(bus.claims(), 0, "{what}");
        assert_eq!(power_ons(&plugged), 1, "{what}");
    }
}

#[test]
fn reset_by_another_connection_is_noticed_once() {
    let bus = TestBus::default();
    let plugged = bus.plug(Some("R"), 2, SimConfig::tpdu_t1(), Some(card(&t1_atr(254, false))));
    let mut registry = registry(&bus, config());
    let mut a = registry.connect(Some("ccid:*"), ShareMode::Shared).unwrap();
    let mut b = registry.connect(Some("ccid:08e6:4433"), ShareMode::Shared).unwrap();
    assert_eq!(a.transmit(&h("00 A4 04 00")).unwrap(), h("90 00"));
    let before = plugged.sim().log.len();
    b.reconnect(Disposition::Reset).unwrap();
    // GetSlotStatus (is the card still there?), IccPowerOff, IccPowerOn, then the T=1 set-up
    // again (SetParameters, S(IFS) in an XfrBlock).
    let commands = plugged.sim().commands()[before..].to_vec();
    assert_eq!(
        commands,
        [
            MessageType::GET_SLOT_STATUS,
            MessageType::ICC_POWER_OFF,
            MessageType::ICC_POWER_ON,
            MessageType::SET_PARAMETERS,
            MessageType::XFR_BLOCK
        ]
    );
    assert_eq!(b.atr(), &t1_atr(254, false)[..]);
    assert!(matches!(a.transmit(&h("00 A4 04 00")), Err(TransportError::CardReset { .. })));
    assert_eq!(a.transmit(&h("00 A4 04 00")).unwrap(), h("90 00"));
    assert_eq!(b.transmit(&h("00 A4 04 00")).unwrap(), h("90 00"));
    // A transaction ended with a reset is a reset too.
    {
        let mut tx = scard_transport::transaction(a.as_mut()).unwrap();
        assert_eq!(tx.transmit(&h("00 A4 04 00")).unwrap(), h("90 00"));
        tx.end(Disposition::Reset).unwrap();
    }
    assert!(matches!(b.transmit(&h("00 A4 04 00")), Err(TransportError::CardReset { .. })));
    // Unpowered by one connection: the other powers it on again and is told of the reset.
    a.disconnect(Disposition::Unpower).unwrap();
    assert!(matches!(b.transmit(&h("00 A4 04 00")), Err(TransportError::CardReset { .. })));
    assert_eq!(b.transmit(&h("00 A4 04 00")).unwrap(), h("90 00"));
}

#[test]
fn removal_is_seen_on_the_interrupt_pipe_and_by_the_next_command() {
    for poll in [Duration::ZERO, Duration::from_secs(3600)] {
        let bus = TestBus::default();
        let plugged =
            bus.plug(Some("R"), 2, SimConfig::tpdu_t0(), Some(card(&h(QEMU_TEST_CARD_ATR))));
        let mut cfg = config();
        cfg.event_poll = poll;
        let mut backend = CcidBackend::new(bus.clone()).with_config(cfg);
        assert_eq!(backend.readers().unwrap().len(), 1);
        let name: ReaderName = "ccid:08e6:4433:R".parse().unwrap();
        let mut t = backend.connect(&name, ShareMode::Shared).unwrap().unwrap();
        assert_eq!(t.transmit(&h("00 A4 04 00")).unwrap(), h("90 00"));
        plugged.sim().remove_card(0);
        // With the pipe read before the command, or from the reader's "no ICC" answer.
        assert!(
            matches!(t.transmit(&h("00 A4 04 00")), Err(TransportError::CardRemoved { .. })),
            "poll {poll:?}"
        );
        assert!(matches!(t.transmit(&h("00 A4 04 00")), Err(TransportError::CardRemoved { .. })));
        let events = backend.wait_events(Duration::from_millis(50)).unwrap();
        assert_eq!(events, [ReaderEvent::CardRemoved { reader: "ccid:08e6:4433:R".into() }]);
        assert!(matches!(t.reconnect(Disposition::Leave), Err(TransportError::NoCard { .. })));
        assert!(matches!(
            backend.connect(&name, ShareMode::Shared),
            Err(TransportError::NoCard { .. })
        ));
        // Another card: an insertion event with its ATR; the old connection stays on the old
        // card until it reconnects.
        plugged.sim().insert_card(0, card(&h("3B 02 14 50")));
        let events = backend.wait_events(Duration::from_millis(50)).unwrap();
        assert_eq!(
            events,
            [ReaderEvent::CardInserted {
                reader: "ccid:08e6:4433:R".into(),
                atr: h("3B 02 14 50")
            }]
        );
        assert!(matches!(t.transmit(&h("00 A4 04 00")), Err(TransportError::CardRemoved { .. })));
        t.reconnect(Disposition::Leave).unwrap();
        assert_eq!(t.atr(), &h("3B 02 14 50")[..]);
        assert_eq!(t.transmit(&h("00 A4 04 00")).unwrap(), h("90 00"));
        assert_eq!(backend.readers().unwrap()[0].atr, Some(h("3B 02 14 50")));
        assert!(backend.wait_events(Duration::from_millis(10)).unwrap().is_empty());
    }
}

#[test]
fn a_swapped_card_ends_the_session() {
    let bus = TestBus::default();
    let plugged = bus.plug(Some("R"), 2, SimConfig::short_apdu(), Some(card(&h(YUBIKEY_ATR))));
    let mut registry = registry(&bus, config());
    let mut t = registry.connect(Some("ccid:*"), ShareMode::Shared).unwrap();
    // Out and in between two looks: the reader reports "present, changed".
    {
        let mut sim = plugged.sim();
        sim.remove_card(0);
        sim.insert_card(0, card(&h(YUBIKEY_ATR)));
    }
    assert!(matches!(t.transmit(&h("00 A4 04 00")), Err(TransportError::CardRemoved { .. })));
    let events = registry.wait_events(Duration::from_millis(50)).unwrap();
    assert!(matches!(
        &events[..],
        [ReaderEvent::CardRemoved { .. }, ReaderEvent::CardInserted { .. }]
    ));
    t.reconnect(Disposition::Leave).unwrap();
    assert_eq!(t.transmit(&h("00 A4 04 00")).unwrap(), h("90 00"));
}

#[test]
fn readers_come_and_go() {
    let bus = TestBus::default();
    let mut registry = registry(&bus, config());
    // No reader: the listing says so, the other backends are unaffected.
    let (readers, unavailable) = registry.readers();
    assert!(readers.is_empty());
    assert_eq!(unavailable.len(), 1);
    assert_eq!(unavailable[0].to_string(), "CCID not available: no USB readers");
    assert!(matches!(
        registry.connect(Some("ccid:*"), ShareMode::Shared),
        Err(TransportError::UnknownReader { .. })
    ));
    // A reader without a serial number is named by bus and address. Nobody holds it: its
    // card is reported without being powered on (no ATR).
    let plugged = bus.plug(None, 7, SimConfig::tpdu_t0(), Some(card(&h(QEMU_TEST_CARD_ATR))));
    let events = registry.wait_events(Duration::from_millis(200)).unwrap();
    assert_eq!(
        events,
        [
            ReaderEvent::ReaderAdded { reader: "ccid:08e6:4433:@1.7".into() },
            ReaderEvent::CardInserted { reader: "ccid:08e6:4433:@1.7".into(), atr: Vec::new() },
        ]
    );
    assert!(!plugged.sim().commands().contains(&MessageType::ICC_POWER_ON));
    assert_eq!(bus.claims(), 0);
    let mut t = registry.connect(Some("ccid:08e6:4433:@1.7"), ShareMode::Shared).unwrap();
    assert_eq!(t.transmit(&h("00 A4 04 00")).unwrap(), h("90 00"));
    drop(plugged);
    bus.unplug(7);
    let events = registry.wait_events(Duration::from_millis(200)).unwrap();
    assert_eq!(
        events,
        [
            ReaderEvent::CardRemoved { reader: "ccid:08e6:4433:@1.7".into() },
            ReaderEvent::ReaderRemoved { reader: "ccid:08e6:4433:@1.7".into() },
        ]
    );
    assert!(matches!(t.transmit(&h("00 A4 04 00")), Err(TransportError::CardRemoved { .. })));
}

#[test]
fn multi_slot_readers_have_one_name_per_slot() {
    let bus = TestBus::default();
    let mut sim = SimConfig::short_apdu();
    sim.slots = 2;
    let plugged = bus.plug(Some("TWO"), 3, sim, None);
    plugged.sim().insert_card(1, card(&h(YUBIKEY_ATR)));
    let mut registry = registry(&bus, config());
    let (readers, _) = registry.readers();
    let names: Vec<_> = readers.iter().map(|r| (r.name.as_str(), r.atr.is_some())).collect();
    assert_eq!(names, [("ccid:08e6:4433:TWO#0", false), ("ccid:08e6:4433:TWO#1", true)]);
    assert!(matches!(
        registry.connect(Some("ccid:08e6:4433:TWO#0"), ShareMode::Shared),
        Err(TransportError::NoCard { .. })
    ));
    // Without `#`: the slot with a card.
    let mut t = registry.connect(Some("ccid:08e6:4433:TWO"), ShareMode::Shared).unwrap();
    assert_eq!(t.reader(), "ccid:08e6:4433:TWO#1");
    assert_eq!(t.transmit(&h("00 A4 04 00")).unwrap(), h("90 00"));
    assert!(matches!(
        registry.connect(Some("ccid:08e6:4433:TWO#2"), ShareMode::Shared),
        Err(TransportError::UnknownReader { .. })
    ));
    assert!(matches!(
        registry.connect(Some("ccid:08e6:9999"), ShareMode::Shared),
        Err(TransportError::UnknownReader { .. })
    ));
}

#[test]
fn exclusive_connections_and_escape() {
    let bus = TestBus::default();
    bus.plug(Some("X"), 2, SimConfig::short_apdu(), Some(card(&h(YUBIKEY_ATR))));
    let mut registry = registry(&bus, config());
    let mut a = registry.connect(Some("ccid:*"), ShareMode::Exclusive).unwrap();
    assert!(matches!(
        registry.connect(Some("ccid:*"), ShareMode::Shared),
        Err(TransportError::Sharing { .. })
    ));
    // The simulated reader echoes Escape data.
    let code = scard_ccid::backend::IOCTL_CCID_ESCAPE;
    assert_eq!(code, 0x4200_0DAC);
    assert_eq!(a.control(code, &[1, 2, 3]).unwrap(), [1, 2, 3]);
    assert!(matches!(a.control(0x4200_0001, &[]), Err(TransportError::Unsupported { .. })));
    drop(a);
    let _b = registry.connect(Some("ccid:*"), ShareMode::Shared).unwrap();
    assert!(matches!(
        registry.connect(Some("ccid:*"), ShareMode::Exclusive),
        Err(TransportError::Sharing { .. })
    ));
}

#[test]
fn time_extension_within_the_cap_and_the_deadline() {
    let bus = TestBus::default();
    let plugged = bus.plug(Some("T"), 2, SimConfig::tpdu_t0(), Some(card(&h(QEMU_TEST_CARD_ATR))));
    let mut cfg = config();
    cfg.driver.slot.max_time_extensions = 5;
    cfg.driver.slot.max_stale_responses = 64;
    let mut registry = registry(&bus, cfg);
    let mut t = registry.connect(Some("ccid:*"), ShareMode::Shared).unwrap();
    // Three time extensions before each answer: waited for.
    plugged.sim().knobs.time_extensions = 3;
    assert_eq!(t.transmit(&h("00 A4 04 00")).unwrap(), h("90 00"));
    // Beyond the engine's cap: a timeout naming the reader and the command.
    plugged.sim().knobs.time_extensions = 6;
    t.set_timeout(Duration::from_secs(7));
    let err = t.transmit(&h("00 A4 04 00 02 3F 00")).unwrap_err();
    let TransportError::Timeout { reader, command, after } = &err else { panic!("{err}") };
    assert_eq!((reader.as_str(), *after), ("ccid:08e6:4433:T", Duration::from_secs(7)));
    assert!(command.contains("SELECT"), "{command}");
    // A slow reader asking for more time again and again: the deadline ends the wait.
    plugged.sim().knobs.time_extensions = 5;
    *plugged.delay.lock().unwrap() = Duration::from_millis(30);
    t.set_timeout(Duration::from_millis(100));
    let started = Instant::now();
    let err = t.transmit(&h("00 A4 04 00")).unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, TransportError::Timeout { after, .. } if after == Duration::from_millis(100))
    );
    assert!(took >= Duration::from_millis(90) && took < Duration::from_millis(400), "{took:?}");
    // The reader's late answers are discarded; the connection works again.
    plugged.sim().knobs.time_extensions = 0;
    *plugged.delay.lock().unwrap() = Duration::ZERO;
    t.set_timeout(Duration::from_secs(5));
    assert_eq!(t.transmit(&h("00 A4 04 00")).unwrap(), h("90 00"));
}

#[test]
fn unusable_readers_and_no_usb_are_reported() {
    // A reader held by another driver: not listed, reported apart as in use.
    let bus = TestBus::default();
    bus.plug(Some("BUSY"), 2, SimConfig::short_apdu(), Some(card(&h(YUBIKEY_ATR))));
    bus.busy.lock().unwrap().push("BUSY".into());
    let mut backend = CcidBackend::new(bus.clone()).with_config(config());
    assert!(backend.readers().unwrap().is_empty());
    let unusable = backend.unusable();
    assert_eq!(unusable.len(), 1);
    assert_eq!(
        unusable[0].to_string(),
        "ccid:08e6:4433:BUSY: in use by another driver (pcscd?): busy (claimed by another driver or process)"
    );
    // Another, usable reader is listed; the busy one is left out.
    bus.plug(Some("OK"), 3, SimConfig::short_apdu(), Some(card(&h(YUBIKEY_ATR))));
    let readers = backend.readers().unwrap();
    assert_eq!(readers.len(), 1);
    assert_eq!(readers[0].name, "ccid:08e6:4433:OK");
    // No USB at all.
    let mut none = CcidBackend::<TestBus>::unavailable(Error::Usb {
        operation: UsbOperation::Init,
        failure: UsbFailure::Unavailable,
    });
    let err = none.readers().unwrap_err();
    assert_eq!(err.to_string(), "CCID not available: USB Init failed: USB not available");
    let any: ReaderName = "ccid:*".parse().unwrap();
    assert!(matches!(
        none.connect(&any, ShareMode::Shared),
        Err(TransportError::BackendUnavailable { backend: "CCID", .. })
    ));
    let other: ReaderName = "sim:piv".parse().unwrap();
    assert!(none.connect(&other, ShareMode::Shared).unwrap().is_none());
    let started = Instant::now();
    assert!(none.wait_events(Duration::from_millis(30)).unwrap().is_empty());
    assert!(started.elapsed() >= Duration::from_millis(30));
}

#[test]
fn readers_held_by_another_driver_do_not_hide_the_others() {
    let bus = TestBus::default();
    bus.plug(Some("BUSY"), 2, SimConfig::short_apdu(), Some(card(&h(YUBIKEY_ATR))));
    bus.plug(Some("DENIED"), 3, SimConfig::short_apdu(), Some(card(&h(YUBIKEY_ATR))));
    bus.plug(Some("OK"), 4, SimConfig::tpdu_t0(), Some(card(&h(QEMU_TEST_CARD_ATR))));
    bus.busy.lock().unwrap().push("BUSY".into());
    bus.denied.lock().unwrap().push("DENIED".into());
    let mut registry = registry(&bus, config());
    let (readers, unavailable) = registry.readers();
    let names: Vec<_> = readers.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["ccid:08e6:4433:OK"]);
    let notes: Vec<String> = unavailable.iter().map(ToString::to_string).collect();
    assert_eq!(
        notes,
        [
            "ccid:08e6:4433:BUSY: in use by another driver (pcscd?): busy (claimed by another driver or process)",
            "ccid:08e6:4433:DENIED: in use by another driver (pcscd?): access denied (insufficient permissions)",
        ]
    );
    // Connecting to one says so; the first reader with a card is the usable one.
    let err = registry.connect(Some("ccid:08e6:4433:BUSY"), ShareMode::Shared).unwrap_err();
    assert!(
        matches!(&err, TransportError::ReaderInUse { reader, .. } if reader == "ccid:08e6:4433:BUSY"),
        "{err}"
    );
    let t = registry.connect(None, ShareMode::Shared).unwrap();
    assert_eq!(t.reader(), "ccid:08e6:4433:OK");
    drop(t);
    // In a group, the reader in use is named among the group's readers.
    registry.define_group("busy", vec!["ccid:*:BUSY".into()]).unwrap();
    let err = registry.connect(Some("group:busy"), ShareMode::Shared).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no reader with a card in group busy (its readers: ccid:08e6:4433:BUSY (in use elsewhere))"
    );
    // pcscd lets go of it: it is listed again (a card seen for the first time, not powered).
    bus.busy.lock().unwrap().clear();
    let (readers, unavailable) = registry.readers();
    assert_eq!(unavailable.len(), 1, "{unavailable:?}");
    assert_eq!(readers.len(), 2);
    assert_eq!(readers[0].name, "ccid:08e6:4433:BUSY");
    assert_eq!(readers[0].atr.as_deref(), Some(&[][..]));
    let mut t = registry.connect(Some("ccid:08e6:4433:BUSY"), ShareMode::Shared).unwrap();
    assert_eq!(t.transmit(&h("00 A4 04 00")).unwrap(), h("90 00"));
    assert_eq!(bus.claims(), 1);
    drop(t);
    assert_eq!(bus.claims(), 0);
}

#[test]
fn readers_nobody_holds_are_looked_at_briefly_for_events() {
    let bus = TestBus::default();
    let plugged = bus.plug(Some("R"), 2, SimConfig::tpdu_t1(), Some(card(&t1_atr(254, false))));
    let mut backend = CcidBackend::new(bus.clone()).with_config(config());
    // The baseline.
    assert_eq!(backend.readers().unwrap().len(), 1);
    assert!(backend.wait_events(Duration::from_millis(20)).unwrap().is_empty());
    let opens = bus.opens.load(Ordering::SeqCst);
    plugged.sim().remove_card(0);
    let events = backend.wait_events(Duration::from_millis(200)).unwrap();
    assert_eq!(events, [ReaderEvent::CardRemoved { reader: "ccid:08e6:4433:R".into() }]);
    plugged.sim().insert_card(0, card(&t1_atr(254, false)));
    let events = backend.wait_events(Duration::from_millis(200)).unwrap();
    assert_eq!(
        events,
        [ReaderEvent::CardInserted { reader: "ccid:08e6:4433:R".into(), atr: Vec::new() }]
    );
    // Each look claimed the interface and gave it back; no card was powered on.
    assert!(bus.opens.load(Ordering::SeqCst) > opens);
    assert_eq!(bus.claims(), 0);
    assert!(!plugged.sim().commands().contains(&MessageType::ICC_POWER_ON));
    // While a connection holds the reader, a new card is powered on for its ATR.
    let name: ReaderName = "ccid:08e6:4433:R".parse().unwrap();
    let _t = backend.connect(&name, ShareMode::Shared).unwrap().unwrap();
    plugged.sim().remove_card(0);
    plugged.sim().insert_card(0, card(&h("3B 02 14 50")));
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while events.len() < 2 && Instant::now() < deadline {
        events.extend(backend.wait_events(Duration::from_millis(50)).unwrap());
    }
    assert_eq!(
        events,
        [
            ReaderEvent::CardRemoved { reader: "ccid:08e6:4433:R".into() },
            ReaderEvent::CardInserted { reader: "ccid:08e6:4433:R".into(), atr: h("3B 02 14 50") },
        ]
    );
}

/// QEMU 7.2's usb-ccid drops the answer to the XfrBlock pending when the card is removed
/// (tests/qemu-ccid/README.md): NotifySlotChange ends the wait, not the deadline.
#[test]
fn a_card_removed_while_its_answer_is_awaited_ends_the_wait() {
    let bus = TestBus::default();
    let plugged = bus.plug(Some("Q"), 2, SimConfig::tpdu_t0(), Some(card(&h(QEMU_TEST_CARD_ATR))));
    let mut registry = registry(&bus, config());
    let mut t = registry.connect(Some("ccid:*"), ShareMode::Shared).unwrap();
    assert_eq!(t.transmit(&h("00 A4 04 00")).unwrap(), h("90 00"));
    t.set_timeout(Duration::from_secs(20));
    plugged.remove_during_next_xfr.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let err = t.transmit(&h("00 A4 04 00 02 3F 00")).unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(&err, TransportError::CardRemoved { reader } if reader == "ccid:08e6:4433:Q"),
        "{err}"
    );
    // One slice of DriverConfig::event_check (100 ms), far from the 5 s read timeout.
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(matches!(t.transmit(&h("00 A4 04 00")), Err(TransportError::CardRemoved { .. })));
    // The removal is reported once as an event, and the reader works with the next card.
    let events = registry.wait_events(Duration::from_millis(50)).unwrap();
    assert_eq!(events, [ReaderEvent::CardRemoved { reader: "ccid:08e6:4433:Q".into() }]);
    plugged.sim().insert_card(0, card(&h(QEMU_TEST_CARD_ATR)));
    let events = registry.wait_events(Duration::from_millis(50)).unwrap();
    assert!(matches!(&events[..], [ReaderEvent::CardInserted { .. }]), "{events:?}");
    t.reconnect(Disposition::Leave).unwrap();
    assert_eq!(t.transmit(&h("00 A4 04 00")).unwrap(), h("90 00"));
    // Without the interrupt pipe read while waiting, only the read timeout ends the wait.
    drop(t);
    drop(registry);
    let mut cfg = config();
    cfg.driver.event_check = None;
    cfg.driver.read_timeout = Duration::from_millis(300);
    let mut patient = crate::registry(&bus, cfg);
    let mut t = patient.connect(Some("ccid:*"), ShareMode::Shared).unwrap();
    plugged.remove_during_next_xfr.store(true, Ordering::SeqCst);
    let err = t.transmit(&h("00 A4 04 00 02 3F 00")).unwrap_err();
    assert!(matches!(err, TransportError::Timeout { .. }), "{err}");
    // The next exchange reads the notification first.
    assert!(matches!(t.transmit(&h("00 A4 04 00")), Err(TransportError::CardRemoved { .. })));
}
