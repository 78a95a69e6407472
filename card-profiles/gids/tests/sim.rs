//! The GIDS profile against scard's simulated GIDS card through the in-process transport
//! (scard-transport's `VirtualBackend`): every operation of the profile, the card's own file
//! system and its `cardcf` counters, the host file cache, PINs and the admin key, key
//! generation and import, RSA and ECC operations verified on the host with RustCrypto, what
//! is refused before the PIN, and hostile answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPublicKey};
use scard_minidriver::fs::{ContainerMapRecord, decode_cmapfile, decompress_certificate};
use scard_minidriver::{
    CardError, CardModel, CardModule, Curve, DecryptPadding, FileCache, FilePath, HashAlg,
    KeyAlgorithm, KeySpec, Pin, PinId, PinSet, ProfileRegistry, PublicKey, Secret, SignPadding,
    SignRequest, with_transaction,
};
use scard_sim::{Card, SimRng};
use scard_transport::virtual_card::{VirtualBackend, VirtualCard};
use scard_transport::{Backend, CardTransport, ReaderName, ShareMode};
use sha2::{Digest, Sha256, Sha384};
use signature::hazmat::PrehashVerifier;

const PIN: &[u8] = b"123456";
const ADMIN_KEY: [u8; 24] = [0; 24];
const READER: &str = "sim:gids";

type Tamper = Box<dyn FnMut(&[u8], Vec<u8>) -> Vec<u8> + Send>;

/// The simulated card, counting and logging the APDUs it gets, optionally answering through a
/// tampering function.
struct Wrapped {
    card: Box<dyn Card>,
    apdus: Arc<AtomicUsize>,
    log: Arc<Mutex<Vec<Vec<u8>>>>,
    tamper: Option<Tamper>,
    atr: Option<Vec<u8>>,
}

impl VirtualCard for Wrapped {
    fn atr(&self) -> Vec<u8> {
        self.atr.clone().unwrap_or_else(|| self.card.atr().to_vec())
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
        self.apdus.fetch_add(1, Ordering::SeqCst);
        self.log.lock().unwrap().push(command.to_vec());
        let answer = self.card.process(command);
        match &mut self.tamper {
            Some(t) => t(command, answer),
            None => answer,
        }
    }
}

/// A personalised card's state (one RSA 2048 container with a certificate), made once.
fn fresh_state() -> &'static serde_json::Value {
    static STATE: OnceLock<serde_json::Value> = OnceLock::new();
    STATE.get_or_init(|| scard_sim::gids::GidsCard::new(SimRng::from_seed(7)).save_state())
}

fn sim_card() -> Box<dyn Card> {
    Box::new(
        scard_sim::gids::GidsCard::from_state(fresh_state().clone(), SimRng::from_seed(8)).unwrap(),
    )
}

/// A simulated GIDS card in an in-process reader, and the profile registry.
struct Rig {
    backend: VirtualBackend,
    apdus: Arc<AtomicUsize>,
    log: Arc<Mutex<Vec<Vec<u8>>>>,
    registry: ProfileRegistry,
}

impl Rig {
    fn with(card: Box<dyn Card>, tamper: Option<Tamper>, atr: Option<Vec<u8>>) -> Rig {
        let backend = VirtualBackend::new();
        let apdus = Arc::new(AtomicUsize::new(0));
        let log = Arc::new(Mutex::new(Vec::new()));
        backend.insert(
            READER,
            Box::new(Wrapped {
                card,
                apdus: Arc::clone(&apdus),
                log: Arc::clone(&log),
                tamper,
                atr,
            }),
        );
        let mut registry = ProfileRegistry::new();
        registry.register(scard_profile_gids::family());
        Rig { backend, apdus, log, registry }
    }

    fn new() -> Rig {
        Rig::with(sim_card(), None, None)
    }

    fn transport(&self) -> Box<dyn CardTransport> {
        let name: ReaderName = READER.parse().unwrap();
        self.backend.clone().connect(&name, ShareMode::Shared).unwrap().unwrap()
    }

    /// A new session: a new connection and a new module (as another process would have).
    fn open(&self) -> Box<dyn CardModule> {
        self.registry.open(self.transport()).unwrap()
    }

    fn open_as(&self, toml: &str) -> Box<dyn CardModule> {
        let model = CardModel::from_toml("test.toml", toml).unwrap();
        self.registry.open_as(self.transport(), model).unwrap()
    }

    fn apdus(&self) -> usize {
        self.apdus.load(Ordering::SeqCst)
    }

    /// The command APDUs sent since `from`.
    fn commands_since(&self, from: usize) -> Vec<Vec<u8>> {
        self.log.lock().unwrap()[from..].to_vec()
    }
}

fn pin(value: &[u8]) -> Pin {
    Pin::new(value.to_vec())
}

fn rsa_public(key: &PublicKey) -> RsaPublicKey {
    match key {
        PublicKey::Rsa { n, e } => {
            RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e)).unwrap()
        }
        other => panic!("not RSA: {other:?}"),
    }
}

fn sign(
    card: &mut dyn CardModule,
    index: u8,
    hash: Option<HashAlg>,
    padding: SignPadding,
    data: &[u8],
) -> Result<Vec<u8>, CardError> {
    card.sign(index, &SignRequest { hash, padding, data })
}

/// A DER certificate (any key: the file system does not care).
fn some_certificate(cn: &str, seed: u64) -> Vec<u8> {
    let mut rng = SimRng::from_seed(seed);
    let key = scard_sim::keys::PrivateKey::generate(scard_sim::keys::KeyAlgorithm::P256, &mut rng)
        .unwrap();
    scard_sim::cert::self_signed(&key, cn, &rng.bytes(8)).unwrap()
}

/// Raw GET DATA of DO `do_id` in EF `fid` through the module's channel (to look at the card
/// behind the profile's back).
fn raw_do(card: &mut dyn CardModule, fid: u16, do_id: u16) -> Vec<u8> {
    let [p1, p2] = fid.to_be_bytes();
    let [t1, t2] = do_id.to_be_bytes();
    let cmd = scard_iso7816::CommandApdu::new(0x00, 0xCB, p1, p2)
        .with_data(vec![0x5C, 0x02, t1, t2])
        .unwrap()
        .with_ne(65536)
        .unwrap();
    let answer =
        card.channel().in_transaction(|ch| ch.transmit_ok("test GET DATA", &cmd, None)).unwrap();
    let (tlv, _) = scard_iso7816::tlv::ber::decode_one(
        &answer,
        scard_iso7816::tlv::ber::ParseOptions::LENIENT,
    )
    .unwrap();
    tlv.value().to_vec()
}

// ----- identification, identity, properties --------------------------------------------------

#[test]
fn opened_by_atr_or_by_probing_the_gids_application() {
    let rig = Rig::new();
    let card = rig.open();
    assert_eq!(card.model().name, "scard-sim GIDS card");
    assert_eq!(rig.apdus(), 0, "opening by ATR sends nothing");

    // An ATR no model names: SELECT of the GIDS AID finds the application, generic model.
    let rig = Rig::with(sim_card(), None, Some(vec![0x3B, 0x02, 0x14, 0x50]));
    let mut card = rig.open();
    assert_eq!(card.model().name, "GIDS 1.0 card");
    assert!(card.model().generic);
    assert_eq!(rig.apdus(), 1, "one SELECT");
    // The probe's SELECT counts for the session: the next operation does not select again.
    card.tries_left(PinId::USER).unwrap();
    assert_eq!(rig.apdus(), 2);

    // A card without the GIDS application.
    let piv = scard_sim::new_card(scard_sim::Family::Piv, SimRng::from_seed(1));
    let rig = Rig::with(piv, None, Some(vec![0x3B, 0x02, 0x14, 0x50]));
    let err = rig.registry.open(rig.transport()).unwrap_err();
    assert!(matches!(err, CardError::UnknownCard { .. }), "{err}");
}

