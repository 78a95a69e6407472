//! The data of GENERAL AUTHENTICATE (SP 800-73-4 Pt 2 §3.2.4: the dynamic authentication
//! template 7C with 80 witness, 81 challenge, 82 response, 85 exponentiation) and of GENERATE
//! ASYMMETRIC KEY PAIR (§3.3.2: the control reference template AC, the answer 7F49).

use scard_minidriver::{CardError, Curve, KeyAlgorithm, PublicKey, Result};
use zeroize::Zeroizing;

use crate::objects::{child, children, put_tlv, single};

/// Witness (80).
pub(crate) const WITNESS: u32 = 0x80;
/// Challenge (81).
pub(crate) const CHALLENGE: u32 = 0x81;
/// Response (82).
pub(crate) const RESPONSE: u32 = 0x82;
/// Exponentiation (85): the peer's public point of a key agreement.
pub(crate) const EXPONENTIATION: u32 = 0x85;

/// `7C { tag value ... }` in the given order. Zeroized: it may carry a witness or a secret
/// input.
pub(crate) fn template(items: &[(u32, &[u8])]) -> Result<Zeroizing<Vec<u8>>> {
    let mut inner = Zeroizing::new(Vec::new());
    for (tag, value) in items {
        put_tlv(&mut inner, *tag, value)?;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(inner.len() + 4));
    put_tlv(&mut out, 0x7C, &inner)?;
    Ok(out)
}

/// The value of `tag` in a `7C` answer (exactly one 7C, nothing after it, the element
/// present and non-empty).
pub(crate) fn answer(operation: &'static str, data: &[u8], tag: u32) -> Result<Zeroizing<Vec<u8>>> {
    let tlv = single(operation, data)?;
    if tlv.tag().value() != 0x7C {
        return Err(CardError::Malformed {
            operation,
            reason: format!("answer tag {}, expected 7C", tlv.tag()),
        });
    }
    let items = children(operation, tlv.value())?;
    match child(&items, tag) {
        Some(v) if !v.is_empty() => Ok(Zeroizing::new(v.to_vec())),
        _ => Err(CardError::Malformed {
            operation,
            reason: format!("no {tag:02X} element in the authentication template"),
        }),
    }
}

/// The command data of GENERATE ASYMMETRIC KEY PAIR: `AC { 80 algorithm }`.
pub(crate) fn generate_command(algorithm_id: u8) -> Result<Vec<u8>> {
    let mut inner = Vec::new();
    put_tlv(&mut inner, 0x80, &[algorithm_id])?;
    let mut out = Vec::new();
    put_tlv(&mut out, 0xAC, &inner)?;
    Ok(out)
}

/// Parses the answer of GENERATE ASYMMETRIC KEY PAIR (SP 800-73-4 Pt 2 §3.3.2, Table 11:
/// `7F49 { 81 modulus, 82 public exponent }` for RSA, `7F49 { 86 point }` for ECC) and checks
/// it is a key of the algorithm asked for.
pub(crate) fn generated_key(data: &[u8], asked: KeyAlgorithm) -> Result<PublicKey> {
    const OP: &str = "GENERATE ASYMMETRIC KEY PAIR";
    let bad = |reason: String| CardError::Malformed { operation: OP, reason };
    let tlv = single(OP, data)?;
    if tlv.tag().value() != 0x7F49 {
        return Err(bad(format!("answer tag {}, expected 7F49", tlv.tag())));
    }
    let items = children(OP, tlv.value())?;
    let key = match asked {
        KeyAlgorithm::Rsa(_) => {
            let n = child(&items, 0x81).ok_or_else(|| bad("no modulus (81)".into()))?;
            let e = child(&items, 0x82).ok_or_else(|| bad("no public exponent (82)".into()))?;
            PublicKey::rsa(n, e)
        }
        KeyAlgorithm::Ec(curve) => {
            let point = child(&items, 0x86).ok_or_else(|| bad("no EC point (86)".into()))?;
            PublicKey::Ec { curve, point: point.to_vec() }
        }
    };
    // The SPKI encoder checks the key (RSA sizes, point on the curve).
    key.to_spki_der().map_err(|e| bad(format!("the public key is not valid: {e}")))?;
    let got = key.algorithm()?;
    if got != asked {
        return Err(bad(format!("asked for {asked}, the card made {got}")));
    }
    Ok(key)
}

/// An ECDSA-Sig-Value (DER `SEQUENCE { r INTEGER, s INTEGER }`: RFC 5480 / SEC 1 §C.5) as
/// fixed-width r || s.
pub(crate) fn ecdsa_raw(curve: Curve, der: &[u8]) -> Result<Vec<u8>> {
    let bad = |e: String| CardError::Malformed {
        operation: "ECDSA signature",
        reason: format!("not a DER ECDSA-Sig-Value for {curve:?}: {e}"),
    };
    match curve {
        Curve::P256 => p256::ecdsa::Signature::from_der(der)
            .map(|s| s.to_bytes().to_vec())
            .map_err(|e| bad(e.to_string())),
        Curve::P384 => p384::ecdsa::Signature::from_der(der)
            .map(|s| s.to_bytes().to_vec())
            .map_err(|e| bad(e.to_string())),
        Curve::P521 => Err(bad("P-521 is not a PIV curve".into())),
    }
}

