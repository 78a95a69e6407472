//! Data objects (§4.4): their encodings, GET DATA, PUT DATA, SELECT DATA and GET NEXT DATA.

use scard_iso7816::status::StatusWord;
use scard_iso7816::tlv::ber::{self, ParseOptions};

use super::{
    App, Bytes, HISTORICAL_BYTES, KeyOrigin, KeyRef, PW_MAX, PW_TRIES, PW3_MIN, check_pw_len,
};
use crate::io::{Command, Reply};
use crate::keys::KeyAlgorithm;
use crate::pin::Pin;

/// §4.4.3.9 algorithm attributes at delivery: RSA (01), 2048-bit modulus, 32-bit exponent
/// field, import format 00 (standard: e, p, q).
pub(super) const DEFAULT_ATTRIBUTES: [u8; 6] = [0x01, 0x08, 0x00, 0x00, 0x20, 0x00];

/// §4.4.3.9 algorithm ID of RSA.
const ALG_RSA: u8 = 0x01;
/// §4.4.3.9 algorithm ID of ECDH (RFC 6637), decryption key only.
const ALG_ECDH: u8 = 0x12;
/// §4.4.3.9 algorithm ID of ECDSA (RFC 6637), signature and authentication keys.
const ALG_ECDSA: u8 = 0x13;

