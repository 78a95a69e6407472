//! Test certificates of any shape (feature `test-support`): any version, key type, validity
//! and extension, including ones no CA would issue. They carry a placeholder signature:
//! logon eligibility never checks signatures (the KDC does), so tests do not need real ones.
//!
//! ```
//! # use scard_certs::testcert::{CertSpec, TestKey};
//! let der = CertSpec::logon("alice@example.com").key(TestKey::P256).build().unwrap();
//! let cert = scard_certs::LogonCert::from_der(&der).unwrap();
//! assert_eq!(cert.upn(), Some("alice@example.com"));
//! ```

use std::str::FromStr;
use std::time::Duration;

use der::asn1::{
    Any, BitString, GeneralizedTime, Ia5String, ObjectIdentifier as Oid, OctetString, Uint, UtcTime,
};
use der::{Encode, Sequence, Tag};
use x509_cert::Certificate;
use x509_cert::certificate::{TbsCertificate, Version};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::{GeneralName, OtherName};
use x509_cert::ext::pkix::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName,
};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};

use crate::oid;

/// 2024-01-01T00:00:00Z.
pub const JAN_2024: u64 = 1_704_067_200;
/// 2026-01-01T00:00:00Z.
pub const JAN_2026: u64 = 1_767_225_600;
/// 2025-01-01T00:00:00Z: inside the default validity.
pub const JAN_2025: u64 = 1_735_689_600;

/// The subject key of a test certificate (random-looking but fixed bytes; not a real key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestKey {
    /// rsaEncryption with a modulus of this many bits.
    Rsa(u32),
    /// P-256.
    P256,
    /// P-384.
    P384,
    /// P-521.
    P521,
    /// Another named curve, with its point length (uncompressed).
    EcNamed(Oid, usize),
    /// id-ecPublicKey with explicit parameters (a SEQUENCE).
    EcExplicit,
    /// Ed25519.
    Ed25519,
    /// Ed448.
    Ed448,
    /// Any algorithm OID with no parameters and 32 key bytes.
    Other(Oid),
    /// A real key: its DER SubjectPublicKeyInfo (e.g. from a card).
    Spki(Vec<u8>),
}

/// An extension: id, critical, DER value.
pub type RawExtension = (Oid, bool, Vec<u8>);

/// A certificate to build.
#[derive(Debug, Clone)]
pub struct CertSpec {
    version: u8,
    serial: Vec<u8>,
    subject: String,
    issuer: Option<String>,
    not_before: u64,
    not_after: u64,
    key: TestKey,
    extensions: Vec<RawExtension>,
}

/// KeyUsage bit values (RFC 5280 §4.2.1.3, bit 0 first) for [`CertSpec::key_usage`].
pub mod ku {
    /// digitalSignature.
    pub const DIGITAL_SIGNATURE: u16 = 1;
    /// nonRepudiation.
    pub const NON_REPUDIATION: u16 = 1 << 1;
    /// keyEncipherment.
    pub const KEY_ENCIPHERMENT: u16 = 1 << 2;
    /// keyAgreement.
    pub const KEY_AGREEMENT: u16 = 1 << 4;
    /// keyCertSign.
    pub const KEY_CERT_SIGN: u16 = 1 << 5;
    /// cRLSign.
    pub const CRL_SIGN: u16 = 1 << 6;
}

fn der_of<T: Encode>(value: &T) -> Vec<u8> {
    value.to_der().unwrap_or_default()
}

impl CertSpec {
    /// A bare v3 certificate: RSA 2048, `CN=<cn>`, valid 2024-01-01 .. 2026-01-01 inclusive,
    /// no extensions.
    pub fn bare(cn: &str) -> Self {
        Self {
            version: 3,
            serial: vec![0x01, 0x23, 0x45],
            subject: format!("CN={cn},O=scard tests"),
            issuer: Some("CN=scard test CA,O=scard tests".into()),
            not_before: JAN_2024,
            not_after: JAN_2026,
            key: TestKey::Rsa(2048),
            extensions: Vec::new(),
        }
    }

    /// A typical smart card logon certificate: [`CertSpec::bare`] plus keyUsage
    /// digitalSignature + keyEncipherment, EKU Smart Card Logon + Client Authentication, and
    /// the UPN in subjectAltName.
    pub fn logon(upn: &str) -> Self {
        Self::bare(upn.split('@').next().unwrap_or(upn))
            .key_usage(ku::DIGITAL_SIGNATURE | ku::KEY_ENCIPHERMENT)
            .eku(&[oid::KP_SMARTCARD_LOGON, oid::KP_CLIENT_AUTH])
            .upns(&[upn])
    }

    /// The version (1, 2 or 3).
    pub fn version(mut self, version: u8) -> Self {
        self.version = version;
        self
    }

    /// The serial number bytes (positive).
    pub fn serial(mut self, serial: &[u8]) -> Self {
        self.serial = serial.to_vec();
        self
    }

