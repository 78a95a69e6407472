//! `scard bench`: how long the usual card operations take (median and 95th percentile over
//! `--ops` runs) and what they cost on the wire (APDUs and bytes each way, counted by
//! [`scard_transport::counting::Counting`] under the card module): connect and identify,
//! enumerate certificates (a cold cache, then the host cache of card id + `cardcf`), verify the
//! PIN, sign with each key that signs, decrypt, ECDH.
//!
//! A `--sim` card is provisioned first (RSA 2048 and P-256 keys with certificates, in the
//! containers that do what is measured); a real card is only read and used, never written.

use std::io::{IsTerminal, Write as _};
use std::time::{Duration, Instant};

use clap::Args;
use scard_minidriver::{Curve, DecryptPadding, FileCache, KeyAlgorithm, PinId};
use scard_transport::counting::Tally;
use serde::Serialize;

use crate::card_cmd::outcome;
use crate::conformance_cmd::keys::{self, KeyAt, Op};
use crate::conformance_cmd::session::{Connection, Credentials, Session, SimFamily, Target};
use crate::host::{self, DecryptCase, Ephemeral, SignCase};
use crate::readers_cmd::ReaderArgs;
use crate::{Outcome, to_json};

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    reader: ReaderArgs,
    /// Measure a fresh in-process simulated card (provisioned with RSA 2048 and P-256 keys and
    /// their certificates for the run).
    #[arg(long, value_enum, conflicts_with = "reader")]
    sim: Option<SimFamily>,
    /// Runs of each operation.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    ops: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Read the user PIN from this environment variable (else: the simulated card's default,
    /// standard input when it is not a terminal, or a prompt).
    #[arg(long, value_name = "VAR")]
    pin_env: Option<String>,
}

/// One measured operation.
#[derive(Debug, Serialize)]
struct Measured {
    name: String,
    runs: usize,
    median_ms: f64,
    p95_ms: f64,
    /// APDUs per run (median).
    apdus: u64,
    /// Command bytes per run (median).
    bytes_sent: u64,
    /// Response bytes per run (median).
    bytes_received: u64,
}

#[derive(Debug, Serialize)]
struct Skipped {
    name: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct CardJson {
    reader: String,
    model: String,
    family: String,
}

#[derive(Debug, Serialize)]
struct Report {
    card: CardJson,
    ops: u32,
    operations: Vec<Measured>,
    skipped: Vec<Skipped>,
}

/// One run: its time and its APDUs.
struct Sample {
    elapsed: Duration,
    tally: Tally,
}

/// Times `f` and counts the APDUs it sends on `conn`.
fn sample<T>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Connection) -> Result<T, String>,
) -> Result<(Sample, T), String> {
    let before = conn.counter.snapshot();
    let started = Instant::now();
    let value = f(conn)?;
    let elapsed = started.elapsed();
    let tally = conn.counter.snapshot().since(&before);
    Ok((Sample { elapsed, tally }, value))
}

/// The median (lower middle) and the 95th percentile (nearest rank) of values.
fn median_p95<T: Copy + Ord>(values: &mut [T]) -> Option<(T, T)> {
    values.sort_unstable();
    let n = values.len();
    let median = *values.get(n.saturating_sub(1) / 2)?;
    let rank = (n * 95).div_ceil(100).max(1);
    let p95 = *values.get(rank - 1)?;
    Some((median, p95))
}

fn summarize(name: &str, samples: &[Sample]) -> Option<Measured> {
    let mut times: Vec<Duration> = samples.iter().map(|s| s.elapsed).collect();
    let (median, p95) = median_p95(&mut times)?;
    let mut apdus: Vec<u64> = samples.iter().map(|s| s.tally.apdus).collect();
    let mut sent: Vec<u64> = samples.iter().map(|s| s.tally.bytes_sent).collect();
    let mut received: Vec<u64> = samples.iter().map(|s| s.tally.bytes_received).collect();
    // Milliseconds to 0.1 µs: an in-process card answers in microseconds.
    let ms = |d: Duration| (d.as_secs_f64() * 1e7).round() / 1e4;
    Some(Measured {
        name: name.to_owned(),
        runs: samples.len(),
        median_ms: ms(median),
        p95_ms: ms(p95),
        apdus: median_p95(&mut apdus)?.0,
        bytes_sent: median_p95(&mut sent)?.0,
        bytes_received: median_p95(&mut received)?.0,
    })
}

/// A progress line on standard error, when it is a terminal.
struct Progress {
    on: bool,
}

