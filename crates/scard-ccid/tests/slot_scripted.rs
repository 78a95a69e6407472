//! The slot engine against hand-written bulk-in messages: sequence numbers, status bytes,
//! message types, chaining violations and the power-on decisions, without a simulator.
// Test code: a failing test panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::h;
use scard_ccid::descriptor::ClassDescriptor;
use scard_ccid::message::{
    ChainParameter, ClockStatus, CommandStatus, IccStatus, MessageType, PowerSelect, ProtocolData,
    SlotError, Status, reply,
};
use scard_ccid::sim::SimConfig;
use scard_ccid::slot::{Outcome, pps_confirms, pps_request, protocol_data};
use scard_ccid::{Error, Slot, SlotConfig, Step};
use scard_iso7816::atr::Atr;

const OK: Status = Status(0x00);

fn sent(step: &Step) -> (u8, u8, u8) {
    let Step::Send { message, .. } = step else { panic!("expected a message, got {step:?}") };
    (message[0], message[5], message[6])
}

fn qemu() -> ClassDescriptor {
    ClassDescriptor::parse(&h(
        "36 21 10 01 00 07 01 00 00 00 A0 0F 00 00 00 00 01 00 00 80 25 00 00 00 C2 01 00 00 FE 00 00 00 \
         00 00 00 00 00 00 00 00 FE 04 01 00 12 00 01 00 FF FF 00 00 01 01",
    ))
    .unwrap()
}

/// A slot of the QEMU reader, powered with the QEMU test card (T=0), next bSeq 1.
fn powered() -> Slot {
    let mut slot = Slot::new(&qemu(), SlotConfig::default()).unwrap();
    let step = slot.power_on().unwrap();
    assert_eq!(sent(&step), (0x62, 0, 0));
    let atr = reply::data_block(
        0,
        0,
        OK,
        SlotError(0),
        ChainParameter(0),
        &h(common::QEMU_TEST_CARD_ATR),
    );
    let Step::Done(Outcome::PoweredOn(on)) = slot.on_bulk_in(&atr).unwrap() else { panic!() };
    assert_eq!((on.protocol, on.voltage), (0, PowerSelect::Automatic));
    slot
}

#[test]
fn construction_errors() {
    let mut bytes = SimConfig::short_apdu().descriptor_bytes();
    // dwFeatures without an exchange level: character level.
    bytes[42] = 0;
    let character = ClassDescriptor::parse(&bytes).unwrap();
    assert_eq!(
        Slot::new(&character, SlotConfig::default()).unwrap_err(),
        Error::CharacterLevelUnsupported
    );
    assert_eq!(
        Error::CharacterLevelUnsupported.to_string(),
        "character-level readers are not supported"
    );
    bytes[42] = 0x03;
    assert!(matches!(
        Slot::new(&ClassDescriptor::parse(&bytes).unwrap(), SlotConfig::default()),
        Err(Error::InvalidDescriptor { field: "dwFeatures", .. })
    ));
    assert_eq!(
        Slot::new(&qemu(), SlotConfig::for_slot(1)).unwrap_err(),
        Error::NoSuchSlot { slot: 1, max_slot_index: 0 }
    );
    let mut bytes = SimConfig::short_apdu().descriptor_bytes();
    bytes[44..48].copy_from_slice(&12u32.to_le_bytes());
    assert!(matches!(
        Slot::new(&ClassDescriptor::parse(&bytes).unwrap(), SlotConfig::default()),
        Err(Error::InvalidDescriptor { field: "dwMaxCCIDMessageLength", .. })
    ));
}

