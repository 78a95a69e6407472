//! In-process virtual cards (`sim:` readers): an APDU processor behind the
//! [`VirtualCard`] trait, inserted into a [`VirtualBackend`] under a reader name. The
//! simulated cards of scard-sim are wrapped into it by the assemblies that offer `sim:`
//! readers (the CLI, the PKCS#11 module); this crate does not depend on them.
//!
//! In-process cards answer synchronously. A card that does not answer at all (a stalled
//! hostile card: [`VirtualCard::answer`] returns `None`) costs the connection its deadline
//! ([`CardTransport::set_timeout`]), waited without holding the backend's lock, and then a
//! [`TransportError::Timeout`] naming the command, as a reader's timeout would.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::{
    Backend, CardTransport, DEFAULT_TIMEOUT, Disposition, Protocol, ReaderEvent, ReaderInfo,
    ReaderName, ShareMode, TransportError, command_name,
};

/// A card that lives in this process.
pub trait VirtualCard: Send {
    /// The ATR.
    fn atr(&self) -> Vec<u8>;
    /// Cold reset.
    fn power_on(&mut self);
    /// Warm reset.
    fn reset(&mut self);
    /// Power off.
    fn power_off(&mut self);
    /// One command APDU in, one response APDU out.
    fn process(&mut self, command: &[u8]) -> Vec<u8>;
    /// One command APDU in, one response APDU out, or `None` when the card does not answer
    /// (it stalls): the transport then reports a timeout at its deadline.
    fn answer(&mut self, command: &[u8]) -> Option<Vec<u8>> {
        Some(self.process(command))
    }
    /// The last connection went away: persist what must survive the process.
    fn flush(&mut self) {}
}

/// Creates cards for `sim:` names on first use.
pub type CardFactory =
    Box<dyn FnMut(&ReaderName) -> Result<Box<dyn VirtualCard>, TransportError> + Send>;

struct Slot {
    name: String,
    card: Option<Box<dyn VirtualCard>>,
    /// Incremented on every reset, so connections notice resets by others.
    resets: u64,
    /// Incremented on every insertion, so connections notice a card swap.
    insertions: u64,
    exclusive: bool,
    connections: usize,
}

#[derive(Default)]
struct Shared {
    slots: Vec<Slot>,
    events: VecDeque<ReaderEvent>,
}

/// The `sim:` backend: named slots holding in-process cards.
#[derive(Clone, Default)]
pub struct VirtualBackend {
    shared: Arc<Mutex<Shared>>,
    factory: Arc<Mutex<Option<CardFactory>>>,
}

impl std::fmt::Debug for VirtualBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = lock(&self.shared).slots.iter().map(|s| s.name.clone()).collect();
        f.debug_struct("VirtualBackend").field("readers", &names).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock must not take every reader down.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl VirtualBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    /// A backend that creates the card for a `sim:` name the first time it is connected.
    pub fn with_factory(factory: CardFactory) -> Self {
        let backend = Self::new();
        *lock(&backend.factory) = Some(factory);
        backend
    }

    /// Inserts `card` into the reader `name` (`sim:...`), creating the reader if needed.
    pub fn insert(&self, name: &str, mut card: Box<dyn VirtualCard>) {
        card.power_on();
        let atr = card.atr();
        let mut shared = lock(&self.shared);
        match shared.slots.iter_mut().find(|s| s.name == name) {
            Some(slot) => {
                slot.card = Some(card);
                slot.insertions += 1;
            }
            None => {
                shared.slots.push(Slot {
                    name: name.to_owned(),
                    card: Some(card),
                    resets: 0,
                    insertions: 1,
                    exclusive: false,
                    connections: 0,
                });
                shared.events.push_back(ReaderEvent::ReaderAdded { reader: name.to_owned() });
            }
        }
        shared.events.push_back(ReaderEvent::CardInserted { reader: name.to_owned(), atr });
    }

    /// Removes the card from reader `name` (the reader stays), returning it.
    pub fn remove(&self, name: &str) -> Option<Box<dyn VirtualCard>> {
        let mut shared = lock(&self.shared);
        let card = shared.slots.iter_mut().find(|s| s.name == name).and_then(|s| s.card.take());
        if let Some(mut card) = card {
            card.flush();
            shared.events.push_back(ReaderEvent::CardRemoved { reader: name.to_owned() });
            return Some(card);
        }
        None
    }
}

