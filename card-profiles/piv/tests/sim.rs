//! The PIV profile against scard-sim's PIV card through the in-process transport (`sim:`
//! readers of scard-transport's `VirtualBackend`), and against tiny scripted cards that
//! answer garbage.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use der::{Decode, Encode};
use scard_minidriver::fs::{ContainerMapRecord, decode_cmapfile};
use scard_minidriver::{
    CachePolicy, CardError, CardModule, Curve, DecryptPadding, FileCache, FilePath, HashAlg,
    KeyAlgorithm, KeySpec, Pin, PinId, PinSet, ProfileRegistry, PublicKey, SignPadding,
    SignRequest,
};
use scard_profile_piv::objects::put_tlv;
use scard_profile_piv::{DEFAULT_MANAGEMENT_KEY, ManagementAlgorithm, puk_id};
use scard_sim::piv::{KeySlot, ManagementKey};
use scard_sim::{Card, SimRng};
use scard_transport::virtual_card::{VirtualBackend, VirtualCard};
use scard_transport::{Disposition, Registry, ShareMode};
use signature::hazmat::PrehashVerifier;

// ----- harness -----

/// The simulated card, shared between the backend and the test (to look inside).
type SimPiv = Arc<Mutex<scard_sim::piv::PivCard>>;

/// The card, and a count of the APDUs it processed (the real ones: a logical command may be
/// several).
struct Shared(SimPiv, Arc<AtomicU64>);

impl VirtualCard for Shared {
    fn atr(&self) -> Vec<u8> {
        self.0.lock().unwrap().atr().to_vec()
    }
    fn power_on(&mut self) {
        self.0.lock().unwrap().power_on();
    }
    fn reset(&mut self) {
        self.0.lock().unwrap().reset();
    }
    fn power_off(&mut self) {
        self.0.lock().unwrap().power_off();
    }
    fn process(&mut self, command: &[u8]) -> Vec<u8> {
        self.1.fetch_add(1, Ordering::Relaxed);
        self.0.lock().unwrap().process(command)
    }
}

struct Env {
    sim: SimPiv,
    apdus: Arc<AtomicU64>,
    readers: Registry,
    profiles: ProfileRegistry,
}

impl Env {
    fn new(seed: u64) -> Self {
        let sim = Arc::new(Mutex::new(scard_sim::piv::PivCard::new(SimRng::from_seed(seed))));
        let backend = VirtualBackend::new();
        let apdus = Arc::new(AtomicU64::new(0));
        backend.insert("sim:piv", Box::new(Shared(sim.clone(), apdus.clone())));
        let mut readers = Registry::new();
        readers.add(Box::new(backend));
        let mut profiles = ProfileRegistry::new();
        profiles.register(scard_profile_piv::family());
        Env { sim, apdus, readers, profiles }
    }

    fn apdus(&self) -> u64 {
        self.apdus.load(Ordering::Relaxed)
    }

    /// A new connection, opened through the profile registry (by ATR).
    fn open(&mut self) -> Box<dyn CardModule> {
        let t = self.readers.connect(Some("sim:piv"), ShareMode::Shared).unwrap();
        self.profiles.open(t).unwrap()
    }
}

fn commands(card: &mut Box<dyn CardModule>) -> u64 {
    card.channel().stats().commands
}

fn admin(card: &mut Box<dyn CardModule>) {
    card.authenticate_admin_key(&Pin::new(DEFAULT_MANAGEMENT_KEY.to_vec())).unwrap();
}

fn verify(card: &mut Box<dyn CardModule>) {
    card.authenticate(PinId::USER, &Pin::new(b"123456".to_vec())).unwrap();
}

/// A certificate for a card's public key, signed by a throwaway host CA (P-256).
fn cert_for(key: &PublicKey, cn: &str) -> Vec<u8> {
    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::SubjectPublicKeyInfoOwned;
    use x509_cert::time::{Time, Validity};
    let spki = SubjectPublicKeyInfoOwned::from_der(&key.to_spki_der().unwrap()).unwrap();
    let ca = p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).unwrap();
    let profile = Profile::Leaf {
        issuer: Name::from_str("CN=scard test CA").unwrap(),
        enable_key_agreement: !matches!(key, PublicKey::Rsa { .. }),
        enable_key_encipherment: matches!(key, PublicKey::Rsa { .. }),
    };
    let at = |secs: u64| {
        Time::UtcTime(der::asn1::UtcTime::from_unix_duration(Duration::from_secs(secs)).unwrap())
    };
    let validity = Validity { not_before: at(1_704_067_200), not_after: at(2_524_607_999) };
    let subject = Name::from_str(&format!("CN={cn}")).unwrap();
    CertificateBuilder::new(profile, SerialNumber::from(7u32), validity, subject, spki, &ca)
        .unwrap()
        .build::<p256::ecdsa::DerSignature>()
        .unwrap()
        .to_der()
        .unwrap()
}

fn rsa_public(key: &PublicKey) -> rsa::RsaPublicKey {
    let PublicKey::Rsa { n, e } = key else { panic!("not RSA: {key:?}") };
    rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(n), rsa::BigUint::from_bytes_be(e)).unwrap()
}

fn ec_point(key: &PublicKey) -> &[u8] {
    let PublicKey::Ec { point, .. } = key else { panic!("not EC: {key:?}") };
    point
}

fn sim_public(sim: &SimPiv, slot: KeySlot) -> PublicKey {
    match sim.lock().unwrap().public_key(slot).unwrap() {
        scard_sim::keys::PublicKey::Rsa { n, e } => PublicKey::rsa(&n, &e),
        scard_sim::keys::PublicKey::Ec { point, .. } => {
            let curve = if point.len() == 65 { Curve::P256 } else { Curve::P384 };
            PublicKey::Ec { curve, point }
        }
    }
}

const SLOT_9A: KeySlot = KeySlot::PIV_AUTHENTICATION;

// ----- identity -----

