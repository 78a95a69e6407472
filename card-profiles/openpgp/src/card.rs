//! [`OpenPgpCard`]: the OpenPGP card 3.4 application as a [`CardModule`].

use std::time::{SystemTime, UNIX_EPOCH};

use scard_iso7816::tlv::ber::{self, Tag};
use scard_iso7816::{CommandApdu, ResponseApdu, StatusWord};
use scard_minidriver::fs::{FileInfo, FilePath, compress_certificate};
use scard_minidriver::model::PinRules;
use scard_minidriver::{
    CachePolicy, CardCf, CardChannel, CardError, CardModel, CardModule, CardProperties,
    ContainerInfo, Curve, DecryptPadding, KeyAlgorithm, KeySpec, Pin, PinId, PinInfo, PinPurpose,
    PinSet, PinType, PublicKey, Result, Secret, SignPadding, SignRequest,
};
use zeroize::Zeroizing;

use crate::AID_PREFIX;
use crate::ard::{ApplicationData, AttrKind, Attributes, PwStatus, Role, parse_public_key};
use crate::fingerprint;
use crate::record::{Record, RecordState};

/// ISO/IEC 7816-4 instructions as OpenPGP card 3.4 §7.2 uses them.
const INS_VERIFY: u8 = 0x20;
const INS_CHANGE_REFERENCE_DATA: u8 = 0x24;
const INS_RESET_RETRY_COUNTER: u8 = 0x2C;
const INS_PSO: u8 = 0x2A;
const INS_INTERNAL_AUTHENTICATE: u8 = 0x88;
const INS_GENERATE: u8 = 0x47;
const INS_GET_DATA: u8 = 0xCA;
const INS_PUT_DATA: u8 = 0xDA;
const INS_SELECT_DATA: u8 = 0xA5;

/// §7.2.2 VERIFY references: PW1 for PSO:CDS (81), PW1 for the other commands (82), PW3 (83).
const PW1_CDS: u8 = 0x81;
const PW1_OTHER: u8 = 0x82;
const PW3: u8 = 0x83;

/// §4.4.1 DOs.
const DO_ARD: u16 = 0x006E;
const DO_PW_STATUS: u16 = 0x00C4;
const DO_RESETTING_CODE: u16 = 0x00D3;
const DO_CERTIFICATE: u16 = 0x7F21;
/// Private use DO 2: read always, write PW3 (§4.4.1). Holds the profile's record.
const DO_PRIVATE_2: u16 = 0x0102;

/// §4.3: the resetting code is at least 8 characters.
const RC_MIN: usize = 8;
/// Largest Ne: the exchange engine caps it to the card's limits and follows 61xx.
const NE_MAX: u32 = 65536;
/// Extended APDU data size for a generic card that announces extended length without
/// extended length information (7F66).
const GENERIC_EXTENDED: usize = 2048;

/// PIN id 3: the resetting code (unblocks PW1; §4.3).
fn resetting_code() -> PinId {
    PinId::new(3).unwrap_or(PinId::EVERYONE)
}

/// What the profile knows about the card in this session (from the SELECT that opened it
/// to the next reset): read once, kept up to date by the profile's own writes.
#[derive(Debug)]
struct Session {
    /// DO 6E, with C4 possibly stale (see `pw_status_fresh`).
    ard: ApplicationData,
    /// The channel's transaction in which DO 6E was last read.
    checked_in: u64,
    /// Whether `ard.pw_status` is what the card says now (a PIN command changes it).
    pw_status_fresh: bool,
    /// DO 0102, once read.
    record: Option<RecordState>,
    /// The counters of this session when the card keeps our record: the record's when read
    /// (moved if someone else changed the keys since it was written), then moved by this
    /// profile's own changes.
    cf_base: Option<CardCf>,
    /// Which containers hold a certificate, when known without reading them: from a record
    /// that matched the keys when read, then kept up to date by this profile's writes.
    certificate_bits: Option<u8>,
    /// Public keys read (GENERATE ASYMMETRIC KEY PAIR P1 81) or generated.
    public_keys: [Option<PublicKey>; 3],
    /// The public keys earlier processes read from this card ([`scard_minidriver::ObjectStore`]),
    /// loaded when first needed, with the key state and the validator they were stored under.
    stored: Option<Stored>,
    /// Certificates read or written (`Some(None)`: the DO is empty).
    certificates: [Option<Option<Vec<u8>>>; 3],
    /// PW1 verified for PSO:CDS (81), valid until a signature when C4 byte 1 is 00.
    pw1_cds: bool,
    /// PW1 verified for the other commands (82).
    pw1_other: bool,
    /// PW3 verified.
    pw3: bool,
    /// The PW1 value that the card accepted in this session, to verify the other reference
    /// (82 after 81) without asking again: a value is only ever sent again after it
    /// succeeded, so a wrong PIN costs one try, never two.
    pw1: Option<Pin>,
}

/// The object store's entries for one state of the keys.
#[derive(Debug)]
struct Stored {
    /// [`OpenPgpCard::key_state`] when loaded: compared on every use (cheap), where the
    /// validator is a digest.
    state: Vec<u8>,
    /// [`OpenPgpCard::key_validator`] of that state.
    validator: Vec<u8>,
    objects: scard_minidriver::cache::Objects,
}

impl Session {
    fn new(ard: ApplicationData, transaction: u64) -> Self {
        Self {
            ard,
            checked_in: transaction,
            pw_status_fresh: true,
            record: None,
            cf_base: None,
            certificate_bits: None,
            public_keys: [None, None, None],
            stored: None,
            certificates: [None, None, None],
            pw1_cds: false,
            pw1_other: false,
            pw3: false,
            pw1: None,
        }
    }

    fn forget_pw1(&mut self) {
        self.pw1_cds = false;
        self.pw1_other = false;
        self.pw1 = None;
    }

    /// Notes whether `role`'s certificate exists.
    fn know_certificate(&mut self, role: Role, present: bool) {
        if let Some(bits) = self.certificate_bits.as_mut() {
            let bit = 1u8 << role.index();
            if present {
                *bits |= bit;
            } else {
                *bits &= !bit;
            }
        }
    }
}

fn slot<T>(array: &[T; 3], role: Role) -> &T {
    let [sig, dec, aut] = array;
    crate::ard::pick(role, sig, dec, aut)
}

fn slot_mut<T>(array: &mut [T; 3], role: Role) -> &mut T {
    let [sig, dec, aut] = array;
    match role {
        Role::Sig => sig,
        Role::Dec => dec,
        Role::Aut => aut,
    }
}

/// An OpenPGP card 3.4 (or 3.x) behind a channel.
///
/// What it reads, and when (OpenPGP card 3.4 §4.4.1, §7.2):
/// - the first operation of a session: SELECT (skipped when the registry's probe already
///   selected the application) and one GET DATA 6E; its PW status bytes give the tries left
///   without a VERIFY, its fingerprints which containers hold a key;
/// - public keys only when a container is asked for by index ([`CardModule::container`]):
///   GENERATE ASYMMETRIC KEY PAIR P1 81, cached for the session; [`CardModule::containers`]
///   leaves `public_key` empty;
/// - certificates: which containers have one comes from the profile's record in DO 0102
///   (one GET DATA); without a current record, by reading the certificates (cached);
/// - a reset (seen on the channel) drops everything: authentication included.
///
/// PW1 has two references: 81 for PSO:CDS and 82 for the rest. `authenticate(USER)` sends
/// VERIFY 81; the decryption and authentication keys then verify 82 with the same value, once
/// per session, only because it already succeeded. When the PW status byte 1 is 00 (PW1
/// valid for one signature) the signature container is `always_authenticate`: each signature
/// needs its own `authenticate(USER)`, the cached value is never used for 81.
#[derive(Debug)]
pub struct OpenPgpCard {
    channel: CardChannel,
    model: CardModel,
    resets_seen: u64,
    session: Option<Session>,
    /// The counters when the card does not keep the profile's record.
    local_cf: CardCf,
    /// PIN changes made without PW3 (the record cannot be written): added to `pins`.
    pins_bump: u8,
    /// Seconds since 1970 for key generation dates.
    clock: fn() -> u32,
}

fn system_clock() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

impl OpenPgpCard {
    /// Opens the card with a model of the OpenPGP family (nothing is sent yet).
    pub fn new(mut channel: CardChannel, model: CardModel) -> Self {
        channel.set_limits(model.limits);
        let resets_seen = channel.stats().resets;
        Self {
            channel,
            model,
            resets_seen,
            session: None,
            local_cf: CardCf::default(),
            pins_bump: 0,
            clock: system_clock,
        }
    }

