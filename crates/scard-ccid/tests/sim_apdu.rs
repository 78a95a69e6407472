//! The driver against simulated short and extended APDU readers, and a two-slot reader.
// Test code: a failing test panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use common::*;
use scard_ccid::message::{
    ClockCommand, ClockStatus, IccStatus, LevelParameter, MessageType, PinApdu, PinFormat,
    PinModify, PinVerify, ProtocolData, T0Parameters,
};
use scard_ccid::sim::SimConfig;
use scard_ccid::slot::{Outcome, RawCommand, SlotEvent};
use scard_ccid::{Error, ExchangeLevel};

#[test]
fn short_apdu_reader() {
    let mut d = driver(SimConfig::short_apdu(), Some(card(&h(YUBIKEY_ATR))));
    assert_eq!(d.slot(0).unwrap().level(), ExchangeLevel::ShortApdu);
    let on = d.power_on(0).unwrap();
    // dwFeatures 40h: the reader negotiates; the host only powers on.
    assert_eq!((on.protocol, on.parameters, on.ifsd), (1, None, None));
    assert_eq!(d.usb().commands(), vec![MessageType::ICC_POWER_ON]);
    // The APDU goes as is; 61xx is left to the layer above.
    assert_eq!(d.transmit(0, &h("00 CA 00 6E 00")).unwrap().to_vec(), h("61 05"));
    assert_eq!(xfr_payloads(d.usb()).last().unwrap(), &h("00 CA 00 6E 00"));
    let (cmd, expected) = read_command(256);
    assert_eq!(d.transmit(0, &cmd).unwrap().to_vec(), expected);
    // An extended APDU is refused before anything is sent.
    let (cmd, _) = check_command(300);
    let sent = d.usb().log.len();
    assert!(matches!(d.transmit(0, &cmd).unwrap_err(), Error::CommandTooLong { slot: 0, .. }));
    assert_eq!(d.usb().log.len(), sent);
    // Not an APDU at all.
    assert!(matches!(d.transmit(0, &[0x00, 0xA4]).unwrap_err(), Error::Apdu(_)));
}

#[test]
fn extended_apdu_reader_chains_both_ways() {
    let mut d = driver(SimConfig::extended_apdu(), Some(card(&h(YUBIKEY_ATR))));
    d.power_on(0).unwrap();
    // 600 data bytes: 607 bytes of APDU in parts of 261 (dwMaxCCIDMessageLength 271).
    let (cmd, expected) = check_command(600);
    assert_eq!(d.transmit(0, &cmd).unwrap().to_vec(), expected);
    let levels: Vec<u16> = d
        .usb()
        .log
        .iter()
        .filter(|m| m[0] == 0x6F)
        .map(|m| u16::from_le_bytes([m[8], m[9]]))
        .collect();
    assert_eq!(levels, vec![0x0001, 0x0003, 0x0002]);
    let sizes: Vec<usize> = xfr_payloads(d.usb()).iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![261, 261, cmd.len() - 522]);
    // 1000 bytes back: parts 01h, 03h ..., 02h, each fetched with wLevelParameter 0010h.
    let before = d.usb().log.len();
    let (cmd, expected) = read_command(1000);
    assert_eq!(d.transmit(0, &cmd).unwrap().to_vec(), expected);
    let continuation: Vec<_> = d.usb().log[before..]
        .iter()
        .map(|m| (m[0], u16::from_le_bytes([m[8], m[9]]), m.len()))
        .collect();
    assert_eq!(continuation[0], (0x6F, LevelParameter::BEGIN_AND_END.0, 10 + cmd.len()));
    assert!(continuation[1..].iter().all(|c| *c == (0x6F, LevelParameter::NEXT_RESPONSE.0, 10)));
    assert_eq!(continuation.len(), 1 + (1002usize).div_ceil(261) - 1);
    // Exactly one message's worth: no chaining.
    let before = d.usb().log.len();
    let (cmd, expected) = check_command(255);
    assert_eq!(cmd.len(), 261);
    assert_eq!(d.transmit(0, &cmd).unwrap().to_vec(), expected);
    assert_eq!(d.usb().log.len() - before, 1);
}

