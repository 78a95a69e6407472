//! The module's state and every PKCS#11 function in safe Rust: slots (readers), tokens
//! (cards), sessions, logins, objects and operations, over one [`Provider`].
//!
//! One mutex guards it all: a call holds it for its whole duration, card I/O included (the
//! card serves one command at a time anyway). `C_WaitForSlotEvent` holds it only for short
//! looks at the readers, so other threads go on while it waits.
//!
//! Handles: slot ids are indexes into the readers seen since `C_Initialize` (a reader keeps
//! its id); session and object handles come from one counter and are never reused. A token
//! is a card in a slot; when the card goes (or another is inserted) its sessions, session
//! objects and login end, and its object handles become invalid.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cryptoki_sys::*;
use scard_ksp::{
    CardSummary, ErrorKind, KspError, NoPinSource, OpFlags, Provider, ProviderConfig,
    default_profiles,
};
use scard_minidriver::{
    Curve, DecryptPadding, KeyAlgorithm, Pin, PinId, PinInfo, PinType, SignRequest,
};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::mechanisms::{self, Accumulator, MechParams, Mechanism, SignMech};
use crate::objects::{
    self, AttrValue, Key, SECRET_USAGE, SessionKey, Template, TokenClass, TokenObject,
};

/// How long `C_WaitForSlotEvent` sleeps between looks at the readers (without the lock).
const EVENT_POLL: Duration = Duration::from_millis(100);

/// The application's `CK_C_INITIALIZE_ARGS`, read by the C boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InitArgs {
    /// How many of the four mutex functions were given (0 or 4 are valid).
    pub(crate) mutex_functions: usize,
    /// `flags`.
    pub(crate) flags: CK_FLAGS,
    /// `pReserved` was NULL.
    pub(crate) reserved_null: bool,
}

/// Where an operation's output goes: a size query (NULL buffer) or a buffer of this size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Out {
    /// NULL output pointer: only the length is asked for.
    Query,
    /// A buffer of this many bytes.
    Buffer(usize),
}

/// What an operation produced for its output buffer (PKCS#11 3.0 §5.2).
#[derive(Debug)]
pub(crate) enum Produced {
    /// The output; it fits the buffer.
    Data(Zeroizing<Vec<u8>>),
    /// The length asked for by a NULL buffer (`CKR_OK`).
    Len(usize),
    /// The buffer is too small; this length is needed (`CKR_BUFFER_TOO_SMALL`).
    TooSmall(usize),
}

/// Who is logged in to a token (PKCS#11 logins are per token, shared by its sessions).
enum Login {
    Public,
    User,
    /// The SO, with the credential as presented (the admin key's bytes), kept zeroized while
    /// logged in for `C_InitPIN` and for presenting it again after a card reset.
    So(Pin),
}

/// A card in a slot.
struct Token {
    epoch: u64,
    summary: CardSummary,
    login: Login,
    /// The highest tries-left seen for the user PIN and the SO credential (CKF_*_COUNT_LOW).
    user_tries_max: u8,
    so_tries_max: u8,
    /// Containers whose objects are loaded, and whether with their certificate: one by a
    /// search naming its `CKA_ID`, all by a search that names none.
    loaded: BTreeMap<u8, bool>,
}

/// A reader.
struct SlotState {
    reader: String,
    present: bool,
    problem: Option<String>,
    token: Option<Token>,
}

struct SignOp {
    key: Arc<Key>,
    mech: SignMech,
    acc: Accumulator,
    updated: bool,
    size: usize,
    authorized: bool,
}

struct DecryptOp {
    key: Arc<Key>,
    padding: DecryptPadding,
    k: usize,
    authorized: bool,
    /// A plaintext that did not fit the buffer, kept for the next call with the same input.
    pending: Option<(Vec<u8>, Zeroizing<Vec<u8>>)>,
}

enum Op {
    Sign(SignOp),
    Decrypt(DecryptOp),
}

impl Op {
    fn key(&self) -> &Key {
        match self {
            Op::Sign(s) => &s.key,
            Op::Decrypt(d) => &d.key,
        }
    }
    fn authorize(&mut self) {
        match self {
            Op::Sign(s) => s.authorized = true,
            Op::Decrypt(d) => d.authorized = true,
        }
    }
}

struct Session {
    slot: CK_SLOT_ID,
    epoch: u64,
    rw: bool,
    find: Option<VecDeque<CK_OBJECT_HANDLE>>,
    op: Option<Op>,
}

enum ObjectBody {
    Token(TokenObject),
    Session { owner: CK_SESSION_HANDLE, key: SessionKey },
}

struct Object {
    slot: CK_SLOT_ID,
    epoch: u64,
    body: ObjectBody,
}

impl Object {
    fn private(&self) -> bool {
        match &self.body {
            ObjectBody::Token(t) => t.private(),
            ObjectBody::Session { key, .. } => key.private,
        }
    }
    fn attribute(&self, ty: CK_ATTRIBUTE_TYPE) -> AttrValue {
        match &self.body {
            ObjectBody::Token(t) => t.attribute(ty),
            ObjectBody::Session { key, .. } => key.attribute(ty),
        }
    }
}

/// The module between `C_Initialize` and `C_Finalize`.
struct Module {
    provider: Provider,
    pid: u32,
    instance: u64,
    slots: Vec<SlotState>,
    sessions: BTreeMap<CK_SESSION_HANDLE, Session>,
    objects: BTreeMap<CK_OBJECT_HANDLE, Object>,
    next_epoch: u64,
}

/// Session and object handles: one counter for the process, so that a handle of a closed
/// session or destroyed object (even of an earlier `C_Initialize`) never names another.
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

static MODULE: Mutex<Option<Module>> = Mutex::new(None);
static INSTANCES: AtomicU64 = AtomicU64::new(1);

