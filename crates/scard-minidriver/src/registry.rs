//! The profile registry: card families (a profile crate each) with their built-in card models,
//! plus the user's model files. A card is matched by ATR against the models; when none matches,
//! each family probes for its application, in registration order.

use scard_transport::CardTransport;

use crate::channel::CardChannel;
use crate::error::{CardError, Result};
use crate::model::{CardModel, ModelSet};
use crate::module::CardModule;

/// The model quirk saying its ATR does not identify the application (a multi-application
/// token, a virtual reader's generic ATR): the registry confirms the family by probing.
pub const SHARED_ATR: &str = "shared-atr";

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
        self.user.by_atr(atr).filter(known).or_else(|| self.builtin.by_atr(atr).filter(known))
    }

    fn generic(&self, family: &str) -> Option<&CardModel> {
        self.user.generic(family).or_else(|| self.builtin.generic(family))
    }

    /// The models an ATR names, at most one per registered family: [`ProfileRegistry::identify`]'s
    /// first, then the best match of each other family (most specific first).
    pub fn candidates(&self, atr: &[u8]) -> Vec<&CardModel> {
        let Some(first) = self.identify(atr) else { return Vec::new() };
        let mut best: Vec<(&CardModel, u32)> = Vec::new();
        for m in self.models() {
            if m.family == first.family || !self.families.iter().any(|f| f.name == m.family) {
                continue;
            }
            let Some(score) = m.match_atr(atr) else { continue };
            match best.iter_mut().find(|(b, _)| b.family == m.family) {
                Some(entry) if score > entry.1 => *entry = (m, score),
                Some(_) => {}
                None => best.push((m, score)),
            }
        }
        best.sort_by_key(|b| std::cmp::Reverse(b.1));
        std::iter::once(first).chain(best.into_iter().map(|(m, _)| m)).collect()
    }

    /// Opens a card: by ATR when a model names it (no probing of other applications), else by
    /// asking each family in turn. When the ATR is claimed by models of several families, or
    /// the model says its ATR is shared ([`SHARED_ATR`]: a multi-application token, or a
    /// virtual reader's generic ATR), the claiming families are probed in turn (the probe is
    /// the family's own SELECT, which the profile then does not repeat).
    pub fn open(&self, transport: Box<dyn CardTransport>) -> Result<Box<dyn CardModule>> {
        let mut channel = CardChannel::new(transport);
        let candidates = self.candidates(channel.atr());
        let mut probed = Vec::new();
        match candidates.as_slice() {
            [] => {}
            [model] if !model.has_quirk(SHARED_ATR) => {
                if let Some(family) = self.families.iter().find(|f| f.name == model.family) {
                    tracing::debug!(
                        "{}: card model {:?} from {}",
                        channel.reader(),
                        model.name,
                        model.source
                    );
                    return (family.open)(channel, (*model).clone());
                }
            }
            several => {
                for model in several {
                    let Some(family) = self.families.iter().find(|f| f.name == model.family) else {
                        continue;
                    };
                    probed.push(family.name);
                    if channel.in_transaction(|ch| (family.probe)(ch))? {
                        tracing::debug!(
                            "{}: card model {:?} from {} (shared ATR; the {} application answered)",
                            channel.reader(),
                            model.name,
                            model.source,
                            family.name
                        );
                        return (family.open)(channel, (*model).clone());
                    }
                }
            }
        }
        for family in &self.families {
            if probed.contains(&family.name) {
                continue;
            }
            let Some(model) = self.generic(family.name) else { continue };
            probed.push(family.name);
            let found = channel.in_transaction(|ch| (family.probe)(ch))?;
            if found {
                tracing::debug!(
                    "{}: no model for the ATR; the {} application answered",
                    channel.reader(),
                    family.name
                );
                return (family.open)(channel, model.clone());
            }
        }
        Err(CardError::UnknownCard {
            atr: scard_iso7816::hex::encode_upper(channel.atr()),
            probed: if probed.is_empty() { "no family".into() } else { probed.join(", ") },
        })
    }

    /// Opens a card as a given model (a vendor's `--profile FILE` in the conformance suite).
    pub fn open_as(
        &self,
        transport: Box<dyn CardTransport>,
        model: CardModel,
    ) -> Result<Box<dyn CardModule>> {
        let family = self.families.iter().find(|f| f.name == model.family).ok_or_else(|| {
            CardError::UnknownCard {
                atr: scard_iso7816::hex::encode_upper(transport.atr()),
                probed: format!("model family {:?} is not registered", model.family),
            }
        })?;
        (family.open)(CardChannel::new(transport), model)
    }
}
