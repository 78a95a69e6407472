//! Sans-IO codecs of the byte layouts a GIDS card stores or answers: the master file that maps
//! minidriver file names to data objects, the key map, a data object as GET DATA returns it,
//! the PIN status template, the public-key template, and the key-file FCPs this profile creates.
//!
//! The GIDS 1.0 specification defines the card edge (GET DATA / PUT DATA of DOs in BER-TLV
//! EFs, key files with control reference templates); the master file and key map layouts are
//! not in it: they are the Windows GIDS minidriver's, as OpenSC's GIDS driver
//! (card-gids.c / card-gids.h) writes and reads them. Every layout names its source.

use scard_iso7816::cursor::Cursor;
use scard_iso7816::tlv::ber::{self, ParseOptions, Tag};
use scard_minidriver::{CardError, Curve, KeyAlgorithm, PublicKey, Result};

/// BER-TLV as cards write it: non-minimal lengths tolerated (ISO/IEC 7816-4 §5.2.2.2 allows
/// them), no padding between objects, shallow nesting.
pub(crate) const CARD_TLV: ParseOptions =
    ParseOptions { allow_non_minimal_length: true, skip_padding: false, max_depth: 4 };

/// Largest file (DO value) the card stores (OpenSC card-gids.h MAX_GIDS_FILE_SIZE).
pub(crate) const MAX_FILE: usize = 65_000;

/// The EF holding the master file and the key map (OpenSC UserCreateDeleteDirAc_FI).
pub(crate) const MF_FID: u16 = 0xA000;
/// The master file DO (OpenSC MF_DO).
pub(crate) const MF_DO: u16 = 0xDF1F;
/// The key map DO, in [`MF_FID`] (OpenSC KEYMAP_DO).
pub(crate) const KEYMAP_DO: u16 = 0xDF20;
/// EveryoneReadUserWriteAc: cardapps, cardcf, cmapfile, certificates and new files.
pub(crate) const FID_READ_ALL_WRITE_USER: u16 = 0xA010;
/// UserWriteExecuteAc: written by the user or admin, never read.
pub(crate) const FID_WRITE_ONLY: u16 = 0xA011;
/// EveryoneReadAdminWriteAc: cardid, msroots.
pub(crate) const FID_READ_ALL_WRITE_ADMIN: u16 = 0xA012;
/// UserReadWriteAc.
pub(crate) const FID_USER_READ_WRITE: u16 = 0xA013;
/// AdminReadWriteAc.
pub(crate) const FID_ADMIN_READ_WRITE: u16 = 0xA014;
/// First DO number a new file may take (OpenSC gids_find_available_DO starts at CARDAPPS_DO).
pub(crate) const FIRST_FILE_DO: u16 = 0xDF21;
/// Last DO number a new file may take: the last two-byte tag of the private class.
pub(crate) const LAST_FILE_DO: u16 = 0xDFFE;

fn bad(operation: &'static str, reason: impl Into<String>) -> CardError {
    CardError::Malformed { operation, reason: reason.into() }
}

fn codec(operation: &'static str) -> impl Fn(scard_iso7816::Error) -> CardError {
    move |source| CardError::Codec { operation, source }
}

// ----- master file ---------------------------------------------------------------------------

/// One master-file record: where a minidriver file (or directory) lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MfRecord {
    /// The directory (empty for the root; for a directory record, its own name).
    pub(crate) directory: String,
    /// The file name (empty for a directory record).
    pub(crate) file: String,
    /// The EF holding the file's DO (for a directory, the EF its files' ACL came from).
    pub(crate) fid: u16,
    /// The DO within the EF (0 for a directory).
    pub(crate) do_id: u16,
}

impl MfRecord {
    /// Record size: OpenSC card-gids.h gids_mf_record_t as the Windows minidriver lays it out
    /// in memory (little-endian, 32-bit int alignment).
    pub(crate) const LEN: usize = 28;
    /// A name field: 8 characters and a terminating NUL.
    const NAME: usize = 9;

