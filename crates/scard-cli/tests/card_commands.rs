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

/// Runs a command with `--json`: standard output is one JSON object, success or not.
fn json(card: &Card, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, Value) {
    let mut all = args.to_vec();
    all.push("--json");
    let out = card.run(&all, env);
    let text = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "scard {args:?} --json: not JSON ({e}): {text}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), value)
}

/// Every card command's `--json` report (PIV, the family with a PUK and every key type): what
/// it says is checked against the card (`info`) and the host's crypto, errors are JSON too,
/// and no secret goes into a report.
#[test]
fn json_reports_of_the_card_commands() {
    use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
    let card = Card::new("piv", "json");
    let admin = [("ADMIN", PIV_MGMT), ("PIN", "123456")];

    // keygen: the public key is in the report.
    let (code, key) = json(
        &card,
        &["keygen", "--container", "0", "--alg", "p256", "--admin-env", "ADMIN"],
        &admin,
    );
    assert_eq!(code, Some(0), "{key}");
    assert_eq!((key["container"].as_u64(), key["algorithm"].as_str()), (Some(0), Some("p256")));
    assert_eq!(key["out"], Value::Null);
    let pem = key["public_key"].as_str().unwrap().to_owned();
    let public = p256::PublicKey::from_public_key_pem(&pem).unwrap();

    // cert import / export (to a file and, as PEM inside the report, to standard output).
    let cert = card.path("cert0.der");
    std::fs::write(&cert, common::issue_certificate(&pem, "json user")).unwrap();
    let cert_path = cert.to_str().unwrap();
    let (code, imported) = json(
        &card,
        &["cert", "import", "--container", "0", "--admin-env", "ADMIN", cert_path],
        &admin,
    );
    assert_eq!(code, Some(0), "{imported}");
    assert_eq!(imported["action"], "import");
    assert_eq!(imported["bytes"].as_u64(), Some(std::fs::metadata(&cert).unwrap().len()));
    assert_eq!(imported["certificate"]["subject"], "CN=json user");
    let back = card.path("back.der");
    let (code, exported) =
        json(&card, &["cert", "export", "--container", "0", back.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{exported}");
    assert_eq!(exported["out"], back.to_str().unwrap());
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&cert).unwrap());
    let (_, exported) = json(&card, &["cert", "export", "--container", "0", "-"], &[]);
    let pem_cert = exported["pem"].as_str().unwrap();
    assert!(pem_cert.starts_with("-----BEGIN CERTIFICATE-----"), "{exported}");
    assert_eq!(exported["out"], Value::Null);

    // sign to standard output: the signature is in the report, and verifies.
    let data = b"signed for a script";
    let input = card.path("data.bin");
    std::fs::write(&input, data).unwrap();
    let (code, signed) = json(
        &card,
        &[
            "sign",
            "--container",
            "0",
            "--alg",
            "ecdsa-sha256",
            "--in",
            input.to_str().unwrap(),
            "--out",
            "-",
            "--pin-env",
            "PIN",
        ],
        &admin,
    );
    assert_eq!(code, Some(0), "{signed}");
    assert_eq!(
        (signed["algorithm"].as_str(), signed["format"].as_str()),
        (Some("ecdsa-sha256"), Some("der"))
    );
    let sig = scard_iso7816_hex(signed["signature"].as_str().unwrap());
    assert_eq!(signed["bytes"].as_u64(), Some(sig.len() as u64));
    let sig = p256::ecdsa::Signature::from_der(&sig).unwrap();
    p256::ecdsa::VerifyingKey::from(&public).verify(data, &sig).unwrap();

    // agree: the report says where the secret went and its length, never the secret.
    let host = p256::ecdh::EphemeralSecret::random(&mut OsRng);
    let peer = card.path("peer.pem");
    std::fs::write(&peer, host.public_key().to_public_key_pem(Default::default()).unwrap())
        .unwrap();
    // PIV: ECDH needs a key management key (9D, container 2), visible to the next process
    // once its certificate is on the card (PIV has no public key read).
    let pem2 = json_key_with_certificate(&card, 2, "p256", "json key exchange");
    let pem2 = pem2.as_str();
    let shared = card.path("shared.bin");
    let agree = ["agree", "--container", "2", "--peer", peer.to_str().unwrap(), "--pin-env", "PIN"];
    let mut with_file = agree.to_vec();
    with_file.extend(["--out", shared.to_str().unwrap()]);
    let (code, report) = json(&card, &with_file, &admin);
    assert_eq!(code, Some(0), "{report}");
    let secret = std::fs::read(&shared).unwrap();
    let expected = host.diffie_hellman(&p256::PublicKey::from_public_key_pem(pem2).unwrap());
    assert_eq!(secret, expected.raw_secret_bytes().as_slice());
    assert_eq!(report["bytes"].as_u64(), Some(secret.len() as u64));
    assert_eq!(report["algorithm"], "ecdh-p256");
    assert_eq!(report["out"], shared.to_str().unwrap());
    let hex = secret.iter().map(|b| format!("{b:02X}")).collect::<String>();
    assert!(!report.to_string().contains(&hex), "the shared secret is in the report");
    // decrypt (RSA in the first retired key management slot 82, container 4): the plaintext
    // goes to the file only.
    let pem4 = json_key_with_certificate(&card, 4, "rsa2048", "json decrypt");
    let pem4 = pem4.as_str();
    let ct = rsa_key(pem4).encrypt(&mut OsRng, rsa::Pkcs1v15Encrypt, b"json plaintext").unwrap();
    let ct_path = card.path("ct.bin");
    std::fs::write(&ct_path, ct).unwrap();
    let plain = card.path("plain.bin");
    let (code, report) = json(
        &card,
        &[
            "decrypt",
            "--container",
            "4",
            "--alg",
            "rsa-pkcs1",
            "--in",
            ct_path.to_str().unwrap(),
            "--out",
            plain.to_str().unwrap(),
            "--pin-env",
            "PIN",
        ],
        &admin,
    );
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(std::fs::read(&plain).unwrap(), b"json plaintext");
    assert_eq!(
        (report["bytes"].as_u64(), report["algorithm"].as_str()),
        (Some(14), Some("rsa-pkcs1"))
    );
    assert!(!report.to_string().contains("json plaintext"), "the plaintext is in the report");

    // A secret is never asked for on standard output with --json.
    let mut to_stdout = agree.to_vec();
    to_stdout.extend(["--out", "-"]);
    let (code, report) = json(&card, &to_stdout, &admin);
    assert_eq!(code, Some(2), "{report}");
    assert!(report["error"].as_str().unwrap().contains("secret"), "{report}");
    assert_eq!(report["exit_status"].as_u64(), Some(2));

    // pin: a wrong PIN is a report with the tries left and exit status 1.
    let verify = ["pin", "verify", "--pin-env", "PIN"];
    let (code, wrong) = json(&card, &verify, &[("PIN", "999999")]);
    assert_eq!(code, Some(1), "{wrong}");
    assert_eq!((wrong["ok"].as_bool(), wrong["tries_left"].as_u64()), (Some(false), Some(2)));
    assert_eq!(wrong["name"], "PIV Card Application PIN");
    assert!(wrong["error"].as_str().unwrap().contains("wrong PIN"), "{wrong}");
    assert!(!wrong.to_string().contains("999999"), "the PIN is in the report");
    let (code, right) = json(&card, &verify, &[("PIN", "123456")]);
    assert_eq!(
        (code, right["ok"].as_bool(), right["action"].as_str()),
        (Some(0), Some(true), Some("verify"))
    );
    assert_eq!(card.info()["card"]["pins"][0]["tries_left"].as_u64(), Some(3));
    for _ in 0..3 {
        json(&card, &verify, &[("PIN", "999999")]);
    }
    let (code, blocked) = json(&card, &verify, &[("PIN", "123456")]);
    assert_eq!(
        (code, blocked["blocked"].as_bool(), blocked["tries_left"].as_u64()),
        (Some(1), Some(true), Some(0))
    );
    let (code, unblocked) = json(
        &card,
        &["pin", "unblock", "--unblock-env", "PUK", "--new-pin-env", "NEW"],
        &[("PUK", "12345678"), ("NEW", "24681357")],
    );
    assert_eq!(
        (code, unblocked["action"].as_str(), unblocked["ok"].as_bool()),
        (Some(0), Some("unblock"), Some(true))
    );
    let (code, changed) = json(
        &card,
        &["pin", "change", "--pin-env", "OLD", "--new-pin-env", "NEW"],
        &[("OLD", "24681357"), ("NEW", "123456")],
    );
    assert_eq!((code, changed["action"].as_str()), (Some(0), Some("change")), "{changed}");
    assert!(!changed.to_string().contains("24681357"), "a PIN is in the report");

    // cert delete, then export says there is none, as JSON with exit status 1.
    let (code, deleted) =
        json(&card, &["cert", "delete", "--container", "0", "--admin-env", "ADMIN"], &admin);
    assert_eq!((code, deleted["action"].as_str()), (Some(0), Some("delete")), "{deleted}");
    let (code, none) = json(&card, &["cert", "export", "--container", "0", "-"], &[]);
    assert_eq!(code, Some(1));
    assert_eq!(none["error"], "container 0 has no certificate");
    // Bad input is JSON with exit status 2.
    let (code, bad) = json(&card, &["keygen", "--container", "0", "--alg", "rsa1000x"], &[]);
    assert_eq!((code, bad["exit_status"].as_u64()), (Some(2), Some(2)), "{bad}");
}

/// `keygen --json` then `cert import --json` for the new key (PIV: a key is visible to the
/// next process through its certificate); the public key as PEM.
fn json_key_with_certificate(card: &Card, container: u8, alg: &str, cn: &str) -> String {
    let admin = [("ADMIN", PIV_MGMT)];
    let c = container.to_string();
    let (code, key) =
        json(card, &["keygen", "--container", &c, "--alg", alg, "--admin-env", "ADMIN"], &admin);
    assert_eq!(code, Some(0), "{key}");
    let pem = key["public_key"].as_str().unwrap().to_owned();
    let cert = card.path(&format!("cert{container}.der"));
    std::fs::write(&cert, common::issue_certificate(&pem, cn)).unwrap();
    let import = ["cert", "import", "--container", &c, "--admin-env", "ADMIN"];
    let (code, report) = json(card, &[&import[..], &[cert.to_str().unwrap()]].concat(), &admin);
    assert_eq!(code, Some(0), "{report}");
    pem
}

/// Upper-case hex (as the reports write it) to bytes.
fn scard_iso7816_hex(text: &str) -> Vec<u8> {
    (0..text.len() / 2).map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap()).collect()
}