#[test]
fn identity_properties_and_files() {
    let mut env = Env::new(1);
    let mut card = env.open();
    assert_eq!(card.model().family, "piv");
    assert_eq!(card.model().name, "scard simulated PIV");
    let guid = env.sim.lock().unwrap().guid().unwrap();
    assert_eq!(card.card_id().unwrap(), guid, "cardid is the CHUID's GUID");
    let props = card.properties().unwrap();
    assert_eq!(props.family, "piv");
    assert_eq!(props.card_id, guid);
    assert_eq!(props.serial, scard_iso7816::hex::encode_upper(&guid));
    assert_eq!((props.max_containers, props.free_containers), (24, 24));
    assert!(props.key_generation && !props.read_only);
    assert!(props.algorithms.contains(&KeyAlgorithm::Rsa(2048)));
    assert!(props.algorithms.contains(&KeyAlgorithm::Ec(Curve::P384)));
    assert!(!card.freshness_on_card());
    // The logical file system.
    assert_eq!(card.read_file(&FilePath::CardId).unwrap(), guid.to_vec());
    assert_eq!(card.read_file(&FilePath::CardApps).unwrap(), b"mscp\0\0\0\0");
    assert_eq!(card.read_file(&FilePath::CardCf).unwrap().len(), 6);
    assert_eq!(card.list_files(None).unwrap(), ["cardid", "cardcf", "cardapps"]);
    assert_eq!(card.list_files(Some("mscp")).unwrap(), ["cmapfile"]);
    assert!(matches!(card.read_file(&FilePath::MsRoots), Err(CardError::FileNotFound { .. })));

    // Another card: another id (never a repeated serial).
    let mut other = Env::new(2);
    let mut card2 = other.open();
    assert_ne!(card2.card_id().unwrap(), guid);
}

#[test]
fn pin_countdown_block_unblock_change() {
    let mut env = Env::new(3);
    let mut card = env.open();
    let pins = card.pins().unwrap();
    assert_eq!(pins.len(), 3);
    assert_eq!(
        (pins[0].id, pins[0].tries_left, pins[0].min_len, pins[0].max_len),
        (PinId::USER, Some(3), 6, 8)
    );
    assert_eq!(pins[0].unblock_permission, PinSet::NONE.with(puk_id()));
    assert_eq!(pins[1].id, PinId::ADMIN);
    assert_eq!(pins[1].pin_type, scard_minidriver::PinType::ChallengeResponse);
    assert_eq!(pins[2].id, puk_id());

    // Length and character rules are checked before anything is sent.
    let before = commands(&mut card);
    for bad in [&b"12345"[..], b"123456789", b"12ab56"] {
        let err = card.authenticate(PinId::USER, &Pin::new(bad.to_vec())).unwrap_err();
        assert!(matches!(err, CardError::PinFormat { .. }), "{err}");
    }
    let err = card.unblock_pin(
        PinId::USER,
        &Pin::new(b"1234567".to_vec()),
        &Pin::new(b"123456".to_vec()),
    );
    assert!(matches!(err, Err(CardError::PinFormat { .. })));
    // The PUK is not verified on its own, nor asked for its tries (VERIFY 81 is not PIV).
    assert!(matches!(
        card.authenticate(puk_id(), &Pin::new(b"12345678".to_vec())),
        Err(CardError::Unsupported { .. })
    ));
    assert_eq!(card.tries_left(puk_id()).unwrap(), None);
    assert_eq!(commands(&mut card), before, "nothing sent");

    // Wrong PIN countdown; asking the tries spends none.
    let wrong = Pin::new(b"654321".to_vec());
    let err = card.authenticate(PinId::USER, &wrong).unwrap_err();
    assert!(matches!(err, CardError::WrongPin { pin: PinId::USER, tries_left: Some(2) }), "{err}");
    assert_eq!(card.tries_left(PinId::USER).unwrap(), Some(2));
    assert_eq!(card.tries_left(PinId::USER).unwrap(), Some(2));
    verify(&mut card);
    assert!(card.channel().authenticated().contains(PinId::USER));
    assert_eq!(card.tries_left(PinId::USER).unwrap(), None, "verified: 9000");
    for left in [2, 1] {
        let err = card.authenticate(PinId::USER, &wrong).unwrap_err();
        assert!(
            matches!(err, CardError::WrongPin { tries_left: Some(n), .. } if n == left),
            "{err}"
        );
        assert!(!card.channel().authenticated().contains(PinId::USER));
    }
    let err = card.authenticate(PinId::USER, &wrong).unwrap_err();
    assert!(matches!(err, CardError::PinBlocked { pin: PinId::USER }), "{err}");
    assert_eq!(card.tries_left(PinId::USER).unwrap(), Some(0));
    let err = card.authenticate(PinId::USER, &Pin::new(b"123456".to_vec())).unwrap_err();
    assert!(matches!(err, CardError::PinBlocked { .. }), "{err}");

    // Unblock with the PUK: a wrong PUK counts on the PUK.
    let cf = card.cardcf().unwrap();
    let err = card
        .unblock_pin(PinId::USER, &Pin::new(b"87654321".to_vec()), &Pin::new(b"111111".to_vec()))
        .unwrap_err();
    assert!(
        matches!(err, CardError::WrongPin { pin, tries_left: Some(2) } if pin == puk_id()),
        "{err}"
    );
    card.unblock_pin(PinId::USER, &Pin::new(b"12345678".to_vec()), &Pin::new(b"111111".to_vec()))
        .unwrap();
    assert_eq!(card.cardcf().unwrap().pins, cf.pins.wrapping_add(1));
    assert_eq!(card.tries_left(PinId::USER).unwrap(), Some(3));
    card.authenticate(PinId::USER, &Pin::new(b"111111".to_vec())).unwrap();

    // Change: wrong old value counts; the right one changes it.
    let err = card
        .change_pin(PinId::USER, &Pin::new(b"999999".to_vec()), &Pin::new(b"22222222".to_vec()))
        .unwrap_err();
    assert!(matches!(err, CardError::WrongPin { tries_left: Some(2), .. }), "{err}");
    card.change_pin(PinId::USER, &Pin::new(b"111111".to_vec()), &Pin::new(b"22222222".to_vec()))
        .unwrap();
    card.authenticate(PinId::USER, &Pin::new(b"22222222".to_vec())).unwrap();
    assert_eq!(card.cardcf().unwrap().pins, cf.pins.wrapping_add(2));
    // The PUK can be changed too.
    card.change_pin(puk_id(), &Pin::new(b"12345678".to_vec()), &Pin::new(b"87654321".to_vec()))
        .unwrap();
    // The management key cannot be changed with SP 800-73-4 commands.
    let key = Pin::new(DEFAULT_MANAGEMENT_KEY.to_vec());
    assert!(matches!(
        card.change_pin(PinId::ADMIN, &key, &key),
        Err(CardError::Unsupported { .. })
    ));

    // Deauthentication: VERIFY P1 FF.
    card.deauthenticate(PinId::USER.set()).unwrap();
    assert!(!card.channel().authenticated().contains(PinId::USER));
    assert_eq!(card.tries_left(PinId::USER).unwrap(), Some(3), "not verified any more");
}

