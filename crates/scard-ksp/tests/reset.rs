//! Resets by another application: the cached PIN is presented again once and the operation
//! repeated once; never more, and never after a wrong-PIN answer.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;
use scard_ksp::{ErrorKind, KspError, OpFlags, PinPrompt, Provider};
use scard_minidriver::{Curve, HashAlg, KeyAlgorithm, Pin, PinId, SignPadding, SignRequest};
use scard_sim::Family;

const DIGEST: [u8; 32] = [0x17; 32];
const GENERAL_AUTHENTICATE: u8 = 0x87;
const VERIFY: u8 = 0x20;

fn ecdsa() -> SignRequest<'static> {
    SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::None, data: &DIGEST }
}

/// A PIV card with P-256 keys (and certificates) in 9A and 9C, the user logged in with the
/// cached PIN; returns (provider, 9A name, 9C name).
fn logged_in(rig: &Rig) -> (Provider, String, String) {
    let mut p = rig.provider();
    let mut names = Vec::new();
    for index in [0, 1] {
        let key = p
            .generate_key(PIV, Some(index), KeyAlgorithm::Ec(Curve::P256), OpFlags::default())
            .unwrap();
        let cert = certificate_for(key.public_key.as_ref().unwrap(), "reset test");
        p.import_certificate(&key.name, &cert, OpFlags::default()).unwrap();
        names.push(key.name);
    }
    p.login(PIV, PinId::USER, Some(Pin::new(PIN))).unwrap();
    rig.answers.log.lock().unwrap().clear();
    let k9c = names.pop().unwrap();
    let k9a = names.pop().unwrap();
    (p, k9a, k9c)
}

fn sign_ok(p: &mut Provider, key: &str) {
    p.sign(key, &ecdsa(), OpFlags::silent()).unwrap();
}

#[test]
fn a_reset_between_operations_presents_the_cached_pin_once() {
    let rig = Rig::new(&[Family::Piv]);
    let (mut p, k9a, _) = logged_in(&rig);
    let v = rig.probe(PIV).verifies();
    sign_ok(&mut p, &k9a);
    assert_eq!(rig.probe(PIV).verifies(), v, "no reset: the card's state is trusted");
    rig.reset_elsewhere(PIV);
    sign_ok(&mut p, &k9a);
    assert_eq!(rig.probe(PIV).verifies(), v + 1, "presented once more after the reset");
    sign_ok(&mut p, &k9a);
    assert_eq!(rig.probe(PIV).verifies(), v + 1);
    assert_eq!(rig.answers.calls(), 0, "nobody was asked");
}

