//! Where PINs come from: the [`PinSource`] trait and its implementations that need no
//! terminal code: a closure ([`CallbackPinSource`]), environment variables
//! ([`EnvPinSource`]), lines of a reader such as standard input when it is not a terminal
//! ([`LinePinSource`]), and none at all ([`NoPinSource`]). The pinentry program is in
//! [`crate::pinentry`].
//!
//! Values are [`Pin`]s: zeroized on drop, never printed. A source answers `Ok(None)` when the
//! user cancelled; the provider then fails with [`KspError::Cancelled`] and asks nothing else.

use std::io::{BufRead, IsTerminal};

use scard_minidriver::{Pin, PinId, PinType};
use zeroize::Zeroizing;

use crate::error::{KspError, Result};

/// Which value of a PIN is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PinPrompt {
    /// The PIN's current value (to verify it, or the old value of a change).
    Current,
    /// A new value (change, unblock).
    New,
    /// The code that unblocks another PIN (PUK, resetting code, admin PIN or key).
    Unblock,
}

/// The operation a PIN is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// An explicit login ([`crate::Provider::login`]).
    Login,
    /// A signature.
    Sign,
    /// A decryption.
    Decrypt,
    /// A key agreement (ECDH).
    Agree,
    /// Key generation.
    GenerateKey,
    /// Writing a certificate.
    ImportCertificate,
    /// Deleting a key.
    DeleteKey,
    /// Changing a PIN.
    ChangePin,
    /// Unblocking a PIN.
    UnblockPin,
}

impl Operation {
    /// A short verb for prompts and logs.
    pub fn verb(self) -> &'static str {
        match self {
            Operation::Login => "log in",
            Operation::Sign => "sign",
            Operation::Decrypt => "decrypt",
            Operation::Agree => "agree on a key",
            Operation::GenerateKey => "generate a key",
            Operation::ImportCertificate => "write a certificate",
            Operation::DeleteKey => "delete a key",
            Operation::ChangePin => "change a PIN",
            Operation::UnblockPin => "unblock a PIN",
        }
    }
}

/// What a [`PinSource`] is asked for: enough to word a prompt (card, reader, PIN name, tries
/// left) and to pick a value (PIN id, type, purpose of the value). Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PinRequest {
    /// The reader of the card.
    pub reader: String,
    /// The card's label (model and serial), empty when unknown.
    pub card_label: String,
    /// The PIN.
    pub pin: PinId,
    /// The card's name for the PIN ("PIV Card Application PIN", "PW3 (admin PIN)").
    pub pin_name: String,
    /// How the value is presented. For [`PinType::ChallengeResponse`] (the PIV management
    /// key, the GIDS admin key) the answer is the key **in hex** (what a person types; spaces
    /// and colons allowed); for the others, the PIN's characters.
    pub pin_type: PinType,
    /// Which value is asked for.
    pub prompt: PinPrompt,
    /// What it is for.
    pub operation: Operation,
    /// The key the operation uses (its `\\.\<reader>\<container>` name), if any.
    pub key: Option<String>,
    /// Tries left, when the card tells without spending one.
    pub tries_left: Option<u8>,
    /// Shortest accepted value in bytes (the card's rule; checked again before sending).
    pub min_len: usize,
    /// Longest accepted value in bytes.
    pub max_len: usize,
}

impl PinRequest {
    /// A request for the current value of `pin` of the card in `reader`, with nothing else
    /// known (used by tests and by sources that wrap others).
    pub fn new(reader: impl Into<String>, pin: PinId) -> Self {
        Self {
            reader: reader.into(),
            card_label: String::new(),
            pin,
            pin_name: pin.to_string(),
            pin_type: PinType::AlphaNumeric,
            prompt: PinPrompt::Current,
            operation: Operation::Login,
            key: None,
            tries_left: None,
            min_len: 0,
            max_len: 255,
        }
    }

    /// Sets what the value is for (builder style).
    pub fn for_operation(mut self, operation: Operation, prompt: PinPrompt) -> Self {
        self.operation = operation;
        self.prompt = prompt;
        self
    }

    /// Sets the PIN's type (builder style).
    pub fn with_type(mut self, pin_type: PinType) -> Self {
        self.pin_type = pin_type;
        self
    }

