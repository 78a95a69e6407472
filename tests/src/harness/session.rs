//! Stateful fuzzing of a whole card session: a profile (PIV, OpenPGP, GIDS) opened through the
//! profile registry on a simulated card of its family, driven by a sequence of operations
//! (info, verify, sign, decrypt, keygen, certificate write and delete, reset by another
//! application, removal and reinsertion) while the card's answers are mutated (truncated,
//! status word replaced, bytes flipped, inserted or appended, replaced whole, 61xx / 6Cxx out
//! of place, no answer at all, a reset of the card before it answers).
//!
//! Input layout: byte 0 is the number of operation bytes n (mod 33); bytes 1..=n are the
//! operations (low nibble the operation, high nibble its argument); the rest is the mutation
//! stream. Every answer of the card takes one byte from the stream: below 0x80 (or the stream
//! ended) the answer goes out as the card gave it, else the byte's low nibble picks a mutation
//! and the following bytes its parameters.
//!
//! Invariants (each a panic when broken):
//! - nothing panics (the profiles, the channel, the exchange engine, the parsers);
//! - the card never sees more PIN presentations than the caller made: a VERIFY with data
//!   counts unless the host was told (9000) that the card accepted this value earlier in this
//!   card session, since the last reset or insertion the reader saw (a profile may verify
//!   OpenPGP PW1 again for another use with the value the card accepted);
//! - a signature returned as a success verifies with the key the card really holds, when the
//!   container's public key is known (the session checks it with that key, as `scard sign`
//!   and the KSP do);
//! - a decryption returned as a success while no answer was mutated is the plaintext.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use scard_minidriver::{
    CardError, CardModule, Curve, DecryptPadding, HashAlg, KeyAlgorithm, Pin, PinId,
    ProfileRegistry, PublicKey, SignPadding, SignRequest,
};
use scard_sim::{Card, Family, SimRng};
use scard_transport::virtual_card::{VirtualBackend, VirtualCard};
use scard_transport::{Disposition, Registry, ShareMode};

/// The reader the card sits in.
const READER: &str = "sim:session";
/// At most this many operations per input.
const MAX_OPS: usize = 32;
/// The user PIN of every provisioned card, and a wrong one.
const USER_PIN: &[u8] = b"123456";
const WRONG_PIN: &[u8] = b"654321";
/// Admin credentials: PIV's default 3DES management key, OpenPGP's PW3, GIDS's admin key.
const PIV_MANAGEMENT_KEY: [u8; 24] =
    [1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8];
const OPENPGP_PW3: &[u8] = b"12345678";
const GIDS_ADMIN_KEY: [u8; 24] = [0; 24];

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ----- the provisioned cards, made once per process -------------------------------------------

/// A provisioned card of a family: its saved state and the public key of each container.
struct Provisioned {
    state: serde_json::Value,
    keys: Vec<Option<PublicKey>>,
    /// A certificate to write (the first container's, a real one).
    certificate: Vec<u8>,
}

fn provisioned(family: Family) -> &'static Provisioned {
    static CARDS: OnceLock<Vec<(Family, Provisioned)>> = OnceLock::new();
    let cards = CARDS.get_or_init(|| Family::ALL.into_iter().map(|f| (f, provision(f))).collect());
    cards.iter().find(|(f, _)| *f == family).map(|(_, p)| p).expect("every family")
}

