//! Unit tests of the simulated GIDS card, driven through [`Card::process`] with raw APDUs the
//! way OpenSC's GIDS driver sends them (short APDUs, command chaining for long data, GET
//! RESPONSE after 61xx). Cryptographic results are checked on the host with RustCrypto.

use std::sync::OnceLock;

use cipher::{BlockDecrypt, BlockEncrypt, KeyInit, generic_array::GenericArray};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Oaep, Pkcs1v15Encrypt, Pkcs1v15Sign, RsaPublicKey};
use scard_iso7816::hex::decode_lenient as h;
use sha2::{Digest, Sha256};
use signature::hazmat::PrehashVerifier;

use super::*;
use crate::gids::cert::tests::inflate;
use crate::gids::perso::{CMAP_RECORD_LEN, MF_RECORD_LEN};

/// A personalised card's state, made once (RSA key generation is the slow part).
fn fresh_state() -> &'static serde_json::Value {
    static STATE: OnceLock<serde_json::Value> = OnceLock::new();
    STATE.get_or_init(|| GidsCard::new(SimRng::from_seed(7)).save_state())
}

/// A powered, personalised card.
fn card() -> GidsCard {
    let mut card = GidsCard::from_state(fresh_state().clone(), SimRng::from_seed(8)).unwrap();
    card.power_on();
    card
}

/// A powered card with the application selected.
fn selected() -> GidsCard {
    let mut c = card();
    ok(&mut c, 0xA4, 0x04, 0x00, &AID[..9]);
    c
}

/// Sends one raw APDU; follows 61xx with GET RESPONSE as OpenSC does. Returns data and SW.
fn raw(card: &mut GidsCard, apdu: &[u8]) -> (Vec<u8>, u16) {
    let mut data = Vec::new();
    let mut resp = card.process(apdu);
    loop {
        let n = resp.len();
        assert!(n >= 2, "response without status word");
        data.extend_from_slice(&resp[..n - 2]);
        let sw = u16::from_be_bytes([resp[n - 2], resp[n - 1]]);
        if sw >> 8 != 0x61 {
            return (data, sw);
        }
        resp = card.process(&[0x00, 0xC0, 0x00, 0x00, resp[n - 1]]);
    }
}

/// Sends a command as OpenSC would: short APDUs, chained (CLA 10) when the data exceeds 255
/// bytes, Le 00 when a response is expected.
fn send(card: &mut GidsCard, ins: u8, p1: u8, p2: u8, data: &[u8]) -> (Vec<u8>, u16) {
    let chunks: Vec<&[u8]> = if data.is_empty() { vec![&[]] } else { data.chunks(255).collect() };
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let mut apdu = vec![if last { 0x00 } else { 0x10 }, ins, p1, p2];
        if !chunk.is_empty() {
            apdu.push(chunk.len() as u8);
            apdu.extend_from_slice(chunk);
        }
        if last {
            apdu.push(0x00);
            return raw(card, &apdu);
        }
        let (_, sw) = raw(card, &apdu);
        assert_eq!(sw, 0x9000, "chained piece {i}");
    }
    unreachable!()
}

/// Sends a command and asserts 9000.
fn ok(card: &mut GidsCard, ins: u8, p1: u8, p2: u8, data: &[u8]) -> Vec<u8> {
    let (resp, sw) = send(card, ins, p1, p2, data);
    assert_eq!(sw, 0x9000, "{ins:02X} {p1:02X} {p2:02X} answered {sw:04X}");
    resp
}

/// Sends a command and returns only the status word.
fn sw(card: &mut GidsCard, ins: u8, p1: u8, p2: u8, data: &[u8]) -> u16 {
    send(card, ins, p1, p2, data).1
}

fn verify_pin(card: &mut GidsCard) {
    ok(card, 0x20, 0x00, 0x80, b"123456");
}

/// GET DATA of DO `tag` in file `fid` (OpenSC gids_get_DO), returning the DO's value.
fn get_do(card: &mut GidsCard, fid: u16, tag: u16) -> Vec<u8> {
    let [p1, p2] = fid.to_be_bytes();
    let [t1, t2] = tag.to_be_bytes();
    let resp = ok(card, 0xCB, p1, p2, &[0x5C, 0x02, t1, t2]);
    let (tlv, rest) = ber::decode_one(&resp, ber::ParseOptions::STRICT).unwrap();
    assert!(rest.is_empty());
    assert_eq!(tlv.tag(), Tag::new(u32::from(tag)));
    tlv.value().to_vec()
}

/// PUT DATA of DO `tag` in file `fid` (OpenSC gids_put_DO).
fn put_do(card: &mut GidsCard, fid: u16, tag: u16, value: &[u8]) -> u16 {
    let [p1, p2] = fid.to_be_bytes();
    let mut data = Vec::new();
    ber::write(&mut data, Tag::new(u32::from(tag)), value).unwrap();
    sw(card, 0xDB, p1, p2, &data)
}

/// The public key of key reference `kid` (OpenSC gids_read_public_key).
fn public_key(card: &mut GidsCard, kid: u8) -> Vec<u8> {
    ok(card, 0xCB, 0x3F, 0xFF, &[0x70, 0x08, 0x84, 0x01, kid, 0xA5, 0x03, 0x7F, 0x49, 0x80])
}

fn rsa_public(template: &[u8]) -> RsaPublicKey {
    let (t, _) = ber::decode_one(template, ber::ParseOptions::STRICT).unwrap();
    assert_eq!(t.tag(), Tag::new(0x7F49));
    let n = t.find(Tag::new(0x81)).unwrap().unwrap().value();
    let e = t.find(Tag::new(0x82)).unwrap().unwrap().value();
    RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e)).unwrap()
}

fn ec_point(template: &[u8]) -> Vec<u8> {
    let (t, _) = ber::decode_one(template, ber::ParseOptions::STRICT).unwrap();
    t.find(Tag::new(0x86)).unwrap().unwrap().value().to_vec()
}

fn sha256_digest_info(msg: &[u8]) -> Vec<u8> {
    let mut info = h("3031300d060960864801650304020105000420").unwrap();
    info.extend_from_slice(&Sha256::digest(msg));
    info
}

// ----- ATR, SELECT, class and instruction checks -------------------------------------------

#[test]
fn atr_is_valid_and_names_the_gids_aid() {
    let c = card();
    let atr = scard_iso7816::atr::Atr::parse(c.atr()).unwrap();
    assert!(atr.offers(1));
    assert_eq!(atr.tck(), scard_iso7816::atr::TckStatus::Correct);
    // Historical bytes: 80, then COMPACT-TLV F B: the AID.
    assert_eq!(atr.historical()[..2], [0x80, 0xFB]);
    assert_eq!(atr.historical()[2..], AID);
    assert_eq!(c.family(), Family::Gids);
}

