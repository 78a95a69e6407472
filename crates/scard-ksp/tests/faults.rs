//! Fault injection (issue 9): the card is pulled out, reset, or the transfer fails at every
//! APDU of key generation (into an empty container and replacing a key), certificate import,
//! container deletion, PIN change and signature, on every simulated card family. Afterwards a
//! new session finds the card in the old or the new consistent state, never in between:
//! - the containers (key, public key, certificate) and the cmapfile are the old or the new
//!   ones (for a key replacement also "deleted": a replacement deletes, then creates);
//! - every certificate matches its container's key, and a container the card lists with a
//!   certificate gives it;
//! - the freshness counters (`cardcf`, where the card keeps them) moved if the content moved;
//! - the PIN is the old or the new one, and no try was spent;
//! - an operation that reported success did it;
//! - the next session works: it opens the card, lists the keys, signs with every key that
//!   signs (verified on the host), and a key generated into the container the operation
//!   touched (when it is empty) comes without a stale certificate.
//!
//! The faults come from `scard_transport::faults` under the provider's connection; the cards
//! are scard-sim cards loaded from a state file for every run.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Answers, TempDir, certificate_for, rsa_key, verify_ecdsa};
use scard_ksp::{
    ErrorKind, KspError, OpFlags, PinPrompt, Provider, ProviderConfig, default_profiles,
};
use scard_minidriver::fs::decode_cmapfile;
use scard_minidriver::{
    CardCf, CardError, CardModule, Curve, FilePath, HashAlg, KeyAlgorithm, KeySpec, Pin, PinId,
    PublicKey, SignPadding, SignRequest,
};
use scard_sim::{Card, Family, SimRng};
use scard_transport::faults::{Fault, FaultHandle, Faults};
use scard_transport::virtual_card::{VirtualBackend, VirtualCard};
use scard_transport::{
    Backend, CardTransport, Disposition, ReaderEvent, ReaderInfo, ReaderName, Registry, ShareMode,
    TransportError,
};
use sha2::Digest;

const PIN: &str = "123456";
const NEW_PIN: &str = "654321";
/// The seed of every card's random numbers (each run starts from the same state and seed).
const SEED: u64 = 9;

// ----- the rig -----------------------------------------------------------------------------

/// A simulated card the test can look into while a backend holds it.
struct SharedCard(Arc<Mutex<Box<dyn Card>>>);

impl VirtualCard for SharedCard {
    fn atr(&self) -> Vec<u8> {
        self.0.lock().unwrap().atr().to_vec()
    }
    fn power_on(&mut self) {
        self.0.lock().unwrap().power_on();
    }
    fn reset(&mut self) {
        self.0.lock().unwrap().reset();
    }
    fn power_off(&mut self) {
        self.0.lock().unwrap().power_off();
    }
    fn process(&mut self, command: &[u8]) -> Vec<u8> {
        self.0.lock().unwrap().process(command)
    }
}

/// A backend whose connections carry the fault plan of `handle`.
struct FaultyBackend {
    inner: VirtualBackend,
    handle: FaultHandle,
}

impl Backend for FaultyBackend {
    fn prefix(&self) -> &'static str {
        "sim"
    }
    fn readers(&mut self) -> Result<Vec<ReaderInfo>, TransportError> {
        self.inner.readers()
    }
    fn connect(
        &mut self,
        name: &ReaderName,
        mode: ShareMode,
    ) -> Result<Option<Box<dyn CardTransport>>, TransportError> {
        Ok(self.inner.connect(name, mode)?.map(|inner| {
            Box::new(Faults::new(inner, self.handle.clone())) as Box<dyn CardTransport>
        }))
    }
    fn wait_events(&mut self, timeout: Duration) -> Result<Vec<ReaderEvent>, TransportError> {
        self.inner.wait_events(timeout)
    }
}

/// One card in one reader, with the fault plan of its connections.
struct Bench {
    reader: String,
    card: Arc<Mutex<Box<dyn Card>>>,
    backend: VirtualBackend,
    handle: FaultHandle,
    answers: Answers,
}

