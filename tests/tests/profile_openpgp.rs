//! The OpenPGP card profile (card-profiles/openpgp) against software nobody here wrote:
//!
//! (a) `scard sim openpgp` through a real pcscd (vpcd), in the interop sandbox: keys GnuPG
//!     generated (`gpg --edit-card`, scripted) are listed by the profile, which signs,
//!     decrypts and authenticates with them (checked by OpenSSL), and whose fingerprints
//!     match the profile's own V4 fingerprint of the key read from the card; keys the profile
//!     generated (fingerprints and dates written as GnuPG does) are shown by `gpg
//!     --card-status`, fingerprinted identically by `gpg --show-keys`, listed by OpenSC's
//!     `pkcs11-tool -O` with the certificate the profile wrote, and used by `pkcs11-tool
//!     --sign` (checked by OpenSSL);
//! (b) Nitrokey's opcard 1.11 (tests/third-party) through our own vpcd: backend: properties,
//!     PIN verification, on-card generation of RSA 2048 and P-256 keys, certificate write
//!     and read, signatures (PSO:CDS and INTERNAL AUTHENTICATE), RSA decryption and ECDH,
//!     all checked on the host with RustCrypto.
//!
//! Each prints the APDUs of "list containers cold" and "verify + sign".

// Test code: a failed expectation is meant to panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use p256::elliptic_curve::sec1::ToEncodedPoint;
use rand_core::OsRng;
use scard_minidriver::{
    CardChannel, CardModule, Curve, DecryptPadding, HashAlg, KeyAlgorithm, KeySpec, Pin, PinId,
    ProfileRegistry, PublicKey, SignPadding, SignRequest,
};
use scard_profile_openpgp::{OpenPgpCard, Role, fingerprint};
use scard_tests::gnupg;
use scard_tests::interop::{OPENSC_PKCS11, Sandbox, sandbox};
use scard_tests::third_party::{Card, CardProcess, cards_or_skip};
use scard_transport::vpcd::VpcdBackend;
use scard_transport::{CardTransport, Registry, ShareMode};

const USER_PIN: &str = "123456";
const ADMIN_PIN: &str = "12345678";
const UID_EMAIL: &str = "profile@example.invalid";

fn registry() -> ProfileRegistry {
    let mut registry = ProfileRegistry::new();
    registry.register(scard_profile_openpgp::family());
    registry
}

fn pin(v: &str) -> Pin {
    Pin::new(v.as_bytes().to_vec())
}

fn hex_groups(fpr: &[u8]) -> String {
    // gpg --card-status prints a fingerprint in groups of four hex digits.
    let hex = scard_iso7816::hex::encode_upper(fpr);
    // (two spaces between the halves).
    let groups: Vec<&str> = (0..hex.len()).step_by(4).map(|i| &hex[i..i + 4]).collect();
    format!("{}  {}", groups[..5].join(" "), groups[5..].join(" "))
}

fn verify_rsa(key: &PublicKey, digest: &[u8], sig: &[u8]) {
    let PublicKey::Rsa { n, e } = key else { panic!("not RSA") };
    let key =
        rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(n), rsa::BigUint::from_bytes_be(e))
            .unwrap();
    key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), digest, sig).expect("RSA signature");
}

fn verify_p256(key: &PublicKey, digest: &[u8], sig: &[u8]) {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let PublicKey::Ec { point, .. } = key else { panic!("not EC") };
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
    vk.verify_prehash(digest, &p256::ecdsa::Signature::from_slice(sig).unwrap())
        .expect("ECDSA P-256 signature");
}

// ----- (a) GnuPG, OpenSC and the profile on the simulated card through pcscd -----

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// OpenSSL checks a SHA-256 signature (PKCS#1 v1.5, or DER ECDSA) of `data` with `public`.
fn openssl_verify(sb: &Sandbox, public_pem: &str, signature: &str, data: &str) {
    let dir = sb.dir();
    let out = sb.ok(Command::new("openssl").args([
        "dgst",
        "-sha256",
        "-verify",
        &path(dir, public_pem),
        "-signature",
        &path(dir, signature),
        &path(dir, data),
    ]));
    assert!(out.contains("Verified OK"), "{out}");
}