    /// Whether this is a directory record.
    pub(crate) fn is_directory(&self) -> bool {
        self.file.is_empty()
    }

    /// Whether this record names `directory/file` (case-insensitive: Windows file names are,
    /// and OpenSC writes kxc0A where the minidriver name is kxc0a).
    pub(crate) fn names(&self, directory: &str, file: &str) -> bool {
        self.directory.eq_ignore_ascii_case(directory) && self.file.eq_ignore_ascii_case(file)
    }

    fn decode_name(field: &[u8], what: &'static str) -> Result<String> {
        let op = "reading the GIDS master file";
        let end = field
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| bad(op, format!("{what} field without its terminating NUL")))?;
        let name = field.get(..end).unwrap_or_default();
        if !name.iter().all(|b| b.is_ascii_graphic()) {
            return Err(bad(op, format!("{what} {name:02X?} is not a printable ASCII name")));
        }
        Ok(String::from_utf8_lossy(name).into_owned())
    }

    fn decode(cur: &mut Cursor<'_>) -> Result<Self> {
        let op = "reading the GIDS master file";
        // Offsets 0-8: directory, 9-17: file name, NUL-terminated ASCII.
        let directory =
            Self::decode_name(cur.take(Self::NAME, "directory").map_err(codec(op))?, "directory")?;
        let file =
            Self::decode_name(cur.take(Self::NAME, "file name").map_err(codec(op))?, "file name")?;
        // Offsets 18-19: alignment padding.
        cur.take(2, "padding").map_err(codec(op))?;
        // Offsets 20-23: DO identifier, 24-27: file identifier, u32 little-endian.
        let do_id = cur.take_u32_le("DO identifier").map_err(codec(op))?;
        let fid = cur.take_u32_le("file identifier").map_err(codec(op))?;
        let do_id =
            u16::try_from(do_id).map_err(|_| bad(op, format!("DO identifier {do_id:#X}")))?;
        let fid = u16::try_from(fid).map_err(|_| bad(op, format!("file identifier {fid:#X}")))?;
        Ok(Self { directory, file, fid, do_id })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        for text in [&self.directory, &self.file] {
            let mut field = [0u8; Self::NAME];
            for (slot, byte) in field.iter_mut().zip(text.bytes().take(Self::NAME - 1)) {
                *slot = byte;
            }
            out.extend_from_slice(&field);
        }
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&u32::from(self.do_id).to_le_bytes());
        out.extend_from_slice(&u32::from(self.fid).to_le_bytes());
    }
}

/// The master file (DO DF1F of EF A000): a version byte 01, then 28-byte records.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct MasterFile {
    pub(crate) records: Vec<MfRecord>,
}

impl MasterFile {
    /// The version byte OpenSC's gids_read_masterfile requires.
    const VERSION: u8 = 0x01;

