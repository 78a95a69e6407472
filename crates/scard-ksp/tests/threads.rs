//! One provider shared by threads through a Mutex (how the PKCS#11 module holds it): eight
//! threads sign at once on two cards; every signature verifies.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use scard_ksp::{OpFlags, Provider};
use scard_minidriver::{Curve, HashAlg, KeyAlgorithm, PinId, SignPadding, SignRequest};
use scard_sim::Family;
use sha2::Digest;

#[test]
fn eight_threads_sign_through_a_mutex() {
    fn assert_send<T: Send>() {}
    assert_send::<Provider>();

    let rig = Rig::new(&[Family::Piv, Family::Gids]);
    let mut p = rig.provider();
    let piv = p.generate_key(PIV, None, KeyAlgorithm::Ec(Curve::P256), OpFlags::default()).unwrap();
    let gids = p.keys_on(GIDS).unwrap().remove(0);
    p.login(PIV, PinId::USER, None).unwrap();
    p.login(GIDS, PinId::USER, None).unwrap();
    let asked = rig.answers.calls();
    let provider = Arc::new(Mutex::new(p));

    let threads: Vec<_> = (0..8u8)
        .map(|t| {
            let provider = Arc::clone(&provider);
            let (piv, gids) = (piv.clone(), gids.clone());
            std::thread::spawn(move || {
                for round in 0..4u8 {
                    let message = [t, round, 0x5A];
                    let digest = sha2::Sha256::digest(message);
                    if (t + round) % 2 == 0 {
                        let request = SignRequest {
                            hash: Some(HashAlg::Sha256),
                            padding: SignPadding::None,
                            data: &digest,
                        };
                        let sig = provider
                            .lock()
                            .unwrap()
                            .sign(&piv.name, &request, OpFlags::silent())
                            .unwrap();
                        verify_ecdsa(piv.public_key.as_ref().unwrap(), &digest, &sig);
                    } else {
                        let request = SignRequest {
                            hash: Some(HashAlg::Sha256),
                            padding: SignPadding::Pkcs1,
                            data: &digest,
                        };
                        let sig = provider
                            .lock()
                            .unwrap()
                            .sign(&gids.name, &request, OpFlags::silent())
                            .unwrap();
                        rsa_key(gids.public_key.as_ref().unwrap())
                            .verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, &sig)
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(rig.answers.calls(), asked, "every thread used the logins");
}