    /// One sentence for a prompt: what, for which card, why, and the tries left.
    pub fn description(&self) -> String {
        let what = match self.prompt {
            PinPrompt::Current => format!("the {}", self.pin_name),
            PinPrompt::New => format!("a new {}", self.pin_name),
            PinPrompt::Unblock => format!("the code that unblocks {}", self.pin_name),
        };
        let card = if self.card_label.is_empty() {
            format!("the card in {}", self.reader)
        } else {
            format!("{} in {}", self.card_label, self.reader)
        };
        let mut text = format!("Enter {what} of {card} to {}", self.operation.verb());
        if let Some(key) = &self.key {
            text.push_str(&format!(" with key {key}"));
        }
        text.push('.');
        if self.pin_type == PinType::ChallengeResponse {
            text.push_str(" The value is a key in hex.");
        }
        match self.tries_left {
            Some(1) => text.push_str(" 1 try left."),
            Some(n) => text.push_str(&format!(" {n} tries left.")),
            None => {}
        }
        text
    }

    /// The short label in front of the entry field ("PIN:", "New PIN:", "Admin key (hex):").
    pub fn prompt_label(&self) -> &'static str {
        match (self.prompt, self.pin_type) {
            (PinPrompt::New, _) => "New PIN:",
            (PinPrompt::Unblock, PinType::ChallengeResponse) => "Admin key (hex):",
            (PinPrompt::Unblock, _) => "Unblock code:",
            (PinPrompt::Current, PinType::ChallengeResponse) => "Admin key (hex):",
            (PinPrompt::Current, _) if self.pin == PinId::ADMIN => "Admin PIN:",
            (PinPrompt::Current, _) => "PIN:",
        }
    }
}

/// Where PINs come from. `Ok(None)`: the user cancelled. A source never logs or prints the
/// values it gives.
pub trait PinSource: Send {
    /// One value for `request`.
    fn get(&mut self, request: &PinRequest) -> Result<Option<Pin>>;
}

impl std::fmt::Debug for dyn PinSource + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinSource")
    }
}

/// A closure as a PIN source.
pub struct CallbackPinSource<F>(F);

impl<F> std::fmt::Debug for CallbackPinSource<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackPinSource")
    }
}

impl<F> CallbackPinSource<F>
where
    F: FnMut(&PinRequest) -> Result<Option<Pin>> + Send,
{
    /// Wraps `f`.
    pub fn new(f: F) -> Self {
        Self(f)
    }
}

impl<F> PinSource for CallbackPinSource<F>
where
    F: FnMut(&PinRequest) -> Result<Option<Pin>> + Send,
{
    fn get(&mut self, request: &PinRequest) -> Result<Option<Pin>> {
        (self.0)(request)
    }
}

/// A closure as a boxed PIN source: `pin_callback(|req| Ok(Some(Pin::new("123456"))))`.
pub fn pin_callback<F>(f: F) -> Box<dyn PinSource>
where
    F: FnMut(&PinRequest) -> Result<Option<Pin>> + Send + 'static,
{
    Box::new(CallbackPinSource::new(f))
}

/// PINs from environment variables, one variable per (PIN id, value asked for). A variable
/// that is not set (or empty) is an error naming the variable, never a silent empty PIN.
#[derive(Debug, Clone, Default)]
pub struct EnvPinSource {
    vars: Vec<(PinId, PinPrompt, String)>,
}

impl EnvPinSource {
    /// The user PIN (PIN 1, current value) from `var`.
    pub fn new(var: impl Into<String>) -> Self {
        Self::default().with(PinId::USER, var)
    }

    /// Also the current value of `pin` from `var` (e.g. the admin credential: for a
    /// challenge-response admin the variable holds the key in hex).
    pub fn with(self, pin: PinId, var: impl Into<String>) -> Self {
        self.with_prompt(pin, PinPrompt::Current, var)
    }

    /// Also the value `prompt` of `pin` from `var` (new PINs, unblock codes).
    pub fn with_prompt(mut self, pin: PinId, prompt: PinPrompt, var: impl Into<String>) -> Self {
        self.vars.retain(|(p, w, _)| (*p, *w) != (pin, prompt));
        self.vars.push((pin, prompt, var.into()));
        self
    }
}

impl PinSource for EnvPinSource {
    fn get(&mut self, request: &PinRequest) -> Result<Option<Pin>> {
        let fail = |reason: String| KspError::PinSource { source_name: "environment", reason };
        let Some((_, _, var)) =
            self.vars.iter().find(|(p, w, _)| *p == request.pin && *w == request.prompt)
        else {
            return Err(fail(format!(
                "no environment variable configured for {} ({:?} value)",
                request.pin, request.prompt
            )));
        };
        match std::env::var(var) {
            Ok(value) => {
                let value = Zeroizing::new(value);
                if value.is_empty() {
                    return Err(fail(format!("{var} is empty")));
                }
                Ok(Some(Pin::new(value.as_bytes())))
            }
            Err(std::env::VarError::NotPresent) => Err(fail(format!("{var} is not set"))),
            Err(std::env::VarError::NotUnicode(_)) => Err(fail(format!("{var} is not UTF-8"))),
        }
    }
}

