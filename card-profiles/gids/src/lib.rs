//! The GIDS card family: cards with the application of Microsoft's Generic Identity Device
//! Specification 1.0 (the Microsoft Virtual Smart Card, GidsApplet, scard's simulated GIDS
//! card), driven as a [`scard_minidriver::CardModule`].
//!
//! GIDS is the family whose minidriver file system is real: the card stores `cardid`,
//! `cardcf`, `cardapps`, `mscp/cmapfile` and the certificate files itself, as data objects in
//! BER-TLV files, found through the card's master file. This profile reads and writes those
//! files (keeping the `cardcf` freshness counters on the card), builds the containers from the
//! card's cmapfile (container N uses key reference 81 + N, key file B0xx), verifies the user PIN
//! (key reference 80), authenticates the administrator with the 24-byte 3DES admin key, and
//! generates, imports, uses and deletes keys.
//!
//! - [`family`]: the registration (name `gids`, built-in card models, probe by SELECT of the
//!   GIDS AID, constructor).
//! - [`GidsCard`]: the module.
//!
//! Sources: GIDS 1.0 for the card edge; the Smart Card Minidriver Specification v7 for the
//! files; OpenSC's GIDS driver (card-gids.c) for the undocumented layouts the Windows GIDS
//! minidriver uses (master file, key map, certificate compression) and for what real cards
//! do differently from the specification (named quirks in the card models).
#![forbid(unsafe_code)]

mod admin;
mod card;
mod layout;

pub use card::GidsCard;

use scard_minidriver::{CardChannel, CardError, CardModel, CardModule, Family, Pin, Result};

/// The GIDS application identifier without its version bytes: RID A0 00 00 03 97, PIX
/// 42 54 46 59 (GIDS 1.0 "application identifier"). Cards answer SELECT of this prefix
/// (ISO/IEC 7816-4 §11.1.1, partial DF name) whatever their version (01, 02, 04 01 ...).
pub const AID: [u8; 9] = [0xA0, 0x00, 0x00, 0x03, 0x97, 0x42, 0x54, 0x46, 0x59];

/// Quirk: PSO DECIPHER takes the cryptogram without the padding-indicator byte 00 that GIDS
/// 1.0 puts before it (Microsoft Virtual Smart Card; OpenSC PR #1881).
pub const QUIRK_DECIPHER_WITHOUT_PADDING_INDICATOR: &str = "decipher-without-padding-indicator";

/// The built-in card models of this family.
pub const MODELS: &[(&str, &str)] = &[
    ("generic.toml", include_str!("../cards/generic.toml")),
    ("scard-sim.toml", include_str!("../cards/scard-sim.toml")),
    ("microsoft-vsc.toml", include_str!("../cards/microsoft-vsc.toml")),
];

/// The GIDS family for a [`scard_minidriver::ProfileRegistry`].
pub fn family() -> Family {
    Family { name: "gids", models: MODELS, probe, open }
}

/// Whether the card holds the GIDS application: SELECT of [`AID`] answers 9000 (how OpenSC's
/// gids_match_card recognises a GIDS card; no GIDS card is named by its ATR alone).
fn probe(channel: &mut CardChannel) -> Result<bool> {
    match channel.select(&AID) {
        Ok(_) => Ok(true),
        Err(CardError::Status { .. }) => Ok(false),
        Err(other) => Err(other),
    }
}

/// The answer to a GIDS admin challenge ([`CardModule::admin_challenge`]) for a caller that
/// holds the admin key (24 bytes, or 48 hex digits): 3DES of the 8-byte challenge, to pass to
/// [`CardModule::admin_response`] (Minidriver v7 §4.4 CardAuthenticateChallenge).
pub fn admin_challenge_response(admin_key: &Pin, challenge: &[u8]) -> Result<Vec<u8>> {
    let key = admin::admin_key(admin_key)?;
    admin::external_response(&key, challenge)
}

fn open(channel: CardChannel, model: CardModel) -> Result<Box<dyn CardModule>> {
    Ok(Box::new(GidsCard::new(channel, model)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_models_load() {
        let mut registry = scard_minidriver::ProfileRegistry::new();
        registry.register(family());
        let errors: Vec<String> = registry.load_errors().map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}");
        let models: Vec<&CardModel> = registry.models().collect();
        assert_eq!(models.len(), 3);
        assert!(models.iter().all(|m| m.family == "gids" && m.certificate_compression));
        assert_eq!(models.iter().filter(|m| m.generic).count(), 1);
        let vsc = models.iter().find(|m| m.name == "Microsoft Virtual Smart Card").unwrap();
        assert!(vsc.has_quirk(QUIRK_DECIPHER_WITHOUT_PADDING_INDICATOR));
        assert_eq!(vsc.user_pin.min_len, 8);
        // The simulated card's ATR names the simulator's model.
        let sim_atr =
            scard_iso7816::hex::decode_lenient("3B8D0180FBA000000397425446590401CF").unwrap();
        assert_eq!(registry.identify(&sim_atr).unwrap().name, "scard-sim GIDS card");
        assert_eq!(registry.identify(&sim_atr[..16]).unwrap().name, "Microsoft Virtual Smart Card");
    }
}
