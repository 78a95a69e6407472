//! A simulated PIV card: the NIST SP 800-73-4 PIV Card Application, as real clients (OpenSC's
//! PIV driver, `piv-tool`, `pkcs11-tool`, `yubico-piv-tool`) see it.
//!
//! Commands (SP 800-73-4 Pt 2 §3): SELECT (full or right-truncated AID), GET DATA, PUT DATA,
//! VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER, GENERAL AUTHENTICATE (RSA raw, ECDSA on
//! a pre-hashed input, ECDH, management-key authentication with 3DES or AES), GENERATE
//! ASYMMETRIC KEY PAIR. Chaining, `61xx` and extended length are [`CardIo`]'s.
//!
//! Behaviours of this card worth naming (each is a choice a real card also makes one way):
//! - The PIV application is the card's only application and its default one: it is selected
//!   at power-on, and a SELECT of any other AID answers 6A82 and leaves it selected.
//! - The Key History object is computed from the retired certificate objects present (C1 is
//!   the highest retired certificate number written), unless PUT DATA wrote one.
//! - VERIFY also takes the PUK (81): it is compared and counted like the PIN, the empty form
//!   answers the PUK's tries left, and a match grants no access right.
//! - A key's certificate object is left as it is when GENERATE replaces the key.
//! - A command without Le is answered as if Le were 00 ([`CardIo::answer_without_le`]), as
//!   JavaCard PIV cards over T=1 and YubiKeys do: yubico-piv-tool's SELECT has no Le.
//! - No YubiKey instruction (GET VERSION, GET SERIAL, ...): yubico-piv-tool 2.2 works without
//!   them (it prints "No data available" for version and serial). The one YubiKey value this
//!   card knows is the RSA 4096 algorithm identifier 16.
//! - No retry counter on the management key (SP 800-73-4 defines none).

mod admin;
mod objects;
mod tlv;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use rand_core::RngCore;
use scard_iso7816::status::StatusWord;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::io::{CardIo, Command, Reply};
use crate::keys::{KeyAlgorithm, PrivateKey, PublicKey, StoredKey};
use crate::pin::Pin;
use crate::{Card, Family, SimRng};

pub use admin::{DEFAULT_MANAGEMENT_KEY, ManagementAlgorithm, ManagementKey};
use objects::{ReadAccess, tag};

/// The ATR, our own (ISO/IEC 7816-3 §8): TA1 13 (Fi 372, Di 4), T=1 only, and ten historical
/// bytes (7816-4 §8.1.1): category 80, then the COMPACT-TLV "card issuer's data" 58
/// `scardPIV`; TCK F9. A card of its own, so that no real card's model (or a third-party
/// card presenting another ATR) is taken for it.
pub const ATR: [u8; 16] = [
    0x3B, 0x9A, 0x13, 0x81, 0x01, 0x80, 0x58, b's', b'c', b'a', b'r', b'd', b'P', b'I', b'V', 0xF9,
];

/// The PIV AID with its version (SP 800-73-4 Pt 1 §2.2).
pub const PIV_AID: [u8; 11] = objects::PIV_AID;

/// The PIN of a new card.
pub const DEFAULT_PIN: &[u8] = b"123456";
/// The PUK of a new card.
pub const DEFAULT_PUK: &[u8] = b"12345678";
/// PIN retry limit (real PIV cards and YubiKeys ship with 3).
pub const PIN_TRIES: u8 = 3;
/// PUK retry limit.
pub const PUK_TRIES: u8 = 3;

/// Shortest right-truncated AID SELECT accepts: the NIST RID A0 00 00 03 08, which
/// yubico-piv-tool sends (ISO/IEC 7816-4 §7.1.1: selection by a truncated DF name).
const MIN_AID_LEN: usize = 5;

/// PIN and PUK reference values are 8 bytes, padded with FF (SP 800-73-4 Pt 2 §2.4.3).
const REFERENCE_LEN: usize = 8;

/// An asymmetric key reference of the PIV Card Application (SP 800-73-4 Pt 1 §5.1, Table 4b):
/// 9A PIV Authentication, 9C Digital Signature, 9D Key Management, 9E Card Authentication,
/// 82 to 95 the twenty retired key management keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeySlot(u8);

/// When a private key may be used (SP 800-73-4 Pt 1 Table 4b, access rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PinPolicy {
    /// Card Authentication: always.
    Never,
    /// PIN verified in this session.
    Session,
    /// Digital Signature, "PIN Always": PIN verified immediately before each use.
    Always,
}