#[test]
fn card_id_serial_and_properties_come_from_the_card() {
    let rig = Rig::new();
    let mut card = rig.open();
    let id = card.card_id().unwrap();
    // The card's own cardid file (EF A012, DO DF20).
    assert_eq!(raw_do(card.as_mut(), 0xA012, 0xDF20), id);
    assert!(id.iter().any(|&b| b != id[0]), "a real identity, not a repeated byte");
    assert_eq!(card.read_file(&FilePath::CardId).unwrap(), id);
    let props = card.properties().unwrap();
    assert_eq!(props.family, "gids");
    assert_eq!(props.card_id, id);
    assert_eq!(props.serial, scard_iso7816::hex::encode_upper(&id));
    assert_eq!((props.max_containers, props.free_containers), (126, 125));
    assert!(props.key_generation && props.certificate_compression && !props.read_only);
    assert!(props.algorithms.contains(&KeyAlgorithm::Ec(Curve::P384)));
    // Another card has another identity.
    let other =
        Rig::with(Box::new(scard_sim::gids::GidsCard::new(SimRng::from_seed(99))), None, None);
    assert_ne!(other.open().card_id().unwrap(), id);
}

// ----- the card's file system ----------------------------------------------------------------

#[test]
fn files_of_a_personalised_card() {
    let rig = Rig::new();
    let mut card = rig.open();
    assert_eq!(card.list_files(None).unwrap(), ["cardid", "cardapps", "cardcf"]);
    assert_eq!(card.list_files(Some("mscp")).unwrap(), ["cmapfile", "kxc00"]);
    assert!(matches!(card.list_files(Some("nope")), Err(CardError::FileNotFound { .. })));
    assert_eq!(card.read_file(&FilePath::CardApps).unwrap(), b"mscp\0\0\0\0");
    let cf = card.read_file(&FilePath::CardCf).unwrap();
    assert_eq!(cf.len(), 6);
    assert_eq!(cf, card.cardcf().unwrap().encode());
    // cmapfile: one 86-byte record, valid and default, a 2048-bit key-exchange key.
    let cmap = card.read_file(&FilePath::CmapFile).unwrap();
    let records = decode_cmapfile(&cmap).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].flags, records[0].kx_key_bits, records[0].sig_key_bits), (3, 2048, 0));
    // kxc00 as stored: compressed (01 00, length LE, zlib), inflating to the certificate.
    let kxc = card.read_file(&FilePath::KeyExchangeCert(0)).unwrap();
    assert_eq!(&kxc[..2], &[0x01, 0x00]);
    let der = decompress_certificate(&kxc).unwrap();
    assert_eq!(usize::from(u16::from_le_bytes([kxc[2], kxc[3]])), der.len());
    assert_eq!(card.certificate(0).unwrap().unwrap(), der);
    let info = card.file_info(&FilePath::KeyExchangeCert(0)).unwrap();
    assert_eq!((info.size, info.read_everyone, info.write_user), (kxc.len(), true, true));
    let info = card.file_info(&FilePath::CardId).unwrap();
    assert_eq!((info.size, info.read_everyone, info.write_user), (16, true, false));
    assert!(matches!(card.read_file(&FilePath::MsRoots), Err(CardError::FileNotFound { .. })));
    assert!(matches!(
        card.read_file(&FilePath::KeyExchangeCert(5)),
        Err(CardError::FileNotFound { .. })
    ));
}

#[test]
fn writes_create_and_delete_files_and_bump_cardcf_on_the_card() {
    let rig = Rig::new();
    let mut card = rig.open();
    // No write before authentication: refused without an APDU.
    let before = rig.apdus();
    let err = card.write_file(&FilePath::parse("mscp/notes").unwrap(), b"x").unwrap_err();
    assert!(matches!(err, CardError::AuthRequired { pin: PinId::USER, .. }), "{err}");
    assert_eq!(rig.apdus(), before, "refused before anything is sent");
    card.authenticate(PinId::USER, &pin(PIN)).unwrap();

    let cf0 = card.cardcf().unwrap();
    // A new file: a master-file record and a DO in EF A010.
    let notes = FilePath::parse("mscp/notes").unwrap();
    card.write_file(&notes, b"first").unwrap();
    let cf1 = card.cardcf().unwrap();
    assert_eq!((cf1.files, cf1.containers, cf1.pins), (cf0.files + 1, cf0.containers, cf0.pins));
    assert_eq!(card.read_file(&notes).unwrap(), b"first");
    assert_eq!(card.list_files(Some("mscp")).unwrap(), ["cmapfile", "kxc00", "notes"]);
    // Overwrite: the file keeps its DO, the counter moves again.
    card.write_file(&notes, b"second, longer").unwrap();
    assert_eq!(card.cardcf().unwrap().files, cf0.files + 2);
    assert_eq!(card.file_info(&notes).unwrap().size, 14);
    // A root file.
    let root = FilePath::parse("readme").unwrap();
    card.write_file(&root, &[7; 1000]).unwrap();
    assert_eq!(card.read_file(&root).unwrap(), [7; 1000]);
    assert_eq!(card.list_files(None).unwrap(), ["cardid", "cardapps", "cardcf", "readme"]);
    // A directory the card does not have.
    assert!(matches!(
        card.write_file(&FilePath::parse("other/x").unwrap(), b"x"),
        Err(CardError::FileNotFound { .. })
    ));
    // Delete: the DO is emptied, the record goes, the counter moves.
    card.delete_file(&notes).unwrap();
    assert!(matches!(card.read_file(&notes), Err(CardError::FileNotFound { .. })));
    assert_eq!(card.cardcf().unwrap().files, cf0.files + 4);
    assert!(matches!(card.delete_file(&notes), Err(CardError::FileNotFound { .. })));
    // The mandatory files stay; malformed contents are refused before anything is sent.
    assert!(matches!(card.delete_file(&FilePath::CmapFile), Err(CardError::InvalidInput { .. })));
    assert!(matches!(
        card.write_file(&FilePath::CmapFile, &[0; 85]),
        Err(CardError::InvalidInput { .. })
    ));
    assert!(matches!(
        card.write_file(&FilePath::CardId, &[0; 15]),
        Err(CardError::InvalidInput { .. })
    ));
    assert!(matches!(
        card.write_file(&FilePath::KeyExchangeCert(0), b"not a certificate"),
        Err(CardError::InvalidInput { .. })
    ));
    assert!(matches!(
        card.write_file(&root, &vec![0; 65_001]),
        Err(CardError::InvalidInput { .. })
    ));
    // cmapfile rewritten as it is: containers and files counters both move.
    let cmap = card.read_file(&FilePath::CmapFile).unwrap();
    let cf = card.cardcf().unwrap();
    card.write_file(&FilePath::CmapFile, &cmap).unwrap();
    let after = card.cardcf().unwrap();
    assert_eq!((after.files, after.containers), (cf.files + 1, cf.containers + 1));
    // cardcf written directly is stored as given.
    let mut custom = after;
    custom.files = 0x1234;
    card.write_file(&FilePath::CardCf, &custom.encode()).unwrap();
    assert_eq!(card.cardcf().unwrap(), custom);
    // cardid needs the admin key (EF A012): the user alone is refused by the card.
    let err = card.write_file(&FilePath::CardId, &[0x42; 16]).unwrap_err();
    assert!(matches!(err, CardError::AuthRequired { pin: PinId::ADMIN, .. }), "{err}");
    card.authenticate_admin_key(&pin(&ADMIN_KEY)).unwrap();
    card.write_file(&FilePath::CardId, &[0x42; 16]).unwrap();
    assert_eq!(card.card_id().unwrap(), [0x42; 16]);
    // msroots is admin-written: it goes to EF A012.
    card.write_file(&FilePath::MsRoots, b"roots").unwrap();
    let info = card.file_info(&FilePath::MsRoots).unwrap();
    assert_eq!((info.read_everyone, info.write_user), (true, false));

    // All of it is on the card: a new session sees the same counters and files.
    let expected_cf = card.cardcf().unwrap();
    drop(card);
    let mut again = rig.open();
    assert_eq!(again.cardcf().unwrap(), expected_cf);
    assert_eq!(again.read_file(&root).unwrap(), [7; 1000]);
    assert_eq!(again.card_id().unwrap(), [0x42; 16]);
    assert_eq!(again.read_file(&FilePath::MsRoots).unwrap(), b"roots");
}

