use super::*;
use scard_iso7816::apdu::CommandApdu;
use scard_iso7816::exchange::{CardLimits, Exchange, Step};
use scard_iso7816::hex::decode_lenient as h;
use scard_iso7816::tlv::ber;

/// SP 800-73-4 Pt 2 §3.1.1 SELECT of the PIV application.
const SELECT_PIV: &str = "00A4040009A0000003080000100000";
/// SP 800-73-4 Pt 2 §3.1.2 GET DATA of the CHUID (5FC102).
const GET_CHUID: &str = "00CB3FFF055C035FC10200";

fn plan(family: Family, faults: &[Fault]) -> Plan {
    Plan { family, atr: None, calm: 0, rate: 100, faults: faults.to_vec() }
}

/// Runs `command` (its Ne made 65536) through the host's exchange engine against `card`.
fn exchange(card: &mut HostileCard, command: &str) -> Result<Vec<u8>, scard_iso7816::Error> {
    let cmd = CommandApdu::decode(&h(command).unwrap()).unwrap().with_ne(65536).unwrap();
    exchange_apdu(card, &cmd)
}

/// Runs `cmd` through the host's exchange engine against `card`.
fn exchange_apdu(
    card: &mut HostileCard,
    cmd: &CommandApdu,
) -> Result<Vec<u8>, scard_iso7816::Error> {
    let mut ex = Exchange::new(cmd, CardLimits::default()).unwrap();
    for _ in 0..1000 {
        let answer = card.answer(ex.apdu()).expect("an answer");
        match ex.receive(&answer)? {
            Step::Transmit => {}
            Step::Done(r) => return Ok(r.to_bytes()),
        }
    }
    panic!("the exchange engine did not stop");
}

#[test]
fn the_same_seed_gives_the_same_card_and_answers() {
    for seed in [0, 1, 2, 17, 4242] {
        let mut a = HostileCard::new(seed);
        let mut b = HostileCard::new(seed);
        assert_eq!(a.plan(), b.plan());
        assert_eq!(a.atr(), b.atr());
        assert_eq!(a.family(), family_of(seed));
        for cmd in [SELECT_PIV, GET_CHUID, "00C0000000", "00CA006E00", SELECT_PIV] {
            let cmd = h(cmd).unwrap();
            assert_eq!(a.answer(&cmd), b.answer(&cmd), "seed {seed}");
        }
    }
}

#[test]
fn plans_cover_every_fault_and_some_seeds_have_none() {
    let plans: Vec<Plan> = (0..1000).map(Plan::of).collect();
    for fault in Fault::ALL {
        let n = plans.iter().filter(|p| p.faults.contains(&fault)).count();
        assert!(n > 50, "{fault:?} in only {n} plans of 1000");
    }
    let faithful = plans.iter().filter(|p| p.faults.is_empty()).count();
    assert!((40..=150).contains(&faithful), "{faithful} faithful plans");
    let wrong_atr = plans.iter().filter(|p| p.atr.is_some()).count();
    assert!((80..=250).contains(&wrong_atr), "{wrong_atr} wrong ATRs");
    assert!(plans.iter().any(|p| p.calm > 20) && plans.iter().any(|p| p.calm == 0));
}

#[test]
fn a_faithful_card_answers_like_its_card_and_is_provisioned() {
    let mut card = HostileCard::with_plan(3, plan(Family::Piv, &[]));
    assert_eq!(card.atr(), piv::ATR);
    let select = exchange(&mut card, SELECT_PIV).unwrap();
    assert!(select.ends_with(&[0x90, 0x00]));
    // The 9A certificate object (5FC105) holds the personalised certificate.
    let cert = exchange(&mut card, "00CB3FFF055C035FC10500").unwrap();
    assert!(cert.len() > 200 && cert.ends_with(&[0x90, 0x00]), "{}", cert.len());
    // OpenPGP: the signature key's fingerprint (C5, first 20 bytes) is set.
    let mut card = HostileCard::with_plan(4, plan(Family::OpenPgp, &[]));
    exchange(&mut card, "00A4040006D27600012401").unwrap();
    let fingerprints = exchange(&mut card, "00CA00C500").unwrap();
    assert_eq!(fingerprints.len(), 60 + 2);
    assert!(fingerprints[..20].iter().any(|b| *b != 0));
    assert!(fingerprints[20..60].iter().all(|b| *b == 0));
}

#[test]
fn truncated_answers_lose_their_status_word() {
    let mut card = HostileCard::with_plan(1, plan(Family::Piv, &[Fault::Truncate]));
    for _ in 0..20 {
        let full = piv::PivCard::new(SimRng::from_seed(1)).process(&h(SELECT_PIV).unwrap());
        let answer = card.answer(&h(SELECT_PIV).unwrap()).unwrap();
        assert!(answer.len() < full.len());
    }
}