/// PIV: 9A P-256 and 9D RSA 2048 with certificates. OpenPGP: signature key P-256, decryption
/// key RSA 2048, generated with the card's commands. GIDS: its personalised RSA 2048 key.
fn provision(family: Family) -> Provisioned {
    let rng = SimRng::from_seed(0x5E55_1011);
    let card: Box<dyn Card> = match family {
        Family::Piv => {
            use scard_sim::keys::KeyAlgorithm as SimAlg;
            use scard_sim::piv::{KeySlot, PivCard};
            let mut card = PivCard::new(rng);
            card.personalise(KeySlot::PIV_AUTHENTICATION, SimAlg::P256, "session 9A").unwrap();
            card.personalise(KeySlot::KEY_MANAGEMENT, SimAlg::Rsa2048, "session 9D").unwrap();
            Box::new(card)
        }
        Family::OpenPgp => {
            let mut card = scard_sim::openpgp::OpenPgpCard::new(rng);
            provision_openpgp(&mut card);
            Box::new(card)
        }
        Family::Gids => Box::new(scard_sim::gids::GidsCard::new(rng)),
    };
    let state = card.save_state();
    // The keys as a faithful session reads them.
    let shared = Arc::new(Mutex::new(Stream::default()));
    let mut session =
        Session::open(card_of(family, &state), shared).expect("a faithful card opens");
    let containers = session.card.containers().expect("containers");
    let mut keys = Vec::new();
    let mut certificate = Vec::new();
    for c in &containers {
        let key = if c.has_key() {
            session.card.container(c.index).expect("container").public_key
        } else {
            None
        };
        keys.push(key);
        if certificate.is_empty() && c.has_certificate {
            certificate =
                session.card.certificate(c.index).expect("certificate").unwrap_or_default();
        }
    }
    Provisioned { state, keys, certificate }
}

/// OpenPGP card 3.4: PW3, the signature key's attributes made P-256 (§4.4.3.10), both keys
/// generated (§7.2.14) and their fingerprints set as GnuPG does (C7, C8).
fn provision_openpgp(card: &mut scard_sim::openpgp::OpenPgpCard) {
    use sha2::Digest;
    card.power_on();
    let mut send = |ins: u8, p1: u8, p2: u8, data: &[u8]| {
        let cmd = scard_iso7816::CommandApdu::new(0, ins, p1, p2)
            .with_data(data.to_vec())
            .and_then(|c| c.with_ne(65536))
            .expect("valid");
        let answer = card.process(&cmd.to_bytes());
        assert!(answer.ends_with(&[0x90, 0x00]), "provisioning INS {ins:02X}: {answer:02X?}");
        answer
    };
    send(0xA4, 0x04, 0x00, &[0xD2, 0x76, 0x00, 0x01, 0x24, 0x01]);
    send(0x20, 0x00, 0x83, OPENPGP_PW3);
    send(0xDA, 0x00, 0xC1, &[0x13, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07]);
    for (crt, fingerprint_tag) in [(0xB6, 0xC7), (0xB8, 0xC8)] {
        let public = send(0x47, 0x80, 0x00, &[crt, 0x00]);
        let fingerprint = sha2::Sha256::digest(&public);
        send(0xDA, 0x00, fingerprint_tag, fingerprint.get(..20).expect("32 bytes"));
    }
    card.power_on();
}

fn card_of(family: Family, state: &serde_json::Value) -> Box<dyn Card> {
    let rng = SimRng::from_seed(7);
    let state = state.clone();
    match family {
        Family::Piv => Box::new(scard_sim::piv::PivCard::from_state(state, rng).expect("state")),
        Family::OpenPgp => {
            Box::new(scard_sim::openpgp::OpenPgpCard::from_state(state, rng).expect("state"))
        }
        Family::Gids => Box::new(scard_sim::gids::GidsCard::from_state(state, rng).expect("state")),
    }
}

// ----- the card with mutated answers ----------------------------------------------------------

/// The mutation stream and what the card saw.
#[derive(Default)]
struct Stream {
    bytes: Vec<u8>,
    at: usize,
    /// Answers changed so far.
    mutations: u64,
    /// VERIFY commands that presented a value the card had not accepted in this card session.
    presentations_seen: u64,
    /// Values the card accepted in this card session (cleared on reset and power-on).
    accepted: HashSet<Vec<u8>>,
}

impl Stream {
    fn next(&mut self) -> Option<u8> {
        let b = self.bytes.get(self.at).copied();
        self.at += 1;
        b
    }

    fn next_or(&mut self, default: u8) -> u8 {
        self.next().unwrap_or(default)
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let end = self.at.saturating_add(n).min(self.bytes.len());
        let out = self.bytes.get(self.at.min(end)..end).unwrap_or_default().to_vec();
        self.at = self.at.saturating_add(n);
        out
    }
}

