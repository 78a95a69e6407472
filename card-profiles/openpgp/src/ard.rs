//! The Application Related Data (OpenPGP card 3.4 §4.4.1, DO 6E) and the DOs inside it,
//! parsed once per session: AID, historical bytes, extended length information, extended
//! capabilities, algorithm attributes, PW status bytes, fingerprints and generation dates.
//!
//! Sans-IO: bytes in, values out. Every parser names the DO it failed on.

use scard_iso7816::tlv::ber::{self, ParseOptions, Tag};
use scard_iso7816::tlv::compact;
use scard_minidriver::{CardError, Curve, KeyAlgorithm, Result};

/// The operation named in parse errors.
const OP: &str = "GET DATA 6E (application related data)";

fn bad(reason: impl Into<String>) -> CardError {
    CardError::Malformed { operation: OP, reason: reason.into() }
}

/// One of the card's three keys (§4.4.1: signature, decryption, authentication), in
/// container-index order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Container 0: the signature key (PSO:COMPUTE DIGITAL SIGNATURE, PW1 81).
    Sig,
    /// Container 1: the decryption key (PSO:DECIPHER, PW1 82).
    Dec,
    /// Container 2: the authentication key (INTERNAL AUTHENTICATE, PW1 82).
    Aut,
}

impl Role {
    /// In container-index order.
    pub const ALL: [Role; 3] = [Role::Sig, Role::Dec, Role::Aut];

    /// The role of a container index.
    pub fn of_index(index: u8) -> Option<Role> {
        Role::ALL.get(usize::from(index)).copied()
    }

    /// The container index (0, 1, 2).
    pub fn index(self) -> u8 {
        match self {
            Role::Sig => 0,
            Role::Dec => 1,
            Role::Aut => 2,
        }
    }

    /// §4.4.1 key reference number (DE: 01, 02, 03).
    pub fn key_number(self) -> u8 {
        self.index() + 1
    }

    /// §7.2.14 control reference template of the key: B6, B8, A4.
    pub fn crt(self) -> u8 {
        match self {
            Role::Sig => 0xB6,
            Role::Dec => 0xB8,
            Role::Aut => 0xA4,
        }
    }

    /// §4.4.3.9 algorithm attributes DO: C1, C2, C3.
    pub fn attributes_tag(self) -> u16 {
        0xC1 + u16::from(self.index())
    }

    /// §4.4.2 fingerprint DO written by the host: C7, C8, C9.
    pub fn fingerprint_tag(self) -> u16 {
        0xC7 + u16::from(self.index())
    }

    /// §4.4.2 generation date DO written by the host: CE, CF, D0.
    pub fn date_tag(self) -> u16 {
        0xCE + u16::from(self.index())
    }

    /// §7.2.5 SELECT DATA occurrence of the key's cardholder certificate in DO 7F21: the
    /// certificates are stored AUT, DEC, SIG, so AUT is occurrence 0 and SIG occurrence 2.
    pub fn certificate_occurrence(self) -> u8 {
        match self {
            Role::Aut => 0,
            Role::Dec => 1,
            Role::Sig => 2,
        }
    }

    /// Short name for container names.
    pub fn short(self) -> &'static str {
        match self {
            Role::Sig => "SIG",
            Role::Dec => "DEC",
            Role::Aut => "AUT",
        }
    }

    /// Label for people.
    pub fn label(self) -> &'static str {
        match self {
            Role::Sig => "OpenPGP signature key",
            Role::Dec => "OpenPGP decryption key",
            Role::Aut => "OpenPGP authentication key",
        }
    }
}

/// §4.4.3.9 algorithm ID of RSA.
pub const ALG_RSA: u8 = 0x01;
/// §4.4.3.9 algorithm ID of ECDH (RFC 6637).
pub const ALG_ECDH: u8 = 0x12;
/// §4.4.3.9 algorithm ID of ECDSA (RFC 6637).
pub const ALG_ECDSA: u8 = 0x13;