impl Progress {
    fn show(&self, name: &str, done: u32, total: u32) {
        if self.on {
            let width = 30usize;
            let filled = (done as usize * width) / (total.max(1) as usize);
            let bar = format!("{}{}", "#".repeat(filled), ".".repeat(width - filled.min(width)));
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{name:<32} [{bar}] {done}/{total} ");
            let _ = err.flush();
        }
    }

    fn clear(&self) {
        if self.on {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{:79}\r", "");
            let _ = err.flush();
        }
    }
}

/// The bench of one card.
struct Bench {
    main: Connection,
    session: Session,
    n: u32,
    progress: Progress,
    measured: Vec<Measured>,
    skipped: Vec<Skipped>,
}

/// `scard bench`.
pub(crate) fn run(args: &BenchArgs) -> Outcome {
    outcome((|| {
        let target = Target {
            reader: &args.reader,
            sim: args.sim,
            profile: None,
            pin_env: args.pin_env.as_deref(),
            admin_env: None,
        };
        let mut session = Session::new(&target)?;
        let main = session.connect()?;
        let mut bench = Bench {
            main,
            session,
            n: args.ops,
            progress: Progress { on: std::io::stderr().is_terminal() },
            measured: Vec::new(),
            skipped: Vec::new(),
        };
        if args.sim.is_some() {
            bench.provision()?;
        }
        bench.run_all();
        bench.progress.clear();
        let model = bench.main.card.model().clone();
        let report = Report {
            card: CardJson {
                reader: bench.main.card.channel().reader().to_owned(),
                model: model.name,
                family: model.family,
            },
            ops: args.ops,
            operations: std::mem::take(&mut bench.measured),
            skipped: std::mem::take(&mut bench.skipped),
        };
        if args.json {
            return Ok(to_json(&report, 0));
        }
        Ok(Outcome { text: table(&report), status: 0 })
    })())
}

fn table(report: &Report) -> String {
    let mut text = format!(
        "Card  {} ({}) on {}, {} runs per operation\n\n",
        report.card.model, report.card.family, report.card.reader, report.ops
    );
    text.push_str(&format!(
        "{:<36} {:>10} {:>10} {:>6} {:>8} {:>8}\n",
        "OPERATION", "MEDIAN ms", "P95 ms", "APDUS", "SENT B", "RECV B"
    ));
    for m in &report.operations {
        text.push_str(&format!(
            "{:<36} {:>10.4} {:>10.4} {:>6} {:>8} {:>8}\n",
            m.name, m.median_ms, m.p95_ms, m.apdus, m.bytes_sent, m.bytes_received
        ));
    }
    for s in &report.skipped {
        text.push_str(&format!("skipped {}: {}\n", s.name, s.reason));
    }
    text
}

/// Whether a key can do `op`, asked before any PIN.
fn can(conn: &mut Connection, key: &KeyAt, op: Op) -> bool {
    let index = key.index();
    match op {
        Op::Sign => SignCase::all(key.algorithm).first().is_some_and(|case| {
            case.input(key.algorithm)
                .is_ok_and(|input| conn.card.check_sign(index, &case.request(&input)).is_ok())
        }),
        Op::Decrypt => conn.card.check_decrypt(index, &DecryptPadding::Pkcs1).is_ok(),
        Op::Agree => {
            let KeyAlgorithm::Ec(curve) = key.algorithm else { return false };
            let Ok(eph) = Ephemeral::new(curve) else { return false };
            !matches!(
                conn.card.agree(index, &eph.public()),
                Err(scard_minidriver::CardError::Unsupported { .. })
            )
        }
    }
}

impl Bench {
    fn credentials(&mut self) -> &mut Credentials {
        &mut self.session.credentials
    }

    /// Keys for what is measured, with certificates (so that a new connection sees them and
    /// the enumeration has something to read): RSA 2048 to sign and decrypt, P-256 to sign
    /// and agree, each in the first free container that does it.
    fn provision(&mut self) -> Result<(), crate::card_cmd::Failure> {
        let props = self.main.card.properties()?;
        let mut log = Vec::new();
        for (alg, ops) in [
            (KeyAlgorithm::Rsa(2048), [Op::Sign, Op::Decrypt]),
            (KeyAlgorithm::Ec(Curve::P256), [Op::Sign, Op::Agree]),
        ] {
            if !props.algorithms.contains(&alg) {
                continue;
            }
            let mut needed: Vec<Op> = ops.to_vec();
            let (_, free) = keys::inventory(self.main.card.as_mut())?;
            for index in free {
                if needed.is_empty() {
                    break;
                }
                let public = keys::generate(
                    &mut self.main,
                    &mut self.session.credentials,
                    &mut log,
                    index,
                    alg,
                )?;
                let info = self.main.card.container(index)?;
                let key = KeyAt { info, public: public.clone(), algorithm: alg };
                let covered: Vec<Op> =
                    needed.iter().copied().filter(|op| can(&mut self.main, &key, *op)).collect();
                if covered.is_empty() {
                    keys::delete(&mut self.main, &mut self.session.credentials, &mut log, index)?;
                    continue;
                }
                let cert = host::certificate_for(&public, &format!("scard bench {alg}"))
                    .map_err(|e| crate::card_cmd::Failure(e, crate::EXIT_FAILURE))?;
                keys::put_certificate(
                    &mut self.main,
                    &mut self.session.credentials,
                    &mut log,
                    index,
                    Some(&cert),
                )?;
                needed.retain(|op| !covered.contains(op));
            }
        }
        Ok(())
    }

