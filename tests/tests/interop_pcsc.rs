//! scard-pcsc against a real pcscd (pcsc-lite, loaded at run time) with vsmartcard's vpcd
//! readers "Virtual PCD 00 00" / "00 01", each test in its own sandbox (see
//! `scard_tests::interop`): reader listing, connection by exact name and glob, transmit and
//! its latency, transactions, a reset by another connection, exclusive mode, insertion and
//! removal events, reader added / removed, the deadline on a card that stalls, and the `scard`
//! CLI over `pcsc:` readers.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use scard_pcsc::{PcscBackend, PcscTransport, ReturnCode};
use scard_tests::interop::{Sandbox, median, sandbox, scard_binary};
use scard_transport::vpcd::frame;
use scard_transport::{
    Backend, CardTransport, Disposition, Protocol, ReaderEvent, ShareMode, TransportError,
    transaction,
};

const R0: &str = "Virtual PCD 00 00";
const R1: &str = "Virtual PCD 00 01";
/// SELECT the PIV application (SP 800-73-4 Pt 2 §3.1.1); any status word proves the path.
const SELECT_PIV: [u8; 11] = [0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00];

fn connect(backend: &mut PcscBackend, pattern: &str, mode: ShareMode) -> PcscTransport {
    backend
        .connect_reader(pattern, mode)
        .unwrap_or_else(|e| panic!("connect {pattern}: {e}"))
        .unwrap_or_else(|| panic!("no reader matches {pattern}"))
}

fn sw(response: &[u8]) -> String {
    match response {
        [.., a, b] => format!("{a:02X}{b:02X}"),
        _ => "none".into(),
    }
}

/// Waits up to `within` for an event `want` accepts; returns every event seen until then.
fn wait_for(
    backend: &mut PcscBackend,
    within: Duration,
    want: impl Fn(&ReaderEvent) -> bool,
) -> Vec<ReaderEvent> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let events = backend.wait_events(deadline - Instant::now()).unwrap();
        let found = events.iter().any(&want);
        seen.extend(events);
        if found {
            return seen;
        }
    }
    panic!("event not seen within {within:?}; saw {seen:?}");
}

#[test]
fn pcsc_readers_connect_transmit_latency() {
    let Some(mut sb) = sandbox("pcsc_readers_connect_transmit_latency", &[]) else { return };
    sb.attach("piv", 0, &[OsStr::new("--seed"), OsStr::new("1")]);
    let mut backend = PcscBackend::new();
    println!("library: {}", backend.library().unwrap());

    // Listing: both vpcd slots, with presence and the ATR pcscd reads.
    let readers = backend.readers().unwrap();
    println!("readers: {readers:?}");
    let r0 = readers.iter().find(|r| r.name == format!("pcsc:{R0}")).expect("slot 0 listed");
    let r1 = readers.iter().find(|r| r.name == format!("pcsc:{R1}")).expect("slot 1 listed");
    let atr = r0.atr.clone().expect("a card in slot 0");
    assert!(r1.atr.is_none(), "slot 1 is empty");
    let opensc_atr = sb.ok(Command::new("opensc-tool").args(["--reader", R0, "--atr"]));
    assert_eq!(
        scard_iso7816::hex::decode_lenient(opensc_atr.trim()).unwrap(),
        atr,
        "the ATR opensc-tool reads"
    );

    // Exact name, and a glob that picks the reader with the card.
    let mut t = connect(&mut backend, R0, ShareMode::Shared);
    assert_eq!(t.reader(), format!("pcsc:{R0}"));
    assert_eq!(t.atr(), atr);
    assert_eq!(t.protocol(), Protocol::T1, "vpcd reports T=1");
    let mut g = connect(&mut backend, "Virtual PCD*", ShareMode::Shared);
    assert_eq!(g.reader(), format!("pcsc:{R0}"));
    assert!(backend.connect_reader("No such reader*", ShareMode::Shared).unwrap().is_none());
    // An empty reader: no card.
    let err = backend.connect_reader(R1, ShareMode::Shared).unwrap_err();
    assert!(matches!(err, TransportError::NoCard { .. }), "{err:?}");
    // Through the Backend trait and names, as the registry does.
    let name = format!("pcsc:{R0}").parse().unwrap();
    assert!(Backend::connect(&mut backend, &name, ShareMode::Shared).unwrap().is_some());

    let response = t.transmit(&SELECT_PIV).unwrap();
    println!("SELECT PIV through pcsc: {} byte(s), SW {}", response.len(), sw(&response));
    assert!(response.len() >= 2);
    assert_eq!(g.transmit(&SELECT_PIV).unwrap(), response);
    g.disconnect(Disposition::Leave).unwrap();
    assert!(matches!(g.transmit(&SELECT_PIV), Err(TransportError::NoCard { .. })));

    // A scoped transaction.
    {
        let mut tx = transaction(&mut t).unwrap();
        assert!(tx.transmit(&SELECT_PIV).unwrap().len() >= 2);
        tx.end(Disposition::Leave).unwrap();
    }

    // Reader attributes and part 10 features (vpcd has no pin-pad: none, or unsupported).
    match t.attribute(scard_pcsc::attr::ATR_STRING) {
        Ok(value) => assert_eq!(value, atr),
        Err(err) => println!("SCardGetAttrib(ATR_STRING): {err}"),
    }
    match t.features() {
        Ok(features) => {
            println!("part 10 features of vpcd: {:?}", features.iter().collect::<Vec<_>>())
        }
        Err(err) => println!("part 10 features of vpcd: {err}"),
    }

    // Latency: 1000 APDUs, each timed by the caller.
    let from = sb.apdu_count();
    let mut micros = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let started = Instant::now();
        let r = t.transmit(&SELECT_PIV).unwrap();
        micros.push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
        assert!(r.len() >= 2);
    }
    let client_us = median(&mut micros);
    let p90 = micros[micros.len() * 9 / 10];
    let mut card = sb.apdu_round_trips_us(from);
    let card_us = median(&mut card);
    println!(
        "scard-pcsc transmit latency: median {client_us} µs (p90 {p90} µs) over 1000 APDUs; \
         pcscd <-> card round trip median {card_us} µs over {} APDUs",
        card.len()
    );
    assert!(client_us < 5000, "median transmit {client_us} µs");
    t.disconnect(Disposition::Leave).unwrap();
}

