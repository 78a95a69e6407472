//! The provider's configuration: which readers, exchange deadline, PIN cache settings,
//! certificate cache, pinentry program.
//!
//! Sources, in order: `SCARD_READERS` (a comma list of readers, which wins over the file's
//! `readers`), then `$XDG_CONFIG_HOME/scard/scard.toml` (`~/.config/scard/scard.toml`):
//!
//! ```toml
//! # Reader names or globs, in the order slots are listed (default: every PC/SC and every
//! # USB CCID reader).
//! readers = ["pcsc:*", "ccid:*", "vpcd:127.0.0.1:35973", "sim:piv:/home/me/piv.json"]
//! timeout = 30                 # seconds one exchange with a card may take
//! pinentry = "/usr/bin/pinentry-curses"
//! certificate_cache = true     # keep certificates in $XDG_CACHE_HOME/scard (default true)
//!
//! [pin_cache]
//! policy = "card"              # card (each PIN's own policy), normal, none, always-prompt, timed
//! seconds = 300                # with policy = "timed"
//! max_seconds = 900            # no PIN stays cached longer, whatever the policy
//! ```
//!
//! A missing file is the defaults; a file that does not parse is an error naming the file,
//! the line and the field.

use std::path::{Path, PathBuf};
use std::time::Duration;

use scard_minidriver::CachePolicy;
use serde::Deserialize;
use toml::Spanned;

use crate::error::{KspError, Result};

/// The readers used when neither `SCARD_READERS` nor the file names any.
pub const DEFAULT_READERS: [&str; 2] = ["pcsc:*", "ccid:*"];

/// The environment variable with a comma list of readers.
pub const READERS_ENV: &str = "SCARD_READERS";

/// The environment variable naming a pinentry program.
pub const PINENTRY_ENV: &str = "SCARD_PINENTRY";

/// PIN cache settings on top of each PIN's own policy (`PinInfo::cache_policy`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PinCacheConfig {
    /// Replaces every PIN's own policy when set (e.g. `CachePolicy::None` for a kiosk,
    /// `CachePolicy::Timed(300)`). Keys that need their PIN before every use (PIV 9C) always
    /// ask, whatever this says.
    pub policy: Option<CachePolicy>,
    /// No PIN stays cached longer than this (a `Normal` policy becomes timed).
    pub max_age: Option<Duration>,
}

impl PinCacheConfig {
    /// The policy for a PIN whose card says `card_policy`.
    pub fn effective(&self, card_policy: CachePolicy) -> CachePolicy {
        let policy = self.policy.unwrap_or(card_policy);
        let Some(max) = self.max_age else { return policy };
        let max = u32::try_from(max.as_secs()).unwrap_or(u32::MAX);
        match policy {
            CachePolicy::Normal => CachePolicy::Timed(max),
            CachePolicy::Timed(n) => CachePolicy::Timed(n.min(max)),
            other => other,
        }
    }
}

/// How the provider is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    /// Reader names or globs, in slot order: `pcsc:<name or glob>`, `ccid:*`,
    /// `ccid:<vid>:<pid>[:<serial>]`, `vpcd:<host>:<port>` (the provider listens there for a
    /// virtual card), `sim:<family>[:<state file>]` (an in-process simulated card, with the
    /// `sim` feature), `sim:*` (every `sim:` reader of a registry given to
    /// [`crate::Provider::with_registry`]).
    pub readers: Vec<String>,
    /// Deadline of one exchange with a card.
    pub timeout: Duration,
    /// PIN cache settings.
    pub pin_cache: PinCacheConfig,
    /// Directory of the persistent certificate cache (`None`: in memory only).
    pub certificate_cache: Option<PathBuf>,
    /// A pinentry program, for applications that want one ([`crate::PinentryPinSource`]).
    pub pinentry: Option<PathBuf>,
    /// How long a `vpcd:` reader waits for its virtual card when connecting.
    pub vpcd_wait: Duration,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            readers: DEFAULT_READERS.iter().map(|r| (*r).to_owned()).collect(),
            timeout: scard_transport::DEFAULT_TIMEOUT,
            pin_cache: PinCacheConfig::default(),
            certificate_cache: None,
            pinentry: None,
            vpcd_wait: Duration::from_millis(500),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    readers: Option<Spanned<Vec<Spanned<String>>>>,
    timeout: Option<Spanned<u64>>,
    pinentry: Option<Spanned<String>>,
    certificate_cache: Option<bool>,
    pin_cache: Option<PinCacheFile>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PinCacheFile {
    policy: Option<Spanned<String>>,
    seconds: Option<Spanned<u32>>,
    max_seconds: Option<Spanned<u64>>,
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(1, |t| t.bytes().filter(|&b| b == b'\n').count() + 1)
}

