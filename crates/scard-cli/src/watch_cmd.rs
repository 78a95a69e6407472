//! `scard watch`: the certificate propagation service and the removal policy.
//!
//! On insertion, every container certificate of the card goes to `DIR/my/` (DER plus a JSON
//! sidecar naming reader, card id, container, key spec and key name), and with
//! EnableRootCertificatePropagation its CA certificates to `DIR/root/` (CertPropEnabled=0
//! propagates nothing). On removal, what was propagated for that card goes away (roots per
//! RootCertificateCleanupOption: 2 on removal, 1 when the service stops, 0 never), then the
//! removal action runs once: `lock` runs `loginctl lock-session`, `logoff`
//! `loginctl terminate-session`, `disconnect` terminates the session only when it is remote;
//! `--on-remove CMD` runs `sh -c CMD` instead (also when the action is `none`), with
//! SCARD_READER, SCARD_CARD_ID and SCARD_REMOVAL set. The action defaults to ScRemoveOption.
//!
//! At start, `my/` entries a previous run left behind are removed and the cards already
//! present are propagated; Ctrl-C or SIGTERM stops the service, which then removes its `my/`
//! entries (and its roots under RootCertificateCleanupOption=1).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use scard_certs::store::{CardIdentity, ContainerCert, Store};
use scard_certs::{LogonCert, Policy, RemoveAction, RootCleanup, Setting};
use scard_transport::{ReaderEvent, Registry, ShareMode, glob_match};

use crate::policy::{PolicyArgs, PolicyError};
use crate::readers_cmd::ReaderArgs;
use crate::{EXIT_FAILURE, Outcome};

/// `--removal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RemovalArg {
    /// Nothing.
    None,
    /// Lock the session (loginctl lock-session).
    Lock,
    /// Log off (loginctl terminate-session).
    Logoff,
    /// Disconnect a remote session (terminate it when remote).
    Disconnect,
}

/// `scard watch`.
#[derive(Debug, clap::Args)]
pub(crate) struct WatchArgs {
    /// Watch only this reader: a reader name, or a glob such as 'pcsc:Yubico*' (default: every
    /// reader). A sim: reader is created with its card, so it is inserted at start.
    #[arg(long, value_name = "READER")]
    reader: Option<String>,
    /// Propagate certificates into DIR/my/ and DIR/root/ while their card is present.
    #[arg(long, value_name = "DIR")]
    propagate: Option<PathBuf>,
    /// What to do when a card is removed (default: the ScRemoveOption setting).
    #[arg(long, value_enum)]
    removal: Option<RemovalArg>,
    /// Run this shell command on removal instead of the action's own command.
    #[arg(long, value_name = "CMD")]
    on_remove: Option<String>,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Seconds each exchange with a card may take.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    timeout: u64,
    /// Print what happens as JSON lines on standard output (card_inserted, card_removed,
    /// pin_blocked, logon_certificate, propagated, cleaned, removal_action, ...) instead of
    /// text on standard error.
    #[arg(long)]
    events: bool,
}

/// What the service does.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    /// Reader name or glob; `None` watches every reader.
    pub(crate) reader: Option<String>,
    /// The propagation store.
    pub(crate) store: Option<Store>,
    /// The settings.
    pub(crate) policy: Policy,
    /// The removal action.
    pub(crate) removal: RemoveAction,
    /// The command replacing the action's own.
    pub(crate) on_remove: Option<String>,
}

/// A card being watched.
struct Present {
    card_id: Option<String>,
}

impl Service {
    fn watches(&self, reader: &str) -> bool {
        self.reader
            .as_deref()
            .is_none_or(|pattern| pattern == reader || glob_match(pattern, reader))
    }

    fn propagating(&self) -> Option<&Store> {
        self.store.as_ref().filter(|_| self.policy.flag(Setting::CertPropEnabled))
    }

    fn roots(&self) -> bool {
        self.policy.flag(Setting::EnableRootCertificatePropagation)
    }

