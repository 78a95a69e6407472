//! The PIV card profile: NIST SP 800-73-4 PIV Card Application cards (and YubiKeys, Nitrokey's
//! piv-authenticator, our simulated card) as a [`CardModule`].
//!
//! - Containers have stable indexes: 0 = 9A, 1 = 9C, 2 = 9D, 3 = 9E, 4..23 = the retired key
//!   management keys 82..95 (a card model may list fewer key references).
//! - PIV has no command to read a public key. A container holds a key when its certificate
//!   object (SP 800-73-4 Pt 1 Table 3) holds a certificate, whose public key is the key's, or
//!   when the key was generated on this connection (from the GENERATE answer). **A key
//!   generated without a certificate is visible only to the connection that generated it**: a
//!   later one sees it once a certificate is written (OpenSC behaves the same way). Generating
//!   a key removes the slot's old certificate, which no longer matches.
//! - Retired keys: the Key History object (5FC10C) says how many retired keys have on-card
//!   certificates (C1, the lowest references 82..); only those certificate objects are read.
//!   A card without the object has no retired keys in use (as OpenSC reads it). New retired
//!   keys are added in order (82, 83, ..) and the Key History object is written back.
//! - PINs: 1 = PIV Card Application PIN (80), 2 = the management key (9B, challenge-response,
//!   3DES or AES), 3 = the PUK (81), which only unblocks the PIN (VERIFY of the PUK is not an
//!   SP 800-73-4 command: cards answer 6A88). The Digital Signature key (9C) asks for the PIN
//!   right before every use ([`ContainerInfo::always_authenticate`]); the Card Authentication
//!   key (9E) needs none.
//! - RSA is raw on the card (SP 800-73-4 Pt 2 §3.2.4): PKCS#1 v1.5, PSS and OAEP are done on the
//!   host ([`scard_minidriver::padding`]). ECDSA signatures come back DER and are returned as
//!   r || s. ECDH is GENERAL AUTHENTICATE with the peer's point (85).
//! - The cache freshness counters cannot be stored on a PIV card: this module counts its own
//!   writes, starting from a random value per connection, so a host cache never mistakes
//!   another connection's state for this one ([`CardModule::freshness_on_card`] is false).
//!   Card objects (certificates, CHUID, Key History) are read once per connection and kept;
//!   a card reset drops them.
//! - Identity: the CHUID's GUID is the card id; a zero GUID gives a SHA-256 of the FASC-N
//!   (a YubiKey without a CHUID: of its serial number). The serial is Yubico's GET SERIAL
//!   where the model says so, else the GUID in hex.
//! - Card models: `[user_pin]` holds the PIN's rules (6 to 8 digits, padded with FF), and
//!   `[admin_pin]` the PUK's (the PIV admin is a key, not a PIN). Quirks: see [`quirks`] and
//!   the registry's `shared-atr`.
#![forbid(unsafe_code)]

mod admin;
mod auth;
pub mod objects;
mod slot;

use std::collections::BTreeMap;

use rand_core::{OsRng, RngCore};
use scard_iso7816::{CommandApdu, ResponseApdu, StatusWord};
use scard_minidriver::model::PinRules;
use scard_minidriver::{
    CachePolicy, CardCf, CardChannel, CardError, CardIdentity, CardModel, CardModule,
    CardProperties, ContainerInfo, DecryptPadding, Family, KeyAlgorithm, KeySpec, Pin, PinId,
    PinInfo, PinPurpose, PinSet, PinType, PublicKey, Result, Secret, SignPadding, SignRequest,
    padding,
};
use scard_transport::TransportError;
use zeroize::Zeroizing;

pub use admin::Algorithm as ManagementAlgorithm;
pub use objects::{Chuid, KeyHistory};

/// The PIV Card Application AID with its version (SP 800-73-4 Pt 1 §2.2).
pub const PIV_AID: [u8; 11] = [0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00];

/// The management key cards ship with (3DES; AES-192 on YubiKey 5.7 and later).
pub const DEFAULT_MANAGEMENT_KEY: [u8; 24] =
    [1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8];

/// Names of the quirks card models of this family may list.
pub mod quirks {
    /// Yubico's GET METADATA (INS F7) tells the management key algorithm.
    pub const YUBICO_METADATA: &str = "yubico-metadata";
    /// Yubico's GET SERIAL (INS F8) gives the serial number.
    pub const YUBICO_SERIAL: &str = "yubico-serial";
    /// The PIN may hold any characters, not only the digits of SP 800-73-4 Pt 2 §2.4.3.
    pub const PIN_ANY_CHARACTERS: &str = "pin-any-characters";
    /// A wrong management-key witness or response is answered 6A80 (piv-authenticator), not
    /// 6982.
    pub const ADMIN_MISMATCH_6A80: &str = "admin-mismatch-6a80";
}

/// The built-in card models.
static MODELS: [(&str, &str); 4] = [
    ("generic.toml", include_str!("../cards/generic.toml")),
    ("yubikey5.toml", include_str!("../cards/yubikey5.toml")),
    ("nitrokey.toml", include_str!("../cards/nitrokey.toml")),
    ("scard-sim.toml", include_str!("../cards/scard-sim.toml")),
];

/// The PIV family: its models, its probe (SELECT of the PIV AID answering 9000) and its
/// constructor.
pub fn family() -> Family {
    Family { name: "piv", models: &MODELS, probe, open }
}

/// SELECT of the PIV AID (SP 800-73-4 Pt 2 §3.1.1): 9000 means a PIV card. The channel
/// remembers the selection, so the profile does not repeat it.
fn probe(channel: &mut CardChannel) -> Result<bool> {
    match channel.select(&PIV_AID) {
        Ok(_) => Ok(true),
        Err(CardError::Status { .. }) => Ok(false),
        Err(err) => Err(err),
    }
}

fn open(channel: CardChannel, model: CardModel) -> Result<Box<dyn CardModule>> {
    Ok(Box::new(PivCard::new(channel, model)))
}

/// PIN id 3: the PIN Unblocking Key.
pub fn puk_id() -> PinId {
    // 3 is within 0..=7: `new` cannot refuse it.
    PinId::new(3).unwrap_or(PinId::ADMIN)
}

/// Key reference of the PIV Card Application PIN (SP 800-73-4 Pt 1 Table 4a).
const PIN_REF: u8 = 0x80;
/// Key reference of the PIN Unblocking Key.
const PUK_REF: u8 = 0x81;
/// PIN and PUK reference data are 8 bytes (SP 800-73-4 Pt 2 §2.4.3).
const REFERENCE_LEN: usize = 8;
/// Ne of commands that return data: all the card has (the exchange engine sends Le 00 or
/// 0000 and follows 61xx).
const NE_ALL: u32 = scard_iso7816::apdu::MAX_NE;

/// What was read of one key reference's certificate object.
#[derive(Debug, Clone, Default)]
struct SlotObject {
    /// The certificate (DER, inflated), if the object holds one.
    certificate: Option<Vec<u8>>,
    /// Its public key, when it could be parsed.
    certificate_key: Option<PublicKey>,
    /// Taken from the object store (another process read it), not read on this connection.
    from_store: bool,
}

/// What earlier processes kept about this card ([`scard_minidriver::ObjectStore`]), valid for
/// the CHUID it was stored under.
#[derive(Debug, Clone)]
struct Persisted {
    card_id: [u8; 16],
    /// The whole CHUID content the objects were read under.
    chuid: Vec<u8>,
    objects: scard_minidriver::cache::Objects,
}

/// The store's entry name of a key reference's certificate.
fn store_name(key_ref: u8) -> String {
    format!("cert-{key_ref:02x}")
}

/// Card objects read on this connection.
#[derive(Debug, Default)]
struct Cache {
    /// The CHUID: `Some(None)` when the card has none.
    chuid: Option<Option<Chuid>>,
    serial: Option<String>,
    /// The Key History object: `Some(None)` when the card has none.
    key_history: Option<Option<KeyHistory>>,
    slots: BTreeMap<u8, SlotObject>,
    /// The object store's entries for this card, once the CHUID was read.
    persisted: Option<Persisted>,
}

