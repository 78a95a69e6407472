//! Card models: TOML files in `card-profiles/<family>/cards/` (built in) and in
//! `$XDG_CONFIG_HOME/scard/cards/` (the user's), naming a family, the ATRs a card answers with
//! (with masks), a display name and the card's quirks. A file that does not load gives an
//! error naming file, line and field; the other files still load.

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use scard_iso7816::CardLimits;

use crate::error::{CardError, Result};
use crate::types::KeyAlgorithm;

/// An ATR pattern: the card matches when `atr & mask == value & mask` and lengths agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtrPattern {
    /// The ATR bytes.
    pub value: Vec<u8>,
    /// The mask (same length; all FF when the file gives none).
    pub mask: Vec<u8>,
}

impl AtrPattern {
    /// Whether `atr` matches.
    pub fn matches(&self, atr: &[u8]) -> bool {
        atr.len() == self.value.len()
            && atr.iter().zip(&self.value).zip(&self.mask).all(|((a, v), m)| a & m == v & m)
    }
    /// Number of bits the pattern fixes (more is more specific).
    pub fn specificity(&self) -> u32 {
        self.mask.iter().map(|m| m.count_ones()).sum()
    }
}

/// PIN rules of one PIN role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinRules {
    /// Shortest value in bytes.
    pub min_len: usize,
    /// Longest value in bytes.
    pub max_len: usize,
    /// Pad the value to `max_len` with this byte (PIV pads with FF: SP 800-73-4 Pt 2 §3.2.1).
    pub pad: Option<u8>,
}

impl PinRules {
    /// Checks a value's length before it is sent (a card may count a try for a value of the
    /// wrong length).
    pub fn check(&self, len: usize) -> std::result::Result<(), String> {
        if len < self.min_len || len > self.max_len {
            Err(format!("{len} characters; this card takes {} to {}", self.min_len, self.max_len))
        } else {
            Ok(())
        }
    }
}

/// A card model, loaded from a TOML file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardModel {
    /// Display name.
    pub name: String,
    /// Family: `piv`, `openpgp`, `gids` or a vendor family.
    pub family: String,
    /// The family's fallback model, used when a card is identified by probing.
    pub generic: bool,
    /// Where the model came from (`builtin:piv/generic.toml` or a path).
    pub source: String,
    /// ATR patterns.
    pub atrs: Vec<AtrPattern>,
    /// APDU limits (Nc, Ne, extended length, chaining).
    pub limits: CardLimits,
    /// User PIN rules.
    pub user_pin: PinRules,
    /// Admin PIN (or PUK) rules, when the admin is a PIN.
    pub admin_pin: PinRules,
    /// Key references that are containers, in container-index order (empty: the family's
    /// default list).
    pub containers: Vec<u8>,
    /// Algorithms the card takes (empty: the family's default list).
    pub algorithms: Vec<KeyAlgorithm>,
    /// On-card key generation.
    pub key_generation: bool,
    /// Read-only card.
    pub read_only: bool,
    /// kxc/ksc certificate compression.
    pub certificate_compression: bool,
    /// Named quirks the family's code knows (e.g. `verify-6300-without-count`).
    pub quirks: Vec<String>,
}

