//! Keys across three simulated cards (PIV, OpenPGP, GIDS): enumeration, generation into the
//! first free container, signatures, decryption and ECDH verified on the host with RustCrypto,
//! certificate import, lookup by container name, deletion.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;
use rand_core::OsRng;
use scard_ksp::{ErrorKind, KspError, OpFlags, ProviderConfig};
use scard_minidriver::{
    CachePolicy, Curve, DecryptPadding, HashAlg, KeyAlgorithm, KeySpec, PinId, PublicKey,
    SignPadding, SignRequest,
};
use scard_sim::Family;
use sha2::Digest;

fn ecdsa(hash: HashAlg, digest: &[u8]) -> SignRequest<'_> {
    SignRequest { hash: Some(hash), padding: SignPadding::None, data: digest }
}

fn peer_of(curve: Curve) -> (Vec<u8>, PublicKey) {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    match curve {
        Curve::P256 => {
            let secret = p256::SecretKey::random(&mut OsRng);
            let point = secret.public_key().to_encoded_point(false).as_bytes().to_vec();
            (secret.to_bytes().to_vec(), PublicKey::Ec { curve, point })
        }
        Curve::P384 => {
            let secret = p384::SecretKey::random(&mut OsRng);
            let point = secret.public_key().to_encoded_point(false).as_bytes().to_vec();
            (secret.to_bytes().to_vec(), PublicKey::Ec { curve, point })
        }
        other => panic!("{other:?}"),
    }
}

