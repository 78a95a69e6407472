//! The OpenPGP smart card application 3.4 (Achim Pietig, "Functional Specification of the
//! OpenPGP application on ISO Smart Card Operating Systems", version 3.4.1; "§" below).
//!
//! What it offers, as a real card of that version does for GnuPG's scdaemon and OpenSC's
//! `openpgp` driver:
//! - SELECT by the partial AID D2 76 00 01 24 01 (or any longer prefix of the full AID);
//! - GET DATA of every DO of §4.4.1 (application related data 6E, cardholder related data 65,
//!   security support template 7A, PW status bytes C4, historical bytes, URL, login data,
//!   private use DOs, cardholder certificates 7F21 for all three keys through SELECT DATA and
//!   GET NEXT DATA, extended length information 7F66, key information DE, algorithm
//!   information FA) and PUT DATA of the writable ones, key import included (4D);
//! - VERIFY (81, 82, 83, the status form, P1 FF), CHANGE REFERENCE DATA, RESET RETRY COUNTER
//!   (resetting code or PW3), PW1 valid for one signature by default;
//! - GENERATE ASYMMETRIC KEY PAIR for RSA 2048/3072/4096 and NIST P-256/P-384 as chosen by the
//!   writable algorithm attributes C1/C2/C3; PSO:COMPUTE DIGITAL SIGNATURE, PSO:DECIPHER (RSA
//!   PKCS#1 v1.5 and ECDH), INTERNAL AUTHENTICATE, GET CHALLENGE;
//! - TERMINATE DF and ACTIVATE FILE (factory reset);
//! - command chaining and extended length fields (announced in the historical bytes).
//!
//! Not offered (and not announced): secure messaging, KDF-DO, AES, MSE, PIN block format 2,
//! user interaction flags, Curve25519 and brainpool curves.

mod data;
mod keyops;
#[cfg(test)]
mod tests;

use scard_iso7816::status::StatusWord;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::io::{CardIo, Command, Reply};
use crate::keys::PrivateKey;
use crate::pin::Pin;
use crate::state::hex_bytes;
use crate::{Card, Family, SimRng};

/// The ATR of an OpenPGP card V3 as listed in pcsc-tools' smartcard_list.txt and in OpenSC's
/// OpenPGP driver: T=1, historical bytes [`HISTORICAL_BYTES`], TCK 1C.
pub const ATR: [u8; 21] = [
    0x3B, 0xDA, 0x18, 0xFF, 0x81, 0xB1, 0xFE, 0x75, 0x1F,
    0x03, // TS T0 TA1 TC1 TD1 TD2 TA3 TB3 TD3 TA4
    0x00, 0x31, 0xF5, 0x73, 0xC0, 0x01, 0x60, 0x00, 0x90, 0x00, // historical bytes
    0x1C, // TCK
];

/// §6 historical bytes, the same in the ATR and in DO 5F52.
pub const HISTORICAL_BYTES: [u8; 10] = [
    0x00, // category indicator: COMPACT-TLV objects, then a status indicator
    0x31, 0xF5, // card service data: selection by full and partial DF name, DOs in EF.ATR
    0x73, 0xC0, 0x01,
    0x60, // card capabilities (§6.2): byte 3 = 0x40 extended Lc/Le + 0x20 ext. length info
    0x00, 0x90, 0x00, // status indicator: life cycle status, SW1 SW2
];

/// §4.2.1: RID D2 76 00 01 24 and PIX application 01: what SELECT names.
pub const AID_PREFIX: [u8; 6] = [0xD2, 0x76, 0x00, 0x01, 0x24, 0x01];

/// §4.2.1 version of the specification implemented (BCD): 3.4.
const VERSION: [u8; 2] = [0x03, 0x04];

/// §4.2.1 manufacturer FFFF: "test card" in the list GnuPG keeps.
const MANUFACTURER: [u8; 2] = [0xFF, 0xFF];

