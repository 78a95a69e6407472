//! Readers for every command: the registry over the backends, `scard readers` and
//! `scard info`.

use std::time::Duration;

use scard_iso7816::atr::Atr;
use scard_iso7816::hex;
use scard_transport::vpcd::VpcdBackend;
use scard_transport::{CardTransport, ReaderName, Registry, ShareMode, TransportError, group_name};
use serde::Serialize;

use crate::{EXIT_BAD_INPUT, EXIT_FAILURE, Outcome, to_json};

/// Options every card command takes.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ReaderArgs {
    /// The reader: sim:<piv|openpgp|gids>[:<state file>], sim:hostile:<seed> (a card with
    /// seeded faults), vpcd:<host>:<port>,
    /// pcsc:<name or glob>, ccid:<vid>:<pid>[:<serial>] or ccid:*; or group:<group>, the first
    /// reader with a card in that reader group (all, sim, vpcd, pcsc, ccid, or a group of the
    /// configuration file, whose patterns are in order of preference; its sim: members without
    /// wildcards are created). Default: the first reader with a card.
    #[arg(long, value_name = "READER")]
    pub(crate) reader: Option<String>,
    /// Seconds each exchange with the card may take.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub(crate) timeout: u64,
    /// Seconds a vpcd: reader waits for a virtual card to connect.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub(crate) wait: u64,
}

/// The registry for a command: the sim: backend always; a vpcd: backend when the reader
/// names one (it listens only while the command runs). With `--reader group:<group>`, the
/// group's members that are plain `sim:` names (no `*` or `?`) are created, as naming them
/// with `--reader` would.
pub(crate) fn registry(args: &ReaderArgs) -> Result<Registry, TransportError> {
    let mut registry = Registry::new();
    let config = crate::config::load().map_err(|reason| TransportError::BackendUnavailable {
        backend: "configuration",
        reason,
    })?;
    for (name, patterns) in config.groups {
        registry.define_group(&name, patterns)?;
    }
    registry.add(Box::new(scard_sim::reader::sim_backend()));
    let group = args.reader.as_deref().and_then(group_name);
    if let Some(group) = group {
        let members: Vec<String> = registry
            .group_patterns(group)
            .unwrap_or_default()
            .iter()
            .filter(|p| p.starts_with("sim:") && !p.contains(['*', '?']))
            .cloned()
            .collect();
        for member in members {
            // Connecting once creates the reader and its card; the card stays in it.
            registry.connect(Some(&member), ShareMode::Shared)?;
        }
    }
    if let Some(name) = args.reader.as_deref().filter(|_| group.is_none()) {
        if let ReaderName::Vpcd { host, port } = name.parse()? {
            registry.add(Box::new(
                VpcdBackend::listen(&host, port, Duration::from_secs(args.wait))?
                    .with_timeout(Duration::from_secs(args.timeout)),
            ));
        }
    }
    // PC/SC: pcsc-lite is loaded at run time; without it `scard readers` shows
    // "(PC/SC not available: ...)" and the other backends work as before.
    registry.add(Box::new(
        scard_pcsc::PcscBackend::new().with_timeout(Duration::from_secs(args.timeout)),
    ));
    // USB CCID readers through the vendored libusb; without USB (or without readers)
    // `scard readers` shows "(CCID not available: ...)" and the other backends work as before.
    registry.add(Box::new(
        scard_ccid::CcidBackend::system().with_timeout(Duration::from_secs(args.timeout)),
    ));
    Ok(registry)
}

/// Connects to the reader the arguments name.
pub(crate) fn connect(args: &ReaderArgs) -> Result<Box<dyn CardTransport>, TransportError> {
    let mut registry = registry(args)?;
    let mut transport = registry.connect(args.reader.as_deref(), ShareMode::Shared)?;
    transport.set_timeout(Duration::from_secs(args.timeout));
    Ok(transport)
}

/// Exit status for a transport error: bad names are bad input.
pub(crate) fn status_of(err: &TransportError) -> u8 {
    match err {
        TransportError::InvalidName { .. } | TransportError::UnknownReader { .. } => EXIT_BAD_INPUT,
        TransportError::BackendUnavailable { backend: "configuration", .. } => EXIT_BAD_INPUT,
        _ => EXIT_FAILURE,
    }
}

#[derive(Debug, Serialize)]
struct ReaderJson {
    name: String,
    card: bool,
    atr: Option<String>,
}

#[derive(Debug, Serialize)]
struct ReadersJson {
    readers: Vec<ReaderJson>,
    unavailable: Vec<String>,
}

