//! Every command through `Card::process` with raw APDUs; signatures, decryptions and ECDH
//! checked on the host with the RustCrypto crates.

use p256::elliptic_curve::sec1::ToEncodedPoint;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{BigUint, Pkcs1v15Encrypt, Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use scard_iso7816::hex::decode_lenient as h;
use scard_iso7816::tlv::ber::{self, ParseOptions};
use scard_iso7816::{Atr, CardLimits, CommandApdu, Exchange, Step};
use sha2::{Digest, Sha256};
use signature::hazmat::PrehashVerifier;

use super::*;
use crate::rng::SimRng;

const P256_OID: &str = "2A8648CE3D030107";
const P384_OID: &str = "2B81040022";

/// A powered card.
fn card() -> OpenPgpCard {
    let mut card = OpenPgpCard::new(SimRng::from_seed(7));
    card.power_on();
    card
}

/// A powered card with the application selected.
fn selected() -> OpenPgpCard {
    let mut card = card();
    assert_eq!(sw(&mut card, "00A4040006D27600012401"), 0x9000);
    card
}

/// Sends one raw APDU (hex); returns the data and the status word.
fn raw(card: &mut OpenPgpCard, apdu: &str) -> (Vec<u8>, u16) {
    let mut out = card.process(&h(apdu).unwrap());
    assert!(out.len() >= 2, "answer without a status word");
    let sw = out.split_off(out.len() - 2);
    (out, u16::from_be_bytes([sw[0], sw[1]]))
}

fn sw(card: &mut OpenPgpCard, apdu: &str) -> u16 {
    raw(card, apdu).1
}

/// Sends a command through the host-side exchange engine with `limits`; returns the data,
/// the status word and the number of APDUs it took.
fn exchange(
    card: &mut OpenPgpCard,
    cmd: &CommandApdu,
    limits: CardLimits,
) -> (Vec<u8>, u16, usize) {
    let mut ex = Exchange::new(cmd, limits).unwrap();
    loop {
        let answer = card.process(ex.apdu());
        match ex.receive(&answer).unwrap() {
            Step::Transmit => {}
            Step::Done(r) => return (r.data().to_vec(), r.sw().0, ex.apdus_sent()),
        }
    }
}

/// A command with data and Le 00 (extended when needed), sent with extended lengths.
fn tx(card: &mut OpenPgpCard, ins: u8, p1: u8, p2: u8, data: &[u8]) -> (Vec<u8>, u16) {
    let mut cmd = CommandApdu::new(0, ins, p1, p2).with_ne(65536).unwrap();
    if !data.is_empty() {
        cmd = cmd.with_data(data.to_vec()).unwrap();
    }
    let (data, sw, _) = exchange(card, &cmd, CardLimits::extended(65535, 65536));
    (data, sw)
}

fn get_data(card: &mut OpenPgpCard, tag: u16) -> (Vec<u8>, u16) {
    let [p1, p2] = tag.to_be_bytes();
    tx(card, 0xCA, p1, p2, &[])
}

fn put_data(card: &mut OpenPgpCard, tag: u16, value: &[u8]) -> u16 {
    let [p1, p2] = tag.to_be_bytes();
    tx(card, 0xDA, p1, p2, value).1
}

fn verify(card: &mut OpenPgpCard, p2: u8, pin: &[u8]) -> u16 {
    tx(card, 0x20, 0x00, p2, pin).1
}

fn admin(card: &mut OpenPgpCard) {
    assert_eq!(verify(card, 0x83, b"12345678"), 0x9000);
}

/// The value of `tag` somewhere inside BER-TLV `data` (depth first).
fn find(data: &[u8], tag: u32) -> Option<Vec<u8>> {
    for tlv in ber::iter(data, ParseOptions::STRICT) {
        let tlv = tlv.unwrap();
        if tlv.tag().value() == tag {
            return Some(tlv.value().to_vec());
        }
        if tlv.is_constructed() {
            if let Some(v) = find(tlv.value(), tag) {
                return Some(v);
            }
        }
    }
    None
}

fn pw_status(card: &mut OpenPgpCard) -> Vec<u8> {
    let (status, sw) = get_data(card, 0x00C4);
    assert_eq!(sw, 0x9000);
    status
}

/// Generates the key of `crt` (B6, B8, A4) and returns the 7F49 template's content.
fn generate(card: &mut OpenPgpCard, crt: u8) -> Vec<u8> {
    let (data, sw) = tx(card, 0x47, 0x80, 0x00, &[crt, 0x00]);
    assert_eq!(sw, 0x9000);
    find(&data, 0x7F49).expect("7F49")
}

fn rsa_public(template: &[u8]) -> RsaPublicKey {
    let n = find(template, 0x81).unwrap();
    let e = find(template, 0x82).unwrap();
    RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e)).unwrap()
}

/// RFC 8017 §9.2 note 1: the DigestInfo of a SHA-256 hash.
fn digest_info_sha256(message: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let hash = Sha256::digest(message).to_vec();
    let mut info = h("3031300d060960864801650304020105000420").unwrap();
    info.extend_from_slice(&hash);
    (hash, info)
}

#[test]
fn atr_and_historical_bytes_agree() {
    let atr = Atr::parse(&ATR).unwrap();
    assert_eq!(atr.historical(), HISTORICAL_BYTES);
    assert!(atr.offers(1));
    let mut card = selected();
    assert_eq!(card.atr(), ATR);
    assert_eq!(get_data(&mut card, 0x5F52), (HISTORICAL_BYTES.to_vec(), 0x9000));
    // §6.2 card capabilities: extended Lc/Le announced, so extended APDUs are taken.
    assert_eq!(HISTORICAL_BYTES[6] & 0x40, 0x40);
    assert_eq!(sw(&mut card, "00CA005E000000"), 0x9000);
}

#[test]
fn select_by_partial_and_full_aid() {
    let mut card = card();
    // Nothing selected: no application answers.
    assert_eq!(sw(&mut card, "00CA006E00"), 0x6D00);
    assert_eq!(sw(&mut card, "00A4040006D27600012402"), 0x6A82);
    assert_eq!(sw(&mut card, "00A4040005D276000124"), 0x6A82);
    assert_eq!(raw(&mut card, "00A4040006D2760001240100"), (vec![], 0x9000));
    let (aid, _) = get_data(&mut card, 0x004F);
    assert_eq!(aid.len(), 16);
    assert_eq!(aid[..8], h("D276000124010304").unwrap());
    assert_eq!(aid[8..10], [0xFF, 0xFF]);
    assert_eq!(aid[14..], [0, 0]);
    // The full AID, a longer prefix, with P2 0C; a wrong serial is another card.
    let full = scard_iso7816::hex::encode_upper(&aid);
    assert_eq!(sw(&mut card, &format!("00A4040010{full}")), 0x9000);
    assert_eq!(sw(&mut card, &format!("00A4040C0A{}", &full[..20])), 0x9000);
    let mut other = aid.clone();
    other[13] ^= 1;
    let other = scard_iso7816::hex::encode_upper(&other);
    assert_eq!(sw(&mut card, &format!("00A4040010{other}")), 0x6A82);
    // A failed SELECT leaves the application selected.
    assert_eq!(sw(&mut card, "00A4040007A0000003080000"), 0x6A82);
    assert_eq!(get_data(&mut card, 0x004F).1, 0x9000);
    // Selection by file identifier finds nothing; other P1/P2 are wrong parameters.
    assert_eq!(sw(&mut card, "00A40000023F00"), 0x6A82);
    assert_eq!(sw(&mut card, "00A4050006D27600012401"), 0x6A86);
    assert_eq!(sw(&mut card, "00A4041006D27600012401"), 0x6A86);
    // The serial number comes from the rng: another seed, another serial.
    let mut other_card = OpenPgpCard::new(SimRng::from_seed(8));
    other_card.power_on();
    sw(&mut other_card, "00A4040006D27600012401");
    assert_ne!(get_data(&mut other_card, 0x004F).0, aid);
}