impl KeySlot {
    /// 9A, PIV Authentication.
    pub const PIV_AUTHENTICATION: KeySlot = KeySlot(0x9A);
    /// 9C, Digital Signature.
    pub const DIGITAL_SIGNATURE: KeySlot = KeySlot(0x9C);
    /// 9D, Key Management.
    pub const KEY_MANAGEMENT: KeySlot = KeySlot(0x9D);
    /// 9E, Card Authentication.
    pub const CARD_AUTHENTICATION: KeySlot = KeySlot(0x9E);

    /// The slot with key reference `key_ref`, if it is an asymmetric key reference.
    pub fn new(key_ref: u8) -> Option<KeySlot> {
        matches!(key_ref, 0x9A | 0x9C | 0x9D | 0x9E | 0x82..=0x95).then_some(KeySlot(key_ref))
    }

    /// The key reference.
    pub fn key_ref(self) -> u8 {
        self.0
    }

    /// The tag of the certificate object of this key (SP 800-73-4 Pt 1 Table 3).
    pub fn certificate_tag(self) -> u32 {
        match self.0 {
            0x9A => tag::PIV_AUTH_CERT,
            0x9C => tag::SIGNATURE_CERT,
            0x9D => tag::KEY_MGMT_CERT,
            0x9E => tag::CARD_AUTH_CERT,
            retired => tag::RETIRED_CERT_1 + u32::from(retired.saturating_sub(0x82)),
        }
    }

    fn pin_policy(self) -> PinPolicy {
        match self.0 {
            0x9E => PinPolicy::Never,
            0x9C => PinPolicy::Always,
            _ => PinPolicy::Session,
        }
    }
}

/// The algorithm identifier of an asymmetric key (SP 800-78-4 Table 6-2: 07 RSA 2048, 11 ECC
/// P-256, 14 ECC P-384; SP 800-78-5: 05 RSA 3072; YubiKey: 16 RSA 4096).
fn algorithm_id(alg: KeyAlgorithm) -> u8 {
    match alg {
        KeyAlgorithm::Rsa2048 => 0x07,
        KeyAlgorithm::Rsa3072 => 0x05,
        KeyAlgorithm::Rsa4096 => 0x16,
        KeyAlgorithm::P256 => 0x11,
        KeyAlgorithm::P384 => 0x14,
    }
}

fn algorithm_from_id(id: u8) -> Option<KeyAlgorithm> {
    [
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
        KeyAlgorithm::P256,
        KeyAlgorithm::P384,
    ]
    .into_iter()
    .find(|alg| algorithm_id(*alg) == id)
}

/// PIN reference data: 6 to 8 ASCII digits, padded to 8 bytes with FF (SP 800-73-4 Pt 2
/// §2.4.3).
fn is_pin_format(value: &[u8]) -> bool {
    let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
    value.len() == REFERENCE_LEN && digits >= 6 && value.iter().skip(digits).all(|b| *b == 0xFF)
}

/// PUK reference data: 8 bytes of any value (SP 800-73-4 Pt 2 §2.4.3).
fn is_puk_format(value: &[u8]) -> bool {
    value.len() == REFERENCE_LEN
}

/// `value` padded with FF to 8 bytes (how clients send PINs).
fn padded(value: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(value.to_vec());
    if out.len() < REFERENCE_LEN {
        out.resize(REFERENCE_LEN, 0xFF);
    }
    out
}

/// A key reference of VERIFY, CHANGE REFERENCE DATA and RESET RETRY COUNTER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reference {
    /// 80, the PIV Card Application PIN.
    Pin,
    /// 81, the PIN Unblocking Key.
    Puk,
}

/// The reference in P2. SP 800-73-4 Pt 1 Table 4a (key references): 00 global PIN and 96/97
/// (OCC) exist in the data model but not on this card: 6A88; anything else is no reference.
fn reference(p2: u8, puk_allowed: bool) -> Result<Reference, StatusWord> {
    match p2 {
        0x80 => Ok(Reference::Pin),
        0x81 if puk_allowed => Ok(Reference::Puk),
        0x00 | 0x96 | 0x97 => Err(StatusWord::REFERENCED_DATA_NOT_FOUND),
        _ => Err(StatusWord::INCORRECT_P1P2),
    }
}

