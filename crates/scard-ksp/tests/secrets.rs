//! No secret in an error message or a Debug print (issue 9, DESIGN.md "Secrets are typed,
//! zeroized, redacted"): wrong PINs, PUKs and admin keys, PINs refused for their format, PIN
//! changes, cached PINs inside the provider, decrypted data and shared secrets. (The trace log
//! is checked by scard-cli's `no_secrets` test; the APDU types by scard-iso7816's `secrets`.)
//! And the PIN cache forgets on removal, reset, expiry and drop.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use common::*;
use scard_ksp::{KspError, OpFlags, PinCacheConfig, ProviderConfig};
use scard_minidriver::{
    CachePolicy, CardError, Curve, DecryptPadding, HashAlg, KeyAlgorithm, Pin, PinId, Secret,
    SignPadding, SignRequest,
};
use scard_sim::Family;

/// Values that cannot appear by chance.
const WRONG_PIN: &str = "918273";
const LONG_PIN: &str = "9182736450918273";
const NEW_PIN: &str = "564738";
const WRONG_PUK: &str = "87651234";
const WRONG_MGMT: &str = "A1B2C3D4E5F60718A1B2C3D4E5F60718A1B2C3D4E5F60718";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Every form a secret could take in text: as given, its bytes in hex (upper and lower).
fn forms(secret: &str) -> Vec<String> {
    let hex = hex(secret.as_bytes());
    vec![secret.to_owned(), hex.to_ascii_lowercase(), hex]
}

fn assert_clean(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        for form in forms(secret) {
            assert!(!text.contains(&form), "{what} shows {secret:?} ({form}): {text}");
        }
    }
}

fn assert_error_clean(what: &str, err: &dyn std::fmt::Debug, display: &str, secrets: &[&str]) {
    assert_clean(what, display, secrets);
    assert_clean(what, &format!("{err:?}"), secrets);
    assert_clean(what, &format!("{err:#?}"), secrets);
}

#[test]
fn pins_and_secrets_print_redacted() {
    let pin = Pin::new(WRONG_PIN);
    assert_eq!(format!("{pin:?}"), "Pin(REDACTED)");
    assert_eq!(format!("{:?}", pin.clone()), "Pin(REDACTED)");
    let secret = Secret::new(WRONG_PIN.as_bytes().to_vec());
    assert_eq!(format!("{secret:?}"), "Secret(REDACTED, 6 bytes)");
    assert_clean("OpFlags", &format!("{:?}", OpFlags::with_pin(Pin::new(WRONG_PIN))), &[WRONG_PIN]);
    // The PIN errors carry no value at all: the PIN id and the tries left.
    for err in [
        CardError::WrongPin { pin: PinId::USER, tries_left: Some(2) },
        CardError::PinBlocked { pin: PinId::USER },
        CardError::AuthRequired { operation: "sign", pin: PinId::USER },
    ] {
        assert_error_clean("CardError", &err, &err.to_string(), &[WRONG_PIN]);
    }
}

#[test]
fn refused_pins_are_never_in_the_error() {
    let rig = Rig::new(&[Family::Piv, Family::OpenPgp, Family::Gids]);
    let mut p = rig.provider();
    for family in Family::ALL {
        let reader = format!("sim:{}", family.name());
        // A wrong PIN: one try spent, the error says so, and nothing of the value.
        let err = p.login(&reader, PinId::USER, Some(Pin::new(WRONG_PIN))).unwrap_err();
        assert!(err.is_pin_failure(), "{family}: {err}");
        assert_error_clean(&format!("{family} wrong PIN"), &err, &err.to_string(), &[WRONG_PIN]);
        p.login(&reader, PinId::USER, Some(Pin::new(PIN))).unwrap();
        // Too long for the card: refused (before it is sent, where the card's rules say so).
        let err = p.login(&reader, PinId::USER, Some(Pin::new(LONG_PIN))).unwrap_err();
        assert_error_clean(&format!("{family} long PIN"), &err, &err.to_string(), &[LONG_PIN]);
        p.login(&reader, PinId::USER, Some(Pin::new(PIN))).unwrap();
        // A PIN change with a wrong old PIN.
        let err = p
            .change_pin(&reader, PinId::USER, Some(Pin::new(WRONG_PIN)), Some(Pin::new(NEW_PIN)))
            .unwrap_err();
        assert_error_clean(
            &format!("{family} change"),
            &err,
            &err.to_string(),
            &[WRONG_PIN, NEW_PIN],
        );
        // The right PIN gives the tries back.
        p.login(&reader, PinId::USER, Some(Pin::new(PIN))).unwrap();
    }
    // PIV: a wrong PUK and a wrong management key.
    let err = p
        .unblock_pin(PIV, PinId::USER, Some(Pin::new(WRONG_PUK)), Some(Pin::new(NEW_PIN)))
        .unwrap_err();
    assert_error_clean("PIV unblock", &err, &err.to_string(), &[WRONG_PUK, NEW_PIN]);
    let err = p.login(PIV, PinId::ADMIN, Some(Pin::new(WRONG_MGMT))).unwrap_err();
    assert_error_clean("PIV admin", &err, &err.to_string(), &[WRONG_MGMT]);
    // Nothing cached shows in the provider's Debug, with every PIN logged in.
    p.login(PIV, PinId::ADMIN, None).unwrap();
    let debug = format!("{p:?} {p:#?}");
    assert_clean("Provider", &debug, &[PIN, PIV_MGMT]);
}

