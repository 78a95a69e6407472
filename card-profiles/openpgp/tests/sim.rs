//! The OpenPGP profile against scard-sim's OpenPGP card 3.4, in process (scard-transport's
//! virtual backend): every operation of the profile, with the APDUs it sends recorded and
//! counted, signatures verified with RustCrypto, and a card that answers garbage.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::{Arc, Mutex};

use p256::elliptic_curve::sec1::ToEncodedPoint;
use rand_core::OsRng;
use scard_minidriver::fs::{ContainerMapRecord, FilePath, decode_cmapfile};
use scard_minidriver::{
    CardChannel, CardError, CardModule, Curve, DecryptPadding, FileCache, HashAlg, KeyAlgorithm,
    KeySpec, Pin, PinId, PinSet, ProfileRegistry, PublicKey, SignPadding, SignRequest,
};
use scard_profile_openpgp::{OpenPgpCard, Role, family};
use scard_sim::{Card, SimRng};
use scard_transport::virtual_card::{VirtualBackend, VirtualCard};
use scard_transport::{Backend, CardTransport, Disposition, ShareMode};

const PW1: &[u8] = b"123456";
const PW3: &[u8] = b"12345678";
const READER: &str = "sim:openpgp";

type Log = Arc<Mutex<Vec<Vec<u8>>>>;
type Tamper = Arc<Mutex<Option<Box<dyn FnMut(&[u8], Vec<u8>) -> Vec<u8> + Send>>>>;

/// The simulated card, recording every command APDU and letting a test replace answers.
struct Recorder {
    card: Box<dyn Card>,
    log: Log,
    tamper: Tamper,
}

impl VirtualCard for Recorder {
    fn atr(&self) -> Vec<u8> {
        self.card.atr().to_vec()
    }
    fn power_on(&mut self) {
        self.card.power_on();
    }
    fn reset(&mut self) {
        self.card.reset();
    }
    fn power_off(&mut self) {
        self.card.power_off();
    }
    fn process(&mut self, command: &[u8]) -> Vec<u8> {
        self.log.lock().unwrap().push(command.to_vec());
        let answer = self.card.process(command);
        match self.tamper.lock().unwrap().as_mut() {
            Some(f) => f(command, answer),
            None => answer,
        }
    }
}

struct Harness {
    backend: VirtualBackend,
    log: Log,
    tamper: Tamper,
}

impl Harness {
    fn new(seed: u64) -> Self {
        let backend = VirtualBackend::new();
        let log = Log::default();
        let tamper = Tamper::default();
        let card = scard_sim::new_card(scard_sim::Family::OpenPgp, SimRng::from_seed(seed));
        backend
            .insert(READER, Box::new(Recorder { card, log: log.clone(), tamper: tamper.clone() }));
        Self { backend, log, tamper }
    }

    fn connect(&self) -> Box<dyn CardTransport> {
        self.backend.clone().connect(&READER.parse().unwrap(), ShareMode::Shared).unwrap().unwrap()
    }

    fn registry() -> ProfileRegistry {
        let mut registry = ProfileRegistry::new();
        registry.register(family());
        assert_eq!(
            registry.load_errors().count(),
            0,
            "{:?}",
            registry.load_errors().collect::<Vec<_>>()
        );
        registry
    }

    /// Opened as the registry does: by the ATR.
    fn open(&self) -> Box<dyn CardModule> {
        Self::registry().open(self.connect()).unwrap()
    }

    /// Opened directly, for the profile's own methods.
    fn open_pgp(&self) -> OpenPgpCard {
        let transport = self.connect();
        let model = Self::registry().identify(transport.atr()).unwrap().clone();
        let mut card = OpenPgpCard::new(CardChannel::new(transport), model);
        card.set_clock(|| 1_700_000_000);
        card
    }

    fn apdus(&self) -> Vec<Vec<u8>> {
        self.log.lock().unwrap().clone()
    }

    fn clear(&self) {
        self.log.lock().unwrap().clear();
    }

    /// Commands with this INS since the last clear.
    fn count(&self, ins: u8) -> usize {
        self.apdus().iter().filter(|a| a.get(1) == Some(&ins)).count()
    }

    fn tamper(&self, f: impl FnMut(&[u8], Vec<u8>) -> Vec<u8> + Send + 'static) {
        *self.tamper.lock().unwrap() = Some(Box::new(f));
    }

    fn untamper(&self) {
        *self.tamper.lock().unwrap() = None;
    }

    /// Sends raw APDUs on a connection of its own (another application), returning the
    /// answers.
    fn raw(&self, apdus: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut t = self.connect();
        apdus.iter().map(|a| t.transmit(a).unwrap()).collect()
    }
}

fn pin(v: &[u8]) -> Pin {
    Pin::new(v.to_vec())
}

fn sha256(data: &[u8]) -> Vec<u8> {
    HashAlg::Sha256.digest(data)
}

fn sign_request(hash: HashAlg, digest: &[u8], padding: SignPadding) -> SignRequest<'_> {
    SignRequest { hash: Some(hash), padding, data: digest }
}

fn verify_rsa_pkcs1(key: &PublicKey, digest: &[u8], sig: &[u8]) {
    let PublicKey::Rsa { n, e } = key else { panic!("not RSA: {key:?}") };
    let key =
        rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(n), rsa::BigUint::from_bytes_be(e))
            .unwrap();
    key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), digest, sig)
        .expect("RSA PKCS#1 v1.5 signature verifies");
}

fn verify_ecdsa(key: &PublicKey, digest: &[u8], sig: &[u8]) {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let PublicKey::Ec { curve, point } = key else { panic!("not EC") };
    match curve {
        Curve::P256 => {
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
            let sig = p256::ecdsa::Signature::from_slice(sig).unwrap();
            vk.verify_prehash(digest, &sig).expect("P-256 signature verifies");
        }
        Curve::P384 => {
            let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
            let sig = p384::ecdsa::Signature::from_slice(sig).unwrap();
            vk.verify_prehash(digest, &sig).expect("P-384 signature verifies");
        }
        Curve::P521 => panic!("P-521"),
    }
}

