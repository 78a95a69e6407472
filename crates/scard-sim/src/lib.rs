//! Simulated smart cards for scard's tests and demo.
//!
//! Nothing in this field can be tested on hardware here, so every layer above the transport
//! is tested against these cards, and they must behave like real ones as judged by software
//! nobody here wrote (OpenSC, GnuPG, yubico-piv-tool). Each card is an APDU processor
//! ([`Card`]) with an ATR, power and reset handling, and a persistent state that can be saved
//! to a file and loaded back, so that a provisioned card survives a restart.
//!
//! - [`piv`]: NIST SP 800-73-4 PIV card application.
//! - [`openpgp`]: OpenPGP smart card application 3.4.
//! - [`gids`]: Microsoft Generic Identity Device Specification card.
//! - [`hostile`]: one of the above behind a seeded layer of faults (truncated, oversized and
//!   malformed answers, wrong status words, 61xx/6Cxx loops, wrong ATRs, stalls, resets).
//! - [`vpcd`]: attaches a card to pcscd through vsmartcard's vpcd reader driver.
//! - [`vscard`]: serves a card to QEMU's `ccid-card-passthru` (VSCard protocol), as a T=0
//!   card behind QEMU's `usb-ccid` reader.
//!
//! Private keys live only inside the card objects and are zeroized on drop. The state file
//! holds them in clear (it is the simulated card's memory): keep it out of anything that
//! matters.
#![forbid(unsafe_code)]

pub mod cert;
pub mod gids;
pub mod hostile;
pub mod io;
pub mod keys;
pub mod openpgp;
pub mod pin;
pub mod piv;
pub mod reader;
pub mod rng;
pub mod state;
pub mod vpcd;
pub mod vscard;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

pub use io::{Command, Reply};
pub use rng::SimRng;

/// Errors of the simulator (never of the simulated card: a card answers with status words).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The state file could not be read or written.
    #[error("state file {path}: {source}")]
    StateIo { path: String, source: std::io::Error },
    /// The state file is not a state of this card family, or is damaged.
    #[error("state file {path}: {reason}")]
    StateFormat { path: String, reason: String },
    /// A key in the state could not be decoded or generated.
    #[error("key: {0}")]
    Key(#[from] keys::KeyError),
    /// The vpcd connection failed.
    #[error("vpcd {addr}: {source}")]
    Vpcd { addr: String, source: std::io::Error },
    /// The vpcd peer broke the protocol.
    #[error("vpcd {addr}: protocol error: {reason}")]
    VpcdProtocol { addr: String, reason: &'static str },
    /// The VSCard connection (QEMU's ccid-card-passthru) failed.
    #[error("vscard {addr}: {source}")]
    Vscard { addr: String, source: std::io::Error },
    /// QEMU broke the VSCard protocol.
    #[error("vscard {addr}: protocol error: {reason}")]
    VscardProtocol { addr: String, reason: &'static str },
    /// QEMU refused a message (its Error answer with a code other than success).
    #[error("vscard {addr}: {what} refused with error code {code}")]
    VscardRefused { addr: String, what: &'static str, code: u32 },
    /// An unknown card family name.
    #[error("unknown card family {0:?} (expected piv, openpgp or gids)")]
    UnknownFamily(String),
}

/// The card families the simulator offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// NIST SP 800-73-4 PIV.
    Piv,
    /// OpenPGP card 3.4.
    OpenPgp,
    /// Microsoft GIDS 1.0.
    Gids,
}

impl Family {
    /// All families.
    pub const ALL: [Family; 3] = [Family::Piv, Family::OpenPgp, Family::Gids];

    /// `piv`, `openpgp` or `gids`.
    pub fn name(self) -> &'static str {
        match self {
            Family::Piv => "piv",
            Family::OpenPgp => "openpgp",
            Family::Gids => "gids",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Family {
    type Err = SimError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Family::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| SimError::UnknownFamily(s.to_owned()))
    }
}

/// A simulated card as a reader sees it: an ATR, power and reset, and an APDU processor.
pub trait Card: Send {
    /// The card family.
    fn family(&self) -> Family;

    /// The answer-to-reset.
    fn atr(&self) -> &[u8];

    /// Cold reset (power on): volatile state (selected application, verified PINs,
    /// authentication, pending responses) is cleared; persistent state stays.
    fn power_on(&mut self);

    /// Warm reset: as [`Card::power_on`] for these cards.
    fn reset(&mut self) {
        self.power_on();
    }

    /// Power off: volatile state is lost.
    fn power_off(&mut self) {
        self.power_on();
    }

    /// Processes one command APDU and returns the response APDU (data and SW1 SW2). Never
    /// panics, whatever the bytes.
    fn process(&mut self, command: &[u8]) -> Vec<u8>;

    /// Processes one command APDU as [`Card::process`] does, or returns `None` when the card
    /// does not answer at all (a stalled [`hostile`] card): the reader reports a timeout at
    /// its deadline, and a vpcd card sends no reply.
    fn answer(&mut self, command: &[u8]) -> Option<Vec<u8>> {
        Some(self.process(command))
    }

    /// The persistent state, for [`state::save`].
    fn save_state(&self) -> serde_json::Value;
}

/// Creates a fresh card of `family` (default PINs and keys, no key pairs), its keys drawn
/// from `rng`.
pub fn new_card(family: Family, rng: SimRng) -> Box<dyn Card> {
    match family {
        Family::Piv => Box::new(piv::PivCard::new(rng)),
        Family::OpenPgp => Box::new(openpgp::OpenPgpCard::new(rng)),
        Family::Gids => Box::new(gids::GidsCard::new(rng)),
    }
}

/// Opens a card of `family`: loaded from `state` when the file exists, fresh otherwise.
pub fn open_card(
    family: Family,
    state: Option<&Path>,
    rng: SimRng,
) -> Result<Box<dyn Card>, SimError> {
    match state {
        Some(path) if path.exists() => state::load(family, path, rng),
        _ => Ok(new_card(family, rng)),
    }
}