#[test]
fn select_by_aid_and_by_file_identifier() {
    let mut c = card();
    // Before SELECT only SELECT works.
    assert_eq!(sw(&mut c, 0x20, 0x00, 0x80, &[]), 0x6985);
    assert_eq!(sw(&mut c, 0xA4, 0x00, 0x0C, &[0x3F, 0xFF]), 0x6A82);
    // Other applications (OpenSC probes PIV, OpenPGP...): 6A82.
    assert_eq!(sw(&mut c, 0xA4, 0x04, 0x00, &h("A000000308000010000100").unwrap()), 0x6A82);
    assert_eq!(sw(&mut c, 0xA4, 0x04, 0x00, &AID[..5]), 0x6A82);
    // The 9-byte prefix OpenSC sends, and the full AID.
    let fci = ok(&mut c, 0xA4, 0x04, 0x00, &AID[..9]);
    assert_eq!(fci, super::fci());
    let (t, _) = ber::decode_one(&fci, ber::ParseOptions::STRICT).unwrap();
    assert_eq!(t.tag(), Tag::new(0x61));
    assert_eq!(t.find(Tag::new(0x4F)).unwrap().unwrap().value(), AID);
    assert_eq!(ok(&mut c, 0xA4, 0x04, 0x0C, &AID), Vec::<u8>::new());
    assert_eq!(ok(&mut c, 0xA4, 0x04, 0x04, &AID), APP_FCP);
    assert_eq!(ok(&mut c, 0xA4, 0x04, 0x08, &AID), APP_FMD);
    // A failed SELECT leaves the application selected.
    assert_eq!(sw(&mut c, 0xA4, 0x04, 0x00, &h("D27600012401").unwrap()), 0x6A82);
    assert_eq!(sw(&mut c, 0x20, 0x00, 0x80, &[]), 0x63C3);
    // By file identifier: the application, an EF (its FCP), a missing file.
    assert_eq!(ok(&mut c, 0xA4, 0x00, 0x0C, &[0x3F, 0xFF]), Vec::<u8>::new());
    assert_eq!(ok(&mut c, 0xA4, 0x00, 0x00, &[0xB0, 0x81]), perso::key_exchange_fcp(0x81, 0x07));
    assert_eq!(ok(&mut c, 0xA4, 0x00, 0x04, &[0xA0, 0x10]), perso::DO_FILES[1].1);
    assert_eq!(sw(&mut c, 0xA4, 0x00, 0x00, &[0xB0, 0x99]), 0x6A82);
    // Wrong P1, P2, lengths.
    assert_eq!(sw(&mut c, 0xA4, 0x02, 0x00, &[0xA0, 0x10]), 0x6A86);
    assert_eq!(sw(&mut c, 0xA4, 0x04, 0x01, &AID), 0x6A86);
    assert_eq!(sw(&mut c, 0xA4, 0x00, 0x00, &[0xA0, 0x10, 0x00]), 0x6700);
    assert_eq!(sw(&mut c, 0xA4, 0x04, 0x00, &[0xA0; 17]), 0x6700);
}

#[test]
fn class_instruction_and_parameter_errors() {
    let mut c = selected();
    assert_eq!(raw(&mut c, &h("80 CB 3F FF 04 5C 02 7F 71 00").unwrap()).1, 0x6E00);
    assert_eq!(raw(&mut c, &h("0C CB 3F FF 04 5C 02 7F 71 00").unwrap()).1, 0x6882);
    assert_eq!(raw(&mut c, &h("01 CB 3F FF 04 5C 02 7F 71 00").unwrap()).1, 0x6881);
    assert_eq!(raw(&mut c, &h("FF CB 3F FF 04 5C 02 7F 71 00").unwrap()).1, 0x6E00);
    // Unknown instructions: 6D00, selected or not (CA is PIV's GET DATA; B0 READ BINARY).
    for ins in [0xCA, 0xB0, 0x84, 0x00, 0x46, 0xFE] {
        assert_eq!(sw(&mut c, ins, 0x00, 0x00, &[]), 0x6D00, "{ins:02X}");
    }
    let mut fresh = card();
    assert_eq!(sw(&mut fresh, 0xCA, 0xDF, 0x30, &[]), 0x6D00);
    // Wrong P1-P2.
    assert_eq!(sw(&mut c, 0x20, 0x01, 0x80, b"123456"), 0x6A86);
    assert_eq!(sw(&mut c, 0x20, 0x00, 0x81, b"123456"), 0x6A88);
    assert_eq!(sw(&mut c, 0x2A, 0x9E, 0x9B, &[1]), 0x6A86);
    assert_eq!(sw(&mut c, 0x22, 0x42, 0xB6, &[0x80, 0x01, 0x57]), 0x6A86);
    assert_eq!(sw(&mut c, 0x22, 0x41, 0xA4, &[0x80, 0x01, 0x57]), 0x6A86);
    assert_eq!(sw(&mut c, 0x47, 0x00, 0x01, &[0xAC, 0x00]), 0x6A86);
    assert_eq!(sw(&mut c, 0x87, 0x01, 0x00, &[0x7C, 0x00]), 0x6A86);
    assert_eq!(sw(&mut c, 0xE0, 0x01, 0x00, &[0x62, 0x00]), 0x6A86);
    assert_eq!(sw(&mut c, 0xE4, 0x00, 0x01, &[]), 0x6A86);
    assert_eq!(sw(&mut c, 0x44, 0x01, 0x00, &[]), 0x6A86);
    assert_eq!(sw(&mut c, 0xCB, 0xFF, 0xFF, &[0x5C, 0x00]), 0x6A86);
    assert_eq!(sw(&mut c, 0x2C, 0x00, 0x80, b"1234"), 0x6A86);
    assert_eq!(sw(&mut c, 0x24, 0x02, 0x80, b"1234"), 0x6A86);
    // Wrong lengths.
    assert_eq!(sw(&mut c, 0xCB, 0xA0, 0x10, &[]), 0x6700);
    assert_eq!(sw(&mut c, 0xDB, 0xA0, 0x10, &[]), 0x6700);
    assert_eq!(sw(&mut c, 0x20, 0x00, 0x80, &[0x31; 17]), 0x6700);
    assert_eq!(sw(&mut c, 0x22, 0x41, 0xB6, &[]), 0x6700);
    assert_eq!(sw(&mut c, 0x47, 0x00, 0x00, &[]), 0x6700);
    assert_eq!(sw(&mut c, 0x87, 0x00, 0x00, &[]), 0x6700);
    assert_eq!(sw(&mut c, 0xE4, 0x00, 0x00, &[1, 2, 3]), 0x6700);
    assert_eq!(raw(&mut c, &[0x00, 0xCB]).1, 0x6700);
    // Malformed data.
    assert_eq!(sw(&mut c, 0xCB, 0xA0, 0x10, &[0x5C, 0x05, 0xDF]), 0x6A80);
    assert_eq!(sw(&mut c, 0xCB, 0xA0, 0x10, &[0x5D, 0x02, 0xDF, 0x21]), 0x6A80);
    assert_eq!(sw(&mut c, 0xCB, 0xA0, 0x10, &[0x5C, 0x02, 0xDF, 0x21, 0x00]), 0x6A80);
    // The PIV driver's discovery probe finds nothing.
    assert_ne!(raw(&mut c, &h("00 CB 3F FF 03 5C 01 7E 08").unwrap()).1, 0x9000);
}

