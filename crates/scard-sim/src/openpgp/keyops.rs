//! Key commands: GENERATE ASYMMETRIC KEY PAIR (§7.2.14), PSO:COMPUTE DIGITAL SIGNATURE
//! (§7.2.10), PSO:DECIPHER (§7.2.11), INTERNAL AUTHENTICATE (§7.2.13) and key import with
//! PUT DATA 4D (§4.4.3.12).

use rsa::BigUint;
use rsa::traits::PublicKeyParts;
use scard_iso7816::status::StatusWord;
use scard_iso7816::tlv::ber::{self, ParseOptions, Tag};
use zeroize::Zeroizing;

use super::data::{parse_attributes, put};
use super::{App, KeyOrigin, KeyRef, secret_reply};
use crate::io::{Command, Reply};
use crate::keys::{KeyAlgorithm, KeyError, PrivateKey, PublicKey};

/// RFC 8017 §9.2: PKCS#1 v1.5 padding takes at least 11 bytes of the block.
const PKCS1_OVERHEAD: usize = 11;
/// Longest hash an ECDSA command takes (SHA-512).
const MAX_HASH: usize = 64;

/// Maps a failed private-key operation to a status word.
fn key_error(err: KeyError) -> StatusWord {
    match err {
        KeyError::InputLength { .. } => StatusWord::WRONG_LENGTH,
        KeyError::InvalidInput(_) | KeyError::WrongAlgorithm { .. } => StatusWord::INCORRECT_DATA,
        _ => StatusWord::NO_PRECISE_DIAGNOSIS,
    }
}

/// §7.2.14 the public key template 7F49: modulus 81 and exponent 82, or the point 86.
fn public_key_do(key: &PrivateKey) -> Vec<u8> {
    let mut inner = Vec::new();
    match key.public() {
        PublicKey::Rsa { n, e } => {
            put(&mut inner, 0x81, &n);
            put(&mut inner, 0x82, &e);
        }
        PublicKey::Ec { point, .. } => put(&mut inner, 0x86, &point),
    }
    let mut out = Vec::with_capacity(inner.len() + 5);
    put(&mut out, 0x7F49, &inner);
    out
}

/// The key a control reference template names: B6, B8 or A4 (§7.2.14), alone or with
/// content (3.4 allows `B6 03 84 01 01`).
fn crt_key(data: &[u8]) -> Result<KeyRef, StatusWord> {
    if data.is_empty() {
        return Err(StatusWord::WRONG_LENGTH);
    }
    let (crt, rest) =
        ber::decode_one(data, ParseOptions::LENIENT).map_err(|_| StatusWord::INCORRECT_DATA)?;
    if !rest.is_empty() {
        return Err(StatusWord::INCORRECT_DATA);
    }
    KeyRef::from_crt(crt.tag().value()).ok_or(StatusWord::INCORRECT_DATA)
}

/// ECDSA on a hash of any length up to 64 bytes: a hash shorter than the field is taken as
/// the integer it is (FIPS 186-4 §6.4: e is the leftmost min(N, outlen) bits), so it is
/// left-padded with zeros.
fn ecdsa(key: &PrivateKey, hash: &[u8]) -> Result<Vec<u8>, StatusWord> {
    if hash.is_empty() || hash.len() > MAX_HASH {
        return Err(StatusWord::WRONG_LENGTH);
    }
    let field = key.algorithm().byte_len();
    let mut padded = vec![0u8; field.saturating_sub(hash.len())];
    padded.extend_from_slice(hash);
    key.ecdsa_sign_raw(&padded).map_err(key_error)
}

/// PKCS#1 v1.5 signature of host-encoded data (a DigestInfo) with an RSA key.
fn rsa_sign(key: &PrivateKey, input: &[u8]) -> Result<Vec<u8>, StatusWord> {
    if input.is_empty() || input.len() + PKCS1_OVERHEAD > key.algorithm().byte_len() {
        return Err(StatusWord::WRONG_LENGTH);
    }
    key.rsa_sign_pkcs1(input).map_err(key_error)
}

/// What a header list (§4.4.3.12, tag 7F48) announces: tags and lengths, no values.
fn header_list(mut list: &[u8]) -> Result<Vec<(u32, usize)>, StatusWord> {
    let bad = StatusWord::INCORRECT_DATA;
    let mut out = Vec::new();
    while let [first, rest @ ..] = list {
        // BER tag: one byte, or more when the low five bits are all set.
        let mut tag = u32::from(*first);
        let mut rest = rest;
        if first & 0x1F == 0x1F {
            loop {
                let [b, tail @ ..] = rest else { return Err(bad) };
                tag = (tag << 8) | u32::from(*b);
                rest = tail;
                if b & 0x80 == 0 || tag > 0x00FF_FFFF {
                    break;
                }
            }
        }
        // BER length: short form, or 81 xx, or 82 xx xx.
        let (len, tail) = match rest {
            [l, tail @ ..] if *l < 0x80 => (usize::from(*l), tail),
            [0x81, l, tail @ ..] => (usize::from(*l), tail),
            [0x82, h, l, tail @ ..] => (usize::from(u16::from_be_bytes([*h, *l])), tail),
            _ => return Err(bad),
        };
        out.push((tag, len));
        list = tail;
    }
    Ok(out)
}

