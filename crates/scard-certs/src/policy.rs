//! The settings, under the Windows registry value names of the smart card group policies
//! (`HKLM\SOFTWARE\Policies\Microsoft\Windows\SmartCardCredentialProvider`, `...\ScPnP`,
//! `...\CertProp`, `Winlogon\ScRemoveOption`). Every value is validated; an unknown name or a
//! value out of range is an error naming the setting; every value remembers where it came
//! from.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::CertError;

/// One setting. Closed: these are our meanings (DESIGN.md), with the registry's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[allow(clippy::enum_variant_names)]
pub enum Setting {
    /// Rule 6: also accept no EKU, anyExtendedKeyUsage or Client Authentication.
    AllowCertificatesWithNoEKU,
    /// Rule 4: accept certificates of signature-only (AT_SIGNATURE) keys.
    AllowSignatureOnlyKeys,
    /// Rule 2: list expired and not-yet-valid certificates.
    AllowTimeInvalidCertificates,
    /// Rule 3: accept ECC keys on P-256, P-384, P-521.
    EnumerateECCCerts,
    /// Rule 12: filter duplicate certificates (same template and UPN).
    FilterDuplicateCerts,
    /// Rule 10: read every container of cards that cannot return all certificates at once.
    ForceReadingAllCertificates,
    /// Logon UI: show a user name hint field (kept and shown; no effect here).
    X509HintsNeeded,
    /// Logon UI: show the subject in reverse order.
    ReverseSubject,
    /// Logon UI: offer the integrated unblock screen (kept and shown; no effect here).
    AllowIntegratedUnblock,
    /// Logon UI: refuse plaintext PIN entry (kept and shown; no effect here).
    DisallowPlaintextPin,
    /// Certificate propagation on card insertion.
    CertPropEnabled,
    /// Root (CA) certificate propagation on card insertion.
    EnableRootCertificatePropagation,
    /// When propagated roots are removed.
    RootCertificateCleanupOption,
    /// What happens when the logon card is removed.
    ScRemoveOption,
    /// Logon UI: the text of the integrated unblock prompt (kept and shown; no effect here).
    IntegratedUnblockPromptString,
}

/// The kind and default of a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// 0 or 1.
    Flag { default: bool },
    /// 0 ..= max, each with a meaning.
    Choice { default: u8, meanings: &'static [&'static str] },
    /// Free text.
    Text,
}

impl Setting {
    /// Every setting, in the order `scard policy` shows them.
    pub const ALL: [Setting; 15] = [
        Setting::AllowCertificatesWithNoEKU,
        Setting::AllowSignatureOnlyKeys,
        Setting::AllowTimeInvalidCertificates,
        Setting::EnumerateECCCerts,
        Setting::FilterDuplicateCerts,
        Setting::ForceReadingAllCertificates,
        Setting::X509HintsNeeded,
        Setting::ReverseSubject,
        Setting::AllowIntegratedUnblock,
        Setting::DisallowPlaintextPin,
        Setting::CertPropEnabled,
        Setting::EnableRootCertificatePropagation,
        Setting::RootCertificateCleanupOption,
        Setting::ScRemoveOption,
        Setting::IntegratedUnblockPromptString,
    ];