#[test]
fn pcsc_reset_sharing_and_transactions() {
    let Some(mut sb) = sandbox("pcsc_reset_sharing_and_transactions", &[]) else { return };
    sb.attach("piv", 0, &[]);
    let mut backend = PcscBackend::new();
    let mut a = connect(&mut backend, R0, ShareMode::Shared);
    let mut b = connect(&mut backend, R0, ShareMode::Shared);
    a.transmit(&SELECT_PIV).unwrap();

    // B resets the card: A hears of it exactly once, then works again; B itself is not told.
    b.reconnect(Disposition::Reset).unwrap();
    let err = a.transmit(&SELECT_PIV).unwrap_err();
    assert!(matches!(err, TransportError::CardReset { .. }), "{err:?}");
    assert!(err.ends_session());
    assert!(a.transmit(&SELECT_PIV).unwrap().len() >= 2, "after the notice A works again");
    assert!(a.transmit(&SELECT_PIV).is_ok());
    assert!(b.transmit(&SELECT_PIV).is_ok(), "the connection that reset is not told");
    assert_eq!(a.atr(), b.atr());

    // A reset at the end of B's transaction is a reset for A too.
    b.begin_transaction().unwrap();
    b.transmit(&SELECT_PIV).unwrap();
    b.end_transaction(Disposition::Reset).unwrap();
    let own = b.transmit(&SELECT_PIV);
    println!("B after its own END TRANSACTION(reset): {:?}", own.as_ref().map(|r| sw(r)));
    let err = a.transmit(&SELECT_PIV).unwrap_err();
    assert!(matches!(err, TransportError::CardReset { .. }), "{err:?}");
    a.transmit(&SELECT_PIV).unwrap();

    // Exclusive mode: refused while others are connected, and keeps others out.
    let err = backend.connect_reader(R0, ShareMode::Exclusive).unwrap_err();
    assert!(matches!(err, TransportError::Sharing { .. }), "{err:?}");
    drop(b);
    a.disconnect(Disposition::Leave).unwrap();
    let mut x = connect(&mut backend, R0, ShareMode::Exclusive);
    x.transmit(&SELECT_PIV).unwrap();
    let err = backend.connect_reader(R0, ShareMode::Shared).unwrap_err();
    assert!(matches!(err, TransportError::Sharing { .. }), "{err:?}");
    assert!(err.to_string().contains(R0), "{err}");
    drop(x);

    // Transactions exclude: B waits for A's, here past its deadline, which is a timeout
    // naming the reader; B is then unusable until it reconnects.
    let mut a = connect(&mut backend, R0, ShareMode::Shared);
    let mut b = connect(&mut backend, R0, ShareMode::Shared);
    a.begin_transaction().unwrap();
    b.set_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let err = b.begin_transaction().unwrap_err();
    let took = started.elapsed();
    println!("B's BEGIN TRANSACTION while A holds one: {err} after {took:?}");
    assert!(matches!(err, TransportError::Timeout { .. }), "{err:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(err.to_string().contains(&format!("pcsc:{R0}")), "{err}");
    let again = b.transmit(&SELECT_PIV).unwrap_err();
    assert!(
        matches!(&again, TransportError::Io { source, .. } if source.kind() == std::io::ErrorKind::TimedOut),
        "{again:?}"
    );
    a.transmit(&SELECT_PIV).unwrap();
    a.end_transaction(Disposition::Leave).unwrap();
    b.set_timeout(Duration::from_secs(10));
    b.reconnect(Disposition::Leave).unwrap();
    b.transmit(&SELECT_PIV).unwrap();
    // With A's transaction over, B gets one.
    b.begin_transaction().unwrap();
    b.end_transaction(Disposition::Leave).unwrap();
    // Dispositions on the way out.
    b.disconnect(Disposition::Unpower).unwrap();
    a.transmit(&SELECT_PIV).ok();
    a.disconnect(Disposition::Reset).unwrap();
    let mut c = connect(&mut backend, R0, ShareMode::Shared);
    c.transmit(&SELECT_PIV).unwrap();
}

#[test]
fn pcsc_insertion_removal_and_reader_events() {
    let Some(mut sb) = sandbox("pcsc_insertion_removal_and_reader_events", &[]) else { return };
    let mut backend = PcscBackend::new();
    // The first look sets what the backend has seen: no events for it.
    let readers = backend.readers().unwrap();
    assert_eq!(readers.len(), 2, "{readers:?}");
    assert!(backend.wait_events(Duration::from_millis(200)).unwrap().is_empty());

    // A wait can be cancelled from another thread (SCardCancel).
    let canceller = backend.canceller();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let cancelling = std::thread::spawn(move || {
        while !stop2.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(200));
            canceller.cancel();
        }
    });
    let started = Instant::now();
    assert!(backend.wait_events(Duration::from_secs(20)).unwrap().is_empty());
    let took = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    cancelling.join().unwrap();
    println!("cancelled wait returned after {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");

    // Insertion, with the ATR.
    sb.attach("piv", 1, &[]);
    let seen = wait_for(
        &mut backend,
        Duration::from_secs(10),
        |e| matches!(e, ReaderEvent::CardInserted { reader, .. } if reader == &format!("pcsc:{R1}")),
    );
    println!("after attach: {seen:?}");
    let Some(ReaderEvent::CardInserted { atr, .. }) =
        seen.iter().find(|e| matches!(e, ReaderEvent::CardInserted { .. }))
    else {
        unreachable!()
    };
    let mut t = connect(&mut backend, R1, ShareMode::Shared);
    assert_eq!(t.atr(), atr.as_slice());
    t.transmit(&SELECT_PIV).unwrap();
    // Using the card is no event.
    let quiet = backend.wait_events(Duration::from_millis(300)).unwrap();
    assert!(quiet.is_empty(), "{quiet:?}");

    // Removal: an event, and CardRemoved on the open connection.
    sb.detach(1);
    let seen = wait_for(
        &mut backend,
        Duration::from_secs(10),
        |e| matches!(e, ReaderEvent::CardRemoved { reader } if reader == &format!("pcsc:{R1}")),
    );
    println!("after detach: {seen:?}");
    let err = t.transmit(&SELECT_PIV).unwrap_err();
    println!("transmit on the open connection after removal: {err}");
    assert!(matches!(err, TransportError::CardRemoved { .. }), "{err:?}");
    assert!(err.ends_session());
    drop(t);

    // Readers added and removed. Debian's pcscd cannot hot-add serial (vpcd) readers
    // (`pcscd --hotplug` only rescans USB), so pcscd is restarted with one more vpcd reader
    // configured, then without it; the backend re-establishes its context and reports the
    // difference.
    let conf = sb.dir().join("reader.conf.d");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::copy("/etc/reader.conf.d/vpcd", conf.join("vpcd")).unwrap();
    std::fs::write(
        conf.join("extra"),
        "FRIENDLYNAME \"Extra PCD\"\nDEVICENAME /dev/null:0x8C7D\n\
         LIBPATH /usr/lib/pcsc/drivers/serial/libifdvpcd.so\nCHANNELID 0x8C7D\n",
    )
    .unwrap();
    let mut pcscd = restart_pcscd(&sb, Some(&conf));
    let seen = wait_for(
        &mut backend,
        Duration::from_secs(15),
        |e| matches!(e, ReaderEvent::ReaderAdded { reader } if reader.starts_with("pcsc:Extra PCD")),
    );
    println!("after adding a reader: {seen:?}");
    let added: Vec<_> = backend.readers().unwrap().into_iter().map(|r| r.name).collect();
    println!("readers now: {added:?}");
    assert!(added.iter().any(|n| n.starts_with("pcsc:Extra PCD")));
    stop_child(&mut pcscd);
    let mut pcscd = restart_pcscd(&sb, None);
    let seen = wait_for(
        &mut backend,
        Duration::from_secs(15),
        |e| matches!(e, ReaderEvent::ReaderRemoved { reader } if reader.starts_with("pcsc:Extra PCD")),
    );
    println!("after removing it: {seen:?}");
    stop_child(&mut pcscd);
}

