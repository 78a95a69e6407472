//! The PIV Card Application Administration Key (key reference 9B) and its block cipher
//! (SP 800-73-4 Pt 1 §3.5 and Table 4a; algorithm identifiers of SP 800-78-4 Table 6-2).

use cipher::generic_array::GenericArray;
use cipher::{BlockEncrypt, KeyInit};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::keys::KeyError;
use crate::state::hex_bytes;

/// The 3DES management key of a new card (the value real PIV cards and YubiKeys ship with).
pub const DEFAULT_MANAGEMENT_KEY: [u8; 24] =
    [1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8];

/// The algorithm of the management key, by its SP 800-78-4 Table 6-2 identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ManagementAlgorithm {
    /// 03: three-key Triple DES (TDEA), 8-byte blocks.
    Tdes,
    /// 08: AES-128.
    Aes128,
    /// 0A: AES-192.
    Aes192,
    /// 0C: AES-256.
    Aes256,
}

impl ManagementAlgorithm {
    /// The algorithm identifier (GENERAL AUTHENTICATE P1).
    pub fn id(self) -> u8 {
        match self {
            ManagementAlgorithm::Tdes => 0x03,
            ManagementAlgorithm::Aes128 => 0x08,
            ManagementAlgorithm::Aes192 => 0x0A,
            ManagementAlgorithm::Aes256 => 0x0C,
        }
    }

    /// The algorithm with identifier `id`.
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            0x03 => Some(ManagementAlgorithm::Tdes),
            0x08 => Some(ManagementAlgorithm::Aes128),
            0x0A => Some(ManagementAlgorithm::Aes192),
            0x0C => Some(ManagementAlgorithm::Aes256),
            _ => None,
        }
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            ManagementAlgorithm::Tdes | ManagementAlgorithm::Aes192 => 24,
            ManagementAlgorithm::Aes128 => 16,
            ManagementAlgorithm::Aes256 => 32,
        }
    }

    /// Block length in bytes: the length of witnesses and challenges (SP 800-73-4 Pt 2
    /// Appendix A.1).
    pub fn block_len(self) -> usize {
        match self {
            ManagementAlgorithm::Tdes => 8,
            _ => 16,
        }
    }
}

/// A management key: algorithm and secret, zeroized on drop, redacted in `Debug`.
#[derive(Clone, Serialize, Deserialize)]
pub struct ManagementKey {
    algorithm: ManagementAlgorithm,
    #[serde(with = "hex_bytes")]
    key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ManagementKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ManagementKey({:?}, REDACTED)", self.algorithm)
    }
}

impl ManagementKey {
    /// A key of `algorithm`; `key` must have the algorithm's key length.
    pub fn new(algorithm: ManagementAlgorithm, key: &[u8]) -> Result<Self, KeyError> {
        if key.len() != algorithm.key_len() {
            return Err(KeyError::InputLength { expected: algorithm.key_len(), got: key.len() });
        }
        Ok(Self { algorithm, key: Zeroizing::new(key.to_vec()) })
    }

    /// [`DEFAULT_MANAGEMENT_KEY`], 3DES.
    pub fn default_key() -> Self {
        Self {
            algorithm: ManagementAlgorithm::Tdes,
            key: Zeroizing::new(DEFAULT_MANAGEMENT_KEY.to_vec()),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> ManagementAlgorithm {
        self.algorithm
    }

    /// Whether the stored key has the length its algorithm needs (a state file could say
    /// otherwise).
    pub(crate) fn is_consistent(&self) -> bool {
        self.key.len() == self.algorithm.key_len()
    }

    /// Encrypts one block (ECB, no padding). `None` when `block` is not one block long.
    pub(crate) fn encrypt_block(&self, block: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if block.len() != self.algorithm.block_len() {
            return None;
        }
        let mut buf = Zeroizing::new(block.to_vec());
        let key = self.key.as_slice();
        match self.algorithm {
            ManagementAlgorithm::Tdes => encrypt_with::<des::TdesEde3>(key, &mut buf)?,
            ManagementAlgorithm::Aes128 => encrypt_with::<aes::Aes128>(key, &mut buf)?,
            ManagementAlgorithm::Aes192 => encrypt_with::<aes::Aes192>(key, &mut buf)?,
            ManagementAlgorithm::Aes256 => encrypt_with::<aes::Aes256>(key, &mut buf)?,
        }
        Some(buf)
    }
}

/// Encrypts `buf` (exactly one block of `C`) in place.
fn encrypt_with<C: BlockEncrypt + KeyInit>(key: &[u8], buf: &mut [u8]) -> Option<()> {
    let cipher = C::new_from_slice(key).ok()?;
    if buf.len() != C::block_size() {
        return None;
    }
    cipher.encrypt_block(GenericArray::from_mut_slice(buf));
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use scard_iso7816::hex::decode_lenient as h;

    #[test]
    fn known_answers() {
        // FIPS 197 Appendix C.1 / C.2 / C.3 (AES-128/192/256 example vectors).
        let pt = h("00112233445566778899aabbccddeeff").unwrap();
        let cases = [
            (
                ManagementAlgorithm::Aes128,
                "000102030405060708090a0b0c0d0e0f",
                "69c4e0d86a7b0430d8cdb78070b4c55a",
            ),
            (
                ManagementAlgorithm::Aes192,
                "000102030405060708090a0b0c0d0e0f1011121314151617",
                "dda97ca4864cdfe06eaf70a0ec0d7191",
            ),
            (
                ManagementAlgorithm::Aes256,
                "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                "8ea2b7ca516745bfeafc49904b496089",
            ),
        ];
        for (alg, key, ct) in cases {
            let key = ManagementKey::new(alg, &h(key).unwrap()).unwrap();
            assert_eq!(key.encrypt_block(&pt).unwrap().as_slice(), h(ct).unwrap().as_slice());
        }
        // Triple DES with K1 = K2 = K3 is single DES: the FIPS 81 / "Now is t" example
        // (key 0123456789ABCDEF, plaintext 4E6F772069732074, ciphertext 3FA40E8A984D4815).
        let key = ManagementKey::new(
            ManagementAlgorithm::Tdes,
            &h("0123456789ABCDEF 0123456789ABCDEF 0123456789ABCDEF").unwrap(),
        )
        .unwrap();
        assert_eq!(
            key.encrypt_block(&h("4E6F772069732074").unwrap()).unwrap().as_slice(),
            h("3FA40E8A984D4815").unwrap().as_slice()
        );
        assert!(key.encrypt_block(&[0; 16]).is_none());
    }

    #[test]
    fn lengths_ids_and_redaction() {
        assert!(ManagementKey::new(ManagementAlgorithm::Aes256, &[0; 24]).is_err());
        for alg in [
            ManagementAlgorithm::Tdes,
            ManagementAlgorithm::Aes128,
            ManagementAlgorithm::Aes192,
            ManagementAlgorithm::Aes256,
        ] {
            assert_eq!(ManagementAlgorithm::from_id(alg.id()), Some(alg));
        }
        assert_eq!(ManagementAlgorithm::from_id(0x07), None);
        let key = ManagementKey::new(ManagementAlgorithm::Aes128, &[0x5A; 16]).unwrap();
        assert!(!format!("{key:?}").contains("5A"));
    }
}