    /// The subject, RFC 4514 (`CN=x,O=y`).
    pub fn subject(mut self, subject: &str) -> Self {
        self.subject = subject.to_owned();
        self
    }

    /// The issuer; `None` makes the certificate self-issued.
    pub fn issuer(mut self, issuer: Option<&str>) -> Self {
        self.issuer = issuer.map(str::to_owned);
        self
    }

    /// Validity, in seconds since the epoch.
    pub fn validity(mut self, not_before: u64, not_after: u64) -> Self {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }

    /// The key.
    pub fn key(mut self, key: TestKey) -> Self {
        self.key = key;
        self
    }

    /// Adds (or replaces) an extension.
    pub fn ext(mut self, id: Oid, critical: bool, value: Vec<u8>) -> Self {
        self.extensions.retain(|(o, _, _)| *o != id);
        self.extensions.push((id, critical, value));
        self
    }

    /// Adds an extension even when one with the same id is there (a broken certificate).
    pub fn ext_again(mut self, id: Oid, critical: bool, value: Vec<u8>) -> Self {
        self.extensions.push((id, critical, value));
        self
    }

    /// Removes an extension.
    pub fn without(mut self, id: Oid) -> Self {
        self.extensions.retain(|(o, _, _)| *o != id);
        self
    }

    /// keyUsage (critical) with these bits ([`ku`]).
    pub fn key_usage(self, bits: u16) -> Self {
        let all = [
            KeyUsages::DigitalSignature,
            KeyUsages::NonRepudiation,
            KeyUsages::KeyEncipherment,
            KeyUsages::DataEncipherment,
            KeyUsages::KeyAgreement,
            KeyUsages::KeyCertSign,
            KeyUsages::CRLSign,
            KeyUsages::EncipherOnly,
            KeyUsages::DecipherOnly,
        ];
        let mut set = KeyUsage(Default::default());
        for (i, flag) in all.into_iter().enumerate() {
            if bits & (1 << i) != 0 {
                set.0 |= flag;
            }
        }
        let value = der_of(&set);
        self.ext(oid::KEY_USAGE, true, value)
    }

    /// extKeyUsage (not critical) with these purposes.
    pub fn eku(self, purposes: &[Oid]) -> Self {
        let value = der_of(&ExtendedKeyUsage(purposes.to_vec()));
        self.ext(oid::EXT_KEY_USAGE, false, value)
    }

    /// subjectAltName with one UTF8String UPN otherName per entry.
    pub fn upns(self, upns: &[&str]) -> Self {
        let names =
            upns.iter().map(|u| upn_name(Tag::Utf8String, u.as_bytes())).collect::<Vec<_>>();
        self.san(names)
    }

    /// subjectAltName with these general names.
    pub fn san(self, names: Vec<GeneralName>) -> Self {
        let value = der_of(&SubjectAltName(names));
        self.ext(oid::SUBJECT_ALT_NAME, false, value)
    }

    /// basicConstraints (critical).
    pub fn basic_constraints(self, ca: bool) -> Self {
        let value = der_of(&BasicConstraints { ca, path_len_constraint: None });
        self.ext(oid::BASIC_CONSTRAINTS, true, value)
    }

    /// The certificate template extension (MS-WCCE §2.2.2.7.7.2).
    pub fn template(self, template: Oid, major: Option<u32>, minor: Option<u32>) -> Self {
        #[derive(Sequence)]
        struct T {
            id: Oid,
            #[asn1(optional = "true")]
            major: Option<u32>,
            #[asn1(optional = "true")]
            minor: Option<u32>,
        }
        let value = der_of(&T { id: template, major, minor });
        self.ext(oid::CERTIFICATE_TEMPLATE, false, value)
    }

    /// The SID security extension (MS-WCCE §2.2.2.7.7.4) holding `sid` as text.
    pub fn sid(self, sid: &str) -> Self {
        let value = Any::new(Tag::OctetString, sid.as_bytes().to_vec()).ok();
        let names = value
            .map(|value| {
                vec![GeneralName::OtherName(OtherName { type_id: oid::NTDS_OBJECTSID, value })]
            })
            .unwrap_or_default();
        let value = der_of(&names);
        self.ext(oid::NTDS_CA_SECURITY_EXT, false, value)
    }