impl Bench {
    fn new(family: Family, card: Box<dyn Card>) -> Self {
        let reader = format!("sim:{}", family.name());
        let card = Arc::new(Mutex::new(card));
        let backend = VirtualBackend::new();
        backend.insert(&reader, Box::new(SharedCard(Arc::clone(&card))));
        let answers = Answers::defaults();
        Bench { reader, card, backend, handle: FaultHandle::new(), answers }
    }

    fn fresh(family: Family) -> Self {
        Self::new(family, scard_sim::new_card(family, SimRng::from_seed(SEED)))
    }

    fn load(family: Family, path: &Path) -> Self {
        Self::new(family, scard_sim::state::load(family, path, SimRng::from_seed(SEED)).unwrap())
    }

    fn save(&self, path: &Path) {
        scard_sim::state::save(self.card.lock().unwrap().as_ref(), path).unwrap();
    }

    /// A provider whose connections go through the fault plan.
    fn provider(&self) -> Provider {
        let mut registry = Registry::new();
        registry.add(Box::new(FaultyBackend {
            inner: self.backend.clone(),
            handle: self.handle.clone(),
        }));
        let config = ProviderConfig { readers: vec!["sim:*".into()], ..ProviderConfig::default() };
        Provider::with_registry(config, registry, default_profiles(), self.answers.source())
            .unwrap()
    }

    /// A new session without faults, straight on the card module, on the card as it is
    /// after it was taken out and put back (powered off and on: what it holds in RAM is gone).
    fn module(&self) -> Box<dyn CardModule> {
        let name: ReaderName = self.reader.parse().unwrap();
        let mut transport =
            self.backend.clone().connect(&name, ShareMode::Shared).unwrap().unwrap();
        transport.reconnect(Disposition::Unpower).unwrap();
        default_profiles().open(transport).unwrap()
    }
}

// ----- what a session sees -----------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct Slot {
    index: u8,
    name: String,
    default: bool,
    key: Option<(KeySpec, PublicKey)>,
    certificate: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq)]
struct View {
    slots: Vec<Slot>,
    /// The cmapfile's records: name, flags, signature and exchange key bits.
    cmap: Vec<(String, u8, u16, u16)>,
    /// The counters, when the card keeps them.
    cardcf: Option<CardCf>,
    /// Tries left of the user PIN, read without spending one.
    tries: Option<u8>,
    /// The user PIN the card takes.
    pin: &'static str,
}

impl View {
    fn take(bench: &Bench) -> View {
        Self::try_take(bench).unwrap_or_else(|e| panic!("a new session cannot read the card: {e}"))
    }

    fn try_take(bench: &Bench) -> Result<View, String> {
        let mut m = bench.module();
        let mut slots = Vec::new();
        let err = |what: &str, e: CardError| format!("{what}: {e}");
        for c in m.containers().map_err(|e| err("containers", e))? {
            let key = if c.has_key() {
                let info = m.container(c.index).map_err(|e| err("container", e))?;
                let public = info.public_key.clone().ok_or("a key without public key")?;
                Some((info.key_spec.ok_or("a key without key spec")?, public))
            } else {
                None
            };
            let certificate = if c.has_certificate {
                Some(m.certificate(c.index).map_err(|e| err("certificate", e))?.ok_or_else(
                    || {
                        format!(
                            "container {} is listed with a certificate it does not give",
                            c.index
                        )
                    },
                )?)
            } else {
                // A container with a key listed without a certificate holds none.
                if c.has_key()
                    && m.certificate(c.index).map_err(|e| err("certificate", e))?.is_some()
                {
                    return Err(format!(
                        "container {} is listed without a certificate and holds one",
                        c.index
                    ));
                }
                None
            };
            slots.push(Slot { index: c.index, name: c.name, default: c.default, key, certificate });
        }
        let cmap = m.read_file(&FilePath::CmapFile).map_err(|e| err("cmapfile", e))?;
        let cmap = decode_cmapfile(&cmap)
            .map_err(|e| err("cmapfile", e))?
            .into_iter()
            .map(|r| (r.name, r.flags, r.sig_key_bits, r.kx_key_bits))
            .collect();
        let cardcf = m.cardcf().map_err(|e| err("cardcf", e))?;
        let cardcf = m.freshness_on_card().then_some(cardcf);
        let tries = m.tries_left(PinId::USER).map_err(|e| err("tries left", e))?;
        drop(m);
        Ok(View { slots, cmap, cardcf, tries, pin: current_pin(bench) })
    }

