//! On-card key pairs and their private-key operations, shared by the simulated cards: RSA
//! (raw, PKCS#1 v1.5 signature of a given DigestInfo, PKCS#1 v1.5 decryption), ECDSA on a
//! pre-hashed input (P-256, P-384), and ECDH. Private keys are zeroized on drop (the RustCrypto
//! types do it) and never leave this module except as the state file's PKCS#8.

use p256::elliptic_curve::sec1::ToEncodedPoint;
use pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Encrypt, Pkcs1v15Sign, RsaPrivateKey};
use serde::{Deserialize, Serialize};
use signature::hazmat::PrehashSigner;
use zeroize::Zeroizing;

use crate::SimRng;

/// Errors of key operations; a card maps them to status words.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Key generation failed.
    #[error("key generation failed: {0}")]
    Generate(String),
    /// A stored key could not be decoded.
    #[error("stored key cannot be decoded: {0}")]
    Encoding(String),
    /// The input has the wrong length for the operation.
    #[error("input of {got} bytes, the operation needs {expected}")]
    InputLength { expected: usize, got: usize },
    /// The input is not valid for the operation (an RSA block not below the modulus, a bad
    /// padding, a point not on the curve).
    #[error("invalid input for {0}")]
    InvalidInput(&'static str),
    /// The operation does not apply to this kind of key.
    #[error("{op} is not possible with a {alg:?} key")]
    WrongAlgorithm { op: &'static str, alg: KeyAlgorithm },
}

/// Key algorithms the simulated cards generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// RSA with a 2048-bit modulus, e = 65537.
    Rsa2048,
    /// RSA with a 3072-bit modulus.
    Rsa3072,
    /// RSA with a 4096-bit modulus.
    Rsa4096,
    /// ECC on NIST P-256 (secp256r1).
    P256,
    /// ECC on NIST P-384 (secp384r1).
    P384,
}

impl KeyAlgorithm {
    /// Modulus or field size in bits.
    pub fn bits(self) -> usize {
        match self {
            KeyAlgorithm::Rsa2048 => 2048,
            KeyAlgorithm::Rsa3072 => 3072,
            KeyAlgorithm::Rsa4096 => 4096,
            KeyAlgorithm::P256 => 256,
            KeyAlgorithm::P384 => 384,
        }
    }

    /// Whether this is an RSA algorithm.
    pub fn is_rsa(self) -> bool {
        matches!(self, KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096)
    }

    /// Bytes of an RSA block or of one EC coordinate.
    pub fn byte_len(self) -> usize {
        self.bits() / 8
    }
}

/// The public half, as cards return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA modulus and public exponent, big-endian without leading zeros.
    Rsa {
        /// Modulus n.
        n: Vec<u8>,
        /// Public exponent e.
        e: Vec<u8>,
    },
    /// An uncompressed SEC1 point 04 || X || Y.
    Ec {
        /// The curve.
        alg: KeyAlgorithm,
        /// The point.
        point: Vec<u8>,
    },
}

/// A private key held by a simulated card.
#[derive(Clone)]
pub enum PrivateKey {
    /// RSA.
    Rsa(Box<RsaPrivateKey>),
    /// NIST P-256.
    P256(p256::SecretKey),
    /// NIST P-384.
    P384(p384::SecretKey),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({:?}, REDACTED)", self.algorithm())
    }
}