#[test]
fn management_key_mutual_and_challenge_response() {
    let mut env = Env::new(4);
    let mut card = env.open();
    // Without the admin, writes are refused before anything is sent.
    let before = commands(&mut card);
    let err = card.generate_key(0, KeyAlgorithm::Ec(Curve::P256)).unwrap_err();
    assert!(matches!(err, CardError::AuthRequired { pin: PinId::ADMIN, .. }), "{err}");
    // (the Key History object was not needed for 9A)
    assert_eq!(commands(&mut card), before);

    // Wrong key: the card refuses the witness; no algorithm guessing after that.
    let err = card.authenticate_admin_key(&Pin::new(vec![9u8; 24])).unwrap_err();
    assert!(matches!(err, CardError::WrongPin { pin: PinId::ADMIN, tries_left: None }), "{err}");
    assert!(!card.channel().authenticated().contains(PinId::ADMIN));
    let err = card.authenticate_admin_key(&Pin::new(vec![9u8; 20])).unwrap_err();
    assert!(matches!(err, CardError::PinFormat { .. }), "{err}");

    // Mutual authentication with the default 3DES key: 2 APDUs.
    let before = commands(&mut card);
    admin(&mut card);
    assert_eq!(commands(&mut card) - before, 2);
    assert!(card.channel().authenticated().contains(PinId::ADMIN));
    card.generate_key(0, KeyAlgorithm::Ec(Curve::P256)).unwrap();

    // Challenge-response done by the caller (CardGetChallenge / CardAuthenticateChallenge).
    let mut card = env.open();
    let challenge = card.admin_challenge().unwrap();
    assert_eq!(challenge.len(), 8);
    let response = ManagementAlgorithm::Tdes.encrypt(&DEFAULT_MANAGEMENT_KEY, &challenge).unwrap();
    card.admin_response(&response).unwrap();
    assert!(card.channel().authenticated().contains(PinId::ADMIN));
    let challenge = card.admin_challenge().unwrap();
    let mut wrong = ManagementAlgorithm::Tdes.encrypt(&DEFAULT_MANAGEMENT_KEY, &challenge).unwrap();
    wrong[0] ^= 1;
    let err = card.admin_response(&wrong).unwrap_err();
    assert!(matches!(err, CardError::WrongPin { pin: PinId::ADMIN, .. }), "{err}");
    assert!(card.admin_response(&wrong).is_err(), "no challenge pending any more");

    // AES-128 and AES-192 management keys (the card's algorithm is found from the key
    // length; 24 bytes try 3DES first, whose witness request the card refuses).
    for (alg, len) in [
        (scard_sim::piv::ManagementAlgorithm::Aes128, 16),
        (scard_sim::piv::ManagementAlgorithm::Aes192, 24),
    ] {
        let key: Vec<u8> = (0..len as u8).collect();
        env.sim.lock().unwrap().set_management_key(ManagementKey::new(alg, &key).unwrap());
        let mut card = env.open();
        card.authenticate_admin_key(&Pin::new(key.clone())).unwrap();
        let challenge = card.admin_challenge().unwrap();
        assert_eq!(challenge.len(), 16);
        let ours =
            if len == 16 { ManagementAlgorithm::Aes128 } else { ManagementAlgorithm::Aes192 };
        card.admin_response(&ours.encrypt(&key, &challenge).unwrap()).unwrap();
    }
}

// ----- keys, certificates, operations -----

#[test]
fn keygen_certificates_and_persistence() {
    let mut env = Env::new(5);
    let mut card = env.open();
    admin(&mut card);
    // Not an algorithm of the model: refused before anything is sent.
    let before = commands(&mut card);
    let err = card.generate_key(0, KeyAlgorithm::Rsa(1024)).unwrap_err();
    assert!(matches!(err, CardError::Unsupported { .. }), "{err}");
    assert_eq!(commands(&mut card), before);

    let rsa = card.generate_key(0, KeyAlgorithm::Rsa(2048)).unwrap();
    assert_eq!(rsa, sim_public(&env.sim, SLOT_9A));
    let p256 = card.generate_key(1, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    assert_eq!(p256, sim_public(&env.sim, KeySlot::DIGITAL_SIGNATURE));
    let p384 = card.generate_key(3, KeyAlgorithm::Ec(Curve::P384)).unwrap();
    assert_eq!(p384, sim_public(&env.sim, KeySlot::CARD_AUTHENTICATION));

    // This connection sees the keys it generated.
    let c = card.containers().unwrap();
    assert_eq!(c.len(), 24);
    assert_eq!(
        (c[0].key_spec, c[0].algorithm, c[0].default),
        (Some(KeySpec::Exchange), Some(KeyAlgorithm::Rsa(2048)), true)
    );
    assert_eq!(c[1].key_spec, Some(KeySpec::Ecdsa(Curve::P256)));
    assert!(c[1].always_authenticate && !c[0].always_authenticate);
    assert_eq!(c[3].key_spec, Some(KeySpec::Ecdsa(Curve::P384)));
    assert_eq!(c[3].pin, PinId::EVERYONE);
    assert!(c[2].key_spec.is_none() && !c[0].has_certificate);
    assert_eq!(c[0].label, "PIV Authentication (9A)");
    assert_eq!(c[0].name.len(), 38);
    assert_ne!(c[0].name, c[1].name);

    // A later connection does not (PIV has no "read public key"): until a certificate is
    // written.
    let mut later = env.open();
    assert!(later.containers().unwrap().iter().all(|c| !c.has_key()));

    // A certificate for another key is refused.
    let err = card.put_certificate(0, Some(&cert_for(&p256, "wrong"))).unwrap_err();
    assert!(matches!(err, CardError::InvalidInput { .. }), "{err}");
    let cert_9a = cert_for(&rsa, "card 9A");
    let cert_9c = cert_for(&p256, "card 9C");
    card.put_certificate(0, Some(&cert_9a)).unwrap();
    card.put_certificate(1, Some(&cert_9c)).unwrap();
    assert_eq!(card.certificate(0).unwrap().unwrap(), cert_9a);

    let mut later = env.open();
    let c = later.containers().unwrap();
    assert_eq!(c[0].public_key.as_ref(), Some(&rsa));
    assert_eq!(c[1].public_key.as_ref(), Some(&p256));
    assert!(c[0].has_certificate && c[1].has_certificate && !c[3].has_key());
    assert_eq!(later.certificate(1).unwrap().unwrap(), cert_9c);
    assert_eq!(later.read_file(&FilePath::KeyExchangeCert(0)).unwrap(), cert_9a);
    assert_eq!(later.read_file(&FilePath::SignatureCert(1)).unwrap(), cert_9c);
    assert!(matches!(
        later.read_file(&FilePath::SignatureCert(0)),
        Err(CardError::FileNotFound { .. })
    ));
    assert_eq!(later.list_files(Some("mscp")).unwrap(), ["cmapfile", "kxc00", "ksc01"]);

    // Delete: the certificate goes, and with it the key from later views.
    admin(&mut later);
    later.delete_container(1).unwrap();
    assert!(!later.container(1).unwrap().has_key());
    let mut third = env.open();
    let c = third.containers().unwrap();
    assert!(c[0].has_key() && !c[1].has_key() && !c[1].has_certificate);

    // Generating over a slot with a certificate removes the stale certificate.
    admin(&mut third);
    let new_rsa = third.generate_key(0, KeyAlgorithm::Rsa(2048)).unwrap();
    assert_ne!(new_rsa, rsa);
    assert!(!third.container(0).unwrap().has_certificate);
    assert!(env.open().certificate(0).unwrap().is_none());
}

#[test]
fn compressed_certificate_objects_are_inflated() {
    use std::io::Write;
    let mut env = Env::new(6);
    let cert = env
        .sim
        .lock()
        .unwrap()
        .personalise(KeySlot::KEY_MANAGEMENT, scard_sim::keys::KeyAlgorithm::P256, "gzip")
        .unwrap();
    let mut card = env.open();
    admin(&mut card);
    // Rewrite 5FC10B with CertInfo 01 and a gzip stream (SP 800-73-4 Pt 1 Table 10).
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&cert).unwrap();
    let zipped = gz.finish().unwrap();
    let mut content = Vec::new();
    put_tlv(&mut content, 0x70, &zipped).unwrap();
    put_tlv(&mut content, 0x71, &[0x01]).unwrap();
    put_tlv(&mut content, 0xFE, &[]).unwrap();
    let mut data = vec![0x5C, 0x03, 0x5F, 0xC1, 0x0B];
    put_tlv(&mut data, 0x53, &content).unwrap();
    let put = scard_iso7816::CommandApdu::new(0, 0xDB, 0x3F, 0xFF).with_data(data).unwrap();
    let r = card.channel().transmit("test PUT DATA", &put).unwrap();
    assert!(r.is_success(), "{:?}", r.sw());
    let mut card = env.open();
    assert_eq!(card.certificate(2).unwrap().unwrap(), cert);
    let c = card.container(2).unwrap();
    assert_eq!(c.key_spec, Some(KeySpec::Ecdh(Curve::P256)));
    assert_eq!(c.public_key.unwrap(), sim_public(&env.sim, KeySlot::KEY_MANAGEMENT));
}

