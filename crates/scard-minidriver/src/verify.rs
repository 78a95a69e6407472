//! Checking a card's signature on the host with the container's public key, before it is
//! handed on: a broken or hostile card may answer a signature command with 9000 and bytes
//! that are no signature (a flipped byte, a truncated or padded answer). A signature that
//! does not verify is an error naming the operation, never a result.
//!
//! RSA: RFC 8017 §8.2.2 (RSASSA-PKCS1-v1_5: the encoded block is compared whole), §8.1.2
//! (RSASSA-PSS), raw RSA (the block as given); ECDSA: FIPS 186-4 §6.4 over the digest as
//! given (r || s, each the field size). A P-521 key cannot be checked here and is passed.

use rsa::traits::PublicKeyParts;

use crate::error::{CardError, Result};
use crate::padding::pkcs1_v15_sign_block;
use crate::types::{Curve, HashAlg, PublicKey, SignPadding, SignRequest};

const OPERATION: &str = "sign";

fn refused(reason: String) -> CardError {
    CardError::Crypto {
        operation: OPERATION,
        reason: format!("the card's signature does not verify with the key's public key: {reason}"),
    }
}

/// Verifies `signature`, the card's answer to `request`, with `key`. `Ok` when it verifies
/// (or when the host cannot check the key's kind: P-521); a [`CardError::Crypto`] of
/// operation "sign" otherwise.
pub fn verify_signature(
    key: &PublicKey,
    request: &SignRequest<'_>,
    signature: &[u8],
) -> Result<()> {
    match key {
        PublicKey::Rsa { n, e } => {
            let key = rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(n),
                rsa::BigUint::from_bytes_be(e),
            )
            .map_err(|e| refused(format!("RSA key: {e}")))?;
            verify_rsa(&key, request, signature)
        }
        PublicKey::Ec { curve: Curve::P256, point } => {
            use p256::ecdsa::signature::hazmat::PrehashVerifier;
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map_err(|e| refused(format!("P-256 point: {e}")))?;
            let sig = p256::ecdsa::Signature::from_slice(signature)
                .map_err(|_| refused(format!("{} bytes are no P-256 r || s", signature.len())))?;
            vk.verify_prehash(request.data, &sig).map_err(|_| refused("ECDSA".to_owned()))
        }
        PublicKey::Ec { curve: Curve::P384, point } => {
            use p384::ecdsa::signature::hazmat::PrehashVerifier;
            let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map_err(|e| refused(format!("P-384 point: {e}")))?;
            let sig = p384::ecdsa::Signature::from_slice(signature)
                .map_err(|_| refused(format!("{} bytes are no P-384 r || s", signature.len())))?;
            vk.verify_prehash(request.data, &sig).map_err(|_| refused("ECDSA".to_owned()))
        }
        PublicKey::Ec { curve: Curve::P521, .. } => Ok(()),
    }
}

fn verify_rsa(key: &rsa::RsaPublicKey, request: &SignRequest<'_>, signature: &[u8]) -> Result<()> {
    let k = key.size();
    if signature.len() != k {
        return Err(refused(format!("{} bytes for a {k}-byte modulus", signature.len())));
    }
    if let SignPadding::Pss { salt_len } = request.padding {
        return verify_pss(key, request.hash, salt_len, request.data, signature);
    }
    // s^e mod n (RFC 8017 §5.2.2 RSAVP1), then the block it must be.
    let s = rsa::BigUint::from_bytes_be(signature);
    if &s >= key.n() {
        return Err(refused("signature representative out of range".to_owned()));
    }
    let m = rsa::hazmat::rsa_encrypt(key, &s).map_err(|e| refused(e.to_string()))?;
    let mut em = m.to_bytes_be();
    if em.len() < k {
        let mut padded = vec![0u8; k - em.len()];
        padded.append(&mut em);
        em = padded;
    }
    let expected = match (request.padding, request.hash) {
        (SignPadding::Pkcs1, Some(hash)) => {
            pkcs1_v15_sign_block(&hash.digest_info(request.data)?, k)?
        }
        (SignPadding::Pkcs1, None) => pkcs1_v15_sign_block(request.data, k)?,
        _ => {
            let mut block = vec![0u8; k.saturating_sub(request.data.len())];
            block.extend_from_slice(request.data);
            block
        }
    };
    if em == expected { Ok(()) } else { Err(refused("RSA".to_owned())) }
}

