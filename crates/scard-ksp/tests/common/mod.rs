//! Shared rig of the provider tests: simulated cards (scard-sim) in in-process `sim:` readers,
//! wrapped to count what they receive and to lose their security state on demand; a backend
//! wrapper whose connections can report a reset before a chosen command (as a connection
//! does when another application reset the card); a PIN source that logs every request.
#![allow(dead_code, unreachable_pub)]
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scard_ksp::{
    ManualClock, PinPrompt, PinRequest, Provider, ProviderConfig, default_profiles, pin_callback,
};
use scard_minidriver::{CardModule, Pin, PinId, PublicKey};
use scard_sim::{Family, SimRng};
use scard_transport::virtual_card::{VirtualBackend, VirtualCard};
use scard_transport::{
    Backend, CardTransport, Disposition, Protocol, ReaderEvent, ReaderInfo, ReaderName, Registry,
    ShareMode, TransportError,
};

pub const PIN: &str = "123456";
pub const PIV_MGMT: &str = "010203040506070801020304050607080102030405060708";
pub const OPENPGP_ADMIN: &str = "12345678";

pub const PIV: &str = "sim:piv";
pub const OPENPGP: &str = "sim:openpgp";
pub const GIDS: &str = "sim:gids";

/// What a wrapped card saw, and a switch to make it lose its security state.
#[derive(Clone, Default)]
pub struct Probe {
    /// VERIFY commands with data (PIN presentations; a bare VERIFY only asks tries left).
    pub verifies: Arc<AtomicUsize>,
    /// Every command.
    pub apdus: Arc<AtomicUsize>,
    /// When set, the card resets its volatile state (verified PINs) before the next command
    /// and selects its application again by itself: a reset nobody was told about.
    pub lose_auth: Arc<AtomicBool>,
}

impl Probe {
    pub fn verifies(&self) -> usize {
        self.verifies.load(Ordering::SeqCst)
    }
}

struct Wrapped {
    card: Box<dyn scard_sim::Card>,
    probe: Probe,
    last_select: Option<Vec<u8>>,
}

impl VirtualCard for Wrapped {
    fn atr(&self) -> Vec<u8> {
        self.card.atr().to_vec()
    }
    fn power_on(&mut self) {
        self.card.power_on();
    }
    fn reset(&mut self) {
        self.card.reset();
    }
    fn power_off(&mut self) {
        self.card.power_off();
    }
    fn process(&mut self, command: &[u8]) -> Vec<u8> {
        if self.probe.lose_auth.swap(false, Ordering::SeqCst) {
            self.card.reset();
            if let Some(select) = &self.last_select {
                let _ = self.card.process(select);
            }
        }
        self.probe.apdus.fetch_add(1, Ordering::SeqCst);
        if command.get(1) == Some(&0x20) && command.len() > 5 {
            self.probe.verifies.fetch_add(1, Ordering::SeqCst);
        }
        if command.get(1) == Some(&0xA4) && command.get(2) == Some(&0x04) {
            self.last_select = Some(command.to_vec());
        }
        self.card.process(command)
    }
}

/// Connections that report a reset before a chosen instruction (`count` times), after
/// resetting the card through themselves (so only the notice is seen).
#[derive(Clone, Default)]
pub struct ResetHook {
    pub ins: Arc<Mutex<Option<(u8, usize)>>>,
    pub fired: Arc<AtomicUsize>,
}

impl ResetHook {
    pub fn arm(&self, ins: u8, count: usize) {
        *self.ins.lock().unwrap() = Some((ins, count));
    }
    fn take(&self, ins: u8) -> bool {
        let mut guard = self.ins.lock().unwrap();
        match guard.as_mut() {
            Some((want, n)) if *want == ins && *n > 0 => {
                *n -= 1;
                if *n == 0 {
                    *guard = None;
                }
                self.fired.fetch_add(1, Ordering::SeqCst);
                true
            }
            _ => false,
        }
    }
}

struct Hooked {
    inner: VirtualBackend,
    hook: ResetHook,
}

impl Backend for Hooked {
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
            Box::new(HookedTransport { inner, hook: self.hook.clone() }) as Box<dyn CardTransport>
        }))
    }
    fn wait_events(&mut self, timeout: Duration) -> Result<Vec<ReaderEvent>, TransportError> {
        self.inner.wait_events(timeout)
    }
}