/// A PIV card.
pub struct PivCard {
    channel: CardChannel,
    model: CardModel,
    /// Key references in container-index order.
    slots: Vec<u8>,
    algorithms: Vec<KeyAlgorithm>,
    cardcf: CardCf,
    cache: Cache,
    /// Public keys generated on this connection, by key reference.
    generated: BTreeMap<u8, PublicKey>,
    /// The management key algorithm, once known.
    admin_algorithm: Option<admin::Algorithm>,
    /// The challenge handed out by [`CardModule::admin_challenge`].
    pending_challenge: Option<(admin::Algorithm, Zeroizing<Vec<u8>>)>,
    /// The channel's reset count the cache belongs to.
    resets_seen: u64,
    /// The PIN's tries left as the card last told (a VERIFY's answer), for PIN information
    /// that sends nothing.
    pin_tries: Option<u8>,
}

impl std::fmt::Debug for PivCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PivCard")
            .field("channel", &self.channel)
            .field("model", &self.model.name)
            .field("cardcf", &self.cardcf)
            .field("slots_read", &self.cache.slots.keys().collect::<Vec<_>>())
            .field("generated", &self.generated.keys().collect::<Vec<_>>())
            .field("admin_algorithm", &self.admin_algorithm)
            .finish()
    }
}

fn invalid(what: &'static str, reason: impl Into<String>) -> CardError {
    CardError::InvalidInput { what, reason: reason.into() }
}

impl PivCard {
    /// Opens a PIV card with a model (sends nothing).
    pub fn new(mut channel: CardChannel, model: CardModel) -> Self {
        channel.set_limits(model.limits);
        let slots = if model.containers.is_empty() {
            slot::default_slots()
        } else {
            model.containers.iter().copied().filter(|r| slot::is_key_slot(*r)).collect()
        };
        let algorithms = if model.algorithms.is_empty() {
            slot::default_algorithms()
        } else {
            model.algorithms.clone()
        };
        // Counters that start where no other connection's did (see the crate documentation).
        let mut seed = [0u8; 5];
        OsRng.fill_bytes(&mut seed);
        let cardcf = CardCf {
            version: 0,
            pins: seed[0],
            containers: u16::from_le_bytes([seed[1], seed[2]]),
            files: u16::from_le_bytes([seed[3], seed[4]]),
        };
        let resets_seen = channel.stats().resets;
        Self {
            channel,
            model,
            slots,
            algorithms,
            cardcf,
            cache: Cache::default(),
            generated: BTreeMap::new(),
            admin_algorithm: None,
            pending_challenge: None,
            resets_seen,
            pin_tries: None,
        }
    }

    /// Runs `f` inside a transaction (joining an open one).
    /// A reset by another application reported when the transaction begins has already
    /// dropped the session's state (selection, authentication): the operation goes on from a
    /// clean state, and whatever needs authentication fails as such.
    fn tx<R>(&mut self, f: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        match self.channel.begin() {
            Err(CardError::Transport(TransportError::CardReset { .. })) => {
                self.sync_reset();
                self.channel.begin()?;
            }
            other => other?,
        }
        let result = f(self);
        let ended = self.channel.end();
        let value = result?;
        ended?;
        Ok(value)
    }

    /// Drops what was read when the card was reset since: another application may have
    /// changed it. The counters move so host caches re-read too.
    fn sync_reset(&mut self) {
        let resets = self.channel.stats().resets;
        if resets != self.resets_seen {
            self.resets_seen = resets;
            self.cache = Cache::default();
            self.pending_challenge = None;
            self.cardcf.bump_containers();
            self.cardcf.bump_files();
        }
    }

    /// Sends one command to the PIV application (selecting it first, once per session).
    fn send(&mut self, operation: &'static str, cmd: &CommandApdu) -> Result<ResponseApdu> {
        self.sync_reset();
        self.channel.select(&PIV_AID)?;
        let response = self.channel.transmit(operation, cmd);
        self.sync_reset();
        response
    }

    fn command(
        operation: &'static str,
        ins: u8,
        p1: u8,
        p2: u8,
        data: Vec<u8>,
        ne: Option<u32>,
    ) -> Result<CommandApdu> {
        let mut cmd = CommandApdu::new(0x00, ins, p1, p2);
        if !data.is_empty() {
            cmd = cmd.with_data(data).map_err(|source| CardError::Codec { operation, source })?;
        }
        if let Some(ne) = ne {
            cmd = cmd.with_ne(ne).map_err(|source| CardError::Codec { operation, source })?;
        }
        Ok(cmd)
    }

    /// GET DATA (SP 800-73-4 Pt 2 §3.1.2): the object's content, `None` when the card does not
    /// hold it (6A82) or holds it empty.
    fn get_data(&mut self, operation: &'static str, tag: u32) -> Result<Option<Vec<u8>>> {
        let cmd = Self::command(
            operation,
            0xCB,
            0x3F,
            0xFF,
            objects::get_data_command(tag)?,
            Some(NE_ALL),
        )?;
        let response = self.send(operation, &cmd)?;
        match response.sw() {
            StatusWord::SUCCESS => {
                Ok(objects::object_content(operation, response.data())?.map(<[u8]>::to_vec))
            }
            sw if sw.is_file_not_found() => Ok(None),
            sw => Err(CardError::from_status(operation, sw, None)),
        }
    }

    /// PUT DATA (SP 800-73-4 Pt 2 §3.3.1), which needs the management key.
    fn put_data(&mut self, operation: &'static str, tag: u32, content: &[u8]) -> Result<()> {
        let data = objects::put_data_command(tag, content)?;
        let cmd = Self::command(operation, 0xDB, 0x3F, 0xFF, data, None)?;
        let response = self.send(operation, &cmd)?;
        if response.sw() == StatusWord::SUCCESS {
            Ok(())
        } else {
            Err(CardError::from_status(operation, response.sw(), Some(PinId::ADMIN)))
        }
    }

    fn require_admin(&self, operation: &'static str) -> Result<()> {
        if self.channel.authenticated().contains(PinId::ADMIN) {
            Ok(())
        } else {
            Err(CardError::AuthRequired { operation, pin: PinId::ADMIN })
        }
    }

    fn require_writable(&self) -> Result<()> {
        if self.model.read_only {
            Err(CardError::ReadOnly { model: self.model.name.clone() })
        } else {
            Ok(())
        }
    }

    fn key_ref(&self, index: u8) -> Result<u8> {
        self.slots
            .get(usize::from(index))
            .copied()
            .ok_or(CardError::NoContainer { index, count: self.slots.len() })
    }

    fn chuid(&mut self) -> Result<Option<Chuid>> {
        if let Some(chuid) = &self.cache.chuid {
            return Ok(chuid.clone());
        }
        let chuid = match self.get_data("reading the CHUID", objects::CHUID)? {
            Some(content) => {
                let chuid = Chuid::parse(&content)?;
                if let Some(card_id) = chuid.card_id() {
                    self.load_persisted(card_id, content);
                }
                Some(chuid)
            }
            None => None,
        };
        self.cache.chuid = Some(chuid.clone());
        Ok(chuid)
    }