impl PrivateKey {
    /// Generates a key pair.
    pub fn generate(alg: KeyAlgorithm, rng: &mut SimRng) -> Result<Self, KeyError> {
        match alg {
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                RsaPrivateKey::new(rng, alg.bits())
                    .map(|k| PrivateKey::Rsa(Box::new(k)))
                    .map_err(|e| KeyError::Generate(e.to_string()))
            }
            KeyAlgorithm::P256 => Ok(PrivateKey::P256(p256::SecretKey::random(rng))),
            KeyAlgorithm::P384 => Ok(PrivateKey::P384(p384::SecretKey::random(rng))),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            PrivateKey::Rsa(k) => match k.size() * 8 {
                3072 => KeyAlgorithm::Rsa3072,
                4096 => KeyAlgorithm::Rsa4096,
                _ => KeyAlgorithm::Rsa2048,
            },
            PrivateKey::P256(_) => KeyAlgorithm::P256,
            PrivateKey::P384(_) => KeyAlgorithm::P384,
        }
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        match self {
            PrivateKey::Rsa(k) => PublicKey::Rsa { n: k.n().to_bytes_be(), e: k.e().to_bytes_be() },
            PrivateKey::P256(k) => PublicKey::Ec {
                alg: KeyAlgorithm::P256,
                point: k.public_key().to_encoded_point(false).as_bytes().to_vec(),
            },
            PrivateKey::P384(k) => PublicKey::Ec {
                alg: KeyAlgorithm::P384,
                point: k.public_key().to_encoded_point(false).as_bytes().to_vec(),
            },
        }
    }

    fn rsa(&self, op: &'static str) -> Result<&RsaPrivateKey, KeyError> {
        match self {
            PrivateKey::Rsa(k) => Ok(k),
            _ => Err(KeyError::WrongAlgorithm { op, alg: self.algorithm() }),
        }
    }

    /// The raw RSA private-key operation on a block of exactly the modulus length (PIV
    /// GENERAL AUTHENTICATE: the host pads). The result is left-padded to the modulus length.
    pub fn rsa_raw(&self, input: &[u8], rng: &mut SimRng) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let key = self.rsa("raw RSA")?;
        let k = key.size();
        if input.len() != k {
            return Err(KeyError::InputLength { expected: k, got: input.len() });
        }
        let c = BigUint::from_bytes_be(input);
        if &c >= key.n() {
            return Err(KeyError::InvalidInput("raw RSA (block not below the modulus)"));
        }
        let m = rsa::hazmat::rsa_decrypt_and_check(key, Some(rng), &c)
            .map_err(|_| KeyError::InvalidInput("raw RSA"))?;
        let bytes = Zeroizing::new(m.to_bytes_be());
        let mut out = Zeroizing::new(vec![0u8; k]);
        let start = k.saturating_sub(bytes.len());
        if let Some(dst) = out.get_mut(start..) {
            dst.copy_from_slice(bytes.get(..k - start).unwrap_or_default());
        }
        Ok(out)
    }

    /// RSASSA-PKCS1-v1_5 over an encoded DigestInfo given by the host (RFC 8017 §8.2.1 with
    /// the EMSA encoding done by the host, as OpenPGP PSO:CDS and GIDS expect).
    pub fn rsa_sign_pkcs1(&self, digest_info: &[u8]) -> Result<Vec<u8>, KeyError> {
        let key = self.rsa("RSA PKCS#1 signature")?;
        key.sign(Pkcs1v15Sign::new_unprefixed(), digest_info)
            .map_err(|_| KeyError::InvalidInput("RSA PKCS#1 signature (input too long)"))
    }

    /// RSAES-PKCS1-v1_5 decryption (RFC 8017 §7.2.2).
    pub fn rsa_decrypt_pkcs1(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let key = self.rsa("RSA PKCS#1 decryption")?;
        key.decrypt(Pkcs1v15Encrypt, ciphertext)
            .map(Zeroizing::new)
            .map_err(|_| KeyError::InvalidInput("RSA PKCS#1 decryption"))
    }

    /// ECDSA on a pre-hashed input (FIPS 186-4 §6.4; the hash is truncated to the group
    /// order length), deterministic per RFC 6979. Returns r || s, each the field length.
    pub fn ecdsa_sign_raw(&self, hash: &[u8]) -> Result<Vec<u8>, KeyError> {
        let bad = |_| KeyError::InvalidInput("ECDSA (hash too short)");
        match self {
            PrivateKey::P256(k) => {
                let sig: p256::ecdsa::Signature =
                    p256::ecdsa::SigningKey::from(k).sign_prehash(hash).map_err(bad)?;
                Ok(sig.to_bytes().to_vec())
            }
            PrivateKey::P384(k) => {
                let sig: p384::ecdsa::Signature =
                    p384::ecdsa::SigningKey::from(k).sign_prehash(hash).map_err(bad)?;
                Ok(sig.to_bytes().to_vec())
            }
            PrivateKey::Rsa(_) => {
                Err(KeyError::WrongAlgorithm { op: "ECDSA", alg: self.algorithm() })
            }
        }
    }

    /// ECDSA as a DER `Ecdsa-Sig-Value` SEQUENCE { r INTEGER, s INTEGER } (what PIV returns).
    pub fn ecdsa_sign_der(&self, hash: &[u8]) -> Result<Vec<u8>, KeyError> {
        let bad = |_| KeyError::InvalidInput("ECDSA (hash too short)");
        match self {
            PrivateKey::P256(k) => {
                let sig: p256::ecdsa::Signature =
                    p256::ecdsa::SigningKey::from(k).sign_prehash(hash).map_err(bad)?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            PrivateKey::P384(k) => {
                let sig: p384::ecdsa::Signature =
                    p384::ecdsa::SigningKey::from(k).sign_prehash(hash).map_err(bad)?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            PrivateKey::Rsa(_) => {
                Err(KeyError::WrongAlgorithm { op: "ECDSA", alg: self.algorithm() })
            }
        }
    }

    /// ECDH (SP 800-56A §5.7.1.2): the x-coordinate of d * Q for the peer's SEC1 point Q.
    pub fn ecdh(&self, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let bad = |_| KeyError::InvalidInput("ECDH (not a point on the curve)");
        match self {
            PrivateKey::P256(k) => {
                let peer = p256::PublicKey::from_sec1_bytes(peer_point).map_err(bad)?;
                let shared = p256::ecdh::diffie_hellman(k.to_nonzero_scalar(), peer.as_affine());
                Ok(Zeroizing::new(shared.raw_secret_bytes().to_vec()))
            }
            PrivateKey::P384(k) => {
                let peer = p384::PublicKey::from_sec1_bytes(peer_point).map_err(bad)?;
                let shared = p384::ecdh::diffie_hellman(k.to_nonzero_scalar(), peer.as_affine());
                Ok(Zeroizing::new(shared.raw_secret_bytes().to_vec()))
            }
            PrivateKey::Rsa(_) => {
                Err(KeyError::WrongAlgorithm { op: "ECDH", alg: self.algorithm() })
            }
        }
    }

    /// PKCS#8 DER of the private key (for the state file).
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let doc = match self {
            PrivateKey::Rsa(k) => k.to_pkcs8_der(),
            PrivateKey::P256(k) => k.to_pkcs8_der(),
            PrivateKey::P384(k) => k.to_pkcs8_der(),
        }
        .map_err(|e| KeyError::Encoding(e.to_string()))?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    /// Decodes what [`PrivateKey::to_pkcs8_der`] wrote.
    pub fn from_pkcs8_der(alg: KeyAlgorithm, der: &[u8]) -> Result<Self, KeyError> {
        let bad = |e: pkcs8::Error| KeyError::Encoding(e.to_string());
        let key = match alg {
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                PrivateKey::Rsa(Box::new(RsaPrivateKey::from_pkcs8_der(der).map_err(bad)?))
            }
            KeyAlgorithm::P256 => {
                PrivateKey::P256(p256::SecretKey::from_pkcs8_der(der).map_err(bad)?)
            }
            KeyAlgorithm::P384 => {
                PrivateKey::P384(p384::SecretKey::from_pkcs8_der(der).map_err(bad)?)
            }
        };
        if key.algorithm() != alg {
            return Err(KeyError::Encoding(format!(
                "stored key is {:?}, not {alg:?}",
                key.algorithm()
            )));
        }
        Ok(key)
    }
}