impl ProviderConfig {
    /// The configuration of this process: `SCARD_READERS`, `SCARD_PINENTRY` and the file
    /// [`ProviderConfig::default_path`] (missing: defaults).
    pub fn from_env_and_file() -> Result<Self> {
        let readers = std::env::var(READERS_ENV).ok();
        let path = Self::default_path();
        let mut config = Self::load(readers.as_deref(), path.as_deref())?;
        if let Some(program) = std::env::var_os(PINENTRY_ENV).filter(|p| !p.is_empty()) {
            config.pinentry = Some(PathBuf::from(program));
        }
        Ok(config)
    }

    /// `$XDG_CONFIG_HOME/scard/scard.toml`, else `~/.config/scard/scard.toml`.
    pub fn default_path() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(base.join("scard").join("scard.toml"))
    }

    /// The configuration from a `SCARD_READERS` value (when set and not blank it replaces the
    /// file's `readers`) and a file (missing: defaults). The persistent certificate cache is
    /// on unless the file says `certificate_cache = false`.
    pub fn load(readers_env: Option<&str>, file: Option<&Path>) -> Result<Self> {
        let defaults = || Self {
            certificate_cache: scard_minidriver::FileCache::default_dir(),
            ..Self::default()
        };
        let mut config = match file {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => Self::from_toml(&path.display().to_string(), &text)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => defaults(),
                Err(e) => {
                    return Err(KspError::Config {
                        file: path.display().to_string(),
                        line: 0,
                        field: "(file)".into(),
                        reason: e.to_string(),
                    });
                }
            },
            None => defaults(),
        };
        if let Some(list) = readers_env.filter(|l| !l.trim().is_empty()) {
            config.readers = parse_reader_list(list)?;
        }
        Ok(config)
    }

    /// Parses the file's text; `source` names it in errors.
    pub fn from_toml(source: &str, text: &str) -> Result<Self> {
        let at = |offset: usize, field: &str, reason: String| KspError::Config {
            file: source.to_owned(),
            line: line_of(text, offset),
            field: field.to_owned(),
            reason,
        };
        let file: FileConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            let message = e.message().to_owned();
            // serde names the field in its message ("unknown field `x`").
            let field =
                message.split('`').nth(1).map_or_else(|| "(file)".to_owned(), str::to_owned);
            at(offset, &field, message)
        })?;
        let mut config = Self::default();
        if let Some(readers) = file.readers {
            if readers.get_ref().is_empty() {
                return Err(at(readers.span().start, "readers", "names no reader".into()));
            }
            config.readers = Vec::new();
            for (i, r) in readers.get_ref().iter().enumerate() {
                check_reader(r.get_ref())
                    .map_err(|reason| at(r.span().start, &format!("readers[{i}]"), reason))?;
                config.readers.push(r.get_ref().trim().to_owned());
            }
        }
        if let Some(t) = file.timeout {
            if *t.get_ref() == 0 {
                return Err(at(t.span().start, "timeout", "must be at least 1 second".into()));
            }
            config.timeout = Duration::from_secs(*t.get_ref());
        }
        if let Some(p) = file.pinentry {
            if p.get_ref().trim().is_empty() {
                return Err(at(p.span().start, "pinentry", "empty program name".into()));
            }
            config.pinentry = Some(PathBuf::from(p.get_ref()));
        }
        config.certificate_cache = match file.certificate_cache {
            Some(false) => None,
            _ => scard_minidriver::FileCache::default_dir(),
        };
        if let Some(pc) = file.pin_cache {
            let seconds = pc.seconds.as_ref().map(|s| *s.get_ref());
            config.pin_cache.policy = match &pc.policy {
                None => None,
                Some(p) => match p.get_ref().as_str() {
                    "card" => None,
                    "normal" => Some(CachePolicy::Normal),
                    "none" => Some(CachePolicy::None),
                    "always-prompt" => Some(CachePolicy::AlwaysPrompt),
                    "timed" => match seconds {
                        Some(n) if n > 0 => Some(CachePolicy::Timed(n)),
                        _ => {
                            return Err(at(
                                p.span().start,
                                "pin_cache.seconds",
                                "policy \"timed\" needs seconds = N (N > 0)".into(),
                            ));
                        }
                    },
                    other => {
                        return Err(at(
                            p.span().start,
                            "pin_cache.policy",
                            format!(
                                "{other:?}: expected card, normal, none, always-prompt or timed"
                            ),
                        ));
                    }
                },
            };
            if let (Some(s), false) =
                (&pc.seconds, matches!(config.pin_cache.policy, Some(CachePolicy::Timed(_))))
            {
                return Err(at(
                    s.span().start,
                    "pin_cache.seconds",
                    "only with policy = \"timed\"".into(),
                ));
            }
            if let Some(m) = pc.max_seconds {
                config.pin_cache.max_age = Some(Duration::from_secs(*m.get_ref()));
            }
        }
        Ok(config)
    }
}

