//! The PIV card profile (card-profiles/piv) against software nobody here wrote:
//!
//! (a) OpenSC 0.23, yubico-piv-tool 2.2 and OpenSSL on `scard sim piv`, through a real pcscd
//!     and vsmartcard's vpcd (the interop sandbox), our profile reaching the card through our
//!     PC/SC backend (`pcsc:Virtual PCD 00 00`):
//!     - keys our profile generated and certificates it wrote: `pkcs11-tool -O` lists them,
//!       `pkcs11-tool --sign` signs with them, `openssl dgst -verify` checks the signatures;
//!     - keys yubico-piv-tool generated, certificates imported by yubico-piv-tool and by
//!       OpenSC's `piv-tool -C` (its `-G` cannot write the public key out with OpenSSL 3, and
//!       gives up before sending GENERATE: INTEROP.md): our profile lists them, signs (checked
//!       by openssl), decrypts what openssl encrypted and agrees the key openssl derives.
//! (b) Nitrokey's piv-authenticator 0.7 (tests/third-party) through our own vpcd backend:
//!     properties, PIN countdown and verification, management key, key generation, certificate
//!     writing, signatures (verified by openssl), decryption and ECDH (against openssl).
//!
//! APDU counts of "list containers cold" and "verify + sign" are printed (pcscd's log for (a),
//! the card program's trace for (b)).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use scard_minidriver::{
    CardError, CardModule, Curve, DecryptPadding, HashAlg, KeyAlgorithm, KeySpec, Pin, PinId,
    ProfileRegistry, PublicKey, SignPadding, SignRequest,
};
use scard_pcsc::PcscBackend;
use scard_profile_piv::DEFAULT_MANAGEMENT_KEY;
use scard_tests::interop::{OPENSC_PKCS11, Sandbox, sandbox};
use scard_tests::third_party::{Card, CardProcess, cards_or_skip};
use scard_transport::vpcd::VpcdBackend;
use scard_transport::{Registry, ShareMode};

const PIN: &str = "123456";
/// The default 3DES management key, as piv-tool reads it from `PIV_EXT_AUTH_KEY`.
const ADMIN_KEY_FILE: &str =
    "01:02:03:04:05:06:07:08:01:02:03:04:05:06:07:08:01:02:03:04:05:06:07:08";

fn profiles() -> ProfileRegistry {
    let mut p = ProfileRegistry::new();
    p.register(scard_profile_piv::family());
    p
}

/// Our profile on vpcd slot 0 through pcscd.
fn open_pcsc() -> Box<dyn CardModule> {
    let mut readers = Registry::new();
    readers.add(Box::new(PcscBackend::new()));
    let t =
        readers.connect(Some(&format!("pcsc:{}", Sandbox::reader(0))), ShareMode::Shared).unwrap();
    profiles().open(t).unwrap()
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// Runs a host tool that must succeed (outside the sandbox too).
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn admin(card: &mut Box<dyn CardModule>) {
    card.authenticate_admin_key(&Pin::new(DEFAULT_MANAGEMENT_KEY.to_vec())).unwrap();
}

fn verify(card: &mut Box<dyn CardModule>) {
    card.authenticate(PinId::USER, &Pin::new(PIN.as_bytes().to_vec())).unwrap();
}

/// `ca.key` in `dir` (a throwaway P-256 issuer), made once.
fn ca(dir: &Path) -> String {
    let ca = path(dir, "ca.key");
    if !Path::new(&ca).exists() {
        run(Command::new("openssl").args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &ca,
        ]));
    }
    ca
}

/// Writes `key` to `<name>.pem` and makes a DER certificate `<name>.der` for it (signed by the
/// throwaway CA with `openssl x509 -new -force_pubkey`); returns the DER.
fn certificate_for(dir: &Path, name: &str, key: &PublicKey) -> Vec<u8> {
    let public = path(dir, &format!("{name}.pem"));
    fs::write(&public, key.to_pem().unwrap()).unwrap();
    let der = path(dir, &format!("{name}.der"));
    run(Command::new("openssl").args([
        "x509",
        "-new",
        "-subj",
        &format!("/CN=scard profile {name}/"),
        "-force_pubkey",
        &public,
        "-key",
        &ca(dir),
        "-days",
        "365",
        "-outform",
        "DER",
        "-out",
        &der,
    ]));
    fs::read(&der).unwrap()
}