/// The lock; a panic caught while it was held (a bug) leaves the state as it was.
fn lock() -> MutexGuard<'static, Option<Module>> {
    MODULE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f` on the initialized module of this process.
fn with<R>(f: impl FnOnce(&mut Module) -> Result<R>) -> Result<R> {
    let mut guard = lock();
    let module =
        guard.as_mut().filter(|m| m.pid == std::process::id()).ok_or(Error::NotInitialized)?;
    f(module)
}

/// `C_Initialize`: checks the arguments (PKCS#11 3.0 §5.4), reads the configuration
/// (`SCARD_READERS`, `$XDG_CONFIG_HOME/scard/scard.toml`) and opens the readers.
pub(crate) fn initialize(args: Option<InitArgs>) -> Result<()> {
    let mut guard = lock();
    if let Some(m) = guard.as_ref() {
        if m.pid == std::process::id() {
            return Err(Error::AlreadyInitialized);
        }
        // A forked child: the parent's readers and threads are not ours to close.
        if let Some(old) = guard.take() {
            std::mem::forget(old);
        }
    }
    let mut cant_create_threads = false;
    if let Some(args) = args {
        if !args.reserved_null {
            return Err(Error::ArgumentsBad("CK_C_INITIALIZE_ARGS.pReserved must be NULL"));
        }
        match args.mutex_functions {
            0 => {}
            4 if args.flags & CKF_OS_LOCKING_OK != 0 => {}
            4 => return Err(Error::CantLock),
            _ => return Err(Error::ArgumentsBad("give all four mutex functions or none")),
        }
        cant_create_threads = args.flags & CKF_LIBRARY_CANT_CREATE_OS_THREADS != 0;
    }
    let config = ProviderConfig::from_env_and_file()?;
    if cant_create_threads && config.readers.iter().any(|r| !r.trim().starts_with("sim:")) {
        // GnuTLS sets the flag. Refusing would leave PC/SC readers unusable there; the PC/SC
        // backend runs each connection's calls on a thread of its own (for deadlines), which
        // the module creates, not the application's threads.
        tracing::warn!(
            "C_Initialize: CKF_LIBRARY_CANT_CREATE_OS_THREADS, but the PC/SC and USB backends \
             use a thread per connection"
        );
    }
    tracing::info!("C_Initialize: readers {}", config.readers.join(", "));
    *guard = Some(Module::open(config)?);
    Ok(())
}

/// `C_Finalize`: closes every session and card; cached PINs are zeroized with the provider.
pub(crate) fn finalize() -> Result<()> {
    let mut guard = lock();
    match guard.take() {
        Some(m) if m.pid == std::process::id() => {
            drop(m);
            tracing::info!("C_Finalize");
            Ok(())
        }
        Some(other) => {
            std::mem::forget(other);
            Err(Error::NotInitialized)
        }
        None => Err(Error::NotInitialized),
    }
}

/// Whether the module is initialized in this process.
pub(crate) fn initialized() -> bool {
    lock().as_ref().is_some_and(|m| m.pid == std::process::id())
}

/// Blank-padded UTF-8 of at most `N` bytes, cut at a character boundary (PKCS#11 strings).
pub(crate) fn padded<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [b' '; N];
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    if let (Some(dst), Some(src)) = (out.get_mut(..end), s.as_bytes().get(..end)) {
        dst.copy_from_slice(src);
    }
    out
}

/// `C_GetInfo`.
pub(crate) fn info() -> Result<CK_INFO> {
    with(|_| {
        let version = |s: &str| s.parse::<u8>().unwrap_or(0);
        Ok(CK_INFO {
            cryptokiVersion: CK_VERSION { major: 3, minor: 0 },
            manufacturerID: padded("scard"),
            flags: 0,
            libraryDescription: padded("scard PKCS#11 module"),
            libraryVersion: CK_VERSION {
                major: version(env!("CARGO_PKG_VERSION_MAJOR")),
                minor: version(env!("CARGO_PKG_VERSION_MINOR")),
            },
        })
    })
}

/// `C_GetSlotList`: the readers (a NULL list looks at the readers again).
pub(crate) fn slot_list(token_present: bool, refresh: bool) -> Result<Vec<CK_SLOT_ID>> {
    with(|m| {
        if refresh {
            m.sync();
        }
        Ok(m.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !token_present || s.present)
            .map(|(i, _)| i as CK_SLOT_ID)
            .collect())
    })
}

/// `C_GetSlotInfo`.
pub(crate) fn slot_info(slot: CK_SLOT_ID) -> Result<CK_SLOT_INFO> {
    with(|m| {
        m.sync();
        let s = m.slot(slot)?;
        let mut flags = CKF_REMOVABLE_DEVICE;
        if !s.reader.starts_with("sim:") {
            flags |= CKF_HW_SLOT;
        }
        if s.present {
            flags |= CKF_TOKEN_PRESENT;
        }
        Ok(CK_SLOT_INFO {
            slotDescription: padded(&s.reader),
            manufacturerID: padded("scard"),
            flags,
            hardwareVersion: CK_VERSION::default(),
            firmwareVersion: CK_VERSION::default(),
        })
    })
}

/// `C_GetTokenInfo`.
pub(crate) fn token_info(slot: CK_SLOT_ID) -> Result<CK_TOKEN_INFO> {
    with(|m| m.token_info(slot))
}

/// `C_GetMechanismList`.
pub(crate) fn mechanism_list(slot: CK_SLOT_ID) -> Result<Vec<CK_MECHANISM_TYPE>> {
    with(|m| Ok(mechanisms::list(&m.token(slot)?.summary)))
}

/// `C_GetMechanismInfo`.
pub(crate) fn mechanism_info(
    slot: CK_SLOT_ID,
    kind: CK_MECHANISM_TYPE,
) -> Result<CK_MECHANISM_INFO> {
    with(|m| mechanisms::info(&m.token(slot)?.summary, kind))
}

/// `C_WaitForSlotEvent`: a reader or card change since the last call. Blocking waits look at
/// the readers every [`EVENT_POLL`], taking the lock only for the look, and end with
/// `CKR_CRYPTOKI_NOT_INITIALIZED` when another thread calls `C_Finalize`.
pub(crate) fn wait_for_slot_event(dont_block: bool) -> Result<CK_SLOT_ID> {
    let instance = with(|m| Ok(m.instance))?;
    loop {
        let found = {
            let mut guard = lock();
            let m = guard
                .as_mut()
                .filter(|m| m.pid == std::process::id() && m.instance == instance)
                .ok_or(Error::NotInitialized)?;
            m.poll_event()?
        };
        if let Some(slot) = found {
            return Ok(slot);
        }
        if dont_block {
            return Err(Error::NoEvent);
        }
        std::thread::sleep(EVENT_POLL);
    }
}

/// `C_OpenSession`.
pub(crate) fn open_session(slot: CK_SLOT_ID, flags: CK_FLAGS) -> Result<CK_SESSION_HANDLE> {
    with(|m| m.open_session(slot, flags))
}

/// `C_CloseSession`.
pub(crate) fn close_session(h: CK_SESSION_HANDLE) -> Result<()> {
    with(|m| {
        m.session(h)?;
        m.close_session(h);
        Ok(())
    })
}

/// `C_CloseAllSessions`.
pub(crate) fn close_all_sessions(slot: CK_SLOT_ID) -> Result<()> {
    with(|m| {
        m.slot(slot)?;
        let all: Vec<CK_SESSION_HANDLE> =
            m.sessions.iter().filter(|(_, s)| s.slot == slot).map(|(h, _)| *h).collect();
        for h in all {
            m.close_session(h);
        }
        Ok(())
    })
}

/// `C_GetSessionInfo`.
pub(crate) fn session_info(h: CK_SESSION_HANDLE) -> Result<CK_SESSION_INFO> {
    with(|m| {
        let (slot, rw) = m.session(h)?;
        let state = m.state(slot, rw);
        Ok(CK_SESSION_INFO {
            slotID: slot,
            state,
            flags: CKF_SERIAL_SESSION | if rw { CKF_RW_SESSION } else { 0 },
            ulDeviceError: 0,
        })
    })
}

/// `C_Login`.
pub(crate) fn login(h: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: Pin) -> Result<()> {
    with(|m| m.login(h, user, pin))
}

/// `C_Logout`.
pub(crate) fn logout(h: CK_SESSION_HANDLE) -> Result<()> {
    with(|m| m.logout(h))
}

/// `C_InitPIN`.
pub(crate) fn init_pin(h: CK_SESSION_HANDLE, pin: Pin) -> Result<()> {
    with(|m| m.init_pin(h, pin))
}

/// `C_SetPIN`.
pub(crate) fn set_pin(h: CK_SESSION_HANDLE, old: Pin, new: Pin) -> Result<()> {
    with(|m| m.set_pin(h, old, new))
}

/// `C_GetAttributeValue`: one value per asked type.
pub(crate) fn attribute_values(
    h: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    types: &[CK_ATTRIBUTE_TYPE],
) -> Result<Vec<AttrValue>> {
    with(|m| {
        let (slot, _) = m.session(h)?;
        let obj = m.object(slot, object)?;
        Ok(types.iter().map(|t| obj.attribute(*t)).collect())
    })
}

/// `C_GetObjectSize`.
pub(crate) fn object_size(h: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> Result<usize> {
    with(|m| {
        let (slot, _) = m.session(h)?;
        Ok(match &m.object(slot, object)?.body {
            ObjectBody::Token(t) => t.size(),
            ObjectBody::Session { key, .. } => key.value.len(),
        })
    })
}

/// `C_FindObjectsInit`.
pub(crate) fn find_init(h: CK_SESSION_HANDLE, template: Template) -> Result<()> {
    with(|m| m.find_init(h, &template))
}

/// `C_FindObjects`.
pub(crate) fn find(h: CK_SESSION_HANDLE, max: usize) -> Result<Vec<CK_OBJECT_HANDLE>> {
    with(|m| {
        m.session(h)?;
        let s = m.sessions.get_mut(&h).ok_or(Error::SessionHandleInvalid(h))?;
        let found = s.find.as_mut().ok_or(Error::OperationNotInitialized)?;
        let n = max.min(found.len());
        Ok(found.drain(..n).collect())
    })
}

/// `C_FindObjectsFinal`.
pub(crate) fn find_final(h: CK_SESSION_HANDLE) -> Result<()> {
    with(|m| {
        m.session(h)?;
        let s = m.sessions.get_mut(&h).ok_or(Error::SessionHandleInvalid(h))?;
        s.find.take().map(|_| ()).ok_or(Error::OperationNotInitialized)
    })
}

/// `C_CreateObject` (certificates).
pub(crate) fn create_object(h: CK_SESSION_HANDLE, template: Template) -> Result<CK_OBJECT_HANDLE> {
    with(|m| m.create_certificate(h, &template))
}

/// `C_DestroyObject`.
pub(crate) fn destroy_object(h: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> Result<()> {
    with(|m| m.destroy_object(h, object))
}

/// `C_GenerateKeyPair`: (public, private).
pub(crate) fn generate_key_pair(
    h: CK_SESSION_HANDLE,
    mech: Mechanism,
    public: Template,
    private: Template,
) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
    with(|m| m.generate_key_pair(h, &mech, &public, &private))
}

/// `C_DeriveKey`.
pub(crate) fn derive_key(
    h: CK_SESSION_HANDLE,
    mech: Mechanism,
    base: CK_OBJECT_HANDLE,
    template: Template,
) -> Result<CK_OBJECT_HANDLE> {
    with(|m| m.derive_key(h, &mech, base, &template))
}

/// `C_SignInit` (`None`: end the active signature, PKCS#11 3.0 §5.13).
pub(crate) fn sign_init(
    h: CK_SESSION_HANDLE,
    mech: Option<Mechanism>,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    with(|m| m.sign_init(h, mech, key))
}

/// `C_Sign`.
pub(crate) fn sign(h: CK_SESSION_HANDLE, data: &[u8], out: Out) -> Result<Produced> {
    with(|m| m.sign(h, Some(data), out))
}

/// `C_SignUpdate`.
pub(crate) fn sign_update(h: CK_SESSION_HANDLE, data: &[u8]) -> Result<()> {
    with(|m| m.sign_update(h, data))
}

/// `C_SignFinal`.
pub(crate) fn sign_final(h: CK_SESSION_HANDLE, out: Out) -> Result<Produced> {
    with(|m| m.sign(h, None, out))
}

/// `C_DecryptInit` (`None`: end the active decryption).
pub(crate) fn decrypt_init(
    h: CK_SESSION_HANDLE,
    mech: Option<Mechanism>,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    with(|m| m.decrypt_init(h, mech, key))
}

/// `C_Decrypt`.
pub(crate) fn decrypt(h: CK_SESSION_HANDLE, data: &[u8], out: Out) -> Result<Produced> {
    with(|m| m.decrypt(h, data, out))
}

/// A function the module does not implement, on a valid session.
pub(crate) fn unsupported_in_session(h: CK_SESSION_HANDLE, function: &'static str) -> Result<()> {
    with(|m| {
        m.session(h)?;
        Err(Error::FunctionNotSupported(function))
    })
}

/// `C_SeedRandom` / `C_GenerateRandom`: the module has no random number generator.
pub(crate) fn random(h: CK_SESSION_HANDLE) -> Result<()> {
    with(|m| {
        m.session(h)?;
        Err(Error::RandomNoRng)
    })
}

/// The last 16 characters of a serial number (`CK_TOKEN_INFO.serialNumber`).
fn short_serial(serial: &str) -> &str {
    let mut start = serial.len().saturating_sub(16);
    while !serial.is_char_boundary(start) {
        start += 1;
    }
    serial.get(start..).unwrap_or(serial)
}

/// The token label: the card model and its serial number in 32 bytes (the model is shortened
/// so the serial number stays whole).
fn token_label(model: &str, serial: &str) -> String {
    if serial.is_empty() {
        return model.to_owned();
    }
    let room = 32usize.saturating_sub(serial.len() + 1);
    let mut end = model.len().min(room);
    while !model.is_char_boundary(end) {
        end -= 1;
    }
    let model = model.get(..end).unwrap_or_default().trim_end();
    if model.is_empty() { serial.to_owned() } else { format!("{model} {serial}") }
}

/// The SO credential as the card takes it: a challenge-response admin key (PIV management
/// key, GIDS admin key) is typed in hex (spaces and colons allowed); others as they are.
fn so_value(pin_type: Option<PinType>, pin: Pin) -> Result<Pin> {
    if pin_type != Some(PinType::ChallengeResponse) {
        return Ok(pin);
    }
    let text = std::str::from_utf8(pin.expose())
        .map_err(|_| Error::PinIncorrect("the SO PIN of this card is its admin key in hex"))?;
    let bytes = scard_iso7816::hex::decode_lenient(text)
        .map_err(|_| Error::PinIncorrect("the SO PIN of this card is its admin key in hex"))?;
    Ok(Pin::new(bytes))
}

impl Module {
    /// Opens the readers of `config` (PINs only from `C_Login`: nothing is ever asked).
    fn open(config: ProviderConfig) -> Result<Self> {
        let provider = Provider::new(config, default_profiles(), Box::new(NoPinSource))?;
        let mut module = Module {
            provider,
            pid: std::process::id(),
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
            slots: Vec::new(),
            sessions: BTreeMap::new(),
            objects: BTreeMap::new(),
            next_epoch: 1,
        };
        // The provider looked at the readers just now.
        let readers = module.provider.known_readers();
        module.apply(readers);
        Ok(module)
    }

    fn new_handle(&mut self) -> CK_ULONG {
        NEXT_HANDLE.fetch_add(1, Ordering::Relaxed) as CK_ULONG
    }

    fn slot(&self, slot: CK_SLOT_ID) -> Result<&SlotState> {
        usize::try_from(slot).ok().and_then(|i| self.slots.get(i)).ok_or(Error::SlotIdInvalid(slot))
    }

    fn reader(&self, slot: CK_SLOT_ID) -> Result<String> {
        Ok(self.slot(slot)?.reader.clone())
    }

    fn token(&self, slot: CK_SLOT_ID) -> Result<&Token> {
        let s = self.slot(slot)?;
        match (&s.token, s.present) {
            (Some(t), _) => Ok(t),
            (None, true) => Err(KspError::UnrecognizedCard {
                reader: s.reader.clone(),
                reason: s.problem.clone().unwrap_or_else(|| "no profile knows it".into()),
            }
            .into()),
            (None, false) => Err(Error::TokenNotPresent(slot)),
        }
    }

    fn token_mut(&mut self, slot: CK_SLOT_ID) -> Result<&mut Token> {
        let s = usize::try_from(slot)
            .ok()
            .and_then(|i| self.slots.get_mut(i))
            .ok_or(Error::SlotIdInvalid(slot))?;
        s.token.as_mut().ok_or(Error::TokenNotPresent(slot))
    }

    /// Looks at the readers: new readers get a slot, cards that went away (or were swapped)
    /// end their token (sessions, session objects, login, object handles).
    fn sync(&mut self) {
        let readers = self.provider.readers();
        self.apply(readers);
    }

    /// Takes `readers` as what the readers hold now (see [`Module::sync`]).
    fn apply(&mut self, readers: Vec<scard_ksp::ReaderState>) {
        let mut seen = vec![false; self.slots.len()];
        for r in readers {
            let i = match self.slots.iter().position(|s| s.reader == r.name) {
                Some(i) => i,
                None => {
                    self.slots.push(SlotState {
                        reader: r.name.clone(),
                        present: false,
                        problem: None,
                        token: None,
                    });
                    seen.push(false);
                    self.slots.len() - 1
                }
            };
            if let Some(flag) = seen.get_mut(i) {
                *flag = true;
            }
            let epoch = self.next_epoch;
            let Some(slot) = self.slots.get_mut(i) else { continue };
            slot.present = r.card_present;
            slot.problem = r.problem.clone();
            match (r.card, &mut slot.token) {
                (Some(card), Some(t)) if t.summary.card_id == card.card_id => t.summary = card,
                (Some(card), token) => {
                    tracing::info!("{}: token {} (epoch {epoch})", slot.reader, card.label);
                    *token = Some(Token {
                        epoch,
                        summary: card,
                        login: Login::Public,
                        user_tries_max: 3,
                        so_tries_max: 3,
                        loaded: BTreeMap::new(),
                    });
                    self.next_epoch += 1;
                }
                (None, token) => *token = None,
            }
        }
        for (slot, seen) in self.slots.iter_mut().zip(seen) {
            if !seen {
                slot.present = false;
                slot.token = None;
            }
        }
        self.drop_stale();
    }

    /// Ends the sessions and objects of tokens that are gone.
    fn drop_stale(&mut self) {
        let live: Vec<(CK_SLOT_ID, u64)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.token.as_ref().map(|t| (i as CK_SLOT_ID, t.epoch)))
            .collect();
        let alive = |slot: CK_SLOT_ID, epoch: u64| live.contains(&(slot, epoch));
        let before = self.sessions.len();
        self.sessions.retain(|_, s| alive(s.slot, s.epoch));
        if self.sessions.len() != before {
            tracing::info!(
                "{} session(s) closed: their token went away",
                before - self.sessions.len()
            );
        }
        let sessions = &self.sessions;
        self.objects.retain(|_, o| {
            alive(o.slot, o.epoch)
                && match &o.body {
                    ObjectBody::Session { owner, .. } => sessions.contains_key(owner),
                    ObjectBody::Token(_) => true,
                }
        });
    }

    /// A provider error; a card found gone ends its token.
    fn ksp<R>(&mut self, result: scard_ksp::Result<R>) -> Result<R> {
        match result {
            Ok(v) => Ok(v),
            Err(e) => {
                if matches!(e.kind(), ErrorKind::CardRemoved | ErrorKind::NoCard) {
                    self.sync();
                }
                Err(e.into())
            }
        }
    }

    /// A session's slot and read-write flag, if the session exists and its token is there.
    fn session(&mut self, h: CK_SESSION_HANDLE) -> Result<(CK_SLOT_ID, bool)> {
        let (slot, epoch, rw) = match self.sessions.get(&h) {
            Some(s) => (s.slot, s.epoch, s.rw),
            None => return Err(Error::SessionHandleInvalid(h)),
        };
        match self.token(slot) {
            Ok(t) if t.epoch == epoch => Ok((slot, rw)),
            _ => {
                self.close_session(h);
                Err(Error::SessionHandleInvalid(h))
            }
        }
    }

    fn state(&self, slot: CK_SLOT_ID, rw: bool) -> CK_STATE {
        let login = self.token(slot).map(|t| &t.login);
        match (rw, login) {
            (false, Ok(Login::User)) => CKS_RO_USER_FUNCTIONS,
            (false, _) => CKS_RO_PUBLIC_SESSION,
            (true, Ok(Login::User)) => CKS_RW_USER_FUNCTIONS,
            (true, Ok(Login::So(_))) => CKS_RW_SO_FUNCTIONS,
            (true, _) => CKS_RW_PUBLIC_SESSION,
        }
    }

    /// Whether private objects are visible: someone (the user, or the SO) is logged in. The
    /// private objects are the private keys, whose secrets never leave the card anyway; the
    /// SO sees the keys it generates (as with OpenSC). Operations with them still need the
    /// user's PIN.
    fn private_visible(&self, slot: CK_SLOT_ID) -> bool {
        self.token(slot).is_ok_and(|t| !matches!(t.login, Login::Public))
    }

    /// An object the sessions of `slot` can see (private ones only after a login).
    fn object(&self, slot: CK_SLOT_ID, h: CK_OBJECT_HANDLE) -> Result<&Object> {
        let epoch = self.token(slot)?.epoch;
        let user = self.private_visible(slot);
        self.objects
            .get(&h)
            .filter(|o| o.slot == slot && o.epoch == epoch && (user || !o.private()))
            .ok_or(Error::ObjectHandleInvalid(h))
    }

    /// A private key on the card, for an operation.
    fn private_key(
        &self,
        slot: CK_SLOT_ID,
        h: CK_OBJECT_HANDLE,
        what: &'static str,
    ) -> Result<Arc<Key>> {
        let obj = self.object(slot, h).map_err(|_| Error::KeyHandleInvalid(h))?;
        match &obj.body {
            ObjectBody::Token(TokenObject { class: TokenClass::PrivateKey, key }) => {
                Ok(Arc::clone(key))
            }
            ObjectBody::Token(TokenObject { class: TokenClass::Certificate, .. }) => {
                Err(Error::KeyHandleInvalid(h))
            }
            _ => Err(Error::KeyFunctionNotPermitted(what)),
        }
    }

    /// Reads the card's keys again and gives each object a handle (the same handle while
    /// the container holds the same key or certificate).
    fn load_objects(&mut self, slot: CK_SLOT_ID) -> Result<()> {
        let reader = self.reader(slot)?;
        let epoch = self.token(slot)?.epoch;
        let result = self.provider.keys_on(&reader);
        let keys = self.ksp(result)?;
        self.install(slot, epoch, &keys, None);
        let token = self.token_mut(slot)?;
        let all = u8::try_from(token.summary.max_containers).unwrap_or(u8::MAX);
        token.loaded = (0..all).map(|i| (i, true)).collect();
        Ok(())
    }

    /// Loads the objects of one container, once per token (a search that names a `CKA_ID`
    /// reads no other container: a PIV card reads that key's certificate object only, or
    /// nothing when an earlier process kept it). `certificate: false` (a search for keys)
    /// leaves the container's certificate object for a later search.
    fn load_container(&mut self, slot: CK_SLOT_ID, index: u8, certificate: bool) -> Result<()> {
        let token = self.token(slot)?;
        if token.loaded.get(&index).is_some_and(|with| *with || !certificate) {
            return Ok(());
        }
        let (reader, epoch) = (self.reader(slot)?, token.epoch);
        let result = self.provider.key_at(&reader, index, certificate);
        let key = self.ksp(result)?;
        self.install(slot, epoch, key.as_slice(), Some(index));
        self.token_mut(slot)?.loaded.insert(index, certificate);
        Ok(())
    }

    /// Makes the token objects of `keys` (all of the token's, or those of container `only`)
    /// the token's, keeping the handles of objects that did not change.
    fn install(
        &mut self,
        slot: CK_SLOT_ID,
        epoch: u64,
        keys: &[scard_ksp::KeyInfo],
        only: Option<u8>,
    ) {
        let mut wanted = Vec::new();
        for info in keys {
            // CKA_SIGN follows the provider's usage: the card was asked whether it signs
            // with the key when the key was listed.
            let key = Arc::new(Key::from(info));
            if key.certificate.is_some() {
                wanted.push(TokenObject { class: TokenClass::Certificate, key: Arc::clone(&key) });
            }
            if key.public_key.is_some() {
                wanted.push(TokenObject { class: TokenClass::PublicKey, key: Arc::clone(&key) });
            }
            wanted.push(TokenObject { class: TokenClass::PrivateKey, key });
        }
        let mut old: Vec<(CK_OBJECT_HANDLE, objects::Identity)> = self
            .objects
            .iter()
            .filter(|(_, o)| o.slot == slot && o.epoch == epoch)
            .filter_map(|(h, o)| match &o.body {
                ObjectBody::Token(t) if only.is_none_or(|i| i == t.key.container) => {
                    Some((*h, t.identity()))
                }
                _ => None,
            })
            .collect();
        for t in wanted {
            let id = t.identity();
            let handle = match old.iter().position(|(_, i)| *i == id) {
                Some(p) => old.remove(p).0,
                None => self.new_handle(),
            };
            self.objects.insert(handle, Object { slot, epoch, body: ObjectBody::Token(t) });
        }
        for (gone, _) in old {
            self.objects.remove(&gone);
        }
    }

    /// The token's object of `class` in `container`.
    fn object_in(
        &self,
        slot: CK_SLOT_ID,
        container: u8,
        class: TokenClass,
    ) -> Option<CK_OBJECT_HANDLE> {
        let epoch = self.token(slot).ok()?.epoch;
        self.objects.iter().find_map(|(h, o)| match &o.body {
            ObjectBody::Token(t)
                if o.slot == slot
                    && o.epoch == epoch
                    && t.class == class
                    && t.key.container == container =>
            {
                Some(*h)
            }
            _ => None,
        })
    }

    fn token_info(&mut self, slot: CK_SLOT_ID) -> Result<CK_TOKEN_INFO> {
        self.sync();
        let reader = self.reader(slot)?;
        self.token(slot)?;
        // What the card told already: no VERIFY is sent only to count the tries left.
        let pins = match self.provider.pin_info_known(&reader) {
            Ok(p) => p,
            Err(err) => {
                // The token info is still given (without PIN lengths and counts); a card
                // found gone ends its token here.
                tracing::debug!("{reader}: PIN information: {err}");
                let _ = self.ksp::<()>(Err(err));
                self.token(slot)?;
                Vec::new()
            }
        };
        let sessions: Vec<&Session> = self.sessions.values().filter(|s| s.slot == slot).collect();
        let (count, rw_count) = (sessions.len(), sessions.iter().filter(|s| s.rw).count());
        let token = self.token_mut(slot)?;
        let user = pins.iter().find(|p| p.id == PinId::USER);
        let so = pins.iter().find(|p| p.id == PinId::ADMIN);
        let mut flags = CKF_TOKEN_INITIALIZED;
        if user.is_some() {
            flags |= CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED;
        }
        if token.summary.read_only {
            flags |= CKF_WRITE_PROTECTED;
        }
        let tries_flags = |info: Option<&PinInfo>, max: &mut u8, low, last, locked| {
            let Some(t) = info.and_then(|p| p.tries_left) else { return 0 };
            *max = (*max).max(t);
            match t {
                0 => locked,
                1 => low | last,
                t if t < *max => low,
                _ => 0,
            }
        };
        flags |= tries_flags(
            user,
            &mut token.user_tries_max,
            CKF_USER_PIN_COUNT_LOW,
            CKF_USER_PIN_FINAL_TRY,
            CKF_USER_PIN_LOCKED,
        );
        flags |= tries_flags(
            so,
            &mut token.so_tries_max,
            CKF_SO_PIN_COUNT_LOW,
            CKF_SO_PIN_FINAL_TRY,
            CKF_SO_PIN_LOCKED,
        );
        let summary = &token.summary;
        let serial = short_serial(&summary.serial);
        Ok(CK_TOKEN_INFO {
            label: padded(&token_label(&summary.model, serial)),
            manufacturerID: padded(&format!("scard ({})", summary.family)),
            model: padded(&summary.model),
            serialNumber: padded(serial),
            flags,
            ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
            ulSessionCount: count as CK_ULONG,
            ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
            ulRwSessionCount: rw_count as CK_ULONG,
            ulMaxPinLen: user.map_or(0, |p| p.max_len as CK_ULONG),
            ulMinPinLen: user.map_or(0, |p| p.min_len as CK_ULONG),
            ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
            hardwareVersion: CK_VERSION::default(),
            firmwareVersion: CK_VERSION::default(),
            utcTime: padded(""),
        })
    }

    fn poll_event(&mut self) -> Result<Option<CK_SLOT_ID>> {
        let result = self.provider.wait_event(Duration::ZERO);
        let Some(event) = self.ksp(result)? else { return Ok(None) };
        tracing::info!("slot event: {event:?}");
        self.sync();
        let reader = event.reader().to_owned();
        let i = match self.slots.iter().position(|s| s.reader == reader) {
            Some(i) => i,
            None => {
                // A reader that went away before the look: it still gets (and keeps) a slot.
                self.slots.push(SlotState { reader, present: false, problem: None, token: None });
                self.slots.len() - 1
            }
        };
        Ok(Some(i as CK_SLOT_ID))
    }

    fn open_session(&mut self, slot: CK_SLOT_ID, flags: CK_FLAGS) -> Result<CK_SESSION_HANDLE> {
        if flags & CKF_SERIAL_SESSION == 0 {
            return Err(Error::SessionParallelNotSupported);
        }
        if self.slot(slot).is_ok_and(|s| s.token.is_none()) {
            self.sync();
        }
        let rw = flags & CKF_RW_SESSION != 0;
        let token = self.token(slot)?;
        if !rw && matches!(token.login, Login::So(_)) {
            return Err(Error::SessionReadWriteSoExists);
        }
        if rw && token.summary.read_only {
            return Err(KspError::Card(scard_minidriver::CardError::ReadOnly {
                model: token.summary.model.clone(),
            })
            .into());
        }
        let epoch = token.epoch;
        let h = self.new_handle();
        self.sessions.insert(h, Session { slot, epoch, rw, find: None, op: None });
        tracing::debug!("session {h} opened on slot {slot} ({})", if rw { "RW" } else { "RO" });
        Ok(h)
    }

    /// Closes a session, its session objects, and (for the token's last session) the login.
    fn close_session(&mut self, h: CK_SESSION_HANDLE) {
        let Some(s) = self.sessions.remove(&h) else { return };
        self.objects
            .retain(|_, o| !matches!(o.body, ObjectBody::Session { owner, .. } if owner == h));
        let last = !self.sessions.values().any(|o| o.slot == s.slot && o.epoch == s.epoch);
        if last
            && self
                .token(s.slot)
                .is_ok_and(|t| t.epoch == s.epoch && !matches!(t.login, Login::Public))
        {
            // PKCS#11 3.0 §5.6: closing the last session logs the token out.
            if let Err(err) = self.end_login(s.slot) {
                tracing::debug!("logout with the last session: {err}");
            }
        }
    }

    /// Logs the token out (the provider forgets the PIN) and ends what needed the login.
    fn end_login(&mut self, slot: CK_SLOT_ID) -> Result<()> {
        let reader = self.reader(slot)?;
        let token = self.token_mut(slot)?;
        let pin = match std::mem::replace(&mut token.login, Login::Public) {
            Login::Public => return Err(Error::UserNotLoggedIn("nobody is logged in")),
            Login::User => PinId::USER,
            Login::So(_) => PinId::ADMIN,
        };
        for s in self.sessions.values_mut().filter(|s| s.slot == slot) {
            s.op = None;
            s.find = None;
        }
        let result = self.provider.logout(&reader, pin);
        self.ksp(result)
    }

    fn login(&mut self, h: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: Pin) -> Result<()> {
        let (slot, _) = self.session(h)?;
        let reader = self.reader(slot)?;
        match user {
            CKU_CONTEXT_SPECIFIC => {
                let s = self.sessions.get(&h).ok_or(Error::SessionHandleInvalid(h))?;
                let name = match &s.op {
                    Some(op) => op.key().name.clone(),
                    None => return Err(Error::OperationNotInitialized),
                };
                let result = self.provider.authorize_key(&name, pin);
                self.ksp(result)?;
                if let Some(op) = self.sessions.get_mut(&h).and_then(|s| s.op.as_mut()) {
                    op.authorize();
                }
                Ok(())
            }
            CKU_USER | CKU_SO => {
                match self.token(slot)?.login {
                    Login::User if user == CKU_USER => return Err(Error::UserAlreadyLoggedIn),
                    Login::So(_) if user == CKU_SO => return Err(Error::UserAlreadyLoggedIn),
                    Login::User | Login::So(_) => return Err(Error::UserAnotherAlreadyLoggedIn),
                    Login::Public => {}
                }
                if user == CKU_USER {
                    let result = self.provider.login(&reader, PinId::USER, Some(pin));
                    self.ksp(result)?;
                    self.token_mut(slot)?.login = Login::User;
                } else {
                    if self.sessions.values().any(|s| s.slot == slot && !s.rw) {
                        return Err(Error::SessionReadOnlyExists);
                    }
                    let result = self.provider.pin_info_known(&reader);
                    let pins = self.ksp(result)?;
                    let kind = pins.iter().find(|p| p.id == PinId::ADMIN).map(|p| p.pin_type);
                    let value = so_value(kind, pin)?;
                    let result = self.provider.login(&reader, PinId::ADMIN, Some(value.clone()));
                    self.ksp(result)?;
                    self.token_mut(slot)?.login = Login::So(value);
                }
                tracing::info!(
                    "{reader}: {} logged in",
                    if user == CKU_USER { "user" } else { "SO" }
                );
                Ok(())
            }
            other => Err(Error::UserTypeInvalid(other)),
        }
    }

    fn logout(&mut self, h: CK_SESSION_HANDLE) -> Result<()> {
        let (slot, _) = self.session(h)?;
        self.end_login(slot)
    }

    /// Runs a write with the provider; when the card wants the admin credential again (after
    /// a reset) and the SO is logged in, it is presented once more and the write repeated.
    fn write<R>(
        &mut self,
        slot: CK_SLOT_ID,
        mut op: impl FnMut(&mut Provider) -> scard_ksp::Result<R>,
    ) -> Result<R> {
        let first = op(&mut self.provider);
        let again = match (&first, &self.token(slot)?.login) {
            (Err(KspError::PinNeeded { pin, .. }), Login::So(value)) if *pin == PinId::ADMIN => {
                Some(value.clone())
            }
            _ => None,
        };
        let Some(value) = again else { return self.ksp(first) };
        let reader = self.reader(slot)?;
        let result = self.provider.login(&reader, PinId::ADMIN, Some(value));
        self.ksp(result)?;
        let second = op(&mut self.provider);
        self.ksp(second)
    }

    fn init_pin(&mut self, h: CK_SESSION_HANDLE, pin: Pin) -> Result<()> {
        let (slot, rw) = self.session(h)?;
        let so = match &self.token(slot)?.login {
            Login::So(value) if rw => value.clone(),
            _ => return Err(Error::UserNotLoggedIn("C_InitPIN needs the SO logged in")),
        };
        let reader = self.reader(slot)?;
        let result = self.provider.pin_info_known(&reader);
        let pins = self.ksp(result)?;
        let admin_unblocks = pins
            .iter()
            .find(|p| p.id == PinId::USER)
            .is_some_and(|p| p.unblock_permission.contains(PinId::ADMIN));
        if !admin_unblocks {
            return Err(Error::FunctionNotSupported(
                "C_InitPIN on a card whose admin cannot reset the user PIN (PIV: only the PUK \
                 does; use C_SetPIN(PUK, new PIN) in a session nobody is logged in to while the \
                 PIN is blocked)",
            ));
        }
        let result = self.provider.unblock_pin(&reader, PinId::USER, Some(so), Some(pin));
        self.ksp(result)
    }

    fn set_pin(&mut self, h: CK_SESSION_HANDLE, old: Pin, new: Pin) -> Result<()> {
        let (slot, rw) = self.session(h)?;
        if !rw {
            return Err(Error::SessionReadOnly);
        }
        let reader = self.reader(slot)?;
        match &self.token(slot)?.login {
            Login::So(_) => {
                let result = self.provider.pin_info_known(&reader);
                let pins = self.ksp(result)?;
                let kind = pins.iter().find(|p| p.id == PinId::ADMIN).map(|p| p.pin_type);
                let (old, new) = (so_value(kind, old)?, so_value(kind, new)?);
                let result =
                    self.provider.change_pin(&reader, PinId::ADMIN, Some(old), Some(new.clone()));
                self.ksp(result)?;
                self.token_mut(slot)?.login = Login::So(new);
                Ok(())
            }
            Login::User => {
                let result = self.provider.change_pin(&reader, PinId::USER, Some(old), Some(new));
                self.ksp(result)
            }
            Login::Public => {
                // Nobody logged in: the user PIN is changed; while it is blocked, the old
                // value is the unblock code (PIV PUK, OpenPGP resetting code) and the PIN is
                // unblocked (OpenSC's "set_pin_in_unlogged_session" unblock style).
                let result = self.provider.pin_info(&reader);
                let pins = self.ksp(result)?;
                let blocked = pins
                    .iter()
                    .find(|p| p.id == PinId::USER)
                    .is_some_and(|p| p.tries_left == Some(0));
                let result = if blocked {
                    tracing::info!("{reader}: the user PIN is blocked: C_SetPIN unblocks it");
                    self.provider.unblock_pin(&reader, PinId::USER, Some(old), Some(new))
                } else {
                    self.provider.change_pin(&reader, PinId::USER, Some(old), Some(new))
                };
                self.ksp(result)
            }
        }
    }

    fn find_init(
        &mut self,
        h: CK_SESSION_HANDLE,
        template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<()> {
        let (slot, _) = self.session(h)?;
        if self.sessions.get(&h).is_some_and(|s| s.find.is_some()) {
            return Err(Error::OperationActive);
        }
        // A search for one container's objects (a CKA_ID that names a container) reads that
        // container alone, once per token; any other search reads the card's keys again
        // (the card may have changed under another application; cheap while its cardcf
        // counters are unchanged).
        let max = self.token(slot)?.summary.max_containers;
        let container = objects::find(template, CKA_ID)
            .and_then(objects::container_of_id)
            .filter(|i| usize::from(*i) < max);
        match container {
            Some(index) => {
                let keys_only = matches!(
                    objects::find_ulong(template, CKA_CLASS),
                    Ok(Some(CKO_PRIVATE_KEY | CKO_PUBLIC_KEY))
                );
                self.load_container(slot, index, !keys_only)?;
            }
            None => self.load_objects(slot)?,
        }
        let epoch = self.token(slot)?.epoch;
        let user = self.private_visible(slot);
        let found: VecDeque<CK_OBJECT_HANDLE> = self
            .objects
            .iter()
            .filter(|(_, o)| o.slot == slot && o.epoch == epoch && (user || !o.private()))
            .filter(|(_, o)| objects::matches(template, |t| o.attribute(t)))
            .map(|(h, _)| *h)
            .collect();
        if let Some(s) = self.sessions.get_mut(&h) {
            s.find = Some(found);
        }
        Ok(())
    }

    fn create_certificate(
        &mut self,
        h: CK_SESSION_HANDLE,
        t: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<CK_OBJECT_HANDLE> {
        let (slot, rw) = self.session(h)?;
        let class =
            objects::find_ulong(t, CKA_CLASS)?.ok_or(Error::TemplateIncomplete(CKA_CLASS))?;
        if class != CKO_CERTIFICATE {
            return Err(Error::AttributeValueInvalid(CKA_CLASS));
        }
        for (ty, _) in t {
            let known = matches!(
                *ty,
                CKA_CLASS
                    | CKA_CERTIFICATE_TYPE
                    | CKA_TOKEN
                    | CKA_PRIVATE
                    | CKA_VALUE
                    | CKA_ID
                    | CKA_LABEL
                    | CKA_SUBJECT
                    | CKA_ISSUER
                    | CKA_SERIAL_NUMBER
                    | CKA_TRUSTED
                    | CKA_CERTIFICATE_CATEGORY
                    | CKA_CHECK_VALUE
                    | CKA_START_DATE
                    | CKA_END_DATE
                    | CKA_URL
                    | CKA_MODIFIABLE
                    | CKA_COPYABLE
                    | CKA_DESTROYABLE
                    | CKA_JAVA_MIDP_SECURITY_DOMAIN
                    | CKA_HASH_OF_SUBJECT_PUBLIC_KEY
                    | CKA_HASH_OF_ISSUER_PUBLIC_KEY
                    | CKA_NAME_HASH_ALGORITHM
            );
            if !known {
                return Err(Error::AttributeTypeInvalid(*ty));
            }
        }
        match objects::find_ulong(t, CKA_CERTIFICATE_TYPE)? {
            Some(CKC_X_509) => {}
            Some(_) => return Err(Error::AttributeValueInvalid(CKA_CERTIFICATE_TYPE)),
            None => return Err(Error::TemplateIncomplete(CKA_CERTIFICATE_TYPE)),
        }
        // Certificates live on the card and are public.
        if objects::find_bool(t, CKA_TOKEN)? == Some(false) {
            return Err(Error::TemplateInconsistent(CKA_TOKEN));
        }
        if objects::find_bool(t, CKA_PRIVATE)? == Some(true) {
            return Err(Error::TemplateInconsistent(CKA_PRIVATE));
        }
        if objects::find_bool(t, CKA_TRUSTED)? == Some(true) {
            return Err(Error::TemplateInconsistent(CKA_TRUSTED));
        }
        let der = objects::find(t, CKA_VALUE).ok_or(Error::TemplateIncomplete(CKA_VALUE))?.to_vec();
        {
            use der::Decode;
            x509_cert::Certificate::from_der(&der)
                .map_err(|_| Error::AttributeValueInvalid(CKA_VALUE))?;
        }
        let id = objects::find(t, CKA_ID).ok_or(Error::TemplateIncomplete(CKA_ID))?;
        let max = self.token(slot)?.summary.max_containers;
        let index = objects::container_of_id(id)
            .filter(|i| usize::from(*i) < max)
            .ok_or(Error::AttributeValueInvalid(CKA_ID))?;
        if !rw {
            return Err(Error::SessionReadOnly);
        }
        let reader = self.reader(slot)?;
        self.write(slot, |p| p.import_certificate_at(&reader, index, &der, OpFlags::silent()))?;
        self.load_objects(slot)?;
        self.object_in(slot, index, TokenClass::Certificate)
            .ok_or(Error::AttributeValueInvalid(CKA_VALUE))
    }

    fn destroy_object(&mut self, h: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> Result<()> {
        let (slot, rw) = self.session(h)?;
        let (class, key) = match &self.object(slot, object)?.body {
            ObjectBody::Session { .. } => {
                self.objects.remove(&object);
                return Ok(());
            }
            ObjectBody::Token(t) => (t.class, Arc::clone(&t.key)),
        };
        if !rw {
            return Err(Error::SessionReadOnly);
        }
        let name = key.name.clone();
        match class {
            TokenClass::Certificate => {
                self.write(slot, |p| p.delete_certificate(&name, OpFlags::silent()))?
            }
            // The public and private objects are one key on the card: both go.
            TokenClass::PublicKey | TokenClass::PrivateKey => {
                self.write(slot, |p| p.delete_key(&name, OpFlags::silent()))?
            }
        }
        self.load_objects(slot)
    }

    fn generate_key_pair(
        &mut self,
        h: CK_SESSION_HANDLE,
        mech: &Mechanism,
        public: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
        private: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
        let (slot, rw) = self.session(h)?;
        let summary = self.token(slot)?.summary.clone();
        if !matches!(mech.kind, CKM_RSA_PKCS_KEY_PAIR_GEN | CKM_EC_KEY_PAIR_GEN)
            || !mechanisms::list(&summary).contains(&mech.kind)
        {
            return Err(Error::MechanismInvalid(mech.kind));
        }
        if mech.params != MechParams::None {
            return Err(Error::MechanismParamInvalid("key pair generation takes no parameter"));
        }
        let rsa = mech.kind == CKM_RSA_PKCS_KEY_PAIR_GEN;
        let key_type = if rsa { CKK_RSA } else { CKK_EC };
        check_key_template(public, CKO_PUBLIC_KEY, key_type)?;
        check_key_template(private, CKO_PRIVATE_KEY, key_type)?;
        let algorithm = if rsa {
            let bits = objects::find_ulong(public, CKA_MODULUS_BITS)?
                .ok_or(Error::TemplateIncomplete(CKA_MODULUS_BITS))?;
            let alg = u16::try_from(bits)
                .map(KeyAlgorithm::Rsa)
                .map_err(|_| Error::KeySizeRange(bits))?;
            if !summary.algorithms.contains(&alg) {
                return Err(Error::KeySizeRange(bits));
            }
            // The cards generate with e = 65537 (FIPS 186-4 §B.3.1).
            if let Some(e) = objects::find(public, CKA_PUBLIC_EXPONENT) {
                let e: Vec<u8> = e.iter().copied().skip_while(|b| *b == 0).collect();
                if e != [1, 0, 1] {
                    return Err(Error::TemplateInconsistent(CKA_PUBLIC_EXPONENT));
                }
            }
            alg
        } else {
            let params = objects::find(public, CKA_EC_PARAMS)
                .or_else(|| objects::find(private, CKA_EC_PARAMS))
                .ok_or(Error::TemplateIncomplete(CKA_EC_PARAMS))?;
            let curve = objects::curve_of_params(params)
                .filter(|c| *c != Curve::P521)
                .ok_or(Error::CurveNotSupported("P-256 and P-384 (by OID) are supported"))?;
            let alg = KeyAlgorithm::Ec(curve);
            if !summary.algorithms.contains(&alg) {
                return Err(Error::CurveNotSupported("the card does not take this curve"));
            }
            alg
        };
        let pub_id = objects::find(public, CKA_ID);
        let priv_id = objects::find(private, CKA_ID);
        if let (Some(a), Some(b)) = (pub_id, priv_id) {
            if a != b {
                return Err(Error::TemplateInconsistent(CKA_ID));
            }
        }
        // A CKA_ID that names a container (one byte, index + 1) chooses it; any other
        // CKA_ID (a hash some applications use) leaves the choice to the card: the first
        // free container. The key's CKA_ID is then its container's.
        let container = pub_id
            .or(priv_id)
            .and_then(objects::container_of_id)
            .filter(|i| usize::from(*i) < summary.max_containers);
        if !rw {
            return Err(Error::SessionReadOnly);
        }
        let reader = self.reader(slot)?;
        let info =
            self.write(slot, |p| p.generate_key(&reader, container, algorithm, OpFlags::silent()))?;
        tracing::info!(
            "{reader}: {algorithm} key pair generated in container {}",
            info.container_index
        );
        self.load_objects(slot)?;
        let index = info.container_index;
        let private_h = self
            .object_in(slot, index, TokenClass::PrivateKey)
            .ok_or(Error::Ksp(KspError::KeyNotFound { name: info.name.clone() }))?;
        let public_h = self.object_in(slot, index, TokenClass::PublicKey).unwrap_or(private_h);
        Ok((public_h, private_h))
    }

    fn derive_key(
        &mut self,
        h: CK_SESSION_HANDLE,
        mech: &Mechanism,
        base: CK_OBJECT_HANDLE,
        t: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<CK_OBJECT_HANDLE> {
        let (slot, _) = self.session(h)?;
        if mech.kind != CKM_ECDH1_DERIVE {
            return Err(Error::MechanismInvalid(mech.kind));
        }
        let key = self.private_key(slot, base, "derive")?;
        let KeyAlgorithm::Ec(curve) = key.algorithm else {
            return Err(Error::KeyTypeInconsistent { mechanism: mech.kind, key_type: CKK_RSA });
        };
        if !key.usage.agree {
            return Err(Error::KeyFunctionNotPermitted("derive (it is not an ECDH key)"));
        }
        let peer = mechanisms::ecdh_peer(mech, curve)?;
        for (ty, _) in t {
            let known = matches!(
                *ty,
                CKA_CLASS
                    | CKA_KEY_TYPE
                    | CKA_TOKEN
                    | CKA_PRIVATE
                    | CKA_VALUE_LEN
                    | CKA_SENSITIVE
                    | CKA_EXTRACTABLE
                    | CKA_LABEL
                    | CKA_ID
                    | CKA_ALLOWED_MECHANISMS
                    | CKA_MODIFIABLE
                    | CKA_COPYABLE
                    | CKA_DESTROYABLE
                    | CKA_START_DATE
                    | CKA_END_DATE
                    | CKA_WRAP_WITH_TRUSTED
            ) || SECRET_USAGE.contains(ty);
            if !known {
                return Err(Error::AttributeTypeInvalid(*ty));
            }
        }
        if objects::find_ulong(t, CKA_CLASS)?.is_some_and(|c| c != CKO_SECRET_KEY) {
            return Err(Error::TemplateInconsistent(CKA_CLASS));
        }
        let key_type = objects::find_ulong(t, CKA_KEY_TYPE)?.unwrap_or(CKK_GENERIC_SECRET);
        if key_type != CKK_GENERIC_SECRET && key_type != CKK_AES {
            return Err(Error::TemplateInconsistent(CKA_KEY_TYPE));
        }
        // The derived key lives in the module's memory only.
        if objects::find_bool(t, CKA_TOKEN)? == Some(true) {
            return Err(Error::TemplateInconsistent(CKA_TOKEN));
        }
        let value_len = objects::find_ulong(t, CKA_VALUE_LEN)?;
        let name = key.name.clone();
        let result = self.provider.agree(&name, &peer, OpFlags::silent());
        let secret = self.ksp(result)?;
        let full = secret.expose();
        // CKA_VALUE_LEN keeps the leading bytes of the shared secret (x).
        let len = match value_len {
            None => full.len(),
            Some(n) => usize::try_from(n)
                .ok()
                .filter(|n| *n > 0 && *n <= full.len())
                .ok_or(Error::TemplateInconsistent(CKA_VALUE_LEN))?,
        };
        let value = Zeroizing::new(full.get(..len).unwrap_or(full).to_vec());
        let usage = SECRET_USAGE
            .iter()
            .filter_map(|a| objects::find_bool(t, *a).ok().flatten().map(|v| (*a, v)))
            .collect();
        let session_key = SessionKey {
            value,
            key_type,
            sensitive: objects::find_bool(t, CKA_SENSITIVE)?.unwrap_or(true),
            extractable: objects::find_bool(t, CKA_EXTRACTABLE)?.unwrap_or(false),
            private: objects::find_bool(t, CKA_PRIVATE)?.unwrap_or(true),
            label: objects::find(t, CKA_LABEL).map(<[u8]>::to_vec).unwrap_or_default(),
            id: objects::find(t, CKA_ID).map(<[u8]>::to_vec).unwrap_or_default(),
            usage,
            allowed: objects::find(t, CKA_ALLOWED_MECHANISMS).map(<[u8]>::to_vec),
        };
        let epoch = self.token(slot)?.epoch;
        let handle = self.new_handle();
        self.objects.insert(
            handle,
            Object { slot, epoch, body: ObjectBody::Session { owner: h, key: session_key } },
        );
        Ok(handle)
    }

    /// The session's slot, with no crypto operation active (or `OperationActive`).
    fn idle_session(&mut self, h: CK_SESSION_HANDLE) -> Result<CK_SLOT_ID> {
        let (slot, _) = self.session(h)?;
        if self.sessions.get(&h).is_some_and(|s| s.op.is_some()) {
            return Err(Error::OperationActive);
        }
        Ok(slot)
    }

    fn sign_init(
        &mut self,
        h: CK_SESSION_HANDLE,
        mech: Option<Mechanism>,
        key_h: CK_OBJECT_HANDLE,
    ) -> Result<()> {
        let Some(mech) = mech else {
            self.session(h)?;
            if let Some(s) = self.sessions.get_mut(&h) {
                if matches!(s.op, Some(Op::Sign(_))) {
                    s.op = None;
                }
            }
            return Ok(());
        };
        let slot = self.idle_session(h)?;
        let key = self.private_key(slot, key_h, "sign")?;
        let sign_mech = SignMech::parse(&mech, key.algorithm)?;
        if !key.usage.sign {
            return Err(Error::KeyFunctionNotPermitted("sign"));
        }
        // What the card can do is checked now, without a PIN.
        let (hash, padding, data) = sign_mech.probe(key.algorithm);
        let request = SignRequest { hash, padding, data: &data };
        let result = self.provider.check_sign(&key.name, &request);
        let size = self.ksp(result)?;
        let op = SignOp {
            acc: Accumulator::new(sign_mech, key.algorithm),
            key,
            mech: sign_mech,
            updated: false,
            size,
            authorized: false,
        };
        if let Some(s) = self.sessions.get_mut(&h) {
            s.op = Some(Op::Sign(op));
        }
        Ok(())
    }

    fn take_op(&mut self, h: CK_SESSION_HANDLE) -> Result<(CK_SLOT_ID, Op)> {
        let (slot, _) = self.session(h)?;
        let op = self.sessions.get_mut(&h).and_then(|s| s.op.take());
        op.map(|op| (slot, op)).ok_or(Error::OperationNotInitialized)
    }

    fn put_op(&mut self, h: CK_SESSION_HANDLE, op: Op) {
        if let Some(s) = self.sessions.get_mut(&h) {
            s.op = Some(op);
        }
    }

    fn sign_update(&mut self, h: CK_SESSION_HANDLE, data: &[u8]) -> Result<()> {
        let (_, op) = self.take_op(h)?;
        let Op::Sign(mut op) = op else {
            self.put_op(h, op);
            return Err(Error::OperationNotInitialized);
        };
        // An error ends the operation (PKCS#11 3.0 §5.13: C_SignUpdate).
        op.acc.update(data)?;
        op.updated = true;
        self.put_op(h, Op::Sign(op));
        Ok(())
    }

    /// `C_Sign` (`data`) or `C_SignFinal` (`None`).
    fn sign(&mut self, h: CK_SESSION_HANDLE, data: Option<&[u8]>, out: Out) -> Result<Produced> {
        let (_, op) = self.take_op(h)?;
        let Op::Sign(op) = op else {
            self.put_op(h, op);
            return Err(Error::OperationNotInitialized);
        };
        if data.is_some() && op.updated {
            // C_Sign cannot finish a multi-part signature; the operation stays.
            self.put_op(h, Op::Sign(op));
            return Err(Error::OperationActive);
        }
        let key = Arc::clone(&op.key);
        let (hash, padding, input) = match data {
            Some(d) => op.mech.request(key.algorithm, key.public_key.as_ref(), d)?,
            None => op.mech.request_from(
                key.algorithm,
                key.public_key.as_ref(),
                op.acc.clone().finish(),
            )?,
        };
        match out {
            Out::Query => {
                let size = op.size;
                self.put_op(h, Op::Sign(op));
                return Ok(Produced::Len(size));
            }
            Out::Buffer(cap) if cap < op.size => {
                let size = op.size;
                self.put_op(h, Op::Sign(op));
                return Ok(Produced::TooSmall(size));
            }
            Out::Buffer(_) => {}
        }
        if key.always_authenticate && !op.authorized {
            return Err(Error::UserNotLoggedIn(
                "CKA_ALWAYS_AUTHENTICATE: C_Login(CKU_CONTEXT_SPECIFIC) after C_SignInit",
            ));
        }
        let request = SignRequest { hash, padding, data: &input };
        let result = self.provider.sign(&key.name, &request, OpFlags::silent());
        let signature = self.ksp(result)?;
        Ok(Produced::Data(Zeroizing::new(signature)))
    }

    fn decrypt_init(
        &mut self,
        h: CK_SESSION_HANDLE,
        mech: Option<Mechanism>,
        key_h: CK_OBJECT_HANDLE,
    ) -> Result<()> {
        let Some(mech) = mech else {
            self.session(h)?;
            if let Some(s) = self.sessions.get_mut(&h) {
                if matches!(s.op, Some(Op::Decrypt(_))) {
                    s.op = None;
                }
            }
            return Ok(());
        };
        let slot = self.idle_session(h)?;
        let key = self.private_key(slot, key_h, "decrypt")?;
        let padding = mechanisms::decrypt_padding(&mech, key.algorithm)?;
        if !key.usage.decrypt {
            return Err(Error::KeyFunctionNotPermitted("decrypt"));
        }
        let result = self.provider.check_decrypt(&key.name, &padding, None);
        let k = self.ksp(result)?;
        if let Some(s) = self.sessions.get_mut(&h) {
            s.op =
                Some(Op::Decrypt(DecryptOp { key, padding, k, authorized: false, pending: None }));
        }
        Ok(())
    }

    fn decrypt(&mut self, h: CK_SESSION_HANDLE, data: &[u8], out: Out) -> Result<Produced> {
        let (_, op) = self.take_op(h)?;
        let Op::Decrypt(mut op) = op else {
            self.put_op(h, op);
            return Err(Error::OperationNotInitialized);
        };
        if data.is_empty() || data.len() > op.k {
            return Err(Error::EncryptedDataLenRange { len: data.len(), k: op.k });
        }
        // A plaintext from the previous call with this ciphertext (its buffer was too small).
        let pending = op.pending.take().filter(|(input, _)| input.as_slice() == data);
        let plaintext = match (pending, out) {
            (Some((input, plain)), Out::Buffer(cap)) if cap < plain.len() => {
                let len = plain.len();
                op.pending = Some((input, plain));
                self.put_op(h, Op::Decrypt(op));
                return Ok(Produced::TooSmall(len));
            }
            (Some((input, plain)), Out::Query) => {
                let len = plain.len();
                op.pending = Some((input, plain));
                self.put_op(h, Op::Decrypt(op));
                return Ok(Produced::Len(len));
            }
            (Some((_, plain)), Out::Buffer(_)) => return Ok(Produced::Data(plain)),
            // The most a decryption gives, without the card or a PIN.
            (None, Out::Query) => {
                let k = op.k;
                self.put_op(h, Op::Decrypt(op));
                return Ok(Produced::Len(k));
            }
            (None, Out::Buffer(cap)) if cap < op.k && op.padding == DecryptPadding::None => {
                let k = op.k;
                self.put_op(h, Op::Decrypt(op));
                return Ok(Produced::TooSmall(k));
            }
            (None, Out::Buffer(_)) => {
                if op.key.always_authenticate && !op.authorized {
                    return Err(Error::UserNotLoggedIn(
                        "CKA_ALWAYS_AUTHENTICATE: C_Login(CKU_CONTEXT_SPECIFIC) after C_DecryptInit",
                    ));
                }
                let result =
                    self.provider.decrypt(&op.key.name, &op.padding, data, OpFlags::silent());
                let secret = self.ksp(result)?;
                Zeroizing::new(secret.expose().to_vec())
            }
        };
        match out {
            Out::Buffer(cap) if cap < plaintext.len() => {
                let len = plaintext.len();
                op.pending = Some((data.to_vec(), plaintext));
                self.put_op(h, Op::Decrypt(op));
                Ok(Produced::TooSmall(len))
            }
            _ => Ok(Produced::Data(plaintext)),
        }
    }
}

/// The attributes a key pair template may hold (others: `CKR_ATTRIBUTE_TYPE_INVALID`), and
/// the values that cannot be honoured (a session key, an extractable or non-sensitive
/// private key, a private public key). Usage flags are accepted and the key's usage is the
/// card's for the container (PIV 9A signs, 9D decrypts or derives, ...).
fn check_key_template(
    t: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    class: CK_OBJECT_CLASS,
    key_type: CK_KEY_TYPE,
) -> Result<()> {
    for (ty, _) in t {
        let common = matches!(
            *ty,
            CKA_CLASS
                | CKA_KEY_TYPE
                | CKA_TOKEN
                | CKA_PRIVATE
                | CKA_LABEL
                | CKA_ID
                | CKA_SUBJECT
                | CKA_START_DATE
                | CKA_END_DATE
                | CKA_MODIFIABLE
                | CKA_COPYABLE
                | CKA_DESTROYABLE
                | CKA_DERIVE
                | CKA_ALLOWED_MECHANISMS
                | CKA_EC_PARAMS
        );
        let side = if class == CKO_PUBLIC_KEY {
            matches!(
                *ty,
                CKA_MODULUS_BITS
                    | CKA_PUBLIC_EXPONENT
                    | CKA_VERIFY
                    | CKA_ENCRYPT
                    | CKA_VERIFY_RECOVER
                    | CKA_WRAP
                    | CKA_TRUSTED
            )
        } else {
            matches!(
                *ty,
                CKA_SENSITIVE
                    | CKA_EXTRACTABLE
                    | CKA_SIGN
                    | CKA_DECRYPT
                    | CKA_SIGN_RECOVER
                    | CKA_UNWRAP
                    | CKA_ALWAYS_AUTHENTICATE
                    | CKA_WRAP_WITH_TRUSTED
                    | CKA_PUBLIC_EXPONENT
            )
        };
        if !common && !side {
            return Err(Error::AttributeTypeInvalid(*ty));
        }
    }
    if objects::find_ulong(t, CKA_CLASS)?.is_some_and(|c| c != class) {
        return Err(Error::TemplateInconsistent(CKA_CLASS));
    }
    if objects::find_ulong(t, CKA_KEY_TYPE)?.is_some_and(|k| k != key_type) {
        return Err(Error::TemplateInconsistent(CKA_KEY_TYPE));
    }
    if objects::find_bool(t, CKA_TOKEN)? == Some(false) {
        return Err(Error::TemplateInconsistent(CKA_TOKEN));
    }
    let private = objects::find_bool(t, CKA_PRIVATE)?;
    if class == CKO_PUBLIC_KEY && private == Some(true) {
        return Err(Error::TemplateInconsistent(CKA_PRIVATE));
    }
    if class == CKO_PRIVATE_KEY {
        if private == Some(false) {
            return Err(Error::TemplateInconsistent(CKA_PRIVATE));
        }
        if objects::find_bool(t, CKA_SENSITIVE)? == Some(false) {
            return Err(Error::TemplateInconsistent(CKA_SENSITIVE));
        }
        if objects::find_bool(t, CKA_EXTRACTABLE)? == Some(true) {
            return Err(Error::TemplateInconsistent(CKA_EXTRACTABLE));
        }
    }
    Ok(())
}

/// Initializes the module over `readers` without the environment (the C boundary's tests).
#[cfg(test)]
pub(crate) fn initialize_for_tests(readers: &[&str]) -> Result<()> {
    let config = ProviderConfig {
        readers: readers.iter().map(|r| (*r).to_owned()).collect(),
        ..ProviderConfig::default()
    };
    let module = Module::open(config)?;
    let mut guard = lock();
    drop(guard.take());
    *guard = Some(module);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_blank_padded_and_cut_at_characters() {
        assert_eq!(&padded::<8>("abc"), b"abc     ");
        assert_eq!(&padded::<4>("abcdef"), b"abcd");
        // "é" is two bytes: it does not fit in the last byte.
        assert_eq!(&padded::<4>("abcé"), b"abc ");
    }

    #[test]
    fn labels_keep_the_serial_number() {
        assert_eq!(
            token_label("OpenPGP card 3.x (ZeitControl V3.4)", "FFFF254E9FB2"),
            "OpenPGP card 3.x (Z FFFF254E9FB2"
        );
        assert_eq!(token_label("PIV", ""), "PIV");
        let serial = short_serial("40004556D2195C6C830EBDFAE681D28E");
        assert_eq!(serial, "830EBDFAE681D28E");
        assert_eq!(token_label("scard simulated PIV", serial), "scard simulated 830EBDFAE681D28E");
        assert!(token_label("scard simulated PIV", serial).len() <= 32);
    }

    #[test]
    fn key_templates_are_checked() {
        let ok = vec![
            (CKA_CLASS, objects::ulong(CKO_PRIVATE_KEY)),
            (CKA_TOKEN, objects::bool_value(true)),
            (CKA_SIGN, objects::bool_value(true)),
            (CKA_ID, vec![1]),
        ];
        assert!(check_key_template(&ok, CKO_PRIVATE_KEY, CKK_EC).is_ok());
        let extractable = vec![(CKA_EXTRACTABLE, objects::bool_value(true))];
        assert_eq!(
            check_key_template(&extractable, CKO_PRIVATE_KEY, CKK_EC).unwrap_err().rv(),
            CKR_TEMPLATE_INCONSISTENT
        );
        let session = vec![(CKA_TOKEN, objects::bool_value(false))];
        assert_eq!(
            check_key_template(&session, CKO_PUBLIC_KEY, CKK_RSA).unwrap_err().rv(),
            CKR_TEMPLATE_INCONSISTENT
        );
        let unknown = vec![(CKA_VALUE, vec![1, 2])];
        assert_eq!(
            check_key_template(&unknown, CKO_PUBLIC_KEY, CKK_RSA).unwrap_err().rv(),
            CKR_ATTRIBUTE_TYPE_INVALID
        );
        let bad_bool = vec![(CKA_TOKEN, vec![1, 0])];
        assert_eq!(
            check_key_template(&bad_bool, CKO_PUBLIC_KEY, CKK_RSA).unwrap_err().rv(),
            CKR_ATTRIBUTE_VALUE_INVALID
        );
        let wrong_type = vec![(CKA_KEY_TYPE, objects::ulong(CKK_RSA))];
        assert_eq!(
            check_key_template(&wrong_type, CKO_PUBLIC_KEY, CKK_EC).unwrap_err().rv(),
            CKR_TEMPLATE_INCONSISTENT
        );
    }

    #[test]
    fn so_values_of_admin_keys_are_hex() {
        let key =
            so_value(Some(PinType::ChallengeResponse), Pin::new(b"01:02 0A".to_vec())).unwrap();
        assert_eq!(key.expose(), &[1, 2, 10]);
        assert_eq!(
            so_value(Some(PinType::ChallengeResponse), Pin::new(b"xyz".to_vec())).unwrap_err().rv(),
            CKR_PIN_INCORRECT
        );
        let pw3 = so_value(Some(PinType::AlphaNumeric), Pin::new(b"12345678".to_vec())).unwrap();
        assert_eq!(pw3.expose(), b"12345678");
    }
}
