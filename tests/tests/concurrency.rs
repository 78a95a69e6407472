//! Concurrency through one reader (issue 9): a simulated PIV card (`scard sim piv`) behind a
//! real pcscd, used at once by
//! - 8 threads of this process, each with its own key storage provider (its own PC/SC
//!   connection, transactions and PIN login);
//! - a second process: this test binary again, running [`concurrency_child`], a provider that
//!   signs in a loop;
//! - `scard sign` processes one after the other (a third stream of processes);
//! - a thread that resets the card every so often through a connection of its own (another
//!   application, for every signer);
//! - intruders that never give the PIN: a provider (silent, and with a PIN source that
//!   cancels), the card module straight on a connection, and `scard sign` without a PIN.
//!
//! Every signature verifies on the host. The card's PIN state is shared by every connection
//! (PC/SC): the intruders must never get a signature out of the PIN the others verified,
//! nor spend a try. A reset by one is recovered by the others (the cached PIN presented
//! again), and no PIN try is spent. `tests/README` (issue 9 notes) has the 20-run record.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use scard_ksp::{
    KspError, OpFlags, PinRequest, Provider, ProviderConfig, default_profiles, pin_callback,
};
use scard_minidriver::{
    CardError, Curve, HashAlg, KeyAlgorithm, Pin, PinId, PinType, PublicKey, SignPadding,
    SignRequest,
};
use scard_pcsc::PcscBackend;
use scard_tests::interop::{Sandbox, sandbox, scard_binary};
use scard_transport::{CardTransport, Disposition, ShareMode};
use sha2::Digest;

const PIN: &str = "123456";
const PIV_MGMT: &str = "010203040506070801020304050607080102030405060708";
/// Set to `<reader>;<rounds>;<output file>` for [`concurrency_child`].
const CHILD_ENV: &str = "SCARD_CONCURRENCY_CHILD";

const THREADS: usize = 8;
const ROUNDS_PER_THREAD: usize = 25;
const CHILD_ROUNDS: usize = 60;
const CLI_ROUNDS: usize = 8;

fn reader() -> String {
    format!("pcsc:{}", Sandbox::reader(0))
}

/// The PINs of the simulated card: the user PIN, the PIV management key (hex) for the admin.
fn pins(asked: Arc<AtomicUsize>) -> Box<dyn scard_ksp::PinSource> {
    pin_callback(move |req: &PinRequest| {
        asked.fetch_add(1, Ordering::SeqCst);
        let value = if req.pin_type == PinType::ChallengeResponse { PIV_MGMT } else { PIN };
        Ok(Some(Pin::new(value.as_bytes())))
    })
}

fn provider(reader: &str, source: Box<dyn scard_ksp::PinSource>) -> Provider {
    let config = ProviderConfig { readers: vec![reader.to_owned()], ..ProviderConfig::default() };
    Provider::new(config, default_profiles(), source).expect("provider")
}

fn ecdsa_request(digest: &[u8]) -> SignRequest<'_> {
    SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::None, data: digest }
}

fn verifying_key(public: &PublicKey) -> p256::ecdsa::VerifyingKey {
    let PublicKey::Ec { curve: Curve::P256, point } = public else { panic!("{public:?}") };
    p256::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap()
}

fn check_raw(public: &PublicKey, digest: &[u8], sig: &[u8]) {
    let sig = p256::ecdsa::Signature::from_slice(sig).expect("r || s");
    verifying_key(public).verify_prehash(digest, &sig).expect("the signature verifies");
}

/// A certificate for `public` from a throwaway host CA.
fn certificate_for(public: &PublicKey) -> Vec<u8> {
    use der::{Decode, Encode};
    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::SubjectPublicKeyInfoOwned;
    use x509_cert::time::Validity;
    let spki = SubjectPublicKeyInfoOwned::from_der(&public.to_spki_der().unwrap()).unwrap();
    let ca = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let profile = Profile::Leaf {
        issuer: Name::from_str("CN=scard concurrency CA").unwrap(),
        enable_key_agreement: false,
        enable_key_encipherment: false,
    };
    CertificateBuilder::new(
        profile,
        SerialNumber::new(&[9]).unwrap(),
        Validity::from_now(Duration::from_secs(86_400)).unwrap(),
        Name::from_str("CN=concurrency").unwrap(),
        spki,
        &ca,
    )
    .unwrap()
    .build::<p256::ecdsa::DerSignature>()
    .unwrap()
    .to_der()
    .unwrap()
}

/// The key name of container 0 as a provider lists it.
fn key_9a(p: &mut Provider, reader: &str) -> scard_ksp::KeyInfo {
    p.keys_on(reader)
        .unwrap_or_else(|e| panic!("keys: {e}; readers: {:?}", p.readers()))
        .into_iter()
        .find(|k| k.container_index == 0)
        .expect("a key in 9A")
}