/// §4.4.3.9 curve OIDs (DER contents, no tag or length): NIST P-256 1.2.840.10045.3.1.7,
/// P-384 1.3.132.0.34, P-521 1.3.132.0.35.
pub const OID_P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
/// P-384.
pub const OID_P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
/// P-521.
pub const OID_P521: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x23];

/// The OID of a curve.
pub fn curve_oid(curve: Curve) -> &'static [u8] {
    match curve {
        Curve::P256 => OID_P256,
        Curve::P384 => OID_P384,
        Curve::P521 => OID_P521,
    }
}

/// §4.4.3.9 algorithm attributes of one key (C1, C2 or C3), with the bytes as the card
/// gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    /// The DO value.
    pub raw: Vec<u8>,
    /// What it says.
    pub kind: AttrKind,
}

/// The algorithm of [`Attributes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrKind {
    /// RSA (01): modulus and public exponent sizes in bits.
    Rsa {
        /// Modulus bits.
        n_bits: u16,
        /// Public exponent bits.
        e_bits: u16,
    },
    /// ECDSA (13) or ECDH (12) on a NIST curve.
    Ec {
        /// 12 or 13.
        algorithm_id: u8,
        /// The curve.
        curve: Curve,
    },
    /// Something this profile does not use (EdDSA, Curve25519, brainpool, ...).
    Other {
        /// The algorithm ID byte.
        algorithm_id: u8,
    },
}

impl Attributes {
    /// Parses a C1/C2/C3 value. §4.4.3.9: RSA is `01 | n bits (2) | e bits (2) | [format]`;
    /// ECC is `algorithm ID | curve OID | [import format 00 or FF]`.
    pub fn parse(raw: &[u8]) -> Result<Self> {
        let kind = match raw {
            [ALG_RSA, n1, n2, e1, e2, rest @ ..] if rest.len() <= 1 => AttrKind::Rsa {
                n_bits: u16::from_be_bytes([*n1, *n2]),
                e_bits: u16::from_be_bytes([*e1, *e2]),
            },
            [ALG_RSA, ..] => {
                return Err(bad(format!("RSA algorithm attributes of {} bytes", raw.len())));
            }
            [id @ (ALG_ECDH | ALG_ECDSA), oid @ ..] => {
                // An optional last byte says the import format (00, or FF: with public key).
                let oid = match oid {
                    [o @ .., 0x00 | 0xFF] if curve_of_oid(o).is_some() => o,
                    o => o,
                };
                match curve_of_oid(oid) {
                    Some(curve) => AttrKind::Ec { algorithm_id: *id, curve },
                    None => AttrKind::Other { algorithm_id: *id },
                }
            }
            [id, ..] => AttrKind::Other { algorithm_id: *id },
            [] => return Err(bad("empty algorithm attributes")),
        };
        Ok(Self { raw: raw.to_vec(), kind })
    }

    /// The key algorithm, when it is one the minidriver layer knows (RSA, NIST curves).
    pub fn algorithm(&self) -> Option<KeyAlgorithm> {
        match self.kind {
            AttrKind::Rsa { n_bits, .. } => Some(KeyAlgorithm::Rsa(n_bits)),
            AttrKind::Ec { curve, .. } => Some(KeyAlgorithm::Ec(curve)),
            AttrKind::Other { .. } => None,
        }
    }

    /// The attribute bytes for generating `alg` as `role`'s key. RSA keeps the current
    /// exponent size when the current attributes are RSA (cards differ: 17 or 32 bits), else
    /// 32 bits (§4.4.3.9 example), import format 00 (standard). ECC: ECDH (12) for the
    /// decryption key, ECDSA (13) otherwise, then the curve OID.
    pub fn for_generation(alg: KeyAlgorithm, role: Role, current: &Attributes) -> Vec<u8> {
        match alg {
            KeyAlgorithm::Rsa(bits) => {
                let e_bits = match current.kind {
                    AttrKind::Rsa { e_bits, .. } => e_bits,
                    _ => 32,
                };
                let [n1, n2] = bits.to_be_bytes();
                let [e1, e2] = e_bits.to_be_bytes();
                vec![ALG_RSA, n1, n2, e1, e2, 0x00]
            }
            KeyAlgorithm::Ec(curve) => {
                let id = if role == Role::Dec { ALG_ECDH } else { ALG_ECDSA };
                let mut v = vec![id];
                v.extend_from_slice(curve_oid(curve));
                v
            }
        }
    }
}

