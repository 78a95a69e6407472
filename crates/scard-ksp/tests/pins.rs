//! PIN handling: the sources (callback, environment, a pinentry program), the silent flag,
//! every cache policy (counting PIN source calls and VERIFYs), what removal and logout drop,
//! and refusals before any PIN.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use common::*;
use scard_ksp::{
    EnvPinSource, ErrorKind, KspError, OpFlags, Operation, PinCacheConfig, PinPrompt, PinRequest,
    PinSource, PinentryPinSource, ProviderEvent,
};
use scard_minidriver::{
    CachePolicy, Curve, DecryptPadding, HashAlg, KeyAlgorithm, Pin, PinId, PinType, SignPadding,
    SignRequest,
};
use scard_sim::Family;

const DIGEST: [u8; 32] = [0x42; 32];

fn ecdsa() -> SignRequest<'static> {
    SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::None, data: &DIGEST }
}

/// A PIV card with P-256 keys and certificates in 9A (index 0) and 9C (index 1); returns their
/// names. The management key was asked for once, and is logged out again (`answers` cleared).
fn piv_with_keys(rig: &Rig, p: &mut scard_ksp::Provider) -> (String, String) {
    let mut names = Vec::new();
    for index in [0, 1] {
        let key = p
            .generate_key(PIV, Some(index), KeyAlgorithm::Ec(Curve::P256), OpFlags::default())
            .unwrap();
        // PIV: a key without a certificate is visible only to the connection that made it.
        let cert = certificate_for(key.public_key.as_ref().unwrap(), "test");
        p.import_certificate(&key.name, &cert, OpFlags::default()).unwrap();
        names.push(key.name);
    }
    p.logout(PIV, PinId::ADMIN).unwrap();
    let (a, c) = (names.remove(0), names.remove(0));
    rig.answers.log.lock().unwrap().clear();
    (a, c)
}

fn user_asks(rig: &Rig) -> usize {
    rig.answers.log.lock().unwrap().iter().filter(|r| r.pin == PinId::USER).count()
}

#[test]
fn normal_policy_asks_once_and_presents_once() {
    let rig = Rig::new(&[Family::Piv]);
    let mut p = rig.provider();
    let (k9a, _) = piv_with_keys(&rig, &mut p);
    let verifies = rig.probe(PIV).verifies();
    for _ in 0..3 {
        p.sign(&k9a, &ecdsa(), OpFlags::default()).unwrap();
    }
    assert_eq!(user_asks(&rig), 1);
    assert_eq!(rig.probe(PIV).verifies(), verifies + 1, "the card's state is trusted");
    let req = rig.answers.last().unwrap();
    assert_eq!(
        (req.pin, req.prompt, req.operation),
        (PinId::USER, PinPrompt::Current, Operation::Sign)
    );
    assert_eq!(req.pin_name, "PIV Card Application PIN");
    assert_eq!(req.key.as_deref(), Some(k9a.as_str()));
    assert!(req.tries_left.is_some());
    assert!(p.is_logged_in(PIV, PinId::USER) && p.is_pin_cached(PIV, PinId::USER));
}

#[test]
fn silent_calls_never_ask() {
    let rig = Rig::new(&[Family::Piv]);
    let mut p = rig.provider();
    let (k9a, _) = piv_with_keys(&rig, &mut p);
    let err = p.sign(&k9a, &ecdsa(), OpFlags::silent()).unwrap_err();
    assert!(
        matches!(&err, KspError::PinNeeded { reader, pin: PinId::USER } if reader == PIV),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::PinNeeded);
    assert_eq!(rig.answers.calls(), 0);
    // Admin operations too.
    let err =
        p.generate_key(PIV, Some(2), KeyAlgorithm::Ec(Curve::P256), OpFlags::silent()).unwrap_err();
    assert!(matches!(err, KspError::PinNeeded { pin: PinId::ADMIN, .. }), "{err}");
    assert_eq!(rig.answers.calls(), 0);
    // A PIN given for the operation is used (and not kept); a login serves silent calls.
    p.sign(&k9a, &ecdsa(), OpFlags { silent: true, pin: Some(Pin::new(PIN)) }).unwrap();
    assert!(!p.is_pin_cached(PIV, PinId::USER));
    p.login(PIV, PinId::USER, Some(Pin::new(PIN))).unwrap();
    p.sign(&k9a, &ecdsa(), OpFlags::silent()).unwrap();
    assert_eq!(rig.answers.calls(), 0);
}