/// §4.3 default PW1.
const DEFAULT_PW1: &[u8] = b"123456";
/// §4.3 default PW3.
const DEFAULT_PW3: &[u8] = b"12345678";
/// §4.3: retry counters start at 3.
const PW_TRIES: u8 = 3;
/// §4.3: PW1 is at least 6 characters.
const PW1_MIN: usize = 6;
/// §4.3: PW3 and the resetting code are at least 8 characters.
const PW3_MIN: usize = 8;
/// §4.4.3.8 maximum length of PW1, the resetting code and PW3 as announced in C4.
const PW_MAX: usize = 127;

/// §7.4 status bytes: "selected file in termination state".
const SW_TERMINATED: StatusWord = StatusWord(0x6285);

/// The three keys (§7.2.14 control reference templates): signature, decryption,
/// authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyRef {
    Sig,
    Dec,
    Aut,
}

impl KeyRef {
    const ALL: [KeyRef; 3] = [KeyRef::Sig, KeyRef::Dec, KeyRef::Aut];

    /// §7.2.14 control reference template: B6 signature, B8 decryption, A4 authentication.
    fn from_crt(tag: u32) -> Option<KeyRef> {
        match tag {
            0xB6 => Some(KeyRef::Sig),
            0xB8 => Some(KeyRef::Dec),
            0xA4 => Some(KeyRef::Aut),
            _ => None,
        }
    }

    /// §4.4.1 key information (DE): key reference numbers 01, 02, 03.
    fn number(self) -> u8 {
        match self {
            KeyRef::Sig => 1,
            KeyRef::Dec => 2,
            KeyRef::Aut => 3,
        }
    }

    /// §7.2.5 SELECT DATA: the cardholder certificates are stored AUT, DEC, SIG, so
    /// occurrence 0 (also the one GET DATA 7F21 reads without SELECT DATA) is AUT.
    fn from_occurrence(occurrence: u8) -> Option<KeyRef> {
        match occurrence {
            0 => Some(KeyRef::Aut),
            1 => Some(KeyRef::Dec),
            2 => Some(KeyRef::Sig),
            _ => None,
        }
    }
}

/// §4.4.1 key information (DE): how the key came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum KeyOrigin {
    /// 00: no key.
    #[default]
    None,
    /// 01: generated on the card.
    Generated,
    /// 02: imported.
    Imported,
}

impl KeyOrigin {
    fn byte(self) -> u8 {
        match self {
            KeyOrigin::None => 0,
            KeyOrigin::Generated => 1,
            KeyOrigin::Imported => 2,
        }
    }
}

/// Everything the card keeps about one key.
#[derive(Clone, Serialize, Deserialize)]
struct KeySlot {
    /// §4.4.3.9 algorithm attributes (C1, C2 or C3), validated when written.
    #[serde(with = "hex_bytes")]
    attributes: Vec<u8>,
    /// The private key, if any; it always matches `attributes`.
    #[serde(with = "crate::keys::stored")]
    key: Option<PrivateKey>,
    origin: KeyOrigin,
    /// §4.4.2 C7/C8/C9: 20 bytes written by the host.
    #[serde(with = "hex_bytes")]
    fingerprint: Vec<u8>,
    /// §4.4.2 CA/CB/CC.
    #[serde(with = "hex_bytes")]
    ca_fingerprint: Vec<u8>,
    /// §4.4.2 CE/CF/D0: seconds since 1970 as 4 bytes, written by the host.
    #[serde(with = "hex_bytes")]
    generated_at: Vec<u8>,
    /// §4.4.2 7F21 for this key.
    #[serde(with = "hex_bytes")]
    certificate: Vec<u8>,
}

impl KeySlot {
    fn new(attributes: &[u8]) -> Self {
        Self {
            attributes: attributes.to_vec(),
            key: None,
            origin: KeyOrigin::None,
            fingerprint: vec![0; 20],
            ca_fingerprint: vec![0; 20],
            generated_at: vec![0; 4],
            certificate: Vec::new(),
        }
    }
}

