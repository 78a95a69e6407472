//! `scard atr`: decode an answer-to-reset like a datasheet (ISO/IEC 7816-3 §8, historical
//! bytes per ISO/IEC 7816-4 §8.1.1).

use std::fmt::Write;

use scard_iso7816::atr::{self, Atr, ClockStop, Convention, EdcKind, Historical, TckStatus};
use scard_iso7816::hex;
use scard_iso7816::tlv::compact;
use serde::Serialize;

use crate::{EXIT_BAD_INPUT, Outcome, to_json};

/// The JSON report; field names and order are part of the interface.
#[derive(Debug, Default, Serialize)]
struct Report {
    atr: Option<String>,
    convention: Option<&'static str>,
    protocols: Option<Vec<u8>>,
    fi: Option<u16>,
    di: Option<u8>,
    ifsc: Option<u16>,
    historical: Option<String>,
    tck: Option<&'static str>,
    error: Option<String>,
}

pub(crate) fn run(text: &str, json: bool) -> Outcome {
    let bytes = match hex::decode_lenient(text) {
        Ok(bytes) => bytes,
        Err(err) => {
            let error = format!("not hex: {err}");
            return if json {
                to_json(&Report { error: Some(error), ..Report::default() }, EXIT_BAD_INPUT)
            } else {
                Outcome::error(error, EXIT_BAD_INPUT)
            };
        }
    };
    match (Atr::parse(&bytes), json) {
        (Ok(atr), true) => to_json(&report(&atr), 0),
        (Ok(atr), false) => Outcome { text: datasheet(&atr), status: 0 },
        (Err(err), true) => {
            let report = Report {
                atr: Some(hex::encode_upper(&bytes)),
                error: Some(err.to_string()),
                ..Report::default()
            };
            to_json(&report, EXIT_BAD_INPUT)
        }
        (Err(err), false) => Outcome::error(
            format!("not a valid ATR ({}): {err}", hex::encode_spaced(&bytes)),
            EXIT_BAD_INPUT,
        ),
    }
}

fn convention_name(c: Convention) -> &'static str {
    match c {
        Convention::Direct => "direct",
        Convention::Inverse => "inverse",
    }
}

fn tck_name(t: TckStatus) -> &'static str {
    match t {
        TckStatus::Absent => "absent",
        TckStatus::Correct => "correct",
        TckStatus::Wrong => "wrong",
    }
}

fn report(atr: &Atr) -> Report {
    Report {
        atr: Some(hex::encode_upper(atr.bytes())),
        convention: Some(convention_name(atr.convention())),
        protocols: Some(atr.protocols().to_vec()),
        fi: atr.fi(),
        di: atr.di(),
        ifsc: atr.ifsc(),
        historical: Some(hex::encode_upper(atr.historical())),
        tck: Some(tck_name(atr.tck())),
        error: None,
    }
}

/// One line of the datasheet: a label, the byte(s) in hex, and what they mean.
fn line(out: &mut String, label: &str, bytes: &str, meaning: &str) {
    let _ = writeln!(out, "{label:<12} {bytes:<8} {meaning}");
}

fn protocol_list(protocols: &[u8]) -> String {
    protocols.iter().map(|t| format!("T={t}")).collect::<Vec<_>>().join(", ")
}