#[test]
fn pin_pad_at_apdu_level() {
    let mut d = driver(SimConfig::short_apdu(), Some(card(&h(YUBIKEY_ATR))));
    d.power_on(0).unwrap();
    d.usb_mut().knobs.pinpad_input = Some(b"123456".to_vec());
    let format = PinFormat {
        format_string: 0x82,
        min_digits: 6,
        max_digits: 8,
        entry_validation: 2,
        ..PinFormat::default()
    };
    let verify = PinVerify {
        format,
        number_message: 1,
        msg_index: 0,
        teo_prologue: [0; 3],
        apdu: PinApdu::new(h("00 20 00 81 06 FF FF FF FF FF FF")).unwrap(),
    };
    assert_eq!(d.verify_pin(0, verify).unwrap().to_vec(), h("90 00"));
    let modify = PinModify {
        format,
        insertion_offset_old: 0,
        insertion_offset_new: 6,
        confirm_pin: 3,
        number_message: 3,
        msg_index: [0, 1, 2],
        teo_prologue: [0; 3],
        apdu: PinApdu::new(h("00 20 00 81 06 FF FF FF FF FF FF")).unwrap(),
    };
    assert_eq!(d.modify_pin(0, modify).unwrap().to_vec(), h("90 00"));
    // A reader without a PIN pad.
    let mut config = SimConfig::short_apdu();
    config.pin_support = 0;
    let mut d = driver(config, Some(card(&h(YUBIKEY_ATR))));
    d.power_on(0).unwrap();
    let verify = PinVerify {
        format,
        number_message: 0,
        msg_index: 0,
        teo_prologue: [0; 3],
        apdu: PinApdu::new(h("00 20 00 81 06 FF FF FF FF FF FF")).unwrap(),
    };
    assert!(matches!(d.verify_pin(0, verify).unwrap_err(), Error::NotSupported { .. }));
}

#[test]
fn other_commands() {
    let mut d = driver(SimConfig::short_apdu(), Some(card(&h(YUBIKEY_ATR))));
    // QEMU answers GetSlotStatus "present, active" before any power on; this reader says
    // "present, inactive".
    assert_eq!(d.slot_status(0).unwrap(), (IccStatus::PresentInactive, ClockStatus::RUNNING));
    d.power_on(0).unwrap();
    assert_eq!(d.slot_status(0).unwrap().0, IccStatus::PresentActive);
    assert_eq!(d.escape(0, &[0x1F, 0x01]).unwrap(), vec![0x1F, 0x01]);
    let t0 = ProtocolData::T0(T0Parameters {
        findex_dindex: 0x11,
        tcck: 0,
        guard_time: 2,
        waiting_integer: 0x0A,
        clock_stop: 0,
    });
    assert_eq!(d.set_parameters(0, t0).unwrap(), (0, Some(t0)));
    assert_eq!(d.get_parameters(0).unwrap(), (0, Some(t0)));
    assert_eq!(d.usb().parameters(0), Some(t0));
    let Outcome::Reply { message_type, data_rate_and_clock, .. } = d
        .command(
            0,
            RawCommand::SetDataRateAndClockFrequency { clock_khz: 4000, data_rate_bps: 10753 },
        )
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (message_type, data_rate_and_clock),
        (MessageType::DATA_RATE_AND_CLOCK_FREQUENCY, Some((4000, 10753)))
    );
    let Outcome::Reply { message_type, .. } =
        d.command(0, RawCommand::IccClock(ClockCommand::Stop)).unwrap()
    else {
        panic!()
    };
    assert_eq!(message_type, MessageType::SLOT_STATUS);
    // T0APDU is not supported by this reader: command failed, bError 00.
    let e = d
        .command(0, RawCommand::T0Apdu { changes: 0, class_get_response: 0, class_envelope: 0 })
        .unwrap_err();
    assert!(
        matches!(e, Error::CommandFailed { error: scard_ccid::SlotError::CMD_NOT_SUPPORTED, .. }),
        "{e}"
    );
    // Like QEMU, Escape answered with a failed SlotStatus.
    d.usb_mut().knobs.unsupported = Some(MessageType::ESCAPE);
    let e = d.escape(0, &[1]).unwrap_err();
    assert!(matches!(e, Error::CommandFailed { command: MessageType::ESCAPE, .. }), "{e}");
    d.usb_mut().knobs.unsupported = None;
    // Class requests on the control pipe.
    assert_eq!(d.clock_frequencies().unwrap(), vec![4000]);
    assert_eq!(d.data_rates().unwrap(), vec![10753, 344_086]);
    assert_eq!(d.power_off(0).unwrap(), IccStatus::PresentInactive);
}

