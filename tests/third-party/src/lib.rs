//! Glue that runs a trussed card application (Nitrokey's `piv-authenticator` or `opcard`) as a
//! virtual card on a vpcd port, for scard's interop tests. The applications are theirs; this
//! crate only wires them up:
//!
//! - [`platform`]: trussed's service on a software platform: the virtual storage of
//!   `trussed::virt` (RAM, or files so the card survives a restart), OS entropy, and syscalls
//!   processed inline on the calling thread (no service thread, no polling delay);
//! - [`dispatch`]: the trussed backends the applications need (PINs, RSA, chunked files, key
//!   wrapping, HPKE) and the routing of requests to them;
//! - [`vpcd`]: the card side of vsmartcard's vpcd protocol, over TCP;
//! - `apdu-dispatch` (the Nitrokey 3 firmware's own dispatcher) between the two: selection by
//!   AID, command chaining, `61xx` response chaining and GET RESPONSE.
//!
//! A power-off or reset from the reader is a cold boot: the application, its trussed client
//! and the service are dropped and built again on the same storage, so volatile state (PIN
//! verified, selected application) is gone, as on a real card.

#![forbid(unsafe_code)]

pub mod dispatch;
pub mod platform;
pub mod vpcd;

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use apdu_dispatch::App;
use apdu_dispatch::dispatch::ApduDispatch;
use apdu_dispatch::interchanges::{Channel, Data};

pub use platform::CardClient;

/// The ATR both applications are presented with (vpicc's default; ISO/IEC 7816-3: T=1, five
/// historical bytes "80 73 FF 01 00": card capabilities).
pub const ATR: [u8; 11] = [0x3B, 0x95, 0x13, 0x81, 0x01, 0x80, 0x73, 0xFF, 0x01, 0x00, 0x0B];

/// A card application the glue can run.
pub trait Applet {
    /// What the card is, for messages: crate name and version.
    const NAME: &'static str;
    /// The trussed client id: the application's directory in the storage.
    const CLIENT_ID: &'static str;
    /// Whether the program takes `--serial HEX8` (the serial number in the card's AID).
    const SERIAL: bool = false;

    /// Builds the application on `client` and hands it to `serve`, which runs it until the
    /// reader powers the card off or resets it, or the connection ends.
    fn serve(
        &self,
        client: CardClient<'_>,
        serve: &mut dyn FnMut(&mut dyn App) -> io::Result<End>,
    ) -> io::Result<End>;
}

/// Why a card session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Power off or reset: boot again on the same connection.
    Reset,
    /// The reader closed the connection: the card was removed.
    Closed,
}

/// Command-line options shared by both programs.
#[derive(Debug, Clone)]
pub struct Args {
    /// Where the vpcd-speaking listener is.
    pub vpcd: String,
    /// How long to keep trying to connect (the first time, and after each disconnection).
    pub wait: Duration,
    /// Where the internal and external storage are kept; RAM when absent.
    pub state: Option<PathBuf>,
    /// Exit when the first connection ends, instead of waiting for the next listener.
    pub once: bool,
    /// Print every APDU to stderr (PINs blanked).
    pub trace: bool,
    /// The serial number in the card's application identifier (opcard).
    pub serial: Option<[u8; 4]>,
}

const USAGE: &str = "\
options:
  --vpcd HOST:PORT   vpcd listener to connect to (default 127.0.0.1:35963)
  --wait SECONDS     keep trying to connect this long, first and after each disconnection
                     (default 10); exit when no listener shows up
  --state DIR        keep the card's storage in DIR/internal.bin and DIR/external.bin (the
                     card survives a restart); default: RAM
  --once             exit when the first connection ends
  --trace            print every APDU to stderr (VERIFY/CHANGE/RESET RETRY data blanked)";

impl Args {
    /// Parses the program's arguments; `serial` says whether `--serial HEX8` is accepted.
    pub fn parse(args: impl IntoIterator<Item = String>, serial: bool) -> Result<Self, String> {
        let mut out = Args {
            vpcd: "127.0.0.1:35963".to_owned(),
            wait: Duration::from_secs(10),
            state: None,
            once: false,
            trace: false,
            serial: None,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
            match arg.as_str() {
                "--vpcd" => out.vpcd = value("--vpcd")?,
                "--wait" => {
                    let v = value("--wait")?;
                    let secs: f64 = v.parse().map_err(|_| format!("--wait {v}: not a number"))?;
                    out.wait = Duration::try_from_secs_f64(secs)
                        .map_err(|_| format!("--wait {v}: not a duration"))?;
                }
                "--state" => out.state = Some(PathBuf::from(value("--state")?)),
                "--once" => out.once = true,
                "--trace" => out.trace = true,
                "--serial" if serial => {
                    let v = value("--serial")?;
                    let n = u32::from_str_radix(&v, 16)
                        .ok()
                        .filter(|_| v.len() == 8)
                        .ok_or_else(|| format!("--serial {v}: 8 hex digits expected"))?;
                    out.serial = Some(n.to_be_bytes());
                }
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument {other}")),
            }
        }
        Ok(out)
    }
}

