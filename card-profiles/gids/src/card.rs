//! [`GidsCard`]: the [`CardModule`] of GIDS cards.
//!
//! State kept across calls (a [`Snapshot`]): the master file, the `cardcf` counters, and,
//! once read, the cmapfile, the cardid and public keys. It is checked against the card's own
//! `cardcf` once per transaction (one GET DATA), so a change made by another application
//! (which bumps `cardcf`, as the minidriver specification requires of every writer) is seen;
//! every write of this module bumps the counters on the card first.

use std::collections::BTreeMap;

use rand_core::{OsRng, RngCore};
use scard_iso7816::{CommandApdu, StatusWord};
use scard_minidriver::fs::{
    CONTAINER_MAP_DEFAULT, CONTAINER_MAP_VALID, ContainerMapRecord, FileInfo, compress_certificate,
    decode_cmapfile, decompress_certificate,
};
use scard_minidriver::model::PinRules;
use scard_minidriver::padding as host_padding;
use scard_minidriver::{
    CachePolicy, CardCf, CardChannel, CardError, CardModel, CardModule, CardProperties,
    ContainerInfo, Curve, DecryptPadding, FilePath, HashAlg, KeyAlgorithm, KeySpec, Pin, PinId,
    PinInfo, PinPurpose, PinSet, PinType, PublicKey, Result, Secret, SignPadding, SignRequest,
};
use scard_transport::TransportError;
use zeroize::Zeroizing;

use crate::admin::{self, Mutual};
use crate::layout::{
    self, FID_ADMIN_READ_WRITE, FID_READ_ALL_WRITE_ADMIN, FID_READ_ALL_WRITE_USER,
    FID_USER_READ_WRITE, FID_WRITE_ONLY, KEY_TYPE_EXCHANGE, KEY_TYPE_SIGNATURE, KEYMAP_DO, Keymap,
    KeymapRecord, MF_DO, MF_FID, MasterFile, MfRecord, mechanism,
};
use crate::{AID, QUIRK_DECIPHER_WITHOUT_PADDING_INDICATOR};

/// ISO/IEC 7816-4 §5.4.1 instructions GIDS 1.0 uses.
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

/// The application DF: GET DATA / PUT DATA with P1-P2 3FFF address the application's own DOs
/// (PIN status, keys) rather than a file's (GIDS 1.0; OpenSC GIDS_APPLET_EFID).
const APP_FID: u16 = 0x3FFF;
/// Key reference of the user PIN (GIDS 1.0; OpenSC GIDS_PIN_IDENTIFIER).
const PIN_REF: u8 = 0x80;
/// VERIFY P2 82: the "special resetting code" that logs the PIN and the admin out (GIDS 1.0;
/// OpenSC gids_logout).
const LOGOUT_REF: u8 = 0x82;
/// Key reference of the administrator key (key file B080).
const ADMIN_KEY_REF: u8 = 0x80;
/// Key reference of container 0; container N uses 81 + N (OpenSC GIDS_FIRST_KEY_IDENTIFIER).
const FIRST_KEY_REF: u8 = 0x81;
/// Most containers a GIDS card holds: key references 81..FE (OpenSC GIDS_MAX_CONTAINER).
const MAX_CONTAINERS: usize = 126;
/// The PIN status DO (GIDS 1.0; OpenSC GIDS_PIN_STATUS_OBJECT_IDENTIFIER).
const PIN_STATUS_DO: u16 = 0x7F71;
/// Largest Ne: the exchange engine sends what the card's limits allow per APDU and gathers
/// the rest with GET RESPONSE.
const MAX_NE: u32 = 65_536;

/// The default algorithm list when a model names none.
const DEFAULT_ALGORITHMS: [KeyAlgorithm; 5] = [
    KeyAlgorithm::Rsa(2048),
    KeyAlgorithm::Rsa(3072),
    KeyAlgorithm::Rsa(4096),
    KeyAlgorithm::Ec(Curve::P256),
    KeyAlgorithm::Ec(Curve::P384),
];

/// What this module knows of the card's files, valid while the card's `cardcf` is `cardcf`.
#[derive(Debug, Clone)]
struct Snapshot {
    cardcf: CardCf,
    mf: MasterFile,
    cmap: Option<Vec<ContainerMapRecord>>,
    card_id: Option<[u8; 16]>,
    public_keys: BTreeMap<u8, PublicKey>,
}

/// Which `cardcf` counters a change moves (Minidriver v7 §5.1.2).
#[derive(Debug, Clone, Copy, Default)]
struct Bump {
    pins: bool,
    containers: bool,
    files: bool,
}

/// A key container with a key, as the operations need it.
#[derive(Debug, Clone, Copy)]
struct Key {
    index: u8,
    key_ref: u8,
    spec: KeySpec,
    algorithm: KeyAlgorithm,
    crypto_id: u8,
}

/// A GIDS card.
#[derive(Debug)]
pub struct GidsCard {
    channel: CardChannel,
    model: CardModel,
    snapshot: Option<Snapshot>,
    /// The transaction (see [`CardChannel::transaction_count`]) in which the snapshot was
    /// last checked against the card's `cardcf`.
    checked_in: Option<u64>,
    /// An external-authentication challenge was handed out by [`CardModule::admin_challenge`].
    challenge_pending: bool,
}

fn apdu(ins: u8, p1: u8, p2: u8, data: Vec<u8>, expect_data: bool) -> Result<CommandApdu> {
    let name = scard_iso7816::apdu::Ins(ins).name().unwrap_or("GIDS command");
    let codec = |source| CardError::Codec { operation: name, source };
    let mut cmd = CommandApdu::new(0x00, ins, p1, p2);
    if !data.is_empty() {
        cmd = cmd.with_data(data).map_err(codec)?;
    }
    if expect_data {
        cmd = cmd.with_ne(MAX_NE).map_err(codec)?;
    }
    Ok(cmd)
}

/// A Windows-style container name: a braced random (version 4) GUID.
fn new_container_name() -> String {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
    let hex = |r: std::ops::Range<usize>| -> String {
        b.get(r).unwrap_or_default().iter().map(|x| format!("{x:02X}")).collect()
    };
    format!("{{{}-{}-{}-{}-{}}}", hex(0..4), hex(4..6), hex(6..8), hex(8..10), hex(10..16))
}

/// The directory and file name of a minidriver path.
fn split_path(path: &FilePath) -> (String, String) {
    let name = path.name();
    match name.split_once('/') {
        Some((dir, file)) => (dir.to_owned(), file.to_owned()),
        None => (String::new(), name),
    }
}

/// The EF a new file goes to, by who may write it (GIDS 1.0 maps the minidriver's file access
/// conditions to EFs; OpenSC puts every new file in A010): `msroots` is admin-written
/// (Minidriver v7 §5.2.3), everything else user-written.
fn new_file_fid(path: &FilePath) -> u16 {
    match path {
        FilePath::MsRoots | FilePath::CardId => FID_READ_ALL_WRITE_ADMIN,
        _ => FID_READ_ALL_WRITE_USER,
    }
}

/// Who may read and write a file, by its EF (the ACLs OpenSC's gids_initialize gives them).
fn file_acl(fid: u16) -> (bool, bool) {
    match fid {
        FID_READ_ALL_WRITE_USER => (true, true),
        FID_WRITE_ONLY | FID_USER_READ_WRITE => (false, true),
        FID_READ_ALL_WRITE_ADMIN => (true, false),
        FID_ADMIN_READ_WRITE => (false, false),
        _ => (true, false),
    }
}

/// Maps the card's answer to an admin authentication step: 6982 / 63xx a wrong key, 6983 a
/// blocked one (ISO/IEC 7816-4 §5.6).
fn admin_failure(operation: &'static str, sw: StatusWord) -> CardError {
    match sw.0 {
        0x6982 | 0x6300 => CardError::WrongPin { pin: PinId::ADMIN, tries_left: None },
        _ => CardError::from_status(operation, sw, Some(PinId::ADMIN)),
    }
}

/// How to sign: the algorithm reference's mechanism and the PSO data field (GIDS 1.0 Table 60:
/// "DER-encoded digest information (PKCS 1.5 only) || data to be signed").
fn sign_plan(key: &Key, request: &SignRequest<'_>) -> Result<(u8, Vec<u8>)> {
    let unsupported = |what: &str| CardError::Unsupported {
        what: what.to_owned(),
        model: format!("GIDS {} key in container {}", key.algorithm, key.index),
    };
    let invalid = |reason: String| CardError::InvalidInput { what: "data to sign", reason };
    let check_digest = |hash: HashAlg| {
        if request.data.len() == hash.len() {
            Ok(())
        } else {
            Err(invalid(format!(
                "{} bytes, a {hash:?} digest has {}",
                request.data.len(),
                hash.len()
            )))
        }
    };
    match (key.algorithm, key.spec) {
        (KeyAlgorithm::Rsa(bits), KeySpec::Exchange | KeySpec::Signature) => {
            let k = usize::from(bits) / 8;
            match request.padding {
                SignPadding::Pkcs1 => {
                    let t = match request.hash {
                        Some(hash) => hash.digest_info(request.data)?,
                        None => request.data.to_vec(),
                    };
                    if t.is_empty() || t.len() + 11 > k {
                        return Err(invalid(format!(
                            "{} bytes do not fit a PKCS#1 v1.5 block of {k}",
                            t.len()
                        )));
                    }
                    // The card pads: RSASSA-PKCS1-v1_5 (mechanism 5x).
                    Ok((mechanism::SIGN_PKCS1, t))
                }
                SignPadding::Pss { salt_len } => {
                    let hash =
                        request.hash.ok_or_else(|| unsupported("PSS without a hash algorithm"))?;
                    check_digest(hash)?;
                    // The host encodes, the card exponentiates (mechanism 1x, "off-card" padding).
                    Ok((
                        mechanism::SIGN_RAW,
                        host_padding::pss_encode(hash, request.data, salt_len, usize::from(bits))?,
                    ))
                }
                SignPadding::None => {
                    if request.data.len() != k {
                        return Err(invalid(format!(
                            "raw RSA takes a block of {k} bytes, got {}",
                            request.data.len()
                        )));
                    }
                    Ok((mechanism::SIGN_RAW, request.data.to_vec()))
                }
            }
        }
        (KeyAlgorithm::Ec(curve), KeySpec::Ecdsa(_)) => {
            if request.padding != SignPadding::None {
                return Err(unsupported("RSA padding with an ECDSA key"));
            }
            if let Some(hash) = request.hash {
                check_digest(hash)?;
            }
            if request.data.is_empty() || request.data.len() > 64 {
                return Err(invalid(format!(
                    "{} bytes is not a hash to sign with {curve:?}",
                    request.data.len()
                )));
            }
            Ok((mechanism::SIGN_RAW, request.data.to_vec()))
        }
        (_, KeySpec::Ecdh(_)) => Err(unsupported("signing with an ECDH key")),
        _ => Err(unsupported("this key type")),
    }
}