/// The host's side of ECDH with the card's key.
fn host_shared(curve: Curve, host_secret: &[u8], card: &PublicKey) -> Vec<u8> {
    let PublicKey::Ec { point, .. } = card else { panic!() };
    match curve {
        Curve::P256 => {
            let s = p256::SecretKey::from_slice(host_secret).unwrap();
            let p = p256::PublicKey::from_sec1_bytes(point).unwrap();
            p256::ecdh::diffie_hellman(s.to_nonzero_scalar(), p.as_affine())
                .raw_secret_bytes()
                .to_vec()
        }
        Curve::P384 => {
            let s = p384::SecretKey::from_slice(host_secret).unwrap();
            let p = p384::PublicKey::from_sec1_bytes(point).unwrap();
            p384::ecdh::diffie_hellman(s.to_nonzero_scalar(), p.as_affine())
                .raw_secret_bytes()
                .to_vec()
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn three_cards_keys_operations_verified_on_the_host() {
    let rig = Rig::new(&[Family::Piv, Family::OpenPgp, Family::Gids]);
    let mut p = rig.provider();

    // Readers in listing order, each with its card.
    let readers = p.readers();
    let names: Vec<&str> = readers.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, [PIV, OPENPGP, GIDS]);
    let families: Vec<String> =
        readers.iter().map(|r| r.card.as_ref().unwrap().family.clone()).collect();
    assert_eq!(families, ["piv", "openpgp", "gids"]);
    assert!(readers.iter().all(|r| r.card_present && r.problem.is_none()));

    // A fresh GIDS card comes personalised: one RSA 2048 key with a certificate.
    let keys = p.keys().unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let gids0 = keys[0].clone();
    assert_eq!((gids0.reader.as_str(), gids0.container_index), (GIDS, 0));
    assert_eq!(gids0.algorithm, KeyAlgorithm::Rsa(2048));
    assert!(gids0.certificate.is_some());
    assert!(gids0.name.starts_with("\\\\.\\sim:gids\\"));
    assert_eq!(gids0.cache_policy, CachePolicy::Normal);

    // ----- PIV: generate into the first free containers (9A, then 9C), 9D and retired 82.
    let k9a = p.generate_key(PIV, None, KeyAlgorithm::Ec(Curve::P256), OpFlags::default()).unwrap();
    assert_eq!((k9a.container_index, k9a.key_spec), (0, KeySpec::Ecdsa(Curve::P256)));
    let k9c = p.generate_key(PIV, None, KeyAlgorithm::Ec(Curve::P384), OpFlags::default()).unwrap();
    assert_eq!(k9c.container_index, 1);
    assert!(k9c.always_authenticate);
    assert_eq!(k9c.cache_policy, CachePolicy::AlwaysPrompt);
    let k9d = p.generate_key(PIV, Some(2), KeyAlgorithm::Rsa(2048), OpFlags::default()).unwrap();
    assert_eq!(k9d.key_spec, KeySpec::Exchange);
    let k82 =
        p.generate_key(PIV, Some(4), KeyAlgorithm::Ec(Curve::P256), OpFlags::default()).unwrap();
    assert_eq!(k82.key_spec, KeySpec::Ecdh(Curve::P256));
    // The management key was asked for once (its login lasts while the card holds it).
    let admin_asks =
        rig.answers.log.lock().unwrap().iter().filter(|r| r.pin == PinId::ADMIN).count();
    assert_eq!(admin_asks, 1);

    let data = b"signed by a key that never leaves the card";
    let d256 = sha2::Sha256::digest(data);
    let d384 = sha2::Sha384::digest(data);
    let sig = p.sign(&k9a.name, &ecdsa(HashAlg::Sha256, &d256), OpFlags::default()).unwrap();
    assert_eq!(sig.len(), 64);
    verify_ecdsa(k9a.public_key.as_ref().unwrap(), &d256, &sig);
    let sig = p.sign(&k9c.name, &ecdsa(HashAlg::Sha384, &d384), OpFlags::default()).unwrap();
    verify_ecdsa(k9c.public_key.as_ref().unwrap(), &d384, &sig);

    let rsa = rsa_key(k9d.public_key.as_ref().unwrap());
    let pkcs1 =
        SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::Pkcs1, data: &d256 };
    let sig = p.sign(&k9d.name, &pkcs1, OpFlags::default()).unwrap();
    rsa.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &d256, &sig).unwrap();
    let pss = SignRequest {
        hash: Some(HashAlg::Sha256),
        padding: SignPadding::Pss { salt_len: 32 },
        data: &d256,
    };
    assert_eq!(p.check_sign(&k9d.name, &pss).unwrap(), 256);
    let sig = p.sign(&k9d.name, &pss, OpFlags::default()).unwrap();
    rsa.verify(rsa::Pss::new::<sha2::Sha256>(), &d256, &sig).unwrap();
    let ct = rsa.encrypt(&mut OsRng, rsa::Pkcs1v15Encrypt, b"session key 1").unwrap();
    let plain = p.decrypt(&k9d.name, &DecryptPadding::Pkcs1, &ct, OpFlags::default()).unwrap();
    assert_eq!(plain.expose(), b"session key 1");
    let oaep = DecryptPadding::Oaep { hash: HashAlg::Sha256, label: Vec::new() };
    let ct = rsa.encrypt(&mut OsRng, rsa::Oaep::new::<sha2::Sha256>(), b"session key 2").unwrap();
    assert_eq!(
        p.decrypt(&k9d.name, &oaep, &ct, OpFlags::default()).unwrap().expose(),
        b"session key 2"
    );
    let (host, peer) = peer_of(Curve::P256);
    assert_eq!(p.check_agree(&k82.name, &peer).unwrap(), 32);
    let shared = p.agree(&k82.name, &peer, OpFlags::default()).unwrap();
    assert_eq!(shared.expose(), host_shared(Curve::P256, &host, k82.public_key.as_ref().unwrap()));

    // ----- OpenPGP: signature key (P-256), decryption key (P-384 ECDH), authentication (RSA).
    let sig_key =
        p.generate_key(OPENPGP, None, KeyAlgorithm::Ec(Curve::P256), OpFlags::default()).unwrap();
    assert_eq!(sig_key.container_index, 0);
    let dec_key = p
        .generate_key(OPENPGP, Some(1), KeyAlgorithm::Ec(Curve::P384), OpFlags::default())
        .unwrap();
    assert_eq!(dec_key.key_spec, KeySpec::Ecdh(Curve::P384));
    let aut_key =
        p.generate_key(OPENPGP, None, KeyAlgorithm::Rsa(2048), OpFlags::default()).unwrap();
    assert_eq!(aut_key.container_index, 2, "the first free container after 0 and 1");
    let sig = p.sign(&sig_key.name, &ecdsa(HashAlg::Sha256, &d256), OpFlags::default()).unwrap();
    verify_ecdsa(sig_key.public_key.as_ref().unwrap(), &d256, &sig);
    let (host, peer) = peer_of(Curve::P384);
    let shared = p.agree(&dec_key.name, &peer, OpFlags::default()).unwrap();
    assert_eq!(
        shared.expose(),
        host_shared(Curve::P384, &host, dec_key.public_key.as_ref().unwrap())
    );
    let sig = p.sign(&aut_key.name, &pkcs1, OpFlags::default()).unwrap();
    rsa_key(aut_key.public_key.as_ref().unwrap())
        .verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &d256, &sig)
        .unwrap();

    // ----- GIDS: the personalised key signs and decrypts; a P-256 key goes to container 1.
    let gids_rsa = rsa_key(gids0.public_key.as_ref().unwrap());
    let sig = p.sign(&gids0.name, &pkcs1, OpFlags::default()).unwrap();
    gids_rsa.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &d256, &sig).unwrap();
    let ct = gids_rsa.encrypt(&mut OsRng, rsa::Pkcs1v15Encrypt, b"gids secret").unwrap();
    assert_eq!(
        p.decrypt(&gids0.name, &DecryptPadding::Pkcs1, &ct, OpFlags::default()).unwrap().expose(),
        b"gids secret"
    );
    let gids1 =
        p.generate_key(GIDS, None, KeyAlgorithm::Ec(Curve::P256), OpFlags::default()).unwrap();
    assert_eq!(gids1.container_index, 1);
    let sig = p.sign(&gids1.name, &ecdsa(HashAlg::Sha256, &d256), OpFlags::default()).unwrap();
    verify_ecdsa(gids1.public_key.as_ref().unwrap(), &d256, &sig);

    // Every key of every card, in reader order then container order.
    let all: Vec<(String, u8)> =
        p.keys().unwrap().iter().map(|k| (k.reader.clone(), k.container_index)).collect();
    let expected: Vec<(String, u8)> = [
        (PIV, 0),
        (PIV, 1),
        (PIV, 2),
        (PIV, 4),
        (OPENPGP, 0),
        (OPENPGP, 1),
        (OPENPGP, 2),
        (GIDS, 0),
        (GIDS, 1),
    ]
    .iter()
    .map(|(r, i)| ((*r).to_owned(), *i))
    .collect();
    assert_eq!(all, expected);
}

