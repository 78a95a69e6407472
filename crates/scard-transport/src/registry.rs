//! The resource manager: one registry over every backend, reader listing, connection by name
//! (or to the first reader with a card), and reader events.

use std::time::{Duration, Instant};

use crate::{CardTransport, ReaderName, ShareMode, TransportError};

/// A reader and what is in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderInfo {
    /// Full name with the backend prefix, usable with [`Registry::connect`].
    pub name: String,
    /// The card's ATR when a card is present.
    pub atr: Option<Vec<u8>>,
}

/// A change seen by a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderEvent {
    /// A reader appeared.
    ReaderAdded {
        /// Full reader name.
        reader: String,
    },
    /// A reader went away.
    ReaderRemoved {
        /// Full reader name.
        reader: String,
    },
    /// A card was inserted (or a virtual card connected).
    CardInserted {
        /// Full reader name.
        reader: String,
        /// Its ATR.
        atr: Vec<u8>,
    },
    /// A card was removed.
    CardRemoved {
        /// Full reader name.
        reader: String,
    },
}

/// A family of readers.
pub trait Backend: Send {
    /// The reader-name prefix this backend serves: `sim`, `vpcd`, `pcsc` or `ccid`.
    fn prefix(&self) -> &'static str;

    /// The readers, with card presence.
    fn readers(&mut self) -> Result<Vec<ReaderInfo>, TransportError>;

    /// Connects to the reader `name` (of this backend's prefix). `Ok(None)` when this backend
    /// does not have such a reader (another backend of the same prefix may).
    fn connect(
        &mut self,
        name: &ReaderName,
        mode: ShareMode,
    ) -> Result<Option<Box<dyn CardTransport>>, TransportError>;

    /// Waits up to `timeout` for changes and returns them (empty on timeout).
    fn wait_events(&mut self, timeout: Duration) -> Result<Vec<ReaderEvent>, TransportError>;
}

/// All backends of this process.
#[derive(Default)]
pub struct Registry {
    backends: Vec<Box<dyn Backend>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.backends.iter().map(|b| b.prefix())).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a backend.
    pub fn add(&mut self, backend: Box<dyn Backend>) {
        self.backends.push(backend);
    }

    /// Every reader of every backend, and the backends that could not be asked (with why).
    pub fn readers(&mut self) -> (Vec<ReaderInfo>, Vec<TransportError>) {
        let mut readers = Vec::new();
        let mut unavailable = Vec::new();
        for backend in &mut self.backends {
            match backend.readers() {
                Ok(mut list) => readers.append(&mut list),
                Err(err) => unavailable.push(err),
            }
        }
        (readers, unavailable)
    }

    /// Connects to the reader `name`, or, with `None`, to the first reader with a card.
    pub fn connect(
        &mut self,
        name: Option<&str>,
        mode: ShareMode,
    ) -> Result<Box<dyn CardTransport>, TransportError> {
        let name: ReaderName = match name {
            Some(name) => name.parse()?,
            None => {
                let (readers, _) = self.readers();
                let first = readers
                    .iter()
                    .find(|r| r.atr.is_some())
                    .ok_or_else(|| TransportError::NoCardAnywhere { known: known(&readers) })?;
                first.name.parse()?
            }
        };
        for backend in self.backends.iter_mut().filter(|b| b.prefix() == name.backend()) {
            if let Some(transport) = backend.connect(&name, mode)? {
                return Ok(transport);
            }
        }
        let (readers, _) = self.readers();
        Err(TransportError::UnknownReader { name: name.to_string(), known: known(&readers) })
    }

    /// Waits up to `timeout` for reader events from any backend.
    pub fn wait_events(&mut self, timeout: Duration) -> Result<Vec<ReaderEvent>, TransportError> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut events = Vec::new();
            let count = self.backends.len().max(1);
            let slice = timeout
                .checked_div(u32::try_from(count).unwrap_or(1))
                .unwrap_or(timeout)
                .min(Duration::from_millis(100));
            for backend in &mut self.backends {
                events.append(&mut backend.wait_events(slice)?);
            }
            if !events.is_empty() || Instant::now() >= deadline {
                return Ok(events);
            }
        }
    }
}

fn known(readers: &[ReaderInfo]) -> String {
    if readers.is_empty() {
        "none".to_owned()
    } else {
        readers.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}
