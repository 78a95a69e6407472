//! Host side of the QEMU CCID end-to-end test (tests/qemu-ccid/run.sh).
//!
//! - `qemu_piv provision STATE`: a new simulated PIV card with an ECDSA P-256 key and a
//!   self-signed certificate in 9A (PIV Authentication), saved to the state file `scard sim
//!   piv --state STATE --vscard ...` then serves to QEMU.
//! - `qemu_piv verify STATE LOG [CHALLENGE]`: checks what the guest printed in LOG (the
//!   serial console): the certificate it read over USB CCID is the one on the card, the
//!   challenge it had signed is CHALLENGE (hex, the host's), and the signature verifies over
//!   it with that certificate's public key.

use std::error::Error;
use std::path::Path;
use std::process::ExitCode;

use der::{Decode, Encode};
use scard_iso7816::hex::decode_lenient;
use scard_iso7816::tlv::ber::{self, ParseOptions, Tag};
use scard_sim::keys::KeyAlgorithm;
use scard_sim::piv::{KeySlot, PivCard};
use scard_sim::{Family, SimRng, state};
use signature::hazmat::PrehashVerifier;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["provision", state] => provision(Path::new(state)),
        ["verify", state, log] => verify(Path::new(state), Path::new(log), None),
        ["verify", state, log, challenge] => {
            verify(Path::new(state), Path::new(log), Some(challenge))
        }
        _ => Err("usage: qemu_piv provision STATE | qemu_piv verify STATE LOG [CHALLENGE]".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("qemu_piv: {err}");
            ExitCode::FAILURE
        }
    }
}

fn provision(path: &Path) -> Result<()> {
    let mut card = PivCard::new(SimRng::from_entropy());
    let cert =
        card.personalise(KeySlot::PIV_AUTHENTICATION, KeyAlgorithm::P256, "scard QEMU CCID test")?;
    state::save(&card, path)?;
    println!("qemu_piv: PIV card with a P-256 key and a {}-byte certificate in 9A", cert.len());
    Ok(())
}

/// The value after `=== ccid_e2e <key> ` in the guest's output.
fn field(log: &str, key: &str) -> Result<Vec<u8>> {
    let prefix = format!("=== ccid_e2e {key} ");
    let line = log
        .lines()
        .find_map(|l| l.trim_end_matches('\r').split_once(&prefix).map(|(_, v)| v.trim()))
        .ok_or_else(|| format!("the guest printed no {key}"))?;
    Ok(decode_lenient(line)?)
}

fn child(data: &[u8], tag: u32) -> Result<Vec<u8>> {
    for item in ber::iter(data, ParseOptions::default()) {
        let item = item?;
        if item.tag() == Tag::new(tag) {
            return Ok(item.value().to_vec());
        }
    }
    Err(format!("no {tag:X}").into())
}

fn verify(state_path: &Path, log_path: &Path, expected: Option<&str>) -> Result<()> {
    let log = String::from_utf8_lossy(&std::fs::read(log_path)?).into_owned();
    let certificate = field(&log, "certificate")?;
    let challenge = field(&log, "challenge")?;
    if let Some(expected) = expected {
        if decode_lenient(expected)? != challenge {
            return Err("the guest signed another challenge than the host's".into());
        }
    }
    let signature = field(&log, "signature")?;
    // The card's own certificate object (GET DATA 5FC105 with extended Le, in one piece).
    let mut card = state::load(Family::Piv, state_path, SimRng::from_entropy())?;
    let answer = card.process(&decode_lenient("00 CB 3F FF 00 00 05 5C 03 5F C1 05 00 00")?);
    let (object, sw) = answer.split_at(answer.len().saturating_sub(2));
    if sw != [0x90, 0x00] {
        return Err(format!("the card's GET DATA 5FC105 answered {sw:02X?}").into());
    }
    if child(&child(object, 0x53)?, 0x70)? != certificate {
        return Err("the certificate the guest read is not the card's".into());
    }
    let cert = x509_cert::Certificate::from_der(&certificate)?;
    let spki = cert.tbs_certificate.subject_public_key_info.to_der()?;
    let key = <p256::ecdsa::VerifyingKey as pkcs8::DecodePublicKey>::from_public_key_der(&spki)?;
    let sig = p256::ecdsa::Signature::from_der(&signature)?;
    key.verify_prehash(&challenge, &sig)?;
    println!(
        "qemu_piv: signature verified: ECDSA P-256 over the guest's {}-byte challenge, key of {} \
         (the certificate read over CCID is the card's 5FC105)",
        challenge.len(),
        cert.tbs_certificate.subject
    );
    Ok(())
}