/// Raw r || s as a DER ECDSA-Sig-Value, for openssl.
fn ecdsa_der(raw: &[u8]) -> Vec<u8> {
    let int = |v: &[u8]| {
        let start = v.iter().position(|b| *b != 0).unwrap_or(v.len() - 1);
        let mut body = v[start..].to_vec();
        if body[0] & 0x80 != 0 {
            body.insert(0, 0);
        }
        let mut out = vec![0x02, body.len() as u8];
        out.extend(body);
        out
    };
    let (r, s) = raw.split_at(raw.len() / 2);
    let inner = [int(r), int(s)].concat();
    let mut out = vec![0x30];
    if inner.len() >= 0x80 {
        out.push(0x81);
    }
    out.push(inner.len() as u8);
    out.extend(inner);
    out
}

/// `openssl dgst -<digest> -verify <public> -signature <sig> [-sigopt ..] <data>` says
/// Verified OK.
fn openssl_verifies(
    dir: &Path,
    public: &str,
    digest: &str,
    sigopts: &[&str],
    data: &[u8],
    signature: &[u8],
) {
    let data_file = path(dir, "signed-data");
    let sig_file = path(dir, "signature");
    fs::write(&data_file, data).unwrap();
    fs::write(&sig_file, signature).unwrap();
    let out = run(Command::new("openssl")
        .args(["dgst", digest, "-verify", public, "-signature", &sig_file])
        .args(sigopts.iter().flat_map(|o| ["-sigopt", o]))
        .arg(&data_file));
    assert!(out.contains("Verified OK"), "{out}");
}

/// Our profile signs `data` with container `index`, `openssl` verifies with `public`.
fn sign_verified(
    card: &mut Box<dyn CardModule>,
    dir: &Path,
    index: u8,
    padding: SignPadding,
    public: &str,
) {
    let data = b"signed through the PIV profile";
    let digest = HashAlg::Sha256.digest(data);
    let req = SignRequest { hash: Some(HashAlg::Sha256), padding, data: &digest };
    card.check_sign(index, &req).unwrap();
    let sig = card.sign(index, &req).unwrap();
    match padding {
        SignPadding::None => openssl_verifies(dir, public, "-sha256", &[], data, &ecdsa_der(&sig)),
        SignPadding::Pkcs1 => openssl_verifies(dir, public, "-sha256", &[], data, &sig),
        SignPadding::Pss { salt_len } => {
            let salt = format!("rsa_pss_saltlen:{salt_len}");
            let opts = ["rsa_padding_mode:pss", salt.as_str()];
            openssl_verifies(dir, public, "-sha256", &opts, data, &sig);
        }
    }
}

/// ECDH with container `index` against a host key made and derived by openssl.
fn ecdh_matches_openssl(
    card: &mut Box<dyn CardModule>,
    dir: &Path,
    index: u8,
    card_public: &str,
    curve: &str,
) {
    let host = path(dir, "host.pem");
    let host_pub = path(dir, "hostpub.pem");
    let shared = path(dir, "shared.bin");
    run(Command::new("openssl").args([
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        &format!("ec_paramgen_curve:{curve}"),
        "-out",
        &host,
    ]));
    run(Command::new("openssl").args(["pkey", "-in", &host, "-pubout", "-out", &host_pub]));
    run(Command::new("openssl").args([
        "pkeyutl",
        "-derive",
        "-inkey",
        &host,
        "-peerkey",
        card_public,
        "-out",
        &shared,
    ]));
    let peer = PublicKey::from_pem_or_der(&fs::read(&host_pub).unwrap()).unwrap();
    let secret = card.agree(index, &peer).unwrap();
    assert_eq!(secret.expose(), fs::read(&shared).unwrap().as_slice(), "ECDH shared secret");
}