/// A simulated card whose answers the stream mutates.
struct Mutated {
    card: Box<dyn Card>,
    stream: Arc<Mutex<Stream>>,
}

impl Mutated {
    fn session_reset(&mut self) {
        lock(&self.stream).accepted.clear();
    }
}

impl VirtualCard for Mutated {
    fn atr(&self) -> Vec<u8> {
        self.card.atr().to_vec()
    }
    fn power_on(&mut self) {
        self.card.power_on();
        self.session_reset();
    }
    fn reset(&mut self) {
        self.card.reset();
        self.session_reset();
    }
    fn power_off(&mut self) {
        self.card.power_off();
        self.session_reset();
    }
    fn process(&mut self, command: &[u8]) -> Vec<u8> {
        self.answer(command).unwrap_or_default()
    }

    fn answer(&mut self, command: &[u8]) -> Option<Vec<u8>> {
        let mut stream = lock(&self.stream);
        let control = stream.next().filter(|b| *b >= 0x80);
        if control.is_some_and(|b| b & 0x0F == 6) {
            // The card resets itself before it answers, without the reader knowing.
            self.card.reset();
        }
        let answer = self.card.process(command);
        // ISO/IEC 7816-4 §11.5.6 VERIFY with data: a PIN presentation, unless the host was
        // told (9000) that the card accepted this value earlier in this session: a profile
        // may present it again for another use (OpenPGP PW1 81 then 82).
        let verify = command.get(1) == Some(&0x20) && command.len() > 5;
        let value = command.get(5..).unwrap_or_default().to_vec();
        if verify && !stream.accepted.contains(&value) {
            stream.presentations_seen += 1;
        }
        let Some(control) = control else {
            if verify && answer.ends_with(&[0x90, 0x00]) {
                stream.accepted.insert(value);
            }
            return Some(answer);
        };
        let answer = mutate(&mut stream, control, answer);
        if let Some(answer) = &answer {
            if verify && answer.ends_with(&[0x90, 0x00]) {
                stream.accepted.insert(value);
            }
        }
        answer
    }
}

/// Mutates `answer` as `control` and the stream say; `None` is no answer at all.
fn mutate(stream: &mut Stream, control: u8, mut answer: Vec<u8>) -> Option<Vec<u8>> {
    stream.mutations += 1;
    let len = answer.len();
    match control & 0x0F {
        0 => answer.truncate(usize::from(stream.next_or(0)) % (len + 1)),
        1 => {
            let sw = stream.take(2);
            answer.truncate(len.saturating_sub(2));
            answer.extend_from_slice(&sw);
        }
        2 => {
            let at = usize::from(stream.next_or(0)) % len.max(1);
            let x = stream.next_or(1) | 1;
            if let Some(b) = answer.get_mut(at) {
                *b ^= x;
            }
        }
        3 => {
            let n = usize::from(stream.next_or(2));
            answer = stream.take(n);
        }
        4 => {
            // More data before the status word (up to 64 KiB with a big count).
            let n = usize::from(stream.next_or(1)) * usize::from(stream.next_or(1));
            let fill = stream.next_or(0x5A);
            let sw = answer.split_off(len.saturating_sub(2));
            answer.resize(answer.len() + n, fill);
            answer.extend_from_slice(&sw);
        }
        5 => return None,
        6 => {}
        7 => answer = vec![0x61, stream.next_or(0)],
        8 => answer = vec![0x6C, stream.next_or(0)],
        9 => {
            let at = usize::from(stream.next_or(0)) % (len + 1);
            let b = stream.next_or(0);
            answer.insert(at, b);
        }
        10 => {
            // Other data, the real status word.
            let n = usize::from(stream.next_or(0));
            let sw = answer.split_off(len.saturating_sub(2));
            answer = stream.take(n);
            answer.extend_from_slice(&sw);
        }
        _ => stream.mutations -= 1,
    }
    Some(answer)
}

// ----- the session ----------------------------------------------------------------------------

struct Session {
    backend: VirtualBackend,
    registry: Registry,
    card: Box<dyn CardModule>,
    stream: Arc<Mutex<Stream>>,
}

