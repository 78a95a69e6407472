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

/// Public card objects a profile keeps across processes (certificates, public keys), one file
/// per card and family: `<dir>/<CARD ID>/<family>.objects`. A file holds what the profile
/// can check cheaply when a session starts (its *validator*: PIV the whole CHUID, OpenPGP the
/// key fingerprints and algorithm attributes) and is used only while the card shows the same
/// one. Never secrets: profiles store public data only.
///
/// File layout: `SOBJ`, version 1, the validator (u16 big-endian length, bytes), then the
/// entries, each a name (u8 length, ASCII) and a value (u32 big-endian length, bytes). A file
/// that does not decode, or whose validator differs, is ignored (and replaced on the next
/// store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectStore {
    dir: PathBuf,
}

/// The entries of an [`ObjectStore`] file: names to values.
pub type Objects = std::collections::BTreeMap<String, Vec<u8>>;

const OBJECTS_MAGIC: &[u8; 5] = b"SOBJ\x01";

impl ObjectStore {
    /// A store under `dir` (the certificate cache's directory).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The family whose application answered last on a card with this ATR, when several
    /// families claim it (a hint for which to probe first; the probe itself decides).
    pub fn atr_family(&self, atr: &[u8]) -> Option<String> {
        let text = std::fs::read_to_string(self.atr_file(atr)).ok()?;
        let family = text.trim();
        (!family.is_empty() && family.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| family.to_owned())
    }

    /// Records the family whose application answered on a card with this ATR.
    pub fn set_atr_family(&self, atr: &[u8], family: &str) -> Result<()> {
        if self.atr_family(atr).as_deref() == Some(family) {
            return Ok(());
        }
        let path = self.atr_file(atr);
        let io = |path: &Path, source| CardError::Io { path: path.display().to_string(), source };
        let dir = self.dir.join("atr");
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, family).map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))
    }

    fn atr_file(&self, atr: &[u8]) -> PathBuf {
        self.dir.join("atr").join(scard_iso7816::hex::encode_upper(atr))
    }

    fn file(&self, card_id: &[u8; 16], family: &str) -> PathBuf {
        card_dir(&self.dir, card_id).join(format!("{family}.objects"))
    }

    /// The entries kept for this card and family, if they were stored under `validator`
    /// (empty otherwise).
    pub fn load(&self, card_id: &[u8; 16], family: &str, validator: &[u8]) -> Objects {
        std::fs::read(self.file(card_id, family))
            .ok()
            .and_then(|bytes| decode_objects(&bytes, validator))
            .unwrap_or_default()
    }

    /// Replaces the entries kept for this card and family (an empty set removes the file).
    pub fn store(
        &self,
        card_id: &[u8; 16],
        family: &str,
        validator: &[u8],
        objects: &Objects,
    ) -> Result<()> {
        let path = self.file(card_id, family);
        let io = |path: &Path, source| CardError::Io { path: path.display().to_string(), source };
        if objects.is_empty() {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path, e)),
                _ => Ok(()),
            };
        }
        let bytes = encode_objects(validator, objects).ok_or_else(|| CardError::InvalidInput {
            what: "cached objects",
            reason: "a name or value too long for the cache file".into(),
        })?;
        let cdir = card_dir(&self.dir, card_id);
        std::fs::create_dir_all(&cdir).map_err(|e| io(&cdir, e))?;
        let tmp = cdir.join(format!("{family}.objects.tmp{}", std::process::id()));
        std::fs::write(&tmp, &bytes).map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))
    }
}

fn encode_objects(validator: &[u8], objects: &Objects) -> Option<Vec<u8>> {
    let mut out = OBJECTS_MAGIC.to_vec();
    out.extend_from_slice(&u16::try_from(validator.len()).ok()?.to_be_bytes());
    out.extend_from_slice(validator);
    for (name, value) in objects {
        out.push(u8::try_from(name.len()).ok()?);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&u32::try_from(value.len()).ok()?.to_be_bytes());
        out.extend_from_slice(value);
    }
    Some(out)
}

fn decode_objects(bytes: &[u8], validator: &[u8]) -> Option<Objects> {
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, tail) = rest.split_at_checked(n)?;
        *rest = tail;
        Some(head)
    }
    let mut rest = bytes.strip_prefix(OBJECTS_MAGIC.as_slice())?;
    let len = u16::from_be_bytes(take(&mut rest, 2)?.try_into().ok()?);
    if take(&mut rest, usize::from(len))? != validator {
        return None;
    }
    let mut objects = Objects::new();
    while !rest.is_empty() {
        let [n] = take(&mut rest, 1)? else { return None };
        let name = std::str::from_utf8(take(&mut rest, usize::from(*n))?).ok()?.to_owned();
        let len = u32::from_be_bytes(take(&mut rest, 4)?.try_into().ok()?);
        let value = take(&mut rest, usize::try_from(len).ok()?)?.to_vec();
        objects.insert(name, value);
    }
    Some(objects)
}

#[cfg(test)]
mod object_store_tests {
    use super::*;

    #[test]
    fn objects_round_trip_under_their_validator_only() {
        let dir = std::env::temp_dir().join(format!("scard-objects-{}", std::process::id()));
        let store = ObjectStore::new(&dir);
        let id = [7u8; 16];
        let mut objects = Objects::new();
        objects.insert("cert-9a".into(), vec![0x30, 0x82, 0x01]);
        objects.insert("empty".into(), Vec::new());
        store.store(&id, "piv", b"chuid one", &objects).unwrap();
        assert_eq!(store.load(&id, "piv", b"chuid one"), objects);
        // Another validator (the card changed), another family, another card: nothing.
        assert!(store.load(&id, "piv", b"chuid two").is_empty());
        assert!(store.load(&id, "openpgp", b"chuid one").is_empty());
        assert!(store.load(&[8u8; 16], "piv", b"chuid one").is_empty());
        // A damaged file is ignored, never an error.
        let file = store.file(&id, "piv");
        let mut bytes = std::fs::read(&file).unwrap();
        bytes.truncate(bytes.len() - 1);
        std::fs::write(&file, &bytes).unwrap();
        assert!(store.load(&id, "piv", b"chuid one").is_empty());
        // An empty set removes the file.
        store.store(&id, "piv", b"chuid one", &Objects::new()).unwrap();
        assert!(!file.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