#[test]
fn application_related_data() {
    let mut card = selected();
    let (ard, sw) = get_data(&mut card, 0x006E);
    assert_eq!(sw, 0x9000);
    // GET DATA of a constructed DO answers its content: 4F, 5F52, 7F66, 73.
    let tags: Vec<u32> =
        ber::iter(&ard, ParseOptions::STRICT).map(|t| t.unwrap().tag().value()).collect();
    assert_eq!(tags, [0x4F, 0x5F52, 0x7F66, 0x73]);
    // Short Le: the 6E template fits one short response.
    assert!(ard.len() <= 256, "{}", ard.len());
    assert_eq!(find(&ard, 0x4F), Some(get_data(&mut card, 0x004F).0));
    assert_eq!(find(&ard, 0x5F52), Some(HISTORICAL_BYTES.to_vec()));
    assert_eq!(find(&ard, 0x7F66), Some(h("0202 1000 0202 1000").unwrap()));
    assert_eq!(find(&ard, 0xC0), Some(h("7C 00 0800 0800 00FF 00 00").unwrap()));
    for tag in [0xC1, 0xC2, 0xC3] {
        assert_eq!(find(&ard, tag), Some(h("010800002000").unwrap()));
    }
    assert_eq!(find(&ard, 0xC4), Some(h("00 7F7F7F 03 00 03").unwrap()));
    assert_eq!(find(&ard, 0xC5), Some(vec![0; 60]));
    assert_eq!(find(&ard, 0xC6), Some(vec![0; 60]));
    assert_eq!(find(&ard, 0xCD), Some(vec![0; 12]));
    assert_eq!(find(&ard, 0xDE), Some(h("010002000300").unwrap()));
    // The nested DOs are also readable one by one.
    for tag in [0x00C0u16, 0x00C1, 0x00C4, 0x00C5, 0x00C6, 0x00CD, 0x00DE, 0x7F66] {
        assert_eq!(get_data(&mut card, tag).0, find(&ard, u32::from(tag)).unwrap());
    }
    // Security support template: signature counter 0.
    assert_eq!(get_data(&mut card, 0x007A), (h("9303000000").unwrap(), 0x9000));
    assert_eq!(get_data(&mut card, 0x0093), (vec![0, 0, 0], 0x9000));
    // Algorithm information lists what C1-C3 accept.
    let (info, _) = get_data(&mut card, 0x00FA);
    let listed: Vec<(u32, Vec<u8>)> = ber::iter(&info, ParseOptions::STRICT)
        .map(|t| t.map(|t| (t.tag().value(), t.value().to_vec())).unwrap())
        .collect();
    assert_eq!(listed.len(), 15);
    assert!(listed.contains(&(0xC2, h(&format!("12{P384_OID}")).unwrap())));
    assert!(listed.contains(&(0xC3, h("011000002000").unwrap())));
}

#[test]
fn get_data_unknown_tags_and_wrong_lengths() {
    let mut card = selected();
    for tag in [0x0000u16, 0x00C7, 0x00D3, 0x5F53, 0x00F9, 0x7F74, 0x00D6, 0x3FFF, 0xFFFF] {
        assert_eq!(get_data(&mut card, tag).1, 0x6A88, "{tag:04X}");
    }
    // GET DATA carries no command data.
    assert_eq!(sw(&mut card, "00CA006E01AA00"), 0x6700);
    // Odd INS GET DATA and other unknown instructions.
    assert_eq!(sw(&mut card, "00CB3FFF055C035FC10200"), 0x6D00);
    assert_eq!(sw(&mut card, "00B0000000"), 0x6D00);
    assert_eq!(sw(&mut card, "0022F3B6"), 0x6D00);
}

#[test]
fn class_bytes() {
    let mut card = selected();
    assert_eq!(sw(&mut card, "80CA006E00"), 0x6E00);
    assert_eq!(sw(&mut card, "0CCA006E00"), 0x6882);
    assert_eq!(sw(&mut card, "01CA006E00"), 0x6881);
    assert_eq!(sw(&mut card, "20CA006E00"), 0x6E00);
    assert_eq!(sw(&mut card, "FFCA006E00"), 0x6E00);
    // Short or broken APDUs.
    assert_eq!(sw(&mut card, "00CA"), 0x6700);
    assert_eq!(sw(&mut card, "00CA006E05AA"), 0x6700);
}

#[test]
fn verify_counts_down_blocks_and_reports_status() {
    let mut card = selected();
    // The status form before any VERIFY: tries left.
    for p2 in ["81", "82", "83"] {
        assert_eq!(sw(&mut card, &format!("002000{p2}")), 0x63C3);
    }
    assert_eq!(verify(&mut card, 0x81, b"000000"), 0x63C2);
    assert_eq!(pw_status(&mut card)[4], 2);
    assert_eq!(verify(&mut card, 0x82, b"000000"), 0x63C1);
    // 81 and 82 are one password with one counter; a good VERIFY resets it.
    assert_eq!(verify(&mut card, 0x82, b"123456"), 0x9000);
    assert_eq!(pw_status(&mut card)[4], 3);
    assert_eq!(sw(&mut card, "00200082"), 0x9000);
    assert_eq!(sw(&mut card, "00200081"), 0x63C3);
    // P1 FF resets the verification.
    assert_eq!(sw(&mut card, "00FF0082"), 0x6D00);
    assert_eq!(sw(&mut card, "0020FF82"), 0x9000);
    assert_eq!(sw(&mut card, "00200082"), 0x63C3);
    // A candidate too short or too long to be a password costs no try.
    assert_eq!(verify(&mut card, 0x81, b"12345"), 0x6700);
    assert_eq!(verify(&mut card, 0x83, b"1234567"), 0x6700);
    assert_eq!(verify(&mut card, 0x81, &[b'1'; 128]), 0x6700);
    assert_eq!(pw_status(&mut card)[4..], [3, 0, 3]);
    // PW3: count down to blocked; then even the right one is refused.
    assert_eq!(verify(&mut card, 0x83, b"00000000"), 0x63C2);
    assert_eq!(verify(&mut card, 0x83, b"00000000"), 0x63C1);
    assert_eq!(verify(&mut card, 0x83, b"00000000"), 0x63C0);
    assert_eq!(verify(&mut card, 0x83, b"12345678"), 0x6983);
    assert_eq!(sw(&mut card, "00200083"), 0x6983);
    assert_eq!(pw_status(&mut card)[6], 0);
    // Wrong references and P1.
    assert_eq!(sw(&mut card, "00200084"), 0x6B00);
    assert_eq!(sw(&mut card, "00200080"), 0x6B00);
    assert_eq!(sw(&mut card, "0020018106313233343536"), 0x6B00);
    assert_eq!(sw(&mut card, "0020FF8101AA"), 0x6700);
}

