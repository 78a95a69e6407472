//! Shared test support: closure cards, ATRs and a driver over the simulated reader.
#![allow(dead_code, unreachable_pub)]

use scard_ccid::sim::{SimCard, SimConfig, SimReader};
use scard_ccid::{Driver, DriverConfig};
use scard_iso7816::hex::decode_lenient;

pub fn h(s: &str) -> Vec<u8> {
    decode_lenient(s).unwrap()
}

/// Yubico YubiKey 5 (T=1, TA1 13, IFSC 254, LRC), as in scard-iso7816's ATR tests.
pub const YUBIKEY_ATR: &str =
    "3B FD 13 00 00 81 31 FE 15 80 73 C0 21 C0 57 59 75 62 69 4B 65 79 40";
/// The ATR of the VSCard test card in ../shared/qemu-ccid.md (T=0, no TA1).
pub const QEMU_TEST_CARD_ATR: &str = "3B 08 52 55 53 54 43 43 49 44";

/// A synthetic T=1 ATR: TD1 = 81 (T=1), TD2 = 31/71 (TA3 = IFSC, TB3 = 45 [, TC3 = 01 CRC]).
pub fn t1_atr(ifsc: u8, crc: bool) -> Vec<u8> {
    let mut atr = vec![0x3B, 0x80, 0x81, if crc { 0x71 } else { 0x31 }, ifsc, 0x45];
    if crc {
        atr.push(0x01);
    }
    let tck = atr[1..].iter().fold(0, |a, b| a ^ b);
    atr.push(tck);
    atr
}

/// The behaviour of every test card:
/// - SELECT (A4): 90 00;
/// - READ BINARY (B0): Ne bytes 00 01 02 ... (or P1P2 bytes when P1P2 is not 0000), 90 00;
/// - ENVELOPE-free data check (E2): 4 bytes: Nc (2 bytes), xor, sum of the data; 90 00;
/// - VERIFY (20): 90 00 for "123456", else 63 C2;
/// - GET DATA (CA): 61 05 (left to the layer above);
/// - anything else: 6D 00.
pub fn card_logic(apdu: &[u8]) -> Vec<u8> {
    let Ok(cmd) = scard_iso7816::CommandApdu::decode(apdu) else { return vec![0x67, 0x00] };
    match cmd.ins().0 {
        0xA4 => vec![0x90, 0x00],
        0xB0 => {
            let p1p2 = usize::from(u16::from_be_bytes([cmd.p1(), cmd.p2()]));
            let n = if p1p2 != 0 { p1p2 } else { cmd.ne().unwrap_or(0) as usize };
            let mut out: Vec<u8> = (0..n).map(|i| i as u8).collect();
            out.extend_from_slice(&[0x90, 0x00]);
            out
        }
        0xE2 => {
            let d = cmd.data();
            let len = (d.len() as u16).to_be_bytes();
            let xor = d.iter().fold(0u8, |a, b| a ^ b);
            let sum = d.iter().fold(0u8, |a, b| a.wrapping_add(*b));
            vec![len[0], len[1], xor, sum, 0x90, 0x00]
        }
        0x20 => {
            if cmd.data() == b"123456" {
                vec![0x90, 0x00]
            } else {
                vec![0x63, 0xC2]
            }
        }
        0xCA => vec![0x61, 0x05],
        _ => vec![0x6D, 0x00],
    }
}

/// The E2 check command for `n` data bytes (extended when needed) and its expected answer.
pub fn check_command(n: usize) -> (Vec<u8>, Vec<u8>) {
    let data: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
    let mut cmd =
        scard_iso7816::CommandApdu::new(0x80, 0xE2, 0, 0).with_data(data.clone()).unwrap();
    cmd = cmd.with_ne(256).unwrap();
    let len = (n as u16).to_be_bytes();
    let xor = data.iter().fold(0u8, |a, b| a ^ b);
    let sum = data.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    (cmd.to_bytes().to_vec(), vec![len[0], len[1], xor, sum, 0x90, 0x00])
}

/// READ BINARY of `n` bytes (extended Le above 256) and the expected answer.
pub fn read_command(n: usize) -> (Vec<u8>, Vec<u8>) {
    let cmd = scard_iso7816::CommandApdu::new(0x00, 0xB0, 0, 0).with_ne(n as u32).unwrap();
    let mut expected: Vec<u8> = (0..n).map(|i| i as u8).collect();
    expected.extend_from_slice(&[0x90, 0x00]);
    (cmd.to_bytes().to_vec(), expected)
}

pub fn card(atr: &[u8]) -> SimCard {
    SimCard::new(atr, card_logic)
}

pub fn driver(config: SimConfig, card: Option<SimCard>) -> Driver<SimReader> {
    let reader = SimReader::new(config, card);
    let descriptor = reader.descriptor();
    Driver::new(reader, descriptor, DriverConfig::default()).unwrap()
}

/// The abData of every XfrBlock sent so far.
pub fn xfr_payloads(reader: &SimReader) -> Vec<Vec<u8>> {
    reader.log.iter().filter(|m| m[0] == 0x6F).map(|m| m[10..].to_vec()).collect()
}
