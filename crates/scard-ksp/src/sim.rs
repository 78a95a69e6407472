//! `sim:` readers (feature `sim`): in-process simulated cards of scard-sim, each created the
//! first time its reader is connected, from its state file when the name has one and the
//! file exists. The state is saved after every command that may change the card (so a
//! process that ends without closing the provider loses nothing), and when the card goes.

use std::path::PathBuf;

use scard_sim::{Card, Family, SimRng, state};
use scard_transport::virtual_card::{VirtualBackend, VirtualCard};
use scard_transport::{ReaderName, TransportError};

/// A `sim:` backend that creates `sim:<family>[:<state file>]` cards on first use.
pub fn sim_backend() -> VirtualBackend {
    VirtualBackend::with_factory(Box::new(open_sim))
}

/// A simulated card behind a `sim:` reader, saved to its state file.
struct SimCard {
    card: Box<dyn Card>,
    state: Option<PathBuf>,
}

impl SimCard {
    fn save(&self) {
        if let Some(path) = &self.state {
            if let Err(err) = state::save(self.card.as_ref(), path) {
                tracing::error!("saving the simulated card: {err}");
            }
        }
    }
}

/// Commands that never change a card's persistent state: SELECT, READ BINARY, GET DATA,
/// GET RESPONSE, MANAGE SECURITY ENVIRONMENT, GENERAL AUTHENTICATE (ISO/IEC 7816-4 §5.4.1).
fn read_only(command: &[u8]) -> bool {
    matches!(command.get(1), Some(0xA4 | 0xB0 | 0xB1 | 0xCA | 0xCB | 0xC0 | 0x22 | 0x87))
}

impl VirtualCard for SimCard {
    fn atr(&self) -> Vec<u8> {
        self.card.atr().to_vec()
    }

    fn power_on(&mut self) {
        self.card.power_on();
    }

    fn reset(&mut self) {
        self.card.reset();
    }

    fn power_off(&mut self) {
        self.card.power_off();
    }

    fn process(&mut self, command: &[u8]) -> Vec<u8> {
        let answer = self.card.process(command);
        if !read_only(command) {
            self.save();
        }
        answer
    }

    fn flush(&mut self) {
        self.save();
    }
}

/// Opens the card behind a `sim:` name (from its state file when it exists).
fn open_sim(name: &ReaderName) -> Result<Box<dyn VirtualCard>, TransportError> {
    let ReaderName::Sim { family, state } = name else {
        return Err(TransportError::InvalidName {
            name: name.to_string(),
            reason: "not a sim: name",
        });
    };
    let family: Family = family.parse().map_err(|_| TransportError::InvalidName {
        name: name.to_string(),
        reason: "unknown card family (piv, openpgp or gids)",
    })?;
    let card =
        scard_sim::open_card(family, state.as_deref(), SimRng::from_entropy()).map_err(|err| {
            TransportError::BackendUnavailable { backend: "sim", reason: err.to_string() }
        })?;
    Ok(Box::new(SimCard { card, state: state.clone() }))
}