    /// Sets the clock used for key generation dates (tests; seconds since 1970).
    pub fn set_clock(&mut self, clock: fn() -> u32) {
        self.clock = clock;
    }

    /// The application related data as read in this session (reading it if needed).
    pub fn application_data(&mut self) -> Result<ApplicationData> {
        self.tx(|me| Ok(me.ard()?.clone()))
    }

    /// Runs `f` in one transaction (joining the caller's).
    fn tx<R>(&mut self, f: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        self.channel.begin()?;
        let result = f(self);
        let ended = self.channel.end();
        let value = result?;
        ended?;
        Ok(value)
    }

    /// Selects the application and reads DO 6E unless this session has them.
    fn ensure(&mut self) -> Result<()> {
        let resets = self.channel.stats().resets;
        if resets != self.resets_seen {
            // The card was reset: selection, verified PINs and everything read are gone.
            self.resets_seen = resets;
            self.session = None;
        }
        if self.channel.selected() != Some(&AID_PREFIX[..]) {
            self.session = None;
            self.channel.select(&AID_PREFIX)?;
        }
        if self.session.is_none() {
            let data = self.get_data("GET DATA 6E (application related data)", DO_ARD)?;
            let ard = ApplicationData::parse(&data)?;
            self.apply_limits(&ard);
            self.session = Some(Session::new(ard, self.channel.transaction_count()));
            // The read itself may have crossed a reset; then the next call starts again.
            self.resets_seen = self.channel.stats().resets;
        }
        Ok(())
    }

    /// The model's limits, bounded by what the card states: extended length only when the
    /// historical bytes (5F52) announce it (for the generic model: whenever they do), and
    /// no more than the extended length information (7F66) allows.
    fn apply_limits(&mut self, ard: &ApplicationData) {
        let mut limits = self.model.limits;
        let announced = ard.card_capabilities().is_some_and(|c| c.extended_length);
        if self.model.generic && announced && !limits.extended_length {
            // Bounded by 7F66 below; a card that gives no 7F66 gets a modest 2 KiB.
            limits.extended_length = true;
            limits.max_command_data = GENERIC_EXTENDED;
            limits.max_response_data = GENERIC_EXTENDED as u32;
            if ard.extended_length_info.is_some() {
                limits.max_command_data = scard_iso7816::apdu::MAX_NC;
                limits.max_response_data = scard_iso7816::apdu::MAX_NE;
            }
        }
        if limits.extended_length && !announced && self.model.generic {
            limits = scard_iso7816::CardLimits::default();
        }
        if limits.extended_length {
            if let Some((command, response)) = ard.extended_length_info {
                // 7F66 counts whole APDUs: header 4, Lc 3 and Le 2 (extended), SW 2.
                let nc = usize::from(command).saturating_sub(9).max(1);
                let ne = u32::from(response).saturating_sub(2).max(1);
                limits.max_command_data = limits.max_command_data.min(nc);
                limits.max_response_data = limits.max_response_data.min(ne);
            }
        }
        self.channel.set_limits(limits);
    }

    fn sess(&self) -> Result<&Session> {
        self.session.as_ref().ok_or(CardError::Malformed {
            operation: "OpenPGP session",
            reason: "the application related data were not read".into(),
        })
    }

    fn sess_mut(&mut self) -> Result<&mut Session> {
        self.session.as_mut().ok_or(CardError::Malformed {
            operation: "OpenPGP session",
            reason: "the application related data were not read".into(),
        })
    }

    fn ard(&mut self) -> Result<&ApplicationData> {
        self.ensure()?;
        Ok(&self.sess()?.ard)
    }

    /// Sends a command; a reset answers [`CardError::CardReset`] for commands that depend on
    /// authentication (see [`CardChannel::transmit`]).
    fn transmit(&mut self, operation: &'static str, cmd: &CommandApdu) -> Result<ResponseApdu> {
        self.channel.transmit(operation, cmd)
    }

    fn send(
        &mut self,
        operation: &'static str,
        cmd: &CommandApdu,
        pin: Option<PinId>,
    ) -> Result<Vec<u8>> {
        self.channel.transmit_ok(operation, cmd, pin)
    }

    /// §7.2.6 GET DATA, Le always sent (largest the channel allows; 61xx followed).
    fn get_data(&mut self, operation: &'static str, tag: u16) -> Result<Vec<u8>> {
        let [p1, p2] = tag.to_be_bytes();
        let cmd = command(operation, INS_GET_DATA, p1, p2, &[], Some(NE_MAX))?;
        self.send(operation, &cmd, None)
    }

    /// §7.2.8 PUT DATA (chained or extended as the channel's limits say). Without PW3 (or
    /// PW1 for 0101/0103) the card answers 6982: reported as needing the admin PIN.
    fn put_data(&mut self, operation: &'static str, tag: u16, data: &[u8]) -> Result<()> {
        let [p1, p2] = tag.to_be_bytes();
        let cmd = command(operation, INS_PUT_DATA, p1, p2, data, None)?;
        self.send(operation, &cmd, Some(PinId::ADMIN)).map(|_| ())
    }

    /// §7.2.5 SELECT DATA of the 7F21 occurrence of `role`'s certificate: P1 occurrence,
    /// P2 04, data 60 { 5C { 7F 21 } }. Sent right before each GET/PUT DATA 7F21 (a card may
    /// forget the occurrence after any other GET DATA).
    fn select_certificate(&mut self, role: Role) -> Result<()> {
        let op = "SELECT DATA (7F21)";
        let data = [0x60, 0x04, 0x5C, 0x02, 0x7F, 0x21];
        let cmd = command(op, INS_SELECT_DATA, role.certificate_occurrence(), 0x04, &data, None)?;
        self.send(op, &cmd, None).map(|_| ())
    }

    /// Reads C4 again (after PIN commands, or when a VERIFY answered 6300 without a count).
    fn pw_status(&mut self) -> Result<PwStatus> {
        self.ensure()?;
        if self.sess()?.pw_status_fresh {
            return Ok(self.sess()?.ard.pw_status);
        }
        let data = self.get_data("GET DATA C4 (PW status bytes)", DO_PW_STATUS)?;
        let status = PwStatus::parse(&data)?;
        let s = self.sess_mut()?;
        s.ard.pw_status = status;
        s.pw_status_fresh = true;
        Ok(status)
    }

    fn pw_status_changed(&mut self) {
        if let Some(s) = self.session.as_mut() {
            s.pw_status_fresh = false;
        }
    }

    /// PIN length rules of the model, bounded by the maximum the card states in C4.
    fn rules(&mut self, pin: PinId) -> Result<PinRules> {
        let status = self.sess()?.ard.pw_status;
        let (mut rules, card_max) = match pin.get() {
            1 => (self.model.user_pin.clone(), status.pw1_max),
            2 => (self.model.admin_pin.clone(), status.pw3_max),
            3 => {
                let user = &self.model.user_pin;
                (
                    PinRules {
                        min_len: RC_MIN.max(user.min_len),
                        max_len: user.max_len,
                        pad: None,
                    },
                    status.rc_max,
                )
            }
            _ => {
                return Err(CardError::InvalidInput {
                    what: "PIN id",
                    reason: format!("{pin} is not a PIN of an OpenPGP card"),
                });
            }
        };
        if card_max > 0 {
            rules.max_len = rules.max_len.min(usize::from(card_max));
        }
        Ok(rules)
    }

    /// Checks a value against the rules before anything is sent (opcard counts a try for a
    /// value that is too short).
    fn check_len(&mut self, pin: PinId, value: &Pin) -> Result<()> {
        let rules = self.rules(pin)?;
        rules.check(value.len()).map_err(|reason| CardError::PinFormat { pin, reason })
    }

    /// Maps the answer of a command that checks a PIN value (VERIFY, CHANGE REFERENCE DATA,
    /// RESET RETRY COUNTER): 63Cx wrong with x tries left, 6983 blocked, 6300 wrong without a
    /// count (C4 then tells how many are left, without a try).
    fn pin_result(&mut self, operation: &'static str, pin: PinId, sw: StatusWord) -> Result<()> {
        if sw == StatusWord::SUCCESS {
            return Ok(());
        }
        self.pw_status_changed();
        let err = CardError::from_status(operation, sw, Some(pin));
        if let CardError::WrongPin { tries_left: None, .. } = err {
            let status = self.pw_status()?;
            let tries = match pin.get() {
                1 => status.pw1_tries,
                2 => status.pw3_tries,
                _ => status.rc_tries,
            };
            return Err(if tries == 0 {
                CardError::PinBlocked { pin }
            } else {
                CardError::WrongPin { pin, tries_left: Some(tries) }
            });
        }
        Err(err)
    }

