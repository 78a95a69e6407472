//! The host side of GIDS administrator authentication with the 24-byte 3DES admin key (key
//! reference 80), by GENERAL AUTHENTICATE (GIDS 1.0 "card administration key"; the host's
//! computations are those of the Smart Card Minidriver Specification v7 §4.4 challenge-
//! response, as the Windows GIDS minidriver and OpenSC's gids_authenticate_admin perform them):
//!
//! - mutual: host → card `7C 12 81 10 R1` (16 random bytes); card → host `7C 12 81 10 R2`;
//!   host → card `7C 2A 82 28 E(R2 || R1 || Z1)` where Z1 is 7 random bytes and 80; card →
//!   host `7C 2A 82 28 E(R1 || R2 || Z2)`, which the host checks.
//! - external (the minidriver's CardGetChallenge / CardAuthenticateChallenge): host → card
//!   `7C 02 81 00`; card → host `7C 0A 81 08 R2`; host → card `7C 0A 82 08 E(R2)`.
//!
//! E is three-key 3DES in CBC mode with a zero IV and no padding. The minidriver specification
//! says ECB and the GIDS specification says Z1 has 7 bytes; the Windows minidriver (and every
//! card that works with it) uses CBC and 8 bytes (OpenSC card-gids.c, PR #1144).

use cipher::generic_array::GenericArray;
use cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use des::TdesEde3;
use rand_core::{OsRng, RngCore};
use scard_iso7816::tlv::ber::{self, Tag};
use scard_minidriver::{CardError, Pin, PinId, Result};
use zeroize::Zeroizing;

use crate::layout::CARD_TLV;

/// Length of the admin key.
pub(crate) const KEY_LEN: usize = 24;

/// The admin key bytes from what the caller holds: 24 raw bytes, or 48 hex digits (how
/// `gids-tool --admin-key` and `scard` take it on the command line).
pub(crate) fn admin_key(value: &Pin) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let raw = value.expose();
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    if raw.len() == KEY_LEN {
        key.copy_from_slice(raw);
        return Ok(key);
    }
    let text: Zeroizing<Vec<u8>> =
        Zeroizing::new(raw.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect());
    if text.len() == 2 * KEY_LEN && text.iter().all(u8::is_ascii_hexdigit) {
        for (slot, pair) in key.iter_mut().zip(text.chunks_exact(2)) {
            let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            let (hi, lo) = match pair {
                [hi, lo] => (*hi, *lo),
                _ => (0, 0),
            };
            *slot = (digit(hi) << 4) | digit(lo);
        }
        return Ok(key);
    }
    Err(CardError::PinFormat {
        pin: PinId::ADMIN,
        reason: format!("the GIDS admin key is 24 bytes (48 hex digits); got {} bytes", raw.len()),
    })
}

/// 3DES-EDE3-CBC with a zero IV, no padding, of whole 8-byte blocks.
pub(crate) fn tdes_cbc(
    key: &[u8; KEY_LEN],
    data: &[u8],
    encrypt: bool,
) -> Result<Zeroizing<Vec<u8>>> {
    let crypto = |reason: &str| CardError::Crypto {
        operation: "admin authentication",
        reason: reason.to_owned(),
    };
    if data.len() % 8 != 0 {
        return Err(crypto("3DES data is not whole blocks"));
    }
    let cipher = TdesEde3::new_from_slice(key).map_err(|_| crypto("3DES key"))?;
    let mut out = Zeroizing::new(Vec::with_capacity(data.len()));
    let mut chain = [0u8; 8];
    for block in data.chunks_exact(8) {
        let mut b = GenericArray::clone_from_slice(block);
        if encrypt {
            b.iter_mut().zip(chain.iter()).for_each(|(x, c)| *x ^= c);
            cipher.encrypt_block(&mut b);
            chain.copy_from_slice(&b);
        } else {
            cipher.decrypt_block(&mut b);
            b.iter_mut().zip(chain.iter()).for_each(|(x, c)| *x ^= c);
            chain.copy_from_slice(block);
        }
        out.extend_from_slice(&b);
    }
    Ok(out)
}

/// The dynamic authentication template 7C with one object (81 challenge, 82 response).
pub(crate) fn template(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut inner = Vec::with_capacity(value.len() + 2);
    // Values here are at most 40 bytes: the encoding cannot fail.
    let _ = ber::write(&mut inner, Tag::new(u32::from(tag)), value);
    let mut out = Vec::with_capacity(inner.len() + 2);
    let _ = ber::write(&mut out, Tag::new(0x7C), &inner);
    out
}