/// How to decrypt: the mechanism, and whether the host removes the padding afterwards.
fn decrypt_plan(key: &Key, padding: &DecryptPadding) -> Result<u8> {
    let KeyAlgorithm::Rsa(_) = key.algorithm else {
        return Err(CardError::Unsupported {
            what: "RSA decryption with an EC key (use ECDH agreement)".into(),
            model: format!("GIDS {} key in container {}", key.algorithm, key.index),
        });
    };
    if key.spec != KeySpec::Exchange {
        return Err(CardError::Unsupported {
            what: "decryption with a signature-only key (AT_SIGNATURE)".into(),
            model: format!("GIDS {} key in container {}", key.algorithm, key.index),
        });
    }
    Ok(match padding {
        DecryptPadding::Pkcs1 => mechanism::DECIPHER_PKCS1,
        // The card's OAEP is SHA-1 with an empty label (JavaCard ALG_RSA_PKCS1_OAEP, what
        // GIDS cards implement); any other is decoded on the host from a raw block.
        DecryptPadding::Oaep { hash: HashAlg::Sha1, label } if label.is_empty() => {
            mechanism::DECIPHER_OAEP
        }
        DecryptPadding::Oaep { .. } | DecryptPadding::None => mechanism::RAW,
    })
}

impl GidsCard {
    /// A module over a channel to a GIDS card, with the card model it was identified as. Sends
    /// nothing: the application is selected by the first operation.
    pub fn new(mut channel: CardChannel, model: CardModel) -> Self {
        channel.set_limits(model.limits);
        Self { channel, model, snapshot: None, checked_in: None, challenge_pending: false }
    }

    // ----- plumbing ------------------------------------------------------------------------