    /// §7.2.2 VERIFY of `reference` with `value`.
    fn verify(&mut self, reference: u8, pin: PinId, value: &Pin) -> Result<()> {
        let op = "VERIFY";
        let cmd = command(op, INS_VERIFY, 0x00, reference, value.expose(), None)?;
        let sw = self.transmit(op, &cmd)?.sw();
        self.pin_result(op, pin, sw)
    }

    /// PW1 (82) for decryption and authentication: verified already, or verified now with the
    /// value PW1 (81) was accepted with in this session.
    fn ensure_pw1_other(&mut self, operation: &'static str) -> Result<()> {
        let s = self.sess()?;
        if s.pw1_other {
            return Ok(());
        }
        let Some(pin) = s.pw1.clone() else {
            return Err(CardError::AuthRequired { operation, pin: PinId::USER });
        };
        match self.verify(PW1_OTHER, PinId::USER, &pin) {
            Ok(()) => {
                self.sess_mut()?.pw1_other = true;
                Ok(())
            }
            Err(err) => {
                self.sess_mut()?.forget_pw1();
                self.channel.clear_authenticated(PinId::USER.set());
                Err(err)
            }
        }
    }

    fn require_admin(&mut self, operation: &'static str) -> Result<()> {
        if self.model.read_only {
            return Err(CardError::ReadOnly { model: self.model.name.clone() });
        }
        if self.sess()?.pw3 {
            Ok(())
        } else {
            Err(CardError::AuthRequired { operation, pin: PinId::ADMIN })
        }
    }

    fn role(&self, index: u8) -> Result<Role> {
        Role::of_index(index).ok_or(CardError::NoContainer { index, count: 3 })
    }

    /// The algorithm of a container's key, or an error when it holds none.
    fn key_algorithm(&mut self, role: Role, what: &'static str) -> Result<KeyAlgorithm> {
        let ard = self.ard()?;
        if !ard.has_key(role) {
            return Err(CardError::EmptyContainer { index: role.index(), what: "key" });
        }
        let attributes = ard.attributes(role).clone();
        attributes.algorithm().ok_or_else(|| {
            let id = attributes.raw.first().copied().unwrap_or(0);
            self.unsupported(&format!("{what} with a key of algorithm {id:02X}"))
        })
    }

    fn container_info(&self, role: Role, has_certificate: bool) -> Result<ContainerInfo> {
        let ard = &self.sess()?.ard;
        let present = ard.has_key(role);
        let attrs = ard.attributes(role);
        let algorithm = if present { attrs.algorithm() } else { None };
        let key_spec = algorithm.map(|alg| match (alg, role) {
            (KeyAlgorithm::Rsa(_), Role::Dec) => KeySpec::Exchange,
            (KeyAlgorithm::Rsa(_), _) => KeySpec::Signature,
            (KeyAlgorithm::Ec(c), Role::Dec) => KeySpec::Ecdh(c),
            (KeyAlgorithm::Ec(c), _) => KeySpec::Ecdsa(c),
        });
        // The default container: the authentication key when there is one, else the first
        // key.
        let default = if ard.has_key(Role::Aut) {
            role == Role::Aut
        } else {
            Role::ALL.into_iter().find(|r| ard.has_key(*r)) == Some(role)
        };
        Ok(ContainerInfo {
            index: role.index(),
            key_ref: role.key_number(),
            name: format!("OPENPGP-{}-{}", serial_text(ard), role.short()),
            label: role.label().to_owned(),
            default: default && present,
            key_spec,
            algorithm,
            public_key: None,
            has_certificate: present && has_certificate,
            always_authenticate: role == Role::Sig && !ard.pw_status.pw1_multiple_signatures,
            pin: PinId::USER,
        })
    }

    /// Reads DO 6E and DO 0102 again; drops the cached keys and certificates when either
    /// changed.
    fn revalidate(&mut self, transaction: u64) -> Result<()> {
        let data = self.get_data("GET DATA 6E (application related data)", DO_ARD)?;
        let ard = ApplicationData::parse(&data)?;
        let old_record = self.sess()?.record.clone();
        let old_digest = self.sess()?.ard.key_digest();
        {
            let s = self.sess_mut()?;
            s.ard = ard;
            s.pw_status_fresh = true;
            s.checked_in = transaction;
            s.record = None;
            s.cf_base = None;
        }
        let record = self.record_state()?;
        let s = self.sess_mut()?;
        if s.ard.key_digest() != old_digest || old_record.is_some_and(|r| r != record) {
            s.public_keys = [None, None, None];
            s.certificates = [None, None, None];
            if s.ard.key_digest() != old_digest {
                s.certificate_bits = None;
            }
        }
        Ok(())
    }

    /// DO 0102 as read in this session (reading it once).
    fn record_state(&mut self) -> Result<RecordState> {
        self.ensure()?;
        if let Some(state) = self.sess()?.record.clone() {
            return Ok(state);
        }
        let state = if self.sess()?.ard.capabilities.private_use_dos() {
            let op = "GET DATA 0102 (private use DO)";
            let [p1, p2] = DO_PRIVATE_2.to_be_bytes();
            let cmd = command(op, INS_GET_DATA, p1, p2, &[], Some(NE_MAX))?;
            let response = self.transmit(op, &cmd)?;
            match response.sw() {
                StatusWord::SUCCESS => RecordState::decode(response.data()),
                // A card without the DO (6A88) holds nothing there.
                sw if sw.is_referenced_data_not_found() => RecordState::Empty,
                sw => return Err(CardError::Status { operation: op, sw }),
            }
        } else {
            RecordState::Unsupported
        };
        let s = self.sess_mut()?;
        if let RecordState::Ours(record) = &state {
            let digest = s.ard.key_digest();
            if record.digest == digest {
                s.certificate_bits = Some(record.certificates);
            }
            s.cf_base = Some(record.effective_cf(&digest));
        }
        s.record = Some(state.clone());
        Ok(state)
    }

    /// The certificate of `role` from the session, or read from the card.
    fn read_certificate(&mut self, role: Role) -> Result<Option<Vec<u8>>> {
        self.ensure()?;
        if let Some(known) = slot(&self.sess()?.certificates, role) {
            return Ok(known.clone());
        }
        self.select_certificate(role)?;
        let data = self.get_data("GET DATA 7F21 (cardholder certificate)", DO_CERTIFICATE)?;
        let cert = if data.is_empty() { None } else { Some(data) };
        let s = self.sess_mut()?;
        *slot_mut(&mut s.certificates, role) = Some(cert.clone());
        s.know_certificate(role, cert.is_some());
        Ok(cert)
    }

    /// Which containers hold a certificate: from the current record, else by reading them
    /// (`roles`: which ones to read; the others are reported as unknown = false).
    fn certificate_bits(&mut self, roles: &[Role]) -> Result<u8> {
        self.record_state()?;
        let from_record = self.sess()?.certificate_bits;
        let mut bits = 0u8;
        for role in Role::ALL {
            let known = slot(&self.sess()?.certificates, role).as_ref().map(Option::is_some);
            let has = match (known, from_record) {
                (Some(has), _) => has,
                (None, Some(record)) => record & (1 << role.index()) != 0,
                (None, None) if roles.contains(&role) => self.read_certificate(role)?.is_some(),
                (None, None) => false,
            };
            if has {
                bits |= 1 << role.index();
            }
        }
        Ok(bits)
    }

    /// The counters as they stand (see [`crate::record`]): the record's (plus this session's
    /// PIN changes that could not be written), or the module's own.
    fn current_cf(&mut self) -> Result<CardCf> {
        Ok(match self.record_state()? {
            RecordState::Ours(record) => {
                let s = self.sess()?;
                let mut cf = s.cf_base.unwrap_or_else(|| record.effective_cf(&s.ard.key_digest()));
                cf.pins = cf.pins.wrapping_add(self.pins_bump);
                cf
            }
            _ => self.local_cf,
        })
    }

