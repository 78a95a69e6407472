//! Personalisation of a fresh card: the file system OpenSC's `gids-tool --initialize` creates
//! (card-gids.c gids_initialize), the minidriver files (Smart Card Minidriver Specification v7:
//! cardid, cardapps, cardcf, mscp/cmapfile), and one RSA 2048 key-exchange container with a
//! self-signed certificate in mscp/kxc00, laid out as OpenSC's own key creation
//! (gids_create_keyfile, gids_save_certificate) would leave it.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use super::cert;
use super::fs::{Ef, KeySlot};
use crate::SimRng;
use crate::keys::{KeyAlgorithm, PrivateKey};
use crate::pin::Pin;

/// Default user PIN (as the simulated PIV and OpenPGP cards).
pub(super) const DEFAULT_PIN: &[u8] = b"123456";
/// PIN retry limit (GidsApplet GidsPINManager PIN_MAX_TRIES).
pub(super) const PIN_TRIES: u8 = 3;
/// Default administrator key: 24 bytes of 00, what OpenSC's `gids-tool --initialize` sets when
/// the admin key prompt is left empty.
pub(super) const DEFAULT_ADMIN_KEY: [u8; 24] = [0; 24];

/// The DO-file identifiers OpenSC's gids_initialize creates, with their FCPs (card-gids.c).
/// Compact attributes 8C 03 03 <PUT DATA> <GET DATA>: 00 always, 10 PIN, 20 admin, 30 either.
pub(super) const DO_FILES: [(u16, [u8; 14]); 6] = [
    // UserCreateDeleteDirAc: masterfile and keymap; read by all, written by user or admin.
    (0xA000, fcp_do(0xA0, 0x00, 0x30, 0x00)),
    // EveryoneReadUserWriteAc: cardapps, cardcf, cmapfile, certificates.
    (0xA010, fcp_do(0xA0, 0x10, 0x30, 0x00)),
    // UserWriteExecuteAc: written by user or admin, never read.
    (0xA011, fcp_do(0xA0, 0x11, 0x30, 0xFF)),
    // EveryoneReadAdminWriteAc: cardid.
    (0xA012, fcp_do(0xA0, 0x12, 0x20, 0x00)),
    // UserReadWriteAc.
    (0xA013, fcp_do(0xA0, 0x13, 0x30, 0x30)),
    // AdminReadWriteAc.
    (0xA014, fcp_do(0xA0, 0x14, 0x20, 0x20)),
];

/// The FCP of a BER-TLV DO file (FDB 39) with compact attributes for PUT and GET DATA.
const fn fcp_do(hi: u8, lo: u8, put: u8, get: u8) -> [u8; 14] {
    [0x62, 0x0C, 0x82, 0x01, 0x39, 0x83, 0x02, hi, lo, 0x8C, 0x03, 0x03, put, get]
}

/// The administrator key file B080 (OpenSC gids_initialize "AdminKey"): MSE always, key import
/// by the admin, never read; CRT A4 (authentication) with algorithm 02, key 80, usage C0.
pub(super) const ADMIN_KEY_FCP: [u8; 28] = [
    0x62, 0x1A, 0x82, 0x01, 0x18, 0x83, 0x02, 0xB0, 0x80, 0x8C, 0x04, 0x87, 0x00, 0x20, 0xFF, 0xA5,
    0x0B, 0xA4, 0x09, 0x80, 0x01, 0x02, 0x83, 0x01, 0x80, 0x95, 0x01, 0xC0,
];

/// The FCP OpenSC's gids_perform_create_keyfile writes for an AT_KEYEXCHANGE key `kid` of
/// crypto identifier `algid`: generate, MSE and key import need the PIN, the public key is free;
/// decipher raw (algid), OAEP (80 + algid), PKCS#1 v1.5 (40 + algid); sign with the hash
/// padded off card (10 + algid) or PKCS#1 v1.5 padded by the card (50 + algid).
pub(super) fn key_exchange_fcp(kid: u8, algid: u8) -> Vec<u8> {
    let mut fcp = vec![0x62, 0x47, 0x82, 0x01, 0x18, 0x83, 0x02, 0xB0, kid];
    fcp.extend_from_slice(&[0x8C, 0x05, 0x8F, 0x10, 0x10, 0x10, 0x00, 0xA5, 0x37]);
    for (template, alg) in [
        (0xB8, algid),
        (0xB8, 0x80 + algid),
        (0xB8, 0x40 + algid),
        (0xB6, 0x10 + algid),
        (0xB6, 0x50 + algid),
    ] {
        fcp.extend_from_slice(&[
            template, 0x09, 0x80, 0x01, alg, 0x83, 0x01, kid, 0x95, 0x01, 0x40,
        ]);
    }
    fcp
}

