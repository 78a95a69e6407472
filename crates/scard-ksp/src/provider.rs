//! The [`Provider`]: readers and their cards, keys by name, operations with PIN handling.
//!
//! # PINs and the cache
//!
//! Each open card keeps, per PIN id, a *login*: the time it was verified, its effective
//! cache policy ([`crate::PinCacheConfig::effective`] of the card's `PinInfo::cache_policy`)
//! and, when that policy allows it, the value (a zeroized [`Pin`]):
//!
//! - `Normal`: the value is kept until the card is removed (or swapped), the PIN is logged
//!   out, a re-presentation of it fails, or the provider is dropped.
//! - `Timed(n)`: as `Normal`, but after `n` seconds (on the provider's [`Clock`]) the value
//!   is dropped and the login ends (the card is told to forget the PIN): the next use asks.
//! - `None`: the value is never kept; the login lasts as long as the card's own security
//!   state in this connection (until another application resets the card, or logout).
//! - `AlwaysPrompt`, and every key whose container says `always_authenticate` (PIV 9C,
//!   OpenPGP's signature key when PW1 is valid for one signature): the PIN is asked for
//!   before every use of the key and verified in the same transaction, right before the
//!   operation; the value is never kept (see also [`Provider::authorize_key`] and
//!   [`OpFlags::pin`]).
//!
//! A PIN that is needed and not verified is taken from the cache, else asked from the
//! [`PinSource`]; with [`OpFlags::silent`] nothing is asked: the call fails with
//! [`KspError::PinNeeded`]. A failed VERIFY is never retried, and its value is never kept.
//! PINs are asked inside the operation's transaction, so that no other application comes
//! between the VERIFY and the operation (the card waits while a person types).
//!
//! Operations that write (key generation, certificates, deletion) authenticate on demand:
//! when the card answers that a PIN is needed (the admin credential, or the user PIN on
//! cards whose containers belong to the user, GIDS), that PIN is taken from its login or
//! cache, else asked, presented once, and the write repeated.
//!
//! # Resets by other applications
//!
//! A reset is noticed when a transaction begins or a command is sent (the transport's
//! reset notice, or the card's "security status not satisfied" for a PIN this provider had
//! verified). The application is selected again and each PIN the operation needs is
//! presented again **once** (from the cache, or from the values given in this call), then
//! the operation is repeated **once**. A wrong-PIN answer ends it there: the value is dropped
//! and the error returned.
//!
//! # Threads
//!
//! `Provider` is `Send`; methods take `&mut self` and do their card I/O in the calling
//! thread (one transaction per call). Share it behind a `Mutex`. [`Provider::wait_event`]
//! holds the provider for up to its timeout: callers that share it wait in short slices.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use scard_minidriver::{
    CachePolicy, CardCf, CardError, CardModule, ContainerInfo, DecryptPadding, FileCache, HashAlg,
    KeyAlgorithm, KeySpec, Pin, PinId, PinInfo, PinType, ProfileRegistry, PublicKey, Secret,
    SignPadding, SignRequest,
};
use scard_transport::{ReaderEvent, Registry, ShareMode, TransportError};

use crate::backends;
use crate::clock::{Clock, SystemClock};
use crate::config::{PinCacheConfig, ProviderConfig};
use crate::error::{KspError, Result};
use crate::names::KeyName;
use crate::pin::{Operation, PinPrompt, PinRequest, PinSource};

/// How many times one call runs its card operation at most: once, once more after a reset,
/// and once per PIN the card asks for on demand (bounded: each PIN is presented once).
const MAX_ATTEMPTS: usize = 4;

/// A reader the provider serves, and its card.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReaderState {
    /// The reader's full name (`pcsc:...`, `ccid:...`, `vpcd:...`, `sim:...`).
    pub name: String,
    /// Whether a card is in the reader.
    pub card_present: bool,
    /// The card's ATR (empty when the backend knows a card is there but has not read it).
    pub atr: Option<Vec<u8>>,
    /// The card, when a profile opened it.
    pub card: Option<CardSummary>,
    /// Why a present card is not open (no profile knows it, the connection failed).
    pub problem: Option<String>,
}

/// What identifies a card and what it can do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CardSummary {
    /// The 16-byte card identity (the `cardid` file).
    pub card_id: [u8; 16],
    /// The card model's display name.
    pub model: String,
    /// The family (`piv`, `openpgp`, `gids`).
    pub family: String,
    /// The serial number as the card states it.
    pub serial: String,
    /// A label for people (and PKCS#11 token labels): the model and the serial.
    pub label: String,
    /// The card (or its model) is read-only.
    pub read_only: bool,
    /// Keys can be generated on the card.
    pub key_generation: bool,
    /// Key algorithms and sizes the card takes.
    pub algorithms: Vec<KeyAlgorithm>,
    /// How many containers the card has.
    pub max_containers: usize,
}

/// What a key may do, from its minidriver key spec (Minidriver v7 §4.3: `AT_KEYEXCHANGE`
/// decrypts and signs, `AT_SIGNATURE` and `AT_ECDSA_*` sign, `AT_ECDHE_*` agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KeyUsage {
    /// Signatures.
    pub sign: bool,
    /// RSA decryption.
    pub decrypt: bool,
    /// ECDH key agreement.
    pub agree: bool,
}

impl KeyUsage {
    /// The usage of a key spec.
    pub fn of(spec: KeySpec) -> Self {
        match spec {
            KeySpec::Exchange => KeyUsage { sign: true, decrypt: true, agree: false },
            KeySpec::Signature | KeySpec::Ecdsa(_) => {
                KeyUsage { sign: true, decrypt: false, agree: false }
            }
            KeySpec::Ecdh(_) => KeyUsage { sign: false, decrypt: false, agree: true },
        }
    }
}

/// An on-card key and its properties.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyInfo {
    /// `\\.\<reader>\<container name>`.
    pub name: String,
    /// The reader.
    pub reader: String,
    /// The card's identity.
    pub card_id: [u8; 16],
    /// The container index (stable per family: PIV 0 = 9A, 1 = 9C, 2 = 9D, 3 = 9E, 4.. =
    /// 82..; OpenPGP 0 signature, 1 decryption, 2 authentication; GIDS the cmapfile's).
    pub container_index: u8,
    /// The container name (a GUID string).
    pub container_name: String,
    /// The minidriver key spec.
    pub key_spec: KeySpec,
    /// Algorithm and size.
    pub algorithm: KeyAlgorithm,
    /// The public key, when the card lets it be read.
    pub public_key: Option<PublicKey>,
    /// The certificate (DER), when the container has one (through the host file cache).
    pub certificate: Option<Vec<u8>>,
    /// The PIN that unlocks the key ([`PinId::EVERYONE`]: none).
    pub pin: PinId,
    /// The cache policy the key's PIN follows for this key (`AlwaysPrompt` for keys that need
    /// their PIN before every use).
    pub cache_policy: CachePolicy,
    /// The PIN is needed right before every use (PIV 9C).
    pub always_authenticate: bool,
    /// The container's label ("PIV AUTHENTICATION 9A").
    pub label: String,
    /// The card's default container.
    pub default: bool,
    /// What the key may do: its key spec's usage, less signing when the card refuses to
    /// sign with the key (OpenPGP's decryption key: PSO:CDS uses the signature key only).
    pub usage: KeyUsage,
}

/// A change of readers or cards.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProviderEvent {
    /// A reader appeared.
    ReaderAdded {
        /// The reader.
        reader: String,
    },
    /// A reader went away (its card was closed).
    ReaderRemoved {
        /// The reader.
        reader: String,
    },
    /// A card was inserted (it is opened by the next [`Provider::refresh`]).
    CardInserted {
        /// The reader.
        reader: String,
    },
    /// A card was removed: it was closed and its cached PINs dropped.
    CardRemoved {
        /// The reader.
        reader: String,
    },
}

impl ProviderEvent {
    /// The reader the event concerns.
    pub fn reader(&self) -> &str {
        match self {
            ProviderEvent::ReaderAdded { reader }
            | ProviderEvent::ReaderRemoved { reader }
            | ProviderEvent::CardInserted { reader }
            | ProviderEvent::CardRemoved { reader } => reader,
        }
    }
}

/// Options of one operation.
#[derive(Debug, Clone, Default)]
pub struct OpFlags {
    /// Ask nothing: a PIN that is neither verified nor cached fails the call with
    /// [`KspError::PinNeeded`] (NCrypt's `NCRYPT_SILENT_FLAG`).
    pub silent: bool,
    /// A value of the key's PIN for this operation only (PKCS#11 `CKU_CONTEXT_SPECIFIC`; for
    /// key generation, of the user PIN): presented if that PIN is needed and not cached,
    /// before asking anyone; never cached. Never used for another PIN (an admin credential).
    pub pin: Option<Pin>,
}

