//! Unit tests of the simulated PIV card, driven through [`Card::process`] with raw APDUs and
//! the host-side exchange engine of scard-iso7816 (chaining, GET RESPONSE). Cryptographic
//! results are checked on the host with the RustCrypto crates, independently of the card.

use super::*;
use cipher::generic_array::GenericArray;
use cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rsa::{BigUint, Pkcs1v15Encrypt, Pkcs1v15Sign, RsaPublicKey};
use scard_iso7816::hex::decode_lenient as h;
use scard_iso7816::{CardLimits, CommandApdu, Exchange, Step};
use sha2::{Digest, Sha256, Sha384};
use signature::hazmat::PrehashVerifier;

const OK: u16 = 0x9000;

fn card() -> PivCard {
    PivCard::new(SimRng::from_seed(7))
}

/// Sends raw bytes (hex) and returns the raw answer.
fn raw(card: &mut PivCard, apdu: &str) -> Vec<u8> {
    card.process(&h(apdu).unwrap())
}

/// The status word at the end of a raw answer.
fn sw_of(answer: &[u8]) -> u16 {
    u16::from_be_bytes([answer[answer.len() - 2], answer[answer.len() - 1]])
}

/// Exchanges one command with the host engine (chaining and GET RESPONSE as needed).
fn exchange(card: &mut PivCard, cmd: &CommandApdu, limits: CardLimits) -> (Vec<u8>, u16, usize) {
    let mut ex = Exchange::new(cmd, limits).unwrap();
    loop {
        let answer = card.process(ex.apdu());
        match ex.receive(&answer).unwrap() {
            Step::Transmit => {}
            Step::Done(r) => return (r.data().to_vec(), r.sw().0, ex.apdus_sent()),
        }
    }
}

/// Sends a short-length command with Le 00 (chained when the data is long).
fn send(card: &mut PivCard, ins: u8, p1: u8, p2: u8, data: &[u8]) -> (Vec<u8>, u16) {
    let mut cmd = CommandApdu::new(0x00, ins, p1, p2);
    if !data.is_empty() {
        cmd = cmd.with_data(data.to_vec()).unwrap();
    }
    let cmd = cmd.with_ne(65536).unwrap();
    let (data, sw, _) = exchange(card, &cmd, CardLimits::default());
    (data, sw)
}

fn sw(card: &mut PivCard, ins: u8, p1: u8, p2: u8, data: &[u8]) -> u16 {
    send(card, ins, p1, p2, data).1
}

fn get_data(card: &mut PivCard, tag: &[u8]) -> (Vec<u8>, u16) {
    let mut list = vec![0x5C, tag.len() as u8];
    list.extend_from_slice(tag);
    send(card, 0xCB, 0x3F, 0xFF, &list)
}

fn put_object(card: &mut PivCard, tag: &[u8], content: &[u8]) -> u16 {
    let mut data = vec![0x5C, tag.len() as u8];
    data.extend_from_slice(tag);
    data.extend_from_slice(&tlv::object(0x53, content));
    sw(card, 0xDB, 0x3F, 0xFF, &data)
}

fn pin_block(pin: &[u8]) -> Vec<u8> {
    padded(pin).to_vec()
}

fn verify_pin(card: &mut PivCard, pin: &[u8]) -> u16 {
    sw(card, 0x20, 0x00, 0x80, &pin_block(pin))
}

/// The value of `tag` directly inside the value of the single object `outer` in `data`.
fn inner(data: &[u8], outer: u32, tag: u32) -> Vec<u8> {
    let t = tlv::single(data).unwrap();
    assert_eq!(t.tag().value(), outer);
    t.children().map(Result::unwrap).find(|c| c.tag().value() == tag).unwrap().value().to_vec()
}

fn block_op(key: &[u8], block: &[u8], encrypt: bool) -> Vec<u8> {
    fn run<C: BlockEncrypt + BlockDecrypt + KeyInit>(
        key: &[u8],
        block: &[u8],
        enc: bool,
    ) -> Vec<u8> {
        let c = C::new_from_slice(key).unwrap();
        let mut b = GenericArray::clone_from_slice(block);
        if enc {
            c.encrypt_block(&mut b);
        } else {
            c.decrypt_block(&mut b);
        }
        b.to_vec()
    }
    match (key.len(), block.len()) {
        (24, 8) => run::<des::TdesEde3>(key, block, encrypt),
        (16, 16) => run::<aes::Aes128>(key, block, encrypt),
        (24, 16) => run::<aes::Aes192>(key, block, encrypt),
        (32, 16) => run::<aes::Aes256>(key, block, encrypt),
        other => panic!("no cipher for {other:?}"),
    }
}

/// Mutual authentication with the management key, computed on the host (SP 800-73-4 Pt 2
/// Appendix A.1): witness request, decrypted witness + host challenge, card's answer checked.
fn authenticate_with(card: &mut PivCard, alg: u8, key: &[u8], block: usize) -> u16 {
    let (d, s) = send(card, 0x87, alg, 0x9B, &h("7C 02 80 00").unwrap());
    if s != OK {
        return s;
    }
    let encrypted = inner(&d, 0x7C, 0x80);
    assert_eq!(encrypted.len(), block);
    let witness = block_op(key, &encrypted, false);
    let challenge: Vec<u8> = (0..block as u8).map(|i| i.wrapping_mul(37)).collect();
    let mut t = tlv::object(0x80, &witness);
    t.extend_from_slice(&tlv::object(0x81, &challenge));
    t.extend_from_slice(&tlv::object(0x82, &[]));
    let (d, s) = send(card, 0x87, alg, 0x9B, &tlv::object(0x7C, &t));
    if s == OK {
        assert_eq!(inner(&d, 0x7C, 0x82), block_op(key, &challenge, true));
    }
    s
}

fn authenticate(card: &mut PivCard) {
    assert_eq!(authenticate_with(card, 0x03, &DEFAULT_MANAGEMENT_KEY, 8), OK);
}

/// Generates a key pair in `slot` and returns the 7F49 response.
fn generate(card: &mut PivCard, slot: u8, alg: u8) -> Vec<u8> {
    let (d, s) = send(card, 0x47, 0x00, slot, &[0xAC, 0x03, 0x80, 0x01, alg]);
    assert_eq!(s, OK);
    d
}

/// `7C { 82 {} tag input }`.
fn auth_template(tag: u32, input: &[u8]) -> Vec<u8> {
    let mut t = tlv::object(0x82, &[]);
    t.extend_from_slice(&tlv::object(tag, input));
    tlv::object(0x7C, &t)
}

fn general_authenticate(
    card: &mut PivCard,
    alg: u8,
    slot: u8,
    tag: u32,
    input: &[u8],
) -> (Vec<u8>, u16) {
    let (d, s) = send(card, 0x87, alg, slot, &auth_template(tag, input));
    if s == OK { (inner(&d, 0x7C, 0x82), s) } else { (d, s) }
}

