//! Helpers shared by the CLI's integration tests.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
#![allow(dead_code)]

use std::str::FromStr;
use std::time::Duration;

use der::{DecodePem, Encode};
use rand_core::OsRng;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::Validity;

/// A certificate for `spki_pem` issued by a throwaway host CA (what a CA would send back).
pub(crate) fn issue_certificate(spki_pem: &str, cn: &str) -> Vec<u8> {
    let spki = SubjectPublicKeyInfoOwned::from_pem(spki_pem.as_bytes()).unwrap();
    let ca = p256::ecdsa::SigningKey::random(&mut OsRng);
    let rsa = spki.algorithm.oid == der::oid::db::rfc5912::RSA_ENCRYPTION;
    let profile = Profile::Leaf {
        issuer: Name::from_str("CN=scard test CA").unwrap(),
        enable_key_agreement: !rsa,
        enable_key_encipherment: rsa,
    };
    let validity = Validity::from_now(Duration::from_secs(86_400)).unwrap();
    let builder = CertificateBuilder::new(
        profile,
        SerialNumber::new(&[1, 2, 3]).unwrap(),
        validity,
        Name::from_str(&format!("CN={cn}")).unwrap(),
        spki,
        &ca,
    )
    .unwrap();
    builder.build::<p256::ecdsa::DerSignature>().unwrap().to_der().unwrap()
}
