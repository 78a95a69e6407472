//! `Atr::parse` against pcsc-tools' `ATR_analysis` on real ATRs from pcsc-tools'
//! smartcard_list.txt: convention, protocols, Fi/Di, historical bytes, TCK and IFSC.
//!
//! The fixture `fixtures/atr_analysis.tsv` is written by `fixtures/generate-atr-analysis.sh`
//! (see there for the columns and the selection). Where ATR_analysis and ISO/IEC 7816-3
//! disagree, the ATR is listed in [`KNOWN_DISAGREEMENTS`] with the reason; the test fails both
//! for an unlisted disagreement and for a listed ATR that no longer disagrees that way.

// Test code: helpers outside #[test] functions may panic too (clippy.toml covers only those).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use scard_iso7816::Error;
use scard_iso7816::atr::{Atr, AtrField, Convention, TckStatus};
use scard_iso7816::hex;

const FIXTURE: &str = include_str!("fixtures/atr_analysis.tsv");

/// How `Atr::parse` departs from ATR_analysis for a listed ATR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disagreement {
    /// ATR_analysis does not check the 33-byte limit (ISO/IEC 7816-3 §8.2.1); we answer
    /// `AtrTooLong`.
    LongerThan33,
    /// Only T=0 is indicated, so TCK must be absent (§8.2.5), but ATR_analysis takes the byte
    /// after the K historical bytes as TCK; we answer `TrailingBytes` (1 byte).
    TckNotAllowed,
    /// A TDi indicates a protocol other than T=0, so TCK is mandatory (§8.2.5), but the ATR has
    /// exactly K bytes after the interface bytes; ATR_analysis reports no TCK and no error, we
    /// answer `AtrTruncated { missing: Tck }`.
    TckMissing,
}

/// ATRs (as in smartcard_list.txt) on which ATR_analysis and ISO/IEC 7816-3 disagree, with
/// the card as listed. Each is checked to disagree exactly this way.
///
/// TckNotAllowed: for 12 of the 13 ATR_analysis itself reports a WRONG CHECKSUM for the byte it
/// takes as TCK, i.e. it is not a TCK but an extra byte in the list entry; only the Alice Tv
/// entry happens to check (an XOR of 00 is a 1-in-256 chance).
/// TckMissing: the list entries lack the mandatory TCK (most likely cut off when recorded).
const KNOWN_DISAGREEMENTS: &[(&str, Disagreement, &str)] = &[
    ("3B6700FFC50000FFFFFFFF5D", Disagreement::TckNotAllowed, "Alice Tv italia"),
    ("3B02145011", Disagreement::TckNotAllowed, "Maste visa card"),
    ("3B101450", Disagreement::TckNotAllowed, "HSID6000"),
    ("3B230000364181", Disagreement::TckNotAllowed, "Schlumberger Payflex 4k SAM"),
    ("3B3F96008012009131C0640E4744FA72F741052F", Disagreement::TckNotAllowed, "Membership card"),
    ("3B6500002063CB680026", Disagreement::TckNotAllowed, "VISA Societe Generale, Oberthur CS"),
    ("3B6B0000000031C0643F680100079000", Disagreement::TckNotAllowed, "EMV (Bank)"),
    ("3B6D00000080318065B0893501F183009000", Disagreement::TckNotAllowed, "MasterCard (Bank)"),
    ("3B6F0000805A2811421010122B260CD45A829000", Disagreement::TckNotAllowed, "Navigo"),
    ("3B8B005275746F6B656E6C745344E3", Disagreement::TckNotAllowed, "Aktiv Rutoken Lite SD"),
    ("3B9F11406049524445544F204143532056352E3800", Disagreement::TckNotAllowed, "irdeto"),
    ("3BF81300FF108053430663010F900000", Disagreement::TckNotAllowed, "Affinity CUIA Debit"),
    ("3BFF95000150801C444E41535034323020526576533430F1", Disagreement::TckNotAllowed, "NC+"),
    ("3B8C8001502752318100000000007181", Disagreement::TckMissing, "Calypso (T=0, T=1)"),
    ("3B8D0180FBA000000397425446590401", Disagreement::TckMissing, "Microsoft Virtual Smart Card"),
    ("3BEE00008131804380318066B1A11101A0F683009000", Disagreement::TckMissing, "Optelio D72 FXR1"),
    ("3BF57100FFFE2400011E0F3339320103", Disagreement::TckMissing, "Mydo IC Card (T=14)"),
];