/// Our profile decrypts what `openssl pkeyutl -encrypt` made with `public` (PKCS#1 v1.5 and
/// OAEP SHA-256).
fn decrypt_matches_openssl(card: &mut Box<dyn CardModule>, dir: &Path, index: u8, public: &str) {
    let plain = path(dir, "plain");
    let enc = path(dir, "encrypted");
    fs::write(&plain, b"a secret for the card").unwrap();
    for (opts, padding) in [
        (vec![], DecryptPadding::Pkcs1),
        (
            vec![
                "-pkeyopt",
                "rsa_padding_mode:oaep",
                "-pkeyopt",
                "rsa_oaep_md:sha256",
                "-pkeyopt",
                "rsa_mgf1_md:sha256",
            ],
            DecryptPadding::Oaep { hash: HashAlg::Sha256, label: Vec::new() },
        ),
    ] {
        run(Command::new("openssl")
            .args(["pkeyutl", "-encrypt", "-pubin", "-inkey", public, "-in", &plain, "-out", &enc])
            .args(opts));
        let secret = card.decrypt(index, &padding, &fs::read(&enc).unwrap()).unwrap();
        assert_eq!(secret.expose(), b"a secret for the card", "{padding:?}");
    }
}

fn p11(args: &[&str]) -> Command {
    let mut cmd = Command::new("pkcs11-tool");
    cmd.args(["--module", OPENSC_PKCS11]).args(args);
    cmd
}

