//! The `pcsc:` backend: the system's PC/SC readers, their cards and their events.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use scard_transport::{
    Backend, CardTransport, DEFAULT_TIMEOUT, ReaderEvent, ReaderInfo, ReaderName, ShareMode,
    TransportError, glob_match,
};

use crate::code::{BACKEND, ReturnCode, map_error};
use crate::context::{Context, Observed, state_io};
use crate::ffi::Api;
use crate::state::{PNP_NOTIFICATION, ReaderState};
use crate::transport::PcscTransport;

/// Environment variable naming the PC/SC library to load instead of the system's.
pub const LIBRARY_ENV: &str = "SCARD_PCSC_LIBRARY";

/// Where the PC/SC client library is.
#[cfg(target_os = "macos")]
const LIBRARIES: &[&str] = &["/System/Library/Frameworks/PCSC.framework/PCSC"];
/// Where the PC/SC client library is (pcsc-lite's soname first; the unversioned name is only
/// installed with the development package).
#[cfg(not(target_os = "macos"))]
const LIBRARIES: &[&str] = &["libpcsclite.so.1", "libpcsclite.so"];

/// Without PnP notifications, how often the reader list is polled.
const POLL: Duration = Duration::from_millis(500);

/// The name the backend uses in errors that concern no reader in particular.
const SELF: &str = "pcsc";

/// The system library, loaded once per process (`SCARD_PCSC_LIBRARY` overrides the path).
fn system_api() -> Result<Arc<Api>, String> {
    static API: OnceLock<Result<Arc<Api>, String>> = OnceLock::new();
    API.get_or_init(|| {
        if cfg!(windows) {
            return Err("the PC/SC backend supports pcsc-lite and macOS only".to_owned());
        }
        match std::env::var(LIBRARY_ENV) {
            Ok(path) if !path.is_empty() => load(&[path.as_str()]),
            _ => load(LIBRARIES),
        }
    })
    .clone()
}

fn load(candidates: &[&str]) -> Result<Arc<Api>, String> {
    Api::load(candidates).map(Arc::new).map_err(|why| format!("pcsc-lite not loaded: {why}"))
}

/// What the backend last saw.
#[derive(Debug, Clone)]
struct Baseline {
    readers: Vec<(String, Observed)>,
    pnp: ReaderState,
    /// The context it was seen with (see `PcscBackend::generation`).
    generation: u64,
}

/// Ends a [`Backend::wait_events`] in progress on a [`PcscBackend`] from another thread
/// (`SCardCancel`).
#[derive(Debug, Clone)]
pub struct Canceller {
    slot: Arc<Mutex<Option<Context>>>,
}

