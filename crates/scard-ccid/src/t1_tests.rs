//! The T=1 engine against scripted card sides: every block the engine sends is compared with
//! the script, and the card's answer (or a fault) is fed back.

use super::*;
use scard_iso7816::hex::decode_lenient as h;

/// What the scripted card does with the block it was sent.
enum Card {
    Reply(Vec<u8>),
    Fault(Fault),
}

fn i(ns: u8, more: bool, inf: &[u8], edc: EdcKind) -> Vec<u8> {
    encode_block(0, pcb_i(ns == 1, more), inf, edc).to_vec()
}
fn r(nr: u8, code: RCode, edc: EdcKind) -> Vec<u8> {
    encode_block(0, pcb_r(nr == 1, code), &[], edc).to_vec()
}
fn s(kind: SKind, response: bool, inf: &[u8], edc: EdcKind) -> Vec<u8> {
    encode_block(0, pcb_s(kind, response), inf, edc).to_vec()
}
use EdcKind::{Crc, Lrc};

/// Runs `script` from `step`; returns the final step.
fn run(t1: &mut T1, mut step: T1Step, script: Vec<(Vec<u8>, Card)>) -> Result<T1Step, Error> {
    for (n, (expected, card)) in script.into_iter().enumerate() {
        let T1Step::Send { block, .. } = &step else {
            panic!("step {n}: expected a block to send, got {step:?}");
        };
        assert_eq!(
            scard_iso7816::hex::encode_spaced(block),
            scard_iso7816::hex::encode_spaced(&expected),
            "step {n}"
        );
        step = match card {
            Card::Reply(b) => t1.receive(&b)?,
            Card::Fault(f) => t1.receive_fault(f)?,
        };
    }
    Ok(step)
}

fn engine(ifsc: u8, edc: EdcKind) -> T1 {
    T1::new(T1Config { ifsc, edc, ..T1Config::default() }).unwrap()
}

const SELECT: &str = "00 A4 04 00 06 D2 76 00 01 24 01 00";

#[test]
fn lrc_and_crc_vectors() {
    // ISO/IEC 7816-3 annex A example: an I-block carrying 00 A4 ... ; LRC by hand.
    assert_eq!(lrc(&[0x00, 0x00, 0x02, 0x90, 0x00]), 0x92);
    // CRC catalogue, CRC-16/MCRF4XX (the algorithm libccid uses): check("123456789") = 6F91.
    assert_eq!(crc(b"123456789"), [0x6F, 0x91]);
    assert_eq!(crc(&[]), [0xFF, 0xFF]);
    // An R-block with LRC: 00 80 00 80 (NAD 0, R(0), LEN 0, LRC 80).
    assert_eq!(r(0, RCode::Ok, Lrc), h("00 80 00 80").unwrap());
    assert_eq!(r(1, RCode::Edc, Lrc), h("00 91 00 91").unwrap());
    // S(IFS request FE): 00 C1 01 FE 3E.
    assert_eq!(s(SKind::Ifs, false, &[0xFE], Lrc), h("00 C1 01 FE 3E").unwrap());
    // S(WTX response 01): 00 E3 01 01 E3.
    assert_eq!(s(SKind::Wtx, true, &[1], Lrc), h("00 E3 01 01 E3").unwrap());
}

