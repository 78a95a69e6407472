//! The minidriver layer: the card-agnostic [`CardModule`] trait with the semantics of the
//! Microsoft Smart Card Minidriver Specification v7 (PIN roles, key containers, sign /
//! decrypt / ECDH, the logical file system), rendered as Rust rather than the C ABI.
//!
//! - [`types`]: PIN ids and sets, PIN info, key specs, algorithms, paddings, public keys,
//!   containers, card properties, zeroized secrets.
//! - [`channel`]: [`CardChannel`], a connection as a profile sees it (limits, nested
//!   transactions, selected application, authenticated PINs, reset handling).
//! - [`module`]: the [`CardModule`] trait, with a file system synthesized from card objects
//!   by default.
//! - [`fs`]: file names, `cardcf`, `mscp/cmapfile` records, certificate compression.
//! - [`model`]: card-model TOML files; [`registry`]: families and model selection by ATR or
//!   probing; [`cache`]: the host file cache keyed by card id + freshness.
//! - [`padding`]: RSA paddings for cards that only do raw RSA; [`verify`]: a card's signature
//!   checked on the host before it is handed on.
#![forbid(unsafe_code)]

pub mod cache;
pub mod channel;
mod error;
pub mod fs;
pub mod model;
pub mod module;
pub mod padding;
pub mod registry;
pub mod types;
pub mod verify;

pub use cache::{FileCache, ObjectStore};
pub use channel::CardChannel;
pub use error::{CardError, Result};
pub use fs::{CardCf, FilePath};
pub use model::CardModel;
pub use module::{CardModule, with_transaction};
pub use registry::{Family, ProfileRegistry};
pub use types::*;
pub use verify::verify_signature;