impl CardModel {
    /// Whether the model lists `quirk`.
    pub fn has_quirk(&self, quirk: &str) -> bool {
        self.quirks.iter().any(|q| q == quirk)
    }
    /// Whether an ATR matches one of the model's patterns, with the most specific match.
    pub fn match_atr(&self, atr: &[u8]) -> Option<u32> {
        self.atrs.iter().filter(|p| p.matches(atr)).map(AtrPattern::specificity).max()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    name: Spanned<String>,
    family: Spanned<String>,
    #[serde(default)]
    generic: bool,
    #[serde(default)]
    atr: Vec<AtrFile>,
    #[serde(default)]
    limits: LimitsFile,
    #[serde(default)]
    user_pin: Option<PinFile>,
    #[serde(default)]
    admin_pin: Option<PinFile>,
    #[serde(default)]
    keys: KeysFile,
    #[serde(default)]
    quirks: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AtrFile {
    value: Spanned<String>,
    mask: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    max_command_data: Option<Spanned<usize>>,
    max_response_data: Option<Spanned<u32>>,
    extended_length: Option<bool>,
    command_chaining: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinFile {
    min_length: Spanned<usize>,
    max_length: Spanned<usize>,
    pad: Option<Spanned<u8>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    containers: Vec<Spanned<String>>,
    #[serde(default)]
    algorithms: Vec<Spanned<String>>,
    key_generation: Option<bool>,
    read_only: Option<bool>,
    certificate_compression: Option<bool>,
}

/// The line (1-based) of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(1, |t| t.bytes().filter(|&b| b == b'\n').count() + 1)
}

impl CardModel {
    /// Parses a model file. `source` names it in errors.
    pub fn from_toml(source: &str, text: &str) -> Result<Self> {
        let at = |span: std::ops::Range<usize>, field: &str, reason: String| CardError::Model {
            file: source.to_owned(),
            line: line_of(text, span.start),
            field: field.to_owned(),
            reason,
        };
        let file: ModelFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| line_of(text, s.start));
            let message = e.message().to_owned();
            // serde names the field in its message ("unknown field `x`", "missing field `y`").
            let field =
                message.split('`').nth(1).map_or_else(|| "(file)".to_owned(), str::to_owned);
            CardError::Model { file: source.to_owned(), line, field, reason: message }
        })?;

        let family = file.family.get_ref().trim().to_ascii_lowercase();
        if family.is_empty() || !family.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(at(
                file.family.span(),
                "family",
                "a family is a short lower-case name like \"piv\"".into(),
            ));
        }
        if file.name.get_ref().trim().is_empty() {
            return Err(at(file.name.span(), "name", "empty".into()));
        }

        let mut atrs = Vec::new();
        for (i, a) in file.atr.iter().enumerate() {
            let field = format!("atr[{i}].value");
            let value = scard_iso7816::hex::decode_lenient(a.value.get_ref())
                .map_err(|e| at(a.value.span(), &field, format!("not hex: {e}")))?;
            if value.len() < 2 || value.len() > 33 {
                return Err(at(
                    a.value.span(),
                    &field,
                    format!("{} bytes; an ATR has 2 to 33", value.len()),
                ));
            }
            let mask = match &a.mask {
                Some(m) => {
                    let mask = scard_iso7816::hex::decode_lenient(m.get_ref()).map_err(|e| {
                        at(m.span(), &format!("atr[{i}].mask"), format!("not hex: {e}"))
                    })?;
                    if mask.len() != value.len() {
                        return Err(at(
                            m.span(),
                            &format!("atr[{i}].mask"),
                            format!("{} bytes, the ATR has {}", mask.len(), value.len()),
                        ));
                    }
                    mask
                }
                None => vec![0xFF; value.len()],
            };
            atrs.push(AtrPattern { value, mask });
        }
        if atrs.is_empty() && !file.generic {
            return Err(at(
                0..0,
                "atr",
                "a model needs at least one [[atr]] unless generic = true".into(),
            ));
        }

        let mut limits = CardLimits::default();
        if let Some(ext) = file.limits.extended_length {
            limits.extended_length = ext;
        }
        if let Some(c) = file.limits.command_chaining {
            limits.command_chaining = c;
        }
        let max_nc = if limits.extended_length { 65535 } else { 255 };
        let max_ne = if limits.extended_length { 65536 } else { 256 };
        limits.max_command_data = max_nc;
        limits.max_response_data = max_ne;
        if let Some(n) = &file.limits.max_command_data {
            if *n.get_ref() == 0 || *n.get_ref() > max_nc {
                return Err(at(
                    n.span(),
                    "limits.max_command_data",
                    format!("{} (1..={max_nc})", n.get_ref()),
                ));
            }
            limits.max_command_data = *n.get_ref();
        }
        if let Some(n) = &file.limits.max_response_data {
            if *n.get_ref() == 0 || *n.get_ref() > max_ne {
                return Err(at(
                    n.span(),
                    "limits.max_response_data",
                    format!("{} (1..={max_ne})", n.get_ref()),
                ));
            }
            limits.max_response_data = *n.get_ref();
        }

        let pin_rules = |p: &Option<PinFile>, field: &str, default: PinRules| -> Result<PinRules> {
            let Some(p) = p else { return Ok(default) };
            let (min, max) = (*p.min_length.get_ref(), *p.max_length.get_ref());
            if min == 0 || min > max || max > 127 {
                return Err(at(
                    p.min_length.span(),
                    &format!("{field}.min_length"),
                    format!("{min}..{max} is not a valid length range (1 <= min <= max <= 127)"),
                ));
            }
            Ok(PinRules { min_len: min, max_len: max, pad: p.pad.as_ref().map(|b| *b.get_ref()) })
        };
        let user_pin = pin_rules(
            &file.user_pin,
            "user_pin",
            PinRules { min_len: 4, max_len: 127, pad: None },
        )?;
        let admin_pin = pin_rules(
            &file.admin_pin,
            "admin_pin",
            PinRules { min_len: 4, max_len: 127, pad: None },
        )?;

        let mut containers = Vec::new();
        for (i, c) in file.keys.containers.iter().enumerate() {
            let r = scard_iso7816::hex::decode_lenient(c.get_ref()).ok().filter(|b| b.len() == 1);
            match r.as_deref() {
                Some([b]) => containers.push(*b),
                _ => {
                    return Err(at(
                        c.span(),
                        &format!("keys.containers[{i}]"),
                        format!("{:?} is not a one-byte hex key reference", c.get_ref()),
                    ));
                }
            }
        }
        let mut algorithms = Vec::new();
        for (i, a) in file.keys.algorithms.iter().enumerate() {
            let alg = KeyAlgorithm::parse(a.get_ref())
                .map_err(|e| at(a.span(), &format!("keys.algorithms[{i}]"), e.to_string()))?;
            algorithms.push(alg);
        }
        let quirks = file.quirks.iter().map(|q| q.get_ref().clone()).collect();

        Ok(CardModel {
            name: file.name.get_ref().trim().to_owned(),
            family,
            generic: file.generic,
            source: source.to_owned(),
            atrs,
            limits,
            user_pin,
            admin_pin,
            containers,
            algorithms,
            key_generation: file.keys.key_generation.unwrap_or(true),
            read_only: file.keys.read_only.unwrap_or(false),
            certificate_compression: file.keys.certificate_compression.unwrap_or(false),
            quirks,
        })
    }
}

