//! The host side of what the commands check on a card (`demo`, `conformance`, `bench`): what a
//! card signs is verified, what it decrypts was encrypted, and what it agrees is computed here
//! too, with RustCrypto (RFC 8017 for RSA, FIPS 186-4 for ECDSA, SP 800-56A for ECDH);
//! certificates for generated keys are issued by a throwaway CA.

use std::str::FromStr;

use rand_core::{OsRng, RngCore};
use scard_minidriver::{
    Curve, DecryptPadding, HashAlg, KeyAlgorithm, PublicKey, SignPadding, SignRequest,
};

/// The message every signature of a run is made over.
const MESSAGE: &[u8] = b"scard conformance: sign this";

/// One way of signing, as the minidriver asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SignCase {
    pub(crate) name: &'static str,
    pub(crate) hash: HashAlg,
    pub(crate) scheme: Scheme,
}

/// The padding of a [`SignCase`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// RSASSA-PKCS1-v1_5 (RFC 8017 §8.2) of a digest.
    Pkcs1,
    /// RSASSA-PSS (RFC 8017 §8.1), salt of the hash's length.
    Pss,
    /// Raw RSA of an EMSA-PKCS1-v1_5 block built on the host (Minidriver v7
    /// CARD_PADDING_NONE): verifies as a PKCS#1 v1.5 signature.
    Raw,
    /// ECDSA of a digest.
    Ecdsa,
}

impl SignCase {
    /// The cases tried for keys of `algorithm`.
    pub(crate) fn all(algorithm: KeyAlgorithm) -> Vec<SignCase> {
        let case = |name, hash, scheme| SignCase { name, hash, scheme };
        match algorithm {
            KeyAlgorithm::Rsa(_) => vec![
                case("pkcs1-sha256", HashAlg::Sha256, Scheme::Pkcs1),
                case("pkcs1-sha384", HashAlg::Sha384, Scheme::Pkcs1),
                case("pss-sha256", HashAlg::Sha256, Scheme::Pss),
                case("raw", HashAlg::Sha256, Scheme::Raw),
            ],
            KeyAlgorithm::Ec(_) => vec![
                case("ecdsa-sha256", HashAlg::Sha256, Scheme::Ecdsa),
                case("ecdsa-sha384", HashAlg::Sha384, Scheme::Ecdsa),
            ],
        }
    }

    /// A case of the other key type: refused before any PIN by a key of `algorithm`.
    pub(crate) fn mismatched(algorithm: KeyAlgorithm) -> SignCase {
        match algorithm {
            KeyAlgorithm::Rsa(_) => {
                SignCase { name: "ecdsa-sha256", hash: HashAlg::Sha256, scheme: Scheme::Ecdsa }
            }
            KeyAlgorithm::Ec(_) => {
                SignCase { name: "pkcs1-sha256", hash: HashAlg::Sha256, scheme: Scheme::Pkcs1 }
            }
        }
    }

    /// The data the card gets for a key of `algorithm`: the digest, or for [`Scheme::Raw`]
    /// the whole encoded block.
    pub(crate) fn input(&self, algorithm: KeyAlgorithm) -> Result<Vec<u8>, String> {
        let digest = self.hash.digest(MESSAGE);
        match (self.scheme, algorithm) {
            (Scheme::Raw, KeyAlgorithm::Rsa(bits)) => {
                let t = self.hash.digest_info(&digest).map_err(|e| e.to_string())?;
                scard_minidriver::padding::pkcs1_v15_sign_block(&t, usize::from(bits).div_ceil(8))
                    .map_err(|e| e.to_string())
            }
            _ => Ok(digest),
        }
    }

