//! The driver against the simulated TPDU reader with a T=0 card: cases 1 to 4, 6Cxx and 61xx
//! at TPDU level, extended Le, PPS, voltage classes, the QEMU usb-ccid feature set.
// Test code: a failing test panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;
use scard_ccid::message::{IccStatus, MessageType, PowerSelect, ProtocolData};
use scard_ccid::sim::{SimCard, SimConfig};
use scard_ccid::{Error, SlotError};

fn t0_driver() -> scard_ccid::Driver<scard_ccid::sim::SimReader> {
    let mut d = driver(SimConfig::tpdu_t0(), Some(card(&h(QEMU_TEST_CARD_ATR))));
    let on = d.power_on(0).unwrap();
    assert_eq!(on.protocol, 0);
    let Some(ProtocolData::T0(p)) = on.parameters else { panic!("{on:?}") };
    assert_eq!((p.findex_dindex, p.waiting_integer), (0x11, 0x0A));
    d
}

#[test]
fn cases_1_to_4() {
    let mut d = t0_driver();
    // Case 1: P3 = 00.
    assert_eq!(d.transmit(0, &h("00 A4 00 00")).unwrap().to_vec(), h("90 00"));
    assert_eq!(xfr_payloads(d.usb()).last().unwrap(), &h("00 A4 00 00 00"));
    // Case 2 with the exact Le.
    let (cmd, expected) = read_command(16);
    assert_eq!(d.transmit(0, &cmd).unwrap().to_vec(), expected);
    // Case 2 with Le 00 but 16 bytes available: 6C10, resent with P3 = 10.
    let read_16 = h("00 B0 00 10 00");
    let r = d.transmit(0, &read_16).unwrap();
    assert_eq!(r.len(), 18);
    let tpdus = xfr_payloads(d.usb());
    assert_eq!(&tpdus[tpdus.len() - 2..], &[h("00 B0 00 10 00"), h("00 B0 00 10 10")]);
    // Case 3: no GET RESPONSE.
    assert_eq!(d.transmit(0, &h("00 20 00 81 06 31 32 33 34 35 36")).unwrap().to_vec(), h("90 00"));
    // Case 4: sent as case 3, the card answers 61xx, GET RESPONSE fetches the data.
    let (cmd, expected) = check_command(20);
    assert_eq!(d.transmit(0, &cmd).unwrap().to_vec(), expected);
    let tpdus = xfr_payloads(d.usb());
    assert_eq!(tpdus.last().unwrap(), &h("80 C0 00 00 04"));
}

#[test]
fn extended_le_and_long_commands() {
    let mut d = t0_driver();
    // Ne 700: P3 = 00 and GET RESPONSE until Ne bytes arrived.
    let cmd = h("00 B0 02 BC 00 02 BC");
    let mut expected: Vec<u8> = (0..700).map(|i| i as u8).collect();
    expected.extend_from_slice(&[0x90, 0x00]);
    let r = d.transmit(0, &cmd).unwrap();
    assert_eq!(r.len(), expected.len());
    assert_eq!(r.to_vec(), expected);
    let tpdus = xfr_payloads(d.usb());
    assert_eq!(
        &tpdus[tpdus.len() - 3..],
        &[h("00 B0 02 BC 00"), h("00 C0 00 00 00"), h("00 C0 00 00 BC")]
    );
    // Command data over 255 bytes cannot go over T=0 without ENVELOPE.
    let (cmd, _) = check_command(300);
    assert_eq!(d.transmit(0, &cmd).unwrap_err(), Error::T0CommandTooLong { nc: 300 });
    // The slot is still usable.
    assert_eq!(d.transmit(0, &h("00 A4 00 00")).unwrap().to_vec(), h("90 00"));
}

#[test]
fn pps_when_the_reader_does_not() {
    // A T=0 card with TA1 96 (Fi 512, Di 32: 250 kbps at 4 MHz) and a reader without
    // automatic PPS: the host sends FF 10 96 79 through XfrBlock, then SetParameters.
    let mut config = SimConfig::tpdu_t0();
    config.features &= !scard_ccid::Features::AUTO_PPS;
    let mut d = driver(config, Some(card(&h("3B 10 96"))));
    let on = d.power_on(0).unwrap();
    assert_eq!(xfr_payloads(d.usb())[0], h("FF 10 96 79"));
    let Some(ProtocolData::T0(p)) = on.parameters else { panic!() };
    assert_eq!(p.findex_dindex, 0x96);
    assert_eq!(
        d.usb().commands(),
        vec![MessageType::ICC_POWER_ON, MessageType::XFR_BLOCK, MessageType::SET_PARAMETERS]
    );
    // A card that garbles the PPS.
    let mut d = driver(config, Some(card(&h("3B 10 96"))));
    d.usb_mut().knobs.card_rejects_pps = true;
    assert!(matches!(d.power_on(0).unwrap_err(), Error::PpsFailed { .. }));
    // TA1 11 needs no PPS.
    let mut d = driver(config, Some(card(&h("3B 10 11"))));
    d.power_on(0).unwrap();
    assert_eq!(d.usb().commands(), vec![MessageType::ICC_POWER_ON, MessageType::SET_PARAMETERS]);
}

