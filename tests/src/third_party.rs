//! Third-party card implementations for interop tests: Nitrokey's `piv-authenticator` (PIV)
//! and `opcard` (OpenPGP card), from crates.io, run by our glue in `tests/third-party/` as
//! virtual cards that connect to a vpcd port (ours, `vpcd:HOST:PORT`, or pcscd's
//! vsmartcard-vpcd slots).
//!
//! That program is its own cargo workspace, outside the default build: [`cards`] builds it
//! once per test run (`cargo build --release --locked`, into `<target>/third-party`, under a
//! file lock so parallel test processes build it once) and returns the binaries. When it cannot
//! be built here (no network to crates.io, no libclang for bindgen) a test calls
//! [`cards_or_skip`], which prints why and skips — unless `SCARD_REQUIRE_INTEROP=1` (set by
//! .ci/run), which turns the skip into a failure.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// When set to 1, a card program that cannot be built fails the test instead of skipping it.
const REQUIRE_ENV: &str = "SCARD_REQUIRE_INTEROP";
/// Set by the interop sandbox inside its network namespace (no network: build offline).
const SANDBOX_ENV: &str = "SCARD_INTEROP_SANDBOX";

/// The two card programs, built.
#[derive(Debug, Clone)]
pub struct Cards {
    /// `piv-authenticator-vpcd`.
    pub piv: PathBuf,
    /// `opcard-vpcd`.
    pub opcard: PathBuf,
    /// How long `cargo build` took in this process (near zero when it was already built).
    pub build_time: Duration,
}

/// Which third-party card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Card {
    /// Nitrokey piv-authenticator 0.7.0: PIN 123456, PUK 12345678, 3DES management key
    /// 0102030405060708 x3.
    Piv,
    /// Nitrokey opcard 1.11.0: PW1 123456, PW3 12345678.
    OpenPgp,
}

impl Card {
    /// The program's path.
    pub fn binary(self, cards: &Cards) -> &Path {
        match self {
            Card::Piv => &cards.piv,
            Card::OpenPgp => &cards.opcard,
        }
    }

    /// The name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Card::Piv => "piv-authenticator",
            Card::OpenPgp => "opcard",
        }
    }
}

/// The ATR both programs present (vpicc's default).
pub const ATR: [u8; 11] = [0x3B, 0x95, 0x13, 0x81, 0x01, 0x80, 0x73, 0xFF, 0x01, 0x00, 0x0B];

/// The program's workspace: `tests/third-party/Cargo.toml`.
pub fn manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("third-party").join("Cargo.toml")
}

/// `<target>/third-party`, next to the profile directory this test binary runs from.
fn target_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("test binary path: {e}"))?;
    // <target>/<profile>/deps/<test binary>
    exe.ancestors()
        .nth(3)
        .map(|target| target.join("third-party"))
        .ok_or_else(|| format!("odd test binary path {}", exe.display()))
}

/// Builds the card programs once per process (and, through the file lock and cargo's
/// freshness checks, once per test run) and returns them, or why they cannot be built.
pub fn cards() -> Result<&'static Cards, String> {
    static CARDS: OnceLock<Result<Cards, String>> = OnceLock::new();
    CARDS.get_or_init(build).as_ref().map_err(Clone::clone)
}

/// [`cards`] for a test: `None` (after printing why) when they cannot be built here, unless
/// `SCARD_REQUIRE_INTEROP=1`, which panics instead.
pub fn cards_or_skip(test: &str) -> Option<&'static Cards> {
    match cards() {
        Ok(cards) => Some(cards),
        Err(reason) => {
            if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") {
                panic!("{test}: third-party cards unavailable with {REQUIRE_ENV}=1: {reason}");
            }
            println!("skipped {test}: {reason}");
            None
        }
    }
}

