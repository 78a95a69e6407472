//! `sim:` readers: in-process simulated cards behind scard-transport's virtual-card backend,
//! for every program of the stack (the CLI, the key storage provider, the PKCS#11 module).
//!
//! `sim:<family>[:<state file>]` is a card of the family, created the first time its reader
//! is connected, from its state file when the name has one and the file exists; its state is
//! saved after every command that may change the card (a process that ends without closing
//! anything loses nothing) and when the card goes. `sim:hostile[:<seed>]` is the hostile card
//! of [`crate::hostile`] (seed 0 by default), which keeps no state.

use std::path::PathBuf;

use scard_transport::virtual_card::{VirtualBackend, VirtualCard};
use scard_transport::{ReaderName, TransportError};

use crate::{Card, Family, SimRng, state};

/// A `sim:` backend that creates its cards on first use.
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

    /// Saves after a command that may have changed the card.
    fn after(&self, command: &[u8]) {
        if !read_only(command) {
            self.save();
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
        self.after(command);
        answer
    }

    fn answer(&mut self, command: &[u8]) -> Option<Vec<u8>> {
        // The hostile card may not answer at all (a stall).
        let answer = self.card.answer(command);
        self.after(command);
        answer
    }

    fn flush(&mut self) {
        self.save();
    }
}

impl Drop for SimCard {
    fn drop(&mut self) {
        self.save();
    }
}

/// Opens the card behind a `sim:` name.
fn open_sim(name: &ReaderName) -> Result<Box<dyn VirtualCard>, TransportError> {
    let ReaderName::Sim { family, state } = name else {
        return Err(TransportError::InvalidName {
            name: name.to_string(),
            reason: "not a sim: name",
        });
    };
    if family == "hostile" {
        let seed = match state.as_deref().map(|s| s.to_str().map(str::parse::<u64>)) {
            None => 0,
            Some(Some(Ok(seed))) => seed,
            Some(_) => {
                return Err(TransportError::InvalidName {
                    name: name.to_string(),
                    reason: "sim:hostile:<seed> takes a number (0..2^64), not a state file",
                });
            }
        };
        let card = crate::hostile::HostileCard::new(seed);
        tracing::info!("sim:hostile:{seed}: {}", card.plan().describe());
        return Ok(Box::new(SimCard { card: Box::new(card), state: None }));
    }
    let family: Family = family.parse().map_err(|_| TransportError::InvalidName {
        name: name.to_string(),
        reason: "unknown card family (piv, openpgp, gids or hostile)",
    })?;
    let card =
        crate::open_card(family, state.as_deref(), SimRng::from_entropy()).map_err(|err| {
            TransportError::BackendUnavailable { backend: "sim", reason: err.to_string() }
        })?;
    Ok(Box::new(SimCard { card, state: state.clone() }))
}
