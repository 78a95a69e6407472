//! `scard sim openpgp` through a real pcscd and vsmartcard's vpcd, judged by GnuPG 2.2
//! (scdaemon's app-openpgp.c over PC/SC) and OpenSC 0.23 (card-openpgp.c, pkcs15-openpgp.c):
//! - `gpg --card-status` on a new card;
//! - on-card generation of three RSA 2048 keys with `gpg --edit-card` (`admin`, `generate`),
//!   scripted through `--command-fd`/`--status-fd`; the PINs come from a scripted pinentry
//!   that answers the Admin PIN when the prompt asks for it and the user PIN otherwise;
//! - `gpg --detach-sign` then `gpg --verify`, `gpg -e` then `gpg -d`;
//! - NIST P-256 keys chosen with `key-attr` and generated the same way, ECDSA signature and
//!   ECDH decryption through gpg;
//! - through OpenSC: `opensc-tool -n`, `pkcs11-tool -L -O`, `pkcs11-tool --login --sign` with
//!   the signature key (checked by `openssl dgst -verify`), `--decrypt` of an OpenSSL
//!   cryptogram, and a signature with the authentication key (INTERNAL AUTHENTICATE).
//!
//! Every client step prints how many APDUs it cost.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::Command;

use scard_tests::gnupg;
use scard_tests::interop::{OPENSC_PKCS11, Sandbox, sandbox};

const USER_PIN: &str = "123456";
const ADMIN_PIN: &str = "12345678";
const UID_NAME: &str = "Sim Card User";
const UID_EMAIL: &str = "sim@example.invalid";

/// A command from whitespace-separated words.
fn words(line: &str) -> Command {
    let mut words = line.split_whitespace();
    let mut cmd = Command::new(words.next().unwrap());
    cmd.args(words);
    cmd
}

/// pkcs11-tool with OpenSC's module and the given options.
fn p11(options: &str) -> Command {
    words(&format!("pkcs11-tool --module {OPENSC_PKCS11} {options}"))
}