/// A certificate-shaped blob (a DER SEQUENCE) of `len` bytes.
fn fake_cert(tag: u8, len: usize) -> Vec<u8> {
    let body = len - 4;
    let mut v = vec![0x30, 0x82, (body >> 8) as u8, body as u8];
    v.extend((0..body).map(|i| tag ^ (i as u8)));
    v
}

#[test]
fn opened_by_atr_and_the_application_related_data_read_once() {
    let h = Harness::new(1);
    let mut card = h.open();
    assert_eq!(card.model().name, "OpenPGP card 3.x (ZeitControl V3, scard simulator)");
    let props = card.properties().unwrap();
    assert_eq!(props.family, "openpgp");
    // Card id: the full AID (§4.2.1), manufacturer FFFF (test card) and the serial.
    assert_eq!(&props.card_id[..10], &[0xD2, 0x76, 0x00, 0x01, 0x24, 0x01, 0x03, 0x04, 0xFF, 0xFF]);
    assert_eq!(props.serial.len(), 12);
    assert!(props.serial.starts_with("FFFF"));
    assert_eq!(props.max_containers, 3);
    assert_eq!(props.free_containers, 3);
    assert_eq!(card.card_id().unwrap(), props.card_id);
    let apdus = h.apdus();
    // SELECT of the partial AID, then GET DATA 6E with an extended Le (the model allows it).
    assert_eq!(apdus.len(), 2, "{apdus:02X?}");
    assert_eq!(apdus[0], [0x00, 0xA4, 0x04, 0x00, 0x06, 0xD2, 0x76, 0x00, 0x01, 0x24, 0x01, 0x00]);
    assert_eq!(apdus[1], [0x00, 0xCA, 0x00, 0x6E, 0x00, 0x10, 0x00]);
    // Nothing more for pins, containers of an empty card, or the card id again... except the
    // record DO for the certificate map.
    h.clear();
    card.pins().unwrap();
    card.card_id().unwrap();
    assert_eq!(h.apdus().len(), 0);
    let containers = card.containers().unwrap();
    assert_eq!(containers.len(), 3);
    assert!(containers.iter().all(|c| !c.has_key() && !c.has_certificate));
    assert_eq!(
        h.apdus(),
        vec![vec![0x00, 0xCA, 0x01, 0x02, 0x00, 0x0F, 0xFE]],
        "GET DATA 0102 only"
    );
}

#[test]
fn tries_left_come_from_c4_without_verify() {
    let h = Harness::new(2);
    let mut card = h.open();
    let pins = card.pins().unwrap();
    let ids: Vec<u8> = pins.iter().map(|p| p.id.get()).collect();
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(pins[0].tries_left, Some(3));
    assert_eq!(pins[1].tries_left, Some(3));
    assert_eq!(pins[2].tries_left, Some(0), "no resetting code is set");
    assert_eq!((pins[0].min_len, pins[0].max_len), (6, 127));
    assert_eq!((pins[1].min_len, pins[1].max_len), (8, 127));
    assert_eq!(card.tries_left(PinId::ADMIN).unwrap(), Some(3));
    assert_eq!(h.count(0x20), 0, "no VERIFY");
}

#[test]
fn wrong_pin_countdown_then_blocked() {
    let h = Harness::new(3);
    let mut card = h.open();
    // Too short: refused before anything is sent (a card may count a try for it).
    let err = card.authenticate(PinId::USER, &pin(b"12345")).unwrap_err();
    assert!(matches!(err, CardError::PinFormat { .. }), "{err}");
    let err = card.authenticate(PinId::ADMIN, &pin(b"1234567")).unwrap_err();
    assert!(matches!(err, CardError::PinFormat { .. }), "{err}");
    assert_eq!(h.count(0x20), 0);
    for left in [2, 1] {
        let err = card.authenticate(PinId::USER, &pin(b"000000")).unwrap_err();
        assert!(
            matches!(err, CardError::WrongPin { tries_left: Some(n), .. } if n == left),
            "{err}"
        );
    }
    let err = card.authenticate(PinId::USER, &pin(b"000000")).unwrap_err();
    assert!(matches!(err, CardError::PinBlocked { pin } if pin == PinId::USER), "{err}");
    assert_eq!(card.tries_left(PinId::USER).unwrap(), Some(0));
    let err = card.authenticate(PinId::USER, &pin(PW1)).unwrap_err();
    assert!(matches!(err, CardError::PinBlocked { .. }), "{err}");
    // One VERIFY per attempt, never a retry.
    assert_eq!(h.count(0x20), 4);
    assert!(!card.channel().authenticated().contains(PinId::USER));
}