    /// The request for `input` (from [`SignCase::input`]).
    pub(crate) fn request<'a>(&self, input: &'a [u8]) -> SignRequest<'a> {
        match self.scheme {
            Scheme::Pkcs1 => {
                SignRequest { hash: Some(self.hash), padding: SignPadding::Pkcs1, data: input }
            }
            Scheme::Pss => SignRequest {
                hash: Some(self.hash),
                padding: SignPadding::Pss { salt_len: self.hash.len() },
                data: input,
            },
            Scheme::Raw => SignRequest { hash: None, padding: SignPadding::None, data: input },
            Scheme::Ecdsa => {
                SignRequest { hash: Some(self.hash), padding: SignPadding::None, data: input }
            }
        }
    }

    /// Verifies the card's signature (RSA: the modulus size; ECDSA: r || s) with the public key.
    pub(crate) fn verify(&self, key: &PublicKey, signature: &[u8]) -> Result<(), String> {
        let digest = self.hash.digest(MESSAGE);
        match (key, self.scheme) {
            (PublicKey::Rsa { .. }, Scheme::Pkcs1 | Scheme::Raw) => {
                let scheme = match self.hash {
                    HashAlg::Sha1 => return Err("PKCS#1 v1.5 with SHA-1 is not checked".into()),
                    HashAlg::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                    HashAlg::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                    HashAlg::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
                };
                rsa_key(key)?.verify(scheme, &digest, signature).map_err(|e| e.to_string())
            }
            (PublicKey::Rsa { .. }, Scheme::Pss) => {
                let len = self.hash.len();
                let scheme = match self.hash {
                    HashAlg::Sha1 => rsa::Pss::new_with_salt::<sha1::Sha1>(len),
                    HashAlg::Sha256 => rsa::Pss::new_with_salt::<sha2::Sha256>(len),
                    HashAlg::Sha384 => rsa::Pss::new_with_salt::<sha2::Sha384>(len),
                    HashAlg::Sha512 => rsa::Pss::new_with_salt::<sha2::Sha512>(len),
                };
                rsa_key(key)?.verify(scheme, &digest, signature).map_err(|e| e.to_string())
            }
            (PublicKey::Ec { curve: Curve::P256, point }, Scheme::Ecdsa) => {
                use p256::ecdsa::signature::hazmat::PrehashVerifier;
                let vk =
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|e| e.to_string())?;
                let sig =
                    p256::ecdsa::Signature::from_slice(signature).map_err(|e| e.to_string())?;
                vk.verify_prehash(&digest, &sig).map_err(|e| e.to_string())
            }
            (PublicKey::Ec { curve: Curve::P384, point }, Scheme::Ecdsa) => {
                use p384::ecdsa::signature::hazmat::PrehashVerifier;
                let vk =
                    p384::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|e| e.to_string())?;
                let sig =
                    p384::ecdsa::Signature::from_slice(signature).map_err(|e| e.to_string())?;
                vk.verify_prehash(&digest, &sig).map_err(|e| e.to_string())
            }
            (key, scheme) => Err(format!("the host cannot verify {scheme:?} with {key:?}")),
        }
    }
}

/// One way of decrypting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecryptCase {
    pub(crate) name: &'static str,
    pub(crate) padding: DecryptPadding,
}

impl DecryptCase {
    /// The cases tried for RSA keys.
    pub(crate) fn all() -> Vec<DecryptCase> {
        let oaep = |hash| DecryptPadding::Oaep { hash, label: Vec::new() };
        vec![
            DecryptCase { name: "pkcs1", padding: DecryptPadding::Pkcs1 },
            DecryptCase { name: "oaep-sha1", padding: oaep(HashAlg::Sha1) },
            DecryptCase { name: "oaep-sha256", padding: oaep(HashAlg::Sha256) },
            DecryptCase { name: "raw", padding: DecryptPadding::None },
        ]
    }

    /// A plaintext and its cryptogram under `key`: 32 random bytes encrypted with the case's
    /// padding (RFC 8017 §7.1, §7.2), or for raw RSA a random block below the modulus, whole.
    pub(crate) fn encrypt(&self, key: &PublicKey) -> Result<(Vec<u8>, Vec<u8>), String> {
        let public = rsa_key(key)?;
        let mut rng = OsRng;
        let mut plain = vec![0u8; 32];
        rng.fill_bytes(&mut plain);
        let ct = match &self.padding {
            DecryptPadding::Pkcs1 => public.encrypt(&mut rng, rsa::Pkcs1v15Encrypt, &plain),
            DecryptPadding::Oaep { hash: HashAlg::Sha1, .. } => {
                public.encrypt(&mut rng, rsa::Oaep::new::<sha1::Sha1>(), &plain)
            }
            DecryptPadding::Oaep { hash: HashAlg::Sha256, .. } => {
                public.encrypt(&mut rng, rsa::Oaep::new::<sha2::Sha256>(), &plain)
            }
            DecryptPadding::Oaep { hash: HashAlg::Sha384, .. } => {
                public.encrypt(&mut rng, rsa::Oaep::new::<sha2::Sha384>(), &plain)
            }
            DecryptPadding::Oaep { hash: HashAlg::Sha512, .. } => {
                public.encrypt(&mut rng, rsa::Oaep::new::<sha2::Sha512>(), &plain)
            }
            DecryptPadding::None => {
                use rsa::traits::PublicKeyParts;
                let k = public.size();
                // 00 || random: below the modulus, whose top byte is not 0.
                plain = vec![0u8; k];
                rng.fill_bytes(plain.get_mut(1..).unwrap_or_default());
                let m = rsa::BigUint::from_bytes_be(&plain);
                let c = rsa::hazmat::rsa_encrypt(&public, &m).map_err(|e| e.to_string())?;
                let bytes = c.to_bytes_be();
                let mut out = vec![0u8; k.saturating_sub(bytes.len())];
                out.extend_from_slice(&bytes);
                Ok(out)
            }
        }
        .map_err(|e| e.to_string())?;
        Ok((plain, ct))
    }
}

