//! The GIDS card profile (card-profiles/gids) through a real pcscd, cross-checked with OpenSC
//! 0.23 on the same simulated GIDS card (`scard sim gids` on vsmartcard's vpcd):
//!
//! - what OpenSC wrote (`pkcs15-init` key generation and certificate), our profile lists,
//!   reads and signs / decrypts with, each result checked with OpenSSL;
//! - what our profile wrote (an on-card RSA key, a certificate for it), `pkcs11-tool -O`
//!   lists and `pkcs11-tool --sign` / `--decrypt` use, checked with OpenSSL; OpenSC then adds
//!   a key beside ours (so our key map and cmapfile are consistent for it).
//!
//! There is no third-party GIDS card (hardware or emulator) on this machine: the card is our
//! simulator, judged by OpenSC's GIDS driver, which was written against GidsApplet and the
//! Windows GIDS minidriver.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::Command;

use scard_minidriver::{
    CardModule, DecryptPadding, FilePath, HashAlg, KeyAlgorithm, KeySpec, Pin, PinId,
    ProfileRegistry, SignPadding, SignRequest, with_transaction,
};
use scard_pcsc::PcscBackend;
use scard_tests::interop::{OPENSC_PKCS11, Sandbox, sandbox};
use scard_transport::ShareMode;

const PIN: &str = "123456";

/// Our profile on the card in vpcd slot 0, through pcscd.
fn open_profile() -> Box<dyn CardModule> {
    let transport = PcscBackend::new()
        .connect_reader(Sandbox::reader(0), ShareMode::Shared)
        .expect("connect through pcscd")
        .expect("the vpcd reader");
    let mut registry = ProfileRegistry::new();
    registry.register(scard_profile_gids::family());
    registry.open(Box::new(transport)).expect("the GIDS profile opens the card")
}

fn pin() -> Pin {
    Pin::new(PIN.as_bytes().to_vec())
}

/// `openssl dgst -sha256 -verify PUB -signature SIG MSG` (with PSS options when asked).
fn openssl_verify(sb: &Sandbox, public: &Path, sig: &Path, msg: &Path, pss: bool) {
    let mut cmd = Command::new("openssl");
    cmd.args(["dgst", "-sha256"]);
    if pss {
        cmd.args(["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"]);
    }
    cmd.arg("-verify").arg(public).arg("-signature").arg(sig).arg(msg);
    let out = sb.ok(&mut cmd);
    assert!(out.contains("Verified OK"), "{out}");
}

/// A certificate (DER) for the public key in `public` (PEM), issued by a throwaway CA:
/// `openssl x509 -req -force_pubkey`.
fn certificate_for(sb: &Sandbox, public: &Path, cn: &str) -> Vec<u8> {
    let dir = sb.dir();
    let ca_key = dir.join(format!("{cn}-ca.key"));
    let ca = dir.join(format!("{cn}-ca.pem"));
    let csr = dir.join(format!("{cn}.csr"));
    let cert = dir.join(format!("{cn}.der"));
    sb.ok(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=scard test CA",
        ])
        .arg("-keyout")
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca));
    sb.ok(Command::new("openssl")
        .args(["req", "-new", "-subj", &format!("/CN={cn}"), "-key"])
        .arg(&ca_key)
        .arg("-out")
        .arg(&csr));
    sb.ok(Command::new("openssl")
        .args(["x509", "-req", "-days", "30", "-set_serial", "7", "-outform", "DER", "-in"])
        .arg(&csr)
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-force_pubkey")
        .arg(public)
        .arg("-out")
        .arg(&cert));
    fs::read(cert).unwrap()
}