/// The persistent state: what a card keeps without power.
struct Persistent {
    pin: Pin,
    puk: Pin,
    management_key: ManagementKey,
    /// Data object contents by tag (without the 53 wrapper).
    objects: BTreeMap<u32, Vec<u8>>,
    keys: BTreeMap<KeySlot, PrivateKey>,
}

/// The state file form of [`Persistent`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedState {
    pin: Pin,
    puk: Pin,
    management_key: ManagementKey,
    #[serde(with = "crate::state::hex_map")]
    objects: BTreeMap<u32, Vec<u8>>,
    /// Keys by key reference in hex ("9A").
    keys: BTreeMap<String, StoredKey>,
}

/// A witness or challenge the card handed out for management-key authentication, waiting
/// for the next command (SP 800-73-4 Pt 2 Appendix A.1).
enum AdminExchange {
    /// The plain witness; the card sent it encrypted.
    Witness(Zeroizing<Vec<u8>>),
    /// The plain challenge; the card expects it encrypted.
    Challenge(Zeroizing<Vec<u8>>),
}

/// The volatile security status, cleared by power-on and reset.
#[derive(Default)]
struct Session {
    /// The PIN was verified (and not reset since).
    pin_verified: bool,
    /// A PIN verification not yet used by a "PIN Always" key (9C).
    pin_fresh: bool,
    /// The PUK was verified with VERIFY 81 (grants nothing; answers the empty VERIFY).
    puk_verified: bool,
    /// The PIV Card Application Administrator is authenticated (management key, 9B).
    admin: bool,
    /// The witness or challenge of a management-key authentication in progress.
    exchange: Option<AdminExchange>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("pin_verified", &self.pin_verified)
            .field("pin_fresh", &self.pin_fresh)
            .field("puk_verified", &self.puk_verified)
            .field("admin", &self.admin)
            .field("exchange_pending", &self.exchange.is_some())
            .finish()
    }
}

/// The application behind the transmission layer.
struct PivApp {
    rng: SimRng,
    card: Persistent,
    session: Session,
}

/// A simulated PIV card. See the module documentation.
pub struct PivCard {
    io: CardIo,
    app: PivApp,
}

impl std::fmt::Debug for PivCard {
    /// Slots and object tags only; PINs, keys and the management key are redacted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let card = &self.app.card;
        let slots: Vec<String> =
            card.keys.iter().map(|(s, k)| format!("{:02X}:{:?}", s.0, k.algorithm())).collect();
        let objects: Vec<String> = card.objects.keys().map(|t| format!("{t:X}")).collect();
        f.debug_struct("PivCard")
            .field("io", &self.io)
            .field("pin", &card.pin)
            .field("puk", &card.puk)
            .field("management_key", &card.management_key)
            .field("keys", &slots)
            .field("objects", &objects)
            .field("session", &self.app.session)
            .finish()
    }
}

impl PivCard {
    /// A new card: default PIN, PUK and management key, no key pairs, no certificates; a CHUID
    /// with a GUID and a CCC with a card identifier drawn from `rng`, and a Discovery object.
    pub fn new(mut rng: SimRng) -> Self {
        let mut guid = [0u8; 16];
        rng.fill_bytes(&mut guid);
        let mut card_id = [0u8; 14];
        rng.fill_bytes(&mut card_id);
        let mut objects = BTreeMap::new();
        objects.insert(tag::CHUID, objects::chuid(&guid));
        objects.insert(tag::CCC, objects::ccc(&card_id));
        objects.insert(tag::DISCOVERY, objects::discovery());
        let card = Persistent {
            pin: Pin::new(&padded(DEFAULT_PIN), PIN_TRIES),
            puk: Pin::new(&padded(DEFAULT_PUK), PUK_TRIES),
            management_key: ManagementKey::default_key(),
            objects,
            keys: BTreeMap::new(),
        };
        Self {
            io: CardIo::new(true).answer_without_le(),
            app: PivApp { rng, card, session: Session::default() },
        }
    }