impl Canceller {
    /// Cancels the wait in progress, if any (a wait that starts later is not affected).
    pub fn cancel(&self) {
        let ctx = lock(&self.slot).clone();
        if let Some(ctx) = ctx {
            if let Err(code) = ctx.cancel() {
                tracing::debug!("SCardCancel: {code}");
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The PC/SC backend: readers `pcsc:<name>`. Creating it never fails; when pcsc-lite is not
/// installed (or pcscd not running) its calls report
/// [`TransportError::BackendUnavailable`] ("PC/SC not available: ...") and it has no events.
pub struct PcscBackend {
    api: Result<Arc<Api>, String>,
    ctx: Option<Context>,
    cancel_slot: Arc<Mutex<Option<Context>>>,
    baseline: Option<Baseline>,
    events: VecDeque<ReaderEvent>,
    timeout: Duration,
    /// Counts established contexts: a new one means pcscd may have restarted.
    generation: u64,
}

impl std::fmt::Debug for PcscBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcscBackend")
            .field("library", &self.api.as_ref().map(|a| a.path()))
            .field("context", &self.ctx)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Default for PcscBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl PcscBackend {
    /// The backend over the system's PC/SC library (libpcsclite.so.1, or macOS's
    /// PCSC.framework; `SCARD_PCSC_LIBRARY` names another).
    pub fn new() -> PcscBackend {
        PcscBackend::from_api(system_api())
    }

    /// The backend over the PC/SC library at `path`.
    pub fn with_library(path: &str) -> PcscBackend {
        PcscBackend::from_api(load(&[path]))
    }

    fn from_api(api: Result<Arc<Api>, String>) -> PcscBackend {
        PcscBackend {
            api,
            ctx: None,
            cancel_slot: Arc::new(Mutex::new(None)),
            baseline: None,
            events: VecDeque::new(),
            timeout: DEFAULT_TIMEOUT,
            generation: 0,
        }
    }

    /// Sets the deadline of connecting and the initial deadline of each connection's
    /// exchanges (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> PcscBackend {
        self.timeout = timeout;
        self
    }

    /// The loaded library's path, or why none was loaded.
    pub fn library(&self) -> Result<&str, TransportError> {
        Ok(self.api()?.path())
    }

    /// A handle that cancels a [`Backend::wait_events`] in progress from another thread.
    pub fn canceller(&self) -> Canceller {
        Canceller { slot: Arc::clone(&self.cancel_slot) }
    }

    fn api(&self) -> Result<&Arc<Api>, TransportError> {
        self.api.as_ref().map_err(|why| TransportError::BackendUnavailable {
            backend: BACKEND,
            reason: why.clone(),
        })
    }

    /// The backend's context, established (again) when needed.
    fn context(&mut self) -> Result<Context, TransportError> {
        if let Some(ctx) = self.ctx.as_ref().filter(|c| c.is_valid()) {
            return Ok(ctx.clone());
        }
        let api = Arc::clone(self.api()?);
        let ctx = Context::establish(api)
            .map_err(|code| map_error(code, SELF, "SCardEstablishContext"))?;
        *lock(&self.cancel_slot) = Some(ctx.clone());
        self.ctx = Some(ctx.clone());
        self.generation += 1;
        Ok(ctx)
    }

    fn drop_context(&mut self) {
        self.ctx = None;
        *lock(&self.cancel_slot) = None;
    }

    /// Runs `f` on the context; when pcscd went away and came back (the context is stale),
    /// once more on a new one.
    fn with_context<T>(
        &mut self,
        call: &'static str,
        f: impl Fn(&Context) -> Result<T, ReturnCode>,
    ) -> Result<T, TransportError> {
        let first = f(&self.context()?);
        match first {
            Err(code) if stale(code) => {
                self.drop_context();
                f(&self.context()?).map_err(|code| map_error(code, SELF, call))
            }
            other => other.map_err(|code| map_error(code, SELF, call)),
        }
    }

    /// Every reader and its state now.
    fn snapshot(&mut self) -> Result<Baseline, TransportError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let names = self.with_context("SCardListReaders", Context::list_readers)?;
            match self.with_context("SCardGetStatusChange", |ctx| ctx.snapshot(&names)) {
                Ok((readers, pnp)) => {
                    let readers =
                        readers.into_iter().filter(|(_, o)| !o.state.reader_gone()).collect();
                    return Ok(Baseline { readers, pnp, generation: self.generation });
                }
                // A reader went away between the two calls: list again.
                Err(TransportError::UnknownReader { .. }) if attempts < 3 => {}
                Err(err) => return Err(err),
            }
        }
    }

    /// Takes `now` as what the backend has seen, queueing the events since the last look
    /// (none the first time).
    fn observe(&mut self, now: Baseline) {
        if let Some(before) = &self.baseline {
            let events = diff(&before.readers, &now.readers);
            for event in &events {
                tracing::debug!("PC/SC event: {event:?}");
            }
            self.events.extend(events);
        }
        self.baseline = Some(now);
    }

    /// Connects to the first reader matching `pattern` (an exact name first, else a glob,
    /// preferring a reader with a card); `Ok(None)` when no reader matches.
    pub fn connect_reader(
        &mut self,
        pattern: &str,
        mode: ShareMode,
    ) -> Result<Option<PcscTransport>, TransportError> {
        let api = Arc::clone(self.api()?);
        // A reader named exactly as in the last look (on this context) needs no new look:
        // the connection itself tells whether it is still there, and only then is the list
        // read again. (Callers connect right after listing the readers.)
        let known = self.baseline.as_ref().is_some_and(|b| {
            b.generation == self.generation && b.readers.iter().any(|(n, _)| n == pattern)
        });
        if known {
            match PcscTransport::open(Arc::clone(&api), pattern, mode, self.timeout) {
                Err(TransportError::UnknownReader { .. }) => {}
                other => return other.map(Some),
            }
        }
        let now = self.snapshot()?;
        let readers: Vec<(String, bool)> =
            now.readers.iter().map(|(n, o)| (n.clone(), o.state.card_present())).collect();
        self.observe(now);
        let Some(name) = resolve(pattern, &readers) else { return Ok(None) };
        PcscTransport::open(api, name, mode, self.timeout).map(Some)
    }

    fn wait_until(&mut self, deadline: Instant) -> Result<(), TransportError> {
        loop {
            if !self.events.is_empty() {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            let Some(before) = self.baseline.clone() else {
                let now = self.snapshot()?;
                self.observe(now);
                continue;
            };
            // pcsc-lite's PnP notification only reports readers that come or go during the
            // wait, and a restarted pcscd knows nothing of our states: look at the list first.
            let names = self.with_context("SCardListReaders", Context::list_readers)?;
            if before.generation != self.generation
                || names.iter().ne(before.readers.iter().map(|(name, _)| name))
            {
                let now = self.snapshot()?;
                self.observe(now);
                continue;
            }
            let pnp = !before.pnp.contains(ReaderState::UNKNOWN);
            let slice = if pnp { left } else { left.min(POLL) };
            // INFINITE is u32::MAX: stay below it.
            let ms = u32::try_from(slice.as_millis()).unwrap_or(u32::MAX - 1).min(u32::MAX - 1);
            let mut io: Vec<_> = before
                .readers
                .iter()
                .filter_map(|(name, o)| state_io(name, o.state.as_current().0))
                .collect();
            if pnp {
                io.extend(state_io(PNP_NOTIFICATION, before.pnp.as_current().0));
            }
            if io.is_empty() {
                std::thread::sleep(slice);
                let now = self.snapshot()?;
                self.observe(now);
                continue;
            }
            let ctx = self.context()?;
            match ctx.status_change(ms, &mut io) {
                Ok(false) if pnp => return Ok(()),
                Ok(false) => {
                    let now = self.snapshot()?;
                    self.observe(now);
                }
                Ok(true) => {
                    let pnp_state = if pnp { io.pop().map(|r| ReaderState(r.event)) } else { None };
                    let readers_changed = pnp_state
                        .is_some_and(|s| s.contains(ReaderState::CHANGED))
                        || io.iter().any(|r| ReaderState(r.event).reader_gone());
                    if readers_changed {
                        let now = self.snapshot()?;
                        self.observe(now);
                    } else {
                        let readers = io
                            .into_iter()
                            .map(|r| {
                                let name = r.name.to_string_lossy().into_owned();
                                (name, Observed { state: ReaderState(r.event), atr: r.atr })
                            })
                            .collect();
                        self.observe(Baseline {
                            readers,
                            pnp: pnp_state.unwrap_or(before.pnp),
                            generation: before.generation,
                        });
                    }
                }
                Err(ReturnCode::E_CANCELLED) => return Ok(()),
                Err(code) if stale(code) => self.drop_context(),
                // pcsc-lite refuses the whole call when one of the readers is gone.
                Err(ReturnCode::E_UNKNOWN_READER | ReturnCode::E_NO_READERS_AVAILABLE) => {
                    let now = self.snapshot()?;
                    self.observe(now);
                }
                Err(code) => return Err(map_error(code, SELF, "SCardGetStatusChange")),
            }
        }
    }
}

/// Codes after which the backend's context is worth establishing again.
fn stale(code: ReturnCode) -> bool {
    matches!(
        code,
        ReturnCode::E_INVALID_HANDLE | ReturnCode::E_NO_SERVICE | ReturnCode::E_SERVICE_STOPPED
    )
}

/// The reader `pattern` names among `readers` (name, card present): the exact name, else the
/// first glob match with a card, else the first glob match.
pub fn resolve<'a>(pattern: &str, readers: &'a [(String, bool)]) -> Option<&'a str> {
    if let Some((name, _)) = readers.iter().find(|(name, _)| name == pattern) {
        return Some(name);
    }
    let mut matches = readers.iter().filter(|(name, _)| glob_match(pattern, name));
    let first = matches.clone().next();
    matches.find(|(_, card)| *card).or(first).map(|(name, _)| name.as_str())
}

