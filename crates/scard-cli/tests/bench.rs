//! `scard bench` on the simulated PIV card: every operation measured, with sane numbers.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::process::{Command, Stdio};

use serde_json::Value;

#[test]
fn bench_of_the_simulated_piv_card() {
    let config = std::env::temp_dir().join(format!("scard-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_scard"))
        .args(["bench", "--sim", "piv", "--ops", "3", "--json"])
        .env("XDG_CONFIG_HOME", &config)
        .env_remove("SCARD_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["ops"], 3);
    assert_eq!(report["card"]["family"], "piv");
    assert_eq!(report["skipped"].as_array().unwrap().len(), 0, "{report}");
    let ops = report["operations"].as_array().unwrap();
    let get = |name: &str| -> &Value {
        ops.iter().find(|o| o["name"] == name).unwrap_or_else(|| panic!("no {name}: {report}"))
    };
    for op in ops {
        let (median, p95) = (op["median_ms"].as_f64().unwrap(), op["p95_ms"].as_f64().unwrap());
        assert!(median >= 0.0 && p95 >= median && p95 < 60_000.0, "{op}");
        assert_eq!(op["runs"], 3, "{op}");
        let apdus = op["apdus"].as_u64().unwrap();
        let (sent, received) =
            (op["bytes_sent"].as_u64().unwrap(), op["bytes_received"].as_u64().unwrap());
        // Every APDU has a 4-byte header and a 2-byte status word.
        assert!(sent >= 4 * apdus && received >= 2 * apdus, "{op}");
        assert!(apdus < 100, "{op}");
    }
    // Connecting identifies the card (SELECT, then the CHUID for the card id).
    assert!(get("connect+identify")["apdus"].as_u64().unwrap() >= 2);
    // Certificates: read from the card cold, from the cache (and the profile) warm.
    let cold = get("enumerate certificates (cold)");
    let cached = get("enumerate certificates (cached)");
    assert!(cold["apdus"].as_u64().unwrap() >= 3, "{cold}");
    assert!(cold["bytes_received"].as_u64().unwrap() > 1000, "{cold}");
    assert!(cached["apdus"].as_u64().unwrap() < cold["apdus"].as_u64().unwrap(), "{cached}");
    // One VERIFY; one GENERAL AUTHENTICATE each (extended length: no chaining).
    assert_eq!(get("verify PIN")["apdus"], 1);
    for name in [
        "sign rsa2048 (pkcs1-sha256)",
        "sign p256 (ecdsa-sha256)",
        "decrypt rsa2048 (pkcs1)",
        "agree p256 (ecdh)",
    ] {
        assert_eq!(get(name)["apdus"], 1, "{name}");
    }
    // RSA 2048: a 256-byte block each way.
    assert!(get("sign rsa2048 (pkcs1-sha256)")["bytes_sent"].as_u64().unwrap() > 256);
    assert!(get("decrypt rsa2048 (pkcs1)")["bytes_received"].as_u64().unwrap() > 256);
    let _ = std::fs::remove_dir_all(&config);
}

#[test]
fn bench_prints_a_table() {
    let out = Command::new(env!("CARGO_BIN_EXE_scard"))
        .args(["bench", "--sim", "gids", "--ops", "1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("MEDIAN ms"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("agree p256 (ecdh)")), "{stdout}");
}