// ----- the minidriver file system ----------------------------------------------------------

#[test]
fn minidriver_files_as_opensc_reads_them() {
    let mut c = selected();
    // Master file (A000/DF1F): version 01, then 28-byte records.
    let mf = get_do(&mut c, 0xA000, 0xDF1F);
    assert_eq!(mf[0], 1);
    assert_eq!((mf.len() - 1) % MF_RECORD_LEN, 0);
    let records: Vec<(String, String, u32, u32)> = mf[1..]
        .chunks(MF_RECORD_LEN)
        .map(|r| {
            let s = |b: &[u8]| {
                String::from_utf8(b.split(|&x| x == 0).next().unwrap().to_vec()).unwrap()
            };
            let u = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap());
            (s(&r[..9]), s(&r[9..18]), u(&r[20..24]), u(&r[24..28]))
        })
        .collect();
    let find = |dir: &str, file: &str| {
        records
            .iter()
            .find(|r| r.0 == dir && r.1 == file)
            .map(|r| (r.3 as u16, r.2 as u16))
            .unwrap()
    };
    assert_eq!(find("mscp", ""), (0xA000, 0));
    assert_eq!(find("", "cardid"), (0xA012, 0xDF20));
    assert_eq!(find("", "cardapps"), (0xA010, 0xDF21));
    assert_eq!(find("", "cardcf"), (0xA010, 0xDF22));
    assert_eq!(find("mscp", "cmapfile"), (0xA010, 0xDF23));
    assert_eq!(find("mscp", "kxc00"), (0xA010, 0xDF24));
    // cardid: a 16-byte identity, not a repeated pattern, different per card.
    let cardid = get_do(&mut c, 0xA012, 0xDF20);
    assert_eq!(cardid.len(), 16);
    assert!(cardid.iter().any(|&b| b != cardid[0]));
    let other = GidsCard::new(SimRng::from_seed(99)).save_state();
    assert_ne!(other, *fresh_state());
    assert_eq!(get_do(&mut c, 0xA010, 0xDF21), b"mscp\0\0\0\0");
    // cardcf: 6 bytes; the personalisation counted its container and file writes.
    let cardcf = get_do(&mut c, 0xA010, 0xDF22);
    assert_eq!(cardcf.len(), 6);
    assert_eq!(u16::from_le_bytes([cardcf[2], cardcf[3]]), 1);
    assert!(u16::from_le_bytes([cardcf[4], cardcf[5]]) > 0);
    // cmapfile: one 86-byte record, valid and default, a 2048-bit key-exchange key.
    let cmap = get_do(&mut c, 0xA010, 0xDF23);
    assert_eq!(cmap.len(), CMAP_RECORD_LEN);
    assert_eq!(cmap[80], 0x03);
    assert_eq!(u16::from_le_bytes([cmap[82], cmap[83]]), 0);
    assert_eq!(u16::from_le_bytes([cmap[84], cmap[85]]), 2048);
    let name: Vec<u16> = cmap[..80].chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    let name = String::from_utf16(&name).unwrap();
    assert!(name.starts_with('{') && name.trim_end_matches('\0').ends_with('}'), "{name}");
    // Keymap (A000/DF20): version 01, one 12-byte record for key file B081.
    let keymap = get_do(&mut c, 0xA000, 0xDF20);
    assert_eq!(keymap, [1, 1, 0, 0, 0, 0x07, 0x9A, 0x81, 0xB0, 0xFF, 0xFF, 0, 0]);
    // kxc00: 01 00, length, zlib; a certificate of the container's key.
    let file = get_do(&mut c, 0xA010, 0xDF24);
    assert_eq!(&file[..2], &[1, 0]);
    let cert = inflate(&file[4..]);
    assert_eq!(cert.len(), usize::from(u16::from_le_bytes([file[2], file[3]])));
    let public = rsa_public(&public_key(&mut c, 0x81));
    let n = public.n().to_bytes_be();
    assert!(cert.windows(n.len()).any(|w| w == n.as_slice()), "certificate of the key");
    // All DOs of a file at once (5C 00); a missing DO; a key file is not a DO file.
    let all = ok(&mut c, 0xCB, 0xA0, 0x10, &[0x5C, 0x00]);
    assert_eq!(ber::iter(&all, ber::ParseOptions::STRICT).count(), 4);
    assert_eq!(sw(&mut c, 0xCB, 0xA0, 0x10, &[0x5C, 0x02, 0xDF, 0x30]), 0x6A88);
    assert_eq!(sw(&mut c, 0xCB, 0xA0, 0x99, &[0x5C, 0x02, 0xDF, 0x30]), 0x6A82);
    assert_eq!(sw(&mut c, 0xCB, 0xB0, 0x81, &[0x5C, 0x02, 0xDF, 0x30]), 0x6981);
    // Never-readable and user-readable files.
    assert_eq!(sw(&mut c, 0xCB, 0xA0, 0x11, &[0x5C, 0x02, 0xDF, 0x20]), 0x6982);
    assert_eq!(sw(&mut c, 0xCB, 0xA0, 0x13, &[0x5C, 0x02, 0xDF, 0x20]), 0x6982);
    verify_pin(&mut c);
    assert_eq!(sw(&mut c, 0xCB, 0xA0, 0x13, &[0x5C, 0x02, 0xDF, 0x20]), 0x6A88);
    // P1-P2 0000: the current EF (the last one read).
    assert_eq!(ok(&mut c, 0xCB, 0xA0, 0x10, &[0x5C, 0x02, 0xDF, 0x21])[3..], *b"mscp\0\0\0\0");
    assert_eq!(ok(&mut c, 0xCB, 0x00, 0x00, &[0x5C, 0x02, 0xDF, 0x21])[3..], *b"mscp\0\0\0\0");
}