#[test]
fn gids_profile_uses_what_opensc_wrote() {
    let Some(mut sb) =
        sandbox("gids_profile_uses_what_opensc_wrote", &["pkcs15-init", "pkcs15-tool", "openssl"])
    else {
        return;
    };
    sb.attach("gids", 0, &[OsStr::new("--seed"), OsStr::new("2")]);
    let dir = sb.dir().to_path_buf();
    let reader = Sandbox::reader(0);
    // OpenSC generates an RSA 2048 key on the card (container 1, key 82) and stores a
    // certificate for it (mscp/kxc01, compressed).
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
        "opensc-key",
    ]));
    let public = dir.join("opensc-key.pem");
    sb.ok(Command::new("pkcs15-tool")
        .args(["--reader", reader, "--read-public-key", "01", "-o"])
        .arg(&public));
    let cert_der = certificate_for(&sb, &public, "written-by-opensc");
    let cert_pem = dir.join("written-by-opensc.pem");
    sb.ok(Command::new("openssl")
        .args(["x509", "-inform", "DER", "-in"])
        .arg(dir.join("written-by-opensc.der"))
        .arg("-out")
        .arg(&cert_pem));
    sb.ok(Command::new("pkcs15-init")
        .args(["--reader", reader, "--verify-pin", "--auth-id", "80", "--pin", PIN])
        .arg("--store-certificate")
        .arg(&cert_pem)
        .args(["--id", "01"]));

    // Our profile lists both containers (cold: a new session).
    let mut card = open_profile();
    assert_eq!(card.model().name, "scard-sim GIDS card");
    let before = sb.apdu_count();
    let containers = card.containers().unwrap();
    let cold_list = sb.apdu_count() - before;
    assert_eq!(containers.len(), 2, "{containers:?}");
    let c1 = &containers[1];
    assert_eq!(c1.name, "opensc-key", "OpenSC names the container after the label");
    assert_eq!(
        (c1.key_spec, c1.algorithm),
        (Some(KeySpec::Exchange), Some(KeyAlgorithm::Rsa(2048)))
    );
    assert!(c1.has_certificate && containers[0].has_certificate && containers[0].default);
    assert_eq!(card.certificate(1).unwrap().unwrap(), cert_der);
    let files = card.list_files(Some("mscp")).unwrap();
    assert!(files.iter().any(|f| f == "kxc01"), "{files:?}");
    let cf = card.cardcf().unwrap();
    assert!(cf.containers >= 2 && cf.files >= 4, "OpenSC bumped the counters: {cf:?}");

    // Verify + sign in one transaction; OpenSSL checks the signature with OpenSC's public key.
    let msg = dir.join("msg.txt");
    fs::write(&msg, b"signed by scard's GIDS profile with a key OpenSC generated").unwrap();
    let digest = HashAlg::Sha256.digest(&fs::read(&msg).unwrap());
    let before = sb.apdu_count();
    let sig = with_transaction(card.as_mut(), |card| {
        card.authenticate(PinId::USER, &pin())?;
        card.sign(
            1,
            &SignRequest {
                hash: Some(HashAlg::Sha256),
                padding: SignPadding::Pkcs1,
                data: &digest,
            },
        )
    })
    .unwrap();
    let verify_sign = sb.apdu_count() - before;
    let sig_file = dir.join("msg.sig");
    fs::write(&sig_file, &sig).unwrap();
    openssl_verify(&sb, &public, &sig_file, &msg, false);
    // PSS, the host encoding the block.
    let sig = card
        .sign(
            1,
            &SignRequest {
                hash: Some(HashAlg::Sha256),
                padding: SignPadding::Pss { salt_len: 32 },
                data: &digest,
            },
        )
        .unwrap();
    fs::write(&sig_file, &sig).unwrap();
    openssl_verify(&sb, &public, &sig_file, &msg, true);
    // The personalised key, checked against its certificate as our profile reads it.
    let cert0 = dir.join("cert0.der");
    fs::write(&cert0, card.certificate(0).unwrap().unwrap()).unwrap();
    let public0 = dir.join("cert0-pub.pem");
    let pem = sb.ok(Command::new("openssl")
        .args(["x509", "-inform", "DER", "-noout", "-pubkey", "-in"])
        .arg(&cert0));
    fs::write(&public0, pem).unwrap();
    let sig = card
        .sign(
            0,
            &SignRequest {
                hash: Some(HashAlg::Sha256),
                padding: SignPadding::Pkcs1,
                data: &digest,
            },
        )
        .unwrap();
    fs::write(&sig_file, &sig).unwrap();
    openssl_verify(&sb, &public0, &sig_file, &msg, false);
    // OpenSSL encrypts to OpenSC's key; our profile decrypts.
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
    let plain = card.decrypt(1, &DecryptPadding::Pkcs1, &fs::read(&enc).unwrap()).unwrap();
    assert_eq!(plain.expose(), b"a session key");
    drop(card);
    // Verify + sign in a new session (another process): the file table is read first.
    let mut card = open_profile();
    let before = sb.apdu_count();
    let sig = with_transaction(card.as_mut(), |card| {
        card.authenticate(PinId::USER, &pin())?;
        card.sign(
            1,
            &SignRequest {
                hash: Some(HashAlg::Sha256),
                padding: SignPadding::Pkcs1,
                data: &digest,
            },
        )
    })
    .unwrap();
    let verify_sign_cold = sb.apdu_count() - before;
    fs::write(&sig_file, &sig).unwrap();
    openssl_verify(&sb, &public, &sig_file, &msg, false);
    println!(
        "our GIDS profile through pcscd: list containers cold = {cold_list} APDUs; verify + sign \
         after listing = {verify_sign} APDUs; verify + sign cold = {verify_sign_cold} APDUs"
    );
    assert_eq!((cold_list, verify_sign, verify_sign_cold), (4, 4, 7));
}