/// Loaded card models plus the errors of files that did not load.
#[derive(Debug, Default)]
pub struct ModelSet {
    models: Vec<CardModel>,
    errors: Vec<CardError>,
    /// Files parsed when first needed ([`ModelSet::add_toml_deferred`]).
    deferred: Vec<Deferred>,
}

/// A model file parsed when first needed: a process that identifies one card parses only the
/// file of the model it picks (parsing every built-in file cost more host instructions than
/// the rest of a PKCS#11 module's start). Which file that is comes from a quick look at the
/// text (its [`Hint`]); the parsed model is what counts.
#[derive(Debug)]
struct Deferred {
    /// The family that registered the file, and its file name (`source` names the file).
    family: &'static str,
    file: &'static str,
    text: &'static str,
    /// What a quick look at the text says (`None`: it could not tell; the file is then parsed
    /// whenever models are compared).
    hint: Option<Hint>,
    parsed: std::sync::OnceLock<Result<CardModel>>,
}

/// The family, generic flag and ATR patterns of a model file, from its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hint {
    family: &'static str,
    generic: bool,
    atrs: Vec<AtrPattern>,
}

impl Deferred {
    fn get(&self) -> &Result<CardModel> {
        self.parsed.get_or_init(|| CardModel::from_toml(&self.source(), self.text))
    }

    /// `builtin:<family>/cards/<file>` (made when asked: at parse time, in reports).
    fn source(&self) -> String {
        format!("builtin:{}/cards/{}", self.family, self.file)
    }

    fn model(&self) -> Option<&CardModel> {
        self.get().as_ref().ok()
    }

    /// The family and how specifically the file matches `atr`: from the hint, else from the
    /// parsed file.
    fn matching(&self, atr: &[u8]) -> Option<(&str, u32)> {
        match &self.hint {
            Some(h) => {
                let score = h.atrs.iter().filter(|p| p.matches(atr)).map(AtrPattern::specificity);
                Some((h.family, score.max()?))
            }
            None => self.model().and_then(|m| Some((m.family.as_str(), m.match_atr(atr)?))),
        }
    }
}