fn curve_of_oid(oid: &[u8]) -> Option<Curve> {
    match oid {
        o if o == OID_P256 => Some(Curve::P256),
        o if o == OID_P384 => Some(Curve::P384),
        o if o == OID_P521 => Some(Curve::P521),
        _ => None,
    }
}

/// §4.4.3.8 PW status bytes (C4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PwStatus {
    /// Byte 1: 00 = PW1 (81) valid for one PSO:CDS only; 01 = for several.
    pub pw1_multiple_signatures: bool,
    /// Byte 2: maximum length of PW1 (bit 8 = format 2 PIN block; ignored here).
    pub pw1_max: u8,
    /// Byte 3: maximum length of the resetting code.
    pub rc_max: u8,
    /// Byte 4: maximum length of PW3.
    pub pw3_max: u8,
    /// Byte 5: tries left of PW1.
    pub pw1_tries: u8,
    /// Byte 6: tries left of the resetting code (0: not set or blocked).
    pub rc_tries: u8,
    /// Byte 7: tries left of PW3.
    pub pw3_tries: u8,
}

impl PwStatus {
    /// Parses the 7 bytes of C4.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        match bytes {
            [b1, b2, b3, b4, b5, b6, b7] => Ok(Self {
                pw1_multiple_signatures: *b1 != 0,
                pw1_max: b2 & 0x7F,
                rc_max: b3 & 0x7F,
                pw3_max: b4 & 0x7F,
                pw1_tries: *b5,
                rc_tries: *b6,
                pw3_tries: *b7,
            }),
            _ => Err(CardError::Malformed {
                operation: "PW status bytes (C4)",
                reason: format!("{} bytes, C4 has 7", bytes.len()),
            }),
        }
    }
}

/// §4.4.3.7 extended capabilities (C0), version 3 layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExtendedCapabilities {
    /// Byte 1, the flags: b8 secure messaging, b7 GET CHALLENGE, b6 key import, b5 PW status
    /// changeable, b4 private use DOs, b3 algorithm attributes changeable, b2 PSO:DEC/ENC
    /// with AES, b1 KDF-DO.
    pub flags: u8,
    /// Bytes 3-4: longest GET CHALLENGE.
    pub max_challenge: u16,
    /// Bytes 5-6: longest cardholder certificate (each 7F21 occurrence).
    pub max_certificate: u16,
    /// Bytes 7-8: longest special DO (private use, login data, URL), when given.
    pub max_special_do: Option<u16>,
}

impl ExtendedCapabilities {
    /// b4 of byte 1: private use DOs 0101-0104 are supported.
    pub fn private_use_dos(&self) -> bool {
        self.flags & 0x08 != 0
    }
    /// b6 of byte 1: key import.
    pub fn key_import(&self) -> bool {
        self.flags & 0x20 != 0
    }
    /// b3 of byte 1: algorithm attributes can be changed with PUT DATA.
    pub fn attributes_changeable(&self) -> bool {
        self.flags & 0x04 != 0
    }

    fn parse(bytes: &[u8]) -> Result<Self> {
        let err = || CardError::Malformed {
            operation: "extended capabilities (C0)",
            reason: format!("{} bytes, C0 has 10 in version 3", bytes.len()),
        };
        let u16_at = |i: usize| -> Option<u16> {
            Some(u16::from_be_bytes([*bytes.get(i)?, *bytes.get(i + 1)?]))
        };
        let flags = *bytes.first().ok_or_else(err)?;
        Ok(Self {
            flags,
            max_challenge: u16_at(2).ok_or_else(err)?,
            max_certificate: u16_at(4).ok_or_else(err)?,
            max_special_do: u16_at(6),
        })
    }
}

/// ISO/IEC 7816-4 §8.1.1.2.7 card capabilities, third byte, as the historical bytes (5F52)
/// state them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CardCapabilities {
    /// b8: command chaining.
    pub command_chaining: bool,
    /// b7: extended Lc and Le fields.
    pub extended_length: bool,
}