fn build() -> Result<Cards, String> {
    let manifest = manifest();
    if !manifest.is_file() {
        return Err(format!("{} missing", manifest.display()));
    }
    let target = target_dir()?;
    fs::create_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut args: Vec<&OsStr> = Vec::new();
    let lock = target.join(".build.lock");
    // flock(1) (util-linux) serialises the build across test processes; without it, cargo's
    // own lock on the build directory still does, less politely.
    let mut cmd = if crate::interop::which("flock").is_some() {
        args.push(lock.as_os_str());
        args.push(cargo.as_os_str());
        Command::new("flock")
    } else {
        Command::new(&cargo)
    };
    args.extend(["build", "--release", "--locked", "--manifest-path"].map(OsStr::new));
    args.push(manifest.as_os_str());
    // Builds share 2 cores with everything else, unless the caller says otherwise.
    if std::env::var_os("CARGO_BUILD_JOBS").is_none() {
        args.push(OsStr::new("-j2"));
    }
    if std::env::var_os(SANDBOX_ENV).is_some() {
        args.push(OsStr::new("--offline"));
    }
    cmd.args(&args).env("CARGO_TARGET_DIR", &target).stdin(Stdio::null());
    let started = Instant::now();
    let out = cmd.output().map_err(|e| format!("cannot run {}: {e}", cargo.to_string_lossy()))?;
    let build_time = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(why_not_built(&stderr));
    }
    let release = target.join("release");
    let cards = Cards {
        piv: release.join("piv-authenticator-vpcd"),
        opcard: release.join("opcard-vpcd"),
        build_time,
    };
    for bin in [&cards.piv, &cards.opcard] {
        if !bin.is_file() {
            return Err(format!("{} missing after a successful build", bin.display()));
        }
    }
    println!(
        "third-party cards: `cargo build --release` of {} took {:.1} s",
        manifest.display(),
        build_time.as_secs_f64()
    );
    Ok(cards)
}

/// A short reason from cargo's output.
fn why_not_built(stderr: &str) -> String {
    let tail = crate::interop::tail(stderr, 15);
    let lower = stderr.to_lowercase();
    if lower.contains("libclang") || lower.contains("clang-sys") {
        format!("libclang not found for bindgen (apt-get install libclang-dev):\n{tail}")
    } else if [
        "failed to download",
        "failed to get",
        "failed to query replaced source registry",
        "could not resolve host",
        "network",
        "attempting to make an http request, but --offline",
    ]
    .iter()
    .any(|s| lower.contains(s))
    {
        format!("crates.io not reachable to fetch the card crates:\n{tail}")
    } else {
        format!("cargo build of the third-party cards failed:\n{tail}")
    }
}

/// A running card program, stopped (SIGKILL) when dropped.
#[derive(Debug)]
pub struct CardProcess {
    child: Child,
    log: PathBuf,
    card: Card,
}

impl CardProcess {
    /// Starts `card` connecting to the vpcd listener at `vpcd` (HOST:PORT), trying for up to
    /// `wait` (and again after each disconnection), with `extra` arguments (`--state DIR`,
    /// `--once`, `--trace`, `--serial HEX8`); its stderr goes to `log`.
    pub fn start(
        cards: &Cards,
        card: Card,
        vpcd: &str,
        wait: Duration,
        extra: &[&OsStr],
        log: &Path,
    ) -> Self {
        let file = fs::File::create(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let stdout = file.try_clone().unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let child = Command::new(card.binary(cards))
            .args(["--vpcd", vpcd, "--wait", &wait.as_secs().to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", card.binary(cards).display()));
        CardProcess { child, log: log.to_owned(), card }
    }

    /// What the program printed so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Which card this is.
    pub fn card(&self) -> Card {
        self.card
    }

    /// Waits up to `within` for the program to exit by itself; its exit status when it did.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the program (it keeps nothing in memory worth saving: storage writes go straight
    /// to the state files) and returns its log.
    pub fn stop(mut self) -> String {
        self.kill();
        self.log()
    }

    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for CardProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