#[test]
fn oversized_answers_exceed_ne_up_to_65_kib() {
    let mut card = HostileCard::with_plan(5, plan(Family::Piv, &[Fault::Oversize]));
    let mut longest = 0;
    for _ in 0..50 {
        let answer = card.answer(&h(GET_CHUID).unwrap()).unwrap();
        assert!(answer.len() - 2 > 256, "{}", answer.len());
        assert!(answer.len() - 2 <= MAX_OVERSIZED);
        longest = longest.max(answer.len());
        let cmd = CommandApdu::decode(&h(GET_CHUID).unwrap()).unwrap();
        let err = exchange_apdu(&mut card, &cmd).unwrap_err();
        assert!(matches!(err, scard_iso7816::Error::ResponseTooLong { .. }), "{err}");
    }
    assert!(longest > 10_000, "{longest}");
}

#[test]
fn more_data_forever_and_wrong_length_loops_stop_the_engine() {
    let mut card = HostileCard::with_plan(6, plan(Family::Piv, &[Fault::MoreDataForever]));
    let err = exchange(&mut card, GET_CHUID).unwrap_err();
    assert!(
        matches!(
            err,
            scard_iso7816::Error::GetResponseLoop { .. }
                | scard_iso7816::Error::ResponseTooLong { .. }
        ),
        "{err}"
    );
    let mut card = HostileCard::with_plan(7, plan(Family::Piv, &[Fault::WrongLengthLoop]));
    let err = exchange(&mut card, GET_CHUID).unwrap_err();
    assert!(matches!(err, scard_iso7816::Error::WrongLengthLoop { .. }), "{err}");
}

#[test]
fn malformed_tlv_does_not_parse_or_nests_deep() {
    let mut card = HostileCard::with_plan(8, plan(Family::Piv, &[Fault::MalformedTlv]));
    let mut broken = 0;
    for _ in 0..200 {
        let answer = card.answer(&h(GET_CHUID).unwrap()).unwrap();
        let data = &answer[..answer.len() - 2];
        if ber::validate(data, ber::ParseOptions::STRICT).is_err() {
            broken += 1;
        }
    }
    // Deep nesting with right lengths and byte flips that happen to keep the structure pass.
    assert!(broken > 100, "{broken} of 200 broken");
}

#[test]
fn a_stalled_card_answers_nothing_until_reset() {
    let mut card = HostileCard::with_plan(9, plan(Family::Piv, &[Fault::Stall]));
    assert_eq!(card.answer(&h(SELECT_PIV).unwrap()), None);
    card.plan.faults.clear();
    assert_eq!(card.answer(&h(SELECT_PIV).unwrap()), None, "still stalled");
    assert_eq!(card.process(&h(SELECT_PIV).unwrap()), Vec::<u8>::new());
    card.reset();
    assert!(card.answer(&h(SELECT_PIV).unwrap()).unwrap().ends_with(&[0x90, 0x00]));
}

#[test]
fn a_reset_in_the_middle_loses_the_selection() {
    let mut card = HostileCard::with_plan(10, plan(Family::OpenPgp, &[]));
    assert!(exchange(&mut card, "00A4040006D27600012401").unwrap().ends_with(&[0x90, 0x00]));
    assert!(exchange(&mut card, "00CA006E00").unwrap().ends_with(&[0x90, 0x00]));
    card.plan = plan(Family::OpenPgp, &[Fault::Reset]);
    // After the hidden reset nothing is selected: the card does not know GET DATA (OpenPGP
    // 3.4 §7.2.1: the application must be selected), or it answers with its ATR.
    for _ in 0..10 {
        let answer = card.answer(&h("00CA006E00").unwrap()).unwrap();
        assert!(answer == [0x6D, 0x00] || answer == card.atr, "{answer:02X?}");
    }
}

#[test]
fn wrong_atrs() {
    for (fault, check) in [
        (AtrFault::Empty, (|a: &[u8]| a.is_empty()) as fn(&[u8]) -> bool),
        (AtrFault::Truncated, |a| a.len() < piv::ATR.len() && piv::ATR.starts_with(a)),
        (AtrFault::TooLong, |a| a.len() > 33 && a.starts_with(&piv::ATR)),
        (AtrFault::OtherFamily, |a| a == openpgp::ATR),
        (AtrFault::Inverse, |a| a.first() == Some(&0x3F)),
        (AtrFault::Random, |a| !a.is_empty() && a.len() <= 40),
    ] {
        let mut p = plan(Family::Piv, &[]);
        p.atr = Some(fault);
        let card = HostileCard::with_plan(11, p);
        assert!(check(card.atr()), "{fault:?}: {:02X?}", card.atr());
    }
}

#[test]
fn tlv_headers_and_lengths() {
    assert_eq!(tlv_header(&[]), (0, 0));
    assert_eq!(tlv_header(&[0x53, 0x05]), (1, 1));
    assert_eq!(tlv_header(&[0x5F, 0xC1, 0x02, 0x82, 0x01, 0x00]), (3, 3));
    assert_eq!(tlv_header(&[0x7F, 0x49, 0x81, 0x80]), (2, 2));
    assert_eq!(tlv_header(&[0x7F]), (1, 0));
    for (len, enc) in [(5, "05"), (0x80, "8180"), (0x1234, "821234"), (0x12345, "8400012345")] {
        let mut out = Vec::new();
        push_len(&mut out, len);
        assert_eq!(out, h(enc).unwrap());
    }
}