#[test]
fn put_data_follows_the_file_acls() {
    let mut c = selected();
    // cardcf is written by the host (OpenSC gids_update_cardcf): the PIN is needed.
    let cardcf = get_do(&mut c, 0xA010, 0xDF22);
    let mut bumped = cardcf.clone();
    bumped[4] += 1;
    assert_eq!(put_do(&mut c, 0xA010, 0xDF22, &bumped), 0x6982);
    verify_pin(&mut c);
    assert_eq!(put_do(&mut c, 0xA010, 0xDF22, &bumped), 0x9000);
    assert_eq!(get_do(&mut c, 0xA010, 0xDF22), bumped);
    // A long DO goes in a chain and comes back through GET RESPONSE.
    let big: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(put_do(&mut c, 0xA010, 0xDF25, &big), 0x9000);
    assert_eq!(get_do(&mut c, 0xA010, 0xDF25), big);
    // An empty DO (OpenSC's empty cmapfile, deleted certificates) stays as an empty DO.
    assert_eq!(put_do(&mut c, 0xA010, 0xDF25, &[]), 0x9000);
    assert_eq!(get_do(&mut c, 0xA010, 0xDF25), Vec::<u8>::new());
    // cardid needs the admin key; A011 is write-only.
    assert_eq!(put_do(&mut c, 0xA012, 0xDF20, &[0; 16]), 0x6982);
    assert_eq!(put_do(&mut c, 0xA011, 0xDF20, &[1, 2]), 0x9000);
    // Not one DO: refused.
    assert_eq!(sw(&mut c, 0xDB, 0xA0, 0x10, &[0xDF, 0x25, 0x01, 0x00, 0xDF]), 0x6A80);
    assert_eq!(sw(&mut c, 0xDB, 0xB0, 0x81, &[0xDF, 0x25, 0x00]), 0x6981);
    assert_eq!(sw(&mut c, 0xDB, 0xA0, 0x99, &[0xDF, 0x25, 0x00]), 0x6A82);
    // Logged out (VERIFY 00 82): refused again.
    ok(&mut c, 0x20, 0x00, 0x82, &[]);
    assert_eq!(put_do(&mut c, 0xA010, 0xDF22, &cardcf), 0x6982);
}

// ----- PIN ---------------------------------------------------------------------------------

#[test]
fn pin_countdown_block_and_status() {
    let mut c = selected();
    let status = |c: &mut GidsCard| ok(c, 0xCB, 0x3F, 0xFF, &[0x5C, 0x02, 0x7F, 0x71]);
    assert_eq!(status(&mut c), [0x7F, 0x71, 0x06, 0x97, 0x01, 3, 0x93, 0x01, 3]);
    // No PUK on this card: OpenSC's probe of 7F73 fails.
    assert_eq!(sw(&mut c, 0xCB, 0x3F, 0xFF, &[0x5C, 0x02, 0x7F, 0x73]), 0x6A88);
    assert_eq!(sw(&mut c, 0x20, 0x00, 0x80, &[]), 0x63C3);
    assert_eq!(sw(&mut c, 0x20, 0x00, 0x80, b"000000"), 0x63C2);
    assert_eq!(status(&mut c)[5], 2);
    verify_pin(&mut c);
    assert_eq!(sw(&mut c, 0x20, 0x00, 0x80, &[]), 0x9000);
    assert_eq!(status(&mut c)[5], 3);
    // A failed VERIFY drops the verified state.
    assert_eq!(sw(&mut c, 0x20, 0x00, 0x80, b"1234"), 0x63C2);
    assert_eq!(sw(&mut c, 0x20, 0x00, 0x80, &[]), 0x63C2);
    assert_eq!(sw(&mut c, 0x20, 0x00, 0x80, b"9999"), 0x63C1);
    assert_eq!(sw(&mut c, 0x20, 0x00, 0x80, b"9999"), 0x63C0);
    assert_eq!(sw(&mut c, 0x20, 0x00, 0x80, b"123456"), 0x6983);
    assert_eq!(sw(&mut c, 0x20, 0x00, 0x80, &[]), 0x6983);
    assert_eq!(status(&mut c)[5], 0);
    // Blocked survives power cycles and state round trips.
    let mut again = GidsCard::from_state(c.save_state(), SimRng::from_seed(1)).unwrap();
    again.power_on();
    ok(&mut again, 0xA4, 0x04, 0x00, &AID);
    assert_eq!(sw(&mut again, 0x20, 0x00, 0x80, b"123456"), 0x6983);
}

#[test]
fn logout_reset_and_reselect_clear_the_pin() {
    let mut c = selected();
    verify_pin(&mut c);
    ok(&mut c, 0x20, 0x00, 0x82, &[]);
    assert_eq!(sw(&mut c, 0x20, 0x00, 0x80, &[]), 0x63C3);
    verify_pin(&mut c);
    c.power_on();
    assert_eq!(sw(&mut c, 0x20, 0x00, 0x80, &[]), 0x6985, "deselected by the reset");
    ok(&mut c, 0xA4, 0x04, 0x00, &AID);
    assert_eq!(sw(&mut c, 0x20, 0x00, 0x80, &[]), 0x63C3);
    verify_pin(&mut c);
    c.reset();
    ok(&mut c, 0xA4, 0x04, 0x00, &AID);
    assert_eq!(sw(&mut c, 0x20, 0x00, 0x80, &[]), 0x63C3);
}

#[test]
fn change_reference_data() {
    let mut c = selected();
    // Old || new, split at the stored PIN's length.
    assert_eq!(sw(&mut c, 0x24, 0x00, 0x80, b"000000654321"), 0x63C2);
    assert_eq!(sw(&mut c, 0x24, 0x00, 0x80, b"123456654321"), 0x9000);
    assert_eq!(sw(&mut c, 0x20, 0x00, 0x80, b"123456"), 0x63C2);
    ok(&mut c, 0x20, 0x00, 0x80, b"654321");
    // New PIN too short or too long: 6700, PIN unchanged.
    assert_eq!(sw(&mut c, 0x24, 0x00, 0x80, b"654321123"), 0x6700);
    assert_eq!(sw(&mut c, 0x24, 0x00, 0x80, &[b"654321".as_slice(), &[b'1'; 17]].concat()), 0x6700);
    ok(&mut c, 0x20, 0x00, 0x80, b"654321");
    // P1 01: new PIN only, when verified (OpenSC's CHANGE with an empty old PIN).
    ok(&mut c, 0x24, 0x01, 0x80, b"11112222");
    ok(&mut c, 0x20, 0x00, 0x80, b"11112222");
    ok(&mut c, 0x20, 0x00, 0x82, &[]);
    assert_eq!(sw(&mut c, 0x24, 0x01, 0x80, b"33334444"), 0x6982);
    assert_eq!(sw(&mut c, 0x24, 0x00, 0x81, b"1111222233334444"), 0x6A88);
    assert_eq!(sw(&mut c, 0x24, 0x00, 0x80, &[]), 0x6700);
}

// ----- admin key ---------------------------------------------------------------------------

/// 3DES-EDE3-CBC with a zero IV, written here independently of the card's code.
fn host_tdes_cbc(key: &[u8], data: &[u8], encrypt: bool) -> Vec<u8> {
    let cipher = des::TdesEde3::new_from_slice(key).unwrap();
    let mut iv = [0u8; 8];
    let mut out = Vec::new();
    for block in data.chunks(8) {
        let mut b = GenericArray::clone_from_slice(block);
        if encrypt {
            for i in 0..8 {
                b[i] ^= iv[i];
            }
            cipher.encrypt_block(&mut b);
            iv.copy_from_slice(&b);
        } else {
            cipher.decrypt_block(&mut b);
            for i in 0..8 {
                b[i] ^= iv[i];
            }
            iv.copy_from_slice(block);
        }
        out.extend_from_slice(&b);
    }
    out
}

