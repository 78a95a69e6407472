//! Interop test sandbox: real clients (OpenSC, GnuPG, yubico-piv-tool) against `scard sim`
//! through a real pcscd, isolated per test.
//!
//! pcscd allows one instance per machine (its socket is /run/pcscd/pcscd.comm) and vsmartcard's
//! vpcd driver listens on fixed ports, so each interop test runs in its own Linux mount,
//! network and PID namespaces (`unshare`): a private /run/pcscd, a private loopback (the vpcd
//! ports 35963/35964 are free in every sandbox), and every process started inside (pcscd,
//! `scard sim`, gpg-agent, scdaemon) dies with the sandbox.
//!
//! A test calls [`sandbox`] first. Outside the sandbox that call re-runs the same test binary,
//! filtered to this one test, inside a new sandbox, checks that it passed, and returns `None`;
//! inside, it starts pcscd and returns the [`Sandbox`]. When the tools are missing (not root,
//! no pcscd or vpcd driver, no client) the test prints why it is skipped and returns — unless
//! `SCARD_REQUIRE_INTEROP=1` (set by .ci/run), which turns a skip into a failure.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Set inside a sandbox to the name of the test it runs.
const SANDBOX_ENV: &str = "SCARD_INTEROP_SANDBOX";
/// When set to 1, missing prerequisites fail the test instead of skipping it.
const REQUIRE_ENV: &str = "SCARD_REQUIRE_INTEROP";
/// The vsmartcard vpcd reader driver that pcscd loads.
const VPCD_DRIVER: &str = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";
/// OpenSC's PKCS#11 module on Debian.
pub const OPENSC_PKCS11: &str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";

/// The two vpcd slots of the stock configuration: TCP port and PC/SC reader name.
pub const SLOTS: [(u16, &str); 2] = [(35963, "Virtual PCD 00 00"), (35964, "Virtual PCD 00 01")];

/// Enters the sandbox for `test` (the test function's name), requiring the programs in
/// `tools` besides pcscd. See the module documentation.
pub fn sandbox(test: &str, tools: &[&str]) -> Option<Sandbox> {
    if std::env::var(SANDBOX_ENV).as_deref() == Ok(test) {
        return Some(Sandbox::start(test));
    }
    if let Err(reason) = prerequisites(tools) {
        if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") {
            panic!("{test}: interop prerequisites missing with {REQUIRE_ENV}=1: {reason}");
        }
        println!("skipped {test}: {reason}");
        return None;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let started = Instant::now();
    let out = Command::new("unshare")
        .args(["--mount", "--net", "--pid", "--fork", "--mount-proc", "--"])
        .arg(&exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(SANDBOX_ENV, test)
        .stdin(Stdio::null())
        .output()
        .expect("unshare runs");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!(
        "----- {test} in its sandbox ({:.1} s) -----\n{text}",
        started.elapsed().as_secs_f64()
    );
    assert!(out.status.success(), "{test} failed inside its sandbox: {}", out.status);
    assert!(text.contains("1 passed"), "{test} did not run inside its sandbox");
    None
}

/// Why the sandbox cannot run here with `tools`, if it cannot (for a test that prepares
/// something costly before it enters the sandbox).
pub fn sandbox_prerequisites(tools: &[&str]) -> Result<(), String> {
    prerequisites(tools)
}

/// Why the sandbox cannot run here, if it cannot.
fn prerequisites(tools: &[&str]) -> Result<(), String> {
    if !cfg!(target_os = "linux") {
        return Err("the sandbox needs Linux namespaces".into());
    }
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root =
        status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !root {
        return Err("not root (unshare and pcscd need it)".into());
    }
    if !Path::new(VPCD_DRIVER).exists() {
        return Err(format!("{VPCD_DRIVER} missing (apt-get install vsmartcard-vpcd)"));
    }
    for tool in ["unshare", "ip", "mount", "pcscd", "opensc-tool"].iter().chain(tools) {
        if which(tool).is_none() {
            return Err(format!("{tool} not found"));
        }
    }
    scard_binary().map(|_| ())
}

/// Finds a program on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Path::new(program).exists().then(|| PathBuf::from(program));
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The `scard` binary of this build (`cargo test --workspace` builds it next to the test
/// binaries: `target/<profile>/scard`).
pub fn scard_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let profile_dir = exe.parent().and_then(Path::parent).ok_or("odd test binary path")?;
    let bin = profile_dir.join("scard");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} missing: build it with `cargo build -p scard-cli` (or run `cargo test --workspace`)",
            bin.display()
        ))
    }
}