/// Bytes stored in hex in the state file.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
struct Bytes(#[serde(with = "hex_bytes")] Vec<u8>);

/// The persistent state: what a real card keeps in EEPROM.
#[derive(Clone, Serialize, Deserialize)]
struct Persistent {
    /// §4.2.1 serial number in the AID, drawn at creation.
    #[serde(with = "hex_bytes")]
    serial: Vec<u8>,
    pw1: Pin,
    pw3: Pin,
    /// §4.3 resetting code; `None` until set with PUT DATA D3 (its counter reads 0).
    rc: Option<Pin>,
    /// §4.4.3.8 PW status byte 1: PW1 (81) stays valid for several PSO:CDS.
    pw1_valid_for_several_signatures: bool,
    keys: [KeySlot; 3],
    /// §4.4.1 name (5B in 65), ISO/IEC 8859-1.
    name: Bytes,
    /// §4.4.1 language preferences (5F2D in 65).
    language: Bytes,
    /// §4.4.1 sex (5F35 in 65) per ISO/IEC 5218, as an ASCII digit.
    sex: Bytes,
    /// §4.4.1 URL (5F50).
    url: Bytes,
    /// §4.4.1 login data (5E).
    login: Bytes,
    /// §4.4.1 private use DOs 0101 to 0104.
    private_use: [Bytes; 4],
    /// §4.4.1 digital signature counter (93 in 7A), 3 bytes on the card.
    signature_counter: u32,
    /// §7.2.16 TERMINATE DF was executed.
    terminated: bool,
}

impl Persistent {
    fn new(serial: Vec<u8>) -> Self {
        let rsa2048 = data::DEFAULT_ATTRIBUTES;
        Self {
            serial,
            pw1: Pin::new(DEFAULT_PW1, PW_TRIES),
            pw3: Pin::new(DEFAULT_PW3, PW_TRIES),
            rc: None,
            pw1_valid_for_several_signatures: false,
            keys: [KeySlot::new(&rsa2048), KeySlot::new(&rsa2048), KeySlot::new(&rsa2048)],
            name: Bytes::default(),
            language: Bytes::default(),
            sex: Bytes(vec![b'9']),
            url: Bytes::default(),
            login: Bytes::default(),
            private_use: Default::default(),
            signature_counter: 0,
            terminated: false,
        }
    }

    fn slot(&self, key: KeyRef) -> &KeySlot {
        match key {
            KeyRef::Sig => &self.keys[0],
            KeyRef::Dec => &self.keys[1],
            KeyRef::Aut => &self.keys[2],
        }
    }

    fn slot_mut(&mut self, key: KeyRef) -> &mut KeySlot {
        match key {
            KeyRef::Sig => &mut self.keys[0],
            KeyRef::Dec => &mut self.keys[1],
            KeyRef::Aut => &mut self.keys[2],
        }
    }

    /// §4.2.1 the full AID: RID, PIX application, version, manufacturer, serial, RFU.
    fn aid(&self) -> Vec<u8> {
        let mut aid = Vec::with_capacity(16);
        aid.extend_from_slice(&AID_PREFIX);
        aid.extend_from_slice(&VERSION);
        aid.extend_from_slice(&MANUFACTURER);
        aid.extend_from_slice(&self.serial);
        aid.extend_from_slice(&[0x00, 0x00]);
        aid
    }

    /// Checks what a state file could get wrong.
    fn check(&self) -> Result<(), String> {
        if self.serial.len() != 4 {
            return Err(format!("serial of {} bytes, expected 4", self.serial.len()));
        }
        for key in KeyRef::ALL {
            let slot = self.slot(key);
            let alg = data::parse_attributes(key, &slot.attributes)
                .map_err(|_| format!("{key:?} key: invalid algorithm attributes"))?;
            if let Some(k) = &slot.key {
                if k.algorithm() != alg {
                    return Err(format!(
                        "{key:?} key is {:?} but its attributes say {alg:?}",
                        k.algorithm()
                    ));
                }
            }
            if slot.fingerprint.len() != 20
                || slot.ca_fingerprint.len() != 20
                || slot.generated_at.len() != 4
            {
                return Err(format!("{key:?} key: fingerprint or timestamp of a wrong length"));
            }
        }
        Ok(())
    }
}

/// Security and selection state, lost on power-off and reset.
#[derive(Debug, Default)]
struct Volatile {
    /// The OpenPGP application is selected.
    selected: bool,
    /// §7.2.2 PW1 verified with P2 81 (PSO:CDS).
    pw1_cds: bool,
    /// §7.2.2 PW1 verified with P2 82 (other operations).
    pw1_other: bool,
    /// §7.2.2 PW3 verified.
    pw3: bool,
    /// §7.2.5 the 7F21 occurrence chosen by SELECT DATA.
    occurrence: u8,
}

/// A simulated OpenPGP card 3.4.
pub struct OpenPgpCard {
    io: CardIo,
    app: App,
}

/// The OpenPGP application behind the card's transmission layer.
struct App {
    rng: SimRng,
    state: Persistent,
    volatile: Volatile,
}

impl std::fmt::Debug for OpenPgpCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // PINs and keys stay out: the serial number and the session state only.
        f.debug_struct("OpenPgpCard")
            .field("serial", &scard_iso7816::hex::encode_upper(&self.app.state.serial))
            .field("terminated", &self.app.state.terminated)
            .field("volatile", &self.app.volatile)
            .field("io", &self.io)
            .finish()
    }
}