#[test]
fn certificates_are_stored_compressed_and_read_back_uncompressed() {
    let rig = Rig::new();
    let mut card = rig.open();
    card.authenticate(PinId::USER, &pin(PIN)).unwrap();
    let der = some_certificate("stored by scard", 3);
    let cf = card.cardcf().unwrap();
    card.put_certificate(0, Some(&der)).unwrap();
    assert_eq!(card.cardcf().unwrap().files, cf.files + 1);
    let file = card.read_file(&FilePath::KeyExchangeCert(0)).unwrap();
    assert_eq!(&file[..4], &[0x01, 0x00, (der.len() & 0xFF) as u8, (der.len() >> 8) as u8]);
    assert!(file.len() < der.len() + 4);
    assert_eq!(card.certificate(0).unwrap().unwrap(), der);
    // DER handed to write_file is compressed too (OpenSC reads only the compressed form).
    card.write_file(&FilePath::KeyExchangeCert(0), &der).unwrap();
    assert_eq!(&card.read_file(&FilePath::KeyExchangeCert(0)).unwrap()[..2], &[0x01, 0x00]);
    // Removal: the file goes from the master file.
    card.put_certificate(0, None).unwrap();
    assert_eq!(card.certificate(0).unwrap(), None);
    assert!(!card.containers().unwrap()[0].has_certificate);
    assert_eq!(card.list_files(Some("mscp")).unwrap(), ["cmapfile"]);
    card.put_certificate(0, None).unwrap();
    // No certificate without a key; garbage is not a certificate.
    assert!(matches!(card.put_certificate(9, Some(&der)), Err(CardError::NoContainer { .. })));
    assert!(matches!(card.put_certificate(0, Some(b"junk")), Err(CardError::InvalidInput { .. })));
}

// ----- containers and the host cache ---------------------------------------------------------

#[test]
fn containers_cold_listing_and_public_keys() {
    let rig = Rig::new();
    let mut card = rig.open();
    let before = rig.apdus();
    let containers = card.containers().unwrap();
    let cold = rig.apdus() - before;
    println!("APDUs: list containers cold = {cold} (SELECT, master file, cardcf, cmapfile)");
    assert_eq!(cold, 4);
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!((c.index, c.key_ref, c.default, c.has_certificate), (0, 0x81, true, true));
    assert_eq!((c.key_spec, c.algorithm), (Some(KeySpec::Exchange), Some(KeyAlgorithm::Rsa(2048))));
    assert!(c.name.starts_with('{') && c.name.ends_with('}'), "{}", c.name);
    assert!(c.public_key.is_none(), "public keys are read only when asked for");
    // Warm, in the same transaction: nothing sent; a new transaction: one cardcf check.
    with_transaction(card.as_mut(), |card| {
        let n = rig.apdus();
        card.containers()?;
        card.containers()?;
        assert_eq!(rig.apdus() - n, 1);
        Ok(())
    })
    .unwrap();
    // One container with its public key: the key of the certificate.
    let n = rig.apdus();
    let c0 = card.container(0).unwrap();
    assert_eq!(rig.apdus() - n, 2, "cardcf check and GET DATA of the public key");
    let public = rsa_public(c0.public_key.as_ref().unwrap());
    assert_eq!(public.size(), 256);
    let cert = card.certificate(0).unwrap().unwrap();
    let n_bytes = public.n().to_bytes_be();
    assert!(cert.windows(n_bytes.len()).any(|w| w == n_bytes.as_slice()));
    // Indexes past the cmapfile are empty containers up to the card's 126; then none.
    assert!(!card.container(5).unwrap().has_key());
    assert!(matches!(card.container(126), Err(CardError::NoContainer { .. })));
    assert!(matches!(card.certificate(7), Err(CardError::NoContainer { .. })));
}