#[test]
fn sign_pkcs1_pss_ecdsa_verified_on_the_host() {
    use sha2::Digest;
    let mut env = Env::new(7);
    let mut card = env.open();
    admin(&mut card);
    let rsa = rsa_public(&card.generate_key(0, KeyAlgorithm::Rsa(2048)).unwrap());
    let p256 = card.generate_key(1, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let p384 = card.generate_key(3, KeyAlgorithm::Ec(Curve::P384)).unwrap();
    let digest = sha2::Sha256::digest(b"signed by the PIV profile").to_vec();

    // No PIN yet: the card refuses, the error names the PIN.
    let req =
        SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::Pkcs1, data: &digest };
    let err = card.sign(0, &req).unwrap_err();
    assert!(matches!(err, CardError::AuthRequired { pin: PinId::USER, .. }), "{err}");

    verify(&mut card);
    let before = commands(&mut card);
    let sig = card.sign(0, &req).unwrap();
    assert_eq!(commands(&mut card) - before, 1, "one GENERAL AUTHENTICATE");
    assert_eq!(sig.len(), 256);
    rsa.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, &sig).unwrap();
    // PKCS#1 v1.5 with a prepared DigestInfo (hash None).
    let info = HashAlg::Sha256.digest_info(&digest).unwrap();
    let sig = card
        .sign(0, &SignRequest { hash: None, padding: SignPadding::Pkcs1, data: &info })
        .unwrap();
    rsa.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, &sig).unwrap();
    // PSS, salt = hash length.
    let pss = SignRequest {
        hash: Some(HashAlg::Sha256),
        padding: SignPadding::Pss { salt_len: 32 },
        data: &digest,
    };
    let sig = card.sign(0, &pss).unwrap();
    rsa.verify(rsa::Pss::new_with_salt::<sha2::Sha256>(32), &digest, &sig).unwrap();
    // SHA-384 PKCS#1.
    let d384 = sha2::Sha384::digest(b"x").to_vec();
    let sig = card
        .sign(
            0,
            &SignRequest { hash: Some(HashAlg::Sha384), padding: SignPadding::Pkcs1, data: &d384 },
        )
        .unwrap();
    rsa.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha384>(), &d384, &sig).unwrap();

    // ECDSA P-256 with 9C ("PIN Always"): the PIN right before each signature.
    let ecdsa =
        SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::None, data: &digest };
    verify(&mut card);
    let raw = card.sign(1, &ecdsa).unwrap();
    assert_eq!(raw.len(), 64);
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(ec_point(&p256)).unwrap();
    vk.verify_prehash(&digest, &p256::ecdsa::Signature::from_slice(&raw).unwrap()).unwrap();
    let err = card.sign(1, &ecdsa).unwrap_err();
    assert!(matches!(err, CardError::AuthRequired { .. }), "9C needs the PIN again: {err}");
    verify(&mut card);
    card.sign(1, &ecdsa).unwrap();

    // ECDSA P-384 with 9E (no PIN), of a SHA-384 and of a SHA-256 digest.
    card.deauthenticate(PinId::USER.set()).unwrap();
    let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(ec_point(&p384)).unwrap();
    for d in [sha2::Sha384::digest(b"y").to_vec(), digest.clone()] {
        let hash = if d.len() == 48 { HashAlg::Sha384 } else { HashAlg::Sha256 };
        let raw = card
            .sign(3, &SignRequest { hash: Some(hash), padding: SignPadding::None, data: &d })
            .unwrap();
        assert_eq!(raw.len(), 96);
        vk.verify_prehash(&d, &p384::ecdsa::Signature::from_slice(&raw).unwrap()).unwrap();
    }
}