impl Backend for VirtualBackend {
    fn prefix(&self) -> &'static str {
        "sim"
    }

    fn readers(&mut self) -> Result<Vec<ReaderInfo>, TransportError> {
        Ok(lock(&self.shared)
            .slots
            .iter()
            .map(|s| ReaderInfo { name: s.name.clone(), atr: s.card.as_ref().map(|c| c.atr()) })
            .collect())
    }

    fn connect(
        &mut self,
        name: &ReaderName,
        mode: ShareMode,
    ) -> Result<Option<Box<dyn CardTransport>>, TransportError> {
        let ReaderName::Sim { .. } = name else { return Ok(None) };
        let full = name.to_string();
        let exists = lock(&self.shared).slots.iter().any(|s| s.name == full);
        if !exists {
            let mut factory = lock(&self.factory);
            let Some(factory) = factory.as_mut() else { return Ok(None) };
            let card = factory(name)?;
            self.insert(&full, card);
        }
        let mut shared = lock(&self.shared);
        let Some(slot) = shared.slots.iter_mut().find(|s| s.name == full) else { return Ok(None) };
        let Some(card) = slot.card.as_ref() else {
            return Err(TransportError::NoCard { reader: full });
        };
        if slot.exclusive || (mode == ShareMode::Exclusive && slot.connections > 0) {
            return Err(TransportError::Sharing { reader: full });
        }
        let atr = card.atr();
        slot.connections += 1;
        slot.exclusive = mode == ShareMode::Exclusive;
        Ok(Some(Box::new(VirtualTransport {
            shared: Arc::clone(&self.shared),
            reader: full,
            atr,
            resets: slot.resets,
            insertions: slot.insertions,
            in_transaction: false,
            connected: true,
            timeout: DEFAULT_TIMEOUT,
        })))
    }

    fn wait_events(&mut self, timeout: Duration) -> Result<Vec<ReaderEvent>, TransportError> {
        let events: Vec<ReaderEvent> = lock(&self.shared).events.drain(..).collect();
        if events.is_empty() {
            // In-process changes come from this process: nothing to wait for but time.
            std::thread::sleep(timeout.min(Duration::from_millis(50)));
        }
        Ok(events)
    }
}

/// A connection to an in-process card.
struct VirtualTransport {
    shared: Arc<Mutex<Shared>>,
    reader: String,
    atr: Vec<u8>,
    resets: u64,
    insertions: u64,
    in_transaction: bool,
    connected: bool,
    /// How long a card that does not answer is waited for.
    timeout: Duration,
}

impl VirtualTransport {
    /// Runs `f` on this connection's slot after checking the card is still the same one.
    fn with_card<T>(&mut self, f: impl FnOnce(&mut Slot) -> T) -> Result<T, TransportError> {
        if !self.connected {
            return Err(TransportError::NoCard { reader: self.reader.clone() });
        }
        let mut shared = lock(&self.shared);
        let reader = self.reader.clone();
        let slot = shared
            .slots
            .iter_mut()
            .find(|s| s.name == reader)
            .ok_or_else(|| TransportError::CardRemoved { reader: reader.clone() })?;
        if slot.card.is_none() || slot.insertions != self.insertions {
            return Err(TransportError::CardRemoved { reader });
        }
        if slot.resets != self.resets {
            // Reported once; the caller selects again.
            self.resets = slot.resets;
            return Err(TransportError::CardReset { reader });
        }
        Ok(f(slot))
    }
}

impl CardTransport for VirtualTransport {
    fn reader(&self) -> &str {
        &self.reader
    }

    fn atr(&self) -> &[u8] {
        &self.atr
    }