#[test]
fn change_reference_data() {
    let mut card = selected();
    // PW1: old || new.
    assert_eq!(tx(&mut card, 0x24, 0, 0x81, b"000000654321").1, 0x63C2);
    assert_eq!(tx(&mut card, 0x24, 0, 0x81, b"12345612345").1, 0x6700); // new too short
    assert_eq!(tx(&mut card, 0x24, 0, 0x81, b"12345").1, 0x6700); // not even the old one
    assert_eq!(tx(&mut card, 0x24, 0, 0x81, b"123456654321").1, 0x9000);
    assert_eq!(pw_status(&mut card)[4], 3);
    assert_eq!(verify(&mut card, 0x81, b"123456"), 0x63C2);
    assert_eq!(verify(&mut card, 0x82, b"654321"), 0x9000);
    // A longer new PW1, then back: the split follows the stored length.
    assert_eq!(tx(&mut card, 0x24, 0, 0x81, b"654321abcdefghij").1, 0x9000);
    assert_eq!(tx(&mut card, 0x24, 0, 0x81, b"abcdefghij123456").1, 0x9000);
    // PW3.
    assert_eq!(tx(&mut card, 0x24, 0, 0x83, b"12345678secret-admin").1, 0x9000);
    assert_eq!(verify(&mut card, 0x83, b"12345678"), 0x63C2);
    assert_eq!(verify(&mut card, 0x83, b"secret-admin"), 0x9000);
    assert_eq!(tx(&mut card, 0x24, 0, 0x83, b"secret-admin1234567").1, 0x6700);
    // Only 81 and 83; P1 00.
    assert_eq!(tx(&mut card, 0x24, 0, 0x82, b"123456654321").1, 0x6B00);
    assert_eq!(tx(&mut card, 0x24, 1, 0x81, b"123456654321").1, 0x6B00);
    // A blocked password cannot be changed.
    for _ in 0..3 {
        tx(&mut card, 0x24, 0, 0x81, b"000000654321");
    }
    assert_eq!(tx(&mut card, 0x24, 0, 0x81, b"123456654321").1, 0x6983);
}

#[test]
fn reset_retry_counter_with_resetting_code_and_pw3() {
    let mut card = selected();
    for expected in [0x63C2, 0x63C1, 0x63C0, 0x6983] {
        assert_eq!(verify(&mut card, 0x81, b"999999"), expected);
    }
    // No resetting code yet: its counter reads 0 and it cannot be used.
    assert_eq!(pw_status(&mut card)[5], 0);
    assert_eq!(tx(&mut card, 0x2C, 0x00, 0x81, b"reset-me111111").1, 0x6983);
    // Setting it needs PW3.
    assert_eq!(put_data(&mut card, 0x00D3, b"reset-me"), 0x6982);
    admin(&mut card);
    assert_eq!(put_data(&mut card, 0x00D3, b"short"), 0x6700);
    assert_eq!(put_data(&mut card, 0x00D3, b"reset-me"), 0x9000);
    assert_eq!(pw_status(&mut card)[5], 3);
    // Wrong resetting code counts down its own counter.
    assert_eq!(tx(&mut card, 0x2C, 0x00, 0x81, b"reset-mX111111").1, 0x63C2);
    // Right code, new PW1 too short.
    assert_eq!(tx(&mut card, 0x2C, 0x00, 0x81, b"reset-me11111").1, 0x6700);
    assert_eq!(tx(&mut card, 0x2C, 0x00, 0x81, b"reset-me111111").1, 0x9000);
    assert_eq!(pw_status(&mut card)[4..], [3, 3, 3]);
    assert_eq!(verify(&mut card, 0x81, b"111111"), 0x9000);
    // P1 02: after PW3, data = new PW1 only.
    for _ in 0..3 {
        verify(&mut card, 0x81, b"999999");
    }
    assert_eq!(tx(&mut card, 0x20, 0xFF, 0x83, &[]).1, 0x9000);
    assert_eq!(tx(&mut card, 0x2C, 0x02, 0x81, b"222222").1, 0x6982);
    admin(&mut card);
    assert_eq!(tx(&mut card, 0x2C, 0x02, 0x81, b"22222").1, 0x6700);
    assert_eq!(tx(&mut card, 0x2C, 0x02, 0x81, b"222222").1, 0x9000);
    assert_eq!(verify(&mut card, 0x82, b"222222"), 0x9000);
    // Only PW1 (81) has a retry counter to reset; P1 00 or 02.
    assert_eq!(tx(&mut card, 0x2C, 0x02, 0x83, b"22222222").1, 0x6B00);
    assert_eq!(tx(&mut card, 0x2C, 0x01, 0x81, b"222222").1, 0x6B00);
    // Deleting the resetting code.
    assert_eq!(put_data(&mut card, 0x00D3, b""), 0x9000);
    assert_eq!(pw_status(&mut card)[5], 0);
}

