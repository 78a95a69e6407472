//! The module as applications load it: `libscard_pkcs11.so` through the `cryptoki` crate,
//! over in-process simulated cards (`SCARD_READERS=sim:piv:FILE`, ...).
//!
//! A PKCS#11 module is one per process (its state, `C_Initialize`, the environment it reads),
//! so every test re-runs this test binary filtered to itself, in a child process with its own
//! `SCARD_READERS`, configuration and cache directories ([`isolated`]).
//!
//! Covered: sessions and their states, logins (user, SO with the PIV management key in hex,
//! OpenPGP PW3), always-authenticate keys (PIV 9C: `CKU_CONTEXT_SPECIFIC` once per
//! operation), key generation in a named or the first free container, every signature and
//! decryption mechanism checked against RustCrypto, ECDH, certificates written and deleted,
//! PIN change and unblock, bad handles and bad templates, and eight threads signing at once.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{
    Attribute, AttributeInfo, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use rsa::traits::PublicKeyParts;
use sha2::Digest;
use signature::hazmat::PrehashVerifier;

const CHILD_ENV: &str = "SCARD_PKCS11_TEST_CHILD";
const DIR_ENV: &str = "SCARD_PKCS11_TEST_DIR";
const PIN: &str = "123456";
const PIV_PUK: &str = "12345678";
/// The default PIV management key (3DES 0102030405060708 three times), as the SO PIN in hex.
const PIV_SO: &str = "010203040506070801020304050607080102030405060708";
const OPENPGP_SO: &str = "12345678";

/// The module this test build made: `libscard_pkcs11.so` in `target/<profile>/deps/` (where
/// `cargo test` builds the package's cdylib) or `target/<profile>/` (`cargo build`),
/// whichever is newer.
fn module_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let name =
        format!("{}scard_pkcs11{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    let candidates = [deps.join(&name), deps.parent().unwrap().join(&name)];
    candidates
        .into_iter()
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("{name} missing: run `cargo build -p scard-pkcs11`"))
}

