//! Secrets in APDUs (issue 9, DESIGN.md "Secrets are typed, zeroized, redacted"): the data of
//! every instruction that may carry a PIN, a PUK, a key or an authentication witness is kept in
//! zeroizing buffers and never shown by `Debug`, the trace form, or the exchange engine; the
//! data of other instructions is shown.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use scard_iso7816::apdu::{Ins, trace_command};
use scard_iso7816::{CardLimits, CommandApdu, Exchange, ResponseApdu, StatusWord};
use zeroize::Zeroizing;

/// A value that cannot appear by chance: as bytes and as hex.
const SECRET: &[u8] = b"\x5E\xC2\xE7\x31\x32\x33\x34\x35\x36\xA5";
const SECRET_HEX: &str = "5EC2E7313233343536A5";

/// VERIFY (odd too), CHANGE REFERENCE DATA, RESET RETRY COUNTER, EXTERNAL / GENERAL
/// AUTHENTICATE, PUT DATA (key import, admin keys; odd too), the YubiKey PIV IMPORT
/// ASYMMETRIC KEY (FE) and SET MANAGEMENT KEY (FF).
const SECRET_INS: [u8; 11] = [0x20, 0x21, 0x24, 0x2C, 0x82, 0x86, 0x87, 0xDA, 0xDB, 0xFE, 0xFF];

fn leaks(text: &str) -> bool {
    let upper = text.to_ascii_uppercase().replace([' ', ':', ','], "");
    upper.contains(SECRET_HEX) || text.contains("123456") || upper.contains(&SECRET_HEX[6..16])
}

#[test]
fn secret_bearing_commands_are_redacted_everywhere() {
    for ins in SECRET_INS {
        assert!(Ins(ins).carries_secret(), "{ins:02X}");
        for extended in [false, true] {
            let cmd = CommandApdu::new(0x00, ins, 0x00, 0x80)
                .with_data(SECRET.to_vec())
                .unwrap()
                .with_extended(extended);
            let debug = format!("{cmd:?} {cmd:#?}");
            assert!(!leaks(&debug), "Debug of INS {ins:02X}: {debug}");
            assert!(debug.contains("REDACTED"), "{debug}");
            // The encoding is a zeroizing buffer.
            let bytes: Zeroizing<Vec<u8>> = cmd.to_bytes();
            let trace = trace_command(&bytes).to_string();
            assert!(!leaks(&trace), "trace of INS {ins:02X}: {trace}");
            assert!(trace.contains("redacted"), "{trace}");
            assert!(!leaks(&format!("{:?}", trace_command(&bytes))));
            // The exchange engine, with the command in flight and chained in small pieces.
            let limits = CardLimits { max_command_data: 4, ..CardLimits::default() };
            let mut engine = Exchange::new(&cmd, limits).unwrap();
            loop {
                let debug = format!("{engine:?}");
                assert!(!leaks(&debug), "engine of INS {ins:02X}: {debug}");
                assert!(!leaks(&trace_command(engine.apdu()).to_string()));
                match engine.receive(&[0x90, 0x00]).unwrap() {
                    scard_iso7816::Step::Transmit => {}
                    scard_iso7816::Step::Done(_) => break,
                }
            }
        }
    }
}

#[test]
fn other_commands_show_their_data() {
    for ins in [0xA4u8, 0xCA, 0xCB, 0xB0, 0x2A, 0x47] {
        assert!(!Ins(ins).carries_secret(), "{ins:02X}");
        let cmd = CommandApdu::new(0x00, ins, 0x00, 0x00).with_data(SECRET.to_vec()).unwrap();
        assert!(format!("{cmd:?}").contains(SECRET_HEX), "{cmd:?}");
        assert!(trace_command(&cmd.to_bytes()).to_string().contains(SECRET_HEX));
    }
}

#[test]
fn responses_show_only_their_length() {
    // The response to a decryption is the plaintext: Debug shows its length and status.
    let mut bytes = SECRET.to_vec();
    bytes.extend_from_slice(&[0x90, 0x00]);
    let response = ResponseApdu::decode(&bytes).unwrap();
    let debug = format!("{response:?} {response:#?}");
    assert!(!leaks(&debug), "{debug}");
    assert!(debug.contains(&SECRET.len().to_string()), "{debug}");
    assert_eq!(response.sw(), StatusWord::SUCCESS);
    // The data is handed out in zeroizing buffers.
    let data: Zeroizing<Vec<u8>> = response.clone().into_data();
    assert_eq!(data.as_slice(), SECRET);
    let data: Zeroizing<Vec<u8>> = response.into_success().unwrap();
    assert_eq!(data.as_slice(), SECRET);
    // The engine's gathered data is not shown either.
    let cmd = CommandApdu::new(0x00, 0x2A, 0x80, 0x86).with_ne(256).unwrap();
    let mut engine = Exchange::new(&cmd, CardLimits::default()).unwrap();
    let mut first = SECRET.to_vec();
    first.extend_from_slice(&[0x61, 0x02]);
    assert!(matches!(engine.receive(&first).unwrap(), scard_iso7816::Step::Transmit));
    assert!(!leaks(&format!("{engine:?}")), "{engine:?}");
}
