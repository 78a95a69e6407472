//! Fuzz entry points. Each takes arbitrary bytes, drives a library entry point and panics only
//! when an invariant is broken: a decoder that panics, a decode -> encode -> decode that does
//! not give back the same bytes and value, or an exchange that loops or over-reads. The
//! cargo-fuzz targets are one-line shims over these; `tests/tests/fuzz_corpus.rs` replays every
//! committed corpus file through them on stable Rust.

use std::fmt::Write as _;

use scard_iso7816::apdu::{self, CommandApdu, ResponseApdu};
use scard_iso7816::atr::Atr;
use scard_iso7816::exchange::{CardLimits, Exchange, Step};
use scard_iso7816::tlv::{ber, compact, simple};

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name: the same names as `fuzz/fuzz_targets/*.rs` and
/// `fuzz/corpus/*`.
pub const TARGETS: &[(&str, Target)] = &[
    ("command_apdu", command_apdu),
    ("response_apdu", response_apdu),
    ("ber_tlv", ber_tlv),
    ("simple_tlv", simple_tlv),
    ("compact_tlv", compact_tlv),
    ("atr", atr),
    ("exchange", exchange),
];

/// Command APDU: decode never panics; a decoded APDU re-encodes to the same bytes and decodes
/// to the same value; Debug and the trace formatter work on anything.
pub fn command_apdu(data: &[u8]) {
    let mut sink = String::new();
    let _ = write!(sink, "{}", apdu::trace_command(data));
    let Ok(apdu) = CommandApdu::decode(data) else { return };
    let _ = write!(sink, "{apdu:?}");
    let bytes = apdu.to_bytes();
    assert_eq!(bytes.as_slice(), data, "decode -> encode changed the bytes");
    assert_eq!(apdu.encoded_len(), data.len());
    let again = CommandApdu::decode(&bytes).expect("re-encoded APDU must decode");
    assert_eq!(again, apdu);
    assert_eq!(again.case(), apdu.case());
}

/// Response APDU: decode never panics and round-trips.
pub fn response_apdu(data: &[u8]) {
    let Ok(response) = ResponseApdu::decode(data) else {
        assert!(data.len() < 2);
        return;
    };
    let _ = format!("{response:?} {}", response.sw());
    assert_eq!(response.to_bytes(), data);
    let _ = response.sw().class();
    let _ =
        (response.sw().bytes_remaining(), response.sw().correct_le(), response.sw().tries_left());
}

/// BER-TLV: strict and lenient parsing never panic (iterating, searching, validating); data
/// that validates strictly re-encodes to the same bytes, children included.
pub fn ber_tlv(data: &[u8]) {
    for opts in [ber::ParseOptions::STRICT, ber::ParseOptions::LENIENT] {
        let valid = ber::validate(data, opts).is_ok();
        let mut count = 0usize;
        walk_ber(ber::iter(data, opts), &mut count);
        let _ = ber::find(data, ber::Tag::new(0x5FC102), opts);
        if valid && opts == ber::ParseOptions::STRICT {
            let again = reencode_ber(data);
            assert_eq!(again, data, "strict BER-TLV decode -> encode changed the bytes");
            assert!(ber::validate(&again, opts).is_ok());
        }
    }
}

fn walk_ber(iter: ber::TlvIter<'_>, count: &mut usize) {
    for item in iter {
        let Ok(tlv) = item else { return };
        *count += 1;
        assert!(tlv.raw().ends_with(tlv.value()));
        if tlv.is_constructed() {
            walk_ber(tlv.children(), count);
        }
    }
}

fn reencode_ber(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for item in ber::iter(data, ber::ParseOptions::STRICT) {
        let tlv = item.expect("validated data iterates");
        let value =
            if tlv.is_constructed() { reencode_ber(tlv.value()) } else { tlv.value().to_vec() };
        ber::write(&mut out, tlv.tag(), &value).expect("a decoded object re-encodes");
    }
    out
}

/// SIMPLE-TLV: parsing never panics; strictly valid data re-encodes to the same bytes.
pub fn simple_tlv(data: &[u8]) {
    let _ = simple::validate(data, simple::ParseOptions::LENIENT);
    if simple::validate(data, simple::ParseOptions::STRICT).is_err() {
        return;
    }
    let mut out = Vec::with_capacity(data.len());
    for item in simple::iter(data, simple::ParseOptions::STRICT) {
        let tlv = item.expect("validated data iterates");
        simple::write(&mut out, tlv.tag(), tlv.value()).expect("a decoded object re-encodes");
    }
    assert_eq!(out, data, "SIMPLE-TLV decode -> encode changed the bytes");
}

