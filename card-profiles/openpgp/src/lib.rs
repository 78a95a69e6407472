//! The OpenPGP card family: the OpenPGP smart card application 3.4 (Achim Pietig,
//! "Functional Specification of the OpenPGP application on ISO Smart Card Operating
//! Systems", version 3.4.1; "§" below) as a minidriver [`CardModule`].
//!
//! - Containers (stable indexes): 0 = signature key (PSO:COMPUTE DIGITAL SIGNATURE, PW1 81),
//!   1 = decryption key (PSO:DECIPHER, PW1 82), 2 = authentication key (INTERNAL
//!   AUTHENTICATE, PW1 82). A container holds a key when its fingerprint (C5) is not zero,
//!   as GnuPG and OpenSC decide.
//! - PINs: 1 = PW1 (user), 2 = PW3 (admin), 3 = the resetting code (unblocks PW1).
//! - Everything the profile needs to know about the card comes from one GET DATA of the
//!   application related data (6E) per session: see [`OpenPgpCard`] for what is read when.
//!
//! Card models: `cards/*.toml` (generic OpenPGP 3.4, Nitrokey opcard, OpenPGP card 3.x and
//! scard's simulated card). Limits: a model's extended length is used as it says; the
//! generic model uses extended length when the card announces it in its historical bytes
//! (5F52). Either way the card's extended length information (7F66) bounds the sizes. The
//! profile knows no model quirks of its own; `shared-atr` (the registry's) marks an ATR that
//! other applications share (vsmartcard's generic ATR, the Nitrokey 3).
//!
//! The cache freshness counters (`cardcf`) are kept on the card in the private use DO 0102
//! when it is free (see [`record`]); GnuPG shows that DO as "Private DO 2".
#![forbid(unsafe_code)]

pub mod ard;
mod card;
pub mod fingerprint;
pub mod record;

use scard_minidriver::{CardChannel, CardError, CardModel, CardModule, Family, Result};

pub use ard::{ApplicationData, AttrKind, Attributes, PwStatus, Role};
pub use card::OpenPgpCard;
pub use fingerprint::{packet_body as fingerprint_packet_body, v4 as v4_fingerprint};
pub use record::{Record, RecordState};

/// §4.2.1 RID D2 76 00 01 24 and PIX application 01: the partial AID that SELECT names
/// (§7.2.1).
pub const AID_PREFIX: [u8; 6] = [0xD2, 0x76, 0x00, 0x01, 0x24, 0x01];

/// The built-in card models.
pub const MODELS: &[(&str, &str)] = &[
    ("generic.toml", include_str!("../cards/generic.toml")),
    ("nitrokey-opcard.toml", include_str!("../cards/nitrokey-opcard.toml")),
    ("openpgp-card-v3.toml", include_str!("../cards/openpgp-card-v3.toml")),
];

/// The OpenPGP family for the profile registry.
pub fn family() -> Family {
    Family { name: "openpgp", models: MODELS, probe, open }
}

/// §7.2.1: the card holds the application when SELECT of the partial AID answers 9000. The
/// channel remembers the selection, so the profile does not send it again.
fn probe(channel: &mut CardChannel) -> Result<bool> {
    match channel.select(&AID_PREFIX) {
        Ok(_) => Ok(true),
        Err(CardError::Status { .. }) => Ok(false),
        Err(other) => Err(other),
    }
}

fn open(channel: CardChannel, model: CardModel) -> Result<Box<dyn CardModule>> {
    Ok(Box::new(OpenPgpCard::new(channel, model)))
}
