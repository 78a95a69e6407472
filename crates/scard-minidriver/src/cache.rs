//! The host cache of card files, keyed by card id and the `cardcf` freshness counters
//! (Minidriver v7 §5.1.2: a host may keep a file as long as the counters are unchanged).
//! It holds public data only (certificates); never PINs, keys or decrypted data.
//!
//! In memory it serves the lifetime of a process; with a directory (by default
//! `$XDG_CACHE_HOME/scard/`, i.e. `~/.cache/scard/`) it also serves later processes, but only
//! for cards that keep their counters on the card ([`CardModule::freshness_on_card`]):
//! otherwise a write by another program could not be seen.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{CardError, Result};
use crate::fs::CardCf;
use crate::module::CardModule;

/// A cached certificate (or its absence) and the counters it was read under.
type Cached = (CardCf, Option<Vec<u8>>);

/// Cached certificates.
#[derive(Debug, Default)]
pub struct FileCache {
    dir: Option<PathBuf>,
    memory: HashMap<([u8; 16], u8), Cached>,
    card_reads: u64,
}

impl FileCache {
    /// A cache for this process only.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// A cache also kept in `dir` (one subdirectory per card id).
    pub fn with_dir(dir: impl Into<PathBuf>) -> Self {
        Self { dir: Some(dir.into()), ..Self::default() }
    }

    /// `$XDG_CACHE_HOME/scard` or `~/.cache/scard`.
    pub fn default_dir() -> Option<PathBuf> {
        std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|base| base.join("scard"))
    }

    /// How many certificates were read from cards (not served from the cache).
    pub fn card_reads(&self) -> u64 {
        self.card_reads
    }

    /// The certificate of container `index`, from the cache when the card's id and
    /// freshness counters are those it was cached under, else from the card.
    pub fn certificate(&mut self, card: &mut dyn CardModule, index: u8) -> Result<Option<Vec<u8>>> {
        let id = card.card_id()?;
        let cf = card.cardcf()?;
        if let Some((cached_cf, data)) = self.memory.get(&(id, index)) {
            if *cached_cf == cf {
                return Ok(data.clone());
            }
        }
        let persistent = card.freshness_on_card();
        if persistent {
            if let Some(data) = self.dir.as_deref().and_then(|d| load(d, &id, index, cf)) {
                self.memory.insert((id, index), (cf, data.clone()));
                return Ok(data);
            }
        }
        self.card_reads += 1;
        let data = card.certificate(index)?;
        if persistent {
            if let Some(dir) = &self.dir {
                if let Err(err) = store(dir, &id, index, cf, data.as_deref()) {
                    tracing::warn!("certificate cache: {err}");
                }
            }
        }
        self.memory.insert((id, index), (cf, data.clone()));
        Ok(data)
    }

    /// Forgets a card.
    pub fn forget(&mut self, card_id: &[u8; 16]) {
        self.memory.retain(|(id, _), _| id != card_id);
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(card_dir(dir, card_id));
        }
    }
}

fn card_dir(dir: &Path, id: &[u8; 16]) -> PathBuf {
    dir.join(scard_iso7816::hex::encode_upper(id))
}

fn file_name(index: u8) -> String {
    format!("cert{index:02x}")
}

/// File layout: 6 bytes cardcf, 1 byte (0 no certificate, 1 certificate), the DER.
fn load(dir: &Path, id: &[u8; 16], index: u8, cf: CardCf) -> Option<Option<Vec<u8>>> {
    let bytes = std::fs::read(card_dir(dir, id).join(file_name(index))).ok()?;
    let (head, rest) = bytes.split_at_checked(CardCf::LEN)?;
    if CardCf::decode(head).ok()? != cf {
        return None;
    }
    match rest.split_first()? {
        (0, []) => Some(None),
        (1, der) if !der.is_empty() => Some(Some(der.to_vec())),
        _ => None,
    }
}

fn store(dir: &Path, id: &[u8; 16], index: u8, cf: CardCf, der: Option<&[u8]>) -> Result<()> {
    let cdir = card_dir(dir, id);
    let io = |path: &Path, source| CardError::Io { path: path.display().to_string(), source };
    std::fs::create_dir_all(&cdir).map_err(|e| io(&cdir, e))?;
    let mut bytes = cf.encode().to_vec();
    match der {
        Some(der) => {
            bytes.push(1);
            bytes.extend_from_slice(der);
        }
        None => bytes.push(0),
    }
    let path = cdir.join(file_name(index));
    let tmp = cdir.join(format!("{}.tmp{}", file_name(index), std::process::id()));
    std::fs::write(&tmp, &bytes).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))
}
