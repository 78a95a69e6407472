//! Administrator authentication with the admin key (key reference 80) by GENERAL
//! AUTHENTICATE, the card side of the exchange OpenSC's gids_authenticate_admin and the Windows
//! GIDS minidriver drive (card-gids.c; GidsApplet GidsPINManager):
//!
//! - mutual: the host sends 7C 12 81 10 R1 (its 16-byte challenge); the card answers
//!   7C 12 81 10 R2. The host sends 7C 2A 82 28 E(R2 || R1 || Z1) where Z1 is 7 random bytes
//!   and 80; the card checks it and answers 7C 2A 82 28 E(R1 || R2 || Z2 || 80).
//! - external: the host sends 7C 02 81 00; the card answers 7C 0A 81 08 R2 (8 bytes); the host
//!   sends 7C 0A 82 08 E(R2).
//!
//! E is 3DES (three-key EDE) in CBC mode with a zero IV and no padding: OpenSC notes that the
//! minidriver specification says ECB but the Windows minidriver uses CBC, and that Z1 is 8
//! bytes (7 random and 80), not the 7 the GIDS specification gives.

use cipher::{BlockDecrypt, BlockEncrypt, KeyInit, generic_array::GenericArray};
use des::TdesEde3;
use scard_iso7816::StatusWord;
use scard_iso7816::tlv::ber::{self, Tag};
use zeroize::Zeroizing;

use super::fs::HOST_TLV;
use crate::SimRng;

/// Where the admin challenge-response stands. Volatile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) enum AdminState {
    /// Nothing under way, not authenticated.
    #[default]
    None,
    /// Mutual authentication: the host's challenge R1 and the card's R2 were exchanged.
    Mutual { host: [u8; 16], card: [u8; 16] },
    /// External authentication: the card's 8-byte challenge was sent.
    External { card: [u8; 8] },
    /// Authenticated until reset, deauthentication or RESET RETRY COUNTER.
    Authenticated,
}

/// 3DES-CBC, zero IV, no padding. `data` must be a whole number of 8-byte blocks.
pub(super) fn tdes_cbc(key: &[u8], data: &[u8], encrypt: bool) -> Option<Zeroizing<Vec<u8>>> {
    if data.len() % 8 != 0 {
        return None;
    }
    let cipher = TdesEde3::new_from_slice(key).ok()?;
    let mut out = Zeroizing::new(Vec::with_capacity(data.len()));
    let mut chain = [0u8; 8];
    for block in data.chunks_exact(8) {
        let mut b = GenericArray::clone_from_slice(block);
        if encrypt {
            b.iter_mut().zip(chain.iter()).for_each(|(x, c)| *x ^= c);
            cipher.encrypt_block(&mut b);
            chain.copy_from_slice(&b);
            out.extend_from_slice(&b);
        } else {
            cipher.decrypt_block(&mut b);
            b.iter_mut().zip(chain.iter()).for_each(|(x, c)| *x ^= c);
            chain.copy_from_slice(block);
            out.extend_from_slice(&b);
        }
    }
    Some(out)
}

/// The dynamic authentication template 7C with one object `tag` (81 challenge, 82 response).
fn template(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut inner = Vec::with_capacity(value.len() + 2);
    // Values here are at most 40 bytes: the encoding cannot fail.
    let _ = ber::write(&mut inner, Tag::new(u32::from(tag)), value);
    let mut out = Vec::with_capacity(inner.len() + 2);
    let _ = ber::write(&mut out, Tag::new(0x7C), &inner);
    out
}