/// The integer a big-endian byte string holds.
fn uint(bytes: &[u8]) -> BigUint {
    BigUint::from_bytes_be(bytes)
}

/// Builds the private key for `alg` from the values of an extended header list: RSA from
/// e (91), p (92) and q (93), checked against n (97) when given; ECC from the private scalar
/// (92), checked against the public point (99) when given.
fn key_from_parts(alg: KeyAlgorithm, parts: &[(u32, &[u8])]) -> Result<PrivateKey, StatusWord> {
    let bad = StatusWord::INCORRECT_DATA;
    let part = |tag: u32| parts.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v);
    let key = if alg.is_rsa() {
        let (Some(e), Some(p), Some(q)) = (part(0x91), part(0x92), part(0x93)) else {
            return Err(bad);
        };
        let key = rsa::RsaPrivateKey::from_p_q(uint(p), uint(q), uint(e)).map_err(|_| bad)?;
        if key.size() != alg.byte_len() || key.validate().is_err() {
            return Err(bad);
        }
        if part(0x97).is_some_and(|n| uint(n) != *key.n()) {
            return Err(bad);
        }
        PrivateKey::Rsa(Box::new(key))
    } else {
        let scalar = part(0x92).ok_or(bad)?;
        if scalar.is_empty() || scalar.len() > alg.byte_len() {
            return Err(bad);
        }
        let mut padded = Zeroizing::new(vec![0u8; alg.byte_len() - scalar.len()]);
        padded.extend_from_slice(scalar);
        match alg {
            KeyAlgorithm::P384 => {
                PrivateKey::P384(p384::SecretKey::from_slice(&padded).map_err(|_| bad)?)
            }
            _ => PrivateKey::P256(p256::SecretKey::from_slice(&padded).map_err(|_| bad)?),
        }
    };
    if let (Some(given), PublicKey::Ec { point, .. }) = (part(0x99), key.public()) {
        if given != point.as_slice() {
            return Err(bad);
        }
    }
    Ok(key)
}

impl App {
    /// §7.2.14 GENERATE ASYMMETRIC KEY PAIR: P1 80 generates (after PW3), P1 81 reads the
    /// public key; data is the CRT of the key.
    pub(super) fn generate(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.p2 != 0 || !matches!(cmd.p1, 0x80 | 0x81) {
            return Err(StatusWord::WRONG_P1P2);
        }
        let key = crt_key(cmd.data)?;
        if cmd.p1 == 0x81 {
            let private = self.state.slot(key).key.as_ref();
            return private.map(public_key_do).ok_or(StatusWord::REFERENCED_DATA_NOT_FOUND);
        }
        if !self.volatile.pw3 {
            return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
        }
        let alg = parse_attributes(key, &self.state.slot(key).attributes)?;
        let private = PrivateKey::generate(alg, &mut self.rng).map_err(key_error)?;
        let public = public_key_do(&private);
        self.install(key, private, KeyOrigin::Generated);
        Ok(public)
    }

    /// Puts a new key in place: the fingerprint and timestamp the host wrote for the old key
    /// no longer apply, and a new signature key restarts the signature counter (§4.4.1, 93).
    fn install(&mut self, key: KeyRef, private: PrivateKey, origin: KeyOrigin) {
        let slot = self.state.slot_mut(key);
        slot.key = Some(private);
        slot.origin = origin;
        slot.fingerprint = vec![0; 20];
        slot.generated_at = vec![0; 4];
        if key == KeyRef::Sig {
            self.state.signature_counter = 0;
        }
    }

    /// §7.2.10 PSO:COMPUTE DIGITAL SIGNATURE with the signature key, after VERIFY 81: RSA
    /// signs the DigestInfo given (PKCS#1 v1.5 padding on the card), ECDSA the hash given
    /// (r || s). Unless C4 byte 1 says otherwise, one VERIFY allows one signature.
    pub(super) fn compute_signature(&mut self, cmd: &Command<'_>) -> Reply {
        if !self.volatile.pw1_cds {
            return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
        }
        if !self.state.pw1_valid_for_several_signatures {
            self.volatile.pw1_cds = false;
        }
        let key = self.state.slot(KeyRef::Sig).key.as_ref();
        let key = key.ok_or(StatusWord::REFERENCED_DATA_NOT_FOUND)?;
        let signature =
            if key.algorithm().is_rsa() { rsa_sign(key, cmd.data)? } else { ecdsa(key, cmd.data)? };
        // §4.4.1 93: a 3-byte counter, stopping at its maximum.
        self.state.signature_counter = (self.state.signature_counter + 1).min(0x00FF_FFFF);
        Ok(signature)
    }