impl CardCapabilities {
    /// From historical bytes: category indicator 00 (COMPACT-TLV objects, then a 3-byte
    /// status indicator) or 80 (COMPACT-TLV objects only), object 7x (card capabilities).
    pub fn from_historical(historical: &[u8]) -> Option<Self> {
        let objects = match historical {
            [0x00, rest @ ..] => rest.get(..rest.len().checked_sub(3)?)?,
            [0x80, rest @ ..] => rest,
            _ => return None,
        };
        compact::iter(objects)
            .map_while(|o| o.ok())
            .find(|o| o.tag() == compact::CARD_CAPABILITIES)
            .and_then(|o| {
                let third = *o.value().get(2)?;
                Some(Self {
                    command_chaining: third & 0x80 != 0,
                    extended_length: third & 0x40 != 0,
                })
            })
    }
}

/// The application identifier (§4.2.1): D2 76 00 01 24 | 01 | version (2) | manufacturer (2)
/// | serial (4) | RFU (2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aid(pub [u8; 16]);

impl Aid {
    /// Parses the 16 bytes of DO 4F, checking the RID and application byte.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let aid: [u8; 16] = bytes
            .try_into()
            .map_err(|_| bad(format!("AID (4F) of {} bytes, expected 16", bytes.len())))?;
        if aid.get(..6) != Some(&crate::AID_PREFIX[..]) {
            return Err(bad("AID (4F) is not the OpenPGP application's (D2 76 00 01 24 01)"));
        }
        Ok(Self(aid))
    }
    /// Bytes 7-8: the specification version (BCD), e.g. 03 04.
    pub fn version(&self) -> (u8, u8) {
        let [_, _, _, _, _, _, major, minor, ..] = self.0;
        (major, minor)
    }
    /// Bytes 9-10: the manufacturer.
    pub fn manufacturer(&self) -> u16 {
        let [_, _, _, _, _, _, _, _, m1, m2, ..] = self.0;
        u16::from_be_bytes([m1, m2])
    }
    /// Bytes 11-14: the serial number.
    pub fn serial(&self) -> [u8; 4] {
        let [_, _, _, _, _, _, _, _, _, _, s1, s2, s3, s4, _, _] = self.0;
        [s1, s2, s3, s4]
    }
}

/// Everything this profile reads from DO 6E.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationData {
    /// 4F.
    pub aid: Aid,
    /// 5F52 (empty when absent).
    pub historical: Vec<u8>,
    /// 7F66: (largest command APDU, largest response APDU) in bytes, when given.
    pub extended_length_info: Option<(u16, u16)>,
    /// C0.
    pub capabilities: ExtendedCapabilities,
    /// C1, C2, C3.
    pub attributes: [Attributes; 3],
    /// C4.
    pub pw_status: PwStatus,
    /// C5: SIG, DEC, AUT fingerprints (all zero: no key).
    pub fingerprints: [[u8; 20]; 3],
    /// CD: generation dates (seconds since 1970; 0 when absent).
    pub dates: [u32; 3],
    /// The last [`ApplicationData::key_digest`] and what it was computed from.
    digest_memo: DigestMemo,
}

/// What the key digest was last computed from (fingerprints and dates as hashed) and the
/// digest: the profile asks for it several times per transaction, and the fingerprints and
/// dates are public fields the profile changes in place, so the memo is checked against
/// them rather than trusted. Not part of the data: always equal, not shown.
#[derive(Clone, Default)]
struct DigestMemo(std::cell::Cell<Option<([u8; 72], [u8; 8])>>);

impl PartialEq for DigestMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for DigestMemo {}

impl std::fmt::Debug for DigestMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("..")
    }
}

