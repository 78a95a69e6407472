//! `scard sim piv` through a real pcscd and vsmartcard's vpcd, judged by OpenSC 0.23 (its PIV
//! driver card-piv.c and pkcs15-piv.c: `opensc-tool`, `pkcs11-tool`, `piv-tool`,
//! `pkcs15-tool`) and yubico-piv-tool 2.2:
//! - `pkcs11-tool -L -O` on a new card;
//! - on-card key generation with `yubico-piv-tool -a generate` (RSA 2048 in 9A, P-256 in 9C),
//!   a certificate for each public key made with `openssl x509 -new -force_pubkey` (signed by
//!   a throwaway host key: yubico-piv-tool 2.2's selfsign-certificate is broken with OpenSSL 3,
//!   Yubico issue #388), imported with `yubico-piv-tool -a import-certificate`;
//! - `yubico-piv-tool -a status`, `pkcs11-tool --login --sign` with RSA 2048 and P-256, each
//!   signature verified with `openssl dgst -verify` against the certificate's public key;
//! - a certificate imported with OpenSC's `piv-tool -C` (its `-G` generates the key but cannot
//!   write the public key out with OpenSSL 3), RSA decryption with a retired key (82) and ECDH
//!   through PKCS#11, both checked against OpenSSL, and the keys surviving a restart;
//! - PIN change, blocking and unblocking with the PUK through yubico-piv-tool.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::Command;

use scard_tests::interop::{OPENSC_PKCS11, Sandbox, sandbox};

const PIN: &str = "123456";
const PUK: &str = "12345678";
/// The default 3DES management key, as piv-tool reads it from `PIV_EXT_AUTH_KEY`.
const ADMIN_KEY_FILE: &str =
    "01:02:03:04:05:06:07:08:01:02:03:04:05:06:07:08:01:02:03:04:05:06:07:08";

fn seeded(sb: &mut Sandbox, extra: &[&OsStr]) {
    let mut args = vec![OsStr::new("--seed"), OsStr::new("1")];
    args.extend_from_slice(extra);
    sb.attach("piv", 0, &args);
}

/// yubico-piv-tool on vpcd slot 0 (its default reader filter is "Yubikey").
fn ykpiv(args: &[&str]) -> Command {
    let mut cmd = Command::new("yubico-piv-tool");
    cmd.args(["--reader", Sandbox::reader(0)]).args(args);
    cmd
}

fn p11(args: &[&str]) -> Command {
    let mut cmd = Command::new("pkcs11-tool");
    cmd.args(["--module", OPENSC_PKCS11]).args(args);
    cmd
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// Generates a key in `slot` with yubico-piv-tool (public key to `pub<slot>.pem`) and makes a
/// certificate `cert<slot>.pem` for it, signed by `ca.key`.
fn generate_with_certificate(sb: &Sandbox, slot: &str, algorithm: &str) {
    let dir = sb.dir();
    let public = path(dir, &format!("pub{slot}.pem"));
    sb.ok(&mut ykpiv(&["-a", "generate", "-s", slot, "-A", algorithm, "-o", &public]));
    assert!(fs::read_to_string(&public).unwrap().contains("BEGIN PUBLIC KEY"));
    let ca = path(dir, "ca.key");
    if !dir.join("ca.key").exists() {
        sb.ok(Command::new("openssl").args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &ca,
        ]));
    }
    sb.ok(Command::new("openssl").args([
        "x509",
        "-new",
        "-subj",
        &format!("/CN=scard sim {slot}/"),
        "-force_pubkey",
        &public,
        "-key",
        &ca,
        "-days",
        "365",
        "-out",
        &path(dir, &format!("cert{slot}.pem")),
    ]));
}