fn profiles() -> ProfileRegistry {
    let mut registry = ProfileRegistry::new();
    registry.register(scard_profile_piv::family());
    registry.register(scard_profile_openpgp::family());
    registry.register(scard_profile_gids::family());
    registry
}

impl Session {
    fn open(card: Box<dyn Card>, stream: Arc<Mutex<Stream>>) -> Result<Self, CardError> {
        let backend = VirtualBackend::new();
        backend.insert(READER, Box::new(Mutated { card, stream: Arc::clone(&stream) }));
        let mut registry = Registry::new();
        registry.add(Box::new(backend.clone()));
        let card = Self::connect(&mut registry)?;
        Ok(Self { backend, registry, card, stream })
    }

    fn connect(registry: &mut Registry) -> Result<Box<dyn CardModule>, CardError> {
        let mut transport = registry.connect(Some(READER), ShareMode::Shared)?;
        // A card that does not answer costs no time here.
        transport.set_timeout(Duration::ZERO);
        profiles().open(transport)
    }

    fn mutations(&self) -> u64 {
        lock(&self.stream).mutations
    }
}

/// What the session knows for sure about the card.
struct Truth {
    family: Family,
    /// The key each container really holds (`None`: none, or not known any more).
    keys: Vec<Option<PublicKey>>,
    /// PIN presentations the caller made.
    presentations: u64,
    /// What succeeded and was checked.
    report: Report,
}

/// What a session did that was checked: signatures verified with the card's key, decryptions
/// compared with the plaintext, keys generated.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Report {
    pub(crate) signatures: u32,
    pub(crate) decryptions: u32,
    pub(crate) keys: u32,
    pub(crate) operations: u32,
}

fn piv_like_admin(family: Family) -> Option<&'static [u8]> {
    match family {
        Family::Piv => Some(&PIV_MANAGEMENT_KEY),
        Family::Gids => Some(&GIDS_ADMIN_KEY),
        Family::OpenPgp => None,
    }
}

/// Runs one session of `family` from `data`.
pub(crate) fn run(family: Family, data: &[u8]) -> Report {
    let Some((&n, rest)) = data.split_first() else { return Report::default() };
    let n = usize::from(n) % (MAX_OPS + 1);
    let (ops, mutations) = rest.split_at(n.min(rest.len()));
    let provisioned = provisioned(family);
    let stream = Arc::new(Mutex::new(Stream { bytes: mutations.to_vec(), ..Stream::default() }));
    let mut truth = Truth {
        family,
        keys: provisioned.keys.clone(),
        presentations: 0,
        report: Report::default(),
    };
    let Ok(mut session) = Session::open(card_of(family, &provisioned.state), Arc::clone(&stream))
    else {
        return truth.report;
    };
    for &op in ops {
        truth.report.operations += 1;
        let before = session.mutations();
        let alive = step(&mut session, &mut truth, provisioned, op, before);
        let seen = lock(&stream).presentations_seen;
        assert!(
            seen <= truth.presentations,
            "{family}: the card saw {seen} PIN presentations, the caller made {} (op {op:02X})",
            truth.presentations
        );
        if !alive {
            break;
        }
    }
    truth.report
}