    fn protocol(&self) -> Protocol {
        Protocol::Apdu
    }

    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let reader = self.reader.clone();
        let answer = self
            .with_card(|slot| slot.card.as_mut().map(|c| c.answer(command)))?
            .ok_or_else(|| TransportError::CardRemoved { reader: reader.clone() })?;
        match answer {
            Some(response) => Ok(response),
            None => {
                // No answer: the deadline passes (other connections may use the backend
                // meanwhile), then the timeout a reader would report.
                std::thread::sleep(self.timeout);
                Err(TransportError::Timeout {
                    reader,
                    command: command_name(command),
                    after: self.timeout,
                })
            }
        }
    }

    fn begin_transaction(&mut self) -> Result<(), TransportError> {
        // One process, one lock per exchange: a transaction only has to be well nested.
        self.with_card(|_| ())?;
        self.in_transaction = true;
        Ok(())
    }

    fn end_transaction(&mut self, disposition: Disposition) -> Result<(), TransportError> {
        self.in_transaction = false;
        if disposition == Disposition::Leave {
            return Ok(());
        }
        self.reconnect(disposition)
    }

    fn reconnect(&mut self, disposition: Disposition) -> Result<(), TransportError> {
        let result = self.with_card(|slot| {
            if let Some(card) = slot.card.as_mut() {
                match disposition {
                    Disposition::Leave => {}
                    Disposition::Reset | Disposition::Eject => card.reset(),
                    Disposition::Unpower => {
                        card.power_off();
                        card.power_on();
                    }
                }
            }
            if disposition != Disposition::Leave {
                slot.resets += 1;
            }
            (slot.resets, slot.card.as_ref().map(|c| c.atr()))
        });
        match result {
            Ok((resets, atr)) => {
                self.resets = resets;
                self.atr = atr.unwrap_or_default();
                Ok(())
            }
            // A reset by someone else is what reconnect is for.
            Err(TransportError::CardReset { .. }) => self.reconnect(disposition),
            Err(err) => Err(err),
        }
    }

    fn disconnect(&mut self, disposition: Disposition) -> Result<(), TransportError> {
        if !self.connected {
            return Ok(());
        }
        if disposition != Disposition::Leave {
            let _ = self.reconnect(disposition);
        }
        self.connected = false;
        let mut shared = lock(&self.shared);
        if let Some(slot) = shared.slots.iter_mut().find(|s| s.name == self.reader) {
            slot.connections = slot.connections.saturating_sub(1);
            slot.exclusive = false;
            if slot.connections == 0 {
                if let Some(card) = slot.card.as_mut() {
                    card.flush();
                }
            }
        }
        Ok(())
    }

    fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }
}