    /// Records a change: bumps the counters and writes the record when PW3 is verified and
    /// DO 0102 is empty or ours; else counts in the module. (Key and certificate changes
    /// need PW3, so only PIN changes are ever counted in the module for a card with a
    /// record.)
    fn bump(&mut self, change: impl FnOnce(&mut CardCf)) -> Result<()> {
        let before = self.current_cf()?;
        let mut cf = before;
        change(&mut cf);
        let state = self.record_state()?;
        let writable = matches!(state, RecordState::Empty | RecordState::Ours(_));
        if writable && self.sess()?.pw3 && !self.model.read_only {
            let with_keys: Vec<Role> = Role::ALL
                .into_iter()
                .filter(|r| self.sess().is_ok_and(|s| s.ard.has_key(*r)))
                .collect();
            let certificates = self.certificate_bits(&with_keys)?;
            let record = Record { cf, certificates, digest: self.sess()?.ard.key_digest() };
            self.put_data("PUT DATA 0102 (cardcf record)", DO_PRIVATE_2, &record.encode())?;
            // The stored pins counter includes this session's PIN changes from now on.
            self.pins_bump = 0;
            let s = self.sess_mut()?;
            s.record = Some(RecordState::Ours(record));
            s.cf_base = Some(cf);
            s.certificate_bits = Some(certificates);
        } else if let RecordState::Ours(_) = state {
            self.pins_bump = self.pins_bump.wrapping_add(cf.pins.wrapping_sub(before.pins));
        } else {
            self.local_cf = cf;
        }
        Ok(())
    }

    /// Before a change that only reading the card would reveal (a certificate: the key
    /// digest does not move), writes our record with a key digest no card has. A session
    /// that finds it (the change was interrupted) takes the counters as moved, as after a
    /// key change by other software ([`Record::effective_cf`]), and reads the certificates
    /// instead of trusting the record; [`Self::bump`] then writes the true record. Nothing is
    /// written when the record cannot be (no PW3, DO 0102 someone else's).
    fn record_change_pending(&mut self) -> Result<()> {
        let state = self.record_state()?;
        let writable = matches!(state, RecordState::Empty | RecordState::Ours(_));
        if !writable || !self.sess()?.pw3 || self.model.read_only {
            return Ok(());
        }
        let cf = self.current_cf()?;
        let digest = self.sess()?.ard.key_digest().map(|b| !b);
        let record = Record { cf, certificates: 0, digest };
        self.put_data("PUT DATA 0102 (cardcf record)", DO_PRIVATE_2, &record.encode())?;
        self.pins_bump = 0;
        let s = self.sess_mut()?;
        s.record = Some(RecordState::Ours(record));
        s.cf_base = Some(cf);
        Ok(())
    }

    /// The PINs' information with the tries left of `status`.
    fn pin_list(&mut self, status: PwStatus) -> Result<Vec<PinInfo>> {
        let user = self.rules(PinId::USER)?;
        let admin = self.rules(PinId::ADMIN)?;
        let rc = self.rules(resetting_code())?;
        Ok(vec![
            PinInfo {
                id: PinId::USER,
                name: "PW1 (user PIN)".into(),
                pin_type: PinType::AlphaNumeric,
                purpose: PinPurpose::Primary,
                change_permission: PinId::USER.set(),
                unblock_permission: PinId::ADMIN.set().with(resetting_code()),
                cache_policy: CachePolicy::Normal,
                min_len: user.min_len,
                max_len: user.max_len,
                tries_left: Some(status.pw1_tries),
            },
            PinInfo {
                id: PinId::ADMIN,
                name: "PW3 (admin PIN)".into(),
                pin_type: PinType::AlphaNumeric,
                purpose: PinPurpose::Administrator,
                change_permission: PinId::ADMIN.set(),
                unblock_permission: PinSet::NONE,
                cache_policy: CachePolicy::Normal,
                min_len: admin.min_len,
                max_len: admin.max_len,
                tries_left: Some(status.pw3_tries),
            },
            PinInfo {
                id: resetting_code(),
                name: "Resetting Code".into(),
                pin_type: PinType::AlphaNumeric,
                purpose: PinPurpose::UnblockOnly,
                change_permission: PinId::ADMIN.set(),
                unblock_permission: PinId::ADMIN.set(),
                cache_policy: CachePolicy::None,
                min_len: rc.min_len,
                max_len: rc.max_len,
                tries_left: Some(status.rc_tries),
            },
        ])
    }

    fn pin_changed(&mut self) -> Result<()> {
        self.bump(CardCf::bump_pins)
    }

    /// The public key of a container holding a key (session cache, else read with GENERATE
    /// ASYMMETRIC KEY PAIR P1 81, §7.2.14).
    fn public_key(&mut self, role: Role) -> Result<PublicKey> {
        let alg = self.key_algorithm(role, "reading the public key")?;
        if let Some(key) = slot(&self.sess()?.public_keys, role) {
            return Ok(key.clone());
        }
        let op = "GENERATE ASYMMETRIC KEY PAIR (read public key)";
        if let Some(data) = self.stored_public_key(role) {
            if let Ok(key) = parse_public_key(op, &data, alg) {
                *slot_mut(&mut self.sess_mut()?.public_keys, role) = Some(key.clone());
                return Ok(key);
            }
        }
        let cmd = command(op, INS_GENERATE, 0x81, 0x00, &[role.crt(), 0x00], Some(NE_MAX))?;
        let data = self.send(op, &cmd, None)?;
        let key = parse_public_key(op, &data, alg)?;
        *slot_mut(&mut self.sess_mut()?.public_keys, role) = Some(key.clone());
        self.store_public_key(role, &data);
        Ok(key)
    }

    /// What the stored public keys are valid for: the key digest (fingerprints and
    /// generation dates, which change with every key) and the three algorithm attributes.
    fn key_validator(ard: &ApplicationData) -> Vec<u8> {
        let mut v = ard.key_digest().to_vec();
        Self::push_attributes(ard, &mut v);
        v
    }

    /// What the validator is made of, as it is: fingerprints, dates and algorithm attributes.
    fn key_state(ard: &ApplicationData) -> Vec<u8> {
        let mut v = ard.fingerprints.concat();
        for date in ard.dates {
            v.extend_from_slice(&date.to_be_bytes());
        }
        Self::push_attributes(ard, &mut v);
        v
    }

    /// The three algorithm attributes (C1, C2, C3), each after its length.
    fn push_attributes(ard: &ApplicationData, v: &mut Vec<u8>) {
        for role in Role::ALL {
            let raw = &ard.attributes(role).raw;
            v.push(u8::try_from(raw.len()).unwrap_or(u8::MAX));
            v.extend_from_slice(raw);
        }
    }

    /// The store's entries valid for the keys DO 6E shows now (loaded once per key state).
    fn stored_objects(&mut self) -> Option<&mut Stored> {
        let store = self.channel.object_store().cloned()?;
        let s = self.session.as_mut()?;
        let state = Self::key_state(&s.ard);
        if s.stored.as_ref().is_none_or(|stored| stored.state != state) {
            let validator = Self::key_validator(&s.ard);
            let objects = store.load(&s.ard.aid.0, "openpgp", &validator);
            s.stored = Some(Stored { state, validator, objects });
        }
        s.stored.as_mut()
    }

    /// A public key (the GENERATE ASYMMETRIC KEY PAIR answer) an earlier process read.
    fn stored_public_key(&mut self, role: Role) -> Option<Vec<u8>> {
        self.stored_objects()?.objects.get(&format!("pub-{}", role.index())).cloned()
    }

    /// Keeps a public key read from the card for later processes (public data only; written
    /// when the transaction ends, once for all the keys a listing reads).
    fn store_public_key(&mut self, role: Role, data: &[u8]) {
        let Some(stored) = self.stored_objects() else { return };
        stored.objects.insert(format!("pub-{}", role.index()), data.to_vec());
        let (objects, validator) = (stored.objects.clone(), stored.validator.clone());
        let Some(s) = self.session.as_ref() else { return };
        let card_id = s.ard.aid.0;
        self.channel.store_objects(card_id, "openpgp", validator, objects);
    }

