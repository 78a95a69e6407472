//! The profile registry: card families (a profile crate each) with their built-in card models,
//! plus the user's model files. A card is matched by ATR against the models; when none matches,
//! each family probes for its application, in registration order.

use scard_transport::CardTransport;

use crate::cache::ObjectStore;
use crate::channel::CardChannel;
use crate::error::{CardError, Result};
use crate::model::{AtrMatch, CardModel, ModelSet};
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
    /// Where profiles keep public card objects across processes.
    store: Option<ObjectStore>,
}

impl ProfileRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a family and loads its built-in models.
    pub fn register(&mut self, family: Family) {
        for (file, text) in family.models {
            self.builtin.add_builtin(family.name, file, text);
        }
        self.families.push(family);
    }

    /// Lets the profiles of the cards opened from now on keep public card objects
    /// (certificates, public keys) across processes in `dir` (the certificate cache's
    /// directory; `None`: in the process only).
    pub fn set_cache_dir(&mut self, dir: Option<std::path::PathBuf>) {
        self.store = dir.map(ObjectStore::new);
    }

    /// A channel over `transport` with this registry's object store.
    fn channel(&self, transport: Box<dyn CardTransport>) -> CardChannel {
        let mut channel = CardChannel::new(transport);
        channel.set_object_store(self.store.clone());
        channel
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
        self.user.models().chain(self.builtin.models())
    }

    /// Model files that did not load (file, line, field). Built-in files are parsed when
    /// first needed; this parses them all.
    pub fn load_errors(&self) -> impl Iterator<Item = &CardError> {
        self.user.errors().chain(self.builtin.errors())
    }

    /// The user's model files that did not load (parses no built-in file).
    pub fn user_load_errors(&self) -> impl Iterator<Item = &CardError> {
        self.user.errors()
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
        let Some((first, others)) = self.candidate_matches(atr) else { return Vec::new() };
        std::iter::once(first).chain(others.iter().filter_map(AtrMatch::model)).collect()
    }

    /// [`ProfileRegistry::candidates`]: the first model, and the best match of each other
    /// family, not parsed yet (most specific first).
    fn candidate_matches(&self, atr: &[u8]) -> Option<(&CardModel, Vec<AtrMatch<'_>>)> {
        let first = self.identify(atr)?;
        let mut best: Vec<AtrMatch<'_>> = Vec::new();
        for m in self.user.matches(atr).into_iter().chain(self.builtin.matches(atr)) {
            if m.family == first.family || !self.families.iter().any(|f| f.name == m.family) {
                continue;
            }
            match best.iter_mut().find(|b| b.family == m.family) {
                Some(entry) if m.score > entry.score => *entry = m,
                Some(_) => {}
                None => best.push(m),
            }
        }
        best.sort_by_key(|b| std::cmp::Reverse(b.score));
        Some((first, best))
    }

    /// The built-in model files whose quick look (which picks the file to parse for an ATR)
    /// disagrees with the parsed file: for a test that every built-in file is read right.
    pub fn builtin_hint_mismatches(&self) -> Vec<String> {
        self.builtin.hint_mismatches()
    }

    /// Opens a card: by ATR when a model names it (no probing of other applications), else by
    /// asking each family in turn. When the ATR is claimed by models of several families, or
    /// the model says its ATR is shared ([`SHARED_ATR`]: a multi-application token, or a
    /// virtual reader's generic ATR), the claiming families are probed in turn (the probe is
    /// the family's own SELECT, which the profile then does not repeat).
    pub fn open(&self, transport: Box<dyn CardTransport>) -> Result<Box<dyn CardModule>> {
        let mut channel = self.channel(transport);
        let atr = channel.atr().to_vec();
        let mut probed = Vec::new();
        // The other families' models are parsed only when their turn comes.
        match self.candidate_matches(&atr) {
            None => {}
            Some((model, others)) if others.is_empty() && !model.has_quirk(SHARED_ATR) => {
                if let Some(family) = self.families.iter().find(|f| f.name == model.family) {
                    tracing::debug!(
                        "{}: card model {:?} from {}",
                        channel.reader(),
                        model.name,
                        model.source
                    );
                    return (family.open)(channel, model.clone());
                }
            }
            Some((first, others)) => {
                // (family, model parsed when its turn comes)
                let mut several: Vec<(&str, Option<&AtrMatch<'_>>)> =
                    std::iter::once((first.family.as_str(), None))
                        .chain(others.iter().map(|m| (m.family, Some(m))))
                        .collect();
                // The family that answered last time on a card with this ATR is asked first
                // (its SELECT decides; a card of another family costs that one SELECT).
                let answered = self.store.as_ref().and_then(|s| s.atr_family(&atr));
                if let Some(pos) =
                    answered.and_then(|f| several.iter().position(|(family, _)| *family == f))
                {
                    let hinted = several.remove(pos);
                    several.insert(0, hinted);
                }
                let models = several.into_iter().map(|(_, m)| match m {
                    None => Some(first),
                    Some(m) => m.model(),
                });
                for model in models.flatten() {
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
                        if let Some(store) = &self.store {
                            if let Err(err) = store.set_atr_family(&atr, family.name) {
                                tracing::debug!("ATR family hint: {err}");
                            }
                        }
                        return (family.open)(channel, model.clone());
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
        (family.open)(self.channel(transport), model)
    }
}
