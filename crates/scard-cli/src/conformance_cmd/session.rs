//! One card under test (shared by `scard conformance` and `scard bench`): the readers, kept
//! for the whole run so that a `vpcd:` listener and an in-process `sim:` card outlive each
//! connection; the card model to use (the registry's choice, or `--profile FILE`); connections
//! whose APDUs are counted; and the credentials, each used only while the card accepts it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ValueEnum;
use scard_minidriver::{CardError, CardModel, CardModule, Pin, PinId, ProfileRegistry};
use scard_transport::counting::{Counter, Counting};
use scard_transport::{CardTransport, Registry, ShareMode};

use crate::card_cmd::{AdminCredentials, Failure, bad, input_error};
use crate::readers_cmd::{self, ReaderArgs};
use crate::secrets::Secrets;

/// The simulated cards `--sim` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SimFamily {
    /// scard-sim's PIV card (SP 800-73-4).
    Piv,
    /// scard-sim's OpenPGP card 3.4.
    Openpgp,
    /// scard-sim's GIDS 1.0 card.
    Gids,
}

impl SimFamily {
    fn name(self) -> &'static str {
        match self {
            SimFamily::Piv => "piv",
            SimFamily::Openpgp => "openpgp",
            SimFamily::Gids => "gids",
        }
    }

    /// The credentials a fresh simulated card ships with: the user PIN, and the admin
    /// credential as the card commands take it (a key in hex, or the admin PIN).
    fn defaults(self) -> (&'static str, &'static str) {
        match self {
            // PIN 123456 (PUK 12345678), management key 0102030405060708 three times.
            SimFamily::Piv => ("123456", "010203040506070801020304050607080102030405060708"),
            // PW1 123456, PW3 12345678.
            SimFamily::Openpgp => ("123456", "12345678"),
            // PIN 123456, admin key 24 zero bytes.
            SimFamily::Gids => ("123456", "000000000000000000000000000000000000000000000000"),
        }
    }
}

/// What to test: options shared by the commands that drive one card.
#[derive(Debug)]
pub(crate) struct Target<'a> {
    pub(crate) reader: &'a ReaderArgs,
    pub(crate) sim: Option<SimFamily>,
    pub(crate) profile: Option<&'a Path>,
    pub(crate) pin_env: Option<&'a str>,
    pub(crate) admin_env: Option<&'a str>,
}

/// A connection to the card, opened with its profile, with the counts of its APDUs.
pub(crate) struct Connection {
    pub(crate) card: Box<dyn CardModule>,
    pub(crate) counter: Counter,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("card", &self.card).finish()
    }
}

/// The card under test.
pub(crate) struct Session {
    /// `None` only while dropping (the readers go before the temporary directory).
    readers: Option<Registry>,
    profiles: ProfileRegistry,
    /// The reader to connect to: as given, then the name the first connection reported.
    reader: Option<String>,
    timeout: Duration,
    model: Option<CardModel>,
    /// The state file directory of a `--sim` card, removed at the end.
    temp_dir: Option<PathBuf>,
    pub(crate) credentials: Credentials,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("reader", &self.reader)
            .field("model", &self.model.as_ref().map(|m| &m.name))
            .finish()
    }
}

