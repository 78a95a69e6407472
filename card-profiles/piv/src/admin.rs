//! The PIV Card Application Administration Key (key reference 9B: SP 800-73-4 Pt 1 §3.5,
//! Table 4a), its block cipher (SP 800-78-4 Table 6-2: 03 3DES, 08 AES-128, 0A AES-192, 0C
//! AES-256) and the host side of its authentication (SP 800-73-4 Pt 2 Appendix A.1 / A.2).

use cipher::generic_array::GenericArray;
use cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use scard_minidriver::{CardError, Result};
use zeroize::Zeroizing;

/// The management key reference.
pub(crate) const KEY_REF: u8 = 0x9B;

/// The block cipher of the management key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// 03: three-key Triple DES.
    Tdes,
    /// 08: AES-128.
    Aes128,
    /// 0A: AES-192.
    Aes192,
    /// 0C: AES-256.
    Aes256,
}

impl Algorithm {
    /// The identifier (GENERAL AUTHENTICATE P1).
    pub fn id(self) -> u8 {
        match self {
            Algorithm::Tdes => 0x03,
            Algorithm::Aes128 => 0x08,
            Algorithm::Aes192 => 0x0A,
            Algorithm::Aes256 => 0x0C,
        }
    }

    /// The algorithm of an identifier.
    pub fn from_id(id: u8) -> Option<Self> {
        [Algorithm::Tdes, Algorithm::Aes128, Algorithm::Aes192, Algorithm::Aes256]
            .into_iter()
            .find(|a| a.id() == id)
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Algorithm::Tdes | Algorithm::Aes192 => 24,
            Algorithm::Aes128 => 16,
            Algorithm::Aes256 => 32,
        }
    }

    /// Block length: the length of witnesses, challenges and responses.
    pub fn block_len(self) -> usize {
        match self {
            Algorithm::Tdes => 8,
            _ => 16,
        }
    }

    /// The algorithms a key of `len` bytes may be for, the likelier first: a 24-byte key is
    /// 3DES (the SP 800-73-4 default and what cards ship with) or AES-192 (YubiKey 5.7's
    /// default algorithm for the same default bytes).
    pub fn for_key_len(len: usize) -> Vec<Algorithm> {
        match len {
            16 => vec![Algorithm::Aes128],
            24 => vec![Algorithm::Tdes, Algorithm::Aes192],
            32 => vec![Algorithm::Aes256],
            _ => Vec::new(),
        }
    }

    /// Encrypts one block with `key` (ECB, one block).
    pub fn encrypt(self, key: &[u8], block: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.run(key, block, true)
    }

    /// Decrypts one block with `key`.
    pub fn decrypt(self, key: &[u8], block: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.run(key, block, false)
    }

    fn run(self, key: &[u8], block: &[u8], encrypt: bool) -> Result<Zeroizing<Vec<u8>>> {
        if key.len() != self.key_len() || block.len() != self.block_len() {
            return Err(CardError::InvalidInput {
                what: "management key",
                reason: format!(
                    "{} key bytes and a {}-byte block; {self:?} needs {} and {}",
                    key.len(),
                    block.len(),
                    self.key_len(),
                    self.block_len()
                ),
            });
        }
        let mut buf = Zeroizing::new(block.to_vec());
        let done = match self {
            Algorithm::Tdes => cipher_block::<des::TdesEde3>(key, &mut buf, encrypt),
            Algorithm::Aes128 => cipher_block::<aes::Aes128>(key, &mut buf, encrypt),
            Algorithm::Aes192 => cipher_block::<aes::Aes192>(key, &mut buf, encrypt),
            Algorithm::Aes256 => cipher_block::<aes::Aes256>(key, &mut buf, encrypt),
        };
        done.then_some(buf).ok_or_else(|| CardError::Crypto {
            operation: "management key authentication",
            reason: format!("{self:?} cipher refused the key"),
        })
    }
}

fn cipher_block<C: BlockEncrypt + BlockDecrypt + KeyInit>(
    key: &[u8],
    buf: &mut [u8],
    encrypt: bool,
) -> bool {
    let Ok(cipher) = C::new_from_slice(key) else { return false };
    if buf.len() != C::block_size() {
        return false;
    }
    let block = GenericArray::from_mut_slice(buf);
    if encrypt {
        cipher.encrypt_block(block);
    } else {
        cipher.decrypt_block(block);
    }
    true
}

/// The algorithm in a YubiKey GET METADATA answer for 9B (tag 01, one byte: Yubico's PIV
/// extension, firmware 5.3 and later). `None` when the answer does not say (piv-authenticator
/// answers 9B with nothing).
pub(crate) fn algorithm_from_metadata(data: &[u8]) -> Option<Algorithm> {
    let items = crate::objects::children("reading the management key metadata", data).ok()?;
    match crate::objects::child(&items, 0x01) {
        Some([id]) => Algorithm::from_id(*id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scard_iso7816::hex::decode_lenient as h;

    #[test]
    fn known_answers() {
        // FIPS 197 Appendix C.1 (AES-128) and C.3 (AES-256).
        let pt = h("00112233445566778899aabbccddeeff").unwrap();
        let k128 = h("000102030405060708090a0b0c0d0e0f").unwrap();
        let ct = Algorithm::Aes128.encrypt(&k128, &pt).unwrap();
        assert_eq!(ct.as_slice(), h("69c4e0d86a7b0430d8cdb78070b4c55a").unwrap().as_slice());
        assert_eq!(Algorithm::Aes128.decrypt(&k128, &ct).unwrap().as_slice(), pt.as_slice());
        let k256 = h("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f").unwrap();
        let ct = Algorithm::Aes256.encrypt(&k256, &pt).unwrap();
        assert_eq!(ct.as_slice(), h("8ea2b7ca516745bfeafc49904b496089").unwrap().as_slice());
        // 3DES with K1 = K2 = K3 is DES: FIPS 81's "Now is t" example.
        let k = h("0123456789ABCDEF 0123456789ABCDEF 0123456789ABCDEF").unwrap();
        let ct = Algorithm::Tdes.encrypt(&k, &h("4E6F772069732074").unwrap()).unwrap();
        assert_eq!(ct.as_slice(), h("3FA40E8A984D4815").unwrap().as_slice());
        assert!(Algorithm::Tdes.encrypt(&k, &[0; 16]).is_err());
        assert!(Algorithm::Aes256.encrypt(&k, &pt).is_err());
    }

    #[test]
    fn ids_lengths_metadata() {
        for a in [Algorithm::Tdes, Algorithm::Aes128, Algorithm::Aes192, Algorithm::Aes256] {
            assert_eq!(Algorithm::from_id(a.id()), Some(a));
            assert!(Algorithm::for_key_len(a.key_len()).contains(&a));
        }
        assert!(Algorithm::for_key_len(20).is_empty());
        // Yubico GET METADATA for 9B: 01 algorithm, 02 policy, 05 default.
        assert_eq!(
            algorithm_from_metadata(&h("01 01 0A 02 02 00 01 05 01 01").unwrap()),
            Some(Algorithm::Aes192)
        );
        assert_eq!(algorithm_from_metadata(&[]), None);
        assert_eq!(algorithm_from_metadata(&h("01 02 0A 00").unwrap()), None);
    }
}