/// Runs `body` in a child process of this test binary with `SCARD_READERS` set to
/// `readers(dir)` (dir: a fresh directory for state files), nothing of the user's
/// configuration, and the module's log in `dir/module.log` (printed when the test fails).
fn isolated(test: &str, readers: impl Fn(&Path) -> String, body: impl FnOnce(&Path)) {
    if std::env::var(CHILD_ENV).as_deref() == Ok(test) {
        let dir = PathBuf::from(std::env::var(DIR_ENV).unwrap());
        body(&dir);
        return;
    }
    let dir = std::env::temp_dir().join(format!("scard-pkcs11-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test)
        .env(DIR_ENV, &dir)
        .env("SCARD_READERS", readers(&dir))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env("SCARD_LOG", dir.join("module.log"))
        .env("SCARD_LOG_LEVEL", "debug,scard_transport=trace")
        .output()
        .unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let passed = out.status.success() && text.contains("1 passed");
    if !passed {
        let log = std::fs::read_to_string(dir.join("module.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "{test} failed in its process:\n{text}\n--- module log (tail) ---\n{}",
            tail.join("\n")
        );
    }
    println!("{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn context() -> Pkcs11 {
    let p = Pkcs11::new(module_path()).unwrap();
    p.initialize(CInitializeArgs::OsThreads).unwrap();
    p
}

fn pin(s: &str) -> AuthPin {
    AuthPin::new(s.to_owned())
}

/// The code of a failed call.
fn rv<T: std::fmt::Debug>(r: cryptoki::error::Result<T>) -> RvError {
    match r {
        Err(Error::Pkcs11(rv, _)) => rv,
        other => panic!("expected a PKCS#11 error, got {other:?}"),
    }
}

fn only_slot(p: &Pkcs11) -> Slot {
    let slots = p.get_slots_with_token().unwrap();
    assert_eq!(slots.len(), 1, "{slots:?}");
    slots[0]
}

fn id_of(s: &Session, h: ObjectHandle) -> Vec<u8> {
    match s.get_attributes(h, &[AttributeType::Id]).unwrap().pop() {
        Some(Attribute::Id(id)) => id,
        other => panic!("{other:?}"),
    }
}

fn find(s: &Session, class: ObjectClass, id: u8) -> Vec<ObjectHandle> {
    s.find_objects(&[Attribute::Class(class), Attribute::Id(vec![id])]).unwrap()
}

fn find_one(s: &Session, class: ObjectClass, id: u8) -> ObjectHandle {
    let found = find(s, class, id);
    assert_eq!(found.len(), 1, "{class:?} {id:02X}");
    found[0]
}

/// Generates an EC key pair (`None`: in the first free container).
fn generate_ec(s: &Session, id: Option<u8>, params: &[u8]) -> (ObjectHandle, ObjectHandle) {
    let mut public = vec![
        Attribute::Token(true),
        Attribute::EcParams(params.to_vec()),
        Attribute::Verify(true),
        Attribute::Derive(true),
    ];
    let mut private = vec![Attribute::Token(true), Attribute::Private(true), Attribute::Sign(true)];
    if let Some(id) = id {
        public.push(Attribute::Id(vec![id]));
        private.push(Attribute::Id(vec![id]));
    }
    s.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private).unwrap()
}

fn generate_rsa(s: &Session, id: u8) -> (ObjectHandle, ObjectHandle) {
    let public = vec![
        Attribute::Token(true),
        Attribute::ModulusBits(2048.into()),
        Attribute::PublicExponent(vec![1, 0, 1]),
        Attribute::Id(vec![id]),
    ];
    let private = vec![Attribute::Token(true), Attribute::Sensitive(true), Attribute::Id(vec![id])];
    s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private).unwrap()
}

const P256: [u8; 10] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const P384: [u8; 7] = [0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22];

/// The uncompressed point of an EC public key object (CKA_EC_POINT is a DER OCTET STRING).
fn ec_point(s: &Session, public: ObjectHandle) -> Vec<u8> {
    let Some(Attribute::EcPoint(der)) =
        s.get_attributes(public, &[AttributeType::EcPoint]).unwrap().pop()
    else {
        panic!("no EC point")
    };
    assert_eq!(der[0], 0x04, "an OCTET STRING");
    assert_eq!(usize::from(der[1]), der.len() - 2);
    der[2..].to_vec()
}

fn verify_p256(point: &[u8], digest: &[u8], sig: &[u8]) {
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
    let sig = p256::ecdsa::Signature::from_slice(sig).unwrap();
    key.verify_prehash(digest, &sig).unwrap();
}

fn verify_p384(point: &[u8], digest: &[u8], sig: &[u8]) {
    let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
    let sig = p384::ecdsa::Signature::from_slice(sig).unwrap();
    key.verify_prehash(digest, &sig).unwrap();
}

fn rsa_public(s: &Session, public: ObjectHandle) -> rsa::RsaPublicKey {
    let attrs =
        s.get_attributes(public, &[AttributeType::Modulus, AttributeType::PublicExponent]).unwrap();
    let (mut n, mut e) = (Vec::new(), Vec::new());
    for a in attrs {
        match a {
            Attribute::Modulus(v) => n = v,
            Attribute::PublicExponent(v) => e = v,
            _ => {}
        }
    }
    rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(&n), rsa::BigUint::from_bytes_be(&e))
        .unwrap()
}

fn pss(hash: MechanismType, mgf: PkcsMgfType, salt: u64) -> PkcsPssParams {
    PkcsPssParams { hash_alg: hash, mgf, s_len: salt.into() }
}

#[test]
fn sessions_and_login_states() {
    isolated(
        "sessions_and_login_states",
        |d| format!("sim:piv:{}", d.join("piv.json").display()),
        |_| {
            let p = context();
            let info = p.get_library_info().unwrap();
            assert_eq!(info.cryptoki_version().major(), 3);
            let slot = only_slot(&p);
            let token = p.get_token_info(slot).unwrap();
            assert!(
                token.login_required() && token.user_pin_initialized() && token.token_initialized()
            );
            assert!(token.label().contains("scard simulated"), "{}", token.label());
            assert_eq!((token.min_pin_length(), token.max_pin_length()), (6, 8));
            let mechs = p.get_mechanism_list(slot).unwrap();
            for m in [
                MechanismType::ECDSA_SHA256,
                MechanismType::RSA_PKCS_OAEP,
                MechanismType::ECDH1_DERIVE,
                MechanismType::ECC_KEY_PAIR_GEN,
            ] {
                assert!(mechs.contains(&m), "{m}");
            }
            let info = p.get_mechanism_info(slot, MechanismType::ECC_KEY_PAIR_GEN).unwrap();
            assert!(info.generate_key_pair() && info.ec_from_oid() && info.ec_uncompressed());
            assert_eq!(
                rv(p.get_mechanism_info(slot, MechanismType::AES_CBC)),
                RvError::MechanismInvalid
            );

            let ro = p.open_ro_session(slot).unwrap();
            assert_eq!(ro.get_session_info().unwrap().session_state(), SessionState::RoPublic);
            let rw = p.open_rw_session(slot).unwrap();
            assert_eq!(rw.get_session_info().unwrap().session_state(), SessionState::RwPublic);
            // PKCS#11 3.0 §5.6: no SO login while a read-only session is open.
            assert_eq!(
                rv(rw.login(UserType::So, Some(&pin(PIV_SO)))),
                RvError::SessionReadOnlyExists
            );
            drop(ro);
            assert_eq!(rv(rw.login(UserType::So, Some(&pin("not hex")))), RvError::PinIncorrect);
            assert_eq!(
                rv(rw.login(UserType::So, Some(&pin(&"00".repeat(24))))),
                RvError::PinIncorrect
            );
            rw.login(UserType::So, Some(&pin(PIV_SO))).unwrap();
            assert_eq!(
                rw.get_session_info().unwrap().session_state(),
                SessionState::RwSecurityOfficer
            );
            assert_eq!(rv(p.open_ro_session(slot)), RvError::SessionReadWriteSoExists);
            assert_eq!(
                rv(rw.login(UserType::So, Some(&pin(PIV_SO)))),
                RvError::UserAlreadyLoggedIn
            );
            assert_eq!(
                rv(rw.login(UserType::User, Some(&pin(PIN)))),
                RvError::UserAnotherAlreadyLoggedIn
            );

            // The SO generates; a CKA_ID of one byte names the container (01 = 9A, 03 = 9D).
            let (pub_a, priv_a) = generate_ec(&rw, Some(0x01), &P256);
            assert_eq!(id_of(&rw, pub_a), vec![0x01]);
            let (pub_d, _) = generate_rsa(&rw, 0x03);
            assert_eq!(id_of(&rw, pub_d), vec![0x03]);
            // A CKA_ID that names no container: the first free one (9C, ID 02).
            let (pub_c, _) = generate_ec(&rw, None, &P256);
            assert_eq!(id_of(&rw, pub_c), vec![0x02]);
            // The SO sees the private keys it made, but cannot use them (they need the user PIN).
            assert_eq!(
                rw.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)]).unwrap().len(),
                3
            );
            assert_eq!(
                rw.get_attributes(priv_a, &[AttributeType::Sign]).unwrap(),
                vec![Attribute::Sign(true)]
            );
            assert_eq!(rv(rw.sign(&Mechanism::Ecdsa, priv_a, &[1; 32])), RvError::UserNotLoggedIn);
            rw.logout().unwrap();
            assert!(
                rw.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)]).unwrap().is_empty()
            );
            assert_eq!(
                rv(rw.get_attributes(priv_a, &[AttributeType::Sign])),
                RvError::ObjectHandleInvalid
            );
            assert_eq!(rv(rw.logout()), RvError::UserNotLoggedIn);
            assert_eq!(rw.get_session_info().unwrap().session_state(), SessionState::RwPublic);

            // A wrong PIN counts; the token says so.
            assert_eq!(rv(rw.login(UserType::User, Some(&pin("999999")))), RvError::PinIncorrect);
            let token = p.get_token_info(slot).unwrap();
            assert!(token.user_pin_count_low() && !token.user_pin_final_try(), "{token:?}");
            assert_eq!(rv(rw.login(UserType::User, Some(&pin("12")))), RvError::PinLenRange);
            rw.login(UserType::User, Some(&pin(PIN))).unwrap();
            assert_eq!(rw.get_session_info().unwrap().session_state(), SessionState::RwUser);
            assert!(!p.get_token_info(slot).unwrap().user_pin_count_low());
            let ro = p.open_ro_session(slot).unwrap();
            assert_eq!(ro.get_session_info().unwrap().session_state(), SessionState::RoUser);
            assert_eq!(rv(rw.login(UserType::User, Some(&pin(PIN)))), RvError::UserAlreadyLoggedIn);

            // Private keys: sensitive, never extractable, CKA_ID tying them to the public keys.
            let priv_a = find_one(&ro, ObjectClass::PRIVATE_KEY, 0x01);
            let attrs = ro
                .get_attributes(
                    priv_a,
                    &[
                        AttributeType::Sensitive,
                        AttributeType::Extractable,
                        AttributeType::AlwaysSensitive,
                        AttributeType::NeverExtractable,
                        AttributeType::Private,
                        AttributeType::Sign,
                        AttributeType::Derive,
                        AttributeType::KeyType,
                        AttributeType::AlwaysAuthenticate,
                    ],
                )
                .unwrap();
            for a in &attrs {
                match a {
                    Attribute::Sensitive(v)
                    | Attribute::AlwaysSensitive(v)
                    | Attribute::NeverExtractable(v)
                    | Attribute::Private(v)
                    | Attribute::Sign(v) => assert!(*v, "{a:?}"),
                    Attribute::Extractable(v)
                    | Attribute::Derive(v)
                    | Attribute::AlwaysAuthenticate(v) => assert!(!*v, "{a:?}"),
                    Attribute::KeyType(k) => assert_eq!(*k, KeyType::EC),
                    other => panic!("{other:?}"),
                }
            }
            let info = ro
                .get_attribute_info(
                    priv_a,
                    &[AttributeType::Value, AttributeType::EcParams, AttributeType::Modulus],
                )
                .unwrap();
            assert!(matches!(info[0], AttributeInfo::Sensitive), "{info:?}");
            assert!(matches!(info[1], AttributeInfo::Available(10)), "{info:?}");
            assert!(matches!(info[2], AttributeInfo::TypeInvalid), "{info:?}");

            // Signing works from the read-only session too.
            let point = ec_point(&ro, pub_a);
            let data = b"signed through PKCS#11";
            let sig = ro.sign(&Mechanism::EcdsaSha256, priv_a, data).unwrap();
            verify_p256(&point, &sha2::Sha256::digest(data), &sig);

            // Logging out hides the private keys: their handles are no longer valid.
            rw.logout().unwrap();
            assert_eq!(ro.get_session_info().unwrap().session_state(), SessionState::RoPublic);
            assert_eq!(rv(ro.sign(&Mechanism::Ecdsa, priv_a, &[1; 32])), RvError::KeyHandleInvalid);
            assert!(
                ro.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)]).unwrap().is_empty()
            );
            assert_eq!(
                ro.find_objects(&[Attribute::Class(ObjectClass::PUBLIC_KEY)]).unwrap().len(),
                3
            );

            // Closing the last session logs the token out.
            rw.login(UserType::User, Some(&pin(PIN))).unwrap();
            drop(ro);
            drop(rw);
            let again = p.open_ro_session(slot).unwrap();
            assert_eq!(again.get_session_info().unwrap().session_state(), SessionState::RoPublic);
        },
    );
}