#[test]
fn two_slot_reader() {
    let mut config = SimConfig::tpdu_t1();
    config.slots = 2;
    let mut d = driver(config, Some(card(&h(YUBIKEY_ATR))));
    assert_eq!(d.descriptor().max_slot_index(), 1);
    d.power_on(0).unwrap();
    // Slot 1 is empty until a card goes in.
    assert!(d.power_on(1).unwrap_err().is_card_absent());
    d.usb_mut().insert_card(1, card(&t1_atr(64, true)));
    assert_eq!(d.poll_events(Duration::ZERO).unwrap(), vec![(1, SlotEvent::CardInserted)]);
    d.power_on(1).unwrap();
    let (cmd, expected) = read_command(300);
    assert_eq!(d.transmit(1, &cmd).unwrap().to_vec(), expected);
    assert_eq!(d.transmit(0, &cmd).unwrap().to_vec(), expected);
    // bSlot of each message, and one bSeq counter for the reader.
    let slots: Vec<u8> = d.usb().log.iter().map(|m| m[5]).collect();
    assert!(slots.contains(&0) && slots.contains(&1));
    let seqs: Vec<u8> = d.usb().log.iter().map(|m| m[6]).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "{seqs:?}");
    // Removing the card of slot 1 leaves slot 0 alone.
    d.usb_mut().remove_card(1);
    assert_eq!(d.poll_events(Duration::ZERO).unwrap(), vec![(1, SlotEvent::CardRemoved)]);
    assert!(d.slot(0).unwrap().is_powered() && !d.slot(1).unwrap().is_powered());
    assert_eq!(d.transmit(0, &h("00 A4 04 00 02 3F 00")).unwrap().to_vec(), h("90 00"));
    // Slot 2 does not exist.
    assert_eq!(d.power_on(2).unwrap_err(), Error::NoSuchSlot { slot: 2, max_slot_index: 1 });
    // A hardware error ends the session.
    d.usb_mut().hardware_error(0);
    let events = d.poll_events(Duration::ZERO).unwrap();
    assert!(matches!(events[..], [(0, SlotEvent::HardwareError(_))]));
    assert!(!d.slot(0).unwrap().is_powered());
}

#[test]
fn timeout_aborts_the_command() {
    // A reader that never answers: the driver times out, sends ABORT and PC_to_RDR_Abort.
    struct Silent(Vec<Vec<u8>>, usize);
    impl scard_ccid::CcidUsb for Silent {
        fn bulk_out(&mut self, m: &[u8], _: Duration) -> Result<(), scard_ccid::UsbFailure> {
            self.0.push(m.to_vec());
            Ok(())
        }
        fn bulk_in(&mut self, _: Duration) -> Result<Vec<u8>, scard_ccid::UsbFailure> {
            Err(scard_ccid::UsbFailure::Timeout)
        }
        fn interrupt_in(&mut self, _: Duration) -> Result<Vec<u8>, scard_ccid::UsbFailure> {
            Err(scard_ccid::UsbFailure::NoDevice)
        }
        fn control(
            &mut self,
            _: &scard_ccid::message::ControlSetup,
            _: &[u8],
            _: Duration,
        ) -> Result<Vec<u8>, scard_ccid::UsbFailure> {
            self.1 += 1;
            Ok(Vec::new())
        }
    }
    let descriptor = SimConfig::short_apdu().descriptor();
    let mut d = scard_ccid::Driver::new(
        Silent(Vec::new(), 0),
        descriptor,
        scard_ccid::DriverConfig::default(),
    )
    .unwrap();
    let e = d.power_on(0).unwrap_err();
    assert_eq!(e, Error::Timeout { slot: 0, command: MessageType::ICC_POWER_ON });
    assert!(e.is_timeout());
    assert_eq!(d.usb().1, 1);
    assert_eq!(d.usb().0.last().unwrap()[0], 0x72);
    assert!(matches!(d.poll_events(Duration::ZERO).unwrap_err(), Error::Usb { .. }));
}