#[test]
fn piv_profile_keys_used_by_opensc() {
    let Some(mut sb) = sandbox("piv_profile_keys_used_by_opensc", &["pkcs11-tool", "openssl"])
    else {
        return;
    };
    sb.attach("piv", 0, &[OsStr::new("--seed"), OsStr::new("1")]);
    let dir = sb.dir().to_path_buf();

    let mut card = open_pcsc();
    assert_eq!(card.model().family, "piv");
    let model = card.model().name.clone();
    println!("card model {model:?}, reader {}", card.channel().reader());
    admin(&mut card);
    let rsa = card.generate_key(0, KeyAlgorithm::Rsa(2048)).unwrap();
    let ec = card.generate_key(1, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let cert9a = certificate_for(&dir, "9a", &rsa);
    let cert9c = certificate_for(&dir, "9c", &ec);
    card.put_certificate(0, Some(&cert9a)).unwrap();
    card.put_certificate(1, Some(&cert9c)).unwrap();
    // PIV has no command that drops the management key's authentication: the card is reset
    // (through PC/SC's reconnection), and writes are refused again.
    card.deauthenticate(PinId::ADMIN.set()).unwrap();
    let err = card.put_certificate(1, None).unwrap_err();
    assert!(matches!(err, CardError::AuthRequired { pin: PinId::ADMIN, .. }), "{err}");
    assert_eq!(card.certificate(1).unwrap().as_deref(), Some(cert9c.as_slice()));
    drop(card);

    let before = sb.apdu_count();
    let objects = sb.ok(&mut p11(&["-O"]));
    println!("pkcs11-tool -O (OpenSC): {} APDUs", sb.apdu_count() - before);
    for expected in [
        "Public Key Object; RSA 2048 bits",
        "EC_POINT 256 bits",
        "Certificate Object; type = X.509 cert",
        "subject:    DN: CN=scard profile 9a",
        "subject:    DN: CN=scard profile 9c",
    ] {
        assert!(objects.contains(expected), "pkcs11-tool -O lacks {expected:?}:\n{objects}");
    }
    // pkcs11-tool signs with the keys our profile made; openssl verifies against the public
    // keys our profile reported.
    let data = path(&dir, "data");
    fs::write(&data, b"signed by OpenSC with a key of the PIV profile\n").unwrap();
    for (id, mechanism, name) in [("01", "SHA256-RSA-PKCS", "9a"), ("02", "ECDSA-SHA256", "9c")] {
        let sig = path(&dir, &format!("sig{name}"));
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
        println!("pkcs11-tool --login --sign {mechanism}: {} APDUs", sb.apdu_count() - before);
        let out = sb.ok(Command::new("openssl").args([
            "dgst",
            "-sha256",
            "-verify",
            &path(&dir, &format!("{name}.pem")),
            "-signature",
            &sig,
            &data,
        ]));
        assert!(out.contains("Verified OK"), "{out}");
    }

    // Our own counts on the same card, a new connection.
    let mut card = open_pcsc();
    let before = sb.apdu_count();
    let containers = card.containers().unwrap();
    let cold = sb.apdu_count() - before;
    assert_eq!(containers[0].public_key.as_ref(), Some(&rsa));
    assert_eq!(containers[1].public_key.as_ref(), Some(&ec));
    let before = sb.apdu_count();
    verify(&mut card);
    sign_verified(&mut card, &dir, 0, SignPadding::Pkcs1, &path(&dir, "9a.pem"));
    let sign = sb.apdu_count() - before;
    println!(
        "scard profile through pcscd: list containers cold {cold} APDUs (+ the registry's SELECT); verify + sign {sign} APDUs"
    );
    assert_eq!(sign, 2);
}

#[test]
fn piv_profile_uses_keys_of_yubico_piv_tool_and_piv_tool() {
    let Some(mut sb) = sandbox(
        "piv_profile_uses_keys_of_yubico_piv_tool_and_piv_tool",
        &["yubico-piv-tool", "piv-tool", "openssl"],
    ) else {
        return;
    };
    sb.attach("piv", 0, &[OsStr::new("--seed"), OsStr::new("2")]);
    let dir = sb.dir().to_path_buf();
    let ykpiv = |args: &[&str]| {
        let mut cmd = Command::new("yubico-piv-tool");
        cmd.args(["--reader", Sandbox::reader(0)]).args(args);
        cmd
    };
    let cert_pem = |slot: &str| {
        let out = path(&dir, &format!("cert{slot}.pem"));
        sb.ok(Command::new("openssl").args([
            "x509",
            "-new",
            "-subj",
            &format!("/CN=yubico {slot}/"),
            "-force_pubkey",
            &path(&dir, &format!("pub{slot}.pem")),
            "-key",
            &ca(&dir),
            "-days",
            "365",
            "-out",
            &out,
        ]));
        out
    };
    // 9A RSA 2048: generated and its certificate imported by yubico-piv-tool.
    sb.ok(&mut ykpiv(&[
        "-a",
        "generate",
        "-s",
        "9a",
        "-A",
        "RSA2048",
        "-o",
        &path(&dir, "pub9a.pem"),
    ]));
    let cert9a = cert_pem("9a");
    sb.ok(&mut ykpiv(&["-a", "import-certificate", "-s", "9a", "-i", &cert9a]));
    // 9D P-256: generated by yubico-piv-tool, certificate written by OpenSC's piv-tool (which
    // exits non-zero even when it wrote it: the card is the judge).
    sb.ok(&mut ykpiv(&[
        "-a",
        "generate",
        "-s",
        "9d",
        "-A",
        "ECCP256",
        "-o",
        &path(&dir, "pub9d.pem"),
    ]));
    let cert9d = cert_pem("9d");
    let admin_key = path(&dir, "admin.key");
    fs::write(&admin_key, ADMIN_KEY_FILE).unwrap();
    let out = sb.run(
        Command::new("piv-tool")
            .args(["--reader", "0", "-A", "M:9B:03", "-C", "9D", "-i", &cert9d])
            .env("PIV_EXT_AUTH_KEY", &admin_key),
    );
    println!("piv-tool -C 9D: {}", out.status);
    // piv-tool's own key generation fails with OpenSSL 3 before it sends GENERATE.
    let out = sb.run(
        Command::new("piv-tool")
            .args(["--reader", "0", "-A", "M:9B:03", "-G", "9E:11", "-o", &path(&dir, "pub9e.pem")])
            .env("PIV_EXT_AUTH_KEY", &admin_key),
    );
    println!("piv-tool -G 9E:11: {} {}", out.status, String::from_utf8_lossy(&out.stderr).trim());

    let mut card = open_pcsc();
    let before = sb.apdu_count();
    let c = card.containers().unwrap();
    println!(
        "scard profile: list containers cold {} APDUs (after the registry's SELECT)",
        sb.apdu_count() - before
    );
    let pub9a = PublicKey::from_pem_or_der(&fs::read(path(&dir, "pub9a.pem")).unwrap()).unwrap();
    let pub9d = PublicKey::from_pem_or_der(&fs::read(path(&dir, "pub9d.pem")).unwrap()).unwrap();
    assert_eq!(c[0].public_key.as_ref(), Some(&pub9a));
    assert_eq!(c[0].key_spec, Some(KeySpec::Exchange));
    assert_eq!(c[2].public_key.as_ref(), Some(&pub9d), "the certificate piv-tool wrote");
    assert_eq!(c[2].key_spec, Some(KeySpec::Ecdh(Curve::P256)));
    assert!(!c[1].has_key() && !c[3].has_key());
    let mut pem = |slot: &str| {
        let der = card.certificate(if slot == "9a" { 0 } else { 2 }).unwrap().unwrap();
        let file = path(&dir, &format!("read{slot}.der"));
        fs::write(&file, der).unwrap();
        let out = run(Command::new("openssl")
            .args(["x509", "-inform", "DER", "-in", &file, "-noout", "-subject"]));
        assert!(out.contains(&format!("CN = yubico {slot}")), "{out}");
    };
    pem("9a");
    pem("9d");

    let before = sb.apdu_count();
    verify(&mut card);
    sign_verified(&mut card, &dir, 0, SignPadding::Pkcs1, &path(&dir, "pub9a.pem"));
    println!("scard profile: verify + sign {} APDUs", sb.apdu_count() - before);
    sign_verified(&mut card, &dir, 0, SignPadding::Pss { salt_len: 32 }, &path(&dir, "pub9a.pem"));
    decrypt_matches_openssl(&mut card, &dir, 0, &path(&dir, "pub9a.pem"));
    ecdh_matches_openssl(&mut card, &dir, 2, &path(&dir, "pub9d.pem"), "P-256");
}

/// APDUs the card program traced so far.
fn traced(process: &CardProcess) -> usize {
    process.log().lines().filter(|l| l.starts_with(">> ")).count()
}

#[test]
fn piv_profile_on_piv_authenticator() {
    let test = "piv_profile_on_piv_authenticator";
    let started = Instant::now();
    let Some(cards) = cards_or_skip(test) else { return };
    let dir = std::env::temp_dir().join(format!("scard-{test}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let backend = VpcdBackend::listen("127.0.0.1", 0, Duration::from_secs(60)).unwrap();
    let port = backend.port().unwrap();
    let name = backend.name().to_owned();
    let process = CardProcess::start(
        cards,
        Card::Piv,
        &format!("127.0.0.1:{port}"),
        Duration::from_secs(60),
        &[OsStr::new("--trace")],
        &dir.join("card.log"),
    );
    let mut readers = Registry::new();
    readers.add(Box::new(backend));
    let registry = profiles();
    let nitrokey =
        registry.models().find(|m| m.name == "Nitrokey PIV (piv-authenticator)").unwrap().clone();
    let connect = |readers: &mut Registry| {
        let t = readers.connect(Some(&name), ShareMode::Shared).unwrap();
        // vsmartcard's generic ATR, which opcard presents too: the Nitrokey PIV model is the
        // PIV candidate (the registry confirms it by SELECT when it opens the card).
        assert_eq!(
            registry.identify(t.atr()).map(|m| m.name.as_str()),
            Some("Nitrokey PIV (piv-authenticator)")
        );
        registry.open_as(t, nitrokey.clone()).unwrap()
    };
    let mut card = connect(&mut readers);

    let props = card.properties().unwrap();
    println!("properties: {props:?}");
    assert_eq!((props.family.as_str(), props.max_containers), ("piv", 24));
    assert_eq!(props.free_containers, 24, "its 9E key has no certificate: not visible");
    assert_eq!(props.serial.len(), 32, "the GUID");
    assert_eq!(
        card.card_id().unwrap().to_vec(),
        scard_iso7816::hex::decode_lenient(&props.serial).unwrap()
    );
    let pins = card.pins().unwrap();
    assert_eq!(pins[0].tries_left, Some(3));

    // PIN: a wrong one costs a try, the card says how many are left; then the right one.
    let err = card.authenticate(PinId::USER, &Pin::new(b"654321".to_vec())).unwrap_err();
    assert!(matches!(err, CardError::WrongPin { tries_left: Some(2), .. }), "{err}");
    assert_eq!(card.tries_left(PinId::USER).unwrap(), Some(2));
    verify(&mut card);
    assert_eq!(card.tries_left(PinId::USER).unwrap(), None, "verified");

    // Management key: a wrong one (6A80 on this card), then the default 3DES key, and the
    // caller's challenge-response.
    let err = card.authenticate_admin_key(&Pin::new(vec![7u8; 24])).unwrap_err();
    assert!(matches!(err, CardError::WrongPin { pin: PinId::ADMIN, .. }), "{err}");
    admin(&mut card);
    let challenge = card.admin_challenge().unwrap();
    let response = scard_profile_piv::ManagementAlgorithm::Tdes
        .encrypt(&DEFAULT_MANAGEMENT_KEY, &challenge)
        .unwrap();
    card.admin_response(&response).unwrap();

    // Keys and certificates.
    let t0 = Instant::now();
    let rsa = card.generate_key(0, KeyAlgorithm::Rsa(2048)).unwrap();
    println!("RSA 2048 generation: {:.2} s", t0.elapsed().as_secs_f64());
    let p256 = card.generate_key(1, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let p384 = card.generate_key(2, KeyAlgorithm::Ec(Curve::P384)).unwrap();
    for (index, key, name) in [(0u8, &rsa, "nk9a"), (1, &p256, "nk9c"), (2, &p384, "nk9d")] {
        let der = certificate_for(&dir, name, key);
        card.put_certificate(index, Some(&der)).unwrap();
    }
    drop(card);

    // A new connection finds the keys through their certificates.
    let mut card = connect(&mut readers);
    let before = traced(&process);
    let c = card.containers().unwrap();
    let cold = traced(&process) - before;
    assert_eq!(c[0].public_key.as_ref(), Some(&rsa));
    assert_eq!(c[1].public_key.as_ref(), Some(&p256));
    assert_eq!(c[2].public_key.as_ref(), Some(&p384));
    assert_eq!(c[2].key_spec, Some(KeySpec::Ecdh(Curve::P384)));
    assert!(!c[3].has_key());

    let before = traced(&process);
    verify(&mut card);
    sign_verified(&mut card, &dir, 0, SignPadding::Pkcs1, &path(&dir, "nk9a.pem"));
    let sign = traced(&process) - before;
    println!("piv-authenticator: list containers cold {cold} APDUs; verify + sign {sign} APDUs");
    sign_verified(&mut card, &dir, 0, SignPadding::Pss { salt_len: 32 }, &path(&dir, "nk9a.pem"));
    // 9C: "PIN Always", verified right before the signature.
    verify(&mut card);
    sign_verified(&mut card, &dir, 1, SignPadding::None, &path(&dir, "nk9c.pem"));
    let again =
        SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::None, data: &[1; 32] };
    let err = card.sign(1, &again).unwrap_err();
    assert!(matches!(err, CardError::AuthRequired { .. }), "9C without a fresh PIN: {err}");
    decrypt_matches_openssl(&mut card, &dir, 0, &path(&dir, "nk9a.pem"));
    ecdh_matches_openssl(&mut card, &dir, 2, &path(&dir, "nk9d.pem"), "P-384");

    // Removing a certificate removes the key from later views.
    admin(&mut card);
    card.delete_container(1).unwrap();
    drop(card);
    let mut card = connect(&mut readers);
    assert!(!card.container(1).unwrap().has_key());
    drop(card);
    let log = process.stop();
    println!("--- card log (tail) ---\n{}", scard_tests::interop::tail(&log, 12));
    println!("[time] {test}: {:.2} s", started.elapsed().as_secs_f64());
    let _ = fs::remove_dir_all(&dir);
}