    /// Loads a card saved by [`Card::save_state`].
    pub fn from_state(state: serde_json::Value, rng: SimRng) -> Result<Self, String> {
        let saved: SavedState = serde_json::from_value(state).map_err(|e| e.to_string())?;
        if !saved.management_key.is_consistent() {
            return Err("management key length does not match its algorithm".to_owned());
        }
        if let Some(t) = saved.objects.keys().find(|t| objects::lookup(**t).is_none()) {
            return Err(format!("data object {t:X} is not a PIV data object"));
        }
        let mut keys = BTreeMap::new();
        for (name, stored) in &saved.keys {
            let slot = u8::from_str_radix(name, 16)
                .ok()
                .and_then(KeySlot::new)
                .ok_or_else(|| format!("{name:?} is not a PIV asymmetric key reference"))?;
            let key = stored.key().map_err(|e| format!("key {name}: {e}"))?;
            keys.insert(slot, key);
        }
        let card = Persistent {
            pin: saved.pin,
            puk: saved.puk,
            management_key: saved.management_key,
            objects: saved.objects,
            keys,
        };
        Ok(Self {
            io: CardIo::new(true).answer_without_le(),
            app: PivApp { rng, card, session: Session::default() },
        })
    }

    /// Replaces the management key (provisioning: SP 800-73-4 has no command for it).
    pub fn set_management_key(&mut self, key: ManagementKey) {
        self.app.card.management_key = key;
        self.app.session.admin = false;
    }

    /// The GUID of the CHUID, if the CHUID holds one.
    pub fn guid(&self) -> Option<[u8; 16]> {
        self.app.card.objects.get(&tag::CHUID).and_then(|c| objects::chuid_guid(c))
    }

    /// The public key in `slot`, if a key was generated there.
    pub fn public_key(&self, slot: KeySlot) -> Option<PublicKey> {
        self.app.card.keys.get(&slot).map(PrivateKey::public)
    }

    /// Personalises `slot` as an issuer's provisioning station would (outside the card
    /// commands): a new key pair of `algorithm` and a self-signed certificate for it
    /// (`CN=<common_name>`, a random serial number) in the slot's certificate object, laid
    /// out as SP 800-73-4 Pt 1 Table 10 says: 70 the certificate, 71 CertInfo 00
    /// (uncompressed), FE the empty error detection code. Returns the certificate (DER).
    pub fn personalise(
        &mut self,
        slot: KeySlot,
        algorithm: KeyAlgorithm,
        common_name: &str,
    ) -> Result<Vec<u8>, crate::keys::KeyError> {
        let key = PrivateKey::generate(algorithm, &mut self.app.rng)?;
        let mut serial = [0u8; 8];
        self.app.rng.fill_bytes(&mut serial);
        let certificate = crate::cert::self_signed(&key, common_name, &serial)?;
        let mut object = Vec::with_capacity(certificate.len() + 12);
        tlv::put(&mut object, 0x70, &certificate);
        tlv::put(&mut object, 0x71, &[0x00]);
        tlv::put(&mut object, 0xFE, &[]);
        self.app.card.objects.insert(slot.certificate_tag(), object);
        self.app.card.keys.insert(slot, key);
        Ok(certificate)
    }
}

impl Card for PivCard {
    fn family(&self) -> Family {
        Family::Piv
    }

    fn atr(&self) -> &[u8] {
        &ATR
    }

    fn power_on(&mut self) {
        self.io.reset();
        self.app.session = Session::default();
    }

    fn process(&mut self, command: &[u8]) -> Vec<u8> {
        let app = &mut self.app;
        self.io.process(command, |cmd| app.handle(cmd))
    }

    fn save_state(&self) -> serde_json::Value {
        let card = &self.app.card;
        let mut keys = BTreeMap::new();
        for (slot, key) in &card.keys {
            match StoredKey::new(key) {
                Ok(stored) => {
                    keys.insert(format!("{:02X}", slot.0), stored);
                }
                Err(err) => {
                    // Cannot happen with keys this card generated; a state without the key
                    // would silently lose it, so the state is refused instead.
                    tracing::error!(slot = slot.0, %err, "PIV key cannot be encoded; state not saved");
                    return serde_json::Value::Null;
                }
            }
        }
        let saved = SavedState {
            pin: card.pin.clone(),
            puk: card.puk.clone(),
            management_key: card.management_key.clone(),
            objects: card.objects.clone(),
            keys,
        };
        serde_json::to_value(saved).unwrap_or(serde_json::Value::Null)
    }
}

/// The dynamic authentication template of GENERAL AUTHENTICATE (SP 800-73-4 Pt 2 §3.2.4,
/// Table 7): 7C holding 80 witness, 81 challenge, 82 response, 85 exponentiation.
#[derive(Default)]
struct AuthTemplate<'a> {
    witness: Option<&'a [u8]>,
    challenge: Option<&'a [u8]>,
    response: Option<&'a [u8]>,
    exponentiation: Option<&'a [u8]>,
}