#[test]
fn file_cache_skips_unchanged_certificates_and_sees_other_writers() {
    let rig = Rig::new();
    let mut cache = FileCache::in_memory();
    let mut a = rig.open();
    let first = cache.certificate(a.as_mut(), 0).unwrap().unwrap();
    assert_eq!(cache.card_reads(), 1);
    // Second enumeration of an unchanged card: no certificate read.
    let n = rig.apdus();
    assert_eq!(cache.certificate(a.as_mut(), 0).unwrap().unwrap(), first);
    assert_eq!(cache.card_reads(), 1);
    let sent = rig.commands_since(n);
    assert!(!sent.iter().any(|c| is_get(c, [0xA0, 0x10], [0xDF, 0x24])), "no GET DATA of kxc00");
    // A new session (another process) with the same cache: still nothing to read.
    let mut b = rig.open();
    assert_eq!(cache.certificate(b.as_mut(), 0).unwrap().unwrap(), first);
    assert_eq!(cache.card_reads(), 1);
    // Session B writes a new certificate: session A's next look reads it again.
    b.authenticate(PinId::USER, &pin(PIN)).unwrap();
    let new = some_certificate("replaced", 4);
    b.put_certificate(0, Some(&new)).unwrap();
    assert_eq!(cache.certificate(a.as_mut(), 0).unwrap().unwrap(), new);
    assert_eq!(cache.card_reads(), 2);
    assert_eq!(a.cardcf().unwrap(), b.cardcf().unwrap(), "session A sees the counters B moved");

    // A cache directory serves a later process, keyed by card id + counters on the card.
    let dir = std::env::temp_dir().join(format!("scard-gids-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut disk = FileCache::with_dir(&dir);
    assert_eq!(disk.certificate(rig.open().as_mut(), 0).unwrap().unwrap(), new);
    let mut later = FileCache::with_dir(&dir);
    assert_eq!(later.certificate(rig.open().as_mut(), 0).unwrap().unwrap(), new);
    assert_eq!(later.card_reads(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

// ----- PINs and the admin key -----------------------------------------------------------------

#[test]
fn user_pin_countdown_block_unblock_and_change() {
    let rig = Rig::new();
    let mut card = rig.open();
    let pins = card.pins().unwrap();
    assert_eq!(pins.len(), 2);
    assert_eq!(
        (pins[0].id, pins[0].tries_left, pins[0].min_len, pins[0].max_len),
        (PinId::USER, Some(3), 4, 16)
    );
    assert_eq!(pins[0].unblock_permission, PinId::ADMIN.set());
    assert_eq!((pins[1].id, pins[1].min_len), (PinId::ADMIN, 24));

    // Too short or too long: refused before VERIFY (no try counted).
    let n = rig.apdus();
    for bad in [&b"12"[..], &[b'1'; 17][..]] {
        assert!(matches!(
            card.authenticate(PinId::USER, &pin(bad)),
            Err(CardError::PinFormat { .. })
        ));
    }
    assert_eq!(rig.apdus(), n);
    // A wrong PIN counts down; one VERIFY per call, never retried.
    let n = rig.apdus();
    let err = card.authenticate(PinId::USER, &pin(b"000000")).unwrap_err();
    assert!(matches!(err, CardError::WrongPin { pin: PinId::USER, tries_left: Some(2) }), "{err}");
    let verifies = rig.commands_since(n).iter().filter(|c| c[1] == 0x20).count();
    assert_eq!(verifies, 1);
    assert_eq!(card.tries_left(PinId::USER).unwrap(), Some(2));
    card.authenticate(PinId::USER, &pin(PIN)).unwrap();
    assert_eq!(card.tries_left(PinId::USER).unwrap(), Some(3));
    assert!(card.channel().authenticated().contains(PinId::USER));
    // Logged out: the card and the session forget the PIN.
    card.deauthenticate(PinId::USER.set()).unwrap();
    assert_eq!(card.channel().authenticated(), PinSet::NONE);
    let err =
        sign(card.as_mut(), 0, Some(HashAlg::Sha256), SignPadding::Pkcs1, &[0; 32]).unwrap_err();
    assert!(matches!(err, CardError::AuthRequired { pin: PinId::USER, .. }), "{err}");
    // Blocked.
    for left in [2u8, 1] {
        let err = card.authenticate(PinId::USER, &pin(b"999999")).unwrap_err();
        assert!(
            matches!(err, CardError::WrongPin { tries_left: Some(l), .. } if l == left),
            "{err}"
        );
    }
    assert!(matches!(
        card.authenticate(PinId::USER, &pin(b"999999")),
        Err(CardError::PinBlocked { pin: PinId::USER })
    ));
    assert!(matches!(
        card.authenticate(PinId::USER, &pin(PIN)),
        Err(CardError::PinBlocked { pin: PinId::USER })
    ));
    assert_eq!(card.tries_left(PinId::USER).unwrap(), Some(0));
    // Unblock with a wrong admin key: refused, still blocked.
    let cf = card.cardcf().unwrap();
    let err = card.unblock_pin(PinId::USER, &pin(&[0x11; 24]), &pin(b"24681357")).unwrap_err();
    assert!(matches!(err, CardError::WrongPin { pin: PinId::ADMIN, .. }), "{err}");
    assert!(matches!(
        card.unblock_pin(PinId::USER, &pin(b"short"), &pin(b"24681357")),
        Err(CardError::PinFormat { pin: PinId::ADMIN, .. })
    ));
    assert!(matches!(
        card.unblock_pin(PinId::USER, &pin(&ADMIN_KEY), &pin(b"1")),
        Err(CardError::PinFormat { pin: PinId::USER, .. })
    ));
    // Unblock with the admin key (hex form): the PIN counter of cardcf moves.
    card.unblock_pin(PinId::USER, &pin("00".repeat(24).as_bytes()), &pin(b"24681357")).unwrap();
    assert_eq!(card.cardcf().unwrap().pins, cf.pins.wrapping_add(1));
    assert_eq!(card.tries_left(PinId::USER).unwrap(), Some(3));
    assert!(!card.channel().authenticated().contains(PinId::ADMIN), "the card logs the admin out");
    card.authenticate(PinId::USER, &pin(b"24681357")).unwrap();
    // Change: the old PIN is checked by the card.
    let err = card.change_pin(PinId::USER, &pin(b"00000000"), &pin(b"1357")).unwrap_err();
    assert!(matches!(err, CardError::WrongPin { tries_left: Some(2), .. }), "{err}");
    card.change_pin(PinId::USER, &pin(b"24681357"), &pin(b"1357")).unwrap();
    assert!(matches!(
        card.authenticate(PinId::USER, &pin(b"24681357")),
        Err(CardError::WrongPin { .. })
    ));
    card.authenticate(PinId::USER, &pin(b"1357")).unwrap();
    assert!(card.cardcf().unwrap().pins > cf.pins.wrapping_add(1));
    assert!(card.unblock_pin(PinId::ADMIN, &pin(&ADMIN_KEY), &pin(&ADMIN_KEY)).is_err());
    assert!(matches!(card.tries_left(PinId::new(3).unwrap()), Err(CardError::InvalidInput { .. })));
}

#[test]
fn admin_key_mutual_and_challenge_response() {
    let rig = Rig::new();
    let mut card = rig.open();
    // Wrong key: refused by the card (6982), no admin state.
    let err = card.authenticate_admin_key(&pin(&[0x11; 24])).unwrap_err();
    assert!(matches!(err, CardError::WrongPin { pin: PinId::ADMIN, tries_left: None }), "{err}");
    assert!(!card.channel().authenticated().contains(PinId::ADMIN));
    assert!(matches!(card.authenticate_admin_key(&pin(b"0011")), Err(CardError::PinFormat { .. })));
    // Right key: mutual authentication (the card's answer is checked too).
    card.authenticate_admin_key(&pin(&ADMIN_KEY)).unwrap();
    assert!(card.channel().authenticated().contains(PinId::ADMIN));
    card.deauthenticate(PinId::ADMIN.set()).unwrap();
    card.authenticate(PinId::ADMIN, &pin(&ADMIN_KEY)).unwrap();
    card.deauthenticate(PinId::ADMIN.set()).unwrap();
    // Challenge-response by the caller (external authentication).
    assert!(matches!(card.admin_response(&[0; 8]), Err(CardError::InvalidInput { .. })));
    let challenge = card.admin_challenge().unwrap();
    assert_eq!(challenge.len(), 8);
    let wrong =
        scard_profile_gids::admin_challenge_response(&pin(&[0x22; 24]), &challenge).unwrap();
    assert!(matches!(
        card.admin_response(&wrong),
        Err(CardError::WrongPin { pin: PinId::ADMIN, .. })
    ));
    let challenge = card.admin_challenge().unwrap();
    let answer =
        scard_profile_gids::admin_challenge_response(&pin(&ADMIN_KEY), &challenge).unwrap();
    card.admin_response(&answer).unwrap();
    assert!(card.channel().authenticated().contains(PinId::ADMIN));
    // Change the admin key: the old one stops working, the new one works.
    let new_key: Vec<u8> = (1..=24).collect();
    let cf = card.cardcf().unwrap();
    card.change_pin(PinId::ADMIN, &pin(&ADMIN_KEY), &pin(&new_key)).unwrap();
    assert_eq!(card.cardcf().unwrap().pins, cf.pins.wrapping_add(1));
    card.deauthenticate(PinId::ADMIN.set()).unwrap();
    assert!(matches!(
        card.authenticate_admin_key(&pin(&ADMIN_KEY)),
        Err(CardError::WrongPin { .. })
    ));
    card.authenticate_admin_key(&pin(&new_key)).unwrap();
}

// ----- keys ------------------------------------------------------------------------------------

#[test]
fn rsa_keygen_sign_and_decrypt_verified_on_the_host() {
    let rig = Rig::new();
    let mut card = rig.open();
    // Key generation needs the user PIN: refused before anything is sent to the key file.
    assert!(matches!(
        card.generate_key(1, KeyAlgorithm::Rsa(2048)),
        Err(CardError::AuthRequired { pin: PinId::USER, .. })
    ));
    card.authenticate(PinId::USER, &pin(PIN)).unwrap();
    let cf = card.cardcf().unwrap();
    let public = card.generate_key(1, KeyAlgorithm::Rsa(2048)).unwrap();
    let after = card.cardcf().unwrap();
    assert!(after.containers > cf.containers && after.files > cf.files);
    let rsa_key = rsa_public(&public);
    assert_eq!(rsa_key.size(), 256);
    // cmapfile: two records; the new one valid, not default, 2048-bit key exchange.
    let records = decode_cmapfile(&card.read_file(&FilePath::CmapFile).unwrap()).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!((records[1].flags, records[1].kx_key_bits), (1, 2048));
    // The key map (OpenSC's consistency check: one record per cmapfile record).
    let keymap = raw_do(card.as_mut(), 0xA000, 0xDF20);
    assert_eq!(keymap.len(), 1 + 2 * 12);
    assert_eq!(&keymap[13..21], &[1, 0, 0, 0, 0x07, 0x9A, 0x82, 0xB0]);
    // The container reads back the same public key.
    assert_eq!(card.container(1).unwrap().public_key.unwrap(), public);
    // A new session sees it. (Its SELECT starts a new card session: the PIN is verified again.)
    assert_eq!(rig.open().containers().unwrap()[1].algorithm, Some(KeyAlgorithm::Rsa(2048)));
    card.authenticate(PinId::USER, &pin(PIN)).unwrap();

    let msg = b"signed by the GIDS profile";
    let digest = Sha256::digest(msg);
    // PKCS#1 v1.5 (the card pads), PSS (the host encodes), raw (the host pads).
    let n = rig.apdus();
    let sig = sign(card.as_mut(), 1, Some(HashAlg::Sha256), SignPadding::Pkcs1, &digest).unwrap();
    println!("APDUs: sign after VERIFY (new transaction) = {}", rig.apdus() - n);
    rsa_key.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest, &sig).unwrap();
    let sig =
        sign(card.as_mut(), 1, Some(HashAlg::Sha256), SignPadding::Pss { salt_len: 32 }, &digest)
            .unwrap();
    rsa_key.verify(rsa::Pss::new_with_salt::<Sha256>(32), &digest, &sig).unwrap();
    let digest384 = Sha384::digest(msg);
    let sig = sign(
        card.as_mut(),
        1,
        Some(HashAlg::Sha384),
        SignPadding::Pss { salt_len: 48 },
        &digest384,
    )
    .unwrap();
    rsa_key.verify(rsa::Pss::new_with_salt::<Sha384>(48), &digest384, &sig).unwrap();
    let info = HashAlg::Sha256.digest_info(&digest).unwrap();
    let block = scard_minidriver::padding::pkcs1_v15_sign_block(&info, 256).unwrap();
    let sig = sign(card.as_mut(), 1, None, SignPadding::None, &block).unwrap();
    rsa_key.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest, &sig).unwrap();
    // A prepared DigestInfo with the card padding.
    let sig = sign(card.as_mut(), 1, None, SignPadding::Pkcs1, &info).unwrap();
    rsa_key.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest, &sig).unwrap();
    // The personalised key signs too (verified against its certificate's key).
    let key0 = rsa_public(&card.container(0).unwrap().public_key.unwrap());
    let sig = sign(card.as_mut(), 0, Some(HashAlg::Sha256), SignPadding::Pkcs1, &digest).unwrap();
    key0.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest, &sig).unwrap();

    // Decrypt: PKCS#1 v1.5, OAEP SHA-1 (the card), OAEP SHA-256 with a label (the host), raw.
    let mut rng = SimRng::from_seed(5);
    let ct = rsa_key.encrypt(&mut rng, rsa::Pkcs1v15Encrypt, b"session key").unwrap();
    let n = rig.apdus();
    let plain = card.decrypt(1, &DecryptPadding::Pkcs1, &ct).unwrap();
    assert_eq!(plain.expose(), b"session key");
    // Spec: the padding indicator 00 comes first (GIDS 1.0 Table 60).
    let pso: Vec<Vec<u8>> = rig.commands_since(n).into_iter().filter(|c| c[1] == 0x2A).collect();
    assert_eq!(pso.len(), 1);
    assert_eq!(
        &pso[0][..8],
        &[0x00, 0x2A, 0x80, 0x86, 0x00, 0x01, 0x01, 0x00],
        "extended Lc 257, then 00"
    );
    let ct = rsa_key.encrypt(&mut rng, rsa::Oaep::new::<sha1::Sha1>(), b"oaep-1").unwrap();
    let plain =
        card.decrypt(1, &DecryptPadding::Oaep { hash: HashAlg::Sha1, label: vec![] }, &ct).unwrap();
    assert_eq!(plain.expose(), b"oaep-1");
    let ct = rsa_key
        .encrypt(&mut rng, rsa::Oaep::new_with_label::<Sha256, _>("label"), b"oaep-256")
        .unwrap();
    let plain = card
        .decrypt(1, &DecryptPadding::Oaep { hash: HashAlg::Sha256, label: b"label".to_vec() }, &ct)
        .unwrap();
    assert_eq!(plain.expose(), b"oaep-256");
    let m = BigUint::from_bytes_be(&[0x00, 0x02, 0x11, 0x22, 0x33]);
    let ct = rsa::hazmat::rsa_encrypt(&rsa_key, &m).unwrap().to_bytes_be();
    let mut ct_block = vec![0u8; 256 - ct.len()];
    ct_block.extend_from_slice(&ct);
    let plain = card.decrypt(1, &DecryptPadding::None, &ct_block).unwrap();
    assert_eq!(plain.expose().len(), 256);
    assert_eq!(&plain.expose()[253..], &[0x11, 0x22, 0x33]);
    // Wrong-size ciphertext: refused before anything is sent.
    assert!(matches!(
        card.decrypt(1, &DecryptPadding::Pkcs1, &ct[..100]),
        Err(CardError::InvalidInput { .. })
    ));
    // Regenerating into an occupied container replaces the key.
    let again = card.generate_key(1, KeyAlgorithm::Rsa(2048)).unwrap();
    assert_ne!(again, public);
    assert_eq!(decode_cmapfile(&card.read_file(&FilePath::CmapFile).unwrap()).unwrap().len(), 2);
}

#[test]
fn verify_and_sign_apdu_count() {
    let rig = Rig::new();
    // Cold: a new session that verifies and signs in one transaction.
    let mut card = rig.open();
    let digest = Sha256::digest(b"count");
    let n = rig.apdus();
    with_transaction(card.as_mut(), |card| {
        card.authenticate(PinId::USER, &pin(PIN))?;
        card.sign(
            0,
            &SignRequest {
                hash: Some(HashAlg::Sha256),
                padding: SignPadding::Pkcs1,
                data: &digest,
            },
        )
    })
    .unwrap();
    let cold = rig.apdus() - n;
    // Warm: the same session, the file table known.
    let n = rig.apdus();
    with_transaction(card.as_mut(), |card| {
        card.authenticate(PinId::USER, &pin(PIN))?;
        card.sign(
            0,
            &SignRequest {
                hash: Some(HashAlg::Sha256),
                padding: SignPadding::Pkcs1,
                data: &digest,
            },
        )
    })
    .unwrap();
    let warm = rig.apdus() - n;
    println!(
        "APDUs: verify + sign cold = {cold} (SELECT, VERIFY, master file, cardcf, cmapfile, MSE, PSO)"
    );
    println!("APDUs: verify + sign warm = {warm} (VERIFY, cardcf, MSE, PSO)");
    assert_eq!((cold, warm), (7, 4));
}

#[test]
fn ecc_keygen_ecdsa_and_ecdh() {
    let rig = Rig::new();
    let mut card = rig.open();
    card.authenticate(PinId::USER, &pin(PIN)).unwrap();
    let mut rng = SimRng::from_seed(11);
    for (index, curve) in [(1u8, Curve::P256), (2, Curve::P384)] {
        let public = card.generate_key(index, KeyAlgorithm::Ec(curve)).unwrap();
        let PublicKey::Ec { point, .. } = &public else { panic!("{public:?}") };
        let info = card.container(index).unwrap();
        assert_eq!(info.key_spec, Some(KeySpec::Ecdsa(curve)));
        assert_eq!(info.public_key.as_ref(), Some(&public));
        let records = decode_cmapfile(&card.read_file(&FilePath::CmapFile).unwrap()).unwrap();
        assert_eq!(records[usize::from(index)].sig_key_bits, curve.bits());
        match curve {
            Curve::P256 => {
                let digest = Sha256::digest(b"ecdsa p-256");
                let sig =
                    sign(card.as_mut(), index, Some(HashAlg::Sha256), SignPadding::None, &digest)
                        .unwrap();
                assert_eq!(sig.len(), 64);
                let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
                vk.verify_prehash(&digest, &p256::ecdsa::Signature::from_slice(&sig).unwrap())
                    .unwrap();
                let host = p256::SecretKey::random(&mut rng);
                let host_point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                    &host.public_key(),
                    false,
                );
                let peer = PublicKey::Ec { curve, point: host_point.as_bytes().to_vec() };
                let shared = card.agree(index, &peer).unwrap();
                let expected = p256::ecdh::diffie_hellman(
                    host.to_nonzero_scalar(),
                    p256::PublicKey::from_sec1_bytes(point).unwrap().as_affine(),
                );
                assert_eq!(shared.expose(), expected.raw_secret_bytes().as_slice());
            }
            _ => {
                let digest = Sha384::digest(b"ecdsa p-384");
                let sig =
                    sign(card.as_mut(), index, Some(HashAlg::Sha384), SignPadding::None, &digest)
                        .unwrap();
                assert_eq!(sig.len(), 96);
                let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
                vk.verify_prehash(&digest, &p384::ecdsa::Signature::from_slice(&sig).unwrap())
                    .unwrap();
                let host = p384::SecretKey::random(&mut rng);
                let host_point = p384::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                    &host.public_key(),
                    false,
                );
                let peer = PublicKey::Ec { curve, point: host_point.as_bytes().to_vec() };
                let shared = card.agree(index, &peer).unwrap();
                let expected = p384::ecdh::diffie_hellman(
                    host.to_nonzero_scalar(),
                    p384::PublicKey::from_sec1_bytes(point).unwrap().as_affine(),
                );
                assert_eq!(shared.expose(), expected.raw_secret_bytes().as_slice());
                // A peer on the other curve is refused before anything is sent.
                let wrong = PublicKey::Ec { curve: Curve::P256, point: vec![4; 65] };
                assert!(matches!(card.agree(index, &wrong), Err(CardError::InvalidInput { .. })));
            }
        }
    }
    // ECDH with an RSA key; decrypt with an EC key.
    assert!(matches!(
        card.agree(0, &PublicKey::Ec { curve: Curve::P256, point: vec![4; 65] }),
        Err(CardError::Unsupported { .. })
    ));
    assert!(matches!(
        card.decrypt(1, &DecryptPadding::Pkcs1, &[0; 64]),
        Err(CardError::Unsupported { .. })
    ));
}