/// The input of an ECDSA signature: the hash as an integer of the field's width (SEC 1
/// §4.1.3 step 5: the leftmost bits of a longer hash; a shorter one is the same integer with
/// leading zeros). piv-authenticator requires exactly the field length.
pub(crate) fn ecdsa_input(curve: Curve, hash: &[u8]) -> Vec<u8> {
    let n = curve.field_len();
    if hash.len() >= n {
        hash.get(..n).unwrap_or(hash).to_vec()
    } else {
        let mut out = vec![0u8; n - hash.len()];
        out.extend_from_slice(hash);
        out
    }
}

/// A big-endian number left-padded with zeros to `len` bytes; `None` when it is longer (after
/// leading zeros).
pub(crate) fn left_pad(value: &[u8], len: usize) -> Option<Vec<u8>> {
    let start = value.iter().position(|b| *b != 0).unwrap_or(value.len());
    let digits = value.get(start..).unwrap_or_default();
    if digits.len() > len {
        return None;
    }
    let mut out = vec![0u8; len - digits.len()];
    out.extend_from_slice(digits);
    Some(out)
}

/// The peer's point in uncompressed SEC1 form (04 || x || y), checked to be on `curve`.
pub(crate) fn peer_point(curve: Curve, peer: &PublicKey) -> Result<Vec<u8>> {
    let bad = |reason: String| CardError::InvalidInput { what: "peer public key", reason };
    let PublicKey::Ec { curve: peer_curve, point } = peer else {
        return Err(bad("an RSA key cannot be used for ECDH".into()));
    };
    if *peer_curve != curve {
        return Err(bad(format!("{peer_curve:?}, the card's key is {curve:?}")));
    }
    match curve {
        Curve::P256 => {
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            p256::PublicKey::from_sec1_bytes(point)
                .map(|k| k.to_encoded_point(false).as_bytes().to_vec())
                .map_err(|e| bad(format!("not a P-256 point: {e}")))
        }
        Curve::P384 => {
            use p384::elliptic_curve::sec1::ToEncodedPoint;
            p384::PublicKey::from_sec1_bytes(point)
                .map(|k| k.to_encoded_point(false).as_bytes().to_vec())
                .map_err(|e| bad(format!("not a P-384 point: {e}")))
        }
        Curve::P521 => Err(bad("P-521 is not a PIV curve".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scard_iso7816::hex::decode_lenient as h;

    #[test]
    fn templates_and_answers() {
        let t = template(&[(RESPONSE, &[]), (CHALLENGE, &[1, 2, 3])]).unwrap();
        assert_eq!(t.as_slice(), h("7C 07 82 00 81 03 010203").unwrap().as_slice());
        assert_eq!(
            answer("t", &h("7C 04 82 02 AA BB").unwrap(), RESPONSE).unwrap().as_slice(),
            &[0xAA, 0xBB]
        );
        assert!(answer("t", &h("7C 02 82 00").unwrap(), RESPONSE).is_err());
        assert!(answer("t", &h("7C 04 81 02 AA BB").unwrap(), RESPONSE).is_err());
        assert!(answer("t", &h("7D 04 82 02 AA BB").unwrap(), RESPONSE).is_err());
        assert!(answer("t", &h("7C 04 82 02 AA BB 00").unwrap(), RESPONSE).is_err());
        assert!(answer("t", &h("7C 05 82 02 AA").unwrap(), RESPONSE).is_err());
        assert_eq!(generate_command(0x11).unwrap(), h("AC 03 80 01 11").unwrap());
    }

    #[test]
    fn padding_helpers() {
        assert_eq!(ecdsa_input(Curve::P384, &[1; 32]).len(), 48);
        assert_eq!(&ecdsa_input(Curve::P384, &[1; 32])[16..], &[1; 32]);
        assert_eq!(ecdsa_input(Curve::P256, &[2; 48]), vec![2; 32]);
        assert_eq!(left_pad(&[0, 0, 5], 2), Some(vec![0, 5]));
        assert_eq!(left_pad(&[1, 2, 3], 2), None);
    }

    #[test]
    fn generated_keys_are_checked() {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let secret = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let point = secret.public_key().to_encoded_point(false).as_bytes().to_vec();
        let mut inner = Vec::new();
        put_tlv(&mut inner, 0x86, &point).unwrap();
        let mut answer = Vec::new();
        put_tlv(&mut answer, 0x7F49, &inner).unwrap();
        let key = generated_key(&answer, KeyAlgorithm::Ec(Curve::P256)).unwrap();
        assert_eq!(key, PublicKey::Ec { curve: Curve::P256, point: point.clone() });
        assert!(generated_key(&answer, KeyAlgorithm::Ec(Curve::P384)).is_err());
        assert!(generated_key(&answer, KeyAlgorithm::Rsa(2048)).is_err());
        let mut bad_point = point;
        bad_point[10] ^= 1;
        let mut inner = Vec::new();
        put_tlv(&mut inner, 0x86, &bad_point).unwrap();
        let mut answer = Vec::new();
        put_tlv(&mut answer, 0x7F49, &inner).unwrap();
        assert!(generated_key(&answer, KeyAlgorithm::Ec(Curve::P256)).is_err());
    }
}
