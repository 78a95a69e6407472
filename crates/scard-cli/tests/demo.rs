//! `scard demo` (the README's main command) checks out on every simulated card family, with
//! nothing installed: exit 0 and every step "ok".

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::process::{Command, Stdio};

/// The steps every demo walks through.
const STEPS: [&str; 10] =
    ["reader", "card", "PINs", "keygen", "certificate", "PIN", "sign", "decrypt", "ECDH", "logon"];

#[test]
fn demo_checks_out_on_every_family() {
    for card in ["piv", "openpgp", "gids"] {
        let out = Command::new(env!("CARGO_BIN_EXE_scard"))
            .args(["demo", "--card", card])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{card}: {text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("steps checked out"), "{text}");
        for step in STEPS {
            assert!(
                text.lines().any(|l| l.contains(" ok ") && l.contains(&format!(" {step} "))),
                "{card}: no ok line for {step}:\n{text}"
            );
        }
        assert!(!text.contains("FAIL"), "{text}");
        assert!(text.contains("eligible (demo.user@example.com)"), "{text}");
    }
}

#[test]
fn demo_json_reports_every_step() {
    let out = Command::new(env!("CARGO_BIN_EXE_scard"))
        .args(["demo", "--card", "openpgp", "--json"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["reader"], "sim:openpgp");
    assert_eq!((report["passed"].as_bool(), report["failed"].as_u64()), (Some(true), Some(0)));
    let steps = report["steps"].as_array().unwrap();
    for (i, step) in steps.iter().enumerate() {
        assert_eq!(step["step"].as_u64(), Some(i as u64 + 1));
        assert_eq!(step["ok"], true, "{step}");
    }
    let names: Vec<&str> = steps.iter().filter_map(|s| s["name"].as_str()).collect();
    for step in STEPS {
        assert!(names.contains(&step), "no {step} step: {names:?}");
    }
    // The default PIN of the simulated card is not in the report.
    assert!(!text.contains("123456"), "{text}");

    // A failed demo is JSON too, with exit status 1.
    let out = Command::new(env!("CARGO_BIN_EXE_scard"))
        .args(["demo", "--reader", "vpcd:127.0.0.1:1", "--timeout", "1", "--json"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["passed"], false);
    assert_eq!(report["steps"][0]["ok"], false, "{report}");
}

#[test]
fn demo_on_a_missing_reader_fails_cleanly() {
    let out = Command::new(env!("CARGO_BIN_EXE_scard"))
        .args(["demo", "--reader", "vpcd:127.0.0.1:1", "--timeout", "1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL"));
}