fn sha256_digest_info(message: &[u8]) -> Vec<u8> {
    // RFC 8017 §9.2 note 1: the SHA-256 DigestInfo prefix.
    let mut info = h("3031300d060960864801650304020105000420").unwrap();
    info.extend_from_slice(&Sha256::digest(message));
    info
}

fn pkcs1_sign_block(info: &[u8], k: usize) -> Vec<u8> {
    let mut block = vec![0x00, 0x01];
    block.resize(k - info.len() - 1, 0xFF);
    block.push(0x00);
    block.extend_from_slice(info);
    block
}

#[test]
fn select_full_and_truncated_aid() {
    let mut c = card();
    let apt = objects::application_property_template();
    let mut expected = apt.clone();
    expected.extend_from_slice(&[0x90, 0x00]);
    // Full AID, the 9-byte form OpenSC sends, and the RID yubico-piv-tool sends (without Le:
    // the card answers at once, as a JavaCard over T=1 does).
    assert_eq!(raw(&mut c, "00A40400 0B A0000003080000100001 00 00"), expected);
    assert_eq!(raw(&mut c, "00A40400 09 A00000030800001000 00"), expected);
    assert_eq!(raw(&mut c, "00A40400 05 A000000308"), expected);
    // The template: PIX, coexistent tag allocation authority, label, algorithms.
    assert_eq!(inner(&apt, 0x61, 0x4F), h("000010000100").unwrap());
    assert_eq!(inner(&apt, 0x61, 0x79), h("4F05A000000308").unwrap());
    assert!(!inner(&apt, 0x61, 0x50).is_empty());
    assert!(inner(&apt, 0x61, 0xAC).ends_with(&[0x06, 0x00]));
    // Other AIDs, a shorter prefix, a longer AID: not found.
    assert_eq!(raw(&mut c, "00A40400 05 A000000309 00"), [0x6A, 0x82]);
    assert_eq!(raw(&mut c, "00A40400 04 A0000003 00"), [0x6A, 0x82]);
    assert_eq!(raw(&mut c, "00A40400 0C A000000308000010000100FF 00"), [0x6A, 0x82]);
    assert_eq!(raw(&mut c, "00A4040006D2760001240100"), [0x6A, 0x82]);
    // A failed SELECT leaves the PIV application selected.
    assert_eq!(get_data(&mut c, &[0x7E]).1, OK);
    // P2 0C: no response data. Other P1/P2: 6A86.
    assert_eq!(raw(&mut c, "00A4040C05A000000308"), [0x90, 0x00]);
    assert_eq!(raw(&mut c, "00A4000C023F00"), [0x6A, 0x86]);
    assert_eq!(raw(&mut c, "00A4040405A000000308"), [0x6A, 0x86]);
    // SELECT without data: nothing to select.
    assert_eq!(raw(&mut c, "00A40400"), [0x6A, 0x82]);
}

#[test]
fn get_data_of_the_issued_objects() {
    let mut c = card();
    // CHUID: 53 { 30 FASC-N, 34 GUID, 35 expiration, 3E signature, FE }.
    let (chuid, s) = get_data(&mut c, &[0x5F, 0xC1, 0x02]);
    assert_eq!(s, OK);
    assert_eq!(inner(&chuid, 0x53, 0x30), objects::SIMULATED_FASC_N.encode());
    let guid = inner(&chuid, 0x53, 0x34);
    assert_eq!(guid, c.guid().unwrap());
    assert_eq!(inner(&chuid, 0x53, 0x35), b"20991231");
    assert_eq!(inner(&chuid, 0x53, 0x3E), b"");
    // The GUID comes from the seed: stable for a seed, different for another one.
    assert_eq!(card().guid(), c.guid());
    assert_ne!(PivCard::new(SimRng::from_seed(8)).guid(), c.guid());
    // CCC.
    let (ccc, s) = get_data(&mut c, &[0x5F, 0xC1, 0x07]);
    assert_eq!(s, OK);
    assert_eq!(inner(&ccc, 0x53, 0xF0)[..7], h("A000000116FF02").unwrap()[..]);
    assert_eq!(inner(&ccc, 0x53, 0xF1), [0x21]);
    // Discovery: not wrapped in 53; PIV AID and PIN usage policy.
    let (disc, s) = get_data(&mut c, &[0x7E]);
    assert_eq!(s, OK);
    assert_eq!(inner(&disc, 0x7E, 0x4F), PIV_AID);
    assert_eq!(inner(&disc, 0x7E, 0x5F2F), [0x40, 0x00]);
    // Key History: no retired certificates.
    let (hist, s) = get_data(&mut c, &[0x5F, 0xC1, 0x0C]);
    assert_eq!(s, OK);
    assert_eq!(inner(&hist, 0x53, 0xC1), [0]);
    assert_eq!(inner(&hist, 0x53, 0xC2), [0]);
    // Absent objects: certificates, retired certificates, security object, BIT, unknown.
    for tag in [
        &[0x5F, 0xC1, 0x05][..],
        &[0x5F, 0xC1, 0x0A],
        &[0x5F, 0xC1, 0x0B],
        &[0x5F, 0xC1, 0x01],
        &[0x5F, 0xC1, 0x0D],
        &[0x5F, 0xC1, 0x20],
        &[0x5F, 0xC1, 0x06],
        &[0x7F, 0x61],
        &[0x5F, 0xFF, 0x00],
        &[0x5F, 0xC1, 0x04],
    ] {
        assert_eq!(get_data(&mut c, tag).1, 0x6A82, "{tag:02X?}");
    }
    // Wrong P1-P2, no data, data that is not one 5C tag list.
    assert_eq!(sw(&mut c, 0xCB, 0x3F, 0xFE, &h("5C017E").unwrap()), 0x6A86);
    assert_eq!(sw(&mut c, 0xCB, 0x00, 0x00, &h("5C017E").unwrap()), 0x6A86);
    assert_eq!(raw(&mut c, "00CB3FFF00"), [0x67, 0x00]);
    for bad in ["5D017E", "5C027E", "5C017E00", "5C00", "5C045FC10200", "7E00", "5C"] {
        assert_eq!(sw(&mut c, 0xCB, 0x3F, 0xFF, &h(bad).unwrap()), 0x6A80, "{bad}");
    }
}