/// One PIN per line from a reader: standard input when it is not a terminal
/// ([`LinePinSource::stdin`]), or any [`BufRead`] (tests). Lines are taken in the order PINs
/// are asked for; the end of input is an error (never an empty PIN).
pub struct LinePinSource<R> {
    reader: R,
    name: &'static str,
}

impl<R> std::fmt::Debug for LinePinSource<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinePinSource").field("name", &self.name).finish()
    }
}

impl LinePinSource<std::io::BufReader<std::io::Stdin>> {
    /// Standard input. Refused when it is a terminal (typing a PIN there would echo it; use
    /// the pinentry source for people). The line read is zeroized; the standard library's
    /// own input buffer is not under this crate's control.
    pub fn stdin() -> Result<Self> {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            return Err(KspError::PinSource {
                source_name: "standard input",
                reason: "standard input is a terminal (PINs would echo); use pinentry".into(),
            });
        }
        Ok(Self { reader: std::io::BufReader::new(stdin), name: "standard input" })
    }
}

impl<R: BufRead + Send> LinePinSource<R> {
    /// Lines of `reader`; `name` names it in errors.
    pub fn new(reader: R, name: &'static str) -> Self {
        Self { reader, name }
    }
}

impl<R: BufRead + Send> PinSource for LinePinSource<R> {
    fn get(&mut self, _request: &PinRequest) -> Result<Option<Pin>> {
        let fail = |reason: String| KspError::PinSource { source_name: self.name, reason };
        let mut line = Zeroizing::new(String::new());
        let n = self.reader.read_line(&mut line).map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            return Err(fail("input ended before the PIN".into()));
        }
        let value = line.trim_end_matches(['\n', '\r']);
        if value.is_empty() {
            return Err(fail("empty line".into()));
        }
        Ok(Some(Pin::new(value.as_bytes())))
    }
}

/// No source: every request fails with [`KspError::PinNeeded`] (for applications that give
/// every PIN through [`crate::Provider::login`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPinSource;

impl PinSource for NoPinSource {
    fn get(&mut self, request: &PinRequest) -> Result<Option<Pin>> {
        Err(KspError::PinNeeded { reader: request.reader.clone(), pin: request.pin })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_source_takes_one_line_per_request_and_fails_at_the_end() {
        let mut src =
            LinePinSource::new(std::io::Cursor::new(b"123456\r\n87654321\n\n".to_vec()), "t");
        let req = PinRequest::new("sim:piv", PinId::USER);
        assert_eq!(src.get(&req).unwrap().unwrap().expose(), b"123456");
        assert_eq!(src.get(&req).unwrap().unwrap().expose(), b"87654321");
        assert!(matches!(src.get(&req), Err(KspError::PinSource { .. })), "empty line");
        assert!(matches!(src.get(&req), Err(KspError::PinSource { .. })), "end of input");
    }

    #[test]
    fn descriptions_name_card_pin_operation_and_tries() {
        let mut req = PinRequest::new("sim:piv", PinId::USER)
            .for_operation(Operation::Sign, PinPrompt::Current);
        req.card_label = "PIV card 1234".into();
        req.pin_name = "PIV Card Application PIN".into();
        req.tries_left = Some(2);
        req.key = Some("\\\\.\\sim:piv\\{X}".into());
        assert_eq!(
            req.description(),
            "Enter the PIV Card Application PIN of PIV card 1234 in sim:piv to sign with key \
             \\\\.\\sim:piv\\{X}. 2 tries left."
        );
        assert_eq!(req.prompt_label(), "PIN:");
        let admin = PinRequest::new("r", PinId::ADMIN).with_type(PinType::ChallengeResponse);
        assert_eq!(admin.prompt_label(), "Admin key (hex):");
        assert!(admin.description().contains("key in hex"));
    }

    #[test]
    fn no_source_says_a_pin_is_needed() {
        let req = PinRequest::new("sim:piv", PinId::ADMIN);
        assert!(matches!(
            NoPinSource.get(&req),
            Err(KspError::PinNeeded { pin: PinId::ADMIN, .. })
        ));
    }
}