#[test]
fn sequence_numbers() {
    let mut slot = powered();
    let step = slot.transmit(&h("00 A4 00 00")).unwrap();
    assert_eq!(sent(&step), (0x6F, 0, 1));
    // An older bSeq (the answer to an abandoned command) is discarded; so is another slot's.
    let old = reply::data_block(0, 0, OK, SlotError(0), ChainParameter(0), &h("90 00"));
    assert_eq!(slot.on_bulk_in(&old).unwrap(), Step::Receive { wait_multiplier: 1 });
    let other = reply::data_block(1, 1, OK, SlotError(0), ChainParameter(0), &h("90 00"));
    assert_eq!(slot.on_bulk_in(&other).unwrap(), Step::Receive { wait_multiplier: 1 });
    // A bSeq never sent is an error.
    let future = reply::data_block(0, 2, OK, SlotError(0), ChainParameter(0), &h("90 00"));
    assert_eq!(
        slot.on_bulk_in(&future).unwrap_err(),
        Error::SequenceMismatch { slot: 0, command: MessageType::XFR_BLOCK, expected: 1, found: 2 }
    );
    assert!(!slot.is_busy());
    assert_eq!(slot.on_bulk_in(&old).unwrap_err(), Error::NoOperation { slot: 0 });
    // bSeq wraps around.
    slot.set_next_seq(0xFF);
    let step = slot.transmit(&h("00 A4 00 00")).unwrap();
    assert_eq!(sent(&step).2, 0xFF);
    let wrapped_old = reply::data_block(0, 0xFE, OK, SlotError(0), ChainParameter(0), &h("90 00"));
    assert!(matches!(slot.on_bulk_in(&wrapped_old).unwrap(), Step::Receive { .. }));
    let answer = reply::data_block(0, 0xFF, OK, SlotError(0), ChainParameter(0), &h("90 00"));
    assert_eq!(slot.on_bulk_in(&answer).unwrap(), Step::Done(Outcome::Response(h("90 00").into())));
    assert_eq!(slot.next_seq(), 0);
    // Too many stale answers.
    let mut slot =
        Slot::new(&qemu(), SlotConfig { max_stale_responses: 2, ..SlotConfig::default() }).unwrap();
    slot.set_next_seq(5);
    let _ = slot.get_slot_status().unwrap();
    let stale = reply::slot_status(0, 4, OK, SlotError(0), ClockStatus::RUNNING);
    assert!(slot.on_bulk_in(&stale).is_ok());
    assert!(slot.on_bulk_in(&stale).is_ok());
    assert!(matches!(
        slot.on_bulk_in(&stale).unwrap_err(),
        Error::TooManyStaleResponses { count: 3, .. }
    ));
}

#[test]
fn status_and_message_types() {
    let mut slot = powered();
    let _ = slot.transmit(&h("00 A4 00 00")).unwrap();
    // Time extension: keep waiting, with bError as the multiplier.
    let extension = reply::data_block(0, 1, Status(0x80), SlotError(3), ChainParameter(0), &[]);
    assert_eq!(slot.on_bulk_in(&extension).unwrap(), Step::Receive { wait_multiplier: 3 });
    // bmCommandStatus 11b is RFU.
    let rfu = reply::data_block(0, 1, Status(0xC0), SlotError(0), ChainParameter(0), &[]);
    assert!(matches!(
        slot.on_bulk_in(&rfu).unwrap_err(),
        Error::InvalidStatus { status: 0xC0, .. }
    ));
    // The wrong message type for the command.
    let _ = slot.transmit(&h("00 A4 00 00")).unwrap();
    let wrong = reply::escape(0, 2, OK, SlotError(0), &[]);
    assert_eq!(
        slot.on_bulk_in(&wrong).unwrap_err(),
        Error::UnexpectedMessage {
            slot: 0,
            command: MessageType::XFR_BLOCK,
            found: MessageType::ESCAPE_RESPONSE
        }
    );
    // Malformed messages end the operation with the decoding error.
    let _ = slot.transmit(&h("00 A4 00 00")).unwrap();
    assert!(matches!(slot.on_bulk_in(&[0x80, 1, 0]).unwrap_err(), Error::Truncated { .. }));
    // A busy slot refuses a second operation.
    let _ = slot.transmit(&h("00 A4 00 00")).unwrap();
    assert!(matches!(
        slot.get_slot_status().unwrap_err(),
        Error::Busy { running: MessageType::XFR_BLOCK, .. }
    ));
    // The card went away during the command.
    let absent = reply::data_block(
        0,
        4,
        Status::new(CommandStatus::Failed, IccStatus::Absent),
        SlotError::ICC_MUTE,
        ChainParameter(0),
        &[],
    );
    assert_eq!(
        slot.on_bulk_in(&absent).unwrap_err(),
        Error::CardAbsent { slot: 0, command: MessageType::XFR_BLOCK }
    );
    assert!(!slot.is_powered());
}

