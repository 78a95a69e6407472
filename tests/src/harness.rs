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
    ("ccid_reader", ccid_reader),
    ("ccid_descriptor", ccid_descriptor),
    ("cert_eligibility", cert_eligibility),
    ("piv_session", piv_session),
    ("openpgp_session", openpgp_session),
    ("gids_session", gids_session),
];

mod session;

/// A PIV card session (scard-profile-piv on the simulated PIV card): operations and mutated
/// answers from the input; see the `session` module for the layout and the invariants.
pub fn piv_session(data: &[u8]) {
    session::run(scard_sim::Family::Piv, data);
}

/// An OpenPGP card session (scard-profile-openpgp on the simulated OpenPGP card 3.4).
pub fn openpgp_session(data: &[u8]) {
    session::run(scard_sim::Family::OpenPgp, data);
}

/// A GIDS card session (scard-profile-gids on the simulated GIDS card).
pub fn gids_session(data: &[u8]) {
    session::run(scard_sim::Family::Gids, data);
}

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
                    got <= command.ne().unwrap_or(65536),
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

/// The CCID slot engine (`scard_ccid::Slot`) against a reader whose every bulk-in message comes
/// from the input. Layout: byte 0 picks the reader (bits 1-0 exchange level TPDU, TPDU, short
/// APDU, extended APDU; bits 3-2 dwProtocols both, T=1, T=0, both; bits 4-7 the automatic
/// negotiation, PPS, IFSD and voltage features), byte 1 dwMaxCCIDMessageLength, byte 2 the
/// operations. Then messages, each `mode`, a 2-byte big-endian length and that many bytes.
/// With `mode` bit 7 the bytes are the raw message; otherwise the harness frames them as the
/// answer the engine waits for (bStatus, bError, the specific byte, then abData), with bits
/// 0/1 shifting bSeq back/forward, bit 2 forcing SlotStatus, bit 3 slot 1, bits 4/5 appending
/// an LRC/CRC to abData (so T=1 blocks get past their check).
///
/// Invariants: no panic; every message the engine sends is a well-formed command for slot 0
/// with the next bSeq and fits dwMaxCCIDMessageLength; it sends at most one message per
/// operation started plus one per message it was given; an operation ends with its outcome or
/// an error and the slot is idle afterwards; responses are at least SW1 SW2 and at most the
/// bound.
pub fn ccid_reader(data: &[u8]) {
    use scard_ccid::descriptor::ClassDescriptor;
    use scard_ccid::message::{MessageType, ReplyHeader, SlotError, Status, decode_command};
    use scard_ccid::slot::Outcome;
    use scard_ccid::{Slot, SlotConfig, Step};

    let Some((head, mut rest)) = data.split_first_chunk::<3>() else { return };
    let [reader, length, ops] = *head;
    let level = [0x0001_0000u32, 0x0001_0000, 0x0002_0000, 0x0004_0000][usize::from(reader & 3)];
    let protocols = [3u32, 2, 1, 3][usize::from(reader >> 2 & 3)];
    let mut features = level;
    for (bit, flag) in [(4, 0x40u32), (5, 0x80), (6, 0x400), (7, 0x08)] {
        if reader >> bit & 1 != 0 {
            features |= flag;
        }
    }
    let max_message: u32 = [271, 74, 65554, 20][usize::from(length & 3)];
    let mut d = vec![0x36, 0x21, 0x10, 0x01, 0x00, 0x07];
    d.extend_from_slice(&protocols.to_le_bytes());
    d.extend_from_slice(&4000u32.to_le_bytes());
    d.extend_from_slice(&8000u32.to_le_bytes());
    d.push(0);
    d.extend_from_slice(&10752u32.to_le_bytes());
    d.extend_from_slice(&344_086u32.to_le_bytes());
    d.push(0);
    d.extend_from_slice(&254u32.to_le_bytes());
    d.extend_from_slice(&[0; 8]);
    d.extend_from_slice(&features.to_le_bytes());
    d.extend_from_slice(&max_message.to_le_bytes());
    d.extend_from_slice(&[0xFF, 0xFF, 0, 0, 0x03, 1]);
    let descriptor = ClassDescriptor::parse(&d).expect("a valid descriptor");
    let config =
        SlotConfig { max_time_extensions: 8, max_stale_responses: 8, ..SlotConfig::default() };
    let Ok(mut slot) = Slot::new(&descriptor, config) else {
        assert!(max_message < 15, "descriptor refused");
        return;
    };
    let apdus: [&[u8]; 4] = [
        &[0x00, 0xA4, 0x04, 0x00, 0x02, 0x3F, 0x00, 0x00],
        &[0x00, 0xB0, 0x00, 0x00, 0x00, 0x01, 0x2C],
        &[0x00, 0xCA, 0x00, 0x6E, 0x00],
        &[0x00, 0x20, 0x00, 0x81],
    ];
    let mut expected_seq = slot.next_seq();
    let mut started = 0usize;
    let mut fed = 0usize;
    let mut sent = 0usize;
    let check = |message: &[u8], sent: &mut usize, expected_seq: &mut u8| {
        let (header, _) = decode_command(message).expect("the engine sends well-formed commands");
        assert_eq!(header.slot, 0);
        assert_eq!(header.seq, *expected_seq, "bSeq not incremented by one");
        *expected_seq = expected_seq.wrapping_add(1);
        assert!(
            message.len() <= max_message as usize,
            "{} bytes > dwMaxCCIDMessageLength",
            message.len()
        );
        *sent += 1;
    };
    for op in 0..8u8 {
        let start = match (op, ops >> (op % 4 * 2) & 3) {
            (0, _) => slot.power_on(),
            (_, 0) => slot.get_slot_status(),
            (_, 1) if op % 3 == 0 => slot.escape(&[op]),
            (_, n) => slot.transmit(apdus[usize::from(n + op) % apdus.len()]),
        };
        started += 1;
        let mut step = match start {
            Ok(step) => step,
            Err(_) => {
                assert!(!slot.is_busy());
                continue;
            }
        };
        loop {
            match &step {
                Step::Send { message, .. } => check(message, &mut sent, &mut expected_seq),
                Step::Receive { .. } => {}
                Step::Done(outcome) => {
                    if let Outcome::Response(r) = outcome {
                        assert!(r.len() >= 2 && r.len() <= 65538, "response of {} bytes", r.len());
                    }
                    assert!(!slot.is_busy());
                    break;
                }
            }
            assert!(
                sent <= started + fed,
                "{sent} messages sent for {started} operations and {fed} answers"
            );
            let Some((&mode, after)) = rest.split_first() else { return };
            let Some((len, after)) = after.split_first_chunk::<2>() else { return };
            let len = usize::from(u16::from_be_bytes(*len)).min(after.len());
            let (bytes, after) = after.split_at(len);
            rest = after;
            let message = if mode & 0x80 != 0 {
                bytes.to_vec()
            } else {
                let pending = slot.pending_command().unwrap_or(MessageType::DATA_BLOCK);
                let seq = slot.next_seq().wrapping_sub(1);
                let seq = match mode & 3 {
                    1 => seq.wrapping_sub(1),
                    2 => seq.wrapping_add(1),
                    _ => seq,
                };
                let message_type = if mode & 4 != 0 {
                    MessageType::SLOT_STATUS
                } else {
                    pending.response_type().unwrap_or(MessageType::DATA_BLOCK)
                };
                let field = |i: usize| bytes.get(i).copied().unwrap_or(0);
                let mut abdata = bytes.get(3..).unwrap_or(&[]).to_vec();
                if mode & 0x10 != 0 {
                    let lrc = scard_ccid::t1::lrc(&abdata);
                    abdata.push(lrc);
                } else if mode & 0x20 != 0 {
                    let crc = scard_ccid::t1::crc(&abdata);
                    abdata.extend_from_slice(&crc);
                }
                if message_type == MessageType::SLOT_STATUS {
                    abdata.clear();
                }
                ReplyHeader {
                    message_type,
                    slot: u8::from(mode & 8 != 0),
                    seq,
                    status: Status(field(0)),
                    error: SlotError(field(1)),
                    specific: field(2),
                }
                .encode(&abdata)
            };
            fed += 1;
            step = match slot.on_bulk_in(&message) {
                Ok(step) => step,
                Err(_) => {
                    assert!(!slot.is_busy(), "the slot stays busy after an error");
                    break;
                }
            };
        }
    }
}