/// A quick look at a model file's lines: `family = "..."` and `generic = true|false` at the
/// top, and the `value` / `mask` of each `[[atr]]` table. `None` when a line that may matter
/// has another form (the file is then parsed to know). The look ends at the first other table
/// (`[limits]`, ...): a built-in file has its `[[atr]]` tables first, which
/// `ModelSet::hint_mismatches` (a test) holds it to.
fn hint_of(text: &'static str) -> Option<Hint> {
    fn string<'a>(line: &'a str, key: &str) -> Option<Option<&'a str>> {
        let Some(rest) = line.strip_prefix(key) else { return Some(None) };
        let rest = rest.trim_start();
        let Some(rest) = rest.strip_prefix('=') else {
            // Another key that starts alike (`values`), or a form the look does not know.
            return if rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                Some(None)
            } else {
                None
            };
        };
        let value = rest.trim().strip_prefix('"')?.strip_suffix('"')?;
        Some(Some(value))
    }
    let mut family = None;
    let mut generic = false;
    let mut atrs: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    let mut in_atr = false;
    let mut at_top = true;
    let mut rest = text;
    while !rest.is_empty() {
        // The next line (a byte loop: cheaper than `split` on lines this short).
        let end = rest.bytes().position(|b| b == b'\n').unwrap_or(rest.len());
        let (line, tail) = rest.split_at_checked(end)?;
        rest = tail.get(1..).unwrap_or("");
        // Only lines starting with [, f(amily), g(eneric), v(alue), m(ask) or a(tr) matter:
        // the others (comments, quirks) are passed over by their first byte.
        let line = line.trim_ascii();
        if !matches!(line.as_bytes().first(), Some(b'[' | b'f' | b'g' | b'v' | b'm' | b'a')) {
            if in_atr && !line.is_empty() && !line.starts_with('#') {
                return None;
            }
            continue;
        }
        if line.starts_with('[') && !line.starts_with("[ ") {
            at_top = false;
            in_atr = line == "[[atr]]";
            if in_atr {
                atrs.push((Vec::new(), None));
            } else if line.contains("atr") {
                return None;
            } else {
                break;
            }
            continue;
        }
        if in_atr {
            if let Some(v) = string(line, "value")? {
                atrs.last_mut()?.0 = scard_iso7816::hex::decode_lenient(v).ok()?;
            } else if let Some(m) = string(line, "mask")? {
                atrs.last_mut()?.1 = Some(scard_iso7816::hex::decode_lenient(m).ok()?);
            } else {
                return None;
            }
        } else if at_top {
            if let Some(f) = string(line, "family")? {
                family = Some(f);
            } else if let Some(rest) = line.strip_prefix("generic") {
                generic = match rest.trim_start().strip_prefix('=')?.trim() {
                    "true" => true,
                    "false" => false,
                    _ => return None,
                };
            } else if line.starts_with("atr") {
                return None;
            }
        }
    }
    let atrs = atrs
        .into_iter()
        .map(|(value, mask)| {
            let mask = mask.unwrap_or_else(|| vec![0xFF; value.len()]);
            (!value.is_empty() && mask.len() == value.len()).then_some(AtrPattern { value, mask })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Hint { family: family?, generic, atrs })
}

/// A model that matches an ATR, parsed when asked for.
#[derive(Debug, Clone, Copy)]
pub struct AtrMatch<'a> {
    /// Its family.
    pub family: &'a str,
    /// How many bits of the ATR its pattern fixes.
    pub score: u32,
    model: Which<'a>,
}

#[derive(Debug, Clone, Copy)]
enum Which<'a> {
    Loaded(&'a CardModel),
    Deferred(&'a Deferred),
}

impl<'a> AtrMatch<'a> {
    /// The model (parsing its file when deferred; `None` when the file does not load).
    pub fn model(&self) -> Option<&'a CardModel> {
        match self.model {
            Which::Loaded(m) => Some(m),
            Which::Deferred(d) => d.model(),
        }
    }
}