    /// Takes the certificates earlier processes read from this card (the same CHUID, byte for
    /// byte) for the key references this connection has not read. A PIV card keeps no
    /// freshness counters: the CHUID says it is the same card, not that nobody changed its
    /// certificates since, so these serve single keys ([`Self::slot_object`]: a signature,
    /// a key looked up by its container) and listings read every slot again
    /// ([`Self::fresh_slot_object`]); a private-key operation that shows the key changed
    /// reads its slot again ([`CardModule::reread_container`]).
    fn load_persisted(&mut self, card_id: [u8; 16], chuid: Vec<u8>) {
        let Some(store) = self.channel.object_store() else { return };
        let objects = store.load(&card_id, "piv", &chuid);
        for (name, der) in &objects {
            let Some(key_ref) = self.slots.iter().copied().find(|r| store_name(*r) == *name) else {
                continue;
            };
            // Retired keys follow the Key History object, read with them.
            if slot::retired_position(key_ref).is_some() {
                continue;
            }
            if let Ok(key) = objects::certificate_public_key(der) {
                self.cache.slots.entry(key_ref).or_insert(SlotObject {
                    certificate: Some(der.clone()),
                    certificate_key: Some(key),
                    from_store: true,
                });
            }
        }
        self.cache.persisted = Some(Persisted { card_id, chuid, objects });
    }

    /// Records what a key reference's certificate object holds now (read or written on this
    /// connection) in the object store: a certificate is kept, an empty object is not.
    fn persist_slot(&mut self, key_ref: u8, certificate: Option<&[u8]>) {
        if slot::retired_position(key_ref).is_some() {
            return;
        }
        let Some(p) = self.cache.persisted.as_mut() else { return };
        let name = store_name(key_ref);
        let changed = match certificate {
            Some(der) => p.objects.insert(name, der.to_vec()).as_deref() != Some(der),
            None => p.objects.remove(&name).is_some(),
        };
        if !changed {
            return;
        }
        let (card_id, chuid, objects) = (p.card_id, p.chuid.clone(), p.objects.clone());
        self.channel.store_objects(card_id, "piv", chuid, objects);
    }

    fn key_history(&mut self) -> Result<Option<KeyHistory>> {
        if let Some(kh) = &self.cache.key_history {
            return Ok(kh.clone());
        }
        let kh = match self.get_data("reading the Key History object", objects::KEY_HISTORY)? {
            Some(content) => Some(KeyHistory::parse(&content)?),
            None => None,
        };
        self.cache.key_history = Some(kh.clone());
        Ok(kh)
    }

    /// How many retired keys are in use: those with on-card certificates (Key History C1)
    /// and those generated on this connection after them.
    fn retired_in_use(&mut self) -> Result<u8> {
        let on_card = self.key_history()?.map_or(0, |kh| kh.on_card);
        let generated = self
            .generated
            .keys()
            .filter_map(|r| slot::retired_position(*r))
            .map(|p| p + 1)
            .max()
            .unwrap_or(0);
        Ok(on_card.max(generated))
    }

    /// The certificate object of a key reference, read once per connection (or taken from
    /// the object store, see [`Self::load_persisted`]). Retired keys past the Key History
    /// count are not read.
    fn slot_object(&mut self, key_ref: u8) -> Result<SlotObject> {
        if let Some(obj) = self.cache.slots.get(&key_ref) {
            return Ok(obj.clone());
        }
        self.read_slot_into_cache(key_ref)
    }

    /// The certificate object of a key reference as read on this connection (what the
    /// object store gave is read again): for listings.
    fn fresh_slot_object(&mut self, key_ref: u8) -> Result<()> {
        match self.cache.slots.get(&key_ref) {
            Some(obj) if !obj.from_store => Ok(()),
            _ => self.read_slot_into_cache(key_ref).map(|_| ()),
        }
    }

    fn read_slot_into_cache(&mut self, key_ref: u8) -> Result<SlotObject> {
        let obj = match slot::retired_position(key_ref) {
            Some(p) if p >= self.key_history()?.map_or(0, |kh| kh.on_card) => SlotObject::default(),
            _ => self.read_slot_object(key_ref)?,
        };
        self.persist_slot(key_ref, obj.certificate.as_deref());
        self.cache.slots.insert(key_ref, obj.clone());
        Ok(obj)
    }

    fn read_slot_object(&mut self, key_ref: u8) -> Result<SlotObject> {
        let tag = slot::certificate_tag(key_ref)
            .ok_or_else(|| invalid("key reference", format!("{key_ref:02X} is not a PIV key")))?;
        let Some(content) = self.get_data("reading a certificate", tag)? else {
            return Ok(SlotObject::default());
        };
        let der = objects::certificate_from_object(&content)?;
        let certificate_key = match objects::certificate_public_key(&der) {
            Ok(key) => Some(key),
            Err(err) => {
                tracing::warn!("certificate of key {key_ref:02X}: {err}; the key is not usable");
                None
            }
        };
        Ok(SlotObject { certificate: Some(der), certificate_key, from_store: false })
    }

    /// The public key of a key reference: generated on this connection, or its certificate's.
    fn slot_key(&mut self, key_ref: u8) -> Result<Option<PublicKey>> {
        if let Some(key) = self.generated.get(&key_ref) {
            return Ok(Some(key.clone()));
        }
        Ok(self.slot_object(key_ref)?.certificate_key)
    }

    /// The public key, algorithm and key spec of a container that must hold a key.
    fn container_key(&mut self, index: u8) -> Result<(u8, PublicKey, KeyAlgorithm, KeySpec)> {
        let key_ref = self.key_ref(index)?;
        let key =
            self.slot_key(key_ref)?.ok_or(CardError::EmptyContainer { index, what: "key" })?;
        let algorithm = key.algorithm()?;
        Ok((key_ref, key, algorithm, slot::key_spec(key_ref, algorithm)))
    }

    fn card_id_inner(&mut self) -> Result<[u8; 16]> {
        if let Some(id) = self.chuid()?.and_then(|c| c.card_id()) {
            return Ok(id);
        }
        if self.model.has_quirk(quirks::YUBICO_SERIAL) {
            let serial = self.serial()?;
            if !serial.is_empty() {
                return Ok(objects::hash16(b"PIV serial", serial.as_bytes()));
            }
        }
        Err(CardError::Malformed {
            operation: "reading the card id (CHUID)",
            reason: "the card has no CHUID with a GUID or FASC-N".into(),
        })
    }

    /// The serial number: Yubico's GET SERIAL when the model has the quirk, else the CHUID's
    /// GUID (hex), else its FASC-N (hex), else empty.
    fn serial(&mut self) -> Result<String> {
        if let Some(serial) = &self.cache.serial {
            return Ok(serial.clone());
        }
        let mut serial = String::new();
        if self.model.has_quirk(quirks::YUBICO_SERIAL) {
            const OP: &str = "GET SERIAL";
            let cmd = Self::command(OP, 0xF8, 0x00, 0x00, Vec::new(), Some(NE_ALL))?;
            let response = self.send(OP, &cmd)?;
            match (response.sw(), response.data()) {
                (StatusWord::SUCCESS, [a, b, c, d]) => {
                    serial = u32::from_be_bytes([*a, *b, *c, *d]).to_string();
                }
                (StatusWord::SUCCESS, other) => {
                    return Err(CardError::Malformed {
                        operation: OP,
                        reason: format!("{} bytes, a serial number has 4", other.len()),
                    });
                }
                (sw, _) => tracing::debug!("GET SERIAL answered {sw}"),
            }
        }
        if serial.is_empty() {
            if let Some(chuid) = self.chuid()? {
                if let Some(guid) = chuid.real_guid() {
                    serial = scard_iso7816::hex::encode_upper(&guid);
                } else if let Some(fasc_n) = &chuid.fasc_n {
                    serial = scard_iso7816::hex::encode_upper(fasc_n);
                }
            }
        }
        self.cache.serial = Some(serial.clone());
        Ok(serial)
    }

