//! `scard sim`: attach a simulated card to pcscd through vsmartcard's vpcd reader.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use scard_iso7816::hex;
use scard_sim::{Family, SimRng, state, vpcd};

use crate::{EXIT_BAD_INPUT, EXIT_FAILURE, Outcome};

/// The card `scard sim` attaches: a family's card, or the hostile card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SimKind {
    /// A well-behaved card of a family.
    Card(Family),
    /// scard_sim::hostile: a family's card (chosen by the seed) behind seeded faults.
    Hostile,
}

impl std::str::FromStr for SimKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("hostile") {
            return Ok(SimKind::Hostile);
        }
        s.parse()
            .map(SimKind::Card)
            .map_err(|_| format!("unknown card {s:?} (expected piv, openpgp, gids or hostile)"))
    }
}

impl std::fmt::Display for SimKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimKind::Card(family) => family.fmt(f),
            SimKind::Hostile => f.write_str("hostile"),
        }
    }
}

/// Options of `scard sim`.
#[derive(Debug, clap::Args)]
pub(crate) struct SimArgs {
    /// The card: piv, openpgp, gids, or hostile (a card of the family seed % 3 = piv, openpgp,
    /// gids that answers with seeded faults: truncated, oversized and malformed responses,
    /// wrong status words, 61xx and 6Cxx loops, a wrong ATR, stalls, resets; --seed chooses).
    family: SimKind,
    /// vpcd to connect to, as HOST:PORT (35963 is "Virtual PCD 00 00", 35964 "... 00 01").
    #[arg(long, default_value = "127.0.0.1:35963", value_name = "HOST:PORT")]
    vpcd: String,
    /// Keep the card's state (keys, PINs, data objects) in FILE: loaded at start if it
    /// exists, saved on exit (Ctrl-C, SIGTERM, or vpcd going away).
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Seed the card's random number generator (reproducible keys and challenges); for the
    /// hostile card, the seed of its faults (random when not given, and printed).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Seconds to keep trying to reach vpcd.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    wait: u64,
    /// Serve the card to QEMU's ccid-card-passthru instead of vpcd: the VSCard protocol over
    /// the unix socket PATH or TCP HOST:PORT (QEMU's chardev). The card answers as a T=0 card,
    /// as QEMU's usb-ccid reader needs.
    #[arg(long, value_name = "PATH|HOST:PORT", conflicts_with = "vpcd")]
    vscard: Option<String>,
    /// With --vscard: remove the card (VSCard CardRemove) once no APDU came for MS
    /// milliseconds after the first one.
    #[arg(long, value_name = "MS", requires = "vscard")]
    remove_after_idle: Option<u64>,
}

pub(crate) fn run(args: &SimArgs) -> Outcome {
    let family = match args.family {
        SimKind::Card(family) => family,
        SimKind::Hostile => return run_hostile(args),
    };
    let rng = args.seed.map_or_else(SimRng::from_entropy, SimRng::from_seed);
    if let Some(path) = &args.state {
        if path.exists() {
            match state::family_of(path) {
                Ok(saved) if saved != family => {
                    return Outcome::error(
                        format!("{} holds a {saved} card, not a {family} card", path.display()),
                        EXIT_BAD_INPUT,
                    );
                }
                Ok(_) => {}
                Err(err) => return Outcome::error(err.to_string(), EXIT_BAD_INPUT),
            }
        }
    }
    let card = match scard_sim::open_card(family, args.state.as_deref(), rng) {
        Ok(card) => card,
        Err(err) => return Outcome::error(err.to_string(), EXIT_FAILURE),
    };
    serve(args, card)
}

/// `scard sim hostile`: the hostile card of `--seed` (random when not given) on vpcd or
/// QEMU; it keeps no state.
fn run_hostile(args: &SimArgs) -> Outcome {
    if args.state.is_some() {
        return Outcome::error(
            "the hostile card keeps no state: its seed makes it again (--seed)".to_owned(),
            EXIT_BAD_INPUT,
        );
    }
    let seed = args.seed.unwrap_or_else(|| rand_core::RngCore::next_u64(&mut rand_core::OsRng));
    let card = scard_sim::hostile::HostileCard::new(seed);
    eprintln!("scard sim: hostile card, seed {seed}: {}", card.plan().describe());
    serve(args, Box::new(card))
}

