//! The driver against the simulated TPDU reader with a T=1 card: power on with SetParameters
//! and IFSD negotiation, chaining both ways, WTX, lost and corrupted blocks, resynchronisation,
//! time extensions, stale answers, PIN pad, abort, card removal.
// Test code: a failing test panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;
use scard_ccid::message::{MessageType, PinApdu, PinFormat, PinVerify, ProtocolData};
use scard_ccid::sim::SimConfig;
use scard_ccid::t1::{RCode, SKind, encode_block, pcb_r, pcb_s};
use scard_ccid::{Error, SlotError};
use scard_iso7816::atr::EdcKind;

#[test]
fn power_on_sets_parameters_and_negotiates_ifsd() {
    let mut d = driver(SimConfig::tpdu_t1(), Some(card(&h(YUBIKEY_ATR))));
    let on = d.power_on(0).unwrap();
    assert_eq!(on.protocol, 1);
    assert_eq!(on.atr.bytes(), &h(YUBIKEY_ATR)[..]);
    assert_eq!(on.ifsd, Some(254));
    // TA1 13 is faster than the default and the reader reaches it: Fi/Di 13 in SetParameters;
    // the reader does PPS itself (dwFeatures 80h).
    let Some(ProtocolData::T1(p)) = on.parameters else { panic!("{on:?}") };
    assert_eq!((p.findex_dindex, p.tcck, p.ifsc, p.waiting_integers), (0x13, 0x10, 0xFE, 0x15));
    assert_eq!(
        d.usb().commands(),
        vec![MessageType::ICC_POWER_ON, MessageType::SET_PARAMETERS, MessageType::XFR_BLOCK]
    );
    // The S(IFS request FE) went through XfrBlock.
    assert_eq!(xfr_payloads(d.usb())[0], h("00 C1 01 FE 3E"));
    assert_eq!(d.usb().t1_card_ifsd(0), 254);
    assert_eq!(d.transmit(0, &h("00 A4 04 00 02 3F 00")).unwrap().to_vec(), h("90 00"));
}

#[test]
fn chaining_both_ways() {
    let mut d = driver(SimConfig::tpdu_t1(), Some(card(&t1_atr(32, false))));
    d.power_on(0).unwrap();
    let before = xfr_payloads(d.usb()).len();
    // 600 data bytes (extended APDU): I-blocks of IFSC 32 with the M bit.
    let (cmd, expected) = check_command(600);
    assert_eq!(d.transmit(0, &cmd).unwrap().to_vec(), expected);
    let blocks = &xfr_payloads(d.usb())[before..];
    assert_eq!(blocks.len(), cmd.len().div_ceil(32));
    assert!(blocks[..blocks.len() - 1].iter().all(|b| b.len() == 3 + 32 + 1 && b[1] & 0x20 != 0));
    // 1000 bytes back: the card chains at IFSD 254; the host acknowledges with R-blocks.
    let (cmd, expected) = read_command(1000);
    assert_eq!(d.transmit(0, &cmd).unwrap().to_vec(), expected);
    assert_eq!(d.usb().t1_apdus(0), 2);
}

#[test]
fn crc_card() {
    let mut d = driver(SimConfig::tpdu_t1(), Some(card(&t1_atr(64, true))));
    let on = d.power_on(0).unwrap();
    let Some(ProtocolData::T1(p)) = on.parameters else { panic!() };
    assert_eq!(p.tcck, 0x11);
    let (cmd, expected) = check_command(200);
    assert_eq!(d.transmit(0, &cmd).unwrap().to_vec(), expected);
    // Blocks end with two CRC bytes: the S(IFS) block is 6 bytes.
    assert_eq!(xfr_payloads(d.usb())[0].len(), 6);
}

#[test]
fn waiting_time_extension_sets_bbwi() {
    let mut d = driver(SimConfig::tpdu_t1(), Some(card(&h(YUBIKEY_ATR))));
    d.power_on(0).unwrap();
    d.usb_mut().knobs.card_wtx = Some(5);
    assert_eq!(d.transmit(0, &h("00 A4 04 00 02 3F 00")).unwrap().to_vec(), h("90 00"));
    // The S(WTX response) went out with bBWI 5 (CCID §6.1.4).
    let wtx_response = d.usb().log.iter().rev().find(|m| m[0] == 0x6F).unwrap();
    assert_eq!(wtx_response[7], 5);
    assert_eq!(&wtx_response[10..13], &[0x00, 0xE3, 0x01]);
}

