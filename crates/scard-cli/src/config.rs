//! The configuration file: `$SCARD_CONFIG`, else `$XDG_CONFIG_HOME/scard/config.toml`, else
//! `~/.config/scard/config.toml`. Missing is fine (nothing configured); unreadable or
//! malformed is an error naming the file.
//!
//! ```toml
//! # Reader groups: reader-name globs (`scard readers --group work`).
//! [groups]
//! work = ["pcsc:Yubico*", "ccid:1050:*"]
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// What the file may hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// User reader groups.
    #[serde(default)]
    pub(crate) groups: BTreeMap<String, Vec<String>>,
}

/// Where the configuration file is looked for.
pub(crate) fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SCARD_CONFIG") {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("scard").join("config.toml"))
}

/// Loads the configuration; `Err` names the file and what is wrong with it.
pub(crate) fn load() -> Result<Config, String> {
    let Some(path) = path() else { return Ok(Config::default()) };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_groups_and_rejects_unknown_keys() {
        let c: Config =
            toml::from_str("[groups]\nwork = [\"pcsc:Yubico*\", \"ccid:1050:*\"]\n").unwrap();
        assert_eq!(c.groups["work"], ["pcsc:Yubico*", "ccid:1050:*"]);
        assert!(toml::from_str::<Config>("colour = 1\n").is_err());
        assert!(toml::from_str::<Config>("[groups]\nwork = 3\n").is_err());
        assert!(toml::from_str::<Config>("").unwrap().groups.is_empty());
    }
}