    /// Decodes the DO value.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self> {
        let op = "reading the GIDS master file";
        let mut cur = Cursor::new(bytes);
        let version = cur.take_u8("version").map_err(codec(op))?;
        if version != Self::VERSION {
            return Err(bad(op, format!("version {version:#04X}, expected 01")));
        }
        if cur.remaining() % MfRecord::LEN != 0 {
            return Err(bad(
                op,
                format!(
                    "{} bytes after the version are not whole 28-byte records",
                    cur.remaining()
                ),
            ));
        }
        let mut records = Vec::with_capacity(cur.remaining() / MfRecord::LEN);
        while !cur.is_empty() {
            records.push(MfRecord::decode(&mut cur)?);
        }
        Ok(Self { records })
    }

    /// Encodes the DO value.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.records.len() * MfRecord::LEN);
        out.push(Self::VERSION);
        for r in &self.records {
            r.encode(&mut out);
        }
        out
    }

    /// The record of a file.
    pub(crate) fn file(&self, directory: &str, file: &str) -> Option<&MfRecord> {
        self.records.iter().find(|r| !r.is_directory() && r.names(directory, file))
    }

    /// Whether `directory` exists (the root always does).
    pub(crate) fn has_directory(&self, directory: &str) -> bool {
        directory.is_empty()
            || self.records.iter().any(|r| r.directory.eq_ignore_ascii_case(directory))
    }

    /// The files of a directory, in record order.
    pub(crate) fn files_in(&self, directory: &str) -> Vec<String> {
        self.records
            .iter()
            .filter(|r| !r.is_directory() && r.directory.eq_ignore_ascii_case(directory))
            .map(|r| r.file.clone())
            .collect()
    }

    /// The first DO of EF `fid` no record uses, from DF21 on (OpenSC gids_find_available_DO).
    pub(crate) fn free_do(&self, fid: u16) -> Option<u16> {
        (FIRST_FILE_DO..=LAST_FILE_DO)
            .find(|d| !self.records.iter().any(|r| r.fid == fid && r.do_id == *d))
    }

    /// Removes a file's record.
    pub(crate) fn remove(&mut self, directory: &str, file: &str) -> Option<MfRecord> {
        let at = self.records.iter().position(|r| !r.is_directory() && r.names(directory, file))?;
        Some(self.records.remove(at))
    }
}

// ----- key map -------------------------------------------------------------------------------

/// One key-map record, tying container N to its key file (OpenSC card-gids.h
/// gids_keymap_record in memory: 12 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeymapRecord {
    /// Offsets 0-3: state, u32 LE (1: a key is present).
    pub(crate) state: u32,
    /// Offset 4: the key's GIDS crypto identifier.
    pub(crate) algid: u8,
    /// Offset 5: 9A AT_KEYEXCHANGE, 9C AT_SIGNATURE.
    pub(crate) key_type: u8,
    /// Offsets 6-7: the key file, u16 LE (B081 for key reference 81).
    pub(crate) key_fid: u16,
    /// Offsets 8-9: FFFF in every record OpenSC writes. Offsets 10-11: padding.
    pub(crate) unknown: u16,
}

/// Key type of a key-exchange key in the key map.
pub(crate) const KEY_TYPE_EXCHANGE: u8 = 0x9A;
/// Key type of a signature key in the key map.
pub(crate) const KEY_TYPE_SIGNATURE: u8 = 0x9C;

impl KeymapRecord {
    pub(crate) const LEN: usize = 12;

    /// The record of a deleted (or never used) container, as OpenSC's
    /// gids_delete_container_num leaves it.
    pub(crate) fn deleted() -> Self {
        Self { state: 0, algid: 0, key_type: 0, key_fid: 0xFFFF, unknown: 0xFFFF }
    }

    /// The record of a key.
    pub(crate) fn key(algid: u8, key_type: u8, key_ref: u8) -> Self {
        Self { state: 1, algid, key_type, key_fid: 0xB000 | u16::from(key_ref), unknown: 0xFFFF }
    }

    fn decode(cur: &mut Cursor<'_>) -> Result<Self> {
        let op = "reading the GIDS key map";
        let state = cur.take_u32_le("state").map_err(codec(op))?;
        let algid = cur.take_u8("algorithm").map_err(codec(op))?;
        let key_type = cur.take_u8("key type").map_err(codec(op))?;
        let key_fid = cur.take_u16_le("key file").map_err(codec(op))?;
        let unknown = cur.take_u16_le("reserved").map_err(codec(op))?;
        cur.take(2, "padding").map_err(codec(op))?;
        Ok(Self { state, algid, key_type, key_fid, unknown })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.state.to_le_bytes());
        out.push(self.algid);
        out.push(self.key_type);
        out.extend_from_slice(&self.key_fid.to_le_bytes());
        out.extend_from_slice(&self.unknown.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
    }
}