#[test]
fn block_decoding() {
    let ok = i(1, true, &[1, 2, 3], Lrc);
    assert_eq!(
        decode_block(&ok, Lrc).unwrap().1,
        Block::I { ns: true, more: true, inf: &[1, 2, 3] }
    );
    let mut bad = ok.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert_eq!(decode_block(&bad, Lrc), Err(Invalid::Edc));
    assert_eq!(decode_block(&ok[..5], Lrc), Err(Invalid::LengthMismatch));
    assert_eq!(decode_block(&[0, 0], Lrc), Err(Invalid::TooShort));
    assert_eq!(decode_block(&[0, 0, 0], Crc), Err(Invalid::TooShort));
    assert_eq!(decode_block(&h("00 00 FF FF").unwrap(), Lrc), Err(Invalid::LenRfu));
    // R-block with bit 6 set or with an INF.
    assert_eq!(decode_block(&h("00 A0 00 A0").unwrap(), Lrc), Err(Invalid::Pcb));
    assert_eq!(decode_block(&h("00 80 01 00 81").unwrap(), Lrc), Err(Invalid::Pcb));
    // S(VPP error) (00100) is not accepted; S(IFS) without its byte.
    assert_eq!(decode_block(&h("00 E4 00 E4").unwrap(), Lrc), Err(Invalid::Pcb));
    assert_eq!(decode_block(&h("00 C1 00 C1").unwrap(), Lrc), Err(Invalid::SLength));
    let crc_block = i(0, false, &[0x90, 0x00], Crc);
    assert_eq!(crc_block.len(), 7);
    assert!(decode_block(&crc_block, Crc).is_ok());
    assert_eq!(decode_block(&crc_block, Lrc), Err(Invalid::LengthMismatch));
    assert_eq!(
        format!("{:?}", decode_block(&r(1, RCode::Other, Lrc), Lrc).unwrap().1),
        "R(1) Other"
    );
}

#[test]
fn config_from_atr() {
    // Yubico YubiKey 5: TA3 = FE (IFSC 254), LRC.
    let atr = Atr::from_hex("3B FD 13 00 00 81 31 FE 15 80 73 C0 21 C0 57 59 75 62 69 4B 65 79 40")
        .unwrap();
    let cfg = T1Config::from_atr(&atr);
    assert_eq!((cfg.ifsc, cfg.edc), (254, Lrc));
    // T=0 only: defaults.
    let cfg = T1Config::from_atr(&Atr::from_hex("3B 02 14 50").unwrap());
    assert_eq!((cfg.ifsc, cfg.edc), (32, Lrc));
    assert!(T1::new(T1Config { ifsc: 0, ..T1Config::default() }).is_err());
    assert!(T1::new(T1Config { ifsc: 255, ..T1Config::default() }).is_err());
}

#[test]
fn single_block_exchange() {
    let mut t1 = engine(254, Lrc);
    let apdu = h(SELECT).unwrap();
    let step = t1.transmit(&apdu).unwrap();
    let done = run(
        &mut t1,
        step,
        vec![(i(0, false, &apdu, Lrc), Card::Reply(i(0, false, &[0x90, 0x00], Lrc)))],
    )
    .unwrap();
    assert_eq!(done, T1Step::Response(Zeroizing::new(vec![0x90, 0x00])));
    assert!(t1.is_idle() && t1.ns() && t1.nr());
    // The next exchange uses N(S) = 1 on both sides.
    let step = t1.transmit(&apdu).unwrap();
    let done = run(
        &mut t1,
        step,
        vec![(i(1, false, &apdu, Lrc), Card::Reply(i(1, false, &[0x6A, 0x82], Lrc)))],
    )
    .unwrap();
    assert_eq!(done, T1Step::Response(Zeroizing::new(vec![0x6A, 0x82])));
    assert!(!t1.ns() && !t1.nr());
}

#[test]
fn chaining_to_the_card() {
    // IFSC 5: a 12-byte APDU goes in three I-blocks acknowledged by R-blocks (§11.6.2).
    let mut t1 = engine(5, Lrc);
    let apdu = h(SELECT).unwrap();
    let step = t1.transmit(&apdu).unwrap();
    let done = run(
        &mut t1,
        step,
        vec![
            (i(0, true, &apdu[..5], Lrc), Card::Reply(r(1, RCode::Ok, Lrc))),
            (i(1, true, &apdu[5..10], Lrc), Card::Reply(r(0, RCode::Ok, Lrc))),
            (i(0, false, &apdu[10..], Lrc), Card::Reply(i(0, false, &[0x90, 0x00], Lrc))),
        ],
    )
    .unwrap();
    assert_eq!(done, T1Step::Response(Zeroizing::new(vec![0x90, 0x00])));
    assert!(t1.ns() && t1.nr());
}