#[test]
fn lost_and_corrupted_blocks() {
    let mut d = driver(SimConfig::tpdu_t1(), Some(card(&h(YUBIKEY_ATR))));
    d.power_on(0).unwrap();
    let apdu = h("00 A4 04 00 02 3F 00");
    // The card's answer is lost: the reader reports ICC_MUTE, the host sends R(N(R)).
    d.usb_mut().knobs.lose_card_blocks = 1;
    assert_eq!(d.transmit(0, &apdu).unwrap().to_vec(), h("90 00"));
    // The host's block is lost on its way to the card.
    d.usb_mut().knobs.lose_host_blocks = 1;
    assert_eq!(d.transmit(0, &apdu).unwrap().to_vec(), h("90 00"));
    // The card's answer arrives with a bad LRC: R-block with the EDC error code.
    d.usb_mut().knobs.corrupt_card_blocks = 1;
    assert_eq!(d.transmit(0, &apdu).unwrap().to_vec(), h("90 00"));
    let last = xfr_payloads(d.usb());
    let r_edc = encode_block(0, pcb_r(true, RCode::Edc), &[], EdcKind::Lrc);
    assert!(last.iter().any(|b| b[..] == r_edc[..]), "no R-block with the EDC error");
    // Each APDU reached the card exactly once.
    assert_eq!(d.usb().t1_apdus(0), 3);
    // Chained response with a lost block in the middle.
    let (cmd, expected) = read_command(600);
    d.usb_mut().knobs.lose_card_blocks = 1;
    d.usb_mut().knobs.corrupt_card_blocks = 1;
    assert_eq!(d.transmit(0, &cmd).unwrap().to_vec(), expected);
}

#[test]
fn resynch_after_repeated_errors() {
    let mut d = driver(SimConfig::tpdu_t1(), Some(card(&h(YUBIKEY_ATR))));
    d.power_on(0).unwrap();
    let apdu = h("00 A4 04 00 02 3F 00");
    d.usb_mut().knobs.lose_card_blocks = 3;
    assert_eq!(d.transmit(0, &apdu).unwrap().to_vec(), h("90 00"));
    let resynch = encode_block(0, pcb_s(SKind::Resynch, false), &[], EdcKind::Lrc);
    assert!(xfr_payloads(d.usb()).iter().any(|b| b[..] == resynch[..]));
    // The card got the command twice: once before, once after the resynchronisation.
    assert_eq!(d.usb().t1_apdus(0), 2);
    // After the resynch the card's IFSD is back to 32, and exchanges still work.
    assert_eq!(d.usb().t1_card_ifsd(0), 32);
    let (cmd, expected) = read_command(300);
    assert_eq!(d.transmit(0, &cmd).unwrap().to_vec(), expected);
    // A card that stays mute: three resynchronisations, then the error.
    d.usb_mut().knobs.lose_card_blocks = 100;
    assert_eq!(d.transmit(0, &apdu).unwrap_err(), Error::T1ResynchFailed { attempts: 3 });
    d.usb_mut().knobs.lose_card_blocks = 0;
    // The next exchange starts with a resynchronisation and succeeds.
    assert_eq!(d.transmit(0, &apdu).unwrap().to_vec(), h("90 00"));
}

#[test]
fn card_changes_ifsc_and_card_without_ifs() {
    let mut d = driver(SimConfig::tpdu_t1(), Some(card(&h(YUBIKEY_ATR))));
    d.power_on(0).unwrap();
    d.usb_mut().knobs.card_ifs_request = Some(16);
    assert_eq!(d.transmit(0, &h("00 A4 04 00 02 3F 00")).unwrap().to_vec(), h("90 00"));
    let before = xfr_payloads(d.usb()).len();
    let (cmd, expected) = check_command(40);
    assert_eq!(d.transmit(0, &cmd).unwrap().to_vec(), expected);
    let blocks = &xfr_payloads(d.usb())[before..];
    assert!(blocks.iter().all(|b| b.len() <= 3 + 16 + 1), "blocks above the new IFSC");
    // A card that never answers S(IFS): the power on fails after the resynchronisations.
    let mut d = driver(SimConfig::tpdu_t1(), Some(card(&h(YUBIKEY_ATR))));
    d.usb_mut().knobs.card_ignores_ifs = true;
    assert_eq!(d.power_on(0).unwrap_err(), Error::T1ResynchFailed { attempts: 3 });
}

