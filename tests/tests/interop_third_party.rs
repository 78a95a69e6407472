//! Real card implementations nobody here wrote — Nitrokey's `piv-authenticator` 0.7.0 (PIV)
//! and `opcard` 1.11.0 (OpenPGP card 3.4), from crates.io, run by `tests/third-party/` on
//! trussed's virtual platform — against our stack:
//!
//! - through our own `vpcd:` reader backend, without pcscd (our stack listens, the card
//!   connects): `scard info` and `scard readers`, then scard-transport's `VpcdBackend` +
//!   `Registry` and scard-iso7816's `Exchange` engine: SELECT, GET DATA, VERIFY with the
//!   default PIN, a wrong PIN costing one try, and a reset dropping the PIN state;
//! - through PC/SC: a real pcscd with vsmartcard-vpcd in the interop sandbox, the card on slot
//!   0: `scard info --reader "pcsc:Virtual PCD 00 00"`, and OpenSC recognising the card
//!   (`opensc-tool -n`) and listing its token (`pkcs11-tool -L`).
//!
//! The card programs are built once per test run (tests/src/third_party.rs); without network
//! or libclang the tests say why and skip, unless SCARD_REQUIRE_INTEROP=1.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use scard_iso7816::hex::encode_spaced;
use scard_iso7816::{CardLimits, CommandApdu, Exchange, ResponseApdu, Step};
use scard_tests::interop::{OPENSC_PKCS11, Sandbox, sandbox, scard_binary};
use scard_tests::third_party::{ATR, Card, CardProcess, Cards, cards_or_skip};
use scard_transport::vpcd::VpcdBackend;
use scard_transport::{CardTransport, Disposition, Registry, ShareMode};
use serde_json::Value;

/// PIV application identifier, SP 800-73-4 Pt 1 §2.2 (with version 01 00).
const PIV_AID: [u8; 11] = [0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00];
/// OpenPGP application, OpenPGP card 3.4 §4.2.1: RID D2 76 00 01 24, PIX application 01.
const OPENPGP_AID: [u8; 6] = [0xD2, 0x76, 0x00, 0x01, 0x24, 0x01];
/// Both cards' default user PIN.
const PIN: &[u8] = b"123456";
const WRONG_PIN: &[u8] = b"654321";
const ATR_HEX: &str = "3B951381018073FF01000B";