#[test]
fn chaining_from_the_card() {
    let mut t1 = engine(254, Lrc);
    let apdu = h("00 CA 01 00 00").unwrap();
    let step = t1.transmit(&apdu).unwrap();
    let done = run(
        &mut t1,
        step,
        vec![
            (i(0, false, &apdu, Lrc), Card::Reply(i(0, true, &[1, 2, 3], Lrc))),
            (r(1, RCode::Ok, Lrc), Card::Reply(i(1, true, &[4, 5], Lrc))),
            (r(0, RCode::Ok, Lrc), Card::Reply(i(0, true, &[], Lrc))),
            (r(1, RCode::Ok, Lrc), Card::Reply(i(1, false, &[6, 0x90, 0x00], Lrc))),
        ],
    )
    .unwrap();
    assert_eq!(done, T1Step::Response(Zeroizing::new(vec![1, 2, 3, 4, 5, 6, 0x90, 0x00])));
    assert!(t1.ns() && !t1.nr());
}

#[test]
fn ifs_negotiation_and_card_ifs_request() {
    let mut t1 = engine(32, Lrc);
    let step = t1.negotiate_ifsd(254).unwrap();
    let done = run(
        &mut t1,
        step,
        vec![(s(SKind::Ifs, false, &[0xFE], Lrc), Card::Reply(s(SKind::Ifs, true, &[0xFE], Lrc)))],
    )
    .unwrap();
    assert_eq!(done, T1Step::IfsdSet(254));
    assert_eq!(t1.ifsd(), 254);
    // A wrong value in the response is an invalid block: the request is sent again.
    let step = t1.negotiate_ifsd(200).unwrap();
    let done = run(
        &mut t1,
        step,
        vec![
            (s(SKind::Ifs, false, &[200], Lrc), Card::Reply(s(SKind::Ifs, true, &[100], Lrc))),
            (s(SKind::Ifs, false, &[200], Lrc), Card::Reply(s(SKind::Ifs, true, &[200], Lrc))),
        ],
    )
    .unwrap();
    assert_eq!(done, T1Step::IfsdSet(200));
    // The card lowers IFSC in the middle of our chain: the next blocks follow it.
    let mut t1 = engine(8, Lrc);
    let apdu: Vec<u8> = (0..20).collect();
    let step = t1.transmit(&apdu).unwrap();
    let done = run(
        &mut t1,
        step,
        vec![
            (i(0, true, &apdu[..8], Lrc), Card::Reply(s(SKind::Ifs, false, &[4], Lrc))),
            (s(SKind::Ifs, true, &[4], Lrc), Card::Reply(r(1, RCode::Ok, Lrc))),
            (i(1, true, &apdu[8..12], Lrc), Card::Reply(r(0, RCode::Ok, Lrc))),
            (i(0, true, &apdu[12..16], Lrc), Card::Reply(r(1, RCode::Ok, Lrc))),
            (i(1, false, &apdu[16..], Lrc), Card::Reply(i(0, false, &[0x90, 0x00], Lrc))),
        ],
    )
    .unwrap();
    assert_eq!(done, T1Step::Response(Zeroizing::new(vec![0x90, 0x00])));
    assert_eq!(t1.ifsc(), 4);
    // IFS 0 from the card is invalid: answered with an R-block.
    let mut t1 = engine(32, Lrc);
    let step = t1.transmit(&[0, 0xB0, 0, 0, 0]).unwrap();
    let done = run(
        &mut t1,
        step,
        vec![
            (i(0, false, &[0, 0xB0, 0, 0, 0], Lrc), Card::Reply(s(SKind::Ifs, false, &[0], Lrc))),
            (r(0, RCode::Other, Lrc), Card::Reply(i(0, false, &[0x90, 0], Lrc))),
        ],
    )
    .unwrap();
    assert_eq!(done, T1Step::Response(Zeroizing::new(vec![0x90, 0x00])));
    assert!(T1::new(T1Config::default()).unwrap().negotiate_ifsd(255).is_err());
}

