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

/// All backends of this process, and the reader groups.
///
/// Groups (the resource manager's reader groups): `all`; one per backend prefix (`sim`,
/// `vpcd`, `pcsc`, `ccid`); and user groups, each a list of reader-name globs
/// (`pcsc:Yubico*`, `ccid:1050:*`), defined with [`Registry::define_group`] (the CLI reads them
/// from its configuration file).
#[derive(Default)]
pub struct Registry {
    backends: Vec<Box<dyn Backend>>,
    groups: std::collections::BTreeMap<String, Vec<String>>,
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

    /// Defines (or replaces) a user group: readers whose full name matches one of `patterns`
    /// (globs with `*` and `?`). The built-in names `all`, `sim`, `vpcd`, `pcsc` and `ccid`
    /// cannot be redefined.
    pub fn define_group(
        &mut self,
        name: &str,
        patterns: Vec<String>,
    ) -> Result<(), TransportError> {
        if BUILTIN_GROUPS.contains(&name) {
            return Err(TransportError::InvalidName {
                name: name.to_owned(),
                reason: "a built-in reader group",
            });
        }
        if name.is_empty() || patterns.is_empty() {
            return Err(TransportError::InvalidName {
                name: name.to_owned(),
                reason: "a reader group needs a name and at least one pattern",
            });
        }
        self.groups.insert(name.to_owned(), patterns);
        Ok(())
    }

    /// The names of every group: the built-in ones, then the user groups.
    pub fn groups(&self) -> Vec<String> {
        BUILTIN_GROUPS.iter().map(|g| (*g).to_owned()).chain(self.groups.keys().cloned()).collect()
    }

    /// Whether the reader `reader` (full name) belongs to `group`.
    pub fn in_group(&self, group: &str, reader: &str) -> Result<bool, TransportError> {
        match group {
            "all" => Ok(true),
            "sim" | "vpcd" | "pcsc" | "ccid" => {
                Ok(reader.split_once(':').is_some_and(|(prefix, _)| prefix == group))
            }
            _ => match self.groups.get(group) {
                Some(patterns) => Ok(patterns.iter().any(|p| crate::glob_match(p, reader))),
                None => Err(TransportError::UnknownReader {
                    name: format!("group {group}"),
                    known: self.groups().join(", "),
                }),
            },
        }
    }

    /// The readers of one group, and the backends that could not be asked.
    pub fn readers_in(
        &mut self,
        group: &str,
    ) -> Result<(Vec<ReaderInfo>, Vec<TransportError>), TransportError> {
        // An unknown group is an error even when there are no readers to test.
        self.in_group(group, "")?;
        let (readers, unavailable) = self.readers();
        let mut kept = Vec::with_capacity(readers.len());
        for reader in readers {
            if self.in_group(group, &reader.name)? {
                kept.push(reader);
            }
        }
        Ok((kept, unavailable))
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

/// Groups every registry has.
const BUILTIN_GROUPS: [&str; 5] = ["all", "sim", "vpcd", "pcsc", "ccid"];

fn known(readers: &[ReaderInfo]) -> String {
    if readers.is_empty() {
        "none".to_owned()
    } else {
        readers.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtual_card::{VirtualBackend, VirtualCard};

    struct Blank;

    impl VirtualCard for Blank {
        fn atr(&self) -> Vec<u8> {
            vec![0x3B, 0x00]
        }
        fn power_on(&mut self) {}
        fn reset(&mut self) {}
        fn power_off(&mut self) {}
        fn process(&mut self, _command: &[u8]) -> Vec<u8> {
            vec![0x90, 0x00]
        }
    }

    #[test]
    fn reader_groups() {
        let backend = VirtualBackend::new();
        backend.insert("sim:piv", Box::new(Blank));
        backend.insert("sim:openpgp", Box::new(Blank));
        let mut registry = Registry::new();
        registry.add(Box::new(backend));
        registry.define_group("work", vec!["sim:p*".into(), "pcsc:Yubico*".into()]).unwrap();
        let names = |r: &mut Registry, g: &str| -> Vec<String> {
            r.readers_in(g).unwrap().0.into_iter().map(|i| i.name).collect()
        };
        assert_eq!(names(&mut registry, "all"), ["sim:piv", "sim:openpgp"]);
        assert_eq!(names(&mut registry, "sim"), ["sim:piv", "sim:openpgp"]);
        assert!(names(&mut registry, "pcsc").is_empty());
        assert_eq!(names(&mut registry, "work"), ["sim:piv"]);
        assert!(registry.in_group("work", "pcsc:Yubico YubiKey OTP+FIDO+CCID 00 00").unwrap());
        assert!(!registry.in_group("ccid", "pcsc:x").unwrap());
        assert!(matches!(registry.readers_in("nope"), Err(TransportError::UnknownReader { .. })));
        assert!(registry.define_group("all", vec!["*".into()]).is_err());
        assert!(registry.define_group("empty", vec![]).is_err());
        assert_eq!(registry.groups(), ["all", "sim", "vpcd", "pcsc", "ccid", "work"]);
    }
}