impl ApplicationData {
    /// Parses the GET DATA 6E answer: the contents of 6E, or 6E itself (some cards wrap it).
    /// The discretionary DOs are read from 73 (and, leniently, from the top level when a card
    /// puts them there).
    pub fn parse(data: &[u8]) -> Result<Self> {
        let opts = ParseOptions::LENIENT;
        let codec = |source| CardError::Codec { operation: OP, source };
        ber::validate(data, opts).map_err(codec)?;
        let body = match ber::decode_one(data, opts).map_err(codec)? {
            (outer, []) if outer.tag() == Tag::new(0x6E) => outer.value(),
            _ => data,
        };
        let top = |tag: u32| ber::find(body, Tag::new(tag), opts).map_err(codec);
        let dd = top(0x73)?.map(|t| t.value());
        let disc = |tag: u32| -> Result<Option<&[u8]>> {
            if let Some(dd) = dd {
                if let Some(t) = ber::find(dd, Tag::new(tag), opts).map_err(codec)? {
                    return Ok(Some(t.value()));
                }
            }
            Ok(top(tag)?.map(|t| t.value()))
        };
        let need = |tag: u32, name: &str| -> Result<&[u8]> {
            disc(tag)?.ok_or_else(|| bad(format!("{name} ({tag:02X}) missing")))
        };

        let aid = Aid::parse(top(0x4F)?.ok_or_else(|| bad("AID (4F) missing"))?.value())?;
        let historical = top(0x5F52)?.map(|t| t.value().to_vec()).unwrap_or_default();
        let extended_length_info = match top(0x7F66)? {
            Some(t) => Some(parse_extended_length_info(t.value())?),
            None => None,
        };
        let capabilities = ExtendedCapabilities::parse(need(0xC0, "extended capabilities")?)?;
        let attributes = [
            Attributes::parse(need(0xC1, "signature key attributes")?)?,
            Attributes::parse(need(0xC2, "decryption key attributes")?)?,
            Attributes::parse(need(0xC3, "authentication key attributes")?)?,
        ];
        let pw_status = PwStatus::parse(need(0xC4, "PW status bytes")?)?;
        let fpr = need(0xC5, "fingerprints")?;
        if fpr.len() != 60 {
            return Err(bad(format!("fingerprints (C5) of {} bytes, expected 60", fpr.len())));
        }
        let mut fingerprints = [[0u8; 20]; 3];
        for (slot, chunk) in fingerprints.iter_mut().zip(fpr.chunks_exact(20)) {
            slot.copy_from_slice(chunk);
        }
        let mut dates = [0u32; 3];
        if let Some(cd) = disc(0xCD)? {
            if cd.len() != 12 {
                return Err(bad(format!(
                    "generation dates (CD) of {} bytes, expected 12",
                    cd.len()
                )));
            }
            for (slot, chunk) in dates.iter_mut().zip(cd.chunks_exact(4)) {
                *slot = u32::from_be_bytes(<[u8; 4]>::try_from(chunk).unwrap_or_default());
            }
        }
        Ok(Self {
            aid,
            historical,
            extended_length_info,
            capabilities,
            attributes,
            pw_status,
            fingerprints,
            dates,
            digest_memo: DigestMemo::default(),
        })
    }

    /// The attributes of a key.
    pub fn attributes(&self, role: Role) -> &Attributes {
        let [sig, dec, aut] = &self.attributes;
        pick(role, sig, dec, aut)
    }

    /// The fingerprint of a key.
    pub fn fingerprint(&self, role: Role) -> &[u8; 20] {
        let [sig, dec, aut] = &self.fingerprints;
        pick(role, sig, dec, aut)
    }

    /// The generation date of a key (0: none written).
    pub fn date(&self, role: Role) -> u32 {
        let [sig, dec, aut] = self.dates;
        *pick(role, &sig, &dec, &aut)
    }

    /// Whether a key is there: its fingerprint is not all zero (what GnuPG and OpenSC go by).
    pub fn has_key(&self, role: Role) -> bool {
        self.fingerprint(role).iter().any(|&b| b != 0)
    }

    /// What the card says about extended length in its historical bytes.
    pub fn card_capabilities(&self) -> Option<CardCapabilities> {
        CardCapabilities::from_historical(&self.historical)
    }