fn datasheet(atr: &Atr) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ATR          {}  ({} bytes)",
        hex::encode_spaced(atr.bytes()),
        atr.bytes().len()
    );
    let _ = writeln!(out);
    // ISO/IEC 7816-3 §8.1: TS.
    line(
        &mut out,
        "TS",
        &format!("{:02X}", atr.ts()),
        &format!("{} convention", convention_name(atr.convention())),
    );
    // ISO/IEC 7816-3 §8.2.2: T0 = Y1 (bits 8-5) and K (bits 4-1).
    let t0 = atr.t0();
    line(
        &mut out,
        "T0",
        &format!("{t0:02X}"),
        &format!("Y1 = {:X}{}, K = {} historical bytes", t0 >> 4, follows(t0 >> 4, 1), atr.k()),
    );
    for (index, group) in atr.interface_bytes().iter().enumerate() {
        let i = index + 1;
        // The protocol that TD(i-1) indicated governs the meaning of group i >= 3.
        let governing = index
            .checked_sub(1)
            .and_then(|p| atr.interface_bytes().get(p))
            .and_then(|g| g.protocol());
        if let Some(ta) = group.ta {
            line(
                &mut out,
                &format!("TA{i}"),
                &format!("{ta:02X}"),
                &ta_meaning(atr, i, governing, ta),
            );
        }
        if let Some(tb) = group.tb {
            line(&mut out, &format!("TB{i}"), &format!("{tb:02X}"), &tb_meaning(i, governing, tb));
        }
        if let Some(tc) = group.tc {
            line(&mut out, &format!("TC{i}"), &format!("{tc:02X}"), &tc_meaning(i, governing, tc));
        }
        if let Some(td) = group.td {
            let t = td & 0x0F;
            let what = if t == atr::T15 {
                "T=15 (global interface bytes follow)".to_owned()
            } else {
                format!("protocol T={t}")
            };
            line(
                &mut out,
                &format!("TD{i}"),
                &format!("{td:02X}"),
                &format!("Y{} = {:X}{}, {what}", i + 1, td >> 4, follows(td >> 4, i + 1)),
            );
        }
    }
    historical_lines(&mut out, atr);
    match (atr.tck_byte(), atr.tck()) {
        (Some(tck), TckStatus::Correct) => line(&mut out, "TCK", &format!("{tck:02X}"), "correct"),
        (Some(tck), _) => {
            let expected =
                atr.expected_tck().map(|e| format!(" (should be {e:02X})")).unwrap_or_default();
            line(&mut out, "TCK", &format!("{tck:02X}"), &format!("WRONG{expected}"));
        }
        (None, _) => line(&mut out, "TCK", "-", "absent (only T=0 indicated)"),
    }
    let _ = writeln!(out);
    summary(&mut out, atr);
    out
}

/// Which interface bytes Y (bits 8-5 of T0 or TDi) announces for group `i`.
fn follows(y: u8, i: usize) -> String {
    let names: Vec<String> = [(0x1, "TA"), (0x2, "TB"), (0x4, "TC"), (0x8, "TD")]
        .iter()
        .filter(|(bit, _)| y & bit != 0)
        .map(|(_, name)| format!("{name}{i}"))
        .collect();
    if names.is_empty() {
        " (no interface bytes)".to_owned()
    } else {
        format!(" ({} follow)", names.join(" "))
    }
}

/// ISO/IEC 7816-3 §8.3: TA1 Fi/Di, TA2 specific mode, TAi (i >= 3) per protocol.
fn ta_meaning(atr: &Atr, i: usize, governing: Option<u8>, ta: u8) -> String {
    match (i, governing) {
        (1, _) => {
            let fi = atr.fi().map_or_else(|| format!("RFU ({:X})", ta >> 4), |v| v.to_string());
            let di = atr.di().map_or_else(|| format!("RFU ({:X})", ta & 0x0F), |v| v.to_string());
            let fmax = atr.f_max_mhz().map(|f| format!(", f max {f} MHz")).unwrap_or_default();
            format!("Fi = {fi}, Di = {di}{fmax}")
        }
        (2, _) => {
            let mode = atr.specific_mode();
            match mode {
                Some(m) => format!(
                    "specific mode T={}, {}, {}",
                    m.protocol,
                    if m.changeable {
                        "can change to negotiable mode"
                    } else {
                        "cannot change mode"
                    },
                    if m.implicit_parameters {
                        "implicit parameters"
                    } else {
                        "parameters from TA1"
                    }
                ),
                None => "specific mode".to_owned(),
            }
        }
        (_, Some(1)) => format!("T=1 IFSC = {ta}"),
        (_, Some(atr::T15)) => {
            let ci = atr::ClassIndicator(ta);
            let stop = match ci.clock_stop() {
                ClockStop::NotSupported => "clock stop not supported",
                ClockStop::StateL => "clock stop in state L",
                ClockStop::StateH => "clock stop in state H",
                ClockStop::NoPreference => "clock stop, no preference",
            };
            let classes: Vec<&str> =
                [(ci.class_a(), "A (5 V)"), (ci.class_b(), "B (3 V)"), (ci.class_c(), "C (1.8 V)")]
                    .iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, name)| *name)
                    .collect();
            format!(
                "{stop}; classes {}",
                if classes.is_empty() { "none".to_owned() } else { classes.join(", ") }
            )
        }
        (_, Some(t)) => format!("specific to T={t}"),
        (_, None) => "interface byte".to_owned(),
    }
}

