//! `scard info` and `scard sign` against the hostile card (`sim:hostile:<seed>`, see
//! scard_sim::hostile) for 1,000 seeds, the binary run once per seed and command with
//! `--timeout 1`:
//! - no panic (a panicking Rust binary exits 101), only the documented statuses 0 and 1;
//! - no run longer than the timeout + 1 s (a stalled card costs one deadline, not more);
//! - every failure is one line on standard error, `error: ...`, naming the operation;
//! - a signature `scard sign` returns verifies with the card's public key on the host.
//!
//! And in process, through the same library path (profile registry, card module), with a
//! card that counts what it is sent: a PIN is presented to the card at most once per run,
//! whatever the card answers (a failed VERIFY is never retried).
//!
//! `SCARD_HOSTILE_SEEDS=N` runs N seeds instead of 1,000 (`SCARD_HOSTILE_FIRST` the first).

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scard_minidriver::{CardModule, HashAlg, Pin, PinId, PublicKey, SignPadding, SignRequest};
use scard_sim::hostile::{HostileCard, Plan};
use scard_sim::{Card, Family};
use scard_transport::virtual_card::{VirtualBackend, VirtualCard};
use scard_transport::{Registry, ShareMode};

/// `--timeout` of every run, in seconds.
const TIMEOUT: u64 = 1;
/// The data signed.
const MESSAGE: &[u8] = b"hostile card test: sign this";

fn seeds() -> std::ops::Range<u64> {
    let var =
        |name, default| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let first = var("SCARD_HOSTILE_FIRST", 0);
    first..first + var("SCARD_HOSTILE_SEEDS", 1000)
}

/// The algorithm `scard sign` uses on container 0 of the card of `seed`.
fn sign_alg(seed: u64) -> &'static str {
    match scard_sim::hostile::family_of(seed) {
        Family::Gids => "rsa-pkcs1-sha256",
        _ => "ecdsa-sha256",
    }
}

/// Operations an error message may name: the commands (ISO/IEC 7816-4 and the families'
/// specifications, as the profiles name them) and the host's steps.
const OPERATIONS: &[&str] = &[
    "SELECT",
    "GET DATA",
    "GET RESPONSE",
    "PUT DATA",
    "VERIFY",
    "GENERAL AUTHENTICATE",
    "GENERATE ASYMMETRIC KEY PAIR",
    "MANAGE SECURITY ENVIRONMENT",
    "PERFORM SECURITY OPERATION",
    "PSO",
    "INTERNAL AUTHENTICATE",
    "READ BINARY",
    "reading",
    "sign",
    "PIN",
    "no answer to",
    "card profile",
];

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    wall: Duration,
}

/// Runs the binary, killing it if it runs away (a hang is reported, not waited out).
fn scard(args: &[&str], config: &Path) -> Run {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_scard"))
        .args(args)
        .env("PIN", "123456")
        .env("XDG_CONFIG_HOME", config)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("scard runs");
    let limit = Duration::from_secs(TIMEOUT * 10 + 20);
    loop {
        if child.try_wait().unwrap().is_some() || started.elapsed() > limit {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        wall: started.elapsed(),
    }
}

/// The public key of container 0 of the card of `seed`, read from the same card without
/// faults.
fn public_key(seed: u64) -> PublicKey {
    let faithful = Plan { atr: None, calm: 0, rate: 0, faults: Vec::new(), ..Plan::of(seed) };
    let (mut card, _) = open_in_process(HostileCard::with_plan(seed, faithful));
    card.container(0).unwrap().public_key.expect("container 0 has a public key")
}

fn verify(key: &PublicKey, alg: &str, signature: &[u8]) -> Result<(), String> {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(MESSAGE);
    match key {
        PublicKey::Rsa { n, e } => {
            let key = rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(n),
                rsa::BigUint::from_bytes_be(e),
            )
            .map_err(|e| e.to_string())?;
            assert_eq!(alg, "rsa-pkcs1-sha256");
            key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, signature)
                .map_err(|e| e.to_string())
        }
        PublicKey::Ec { point, .. } => {
            use p256::ecdsa::signature::hazmat::PrehashVerifier;
            let key =
                p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|e| e.to_string())?;
            let sig = p256::ecdsa::Signature::from_der(signature).map_err(|e| e.to_string())?;
            key.verify_prehash(&digest, &sig).map_err(|e| e.to_string())
        }
    }
}

/// What one seed showed.
#[derive(Default)]
struct Findings {
    problems: Vec<String>,
    /// Failure messages with the seed, reader and numbers taken out, and how often.
    messages: BTreeMap<String, u64>,
    /// The longest run.
    slowest: Duration,
}