#[test]
fn pin_protected_objects_follow_the_access_rules() {
    let mut c = card();
    for tag in [[0x5F, 0xC1, 0x09], [0x5F, 0xC1, 0x08], [0x5F, 0xC1, 0x03], [0x5F, 0xC1, 0x21]] {
        // Without the PIN: 6982, whether or not the object exists.
        assert_eq!(get_data(&mut c, &tag).1, 0x6982);
    }
    authenticate(&mut c);
    let printed = h("01 04 4A4F484E 02 03 444F45").unwrap();
    assert_eq!(put_object(&mut c, &[0x5F, 0xC1, 0x09], &printed), OK);
    assert_eq!(get_data(&mut c, &[0x5F, 0xC1, 0x09]).1, 0x6982);
    assert_eq!(verify_pin(&mut c, DEFAULT_PIN), OK);
    assert_eq!(get_data(&mut c, &[0x5F, 0xC1, 0x09]), (tlv::object(0x53, &printed), OK));
    assert_eq!(get_data(&mut c, &[0x5F, 0xC1, 0x08]).1, 0x6A82);
    // Resetting the PIN status (VERIFY P1 FF) closes them again.
    assert_eq!(raw(&mut c, "00 20 FF 80"), [0x90, 0x00]);
    assert_eq!(get_data(&mut c, &[0x5F, 0xC1, 0x09]).1, 0x6982);
}

#[test]
fn put_data_needs_the_administrator() {
    let mut c = card();
    let cert_object = h("70 03 300100 71 01 00 FE 00").unwrap();
    assert_eq!(put_object(&mut c, &[0x5F, 0xC1, 0x05], &cert_object), 0x6982);
    // The PIN is not enough.
    assert_eq!(verify_pin(&mut c, DEFAULT_PIN), OK);
    assert_eq!(put_object(&mut c, &[0x5F, 0xC1, 0x05], &cert_object), 0x6982);
    authenticate(&mut c);
    assert_eq!(put_object(&mut c, &[0x5F, 0xC1, 0x05], &cert_object), OK);
    assert_eq!(get_data(&mut c, &[0x5F, 0xC1, 0x05]), (tlv::object(0x53, &cert_object), OK));
    // Empty content deletes the object.
    assert_eq!(put_object(&mut c, &[0x5F, 0xC1, 0x05], &[]), OK);
    assert_eq!(get_data(&mut c, &[0x5F, 0xC1, 0x05]).1, 0x6A82);
    // The Discovery object is written whole (7E ...), never through 5C.
    let discovery = h("7E 12 4F 0B A0000003080000100001 00 5F2F 02 6000").unwrap();
    assert_eq!(sw(&mut c, 0xDB, 0x3F, 0xFF, &discovery), OK);
    assert_eq!(get_data(&mut c, &[0x7E]), (discovery, OK));
    assert_eq!(put_object(&mut c, &[0x7E], &h("4F00").unwrap()), 0x6A80);
    // A large object goes through chaining and comes back through GET RESPONSE.
    let big_cert = vec![0x42u8; 1800];
    let mut content = tlv::object(0x70, &big_cert);
    content.extend_from_slice(&h("710100FE00").unwrap());
    assert_eq!(put_object(&mut c, &[0x5F, 0xC1, 0x0A], &content), OK);
    assert_eq!(get_data(&mut c, &[0x5F, 0xC1, 0x0A]), (tlv::object(0x53, &content), OK));
    // Content that is not BER-TLV, trailing bytes, a tag outside the data model, no 53.
    assert_eq!(put_object(&mut c, &[0x5F, 0xC1, 0x05], &h("70 05 00").unwrap()), 0x6A80);
    assert_eq!(sw(&mut c, 0xDB, 0x3F, 0xFF, &h("5C035FC105 53020101 00").unwrap()), 0x6A80);
    assert_eq!(put_object(&mut c, &[0x5F, 0xFF, 0x00], &h("8000").unwrap()), 0x6A80);
    assert_eq!(sw(&mut c, 0xDB, 0x3F, 0xFF, &h("5C035FC105 54020101").unwrap()), 0x6A80);
    assert_eq!(sw(&mut c, 0xDB, 0x3F, 0xFF, &h("5C035FC105").unwrap()), 0x6A80);
    assert_eq!(sw(&mut c, 0xDB, 0x3F, 0xFF, &h("FF").unwrap()), 0x6A80);
    // Too large, wrong P1-P2, no data.
    let huge = tlv::object(0x70, &vec![0; objects::MAX_OBJECT_LEN]);
    assert_eq!(put_object(&mut c, &[0x5F, 0xC1, 0x05], &huge), 0x6A84);
    assert_eq!(sw(&mut c, 0xDB, 0x3F, 0x00, &h("5C035FC10553020101").unwrap()), 0x6A86);
    assert_eq!(raw(&mut c, "00DB3FFF"), [0x67, 0x00]);
    // The administrator status does not survive a reset.
    c.power_on();
    assert_eq!(put_object(&mut c, &[0x5F, 0xC1, 0x05], &cert_object), 0x6982);
}

#[test]
fn key_history_follows_the_retired_certificates() {
    let mut c = card();
    authenticate(&mut c);
    let cert = h("70 02 3000 71 01 00 FE 00").unwrap();
    assert_eq!(put_object(&mut c, &[0x5F, 0xC1, 0x0D], &cert), OK);
    assert_eq!(put_object(&mut c, &[0x5F, 0xC1, 0x0F], &cert), OK);
    let (hist, _) = get_data(&mut c, &[0x5F, 0xC1, 0x0C]);
    assert_eq!(inner(&hist, 0x53, 0xC1), [3]);
    assert_eq!(get_data(&mut c, &[0x5F, 0xC1, 0x0F]).1, OK);
    // A Key History object written by the issuer wins.
    let written = h("C1 01 01 C2 01 02 F3 0A 687474703A2F2F782F79 FE 00").unwrap();
    assert_eq!(put_object(&mut c, &[0x5F, 0xC1, 0x0C], &written), OK);
    assert_eq!(get_data(&mut c, &[0x5F, 0xC1, 0x0C]), (tlv::object(0x53, &written), OK));
}