#[test]
fn slot_status_mute_is_not_an_error() {
    let mut slot = Slot::new(&qemu(), SlotConfig::default()).unwrap();
    let _ = slot.get_slot_status().unwrap();
    let mute = reply::slot_status(
        0,
        0,
        Status::new(CommandStatus::Failed, IccStatus::Absent),
        SlotError::ICC_MUTE,
        ClockStatus::RUNNING,
    );
    assert_eq!(
        slot.on_bulk_in(&mute).unwrap(),
        Step::Done(Outcome::SlotStatus {
            icc: IccStatus::Absent,
            clock: ClockStatus::RUNNING,
            error: SlotError::ICC_MUTE
        })
    );
}

#[test]
fn power_on_errors() {
    let mut slot = Slot::new(&qemu(), SlotConfig::default()).unwrap();
    let _ = slot.power_on().unwrap();
    let bad_atr = reply::data_block(0, 0, OK, SlotError(0), ChainParameter(0), &h("3A 00"));
    assert!(matches!(slot.on_bulk_in(&bad_atr).unwrap_err(), Error::InvalidAtr { slot: 0, .. }));
    // No card: the reader answers ICC_MUTE with ICC absent.
    let _ = slot.power_on().unwrap();
    let absent = reply::data_block(0, 1, Status(0x42), SlotError::ICC_MUTE, ChainParameter(0), &[]);
    assert!(slot.on_bulk_in(&absent).unwrap_err().is_card_absent());
    // TA2 imposes T=1, which the QEMU reader lacks.
    let _ = slot.power_on().unwrap();
    let atr = reply::data_block(0, 2, OK, SlotError(0), ChainParameter(0), &specific_t1_atr());
    assert!(matches!(slot.on_bulk_in(&atr).unwrap_err(), Error::NoCommonProtocol { .. }));
}

/// A synthetic ATR in specific mode T=1: T0 = 90 (TA1, TD1), TA1 11, TD1 11 (TA2, T=1),
/// TA2 01 (specific mode, T=1, changeable), TCK.
fn specific_t1_atr() -> Vec<u8> {
    let mut atr = vec![0x3B, 0x90, 0x11, 0x11, 0x01];
    let tck = atr[1..].iter().fold(0, |a, b| a ^ b);
    atr.push(tck);
    atr
}

#[test]
fn protocol_choice_and_parameters() {
    // A card offering T=0 and T=1 (TD1 80 -> T=0, TD2 01 -> T=1) in a T=0/T=1 TPDU reader.
    let both = {
        let mut atr = vec![0x3B, 0x80, 0x80, 0x01];
        let tck = atr[1..].iter().fold(0, |a, b| a ^ b);
        atr.push(tck);
        atr
    };
    let descriptor = SimConfig::tpdu_t1().descriptor();
    for (preference, expected) in [(None, 0), (Some(1), 1), (Some(0), 0)] {
        let mut slot =
            Slot::new(&descriptor, SlotConfig { protocol: preference, ..SlotConfig::default() })
                .unwrap();
        let _ = slot.power_on().unwrap();
        let step = slot
            .on_bulk_in(&reply::data_block(0, 0, OK, SlotError(0), ChainParameter(0), &both))
            .unwrap();
        // SetParameters for the chosen protocol: bProtocolNum at offset 7.
        let Step::Send { message, .. } = step else { panic!() };
        assert_eq!((message[0], message[7]), (0x61, expected), "{preference:?}");
    }
    // Implicit parameters in TA2 (bit 5) cannot be given to a CCID.
    let mut implicit = vec![0x3B, 0x90, 0x11, 0x11, 0x11];
    let tck = implicit[1..].iter().fold(0, |a, b| a ^ b);
    implicit.push(tck);
    let mut slot = Slot::new(&descriptor, SlotConfig::default()).unwrap();
    let _ = slot.power_on().unwrap();
    let e = slot
        .on_bulk_in(&reply::data_block(0, 0, OK, SlotError(0), ChainParameter(0), &implicit))
        .unwrap_err();
    assert_eq!(e, Error::ImplicitParameters { slot: 0 });
    // Specific mode T=1 with TA1 11.
    let mut slot = Slot::new(&descriptor, SlotConfig::default()).unwrap();
    let _ = slot.power_on().unwrap();
    let step = slot
        .on_bulk_in(&reply::data_block(
            0,
            0,
            OK,
            SlotError(0),
            ChainParameter(0),
            &specific_t1_atr(),
        ))
        .unwrap();
    let Step::Send { message, .. } = step else { panic!() };
    assert_eq!((message[0], message[7], message[10]), (0x61, 1, 0x11));
}