    fn slot(&self, index: u8) -> Option<&Slot> {
        self.slots.iter().find(|s| s.index == index)
    }

    /// Whether this view is `expected`, where the containers in `generated` may hold any key
    /// of the expected key spec (a key generated again comes out different) under any name.
    fn matches(&self, expected: &View, generated: &[u8]) -> bool {
        if self.slots.len() != expected.slots.len() || self.cmap.len() != expected.cmap.len() {
            return false;
        }
        let slots_ok = self.slots.iter().zip(&expected.slots).all(|(a, e)| {
            if generated.contains(&e.index) && e.key.is_some() {
                a.index == e.index
                    && a.default == e.default
                    && a.certificate == e.certificate
                    && a.key.as_ref().map(|k| k.0) == e.key.as_ref().map(|k| k.0)
            } else {
                a == e
            }
        });
        let cmap_ok = self.cmap.iter().zip(&expected.cmap).enumerate().all(|(i, (a, e))| {
            let wild = u8::try_from(i).is_ok_and(|i| generated.contains(&i)) && e.1 != 0;
            if wild { (a.1, a.2, a.3) == (e.1, e.2, e.3) && !a.0.is_empty() } else { a == e }
        });
        slots_ok && cmap_ok && self.pin == expected.pin
    }

    /// The containers whose key differs from `old`'s and that hold one here.
    fn generated_since(&self, old: &View) -> Vec<u8> {
        self.slots
            .iter()
            .filter(|s| s.key.is_some() && old.slot(s.index).map(|o| &o.key) != Some(&s.key))
            .map(|s| s.index)
            .collect()
    }

    /// Containers and files (not the counters, tries and PIN).
    fn content_differs(&self, other: &View) -> bool {
        self.slots != other.slots || self.cmap != other.cmap
    }
}

fn certificate_key(der: &[u8]) -> PublicKey {
    use der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(der).unwrap();
    PublicKey::from_spki_der(&cert.tbs_certificate.subject_public_key_info.to_der().unwrap())
        .unwrap()
}

/// Which user PIN the card takes now (one wrong try at most, given back by the right one).
fn current_pin(bench: &Bench) -> &'static str {
    let mut m = bench.module();
    match m.authenticate(PinId::USER, &Pin::new(PIN)) {
        Ok(()) => PIN,
        Err(CardError::WrongPin { .. }) => {
            m.authenticate(PinId::USER, &Pin::new(NEW_PIN))
                .expect("neither the old nor the new PIN");
            NEW_PIN
        }
        Err(err) => panic!("VERIFY: {err}"),
    }
}

fn sign_and_check(p: &mut Provider, key: &scard_ksp::KeyInfo, what: &str) {
    let digest = sha2::Sha256::digest(what.as_bytes());
    let public = key.public_key.as_ref().expect("public key");
    match key.algorithm {
        KeyAlgorithm::Ec(_) => {
            let request = SignRequest {
                hash: Some(HashAlg::Sha256),
                padding: SignPadding::None,
                data: &digest,
            };
            let sig = p.sign(&key.name, &request, OpFlags::default()).unwrap();
            verify_ecdsa(public, &digest, &sig);
        }
        KeyAlgorithm::Rsa(_) => {
            let request = SignRequest {
                hash: Some(HashAlg::Sha256),
                padding: SignPadding::Pkcs1,
                data: &digest,
            };
            let sig = p.sign(&key.name, &request, OpFlags::default()).unwrap();
            rsa_key(public)
                .verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, &sig)
                .unwrap_or_else(|e| {
                    panic!("{what}: signature of {} does not verify: {e}", key.name)
                });
        }
    }
}

// ----- the operations ----------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    KeygenEmpty,
    KeygenReplace,
    CertImport,
    Delete,
    PinChange,
    Sign,
}

const OPS: [Op; 6] =
    [Op::KeygenEmpty, Op::KeygenReplace, Op::CertImport, Op::Delete, Op::PinChange, Op::Sign];

/// The prepared card of a family: container `a` holds a key and its certificate, `b` a key
/// without certificate (and `b_cert` is one for it), `e` nothing.
struct Base {
    _dir: TempDir,
    path: PathBuf,
    a: u8,
    b: u8,
    e: u8,
    b_cert: Vec<u8>,
}

