//! Self-signed X.509 certificates (RFC 5280) for keys the simulated cards are personalised
//! with, built with the RustCrypto x509-cert builder, and the zlib compression some card
//! formats use for certificates.

use std::io::Write;
use std::str::FromStr;
use std::time::Duration;

use der::Encode;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::{Time, Validity};

use crate::keys::{KeyError, PrivateKey};

/// 2024-01-01T00:00:00Z and 2049-12-31T23:59:59Z (UTCTime can go no further: RFC 5280
/// §4.1.2.5.1), so a seeded card produces the same certificate every time.
const NOT_BEFORE: Duration = Duration::from_secs(1_704_067_200);
const NOT_AFTER: Duration = Duration::from_secs(2_524_607_999);

fn build_err(e: impl std::fmt::Display) -> KeyError {
    KeyError::Encoding(format!("certificate: {e}"))
}

/// A self-signed end-entity certificate (`CN=<common_name>`, the given serial number with
/// its top bit cleared so it stays positive, basicConstraints cA false, keyUsage
/// digitalSignature and keyEncipherment or keyAgreement) for `key`, signed with SHA-256
/// (sha256WithRSAEncryption or ecdsa-with-SHA256/384). DER.
pub fn self_signed(
    key: &PrivateKey,
    common_name: &str,
    serial: &[u8],
) -> Result<Vec<u8>, KeyError> {
    let name = Name::from_str(&format!("CN={common_name}")).map_err(build_err)?;
    let mut serial = serial.to_vec();
    if let Some(first) = serial.first_mut() {
        *first &= 0x7F;
    }
    if serial.iter().all(|b| *b == 0) {
        serial = vec![1];
    }
    let serial = SerialNumber::new(&serial).map_err(build_err)?;
    let validity = Validity {
        not_before: Time::UtcTime(
            der::asn1::UtcTime::from_unix_duration(NOT_BEFORE).map_err(build_err)?,
        ),
        not_after: Time::UtcTime(
            der::asn1::UtcTime::from_unix_duration(NOT_AFTER).map_err(build_err)?,
        ),
    };
    let rsa = matches!(key, PrivateKey::Rsa(_));
    let profile = Profile::Leaf {
        issuer: name.clone(),
        enable_key_agreement: !rsa,
        enable_key_encipherment: rsa,
    };
    let cert = match key {
        PrivateKey::Rsa(k) => {
            let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(k.as_ref().clone());
            let spki = SubjectPublicKeyInfoOwned::from_key(k.to_public_key()).map_err(build_err)?;
            CertificateBuilder::new(profile, serial, validity, name, spki, &signer)
                .map_err(build_err)?
                .build::<rsa::pkcs1v15::Signature>()
                .map_err(build_err)?
        }
        PrivateKey::P256(k) => {
            let signer = p256::ecdsa::SigningKey::from(k);
            let spki = SubjectPublicKeyInfoOwned::from_key(k.public_key()).map_err(build_err)?;
            CertificateBuilder::new(profile, serial, validity, name, spki, &signer)
                .map_err(build_err)?
                .build::<p256::ecdsa::DerSignature>()
                .map_err(build_err)?
        }
        PrivateKey::P384(k) => {
            let signer = p384::ecdsa::SigningKey::from(k);
            let spki = SubjectPublicKeyInfoOwned::from_key(k.public_key()).map_err(build_err)?;
            CertificateBuilder::new(profile, serial, validity, name, spki, &signer)
                .map_err(build_err)?
                .build::<p384::ecdsa::DerSignature>()
                .map_err(build_err)?
        }
    };
    cert.to_der().map_err(build_err)
}

/// zlib (RFC 1950) compression.
pub fn zlib(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimRng;
    use crate::keys::KeyAlgorithm;
    use der::Decode;
    use signature::Verifier;
    use x509_cert::Certificate;

    #[test]
    fn certificates_parse_and_verify_on_the_host() {
        let mut rng = SimRng::from_seed(5);
        for alg in [KeyAlgorithm::Rsa2048, KeyAlgorithm::P256, KeyAlgorithm::P384] {
            let key = PrivateKey::generate(alg, &mut rng).unwrap();
            let der = self_signed(&key, "scard test", &[0xFF, 1, 2]).unwrap();
            assert_eq!(
                der,
                self_signed(&key, "scard test", &[0xFF, 1, 2]).unwrap(),
                "deterministic"
            );
            let cert = Certificate::from_der(&der).unwrap();
            let tbs = cert.tbs_certificate.to_der().unwrap();
            let sig = cert.signature.raw_bytes();
            assert_eq!(cert.tbs_certificate.subject.to_string(), "CN=scard test");
            assert_eq!(cert.tbs_certificate.serial_number.as_bytes(), &[0x7F, 1, 2]);
            match &key {
                PrivateKey::Rsa(k) => {
                    let vk = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(k.to_public_key());
                    vk.verify(&tbs, &rsa::pkcs1v15::Signature::try_from(sig).unwrap()).unwrap();
                }
                PrivateKey::P256(k) => {
                    let vk = p256::ecdsa::VerifyingKey::from(k.public_key());
                    vk.verify(&tbs, &p256::ecdsa::DerSignature::try_from(sig).unwrap()).unwrap();
                }
                PrivateKey::P384(k) => {
                    let vk = p384::ecdsa::VerifyingKey::from(k.public_key());
                    vk.verify(&tbs, &p384::ecdsa::DerSignature::try_from(sig).unwrap()).unwrap();
                }
            }
        }
    }

    #[test]
    fn zlib_round_trip() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 7) as u8).collect();
        let packed = zlib(&data);
        assert!(packed.len() < data.len());
        let mut out = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::ZlibDecoder::new(packed.as_slice()),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, data);
    }
}
