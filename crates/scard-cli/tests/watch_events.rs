//! `scard watch --events`: JSON lines for what the service sees. A simulated PIV card with a
//! certificate (eligible for logon under AllowCertificatesWithNoEKU=1) and a blocked PIN gives
//! one card_inserted, one logon_certificate and one pin_blocked event, then stopped on SIGTERM.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
fn watch_events_are_json_lines() {
    let dir = std::env::temp_dir().join(format!("scard-watch-events-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("config")).unwrap();
    let reader = format!("sim:piv:{}", dir.join("card.json").display());
    let out = scard(
        &[
            "keygen",
            "--reader",
            &reader,
            "--container",
            "0",
            "--alg",
            "rsa2048",
            "--admin-env",
            "A",
        ],
        &[("A", MGMT)],
    );
    assert!(out.status.success());
    let cert = dir.join("cert.der");
    let pem = String::from_utf8_lossy(&out.stdout).into_owned();
    std::fs::write(&cert, common::issue_certificate(&pem, "watched")).unwrap();
    let args = ["cert", "import", "--reader", &reader, "--container", "0", "--admin-env", "A"];
    let out = scard(&[&args[..], &[cert.to_str().unwrap()]].concat(), &[("A", MGMT)]);
    assert!(out.status.success());
    for _ in 0..3 {
        scard(&["pin", "verify", "--reader", &reader, "--pin-env", "P"], &[("P", "999999")]);
    }

    let mut child = Command::new(env!("CARGO_BIN_EXE_scard"))
        .args([
            "watch",
            "--reader",
            &reader,
            "--events",
            "--policy",
            "AllowCertificatesWithNoEKU=1",
        ])
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut events: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !events.iter().any(|e| e["event"] == "logon_certificate") {
        assert!(Instant::now() < deadline, "no logon_certificate event: {events:?}");
        let line = lines.next().unwrap().unwrap();
        events.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")));
    }
    // Time for a second (wrong) insertion event to show up, if the service reported one.
    std::thread::sleep(Duration::from_millis(700));
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    for line in lines {
        events.push(serde_json::from_str(&line.unwrap()).unwrap());
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{events:?}");
    let count = |kind: &str| events.iter().filter(|e| e["event"] == kind).count();
    assert_eq!(count("card_inserted"), 1, "{events:?}");
    assert_eq!(count("pin_blocked"), 1, "{events:?}");
    let logon = events.iter().find(|e| e["event"] == "logon_certificate").unwrap();
    assert_eq!(logon["reader"], reader.as_str());
    assert_eq!(logon["subject"], "CN=watched");
    let blocked = events.iter().find(|e| e["event"] == "pin_blocked").unwrap();
    assert_eq!(blocked["pin"], 1);
    let _ = std::fs::remove_dir_all(&dir);
}