/// Minidriver file directory names are at most 8 characters, file names at most 8.
const NAME_FIELD: usize = 9;

/// One record of the GIDS "master file" DO (A000/DF1F) listing where each minidriver file
/// lives. Layout (not in the GIDS or minidriver specifications; OpenSC card-gids.h
/// gids_mf_record_t as it lies in memory on a 32/64-bit little-endian machine, the bytes
/// gids_initialize writes):
/// - 0..9   directory, NUL-padded ASCII (empty for the root)
/// - 9..18  file name, NUL-padded ASCII (empty for a directory record)
/// - 18..20 alignment padding, 00
/// - 20..24 DO identifier, u32 LE (0 for a directory)
/// - 24..28 file identifier, u32 LE
///
/// The DO begins with one version byte 01 (OpenSC gids_read_masterfile checks it).
pub(super) const MF_RECORD_LEN: usize = 28;

/// Appends one master-file record.
pub(super) fn mf_record(out: &mut Vec<u8>, directory: &str, file: &str, fid: u16, do_id: u16) {
    out.reserve(MF_RECORD_LEN);
    let mut name = |text: &str| {
        let mut field = [0u8; NAME_FIELD];
        for (slot, byte) in field.iter_mut().zip(text.bytes().take(NAME_FIELD - 1)) {
            *slot = byte;
        }
        out.extend_from_slice(&field);
    };
    name(directory);
    name(file);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&u32::from(do_id).to_le_bytes());
    out.extend_from_slice(&u32::from(fid).to_le_bytes());
}

/// Minidriver v7 CONTAINER_MAP_RECORD (86 bytes): wszGuid (40 UTF-16LE characters, NUL
/// padded), bFlags at 80 (1 valid, 2 default), bReserved at 81, wSigKeySizeBits u16 LE at 82,
/// wKeyExchangeKeySizeBits u16 LE at 84.
pub(super) const CMAP_RECORD_LEN: usize = 86;

/// One container map record.
pub(super) fn cmap_record(name: &str, flags: u8, sig_bits: u16, kx_bits: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(CMAP_RECORD_LEN);
    let mut chars: Vec<u16> = name.encode_utf16().take(39).collect();
    chars.resize(40, 0);
    for c in chars {
        out.extend_from_slice(&c.to_le_bytes());
    }
    out.push(flags);
    out.push(0);
    out.extend_from_slice(&sig_bits.to_le_bytes());
    out.extend_from_slice(&kx_bits.to_le_bytes());
    out
}

/// One record of the GIDS key map DO (A000/DF20), which ties a container to its key file.
/// Layout (undocumented; OpenSC card-gids.h struct gids_keymap_record in memory, 12 bytes):
/// - 0..4   state, u32 LE (1: key present)
/// - 4      crypto identifier of the key (07 RSA 2048, ...)
/// - 5      key type: 9A AT_KEYEXCHANGE, 9C AT_SIGNATURE
/// - 6..8   key file identifier, u16 LE (B081 for key reference 81)
/// - 8..10  FFFF
/// - 10..12 alignment padding, 00
///
/// The DO begins with one version byte 01 (OpenSC gids_create_keyfile).
pub(super) fn keymap_record(out: &mut Vec<u8>, algid: u8, key_type: u8, key_fid: u16) {
    out.extend_from_slice(&1u32.to_le_bytes());
    out.push(algid);
    out.push(key_type);
    out.extend_from_slice(&key_fid.to_le_bytes());
    out.extend_from_slice(&[0xFF, 0xFF, 0x00, 0x00]);
}

/// GIDS crypto identifiers (OpenSC card-gids.c GIDS_*_IDENTIFIER; GidsApplet "GIDS spec
/// table 43"): the low nibble of an algorithm reference.
pub(super) fn crypto_id(alg: KeyAlgorithm) -> u8 {
    match alg {
        KeyAlgorithm::Rsa2048 => 0x07,
        KeyAlgorithm::Rsa3072 => 0x08,
        KeyAlgorithm::Rsa4096 => 0x09,
        KeyAlgorithm::P256 => 0x0C,
        KeyAlgorithm::P384 => 0x0D,
    }
}