/// A key as stored in a state file: algorithm and PKCS#8 DER in hex.
#[derive(Serialize, Deserialize)]
pub struct StoredKey {
    alg: KeyAlgorithm,
    #[serde(with = "crate::state::hex_bytes")]
    pkcs8: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoredKey({:?}, REDACTED)", self.alg)
    }
}

impl StoredKey {
    /// Encodes a key for the state file.
    pub fn new(key: &PrivateKey) -> Result<Self, KeyError> {
        Ok(Self { alg: key.algorithm(), pkcs8: key.to_pkcs8_der()? })
    }

    /// Decodes the key.
    pub fn key(&self) -> Result<PrivateKey, KeyError> {
        PrivateKey::from_pkcs8_der(self.alg, &self.pkcs8)
    }
}

/// `#[serde(with = "crate::keys::stored")]` for an `Option<PrivateKey>` field.
pub mod stored {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{PrivateKey, StoredKey};

    /// Serializes as `null` or a [`StoredKey`].
    pub fn serialize<S: Serializer>(key: &Option<PrivateKey>, s: S) -> Result<S::Ok, S::Error> {
        let stored = match key {
            Some(k) => Some(StoredKey::new(k).map_err(serde::ser::Error::custom)?),
            None => None,
        };
        stored.serialize(s)
    }