#[test]
fn cardholder_data_and_access_conditions() {
    let mut card = selected();
    assert_eq!(get_data(&mut card, 0x0065), (h("5B00 5F2D00 5F350139").unwrap(), 0x9000));
    assert_eq!(put_data(&mut card, 0x005B, b"Doe<<John"), 0x6982);
    // PW1 is not enough for cardholder data.
    assert_eq!(verify(&mut card, 0x82, b"123456"), 0x9000);
    assert_eq!(put_data(&mut card, 0x005B, b"Doe<<John"), 0x6982);
    admin(&mut card);
    assert_eq!(put_data(&mut card, 0x005B, b"Doe<<John"), 0x9000);
    assert_eq!(put_data(&mut card, 0x005B, &[b'x'; 40]), 0x6700);
    assert_eq!(put_data(&mut card, 0x5F2D, b"deen"), 0x9000);
    assert_eq!(put_data(&mut card, 0x5F2D, b"deenfrites"), 0x6700);
    assert_eq!(put_data(&mut card, 0x5F2D, b"den"), 0x6700);
    assert_eq!(put_data(&mut card, 0x5F35, b"1"), 0x9000);
    assert_eq!(put_data(&mut card, 0x5F35, b"3"), 0x6A80);
    assert_eq!(put_data(&mut card, 0x5F35, b"12"), 0x6700);
    let (chd, _) = get_data(&mut card, 0x0065);
    assert_eq!(find(&chd, 0x5B), Some(b"Doe<<John".to_vec()));
    assert_eq!(find(&chd, 0x5F2D), Some(b"deen".to_vec()));
    assert_eq!(find(&chd, 0x5F35), Some(b"1".to_vec()));
    assert_eq!(get_data(&mut card, 0x005B).0, b"Doe<<John");
    // URL and login data.
    assert_eq!(put_data(&mut card, 0x5F50, b"https://example.invalid/key.asc"), 0x9000);
    assert_eq!(get_data(&mut card, 0x5F50).0, b"https://example.invalid/key.asc");
    assert_eq!(put_data(&mut card, 0x005E, b"jdoe"), 0x9000);
    assert_eq!(get_data(&mut card, 0x005E).0, b"jdoe");
    assert_eq!(put_data(&mut card, 0x005E, &[0; 256]), 0x6700);
    // Fingerprints, CA fingerprints and timestamps: fixed lengths, into C5/C6/CD.
    assert_eq!(put_data(&mut card, 0x00C8, &[0xAB; 20]), 0x9000);
    assert_eq!(put_data(&mut card, 0x00C8, &[0xAB; 19]), 0x6700);
    assert_eq!(put_data(&mut card, 0x00CC, &[0xCD; 20]), 0x9000);
    assert_eq!(put_data(&mut card, 0x00CE, &[0x5F, 0, 0, 1]), 0x9000);
    assert_eq!(put_data(&mut card, 0x00D0, &[1, 2, 3]), 0x6700);
    let (c5, _) = get_data(&mut card, 0x00C5);
    assert_eq!((c5[..20].to_vec(), c5[20..40].to_vec()), (vec![0; 20], vec![0xAB; 20]));
    assert_eq!(get_data(&mut card, 0x00C6).0[40..], [0xCD; 20]);
    assert_eq!(get_data(&mut card, 0x00CD).0[..4], [0x5F, 0, 0, 1]);
    // Tags PUT DATA does not write.
    for tag in [0x004Fu16, 0x006E, 0x0065, 0x00C0, 0x00C5, 0x5F52, 0x00DE, 0x1234] {
        assert_eq!(put_data(&mut card, tag, &[1]), 0x6A88, "{tag:04X}");
    }
}

#[test]
fn private_use_data_objects() {
    let mut card = selected();
    // 0101: read always, write after PW1 (82). 0102: write after PW3.
    // 0103: read and write after PW1 (82). 0104: read and write after PW3.
    assert_eq!(get_data(&mut card, 0x0101), (vec![], 0x9000));
    assert_eq!(get_data(&mut card, 0x0103).1, 0x6982);
    assert_eq!(get_data(&mut card, 0x0104).1, 0x6982);
    assert_eq!(put_data(&mut card, 0x0101, b"one"), 0x6982);
    assert_eq!(verify(&mut card, 0x81, b"123456"), 0x9000);
    assert_eq!(put_data(&mut card, 0x0101, b"one"), 0x6982); // 81 is for signing only
    assert_eq!(verify(&mut card, 0x82, b"123456"), 0x9000);
    assert_eq!(put_data(&mut card, 0x0101, b"one"), 0x9000);
    assert_eq!(put_data(&mut card, 0x0103, b"three"), 0x9000);
    assert_eq!(put_data(&mut card, 0x0102, b"two"), 0x6982);
    assert_eq!(put_data(&mut card, 0x0104, b"four"), 0x6982);
    admin(&mut card);
    assert_eq!(put_data(&mut card, 0x0102, b"two"), 0x9000);
    assert_eq!(put_data(&mut card, 0x0104, b"four"), 0x9000);
    assert_eq!(put_data(&mut card, 0x0104, &[0; 256]), 0x6700);
    assert_eq!(get_data(&mut card, 0x0101).0, b"one");
    assert_eq!(get_data(&mut card, 0x0102).0, b"two");
    assert_eq!(get_data(&mut card, 0x0103).0, b"three");
    assert_eq!(get_data(&mut card, 0x0104).0, b"four");
    card.power_on();
    sw(&mut card, "00A4040006D27600012401");
    assert_eq!(get_data(&mut card, 0x0102).0, b"two");
    assert_eq!(get_data(&mut card, 0x0103).1, 0x6982);
}

