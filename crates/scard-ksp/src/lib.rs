//! The key storage provider: the layer applications use (the Windows Smart Card Key Storage
//! Provider's semantics, NCrypt's, in Rust). The PKCS#11 module and the CLI sit on it.
//!
//! A [`Provider`] is assembled from readers of any backend ([`ProviderConfig::readers`]:
//! `pcsc:*`, `ccid:*`, `vpcd:HOST:PORT`, `sim:<family>[:<state file>]`), the card profiles
//! ([`default_profiles`]) and a [`PinSource`]. It opens every card it finds and offers:
//!
//! - readers and cards: [`Provider::readers`], [`Provider::refresh`],
//!   [`Provider::wait_event`];
//! - keys by name, `\\.\<reader>\<container name>` or the container name alone
//!   ([`KeyName`]): [`Provider::keys`], [`Provider::open_key`] ([`KeyInfo`]: algorithm,
//!   public key, certificate, container, card id, PIN, cache policy, usage);
//! - operations: [`Provider::sign`] (PKCS#1 v1.5 with a hash OID, PSS with hash and salt
//!   length, ECDSA raw r || s), [`Provider::decrypt`] (PKCS#1 v1.5, OAEP, raw),
//!   [`Provider::agree`] (ECDH), [`Provider::generate_key`] (into a given or the first free
//!   container), [`Provider::import_certificate`], [`Provider::delete_key`]; each with a
//!   `check_*` twin that reports an unsupported padding, algorithm or size before any PIN;
//! - PINs: [`Provider::login`] / [`Provider::logout`] / [`Provider::is_logged_in`],
//!   [`Provider::change_pin`], [`Provider::unblock_pin`], [`Provider::pin_info`],
//!   [`Provider::authorize_key`] (a PIN for the next use of one key); the cache policy and
//!   reset handling are described in [`provider`].
//!
//! PIN sources: [`CallbackPinSource`] (a closure), [`EnvPinSource`], [`LinePinSource`]
//! (standard input when it is not a terminal), [`PinentryPinSource`] (a pinentry program over
//! the Assuan protocol), [`NoPinSource`]. Errors: one enum, [`KspError`], with
//! [`KspError::kind`] for boundaries that map errors to codes in one function.
//!
//! Features: `sim` (off by default) adds `sim:` readers, in-process simulated cards of
//! scard-sim; the PKCS#11 module and the CLI turn it on.
//!
//! ```no_run
//! use scard_ksp::{EnvPinSource, OpFlags, Provider, ProviderConfig, default_profiles};
//! use scard_minidriver::{HashAlg, SignPadding, SignRequest};
//!
//! let config = ProviderConfig::from_env_and_file()?;
//! let mut provider =
//!     Provider::new(config, default_profiles(), Box::new(EnvPinSource::new("SCARD_PIN")))?;
//! let keys = provider.keys()?;
//! let key = keys.iter().find(|k| k.usage.sign && !k.algorithm.is_rsa()).expect("an ECDSA key");
//! let digest = HashAlg::Sha256.digest(b"hello");
//! let request =
//!     SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::None, data: &digest };
//! let signature = provider.sign(&key.name, &request, OpFlags::default())?;
//! # Ok::<(), scard_ksp::KspError>(())
//! ```
#![forbid(unsafe_code)]

mod backends;
pub mod clock;
pub mod config;
mod error;
pub mod names;
pub mod pin;
pub mod pinentry;
mod profiles;
pub mod provider;
#[cfg(feature = "sim")]
pub mod sim;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{PinCacheConfig, ProviderConfig};
pub use error::{ErrorKind, KspError, Result};
pub use names::KeyName;
pub use pin::{
    CallbackPinSource, EnvPinSource, LinePinSource, NoPinSource, Operation, PinPrompt, PinRequest,
    PinSource, pin_callback,
};
pub use pinentry::PinentryPinSource;
pub use profiles::default_profiles;
pub use provider::{CardSummary, KeyInfo, KeyUsage, OpFlags, Provider, ProviderEvent, ReaderState};