#[test]
fn voltage_classes() {
    // A reader without automatic voltage selection and a 5 V-only card: 1.8 V and 3 V stay
    // mute, 5 V answers.
    let mut config = SimConfig::tpdu_t0();
    config.features &= !scard_ccid::Features::AUTO_VOLTAGE;
    let five_volt = SimCard::new(&h(QEMU_TEST_CARD_ATR), card_logic).with_voltages(0x01);
    let mut d = driver(config, Some(five_volt));
    let on = d.power_on(0).unwrap();
    assert_eq!(on.voltage, PowerSelect::V5_0);
    let selects: Vec<u8> = d.usb().log.iter().filter(|m| m[0] == 0x62).map(|m| m[7]).collect();
    assert_eq!(selects, vec![3, 2, 1]);
    // A card that works at every class but whose ATR class indicator says class A only:
    // power off and on again at the next class (ISO/IEC 7816-3 §6.2.4).
    let class_a_atr = h("3B 80 80 1F 01 1E");
    let mut d = driver(config, Some(card(&class_a_atr)));
    let on = d.power_on(0).unwrap();
    assert_eq!(on.voltage, PowerSelect::V5_0);
    let kinds: Vec<u8> =
        d.usb().log.iter().map(|m| m[0]).filter(|t| *t == 0x62 || *t == 0x63).collect();
    assert_eq!(kinds, vec![0x62, 0x63, 0x62, 0x63, 0x62]);
    // A card mute at every class: the error of the last attempt.
    let mute = SimCard::new(&h(QEMU_TEST_CARD_ATR), card_logic).with_voltages(0);
    let mut d = driver(config, Some(mute));
    let e = d.power_on(0).unwrap_err();
    assert!(
        matches!(
            e,
            Error::CommandFailed {
                error: SlotError::ICC_MUTE,
                command: MessageType::ICC_POWER_ON,
                ..
            }
        ),
        "{e}"
    );
    // A reader with automatic voltage selection sends bPowerSelect 00.
    let mut d = driver(SimConfig::tpdu_t0(), Some(card(&h(QEMU_TEST_CARD_ATR))));
    assert_eq!(d.power_on(0).unwrap().voltage, PowerSelect::Automatic);
}

#[test]
fn qemu_usb_ccid_feature_set() {
    // dwFeatures 000104FE, dwProtocols T=0, dwMaxCCIDMessageLength 65554 (qemu-ccid.md §5):
    // no PPS, no SetParameters, no IFSD exchange: power on is IccPowerOn alone.
    let mut config = SimConfig::tpdu_t0();
    config.features = 0x0001_04FE;
    config.protocols = 0x0001;
    config.max_message_length = 65554;
    let mut d = driver(config, Some(card(&h(QEMU_TEST_CARD_ATR))));
    let on = d.power_on(0).unwrap();
    assert_eq!((on.protocol, on.parameters, on.ifsd), (0, None, None));
    assert_eq!(d.usb().commands(), vec![MessageType::ICC_POWER_ON]);
    // The libcacard CAC SELECT of qemu-ccid.md, case 4: 61xx and GET RESPONSE.
    let r = d.transmit(0, &h("00 A4 04 00 07 A0 00 00 00 79 01 00 00")).unwrap();
    assert_eq!(r.to_vec(), h("90 00"));
    assert_eq!(d.power_off(0).unwrap(), IccStatus::PresentInactive);
    assert_eq!(d.transmit(0, &h("00 A4 00 00")).unwrap_err(), Error::NotPowered { slot: 0 });
}

#[test]
fn t1_only_card_in_a_t0_only_reader() {
    let mut config = SimConfig::tpdu_t0();
    config.protocols = 0x0001;
    let mut d = driver(config, Some(card(&h(YUBIKEY_ATR))));
    assert!(matches!(
        d.power_on(0).unwrap_err(),
        Error::NoCommonProtocol { slot: 0, card: [false, true], reader: 1 }
    ));
}
