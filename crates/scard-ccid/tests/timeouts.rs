//! Time extensions through the simulated TPDU reader with a T=1 card (issue 9, timeouts): a
//! card asks for more time (S(WTX request), ISO/IEC 7816-3 §11.6.2.3) and the driver grants
//! it, but the whole exchange stays within the driver's deadline however often the card asks,
//! and a card that asks forever ends in an error in bounded time, with the slot usable after.
// Test code: a failing test panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use scard_ccid::message::ControlSetup;
use scard_ccid::sim::{SimConfig, SimReader};
use scard_ccid::{CcidUsb, Driver, DriverConfig, Error, UsbFailure};

/// The simulated reader, each answer taking `delay` to arrive (a slow card behind it).
struct Slow {
    reader: SimReader,
    delay: Duration,
}

impl CcidUsb for Slow {
    fn bulk_out(&mut self, message: &[u8], timeout: Duration) -> Result<(), UsbFailure> {
        self.reader.bulk_out(message, timeout)
    }
    fn bulk_in(&mut self, timeout: Duration) -> Result<Vec<u8>, UsbFailure> {
        if self.delay > timeout {
            std::thread::sleep(timeout);
            return Err(UsbFailure::Timeout);
        }
        std::thread::sleep(self.delay);
        self.reader.bulk_in(timeout)
    }
    fn interrupt_in(&mut self, timeout: Duration) -> Result<Vec<u8>, UsbFailure> {
        self.reader.interrupt_in(timeout)
    }
    fn control(
        &mut self,
        setup: &ControlSetup,
        data: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, UsbFailure> {
        self.reader.control(setup, data, timeout)
    }
}

fn slow_driver(delay: Duration, deadline: Duration) -> Driver<Slow> {
    let reader = SimReader::new(SimConfig::tpdu_t1(), Some(card(&h(YUBIKEY_ATR))));
    let descriptor = reader.descriptor();
    let config = DriverConfig { deadline, ..DriverConfig::default() };
    Driver::new(Slow { reader, delay }, descriptor, config).unwrap()
}

/// S(WTX request)s of the card so far: the 6F XfrBlocks carrying the S(WTX response).
fn wtx_responses(reader: &SimReader) -> usize {
    xfr_payloads(reader).iter().filter(|b| b.get(1) == Some(&0xE3)).count()
}

const SELECT: &str = "00 A4 04 00 02 3F 00";

#[test]
fn a_card_asking_for_time_again_and_again_is_answered() {
    let mut d = driver(SimConfig::tpdu_t1(), Some(card(&h(YUBIKEY_ATR))));
    d.power_on(0).unwrap();
    d.usb_mut().knobs.card_wtx = Some(3);
    d.usb_mut().knobs.card_wtx_repeat = 20;
    assert_eq!(d.transmit(0, &h(SELECT)).unwrap().to_vec(), h("90 00"));
    assert_eq!(wtx_responses(d.usb()), 21, "every request granted");
}

#[test]
fn a_card_asking_for_time_forever_ends_in_an_error() {
    // Answers come at once: the bound on blocks of one exchange ends it.
    let mut d = driver(SimConfig::tpdu_t1(), Some(card(&h(YUBIKEY_ATR))));
    d.power_on(0).unwrap();
    d.usb_mut().knobs.card_wtx = Some(1);
    d.usb_mut().knobs.card_wtx_repeat = u32::MAX;
    let started = Instant::now();
    let err = d.transmit(0, &h(SELECT)).unwrap_err();
    println!("endless WTX, instant answers: {err} after {:?}", started.elapsed());
    assert!(matches!(err, Error::T1ExchangeTooLong { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // The card stops: the slot works again (the abandoned exchange is resynchronised).
    d.usb_mut().knobs.card_wtx = None;
    d.usb_mut().knobs.card_wtx_repeat = 0;
    assert_eq!(d.transmit(0, &h(SELECT)).unwrap().to_vec(), h("90 00"));
}

#[test]
fn the_deadline_caps_the_time_extensions() {
    // Each answer takes 40 ms: a card asking for time forever is stopped by the deadline of
    // the exchange (here 400 ms), whatever the multipliers it asks for.
    let deadline = Duration::from_millis(400);
    let mut d = slow_driver(Duration::from_millis(40), deadline);
    d.power_on(0).unwrap();
    assert_eq!(d.transmit(0, &h(SELECT)).unwrap().to_vec(), h("90 00"));
    d.usb_mut().reader.knobs.card_wtx = Some(255);
    d.usb_mut().reader.knobs.card_wtx_repeat = u32::MAX;
    let started = Instant::now();
    let err = d.transmit(0, &h(SELECT)).unwrap_err();
    let took = started.elapsed();
    println!("endless WTX, 40 ms per answer: {err} after {took:?}");
    assert!(err.is_timeout(), "{err:?}");
    assert!(took >= deadline && took < deadline + Duration::from_millis(500), "{took:?}");
    // A card that asks a few times within the deadline is waited for.
    d.usb_mut().reader.knobs.card_wtx = Some(2);
    d.usb_mut().reader.knobs.card_wtx_repeat = 3;
    d.set_deadline(Duration::from_secs(5));
    let started = Instant::now();
    assert_eq!(d.transmit(0, &h(SELECT)).unwrap().to_vec(), h("90 00"));
    assert!(started.elapsed() < Duration::from_secs(2));
}
