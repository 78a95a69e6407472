//! `scard apdu` as a user runs it: the binary, its JSON, its exit status.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::process::Command;

use serde_json::{Value, json};

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

fn apdu_json(hex: &str) -> (i32, Value) {
    let (code, out) = scard(&["apdu", hex, "--json"]);
    (code, serde_json::from_str(&out).expect("JSON"))
}

#[test]
fn json_fields_are_exactly_the_documented_ones() {
    // SP 800-73-4 Pt 2 §3.1.1 SELECT of the PIV AID, sent as case 4E.
    let (code, v) = apdu_json("00 A4 04 00 00 00 09 A0 00 00 03 08 00 00 10 00 00 00");
    assert_eq!(code, 0);
    assert_eq!(
        v,
        json!({"case": "4E", "cla": "00", "ins": "A4", "p1": "04", "p2": "00", "nc": 9,
               "ne": 65536, "data": "A00000030800001000", "extended": true, "error": null})
    );
}

#[test]
fn every_case_through_the_binary() {
    for (hex, case, nc, ne) in [
        ("00200080", "1", 0, Value::Null),
        ("00:84:00:00:08", "2S", 0, json!(8)),
        ("00ca006e00", "2S", 0, json!(256)),
        ("00 20 00 80 08 31 32 33 34 35 36 FF FF", "3S", 8, Value::Null),
        ("00 CB 3F FF 05 5C 03 5F C1 02 00", "4S", 5, json!(256)),
        ("00 CA 00 6E 00 00 00", "2E", 0, json!(65536)),
        ("00 DB 3F FF 00 00 02 AA BB", "3E", 2, Value::Null),
        ("00 2A 9E 9A 00 00 03 01 02 03 00 00", "4E", 3, json!(65536)),
    ] {
        let (code, v) = apdu_json(hex);
        assert_eq!(code, 0, "{hex}");
        assert_eq!(v["case"], case, "{hex}");
        assert_eq!(v["nc"], nc, "{hex}");
        assert_eq!(v["ne"], ne, "{hex}");
        assert_eq!(v["extended"], case.ends_with('E'), "{hex}");
        assert_eq!(v["error"], Value::Null);
    }
}

#[test]
fn malformed_apdus_exit_2_with_error_set() {
    for hex in
        ["00 A4 04", "00 A4 04 00 05 A0 00", "00 B0 00 00 00 10", "0", "zz", "00A4040002A0000100"]
    {
        let (code, v) = apdu_json(hex);
        assert_eq!(code, 2, "{hex}");
        let error = v["error"].as_str().expect("error is a string");
        assert!(!error.is_empty());
        assert_eq!(v["case"], Value::Null, "{hex}");
        let (code, stdout, stderr) = scard_full(&["apdu", hex]);
        assert_eq!(code, 2, "{hex}");
        assert!(stdout.is_empty() && stderr.starts_with("error: "), "{stdout} / {stderr}");
    }
}

#[test]
fn datasheet_names_the_fields() {
    let (code, text) = scard(&["apdu", "00A4040005A000000308", "00"]);
    assert_eq!(code, 0);
    assert!(text.contains("Case      4S"), "{text}");
    assert!(text.contains("INS       A4  SELECT"), "{text}");
    assert!(text.contains("Data      A0 00 00 03 08"), "{text}");
    assert!(text.contains("Ne        256"), "{text}");
}

#[test]
fn command_line_errors_exit_2() {
    let (code, _) = scard(&["apdu"]);
    assert_eq!(code, 2);
    let (code, _) = scard(&["no-such-command"]);
    assert_eq!(code, 2);
}