#[test]
fn every_mechanism_against_rustcrypto() {
    isolated(
        "every_mechanism_against_rustcrypto",
        |d| format!("sim:piv:{}", d.join("piv.json").display()),
        |_| {
            let p = context();
            let slot = only_slot(&p);
            let s = p.open_rw_session(slot).unwrap();
            s.login(UserType::So, Some(&pin(PIV_SO))).unwrap();
            let (pub_a, _) = generate_ec(&s, Some(0x01), &P256);
            let (pub_d, _) = generate_rsa(&s, 0x03);
            let (pub_e, _) = generate_ec(&s, Some(0x04), &P384);
            s.logout().unwrap();
            s.login(UserType::User, Some(&pin(PIN))).unwrap();
            let priv_a = find_one(&s, ObjectClass::PRIVATE_KEY, 0x01);
            let priv_d = find_one(&s, ObjectClass::PRIVATE_KEY, 0x03);
            let priv_e = find_one(&s, ObjectClass::PRIVATE_KEY, 0x04);
            let data = b"the quick brown fox".as_slice();

            // ECDSA, P-256 and P-384, raw and with each hash (the hash is cut to the curve).
            for (pub_k, priv_k, p384) in [(pub_a, priv_a, false), (pub_e, priv_e, true)] {
                let point = ec_point(&s, pub_k);
                let verify = |digest: &[u8], sig: &[u8]| {
                    // The integer the card signed: the digest cut or left-padded to the curve.
                    let n = if p384 { 48 } else { 32 };
                    let mut e = digest.to_vec();
                    if e.len() > n {
                        e.truncate(n);
                    } else {
                        e.splice(0..0, std::iter::repeat_n(0u8, n - e.len()));
                    }
                    if p384 { verify_p384(&point, &e, sig) } else { verify_p256(&point, &e, sig) }
                };
                let digest = sha2::Sha256::digest(data);
                verify(&digest, &s.sign(&Mechanism::Ecdsa, priv_k, &digest).unwrap());
                verify(
                    &sha1::Sha1::digest(data),
                    &s.sign(&Mechanism::EcdsaSha1, priv_k, data).unwrap(),
                );
                verify(&digest, &s.sign(&Mechanism::EcdsaSha256, priv_k, data).unwrap());
                verify(
                    &sha2::Sha384::digest(data),
                    &s.sign(&Mechanism::EcdsaSha384, priv_k, data).unwrap(),
                );
                verify(
                    &sha2::Sha512::digest(data),
                    &s.sign(&Mechanism::EcdsaSha512, priv_k, data).unwrap(),
                );
            }
            assert_eq!(
                rv(s.sign(&Mechanism::Sha256RsaPkcs, priv_a, data)),
                RvError::KeyTypeInconsistent
            );
            assert_eq!(
                rv(s.decrypt(&Mechanism::RsaPkcs, priv_a, &[1; 256])),
                RvError::KeyTypeInconsistent
            );

            // RSA 2048 in 9D: PKCS#1 v1.5, PSS, raw; then decryption.
            let public = rsa_public(&s, pub_d);
            let sha256 = sha2::Sha256::digest(data);
            let v15 = |digest: &[u8], sig: &[u8], scheme: rsa::Pkcs1v15Sign| {
                public.verify(scheme, digest, sig).unwrap()
            };
            v15(
                &sha256,
                &s.sign(&Mechanism::Sha256RsaPkcs, priv_d, data).unwrap(),
                rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
            );
            v15(
                &sha1::Sha1::digest(data),
                &s.sign(&Mechanism::Sha1RsaPkcs, priv_d, data).unwrap(),
                rsa::Pkcs1v15Sign::new::<sha1::Sha1>(),
            );
            v15(
                &sha2::Sha384::digest(data),
                &s.sign(&Mechanism::Sha384RsaPkcs, priv_d, data).unwrap(),
                rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
            );
            v15(
                &sha2::Sha512::digest(data),
                &s.sign(&Mechanism::Sha512RsaPkcs, priv_d, data).unwrap(),
                rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
            );
            // CKM_RSA_PKCS over a DigestInfo the application made.
            let mut info = vec![
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ];
            info.extend_from_slice(&sha256);
            v15(
                &sha256,
                &s.sign(&Mechanism::RsaPkcs, priv_d, &info).unwrap(),
                rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
            );
            // PSS: the digest (CKM_RSA_PKCS_PSS) or the data (CKM_SHA*_RSA_PKCS_PSS).
            let sig = s
                .sign(
                    &Mechanism::RsaPkcsPss(pss(
                        MechanismType::SHA256,
                        PkcsMgfType::MGF1_SHA256,
                        32,
                    )),
                    priv_d,
                    &sha256,
                )
                .unwrap();
            public.verify(rsa::Pss::new_with_salt::<sha2::Sha256>(32), &sha256, &sig).unwrap();
            let sig = s
                .sign(
                    &Mechanism::Sha384RsaPkcsPss(pss(
                        MechanismType::SHA384,
                        PkcsMgfType::MGF1_SHA384,
                        48,
                    )),
                    priv_d,
                    data,
                )
                .unwrap();
            public
                .verify(
                    rsa::Pss::new_with_salt::<sha2::Sha384>(48),
                    &sha2::Sha384::digest(data),
                    &sig,
                )
                .unwrap();
            let sig = s
                .sign(
                    &Mechanism::Sha1RsaPkcsPss(pss(
                        MechanismType::SHA1,
                        PkcsMgfType::MGF1_SHA1,
                        20,
                    )),
                    priv_d,
                    data,
                )
                .unwrap();
            public
                .verify(rsa::Pss::new_with_salt::<sha1::Sha1>(20), &sha1::Sha1::digest(data), &sig)
                .unwrap();
            let sig = s
                .sign(
                    &Mechanism::Sha512RsaPkcsPss(pss(
                        MechanismType::SHA512,
                        PkcsMgfType::MGF1_SHA512,
                        0,
                    )),
                    priv_d,
                    data,
                )
                .unwrap();
            public
                .verify(
                    rsa::Pss::new_with_salt::<sha2::Sha512>(0),
                    &sha2::Sha512::digest(data),
                    &sig,
                )
                .unwrap();
            let sig = s
                .sign(
                    &Mechanism::Sha256RsaPkcsPss(pss(
                        MechanismType::SHA256,
                        PkcsMgfType::MGF1_SHA256,
                        32,
                    )),
                    priv_d,
                    data,
                )
                .unwrap();
            public.verify(rsa::Pss::new_with_salt::<sha2::Sha256>(32), &sha256, &sig).unwrap();
            // Parameters that cannot be right are refused before the card.
            let bad_mgf =
                Mechanism::RsaPkcsPss(pss(MechanismType::SHA256, PkcsMgfType::MGF1_SHA1, 32));
            assert_eq!(rv(s.sign(&bad_mgf, priv_d, &sha256)), RvError::MechanismParamInvalid);
            let bad_hash = Mechanism::Sha256RsaPkcsPss(pss(
                MechanismType::SHA384,
                PkcsMgfType::MGF1_SHA384,
                32,
            ));
            assert_eq!(rv(s.sign(&bad_hash, priv_d, data)), RvError::MechanismParamInvalid);
            assert_eq!(
                rv(s.sign(
                    &Mechanism::RsaPkcsPss(pss(
                        MechanismType::SHA256,
                        PkcsMgfType::MGF1_SHA256,
                        32
                    )),
                    priv_d,
                    &sha256[..31]
                )),
                RvError::DataLenRange
            );
            assert_eq!(
                rv(s.sign(&Mechanism::EcdsaSha256, priv_d, data)),
                RvError::KeyTypeInconsistent
            );
            // Raw RSA: the block comes back as the public key sees it.
            let mut block = vec![0u8; 256];
            block[1] = 0x42;
            block[255] = 0x07;
            let raw = s.sign(&Mechanism::RsaX509, priv_d, &block).unwrap();
            let back =
                rsa::BigUint::from_bytes_be(&raw).modpow(public.e(), public.n()).to_bytes_be();
            assert_eq!(back, block[1..].to_vec());

            // Multi-part signing hashes on the host: same result as one part (ECDSA differs by
            // its nonce, so check a deterministic RSA signature).
            s.sign_init(&Mechanism::Sha256RsaPkcs, priv_d).unwrap();
            assert_eq!(
                rv(s.sign_init(&Mechanism::Sha256RsaPkcs, priv_d)),
                RvError::OperationActive
            );
            s.sign_update(&data[..4]).unwrap();
            s.sign_update(&data[4..]).unwrap();
            assert_eq!(
                s.sign_final().unwrap(),
                s.sign(&Mechanism::Sha256RsaPkcs, priv_d, data).unwrap()
            );

            // Decryption: PKCS#1 v1.5, OAEP (SHA-256 and SHA-1, with and without a label), raw.
            let mut rng = rand_core::OsRng;
            let secret = b"a session key of sorts";
            let c = public.encrypt(&mut rng, rsa::Pkcs1v15Encrypt, secret).unwrap();
            assert_eq!(s.decrypt(&Mechanism::RsaPkcs, priv_d, &c).unwrap(), secret);
            let c = public.encrypt(&mut rng, rsa::Oaep::new::<sha2::Sha256>(), secret).unwrap();
            let oaep = PkcsOaepParams::new(
                MechanismType::SHA256,
                PkcsMgfType::MGF1_SHA256,
                PkcsOaepSource::empty(),
            );
            assert_eq!(s.decrypt(&Mechanism::RsaPkcsOaep(oaep), priv_d, &c).unwrap(), secret);
            let c = public
                .encrypt(&mut rng, rsa::Oaep::new_with_label::<sha1::Sha1, _>("ABC"), secret)
                .unwrap();
            let oaep = PkcsOaepParams::new(
                MechanismType::SHA1,
                PkcsMgfType::MGF1_SHA1,
                PkcsOaepSource::data_specified(b"ABC"),
            );
            assert_eq!(s.decrypt(&Mechanism::RsaPkcsOaep(oaep), priv_d, &c).unwrap(), secret);
            let wrong = PkcsOaepParams::new(
                MechanismType::SHA1,
                PkcsMgfType::MGF1_SHA1,
                PkcsOaepSource::data_specified(b"XYZ"),
            );
            assert_eq!(
                rv(s.decrypt(&Mechanism::RsaPkcsOaep(wrong), priv_d, &c)),
                RvError::EncryptedDataInvalid
            );
            let c =
                rsa::BigUint::from_bytes_be(&block).modpow(public.e(), public.n()).to_bytes_be();
            assert_eq!(s.decrypt(&Mechanism::RsaX509, priv_d, &c).unwrap(), block);
            assert_eq!(
                rv(s.decrypt(&Mechanism::RsaPkcs, priv_d, &[1; 257])),
                RvError::EncryptedDataLenRange
            );

            // ECDH needs an ECDH key: 9D holds RSA here; 9A is an ECDSA key.
            let peer = p256::SecretKey::random(&mut rng);
            let peer_point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                &peer.public_key(),
                false,
            );
            let params = Ecdh1DeriveParams::new(EcKdf::null(), peer_point.as_bytes());
            assert_eq!(
                rv(s.derive_key(
                    &Mechanism::Ecdh1Derive(params),
                    priv_a,
                    &[Attribute::Class(ObjectClass::SECRET_KEY)]
                )),
                RvError::KeyFunctionNotPermitted
            );
            assert_eq!(
                rv(s.sign(&Mechanism::Sha256RsaPkcs, priv_e, data)),
                RvError::KeyTypeInconsistent
            );
        },
    );
}