    /// §7.2.13 INTERNAL AUTHENTICATE with the authentication key, after VERIFY 82: PKCS#1 v1.5
    /// for RSA, ECDSA for EC.
    pub(super) fn internal_authenticate(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.p1p2() != 0 {
            return Err(StatusWord::WRONG_P1P2);
        }
        if !self.volatile.pw1_other {
            return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
        }
        let key = self.state.slot(KeyRef::Aut).key.as_ref();
        let key = key.ok_or(StatusWord::REFERENCED_DATA_NOT_FOUND)?;
        if key.algorithm().is_rsa() { rsa_sign(key, cmd.data) } else { ecdsa(key, cmd.data) }
    }

    /// §7.2.11 PSO:DECIPHER with the decryption key, after VERIFY 82. RSA: padding indicator
    /// 00, then the PKCS#1 v1.5 cryptogram. ECDH: the cipher DO A6 { 7F49 { 86 point } };
    /// the answer is the shared secret's x-coordinate.
    pub(super) fn decipher(&mut self, cmd: &Command<'_>) -> Reply {
        if !self.volatile.pw1_other {
            return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
        }
        let key = self.state.slot(KeyRef::Dec).key.as_ref();
        let key = key.ok_or(StatusWord::REFERENCED_DATA_NOT_FOUND)?;
        let alg = key.algorithm();
        if alg.is_rsa() {
            let Some((&indicator, cryptogram)) = cmd.data.split_first() else {
                return Err(StatusWord::WRONG_LENGTH);
            };
            // 00: RSA cryptogram; 02 would be AES (not offered).
            if indicator != 0x00 {
                return Err(StatusWord::INCORRECT_DATA);
            }
            if cryptogram.is_empty() || cryptogram.len() > alg.byte_len() {
                return Err(StatusWord::WRONG_LENGTH);
            }
            let mut block = vec![0u8; alg.byte_len() - cryptogram.len()];
            block.extend_from_slice(cryptogram);
            return secret_reply(key.rsa_decrypt_pkcs1(&block).map_err(key_error)?);
        }
        let opts = ParseOptions::LENIENT;
        let bad = |_| StatusWord::INCORRECT_DATA;
        let (cipher, rest) = ber::decode_one(cmd.data, opts).map_err(bad)?;
        if cipher.tag().value() != 0xA6 || !rest.is_empty() {
            return Err(StatusWord::INCORRECT_DATA);
        }
        let template = cipher.find(Tag::new(0x7F49)).map_err(bad)?;
        let point = template.map(|t| t.find(Tag::new(0x86))).transpose().map_err(bad)?.flatten();
        let point = point.ok_or(StatusWord::INCORRECT_DATA)?;
        secret_reply(key.ecdh(point.value()).map_err(key_error)?)
    }

    /// §4.4.3.12 key import: PUT DATA with odd INS (DB), P1-P2 3FFF, and the extended header
    /// list 4D { CRT, 7F48 header list, 5F48 concatenated values }. After PW3.
    pub(super) fn import_key(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.p1p2() != 0x3FFF {
            return Err(StatusWord::WRONG_P1P2);
        }
        if !self.volatile.pw3 {
            return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
        }
        let bad = StatusWord::INCORRECT_DATA;
        let opts = ParseOptions::LENIENT;
        let (ehl, rest) = ber::decode_one(cmd.data, opts).map_err(|_| bad)?;
        if ehl.tag().value() != 0x4D || !rest.is_empty() {
            return Err(bad);
        }
        let mut children = ehl.children();
        let crt = children.next().ok_or(bad)?.map_err(|_| bad)?;
        let key = KeyRef::from_crt(crt.tag().value()).ok_or(bad)?;
        let list = ehl.find(Tag::new(0x7F48)).map_err(|_| bad)?.ok_or(bad)?;
        let values = ehl.find(Tag::new(0x5F48)).map_err(|_| bad)?.ok_or(bad)?;
        let mut values = values.value();
        let mut parts = Vec::new();
        for (tag, len) in header_list(list.value())? {
            let (value, tail) = values.split_at_checked(len).ok_or(bad)?;
            parts.push((tag, value));
            values = tail;
        }
        if !values.is_empty() {
            return Err(bad);
        }
        let alg = parse_attributes(key, &self.state.slot(key).attributes)?;
        let private = key_from_parts(alg, &parts)?;
        self.install(key, private, KeyOrigin::Imported);
        Ok(Vec::new())
    }
}