/// A comma list of readers (`SCARD_READERS`).
fn parse_reader_list(list: &str) -> Result<Vec<String>> {
    let mut readers = Vec::new();
    for (i, item) in list.split(',').map(str::trim).filter(|s| !s.is_empty()).enumerate() {
        check_reader(item).map_err(|reason| KspError::Config {
            file: READERS_ENV.to_owned(),
            line: 1,
            field: format!("readers[{i}]"),
            reason,
        })?;
        readers.push(item.to_owned());
    }
    Ok(readers)
}

/// A reader entry must be a reader name or glob of a known backend.
fn check_reader(entry: &str) -> std::result::Result<(), String> {
    let entry = entry.trim();
    if entry == "ccid:*" || entry == "sim:*" {
        return Ok(());
    }
    entry.parse::<scard_transport::ReaderName>().map(|_| ()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_sets_everything_and_errors_name_line_and_field() {
        let text = "readers = [\"pcsc:Yubico*\", \"sim:piv:/tmp/x.json\"]\ntimeout = 5\n\
                    pinentry = \"/usr/bin/pinentry\"\ncertificate_cache = false\n\
                    [pin_cache]\npolicy = \"timed\"\nseconds = 60\nmax_seconds = 30\n";
        let c = ProviderConfig::from_toml("scard.toml", text).unwrap();
        assert_eq!(c.readers, ["pcsc:Yubico*", "sim:piv:/tmp/x.json"]);
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!(c.pinentry.as_deref(), Some(Path::new("/usr/bin/pinentry")));
        assert_eq!(c.certificate_cache, None);
        assert_eq!(c.pin_cache.policy, Some(CachePolicy::Timed(60)));
        assert_eq!(c.pin_cache.effective(CachePolicy::Normal), CachePolicy::Timed(30));

        let err = ProviderConfig::from_toml("scard.toml", "timeout = 5\nreaders = [\"usb:1\"]\n")
            .unwrap_err();
        assert!(
            matches!(&err, KspError::Config { line: 2, field, .. } if field == "readers[0]"),
            "{err}"
        );
        assert!(err.to_string().starts_with("scard.toml:2: readers[0]: "), "{err}");
        let err = ProviderConfig::from_toml("f", "\n\ncolour = 1\n").unwrap_err();
        assert!(
            matches!(&err, KspError::Config { line: 3, field, .. } if field == "colour"),
            "{err}"
        );
        let err =
            ProviderConfig::from_toml("f", "[pin_cache]\npolicy = \"sometimes\"\n").unwrap_err();
        assert!(
            matches!(&err, KspError::Config { line: 2, field, .. } if field == "pin_cache.policy"),
            "{err}"
        );
        let err = ProviderConfig::from_toml("f", "[pin_cache]\npolicy = \"timed\"\n").unwrap_err();
        assert!(matches!(&err, KspError::Config { field, .. } if field == "pin_cache.seconds"));
        let err = ProviderConfig::from_toml("f", "timeout = \"x\"\n").unwrap_err();
        assert!(matches!(&err, KspError::Config { line: 1, .. }), "{err}");
    }

    #[test]
    fn the_environment_wins_and_defaults_apply() {
        let c = ProviderConfig::load(Some(" sim:piv , pcsc:* ,"), None).unwrap();
        assert_eq!(c.readers, ["sim:piv", "pcsc:*"]);
        let c = ProviderConfig::load(None, Some(Path::new("/nonexistent/scard.toml"))).unwrap();
        assert_eq!(c.readers, DEFAULT_READERS);
        let err = ProviderConfig::load(Some("pcsc:*,bogus"), None).unwrap_err();
        assert!(
            matches!(&err, KspError::Config { file, field, .. }
                if file == READERS_ENV && field == "readers[1]"),
            "{err}"
        );
    }

    #[test]
    fn effective_policies() {
        let none = PinCacheConfig::default();
        assert_eq!(none.effective(CachePolicy::Normal), CachePolicy::Normal);
        let forced = PinCacheConfig { policy: Some(CachePolicy::None), max_age: None };
        assert_eq!(forced.effective(CachePolicy::Normal), CachePolicy::None);
        let capped = PinCacheConfig { policy: None, max_age: Some(Duration::from_secs(10)) };
        assert_eq!(capped.effective(CachePolicy::Timed(60)), CachePolicy::Timed(10));
        assert_eq!(capped.effective(CachePolicy::AlwaysPrompt), CachePolicy::AlwaysPrompt);
    }
}