    /// The container name: a GUID string derived from the card id and the key reference
    /// (stable per card and key, unique across cards).
    fn container_name(card_id: &[u8; 16], key_ref: u8) -> String {
        let h = objects::hash16(b"PIV container", &[card_id.as_slice(), &[key_ref]].concat());
        // {8-4-4-4-12} upper-case hex digits.
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut name = String::with_capacity(38);
        name.push('{');
        for (i, b) in h.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                name.push('-');
            }
            for nibble in [b >> 4, b & 0x0F] {
                name.push(char::from(HEX.get(usize::from(nibble)).copied().unwrap_or(b'0')));
            }
        }
        name.push('}');
        name
    }

    /// Whether a key reference's certificate object is in the connection's cache (read,
    /// taken from the object store or known empty), reading it when not.
    fn ensure_slot(&mut self, key_ref: u8) -> Result<()> {
        if !self.cache.slots.contains_key(&key_ref) {
            self.read_slot_into_cache(key_ref)?;
        }
        Ok(())
    }

    /// Whether a key reference holds a key (generated on this connection, or a certificate's),
    /// its object read.
    fn has_slot_key(&mut self, key_ref: u8) -> Result<bool> {
        if self.generated.contains_key(&key_ref) {
            return Ok(true);
        }
        self.ensure_slot(key_ref)?;
        Ok(self.cache.slots.get(&key_ref).is_some_and(|o| o.certificate_key.is_some()))
    }

    fn container_info(
        &mut self,
        index: u8,
        card_id: &[u8; 16],
        default_index: Option<u8>,
    ) -> Result<ContainerInfo> {
        let key_ref = self.key_ref(index)?;
        self.ensure_slot(key_ref)?;
        let obj = self.cache.slots.get(&key_ref);
        let has_certificate = obj.is_some_and(|o| o.certificate.is_some());
        let key = match self.generated.get(&key_ref) {
            Some(key) => Some(key.clone()),
            None => obj.and_then(|o| o.certificate_key.clone()),
        };
        let algorithm = match &key {
            Some(k) => Some(k.algorithm()?),
            None => None,
        };
        // A name for containers with a key only (as a cmapfile leaves an unused record
        // blank): a listing looks at every slot, and most are empty.
        let name = match &key {
            Some(_) => Self::container_name(card_id, key_ref),
            None => String::new(),
        };
        Ok(ContainerInfo {
            index,
            key_ref,
            name,
            label: slot::label(key_ref),
            default: default_index == Some(index),
            key_spec: algorithm.map(|a| slot::key_spec(key_ref, a)),
            algorithm,
            public_key: key,
            has_certificate,
            always_authenticate: slot::always_authenticate(key_ref),
            pin: slot::pin(key_ref),
        })
    }

    fn all_containers(&mut self) -> Result<Vec<ContainerInfo>> {
        let card_id = self.card_id_inner()?;
        // Read every slot first, so the default (the first container with a key) is known.
        let mut with_key = Vec::new();
        for index in 0..self.slots.len() {
            let index = u8::try_from(index).unwrap_or(u8::MAX);
            let key_ref = self.key_ref(index)?;
            self.fresh_slot_object(key_ref)?;
            if self.has_slot_key(key_ref)? {
                with_key.push(index);
            }
        }
        let default = with_key.first().copied();
        (0..self.slots.len())
            .map(|i| self.container_info(u8::try_from(i).unwrap_or(u8::MAX), &card_id, default))
            .collect()
    }

    /// The reference data of a PIN or PUK: length (and, for the PIN, digits) checked against
    /// the model before anything is sent, padded to 8 bytes (SP 800-73-4 Pt 2 §2.4.3: FF).
    fn reference_data(&self, pin: PinId, value: &Pin) -> Result<Zeroizing<Vec<u8>>> {
        let rules: &PinRules =
            if pin == PinId::USER { &self.model.user_pin } else { &self.model.admin_pin };
        rules.check(value.len()).map_err(|reason| CardError::PinFormat { pin, reason })?;
        if value.len() > REFERENCE_LEN {
            return Err(CardError::PinFormat {
                pin,
                reason: format!("{} characters; PIV reference data is 8 bytes", value.len()),
            });
        }
        if pin == PinId::USER
            && !self.model.has_quirk(quirks::PIN_ANY_CHARACTERS)
            && !value.expose().iter().all(u8::is_ascii_digit)
        {
            return Err(CardError::PinFormat {
                pin,
                reason: "a PIV PIN is made of the digits 0-9 (SP 800-73-4 Pt 2 §2.4.3)".into(),
            });
        }
        let mut out = Zeroizing::new(value.expose().to_vec());
        out.resize(REFERENCE_LEN, rules.pad.unwrap_or(0xFF));
        Ok(out)
    }

    fn pin_info(&mut self, pin: PinId, tries_left: Option<u8>) -> PinInfo {
        let user = PinSet::NONE.with(PinId::USER);
        match pin {
            PinId::USER => PinInfo {
                id: pin,
                name: "PIV Card Application PIN".into(),
                pin_type: PinType::AlphaNumeric,
                purpose: PinPurpose::Primary,
                change_permission: user,
                unblock_permission: PinSet::NONE.with(puk_id()),
                cache_policy: CachePolicy::Normal,
                min_len: self.model.user_pin.min_len,
                max_len: self.model.user_pin.max_len.min(REFERENCE_LEN),
                tries_left,
            },
            PinId::ADMIN => PinInfo {
                id: pin,
                name: "PIV Card Application Administration Key (9B)".into(),
                pin_type: PinType::ChallengeResponse,
                purpose: PinPurpose::Administrator,
                change_permission: PinSet::NONE.with(PinId::ADMIN),
                unblock_permission: PinSet::NONE,
                cache_policy: CachePolicy::None,
                min_len: 16,
                max_len: 32,
                tries_left,
            },
            _ => PinInfo {
                id: pin,
                name: "PIN Unblocking Key".into(),
                pin_type: PinType::AlphaNumeric,
                purpose: PinPurpose::UnblockOnly,
                change_permission: PinSet::NONE.with(pin),
                unblock_permission: PinSet::NONE,
                cache_policy: CachePolicy::None,
                min_len: self.model.admin_pin.min_len,
                max_len: self.model.admin_pin.max_len.min(REFERENCE_LEN),
                tries_left,
            },
        }
    }

    fn check_pin_id(pin: PinId) -> Result<()> {
        if pin == PinId::USER || pin == PinId::ADMIN || pin == puk_id() {
            Ok(())
        } else {
            Err(invalid(
                "PIN id",
                format!("{pin}: a PIV card has PINs 1 (PIN), 2 (management key) and 3 (PUK)"),
            ))
        }
    }

    /// The management key algorithms to try for a key of `len` bytes: the one that worked
    /// before, or the one GET METADATA names, else those the length allows.
    fn admin_candidates(&mut self, len: Option<usize>) -> Result<Vec<admin::Algorithm>> {
        let fits = |a: &admin::Algorithm| len.is_none_or(|l| a.key_len() == l);
        if let Some(a) = self.admin_algorithm.filter(fits) {
            return Ok(vec![a]);
        }
        if self.model.has_quirk(quirks::YUBICO_METADATA) {
            const OP: &str = "GET METADATA";
            let cmd = Self::command(OP, 0xF7, 0x00, admin::KEY_REF, Vec::new(), Some(NE_ALL))?;
            let response = self.send(OP, &cmd)?;
            if response.sw() == StatusWord::SUCCESS {
                if let Some(a) = admin::algorithm_from_metadata(response.data()).filter(fits) {
                    return Ok(vec![a]);
                }
            }
        }
        Ok(match len {
            Some(l) => admin::Algorithm::for_key_len(l),
            None => vec![
                admin::Algorithm::Tdes,
                admin::Algorithm::Aes192,
                admin::Algorithm::Aes128,
                admin::Algorithm::Aes256,
            ],
        })
    }

    /// GENERAL AUTHENTICATE with the management key.
    fn admin_command(
        &mut self,
        operation: &'static str,
        algorithm: admin::Algorithm,
        items: &[(u32, &[u8])],
    ) -> Result<ResponseApdu> {
        let mut data = auth::template(items)?;
        let cmd = Self::command(
            operation,
            0x87,
            algorithm.id(),
            admin::KEY_REF,
            std::mem::take(&mut *data),
            Some(NE_ALL),
        )?;
        self.send(operation, &cmd)
    }

    /// The error of a refused management key (SP 800-73-4 Pt 2 Appendix A: 6982; named quirk:
    /// 6A80).
    fn admin_refused(&self, operation: &'static str, sw: StatusWord) -> CardError {
        match sw {
            StatusWord::SECURITY_STATUS_NOT_SATISFIED => {
                CardError::WrongPin { pin: PinId::ADMIN, tries_left: None }
            }
            StatusWord::INCORRECT_DATA if self.model.has_quirk(quirks::ADMIN_MISMATCH_6A80) => {
                CardError::WrongPin { pin: PinId::ADMIN, tries_left: None }
            }
            sw => CardError::from_status(operation, sw, Some(PinId::ADMIN)),
        }
    }

    /// Mutual authentication with the management key (SP 800-73-4 Pt 2 Appendix A.2): the card
    /// sends an encrypted witness, the host answers the witness and a challenge, the card
    /// answers the encrypted challenge, which the host checks.
    fn admin_key_auth(&mut self, key: &Pin) -> Result<()> {
        const OP: &str = "management key authentication";
        let candidates = self.admin_candidates(Some(key.len()))?;
        if candidates.is_empty() {
            return Err(CardError::PinFormat {
                pin: PinId::ADMIN,
                reason: format!("{} bytes; a management key has 16, 24 or 32", key.len()),
            });
        }
        self.channel.clear_authenticated(PinId::ADMIN.set());
        let last = candidates.len() - 1;
        for (i, algorithm) in candidates.into_iter().enumerate() {
            let response = self.admin_command(OP, algorithm, &[(auth::WITNESS, &[])])?;
            // A witness request with another key's algorithm is refused before any secret is
            // involved: try the next algorithm this key length allows.
            if i < last
                && matches!(response.sw(), StatusWord::INCORRECT_P1P2 | StatusWord::INCORRECT_DATA)
            {
                tracing::debug!(
                    "{OP}: the card refused {algorithm:?} ({}); trying the next",
                    response.sw()
                );
                continue;
            }
            if response.sw() != StatusWord::SUCCESS {
                return Err(CardError::from_status(OP, response.sw(), None));
            }
            let encrypted = auth::answer(OP, response.data(), auth::WITNESS)?;
            if encrypted.len() != algorithm.block_len() {
                return Err(CardError::Malformed {
                    operation: OP,
                    reason: format!("witness of {} bytes for {algorithm:?}", encrypted.len()),
                });
            }
            let witness = algorithm.decrypt(key.expose(), &encrypted)?;
            let mut challenge = vec![0u8; algorithm.block_len()];
            OsRng.fill_bytes(&mut challenge);
            let response = self.admin_command(
                OP,
                algorithm,
                &[(auth::WITNESS, &witness), (auth::CHALLENGE, &challenge)],
            )?;
            if response.sw() != StatusWord::SUCCESS {
                return Err(self.admin_refused(OP, response.sw()));
            }
            let answer = auth::answer(OP, response.data(), auth::RESPONSE)?;
            let expected = algorithm.encrypt(key.expose(), &challenge)?;
            if !constant_time_eq(&answer, &expected) {
                return Err(CardError::Crypto {
                    operation: OP,
                    reason: "the card's answer to the host challenge is wrong".into(),
                });
            }
            self.admin_algorithm = Some(algorithm);
            self.channel.set_authenticated(PinId::ADMIN);
            return Ok(());
        }
        Err(CardError::Unsupported {
            what: "this management key algorithm".into(),
            model: self.model.name.clone(),
        })
    }

    /// GENERAL AUTHENTICATE with a private key: `items` in a 7C template, the 82 answer back.
    fn private_key_op(
        &mut self,
        operation: &'static str,
        key_ref: u8,
        algorithm: KeyAlgorithm,
        items: &[(u32, &[u8])],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let id = slot::algorithm_id(algorithm)
            .ok_or_else(|| self.unsupported(&format!("{algorithm} keys")))?;
        // The PIN is card state that another application's VERIFY may have set: a key that
        // needs it is used only after this session verified it.
        let pin = slot::pin(key_ref);
        if pin != PinId::EVERYONE && !self.channel.authenticated().contains(pin) {
            return Err(CardError::AuthRequired { operation, pin });
        }
        let mut data = auth::template(items)?;
        let cmd =
            Self::command(operation, 0x87, id, key_ref, std::mem::take(&mut *data), Some(NE_ALL))?;
        let response = self.send(operation, &cmd)?;
        if response.sw() != StatusWord::SUCCESS {
            let pin = slot::pin(key_ref);
            let pin = (pin != PinId::EVERYONE).then_some(pin);
            return Err(CardError::from_status(operation, response.sw(), pin));
        }
        auth::answer(operation, response.data(), auth::RESPONSE)
    }

    /// Everything about a signature that can be decided without the card's private key: the
    /// key, and the input block for GENERAL AUTHENTICATE.
    fn sign_input(
        &mut self,
        index: u8,
        request: &SignRequest<'_>,
    ) -> Result<(u8, KeyAlgorithm, Zeroizing<Vec<u8>>)> {
        let (key_ref, key, algorithm, spec) = self.container_key(index)?;
        let input = match (&key, spec, request.padding) {
            (PublicKey::Ec { curve, .. }, KeySpec::Ecdsa(_), SignPadding::None) => {
                if let Some(hash) = request.hash {
                    if request.data.len() != hash.len() {
                        return Err(invalid(
                            "digest",
                            format!("{} bytes, {hash:?} has {}", request.data.len(), hash.len()),
                        ));
                    }
                }
                if request.data.is_empty() {
                    return Err(invalid("digest", "empty"));
                }
                auth::ecdsa_input(*curve, request.data)
            }
            (PublicKey::Ec { .. }, KeySpec::Ecdh(_), _) => {
                return Err(self.unsupported(&format!(
                    "signing with the key management key {key_ref:02X} (an ECDH key)"
                )));
            }
            (PublicKey::Ec { .. }, _, padding) => {
                return Err(self.unsupported(&format!("{padding:?} padding with an ECC key")));
            }
            (PublicKey::Rsa { n, .. }, _, padding) => {
                let k = n.len();
                match padding {
                    SignPadding::Pkcs1 => {
                        let t = match request.hash {
                            Some(hash) => hash.digest_info(request.data)?,
                            None => request.data.to_vec(),
                        };
                        padding::pkcs1_v15_sign_block(&t, k)?
                    }
                    SignPadding::Pss { salt_len } => {
                        let hash = request.hash.ok_or_else(|| {
                            invalid(
                                "signature request",
                                "PSS needs the hash algorithm of the digest",
                            )
                        })?;
                        let bits =
                            n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
                        padding::pss_encode(hash, request.data, salt_len, bits)?
                    }
                    SignPadding::None => {
                        if request.data.len() != k {
                            return Err(invalid(
                                "data to sign",
                                format!(
                                    "{} bytes; raw RSA signs a whole {k}-byte block",
                                    request.data.len()
                                ),
                            ));
                        }
                        request.data.to_vec()
                    }
                }
            }
        };
        Ok((key_ref, algorithm, Zeroizing::new(input)))
    }

    fn decrypt_key(
        &mut self,
        index: u8,
        padding: &DecryptPadding,
    ) -> Result<(u8, KeyAlgorithm, usize)> {
        let (key_ref, key, algorithm, spec) = self.container_key(index)?;
        let PublicKey::Rsa { n, .. } = &key else {
            return Err(self.unsupported("RSA decryption with an ECC key (use key agreement)"));
        };
        if spec != KeySpec::Exchange {
            return Err(self.unsupported(&format!(
                "decryption with {} (a signature key)",
                slot::label(key_ref)
            )));
        }
        let k = n.len();
        if let DecryptPadding::Oaep { hash, .. } = padding {
            if k < 2 * hash.len() + 2 {
                return Err(invalid("OAEP", format!("{hash:?} does not fit a {k}-byte key")));
            }
        }
        Ok((key_ref, algorithm, k))
    }

    /// Updates the Key History object after the retired certificates changed (SP 800-73-4 Pt 1
    /// §3.3.2): C1 is the number of retired keys with on-card certificates.
    fn write_key_history(&mut self, on_card: u8) -> Result<()> {
        let mut kh = self.key_history()?.unwrap_or_default();
        if kh.on_card == on_card {
            return Ok(());
        }
        kh.on_card = on_card;
        let content = kh.encode()?;
        self.put_data("writing the Key History object", objects::KEY_HISTORY, &content)?;
        self.cache.key_history = Some(Some(kh));
        Ok(())
    }

    /// Retired keys are used in order (SP 800-73-4 Pt 1 §3.3.2: the lowest references first):
    /// a new one goes to the first free retired reference.
    fn check_retired_order(&mut self, key_ref: u8) -> Result<()> {
        let Some(position) = slot::retired_position(key_ref) else { return Ok(()) };
        let in_use = self.retired_in_use()?;
        if position > in_use {
            return Err(invalid(
                "container",
                format!(
                    "retired keys are used in order; the next free one is {:02X}, not {key_ref:02X}",
                    slot::RETIRED_FIRST + in_use
                ),
            ));
        }
        Ok(())
    }

    fn write_certificate(&mut self, index: u8, der: &[u8]) -> Result<()> {
        const OP: &str = "writing a certificate";
        self.require_writable()?;
        let key_ref = self.key_ref(index)?;
        let tag = slot::certificate_tag(key_ref).ok_or_else(|| {
            invalid("container", format!("{key_ref:02X} has no certificate object"))
        })?;
        let cert_key = objects::certificate_public_key(der)?;
        if let Some(generated) = self.generated.get(&key_ref) {
            if *generated != cert_key {
                return Err(invalid(
                    "certificate",
                    format!("its public key is not the key generated in {}", slot::label(key_ref)),
                ));
            }
        }
        let algorithm = cert_key.algorithm()?;
        if slot::algorithm_id(algorithm).is_none() {
            return Err(self.unsupported(&format!("{algorithm} keys")));
        }
        self.check_retired_order(key_ref)?;
        self.require_admin(OP)?;
        let content = objects::certificate_object(der)?;
        self.put_data(OP, tag, &content)?;
        self.cache.slots.insert(
            key_ref,
            SlotObject {
                certificate: Some(der.to_vec()),
                certificate_key: Some(cert_key),
                from_store: false,
            },
        );
        self.persist_slot(key_ref, Some(der));
        if let Some(position) = slot::retired_position(key_ref) {
            let on_card = self.key_history()?.map_or(0, |kh| kh.on_card);
            if position >= on_card {
                self.write_key_history(position + 1)?;
            }
        }
        self.cardcf.bump_files();
        self.cardcf.bump_containers();
        Ok(())
    }

    fn remove_certificate(&mut self, index: u8) -> Result<()> {
        const OP: &str = "deleting a certificate";
        self.require_writable()?;
        let key_ref = self.key_ref(index)?;
        let tag = slot::certificate_tag(key_ref).ok_or_else(|| {
            invalid("container", format!("{key_ref:02X} has no certificate object"))
        })?;
        if self.slot_object(key_ref)?.certificate.is_none() {
            return Ok(());
        }
        let mut new_on_card = None;
        if let Some(position) = slot::retired_position(key_ref) {
            let on_card = self.key_history()?.map_or(0, |kh| kh.on_card);
            if position + 1 != on_card {
                return Err(invalid(
                    "container",
                    format!(
                        "retired certificates are removed last first (the Key History counts them from 82); the last is {:02X}",
                        slot::RETIRED_FIRST + on_card.saturating_sub(1)
                    ),
                ));
            }
            new_on_card = Some(position);
        }
        self.require_admin(OP)?;
        // The Key History count first: a retired certificate past the count is not read, so
        // an interruption between the two writes leaves the key already gone (its object is
        // overwritten when the reference is used again), never a count naming a missing one.
        if let Some(on_card) = new_on_card {
            self.write_key_history(on_card)?;
        }
        self.put_data(OP, tag, &[])?;
        self.cache.slots.insert(key_ref, SlotObject::default());
        self.persist_slot(key_ref, None);
        self.cardcf.bump_files();
        self.cardcf.bump_containers();
        Ok(())
    }
}