#[derive(Debug)]
struct Row<'a> {
    line: usize,
    hex: &'a str,
    atr: Vec<u8>,
    convention: &'a str,
    td_protocols: Vec<u8>,
    fi: &'a str,
    di: &'a str,
    historical: Option<Vec<u8>>,
    tck: &'a str,
    ifsc: &'a str,
    notes: &'a str,
}

fn rows() -> Vec<Row<'static>> {
    let mut rows = Vec::new();
    for (n, line) in FIXTURE.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 9, "fixture line {}: {line:?}", n + 1);
        let td_protocols = match cols[2] {
            "-" => Vec::new(),
            list => list.split(',').map(|t| t.parse().unwrap()).collect(),
        };
        rows.push(Row {
            line: n + 1,
            hex: cols[0],
            atr: hex::decode_lenient(cols[0]).unwrap(),
            convention: cols[1],
            td_protocols,
            fi: cols[3],
            di: cols[4],
            historical: (cols[5] != "-").then(|| hex::decode_lenient(cols[5]).unwrap()),
            tck: cols[6],
            ifsc: cols[7],
            notes: cols[8],
        });
    }
    rows
}

/// What ISO/IEC 7816-3 implies from ATR_analysis' TD list: TCK is present unless only T=0.
fn tck_required(row: &Row<'_>) -> bool {
    row.td_protocols.iter().any(|t| *t != 0)
}

fn opt<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "RFU".to_string(), |v| v.to_string())
}

/// How a fixture row compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Parsed, and every field agrees with ATR_analysis.
    FieldsAgree,
    /// ATR_analysis reports the ATR broken (or stops early) and `Atr::parse` rejects it the
    /// corresponding way.
    BothReject,
    /// A disagreement of a known kind.
    Known(Disagreement),
}