/// The second process: a provider of its own signing `rounds` digests; writes
/// `digest signature` lines (hex) to the output file.
#[test]
fn concurrency_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let mut parts = spec.split(';');
    let (reader, rounds, out) = (
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().parse::<usize>().unwrap(),
        PathBuf::from(parts.next().unwrap()),
    );
    let asked = Arc::new(AtomicUsize::new(0));
    let mut p = provider(&reader, pins(Arc::clone(&asked)));
    let key = key_9a(&mut p, &reader);
    p.login(&reader, PinId::USER, None).unwrap();
    let mut lines = Vec::new();
    for round in 0..rounds {
        let digest = sha2::Sha256::digest(format!("child {} round {round}", std::process::id()));
        let sig = p
            .sign(&key.name, &ecdsa_request(&digest), OpFlags::silent())
            .unwrap_or_else(|e| panic!("child round {round}: {e}"));
        lines.push(format!(
            "{} {}",
            scard_iso7816::hex::encode_upper(&digest),
            scard_iso7816::hex::encode_upper(&sig)
        ));
    }
    std::fs::write(&out, lines.join("\n")).unwrap();
    assert_eq!(asked.load(Ordering::SeqCst), 1, "the PIN was asked once, then cached");
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tries_left(reader: &str) -> Option<u8> {
    let mut backend = PcscBackend::new();
    let name = reader.trim_start_matches("pcsc:");
    let mut t = backend.connect_reader(name, ShareMode::Shared).unwrap().unwrap();
    // After a reset, so that the card tells the count rather than "verified".
    t.reconnect(Disposition::Reset).unwrap();
    let mut module = default_profiles().open(Box::new(t)).unwrap();
    module.tries_left(PinId::USER).unwrap()
}

