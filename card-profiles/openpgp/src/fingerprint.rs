//! OpenPGP V4 fingerprints of card keys (RFC 4880 §12.2, RFC 6637 §9 and §11), computed the
//! way GnuPG's scdaemon does after on-card generation, so that GnuPG and OpenSC see the key:
//! SHA-1 of `99 | 2-byte length | public key packet body`, the body being `04 | creation time
//! (4) | algorithm | key material`.

use scard_minidriver::{CardError, Curve, PublicKey, Result};
use sha1::{Digest, Sha1};

use crate::ard::{Role, curve_oid};

/// RFC 4880 §9.1 public-key algorithm 1: RSA.
const PGP_RSA: u8 = 1;
/// RFC 6637 §5: ECDH 18, ECDSA 19.
const PGP_ECDH: u8 = 18;
const PGP_ECDSA: u8 = 19;

/// RFC 4880 §3.2 multiprecision integer: bit count (2 bytes) then the big-endian bytes
/// without leading zeros.
fn mpi(out: &mut Vec<u8>, value: &[u8]) {
    let start = value.iter().position(|&b| b != 0).unwrap_or(value.len());
    let digits = value.get(start..).unwrap_or_default();
    let bits = match digits.first() {
        Some(first) => (digits.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    };
    out.extend_from_slice(&u16::try_from(bits).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(digits);
}

/// RFC 6637 §9 KDF parameters of an ECDH key: 03 (length), 01 (version), hash, cipher — the
/// values GnuPG 2.2 writes for card keys: SHA-256 + AES-128 for P-256, SHA-384 + AES-192 for
/// P-384, SHA-512 + AES-256 for P-521.
fn ecdh_kdf(curve: Curve) -> [u8; 4] {
    match curve {
        Curve::P256 => [0x03, 0x01, 0x08, 0x07],
        Curve::P384 => [0x03, 0x01, 0x09, 0x08],
        Curve::P521 => [0x03, 0x01, 0x0A, 0x09],
    }
}

/// The public key packet body (RFC 4880 §5.5.2) of a card key created at `created` (seconds
/// since 1970). The decryption key of an EC card is ECDH, the others ECDSA.
pub fn packet_body(key: &PublicKey, created: u32, role: Role) -> Result<Vec<u8>> {
    let mut body = vec![0x04];
    body.extend_from_slice(&created.to_be_bytes());
    match key {
        PublicKey::Rsa { n, e } => {
            body.push(PGP_RSA);
            mpi(&mut body, n);
            mpi(&mut body, e);
        }
        PublicKey::Ec { curve, point } => {
            body.push(if role == Role::Dec { PGP_ECDH } else { PGP_ECDSA });
            let oid = curve_oid(*curve);
            body.push(u8::try_from(oid.len()).unwrap_or(u8::MAX));
            body.extend_from_slice(oid);
            mpi(&mut body, point);
            if role == Role::Dec {
                body.extend_from_slice(&ecdh_kdf(*curve));
            }
        }
    }
    Ok(body)
}

/// The V4 fingerprint.
pub fn v4(key: &PublicKey, created: u32, role: Role) -> Result<[u8; 20]> {
    let body = packet_body(key, created, role)?;
    let len = u16::try_from(body.len()).map_err(|_| CardError::Crypto {
        operation: "OpenPGP fingerprint",
        reason: format!("public key packet of {} bytes", body.len()),
    })?;
    let mut h = Sha1::new();
    h.update([0x99]);
    h.update(len.to_be_bytes());
    h.update(&body);
    Ok(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use scard_iso7816::hex::{decode_lenient, encode_upper};

    const P256_G: &str = "04 6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296 \
                          4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5";
    const P384_G: &str = "04 AA87CA22BE8B05378EB1C71EF320AD746E1D3B628BA79B9859F741E082542A38\
                          5502F25DBF55296C3A545E3872760AB7 3617DE4A96262C6F5D9E98BF9292DC29F8F4\
                          1DBD289A147CE9DA3113B5F0B8C00A60B1CE1D7E819D7A431D7C90EA0E5F";

    /// Vectors: the same packets (created 1600000000, plus a user ID packet) given to
    /// GnuPG 2.2.40 `gpg --show-keys --with-colons`, which printed these fingerprints.
    #[test]
    fn matches_gnupg() {
        let created = 1_600_000_000;
        let mut n = vec![0xC5];
        n.extend_from_slice(&[0x11; 126]);
        n.push(0xAB);
        let rsa = PublicKey::rsa(&n, &[0x01, 0x00, 0x01]);
        assert_eq!(
            encode_upper(&v4(&rsa, created, Role::Sig).unwrap()),
            "9E50A2D654A5683306CA5F0D2FA4900448AB2F67"
        );
        let p256 = PublicKey::Ec { curve: Curve::P256, point: decode_lenient(P256_G).unwrap() };
        let p384 = PublicKey::Ec { curve: Curve::P384, point: decode_lenient(P384_G).unwrap() };
        for (key, role, want) in [
            (&p256, Role::Sig, "1D7AF71A19C61E63AD9BA4D58CCF2F25F64770E2"),
            (&p256, Role::Aut, "1D7AF71A19C61E63AD9BA4D58CCF2F25F64770E2"),
            (&p256, Role::Dec, "A8BF50636EDCE09BDBC1E78B128DAA0F0084C4B2"),
            (&p384, Role::Dec, "E898975BD0EA87A8B3F80DDBC2DD36F82256B28E"),
            (&p384, Role::Sig, "6D042061A14CF512AFC5CDDB54E266A48796AAB9"),
        ] {
            assert_eq!(encode_upper(&v4(key, created, role).unwrap()), want, "{role:?}");
        }
    }
}
