//! The personalisation certificate: a self-signed X.509 v3 certificate (RFC 5280) for the
//! card's first key, DER-encoded by hand (X.690), and the minidriver's compressed certificate
//! file format that OpenSC reads from a GIDS card.

use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};

use crate::keys::{KeyError, PrivateKey};

/// RFC 8017 §9.2 note 1: the DER prefix of a SHA-256 DigestInfo.
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];
/// 1.2.840.113549.1.1.1 rsaEncryption (RFC 8017 appendix C).
const OID_RSA_ENCRYPTION: [u8; 9] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
/// 1.2.840.113549.1.1.11 sha256WithRSAEncryption.
const OID_SHA256_WITH_RSA: [u8; 9] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B];
/// 2.5.4.3 id-at-commonName (RFC 5280 appendix A.1).
const OID_COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];
/// 2.5.29.15 id-ce-keyUsage (RFC 5280 §4.2.1.3).
const OID_KEY_USAGE: [u8; 3] = [0x55, 0x1D, 0x0F];
/// 2.5.29.19 id-ce-basicConstraints (RFC 5280 §4.2.1.9).
const OID_BASIC_CONSTRAINTS: [u8; 3] = [0x55, 0x1D, 0x13];

/// One DER element: tag, definite minimal length (X.690 §8.1.3), contents.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

/// A SEQUENCE of the concatenated elements.
fn seq(parts: &[&[u8]]) -> Vec<u8> {
    der(0x30, &parts.concat())
}

/// A non-negative INTEGER from big-endian magnitude bytes (X.690 §8.3: minimal, a leading 00
/// when the high bit is set).
fn uint(magnitude: &[u8]) -> Vec<u8> {
    let skip = magnitude.iter().take_while(|&&b| b == 0).count();
    let trimmed = magnitude.get(skip..).unwrap_or_default();
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|&b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    der(0x02, &content)
}

/// A BIT STRING with no unused bits.
fn bits(content: &[u8]) -> Vec<u8> {
    der(0x03, &[&[0u8][..], content].concat())
}

/// AlgorithmIdentifier with NULL parameters (RFC 8017 appendix C for both RSA OIDs).
fn algorithm(oid: &[u8]) -> Vec<u8> {
    seq(&[&der(0x06, oid), &[0x05, 0x00]])
}

/// Name with a single commonName RDN.
fn name(common_name: &str) -> Vec<u8> {
    let attribute = seq(&[&der(0x06, &OID_COMMON_NAME), &der(0x0C, common_name.as_bytes())]);
    seq(&[&der(0x31, &attribute)])
}

/// A self-signed sha256WithRSAEncryption certificate for an RSA `key`, with `serial` (its high
/// bit is cleared so the INTEGER stays positive), valid 2024-01-01 to 2049-12-31, key usage
/// digitalSignature + keyEncipherment, not a CA.
pub(super) fn self_signed_rsa(
    key: &PrivateKey,
    common_name: &str,
    serial: &[u8],
) -> Result<Vec<u8>, KeyError> {
    let PrivateKey::Rsa(rsa) = key else {
        return Err(KeyError::WrongAlgorithm { op: "certificate", alg: key.algorithm() });
    };
    let mut serial = serial.to_vec();
    if let Some(first) = serial.first_mut() {
        *first &= 0x7F;
    }
    let public_key = seq(&[&uint(&rsa.n().to_bytes_be()), &uint(&rsa.e().to_bytes_be())]);
    let spki = seq(&[&algorithm(&OID_RSA_ENCRYPTION), &bits(&public_key)]);
    let validity = seq(&[&der(0x17, b"240101000000Z"), &der(0x17, b"491231235959Z")]);
    // keyUsage, critical: digitalSignature (bit 0) and keyEncipherment (bit 2): 03 02 05 A0.
    let key_usage = seq(&[
        &der(0x06, &OID_KEY_USAGE),
        &[0x01, 0x01, 0xFF],
        &der(0x04, &[0x03, 0x02, 0x05, 0xA0]),
    ]);
    // basicConstraints, critical, cA FALSE (the empty SEQUENCE).
    let basic =
        seq(&[&der(0x06, &OID_BASIC_CONSTRAINTS), &[0x01, 0x01, 0xFF], &der(0x04, &[0x30, 0x00])]);
    let extensions = der(0xA3, &seq(&[&basic, &key_usage]));
    let issuer = name(common_name);
    let tbs = seq(&[
        &der(0xA0, &[0x02, 0x01, 0x02]), // version v3
        &uint(&serial),
        &algorithm(&OID_SHA256_WITH_RSA),
        &issuer,
        &validity,
        &issuer,
        &spki,
        &extensions,
    ]);
    let mut digest_info = SHA256_DIGEST_INFO.to_vec();
    digest_info.extend_from_slice(&Sha256::digest(&tbs));
    let signature = key.rsa_sign_pkcs1(&digest_info)?;
    Ok(seq(&[&tbs, &algorithm(&OID_SHA256_WITH_RSA), &bits(&signature)]))
}

/// RFC 1950 §8: Adler-32 of `data`.
pub(super) fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    let (a, b) = data.chunks(5552).fold((1u32, 0u32), |(mut a, mut b), chunk| {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        (a % MOD, b % MOD)
    });
    (b << 16) | a
}