#[test]
fn verify_counts_down_blocks_and_reports_status() {
    let mut c = card();
    // The empty VERIFY: not verified, 3 tries.
    assert_eq!(raw(&mut c, "00200080"), [0x63, 0xC3]);
    assert_eq!(verify_pin(&mut c, b"000000"), 0x63C2);
    assert_eq!(verify_pin(&mut c, b"111111"), 0x63C1);
    assert_eq!(raw(&mut c, "00200080"), [0x63, 0xC1]);
    // A correct PIN resets the counter; the empty VERIFY then answers 9000.
    assert_eq!(verify_pin(&mut c, DEFAULT_PIN), OK);
    assert_eq!(raw(&mut c, "00200080"), [0x90, 0x00]);
    // A wrong PIN also ends the verified state.
    assert_eq!(verify_pin(&mut c, b"999999"), 0x63C2);
    assert_eq!(raw(&mut c, "00200080"), [0x63, 0xC2]);
    assert_eq!(verify_pin(&mut c, b"999999"), 0x63C1);
    assert_eq!(verify_pin(&mut c, b"999999"), 0x63C0);
    // Blocked: 6983, even with the right PIN, and for the empty VERIFY.
    assert_eq!(verify_pin(&mut c, DEFAULT_PIN), 0x6983);
    assert_eq!(raw(&mut c, "00200080"), [0x69, 0x83]);
    // Badly formatted PINs are refused without counting (on a fresh card).
    let mut c = card();
    for bad in [
        "313233343536FF",     // 7 bytes
        "313233343536FFFFFF", // 9 bytes
        "3132333435FFFFFF",   // 5 digits
        "31323334353641FF",   // not a digit
        "313233FF34353637",   // padding in the middle
        "31323334353637 00",  // padded with 00
    ] {
        assert_eq!(sw(&mut c, 0x20, 0x00, 0x80, &h(bad).unwrap()), 0x6A80, "{bad}");
    }
    assert_eq!(raw(&mut c, "00200080"), [0x63, 0xC3]);
    // 8 digits is a good format.
    assert_eq!(verify_pin(&mut c, b"12345678"), 0x63C2);
    // References: global PIN and OCC not on this card; anything else is no reference.
    assert_eq!(raw(&mut c, "00200000 08 313233343536FFFF"), [0x6A, 0x88]);
    assert_eq!(raw(&mut c, "00200096"), [0x6A, 0x88]);
    assert_eq!(raw(&mut c, "00200082"), [0x6A, 0x86]);
    assert_eq!(raw(&mut c, "00200180"), [0x6A, 0x86]);
    // P1 FF with data is not a reset.
    assert_eq!(raw(&mut c, "0020FF80 08 313233343536FFFF"), [0x6A, 0x80]);
}

#[test]
fn verify_the_puk() {
    let mut c = card();
    assert_eq!(raw(&mut c, "00200081"), [0x63, 0xC3]);
    assert_eq!(sw(&mut c, 0x20, 0x00, 0x81, b"00000000"), 0x63C2);
    assert_eq!(sw(&mut c, 0x20, 0x00, 0x81, b"1234567"), 0x6A80);
    assert_eq!(sw(&mut c, 0x20, 0x00, 0x81, DEFAULT_PUK), OK);
    assert_eq!(raw(&mut c, "00200081"), [0x90, 0x00]);
    // It opens nothing.
    assert_eq!(get_data(&mut c, &[0x5F, 0xC1, 0x09]).1, 0x6982);
    assert_eq!(raw(&mut c, "0020FF81"), [0x90, 0x00]);
    assert_eq!(raw(&mut c, "00200081"), [0x63, 0xC3]);
}

#[test]
fn change_reference_data_for_pin_and_puk() {
    let mut c = card();
    let mut data = pin_block(DEFAULT_PIN);
    data.extend_from_slice(&pin_block(b"24681357"));
    assert_eq!(sw(&mut c, 0x24, 0x00, 0x80, &data), OK);
    assert_eq!(verify_pin(&mut c, DEFAULT_PIN), 0x63C2);
    assert_eq!(verify_pin(&mut c, b"24681357"), OK);
    // A wrong current PIN counts.
    let mut wrong = pin_block(b"000000");
    wrong.extend_from_slice(&pin_block(b"111111"));
    assert_eq!(sw(&mut c, 0x24, 0x00, 0x80, &wrong), 0x63C2);
    assert_eq!(raw(&mut c, "00200080"), [0x63, 0xC2]);
    // A badly formatted new PIN is refused without counting.
    let mut bad = pin_block(b"24681357");
    bad.extend_from_slice(&pin_block(b"12ab56"));
    assert_eq!(sw(&mut c, 0x24, 0x00, 0x80, &bad), 0x6A80);
    assert_eq!(sw(&mut c, 0x24, 0x00, 0x80, &bad[..15]), 0x6A80);
    assert_eq!(raw(&mut c, "00200080"), [0x63, 0xC2]);
    // The PUK.
    let mut puk = DEFAULT_PUK.to_vec();
    puk.extend_from_slice(b"87654321");
    assert_eq!(sw(&mut c, 0x24, 0x00, 0x81, &puk), OK);
    assert_eq!(sw(&mut c, 0x24, 0x00, 0x81, &puk), 0x63C2);
    // Lengths and parameters.
    assert_eq!(raw(&mut c, "00240080"), [0x67, 0x00]);
    assert_eq!(sw(&mut c, 0x24, 0x01, 0x80, &data), 0x6A86);
    assert_eq!(sw(&mut c, 0x24, 0x00, 0x00, &data), 0x6A88);
    assert_eq!(sw(&mut c, 0x24, 0x00, 0x9B, &data), 0x6A86);
}

#[test]
fn reset_retry_counter_unblocks_with_the_puk() {
    let mut c = card();
    for _ in 0..3 {
        verify_pin(&mut c, b"000000");
    }
    assert_eq!(verify_pin(&mut c, DEFAULT_PIN), 0x6983);
    // PUK || new PIN.
    let mut data = DEFAULT_PUK.to_vec();
    data.extend_from_slice(&pin_block(b"654321"));
    assert_eq!(sw(&mut c, 0x2C, 0x00, 0x80, &data), OK);
    assert_eq!(raw(&mut c, "00200080"), [0x63, 0xC3]);
    assert_eq!(verify_pin(&mut c, b"654321"), OK);
    // A wrong PUK counts down and blocks the PUK; then nothing unblocks the PIN.
    let mut wrong = b"00000000".to_vec();
    wrong.extend_from_slice(&pin_block(b"111111"));
    assert_eq!(sw(&mut c, 0x2C, 0x00, 0x80, &wrong), 0x63C2);
    assert_eq!(sw(&mut c, 0x2C, 0x00, 0x80, &wrong), 0x63C1);
    assert_eq!(sw(&mut c, 0x2C, 0x00, 0x80, &wrong), 0x63C0);
    assert_eq!(sw(&mut c, 0x2C, 0x00, 0x80, &data), 0x6983);
    assert_eq!(raw(&mut c, "00200081"), [0x69, 0x83]);
    // Format, length and parameters.
    let mut c = card();
    let mut bad_pin = DEFAULT_PUK.to_vec();
    bad_pin.extend_from_slice(&pin_block(b"12"));
    assert_eq!(sw(&mut c, 0x2C, 0x00, 0x80, &bad_pin), 0x6A80);
    assert_eq!(raw(&mut c, "002C0080"), [0x67, 0x00]);
    assert_eq!(sw(&mut c, 0x2C, 0x00, 0x81, &data), 0x6A86);
    assert_eq!(sw(&mut c, 0x2C, 0x01, 0x80, &data), 0x6A86);
    assert_eq!(sw(&mut c, 0x2C, 0x00, 0x00, &data), 0x6A88);
    assert_eq!(raw(&mut c, "00200081"), [0x63, 0xC3]);
}