#[test]
fn unsupported_requests_are_refused_before_the_pin() {
    let mut env = Env::new(8);
    let mut card = env.open();
    admin(&mut card);
    card.generate_key(0, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    card.generate_key(1, KeyAlgorithm::Rsa(2048)).unwrap();
    card.generate_key(2, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let digest = [0x11u8; 32];
    card.containers().unwrap();
    let before = commands(&mut card);
    let cases: Vec<(u8, SignRequest<'_>)> = vec![
        // PSS or PKCS#1 with an EC key.
        (
            0,
            SignRequest {
                hash: Some(HashAlg::Sha256),
                padding: SignPadding::Pss { salt_len: 32 },
                data: &digest,
            },
        ),
        (
            0,
            SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::Pkcs1, data: &digest },
        ),
        // ECDSA with the key management key (an ECDH key).
        (2, SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::None, data: &digest }),
    ];
    for (index, req) in &cases {
        let err = card.check_sign(*index, req).unwrap_err();
        assert!(matches!(err, CardError::Unsupported { .. }), "{err}");
        let err = card.sign(*index, req).unwrap_err();
        assert!(matches!(err, CardError::Unsupported { .. }), "{err}");
    }
    // Bad sizes are the caller's error.
    let short = SignRequest {
        hash: Some(HashAlg::Sha256),
        padding: SignPadding::Pkcs1,
        data: &digest[..20],
    };
    assert!(matches!(card.check_sign(1, &short), Err(CardError::InvalidInput { .. })));
    let raw = SignRequest { hash: None, padding: SignPadding::None, data: &digest };
    assert!(matches!(card.check_sign(1, &raw), Err(CardError::InvalidInput { .. })));
    let pss_no_hash =
        SignRequest { hash: None, padding: SignPadding::Pss { salt_len: 32 }, data: &digest };
    assert!(matches!(card.check_sign(1, &pss_no_hash), Err(CardError::InvalidInput { .. })));
    // Decryption: not with EC keys, not with the signature key 9C, not OAEP that cannot fit.
    for (index, padding) in [
        (0, DecryptPadding::Pkcs1),
        (1, DecryptPadding::Oaep { hash: HashAlg::Sha256, label: Vec::new() }),
        (1, DecryptPadding::Pkcs1),
    ] {
        let err = card.check_decrypt(index, &padding).unwrap_err();
        assert!(matches!(err, CardError::Unsupported { .. }), "{err}");
        assert!(card.decrypt(index, &padding, &[1; 256]).is_err());
    }
    // Key agreement only with key management keys; an empty container is named.
    let peer = PublicKey::Ec { curve: Curve::P256, point: vec![4; 65] };
    assert!(matches!(card.agree(0, &peer), Err(CardError::Unsupported { .. })));
    assert!(matches!(card.agree(1, &peer), Err(CardError::Unsupported { .. })));
    assert!(
        matches!(card.agree(2, &peer), Err(CardError::InvalidInput { .. })),
        "not on the curve"
    );
    assert!(matches!(card.check_sign(3, &raw), Err(CardError::EmptyContainer { index: 3, .. })));
    assert!(matches!(
        card.check_sign(30, &raw),
        Err(CardError::NoContainer { index: 30, count: 24 })
    ));
    assert_eq!(commands(&mut card), before, "all refused without a command");
}

#[test]
fn decrypt_pkcs1_oaep_raw_round_trips() {
    let mut env = Env::new(9);
    let mut card = env.open();
    admin(&mut card);
    let key = rsa_public(&card.generate_key(2, KeyAlgorithm::Rsa(2048)).unwrap());
    verify(&mut card);
    let mut rng = rand_core::OsRng;
    let ct = key.encrypt(&mut rng, rsa::Pkcs1v15Encrypt, b"pkcs1 secret").unwrap();
    assert_eq!(card.decrypt(2, &DecryptPadding::Pkcs1, &ct).unwrap().expose(), b"pkcs1 secret");
    let oaep = rsa::Oaep::new_with_label::<sha2::Sha256, _>("label");
    let ct = key.encrypt(&mut rng, oaep, b"oaep secret").unwrap();
    let padding = DecryptPadding::Oaep { hash: HashAlg::Sha256, label: b"label".to_vec() };
    assert_eq!(card.decrypt(2, &padding, &ct).unwrap().expose(), b"oaep secret");
    let wrong_label = DecryptPadding::Oaep { hash: HashAlg::Sha256, label: b"other".to_vec() };
    assert!(matches!(card.decrypt(2, &wrong_label, &ct), Err(CardError::Crypto { .. })));
    // Raw: the whole block comes back.
    let raw = card.decrypt(2, &DecryptPadding::None, &ct).unwrap();
    assert_eq!(raw.expose().len(), 256);
    // A ciphertext longer than the modulus is refused.
    assert!(matches!(
        card.decrypt(2, &DecryptPadding::Pkcs1, &[1; 257]),
        Err(CardError::InvalidInput { .. })
    ));
}