#[test]
fn gids_opensc_uses_what_the_profile_wrote() {
    let Some(mut sb) = sandbox(
        "gids_opensc_uses_what_the_profile_wrote",
        &["pkcs11-tool", "pkcs15-init", "pkcs15-tool", "openssl"],
    ) else {
        return;
    };
    sb.attach("gids", 0, &[OsStr::new("--seed"), OsStr::new("3")]);
    let dir = sb.dir().to_path_buf();
    let reader = Sandbox::reader(0);

    // Our profile generates an RSA 2048 key in container 1 and stores a certificate for it.
    let public = dir.join("profile-key.pem");
    let name = {
        let mut card = open_profile();
        card.authenticate(PinId::USER, &pin()).unwrap();
        let key = card.generate_key(1, KeyAlgorithm::Rsa(2048)).unwrap();
        fs::write(&public, key.to_pem().unwrap()).unwrap();
        let der = certificate_for(&sb, &public, "written-by-scard");
        card.put_certificate(1, Some(&der)).unwrap();
        assert_eq!(card.certificate(1).unwrap().unwrap(), der);
        let stored = card.read_file(&FilePath::KeyExchangeCert(1)).unwrap();
        assert_eq!(&stored[..2], &[0x01, 0x00], "stored compressed");
        card.container(1).unwrap().name
    };

    let p11 = || {
        let mut cmd = Command::new("pkcs11-tool");
        cmd.args(["--module", OPENSC_PKCS11, "--slot-index", "0"]);
        cmd
    };
    let before = sb.apdu_count();
    let listing = sb.ok(p11().arg("--list-objects"));
    println!("pkcs11-tool -O: {} APDUs", sb.apdu_count() - before);
    for expected in ["CN=written-by-scard", &name, "ID:         01"] {
        assert!(listing.contains(expected), "pkcs11-tool -O lacks {expected:?}:\n{listing}");
    }
    // OpenSC signs with our key; OpenSSL checks with the key our profile returned.
    let msg = dir.join("msg.txt");
    fs::write(&msg, b"signed by OpenSC with a key scard generated").unwrap();
    let sig = dir.join("msg.sig");
    let before = sb.apdu_count();
    sb.ok(p11()
        .args(["--login", "--pin", PIN, "--sign", "-m", "SHA256-RSA-PKCS", "--id", "01", "-i"])
        .arg(&msg)
        .arg("-o")
        .arg(&sig));
    println!("pkcs11-tool login + sign: {} APDUs", sb.apdu_count() - before);
    openssl_verify(&sb, &public, &sig, &msg, false);
    // The certificate OpenSC reads back carries the same key.
    let cert = dir.join("read-back.der");
    sb.ok(p11().args(["--read-object", "--type", "cert", "--id", "01", "-o"]).arg(&cert));
    let cert_pub = sb.ok(Command::new("openssl")
        .args(["x509", "-inform", "DER", "-noout", "-pubkey", "-in"])
        .arg(&cert));
    assert_eq!(cert_pub.trim(), fs::read_to_string(&public).unwrap().trim());
    // OpenSC decrypts with our key.
    let secret = dir.join("secret.txt");
    fs::write(&secret, b"for the profile's key").unwrap();
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
        .args(["--login", "--pin", PIN, "--decrypt", "-m", "RSA-PKCS", "--id", "01", "-i"])
        .arg(&enc)
        .arg("-o")
        .arg(&plain));
    assert_eq!(fs::read(&plain).unwrap(), b"for the profile's key");

    // OpenSC adds a key after ours: it checks that the key map and the cmapfile agree.
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
        "after-scard",
    ]));
    let dump = sb.ok(Command::new("pkcs15-tool").args(["--reader", reader, "-D"]));
    for expected in [
        "Key ref        : 130 (0x82)",
        "Key ref        : 131 (0x83)",
        "Private RSA Key [after-scard]",
    ] {
        assert!(dump.contains(expected), "pkcs15-tool -D lacks {expected:?}:\n{dump}");
    }
    // And our profile sees OpenSC's new key next to its own.
    let mut card = open_profile();
    let containers = card.containers().unwrap();
    assert_eq!(containers.len(), 3);
    assert_eq!(containers[2].name, "after-scard");
    assert_eq!(containers[1].name, name);
}
