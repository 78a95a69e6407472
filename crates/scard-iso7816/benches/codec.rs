//! Criterion benchmarks of the codec on inputs the card profiles see: command APDUs (short
//! and extended) encoded and decoded, response APDUs decoded, BER-TLV walked (OpenPGP's
//! application related data, a PIV certificate object) and ATRs parsed. Run with
//! `cargo bench -p scard-iso7816`; the README's "Performance" section has the results.
// Benchmark code: a failing setup panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use scard_iso7816::hex::decode_lenient;
use scard_iso7816::tlv::ber::{self, ParseOptions, Tag};
use scard_iso7816::{Atr, CommandApdu, ResponseApdu, StatusWord};

fn h(s: &str) -> Vec<u8> {
    decode_lenient(s).unwrap()
}

/// OpenPGP card 3.4 DO 6E (application related data) as scard's simulated card answers it:
/// 6E { 4F AID, 5F52 historical bytes, 73 { C0 .. CD } } (§4.4.3).
fn application_related_data() -> Vec<u8> {
    let mut discretionary = Vec::new();
    ber::write(
        &mut discretionary,
        Tag::from_bytes(&[0xC0]).unwrap(),
        &h("7D 00 0B FE 08 00 00 FF 00 00"),
    )
    .unwrap();
    for tag in [0xC1u8, 0xC2, 0xC3] {
        ber::write(&mut discretionary, Tag::from_bytes(&[tag]).unwrap(), &h("01 08 00 00 20 00"))
            .unwrap();
    }
    ber::write(&mut discretionary, Tag::from_bytes(&[0xC4]).unwrap(), &h("00 7F 7F 7F 03 00 03"))
        .unwrap();
    ber::write(&mut discretionary, Tag::from_bytes(&[0xC5]).unwrap(), &[0x5A; 60]).unwrap();
    ber::write(&mut discretionary, Tag::from_bytes(&[0xC6]).unwrap(), &[0; 60]).unwrap();
    ber::write(&mut discretionary, Tag::from_bytes(&[0xCD]).unwrap(), &[0x11; 12]).unwrap();
    let mut inner = Vec::new();
    ber::write(
        &mut inner,
        Tag::from_bytes(&[0x4F]).unwrap(),
        &h("D2 76 00 01 24 01 03 04 FF FF 9A 37 44 50 00 00"),
    )
    .unwrap();
    ber::write(
        &mut inner,
        Tag::from_bytes(&[0x5F, 0x52]).unwrap(),
        &h("00 31 F5 73 C0 01 60 00 90 00"),
    )
    .unwrap();
    ber::write(&mut inner, Tag::from_bytes(&[0x73]).unwrap(), &discretionary).unwrap();
    let mut out = Vec::new();
    ber::write(&mut out, Tag::from_bytes(&[0x6E]).unwrap(), &inner).unwrap();
    out
}

/// A PIV certificate object (SP 800-73-4 Pt 1 Table 15): 53 { 70 certificate, 71 CertInfo,
/// FE error detection code }, with a 1 KiB certificate body.
fn piv_certificate_object() -> Vec<u8> {
    let mut certificate = Vec::new();
    ber::write(&mut certificate, Tag::from_bytes(&[0x30]).unwrap(), &[0xA5; 1024]).unwrap();
    let mut inner = Vec::new();
    ber::write(&mut inner, Tag::from_bytes(&[0x70]).unwrap(), &certificate).unwrap();
    ber::write(&mut inner, Tag::from_bytes(&[0x71]).unwrap(), &[0x00]).unwrap();
    ber::write(&mut inner, Tag::from_bytes(&[0xFE]).unwrap(), &[]).unwrap();
    let mut out = Vec::new();
    ber::write(&mut out, Tag::from_bytes(&[0x53]).unwrap(), &inner).unwrap();
    out
}