#[test]
fn a_reset_during_the_operation_is_recovered_once() {
    let rig = Rig::new(&[Family::Piv]);
    let (mut p, k9a, _) = logged_in(&rig);
    let v = rig.probe(PIV).verifies();
    // The card is reset right before the signature command: the connection says so.
    rig.hook.arm(GENERAL_AUTHENTICATE, 1);
    sign_ok(&mut p, &k9a);
    assert_eq!(rig.hook.fired.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(rig.probe(PIV).verifies(), v + 1, "the PIN again, once, then the signature");

    // Twice in a row: recovered once, then the error (never a second round).
    rig.hook.arm(GENERAL_AUTHENTICATE, 2);
    let err = p.sign(&k9a, &ecdsa(), OpFlags::silent()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeviceError, "{err}");
    assert!(matches!(&err, KspError::Card(scard_minidriver::CardError::CardReset { .. })), "{err}");
    assert_eq!(rig.probe(PIV).verifies(), v + 2, "one more presentation, not two");
    // The login survives: the next operation works.
    sign_ok(&mut p, &k9a);
}

#[test]
fn a_reset_right_before_the_verify_presents_it_again() {
    let rig = Rig::new(&[Family::Piv]);
    let (mut p, _, k9c) = logged_in(&rig);
    let v = rig.probe(PIV).verifies();
    // 9C verifies right before every use: the reset hits that VERIFY.
    rig.hook.arm(VERIFY, 1);
    p.sign(&k9c, &ecdsa(), OpFlags::default()).unwrap();
    assert_eq!(rig.probe(PIV).verifies(), v + 1, "the refused VERIFY never reached the card");
    assert_eq!(rig.answers.calls(), 1, "asked once for 9C");
}

#[test]
fn a_reset_nobody_was_told_about_is_recovered_once() {
    let rig = Rig::new(&[Family::Piv]);
    let (mut p, k9a, _) = logged_in(&rig);
    let v = rig.probe(PIV).verifies();
    // The card loses its security state silently: it answers "security status not
    // satisfied" to the signature.
    rig.probe(PIV).lose_auth.store(true, std::sync::atomic::Ordering::SeqCst);
    sign_ok(&mut p, &k9a);
    assert_eq!(rig.probe(PIV).verifies(), v + 1);
    assert_eq!(rig.answers.calls(), 0);
}

#[test]
fn after_a_wrong_pin_nothing_is_presented_again() {
    let rig = Rig::new(&[Family::Piv]);
    let (mut p, k9a, _) = logged_in(&rig);
    // Another application changes the PIN, then resets the card.
    let mut other = rig.other_module(PIV);
    other.change_pin(PinId::USER, &Pin::new(PIN), &Pin::new("246810")).unwrap();
    drop(other);
    rig.reset_elsewhere(PIV);
    let tries = rig.other_module(PIV).tries_left(PinId::USER).unwrap();
    assert_eq!(tries, Some(3));
    let v = rig.probe(PIV).verifies();
    let err = p.sign(&k9a, &ecdsa(), OpFlags::silent()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PinIncorrect, "{err}");
    assert_eq!(rig.probe(PIV).verifies(), v + 1, "the cached PIN once, never again");
    assert!(!p.is_pin_cached(PIV, PinId::USER), "a wrong value is dropped");
    let mut other = rig.other_module(PIV);
    assert_eq!(other.tries_left(PinId::USER).unwrap(), tries.map(|t| t - 1), "one try spent");
    drop(other);
    // Nothing cached: silent fails, an interactive call asks.
    assert!(matches!(p.sign(&k9a, &ecdsa(), OpFlags::silent()), Err(KspError::PinNeeded { .. })));
    assert_eq!(rig.probe(PIV).verifies(), v + 1);
    rig.answers.set(PinId::USER, PinPrompt::Current, Some("246810"));
    p.sign(&k9a, &ecdsa(), OpFlags::default()).unwrap();
    assert_eq!(rig.answers.calls(), 1);

    // The same when the card lost its state without telling.
    let mut other = rig.other_module(PIV);
    other.change_pin(PinId::USER, &Pin::new("246810"), &Pin::new(PIN)).unwrap();
    drop(other);
    rig.probe(PIV).lose_auth.store(true, std::sync::atomic::Ordering::SeqCst);
    let v = rig.probe(PIV).verifies();
    let err = p.sign(&k9a, &ecdsa(), OpFlags::silent()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PinIncorrect, "{err}");
    assert_eq!(rig.probe(PIV).verifies(), v + 1);
}

#[test]
fn a_reset_of_an_openpgp_card_between_operations() {
    let rig = Rig::new(&[Family::OpenPgp]);
    let mut p = rig.provider();
    let key = p
        .generate_key(OPENPGP, Some(2), KeyAlgorithm::Ec(Curve::P256), OpFlags::default())
        .unwrap();
    p.login(OPENPGP, PinId::USER, None).unwrap();
    let asked = rig.answers.calls();
    let v = rig.probe(OPENPGP).verifies();
    rig.reset_elsewhere(OPENPGP);
    let sig = p.sign(&key.name, &ecdsa(), OpFlags::silent()).unwrap();
    verify_ecdsa(key.public_key.as_ref().unwrap(), &DIGEST, &sig);
    assert_eq!(rig.answers.calls(), asked);
    // PW1 81 again (the cached value), then 82 for the authentication key.
    assert!(rig.probe(OPENPGP).verifies() > v);
}