#[test]
fn unsupported_requests_are_refused_before_the_pin() {
    let rig = Rig::new();
    let mut card = rig.open();
    card.authenticate(PinId::USER, &pin(PIN)).unwrap();
    card.generate_key(1, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    card.deauthenticate(PinId::USER.set()).unwrap();
    let digest = [1u8; 32];
    let cases: Vec<(u8, Option<HashAlg>, SignPadding)> = vec![
        (0, None, SignPadding::Pss { salt_len: 32 }),
        (1, Some(HashAlg::Sha256), SignPadding::Pkcs1),
        (1, Some(HashAlg::Sha256), SignPadding::Pss { salt_len: 32 }),
    ];
    for (index, hash, padding) in cases {
        let request = SignRequest { hash, padding, data: &digest };
        let n = rig.apdus();
        assert!(
            matches!(card.check_sign(index, &request), Err(CardError::Unsupported { .. })),
            "{index} {padding:?}"
        );
        let err = card.sign(index, &request).unwrap_err();
        assert!(matches!(err, CardError::Unsupported { .. }), "{err}");
        let sent = rig.commands_since(n);
        assert!(sent.iter().all(|c| !matches!(c[1], 0x20 | 0x22 | 0x2A)), "no VERIFY, MSE or PSO");
    }
    // Fine requests pass the check without the PIN; the operation then needs it.
    let ok =
        SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::Pkcs1, data: &digest };
    card.check_sign(0, &ok).unwrap();
    assert!(matches!(card.sign(0, &ok), Err(CardError::AuthRequired { pin: PinId::USER, .. })));
    card.check_decrypt(0, &DecryptPadding::Oaep { hash: HashAlg::Sha512, label: b"x".to_vec() })
        .unwrap();
    assert!(matches!(
        card.check_decrypt(1, &DecryptPadding::Pkcs1),
        Err(CardError::Unsupported { .. })
    ));
    assert!(matches!(
        card.check_decrypt(5, &DecryptPadding::Pkcs1),
        Err(CardError::NoContainer { .. })
    ));
    // Algorithms the model does not list, or GIDS cannot name: nothing sent.
    let n = rig.apdus();
    for alg in [KeyAlgorithm::Rsa(1024), KeyAlgorithm::Ec(Curve::P521), KeyAlgorithm::Rsa(1536)] {
        assert!(matches!(card.generate_key(2, alg), Err(CardError::Unsupported { .. })), "{alg}");
    }
    assert!(matches!(
        card.generate_key(126, KeyAlgorithm::Rsa(2048)),
        Err(CardError::NoContainer { .. })
    ));
    assert_eq!(rig.apdus(), n);
    // EC key import: GIDS cards import RSA keys only.
    let ec = p256::SecretKey::random(&mut SimRng::from_seed(3));
    let der = p256::pkcs8::EncodePrivateKey::to_pkcs8_der(&ec).unwrap();
    let err = card.import_key(2, &Secret::new(der.as_bytes().to_vec())).unwrap_err();
    assert!(matches!(err, CardError::Unsupported { .. }), "{err}");
    assert_eq!(rig.apdus(), n);
    // An empty container.
    assert!(matches!(card.check_sign(3, &ok), Err(CardError::NoContainer { .. })));
}

