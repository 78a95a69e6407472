//! `scard apdu`: decode a command APDU.

use std::fmt::Write;

use scard_iso7816::hex::{self, Hex};
use scard_iso7816::{CommandApdu, Error};
use serde::Serialize;

use crate::{EXIT_BAD_INPUT, Outcome, to_json};

/// The JSON report; field names and order are part of the interface.
#[derive(Debug, Default, Serialize)]
struct Report {
    case: Option<&'static str>,
    cla: Option<String>,
    ins: Option<String>,
    p1: Option<String>,
    p2: Option<String>,
    nc: Option<usize>,
    ne: Option<u32>,
    data: Option<String>,
    extended: Option<bool>,
    error: Option<String>,
}

pub(crate) fn run(text: &str, json: bool) -> Outcome {
    let decoded = hex::decode_lenient(text).and_then(|bytes| CommandApdu::decode(&bytes));
    match (decoded, json) {
        (Ok(apdu), true) => to_json(&report(&apdu), 0),
        (Ok(apdu), false) => Outcome { text: datasheet(&apdu), status: 0 },
        (Err(err), true) => {
            to_json(&Report { error: Some(err.to_string()), ..Report::default() }, EXIT_BAD_INPUT)
        }
        (Err(err), false) => Outcome::error(message(&err), EXIT_BAD_INPUT),
    }
}

fn message(err: &Error) -> String {
    format!("not a valid command APDU: {err}")
}

fn report(apdu: &CommandApdu) -> Report {
    Report {
        case: Some(apdu.case().label()),
        cla: Some(format!("{:02X}", apdu.cla())),
        ins: Some(format!("{:02X}", apdu.ins().0)),
        p1: Some(format!("{:02X}", apdu.p1())),
        p2: Some(format!("{:02X}", apdu.p2())),
        nc: Some(apdu.data().len()),
        ne: apdu.ne(),
        data: Some(hex::encode_upper(apdu.data())),
        extended: Some(apdu.is_extended()),
        error: None,
    }
}

/// ISO/IEC 7816-4 §5.4.1: what the class byte says.
fn describe_cla(cla: u8) -> String {
    match cla {
        0xFF => "reserved (PC/SC reader pseudo-APDU)".to_owned(),
        0x00..=0x1F => format!(
            "first interindustry, channel {}, secure messaging {}, {}",
            cla & 0x03,
            match (cla >> 2) & 0x03 {
                0 => "none",
                1 => "proprietary",
                2 => "header not authenticated",
                _ => "header authenticated",
            },
            chain(cla)
        ),
        0x40..=0x7F => format!(
            "further interindustry, channel {}, secure messaging {}, {}",
            4 + (cla & 0x0F),
            if cla & 0x20 != 0 { "yes" } else { "none" },
            chain(cla)
        ),
        0x20..=0x3F => "reserved for future use".to_owned(),
        _ => "proprietary".to_owned(),
    }
}

fn chain(cla: u8) -> &'static str {
    if cla & 0x10 != 0 { "chained (not the last command)" } else { "last or only command" }
}

fn datasheet(apdu: &CommandApdu) -> String {
    let mut out = String::new();
    let case = apdu.case();
    let form = if case.is_extended() { "extended length" } else { "short length" };
    let form =
        if apdu.data().is_empty() && apdu.ne().is_none() { "no length fields" } else { form };
    let _ = writeln!(out, "Case      {case} ({form})");
    let _ = writeln!(out, "CLA       {:02X}  {}", apdu.cla(), describe_cla(apdu.cla()));
    let ins = apdu.ins();
    let _ = writeln!(
        out,
        "INS       {:02X}  {}",
        ins.0,
        ins.name().unwrap_or("(not an interindustry instruction)")
    );
    let _ = writeln!(out, "P1 P2     {:02X} {:02X}", apdu.p1(), apdu.p2());
    let _ = writeln!(out, "Nc        {}", apdu.data().len());
    if !apdu.data().is_empty() {
        for (i, line) in apdu.data().chunks(16).enumerate() {
            let label = if i == 0 { "Data" } else { "" };
            let _ = writeln!(out, "{label:<9} {}", hex::encode_spaced(line));
        }
    }
    match apdu.ne() {
        Some(ne) => {
            let _ = writeln!(out, "Ne        {ne}");
        }
        None => {
            let _ = writeln!(out, "Ne        none (no response data expected)");
        }
    }
    let _ = writeln!(out, "Encoding  {}", Hex(&apdu.to_bytes()));
    out
}
