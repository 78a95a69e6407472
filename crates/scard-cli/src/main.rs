//! `scard`: the command-line face of the scard smart card stack.
//!
//! Exit status: 0 success, 2 bad input (a malformed ATR or APDU, a bad command line),
//! 1 any other failure.

// Doc comments of the clap types are the command's help text, written for a terminal
// (`sim:<family>[:<state file>]`), not for rustdoc.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod apdu_cmd;
mod atr_cmd;
mod bench_cmd;
mod card_cmd;
mod config;
mod conformance_cmd;
mod demo_cmd;
mod host;
mod logon_cmd;
mod policy;
mod profiles;
mod readers_cmd;
mod scinfo_cmd;
mod secrets;
mod sim_cmd;
mod style;
mod watch_cmd;

/// Exit status for input that could not be decoded.
const EXIT_BAD_INPUT: u8 = 2;
/// Exit status for every other failure.
const EXIT_FAILURE: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "scard",
    version,
    about = "Smart card middleware: decode, inspect and use smart cards",
    after_help = "Exit status: 0 success; 1 failure (a card or reader error, a wrong PIN, a failed \
                  check); 2 bad input (a malformed ATR, APDU, file, setting or command line).\n\
                  With --json, failures too are one JSON object on standard output (\"error\", \
                  \"exit_status\").\n\
                  Secrets (PINs, PUKs, admin keys) come from --pin-env / --admin-env variables, \
                  standard input or a prompt, never from the command line."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More log output on standard error: -v info, -vv debug, -vvv trace (RUST_LOG, when set,
    /// decides instead).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Show every APDU as `>> 00A40400... (SELECT)` / `<< [n bytes] 9000 (1.2 ms)` on standard
    /// error; PINs, PUKs, keys and authentication witnesses are shown as "[n byte(s) redacted]".
    #[arg(long, global = true)]
    trace_apdu: bool,
}