impl ModelSet {
    /// Adds a built-in model file of `family`, parsed only when first needed (the tests load
    /// every one; their errors show in [`ModelSet::errors`], which parses every file). It is
    /// named `builtin:<family>/cards/<file>` in errors and in [`CardModel::source`].
    pub fn add_builtin(&mut self, family: &'static str, file: &'static str, text: &'static str) {
        self.deferred.push(Deferred {
            family,
            file,
            text,
            hint: hint_of(text),
            parsed: std::sync::OnceLock::new(),
        });
    }

    /// Adds one model file; on error the error is kept and the other models are untouched.
    pub fn add_toml(&mut self, source: &str, text: &str) {
        match CardModel::from_toml(source, text) {
            Ok(model) => self.models.push(model),
            Err(err) => self.errors.push(err),
        }
    }

    /// Loads every `*.toml` of a directory (a missing directory is not an error). User models
    /// come first when matching, so a user file overrides a built-in one.
    pub fn add_dir(&mut self, dir: &Path) {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(source) => {
                self.errors.push(CardError::Io { path: dir.display().to_string(), source });
                return;
            }
        };
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        for path in paths {
            let source = path.display().to_string();
            match std::fs::read_to_string(&path) {
                Ok(text) => self.add_toml(&source, &text),
                Err(source_err) => {
                    self.errors.push(CardError::Io { path: source, source: source_err })
                }
            }
        }
    }

    /// The models, in load order (every deferred file is parsed).
    pub fn models(&self) -> impl Iterator<Item = &CardModel> {
        self.models.iter().chain(self.deferred.iter().filter_map(|d| d.get().as_ref().ok()))
    }

    /// Files that did not load (every deferred file is parsed).
    pub fn errors(&self) -> impl Iterator<Item = &CardError> {
        self.errors.iter().chain(self.deferred.iter().filter_map(|d| d.get().as_ref().err()))
    }

    /// The models matching `atr`, in load order, deferred files unparsed where their hint
    /// tells.
    pub fn matches(&self, atr: &[u8]) -> Vec<AtrMatch<'_>> {
        let loaded = self.models.iter().filter_map(|m| {
            let score = m.match_atr(atr)?;
            Some(AtrMatch { family: m.family.as_str(), score, model: Which::Loaded(m) })
        });
        let deferred = self.deferred.iter().filter_map(|d| {
            let (family, score) = d.matching(atr)?;
            Some(AtrMatch { family, score, model: Which::Deferred(d) })
        });
        loaded.chain(deferred).collect()
    }

    /// The model whose ATR pattern matches most specifically; on a tie the one loaded first.
    pub fn by_atr(&self, atr: &[u8]) -> Option<&CardModel> {
        let mut best: Option<AtrMatch<'_>> = None;
        for m in self.matches(atr) {
            if best.is_none_or(|b| m.score > b.score) {
                best = Some(m);
            }
        }
        best?.model()
    }

    /// The generic model of a family.
    pub fn generic(&self, family: &str) -> Option<&CardModel> {
        let loaded = self.models.iter().find(|m| m.family == family && m.generic);
        loaded.or_else(|| {
            self.deferred
                .iter()
                .filter(|d| d.hint.as_ref().is_none_or(|h| h.family == family && h.generic))
                .filter_map(Deferred::model)
                .find(|m| m.family == family && m.generic)
        })
    }

    /// The deferred files whose quick look disagrees with their parsed model (a test's
    /// business: a file the look cannot read at all is parsed whenever compared, which is
    /// slow, not wrong).
    pub fn hint_mismatches(&self) -> Vec<String> {
        self.deferred
            .iter()
            .filter_map(|d| {
                let model = d.model()?;
                let parsed = (model.family.as_str(), model.generic, &model.atrs);
                match &d.hint {
                    Some(h) if (h.family, h.generic, &h.atrs) == parsed => None,
                    Some(h) => Some(format!(
                        "{}: the quick look says {h:?}, the file {parsed:?}",
                        d.source()
                    )),
                    None => Some(format!("{}: the quick look cannot read it", d.source())),
                }
            })
            .collect()
    }
}