impl<'a> AuthTemplate<'a> {
    /// Parses the data field: exactly one 7C, each element at most once, no other element.
    fn parse(data: &'a [u8]) -> Result<Self, StatusWord> {
        let bad = StatusWord::INCORRECT_DATA;
        let template = tlv::single(data).filter(|t| t.tag().value() == 0x7C).ok_or(bad)?;
        let mut parsed = AuthTemplate::default();
        for child in template.children() {
            let child = child.map_err(|_| bad)?;
            let slot = match child.tag().value() {
                0x80 => &mut parsed.witness,
                0x81 => &mut parsed.challenge,
                0x82 => &mut parsed.response,
                0x85 => &mut parsed.exponentiation,
                _ => return Err(bad),
            };
            if slot.replace(child.value()).is_some() {
                return Err(bad);
            }
        }
        Ok(parsed)
    }
}

/// `7C { tag value }`.
fn auth_response(tag: u32, value: &[u8]) -> Vec<u8> {
    let inner = Zeroizing::new(tlv::object(tag, value));
    tlv::object(0x7C, &inner)
}

/// Compares without an early exit.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl PivApp {
    fn handle(&mut self, cmd: &Command<'_>) -> Reply {
        tracing::trace!(?cmd, "PIV command");
        // A witness or challenge answers only the command right after it.
        let exchange = self.session.exchange.take();
        // SP 800-73-4 Pt 2 §3: interindustry class 00 (chaining is CardIo's); no secure
        // messaging or logical channels on this card.
        if cmd.cla != 0x00 {
            return Err(StatusWord::CLA_NOT_SUPPORTED);
        }
        match cmd.ins {
            0xA4 => self.select(cmd),
            0xCB => self.get_data(cmd),
            0xDB => self.put_data(cmd),
            0x20 => self.verify(cmd),
            0x24 => self.change_reference_data(cmd),
            0x2C => self.reset_retry_counter(cmd),
            0x87 => self.general_authenticate(cmd, exchange),
            0x47 => self.generate_key_pair(cmd),
            _ => Err(StatusWord::INS_NOT_SUPPORTED),
        }
    }

    /// SP 800-73-4 Pt 2 §3.1.1 SELECT: P1 04 (by DF name), P2 00 (FCI: the application
    /// property template) or 0C (no response data); the AID, possibly right-truncated.
    fn select(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.p1 != 0x04 || !matches!(cmd.p2, 0x00 | 0x0C) {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        let aid = cmd.data;
        if aid.len() < MIN_AID_LEN || !PIV_AID.starts_with(aid) {
            return Err(StatusWord::FILE_NOT_FOUND);
        }
        if cmd.p2 == 0x0C {
            return Ok(Vec::new());
        }
        Ok(objects::application_property_template())
    }

    /// SP 800-73-4 Pt 2 §3.1.2 GET DATA: P1-P2 3FFF, data 5C with the object's tag; the
    /// content comes back in 53 (or as the 7E / 7F61 object itself).
    fn get_data(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.p1p2() != 0x3FFF {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        if cmd.data.is_empty() {
            return Err(StatusWord::WRONG_LENGTH);
        }
        let requested = requested_tag(cmd.data)?;
        let info = objects::lookup(requested).ok_or(StatusWord::FILE_NOT_FOUND)?;
        // SP 800-73-4 Pt 1 Table 2: PIN-protected objects need the PIN verified, present or not.
        if info.read == ReadAccess::Pin && !self.session.pin_verified {
            return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
        }
        let content = if requested == tag::KEY_HISTORY {
            self.key_history()
        } else {
            self.card.objects.get(&requested).cloned().ok_or(StatusWord::FILE_NOT_FOUND)?
        };
        Ok(tlv::object(info.response_tag, &content))
    }

    /// The stored Key History object, or one computed from the retired certificates present.
    fn key_history(&self) -> Vec<u8> {
        if let Some(stored) = self.card.objects.get(&tag::KEY_HISTORY) {
            return stored.clone();
        }
        let on_card = (1..=20u8)
            .rev()
            .find(|n| {
                let t = tag::RETIRED_CERT_1 + u32::from(n - 1);
                self.card.objects.contains_key(&t)
            })
            .unwrap_or(0);
        objects::key_history(on_card)
    }

    /// SP 800-73-4 Pt 2 §3.3.1 PUT DATA: P1-P2 3FFF, data 5C tag + 53 content, or the complete
    /// Discovery object (7E) or BIT group template (7F61). Needs the administrator (9B).
    /// Empty content deletes the object.
    fn put_data(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.p1p2() != 0x3FFF {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        // SP 800-73-4 Pt 1 Table 2: every container is written under the administrator key.
        if !self.session.admin {
            return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
        }
        if cmd.data.is_empty() {
            return Err(StatusWord::WRONG_LENGTH);
        }
        let bad = StatusWord::INCORRECT_DATA;
        let (first, rest) =
            scard_iso7816::tlv::ber::decode_one(cmd.data, tlv::COMMAND_DATA).map_err(|_| bad)?;
        let (target, content) = match first.tag().value() {
            whole @ (tag::DISCOVERY | tag::BIT_GROUP_TEMPLATE) if rest.is_empty() => {
                (whole, first.value())
            }
            0x5C => {
                let target = tag_number(first.value()).ok_or(bad)?;
                let body = tlv::single(rest).filter(|t| t.tag().value() == 0x53).ok_or(bad)?;
                // 7E and 7F61 are written whole, never through 5C.
                if matches!(target, tag::DISCOVERY | tag::BIT_GROUP_TEMPLATE) {
                    return Err(bad);
                }
                (target, body.value())
            }
            _ => return Err(bad),
        };
        if objects::lookup(target).is_none() || !tlv::is_sequence(content) {
            return Err(bad);
        }
        if content.len() > objects::MAX_OBJECT_LEN {
            return Err(StatusWord::NOT_ENOUGH_MEMORY);
        }
        if content.is_empty() {
            self.card.objects.remove(&target);
        } else {
            self.card.objects.insert(target, content.to_vec());
        }
        Ok(Vec::new())
    }

    /// SP 800-73-4 Pt 2 §3.2.1 VERIFY: P1 00 with the reference data (8 bytes) to verify, or
    /// without data to ask the status (9000 verified, 63Cx tries left, 6983 blocked); P1 FF
    /// without data resets the security status of the reference.
    fn verify(&mut self, cmd: &Command<'_>) -> Reply {
        let reset = match cmd.p1 {
            0x00 => false,
            0xFF => true,
            _ => return Err(StatusWord::INCORRECT_P1P2),
        };
        let which = reference(cmd.p2, true)?;
        if reset {
            if !cmd.data.is_empty() {
                return Err(StatusWord::INCORRECT_DATA);
            }
            match which {
                Reference::Pin => {
                    self.session.pin_verified = false;
                    self.session.pin_fresh = false;
                }
                Reference::Puk => self.session.puk_verified = false,
            }
            return Ok(Vec::new());
        }
        let (value, verified) = match which {
            Reference::Pin => (&mut self.card.pin, self.session.pin_verified),
            Reference::Puk => (&mut self.card.puk, self.session.puk_verified),
        };
        if cmd.data.is_empty() {
            return if verified && !value.is_blocked() {
                Ok(Vec::new())
            } else {
                Err(value.status())
            };
        }
        let well_formed = match which {
            Reference::Pin => is_pin_format(cmd.data),
            Reference::Puk => is_puk_format(cmd.data),
        };
        if !well_formed {
            return Err(StatusWord::INCORRECT_DATA);
        }
        let outcome = value.verify(cmd.data);
        // A failed comparison also resets the security status of the reference.
        let ok = outcome.is_ok();
        match which {
            Reference::Pin => {
                self.session.pin_verified = ok;
                self.session.pin_fresh = ok;
            }
            Reference::Puk => self.session.puk_verified = ok,
        }
        outcome.map(|()| Vec::new())
    }

    /// SP 800-73-4 Pt 2 §3.2.2 CHANGE REFERENCE DATA: P1 00, P2 80 (PIN) or 81 (PUK), data
    /// current value || new value, 8 bytes each.
    fn change_reference_data(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.p1 != 0x00 {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        let which = reference(cmd.p2, true)?;
        if cmd.data.is_empty() {
            return Err(StatusWord::WRONG_LENGTH);
        }
        let (old, new) = cmd.data.split_at(cmd.data.len().min(REFERENCE_LEN));
        let format = match which {
            Reference::Pin => is_pin_format,
            Reference::Puk => is_puk_format,
        };
        if !format(old) || !format(new) {
            return Err(StatusWord::INCORRECT_DATA);
        }
        let value = match which {
            Reference::Pin => &mut self.card.pin,
            Reference::Puk => &mut self.card.puk,
        };
        let outcome = value.verify(old);
        if outcome.is_ok() {
            value.set(new);
        }
        if outcome.is_err() {
            match which {
                Reference::Pin => {
                    self.session.pin_verified = false;
                    self.session.pin_fresh = false;
                }
                Reference::Puk => self.session.puk_verified = false,
            }
        }
        outcome.map(|()| Vec::new())
    }

    /// SP 800-73-4 Pt 2 §3.2.3 RESET RETRY COUNTER: P1 00, P2 80, data PUK || new PIN.
    fn reset_retry_counter(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.p1 != 0x00 {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        if reference(cmd.p2, false)? != Reference::Pin {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        if cmd.data.is_empty() {
            return Err(StatusWord::WRONG_LENGTH);
        }
        let (puk, new_pin) = cmd.data.split_at(cmd.data.len().min(REFERENCE_LEN));
        if !is_puk_format(puk) || !is_pin_format(new_pin) {
            return Err(StatusWord::INCORRECT_DATA);
        }
        let outcome = self.card.puk.verify(puk);
        if outcome.is_ok() {
            self.card.pin.set(new_pin);
            self.session.pin_verified = false;
            self.session.pin_fresh = false;
        } else {
            self.session.puk_verified = false;
        }
        outcome.map(|()| Vec::new())
    }

    /// SP 800-73-4 Pt 2 §3.2.4 GENERAL AUTHENTICATE: P1 algorithm, P2 key reference, data the
    /// dynamic authentication template 7C.
    fn general_authenticate(
        &mut self,
        cmd: &Command<'_>,
        exchange: Option<AdminExchange>,
    ) -> Reply {
        if cmd.data.is_empty() {
            return Err(StatusWord::WRONG_LENGTH);
        }
        if cmd.p2 == 0x9B {
            return self.authenticate_admin(cmd, exchange);
        }
        let slot = KeySlot::new(cmd.p2).ok_or(StatusWord::INCORRECT_P1P2)?;
        let key = self.card.keys.get(&slot).ok_or(StatusWord::REFERENCED_DATA_NOT_FOUND)?;
        // The algorithm in P1 is the algorithm of the key in the slot.
        if cmd.p1 != algorithm_id(key.algorithm()) {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        // SP 800-73-4 Pt 1 Table 4b: the key's access rule.
        let allowed = match slot.pin_policy() {
            PinPolicy::Never => true,
            PinPolicy::Session => self.session.pin_verified,
            PinPolicy::Always => self.session.pin_verified && self.session.pin_fresh,
        };
        if !allowed {
            return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
        }
        if slot.pin_policy() == PinPolicy::Always {
            // "PIN Always": one verification, one use.
            self.session.pin_fresh = false;
        }
        let template = AuthTemplate::parse(cmd.data)?;
        let bad = StatusWord::INCORRECT_DATA;
        // The response element is asked for, empty; the input is 81 (sign or decrypt) or 85
        // (key agreement), never both.
        if !matches!(template.response, Some([])) || template.witness.is_some() {
            return Err(bad);
        }
        let result = match (template.challenge, template.exponentiation) {
            (Some(input), None) if key.algorithm().is_rsa() => {
                key.rsa_raw(input, &mut self.rng).map_err(|_| bad)?
            }
            (Some(hash), None) => Zeroizing::new(key.ecdsa_sign_der(hash).map_err(|_| bad)?),
            (None, Some(point)) if !key.algorithm().is_rsa() => key.ecdh(point).map_err(|_| bad)?,
            _ => return Err(bad),
        };
        Ok(auth_response(0x82, &result))
    }

    /// Management-key authentication (SP 800-73-4 Pt 2 Appendix A.1 and A.2; the key of
    /// reference 9B, its algorithm in P1):
    /// - witness request `80 {}` → `80 E(W)`; then `80 W` (+ `81 C`, + `82 {}` for mutual
    ///   authentication) → nothing, or `82 E(C)`;
    /// - challenge request `81 {}` → `81 C`; then `82 E(C)` → nothing.
    fn authenticate_admin(&mut self, cmd: &Command<'_>, exchange: Option<AdminExchange>) -> Reply {
        let alg = self.card.management_key.algorithm();
        if cmd.p1 != alg.id() {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        let t = AuthTemplate::parse(cmd.data)?;
        let bad = StatusWord::INCORRECT_DATA;
        let block = alg.block_len();
        if t.exponentiation.is_some() {
            return Err(bad);
        }
        match (t.witness, t.challenge, t.response) {
            (Some([]), None, None) => {
                let witness = Zeroizing::new(self.rng.bytes(block));
                let encrypted = self.card.management_key.encrypt_block(&witness).ok_or(bad)?;
                self.session.exchange = Some(AdminExchange::Witness(witness));
                Ok(auth_response(0x80, &encrypted))
            }
            (None, Some([]), None) => {
                let challenge = Zeroizing::new(self.rng.bytes(block));
                let reply = auth_response(0x81, &challenge);
                self.session.exchange = Some(AdminExchange::Challenge(challenge));
                Ok(reply)
            }
            (Some(witness), challenge, response) if response.is_none_or(<[u8]>::is_empty) => {
                let Some(AdminExchange::Witness(expected)) = exchange else {
                    return Err(StatusWord::CONDITIONS_NOT_SATISFIED);
                };
                if witness.len() != block || challenge.is_some_and(|c| c.len() != block) {
                    return Err(bad);
                }
                if !same(witness, &expected) {
                    self.session.admin = false;
                    return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
                }
                self.session.admin = true;
                match challenge {
                    None => Ok(Vec::new()),
                    Some(c) => {
                        let encrypted = self.card.management_key.encrypt_block(c).ok_or(bad)?;
                        Ok(auth_response(0x82, &encrypted))
                    }
                }
            }
            (None, None, Some(response)) if !response.is_empty() => {
                let Some(AdminExchange::Challenge(challenge)) = exchange else {
                    return Err(StatusWord::CONDITIONS_NOT_SATISFIED);
                };
                let expected = self.card.management_key.encrypt_block(&challenge).ok_or(bad)?;
                if response.len() != block {
                    return Err(bad);
                }
                self.session.admin = same(response, &expected);
                if self.session.admin {
                    Ok(Vec::new())
                } else {
                    Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED)
                }
            }
            _ => Err(bad),
        }
    }

    /// SP 800-73-4 Pt 2 §3.3.2 GENERATE ASYMMETRIC KEY PAIR: P1 00, P2 the key reference, data
    /// the control reference template AC with 80 the algorithm (and optionally 81, a parameter
    /// this card ignores). Needs the administrator. Answers 7F49 with 81 modulus and 82 public
    /// exponent, or 86 the EC point.
    fn generate_key_pair(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.p1 != 0x00 {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        let slot = KeySlot::new(cmd.p2).ok_or(StatusWord::INCORRECT_P1P2)?;
        if !self.session.admin {
            return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
        }
        if cmd.data.is_empty() {
            return Err(StatusWord::WRONG_LENGTH);
        }
        let bad = StatusWord::INCORRECT_DATA;
        let template = tlv::single(cmd.data).filter(|t| t.tag().value() == 0xAC).ok_or(bad)?;
        let mut algorithm = None;
        for child in template.children() {
            let child = child.map_err(|_| bad)?;
            match (child.tag().value(), child.value()) {
                (0x80, [id]) if algorithm.is_none() => algorithm = Some(*id),
                (0x81, _) => {}
                _ => return Err(bad),
            }
        }
        let alg = algorithm.and_then(algorithm_from_id).ok_or(bad)?;
        let key = PrivateKey::generate(alg, &mut self.rng).map_err(|err| {
            tracing::error!(%err, "PIV key generation failed");
            StatusWord::EXECUTION_ERROR
        })?;
        let mut public = Vec::new();
        match key.public() {
            PublicKey::Rsa { n, e } => {
                tlv::put(&mut public, 0x81, &n);
                tlv::put(&mut public, 0x82, &e);
            }
            PublicKey::Ec { point, .. } => tlv::put(&mut public, 0x86, &point),
        }
        self.card.keys.insert(slot, key);
        Ok(tlv::object(0x7F49, &public))
    }
}

/// The object tag of a GET DATA tag list (SP 800-73-4 Pt 2 §3.1.2: 5C with one tag).
fn requested_tag(data: &[u8]) -> Result<u32, StatusWord> {
    let list =
        tlv::single(data).filter(|t| t.tag().value() == 0x5C).ok_or(StatusWord::INCORRECT_DATA)?;
    tag_number(list.value()).ok_or(StatusWord::INCORRECT_DATA)
}

/// A tag of 1 to 3 bytes as a number (PIV tags: 7E, 7F61, 5FC1xx).
fn tag_number(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || bytes.len() > 3 {
        return None;
    }
    Some(bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
}