#[test]
fn ecdh_derives_a_session_key() {
    isolated(
        "ecdh_derives_a_session_key",
        |d| format!("sim:piv:{}", d.join("piv.json").display()),
        |_| {
            let p = context();
            let slot = only_slot(&p);
            let s = p.open_rw_session(slot).unwrap();
            s.login(UserType::So, Some(&pin(PIV_SO))).unwrap();
            // 9D (ID 03) is the key management key: an EC key there does ECDH.
            let (pub_d, _) = generate_ec(&s, Some(0x03), &P256);
            s.logout().unwrap();
            s.login(UserType::User, Some(&pin(PIN))).unwrap();
            let priv_d = find_one(&s, ObjectClass::PRIVATE_KEY, 0x03);
            let card_point = ec_point(&s, pub_d);
            let derive =
                s.get_attributes(priv_d, &[AttributeType::Derive, AttributeType::Sign]).unwrap();
            assert!(
                derive.contains(&Attribute::Derive(true))
                    && derive.contains(&Attribute::Sign(false))
            );

            let mut rng = rand_core::OsRng;
            let peer = p256::SecretKey::random(&mut rng);
            let peer_point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                &peer.public_key(),
                false,
            );
            let card_public = p256::PublicKey::from_sec1_bytes(&card_point).unwrap();
            let expected =
                p256::ecdh::diffie_hellman(peer.to_nonzero_scalar(), card_public.as_affine());
            let params = Ecdh1DeriveParams::new(EcKdf::null(), peer_point.as_bytes());
            // What pkcs11-tool --derive asks for: a session secret key, readable.
            let template = [
                Attribute::Token(false),
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::ValueLen(32.into()),
            ];
            let key = s.derive_key(&Mechanism::Ecdh1Derive(params), priv_d, &template).unwrap();
            let value = s.get_attributes(key, &[AttributeType::Value]).unwrap();
            assert_eq!(value, vec![Attribute::Value(expected.raw_secret_bytes().to_vec())]);
            // The peer point may also come as a DER OCTET STRING (pkcs11-tool --derive-pass-der).
            let mut der = vec![0x04, 0x41];
            der.extend_from_slice(peer_point.as_bytes());
            let params = Ecdh1DeriveParams::new(EcKdf::null(), &der);
            // By default a derived key is sensitive.
            let hidden = s
                .derive_key(
                    &Mechanism::Ecdh1Derive(params),
                    priv_d,
                    &[Attribute::Class(ObjectClass::SECRET_KEY)],
                )
                .unwrap();
            let info = s
                .get_attribute_info(hidden, &[AttributeType::Value, AttributeType::ValueLen])
                .unwrap();
            assert!(matches!(info[0], AttributeInfo::Sensitive), "{info:?}");
            assert!(matches!(info[1], AttributeInfo::Available(8)), "{info:?}");
            // A derived key is a session object: destroyed, its handle is gone.
            s.destroy_object(hidden).unwrap();
            assert_eq!(
                rv(s.get_attributes(hidden, &[AttributeType::Class])),
                RvError::ObjectHandleInvalid
            );
            // A derived key cannot go to the card.
            let params = Ecdh1DeriveParams::new(EcKdf::null(), peer_point.as_bytes());
            assert_eq!(
                rv(s.derive_key(
                    &Mechanism::Ecdh1Derive(params),
                    priv_d,
                    &[Attribute::Token(true)]
                )),
                RvError::TemplateInconsistent
            );
            // A point that is not on the key's curve (P-384 length).
            let params = Ecdh1DeriveParams::new(EcKdf::null(), &[4u8; 97]);
            assert_eq!(
                rv(s.derive_key(&Mechanism::Ecdh1Derive(params), priv_d, &[])),
                RvError::MechanismParamInvalid
            );
            // Closing the session ends its session objects.
            let other = p.open_ro_session(slot).unwrap();
            drop(s);
            assert_eq!(
                rv(other.get_attributes(key, &[AttributeType::Class])),
                RvError::ObjectHandleInvalid
            );
        },
    );
}

