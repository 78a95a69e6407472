//! A simulated GIDS card (Microsoft Generic Identity Device Specification), the card that
//! stores the Windows smart card minidriver's logical file system natively, as data objects in
//! BER-TLV files.
//!
//! Sources. The GIDS 1.0 specification text (GIDS v1.0.docx) could not be read while this was
//! written; the Smart Card Minidriver Specification v7 layouts (cardid, cardcf, cmapfile) are
//! those of DESIGN.md. Every GIDS byte layout here is one that OpenSC's GIDS driver
//! (src/libopensc/card-gids.c, card-gids.h, pkcs15-gids.c) sends or parses, or that the
//! GidsApplet JavaCard implementation (github.com/vletoux/GidsApplet, which OpenSC was
//! developed against) answers; each is named where it is used. Choices of this simulator that
//! no source fixes are marked "simulator choice".
//!
//! What the card offers:
//! - SELECT of the application by (partial) AID A0 00 00 03 97 42 54 46 59 (FCI 61 with the
//!   full AID and the supported admin authentication mechanisms), and of EFs by identifier;
//! - GET DATA (CB) / PUT DATA (DB) of DOs in the DO files by file identifier in P1-P2 and the
//!   DO tag in a 5C tag list; GET DATA 3FFF for the PIN status (7F71/7F72) and public keys
//!   (70 {84 kid}); PUT DATA 3FFF 70 for key import (admin key, RSA);
//! - VERIFY (PIN 80, the empty form, 00 82 to log out), CHANGE REFERENCE DATA, RESET RETRY
//!   COUNTER after admin authentication, GENERAL AUTHENTICATE with the 3DES admin key;
//! - CREATE FILE, ACTIVATE FILE, DELETE FILE; GENERATE ASYMMETRIC KEY PAIR (RSA 2048/3072/4096,
//!   P-256, P-384); MSE SET and PSO COMPUTE DIGITAL SIGNATURE / DECIPHER.
//!
//! A fresh card is personalised as `gids-tool --initialize` leaves a card (PIN 123456, admin
//! key 24 bytes of 00) plus one RSA 2048 container with a self-signed certificate, so that
//! `pkcs15-tool -D` lists a PIN, a key pair and a certificate.

mod admin;
mod cert;
mod fs;
mod perso;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Oaep, RsaPrivateKey};
use scard_iso7816::StatusWord;
use scard_iso7816::tlv::ber::{self, Tag};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use self::admin::AdminState;
use self::fs::{Auth, Content, Ef, KeySlot, LifeCycle, op};
use crate::io::{CardIo, Command, Reply};
use crate::keys::{PrivateKey, PublicKey};
use crate::pin::Pin;
use crate::state::{hex_bytes, hex_map};
use crate::{Card, Family, SimRng};

/// The ATR of the Microsoft Virtual Smart Card (a GIDS card) as pcsc-tools'
/// smartcard_list.txt records it when shared through VMware Workstation: T=1, the GIDS AID in
/// the historical bytes (COMPACT-TLV 80, F B: application identifier), and the TCK that the
/// entry "Microsoft Virtual Smart Card 0" lacks. OpenSC's GIDS driver matches by SELECT, not by
/// ATR; no OpenSC driver claims this ATR.
pub const ATR: [u8; 17] = [
    0x3B, 0x8D, 0x01, 0x80, 0xFB, 0xA0, 0x00, 0x00, 0x03, 0x97, 0x42, 0x54, 0x46, 0x59, 0x04, 0x01,
    0xCF,
];

/// The application identifier: RID A0 00 00 03 97, PIX 42 54 46 59 ("BTFY") and two version
/// bytes. OpenSC selects the 9-byte prefix and reads the version byte from the FCI (01 GIDS v1,
/// 02 v2, anything else generic); GidsApplet answers 02 01. Simulator choice: 04 01, the AID
/// the Microsoft Virtual Smart Card announces in the ATR above.
pub const AID: [u8; 11] = [0xA0, 0x00, 0x00, 0x03, 0x97, 0x42, 0x54, 0x46, 0x59, 0x04, 0x01];

/// The shortest AID prefix SELECT accepts: RID and PIX without the version (OpenSC gids_aid).
const AID_PREFIX: usize = 9;

/// The application DF's file identifier (GidsApplet AFDID; OpenSC GIDS_APPLET_EFID).
const APP_FID: u16 = 0x3FFF;

/// FCP of the application DF (GidsApplet): FDB 38 (DF), compact attributes for CREATE FILE of
/// an EF (b2) and DELETE FILE of a child (b1): user PIN or admin key.
const APP_FCP: [u8; 10] = [0x62, 0x08, 0x82, 0x01, 0x38, 0x8C, 0x03, 0x03, 0x30, 0x30];

/// The compact attributes inside [`APP_FCP`].
const APP_SA: [u8; 3] = [0x03, 0x30, 0x30];

/// FMD of the application (GidsApplet): PIN usage policy 5F2F 60, 7F65 {80 00}.
const APP_FMD: [u8; 11] = [0x64, 0x09, 0x5F, 0x2F, 0x01, 0x60, 0x7F, 0x65, 0x02, 0x80, 0x00];

/// FCI of the application (GidsApplet; mysmartlogon GIDS KB: the minidriver needs tag 61): 4F
/// with the AID, 73 {40 01 C0}: mutual and external admin authentication supported.
fn fci() -> Vec<u8> {
    let mut out = vec![0x61, 0x12, 0x4F, 0x0B];
    out.extend_from_slice(&AID);
    out.extend_from_slice(&[0x73, 0x03, 0x40, 0x01, 0xC0]);
    out
}

/// Longest DO value accepted (OpenSC MAX_GIDS_FILE_SIZE).
const MAX_DO_LEN: usize = 65_000;

/// Most EFs the card holds (simulator choice: room for 126 containers and their certificates).
const MAX_FILES: usize = 300;