impl OpenPgpCard {
    /// A fresh card: default PINs (PW1 123456, PW3 12345678, no resetting code), RSA 2048
    /// algorithm attributes and no keys; the serial number is drawn from `rng`.
    pub fn new(mut rng: SimRng) -> Self {
        let serial = rng.bytes(4);
        let state = Persistent::new(serial);
        Self { io: CardIo::new(true), app: App { rng, state, volatile: Volatile::default() } }
    }

    /// Loads a card saved with [`Card::save_state`].
    pub fn from_state(state: serde_json::Value, rng: SimRng) -> Result<Self, String> {
        let state: Persistent = serde_json::from_value(state).map_err(|e| e.to_string())?;
        state.check()?;
        Ok(Self { io: CardIo::new(true), app: App { rng, state, volatile: Volatile::default() } })
    }
}

impl App {
    /// The application: one complete command (chains joined by [`CardIo`]).
    fn dispatch(&mut self, cmd: &Command<'_>) -> Reply {
        check_cla(cmd.cla)?;
        if cmd.ins == 0xA4 {
            return self.select(cmd);
        }
        if !self.volatile.selected {
            // Nothing is selected: the card has no other application to answer.
            return Err(StatusWord::INS_NOT_SUPPORTED);
        }
        if self.state.terminated {
            // §7.2.17: in termination state only ACTIVATE FILE works.
            return if cmd.ins == 0x44 { self.activate_file(cmd) } else { Err(SW_TERMINATED) };
        }
        match cmd.ins {
            0xCA => self.get_data(cmd),
            0xCC => self.get_next_data(cmd),
            0xA5 => self.select_data(cmd),
            0xDA => self.put_data(cmd),
            0xDB => self.import_key(cmd),
            0x20 => self.verify(cmd),
            0x24 => self.change_reference_data(cmd),
            0x2C => self.reset_retry_counter(cmd),
            0x47 => self.generate(cmd),
            0x2A => match cmd.p1p2() {
                0x9E9A => self.compute_signature(cmd),
                0x8086 => self.decipher(cmd),
                _ => Err(StatusWord::WRONG_P1P2),
            },
            0x88 => self.internal_authenticate(cmd),
            0x84 => self.get_challenge(cmd),
            0xE6 => self.terminate_df(cmd),
            0x44 => self.activate_file(cmd),
            _ => Err(StatusWord::INS_NOT_SUPPORTED),
        }
    }

    /// §7.2.1 SELECT: by DF name (P1 04), the partial AID or a longer prefix of the full one.
    /// No FCI is returned. A failed SELECT leaves the selection as it was (ISO/IEC 7816-4
    /// §11.2.2).
    fn select(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.p1 != 0x04 {
            // Selection by file identifier or path: this card has no such files.
            return match cmd.p1 {
                0x00..=0x03 | 0x08 | 0x09 => Err(StatusWord::FILE_NOT_FOUND),
                _ => Err(StatusWord::INCORRECT_P1P2),
            };
        }
        // P2: first or only occurrence, return FCI (00), FCP (04) or nothing (0C).
        if !matches!(cmd.p2, 0x00 | 0x04 | 0x0C) {
            return Err(StatusWord::INCORRECT_P1P2);
        }
        let aid = self.state.aid();
        let matches = cmd.data.len() >= AID_PREFIX.len()
            && aid.get(..cmd.data.len()).is_some_and(|prefix| prefix == cmd.data);
        if !matches {
            return Err(StatusWord::FILE_NOT_FOUND);
        }
        // A (re)selection starts a new session of the application.
        self.volatile = Volatile { selected: true, ..Volatile::default() };
        if self.state.terminated {
            return Err(SW_TERMINATED);
        }
        Ok(Vec::new())
    }