#[test]
fn always_authenticate_keys() {
    isolated(
        "always_authenticate_keys",
        |d| format!("sim:piv:{}", d.join("piv.json").display()),
        |_| {
            let p = context();
            let slot = only_slot(&p);
            let s = p.open_rw_session(slot).unwrap();
            s.login(UserType::So, Some(&pin(PIV_SO))).unwrap();
            // 9C, the digital signature key: PIN always (SP 800-73-4 Pt 1 §3.2.2).
            let (pub_c, _) = generate_ec(&s, Some(0x02), &P256);
            s.logout().unwrap();
            assert_eq!(
                rv(s.login(UserType::ContextSpecific, Some(&pin(PIN)))),
                RvError::OperationNotInitialized
            );
            s.login(UserType::User, Some(&pin(PIN))).unwrap();
            let priv_c = find_one(&s, ObjectClass::PRIVATE_KEY, 0x02);
            let aa = s.get_attributes(priv_c, &[AttributeType::AlwaysAuthenticate]).unwrap();
            assert_eq!(aa, vec![Attribute::AlwaysAuthenticate(true)]);
            let point = ec_point(&s, pub_c);
            let data = b"a contract";

            // Without the context-specific login the size is told, the signature refused.
            assert_eq!(rv(s.sign(&Mechanism::EcdsaSha256, priv_c, data)), RvError::UserNotLoggedIn);
            // A wrong PIN fails the login, not the operation.
            s.sign_init(&Mechanism::EcdsaSha256, priv_c).unwrap();
            assert_eq!(
                rv(s.login(UserType::ContextSpecific, Some(&pin("654321")))),
                RvError::PinIncorrect
            );
            s.login(UserType::ContextSpecific, Some(&pin(PIN))).unwrap();
            s.sign_update(data).unwrap();
            let sig = s.sign_final().unwrap();
            verify_p256(&point, &sha2::Sha256::digest(data), &sig);
            // One login, one operation.
            s.sign_init(&Mechanism::EcdsaSha256, priv_c).unwrap();
            s.sign_update(data).unwrap();
            assert_eq!(rv(s.sign_final()), RvError::UserNotLoggedIn);
            // Again, with its login.
            s.sign_init(&Mechanism::Ecdsa, priv_c).unwrap();
            s.login(UserType::ContextSpecific, Some(&pin(PIN))).unwrap();
            let digest = sha2::Sha256::digest(b"another");
            s.sign_update(&digest).unwrap();
            verify_p256(&point, &digest, &s.sign_final().unwrap());
            // The other keys do not ask.
            let token = p.get_token_info(slot).unwrap();
            assert!(!token.user_pin_count_low(), "{token:?}");
        },
    );
}