#[test]
fn rsa_2048_generate_sign_decipher_authenticate() {
    let mut card = selected();
    // No key yet; generation needs PW3; reading the public key does not.
    assert_eq!(tx(&mut card, 0x47, 0x81, 0, &h("B600").unwrap()).1, 0x6A88);
    assert_eq!(tx(&mut card, 0x47, 0x80, 0, &h("B600").unwrap()).1, 0x6982);
    admin(&mut card);
    let sig_template = generate(&mut card, 0xB6);
    let sig_key = rsa_public(&sig_template);
    assert_eq!(sig_key.size(), 256);
    assert_eq!(find(&sig_template, 0x82), Some(vec![1, 0, 1]));
    let (read, _) = tx(&mut card, 0x47, 0x81, 0, &h("B600").unwrap());
    assert_eq!(find(&read, 0x7F49).unwrap(), sig_template);
    let dec_key = rsa_public(&generate(&mut card, 0xB8));
    let aut_key = rsa_public(&generate(&mut card, 0xA4));
    assert_eq!(get_data(&mut card, 0x00DE).0, h("010102010301").unwrap());

    // PSO:CDS: DigestInfo in, PKCS#1 v1.5 signature out; one signature per VERIFY 81.
    let (hash, info) = digest_info_sha256(b"signed message");
    assert_eq!(tx(&mut card, 0x2A, 0x9E, 0x9A, &info).1, 0x6982);
    assert_eq!(verify(&mut card, 0x82, b"123456"), 0x9000);
    assert_eq!(tx(&mut card, 0x2A, 0x9E, 0x9A, &info).1, 0x6982);
    assert_eq!(verify(&mut card, 0x81, b"123456"), 0x9000);
    let (signature, sw) = tx(&mut card, 0x2A, 0x9E, 0x9A, &info);
    assert_eq!(sw, 0x9000);
    sig_key.verify(Pkcs1v15Sign::new::<Sha256>(), &hash, &signature).unwrap();
    assert_eq!(tx(&mut card, 0x2A, 0x9E, 0x9A, &info).1, 0x6982);
    assert_eq!(get_data(&mut card, 0x007A).0, h("9303000001").unwrap());
    // PW1 valid for several signatures when C4 byte 1 says so.
    assert_eq!(put_data(&mut card, 0x00C4, &[0x01]), 0x9000);
    assert_eq!(put_data(&mut card, 0x00C4, &[0x02]), 0x6A80);
    assert_eq!(put_data(&mut card, 0x00C4, &h("01202020").unwrap()), 0x6700);
    assert_eq!(pw_status(&mut card)[0], 1);
    assert_eq!(verify(&mut card, 0x81, b"123456"), 0x9000);
    for _ in 0..2 {
        let (signature, sw) = tx(&mut card, 0x2A, 0x9E, 0x9A, &info);
        assert_eq!(sw, 0x9000);
        sig_key.verify(Pkcs1v15Sign::new::<Sha256>(), &hash, &signature).unwrap();
    }
    assert_eq!(get_data(&mut card, 0x0093).0, [0, 0, 3]);
    // Too long for PKCS#1 padding in 256 bytes.
    assert_eq!(tx(&mut card, 0x2A, 0x9E, 0x9A, &[1; 246]).1, 0x6700);

    // PSO:DECIPHER: padding indicator 00, then the cryptogram; extended Lc carries 257 bytes.
    let mut rng = SimRng::from_seed(99);
    let cryptogram = dec_key.encrypt(&mut rng, Pkcs1v15Encrypt, b"session key").unwrap();
    let mut data = vec![0x00];
    data.extend_from_slice(&cryptogram);
    assert_eq!(tx(&mut card, 0x2A, 0x80, 0x86, &data), (b"session key".to_vec(), 0x9000));
    // The same through command chaining with short APDUs: 2 pieces.
    let cmd = CommandApdu::new(0, 0x2A, 0x80, 0x86).with_data(data.clone()).unwrap();
    let cmd = cmd.with_ne(256).unwrap();
    let (plain, sw, apdus) = exchange(&mut card, &cmd, CardLimits::default());
    assert_eq!((plain, sw, apdus), (b"session key".to_vec(), 0x9000, 2));
    data[0] = 0x02;
    assert_eq!(tx(&mut card, 0x2A, 0x80, 0x86, &data).1, 0x6A80);
    assert_eq!(tx(&mut card, 0x2A, 0x80, 0x86, &[0x00; 300]).1, 0x6700);
    assert_eq!(tx(&mut card, 0x2A, 0x80, 0x86, &[0x00; 257]).1, 0x6A80);
    assert_eq!(tx(&mut card, 0x2A, 0x86, 0x80, &[0x00; 257]).1, 0x6B00);

    // INTERNAL AUTHENTICATE: PKCS#1 v1.5 over the data given, after VERIFY 82.
    let challenge = b"ssh session id and more";
    let (auth, sw) = tx(&mut card, 0x88, 0, 0, challenge);
    assert_eq!(sw, 0x9000);
    aut_key.verify(Pkcs1v15Sign::new_unprefixed(), challenge, &auth).unwrap();
    assert_eq!(tx(&mut card, 0x88, 0, 1, challenge).1, 0x6B00);
    assert_eq!(tx(&mut card, 0x20, 0xFF, 0x82, &[]).1, 0x9000);
    assert_eq!(tx(&mut card, 0x88, 0, 0, challenge).1, 0x6982);
    assert_eq!(tx(&mut card, 0x2A, 0x80, 0x86, &data).1, 0x6982);

    // A new signature key restarts the counter and clears the fingerprint written for the
    // old one.
    assert_eq!(put_data(&mut card, 0x00C7, &[7; 20]), 0x9000);
    generate(&mut card, 0xB6);
    assert_eq!(get_data(&mut card, 0x0093).0, [0, 0, 0]);
    assert_eq!(get_data(&mut card, 0x00C5).0[..20], [0; 20]);
}

#[test]
fn ecc_keys_sign_agree_and_authenticate() {
    let mut card = selected();
    admin(&mut card);
    assert_eq!(put_data(&mut card, 0x00C1, &h(&format!("13{P256_OID}")).unwrap()), 0x9000);
    assert_eq!(put_data(&mut card, 0x00C2, &h(&format!("12{P384_OID}")).unwrap()), 0x9000);
    assert_eq!(put_data(&mut card, 0x00C3, &h(&format!("13{P384_OID}FF")).unwrap()), 0x9000);
    let (ard, _) = get_data(&mut card, 0x006E);
    assert_eq!(find(&ard, 0xC2), Some(h(&format!("12{P384_OID}")).unwrap()));
    let sig_point = find(&generate(&mut card, 0xB6), 0x86).unwrap();
    let dec_point = find(&generate(&mut card, 0xB8), 0x86).unwrap();
    let aut_point = find(&generate(&mut card, 0xA4), 0x86).unwrap();
    assert_eq!((sig_point.len(), dec_point.len(), aut_point.len()), (65, 97, 97));

    // ECDSA P-256 over a SHA-256 hash: r || s.
    assert_eq!(verify(&mut card, 0x81, b"123456"), 0x9000);
    let hash = Sha256::digest(b"ecdsa message");
    let (signature, sw) = tx(&mut card, 0x2A, 0x9E, 0x9A, &hash);
    assert_eq!((signature.len(), sw), (64, 0x9000));
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sig_point).unwrap();
    let sig = p256::ecdsa::Signature::from_slice(&signature).unwrap();
    vk.verify_prehash(&hash, &sig).unwrap();

    // ECDH P-384 with the cipher DO: A6 { 7F49 { 86 point } } -> x-coordinate.
    assert_eq!(verify(&mut card, 0x82, b"123456"), 0x9000);
    let mut rng = SimRng::from_seed(5);
    let eph = p384::SecretKey::random(&mut rng);
    let eph_point = eph.public_key().to_encoded_point(false);
    let mut inner = Vec::new();
    data::put(&mut inner, 0x86, eph_point.as_bytes());
    let mut template = Vec::new();
    data::put(&mut template, 0x7F49, &inner);
    let mut cipher = Vec::new();
    data::put(&mut cipher, 0xA6, &template);
    let (shared, sw) = tx(&mut card, 0x2A, 0x80, 0x86, &cipher);
    assert_eq!(sw, 0x9000);
    let card_public = p384::PublicKey::from_sec1_bytes(&dec_point).unwrap();
    let expected = p384::ecdh::diffie_hellman(eph.to_nonzero_scalar(), card_public.as_affine());
    assert_eq!(shared, expected.raw_secret_bytes().to_vec());
    // Not a point on the curve; not a cipher DO.
    let mut broken = cipher.clone();
    let last = broken.len() - 1;
    broken[last] ^= 1;
    assert_eq!(tx(&mut card, 0x2A, 0x80, 0x86, &broken).1, 0x6A80);
    assert_eq!(tx(&mut card, 0x2A, 0x80, 0x86, &template).1, 0x6A80);
    assert_eq!(tx(&mut card, 0x2A, 0x80, 0x86, &[0xA6, 0x00]).1, 0x6A80);

    // INTERNAL AUTHENTICATE with ECDSA P-384, on a SHA-256 hash shorter than the field.
    let (auth, sw) = tx(&mut card, 0x88, 0, 0, &hash);
    assert_eq!((auth.len(), sw), (96, 0x9000));
    let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(&aut_point).unwrap();
    let mut padded = vec![0u8; 16];
    padded.extend_from_slice(&hash);
    vk.verify_prehash(&padded, &p384::ecdsa::Signature::from_slice(&auth).unwrap()).unwrap();
    assert_eq!(tx(&mut card, 0x88, 0, 0, &[0; 65]).1, 0x6700);
}