/// The containers `a`, `b`, `e` of a family's sweep.
/// PIV: 9A (key and certificate), 9D (key only: a new session does not see it until its
/// certificate is there), 9E empty; or the retired 82 and 83 (whose certificates the Key
/// History object counts). OpenPGP: signature, decryption, authentication. GIDS: its
/// preloaded RSA container 0, a P-256 key in 1, 2 empty.
fn layout(family: Family, retired: bool) -> (u8, u8, u8) {
    match (family, retired) {
        (Family::Piv, false) => (0, 2, 3),
        (Family::Piv, true) => (4, 5, 3),
        _ => (0, 1, 2),
    }
}

fn prepare(family: Family, retired: bool) -> Base {
    let dir = TempDir::new(&format!("faults-{}", family.name()));
    let path = dir.0.join("card.json");
    let bench = Bench::fresh(family);
    let mut p = bench.provider();
    let p256 = KeyAlgorithm::Ec(Curve::P256);
    let reader = bench.reader.clone();
    let (a, b, e) = layout(family, retired);
    if family != Family::Gids {
        let key = p.generate_key(&reader, Some(a), p256, OpFlags::default()).unwrap();
        let cert = certificate_for(key.public_key.as_ref().unwrap(), "fault sweep A");
        p.import_certificate_at(&reader, a, &cert, OpFlags::default()).unwrap();
    }
    let key = p.generate_key(&reader, Some(b), p256, OpFlags::default()).unwrap();
    let b_cert = certificate_for(key.public_key.as_ref().unwrap(), "fault sweep B");
    drop(p);
    bench.save(&path);
    let view = View::take(&bench);
    assert!(view.slot(a).unwrap().certificate.is_some(), "{view:#?}");
    assert!(view.slot(e).is_none_or(|s| s.key.is_none()), "{view:#?}");
    Base { _dir: dir, path, a, b, e, b_cert }
}

/// The key names an operation needs, looked up before the fault is armed.
fn key_name(p: &mut Provider, reader: &str, index: u8) -> String {
    p.keys_on(reader)
        .unwrap()
        .into_iter()
        .find(|k| k.container_index == index)
        .unwrap_or_else(|| panic!("no key in container {index}"))
        .name
}

fn run(p: &mut Provider, bench: &Bench, base: &Base, op: Op, name: &str) -> Result<(), KspError> {
    let reader = bench.reader.as_str();
    let p256 = KeyAlgorithm::Ec(Curve::P256);
    match op {
        Op::KeygenEmpty => p.generate_key(reader, Some(base.e), p256, OpFlags::default()).map(drop),
        Op::KeygenReplace => {
            p.generate_key(reader, Some(base.a), p256, OpFlags::default()).map(drop)
        }
        Op::CertImport => p.import_certificate_at(reader, base.b, &base.b_cert, OpFlags::default()),
        Op::Delete => p.delete_key(name, OpFlags::default()),
        Op::PinChange => {
            p.change_pin(reader, PinId::USER, Some(Pin::new(PIN)), Some(Pin::new(NEW_PIN)))
        }
        Op::Sign => {
            let key = p.open_key(name)?;
            let digest = sha2::Sha256::digest(b"fault sweep");
            let padding =
                if key.algorithm.is_rsa() { SignPadding::Pkcs1 } else { SignPadding::None };
            let request = SignRequest { hash: Some(HashAlg::Sha256), padding, data: &digest };
            let sig = p.sign(name, &request, OpFlags::default())?;
            match key.public_key.as_ref().unwrap() {
                k @ PublicKey::Ec { .. } => verify_ecdsa(k, &digest, &sig),
                k => rsa_key(k)
                    .verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, &sig)
                    .unwrap(),
            }
            Ok(())
        }
    }
}

/// The container an operation touches.
fn target(base: &Base, op: Op) -> u8 {
    match op {
        Op::KeygenEmpty => base.e,
        Op::CertImport => base.b,
        _ => base.a,
    }
}