impl OpFlags {
    /// Silent: nothing is asked.
    pub fn silent() -> Self {
        Self { silent: true, pin: None }
    }

    /// With a PIN for this operation.
    pub fn with_pin(pin: Pin) -> Self {
        Self { silent: false, pin: Some(pin) }
    }
}

/// A verified PIN of an open card.
struct Login {
    at: std::time::Instant,
    policy: CachePolicy,
    /// The value, when the policy lets it be kept (zeroized on drop).
    value: Option<Pin>,
}

impl Login {
    fn expired(&self, now: std::time::Instant) -> bool {
        match self.policy {
            CachePolicy::Timed(n) => {
                now.saturating_duration_since(self.at) >= Duration::from_secs(n.into())
            }
            _ => false,
        }
    }
}

/// A card opened with its profile, with what the provider keeps about it.
struct OpenCard {
    module: Box<dyn CardModule>,
    summary: CardSummary,
    /// The ATR the card was opened with.
    atr: Vec<u8>,
    /// The card's PINs as read when it was opened (names, types, policies, lengths).
    pins: Vec<PinInfo>,
    logins: BTreeMap<PinId, Login>,
    /// PINs given for the next use of one key (by container index), e.g. PKCS#11
    /// `CKU_CONTEXT_SPECIFIC`.
    authorized: BTreeMap<u8, Pin>,
    /// The keys, and the counters they were read under.
    keys: Option<(CardCf, Vec<KeyInfo>)>,
    /// Container indexes by container name, of every key seen on this card: a key named
    /// later is looked up alone ([`CardModule::container_for_key`]), not by listing them all.
    known: BTreeMap<String, u8>,
}

/// A reader of the provider.
struct Slot {
    reader: String,
    atr: Option<Vec<u8>>,
    card: Option<OpenCard>,
    problem: Option<String>,
    /// A card left alone: not opened again until it changes (removed, another ATR).
    parked: Option<Parked>,
}

/// A card the provider does not try to open again, and why.
struct Parked {
    /// The ATR of the card.
    atr: Vec<u8>,
    why: ParkedWhy,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ParkedWhy {
    /// No profile knew it.
    Unknown,
    /// It did not answer while it was opened (every call would wait the whole timeout again).
    Unresponsive,
}

/// What an operation needs besides the card.
struct Env<'a> {
    reader: &'a str,
    pins: &'a mut dyn PinSource,
    clock: &'a dyn Clock,
    cache: &'a PinCacheConfig,
    files: &'a mut FileCache,
}

/// One call's PIN state.
struct Call {
    operation: Operation,
    key: Option<String>,
    silent: bool,
    /// A value given with the call ([`OpFlags::pin`]) for one PIN id.
    one_shot: Option<(PinId, Pin)>,
    /// The values presented in this call, for the one re-presentation after a reset
    /// (zeroized on drop).
    presented: BTreeMap<PinId, Pin>,
}

impl Call {
    /// A call's state; `flags.pin` is a value of `pin_for` (the key's PIN).
    fn new(operation: Operation, key: Option<&str>, flags: OpFlags, pin_for: PinId) -> Self {
        Self {
            operation,
            key: key.map(str::to_owned),
            silent: flags.silent,
            one_shot: flags.pin.map(|v| (pin_for, v)),
            presented: BTreeMap::new(),
        }
    }
}

/// The key storage provider.
pub struct Provider {
    config: ProviderConfig,
    entries: Vec<String>,
    registry: Registry,
    profiles: ProfileRegistry,
    pins: Box<dyn PinSource>,
    clock: Box<dyn Clock>,
    files: FileCache,
    slots: Vec<Slot>,
    events: VecDeque<ProviderEvent>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("readers", &self.slots.iter().map(|s| s.reader.as_str()).collect::<Vec<_>>())
            .field("registry", &self.registry)
            .finish()
    }
}

impl Provider {
    /// A provider over the readers of `config` (the backends they name are created here:
    /// `sim:` cards are created, `vpcd:` readers listen), opening every card found with
    /// `profiles` ([`crate::default_profiles`]), asking PINs from `pins`.
    pub fn new(
        config: ProviderConfig,
        profiles: ProfileRegistry,
        pins: Box<dyn PinSource>,
    ) -> Result<Self> {
        let (mut registry, entries) = backends::build(&config)?;
        for name in backends::sim_cards(&entries) {
            // Connecting once creates the reader and its card; the card stays in it.
            registry.connect(Some(name), ShareMode::Shared)?;
        }
        Ok(Self::assemble(config, entries, registry, profiles, pins))
    }

    /// A provider over a registry made by the caller (tests, applications with backends of
    /// their own); `config.readers` selects and orders its readers (`sim:*` takes every
    /// `sim:` reader).
    pub fn with_registry(
        config: ProviderConfig,
        registry: Registry,
        profiles: ProfileRegistry,
        pins: Box<dyn PinSource>,
    ) -> Result<Self> {
        let entries = config.readers.iter().map(|e| backends::normalize(e)).collect();
        Ok(Self::assemble(config, entries, registry, profiles, pins))
    }

    fn assemble(
        config: ProviderConfig,
        entries: Vec<String>,
        mut registry: Registry,
        profiles: ProfileRegistry,
        pins: Box<dyn PinSource>,
    ) -> Self {
        // Events from before the first listing describe what the listing shows.
        if let Err(err) = registry.wait_events(backends::NO_WAIT) {
            tracing::debug!("reader events: {err}");
        }
        let files = match &config.certificate_cache {
            Some(dir) => FileCache::with_dir(dir),
            None => FileCache::in_memory(),
        };
        // The profiles keep their public objects (PIV certificates, OpenPGP public keys)
        // next to the certificate cache, under the same switch.
        let mut profiles = profiles;
        profiles.set_cache_dir(config.certificate_cache.clone());
        let mut provider = Self {
            config,
            entries,
            registry,
            profiles,
            pins,
            clock: Box::new(SystemClock),
            files,
            slots: Vec::new(),
            events: VecDeque::new(),
        };
        provider.refresh();
        provider
    }

