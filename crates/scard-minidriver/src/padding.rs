//! RSA paddings done on the host for cards that only compute raw RSA (PIV: SP 800-73-4 Pt 2
//! §3.2.4 leaves padding to the host). RFC 8017 (PKCS #1 v2.2).

use rand_core::{OsRng, RngCore};
use subtle_free::ct_eq;

use crate::error::{CardError, Result};
use crate::types::{HashAlg, Secret};

fn bad(reason: String) -> CardError {
    CardError::InvalidInput { what: "data to sign", reason }
}

/// EMSA-PKCS1-v1_5 (RFC 8017 §9.2): 00 01 FF..FF 00 || T, `k` bytes, T a DigestInfo (or any
/// prepared input when the caller passes one). At least 8 FF bytes.
pub fn pkcs1_v15_sign_block(t: &[u8], k: usize) -> Result<Vec<u8>> {
    if t.len() + 11 > k {
        return Err(bad(format!("{} bytes do not fit a {k}-byte PKCS#1 v1.5 block", t.len())));
    }
    let mut em = Vec::with_capacity(k);
    em.extend_from_slice(&[0x00, 0x01]);
    em.resize(k - t.len() - 1, 0xFF);
    em.push(0x00);
    em.extend_from_slice(t);
    Ok(em)
}

/// MGF1 (RFC 8017 §B.2.1) XORed into `out`.
fn mgf1_xor(hash: HashAlg, seed: &[u8], out: &mut [u8]) {
    let mut counter: u32 = 0;
    for chunk in out.chunks_mut(hash.len()) {
        let mut input = seed.to_vec();
        input.extend_from_slice(&counter.to_be_bytes());
        for (o, m) in chunk.iter_mut().zip(hash.digest(&input)) {
            *o ^= m;
        }
        counter = counter.wrapping_add(1);
    }
}

/// EMSA-PSS-ENCODE (RFC 8017 §9.1.1) of a digest `m_hash` for a modulus of `mod_bits` bits,
/// MGF1 with the same hash, a random salt of `salt_len` bytes, trailer BC.
pub fn pss_encode(
    hash: HashAlg,
    m_hash: &[u8],
    salt_len: usize,
    mod_bits: usize,
) -> Result<Vec<u8>> {
    if m_hash.len() != hash.len() {
        return Err(bad(format!("{} bytes, a {hash:?} digest has {}", m_hash.len(), hash.len())));
    }
    let em_bits = mod_bits.saturating_sub(1);
    let em_len = em_bits.div_ceil(8);
    let h_len = hash.len();
    if em_len < h_len + salt_len + 2 {
        return Err(bad(format!(
            "salt of {salt_len} bytes does not fit a {mod_bits}-bit key with {hash:?}"
        )));
    }
    let mut salt = vec![0u8; salt_len];
    OsRng.fill_bytes(&mut salt);
    // M' = 8 zero bytes || mHash || salt; H = Hash(M').
    let mut m_prime = vec![0u8; 8];
    m_prime.extend_from_slice(m_hash);
    m_prime.extend_from_slice(&salt);
    let h = hash.digest(&m_prime);
    // DB = PS || 01 || salt; maskedDB = DB xor MGF(H).
    let db_len = em_len - h_len - 1;
    let mut db = vec![0u8; db_len - salt_len - 1];
    db.push(0x01);
    db.extend_from_slice(&salt);
    mgf1_xor(hash, &h, &mut db);
    // Clear the leftmost 8*emLen - emBits bits.
    let clear = 8 * em_len - em_bits;
    if let Some(first) = db.first_mut() {
        *first &= 0xFFu8.checked_shr(clear as u32).unwrap_or(0);
    }
    let mut em = db;
    em.extend_from_slice(&h);
    em.push(0xBC);
    // The block the card exponentiates has the modulus' length.
    let k = mod_bits.div_ceil(8);
    let mut block = vec![0u8; k - em.len()];
    block.extend_from_slice(&em);
    Ok(block)
}