    /// The registry value name.
    pub fn name(self) -> &'static str {
        match self {
            Setting::AllowCertificatesWithNoEKU => "AllowCertificatesWithNoEKU",
            Setting::AllowSignatureOnlyKeys => "AllowSignatureOnlyKeys",
            Setting::AllowTimeInvalidCertificates => "AllowTimeInvalidCertificates",
            Setting::EnumerateECCCerts => "EnumerateECCCerts",
            Setting::FilterDuplicateCerts => "FilterDuplicateCerts",
            Setting::ForceReadingAllCertificates => "ForceReadingAllCertificates",
            Setting::X509HintsNeeded => "X509HintsNeeded",
            Setting::ReverseSubject => "ReverseSubject",
            Setting::AllowIntegratedUnblock => "AllowIntegratedUnblock",
            Setting::DisallowPlaintextPin => "DisallowPlaintextPin",
            Setting::CertPropEnabled => "CertPropEnabled",
            Setting::EnableRootCertificatePropagation => "EnableRootCertificatePropagation",
            Setting::RootCertificateCleanupOption => "RootCertificateCleanupOption",
            Setting::ScRemoveOption => "ScRemoveOption",
            Setting::IntegratedUnblockPromptString => "IntegratedUnblockPromptString",
        }
    }

    /// The setting of a name. Registry value names are case-insensitive, so is this.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name().eq_ignore_ascii_case(name))
    }

    fn kind(self) -> Kind {
        match self {
            Setting::CertPropEnabled | Setting::EnableRootCertificatePropagation => {
                Kind::Flag { default: true }
            }
            Setting::RootCertificateCleanupOption => Kind::Choice {
                default: 1,
                meanings: &[
                    "no cleanup",
                    "clean up at sign-out",
                    "clean up when the card is removed",
                ],
            },
            Setting::ScRemoveOption => Kind::Choice {
                default: 0,
                meanings: &["no action", "lock", "log off", "disconnect a remote session"],
            },
            Setting::IntegratedUnblockPromptString => Kind::Text,
            _ => Kind::Flag { default: false },
        }
    }

    /// The default value.
    pub fn default_value(self) -> Value {
        match self.kind() {
            Kind::Flag { default } => Value::Number(u8::from(default)),
            Kind::Choice { default, .. } => Value::Number(default),
            Kind::Text => Value::Text(String::new()),
        }
    }

    /// What a value of this setting means (`lock`, `clean up at sign-out`, ...), for numbered
    /// choices; `None` for flags and text.
    pub fn meaning(self, value: &Value) -> Option<&'static str> {
        match (self.kind(), value) {
            (Kind::Choice { meanings, .. }, Value::Number(n)) => {
                meanings.get(usize::from(*n)).copied()
            }
            _ => None,
        }
    }

    /// The values allowed, for messages.
    fn expected(self) -> &'static str {
        match self.kind() {
            Kind::Flag { .. } => "0 or 1",
            Kind::Choice { meanings, .. } if meanings.len() == 3 => "0, 1 or 2",
            Kind::Choice { .. } => "0, 1, 2 or 3",
            Kind::Text => "text",
        }
    }

    /// Parses a value given as text (command line, or a TOML string).
    fn parse_text(self, text: &str, origin: Option<&Path>) -> Result<Value, CertError> {
        let bad = || CertError::SettingValue {
            setting: self,
            value: format!("{text:?}"),
            expected: self.expected(),
            origin: origin.map(Path::to_path_buf),
        };
        match self.kind() {
            Kind::Text => Ok(Value::Text(text.to_owned())),
            // Canonical decimal only: "1", never "01", " 1", "+1" or "0x1".
            Kind::Flag { .. } | Kind::Choice { .. } => match text.as_bytes() {
                [d @ b'0'..=b'9'] => {
                    self.check_number(i64::from(d - b'0'), origin).map_err(|_| bad())
                }
                _ => Err(bad()),
            },
        }
    }

    fn check_number(self, n: i64, origin: Option<&Path>) -> Result<Value, CertError> {
        let max = match self.kind() {
            Kind::Flag { .. } => 1,
            Kind::Choice { meanings, .. } => meanings.len().saturating_sub(1),
            Kind::Text => 0,
        };
        match u8::try_from(n) {
            Ok(v) if usize::from(v) <= max && self.kind() != Kind::Text => Ok(Value::Number(v)),
            _ => Err(CertError::SettingValue {
                setting: self,
                value: n.to_string(),
                expected: self.expected(),
                origin: origin.map(Path::to_path_buf),
            }),
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A setting's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A flag (0, 1) or a numbered choice.
    Number(u8),
    /// Text.
    Text(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(n) => write!(f, "{n}"),
            Value::Text(t) => write!(f, "{t:?}"),
        }
    }
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Not set anywhere: the default.
    Default,
    /// The settings file.
    File(PathBuf),
    /// A command-line flag (`--policy NAME=VALUE`).
    CommandLine,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::CommandLine => f.write_str("command line"),
        }
    }
}