#[test]
fn management_key_mutual_authentication_3des_and_aes() {
    let mut c = card();
    authenticate(&mut c);
    // The P1 must name the key's algorithm.
    let mut c = card();
    assert_eq!(sw(&mut c, 0x87, 0x08, 0x9B, &h("7C028000").unwrap()), 0x6A86);
    assert_eq!(sw(&mut c, 0x87, 0x07, 0x9B, &h("7C028000").unwrap()), 0x6A86);
    let cases: [(ManagementAlgorithm, u8, &str); 3] = [
        (ManagementAlgorithm::Aes128, 0x08, "000102030405060708090a0b0c0d0e0f"),
        (ManagementAlgorithm::Aes192, 0x0A, "000102030405060708090a0b0c0d0e0f1011121314151617"),
        (
            ManagementAlgorithm::Aes256,
            0x0C,
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        ),
    ];
    for (alg, id, key) in cases {
        let key = h(key).unwrap();
        let mut c = card();
        c.set_management_key(ManagementKey::new(alg, &key).unwrap());
        assert_eq!(sw(&mut c, 0x87, 0x03, 0x9B, &h("7C028000").unwrap()), 0x6A86);
        assert_eq!(authenticate_with(&mut c, id, &key, 16), OK, "{alg:?}");
        assert_eq!(put_object(&mut c, &[0x5F, 0xC1, 0x09], &h("0100").unwrap()), OK);
        // A wrong key fails.
        let mut c2 = card();
        c2.set_management_key(ManagementKey::new(alg, &key).unwrap());
        let mut other = key.clone();
        other[0] ^= 1;
        assert_eq!(authenticate_with(&mut c2, id, &other, 16), 0x6982);
    }
}

#[test]
fn management_key_witness_and_challenge_rules() {
    let key = DEFAULT_MANAGEMENT_KEY;
    let mut c = card();
    // A wrong 3DES key: the witness does not match.
    let mut wrong = key;
    wrong[3] ^= 0x40;
    assert_eq!(authenticate_with(&mut c, 0x03, &wrong, 8), 0x6982);
    assert_eq!(put_object(&mut c, &[0x5F, 0xC1, 0x09], &h("0100").unwrap()), 0x6982);
    // A witness nobody asked for.
    assert_eq!(sw(&mut c, 0x87, 0x03, 0x9B, &h("7C0A 8008 0001020304050607").unwrap()), 0x6985);
    // The witness answers only the next command.
    let (d, _) = send(&mut c, 0x87, 0x03, 0x9B, &h("7C028000").unwrap());
    let witness = block_op(&key, &inner(&d, 0x7C, 0x80), false);
    assert_eq!(raw(&mut c, "00200080"), [0x63, 0xC3]);
    let answer = tlv::object(0x7C, &tlv::object(0x80, &witness));
    assert_eq!(sw(&mut c, 0x87, 0x03, 0x9B, &answer), 0x6985);
    // The one-way form: the decrypted witness alone authenticates the host.
    let (d, _) = send(&mut c, 0x87, 0x03, 0x9B, &h("7C028000").unwrap());
    let witness = block_op(&key, &inner(&d, 0x7C, 0x80), false);
    let (d, s) = send(&mut c, 0x87, 0x03, 0x9B, &tlv::object(0x7C, &tlv::object(0x80, &witness)));
    assert_eq!((d.as_slice(), s), (&[][..], OK));
    assert_eq!(put_object(&mut c, &[0x5F, 0xC1, 0x09], &h("0100").unwrap()), OK);
    // The single-challenge form (SP 800-73-4 Pt 2 Appendix A.2).
    let mut c = card();
    let (d, s) = send(&mut c, 0x87, 0x03, 0x9B, &h("7C028100").unwrap());
    assert_eq!(s, OK);
    let challenge = inner(&d, 0x7C, 0x81);
    assert_eq!(challenge.len(), 8);
    let response = block_op(&key, &challenge, true);
    let (d, s) = send(&mut c, 0x87, 0x03, 0x9B, &tlv::object(0x7C, &tlv::object(0x82, &response)));
    assert_eq!((d.as_slice(), s), (&[][..], OK));
    assert_eq!(put_object(&mut c, &[0x5F, 0xC1, 0x09], &h("0100").unwrap()), OK);
    // A wrong response.
    let mut c = card();
    let (d, _) = send(&mut c, 0x87, 0x03, 0x9B, &h("7C028100").unwrap());
    let mut response = block_op(&key, &inner(&d, 0x7C, 0x81), true);
    response[0] ^= 1;
    assert_eq!(
        sw(&mut c, 0x87, 0x03, 0x9B, &tlv::object(0x7C, &tlv::object(0x82, &response))),
        0x6982
    );
    // Malformed templates and lengths.
    for bad in [
        "7C00",
        "7D028000",
        "7C0480008000",
        "7C028500",
        "7C0280007C00",
        "7C03800100",
        "7C0A81080001020304050607",
    ] {
        let s = sw(&mut c, 0x87, 0x03, 0x9B, &h(bad).unwrap());
        assert!(s == 0x6A80 || s == 0x6985, "{bad}: {s:04X}");
    }
    assert_eq!(raw(&mut c, "0087039B"), [0x67, 0x00]);
    // The witness of the wrong length.
    let (_, _) = send(&mut c, 0x87, 0x03, 0x9B, &h("7C028000").unwrap());
    assert_eq!(sw(&mut c, 0x87, 0x03, 0x9B, &h("7C06 8004 00010203").unwrap()), 0x6A80);
}

#[test]
fn generate_needs_the_administrator_and_returns_the_public_key() {
    let mut c = card();
    assert_eq!(sw(&mut c, 0x47, 0x00, 0x9A, &h("AC03800111").unwrap()), 0x6982);
    authenticate(&mut c);
    // P-256: 86 with an uncompressed point; P-384 likewise.
    let p256 = generate(&mut c, 0x9A, 0x11);
    let point = inner(&p256, 0x7F49, 0x86);
    assert_eq!((point.len(), point[0]), (65, 0x04));
    assert_eq!(
        c.public_key(KeySlot::PIV_AUTHENTICATION),
        Some(PublicKey::Ec { alg: KeyAlgorithm::P256, point })
    );
    let p384 = generate(&mut c, 0x9D, 0x14);
    assert_eq!(inner(&p384, 0x7F49, 0x86).len(), 97);
    // A retired slot.
    assert_eq!(inner(&generate(&mut c, 0x95, 0x11), 0x7F49, 0x86).len(), 65);
    // Parameters and data.
    assert_eq!(sw(&mut c, 0x47, 0x01, 0x9A, &h("AC03800111").unwrap()), 0x6A86);
    assert_eq!(sw(&mut c, 0x47, 0x00, 0x9B, &h("AC03800111").unwrap()), 0x6A86);
    assert_eq!(sw(&mut c, 0x47, 0x00, 0x81, &h("AC03800111").unwrap()), 0x6A86);
    for bad in [
        "AC03800106",
        "AC03800103",
        "AC00",
        "AD03800111",
        "AC0480021100",
        "AC06800111800111",
        "AC03AA0101",
        "AC03800111 00",
    ] {
        assert_eq!(sw(&mut c, 0x47, 0x00, 0x9A, &h(bad).unwrap()), 0x6A80, "{bad}");
    }
    assert_eq!(raw(&mut c, "0047009A"), [0x67, 0x00]);
    // 81 (a mechanism parameter) is tolerated.
    assert_eq!(sw(&mut c, 0x47, 0x00, 0x9E, &h("AC06800111810100").unwrap()), OK);
}

