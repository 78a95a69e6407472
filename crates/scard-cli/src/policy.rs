//! The logon and propagation settings (`scard_certs::Policy`) as the commands load them: the
//! defaults, then the settings file `$XDG_CONFIG_HOME/scard/policy.toml` (else
//! `~/.config/scard/policy.toml`; a missing file is no error), then `--policy NAME=VALUE`
//! flags, each overriding what came before. `scard policy` shows the result.
//!
//! ```toml
//! # Registry value names of the Windows smart card policies.
//! EnumerateECCCerts = 1
//! ScRemoveOption = 1
//! IntegratedUnblockPromptString = "Call the help desk"
//! ```

use std::path::PathBuf;

use scard_certs::{Policy, Setting, Source, Value};
use serde::Serialize;

use crate::{EXIT_BAD_INPUT, EXIT_FAILURE, Outcome, to_json};

/// `--policy NAME=VALUE`, for every command that uses the settings.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct PolicyArgs {
    /// Overrides one setting of the settings file (registry value names, e.g.
    /// EnumerateECCCerts=1); may be repeated. `scard policy` lists them.
    #[arg(long = "policy", value_name = "NAME=VALUE")]
    pub(crate) settings: Vec<String>,
}

/// `scard policy`.
#[derive(Debug, clap::Args)]
pub(crate) struct PolicyCmdArgs {
    #[command(flatten)]
    pub(crate) policy: PolicyArgs,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Where the settings file is looked for.
pub(crate) fn file_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("scard").join("policy.toml"))
}

/// A failure to load the settings: message and exit status (2 for a bad setting, 1 for a
/// file that exists but cannot be read).
pub(crate) struct PolicyError {
    pub(crate) message: String,
    pub(crate) status: u8,
}

/// The settings: defaults, the file, the flags.
pub(crate) fn load(args: &PolicyArgs) -> Result<Policy, PolicyError> {
    let mut policy = Policy::new();
    if let Some(path) = file_path() {
        match std::fs::read_to_string(&path) {
            Ok(text) => policy
                .apply_toml(&text, &path)
                .map_err(|e| PolicyError { message: e.to_string(), status: EXIT_BAD_INPUT })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(PolicyError {
                    message: format!("{}: {e}", path.display()),
                    status: EXIT_FAILURE,
                });
            }
        }
    }
    for arg in &args.settings {
        policy
            .apply_arg(arg)
            .map_err(|e| PolicyError { message: e.to_string(), status: EXIT_BAD_INPUT })?;
    }
    Ok(policy)
}

#[derive(Serialize)]
struct PolicyJson {
    /// The settings file looked for (whether or not it exists).
    file: Option<String>,
    settings: Vec<SettingJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct SettingJson {
    name: &'static str,
    /// A number, or text for IntegratedUnblockPromptString.
    value: serde_json::Value,
    /// What a numbered choice means ("lock", ...), else null.
    meaning: Option<&'static str>,
    /// "default", "file" or "command-line".
    source: &'static str,
    /// The file, when the value came from one.
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
}

/// `scard policy [--json]`: every setting, its value and where it came from.
pub(crate) fn run(args: &PolicyCmdArgs) -> Outcome {
    let file = file_path().map(|p| p.display().to_string());
    let policy = match load(&args.policy) {
        Ok(p) => p,
        Err(PolicyError { message, status }) if args.json => {
            return to_json(
                &PolicyJson { file, settings: Vec::new(), error: Some(message) },
                status,
            );
        }
        Err(PolicyError { message, status }) => return Outcome::error(message, status),
    };
    let entries = policy.entries();
    if args.json {
        let settings = entries
            .iter()
            .map(|e| SettingJson {
                name: e.setting.name(),
                value: match &e.value {
                    Value::Number(n) => serde_json::Value::from(*n),
                    Value::Text(t) => serde_json::Value::from(t.as_str()),
                },
                meaning: e.setting.meaning(&e.value),
                source: match e.source {
                    Source::Default => "default",
                    Source::File(_) => "file",
                    Source::CommandLine => "command-line",
                },
                path: match &e.source {
                    Source::File(p) => Some(p.display().to_string()),
                    _ => None,
                },
            })
            .collect();
        return to_json(&PolicyJson { file, settings, error: None }, 0);
    }
    let width = Setting::ALL.iter().map(|s| s.name().len()).max().unwrap_or(0);
    let mut text = String::new();
    for e in entries {
        let value = match e.setting.meaning(&e.value) {
            Some(meaning) => format!("{} ({meaning})", e.value),
            None => e.value.to_string(),
        };
        text.push_str(&format!("{:width$}  {value:28}  {}\n", e.setting.name(), e.source));
    }
    match file {
        Some(f) => text.push_str(&format!("settings file: {f}\n")),
        None => text.push_str("settings file: none (neither XDG_CONFIG_HOME nor HOME is set)\n"),
    }
    Outcome { text, status: 0 }
}
