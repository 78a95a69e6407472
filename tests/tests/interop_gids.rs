//! `scard sim gids` through a real pcscd and vsmartcard's vpcd, judged by OpenSC 0.23's GIDS
//! driver (card-gids.c, pkcs15-gids.c): `opensc-tool -n` names it a GIDS card, `pkcs15-tool -D`
//! lists the personalised PIN, key pair and certificate, `pkcs11-tool` signs and decrypts (each
//! result checked with OpenSSL against the card's certificate), `pkcs15-init` generates a key
//! and stores a certificate, and `gids-tool` unblocks the PIN with the admin key.

use std::ffi::OsStr;
use std::fs;
use std::process::Command;

use scard_tests::interop::{OPENSC_PKCS11, Sandbox, sandbox};

/// The personalised card's PIN and admin key (24 bytes of 00, `gids-tool`'s default).
const PIN: &str = "123456";
const ADMIN_KEY: &str = "000000000000000000000000000000000000000000000000";

fn attach_seeded(sb: &mut Sandbox) {
    sb.attach("gids", 0, &[OsStr::new("--seed"), OsStr::new("1")]);
}

#[test]
fn gids_opensc_names_the_card_and_lists_its_objects() {
    let Some(mut sb) =
        sandbox("gids_opensc_names_the_card_and_lists_its_objects", &["pkcs15-tool"])
    else {
        return;
    };
    attach_seeded(&mut sb);
    let reader = Sandbox::reader(0);
    let name = sb.ok(Command::new("opensc-tool").args(["--reader", reader, "--name"]));
    assert!(name.contains("GIDS Smart Card"), "{name}");
    let before = sb.apdu_count();
    let dump = sb.ok(Command::new("pkcs15-tool").args(["--reader", reader, "--dump"]));
    for expected in [
        "PKCS#15 Card [GIDS card]",
        "PIN [UserPIN]",
        "Tries left     : 3",
        "Private RSA Key [{",
        "ModLength      : 2048",
        "Public RSA Key [{",
        "Path           : 3fffb081",
        "X.509 Certificate [{",
        "Path           : a010df24",
        "Encoded serial",
    ] {
        assert!(dump.contains(expected), "pkcs15-tool -D lacks {expected:?}:\n{dump}");
    }
    println!("pkcs15-tool -D: {} APDUs", sb.apdu_count() - before);
}

#[test]
fn gids_pkcs11_sign_and_decrypt_verified_by_openssl() {
    let Some(mut sb) =
        sandbox("gids_pkcs11_sign_and_decrypt_verified_by_openssl", &["pkcs11-tool", "openssl"])
    else {
        return;
    };
    attach_seeded(&mut sb);
    let dir = sb.dir().to_path_buf();
    let p11 = || {
        let mut cmd = Command::new("pkcs11-tool");
        cmd.args(["--module", OPENSC_PKCS11, "--slot-index", "0"]);
        cmd
    };
    let listing = sb.ok(p11().arg("--list-objects"));
    assert!(listing.contains("CN=scard-sim GIDS"), "{listing}");
    let cert = dir.join("cert.der");
    sb.ok(p11().args(["--read-object", "--type", "cert", "--id", "00", "-o"]).arg(&cert));
    let public = dir.join("public.pem");
    let pem = sb.ok(Command::new("openssl")
        .args(["x509", "-inform", "DER", "-noout", "-pubkey", "-in"])
        .arg(&cert));
    fs::write(&public, pem).unwrap();
    // Sign: OpenSC sends the DigestInfo, the card pads (algorithm reference 57).
    let msg = dir.join("msg.txt");
    fs::write(&msg, b"signed by a simulated GIDS card").unwrap();
    let sig = dir.join("msg.sig");
    let before = sb.apdu_count();
    sb.ok(p11()
        .args(["--login", "--pin", PIN, "--sign", "-m", "SHA256-RSA-PKCS", "--id", "00", "-i"])
        .arg(&msg)
        .arg("-o")
        .arg(&sig));
    println!("pkcs11-tool login + sign: {} APDUs", sb.apdu_count() - before);
    let verified = sb.ok(Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&public)
        .arg("-signature")
        .arg(&sig)
        .arg(&msg));
    assert!(verified.contains("Verified OK"), "{verified}");
    // Decrypt: OpenSSL encrypts to the certificate's key, the card decrypts (PKCS#1 v1.5).
    let secret = dir.join("secret.txt");
    fs::write(&secret, b"a session key").unwrap();
    let enc = dir.join("secret.enc");
    sb.ok(Command::new("openssl")
        .args(["pkeyutl", "-encrypt", "-pubin", "-inkey"])
        .arg(&public)
        .arg("-in")
        .arg(&secret)
        .arg("-out")
        .arg(&enc));
    let plain = dir.join("secret.out");
    sb.ok(p11()
        .args(["--login", "--pin", PIN, "--decrypt", "-m", "RSA-PKCS", "--id", "00", "-i"])
        .arg(&enc)
        .arg("-o")
        .arg(&plain));
    assert_eq!(fs::read(&plain).unwrap(), b"a session key");
    // A wrong PIN counts down.
    let out =
        sb.run(p11().args(["--login", "--pin", "000000", "--sign", "--id", "00", "-i"]).arg(&msg));
    assert!(!out.status.success());
    let dump = sb.ok(Command::new("pkcs15-tool").args(["--reader", Sandbox::reader(0), "-D"]));
    assert!(dump.contains("Tries left     : 2"), "{dump}");
}