#[test]
fn unblock_with_pw3_and_with_the_resetting_code() {
    let h = Harness::new(4);
    let mut card = h.open();
    for _ in 0..3 {
        let _ = card.authenticate(PinId::USER, &pin(b"000000"));
    }
    assert_eq!(card.tries_left(PinId::USER).unwrap(), Some(0));
    // With PW3: VERIFY 83, then RESET RETRY COUNTER P1 02.
    h.clear();
    card.unblock_pin(PinId::USER, &pin(PW3), &pin(b"111111")).unwrap();
    let apdus = h.apdus();
    assert!(apdus.iter().any(|a| a.starts_with(&[0x00, 0x20, 0x00, 0x83])));
    assert!(apdus.iter().any(|a| a.starts_with(&[0x00, 0x2C, 0x02, 0x81])));
    assert_eq!(card.tries_left(PinId::USER).unwrap(), Some(3));
    card.authenticate(PinId::USER, &pin(b"111111")).unwrap();

    // Set a resetting code (admin), drop PW3, block PW1 again, unblock with the code.
    card.change_pin(PinId::new(3).unwrap(), &pin(PW3), &pin(b"resetcode")).unwrap();
    assert_eq!(card.tries_left(PinId::new(3).unwrap()).unwrap(), Some(3));
    card.deauthenticate(PinId::ADMIN.set()).unwrap();
    for _ in 0..3 {
        let _ = card.authenticate(PinId::USER, &pin(b"000000"));
    }
    let err = card.unblock_pin(PinId::USER, &pin(b"wrongcode"), &pin(b"222222")).unwrap_err();
    assert!(
        matches!(err, CardError::WrongPin { pin, tries_left: Some(2) } if pin.get() == 3),
        "{err}"
    );
    h.clear();
    card.unblock_pin(PinId::USER, &pin(b"resetcode"), &pin(b"222222")).unwrap();
    assert!(h.apdus().iter().any(|a| a.starts_with(&[0x00, 0x2C, 0x00, 0x81])));
    assert_eq!(h.count(0x20), 0, "the resetting code goes in RESET RETRY COUNTER, no VERIFY");
    card.authenticate(PinId::USER, &pin(b"222222")).unwrap();
    // The PIN 3 counter started again after the right code.
    assert_eq!(card.tries_left(PinId::new(3).unwrap()).unwrap(), Some(3));
    // A too short new PIN is refused before anything is sent.
    let err = card.unblock_pin(PinId::USER, &pin(b"resetcode"), &pin(b"12")).unwrap_err();
    assert!(matches!(err, CardError::PinFormat { .. }), "{err}");
}

#[test]
fn change_pins() {
    let h = Harness::new(5);
    let mut card = h.open();
    let cf0 = card.cardcf().unwrap();
    let err = card.change_pin(PinId::USER, &pin(b"999999"), &pin(b"654321")).unwrap_err();
    assert!(matches!(err, CardError::WrongPin { tries_left: Some(2), .. }), "{err}");
    card.change_pin(PinId::USER, &pin(PW1), &pin(b"654321")).unwrap();
    assert!(card.authenticate(PinId::USER, &pin(PW1)).is_err());
    card.authenticate(PinId::USER, &pin(b"654321")).unwrap();
    card.change_pin(PinId::ADMIN, &pin(PW3), &pin(b"87654321")).unwrap();
    card.authenticate(PinId::ADMIN, &pin(b"87654321")).unwrap();
    let cf = card.cardcf().unwrap();
    assert_eq!(cf.pins, cf0.pins.wrapping_add(2), "{cf0:?} -> {cf:?}");
    // PIN 3 (the resetting code) and PIN 0 cannot be verified.
    assert!(matches!(
        card.authenticate(PinId::new(3).unwrap(), &pin(b"resetcode")),
        Err(CardError::Unsupported { .. })
    ));
    assert!(card.authenticate(PinId::EVERYONE, &pin(b"whatever")).is_err());
}