    /// Checks a signature request against the container's key; returns what to send.
    fn sign_input(
        &mut self,
        index: u8,
        request: &SignRequest<'_>,
    ) -> Result<(Role, KeyAlgorithm, Vec<u8>)> {
        let role = self.role(index)?;
        if role == Role::Dec {
            return Err(self.unsupported("signing with the decryption key (container 1)"));
        }
        let alg = self.key_algorithm(role, "signing")?;
        let input = match (alg, request.padding) {
            // §7.2.10 / §7.2.13: the card pads a DigestInfo (PKCS#1 v1.5) itself.
            (KeyAlgorithm::Rsa(bits), SignPadding::Pkcs1) => {
                let input = match request.hash {
                    Some(hash) => hash.digest_info(request.data)?,
                    None => request.data.to_vec(),
                };
                let k = usize::from(bits).div_ceil(8);
                if input.is_empty() || input.len() + 11 > k {
                    return Err(CardError::InvalidInput {
                        what: "data to sign",
                        reason: format!(
                            "{} bytes do not fit a PKCS#1 v1.5 block of a {bits}-bit key",
                            input.len()
                        ),
                    });
                }
                input
            }
            (KeyAlgorithm::Rsa(_), SignPadding::Pss { .. }) => {
                return Err(self.unsupported("RSA-PSS (an OpenPGP card pads PKCS#1 v1.5 itself)"));
            }
            (KeyAlgorithm::Rsa(_), SignPadding::None) => {
                return Err(self
                    .unsupported("raw RSA signatures (an OpenPGP card pads PKCS#1 v1.5 itself)"));
            }
            // ECDSA of a hash: the card wants as many bytes as the field (opcard refuses
            // other lengths), which is the same integer (FIPS 186-4 §6.4: the leftmost bits
            // of a longer hash; a shorter one as it is).
            (KeyAlgorithm::Ec(curve), SignPadding::None) => {
                if let Some(hash) = request.hash {
                    if request.data.len() != hash.len() {
                        return Err(CardError::InvalidInput {
                            what: "digest",
                            reason: format!(
                                "{} bytes, {hash:?} needs {}",
                                request.data.len(),
                                hash.len()
                            ),
                        });
                    }
                }
                ecdsa_input(curve, request.data)?
            }
            (KeyAlgorithm::Ec(_), _) => {
                return Err(self.unsupported("RSA padding with an EC key"));
            }
        };
        Ok((role, alg, input))
    }

    fn decrypt_input(&mut self, index: u8, padding: &DecryptPadding) -> Result<u16> {
        let role = self.role(index)?;
        if role != Role::Dec {
            return Err(self
                .unsupported("decrypting with a key other than the decryption key (container 1)"));
        }
        match (self.key_algorithm(role, "decryption")?, padding) {
            (KeyAlgorithm::Rsa(bits), DecryptPadding::Pkcs1) => Ok(bits),
            (KeyAlgorithm::Rsa(_), DecryptPadding::Oaep { .. }) => Err(self.unsupported(
                "RSA-OAEP decryption (PSO:DECIPHER removes PKCS#1 v1.5 padding only)",
            )),
            (KeyAlgorithm::Rsa(_), DecryptPadding::None) => {
                Err(self
                    .unsupported("raw RSA decryption (PSO:DECIPHER removes PKCS#1 v1.5 padding)"))
            }
            (KeyAlgorithm::Ec(_), _) => {
                Err(self.unsupported("RSA decryption with an ECDH key (use agree)"))
            }
        }
    }
}