/// PIN lengths (GidsApplet PIN_MIN_LENGTH, PIN_MAX_LENGTH; OpenSC gids-tool "4 - 16").
const PIN_LEN: std::ops::RangeInclusive<usize> = 4..=16;

/// Key reference of the user PIN (OpenSC GIDS_PIN_IDENTIFIER).
const PIN_REF: u8 = 0x80;

/// MSE/CRT template tags: B6 digital signature, B8 confidentiality, A4 authentication.
const CRT_DST: u8 = 0xB6;
const CRT_CT: u8 = 0xB8;
const CRT_AT: u8 = 0xA4;

/// A security environment set by MSE SET for a private-key operation. Volatile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SecurityEnv {
    /// B6 (sign) or B8 (decipher).
    usage: u8,
    /// The algorithm reference: high nibble the mechanism, low nibble the crypto identifier.
    alg: u8,
    /// The key file.
    fid: u16,
}

/// Volatile state, cleared on power-on, reset and application (re)selection.
#[derive(Debug, Default)]
struct Session {
    /// The GIDS application is selected.
    selected: bool,
    /// The current EF (after SELECT, CREATE FILE, GET DATA or PUT DATA).
    current: Option<u16>,
    /// The user PIN is verified.
    user: bool,
    /// The admin challenge-response.
    admin: AdminState,
    /// The admin key file chosen by MSE SET for GENERAL AUTHENTICATE.
    admin_key: Option<u16>,
    /// The security environment for PSO.
    env: Option<SecurityEnv>,
}

/// The application: persistent file system and PIN, volatile session.
#[derive(Debug)]
struct Gids {
    rng: SimRng,
    pin: Pin,
    files: BTreeMap<u16, Ef>,
    session: Session,
}

/// A simulated GIDS card.
#[derive(Debug)]
pub struct GidsCard {
    io: CardIo,
    app: Gids,
}

impl GidsCard {
    /// A fresh card: personalised with PIN 123456, admin key 00..00 (24 bytes), a random cardid
    /// and one RSA 2048 container with a self-signed certificate, all drawn from `rng`.
    pub fn new(mut rng: SimRng) -> Self {
        let perso = perso::personalise(&mut rng);
        Self::with(rng, perso.pin, perso.files)
    }

    fn with(rng: SimRng, pin: Pin, files: BTreeMap<u16, Ef>) -> Self {
        Self { io: CardIo::new(true), app: Gids { rng, pin, files, session: Session::default() } }
    }

    /// Loads a card saved by [`Card::save_state`].
    pub fn from_state(state: serde_json::Value, rng: SimRng) -> Result<Self, String> {
        let stored: StoredCard = serde_json::from_value(state).map_err(|e| e.to_string())?;
        let mut files = BTreeMap::new();
        for file in stored.files {
            let mut ef = Ef::create(&file.fcp).ok_or_else(|| {
                format!("invalid FCP {}", scard_iso7816::hex::encode_upper(&file.fcp))
            })?;
            let fid = ef.fcp.fid;
            ef.life = file.life;
            ef.content = match (file.content, ef.fcp.fdb) {
                (StoredContent::Objects { objects }, fs::FDB_DATA_OBJECTS) => {
                    Content::Objects(objects)
                }
                (StoredContent::Key { private, secret }, fs::FDB_KEY) => {
                    Content::Key(match (private, secret) {
                        (Some(k), None) => KeySlot::Private(k),
                        (None, Some(s)) => KeySlot::Secret(s),
                        (None, None) => KeySlot::Empty,
                        (Some(_), Some(_)) => {
                            return Err(format!("key file {fid:04X} holds two keys"));
                        }
                    })
                }
                _ => return Err(format!("file {fid:04X}: content does not match its FCP")),
            };
            if files.insert(fid, ef).is_some() {
                return Err(format!("file {fid:04X} twice"));
            }
        }
        Ok(Self::with(rng, stored.pin, files))
    }
}

impl Card for GidsCard {
    fn family(&self) -> Family {
        Family::Gids
    }

    fn atr(&self) -> &[u8] {
        &ATR
    }

    fn power_on(&mut self) {
        self.io.reset();
        self.app.session = Session::default();
    }

    fn process(&mut self, command: &[u8]) -> Vec<u8> {
        let Self { io, app } = self;
        io.process(command, |cmd| app.handle(cmd))
    }

    fn save_state(&self) -> serde_json::Value {
        let files = self
            .app
            .files
            .values()
            .map(|ef| StoredFile {
                fcp: ef.fcp_bytes.clone(),
                life: ef.life,
                content: match &ef.content {
                    Content::Objects(objects) => {
                        StoredContent::Objects { objects: objects.clone() }
                    }
                    Content::Key(slot) => match slot {
                        KeySlot::Empty => StoredContent::Key { private: None, secret: None },
                        KeySlot::Private(k) => {
                            StoredContent::Key { private: Some(k.clone()), secret: None }
                        }
                        KeySlot::Secret(s) => {
                            StoredContent::Key { private: None, secret: Some(s.clone()) }
                        }
                    },
                },
            })
            .collect();
        let stored = StoredCard { pin: self.app.pin.clone(), files };
        serde_json::to_value(&stored).unwrap_or_else(|err| {
            tracing::error!("GIDS card state cannot be encoded: {err}");
            serde_json::Value::Null
        })
    }
}

/// The persistent state as saved: the PIN and every EF with its FCP and contents.
#[derive(Serialize, Deserialize)]
struct StoredCard {
    pin: Pin,
    files: Vec<StoredFile>,
}