/// The profile on the card in pcscd's slot 0, with the model the registry picks by ATR.
fn open_pcsc() -> OpenPgpCard {
    let mut backend = scard_pcsc::PcscBackend::new();
    let transport = backend
        .connect_reader(Sandbox::reader(0), ShareMode::Shared)
        .unwrap()
        .expect("the vpcd reader");
    let model = registry().identify(transport.atr()).expect("a model for the ATR").clone();
    OpenPgpCard::new(CardChannel::new(Box::new(transport)), model)
}

#[test]
fn openpgp_profile_with_gnupg_and_opensc_through_pcscd() {
    let Some(mut sb) = sandbox(
        "openpgp_profile_with_gnupg_and_opensc_through_pcscd",
        &["gpg", "gpgconf", "bash", "pkcs11-tool", "openssl"],
    ) else {
        return;
    };
    sb.attach("openpgp", 0, &[OsStr::new("--seed"), OsStr::new("21")]);
    let dir = sb.dir().to_owned();
    let home = gnupg::home(&sb, USER_PIN, ADMIN_PIN);

    // GnuPG generates three RSA 2048 keys on the card.
    let answers = [
        ("cardedit.genkeys.backup_enc", "n"),
        ("cardedit.genkeys.replace_keys", "y"),
        ("keygen.valid", "0"),
        ("keygen.name", "Profile Test"),
        ("keygen.email", UID_EMAIL),
        ("keygen.comment", ""),
    ];
    let status = gnupg::edit_card(&home, &[], &["admin", "generate", "quit"], &answers);
    assert!(status.contains("KEY_CREATED B "), "{status}");
    gnupg::release(&sb, &home);

    // The profile lists them: list containers cold.
    let before = sb.apdu_count();
    let mut card = open_pcsc();
    let containers = card.containers().unwrap();
    let list_cold = sb.apdu_count() - before;
    assert_eq!(card.model().name, "OpenPGP card 3.x (ZeitControl V3, scard simulator)");
    for c in &containers {
        assert_eq!(c.algorithm, Some(KeyAlgorithm::Rsa(2048)), "{c:?}");
    }
    assert_eq!(containers[0].key_spec, Some(KeySpec::Signature));
    assert_eq!(containers[1].key_spec, Some(KeySpec::Exchange));
    assert_eq!(containers[2].key_spec, Some(KeySpec::Signature));
    // GnuPG's fingerprints are the profile's V4 fingerprints of the keys on the card.
    let ard = card.application_data().unwrap();
    let mut keys = Vec::new();
    for role in Role::ALL {
        let key = card.container(role.index()).unwrap().public_key.unwrap();
        let ours = fingerprint::v4(&key, ard.date(role), role).unwrap();
        assert_eq!(&ours, ard.fingerprint(role), "{role:?}: GnuPG's fingerprint");
        fs::write(dir.join(format!("gpg-{}.pem", role.short())), key.to_pem().unwrap()).unwrap();
        keys.push(key);
    }

    // The same through the `scard` command: `scard info` lists GnuPG's keys with their public
    // keys, `scard sign` signs with GnuPG's signature key, OpenSSL verifies.
    let scard = scard_tests::interop::scard_binary().unwrap();
    let reader = format!("pcsc:{}", Sandbox::reader(0));
    let info = sb.ok(Command::new(&scard).args(["info", "--reader", &reader, "--json"]));
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    for (i, role) in Role::ALL.iter().enumerate() {
        let c = &info["card"]["containers"][i];
        assert_eq!(c["algorithm"], "rsa2048", "{info}");
        let listed = c["public_key"].as_str().unwrap_or_else(|| panic!("no public key: {info}"));
        let expected = fs::read_to_string(dir.join(format!("gpg-{}.pem", role.short()))).unwrap();
        assert_eq!(listed.trim(), expected.trim(), "{role:?}");
    }
    fs::write(dir.join("cli-data"), b"signed by scard sign with a key GnuPG generated\n").unwrap();
    sb.ok(Command::new(&scard)
        .args(["sign", "--reader", &reader, "--container", "0", "--alg", "rsa-pkcs1-sha256"])
        .args(["--in", &path(&dir, "cli-data"), "--out", &path(&dir, "cli-sig.bin")])
        .args(["--pin-env", "SCARD_PIN"])
        .env("SCARD_PIN", USER_PIN));
    openssl_verify(&sb, "gpg-SIG.pem", "cli-sig.bin", "cli-data");

    // Verify + sign with GnuPG's signature key (a new session: cold), checked by OpenSSL.
    fs::write(dir.join("data"), b"signed by the profile through pcscd\n").unwrap();
    let digest = HashAlg::Sha256.digest(&fs::read(dir.join("data")).unwrap());
    let request =
        SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::Pkcs1, data: &digest };
    drop(card);
    let before = sb.apdu_count();
    let mut card = open_pcsc();
    card.authenticate(PinId::USER, &pin(USER_PIN)).unwrap();
    let sig = card.sign(0, &request).unwrap();
    let sign_cold = sb.apdu_count() - before;
    fs::write(dir.join("sig0.bin"), &sig).unwrap();
    openssl_verify(&sb, "gpg-SIG.pem", "sig0.bin", "data");
    // INTERNAL AUTHENTICATE with the authentication key.
    let sig = card.sign(2, &request).unwrap();
    fs::write(dir.join("sig2.bin"), &sig).unwrap();
    openssl_verify(&sb, "gpg-AUT.pem", "sig2.bin", "data");
    // PSO:DECIPHER of an OpenSSL cryptogram.
    sb.ok(Command::new("openssl").args([
        "pkeyutl",
        "-encrypt",
        "-pubin",
        "-inkey",
        &path(&dir, "gpg-DEC.pem"),
        "-in",
        &path(&dir, "data"),
        "-out",
        &path(&dir, "data.enc"),
    ]));
    let plain =
        card.decrypt(1, &DecryptPadding::Pkcs1, &fs::read(dir.join("data.enc")).unwrap()).unwrap();
    assert_eq!(plain.expose(), fs::read(dir.join("data")).unwrap());

    // The profile generates P-256 keys for the signature and authentication keys, and writes
    // a certificate for the authentication key.
    card.authenticate(PinId::ADMIN, &pin(ADMIN_PIN)).unwrap();
    let sig_key = card.generate_key(0, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let aut_key = card.generate_key(2, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    fs::write(dir.join("aut.pem"), aut_key.to_pem().unwrap()).unwrap();
    fs::write(dir.join("sig.pem"), sig_key.to_pem().unwrap()).unwrap();
    sb.ok(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &path(&dir, "ca.key"),
        "-subj",
        "/CN=Test CA",
        "-out",
        &path(&dir, "ca.pem"),
        "-days",
        "2",
    ]));
    sb.ok(Command::new("openssl").args([
        "req",
        "-new",
        "-key",
        &path(&dir, "ca.key"),
        "-subj",
        "/CN=Card Holder",
        "-out",
        &path(&dir, "req.csr"),
    ]));
    sb.ok(Command::new("openssl").args([
        "x509",
        "-req",
        "-in",
        &path(&dir, "req.csr"),
        "-CA",
        &path(&dir, "ca.pem"),
        "-CAkey",
        &path(&dir, "ca.key"),
        "-force_pubkey",
        &path(&dir, "aut.pem"),
        "-outform",
        "DER",
        "-out",
        &path(&dir, "aut.der"),
        "-days",
        "2",
    ]));
    let cert = fs::read(dir.join("aut.der")).unwrap();
    card.put_certificate(2, Some(&cert)).unwrap();
    let ard = card.application_data().unwrap();
    drop(card);

    // GnuPG shows the fingerprints the profile wrote, and computes the same ones from the
    // public key packets.
    let status = sb.ok(&mut gnupg::gpg(&home, &["--card-status"]));
    assert!(status.contains("Key attributes ...: nistp256 rsa2048 nistp256"), "{status}");
    for (role, key) in [(Role::Sig, &sig_key), (Role::Aut, &aut_key)] {
        let fpr = ard.fingerprint(role);
        assert!(status.contains(&hex_groups(fpr)), "{role:?} {} not in\n{status}", hex_groups(fpr));
        let body = fingerprint::packet_body(key, ard.date(role), role).unwrap();
        let mut packet = vec![0x99, (body.len() >> 8) as u8, body.len() as u8];
        packet.extend_from_slice(&body);
        packet.extend_from_slice(&[0xB4, 4]);
        packet.extend_from_slice(b"test");
        let file = dir.join(format!("{}.gpg", role.short()));
        fs::write(&file, &packet).unwrap();
        let shown = sb
            .ok(&mut gnupg::gpg(&home, &["--show-keys", "--with-colons", file.to_str().unwrap()]));
        let want = format!("fpr:::::::::{}:", scard_iso7816::hex::encode_upper(fpr));
        assert!(shown.contains(&want), "{want} not in\n{shown}");
    }
    gnupg::release(&sb, &home);

    // OpenSC lists the keys and the certificate, and signs with the authentication key.
    let module = format!("--module {OPENSC_PKCS11}");
    let objects = sb.ok(Command::new("pkcs11-tool").args(module.split(' ')).arg("-O"));
    assert!(objects.contains("Public Key Object; EC"), "{objects}");
    assert!(objects.contains("Certificate Object"), "{objects}");
    assert!(objects.contains("Card Holder"), "{objects}");
    fs::write(dir.join("data.sha256"), &digest).unwrap();
    sb.ok(Command::new("pkcs11-tool").args(module.split(' ')).args([
        "--slot-index",
        "0",
        "--login",
        "--pin",
        USER_PIN,
        "--sign",
        "--mechanism",
        "ECDSA",
        "--id",
        "03",
        "--signature-format",
        "openssl",
        "-i",
        &path(&dir, "data.sha256"),
        "-o",
        &path(&dir, "p11.sig"),
    ]));
    openssl_verify(&sb, "aut.pem", "p11.sig", "data");
    // The signature key is in OpenSC's second slot ("User PIN (sig)"): PSO:CDS.
    let objects = sb.ok(Command::new("pkcs11-tool").args(module.split(' ')).args([
        "--slot-index",
        "1",
        "-O",
    ]));
    assert!(
        objects.contains("Signature key") && objects.contains("EC_POINT 256 bits"),
        "{objects}"
    );
    sb.ok(Command::new("pkcs11-tool").args(module.split(' ')).args([
        "--slot-index",
        "1",
        "--login",
        "--pin",
        USER_PIN,
        "--sign",
        "--mechanism",
        "ECDSA",
        "--id",
        "01",
        "--signature-format",
        "openssl",
        "-i",
        &path(&dir, "data.sha256"),
        "-o",
        &path(&dir, "p11-sig.sig"),
    ]));
    openssl_verify(&sb, "sig.pem", "p11-sig.sig", "data");
    println!(
        "APDUs through pcscd: list containers cold {list_cold}, verify + sign cold {sign_cold}"
    );
}