/// The user's card-model directory: `$XDG_CONFIG_HOME/scard/cards/` (or
/// `~/.config/scard/cards/`).
pub fn user_model_dir() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".config"))
        })?;
    Some(base.join("scard").join("cards"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "Test card"
family = "piv"

[[atr]]
value = "3B 88 80 01 00 00 00 00 00 00 00 00 09"
mask  = "FF FF FF FF 00 00 00 00 00 00 00 00 00"

[limits]
extended_length = true
max_response_data = 4096

[user_pin]
min_length = 6
max_length = 8
pad = 0xFF

[keys]
containers = ["9A", "9C"]
algorithms = ["rsa2048", "p256"]
"#;

    /// The quick look of a deferred file: ATR patterns, family and generic flag as parsed; a
    /// `[[atr]]` after another table is not seen by it, which `hint_mismatches` reports (the
    /// built-in files are held to it by a test of scard-ksp).
    #[test]
    fn the_quick_look_reads_the_atr_tables_before_the_other_tables() {
        let mut set = ModelSet::default();
        set.add_builtin("piv", "good.toml", GOOD);
        assert!(set.hint_mismatches().is_empty(), "{:?}", set.hint_mismatches());
        let hint = hint_of(GOOD).unwrap();
        assert_eq!((hint.family, hint.generic, hint.atrs.len()), ("piv", false, 1));
        const LATE: &str = "name = \"Late\"\nfamily = \"piv\"\n[limits]\nextended_length = true\n\
                            [[atr]]\nvalue = \"3B 88 80 01\"\n";
        let mut set = ModelSet::default();
        set.add_builtin("piv", "late.toml", LATE);
        let mismatches = set.hint_mismatches();
        assert_eq!(mismatches.len(), 1, "{mismatches:?}");
        assert!(
            mismatches[0].starts_with("builtin:piv/cards/late.toml: the quick look says"),
            "{mismatches:?}"
        );
    }

    #[test]
    fn loads_a_model() {
        let m = CardModel::from_toml("t.toml", GOOD).unwrap();
        assert_eq!(m.family, "piv");
        assert_eq!(m.containers, vec![0x9A, 0x9C]);
        assert_eq!(m.user_pin.pad, Some(0xFF));
        assert!(m.limits.extended_length);
        assert_eq!(m.limits.max_response_data, 4096);
        assert_eq!(m.limits.max_command_data, 65535);
        let atr = [0x3B, 0x88, 0x80, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0x77];
        assert_eq!(m.match_atr(&atr), Some(32));
        assert_eq!(m.match_atr(&atr[..12]), None);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let bad = GOOD.replace("\"p256\"", "\"p257\"");
        let err = CardModel::from_toml("cards/x.toml", &bad).unwrap_err().to_string();
        assert!(err.starts_with("cards/x.toml:20: keys.algorithms[1]:"), "{err}");

        let typo = GOOD.replace("max_length = 8", "max_lenght = 8");
        let err = CardModel::from_toml("y.toml", &typo).unwrap_err().to_string();
        assert!(err.starts_with("y.toml:15: max_lenght:"), "{err}");

        let mask = GOOD.replace("mask  = \"FF FF FF FF 00", "mask  = \"FF FF FF 00");
        let err = CardModel::from_toml("z.toml", &mask).unwrap_err().to_string();
        assert!(err.starts_with("z.toml:7: atr[0].mask:"), "{err}");
    }

    #[test]
    fn a_bad_file_does_not_stop_the_others() {
        let mut set = ModelSet::default();
        set.add_toml("a.toml", "name = \"x\"\nfamily = \n");
        set.add_toml("b.toml", GOOD);
        assert_eq!(set.models().count(), 1);
        assert_eq!(set.errors().count(), 1);
        assert!(set.errors().next().unwrap().to_string().starts_with("a.toml:2:"));
    }

    #[test]
    fn most_specific_atr_wins() {
        let mut set = ModelSet::default();
        set.add_toml("loose.toml", GOOD);
        set.add_toml(
            "exact.toml",
            &GOOD
                .replace("Test card", "Exact")
                .replace("mask  = \"FF FF FF FF 00 00 00 00 00 00 00 00 00\"", ""),
        );
        let atr = [0x3B, 0x88, 0x80, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0x09];
        assert_eq!(set.by_atr(&atr).unwrap().name, "Exact");
        let other = [0x3B, 0x88, 0x80, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0x08];
        assert_eq!(set.by_atr(&other).unwrap().name, "Test card");
    }
}
