//! Smart card logon certificates the way the Windows 10/11 client selects them, certificate
//! propagation, and the settings that drive both. Knows nothing about APDUs: the card layer
//! hands over (container name, certificate DER, default flag, key spec).
//!
//! - [`LogonCert`]: strict DER parsing (RFC 5280 §4.1, X.690 DER) with the extensions logon
//!   reads decoded while parsing (rule 1).
//! - [`evaluate`]: eligibility of one certificate, with `now` and the key spec as inputs
//!   (rules 2-9), returning [`Reason`]s and informational [`Note`]s.
//! - [`enumerate`]: which certificates of a card are listed (rules 10-12).
//! - [`Policy`]: the settings under their registry value names, from defaults, a TOML file
//!   and `NAME=VALUE` arguments, each value remembering its [`Source`].
//! - [`store`]: the propagation store (`my/`, `root/`, JSON sidecars, atomic writes).
//!
//! Signatures and chains are not checked here: the KDC does that.
#![forbid(unsafe_code)]

mod cert;
mod enumerate;
mod error;
pub mod oid;
mod policy;
mod rules;
pub mod store;
#[cfg(any(test, feature = "test-support"))]
pub mod testcert;
mod time;

pub use cert::{Curve, ExtensionInfo, KeyKind, LogonCert, SanUpn, Template};
pub use enumerate::{Card, Container, Enumeration, Outcome, Rejection, enumerate};
pub use error::CertError;
pub use policy::{Entry, Policy, RemoveAction, RootCleanup, Setting, Source, Value};
pub use rules::{Evaluation, KeySpec, Note, Reason, evaluate};
pub use time::Timestamp;