/// The scard PKCS#11 module of this build: `libscard_pkcs11.so` in `target/<profile>/deps/`
/// (where `cargo test --workspace` builds the cdylib) or `target/<profile>/` (`cargo build`),
/// whichever is newer.
pub fn pkcs11_module() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let deps = exe.parent().ok_or("odd test binary path")?;
    let profile_dir = deps.parent().ok_or("odd test binary path")?;
    let name =
        format!("{}scard_pkcs11{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    [deps.join(&name), profile_dir.join(&name)]
        .into_iter()
        .filter_map(|p| Some((fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
        .ok_or_else(|| {
            format!(
                "{name} missing: build it with `cargo build -p scard-pkcs11` (or run `cargo test \
                 --workspace`)"
            )
        })
}

/// For interop tests that need no sandbox: whether the programs in `tools` (names on PATH or
/// paths) and the PKCS#11 module are there. When they are not, the test prints why it is
/// skipped and should return — unless `SCARD_REQUIRE_INTEROP=1`, which fails it.
pub fn tools_present(test: &str, tools: &[&str]) -> bool {
    let missing = tools
        .iter()
        .find(|t| which(t).is_none())
        .map(|t| format!("{t} not found"))
        .or_else(|| pkcs11_module().err());
    match missing {
        None => true,
        Some(reason) if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") => {
            panic!("{test}: interop prerequisites missing with {REQUIRE_ENV}=1: {reason}")
        }
        Some(reason) => {
            println!("skipped {test}: {reason}");
            false
        }
    }
}

/// A simulated card attached to one vpcd slot.
#[derive(Debug)]
struct Sim {
    slot: usize,
    child: Child,
}

/// A running sandbox: a private pcscd with the two vpcd slots, and the cards attached.
#[derive(Debug)]
pub struct Sandbox {
    dir: PathBuf,
    pcscd: Child,
    sims: Vec<Sim>,
}

impl Sandbox {
    fn start(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("scard-interop-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("sandbox dir");
        must(Command::new("ip").args(["link", "set", "lo", "up"]));
        fs::create_dir_all("/run/pcscd").expect("/run/pcscd");
        must(Command::new("mount").args(["-t", "tmpfs", "tmpfs", "/run/pcscd"]));
        let log = fs::File::create(dir.join("pcscd.log")).expect("pcscd log");
        let pcscd = Command::new("pcscd")
            .args(["--foreground", "--apdu"])
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("pcscd starts");
        let sandbox = Sandbox { dir, pcscd, sims: Vec::new() };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new("/run/pcscd/pcscd.comm").exists() {
            assert!(
                Instant::now() < deadline,
                "pcscd did not create its socket:\n{}",
                sandbox.pcscd_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sandbox
    }

    /// A scratch directory for this test (state files, GNUPGHOME, certificates).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The PC/SC reader name of a vpcd slot (0 or 1).
    pub fn reader(slot: usize) -> &'static str {
        SLOTS.get(slot).map_or("Virtual PCD 00 00", |s| s.1)
    }

    /// Starts `scard sim <family>` on vpcd slot `slot` (0 or 1), with optional extra
    /// arguments (`--state FILE`, `--seed N`), and waits until pcscd reports the card present.
    pub fn attach(&mut self, family: &str, slot: usize, extra: &[&OsStr]) {
        let (port, _) = *SLOTS.get(slot).expect("slot 0 or 1");
        let bin = scard_binary().expect("scard binary");
        let log = fs::File::create(self.dir.join(format!("sim-{slot}.log"))).expect("sim log");
        let child = Command::new(bin)
            .args(["sim", family, "--vpcd", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("scard sim starts");
        self.sims.push(Sim { slot, child });
        // pcscd polls vpcd about every 400 ms; the card is there when opensc-tool reads an ATR
        // from its reader (no APDU is sent for that).
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if self.card_present(slot) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "card on slot {slot} not seen by pcscd:\n{}\n{}",
                self.sim_log(slot),
                self.pcscd_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the card on `slot` with SIGTERM (it saves its state and disconnects: the card
    /// counts as removed), waits until pcscd has noticed the removal, and returns what
    /// `scard sim` printed.
    pub fn detach(&mut self, slot: usize) -> String {
        if let Some(pos) = self.sims.iter().position(|s| s.slot == slot) {
            let mut sim = self.sims.remove(pos);
            terminate(&mut sim.child);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.card_present(slot) {
            assert!(Instant::now() < deadline, "pcscd still sees a card on slot {slot}");
            std::thread::sleep(Duration::from_millis(100));
        }
        self.sim_log(slot)
    }

    /// Whether pcscd reports a card on `slot` (asks for the ATR only: no APDU is sent).
    pub fn card_present(&self, slot: usize) -> bool {
        Command::new("opensc-tool")
            .args(["--reader", Self::reader(slot), "--atr"])
            .output()
            .is_ok_and(|out| out.status.success())
    }

    /// What `scard sim` on `slot` printed so far.
    pub fn sim_log(&self, slot: usize) -> String {
        fs::read_to_string(self.dir.join(format!("sim-{slot}.log"))).unwrap_or_default()
    }

    /// pcscd's log so far (with `--apdu`: every command APDU and status word).
    pub fn pcscd_log(&self) -> String {
        fs::read_to_string(self.dir.join("pcscd.log")).unwrap_or_default()
    }

    /// Number of command APDUs pcscd has passed to cards so far. Take it before and after a
    /// client run to count that run's APDUs.
    pub fn apdu_count(&self) -> usize {
        self.pcscd_log().lines().filter(|l| l.contains(" APDU: ")).count()
    }

    /// The card round-trip times pcscd logged (the time between each `APDU:` line and the
    /// `SW:` line that follows it), in microseconds, from log line `from` on.
    pub fn apdu_round_trips_us(&self, from_apdu: usize) -> Vec<u64> {
        let log = self.pcscd_log();
        let mut seen = 0;
        let mut out = Vec::new();
        let mut after_apdu = false;
        for line in log.lines() {
            if line.contains(" APDU: ") {
                seen += 1;
                after_apdu = seen > from_apdu;
            } else if after_apdu && line.contains(" SW: ") {
                // pcscd prefixes every line with the microseconds since the previous line.
                if let Some(us) = line.split_whitespace().next().and_then(|t| t.parse().ok()) {
                    out.push(us);
                }
                after_apdu = false;
            }
        }
        out
    }

    /// Runs a command to completion (stdin closed) and returns its output.
    pub fn run(&self, cmd: &mut Command) -> Output {
        cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
    }

    /// Runs a command that must succeed; returns its standard output and prints both streams.
    pub fn ok(&self, cmd: &mut Command) -> String {
        let out = self.run(cmd);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("$ {cmd:?}\n{}{}", tail(&stdout, 30), tail(&stderr, 30));
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}\n{stdout}\n{stderr}\n--- pcscd log tail ---\n{}",
            out.status,
            tail(&self.pcscd_log(), 40)
        );
        stdout
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for sim in &mut self.sims {
            terminate(&mut sim.child);
        }
        terminate(&mut self.pcscd);
        // Keep the logs of a failed test for a look; a passed one leaves nothing behind.
        if std::thread::panicking() {
            eprintln!("sandbox files kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// SIGTERM (through kill(1): this crate has no unsafe code), then wait up to 5 s, then kill.
fn terminate(child: &mut Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn must(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The median of some numbers (0 for none).
pub fn median(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}