/// The key map (DO DF20 of EF A000): a version byte 01, then one record per cmapfile record.
/// An empty DO (or none at all) is a key map without records.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Keymap {
    pub(crate) records: Vec<KeymapRecord>,
}

impl Keymap {
    const VERSION: u8 = 0x01;

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self> {
        let op = "reading the GIDS key map";
        if bytes.is_empty() {
            return Ok(Self::default());
        }
        let mut cur = Cursor::new(bytes);
        let version = cur.take_u8("version").map_err(codec(op))?;
        if version != Self::VERSION {
            return Err(bad(op, format!("version {version:#04X}, expected 01")));
        }
        if cur.remaining() % KeymapRecord::LEN != 0 {
            return Err(bad(
                op,
                format!(
                    "{} bytes after the version are not whole 12-byte records",
                    cur.remaining()
                ),
            ));
        }
        let mut records = Vec::new();
        while !cur.is_empty() {
            records.push(KeymapRecord::decode(&mut cur)?);
        }
        Ok(Self { records })
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.records.len() * KeymapRecord::LEN);
        out.push(Self::VERSION);
        for r in &self.records {
            r.encode(&mut out);
        }
        out
    }

    /// Sets the record of container `index`, adding deleted records before it as needed.
    pub(crate) fn set(&mut self, index: usize, record: KeymapRecord) {
        if self.records.len() <= index {
            self.records.resize(index + 1, KeymapRecord::deleted());
        }
        if let Some(slot) = self.records.get_mut(index) {
            *slot = record;
        }
    }

    /// Pads with deleted records up to `count` (the number of cmapfile records): OpenSC refuses
    /// to create a key when the two disagree.
    pub(crate) fn pad_to(&mut self, count: usize) {
        if self.records.len() < count {
            self.records.resize(count, KeymapRecord::deleted());
        }
    }
}

// ----- data objects --------------------------------------------------------------------------

/// The tag bytes of a two-byte DO identifier as GET DATA's tag list carries them.
pub(crate) fn tag_list(do_id: u16) -> Vec<u8> {
    let [hi, lo] = do_id.to_be_bytes();
    vec![0x5C, 0x02, hi, lo]
}

/// The value of DO `do_id` from a GET DATA answer: exactly one BER-TLV object with that tag.
pub(crate) fn do_value(operation: &'static str, answer: &[u8], do_id: u16) -> Result<Vec<u8>> {
    let (tlv, rest) = ber::decode_one(answer, CARD_TLV).map_err(codec(operation))?;
    if tlv.tag() != Tag::new(u32::from(do_id)) {
        return Err(bad(operation, format!("answer is DO {}, expected {do_id:04X}", tlv.tag())));
    }
    if !rest.is_empty() {
        return Err(bad(operation, format!("{} bytes after DO {do_id:04X}", rest.len())));
    }
    Ok(tlv.value().to_vec())
}

/// The PUT DATA data field for DO `do_id`: the whole object.
pub(crate) fn do_object(do_id: u16, value: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(value.len() + 6);
    ber::write(&mut out, Tag::new(u32::from(do_id)), value)
        .map_err(codec("encoding a GIDS data object"))?;
    Ok(out)
}

/// The PIN status DO 7F71 (GET DATA 3FFF, GIDS 1.0 "PIN status"; OpenSC gids_get_pin_status):
/// 97 tries left (9F17 in older cards), 93 the try limit. Returns the tries left.
pub(crate) fn pin_tries(answer: &[u8]) -> Result<u8> {
    let op = "reading the PIN status";
    let (tlv, rest) = ber::decode_one(answer, CARD_TLV).map_err(codec(op))?;
    if tlv.tag() != Tag::new(0x7F71) {
        return Err(bad(op, format!("expected DO 7F71, got DO {}", tlv.tag())));
    }
    if !rest.is_empty() {
        return Err(bad(op, format!("{} trailing byte(s) after DO 7F71", rest.len())));
    }
    for tag in [0x97, 0x9F17] {
        if let Some(t) = tlv.find(Tag::new(tag)).map_err(codec(op))? {
            return match t.value() {
                [n] => Ok(*n),
                v => Err(bad(op, format!("try counter of {} bytes", v.len()))),
            };
        }
    }
    Err(bad(op, "no try counter (97) in the PIN status"))
}

