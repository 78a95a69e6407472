//! The end-to-end test that runs inside a QEMU guest, against QEMU's `usb-ccid` reader and a
//! PIV card served by `scard sim piv --vscard` (tests/qemu-ccid/run.sh builds it statically
//! and makes it the payload of the guest's /init).
//!
//! It uses the whole `ccid:` stack as an application would: the rusb shell (libusb, Linux
//! usbfs, QEMU's xHCI), the CCID core (TPDU level, T=0) and the `CardTransport`:
//! 1. waits for a CCID reader with a card, connects (IccPowerOn) and prints the ATR;
//! 2. SELECT of the PIV application as a case 3 command: the card answers `61xx`; GET
//!    RESPONSE with Le 00: the card answers `6Cxx` at TPDU level and the driver sends it again
//!    with the right length;
//! 3. GET DATA of the PIV Authentication certificate (5FC105) as a case 4 command: `61xx`
//!    and GET RESPONSE at TPDU level, then at APDU level through scard-transport's engine;
//! 4. VERIFY of the PIN 123456;
//! 5. GENERAL AUTHENTICATE: an ECDSA P-256 signature with key 9A of the 32-byte challenge
//!    the host put on the kernel command line (`scard.challenge=<hex>`), printed for the
//!    host to verify against the certificate;
//! 6. card removal (the provider sends CardRemove): the backend reports the event and the
//!    connection answers "card removed".
//!
//! Every result is a line starting with `=== ccid_e2e`; the last one is `=== ccid_e2e PASS`
//! or `=== ccid_e2e FAIL <why>`.

use std::error::Error;
use std::io::Read;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use scard_ccid::CcidBackend;
use scard_iso7816::hex::encode_upper as hex;
use scard_iso7816::tlv::ber::{self, ParseOptions, Tag};
use scard_iso7816::{CardLimits, CommandApdu};
use scard_transport::{
    Backend, CardTransport, Protocol, ReaderEvent, ReaderName, ShareMode, TransportError,
};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The PIV application's AID (SP 800-73-4 Pt 1 §2.2).
const PIV_AID: [u8; 9] = [0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00];

fn main() -> ExitCode {
    let started = Instant::now();
    match run() {
        Ok(()) => {
            println!("=== ccid_e2e PASS ({} ms)", started.elapsed().as_millis());
            ExitCode::SUCCESS
        }
        Err(err) => {
            println!("=== ccid_e2e FAIL {err}");
            ExitCode::FAILURE
        }
    }
}

fn sw(response: &[u8]) -> u16 {
    match response {
        [.., a, b] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    }
}

fn expect(what: &str, response: &[u8], wanted: u16) -> Result<()> {
    if sw(response) == wanted {
        Ok(())
    } else {
        Err(format!("{what}: SW {:04X}, expected {wanted:04X}", sw(response)).into())
    }
}

/// The value of the child `tag` inside `data` (a sequence of BER-TLV objects).
fn child(data: &[u8], tag: u32) -> Result<&[u8]> {
    for item in ber::iter(data, ParseOptions::default()) {
        let item = item?;
        if item.tag() == Tag::new(tag) {
            return Ok(item.value());
        }
    }
    Err(format!("no {tag:X} in {}", hex(data)).into())
}