    /// Replaces the clock of the PIN cache (tests: [`crate::ManualClock`]).
    pub fn with_clock(mut self, clock: Box<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the PIN source.
    pub fn set_pin_source(&mut self, pins: Box<dyn PinSource>) {
        self.pins = pins;
    }

    /// The configuration.
    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    // ----- readers and cards --------------------------------------------------------------

    /// The readers (after a [`Provider::refresh`]), in the order of the configured entries,
    /// then each backend's listing order.
    pub fn readers(&mut self) -> Vec<ReaderState> {
        self.refresh();
        self.known_readers()
    }

    /// The readers as the last look saw them ([`Provider::new`] looks once; so do
    /// [`Provider::readers`] and [`Provider::refresh`]), without looking again.
    pub fn known_readers(&self) -> Vec<ReaderState> {
        self.slots
            .iter()
            .map(|s| ReaderState {
                name: s.reader.clone(),
                card_present: s.atr.is_some(),
                atr: s.atr.clone(),
                card: s.card.as_ref().map(|c| c.summary.clone()),
                problem: s.problem.clone(),
            })
            .collect()
    }

    /// Looks at the readers again: opens newly inserted cards, closes removed or swapped
    /// ones (dropping their logins and cached PINs), forgets readers that went away.
    pub fn refresh(&mut self) {
        let (listed, unavailable) = self.registry.readers();
        for err in unavailable {
            tracing::debug!("readers: {err}");
        }
        let mut wanted: Vec<scard_transport::ReaderInfo> = Vec::new();
        for entry in &self.entries {
            for r in &listed {
                if backends::matches(entry, &r.name) && !wanted.iter().any(|w| w.name == r.name) {
                    wanted.push(r.clone());
                }
            }
        }
        let mut old = std::mem::take(&mut self.slots);
        for info in wanted {
            let mut slot = match old.iter().position(|s| s.reader == info.name) {
                Some(i) => old.remove(i),
                None => Slot {
                    reader: info.name.clone(),
                    atr: None,
                    card: None,
                    problem: None,
                    parked: None,
                },
            };
            slot.update(info.atr);
            self.slots.push(slot);
        }
        for gone in old {
            if gone.card.is_some() {
                tracing::info!("{}: reader gone; card closed, cached PINs dropped", gone.reader);
            }
        }
        for i in 0..self.slots.len() {
            if self.slots.get(i).is_some_and(Slot::needs_open) {
                self.open(i);
            }
        }
    }

    fn open(&mut self, i: usize) {
        let Some(reader) = self.slots.get(i).map(|s| s.reader.clone()) else { return };
        let mut open_once = || -> Result<OpenCard> {
            let mut transport = self.registry.connect(Some(&reader), ShareMode::Shared)?;
            transport.set_timeout(self.config.timeout);
            let module = self.profiles.open(transport)?;
            OpenCard::new(module)
        };
        let mut opened = open_once();
        // Another application reset the card while it was being read: read it again (twice
        // at most), rather than leave a card that is there unopened.
        for _ in 0..2 {
            match &opened {
                Err(KspError::Card(
                    CardError::CardReset { .. }
                    | CardError::Transport(TransportError::CardReset { .. }),
                ))
                | Err(KspError::Transport(TransportError::CardReset { .. })) => {
                    tracing::debug!("{reader}: reset while it was opened: opening it again");
                    opened = open_once();
                }
                _ => break,
            }
        }
        let Some(slot) = self.slots.get_mut(i) else { return };
        match opened {
            Ok(card) => {
                tracing::info!(
                    "{reader}: {} opened (card id {})",
                    card.summary.label,
                    scard_iso7816::hex::encode_upper(&card.summary.card_id)
                );
                let atr = card_atr(&card);
                if !atr.is_empty() {
                    slot.atr = Some(atr);
                }
                slot.card = Some(card);
                slot.problem = None;
            }
            Err(err) => {
                tracing::warn!("{reader}: card not opened: {err}");
                let why = if matches!(err, KspError::Card(CardError::UnknownCard { .. })) {
                    Some(ParkedWhy::Unknown)
                } else if is_timeout(&err) {
                    Some(ParkedWhy::Unresponsive)
                } else {
                    None
                };
                if let (Some(why), Some(atr)) = (why, slot.atr.clone()) {
                    slot.parked = Some(Parked { atr, why });
                }
                if matches!(err.kind(), crate::ErrorKind::NoCard | crate::ErrorKind::CardRemoved) {
                    slot.atr = None;
                }
                slot.problem = Some(err.to_string());
            }
        }
    }

    /// Waits up to `timeout` for a reader or card change (the cards are updated before it is
    /// returned). Events of readers the configuration does not name are left out.
    pub fn wait_event(&mut self, timeout: Duration) -> Result<Option<ProviderEvent>> {
        if let Some(event) = self.events.pop_front() {
            return Ok(Some(event));
        }
        let raw = self.registry.wait_events(timeout)?;
        let mut changed = false;
        for event in raw {
            let reader = match &event {
                ReaderEvent::ReaderAdded { reader }
                | ReaderEvent::ReaderRemoved { reader }
                | ReaderEvent::CardInserted { reader, .. }
                | ReaderEvent::CardRemoved { reader } => reader.clone(),
            };
            if !self.entries.iter().any(|e| backends::matches(e, &reader)) {
                continue;
            }
            changed = true;
            let slot = self.slots.iter_mut().find(|s| s.reader == reader);
            let mapped = match event {
                ReaderEvent::ReaderAdded { .. } => ProviderEvent::ReaderAdded { reader },
                ReaderEvent::ReaderRemoved { .. } => ProviderEvent::ReaderRemoved { reader },
                ReaderEvent::CardInserted { atr, .. } => {
                    // Whatever was open there is another card now (even with the same ATR).
                    if let Some(slot) = slot {
                        slot.close("a card was inserted");
                        slot.atr = Some(atr);
                        slot.parked = None;
                        slot.problem = None;
                    }
                    ProviderEvent::CardInserted { reader }
                }
                ReaderEvent::CardRemoved { .. } => {
                    if let Some(slot) = slot {
                        slot.close("the card was removed");
                        slot.atr = None;
                    }
                    ProviderEvent::CardRemoved { reader }
                }
            };
            self.events.push_back(mapped);
        }
        if changed {
            self.refresh();
        }
        Ok(self.events.pop_front())
    }

    /// The card in `reader`.
    pub fn card(&mut self, reader: &str) -> Result<CardSummary> {
        let i = self.slot_of(reader)?;
        self.card_ref(i).map(|c| c.summary.clone())
    }

    fn card_ref(&self, i: usize) -> Result<&OpenCard> {
        let slot = self.slots.get(i).ok_or_else(|| KspError::NoCard { reader: String::new() })?;
        match (&slot.card, &slot.problem) {
            (Some(card), _) => Ok(card),
            (None, Some(problem)) => {
                let (reader, reason) = (slot.reader.clone(), problem.clone());
                match slot.parked.as_ref().map(|p| p.why) {
                    Some(ParkedWhy::Unknown) => Err(KspError::UnrecognizedCard { reader, reason }),
                    Some(ParkedWhy::Unresponsive) => {
                        Err(KspError::CardNotResponding { reader, reason })
                    }
                    None => Err(KspError::NoCard { reader }),
                }
            }
            _ => Err(KspError::NoCard { reader: slot.reader.clone() }),
        }
    }

    /// The slot of `reader`, looking at the readers again when it is not known yet.
    fn slot_of(&mut self, reader: &str) -> Result<usize> {
        if let Some(i) = self.slots.iter().position(|s| s.reader == reader) {
            return Ok(i);
        }
        self.refresh();
        self.slots.iter().position(|s| s.reader == reader).ok_or_else(|| {
            let known: Vec<&str> = self.slots.iter().map(|s| s.reader.as_str()).collect();
            KspError::UnknownReader {
                reader: reader.to_owned(),
                known: if known.is_empty() { "none".into() } else { known.join(", ") },
            }
        })
    }

    /// Runs `f` on the card of slot `i` inside one transaction. Expired logins are dropped
    /// first; a card found removed is closed (its PINs dropped) and reported as
    /// [`KspError::CardRemoved`].
    fn with_card<R>(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut OpenCard, &mut Env<'_>) -> Result<R>,
    ) -> Result<R> {
        // A card closed after a time-out is opened again (once: see `Slot::needs_open`).
        if self.slots.get(i).is_some_and(Slot::needs_open) {
            self.open(i);
        }
        self.card_ref(i)?;
        let Some(reader) = self.slots.get(i).map(|s| s.reader.clone()) else {
            return Err(KspError::NoCard { reader: String::new() });
        };
        let result = {
            let Self { slots, pins, clock, config, files, .. } = self;
            let Some(card) = slots.get_mut(i).and_then(|s| s.card.as_mut()) else {
                return Err(KspError::NoCard { reader });
            };
            let mut env = Env {
                reader: &reader,
                pins: pins.as_mut(),
                clock: clock.as_ref(),
                cache: &config.pin_cache,
                files,
            };
            card.expire(&env);
            in_transaction(card, |card| f(card, &mut env))
        };
        match result {
            Err(err) if is_removal(&err) => {
                if let Some(slot) = self.slots.get_mut(i) {
                    slot.close("the card was removed");
                    slot.atr = None;
                }
                Err(KspError::CardRemoved { reader })
            }
            Err(err) if is_timeout(&err) => {
                // What the card does now is unknown (a late answer would be taken for the
                // next command's): the connection goes. The next call opens the card again,
                // once: a card that does not answer then is left alone until it changes.
                if let Some(slot) = self.slots.get_mut(i) {
                    slot.close("the card did not answer in time");
                }
                Err(err)
            }
            other => other,
        }
    }

    // ----- keys ---------------------------------------------------------------------------

    /// Every key of every open card, in reader order then container order. A card that fails
    /// to list its keys is left out (and logged); [`Provider::keys_on`] reports its error.
    pub fn keys(&mut self) -> Result<Vec<KeyInfo>> {
        self.refresh();
        let mut all = Vec::new();
        for i in 0..self.slots.len() {
            if self.slots.get(i).is_none_or(|s| s.card.is_none()) {
                continue;
            }
            match self.with_card(i, card_keys) {
                Ok(mut keys) => all.append(&mut keys),
                Err(err) => tracing::warn!("listing keys: {err}"),
            }
        }
        Ok(all)
    }

    /// The key in container `index` of the card in `reader` (`None`: the container holds
    /// none), read alone: a PIV card reads that key's certificate object only. With
    /// `certificate: false` the certificate is left out (`KeyInfo::certificate` is `None`
    /// whatever the card holds), which spares an OpenPGP card its certificate reads.
    pub fn key_at(
        &mut self,
        reader: &str,
        index: u8,
        certificate: bool,
    ) -> Result<Option<KeyInfo>> {
        let i = self.slot_of(reader)?;
        self.with_card(i, |card, env| {
            let mut c = if certificate {
                card.module.container(index)?
            } else {
                card.module.container_for_key(index)?
            };
            if !c.has_key() {
                return Ok(None);
            }
            if !certificate {
                c.has_certificate = false;
            }
            key_info(card, &c, env)
        })
    }

    /// The keys of the card in `reader`.
    pub fn keys_on(&mut self, reader: &str) -> Result<Vec<KeyInfo>> {
        let i = self.slot_of(reader)?;
        self.with_card(i, card_keys)
    }

    /// A key by name (`\\.\<reader>\<container>`, `\\.\<reader>\` for the default
    /// container, or the container name alone).
    pub fn open_key(&mut self, name: &str) -> Result<KeyInfo> {
        let (i, container) = self.locate(name)?;
        self.with_card(i, |card, env| {
            let c = find_container(card, &container, name)?;
            key_info(card, &c, env)?.ok_or_else(|| KspError::KeyNotFound { name: name.to_owned() })
        })
    }

    /// The slot and container name of a key name.
    fn locate(&mut self, name: &str) -> Result<(usize, String)> {
        match KeyName::parse(name)? {
            KeyName::Qualified { reader, container } => Ok((self.slot_of(&reader)?, container)),
            KeyName::Container(container) => {
                let keys = self.keys()?;
                let key = keys
                    .iter()
                    .find(|k| k.container_name == container)
                    .ok_or_else(|| KspError::KeyNotFound { name: name.to_owned() })?;
                let reader = key.reader.clone();
                Ok((self.slot_of(&reader)?, container))
            }
        }
    }

    // ----- operations ---------------------------------------------------------------------

    /// Checks that `key` can sign `request` (key usage, key type, padding, hash, data
    /// length) without asking or using any PIN; returns the signature's length (RSA: the
    /// modulus; ECDSA: r || s).
    pub fn check_sign(&mut self, key: &str, request: &SignRequest<'_>) -> Result<usize> {
        let (i, container) = self.locate(key)?;
        self.with_card(i, |card, _| {
            let c = find_container(card, &container, key)?;
            check_sign(card, &c, request, key)
        })
    }

    /// Signs (`request.data` is the digest, or with `hash: None` the formatted input); RSA
    /// signatures are the modulus length, ECDSA signatures are r || s. Unsupported requests
    /// fail before any PIN is asked.
    pub fn sign(
        &mut self,
        key: &str,
        request: &SignRequest<'_>,
        flags: OpFlags,
    ) -> Result<Vec<u8>> {
        let (i, container) = self.locate(key)?;
        self.with_card(i, |card, env| {
            let c = find_container(card, &container, key)?;
            check_sign(card, &c, request, key)?;
            let mut call = Call::new(Operation::Sign, Some(key), flags, c.pin);
            let signature = card.run(Some(&c), env, &mut call, |m| m.sign(c.index, request))?;
            // A broken or hostile card's 9000 over bytes that are no signature is an error,
            // not a result (scard_minidriver::verify).
            if let Some(public) = &c.public_key {
                if let Err(err) = scard_minidriver::verify_signature(public, request, &signature) {
                    // The key known may be one another application replaced since it was
                    // read (a PIV card cannot say; see the profile's object store): the
                    // container is read again, and the signature must verify under the key
                    // the card holds now.
                    let fresh = card.module.reread_container(c.index)?;
                    card.keys = None;
                    match &fresh.public_key {
                        Some(now) if now != public => {
                            scard_minidriver::verify_signature(now, request, &signature)?;
                            tracing::info!(
                                "{}: the key in container {} changed since it was read",
                                env.reader,
                                c.index
                            );
                        }
                        _ => return Err(err.into()),
                    }
                }
            }
            Ok(signature)
        })
    }

    /// Checks that `key` can decrypt with `padding` (and, when given, a ciphertext of
    /// `data_len` bytes) without any PIN; returns the largest plaintext (the modulus length).
    pub fn check_decrypt(
        &mut self,
        key: &str,
        padding: &DecryptPadding,
        data_len: Option<usize>,
    ) -> Result<usize> {
        let (i, container) = self.locate(key)?;
        self.with_card(i, |card, _| {
            let c = find_container(card, &container, key)?;
            check_decrypt(card, &c, padding, data_len, key)
        })
    }

    /// Decrypts an RSA ciphertext and removes `padding`.
    pub fn decrypt(
        &mut self,
        key: &str,
        padding: &DecryptPadding,
        data: &[u8],
        flags: OpFlags,
    ) -> Result<Secret> {
        let (i, container) = self.locate(key)?;
        self.with_card(i, |card, env| {
            let c = find_container(card, &container, key)?;
            check_decrypt(card, &c, padding, Some(data.len()), key)?;
            let mut call = Call::new(Operation::Decrypt, Some(key), flags, c.pin);
            card.run(Some(&c), env, &mut call, |m| m.decrypt(c.index, padding, data))
        })
    }

    /// Checks that `key` can agree with `peer` (an ECDH key, the peer on its curve) without
    /// any PIN; returns the shared secret's length.
    pub fn check_agree(&mut self, key: &str, peer: &PublicKey) -> Result<usize> {
        let (i, container) = self.locate(key)?;
        self.with_card(i, |card, _| {
            let c = find_container(card, &container, key)?;
            check_agree(&c, peer, key)
        })
    }

    /// ECDH with `peer`: the shared secret x.
    pub fn agree(&mut self, key: &str, peer: &PublicKey, flags: OpFlags) -> Result<Secret> {
        let (i, container) = self.locate(key)?;
        self.with_card(i, |card, env| {
            let c = find_container(card, &container, key)?;
            check_agree(&c, peer, key)?;
            let mut call = Call::new(Operation::Agree, Some(key), flags, c.pin);
            card.run(Some(&c), env, &mut call, |m| m.agree(c.index, peer))
        })
    }

    /// Generates a key on the card in `reader`: in container `container` (replacing the key
    /// there), or with `None` in the first container without a key. The card's admin
    /// credential (and, where the card wants it, the user PIN) is taken from the logins,
    /// else asked for. An algorithm the card does not take fails before any PIN.
    pub fn generate_key(
        &mut self,
        reader: &str,
        container: Option<u8>,
        algorithm: KeyAlgorithm,
        flags: OpFlags,
    ) -> Result<KeyInfo> {
        let i = self.slot_of(reader)?;
        self.with_card(i, |card, env| {
            let props = card.module.properties()?;
            if props.read_only {
                return Err(CardError::ReadOnly { model: props.model }.into());
            }
            if !props.key_generation {
                return Err(KspError::UnsupportedMechanism {
                    what: format!("on-card key generation ({})", props.model),
                });
            }
            if !props.algorithms.contains(&algorithm) {
                return Err(KspError::UnsupportedMechanism {
                    what: format!("{algorithm} keys on this card ({})", props.model),
                });
            }
            let index = match container {
                Some(index) if usize::from(index) >= props.max_containers => {
                    return Err(
                        CardError::NoContainer { index, count: props.max_containers }.into()
                    );
                }
                Some(index) => index,
                None => first_free(card, props.max_containers)?,
            };
            let mut call = Call::new(Operation::GenerateKey, None, flags, PinId::USER);
            let public = card.run(None, env, &mut call, |m| m.generate_key(index, algorithm))?;
            card.keys = None;
            card.authorized.remove(&index);
            let mut c = card.module.container(index)?;
            if c.public_key.is_none() {
                c.public_key = Some(public);
            }
            tracing::info!("{}: {algorithm} key generated in container {index}", env.reader);
            let name = crate::names::KeyName::qualified(env.reader, &c.name);
            key_info(card, &c, env)?.ok_or(KspError::KeyNotFound { name })
        })
    }

    /// Writes a certificate (DER X.509) to a key's container. A certificate whose public key
    /// is not the container's is refused before any PIN.
    pub fn import_certificate(&mut self, key: &str, der: &[u8], flags: OpFlags) -> Result<KeyInfo> {
        let spki = certificate_spki(der)?;
        let (i, container) = self.locate(key)?;
        self.with_card(i, |card, env| {
            let mut c = find_container(card, &container, key)?;
            if c.public_key.is_none() {
                c.public_key = card.module.container(c.index)?.public_key;
            }
            if let (Some(ours), Ok(theirs)) = (&c.public_key, PublicKey::from_spki_der(&spki)) {
                if *ours != theirs {
                    return Err(KspError::InvalidInput {
                        what: "certificate",
                        reason: format!(
                            "its public key is not the key of container {} ({key})",
                            c.index
                        ),
                    });
                }
            }
            let mut call = Call::new(Operation::ImportCertificate, Some(key), flags, c.pin);
            card.run(None, env, &mut call, |m| m.put_certificate(c.index, Some(der)))?;
            card.keys = None;
            let mut fresh = card.module.container(c.index)?;
            if fresh.public_key.is_none() {
                fresh.public_key = c.public_key.clone();
            }
            key_info(card, &fresh, env)?
                .ok_or_else(|| KspError::KeyNotFound { name: key.to_owned() })
        })
    }

    /// Writes a certificate (DER X.509) to container `index` of the card in `reader`, whether
    /// or not the provider knows a key there: a PIV key generated by another process is only
    /// known from its certificate (the PKCS#11 module's `C_CreateObject` of a certificate
    /// naming a container by `CKA_ID`). When the container's public key is known, a
    /// certificate of another key is refused before any PIN.
    pub fn import_certificate_at(
        &mut self,
        reader: &str,
        index: u8,
        der: &[u8],
        flags: OpFlags,
    ) -> Result<()> {
        let spki = certificate_spki(der)?;
        let theirs = PublicKey::from_spki_der(&spki).ok();
        let i = self.slot_of(reader)?;
        self.with_card(i, |card, env| {
            let c = card.module.container(index)?;
            if let (Some(ours), Some(theirs)) = (&c.public_key, &theirs) {
                if ours != theirs {
                    return Err(KspError::InvalidInput {
                        what: "certificate",
                        reason: format!("its public key is not the key of container {index}"),
                    });
                }
            }
            let name = KeyName::qualified(env.reader, &c.name);
            let mut call = Call::new(Operation::ImportCertificate, Some(&name), flags, c.pin);
            card.run(None, env, &mut call, |m| m.put_certificate(index, Some(der)))?;
            card.keys = None;
            tracing::info!("{}: certificate written to container {index}", env.reader);
            Ok(())
        })
    }

    /// Removes a key's certificate and leaves the key (a card that can only know the key
    /// from its certificate, PIV, then no longer lists it to other processes).
    pub fn delete_certificate(&mut self, key: &str, flags: OpFlags) -> Result<()> {
        let (i, container) = self.locate(key)?;
        self.with_card(i, |card, env| {
            let c = find_container(card, &container, key)?;
            let mut call = Call::new(Operation::ImportCertificate, Some(key), flags, c.pin);
            card.run(None, env, &mut call, |m| m.put_certificate(c.index, None))?;
            card.keys = None;
            tracing::info!("{}: certificate of container {} deleted", env.reader, c.index);
            Ok(())
        })
    }

    /// Deletes a key (and its certificate).
    pub fn delete_key(&mut self, key: &str, flags: OpFlags) -> Result<()> {
        let (i, container) = self.locate(key)?;
        self.with_card(i, |card, env| {
            let c = find_container(card, &container, key)?;
            let mut call = Call::new(Operation::DeleteKey, Some(key), flags, c.pin);
            card.run(None, env, &mut call, |m| m.delete_container(c.index))?;
            card.keys = None;
            card.authorized.remove(&c.index);
            tracing::info!("{}: key in container {} deleted", env.reader, c.index);
            Ok(())
        })
    }

    // ----- PINs ---------------------------------------------------------------------------

    /// Verifies a PIN of the card in `reader` and keeps the login (and the value, as its
    /// cache policy allows). `value: None` asks the PIN source. For a challenge-response
    /// PIN ([`PinType::ChallengeResponse`]: the PIV management key, the GIDS admin key) the
    /// value is the key's bytes (a PIN source answers in hex). A wrong value is never
    /// retried.
    pub fn login(&mut self, reader: &str, pin: PinId, value: Option<Pin>) -> Result<()> {
        let i = self.slot_of(reader)?;
        self.with_card(i, |card, env| {
            card.info(pin)?;
            let mut call = Call::new(Operation::Login, None, OpFlags::default(), pin);
            let value = match value {
                Some(v) => v,
                None => card.obtain(pin, PinPrompt::Current, None, env, &mut call)?,
            };
            card.present(pin, value, env, &mut call, true)?;
            tracing::info!("{}: {pin} verified", env.reader);
            Ok(())
        })
    }

    /// Gives the PIN for the next use of `key` only (PKCS#11 `CKU_CONTEXT_SPECIFIC`): it is
    /// verified now (a wrong value fails here), kept zeroized, and verified again right
    /// before that next operation in its transaction.
    pub fn authorize_key(&mut self, key: &str, value: Pin) -> Result<()> {
        let (i, container) = self.locate(key)?;
        self.with_card(i, |card, env| {
            let c = find_container(card, &container, key)?;
            if c.pin == PinId::EVERYONE {
                return Ok(());
            }
            let mut call = Call::new(Operation::Login, Some(key), OpFlags::default(), c.pin);
            card.present(c.pin, value.clone(), env, &mut call, false)?;
            card.authorized.insert(c.index, value);
            Ok(())
        })
    }

    /// Ends a login: the cached value is dropped (zeroized) and the card told to forget the
    /// PIN's verification (where it can: a PIV card's admin is forgotten by a reset).
    pub fn logout(&mut self, reader: &str, pin: PinId) -> Result<()> {
        let i = self.slot_of(reader)?;
        let card = match self.slots.get_mut(i).and_then(|s| s.card.as_mut()) {
            Some(card) => card,
            None => return Ok(()),
        };
        card.forget(pin);
        if pin == PinId::USER {
            card.authorized.clear();
        }
        // Outside a transaction of ours: a card may reset itself to forget (PIV admin).
        match card.module.deauthenticate(pin.set()) {
            Ok(()) => Ok(()),
            Err(CardError::Transport(
                TransportError::CardRemoved { .. } | TransportError::NoCard { .. },
            )) => {
                if let Some(slot) = self.slots.get_mut(i) {
                    slot.close("the card was removed");
                    slot.atr = None;
                }
                Ok(())
            }
            Err(err) => {
                tracing::debug!("{reader}: the card did not forget {pin}: {err}");
                Ok(())
            }
        }
    }

    /// Whether `pin` of the card in `reader` is logged in (verified, not expired, and the card
    /// not known to have lost it).
    pub fn is_logged_in(&mut self, reader: &str, pin: PinId) -> bool {
        let now = self.clock.now();
        let Some(card) =
            self.slots.iter_mut().find(|s| s.reader == reader).and_then(|s| s.card.as_mut())
        else {
            return false;
        };
        card.logged_in(pin, now) || card.cached(pin, now).is_some()
    }

    /// Whether a value of `pin` is cached for the card in `reader`.
    pub fn is_pin_cached(&self, reader: &str, pin: PinId) -> bool {
        let now = self.clock.now();
        self.slots
            .iter()
            .find(|s| s.reader == reader)
            .and_then(|s| s.card.as_ref())
            .is_some_and(|c| c.cached(pin, now).is_some())
    }

    /// Changes a PIN; `None` values are asked from the PIN source. A cached value of the PIN
    /// is replaced by the new one.
    pub fn change_pin(
        &mut self,
        reader: &str,
        pin: PinId,
        old: Option<Pin>,
        new: Option<Pin>,
    ) -> Result<()> {
        let i = self.slot_of(reader)?;
        self.with_card(i, |card, env| {
            card.info(pin)?;
            let mut call = Call::new(Operation::ChangePin, None, OpFlags::default(), pin);
            let old = match old {
                Some(v) => v,
                None => card.obtain(pin, PinPrompt::Current, None, env, &mut call)?,
            };
            let new = match new {
                Some(v) => v,
                None => card.obtain(pin, PinPrompt::New, None, env, &mut call)?,
            };
            match card.module.change_pin(pin, &old, &new) {
                Ok(()) => {
                    if let Some(login) = card.logins.get_mut(&pin) {
                        if login.value.is_some() {
                            login.value = Some(new);
                        }
                    }
                    tracing::info!("{}: {pin} changed", env.reader);
                    Ok(())
                }
                Err(err) => {
                    // A refused value, or a change whose outcome is unknown (the command may
                    // have reached the card, its answer not us): the cached value may be
                    // wrong now, and presenting it would spend a try.
                    let unknown =
                        matches!(err, CardError::Transport(_) | CardError::CardReset { .. });
                    if err.is_pin_failure() || unknown {
                        card.forget(pin);
                    }
                    Err(err.into())
                }
            }
        })
    }

    /// Unblocks a PIN and sets a new value. `unblock: None`: when the admin may unblock it and
    /// is logged in, nothing more is needed (OpenPGP with PW3 verified); else the unblock code
    /// is asked from the PIN source (for a challenge-response admin, the key in hex).
    pub fn unblock_pin(
        &mut self,
        reader: &str,
        pin: PinId,
        unblock: Option<Pin>,
        new: Option<Pin>,
    ) -> Result<()> {
        let i = self.slot_of(reader)?;
        self.with_card(i, |card, env| {
            let info = card.info(pin)?;
            let mut call = Call::new(Operation::UnblockPin, None, OpFlags::default(), pin);
            let now = env.clock.now();
            let admin_may = info.unblock_permission.contains(PinId::ADMIN);
            let unblocker = info.unblock_permission.ids().next();
            let unblock = match unblock {
                Some(v) => v,
                None if admin_may && card.logged_in(PinId::ADMIN, now) => {
                    card.cached(PinId::ADMIN, now).unwrap_or_else(|| Pin::new(Vec::new()))
                }
                None => {
                    let kind = unblocker.and_then(|u| card.info(u).ok()).map(|u| u.pin_type);
                    card.obtain(pin, PinPrompt::Unblock, kind, env, &mut call)?
                }
            };
            let new = match new {
                Some(v) => v,
                None => {
                    card.obtain(pin, PinPrompt::New, Some(PinType::AlphaNumeric), env, &mut call)?
                }
            };
            if let Err(err) = card.module.unblock_pin(pin, &unblock, &new) {
                // Its outcome unknown, the PIN may be the new one: the cached value goes.
                if matches!(err, CardError::Transport(_) | CardError::CardReset { .. }) {
                    card.forget(pin);
                }
                return Err(err.into());
            }
            card.forget(pin);
            tracing::info!("{}: {pin} unblocked", env.reader);
            Ok(())
        })
    }

    /// The card's PINs with the tries left the card told already (a VERIFY's answer, data
    /// read anyway); nothing is sent only to learn them (see [`Provider::pin_info`]).
    pub fn pin_info_known(&mut self, reader: &str) -> Result<Vec<PinInfo>> {
        let i = self.slot_of(reader)?;
        self.with_card(i, |card, _| card.module.pins_without_probe().map_err(KspError::from))
    }

    /// The card's PINs with their tries left (read now, without spending a try).
    pub fn pin_info(&mut self, reader: &str) -> Result<Vec<PinInfo>> {
        let i = self.slot_of(reader)?;
        self.with_card(i, |card, _| {
            let pins = card.module.pins()?;
            card.pins = pins.clone();
            Ok(pins)
        })
    }
}

impl Slot {
    /// A card is there and not open, and nothing says to leave it alone (no profile knew it,
    /// or it did not answer while it was opened).
    fn needs_open(&self) -> bool {
        self.atr.is_some() && self.card.is_none() && self.parked.is_none()
    }

