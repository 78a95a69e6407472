//! The card commands (`scard info`, `pin`, `keygen`, `cert`, `sign`, `decrypt`, `agree`) run as
//! separate processes against simulated cards whose state persists in a file
//! (`sim:<family>:<state file>`), the way a user runs them one after the other. Signatures,
//! decryptions and shared secrets are checked on the host with the RustCrypto crates.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use rand_core::OsRng;
use serde_json::Value;
use signature::Verifier;

const PIV_MGMT: &str = "010203040506070801020304050607080102030405060708";
const GIDS_ADMIN: &str = "000000000000000000000000000000000000000000000000";

struct Card {
    dir: PathBuf,
    reader: String,
}

impl Card {
    fn new(family: &str, test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("scard-cardcmd-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let reader = format!("sim:{family}:{}", dir.join("card.json").display());
        Self { dir, reader }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Runs `scard <args> --reader R` with secrets in the environment.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_scard"));
        cmd.args(args).args(["--reader", &self.reader]).stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn ok(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.run(args, env);
        assert!(
            out.status.success(),
            "scard {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn info(&self) -> Value {
        serde_json::from_str(&self.ok(&["info", "--json"], &[])).unwrap()
    }
}

impl Drop for Card {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn keygen_and_certify(card: &Card, container: u8, alg: &str, admin: &str) -> String {
    let pem = card.path(&format!("pub{container}.pem"));
    let c = container.to_string();
    let args = [
        "keygen",
        "--container",
        &c,
        "--alg",
        alg,
        "--out",
        pem.to_str().unwrap(),
        "--admin-env",
        "ADMIN",
        "--pin-env",
        "PIN",
    ];
    card.ok(&args, &[("ADMIN", admin), ("PIN", "123456")]);
    let pem_text = std::fs::read_to_string(&pem).unwrap();
    let cert = card.path(&format!("cert{container}.der"));
    std::fs::write(&cert, common::issue_certificate(&pem_text, &format!("container {container}")))
        .unwrap();
    let cert_path = cert.to_str().unwrap();
    let args = [
        "cert",
        "import",
        "--container",
        &c,
        "--admin-env",
        "ADMIN",
        "--pin-env",
        "PIN",
        cert_path,
    ];
    card.ok(&args, &[("ADMIN", admin), ("PIN", "123456")]);
    // Export gives the same bytes back.
    let back = card.path(&format!("back{container}.der"));
    card.ok(&["cert", "export", "--container", &c, back.to_str().unwrap()], &[]);
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&cert).unwrap());
    pem_text
}

fn sign(card: &Card, container: u8, alg: &str, data: &[u8], pin: &str) -> Vec<u8> {
    let input = card.path("data.bin");
    let out = card.path("sig.bin");
    std::fs::write(&input, data).unwrap();
    let c = container.to_string();
    let args = [
        "sign",
        "--container",
        &c,
        "--alg",
        alg,
        "--in",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--pin-env",
        "PIN",
    ];
    card.ok(&args, &[("PIN", pin)]);
    std::fs::read(out).unwrap()
}

fn decrypt(card: &Card, container: u8, alg: &str, cryptogram: &[u8], pin: &str) -> Vec<u8> {
    let input = card.path("ct.bin");
    let out = card.path("pt.bin");
    std::fs::write(&input, cryptogram).unwrap();
    let c = container.to_string();
    let args = [
        "decrypt",
        "--container",
        &c,
        "--alg",
        alg,
        "--in",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--pin-env",
        "PIN",
    ];
    card.ok(&args, &[("PIN", pin)]);
    std::fs::read(out).unwrap()
}

fn verify_ecdsa_p256(pem: &str, data: &[u8], der_sig: &[u8]) {
    use p256::pkcs8::DecodePublicKey;
    let key = p256::ecdsa::VerifyingKey::from_public_key_pem(pem).unwrap();
    let sig = p256::ecdsa::DerSignature::from_bytes(der_sig).unwrap();
    key.verify(data, &sig).unwrap();
}

fn verify_ecdsa_p384(pem: &str, data: &[u8], der_sig: &[u8]) {
    use p384::pkcs8::DecodePublicKey;
    let key = p384::ecdsa::VerifyingKey::from_public_key_pem(pem).unwrap();
    let sig = p384::ecdsa::DerSignature::from_bytes(der_sig).unwrap();
    key.verify(data, &sig).unwrap();
}

fn rsa_key(pem: &str) -> rsa::RsaPublicKey {
    use rsa::pkcs8::DecodePublicKey;
    rsa::RsaPublicKey::from_public_key_pem(pem).unwrap()
}

fn check_rsa(card: &Card, container: u8, pem: &str, pin: &str, pss: bool, oaep: bool) {
    use sha2::Digest;
    let key = rsa_key(pem);
    let data = b"signed by a key that never leaves the card";
    let digest = sha2::Sha256::digest(data);
    let sig = sign(card, container, "rsa-pkcs1-sha256", data, pin);
    key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, &sig).unwrap();
    if pss {
        let sig = sign(card, container, "rsa-pss-sha256", data, pin);
        key.verify(rsa::Pss::new::<sha2::Sha256>(), &digest, &sig).unwrap();
    }
    let ct = key.encrypt(&mut OsRng, rsa::Pkcs1v15Encrypt, b"session key 1").unwrap();
    assert_eq!(decrypt(card, container, "rsa-pkcs1", &ct, pin), b"session key 1");
    if oaep {
        let ct =
            key.encrypt(&mut OsRng, rsa::Oaep::new::<sha2::Sha256>(), b"session key 2").unwrap();
        assert_eq!(decrypt(card, container, "rsa-oaep-sha256", &ct, pin), b"session key 2");
    }
}

fn check_agree(card: &Card, container: u8, pem: &str, pin: &str) {
    use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
    let card_key = p256::PublicKey::from_public_key_pem(pem).unwrap();
    let host = p256::ecdh::EphemeralSecret::random(&mut OsRng);
    let peer = card.path("peer.pem");
    std::fs::write(&peer, host.public_key().to_public_key_pem(Default::default()).unwrap())
        .unwrap();
    let out = card.path("shared.bin");
    let c = container.to_string();
    let args = [
        "agree",
        "--container",
        &c,
        "--peer",
        peer.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--pin-env",
        "PIN",
    ];
    card.ok(&args, &[("PIN", pin)]);
    let expected = host.diffie_hellman(&card_key);
    assert_eq!(std::fs::read(&out).unwrap(), expected.raw_secret_bytes().as_slice());
}

fn container_json(info: &Value, index: u64) -> &Value {
    info["card"]["containers"].as_array().unwrap().iter().find(|c| c["index"] == index).unwrap()
}

#[test]
fn piv_workflow() {
    let card = Card::new("piv", "piv");
    let pem = keygen_and_certify(&card, 0, "p256", PIV_MGMT);
    let data = b"PIV authentication";
    verify_ecdsa_p256(&pem, data, &sign(&card, 0, "ecdsa-sha256", data, "123456"));
    let pem = keygen_and_certify(&card, 2, "rsa2048", PIV_MGMT);
    check_rsa(&card, 2, &pem, "123456", true, true);
    let pem = keygen_and_certify(&card, 1, "p384", PIV_MGMT);
    verify_ecdsa_p384(&pem, data, &sign(&card, 1, "ecdsa-sha384", data, "123456"));
    let pem = keygen_and_certify(&card, 4, "p256", PIV_MGMT);
    check_agree(&card, 4, &pem, "123456");

    let info = card.info();
    assert_eq!(info["card"]["family"], "piv");
    let c0 = container_json(&info, 0);
    assert_eq!(c0["algorithm"], "p256");
    assert_eq!(c0["certificate"]["subject"], "CN=container 0");
    assert_eq!(container_json(&info, 1)["always_authenticate"], true);
    assert_eq!(container_json(&info, 2)["algorithm"], "rsa2048");
    pin_lifecycle(&card, "123456", Some("12345678"));
}

#[test]
fn openpgp_workflow() {
    let card = Card::new("openpgp", "openpgp");
    let pem = keygen_and_certify(&card, 0, "p256", "12345678");
    let data = b"OpenPGP signature";
    verify_ecdsa_p256(&pem, data, &sign(&card, 0, "ecdsa-sha256", data, "123456"));
    let pem = keygen_and_certify(&card, 1, "rsa2048", "12345678");
    let key = rsa_key(&pem);
    let ct = key.encrypt(&mut OsRng, rsa::Pkcs1v15Encrypt, b"gpg session key").unwrap();
    assert_eq!(decrypt(&card, 1, "rsa-pkcs1", &ct, "123456"), b"gpg session key");
    let pem = keygen_and_certify(&card, 2, "rsa2048", "12345678");
    use sha2::Digest;
    let sig = sign(&card, 2, "rsa-pkcs1-sha256", data, "123456");
    rsa_key(&pem)
        .verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &sha2::Sha256::digest(data), &sig)
        .unwrap();
    let info = card.info();
    assert_eq!(info["card"]["family"], "openpgp");
    assert_eq!(container_json(&info, 1)["certificate"]["subject"], "CN=container 1");
    pin_lifecycle(&card, "123456", None);
}