/// Serves `card` on vpcd (or QEMU with --vscard) until removed, saving its state at the end.
fn serve(args: &SimArgs, mut card: Box<dyn scard_sim::Card>) -> Outcome {
    // A new card's state file exists from the start, so a crash loses nothing provisioned
    // before the first save.
    if let Some(path) = &args.state {
        if let Err(err) = state::save(card.as_ref(), path) {
            return Outcome::error(err.to_string(), EXIT_FAILURE);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    if let Err(err) =
        ctrlc::set_handler(move || flag.store(true, std::sync::atomic::Ordering::SeqCst))
    {
        return Outcome::error(
            format!("cannot install the Ctrl-C/SIGTERM handler: {err}"),
            EXIT_FAILURE,
        );
    }
    if let Some(addr) = &args.vscard {
        return serve_vscard(args, addr, card.as_mut(), &stop);
    }
    let stream = match vpcd::connect(&args.vpcd, Duration::from_secs(args.wait)) {
        Ok(stream) => stream,
        Err(err) => {
            return Outcome::error(
                format!("{err} (is pcscd running with vsmartcard-vpcd installed?)"),
                EXIT_FAILURE,
            );
        }
    };
    eprintln!(
        "scard sim: {} card attached to vpcd at {} (ATR {}); Ctrl-C removes it",
        args.family,
        args.vpcd,
        hex::encode_spaced(card.atr())
    );
    let served = vpcd::serve(card.as_mut(), stream, &args.vpcd, &stop);
    let saved = match &args.state {
        Some(path) => state::save(card.as_ref(), path)
            .map(|()| format!(", state saved to {}", path.display())),
        None => Ok(String::new()),
    };
    match (served, saved) {
        (Ok((end, stats)), Ok(saved)) => {
            let how = match end {
                vpcd::End::Stopped => "card removed",
                vpcd::End::Disconnected => "vpcd closed the connection",
            };
            let mean =
                stats.processing.as_micros().checked_div(u128::from(stats.apdus)).unwrap_or(0);
            Outcome {
                text: format!(
                    "scard sim: {how}; {} APDUs, {mean} µs mean processing{saved}",
                    stats.apdus
                ),
                status: 0,
            }
        }
        (Err(err), _) | (_, Err(err)) => Outcome::error(err.to_string(), EXIT_FAILURE),
    }
}

/// `--vscard`: the card served to QEMU's ccid-card-passthru until QEMU goes away.
fn serve_vscard(
    args: &SimArgs,
    addr: &str,
    card: &mut dyn scard_sim::Card,
    stop: &AtomicBool,
) -> Outcome {
    use scard_sim::vscard;
    let stream = match vscard::connect(addr, Duration::from_secs(args.wait)) {
        Ok(stream) => stream,
        Err(err) => {
            return Outcome::error(
                format!("{err} (is QEMU running with -chardev socket,...,server=on?)"),
                EXIT_FAILURE,
            );
        }
    };
    let options = vscard::Options {
        reader_name: format!("scard sim {}", args.family),
        remove_after_idle: args.remove_after_idle.map(Duration::from_millis),
    };
    eprintln!(
        "scard sim: {} card served to QEMU at {addr} (T=0 ATR {})",
        args.family,
        hex::encode_spaced(&vscard::t0_atr(card.atr()))
    );
    let served = vscard::serve(card, stream, addr, &options, stop);
    let saved = match &args.state {
        Some(path) => {
            state::save(card, path).map(|()| format!(", state saved to {}", path.display()))
        }
        None => Ok(String::new()),
    };
    match (served, saved) {
        (Ok((end, stats)), Ok(saved)) => {
            let how = match end {
                vscard::End::Stopped => "card removed",
                vscard::End::Disconnected => "QEMU closed the connection",
            };
            let removed = if stats.removed { ", card removed when idle" } else { "" };
            Outcome {
                text: format!(
                    "scard sim: {how}; {} TPDUs (61xx {}, 6Cxx {}){removed}{saved}",
                    stats.apdus, stats.more_data, stats.wrong_length
                ),
                status: 0,
            }
        }
        (Err(err), _) | (_, Err(err)) => Outcome::error(err.to_string(), EXIT_FAILURE),
    }
}