    /// Builds the DER.
    pub fn build(&self) -> Result<Vec<u8>, der::Error> {
        let subject = Name::from_str(&self.subject)?;
        let issuer = match &self.issuer {
            Some(i) => Name::from_str(i)?,
            None => subject.clone(),
        };
        let version = match self.version {
            1 => Version::V1,
            2 => Version::V2,
            _ => Version::V3,
        };
        let extensions = (!self.extensions.is_empty())
            .then(|| {
                self.extensions
                    .iter()
                    .map(|(id, critical, value)| {
                        Ok(Extension {
                            extn_id: *id,
                            critical: *critical,
                            extn_value: OctetString::new(value.clone())?,
                        })
                    })
                    .collect::<Result<Vec<_>, der::Error>>()
            })
            .transpose()?;
        let signature_alg = AlgorithmIdentifierOwned {
            oid: Oid::new_unwrap("1.2.840.10045.4.3.2"),
            parameters: None,
        };
        let tbs = TbsCertificate {
            version,
            serial_number: SerialNumber::new(&self.serial)?,
            signature: signature_alg.clone(),
            issuer,
            validity: Validity {
                not_before: time(self.not_before)?,
                not_after: time(self.not_after)?,
            },
            subject,
            subject_public_key_info: spki(&self.key)?,
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions,
        };
        // A placeholder ECDSA-Sig-Value (r = s = 1).
        let signature = BitString::from_bytes(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01])?;
        Certificate { tbs_certificate: tbs, signature_algorithm: signature_alg, signature }.to_der()
    }
}

/// A UPN otherName with a value of any string type.
pub fn upn_name(tag: Tag, value: &[u8]) -> GeneralName {
    let value = Any::new(tag, value.to_vec()).unwrap_or_else(|_| Any::null());
    GeneralName::OtherName(OtherName { type_id: oid::NT_PRINCIPAL_NAME, value })
}

/// An rfc822Name.
pub fn email_name(mail: &str) -> Option<GeneralName> {
    Ia5String::new(mail).ok().map(GeneralName::Rfc822Name)
}

/// UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5).
fn time(secs: u64) -> Result<Time, der::Error> {
    let d = Duration::from_secs(secs);
    if secs < 2_524_608_000 {
        Ok(Time::UtcTime(UtcTime::from_unix_duration(d)?))
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_unix_duration(d)?))
    }
}

/// Fixed filler bytes: `len` bytes of a simple sequence.
fn filler(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn spki(key: &TestKey) -> Result<SubjectPublicKeyInfoOwned, der::Error> {
    let ec = |curve: Oid, point_len: usize| -> Result<SubjectPublicKeyInfoOwned, der::Error> {
        let mut point = vec![0x04];
        point.extend(filler(point_len - 1, 7));
        Ok(SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned {
                oid: oid::EC_PUBLIC_KEY,
                parameters: Some(Any::encode_from(&curve)?),
            },
            subject_public_key: BitString::from_bytes(&point)?,
        })
    };
    let raw = |alg: Oid, len: usize| -> Result<SubjectPublicKeyInfoOwned, der::Error> {
        Ok(SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned { oid: alg, parameters: None },
            subject_public_key: BitString::from_bytes(&filler(len, 3))?,
        })
    };
    match key {
        TestKey::Rsa(bits) => {
            #[derive(Sequence)]
            struct RsaPublicKey {
                modulus: Uint,
                exponent: Uint,
            }
            let len = usize::try_from(bits.div_ceil(8)).unwrap_or(256);
            let mut modulus = filler(len, 0x55);
            if let Some(first) = modulus.first_mut() {
                // Exactly `bits` bits: the top bit of the first byte per `bits % 8`.
                let top = if bits % 8 == 0 { 8 } else { bits % 8 };
                *first = (*first | 0x80) >> (8 - top);
            }
            if let Some(last) = modulus.last_mut() {
                *last |= 1;
            }
            let key =
                RsaPublicKey { modulus: Uint::new(&modulus)?, exponent: Uint::new(&[1, 0, 1])? };
            Ok(SubjectPublicKeyInfoOwned {
                algorithm: AlgorithmIdentifierOwned {
                    oid: oid::RSA_ENCRYPTION,
                    parameters: Some(Any::null()),
                },
                subject_public_key: BitString::from_bytes(&key.to_der()?)?,
            })
        }
        TestKey::P256 => ec(oid::SECP256R1, 65),
        TestKey::P384 => ec(oid::SECP384R1, 97),
        TestKey::P521 => ec(oid::SECP521R1, 133),
        TestKey::EcNamed(curve, len) => ec(*curve, *len),
        TestKey::EcExplicit => {
            let mut point = vec![0x04];
            point.extend(filler(64, 9));
            Ok(SubjectPublicKeyInfoOwned {
                algorithm: AlgorithmIdentifierOwned {
                    oid: oid::EC_PUBLIC_KEY,
                    // A token SpecifiedECDomain: SEQUENCE { INTEGER 1 }.
                    parameters: Some(Any::new(Tag::Sequence, vec![0x02, 0x01, 0x01])?),
                },
                subject_public_key: BitString::from_bytes(&point)?,
            })
        }
        TestKey::Ed25519 => raw(oid::ED25519, 32),
        TestKey::Ed448 => raw(oid::ED448, 57),
        TestKey::Other(alg) => raw(*alg, 32),
        TestKey::Spki(der) => {
            use der::Decode;
            SubjectPublicKeyInfoOwned::from_der(der)
        }
    }
}