/// The algorithm of a crypto identifier this card can generate.
pub(super) fn algorithm_of(crypto_id: u8) -> Option<KeyAlgorithm> {
    match crypto_id {
        0x07 => Some(KeyAlgorithm::Rsa2048),
        0x08 => Some(KeyAlgorithm::Rsa3072),
        0x09 => Some(KeyAlgorithm::Rsa4096),
        0x0C => Some(KeyAlgorithm::P256),
        0x0D => Some(KeyAlgorithm::P384),
        _ => None,
    }
}

/// A minidriver container name: a braced GUID string, as Windows names containers.
fn container_guid(rng: &mut SimRng) -> String {
    let b = rng.bytes(16);
    let hex = |r: std::ops::Range<usize>| {
        b.get(r).unwrap_or_default().iter().map(|x| format!("{x:02X}")).collect::<String>()
    };
    format!("{{{}-{}-{}-{}-{}}}", hex(0..4), hex(4..6), hex(6..8), hex(8..10), hex(10..16))
}

/// A personalised card's persistent contents.
pub(super) struct Personalised {
    /// The user PIN.
    pub(super) pin: Pin,
    /// The EFs by file identifier.
    pub(super) files: BTreeMap<u16, Ef>,
}

/// The DO `tag` of the DO file `fid`, for writing.
fn put(files: &mut BTreeMap<u16, Ef>, fid: u16, tag: u32, value: Vec<u8>) {
    if let Some(objects) = files.get_mut(&fid).and_then(Ef::objects_mut) {
        objects.insert(tag, value);
    }
}

/// A freshly personalised card: PIN 123456, admin key 00..00, the minidriver file system with a
/// random cardid, and (unless key generation fails) one RSA 2048 container with a
/// self-signed certificate.
pub(super) fn personalise(rng: &mut SimRng) -> Personalised {
    let mut files = BTreeMap::new();
    for (fid, fcp) in DO_FILES {
        if let Some(ef) = Ef::active(&fcp) {
            files.insert(fid, ef);
        }
    }
    if let Some(mut admin) = Ef::active(&ADMIN_KEY_FCP) {
        admin.content =
            super::fs::Content::Key(KeySlot::Secret(Zeroizing::new(DEFAULT_ADMIN_KEY.to_vec())));
        files.insert(0xB080, admin);
    }
    // cardid (A012/DF20): a 16-byte random identity (minidriver v7 "cardid").
    put(&mut files, 0xA012, 0xDF20, rng.bytes(16));
    // cardapps (A010/DF21): the application list, one 8-byte name "mscp".
    put(&mut files, 0xA010, 0xDF21, b"mscp\0\0\0\0".to_vec());
    // The master file as gids_initialize writes it, later with mscp/kxc00 appended.
    let mut masterfile = vec![0x01];
    mf_record(&mut masterfile, "mscp", "", 0xA000, 0);
    mf_record(&mut masterfile, "", "cardid", 0xA012, 0xDF20);
    mf_record(&mut masterfile, "", "cardapps", 0xA010, 0xDF21);
    mf_record(&mut masterfile, "", "cardcf", 0xA010, 0xDF22);
    mf_record(&mut masterfile, "mscp", "cmapfile", 0xA010, 0xDF23);
    // cardcf (minidriver v7 CARD_CACHE_FILE_FORMAT): version, PIN freshness, container
    // freshness u16 LE, file freshness u16 LE; the host bumps them on every write.
    let mut containers_freshness = 0u16;
    let mut files_freshness = 0u16;
    let mut cmapfile = Vec::new();
    if let Some((key, certificate)) = first_key(rng) {
        let kid = 0x81;
        let algid = crypto_id(key.algorithm());
        if let Some(mut key_file) = Ef::active(&key_exchange_fcp(kid, algid)) {
            key_file.content = super::fs::Content::Key(KeySlot::Private(key));
            files.insert(0xB081, key_file);
            // gids_create_keyfile: cmapfile space (files + 1), the key, keymap and cmapfile
            // (containers + 1, files + 1).
            let guid = container_guid(rng);
            // Valid and default; an AT_KEYEXCHANGE key of 2048 bits.
            cmapfile = cmap_record(&guid, 0x03, 0, 2048);
            let mut keymap = vec![0x01];
            keymap_record(&mut keymap, algid, 0x9A, 0xB000 + u16::from(kid));
            put(&mut files, 0xA000, 0xDF20, keymap);
            containers_freshness += 1;
            files_freshness += 2;
            // gids_save_certificate: the file kxc00 in the first free DO of A010 (DF24), the
            // master file updated (files + 1), the certificate written (files + 1).
            mf_record(&mut masterfile, "mscp", "kxc00", 0xA010, 0xDF24);
            put(&mut files, 0xA010, 0xDF24, cert::compressed_file(&certificate));
            files_freshness += 2;
        }
    }
    put(&mut files, 0xA000, 0xDF1F, masterfile);
    put(&mut files, 0xA010, 0xDF23, cmapfile);
    let mut cardcf = vec![0x00, 0x00];
    cardcf.extend_from_slice(&containers_freshness.to_le_bytes());
    cardcf.extend_from_slice(&files_freshness.to_le_bytes());
    put(&mut files, 0xA010, 0xDF22, cardcf);
    Personalised { pin: Pin::new(DEFAULT_PIN, PIN_TRIES), files }
}