impl Drop for VirtualTransport {
    fn drop(&mut self) {
        let _ = self.disconnect(Disposition::Leave);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;

    /// Answers with the number of commands seen and 9000; counts resets and flushes.
    struct Counter {
        seen: u8,
        resets: u8,
        flushes: Arc<Mutex<u32>>,
    }

    impl VirtualCard for Counter {
        fn atr(&self) -> Vec<u8> {
            vec![0x3B, 0x00]
        }
        fn power_on(&mut self) {
            self.seen = 0;
        }
        fn reset(&mut self) {
            self.seen = 0;
            self.resets += 1;
        }
        fn power_off(&mut self) {}
        fn process(&mut self, _command: &[u8]) -> Vec<u8> {
            self.seen += 1;
            vec![self.seen, self.resets, 0x90, 0x00]
        }
        fn flush(&mut self) {
            *lock(&self.flushes) += 1;
        }
    }

    fn backend() -> (VirtualBackend, Arc<Mutex<u32>>) {
        let flushes = Arc::new(Mutex::new(0));
        let b = VirtualBackend::new();
        b.insert(
            "sim:test",
            Box::new(Counter { seen: 0, resets: 0, flushes: Arc::clone(&flushes) }),
        );
        (b, flushes)
    }

    #[test]
    fn connect_transmit_reset_notice_and_removal() {
        let (backend, flushes) = backend();
        let mut registry = Registry::new();
        registry.add(Box::new(backend.clone()));
        let (readers, unavailable) = registry.readers();
        assert!(unavailable.is_empty());
        assert_eq!(
            readers,
            vec![ReaderInfo { name: "sim:test".into(), atr: Some(vec![0x3B, 0x00]) }]
        );
        // No name: the first reader with a card.
        let mut a = registry.connect(None, ShareMode::Shared).unwrap();
        let mut b = registry.connect(Some("sim:test"), ShareMode::Shared).unwrap();
        assert_eq!(a.transmit(&[0, 0xA4, 4, 0]).unwrap(), [1, 0, 0x90, 0]);
        // b resets the card: a is told once, then works again.
        b.reconnect(Disposition::Reset).unwrap();
        assert!(matches!(a.transmit(&[0, 0xB0, 0, 0]), Err(TransportError::CardReset { .. })));
        assert_eq!(a.transmit(&[0, 0xB0, 0, 0]).unwrap(), [1, 1, 0x90, 0]);
        // A transaction ends when its guard drops.
        {
            let mut tx = crate::transaction(a.as_mut()).unwrap();
            assert_eq!(tx.transmit(&[0, 0xB0, 0, 0]).unwrap(), [2, 1, 0x90, 0]);
        }
        drop(a);
        drop(b);
        assert_eq!(*lock(&flushes), 1, "flushed when the last connection went away");
        // Removal.
        let mut c = registry.connect(Some("sim:test"), ShareMode::Shared).unwrap();
        assert!(backend.remove("sim:test").is_some());
        assert!(matches!(c.transmit(&[0, 0xB0, 0, 0]), Err(TransportError::CardRemoved { .. })));
        assert!(matches!(
            registry.connect(Some("sim:test"), ShareMode::Shared),
            Err(TransportError::NoCard { .. })
        ));
        let events = registry.wait_events(Duration::from_millis(10)).unwrap();
        assert_eq!(events.len(), 3, "{events:?}"); // added, inserted, removed
        assert!(matches!(events[2], ReaderEvent::CardRemoved { .. }));
    }

    #[test]
    fn exclusive_mode_and_unknown_readers() {
        let (backend, _) = backend();
        let mut registry = Registry::new();
        registry.add(Box::new(backend));
        let _a = registry.connect(Some("sim:test"), ShareMode::Exclusive).unwrap();
        assert!(matches!(
            registry.connect(Some("sim:test"), ShareMode::Shared),
            Err(TransportError::Sharing { .. })
        ));
        let err = registry.connect(Some("sim:other"), ShareMode::Shared).unwrap_err();
        assert!(
            matches!(&err, TransportError::UnknownReader { known, .. } if known == "sim:test"),
            "{err}"
        );
        assert!(matches!(
            registry.connect(Some("nonsense"), ShareMode::Shared),
            Err(TransportError::InvalidName { .. })
        ));
    }

    /// Answers SELECT, then nothing.
    struct Stalling;

    impl VirtualCard for Stalling {
        fn atr(&self) -> Vec<u8> {
            vec![0x3B, 0x00]
        }
        fn power_on(&mut self) {}
        fn reset(&mut self) {}
        fn power_off(&mut self) {}
        fn process(&mut self, _command: &[u8]) -> Vec<u8> {
            Vec::new()
        }
        fn answer(&mut self, command: &[u8]) -> Option<Vec<u8>> {
            (command.get(1) == Some(&0xA4)).then(|| vec![0x90, 0x00])
        }
    }

    #[test]
    fn a_card_that_does_not_answer_times_out_at_the_deadline() {
        let backend = VirtualBackend::new();
        backend.insert("sim:stall", Box::new(Stalling));
        let mut registry = Registry::new();
        registry.add(Box::new(backend));
        let mut t = registry.connect(Some("sim:stall"), ShareMode::Shared).unwrap();
        let mut other = registry.connect(Some("sim:stall"), ShareMode::Shared).unwrap();
        assert_eq!(t.transmit(&[0, 0xA4, 4, 0]).unwrap(), [0x90, 0]);
        t.set_timeout(Duration::from_millis(300));
        let started = std::time::Instant::now();
        let waiting = std::thread::spawn(move || {
            let err = t.transmit(&[0, 0xCA, 0, 0x6E, 0]).unwrap_err();
            (err, started.elapsed())
        });
        // The wait does not hold the backend: another connection works meanwhile.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(other.transmit(&[0, 0xA4, 4, 0]).unwrap(), [0x90, 0]);
        assert!(started.elapsed() < Duration::from_millis(300), "{:?}", started.elapsed());
        let (err, waited) = waiting.join().unwrap();
        assert!(
            matches!(&err, TransportError::Timeout { command, after, .. }
                if command == "GET DATA (INS CA)" && *after == Duration::from_millis(300)),
            "{err}"
        );
        assert!(err.to_string().contains("no answer to GET DATA (INS CA) within 300ms"), "{err}");
        assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(2));
    }

    #[test]
    fn factory_creates_cards_on_first_use() {
        let flushes = Arc::new(Mutex::new(0));
        let f2 = Arc::clone(&flushes);
        let backend = VirtualBackend::with_factory(Box::new(move |name| match name {
            ReaderName::Sim { family, .. } if family == "test" => {
                Ok(Box::new(Counter { seen: 0, resets: 0, flushes: Arc::clone(&f2) })
                    as Box<dyn VirtualCard>)
            }
            _ => Err(TransportError::InvalidName {
                name: name.to_string(),
                reason: "unknown family",
            }),
        }));
        let mut registry = Registry::new();
        registry.add(Box::new(backend));
        let mut t = registry.connect(Some("sim:test"), ShareMode::Shared).unwrap();
        assert_eq!(t.transmit(&[0, 0xA4, 4, 0]).unwrap(), [1, 0, 0x90, 0]);
        assert!(registry.connect(Some("sim:nope"), ShareMode::Shared).is_err());
    }
}