/// A public key from the template 7F49 (ISO/IEC 7816-8 §5.1, as GIDS GET DATA 3FFF {70 ..} and
/// GENERATE ASYMMETRIC KEY PAIR answer): RSA 81 modulus, 82 exponent; EC 86 the point.
pub(crate) fn public_key(
    operation: &'static str,
    answer: &[u8],
    expected: KeyAlgorithm,
) -> Result<PublicKey> {
    let (tlv, rest) = ber::decode_one(answer, CARD_TLV).map_err(codec(operation))?;
    if tlv.tag() != Tag::new(0x7F49) || !rest.is_empty() {
        return Err(bad(
            operation,
            format!("expected one public-key template 7F49, got {}", tlv.tag()),
        ));
    }
    let child = |tag: u32| -> Result<Option<&[u8]>> {
        Ok(tlv.find(Tag::new(tag)).map_err(codec(operation))?.map(|t| t.value()))
    };
    let key = match expected {
        KeyAlgorithm::Rsa(_) => {
            let n = child(0x81)?.ok_or_else(|| bad(operation, "RSA key without modulus (81)"))?;
            let e = child(0x82)?.ok_or_else(|| bad(operation, "RSA key without exponent (82)"))?;
            PublicKey::rsa(n, e)
        }
        KeyAlgorithm::Ec(curve) => {
            let point = child(0x86)?.ok_or_else(|| bad(operation, "EC key without point (86)"))?;
            if point.len() != 1 + 2 * curve.field_len() || point.first() != Some(&0x04) {
                return Err(bad(
                    operation,
                    format!("{} bytes is not an uncompressed {curve:?} point", point.len()),
                ));
            }
            PublicKey::Ec { curve, point: point.to_vec() }
        }
    };
    let found = key.algorithm()?;
    if found != expected {
        return Err(bad(
            operation,
            format!("the card returned a {found} key, the container holds {expected}"),
        ));
    }
    Ok(key)
}

// ----- algorithms and key files --------------------------------------------------------------

/// GIDS crypto identifiers (GIDS 1.0 "cryptographic mechanism identifier", OpenSC
/// GIDS_*_IDENTIFIER): the low nibble of an algorithm reference.
pub(crate) fn crypto_id(alg: KeyAlgorithm) -> Option<u8> {
    Some(match alg {
        KeyAlgorithm::Rsa(1024) => 0x06,
        KeyAlgorithm::Rsa(2048) => 0x07,
        KeyAlgorithm::Rsa(3072) => 0x08,
        KeyAlgorithm::Rsa(4096) => 0x09,
        KeyAlgorithm::Ec(Curve::P256) => 0x0C,
        KeyAlgorithm::Ec(Curve::P384) => 0x0D,
        KeyAlgorithm::Ec(Curve::P521) => 0x0E,
        KeyAlgorithm::Rsa(_) => return None,
    })
}

/// The algorithm of a cmapfile key size: RSA moduli are 1024 bits and up, EC curves 256, 384
/// and 521 (Minidriver v7 §5.2.1 keeps ECC key sizes in the same fields).
pub(crate) fn algorithm_of_bits(bits: u16) -> Option<KeyAlgorithm> {
    Some(match bits {
        256 => KeyAlgorithm::Ec(Curve::P256),
        384 => KeyAlgorithm::Ec(Curve::P384),
        521 => KeyAlgorithm::Ec(Curve::P521),
        1024 | 2048 | 3072 | 4096 => KeyAlgorithm::Rsa(bits),
        _ => return None,
    })
}