/// One operation; `false` when the session cannot go on (the card could not be opened again).
fn step(
    session: &mut Session,
    truth: &mut Truth,
    provisioned: &Provisioned,
    op: u8,
    mutations_before: u64,
) -> bool {
    let arg = op >> 4;
    let count = u8::try_from(truth.keys.len()).unwrap_or(u8::MAX).max(1);
    let index = arg % count;
    let card = session.card.as_mut();
    match op & 0x0F {
        // Info: what `scard info` reads.
        0 | 1 => {
            let _ = scard_minidriver::with_transaction(card, |card| {
                card.properties()?;
                card.pins()?;
                for c in card.containers()? {
                    if c.has_key() {
                        card.container(c.index)?;
                    }
                    if c.has_certificate {
                        card.certificate(c.index)?;
                    }
                }
                card.cardcf()
            });
        }
        // VERIFY of the user PIN, right or wrong.
        2 | 3 => {
            let value = if op & 1 == 0 { USER_PIN } else { WRONG_PIN };
            truth.presentations += 1;
            let _ = card.authenticate(PinId::USER, &Pin::new(value.to_vec()));
        }
        // Sign: as `scard sign` does it.
        4 | 5 => sign(card, truth, index, arg & 1 == 1),
        // Decrypt an RSA cryptogram made on the host.
        6 => decrypt(session, truth, index, mutations_before),
        // Key generation (P-256) as admin.
        7 => {
            let result = admin_write(card, truth, |card| {
                card.generate_key(index, KeyAlgorithm::Ec(Curve::P256))
            });
            let faithful = session.mutations() == mutations_before;
            if result.is_ok() {
                truth.report.keys += 1;
            }
            if let Some(slot) = truth.keys.get_mut(usize::from(index)) {
                // A key made without any mutated answer is the key; otherwise nobody knows.
                *slot = match result {
                    Ok(key) if faithful => Some(key),
                    _ => None,
                };
            }
        }
        // Certificate write and delete as admin.
        8 => {
            let der = provisioned.certificate.clone();
            let _ = admin_write(card, truth, |card| card.put_certificate(index, Some(&der)));
        }
        9 => {
            let _ = admin_write(card, truth, |card| card.put_certificate(index, None));
        }
        // Another application resets the card.
        10 | 11 => {
            if let Ok(mut other) = session.registry.connect(Some(READER), ShareMode::Shared) {
                let _ = other.reconnect(Disposition::Reset);
            }
        }
        // Removal: the session fails, then the card comes back and is opened again.
        12 => {
            let Some(removed) = session.backend.remove(READER) else { return false };
            let _ = session.card.containers();
            let _ = session.card.pins();
            session.backend.insert(READER, removed);
            match Session::connect(&mut session.registry) {
                Ok(card) => session.card = card,
                Err(_) => return false,
            }
        }
        // Deauthenticate, and the admin alone.
        13 => {
            let _ = card.deauthenticate(PinId::USER.set());
        }
        14 => {
            let _ = authenticate_admin(card, truth);
        }
        _ => {
            let _ = card.tries_left(PinId::USER);
        }
    }
    true
}

fn authenticate_admin(card: &mut dyn CardModule, truth: &mut Truth) -> Result<(), CardError> {
    match piv_like_admin(truth.family) {
        Some(key) => card.authenticate_admin_key(&Pin::new(key.to_vec())),
        None => {
            truth.presentations += 1;
            card.authenticate(PinId::ADMIN, &Pin::new(OPENPGP_PW3.to_vec()))
        }
    }
}

/// A write as admin, as `scard` does it: the admin first; when the card wants another PIN
/// for the write (GIDS), that PIN once and the write once more.
fn admin_write<R>(
    card: &mut dyn CardModule,
    truth: &mut Truth,
    mut write: impl FnMut(&mut dyn CardModule) -> Result<R, CardError>,
) -> Result<R, CardError> {
    scard_minidriver::with_transaction(card, |card| {
        authenticate_admin(card, truth)?;
        match write(card) {
            Err(CardError::AuthRequired { pin, .. }) if pin != PinId::ADMIN => {
                truth.presentations += 1;
                card.authenticate(pin, &Pin::new(USER_PIN.to_vec()))?;
                write(card)
            }
            other => other,
        }
    })
}

fn sign(card: &mut dyn CardModule, truth: &mut Truth, index: u8, pss: bool) {
    let digest = HashAlg::Sha256.digest(b"stateful fuzzing: sign this");
    let Ok(container) = card.container(index) else { return };
    let rsa = match container.algorithm {
        Some(alg) => alg.is_rsa(),
        None => matches!(container.public_key, Some(PublicKey::Rsa { .. })),
    };
    let padding = match (rsa, pss) {
        (true, true) => SignPadding::Pss { salt_len: 32 },
        (true, false) => SignPadding::Pkcs1,
        (false, _) => SignPadding::None,
    };
    let request = SignRequest { hash: Some(HashAlg::Sha256), padding, data: &digest };
    let result = scard_minidriver::with_transaction(card, |card| {
        card.check_sign(index, &request)?;
        if container.pin != PinId::EVERYONE
            && !card.channel().authenticated().contains(container.pin)
        {
            truth.presentations += 1;
            card.authenticate(container.pin, &Pin::new(USER_PIN.to_vec()))?;
        }
        let signature = card.sign(index, &request)?;
        if let Some(public) = &container.public_key {
            scard_minidriver::verify_signature(public, &request, &signature)?;
        }
        Ok(signature)
    });
    let Ok(signature) = result else { return };
    // Without a public key the session cannot check what the card signed; with one, what
    // it let through must be the real key's signature.
    if container.public_key.is_none() {
        return;
    }
    if let Some(Some(key)) = truth.keys.get(usize::from(index)) {
        if let Err(err) = scard_minidriver::verify_signature(key, &request, &signature) {
            panic!("{}: a signature returned as a success does not verify: {err}", truth.family);
        }
        truth.report.signatures += 1;
    }
}