#[test]
fn ecdh_matches_the_host() {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let mut env = Env::new(10);
    let mut card = env.open();
    admin(&mut card);
    let card_key = card.generate_key(2, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let host = p256::SecretKey::from_slice(&[0x24; 32]).unwrap();
    let host_point = host.public_key().to_encoded_point(false).as_bytes().to_vec();
    let card_public = p256::PublicKey::from_sec1_bytes(ec_point(&card_key)).unwrap();
    let expected = p256::ecdh::diffie_hellman(host.to_nonzero_scalar(), card_public.as_affine());
    verify(&mut card);
    let peer = PublicKey::Ec { curve: Curve::P256, point: host_point.clone() };
    let secret = card.agree(2, &peer).unwrap();
    assert_eq!(secret.expose(), expected.raw_secret_bytes().as_slice());
    // A compressed peer point is accepted (decompressed on the host).
    let compressed = host.public_key().to_encoded_point(true).as_bytes().to_vec();
    let secret2 = card.agree(2, &PublicKey::Ec { curve: Curve::P256, point: compressed }).unwrap();
    assert_eq!(secret2.expose(), secret.expose());
    // A P-384 peer for a P-256 key is refused.
    let p384 = PublicKey::Ec { curve: Curve::P384, point: vec![4; 97] };
    assert!(matches!(card.agree(2, &p384), Err(CardError::InvalidInput { .. })));
    // Retired key 82 (container 4), P-384.
    let retired = card.generate_key(4, KeyAlgorithm::Ec(Curve::P384)).unwrap();
    let host = p384::SecretKey::from_slice(&[0x25; 48]).unwrap();
    let card_public = p384::PublicKey::from_sec1_bytes(ec_point(&retired)).unwrap();
    let expected = p384::ecdh::diffie_hellman(host.to_nonzero_scalar(), card_public.as_affine());
    let peer = PublicKey::Ec {
        curve: Curve::P384,
        point: host.public_key().to_encoded_point(false).as_bytes().to_vec(),
    };
    assert_eq!(card.agree(4, &peer).unwrap().expose(), expected.raw_secret_bytes().as_slice());
    assert_eq!(card.container(4).unwrap().key_spec, Some(KeySpec::Ecdh(Curve::P384)));
}

#[test]
fn retired_keys_follow_the_key_history() {
    let mut env = Env::new(11);
    let mut card = env.open();
    admin(&mut card);
    // 84 before 82 and 83: refused (SP 800-73-4 Pt 1 §3.3.2).
    let err = card.generate_key(6, KeyAlgorithm::Ec(Curve::P256)).unwrap_err();
    assert!(matches!(err, CardError::InvalidInput { .. }), "{err}");
    let k82 = card.generate_key(4, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let k83 = card.generate_key(5, KeyAlgorithm::Rsa(2048)).unwrap();
    card.put_certificate(4, Some(&cert_for(&k82, "retired 1"))).unwrap();
    card.put_certificate(5, Some(&cert_for(&k83, "retired 2"))).unwrap();
    // Removing 82 before 83 would leave a hole in the count.
    assert!(matches!(card.put_certificate(4, None), Err(CardError::InvalidInput { .. })));

    // A new connection reads the Key History object (C1 = 2) and only 82 and 83.
    let mut later = env.open();
    let before = commands(&mut later);
    let c = later.containers().unwrap();
    let cold = commands(&mut later) - before;
    assert_eq!(c[4].public_key.as_ref(), Some(&k82));
    assert_eq!(c[5].key_spec, Some(KeySpec::Exchange));
    assert!(!c[6].has_key());
    // SELECT, CHUID, Key History, 9A, 9C, 9D, 9E, 82, 83 (the simulated card's ATR is its
    // own: the registry opens it by its model, without a probe, and the profile selects).
    assert_eq!(cold, 9, "list containers cold with two retired keys");
    admin(&mut later);
    later.delete_container(5).unwrap();
    let c = env.open().containers().unwrap();
    assert!(c[4].has_key() && !c[5].has_key());
}

#[test]
fn cmapfile_records_and_freshness() {
    let mut env = Env::new(12);
    let mut card = env.open();
    admin(&mut card);
    let cf0 = card.cardcf().unwrap();
    let rsa = card.generate_key(0, KeyAlgorithm::Rsa(2048)).unwrap();
    let cf1 = card.cardcf().unwrap();
    assert_eq!(cf1.containers, cf0.containers.wrapping_add(1));
    assert_eq!(cf1.files, cf0.files);
    let ec = card.generate_key(1, KeyAlgorithm::Ec(Curve::P384)).unwrap();
    card.put_certificate(0, Some(&cert_for(&rsa, "kx"))).unwrap();
    let cf2 = card.cardcf().unwrap();
    assert_eq!(cf2.files, cf1.files.wrapping_add(1));
    assert_eq!(cf2.containers, cf1.containers.wrapping_add(2));
    // Writing the kxc file is writing the certificate.
    card.write_file(&FilePath::SignatureCert(1), &cert_for(&ec, "sig")).unwrap();
    assert_eq!(card.cardcf().unwrap().files, cf2.files.wrapping_add(1));
    assert!(card.write_file(&FilePath::CmapFile, &[0; 86]).is_err());

    let file = card.read_file(&FilePath::CmapFile).unwrap();
    assert_eq!(file.len(), 24 * 86);
    let records = decode_cmapfile(&file).unwrap();
    assert!(records[0].is_valid());
    assert_eq!(records[0].flags, 3, "valid and default");
    assert_eq!((records[0].sig_key_bits, records[0].kx_key_bits), (0, 2048));
    assert_eq!((records[1].flags, records[1].sig_key_bits, records[1].kx_key_bits), (1, 384, 0));
    let containers = card.containers().unwrap();
    assert_eq!(records[0].name, containers[0].name);
    // Empty containers are zero-filled records, never left out.
    for i in 2..24 {
        assert_eq!(records[i], ContainerMapRecord::default());
        assert!(file[i * 86..(i + 1) * 86].iter().all(|b| *b == 0));
    }
    // Deleting zero-fills the record in place.
    card.delete_file(&FilePath::SignatureCert(1)).unwrap();
    card.delete_container(1).unwrap();
    let file = card.read_file(&FilePath::CmapFile).unwrap();
    assert_eq!(file.len(), 24 * 86);
    assert!(file[86..172].iter().all(|b| *b == 0));
    assert!(file[..86].iter().any(|b| *b != 0));

    // Each connection's counters start elsewhere: a host cache never mixes two sessions.
    let other = env.open().cardcf().unwrap();
    assert_ne!(other, card.cardcf().unwrap());
}

#[test]
fn file_cache_second_enumeration_reads_no_certificate() {
    let mut env = Env::new(13);
    for (slot, alg) in [
        (SLOT_9A, scard_sim::keys::KeyAlgorithm::Rsa2048),
        (KeySlot::DIGITAL_SIGNATURE, scard_sim::keys::KeyAlgorithm::P256),
    ] {
        env.sim.lock().unwrap().personalise(slot, alg, "cached").unwrap();
    }
    let mut card = env.open();
    let mut cache = FileCache::in_memory();
    let enumerate = |card: &mut Box<dyn CardModule>, cache: &mut FileCache| -> usize {
        let mut n = 0;
        for c in card.containers().unwrap() {
            if c.has_certificate {
                assert!(cache.certificate(card.as_mut(), c.index).unwrap().is_some());
                n += 1;
            }
        }
        n
    };
    let before = commands(&mut card);
    let apdus = env.apdus();
    assert_eq!(enumerate(&mut card, &mut cache), 2);
    let cold = commands(&mut card) - before;
    assert_eq!(env.apdus() - apdus, cold, "extended length: one APDU per command");
    println!("list containers cold: {cold} APDUs after the card was opened");
    assert_eq!(cache.card_reads(), 2);
    // SELECT, CHUID, Key History, 9A, 9C, 9D, 9E (opened by its ATR, no probe).
    assert_eq!(cold, 7, "list containers cold");
    let before = commands(&mut card);
    assert_eq!(enumerate(&mut card, &mut cache), 2);
    assert_eq!(commands(&mut card), before, "the second enumeration sends nothing");
    assert_eq!(cache.card_reads(), 2, "and reads no certificate");
    // A write moves the counters: the host cache reads again.
    admin(&mut card);
    let cert = card.certificate(0).unwrap().unwrap();
    card.put_certificate(0, Some(&cert)).unwrap();
    assert_eq!(enumerate(&mut card, &mut cache), 2);
    assert_eq!(cache.card_reads(), 4);
}

#[test]
fn apdu_counts_verify_and_sign() {
    use sha2::Digest;
    let mut env = Env::new(14);
    env.sim
        .lock()
        .unwrap()
        .personalise(SLOT_9A, scard_sim::keys::KeyAlgorithm::P256, "count")
        .unwrap();
    let mut card = env.open();
    let digest = sha2::Sha256::digest(b"count").to_vec();
    let req =
        SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::None, data: &digest };
    // The caller's sequence: check (reads the one certificate needed), PIN, sign.
    let before = commands(&mut card);
    card.check_sign(0, &req).unwrap();
    let check = commands(&mut card) - before;
    let before = commands(&mut card);
    let apdus = env.apdus();
    verify(&mut card);
    card.sign(0, &req).unwrap();
    let sign = commands(&mut card) - before;
    assert_eq!(env.apdus() - apdus, sign);
    println!("cold check_sign: {check} commands; verify + sign: {sign} commands");
    assert_eq!(check, 2, "SELECT and the 9A certificate (opened by its ATR, no probe)");
    assert_eq!(sign, 2, "VERIFY + GENERAL AUTHENTICATE");
}

#[test]
fn resets_drop_authentication_and_cached_objects() {
    let mut env = Env::new(15);
    let mut card = env.open();
    verify(&mut card);
    admin(&mut card);
    card.generate_key(0, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let cf = card.cardcf().unwrap();
    // Another application resets the card.
    let mut other = env.readers.connect(Some("sim:piv"), ShareMode::Shared).unwrap();
    other.reconnect(Disposition::Reset).unwrap();
    // The next command notices: the PIN state is gone, so is the admin's.
    let digest = [7u8; 32];
    let req =
        SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::None, data: &digest };
    let err = card.sign(0, &req).unwrap_err();
    assert!(matches!(err, CardError::AuthRequired { pin: PinId::USER, .. }), "{err}");
    assert!(card.channel().authenticated() == PinSet::NONE);
    let cf2 = card.cardcf().unwrap();
    assert_ne!(cf, cf2, "cached objects dropped: the counters moved");
    verify(&mut card);
    card.sign(0, &req).unwrap();
    // Deauthenticating the admin resets the card (PIV has no command for it).
    admin(&mut card);
    card.deauthenticate(PinId::ADMIN.set()).unwrap();
    assert_eq!(card.channel().authenticated(), PinSet::NONE);
    let err = card.generate_key(0, KeyAlgorithm::Ec(Curve::P256)).unwrap_err();
    assert!(matches!(err, CardError::AuthRequired { pin: PinId::ADMIN, .. }), "{err}");
    assert_eq!(card.pins().unwrap()[0].cache_policy, CachePolicy::Normal);
}

// ----- scripted cards that answer garbage -----

/// Answers SELECT with 9000 and everything else from `script` by INS.
/// The command APDUs a scripted card received.
type Log = Arc<Mutex<Vec<Vec<u8>>>>;

struct Scripted {
    atr: Vec<u8>,
    script: Vec<(u8, Vec<u8>)>,
    log: Log,
}

impl VirtualCard for Scripted {
    fn atr(&self) -> Vec<u8> {
        self.atr.clone()
    }
    fn power_on(&mut self) {}
    fn reset(&mut self) {}
    fn power_off(&mut self) {}
    fn process(&mut self, command: &[u8]) -> Vec<u8> {
        self.log.lock().unwrap().push(command.to_vec());
        let ins = command.get(1).copied().unwrap_or(0);
        if ins == 0xA4 {
            return vec![0x90, 0x00];
        }
        self.script
            .iter()
            .find(|(i, _)| *i == ins)
            .map(|(_, r)| r.clone())
            .unwrap_or(vec![0x6D, 0x00])
    }
}

fn scripted_with(atr: &[u8], script: Vec<(u8, &str)>) -> (Box<dyn CardModule>, Log) {
    let script = script
        .into_iter()
        .map(|(ins, hex)| (ins, scard_iso7816::hex::decode_lenient(hex).unwrap()))
        .collect();
    let log = Arc::new(Mutex::new(Vec::new()));
    let backend = VirtualBackend::new();
    backend
        .insert("sim:script", Box::new(Scripted { atr: atr.to_vec(), script, log: log.clone() }));
    let mut readers = Registry::new();
    readers.add(Box::new(backend));
    let mut profiles = ProfileRegistry::new();
    profiles.register(scard_profile_piv::family());
    let card =
        profiles.open(readers.connect(Some("sim:script"), ShareMode::Shared).unwrap()).unwrap();
    (card, log)
}

fn scripted(script: Vec<(u8, &str)>) -> Box<dyn CardModule> {
    scripted_with(&scard_sim::piv::ATR, script).0
}

/// A YubiKey 5 by its ATR: the model's quirks (GET METADATA for the management key
/// algorithm, GET SERIAL for the serial and, with no CHUID, the card id; any characters in a
/// PIN) are used.
#[test]
fn yubikey_quirks() {
    let atr = scard_iso7816::hex::decode_lenient(
        "3B FD 13 00 00 81 31 FE 15 80 73 C0 21 C0 57 59 75 62 69 4B 65 79 40",
    )
    .unwrap();
    let (mut card, log) = scripted_with(
        &atr,
        vec![
            // Yubico GET METADATA 9B: 01 algorithm AES-192, 02 policy, 05 default.
            (0xF7, "01 01 0A 02 02 00 01 05 01 01 90 00"),
            (0xF8, "00 52 F7 43 90 00"),
            (0xCB, "6A 82"),
            (0x87, "69 82"),
            (0x20, "90 00"),
        ],
    );
    assert_eq!(card.model().name, "YubiKey 5 PIV");
    let props = card.properties().unwrap();
    assert_eq!(props.serial, "5437251");
    assert_eq!(props.card_id, scard_profile_piv::objects::hash16(b"PIV serial", b"5437251"));
    // The 24-byte default key is AES-192 here, as GET METADATA says: no 3DES attempt.
    let err = card.authenticate_admin_key(&Pin::new(DEFAULT_MANAGEMENT_KEY.to_vec())).unwrap_err();
    assert!(matches!(err, CardError::Status { .. }), "the witness request refused: {err}");
    let sent: Vec<Vec<u8>> = log.lock().unwrap().iter().filter(|c| c[1] == 0x87).cloned().collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(&sent[0][..4], &[0x00, 0x87, 0x0A, 0x9B]);
    // A PIN with letters is sent (padded to 8 bytes with FF).
    card.authenticate(PinId::USER, &Pin::new(b"abc123".to_vec())).unwrap();
    let verify = log.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        verify,
        scard_iso7816::hex::decode_lenient("00 20 00 80 08 616263313233 FFFF").unwrap()
    );
}

