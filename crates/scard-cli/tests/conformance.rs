//! `scard conformance` on the simulated cards: every check passes with --destructive (the
//! simulated cards are the reference the suite is written against), and a card model that
//! does not name the card's ATR fails the ATR check with exit status 1.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// A directory with no card models in it, so that the user's own models play no part.
fn empty_config() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scard-conformance-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn scard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scard"))
        .args(args)
        .env("XDG_CONFIG_HOME", empty_config())
        .env_remove("SCARD_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn report(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {stdout}\n{}", String::from_utf8_lossy(&out.stderr))
    })
}

/// Checks by name: status and detail.
fn checks(report: &Value) -> Vec<(String, String, String)> {
    let top: Vec<&String> = report.as_object().unwrap().keys().collect();
    assert_eq!(top, ["card", "checks"], "{report}");
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let obj = c.as_object().unwrap();
            assert_eq!(obj.len(), 3, "{c}");
            let status = c["status"].as_str().unwrap().to_owned();
            assert!(["pass", "fail", "skip"].contains(&status.as_str()), "{c}");
            (
                c["name"].as_str().unwrap().to_owned(),
                status,
                c["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

const ALWAYS: [&str; 17] = [
    "open",
    "atr-matches-model",
    "properties-readable",
    "file-system",
    "card-id-stable",
    "pin-info",
    "pin-tries-user",
    "pin-tries-admin",
    "unsupported-refused-before-pin",
    "key-generation",
    "certificate-write-read",
    "reset-by-another-connection",
    "reconnect-reset",
    "cleanup",
    "freshness-counters",
    "extended-length-and-chaining",
    // Per algorithm: one of them, the rest below.
    "sign-p256",
];

/// Runs the destructive battery on a fresh simulated card and checks every check passed
/// (the admin tries check is skipped where the admin is a challenge-response key).
fn passes_every_check(family: &str, admin_is_pin: bool) {
    let out = scard(&["conformance", "--sim", family, "--destructive", "--json"]);
    let report = report(&out);
    let checks = checks(&report);
    let table: String = checks.iter().map(|(n, s, d)| format!("{n:32} {s:5} {d}\n")).collect();
    assert!(out.status.success(), "exit {:?}\n{table}", out.status.code());
    let failed: Vec<&(String, String, String)> =
        checks.iter().filter(|(_, s, _)| s == "fail").collect();
    assert!(failed.is_empty(), "{table}");
    let mut expected: Vec<String> = ALWAYS.iter().map(|s| (*s).to_owned()).collect();
    for alg in ["rsa2048", "rsa3072", "rsa4096"] {
        expected.push(format!("sign-{alg}"));
        expected.push(format!("decrypt-{alg}"));
    }
    for alg in ["p256", "p384"] {
        expected.push(format!("sign-{alg}"));
        expected.push(format!("agree-{alg}"));
    }
    for name in &expected {
        let Some((_, status, detail)) = checks.iter().find(|(n, _, _)| n == name) else {
            panic!("no check {name}:\n{table}");
        };
        let may_skip = name == "pin-tries-admin" && !admin_is_pin;
        if may_skip {
            assert_eq!(status, "skip", "{name}: {detail}");
        } else {
            assert_eq!(status, "pass", "{name}: {detail}\n{table}");
        }
    }
    assert_eq!(report["card"]["family"], family, "{report}");
    assert_eq!(report["card"]["card_id"].as_str().unwrap().len(), 32, "{report}");
}

#[test]
fn simulated_piv_card_passes_every_check() {
    passes_every_check("piv", false);
}

#[test]
fn simulated_openpgp_card_passes_every_check() {
    passes_every_check("openpgp", true);
}

#[test]
fn simulated_gids_card_passes_every_check() {
    passes_every_check("gids", false);
}

#[test]
fn without_destructive_nothing_is_written() {
    let out = scard(&["conformance", "--sim", "piv", "--json"]);
    let report = report(&out);
    let checks = checks(&report);
    assert!(out.status.success(), "{checks:?}");
    for name in ["key-generation", "certificate-write-read", "freshness-counters", "cleanup"] {
        let (_, status, detail) = checks.iter().find(|(n, _, _)| n == name).unwrap();
        assert_eq!(status, "skip", "{name}: {detail}");
        assert!(detail.contains("--destructive"), "{name}: {detail}");
    }
    // A fresh card has no keys: the algorithm checks say how to get some.
    let (_, status, detail) = checks.iter().find(|(n, _, _)| n == "sign-rsa2048").unwrap();
    assert_eq!((status.as_str(), detail.contains("--destructive")), ("skip", true), "{detail}");
    // The PIN checks still run: they never leave the PIN below 2 tries.
    let (_, status, detail) = checks.iter().find(|(n, _, _)| n == "pin-tries-user").unwrap();
    assert_eq!(status, "pass", "{detail}");
}

#[test]
fn a_model_that_does_not_name_the_atr_fails_the_atr_check() {
    let dir = empty_config();
    let model = dir.join("wrong-atr.toml");
    std::fs::write(
        &model,
        "name = \"Some other PIV token\"\nfamily = \"piv\"\n\n[[atr]]\nvalue = \"3B 8C 80 01 11 22 33 44\"\n",
    )
    .unwrap();
    let out =
        scard(&["conformance", "--sim", "piv", "--profile", model.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let report = report(&out);
    let checks = checks(&report);
    let (_, status, detail) = checks.iter().find(|(n, _, _)| n == "atr-matches-model").unwrap();
    assert_eq!(status, "fail", "{detail}");
    assert!(
        detail.contains("3B9A13810180587363617264504956F9") && detail.contains("3B8C800111223344"),
        "{detail}"
    );
    assert_eq!(report["card"]["model"], "Some other PIV token");

    // The table names the failure too, on standard output, with the same exit status.
    let out = scard(&["conformance", "--sim", "piv", "--profile", model.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("atr-matches-model") && l.contains(" fail ")),
        "{text}"
    );
    assert!(text.contains("1 failed"), "{text}");
}

#[test]
fn a_broken_profile_file_is_bad_input() {
    let dir = empty_config();
    let model = dir.join("broken.toml");
    std::fs::write(&model, "name = \"Broken\"\nfamily = \"piv\"\n[[atr]]\nvalue = \"3B 9Z\"\n")
        .unwrap();
    let out = scard(&["conformance", "--sim", "piv", "--profile", model.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.toml:4: atr[0].value"), "{stderr}");
}