/// §4.4.3.9 curve OID of NIST P-256 (1.2.840.10045.3.1.7), without tag and length.
const OID_P256: [u8; 8] = [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
/// §4.4.3.9 curve OID of NIST P-384 (1.3.132.0.34).
const OID_P384: [u8; 5] = [0x2B, 0x81, 0x04, 0x00, 0x22];

/// §4.4.3.7 largest GET CHALLENGE.
pub(super) const MAX_CHALLENGE: u16 = 0x0800;
/// §4.4.3.7 largest cardholder certificate (each of the three).
const MAX_CERTIFICATE: u16 = 0x0800;
/// §4.4.3.7 largest "special DO" (private use, login data, URL).
const MAX_SPECIAL_DO: u16 = 0x00FF;
/// §4.4.1 longest name (5B).
const MAX_NAME: usize = 39;
/// §4.4.1 longest language preference list (5F2D: up to 4 ISO 639 codes).
const MAX_LANGUAGE: usize = 8;
/// §4.4.1 largest command and response APDU (7F66 in 6E). The transmission layer takes
/// extended APDUs of any length, so this is a promise the card keeps.
const MAX_APDU: u16 = 0x1000;

/// §4.4.3.7 extended capabilities (C0).
const EXTENDED_CAPABILITIES: [u8; 10] = [
    // b7 GET CHALLENGE, b6 key import, b5 PW status changeable, b4 private use DOs,
    // b3 algorithm attributes changeable; no SM (b8), no AES (b2), no KDF-DO (b1).
    0x7C,
    0x00, // secure messaging algorithm: none
    (MAX_CHALLENGE >> 8) as u8,
    MAX_CHALLENGE as u8, // maximum length of a challenge
    (MAX_CERTIFICATE >> 8) as u8,
    MAX_CERTIFICATE as u8, // maximum length of a cardholder certificate
    (MAX_SPECIAL_DO >> 8) as u8,
    MAX_SPECIAL_DO as u8, // maximum length of special DOs
    0x00,                 // PIN block 2 format: not supported
    0x00,                 // MSE for key numbers 2 and 3: not supported
];

/// §4.4.1 extended length information (7F66): two DER INTEGERs (02 02 xx xx), maximum
/// number of bytes in a command APDU, then in a response APDU.
const EXTENDED_LENGTH_INFO: [u8; 8] = [
    0x02,
    0x02,
    (MAX_APDU >> 8) as u8,
    MAX_APDU as u8,
    0x02,
    0x02,
    (MAX_APDU >> 8) as u8,
    MAX_APDU as u8,
];

/// Appends a BER-TLV with a one- or two-byte tag and a minimal length (§4.4.4: 1 to 3 length
/// bytes). Values here are always shorter than 64 KiB.
pub(super) fn put(out: &mut Vec<u8>, tag: u16, value: &[u8]) {
    if tag > 0xFF {
        out.extend_from_slice(&tag.to_be_bytes());
    } else {
        out.push(tag as u8);
    }
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xFF {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        let len = u16::try_from(len).unwrap_or(u16::MAX);
        out.push(0x82);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(value);
}

/// The key algorithm that attribute bytes name for `key`: RSA 2048/3072/4096 (any slot),
/// ECDSA on P-256/P-384 (signature and authentication), ECDH on P-256/P-384 (decryption).
/// Anything else is 6A80 (§7.2.9: not supported).
pub(super) fn parse_attributes(key: KeyRef, attr: &[u8]) -> Result<KeyAlgorithm, StatusWord> {
    let bad = StatusWord::INCORRECT_DATA;
    match attr {
        // §4.4.3.9 RSA: 01, modulus bits, exponent bits, [import format 00..03].
        [ALG_RSA, n1, n2, e1, e2, rest @ ..] => {
            let e_bits = u16::from_be_bytes([*e1, *e2]);
            if !(17..=32).contains(&e_bits) || rest.len() > 1 || rest.iter().any(|f| *f > 3) {
                return Err(bad);
            }
            match u16::from_be_bytes([*n1, *n2]) {
                2048 => Ok(KeyAlgorithm::Rsa2048),
                3072 => Ok(KeyAlgorithm::Rsa3072),
                4096 => Ok(KeyAlgorithm::Rsa4096),
                _ => Err(bad),
            }
        }
        // §4.4.3.9 ECC: algorithm ID, curve OID, [import format 00, or FF with public key].
        [alg @ (ALG_ECDH | ALG_ECDSA), oid @ ..] => {
            let fits = match key {
                KeyRef::Dec => *alg == ALG_ECDH,
                KeyRef::Sig | KeyRef::Aut => *alg == ALG_ECDSA,
            };
            if !fits {
                return Err(bad);
            }
            let oid = match oid {
                [o @ .., 0x00 | 0xFF] if o == OID_P256 || o == OID_P384 => o,
                o => o,
            };
            if oid == OID_P256 {
                Ok(KeyAlgorithm::P256)
            } else if oid == OID_P384 {
                Ok(KeyAlgorithm::P384)
            } else {
                Err(bad)
            }
        }
        _ => Err(bad),
    }
}

/// The attribute bytes this card lists for `alg` used as `key` (§4.4.3.11 algorithm
/// information).
fn attributes_of(key: KeyRef, alg: KeyAlgorithm) -> Vec<u8> {
    let ec = |oid: &[u8]| {
        let mut v = vec![if key == KeyRef::Dec { ALG_ECDH } else { ALG_ECDSA }];
        v.extend_from_slice(oid);
        v
    };
    match alg {
        KeyAlgorithm::P256 => ec(&OID_P256),
        KeyAlgorithm::P384 => ec(&OID_P384),
        rsa => {
            let bits = u16::try_from(rsa.bits()).unwrap_or(0).to_be_bytes();
            vec![ALG_RSA, bits[0], bits[1], 0x00, 0x20, 0x00]
        }
    }
}

impl App {
    /// §4.4.3.8 PW status bytes (C4).
    fn pw_status(&self) -> Vec<u8> {
        let max = PW_MAX as u8;
        vec![
            u8::from(self.state.pw1_valid_for_several_signatures), // 00: one PSO:CDS per VERIFY
            max, // maximum length of PW1 (b8 = 0: UTF-8)
            max, // maximum length of the resetting code
            max, // maximum length of PW3
            self.state.pw1.tries_left(),
            self.state.rc.as_ref().map_or(0, Pin::tries_left),
            self.state.pw3.tries_left(),
        ]
    }

    /// §4.4.1 C5 / C6 / CD: the three keys' values concatenated (SIG, DEC, AUT).
    fn concat(&self, field: impl Fn(&super::KeySlot) -> &[u8]) -> Vec<u8> {
        KeyRef::ALL.iter().flat_map(|k| field(self.state.slot(*k)).to_vec()).collect()
    }

    /// §4.4.1 key information (DE): key reference and status for each key.
    fn key_information(&self) -> Vec<u8> {
        KeyRef::ALL.iter().flat_map(|k| [k.number(), self.state.slot(*k).origin.byte()]).collect()
    }

    /// §4.4.1 application related data (6E).
    fn application_related_data(&self) -> Vec<u8> {
        let mut dd = Vec::with_capacity(200);
        put(&mut dd, 0xC0, &EXTENDED_CAPABILITIES);
        for (tag, key) in [(0xC1, KeyRef::Sig), (0xC2, KeyRef::Dec), (0xC3, KeyRef::Aut)] {
            put(&mut dd, tag, &self.state.slot(key).attributes);
        }
        put(&mut dd, 0xC4, &self.pw_status());
        put(&mut dd, 0xC5, &self.concat(|s| &s.fingerprint));
        put(&mut dd, 0xC6, &self.concat(|s| &s.ca_fingerprint));
        put(&mut dd, 0xCD, &self.concat(|s| &s.generated_at));
        put(&mut dd, 0xDE, &self.key_information());
        let mut out = Vec::with_capacity(256);
        put(&mut out, 0x4F, &self.state.aid());
        put(&mut out, 0x5F52, &HISTORICAL_BYTES);
        put(&mut out, 0x7F66, &EXTENDED_LENGTH_INFO);
        put(&mut out, 0x73, &dd);
        out
    }

    /// §4.4.1 cardholder related data (65).
    fn cardholder_related_data(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put(&mut out, 0x5B, &self.state.name.0);
        put(&mut out, 0x5F2D, &self.state.language.0);
        put(&mut out, 0x5F35, &self.state.sex.0);
        out
    }

    /// §4.4.3.11 algorithm information (FA): every attribute value C1, C2, C3 accept.
    fn algorithm_information(&self) -> Vec<u8> {
        let algs = [
            KeyAlgorithm::Rsa2048,
            KeyAlgorithm::Rsa3072,
            KeyAlgorithm::Rsa4096,
            KeyAlgorithm::P256,
            KeyAlgorithm::P384,
        ];
        let mut out = Vec::new();
        for (tag, key) in [(0xC1, KeyRef::Sig), (0xC2, KeyRef::Dec), (0xC3, KeyRef::Aut)] {
            for alg in algs {
                put(&mut out, tag, &attributes_of(key, alg));
            }
        }
        out
    }

    /// The certificate slot (§7.2.5) of the current occurrence.
    fn certificate_key(&self) -> Result<KeyRef, StatusWord> {
        KeyRef::from_occurrence(self.volatile.occurrence)
            .ok_or(StatusWord::REFERENCED_DATA_NOT_FOUND)
    }

    /// §7.2.6 GET DATA (INS CA): P1-P2 is the tag. The DOs of §4.4.1 that GET DATA reads
    /// and, for convenience, the simple DOs nested in 65, 6E and 7A.
    pub(super) fn get_data(&mut self, cmd: &Command<'_>) -> Reply {
        if !cmd.data.is_empty() {
            return Err(StatusWord::WRONG_LENGTH);
        }
        let state = &self.state;
        let value = match cmd.p1p2() {
            0x004F => state.aid(),
            0x005E => state.login.0.clone(),
            0x5F50 => state.url.0.clone(),
            0x5F52 => HISTORICAL_BYTES.to_vec(),
            0x0065 => self.cardholder_related_data(),
            0x005B => state.name.0.clone(),
            0x5F2D => state.language.0.clone(),
            0x5F35 => state.sex.0.clone(),
            0x006E => self.application_related_data(),
            0x00C0 => EXTENDED_CAPABILITIES.to_vec(),
            0x00C1 => state.slot(KeyRef::Sig).attributes.clone(),
            0x00C2 => state.slot(KeyRef::Dec).attributes.clone(),
            0x00C3 => state.slot(KeyRef::Aut).attributes.clone(),
            0x00C4 => self.pw_status(),
            0x00C5 => self.concat(|s| &s.fingerprint),
            0x00C6 => self.concat(|s| &s.ca_fingerprint),
            0x00CD => self.concat(|s| &s.generated_at),
            0x00DE => self.key_information(),
            0x7F66 => EXTENDED_LENGTH_INFO.to_vec(),
            0x00FA => self.algorithm_information(),
            0x007A => {
                let mut out = Vec::new();
                put(&mut out, 0x93, &counter_bytes(state.signature_counter));
                out
            }
            0x0093 => counter_bytes(state.signature_counter).to_vec(),
            0x7F21 => state.slot(self.certificate_key()?).certificate.clone(),
            // §4.4.1 private use: 0101 and 0102 readable always, 0103 after PW1 (82), 0104
            // after PW3.
            0x0101 => state.private_use[0].0.clone(),
            0x0102 => state.private_use[1].0.clone(),
            0x0103 if self.volatile.pw1_other => state.private_use[2].0.clone(),
            0x0104 if self.volatile.pw3 => state.private_use[3].0.clone(),
            0x0103 | 0x0104 => return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED),
            _ => return Err(StatusWord::REFERENCED_DATA_NOT_FOUND),
        };
        Ok(value)
    }

    /// §7.2.8 PUT DATA (INS DA): P1-P2 is the tag. Everything needs PW3 but private use DOs
    /// 0101 and 0103, which need PW1 (82).
    pub(super) fn put_data(&mut self, cmd: &Command<'_>) -> Reply {
        let tag = cmd.p1p2();
        let needs_pw1 = matches!(tag, 0x0101 | 0x0103);
        let known = needs_pw1
            || matches!(
                tag,
                0x005B
                    | 0x005E
                    | 0x5F2D
                    | 0x5F35
                    | 0x5F50
                    | 0x00C1..=0x00C4
                    | 0x00C7..=0x00D0
                    | 0x00D3
                    | 0x7F21
                    | 0x0102
                    | 0x0104
            );
        if !known {
            return Err(StatusWord::REFERENCED_DATA_NOT_FOUND);
        }
        let allowed = if needs_pw1 { self.volatile.pw1_other } else { self.volatile.pw3 };
        if !allowed {
            return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
        }
        let data = cmd.data;
        let max_len = |max: usize| {
            if data.len() > max { Err(StatusWord::WRONG_LENGTH) } else { Ok(data.to_vec()) }
        };
        let exact_len = |len: usize| {
            if data.len() != len { Err(StatusWord::WRONG_LENGTH) } else { Ok(data.to_vec()) }
        };
        let special = usize::from(MAX_SPECIAL_DO);
        let state = &mut self.state;
        match tag {
            0x005B => state.name = Bytes(max_len(MAX_NAME)?),
            0x005E => state.login = Bytes(max_len(special)?),
            0x5F50 => state.url = Bytes(max_len(special)?),
            0x5F2D => {
                // ISO 639-1 codes of two letters each.
                if data.len() % 2 != 0 {
                    return Err(StatusWord::WRONG_LENGTH);
                }
                state.language = Bytes(max_len(MAX_LANGUAGE)?);
            }
            0x5F35 => {
                // ISO/IEC 5218 as one ASCII digit: not known, male, female, not applicable.
                let sex = exact_len(1)?;
                if !matches!(sex.as_slice(), [b'0' | b'1' | b'2' | b'9']) {
                    return Err(StatusWord::INCORRECT_DATA);
                }
                state.sex = Bytes(sex);
            }
            0x0101..=0x0104 => {
                let value = Bytes(max_len(special)?);
                if let Some(slot) = state.private_use.get_mut(usize::from(tag - 0x0101)) {
                    *slot = value;
                }
            }
            0x00C1..=0x00C3 => {
                let key = match tag {
                    0x00C1 => KeyRef::Sig,
                    0x00C2 => KeyRef::Dec,
                    _ => KeyRef::Aut,
                };
                let attributes = max_len(16)?;
                parse_attributes(key, &attributes)?;
                let slot = state.slot_mut(key);
                if slot.attributes != attributes {
                    // A key of another algorithm is no key for these attributes.
                    slot.attributes = attributes;
                    slot.key = None;
                    slot.origin = KeyOrigin::None;
                    slot.fingerprint = vec![0; 20];
                    slot.generated_at = vec![0; 4];
                }
            }
            0x00C4 => {
                // §4.4.3.8: only the first byte (PW1 validity for PSO:CDS) can be written.
                match exact_len(1)?.as_slice() {
                    [0x00] => state.pw1_valid_for_several_signatures = false,
                    [0x01] => state.pw1_valid_for_several_signatures = true,
                    _ => return Err(StatusWord::INCORRECT_DATA),
                }
            }
            0x00C7..=0x00C9 => {
                let key = key_of_offset(tag - 0xC7);
                state.slot_mut(key).fingerprint = exact_len(20)?;
            }
            0x00CA..=0x00CC => {
                let key = key_of_offset(tag - 0xCA);
                state.slot_mut(key).ca_fingerprint = exact_len(20)?;
            }
            0x00CE..=0x00D0 => {
                let key = key_of_offset(tag - 0xCE);
                state.slot_mut(key).generated_at = exact_len(4)?;
            }
            0x00D3 => {
                // §4.3 resetting code: empty data deletes it.
                if data.is_empty() {
                    state.rc = None;
                } else {
                    check_pw_len(data, PW3_MIN)?;
                    state.rc = Some(Pin::new(data, PW_TRIES));
                }
            }
            _ => {
                // 7F21: the certificate of the occurrence chosen by SELECT DATA.
                let certificate = max_len(usize::from(MAX_CERTIFICATE))?;
                let key = KeyRef::from_occurrence(self.volatile.occurrence)
                    .ok_or(StatusWord::REFERENCED_DATA_NOT_FOUND)?;
                self.state.slot_mut(key).certificate = certificate;
            }
        }
        Ok(Vec::new())
    }

    /// §7.2.5 SELECT DATA (INS A5): P1 occurrence 0..2, P2 04, data 60 { 5C { 7F 21 } }.
    /// Only the cardholder certificate DO has occurrences.
    pub(super) fn select_data(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.p1 > 2 || cmd.p2 != 0x04 {
            return Err(StatusWord::WRONG_P1P2);
        }
        let (outer, rest) = ber::decode_one(cmd.data, ParseOptions::LENIENT)
            .map_err(|_| StatusWord::INCORRECT_DATA)?;
        if outer.tag().value() != 0x60 || !rest.is_empty() {
            return Err(StatusWord::INCORRECT_DATA);
        }
        let tag_list = outer
            .find(ber::Tag::new(0x5C))
            .map_err(|_| StatusWord::INCORRECT_DATA)?
            .ok_or(StatusWord::INCORRECT_DATA)?;
        if tag_list.value() != [0x7F, 0x21] {
            return Err(StatusWord::REFERENCED_DATA_NOT_FOUND);
        }
        self.volatile.occurrence = cmd.p1;
        Ok(Vec::new())
    }

    /// §7.2.7 GET NEXT DATA (INS CC): the next occurrence of 7F21.
    pub(super) fn get_next_data(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.p1p2() != 0x7F21 {
            return Err(StatusWord::REFERENCED_DATA_NOT_FOUND);
        }
        if !cmd.data.is_empty() {
            return Err(StatusWord::WRONG_LENGTH);
        }
        let next = self.volatile.occurrence + 1;
        let key = KeyRef::from_occurrence(next).ok_or(StatusWord::REFERENCED_DATA_NOT_FOUND)?;
        self.volatile.occurrence = next;
        Ok(self.state.slot(key).certificate.clone())
    }
}

/// SIG, DEC, AUT for offsets 0, 1, 2 from the first tag of a group (C7, CA, CE).
fn key_of_offset(offset: u16) -> KeyRef {
    match offset {
        0 => KeyRef::Sig,
        1 => KeyRef::Dec,
        _ => KeyRef::Aut,
    }
}

/// §4.4.1 digital signature counter (93): 3 bytes.
fn counter_bytes(counter: u32) -> [u8; 3] {
    let [_, a, b, c] = counter.to_be_bytes();
    [a, b, c]
}
