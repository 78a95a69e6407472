//! From the configured reader entries to a transport registry: one backend per kind named
//! (`sim:` with the `sim` feature, one `vpcd:` listener per entry, PC/SC, USB CCID), and the
//! matching of listed readers against the entries.

use std::time::Duration;

use scard_transport::{ReaderName, Registry, glob_match};

use crate::config::ProviderConfig;
use crate::error::{KspError, Result};

/// An entry in its canonical spelling (a `vpcd:` entry with the port really bound, family
/// names in lower case), for matching listed reader names.
pub(crate) fn normalize(entry: &str) -> String {
    let entry = entry.trim();
    if entry.contains(['*', '?']) && !entry.starts_with("pcsc:") && entry != "ccid:*" {
        return entry.to_owned();
    }
    match entry.parse::<ReaderName>() {
        Ok(name) => name.to_string(),
        Err(_) => entry.to_owned(),
    }
}

/// Whether the listed reader `reader` is one the entry names: a glob match of the full name,
/// or for `ccid:<vid>:<pid>[:<serial>]` any reader (slot) of that device.
pub(crate) fn matches(entry: &str, reader: &str) -> bool {
    if glob_match(entry, reader) {
        return true;
    }
    entry.starts_with("ccid:")
        && reader.len() > entry.len()
        && reader.starts_with(entry)
        && matches!(reader.as_bytes().get(entry.len()), Some(b':' | b'#'))
}

/// The registry for `config`, and the entries in canonical spelling.
pub(crate) fn build(config: &ProviderConfig) -> Result<(Registry, Vec<String>)> {
    let mut registry = Registry::new();
    let mut entries = Vec::new();
    let (mut sim, mut pcsc, mut ccid) = (false, false, false);
    for entry in &config.readers {
        let entry = entry.trim();
        let parsed = entry.parse::<ReaderName>();
        match parsed {
            Ok(ReaderName::Sim { .. }) => {
                if !sim {
                    sim = true;
                    add_sim(&mut registry, entry)?;
                }
                entries.push(normalize(entry));
            }
            Ok(ReaderName::Vpcd { host, port }) => {
                let backend =
                    scard_transport::vpcd::VpcdBackend::listen(&host, port, config.vpcd_wait)?
                        .with_timeout(config.timeout);
                entries.push(backend.name().to_owned());
                registry.add(Box::new(backend));
            }
            Ok(ReaderName::Pcsc { .. }) => {
                if !pcsc {
                    pcsc = true;
                    // pcsc-lite is loaded at run time; without it the backend reports
                    // "PC/SC not available" and lists nothing.
                    registry
                        .add(Box::new(scard_pcsc::PcscBackend::new().with_timeout(config.timeout)));
                }
                entries.push(normalize(entry));
            }
            Ok(ReaderName::Ccid { .. } | ReaderName::CcidAny) => {
                if !ccid {
                    ccid = true;
                    registry.add(Box::new(
                        scard_ccid::CcidBackend::system().with_timeout(config.timeout),
                    ));
                }
                entries.push(normalize(entry));
            }
            Err(err) => {
                return Err(KspError::Config {
                    file: "readers".into(),
                    line: 1,
                    field: entry.to_owned(),
                    reason: err.to_string(),
                });
            }
        }
    }
    Ok((registry, entries))
}

#[cfg(feature = "sim")]
fn add_sim(registry: &mut Registry, _entry: &str) -> Result<()> {
    registry.add(Box::new(crate::sim::sim_backend()));
    Ok(())
}

#[cfg(not(feature = "sim"))]
fn add_sim(_registry: &mut Registry, entry: &str) -> Result<()> {
    Err(KspError::ReaderUnavailable {
        reader: entry.to_owned(),
        reason: "sim: readers need scard-ksp built with its `sim` feature".into(),
    })
}

/// Entries that name one `sim:` card (no wildcard): connecting to them once creates the card.
pub(crate) fn sim_cards(entries: &[String]) -> impl Iterator<Item = &String> {
    entries.iter().filter(|e| e.starts_with("sim:") && !e.contains(['*', '?']))
}

/// How long to wait for events when asked to only look.
pub(crate) const NO_WAIT: Duration = Duration::ZERO;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_match_readers() {
        assert!(matches("pcsc:*", "pcsc:Virtual PCD 00 00"));
        assert!(!matches("pcsc:*", "ccid:1050:0407"));
        assert!(matches("ccid:*", "ccid:1050:0407:123#1"));
        assert!(matches("ccid:1050:0407", "ccid:1050:0407:123"));
        assert!(matches("ccid:1050:0407:123", "ccid:1050:0407:123#1"));
        assert!(!matches("ccid:1050:0407:12", "ccid:1050:0407:123"));
        assert!(matches("sim:*", "sim:piv:/tmp/x"));
        assert_eq!(normalize(" sim:PIV:/tmp/x "), "sim:piv:/tmp/x");
        assert_eq!(normalize("ccid:1050:0x0407"), "ccid:1050:0407");
        assert_eq!(normalize("pcsc:Yubico*"), "pcsc:Yubico*");
        assert_eq!(normalize("sim:*"), "sim:*");
    }
}