    /// Runs until `stop` is set. `log` gets one line per thing that happened.
    pub(crate) fn serve(
        &self,
        registry: &mut Registry,
        stop: &AtomicBool,
        log: &mut dyn FnMut(Event),
    ) -> Result<(), String> {
        let mut present: BTreeMap<String, Present> = BTreeMap::new();
        if let Some(store) = &self.store {
            let left = store.clear_my().map_err(|e| e.to_string())?;
            if !left.removed.is_empty() {
                log(Event::LeftoversRemoved { files: left.removed.len() });
            }
        }
        let (readers, _) = registry.readers();
        for r in readers.iter().filter(|r| r.has_card() && self.watches(&r.name)) {
            self.inserted(registry, &r.name, &mut present, log);
        }
        let mut last_error = String::new();
        while !stop.load(Ordering::SeqCst) {
            let events = match registry.wait_events(Duration::from_millis(200)) {
                Ok(events) => events,
                Err(e) => {
                    // A backend that fails (pcscd restarting, a reader unplugged mid-call) is
                    // reported once and asked again; the service keeps running.
                    let message = e.to_string();
                    if message != last_error {
                        log(Event::ReaderError { error: message.clone() });
                        last_error = message;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            };
            for event in events {
                match event {
                    ReaderEvent::CardInserted { reader, .. } if self.watches(&reader) => {
                        self.inserted(registry, &reader, &mut present, log);
                    }
                    ReaderEvent::CardRemoved { reader } | ReaderEvent::ReaderRemoved { reader }
                        if self.watches(&reader) =>
                    {
                        if let Some(card) = present.remove(&reader) {
                            self.removed(&reader, &card, log);
                        }
                    }
                    _ => {}
                }
            }
        }
        // The service ends (sign-out): its my/ entries go, and the roots under option 1.
        if let Some(store) = &self.store {
            match store.clear_my() {
                Ok(c) => log(Event::Stopped { files: c.removed.len(), roots: false }),
                Err(e) => log(Event::StoreError { reader: None, error: e.to_string() }),
            }
            if self.policy.root_cleanup() == RootCleanup::AtSignOut {
                match store.clear_roots() {
                    Ok(c) if !c.removed.is_empty() => {
                        log(Event::Stopped { files: c.removed.len(), roots: true });
                    }
                    Ok(_) => {}
                    Err(e) => log(Event::StoreError { reader: None, error: e.to_string() }),
                }
            }
        }
        Ok(())
    }

    /// A card appeared (or is there at start): read it and propagate.
    fn inserted(
        &self,
        registry: &mut Registry,
        reader: &str,
        present: &mut BTreeMap<String, Present>,
        log: &mut dyn FnMut(Event),
    ) {
        let read = read_card(registry, reader, &self.policy);
        let CardRead { card_id, certs, blocked, logon } = match read {
            Ok(v) => v,
            Err(e) => {
                log(Event::CardUnreadable { reader: reader.to_owned(), error: e });
                present.insert(reader.to_owned(), Present { card_id: None });
                return;
            }
        };
        // The same card reported again (a reader that announces a card already seen at
        // start): nothing changed.
        if present.get(reader).is_some_and(|p| p.card_id.as_deref() == Some(card_id.as_str())) {
            return;
        }
        if let Some(old) = present.remove(reader) {
            // A card swap without a removal event: forget the old card first.
            if let (Some(store), Some(id)) = (&self.store, &old.card_id) {
                let _ = store.remove_card(id, self.policy.root_cleanup() == RootCleanup::OnRemoval);
            }
        }
        log(Event::CardInserted {
            reader: reader.to_owned(),
            card_id: card_id.clone(),
            certificates: certs.len(),
        });
        for (pin, name) in blocked {
            log(Event::PinBlocked {
                reader: reader.to_owned(),
                card_id: card_id.clone(),
                pin,
                name,
            });
        }
        for (container, upn, subject) in logon {
            log(Event::LogonCertificate {
                reader: reader.to_owned(),
                card_id: card_id.clone(),
                container,
                upn,
                subject,
            });
        }
        if let Some(store) = self.propagating() {
            let card = CardIdentity { reader: reader.to_owned(), card_id: card_id.clone() };
            match store.propagate(&card, &certs, self.roots()) {
                Ok(c) => {
                    log(Event::Propagated { reader: reader.to_owned(), files: c.written.len() })
                }
                Err(e) => log(Event::StoreError {
                    reader: Some(reader.to_owned()),
                    error: format!("propagation failed: {e}"),
                }),
            }
        }
        present.insert(reader.to_owned(), Present { card_id: Some(card_id) });
    }

    /// A card went away: remove what it brought, then the removal action, once.
    fn removed(&self, reader: &str, card: &Present, log: &mut dyn FnMut(Event)) {
        let id = card.card_id.clone().unwrap_or_default();
        log(Event::CardRemoved { reader: reader.to_owned(), card_id: id.clone() });
        if let (Some(store), Some(card_id)) = (&self.store, &card.card_id) {
            let roots = self.policy.root_cleanup() == RootCleanup::OnRemoval;
            match store.remove_card(card_id, roots) {
                Ok(c) => log(Event::Cleaned { reader: reader.to_owned(), files: c.removed.len() }),
                Err(e) => {
                    log(Event::StoreError { reader: Some(reader.to_owned()), error: e.to_string() })
                }
            }
        }
        let Some(mut command) = removal_command(self.removal, self.on_remove.as_deref()) else {
            return;
        };
        command
            .env("SCARD_READER", reader)
            .env("SCARD_CARD_ID", &id)
            .env("SCARD_REMOVAL", self.removal.name());
        match command.status() {
            Ok(status) if status.success() => log(Event::RemovalAction {
                reader: reader.to_owned(),
                action: self.removal.name(),
                outcome: "done".to_owned(),
            }),
            Ok(status) => log(Event::RemovalAction {
                reader: reader.to_owned(),
                action: self.removal.name(),
                outcome: format!("failed ({status})"),
            }),
            Err(e) => log(Event::RemovalAction {
                reader: reader.to_owned(),
                action: self.removal.name(),
                outcome: format!("not run: {e}"),
            }),
        }
    }
}

/// What the service reads from an inserted card.
struct CardRead {
    /// The card id (hex).
    card_id: String,
    /// The parsed container certificates.
    certs: Vec<ContainerCert>,
    /// Blocked PINs: (id, name).
    blocked: Vec<(u8, String)>,
    /// The certificates logon would offer: (container, UPN, subject).
    logon: Vec<(String, Option<String>, String)>,
}

/// Reads the card in `reader`: its id, certificates, blocked PINs, and which certificates
/// logon would offer under `policy`.
fn read_card(registry: &mut Registry, reader: &str, policy: &Policy) -> Result<CardRead, String> {
    let transport = registry.connect(Some(reader), ShareMode::Shared).map_err(|e| e.to_string())?;
    let mut module = crate::profiles::registry().open(transport).map_err(|e| e.to_string())?;
    let id = module.card_id().map_err(|e| e.to_string())?;
    let blocked = module
        .pins()
        .map(|pins| {
            pins.into_iter()
                .filter(|p| p.tries_left == Some(0))
                .map(|p| (p.id.get(), p.name))
                .collect()
        })
        .unwrap_or_default();
    let card = crate::logon_cmd::card_of(module.as_mut()).map_err(|e| e.to_string())?;
    let now = scard_certs::Timestamp::from_system_time(std::time::SystemTime::now());
    let reverse = policy.flag(Setting::ReverseSubject);
    let logon = scard_certs::enumerate(&card, now, policy)
        .outcomes
        .into_iter()
        .filter(|o| o.displayed())
        .filter_map(|o| {
            let cert = o.cert?;
            Some((o.name, cert.upn().map(str::to_owned), cert.display_name(reverse)))
        })
        .collect();
    let certs = card
        .containers()
        .iter()
        .filter_map(|c| {
            let der = c.certificate.as_deref()?;
            let cert = LogonCert::from_der(der)
                .map_err(|e| tracing::warn!("{reader}: container {}: {e}", c.name))
                .ok()?;
            Some(ContainerCert { container: c.name.clone(), key_spec: c.key_spec, cert })
        })
        .collect();
    Ok(CardRead { card_id: id.iter().map(|b| format!("{b:02X}")).collect(), certs, blocked, logon })
}

/// What the service did or saw: a line of text, or with `--events` a JSON object per line
/// (`{"event": "card_inserted", "reader": ..., ...}`).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum Event {
    /// A card was inserted (or present at start) and read.
    CardInserted { reader: String, card_id: String, certificates: usize },
    /// A card was inserted but could not be read.
    CardUnreadable { reader: String, error: String },
    /// A PIN of an inserted card is blocked.
    PinBlocked { reader: String, card_id: String, pin: u8, name: String },
    /// A certificate logon would offer (Windows client rules under the settings).
    LogonCertificate {
        reader: String,
        card_id: String,
        container: String,
        upn: Option<String>,
        subject: String,
    },
    /// Certificates written to the store.
    Propagated { reader: String, files: usize },
    /// A card was removed.
    CardRemoved { reader: String, card_id: String },
    /// What a removed card brought was removed from the store.
    Cleaned { reader: String, files: usize },
    /// The removal action ran.
    RemovalAction { reader: String, action: &'static str, outcome: String },
    /// Entries of an earlier run removed at start.
    LeftoversRemoved { files: usize },
    /// The store could not be written or cleaned.
    StoreError { reader: Option<String>, error: String },
    /// Reader events failed (reported once until they work again).
    ReaderError { error: String },
    /// The service stopped and cleaned up (`roots`: root certificates).
    Stopped { files: usize, roots: bool },
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::CardInserted { reader, card_id, certificates } => {
                write!(f, "{reader}: card {card_id} inserted, {certificates} certificate(s)")
            }
            Event::CardUnreadable { reader, error } => {
                write!(f, "{reader}: card inserted, not read: {error}")
            }
            Event::PinBlocked { reader, card_id, pin, name } => {
                write!(f, "{reader}: card {card_id}: PIN {pin} ({name}) is blocked")
            }
            Event::LogonCertificate { reader, container, upn, subject, .. } => write!(
                f,
                "{reader}: logon certificate in {container}: {subject}{}",
                upn.as_ref().map(|u| format!(" (UPN {u})")).unwrap_or_default()
            ),
            Event::Propagated { reader, files } => {
                write!(f, "{reader}: propagated {files} file(s)")
            }
            Event::CardRemoved { reader, card_id } => write!(f, "{reader}: card {card_id} removed"),
            Event::Cleaned { reader, files } => write!(f, "{reader}: removed {files} file(s)"),
            Event::RemovalAction { reader, outcome, .. } => {
                write!(f, "{reader}: removal action {outcome}")
            }
            Event::LeftoversRemoved { files } => {
                write!(f, "removed {files} certificate(s) left by an earlier run")
            }
            Event::StoreError { reader: Some(reader), error } => write!(f, "{reader}: {error}"),
            Event::StoreError { reader: None, error } => write!(f, "stopped: {error}"),
            Event::ReaderError { error } => write!(f, "reader events: {error}"),
            Event::Stopped { files, roots: false } => {
                write!(f, "stopped: removed {files} certificate(s)")
            }
            Event::Stopped { files, roots: true } => {
                write!(f, "stopped: removed {files} root certificate(s)")
            }
        }
    }
}