/// Logs go to standard error, without colour unless it is a terminal.
fn init_logging(verbose: u8, trace_apdu: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::new(spec),
        _ => {
            let level = match verbose {
                0 => "warn",
                1 => "info",
                2 => "debug",
                _ => "trace",
            };
            let apdus = if trace_apdu { ",scard_transport=trace" } else { "" };
            EnvFilter::new(format!("{level}{apdus}"))
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode an answer-to-reset (ISO/IEC 7816-3 §8) like a datasheet.
    Atr {
        /// The ATR in hex; spaces, colons and lower case are accepted, and it may span
        /// several arguments (`scard atr 3B 95 13 ...`).
        #[arg(required = true, num_args = 1..)]
        hex: Vec<String>,
        /// Print one JSON object instead of the datasheet.
        #[arg(long)]
        json: bool,
    },
    /// Decode a command APDU (ISO/IEC 7816-3 §12.1, 7816-4 §5.1) into its case and fields.
    Apdu {
        /// The command APDU in hex; spaces, colons and lower case are accepted.
        #[arg(required = true, num_args = 1..)]
        hex: Vec<String>,
        /// Print one JSON object instead of the field list.
        #[arg(long)]
        json: bool,
    },
    /// Attach a simulated card (PIV, OpenPGP, GIDS, or the hostile card) to pcscd through
    /// vsmartcard's vpcd.
    Sim(sim_cmd::SimArgs),
    /// List the readers of every backend, with card presence and ATR.
    Readers {
        #[command(flatten)]
        reader: readers_cmd::ReaderArgs,
        /// Only the readers of this group: all, sim, vpcd, pcsc, ccid, or a group of the
        /// configuration file ([groups] name = ["glob", ...] in ~/.config/scard/config.toml),
        /// listed in the group's order of preference.
        #[arg(long, value_name = "GROUP", default_value = "all")]
        group: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Connect to a card and show the reader, protocol and ATR (--reader names the reader, or
    /// group:<group> the first reader with a card in a reader group).
    Info {
        #[command(flatten)]
        reader: readers_cmd::ReaderArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Walk the whole path on a card: reader, card model, PINs, key generation, a
    /// certificate, a signature verified on the host, decryption, ECDH and logon eligibility
    /// (a simulated card in this process unless --reader names a real one).
    Demo(demo_cmd::DemoArgs),
    /// Run the conformance battery on a card and its profile (card model): pass, fail or skip
    /// per check, exit 0 only when nothing failed.
    Conformance(conformance_cmd::ConformanceArgs),
    /// Measure latency (median, p95), APDUs and bytes of the usual card operations.
    Bench(bench_cmd::BenchArgs),
    /// Like certutil -scinfo: every reader and card, the ATR decoded, the card model, every
    /// container with its certificate, a test signature and decryption per key checked on the
    /// host (PIN asked once per card), the logon verdict per certificate, what failed and why.
    Scinfo(scinfo_cmd::ScinfoArgs),
    /// Verify, change or unblock a PIN.
    #[command(subcommand)]
    Pin(card_cmd::PinCommand),
    /// Generate a key pair on the card in a container (authenticates as admin).
    Keygen(card_cmd::KeygenArgs),
    /// Import, export or delete a container's certificate.
    #[command(subcommand)]
    Cert(card_cmd::CertCommand),
    /// Sign data with a container's key (the data is hashed on the host).
    Sign(card_cmd::SignArgs),
    /// Decrypt a cryptogram with a container's RSA key.
    Decrypt(card_cmd::DecryptArgs),
    /// ECDH: agree a shared secret with a container's EC key and a peer's public key.
    Agree(card_cmd::AgreeArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) of scard and its commands.
    Man,
    /// Check certificate files for smart card logon the way Windows does (one result per
    /// file; exit 0 when every file was processed, 1 when one could not be read).
    LogonCheck(logon_cmd::CheckArgs),
    /// Which certificates of a card (described in a JSON file) logon would list.
    LogonEnumerate(logon_cmd::EnumerateArgs),
    /// Which certificates of a card logon would list (the card in a reader).
    Certs(logon_cmd::CertsArgs),
    /// Show every logon and propagation setting, its value and where it came from.
    Policy(policy::PolicyCmdArgs),
    /// The certificate propagation service: propagate card certificates while the card is
    /// present, and act when it is removed (lock, log off, a command).
    Watch(watch_cmd::WatchArgs),
}

/// The outcome of a command: what to print and how to exit. A non-zero status with human
/// (non-JSON) output is an error message and goes to standard error; JSON always goes to
/// standard output, with its `error` field set on failure.
struct Outcome {
    text: String,
    status: u8,
}

impl Outcome {
    fn error(message: String, status: u8) -> Self {
        Self { text: format!("error: {message}"), status }
    }

    fn is_error_message(&self) -> bool {
        self.status != 0 && self.text.starts_with("error: ")
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.trace_apdu);
    let outcome = match &cli.command {
        Command::Atr { hex, json } => atr_cmd::run(&hex.join(" "), *json),
        Command::Apdu { hex, json } => apdu_cmd::run(&hex.join(" "), *json),
        Command::Sim(args) => sim_cmd::run(args),
        Command::Readers { reader, group, json } => readers_cmd::readers(reader, group, *json),
        Command::Info { reader, json } => readers_cmd::info(reader, *json),
        Command::Demo(args) => demo_cmd::run(args),
        Command::Conformance(args) => conformance_cmd::run(args),
        Command::Bench(args) => bench_cmd::run(args),
        Command::Scinfo(args) => scinfo_cmd::run(args),
        Command::Pin(command) => card_cmd::pin(command),
        Command::Keygen(args) => card_cmd::keygen(args),
        Command::Cert(command) => card_cmd::cert(command),
        Command::Sign(args) => card_cmd::sign(args),
        Command::Decrypt(args) => card_cmd::decrypt(args),
        Command::Agree(args) => card_cmd::agree(args),
        Command::Completions { shell } => completions(*shell),
        Command::Man => man_page(),
        Command::LogonCheck(args) => logon_cmd::check(args),
        Command::LogonEnumerate(args) => logon_cmd::enumerate_file(args),
        Command::Certs(args) => logon_cmd::certs(args),
        Command::Policy(args) => policy::run(args),
        Command::Watch(args) => watch_cmd::run(args),
    };
    let written = if outcome.text.trim_end().is_empty() {
        // Nothing to say (e.g. `watch --events` printed its JSON lines as it went).
        Ok(())
    } else if outcome.is_error_message() {
        let text = outcome.text.trim_end();
        let message = text.strip_prefix("error: ").unwrap_or(text);
        let label = style::paint("error:", style::Tone::Bad, style::stderr());
        writeln!(std::io::stderr().lock(), "{label} {message}")
    } else {
        writeln!(std::io::stdout().lock(), "{}", outcome.text.trim_end())
    };
    match written {
        Ok(()) => ExitCode::from(outcome.status),
        Err(_) => ExitCode::from(EXIT_FAILURE),
    }
}

/// A completion script for `shell`, generated from the command definitions.
fn completions(shell: clap_complete::Shell) -> Outcome {
    let mut out = Vec::new();
    clap_complete::generate(
        shell,
        &mut <Cli as clap::CommandFactory>::command(),
        "scard",
        &mut out,
    );
    Outcome { text: String::from_utf8_lossy(&out).into_owned(), status: 0 }
}

/// The man page of `scard` with a section per command, generated from the command definitions.
fn man_page() -> Outcome {
    let command = <Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    let rendered = clap_mangen::Man::new(command.clone()).render(&mut out).and_then(|()| {
        for sub in command.get_subcommands() {
            let name = format!("scard-{}", sub.get_name());
            let page = sub.clone().name(name.clone()).bin_name(name);
            clap_mangen::Man::new(page).render(&mut out)?;
        }
        Ok(())
    });
    match rendered {
        Ok(()) => Outcome { text: String::from_utf8_lossy(&out).into_owned(), status: 0 },
        Err(err) => Outcome::error(format!("writing the man page: {err}"), EXIT_FAILURE),
    }
}

/// Serializes a JSON report; serialization of these plain structs cannot fail, but if it
/// ever did the user gets a message and exit status 1, not a panic.
fn to_json<T: serde::Serialize>(value: &T, status: u8) -> Outcome {
    match serde_json::to_string_pretty(value) {
        Ok(text) => Outcome { text, status },
        Err(err) => {
            Outcome { text: format!("error: cannot write JSON: {err}"), status: EXIT_FAILURE }
        }
    }
}