#[test]
fn certificates_names_and_deletion() {
    let rig = Rig::new(&[Family::Piv, Family::Gids]);
    let mut p = rig.provider();
    let key = p.generate_key(PIV, None, KeyAlgorithm::Ec(Curve::P256), OpFlags::default()).unwrap();
    assert!(key.certificate.is_none());
    let public = key.public_key.clone().unwrap();

    // A certificate of another key is refused before any PIN.
    let calls = rig.answers.calls();
    let other = p.keys_on(GIDS).unwrap().remove(0);
    let wrong = certificate_for(other.public_key.as_ref().unwrap(), "someone else");
    let err = p.import_certificate(&key.name, &wrong, OpFlags::default()).unwrap_err();
    assert!(matches!(err, KspError::InvalidInput { what: "certificate", .. }), "{err}");
    assert_eq!(rig.answers.calls(), calls);
    let err =
        p.import_certificate(&key.name, b"not a certificate", OpFlags::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ArgumentsBad);

    // The right one is written (the management key is still logged in: nothing asked).
    let cert = certificate_for(&public, "PIV authentication");
    let with_cert = p.import_certificate(&key.name, &cert, OpFlags::default()).unwrap();
    assert_eq!(with_cert.certificate.as_deref(), Some(cert.as_slice()));
    assert_eq!(rig.answers.calls(), calls);

    // By container name alone, and through the default-container form.
    let by_container = p.open_key(&key.container_name).unwrap();
    assert_eq!(by_container.name, key.name);
    assert_eq!(by_container.certificate.as_deref(), Some(cert.as_slice()));
    let default = p.open_key(&format!("\\\\.\\{PIV}\\")).unwrap();
    assert_eq!(default.container_index, 0);
    assert!(matches!(p.open_key("{no-such-container}"), Err(KspError::KeyNotFound { .. })));
    assert!(matches!(p.open_key("\\\\.\\sim:nowhere\\x"), Err(KspError::UnknownReader { .. })));

    // Another application sees the certificate (it is on the card).
    let mut other_app = rig.other_module(PIV);
    assert_eq!(other_app.certificate(0).unwrap().as_deref(), Some(cert.as_slice()));
    drop(other_app);

    // Deleted: gone from the list, and by name.
    p.delete_key(&key.name, OpFlags::default()).unwrap();
    assert!(p.keys_on(PIV).unwrap().is_empty());
    let err = p.open_key(&key.name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyNotFound);
    let digest = [1u8; 32];
    let err = p.sign(&key.name, &ecdsa(HashAlg::Sha256, &digest), OpFlags::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyNotFound);
}