/// Algorithm-reference mechanisms (high nibble; GIDS 1.0 "algorithm reference", as OpenSC's
/// gids_perform_create_keyfile lists them).
pub(crate) mod mechanism {
    /// Decipher: raw RSA; ECDH.
    pub(crate) const RAW: u8 = 0x00;
    /// Sign: the host formats the block ("full SHA off-card"); ECDSA of the hash.
    pub(crate) const SIGN_RAW: u8 = 0x10;
    /// Decipher: RSAES-PKCS1-v1_5.
    pub(crate) const DECIPHER_PKCS1: u8 = 0x40;
    /// Sign: RSASSA-PKCS1-v1_5, the card pads the DigestInfo.
    pub(crate) const SIGN_PKCS1: u8 = 0x50;
    /// Decipher: RSAES-OAEP (SHA-1, empty label).
    pub(crate) const DECIPHER_OAEP: u8 = 0x80;
}

/// The FCP of a new key file B0kid (ISO/IEC 7816-4 §7.4 FCP, GIDS 1.0 key file with control
/// reference templates):
/// - 82 01 18: key file; 83 02 B0 kid;
/// - 8C 05 8F 10 10 10 00: generate, MSE (use) and import need the user PIN, reading the
///   public key is free (the ACL OpenSC's gids_perform_create_keyfile gives, "mimicking the
///   GIDS minidriver");
/// - A5: one CRT per allowed use, each 80 01 algorithm, 83 01 kid, 95 01 40.
///
/// RSA keys may decipher raw, OAEP and PKCS#1 and sign raw and PKCS#1 (OpenSC's key-exchange
/// key file); EC keys sign (ECDSA) and agree (ECDH).
pub(crate) fn key_file_fcp(kid: u8, alg: KeyAlgorithm, id: u8) -> Vec<u8> {
    use mechanism::*;
    let uses: Vec<(u8, u8)> = match alg {
        KeyAlgorithm::Rsa(_) => vec![
            (0xB8, RAW | id),
            (0xB8, DECIPHER_OAEP | id),
            (0xB8, DECIPHER_PKCS1 | id),
            (0xB6, SIGN_RAW | id),
            (0xB6, SIGN_PKCS1 | id),
        ],
        KeyAlgorithm::Ec(_) => vec![(0xB6, SIGN_RAW | id), (0xB8, RAW | id)],
    };
    let mut crts = Vec::new();
    for (template, alg_ref) in uses {
        crts.extend_from_slice(&[
            template, 0x09, 0x80, 0x01, alg_ref, 0x83, 0x01, kid, 0x95, 0x01, 0x40,
        ]);
    }
    let mut body = vec![0x82, 0x01, 0x18, 0x83, 0x02, 0xB0, kid];
    body.extend_from_slice(&[0x8C, 0x05, 0x8F, 0x10, 0x10, 0x10, 0x00]);
    // At most 5 x 11 = 55 bytes of CRTs and 14 bytes before: short lengths throughout.
    body.push(0xA5);
    body.push(u8::try_from(crts.len()).unwrap_or(0x7F));
    body.extend_from_slice(&crts);
    let mut fcp = vec![0x62, u8::try_from(body.len()).unwrap_or(0x7F)];
    fcp.extend_from_slice(&body);
    fcp
}

#[cfg(test)]
mod tests {
    use super::*;
    use scard_iso7816::hex::decode_lenient as h;