/// The command of a removal action (`None`: nothing to run).
fn removal_command(action: RemoveAction, on_remove: Option<&str>) -> Option<std::process::Command> {
    if let Some(cmd) = on_remove {
        let mut c = std::process::Command::new("sh");
        c.arg("-c").arg(cmd);
        return Some(c);
    }
    let session = std::env::var("XDG_SESSION_ID").ok().filter(|s| !s.is_empty());
    let mut c = std::process::Command::new("loginctl");
    match action {
        RemoveAction::None => return None,
        RemoveAction::Lock => {
            c.arg("lock-session").args(session);
        }
        RemoveAction::Logoff => {
            c.arg("terminate-session").arg(session.unwrap_or_else(|| "auto".into()));
        }
        RemoveAction::Disconnect => {
            // Only a remote session is disconnected (ended: Linux has no disconnected state).
            let remote = std::env::var_os("SSH_CONNECTION").is_some()
                || std::process::Command::new("loginctl")
                    .args([
                        "show-session",
                        session.as_deref().unwrap_or("auto"),
                        "-p",
                        "Remote",
                        "--value",
                    ])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "yes");
            if !remote {
                return None;
            }
            c.arg("terminate-session").arg(session.unwrap_or_else(|| "auto".into()));
        }
    }
    Some(c)
}

