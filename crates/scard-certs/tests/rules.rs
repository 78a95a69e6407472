//! Rules 2-9 and every eligibility setting, on certificates built by the test suite
//! (`scard_certs::testcert`).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::time::Duration;

use der::Tag;
use der::asn1::ObjectIdentifier as Oid;
use scard_certs::testcert::{
    CertSpec, JAN_2024, JAN_2025, JAN_2026, TestKey, email_name, ku, upn_name,
};
use scard_certs::{
    Curve, Evaluation, KeyKind, KeySpec, LogonCert, Note, Policy, Reason, SanUpn, Setting,
    Timestamp, evaluate, oid,
};

fn parse(spec: &CertSpec) -> LogonCert {
    LogonCert::from_der(&spec.build().unwrap()).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn policy(args: &[&str]) -> Policy {
    let mut p = Policy::new();
    for a in args {
        p.apply_arg(a).unwrap();
    }
    p
}

fn eval_at(spec: &CertSpec, spec_key: KeySpec, now: Timestamp, args: &[&str]) -> Evaluation {
    evaluate(&parse(spec), spec_key, now, &policy(args))
}

fn eval(spec: &CertSpec, args: &[&str]) -> Evaluation {
    eval_at(spec, KeySpec::Exchange, Timestamp::from_unix(JAN_2025), args)
}

fn allowed_by(e: &Evaluation, setting: Setting) -> bool {
    e.notes.iter().any(|n| matches!(n, Note::AllowedBy { setting: s, .. } if *s == setting))
}

#[test]
fn a_typical_logon_certificate_is_eligible() {
    let e = eval(&CertSpec::logon("alice@example.com"), &[]);
    assert!(e.eligible(), "{:?}", e.reasons);
    assert!(e.notes.contains(&Note::NoSid));
    assert!(!e.notes.contains(&Note::NoUpn));
}

// --- Rule 2 ---

#[test]
fn rule2_validity_is_inclusive_at_both_ends() {
    let spec = CertSpec::logon("a@example.com");
    let at = |t: Timestamp| eval_at(&spec, KeySpec::Exchange, t, &[]);
    assert!(at(Timestamp::from_unix(JAN_2024)).eligible(), "notBefore itself is valid");
    assert!(at(Timestamp::from_unix(JAN_2026)).eligible(), "notAfter itself is valid");
    let before = at(Timestamp::from_unix(JAN_2024 - 1));
    assert!(matches!(before.reasons.as_slice(), [Reason::NotYetValid { .. }]), "{before:?}");
    let after = at(Timestamp::from_unix(JAN_2026 + 1));
    assert!(matches!(after.reasons.as_slice(), [Reason::Expired { .. }]), "{after:?}");
    // One nanosecond past notAfter is past it.
    let just_after = at(Timestamp::from_duration(Duration::new(JAN_2026, 1)));
    assert!(matches!(just_after.reasons.as_slice(), [Reason::Expired { .. }]));
    assert!(after.reasons[0].to_string().contains("2026-01-01T00:00:00Z"));
    assert!(before.reasons[0].to_string().contains("2024-01-01T00:00:00Z"));
}

#[test]
fn rule2_allow_time_invalid_certificates() {
    let spec = CertSpec::logon("a@example.com");
    for t in [JAN_2024 - 86_400, JAN_2026 + 86_400] {
        let e = eval_at(
            &spec,
            KeySpec::Exchange,
            Timestamp::from_unix(t),
            &["AllowTimeInvalidCertificates=1"],
        );
        assert!(e.eligible(), "{:?}", e.reasons);
        assert!(allowed_by(&e, Setting::AllowTimeInvalidCertificates));
    }
}

#[test]
fn rule2_generalized_time_after_2049() {
    // RFC 5280 §4.1.2.5: GeneralizedTime from 2050 on.
    let spec = CertSpec::logon("a@example.com").validity(JAN_2024, 4_102_444_800);
    let cert = parse(&spec);
    assert_eq!(cert.not_after().to_string(), "2100-01-01T00:00:00Z");
    assert!(eval_at(&spec, KeySpec::Exchange, Timestamp::from_unix(4_000_000_000), &[]).eligible());
}

// --- Rule 3 ---

#[test]
fn rule3_rsa_of_any_size() {
    for bits in [512, 1024, 2047, 2048, 3072, 4096, 8192] {
        let spec = CertSpec::logon("a@example.com").key(TestKey::Rsa(bits));
        assert_eq!(parse(&spec).key(), &KeyKind::Rsa { bits });
        assert!(eval(&spec, &[]).eligible(), "RSA {bits}");
    }
}

#[test]
fn rule3_ecc_on_nist_curves_only_with_enumerate_ecc_certs() {
    for (key, curve, name) in [
        (TestKey::P256, Curve::P256, "P-256"),
        (TestKey::P384, Curve::P384, "P-384"),
        (TestKey::P521, Curve::P521, "P-521"),
    ] {
        let spec = CertSpec::logon("a@example.com").key(key);
        assert_eq!(parse(&spec).key(), &KeyKind::Ec { curve: curve.clone() });
        assert_eq!(curve.to_string(), name);
        let e = eval(&spec, &[]);
        assert_eq!(e.reasons, vec![Reason::EccNotEnabled { curve }]);
        assert!(e.reasons[0].to_string().contains("EnumerateECCCerts=1"));
        assert!(eval(&spec, &["EnumerateECCCerts=1"]).eligible(), "{name}");
    }
}

#[test]
fn rule3_other_keys_never() {
    let k1 = Oid::new_unwrap("1.3.132.0.10");
    let brainpool = Oid::new_unwrap("1.3.36.3.3.2.8.1.1.7");
    let unknown_curve = Oid::new_unwrap("1.2.3.4.5");
    for (key, shown) in [
        (TestKey::EcNamed(k1, 65), "secp256k1"),
        (TestKey::EcNamed(brainpool, 65), "brainpoolP256r1"),
        (TestKey::EcNamed(unknown_curve, 65), "1.2.3.4.5"),
        (TestKey::EcExplicit, "explicit parameters"),
        (TestKey::Ed25519, "Ed25519"),
        (TestKey::Ed448, "Ed448"),
        (TestKey::Other(Oid::new_unwrap("1.2.840.10040.4.1")), "DSA"),
        (TestKey::Other(Oid::new_unwrap("1.3.9999.1")), "1.3.9999.1"),
    ] {
        let spec = CertSpec::logon("a@example.com").key(key.clone());
        for args in [&[][..], &["EnumerateECCCerts=1"]] {
            let e = eval(&spec, args);
            assert!(matches!(e.reasons.as_slice(), [Reason::KeyType { .. }]), "{key:?}: {e:?}");
            assert!(e.reasons[0].to_string().contains(shown), "{}", e.reasons[0]);
        }
    }
    let k = parse(&CertSpec::logon("a@example.com").key(TestKey::Ed25519));
    assert_eq!(k.key().alg_name(), "ed25519");
    let k = parse(&CertSpec::logon("a@example.com").key(TestKey::EcNamed(k1, 65)));
    assert_eq!(k.key(), &KeyKind::Ec { curve: Curve::Named { oid: k1, name: Some("secp256k1") } });
}

// --- Rule 4 ---

#[test]
fn rule4_signature_only_keys() {
    let spec = CertSpec::logon("a@example.com");
    let now = Timestamp::from_unix(JAN_2025);
    let e = eval_at(&spec, KeySpec::Signature, now, &[]);
    assert_eq!(e.reasons, vec![Reason::SignatureOnlyKey]);
    assert!(e.reasons[0].to_string().contains("AllowSignatureOnlyKeys=1"));
    let e = eval_at(&spec, KeySpec::Signature, now, &["AllowSignatureOnlyKeys=1"]);
    assert!(e.eligible());
    assert!(allowed_by(&e, Setting::AllowSignatureOnlyKeys));
    assert!(eval_at(&spec, KeySpec::Exchange, now, &[]).eligible());
}

// --- Rule 5 ---

#[test]
fn rule5_key_usage_needs_digital_signature_when_present() {
    let base = CertSpec::logon("a@example.com");
    for bits in [ku::KEY_ENCIPHERMENT, ku::NON_REPUDIATION, ku::KEY_AGREEMENT | ku::KEY_CERT_SIGN] {
        let e = eval(&base.clone().key_usage(bits), &[]);
        assert_eq!(e.reasons, vec![Reason::KeyUsage], "{bits:#x}");
    }
    for bits in [ku::DIGITAL_SIGNATURE, ku::DIGITAL_SIGNATURE | ku::NON_REPUDIATION] {
        assert!(eval(&base.clone().key_usage(bits), &[]).eligible(), "{bits:#x}");
    }
    // Absent keyUsage: unrestricted.
    let cert = parse(&base.clone().without(oid::KEY_USAGE));
    assert_eq!(cert.key_usage_digital_signature(), None);
    assert!(eval(&base.without(oid::KEY_USAGE), &[]).eligible());
}

// --- Rule 6 ---

#[test]
fn rule6_smart_card_logon_eku() {
    let base = CertSpec::logon("a@example.com");
    assert!(eval(&base.clone().eku(&[oid::KP_SMARTCARD_LOGON]), &[]).eligible());
    let email_protection = Oid::new_unwrap("1.3.6.1.5.5.7.3.4");
    assert!(eval(&base.clone().eku(&[email_protection, oid::KP_SMARTCARD_LOGON]), &[]).eligible());
}

#[test]
fn rule6_allow_certificates_with_no_eku() {
    let base = CertSpec::logon("a@example.com");
    let cases = [
        ("no EKU", base.clone().without(oid::EXT_KEY_USAGE)),
        ("anyExtendedKeyUsage", base.clone().eku(&[oid::ANY_EXTENDED_KEY_USAGE])),
        ("Client Authentication", base.clone().eku(&[oid::KP_CLIENT_AUTH])),
    ];
    for (what, spec) in cases {
        let e = eval(&spec, &[]);
        assert!(matches!(e.reasons.as_slice(), [Reason::Eku { .. }]), "{what}: {e:?}");
        assert!(e.reasons[0].to_string().contains("AllowCertificatesWithNoEKU=1"), "{what}");
        let e = eval(&spec, &["AllowCertificatesWithNoEKU=1"]);
        assert!(e.eligible(), "{what}: {e:?}");
        assert!(allowed_by(&e, Setting::AllowCertificatesWithNoEKU), "{what}");
    }
    // Other purposes stay refused even with the setting.
    let server_auth = Oid::new_unwrap("1.3.6.1.5.5.7.3.1");
    let e = eval(&base.eku(&[server_auth]), &["AllowCertificatesWithNoEKU=1"]);
    assert!(matches!(e.reasons.as_slice(), [Reason::Eku { allow_no_eku: true, .. }]));
}

#[test]
fn rule6_pkinit_alone_is_never_enough() {
    let spec = CertSpec::logon("a@example.com").eku(&[oid::PKINIT_KP_CLIENT_AUTH]);
    for args in [&[][..], &["AllowCertificatesWithNoEKU=1"]] {
        let e = eval(&spec, args);
        assert!(!e.eligible());
        let text = e.reasons[0].to_string();
        assert!(text.contains("1.3.6.1.5.2.3.4") && text.contains("MIT and Heimdal"), "{text}");
        assert!(e.notes.contains(&Note::Pkinit));
    }
    // With Client Authentication and the setting, it is the Client Authentication EKU that
    // lets it through; pkinit stays a note.
    let spec =
        CertSpec::logon("a@example.com").eku(&[oid::PKINIT_KP_CLIENT_AUTH, oid::KP_CLIENT_AUTH]);
    let e = eval(&spec, &["AllowCertificatesWithNoEKU=1"]);
    assert!(e.eligible());
    assert!(e.notes.contains(&Note::Pkinit));
}

// --- Rule 7 ---

#[test]
fn rule7_unrecognised_critical_extension() {
    let private = Oid::new_unwrap("1.3.6.1.4.1.55555.1");
    let base = CertSpec::logon("a@example.com");
    let e = eval(&base.clone().ext(private, true, vec![0x05, 0x00]), &[]);
    assert_eq!(e.reasons, vec![Reason::UnknownCriticalExtension { oid: private }]);
    assert!(e.reasons[0].to_string().contains("1.3.6.1.4.1.55555.1"));
    // Not critical: ignored.
    assert!(eval(&base.ext(private, false, vec![0x05, 0x00]), &[]).eligible());
}

#[test]
fn rule7_every_recognised_extension_may_be_critical() {
    // The extensions this module does not decode take any value; the decoded ones get a
    // valid one.
    let decoded = [
        oid::KEY_USAGE,
        oid::EXT_KEY_USAGE,
        oid::SUBJECT_ALT_NAME,
        oid::BASIC_CONSTRAINTS,
        oid::CERTIFICATE_TEMPLATE,
        oid::ENROLL_CERTTYPE,
        oid::NTDS_CA_SECURITY_EXT,
    ];
    let mut spec = CertSpec::logon("a@example.com")
        .template(Oid::new_unwrap("1.3.6.1.4.1.311.21.8.1.2"), Some(100), Some(3))
        .sid("S-1-5-21-1-2-3-500")
        .basic_constraints(false)
        // BMPString "User".
        .ext(oid::ENROLL_CERTTYPE, true, vec![0x1E, 0x08, 0, b'U', 0, b's', 0, b'e', 0, b'r']);
    for (id, _) in oid::RECOGNISED_EXTENSIONS {
        if !decoded.contains(&id) {
            spec = spec.ext(id, true, vec![0x05, 0x00]);
        }
    }
    // Mark the decoded ones critical too, keeping their values.
    let cert = parse(&spec);
    assert_eq!(cert.extensions().len(), 20);
    let e = eval(&spec, &[]);
    assert!(e.eligible(), "{:?}", e.reasons);
    assert_eq!(cert.template_name(), Some("User"));
    let eku = cert.eku().unwrap().to_vec();
    let critical_eku = spec.clone().ext(oid::EXT_KEY_USAGE, true, {
        use der::Encode;
        x509_cert::ext::pkix::ExtendedKeyUsage(eku).to_der().unwrap()
    });
    assert!(eval(&critical_eku, &[]).eligible());
}

// --- Rule 8 ---

#[test]
fn rule8_basic_constraints_not_checked() {
    let e = eval(&CertSpec::logon("a@example.com").basic_constraints(true), &[]);
    assert!(e.eligible());
    assert!(e.notes.contains(&Note::CaCertificate));
    assert!(eval(&CertSpec::logon("a@example.com").basic_constraints(false), &[]).eligible());
}

#[test]
fn rule8_upn_not_required() {
    let spec = CertSpec::logon("a@example.com").without(oid::SUBJECT_ALT_NAME);
    let e = eval(&spec, &[]);
    assert!(e.eligible());
    assert!(e.notes.contains(&Note::NoUpn));
    let cert = parse(&spec);
    assert_eq!(cert.upn(), None);
    assert_eq!(cert.display_name(false), "CN=a,O=scard tests");
    // Shown by e-mail when there is one.
    let spec = spec.san(vec![email_name("a.mail@example.com").unwrap()]);
    assert_eq!(parse(&spec).display_name(false), "a.mail@example.com");
    let spec = CertSpec::logon("x@example.com")
        .without(oid::SUBJECT_ALT_NAME)
        // emailAddress as an IA5String, in RFC 4514 hex form.
        .subject(&format!(
            "1.2.840.113549.1.9.1=#1618{},CN=Subject Mail",
            hex(b"subject.mail@example.com")
        ));
    assert_eq!(parse(&spec).email(), Some("subject.mail@example.com"));
}

#[test]
fn rule8_upn_is_the_first_non_empty_utf8string() {
    let spec = CertSpec::logon("a@example.com").san(vec![
        upn_name(Tag::Ia5String, b"ia5@example.com"),
        upn_name(Tag::Utf8String, b""),
        upn_name(Tag::Utf8String, b"First.UTF8@Example.COM"),
        upn_name(Tag::Utf8String, b"second@example.com"),
    ]);
    let cert = parse(&spec);
    assert_eq!(cert.upn(), Some("First.UTF8@Example.COM"), "exactly as stored, no case folding");
    assert_eq!(cert.upn_entries().len(), 4);
    let e = eval(&spec, &[]);
    assert!(e.eligible());
    assert!(e.notes.contains(&Note::SeveralUpns { count: 2 }));
    assert!(e.notes.contains(&Note::IgnoredUpn { entry: SanUpn::Ia5("ia5@example.com".into()) }));
    assert!(e.notes.contains(&Note::IgnoredUpn { entry: SanUpn::Utf8(String::new()) }));
}

#[test]
fn rule8_ia5string_or_empty_upn_is_no_upn() {
    for names in [
        vec![upn_name(Tag::Ia5String, b"bob@example.com")],
        vec![upn_name(Tag::Utf8String, b"")],
        vec![upn_name(Tag::PrintableString, b"bob")],
    ] {
        let spec = CertSpec::logon("bob@example.com").san(names);
        let cert = parse(&spec);
        assert_eq!(cert.upn(), None);
        let e = eval(&spec, &[]);
        assert!(e.eligible(), "a UPN is not required");
        assert!(e.notes.contains(&Note::NoUpn));
        assert!(e.notes.iter().any(|n| matches!(n, Note::IgnoredUpn { .. })));
    }
}

#[test]
fn rule8_upn_text_is_not_normalised() {
    // "é" decomposed (e + U+0301) and a capital sharp s: kept byte for byte.
    let upn = "Rene\u{301}.\u{1E9E}tra\u{DF}e@EXAMPLE.com";
    let cert = parse(&CertSpec::logon(upn));
    assert_eq!(cert.upn(), Some(upn));
    assert_eq!(cert.upn().unwrap().as_bytes(), upn.as_bytes());
}

// --- Rule 9 ---

#[test]
fn rule9_informational_fields() {
    let template = Oid::new_unwrap("1.3.6.1.4.1.311.21.8.1.2.3");
    let spec = CertSpec::logon("alice@example.com")
        .serial(&[0x7F, 0x00, 0xAB])
        .template(template, Some(100), Some(5))
        .sid("S-1-5-21-3623811015-3361044348-30300820-1013");
    let der = spec.build().unwrap();
    let cert = LogonCert::from_der(&der).unwrap();
    assert_eq!(cert.sid(), Some("S-1-5-21-3623811015-3361044348-30300820-1013"));
    let t = cert.template().unwrap();
    assert_eq!((t.oid, t.major, t.minor), (template, Some(100), Some(5)));
    assert_eq!(cert.subject(), "CN=alice,O=scard tests");
    assert_eq!(cert.issuer(), "CN=scard test CA,O=scard tests");
    assert_eq!(cert.serial_hex(), "7F00AB");
    use sha1::Digest;
    assert_eq!(cert.thumbprint_sha1(), <[u8; 20]>::from(sha1::Sha1::digest(&der)));
    assert_eq!(cert.thumbprint_hex().len(), 40);
    let e = eval(&spec, &[]);
    assert!(e.eligible());
    let notes: Vec<String> = e.notes.iter().map(ToString::to_string).collect();
    assert!(notes.iter().any(|n| n.contains("S-1-5-21-3623811015") && n.contains("KB5014754")));
    assert!(notes.iter().any(|n| n.contains("1.3.6.1.4.1.311.21.8.1.2.3 major 100 minor 5")));
    assert!(!e.notes.contains(&Note::NoSid));
    // Template with major only.
    let cert = parse(&CertSpec::logon("a@example.com").template(template, Some(7), None));
    assert_eq!(cert.template().unwrap().minor, None);
}

#[test]
fn reverse_subject_changes_only_the_display() {
    let cert =
        parse(&CertSpec::logon("a@example.com").subject("DC=com,DC=example,OU=Users,CN=User1"));
    assert_eq!(cert.subject(), "DC=com,DC=example,OU=Users,CN=User1");
    assert_eq!(cert.subject_for_display(false), cert.subject());
    assert_eq!(cert.subject_for_display(true), "CN=User1,OU=Users,DC=example,DC=com");
}

// --- Version 1 ---

#[test]
fn v1_certificates_have_no_eku() {
    let spec = CertSpec::bare("v1 user").version(1);
    let cert = parse(&spec);
    assert_eq!(cert.version(), 1);
    assert!(cert.extensions().is_empty());
    let e = eval(&spec, &[]);
    assert!(matches!(e.reasons.as_slice(), [Reason::Eku { eku: None, .. }]), "{e:?}");
    assert!(eval(&spec, &["AllowCertificatesWithNoEKU=1"]).eligible());
    // Version 2 without extensions parses too.
    assert_eq!(parse(&CertSpec::bare("v2").version(2)).version(), 2);
}

#[test]
fn all_failed_rules_are_reported_at_once() {
    let spec = CertSpec::logon("a@example.com")
        .key(TestKey::Ed25519)
        .key_usage(ku::KEY_ENCIPHERMENT)
        .eku(&[oid::PKINIT_KP_CLIENT_AUTH])
        .ext(Oid::new_unwrap("1.2.3.4"), true, vec![0x05, 0x00]);
    let e = eval_at(&spec, KeySpec::Signature, Timestamp::from_unix(JAN_2026 + 1), &[]);
    assert_eq!(e.reasons.len(), 6, "{:#?}", e.reasons);
}

#[test]
fn settings_without_effect_on_eligibility() {
    let spec = CertSpec::logon("a@example.com");
    let base = eval(&spec, &[]);
    for s in [
        "X509HintsNeeded=1",
        "ReverseSubject=1",
        "AllowIntegratedUnblock=1",
        "DisallowPlaintextPin=1",
        "CertPropEnabled=0",
        "EnableRootCertificatePropagation=0",
        "RootCertificateCleanupOption=2",
        "ScRemoveOption=1",
        "IntegratedUnblockPromptString=hello",
        "FilterDuplicateCerts=1",
        "ForceReadingAllCertificates=1",
    ] {
        assert_eq!(eval(&spec, &[s]), base, "{s}");
    }
}