#[test]
fn openpgp_keys_pins_and_always_authenticate() {
    isolated(
        "openpgp_keys_pins_and_always_authenticate",
        |d| format!("sim:openpgp:{}", d.join("pgp.json").display()),
        |_| {
            let p = context();
            let slot = only_slot(&p);
            let s = p.open_rw_session(slot).unwrap();
            s.login(UserType::So, Some(&pin(OPENPGP_SO))).unwrap();
            let (pub_sig, _) = generate_ec(&s, Some(0x01), &P256);
            let (pub_aut, _) = generate_ec(&s, Some(0x03), &P384);
            assert_eq!(id_of(&s, pub_aut), vec![0x03]);
            // The SO sets a new user PIN (PW3 resets PW1), then puts it back.
            s.init_pin(&pin("222222")).unwrap();
            s.logout().unwrap();
            assert_eq!(rv(s.login(UserType::User, Some(&pin(PIN)))), RvError::PinIncorrect);
            s.login(UserType::User, Some(&pin("222222"))).unwrap();
            s.set_pin(&pin("222222"), &pin(PIN)).unwrap();
            s.logout().unwrap();
            s.login(UserType::User, Some(&pin(PIN))).unwrap();

            // The signature key wants PW1 for each signature (the card's default).
            let priv_sig = find_one(&s, ObjectClass::PRIVATE_KEY, 0x01);
            assert_eq!(
                s.get_attributes(priv_sig, &[AttributeType::AlwaysAuthenticate]).unwrap(),
                vec![Attribute::AlwaysAuthenticate(true)]
            );
            s.sign_init(&Mechanism::EcdsaSha256, priv_sig).unwrap();
            s.login(UserType::ContextSpecific, Some(&pin(PIN))).unwrap();
            s.sign_update(b"pgp").unwrap();
            verify_p256(
                &ec_point(&s, pub_sig),
                &sha2::Sha256::digest(b"pgp"),
                &s.sign_final().unwrap(),
            );
            // The authentication key does not.
            let priv_aut = find_one(&s, ObjectClass::PRIVATE_KEY, 0x03);
            let sig = s.sign(&Mechanism::EcdsaSha384, priv_aut, b"ssh").unwrap();
            verify_p384(&ec_point(&s, pub_aut), &sha2::Sha384::digest(b"ssh"), &sig);
        },
    );
}

#[test]
fn certificates_written_and_deleted() {
    isolated(
        "certificates_written_and_deleted",
        |d| format!("sim:gids:{}", d.join("gids.json").display()),
        |_| {
            let p = context();
            let slot = only_slot(&p);
            let s = p.open_rw_session(slot).unwrap();
            // The simulated GIDS card comes with an RSA key and its certificate in container 0.
            let cert = find_one(&s, ObjectClass::CERTIFICATE, 0x01);
            let attrs = s
                .get_attributes(
                    cert,
                    &[
                        AttributeType::Value,
                        AttributeType::Subject,
                        AttributeType::Issuer,
                        AttributeType::SerialNumber,
                        AttributeType::CertificateType,
                        AttributeType::Trusted,
                        AttributeType::Private,
                    ],
                )
                .unwrap();
            let der = match &attrs[0] {
                Attribute::Value(v) => v.clone(),
                other => panic!("{other:?}"),
            };
            use der::{Decode, Encode};
            let parsed = x509_cert::Certificate::from_der(&der).unwrap();
            let tbs = &parsed.tbs_certificate;
            assert_eq!(attrs[1], Attribute::Subject(tbs.subject.to_der().unwrap()));
            assert_eq!(attrs[2], Attribute::Issuer(tbs.issuer.to_der().unwrap()));
            assert_eq!(attrs[3], Attribute::SerialNumber(tbs.serial_number.to_der().unwrap()));
            assert_eq!(attrs[4], Attribute::CertificateType(CertificateType::X_509));
            assert_eq!(attrs[5], Attribute::Trusted(false));
            assert_eq!(attrs[6], Attribute::Private(false));
            // The public key object says the same key as the certificate.
            let public = find_one(&s, ObjectClass::PUBLIC_KEY, 0x01);
            let spki = tbs.subject_public_key_info.to_der().unwrap();
            assert_eq!(
                s.get_attributes(public, &[AttributeType::PublicKeyInfo]).unwrap(),
                vec![Attribute::PublicKeyInfo(spki)]
            );

            // Writes need a login (GIDS: the user PIN), in a read-write session.
            assert_eq!(rv(s.destroy_object(cert)), RvError::UserNotLoggedIn);
            s.login(UserType::User, Some(&pin(PIN))).unwrap();
            let ro = p.open_ro_session(slot).unwrap();
            assert_eq!(rv(ro.destroy_object(cert)), RvError::SessionReadOnly);
            s.destroy_object(cert).unwrap();
            assert!(find(&s, ObjectClass::CERTIFICATE, 0x01).is_empty());
            assert_eq!(find(&s, ObjectClass::PRIVATE_KEY, 0x01).len(), 1, "the key stays");
            let template = |id: Vec<u8>, value: Vec<u8>| {
                vec![
                    Attribute::Class(ObjectClass::CERTIFICATE),
                    Attribute::CertificateType(CertificateType::X_509),
                    Attribute::Token(true),
                    Attribute::Private(false),
                    Attribute::Label(b"imported".to_vec()),
                    Attribute::Id(id),
                    Attribute::Value(value),
                ]
            };
            assert_eq!(
                rv(ro.create_object(&template(vec![0x01], der.clone()))),
                RvError::SessionReadOnly
            );
            // Bad templates.
            assert_eq!(
                rv(s.create_object(&template(vec![0x01, 0x02], der.clone()))),
                RvError::AttributeValueInvalid
            );
            assert_eq!(
                rv(s.create_object(&template(vec![0xF0], der.clone()))),
                RvError::AttributeValueInvalid
            );
            assert_eq!(
                rv(s.create_object(&template(vec![0x01], vec![0x30, 0x03, 1, 2, 3]))),
                RvError::AttributeValueInvalid
            );
            assert_eq!(
                rv(s.create_object(&template(vec![0x01], der.clone())[..6])),
                RvError::TemplateIncomplete
            );
            let mut data_object = template(vec![0x01], der.clone());
            data_object[0] = Attribute::Class(ObjectClass::DATA);
            assert_eq!(rv(s.create_object(&data_object)), RvError::AttributeValueInvalid);
            let mut session_cert = template(vec![0x01], der.clone());
            session_cert[2] = Attribute::Token(false);
            assert_eq!(rv(s.create_object(&session_cert)), RvError::TemplateInconsistent);
            let mut odd = template(vec![0x01], der.clone());
            odd.push(Attribute::VendorDefined((
                AttributeType::VendorDefined(0x8000_5C5C),
                vec![1],
            )));
            assert_eq!(rv(s.create_object(&odd)), RvError::AttributeTypeInvalid);

            let back = s.create_object(&template(vec![0x01], der.clone())).unwrap();
            assert_eq!(
                s.get_attributes(back, &[AttributeType::Value]).unwrap(),
                vec![Attribute::Value(der.clone())]
            );
            assert_eq!(find_one(&ro, ObjectClass::CERTIFICATE, 0x01), back);

            // Destroying a key's private (or public) object deletes the key pair and certificate.
            let priv_k = find_one(&s, ObjectClass::PRIVATE_KEY, 0x01);
            s.destroy_object(priv_k).unwrap();
            assert!(s.find_objects(&[Attribute::Id(vec![0x01])]).unwrap().is_empty());
            assert_eq!(
                rv(s.get_attributes(back, &[AttributeType::Value])),
                RvError::ObjectHandleInvalid
            );
        },
    );
}