/// The whole program: parse the arguments, open the storage, and serve vpcd connections.
pub fn main<A: Applet>(applet: A) -> ExitCode {
    let program = std::env::args().next().unwrap_or_else(|| A::CLIENT_ID.to_owned());
    let serial_help = if A::SERIAL {
        "\n  --serial HEX8      serial number in the card's AID (default 00000000)"
    } else {
        ""
    };
    let args = match Args::parse(std::env::args().skip(1), A::SERIAL) {
        Ok(args) => args,
        Err(err) => {
            if !err.is_empty() {
                eprintln!("{program}: {err}");
            }
            eprintln!(
                "{program}: {} as a virtual card on a vpcd port\n{USAGE}{serial_help}",
                A::NAME
            );
            return ExitCode::from(if err.is_empty() { 0 } else { 2 });
        }
    };
    match run(&applet, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{program}: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Serves vpcd connections until none comes within `--wait` (or, with `--once`, until the
/// first one ends).
pub fn run<A: Applet>(applet: &A, args: &Args) -> Result<(), String> {
    let mut store = platform::store_config(args.state.as_deref())?;
    let where_ = match &args.state {
        Some(dir) => format!("storage in {}", dir.display()),
        None => "storage in RAM".to_owned(),
    };
    store.with_store(|store| {
        let mut connected_once = false;
        loop {
            let Some(mut conn) = vpcd::Connection::connect(&args.vpcd, args.wait)? else {
                return if connected_once {
                    eprintln!("{}: no vpcd listener at {} any more: exiting", A::NAME, args.vpcd);
                    Ok(())
                } else {
                    Err(format!("no vpcd listener at {} within {:?}", args.vpcd, args.wait))
                };
            };
            connected_once = true;
            eprintln!("{}: connected to vpcd {} ({where_})", A::NAME, conn.peer());
            loop {
                match boot(applet, store, &mut conn, args.trace) {
                    Ok(End::Reset) => continue,
                    Ok(End::Closed) => break,
                    Err(err) => {
                        eprintln!("{}: connection to {} lost: {err}", A::NAME, conn.peer());
                        break;
                    }
                }
            }
            eprintln!("{}: disconnected from {}", A::NAME, conn.peer());
            if args.once {
                return Ok(());
            }
        }
    })
}

/// One power cycle: a fresh service, client and application on the same storage.
fn boot<A: Applet>(
    applet: &A,
    store: trussed::virt::Store<'_>,
    conn: &mut vpcd::Connection,
    trace: bool,
) -> io::Result<End> {
    platform::with_client(store, A::CLIENT_ID, |client| {
        applet.serve(client, &mut |app| serve_apdus(conn, app, trace))
    })
}

/// Answers the reader until it powers the card off, resets it or goes away.
fn serve_apdus(conn: &mut vpcd::Connection, app: &mut dyn App, trace: bool) -> io::Result<End> {
    let contact = Channel::new();
    let contactless = Channel::new();
    let (mut requester, contact_responder) = contact.split().ok_or_else(|| other("channel"))?;
    let (_unused, contactless_responder) = contactless.split().ok_or_else(|| other("channel"))?;
    let mut dispatch = ApduDispatch::new(contact_responder, contactless_responder);
    loop {
        let Some(frame) = conn.read_frame()? else { return Ok(End::Closed) };
        match frame.as_slice() {
            // A zero-length frame means nothing to a card; ignore it.
            [] => {}
            [vpcd::POWER_OFF] | [vpcd::RESET] => return Ok(End::Reset),
            [vpcd::POWER_ON] => {}
            [vpcd::GET_ATR] => conn.write_frame(&ATR)?,
            [other] => eprintln!("ignoring unknown vpcd control byte {other:02X}"),
            apdu => {
                let started = Instant::now();
                let response = transmit(&mut requester, &mut dispatch, app, apdu);
                if trace {
                    eprintln!(">> {}", trace_command(apdu));
                    eprintln!("<< {} ({} us)", hex(&response), started.elapsed().as_micros());
                }
                conn.write_frame(&response)?;
            }
        }
    }
}

/// One APDU through apdu-dispatch to the application; the dispatcher's own answer when the
/// APDU does not fit its 3072-byte buffer is what the firmware's CCID layer would give: 6700.
fn transmit(
    requester: &mut apdu_dispatch::interchanges::Requester<'_>,
    dispatch: &mut ApduDispatch<'_>,
    app: &mut dyn App,
    apdu: &[u8],
) -> Vec<u8> {
    let Ok(data) = Data::from_slice(apdu) else { return vec![0x67, 0x00] };
    if requester.request(data).is_err() {
        return vec![0x6F, 0x00];
    }
    // The applications answer synchronously: one poll routes the APDU and collects the
    // answer; a few more are a guard, not a wait.
    for _ in 0..4 {
        let mut apps: [&mut dyn App; 1] = [&mut *app];
        if dispatch.poll(&mut apps).is_some() {
            break;
        }
    }
    match requester.take_response() {
        Some(response) => response.to_vec(),
        None => {
            let _ = requester.cancel();
            vec![0x6F, 0x00]
        }
    }
}

fn other(what: &str) -> io::Error {
    io::Error::other(format!("{what} already in use"))
}

/// Uppercase hex with spaces.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{b:02X}");
    }
    out
}

/// A command APDU for the trace, with the data of VERIFY (20), CHANGE REFERENCE DATA (24) and
/// RESET RETRY COUNTER (2C) blanked.
fn trace_command(apdu: &[u8]) -> String {
    match apdu {
        [_, 0x20 | 0x24 | 0x2C, _, _, rest @ ..] if !rest.is_empty() => {
            format!("{} [{} bytes blanked]", hex(&apdu[..4]), rest.len())
        }
        _ => hex(apdu),
    }
}

/// The address the card connects to, resolved.
pub fn resolve(addr: &str) -> Result<Vec<SocketAddr>, String> {
    use std::net::ToSocketAddrs as _;
    addr.to_socket_addrs()
        .map(|a| a.collect())
        .map_err(|e| format!("--vpcd {addr}: {e} (HOST:PORT expected)"))
}