#[test]
fn sim_readers_from_the_configuration_keep_their_state() {
    let dir = TempDir::new("state");
    let reader = format!("sim:openpgp:{}", dir.0.join("card.json").display());
    let config = ProviderConfig { readers: vec![reader.clone()], ..ProviderConfig::default() };
    let answers = Answers::defaults();
    let public = {
        let mut p = scard_ksp::Provider::new(
            config.clone(),
            scard_ksp::default_profiles(),
            answers.source(),
        )
        .unwrap();
        let readers = p.readers();
        assert_eq!(readers.len(), 1);
        assert_eq!(readers[0].name, reader);
        assert_eq!(readers[0].card.as_ref().unwrap().family, "openpgp");
        let key = p
            .generate_key(&reader, Some(2), KeyAlgorithm::Ec(Curve::P256), OpFlags::default())
            .unwrap();
        key.public_key.unwrap()
    };
    // A new provider (another process) on the same state file sees the key.
    let mut p =
        scard_ksp::Provider::new(config, scard_ksp::default_profiles(), answers.source()).unwrap();
    let keys = p.keys().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].public_key.as_ref(), Some(&public));
    let digest = sha2::Sha256::digest(b"persisted");
    let sig = p.sign(&keys[0].name, &ecdsa(HashAlg::Sha256, &digest), OpFlags::default()).unwrap();
    verify_ecdsa(&public, &digest, &sig);
}

/// A PIV key generated by one provider is unknown to the next (the card cannot tell its
/// public key); a certificate written by container index (what the PKCS#11 module's
/// `C_CreateObject` does) makes it known. Deleting the certificate alone keeps the key.
#[test]
fn certificates_by_container_index_and_alone() {
    let rig = Rig::new(&[Family::Piv]);
    let mut first = rig.provider();
    let key = first
        .generate_key(PIV, Some(2), KeyAlgorithm::Ec(Curve::P256), OpFlags::default())
        .unwrap();
    let public = key.public_key.clone().unwrap();
    drop(first);

    let mut next = rig.provider();
    assert!(next.keys_on(PIV).unwrap().is_empty(), "the key is not known without its certificate");
    // Out of the card's containers: refused.
    let cert = certificate_for(&public, "key management");
    let err = next.import_certificate_at(PIV, 200, &cert, OpFlags::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyNotFound);
    assert_eq!(
        next.import_certificate_at(PIV, 2, b"junk", OpFlags::default()).unwrap_err().kind(),
        ErrorKind::ArgumentsBad
    );
    next.import_certificate_at(PIV, 2, &cert, OpFlags::default()).unwrap();
    let keys = next.keys_on(PIV).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].container_index, 2);
    assert_eq!(keys[0].public_key.as_ref(), Some(&public));

    // With the key known, another key's certificate is refused before any PIN.
    let other = certificate_for(&sim_other_key(), "someone else");
    let calls = rig.answers.calls();
    let err = next.import_certificate_at(PIV, 2, &other, OpFlags::default()).unwrap_err();
    assert!(matches!(err, KspError::InvalidInput { what: "certificate", .. }), "{err}");
    assert_eq!(rig.answers.calls(), calls);

    // The certificate alone goes: a new provider no longer knows the key.
    next.delete_certificate(&keys[0].name, OpFlags::default()).unwrap();
    let mut again = rig.provider();
    assert!(again.keys_on(PIV).unwrap().is_empty(), "no certificate: unknown to a new provider");
}

/// A P-256 public key that no card holds.
fn sim_other_key() -> PublicKey {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let secret = p256::SecretKey::random(&mut rand_core::OsRng);
    PublicKey::Ec {
        curve: Curve::P256,
        point: secret.public_key().to_encoded_point(false).as_bytes().to_vec(),
    }
}

#[test]
fn usage_follows_what_the_card_signs_with() {
    // OpenPGP's decryption key is an RSA key exchange key, whose key spec may sign, but the
    // card signs (PSO:CDS) with the signature key only, and INTERNAL AUTHENTICATE with the
    // authentication key: the listing says so, without a PIN.
    let rig = Rig::new(&[Family::OpenPgp]);
    let mut p = rig.provider();
    for index in 0..3 {
        p.generate_key(OPENPGP, Some(index), KeyAlgorithm::Rsa(2048), OpFlags::default()).unwrap();
    }
    let mut next = rig.provider();
    let keys = next.keys_on(OPENPGP).unwrap();
    let usage: Vec<(u8, KeySpec, bool, bool)> = keys
        .iter()
        .map(|k| (k.container_index, k.key_spec, k.usage.sign, k.usage.decrypt))
        .collect();
    assert_eq!(
        usage,
        [
            (0, KeySpec::Signature, true, false),
            (1, KeySpec::Exchange, false, true),
            (2, KeySpec::Signature, true, false),
        ]
    );
    // What the listing says is what the card does.
    let digest = sha2::Sha256::digest(b"usage").to_vec();
    let pkcs1 =
        SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::Pkcs1, data: &digest };
    let err = next.sign(&keys[1].name, &pkcs1, OpFlags::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MechanismInvalid, "{err}");
    next.sign(&keys[0].name, &pkcs1, OpFlags::default()).unwrap();
}