/// The host side of OpenSC's gids_authenticate_admin; returns the final status word.
fn admin_mutual(c: &mut GidsCard, key: &[u8]) -> u16 {
    ok(c, 0x22, 0xC1, 0xA4, &[0x83, 0x01, 0x80]);
    let r1: Vec<u8> = (0..16).map(|i| 0xA0 + i).collect();
    let mut cmd = vec![0x7C, 0x12, 0x81, 0x10];
    cmd.extend_from_slice(&r1);
    let resp = ok(c, 0x87, 0x00, 0x00, &cmd);
    assert_eq!(&resp[..4], &[0x7C, 0x12, 0x81, 0x10]);
    let r2 = resp[4..20].to_vec();
    let mut plain = r2.clone();
    plain.extend_from_slice(&r1);
    plain.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 0x80]);
    let mut cmd = vec![0x7C, 0x2A, 0x82, 0x28];
    cmd.extend_from_slice(&host_tdes_cbc(key, &plain, true));
    let (resp, status) = send(c, 0x87, 0x00, 0x00, &cmd);
    if status == 0x9000 {
        assert_eq!(&resp[..4], &[0x7C, 0x2A, 0x82, 0x28]);
        let back = host_tdes_cbc(key, &resp[4..44], false);
        assert_eq!(&back[..16], r1.as_slice(), "card returns R1 first");
        assert_eq!(&back[16..32], r2.as_slice());
        assert_eq!(back[39], 0x80);
    }
    status
}

#[test]
fn admin_mutual_authentication_and_unblock() {
    let mut c = selected();
    // Block the PIN.
    for _ in 0..3 {
        send(&mut c, 0x20, 0x00, 0x80, b"000000");
    }
    assert_eq!(sw(&mut c, 0x20, 0x00, 0x80, &[]), 0x6983);
    // Without admin authentication, no unblock.
    assert_eq!(sw(&mut c, 0x2C, 0x02, 0x80, b"13572468"), 0x6982);
    // GENERAL AUTHENTICATE needs the admin key chosen first.
    assert_eq!(sw(&mut c, 0x87, 0x00, 0x00, &[0x7C, 0x02, 0x81, 0x00]), 0x6985);
    // A wrong key: 6982.
    assert_eq!(admin_mutual(&mut c, &[0x11; 24]), 0x6982);
    assert_eq!(sw(&mut c, 0x2C, 0x02, 0x80, b"13572468"), 0x6982);
    // The default key, 24 bytes of 00.
    assert_eq!(admin_mutual(&mut c, &[0; 24]), 0x9000);
    assert_eq!(sw(&mut c, 0x2C, 0x02, 0x80, b"123"), 0x6700);
    assert_eq!(sw(&mut c, 0x2C, 0x02, 0x81, b"13572468"), 0x6A88);
    ok(&mut c, 0x2C, 0x02, 0x80, b"13572468");
    // The admin is logged out after the unblock; the new PIN works with all tries.
    assert_eq!(sw(&mut c, 0x2C, 0x02, 0x80, b"13572468"), 0x6982);
    assert_eq!(sw(&mut c, 0x20, 0x00, 0x80, &[]), 0x63C3);
    ok(&mut c, 0x20, 0x00, 0x80, b"13572468");
    // A response without a challenge.
    let mut cmd = vec![0x7C, 0x2A, 0x82, 0x28];
    cmd.extend_from_slice(&[0; 40]);
    assert_eq!(sw(&mut c, 0x87, 0x00, 0x00, &cmd), 0x6985);
    // A challenge of a wrong size.
    assert_eq!(sw(&mut c, 0x87, 0x00, 0x00, &[0x7C, 0x05, 0x81, 0x03, 1, 2, 3]), 0x6A80);
}

#[test]
fn admin_external_authentication_and_admin_writes() {
    let mut c = selected();
    ok(&mut c, 0x22, 0xC1, 0xA4, &[0x83, 0x01, 0x80]);
    let resp = ok(&mut c, 0x87, 0x00, 0x00, &[0x7C, 0x02, 0x81, 0x00]);
    assert_eq!(&resp[..4], &[0x7C, 0x0A, 0x81, 0x08]);
    // A wrong answer ends the exchange.
    let mut cmd = vec![0x7C, 0x0A, 0x82, 0x08];
    cmd.extend_from_slice(&host_tdes_cbc(&[0; 24], &[0; 8], true));
    assert_eq!(sw(&mut c, 0x87, 0x00, 0x00, &cmd), 0x6982);
    let resp = ok(&mut c, 0x87, 0x00, 0x00, &[0x7C, 0x02, 0x81, 0x00]);
    let mut cmd = vec![0x7C, 0x0A, 0x82, 0x08];
    cmd.extend_from_slice(&host_tdes_cbc(&[0; 24], &resp[4..12], true));
    assert_eq!(ok(&mut c, 0x87, 0x00, 0x00, &cmd), Vec::<u8>::new());
    // The admin may write cardid (EveryoneReadAdminWriteAc).
    assert_eq!(put_do(&mut c, 0xA012, 0xDF20, &[0x42; 16]), 0x9000);
    assert_eq!(get_do(&mut c, 0xA012, 0xDF20), [0x42; 16]);
    // Change the admin key (OpenSC gids_set_administrator_key), then authenticate with it.
    let new_key: Vec<u8> = (1..=24).collect();
    let mut data = h("70 24 84 01 80 A5 1F 87 18").unwrap();
    data.extend_from_slice(&new_key);
    data.extend_from_slice(&[0x88, 0x03, 0xB0, 0x73, 0xDC]);
    ok(&mut c, 0xDB, 0x3F, 0xFF, &data);
    ok(&mut c, 0x20, 0x00, 0x82, &[]);
    assert_eq!(admin_mutual(&mut c, &[0; 24]), 0x6982);
    assert_eq!(admin_mutual(&mut c, &new_key), 0x9000);
    // The admin key cannot be read, nor set without the admin.
    assert_eq!(sw(&mut c, 0xCB, 0x3F, 0xFF, &h("70 08 84 01 80 A5 03 7F 49 80").unwrap()), 0x6982);
    ok(&mut c, 0x20, 0x00, 0x82, &[]);
    assert_eq!(sw(&mut c, 0xDB, 0x3F, 0xFF, &data), 0x6982);
}

// ----- signatures and decryption with the personalised RSA key -------------------------------