    /// Takes the listing's view of the reader: no card closes the open one; another ATR
    /// closes it too (another card).
    fn update(&mut self, atr: Option<Vec<u8>>) {
        match atr {
            None => {
                self.close("the card was removed");
                self.atr = None;
                self.parked = None;
                self.problem = None;
            }
            Some(atr) => {
                let swapped = self.card.as_ref().is_some_and(|c| {
                    let open = card_atr(c);
                    !atr.is_empty() && !open.is_empty() && open != atr
                });
                if swapped {
                    self.close("another card is in the reader");
                }
                if self.parked.as_ref().is_some_and(|p| p.atr != atr) {
                    self.parked = None;
                    self.problem = None;
                }
                if self.card.is_none() || !atr.is_empty() {
                    self.atr = Some(atr);
                }
            }
        }
    }

    /// Closes the card: the module and its connection go, with every login and cached PIN
    /// (zeroized on drop).
    fn close(&mut self, why: &str) {
        if let Some(card) = self.card.take() {
            tracing::info!(
                "{}: {} closed ({why}); {} cached PIN(s) dropped",
                self.reader,
                card.summary.label,
                card.logins.values().filter(|l| l.value.is_some()).count()
            );
        }
    }
}

fn card_atr(card: &OpenCard) -> Vec<u8> {
    card.atr.clone()
}

impl OpenCard {
    /// Reads what the provider keeps about a card just opened.
    fn new(mut module: Box<dyn CardModule>) -> Result<Self> {
        let atr = module.channel().atr().to_vec();
        // The card's identity only (no container is read: a PIV card would read every
        // certificate) and what its PINs are (no VERIFY only to count the tries left).
        let (props, pins) = scard_minidriver::with_transaction(module.as_mut(), |m| {
            Ok((m.identity()?, m.pins_without_probe()?))
        })?;
        let label = if props.serial.is_empty() {
            props.model.clone()
        } else {
            format!("{} {}", props.model, props.serial)
        };
        let summary = CardSummary {
            card_id: props.card_id,
            model: props.model,
            family: props.family,
            serial: props.serial,
            label,
            read_only: props.read_only,
            key_generation: props.key_generation,
            algorithms: props.algorithms,
            max_containers: props.max_containers,
        };
        Ok(Self {
            module,
            summary,
            atr,
            pins,
            logins: BTreeMap::new(),
            authorized: BTreeMap::new(),
            keys: None,
            known: BTreeMap::new(),
        })
    }