fn rsa_key(key: &PublicKey) -> Result<rsa::RsaPublicKey, String> {
    match key {
        PublicKey::Rsa { n, e } => {
            rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(n), rsa::BigUint::from_bytes_be(e))
                .map_err(|e| e.to_string())
        }
        other => Err(format!("{other:?} is not an RSA key")),
    }
}

/// An ephemeral host key for ECDH on a curve.
pub(crate) enum Ephemeral {
    P256(p256::SecretKey),
    P384(p384::SecretKey),
}

impl std::fmt::Debug for Ephemeral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ephemeral(REDACTED)")
    }
}

impl Ephemeral {
    /// A fresh key on `curve` (P-256 or P-384).
    pub(crate) fn new(curve: Curve) -> Result<Self, String> {
        match curve {
            Curve::P256 => Ok(Ephemeral::P256(p256::SecretKey::random(&mut OsRng))),
            Curve::P384 => Ok(Ephemeral::P384(p384::SecretKey::random(&mut OsRng))),
            Curve::P521 => Err("the host does not do ECDH on P-521".into()),
        }
    }

    /// Its public key, to give the card.
    pub(crate) fn public(&self) -> PublicKey {
        match self {
            Ephemeral::P256(k) => {
                use p256::elliptic_curve::sec1::ToEncodedPoint;
                PublicKey::Ec {
                    curve: Curve::P256,
                    point: k.public_key().to_encoded_point(false).as_bytes().to_vec(),
                }
            }
            Ephemeral::P384(k) => {
                use p384::elliptic_curve::sec1::ToEncodedPoint;
                PublicKey::Ec {
                    curve: Curve::P384,
                    point: k.public_key().to_encoded_point(false).as_bytes().to_vec(),
                }
            }
        }
    }

    /// The shared secret x with the card's public key.
    pub(crate) fn shared(&self, card: &PublicKey) -> Result<Vec<u8>, String> {
        let PublicKey::Ec { point, .. } = card else {
            return Err("the card's key is not an EC key".into());
        };
        match self {
            Ephemeral::P256(k) => {
                let theirs = p256::PublicKey::from_sec1_bytes(point).map_err(|e| e.to_string())?;
                let shared = p256::ecdh::diffie_hellman(k.to_nonzero_scalar(), theirs.as_affine());
                Ok(shared.raw_secret_bytes().to_vec())
            }
            Ephemeral::P384(k) => {
                let theirs = p384::PublicKey::from_sec1_bytes(point).map_err(|e| e.to_string())?;
                let shared = p384::ecdh::diffie_hellman(k.to_nonzero_scalar(), theirs.as_affine());
                Ok(shared.raw_secret_bytes().to_vec())
            }
        }
    }
}

/// Whether the host can check keys of `algorithm` (RSA, P-256, P-384).
pub(crate) fn host_supports(algorithm: KeyAlgorithm) -> bool {
    !matches!(algorithm, KeyAlgorithm::Ec(Curve::P521))
}

/// A certificate (DER) for a card's public key, issued by a throwaway P-256 CA. The subject is
/// long on purpose: the certificate is over 255 bytes whatever the key, so writing and reading
/// it needs command chaining or extended length.
pub(crate) fn certificate_for(key: &PublicKey, cn: &str) -> Result<Vec<u8>, String> {
    certificate_with(key, cn, 0)
}