#[test]
fn waiting_time_extension() {
    let mut t1 = engine(254, Lrc);
    let apdu = h("00 47 80 00 02 AC 00 00").unwrap();
    let step = t1.transmit(&apdu).unwrap();
    let T1Step::Send { .. } = step else { panic!() };
    let step = t1.receive(&s(SKind::Wtx, false, &[3], Lrc)).unwrap();
    // S(WTX response) with the same INF; the multiplier applies to the next wait.
    assert_eq!(
        step,
        T1Step::Send { block: Zeroizing::new(s(SKind::Wtx, true, &[3], Lrc)), wtx: 3 }
    );
    let step = t1.receive(&s(SKind::Wtx, false, &[10], Lrc)).unwrap();
    assert_eq!(
        step,
        T1Step::Send { block: Zeroizing::new(s(SKind::Wtx, true, &[10], Lrc)), wtx: 10 }
    );
    let done = t1.receive(&i(0, false, &[0x90, 0x00], Lrc)).unwrap();
    assert_eq!(done, T1Step::Response(Zeroizing::new(vec![0x90, 0x00])));
}

#[test]
fn lost_block_is_recovered_with_r_blocks() {
    // The card's answer is lost (the reader reports a timeout): R(N(R)=0, other error), and
    // the card sends its I-block again (§11.6.3).
    let mut t1 = engine(254, Lrc);
    let apdu = h(SELECT).unwrap();
    let step = t1.transmit(&apdu).unwrap();
    let done = run(
        &mut t1,
        step,
        vec![
            (i(0, false, &apdu, Lrc), Card::Fault(Fault::Timeout)),
            (r(0, RCode::Other, Lrc), Card::Reply(i(0, false, &[0x90, 0x00], Lrc))),
        ],
    )
    .unwrap();
    assert_eq!(done, T1Step::Response(Zeroizing::new(vec![0x90, 0x00])));
    // The card did not get our I-block and asks for it with R(N(R) = N(S)): sent again.
    let step = t1.transmit(&apdu).unwrap();
    let done = run(
        &mut t1,
        step,
        vec![
            (i(1, false, &apdu, Lrc), Card::Reply(r(1, RCode::Edc, Lrc))),
            (i(1, false, &apdu, Lrc), Card::Reply(i(1, false, &[0x90, 0x00], Lrc))),
        ],
    )
    .unwrap();
    assert_eq!(done, T1Step::Response(Zeroizing::new(vec![0x90, 0x00])));
    // Our acknowledgement of a chained block is lost: the card repeats its block, we repeat
    // the R-block, and the chain goes on.
    let step = t1.transmit(&apdu).unwrap();
    let done = run(
        &mut t1,
        step,
        vec![
            (i(0, false, &apdu, Lrc), Card::Reply(i(0, true, &[1], Lrc))),
            (r(1, RCode::Ok, Lrc), Card::Reply(i(0, true, &[1], Lrc))),
            // The R-block whose answer was not the expected block is sent again unchanged.
            (r(1, RCode::Ok, Lrc), Card::Reply(i(1, false, &[2, 0x90, 0x00], Lrc))),
        ],
    )
    .unwrap();
    assert_eq!(done, T1Step::Response(Zeroizing::new(vec![1, 2, 0x90, 0x00])));
    // The card NAKs our R-block: it is sent again unchanged.
    let step = t1.transmit(&apdu).unwrap();
    let done = run(
        &mut t1,
        step,
        vec![
            (i(1, false, &apdu, Lrc), Card::Reply(i(0, true, &[7], Lrc))),
            (r(1, RCode::Ok, Lrc), Card::Reply(r(0, RCode::Other, Lrc))),
            (r(1, RCode::Ok, Lrc), Card::Reply(i(1, false, &[0x90, 0x00], Lrc))),
        ],
    )
    .unwrap();
    assert_eq!(done, T1Step::Response(Zeroizing::new(vec![7, 0x90, 0x00])));
}