/// Compares one fixture row with `Atr::parse`; `Err(text)` for anything unexpected.
fn compare(row: &Row<'_>) -> Result<Outcome, String> {
    let parsed = Atr::parse(&row.atr);
    let len = row.atr.len();
    let unexpected = |what: &str| Err(format!("{what}: got {parsed:?}"));

    // Both reject, or ATR_analysis does not check the length at all.
    if len > 33 {
        return match parsed {
            Err(Error::AtrTooLong { len: l }) if l == len => Ok(if row.notes == "-" {
                Outcome::Known(Disagreement::LongerThan33)
            } else {
                Outcome::BothReject
            }),
            _ => unexpected("more than 33 bytes"),
        };
    }
    if row.convention == "undefined" {
        return match parsed {
            Err(Error::InvalidTs { .. }) => Ok(Outcome::BothReject),
            _ => unexpected("ATR_analysis: TS undefined"),
        };
    }
    if let Some(n) = row.notes.strip_prefix("truncated:") {
        // ATR_analysis: fewer than K bytes after the interface bytes.
        let missing: usize = n.parse().unwrap();
        return match parsed {
            Err(Error::AtrTruncated { missing: AtrField::Historical { index, count }, .. })
                if usize::from(count) - usize::from(index) + 1 == missing =>
            {
                Ok(Outcome::BothReject)
            }
            _ => unexpected(&format!("ATR_analysis: {missing} historical byte(s) missing")),
        };
    }
    if let Some(n) = row.notes.strip_prefix("too-long:") {
        // ATR_analysis counts every byte beyond K as extra; ISO takes the first one as TCK
        // when TCK is required.
        let extra: usize = n.parse().unwrap();
        let expected = extra - usize::from(tck_required(row));
        return match parsed {
            Err(Error::TrailingBytes { count, .. }) if count == expected => Ok(Outcome::BothReject),
            _ => unexpected(&format!("ATR_analysis: {extra} extra byte(s)")),
        };
    }
    if row.notes == "stopped" {
        // ATR_analysis stops as soon as the interface bytes use up the input: either the ATR
        // is cut there or it really ends there (K = 0, no TCK).
        return match parsed {
            Err(Error::AtrTruncated { .. }) => Ok(Outcome::BothReject),
            Ok(atr) if atr.k() == 0 && atr.tck() == TckStatus::Absent => Ok(Outcome::FieldsAgree),
            _ => unexpected("ATR_analysis stopped in the interface bytes"),
        };
    }
    assert_eq!(row.notes, "-", "line {}: unknown note", row.line);

    let atr = match parsed {
        Ok(atr) => atr,
        Err(Error::TrailingBytes { count: 1, .. }) if !tck_required(row) && row.tck != "absent" => {
            return Ok(Outcome::Known(Disagreement::TckNotAllowed));
        }
        Err(Error::AtrTruncated { missing: AtrField::Tck, .. })
            if tck_required(row) && row.tck == "absent" =>
        {
            return Ok(Outcome::Known(Disagreement::TckMissing));
        }
        Err(e) => return Err(format!("ATR_analysis found nothing wrong, we say {e}")),
    };

    let mut diffs = Vec::new();
    let convention = match atr.convention() {
        Convention::Direct => "direct",
        Convention::Inverse => "inverse",
    };
    if convention != row.convention {
        diffs.push(format!("convention {convention} vs {}", row.convention));
    }
    let tds: Vec<u8> = atr.interface_bytes().iter().filter_map(|g| g.protocol()).collect();
    if tds != row.td_protocols {
        diffs.push(format!("TD protocols {tds:?} vs {:?}", row.td_protocols));
    }
    // protocols(): the TD list without T=15 and repeats; T=0 when it is empty.
    let mut offered: Vec<u8> = Vec::new();
    for t in &row.td_protocols {
        if *t != 15 && !offered.contains(t) {
            offered.push(*t);
        }
    }
    if offered.is_empty() {
        offered.push(0);
    }
    if atr.protocols() != offered {
        diffs.push(format!("protocols {:?} vs {offered:?}", atr.protocols()));
    }
    let (fi, di) = (opt(atr.fi()), opt(atr.di()));
    if row.fi == "-" {
        // No TA1: ATR_analysis prints nothing; ISO defaults Fi = 372, Di = 1.
        if atr.ta1().is_some() || fi != "372" || di != "1" {
            diffs.push(format!("no TA1 expected, got TA1 {:?} Fi {fi} Di {di}", atr.ta1()));
        }
    } else if fi != row.fi || di != row.di {
        diffs.push(format!("Fi/Di {fi}/{di} vs {}/{}", row.fi, row.di));
    }
    if row.historical.as_deref() != Some(atr.historical()) {
        diffs.push(format!(
            "historical {} vs {:?}",
            hex::encode_upper(atr.historical()),
            row.historical
        ));
    }
    let tck = match atr.tck() {
        TckStatus::Absent => "absent",
        TckStatus::Correct => "correct",
        TckStatus::Wrong => "wrong",
    };
    if tck != row.tck {
        diffs.push(format!("TCK {tck} vs {}", row.tck));
    }
    let ifsc_ta = atr.first_ta_for(1).map_or_else(|| "-".to_string(), |v| v.to_string());
    if ifsc_ta != row.ifsc {
        diffs.push(format!("first TA for T=1 {ifsc_ta} vs IFSC {}", row.ifsc));
    }
    let ifsc_expected = match row.ifsc {
        "-" => atr.offers(1).then_some(32),
        n => Some(n.parse::<u16>().unwrap()),
    };
    if atr.ifsc() != ifsc_expected {
        diffs.push(format!("ifsc() {:?} vs {ifsc_expected:?}", atr.ifsc()));
    }
    // Decoding the historical bytes may fail, but never panics and never affects the above.
    let _ = atr.historical_info();
    if diffs.is_empty() { Ok(Outcome::FieldsAgree) } else { Err(diffs.join("; ")) }
}