/// `error: sim:hostile:17: GET DATA (INS CB): card returned 300 data byte(s)` ->
/// `error: sim:hostile:N: GET DATA (INS CB): card returned N data byte(s)`.
fn shape(message: &str) -> String {
    let mut out = String::new();
    let mut digits = false;
    for c in message.chars() {
        if c.is_ascii_digit() {
            if !digits {
                out.push('N');
            }
            digits = true;
        } else {
            digits = false;
            out.push(c);
        }
    }
    out
}

fn check_run(seed: u64, what: &str, run: &Run, findings: &mut Findings) -> bool {
    let label = format!("seed {seed} {what}");
    let max = Duration::from_secs(TIMEOUT + 1);
    findings.slowest = findings.slowest.max(run.wall);
    if run.wall > max {
        findings.problems.push(format!("{label}: took {:?} (more than {max:?})", run.wall));
    }
    match run.code {
        Some(0) => return true,
        Some(1) => {}
        Some(101) => {
            findings.problems.push(format!("{label}: PANIC: {}", run.stderr.trim_end()));
            return false;
        }
        other => {
            findings.problems.push(format!(
                "{label}: exit {other:?} (killed or an undocumented status): {}",
                run.stderr.trim_end()
            ));
            return false;
        }
    }
    let stderr = run.stderr.trim_end();
    if stderr.lines().count() != 1 || !stderr.starts_with("error: ") {
        findings.problems.push(format!("{label}: not one `error: ` line: {stderr:?}"));
    } else if !OPERATIONS.iter().any(|op| stderr.contains(op)) {
        findings.problems.push(format!("{label}: names no operation: {stderr}"));
    }
    *findings.messages.entry(shape(stderr)).or_insert(0) += 1;
    false
}