/// The events between two looks at the readers.
fn diff(before: &[(String, Observed)], now: &[(String, Observed)]) -> Vec<ReaderEvent> {
    let full = |name: &str| format!("pcsc:{name}");
    let find = |list: &[(String, Observed)], name: &str| {
        list.iter().find(|(n, _)| n == name).map(|(_, o)| o.clone())
    };
    let mut events = Vec::new();
    for (name, old) in before {
        if find(now, name).is_none() {
            if old.state.card_present() {
                events.push(ReaderEvent::CardRemoved { reader: full(name) });
            }
            events.push(ReaderEvent::ReaderRemoved { reader: full(name) });
        }
    }
    for (name, new) in now {
        let inserted = ReaderEvent::CardInserted { reader: full(name), atr: new.atr.clone() };
        match find(before, name) {
            None => {
                events.push(ReaderEvent::ReaderAdded { reader: full(name) });
                if new.state.card_present() {
                    events.push(inserted);
                }
            }
            Some(old) => match (old.state.card_present(), new.state.card_present()) {
                (false, true) => events.push(inserted),
                (true, false) => events.push(ReaderEvent::CardRemoved { reader: full(name) }),
                // Out and in again between two looks: pcsc-lite's event counter moved (or
                // another card is there).
                (true, true)
                    if old.state.event_count() != new.state.event_count() || old.atr != new.atr =>
                {
                    events.push(ReaderEvent::CardRemoved { reader: full(name) });
                    events.push(inserted);
                }
                _ => {}
            },
        }
    }
    events
}