    fn skip(&mut self, name: &str, reason: impl Into<String>) {
        self.skipped.push(Skipped { name: name.to_owned(), reason: reason.into() });
    }

    fn record(&mut self, name: &str, samples: Result<Vec<Sample>, String>) {
        match samples {
            Ok(samples) => match summarize(name, &samples) {
                Some(m) => self.measured.push(m),
                None => self.skip(name, "no runs"),
            },
            Err(reason) => self.skip(name, reason),
        }
    }

    fn run_all(&mut self) {
        let name = "connect+identify";
        let samples = self.connect_identify(name);
        self.record(name, samples);
        let name = "enumerate certificates (cold)";
        let samples = self.enumerate_cold(name);
        self.record(name, samples);
        let name = "enumerate certificates (cached)";
        let samples = self.enumerate_cached(name);
        self.record(name, samples);
        let name = "verify PIN";
        let samples = self.verify_pin(name);
        self.record(name, samples);
        let inventory = keys::inventory(self.main.card.as_mut());
        let keys = match inventory {
            Ok((keys, _)) => keys,
            Err(err) => {
                self.skip("sign / decrypt / agree", format!("listing the containers: {err}"));
                return;
            }
        };
        let mut seen = Vec::new();
        for op in [Op::Sign, Op::Decrypt, Op::Agree] {
            for key in &keys {
                // One key per algorithm and operation, the first that does it.
                if seen.contains(&(op, key.algorithm)) || !host::host_supports(key.algorithm) {
                    continue;
                }
                if !Op::for_algorithm(key.algorithm).contains(&op) || !can(&mut self.main, key, op)
                {
                    continue;
                }
                seen.push((op, key.algorithm));
                let name = match op {
                    Op::Sign => format!("sign {} ({})", key.algorithm, sign_case(key).name),
                    Op::Decrypt => format!("decrypt {} (pkcs1)", key.algorithm),
                    Op::Agree => format!("agree {} (ecdh)", key.algorithm),
                };
                let samples = self.key_op(&name, key, op);
                self.record(&name, samples);
            }
        }
        for (op, alg) in [
            (Op::Sign, KeyAlgorithm::Rsa(2048)),
            (Op::Sign, KeyAlgorithm::Ec(Curve::P256)),
            (Op::Decrypt, KeyAlgorithm::Rsa(2048)),
            (Op::Agree, KeyAlgorithm::Ec(Curve::P256)),
        ] {
            if !seen.contains(&(op, alg)) {
                let name = format!("{} {alg}", op.name());
                self.skip(&name, format!("no {alg} key on the card that can {}", op.name()));
            }
        }
    }

    fn connect_identify(&mut self, name: &str) -> Result<Vec<Sample>, String> {
        let mut samples = Vec::new();
        for i in 0..self.n {
            self.progress.show(name, i, self.n);
            let started = Instant::now();
            let raw = self.session.raw().map_err(|e| e.to_string())?;
            let mut conn = self.session.open(raw).map_err(|e| e.to_string())?;
            conn.card.card_id().map_err(|e| e.to_string())?;
            let elapsed = started.elapsed();
            samples.push(Sample { elapsed, tally: conn.counter.snapshot() });
        }
        Ok(samples)
    }

    /// The certificates of every container, through the host cache.
    fn enumerate(conn: &mut Connection, cache: &mut FileCache) -> Result<usize, String> {
        let containers = conn.card.containers().map_err(|e| e.to_string())?;
        let mut found = 0;
        for c in containers.iter().filter(|c| c.has_certificate) {
            if cache.certificate(conn.card.as_mut(), c.index).map_err(|e| e.to_string())?.is_some()
            {
                found += 1;
            }
        }
        Ok(found)
    }