#[test]
fn timed_policy_expires_on_the_clock() {
    let rig = Rig::new(&[Family::Piv]);
    let config = scard_ksp::ProviderConfig {
        pin_cache: PinCacheConfig { policy: Some(CachePolicy::Timed(60)), max_age: None },
        ..Rig::config()
    };
    let mut p = rig.provider_with(config);
    let (k9a, _) = piv_with_keys(&rig, &mut p);
    p.login(PIV, PinId::USER, None).unwrap();
    assert_eq!(user_asks(&rig), 1);
    rig.clock.advance(Duration::from_secs(59));
    // A reset makes the provider present the cached value again; its time does not restart.
    rig.reset_elsewhere(PIV);
    p.sign(&k9a, &ecdsa(), OpFlags::silent()).unwrap();
    assert!(p.is_logged_in(PIV, PinId::USER));
    rig.clock.advance(Duration::from_secs(2));
    assert!(!p.is_logged_in(PIV, PinId::USER) && !p.is_pin_cached(PIV, PinId::USER));
    let err = p.sign(&k9a, &ecdsa(), OpFlags::silent()).unwrap_err();
    assert!(matches!(err, KspError::PinNeeded { .. }), "expired: {err}");
    p.sign(&k9a, &ecdsa(), OpFlags::default()).unwrap();
    assert_eq!(user_asks(&rig), 2);
    // max_age caps the card's Normal policy the same way.
    let capped = PinCacheConfig { policy: None, max_age: Some(Duration::from_secs(10)) };
    assert_eq!(capped.effective(CachePolicy::Normal), CachePolicy::Timed(10));
}

#[test]
fn none_policy_keeps_no_value_so_a_reset_asks_again() {
    let rig = Rig::new(&[Family::Piv]);
    let config = scard_ksp::ProviderConfig {
        pin_cache: PinCacheConfig { policy: Some(CachePolicy::None), max_age: None },
        ..Rig::config()
    };
    let mut p = rig.provider_with(config);
    let (k9a, _) = piv_with_keys(&rig, &mut p);
    p.login(PIV, PinId::USER, None).unwrap();
    assert!(!p.is_pin_cached(PIV, PinId::USER));
    p.sign(&k9a, &ecdsa(), OpFlags::silent()).unwrap();
    assert_eq!(user_asks(&rig), 1);
    rig.reset_elsewhere(PIV);
    let err = p.sign(&k9a, &ecdsa(), OpFlags::silent()).unwrap_err();
    assert!(matches!(err, KspError::PinNeeded { .. }), "{err}");
    p.sign(&k9a, &ecdsa(), OpFlags::default()).unwrap();
    assert_eq!(user_asks(&rig), 2);
}