#[test]
fn garbage_answers_are_errors_naming_the_operation() {
    // GET DATA: not a 53 object, a truncated one, trailing bytes, a bad GUID.
    for answer in
        ["99 00 90 00", "53 05 01 90 00", "53 00 00 90 00", "53 03 34 01 00 90 00", "90 00"]
    {
        let mut card = scripted(vec![(0xCB, answer)]);
        let err = card.card_id().unwrap_err();
        assert!(err.to_string().contains("CHUID"), "{answer}: {err}");
        assert!(card.containers().is_err());
    }
    // No CHUID at all: the message names what was being read (found by the hostile card).
    let mut card = scripted(vec![(0xCB, "6A 82")]);
    let err = card.card_id().unwrap_err();
    assert!(err.to_string().starts_with("reading the card id (CHUID): "), "{err}");
    // A certificate object without a certificate, or with garbage as one: an error, or a
    // certificate whose key is unusable, never a panic.
    let mut card = scripted(vec![(0xCB, "53 03 71 01 00 90 00")]);
    assert!(card.certificate(0).is_err());
    let mut card = scripted(vec![(0xCB, "53 06 70 02 30 00 71 00 90 00")]);
    assert!(card.certificate(0).unwrap().is_some());
    // Odd status words.
    let mut card = scripted(vec![(0xCB, "6F 00")]);
    let err = card.card_id().unwrap_err();
    assert!(matches!(err, CardError::Status { .. }) && err.to_string().contains("6F00"), "{err}");
    // VERIFY: 6300 without a count, 63C1, 6983; empty VERIFY with an odd answer.
    for (answer, check) in
        [("63 00", "WrongPin None"), ("63 C1", "WrongPin 1"), ("69 83", "blocked")]
    {
        let mut card = scripted(vec![(0x20, answer)]);
        let err = card.authenticate(PinId::USER, &Pin::new(b"123456".to_vec())).unwrap_err();
        match check {
            "WrongPin None" => {
                assert!(matches!(err, CardError::WrongPin { tries_left: None, .. }), "{err}")
            }
            "WrongPin 1" => {
                assert!(matches!(err, CardError::WrongPin { tries_left: Some(1), .. }), "{err}")
            }
            _ => assert!(matches!(err, CardError::PinBlocked { .. }), "{err}"),
        }
    }
    let mut card = scripted(vec![(0x20, "6A 88")]);
    assert!(card.tries_left(PinId::USER).is_err());
    assert_eq!(card.pins().unwrap()[0].tries_left, None);
    // Management key: a witness of the wrong size, no 7C, a wrong answer to our challenge.
    for answer in ["7C 04 80 02 01 02 90 00", "80 08 0102030405060708 90 00", "90 00"] {
        let mut card = scripted(vec![(0x87, answer)]);
        let err =
            card.authenticate_admin_key(&Pin::new(DEFAULT_MANAGEMENT_KEY.to_vec())).unwrap_err();
        assert!(err.to_string().contains("management key"), "{answer}: {err}");
    }
    let mut card = scripted(vec![(0x87, "7C 0A 80 08 0102030405060708 90 00")]);
    let err = card.authenticate_admin_key(&Pin::new(DEFAULT_MANAGEMENT_KEY.to_vec())).unwrap_err();
    assert!(matches!(err, CardError::Malformed { .. }), "no 82 answer: {err}");
    assert!(!card.channel().authenticated().contains(PinId::ADMIN));
    // GENERATE: garbage, a point not on the curve, another algorithm than asked.
    for answer in
        ["7F 49 03 86 01 04 90 00", "7F 49 05 81 01 05 82 00 90 00", "7F 48 00 90 00", "01 90 00"]
    {
        let mut card = scripted(vec![(0xCB, "6A 82"), (0x47, answer)]);
        card.channel().set_authenticated(PinId::ADMIN);
        let err = card.generate_key(0, KeyAlgorithm::Ec(Curve::P256)).unwrap_err();
        assert!(err.to_string().contains("GENERATE"), "{answer}: {err}");
    }
}