struct HookedTransport {
    inner: Box<dyn CardTransport>,
    hook: ResetHook,
}

impl CardTransport for HookedTransport {
    fn reader(&self) -> &str {
        self.inner.reader()
    }
    fn atr(&self) -> &[u8] {
        self.inner.atr()
    }
    fn protocol(&self) -> Protocol {
        self.inner.protocol()
    }
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        if command.get(1).is_some_and(|ins| self.hook.take(*ins)) {
            self.inner.reconnect(Disposition::Reset)?;
            return Err(TransportError::CardReset { reader: self.inner.reader().to_owned() });
        }
        self.inner.transmit(command)
    }
    fn begin_transaction(&mut self) -> Result<(), TransportError> {
        self.inner.begin_transaction()
    }
    fn end_transaction(&mut self, disposition: Disposition) -> Result<(), TransportError> {
        self.inner.end_transaction(disposition)
    }
    fn reconnect(&mut self, disposition: Disposition) -> Result<(), TransportError> {
        self.inner.reconnect(disposition)
    }
    fn disconnect(&mut self, disposition: Disposition) -> Result<(), TransportError> {
        self.inner.disconnect(disposition)
    }
    fn set_timeout(&mut self, timeout: Duration) {
        self.inner.set_timeout(timeout)
    }
}

/// Values to give, by (PIN id, what is asked); `None`: cancel.
type Values = BTreeMap<(u8, u8), Option<String>>;

/// Every PIN request, and the values given (by PIN id and what is asked).
#[derive(Clone, Default)]
pub struct Answers {
    pub log: Arc<Mutex<Vec<PinRequest>>>,
    pub values: Arc<Mutex<Values>>,
}

fn prompt_code(p: PinPrompt) -> u8 {
    match p {
        PinPrompt::Current => 0,
        PinPrompt::New => 1,
        _ => 2,
    }
}

impl Answers {
    /// The sim cards' defaults: user PIN 123456; admin: the PIV management key (hex) for a
    /// challenge-response admin, else the OpenPGP PW3.
    pub fn defaults() -> Self {
        let a = Answers::default();
        a.set(PinId::USER, PinPrompt::Current, Some(PIN));
        a
    }
    pub fn set(&self, pin: PinId, prompt: PinPrompt, value: Option<&str>) {
        self.values
            .lock()
            .unwrap()
            .insert((pin.get(), prompt_code(prompt)), value.map(str::to_owned));
    }
    pub fn calls(&self) -> usize {
        self.log.lock().unwrap().len()
    }
    pub fn last(&self) -> Option<PinRequest> {
        self.log.lock().unwrap().last().cloned()
    }
    pub fn source(&self) -> Box<dyn scard_ksp::PinSource> {
        let me = self.clone();
        pin_callback(move |req: &PinRequest| {
            me.log.lock().unwrap().push(req.clone());
            let key = (req.pin.get(), prompt_code(req.prompt));
            let given = me.values.lock().unwrap().get(&key).cloned();
            match given {
                Some(Some(v)) => Ok(Some(Pin::new(v.as_bytes()))),
                Some(None) => Ok(None),
                None if req.pin == PinId::ADMIN => {
                    let v = if req.pin_type == scard_minidriver::PinType::ChallengeResponse {
                        if req.reader.contains("gids") {
                            "00".repeat(24)
                        } else {
                            PIV_MGMT.to_owned()
                        }
                    } else {
                        OPENPGP_ADMIN.to_owned()
                    };
                    Ok(Some(Pin::new(v.as_bytes())))
                }
                None => Ok(Some(Pin::new(PIN.as_bytes()))),
            }
        })
    }
}

/// Simulated cards in `sim:` readers, a provider over them.
pub struct Rig {
    pub backend: VirtualBackend,
    pub probes: BTreeMap<String, Probe>,
    pub hook: ResetHook,
    pub answers: Answers,
    pub clock: ManualClock,
}

pub fn sim_card(family: Family, seed: u64) -> Box<dyn scard_sim::Card> {
    scard_sim::new_card(family, SimRng::from_seed(seed))
}