/// The value of object `tag` inside the card's 7C template, which must be `len` bytes.
pub(crate) fn template_value(answer: &[u8], tag: u8, len: usize) -> Result<Vec<u8>> {
    let op = "admin authentication";
    let codec = |source| CardError::Codec { operation: op, source };
    let bad = |reason: String| CardError::Malformed { operation: op, reason };
    let (outer, rest) = ber::decode_one(answer, CARD_TLV).map_err(codec)?;
    if outer.tag() != Tag::new(0x7C) || !rest.is_empty() {
        return Err(bad(format!("expected one template 7C, got {}", outer.tag())));
    }
    let inner = outer
        .find(Tag::new(u32::from(tag)))
        .map_err(codec)?
        .ok_or_else(|| bad(format!("template 7C without {tag:02X}")))?;
    if inner.value().len() != len {
        return Err(bad(format!("{tag:02X} of {} bytes, expected {len}", inner.value().len())));
    }
    Ok(inner.value().to_vec())
}

/// A mutual authentication under way: the host's challenge R1.
pub(crate) struct Mutual {
    r1: [u8; 16],
    r2: [u8; 16],
}

impl Mutual {
    /// Starts: a fresh R1. Returns the state and the first GENERAL AUTHENTICATE data.
    pub(crate) fn start() -> (Self, Vec<u8>) {
        let mut r1 = [0u8; 16];
        OsRng.fill_bytes(&mut r1);
        (Self { r1, r2: [0; 16] }, template(0x81, &r1))
    }

    /// The card's challenge R2 arrived: the second GENERAL AUTHENTICATE data.
    pub(crate) fn respond(&mut self, key: &[u8; KEY_LEN], card_answer: &[u8]) -> Result<Vec<u8>> {
        let r2 = template_value(card_answer, 0x81, 16)?;
        self.r2.copy_from_slice(&r2);
        let mut z1 = [0u8; 8];
        OsRng.fill_bytes(&mut z1[..7]);
        z1[7] = 0x80;
        let mut plain = Zeroizing::new(Vec::with_capacity(40));
        plain.extend_from_slice(&self.r2);
        plain.extend_from_slice(&self.r1);
        plain.extend_from_slice(&z1);
        let cryptogram = tdes_cbc(key, &plain, true)?;
        Ok(template(0x82, &cryptogram))
    }

    /// Checks the card's cryptogram E(R1 || R2 || Z2): the card knows the key too.
    pub(crate) fn check(&self, key: &[u8; KEY_LEN], card_answer: &[u8]) -> Result<()> {
        let cryptogram = template_value(card_answer, 0x82, 40)?;
        let plain = tdes_cbc(key, &cryptogram, false)?;
        let ok = plain.get(..16) == Some(&self.r1[..])
            && plain.get(16..32) == Some(&self.r2[..])
            && plain.get(39) == Some(&0x80);
        if ok {
            Ok(())
        } else {
            Err(CardError::Crypto {
                operation: "admin authentication",
                reason: "the card's answer does not prove it holds the admin key".to_owned(),
            })
        }
    }
}

/// The answer to an external-authentication challenge: E(challenge), one 3DES block.
pub(crate) fn external_response(key: &[u8; KEY_LEN], challenge: &[u8]) -> Result<Vec<u8>> {
    if challenge.len() != 8 {
        return Err(CardError::InvalidInput {
            what: "admin challenge",
            reason: format!("{} bytes, the GIDS challenge has 8", challenge.len()),
        });
    }
    Ok(tdes_cbc(key, challenge, true)?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tdes_known_answer() {
        // With K1 = K2 = K3, 3DES-EDE is single DES: FIPS 81 appendix B, key 0123456789ABCDEF,
        // "Now is t" -> 3FA40E8A984D4815.
        let mut key = [0u8; 24];
        for chunk in key.chunks_mut(8) {
            chunk.copy_from_slice(&[0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]);
        }
        let ct = tdes_cbc(&key, b"Now is t", true).unwrap();
        assert_eq!(ct.as_slice(), [0x3F, 0xA4, 0x0E, 0x8A, 0x98, 0x4D, 0x48, 0x15]);
        let data: Vec<u8> = (0..24).collect();
        let ct = tdes_cbc(&key, &data, true).unwrap();
        assert_eq!(tdes_cbc(&key, &ct, false).unwrap().as_slice(), data.as_slice());
        assert!(tdes_cbc(&key, &[0; 7], true).is_err());
    }

    #[test]
    fn admin_key_forms() {
        assert_eq!(*admin_key(&Pin::new(vec![0u8; 24])).unwrap(), [0; 24]);
        let hex = "0102030405060708".repeat(3);
        let key = admin_key(&Pin::new(hex.as_bytes().to_vec())).unwrap();
        assert_eq!(key[..8], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(admin_key(&Pin::new(b"123456".to_vec())).is_err());
        assert!(admin_key(&Pin::new("zz".repeat(24).into_bytes())).is_err());
    }

    #[test]
    fn templates() {
        assert_eq!(template(0x81, &[]), [0x7C, 0x02, 0x81, 0x00]);
        let t = template(0x81, &[5; 8]);
        assert_eq!(template_value(&t, 0x81, 8).unwrap(), [5; 8]);
        assert!(template_value(&t, 0x82, 8).is_err());
        assert!(template_value(&t, 0x81, 16).is_err());
        assert!(template_value(&[0x7D, 0x00], 0x81, 0).is_err());
        assert!(template_value(&[], 0x81, 0).is_err());
    }
}