#[test]
fn protocol_data_from_atrs() {
    // YubiKey 5: TA1 13, TC1 00, TB3 15, TA3 FE.
    let atr = Atr::from_hex(common::YUBIKEY_ATR).unwrap();
    let ProtocolData::T1(p) = protocol_data(&atr, 1, 0x13) else { panic!() };
    assert_eq!(
        (p.findex_dindex, p.tcck, p.guard_time, p.waiting_integers, p.ifsc, p.nad),
        (0x13, 0x10, 0, 0x15, 0xFE, 0)
    );
    // Schlumberger Cryptoflex 8k (TC2 20): T=0 with WI 20h.
    let atr = Atr::from_hex("3B 85 40 20 68 01 01 00 00").unwrap();
    let ProtocolData::T0(p) = protocol_data(&atr, 0, 0x11) else { panic!() };
    assert_eq!((p.tcck, p.waiting_integer), (0, 0x20));
    // Inverse convention (Atmel/Athena T0 inverse convention test card).
    let atr = Atr::from_hex("3F 96 18 80 01 80 51 00 61 10 30 9F").unwrap();
    let ProtocolData::T0(p) = protocol_data(&atr, 0, 0x18) else { panic!() };
    assert_eq!(p.tcck, 0x02);
    // A CRC T=1 card.
    let atr = Atr::parse(&common::t1_atr(0x20, true)).unwrap();
    let ProtocolData::T1(p) = protocol_data(&atr, 1, 0x11) else { panic!() };
    assert_eq!(p.tcck, 0x11);
}

#[test]
fn pps_messages() {
    // ISO/IEC 7816-3 §9.2 PPS request with PPS1: FF 11 96 78 for T=1, TA1 96.
    assert_eq!(pps_request(1, Some(0x96)), h("FF 11 96 78"));
    assert_eq!(pps_request(0, None), h("FF 00 FF"));
    assert_eq!(pps_confirms(&h("FF 11 96 78"), &h("FF 11 96 78")), Some(0x96));
    // The card keeps the default Fi/Di: PPS1 absent in the response.
    assert_eq!(pps_confirms(&h("FF 11 96 78"), &h("FF 01 FE")), Some(0x11));
    // Another protocol, a bad PCK, or nothing: failure.
    assert_eq!(pps_confirms(&h("FF 11 96 78"), &h("FF 00 FF")), None);
    assert_eq!(pps_confirms(&h("FF 11 96 78"), &h("FF 01 FF")), None);
    assert_eq!(pps_confirms(&h("FF 11 96 78"), &[]), None);
    assert_eq!(pps_confirms(&h("FF 00 FF"), &h("FF 00 FF")), Some(0x11));
}