/// The first container's key pair and its certificate.
fn first_key(rng: &mut SimRng) -> Option<(PrivateKey, Vec<u8>)> {
    let key = PrivateKey::generate(KeyAlgorithm::Rsa2048, rng).ok()?;
    let serial = rng.bytes(16);
    let certificate = crate::cert::self_signed(&key, "scard-sim GIDS", &serial).ok()?;
    Some((key, certificate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masterfile_bytes_match_opensc_gids_initialize() {
        // OpenSC card-gids.c gids_initialize, the masterfile it writes.
        let expected = scard_iso7816::hex::decode_lenient(
            "01 6d736370 0000000000 000000000000000000 0000 00000000 00a00000
                000000000000000000 636172646964000000 0000 20df0000 12a00000
                000000000000000000 636172646170707300 0000 21df0000 10a00000
                000000000000000000 636172646366000000 0000 22df0000 10a00000
                6d73637000000000 00 636d617066696c6500 0000 23df0000 10a00000",
        )
        .unwrap();
        let mut mf = vec![0x01];
        mf_record(&mut mf, "mscp", "", 0xA000, 0);
        mf_record(&mut mf, "", "cardid", 0xA012, 0xDF20);
        mf_record(&mut mf, "", "cardapps", 0xA010, 0xDF21);
        mf_record(&mut mf, "", "cardcf", 0xA010, 0xDF22);
        mf_record(&mut mf, "mscp", "cmapfile", 0xA010, 0xDF23);
        assert_eq!(mf, expected);
        assert_eq!((mf.len() - 1) % MF_RECORD_LEN, 0);
    }

    #[test]
    fn key_exchange_fcp_matches_opensc() {
        // OpenSC gids_perform_create_keyfile "keyexchange" for kid 81, algid 07: 73 bytes.
        let fcp = key_exchange_fcp(0x81, 0x07);
        assert_eq!(fcp.len(), 2 + 0x47);
        let parsed = super::super::fs::Fcp::parse(&fcp).unwrap();
        assert_eq!((parsed.fdb, parsed.fid), (0x18, 0xB081));
        for (usage, alg) in [(0xB8, 0x07), (0xB8, 0x87), (0xB8, 0x47), (0xB6, 0x17), (0xB6, 0x57)] {
            assert!(parsed.allows(usage, alg), "{usage:02X} {alg:02X}");
        }
        assert!(super::super::fs::Fcp::parse(&ADMIN_KEY_FCP).unwrap().allows(0xA4, 0x02));
        for (_, fcp) in DO_FILES {
            assert!(super::super::fs::Fcp::parse(&fcp).is_some());
        }
    }

    #[test]
    fn records() {
        let r = cmap_record("{AB}", 3, 0, 2048);
        assert_eq!(r.len(), CMAP_RECORD_LEN);
        assert_eq!(&r[..8], &[b'{', 0, b'A', 0, b'B', 0, b'}', 0]);
        assert_eq!(&r[80..], &[3, 0, 0, 0, 0x00, 0x08]);
        let long = "x".repeat(60);
        assert_eq!(cmap_record(&long, 1, 256, 0)[78..80], [0, 0], "NUL-terminated");
        let mut km = vec![1];
        keymap_record(&mut km, 0x07, 0x9A, 0xB081);
        assert_eq!(km, [1, 1, 0, 0, 0, 0x07, 0x9A, 0x81, 0xB0, 0xFF, 0xFF, 0, 0]);
        assert!(container_guid(&mut SimRng::from_seed(1)).len() == 38);
    }
}