#[test]
fn algorithm_attributes_are_checked_and_a_change_drops_the_key() {
    let mut card = selected();
    let p256 = h(&format!("13{P256_OID}")).unwrap();
    assert_eq!(put_data(&mut card, 0x00C1, &p256), 0x6982);
    admin(&mut card);
    for bad in [
        format!("12{P256_OID}"),             // ECDH for the signature key
        "13 2B8104000A".to_string(),         // secp256k1
        "16 2B06010401DA470F01".to_string(), // Ed25519
        "01 0400 0020 00".to_string(),       // RSA 1024
        "01 0800 0010 00".to_string(),       // 16-bit exponent field
        "01 0800 0020 04".to_string(),       // unknown import format
        "01 0800".to_string(),
        "".to_string(),
    ] {
        assert_eq!(put_data(&mut card, 0x00C1, &h(&bad).unwrap()), 0x6A80, "{bad}");
    }
    assert_eq!(put_data(&mut card, 0x00C2, &p256), 0x6A80); // ECDSA for decryption
    assert_eq!(put_data(&mut card, 0x00C1, &p256), 0x9000);
    generate(&mut card, 0xB6);
    assert_eq!(get_data(&mut card, 0x00DE).0[..2], [1, 1]);
    // Writing the same attributes keeps the key; other attributes drop it.
    assert_eq!(put_data(&mut card, 0x00C1, &p256), 0x9000);
    assert_eq!(tx(&mut card, 0x47, 0x81, 0, &h("B600").unwrap()).1, 0x9000);
    assert_eq!(put_data(&mut card, 0x00C1, &h("010C00002000").unwrap()), 0x9000);
    assert_eq!(tx(&mut card, 0x47, 0x81, 0, &h("B600").unwrap()).1, 0x6A88);
    assert_eq!(get_data(&mut card, 0x00DE).0[..2], [1, 0]);
    // GENERATE parameters and data.
    assert_eq!(tx(&mut card, 0x47, 0x82, 0, &h("B600").unwrap()).1, 0x6B00);
    assert_eq!(tx(&mut card, 0x47, 0x80, 1, &h("B600").unwrap()).1, 0x6B00);
    assert_eq!(tx(&mut card, 0x47, 0x80, 0, &[]).1, 0x6700);
    assert_eq!(tx(&mut card, 0x47, 0x80, 0, &h("B700").unwrap()).1, 0x6A80);
    assert_eq!(tx(&mut card, 0x47, 0x81, 0, &h("A4038401 03").unwrap()).1, 0x6A88);
}

#[test]
fn operations_without_keys_or_verification() {
    let mut card = selected();
    assert_eq!(verify(&mut card, 0x81, b"123456"), 0x9000);
    assert_eq!(tx(&mut card, 0x2A, 0x9E, 0x9A, &[1; 32]).1, 0x6A88);
    assert_eq!(verify(&mut card, 0x82, b"123456"), 0x9000);
    assert_eq!(tx(&mut card, 0x2A, 0x80, 0x86, &[0; 257]).1, 0x6A88);
    assert_eq!(tx(&mut card, 0x88, 0, 0, &[1; 32]).1, 0x6A88);
    assert_eq!(tx(&mut card, 0x2A, 0x9E, 0x9B, &[1; 32]).1, 0x6B00);
}

/// The extended header list of §4.4.3.12 for `crt` with the `parts` (tag, value) in order.
fn extended_header_list(crt: u8, parts: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut list = Vec::new();
    let mut values = Vec::new();
    for (tag, value) in parts {
        list.push(*tag);
        // The header list has lengths only: encode a TLV and drop its value.
        let mut tlv = Vec::new();
        data::put(&mut tlv, 0x00, value);
        list.extend_from_slice(&tlv[1..tlv.len() - value.len()]);
        values.extend_from_slice(value);
    }
    let mut inner = vec![crt, 0x00];
    data::put(&mut inner, 0x7F48, &list);
    data::put(&mut inner, 0x5F48, &values);
    let mut out = Vec::new();
    data::put(&mut out, 0x4D, &inner);
    out
}

#[test]
fn key_import_rsa_and_ecc() {
    let mut card = selected();
    let mut rng = SimRng::from_seed(11);
    let host = RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let primes = host.primes();
    let e = host.e().to_bytes_be();
    let ehl = extended_header_list(
        0xA4,
        &[
            (0x91, e.clone()),
            (0x92, primes[0].to_bytes_be()),
            (0x93, primes[1].to_bytes_be()),
            (0x97, host.n().to_bytes_be()),
        ],
    );
    assert_eq!(tx(&mut card, 0xDB, 0x3F, 0xFF, &ehl).1, 0x6982);
    admin(&mut card);
    assert_eq!(tx(&mut card, 0xDB, 0x3F, 0xFE, &ehl).1, 0x6B00);
    assert_eq!(tx(&mut card, 0xDB, 0x3F, 0xFF, &ehl).1, 0x9000);
    let (public, _) = tx(&mut card, 0x47, 0x81, 0, &h("A400").unwrap());
    assert_eq!(find(&public, 0x81), Some(host.n().to_bytes_be()));
    assert_eq!(get_data(&mut card, 0x00DE).0, h("010002000302").unwrap());
    assert_eq!(verify(&mut card, 0x82, b"123456"), 0x9000);
    let (_, info) = digest_info_sha256(b"x");
    let (auth, _) = tx(&mut card, 0x88, 0, 0, &info);
    RsaPublicKey::from(&host).verify(Pkcs1v15Sign::new_unprefixed(), &info, &auth).unwrap();
    // A modulus that does not match the primes; values shorter than announced.
    let wrong_n = extended_header_list(
        0xA4,
        &[
            (0x91, e.clone()),
            (0x92, primes[0].to_bytes_be()),
            (0x93, primes[1].to_bytes_be()),
            (0x97, vec![0xFF; 256]),
        ],
    );
    assert_eq!(tx(&mut card, 0xDB, 0x3F, 0xFF, &wrong_n).1, 0x6A80);
    let mut truncated = ehl.clone();
    truncated.truncate(ehl.len() - 1);
    assert_eq!(tx(&mut card, 0xDB, 0x3F, 0xFF, &truncated).1, 0x6A80);
    assert_eq!(tx(&mut card, 0xDB, 0x3F, 0xFF, &[0x4D, 0x00]).1, 0x6A80);

    // ECC: P-256 signature key from its private scalar (and the public point checked).
    assert_eq!(put_data(&mut card, 0x00C1, &h(&format!("13{P256_OID}FF")).unwrap()), 0x9000);
    let secret = p256::SecretKey::random(&mut rng);
    let point = secret.public_key().to_encoded_point(false).as_bytes().to_vec();
    let ehl = extended_header_list(0xB6, &[(0x92, secret.to_bytes().to_vec()), (0x99, point)]);
    assert_eq!(tx(&mut card, 0xDB, 0x3F, 0xFF, &ehl).1, 0x9000);
    assert_eq!(get_data(&mut card, 0x00DE).0[..2], [1, 2]);
    assert_eq!(verify(&mut card, 0x81, b"123456"), 0x9000);
    let hash = Sha256::digest(b"imported");
    let (signature, _) = tx(&mut card, 0x2A, 0x9E, 0x9A, &hash);
    let vk = p256::ecdsa::VerifyingKey::from(secret.public_key());
    vk.verify_prehash(&hash, &p256::ecdsa::Signature::from_slice(&signature).unwrap()).unwrap();
    let other = extended_header_list(0xB6, &[(0x92, vec![0; 32])]);
    assert_eq!(tx(&mut card, 0xDB, 0x3F, 0xFF, &other).1, 0x6A80);
}