#[test]
fn info_and_sign_survive_1000_hostile_cards() {
    let config = std::env::temp_dir().join(format!("scard-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&config).unwrap();
    let input = config.join("message");
    std::fs::write(&input, MESSAGE).unwrap();
    let seeds = seeds();
    let next = Arc::new(AtomicU64::new(seeds.start));
    let findings = Arc::new(Mutex::new(Findings::default()));
    let signed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    // Stalls sleep; the rest is short: a few workers keep the run short on two cores.
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (next, findings, signed) =
                (Arc::clone(&next), Arc::clone(&findings), Arc::clone(&signed));
            let (config, input, end) = (config.clone(), input.clone(), seeds.end);
            std::thread::spawn(move || {
                loop {
                    let seed = next.fetch_add(1, Ordering::SeqCst);
                    if seed >= end {
                        break;
                    }
                    hostile_seed(seed, &config, &input, &findings, &signed);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let findings = findings.lock().unwrap();
    let n = seeds.end - seeds.start;
    println!(
        "{n} seeds in {:.1} s (slowest run {:?}); {} signatures made and verified; failure \
         messages by shape:",
        started.elapsed().as_secs_f64(),
        findings.slowest,
        signed.load(Ordering::SeqCst)
    );
    for (shape, count) in &findings.messages {
        println!("{count:5}  {shape}");
    }
    let _ = std::fs::remove_dir_all(&config);
    assert!(
        findings.problems.is_empty(),
        "{} problems:\n{}",
        findings.problems.len(),
        findings.problems.join("\n")
    );
}

fn hostile_seed(
    seed: u64,
    config: &Path,
    input: &Path,
    findings: &Mutex<Findings>,
    signed: &AtomicU64,
) {
    let reader = format!("sim:hostile:{seed}");
    let timeout = TIMEOUT.to_string();
    let mut local = Findings::default();
    let info = scard(&["info", "--reader", &reader, "--timeout", &timeout], config);
    check_run(seed, "info", &info, &mut local);
    let out: PathBuf = config.join(format!("signature-{seed}"));
    let alg = sign_alg(seed);
    let out_arg = out.display().to_string();
    let input_arg = input.display().to_string();
    let sign = scard(
        &[
            "sign",
            "--reader",
            &reader,
            "--timeout",
            &timeout,
            "--container",
            "0",
            "--alg",
            alg,
            "--in",
            &input_arg,
            "--out",
            &out_arg,
            "--pin-env",
            "PIN",
        ],
        config,
    );
    if check_run(seed, "sign", &sign, &mut local) {
        let signature = std::fs::read(&out).unwrap_or_default();
        match verify(&public_key(seed), alg, &signature) {
            Ok(()) => {
                signed.fetch_add(1, Ordering::SeqCst);
            }
            Err(err) => local.problems.push(format!(
                "seed {seed} sign: exit 0 but the signature does not verify: {err} ({})",
                Plan::of(seed).describe()
            )),
        }
        let _ = std::fs::remove_file(&out);
    }
    let _ = info.stdout;
    let mut all = findings.lock().unwrap();
    all.slowest = all.slowest.max(local.slowest);
    all.problems.extend(local.problems);
    for (shape, count) in local.messages {
        *all.messages.entry(shape).or_insert(0) += count;
    }
}

// ----- in process: PIN presentations counted by the card ------------------------------------

/// The hostile card, counting the VERIFY commands with a PIN (command data) it receives.
struct Counted {
    card: HostileCard,
    verifies: Arc<AtomicU64>,
}

impl VirtualCard for Counted {
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
        self.answer(command).unwrap_or_default()
    }
    fn answer(&mut self, command: &[u8]) -> Option<Vec<u8>> {
        // ISO/IEC 7816-4 §11.5.6: VERIFY (INS 20) with data presents a PIN (chained pieces
        // count once, at their last piece).
        let cla = command.first().copied().unwrap_or(0);
        if command.get(1) == Some(&0x20) && command.len() > 5 && cla & 0x10 == 0 {
            self.verifies.fetch_add(1, Ordering::SeqCst);
        }
        self.card.answer(command)
    }
}

/// The card of `card` opened through the profile registry as `scard` opens it.
fn open_in_process(card: HostileCard) -> (Box<dyn CardModule>, Arc<AtomicU64>) {
    try_open(card, Duration::from_millis(100)).map_err(|e| e.to_string()).unwrap()
}

fn try_open(
    card: HostileCard,
    timeout: Duration,
) -> Result<(Box<dyn CardModule>, Arc<AtomicU64>), scard_minidriver::CardError> {
    let verifies = Arc::new(AtomicU64::new(0));
    let backend = VirtualBackend::new();
    let name = format!("sim:hostile:{}", card.seed());
    backend.insert(&name, Box::new(Counted { card, verifies: Arc::clone(&verifies) }));
    let mut registry = Registry::new();
    registry.add(Box::new(backend));
    let mut transport = registry.connect(Some(&name), ShareMode::Shared)?;
    transport.set_timeout(timeout);
    let module = scard_ksp::default_profiles().open(transport)?;
    Ok((module, verifies))
}

#[test]
fn a_pin_is_presented_at_most_once_per_info_and_sign_whatever_the_card_answers() {
    let mut presented = 0;
    for seed in seeds() {
        let Ok((mut card, verifies)) = try_open(HostileCard::new(seed), Duration::from_millis(20))
        else {
            continue;
        };
        let digest = HashAlg::Sha256.digest(MESSAGE);
        let request = SignRequest {
            hash: Some(HashAlg::Sha256),
            padding: if sign_alg(seed).starts_with("rsa") {
                SignPadding::Pkcs1
            } else {
                SignPadding::None
            },
            data: &digest,
        };
        // What `scard info` reads.
        let _ = scard_minidriver::with_transaction(card.as_mut(), |card| {
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
            Ok(())
        });
        // What `scard sign` does: container, check, one PIN presentation, sign.
        let _ = scard_minidriver::with_transaction(card.as_mut(), |card| {
            let container = card.container(0)?;
            card.check_sign(0, &request)?;
            let pin = container.pin;
            if pin != PinId::EVERYONE {
                card.authenticate(pin, &Pin::new(b"123456".to_vec()))?;
            }
            card.sign(0, &request)
        });
        let n = verifies.load(Ordering::SeqCst);
        assert!(
            n <= 1,
            "seed {seed}: {n} PIN presentations for one ({})",
            Plan::of(seed).describe()
        );
        presented += n;
    }
    assert!(presented > 0);
}

// ----- over vpcd: `scard sim hostile` -------------------------------------------------------

/// `scard sim hostile --seed 8` (GIDS inside, stalling from its first APDU) attached to our
/// own listening vpcd reader: the card never answers SELECT, `scard info` says so in one line
/// after its one-second deadline, and the card program ends when the reader goes away.
#[test]
fn a_stalling_hostile_card_over_vpcd_times_out_in_one_line() {
    assert_eq!(Plan::of(8).faults, [scard_sim::hostile::Fault::Stall]);
    assert_eq!(Plan::of(8).calm, 0);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let info = Command::new(env!("CARGO_BIN_EXE_scard"))
        .args(["info", "--reader", &format!("vpcd:127.0.0.1:{port}"), "--wait", "20"])
        .args(["--timeout", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let card = Command::new(env!("CARGO_BIN_EXE_scard"))
        .args(["sim", "hostile", "--seed", "8", "--vpcd", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let out = info.wait_with_output().unwrap();
    let waited = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no answer to SELECT (INS A4) within 1s"), "{stderr}");
    // Connecting (up to the 300 ms head start) and one deadline.
    assert!(waited < Duration::from_secs(TIMEOUT + 1), "{waited:?}");
    let out = card.wait_with_output().unwrap();
    assert!(out.status.success());
    let banner = String::from_utf8_lossy(&out.stderr);
    assert!(banner.contains("hostile card, seed 8: gids, faults after 0 APDUs"), "{banner}");
}