#[test]
fn corrupted_blocks_lrc_and_crc() {
    for edc in [Lrc, Crc] {
        let mut t1 = engine(254, edc);
        let apdu = h(SELECT).unwrap();
        let mut corrupted = i(0, false, &[0x90, 0x00], edc);
        corrupted[3] ^= 0x10;
        let step = t1.transmit(&apdu).unwrap();
        let done = run(
            &mut t1,
            step,
            vec![
                (i(0, false, &apdu, edc), Card::Reply(corrupted.clone())),
                (r(0, RCode::Edc, edc), Card::Reply(i(0, false, &[0x90, 0x00], edc))),
            ],
        )
        .unwrap();
        assert_eq!(done, T1Step::Response(Zeroizing::new(vec![0x90, 0x00])), "{edc:?}");
        // A parity error reported by the reader is an EDC error as well.
        let step = t1.transmit(&apdu).unwrap();
        let done = run(
            &mut t1,
            step,
            vec![
                (i(1, false, &apdu, edc), Card::Fault(Fault::Parity)),
                (r(1, RCode::Edc, edc), Card::Reply(i(1, false, &[0x90, 0x00], edc))),
            ],
        )
        .unwrap();
        assert_eq!(done, T1Step::Response(Zeroizing::new(vec![0x90, 0x00])));
    }
}

#[test]
fn resynch_after_three_failures_then_resend() {
    let mut t1 = engine(254, Lrc);
    let apdu = h(SELECT).unwrap();
    // Move both sequence numbers to 1 first.
    let step = t1.transmit(&apdu).unwrap();
    run(&mut t1, step, vec![(i(0, false, &apdu, Lrc), Card::Reply(i(0, false, &[0x90, 0], Lrc)))])
        .unwrap();
    let step = t1.transmit(&apdu).unwrap();
    let done = run(
        &mut t1,
        step,
        vec![
            (i(1, false, &apdu, Lrc), Card::Fault(Fault::Timeout)),
            (r(1, RCode::Other, Lrc), Card::Reply(vec![0xFF; 4])),
            (r(1, RCode::Other, Lrc), Card::Fault(Fault::Timeout)),
            // Third failure: S(RESYNCH request); then everything restarts at N(S) = 0.
            (s(SKind::Resynch, false, &[], Lrc), Card::Reply(s(SKind::Resynch, true, &[], Lrc))),
            (i(0, false, &apdu, Lrc), Card::Reply(i(0, false, &[0x90, 0x00], Lrc))),
        ],
    )
    .unwrap();
    assert_eq!(done, T1Step::Response(Zeroizing::new(vec![0x90, 0x00])));
    assert_eq!(t1.ifsd(), DEFAULT_IFS);
}

#[test]
fn resynch_fails_after_three_attempts() {
    let mut t1 = engine(254, Lrc);
    let apdu = h(SELECT).unwrap();
    let step = t1.transmit(&apdu).unwrap();
    let err = run(
        &mut t1,
        step,
        vec![
            (i(0, false, &apdu, Lrc), Card::Fault(Fault::Timeout)),
            (r(0, RCode::Other, Lrc), Card::Fault(Fault::Timeout)),
            (r(0, RCode::Other, Lrc), Card::Fault(Fault::Timeout)),
            (s(SKind::Resynch, false, &[], Lrc), Card::Fault(Fault::Timeout)),
            (s(SKind::Resynch, false, &[], Lrc), Card::Reply(i(0, false, &[], Lrc))),
            (s(SKind::Resynch, false, &[], Lrc), Card::Fault(Fault::Timeout)),
        ],
    )
    .unwrap_err();
    assert_eq!(err, Error::T1ResynchFailed { attempts: 3 });
    assert!(t1.is_idle());
    // The next exchange starts with a resynchronisation.
    let step = t1.transmit(&apdu).unwrap();
    let done = run(
        &mut t1,
        step,
        vec![
            (s(SKind::Resynch, false, &[], Lrc), Card::Reply(s(SKind::Resynch, true, &[], Lrc))),
            (i(0, false, &apdu, Lrc), Card::Reply(i(0, false, &[0x90, 0x00], Lrc))),
        ],
    )
    .unwrap();
    assert_eq!(done, T1Step::Response(Zeroizing::new(vec![0x90, 0x00])));
}