    /// §7.2.2 VERIFY: P2 81 (PW1 for PSO:CDS), 82 (PW1 for the other commands), 83 (PW3);
    /// empty data asks for the status; P1 FF resets the verification (§7.2.2, new in 3.x).
    fn verify(&mut self, cmd: &Command<'_>) -> Reply {
        if !matches!(cmd.p2, 0x81..=0x83) {
            return Err(StatusWord::WRONG_P1P2);
        }
        match cmd.p1 {
            0xFF => {
                if !cmd.data.is_empty() {
                    return Err(StatusWord::WRONG_LENGTH);
                }
                self.set_verified(cmd.p2, false);
                return Ok(Vec::new());
            }
            0x00 => {}
            _ => return Err(StatusWord::WRONG_P1P2),
        }
        let (pin, verified, min) = match cmd.p2 {
            0x81 => (&mut self.state.pw1, self.volatile.pw1_cds, PW1_MIN),
            0x82 => (&mut self.state.pw1, self.volatile.pw1_other, PW1_MIN),
            _ => (&mut self.state.pw3, self.volatile.pw3, PW3_MIN),
        };
        if cmd.data.is_empty() {
            // The status form: 9000 when verified, else the tries left.
            return if verified && !pin.is_blocked() { Ok(Vec::new()) } else { Err(pin.status()) };
        }
        if pin.is_blocked() {
            return Err(StatusWord::AUTH_METHOD_BLOCKED);
        }
        check_pw_len(cmd.data, min)?;
        match pin.verify(cmd.data) {
            Ok(()) => {
                self.set_verified(cmd.p2, true);
                Ok(Vec::new())
            }
            Err(sw) => {
                self.set_verified(cmd.p2, false);
                Err(sw)
            }
        }
    }

    fn set_verified(&mut self, reference: u8, verified: bool) {
        match reference {
            0x81 => self.volatile.pw1_cds = verified,
            0x82 => self.volatile.pw1_other = verified,
            _ => self.volatile.pw3 = verified,
        }
    }

    /// §7.2.3 CHANGE REFERENCE DATA: P2 81 (PW1) or 83 (PW3); data = old PW || new PW, split
    /// at the stored length of the old one.
    fn change_reference_data(&mut self, cmd: &Command<'_>) -> Reply {
        let (pin, min) = match (cmd.p1, cmd.p2) {
            (0x00, 0x81) => (&mut self.state.pw1, PW1_MIN),
            (0x00, 0x83) => (&mut self.state.pw3, PW3_MIN),
            _ => return Err(StatusWord::WRONG_P1P2),
        };
        if pin.is_blocked() {
            return Err(StatusWord::AUTH_METHOD_BLOCKED);
        }
        let Some((old, new)) = cmd.data.split_at_checked(pin.len()) else {
            return Err(StatusWord::WRONG_LENGTH);
        };
        if let Err(sw) = pin.verify(old) {
            if cmd.p2 == 0x81 {
                self.volatile.pw1_cds = false;
                self.volatile.pw1_other = false;
            } else {
                self.volatile.pw3 = false;
            }
            return Err(sw);
        }
        check_pw_len(new, min)?;
        pin.set(new);
        Ok(Vec::new())
    }

    /// §7.2.4 RESET RETRY COUNTER for PW1 (P2 81): P1 00 with data = resetting code || new
    /// PW1, or P1 02 after PW3 with data = new PW1.
    fn reset_retry_counter(&mut self, cmd: &Command<'_>) -> Reply {
        let new = match (cmd.p1, cmd.p2) {
            (0x00, 0x81) => {
                // §4.3: an unset resetting code has a counter of 0, as if blocked.
                let Some(rc) = self.state.rc.as_mut() else {
                    return Err(StatusWord::AUTH_METHOD_BLOCKED);
                };
                if rc.is_blocked() {
                    return Err(StatusWord::AUTH_METHOD_BLOCKED);
                }
                let Some((code, new)) = cmd.data.split_at_checked(rc.len()) else {
                    return Err(StatusWord::WRONG_LENGTH);
                };
                rc.verify(code)?;
                new
            }
            (0x02, 0x81) => {
                if !self.volatile.pw3 {
                    return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
                }
                cmd.data
            }
            _ => return Err(StatusWord::WRONG_P1P2),
        };
        check_pw_len(new, PW1_MIN)?;
        self.state.pw1.set(new);
        Ok(Vec::new())
    }