/// Checks with OpenSSL a SHA-256 RSA PKCS#1 v1.5 signature of the file `data` in the sandbox.
fn openssl_verify(sb: &Sandbox, public_der: &str, signature: &str) {
    let dir = sb.dir();
    let out = sb.ok(words("openssl dgst -sha256 -keyform DER -verify").args([
        &path(dir, public_der),
        "-signature",
        &path(dir, signature),
        &path(dir, "data"),
    ]));
    assert!(out.contains("Verified OK"), "{out}");
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// The answers `generate` needs besides the PINs: no off-card backup, no expiry, the user ID.
const GENERATE_ANSWERS: [(&str, &str); 6] = [
    ("cardedit.genkeys.backup_enc", "n"),
    ("cardedit.genkeys.replace_keys", "y"),
    ("keygen.valid", "0"),
    ("keygen.name", UID_NAME),
    ("keygen.email", UID_EMAIL),
    ("keygen.comment", ""),
];

/// On-card generation of the three keys with `gpg --edit-card`; returns the APDUs it took.
fn generate_with_gpg(sb: &Sandbox, home: &Path) -> usize {
    let before = sb.apdu_count();
    let status = gnupg::edit_card(home, &[], &["admin", "generate", "quit"], &GENERATE_ANSWERS);
    assert!(status.contains("KEY_CREATED B "), "{status}");
    sb.apdu_count() - before
}

/// gpg --detach-sign, --verify, -e, -d; returns the APDUs of the signature and decryption.
fn sign_verify_encrypt_decrypt(sb: &Sandbox, home: &Path) -> (usize, usize) {
    let dir = sb.dir();
    let message = format!("hello from the simulated OpenPGP card in {}\n", dir.display());
    fs::write(dir.join("msg"), &message).unwrap();
    let (msg, sig, enc) = (path(dir, "msg"), path(dir, "msg.sig"), path(dir, "msg.gpg"));
    let _ = fs::remove_file(&sig);
    let _ = fs::remove_file(&enc);
    let before = sb.apdu_count();
    sb.ok(&mut gnupg::gpg(home, &["--batch", "--detach-sign", "-o", &sig, &msg]));
    let signed = sb.apdu_count() - before;
    let verified = sb.run(&mut gnupg::gpg(home, &["--verify", &sig, &msg]));
    let text = String::from_utf8_lossy(&verified.stderr);
    println!("$ gpg --verify\n{text}");
    assert!(verified.status.success() && text.contains("Good signature"), "{text}");
    let encrypt = ["--batch", "--trust-model", "always", "-e", "-r", UID_EMAIL, "-o", &enc, &msg];
    sb.ok(&mut gnupg::gpg(home, &encrypt));
    let before = sb.apdu_count();
    let plain = sb.ok(&mut gnupg::gpg(home, &["--batch", "-d", &enc]));
    assert_eq!(plain, message);
    (signed, sb.apdu_count() - before)
}

#[test]
fn openpgp_gnupg_card_status_generate_sign_encrypt() {
    let Some(mut sb) =
        sandbox("openpgp_gnupg_card_status_generate_sign_encrypt", &["gpg", "gpgconf", "bash"])
    else {
        return;
    };
    sb.attach("openpgp", 0, &[OsStr::new("--seed"), OsStr::new("1")]);
    let home = gnupg::home(&sb, USER_PIN, ADMIN_PIN);

    let before = sb.apdu_count();
    let status = sb.ok(&mut gnupg::gpg(&home, &["--card-status"]));
    let card_status_apdus = sb.apdu_count() - before;
    for expected in [
        "Application type .: OpenPGP",
        "Version ..........: 3.4",
        "Manufacturer .....: test card",
        "Key attributes ...: rsa2048 rsa2048 rsa2048",
        "PIN retry counter : 3 0 3",
        "Signature key ....: [none]",
    ] {
        assert!(status.contains(expected), "{expected:?} not in\n{status}");
    }

    let generate_apdus = generate_with_gpg(&sb, &home);
    let status = sb.ok(&mut gnupg::gpg(&home, &["--card-status"]));
    assert!(!status.contains("[none]"), "{status}");
    assert!(status.contains("rsa2048/") && status.contains(UID_EMAIL), "{status}");
    let (sign_apdus, decrypt_apdus) = sign_verify_encrypt_decrypt(&sb, &home);
    // Once warm (application selected, data cached), a signature is GET DATA 7A and C4,
    // VERIFY 81, PSO:CDS.
    let (warm_sign_apdus, _) = sign_verify_encrypt_decrypt(&sb, &home);
    assert_eq!(warm_sign_apdus, 4);
    let status = sb.ok(&mut gnupg::gpg(&home, &["--card-status"]));
    assert!(status.contains("Signature counter : 6"), "{status}");

    // NIST P-256 for all three keys (gpg lists that curve with --expert only), generated,
    // then ECDSA and ECDH through gpg.
    let curve = [("cardedit.genkeys.algo", "2"), ("keygen.curve", "3")];
    let answers: Vec<(&str, &str)> = curve.iter().chain(&GENERATE_ANSWERS).copied().collect();
    let commands = ["admin", "key-attr", "generate", "quit"];
    let status = gnupg::edit_card(&home, &["--expert"], &commands, &answers);
    assert!(status.contains("KEY_CREATED B "), "{status}");
    let status = sb.ok(&mut gnupg::gpg(&home, &["--card-status"]));
    assert!(status.contains("Key attributes ...: nistp256 nistp256 nistp256"), "{status}");
    sign_verify_encrypt_decrypt(&sb, &home);
    let _ = sb.run(Command::new("gpgconf").env("GNUPGHOME", &home).args(["--kill", "all"]));
    println!(
        "APDUs: gpg --card-status {card_status_apdus}, generate (3 x RSA 2048) {generate_apdus}, \
         first sign {sign_apdus}, warm sign {warm_sign_apdus}, decrypt {decrypt_apdus}"
    );
}

#[test]
fn openpgp_opensc_lists_signs_and_decrypts() {
    let Some(mut sb) = sandbox(
        "openpgp_opensc_lists_signs_and_decrypts",
        &["gpg", "gpgconf", "bash", "pkcs11-tool", "openssl"],
    ) else {
        return;
    };
    sb.attach("openpgp", 0, &[OsStr::new("--seed"), OsStr::new("2")]);
    let reader = Sandbox::reader(0);
    let before = sb.apdu_count();
    let name = sb.ok(Command::new("opensc-tool").args(["--reader", reader, "--name"]));
    let name_apdus = sb.apdu_count() - before;
    assert!(name.contains("OpenPGP card v3.4"), "{name}");

    // Keys from GnuPG (OpenSC's openpgp-tool leaves the fingerprints empty).
    let home = gnupg::home(&sb, USER_PIN, ADMIN_PIN);
    generate_with_gpg(&sb, &home);
    let _ = sb.run(Command::new("gpgconf").env("GNUPGHOME", &home).args(["--kill", "all"]));

    let before = sb.apdu_count();
    let slots = sb.ok(&mut p11("-L"));
    let list_apdus = sb.apdu_count() - before;
    assert!(slots.contains("OpenPGP card (User PIN)"), "{slots}");
    assert!(slots.contains("OpenPGP card (User PIN (sig))"), "{slots}");
    let before = sb.apdu_count();
    let objects = sb.ok(&mut p11("-O"));
    let objects_apdus = sb.apdu_count() - before;
    assert!(objects.contains("Public Key Object; RSA 2048 bits"), "{objects}");
    for label in ["Encryption key", "Authentication key"] {
        assert!(objects.contains(label), "{label} not in\n{objects}");
    }

    // Signature key (slot "User PIN (sig)", ID 01): PSO:CDS, checked by OpenSSL.
    let dir = sb.dir();
    fs::write(dir.join("data"), b"data signed through PKCS#11\n").unwrap();
    let data = path(dir, "data");
    let login = format!("--login --pin {USER_PIN}");
    let before = sb.apdu_count();
    let sign = format!("--slot-index 1 {login} --sign --mechanism SHA256-RSA-PKCS --id 01");
    sb.ok(p11(&sign).args(["-i", &data, "-o", &path(dir, "sig.bin")]));
    let sign_apdus = sb.apdu_count() - before;
    let public = "--read-object --type pubkey -o";
    sb.ok(p11(&format!("--slot-index 1 --id 01 {public}")).arg(path(dir, "sig.der")));
    openssl_verify(&sb, "sig.der", "sig.bin");

    // Decryption key (ID 02): PSO:DECIPHER of an OpenSSL PKCS#1 v1.5 cryptogram.
    sb.ok(p11(&format!("--slot-index 0 --id 02 {public}")).arg(path(dir, "enc.der")));
    sb.ok(words("openssl pkeyutl -encrypt -pubin -keyform DER -inkey").args([
        &path(dir, "enc.der"),
        "-in",
        &data,
        "-out",
        &path(dir, "data.enc"),
    ]));
    let decrypt = format!("--slot-index 0 {login} --decrypt --mechanism RSA-PKCS --id 02 -i");
    let plain = sb.ok(p11(&decrypt).arg(path(dir, "data.enc")));
    assert_eq!(plain, fs::read_to_string(dir.join("data")).unwrap());

    // Authentication key (ID 03): INTERNAL AUTHENTICATE.
    let sign = format!("--slot-index 0 {login} --sign --mechanism SHA256-RSA-PKCS --id 03");
    sb.ok(p11(&sign).args(["-i", &data, "-o", &path(dir, "aut.bin")]));
    sb.ok(p11(&format!("--slot-index 0 --id 03 {public}")).arg(path(dir, "aut.der")));
    openssl_verify(&sb, "aut.der", "aut.bin");
    println!(
        "APDUs: opensc-tool -n {name_apdus}, pkcs11-tool -L {list_apdus}, -O {objects_apdus}, \
         --login --sign {sign_apdus}"
    );
}