    /// The PIN's info as read when the card was opened.
    fn info(&self, pin: PinId) -> Result<PinInfo> {
        self.pins.iter().find(|p| p.id == pin).cloned().ok_or_else(|| KspError::InvalidInput {
            what: "PIN id",
            reason: format!(
                "{pin} is not a PIN of this card ({})",
                self.pins.iter().map(|p| p.id.get().to_string()).collect::<Vec<_>>().join(", ")
            ),
        })
    }

    /// Whether `pin` is verified in this connection and its login not expired.
    fn logged_in(&mut self, pin: PinId, now: std::time::Instant) -> bool {
        let valid = self.logins.get(&pin).is_some_and(|l| !l.expired(now));
        valid && self.module.channel().authenticated().contains(pin)
    }

    /// The cached value of `pin`, if its policy kept one and it has not expired.
    fn cached(&self, pin: PinId, now: std::time::Instant) -> Option<Pin> {
        self.logins.get(&pin).filter(|l| !l.expired(now)).and_then(|l| l.value.clone())
    }

    /// Drops the login and cached value of `pin` (zeroized).
    fn forget(&mut self, pin: PinId) {
        if self.logins.remove(&pin).is_some() {
            tracing::debug!("{pin}: login and cached value dropped");
        }
    }

    /// Ends expired logins: the values are dropped and the card told to forget the PINs
    /// (outside any transaction: a card may reset itself to forget).
    fn expire(&mut self, env: &Env<'_>) {
        let now = env.clock.now();
        let expired: Vec<PinId> =
            self.logins.iter().filter(|(_, l)| l.expired(now)).map(|(p, _)| *p).collect();
        for pin in expired {
            self.logins.remove(&pin);
            tracing::debug!("{}: the cached {pin} expired", env.reader);
            if let Err(err) = self.module.deauthenticate(pin.set()) {
                tracing::debug!("{}: the card did not forget {pin}: {err}", env.reader);
            }
        }
    }