/// A session on the card, set up for `op` (the key name it needs), with the fault plan
/// armed by the caller afterwards.
fn session(bench: &Bench, base: &Base, op: Op) -> (Provider, String) {
    let mut p = bench.provider();
    let name = match op {
        Op::Delete | Op::Sign => key_name(&mut p, &bench.reader, base.a),
        _ => String::new(),
    };
    (p, name)
}

/// The new session after a run: it works, and finds the card consistent.
fn check_next_session(bench: &Bench, base: &Base, op: Op, after: &View, context: &str) {
    // Every certificate is its container's key's.
    for s in &after.slots {
        if let (Some((_, key)), Some(cert)) = (&s.key, &s.certificate) {
            assert_eq!(
                &certificate_key(cert),
                key,
                "{context}: container {} holds the certificate of another key",
                s.index
            );
        }
        if s.certificate.is_some() && s.key.is_none() {
            panic!("{context}: container {} has a certificate and no key", s.index);
        }
    }
    bench.answers.set(PinId::USER, PinPrompt::Current, Some(after.pin));
    let mut p = bench.provider();
    let keys = p.keys_on(&bench.reader).unwrap_or_else(|e| panic!("{context}: listing keys: {e}"));
    for key in keys.iter().filter(|k| k.usage.sign) {
        sign_and_check(&mut p, key, context);
    }
    // A key generated where the operation left nothing comes without a stale certificate.
    let index = target(base, op);
    if after.slot(index).is_none_or(|s| s.key.is_none()) {
        let key = p
            .generate_key(
                &bench.reader,
                Some(index),
                KeyAlgorithm::Ec(Curve::P256),
                OpFlags::default(),
            )
            .unwrap_or_else(|e| panic!("{context}: generating into container {index}: {e}"));
        if let Some(cert) = &key.certificate {
            assert_eq!(
                &certificate_key(cert),
                key.public_key.as_ref().unwrap(),
                "{context}: a new key in container {index} came with a stale certificate"
            );
        }
        let view = View::take(bench);
        let slot = view.slot(index).unwrap();
        assert!(slot.certificate.is_none(), "{context}: stale certificate in container {index}");
        if key.usage.sign {
            sign_and_check(&mut p, &key, context);
        }
    }
    bench.answers.set(PinId::USER, PinPrompt::Current, Some(PIN));
}

fn sweep(family: Family, retired: bool, ops: &[Op]) {
    let base = prepare(family, retired);
    let mut report = Vec::new();
    // The deletion's result: a key replacement deletes first.
    let deleted = {
        let bench = Bench::load(family, &base.path);
        let (mut p, name) = session(&bench, &base, Op::Delete);
        run(&mut p, &bench, &base, Op::Delete, &name).unwrap();
        drop(p);
        View::take(&bench)
    };
    for &op in ops {
        let (old, new, apdus) = {
            let bench = Bench::load(family, &base.path);
            let old = View::take(&bench);
            let (mut p, name) = session(&bench, &base, op);
            let start = bench.handle.seen();
            run(&mut p, &bench, &base, op, &name)
                .unwrap_or_else(|e| panic!("{family} {op:?} without a fault: {e}"));
            let apdus = bench.handle.seen() - start;
            drop(p);
            (old, View::take(&bench), apdus)
        };
        let generated = new.generated_since(&old);
        let mut accepted = vec![("old", &old), ("new", &new)];
        if op == Op::KeygenReplace {
            accepted.push(("deleted", &deleted));
        }
        let mut outcomes = std::collections::BTreeMap::<&str, usize>::new();
        for n in 1..=apdus {
            for fault in Fault::ALL {
                let bench = Bench::load(family, &base.path);
                let (mut p, name) = session(&bench, &base, op);
                bench.handle.arm(n, fault);
                let result = run(&mut p, &bench, &base, op, &name);
                let (fired, ins) = bench.handle.fired().expect("the fault fired");
                assert_eq!(fired, fault);
                drop(p);
                bench.handle.disarm();
                let context = format!(
                    "{family} {op:?}, {fault:?} at APDU {n}/{apdus} (INS {ins:02X}): {}",
                    match &result {
                        Ok(()) => "succeeded".to_owned(),
                        Err(e) => format!("failed: {e}"),
                    }
                );
                let after = View::try_take(&bench).unwrap_or_else(|e| panic!("{context}: {e}"));
                let state = accepted
                    .iter()
                    .find(|(_, v)| after.matches(v, &generated))
                    .map(|(s, _)| *s)
                    .unwrap_or_else(|| {
                        panic!("{context}: the card is in between:\n{after:#?}\nold:\n{old:#?}\nnew:\n{new:#?}")
                    });
                if result.is_ok() {
                    assert!(
                        after.matches(&new, &generated),
                        "{context}: reported success, card in its {state} state"
                    );
                }
                if let (Some(a), Some(o)) = (after.cardcf, old.cardcf) {
                    if after.content_differs(&old) {
                        assert_ne!(a, o, "{context}: the content changed, the counters did not");
                    }
                }
                assert_eq!(after.tries, old.tries, "{context}: a PIN try was spent");
                if let Err(err) = &result {
                    assert!(
                        !matches!(err.kind(), ErrorKind::PinIncorrect | ErrorKind::PinLocked),
                        "{context}: a PIN was refused"
                    );
                }
                check_next_session(&bench, &base, op, &after, &context);
                if op == Op::PinChange && after.pin == NEW_PIN {
                    if let (Some(a), Some(o)) = (after.cardcf, old.cardcf) {
                        if family == Family::Gids {
                            assert_ne!(a.pins, o.pins, "{context}: PIN changed, pins counter not");
                        }
                    }
                }
                *outcomes.entry(state).or_default() += 1;
            }
        }
        let label = if retired { format!("{family} (retired keys)") } else { family.to_string() };
        report.push(format!("{label} {op:?}: {apdus} APDUs x 4 faults: {outcomes:?}"));
    }
    println!("{}", report.join("\n"));
}