/// COMPACT-TLV: parsing never panics; data that parses re-encodes to the same bytes.
pub fn compact_tlv(data: &[u8]) {
    let mut out = Vec::with_capacity(data.len());
    for item in compact::iter(data) {
        let Ok(tlv) = item else { return };
        let _ = compact::tag_name(tlv.tag());
        compact::write(&mut out, tlv.tag(), tlv.value()).expect("a decoded object re-encodes");
    }
    assert_eq!(out, data, "COMPACT-TLV decode -> encode changed the bytes");
}

/// ATR: parsing never panics; a parsed ATR keeps its bytes and every accessor answers;
/// reparsing gives the same value.
pub fn atr(data: &[u8]) {
    let Ok(atr) = Atr::parse(data) else { return };
    assert_eq!(atr.bytes(), data);
    let _ = (atr.convention(), atr.protocols(), atr.fi(), atr.di(), atr.ifsc(), atr.tck());
    let _ = (atr.t1(), atr.specific_mode(), atr.class_indicator(), atr.wi(), atr.f_max_khz());
    if let Ok(info) = atr.historical_info() {
        let _ = format!("{info:?}");
    }
    let _ = format!("{atr:?} {atr}");
    let again = Atr::parse(atr.bytes()).expect("a parsed ATR reparses");
    assert_eq!(again.bytes(), atr.bytes());
    assert_eq!(again.protocols(), atr.protocols());
}

/// Exchange engine against a card whose every answer is fuzzer input. The first 9 bytes
/// choose the limits and the command; the rest is a sequence of answers, each a 2-byte
/// big-endian length and that many bytes. Invariants: every APDU the engine asks to send is a
/// valid command within the limits; the number of APDUs is bounded by the chain length plus
/// the GET RESPONSE bound plus one resend; a finished exchange never returns more than Ne.
pub fn exchange(data: &[u8]) {
    let Some((head, mut answers)) = data.split_first_chunk::<9>() else { return };
    let [flags, c1, c2, r1, r2, n1, n2, e1, e2] = *head;
    let extended_length = flags & 0x01 != 0;
    let (nc_cap, ne_cap) = if extended_length { (65535usize, 65536u32) } else { (255, 256) };
    let limits = CardLimits {
        max_command_data: usize::from(u16::from_be_bytes([c1, c2])) % nc_cap + 1,
        max_response_data: u32::from(u16::from_be_bytes([r1, r2])) % ne_cap + 1,
        extended_length,
        command_chaining: flags & 0x02 != 0,
        max_get_response: u16::from(flags >> 3),
    };
    let nc = usize::from(u16::from_be_bytes([n1, n2])) % 2048;
    let ne = u32::from(u16::from_be_bytes([e1, e2]));
    let mut command = CommandApdu::new(0x00, 0xDB, 0x3F, 0xFF)
        .with_data(vec![0xA5; nc])
        .expect("under 65536")
        .with_extended(flags & 0x04 != 0);
    if ne != 0 {
        command = command.with_ne(ne).expect("1..=65535");
    }
    let Ok(mut ex) = Exchange::new(&command, limits) else { return };
    let pieces = nc.div_ceil(limits.max_command_data).max(1);
    let bound = pieces + usize::from(limits.max_get_response) + 1;
    loop {
        let sent = CommandApdu::decode(ex.apdu()).expect("the engine sends valid APDUs");
        assert!(sent.data().len() <= limits.max_command_data);
        assert!(extended_length || !sent.is_extended());
        assert!(ex.apdus_sent() <= bound, "exchange did not stop: {} APDUs", ex.apdus_sent());
        let Some((len, rest)) = answers.split_first_chunk::<2>() else { return };
        let len = usize::from(u16::from_be_bytes(*len)).min(rest.len());
        let (answer, rest) = rest.split_at(len);
        answers = rest;
        match ex.receive(answer) {
            Ok(Step::Transmit) => {}
            Ok(Step::Done(response)) => {
                let got = u32::try_from(response.data().len()).expect("small");
                assert!(
                    got <= command.ne().unwrap_or(0),
                    "{got} bytes returned for Ne {:?}",
                    command.ne()
                );
                assert!(ex.is_done());
                return;
            }
            Err(_) => {
                assert!(ex.is_done());
                return;
            }
        }
    }
}
