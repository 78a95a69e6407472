//! `scard scinfo` on a simulated PIV card with an RSA key (9A), an ECDSA key (9C, PIN before
//! every use) and an ECDH key (9D): every key is tested and checked on the host, the logon
//! verdicts are given, and a wrong PIN is presented once, never again.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::process::{Command, Stdio};

use serde_json::Value;

const MGMT: &str = "010203040506070801020304050607080102030405060708";

fn scard(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scard"));
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn scinfo_tests_every_key() {
    let dir = std::env::temp_dir().join(format!("scard-scinfo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let reader = format!("sim:piv:{}", dir.join("card.json").display());
    for (container, alg) in [("0", "rsa2048"), ("1", "p256"), ("2", "p384")] {
        let pem = dir.join(format!("{container}.pem"));
        let out = scard(
            &[
                "keygen",
                "--reader",
                &reader,
                "--container",
                container,
                "--alg",
                alg,
                "--admin-env",
                "A",
            ],
            &[("A", MGMT)],
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(&pem, &out.stdout).unwrap();
        let cert = dir.join(format!("{container}.der"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        std::fs::write(&cert, common::issue_certificate(&text, &format!("scinfo {container}")))
            .unwrap();
        let out = scard(
            &[
                "cert",
                "import",
                "--reader",
                &reader,
                "--container",
                container,
                "--admin-env",
                "A",
                cert.to_str().unwrap(),
            ],
            &[("A", MGMT)],
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    let out =
        scard(&["scinfo", "--reader", &reader, "--pin-env", "P", "--json"], &[("P", "123456")]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{v:#}");
    let containers = v["readers"][0]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 3, "{v:#}");
    let by = |i: u64| containers.iter().find(|c| c["index"] == i).unwrap();
    assert_eq!(by(0)["sign"]["status"], "pass");
    assert_eq!(by(0)["decrypt"]["status"], "pass");
    assert_eq!(by(1)["sign"]["status"], "pass", "9C: the PIN again right before the signature");
    assert_eq!(by(1)["decrypt"]["status"], "skip");
    assert_eq!(by(2)["sign"]["status"], "skip");
    assert_eq!(by(2)["decrypt"]["status"], "pass", "ECDH on 9D");
    assert_eq!(by(0)["certificate"].as_str().unwrap().split(',').next(), Some("CN=scinfo 0"));
    assert_eq!(by(0)["logon"]["eligible"], false);
    assert!(by(0)["logon"]["reasons"][0].as_str().unwrap().contains("extKeyUsage"), "{v:#}");
    assert_eq!(v["failures"], 0);

    // A wrong PIN: one try spent, the failure reported, the PIN not presented again.
    let tries = |reader: &str| {
        let out = scard(&["info", "--reader", reader, "--json"], &[]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["card"]["pins"][0]["tries_left"].as_u64().unwrap()
    };
    let before = tries(&reader);
    let out = scard(&["scinfo", "--reader", &reader, "--pin-env", "P"], &[("P", "999999")]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("wrong PIN 1 (user)"), "{text}");
    assert!(text.contains("not presented again"), "{text}");
    assert_eq!(tries(&reader), before - 1, "exactly one try spent:\n{text}");
    let out = scard(&["pin", "verify", "--reader", &reader, "--pin-env", "P"], &[("P", "123456")]);
    assert!(out.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
