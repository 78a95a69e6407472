//! Every card command at trace level (`-vvv --trace-apdu`) with known PINs: no PIN, PUK,
//! management key or private-key byte appears in what the commands print (DESIGN.md: secrets
//! are redacted in traces and never logged). The private keys are read from the simulated
//! card's state file after the run.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

const PIN: &str = "123456";
const NEW_PIN: &str = "864213";
const PUK: &str = "12345678";
const MGMT: &str = "010203040506070801020304050607080102030405060708";

/// Runs `scard args` at trace level and returns everything it printed.
fn traced(args: &[&str], reader: &str, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scard"));
    cmd.args(args).args(["--reader", reader, "-vvv", "--trace-apdu"]).stdin(Stdio::null());
    cmd.env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "scard {args:?}: {text}");
    text
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Every form a secret could leak in: as typed, and as hex of its bytes (PIV pads PINs with FF).
fn forms(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_owned(), hex(secret.as_bytes())];
    let mut padded = secret.as_bytes().to_vec();
    padded.resize(8, 0xFF);
    out.push(hex(&padded));
    out
}

/// 12-byte windows of the private values in the state file's keys.
fn private_windows(state: &Path) -> Vec<String> {
    use p256::pkcs8::DecodePrivateKey;
    use rsa::traits::PrivateKeyParts;
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(state).unwrap()).unwrap();
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    for key in v["card"]["keys"].as_object().unwrap().values() {
        let der: Vec<u8> = (0..key["pkcs8"].as_str().unwrap().len() / 2)
            .map(|i| {
                u8::from_str_radix(&key["pkcs8"].as_str().unwrap()[2 * i..2 * i + 2], 16).unwrap()
            })
            .collect();
        match key["alg"].as_str().unwrap() {
            "P256" => {
                secrets.push(p256::SecretKey::from_pkcs8_der(&der).unwrap().to_bytes().to_vec())
            }
            "P384" => {
                secrets.push(p384::SecretKey::from_pkcs8_der(&der).unwrap().to_bytes().to_vec())
            }
            _ => {
                let k = rsa::RsaPrivateKey::from_pkcs8_der(&der).unwrap();
                secrets.push(k.d().to_bytes_be());
                for p in k.primes() {
                    secrets.push(p.to_bytes_be());
                }
            }
        }
    }
    assert!(!secrets.is_empty(), "the card holds keys");
    secrets.iter().flat_map(|s| s.windows(12).map(hex).collect::<Vec<_>>()).collect()
}

#[test]
fn no_secret_in_trace_output() {
    let dir = std::env::temp_dir().join(format!("scard-nosecrets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("piv.json");
    let reader = format!("sim:piv:{}", state.display());
    let p = |name: &str| dir.join(name).display().to_string();
    let env = [("PIN", PIN), ("NEW", NEW_PIN), ("PUK", PUK), ("ADMIN", MGMT)];
    let mut log = String::new();

    log += &traced(&["pin", "verify", "--pin-env", "PIN"], &reader, &env);
    for (container, alg) in [("0", "rsa2048"), ("2", "p256")] {
        let public = p(&format!("pub{container}.pem"));
        log += &traced(
            &[
                "keygen",
                "--container",
                container,
                "--alg",
                alg,
                "--out",
                &public,
                "--admin-env",
                "ADMIN",
            ],
            &reader,
            &env,
        );
        let cert = p(&format!("cert{container}.der"));
        let pem = std::fs::read_to_string(&public).unwrap();
        std::fs::write(&cert, common::issue_certificate(&pem, "no secrets")).unwrap();
        log += &traced(
            &["cert", "import", "--container", container, "--admin-env", "ADMIN", &cert],
            &reader,
            &env,
        );
    }
    std::fs::write(p("data"), b"data").unwrap();
    log += &traced(
        &[
            "sign",
            "--container",
            "0",
            "--alg",
            "rsa-pss-sha256",
            "--in",
            &p("data"),
            "--out",
            &p("sig"),
            "--pin-env",
            "PIN",
        ],
        &reader,
        &env,
    );
    log += &traced(
        &[
            "sign",
            "--container",
            "0",
            "--alg",
            "rsa-pkcs1-sha256",
            "--in",
            &p("data"),
            "--out",
            &p("sig"),
            "--pin-env",
            "PIN",
        ],
        &reader,
        &env,
    );
    // A 256-byte cryptogram made with the card's public key.
    let public = {
        use rsa::pkcs8::DecodePublicKey;
        rsa::RsaPublicKey::from_public_key_pem(&std::fs::read_to_string(p("pub0.pem")).unwrap())
            .unwrap()
    };
    let ct = public.encrypt(&mut rand_core::OsRng, rsa::Pkcs1v15Encrypt, b"plaintext").unwrap();
    std::fs::write(p("ct"), ct).unwrap();
    log += &traced(
        &[
            "decrypt",
            "--container",
            "0",
            "--alg",
            "rsa-pkcs1",
            "--in",
            &p("ct"),
            "--out",
            &p("pt"),
            "--pin-env",
            "PIN",
        ],
        &reader,
        &env,
    );
    let host = p256::SecretKey::random(&mut rand_core::OsRng);
    {
        use p256::pkcs8::EncodePublicKey;
        std::fs::write(
            p("peer.pem"),
            host.public_key().to_public_key_pem(Default::default()).unwrap(),
        )
        .unwrap();
    }
    log += &traced(
        &[
            "agree",
            "--container",
            "2",
            "--peer",
            &p("peer.pem"),
            "--out",
            &p("shared"),
            "--pin-env",
            "PIN",
        ],
        &reader,
        &env,
    );
    log += &traced(&["pin", "change", "--pin-env", "PIN", "--new-pin-env", "NEW"], &reader, &env);
    log +=
        &traced(&["pin", "unblock", "--unblock-env", "PUK", "--new-pin-env", "PIN"], &reader, &env);
    log += &traced(&["info"], &reader, &env);

    // The run really traced APDUs, including the secret-bearing ones, redacted.
    assert!(log.contains("0020008008 [8 byte(s) redacted] (VERIFY)"), "{log}");
    assert!(log.contains("(GENERAL AUTHENTICATE)"), "{log}");
    assert!(log.contains("redacted] (RESET RETRY COUNTER)"), "{log}");

    let plaintext_hex = hex(b"plaintext");
    let shared = std::fs::read(p("shared")).unwrap();
    let mut forbidden: Vec<String> = [PIN, NEW_PIN, PUK].iter().flat_map(|s| forms(s)).collect();
    forbidden.push(MGMT.to_owned());
    forbidden.push(MGMT[..16].to_owned());
    forbidden.push(plaintext_hex);
    forbidden.extend(shared.windows(12).map(hex));
    forbidden.extend(private_windows(&state));
    let upper = log.to_uppercase();
    for secret in &forbidden {
        assert!(!upper.contains(&secret.to_uppercase()), "a secret leaked: {secret}\n{log}");
    }
    println!(
        "{} bytes of trace output checked against {} secret forms",
        log.len(),
        forbidden.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
