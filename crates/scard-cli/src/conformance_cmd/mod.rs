//! `scard conformance`: the battery a card vendor runs against a card and its profile (card
//! model), modelled on the Windows minidriver certification tests. Every check reports pass,
//! fail or skip with its reason; the command exits 0 only when nothing failed.
//!
//! What it never does: drive a PIN below 2 tries left, send a PIN the card refused once
//! more, or write to the card without `--destructive` (and then it removes what it created).
//!
//! - [`session`]: the card under test (readers, model, counted connections, credentials),
//!   shared with `scard bench`;
//! - [`host`]: signatures verified, cryptograms made and ECDH computed on the host;
//! - [`keys`]: keys on the card, every padding of an operation tried on one, and the writes;
//! - [`checks`]: the checks, in the order they run.

mod checks;
pub(crate) mod keys;
pub(crate) mod session;

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use crate::card_cmd::outcome;
use crate::readers_cmd::ReaderArgs;
use crate::style::{self, Tone};
use crate::{EXIT_FAILURE, Outcome, to_json};

use session::{Session, SimFamily, Target};

#[derive(Debug, Args)]
pub(crate) struct ConformanceArgs {
    #[command(flatten)]
    reader: ReaderArgs,
    /// Test a fresh in-process simulated card instead of a reader's (its state lives in a
    /// temporary file for the run; default PINs and admin keys).
    #[arg(long, value_enum, conflicts_with = "reader")]
    sim: Option<SimFamily>,
    /// Test the card as this card model (TOML file) instead of the model the registry picks:
    /// the vendor's model under test.
    #[arg(long, value_name = "FILE")]
    profile: Option<PathBuf>,
    /// Print {"card": ..., "checks": [{"name", "status", "detail"}]}.
    #[arg(long)]
    json: bool,
    /// Also write to the card: generate keys, write certificates, change the PIN to itself,
    /// in free containers only, and remove everything created afterwards.
    #[arg(long)]
    destructive: bool,
    /// Read the user PIN from this environment variable (else: the simulated card's default,
    /// standard input when it is not a terminal, or a prompt).
    #[arg(long, value_name = "VAR")]
    pin_env: Option<String>,
    /// Read the admin credential from this environment variable: the PIV management key in
    /// hex, the OpenPGP admin PIN (PW3), the GIDS admin key in hex.
    #[arg(long, value_name = "VAR")]
    admin_env: Option<String>,
}

/// Result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    Pass,
    Fail,
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Check {
    name: String,
    status: Status,
    detail: String,
}

/// The card as the report names it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CardJson {
    reader: String,
    atr: String,
    model: String,
    family: String,
    model_source: String,
    card_id: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    card: Option<CardJson>,
    checks: Vec<Check>,
}

/// `scard conformance`.
pub(crate) fn run(args: &ConformanceArgs) -> Outcome {
    outcome((|| {
        let target = Target {
            reader: &args.reader,
            sim: args.sim,
            profile: args.profile.as_deref(),
            pin_env: args.pin_env.as_deref(),
            admin_env: args.admin_env.as_deref(),
        };
        let session = Session::new(&target)?;
        let (card, checks) = checks::run_all(session, args.destructive);
        let report = Report { card, checks };
        let failed = report.checks.iter().any(|c| c.status == Status::Fail);
        let status = if failed { EXIT_FAILURE } else { 0 };
        if args.json {
            return Ok(to_json(&report, status));
        }
        // The table goes to standard output whatever the verdict.
        Ok(Outcome { text: table(&report), status })
    })())
}

/// The report as a table.
fn table(report: &Report) -> String {
    let colour = style::stdout();
    let mut text = String::new();
    match &report.card {
        Some(card) => text.push_str(&format!(
            "Card     {} ({}) from {}\nReader   {}\nATR      {}\nCard id  {}\n\n",
            card.model,
            card.family,
            card.model_source,
            card.reader,
            card.atr,
            card.card_id.as_deref().unwrap_or("unknown"),
        )),
        None => text.push_str("Card     not opened\n\n"),
    }
    let width = report.checks.iter().map(|c| c.name.len()).max().unwrap_or(5).max(5);
    text.push_str(&format!("{:<width$}  {:<6} {}\n", "CHECK", "STATUS", "DETAIL"));
    for c in &report.checks {
        let tone = match c.status {
            Status::Pass => Tone::Good,
            Status::Fail => Tone::Bad,
            Status::Skip => Tone::Quiet,
        };
        let label = style::paint(&format!("{:<6}", c.status.label()), tone, colour);
        text.push_str(&format!("{:<width$}  {label} {}\n", c.name, c.detail));
    }
    let count = |s: Status| report.checks.iter().filter(|c| c.status == s).count();
    text.push_str(&format!(
        "\n{} checks: {} passed, {} failed, {} skipped\n",
        report.checks.len(),
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Skip)
    ));
    text
}