/// One GENERAL AUTHENTICATE step with the admin key `key`. Updates `state`; the reply is the
/// card's template or a status word (6982 for a wrong cryptogram, which also abandons the
/// exchange).
pub(super) fn general_authenticate(
    state: &mut AdminState,
    key: &[u8],
    data: &[u8],
    rng: &mut SimRng,
) -> Result<Vec<u8>, StatusWord> {
    let (outer, rest) = ber::decode_one(data, HOST_TLV).map_err(|_| StatusWord::INCORRECT_DATA)?;
    if !rest.is_empty() || outer.tag() != Tag::new(0x7C) {
        return Err(StatusWord::INCORRECT_DATA);
    }
    let challenge = outer.find(Tag::new(0x81)).map_err(|_| StatusWord::INCORRECT_DATA)?;
    let response = outer.find(Tag::new(0x82)).map_err(|_| StatusWord::INCORRECT_DATA)?;
    match (challenge, response) {
        (Some(c), None) => {
            let c = c.value();
            if c.len() == 16 {
                let mut host = [0u8; 16];
                host.copy_from_slice(c);
                let mut card = [0u8; 16];
                card.copy_from_slice(&rng.bytes(16));
                *state = AdminState::Mutual { host, card };
                Ok(template(0x81, &card))
            } else if c.is_empty() {
                let mut card = [0u8; 8];
                card.copy_from_slice(&rng.bytes(8));
                *state = AdminState::External { card };
                Ok(template(0x81, &card))
            } else {
                *state = AdminState::None;
                Err(StatusWord::INCORRECT_DATA)
            }
        }
        (None, Some(r)) => respond(state, key, r.value(), rng),
        _ => Err(StatusWord::INCORRECT_DATA),
    }
}

/// The host's cryptogram for the challenge under way.
fn respond(
    state: &mut AdminState,
    key: &[u8],
    cryptogram: &[u8],
    rng: &mut SimRng,
) -> Result<Vec<u8>, StatusWord> {
    match std::mem::take(state) {
        AdminState::Mutual { host, card } => {
            if cryptogram.len() != 40 {
                return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
            }
            let plain = tdes_cbc(key, cryptogram, false).ok_or(StatusWord::INCORRECT_DATA)?;
            let ok = plain.get(..16) == Some(&card[..])
                && plain.get(16..32) == Some(&host[..])
                && plain.get(39) == Some(&0x80);
            if !ok {
                return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
            }
            // R1 || R2 || Z2 (7 random bytes) || 80.
            let mut answer = Zeroizing::new(Vec::with_capacity(40));
            answer.extend_from_slice(&host);
            answer.extend_from_slice(&card);
            answer.extend_from_slice(&rng.bytes(7));
            answer.push(0x80);
            let encrypted = tdes_cbc(key, &answer, true).ok_or(StatusWord::INCORRECT_DATA)?;
            *state = AdminState::Authenticated;
            Ok(template(0x82, &encrypted))
        }
        AdminState::External { card } => {
            let plain = tdes_cbc(key, cryptogram, false)
                .ok_or(StatusWord::SECURITY_STATUS_NOT_SATISFIED)?;
            if plain.get(..8) != Some(&card[..]) {
                return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
            }
            *state = AdminState::Authenticated;
            Ok(Vec::new())
        }
        other => {
            // A response without a challenge: ISO/IEC 7816-4 6985.
            *state = if other == AdminState::Authenticated { other } else { AdminState::None };
            Err(StatusWord::CONDITIONS_NOT_SATISFIED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tdes_cbc_known_answer() {
        // With K1 = K2 = K3, 3DES-EDE is single DES: the FIPS 81 appendix B example, key
        // 0123456789ABCDEF, plaintext "Now is t" (4E6F772069732074) -> 3FA40E8A984D4815.
        let key: Vec<u8> = [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF].repeat(3);
        let ct = tdes_cbc(&key, &[0x4E, 0x6F, 0x77, 0x20, 0x69, 0x73, 0x20, 0x74], true).unwrap();
        assert_eq!(ct.as_slice(), [0x3F, 0xA4, 0x0E, 0x8A, 0x98, 0x4D, 0x48, 0x15]);
        // CBC: the second block is chained on the first.
        let data: Vec<u8> = (0..24).collect();
        let ct = tdes_cbc(&key, &data, true).unwrap();
        assert_eq!(tdes_cbc(&key, &ct, false).unwrap().as_slice(), data.as_slice());
        assert_ne!(ct[8..16], tdes_cbc(&key, &data[8..16], true).unwrap()[..]);
        assert!(tdes_cbc(&key, &[0; 7], true).is_none());
        assert!(tdes_cbc(&[0; 5], &[0; 8], true).is_none());
    }
}