/// A certificate as [`certificate_for`] of at least `min_len` bytes (organisational unit
/// names pad the subject): bigger than a card's largest command, so that writing it needs
/// command chaining.
pub(crate) fn certificate_of_size(
    key: &PublicKey,
    cn: &str,
    min_len: usize,
) -> Result<Vec<u8>, String> {
    // Each unit adds about 80 bytes.
    let mut units = 0;
    loop {
        let der = certificate_with(key, cn, units)?;
        if der.len() >= min_len {
            return Ok(der);
        }
        units += (min_len - der.len()).div_ceil(80);
    }
}

fn certificate_with(key: &PublicKey, cn: &str, padding_units: usize) -> Result<Vec<u8>, String> {
    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    use x509_cert::der::{Decode, Encode};
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::SubjectPublicKeyInfoOwned;
    use x509_cert::time::Validity;
    let err = |e: &dyn std::fmt::Display| format!("issuing a test certificate: {e}");
    let spki_der = key.to_spki_der().map_err(|e| err(&e))?;
    let spki = SubjectPublicKeyInfoOwned::from_der(&spki_der).map_err(|e| err(&e))?;
    let ca = p256::ecdsa::SigningKey::random(&mut OsRng);
    let is_rsa = matches!(key, PublicKey::Rsa { .. });
    let profile = Profile::Leaf {
        issuer: Name::from_str("CN=scard conformance test CA,O=scard").map_err(|e| err(&e))?,
        enable_key_agreement: !is_rsa,
        enable_key_encipherment: is_rsa,
    };
    let validity = Validity::from_now(std::time::Duration::from_secs(3600)).map_err(|e| err(&e))?;
    let padding: String = (0..padding_units)
        .map(|i| {
            format!(",OU=padding unit {i:04} that makes this certificate as long as the test needs")
        })
        .collect();
    let subject = Name::from_str(&format!(
        "CN={cn},OU=a subject long enough that the certificate needs more than one short APDU{padding},O=scard conformance suite,C=US"
    ))
    .map_err(|e| err(&e))?;
    let mut serial = [0u8; 8];
    OsRng.fill_bytes(&mut serial);
    serial[0] &= 0x7F;
    let serial = SerialNumber::new(&serial).map_err(|e| err(&e))?;
    CertificateBuilder::new(profile, serial, validity, subject, spki, &ca)
        .map_err(|e| err(&e))?
        .build::<p256::ecdsa::DerSignature>()
        .map_err(|e| err(&e))?
        .to_der()
        .map_err(|e| err(&e))
}

/// A certificate for the card's key with what Windows logon wants: Smart Card Logon and Client
/// Authentication EKUs, digitalSignature + keyEncipherment, a UPN (UTF8String otherName,
/// MS-PKCA §3.1.5.2.1.1), signed by a P-256 CA key made for this run.
pub(crate) fn logon_certificate(key: &PublicKey, upn: &str) -> Result<Vec<u8>, String> {
    use der::{Decode, Encode};
    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    use x509_cert::ext::pkix::name::{GeneralName, OtherName};
    use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::SubjectPublicKeyInfoOwned;
    use x509_cert::time::Validity;
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let spki_der = key.to_spki_der().map_err(|x| e(&x))?;
    let spki = SubjectPublicKeyInfoOwned::from_der(&spki_der).map_err(|x| e(&x))?;
    let ca = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let issuer = Name::from_str("CN=scard demo CA").map_err(|x| e(&x))?;
    let subject = Name::from_str("CN=scard demo user").map_err(|x| e(&x))?;
    let validity =
        Validity::from_now(std::time::Duration::from_secs(30 * 86_400)).map_err(|x| e(&x))?;
    let serial = SerialNumber::new(&[0x01, 0x5C, 0xAD]).map_err(|x| e(&x))?;
    let mut builder = CertificateBuilder::new(
        // Leaf: basicConstraints cA FALSE, keyUsage digitalSignature + keyEncipherment, key ids.
        Profile::Leaf { issuer, enable_key_agreement: false, enable_key_encipherment: true },
        serial,
        validity,
        subject,
        spki,
        &ca,
    )
    .map_err(|x| e(&x))?;
    let smart_card_logon = der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.20.2.2");
    let client_auth = der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");
    let upn_oid = der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.20.2.3");
    builder
        .add_extension(&ExtendedKeyUsage(vec![smart_card_logon, client_auth]))
        .map_err(|x| e(&x))?;
    let upn = der::asn1::Utf8StringRef::new(upn).map_err(|x| e(&x))?;
    let value = der::Any::encode_from(&upn).map_err(|x| e(&x))?;
    builder
        .add_extension(&SubjectAltName(vec![GeneralName::OtherName(OtherName {
            type_id: upn_oid,
            value,
        })]))
        .map_err(|x| e(&x))?;
    let cert = builder.build::<p256::ecdsa::DerSignature>().map_err(|x| e(&x))?;
    cert.to_der().map_err(|x| e(&x))
}