#[test]
fn generate_leaves_the_certificate_object() {
    let mut c = card();
    authenticate(&mut c);
    let cert = h("70 02 3000 71 01 00 FE 00").unwrap();
    assert_eq!(put_object(&mut c, &[0x5F, 0xC1, 0x05], &cert), OK);
    let first = generate(&mut c, 0x9A, 0x11);
    let second = generate(&mut c, 0x9A, 0x11);
    assert_ne!(first, second);
    assert_eq!(get_data(&mut c, &[0x5F, 0xC1, 0x05]), (tlv::object(0x53, &cert), OK));
}

#[test]
fn rsa_2048_sign_and_decrypt_verified_on_the_host() {
    let mut c = card();
    authenticate(&mut c);
    let response = generate(&mut c, 0x9A, 0x07);
    let n = inner(&response, 0x7F49, 0x81);
    let e = inner(&response, 0x7F49, 0x82);
    assert_eq!((n.len(), e.as_slice()), (256, &[0x01, 0x00, 0x01][..]));
    let public = RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e)).unwrap();
    let block = pkcs1_sign_block(&sha256_digest_info(b"hello"), 256);
    // The PIN first.
    assert_eq!(general_authenticate(&mut c, 0x07, 0x9A, 0x81, &block).1, 0x6982);
    assert_eq!(verify_pin(&mut c, DEFAULT_PIN), OK);
    // Short APDUs: the 266-byte template is chained, the 264-byte answer comes through 61xx.
    let cmd = CommandApdu::new(0x00, 0x87, 0x07, 0x9A)
        .with_data(auth_template(0x81, &block))
        .unwrap()
        .with_ne(65536)
        .unwrap();
    let (d, s, apdus) = exchange(&mut c, &cmd, CardLimits::default());
    assert_eq!((s, apdus), (OK, 3));
    let sig = inner(&d, 0x7C, 0x82);
    public.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(b"hello"), &sig).unwrap();
    // Extended length: one APDU each way.
    let cmd = CommandApdu::new(0x00, 0x87, 0x07, 0x9A)
        .with_data(auth_template(0x81, &block))
        .unwrap()
        .with_ne(65536)
        .unwrap();
    let (d, s, apdus) = exchange(&mut c, &cmd, CardLimits::extended(65535, 65536));
    assert_eq!((s, apdus), (OK, 1));
    assert_eq!(inner(&d, 0x7C, 0x82), sig);
    // Decryption: the card returns the raw block, the host unpads.
    let mut rng = SimRng::from_seed(99);
    let ciphertext = public.encrypt(&mut rng, Pkcs1v15Encrypt, b"the secret").unwrap();
    let (plain, s) = general_authenticate(&mut c, 0x07, 0x9A, 0x81, &ciphertext);
    assert_eq!(s, OK);
    assert_eq!(plain.len(), 256);
    assert_eq!(plain[..2], [0x00, 0x02]);
    assert!(plain.ends_with(b"\x00the secret"));
    // Wrong input length, a block not below the modulus, wrong algorithm, ECDH with RSA.
    assert_eq!(general_authenticate(&mut c, 0x07, 0x9A, 0x81, &block[1..]).1, 0x6A80);
    assert_eq!(general_authenticate(&mut c, 0x07, 0x9A, 0x81, &[0xFF; 256]).1, 0x6A80);
    assert_eq!(general_authenticate(&mut c, 0x11, 0x9A, 0x81, &block).1, 0x6A86);
    assert_eq!(general_authenticate(&mut c, 0x07, 0x9A, 0x85, &[4; 65]).1, 0x6A80);
    // A slot without a key, a reference that is no key.
    assert_eq!(general_authenticate(&mut c, 0x07, 0x9D, 0x81, &block).1, 0x6A88);
    assert_eq!(general_authenticate(&mut c, 0x07, 0x80, 0x81, &block).1, 0x6A86);
}

#[test]
fn ecdsa_on_9c_needs_a_fresh_verify_per_signature() {
    let mut c = card();
    authenticate(&mut c);
    let point = inner(&generate(&mut c, 0x9C, 0x11), 0x7F49, 0x86);
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
    let hash = Sha256::digest(b"to be signed");
    assert_eq!(general_authenticate(&mut c, 0x11, 0x9C, 0x81, &hash).1, 0x6982);
    for _ in 0..2 {
        assert_eq!(verify_pin(&mut c, DEFAULT_PIN), OK);
        let (sig, s) = general_authenticate(&mut c, 0x11, 0x9C, 0x81, &hash);
        assert_eq!(s, OK);
        vk.verify_prehash(&hash, &p256::ecdsa::Signature::from_der(&sig).unwrap()).unwrap();
        // The verification was used up, although the PIN stays verified for other keys.
        assert_eq!(general_authenticate(&mut c, 0x11, 0x9C, 0x81, &hash).1, 0x6982);
        assert_eq!(raw(&mut c, "00200080"), [0x90, 0x00]);
    }
    // An empty VERIFY is no verification.
    assert_eq!(raw(&mut c, "00200080"), [0x90, 0x00]);
    assert_eq!(general_authenticate(&mut c, 0x11, 0x9C, 0x81, &hash).1, 0x6982);
    // Other commands in between do not use it up.
    assert_eq!(verify_pin(&mut c, DEFAULT_PIN), OK);
    assert_eq!(get_data(&mut c, &[0x7E]).1, OK);
    assert_eq!(general_authenticate(&mut c, 0x11, 0x9C, 0x81, &hash).1, OK);
}

#[test]
fn ecdsa_p384_and_session_pin_slots() {
    let mut c = card();
    authenticate(&mut c);
    let point = inner(&generate(&mut c, 0x9D, 0x14), 0x7F49, 0x86);
    let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
    let hash = Sha384::digest(b"message");
    assert_eq!(general_authenticate(&mut c, 0x14, 0x9D, 0x81, &hash).1, 0x6982);
    assert_eq!(verify_pin(&mut c, DEFAULT_PIN), OK);
    for _ in 0..2 {
        let (sig, s) = general_authenticate(&mut c, 0x14, 0x9D, 0x81, &hash);
        assert_eq!(s, OK);
        vk.verify_prehash(&hash, &p384::ecdsa::Signature::from_der(&sig).unwrap()).unwrap();
    }
    // A reset ends the session.
    c.power_on();
    assert_eq!(general_authenticate(&mut c, 0x14, 0x9D, 0x81, &hash).1, 0x6982);
}