#[test]
fn always_prompt_keys_ask_before_every_use() {
    let rig = Rig::new(&[Family::Piv]);
    let mut p = rig.provider();
    let (k9a, k9c) = piv_with_keys(&rig, &mut p);
    p.login(PIV, PinId::USER, Some(Pin::new(PIN))).unwrap();
    let verifies = rig.probe(PIV).verifies();
    for _ in 0..3 {
        p.sign(&k9c, &ecdsa(), OpFlags::default()).unwrap();
    }
    assert_eq!(user_asks(&rig), 3, "9C asks every time, logged in or not");
    assert_eq!(rig.probe(PIV).verifies(), verifies + 3, "and verifies right before each use");
    p.sign(&k9a, &ecdsa(), OpFlags::default()).unwrap();
    assert_eq!(user_asks(&rig), 3, "9A uses the login");
    // Silent: only with a PIN for that use.
    assert!(matches!(p.sign(&k9c, &ecdsa(), OpFlags::silent()), Err(KspError::PinNeeded { .. })));
    p.authorize_key(&k9c, Pin::new(PIN)).unwrap();
    p.sign(&k9c, &ecdsa(), OpFlags::silent()).unwrap();
    assert!(
        matches!(p.sign(&k9c, &ecdsa(), OpFlags::silent()), Err(KspError::PinNeeded { .. })),
        "an authorization serves one use"
    );
    let err = p.authorize_key(&k9c, Pin::new("999999")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PinIncorrect);
    // The configuration can make every key ask.
    let config = scard_ksp::ProviderConfig {
        pin_cache: PinCacheConfig { policy: Some(CachePolicy::AlwaysPrompt), max_age: None },
        ..Rig::config()
    };
    drop(p);
    let mut p = rig.provider_with(config);
    assert_eq!(p.open_key(&k9a).unwrap().cache_policy, CachePolicy::AlwaysPrompt);
    let before = user_asks(&rig);
    p.sign(&k9a, &ecdsa(), OpFlags::default()).unwrap();
    p.sign(&k9a, &ecdsa(), OpFlags::default()).unwrap();
    assert_eq!(user_asks(&rig), before + 2);
}

#[test]
fn removal_and_logout_drop_cached_pins() {
    let rig = Rig::new(&[Family::Piv, Family::Gids]);
    let mut p = rig.provider();
    let (k9a, _) = piv_with_keys(&rig, &mut p);
    p.login(PIV, PinId::USER, None).unwrap();
    p.login(GIDS, PinId::USER, None).unwrap();
    assert!(p.is_pin_cached(PIV, PinId::USER) && p.is_pin_cached(GIDS, PinId::USER));

    // Logout: value dropped, the card forgets, silent use fails.
    p.logout(GIDS, PinId::USER).unwrap();
    assert!(!p.is_pin_cached(GIDS, PinId::USER) && !p.is_logged_in(GIDS, PinId::USER));
    let gids_key = p.keys_on(GIDS).unwrap().remove(0).name;
    let pkcs1 =
        SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::Pkcs1, data: &DIGEST };
    assert!(matches!(
        p.sign(&gids_key, &pkcs1, OpFlags::silent()),
        Err(KspError::PinNeeded { .. })
    ));

    // Removal: seen by the next look at the readers (or an event); the PINs go with the card.
    let card = rig.backend.remove(PIV).unwrap();
    let readers = p.readers();
    let piv = readers.iter().find(|r| r.name == PIV).unwrap();
    assert!(!piv.card_present && piv.card.is_none());
    assert!(!p.is_pin_cached(PIV, PinId::USER));
    assert_eq!(p.sign(&k9a, &ecdsa(), OpFlags::default()).unwrap_err().kind(), ErrorKind::NoCard);
    // Back in: a new card as far as the provider knows; nothing cached.
    rig.backend.insert(PIV, card);
    let event = loop {
        match p.wait_event(Duration::from_millis(200)).unwrap() {
            Some(ProviderEvent::CardInserted { reader }) => break reader,
            Some(_) => continue,
            None => panic!("no insertion event"),
        }
    };
    assert_eq!(event, PIV);
    assert!(p.readers().iter().any(|r| r.name == PIV && r.card.is_some()));
    assert!(matches!(p.sign(&k9a, &ecdsa(), OpFlags::silent()), Err(KspError::PinNeeded { .. })));

    // A removal while the provider holds the card: events say so, and the card is closed.
    p.login(PIV, PinId::USER, None).unwrap();
    let _ = rig.backend.remove(PIV).unwrap();
    let mut removed = false;
    while let Some(event) = p.wait_event(Duration::from_millis(100)).unwrap() {
        removed |= event == ProviderEvent::CardRemoved { reader: PIV.into() };
    }
    assert!(removed);
    assert!(!p.is_pin_cached(PIV, PinId::USER));
}