/// The generic model (short APDUs only): a 2048-bit RSA operation is sent as a command chain
/// and its answer comes back through 61xx / GET RESPONSE, all inside the exchange engine.
#[test]
fn long_general_authenticate_is_chained_with_short_apdus() {
    use sha2::Digest;
    let mut env = Env::new(16);
    let t = env.readers.connect(Some("sim:piv"), ShareMode::Shared).unwrap();
    let generic = env.profiles.models().find(|m| m.generic).unwrap().clone();
    let mut card = env.profiles.open_as(t, generic).unwrap();
    assert!(!card.channel().limits().extended_length);
    admin(&mut card);
    let public = card.generate_key(0, KeyAlgorithm::Rsa(2048)).unwrap();
    card.put_certificate(0, Some(&cert_for(&public, "short"))).unwrap();
    let key = rsa_public(&public);
    verify(&mut card);
    let digest = sha2::Sha256::digest(b"chained").to_vec();
    let req =
        SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::Pkcs1, data: &digest };
    let (commands_before, apdus_before) = (commands(&mut card), env.apdus());
    let sig = card.sign(0, &req).unwrap();
    let (commands, apdus) = (commands(&mut card) - commands_before, env.apdus() - apdus_before);
    key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, &sig).unwrap();
    assert_eq!(commands, 1);
    // Two chained pieces (266 bytes of data), then the 260-byte answer: 256 + 4 bytes.
    assert_eq!(apdus, 3, "GENERAL AUTHENTICATE chained and its answer fetched");
    let mut rng = rand_core::OsRng;
    let ct = key.encrypt(&mut rng, rsa::Pkcs1v15Encrypt, b"short").unwrap();
    assert_eq!(card.decrypt(0, &DecryptPadding::Pkcs1, &ct).unwrap().expose(), b"short");
    // A later connection reads the certificate through GET RESPONSE too.
    let t = env.readers.connect(Some("sim:piv"), ShareMode::Shared).unwrap();
    let generic = env.profiles.models().find(|m| m.generic).unwrap().clone();
    let mut later = env.profiles.open_as(t, generic).unwrap();
    assert!(later.container(0).unwrap().has_key());
}