fn verify_pss(
    key: &rsa::RsaPublicKey,
    hash: Option<HashAlg>,
    salt_len: usize,
    digest: &[u8],
    signature: &[u8],
) -> Result<()> {
    let scheme = match hash {
        Some(HashAlg::Sha1) => rsa::Pss::new_with_salt::<sha1::Sha1>(salt_len),
        Some(HashAlg::Sha256) => rsa::Pss::new_with_salt::<sha2::Sha256>(salt_len),
        Some(HashAlg::Sha384) => rsa::Pss::new_with_salt::<sha2::Sha384>(salt_len),
        Some(HashAlg::Sha512) => rsa::Pss::new_with_salt::<sha2::Sha512>(salt_len),
        // PSS needs its hash; a request without one was refused before it reached the card.
        None => return Err(refused("RSASSA-PSS without a hash".to_owned())),
    };
    key.verify(scheme, digest, signature).map_err(|_| refused("RSASSA-PSS".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use rand_core::OsRng;

    fn rsa_pair() -> (rsa::RsaPrivateKey, PublicKey) {
        let private = rsa::RsaPrivateKey::new(&mut OsRng, 1024).unwrap();
        let public = PublicKey::rsa(&private.n().to_bytes_be(), &private.e().to_bytes_be());
        (private, public)
    }

    #[test]
    fn rsa_pkcs1_pss_and_raw_signatures_verify_and_flipped_ones_do_not() {
        let (private, public) = rsa_pair();
        let digest = HashAlg::Sha256.digest(b"message");
        // RFC 8017 §8.2.1 with the host's own implementation.
        let sig = private.sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest).unwrap();
        let request =
            SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::Pkcs1, data: &digest };
        verify_signature(&public, &request, &sig).unwrap();
        let mut flipped = sig.clone();
        flipped[10] ^= 1;
        let err = verify_signature(&public, &request, &flipped).unwrap_err();
        assert!(err.to_string().starts_with("sign: the card's signature does not verify"), "{err}");
        assert!(verify_signature(&public, &request, &sig[1..]).is_err());
        let mut long = sig.clone();
        long.push(0);
        assert!(verify_signature(&public, &request, &long).is_err());
        // The same block signed raw, and as a prepared DigestInfo.
        let info = HashAlg::Sha256.digest_info(&digest).unwrap();
        let prepared = SignRequest { hash: None, padding: SignPadding::Pkcs1, data: &info };
        verify_signature(&public, &prepared, &sig).unwrap();
        let block = pkcs1_v15_sign_block(&info, 128).unwrap();
        let raw = SignRequest { hash: None, padding: SignPadding::None, data: &block };
        verify_signature(&public, &raw, &sig).unwrap();
        // PSS.
        let pss = private
            .sign_with_rng(&mut OsRng, rsa::Pss::new_with_salt::<sha2::Sha256>(32), &digest)
            .unwrap();
        let request = SignRequest {
            hash: Some(HashAlg::Sha256),
            padding: SignPadding::Pss { salt_len: 32 },
            data: &digest,
        };
        verify_signature(&public, &request, &pss).unwrap();
        assert!(verify_signature(&public, &request, &sig).is_err());
        // A representative >= n.
        assert!(verify_signature(&public, &raw, &[0xFF; 128]).is_err());
    }

    #[test]
    fn ecdsa_signatures_verify_and_others_do_not() {
        let sk = p256::ecdsa::SigningKey::random(&mut OsRng);
        let point = sk.verifying_key().to_encoded_point(false).as_bytes().to_vec();
        let public = PublicKey::Ec { curve: Curve::P256, point };
        let digest = HashAlg::Sha256.digest(b"message");
        let sig: p256::ecdsa::Signature = sk.sign_prehash(&digest).unwrap();
        let request =
            SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::None, data: &digest };
        verify_signature(&public, &request, &sig.to_bytes()).unwrap();
        let mut flipped = sig.to_bytes().to_vec();
        flipped[40] ^= 0x80;
        assert!(verify_signature(&public, &request, &flipped).is_err());
        assert!(verify_signature(&public, &request, &flipped[..63]).is_err());
        assert!(verify_signature(&public, &request, &[]).is_err());
        let other = HashAlg::Sha256.digest(b"other");
        let request =
            SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::None, data: &other };
        assert!(verify_signature(&public, &request, &sig.to_bytes()).is_err());
    }
}
