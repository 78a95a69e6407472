//! Saving a card's persistent state to a file and loading it back, so that a provisioned card
//! survives a restart. The file is JSON: `{"family": ..., "format": 1, "card": {...}}` with
//! binary values in hex. Writes are atomic (temporary file, then rename): a crash never leaves
//! half a card behind.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Card, Family, SimError, SimRng, gids, openpgp, piv};

/// Version of the state file layout.
pub const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct StateFile {
    family: Family,
    format: u32,
    card: serde_json::Value,
}

/// Writes the persistent state of `card` to `path` atomically, readable by the owner only.
pub fn save(card: &dyn Card, path: &Path) -> Result<(), SimError> {
    let io = |source| SimError::StateIo { path: path.display().to_string(), source };
    let doc = StateFile { family: card.family(), format: FORMAT, card: card.save_state() };
    let text = serde_json::to_vec_pretty(&doc).map_err(|e| SimError::StateFormat {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(io)?;
    file.write_all(&text).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    fs::rename(&tmp, path).map_err(io)
}

/// Loads a card of `family` from `path`.
pub fn load(family: Family, path: &Path, rng: SimRng) -> Result<Box<dyn Card>, SimError> {
    let name = path.display().to_string();
    let text = fs::read(path).map_err(|source| SimError::StateIo { path: name.clone(), source })?;
    let bad = |reason: String| SimError::StateFormat { path: name.clone(), reason };
    let doc: StateFile = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    if doc.format != FORMAT {
        return Err(bad(format!("format {} is not the supported {FORMAT}", doc.format)));
    }
    if doc.family != family {
        return Err(bad(format!("holds a {} card, not a {family} card", doc.family)));
    }
    let card: Box<dyn Card> = match family {
        Family::Piv => Box::new(piv::PivCard::from_state(doc.card, rng).map_err(bad)?),
        Family::OpenPgp => Box::new(openpgp::OpenPgpCard::from_state(doc.card, rng).map_err(bad)?),
        Family::Gids => Box::new(gids::GidsCard::from_state(doc.card, rng).map_err(bad)?),
    };
    Ok(card)
}

/// Reads the family recorded in a state file.
pub fn family_of(path: &Path) -> Result<Family, SimError> {
    let name = path.display().to_string();
    let text = fs::read(path).map_err(|source| SimError::StateIo { path: name.clone(), source })?;
    let doc: StateFile = serde_json::from_slice(&text)
        .map_err(|e| SimError::StateFormat { path: name, reason: e.to_string() })?;
    Ok(doc.family)
}

/// `#[serde(with = "hex_bytes")]` for byte strings stored as upper-case hex.
pub mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes bytes as hex.
    pub fn serialize<T: AsRef<[u8]>, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&scard_iso7816::hex::encode_upper(value.as_ref()))
    }

    /// Deserializes hex into bytes.
    pub fn deserialize<'de, T: From<Vec<u8>>, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        let text = String::deserialize(d)?;
        scard_iso7816::hex::decode_lenient(&text).map(T::from).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "hex_map")]` for maps from a number to bytes (data objects by tag).
pub mod hex_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Serializes as `{"5FC102": "hex", ...}`.
    pub fn serialize<S: Serializer>(map: &BTreeMap<u32, Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        let text: BTreeMap<String, String> = map
            .iter()
            .map(|(k, v)| (format!("{k:X}"), scard_iso7816::hex::encode_upper(v)))
            .collect();
        text.serialize(s)
    }

    /// Deserializes what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<u32, Vec<u8>>, D::Error> {
        let text = BTreeMap::<String, String>::deserialize(d)?;
        text.into_iter()
            .map(|(k, v)| {
                let key = u32::from_str_radix(&k, 16).map_err(serde::de::Error::custom)?;
                let value =
                    scard_iso7816::hex::decode_lenient(&v).map_err(serde::de::Error::custom)?;
                Ok((key, value))
            })
            .collect()
    }
}
