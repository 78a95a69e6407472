//! `scard atr` as a user runs it, and against pcsc-tools' ATR_analysis on the few hundred real
//! ATRs recorded in `crates/scard-iso7816/tests/fixtures/atr_analysis.tsv` (written from
//! ATR_analysis' output by `generate-atr-analysis.sh` there; the library-level comparison,
//! with the listed ISO-vs-ATR_analysis disagreements, is `scard-iso7816/tests/atr_analysis.rs`).

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::process::Command;

use scard_iso7816::atr::Atr;
use scard_iso7816::hex;
use serde_json::{Value, json};

const FIXTURE: &str = include_str!("../../scard-iso7816/tests/fixtures/atr_analysis.tsv");

/// Runs the binary: exit status, standard output, standard error.
fn scard_full(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scard")).args(args).output().expect("scard runs");
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("UTF-8");
    (out.status.code().expect("exit code"), text(out.stdout), text(out.stderr))
}

fn scard(args: &[&str]) -> (i32, String) {
    let (code, stdout, _) = scard_full(args);
    (code, stdout)
}

fn atr_json(hex: &str) -> (i32, Value) {
    let (code, out) = scard(&["atr", hex, "--json"]);
    (code, serde_json::from_str(&out).unwrap_or_else(|e| panic!("{hex}: {e}: {out}")))
}

#[test]
fn json_fields_are_exactly_the_documented_ones() {
    // YubiKey 5 (smartcard_list.txt).
    let (code, v) =
        atr_json("3B FD 13 00 00 81 31 FE 15 80 73 C0 21 C0 57 59 75 62 69 4B 65 79 40");
    assert_eq!(code, 0);
    assert_eq!(
        v,
        json!({"atr": "3BFD1300008131FE158073C021C057597562694B657940", "convention": "direct",
               "protocols": [1], "fi": 372, "di": 4, "ifsc": 254,
               "historical": "8073C021C057597562694B6579", "tck": "correct", "error": null})
    );
    // Inverse convention, T=0 only, no TA1: defaults, no IFSC, no TCK.
    let (code, v) = atr_json("3f:65:25:00:2c:09:69:90:00");
    assert_eq!(code, 0);
    assert_eq!(
        v,
        json!({"atr": "3F6525002C09699000", "convention": "inverse", "protocols": [0],
               "fi": 372, "di": 1, "ifsc": null, "historical": "2C09699000", "tck": "absent",
               "error": null})
    );
}

#[test]
fn bad_atrs_exit_2_with_error_set() {
    for input in [
        "3B",
        "3B9513810180",
        "3C 00",
        "zz",
        &"3B".repeat(34),
        "3B 95 13 81 01 80 73 FF 01 00 0B 00",
    ] {
        let (code, v) = atr_json(input);
        assert_eq!(code, 2, "{input}");
        assert!(!v["error"].as_str().expect("error set").is_empty(), "{input}");
        assert_eq!(v["convention"], Value::Null, "{input}");
        let (code, stdout, stderr) = scard_full(&["atr", input]);
        assert_eq!(code, 2, "{input}");
        assert!(stdout.is_empty() && stderr.starts_with("error: "), "{stdout} / {stderr}");
    }
    // A wrong TCK is reported, not rejected.
    let (code, v) = atr_json("3B 95 13 81 01 80 73 FF 01 00 0C");
    assert_eq!((code, &v["tck"]), (0, &json!("wrong")));
}

#[test]
fn datasheet_reads_like_one() {
    let (code, text) = scard(&["atr", "3B9513810180", "73FF01000B"]);
    assert_eq!(code, 0);
    for expected in [
        "TS           3B       direct convention",
        "TA1          13       Fi = 372, Di = 4",
        "TD1          81       Y2 = 8 (TD2 follow), protocol T=1",
        "7 card capabilities",
        "TCK          0B       correct",
        "Protocols    T=1",
        "IFSC = 32",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}

/// Every fixture ATR through the binary: where ATR_analysis decoded it and ISO/IEC 7816-3
/// agrees it is well formed, convention, protocols, Fi/Di (when TA1 is present: ATR_analysis
/// prints them only then), historical bytes, TCK and IFSC match ATR_analysis' output; where the
/// library rejects it, the binary exits 2 with the library's error.
#[test]
fn agrees_with_atr_analysis_on_the_fixture() {
    let mut compared = 0;
    let mut rejected = 0;
    for line in FIXTURE.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [atr_hex, convention, tds, fi, di, historical, tck, ifsc, notes] = cols[..] else {
            panic!("bad fixture line {line:?}")
        };
        let (code, v) = atr_json(atr_hex);
        let bytes = hex::decode_lenient(atr_hex).unwrap();
        match Atr::parse(&bytes) {
            Err(err) => {
                assert_eq!(code, 2, "{atr_hex}");
                assert_eq!(v["error"], json!(err.to_string()), "{atr_hex}");
                rejected += 1;
                continue;
            }
            Ok(_) => assert_eq!(code, 0, "{atr_hex}: {v}"),
        }
        if notes != "-" {
            // ATR_analysis stopped or complained; the library test covers these rows.
            continue;
        }
        assert_eq!(v["convention"], json!(convention), "{atr_hex}");
        // ATR_analysis lists the T of every TDi; the protocols offered are those without
        // repeats and without T=15, or T=0 when there is none (ISO/IEC 7816-3 §8.2.3).
        let mut protocols: Vec<u8> = Vec::new();
        if tds != "-" {
            for t in tds.split(',').map(|t| t.parse::<u8>().unwrap()) {
                if t != 15 && !protocols.contains(&t) {
                    protocols.push(t);
                }
            }
        }
        if protocols.is_empty() {
            protocols.push(0);
        }
        assert_eq!(v["protocols"], json!(protocols), "{atr_hex}");
        if fi != "-" {
            let expect =
                |s: &str| if s == "RFU" { Value::Null } else { json!(s.parse::<u32>().unwrap()) };
            assert_eq!(v["fi"], expect(fi), "{atr_hex} Fi");
            assert_eq!(v["di"], expect(di), "{atr_hex} Di");
        } else {
            assert_eq!((&v["fi"], &v["di"]), (&json!(372), &json!(1)), "{atr_hex} defaults");
        }
        let historical = if historical == "-" { "" } else { historical };
        assert_eq!(v["historical"], json!(historical), "{atr_hex}");
        assert_eq!(v["tck"], json!(tck), "{atr_hex}");
        if ifsc != "-" {
            assert_eq!(v["ifsc"], json!(ifsc.parse::<u16>().unwrap()), "{atr_hex} IFSC");
        }
        compared += 1;
    }
    println!("{compared} ATRs agree with ATR_analysis field by field, {rejected} rejected");
    assert!(compared >= 400, "only {compared} ATRs compared");
}
