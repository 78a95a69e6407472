//! The resource manager: one registry over every backend, reader listing, connection by name
//! (or to the first reader with a card, of all readers or of a reader group), and reader
//! events.

use std::time::{Duration, Instant};

use crate::{CardTransport, ReaderName, ShareMode, TransportError};

/// A reader and what is in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderInfo {
    /// Full name with the backend prefix, usable with [`Registry::connect`].
    pub name: String,
    /// `Some` when a card is present: its ATR, or an empty ATR when the backend knows a card
    /// is there but has not read its ATR (a USB CCID card this process did not power on:
    /// listing readers does not power cards on; connecting does, and reads the ATR).
    pub atr: Option<Vec<u8>>,
}

impl ReaderInfo {
    /// Whether a card is present.
    pub fn has_card(&self) -> bool {
        self.atr.is_some()
    }

    /// The card's ATR when a card is present and its ATR is known.
    pub fn known_atr(&self) -> Option<&[u8]> {
        self.atr.as_deref().filter(|atr| !atr.is_empty())
    }
}

/// How `--reader` (and [`Registry::connect`]) names a reader group instead of a reader:
/// `group:<name>`, e.g. `group:work`, `group:pcsc`.
pub const GROUP_PREFIX: &str = "group:";

/// The group named by a reader argument of the form `group:<name>`, if it is one.
pub fn group_name(reader: &str) -> Option<&str> {
    reader.strip_prefix(GROUP_PREFIX)
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

    /// The readers the last [`Backend::readers`] call found but cannot use now (another driver
    /// holds them, access denied), each as the error a connection would get (naming the
    /// reader). They are left out of the reader list, so one unusable reader does not hide the
    /// others. Default: none.
    fn unusable(&mut self) -> Vec<TransportError> {
        Vec::new()
    }

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

    /// Every reader of every backend, and what could not be asked (with why): whole backends
    /// ([`TransportError::BackendUnavailable`]) and readers held by another driver
    /// ([`TransportError::ReaderInUse`]).
    pub fn readers(&mut self) -> (Vec<ReaderInfo>, Vec<TransportError>) {
        let mut readers = Vec::new();
        let mut unavailable = Vec::new();
        for backend in &mut self.backends {
            match backend.readers() {
                Ok(mut list) => {
                    readers.append(&mut list);
                    unavailable.append(&mut backend.unusable());
                }
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

    /// The patterns of the user group `group` (`None` for built-in and unknown groups).
    pub fn group_patterns(&self, group: &str) -> Option<&[String]> {
        self.groups.get(group).map(Vec::as_slice)
    }

    /// Whether the reader `reader` (full name) belongs to `group`.
    pub fn in_group(&self, group: &str, reader: &str) -> Result<bool, TransportError> {
        Ok(self.rank_in_group(group, reader)?.is_some())
    }

    /// Where `reader` ranks in `group`: the index of the first of the group's patterns it
    /// matches (0 for every member of a built-in group); `None` when it is not a member.
    fn rank_in_group(&self, group: &str, reader: &str) -> Result<Option<usize>, TransportError> {
        match group {
            "all" => Ok(Some(0)),
            "sim" | "vpcd" | "pcsc" | "ccid" => {
                let member = reader.split_once(':').is_some_and(|(prefix, _)| prefix == group);
                Ok(member.then_some(0))
            }
            _ => match self.groups.get(group) {
                Some(patterns) => Ok(patterns.iter().position(|p| crate::glob_match(p, reader))),
                None => Err(TransportError::UnknownReader {
                    name: format!("group {group}"),
                    known: self.groups().join(", "),
                }),
            },
        }
    }

    /// The readers of one group, in the group's order of preference: readers matching an
    /// earlier pattern of a user group come first, and within a pattern (and in built-in
    /// groups) readers keep the listing order (backends in the order they were added). With
    /// them, what could not be asked: whole backends, and the group's readers held by another
    /// driver.
    pub fn readers_in(
        &mut self,
        group: &str,
    ) -> Result<(Vec<ReaderInfo>, Vec<TransportError>), TransportError> {
        // An unknown group is an error even when there are no readers to test.
        self.rank_in_group(group, "")?;
        let (readers, unavailable) = self.readers();
        let mut kept = Vec::with_capacity(readers.len());
        for reader in readers {
            if let Some(rank) = self.rank_in_group(group, &reader.name)? {
                kept.push((rank, reader));
            }
        }
        // Stable: the listing order stays within one rank.
        kept.sort_by_key(|(rank, _)| *rank);
        let mut notes = Vec::with_capacity(unavailable.len());
        for err in unavailable {
            let member = match err.reader() {
                Some(reader) => self.in_group(group, reader)?,
                None => true,
            };
            if member {
                notes.push(err);
            }
        }
        Ok((kept.into_iter().map(|(_, r)| r).collect(), notes))
    }

    /// Connects to the first reader of `group` that has a card, in the group's order of
    /// preference ([`Registry::readers_in`]). A reader whose card goes away between the
    /// listing and the connection is passed over; any other failure to connect is returned.
    /// When no reader of the group has a card, [`TransportError::NoCardInGroup`] names the
    /// group and lists its readers (and those held by another driver).
    pub fn connect_first_in_group(
        &mut self,
        group: &str,
        mode: ShareMode,
    ) -> Result<Box<dyn CardTransport>, TransportError> {
        let (readers, unavailable) = self.readers_in(group)?;
        for reader in readers.iter().filter(|r| r.has_card()) {
            match self.connect_named(&reader.name.parse()?, mode) {
                Ok(transport) => return Ok(transport),
                Err(err @ (TransportError::NoCard { .. } | TransportError::CardRemoved { .. })) => {
                    tracing::debug!("group {group}: {err}; trying the next reader");
                }
                Err(err) => return Err(err),
            }
        }
        let mut listed: Vec<String> = readers
            .iter()
            .map(|r| format!("{} ({})", r.name, if r.has_card() { "card gone" } else { "empty" }))
            .collect();
        listed.extend(
            unavailable
                .iter()
                .filter_map(|e| e.reader().map(|reader| format!("{reader} (in use elsewhere)"))),
        );
        let readers = if listed.is_empty() { "none".to_owned() } else { listed.join(", ") };
        Err(TransportError::NoCardInGroup { group: group.to_owned(), readers })
    }

    /// Connects to the reader `name`; with `group:<group>`, to the first reader of that group
    /// with a card ([`Registry::connect_first_in_group`]); with `None`, to the first reader
    /// with a card.
    pub fn connect(
        &mut self,
        name: Option<&str>,
        mode: ShareMode,
    ) -> Result<Box<dyn CardTransport>, TransportError> {
        let name: ReaderName = match name {
            Some(name) => match group_name(name) {
                Some(group) => return self.connect_first_in_group(group, mode),
                None => name.parse()?,
            },
            None => {
                let (readers, _) = self.readers();
                let first = readers
                    .iter()
                    .find(|r| r.has_card())
                    .ok_or_else(|| TransportError::NoCardAnywhere { known: known(&readers) })?;
                first.name.parse()?
            }
        };
        self.connect_named(&name, mode)
    }

    /// Connects to the reader `name` through the backends of its prefix.
    fn connect_named(
        &mut self,
        name: &ReaderName,
        mode: ShareMode,
    ) -> Result<Box<dyn CardTransport>, TransportError> {
        for backend in self.backends.iter_mut().filter(|b| b.prefix() == name.backend()) {
            if let Some(transport) = backend.connect(name, mode)? {
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

    /// A `ccid` stand-in: one reader whose card is gone by the time it is connected, and one
    /// held by another driver.
    struct Elsewhere;

    impl Backend for Elsewhere {
        fn prefix(&self) -> &'static str {
            "ccid"
        }
        fn readers(&mut self) -> Result<Vec<ReaderInfo>, TransportError> {
            Ok(vec![ReaderInfo { name: "ccid:1050:0407:GONE".into(), atr: Some(Vec::new()) }])
        }
        fn unusable(&mut self) -> Vec<TransportError> {
            vec![TransportError::ReaderInUse {
                reader: "ccid:1050:0407:BUSY".into(),
                detail: "busy".into(),
            }]
        }
        fn connect(
            &mut self,
            name: &ReaderName,
            _mode: ShareMode,
        ) -> Result<Option<Box<dyn CardTransport>>, TransportError> {
            Err(TransportError::NoCard { reader: name.to_string() })
        }
        fn wait_events(&mut self, _: Duration) -> Result<Vec<ReaderEvent>, TransportError> {
            Ok(Vec::new())
        }
    }

    fn three_sim_readers() -> (VirtualBackend, Registry) {
        let backend = VirtualBackend::new();
        backend.insert("sim:piv", Box::new(Blank));
        backend.insert("sim:openpgp", Box::new(Blank));
        backend.insert("sim:gids", Box::new(Blank));
        let mut registry = Registry::new();
        registry.add(Box::new(backend.clone()));
        (backend, registry)
    }

    #[test]
    fn connect_first_in_group_follows_the_groups_preference() {
        let (backend, mut registry) = three_sim_readers();
        // Patterns are in order of preference; within one pattern, listing order.
        registry.define_group("work", vec!["sim:g*".into(), "sim:*p*".into()]).unwrap();
        let t = registry.connect_first_in_group("work", ShareMode::Shared).unwrap();
        assert_eq!(t.reader(), "sim:gids");
        let names: Vec<String> =
            registry.readers_in("work").unwrap().0.into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["sim:gids", "sim:piv", "sim:openpgp"]);
        drop(t);
        // Readers without a card are passed over; built-in groups keep the listing order.
        backend.remove("sim:gids");
        backend.remove("sim:piv");
        let t = registry.connect_first_in_group("work", ShareMode::Shared).unwrap();
        assert_eq!(t.reader(), "sim:openpgp");
        drop(t);
        let t = registry.connect(Some("group:sim"), ShareMode::Shared).unwrap();
        assert_eq!(t.reader(), "sim:openpgp");
        drop(t);
        // A group named by `group:` through connect; `group_name` tells them apart.
        assert_eq!(group_name("group:work"), Some("work"));
        assert_eq!(group_name("sim:piv"), None);
        let t = registry.connect(Some("group:all"), ShareMode::Shared).unwrap();
        assert_eq!(t.reader(), "sim:openpgp");
    }

    #[test]
    fn no_card_in_the_group_names_the_group_and_its_readers() {
        let (backend, mut registry) = three_sim_readers();
        registry.define_group("work", vec!["sim:p*".into(), "sim:g*".into()]).unwrap();
        registry.define_group("nobody", vec!["pcsc:Nothing*".into()]).unwrap();
        backend.remove("sim:piv");
        backend.remove("sim:gids");
        let err = registry.connect(Some("group:work"), ShareMode::Shared).unwrap_err();
        assert!(
            matches!(&err, TransportError::NoCardInGroup { group, readers }
                if group == "work" && readers == "sim:piv (empty), sim:gids (empty)"),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "no reader with a card in group work (its readers: sim:piv (empty), sim:gids (empty))"
        );
        let err = registry.connect_first_in_group("nobody", ShareMode::Shared).unwrap_err();
        assert_eq!(err.to_string(), "no reader with a card in group nobody (its readers: none)");
        let err = registry.connect(Some("group:nope"), ShareMode::Shared).unwrap_err();
        assert!(matches!(err, TransportError::UnknownReader { .. }), "{err}");
        assert!(err.to_string().contains("group nope"), "{err}");
        // The reader of the group with a card is still found.
        let t = registry.connect_first_in_group("all", ShareMode::Shared).unwrap();
        assert_eq!(t.reader(), "sim:openpgp");
    }

    #[test]
    fn readers_gone_or_held_elsewhere_in_a_group() {
        let mut registry = Registry::new();
        registry.add(Box::new(Elsewhere));
        let backend = VirtualBackend::new();
        backend.insert("sim:piv", Box::new(Blank));
        registry.add(Box::new(backend.clone()));
        // The ccid reader listed first lost its card before the connection: the next one.
        let t = registry.connect_first_in_group("all", ShareMode::Shared).unwrap();
        assert_eq!(t.reader(), "sim:piv");
        drop(t);
        // Readers held by another driver are listed apart, and only in their groups.
        let (readers, unavailable) = registry.readers();
        assert_eq!(readers.len(), 2);
        assert_eq!(unavailable.len(), 1);
        assert_eq!(
            unavailable[0].to_string(),
            "ccid:1050:0407:BUSY: in use by another driver (pcscd?): busy"
        );
        assert!(registry.readers_in("sim").unwrap().1.is_empty());
        assert_eq!(registry.readers_in("ccid").unwrap().1.len(), 1);
        let err = registry.connect_first_in_group("ccid", ShareMode::Shared).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no reader with a card in group ccid (its readers: ccid:1050:0407:GONE (card gone), \
             ccid:1050:0407:BUSY (in use elsewhere))"
        );
        // An unknown ATR still means a card is there.
        let info = ReaderInfo { name: "ccid:1:2:3".into(), atr: Some(Vec::new()) };
        assert!(info.has_card() && info.known_atr().is_none());
    }
}