#[test]
fn rsa_sign_as_opensc_does() {
    let mut c = selected();
    let public = rsa_public(&public_key(&mut c, 0x81));
    assert_eq!(public.size(), 256);
    // MSE needs the PIN (key file ACL 8F 10 10 10 00).
    let mse = [0x80, 0x01, 0x57, 0x84, 0x01, 0x81];
    assert_eq!(sw(&mut c, 0x22, 0x41, 0xB6, &mse), 0x6982);
    assert_eq!(sw(&mut c, 0x2A, 0x9E, 0x9A, &[1; 51]), 0x6985);
    verify_pin(&mut c);
    ok(&mut c, 0x22, 0x41, 0xB6, &mse);
    // PKCS#1 v1.5, the card pads the DigestInfo.
    let info = sha256_digest_info(b"hello");
    let sig = ok(&mut c, 0x2A, 0x9E, 0x9A, &info);
    public.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(b"hello"), &sig).unwrap();
    assert_eq!(sw(&mut c, 0x2A, 0x9E, 0x9A, &[1; 246]), 0x6700);
    // Decipher is not the environment set.
    assert_eq!(sw(&mut c, 0x2A, 0x80, 0x86, &[0; 257]), 0x6985);
    // Raw: the host pads (algorithm 17).
    ok(&mut c, 0x22, 0x41, 0xB6, &[0x80, 0x01, 0x17, 0x84, 0x01, 0x81]);
    let mut block = vec![0x00, 0x01];
    block.resize(256 - info.len() - 1, 0xFF);
    block.push(0);
    block.extend_from_slice(&info);
    assert_eq!(ok(&mut c, 0x2A, 0x9E, 0x9A, &block), sig);
    assert_eq!(sw(&mut c, 0x2A, 0x9E, 0x9A, &block[1..]), 0x6700);
    // Algorithms the key file does not list, or of another key type: 6A80; missing key: 6A88.
    assert_eq!(sw(&mut c, 0x22, 0x41, 0xB6, &[0x80, 0x01, 0x47, 0x84, 0x01, 0x81]), 0x6A80);
    assert_eq!(sw(&mut c, 0x22, 0x41, 0xB6, &[0x80, 0x01, 0x5C, 0x84, 0x01, 0x81]), 0x6A80);
    assert_eq!(sw(&mut c, 0x22, 0x41, 0xB6, &[0x80, 0x01, 0x57, 0x84, 0x01, 0x82]), 0x6A88);
    assert_eq!(sw(&mut c, 0x22, 0x41, 0xB6, &[0x84, 0x01, 0x81]), 0x6A80);
    // Logging out after MSE stops the signature.
    ok(&mut c, 0x22, 0x41, 0xB6, &mse);
    ok(&mut c, 0x20, 0x00, 0x82, &[]);
    assert_eq!(sw(&mut c, 0x2A, 0x9E, 0x9A, &info), 0x6982);
    // RESTORE forgets the environment.
    verify_pin(&mut c);
    ok(&mut c, 0x22, 0x41, 0xB6, &mse);
    ok(&mut c, 0x22, 0xF3, 0x00, &[]);
    assert_eq!(sw(&mut c, 0x2A, 0x9E, 0x9A, &info), 0x6985);
}

#[test]
fn rsa_decipher_pkcs1_oaep_and_raw() {
    let mut c = selected();
    let public = rsa_public(&public_key(&mut c, 0x81));
    verify_pin(&mut c);
    let mut rng = SimRng::from_seed(3);
    // PKCS#1 v1.5 (47): data 00 || cryptogram, 257 bytes, chained.
    ok(&mut c, 0x22, 0x41, 0xB8, &[0x80, 0x01, 0x47, 0x84, 0x01, 0x81]);
    let ct = public.encrypt(&mut rng, Pkcs1v15Encrypt, b"session key").unwrap();
    let mut data = vec![0x00];
    data.extend_from_slice(&ct);
    assert_eq!(ok(&mut c, 0x2A, 0x80, 0x86, &data), b"session key");
    // The same as one extended APDU.
    let mut apdu = vec![0x00, 0x2A, 0x80, 0x86, 0x00, 0x01, 0x01];
    apdu.extend_from_slice(&data);
    apdu.extend_from_slice(&[0x00, 0x00]);
    let resp = c.process(&apdu);
    assert_eq!(resp, [b"session key".as_slice(), &[0x90, 0x00]].concat());
    // Without the padding indicator, as OpenSC 0.23's gids_decipher sends it (256 bytes).
    assert_eq!(ok(&mut c, 0x2A, 0x80, 0x86, &ct), b"session key");
    // A wrong padding indicator, a wrong length, a cryptogram that is not PKCS#1.
    data[0] = 0x81;
    assert_eq!(sw(&mut c, 0x2A, 0x80, 0x86, &data), 0x6A80);
    assert_eq!(sw(&mut c, 0x2A, 0x80, 0x86, &data[..200]), 0x6700);
    data[0] = 0x00;
    assert_eq!(sw(&mut c, 0x2A, 0x80, 0x86, &data[..200]), 0x6700);
    assert_eq!(sw(&mut c, 0x2A, 0x80, 0x86, &[0x00; 257]), 0x6A80);
    // OAEP (87), SHA-1.
    ok(&mut c, 0x22, 0x41, 0xB8, &[0x80, 0x01, 0x87, 0x84, 0x01, 0x81]);
    let ct = public.encrypt(&mut rng, Oaep::new::<sha1::Sha1>(), b"oaep secret").unwrap();
    let data = [&[0u8][..], &ct].concat();
    assert_eq!(ok(&mut c, 0x2A, 0x80, 0x86, &data), b"oaep secret");
    // Raw (07): the whole block comes back.
    ok(&mut c, 0x22, 0x41, 0xB8, &[0x80, 0x01, 0x07, 0x84, 0x01, 0x81]);
    let m = BigUint::from_bytes_be(&[0x00, 0x02, 0x11, 0x22, 0x33]);
    let ct = rsa::hazmat::rsa_encrypt(&public, &m).unwrap().to_bytes_be();
    let mut data = vec![0x00];
    data.resize(1 + 256 - ct.len(), 0);
    data.extend_from_slice(&ct);
    let plain = ok(&mut c, 0x2A, 0x80, 0x86, &data);
    assert_eq!(plain.len(), 256);
    assert_eq!(&plain[253..], &[0x11, 0x22, 0x33]);
    assert_eq!(sw(&mut c, 0x2A, 0x9E, 0x9A, &[1; 20]), 0x6985);
}

// ----- key creation and generation as OpenSC's pkcs15-init does it ---------------------------

/// A key file FCP for `kid` allowing ECDSA (10 + id) and ECDH (00 + id): simulator choice for
/// EC keys, in the shape of OpenSC's RSA key files.
fn ec_key_fcp(kid: u8, id: u8) -> Vec<u8> {
    let mut fcp = vec![0x62, 0x26, 0x82, 0x01, 0x18, 0x83, 0x02, 0xB0, kid];
    fcp.extend_from_slice(&[0x8C, 0x05, 0x8F, 0x10, 0x10, 0x10, 0x00, 0xA5, 0x16]);
    fcp.extend_from_slice(&[0xB6, 0x09, 0x80, 0x01, 0x10 + id, 0x83, 0x01, kid, 0x95, 0x01, 0x40]);
    fcp.extend_from_slice(&[0xB8, 0x09, 0x80, 0x01, id, 0x83, 0x01, kid, 0x95, 0x01, 0x40]);
    fcp
}