#[test]
fn gids_pkcs15_init_generates_a_key_and_gids_tool_unblocks() {
    let Some(mut sb) = sandbox(
        "gids_pkcs15_init_generates_a_key_and_gids_tool_unblocks",
        &["pkcs15-init", "pkcs15-tool", "gids-tool", "pkcs11-tool", "openssl"],
    ) else {
        return;
    };
    let state = sb.dir().join("gids.json");
    sb.attach(
        "gids",
        0,
        &[OsStr::new("--seed"), OsStr::new("2"), OsStr::new("--state"), state.as_os_str()],
    );
    let dir = sb.dir().to_path_buf();
    let reader = Sandbox::reader(0);
    // On-card generation: CREATE FILE + ACTIVATE of key file B082, keymap and cmapfile
    // updates (cardcf bumped by OpenSC), GENERATE, public key by GET DATA.
    sb.ok(Command::new("pkcs15-init").args([
        "--reader",
        reader,
        "--verify-pin",
        "--auth-id",
        "80",
        "--pin",
        PIN,
        "--generate-key",
        "rsa/2048",
        "--key-usage",
        "sign,decrypt",
        "--label",
        "generated",
    ]));
    let public = dir.join("generated.pem");
    sb.ok(Command::new("pkcs15-tool")
        .args(["--reader", reader, "--read-public-key", "01", "-o"])
        .arg(&public));
    // A certificate for it, stored compressed in mscp/kxc01 (a new DO in A010).
    let cert = dir.join("generated-cert.pem");
    sb.ok(Command::new("openssl")
        .args(["req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=stored"])
        .arg("-keyout")
        .arg(dir.join("unused-key.pem"))
        .arg("-out")
        .arg(&cert));
    sb.ok(Command::new("pkcs15-init")
        .args(["--reader", reader, "--verify-pin", "--auth-id", "80", "--pin", PIN])
        .args(["--store-certificate"])
        .arg(&cert)
        .args(["--id", "01"]));
    let dump = sb.ok(Command::new("pkcs15-tool").args(["--reader", reader, "-D"]));
    for expected in [
        "Private RSA Key [generated]",
        "Key ref        : 130 (0x82)",
        "X.509 Certificate [generated]",
    ] {
        assert!(dump.contains(expected), "lacks {expected:?}:\n{dump}");
    }
    let msg = dir.join("msg.txt");
    fs::write(&msg, b"new key").unwrap();
    let sig = dir.join("msg.sig");
    sb.ok(Command::new("pkcs11-tool")
        .args(["--module", OPENSC_PKCS11, "--slot-index", "0", "--login", "--pin", PIN])
        .args(["--sign", "-m", "SHA256-RSA-PKCS", "--id", "01", "-i"])
        .arg(&msg)
        .arg("-o")
        .arg(&sig));
    let verified = sb.ok(Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&public)
        .arg("-signature")
        .arg(&sig)
        .arg(&msg));
    assert!(verified.contains("Verified OK"), "{verified}");
    // Block the PIN, then unblock it with the admin key (GENERAL AUTHENTICATE, mutual 3DES).
    for _ in 0..3 {
        let out = sb.run(
            Command::new("pkcs11-tool")
                .args([
                    "--module",
                    OPENSC_PKCS11,
                    "--slot-index",
                    "0",
                    "--login",
                    "--pin",
                    "999999",
                ])
                .arg("--list-objects"),
        );
        assert!(!out.status.success());
    }
    let dump = sb.ok(Command::new("pkcs15-tool").args(["--reader", reader, "-D"]));
    assert!(dump.contains("Tries left     : 0"), "{dump}");
    let unblocked = sb.ok(Command::new("gids-tool").args([
        "--reader",
        reader,
        "--unblock",
        "--admin-key",
        ADMIN_KEY,
        "--pin",
        "24681357",
    ]));
    assert!(unblocked.contains("Unblock PIN done successfully"), "{unblocked}");
    // The new PIN signs; the state survives a restart of the card.
    sb.detach(0);
    sb.attach("gids", 0, &[OsStr::new("--state"), state.as_os_str()]);
    sb.ok(Command::new("pkcs11-tool")
        .args(["--module", OPENSC_PKCS11, "--slot-index", "0", "--login", "--pin", "24681357"])
        .args(["--sign", "-m", "SHA256-RSA-PKCS", "--id", "01", "-i"])
        .arg(&msg)
        .arg("-o")
        .arg(&sig));
    let verified = sb.ok(Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&public)
        .arg("-signature")
        .arg(&sig)
        .arg(&msg));
    assert!(verified.contains("Verified OK"), "{verified}");
}