    #[test]
    fn master_file_as_opensc_gids_initialize_writes_it() {
        // OpenSC card-gids.c gids_initialize: the master file of a freshly initialised card.
        let bytes = h("01 6d736370 0000000000 000000000000000000 0000 00000000 00a00000
             000000000000000000 636172646964000000 0000 20df0000 12a00000
             000000000000000000 636172646170707300 0000 21df0000 10a00000
             000000000000000000 636172646366000000 0000 22df0000 10a00000
             6d73637000000000 00 636d617066696c6500 0000 23df0000 10a00000")
        .unwrap();
        let mf = MasterFile::decode(&bytes).unwrap();
        assert_eq!(mf.records.len(), 5);
        assert!(mf.records[0].is_directory());
        assert_eq!(mf.records[0].directory, "mscp");
        let cardid = mf.file("", "cardid").unwrap();
        assert_eq!((cardid.fid, cardid.do_id), (0xA012, 0xDF20));
        assert_eq!(mf.file("MSCP", "CMAPFILE").unwrap().do_id, 0xDF23);
        assert!(mf.file("mscp", "kxc00").is_none());
        assert_eq!(mf.files_in(""), ["cardid", "cardapps", "cardcf"]);
        assert_eq!(mf.files_in("mscp"), ["cmapfile"]);
        assert!(mf.has_directory("mscp") && mf.has_directory("") && !mf.has_directory("x"));
        assert_eq!(mf.free_do(0xA010), Some(0xDF24));
        assert_eq!(mf.free_do(0xA012), Some(0xDF21));
        assert_eq!(mf.encode(), bytes);
    }

    #[test]
    fn master_file_errors() {
        assert!(MasterFile::decode(&[]).is_err());
        assert!(MasterFile::decode(&[2]).is_err());
        assert_eq!(MasterFile::decode(&[1]).unwrap().records.len(), 0);
        let mut one = vec![1];
        MfRecord { directory: "mscp".into(), file: "kxc00".into(), fid: 0xA010, do_id: 0xDF24 }
            .encode(&mut one);
        assert!(MasterFile::decode(&one[..28]).is_err(), "short record");
        let mut unterminated = one.clone();
        unterminated[1..10].copy_from_slice(b"ABCDEFGHI");
        assert!(MasterFile::decode(&unterminated).is_err());
        let mut big_fid = one.clone();
        big_fid[27] = 1;
        assert!(MasterFile::decode(&big_fid).is_err());
        let mut control = one.clone();
        control[1] = 0x07;
        assert!(MasterFile::decode(&control).is_err());
    }

    #[test]
    fn keymap_records() {
        // OpenSC gids_create_keyfile for key 81, RSA 2048 key exchange.
        let mut km = Keymap::default();
        km.set(0, KeymapRecord::key(0x07, KEY_TYPE_EXCHANGE, 0x81));
        assert_eq!(km.encode(), [1, 1, 0, 0, 0, 0x07, 0x9A, 0x81, 0xB0, 0xFF, 0xFF, 0, 0]);
        km.set(2, KeymapRecord::key(0x0C, KEY_TYPE_SIGNATURE, 0x83));
        assert_eq!(km.records[1], KeymapRecord::deleted());
        let bytes = km.encode();
        assert_eq!(bytes.len(), 1 + 3 * 12);
        // gids_delete_container_num: zeros, keyref FFFF, FFFF.
        assert_eq!(&bytes[13..25], &[0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0]);
        assert_eq!(Keymap::decode(&bytes).unwrap(), km);
        assert_eq!(Keymap::decode(&[]).unwrap().records.len(), 0);
        assert!(Keymap::decode(&bytes[..20]).is_err());
        assert!(Keymap::decode(&[2]).is_err());
        km.pad_to(5);
        assert_eq!(km.records.len(), 5);
    }

    #[test]
    fn data_objects_and_pin_status() {
        assert_eq!(do_value("t", &[0xDF, 0x22, 0x02, 1, 2], 0xDF22).unwrap(), [1, 2]);
        assert_eq!(do_value("t", &[0xDF, 0x22, 0x81, 0x02, 1, 2], 0xDF22).unwrap(), [1, 2]);
        assert_eq!(do_value("t", &[0xDF, 0x22, 0x00], 0xDF22).unwrap(), Vec::<u8>::new());
        assert!(do_value("t", &[0xDF, 0x23, 0x02, 1, 2], 0xDF22).is_err());
        assert!(do_value("t", &[0xDF, 0x22, 0x03, 1, 2], 0xDF22).is_err());
        assert!(do_value("t", &[0xDF, 0x22, 0x01, 1, 2], 0xDF22).is_err());
        assert!(do_value("t", &[], 0xDF22).is_err());
        assert_eq!(do_object(0xDF22, &[9]).unwrap(), [0xDF, 0x22, 1, 9]);
        // GidsApplet returnPINStatus.
        assert_eq!(pin_tries(&h("7F71 06 97 01 02 93 01 03").unwrap()).unwrap(), 2);
        assert_eq!(pin_tries(&h("7F71 04 9F17 01 01").unwrap()).unwrap(), 1);
        assert!(pin_tries(&h("7F71 03 93 01 03").unwrap()).is_err());
        assert!(pin_tries(&h("7F72 03 97 01 03").unwrap()).is_err());
        assert!(pin_tries(&h("7F71 04 97 02 00 03").unwrap()).is_err());
        // Trailing bytes are named as such (the hostile card's message once read "expected
        // one DO 7F71, got DO 7F71").
        let err = pin_tries(&h("7F71 03 97 01 02 00").unwrap()).unwrap_err();
        assert!(err.to_string().contains("1 trailing byte(s) after DO 7F71"), "{err}");
    }

    #[test]
    fn public_key_templates() {
        let rsa = h("7F49 0A 81 04 C0000001 82 02 0101").unwrap();
        // A 32-bit toy modulus: the template parses, the size check then refuses it.
        assert!(public_key("t", &rsa, KeyAlgorithm::Rsa(2048)).is_err());
        let mut point = vec![0x04];
        point.extend_from_slice(&[7; 64]);
        let mut ec = vec![0x7F, 0x49, 0x43, 0x86, 0x41];
        ec.extend_from_slice(&point);
        let key = public_key("t", &ec, KeyAlgorithm::Ec(Curve::P256)).unwrap();
        assert_eq!(key, PublicKey::Ec { curve: Curve::P256, point: point.clone() });
        assert!(public_key("t", &ec, KeyAlgorithm::Ec(Curve::P384)).is_err());
        assert!(public_key("t", &ec[..20], KeyAlgorithm::Ec(Curve::P256)).is_err());
        assert!(public_key("t", &[0x7F, 0x49, 0x00], KeyAlgorithm::Rsa(2048)).is_err());
    }

    #[test]
    fn key_file_fcp_matches_opensc_for_rsa() {
        // OpenSC gids_perform_create_keyfile, "keyexchange" FCP for kid 82, algid 07.
        let expected = h("62 47 8201 18 8302 B082 8C05 8F10101000 A537
             B809 800107 830182 950140 B809 800187 830182 950140 B809 800147 830182 950140
             B609 800117 830182 950140 B609 800157 830182 950140")
        .unwrap();
        assert_eq!(key_file_fcp(0x82, KeyAlgorithm::Rsa(2048), 0x07), expected);
        let ec = key_file_fcp(0x83, KeyAlgorithm::Ec(Curve::P256), 0x0C);
        assert_eq!(ec.len(), 2 + 14 + 2 + 22);
        assert!(ber::validate(&ec, ParseOptions::STRICT).is_ok());
    }

    #[test]
    fn algorithms() {
        assert_eq!(crypto_id(KeyAlgorithm::Rsa(2048)), Some(0x07));
        assert_eq!(crypto_id(KeyAlgorithm::Ec(Curve::P384)), Some(0x0D));
        assert_eq!(crypto_id(KeyAlgorithm::Rsa(1536)), None);
        assert_eq!(algorithm_of_bits(2048), Some(KeyAlgorithm::Rsa(2048)));
        assert_eq!(algorithm_of_bits(256), Some(KeyAlgorithm::Ec(Curve::P256)));
        assert_eq!(algorithm_of_bits(0), None);
    }
}