impl Session {
    /// Sets up the readers (a fresh simulated card with a temporary state file for `--sim`)
    /// and loads `--profile`. Nothing is connected yet.
    pub(crate) fn new(target: &Target<'_>) -> Result<Self, Failure> {
        let model = match target.profile {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| bad(format!("{}: {e}", path.display())))?;
                Some(
                    CardModel::from_toml(&path.display().to_string(), &text)
                        .map_err(|e| bad(e.to_string()))?,
                )
            }
            None => None,
        };
        let mut reader_args = target.reader.clone();
        let mut temp_dir = None;
        let mut defaults = None;
        if let Some(sim) = target.sim {
            let dir = unique_temp_dir(sim.name())?;
            reader_args.reader =
                Some(format!("sim:{}:{}", sim.name(), dir.join("card.json").display()));
            temp_dir = Some(dir);
            defaults = Some(sim.defaults());
        }
        let readers = readers_cmd::registry(&reader_args)?;
        let credentials = Credentials::new(
            target.pin_env,
            target.admin_env,
            defaults.map(|(user, admin)| (Pin::new(user.as_bytes()), Pin::new(admin.as_bytes()))),
        );
        Ok(Self {
            readers: Some(readers),
            profiles: crate::profiles::registry(),
            reader: reader_args.reader.clone(),
            timeout: Duration::from_secs(reader_args.timeout),
            model,
            temp_dir,
            credentials,
        })
    }

    /// The model given with `--profile`, if any.
    pub(crate) fn profile(&self) -> Option<&CardModel> {
        self.model.as_ref()
    }

    /// A plain connection to the card (no profile, not counted).
    pub(crate) fn raw(&mut self) -> Result<Box<dyn CardTransport>, CardError> {
        let readers = self.readers.as_mut().ok_or(CardError::InvalidInput {
            what: "reader",
            reason: "the session is closed".into(),
        })?;
        let mut transport = readers.connect(self.reader.as_deref(), ShareMode::Shared)?;
        transport.set_timeout(self.timeout);
        if self.reader.is_none() {
            // Later connections go to the same reader, not to whichever has a card then.
            self.reader = Some(transport.reader().to_owned());
        }
        Ok(transport)
    }

    /// A new connection opened with the card's profile (`--profile`'s model when given), its
    /// APDUs counted.
    pub(crate) fn connect(&mut self) -> Result<Connection, CardError> {
        let transport = self.raw()?;
        self.open(transport)
    }

    /// Opens the profile on a transport of this session.
    pub(crate) fn open(
        &mut self,
        transport: Box<dyn CardTransport>,
    ) -> Result<Connection, CardError> {
        let (transport, counter) = Counting::wrap(transport);
        let card = match &self.model {
            Some(model) => self.profiles.open_as(transport, model.clone())?,
            None => self.profiles.open(transport)?,
        };
        Ok(Connection { card, counter })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // The simulated card saves itself when its reader goes: before its directory does.
        self.readers = None;
        if let Some(dir) = self.temp_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A directory of our own under the system's temporary directory.
fn unique_temp_dir(what: &str) -> Result<PathBuf, Failure> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("scard-{what}-{}-{nanos:08x}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure(format!("{}: {e}", dir.display()), crate::EXIT_FAILURE))?;
    Ok(dir)
}

/// One credential: where it comes from and whether the card refused it.
struct Credential {
    /// What it is called in prompts and messages.
    what: &'static str,
    env: Option<String>,
    default: Option<Pin>,
    value: Option<Pin>,
    /// Why it must not be used (again): the card refused it, or it could not be read.
    unusable: Option<String>,
}

impl Credential {
    fn get(&mut self, secrets: &mut Secrets, what: &str) -> Result<Pin, String> {
        if let Some(reason) = &self.unusable {
            return Err(reason.clone());
        }
        if let Some(value) = &self.value {
            return Ok(value.clone());
        }
        let read = match (&self.env, &self.default) {
            (Some(var), _) => secrets.get(what, Some(var), false),
            (None, Some(default)) => Ok(default.clone()),
            (None, None) => secrets.get(what, None, false),
        };
        match read {
            Ok(value) => {
                self.value = Some(value.clone());
                Ok(value)
            }
            Err(reason) => {
                let reason = format!("no {}: {reason}", self.what);
                self.unusable = Some(reason.clone());
                Err(reason)
            }
        }
    }
}

/// The user PIN and the admin credential: from `--pin-env` / `--admin-env`, else the
/// defaults of a simulated card, else standard input or a prompt, each read once. A value the
/// card refused is never sent again (every try counts on a real card).
pub(crate) struct Credentials {
    secrets: Secrets,
    user: Credential,
    admin: Credential,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(REDACTED)")
    }
}