#[test]
fn card_authentication_key_needs_no_pin() {
    let mut c = card();
    authenticate(&mut c);
    let point = inner(&generate(&mut c, 0x9E, 0x11), 0x7F49, 0x86);
    c.power_on();
    let hash = Sha256::digest(b"challenge from a door");
    let (sig, s) = general_authenticate(&mut c, 0x11, 0x9E, 0x81, &hash);
    assert_eq!(s, OK);
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
    vk.verify_prehash(&hash, &p256::ecdsa::Signature::from_der(&sig).unwrap()).unwrap();
}

#[test]
fn ecdh_key_agreement_matches_the_host() {
    let mut c = card();
    authenticate(&mut c);
    let card_point = inner(&generate(&mut c, 0x9D, 0x11), 0x7F49, 0x86);
    assert_eq!(verify_pin(&mut c, DEFAULT_PIN), OK);
    let mut rng = SimRng::from_seed(5);
    let host = p256::SecretKey::random(&mut rng);
    let host_point = host.public_key().to_encoded_point(false);
    let (shared, s) = general_authenticate(&mut c, 0x11, 0x9D, 0x85, host_point.as_bytes());
    assert_eq!(s, OK);
    let card_public = p256::PublicKey::from_sec1_bytes(&card_point).unwrap();
    let expected = p256::ecdh::diffie_hellman(host.to_nonzero_scalar(), card_public.as_affine());
    assert_eq!(shared.as_slice(), expected.raw_secret_bytes().as_slice());
    // Not a point on the curve; both 81 and 85; no 82.
    assert_eq!(general_authenticate(&mut c, 0x11, 0x9D, 0x85, &[4; 65]).1, 0x6A80);
    let mut both = tlv::object(0x82, &[]);
    both.extend_from_slice(&tlv::object(0x81, &[1; 32]));
    both.extend_from_slice(&tlv::object(0x85, host_point.as_bytes()));
    assert_eq!(sw(&mut c, 0x87, 0x11, 0x9D, &tlv::object(0x7C, &both)), 0x6A80);
    let no_response = tlv::object(0x7C, &tlv::object(0x85, host_point.as_bytes()));
    assert_eq!(sw(&mut c, 0x87, 0x11, 0x9D, &no_response), 0x6A80);
}

#[test]
fn unknown_instructions_classes_and_lengths() {
    let mut c = card();
    assert_eq!(raw(&mut c, "00 B0 0000 00"), [0x6D, 0x00]);
    assert_eq!(raw(&mut c, "00 CA 0000 00"), [0x6D, 0x00]);
    assert_eq!(raw(&mut c, "00 FB 0000"), [0x6D, 0x00]);
    // YubiKey GET VERSION and GET SERIAL are not instructions of this card.
    assert_eq!(raw(&mut c, "00 FD 0000 00"), [0x6D, 0x00]);
    assert_eq!(raw(&mut c, "00 F8 0000 00"), [0x6D, 0x00]);
    assert_eq!(raw(&mut c, "80 CB 3FFF 03 5C017E 00"), [0x6E, 0x00]);
    assert_eq!(raw(&mut c, "0C CB 3FFF 03 5C017E 00"), [0x6E, 0x00]);
    assert_eq!(raw(&mut c, "FF CB 3FFF 03 5C017E 00"), [0x6E, 0x00]);
    // Length fields that do not add up.
    assert_eq!(raw(&mut c, "00 CB 3FFF 05 5C017E"), [0x67, 0x00]);
    assert_eq!(raw(&mut c, "00 CB"), [0x67, 0x00]);
    // GET RESPONSE with nothing pending.
    assert_eq!(raw(&mut c, "00 C0 0000 00"), [0x69, 0x85]);
    // Short Le on a long answer: 61xx then GET RESPONSE.
    let first = raw(&mut c, "00 CB 3FFF 05 5C035FC102 10");
    assert_eq!(first.len(), 18);
    assert_eq!(first[16], 0x61);
    let rest = raw(&mut c, &format!("00 C0 0000 {:02X}", first[17]));
    assert_eq!(sw_of(&rest), OK);
}

#[test]
fn state_round_trip() {
    let mut c = card();
    authenticate(&mut c);
    generate(&mut c, 0x9A, 0x11);
    generate(&mut c, 0x82, 0x14);
    assert_eq!(put_object(&mut c, &[0x5F, 0xC1, 0x05], &h("70023000 710100 FE00").unwrap()), OK);
    let mut change = pin_block(DEFAULT_PIN);
    change.extend_from_slice(&pin_block(b"777777"));
    assert_eq!(sw(&mut c, 0x24, 0x00, 0x80, &change), OK);
    assert_eq!(verify_pin(&mut c, b"000000"), 0x63C2);
    c.set_management_key(ManagementKey::new(ManagementAlgorithm::Aes128, &[0x11; 16]).unwrap());
    let state = c.save_state();
    let text = state.to_string();
    // The state is the card's memory: the PIN is in it, but never in Debug output.
    assert!(text.contains("3737373737"));
    assert!(!format!("{c:?}").contains("3737373737"));
    assert!(!format!("{c:?}").contains("777777"));

    let mut again = PivCard::from_state(state.clone(), SimRng::from_seed(1)).unwrap();
    assert_eq!(again.save_state(), state);
    assert_eq!(again.guid(), c.guid());
    for slot in [KeySlot::PIV_AUTHENTICATION, KeySlot::new(0x82).unwrap()] {
        assert_eq!(again.public_key(slot), c.public_key(slot));
    }
    assert_eq!(again.public_key(KeySlot::DIGITAL_SIGNATURE), None);
    // The counter survived; the session did not.
    assert_eq!(raw(&mut again, "00200080"), [0x63, 0xC2]);
    assert_eq!(verify_pin(&mut again, b"777777"), OK);
    assert_eq!(authenticate_with(&mut again, 0x08, &[0x11; 16], 16), OK);
    assert_eq!(get_data(&mut again, &[0x5F, 0xC1, 0x05]).1, OK);
    let hash = Sha256::digest(b"x");
    assert_eq!(general_authenticate(&mut again, 0x11, 0x9A, 0x81, &hash).1, OK);

    // Damaged states are refused.
    assert!(PivCard::from_state(serde_json::Value::Null, SimRng::from_seed(1)).is_err());
    let mut bad = state.clone();
    bad["keys"]["9B"] = bad["keys"]["9A"].clone();
    assert!(PivCard::from_state(bad, SimRng::from_seed(1)).unwrap_err().contains("9B"));
    let mut bad = state.clone();
    bad["management_key"]["key"] = serde_json::json!("0102");
    assert!(PivCard::from_state(bad, SimRng::from_seed(1)).is_err());
    let mut bad = state.clone();
    bad["objects"]["5FFF00"] = serde_json::json!("00");
    assert!(PivCard::from_state(bad, SimRng::from_seed(1)).is_err());
    let mut bad = state;
    bad["extra"] = serde_json::json!(1);
    assert!(PivCard::from_state(bad, SimRng::from_seed(1)).is_err());
}