/// RSAES-PKCS1-v1_5 decoding (RFC 8017 §7.2.2 step 3) of a raw decryption block.
pub fn pkcs1_v15_decrypt_unpad(block: &[u8]) -> Result<Secret> {
    let err = || CardError::Crypto {
        operation: "decrypt",
        reason: "PKCS#1 v1.5 padding check failed".into(),
    };
    match block {
        [0x00, 0x02, rest @ ..] => {
            let sep = rest.iter().position(|&b| b == 0).ok_or_else(err)?;
            if sep < 8 {
                return Err(err());
            }
            Ok(Secret::new(rest.get(sep + 1..).unwrap_or_default().to_vec()))
        }
        _ => Err(err()),
    }
}

/// RSAES-OAEP decoding (RFC 8017 §7.1.2 step 3) of a raw decryption block of `k` bytes.
pub fn oaep_unpad(block: &[u8], hash: HashAlg, label: &[u8]) -> Result<Secret> {
    let err = || CardError::Crypto { operation: "decrypt", reason: "OAEP decoding failed".into() };
    let h_len = hash.len();
    if block.len() < 2 * h_len + 2 {
        return Err(err());
    }
    let (y, rest) = block.split_first().ok_or_else(err)?;
    let (masked_seed, masked_db) = rest.split_at(h_len);
    let mut seed = masked_seed.to_vec();
    mgf1_xor(hash, masked_db, &mut seed);
    let mut db = zeroize::Zeroizing::new(masked_db.to_vec());
    mgf1_xor(hash, &seed, &mut db);
    let l_hash = hash.digest(label);
    let (db_hash, ps_m) = db.split_at(h_len);
    let hash_ok = ct_eq(db_hash, &l_hash);
    let one = ps_m.iter().position(|&b| b != 0);
    let sep_ok = one.is_some_and(|i| ps_m.get(i) == Some(&0x01));
    if *y != 0 || !hash_ok || !sep_ok {
        return Err(err());
    }
    let start = one.map_or(ps_m.len(), |i| i + 1);
    Ok(Secret::new(ps_m.get(start..).unwrap_or_default().to_vec()))
}

/// Comparison whose time does not depend on where the inputs differ.
mod subtle_free {
    pub(super) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::traits::PublicKeyParts;
    use rsa::{BigUint, RsaPrivateKey};

    fn raw_private(key: &RsaPrivateKey, block: &[u8]) -> Vec<u8> {
        let c = BigUint::from_bytes_be(block);
        let m = rsa::hazmat::rsa_decrypt_and_check(key, None::<&mut OsRng>, &c).unwrap();
        let mut out = m.to_bytes_be();
        while out.len() < key.size() {
            out.insert(0, 0);
        }
        out
    }

    fn key() -> RsaPrivateKey {
        RsaPrivateKey::new(&mut OsRng, 1024).unwrap()
    }

    #[test]
    fn pkcs1_and_pss_blocks_verify_with_the_rsa_crate() {
        let k = key();
        let pubk = k.to_public_key();
        let digest = HashAlg::Sha256.digest(b"hello");
        let t = HashAlg::Sha256.digest_info(&digest).unwrap();
        let sig = raw_private(&k, &pkcs1_v15_sign_block(&t, k.size()).unwrap());
        pubk.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, &sig).unwrap();

        let block = pss_encode(HashAlg::Sha256, &digest, 32, pubk.n().bits()).unwrap();
        let sig = raw_private(&k, &block);
        pubk.verify(rsa::Pss::new_with_salt::<sha2::Sha256>(32), &digest, &sig).unwrap();
        assert!(pss_encode(HashAlg::Sha256, &digest, 200, 1024).is_err());
    }

    #[test]
    fn decryption_paddings_match_the_rsa_crate() {
        let k = key();
        let pubk = k.to_public_key();
        let ct = pubk.encrypt(&mut OsRng, rsa::Pkcs1v15Encrypt, b"secret").unwrap();
        let block = raw_private(&k, &ct);
        assert_eq!(pkcs1_v15_decrypt_unpad(&block).unwrap().expose(), b"secret");

        let ct = pubk
            .encrypt(&mut OsRng, rsa::Oaep::new_with_label::<sha2::Sha256, _>("lbl"), b"x")
            .unwrap();
        let block = raw_private(&k, &ct);
        assert_eq!(oaep_unpad(&block, HashAlg::Sha256, b"lbl").unwrap().expose(), b"x");
        assert!(oaep_unpad(&block, HashAlg::Sha256, b"other").is_err());
        assert!(pkcs1_v15_decrypt_unpad(&block).is_err());
    }
}