// ----- (b) Nitrokey opcard through our vpcd: backend -----

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// APDUs opcard's glue traced so far (`--trace`: one `>> ` line per command).
fn traced(card: &CardProcess) -> usize {
    card.log().lines().filter(|l| l.starts_with(">> ")).count()
}

#[test]
fn openpgp_profile_on_opcard_over_our_vpcd_backend() {
    let test = "openpgp_profile_on_opcard_over_our_vpcd_backend";
    let Some(cards) = cards_or_skip(test) else { return };
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("scard-{test}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let card_process = CardProcess::start(
        cards,
        Card::OpenPgp,
        &format!("127.0.0.1:{port}"),
        Duration::from_secs(60),
        &[OsStr::new("--trace"), OsStr::new("--serial"), OsStr::new("5CA4D001")],
        &dir.join("opcard.log"),
    );
    let backend = VpcdBackend::listen("127.0.0.1", port, Duration::from_secs(60)).unwrap();
    let name = backend.name().to_owned();
    let mut readers = Registry::new();
    readers.add(Box::new(backend));
    let mut connect = || -> Box<dyn CardModule> {
        let t: Box<dyn CardTransport> = readers.connect(Some(&name), ShareMode::Shared).unwrap();
        registry().open(t).unwrap()
    };

    // Properties: the opcard model (its ATR is shared with piv-authenticator: confirmed by
    // SELECT), the AID as card id, the serial we gave.
    let mut card = connect();
    assert_eq!(card.model().name, "Nitrokey opcard (OpenPGP 3.4)");
    let props = card.properties().unwrap();
    println!("{props:?}");
    assert_eq!(&props.card_id[..6], &[0xD2, 0x76, 0x00, 0x01, 0x24, 0x01]);
    assert!(props.serial.ends_with("5CA4D001"), "{}", props.serial);
    let pins = card.pins().unwrap();
    assert_eq!(pins.iter().map(|p| p.tries_left).collect::<Vec<_>>(), [Some(3), Some(3), Some(0)]);
    // A wrong PIN costs one try; a short one none.
    assert!(card.authenticate(PinId::USER, &pin("12345")).is_err());
    let err = card.authenticate(PinId::USER, &pin("654321")).unwrap_err();
    assert!(err.to_string().contains("2 tries left"), "{err}");
    card.authenticate(PinId::USER, &pin(USER_PIN)).unwrap();
    assert_eq!(card.tries_left(PinId::USER).unwrap(), Some(3));

    // Key generation: RSA 2048 signature and decryption keys, a P-256 authentication key.
    card.authenticate(PinId::ADMIN, &pin(ADMIN_PIN)).unwrap();
    let t = Instant::now();
    let sig_key = card.generate_key(0, KeyAlgorithm::Rsa(2048)).unwrap();
    let dec_key = card.generate_key(1, KeyAlgorithm::Rsa(2048)).unwrap();
    let aut_key = card.generate_key(2, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    println!("[time] three keys generated in {:.1} s", t.elapsed().as_secs_f64());
    let cert = {
        let mut c = vec![0x30, 0x82, 0x04, 0x00];
        c.extend((0..1024u32).map(|i| (i * 7) as u8));
        c
    };
    card.put_certificate(2, Some(&cert)).unwrap();
    assert!(card.freshness_on_card(), "opcard keeps the cardcf record in DO 0102");
    let cf = card.cardcf().unwrap();
    drop(card);

    // List containers cold, in a new session.
    let before = traced(&card_process);
    let mut card = connect();
    let containers = card.containers().unwrap();
    let list_cold = traced(&card_process) - before;
    assert_eq!(
        containers.iter().map(|c| c.key_spec).collect::<Vec<_>>(),
        [Some(KeySpec::Signature), Some(KeySpec::Exchange), Some(KeySpec::Ecdsa(Curve::P256))]
    );
    assert!(containers[2].has_certificate && !containers[0].has_certificate);
    assert_eq!(card.cardcf().unwrap(), cf);
    assert_eq!(card.certificate(2).unwrap().unwrap(), cert);
    assert_eq!(card.container(0).unwrap().public_key.unwrap(), sig_key);
    drop(card);

    // Verify + sign cold: PSO:CDS with the RSA key.
    let digest = HashAlg::Sha256.digest(b"signed by opcard");
    let pkcs1 =
        SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::Pkcs1, data: &digest };
    let before = traced(&card_process);
    let mut card = connect();
    card.authenticate(PinId::USER, &pin(USER_PIN)).unwrap();
    let sig = card.sign(0, &pkcs1).unwrap();
    let sign_cold = traced(&card_process) - before;
    verify_rsa(&sig_key, &digest, &sig);
    // INTERNAL AUTHENTICATE with the P-256 key (PW1 82 verified with the same value).
    let ecdsa =
        SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::None, data: &digest };
    let sig = card.sign(2, &ecdsa).unwrap();
    verify_p256(&aut_key, &digest, &sig);
    // RSA decryption.
    let PublicKey::Rsa { n, e } = &dec_key else { panic!() };
    let host =
        rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(n), rsa::BigUint::from_bytes_be(e))
            .unwrap();
    let ct = host.encrypt(&mut OsRng, rsa::Pkcs1v15Encrypt, b"opcard secret").unwrap();
    let plain = card.decrypt(1, &DecryptPadding::Pkcs1, &ct).unwrap();
    assert_eq!(plain.expose(), b"opcard secret");
    // ECDH with a P-256 decryption key.
    card.authenticate(PinId::ADMIN, &pin(ADMIN_PIN)).unwrap();
    let ecdh_key = card.generate_key(1, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let host = p256::SecretKey::random(&mut OsRng);
    let peer = PublicKey::Ec {
        curve: Curve::P256,
        point: host.public_key().to_encoded_point(false).as_bytes().to_vec(),
    };
    let shared = card.agree(1, &peer).unwrap();
    let PublicKey::Ec { point, .. } = &ecdh_key else { panic!() };
    let expected = p256::ecdh::diffie_hellman(
        host.to_nonzero_scalar(),
        p256::PublicKey::from_sec1_bytes(point).unwrap().as_affine(),
    );
    assert_eq!(shared.expose(), expected.raw_secret_bytes().as_slice());
    drop(card);
    let log = card_process.stop();
    // Extended length on opcard: the GET DATA 6E of the model (Le 0C00).
    assert!(log.contains(">> 00 CA 00 6E 00 0C 00"), "{}", scard_tests::interop::tail(&log, 40));
    println!(
        "APDUs on opcard: list containers cold {list_cold}, verify + sign cold {sign_cold}; \
         test {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let _ = fs::remove_dir_all(&dir);
}