    /// Runs `f` inside a transaction (joining the caller's).
    ///
    /// A reset of the card by another application since the last call is reported by the
    /// transport once, when the transaction begins: the channel has then dropped the selected
    /// application and the verified PINs, and the transaction is begun again (the operation
    /// selects the application again; one that needs a PIN fails for want of it).
    fn txn<R>(&mut self, f: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        match self.channel.begin() {
            Err(CardError::Transport(TransportError::CardReset { .. })) => {
                tracing::debug!("GIDS: the card was reset by another application");
                self.challenge_pending = false;
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

    /// Sends a command; any status but 9000 is an error (PIN errors for `pin`).
    fn send(
        &mut self,
        operation: &'static str,
        cmd: &CommandApdu,
        pin: Option<PinId>,
    ) -> Result<Vec<u8>> {
        self.channel.transmit_ok(operation, cmd, pin)
    }

    /// Selects the application (once per session: the channel skips a repeat).
    fn select(&mut self) -> Result<()> {
        self.channel.select(&AID).map(|_| ())
    }

    /// GET DATA of DO `do_id` in EF `fid` (GIDS 1.0: P1-P2 the file, data the tag list 5C).
    fn get_do(
        &mut self,
        operation: &'static str,
        fid: u16,
        do_id: u16,
        pin: Option<PinId>,
    ) -> Result<Vec<u8>> {
        let [p1, p2] = fid.to_be_bytes();
        let cmd = apdu(ins::GET_DATA, p1, p2, layout::tag_list(do_id), true)?;
        let answer = self.send(operation, &cmd, pin)?;
        layout::do_value(operation, &answer, do_id)
    }

    /// PUT DATA of DO `do_id` in EF `fid`: the whole object replaces the DO. A refusal for
    /// lack of authentication names `pin`.
    fn put_do(
        &mut self,
        operation: &'static str,
        fid: u16,
        do_id: u16,
        value: &[u8],
        pin: PinId,
    ) -> Result<()> {
        if value.len() > layout::MAX_FILE {
            return Err(CardError::InvalidInput {
                what: "file",
                reason: format!(
                    "{} bytes; a GIDS file holds at most {}",
                    value.len(),
                    layout::MAX_FILE
                ),
            });
        }
        let [p1, p2] = fid.to_be_bytes();
        let cmd = apdu(ins::PUT_DATA, p1, p2, layout::do_object(do_id, value)?, false)?;
        let response = self.channel.transmit(operation, &cmd)?;
        match response.sw() {
            StatusWord::SUCCESS => Ok(()),
            StatusWord::SECURITY_STATUS_NOT_SATISFIED => {
                Err(CardError::AuthRequired { operation, pin })
            }
            sw => Err(CardError::from_status(operation, sw, None)),
        }
    }

    fn snap(&self) -> Result<&Snapshot> {
        self.snapshot.as_ref().ok_or_else(|| CardError::Malformed {
            operation: "GIDS",
            reason: "the card's file table was not loaded".into(),
        })
    }

    fn snap_mut(&mut self) -> Result<&mut Snapshot> {
        self.snapshot.as_mut().ok_or_else(|| CardError::Malformed {
            operation: "GIDS",
            reason: "the card's file table was not loaded".into(),
        })
    }

    /// Reads `cardcf` where the master file says it is.
    fn read_cardcf(&mut self, mf: &MasterFile) -> Result<CardCf> {
        let rec = mf
            .file("", "cardcf")
            .cloned()
            .ok_or_else(|| CardError::FileNotFound { path: "cardcf".into() })?;
        let bytes = self.get_do("reading cardcf", rec.fid, rec.do_id, None)?;
        CardCf::decode(&bytes)
    }

    /// Selects the application and makes the snapshot current: loaded if there is none,
    /// checked against the card's `cardcf` once per transaction and reloaded when it moved.
    /// Must run inside a transaction.
    fn sync(&mut self) -> Result<()> {
        self.select()?;
        let tx = self.channel.transaction_count();
        if self.checked_in == Some(tx) && self.snapshot.is_some() {
            return Ok(());
        }
        let snapshot = match self.snapshot.take() {
            Some(old) => {
                let cardcf = self.read_cardcf(&old.mf)?;
                if cardcf == old.cardcf {
                    old
                } else {
                    tracing::debug!(
                        "GIDS: cardcf moved from {:?} to {cardcf:?}: reloading",
                        old.cardcf
                    );
                    self.load()?
                }
            }
            None => self.load()?,
        };
        self.snapshot = Some(snapshot);
        self.checked_in = Some(tx);
        Ok(())
    }

    /// Reads the master file and `cardcf`.
    fn load(&mut self) -> Result<Snapshot> {
        let bytes = self.get_do("reading the GIDS master file", MF_FID, MF_DO, None)?;
        let mf = MasterFile::decode(&bytes)?;
        let cardcf = self.read_cardcf(&mf)?;
        Ok(Snapshot { cardcf, mf, cmap: None, card_id: None, public_keys: BTreeMap::new() })
    }

    /// The cmapfile records (read once per `cardcf` value).
    fn cmap(&mut self) -> Result<Vec<ContainerMapRecord>> {
        self.sync()?;
        if let Some(cmap) = &self.snap()?.cmap {
            return Ok(cmap.clone());
        }
        let rec = self
            .snap()?
            .mf
            .file("mscp", "cmapfile")
            .cloned()
            .ok_or_else(|| CardError::FileNotFound { path: "mscp/cmapfile".into() })?;
        let bytes = self.get_do("reading mscp/cmapfile", rec.fid, rec.do_id, None)?;
        let records = decode_cmapfile(&bytes)?;
        if records.len() > usize::from(u8::MAX) {
            return Err(CardError::Malformed {
                operation: "reading mscp/cmapfile",
                reason: format!("{} records; container indexes end at 255", records.len()),
            });
        }
        self.snap_mut()?.cmap = Some(records.clone());
        Ok(records)
    }

    /// The number of containers the card can hold.
    fn max_containers(&self) -> usize {
        if self.model.containers.is_empty() {
            MAX_CONTAINERS
        } else {
            self.model.containers.len().min(MAX_CONTAINERS)
        }
    }

    /// The algorithms the card's model takes.
    fn algorithms(&self) -> Vec<KeyAlgorithm> {
        if self.model.algorithms.is_empty() {
            DEFAULT_ALGORITHMS.to_vec()
        } else {
            self.model.algorithms.clone()
        }
    }

    /// The container of cmapfile record `index`, with the master file telling whether a
    /// certificate file exists. No public key (read only when asked for).
    fn container_of(mf: &MasterFile, index: u8, rec: &ContainerMapRecord) -> ContainerInfo {
        let key_ref = FIRST_KEY_REF.wrapping_add(index);
        let mut info = ContainerInfo {
            index,
            key_ref,
            name: String::new(),
            label: format!("GIDS key {key_ref:02X}"),
            default: false,
            key_spec: None,
            algorithm: None,
            public_key: None,
            has_certificate: false,
            always_authenticate: false,
            pin: PinId::USER,
        };
        let (exchange, bits) = match (rec.kx_key_bits, rec.sig_key_bits) {
            (0, 0) => return info,
            (0, sig) => (false, sig),
            (kx, _) => (true, kx),
        };
        if !rec.is_valid() {
            return info;
        }
        let algorithm = layout::algorithm_of_bits(bits);
        let spec = match (algorithm, exchange) {
            (Some(KeyAlgorithm::Ec(c)), true) => KeySpec::Ecdh(c),
            (Some(KeyAlgorithm::Ec(c)), false) => KeySpec::Ecdsa(c),
            (_, true) => KeySpec::Exchange,
            (_, false) => KeySpec::Signature,
        };
        info.name = rec.name.clone();
        info.default = rec.flags & CONTAINER_MAP_DEFAULT != 0;
        info.key_spec = Some(spec);
        info.algorithm =
            algorithm.or(if exchange || bits > 521 { Some(KeyAlgorithm::Rsa(bits)) } else { None });
        info.has_certificate = Self::certificate_record(mf, &info).is_some();
        info
    }

    /// The master-file record of a container's certificate: kxcNN for key exchange, kscNN
    /// for signature keys (Minidriver v7 §5.2.2), the other name if only it exists.
    fn certificate_record(mf: &MasterFile, info: &ContainerInfo) -> Option<MfRecord> {
        let expected = FilePath::certificate(info)?;
        let other = match expected {
            FilePath::KeyExchangeCert(i) => FilePath::SignatureCert(i),
            _ => FilePath::KeyExchangeCert(info.index),
        };
        [expected, other].iter().find_map(|p| {
            let (dir, file) = split_path(p);
            mf.file(&dir, &file).cloned()
        })
    }

    fn all_containers(&mut self) -> Result<Vec<ContainerInfo>> {
        let cmap = self.cmap()?;
        let mf = self.snap()?.mf.clone();
        Ok(cmap
            .iter()
            .enumerate()
            .filter_map(|(i, rec)| u8::try_from(i).ok().map(|i| Self::container_of(&mf, i, rec)))
            .collect())
    }

    /// Container `index` with its key: known algorithm, GIDS crypto identifier.
    fn key(&mut self, index: u8) -> Result<Key> {
        let containers = self.all_containers()?;
        let count = containers.len();
        let info = containers
            .into_iter()
            .find(|c| c.index == index)
            .ok_or(CardError::NoContainer { index, count })?;
        let spec = info.key_spec.ok_or(CardError::EmptyContainer { index, what: "key" })?;
        let algorithm = info.algorithm.ok_or_else(|| CardError::Unsupported {
            what: "a key whose size the cmapfile does not give".into(),
            model: self.model.name.clone(),
        })?;
        let crypto_id = layout::crypto_id(algorithm)
            .ok_or_else(|| self.unsupported(&format!("{algorithm} keys")))?;
        Ok(Key { index, key_ref: info.key_ref, spec, algorithm, crypto_id })
    }

    /// The public key of a key (GET DATA 3FFF {70 {84 kid, A5 {7F49}}}: OpenSC
    /// gids_read_public_key), cached per `cardcf` value.
    fn read_public_key(&mut self, key: &Key) -> Result<PublicKey> {
        if let Some(k) = self.snap()?.public_keys.get(&key.index) {
            return Ok(k.clone());
        }
        let data = vec![0x70, 0x08, 0x84, 0x01, key.key_ref, 0xA5, 0x03, 0x7F, 0x49, 0x80];
        let [p1, p2] = APP_FID.to_be_bytes();
        let cmd = apdu(ins::GET_DATA, p1, p2, data, true)?;
        let answer = self.send("reading a public key", &cmd, None)?;
        let public = layout::public_key("reading a public key", &answer, key.algorithm)?;
        self.snap_mut()?.public_keys.insert(key.index, public.clone());
        Ok(public)
    }

    /// Refuses a write before anything is sent when neither the user PIN nor the admin key
    /// was verified in this session (GIDS files and key files need one of them).
    fn require_write_auth(&self, operation: &'static str) -> Result<()> {
        let auth = self.channel.authenticated();
        if auth.contains(PinId::USER) || auth.contains(PinId::ADMIN) {
            Ok(())
        } else {
            Err(CardError::AuthRequired { operation, pin: PinId::USER })
        }
    }

    /// Refuses a key operation that needs the user PIN before anything is sent.
    fn require_user(&self, operation: &'static str) -> Result<()> {
        if self.channel.authenticated().contains(PinId::USER) {
            Ok(())
        } else {
            Err(CardError::AuthRequired { operation, pin: PinId::USER })
        }
    }

    /// Moves the `cardcf` counters on the card (Minidriver v7 §5.1.2: before the change, so a
    /// reader never sees a changed card with unchanged counters).
    fn bump(&mut self, what: Bump) -> Result<()> {
        self.sync()?;
        let rec = self
            .snap()?
            .mf
            .file("", "cardcf")
            .cloned()
            .ok_or_else(|| CardError::FileNotFound { path: "cardcf".into() })?;
        let mut cf = self.snap()?.cardcf;
        if what.pins {
            cf.bump_pins();
        }
        if what.containers {
            cf.bump_containers();
        }
        if what.files {
            cf.bump_files();
        }
        self.put_do("updating cardcf", rec.fid, rec.do_id, &cf.encode(), PinId::USER)?;
        self.snap_mut()?.cardcf = cf;
        Ok(())
    }

    /// Writes the master file and keeps it in the snapshot.
    fn write_master_file(&mut self, mf: MasterFile) -> Result<()> {
        self.put_do("writing the GIDS master file", MF_FID, MF_DO, &mf.encode(), PinId::USER)?;
        self.snap_mut()?.mf = mf;
        Ok(())
    }

    /// Writes the cmapfile and keeps it in the snapshot (records in index order, deleted ones
    /// zero-filled: never packed).
    fn write_cmap(&mut self, records: Vec<ContainerMapRecord>) -> Result<()> {
        let rec = self
            .snap()?
            .mf
            .file("mscp", "cmapfile")
            .cloned()
            .ok_or_else(|| CardError::FileNotFound { path: "mscp/cmapfile".into() })?;
        let mut bytes = Vec::with_capacity(records.len() * ContainerMapRecord::LEN);
        for r in &records {
            bytes.extend_from_slice(&r.encode());
        }
        self.put_do("writing mscp/cmapfile", rec.fid, rec.do_id, &bytes, PinId::USER)?;
        let snap = self.snap_mut()?;
        snap.cmap = Some(records);
        Ok(())
    }

    /// The key map (an absent DO is an empty key map, as on a card no key was created on).
    fn read_keymap(&mut self) -> Result<Keymap> {
        let [p1, p2] = MF_FID.to_be_bytes();
        let cmd = apdu(ins::GET_DATA, p1, p2, layout::tag_list(KEYMAP_DO), true)?;
        let response = self.channel.transmit("reading the GIDS key map", &cmd)?;
        match response.sw() {
            StatusWord::SUCCESS => Keymap::decode(&layout::do_value(
                "reading the GIDS key map",
                response.data(),
                KEYMAP_DO,
            )?),
            StatusWord::REFERENCED_DATA_NOT_FOUND => Ok(Keymap::default()),
            sw => Err(CardError::from_status("reading the GIDS key map", sw, None)),
        }
    }

    /// Deletes key file B0kid: SELECT it, then DELETE FILE of the current EF (ISO/IEC 7816-9
    /// §8.4; as OpenSC's gids_delete_key_file). A file that is not there is not an error.
    fn delete_key_file(&mut self, key_ref: u8) -> Result<()> {
        let select = apdu(ins::SELECT, 0x00, 0x0C, vec![0xB0, key_ref], false)?;
        let response = self.channel.transmit("selecting a key file", &select)?;
        match response.sw() {
            StatusWord::SUCCESS => {}
            StatusWord::FILE_NOT_FOUND => return Ok(()),
            sw => return Err(CardError::from_status("selecting a key file", sw, None)),
        }
        let delete = apdu(ins::DELETE_FILE, 0x00, 0x00, Vec::new(), false)?;
        self.send("deleting a key file", &delete, Some(PinId::USER))?;
        Ok(())
    }

    /// Removes the certificate files of container `index`: the master file without their
    /// records, then PUT DATA of an empty DO (OpenSC gids_delete_cert does both, the other way
    /// round). The master file first: an interruption leaves a DO nothing refers to (written
    /// over when the DO is used again), never a listed file that is gone. Sends nothing when
    /// the container has no certificate file.
    fn delete_certificate_files(&mut self, index: u8) -> Result<()> {
        let mut mf = self.snap()?.mf.clone();
        let mut removed = Vec::new();
        for path in [FilePath::KeyExchangeCert(index), FilePath::SignatureCert(index)] {
            let (dir, file) = split_path(&path);
            if let Some(rec) = mf.remove(&dir, &file) {
                removed.push(rec);
            }
        }
        if removed.is_empty() {
            return Ok(());
        }
        self.write_master_file(mf)?;
        for rec in removed {
            self.put_do("deleting a certificate", rec.fid, rec.do_id, &[], PinId::USER)?;
        }
        Ok(())
    }

    /// Creates and activates key file B0kid for `algorithm` (ISO/IEC 7816-9 CREATE FILE then
    /// ACTIVATE FILE). A key file left behind without a cmapfile record (an interrupted
    /// creation) is deleted first.
    fn create_key_file(&mut self, key_ref: u8, algorithm: KeyAlgorithm, id: u8) -> Result<()> {
        let fcp = layout::key_file_fcp(key_ref, algorithm, id);
        let create = apdu(ins::CREATE_FILE, 0x00, 0x00, fcp, false)?;
        let response = self.channel.transmit("creating a key file", &create)?;
        match response.sw() {
            StatusWord::SUCCESS => {}
            StatusWord::FILE_EXISTS => {
                tracing::warn!(
                    "GIDS: key file B0{key_ref:02X} exists without a container: replacing it"
                );
                self.delete_key_file(key_ref)?;
                self.send("creating a key file", &create, Some(PinId::USER))?;
            }
            sw => return Err(CardError::from_status("creating a key file", sw, Some(PinId::USER))),
        }
        let activate = apdu(ins::ACTIVATE_FILE, 0x00, 0x00, Vec::new(), false)?;
        self.send("activating a key file", &activate, Some(PinId::USER))?;
        Ok(())
    }

    /// Records a new key of container `index` in the key map and the cmapfile.
    fn register_key(&mut self, index: u8, algorithm: KeyAlgorithm, id: u8) -> Result<()> {
        let mut cmap = self.cmap()?;
        let at = usize::from(index);
        if cmap.len() <= at {
            cmap.resize(at + 1, ContainerMapRecord::default());
        }
        let exchange = algorithm.is_rsa();
        let key_type = if exchange { KEY_TYPE_EXCHANGE } else { KEY_TYPE_SIGNATURE };
        let mut keymap = self.read_keymap()?;
        keymap.set(at, KeymapRecord::key(id, key_type, FIRST_KEY_REF.wrapping_add(index)));
        keymap.pad_to(cmap.len());
        self.put_do("writing the GIDS key map", MF_FID, KEYMAP_DO, &keymap.encode(), PinId::USER)?;
        let has_default = cmap
            .iter()
            .enumerate()
            .any(|(i, r)| i != at && r.is_valid() && r.flags & CONTAINER_MAP_DEFAULT != 0);
        let mut flags = CONTAINER_MAP_VALID;
        if !has_default {
            flags |= CONTAINER_MAP_DEFAULT;
        }
        let bits = algorithm.bits();
        let record = ContainerMapRecord {
            name: new_container_name(),
            flags,
            sig_key_bits: if exchange { 0 } else { bits },
            kx_key_bits: if exchange { bits } else { 0 },
        };
        if let Some(slot) = cmap.get_mut(at) {
            *slot = record;
        }
        self.write_cmap(cmap)
    }

    /// Removes container `index`'s cmapfile and key-map records, certificate files and key
    /// file (the counters were bumped by the caller). The cmapfile record goes first: it is
    /// what makes the container exist, so an interruption leaves files nobody refers to
    /// (removed before the index holds a key again), never a container whose key or
    /// certificate is gone.
    fn remove_container(&mut self, index: u8) -> Result<()> {
        let key_ref = FIRST_KEY_REF.wrapping_add(index);
        let mut cmap = self.cmap()?;
        let at = usize::from(index);
        if at < cmap.len() {
            if let Some(slot) = cmap.get_mut(at) {
                // Minidriver v7 §5.2.1: a deleted record is zero-filled, never removed.
                *slot = ContainerMapRecord::default();
            }
            let len = cmap.len();
            self.write_cmap(cmap)?;
            let mut keymap = self.read_keymap()?;
            keymap.set(at, KeymapRecord::deleted());
            keymap.pad_to(len);
            self.put_do(
                "writing the GIDS key map",
                MF_FID,
                KEYMAP_DO,
                &keymap.encode(),
                PinId::USER,
            )?;
        }
        self.snap_mut()?.public_keys.remove(&index);
        self.delete_certificate_files(index)?;
        self.delete_key_file(key_ref)
    }

    /// Checks a key size and container index for a new key, before anything is sent.
    fn check_new_key(&self, index: u8, algorithm: KeyAlgorithm) -> Result<u8> {
        if usize::from(index) >= self.max_containers() {
            return Err(CardError::NoContainer { index, count: self.max_containers() });
        }
        if !self.algorithms().contains(&algorithm) {
            return Err(self.unsupported(&format!("{algorithm} keys")));
        }
        layout::crypto_id(algorithm).ok_or_else(|| self.unsupported(&format!("{algorithm} keys")))
    }

    /// MANAGE SECURITY ENVIRONMENT SET for a private-key operation (ISO/IEC 7816-4 §7.5.11:
    /// P1 41, P2 B6 signature or B8 decipherment; data 80 algorithm reference, 84 key
    /// reference: OpenSC gids_set_security_env).
    fn set_env(&mut self, template: u8, mech: u8, key: &Key) -> Result<()> {
        let data = vec![0x80, 0x01, mech | key.crypto_id, 0x84, 0x01, key.key_ref];
        let cmd = apdu(ins::MSE, 0x41, template, data, false)?;
        self.send("MANAGE SECURITY ENVIRONMENT", &cmd, Some(PinId::USER))?;
        Ok(())
    }

    /// PSO DECIPHER (GIDS 1.0 Table 60: data "padding indicator || cryptogram"; the quirk
    /// `decipher-without-padding-indicator` leaves the indicator out). The plaintext stays in
    /// zeroized memory.
    fn decipher(
        &mut self,
        operation: &'static str,
        cryptogram: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let mut data = Vec::with_capacity(cryptogram.len() + 1);
        if !self.model.has_quirk(QUIRK_DECIPHER_WITHOUT_PADDING_INDICATOR) {
            // ISO/IEC 7816-4 Table 52 (padding-content indicator): 00 "no further indication".
            data.push(0x00);
        }
        data.extend_from_slice(cryptogram);
        let cmd = apdu(ins::PSO, 0x80, 0x86, data, true)?;
        let response = self.channel.transmit(operation, &cmd)?;
        if response.sw() != StatusWord::SUCCESS {
            return Err(CardError::from_status(operation, response.sw(), Some(PinId::USER)));
        }
        Ok(response.into_data())
    }

    /// Mutual authentication with the admin key (see [`crate::admin`]).
    fn admin_mutual(&mut self, key: &[u8; admin::KEY_LEN]) -> Result<()> {
        self.select()?;
        self.challenge_pending = false;
        self.select_admin_key()?;
        let (mut state, first) = Mutual::start();
        let cmd = apdu(ins::GENERAL_AUTHENTICATE, 0x00, 0x00, first, true)?;
        let answer = self.send("admin authentication", &cmd, None)?;
        let second = state.respond(key, &answer)?;
        let cmd = apdu(ins::GENERAL_AUTHENTICATE, 0x00, 0x00, second, true)?;
        let response = self.channel.transmit("admin authentication", &cmd)?;
        if response.sw() != StatusWord::SUCCESS {
            self.channel.clear_authenticated(PinId::ADMIN.set());
            return Err(admin_failure("admin authentication", response.sw()));
        }
        if let Err(err) = state.check(key, response.data()) {
            self.channel.clear_authenticated(PinId::ADMIN.set());
            return Err(err);
        }
        self.channel.set_authenticated(PinId::ADMIN);
        Ok(())
    }

    /// MSE SET for GENERAL AUTHENTICATE with the admin key: P1 C1, P2 A4 (authentication),
    /// 83 01 80 (OpenSC gids_authenticate_admin).
    fn select_admin_key(&mut self) -> Result<()> {
        let cmd = apdu(ins::MSE, 0xC1, 0xA4, vec![0x83, 0x01, ADMIN_KEY_REF], false)?;
        self.send("selecting the admin key", &cmd, None)?;
        Ok(())
    }

    fn check_user_pin(&self, rules: &PinRules, value: &Pin) -> Result<Zeroizing<Vec<u8>>> {
        rules
            .check(value.len())
            .map_err(|reason| CardError::PinFormat { pin: PinId::USER, reason })?;
        // Capacity first: growing a vector would leave a copy of the PIN behind unzeroized.
        let mut bytes = Zeroizing::new(Vec::with_capacity(rules.max_len.max(value.len())));
        bytes.extend_from_slice(value.expose());
        if let Some(pad) = rules.pad {
            bytes.resize(rules.max_len, pad);
        }
        Ok(bytes)
    }

    fn pin_id_unsupported(&self, pin: PinId) -> CardError {
        CardError::InvalidInput {
            what: "PIN id",
            reason: format!("{pin}: a GIDS card has the user PIN (1) and the admin key (2)"),
        }
    }
}

impl CardModule for GidsCard {
    fn model(&self) -> &CardModel {
        &self.model
    }

    fn channel(&mut self) -> &mut CardChannel {
        &mut self.channel
    }

    fn properties(&mut self) -> Result<CardProperties> {
        self.txn(|card| {
            let card_id = card.card_id()?;
            let used = card.cmap()?.iter().filter(|r| r.is_valid()).count();
            let max = card.max_containers();
            Ok(CardProperties {
                family: "gids".into(),
                model: card.model.name.clone(),
                card_id,
                serial: scard_iso7816::hex::encode_upper(&card_id),
                key_generation: card.model.key_generation,
                certificate_compression: card.model.certificate_compression,
                algorithms: card.algorithms(),
                max_containers: max,
                free_containers: max.saturating_sub(used),
                read_only: card.model.read_only,
            })
        })
    }

    /// The card's own `cardid` file (Minidriver v7 §5.1.1; GIDS keeps it in EF A012).
    fn card_id(&mut self) -> Result<[u8; 16]> {
        self.txn(|card| {
            card.sync()?;
            if let Some(id) = card.snap()?.card_id {
                return Ok(id);
            }
            let rec = card
                .snap()?
                .mf
                .file("", "cardid")
                .cloned()
                .ok_or_else(|| CardError::FileNotFound { path: "cardid".into() })?;
            let bytes = card.get_do("reading cardid", rec.fid, rec.do_id, None)?;
            let id = <[u8; 16]>::try_from(bytes.as_slice()).map_err(|_| CardError::Malformed {
                operation: "reading cardid",
                reason: format!("{} bytes, cardid has 16", bytes.len()),
            })?;
            card.snap_mut()?.card_id = Some(id);
            Ok(id)
        })
    }

    fn pins(&mut self) -> Result<Vec<PinInfo>> {
        let tries = self.tries_left(PinId::USER)?;
        Ok(vec![
            PinInfo {
                id: PinId::USER,
                name: "User PIN".into(),
                pin_type: PinType::AlphaNumeric,
                purpose: PinPurpose::Primary,
                change_permission: PinId::USER.set(),
                unblock_permission: PinId::ADMIN.set(),
                cache_policy: CachePolicy::Normal,
                min_len: self.model.user_pin.min_len,
                max_len: self.model.user_pin.max_len,
                tries_left: tries,
            },
            PinInfo {
                id: PinId::ADMIN,
                name: "Administrator key (3DES)".into(),
                pin_type: PinType::ChallengeResponse,
                purpose: PinPurpose::Administrator,
                change_permission: PinId::ADMIN.set(),
                unblock_permission: PinSet::NONE,
                cache_policy: CachePolicy::None,
                min_len: admin::KEY_LEN,
                max_len: admin::KEY_LEN,
                tries_left: None,
            },
        ])
    }

    /// The user PIN's tries left from the PIN status DO 7F71 (GET DATA 3FFF), which costs no
    /// try. The admin key's counter is not readable.
    fn tries_left(&mut self, pin: PinId) -> Result<Option<u8>> {
        match pin {
            PinId::USER => self.txn(|card| {
                card.select()?;
                let [p1, p2] = APP_FID.to_be_bytes();
                let cmd = apdu(ins::GET_DATA, p1, p2, layout::tag_list(PIN_STATUS_DO), true)?;
                let answer = card.send("reading the PIN status", &cmd, None)?;
                layout::pin_tries(&answer).map(Some)
            }),
            PinId::ADMIN => Ok(None),
            other => Err(self.pin_id_unsupported(other)),
        }
    }

    /// VERIFY 00 20 00 80 with the PIN (ISO/IEC 7816-4 §11.5.6); the admin "PIN" is the admin
    /// key, authenticated by challenge-response.
    fn authenticate(&mut self, pin: PinId, value: &Pin) -> Result<()> {
        match pin {
            PinId::USER => {
                let bytes = self.check_user_pin(&self.model.user_pin.clone(), value)?;
                self.txn(|card| {
                    card.select()?;
                    let cmd = apdu(ins::VERIFY, 0x00, PIN_REF, bytes.to_vec(), false)?;
                    let response = card.channel.transmit("VERIFY", &cmd)?;
                    if response.sw() == StatusWord::SUCCESS {
                        card.channel.set_authenticated(PinId::USER);
                        Ok(())
                    } else {
                        card.channel.clear_authenticated(PinId::USER.set());
                        Err(CardError::from_status("VERIFY", response.sw(), Some(PinId::USER)))
                    }
                })
            }
            PinId::ADMIN => self.authenticate_admin_key(value),
            other => Err(self.pin_id_unsupported(other)),
        }
    }

    /// GENERAL AUTHENTICATE with the card's external-authentication challenge: the card's 8
    /// random bytes (`7C 02 81 00` → `7C 0A 81 08 R2`).
    fn admin_challenge(&mut self) -> Result<Vec<u8>> {
        self.txn(|card| {
            card.select()?;
            card.select_admin_key()?;
            let cmd =
                apdu(ins::GENERAL_AUTHENTICATE, 0x00, 0x00, admin::template(0x81, &[]), true)?;
            let answer = card.send("admin challenge", &cmd, None)?;
            let challenge = admin::template_value(&answer, 0x81, 8)?;
            card.challenge_pending = true;
            Ok(challenge)
        })
    }

    /// Answers the challenge with E(R2) under the admin key (`7C 0A 82 08 ..`).
    fn admin_response(&mut self, response: &[u8]) -> Result<()> {
        if !self.challenge_pending {
            return Err(CardError::InvalidInput {
                what: "admin response",
                reason: "no admin challenge was asked for in this session".into(),
            });
        }
        if response.len() != 8 {
            return Err(CardError::InvalidInput {
                what: "admin response",
                reason: format!("{} bytes, the answer to a GIDS challenge has 8", response.len()),
            });
        }
        self.txn(|card| {
            card.challenge_pending = false;
            let cmd = apdu(
                ins::GENERAL_AUTHENTICATE,
                0x00,
                0x00,
                admin::template(0x82, response),
                false,
            )?;
            let answer = card.channel.transmit("admin authentication", &cmd)?;
            if answer.sw() == StatusWord::SUCCESS {
                card.channel.set_authenticated(PinId::ADMIN);
                Ok(())
            } else {
                card.channel.clear_authenticated(PinId::ADMIN.set());
                Err(admin_failure("admin authentication", answer.sw()))
            }
        })
    }

    /// Mutual authentication with the 24-byte 3DES admin key (24 raw bytes or 48 hex digits).
    fn authenticate_admin_key(&mut self, key: &Pin) -> Result<()> {
        let key = admin::admin_key(key)?;
        self.txn(|card| card.admin_mutual(&key))
    }

    /// User PIN: CHANGE REFERENCE DATA P1 00 with old || new (ISO/IEC 7816-4 §11.5.7). Admin
    /// key: authenticate with the old key, then PUT DATA 3FFF {70 {84 80, A5 {87 key}}}
    /// (OpenSC gids_set_administrator_key). Either bumps the PIN freshness counter.
    fn change_pin(&mut self, pin: PinId, old: &Pin, new: &Pin) -> Result<()> {
        match pin {
            PinId::USER => {
                let rules = self.model.user_pin.clone();
                let old = self.check_user_pin(&rules, old)?;
                let new = self.check_user_pin(&rules, new)?;
                self.txn(|card| {
                    card.sync()?;
                    let auth = card.channel.authenticated();
                    if !auth.contains(PinId::USER) && !auth.contains(PinId::ADMIN) {
                        // cardcf is written after the user PIN: VERIFY the old one first (a
                        // wrong one costs the try CHANGE REFERENCE DATA would have cost), so the
                        // counters move before the change as for every write (Minidriver v7
                        // §5.1.2): an interruption never leaves a new PIN behind old counters.
                        let cmd = apdu(ins::VERIFY, 0x00, PIN_REF, old.to_vec(), false)?;
                        let response = card.channel.transmit("VERIFY", &cmd)?;
                        if response.sw() != StatusWord::SUCCESS {
                            card.channel.clear_authenticated(PinId::USER.set());
                            return Err(CardError::from_status(
                                "VERIFY",
                                response.sw(),
                                Some(PinId::USER),
                            ));
                        }
                        card.channel.set_authenticated(PinId::USER);
                    }
                    card.bump(Bump { pins: true, ..Bump::default() })?;
                    let mut data = Zeroizing::new(Vec::with_capacity(old.len() + new.len()));
                    data.extend_from_slice(&old);
                    data.extend_from_slice(&new);
                    let cmd =
                        apdu(ins::CHANGE_REFERENCE_DATA, 0x00, PIN_REF, data.to_vec(), false)?;
                    let response = card.channel.transmit("CHANGE REFERENCE DATA", &cmd)?;
                    if response.sw() != StatusWord::SUCCESS {
                        card.channel.clear_authenticated(PinId::USER.set());
                        return Err(CardError::from_status(
                            "CHANGE REFERENCE DATA",
                            response.sw(),
                            Some(PinId::USER),
                        ));
                    }
                    // The card checked the old PIN: the user is authenticated.
                    card.channel.set_authenticated(PinId::USER);
                    Ok(())
                })
            }
            PinId::ADMIN => {
                let old = admin::admin_key(old)?;
                let new = admin::admin_key(new)?;
                self.txn(|card| {
                    card.sync()?;
                    card.admin_mutual(&old)?;
                    card.bump(Bump { pins: true, ..Bump::default() })?;
                    // 70 1F {84 01 80, A5 1A {87 18 key}}: short lengths throughout; allocated at
                    // its final size (a vector that grows leaves copies behind).
                    let mut data = Zeroizing::new(Vec::with_capacity(33));
                    data.extend_from_slice(&[
                        0x70,
                        0x1F,
                        0x84,
                        0x01,
                        ADMIN_KEY_REF,
                        0xA5,
                        0x1A,
                        0x87,
                        0x18,
                    ]);
                    data.extend_from_slice(new.as_slice());
                    let [p1, p2] = APP_FID.to_be_bytes();
                    let cmd = apdu(ins::PUT_DATA, p1, p2, data.to_vec(), false)?;
                    card.send("changing the admin key", &cmd, Some(PinId::ADMIN))?;
                    Ok(())
                })
            }
            other => Err(self.pin_id_unsupported(other)),
        }
    }

    /// Unblocks the user PIN: admin authentication with the admin key (`unblock`), then RESET
    /// RETRY COUNTER P1 02 P2 80 with the new PIN (ISO/IEC 7816-4 §11.5.10; OpenSC gids-tool
    /// --unblock). The card logs the admin out afterwards (GidsApplet).
    fn unblock_pin(&mut self, pin: PinId, unblock: &Pin, new: &Pin) -> Result<()> {
        if pin != PinId::USER {
            return Err(self.unsupported(&format!("unblocking {pin}")));
        }
        let key = admin::admin_key(unblock)?;
        let new = self.check_user_pin(&self.model.user_pin.clone(), new)?;
        self.txn(|card| {
            card.sync()?;
            card.admin_mutual(&key)?;
            card.bump(Bump { pins: true, ..Bump::default() })?;
            let cmd = apdu(ins::RESET_RETRY_COUNTER, 0x02, PIN_REF, new.to_vec(), false)?;
            let result = card.send("RESET RETRY COUNTER", &cmd, Some(PinId::ADMIN));
            card.channel.clear_authenticated(PinId::ADMIN.set().with(PinId::USER));
            result.map(|_| ())
        })
    }

    /// VERIFY P2 82 logs both the PIN and the admin out (GIDS has no per-PIN logout).
    fn deauthenticate(&mut self, set: PinSet) -> Result<()> {
        if !set.contains(PinId::USER) && !set.contains(PinId::ADMIN) {
            return Ok(());
        }
        self.txn(|card| {
            card.select()?;
            let cmd = apdu(ins::VERIFY, 0x00, LOGOUT_REF, Vec::new(), false)?;
            card.send("logging out", &cmd, None)?;
            card.channel.clear_authenticated(PinId::USER.set().with(PinId::ADMIN));
            Ok(())
        })
    }

    /// One container per cmapfile record, deleted (zero-filled) ones included, without public
    /// keys (see [`CardModule::container`]).
    fn containers(&mut self) -> Result<Vec<ContainerInfo>> {
        self.txn(|card| card.all_containers())
    }

    /// One container, with its public key read from the card when it holds a key (one GET
    /// DATA, then cached while `cardcf` is unchanged). An index past the cmapfile but within
    /// the card's containers is an empty container (a new key may go there).
    fn container(&mut self, index: u8) -> Result<ContainerInfo> {
        self.txn(|card| {
            let containers = card.all_containers()?;
            let count = containers.len();
            match containers.into_iter().find(|c| c.index == index) {
                Some(mut info) => {
                    if info.has_key() {
                        let key = card.key(index)?;
                        info.public_key = Some(card.read_public_key(&key)?);
                    }
                    Ok(info)
                }
                None if usize::from(index) < card.max_containers() => {
                    let mf = card.snap()?.mf.clone();
                    Ok(Self::container_of(&mf, index, &ContainerMapRecord::default()))
                }
                None => Err(CardError::NoContainer { index, count }),
            }
        })
    }

    /// GENERATE ASYMMETRIC KEY PAIR (ISO/IEC 7816-8 §5.1; GIDS: data AC {80 algorithm, 83
    /// key reference}) into a key file created for it, then the key map and the cmapfile
    /// (OpenSC gids_create_keyfile / gids_generate_key). A key already in the container is
    /// replaced (its certificate removed). RSA keys are key-exchange keys, EC keys ECDSA keys.
    fn generate_key(&mut self, index: u8, algorithm: KeyAlgorithm) -> Result<PublicKey> {
        let id = self.check_new_key(index, algorithm)?;
        if !self.model.key_generation || self.model.read_only {
            return Err(self.unsupported("on-card key generation"));
        }
        self.txn(|card| {
            card.require_user("generate key")?;
            let cmap = card.cmap()?;
            let occupied = cmap.get(usize::from(index)).is_some_and(|r| r.is_valid());
            card.bump(Bump { containers: true, files: true, ..Bump::default() })?;
            if occupied {
                card.remove_container(index)?;
            } else {
                // Certificate files an interrupted deletion left behind.
                card.delete_certificate_files(index)?;
            }
            let key_ref = FIRST_KEY_REF.wrapping_add(index);
            card.create_key_file(key_ref, algorithm, id)?;
            let cmd = apdu(ins::GENERATE_KEY_PAIR, 0x00, 0x00, vec![0xAC, 0x06, 0x80, 0x01, id, 0x83, 0x01, key_ref], true)?;
            let generated = card.send("GENERATE ASYMMETRIC KEY PAIR", &cmd, Some(PinId::USER));
            let answer = match generated {
                Ok(answer) => answer,
                Err(err) => {
                    // Leave no key file without a container behind.
                    if let Err(cleanup) = card.delete_key_file(key_ref) {
                        tracing::warn!("GIDS: removing key file B0{key_ref:02X} after a failed generation: {cleanup}");
                    }
                    return Err(err);
                }
            };
            let key = Key { index, key_ref, spec: KeySpec::Exchange, algorithm, crypto_id: id };
            let public = if answer.is_empty() {
                // A card may answer GENERATE without the key (OpenSC reads it afterwards).
                card.read_public_key(&key)?
            } else {
                layout::public_key("GENERATE ASYMMETRIC KEY PAIR", &answer, algorithm)?
            };
            card.register_key(index, algorithm, id)?;
            card.snap_mut()?.public_keys.insert(index, public.clone());
            Ok(public)
        })
    }

    /// Imports an RSA private key (PKCS#8) with PUT DATA 3FFF {70 {84 kid, A5 {83 02 (RSA),
    /// 84 00 (not encrypted), 87 RSAPrivateKey}}} (OpenSC gids_import_key; GIDS cards import
    /// RSA keys only).
    fn import_key(&mut self, index: u8, pkcs8_der: &Secret) -> Result<()> {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        use rsa::traits::PublicKeyParts;
        let key = rsa::RsaPrivateKey::from_pkcs8_der(pkcs8_der.expose())
            .map_err(|_| self.unsupported("importing keys other than RSA (or not PKCS#8)"))?;
        let bits = u16::try_from(key.n().bits()).unwrap_or(0);
        let algorithm = KeyAlgorithm::Rsa(bits);
        let id = self.check_new_key(index, algorithm)?;
        if self.model.read_only {
            return Err(CardError::ReadOnly { model: self.model.name.clone() });
        }
        let der = key
            .to_pkcs1_der()
            .map_err(|e| CardError::Crypto { operation: "key import", reason: e.to_string() })?;
        let der = der.as_bytes();
        let key_ref = FIRST_KEY_REF.wrapping_add(index);
        // 87 with a long-form length: the key is hundreds of bytes.
        // Every buffer is allocated at its final size: a vector that grows leaves copies of
        // the key behind unzeroized.
        let room = der.len() + 32;
        let mut value = Zeroizing::new(Vec::with_capacity(room));
        value.extend_from_slice(&[0x83, 0x01, 0x02, 0x84, 0x01, 0x00]);
        let mut k87 = Zeroizing::new(Vec::with_capacity(room));
        scard_iso7816::tlv::ber::write(&mut k87, scard_iso7816::tlv::ber::Tag::new(0x87), der)
            .map_err(|source| CardError::Codec { operation: "key import", source })?;
        value.extend_from_slice(&k87);
        let mut inner = Zeroizing::new(Vec::with_capacity(room));
        inner.extend_from_slice(&[0x84, 0x01, key_ref]);
        scard_iso7816::tlv::ber::write(&mut inner, scard_iso7816::tlv::ber::Tag::new(0xA5), &value)
            .map_err(|source| CardError::Codec { operation: "key import", source })?;
        let mut data = Zeroizing::new(Vec::with_capacity(room));
        scard_iso7816::tlv::ber::write(&mut data, scard_iso7816::tlv::ber::Tag::new(0x70), &inner)
            .map_err(|source| CardError::Codec { operation: "key import", source })?;
        self.txn(|card| {
            card.require_user("import key")?;
            let cmap = card.cmap()?;
            let occupied = cmap.get(usize::from(index)).is_some_and(|r| r.is_valid());
            card.bump(Bump { containers: true, files: true, ..Bump::default() })?;
            if occupied {
                card.remove_container(index)?;
            } else {
                // Certificate files an interrupted deletion left behind.
                card.delete_certificate_files(index)?;
            }
            card.create_key_file(key_ref, algorithm, id)?;
            let [p1, p2] = APP_FID.to_be_bytes();
            let cmd = apdu(ins::PUT_DATA, p1, p2, data.to_vec(), false)?;
            if let Err(err) = card.send("importing a key", &cmd, Some(PinId::USER)) {
                if let Err(cleanup) = card.delete_key_file(key_ref) {
                    tracing::warn!(
                        "GIDS: removing key file B0{key_ref:02X} after a failed import: {cleanup}"
                    );
                }
                return Err(err);
            }
            card.register_key(index, algorithm, id)
        })
    }

    /// Deletes the key file, the certificate files, and zero-fills the cmapfile record (OpenSC
    /// gids_delete_container_num / gids_delete_cert).
    fn delete_container(&mut self, index: u8) -> Result<()> {
        if self.model.read_only {
            return Err(CardError::ReadOnly { model: self.model.name.clone() });
        }
        self.txn(|card| {
            card.require_write_auth("delete container")?;
            let cmap = card.cmap()?;
            let rec = cmap
                .get(usize::from(index))
                .ok_or(CardError::NoContainer { index, count: cmap.len() })?;
            if !rec.is_valid() {
                return Err(CardError::EmptyContainer { index, what: "key" });
            }
            card.bump(Bump { containers: true, files: true, ..Bump::default() })?;
            card.remove_container(index)
        })
    }

    fn check_sign(&mut self, index: u8, request: &SignRequest<'_>) -> Result<()> {
        let key = self.txn(|card| card.key(index))?;
        sign_plan(&key, request).map(|_| ())
    }

    /// MSE SET B6 then PSO COMPUTE DIGITAL SIGNATURE (GIDS 1.0 Table 60). PKCS#1 v1.5: the
    /// card pads the DigestInfo (mechanism 5x); PSS and raw: the host builds the block
    /// (mechanism 1x); ECDSA: the hash, answered as r || s ("plain signature without further
    /// TLV coding").
    fn sign(&mut self, index: u8, request: &SignRequest<'_>) -> Result<Vec<u8>> {
        self.txn(|card| {
            let key = card.key(index)?;
            let (mech, data) = sign_plan(&key, request)?;
            // The PIN is card state another application's VERIFY may have set: keys are used
            // only after this session verified it.
            card.require_user("PSO COMPUTE DIGITAL SIGNATURE")?;
            card.set_env(0xB6, mech, &key)?;
            let cmd = apdu(ins::PSO, 0x9E, 0x9A, data, true)?;
            let signature = card.send("PSO COMPUTE DIGITAL SIGNATURE", &cmd, Some(PinId::USER))?;
            let expected = key.algorithm.signature_len();
            let bad = |len: usize| CardError::Malformed {
                operation: "PSO COMPUTE DIGITAL SIGNATURE",
                reason: format!(
                    "{len}-byte signature from a {} key (expected {expected})",
                    key.algorithm
                ),
            };
            // GIDS 1.0 Table 60: the plain signature, the modulus length for RSA, r || s for
            // ECDSA.
            if signature.len() == expected { Ok(signature) } else { Err(bad(signature.len())) }
        })
    }

    fn check_decrypt(&mut self, index: u8, padding: &DecryptPadding) -> Result<()> {
        let key = self.txn(|card| card.key(index))?;
        decrypt_plan(&key, padding).map(|_| ())
    }

    /// MSE SET B8 then PSO DECIPHER. PKCS#1 v1.5 and OAEP-SHA-1 are removed by the card
    /// (mechanisms 4x, 8x); other OAEP hashes and labels on the host from a raw block (0x).
    fn decrypt(&mut self, index: u8, padding: &DecryptPadding, data: &[u8]) -> Result<Secret> {
        self.txn(|card| {
            let key = card.key(index)?;
            let mech = decrypt_plan(&key, padding)?;
            let k = key.algorithm.signature_len();
            if data.len() != k {
                return Err(CardError::InvalidInput {
                    what: "ciphertext",
                    reason: format!("{} bytes; a {} key takes {k}", data.len(), key.algorithm),
                });
            }
            card.require_user("PSO DECIPHER")?;
            card.set_env(0xB8, mech, &key)?;
            let plain = card.decipher("PSO DECIPHER", data)?;
            if mech != mechanism::RAW {
                return Ok(Secret::new(plain.to_vec()));
            }
            if plain.len() > k {
                return Err(CardError::Malformed {
                    operation: "PSO DECIPHER",
                    reason: format!("{}-byte block from a {k}-byte key", plain.len()),
                });
            }
            let mut block = Zeroizing::new(Vec::with_capacity(k));
            block.resize(k - plain.len(), 0);
            block.extend_from_slice(&plain);
            match padding {
                DecryptPadding::None => Ok(Secret::new(block.to_vec())),
                DecryptPadding::Oaep { hash, label } => {
                    host_padding::oaep_unpad(&block, *hash, label)
                }
                DecryptPadding::Pkcs1 => host_padding::pkcs1_v15_decrypt_unpad(&block),
            }
        })
    }

    /// ECDH: MSE SET B8 with mechanism 0x and PSO DECIPHER of the peer's uncompressed point;
    /// the card answers the shared x-coordinate.
    fn agree(&mut self, index: u8, peer: &PublicKey) -> Result<Secret> {
        self.txn(|card| {
            let key = card.key(index)?;
            let KeyAlgorithm::Ec(curve) = key.algorithm else {
                return Err(card.unsupported("ECDH with an RSA key"));
            };
            let point = match peer {
                PublicKey::Ec { curve: c, point } if *c == curve => point.clone(),
                _ => {
                    return Err(CardError::InvalidInput {
                        what: "peer key",
                        reason: format!("container {index} holds a {curve:?} key; the peer key is not on that curve"),
                    });
                }
            };
            card.require_user("ECDH (PSO DECIPHER)")?;
            card.set_env(0xB8, mechanism::RAW, &key)?;
            let shared = card.decipher("ECDH (PSO DECIPHER)", &point)?;
            if shared.len() != curve.field_len() {
                return Err(CardError::Malformed {
                    operation: "ECDH (PSO DECIPHER)",
                    reason: format!("{}-byte shared secret on {curve:?}", shared.len()),
                });
            }
            Ok(Secret::new(shared.to_vec()))
        })
    }

    /// The certificate file of the container, inflated (Minidriver v7 §6.3.1 compression:
    /// 01 00, length, zlib). An empty certificate DO is no certificate.
    fn certificate(&mut self, index: u8) -> Result<Option<Vec<u8>>> {
        self.txn(|card| {
            let containers = card.all_containers()?;
            let count = containers.len();
            let info = containers
                .into_iter()
                .find(|c| c.index == index)
                .ok_or(CardError::NoContainer { index, count })?;
            let mf = card.snap()?.mf.clone();
            let Some(rec) = Self::certificate_record(&mf, &info) else { return Ok(None) };
            let file = card.get_do("reading a certificate", rec.fid, rec.do_id, None)?;
            if file.is_empty() {
                return Ok(None);
            }
            decompress_certificate(&file).map(Some)
        })
    }

    fn put_certificate(&mut self, index: u8, der: Option<&[u8]>) -> Result<()> {
        self.txn(|card| {
            let containers = card.all_containers()?;
            let count = containers.len();
            let info = containers
                .into_iter()
                .find(|c| c.index == index)
                .ok_or(CardError::NoContainer { index, count })?;
            let path = FilePath::certificate(&info)
                .ok_or(CardError::EmptyContainer { index, what: "key" })?;
            match der {
                Some(der) => {
                    if der.first() != Some(&0x30) {
                        return Err(CardError::InvalidInput {
                            what: "certificate",
                            reason: "not DER (no SEQUENCE)".into(),
                        });
                    }
                    card.write_file(&path, der)
                }
                None => match card.delete_file(&path) {
                    Err(CardError::FileNotFound { .. }) => Ok(()),
                    other => other,
                },
            }
        })
    }

    fn cardcf(&mut self) -> Result<CardCf> {
        self.txn(|card| {
            card.sync()?;
            Ok(card.snap()?.cardcf)
        })
    }

    fn freshness_on_card(&self) -> bool {
        true
    }

    /// The files of a directory as the card's master file lists them.
    fn list_files(&mut self, dir: Option<&str>) -> Result<Vec<String>> {
        let dir = dir.unwrap_or("").trim_matches('/').to_ascii_lowercase();
        self.txn(|card| {
            card.sync()?;
            let mf = &card.snap()?.mf;
            if !mf.has_directory(&dir) {
                return Err(CardError::FileNotFound { path: dir.clone() });
            }
            Ok(mf.files_in(&dir).into_iter().map(|f| f.to_ascii_lowercase()).collect())
        })
    }

    /// GET DATA of the file's DO, found in the master file. Certificate files come back as
    /// stored (compressed).
    fn read_file(&mut self, path: &FilePath) -> Result<Vec<u8>> {
        self.txn(|card| {
            card.sync()?;
            if *path == FilePath::CardCf {
                return Ok(card.snap()?.cardcf.encode().to_vec());
            }
            if *path == FilePath::CardId {
                return card.card_id().map(|id| id.to_vec());
            }
            let (dir, file) = split_path(path);
            let rec = card
                .snap()?
                .mf
                .file(&dir, &file)
                .cloned()
                .ok_or_else(|| CardError::FileNotFound { path: path.name() })?;
            // A refusal names who may read: the admin for EF A014, the user for A011 / A013.
            let pin = match rec.fid {
                FID_ADMIN_READ_WRITE => Some(PinId::ADMIN),
                fid if !file_acl(fid).0 => Some(PinId::USER),
                _ => None,
            };
            card.get_do("reading a file", rec.fid, rec.do_id, pin)
        })
    }

    /// PUT DATA of the file's DO after bumping `cardcf` (files; containers too for the
    /// cmapfile). A new file gets a free DO in EF A010 (A012 for `msroots`) and a master-file
    /// record. `cardcf` itself is written as given. DER certificates are compressed when the
    /// model says so (OpenSC reads only the compressed form).
    fn write_file(&mut self, path: &FilePath, data: &[u8]) -> Result<()> {
        if self.model.read_only {
            return Err(CardError::ReadOnly { model: self.model.name.clone() });
        }
        let invalid = |reason: String| CardError::InvalidInput { what: "file contents", reason };
        let mut contents = data.to_vec();
        match path {
            FilePath::CardId if data.len() != 16 => {
                return Err(invalid(format!("cardid is 16 bytes, got {}", data.len())));
            }
            FilePath::CardCf => {
                CardCf::decode(data)
                    .map_err(|_| invalid(format!("cardcf is 6 bytes, got {}", data.len())))?;
            }
            FilePath::CmapFile => {
                decode_cmapfile(data).map_err(|e| invalid(e.to_string()))?;
            }
            FilePath::KeyExchangeCert(_) | FilePath::SignatureCert(_) => {
                let der = decompress_certificate(data).map_err(|e| invalid(e.to_string()))?;
                if self.model.certificate_compression && data.first() == Some(&0x30) {
                    contents = compress_certificate(&der)?;
                }
            }
            _ => {}
        }
        if contents.len() > layout::MAX_FILE {
            return Err(invalid(format!(
                "{} bytes; a GIDS file holds at most {}",
                contents.len(),
                layout::MAX_FILE
            )));
        }
        self.txn(|card| {
            card.require_write_auth("writing a file")?;
            card.sync()?;
            let (dir, file) = split_path(path);
            let existing = card.snap()?.mf.file(&dir, &file).cloned();
            if *path == FilePath::CardCf {
                let rec = existing.ok_or_else(|| CardError::FileNotFound { path: path.name() })?;
                card.put_do("writing cardcf", rec.fid, rec.do_id, &contents, PinId::USER)?;
                card.snap_mut()?.cardcf = CardCf::decode(&contents)?;
                return Ok(());
            }
            if existing.is_none() && !card.snap()?.mf.has_directory(&dir) {
                return Err(CardError::FileNotFound { path: dir });
            }
            card.bump(Bump {
                files: true,
                containers: *path == FilePath::CmapFile,
                ..Bump::default()
            })?;
            // A new file: its DO first, then its master-file record, so an interruption
            // leaves a DO nothing refers to (written over when it is used again), never a
            // listed file without its contents.
            let (rec, new_mf) = match existing {
                Some(rec) => (rec, None),
                None => {
                    let mut mf = card.snap()?.mf.clone();
                    let fid = new_file_fid(path);
                    let do_id = mf.free_do(fid).ok_or(CardError::Status {
                        operation: "creating a file",
                        sw: StatusWord::NOT_ENOUGH_MEMORY,
                    })?;
                    let rec = MfRecord { directory: dir.clone(), file: file.clone(), fid, do_id };
                    mf.records.push(rec.clone());
                    (rec, Some(mf))
                }
            };
            let pin = if file_acl(rec.fid).1 { PinId::USER } else { PinId::ADMIN };
            card.put_do("writing a file", rec.fid, rec.do_id, &contents, pin)?;
            if let Some(mf) = new_mf {
                card.write_master_file(mf)?;
            }
            let snap = card.snap_mut()?;
            match path {
                FilePath::CardId => snap.card_id = <[u8; 16]>::try_from(contents.as_slice()).ok(),
                FilePath::CmapFile => {
                    snap.cmap = Some(decode_cmapfile(&contents)?);
                    snap.public_keys.clear();
                }
                _ => {}
            }
            Ok(())
        })
    }

    /// Removes the file's master-file record and empties its DO (OpenSC gids_delete_cert).
    /// The files every minidriver card must have (cardid, cardcf, cardapps, cmapfile) stay.
    fn delete_file(&mut self, path: &FilePath) -> Result<()> {
        if matches!(
            path,
            FilePath::CardId | FilePath::CardCf | FilePath::CardApps | FilePath::CmapFile
        ) {
            return Err(CardError::InvalidInput {
                what: "file",
                reason: format!("{} is a mandatory minidriver file", path.name()),
            });
        }
        if self.model.read_only {
            return Err(CardError::ReadOnly { model: self.model.name.clone() });
        }
        self.txn(|card| {
            card.require_write_auth("deleting a file")?;
            card.sync()?;
            let (dir, file) = split_path(path);
            let mut mf = card.snap()?.mf.clone();
            let rec = mf
                .remove(&dir, &file)
                .ok_or_else(|| CardError::FileNotFound { path: path.name() })?;
            card.bump(Bump { files: true, ..Bump::default() })?;
            // The record first (see `delete_certificate_files`).
            card.write_master_file(mf)?;
            let pin = if file_acl(rec.fid).1 { PinId::USER } else { PinId::ADMIN };
            card.put_do("deleting a file", rec.fid, rec.do_id, &[], pin)
        })
    }

    /// Size from the file itself; access from its EF (A010 everyone reads / user writes, A011
    /// write-only, A012 admin writes, A013 user only, A014 admin only). A write-only file's
    /// size cannot be read: 0.
    fn file_info(&mut self, path: &FilePath) -> Result<FileInfo> {
        self.txn(|card| {
            card.sync()?;
            let (dir, file) = split_path(path);
            let rec = card
                .snap()?
                .mf
                .file(&dir, &file)
                .cloned()
                .ok_or_else(|| CardError::FileNotFound { path: path.name() })?;
            let (read_everyone, write_user) = file_acl(rec.fid);
            let size = if rec.fid == FID_WRITE_ONLY { 0 } else { card.read_file(path)?.len() };
            Ok(FileInfo { size, read_everyone, write_user })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(algorithm: KeyAlgorithm, spec: KeySpec) -> Key {
        Key {
            index: 0,
            key_ref: 0x81,
            spec,
            algorithm,
            crypto_id: layout::crypto_id(algorithm).unwrap(),
        }
    }

    #[test]
    fn sign_plans() {
        let rsa = key(KeyAlgorithm::Rsa(2048), KeySpec::Exchange);
        let digest = [7u8; 32];
        let req = |hash, padding, data| SignRequest { hash, padding, data };
        let (m, data) =
            sign_plan(&rsa, &req(Some(HashAlg::Sha256), SignPadding::Pkcs1, &digest)).unwrap();
        assert_eq!(m, mechanism::SIGN_PKCS1);
        assert_eq!(data.len(), 19 + 32);
        let (m, data) = sign_plan(
            &rsa,
            &req(Some(HashAlg::Sha256), SignPadding::Pss { salt_len: 32 }, &digest),
        )
        .unwrap();
        assert_eq!((m, data.len()), (mechanism::SIGN_RAW, 256));
        assert!(sign_plan(&rsa, &req(None, SignPadding::Pss { salt_len: 32 }, &digest)).is_err());
        assert!(sign_plan(&rsa, &req(Some(HashAlg::Sha384), SignPadding::Pkcs1, &digest)).is_err());
        assert!(sign_plan(&rsa, &req(None, SignPadding::None, &digest)).is_err());
        assert!(sign_plan(&rsa, &req(None, SignPadding::None, &[1; 256])).is_ok());
        assert!(sign_plan(&rsa, &req(None, SignPadding::Pkcs1, &[1; 246])).is_err());
        let ec = key(KeyAlgorithm::Ec(Curve::P256), KeySpec::Ecdsa(Curve::P256));
        assert_eq!(
            sign_plan(&ec, &req(Some(HashAlg::Sha256), SignPadding::None, &digest)).unwrap().0,
            mechanism::SIGN_RAW
        );
        assert!(matches!(
            sign_plan(&ec, &req(Some(HashAlg::Sha256), SignPadding::Pkcs1, &digest)),
            Err(CardError::Unsupported { .. })
        ));
        let ecdh = key(KeyAlgorithm::Ec(Curve::P256), KeySpec::Ecdh(Curve::P256));
        assert!(matches!(
            sign_plan(&ecdh, &req(None, SignPadding::None, &digest)),
            Err(CardError::Unsupported { .. })
        ));
    }

    #[test]
    fn decrypt_plans() {
        let rsa = key(KeyAlgorithm::Rsa(2048), KeySpec::Exchange);
        assert_eq!(decrypt_plan(&rsa, &DecryptPadding::Pkcs1).unwrap(), mechanism::DECIPHER_PKCS1);
        assert_eq!(
            decrypt_plan(&rsa, &DecryptPadding::Oaep { hash: HashAlg::Sha1, label: vec![] })
                .unwrap(),
            mechanism::DECIPHER_OAEP
        );
        assert_eq!(
            decrypt_plan(&rsa, &DecryptPadding::Oaep { hash: HashAlg::Sha256, label: vec![] })
                .unwrap(),
            mechanism::RAW
        );
        assert_eq!(decrypt_plan(&rsa, &DecryptPadding::None).unwrap(), mechanism::RAW);
        let sig = key(KeyAlgorithm::Rsa(2048), KeySpec::Signature);
        assert!(decrypt_plan(&sig, &DecryptPadding::Pkcs1).is_err());
        let ec = key(KeyAlgorithm::Ec(Curve::P384), KeySpec::Ecdsa(Curve::P384));
        assert!(decrypt_plan(&ec, &DecryptPadding::Pkcs1).is_err());
    }

    #[test]
    fn container_names_are_braced_guids() {
        let a = new_container_name();
        assert_eq!(a.len(), 38);
        assert!(a.starts_with('{') && a.ends_with('}'));
        assert_ne!(a, new_container_name());
        assert_eq!(a.as_bytes()[15], b'4', "version 4: {a}");
    }

    #[test]
    fn cmap_records_become_containers() {
        let mf = MasterFile::default();
        let rec = |flags, sig, kx| ContainerMapRecord {
            name: "{X}".into(),
            flags,
            sig_key_bits: sig,
            kx_key_bits: kx,
        };
        let c = GidsCard::container_of(&mf, 0, &rec(3, 0, 2048));
        assert_eq!(
            (c.key_spec, c.algorithm, c.default, c.key_ref),
            (Some(KeySpec::Exchange), Some(KeyAlgorithm::Rsa(2048)), true, 0x81)
        );
        let c = GidsCard::container_of(&mf, 2, &rec(1, 256, 0));
        assert_eq!((c.key_spec, c.key_ref), (Some(KeySpec::Ecdsa(Curve::P256)), 0x83));
        let c = GidsCard::container_of(&mf, 1, &rec(1, 0, 384));
        assert_eq!(c.key_spec, Some(KeySpec::Ecdh(Curve::P384)));
        assert_eq!(GidsCard::container_of(&mf, 1, &rec(0, 0, 2048)).key_spec, None);
        assert_eq!(GidsCard::container_of(&mf, 1, &ContainerMapRecord::default()).key_spec, None);
        assert_eq!(
            GidsCard::container_of(&mf, 1, &rec(1, 1536, 0)).algorithm,
            Some(KeyAlgorithm::Rsa(1536))
        );
    }
}