#[test]
fn create_activate_generate_and_use_ec_keys() {
    for (kid, id) in [(0x82u8, 0x0Cu8), (0x83, 0x0D)] {
        let mut c = selected();
        let fcp = ec_key_fcp(kid, id);
        // CREATE FILE needs the PIN (application ACL 03 30 30).
        assert_eq!(sw(&mut c, 0xE0, 0x00, 0x00, &fcp), 0x6982);
        verify_pin(&mut c);
        ok(&mut c, 0xE0, 0x00, 0x00, &fcp);
        assert_eq!(sw(&mut c, 0xE0, 0x00, 0x00, &fcp), 0x6A89);
        // Not usable before ACTIVATE FILE.
        let generate = [0xAC, 0x06, 0x80, 0x01, id, 0x83, 0x01, kid];
        assert_eq!(sw(&mut c, 0x47, 0x00, 0x00, &generate), 0x6985);
        ok(&mut c, 0x44, 0x00, 0x00, &[]);
        // No key yet.
        assert_eq!(sw(&mut c, 0xCB, 0x3F, 0xFF, &[0x70, 0x03, 0x84, 0x01, kid]), 0x6A88);
        assert_eq!(sw(&mut c, 0x22, 0x41, 0xB6, &[0x80, 0x01, 0x10 + id, 0x84, 0x01, kid]), 0x6985);
        // GENERATE with Le: the public key comes back; it is the one GET DATA reads.
        let template = ok(&mut c, 0x47, 0x00, 0x00, &generate);
        assert_eq!(public_key(&mut c, kid), template);
        let point = ec_point(&template);
        // ECDSA on a hash, r || s.
        ok(&mut c, 0x22, 0x41, 0xB6, &[0x80, 0x01, 0x10 + id, 0x84, 0x01, kid]);
        let hash = Sha256::digest(b"ec message");
        let sig = ok(&mut c, 0x2A, 0x9E, 0x9A, &hash);
        // ECDH with a host key.
        let mut rng = SimRng::from_seed(5);
        ok(&mut c, 0x22, 0x41, 0xB8, &[0x80, 0x01, id, 0x84, 0x01, kid]);
        if id == 0x0C {
            assert_eq!(sig.len(), 64);
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
            vk.verify_prehash(&hash, &p256::ecdsa::Signature::from_slice(&sig).unwrap()).unwrap();
            let host = p256::SecretKey::random(&mut rng);
            let host_point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                &host.public_key(),
                false,
            );
            let shared =
                ok(&mut c, 0x2A, 0x80, 0x86, &[&[0u8][..], host_point.as_bytes()].concat());
            let peer = p256::PublicKey::from_sec1_bytes(&point).unwrap();
            let expected = p256::ecdh::diffie_hellman(host.to_nonzero_scalar(), peer.as_affine());
            assert_eq!(shared.as_slice(), expected.raw_secret_bytes().as_slice());
            assert_eq!(ok(&mut c, 0x2A, 0x80, 0x86, host_point.as_bytes()), shared);
            assert_eq!(sw(&mut c, 0x2A, 0x80, 0x86, &[0, 4, 1, 2]), 0x6700);
            assert_eq!(sw(&mut c, 0x2A, 0x80, 0x86, &[4; 65]), 0x6A80, "not on the curve");
        } else {
            assert_eq!(sig.len(), 96);
            let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
            vk.verify_prehash(&hash, &p384::ecdsa::Signature::from_slice(&sig).unwrap()).unwrap();
            let host = p384::SecretKey::random(&mut rng);
            let host_point = p384::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                &host.public_key(),
                false,
            );
            let shared =
                ok(&mut c, 0x2A, 0x80, 0x86, &[&[0u8][..], host_point.as_bytes()].concat());
            let peer = p384::PublicKey::from_sec1_bytes(&point).unwrap();
            let expected = p384::ecdh::diffie_hellman(host.to_nonzero_scalar(), peer.as_affine());
            assert_eq!(shared.as_slice(), expected.raw_secret_bytes().as_slice());
        }
        // GENERATE without Le (as OpenSC sends it): 9000 without data.
        let mut apdu = vec![0x00, 0x47, 0x00, 0x00, generate.len() as u8];
        apdu.extend_from_slice(&generate);
        assert_eq!(c.process(&apdu), [0x90, 0x00]);
        assert_ne!(public_key(&mut c, kid), template, "a new key");
        // The environment no longer matches a key of another algorithm... the same one: fine.
        // DELETE FILE of the current EF (OpenSC gids_delete_key_file selects, then deletes).
        ok(&mut c, 0xA4, 0x00, 0x0C, &[0xB0, kid]);
        ok(&mut c, 0xE4, 0x00, 0x00, &[]);
        assert_eq!(sw(&mut c, 0xA4, 0x00, 0x0C, &[0xB0, kid]), 0x6A82);
        assert_eq!(sw(&mut c, 0x2A, 0x80, 0x86, &[0; 66]), 0x6985);
        assert_eq!(sw(&mut c, 0xE4, 0x00, 0x00, &[]), 0x6986);
    }
}

#[test]
fn generate_rsa_into_an_opensc_key_file() {
    let mut c = selected();
    verify_pin(&mut c);
    // OpenSC gids_perform_create_keyfile for container 1 (key 82), RSA 2048.
    ok(&mut c, 0xE0, 0x00, 0x00, &perso::key_exchange_fcp(0x82, 0x07));
    ok(&mut c, 0x44, 0x00, 0x00, &[]);
    // Unsupported algorithm (RSA 1024), a key file that does not exist.
    assert_eq!(
        sw(&mut c, 0x47, 0x00, 0x00, &[0xAC, 0x06, 0x80, 0x01, 0x06, 0x83, 0x01, 0x82]),
        0x6A81
    );
    assert_eq!(
        sw(&mut c, 0x47, 0x00, 0x00, &[0xAC, 0x06, 0x80, 0x01, 0x07, 0x83, 0x01, 0x90]),
        0x6A88
    );
    assert_eq!(sw(&mut c, 0x47, 0x00, 0x00, &[0xAC, 0x03, 0x80, 0x01, 0x07]), 0x6A80);
    // The admin key is not an asymmetric key slot.
    assert_eq!(
        sw(&mut c, 0x47, 0x00, 0x00, &[0xAC, 0x06, 0x80, 0x01, 0x07, 0x83, 0x01, 0x80]),
        0x6985
    );
    let template = ok(&mut c, 0x47, 0x00, 0x00, &[0xAC, 0x06, 0x80, 0x01, 0x07, 0x83, 0x01, 0x82]);
    let public = rsa_public(&template);
    assert_eq!(public.size(), 256);
    assert_eq!(public.e(), &BigUint::from(65537u32));
    ok(&mut c, 0x22, 0x41, 0xB6, &[0x80, 0x01, 0x57, 0x84, 0x01, 0x82]);
    let sig = ok(&mut c, 0x2A, 0x9E, 0x9A, &sha256_digest_info(b"new key"));
    public.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(b"new key"), &sig).unwrap();
    // Without the PIN, GENERATE is refused.
    ok(&mut c, 0x20, 0x00, 0x82, &[]);
    assert_eq!(
        sw(&mut c, 0x47, 0x00, 0x00, &[0xAC, 0x06, 0x80, 0x01, 0x07, 0x83, 0x01, 0x82]),
        0x6982
    );
    // CREATE FILE with a malformed FCP, or a key file outside B0xx.
    verify_pin(&mut c);
    assert_eq!(sw(&mut c, 0xE0, 0x00, 0x00, &[0x62, 0x03, 0x82, 0x01, 0x39]), 0x6A80);
    let mut outside = perso::key_exchange_fcp(0x84, 0x07);
    outside[7] = 0xC0;
    assert_eq!(sw(&mut c, 0xE0, 0x00, 0x00, &outside), 0x6A80);
}