    /// Asks the PIN source for a value (`kind`: the type of the value when it is not the
    /// PIN's own, e.g. an admin key that unblocks a user PIN).
    fn obtain(
        &mut self,
        pin: PinId,
        prompt: PinPrompt,
        kind: Option<PinType>,
        env: &mut Env<'_>,
        call: &mut Call,
    ) -> Result<Pin> {
        let info = self.info(pin)?;
        let pin_type = kind.unwrap_or(info.pin_type);
        if pin_type == PinType::Empty {
            return Ok(Pin::new(Vec::new()));
        }
        if call.silent {
            return Err(KspError::PinNeeded { reader: env.reader.to_owned(), pin });
        }
        let tries_left = match prompt {
            PinPrompt::Current => self.module.tries_left(pin).ok().flatten(),
            _ => None,
        };
        let request = PinRequest {
            reader: env.reader.to_owned(),
            card_label: self.summary.label.clone(),
            pin,
            pin_name: info.name.clone(),
            pin_type,
            prompt,
            operation: call.operation,
            key: call.key.clone(),
            tries_left,
            min_len: info.min_len,
            max_len: info.max_len,
        };
        tracing::debug!(
            "{}: asking for {pin} ({prompt:?}) to {}",
            env.reader,
            call.operation.verb()
        );
        match env.pins.get(&request)? {
            None => Err(KspError::Cancelled { reader: env.reader.to_owned(), pin }),
            Some(value) if pin_type == PinType::ChallengeResponse => hex_key(&value),
            Some(value) => Ok(value),
        }
    }