#[test]
fn time_extensions_and_stale_answers() {
    let mut d = driver(SimConfig::tpdu_t1(), Some(card(&h(YUBIKEY_ATR))));
    d.usb_mut().knobs.time_extensions = 3;
    d.power_on(0).unwrap();
    assert_eq!(d.transmit(0, &h("00 A4 04 00 02 3F 00")).unwrap().to_vec(), h("90 00"));
    // Beyond the cap (60 by default): a timeout error naming the command.
    d.usb_mut().knobs.time_extensions = 61;
    let e = d.transmit(0, &h("00 A4 04 00 02 3F 00")).unwrap_err();
    assert_eq!(
        e,
        Error::TimeExtensionLimit { slot: 0, command: MessageType::XFR_BLOCK, count: 61 }
    );
    assert!(e.is_timeout());
    // The rest of that answer is still queued: it is stale now and discarded.
    d.usb_mut().knobs.time_extensions = 0;
    d.usb_mut().knobs.stale_answers = 2;
    let status = d.slot_status(0).unwrap();
    assert_eq!(status.0, scard_ccid::message::IccStatus::PresentActive);
    // The abandoned T=1 exchange is resynchronised before the next one.
    let before = xfr_payloads(d.usb()).len();
    assert_eq!(d.transmit(0, &h("00 A4 04 00 02 3F 00")).unwrap().to_vec(), h("90 00"));
    assert_eq!(xfr_payloads(d.usb())[before], h("00 C0 00 C0"));
}

#[test]
fn pin_pad_verify_at_t1() {
    let mut d = driver(SimConfig::tpdu_t1(), Some(card(&h(YUBIKEY_ATR))));
    d.power_on(0).unwrap();
    d.usb_mut().knobs.pinpad_input = Some(b"123456".to_vec());
    let verify = PinVerify {
        format: PinFormat {
            format_string: 0x82,
            pin_block_string: 0x06,
            min_digits: 6,
            max_digits: 8,
            entry_validation: 2,
            ..PinFormat::default()
        },
        number_message: 1,
        msg_index: 0,
        teo_prologue: [0; 3],
        apdu: PinApdu::new(h("00 20 00 81 06 FF FF FF FF FF FF")).unwrap(),
    };
    assert_eq!(d.verify_pin(0, verify.clone()).unwrap().to_vec(), h("90 00"));
    // bTeoPrologue: NAD 00, PCB I(0) (the IFSD exchange used no I-block), LEN 11.
    let secure = d.usb().log.iter().rev().find(|m| m[0] == 0x69).unwrap();
    assert_eq!(&secure[10 + 12..10 + 15], &[0x00, 0x00, 11]);
    // Sequence numbers moved on: the next APDU uses N(S) = 1.
    assert_eq!(d.transmit(0, &h("00 A4 04 00 02 3F 00")).unwrap().to_vec(), h("90 00"));
    assert_eq!(xfr_payloads(d.usb()).last().unwrap()[1], 0x40);
    // Wrong PIN, then a cancelled entry.
    d.usb_mut().knobs.pinpad_input = Some(b"000000".to_vec());
    let mut second = verify.clone();
    second.teo_prologue = [0; 3];
    assert_eq!(d.verify_pin(0, second).unwrap().to_vec(), h("63 C2"));
    d.usb_mut().knobs.pinpad_input = None;
    let e = d.verify_pin(0, verify).unwrap_err();
    assert!(
        matches!(
            e,
            Error::CommandFailed {
                error: SlotError::PIN_CANCELLED,
                command: MessageType::SECURE,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn abort_and_removal() {
    let mut d = driver(SimConfig::tpdu_t1(), Some(card(&h(YUBIKEY_ATR))));
    d.power_on(0).unwrap();
    d.abort(0).unwrap();
    let abort = d.usb().control_log.last().unwrap();
    let bulk_abort = d.usb().log.last().unwrap();
    // CCID §5.3.1: the control request and PC_to_RDR_Abort carry the same bSlot and bSeq.
    assert_eq!(bulk_abort[0], 0x72);
    assert_eq!(abort.value, u16::from_be_bytes([bulk_abort[6], bulk_abort[5]]));
    assert_eq!(d.transmit(0, &h("00 A4 04 00 02 3F 00")).unwrap().to_vec(), h("90 00"));
    // The card goes: NotifySlotChange, the session ends.
    d.usb_mut().remove_card(0);
    let events = d.poll_events(std::time::Duration::from_millis(1)).unwrap();
    assert_eq!(events, vec![(0, scard_ccid::slot::SlotEvent::CardRemoved)]);
    assert_eq!(d.transmit(0, &h("00 A4 04 00")).unwrap_err(), Error::NotPowered { slot: 0 });
    let e = d.power_on(0).unwrap_err();
    assert!(e.is_card_absent(), "{e}");
    assert!(d.poll_events(std::time::Duration::from_millis(1)).unwrap().is_empty());
    d.usb_mut().insert_card(0, card(&t1_atr(32, true)));
    assert_eq!(
        d.poll_events(std::time::Duration::from_millis(1)).unwrap(),
        vec![(0, scard_ccid::slot::SlotEvent::CardInserted)]
    );
    assert_eq!(d.power_on(0).unwrap().protocol, 1);
    assert_eq!(d.transmit(0, &h("00 A4 04 00 02 3F 00")).unwrap().to_vec(), h("90 00"));
}