#[test]
fn rsa_key_import() {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let mut c = selected();
    verify_pin(&mut c);
    ok(&mut c, 0xE0, 0x00, 0x00, &perso::key_exchange_fcp(0x85, 0x07));
    ok(&mut c, 0x44, 0x00, 0x00, &[]);
    let mut rng = SimRng::from_seed(11);
    let key = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let der = key.to_pkcs1_der().unwrap();
    // OpenSC gids_import_key: 70 {84 01 kid, A5 {83 01 02, 84 01 00, 87 RSAPrivateKey}}.
    let mut value = Vec::new();
    ber::write(&mut value, Tag::new(0x83), &[0x02]).unwrap();
    ber::write(&mut value, Tag::new(0x84), &[0x00]).unwrap();
    ber::write(&mut value, Tag::new(0x87), der.as_bytes()).unwrap();
    let mut inner = Vec::new();
    ber::write(&mut inner, Tag::new(0x84), &[0x85]).unwrap();
    ber::write(&mut inner, Tag::new(0xA5), &value).unwrap();
    let mut data = Vec::new();
    ber::write(&mut data, Tag::new(0x70), &inner).unwrap();
    ok(&mut c, 0xDB, 0x3F, 0xFF, &data);
    assert_eq!(rsa_public(&public_key(&mut c, 0x85)), rsa::RsaPublicKey::from(&key));
    // A damaged key (a bit of the modulus flipped) is refused.
    data[40] ^= 1;
    assert_eq!(sw(&mut c, 0xDB, 0x3F, 0xFF, &data), 0x6A80);
}

// ----- persistence and robustness ------------------------------------------------------------

#[test]
fn state_round_trip() {
    let mut c = selected();
    verify_pin(&mut c);
    ok(&mut c, 0x24, 0x00, 0x80, b"123456246810");
    assert_eq!(put_do(&mut c, 0xA010, 0xDF30, b"persisted"), 0x9000);
    ok(&mut c, 0xE0, 0x00, 0x00, &ec_key_fcp(0x86, 0x0C));
    // Left in the creation state on purpose.
    let before = public_key(&mut c, 0x81);
    send(&mut c, 0x20, 0x00, 0x80, b"000000");
    let state = c.save_state();
    let text = serde_json::to_string(&state).unwrap();
    let mut again =
        GidsCard::from_state(serde_json::from_str(&text).unwrap(), SimRng::from_seed(2)).unwrap();
    assert_eq!(again.save_state(), state);
    again.power_on();
    ok(&mut again, 0xA4, 0x04, 0x00, &AID);
    assert_eq!(sw(&mut again, 0x20, 0x00, 0x80, &[]), 0x63C2);
    ok(&mut again, 0x20, 0x00, 0x80, b"246810");
    assert_eq!(get_do(&mut again, 0xA010, 0xDF30), b"persisted");
    assert_eq!(public_key(&mut again, 0x81), before);
    ok(&mut again, 0xA4, 0x00, 0x0C, &[0xB0, 0x86]);
    ok(&mut again, 0x44, 0x00, 0x00, &[]);
    ok(&mut again, 0x47, 0x00, 0x00, &[0xAC, 0x06, 0x80, 0x01, 0x0C, 0x83, 0x01, 0x86]);
    // The admin key survives too.
    assert_eq!(admin_mutual(&mut again, &[0; 24]), 0x9000);
    // Damaged states are refused.
    for bad in [
        serde_json::json!(null),
        serde_json::json!({"pin": state["pin"], "files": [{"fcp": "6200", "life": "activated",
            "content": {"kind": "objects", "objects": {}}}]}),
        serde_json::json!({"pin": state["pin"], "files": [{"fcp": "620C8201398302A0008C03033000",
            "life": "activated", "content": {"kind": "key"}}]}),
    ] {
        assert!(GidsCard::from_state(bad, SimRng::from_seed(1)).is_err());
    }
    let mut twice = state.clone();
    let first = twice["files"][0].clone();
    twice["files"].as_array_mut().unwrap().push(first);
    assert!(GidsCard::from_state(twice, SimRng::from_seed(1)).is_err());
}

#[test]
fn seeded_cards_are_deterministic() {
    assert_eq!(GidsCard::new(SimRng::from_seed(7)).save_state(), *fresh_state());
}

#[test]
fn debug_output_is_redacted() {
    let mut c = selected();
    verify_pin(&mut c);
    let text = format!("{c:?}");
    assert!(text.contains("REDACTED"));
    assert!(!text.contains("123456"), "{text}");
    assert!(!text.contains("[49, 50, 51"), "{text}");
}

#[test]
fn random_apdus_never_panic() {
    let mut c = selected();
    verify_pin(&mut c);
    let mut rng = SimRng::from_seed(42);
    let interesting =
        [0x20u8, 0x22, 0x24, 0x2A, 0x2C, 0x44, 0x47, 0x87, 0xA4, 0xCB, 0xDB, 0xE0, 0xE4, 0xC0];
    for i in 0..20_000u32 {
        let bytes = rng.bytes(64);
        let len = usize::from(bytes[0]) % 40;
        let mut apdu = bytes[1..=len.max(4)].to_vec();
        apdu[0] &= 0x10;
        apdu[1] = interesting[usize::from(bytes[60]) % interesting.len()];
        if i % 3 == 0 {
            // Structured data: a plausible TLV after a short header.
            apdu.truncate(4);
            let body = &bytes[20..20 + usize::from(bytes[61] % 30)];
            apdu.push(body.len() as u8);
            apdu.extend_from_slice(body);
        }
        let resp = c.process(&apdu);
        assert!(resp.len() >= 2);
        if i % 1000 == 0 {
            c.power_on();
            ok(&mut c, 0xA4, 0x04, 0x00, &AID);
            send(&mut c, 0x20, 0x00, 0x80, b"123456");
        }
    }
}