    /// Digest of the key-identifying DOs (C5 fingerprints and CD dates): changes whenever
    /// anyone generates, imports or deletes a key the way GnuPG and OpenSC do.
    pub fn key_digest(&self) -> [u8; 8] {
        use sha2::Digest;
        // The three fingerprints, then the three dates big-endian (60 + 12 bytes).
        let mut input = [0u8; 72];
        let (fprs, dates) = input.split_at_mut(60);
        for (chunk, f) in fprs.chunks_exact_mut(20).zip(&self.fingerprints) {
            chunk.copy_from_slice(f);
        }
        for (chunk, d) in dates.chunks_exact_mut(4).zip(&self.dates) {
            chunk.copy_from_slice(&d.to_be_bytes());
        }
        if let Some((seen, digest)) = self.digest_memo.0.get() {
            if seen == input {
                return digest;
            }
        }
        let full = sha2::Sha256::digest(input);
        let mut out = [0u8; 8];
        for (o, b) in out.iter_mut().zip(full.iter()) {
            *o = *b;
        }
        self.digest_memo.0.set(Some((input, out)));
        out
    }
}

/// One of three values by role.
pub fn pick<'a, T: ?Sized>(role: Role, sig: &'a T, dec: &'a T, aut: &'a T) -> &'a T {
    match role {
        Role::Sig => sig,
        Role::Dec => dec,
        Role::Aut => aut,
    }
}

/// §4.4.1 7F66: two DER INTEGERs of 2 bytes, 02 02 xxxx 02 02 yyyy.
fn parse_extended_length_info(v: &[u8]) -> Result<(u16, u16)> {
    match v {
        [0x02, 0x02, c1, c2, 0x02, 0x02, r1, r2] => {
            Ok((u16::from_be_bytes([*c1, *c2]), u16::from_be_bytes([*r1, *r2])))
        }
        _ => Err(bad("extended length information (7F66) is not 02 02 xxxx 02 02 yyyy")),
    }
}