#[test]
fn a_card_removed_during_an_operation_is_closed() {
    let rig = Rig::new(&[Family::Piv]);
    let mut p = rig.provider();
    let (k9a, _) = piv_with_keys(&rig, &mut p);
    p.login(PIV, PinId::USER, None).unwrap();
    // Removed and put back before the provider looked: its connection is gone.
    let card = rig.backend.remove(PIV).unwrap();
    rig.backend.insert(PIV, card);
    let err = p.sign(&k9a, &ecdsa(), OpFlags::default()).unwrap_err();
    assert!(matches!(&err, KspError::CardRemoved { reader } if reader == PIV), "{err}");
    assert!(!p.is_pin_cached(PIV, PinId::USER));
    // The next look opens the card again.
    assert!(p.readers()[0].card.is_some());
    p.sign(&k9a, &ecdsa(), OpFlags::default()).unwrap();
}

#[test]
fn unsupported_requests_are_refused_before_any_pin() {
    let rig = Rig::new(&[Family::Piv, Family::Gids]);
    let mut p = rig.provider();
    let (k9a, _) = piv_with_keys(&rig, &mut p);
    let k9d =
        p.generate_key(PIV, Some(2), KeyAlgorithm::Ec(Curve::P256), OpFlags::default()).unwrap();
    let gids = p.keys_on(GIDS).unwrap().remove(0).name;
    rig.answers.log.lock().unwrap().clear();
    let verifies = rig.probe(PIV).verifies() + rig.probe(GIDS).verifies();

    let pss = SignRequest {
        hash: Some(HashAlg::Sha256),
        padding: SignPadding::Pss { salt_len: 32 },
        data: &DIGEST,
    };
    let cases: Vec<(KspError, ErrorKind)> = vec![
        // An RSA padding with an EC key.
        (p.sign(&k9a, &pss, OpFlags::default()).unwrap_err(), ErrorKind::KeyTypeInconsistent),
        // A digest of the wrong length for its hash.
        (
            p.sign(
                &k9a,
                &SignRequest {
                    hash: Some(HashAlg::Sha384),
                    padding: SignPadding::None,
                    data: &DIGEST,
                },
                OpFlags::default(),
            )
            .unwrap_err(),
            ErrorKind::DataLenRange,
        ),
        // Decryption with an EC key; an ECDH key asked to sign; ECDH with a signing key.
        (
            p.decrypt(&k9a, &DecryptPadding::Pkcs1, &[0; 32], OpFlags::default()).unwrap_err(),
            ErrorKind::KeyTypeInconsistent,
        ),
        (
            p.sign(&k9d.name, &ecdsa(), OpFlags::default()).unwrap_err(),
            ErrorKind::KeyFunctionNotPermitted,
        ),
        (
            p.agree(&k9a, k9d.public_key.as_ref().unwrap(), OpFlags::default()).unwrap_err(),
            ErrorKind::KeyFunctionNotPermitted,
        ),
        // A peer key on another curve.
        (
            p.agree(
                &k9d.name,
                &scard_minidriver::PublicKey::Ec { curve: Curve::P384, point: vec![4; 97] },
                OpFlags::default(),
            )
            .unwrap_err(),
            ErrorKind::MechanismParamInvalid,
        ),
        // The card's own refusal (GIDS: PSS needs a hash), and a ciphertext too long.
        (
            p.sign(
                &gids,
                &SignRequest {
                    hash: None,
                    padding: SignPadding::Pss { salt_len: 32 },
                    data: &DIGEST,
                },
                OpFlags::default(),
            )
            .unwrap_err(),
            ErrorKind::MechanismInvalid,
        ),
        (
            p.decrypt(&gids, &DecryptPadding::Pkcs1, &[1; 300], OpFlags::default()).unwrap_err(),
            ErrorKind::EncryptedDataLenRange,
        ),
        // An algorithm the card does not generate.
        (
            p.generate_key(PIV, None, KeyAlgorithm::Ec(Curve::P521), OpFlags::default())
                .unwrap_err(),
            ErrorKind::MechanismInvalid,
        ),
    ];
    for (err, kind) in cases {
        assert_eq!(err.kind(), kind, "{err}");
    }
    assert_eq!(rig.answers.calls(), 0, "no PIN was asked");
    assert_eq!(rig.probe(PIV).verifies() + rig.probe(GIDS).verifies(), verifies, "none sent");
    // The size queries answer without PINs too.
    assert_eq!(p.check_sign(&k9a, &ecdsa()).unwrap(), 64);
    assert_eq!(p.check_decrypt(&gids, &DecryptPadding::Pkcs1, Some(256)).unwrap(), 256);
    assert_eq!(rig.answers.calls(), 0);
}

