//! (being written)

use crate::io::CardIo;
use crate::{Card, Family, SimRng};

/// (being written)
#[derive(Debug)]
pub struct PivCard {
    io: CardIo,
    #[allow(dead_code)]
    rng: SimRng,
}

impl PivCard {
    /// A fresh card.
    pub fn new(rng: SimRng) -> Self {
        Self { io: CardIo::new(true), rng }
    }

    /// Loads a saved card.
    pub fn from_state(_state: serde_json::Value, rng: SimRng) -> Result<Self, String> {
        Ok(Self::new(rng))
    }
}

impl Card for PivCard {
    fn family(&self) -> Family {
        Family::Piv
    }

    fn atr(&self) -> &[u8] {
        &[0x3B, 0x95, 0x13, 0x81, 0x01, 0x80, 0x73, 0xFF, 0x01, 0x00, 0x0B]
    }

    fn power_on(&mut self) {
        self.io.reset();
    }

    fn process(&mut self, command: &[u8]) -> Vec<u8> {
        self.io.process(command, |_| Err(scard_iso7816::StatusWord::INS_NOT_SUPPORTED))
    }

    fn save_state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}