#[test]
fn gids_workflow() {
    let card = Card::new("gids", "gids");
    let pem = keygen_and_certify(&card, 1, "rsa2048", GIDS_ADMIN);
    check_rsa(&card, 1, &pem, "123456", false, false);
    let info = card.info();
    assert_eq!(info["card"]["family"], "gids");
    assert_eq!(container_json(&info, 1)["certificate"]["subject"], "CN=container 1");
    pin_lifecycle(&card, "123456", None);
}

/// Wrong PIN countdown, a PIN refused before it is sent, change, and (with a PUK) block and
/// unblock.
fn pin_lifecycle(card: &Card, pin: &str, puk: Option<&str>) {
    let tries = |card: &Card| card.info()["card"]["pins"][0]["tries_left"].as_u64();
    let before = tries(card);
    let out = card.run(&["pin", "verify", "--pin-env", "PIN"], &[("PIN", "999999")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong PIN 1 (user)") && err.contains("tries left"), "{err}");
    if let Some(n) = before {
        assert_eq!(tries(card), Some(n - 1), "one wrong PIN costs one try");
    }
    // Too short: refused by the stack, no try spent.
    let out = card.run(&["pin", "verify", "--pin-env", "PIN"], &[("PIN", "12")]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    if let Some(n) = before {
        assert_eq!(tries(card), Some(n - 1), "a PIN of the wrong length costs no try");
    }
    card.ok(&["pin", "verify", "--pin-env", "PIN"], &[("PIN", pin)]);
    assert_eq!(tries(card), before, "a right PIN resets the counter");
    card.ok(
        &["pin", "change", "--pin-env", "OLD", "--new-pin-env", "NEW"],
        &[("OLD", pin), ("NEW", "654321")],
    );
    card.ok(&["pin", "verify", "--pin-env", "PIN"], &[("PIN", "654321")]);
    if let Some(puk) = puk {
        while tries(card).unwrap() > 0 {
            let out = card.run(&["pin", "verify", "--pin-env", "PIN"], &[("PIN", "999999")]);
            assert_eq!(out.status.code(), Some(1));
        }
        let out = card.run(&["pin", "verify", "--pin-env", "PIN"], &[("PIN", "654321")]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("blocked"));
        card.ok(
            &["pin", "unblock", "--unblock-env", "PUK", "--new-pin-env", "NEW"],
            &[("PUK", puk), ("NEW", pin)],
        );
        card.ok(&["pin", "verify", "--pin-env", "PIN"], &[("PIN", pin)]);
    }
}

#[test]
fn secrets_never_come_from_the_command_line_and_bad_input_is_named() {
    let card = Card::new("piv", "badinput");
    // No such variable.
    let out = card.run(&["pin", "verify", "--pin-env", "SCARD_NO_SUCH_VAR"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SCARD_NO_SUCH_VAR is not set"));
    // PIN from standard input (not a terminal).
    let mut child = Command::new(env!("CARGO_BIN_EXE_scard"))
        .args(["pin", "verify", "--reader", &card.reader])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"123456\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Unknown algorithm, missing container, certificate that is not one.
    let out = card.run(&["keygen", "--container", "0", "--alg", "rsa1000x"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let out = card.run(&["cert", "export", "--container", "99", "/dev/null"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let junk = card.path("junk.der");
    std::fs::write(&junk, b"not a certificate").unwrap();
    let out = card.run(
        &["cert", "import", "--container", "0", "--admin-env", "A", junk.to_str().unwrap()],
        &[("A", PIV_MGMT)],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a DER or PEM X.509 certificate"));
    // Signing with an empty container fails before any PIN is asked for.
    let data = card.path("d");
    std::fs::write(&data, b"x").unwrap();
    let out = card.run(
        &[
            "sign",
            "--container",
            "0",
            "--alg",
            "ecdsa-sha256",
            "--in",
            data.to_str().unwrap(),
            "--out",
            "/dev/null",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("container 0 has no key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