#[test]
fn cardholder_certificates_through_select_data() {
    let mut card = selected();
    admin(&mut card);
    let select = |p1: u8| format!("00A5{p1:02X}0406 60045C027F21");
    // Without SELECT DATA, 7F21 is the first occurrence: the authentication key's.
    assert_eq!(put_data(&mut card, 0x7F21, b"cert AUT"), 0x9000);
    assert_eq!(sw(&mut card, &select(1)), 0x9000);
    assert_eq!(put_data(&mut card, 0x7F21, b"cert DEC"), 0x9000);
    assert_eq!(sw(&mut card, &select(2)), 0x9000);
    // A large certificate: extended Lc in, and back out with one extended APDU.
    let big: Vec<u8> = (0..2000u32).map(|i| i as u8).collect();
    assert_eq!(put_data(&mut card, 0x7F21, &big), 0x9000);
    assert_eq!(put_data(&mut card, 0x7F21, &[0; 2049]), 0x6700);
    let cmd = CommandApdu::new(0, 0xCA, 0x7F, 0x21).with_ne(65536).unwrap();
    let (cert, sw2, apdus) = exchange(&mut card, &cmd, CardLimits::extended(65535, 65536));
    assert_eq!((cert.as_slice(), sw2, apdus), (big.as_slice(), 0x9000, 1));
    // With short APDUs it comes in 256-byte pieces behind 61xx.
    let (cert, _, apdus) = exchange(&mut card, &cmd, CardLimits::default());
    assert_eq!((cert.len(), apdus), (2000, 8));
    assert_eq!(sw(&mut card, &select(0)), 0x9000);
    assert_eq!(get_data(&mut card, 0x7F21).0, b"cert AUT");
    // GET NEXT DATA walks the occurrences.
    assert_eq!(raw(&mut card, "00CC7F2100"), (b"cert DEC".to_vec(), 0x9000));
    assert_eq!(tx(&mut card, 0xCC, 0x7F, 0x21, &[]).0, big);
    assert_eq!(sw(&mut card, "00CC7F2100"), 0x6A88);
    assert_eq!(sw(&mut card, "00CC006E00"), 0x6A88);
    // SELECT DATA errors: occurrence, P2, tag list.
    assert_eq!(sw(&mut card, &select(3)), 0x6B00);
    assert_eq!(sw(&mut card, "00A5000306 60045C027F21"), 0x6B00);
    assert_eq!(sw(&mut card, "00A5000406 60045C025F50"), 0x6A88);
    assert_eq!(sw(&mut card, "00A5000404 5C027F21"), 0x6A80);
    assert_eq!(sw(&mut card, "00A5000402 6004"), 0x6A80);
    // The occurrence is volatile.
    assert_eq!(sw(&mut card, &select(1)), 0x9000);
    card.reset();
    sw(&mut card, "00A4040006D27600012401");
    assert_eq!(get_data(&mut card, 0x7F21).0, b"cert AUT");
}

#[test]
fn get_challenge() {
    let mut card = selected();
    let (a, sw1) = raw(&mut card, "0084000008");
    let (b, _) = raw(&mut card, "0084000008");
    assert_eq!((a.len(), sw1), (8, 0x9000));
    assert_ne!(a, b);
    assert_eq!(raw(&mut card, "0084000000").0.len(), 256);
    assert_eq!(raw(&mut card, "00840000000800").0.len(), 2048);
    assert_eq!(sw(&mut card, "00840000000801"), 0x6700);
    assert_eq!(sw(&mut card, "00840000"), 0x6700);
    assert_eq!(sw(&mut card, "0084010008"), 0x6B00);
    // Seeded cards are deterministic.
    let mut again = selected();
    assert_eq!(raw(&mut again, "0084000008").0, a);
}

#[test]
fn terminate_and_activate_reset_the_application() {
    let mut card = selected();
    let (aid, _) = get_data(&mut card, 0x004F);
    assert_eq!(sw(&mut card, "00E60000"), 0x6982);
    admin(&mut card);
    assert_eq!(put_data(&mut card, 0x005B, b"Someone"), 0x9000);
    assert_eq!(put_data(&mut card, 0x00C1, &h(&format!("13{P256_OID}")).unwrap()), 0x9000);
    generate(&mut card, 0xB6);
    assert_eq!(tx(&mut card, 0x24, 0, 0x81, b"123456abcdef").1, 0x9000);
    // ACTIVATE FILE on an operational card changes nothing.
    assert_eq!(sw(&mut card, "00440000"), 0x9000);
    assert_eq!(get_data(&mut card, 0x005B).0, b"Someone");
    assert_eq!(sw(&mut card, "00E60001"), 0x6B00);
    assert_eq!(sw(&mut card, "00E60000"), 0x9000);
    // Terminated: everything but ACTIVATE FILE answers 6285, SELECT included.
    assert_eq!(sw(&mut card, "00CA006E00"), 0x6285);
    assert_eq!(sw(&mut card, "00A4040006D27600012401"), 0x6285);
    card.power_on();
    assert_eq!(sw(&mut card, "00A4040006D27600012401"), 0x6285);
    assert_eq!(sw(&mut card, "00440000"), 0x9000);
    // Factory state, same serial number.
    assert_eq!(get_data(&mut card, 0x004F).0, aid);
    assert_eq!(get_data(&mut card, 0x005B).0, b"");
    assert_eq!(get_data(&mut card, 0x00C1).0, h("010800002000").unwrap());
    assert_eq!(get_data(&mut card, 0x00DE).0, h("010002000300").unwrap());
    assert_eq!(verify(&mut card, 0x81, b"123456"), 0x9000);
    // With PW3 blocked, TERMINATE DF needs no verification (how GnuPG's factory-reset works).
    for _ in 0..3 {
        verify(&mut card, 0x83, b"@@@@@@@@");
    }
    assert_eq!(sw(&mut card, "00E60000"), 0x9000);
    assert_eq!(sw(&mut card, "00440000"), 0x9000);
    assert_eq!(pw_status(&mut card)[4..], [3, 0, 3]);
}