/// Signs `data` through PKCS#11 with the key of `id` and verifies it with OpenSSL against the
/// public key of `cert<slot>.pem`.
fn sign_and_verify(sb: &Sandbox, id: &str, slot: &str, mechanism: &str, digest: &str) {
    let dir = sb.dir();
    let data = path(dir, "data");
    fs::write(&data, b"signed by the simulated PIV card\n").unwrap();
    let sig = path(dir, &format!("sig{slot}"));
    let before = sb.apdu_count();
    sb.ok(&mut p11(&[
        "--login",
        "--pin",
        PIN,
        "--sign",
        "--id",
        id,
        "-m",
        mechanism,
        "--signature-format",
        "openssl",
        "-i",
        &data,
        "-o",
        &sig,
    ]));
    println!("pkcs11-tool --login --sign {mechanism} ({slot}): {} APDUs", sb.apdu_count() - before);
    let public = path(dir, &format!("certpub{slot}.pem"));
    let key = sb.ok(Command::new("openssl").args([
        "x509",
        "-in",
        &path(dir, &format!("cert{slot}.pem")),
        "-noout",
        "-pubkey",
    ]));
    fs::write(&public, key).unwrap();
    let verified = sb.ok(Command::new("openssl").args([
        "dgst",
        digest,
        "-verify",
        &public,
        "-signature",
        &sig,
        &data,
    ]));
    assert!(verified.contains("Verified OK"), "{verified}");
}

#[test]
fn piv_pkcs11_lists_a_new_card() {
    let Some(mut sb) = sandbox("piv_pkcs11_lists_a_new_card", &["pkcs11-tool"]) else { return };
    seeded(&mut sb, &[]);
    let before = sb.apdu_count();
    let name = sb.ok(Command::new("opensc-tool").args(["--reader", Sandbox::reader(0), "--name"]));
    assert!(name.contains("Personal Identity Verification Card"), "{name}");
    println!("opensc-tool -n: {} APDUs", sb.apdu_count() - before);
    let before = sb.apdu_count();
    let listed = sb.ok(&mut p11(&["-L", "-O"]));
    println!("pkcs11-tool -L -O: {} APDUs", sb.apdu_count() - before);
    for expected in [
        "Virtual PCD 00 00",
        "token label        : PIV_II",
        "PIN initialized",
        "Card Capability Container",
        "Card Holder Unique Identifier",
        "Discovery Object",
        "Key History Object",
    ] {
        assert!(listed.contains(expected), "pkcs11-tool -L -O lacks {expected:?}:\n{listed}");
    }
    let before = sb.apdu_count();
    sb.ok(&mut p11(&["-O"]));
    println!("pkcs11-tool -O: {} APDUs", sb.apdu_count() - before);
}