/// Comparison without an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl CardModule for PivCard {
    fn model(&self) -> &CardModel {
        &self.model
    }

    fn channel(&mut self) -> &mut CardChannel {
        &mut self.channel
    }

    fn properties(&mut self) -> Result<CardProperties> {
        self.tx(|s| {
            let card_id = s.card_id_inner()?;
            let serial = s.serial()?;
            let containers = s.all_containers()?;
            Ok(CardProperties {
                family: "piv".into(),
                model: s.model.name.clone(),
                card_id,
                serial,
                key_generation: s.model.key_generation && !s.model.read_only,
                certificate_compression: s.model.certificate_compression,
                algorithms: s.algorithms.clone(),
                max_containers: containers.len(),
                free_containers: containers.iter().filter(|c| !c.has_key()).count(),
                read_only: s.model.read_only,
            })
        })
    }

    fn card_id(&mut self) -> Result<[u8; 16]> {
        self.tx(Self::card_id_inner)
    }

    /// The CHUID (and Yubico's serial where the model says so): no certificate is read.
    fn identity(&mut self) -> Result<CardIdentity> {
        self.tx(|s| {
            let card_id = s.card_id_inner()?;
            let serial = s.serial()?;
            Ok(CardIdentity {
                family: "piv".into(),
                model: s.model.name.clone(),
                card_id,
                serial,
                key_generation: s.model.key_generation && !s.model.read_only,
                algorithms: s.algorithms.clone(),
                max_containers: s.slots.len(),
                read_only: s.model.read_only,
            })
        })
    }

    /// The PIN's tries left as the last VERIFY answered, if one did on this connection.
    fn pins_without_probe(&mut self) -> Result<Vec<PinInfo>> {
        let user = self.pin_info(PinId::USER, self.pin_tries);
        let admin = self.pin_info(PinId::ADMIN, None);
        let puk = self.pin_info(puk_id(), None);
        Ok(vec![user, admin, puk])
    }

    fn pins(&mut self) -> Result<Vec<PinInfo>> {
        self.tx(|s| {
            let tries = match s.tries_left(PinId::USER) {
                Ok(t) => t,
                Err(CardError::Status { .. }) => None,
                Err(err) => return Err(err),
            };
            let user = s.pin_info(PinId::USER, tries);
            let admin = s.pin_info(PinId::ADMIN, None);
            let puk = s.pin_info(puk_id(), None);
            Ok(vec![user, admin, puk])
        })
    }

    /// SP 800-73-4 Pt 2 §3.2.1: VERIFY without data answers 9000 when the PIN is verified
    /// (`None`: the count is not told) and 63Cx with the tries left otherwise, spending none.
    /// The PUK cannot be asked (VERIFY 81 is not a PIV command) and the management key has no
    /// counter.
    fn tries_left(&mut self, pin: PinId) -> Result<Option<u8>> {
        Self::check_pin_id(pin)?;
        if pin != PinId::USER {
            return Ok(None);
        }
        self.tx(|s| {
            const OP: &str = "VERIFY (tries left)";
            let cmd = Self::command(OP, 0x20, 0x00, PIN_REF, Vec::new(), None)?;
            let sw = s.send(OP, &cmd)?.sw();
            let tries = match sw {
                StatusWord::SUCCESS => None,
                StatusWord::AUTH_METHOD_BLOCKED => Some(0),
                StatusWord::VERIFICATION_FAILED => None,
                sw => match sw.tries_left() {
                    Some(n) => Some(n),
                    None => return Err(CardError::from_status(OP, sw, None)),
                },
            };
            s.pin_tries = tries;
            Ok(tries)
        })
    }

    fn authenticate(&mut self, pin: PinId, value: &Pin) -> Result<()> {
        Self::check_pin_id(pin)?;
        if pin == PinId::ADMIN {
            return self.authenticate_admin_key(value);
        }
        if pin != PinId::USER {
            return Err(self.unsupported("verifying the PUK (it only unblocks the PIN)"));
        }
        let data = self.reference_data(pin, value)?;
        self.tx(|s| {
            const OP: &str = "VERIFY";
            let cmd = Self::command(OP, 0x20, 0x00, PIN_REF, data.to_vec(), None)?;
            let sw = s.send(OP, &cmd)?.sw();
            // What the answer says of the tries left (9000: back to the card's maximum, which
            // PIV does not tell).
            s.pin_tries = match sw {
                StatusWord::AUTH_METHOD_BLOCKED => Some(0),
                sw => sw.tries_left(),
            };
            if sw == StatusWord::SUCCESS {
                s.channel.set_authenticated(PinId::USER);
                Ok(())
            } else {
                // A failed VERIFY resets the PIN's security status (SP 800-73-4 Pt 2 §3.2.1).
                s.channel.clear_authenticated(PinId::USER.set());
                Err(CardError::from_status(OP, sw, Some(PinId::USER)))
            }
        })
    }

    /// A challenge for the management key (SP 800-73-4 Pt 2 Appendix A.1, `81` request): the
    /// caller encrypts it with the key and gives the result to
    /// [`CardModule::admin_response`], in the same transaction.
    fn admin_challenge(&mut self) -> Result<Vec<u8>> {
        self.tx(|s| {
            const OP: &str = "management key challenge";
            s.pending_challenge = None;
            let candidates = s.admin_candidates(None)?;
            let last = candidates.len().saturating_sub(1);
            for (i, algorithm) in candidates.into_iter().enumerate() {
                let response = s.admin_command(OP, algorithm, &[(auth::CHALLENGE, &[])])?;
                if i < last
                    && matches!(
                        response.sw(),
                        StatusWord::INCORRECT_P1P2 | StatusWord::INCORRECT_DATA
                    )
                {
                    continue;
                }
                if response.sw() != StatusWord::SUCCESS {
                    return Err(CardError::from_status(OP, response.sw(), None));
                }
                let challenge = auth::answer(OP, response.data(), auth::CHALLENGE)?;
                if challenge.len() != algorithm.block_len() {
                    return Err(CardError::Malformed {
                        operation: OP,
                        reason: format!("challenge of {} bytes for {algorithm:?}", challenge.len()),
                    });
                }
                let out = challenge.to_vec();
                s.pending_challenge = Some((algorithm, challenge));
                return Ok(out);
            }
            Err(s.unsupported("management key challenge"))
        })
    }

    fn admin_response(&mut self, response: &[u8]) -> Result<()> {
        self.tx(|s| {
            const OP: &str = "management key response";
            let (algorithm, _challenge) = s
                .pending_challenge
                .take()
                .ok_or_else(|| invalid("admin response", "no challenge was asked for"))?;
            if response.len() != algorithm.block_len() {
                return Err(invalid(
                    "admin response",
                    format!(
                        "{} bytes; {algorithm:?} blocks have {}",
                        response.len(),
                        algorithm.block_len()
                    ),
                ));
            }
            s.channel.clear_authenticated(PinId::ADMIN.set());
            let answer = s.admin_command(OP, algorithm, &[(auth::RESPONSE, response)])?;
            if answer.sw() != StatusWord::SUCCESS {
                return Err(s.admin_refused(OP, answer.sw()));
            }
            s.admin_algorithm = Some(algorithm);
            s.channel.set_authenticated(PinId::ADMIN);
            Ok(())
        })
    }

    fn authenticate_admin_key(&mut self, key: &Pin) -> Result<()> {
        self.tx(|s| s.admin_key_auth(key))
    }

    fn change_pin(&mut self, pin: PinId, old: &Pin, new: &Pin) -> Result<()> {
        Self::check_pin_id(pin)?;
        if pin == PinId::ADMIN {
            // SP 800-73-4 has no command for it (YubiKeys have one of their own).
            return Err(self.unsupported("changing the management key"));
        }
        let mut data = self.reference_data(pin, old)?;
        data.extend_from_slice(&self.reference_data(pin, new)?);
        let reference = if pin == PinId::USER { PIN_REF } else { PUK_REF };
        self.tx(|s| {
            const OP: &str = "CHANGE REFERENCE DATA";
            let cmd = Self::command(OP, 0x24, 0x00, reference, data.to_vec(), None)?;
            let sw = s.send(OP, &cmd)?.sw();
            if pin == PinId::USER {
                // The answer tells the PIN's tries left (9000: back to the maximum).
                s.pin_tries = match sw {
                    StatusWord::AUTH_METHOD_BLOCKED => Some(0),
                    sw => sw.tries_left(),
                };
            }
            if sw != StatusWord::SUCCESS {
                if pin == PinId::USER {
                    s.channel.clear_authenticated(PinId::USER.set());
                }
                return Err(CardError::from_status(OP, sw, Some(pin)));
            }
            s.cardcf.bump_pins();
            Ok(())
        })
    }

    /// RESET RETRY COUNTER (SP 800-73-4 Pt 2 §3.2.3): the PUK unblocks the PIN and sets a new
    /// one. A wrong PUK is reported as PIN 3 with its tries left.
    fn unblock_pin(&mut self, pin: PinId, unblock: &Pin, new: &Pin) -> Result<()> {
        Self::check_pin_id(pin)?;
        if pin != PinId::USER {
            return Err(self.unsupported(&format!("unblocking {pin}")));
        }
        let mut data = self.reference_data(puk_id(), unblock)?;
        data.extend_from_slice(&self.reference_data(PinId::USER, new)?);
        self.tx(|s| {
            const OP: &str = "RESET RETRY COUNTER";
            let cmd = Self::command(OP, 0x2C, 0x00, PIN_REF, data.to_vec(), None)?;
            let sw = s.send(OP, &cmd)?.sw();
            if sw != StatusWord::SUCCESS {
                return Err(CardError::from_status(OP, sw, Some(puk_id())));
            }
            // Unblocked: the PIN's counter is back to its maximum (not told).
            s.pin_tries = None;
            s.channel.clear_authenticated(PinId::USER.set());
            s.cardcf.bump_pins();
            Ok(())
        })
    }

    /// The PIN's security status is reset with VERIFY P1 FF (SP 800-73-4 Pt 2 §3.2.1). PIV has
    /// no command that drops the management key's: for the admin the card is reset (which
    /// drops the PIN's too).
    fn deauthenticate(&mut self, set: PinSet) -> Result<()> {
        if set.contains(PinId::ADMIN) {
            // A reset that cuts no other application's exchange short (see the channel).
            self.pending_challenge = None;
            return self.channel.reset_card();
        }
        self.tx(|s| {
            if set.contains(PinId::USER) {
                const OP: &str = "VERIFY (reset)";
                let cmd = Self::command(OP, 0x20, 0xFF, PIN_REF, Vec::new(), None)?;
                let sw = s.send(OP, &cmd)?.sw();
                if sw != StatusWord::SUCCESS {
                    return Err(CardError::from_status(OP, sw, None));
                }
                s.channel.clear_authenticated(PinId::USER.set());
            }
            Ok(())
        })
    }

    fn containers(&mut self) -> Result<Vec<ContainerInfo>> {
        self.tx(Self::all_containers)
    }

    fn reread_container(&mut self, index: u8) -> Result<ContainerInfo> {
        self.tx(|s| {
            let key_ref = s.key_ref(index)?;
            s.cache.slots.remove(&key_ref);
            s.fresh_slot_object(key_ref)?;
            s.container(index)
        })
    }

    fn container(&mut self, index: u8) -> Result<ContainerInfo> {
        self.tx(|s| {
            let card_id = s.card_id_inner()?;
            // The default container is the first with a key: look at those before `index`.
            let mut default = None;
            for i in 0..=index {
                let key_ref = s.key_ref(i)?;
                if s.slot_key(key_ref)?.is_some() {
                    default = Some(i);
                    break;
                }
            }
            s.container_info(index, &card_id, default)
        })
    }

    /// GENERATE ASYMMETRIC KEY PAIR (SP 800-73-4 Pt 2 §3.3.2), after management key
    /// authentication. The slot's old certificate, which will not match, is removed first.
    fn generate_key(&mut self, index: u8, algorithm: KeyAlgorithm) -> Result<PublicKey> {
        const OP: &str = "GENERATE ASYMMETRIC KEY PAIR";
        self.require_writable()?;
        if !self.model.key_generation {
            return Err(self.unsupported("on-card key generation"));
        }
        let key_ref = self.key_ref(index)?;
        let id = match slot::algorithm_id(algorithm) {
            Some(id) if self.algorithms.contains(&algorithm) => id,
            _ => return Err(self.unsupported(&format!("{algorithm} keys"))),
        };
        self.tx(|s| {
            s.check_retired_order(key_ref)?;
            s.require_admin(OP)?;
            // The old certificate goes first: the slot's key is known from its certificate, so
            // an interruption after it leaves an empty container (as a deletion does), never
            // the new key behind the old key's certificate.
            if s.slot_object(key_ref)?.certificate.is_some() {
                let tag = slot::certificate_tag(key_ref).unwrap_or_default();
                if let Some(position) = slot::retired_position(key_ref) {
                    // The last retired certificate: the Key History count goes down first.
                    let on_card = s.key_history()?.map_or(0, |kh| kh.on_card);
                    if position + 1 == on_card {
                        s.write_key_history(position)?;
                    }
                }
                s.put_data("removing the old certificate", tag, &[])?;
                s.cache.slots.insert(key_ref, SlotObject::default());
                s.persist_slot(key_ref, None);
                s.cardcf.bump_files();
                s.cardcf.bump_containers();
            }
            let cmd =
                Self::command(OP, 0x47, 0x00, key_ref, auth::generate_command(id)?, Some(NE_ALL))?;
            let response = s.send(OP, &cmd)?;
            if response.sw() != StatusWord::SUCCESS {
                return Err(CardError::from_status(OP, response.sw(), Some(PinId::ADMIN)));
            }
            let key = auth::generated_key(response.data(), algorithm)?;
            s.generated.insert(key_ref, key.clone());
            s.cardcf.bump_containers();
            Ok(key)
        })
    }

    /// PIV cannot delete a private key: the certificate is removed, and with it the key from
    /// every later connection's view (and from this one's).
    fn delete_container(&mut self, index: u8) -> Result<()> {
        self.tx(|s| {
            let key_ref = s.key_ref(index)?;
            s.remove_certificate(index)?;
            if s.generated.remove(&key_ref).is_some() {
                s.cardcf.bump_containers();
            }
            Ok(())
        })
    }

    fn check_sign(&mut self, index: u8, request: &SignRequest<'_>) -> Result<()> {
        self.tx(|s| s.sign_input(index, request).map(|_| ()))
    }

    fn sign(&mut self, index: u8, request: &SignRequest<'_>) -> Result<Vec<u8>> {
        self.tx(|s| {
            const OP: &str = "sign";
            let (key_ref, algorithm, input) = s.sign_input(index, request)?;
            let output = s.private_key_op(
                OP,
                key_ref,
                algorithm,
                &[(auth::RESPONSE, &[]), (auth::CHALLENGE, &input)],
            )?;
            match algorithm {
                KeyAlgorithm::Rsa(_) => auth::left_pad(&output, algorithm.signature_len())
                    .ok_or_else(|| CardError::Malformed {
                        operation: OP,
                        reason: format!(
                            "RSA signature of {} bytes for a {algorithm} key",
                            output.len()
                        ),
                    }),
                KeyAlgorithm::Ec(curve) => auth::ecdsa_raw(curve, &output),
            }
        })
    }

    fn check_decrypt(&mut self, index: u8, padding: &DecryptPadding) -> Result<()> {
        self.tx(|s| s.decrypt_key(index, padding).map(|_| ()))
    }

    fn decrypt(&mut self, index: u8, padding: &DecryptPadding, data: &[u8]) -> Result<Secret> {
        self.tx(|s| {
            const OP: &str = "decrypt";
            let (key_ref, algorithm, k) = s.decrypt_key(index, padding)?;
            let input = auth::left_pad(data, k).ok_or_else(|| {
                invalid("ciphertext", format!("{} bytes for a {k}-byte key", data.len()))
            })?;
            let output = s.private_key_op(
                OP,
                key_ref,
                algorithm,
                &[(auth::RESPONSE, &[]), (auth::CHALLENGE, &input)],
            )?;
            let block =
                Zeroizing::new(auth::left_pad(&output, k).ok_or_else(|| CardError::Malformed {
                    operation: OP,
                    reason: format!("{} bytes for a {k}-byte key", output.len()),
                })?);
            match padding {
                DecryptPadding::None => Ok(Secret::new(block.to_vec())),
                DecryptPadding::Pkcs1 => padding::pkcs1_v15_decrypt_unpad(&block),
                DecryptPadding::Oaep { hash, label } => padding::oaep_unpad(&block, *hash, label),
            }
        })
    }

    /// ECDH (SP 800-73-4 Pt 2 §3.2.4, Appendix A.5: 85 the peer's point, 82 the shared secret
    /// x), with a key management key (9D or retired).
    fn agree(&mut self, index: u8, peer: &PublicKey) -> Result<Secret> {
        self.tx(|s| {
            const OP: &str = "key agreement";
            let (key_ref, _key, algorithm, spec) = s.container_key(index)?;
            let KeySpec::Ecdh(curve) = spec else {
                return Err(s.unsupported(&format!(
                    "key agreement with {} ({})",
                    slot::label(key_ref),
                    spec.name()
                )));
            };
            let point = auth::peer_point(curve, peer)?;
            let output = s.private_key_op(
                OP,
                key_ref,
                algorithm,
                &[(auth::RESPONSE, &[]), (auth::EXPONENTIATION, &point)],
            )?;
            if output.len() != curve.field_len() {
                return Err(CardError::Malformed {
                    operation: OP,
                    reason: format!("shared secret of {} bytes for {curve:?}", output.len()),
                });
            }
            Ok(Secret::new(output.to_vec()))
        })
    }

    fn certificate(&mut self, index: u8) -> Result<Option<Vec<u8>>> {
        self.tx(|s| {
            let key_ref = s.key_ref(index)?;
            Ok(s.slot_object(key_ref)?.certificate)
        })
    }

    fn put_certificate(&mut self, index: u8, der: Option<&[u8]>) -> Result<()> {
        self.tx(|s| match der {
            Some(der) => s.write_certificate(index, der),
            None => s.remove_certificate(index),
        })
    }

    fn cardcf(&mut self) -> Result<CardCf> {
        self.sync_reset();
        Ok(self.cardcf)
    }

    fn freshness_on_card(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::PivCard;

    /// Container names are key names people keep (`\\.\<reader>\{...}`): the GUID form of
    /// SHA-256("PIV container" || card id || key reference), cut 8-4-4-4-12.
    #[test]
    fn container_names_keep_their_form() {
        let id = [0x11u8; 16];
        let h = super::objects::hash16(b"PIV container", &[id.as_slice(), &[0x9A]].concat());
        let hex = scard_iso7816::hex::encode_upper(&h);
        let expected = format!(
            "{{{}-{}-{}-{}-{}}}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        );
        assert_eq!(PivCard::container_name(&id, 0x9A), expected);
    }
}