/// Parses the public key template of GENERATE ASYMMETRIC KEY PAIR (§7.2.14): 7F49 { 81 n,
/// 82 e } for RSA, 7F49 { 86 point } for ECC. `expected` is the algorithm the attributes
/// say; a key of another algorithm is an error.
pub fn parse_public_key(
    operation: &'static str,
    data: &[u8],
    expected: KeyAlgorithm,
) -> Result<scard_minidriver::PublicKey> {
    let opts = ParseOptions::LENIENT;
    let codec = |source| CardError::Codec { operation, source };
    let malformed = |reason: String| CardError::Malformed { operation, reason };
    let (outer, rest) = ber::decode_one(data, opts).map_err(codec)?;
    if outer.tag() != Tag::new(0x7F49) || !rest.is_empty() {
        return Err(malformed("not a public key template (7F49)".into()));
    }
    let child = |tag: u32| outer.find(Tag::new(tag)).map_err(codec);
    let key = match expected {
        KeyAlgorithm::Rsa(_) => {
            let (Some(n), Some(e)) = (child(0x81)?, child(0x82)?) else {
                return Err(malformed(
                    "RSA public key without modulus (81) or exponent (82)".into(),
                ));
            };
            scard_minidriver::PublicKey::rsa(n.value(), e.value())
        }
        KeyAlgorithm::Ec(curve) => {
            let point =
                child(0x86)?.ok_or_else(|| malformed("EC public key without point (86)".into()))?;
            let point = point.value();
            if point.len() != 1 + 2 * curve.field_len() || point.first() != Some(&0x04) {
                return Err(malformed(format!(
                    "EC point of {} bytes is not an uncompressed {curve:?} point",
                    point.len()
                )));
            }
            scard_minidriver::PublicKey::Ec { curve, point: point.to_vec() }
        }
    };
    // Errors about the key name the card operation that returned it.
    let got = key.algorithm().map_err(|e| malformed(e.to_string()))?;
    if got != expected {
        return Err(malformed(format!(
            "the card returned a {got} key, its attributes say {expected}"
        )));
    }
    if let KeyAlgorithm::Ec(_) = expected {
        // A point that is not on the curve is no key.
        key.to_spki_der().map_err(|e| malformed(format!("not a valid key: {e}")))?;
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer of scard-sim's OpenPGP card (no 6E wrapper), as built by its data.rs.
    fn sample(wrapped: bool) -> Vec<u8> {
        let mut dd = Vec::new();
        let put =
            |out: &mut Vec<u8>, tag: u32, v: &[u8]| ber::write(out, Tag::new(tag), v).unwrap();
        put(&mut dd, 0xC0, &[0x7C, 0, 0x08, 0, 0x08, 0, 0, 0xFF, 0, 0]);
        put(&mut dd, 0xC1, &[1, 8, 0, 0, 0x20, 0]);
        put(&mut dd, 0xC2, &[0x12, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07, 0xFF]);
        put(&mut dd, 0xC3, &[0x13, 0x2B, 0x81, 0x04, 0x00, 0x22]);
        put(&mut dd, 0xC4, &[0, 127, 127, 127, 3, 0, 3]);
        let mut fpr = vec![0u8; 60];
        fpr[20] = 1;
        put(&mut dd, 0xC5, &fpr);
        put(&mut dd, 0xC6, &[0; 60]);
        put(&mut dd, 0xCD, &[0, 0, 0, 0, 0x60, 0, 0, 1, 0, 0, 0, 0]);
        let mut body = Vec::new();
        put(&mut body, 0x4F, &[0xD2, 0x76, 0, 1, 0x24, 1, 3, 4, 0xFF, 0xFF, 1, 2, 3, 4, 0, 0]);
        put(&mut body, 0x5F52, &[0x00, 0x31, 0xF5, 0x73, 0xC0, 0x01, 0x60, 0x00, 0x90, 0x00]);
        put(&mut body, 0x7F66, &[2, 2, 0x10, 0, 2, 2, 0x10, 0]);
        put(&mut body, 0x73, &dd);
        if wrapped {
            let mut out = Vec::new();
            put(&mut out, 0x6E, &body);
            out
        } else {
            body
        }
    }

    #[test]
    fn parses_the_application_related_data() {
        for wrapped in [false, true] {
            let ard = ApplicationData::parse(&sample(wrapped)).unwrap();
            assert_eq!(ard.aid.manufacturer(), 0xFFFF);
            assert_eq!(ard.aid.serial(), [1, 2, 3, 4]);
            assert_eq!(ard.aid.version(), (3, 4));
            assert_eq!(ard.attributes(Role::Sig).algorithm(), Some(KeyAlgorithm::Rsa(2048)));
            assert_eq!(ard.attributes(Role::Dec).algorithm(), Some(KeyAlgorithm::Ec(Curve::P256)));
            assert_eq!(
                ard.attributes(Role::Dec).kind,
                AttrKind::Ec { algorithm_id: ALG_ECDH, curve: Curve::P256 }
            );
            assert_eq!(ard.attributes(Role::Aut).algorithm(), Some(KeyAlgorithm::Ec(Curve::P384)));
            assert_eq!(ard.pw_status.pw1_tries, 3);
            assert_eq!(ard.pw_status.rc_tries, 0);
            assert!(!ard.pw_status.pw1_multiple_signatures);
            assert!(!ard.has_key(Role::Sig) && ard.has_key(Role::Dec) && !ard.has_key(Role::Aut));
            assert_eq!(ard.dates, [0, 0x6000_0001, 0]);
            assert_eq!(ard.extended_length_info, Some((0x1000, 0x1000)));
            assert!(ard.capabilities.private_use_dos());
            assert_eq!(ard.capabilities.max_certificate, 0x0800);
            let caps = ard.card_capabilities().unwrap();
            assert!(caps.extended_length && !caps.command_chaining);
        }
    }

    #[test]
    fn the_key_digest_follows_the_fields_it_is_made_of() {
        use sha2::Digest;
        // The digest as the record on cards holds it: SHA-256 over C5 then CD, first 8 bytes.
        let expected = |ard: &ApplicationData| {
            let mut h = sha2::Sha256::new();
            ard.fingerprints.iter().for_each(|f| h.update(f));
            ard.dates.iter().for_each(|d| h.update(d.to_be_bytes()));
            <[u8; 8]>::try_from(&h.finalize()[..8]).unwrap()
        };
        let mut ard = ApplicationData::parse(&sample(false)).unwrap();
        let first = ard.key_digest();
        assert_eq!(first, expected(&ard));
        assert_eq!(ard.key_digest(), first);
        // Changed in place (as the profile does after generating or deleting a key).
        ard.fingerprints[2] = [7; 20];
        assert_eq!(ard.key_digest(), expected(&ard));
        assert_ne!(ard.key_digest(), first);
        ard.dates[0] = 1;
        assert_eq!(ard.key_digest(), expected(&ard));
        ard.fingerprints[2] = [0; 20];
        ard.dates[0] = 0;
        assert_eq!(ard.key_digest(), first);
        // The memo is no part of equality.
        assert_eq!(ard, ApplicationData::parse(&sample(false)).unwrap());
    }

    #[test]
    fn garbage_is_an_error_naming_the_do() {
        let good = sample(false);
        // Truncated anywhere: an error, never a panic.
        for cut in 0..good.len() {
            let _ = ApplicationData::parse(&good[..cut]);
        }
        let err = ApplicationData::parse(&good[..good.len() - 3]).unwrap_err().to_string();
        assert!(err.contains("GET DATA 6E"), "{err}");
        let no_c4: Vec<u8> = {
            let s = sample(false);
            let at = s.windows(2).position(|w| w == [0xC4, 7]).unwrap();
            let mut v = s.clone();
            v[at] = 0xD9; // an unknown DO instead of C4
            v
        };
        let err = ApplicationData::parse(&no_c4).unwrap_err().to_string();
        assert!(err.contains("PW status bytes (C4) missing"), "{err}");
    }

    #[test]
    fn attributes_for_generation() {
        let rsa17 = Attributes::parse(&[1, 8, 0, 0, 0x11, 0]).unwrap();
        assert_eq!(
            Attributes::for_generation(KeyAlgorithm::Rsa(4096), Role::Sig, &rsa17),
            [1, 0x10, 0, 0, 0x11, 0]
        );
        let ec = Attributes::parse(&[0x13, 0x2B, 0x81, 0x04, 0x00, 0x22]).unwrap();
        assert_eq!(
            Attributes::for_generation(KeyAlgorithm::Rsa(2048), Role::Sig, &ec),
            [1, 8, 0, 0, 0x20, 0]
        );
        let p256 = Attributes::for_generation(KeyAlgorithm::Ec(Curve::P256), Role::Dec, &ec);
        assert_eq!(p256[0], ALG_ECDH);
        assert_eq!(&p256[1..], OID_P256);
        assert_eq!(
            Attributes::parse(&[0x16, 0x2B, 0x06, 0x01, 0x04, 0x01, 0xDA, 0x47, 0x0F, 0x01])
                .unwrap()
                .kind,
            AttrKind::Other { algorithm_id: 0x16 }
        );
        assert!(Attributes::parse(&[1, 8]).is_err());
    }

    #[test]
    fn historical_bytes() {
        let caps = CardCapabilities::from_historical(&[0x80, 0x73, 0xFF, 0x01, 0x00]).unwrap();
        assert!(!caps.extended_length);
        assert!(CardCapabilities::from_historical(&[0x00, 0x73]).is_none());
        assert!(CardCapabilities::from_historical(&[]).is_none());
    }

    #[test]
    fn a_point_off_the_curve_is_malformed_naming_the_operation() {
        // Found by the hostile card (seed 958): a GENERATE (read) answer with a flipped byte
        // in the point. The error names the card operation, not "public key".
        let mut point = vec![0x04];
        point.extend_from_slice(&[0x11; 64]);
        let mut data = vec![0x7F, 0x49, 0x43, 0x86, 0x41];
        data.extend_from_slice(&point);
        let err =
            parse_public_key("GENERATE (read)", &data, KeyAlgorithm::Ec(Curve::P256)).unwrap_err();
        assert!(matches!(err, CardError::Malformed { operation: "GENERATE (read)", .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("GENERATE (read): malformed card response: not a valid key")
        );
    }
}