    /// Deserializes what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PrivateKey>, D::Error> {
        match Option::<StoredKey>::deserialize(d)? {
            Some(stored) => stored.key().map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::RsaPublicKey;
    use sha2::{Digest, Sha256};
    use signature::hazmat::PrehashVerifier;

    #[test]
    fn rsa_operations_verify_on_the_host() {
        let mut rng = SimRng::from_seed(1);
        let key = PrivateKey::generate(KeyAlgorithm::Rsa2048, &mut rng).unwrap();
        let PublicKey::Rsa { n, e } = key.public() else { panic!() };
        let public =
            RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e)).unwrap();
        let digest = Sha256::digest(b"hello");
        // PKCS#1 v1.5 with the SHA-256 DigestInfo prefix (RFC 8017 §9.2 note 1).
        let mut info = vec![
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ];
        info.extend_from_slice(&digest);
        let sig = key.rsa_sign_pkcs1(&info).unwrap();
        public.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig).unwrap();
        // Raw: the host pads, the card exponentiates.
        let mut block = vec![0x00, 0x01];
        block.resize(256 - info.len() - 1, 0xFF);
        block.push(0x00);
        block.extend_from_slice(&info);
        let raw = key.rsa_raw(&block, &mut rng).unwrap();
        assert_eq!(raw.as_slice(), sig.as_slice());
        assert!(matches!(key.rsa_raw(&block[1..], &mut rng), Err(KeyError::InputLength { .. })));
        assert!(matches!(key.rsa_raw(&[0xFF; 256], &mut rng), Err(KeyError::InvalidInput(_))));
        // Decryption round trip.
        let ct = public.encrypt(&mut rng, Pkcs1v15Encrypt, b"secret").unwrap();
        assert_eq!(key.rsa_decrypt_pkcs1(&ct).unwrap().as_slice(), b"secret");
        // State round trip.
        let again = PrivateKey::from_pkcs8_der(KeyAlgorithm::Rsa2048, &key.to_pkcs8_der().unwrap())
            .unwrap();
        assert_eq!(again.public(), key.public());
        assert!(key.ecdh(&[4; 65]).is_err());
    }

    #[test]
    fn ec_operations_verify_on_the_host() {
        let mut rng = SimRng::from_seed(2);
        for alg in [KeyAlgorithm::P256, KeyAlgorithm::P384] {
            let key = PrivateKey::generate(alg, &mut rng).unwrap();
            let other = PrivateKey::generate(alg, &mut rng).unwrap();
            let PublicKey::Ec { point, .. } = key.public() else { panic!() };
            let PublicKey::Ec { point: other_point, .. } = other.public() else { panic!() };
            assert_eq!(point.len(), 1 + 2 * alg.byte_len());
            let hash = Sha256::digest(b"data");
            let raw = key.ecdsa_sign_raw(&hash).unwrap();
            let der = key.ecdsa_sign_der(&hash).unwrap();
            assert_eq!(raw.len(), 2 * alg.byte_len());
            match alg {
                KeyAlgorithm::P256 => {
                    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
                    vk.verify_prehash(&hash, &p256::ecdsa::Signature::from_slice(&raw).unwrap())
                        .unwrap();
                    vk.verify_prehash(&hash, &p256::ecdsa::Signature::from_der(&der).unwrap())
                        .unwrap();
                }
                _ => {
                    let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
                    vk.verify_prehash(&hash, &p384::ecdsa::Signature::from_slice(&raw).unwrap())
                        .unwrap();
                    vk.verify_prehash(&hash, &p384::ecdsa::Signature::from_der(&der).unwrap())
                        .unwrap();
                }
            }
            assert_eq!(
                key.ecdh(&other_point).unwrap().as_slice(),
                other.ecdh(&point).unwrap().as_slice()
            );
            assert!(key.ecdh(&[4; 3]).is_err());
            let again = PrivateKey::from_pkcs8_der(alg, &key.to_pkcs8_der().unwrap()).unwrap();
            assert_eq!(again.public(), key.public());
            assert!(key.rsa_sign_pkcs1(&[1]).is_err());
        }
    }
}