/// Root certificate cleanup (RootCertificateCleanupOption).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootCleanup {
    /// 0: never remove propagated roots.
    Never,
    /// 1: at sign-out (the service's end).
    AtSignOut,
    /// 2: when the card is removed.
    OnRemoval,
}

/// What to do when the card is removed (ScRemoveOption).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveAction {
    /// 0: nothing.
    None,
    /// 1: lock the session.
    Lock,
    /// 2: log off.
    Logoff,
    /// 3: disconnect a remote session.
    Disconnect,
}

impl RemoveAction {
    /// `none`, `lock`, `logoff`, `disconnect`.
    pub fn name(self) -> &'static str {
        match self {
            RemoveAction::None => "none",
            RemoveAction::Lock => "lock",
            RemoveAction::Logoff => "logoff",
            RemoveAction::Disconnect => "disconnect",
        }
    }
}

/// One setting's value and origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The setting.
    pub setting: Setting,
    /// Its value.
    pub value: Value,
    /// Where the value came from.
    pub source: Source,
}

/// Every setting with its value. Built with the defaults, then a file, then command-line
/// flags (each overriding what came before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    values: BTreeMap<Setting, (Value, Source)>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            values: Setting::ALL
                .into_iter()
                .map(|s| (s, (s.default_value(), Source::Default)))
                .collect(),
        }
    }
}

impl Policy {
    /// Every setting at its default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets one setting from text (`value` as on the command line); the value's origin is
    /// `source`.
    pub fn set(&mut self, setting: Setting, value: &str, source: Source) -> Result<(), CertError> {
        let origin = match &source {
            Source::File(p) => Some(p.as_path()),
            _ => None,
        };
        let value = setting.parse_text(value, origin)?;
        self.values.insert(setting, (value, source));
        Ok(())
    }

    /// Applies a command-line `NAME=VALUE` (the value is everything after the first `=`).
    pub fn apply_arg(&mut self, arg: &str) -> Result<(), CertError> {
        let Some((name, value)) = arg.split_once('=') else {
            return Err(CertError::SettingSyntax { arg: arg.to_owned() });
        };
        let name = name.trim();
        let setting = Setting::from_name(name)
            .ok_or_else(|| CertError::UnknownSetting { name: name.to_owned(), origin: None })?;
        self.set(setting, value, Source::CommandLine)
    }