    /// §7.2.15 GET CHALLENGE: Ne random bytes, up to the maximum announced in C0.
    fn get_challenge(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.p1p2() != 0 {
            return Err(StatusWord::WRONG_P1P2);
        }
        let Some(ne) = cmd.ne.and_then(|n| usize::try_from(n).ok()) else {
            return Err(StatusWord::WRONG_LENGTH);
        };
        if !cmd.data.is_empty() || ne > usize::from(data::MAX_CHALLENGE) {
            return Err(StatusWord::WRONG_LENGTH);
        }
        Ok(self.rng.bytes(ne))
    }

    /// §7.2.16 TERMINATE DF: after PW3, or without it once PW3 is blocked.
    fn terminate_df(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.p1p2() != 0 {
            return Err(StatusWord::WRONG_P1P2);
        }
        if !self.volatile.pw3 && !self.state.pw3.is_blocked() {
            return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
        }
        self.state.terminated = true;
        self.volatile = Volatile { selected: true, ..Volatile::default() };
        Ok(Vec::new())
    }

    /// §7.2.17 ACTIVATE FILE: a terminated application comes back in its factory state (the
    /// serial number stays); on an operational one it does nothing.
    fn activate_file(&mut self, cmd: &Command<'_>) -> Reply {
        if cmd.p1p2() != 0 {
            return Err(StatusWord::WRONG_P1P2);
        }
        if self.state.terminated {
            self.state = Persistent::new(self.state.serial.clone());
            self.volatile = Volatile { selected: true, ..Volatile::default() };
        }
        Ok(Vec::new())
    }
}

/// §7.1 class byte: 00 (and 10 for chaining, removed by [`CardIo`]); logical channels and
/// secure messaging are not supported (§7.4 status bytes 6881, 6882).
fn check_cla(cla: u8) -> Result<(), StatusWord> {
    match cla {
        0x00 => Ok(()),
        c if c & 0x80 != 0 => Err(StatusWord::CLA_NOT_SUPPORTED),
        c if c & 0x0C != 0 => Err(StatusWord::SECURE_MESSAGING_NOT_SUPPORTED),
        c if c & 0x43 != 0 => Err(StatusWord::LOGICAL_CHANNEL_NOT_SUPPORTED),
        _ => Err(StatusWord::CLA_NOT_SUPPORTED),
    }
}

/// §4.3 password lengths: a candidate outside min..=127 cannot be a password (6700, no try
/// counted).
fn check_pw_len(pw: &[u8], min: usize) -> Result<(), StatusWord> {
    if pw.len() < min || pw.len() > PW_MAX {
        return Err(StatusWord::WRONG_LENGTH);
    }
    Ok(())
}

impl Card for OpenPgpCard {
    fn family(&self) -> Family {
        Family::OpenPgp
    }

    fn atr(&self) -> &[u8] {
        &ATR
    }

    fn power_on(&mut self) {
        self.io.reset();
        self.app.volatile = Volatile::default();
    }

    fn process(&mut self, command: &[u8]) -> Vec<u8> {
        let app = &mut self.app;
        self.io.process(command, |cmd| app.dispatch(cmd))
    }

    fn save_state(&self) -> serde_json::Value {
        serde_json::to_value(&self.app.state).unwrap_or_else(|e| {
            tracing::error!("OpenPGP card state cannot be encoded: {e}");
            serde_json::Value::Null
        })
    }
}

/// Plaintext and shared secrets leave the card as response data (zeroized by [`CardIo`]).
fn secret_reply(secret: Zeroizing<Vec<u8>>) -> Reply {
    Ok(secret.to_vec())
}