/// On-card generation of every algorithm the simulator takes, the fingerprints GnuPG would
/// write, and every private-key operation checked on the host.
#[test]
fn keygen_sign_decrypt_agree() {
    let h = Harness::new(6);
    let mut card = h.open_pgp();
    // Key generation needs PW3, asked before anything is sent.
    let err = card.generate_key(0, KeyAlgorithm::Rsa(2048)).unwrap_err();
    assert!(matches!(err, CardError::AuthRequired { pin, .. } if pin == PinId::ADMIN), "{err}");
    assert_eq!(h.count(0x47), 0);
    assert!(matches!(
        card.generate_key(0, KeyAlgorithm::Ec(Curve::P521)),
        Err(CardError::Unsupported { .. })
    ));
    card.authenticate(PinId::ADMIN, &pin(PW3)).unwrap();

    // RSA 2048 signature key: PSO:CDS of a SHA-256 DigestInfo.
    h.clear();
    let sig_key = card.generate_key(0, KeyAlgorithm::Rsa(2048)).unwrap();
    // The attributes were RSA 2048 already: no PUT DATA C1; the container's certificate
    // read (none), GENERATE, CE, then C7 (the fingerprint says there is a key: last), and the
    // cardcf record (a fresh card: the record DO is read first).
    let puts: Vec<u16> = h
        .apdus()
        .iter()
        .filter(|a| a[1] == 0xDA)
        .map(|a| u16::from_be_bytes([a[2], a[3]]))
        .collect();
    assert_eq!(puts, [0x00CE, 0x00C7, 0x0102], "{:02X?}", h.apdus());
    let ard = card.application_data().unwrap();
    let want = scard_profile_openpgp::fingerprint::v4(&sig_key, 1_700_000_000, Role::Sig).unwrap();
    assert_eq!(ard.fingerprint(Role::Sig), &want);
    assert_eq!(ard.date(Role::Sig), 1_700_000_000);
    let digest = sha256(b"message one");
    card.authenticate(PinId::USER, &pin(PW1)).unwrap();
    let sig = card.sign(0, &sign_request(HashAlg::Sha256, &digest, SignPadding::Pkcs1)).unwrap();
    assert_eq!(sig.len(), 256);
    verify_rsa_pkcs1(&sig_key, &digest, &sig);
    // The container reads the same public key back (GENERATE P1 81) in a new session.
    let mut again = h.open();
    assert_eq!(again.container(0).unwrap().public_key.unwrap(), sig_key);
    // (Its SELECT ended this card's verifications, as on a real card shared by two
    // applications.)
    assert!(matches!(
        card.generate_key(2, KeyAlgorithm::Ec(Curve::P256)),
        Err(CardError::AuthRequired { .. })
    ));
    card.authenticate(PinId::ADMIN, &pin(PW3)).unwrap();
    card.authenticate(PinId::USER, &pin(PW1)).unwrap();

    // P-256 authentication key: PUT DATA C3, GENERATE; INTERNAL AUTHENTICATE after PW1 82,
    // verified with the value PW1 81 was accepted with.
    let aut_key = card.generate_key(2, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    h.clear();
    let sig = card.sign(2, &sign_request(HashAlg::Sha256, &digest, SignPadding::None)).unwrap();
    assert_eq!(sig.len(), 64);
    verify_ecdsa(&aut_key, &digest, &sig);
    assert_eq!(h.count(0x20), 1, "VERIFY 82 once");
    assert!(h.apdus().iter().any(|a| a.starts_with(&[0x00, 0x20, 0x00, 0x82])));

    // P-384 signature key; a SHA-256 hash is given as the 48-byte integer it is.
    let sig384 = card.generate_key(0, KeyAlgorithm::Ec(Curve::P384)).unwrap();
    card.authenticate(PinId::USER, &pin(PW1)).unwrap();
    let sig = card.sign(0, &sign_request(HashAlg::Sha256, &digest, SignPadding::None)).unwrap();
    assert_eq!(sig.len(), 96);
    verify_ecdsa(&sig384, &digest, &sig);
    let d384 = HashAlg::Sha384.digest(b"message two");
    card.authenticate(PinId::USER, &pin(PW1)).unwrap();
    let sig = card.sign(0, &sign_request(HashAlg::Sha384, &d384, SignPadding::None)).unwrap();
    verify_ecdsa(&sig384, &d384, &sig);
    let aut384 = card.generate_key(2, KeyAlgorithm::Ec(Curve::P384)).unwrap();
    let sig = card.sign(2, &sign_request(HashAlg::Sha384, &d384, SignPadding::None)).unwrap();
    verify_ecdsa(&aut384, &d384, &sig);

    // RSA 2048 decryption key: PSO:DECIPHER, the card removes PKCS#1 v1.5 padding.
    let dec_key = card.generate_key(1, KeyAlgorithm::Rsa(2048)).unwrap();
    let PublicKey::Rsa { n, e } = &dec_key else { panic!() };
    let host =
        rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(n), rsa::BigUint::from_bytes_be(e))
            .unwrap();
    let ct = host.encrypt(&mut OsRng, rsa::Pkcs1v15Encrypt, b"a session key").unwrap();
    h.clear();
    let plain = card.decrypt(1, &DecryptPadding::Pkcs1, &ct).unwrap();
    assert_eq!(plain.expose(), b"a session key");
    assert_eq!(h.count(0x20), 0, "PW1 82 still verified");
    // 257 bytes of command data: extended Lc (the model allows it).
    assert!(h.apdus().iter().any(|a| a.starts_with(&[0x00, 0x2A, 0x80, 0x86, 0x00, 0x01, 0x01])));

    // P-256 decryption key: ECDH against a host key.
    let ecdh_key = card.generate_key(1, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let ard = card.application_data().unwrap();
    assert_eq!(ard.attributes(Role::Dec).raw[0], 0x12, "ECDH attributes for the decryption key");
    let host = p256::SecretKey::random(&mut OsRng);
    let peer = PublicKey::Ec {
        curve: Curve::P256,
        point: host.public_key().to_encoded_point(false).as_bytes().to_vec(),
    };
    let shared = card.agree(1, &peer).unwrap();
    let PublicKey::Ec { point, .. } = &ecdh_key else { panic!() };
    let card_pub = p256::PublicKey::from_sec1_bytes(point).unwrap();
    let expected = p256::ecdh::diffie_hellman(host.to_nonzero_scalar(), card_pub.as_affine());
    assert_eq!(shared.expose(), expected.raw_secret_bytes().as_slice());
    // A peer on another curve is refused before anything is sent.
    h.clear();
    let p384_peer = PublicKey::Ec {
        curve: Curve::P384,
        point: p384::SecretKey::random(&mut OsRng)
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec(),
    };
    assert!(matches!(card.agree(1, &p384_peer), Err(CardError::InvalidInput { .. })));
    assert_eq!(h.apdus().len(), 0);

    // Key specs as Windows sees them.
    let containers = card.containers().unwrap();
    assert_eq!(containers[0].key_spec, Some(KeySpec::Ecdsa(Curve::P384)));
    assert_eq!(containers[1].key_spec, Some(KeySpec::Ecdh(Curve::P256)));
    assert_eq!(containers[2].key_spec, Some(KeySpec::Ecdsa(Curve::P384)));
    assert!(containers[2].default && !containers[0].default);
}

#[test]
fn the_signature_pin_is_valid_for_one_signature() {
    let h = Harness::new(7);
    let mut card = h.open();
    card.authenticate(PinId::ADMIN, &pin(PW3)).unwrap();
    let key = card.generate_key(0, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    assert!(card.containers().unwrap()[0].always_authenticate, "C4 byte 1 is 00");
    let digest = sha256(b"x");
    let req = sign_request(HashAlg::Sha256, &digest, SignPadding::None);
    let err = card.sign(0, &req).unwrap_err();
    assert!(matches!(err, CardError::AuthRequired { pin, .. } if pin == PinId::USER), "{err}");
    card.authenticate(PinId::USER, &pin(PW1)).unwrap();
    h.clear();
    let sig = card.sign(0, &req).unwrap();
    verify_ecdsa(&key, &digest, &sig);
    assert_eq!(h.apdus().len(), 1, "warm signature: PSO:CDS only");
    // The second signature needs the PIN again; the cached value is never used for 81.
    h.clear();
    let err = card.sign(0, &req).unwrap_err();
    assert!(matches!(err, CardError::AuthRequired { .. }), "{err}");
    assert_eq!(h.apdus().len(), 0);
    // APDU count of "verify + sign" from a cold start (a new session).
    let mut cold = h.open();
    h.clear();
    cold.authenticate(PinId::USER, &pin(PW1)).unwrap();
    cold.sign(0, &req).unwrap();
    let apdus = h.apdus();
    println!(
        "verify + sign, cold: {} APDUs: {:02X?}",
        apdus.len(),
        apdus.iter().map(|a| &a[..4]).collect::<Vec<_>>()
    );
    assert_eq!(apdus.len(), 4, "SELECT, GET DATA 6E, VERIFY 81, PSO:CDS");
}

#[test]
fn pw1_82_is_verified_lazily_once() {
    let h = Harness::new(8);
    let mut card = h.open();
    card.authenticate(PinId::ADMIN, &pin(PW3)).unwrap();
    card.generate_key(1, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let host = p256::SecretKey::random(&mut OsRng);
    let peer = PublicKey::Ec {
        curve: Curve::P256,
        point: host.public_key().to_encoded_point(false).as_bytes().to_vec(),
    };
    let err = card.agree(1, &peer).unwrap_err();
    assert!(matches!(err, CardError::AuthRequired { .. }), "{err}");
    h.clear();
    card.authenticate(PinId::USER, &pin(PW1)).unwrap();
    card.agree(1, &peer).unwrap();
    card.agree(1, &peer).unwrap();
    assert_eq!(h.count(0x20), 2, "VERIFY 81, then 82 once");
    // Deauthentication resets both references and forgets the value.
    card.deauthenticate(PinId::USER.set()).unwrap();
    let resets: Vec<_> = h.apdus().into_iter().filter(|a| a[1] == 0x20 && a[2] == 0xFF).collect();
    assert_eq!(resets, vec![vec![0x00, 0x20, 0xFF, 0x81], vec![0x00, 0x20, 0xFF, 0x82]]);
    assert!(matches!(card.agree(1, &peer), Err(CardError::AuthRequired { .. })));
    assert!(card.channel().authenticated() == PinSet::NONE.with(PinId::ADMIN));
}

#[test]
fn pss_oaep_and_raw_are_refused_before_any_pin() {
    let h = Harness::new(9);
    let mut card = h.open();
    card.authenticate(PinId::ADMIN, &pin(PW3)).unwrap();
    card.generate_key(0, KeyAlgorithm::Rsa(2048)).unwrap();
    card.generate_key(1, KeyAlgorithm::Rsa(2048)).unwrap();
    card.deauthenticate(PinId::ADMIN.set()).unwrap();
    h.clear();
    let digest = sha256(b"x");
    let pss = sign_request(HashAlg::Sha256, &digest, SignPadding::Pss { salt_len: 32 });
    assert!(matches!(card.check_sign(0, &pss), Err(CardError::Unsupported { .. })));
    assert!(matches!(card.sign(0, &pss), Err(CardError::Unsupported { .. })));
    let raw = SignRequest { hash: None, padding: SignPadding::None, data: &[0u8; 256] };
    assert!(matches!(card.sign(0, &raw), Err(CardError::Unsupported { .. })));
    let oaep = DecryptPadding::Oaep { hash: HashAlg::Sha256, label: Vec::new() };
    assert!(matches!(card.check_decrypt(1, &oaep), Err(CardError::Unsupported { .. })));
    assert!(matches!(card.decrypt(1, &oaep, &[1; 256]), Err(CardError::Unsupported { .. })));
    assert!(matches!(
        card.decrypt(1, &DecryptPadding::None, &[1; 256]),
        Err(CardError::Unsupported { .. })
    ));
    // The decryption key does not sign, the signature key does not decrypt.
    let pkcs1 = sign_request(HashAlg::Sha256, &digest, SignPadding::Pkcs1);
    assert!(matches!(card.check_sign(1, &pkcs1), Err(CardError::Unsupported { .. })));
    assert!(matches!(
        card.check_decrypt(0, &DecryptPadding::Pkcs1),
        Err(CardError::Unsupported { .. })
    ));
    // An empty container, a wrong digest length, an unknown container.
    assert!(matches!(card.check_sign(2, &pkcs1), Err(CardError::EmptyContainer { .. })));
    let short = sign_request(HashAlg::Sha256, &digest[..20], SignPadding::Pkcs1);
    assert!(matches!(card.check_sign(0, &short), Err(CardError::InvalidInput { .. })));
    assert!(matches!(card.check_sign(3, &pkcs1), Err(CardError::NoContainer { .. })));
    card.check_sign(0, &pkcs1).unwrap();
    card.check_decrypt(1, &DecryptPadding::Pkcs1).unwrap();
    assert_eq!(h.count(0x20), 0, "no VERIFY for any of it");
    assert_eq!(h.count(0x2A) + h.count(0x88), 0, "nor a private-key command");
}

#[test]
fn certificates_in_their_occurrences() {
    let h = Harness::new(10);
    let mut card = h.open();
    let certs = [fake_cert(0xA0, 900), fake_cert(0xB0, 1200), fake_cert(0xC0, 600)];
    let err = card.put_certificate(0, Some(&certs[0])).unwrap_err();
    assert!(matches!(err, CardError::AuthRequired { pin, .. } if pin == PinId::ADMIN), "{err}");
    card.authenticate(PinId::ADMIN, &pin(PW3)).unwrap();
    let too_big = fake_cert(0xD0, 3000);
    assert!(matches!(card.put_certificate(0, Some(&too_big)), Err(CardError::InvalidInput { .. })));
    for (i, c) in certs.iter().enumerate() {
        h.clear();
        card.put_certificate(i as u8, Some(c)).unwrap();
        // SELECT DATA with the occurrence of the key: SIG 2, DEC 1, AUT 0.
        let select = h.apdus().into_iter().find(|a| a[1] == 0xA5).unwrap();
        assert_eq!(
            select,
            [0x00, 0xA5, [2, 1, 0][i], 0x04, 0x06, 0x60, 0x04, 0x5C, 0x02, 0x7F, 0x21]
        );
    }
    // Read back in a new session.
    let mut other = h.open();
    for (i, c) in certs.iter().enumerate() {
        assert_eq!(other.certificate(i as u8).unwrap().as_deref(), Some(c.as_slice()));
    }
    // Without SELECT DATA, GET DATA 7F21 reads occurrence 0: the authentication key's.
    let answers = h.raw(&[
        &[0x00, 0xA4, 0x04, 0x00, 0x06, 0xD2, 0x76, 0x00, 0x01, 0x24, 0x01],
        &[0x00, 0xCA, 0x7F, 0x21, 0x00, 0x00, 0x00],
    ]);
    assert_eq!(&answers[1][..answers[1].len() - 2], certs[2].as_slice());
    // Removal (the other application's SELECT ended the PW3 verification on this card).
    assert!(matches!(card.put_certificate(1, None), Err(CardError::AuthRequired { .. })));
    card.authenticate(PinId::ADMIN, &pin(PW3)).unwrap();
    card.put_certificate(1, None).unwrap();
    assert_eq!(h.open().certificate(1).unwrap(), None);
}

#[test]
fn the_file_system_cmapfile_kxc_ksc() {
    let h = Harness::new(11);
    let mut card = h.open();
    card.authenticate(PinId::ADMIN, &pin(PW3)).unwrap();
    card.generate_key(0, KeyAlgorithm::Rsa(2048)).unwrap();
    card.generate_key(1, KeyAlgorithm::Rsa(2048)).unwrap();
    card.generate_key(2, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let certs = [fake_cert(1, 700), fake_cert(2, 800), fake_cert(3, 500)];
    for (i, c) in certs.iter().enumerate() {
        card.write_file(
            &FilePath::parse(&format!("mscp/{}{i:02}", if i == 1 { "kxc" } else { "ksc" }))
                .unwrap(),
            c,
        )
        .unwrap();
    }
    let mut card = h.open();
    let names = card.list_files(Some("mscp")).unwrap();
    assert_eq!(names, ["cmapfile", "ksc00", "kxc01", "ksc02"]);
    assert_eq!(card.list_files(None).unwrap(), ["cardid", "cardcf", "cardapps"]);
    let cmap = card.read_file(&FilePath::CmapFile).unwrap();
    assert_eq!(cmap.len(), 3 * ContainerMapRecord::LEN);
    let records = decode_cmapfile(&cmap).unwrap();
    assert!(records[0].name.starts_with("OPENPGP-FFFF") && records[0].name.ends_with("-SIG"));
    assert_eq!((records[0].sig_key_bits, records[0].kx_key_bits), (2048, 0));
    assert_eq!((records[1].sig_key_bits, records[1].kx_key_bits), (0, 2048));
    assert_eq!((records[2].sig_key_bits, records[2].kx_key_bits), (256, 0));
    assert_eq!(
        records.iter().map(|r| r.flags).collect::<Vec<_>>(),
        [1, 1, 3],
        "container 2 is the default"
    );
    assert_eq!(card.read_file(&FilePath::KeyExchangeCert(1)).unwrap(), certs[1]);
    assert_eq!(card.read_file(&FilePath::SignatureCert(2)).unwrap(), certs[2]);
    // The wrong kind of file for a container does not exist.
    assert!(matches!(
        card.read_file(&FilePath::KeyExchangeCert(0)),
        Err(CardError::FileNotFound { .. })
    ));
    assert_eq!(card.read_file(&FilePath::CardId).unwrap(), card.card_id().unwrap());
    assert_eq!(card.read_file(&FilePath::CardApps).unwrap(), b"mscp\0\0\0\0");
    assert_eq!(card.file_info(&FilePath::CmapFile).unwrap().size, 258);
    assert!(card.write_file(&FilePath::CmapFile, &[0; 86]).is_err());

    // Deleting container 2: a zero-filled record, its certificate gone.
    card.authenticate(PinId::ADMIN, &pin(PW3)).unwrap();
    card.delete_container(2).unwrap();
    let mut card = h.open();
    let cmap = card.read_file(&FilePath::CmapFile).unwrap();
    assert_eq!(cmap.len(), 3 * 86);
    assert!(cmap[172..].iter().all(|&b| b == 0));
    assert_eq!(card.list_files(Some("mscp")).unwrap(), ["cmapfile", "ksc00", "kxc01"]);
    assert_eq!(card.certificate(2).unwrap(), None);
    assert_eq!(card.properties().unwrap().free_containers, 1);
}

#[test]
fn freshness_on_card_and_the_host_cache() {
    let h = Harness::new(12);
    let mut card = h.open();
    let cf0 = card.cardcf().unwrap();
    assert!(!card.freshness_on_card(), "a new card has no record yet");
    card.authenticate(PinId::ADMIN, &pin(PW3)).unwrap();
    card.generate_key(0, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let cf1 = card.cardcf().unwrap();
    assert!(card.freshness_on_card());
    assert_eq!(cf1.containers, cf0.containers + 1);
    card.generate_key(1, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    card.put_certificate(0, Some(&fake_cert(5, 700))).unwrap();
    card.put_certificate(1, Some(&fake_cert(6, 700))).unwrap();
    let cf2 = card.cardcf().unwrap();
    assert_eq!((cf2.containers, cf2.files), (cf1.containers + 1, cf1.files + 2));
    // A PIN change with PW3 verified is written too.
    card.change_pin(PinId::USER, &pin(PW1), &pin(b"123123")).unwrap();
    let cf3 = card.cardcf().unwrap();
    assert_eq!(cf3.pins, cf2.pins + 1);

    // Another process: the same counters, from the card.
    let mut other = h.open();
    assert_eq!(other.cardcf().unwrap(), cf3);
    assert!(other.freshness_on_card());

    // The host cache across processes: the second enumeration reads no certificate.
    let dir = std::env::temp_dir().join(format!("scard-openpgp-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cache = FileCache::with_dir(&dir);
    // One transaction, as a key storage provider enumerates (cardcf is checked once).
    let enumerate = |cache: &mut FileCache| {
        let mut card = h.open();
        scard_minidriver::with_transaction(card.as_mut(), |card| {
            let mut found = Vec::new();
            for c in card.containers()? {
                if c.has_certificate {
                    found.push(cache.certificate(card, c.index)?.unwrap());
                }
            }
            Ok(found)
        })
        .unwrap()
    };
    h.clear();
    let first = enumerate(&mut cache);
    assert_eq!(first.len(), 2);
    assert_eq!(cache.card_reads(), 2);
    let cold_apdus = h.apdus().len();
    h.clear();
    let mut cache2 = FileCache::with_dir(&dir);
    let second = enumerate(&mut cache2);
    assert_eq!(second, first);
    assert_eq!(cache2.card_reads(), 0);
    assert_eq!(h.count(0xA5), 0, "no SELECT DATA");
    assert!(!h.apdus().iter().any(|a| a[1] == 0xCA && a[2..4] == [0x7F, 0x21]), "no GET DATA 7F21");
    println!(
        "list containers + certificates: cold {cold_apdus} APDUs, with the host cache {}",
        h.apdus().len()
    );
    assert_eq!(h.apdus().len(), 3, "SELECT, GET DATA 6E, GET DATA 0102");

    // A key generated by someone else (as GnuPG does: GENERATE, then C7 and CE) moves the
    // counters, and the certificates are read again.
    let answers = h.raw(&[
        &[0x00, 0xA4, 0x04, 0x00, 0x06, 0xD2, 0x76, 0x00, 0x01, 0x24, 0x01],
        &[0x00, 0x20, 0x00, 0x83, 0x08, b'1', b'2', b'3', b'4', b'5', b'6', b'7', b'8'],
        &[0x00, 0x47, 0x80, 0x00, 0x02, 0xB8, 0x00, 0x00],
        &[
            0x00, 0xDA, 0x00, 0xC8, 0x14, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
            17, 18, 19, 20,
        ],
    ]);
    assert!(answers.iter().all(|a| a.ends_with(&[0x90, 0x00])), "{answers:02X?}");
    let mut third = h.open();
    let cf4 = third.cardcf().unwrap();
    // A module opened before the change sees it too: cardcf reads the card again in a new
    // transaction.
    assert_eq!(other.cardcf().unwrap(), cf4);
    assert_ne!(cf4.containers, cf3.containers);
    assert_ne!(cf4.files, cf3.files);
    assert_eq!(cf4.pins, cf3.pins);
    h.clear();
    let mut cache3 = FileCache::with_dir(&dir);
    enumerate(&mut cache3);
    assert_eq!(cache3.card_reads(), 2, "re-read after the foreign change");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn foreign_data_in_the_private_do_is_left_alone() {
    let h = Harness::new(13);
    let answers = h.raw(&[
        &[0x00, 0xA4, 0x04, 0x00, 0x06, 0xD2, 0x76, 0x00, 0x01, 0x24, 0x01],
        &[0x00, 0x20, 0x00, 0x83, 0x08, b'1', b'2', b'3', b'4', b'5', b'6', b'7', b'8'],
        &[0x00, 0xDA, 0x01, 0x02, 0x05, b'n', b'o', b't', b'e', b's'],
    ]);
    assert!(answers.iter().all(|a| a.ends_with(&[0x90, 0x00])));
    let mut card = h.open();
    card.authenticate(PinId::ADMIN, &pin(PW3)).unwrap();
    let cf0 = card.cardcf().unwrap();
    card.generate_key(2, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    assert_eq!(card.cardcf().unwrap().containers, cf0.containers + 1, "counted in the module");
    assert!(!card.freshness_on_card());
    let answers = h.raw(&[
        &[0x00, 0xA4, 0x04, 0x00, 0x06, 0xD2, 0x76, 0x00, 0x01, 0x24, 0x01],
        &[0x00, 0xCA, 0x01, 0x02, 0x00],
    ]);
    assert_eq!(answers[1], b"notes\x90\x00");
}

#[test]
fn a_reset_drops_the_session() {
    let h = Harness::new(14);
    let mut card = h.open();
    card.authenticate(PinId::ADMIN, &pin(PW3)).unwrap();
    card.generate_key(2, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    card.authenticate(PinId::USER, &pin(PW1)).unwrap();
    let digest = sha256(b"r");
    let req = sign_request(HashAlg::Sha256, &digest, SignPadding::None);
    card.sign(2, &req).unwrap();
    // Another application resets the card.
    h.connect().reconnect(Disposition::Reset).unwrap();
    h.clear();
    let err = card.sign(2, &req).unwrap_err();
    // Either the reset is reported, or (when the channel takes the notice at the start of
    // the transaction) the authentication it ended is asked for again.
    assert!(
        matches!(err, CardError::AuthRequired { .. }) || err.to_string().contains("reset"),
        "{err}"
    );
    // The next operation selects the application and reads 6E again.
    card.authenticate(PinId::USER, &pin(PW1)).unwrap();
    card.sign(2, &req).unwrap();
    assert!(h.apdus().iter().any(|a| a[1] == 0xA4));
    assert!(h.apdus().iter().any(|a| a[1] == 0xCA && a[3] == 0x6E));
}

/// Wrong answers give errors naming the operation, never a panic.
#[test]
fn garbage_answers_are_errors() {
    let h = Harness::new(15);
    {
        let mut card = h.open();
        card.authenticate(PinId::ADMIN, &pin(PW3)).unwrap();
        card.generate_key(0, KeyAlgorithm::Ec(Curve::P256)).unwrap();
        card.generate_key(1, KeyAlgorithm::Rsa(2048)).unwrap();
    }
    let digest = sha256(b"g");
    let req = sign_request(HashAlg::Sha256, &digest, SignPadding::None);

    // GET DATA 6E: truncated, empty, not TLV, or a wrong status.
    for garbage in [
        vec![0x4F, 0x10, 0xD2, 0x90, 0x00],
        vec![0x90, 0x00],
        vec![0xFF; 40],
        vec![0x6A, 0x88],
        vec![0x01],
    ] {
        let g = garbage.clone();
        h.tamper(
            move |cmd, answer| if cmd[1] == 0xCA && cmd[3] == 0x6E { g.clone() } else { answer },
        );
        let err = h.open().properties().unwrap_err();
        let text = err.to_string();
        assert!(text.contains("6E") || text.contains("response"), "{garbage:02X?}: {text}");
    }
    // Every byte of a good answer cut off: an error each time.
    h.untamper();
    let good = {
        let answers = h.raw(&[
            &[0x00, 0xA4, 0x04, 0x00, 0x06, 0xD2, 0x76, 0x00, 0x01, 0x24, 0x01],
            &[0x00, 0xCA, 0x00, 0x6E, 0x00, 0x10, 0x00],
        ]);
        answers[1].clone()
    };
    for cut in (0..good.len() - 2).step_by(7) {
        let mut g = good[..cut].to_vec();
        g.extend_from_slice(&[0x90, 0x00]);
        h.tamper(
            move |cmd, answer| if cmd[1] == 0xCA && cmd[3] == 0x6E { g.clone() } else { answer },
        );
        assert!(h.open().containers().is_err(), "cut at {cut}");
    }

    // A signature of the wrong size.
    h.tamper(|cmd, answer| if cmd[1] == 0x2A { vec![1, 2, 3, 0x90, 0x00] } else { answer });
    let mut card = h.open();
    card.authenticate(PinId::USER, &pin(PW1)).unwrap();
    let err = card.sign(0, &req).unwrap_err();
    assert!(
        matches!(err, CardError::Malformed { operation: "PSO:COMPUTE DIGITAL SIGNATURE", .. }),
        "{err}"
    );

    // A public key that is not one.
    h.tamper(|cmd, answer| {
        if cmd[1] == 0x47 { vec![0x7F, 0x49, 0x03, 0x86, 0x01, 0x04, 0x90, 0x00] } else { answer }
    });
    let err = h.open().container(0).unwrap_err();
    assert!(err.to_string().contains("GENERATE ASYMMETRIC KEY PAIR"), "{err}");

    // A VERIFY answered 6300 without a count: the tries come from C4.
    h.tamper(|cmd, answer| {
        if cmd[1] == 0x20 && answer.ends_with(&[0x63, 0xC2]) { vec![0x63, 0x00] } else { answer }
    });
    let err = h.open().authenticate(PinId::USER, &pin(b"000000")).unwrap_err();
    assert!(matches!(err, CardError::WrongPin { tries_left: Some(2), .. }), "{err}");

    // C4 of the wrong length when read on its own.
    h.tamper(
        |cmd, answer| if cmd[1] == 0xCA && cmd[3] == 0xC4 { vec![0, 0x90, 0x00] } else { answer },
    );
    let mut card = h.open();
    let _ = card.authenticate(PinId::USER, &pin(b"000000"));
    let err = card.pins().unwrap_err();
    assert!(err.to_string().contains("C4"), "{err}");

    // A shared secret of the wrong size, a decryption refused.
    h.untamper();
    h.tamper(
        |cmd, answer| if cmd[1] == 0x2A && cmd[2] == 0x80 { vec![0x6A, 0x80] } else { answer },
    );
    let mut card = h.open();
    card.authenticate(PinId::USER, &pin(PW1)).unwrap();
    let err = card.decrypt(1, &DecryptPadding::Pkcs1, &[7; 256]).unwrap_err();
    assert!(matches!(err, CardError::Status { operation: "PSO:DECIPHER", .. }), "{err}");
    h.untamper();
}

#[test]
fn generic_model_by_probing_and_the_shared_atr_quirk() {
    // A card whose ATR no model names: found by SELECT, opened with the generic model; the
    // probe's SELECT is not sent again.
    struct OtherAtr(Recorder);
    impl VirtualCard for OtherAtr {
        fn atr(&self) -> Vec<u8> {
            vec![0x3B, 0x80, 0x80, 0x01, 0x01]
        }
        fn power_on(&mut self) {
            self.0.power_on();
        }
        fn reset(&mut self) {
            self.0.reset();
        }
        fn power_off(&mut self) {
            self.0.power_off();
        }
        fn process(&mut self, command: &[u8]) -> Vec<u8> {
            self.0.process(command)
        }
    }
    let backend = VirtualBackend::new();
    let log = Log::default();
    let card = scard_sim::new_card(scard_sim::Family::OpenPgp, SimRng::from_seed(16));
    backend.insert(
        READER,
        Box::new(OtherAtr(Recorder { card, log: log.clone(), tamper: Tamper::default() })),
    );
    let t = backend.clone().connect(&READER.parse().unwrap(), ShareMode::Shared).unwrap().unwrap();
    let mut card = Harness::registry().open(t).unwrap();
    assert!(card.model().generic);
    card.properties().unwrap();
    let apdus = log.lock().unwrap().clone();
    assert_eq!(apdus.iter().filter(|a| a[1] == 0xA4).count(), 1, "{apdus:02X?}");
    // The generic model follows the card's own announcement: extended length.
    assert_eq!(apdus[1], [0x00, 0xCA, 0x00, 0x6E, 0x00]);
    card.authenticate(PinId::ADMIN, &pin(PW3)).unwrap();
    card.put_certificate(0, Some(&fake_cert(9, 1500))).unwrap();
    let put = log.lock().unwrap().iter().find(|a| a[1] == 0xDA && a[2] == 0x7F).cloned().unwrap();
    assert_eq!(&put[..7], &[0x00, 0xDA, 0x7F, 0x21, 0x00, 0x05, 0xDC], "extended Lc");

    // The opcard model claims vsmartcard's generic ATR with "shared-atr": a card behind that
    // ATR without the OpenPGP application is not opened as one.
    let registry = Harness::registry();
    let opcard = registry
        .identify(&[0x3B, 0x95, 0x13, 0x81, 0x01, 0x80, 0x73, 0xFF, 0x01, 0x00, 0x0B])
        .unwrap();
    assert_eq!(opcard.name, "Nitrokey opcard (OpenPGP 3.4)");
    assert!(opcard.has_quirk("shared-atr"));
    assert!(opcard.limits.extended_length);
}