impl Rig {
    /// Cards of `families` in readers `sim:<family>`.
    pub fn new(families: &[Family]) -> Self {
        let backend = VirtualBackend::new();
        let mut probes = BTreeMap::new();
        for (i, family) in families.iter().enumerate() {
            let reader = format!("sim:{}", family.name());
            let probe = Probe::default();
            backend.insert(
                &reader,
                Box::new(Wrapped {
                    card: sim_card(*family, 100 + i as u64),
                    probe: probe.clone(),
                    last_select: None,
                }),
            );
            probes.insert(reader, probe);
        }
        Rig {
            backend,
            probes,
            hook: ResetHook::default(),
            answers: Answers::defaults(),
            clock: ManualClock::new(),
        }
    }

    pub fn probe(&self, reader: &str) -> &Probe {
        &self.probes[reader]
    }

    pub fn registry(&self) -> Registry {
        let mut registry = Registry::new();
        registry.add(Box::new(Hooked { inner: self.backend.clone(), hook: self.hook.clone() }));
        registry
    }

    pub fn config() -> ProviderConfig {
        ProviderConfig { readers: vec!["sim:*".into()], ..ProviderConfig::default() }
    }

    pub fn provider_with(&self, config: ProviderConfig) -> Provider {
        Provider::with_registry(config, self.registry(), default_profiles(), self.answers.source())
            .unwrap()
            .with_clock(Box::new(self.clock.clone()))
    }

    pub fn provider(&self) -> Provider {
        self.provider_with(Self::config())
    }

    /// Another application's connection to the card in `reader`.
    pub fn other_connection(&self, reader: &str) -> Box<dyn CardTransport> {
        let name = ReaderName::from_str(reader).unwrap();
        self.backend.clone().connect(&name, ShareMode::Shared).unwrap().unwrap()
    }

    /// Another application resets the card in `reader`.
    pub fn reset_elsewhere(&self, reader: &str) {
        self.other_connection(reader).reconnect(Disposition::Reset).unwrap();
    }

    /// Another application opens the card in `reader` with its profile.
    pub fn other_module(&self, reader: &str) -> Box<dyn CardModule> {
        default_profiles().open(self.other_connection(reader)).unwrap()
    }
}

// ----- host-side checks -------------------------------------------------------------------

pub fn verify_ecdsa(public: &PublicKey, digest: &[u8], raw: &[u8]) {
    use signature::hazmat::PrehashVerifier;
    let PublicKey::Ec { curve, point } = public else { panic!("not EC: {public:?}") };
    match curve {
        scard_minidriver::Curve::P256 => {
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
            vk.verify_prehash(digest, &p256::ecdsa::Signature::from_slice(raw).unwrap()).unwrap();
        }
        scard_minidriver::Curve::P384 => {
            let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
            vk.verify_prehash(digest, &p384::ecdsa::Signature::from_slice(raw).unwrap()).unwrap();
        }
        other => panic!("{other:?}"),
    }
}

pub fn rsa_key(public: &PublicKey) -> rsa::RsaPublicKey {
    let PublicKey::Rsa { n, e } = public else { panic!("not RSA: {public:?}") };
    rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(n), rsa::BigUint::from_bytes_be(e)).unwrap()
}

/// A certificate for `public` issued by a throwaway host CA.
pub fn certificate_for(public: &PublicKey, cn: &str) -> Vec<u8> {
    use der::{Decode, Encode};
    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::SubjectPublicKeyInfoOwned;
    use x509_cert::time::Validity;
    let spki = SubjectPublicKeyInfoOwned::from_der(&public.to_spki_der().unwrap()).unwrap();
    let ca = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let rsa = matches!(public, PublicKey::Rsa { .. });
    let profile = Profile::Leaf {
        issuer: Name::from_str("CN=scard ksp test CA").unwrap(),
        enable_key_agreement: !rsa,
        enable_key_encipherment: rsa,
    };
    let builder = CertificateBuilder::new(
        profile,
        SerialNumber::new(&[7]).unwrap(),
        Validity::from_now(Duration::from_secs(86_400)).unwrap(),
        Name::from_str(&format!("CN={cn}")).unwrap(),
        spki,
        &ca,
    )
    .unwrap();
    builder.build::<p256::ecdsa::DerSignature>().unwrap().to_der().unwrap()
}

/// A unique temporary directory, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(test: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "scard-ksp-{test}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