#[test]
fn power_on_and_reset_clear_the_session() {
    let mut card = selected();
    admin(&mut card);
    assert_eq!(verify(&mut card, 0x82, b"123456"), 0x9000);
    card.power_on();
    assert_eq!(sw(&mut card, "00200083"), 0x6D00); // not selected any more
    sw(&mut card, "00A4040006D27600012401");
    assert_eq!(sw(&mut card, "00200083"), 0x63C3);
    assert_eq!(sw(&mut card, "00200082"), 0x63C3);
    assert_eq!(put_data(&mut card, 0x005B, b"x"), 0x6982);
    admin(&mut card);
    card.reset();
    sw(&mut card, "00A4040006D27600012401");
    assert_eq!(put_data(&mut card, 0x005B, b"x"), 0x6982);
    // A new SELECT of the application also starts a new session.
    admin(&mut card);
    sw(&mut card, "00A4040006D27600012401");
    assert_eq!(sw(&mut card, "00200083"), 0x63C3);
    // A pending response does not survive a reset either.
    assert_eq!(raw(&mut card, "00CA006E01").1 >> 8, 0x61);
    card.power_off();
    assert_eq!(sw(&mut card, "00C0000000"), 0x6985);
}

#[test]
fn state_survives_save_and_load() {
    let mut card = selected();
    admin(&mut card);
    assert_eq!(put_data(&mut card, 0x00C1, &h(&format!("13{P384_OID}")).unwrap()), 0x9000);
    assert_eq!(put_data(&mut card, 0x00C2, &h(&format!("12{P256_OID}")).unwrap()), 0x9000);
    let sig_point = find(&generate(&mut card, 0xB6), 0x86).unwrap();
    generate(&mut card, 0xB8);
    generate(&mut card, 0xA4); // RSA 2048
    assert_eq!(put_data(&mut card, 0x005B, b"Saved<<Card"), 0x9000);
    assert_eq!(put_data(&mut card, 0x00D3, b"resetcode"), 0x9000);
    assert_eq!(put_data(&mut card, 0x00C7, &[9; 20]), 0x9000);
    assert_eq!(put_data(&mut card, 0x7F21, b"auth cert"), 0x9000);
    assert_eq!(put_data(&mut card, 0x0104, b"secret"), 0x9000);
    assert_eq!(tx(&mut card, 0x24, 0, 0x81, b"123456abcdef").1, 0x9000);
    assert_eq!(verify(&mut card, 0x81, b"000000"), 0x63C2);
    assert_eq!(verify(&mut card, 0x81, b"abcdef"), 0x9000);
    tx(&mut card, 0x2A, 0x9E, 0x9A, &[1; 48]);
    assert_eq!(verify(&mut card, 0x83, b"00000000"), 0x63C2);
    let ard = get_data(&mut card, 0x006E).0;

    let saved = card.save_state();
    let text = serde_json::to_string(&saved).unwrap();
    assert!(!text.contains("abcdef"), "PINs are stored in hex");
    let mut loaded = OpenPgpCard::from_state(saved.clone(), SimRng::from_seed(1)).unwrap();
    loaded.power_on();
    sw(&mut loaded, "00A4040006D27600012401");
    assert_eq!(get_data(&mut loaded, 0x006E).0, ard);
    assert_eq!(get_data(&mut loaded, 0x0065).0, get_data(&mut card, 0x0065).0);
    assert_eq!(get_data(&mut loaded, 0x007A).0, h("9303000001").unwrap());
    assert_eq!(get_data(&mut loaded, 0x7F21).0, b"auth cert");
    assert_eq!(pw_status(&mut loaded)[4..], [3, 3, 2]);
    let (public, _) = tx(&mut loaded, 0x47, 0x81, 0, &h("B600").unwrap());
    assert_eq!(find(&public, 0x86), Some(sig_point.clone()));
    assert_eq!(verify(&mut loaded, 0x81, b"abcdef"), 0x9000);
    let hash = Sha256::digest(b"after reload");
    let (signature, sw2) = tx(&mut loaded, 0x2A, 0x9E, 0x9A, &hash);
    assert_eq!(sw2, 0x9000);
    let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(&sig_point).unwrap();
    vk.verify_prehash(&hash, &p384::ecdsa::Signature::from_slice(&signature).unwrap()).unwrap();
    assert_eq!(tx(&mut loaded, 0x2C, 0, 0x81, b"resetcode654321").1, 0x9000);
    // Saving the loaded card gives the same state back.
    let mut again = OpenPgpCard::from_state(saved.clone(), SimRng::from_seed(1)).unwrap();
    assert_eq!(again.save_state(), saved);
    again.power_on();

    // Damaged states are refused.
    assert!(OpenPgpCard::from_state(serde_json::Value::Null, SimRng::from_seed(1)).is_err());
    let mut bad = saved.clone();
    bad["serial"] = serde_json::json!("0102");
    assert!(OpenPgpCard::from_state(bad, SimRng::from_seed(1)).is_err());
    let mut bad = saved.clone();
    bad["keys"][0]["attributes"] = serde_json::json!("010800002000");
    let err = OpenPgpCard::from_state(bad, SimRng::from_seed(1)).unwrap_err();
    assert!(err.contains("Sig key is P384"), "{err}");
    let mut bad = saved;
    bad["keys"][2]["attributes"] = serde_json::json!("99");
    assert!(OpenPgpCard::from_state(bad, SimRng::from_seed(1)).is_err());
}

#[test]
fn debug_output_shows_no_secrets() {
    let mut card = selected();
    admin(&mut card);
    assert_eq!(put_data(&mut card, 0x00C1, &h(&format!("13{P256_OID}")).unwrap()), 0x9000);
    generate(&mut card, 0xB6);
    let text = format!("{card:?}");
    assert!(text.contains("OpenPgpCard") && text.contains("pw3: true"), "{text}");
    for secret in ["123456", "12345678", "value", "pkcs8", "Pin"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut rng = SimRng::from_seed(3);
    let mut card = selected();
    admin(&mut card);
    assert_eq!(put_data(&mut card, 0x00C2, &h(&format!("12{P256_OID}")).unwrap()), 0x9000);
    generate(&mut card, 0xB8);
    verify(&mut card, 0x82, b"123456");
    verify(&mut card, 0x81, b"123456");
    let ins = [
        0xA4, 0xCA, 0xCC, 0xA5, 0xDA, 0xDB, 0x20, 0x24, 0x2C, 0x47, 0x2A, 0x88, 0x84, 0xE6, 0x44,
        0xC0,
    ];
    for i in 0..20_000usize {
        let len = usize::from(rng.bytes(1)[0] % 40);
        let mut apdu = rng.bytes(len + 4);
        apdu[0] &= 0x10;
        apdu[1] = ins[i % ins.len()];
        let out = card.process(&apdu);
        assert!(out.len() >= 2);
        if i % 1000 == 0 {
            card.power_on();
            sw(&mut card, "00A4040006D27600012401");
        }
    }
}