fn apdu(c: &mut Criterion) {
    let mut g = c.benchmark_group("apdu");
    let select = h("A0 00 00 03 08 00 00 10 00 01 00");
    g.bench_function("encode SELECT (case 4 short)", |b| {
        b.iter(|| {
            let cmd = CommandApdu::new(0x00, 0xA4, 0x04, 0x00)
                .with_data(black_box(select.clone()))
                .unwrap()
                .with_ne(256)
                .unwrap();
            black_box(cmd.to_bytes())
        })
    });
    let sign_data = vec![0x5Au8; 300];
    g.bench_function("encode GENERAL AUTHENTICATE (case 4 extended, 300 B)", |b| {
        b.iter(|| {
            let cmd = CommandApdu::new(0x00, 0x87, 0x07, 0x9A)
                .with_data(black_box(sign_data.clone()))
                .unwrap()
                .with_ne(65536)
                .unwrap();
            black_box(cmd.to_bytes())
        })
    });
    let short = h("00 CB 3F FF 05 5C 03 5F C1 05 00");
    g.bench_function("decode GET DATA (case 4 short)", |b| {
        b.iter(|| black_box(CommandApdu::decode(black_box(&short)).unwrap()))
    });
    let extended = CommandApdu::new(0x00, 0x87, 0x07, 0x9A)
        .with_data(sign_data.clone())
        .unwrap()
        .with_ne(65536)
        .unwrap()
        .to_bytes()
        .to_vec();
    g.bench_function("decode GENERAL AUTHENTICATE (case 4 extended)", |b| {
        b.iter(|| black_box(CommandApdu::decode(black_box(&extended)).unwrap()))
    });
    let mut response = vec![0xA5u8; 1024];
    response.extend_from_slice(&[0x90, 0x00]);
    g.throughput(Throughput::Bytes(response.len() as u64));
    g.bench_function("decode response (1 KiB + 9000)", |b| {
        b.iter(|| {
            let r = ResponseApdu::decode(black_box(&response)).unwrap();
            assert_eq!(r.sw(), StatusWord::SUCCESS);
            black_box(r)
        })
    });
    g.finish();
}

fn tlv(c: &mut Criterion) {
    let mut g = c.benchmark_group("ber-tlv");
    let ard = application_related_data();
    g.throughput(Throughput::Bytes(ard.len() as u64));
    g.bench_function("walk OpenPGP DO 6E (every object)", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for top in ber::iter(black_box(&ard), ParseOptions::STRICT) {
                let top = top.unwrap();
                for child in top.children() {
                    let child = child.unwrap();
                    n += 1;
                    if child.is_constructed() {
                        n += child.children().count();
                    }
                }
            }
            black_box(n)
        })
    });
    let c5 = Tag::from_bytes(&[0xC5]).unwrap();
    let discretionary = Tag::from_bytes(&[0x73]).unwrap();
    g.bench_function("find C5 (fingerprints) in DO 6E", |b| {
        b.iter(|| {
            let (top, _) = ber::decode_one(black_box(&ard), ParseOptions::STRICT).unwrap();
            let dd = top.find(discretionary).unwrap().unwrap();
            black_box(dd.find(c5).unwrap().unwrap().value().len())
        })
    });
    let object = piv_certificate_object();
    g.throughput(Throughput::Bytes(object.len() as u64));
    g.bench_function("PIV certificate object: 53 then 70", |b| {
        b.iter(|| {
            let (top, rest) = ber::decode_one(black_box(&object), ParseOptions::STRICT).unwrap();
            assert!(rest.is_empty());
            let cert = top.find(Tag::from_bytes(&[0x70]).unwrap()).unwrap().unwrap();
            black_box(cert.value().len())
        })
    });
    g.finish();
}

fn atr(c: &mut Criterion) {
    let mut g = c.benchmark_group("atr");
    let atrs = [
        (
            "YubiKey 5 (T=1, historical bytes)",
            "3B FD 13 00 00 81 31 FE 15 80 73 C0 21 C0 57 59 75 62 69 4B 65 79 40",
        ),
        (
            "scard sim OpenPGP (T=1)",
            "3B DA 18 FF 81 B1 FE 75 1F 03 00 31 F5 73 C0 01 60 00 90 00 1C",
        ),
        ("piv-authenticator / opcard (vpicc)", "3B 95 13 81 01 80 73 FF 01 00 0B"),
    ];
    for (name, hex) in atrs {
        let bytes = h(hex);
        g.bench_function(format!("parse {name}"), |b| {
            b.iter(|| {
                let atr = Atr::parse(black_box(&bytes)).unwrap();
                black_box((atr.protocols().len(), atr.historical().len()))
            })
        });
    }
    let yubikey = h(atrs[0].1);
    g.bench_function("parse + historical bytes (COMPACT-TLV)", |b| {
        b.iter(|| {
            let atr = Atr::parse(black_box(&yubikey)).unwrap();
            black_box(atr.historical_info().map(|hi| hi.category()).ok())
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    // Short runs: the figures are nanoseconds, stable well before criterion's 5 s default.
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = apdu, tlv, atr
}
criterion_main!(benches);