fn decrypt(session: &mut Session, truth: &mut Truth, index: u8, mutations_before: u64) {
    let Some(Some(PublicKey::Rsa { n, e })) = truth.keys.get(usize::from(index)).cloned() else {
        return;
    };
    let Ok(key) =
        rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(&n), rsa::BigUint::from_bytes_be(&e))
    else {
        return;
    };
    let message = b"stateful fuzzing: a secret".to_vec();
    let mut rng = SimRng::from_seed(9);
    let Ok(cryptogram) = key.encrypt(&mut rng, rsa::Pkcs1v15Encrypt, &message) else { return };
    let card = session.card.as_mut();
    let result = scard_minidriver::with_transaction(card, |card| {
        let container = card.container(index)?;
        card.check_decrypt(index, &DecryptPadding::Pkcs1)?;
        if container.pin != PinId::EVERYONE
            && !card.channel().authenticated().contains(container.pin)
        {
            truth.presentations += 1;
            card.authenticate(container.pin, &Pin::new(USER_PIN.to_vec()))?;
        }
        card.decrypt(index, &DecryptPadding::Pkcs1, &cryptogram)
    });
    let faithful = session.mutations() == mutations_before;
    if let (Ok(plain), true) = (result, faithful) {
        assert_eq!(plain.expose(), message.as_slice(), "{}: a decryption is wrong", truth.family);
        truth.report.decryptions += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Faithful sessions do what they are asked: containers as provisioned, signatures
    /// verified, decryptions right, a key generated and used, across a reset and a removal.
    #[test]
    fn faithful_sessions_sign_decrypt_and_generate() {
        for (family, decrypt_index) in [(Family::Piv, 2), (Family::OpenPgp, 1), (Family::Gids, 0)] {
            let keys = &provisioned(family).keys;
            assert!(keys.first().is_some_and(Option::is_some), "{family}: {keys:?}");
            let decrypt = 0x06 | (decrypt_index << 4);
            // info, verify, sign 0, decrypt, reset, sign 0, remove, sign 0, keygen 3, sign 3,
            // certificate write and delete 3, wrong PIN.
            let ops =
                [0x00, 0x02, 0x04, decrypt, 0x0A, 0x04, 0x0C, 0x04, 0x37, 0x34, 0x38, 0x39, 0x03];
            let mut input = vec![u8::try_from(ops.len()).unwrap()];
            input.extend_from_slice(&ops);
            let report = run(family, &input);
            assert_eq!(report.operations, 13, "{family}");
            assert!(report.signatures >= 3, "{family}: {report:?}");
            assert_eq!(report.decryptions, 1, "{family}: {report:?}");
            assert_eq!(report.keys, 1, "{family}: {report:?}");
        }
    }

    /// A VERIFY answered 6Cxx is not sent again: the exchange engine once resent it with
    /// that Le, two PIN presentations for one. The 6C08 lands on each answer in turn.
    #[test]
    fn a_verify_answered_6cxx_is_not_presented_twice() {
        for family in Family::ALL {
            for k in 0..40 {
                let mut input = vec![1, 0x03];
                input.extend(std::iter::repeat_n(0x00, k));
                input.extend_from_slice(&[0x88, 0x08]);
                let _ = run(family, &input);
            }
        }
    }
}