/// Whether two PIN values are the same, compared without an early exit.
fn same_secret(a: &Pin, b: &Pin) -> bool {
    let (a, b) = (a.expose(), b.expose());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Manufacturer and serial number (§4.2.1 AID bytes 9-14) in hex, e.g. `FFFF0A1B2C3D`.
fn serial_text(ard: &ApplicationData) -> String {
    let [m1, m2] = ard.aid.manufacturer().to_be_bytes();
    let [s1, s2, s3, s4] = ard.aid.serial();
    scard_iso7816::hex::encode_upper(&[m1, m2, s1, s2, s3, s4])
}

/// A command APDU; errors name the operation.
fn command(
    operation: &'static str,
    ins: u8,
    p1: u8,
    p2: u8,
    data: &[u8],
    ne: Option<u32>,
) -> Result<CommandApdu> {
    let codec = |source| CardError::Codec { operation, source };
    let mut cmd = CommandApdu::new(0x00, ins, p1, p2);
    if !data.is_empty() {
        cmd = cmd.with_data(data.to_vec()).map_err(codec)?;
    }
    if let Some(ne) = ne {
        cmd = cmd.with_ne(ne).map_err(codec)?;
    }
    Ok(cmd)
}

/// The hash as an integer of the field's size: left-padded with zeros, or its leftmost bytes.
fn ecdsa_input(curve: Curve, hash: &[u8]) -> Result<Vec<u8>> {
    let n = curve.field_len();
    if hash.is_empty() || hash.len() > 64 {
        return Err(CardError::InvalidInput {
            what: "digest",
            reason: format!("{} bytes (1 to 64)", hash.len()),
        });
    }
    if hash.len() >= n {
        return Ok(hash.get(..n).unwrap_or(hash).to_vec());
    }
    let mut out = vec![0u8; n - hash.len()];
    out.extend_from_slice(hash);
    Ok(out)
}

impl CardModule for OpenPgpCard {
    fn model(&self) -> &CardModel {
        &self.model
    }

    fn channel(&mut self) -> &mut CardChannel {
        &mut self.channel
    }

    fn properties(&mut self) -> Result<CardProperties> {
        self.tx(|me| {
            let ard = me.ard()?.clone();
            let algorithms = if me.model.algorithms.is_empty() {
                vec![
                    KeyAlgorithm::Rsa(2048),
                    KeyAlgorithm::Rsa(3072),
                    KeyAlgorithm::Rsa(4096),
                    KeyAlgorithm::Ec(Curve::P256),
                    KeyAlgorithm::Ec(Curve::P384),
                ]
            } else {
                me.model.algorithms.clone()
            };
            Ok(CardProperties {
                family: "openpgp".into(),
                model: me.model.name.clone(),
                card_id: ard.aid.0,
                serial: serial_text(&ard),
                key_generation: me.model.key_generation,
                certificate_compression: me.model.certificate_compression,
                algorithms,
                max_containers: 3,
                free_containers: Role::ALL.iter().filter(|r| !ard.has_key(**r)).count(),
                read_only: me.model.read_only,
            })
        })
    }

    /// The full 16-byte AID (§4.2.1): RID, application, version, manufacturer, serial — unique
    /// per card.
    fn card_id(&mut self) -> Result<[u8; 16]> {
        self.tx(|me| Ok(me.ard()?.aid.0))
    }

    fn pins(&mut self) -> Result<Vec<PinInfo>> {
        self.tx(|me| {
            let status = me.pw_status()?;
            me.pin_list(status)
        })
    }

    /// The PW status bytes as last read (DO 6E or C4): after a VERIFY they may be stale
    /// until the next read.
    fn pins_without_probe(&mut self) -> Result<Vec<PinInfo>> {
        self.tx(|me| {
            me.ensure()?;
            let status = me.sess()?.ard.pw_status;
            me.pin_list(status)
        })
    }

    /// From the PW status bytes (C4): no VERIFY is spent.
    fn tries_left(&mut self, pin: PinId) -> Result<Option<u8>> {
        self.tx(|me| {
            let status = me.pw_status()?;
            Ok(match pin.get() {
                1 => Some(status.pw1_tries),
                2 => Some(status.pw3_tries),
                3 => Some(status.rc_tries),
                _ => None,
            })
        })
    }

    /// PW1: VERIFY 81 (the signature reference; 82 follows when first needed, with the same
    /// value). PW3: VERIFY 83. The resetting code is not verified on its own.
    fn authenticate(&mut self, pin: PinId, value: &Pin) -> Result<()> {
        self.tx(|me| {
            me.ensure()?;
            match pin.get() {
                1 => {
                    me.check_len(pin, value)?;
                    // PW1 (81) verified with this very value in this session and not used up
                    // by a signature since (the card keeps the state until a reset, which
                    // ends the session): the card is where this call would leave it, so
                    // nothing is sent (a PKCS#11 context-specific login right after
                    // C_Login costs no second VERIFY).
                    let s = me.sess()?;
                    let same = s.pw1.as_ref().is_some_and(|v| same_secret(v, value));
                    if s.pw1_cds && same && me.channel.authenticated().contains(pin) {
                        return Ok(());
                    }
                    // A new attempt replaces what this session knew about PW1.
                    me.sess_mut()?.forget_pw1();
                    me.channel.clear_authenticated(pin.set());
                    me.verify(PW1_CDS, pin, value)?;
                    let s = me.sess_mut()?;
                    s.pw1_cds = true;
                    s.pw1 = Some(value.clone());
                    // The counter went back to its start: C4 is stale.
                    s.pw_status_fresh = false;
                    me.channel.set_authenticated(pin);
                    Ok(())
                }
                2 => {
                    me.check_len(pin, value)?;
                    me.sess_mut()?.pw3 = false;
                    me.channel.clear_authenticated(pin.set());
                    me.verify(PW3, pin, value)?;
                    let s = me.sess_mut()?;
                    s.pw3 = true;
                    s.pw_status_fresh = false;
                    me.channel.set_authenticated(pin);
                    Ok(())
                }
                3 => Err(me.unsupported(
                    "verifying the resetting code on its own (it is used by unblock_pin of PIN 1)",
                )),
                _ => Err(CardError::InvalidInput {
                    what: "PIN id",
                    reason: format!(
                        "{pin} is not a PIN of an OpenPGP card (1 PW1, 2 PW3, 3 resetting code)"
                    ),
                }),
            }
        })
    }

    /// PIN 1 and 2: CHANGE REFERENCE DATA (§7.2.3) with the old and new values. PIN 3 (the
    /// resetting code) is set by the admin: `old` is PW3 (not sent again when PW3 is
    /// verified in this session), then PUT DATA D3 (§4.4.1).
    fn change_pin(&mut self, pin: PinId, old: &Pin, new: &Pin) -> Result<()> {
        self.tx(|me| {
            me.ensure()?;
            if me.model.read_only {
                return Err(CardError::ReadOnly { model: me.model.name.clone() });
            }
            let op = "CHANGE REFERENCE DATA";
            match pin.get() {
                1 | 2 => {
                    me.check_len(pin, old)?;
                    me.check_len(pin, new)?;
                    let reference = if pin == PinId::USER { PW1_CDS } else { PW3 };
                    let mut data = Zeroizing::new(old.expose().to_vec());
                    data.extend_from_slice(new.expose());
                    let cmd = command(op, INS_CHANGE_REFERENCE_DATA, 0x00, reference, &data, None)?;
                    let sw = me.transmit(op, &cmd)?.sw();
                    // Whatever the outcome, this session's state of that PIN is unknown now.
                    if pin == PinId::USER {
                        me.sess_mut()?.forget_pw1();
                    } else {
                        me.sess_mut()?.pw3 = false;
                    }
                    me.channel.clear_authenticated(pin.set());
                    me.pin_result(op, pin, sw)?;
                    me.pw_status_changed();
                    me.pin_changed()
                }
                3 => {
                    me.check_len(pin, new)?;
                    if !me.sess()?.pw3 {
                        me.check_len(PinId::ADMIN, old)?;
                        me.verify(PW3, PinId::ADMIN, old)?;
                        me.sess_mut()?.pw3 = true;
                        me.channel.set_authenticated(PinId::ADMIN);
                    }
                    me.put_data("PUT DATA D3 (resetting code)", DO_RESETTING_CODE, new.expose())?;
                    me.pw_status_changed();
                    me.pin_changed()
                }
                _ => Err(CardError::InvalidInput {
                    what: "PIN id",
                    reason: format!("{pin} cannot be changed"),
                }),
            }
        })
    }

    /// Unblocks PW1 (§7.2.4 RESET RETRY COUNTER) and sets `new`. `unblock` is, in this
    /// order: not needed when PW3 is verified in this session (P1 02); the resetting code
    /// when one is set (C4 byte 6 > 0; P1 00); else PW3 (VERIFY 83, then P1 02).
    fn unblock_pin(&mut self, pin: PinId, unblock: &Pin, new: &Pin) -> Result<()> {
        self.tx(|me| {
            me.ensure()?;
            if pin != PinId::USER {
                return Err(
                    me.unsupported(&format!("unblocking {pin} (only PW1 can be unblocked)"))
                );
            }
            if me.model.read_only {
                return Err(CardError::ReadOnly { model: me.model.name.clone() });
            }
            me.check_len(PinId::USER, new)?;
            let op = "RESET RETRY COUNTER";
            let status = me.pw_status()?;
            let (p1, data, checked) = if me.sess()?.pw3 {
                (0x02, Zeroizing::new(new.expose().to_vec()), PinId::ADMIN)
            } else if status.rc_tries > 0 {
                me.check_len(resetting_code(), unblock)?;
                let mut data = Zeroizing::new(unblock.expose().to_vec());
                data.extend_from_slice(new.expose());
                (0x00, data, resetting_code())
            } else {
                me.check_len(PinId::ADMIN, unblock)?;
                me.verify(PW3, PinId::ADMIN, unblock)?;
                me.sess_mut()?.pw3 = true;
                me.channel.set_authenticated(PinId::ADMIN);
                (0x02, Zeroizing::new(new.expose().to_vec()), PinId::ADMIN)
            };
            let cmd = command(op, INS_RESET_RETRY_COUNTER, p1, PW1_CDS, &data, None)?;
            let sw = me.transmit(op, &cmd)?.sw();
            me.sess_mut()?.forget_pw1();
            me.channel.clear_authenticated(PinId::USER.set());
            if sw == StatusWord::SECURITY_STATUS_NOT_SATISFIED && checked == PinId::ADMIN {
                me.sess_mut()?.pw3 = false;
                return Err(CardError::AuthRequired { operation: op, pin: PinId::ADMIN });
            }
            me.pin_result(op, checked, sw)?;
            me.pw_status_changed();
            me.pin_changed()
        })
    }

    /// §7.2.2 VERIFY with P1 FF: resets the verification of PW1 (81 and 82) and PW3.
    fn deauthenticate(&mut self, set: PinSet) -> Result<()> {
        self.tx(|me| {
            me.ensure()?;
            // Only the references this session verified and the card still holds: PW1 (81)
            // valid for one signature is spent by it (§4.4.1 C4).
            let mut references = Vec::new();
            if set.contains(PinId::USER) {
                let s = me.sess_mut()?;
                if s.pw1_cds {
                    references.push(PW1_CDS);
                }
                if s.pw1_other {
                    references.push(PW1_OTHER);
                }
                s.forget_pw1();
            }
            if set.contains(PinId::ADMIN) {
                if me.sess()?.pw3 {
                    references.push(PW3);
                }
                me.sess_mut()?.pw3 = false;
            }
            me.channel.clear_authenticated(set);
            for reference in references {
                let op = "VERIFY (reset the verification)";
                let cmd = command(op, INS_VERIFY, 0xFF, reference, &[], None)?;
                me.send(op, &cmd, None)?;
            }
            Ok(())
        })
    }

    /// The three containers from DO 6E; which hold a certificate from the profile's record
    /// (or by reading the certificates of those with a key, once per session). Public keys
    /// are left out: [`CardModule::container`] reads them.
    fn containers(&mut self) -> Result<Vec<ContainerInfo>> {
        self.tx(|me| {
            me.ensure()?;
            let with_keys: Vec<Role> = Role::ALL
                .into_iter()
                .filter(|r| me.sess().is_ok_and(|s| s.ard.has_key(*r)))
                .collect();
            let bits = me.certificate_bits(&with_keys)?;
            Role::ALL
                .into_iter()
                .map(|r| me.container_info(r, bits & (1 << r.index()) != 0))
                .collect()
        })
    }

    /// One container with its public key, from DO 6E alone: whether it holds a certificate is
    /// not looked up (`has_certificate` false), which saves reading DO 0102.
    fn container_for_key(&mut self, index: u8) -> Result<ContainerInfo> {
        self.tx(|me| {
            let role = me.role(index)?;
            me.ensure()?;
            let mut info = me.container_info(role, false)?;
            if info.has_key() {
                info.public_key = Some(me.public_key(role)?);
            }
            Ok(info)
        })
    }

    /// One container, with its public key (read once per session).
    fn container(&mut self, index: u8) -> Result<ContainerInfo> {
        self.tx(|me| {
            let role = me.role(index)?;
            me.ensure()?;
            // This container's certificate only (known from a listing, the record, or read).
            let with_key: &[Role] = if me.sess()?.ard.has_key(role) { &[role] } else { &[] };
            let bits = me.certificate_bits(with_key)?;
            let mut info = me.container_info(role, bits & (1 << role.index()) != 0)?;
            if info.has_key() {
                info.public_key = Some(me.public_key(role)?);
            }
            Ok(info)
        })
    }

    /// PUT DATA C1/C2/C3 when the algorithm differs (§4.4.3.9), GENERATE ASYMMETRIC KEY PAIR
    /// P1 80 (§7.2.14), then the generation date (CE/CF/D0) and fingerprint (C7/C8/C9) as
    /// GnuPG writes them (RFC 4880 §12.2 V4 fingerprint). Needs PW3.
    ///
    /// The fingerprint is what says a container holds a key, so the writes are ordered for an
    /// interruption at any point: a key in the container loses its fingerprint first, and
    /// the certificate of the container (the old key's, or one an interrupted deletion left)
    /// goes before the new key is made; the new fingerprint is written last. A session after
    /// an interruption sees the old key, no key, or the new key, never a key behind another
    /// key's fingerprint or certificate.
    fn generate_key(&mut self, index: u8, algorithm: KeyAlgorithm) -> Result<PublicKey> {
        self.tx(|me| {
            let role = me.role(index)?;
            me.ensure()?;
            if !me.model.key_generation {
                return Err(me.unsupported("on-card key generation"));
            }
            let supported = if me.model.algorithms.is_empty() {
                matches!(
                    algorithm,
                    KeyAlgorithm::Rsa(2048 | 3072 | 4096)
                        | KeyAlgorithm::Ec(Curve::P256 | Curve::P384)
                )
            } else {
                me.model.algorithms.contains(&algorithm)
            };
            if !supported || matches!(algorithm, KeyAlgorithm::Ec(Curve::P521)) {
                return Err(me.unsupported(&format!("{algorithm} keys")));
            }
            let current = me.sess()?.ard.attributes(role).clone();
            let wanted = Attributes::for_generation(algorithm, role, &current);
            let same = match (current.kind, Attributes::parse(&wanted)?.kind) {
                (AttrKind::Rsa { n_bits: a, .. }, AttrKind::Rsa { n_bits: b, .. }) => a == b,
                (
                    AttrKind::Ec { algorithm_id: a, curve: c },
                    AttrKind::Ec { algorithm_id: b, curve: d },
                ) => a == b && c == d,
                _ => false,
            };
            if !same && !me.sess()?.ard.capabilities.attributes_changeable() {
                return Err(
                    me.unsupported(&format!("changing the {} to {algorithm}", role.label()))
                );
            }
            me.require_admin("GENERATE ASYMMETRIC KEY PAIR")?;
            let had_key = me.sess()?.ard.has_key(role);
            // The record knows the certificates of containers with keys; a container without
            // one may still hold a certificate (a deletion interrupted after the fingerprint),
            // which is read.
            let had_certificate = if had_key {
                me.certificate_bits(&[role])? & (1 << role.index()) != 0
            } else {
                me.read_certificate(role)?.is_some()
            };
            if had_key {
                me.put_data("PUT DATA (fingerprint)", role.fingerprint_tag(), &[0; 20])?;
                let s = me.sess_mut()?;
                *slot_mut(&mut s.ard.fingerprints, role) = [0; 20];
                *slot_mut(&mut s.public_keys, role) = None;
            }
            if had_certificate {
                me.select_certificate(role)?;
                me.put_data("PUT DATA 7F21 (cardholder certificate)", DO_CERTIFICATE, &[])?;
                let s = me.sess_mut()?;
                *slot_mut(&mut s.certificates, role) = Some(None);
                s.know_certificate(role, false);
            }
            if !same {
                me.put_data("PUT DATA (algorithm attributes)", role.attributes_tag(), &wanted)?;
                let s = me.sess_mut()?;
                *slot_mut(&mut s.ard.attributes, role) = Attributes::parse(&wanted)?;
                // A card may drop the old key with its attributes (sim, §4.4.3.9).
                *slot_mut(&mut s.ard.fingerprints, role) = [0; 20];
                *slot_mut(&mut s.ard.dates, role) = 0;
                *slot_mut(&mut s.public_keys, role) = None;
            }
            let op = "GENERATE ASYMMETRIC KEY PAIR";
            let cmd = command(op, INS_GENERATE, 0x80, 0x00, &[role.crt(), 0x00], Some(NE_MAX))?;
            let data = me.send(op, &cmd, Some(PinId::ADMIN))?;
            let key = parse_public_key(op, &data, algorithm)?;
            let created = (me.clock)();
            let fpr = fingerprint::v4(&key, created, role)?;
            {
                let s = me.sess_mut()?;
                *slot_mut(&mut s.public_keys, role) = Some(key.clone());
                *slot_mut(&mut s.ard.fingerprints, role) = [0; 20];
                *slot_mut(&mut s.ard.dates, role) = 0;
            }
            me.put_data("PUT DATA (generation date)", role.date_tag(), &created.to_be_bytes())?;
            *slot_mut(&mut me.sess_mut()?.ard.dates, role) = created;
            me.put_data("PUT DATA (fingerprint)", role.fingerprint_tag(), &fpr)?;
            *slot_mut(&mut me.sess_mut()?.ard.fingerprints, role) = fpr;
            if had_certificate {
                me.bump(|cf| {
                    cf.bump_containers();
                    cf.bump_files();
                })?;
            } else {
                me.bump(CardCf::bump_containers)?;
            }
            Ok(key)
        })
    }

    /// An OpenPGP card has no command that deletes a key: the fingerprint and date are
    /// zeroed (GnuPG and OpenSC then see no key, nor does this profile) and the certificate
    /// emptied. The key material stays until a new key is generated. Needs PW3.
    fn delete_container(&mut self, index: u8) -> Result<()> {
        self.tx(|me| {
            let role = me.role(index)?;
            me.ensure()?;
            me.require_admin("deleting a container")?;
            me.put_data("PUT DATA (fingerprint)", role.fingerprint_tag(), &[0; 20])?;
            me.put_data("PUT DATA (generation date)", role.date_tag(), &[0; 4])?;
            {
                let s = me.sess_mut()?;
                *slot_mut(&mut s.ard.fingerprints, role) = [0; 20];
                *slot_mut(&mut s.ard.dates, role) = 0;
                *slot_mut(&mut s.public_keys, role) = None;
            }
            if me.read_certificate(role)?.is_some() {
                me.select_certificate(role)?;
                me.put_data("PUT DATA 7F21 (cardholder certificate)", DO_CERTIFICATE, &[])?;
                let s = me.sess_mut()?;
                *slot_mut(&mut s.certificates, role) = Some(None);
                s.know_certificate(role, false);
                me.bump(|cf| {
                    cf.bump_containers();
                    cf.bump_files();
                })
            } else {
                me.bump(CardCf::bump_containers)
            }
        })
    }

    fn check_sign(&mut self, index: u8, request: &SignRequest<'_>) -> Result<()> {
        self.tx(|me| me.sign_input(index, request).map(|_| ()))
    }

    /// Container 0: PSO:COMPUTE DIGITAL SIGNATURE (§7.2.10) after PW1 81; container 2:
    /// INTERNAL AUTHENTICATE (§7.2.13) after PW1 82. RSA: the DigestInfo, padded by the card;
    /// ECDSA: the hash, answered with r || s.
    fn sign(&mut self, index: u8, request: &SignRequest<'_>) -> Result<Vec<u8>> {
        self.tx(|me| {
            let (role, alg, input) = me.sign_input(index, request)?;
            let (op, cmd) = if role == Role::Sig {
                let op = "PSO:COMPUTE DIGITAL SIGNATURE";
                if !me.sess()?.pw1_cds {
                    return Err(CardError::AuthRequired { operation: op, pin: PinId::USER });
                }
                (op, command(op, INS_PSO, 0x9E, 0x9A, &input, Some(NE_MAX))?)
            } else {
                let op = "INTERNAL AUTHENTICATE";
                me.ensure_pw1_other(op)?;
                (op, command(op, INS_INTERNAL_AUTHENTICATE, 0x00, 0x00, &input, Some(NE_MAX))?)
            };
            let response = me.transmit(op, &cmd);
            if role == Role::Sig && !me.sess()?.ard.pw_status.pw1_multiple_signatures {
                // §4.4.3.8: PW1 (81) is valid for one PSO:CDS only, whatever its outcome.
                me.sess_mut()?.pw1_cds = false;
            }
            let response = response?;
            if response.sw() == StatusWord::SECURITY_STATUS_NOT_SATISFIED {
                let s = me.sess_mut()?;
                if role == Role::Sig {
                    s.pw1_cds = false;
                } else {
                    s.pw1_other = false;
                }
                return Err(CardError::AuthRequired { operation: op, pin: PinId::USER });
            }
            if response.sw() != StatusWord::SUCCESS {
                return Err(CardError::Status { operation: op, sw: response.sw() });
            }
            let signature = response.data();
            let expected = alg.signature_len();
            match alg {
                // A card may drop leading zero bytes of the signature value.
                KeyAlgorithm::Rsa(_) if !signature.is_empty() && signature.len() <= expected => {
                    let mut out = vec![0u8; expected - signature.len()];
                    out.extend_from_slice(signature);
                    Ok(out)
                }
                KeyAlgorithm::Ec(_) if signature.len() == expected => Ok(signature.to_vec()),
                _ => Err(CardError::Malformed {
                    operation: op,
                    reason: format!(
                        "a {alg} signature of {} bytes (expected {expected})",
                        signature.len()
                    ),
                }),
            }
        })
    }

    fn check_decrypt(&mut self, index: u8, padding: &DecryptPadding) -> Result<()> {
        self.tx(|me| me.decrypt_input(index, padding).map(|_| ()))
    }

    /// PSO:DECIPHER (§7.2.11) with padding indicator 00: the card removes the PKCS#1 v1.5
    /// padding. After PW1 82.
    fn decrypt(&mut self, index: u8, padding: &DecryptPadding, data: &[u8]) -> Result<Secret> {
        self.tx(|me| {
            let bits = me.decrypt_input(index, padding)?;
            let k = usize::from(bits).div_ceil(8);
            if data.is_empty() || data.len() > k {
                return Err(CardError::InvalidInput {
                    what: "ciphertext",
                    reason: format!("{} bytes for a {bits}-bit key", data.len()),
                });
            }
            let op = "PSO:DECIPHER";
            me.ensure_pw1_other(op)?;
            let mut input = Zeroizing::new(vec![0x00]);
            input.resize(1 + k - data.len(), 0);
            input.extend_from_slice(data);
            let cmd = command(op, INS_PSO, 0x80, 0x86, &input, Some(NE_MAX))?;
            let response = me.transmit(op, &cmd)?;
            match response.sw() {
                StatusWord::SUCCESS => Ok(Secret::new(response.into_data().to_vec())),
                StatusWord::SECURITY_STATUS_NOT_SATISFIED => {
                    me.sess_mut()?.pw1_other = false;
                    Err(CardError::AuthRequired { operation: op, pin: PinId::USER })
                }
                sw => Err(CardError::Status { operation: op, sw }),
            }
        })
    }

    /// PSO:DECIPHER with the cipher DO A6 { 7F49 { 86 point } } (§7.2.11): the card answers
    /// the x-coordinate of the shared point. After PW1 82.
    fn agree(&mut self, index: u8, peer: &PublicKey) -> Result<Secret> {
        self.tx(|me| {
            let role = me.role(index)?;
            if role != Role::Dec {
                return Err(
                    me.unsupported("ECDH with a key other than the decryption key (container 1)")
                );
            }
            let KeyAlgorithm::Ec(curve) = me.key_algorithm(role, "ECDH")? else {
                return Err(me.unsupported("ECDH with an RSA key"));
            };
            let PublicKey::Ec { curve: peer_curve, point } = peer else {
                return Err(CardError::InvalidInput {
                    what: "peer key",
                    reason: "an RSA key cannot agree".into(),
                });
            };
            if *peer_curve != curve {
                return Err(CardError::InvalidInput {
                    what: "peer key",
                    reason: format!("on {peer_curve:?}, the card's key is on {curve:?}"),
                });
            }
            peer.to_spki_der()?;
            let op = "PSO:DECIPHER (ECDH)";
            let codec = |source| CardError::Codec { operation: op, source };
            let mut pk = Vec::new();
            ber::write(&mut pk, Tag::new(0x86), point).map_err(codec)?;
            let mut template = Vec::new();
            ber::write(&mut template, Tag::new(0x7F49), &pk).map_err(codec)?;
            let mut cipher = Vec::new();
            ber::write(&mut cipher, Tag::new(0xA6), &template).map_err(codec)?;
            me.ensure_pw1_other(op)?;
            let cmd = command(op, INS_PSO, 0x80, 0x86, &cipher, Some(NE_MAX))?;
            let response = me.transmit(op, &cmd)?;
            match response.sw() {
                StatusWord::SUCCESS => {}
                StatusWord::SECURITY_STATUS_NOT_SATISFIED => {
                    me.sess_mut()?.pw1_other = false;
                    return Err(CardError::AuthRequired { operation: op, pin: PinId::USER });
                }
                sw => return Err(CardError::Status { operation: op, sw }),
            }
            let data = response.into_data();
            let n = curve.field_len();
            match data.len() {
                len if len == n => Ok(Secret::new(data.to_vec())),
                // Some cards answer the whole point 04 || x || y.
                len if len == 1 + 2 * n && data.first() == Some(&0x04) => {
                    Ok(Secret::new(data.get(1..=n).unwrap_or_default().to_vec()))
                }
                len => Err(CardError::Malformed {
                    operation: op,
                    reason: format!("a shared secret of {len} bytes on {curve:?} (expected {n})"),
                }),
            }
        })
    }

    /// §7.2.5 SELECT DATA of the key's occurrence, then GET DATA 7F21.
    fn certificate(&mut self, index: u8) -> Result<Option<Vec<u8>>> {
        self.tx(|me| {
            let role = me.role(index)?;
            me.read_certificate(role)
        })
    }

    /// §7.2.5 SELECT DATA, then PUT DATA 7F21 (after PW3); an empty value removes it. The
    /// record says a change is under way first (`record_change_pending`).
    fn put_certificate(&mut self, index: u8, der: Option<&[u8]>) -> Result<()> {
        self.tx(|me| {
            let role = me.role(index)?;
            me.ensure()?;
            let der = der.unwrap_or_default();
            let max = usize::from(me.sess()?.ard.capabilities.max_certificate);
            if max > 0 && der.len() > max {
                return Err(CardError::InvalidInput {
                    what: "certificate",
                    reason: format!("{} bytes; this card stores at most {max}", der.len()),
                });
            }
            me.require_admin("PUT DATA 7F21 (cardholder certificate)")?;
            me.record_change_pending()?;
            me.select_certificate(role)?;
            me.put_data("PUT DATA 7F21 (cardholder certificate)", DO_CERTIFICATE, der)?;
            let value = if der.is_empty() { None } else { Some(der.to_vec()) };
            let s = me.sess_mut()?;
            s.know_certificate(role, value.is_some());
            *slot_mut(&mut s.certificates, role) = Some(value);
            me.bump(CardCf::bump_files)
        })
    }

    /// The counters. This is how a host notices changes by other applications, so in a
    /// transaction later than the one DO 6E was read in, 6E (whose key digest tells a key
    /// changed by GnuPG or OpenSC) and DO 0102 (changed by this profile in another process)
    /// are read again, and what the session cached is dropped if they changed.
    fn cardcf(&mut self) -> Result<CardCf> {
        self.tx(|me| {
            me.ensure()?;
            let transaction = me.channel.transaction_count();
            if me.sess()?.checked_in != transaction {
                me.revalidate(transaction)?;
            }
            me.current_cf()
        })
    }

    /// True once DO 0102 was found to hold the profile's record (known after
    /// [`CardModule::cardcf`]).
    fn freshness_on_card(&self) -> bool {
        matches!(self.session.as_ref().and_then(|s| s.record.as_ref()), Some(RecordState::Ours(_)))
    }

    /// The certificate files come from the containers without reading public keys.
    fn read_file(&mut self, path: &FilePath) -> Result<Vec<u8>> {
        match path {
            FilePath::KeyExchangeCert(i) | FilePath::SignatureCert(i) => {
                let container = self.containers()?.into_iter().find(|c| c.index == *i);
                let Some(container) = container else {
                    return Err(CardError::FileNotFound { path: path.name() });
                };
                if FilePath::certificate(&container).as_ref() != Some(path) {
                    return Err(CardError::FileNotFound { path: path.name() });
                }
                match self.certificate(*i)? {
                    Some(der) if self.model.certificate_compression => compress_certificate(&der),
                    Some(der) => Ok(der),
                    None => Err(CardError::FileNotFound { path: path.name() }),
                }
            }
            FilePath::CardId => Ok(self.card_id()?.to_vec()),
            FilePath::CardCf => Ok(self.cardcf()?.encode().to_vec()),
            FilePath::CardApps => Ok(b"mscp\0\0\0\0".to_vec()),
            FilePath::CmapFile => Ok(scard_minidriver::fs::encode_cmapfile(&self.containers()?)),
            _ => Err(CardError::FileNotFound { path: path.name() }),
        }
    }

    fn file_info(&mut self, path: &FilePath) -> Result<FileInfo> {
        let size = self.read_file(path)?.len();
        Ok(FileInfo { size, read_everyone: true, write_user: false })
    }
}