/// ISO/IEC 7816-3 §8.3: TB1/TB2 deprecated, TBi (i >= 3) per protocol.
fn tb_meaning(i: usize, governing: Option<u8>, tb: u8) -> String {
    match (i, governing) {
        (1 | 2, _) => "deprecated (programming voltage)".to_owned(),
        (_, Some(1)) => format!("T=1 BWI = {}, CWI = {}", tb >> 4, tb & 0x0F),
        (_, Some(atr::T15)) => format!("SPU (standard or proprietary use) {tb:02X}"),
        (_, Some(t)) => format!("specific to T={t}"),
        (_, None) => "interface byte".to_owned(),
    }
}

/// ISO/IEC 7816-3 §8.3: TC1 extra guard time, TC2 WI, TCi (i >= 3) per protocol.
fn tc_meaning(i: usize, governing: Option<u8>, tc: u8) -> String {
    match (i, governing) {
        (1, _) if tc == 0xFF => "extra guard time N = 255 (minimum guard time)".to_owned(),
        (1, _) => format!("extra guard time N = {tc} etu"),
        (2, _) => format!("T=0 waiting time integer WI = {tc}"),
        (_, Some(1)) => {
            let edc = if tc & 0x01 == 0 { EdcKind::Lrc } else { EdcKind::Crc };
            format!("T=1 error detection: {}", if edc == EdcKind::Lrc { "LRC" } else { "CRC" })
        }
        (_, Some(t)) => format!("specific to T={t}"),
        (_, None) => "interface byte".to_owned(),
    }
}

fn historical_lines(out: &mut String, atr: &Atr) {
    let bytes = atr.historical();
    if bytes.is_empty() {
        line(out, "Historical", "-", "none");
        return;
    }
    let _ =
        writeln!(out, "{:<12} {}  ({})", "Historical", hex::encode_spaced(bytes), printable(bytes));
    match atr.historical_info() {
        Ok(Historical::Empty) => {}
        Ok(Historical::CompactWithStatus { objects, status }) => {
            let _ = writeln!(out, "  category 00: COMPACT-TLV objects, then status indicator");
            compact_lines(out, objects.iter());
            status_line(out, status.lcs, status.sw);
        }
        Ok(Historical::Compact { objects, status: _ }) => {
            let _ = writeln!(out, "  category 80: COMPACT-TLV objects");
            compact_lines(out, objects.iter());
        }
        Ok(Historical::DirReference(r)) => {
            let _ = writeln!(out, "  category 10: DIR data reference {r:02X}");
        }
        Ok(Historical::Rfu { category, .. }) => {
            let _ = writeln!(out, "  category {category:02X}: reserved for future use");
        }
        Ok(Historical::Proprietary { category, .. }) => {
            let _ = writeln!(out, "  category {category:02X}: proprietary format");
        }
        Err(err) => {
            let _ = writeln!(out, "  not decodable: {err}");
        }
    }
}

fn compact_lines<'a>(out: &mut String, objects: impl Iterator<Item = compact::CompactTlv<'a>>) {
    for object in objects {
        let name = compact::tag_name(object.tag()).unwrap_or("unknown tag");
        let _ = writeln!(
            out,
            "    {:X} {name:<28} {}",
            object.tag(),
            hex::encode_spaced(object.value())
        );
    }
}

fn status_line(out: &mut String, lcs: Option<u8>, sw: Option<scard_iso7816::StatusWord>) {
    let lcs = lcs.map(|l| format!("LCS {l:02X}")).unwrap_or_default();
    let sw = sw.map(|s| format!("SW {s}")).unwrap_or_default();
    let _ = writeln!(out, "    status indicator             {lcs} {sw}");
}

fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| if b.is_ascii_graphic() || *b == b' ' { char::from(*b) } else { '.' })
        .collect()
}

fn summary(out: &mut String, atr: &Atr) {
    let _ = writeln!(out, "{:<12} {}", "Protocols", protocol_list(atr.protocols()));
    let fi = atr.fi().map_or_else(|| "RFU".to_owned(), |v| v.to_string());
    let di = atr.di().map_or_else(|| "RFU".to_owned(), |v| v.to_string());
    let origin = if atr.ta1().is_some() { "from TA1" } else { "default, no TA1" };
    let _ = writeln!(out, "{:<12} Fi = {fi}, Di = {di} ({origin})", "Rate");
    if let Some(t1) = atr.t1() {
        let edc = if t1.edc == EdcKind::Lrc { "LRC" } else { "CRC" };
        let _ = writeln!(
            out,
            "{:<12} IFSC = {}, BWI = {}, CWI = {}, EDC = {edc}",
            "T=1", t1.ifsc, t1.bwi, t1.cwi
        );
    }
}
