//! A card that stops answering (the hostile card's stall, a dead chip) costs one timeout, not
//! one per call: a card that does not answer while it is opened is left alone until it
//! changes, and a time-out during an operation closes the connection.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use scard_ksp::{ErrorKind, Provider, ProviderConfig, default_profiles, pin_callback};

/// Hostile seeds whose card stalls (scard_sim::hostile): 8 and 12 from the first APDU, 10
/// after four (the card opens, then an operation times out); the test checks that each one
/// did time out.
const STALLING: [u64; 3] = [8, 12, 10];

#[test]
fn a_card_that_does_not_answer_costs_one_timeout() {
    let timeout = Duration::from_secs(1);
    for seed in STALLING {
        let reader = format!("sim:hostile:{seed}");
        let mut config = ProviderConfig::load(Some(&reader), None).unwrap();
        config.timeout = timeout;
        let started = Instant::now();
        let mut provider =
            Provider::new(config, default_profiles(), pin_callback(|_| Ok(None))).unwrap();
        // What a PKCS#11 application does first: list readers, tokens, keys, again and again.
        let mut errors = Vec::new();
        for _ in 0..5 {
            let states = provider.readers();
            assert_eq!(states.len(), 1);
            if let Some(problem) = &states[0].problem {
                errors.push(problem.clone());
            }
            if let Err(err) = provider.card(&reader) {
                if err.to_string().contains("does not answer") {
                    assert_eq!(err.kind(), ErrorKind::DeviceError, "{err}");
                }
                errors.push(err.to_string());
            }
            let _ = provider.keys();
        }
        let took = started.elapsed();
        println!("seed {seed}: {took:?}; {:?}", errors.last());
        assert!(
            errors.iter().any(|e| e.contains("within 1s")),
            "seed {seed} did not stall: {errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("does not answer")),
            "seed {seed}: the card was not marked: {errors:?}"
        );
        // Opening (one timeout) and at most one more try after an operation's time-out.
        assert!(took < timeout * 2 + Duration::from_secs(1), "seed {seed}: {took:?}");
    }
}