    /// Presents a value of `pin` (VERIFY, or the challenge-response of an admin key). On
    /// success the value is remembered for this call and, with `remember`, the login is kept
    /// as the PIN's policy says. A wrong value drops the PIN's login and is returned at once.
    fn present(
        &mut self,
        pin: PinId,
        value: Pin,
        env: &mut Env<'_>,
        call: &mut Call,
        remember: bool,
    ) -> Result<()> {
        let info = self.info(pin)?;
        let verify = |module: &mut dyn CardModule| {
            if info.pin_type == PinType::ChallengeResponse {
                module.authenticate_admin_key(&value)
            } else {
                module.authenticate(pin, &value)
            }
        };
        let result = match verify(self.module.as_mut()) {
            // Reset by another application just before the VERIFY (which the card did not
            // get): select again and present the value once more.
            Err(
                CardError::CardReset { .. }
                | CardError::Transport(TransportError::CardReset { .. }),
            ) => {
                tracing::info!(
                    "{}: the card was reset by another application: presenting {pin} again",
                    env.reader
                );
                self.module.channel().forget_selection();
                verify(self.module.as_mut())
            }
            other => other,
        };
        match result {
            Ok(()) => {
                if remember {
                    let policy = env.cache.effective(info.cache_policy);
                    let keep = matches!(policy, CachePolicy::Normal | CachePolicy::Timed(_));
                    self.logins.insert(
                        pin,
                        Login { at: env.clock.now(), policy, value: keep.then(|| value.clone()) },
                    );
                }
                call.presented.insert(pin, value);
                Ok(())
            }
            Err(err) => {
                if err.is_pin_failure() {
                    self.forget(pin);
                }
                Err(err.into())
            }
        }
    }

    /// Makes sure `pin` is verified: trusted from the login when `trust_card` and the card
    /// still holds it, else presented from the cache, this call's value, or the PIN source.
    fn ensure(
        &mut self,
        pin: PinId,
        trust_card: bool,
        env: &mut Env<'_>,
        call: &mut Call,
    ) -> Result<()> {
        if pin == PinId::EVERYONE || call.presented.contains_key(&pin) {
            return Ok(());
        }
        let now = env.clock.now();
        if trust_card && self.logged_in(pin, now) {
            return Ok(());
        }
        if let Some(value) = self.cached(pin, now) {
            tracing::debug!("{}: presenting the cached {pin}", env.reader);
            // The login stays as it was: its time runs from the person's entry.
            return self.present(pin, value, env, call, false);
        }
        match call.one_shot.take_if(|(p, _)| *p == pin) {
            Some((_, value)) => self.present(pin, value, env, call, false),
            None => {
                let value = self.obtain(pin, PinPrompt::Current, None, env, call)?;
                self.present(pin, value, env, call, true)
            }
        }
    }

    /// Verifies the PIN of a key that needs it before every use: this call's value, a value
    /// given with [`Provider::authorize_key`], or the PIN source; never the cache.
    fn present_fresh(
        &mut self,
        c: &ContainerInfo,
        env: &mut Env<'_>,
        call: &mut Call,
    ) -> Result<()> {
        if c.pin == PinId::EVERYONE || call.presented.contains_key(&c.pin) {
            return Ok(());
        }
        let given = call.one_shot.take_if(|(p, _)| *p == c.pin).map(|(_, v)| v);
        let value = match given.or_else(|| self.authorized.remove(&c.index)) {
            Some(value) => value,
            None => self.obtain(c.pin, PinPrompt::Current, None, env, call)?,
        };
        self.present(c.pin, value, env, call, false)
    }

    /// Whether the key of `c` needs its PIN before every use.
    fn fresh_pin(&self, c: &ContainerInfo, env: &Env<'_>) -> bool {
        c.always_authenticate
            || self
                .info(c.pin)
                .is_ok_and(|i| env.cache.effective(i.cache_policy) == CachePolicy::AlwaysPrompt)
    }