#[derive(Serialize, Deserialize)]
struct StoredFile {
    #[serde(with = "hex_bytes")]
    fcp: Vec<u8>,
    life: LifeCycle,
    content: StoredContent,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum StoredContent {
    Objects {
        #[serde(with = "hex_map")]
        objects: BTreeMap<u32, Vec<u8>>,
    },
    Key {
        #[serde(default, with = "crate::keys::stored")]
        private: Option<PrivateKey>,
        #[serde(default, with = "secret_hex")]
        secret: Option<Zeroizing<Vec<u8>>>,
    },
}

/// `Option<Zeroizing<Vec<u8>>>` as `null` or hex.
mod secret_hex {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use zeroize::Zeroizing;

    pub(super) fn serialize<S: Serializer>(
        value: &Option<Zeroizing<Vec<u8>>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        value.as_ref().map(|v| scard_iso7816::hex::encode_upper(v)).serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => scard_iso7816::hex::decode_lenient(&text)
                .map(|v| Some(Zeroizing::new(v)))
                .map_err(serde::de::Error::custom),
        }
    }
}

/// ISO/IEC 7816-4 §5.4.1 instruction bytes this card knows.
mod ins {
    pub(super) const VERIFY: u8 = 0x20;
    pub(super) const MSE: u8 = 0x22;
    pub(super) const CHANGE_REFERENCE_DATA: u8 = 0x24;
    pub(super) const PSO: u8 = 0x2A;
    pub(super) const RESET_RETRY_COUNTER: u8 = 0x2C;
    pub(super) const ACTIVATE_FILE: u8 = 0x44;
    pub(super) const GENERATE_KEY_PAIR: u8 = 0x47;
    pub(super) const GENERAL_AUTHENTICATE: u8 = 0x87;
    pub(super) const SELECT: u8 = 0xA4;
    pub(super) const GET_DATA: u8 = 0xCB;
    pub(super) const PUT_DATA: u8 = 0xDB;
    pub(super) const CREATE_FILE: u8 = 0xE0;
    pub(super) const DELETE_FILE: u8 = 0xE4;
}

/// The one BER-TLV object that makes up `data`, nothing before or after it.
fn single_tlv(data: &[u8]) -> Result<ber::Tlv<'_>, StatusWord> {
    match ber::decode_one(data, fs::HOST_TLV) {
        Ok((tlv, [])) => Ok(tlv),
        _ => Err(StatusWord::INCORRECT_DATA),
    }
}

/// The one-byte value of the child `tag` of `tlv`, if present.
fn byte_child(tlv: &ber::Tlv<'_>, tag: u32) -> Result<Option<u8>, StatusWord> {
    match tlv.find(Tag::new(tag)).map_err(|_| StatusWord::INCORRECT_DATA)? {
        None => Ok(None),
        Some(t) => match t.value() {
            [b] => Ok(Some(*b)),
            _ => Err(StatusWord::INCORRECT_DATA),
        },
    }
}

/// The public-key template 7F49 (ISO/IEC 7816-8 table 3, as GidsApplet sendRSAPublicKey and
/// OpenSC gids_read_public_key use it): RSA 81 modulus, 82 exponent; EC (simulator choice,
/// ISO/IEC 7816-8) 86 the uncompressed point.
fn public_key_template(key: &PrivateKey) -> Result<Vec<u8>, StatusWord> {
    let mut inner = Vec::new();
    let enc = |_| StatusWord::NO_PRECISE_DIAGNOSIS;
    match key.public() {
        PublicKey::Rsa { n, e } => {
            ber::write(&mut inner, Tag::new(0x81), &n).map_err(enc)?;
            ber::write(&mut inner, Tag::new(0x82), &e).map_err(enc)?;
        }
        PublicKey::Ec { point, .. } => {
            ber::write(&mut inner, Tag::new(0x86), &point).map_err(enc)?;
        }
    }
    let mut out = Vec::with_capacity(inner.len() + 4);
    ber::write(&mut out, Tag::new(0x7F49), &inner).map_err(enc)?;
    Ok(out)
}

impl Gids {
    fn auth(&self) -> Auth {
        Auth { user: self.session.user, admin: self.session.admin == AdminState::Authenticated }
    }

    fn deauthenticate(&mut self) {
        self.session.user = false;
        self.session.admin = AdminState::None;
    }

    fn handle(&mut self, cmd: &Command<'_>) -> Reply {
        // CLA: ISO/IEC 7816-4 §5.4.1, interindustry class only (GidsApplet: CLA & E0 == 0).
        if cmd.cla & 0x0C != 0 {
            return Err(StatusWord::SECURE_MESSAGING_NOT_SUPPORTED);
        }
        if cmd.cla & 0x03 != 0 {
            return Err(StatusWord::LOGICAL_CHANNEL_NOT_SUPPORTED);
        }
        if cmd.cla != 0x00 {
            return Err(StatusWord::CLA_NOT_SUPPORTED);
        }
        let handler: fn(&mut Self, &Command<'_>) -> Reply = match cmd.ins {
            ins::SELECT => return self.select(cmd),
            ins::VERIFY => Self::verify,
            ins::MSE => Self::manage_security_environment,
            ins::CHANGE_REFERENCE_DATA => Self::change_reference_data,
            ins::PSO => Self::perform_security_operation,
            ins::RESET_RETRY_COUNTER => Self::reset_retry_counter,
            ins::ACTIVATE_FILE => Self::activate_file,
            ins::GENERATE_KEY_PAIR => Self::generate,
            ins::GENERAL_AUTHENTICATE => Self::general_authenticate,
            ins::GET_DATA => Self::get_data,
            ins::PUT_DATA => Self::put_data,
            ins::CREATE_FILE => Self::create_file,
            ins::DELETE_FILE => Self::delete_file,
            _ => return Err(StatusWord::INS_NOT_SUPPORTED),
        };
        // Simulator choice: the card has no other application and none is selected at power-on;
        // before SELECT of the AID, every other command is refused with 6985.
        if !self.session.selected {
            return Err(StatusWord::CONDITIONS_NOT_SATISFIED);
        }
        handler(self, cmd)
    }

