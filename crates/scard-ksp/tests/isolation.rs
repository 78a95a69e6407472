//! A card's PIN state is shared by every connection (PC/SC keeps a VERIFY for the card, not
//! for the connection that sent it): a session that did not verify the PIN itself never gets
//! a private-key operation out of another session's VERIFY (issue 9, concurrency). Checked on
//! every simulated card family through two connections to one in-process card: the second
//! session's card module refuses before anything reaches the card, and its provider asks for
//! its own PIN.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::sync::atomic::Ordering;

use common::*;
use scard_ksp::{KspError, OpFlags};
use scard_minidriver::{
    CardError, Curve, DecryptPadding, HashAlg, KeyAlgorithm, Pin, PinId, PublicKey, SignPadding,
    SignRequest,
};
use scard_sim::Family;

const DIGEST: [u8; 32] = [0x42; 32];

fn request(rsa: bool) -> SignRequest<'static> {
    let padding = if rsa { SignPadding::Pkcs1 } else { SignPadding::None };
    SignRequest { hash: Some(HashAlg::Sha256), padding, data: &DIGEST }
}

#[test]
fn one_session_never_signs_on_another_sessions_pin() {
    for family in Family::ALL {
        let rig = Rig::new(&[family]);
        let reader = format!("sim:{}", family.name());
        // A key that signs with the user PIN: PIV 9A, OpenPGP signature key, GIDS container 0
        // (its preloaded RSA key).
        let index = {
            let mut p = rig.provider();
            if family == Family::Gids {
                0
            } else {
                let key = p
                    .generate_key(
                        &reader,
                        Some(0),
                        KeyAlgorithm::Ec(Curve::P256),
                        OpFlags::default(),
                    )
                    .unwrap();
                let cert = certificate_for(key.public_key.as_ref().unwrap(), "isolation");
                p.import_certificate_at(&reader, 0, &cert, OpFlags::default()).unwrap();
                0
            }
        };
        let mut a = rig.other_module(&reader);
        let mut b = rig.other_module(&reader);
        let rsa = family == Family::Gids;
        a.authenticate(PinId::USER, &Pin::new(PIN)).unwrap();
        a.sign(index, &request(rsa)).unwrap();
        // B never verified: refused with the PIN named, and nothing went to the card.
        let probe = rig.probe(&reader);
        let before = probe.apdus.load(Ordering::SeqCst);
        let container = b.container(index).unwrap();
        let after_read = probe.apdus.load(Ordering::SeqCst);
        let err = b.sign(index, &request(rsa)).unwrap_err();
        assert!(matches!(err, CardError::AuthRequired { pin: PinId::USER, .. }), "{family}: {err}");
        let sent = probe.apdus.load(Ordering::SeqCst) - after_read;
        println!("{family}: refused after {sent} APDU(s) (reads only), {before} before");
        // Decryption and ECDH the same way, where the key does them.
        match container.public_key.as_ref().unwrap() {
            PublicKey::Rsa { n, .. } => {
                let err = b.decrypt(index, &DecryptPadding::Pkcs1, &vec![1u8; n.len()]);
                assert!(
                    matches!(
                        err,
                        Err(CardError::AuthRequired { .. }
                            | CardError::InvalidInput { .. }
                            | CardError::Unsupported { .. })
                    ),
                    "{family}: {err:?}"
                );
            }
            PublicKey::Ec { .. } => {}
        }
        // A's session still signs (again after VERIFY: an OpenPGP signature key takes PW1
        // for one signature); B's once it verified itself.
        a.authenticate(PinId::USER, &Pin::new(PIN)).unwrap();
        a.sign(index, &request(rsa)).unwrap();
        b.authenticate(PinId::USER, &Pin::new(PIN)).unwrap();
        b.sign(index, &request(rsa)).unwrap();
        drop((a, b));

        // The provider of another application: silent, it needs its own PIN; asked, it asks.
        let mut holder = rig.provider();
        holder.login(&reader, PinId::USER, None).unwrap();
        let name = holder
            .keys_on(&reader)
            .unwrap()
            .into_iter()
            .find(|k| k.container_index == index)
            .unwrap()
            .name;
        holder.sign(&name, &request(rsa), OpFlags::default()).unwrap();
        let mut other = rig.provider();
        let err = other.sign(&name, &request(rsa), OpFlags::silent()).unwrap_err();
        assert!(matches!(err, KspError::PinNeeded { .. }), "{family}: {err}");
        let asked = rig.answers.calls();
        other.sign(&name, &request(rsa), OpFlags::default()).unwrap();
        assert_eq!(rig.answers.calls(), asked + 1, "{family}: the other provider asked its own");
    }
}