/// Stops the running pcscd and starts another (with `conf` as its reader.conf.d).
fn restart_pcscd(sb: &Sandbox, conf: Option<&std::path::Path>) -> Child {
    if let Ok(pid) = std::fs::read_to_string("/run/pcscd/pcscd.pid") {
        // pcscd writes its PID followed by a NUL byte.
        let pid = pid.trim_matches(|c: char| c.is_whitespace() || c == '\0');
        let _ = Command::new("kill").args(["-TERM", pid]).status();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new("/run/pcscd/pcscd.comm").exists() {
        assert!(Instant::now() < deadline, "pcscd did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut cmd = Command::new("pcscd");
    cmd.args(["--foreground", "--debug"]);
    if let Some(conf) = conf {
        cmd.arg("--config").arg(conf);
    }
    let log = std::fs::File::create(sb.dir().join("pcscd-restarted.log")).unwrap();
    let child =
        cmd.stdout(log.try_clone().unwrap()).stderr(log).stdin(Stdio::null()).spawn().unwrap();
    while !std::path::Path::new("/run/pcscd/pcscd.comm").exists() {
        assert!(Instant::now() < deadline, "pcscd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn stop_child(child: &mut Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}

/// A card of our own on a vpcd slot that answers 9000 to everything and stalls `stall` on
/// INS EE (the card side of the vpcd protocol, DESIGN.md).
fn stalling_card(port: u16, stall: Duration) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut log = Vec::new();
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("vpcd listens");
        stream.set_nodelay(true).unwrap();
        let atr = [0x3B, 0x95, 0x13, 0x81, 0x01, 0x80, 0x73, 0xFF, 0x01, 0x00, 0x0B];
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return log,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            while let Some((payload, used)) = frame::split(&buf) {
                let payload = payload.to_vec();
                buf.drain(..used);
                let reply = match payload.as_slice() {
                    [frame::GET_ATR] => Some(atr.to_vec()),
                    [_] => None,
                    [_, 0xEE, ..] => {
                        log.push("stalling".to_owned());
                        std::thread::sleep(stall);
                        log.push("answered".to_owned());
                        Some(vec![0x90, 0x00])
                    }
                    _ => Some(vec![0x90, 0x00]),
                };
                if let Some(reply) = reply {
                    if stream.write_all(&frame::encode(&reply).unwrap()).is_err() {
                        return log;
                    }
                }
            }
        }
    })
}

#[test]
fn pcsc_deadline_on_a_stalled_card() {
    let Some(sb) = sandbox("pcsc_deadline_on_a_stalled_card", &[]) else { return };
    let card = stalling_card(35964, Duration::from_secs(3));
    let deadline = Instant::now() + Duration::from_secs(15);
    while !sb.card_present(1) {
        assert!(Instant::now() < deadline, "stalling card not seen:\n{}", sb.pcscd_log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut backend = PcscBackend::new();
    let mut t = connect(&mut backend, R1, ShareMode::Shared);
    assert_eq!(t.transmit(&[0x00, 0xA4, 0x04, 0x00]).unwrap(), [0x90, 0x00]);
    t.set_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let err = t.transmit(&[0x00, 0xEE, 0x00, 0x00]).unwrap_err();
    let took = started.elapsed();
    println!("stalled transmit: {err} (after {took:?})");
    let TransportError::Timeout { reader, command, after } = &err else { panic!("{err:?}") };
    assert_eq!(reader, &format!("pcsc:{R1}"));
    assert!(command.contains("INS EE"), "{command}");
    assert_eq!(*after, Duration::from_millis(500));
    assert!(took >= Duration::from_millis(500) && took < Duration::from_millis(1500), "{took:?}");
    // The connection is unusable at once, without waiting for the card.
    let started = Instant::now();
    let again = t.transmit(&[0x00, 0xA4, 0x04, 0x00]).unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(100));
    println!("next transmit: {again}");
    assert!(
        matches!(&again, TransportError::Io { source, .. } if source.kind() == std::io::ErrorKind::TimedOut)
    );
    // Once the card answers again, a reconnect gives a working connection.
    std::thread::sleep(Duration::from_secs(3));
    t.set_timeout(Duration::from_secs(10));
    t.reconnect(Disposition::Leave).unwrap();
    assert_eq!(t.transmit(&[0x00, 0xA4, 0x04, 0x00]).unwrap(), [0x90, 0x00]);
    drop(t);
    drop(backend);
    drop(sb);
    let log = card.join().unwrap();
    assert_eq!(log, ["stalling", "answered"]);
}

#[test]
fn pcsc_cli_readers_and_info() {
    let Some(mut sb) = sandbox("pcsc_cli_readers_and_info", &[]) else { return };
    sb.attach("piv", 0, &[]);
    let bin = scard_binary().unwrap();
    let json = |out: &str| -> serde_json::Value { serde_json::from_str(out).unwrap() };

    let readers = json(&sb.ok(Command::new(&bin).args(["readers", "--json"])));
    let list = readers["readers"].as_array().unwrap();
    let find = |name: &str| list.iter().find(|r| r["name"] == format!("pcsc:{name}")).cloned();
    let r0 = find(R0).expect("slot 0 listed");
    let r1 = find(R1).expect("slot 1 listed");
    assert_eq!(r0["card"], true);
    assert_eq!(r1["card"], false);
    // PC/SC is available; only the CCID backend may be (no USB in the sandbox).
    let unavailable = readers["unavailable"].as_array().unwrap();
    assert!(unavailable.iter().all(|u| u.as_str().unwrap().starts_with("CCID ")), "{readers}");
    let atr = r0["atr"].as_str().unwrap().to_owned();
    let opensc_atr = sb.ok(Command::new("opensc-tool").args(["--reader", R0, "--atr"]));
    assert_eq!(atr, opensc_atr.trim().replace(':', "").to_uppercase());

    for reader in [format!("pcsc:{R0}"), "pcsc:Virtual PCD*".to_owned()] {
        let info = json(&sb.ok(Command::new(&bin).args(["info", "--reader", &reader, "--json"])));
        assert_eq!(info["reader"], format!("pcsc:{R0}"));
        assert_eq!(info["atr"], atr.as_str());
        assert_eq!(info["protocol"], "T1");
    }
    // Without a reader name the first reader with a card is the PC/SC one.
    let info = json(&sb.ok(Command::new(&bin).args(["info", "--json"])));
    assert_eq!(info["reader"], format!("pcsc:{R0}"));
    // An empty reader and an unknown one.
    let out = sb.run(Command::new(&bin).args(["info", "--reader", &format!("pcsc:{R1}")]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no card present"));
    let out = sb.run(Command::new(&bin).args(["info", "--reader", "pcsc:Nothing*"]));
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));

    // Without pcscd (the client finds no socket) and without the library, PC/SC is reported
    // unavailable and the other backends still work.
    let out =
        sb.ok(Command::new(&bin).args(["readers"]).env("PCSCLITE_CSOCK_NAME", "/nonexistent"));
    assert!(
        out.contains("(PC/SC not available: SCardEstablishContext: SCARD_E_NO_SERVICE"),
        "{out}"
    );
    let out = sb.ok(Command::new(&bin)
        .args(["readers", "--reader", "sim:piv"])
        .env(scard_pcsc::LIBRARY_ENV, "/nonexistent/libpcsclite.so.1"));
    assert!(out.contains("sim:piv  card"), "{out}");
    assert!(
        out.contains("(PC/SC not available: pcsc-lite not loaded: /nonexistent/libpcsclite.so.1"),
        "{out}"
    );
    assert_eq!(ReturnCode::E_NO_SERVICE.name(), Some("SCARD_E_NO_SERVICE"));
}