/// `scard watch`.
pub(crate) fn run(args: &WatchArgs) -> Outcome {
    let policy = match crate::policy::load(&args.policy) {
        Ok(p) => p,
        Err(PolicyError { message, status }) => return Outcome::error(message, status),
    };
    let removal = match args.removal {
        None => policy.remove_action(),
        Some(RemovalArg::None) => RemoveAction::None,
        Some(RemovalArg::Lock) => RemoveAction::Lock,
        Some(RemovalArg::Logoff) => RemoveAction::Logoff,
        Some(RemovalArg::Disconnect) => RemoveAction::Disconnect,
    };
    let service = Service {
        reader: args.reader.clone(),
        store: args.propagate.clone().map(Store::new),
        policy,
        removal,
        on_remove: args.on_remove.clone(),
    };
    // A glob is not a reader to connect to; a plain name is passed on so vpcd: listens (a
    // connection then waits up to 10 s for the virtual card, as for every card command).
    let name = args.reader.clone().filter(|r| !r.contains(['*', '?']));
    let reader_args = ReaderArgs { reader: name.clone(), timeout: args.timeout, wait: 10 };
    let mut registry = match crate::readers_cmd::registry(&reader_args) {
        Ok(r) => r,
        Err(e) => return Outcome::error(e.to_string(), crate::readers_cmd::status_of(&e)),
    };
    if let Some(name) = name.filter(|n| n.starts_with("sim:")) {
        // Connecting once creates the simulated reader with its card (an insertion).
        if let Err(e) = registry.connect(Some(&name), ShareMode::Shared) {
            return Outcome::error(e.to_string(), crate::readers_cmd::status_of(&e));
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    if let Err(e) = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)) {
        return Outcome::error(format!("cannot handle Ctrl-C: {e}"), EXIT_FAILURE);
    }
    let events = args.events;
    let mut log = |event: Event| {
        if events {
            use std::io::Write;
            // One line per event, flushed at once; a closed pipe is not a reason to panic.
            let mut out = std::io::stdout().lock();
            match serde_json::to_string(&event) {
                Ok(line) => {
                    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
                }
                Err(e) => eprintln!("watch: {event} (not as JSON: {e})"),
            }
        } else {
            eprintln!("watch: {event}");
        }
    };
    match service.serve(&mut registry, &stop, &mut log) {
        Ok(()) => Outcome { text: String::new(), status: 0 },
        Err(e) => Outcome::error(e, EXIT_FAILURE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scard_sim::{Family, SimRng};
    use scard_transport::virtual_card::{VirtualBackend, VirtualCard};
    use std::path::Path;
    use std::time::Instant;

    struct Sim(Box<dyn scard_sim::Card>);

    impl VirtualCard for Sim {
        fn atr(&self) -> Vec<u8> {
            self.0.atr().to_vec()
        }
        fn power_on(&mut self) {
            self.0.power_on();
        }
        fn reset(&mut self) {
            self.0.reset();
        }
        fn power_off(&mut self) {
            self.0.power_off();
        }
        fn process(&mut self, command: &[u8]) -> Vec<u8> {
            self.0.process(command)
        }
    }

    fn gids() -> Box<dyn VirtualCard> {
        let card = scard_sim::open_card(Family::Gids, None, SimRng::from_seed(7)).unwrap();
        Box::new(Sim(card))
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|r| {
                r.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    // A write in progress (temp file, renamed when complete) is not a file yet.
                    .filter(|name| !name.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// End to end through in-process reader events: a simulated card inserted, its
    /// certificates appear in my/; removed, they disappear and the removal command runs once.
    #[test]
    fn watch_propagates_and_acts_on_removal() {
        let dir = std::env::temp_dir().join(format!("scard-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let marker = dir.join("removed.log");
        let store_dir = dir.join("store");
        let backend = VirtualBackend::new();
        let mut registry = Registry::new();
        registry.add(Box::new(backend.clone()));
        let service = Service {
            reader: Some("sim:gids*".into()),
            store: Some(Store::new(&store_dir)),
            policy: Policy::new(),
            removal: RemoveAction::Lock,
            on_remove: Some(format!(
                "echo \"$SCARD_REMOVAL $SCARD_READER $SCARD_CARD_ID\" >> '{}'",
                marker.display()
            )),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let thread = {
            let stop = Arc::clone(&stop);
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                let mut log = |e: Event| lines.lock().unwrap().push(e.to_string());
                service.serve(&mut registry, &stop, &mut log)
            })
        };
        let my = store_dir.join("my");

        // Insert: the card's certificate and its sidecar appear.
        backend.insert("sim:gids", gids());
        wait_for("propagation", || files(&my).len() == 2);
        let names = files(&my);
        assert!(names[0].ends_with(".der") && names[1].ends_with(".json"), "{names:?}");
        let sidecar: serde_json::Value =
            serde_json::from_slice(&std::fs::read(my.join(&names[1])).unwrap()).unwrap();
        assert_eq!(sidecar["reader"], "sim:gids");
        assert_eq!(sidecar["card_id"].as_str().unwrap().len(), 32);
        assert!(sidecar["key_name"].as_str().unwrap().starts_with("\\\\.\\sim:gids\\"));
        let der = std::fs::read(my.join(&names[0])).unwrap();
        assert!(LogonCert::from_der(&der).is_ok());
        // A reader outside the filter is ignored.
        backend.insert("sim:other", gids());

        // Remove: the files go, the command runs once.
        backend.remove("sim:gids");
        wait_for("removal", || files(&my).is_empty() && marker.exists());
        std::thread::sleep(Duration::from_millis(500));
        let log = std::fs::read_to_string(&marker).unwrap();
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(log.starts_with("lock sim:gids "), "{log}");

        // Insert and remove again: once more each.
        backend.insert("sim:gids", gids());
        wait_for("second propagation", || files(&my).len() == 2);
        backend.remove("sim:gids");
        wait_for("second removal", || {
            std::fs::read_to_string(&marker).unwrap_or_default().lines().count() == 2
        });
        assert!(files(&my).is_empty());

        // Stop with a card present: its certificates are removed too.
        backend.insert("sim:gids", gids());
        wait_for("third propagation", || files(&my).len() == 2);
        stop.store(true, Ordering::SeqCst);
        thread.join().unwrap().unwrap();
        assert!(files(&my).is_empty());
        assert_eq!(
            std::fs::read_to_string(&marker).unwrap().lines().count(),
            2,
            "no action on stop"
        );
        let lines = lines.lock().unwrap().join("\n");
        assert!(!lines.contains("sim:other"), "{lines}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cert_prop_disabled_propagates_nothing_but_still_acts() {
        let dir = std::env::temp_dir().join(format!("scard-watch-off-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let marker = dir.join("removed.log");
        std::fs::create_dir_all(&dir).unwrap();
        let backend = VirtualBackend::new();
        let mut registry = Registry::new();
        registry.add(Box::new(backend.clone()));
        let mut policy = Policy::new();
        policy.apply_arg("CertPropEnabled=0").unwrap();
        let service = Service {
            reader: None,
            store: Some(Store::new(dir.join("store"))),
            policy,
            removal: RemoveAction::None,
            on_remove: Some(format!("echo x >> '{}'", marker.display())),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || service.serve(&mut registry, &stop, &mut |_| {}))
        };
        backend.insert("sim:gids", gids());
        std::thread::sleep(Duration::from_millis(600));
        assert!(files(&dir.join("store/my")).is_empty());
        backend.remove("sim:gids");
        wait_for("the removal command", || marker.exists());
        stop.store(true, Ordering::SeqCst);
        thread.join().unwrap().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn removal_commands() {
        assert!(removal_command(RemoveAction::None, None).is_none());
        let c = removal_command(RemoveAction::Lock, None).unwrap();
        assert_eq!(c.get_program(), "loginctl");
        assert_eq!(c.get_args().next().unwrap(), "lock-session");
        let c = removal_command(RemoveAction::Logoff, None).unwrap();
        assert_eq!(c.get_args().next().unwrap(), "terminate-session");
        let c = removal_command(RemoveAction::None, Some("true")).unwrap();
        assert_eq!(c.get_program(), "sh");
    }
}