#[test]
fn verify_is_not_repeated_after_resynch() {
    let mut t1 = engine(254, Lrc);
    let verify = h("00 20 00 81 06 31 32 33 34 35 36").unwrap();
    let step = t1.transmit(&verify).unwrap();
    let err = run(
        &mut t1,
        step,
        vec![
            (i(0, false, &verify, Lrc), Card::Fault(Fault::Timeout)),
            (r(0, RCode::Other, Lrc), Card::Fault(Fault::Timeout)),
            (r(0, RCode::Other, Lrc), Card::Fault(Fault::Timeout)),
            (s(SKind::Resynch, false, &[], Lrc), Card::Reply(s(SKind::Resynch, true, &[], Lrc))),
        ],
    )
    .unwrap_err();
    assert_eq!(err, Error::T1Resynchronised);
    assert!(t1.is_idle());
}

#[test]
fn resynch_during_ifs_negotiation() {
    // A card that never answers S(IFS): three requests, resynch, then the request once more.
    let mut t1 = engine(32, Lrc);
    let step = t1.negotiate_ifsd(254).unwrap();
    let done = run(
        &mut t1,
        step,
        vec![
            (s(SKind::Ifs, false, &[254], Lrc), Card::Reply(r(0, RCode::Other, Lrc))),
            (s(SKind::Ifs, false, &[254], Lrc), Card::Fault(Fault::Timeout)),
            (s(SKind::Ifs, false, &[254], Lrc), Card::Fault(Fault::Timeout)),
            (s(SKind::Resynch, false, &[], Lrc), Card::Reply(s(SKind::Resynch, true, &[], Lrc))),
            (s(SKind::Ifs, false, &[254], Lrc), Card::Reply(s(SKind::Ifs, true, &[254], Lrc))),
        ],
    )
    .unwrap();
    assert_eq!(done, T1Step::IfsdSet(254));
}

#[test]
fn abort_both_ways() {
    // The interface device aborts (§11.6.3.3).
    let mut t1 = engine(5, Lrc);
    let apdu = h(SELECT).unwrap();
    let step = t1.transmit(&apdu).unwrap();
    let T1Step::Send { .. } = step else { panic!() };
    let step = t1.abort().unwrap();
    let done = run(
        &mut t1,
        step,
        vec![
            (s(SKind::Abort, false, &[], Lrc), Card::Reply(i(0, false, &[1], Lrc))),
            (s(SKind::Abort, false, &[], Lrc), Card::Reply(s(SKind::Abort, true, &[], Lrc))),
        ],
    )
    .unwrap();
    assert_eq!(done, T1Step::Aborted);
    // The card aborts its chain: S(ABORT response), then the exchange fails.
    let mut t1 = engine(254, Lrc);
    let step = t1.transmit(&apdu).unwrap();
    let err = run(
        &mut t1,
        step,
        vec![
            (i(0, false, &apdu, Lrc), Card::Reply(i(0, true, &[1, 2], Lrc))),
            (r(1, RCode::Ok, Lrc), Card::Reply(s(SKind::Abort, false, &[], Lrc))),
            (s(SKind::Abort, true, &[], Lrc), Card::Reply(r(0, RCode::Ok, Lrc))),
        ],
    )
    .unwrap_err();
    assert_eq!(err, Error::T1CardAborted);
    // A card S(RESYNCH request) is not allowed: answered like an invalid block.
    let mut t1 = engine(254, Lrc);
    let step = t1.transmit(&apdu).unwrap();
    let done = run(
        &mut t1,
        step,
        vec![
            (i(0, false, &apdu, Lrc), Card::Reply(s(SKind::Resynch, false, &[], Lrc))),
            (r(0, RCode::Other, Lrc), Card::Reply(i(0, false, &[0x90, 0], Lrc))),
        ],
    )
    .unwrap();
    assert_eq!(done, T1Step::Response(Zeroizing::new(vec![0x90, 0x00])));
}