#[test]
fn decrypted_data_and_shared_secrets_print_redacted() {
    let rig = Rig::new(&[Family::Gids, Family::OpenPgp]);
    let mut p = rig.provider();
    // GIDS: its preloaded RSA 2048 key decrypts.
    let key = p.keys_on(GIDS).unwrap().into_iter().find(|k| k.usage.decrypt).unwrap();
    let public = rsa_key(key.public_key.as_ref().unwrap());
    let plaintext = b"\x5E\xC2\xE7 decrypted on the card";
    let ct = public.encrypt(&mut rand_core::OsRng, rsa::Pkcs1v15Encrypt, plaintext).unwrap();
    let plain = p.decrypt(&key.name, &DecryptPadding::Pkcs1, &ct, OpFlags::default()).unwrap();
    assert_eq!(plain.expose(), plaintext);
    let debug = format!("{plain:?}");
    assert!(!debug.contains("decrypted") && !debug.contains(&hex(plaintext)), "{debug}");
    // OpenPGP: ECDH on the decryption key.
    let key = p
        .generate_key(OPENPGP, Some(1), KeyAlgorithm::Ec(Curve::P256), OpFlags::default())
        .unwrap();
    let peer = p256::SecretKey::random(&mut rand_core::OsRng);
    let peer_public = {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        scard_minidriver::PublicKey::Ec {
            curve: Curve::P256,
            point: peer.public_key().to_encoded_point(false).as_bytes().to_vec(),
        }
    };
    let shared = p.agree(&key.name, &peer_public, OpFlags::default()).unwrap();
    let debug = format!("{shared:?}");
    assert!(!debug.contains(&hex(shared.expose())), "{debug}");
    assert_eq!(debug, format!("Secret(REDACTED, {} bytes)", shared.expose().len()));
}

/// The cache drops values on removal (pins.rs has the reader's events), on a reset the
/// policy does not cover, on expiry, and with the provider.
#[test]
fn the_pin_cache_forgets() {
    let rig = Rig::new(&[Family::Piv]);
    let config = ProviderConfig {
        pin_cache: PinCacheConfig { policy: Some(CachePolicy::Timed(30)), max_age: None },
        ..Rig::config()
    };
    let mut p = rig.provider_with(config);
    let key =
        p.generate_key(PIV, Some(0), KeyAlgorithm::Ec(Curve::P256), OpFlags::default()).unwrap();
    let cert = certificate_for(key.public_key.as_ref().unwrap(), "cache");
    p.import_certificate(&key.name, &cert, OpFlags::default()).unwrap();
    let digest = [7u8; 32];
    let request =
        SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::None, data: &digest };

    // Removal: the card and everything cached for it go.
    p.login(PIV, PinId::USER, None).unwrap();
    assert!(p.is_pin_cached(PIV, PinId::USER));
    let card = rig.backend.remove(PIV).unwrap();
    p.readers();
    assert!(!p.is_pin_cached(PIV, PinId::USER), "removal");
    rig.backend.insert(PIV, card);
    p.readers();

    // A reset by our own logout: the admin's login and value go with the card's state.
    p.login(PIV, PinId::ADMIN, None).unwrap();
    p.login(PIV, PinId::USER, None).unwrap();
    p.logout(PIV, PinId::ADMIN).unwrap();
    assert!(!p.is_pin_cached(PIV, PinId::ADMIN) && !p.is_logged_in(PIV, PinId::ADMIN));
    // The PIV admin is forgotten by a reset, which takes the user PIN's verification with it:
    // the cached user PIN is presented again, once, without asking.
    let asked = rig.answers.calls();
    let verifies = rig.probe(PIV).verifies();
    p.sign(&key.name, &request, OpFlags::silent()).unwrap();
    assert_eq!(rig.answers.calls(), asked);
    assert_eq!(rig.probe(PIV).verifies(), verifies + 1);

    // Expiry.
    rig.clock.advance(Duration::from_secs(31));
    assert!(!p.is_pin_cached(PIV, PinId::USER), "expiry");
    assert!(matches!(
        p.sign(&key.name, &request, OpFlags::silent()),
        Err(KspError::PinNeeded { .. })
    ));

    // Drop: a new provider starts with nothing (the values were zeroized with the old one).
    p.login(PIV, PinId::USER, None).unwrap();
    assert!(p.is_pin_cached(PIV, PinId::USER));
    drop(p);
    let mut p = rig.provider();
    assert!(!p.is_pin_cached(PIV, PinId::USER), "drop");
    rig.reset_elsewhere(PIV);
    assert!(matches!(
        p.sign(&key.name, &request, OpFlags::silent()),
        Err(KspError::PinNeeded { .. })
    ));
}