/// A zlib stream (RFC 1950) of stored deflate blocks (RFC 1951 §3.2.4, BTYPE 00): valid input
/// for zlib's uncompress(), which OpenSC's sc_decompress calls.
pub(super) fn zlib_stored(data: &[u8]) -> Vec<u8> {
    // CMF 78: deflate, 32 KiB window; FLG 01: no dictionary, FCHECK making 7801 a multiple of 31.
    let mut out = vec![0x78, 0x01];
    let mut blocks = data.chunks(0xFFFF).peekable();
    if blocks.peek().is_none() {
        // An empty input is one empty final block.
        out.extend_from_slice(&[0x01, 0x00, 0x00, 0xFF, 0xFF]);
    }
    while let Some(block) = blocks.next() {
        let last = blocks.peek().is_none();
        out.push(u8::from(last)); // BFINAL, BTYPE 00, rest of the byte padding
        let len = u16::try_from(block.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

/// The minidriver's certificate file as OpenSC's gids_encode_certificate writes it and
/// gids_read_binary reads it back (OpenSC card-gids.c; the GIDS and minidriver specifications
/// do not document it): 01 00 (compression version), the uncompressed length as u16 LE, then
/// the zlib stream.
pub(super) fn compressed_file(certificate: &[u8]) -> Vec<u8> {
    let len = u16::try_from(certificate.len()).unwrap_or(u16::MAX);
    let mut out = vec![0x01, 0x00];
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&zlib_stored(certificate));
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::SimRng;
    use crate::keys::KeyAlgorithm;

    /// Inflates what [`zlib_stored`] writes (stored blocks only), checking the Adler-32.
    pub(crate) fn inflate_stored(stream: &[u8]) -> Vec<u8> {
        assert_eq!(&stream[..2], &[0x78, 0x01]);
        assert_eq!((u16::from(stream[0]) << 8 | u16::from(stream[1])) % 31, 0);
        let mut pos = 2;
        let mut out = Vec::new();
        loop {
            let header = stream[pos];
            assert_eq!(header & 0x06, 0, "stored block");
            let len = u16::from_le_bytes([stream[pos + 1], stream[pos + 2]]);
            let nlen = u16::from_le_bytes([stream[pos + 3], stream[pos + 4]]);
            assert_eq!(len, !nlen);
            out.extend_from_slice(&stream[pos + 5..pos + 5 + usize::from(len)]);
            pos += 5 + usize::from(len);
            if header & 1 == 1 {
                break;
            }
        }
        assert_eq!(stream[pos..], adler32(&out).to_be_bytes());
        out
    }

    #[test]
    fn adler32_vector() {
        // The Wikipedia example of RFC 1950's checksum.
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        assert_eq!(adler32(b""), 1);
    }

    #[test]
    fn zlib_round_trip() {
        for len in [0usize, 1, 1000, 0xFFFF, 0x1_0001] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            assert_eq!(inflate_stored(&zlib_stored(&data)), data);
        }
        let file = compressed_file(b"cert");
        assert_eq!(&file[..4], &[1, 0, 4, 0]);
        assert_eq!(inflate_stored(&file[4..]), b"cert");
    }

    #[test]
    fn der_lengths_and_integers() {
        assert_eq!(der(0x04, &[1, 2]), [0x04, 0x02, 1, 2]);
        assert_eq!(&der(0x04, &[0; 200])[..3], &[0x04, 0x81, 200]);
        assert_eq!(&der(0x04, &[0; 300])[..4], &[0x04, 0x82, 0x01, 0x2C]);
        assert_eq!(uint(&[0x00, 0x80]), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(uint(&[0x00, 0x00, 0x7F]), [0x02, 0x01, 0x7F]);
        assert_eq!(uint(&[]), [0x02, 0x01, 0x00]);
    }

    #[test]
    fn certificate_is_self_signed_and_verifies() {
        use rsa::{Pkcs1v15Sign, RsaPublicKey};
        let mut rng = SimRng::from_seed(9);
        let key = PrivateKey::generate(KeyAlgorithm::Rsa2048, &mut rng).unwrap();
        let cert = self_signed_rsa(&key, "test", &[0xFF; 16]).unwrap();
        // Certificate ::= SEQUENCE { tbs, algorithm, signature }: take it apart.
        let opts = scard_iso7816::tlv::ber::ParseOptions::STRICT;
        let (outer, rest) = scard_iso7816::tlv::ber::decode_one(&cert, opts).unwrap();
        assert!(rest.is_empty());
        let parts: Vec<_> = outer.children().map(Result::unwrap).collect();
        assert_eq!(parts.len(), 3);
        let tbs = parts[0].raw();
        let sig = &parts[2].value()[1..];
        let PrivateKey::Rsa(rsa_key) = &key else { panic!() };
        let public = RsaPublicKey::from(rsa_key.as_ref());
        public.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(tbs), sig).unwrap();
        // The serial is positive and the subject names the key.
        let tbs_parts: Vec<_> = parts[0].children().map(Result::unwrap).collect();
        assert_eq!(tbs_parts[1].value()[0], 0x7F);
        assert!(cert.windows(4).any(|w| w == b"test"));
        assert!(
            self_signed_rsa(
                &PrivateKey::generate(KeyAlgorithm::P256, &mut rng).unwrap(),
                "x",
                &[1]
            )
            .is_err()
        );
    }
}
