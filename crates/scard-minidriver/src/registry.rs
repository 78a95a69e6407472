//! The profile registry: card families (a profile crate each) with their built-in card models,
//! plus the user's model files. A card is matched by ATR against the models; when none matches,
//! each family probes for its application, in registration order.

use scard_transport::CardTransport;

use crate::channel::CardChannel;
use crate::error::{CardError, Result};
use crate::model::{CardModel, ModelSet};
use crate::module::CardModule;

/// A card family: what a profile crate registers.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// The family name used in model files (`piv`, `openpgp`, `gids`).
    pub name: &'static str,
    /// Built-in model files: (file name, TOML text), usually `include_str!` of
    /// `card-profiles/<family>/cards/*.toml`.
    pub models: &'static [(&'static str, &'static str)],
    /// Whether the card holds this family's application (e.g. SELECT of its AID answers 9000).
    /// Runs inside a transaction; must not change the card.
    pub probe: fn(&mut CardChannel) -> Result<bool>,
    /// Opens the card with a model of this family.
    pub open: fn(CardChannel, CardModel) -> Result<Box<dyn CardModule>>,
}

/// Families and models.
#[derive(Debug, Default)]
pub struct ProfileRegistry {
    families: Vec<Family>,
    user: ModelSet,
    builtin: ModelSet,
}

impl ProfileRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a family and loads its built-in models.
    pub fn register(&mut self, family: Family) {
        for (file, text) in family.models {
            self.builtin.add_toml(&format!("builtin:{}/cards/{file}", family.name), text);
        }
        self.families.push(family);
    }

    /// Loads the user's model files from a directory (they win over built-in ones).
    pub fn load_user_models(&mut self, dir: &std::path::Path) {
        self.user.add_dir(dir);
    }

    /// Adds one user model from text (tests, `--profile FILE`).
    pub fn add_user_model(&mut self, source: &str, text: &str) {
        self.user.add_toml(source, text);
    }

    /// Every model: the user's first, then the built-in ones.
    pub fn models(&self) -> impl Iterator<Item = &CardModel> {
        self.user.models().iter().chain(self.builtin.models())
    }

    /// Model files that did not load (file, line, field).
    pub fn load_errors(&self) -> impl Iterator<Item = &CardError> {
        self.user.errors().iter().chain(self.builtin.errors())
    }

    /// The registered families.
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// The model an ATR names (a user model wins over a built-in one), if its family is
    /// registered.
    pub fn identify(&self, atr: &[u8]) -> Option<&CardModel> {
        let known = |m: &&CardModel| self.families.iter().any(|f| f.name == m.family);
        self.user
            .by_atr(atr)
            .filter(known)
            .or_else(|| self.builtin.by_atr(atr).filter(known))
    }

    fn generic(&self, family: &str) -> Option<&CardModel> {
        self.user.generic(family).or_else(|| self.builtin.generic(family))
    }

    /// Opens a card: by ATR when a model names it (no probing of other applications), else by
    /// asking each family in turn.
    pub fn open(&self, transport: Box<dyn CardTransport>) -> Result<Box<dyn CardModule>> {
        let mut channel = CardChannel::new(transport);
        if let Some(model) = self.identify(channel.atr()) {
            if let Some(family) = self.families.iter().find(|f| f.name == model.family) {
                tracing::debug!("{}: card model {:?} from {}", channel.reader(), model.name, model.source);
                return (family.open)(channel, model.clone());
            }
        }
        let mut probed = Vec::new();
        for family in &self.families {
            let Some(model) = self.generic(family.name) else { continue };
            probed.push(family.name);
            let found = channel.in_transaction(|ch| (family.probe)(ch))?;
            if found {
                tracing::debug!("{}: no model for the ATR; the {} application answered", channel.reader(), family.name);
                return (family.open)(channel, model.clone());
            }
        }
        Err(CardError::UnknownCard {
            atr: scard_iso7816::hex::encode_upper(channel.atr()),
            probed: if probed.is_empty() { "no family".into() } else { probed.join(", ") },
        })
    }

    /// Opens a card as a given model (a vendor's `--profile FILE` in the conformance suite).
    pub fn open_as(&self, transport: Box<dyn CardTransport>, model: CardModel) -> Result<Box<dyn CardModule>> {
        let family = self.families.iter().find(|f| f.name == model.family).ok_or_else(|| {
            CardError::UnknownCard {
                atr: scard_iso7816::hex::encode_upper(transport.atr()),
                probed: format!("model family {:?} is not registered", model.family),
            }
        })?;
        (family.open)(CardChannel::new(transport), model)
    }
}