#[test]
fn fault_sweep_piv() {
    sweep(Family::Piv, false, &OPS);
}

/// Retired keys 82 and 83: the Key History object counts their certificates. (Retired keys
/// are key management keys: EC ones agree, they do not sign.)
#[test]
fn fault_sweep_piv_retired() {
    let ops: Vec<Op> = OPS.into_iter().filter(|op| *op != Op::Sign).collect();
    sweep(Family::Piv, true, &ops);
}

#[test]
fn fault_sweep_openpgp() {
    sweep(Family::OpenPgp, false, &OPS);
}

#[test]
fn fault_sweep_gids() {
    sweep(Family::Gids, false, &OPS);
}

/// A PIN change whose answer was lost may have changed the PIN: the cached value is dropped,
/// never presented again (it could be the wrong one now and cost a try).
#[test]
fn a_pin_change_with_an_unknown_outcome_drops_the_cached_pin() {
    for (fault, changed) in [(Fault::AnswerLost, true), (Fault::CommandLost, false)] {
        let base = prepare(Family::Piv, false);
        let bench = Bench::load(Family::Piv, &base.path);
        let mut p = bench.provider();
        let name = key_name(&mut p, &bench.reader, base.a);
        p.login(&bench.reader, PinId::USER, Some(Pin::new(PIN))).unwrap();
        assert!(p.is_pin_cached(&bench.reader, PinId::USER));
        // CHANGE REFERENCE DATA is the one APDU of a PIV PIN change.
        bench.handle.arm(1, fault);
        let err = p
            .change_pin(&bench.reader, PinId::USER, Some(Pin::new(PIN)), Some(Pin::new(NEW_PIN)))
            .unwrap_err();
        assert_eq!(bench.handle.fired(), Some((fault, 0x24)), "{err}");
        assert!(!p.is_pin_cached(&bench.reader, PinId::USER), "{fault:?}: {err}");
        // Another application resets the card: the PIN must be presented again, and with
        // nothing cached a silent signature asks for it instead of guessing.
        let mut other = bench.module();
        other.channel().transport().reconnect(Disposition::Reset).unwrap();
        drop(other);
        let digest = sha2::Sha256::digest(b"after the lost answer");
        let request =
            SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::None, data: &digest };
        let err = p.sign(&name, &request, OpFlags::silent()).unwrap_err();
        assert!(matches!(err, KspError::PinNeeded { .. }), "{fault:?}: {err}");
        drop(p);
        let after = View::take(&bench);
        assert_eq!(after.tries, Some(3), "{fault:?}: no try spent");
        assert_eq!(after.pin, if changed { NEW_PIN } else { PIN }, "{fault:?}");
    }
}