#[test]
fn apdu_level_chaining_violations() {
    let descriptor = SimConfig::extended_apdu().descriptor();
    let power = |slot: &mut Slot| {
        let _ = slot.power_on().unwrap();
        let atr =
            reply::data_block(0, 0, OK, SlotError(0), ChainParameter(0), &h(common::YUBIKEY_ATR));
        assert!(matches!(slot.on_bulk_in(&atr).unwrap(), Step::Done(_)));
    };
    let mut slot = Slot::new(&descriptor, SlotConfig::default()).unwrap();
    power(&mut slot);
    // A first response part marked "continues and ends".
    let _ = slot.transmit(&h("00 B0 00 00 00")).unwrap();
    let bad = reply::data_block(0, 1, OK, SlotError(0), ChainParameter::END, &h("90 00"));
    assert!(matches!(
        slot.on_bulk_in(&bad).unwrap_err(),
        Error::ChainViolation { chain: 0x02, .. }
    ));
    // An empty part announcing more.
    let _ = slot.transmit(&h("00 B0 00 00 00")).unwrap();
    let bad = reply::data_block(0, 2, OK, SlotError(0), ChainParameter::BEGIN, &[]);
    assert!(matches!(
        slot.on_bulk_in(&bad).unwrap_err(),
        Error::ChainViolation { chain: 0x01, .. }
    ));
    // A long command whose first part is not answered with 10h.
    let (cmd, _) = common::check_command(600);
    let _ = slot.transmit(&cmd).unwrap();
    let bad = reply::data_block(0, 3, OK, SlotError(0), ChainParameter(0), &h("90 00"));
    assert!(matches!(
        slot.on_bulk_in(&bad).unwrap_err(),
        Error::ChainViolation { chain: 0x00, .. }
    ));
    // A response shorter than SW1 SW2.
    let _ = slot.transmit(&h("00 B0 00 00 00")).unwrap();
    let short = reply::data_block(0, 4, OK, SlotError(0), ChainParameter(0), &[0x90]);
    assert_eq!(slot.on_bulk_in(&short).unwrap_err(), Error::ResponseTooShort { slot: 0, len: 1 });
    // A short APDU reader answering in parts.
    let mut slot = Slot::new(&SimConfig::short_apdu().descriptor(), SlotConfig::default()).unwrap();
    power(&mut slot);
    let _ = slot.transmit(&h("00 B0 00 00 00")).unwrap();
    let parts = reply::data_block(0, 1, OK, SlotError(0), ChainParameter::BEGIN, &h("01 02"));
    assert!(matches!(slot.on_bulk_in(&parts).unwrap_err(), Error::ChainViolation { .. }));
}

#[test]
fn qemu_parameters_quirk() {
    let quirk = scard_ccid::message::DecodeOptions { parameters_length_zero: true };
    let quirky = h("82 00 00 00 00 00 01 00 00 00 00 00 00 00 00 FE 00");
    // Strict: the QEMU 7.2 answer to GetParameters is rejected.
    let mut slot = powered();
    let _ = slot.get_parameters().unwrap();
    assert!(matches!(
        slot.on_bulk_in(&quirky).unwrap_err(),
        Error::LengthMismatch { declared: 0, actual: 7, .. }
    ));
    // With the named quirk it decodes (7 bytes for bProtocolNum 0: not a T=0 structure).
    let mut slot =
        Slot::new(&qemu(), SlotConfig { decode: quirk, ..SlotConfig::default() }).unwrap();
    slot.set_next_seq(1);
    let _ = slot.get_parameters().unwrap();
    assert_eq!(
        slot.on_bulk_in(&quirky).unwrap(),
        Step::Done(Outcome::Parameters { protocol: 0, data: None })
    );
}

#[test]
fn an_exchange_answered_for_an_absent_card_is_a_removal() {
    // QEMU's usb-ccid flushes the XfrBlock pending at CardRemove with an empty DataBlock:
    // command status "processed", ICC status "absent".
    let mut slot = powered();
    let step = slot.transmit(&h("00 A4 04 00")).unwrap();
    assert_eq!(sent(&step), (0x6F, 0, 1));
    let absent = Status::new(CommandStatus::Processed, IccStatus::Absent);
    let empty = reply::data_block(0, 1, absent, SlotError(0), ChainParameter(0), &[]);
    let err = slot.on_bulk_in(&empty).unwrap_err();
    assert_eq!(err, Error::CardAbsent { slot: 0, command: MessageType::XFR_BLOCK });
    assert!(err.is_card_absent());
    assert!(!slot.is_powered() && !slot.is_busy());
    // GetSlotStatus for an absent card is an answer, not an error.
    let step = slot.get_slot_status().unwrap();
    assert_eq!(sent(&step), (0x65, 0, 2));
    let status = reply::slot_status(0, 2, absent, SlotError(0), ClockStatus::RUNNING);
    assert!(matches!(
        slot.on_bulk_in(&status).unwrap(),
        Step::Done(Outcome::SlotStatus { icc: IccStatus::Absent, .. })
    ));
}