#[test]
fn delete_container_zero_fills_its_record() {
    let rig = Rig::new();
    let mut card = rig.open();
    assert!(matches!(card.delete_container(0), Err(CardError::AuthRequired { .. })));
    card.authenticate(PinId::USER, &pin(PIN)).unwrap();
    card.generate_key(1, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    card.generate_key(2, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    card.put_certificate(1, Some(&some_certificate("one", 1))).unwrap();
    assert_eq!(card.list_files(Some("mscp")).unwrap(), ["cmapfile", "kxc00", "ksc01"]);
    let cf = card.cardcf().unwrap();
    card.delete_container(1).unwrap();
    let after = card.cardcf().unwrap();
    assert!(after.containers > cf.containers && after.files > cf.files);
    // The record stays, zero-filled; the others keep their place.
    let cmap = card.read_file(&FilePath::CmapFile).unwrap();
    assert_eq!(cmap.len(), 3 * ContainerMapRecord::LEN);
    assert!(cmap[86..172].iter().all(|&b| b == 0));
    assert!(decode_cmapfile(&cmap).unwrap()[2].is_valid());
    // Key map record 1: deleted (OpenSC's form).
    let keymap = raw_do(card.as_mut(), 0xA000, 0xDF20);
    assert_eq!(&keymap[13..25], &[0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0]);
    // The key file and the certificate are gone.
    assert_eq!(card.list_files(Some("mscp")).unwrap(), ["cmapfile", "kxc00"]);
    let info = card.container(1).unwrap();
    assert!(!info.has_key() && !info.has_certificate);
    let digest = [3u8; 32];
    let err = sign(card.as_mut(), 1, None, SignPadding::None, &digest).unwrap_err();
    assert!(matches!(err, CardError::EmptyContainer { index: 1, .. }), "{err}");
    assert!(matches!(card.delete_container(1), Err(CardError::EmptyContainer { .. })));
    assert!(matches!(card.delete_container(9), Err(CardError::NoContainer { .. })));
    let select = scard_iso7816::CommandApdu::new(0x00, 0xA4, 0x00, 0x0C)
        .with_data(vec![0xB0, 0x82])
        .unwrap();
    let sw = card.channel().in_transaction(|ch| ch.transmit("t", &select)).unwrap().sw();
    assert_eq!(sw, scard_iso7816::StatusWord::FILE_NOT_FOUND);
    // The slot is reused by the next key; container 2 was untouched and still signs.
    card.generate_key(1, KeyAlgorithm::Rsa(2048)).unwrap();
    assert_eq!(decode_cmapfile(&card.read_file(&FilePath::CmapFile).unwrap()).unwrap().len(), 3);
    sign(card.as_mut(), 2, Some(HashAlg::Sha256), SignPadding::None, &digest).unwrap();
    // Deleting the default container leaves the others as they are.
    card.delete_container(0).unwrap();
    let records = decode_cmapfile(&card.read_file(&FilePath::CmapFile).unwrap()).unwrap();
    assert!(!records[0].is_valid() && records[1].is_valid() && records[2].is_valid());
    assert_eq!(card.properties().unwrap().free_containers, 124);
}

#[test]
fn rsa_key_import() {
    use rsa::pkcs8::EncodePrivateKey;
    let rig = Rig::new();
    let mut card = rig.open();
    let key = rsa::RsaPrivateKey::new(&mut SimRng::from_seed(21), 2048).unwrap();
    let der = Secret::new(key.to_pkcs8_der().unwrap().as_bytes().to_vec());
    assert!(matches!(card.import_key(1, &der), Err(CardError::AuthRequired { .. })));
    card.authenticate(PinId::USER, &pin(PIN)).unwrap();
    card.import_key(1, &der).unwrap();
    let info = card.container(1).unwrap();
    assert_eq!(rsa_public(info.public_key.as_ref().unwrap()), key.to_public_key());
    let digest = Sha256::digest(b"imported");
    let sig = sign(card.as_mut(), 1, Some(HashAlg::Sha256), SignPadding::Pkcs1, &digest).unwrap();
    key.to_public_key().verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest, &sig).unwrap();
    assert!(matches!(
        card.import_key(1, &Secret::new(vec![0x30, 0x00])),
        Err(CardError::Unsupported { .. })
    ));
}

// ----- models, quirks and transmission ---------------------------------------------------------

#[test]
fn short_apdus_and_the_padding_indicator_quirk() {
    let rig = Rig::new();
    // The generic model: short APDUs, chaining and GET RESPONSE.
    let generic = scard_profile_gids::MODELS.iter().find(|(f, _)| *f == "generic.toml").unwrap().1;
    let mut card = rig.open_as(generic);
    card.authenticate(PinId::USER, &pin(PIN)).unwrap();
    let public = rsa_public(&card.container(0).unwrap().public_key.unwrap());
    let cert = card.certificate(0).unwrap().unwrap();
    assert!(cert.len() > 256);
    let ct =
        public.encrypt(&mut SimRng::from_seed(2), rsa::Pkcs1v15Encrypt, b"short apdus").unwrap();
    let n = rig.apdus();
    assert_eq!(card.decrypt(0, &DecryptPadding::Pkcs1, &ct).unwrap().expose(), b"short apdus");
    let pso: Vec<Vec<u8>> = rig.commands_since(n).into_iter().filter(|c| c[1] == 0x2A).collect();
    assert_eq!(pso.len(), 2, "257 bytes in a chain of two");
    assert_eq!(&pso[0][..6], &[0x10, 0x2A, 0x80, 0x86, 0xFF, 0x00]);
    assert_eq!(pso[1][4], 2, "255 + 2 = 00 || 256-byte cryptogram");
    for (name, text) in scard_profile_gids::MODELS {
        assert!(CardModel::from_toml(name, text).is_ok());
    }

    // The quirk (Microsoft Virtual Smart Card): the cryptogram alone.
    let quirky = generic.replace(
        "generic = true",
        "generic = true\nquirks = [\"decipher-without-padding-indicator\"]",
    );
    let mut card = rig.open_as(&quirky);
    card.authenticate(PinId::USER, &pin(PIN)).unwrap();
    let n = rig.apdus();
    assert_eq!(card.decrypt(0, &DecryptPadding::Pkcs1, &ct).unwrap().expose(), b"short apdus");
    let pso: Vec<Vec<u8>> = rig.commands_since(n).into_iter().filter(|c| c[1] == 0x2A).collect();
    assert_eq!(pso.len(), 2);
    assert_eq!(
        &pso[0][..6],
        &[0x10, 0x2A, 0x80, 0x86, 0xFF, ct[0]],
        "no indicator before the cryptogram"
    );
    assert_eq!(pso[1][4], 1, "255 + 1 = the 256-byte cryptogram alone");
    // PIN rules of a model are checked before VERIFY.
    let strict = generic.replace("min_length = 4", "min_length = 8");
    let mut card = rig.open_as(&strict);
    assert!(matches!(card.authenticate(PinId::USER, &pin(PIN)), Err(CardError::PinFormat { .. })));
}

#[test]
fn a_reset_by_another_application_is_survived() {
    let rig = Rig::new();
    let mut card = rig.open();
    card.authenticate(PinId::USER, &pin(PIN)).unwrap();
    card.containers().unwrap();
    // Someone resets the card.
    let mut other = rig.transport();
    other.reconnect(scard_transport::Disposition::Reset).unwrap();
    drop(other);
    // Reading works again (the application is selected again); the PIN must be given again.
    assert_eq!(card.containers().unwrap().len(), 1);
    let digest = [9u8; 32];
    let err =
        sign(card.as_mut(), 0, Some(HashAlg::Sha256), SignPadding::Pkcs1, &digest).unwrap_err();
    assert!(matches!(err, CardError::AuthRequired { .. } | CardError::CardReset { .. }), "{err}");
    card.authenticate(PinId::USER, &pin(PIN)).unwrap();
    sign(card.as_mut(), 0, Some(HashAlg::Sha256), SignPadding::Pkcs1, &digest).unwrap();
}

// ----- hostile answers ---------------------------------------------------------------------------

/// A card whose answer to commands matching `pick` is replaced by `answer`.
fn hostile(pick: fn(&[u8]) -> bool, answer: Vec<u8>) -> Rig {
    let tamper: Tamper = Box::new(move |cmd, real| if pick(cmd) { answer.clone() } else { real });
    Rig::with(sim_card(), Some(tamper), None)
}

fn is_get(cmd: &[u8], fid: [u8; 2], tag: [u8; 2]) -> bool {
    cmd.len() > 8
        && cmd[1] == 0xCB
        && cmd[2..4] == fid
        && cmd.windows(4).any(|w| w == [0x5C, 0x02, tag[0], tag[1]])
}

#[test]
fn garbage_answers_give_errors_naming_the_operation() {
    let expect_err =
        |rig: Rig, what: &str, op: fn(&mut dyn CardModule) -> Result<(), CardError>| {
            let mut card = rig.open();
            let err = op(card.as_mut()).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(what), "{what}: {text}");
        };
    let containers = |c: &mut dyn CardModule| c.containers().map(|_| ());
    // Master file: a wrong version, a cut record, not a DO at all.
    expect_err(
        hostile(
            |c| is_get(c, [0xA0, 0x00], [0xDF, 0x1F]),
            vec![0xDF, 0x1F, 0x01, 0x02, 0x90, 0x00],
        ),
        "master file",
        containers,
    );
    let mut cut = vec![0xDF, 0x1F, 0x0A, 0x01];
    cut.extend_from_slice(b"mscp\0\0\0\0\0");
    cut.extend_from_slice(&[0x90, 0x00]);
    expect_err(hostile(|c| is_get(c, [0xA0, 0x00], [0xDF, 0x1F]), cut), "master file", containers);
    expect_err(
        hostile(|c| is_get(c, [0xA0, 0x00], [0xDF, 0x1F]), vec![0x04, 0x01, 0x90, 0x00]),
        "master file",
        containers,
    );
    // cardcf of 5 bytes; cmapfile of 85; cardid of 15.
    expect_err(
        hostile(
            |c| is_get(c, [0xA0, 0x10], [0xDF, 0x22]),
            vec![0xDF, 0x22, 0x05, 0, 0, 0, 0, 0, 0x90, 0x00],
        ),
        "cardcf",
        containers,
    );
    let mut cmap = vec![0xDF, 0x23, 0x55];
    cmap.extend_from_slice(&[0; 85]);
    cmap.extend_from_slice(&[0x90, 0x00]);
    expect_err(hostile(|c| is_get(c, [0xA0, 0x10], [0xDF, 0x23]), cmap), "cmapfile", containers);
    expect_err(
        hostile(
            |c| is_get(c, [0xA0, 0x12], [0xDF, 0x20]),
            [&[0xDF, 0x20, 0x0F][..], &[1; 15], &[0x90, 0x00]].concat(),
        ),
        "cardid",
        |c| c.card_id().map(|_| ()),
    );
    // PIN status without a counter; a status word alone.
    expect_err(
        hostile(
            |c| is_get(c, [0x3F, 0xFF], [0x7F, 0x71]),
            vec![0x7F, 0x71, 0x03, 0x93, 0x01, 0x03, 0x90, 0x00],
        ),
        "PIN status",
        |c| c.tries_left(PinId::USER).map(|_| ()),
    );
    expect_err(hostile(|c| c[1] == 0xCB, vec![0x6F, 0x00]), "6F00", containers);
    // A signature of the wrong length.
    expect_err(
        hostile(|c| c[1] == 0x2A, vec![1, 2, 3, 0x90, 0x00]),
        "PSO COMPUTE DIGITAL SIGNATURE",
        |c| {
            c.authenticate(PinId::USER, &pin(PIN))?;
            c.sign(
                0,
                &SignRequest {
                    hash: Some(HashAlg::Sha256),
                    padding: SignPadding::Pkcs1,
                    data: &[0; 32],
                },
            )
            .map(|_| ())
        },
    );
    // A public key that is not the container's.
    expect_err(
        hostile(
            |c| c[1] == 0xCB && c.windows(4).any(|w| w == [0x70, 0x08, 0x84, 0x01]),
            vec![0x7F, 0x49, 0x03, 0x86, 0x01, 0x04, 0x90, 0x00],
        ),
        "public key",
        |c| c.container(0).map(|_| ()),
    );
    // Admin authentication: a card that does not know the key.
    expect_err(
        hostile(
            |c| c[1] == 0x87 && c.windows(4).any(|w| w == [0x7C, 0x2A, 0x82, 0x28]),
            [&[0x7C, 0x2A, 0x82, 0x28][..], &[0; 40], &[0x90, 0x00]].concat(),
        ),
        "admin",
        |c| c.authenticate_admin_key(&pin(&ADMIN_KEY)),
    );
    // A VERIFY answered 6300 without a count: a wrong PIN, tries unknown.
    let rig = hostile(|c| c[1] == 0x20, vec![0x63, 0x00]);
    let err = rig.open().authenticate(PinId::USER, &pin(PIN)).unwrap_err();
    assert!(matches!(err, CardError::WrongPin { tries_left: None, .. }), "{err}");
}