/// CCID decoders: the class descriptor, bulk-in responses (strict and with the QEMU quirk),
/// interrupt messages, bulk-out commands, T=1 blocks (LRC and CRC) and protocol data. No
/// panic; whatever decodes re-encodes to the same bytes.
pub fn ccid_descriptor(data: &[u8]) {
    use scard_ccid::descriptor::{ClassDescriptor, decode_dword_list};
    use scard_ccid::message::{DecodeOptions, Interrupt, ProtocolData, Response, decode_command};
    use scard_ccid::t1::{decode_block, encode_block};
    use scard_iso7816::atr::EdcKind;

    if let Ok(d) = ClassDescriptor::parse(data) {
        assert_eq!(&d.to_bytes()[..], data, "descriptor round trip");
        let _ = (d.exchange_level(), d.ifsd(), d.max_payload(), format!("{d:?}"));
        let names: Vec<_> = d.features().names().collect();
        assert!(names.len() <= 14);
    }
    let _ = ClassDescriptor::find(data);
    for options in [DecodeOptions::default(), DecodeOptions { parameters_length_zero: true }] {
        if let Ok(r) = Response::decode_with(data, options) {
            let again = r.encode();
            if options.parameters_length_zero && again != data {
                // The quirk accepts dwLength 0 with data; the re-encoding states the length.
                assert_eq!(again.get(10..), data.get(10..));
            } else {
                assert_eq!(again, data, "response round trip");
            }
            let _ =
                (r.status().command(), r.status().icc(), format!("{r:?}"), r.error().to_string());
        }
    }
    if let Ok(i) = Interrupt::decode(data) {
        assert_eq!(i.encode(), data, "interrupt round trip");
        let _ = i.slot_changes();
    }
    let _ = scard_ccid::slot::slot_events(data);
    if let Ok((header, body)) = decode_command(data) {
        assert_eq!(body.len() + 10, data.len());
        let _ = header.message_type.response_type();
    }
    for edc in [EdcKind::Lrc, EdcKind::Crc] {
        if let Ok((nad, _)) = decode_block(data, edc) {
            let pcb = data[1];
            let again = encode_block(nad, pcb, &data[3..3 + usize::from(data[2])], edc);
            assert_eq!(&again[..], data, "T=1 block round trip");
        }
    }
    if let Some((&protocol, rest)) = data.split_first() {
        if let Ok(p) = ProtocolData::decode(protocol, rest) {
            assert_eq!(p.to_bytes(), rest);
        }
    }
    let _ = decode_dword_list(data);
}