fn run() -> Result<()> {
    let mut backend = CcidBackend::system().with_timeout(Duration::from_secs(10));

    // 1. The reader, once USB enumeration found it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let reader = loop {
        match backend.readers() {
            Ok(list) => {
                if let Some(r) = list.into_iter().find(|r| r.atr.is_some()) {
                    break r;
                }
            }
            Err(err) if Instant::now() >= deadline => return Err(err.into()),
            // libusb found no usbfs yet (the USB modules were just loaded): start again.
            Err(TransportError::BackendUnavailable { reason, .. }) if reason.contains("Init") => {
                backend = CcidBackend::system().with_timeout(Duration::from_secs(10));
            }
            Err(_) => {}
        }
        if Instant::now() >= deadline {
            return Err("no CCID reader with a card".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let name: ReaderName = reader.name.parse()?;
    let mut t = backend.connect_reader(&name, ShareMode::Exclusive)?.ok_or("reader vanished")?;
    println!("=== ccid_e2e reader {} ATR {}", t.reader(), hex(t.atr()));
    if t.protocol() != Protocol::T0 {
        return Err(format!("protocol {:?}, expected T=0", t.protocol()).into());
    }

    // 2. SELECT as case 3: 61xx; GET RESPONSE Le 00: 6Cxx at TPDU level, resent by the driver.
    let mut select = vec![0x00, 0xA4, 0x04, 0x00, 0x09];
    select.extend_from_slice(&PIV_AID);
    let r = t.transmit(&select)?;
    if r.first() != Some(&0x61) || r.len() != 2 {
        return Err(format!("SELECT (case 3): {}, expected 61xx", hex(&r)).into());
    }
    let announced = r.get(1).copied().unwrap_or(0);
    let apt = t.transmit(&[0x00, 0xC0, 0x00, 0x00, 0x00])?;
    expect("GET RESPONSE", &apt, 0x9000)?;
    let body = apt.get(..apt.len() - 2).unwrap_or_default();
    // SP 800-73-4 Pt 2 §3.1.1, Pt 1 Table 3: the application property template 61 with 4F
    // the PIX of the AID (after the NIST RID A0 00 00 03 08).
    let pix = child(child(body, 0x61)?, 0x4F)?;
    let aid = [PIV_AID.get(..5).unwrap_or_default(), pix].concat();
    if !aid.starts_with(&PIV_AID) {
        return Err(format!("APT names PIX {}", hex(pix)).into());
    }
    println!(
        "=== ccid_e2e select 61{announced:02X}, GET RESPONSE Le 00 -> {} bytes 9000 (6Cxx handled at TPDU level), AID {}",
        body.len(),
        hex(&aid)
    );

    // 3. The PIV Authentication certificate: GET DATA 5FC105, case 4.
    let get = CommandApdu::new(0x00, 0xCB, 0x3F, 0xFF)
        .with_data(vec![0x5C, 0x03, 0x5F, 0xC1, 0x05])?
        .with_ne(65536)?;
    let limits = CardLimits::default();
    let object = scard_transport::exchange(&mut t, &get, limits)?;
    if !object.is_success() {
        return Err(format!("GET DATA 5FC105: SW {:04X}", object.sw().0).into());
    }
    let certificate = child(child(object.data(), 0x53)?, 0x70)?;
    println!("=== ccid_e2e certificate {}", hex(certificate));

    // 4. VERIFY the PIN (SP 800-73-4 Pt 2 §3.2.1: 8 bytes, padded with FF).
    let mut verify = vec![0x00, 0x20, 0x00, 0x80, 0x08];
    verify.extend_from_slice(b"123456\xFF\xFF");
    let r = t.transmit(&verify)?;
    expect("VERIFY", &r, 0x9000)?;
    println!("=== ccid_e2e verify 9000");

    // 5. GENERAL AUTHENTICATE, ECDSA P-256 (algorithm 11) with 9A over the host's challenge
    // (the kernel command line's scard.challenge: 32 fresh bytes; the guest's own entropy
    // pool may take seconds to fill under TCG).
    let challenge = challenge()?;
    let mut template = vec![0x7C, 0x24, 0x82, 0x00, 0x81, 0x20];
    template.extend_from_slice(&challenge);
    let sign = CommandApdu::new(0x00, 0x87, 0x11, 0x9A).with_data(template)?.with_ne(65536)?;
    let r = scard_transport::exchange(&mut t, &sign, limits)?;
    if !r.is_success() {
        return Err(format!("GENERAL AUTHENTICATE: SW {:04X}", r.sw().0).into());
    }
    let signature = child(child(r.data(), 0x7C)?, 0x82)?;
    println!("=== ccid_e2e challenge {}", hex(&challenge));
    println!("=== ccid_e2e signature {}", hex(signature));

    // 6. Removal: the provider removes the card when the guest stops talking to it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = false;
    while !seen {
        if Instant::now() >= deadline {
            return Err("no card removal event".into());
        }
        for event in backend.wait_events(Duration::from_millis(500))? {
            println!("=== ccid_e2e event {event:?}");
            seen |=
                matches!(&event, ReaderEvent::CardRemoved { reader } if *reader == reader_name(&t));
        }
    }
    match t.transmit(&select) {
        Err(TransportError::CardRemoved { reader }) => {
            println!("=== ccid_e2e removed: transmit says card removed ({reader})");
        }
        other => return Err(format!("after removal, transmit gave {other:?}").into()),
    }
    Ok(())
}

/// The 32 bytes of `scard.challenge=<hex>` on the kernel command line.
fn challenge() -> Result<Vec<u8>> {
    let mut cmdline = String::new();
    std::fs::File::open("/proc/cmdline")?.read_to_string(&mut cmdline)?;
    let hex_value = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("scard.challenge="))
        .ok_or("no scard.challenge= on the kernel command line")?;
    let bytes = scard_iso7816::hex::decode_lenient(hex_value)?;
    if bytes.len() != 32 {
        return Err(format!("scard.challenge has {} bytes, expected 32", bytes.len()).into());
    }
    Ok(bytes)
}

fn reader_name(t: &dyn CardTransport) -> String {
    t.reader().to_owned()
}