#[test]
fn state_file_through_the_crate_api() {
    let dir = std::env::temp_dir().join(format!("scard-piv-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("piv.json");
    let mut c = card();
    authenticate(&mut c);
    generate(&mut c, 0x9C, 0x11);
    crate::state::save(&c, &path).unwrap();
    let loaded = crate::open_card(Family::Piv, Some(&path), SimRng::from_seed(3)).unwrap();
    assert_eq!(loaded.save_state(), c.save_state());
    assert_eq!(loaded.family(), Family::Piv);
    assert_eq!(loaded.atr(), ATR);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn any_bytes_get_an_answer() {
    // Random APDUs, and random data under every instruction this card knows: always a status
    // word, never a panic.
    let mut c = card();
    let mut rng = SimRng::from_seed(1234);
    authenticate(&mut c);
    assert_eq!(verify_pin(&mut c, DEFAULT_PIN), OK);
    generate(&mut c, 0x9A, 0x11);
    let instructions = [0xA4, 0xCB, 0xDB, 0x20, 0x24, 0x2C, 0x87, 0x47, 0xC0];
    for i in 0..4000u32 {
        let len = (rng.next_u32() % 80) as usize;
        let mut apdu = rng.bytes(len);
        if i % 2 == 0 && apdu.len() >= 5 {
            apdu[0] = 0x00;
            apdu[1] = instructions[(rng.next_u32() as usize) % instructions.len()];
            apdu[4] = (apdu.len() - 5) as u8;
            if i % 4 == 0 {
                // A data field that starts like a template.
                if apdu.len() > 7 {
                    apdu[5] = [0x7C, 0x5C, 0xAC, 0x53][(rng.next_u32() % 4) as usize];
                    apdu[6] = (apdu.len() - 7) as u8;
                }
            }
        }
        let answer = c.process(&apdu);
        assert!(answer.len() >= 2, "{apdu:02X?}");
    }
}

#[test]
fn rsa_3072_with_the_sp_800_78_5_identifier() {
    let mut c = card();
    authenticate(&mut c);
    let response = generate(&mut c, 0x9D, 0x05);
    let n = inner(&response, 0x7F49, 0x81);
    assert_eq!(n.len(), 384);
    let e = inner(&response, 0x7F49, 0x82);
    let public = RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e)).unwrap();
    assert_eq!(verify_pin(&mut c, DEFAULT_PIN), OK);
    let block = pkcs1_sign_block(&sha256_digest_info(b"3072"), 384);
    assert_eq!(general_authenticate(&mut c, 0x07, 0x9D, 0x81, &block).1, 0x6A86);
    let (sig, s) = general_authenticate(&mut c, 0x05, 0x9D, 0x81, &block);
    assert_eq!(s, OK);
    public.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(b"3072"), &sig).unwrap();
}

#[test]
fn key_slots_and_their_certificate_objects() {
    let cases = [
        (0x9A, 0x5F_C105),
        (0x9C, 0x5F_C10A),
        (0x9D, 0x5F_C10B),
        (0x9E, 0x5F_C101),
        (0x82, 0x5F_C10D),
        (0x95, 0x5F_C120),
    ];
    for (key_ref, tag) in cases {
        let slot = KeySlot::new(key_ref).unwrap();
        assert_eq!((slot.key_ref(), slot.certificate_tag()), (key_ref, tag));
        assert!(objects::lookup(tag).is_some());
    }
    for not_a_slot in [0x9B, 0x80, 0x81, 0x00, 0x81, 0x96, 0xF9] {
        assert_eq!(KeySlot::new(not_a_slot), None);
    }
    assert_eq!(KeySlot::new(0x9E).unwrap().pin_policy(), PinPolicy::Never);
    assert_eq!(KeySlot::new(0x9C).unwrap().pin_policy(), PinPolicy::Always);
    assert_eq!(KeySlot::new(0x88).unwrap().pin_policy(), PinPolicy::Session);
}

#[test]
fn retired_keys_need_the_pin() {
    let mut c = card();
    authenticate(&mut c);
    let point = inner(&generate(&mut c, 0x83, 0x11), 0x7F49, 0x86);
    let hash = Sha256::digest(b"retired");
    assert_eq!(general_authenticate(&mut c, 0x11, 0x83, 0x81, &hash).1, 0x6982);
    assert_eq!(verify_pin(&mut c, DEFAULT_PIN), OK);
    let (sig, s) = general_authenticate(&mut c, 0x11, 0x83, 0x81, &hash);
    assert_eq!(s, OK);
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
    vk.verify_prehash(&hash, &p256::ecdsa::Signature::from_der(&sig).unwrap()).unwrap();
}

#[test]
fn personalised_slot_holds_a_key_and_its_certificate() {
    use der::{Decode, Encode};
    let mut c = card();
    let cert_der = c.personalise(KeySlot::PIV_AUTHENTICATION, KeyAlgorithm::P256, "e2e").unwrap();
    // GET DATA 5FC105: 53 { 70 certificate, 71 00, FE } (SP 800-73-4 Pt 1 Table 10).
    let (object, s) = get_data(&mut c, &[0x5F, 0xC1, 0x05]);
    assert_eq!(s, OK);
    let content = inner(&object, 0x53, 0x70);
    assert_eq!(content, cert_der);
    let cert = x509_cert::Certificate::from_der(&cert_der).unwrap();
    let spki = cert.tbs_certificate.subject_public_key_info.to_der().unwrap();
    let point = match c.public_key(KeySlot::PIV_AUTHENTICATION).unwrap() {
        PublicKey::Ec { point, .. } => point,
        PublicKey::Rsa { .. } => panic!("P-256 expected"),
    };
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
    assert_eq!(
        vk,
        <p256::ecdsa::VerifyingKey as pkcs8::DecodePublicKey>::from_public_key_der(&spki).unwrap()
    );
    // The key signs after VERIFY (9A: PIN once per session).
    assert_eq!(verify_pin(&mut c, b"123456"), OK);
    let hash = Sha256::digest(b"personalised");
    let (sig, s) = general_authenticate(&mut c, 0x11, 0x9A, 0x81, &hash);
    assert_eq!(s, OK);
    vk.verify_prehash(&hash, &p256::ecdsa::Signature::from_der(&sig).unwrap()).unwrap();
    // It survives a save and a load.
    let saved = c.save_state();
    let mut again = PivCard::from_state(saved, SimRng::from_seed(8)).unwrap();
    assert_eq!(inner(&get_data(&mut again, &[0x5F, 0xC1, 0x05]).0, 0x53, 0x70), cert_der);
}