#[test]
fn agrees_with_atr_analysis() {
    let rows = rows();
    assert!(rows.len() >= 400, "fixture has only {} rows", rows.len());
    let mut failures = Vec::new();
    let (mut fields_agree, mut both_reject) = (0, 0);
    let mut disagreed = Vec::new();
    for row in &rows {
        let known =
            KNOWN_DISAGREEMENTS.iter().find(|(hex, ..)| *hex == row.hex).map(|(_, k, _)| *k);
        match (compare(row), known) {
            (Ok(Outcome::FieldsAgree), None) => fields_agree += 1,
            (Ok(Outcome::BothReject), None) => both_reject += 1,
            (Ok(Outcome::Known(kind)), Some(k)) if kind == k => disagreed.push((row.hex, kind)),
            (Ok(Outcome::Known(kind)), None) => failures.push(format!(
                "line {}: {} disagrees ({kind:?}) and is not in KNOWN_DISAGREEMENTS",
                row.line, row.hex
            )),
            (Ok(got), Some(k)) => failures.push(format!(
                "line {}: {} is listed as {k:?} but compares as {got:?}",
                row.line, row.hex
            )),
            (Err(text), _) => failures.push(format!("line {}: {}: {text}", row.line, row.hex)),
        }
    }
    for (hex, ..) in KNOWN_DISAGREEMENTS {
        if !rows.iter().any(|r| r.hex == *hex) {
            failures.push(format!("{hex} is in KNOWN_DISAGREEMENTS but not in the fixture"));
        }
    }
    println!(
        "{} fixture ATRs: {fields_agree} parsed with every field agreeing, {both_reject} rejected \
         by both, {} known disagreements",
        rows.len(),
        disagreed.len()
    );
    assert!(fields_agree >= 400, "only {fields_agree} ATRs compared field by field");
    assert!(failures.is_empty(), "{} mismatch(es):\n{}", failures.len(), failures.join("\n"));
}

/// Runs ATR_analysis (through the generator script, so the same extraction is used) on a spread
/// of fixture ATRs and checks the rows are unchanged, i.e. the fixture is current.
#[test]
fn fixture_matches_installed_atr_analysis() {
    use std::process::Command;

    let have_atr_analysis = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| dir.join("ATR_analysis").is_file())
    });
    if !have_atr_analysis {
        println!("skipped: ATR_analysis (pcsc-tools) is not installed");
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/generate-atr-analysis.sh");
    let fixture_rows: Vec<&str> =
        FIXTURE.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).collect();
    let sample: Vec<&str> =
        fixture_rows.iter().step_by(fixture_rows.len() / 20 + 1).copied().collect();
    let atrs: Vec<&str> = sample.iter().map(|l| l.split('\t').next().unwrap()).collect();
    let output = match Command::new("bash").arg(script).arg("--rows").args(&atrs).output() {
        Ok(output) => output,
        Err(e) => {
            println!("skipped: cannot run bash: {e}");
            return;
        }
    };
    assert!(
        output.status.success(),
        "generator failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let live = String::from_utf8(output.stdout).unwrap();
    let live: Vec<&str> = live.lines().collect();
    assert_eq!(live, sample, "ATR_analysis output changed: regenerate the fixture");
    println!("{} fixture rows match the installed ATR_analysis", live.len());
}