/// Logon certificates (`scard_certs`): strict DER parsing never panics and keeps the bytes; a
/// certificate that parses is evaluated (rules 2-9) for both key specs under the default and
/// the most permissive settings at its validity ends and far outside them, and enumerated
/// (rules 10-12) on a card holding it twice; an eligible evaluation has no reasons, reasons
/// and notes print, and the two identical copies are never both listed.
pub fn cert_eligibility(data: &[u8]) {
    use scard_certs::{
        Card, Container, KeySpec, LogonCert, Policy, Timestamp, enumerate, evaluate,
    };
    let cert = match LogonCert::from_der(data) {
        Ok(cert) => cert,
        Err(err) => {
            let _ = err.to_string();
            return;
        }
    };
    assert_eq!(cert.der(), data, "a parsed certificate keeps its bytes");
    let _ = (cert.subject(), cert.subject_for_display(true), cert.issuer(), cert.serial_hex());
    let _ = (cert.upn(), cert.email(), cert.display_name(false), cert.key().to_string());
    let _ = (cert.key_usage_names(), cert.thumbprint_hex(), format!("{cert:?}"));
    let mut permissive = Policy::new();
    for arg in [
        "AllowCertificatesWithNoEKU=1",
        "AllowSignatureOnlyKeys=1",
        "AllowTimeInvalidCertificates=1",
        "EnumerateECCCerts=1",
        "FilterDuplicateCerts=1",
        "ForceReadingAllCertificates=1",
    ] {
        permissive.apply_arg(arg).expect("a valid setting");
    }
    let times = [
        Timestamp::from_unix(0),
        cert.not_before(),
        cert.not_after(),
        Timestamp::from_unix(cert.not_after().unix_secs().saturating_add(1)),
        Timestamp::from_unix(u64::MAX / 2),
    ];
    for policy in [Policy::new(), permissive.clone()] {
        for spec in [KeySpec::Exchange, KeySpec::Signature] {
            for now in times {
                let e = evaluate(&cert, spec, now, &policy);
                assert_eq!(e.eligible(), e.reasons.is_empty());
                let mut sink = String::new();
                for r in &e.reasons {
                    let _ = write!(sink, "{r}");
                }
                for n in &e.notes {
                    let _ = write!(sink, "{n}");
                }
            }
        }
        let container = |name: &str, default| Container {
            name: name.into(),
            certificate: Some(data.to_vec()),
            default,
            key_spec: KeySpec::Exchange,
        };
        for supports in [true, false] {
            let card = Card::new(supports, vec![container("a", true), container("b", false)])
                .expect("distinct names, one default");
            let listed = enumerate(&card, cert.not_before(), &policy);
            assert!(listed.displayed().len() <= 1, "identical certificates listed twice");
            for (_, rejection) in listed.rejected() {
                let _ = rejection.lines();
            }
        }
    }
}
