//! Certificates written by OpenSSL (`tests/fixtures/generate.sh`): the parser and the rules
//! agree with what a real CA tool produces.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::path::PathBuf;

use scard_certs::{
    CertError, Curve, KeyKind, KeySpec, LogonCert, Note, Policy, Reason, SanUpn, Timestamp,
    evaluate, oid,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cert(name: &str) -> LogonCert {
    LogonCert::from_der(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// 2025-01-01T00:00:00Z, inside every fixture's validity.
fn now() -> Timestamp {
    Timestamp::from_unix(1_735_689_600)
}

fn check(name: &str, args: &[&str]) -> scard_certs::Evaluation {
    let mut policy = Policy::new();
    for a in args {
        policy.apply_arg(a).unwrap();
    }
    evaluate(&cert(name), KeySpec::Exchange, now(), &policy)
}

#[test]
fn rsa_logon_certificate() {
    let c = cert("rsa-logon.der");
    assert_eq!(c.version(), 3);
    assert_eq!(c.key(), &KeyKind::Rsa { bits: 2048 });
    assert_eq!(c.upn(), Some("alice@example.com"));
    assert_eq!(c.email(), Some("alice@example.com"));
    assert_eq!(c.subject(), "CN=Alice Example,O=scard fixtures");
    assert_eq!(c.issuer(), "CN=scard fixture root,O=scard fixtures");
    assert_eq!(c.not_before().to_string(), "2024-01-01T00:00:00Z");
    assert_eq!(c.not_after().to_string(), "2026-01-01T00:00:00Z");
    assert_eq!(c.eku().unwrap(), &[oid::KP_SMARTCARD_LOGON, oid::KP_CLIENT_AUTH]);
    assert_eq!(c.key_usage_names().unwrap(), ["digitalSignature", "keyEncipherment"]);
    assert_eq!(c.basic_constraints_ca(), Some(false));
    assert_eq!(c.sid(), Some("S-1-5-21-3623811015-3361044348-30300820-1013"));
    let t = c.template().unwrap();
    assert_eq!(t.oid.to_string(), "1.3.6.1.4.1.311.21.8.9999.1.2.3");
    assert_eq!((t.major, t.minor), (Some(100), Some(4)));
    let e = check("rsa-logon.der", &[]);
    assert!(e.eligible(), "{:?}", e.reasons);
    assert!(e.notes.iter().any(|n| matches!(n, Note::Sid { .. })));
    assert!(e.notes.iter().any(|n| matches!(n, Note::Template { .. })));
}

#[test]
fn the_ca_certificate_is_not_a_logon_certificate() {
    let c = cert("ca.der");
    assert!(c.is_ca() && c.is_self_issued());
    let e = check("ca.der", &[]);
    assert!(e.reasons.contains(&Reason::KeyUsage));
    assert!(e.reasons.iter().any(|r| matches!(r, Reason::Eku { eku: None, .. })));
}

#[test]
fn ecc_fixtures() {
    for (name, curve) in [
        ("p256-logon.der", Curve::P256),
        ("p384-logon.der", Curve::P384),
        ("p521-logon.der", Curve::P521),
    ] {
        assert_eq!(cert(name).key(), &KeyKind::Ec { curve: curve.clone() });
        assert_eq!(check(name, &[]).reasons, vec![Reason::EccNotEnabled { curve }]);
        assert!(check(name, &["EnumerateECCCerts=1"]).eligible(), "{name}");
    }
    let k1 = cert("secp256k1.der");
    assert_eq!(k1.key().to_string(), "ECC secp256k1");
    assert!(matches!(
        check("secp256k1.der", &["EnumerateECCCerts=1"]).reasons.as_slice(),
        [Reason::KeyType { .. }]
    ));
    assert_eq!(cert("ed25519.der").key(), &KeyKind::Ed25519);
    assert!(matches!(
        check("ed25519.der", &["EnumerateECCCerts=1"]).reasons.as_slice(),
        [Reason::KeyType { .. }]
    ));
}

#[test]
fn pkinit_only_fixture() {
    let e = check("pkinit-only.der", &["AllowCertificatesWithNoEKU=1"]);
    assert!(!e.eligible());
    assert!(e.reasons[0].to_string().contains("MIT and Heimdal"));
    assert!(e.notes.contains(&Note::Pkinit));
}

#[test]
fn unknown_critical_fixture() {
    let e = check("unknown-critical.der", &[]);
    assert_eq!(e.reasons.len(), 1);
    assert!(e.reasons[0].to_string().contains("1.3.6.1.4.1.55555.1"));
}

#[test]
fn upn_fixtures() {
    let c = cert("ia5-upn.der");
    assert_eq!(c.upn(), None);
    assert_eq!(c.upn_entries(), &[SanUpn::Ia5("bob@example.com".into())]);
    assert_eq!(c.display_name(false), "bob@example.com");
    assert!(check("ia5-upn.der", &[]).eligible());
    let c = cert("several-upns.der");
    assert_eq!(c.upn(), Some("Second@Example.com"));
    assert_eq!(c.upn_entries().len(), 3);
    assert!(check("several-upns.der", &[]).notes.contains(&Note::SeveralUpns { count: 2 }));
}

#[test]
fn eku_setting_fixtures() {
    for name in ["client-auth.der", "no-eku.der", "v1.der"] {
        assert!(matches!(check(name, &[]).reasons.as_slice(), [Reason::Eku { .. }]), "{name}");
        assert!(check(name, &["AllowCertificatesWithNoEKU=1"]).eligible(), "{name}");
    }
    let v1 = cert("v1.der");
    assert_eq!(v1.version(), 1);
    assert!(v1.extensions().is_empty());
}

#[test]
fn pem_fixture_is_rejected() {
    assert!(matches!(LogonCert::from_der(&fixture("rsa-logon.pem")), Err(CertError::Pem)));
}

#[test]
fn every_fixture_parses_and_truncations_fail() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("der") {
            continue;
        }
        let der = std::fs::read(&path).unwrap();
        let c = LogonCert::from_der(&der).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(c.der(), der.as_slice());
        for len in (0..der.len()).step_by(7) {
            assert!(LogonCert::from_der(&der[..len]).is_err());
        }
        count += 1;
    }
    assert_eq!(count, 14);
}

/// Writes the seed corpus of the `cert_eligibility` fuzz target (`fuzz/corpus/
/// cert_eligibility/seed-<sha1>`): every fixture, plus built certificates of the shapes OpenSSL
/// does not write (Ed448, explicit curve parameters, version 2, IA5String and empty UPNs,
/// template name). Run by hand:
/// `cargo test -p scard-certs --test fixtures -- --ignored write_fuzz_seeds`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    use der::Tag;
    use der::asn1::ObjectIdentifier as Oid;
    use scard_certs::testcert::{CertSpec, TestKey, upn_name};
    use sha1::Digest;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/cert_eligibility");
    std::fs::create_dir_all(&root).unwrap();
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if matches!(path.extension().and_then(|e| e.to_str()), Some("der" | "pem")) {
            seeds.push(std::fs::read(path).unwrap());
        }
    }
    let template = Oid::new_unwrap("1.3.6.1.4.1.311.21.8.1.2");
    for spec in [
        CertSpec::logon("seed@example.com").key(TestKey::Ed448),
        CertSpec::logon("seed@example.com").key(TestKey::EcExplicit),
        CertSpec::bare("v2").version(2),
        CertSpec::logon("seed@example.com").san(vec![
            upn_name(Tag::Ia5String, b"ia5@example.com"),
            upn_name(Tag::Utf8String, b""),
            upn_name(Tag::Utf8String, b"Seed@Example.com"),
        ]),
        CertSpec::logon("seed@example.com")
            .template(template, Some(100), Some(2))
            .sid("S-1-5-21-1-2-3-1001")
            .basic_constraints(true)
            .ext(oid::ENROLL_CERTTYPE, false, vec![0x1E, 0x04, 0, b'U', 0, b's'])
            .ext(Oid::new_unwrap("1.3.6.1.4.1.55555.1"), true, vec![0x05, 0x00]),
    ] {
        seeds.push(spec.build().unwrap());
    }
    for seed in seeds {
        let name: String =
            sha1::Sha1::digest(&seed).iter().take(8).map(|b| format!("{b:02x}")).collect();
        std::fs::write(root.join(format!("seed-{name}")), seed).unwrap();
    }
}