    /// Runs `op` with the PINs it needs: the key's PIN up front (`key`), others when the card
    /// asks for them (each presented once). A reset noticed during the operation selects
    /// the application again, presents the PINs once more, and runs `op` once more.
    fn run<R>(
        &mut self,
        key: Option<&ContainerInfo>,
        env: &mut Env<'_>,
        call: &mut Call,
        mut op: impl FnMut(&mut dyn CardModule) -> scard_minidriver::Result<R>,
    ) -> Result<R> {
        if let Some(c) = key {
            if self.fresh_pin(c, env) {
                self.present_fresh(c, env, call)?;
            } else {
                self.ensure(c.pin, true, env, call)?;
            }
        }
        let mut reset_seen = false;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let err = match op(self.module.as_mut()) {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            if attempts >= MAX_ATTEMPTS {
                return Err(err.into());
            }
            match err {
                CardError::CardReset { .. }
                | CardError::Transport(TransportError::CardReset { .. })
                    if !reset_seen =>
                {
                    reset_seen = true;
                    tracing::info!(
                        "{}: the card was reset by another application: selecting it again \
                         and presenting the PIN once more",
                        env.reader
                    );
                    self.module.channel().forget_selection();
                    let again: Vec<(PinId, Pin)> =
                        call.presented.iter().map(|(p, v)| (*p, v.clone())).collect();
                    for (pin, value) in again {
                        self.present(pin, value, env, call, false)?;
                    }
                    if let Some(c) = key {
                        self.ensure(c.pin, false, env, call)?;
                    }
                }
                CardError::AuthRequired { pin, .. } if !call.presented.contains_key(&pin) => {
                    if self.logins.contains_key(&pin) {
                        // The login was trusted but the card no longer holds it: another
                        // application reset the card without us being told.
                        tracing::info!(
                            "{}: the card lost {pin}: selecting it again and presenting it \
                             once more",
                            env.reader
                        );
                        self.module.channel().forget_selection();
                    }
                    self.ensure(pin, false, env, call)?;
                }
                other => return Err(other.into()),
            }
        }
    }
}

/// Runs `f` inside one transaction on the card.
fn in_transaction<R>(card: &mut OpenCard, f: impl FnOnce(&mut OpenCard) -> Result<R>) -> Result<R> {
    card.module.channel().begin()?;
    let result = f(card);
    let ended = card.module.channel().end();
    let value = result?;
    ended?;
    Ok(value)
}

/// Whether an error is a card that did not answer within the deadline.
fn is_timeout(err: &KspError) -> bool {
    matches!(
        err,
        KspError::Transport(TransportError::Timeout { .. })
            | KspError::Card(CardError::Transport(TransportError::Timeout { .. }))
    )
}

/// Whether an error means the card is gone.
fn is_removal(err: &KspError) -> bool {
    let removed = |t: &TransportError| {
        matches!(t, TransportError::CardRemoved { .. } | TransportError::NoCard { .. })
    };
    match err {
        KspError::Transport(t) => removed(t),
        KspError::Card(CardError::Transport(t)) => removed(t),
        _ => false,
    }
}

/// A challenge-response key typed in hex (spaces and colons allowed).
fn hex_key(value: &Pin) -> Result<Pin> {
    let bad = || KspError::InvalidInput {
        what: "admin key",
        reason: "a challenge-response key is given in hex".into(),
    };
    let text = std::str::from_utf8(value.expose()).map_err(|_| bad())?;
    let bytes = scard_iso7816::hex::decode_lenient(text).map_err(|_| bad())?;
    Ok(Pin::new(bytes))
}

/// The container named `name` (empty: the default container), which must hold a key.
fn find_container(card: &mut OpenCard, name: &str, key: &str) -> Result<ContainerInfo> {
    // A key seen before is looked up alone.
    if let Some(index) = card.known.get(name).copied() {
        let c = card.module.container_for_key(index)?;
        if c.name == name && c.has_key() {
            return Ok(c);
        }
        card.known.remove(name);
    }
    let all = card.module.containers()?;
    let found = if name.is_empty() {
        all.into_iter().find(|c| c.default && c.has_key())
    } else {
        all.into_iter().find(|c| c.name == name)
    };
    match found {
        Some(c) if c.has_key() => Ok(c),
        _ => Err(KspError::KeyNotFound { name: key.to_owned() }),
    }
}

/// The algorithm of a container's key.
fn algorithm_of(c: &ContainerInfo, key: &str) -> Result<KeyAlgorithm> {
    c.algorithm.or_else(|| c.public_key.as_ref().and_then(|k| k.algorithm().ok())).ok_or_else(
        || KspError::UnsupportedMechanism {
            what: format!("key {key}: the card does not say its algorithm"),
        },
    )
}

/// Everything about a signature that is decided without a PIN (Minidriver v7 CardSignData:
/// the CARD_PADDING_* type against the key's, CARD_BUFFER_SIZE_ONLY's size), then the
/// profile's own check.
fn check_sign(
    card: &mut OpenCard,
    c: &ContainerInfo,
    request: &SignRequest<'_>,
    key: &str,
) -> Result<usize> {
    let spec = c.key_spec.ok_or_else(|| KspError::KeyNotFound { name: key.to_owned() })?;
    if !KeyUsage::of(spec).sign {
        return Err(KspError::KeyUsage { key: key.to_owned(), operation: "sign" });
    }
    let algorithm = algorithm_of(c, key)?;
    if let (KeyAlgorithm::Ec(_), SignPadding::Pkcs1 | SignPadding::Pss { .. }) =
        (algorithm, request.padding)
    {
        return Err(KspError::KeyTypeMismatch {
            key: key.to_owned(),
            reason: format!("an RSA padding for a {algorithm} key"),
        });
    }
    if let Some(hash) = request.hash {
        if request.data.len() != hash.len() {
            return Err(KspError::InvalidInput {
                what: "digest",
                reason: format!(
                    "{} bytes; a {hash:?} digest has {}",
                    request.data.len(),
                    hash.len()
                ),
            });
        }
    }
    card.module.check_sign(c.index, request)?;
    Ok(algorithm.signature_len())
}

/// Everything about a decryption that is decided without a PIN.
fn check_decrypt(
    card: &mut OpenCard,
    c: &ContainerInfo,
    padding: &DecryptPadding,
    data_len: Option<usize>,
    key: &str,
) -> Result<usize> {
    let spec = c.key_spec.ok_or_else(|| KspError::KeyNotFound { name: key.to_owned() })?;
    let algorithm = algorithm_of(c, key)?;
    if !algorithm.is_rsa() {
        return Err(KspError::KeyTypeMismatch {
            key: key.to_owned(),
            reason: format!("RSA decryption with a {algorithm} key"),
        });
    }
    if !KeyUsage::of(spec).decrypt {
        return Err(KspError::KeyUsage { key: key.to_owned(), operation: "decrypt" });
    }
    let k = algorithm.signature_len();
    if let Some(len) = data_len {
        if len == 0 || len > k {
            return Err(KspError::InvalidInput {
                what: "ciphertext",
                reason: format!("{len} bytes for a {k}-byte key"),
            });
        }
    }
    card.module.check_decrypt(c.index, padding)?;
    Ok(k)
}

/// Everything about a key agreement that is decided without a PIN.
fn check_agree(c: &ContainerInfo, peer: &PublicKey, key: &str) -> Result<usize> {
    let spec = c.key_spec.ok_or_else(|| KspError::KeyNotFound { name: key.to_owned() })?;
    let algorithm = algorithm_of(c, key)?;
    let KeyAlgorithm::Ec(curve) = algorithm else {
        return Err(KspError::KeyTypeMismatch {
            key: key.to_owned(),
            reason: format!("ECDH with a {algorithm} key"),
        });
    };
    if !KeyUsage::of(spec).agree {
        return Err(KspError::KeyUsage { key: key.to_owned(), operation: "agree (ECDH)" });
    }
    match peer {
        PublicKey::Ec { curve: theirs, point }
            if *theirs == curve && point.len() == 1 + 2 * curve.field_len() =>
        {
            Ok(curve.field_len())
        }
        _ => Err(KspError::InvalidInput {
            what: "peer key",
            reason: format!("not an uncompressed point on the key's curve ({curve:?})"),
        }),
    }
}

/// The first container without a key (a card with a growing container map: the next index).
fn first_free(card: &mut OpenCard, max: usize) -> Result<u8> {
    let all = card.module.containers()?;
    if let Some(c) = all.iter().find(|c| !c.has_key()) {
        return Ok(c.index);
    }
    let next = all.iter().map(|c| usize::from(c.index) + 1).max().unwrap_or(0);
    if next < max {
        u8::try_from(next).map_err(|_| CardError::NoFreeContainer.into())
    } else {
        Err(CardError::NoFreeContainer.into())
    }
}

/// The keys of a card, from the provider's list while the card's counters are unchanged.
fn card_keys(card: &mut OpenCard, env: &mut Env<'_>) -> Result<Vec<KeyInfo>> {
    let cf = card.module.cardcf()?;
    if let Some((cached, keys)) = &card.keys {
        if *cached == cf {
            return Ok(keys.clone());
        }
    }
    let containers = card.module.containers()?;
    let mut keys = Vec::new();
    for c in containers.iter().filter(|c| c.has_key()) {
        if let Some(k) = key_info(card, c, env)? {
            keys.push(k);
        }
    }
    card.keys = Some((cf, keys.clone()));
    Ok(keys)
}

/// A key's properties (`None`: the container's key has no algorithm the provider knows).
fn key_info(card: &mut OpenCard, c: &ContainerInfo, env: &mut Env<'_>) -> Result<Option<KeyInfo>> {
    let public_key = match &c.public_key {
        Some(k) => Some(k.clone()),
        None => card.module.container(c.index)?.public_key,
    };
    let algorithm = c.algorithm.or_else(|| public_key.as_ref().and_then(|k| k.algorithm().ok()));
    let (Some(key_spec), Some(algorithm)) = (c.key_spec, algorithm) else {
        tracing::debug!("{}: container {} left out: no key algorithm", env.reader, c.index);
        return Ok(None);
    };
    let certificate = if c.has_certificate {
        match env.files.certificate(card.module.as_mut(), c.index) {
            Ok(der) => der,
            Err(err) => {
                tracing::warn!("{}: certificate of container {}: {err}", env.reader, c.index);
                None
            }
        }
    } else {
        None
    };
    let cache_policy = if card.fresh_pin(c, env) {
        CachePolicy::AlwaysPrompt
    } else if c.pin == PinId::EVERYONE {
        CachePolicy::None
    } else {
        card.info(c.pin).map(|i| env.cache.effective(i.cache_policy)).unwrap_or(CachePolicy::Normal)
    };
    let mut usage = KeyUsage::of(key_spec);
    usage.sign = usage.sign && signs(card, c.index, algorithm, env.reader);
    card.known.insert(c.name.clone(), c.index);
    Ok(Some(KeyInfo {
        name: KeyName::qualified(env.reader, &c.name),
        reader: env.reader.to_owned(),
        card_id: card.summary.card_id,
        container_index: c.index,
        container_name: c.name.clone(),
        key_spec,
        algorithm,
        public_key,
        certificate,
        pin: c.pin,
        cache_policy,
        always_authenticate: c.always_authenticate,
        label: c.label.clone(),
        default: c.default,
        usage,
    }))
}

/// Whether the card signs with the key in container `index`: asked of the profile (no PIN,
/// no APDU) with a SHA-256 request of the key's shape, inside the listing's transaction. An
/// answer that is not about the key (the card went away) leaves the key spec's word.
fn signs(card: &mut OpenCard, index: u8, algorithm: KeyAlgorithm, reader: &str) -> bool {
    let (hash, padding, data) = match algorithm {
        KeyAlgorithm::Rsa(_) => (Some(HashAlg::Sha256), SignPadding::Pkcs1, vec![0; 32]),
        // ECDSA over a digest the host made, of the field's length.
        KeyAlgorithm::Ec(curve) => (None, SignPadding::None, vec![1; curve.field_len()]),
    };
    match card.module.check_sign(index, &SignRequest { hash, padding, data: &data }) {
        Ok(()) => true,
        Err(err) => {
            tracing::debug!("{reader}: signing with container {index}: {err}");
            let err = KspError::from(err);
            !matches!(
                err.kind(),
                crate::ErrorKind::MechanismInvalid
                    | crate::ErrorKind::KeyFunctionNotPermitted
                    | crate::ErrorKind::KeyTypeInconsistent
            )
        }
    }
}

/// The DER SubjectPublicKeyInfo of a DER X.509 certificate (RFC 5280 §4.1).
fn certificate_spki(der: &[u8]) -> Result<Vec<u8>> {
    use der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(der).map_err(|e| KspError::InvalidInput {
        what: "certificate",
        reason: format!("not a DER X.509 certificate: {e}"),
    })?;
    cert.tbs_certificate.subject_public_key_info.to_der().map_err(|e| KspError::InvalidInput {
        what: "certificate",
        reason: format!("its public key does not encode: {e}"),
    })
}