#[test]
fn bad_handles_and_templates() {
    isolated(
        "bad_handles_and_templates",
        |d| format!("sim:piv:{}", d.join("piv.json").display()),
        |_| {
            let p = context();
            let slot = only_slot(&p);
            let missing = Slot::try_from(77u64).unwrap();
            assert_eq!(rv(p.get_slot_info(missing)), RvError::SlotIdInvalid);
            assert_eq!(rv(p.get_token_info(missing)), RvError::SlotIdInvalid);
            assert_eq!(rv(p.open_ro_session(missing)), RvError::SlotIdInvalid);
            assert_eq!(rv(p.get_mechanism_list(missing)), RvError::SlotIdInvalid);
            assert!(p.get_slot_event().unwrap().is_none(), "nothing happened to the readers");

            let s = p.open_rw_session(slot).unwrap();
            s.login(UserType::So, Some(&pin(PIV_SO))).unwrap();
            // Key pair templates the card cannot honour, refused before anything is sent.
            let ec_pub =
                |params: &[u8]| vec![Attribute::EcParams(params.to_vec()), Attribute::Id(vec![1])];
            let priv_t = [Attribute::Id(vec![1])];
            assert_eq!(
                rv(s.generate_key_pair(
                    &Mechanism::EccKeyPairGen,
                    &ec_pub(&[0x06, 0x03, 1, 2, 3]),
                    &priv_t
                )),
                RvError::CurveNotSupported
            );
            assert_eq!(
                rv(s.generate_key_pair(
                    &Mechanism::EccKeyPairGen,
                    &[Attribute::Id(vec![1])],
                    &priv_t
                )),
                RvError::TemplateIncomplete
            );
            assert_eq!(
                rv(s.generate_key_pair(
                    &Mechanism::EccKeyPairGen,
                    &ec_pub(&P256),
                    &[Attribute::Extractable(true)]
                )),
                RvError::TemplateInconsistent
            );
            assert_eq!(
                rv(s.generate_key_pair(
                    &Mechanism::EccKeyPairGen,
                    &ec_pub(&P256),
                    &[Attribute::Sensitive(false)]
                )),
                RvError::TemplateInconsistent
            );
            assert_eq!(
                rv(s.generate_key_pair(
                    &Mechanism::EccKeyPairGen,
                    &ec_pub(&P256),
                    &[Attribute::Token(false)]
                )),
                RvError::TemplateInconsistent
            );
            assert_eq!(
                rv(s.generate_key_pair(
                    &Mechanism::EccKeyPairGen,
                    &ec_pub(&P256),
                    &[Attribute::KeyType(KeyType::RSA)]
                )),
                RvError::TemplateInconsistent
            );
            assert_eq!(
                rv(s.generate_key_pair(
                    &Mechanism::EccKeyPairGen,
                    &ec_pub(&P256),
                    &[Attribute::Value(vec![1])]
                )),
                RvError::AttributeTypeInvalid
            );
            let rsa_pub = |bits: u64, e: Vec<u8>| {
                vec![Attribute::ModulusBits(bits.into()), Attribute::PublicExponent(e)]
            };
            assert_eq!(
                rv(s.generate_key_pair(
                    &Mechanism::RsaPkcsKeyPairGen,
                    &rsa_pub(1000, vec![1, 0, 1]),
                    &[]
                )),
                RvError::KeySizeRange
            );
            assert_eq!(
                rv(s.generate_key_pair(
                    &Mechanism::RsaPkcsKeyPairGen,
                    &rsa_pub(2048, vec![3]),
                    &[]
                )),
                RvError::TemplateInconsistent
            );
            assert_eq!(
                rv(s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &[], &[])),
                RvError::TemplateIncomplete
            );
            assert_eq!(
                rv(s.generate_key_pair(&Mechanism::AesKeyGen, &[], &[])),
                RvError::MechanismInvalid
            );
            assert!(s.find_objects(&[]).unwrap().is_empty(), "nothing was generated");

            let (public, _) = generate_ec(&s, Some(0x01), &P256);
            s.logout().unwrap();
            s.login(UserType::User, Some(&pin(PIN))).unwrap();
            let private = find_one(&s, ObjectClass::PRIVATE_KEY, 0x01);

            // Search templates: an attribute an object does not have is no match, not an error.
            assert!(s.find_objects(&[Attribute::Modulus(vec![1, 2, 3])]).unwrap().is_empty());
            assert!(
                s.find_objects(&[Attribute::VendorDefined((
                    AttributeType::VendorDefined(0x8000_5C5C),
                    vec![1]
                ))])
                .unwrap()
                .is_empty()
            );
            assert!(
                s.find_objects(&[Attribute::Value(vec![0; 32])]).unwrap().is_empty(),
                "a sensitive value matches nothing"
            );
            assert_eq!(s.find_objects(&[Attribute::Id(vec![0x01])]).unwrap().len(), 2);
            assert_eq!(
                s.find_objects(&[
                    Attribute::Class(ObjectClass::PRIVATE_KEY),
                    Attribute::Sign(true),
                    Attribute::KeyType(KeyType::EC)
                ])
                .unwrap(),
                vec![private]
            );
            assert!(
                s.find_objects(&[
                    Attribute::Class(ObjectClass::PRIVATE_KEY),
                    Attribute::Decrypt(true)
                ])
                .unwrap()
                .is_empty()
            );

            // Attributes: invalid types and sensitive values are told apart.
            let info = s
                .get_attribute_info(
                    public,
                    &[AttributeType::EcPoint, AttributeType::Modulus, AttributeType::Value],
                )
                .unwrap();
            assert!(matches!(info[0], AttributeInfo::Available(67)), "{info:?}");
            assert!(
                matches!(info[1], AttributeInfo::TypeInvalid)
                    && matches!(info[2], AttributeInfo::TypeInvalid),
                "{info:?}"
            );

            // Handles of the wrong kind or that never were.
            assert_eq!(
                rv(s.sign(&Mechanism::Ecdsa, public, &[1; 32])),
                RvError::KeyFunctionNotPermitted
            );
            assert_eq!(
                rv(s.decrypt(&Mechanism::RsaPkcs, private, &[1; 32])),
                RvError::KeyTypeInconsistent
            );
            assert_eq!(
                rv(s.sign(&Mechanism::Sha224RsaPkcs, private, &[1; 32])),
                RvError::MechanismInvalid
            );
            assert_eq!(rv(s.sign(&Mechanism::Ecdsa, private, &[])), RvError::DataLenRange);
            // An operation that failed is over: a new one can start.
            let sig = s.sign(&Mechanism::Ecdsa, private, &[7; 32]).unwrap();
            verify_p256(&ec_point(&s, public), &[7; 32], &sig);
            // Stale handles: a session key destroyed, a private key after logout.
            let mut rng = rand_core::OsRng;
            let peer = p256::SecretKey::random(&mut rng);
            let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                &peer.public_key(),
                false,
            );
            assert_eq!(
                rv(s.derive_key(
                    &Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(
                        EcKdf::null(),
                        point.as_bytes()
                    )),
                    private,
                    &[]
                )),
                RvError::KeyFunctionNotPermitted,
                "9A is an ECDSA key"
            );
            s.logout().unwrap();
            assert_eq!(rv(s.sign(&Mechanism::Ecdsa, private, &[1; 32])), RvError::KeyHandleInvalid);
            assert_eq!(
                rv(s.get_attributes(private, &[AttributeType::Class])),
                RvError::ObjectHandleInvalid
            );
            assert_eq!(rv(s.destroy_object(private)), RvError::ObjectHandleInvalid);
            // Unsupported functions say so.
            assert_eq!(rv(s.generate_random_vec(16)), RvError::RandomNoRng);
            assert_eq!(rv(s.digest(&Mechanism::Sha256, b"x")), RvError::FunctionNotSupported);
            // The module's log names no PIN.
            let log = std::fs::read_to_string(
                Path::new(&std::env::var(DIR_ENV).unwrap()).join("module.log"),
            )
            .unwrap();
            assert!(log.contains("C_Initialize"), "the module logs to SCARD_LOG");
            assert!(!log.contains(PIN) && !log.contains(PIV_SO), "a secret in the log");
        },
    );
}