/// `scard readers`.
pub(crate) fn readers(args: &ReaderArgs, group: &str, json: bool) -> Outcome {
    let mut registry = match registry(args) {
        Ok(r) => r,
        Err(err) => return Outcome::error(err.to_string(), status_of(&err)),
    };
    // A named sim: reader is created (and listed) by connecting to it once; a named vpcd:
    // reader waits up to --wait for its virtual card to connect (no card in time: listed
    // empty). The connection is held while the readers are listed, so a named ccid: reader
    // shows the ATR it read (listing alone does not power USB cards on). A group's sim:
    // members were created with the registry.
    let mut _held = None;
    if let Some(name) = args.reader.as_deref().filter(|n| group_name(n).is_none()) {
        match registry.connect(Some(name), ShareMode::Shared) {
            Ok(transport) => _held = Some(transport),
            Err(TransportError::NoCard { .. }) => {}
            Err(err) if name.starts_with("sim:") || name.starts_with("vpcd:") => {
                return Outcome::error(err.to_string(), status_of(&err));
            }
            Err(_) => {}
        }
    }
    let (list, unavailable) = match registry.readers_in(group) {
        Ok(found) => found,
        Err(err) => return Outcome::error(err.to_string(), EXIT_BAD_INPUT),
    };
    let report = ReadersJson {
        readers: list
            .iter()
            .map(|r| ReaderJson {
                name: r.name.clone(),
                card: r.has_card(),
                // A card whose ATR was not read (a USB card nobody here powered on): null.
                atr: r.known_atr().map(hex::encode_upper),
            })
            .collect(),
        unavailable: unavailable.iter().map(ToString::to_string).collect(),
    };
    if json {
        return to_json(&report, 0);
    }
    let mut text = String::new();
    if report.readers.is_empty() {
        text.push_str("no readers (name one with --reader sim:piv, vpcd:127.0.0.1:35963, ...)\n");
    }
    for r in &report.readers {
        match (&r.atr, r.card) {
            (Some(atr), _) => text.push_str(&format!("{}  card  ATR {atr}\n", r.name)),
            (None, true) => {
                text.push_str(&format!("{}  card  ATR unknown (not powered)\n", r.name))
            }
            (None, false) => text.push_str(&format!("{}  empty\n", r.name)),
        }
    }
    for u in &report.unavailable {
        text.push_str(&format!("({u})\n"));
    }
    Outcome { text, status: 0 }
}

#[derive(Debug, Serialize)]
struct InfoJson {
    reader: String,
    protocol: String,
    atr: String,
    protocols_offered: Vec<u8>,
    historical: String,
    atr_error: Option<String>,
    /// What the card's profile reports (no PIN needed); null when no profile knows the card.
    card: Option<crate::card_cmd::CardJson>,
    /// Why the card part is missing.
    card_error: Option<String>,
}

/// `scard info`: what the reader and the card's ATR say.
pub(crate) fn info(args: &ReaderArgs, json: bool) -> Outcome {
    let transport = match connect(args) {
        Ok(t) => t,
        Err(err) => return Outcome::error(err.to_string(), status_of(&err)),
    };
    let atr_bytes = transport.atr().to_vec();
    let atr = Atr::parse(&atr_bytes);
    let mut report = InfoJson {
        reader: transport.reader().to_owned(),
        protocol: format!("{:?}", transport.protocol()),
        atr: hex::encode_upper(&atr_bytes),
        protocols_offered: atr.as_ref().map(|a| a.protocols().to_vec()).unwrap_or_default(),
        historical: atr.as_ref().map(|a| hex::encode_upper(a.historical())).unwrap_or_default(),
        atr_error: atr.as_ref().err().map(ToString::to_string),
        card: None,
        card_error: None,
    };
    // The card section, through the profile registry (model by ATR, else by probing). A card
    // no profile knows is not a failure of `info`; a card that fails its profile is.
    let mut status = 0;
    match crate::profiles::registry().open(transport) {
        Ok(mut card) => match crate::card_cmd::card_report(card.as_mut()) {
            Ok(c) => report.card = Some(c),
            Err(err) => {
                status = crate::EXIT_FAILURE;
                report.card_error = Some(err.to_string());
            }
        },
        Err(err @ scard_minidriver::CardError::UnknownCard { .. }) => {
            report.card_error = Some(err.to_string());
        }
        Err(err) => {
            status = crate::EXIT_FAILURE;
            report.card_error = Some(err.to_string());
        }
    }
    if json {
        return to_json(&report, status);
    }
    let mut text = format!(
        "Reader       {}\nProtocol     {}\nATR          {}\n",
        report.reader,
        report.protocol,
        hex::encode_spaced(&atr_bytes)
    );
    match &atr {
        Ok(a) => {
            let offered: Vec<String> = a.protocols().iter().map(|t| format!("T={t}")).collect();
            text.push_str(&format!(
                "Offers       {}\nHistorical   {}\n",
                offered.join(", "),
                hex::encode_spaced(a.historical())
            ));
        }
        Err(err) => text.push_str(&format!("ATR error    {err}\n")),
    }
    match (&report.card, &report.card_error) {
        (Some(card), _) => text.push_str(&crate::card_cmd::card_text(card)),
        (None, Some(err)) if status == 0 => {
            text.push_str(&format!("Card model   unknown: {err}\n"))
        }
        (None, Some(err)) => {
            // What was read goes to standard output; the failure is one line on standard
            // error, naming what failed.
            use std::io::Write;
            let _ = writeln!(std::io::stdout().lock(), "{}", text.trim_end());
            return Outcome::error(format!("reading the card: {err}"), status);
        }
        (None, None) => {}
    }
    Outcome { text, status }
}