    // ----- SELECT ------------------------------------------------------------------------

    /// ISO/IEC 7816-4 §7.1.1 SELECT: P1 04 by DF name (the AID or a prefix of it of at least
    /// 9 bytes), P1 00 by file identifier (3FFF or none: the application; an EF of it).
    /// P2 b4-b3: 00 FCI, 04 FCP, 08 FMD, 0C nothing; first occurrence only.
    fn select(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.p2 & 0xF3 != 0 {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        let answer = cmd.p2 & 0x0C;
        match cmd.p1 {
            0x04 => {
                if cmd.data.is_empty() || cmd.data.len() > 16 {
                    return Err(StatusWord::WRONG_LENGTH);
                }
                if cmd.data.len() < AID_PREFIX || !AID.starts_with(cmd.data) {
                    // Not this application: the current selection stays (7816-4 §7.1.1).
                    return Err(StatusWord::FILE_NOT_FOUND);
                }
                // Selecting the application (again) starts a new session, as a JavaCard applet
                // is deselected and selected (GidsApplet deselect: all PINs deauthenticated).
                self.session = Session { selected: true, ..Session::default() };
                Self::app_answer(answer)
            }
            0x00 => {
                if !self.session.selected {
                    return Err(StatusWord::FILE_NOT_FOUND);
                }
                let fid = match cmd.data {
                    [] => APP_FID,
                    [hi, lo] => u16::from_be_bytes([*hi, *lo]),
                    _ => return Err(StatusWord::WRONG_LENGTH),
                };
                // GidsApplet: the application answers to 3FFF and to its MF identifier 3F00.
                if fid == APP_FID || fid == 0x3F00 {
                    self.session.current = None;
                    return Self::app_answer(answer);
                }
                let ef = self.files.get(&fid).ok_or(StatusWord::FILE_NOT_FOUND)?;
                let reply = match answer {
                    0x00 | 0x04 => Ok(ef.fcp_bytes.clone()),
                    0x0C => Ok(Vec::new()),
                    _ => Err(StatusWord::INCORRECT_P1P2),
                };
                if reply.is_ok() {
                    self.session.current = Some(fid);
                }
                reply
            }
            _ => Err(StatusWord::INCORRECT_P1P2),
        }
    }

    fn app_answer(answer: u8) -> Reply {
        match answer {
            0x00 => Ok(fci()),
            0x04 => Ok(APP_FCP.to_vec()),
            0x08 => Ok(APP_FMD.to_vec()),
            _ => Ok(Vec::new()),
        }
    }

    // ----- GET DATA / PUT DATA -------------------------------------------------------------

    /// The EF that P1-P2 of GET/PUT DATA names: 0000 the current EF, FFFF refused, otherwise
    /// the file identifier (GidsApplet GidsFileSystem.processGetData).
    fn do_file(&self, p1p2: u16) -> Result<u16, StatusWord> {
        match p1p2 {
            0x0000 => self.session.current.ok_or(StatusWord::COMMAND_NOT_ALLOWED),
            0xFFFF => Err(StatusWord::INCORRECT_P1P2),
            fid => Ok(fid),
        }
    }

    /// GET DATA (CB): P1-P2 the file, data 5C {tag}: the whole DO (tag, length, value), which
    /// OpenSC's gids_get_DO then looks up by tag. 5C 00 returns every DO of the file.
    fn get_data(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.data.is_empty() {
            return Err(StatusWord::WRONG_LENGTH);
        }
        if cmd.p1p2() == APP_FID {
            return self.get_app_data(cmd.data);
        }
        let fid = self.do_file(cmd.p1p2())?;
        let auth = self.auth();
        let ef = self.files.get(&fid).ok_or(StatusWord::FILE_NOT_FOUND)?;
        let objects = ef.objects().ok_or(StatusWord::INCOMPATIBLE_FILE_STRUCTURE)?;
        ef.check(op::READ, auth)?;
        let list = single_tlv(cmd.data)?;
        if list.tag() != Tag::new(0x5C) {
            return Err(StatusWord::INCORRECT_DATA);
        }
        let mut out = Vec::new();
        if list.value().is_empty() {
            for (tag, value) in objects {
                fs::encode_do(*tag, value, &mut out)?;
            }
        } else {
            let tag = fs::tag_number(list.value()).ok_or(StatusWord::INCORRECT_DATA)?;
            let value = objects.get(&tag).ok_or(StatusWord::REFERENCED_DATA_NOT_FOUND)?;
            fs::encode_do(tag, value, &mut out)?;
        }
        self.session.current = Some(fid);
        Ok(out)
    }

    /// GET DATA 3FFF: 5C {7F71 | 7F72} the PIN status (GidsApplet returnPINStatus:
    /// 7F71 06 97 01 <tries left> 93 01 <try limit>, read by OpenSC gids_get_pin_status); 5C
    /// {7F73} the PUK status, absent here (no PUK); 70 {84 01 kid, A5 {7F49}} the public key of
    /// key kid (OpenSC gids_read_public_key).
    fn get_app_data(&self, data: &[u8]) -> Reply {
        let request = single_tlv(data)?;
        match request.tag().value() {
            0x5C => match request.value() {
                [0x7F, lo @ (0x71 | 0x72)] => Ok(vec![
                    0x7F,
                    *lo,
                    0x06,
                    0x97,
                    0x01,
                    self.pin.tries_left(),
                    0x93,
                    0x01,
                    self.pin.max_tries(),
                ]),
                _ => Err(StatusWord::REFERENCED_DATA_NOT_FOUND),
            },
            0x70 => {
                let kid = byte_child(&request, 0x84)?.ok_or(StatusWord::INCORRECT_DATA)?;
                let ef = self.key_file(kid)?;
                ef.check(op::READ, self.auth())?;
                match ef.key() {
                    Some(KeySlot::Private(key)) => public_key_template(key),
                    _ => Err(StatusWord::REFERENCED_DATA_NOT_FOUND),
                }
            }
            _ => Err(StatusWord::INCORRECT_DATA),
        }
    }

    /// PUT DATA (DB): P1-P2 the file, data one DO (tag, length, value) that replaces the DO of
    /// that tag (OpenSC gids_put_DO). An empty value stores an empty DO (OpenSC writes one to
    /// create the empty cmapfile and to delete a certificate).
    fn put_data(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.data.is_empty() {
            return Err(StatusWord::WRONG_LENGTH);
        }
        if cmd.p1p2() == APP_FID {
            return self.import_key(cmd.data);
        }
        let fid = self.do_file(cmd.p1p2())?;
        let auth = self.auth();
        let ef = self.files.get_mut(&fid).ok_or(StatusWord::FILE_NOT_FOUND)?;
        if ef.objects().is_none() {
            return Err(StatusWord::INCOMPATIBLE_FILE_STRUCTURE);
        }
        ef.check(op::WRITE, auth)?;
        let object = single_tlv(cmd.data)?;
        let tag = object.tag().value();
        if object.tag().encoded_len() > 3 {
            return Err(StatusWord::INCORRECT_DATA);
        }
        if object.value().len() > MAX_DO_LEN {
            return Err(StatusWord::NOT_ENOUGH_MEMORY);
        }
        if let Some(objects) = ef.objects_mut() {
            objects.insert(tag, object.value().to_vec());
        }
        self.session.current = Some(fid);
        Ok(Vec::new())
    }

    /// The key file of key reference `kid` (file B0kid, GidsApplet findKeyCRT).
    fn key_file(&self, kid: u8) -> Result<&Ef, StatusWord> {
        self.files
            .get(&(0xB000 | u16::from(kid)))
            .filter(|ef| ef.key().is_some())
            .ok_or(StatusWord::REFERENCED_DATA_NOT_FOUND)
    }

    /// PUT DATA 3FFF with DO 70 {84 01 kid, A5 {[83 01 type], [84 01 00], 87 key}} (OpenSC
    /// gids_import_key and gids_set_administrator_key; GidsApplet importPrivateKey): type 1 or
    /// absent a symmetric key (the 24-byte 3DES admin key), type 2 an RSA key given as the
    /// PKCS#1 RSAPrivateKey SEQUENCE; 84 (the key encrypting the import) must be 00.
    fn import_key(&mut self, data: &[u8]) -> Reply {
        let mut request = Zeroizing::new(Vec::new());
        request.extend_from_slice(data);
        let outer = single_tlv(&request)?;
        if outer.tag() != Tag::new(0x70) {
            return Err(StatusWord::INCORRECT_DATA);
        }
        let kid = byte_child(&outer, 0x84)?.ok_or(StatusWord::INCORRECT_DATA)?;
        let template = outer
            .find(Tag::new(0xA5))
            .map_err(|_| StatusWord::INCORRECT_DATA)?
            .ok_or(StatusWord::INCORRECT_DATA)?;
        let auth = self.auth();
        self.key_file(kid)?.check(op::WRITE, auth)?;
        let key_type = byte_child(&template, 0x83)?.unwrap_or(1);
        if byte_child(&template, 0x84)?.is_some_and(|k| k != 0) {
            return Err(StatusWord::FUNCTION_NOT_SUPPORTED);
        }
        let value = template
            .children()
            .map_while(Result::ok)
            .find(|t| matches!(t.tag().value(), 0x87 | 0xA7))
            .ok_or(StatusWord::INCORRECT_DATA)?
            .value();
        let slot = match key_type {
            1 if value.len() == 24 => KeySlot::Secret(Zeroizing::new(value.to_vec())),
            2 => KeySlot::Private(rsa_private_key(value)?),
            _ => return Err(StatusWord::INCORRECT_DATA),
        };
        if let Some(key) = self.files.get_mut(&(0xB000 | u16::from(kid))).and_then(Ef::key_mut) {
            *key = slot;
        }
        Ok(Vec::new())
    }

    // ----- PINs and admin authentication ---------------------------------------------------

    /// ISO/IEC 7816-4 §7.5.6 VERIFY: P2 80 the user PIN (empty data: 9000 when verified, 63Cx
    /// or 6983 otherwise); P2 82 logs the PIN and the admin out (GIDS "special resetting
    /// code", OpenSC gids_logout, GidsApplet processVerify).
    fn verify(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.p1 != 0x00 {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        match cmd.p2 {
            0x82 => {
                self.deauthenticate();
                return Ok(Vec::new());
            }
            PIN_REF => {}
            _ => return Err(StatusWord::REFERENCED_DATA_NOT_FOUND),
        }
        if cmd.data.is_empty() {
            return if self.session.user && !self.pin.is_blocked() {
                Ok(Vec::new())
            } else {
                Err(self.pin.status())
            };
        }
        if cmd.data.len() > *PIN_LEN.end() {
            return Err(StatusWord::WRONG_LENGTH);
        }
        let result = self.pin.verify(cmd.data);
        self.session.user = result.is_ok();
        result.map(|()| Vec::new())
    }

    /// ISO/IEC 7816-4 §7.5.7 CHANGE REFERENCE DATA for PIN 80: P1 00 with the old PIN then the
    /// new one (split at the stored PIN's length, GidsApplet); P1 01 with the new PIN only,
    /// allowed when the PIN is verified (OpenSC sends it with an empty old PIN).
    fn change_reference_data(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.p1 > 0x01 {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        if cmd.p2 != PIN_REF {
            return Err(StatusWord::REFERENCED_DATA_NOT_FOUND);
        }
        if cmd.data.is_empty() {
            return Err(StatusWord::WRONG_LENGTH);
        }
        let new = if cmd.p1 == 0x00 {
            let split = self.pin.len().min(cmd.data.len());
            let (old, new) = cmd.data.split_at(split);
            let result = self.pin.verify(old);
            self.session.user = result.is_ok();
            result?;
            new
        } else {
            if !self.session.user {
                return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
            }
            cmd.data
        };
        if !PIN_LEN.contains(&new.len()) {
            return Err(StatusWord::WRONG_LENGTH);
        }
        self.pin.set(new);
        Ok(Vec::new())
    }

    /// ISO/IEC 7816-4 §7.5.10 RESET RETRY COUNTER, P1 02 (new PIN only), P2 80, after admin
    /// authentication (OpenSC gids-tool --unblock; GidsApplet processResetRetryCounter, which
    /// also logs the admin out afterwards). There is no PUK, so P1 00 and 01 are refused.
    fn reset_retry_counter(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.p1 != 0x02 {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        if cmd.p2 != PIN_REF {
            return Err(StatusWord::REFERENCED_DATA_NOT_FOUND);
        }
        if !self.auth().admin {
            return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
        }
        if !PIN_LEN.contains(&cmd.data.len()) {
            return Err(StatusWord::WRONG_LENGTH);
        }
        self.pin.set(cmd.data);
        self.deauthenticate();
        Ok(Vec::new())
    }

    /// ISO/IEC 7816-4 GENERAL AUTHENTICATE, P1-P2 00 00, with the admin key chosen by
    /// MSE SET C1 A4 {83 01 80}. See [`admin`].
    fn general_authenticate(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.p1p2() != 0 {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        if cmd.data.is_empty() {
            return Err(StatusWord::WRONG_LENGTH);
        }
        let fid = self.session.admin_key.ok_or(StatusWord::CONDITIONS_NOT_SATISFIED)?;
        let key = match self.files.get(&fid).and_then(Ef::key) {
            Some(KeySlot::Secret(k)) => k.clone(),
            _ => return Err(StatusWord::CONDITIONS_NOT_SATISFIED),
        };
        admin::general_authenticate(&mut self.session.admin, &key, cmd.data, &mut self.rng)
    }

    // ----- files ---------------------------------------------------------------------------

    /// ISO/IEC 7816-9 CREATE FILE, P1-P2 00 00, data the FCP (OpenSC
    /// gids_perform_create_keyfile, gids_initialize_create_file): a DO file (FDB 39) or a key
    /// file (FDB 18, identifier B0xx, with its CRT template A5). The application's ACL for
    /// creating an EF applies (user PIN or admin). The new file is current and must be
    /// activated before use.
    fn create_file(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.p1p2() != 0 {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        if cmd.data.is_empty() {
            return Err(StatusWord::WRONG_LENGTH);
        }
        fs::check_access(&APP_SA, op::DF_CREATE_EF, self.auth())?;
        let ef = Ef::create(cmd.data).ok_or(StatusWord::INCORRECT_DATA)?;
        let fid = ef.fcp.fid;
        if ef.fcp.fdb == fs::FDB_KEY && fid & 0xFF00 != 0xB000 {
            return Err(StatusWord::INCORRECT_DATA);
        }
        if matches!(fid, 0x0000 | 0x3F00 | APP_FID | 0xFFFF) || self.files.contains_key(&fid) {
            return Err(StatusWord::FILE_EXISTS);
        }
        if self.files.len() >= MAX_FILES {
            return Err(StatusWord::NOT_ENOUGH_MEMORY);
        }
        self.files.insert(fid, ef);
        self.session.current = Some(fid);
        Ok(Vec::new())
    }

    /// ISO/IEC 7816-9 ACTIVATE FILE, P1-P2 00 00: the current EF (or, with none, the
    /// application, which is already operational).
    fn activate_file(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.p1p2() != 0 {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        let Some(fid) = self.session.current else { return Ok(Vec::new()) };
        let auth = self.auth();
        let ef = self.files.get_mut(&fid).ok_or(StatusWord::FILE_NOT_FOUND)?;
        ef.check(op::ACTIVATE, auth)?;
        ef.life = LifeCycle::Activated;
        Ok(Vec::new())
    }

    /// ISO/IEC 7816-9 DELETE FILE, P1-P2 00 00: the current EF (no data, as OpenSC's
    /// gids_delete_key_file sends it) or the EF whose identifier is the data. Both the
    /// application's ACL for deleting a child and the file's own apply.
    fn delete_file(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.p1p2() != 0 {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        let fid = match cmd.data {
            [] => self.session.current.ok_or(StatusWord::COMMAND_NOT_ALLOWED)?,
            [hi, lo] => u16::from_be_bytes([*hi, *lo]),
            _ => return Err(StatusWord::WRONG_LENGTH),
        };
        let auth = self.auth();
        let ef = self.files.get(&fid).ok_or(StatusWord::FILE_NOT_FOUND)?;
        fs::check_access(&APP_SA, op::DF_DELETE_CHILD, auth)?;
        ef.check(op::DELETE, auth)?;
        self.files.remove(&fid);
        self.session.current = None;
        if self.session.env.is_some_and(|env| env.fid == fid) {
            self.session.env = None;
        }
        if self.session.admin_key == Some(fid) {
            self.session.admin_key = None;
        }
        Ok(Vec::new())
    }

    // ----- keys ------------------------------------------------------------------------------

    /// ISO/IEC 7816-8 GENERATE ASYMMETRIC KEY PAIR, P1-P2 00 00, data a CRT
    /// {80 01 algorithm, 83 01 key reference} (OpenSC gids_generate_key sends AC 06 ..): the
    /// key file B0kid must exist (CREATE FILE first). Algorithms by GIDS crypto identifier:
    /// 07 RSA 2048, 08 RSA 3072, 09 RSA 4096, 0C P-256, 0D P-384. The public key template
    /// answers when Le is present; OpenSC omits Le and reads the key with GET DATA.
    fn generate(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.p1p2() != 0 {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        if cmd.data.is_empty() {
            return Err(StatusWord::WRONG_LENGTH);
        }
        let crt = single_tlv(cmd.data)?;
        let alg = byte_child(&crt, 0x80)?.ok_or(StatusWord::INCORRECT_DATA)?;
        let kid = match byte_child(&crt, 0x83)? {
            Some(kid) => kid,
            None => byte_child(&crt, 0x84)?.ok_or(StatusWord::INCORRECT_DATA)?,
        };
        let algorithm = perso::algorithm_of(alg).ok_or(StatusWord::FUNCTION_NOT_SUPPORTED)?;
        let auth = self.auth();
        let ef = self.key_file(kid)?;
        ef.check(op::KEY_GENERATE, auth)?;
        if matches!(ef.key(), Some(KeySlot::Secret(_))) {
            return Err(StatusWord::CONDITIONS_NOT_SATISFIED);
        }
        let key = PrivateKey::generate(algorithm, &mut self.rng)
            .map_err(|_| StatusWord::NO_PRECISE_DIAGNOSIS)?;
        let answer = if cmd.ne.is_some() { public_key_template(&key)? } else { Vec::new() };
        if let Some(slot) = self.files.get_mut(&(0xB000 | u16::from(kid))).and_then(Ef::key_mut) {
            *slot = KeySlot::Private(key);
        }
        Ok(answer)
    }

    /// ISO/IEC 7816-4 §7.5.11 MANAGE SECURITY ENVIRONMENT SET:
    /// - P1 41, P2 B6 or B8, data {80 01 algorithm, 84 01 key reference} (OpenSC
    ///   gids_set_security_env): the key file's CRT must list the algorithm for that usage,
    ///   and its low nibble must be the key's crypto identifier; the key file's MSE condition
    ///   (the user PIN on keys OpenSC creates) applies;
    /// - P1 C1 or 81, P2 A4, data {83 01 80}: the admin key for GENERAL AUTHENTICATE (OpenSC
    ///   gids_authenticate_admin);
    /// - P1 F3: RESTORE, forgets both.
    fn manage_security_environment(&mut self, cmd: &Command<'_>) -> Reply {
        match (cmd.p1, cmd.p2) {
            (0xF3, _) => {
                self.session.env = None;
                self.session.admin_key = None;
                return Ok(Vec::new());
            }
            (0x41, CRT_DST | CRT_CT) | (0x81 | 0xC1, CRT_AT) => {}
            _ => return Err(StatusWord::INCORRECT_P1P2),
        }
        if cmd.data.is_empty() {
            return Err(StatusWord::WRONG_LENGTH);
        }
        // The data field is a sequence of objects, not one template: wrap it to search it.
        let mut wrapped = Vec::with_capacity(cmd.data.len() + 4);
        ber::write(&mut wrapped, Tag::new(0x30), cmd.data)
            .map_err(|_| StatusWord::INCORRECT_DATA)?;
        let crt = single_tlv(&wrapped)?;
        ber::validate(cmd.data, fs::HOST_TLV).map_err(|_| StatusWord::INCORRECT_DATA)?;
        let auth = self.auth();
        if cmd.p2 == CRT_AT {
            let kid = byte_child(&crt, 0x83)?.ok_or(StatusWord::INCORRECT_DATA)?;
            let ef = self.key_file(kid)?;
            ef.check(op::KEY_MSE, auth)?;
            // GidsApplet: the admin key's algorithm reference is 02 (3DES).
            if !matches!(ef.key(), Some(KeySlot::Secret(_))) || !ef.fcp.allows(CRT_AT, 0x02) {
                return Err(StatusWord::INCORRECT_DATA);
            }
            self.session.admin_key = Some(ef.fcp.fid);
            return Ok(Vec::new());
        }
        let alg = byte_child(&crt, 0x80)?.ok_or(StatusWord::INCORRECT_DATA)?;
        let kid = match byte_child(&crt, 0x84)? {
            Some(kid) => kid,
            None => byte_child(&crt, 0x83)?.ok_or(StatusWord::INCORRECT_DATA)?,
        };
        let ef = self.key_file(kid)?;
        ef.check(op::KEY_MSE, auth)?;
        let Some(KeySlot::Private(key)) = ef.key() else {
            return Err(StatusWord::CONDITIONS_NOT_SATISFIED);
        };
        if !ef.fcp.allows(cmd.p2, alg) || alg & 0x0F != perso::crypto_id(key.algorithm()) {
            return Err(StatusWord::INCORRECT_DATA);
        }
        self.session.env = Some(SecurityEnv { usage: cmd.p2, alg, fid: ef.fcp.fid });
        Ok(Vec::new())
    }

    /// The key of the security environment for `usage`, checked again now (the PIN may have
    /// been logged out, the key regenerated or deleted since MSE).
    fn env_key(&self, usage: u8) -> Result<(SecurityEnv, &PrivateKey), StatusWord> {
        let env = self
            .session
            .env
            .filter(|env| env.usage == usage)
            .ok_or(StatusWord::CONDITIONS_NOT_SATISFIED)?;
        let ef = self.files.get(&env.fid).ok_or(StatusWord::CONDITIONS_NOT_SATISFIED)?;
        ef.check(op::KEY_MSE, self.auth())?;
        match ef.key() {
            Some(KeySlot::Private(key)) if perso::crypto_id(key.algorithm()) == env.alg & 0x0F => {
                Ok((env, key))
            }
            _ => Err(StatusWord::CONDITIONS_NOT_SATISFIED),
        }
    }

    /// ISO/IEC 7816-8 PERFORM SECURITY OPERATION: 9E 9A compute digital signature, 80 86
    /// decipher. The algorithm reference's high nibble picks the mechanism (OpenSC
    /// gids_perform_create_keyfile; GidsApplet computeDigitalSignature / decipher):
    /// - sign 50: RSASSA-PKCS1-v1_5, the host sends the DigestInfo, the card pads;
    /// - sign 10: the host formats the whole block: raw RSA on a modulus-length input, or
    ///   (simulator choice) ECDSA on the hash given, answered as r || s;
    /// - decipher (data: the cryptogram, optionally after the padding indicator 00) 40:
    ///   RSAES-PKCS1-v1_5; 80: RSAES-OAEP with SHA-1
    ///   (JavaCard ALG_RSA_PKCS1_OAEP); 00: raw RSA, or (simulator choice) ECDH with the
    ///   peer's uncompressed point, answered with the shared x-coordinate.
    fn perform_security_operation(&mut self, cmd: &Command<'_>) -> Reply {
        match cmd.p1p2() {
            0x9E9A => self.sign(cmd.data),
            0x8086 => self.decipher(cmd.data),
            _ => Err(StatusWord::INCORRECT_P1P2),
        }
    }

    fn sign(&mut self, data: &[u8]) -> Reply {
        let (env, key) = self.env_key(CRT_DST)?;
        if data.is_empty() {
            return Err(StatusWord::WRONG_LENGTH);
        }
        let algorithm = key.algorithm();
        let k = algorithm.byte_len();
        let bad = |_| StatusWord::INCORRECT_DATA;
        match (env.alg & 0xF0, algorithm.is_rsa()) {
            (0x50, true) => {
                if data.len() + 11 > k {
                    return Err(StatusWord::WRONG_LENGTH);
                }
                key.rsa_sign_pkcs1(data).map_err(bad)
            }
            (0x10, true) => {
                if data.len() != k {
                    return Err(StatusWord::WRONG_LENGTH);
                }
                let key = key.clone();
                key.rsa_raw(data, &mut self.rng).map(|s| s.to_vec()).map_err(bad)
            }
            (0x10, false) => {
                if data.len() > 64 {
                    return Err(StatusWord::WRONG_LENGTH);
                }
                key.ecdsa_sign_raw(data).map_err(bad)
            }
            _ => Err(StatusWord::FUNCTION_NOT_SUPPORTED),
        }
    }

    fn decipher(&mut self, data: &[u8]) -> Reply {
        let (env, key) = self.env_key(CRT_CT)?;
        let algorithm = key.algorithm();
        // The cryptogram is an RSA block or an uncompressed EC point.
        let expected =
            if algorithm.is_rsa() { algorithm.byte_len() } else { 1 + 2 * algorithm.byte_len() };
        // ISO/IEC 7816-8 (and GidsApplet) put the padding indicator 00 ("no further
        // indication") first; OpenSC 0.23's gids_decipher leaves it out, after Microsoft's
        // implementation ("Padding indicator must not be sent"). Both are accepted, told apart
        // by the length.
        let cryptogram = match data.split_first() {
            _ if data.len() == expected => data,
            Some((&0x00, rest)) if rest.len() == expected => rest,
            Some((_, rest)) if rest.len() == expected => return Err(StatusWord::INCORRECT_DATA),
            _ => return Err(StatusWord::WRONG_LENGTH),
        };
        let bad = |_| StatusWord::INCORRECT_DATA;
        if !algorithm.is_rsa() {
            if env.alg & 0xF0 != 0x00 {
                return Err(StatusWord::FUNCTION_NOT_SUPPORTED);
            }
            return key.ecdh(cryptogram).map(|z| z.to_vec()).map_err(bad);
        }
        let plain = match env.alg & 0xF0 {
            0x40 => key.rsa_decrypt_pkcs1(cryptogram).map_err(bad)?,
            0x80 => match key {
                PrivateKey::Rsa(rsa) => rsa
                    .decrypt(Oaep::new::<sha1::Sha1>(), cryptogram)
                    .map(Zeroizing::new)
                    .map_err(|_| StatusWord::INCORRECT_DATA)?,
                _ => return Err(StatusWord::FUNCTION_NOT_SUPPORTED),
            },
            0x00 => {
                let key = key.clone();
                key.rsa_raw(cryptogram, &mut self.rng).map_err(bad)?
            }
            _ => return Err(StatusWord::FUNCTION_NOT_SUPPORTED),
        };
        Ok(plain.to_vec())
    }
}

/// An RSA private key from the PKCS#1 RSAPrivateKey SEQUENCE (RFC 8017 appendix A.1.2:
/// version, n, e, d, p, q, dP, dQ, qInv) that OpenSC's gids_import_key sends; the CRT values
/// are recomputed. Only 2048, 3072 and 4096-bit moduli are accepted.
fn rsa_private_key(der: &[u8]) -> Result<PrivateKey, StatusWord> {
    let bad = StatusWord::INCORRECT_DATA;
    let sequence = single_tlv(der)?;
    if sequence.tag() != Tag::new(0x30) {
        return Err(bad);
    }
    // The components are secret: every copy is zeroized when dropped.
    let mut ints: Vec<Zeroizing<BigUint>> = Vec::new();
    for item in sequence.children() {
        let item = item.map_err(|_| bad)?;
        if item.tag() != Tag::new(0x02) {
            return Err(bad);
        }
        ints.push(Zeroizing::new(BigUint::from_bytes_be(item.value())));
    }
    let [version, n, e, d, p, q, ..] = ints.as_slice() else { return Err(bad) };
    if **version != BigUint::from(0u8) {
        return Err(bad);
    }
    let primes = vec![BigUint::clone(p), BigUint::clone(q)];
    let key = RsaPrivateKey::from_components(
        BigUint::clone(n),
        BigUint::clone(e),
        BigUint::clone(d),
        primes,
    )
    .map_err(|_| bad)?;
    key.validate().map_err(|_| bad)?;
    if !matches!(key.n().bits(), 2048 | 3072 | 4096) {
        return Err(bad);
    }
    Ok(PrivateKey::Rsa(Box::new(key)))
}