impl Backend for PcscBackend {
    fn prefix(&self) -> &'static str {
        "pcsc"
    }

    fn readers(&mut self) -> Result<Vec<ReaderInfo>, TransportError> {
        let now = self.snapshot()?;
        let list = now
            .readers
            .iter()
            .map(|(name, o)| ReaderInfo {
                name: format!("pcsc:{name}"),
                atr: o.state.card_present().then(|| o.atr.clone()),
            })
            .collect();
        self.observe(now);
        Ok(list)
    }

    fn connect(
        &mut self,
        name: &ReaderName,
        mode: ShareMode,
    ) -> Result<Option<Box<dyn CardTransport>>, TransportError> {
        let ReaderName::Pcsc { pattern } = name else { return Ok(None) };
        Ok(self.connect_reader(pattern, mode)?.map(|t| Box::new(t) as Box<dyn CardTransport>))
    }

    /// Waits with `SCardGetStatusChange` on every reader and on the PnP notification reader
    /// (reader added / removed). Without PC/SC (no library, no pcscd) there are no events:
    /// this sleeps `timeout` and returns none, so a [`scard_transport::Registry`] over
    /// several backends keeps working.
    fn wait_events(&mut self, timeout: Duration) -> Result<Vec<ReaderEvent>, TransportError> {
        let deadline = Instant::now() + timeout;
        match self.wait_until(deadline) {
            Ok(()) => Ok(self.events.drain(..).collect()),
            Err(TransportError::BackendUnavailable { reason, .. }) => {
                tracing::debug!("PC/SC events: not available: {reason}");
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                Ok(Vec::new())
            }
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(state: u32, atr: &[u8]) -> Observed {
        Observed { state: ReaderState(state), atr: atr.to_vec() }
    }

    #[test]
    fn glob_resolution() {
        let readers = vec![
            ("Virtual PCD 00 00".to_owned(), false),
            ("Virtual PCD 00 01".to_owned(), true),
            ("Gemalto USB 01 00".to_owned(), true),
            ("Virtual PCD*".to_owned(), false),
        ];
        // Exact names win, even over a glob reading of the same text.
        assert_eq!(resolve("Virtual PCD 00 00", &readers), Some("Virtual PCD 00 00"));
        assert_eq!(resolve("Virtual PCD*", &readers), Some("Virtual PCD*"));
        // A glob picks the first match with a card...
        assert_eq!(resolve("Virtual PCD 00*", &readers), Some("Virtual PCD 00 01"));
        assert_eq!(resolve("*", &readers), Some("Virtual PCD 00 01"));
        assert_eq!(resolve("Gem*", &readers), Some("Gemalto USB 01 00"));
        // ...else the first match.
        assert_eq!(resolve("*00 00", &readers), Some("Virtual PCD 00 00"));
        assert_eq!(resolve("Virtual PCD 00 0?", &readers[..1]), Some("Virtual PCD 00 00"));
        assert_eq!(resolve("Nothing*", &readers), None);
        assert_eq!(resolve("Virtual PCD 00 02", &readers), None);
    }

    #[test]
    fn events_between_looks() {
        let atr = [0x3B, 0x95, 0x13, 0x81];
        let a = |s, atr: &[u8]| ("A".to_owned(), obs(s, atr));
        let b = |s| ("B".to_owned(), obs(s, &[]));
        // Insertion and removal.
        assert_eq!(
            diff(&[a(0x10, &[])], &[a(0x1_0020, &atr)]),
            [ReaderEvent::CardInserted { reader: "pcsc:A".into(), atr: atr.to_vec() }]
        );
        assert_eq!(
            diff(&[a(0x1_0020, &atr)], &[a(0x2_0010, &[])]),
            [ReaderEvent::CardRemoved { reader: "pcsc:A".into() }]
        );
        // Use by an application (INUSE, EXCLUSIVE) is no event.
        assert!(diff(&[a(0x1_0020, &atr)], &[a(0x1_0120, &atr)]).is_empty());
        assert!(diff(&[a(0x1_0020, &atr)], &[a(0x1_00A0, &atr)]).is_empty());
        // A mute card is no card.
        assert!(diff(&[a(0x10, &[])], &[a(0x1_0220, &[])]).is_empty());
        // Out and in between two looks.
        assert_eq!(
            diff(&[a(0x1_0020, &atr)], &[a(0x3_0020, &atr)]),
            [
                ReaderEvent::CardRemoved { reader: "pcsc:A".into() },
                ReaderEvent::CardInserted { reader: "pcsc:A".into(), atr: atr.to_vec() },
            ]
        );
        // Readers coming and going, with their cards.
        assert_eq!(
            diff(&[a(0x1_0020, &atr)], &[b(0x10)]),
            [
                ReaderEvent::CardRemoved { reader: "pcsc:A".into() },
                ReaderEvent::ReaderRemoved { reader: "pcsc:A".into() },
                ReaderEvent::ReaderAdded { reader: "pcsc:B".into() },
            ]
        );
        assert_eq!(
            diff(&[], &[a(0x20, &atr)]),
            [
                ReaderEvent::ReaderAdded { reader: "pcsc:A".into() },
                ReaderEvent::CardInserted { reader: "pcsc:A".into(), atr: atr.to_vec() },
            ]
        );
        assert!(diff(&[a(0x10, &[]), b(0x10)], &[a(0x10, &[]), b(0x10)]).is_empty());
    }

    #[test]
    fn without_the_library_the_backend_says_why_and_has_no_events() {
        let mut backend = PcscBackend::with_library("/nonexistent/libpcsclite.so.1");
        let err = backend.readers().unwrap_err();
        assert!(matches!(err, TransportError::BackendUnavailable { backend: "PC/SC", .. }));
        let text = err.to_string();
        assert!(
            text.starts_with("PC/SC not available: pcsc-lite not loaded: ")
                && text.contains("/nonexistent/libpcsclite.so.1"),
            "{text}"
        );
        let name: ReaderName = "pcsc:Any*".parse().unwrap();
        assert!(matches!(
            backend.connect(&name, ShareMode::Shared),
            Err(TransportError::BackendUnavailable { .. })
        ));
        let other: ReaderName = "sim:piv".parse().unwrap();
        assert!(backend.connect(&other, ShareMode::Shared).unwrap().is_none());
        let started = Instant::now();
        assert!(backend.wait_events(Duration::from_millis(50)).unwrap().is_empty());
        assert!(started.elapsed() >= Duration::from_millis(50));
        backend.canceller().cancel();
        assert!(backend.library().is_err());
    }
}
