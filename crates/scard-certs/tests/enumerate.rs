//! Rules 10-12: which certificates of a card are listed.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use der::asn1::ObjectIdentifier as Oid;
use scard_certs::testcert::{CertSpec, JAN_2024, JAN_2025, JAN_2026};
use scard_certs::{
    Card, CertError, Container, KeySpec, Policy, Rejection, Timestamp, enumerate, oid,
};

fn policy(args: &[&str]) -> Policy {
    let mut p = Policy::new();
    for a in args {
        p.apply_arg(a).unwrap();
    }
    p
}

fn container(name: &str, cert: Option<&CertSpec>, default: bool, key_spec: KeySpec) -> Container {
    Container {
        name: name.into(),
        certificate: cert.map(|c| c.build().unwrap()),
        default,
        key_spec,
    }
}

fn run(card: &Card, args: &[&str]) -> (Vec<String>, Vec<(String, String)>) {
    let e = enumerate(card, Timestamp::from_unix(JAN_2025), &policy(args));
    let displayed = e.displayed().into_iter().map(str::to_owned).collect();
    let rejected = e.rejected().into_iter().map(|(n, r)| (n.to_owned(), r.to_string())).collect();
    (displayed, rejected)
}

fn names(v: &[(String, String)]) -> Vec<&str> {
    v.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn card_validation() {
    let a = container("a", None, true, KeySpec::Exchange);
    let b = container("b", None, true, KeySpec::Exchange);
    assert!(matches!(
        Card::new(true, vec![a.clone(), b]),
        Err(CertError::SeveralDefaults { first, second }) if first == "a" && second == "b"
    ));
    assert!(matches!(
        Card::new(true, vec![a.clone(), a.clone()]),
        Err(CertError::DuplicateContainer { name }) if name == "a"
    ));
    assert!(Card::new(true, vec![]).is_ok());
    let c = container("c", None, false, KeySpec::Exchange);
    assert_eq!(Card::new(false, vec![a, c]).unwrap().containers().len(), 2);
}

#[test]
fn rule10_a_card_with_a_user_certstore_offers_every_container() {
    let alice = CertSpec::logon("alice@example.com").serial(&[1]);
    let bob = CertSpec::logon("bob@example.com").serial(&[2]);
    let card = Card::new(
        true,
        vec![
            container("empty", None, false, KeySpec::Exchange),
            container("alice", Some(&alice), false, KeySpec::Exchange),
            container("bob", Some(&bob), true, KeySpec::Exchange),
            container("alice-sig", Some(&alice.clone().serial(&[3])), false, KeySpec::Signature),
        ],
    )
    .unwrap();
    let (shown, rejected) = run(&card, &[]);
    assert_eq!(shown, ["alice", "bob"]);
    assert_eq!(names(&rejected), ["empty", "alice-sig"]);
    assert_eq!(rejected[0].1, "no certificate");
    assert!(rejected[1].1.contains("AllowSignatureOnlyKeys"));
    let (shown, _) = run(&card, &["AllowSignatureOnlyKeys=1"]);
    assert_eq!(shown, ["alice", "bob", "alice-sig"]);
}

#[test]
fn rule10_without_a_user_certstore_only_the_default_exchange_certificate() {
    let a = CertSpec::logon("a@example.com").serial(&[1]);
    let b = CertSpec::logon("b@example.com").serial(&[2]);
    let card = Card::new(
        false,
        vec![
            container("first", Some(&a), false, KeySpec::Exchange),
            container("default", Some(&b), true, KeySpec::Exchange),
        ],
    )
    .unwrap();
    let (shown, rejected) = run(&card, &[]);
    assert_eq!(shown, ["default"]);
    assert_eq!(names(&rejected), ["first"]);
    assert!(rejected[0].1.contains("not offered"));
    let (shown, _) = run(&card, &["ForceReadingAllCertificates=1"]);
    assert_eq!(shown, ["first", "default"]);

    // No default container: nothing.
    let card =
        Card::new(false, vec![container("first", Some(&a), false, KeySpec::Exchange)]).unwrap();
    assert!(run(&card, &[]).0.is_empty());
}

#[test]
fn rule10_default_signature_only_offers_nothing_whatever_allow_signature_only_keys_says() {
    let a = CertSpec::logon("a@example.com").serial(&[1]);
    let b = CertSpec::logon("b@example.com").serial(&[2]);
    let card = Card::new(
        false,
        vec![
            container("default-sig", Some(&a), true, KeySpec::Signature),
            container("other", Some(&b), false, KeySpec::Exchange),
        ],
    )
    .unwrap();
    for args in [&[][..], &["AllowSignatureOnlyKeys=1"]] {
        let (shown, rejected) = run(&card, args);
        assert!(shown.is_empty(), "{args:?}");
        assert!(rejected[0].1.contains("only a signature key"), "{}", rejected[0].1);
        assert!(rejected[1].1.contains("not offered"));
    }
    let (shown, _) = run(&card, &["ForceReadingAllCertificates=1", "AllowSignatureOnlyKeys=1"]);
    assert_eq!(shown, ["default-sig", "other"]);
    let (shown, _) = run(&card, &["ForceReadingAllCertificates=1"]);
    assert_eq!(shown, ["other"]);
}

#[test]
fn rule11_identical_certificates_are_listed_once() {
    let a = CertSpec::logon("a@example.com");
    let card = Card::new(
        true,
        vec![
            container("one", Some(&a), false, KeySpec::Exchange),
            container("two", Some(&a), true, KeySpec::Exchange),
            container("three", Some(&a), false, KeySpec::Exchange),
        ],
    )
    .unwrap();
    let (shown, rejected) = run(&card, &[]);
    assert_eq!(shown, ["one"]);
    assert_eq!(names(&rejected), ["two", "three"]);
    assert!(rejected[0].1.contains("\"one\""), "{}", rejected[0].1);
}

#[test]
fn rule11_applies_among_certificates_that_passed_the_other_rules() {
    // The first copy sits behind a signature-only key: the exchange copy is listed.
    let a = CertSpec::logon("a@example.com");
    let card = Card::new(
        true,
        vec![
            container("sig", Some(&a), false, KeySpec::Signature),
            container("exch", Some(&a), false, KeySpec::Exchange),
        ],
    )
    .unwrap();
    assert_eq!(run(&card, &[]).0, ["exch"]);
}

#[test]
fn unparsable_certificates_are_rejected_with_the_parse_error() {
    let card = Card::new(
        true,
        vec![Container {
            name: "broken".into(),
            certificate: Some(vec![0x30, 0x03, 0x02, 0x01]),
            default: true,
            key_spec: KeySpec::Exchange,
        }],
    )
    .unwrap();
    let (shown, rejected) = run(&card, &[]);
    assert!(shown.is_empty());
    assert!(
        rejected[0].1.starts_with("certificate rejected: not a DER certificate"),
        "{}",
        rejected[0].1
    );
}

fn templated(upn: &str, serial: u8, major: u32, not_after: u64) -> CertSpec {
    CertSpec::logon(upn).serial(&[serial]).validity(JAN_2024, not_after).template(
        Oid::new_unwrap("1.3.6.1.4.1.311.21.8.1.2"),
        Some(major),
        Some(serial.into()),
    )
}

#[test]
fn rule12_duplicates_only_with_filter_duplicate_certs() {
    let older = templated("alice@example.com", 1, 100, JAN_2026);
    let newer = templated("Alice@Example.COM", 2, 100, JAN_2026 + 86_400);
    let card = Card::new(
        true,
        vec![
            container("older", Some(&older), false, KeySpec::Exchange),
            container("newer", Some(&newer), false, KeySpec::Exchange),
        ],
    )
    .unwrap();
    assert_eq!(run(&card, &[]).0, ["older", "newer"]);
    let (shown, rejected) = run(&card, &["FilterDuplicateCerts=1"]);
    assert_eq!(shown, ["newer"], "latest notAfter wins; UPNs equal after lower-casing");
    assert!(rejected[0].1.contains("FilterDuplicateCerts") && rejected[0].1.contains("\"newer\""));
}

#[test]
fn rule12_the_default_exchange_container_wins() {
    let older = templated("alice@example.com", 1, 100, JAN_2026);
    let newer = templated("alice@example.com", 2, 100, JAN_2026 + 86_400);
    let card = Card::new(
        true,
        vec![
            container("newer", Some(&newer), false, KeySpec::Exchange),
            container("older-default", Some(&older), true, KeySpec::Exchange),
        ],
    )
    .unwrap();
    assert_eq!(run(&card, &["FilterDuplicateCerts=1"]).0, ["older-default"]);
    // A default signature-only container is not "the default container's key-exchange slot".
    let card = Card::new(
        true,
        vec![
            container("newer", Some(&newer), false, KeySpec::Exchange),
            container("older-default", Some(&older), true, KeySpec::Signature),
        ],
    )
    .unwrap();
    assert_eq!(run(&card, &["FilterDuplicateCerts=1", "AllowSignatureOnlyKeys=1"]).0, ["newer"]);
}

#[test]
fn rule12_ties_go_to_card_order() {
    let a = templated("alice@example.com", 1, 100, JAN_2026);
    let b = templated("alice@example.com", 2, 100, JAN_2026);
    let c = templated("alice@example.com", 3, 100, JAN_2026);
    let card = Card::new(
        true,
        vec![
            container("a", Some(&a), false, KeySpec::Exchange),
            container("b", Some(&b), false, KeySpec::Exchange),
            container("c", Some(&c), false, KeySpec::Exchange),
        ],
    )
    .unwrap();
    let (shown, rejected) = run(&card, &["FilterDuplicateCerts=1"]);
    assert_eq!(shown, ["a"]);
    assert_eq!(names(&rejected), ["b", "c"]);
}

#[test]
fn rule12_what_is_not_a_duplicate() {
    let base = templated("alice@example.com", 1, 100, JAN_2026);
    let cases = [
        ("other major version", templated("alice@example.com", 2, 101, JAN_2026 + 1)),
        (
            "other template",
            templated("alice@example.com", 2, 100, JAN_2026 + 1).template(
                Oid::new_unwrap("1.3.6.1.4.1.311.21.8.9.9"),
                Some(100),
                None,
            ),
        ),
        ("other UPN", templated("bob@example.com", 2, 100, JAN_2026 + 1)),
        ("no template", CertSpec::logon("alice@example.com").serial(&[2])),
        (
            "no UPN",
            templated("alice@example.com", 2, 100, JAN_2026 + 1).without(oid::SUBJECT_ALT_NAME),
        ),
    ];
    for (what, other) in cases {
        let card = Card::new(
            true,
            vec![
                container("base", Some(&base), false, KeySpec::Exchange),
                container("other", Some(&other), false, KeySpec::Exchange),
            ],
        )
        .unwrap();
        assert_eq!(run(&card, &["FilterDuplicateCerts=1"]).0, ["base", "other"], "{what}");
    }
}

#[test]
fn rule12_runs_after_the_time_filter() {
    // The later-expiring duplicate is not valid yet: it is rejected by rule 2, and the older
    // one is not filtered because of it.
    let valid = templated("alice@example.com", 1, 100, JAN_2026);
    let future = templated("alice@example.com", 2, 100, JAN_2026 + 86_400 * 365)
        .validity(JAN_2025 + 86_400, JAN_2026 + 86_400 * 365);
    let card = Card::new(
        true,
        vec![
            container("valid", Some(&valid), false, KeySpec::Exchange),
            container("future", Some(&future), false, KeySpec::Exchange),
        ],
    )
    .unwrap();
    let (shown, rejected) = run(&card, &["FilterDuplicateCerts=1"]);
    assert_eq!(shown, ["valid"]);
    assert!(rejected[0].1.contains("not valid yet"));
    // With AllowTimeInvalidCertificates both pass the time rule and the later one wins.
    let (shown, _) = run(&card, &["FilterDuplicateCerts=1", "AllowTimeInvalidCertificates=1"]);
    assert_eq!(shown, ["future"]);
}

#[test]
fn ineligible_containers_list_every_reason() {
    let bad = CertSpec::logon("a@example.com").eku(&[oid::PKINIT_KP_CLIENT_AUTH]).ext(
        Oid::new_unwrap("1.2.3.4"),
        true,
        vec![5, 0],
    );
    let card =
        Card::new(true, vec![container("bad", Some(&bad), true, KeySpec::Signature)]).unwrap();
    let e = enumerate(&card, Timestamp::from_unix(JAN_2025), &Policy::new());
    let (_, rejection) = e.rejected()[0];
    assert!(matches!(rejection, Rejection::Ineligible(r) if r.len() == 3));
    assert_eq!(rejection.lines().len(), 3);
    assert_eq!(rejection.to_string().lines().count(), 3);
}