    /// Applies a settings file: TOML, one `Name = value` per setting at the top level
    /// (integers for numbered settings, a string for text; a string holding the digit is
    /// taken too, as the registry stores ScRemoveOption as a string).
    pub fn apply_toml(&mut self, text: &str, path: &Path) -> Result<(), CertError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| CertError::PolicyFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        for (name, value) in &table {
            let setting = Setting::from_name(name).ok_or_else(|| CertError::UnknownSetting {
                name: name.clone(),
                origin: Some(path.to_path_buf()),
            })?;
            let parsed = match (value, setting.kind()) {
                (toml::Value::String(s), _) => setting.parse_text(s, Some(path))?,
                (toml::Value::Integer(n), Kind::Flag { .. } | Kind::Choice { .. }) => {
                    setting.check_number(*n, Some(path))?
                }
                (other, _) => {
                    return Err(CertError::SettingValue {
                        setting,
                        value: other.to_string(),
                        expected: setting.expected(),
                        origin: Some(path.to_path_buf()),
                    });
                }
            };
            self.values.insert(setting, (parsed, Source::File(path.to_path_buf())));
        }
        Ok(())
    }

    /// Every setting, value and origin, in [`Setting::ALL`] order.
    pub fn entries(&self) -> Vec<Entry> {
        Setting::ALL
            .into_iter()
            .map(|setting| {
                let (value, source) = self
                    .values
                    .get(&setting)
                    .cloned()
                    .unwrap_or_else(|| (setting.default_value(), Source::Default));
                Entry { setting, value, source }
            })
            .collect()
    }

    /// A setting's value and origin.
    pub fn get(&self, setting: Setting) -> Entry {
        let (value, source) = self
            .values
            .get(&setting)
            .cloned()
            .unwrap_or_else(|| (setting.default_value(), Source::Default));
        Entry { setting, value, source }
    }

    fn number(&self, setting: Setting) -> u8 {
        match self.values.get(&setting) {
            Some((Value::Number(n), _)) => *n,
            _ => match setting.default_value() {
                Value::Number(n) => n,
                Value::Text(_) => 0,
            },
        }
    }

    /// A 0/1 setting.
    pub fn flag(&self, setting: Setting) -> bool {
        self.number(setting) == 1
    }

    /// RootCertificateCleanupOption.
    pub fn root_cleanup(&self) -> RootCleanup {
        match self.number(Setting::RootCertificateCleanupOption) {
            0 => RootCleanup::Never,
            2 => RootCleanup::OnRemoval,
            _ => RootCleanup::AtSignOut,
        }
    }

    /// ScRemoveOption.
    pub fn remove_action(&self) -> RemoveAction {
        match self.number(Setting::ScRemoveOption) {
            1 => RemoveAction::Lock,
            2 => RemoveAction::Logoff,
            3 => RemoveAction::Disconnect,
            _ => RemoveAction::None,
        }
    }

    /// IntegratedUnblockPromptString.
    pub fn unblock_prompt(&self) -> &str {
        match self.values.get(&Setting::IntegratedUnblockPromptString) {
            Some((Value::Text(t), _)) => t,
            _ => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_table() {
        let p = Policy::new();
        for s in Setting::ALL {
            let e = p.get(s);
            assert_eq!(e.source, Source::Default, "{s}");
            let expected = match s {
                Setting::CertPropEnabled
                | Setting::EnableRootCertificatePropagation
                | Setting::RootCertificateCleanupOption => Value::Number(1),
                Setting::IntegratedUnblockPromptString => Value::Text(String::new()),
                _ => Value::Number(0),
            };
            assert_eq!(e.value, expected, "{s}");
        }
        assert_eq!(p.root_cleanup(), RootCleanup::AtSignOut);
        assert_eq!(p.remove_action(), RemoveAction::None);
        assert_eq!(p.unblock_prompt(), "");
        assert_eq!(p.entries().len(), 15);
        assert!(p.flag(Setting::CertPropEnabled));
        assert!(!p.flag(Setting::AllowCertificatesWithNoEKU));
    }

    #[test]
    fn every_flag_takes_0_and_1_and_nothing_else() {
        for s in Setting::ALL {
            let mut p = Policy::new();
            match s.kind() {
                Kind::Flag { .. } => {
                    p.apply_arg(&format!("{s}=1")).unwrap();
                    assert!(p.flag(s));
                    assert_eq!(p.get(s).source, Source::CommandLine);
                    p.apply_arg(&format!("{s}=0")).unwrap();
                    assert!(!p.flag(s));
                    for bad in ["2", "-1", "01", " 1", "1 ", "true", "", "0x1", "１"] {
                        let err = p.apply_arg(&format!("{s}={bad}")).unwrap_err();
                        assert!(err.to_string().contains(s.name()), "{err}");
                        assert!(err.to_string().contains("0 or 1"), "{err}");
                    }
                }
                Kind::Choice { meanings, .. } => {
                    for n in 0..meanings.len() {
                        p.apply_arg(&format!("{s}={n}")).unwrap();
                        assert_eq!(p.get(s).value, Value::Number(n as u8));
                    }
                    let err = p.apply_arg(&format!("{s}={}", meanings.len())).unwrap_err();
                    assert!(err.to_string().contains(s.name()), "{err}");
                }
                Kind::Text => {
                    p.apply_arg(&format!("{s}=Call the help desk = 555")).unwrap();
                    assert_eq!(p.unblock_prompt(), "Call the help desk = 555");
                }
            }
        }
    }

    #[test]
    fn choices_map_to_meanings() {
        let mut p = Policy::new();
        for (n, action) in [
            (0, RemoveAction::None),
            (1, RemoveAction::Lock),
            (2, RemoveAction::Logoff),
            (3, RemoveAction::Disconnect),
        ] {
            p.apply_arg(&format!("ScRemoveOption={n}")).unwrap();
            assert_eq!(p.remove_action(), action);
        }
        assert_eq!(Setting::ScRemoveOption.meaning(&Value::Number(1)), Some("lock"));
        for (n, cleanup) in
            [(0, RootCleanup::Never), (1, RootCleanup::AtSignOut), (2, RootCleanup::OnRemoval)]
        {
            p.apply_arg(&format!("RootCertificateCleanupOption={n}")).unwrap();
            assert_eq!(p.root_cleanup(), cleanup);
        }
        assert!(p.apply_arg("RootCertificateCleanupOption=3").is_err());
        assert!(p.apply_arg("ScRemoveOption=4").is_err());
    }

    #[test]
    fn names_are_case_insensitive_and_unknown_names_are_named() {
        let mut p = Policy::new();
        p.apply_arg("enumerateecccerts=1").unwrap();
        assert!(p.flag(Setting::EnumerateECCCerts));
        let err = p.apply_arg("EnumerateEccCertificates=1").unwrap_err();
        assert!(
            matches!(&err, CertError::UnknownSetting { name, .. } if name == "EnumerateEccCertificates")
        );
        assert!(err.to_string().contains("EnumerateEccCertificates"));
        assert!(matches!(p.apply_arg("ReverseSubject"), Err(CertError::SettingSyntax { .. })));
    }

    #[test]
    fn toml_file_then_command_line() {
        let path = Path::new("/etc/scard/policy.toml");
        let mut p = Policy::new();
        p.apply_toml(
            "AllowSignatureOnlyKeys = 1\nScRemoveOption = \"2\"\nIntegratedUnblockPromptString = \"Call 555\"\nrootcertificatecleanupoption = 0\n",
            path,
        )
        .unwrap();
        assert!(p.flag(Setting::AllowSignatureOnlyKeys));
        assert_eq!(p.get(Setting::AllowSignatureOnlyKeys).source, Source::File(path.into()));
        assert_eq!(p.remove_action(), RemoveAction::Logoff);
        assert_eq!(p.root_cleanup(), RootCleanup::Never);
        assert_eq!(p.unblock_prompt(), "Call 555");
        assert_eq!(p.get(Setting::EnumerateECCCerts).source, Source::Default);
        p.apply_arg("AllowSignatureOnlyKeys=0").unwrap();
        assert!(!p.flag(Setting::AllowSignatureOnlyKeys));
        assert_eq!(p.get(Setting::AllowSignatureOnlyKeys).source, Source::CommandLine);
    }

    #[test]
    fn toml_errors_name_the_setting_and_the_file() {
        let path = Path::new("/home/u/.config/scard/policy.toml");
        for (text, needle) in [
            ("Colour = 1\n", "Colour"),
            ("EnumerateECCCerts = 2\n", "EnumerateECCCerts"),
            ("EnumerateECCCerts = -1\n", "EnumerateECCCerts"),
            ("EnumerateECCCerts = true\n", "EnumerateECCCerts"),
            ("EnumerateECCCerts = 1.0\n", "EnumerateECCCerts"),
            ("ScRemoveOption = \"lock\"\n", "ScRemoveOption"),
            ("IntegratedUnblockPromptString = 3\n", "IntegratedUnblockPromptString"),
            ("[ScRemoveOption]\nx = 1\n", "ScRemoveOption"),
            ("EnumerateECCCerts = \n", "policy.toml"),
        ] {
            let err = Policy::new().apply_toml(text, path).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(needle), "{text:?}: {msg}");
            assert!(msg.contains("policy.toml"), "{text:?}: {msg}");
        }
    }
}