#[test]
fn piv_generate_import_status_and_sign_verified_by_openssl() {
    let Some(mut sb) = sandbox(
        "piv_generate_import_status_and_sign_verified_by_openssl",
        &["yubico-piv-tool", "pkcs11-tool", "openssl"],
    ) else {
        return;
    };
    seeded(&mut sb, &[]);
    let dir = sb.dir().to_path_buf();
    // RSA 2048 in 9A (PIV Authentication), P-256 in 9C (Digital Signature).
    for (slot, algorithm) in [("9a", "RSA2048"), ("9c", "ECCP256")] {
        generate_with_certificate(&sb, slot, algorithm);
        let cert = path(&dir, &format!("cert{slot}.pem"));
        let out = sb.run(&mut ykpiv(&["-a", "import-certificate", "-s", slot, "-i", &cert]));
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("Successfully imported"), "{text}");
    }
    let out = sb.run(&mut ykpiv(&["-a", "verify-pin", "-P", PIN]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let before = sb.apdu_count();
    let status = sb.ok(&mut ykpiv(&["-a", "status"]));
    println!("yubico-piv-tool -a status: {} APDUs", sb.apdu_count() - before);
    for expected in [
        "CHUID:\t3019d4e739da739ced39ce739d836858210842108421c84210c3eb3410",
        "CCC:\tf015a000000116ff02",
        "Slot 9a:",
        "Algorithm:\tRSA2048",
        "Subject DN:\tCN=scard sim 9a",
        "Slot 9c:",
        "Algorithm:\tECCP256",
        "Subject DN:\tCN=scard sim 9c",
        "PIN tries left:\t3",
    ] {
        assert!(status.contains(expected), "status lacks {expected:?}:\n{status}");
    }
    let before = sb.apdu_count();
    let objects = sb.ok(&mut p11(&["-O"]));
    println!("pkcs11-tool -O (two keys and certificates): {} APDUs", sb.apdu_count() - before);
    assert!(objects.contains("Public Key Object; RSA 2048 bits"), "{objects}");
    assert!(objects.contains("EC_POINT 256 bits"), "{objects}");
    // 9A: PIN once; 9C: PIN verified right before the signature (pkcs11-tool logs in again
    // for CKA_ALWAYS_AUTHENTICATE).
    sign_and_verify(&sb, "01", "9a", "SHA256-RSA-PKCS", "-sha256");
    sign_and_verify(&sb, "02", "9c", "ECDSA-SHA256", "-sha256");
}

#[test]
fn piv_tool_certificate_decrypt_derive_and_restart() {
    let Some(mut sb) = sandbox(
        "piv_tool_certificate_decrypt_derive_and_restart",
        &["yubico-piv-tool", "pkcs11-tool", "piv-tool", "openssl"],
    ) else {
        return;
    };
    let state = sb.dir().join("piv.json");
    seeded(&mut sb, &[OsStr::new("--state"), state.as_os_str()]);
    let dir = sb.dir().to_path_buf();
    // 9D (Key Management) P-256, its certificate written by OpenSC's piv-tool with the
    // management key (mutual authentication, 3DES).
    generate_with_certificate(&sb, "9d", "ECCP256");
    let admin_key = path(&dir, "admin.key");
    fs::write(&admin_key, ADMIN_KEY_FILE).unwrap();
    let cert9d = path(&dir, "cert9d.pem");
    // piv-tool exits non-zero even when the certificate was written: judge by the card.
    let out = sb.run(
        Command::new("piv-tool")
            .args(["--reader", "0", "-A", "M:9B:03", "-C", "9D", "-i", &cert9d])
            .env("PIV_EXT_AUTH_KEY", &admin_key),
    );
    println!("piv-tool -C 9D: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let status = sb.ok(&mut ykpiv(&["-a", "status"]));
    assert!(status.contains("Subject DN:\tCN=scard sim 9d"), "{status}");
    // Retired key 82, RSA 2048: OpenSC finds it through the Key History object.
    generate_with_certificate(&sb, "82", "RSA2048");
    let cert82 = path(&dir, "cert82.pem");
    sb.ok(&mut ykpiv(&["-a", "import-certificate", "-s", "82", "-i", &cert82]));
    let objects = sb.ok(&mut p11(&["-O"]));
    assert!(objects.contains("Retired KEY MAN 1"), "{objects}");

    // RSA PKCS#1 v1.5 decryption with key 82 (PKCS#11 id 05).
    let plain = path(&dir, "plain");
    fs::write(&plain, b"a secret for the card").unwrap();
    let encrypted = path(&dir, "encrypted");
    sb.ok(Command::new("openssl").args([
        "pkeyutl",
        "-encrypt",
        "-pubin",
        "-inkey",
        &path(&dir, "pub82.pem"),
        "-in",
        &plain,
        "-out",
        &encrypted,
    ]));
    let decrypted = path(&dir, "decrypted");
    sb.ok(&mut p11(&[
        "--login",
        "--pin",
        PIN,
        "--decrypt",
        "--id",
        "05",
        "-m",
        "RSA-PKCS",
        "-i",
        &encrypted,
        "-o",
        &decrypted,
    ]));
    assert_eq!(fs::read(&decrypted).unwrap(), b"a secret for the card");

    // ECDH with key 9D (PKCS#11 id 03) against a host key.
    let peer = path(&dir, "peer.key");
    sb.ok(Command::new("openssl").args([
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        &peer,
    ]));
    let peer_der = path(&dir, "peer.der");
    sb.ok(Command::new("openssl")
        .args(["ec", "-in", &peer, "-pubout", "-outform", "DER", "-out", &peer_der]));
    let card_secret = path(&dir, "shared.card");
    sb.ok(&mut p11(&[
        "--login",
        "--pin",
        PIN,
        "--derive",
        "-m",
        "ECDH1-DERIVE",
        "--id",
        "03",
        "-i",
        &peer_der,
        "-o",
        &card_secret,
    ]));
    let host_secret = path(&dir, "shared.host");
    sb.ok(Command::new("openssl").args([
        "pkeyutl",
        "-derive",
        "-inkey",
        &peer,
        "-peerkey",
        &path(&dir, "pub9d.pem"),
        "-out",
        &host_secret,
    ]));
    let shared = fs::read(&card_secret).unwrap();
    assert_eq!(shared.len(), 32);
    assert_eq!(shared, fs::read(&host_secret).unwrap());

    // The keys and certificates survive a restart from the state file.
    let printed = sb.detach(0);
    assert!(printed.contains("state saved"), "{printed}");
    sb.attach("piv", 0, &[OsStr::new("--state"), state.as_os_str()]);
    let again = path(&dir, "decrypted.again");
    sb.ok(&mut p11(&[
        "--login",
        "--pin",
        PIN,
        "--decrypt",
        "--id",
        "05",
        "-m",
        "RSA-PKCS",
        "-i",
        &encrypted,
        "-o",
        &again,
    ]));
    assert_eq!(fs::read(&again).unwrap(), b"a secret for the card");
}

#[test]
fn piv_pin_change_block_and_unblock_with_yubico_piv_tool() {
    let Some(mut sb) =
        sandbox("piv_pin_change_block_and_unblock_with_yubico_piv_tool", &["yubico-piv-tool"])
    else {
        return;
    };
    seeded(&mut sb, &[]);
    let both = |cmd: &mut Command| {
        let out = sb.run(cmd);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("$ {cmd:?}\n{text}");
        (out.status.success(), text)
    };
    let (ok, text) = both(&mut ykpiv(&["-a", "change-pin", "-P", PIN, "-N", "654321"]));
    assert!(ok && text.contains("Successfully changed the pin code"), "{text}");
    let (ok, text) = both(&mut ykpiv(&["-a", "verify-pin", "-P", PIN]));
    assert!(!ok && text.contains("2 tries left"), "{text}");
    let (ok, text) = both(&mut ykpiv(&["-a", "verify-pin", "-P", PIN]));
    assert!(!ok && text.contains("1 tries left"), "{text}");
    let (ok, text) = both(&mut ykpiv(&["-a", "verify-pin", "-P", PIN]));
    assert!(!ok && text.contains("blocked"), "{text}");
    let (ok, text) = both(&mut ykpiv(&["-a", "verify-pin", "-P", "654321"]));
    assert!(!ok && text.contains("blocked"), "{text}");
    let status = sb.ok(&mut ykpiv(&["-a", "status"]));
    assert!(status.contains("PIN tries left:\t0"), "{status}");
    let (ok, text) = both(&mut ykpiv(&["-a", "unblock-pin", "-P", PUK, "-N", "111111"]));
    assert!(ok && text.contains("Successfully unblocked"), "{text}");
    let (ok, text) = both(&mut ykpiv(&["-a", "verify-pin", "-P", "111111"]));
    assert!(ok && text.contains("Successfully verified PIN"), "{text}");
    let (ok, text) = both(&mut ykpiv(&["-a", "change-puk", "-P", PUK, "-N", "87654321"]));
    assert!(ok && text.contains("Successfully changed the puk code"), "{text}");
}