/// "subject, valid from .. to ..., issued by ..." of a DER certificate.
pub(crate) fn certificate_subject(der: &[u8]) -> Result<String, String> {
    use x509_cert::der::Decode;
    let cert =
        x509_cert::Certificate::from_der(der).map_err(|e| format!("not a DER certificate: {e}"))?;
    let tbs = &cert.tbs_certificate;
    Ok(format!(
        "{}, valid {} .. {}, issued by {}",
        tbs.subject, tbs.validity.not_before, tbs.validity.not_after, tbs.issuer
    ))
}

/// The public key of a DER certificate.
pub(crate) fn certificate_key(der: &[u8]) -> Result<PublicKey, String> {
    use x509_cert::der::{Decode, Encode};
    let cert =
        x509_cert::Certificate::from_der(der).map_err(|e| format!("not a DER certificate: {e}"))?;
    let spki = cert.tbs_certificate.subject_public_key_info.to_der().map_err(|e| e.to_string())?;
    PublicKey::from_spki_der(&spki).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_checks_its_own_rsa_and_ecdsa() {
        use rsa::traits::PublicKeyParts;
        let private = rsa::RsaPrivateKey::new(&mut OsRng, 1024).unwrap();
        let key = PublicKey::rsa(&private.n().to_bytes_be(), &private.e().to_bytes_be());
        let alg = key.algorithm().unwrap();
        for case in SignCase::all(alg) {
            let input = case.input(alg).unwrap();
            let sig = match case.scheme {
                Scheme::Pkcs1 => private
                    .sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &input)
                    .unwrap_or_default(),
                _ => continue,
            };
            if case.hash == HashAlg::Sha256 {
                case.verify(&key, &sig).unwrap();
                assert!(case.verify(&key, &[0u8; 128]).is_err());
            }
        }
        for case in DecryptCase::all() {
            let (plain, ct) = case.encrypt(&key).unwrap();
            let back = match &case.padding {
                DecryptPadding::Pkcs1 => private.decrypt(rsa::Pkcs1v15Encrypt, &ct).unwrap(),
                DecryptPadding::Oaep { hash: HashAlg::Sha1, .. } => {
                    private.decrypt(rsa::Oaep::new::<sha1::Sha1>(), &ct).unwrap()
                }
                DecryptPadding::Oaep { .. } => {
                    private.decrypt(rsa::Oaep::new::<sha2::Sha256>(), &ct).unwrap()
                }
                DecryptPadding::None => {
                    let c = rsa::BigUint::from_bytes_be(&ct);
                    let m = rsa::hazmat::rsa_decrypt_and_check(&private, None::<&mut OsRng>, &c)
                        .unwrap();
                    let mut out = vec![0u8; 128 - m.to_bytes_be().len()];
                    out.extend_from_slice(&m.to_bytes_be());
                    out
                }
            };
            assert_eq!(back, plain, "{}", case.name);
        }
        let cert = certificate_for(&key, "test").unwrap();
        assert!(cert.len() > 255);
        assert_eq!(certificate_key(&cert).unwrap(), key);
        let big = certificate_of_size(&key, "test", 3000).unwrap();
        assert!((3000..3300).contains(&big.len()), "{}", big.len());
        assert_eq!(certificate_key(&big).unwrap(), key);
    }

    #[test]
    fn host_ecdh_agrees_with_itself() {
        let a = Ephemeral::new(Curve::P256).unwrap();
        let b = Ephemeral::new(Curve::P256).unwrap();
        assert_eq!(a.shared(&b.public()).unwrap(), b.shared(&a.public()).unwrap());
        assert!(Ephemeral::new(Curve::P521).is_err());
    }
}