#[test]
fn pins_change_block_and_unblock() {
    isolated(
        "pins_change_block_and_unblock",
        |d| format!("sim:piv:{}", d.join("piv.json").display()),
        |_| {
            let p = context();
            let slot = only_slot(&p);
            let s = p.open_rw_session(slot).unwrap();
            let ro = p.open_ro_session(slot).unwrap();
            assert_eq!(rv(ro.set_pin(&pin(PIN), &pin("7654321"))), RvError::SessionReadOnly);
            drop(ro);
            // Not logged in: C_SetPIN changes the user PIN.
            s.set_pin(&pin(PIN), &pin("7654321")).unwrap();
            s.login(UserType::User, Some(&pin("7654321"))).unwrap();
            s.set_pin(&pin("7654321"), &pin(PIN)).unwrap();
            s.logout().unwrap();
            // Three wrong PINs block it; the token info follows the count.
            assert_eq!(rv(s.login(UserType::User, Some(&pin("000000")))), RvError::PinIncorrect);
            assert_eq!(rv(s.login(UserType::User, Some(&pin("000000")))), RvError::PinIncorrect);
            assert!(p.get_token_info(slot).unwrap().user_pin_final_try());
            assert_eq!(rv(s.login(UserType::User, Some(&pin("000000")))), RvError::PinLocked);
            assert!(p.get_token_info(slot).unwrap().user_pin_locked());
            assert_eq!(rv(s.login(UserType::User, Some(&pin(PIN)))), RvError::PinLocked);
            // The PIV SO (the management key) cannot reset the PIN: only the PUK can.
            s.login(UserType::So, Some(&pin(PIV_SO))).unwrap();
            assert_eq!(rv(s.init_pin(&pin(PIN))), RvError::FunctionNotSupported);
            s.logout().unwrap();
            // While the PIN is blocked, C_SetPIN in a public session takes the PUK.
            assert_eq!(rv(s.set_pin(&pin("87654321"), &pin("112233"))), RvError::PinIncorrect);
            s.set_pin(&pin(PIV_PUK), &pin("112233")).unwrap();
            assert!(!p.get_token_info(slot).unwrap().user_pin_locked());
            s.login(UserType::User, Some(&pin("112233"))).unwrap();
            assert_eq!(rv(s.init_pin(&pin(PIN))), RvError::UserNotLoggedIn);
        },
    );
}

#[test]
fn eight_threads_sign_at_once() {
    isolated(
        "eight_threads_sign_at_once",
        |d| {
            format!(
                "sim:piv:{},sim:gids:{}",
                d.join("piv.json").display(),
                d.join("gids.json").display()
            )
        },
        |_| {
            let p = context();
            let slots = p.get_slots_with_token().unwrap();
            assert_eq!(slots.len(), 2);
            let (piv, gids) = (slots[0], slots[1]);
            let admin = p.open_rw_session(piv).unwrap();
            admin.login(UserType::So, Some(&pin(PIV_SO))).unwrap();
            let (piv_pub, _) = generate_ec(&admin, Some(0x01), &P256);
            admin.logout().unwrap();
            // One login per token serves every session of the application.
            admin.login(UserType::User, Some(&pin(PIN))).unwrap();
            let g = p.open_ro_session(gids).unwrap();
            g.login(UserType::User, Some(&pin(PIN))).unwrap();
            let point = ec_point(&admin, piv_pub);
            let gids_key = rsa_public(&g, find_one(&g, ObjectClass::PUBLIC_KEY, 0x01));
            let p = Arc::new(p);
            // A thread blocked waiting for reader events must not hold the others up (it
            // waits for good: the simulated cards never leave; the process ends it).
            let waiter = {
                let p = Arc::clone(&p);
                std::thread::spawn(move || p.wait_for_slot_event())
            };
            let threads: Vec<_> = (0..8u8)
                .map(|t| {
                    let p = Arc::clone(&p);
                    let (point, gids_key) = (point.clone(), gids_key.clone());
                    std::thread::spawn(move || {
                        let slot = if t % 2 == 0 { piv } else { gids };
                        let s = p.open_ro_session(slot).unwrap();
                        assert_eq!(
                            s.get_session_info().unwrap().session_state(),
                            SessionState::RoUser
                        );
                        let key = find_one(&s, ObjectClass::PRIVATE_KEY, 0x01);
                        for round in 0..6u8 {
                            let message = [t, round, 0x5A];
                            let digest = sha2::Sha256::digest(message);
                            if slot == piv {
                                let sig = s.sign(&Mechanism::EcdsaSha256, key, &message).unwrap();
                                verify_p256(&point, &digest, &sig);
                            } else {
                                let sig = s.sign(&Mechanism::Sha256RsaPkcs, key, &message).unwrap();
                                gids_key
                                    .verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, &sig)
                                    .unwrap();
                            }
                        }
                        6usize
                    })
                })
                .collect();
            let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
            assert_eq!(total, 48, "every signature verified");
            assert!(!waiter.is_finished(), "no reader event happened");
        },
    );
}