    /// A new connection and an empty cache each run (the connection is not timed).
    fn enumerate_cold(&mut self, name: &str) -> Result<Vec<Sample>, String> {
        let mut samples = Vec::new();
        for i in 0..self.n {
            self.progress.show(name, i, self.n);
            let mut conn = self.session.connect().map_err(|e| e.to_string())?;
            let mut cache = FileCache::in_memory();
            let (s, found) = sample(&mut conn, |c| Self::enumerate(c, &mut cache))?;
            if found == 0 {
                return Err("no certificate on the card".into());
            }
            samples.push(s);
        }
        Ok(samples)
    }

    /// One connection and a warm cache: what an application that enumerates again pays.
    fn enumerate_cached(&mut self, name: &str) -> Result<Vec<Sample>, String> {
        let mut conn = self.session.connect().map_err(|e| e.to_string())?;
        let mut cache = FileCache::in_memory();
        if Self::enumerate(&mut conn, &mut cache)? == 0 {
            return Err("no certificate on the card".into());
        }
        let reads = cache.card_reads();
        let mut samples = Vec::new();
        for i in 0..self.n {
            self.progress.show(name, i, self.n);
            let (s, _) = sample(&mut conn, |c| Self::enumerate(c, &mut cache))?;
            samples.push(s);
        }
        if cache.card_reads() != reads {
            tracing::debug!("bench: the cache read certificates from the card again");
        }
        Ok(samples)
    }

    fn verify_pin(&mut self, name: &str) -> Result<Vec<Sample>, String> {
        let pin = self.credentials().user()?;
        let mut samples = Vec::new();
        for i in 0..self.n {
            self.progress.show(name, i, self.n);
            let (s, ()) = sample(&mut self.main, |c| {
                c.card.authenticate(PinId::USER, &pin).map_err(|e| e.to_string())
            })?;
            samples.push(s);
        }
        Ok(samples)
    }

    /// Signs, decrypts or agrees `n` times; the PIN is verified before (before each run for
    /// a key that wants it every time), outside the time and count. The first result is
    /// checked on the host.
    fn key_op(&mut self, name: &str, key: &KeyAt, op: Op) -> Result<Vec<Sample>, String> {
        let index = key.index();
        let every_time = key.info.always_authenticate;
        let pin = key.info.pin;
        let verify = |bench: &mut Bench| -> Result<(), String> {
            bench
                .session
                .credentials
                .verify(bench.main.card.as_mut(), pin)
                .map_err(|e| e.to_string())
        };
        verify(self)?;
        let mut samples = Vec::new();
        for i in 0..self.n {
            self.progress.show(name, i, self.n);
            if every_time && i > 0 {
                verify(self)?;
            }
            let s = match op {
                Op::Sign => {
                    let case = sign_case(key);
                    let input = case.input(key.algorithm)?;
                    let (s, signature) = sample(&mut self.main, |c| {
                        c.card.sign(index, &case.request(&input)).map_err(|e| e.to_string())
                    })?;
                    if i == 0 {
                        case.verify(&key.public, &signature)?;
                    }
                    s
                }
                Op::Decrypt => {
                    let case = DecryptCase { name: "pkcs1", padding: DecryptPadding::Pkcs1 };
                    let (plain, cryptogram) = case.encrypt(&key.public)?;
                    let (s, secret) = sample(&mut self.main, |c| {
                        c.card.decrypt(index, &case.padding, &cryptogram).map_err(|e| e.to_string())
                    })?;
                    if secret.expose() != plain.as_slice() {
                        return Err("the card decrypted something else".into());
                    }
                    s
                }
                Op::Agree => {
                    let KeyAlgorithm::Ec(curve) = key.algorithm else {
                        return Err("not an EC key".into());
                    };
                    let eph = Ephemeral::new(curve)?;
                    let peer = eph.public();
                    let (s, secret) = sample(&mut self.main, |c| {
                        c.card.agree(index, &peer).map_err(|e| e.to_string())
                    })?;
                    if i == 0 && secret.expose() != eph.shared(&key.public)?.as_slice() {
                        return Err("the card's shared secret differs from the host's".into());
                    }
                    s
                }
            };
            samples.push(s);
        }
        Ok(samples)
    }
}

/// The signature measured for a key: PKCS#1 v1.5 with SHA-256, or ECDSA with SHA-256.
fn sign_case(key: &KeyAt) -> SignCase {
    SignCase::all(key.algorithm).first().copied().unwrap_or(SignCase::mismatched(key.algorithm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p95_by_nearest_rank() {
        let mut v: Vec<u32> = (1..=20).rev().collect();
        assert_eq!(median_p95(&mut v), Some((10, 19)));
        assert_eq!(median_p95(&mut [7u32]), Some((7, 7)));
        assert_eq!(median_p95::<u32>(&mut []), None);
        let mut three = [3u32, 1, 2];
        assert_eq!(median_p95(&mut three), Some((2, 3)));
    }
}