#[test]
fn random_corruption_never_panics() {
    // Every answer has a chance to be cut, flipped or replaced; the profile must only ever
    // return errors.
    for seed in 0..40u64 {
        let mut rng = SimRng::from_seed(seed);
        let tamper: Tamper = Box::new(move |_cmd, mut real| {
            let r = rng.bytes(4);
            match r[0] % 6 {
                0 if !real.is_empty() => {
                    let at = usize::from(r[1]) % real.len();
                    real[at] ^= r[2] | 1;
                    real
                }
                1 => real[..usize::from(r[1]) % (real.len() + 1)].to_vec(),
                2 => rng.bytes(usize::from(r[1] % 40)),
                _ => real,
            }
        });
        let rig = Rig::with(sim_card(), Some(tamper), None);
        let Ok(mut card) = rig.registry.open(rig.transport()) else { continue };
        let _ = card.containers();
        let _ = card.card_id();
        let _ = card.pins();
        let _ = card.authenticate(PinId::USER, &pin(PIN));
        let _ = card.certificate(0);
        let _ = card.container(0);
        let _ = card.read_file(&FilePath::CmapFile);
        let _ = card.list_files(Some("mscp"));
        let _ = sign(card.as_mut(), 0, Some(HashAlg::Sha256), SignPadding::Pkcs1, &[0; 32]);
        let _ = card.decrypt(0, &DecryptPadding::Pkcs1, &[1; 256]);
        let _ = card.write_file(&FilePath::parse("mscp/x").unwrap(), b"data");
        let _ = card.authenticate_admin_key(&pin(&ADMIN_KEY));
        let _ = card.properties();
    }
}