impl Credentials {
    fn new(user_env: Option<&str>, admin_env: Option<&str>, defaults: Option<(Pin, Pin)>) -> Self {
        let (user_default, admin_default) = match defaults {
            Some((user, admin)) => (Some(user), Some(admin)),
            None => (None, None),
        };
        Self {
            secrets: Secrets::new(false),
            user: Credential {
                what: "user PIN (--pin-env)",
                env: user_env.map(str::to_owned),
                default: user_default,
                value: None,
                unusable: None,
            },
            admin: Credential {
                what: "admin credential (--admin-env)",
                env: admin_env.map(str::to_owned),
                default: admin_default,
                value: None,
                unusable: None,
            },
        }
    }

    /// The user PIN, or why there is none to use.
    pub(crate) fn user(&mut self) -> Result<Pin, String> {
        self.user.get(&mut self.secrets, "PIN")
    }

    /// The admin credential (`is_key`: a key in hex), or why there is none to use.
    pub(crate) fn admin(&mut self, is_key: bool) -> Result<Pin, String> {
        let what = if is_key { "admin key (hex)" } else { "admin PIN" };
        self.admin.get(&mut self.secrets, what)
    }

    /// Keeps a credential from being sent at all (`reason` says why, e.g. too few tries left
    /// to risk a value nobody has checked).
    pub(crate) fn withhold(&mut self, pin: PinId, reason: String) {
        let slot = match pin {
            PinId::USER => &mut self.user,
            PinId::ADMIN => &mut self.admin,
            _ => return,
        };
        slot.unusable = Some(reason);
        slot.value = None;
    }

    /// Remembers that the card refused a credential, so that it is not sent again.
    pub(crate) fn note(&mut self, err: &CardError) {
        let pin = match err {
            CardError::WrongPin { pin, .. } | CardError::PinBlocked { pin } => *pin,
            _ => return,
        };
        let slot = match pin {
            PinId::USER => &mut self.user,
            PinId::ADMIN => &mut self.admin,
            _ => return,
        };
        slot.unusable = Some(format!("the card refused the {}: {err}", slot.what));
        slot.value = None;
    }

    /// Verifies the user PIN (nothing for a key usable by everyone); a refusal is noted.
    pub(crate) fn verify(
        &mut self,
        card: &mut dyn CardModule,
        pin: PinId,
    ) -> Result<(), CardError> {
        if pin == PinId::EVERYONE {
            return Ok(());
        }
        let value = match pin {
            PinId::USER => self.user(),
            PinId::ADMIN => {
                let is_key = crate::card_cmd::admin_is_key(card)?;
                let value = self.admin(is_key).map_err(input_error)?;
                let result = crate::card_cmd::authenticate_admin_with(card, is_key, &value);
                if let Err(err) = &result {
                    self.note(err);
                }
                return result;
            }
            other => Err(format!("no value for {other}")),
        }
        .map_err(input_error)?;
        let result = card.authenticate(pin, &value);
        if let Err(err) = &result {
            self.note(err);
        }
        result
    }

    /// Runs a write as admin ([`crate::card_cmd::admin_write`]); a refused credential is noted.
    pub(crate) fn admin_write<R>(
        &mut self,
        card: &mut dyn CardModule,
        write: impl FnMut(&mut dyn CardModule) -> Result<R, CardError>,
    ) -> Result<R, CardError> {
        let result = crate::card_cmd::admin_write(card, self, write);
        if let Err(err) = &result {
            self.note(err);
        }
        result
    }
}

impl AdminCredentials for Credentials {
    fn admin(&mut self, is_key: bool) -> Result<Pin, CardError> {
        Credentials::admin(self, is_key).map_err(input_error)
    }

    fn pin(&mut self, pin: PinId) -> Result<Pin, CardError> {
        match pin {
            PinId::USER => self.user().map_err(input_error),
            other => Err(input_error(format!("no value for {other}"))),
        }
    }
}