#[test]
fn eight_threads_and_two_processes_sign_through_one_reader() {
    let Some(mut sb) = sandbox("eight_threads_and_two_processes_sign_through_one_reader", &[])
    else {
        return;
    };
    let state = sb.dir().join("piv.json");
    sb.attach("piv", 0, &[OsStr::new("--state"), state.as_os_str()]);
    let reader = reader();
    let dir = sb.dir().to_path_buf();

    // A P-256 key in 9A with its certificate (a PIV key is known from its certificate).
    let public = {
        let mut p = provider(&reader, pins(Arc::new(AtomicUsize::new(0))));
        let key = p
            .generate_key(&reader, Some(0), KeyAlgorithm::Ec(Curve::P256), OpFlags::default())
            .unwrap();
        let public = key.public_key.clone().unwrap();
        p.import_certificate_at(&reader, 0, &certificate_for(&public), OpFlags::default()).unwrap();
        public
    };
    assert_eq!(tries_left(&reader), Some(3));

    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();

    // The second process.
    let child_out = dir.join("child.txt");
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["concurrency_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{reader};{CHILD_ROUNDS};{}", child_out.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // `scard sign` processes, one after the other.
    let cli = {
        let (reader, dir, public) = (reader.clone(), dir.clone(), public.clone());
        std::thread::spawn(move || {
            let scard = scard_binary().unwrap();
            for round in 0..CLI_ROUNDS {
                let data = dir.join(format!("cli-{round}.txt"));
                let sig = dir.join(format!("cli-{round}.sig"));
                std::fs::write(&data, format!("signed by scard sign, round {round}")).unwrap();
                run_ok(
                    Command::new(&scard)
                        .args(["sign", "--reader", &reader])
                        .args([
                            "--container",
                            "0",
                            "--alg",
                            "ecdsa-sha256",
                            "--format",
                            "raw",
                            "--pin-env",
                            "PIN",
                        ])
                        .arg("--in")
                        .arg(&data)
                        .arg("--out")
                        .arg(&sig)
                        .env("PIN", PIN),
                );
                let sig =
                    p256::ecdsa::Signature::from_slice(&std::fs::read(&sig).unwrap()).unwrap();
                verifying_key(&public)
                    .verify(&std::fs::read(&data).unwrap(), &sig)
                    .expect("scard sign's signature verifies");
            }
        })
    };

    // Another application resets the card every so often.
    let resets = Arc::new(AtomicUsize::new(0));
    let resetter = {
        let (done, resets, reader) = (Arc::clone(&done), Arc::clone(&resets), reader.clone());
        std::thread::spawn(move || {
            let mut backend = PcscBackend::new();
            let name = reader.trim_start_matches("pcsc:").to_owned();
            let mut t = backend.connect_reader(&name, ShareMode::Shared).unwrap().unwrap();
            while !done.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
                // At the end of a transaction of its own (SCardEndTransaction with
                // SCARD_RESET_CARD), as an application resets a card; a reset notice of our
                // own (the previous round's) comes first, once.
                let began = match t.begin_transaction() {
                    Err(scard_transport::TransportError::CardReset { .. }) => t.begin_transaction(),
                    other => other,
                };
                if began.is_ok() && t.end_transaction(Disposition::Reset).is_ok() {
                    resets.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };

    // Intruders: no PIN of their own, while the others keep the card's PIN verified.
    let intrusions = Arc::new(AtomicUsize::new(0));
    let intruder = {
        let (done, intrusions, reader) =
            (Arc::clone(&done), Arc::clone(&intrusions), reader.clone());
        std::thread::spawn(move || {
            let asked = Arc::new(Mutex::new(0usize));
            let counter = Arc::clone(&asked);
            let cancel = pin_callback(move |_: &PinRequest| {
                *counter.lock().unwrap() += 1;
                Ok(None)
            });
            let mut p = provider(&reader, cancel);
            let key = key_9a(&mut p, &reader);
            let mut backend = PcscBackend::new();
            let name = reader.trim_start_matches("pcsc:").to_owned();
            let t = backend.connect_reader(&name, ShareMode::Shared).unwrap().unwrap();
            let mut module = default_profiles().open(Box::new(t)).unwrap();
            let digest = sha2::Sha256::digest(b"intruder");
            // At least three rounds, however quickly the others finish.
            while !done.load(Ordering::SeqCst) || intrusions.load(Ordering::SeqCst) < 3 {
                match p.sign(&key.name, &ecdsa_request(&digest), OpFlags::silent()) {
                    Err(KspError::PinNeeded { .. }) => {}
                    other => panic!("a silent signature without a PIN: {other:?}"),
                }
                match p.sign(&key.name, &ecdsa_request(&digest), OpFlags::default()) {
                    Err(KspError::Cancelled { .. }) => {}
                    other => panic!("a signature with the PIN refused: {other:?}"),
                }
                match module.sign(0, &ecdsa_request(&digest)) {
                    Err(CardError::AuthRequired { pin, .. }) => assert_eq!(pin, PinId::USER),
                    other => panic!("the card module signed on another's PIN: {other:?}"),
                }
                intrusions.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
            }
            *asked.lock().unwrap()
        })
    };

    // 8 threads, each its own provider (its own connection and login).
    let signed = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (reader, public, signed) = (reader.clone(), public.clone(), Arc::clone(&signed));
            std::thread::spawn(move || {
                let asked = Arc::new(AtomicUsize::new(0));
                let mut p = provider(&reader, pins(Arc::clone(&asked)));
                let key = key_9a(&mut p, &reader);
                for round in 0..ROUNDS_PER_THREAD {
                    let digest = sha2::Sha256::digest(format!("thread {t} round {round}"));
                    let sig = p
                        .sign(&key.name, &ecdsa_request(&digest), OpFlags::default())
                        .unwrap_or_else(|e| panic!("thread {t} round {round}: {e}"));
                    check_raw(&public, &digest, &sig);
                    signed.fetch_add(1, Ordering::SeqCst);
                }
                assert_eq!(asked.load(Ordering::SeqCst), 1, "thread {t}: asked once, then cached");
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a signing thread failed");
    }
    cli.join().expect("scard sign failed");
    let out = child.wait_with_output().unwrap();
    let child_log =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the second process failed:\n{child_log}");
    assert!(child_log.contains("1 passed"), "{child_log}");

    // `scard sign` without a PIN while the card is verified by the others: refused, no
    // signature written.
    let scard = scard_binary().unwrap();
    let data = dir.join("intruder.txt");
    std::fs::write(&data, "no PIN given").unwrap();
    let sig_path = dir.join("intruder.sig");
    let refused = Command::new(&scard)
        .args(["sign", "--reader", &reader, "--container", "0", "--alg", "ecdsa-sha256"])
        .arg("--in")
        .arg(&data)
        .arg("--out")
        .arg(&sig_path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    println!(
        "scard sign without a PIN: {}: {}",
        refused.status,
        String::from_utf8_lossy(&refused.stderr).trim()
    );
    assert!(!refused.status.success());
    assert!(!Path::new(&sig_path).exists() || std::fs::read(&sig_path).unwrap().is_empty());

    done.store(true, Ordering::SeqCst);
    resetter.join().unwrap();
    let asked_intruder = intruder.join().expect("an intruder got a signature");
    let took = started.elapsed();

    // The second process's signatures verify.
    let lines = std::fs::read_to_string(&child_out).unwrap();
    let mut child_signed = 0;
    for line in lines.lines() {
        let (digest, sig) = line.split_once(' ').unwrap();
        let digest = scard_iso7816::hex::decode_lenient(digest).unwrap();
        let sig = scard_iso7816::hex::decode_lenient(sig).unwrap();
        check_raw(&public, &digest, &sig);
        child_signed += 1;
    }
    assert_eq!(child_signed, CHILD_ROUNDS);
    assert_eq!(signed.load(Ordering::SeqCst), THREADS * ROUNDS_PER_THREAD);
    let resets = resets.load(Ordering::SeqCst);
    let intrusions = intrusions.load(Ordering::SeqCst);
    println!(
        "{} signatures by {THREADS} threads, {CHILD_ROUNDS} by a second process, {CLI_ROUNDS} by \
         scard sign processes, all verified; {resets} resets by another connection recovered; \
         {intrusions} intrusion rounds refused ({asked_intruder} PIN requests, all cancelled); \
         {:.1} s",
        THREADS * ROUNDS_PER_THREAD,
        took.as_secs_f64()
    );
    assert!(resets > 0, "the card was reset while they signed");
    assert!(intrusions > 0);
    // Nobody spent a PIN try.
    assert_eq!(tries_left(&reader), Some(3));
}