#[test]
fn explicit_resynch_and_misuse() {
    let mut t1 = engine(254, Lrc);
    assert_eq!(t1.receive(&i(0, false, &[], Lrc)), Err(Error::T1Idle));
    assert_eq!(t1.receive_fault(Fault::Timeout), Err(Error::T1Idle));
    assert!(t1.transmit(&[]).is_err());
    let step = t1.resynch().unwrap();
    let done = run(
        &mut t1,
        step,
        vec![(s(SKind::Resynch, false, &[], Lrc), Card::Reply(s(SKind::Resynch, true, &[], Lrc)))],
    )
    .unwrap();
    assert_eq!(done, T1Step::Resynchronised);
    let _ = t1.transmit(&[0, 0xB0, 0, 0]).unwrap();
    assert_eq!(t1.transmit(&[0, 0xB0, 0, 0]), Err(Error::T1Busy));
    // A wrong NAD from the card is an invalid block.
    let mut bad_nad = i(0, false, &[0x90, 0], Lrc);
    bad_nad[0] = 0x12;
    let l = lrc(&bad_nad[..bad_nad.len() - 1]);
    *bad_nad.last_mut().unwrap() = l;
    assert_eq!(
        t1.receive(&bad_nad).unwrap(),
        T1Step::Send { block: Zeroizing::new(r(0, RCode::Other, Lrc)), wtx: 0 }
    );
}

#[test]
fn bounds() {
    // A response longer than the bound.
    let mut t1 = T1::new(T1Config { max_response: 4, ..T1Config::default() }).unwrap();
    let step = t1.transmit(&[0, 0xB0, 0, 0, 0]).unwrap();
    let err = run(
        &mut t1,
        step,
        vec![
            (i(0, false, &[0, 0xB0, 0, 0, 0], Lrc), Card::Reply(i(0, true, &[1, 2, 3], Lrc))),
            (r(1, RCode::Ok, Lrc), Card::Reply(i(1, true, &[4, 5], Lrc))),
        ],
    )
    .unwrap_err();
    assert_eq!(err, Error::T1ResponseTooLong { max: 4 });
    // Endless WTX requests.
    let mut t1 = T1::new(T1Config { max_blocks: 10, ..T1Config::default() }).unwrap();
    let _ = t1.transmit(&[0, 0xB0, 0, 0, 0]).unwrap();
    let mut result = Ok(T1Step::Aborted);
    for _ in 0..11 {
        result = t1.receive(&s(SKind::Wtx, false, &[1], Lrc));
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(Error::T1ExchangeTooLong { blocks: 10 }));
}

#[test]
fn pin_pad_i_block() {
    let mut t1 = engine(254, Lrc);
    let prologue = t1.external_i_block(13).unwrap();
    assert_eq!(prologue, [0x00, 0x00, 13]);
    assert_eq!(
        t1.receive(&i(0, false, &[0x90, 0x00], Lrc)).unwrap(),
        T1Step::Response(Zeroizing::new(vec![0x90, 0x00]))
    );
    assert!(t1.ns() && t1.nr());
    assert_eq!(t1.external_i_block(13).unwrap(), [0x00, 0x40, 13]);
    // The card asks for the block again: it cannot be rebuilt.
    assert_eq!(t1.receive(&r(1, RCode::Edc, Lrc)), Err(Error::T1CannotRetransmit));
    assert!(t1.external_i_block(255).is_err());
}