#[test]
fn cancelled_and_wrong_pins() {
    let rig = Rig::new(&[Family::Piv]);
    let mut p = rig.provider();
    let (k9a, _) = piv_with_keys(&rig, &mut p);
    rig.answers.set(PinId::USER, PinPrompt::Current, None);
    let err = p.sign(&k9a, &ecdsa(), OpFlags::default()).unwrap_err();
    assert!(matches!(err, KspError::Cancelled { pin: PinId::USER, .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    rig.answers.set(PinId::USER, PinPrompt::Current, Some("999999"));
    let verifies = rig.probe(PIV).verifies();
    let err = p.sign(&k9a, &ecdsa(), OpFlags::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PinIncorrect);
    assert!(err.is_pin_failure());
    assert_eq!(rig.probe(PIV).verifies(), verifies + 1, "a failed VERIFY is never repeated");
    assert!(!p.is_pin_cached(PIV, PinId::USER));
    // Too short: refused before it is sent.
    let err = p.login(PIV, PinId::USER, Some(Pin::new("12"))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PinLenRange);
    assert_eq!(rig.probe(PIV).verifies(), verifies + 1);
}

#[test]
fn change_and_unblock_pins() {
    let rig = Rig::new(&[Family::Piv, Family::OpenPgp, Family::Gids]);
    let mut p = rig.provider();
    // GIDS: the admin is a 3DES key too (hex from the PIN source, raw bytes given directly).
    p.login(GIDS, PinId::ADMIN, None).unwrap();
    p.login(GIDS, PinId::ADMIN, Some(Pin::new(vec![0u8; 24]))).unwrap();
    assert!(p.is_logged_in(GIDS, PinId::ADMIN));
    rig.answers.log.lock().unwrap().clear();
    let info = p.pin_info(PIV).unwrap();
    assert_eq!(info.iter().map(|i| i.id.get()).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(info[1].pin_type, PinType::ChallengeResponse);
    p.login(PIV, PinId::USER, None).unwrap();
    p.change_pin(PIV, PinId::USER, Some(Pin::new(PIN)), Some(Pin::new("654321"))).unwrap();
    // The cached value follows the change.
    p.logout(PIV, PinId::USER).unwrap();
    p.login(PIV, PinId::USER, Some(Pin::new("654321"))).unwrap();
    // Block it, then unblock with the PUK from the PIN source.
    p.logout(PIV, PinId::USER).unwrap();
    while p.login(PIV, PinId::USER, Some(Pin::new("000000"))).unwrap_err().kind()
        == ErrorKind::PinIncorrect
    {}
    assert_eq!(
        p.login(PIV, PinId::USER, Some(Pin::new("654321"))).unwrap_err().kind(),
        ErrorKind::PinLocked
    );
    rig.answers.set(PinId::USER, PinPrompt::Unblock, Some("12345678"));
    rig.answers.set(PinId::USER, PinPrompt::New, Some(PIN));
    p.unblock_pin(PIV, PinId::USER, None, None).unwrap();
    let asked: Vec<PinPrompt> = rig.answers.log.lock().unwrap().iter().map(|r| r.prompt).collect();
    assert_eq!(asked, [PinPrompt::Current, PinPrompt::Unblock, PinPrompt::New]);
    p.login(PIV, PinId::USER, Some(Pin::new(PIN))).unwrap();

    // OpenPGP: with PW3 logged in, PW1 is unblocked with no code.
    p.login(OPENPGP, PinId::ADMIN, None).unwrap();
    p.unblock_pin(OPENPGP, PinId::USER, None, Some(Pin::new("111111"))).unwrap();
    p.login(OPENPGP, PinId::USER, Some(Pin::new("111111"))).unwrap();
    // PIV's admin login (the management key) is a challenge-response key.
    p.login(PIV, PinId::ADMIN, None).unwrap();
    let admin = rig.answers.last().unwrap();
    assert_eq!((admin.pin, admin.pin_type), (PinId::ADMIN, PinType::ChallengeResponse));
    assert!(p.is_logged_in(PIV, PinId::ADMIN));
    assert!(!p.is_pin_cached(PIV, PinId::ADMIN), "the management key's policy keeps no value");
    let key: Vec<u8> = (0..24).map(|i| (i % 8) as u8 + 1).collect();
    p.login(PIV, PinId::ADMIN, Some(Pin::new(key))).unwrap();
    let err = p.login(PIV, PinId::ADMIN, Some(Pin::new(vec![0u8; 24]))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PinIncorrect);
}

// ----- PIN sources ----------------------------------------------------------------------------

/// The environment source, run in a child process of this test binary (the variables are set
/// on the child; this process's environment is not changed).
#[test]
fn environment_source() {
    if std::env::var_os("SCARD_KSP_ENV_CHILD").is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "environment_source", "--nocapture", "--test-threads=1"])
            .env("SCARD_KSP_ENV_CHILD", "1")
            .env("SCARD_KSP_TEST_PIN", PIN)
            .env("SCARD_KSP_TEST_ADMIN", PIV_MGMT)
            .env_remove("SCARD_KSP_NOT_SET")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
        return;
    }
    let mut src =
        EnvPinSource::new("SCARD_KSP_TEST_PIN").with(PinId::ADMIN, "SCARD_KSP_TEST_ADMIN");
    let req = PinRequest::new(PIV, PinId::USER);
    assert_eq!(src.get(&req).unwrap().unwrap().expose(), PIN.as_bytes());
    let err = EnvPinSource::new("SCARD_KSP_NOT_SET").get(&req).unwrap_err();
    assert!(err.to_string().contains("SCARD_KSP_NOT_SET is not set"), "{err}");
    let err = src.get(&PinRequest::new(PIV, PinId::new(3).unwrap())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PinSourceFailed);
    // Through a provider: the management key (hex) and the PIN from the environment.
    let rig = Rig::new(&[Family::Piv]);
    let mut p = scard_ksp::Provider::with_registry(
        Rig::config(),
        rig.registry(),
        scard_ksp::default_profiles(),
        Box::new(src),
    )
    .unwrap();
    let key = p.generate_key(PIV, None, KeyAlgorithm::Ec(Curve::P256), OpFlags::default()).unwrap();
    p.sign(&key.name, &ecdsa(), OpFlags::default()).unwrap();
}

/// A pinentry stand-in: answers the Assuan protocol, logs what it is told, gives `answer` to
/// GETPIN (a `D` line, or an ERR when it starts with "ERR").
fn fake_pinentry(dir: &std::path::Path, answer: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let log = dir.join("pinentry.log");
    let script = dir.join(format!("pinentry-{}", answer.len()));
    let getpin = if answer.starts_with("ERR") {
        format!("echo \"{answer}\"")
    } else {
        format!("echo \"D {answer}\"; echo OK")
    };
    let text = format!(
        "#!/bin/sh\necho \"OK Pleased to meet you\"\n\
         while IFS= read -r line; do\n\
           echo \"$line\" >> '{}'\n\
           case \"$line\" in\n\
             GETPIN) {getpin} ;;\n\
             BYE) echo OK; exit 0 ;;\n\
             SETREPEAT*) echo \"ERR 536871187 Unknown command\" ;;\n\
             *) echo OK ;;\n\
           esac\n\
         done\n",
        log.display()
    );
    std::fs::write(&script, text).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn pinentry_source_speaks_assuan() {
    let dir = TempDir::new("pinentry");
    let program = fake_pinentry(&dir.0, "1234%2556");
    let mut src = PinentryPinSource::new(&program)
        .with_tty(Some("/dev/pts/99".into()), Some("xterm".into()))
        .with_timeout(Duration::from_secs(30));
    let mut req =
        PinRequest::new(PIV, PinId::USER).for_operation(Operation::Sign, PinPrompt::Current);
    req.card_label = "PIV 100% card".into();
    let pin = src.get(&req).unwrap().unwrap();
    assert_eq!(pin.expose(), b"1234%56", "percent escapes are decoded");
    let log = std::fs::read_to_string(dir.0.join("pinentry.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], "OPTION ttyname=/dev/pts/99");
    assert_eq!(lines[1], "OPTION ttytype=xterm");
    assert_eq!(lines[2], "SETTIMEOUT 30");
    assert!(
        lines.iter().any(|l| l.starts_with("SETDESC Enter the PIN 1 (user) of PIV 100%25 card")),
        "{log}"
    );
    assert!(lines.contains(&"SETPROMPT PIN:"));
    assert_eq!(&lines[lines.len() - 2..], ["GETPIN", "BYE"]);
    // A new PIN asks for a repeat (refused by this program: still fine).
    let new = PinRequest::new(PIV, PinId::USER).for_operation(Operation::ChangePin, PinPrompt::New);
    assert_eq!(src.get(&new).unwrap().unwrap().expose(), b"1234%56");

    // Cancel is None; the provider makes it Cancelled.
    let cancel = fake_pinentry(&dir.0, "ERR 83886179 Operation cancelled <Pinentry>");
    let mut src = PinentryPinSource::new(&cancel).with_tty(None, None);
    assert!(src.get(&req).unwrap().is_none());
    let broken = fake_pinentry(&dir.0, "ERR 83886142 Timeout");
    let err = PinentryPinSource::new(&broken).with_tty(None, None).get(&req).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PinSourceFailed);
    let err = PinentryPinSource::new(dir.0.join("missing")).get(&req).unwrap_err();
    assert!(err.to_string().contains("cannot run it"), "{err}");

    // Through a provider.
    let rig = Rig::new(&[Family::Piv]);
    let good = fake_pinentry(&dir.0, PIN);
    let mut p = scard_ksp::Provider::with_registry(
        Rig::config(),
        rig.registry(),
        scard_ksp::default_profiles(),
        Box::new(PinentryPinSource::new(&good).with_tty(None, None)),
    )
    .unwrap();
    p.login(PIV, PinId::USER, None).unwrap();
    p.set_pin_source(Box::new(PinentryPinSource::new(&cancel).with_tty(None, None)));
    p.logout(PIV, PinId::USER).unwrap();
    let err = p.login(PIV, PinId::USER, None).unwrap_err();
    assert!(matches!(err, KspError::Cancelled { .. }), "{err}");
}

/// The real pinentry-curses, when installed: with a terminal that does not exist it must fail
/// (or cancel) quickly, never hang or give a value.
#[test]
fn real_pinentry_curses_fails_cleanly_without_a_terminal() {
    let program = std::path::Path::new("/usr/bin/pinentry-curses");
    if !program.exists() {
        eprintln!("skipped: /usr/bin/pinentry-curses is not installed");
        return;
    }
    let started = std::time::Instant::now();
    let mut src = PinentryPinSource::new(program)
        .with_tty(Some("/nonexistent/tty".into()), Some("dumb".into()))
        .with_timeout(Duration::from_secs(5));
    let result = src.get(&PinRequest::new(PIV, PinId::USER));
    eprintln!("pinentry-curses without a terminal: {result:?}");
    assert!(!matches!(result, Ok(Some(_))), "a value without a terminal?");
    assert!(started.elapsed() < Duration::from_secs(20));
}