/// What a test prints at its end: how long it took.
struct Timer(&'static str, Instant);

impl Drop for Timer {
    fn drop(&mut self) {
        println!("[time] {}: {:.2} s", self.0, self.1.elapsed().as_secs_f64());
    }
}

/// The card programs and the `scard` binary, or `None` when the test must skip.
fn prerequisites(test: &str) -> Option<(&'static Cards, PathBuf)> {
    let cards = cards_or_skip(test)?;
    println!("[time] third-party build (this process): {:.2} s", cards.build_time.as_secs_f64());
    match scard_binary() {
        Ok(bin) => Some((cards, bin)),
        Err(reason) => {
            if std::env::var("SCARD_REQUIRE_INTEROP").as_deref() == Ok("1") {
                panic!("{test}: {reason}");
            }
            println!("skipped {test}: {reason}");
            None
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scard-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {}\nstderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// One logical command through scard-iso7816's exchange engine (GET RESPONSE on 61xx, Le
/// correction on 6Cxx, chaining) over `t`; prints every APDU and the time it took.
fn exchange(t: &mut dyn CardTransport, command: &CommandApdu) -> ResponseApdu {
    let mut engine = Exchange::new(command, CardLimits::default()).unwrap();
    loop {
        let apdu = engine.apdu().to_vec();
        let started = Instant::now();
        let answer = t.transmit(&apdu).unwrap_or_else(|e| panic!("{}: {e}", t.reader()));
        let us = started.elapsed().as_micros();
        // The trace blanks PINs, as ours does (DESIGN.md).
        let shown = match apdu.as_slice() {
            [_, 0x20, ..] if apdu.len() > 5 => format!("{} [PIN]", encode_spaced(&apdu[..5])),
            _ => encode_spaced(&apdu),
        };
        println!("  >> {shown}\n  << {} ({us} us)", encode_spaced(&answer));
        match engine.receive(&answer).unwrap() {
            Step::Transmit => continue,
            Step::Done(response) => return response,
        }
    }
}

fn cmd(ins: u8, p1: u8, p2: u8, data: &[u8], ne: Option<u32>) -> CommandApdu {
    let mut c = CommandApdu::new(0x00, ins, p1, p2);
    if !data.is_empty() {
        c = c.with_data(data.to_vec()).unwrap();
    }
    if let Some(ne) = ne {
        c = c.with_ne(ne).unwrap();
    }
    c
}

/// PIV PINs are 8 bytes, padded with FF (SP 800-73-4 Pt 2 §2.4.3).
fn piv_pin(pin: &[u8]) -> Vec<u8> {
    let mut padded = pin.to_vec();
    padded.resize(8, 0xFF);
    padded
}

/// `scard info` and `scard readers` on `vpcd:127.0.0.1:<port>`, with `card` (already started
/// and retrying) connecting to each in turn.
fn scard_cli_over_vpcd(scard: &PathBuf, port: u16, card: &CardProcess) {
    let reader = format!("vpcd:127.0.0.1:{port}");

    // scard info listens, waits for the card, powers it on and reads its ATR.
    let started = Instant::now();
    let out = Command::new(scard)
        .args(["info", "--reader", &reader, "--wait", "60", "--json"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scard info: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        card.log()
    );
    let v = json(&out);
    println!(
        "$ scard info --reader {reader} --json ({:.2} s)\n{v}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(v["reader"], reader.as_str());
    assert_eq!(v["atr"], ATR_HEX, "{} presents the ATR of INTEROP.md", card.card().name());
    assert_eq!(v["protocol"], "T1");

    // scard readers lists the reader; the card reconnects as soon as the port listens.
    let started = Instant::now();
    let out = Command::new(scard)
        .args(["readers", "--reader", &reader, "--wait", "60", "--json"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "scard readers: {}", String::from_utf8_lossy(&out.stderr));
    let v = json(&out);
    println!(
        "$ scard readers --reader {reader} --json ({:.2} s)\n{v}",
        started.elapsed().as_secs_f64()
    );
    let listed = v["readers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == reader.as_str())
        .unwrap_or_else(|| panic!("{reader} not listed: {v}"));
    // A named vpcd: reader waits --wait for its card before listing.
    assert_eq!(listed["card"], true, "{v}");
    assert_eq!(listed["atr"], ATR_HEX);
}

/// Connects to the card through scard-transport's vpcd backend on `port` (the card
/// reconnects to it), checking the ATR and the reader name.
fn connect_vpcd(port: u16) -> (Registry, Box<dyn CardTransport>) {
    let backend = VpcdBackend::listen("127.0.0.1", port, Duration::from_secs(60)).unwrap();
    let name = backend.name().to_owned();
    assert_eq!(name, format!("vpcd:127.0.0.1:{port}"));
    let mut registry = Registry::new();
    registry.add(Box::new(backend));
    let started = Instant::now();
    let t = registry.connect(Some(&name), ShareMode::Shared).unwrap();
    println!("connected to {} in {:.2} s", t.reader(), started.elapsed().as_secs_f64());
    assert_eq!(t.reader(), name);
    assert_eq!(t.atr(), ATR);
    (registry, t)
}

#[test]
fn piv_authenticator_over_our_vpcd_backend() {
    let test = "piv_authenticator_over_our_vpcd_backend";
    let _timer = Timer(test, Instant::now());
    let Some((cards, scard)) = prerequisites(test) else { return };
    let dir = scratch(test);
    let port = free_port();
    let card = CardProcess::start(
        cards,
        Card::Piv,
        &format!("127.0.0.1:{port}"),
        Duration::from_secs(60),
        &[],
        &dir.join("card.log"),
    );
    scard_cli_over_vpcd(&scard, port, &card);

    let (_registry, mut t) = connect_vpcd(port);
    let t = t.as_mut();

    // SELECT the PIV application: the application property template (SP 800-73-4 Pt 2
    // §3.1.1), tag 61 with the AID (4F) inside.
    let r = exchange(t, &cmd(0xA4, 0x04, 0x00, &PIV_AID, Some(256)));
    assert!(r.is_success(), "SELECT PIV: {:?}", r.sw());
    assert_eq!(r.data().first(), Some(&0x61), "application property template");
    assert!(r.data().windows(2).any(|w| w == [0x4F, 0x06]), "AID in the template");

    // GET DATA, Discovery object (tag list 5C 01 7E; Pt 1 §3.3.6): 7E { 4F PIV AID, 5F2F PIN
    // usage policy }.
    let r = exchange(t, &cmd(0xCB, 0x3F, 0xFF, &[0x5C, 0x01, 0x7E], Some(256)));
    assert!(r.is_success(), "GET DATA discovery: {:?}", r.sw());
    let d = r.data();
    assert_eq!(d.first(), Some(&0x7E), "{}", encode_spaced(d));
    assert!(
        d.windows(13).any(|w| w[..2] == [0x4F, 0x0B] && w[2..] == PIV_AID),
        "{}",
        encode_spaced(d)
    );
    assert!(d.windows(2).any(|w| w == [0x5F, 0x2F]), "PIN usage policy: {}", encode_spaced(d));

    // VERIFY without data asks for the PIN's state: 63Cx, x tries left.
    let before = exchange(t, &cmd(0x20, 0x00, 0x80, &[], None)).sw();
    let tries = before.tries_left().unwrap_or_else(|| panic!("PIN state: {before:?}"));
    println!("PIN tries left: {tries}");
    // A wrong PIN costs one try ...
    let wrong = exchange(t, &cmd(0x20, 0x00, 0x80, &piv_pin(WRONG_PIN), None)).sw();
    assert_eq!(wrong.tries_left(), Some(tries - 1), "wrong PIN: {wrong:?}");
    // ... the right one (8 bytes, FF-padded) verifies and resets the counter.
    let right = exchange(t, &cmd(0x20, 0x00, 0x80, &piv_pin(PIN), None)).sw();
    assert!(right.is_success(), "VERIFY 123456: {right:?}");
    let state = exchange(t, &cmd(0x20, 0x00, 0x80, &[], None)).sw();
    assert!(state.is_success(), "PIN verified: {state:?}");

    // A reset through our transport drops the card's security state (and the selection).
    t.reconnect(Disposition::Reset).unwrap();
    assert_eq!(t.atr(), ATR);
    let r = exchange(t, &cmd(0xA4, 0x04, 0x00, &PIV_AID, Some(256)));
    assert!(r.is_success());
    let state = exchange(t, &cmd(0x20, 0x00, 0x80, &[], None)).sw();
    assert_eq!(state.tries_left(), Some(tries), "after the reset, not verified: {state:?}");

    // The truncated PIV AID (yubico-piv-tool's) is not accepted by this card (INTEROP.md).
    let r = exchange(t, &cmd(0xA4, 0x04, 0x00, &PIV_AID[..5], Some(256)));
    println!("SELECT truncated PIV AID: {:?}", r.sw());

    t.disconnect(Disposition::Leave).unwrap();
    let log = card.stop();
    println!("--- card log ---\n{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn opcard_over_our_vpcd_backend() {
    let test = "opcard_over_our_vpcd_backend";
    let _timer = Timer(test, Instant::now());
    let Some((cards, scard)) = prerequisites(test) else { return };
    let dir = scratch(test);
    let port = free_port();
    let card = CardProcess::start(
        cards,
        Card::OpenPgp,
        &format!("127.0.0.1:{port}"),
        Duration::from_secs(60),
        &[],
        &dir.join("card.log"),
    );
    scard_cli_over_vpcd(&scard, port, &card);

    let (_registry, mut t) = connect_vpcd(port);
    let t = t.as_mut();

    // SELECT the OpenPGP application by its RID + PIX (OpenPGP card 3.4 §7.2.1).
    let r = exchange(t, &cmd(0xA4, 0x04, 0x00, &OPENPGP_AID, None));
    assert!(r.is_success(), "SELECT OpenPGP: {:?}", r.sw());

    // GET DATA 6E, application related data (§4.4.1): the full AID (4F, 16 bytes, version
    // 3.4 at offsets 6-7), historical bytes, extended capabilities ...
    let r = exchange(t, &cmd(0xCA, 0x00, 0x6E, &[], Some(256)));
    assert!(r.is_success(), "GET DATA 6E: {:?}", r.sw());
    let d = r.data();
    let aid_at = d
        .windows(2 + OPENPGP_AID.len())
        .position(|w| w[..2] == [0x4F, 0x10] && w[2..] == OPENPGP_AID)
        .unwrap_or_else(|| panic!("AID in 6E: {}", encode_spaced(d)));
    let version = &d[aid_at + 2 + 6..aid_at + 2 + 8];
    println!("OpenPGP card version {}.{}; 6E starts with {:02X}", version[0], version[1], d[0]);
    assert_eq!(version, [3, 4]);

    // VERIFY PW1 (81) without data: 63Cx; a wrong PIN costs one try; 123456 verifies.
    let before = exchange(t, &cmd(0x20, 0x00, 0x81, &[], None)).sw();
    let tries = before.tries_left().unwrap_or_else(|| panic!("PW1 state: {before:?}"));
    println!("PW1 tries left: {tries}");
    let wrong = exchange(t, &cmd(0x20, 0x00, 0x81, WRONG_PIN, None)).sw();
    assert_eq!(wrong.tries_left(), Some(tries - 1), "wrong PW1: {wrong:?}");
    let right = exchange(t, &cmd(0x20, 0x00, 0x81, PIN, None)).sw();
    assert!(right.is_success(), "VERIFY 81 123456: {right:?}");
    let state = exchange(t, &cmd(0x20, 0x00, 0x81, &[], None)).sw();
    assert!(state.is_success(), "PW1 verified: {state:?}");

    // A reset drops the verification.
    t.reconnect(Disposition::Reset).unwrap();
    let r = exchange(t, &cmd(0xA4, 0x04, 0x00, &OPENPGP_AID, None));
    assert!(r.is_success());
    let state = exchange(t, &cmd(0x20, 0x00, 0x81, &[], None)).sw();
    assert_eq!(state.tries_left(), Some(tries), "after the reset, not verified: {state:?}");

    t.disconnect(Disposition::Leave).unwrap();
    let log = card.stop();
    println!("--- card log ---\n{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The card on vpcd slot 0 of the sandbox's pcscd, seen through PC/SC by `scard info` and by
/// OpenSC.
fn through_pcscd(test: &'static str, card: Card, opensc_name: &str) {
    let _timer = Timer(test, Instant::now());
    // Built outside the sandbox (network); inside, the build is fresh and offline.
    let Some(cards) = cards_or_skip(test) else { return };
    println!("[time] third-party build (this process): {:.2} s", cards.build_time.as_secs_f64());
    let Some(sb) = sandbox(test, &["pkcs11-tool"]) else { return };
    let started = Instant::now();
    let log = sb.dir().join("card.log");
    let process = CardProcess::start(
        cards,
        card,
        "127.0.0.1:35963",
        Duration::from_secs(20),
        &[OsStr::new("--trace")],
        &log,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sb.card_present(0) {
        assert!(
            Instant::now() < deadline,
            "pcscd does not see the card:\n{}\n{}",
            process.log(),
            sb.pcscd_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("card present in pcscd after {:.2} s", started.elapsed().as_secs_f64());
    let reader = Sandbox::reader(0);

    // Our PC/SC backend.
    let out = sb.ok(Command::new(scard_binary().unwrap()).args([
        "info",
        "--reader",
        &format!("pcsc:{reader}"),
        "--json",
    ]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["reader"], format!("pcsc:{reader}"));
    assert_eq!(v["atr"], ATR_HEX);

    // OpenSC's card drivers recognise the card ...
    let before = sb.apdu_count();
    let started = Instant::now();
    let out = sb.ok(Command::new("opensc-tool").args(["--reader", reader, "-n"]));
    println!(
        "opensc-tool -n: {:?}, {} APDUs, {:.2} s",
        out.trim(),
        sb.apdu_count() - before,
        started.elapsed().as_secs_f64()
    );
    assert!(out.contains(opensc_name), "opensc-tool -n says {out:?}, expected {opensc_name:?}");

    // ... and its PKCS#11 module lists a token.
    let before = sb.apdu_count();
    let started = Instant::now();
    let out = sb.ok(Command::new("pkcs11-tool").args(["--module", OPENSC_PKCS11, "-L"]));
    println!(
        "pkcs11-tool -L: {} APDUs, {:.2} s",
        sb.apdu_count() - before,
        started.elapsed().as_secs_f64()
    );
    assert!(out.contains("token label"), "no token listed:\n{out}");
    assert!(out.contains(reader), "not on {reader}:\n{out}");

    let mut rtts = sb.apdu_round_trips_us(0);
    println!(
        "{} APDUs through pcscd, median card round trip {} us",
        rtts.len(),
        scard_tests::interop::median(&mut rtts)
    );
    let card_log = process.stop();
    println!("--- card log (tail) ---\n{}", scard_tests::interop::tail(&card_log, 40));
}

#[test]
fn piv_authenticator_through_pcscd() {
    through_pcscd(
        "piv_authenticator_through_pcscd",
        Card::Piv,
        "Personal Identity Verification Card",
    );
}

#[test]
fn opcard_through_pcscd() {
    through_pcscd("opcard_through_pcscd", Card::OpenPgp, "OpenPGP");
}

/// A card program with `extra` arguments, connected to a fresh listener of our vpcd backend.
fn attach(
    cards: &Cards,
    card: Card,
    extra: &[&OsStr],
    log: &std::path::Path,
) -> (CardProcess, Registry, Box<dyn CardTransport>) {
    let backend = VpcdBackend::listen("127.0.0.1", 0, Duration::from_secs(60)).unwrap();
    let port = backend.port().unwrap();
    let name = backend.name().to_owned();
    let process = CardProcess::start(
        cards,
        card,
        &format!("127.0.0.1:{port}"),
        Duration::from_secs(60),
        &[&[OsStr::new("--once")], extra].concat(),
        log,
    );
    let mut registry = Registry::new();
    registry.add(Box::new(backend));
    let t = registry
        .connect(Some(&name), ShareMode::Shared)
        .unwrap_or_else(|e| panic!("{e}\n{}", process.log()));
    (process, registry, t)
}

/// With `--state DIR` both storage locations survive a restart of the program: the PIN retry
/// counter (internal storage, trussed-auth) and the card's data and keys (external storage):
/// piv-authenticator's CHUID with its random GUID, an opcard key generated on the card. A card
/// without state is a different card (its entropy comes from the OS).
#[test]
fn third_party_cards_keep_their_state_across_restarts() {
    let test = "third_party_cards_keep_their_state_across_restarts";
    let _timer = Timer(test, Instant::now());
    let Some(cards) = cards_or_skip(test) else { return };
    let dir = scratch(test);
    let state_args = |name: &str| {
        let state = dir.join(name);
        vec![OsStr::new("--state").to_owned(), state.into_os_string()]
    };

    // piv-authenticator: CHUID (GET DATA 5FC102) and a wrong PIN, then a restart.
    let piv_state = state_args("piv");
    let piv_state: Vec<&OsStr> = piv_state.iter().map(|s| s.as_os_str()).collect();
    let select_piv = cmd(0xA4, 0x04, 0x00, &PIV_AID, Some(256));
    let chuid = cmd(0xCB, 0x3F, 0xFF, &[0x5C, 0x03, 0x5F, 0xC1, 0x02], Some(256));
    let (process, _registry, mut t) = attach(cards, Card::Piv, &piv_state, &dir.join("piv1.log"));
    assert!(exchange(t.as_mut(), &select_piv).is_success());
    let first = exchange(t.as_mut(), &chuid);
    assert!(first.is_success(), "CHUID: {:?}", first.sw());
    let wrong = exchange(t.as_mut(), &cmd(0x20, 0x00, 0x80, &piv_pin(WRONG_PIN), None)).sw();
    let tries = wrong.tries_left().unwrap_or_else(|| panic!("wrong PIN: {wrong:?}"));
    drop(t);
    process.stop();

    let (process, _registry, mut t) = attach(cards, Card::Piv, &piv_state, &dir.join("piv2.log"));
    assert!(exchange(t.as_mut(), &select_piv).is_success());
    let again = exchange(t.as_mut(), &chuid);
    assert_eq!(again.data(), first.data(), "the CHUID survives a restart");
    let state = exchange(t.as_mut(), &cmd(0x20, 0x00, 0x80, &[], None)).sw();
    assert_eq!(state.tries_left(), Some(tries), "the retry counter survives a restart");
    let right = exchange(t.as_mut(), &cmd(0x20, 0x00, 0x80, &piv_pin(PIN), None)).sw();
    assert!(right.is_success(), "{right:?}");
    drop(t);
    process.stop();

    let (process, _registry, mut t) = attach(cards, Card::Piv, &[], &dir.join("piv3.log"));
    assert!(exchange(t.as_mut(), &select_piv).is_success());
    let other = exchange(t.as_mut(), &chuid);
    assert!(other.is_success());
    assert_ne!(other.data(), first.data(), "another card has another CHUID (GUID)");
    drop(t);
    process.stop();

    // opcard: a P-256 signing key generated on the card (OpenPGP card 3.4 §4.4.3.9 algorithm
    // attributes C1 = 13 + OID; §7.2.14 GENERATE ASYMMETRIC KEY PAIR), then a restart.
    let pgp_state = state_args("opcard");
    let pgp_state: Vec<&OsStr> = pgp_state.iter().map(|s| s.as_os_str()).collect();
    let select_pgp = cmd(0xA4, 0x04, 0x00, &OPENPGP_AID, None);
    let read_public = cmd(0x47, 0x81, 0x00, &[0xB6, 0x00], Some(256));
    let (process, _registry, mut t) =
        attach(cards, Card::OpenPgp, &pgp_state, &dir.join("pgp1.log"));
    assert!(exchange(t.as_mut(), &select_pgp).is_success());
    let pw3 = exchange(t.as_mut(), &cmd(0x20, 0x00, 0x83, b"12345678", None)).sw();
    assert!(pw3.is_success(), "VERIFY PW3: {pw3:?}");
    let p256 = [0x13, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
    let sw = exchange(t.as_mut(), &cmd(0xDA, 0x00, 0xC1, &p256, None)).sw();
    assert!(sw.is_success(), "PUT DATA C1 (P-256): {sw:?}");
    let generated = exchange(t.as_mut(), &cmd(0x47, 0x80, 0x00, &[0xB6, 0x00], Some(256)));
    assert!(generated.is_success(), "GENERATE: {:?}", generated.sw());
    // 7F49 { 86 65-byte uncompressed point }.
    assert_eq!(generated.data().get(..5), Some(&[0x7F, 0x49, 0x43, 0x86, 0x41][..]));
    let wrong = exchange(t.as_mut(), &cmd(0x20, 0x00, 0x81, WRONG_PIN, None)).sw();
    let tries = wrong.tries_left().unwrap_or_else(|| panic!("wrong PW1: {wrong:?}"));
    drop(t);
    process.stop();

    let (process, _registry, mut t) =
        attach(cards, Card::OpenPgp, &pgp_state, &dir.join("pgp2.log"));
    assert!(exchange(t.as_mut(), &select_pgp).is_success());
    let public = exchange(t.as_mut(), &read_public);
    assert_eq!(public.data(), generated.data(), "the key survives a restart");
    let state = exchange(t.as_mut(), &cmd(0x20, 0x00, 0x81, &[], None)).sw();
    assert_eq!(state.tries_left(), Some(tries), "the retry counter survives a restart");
    drop(t);
    process.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
