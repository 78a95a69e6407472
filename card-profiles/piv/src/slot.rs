//! PIV asymmetric key references as containers (SP 800-73-4 Pt 1 §3.1 and Table 4b): which
//! certificate object belongs to a key, which PIN unlocks it, and the minidriver key spec it
//! gets.

use scard_minidriver::{Curve, KeyAlgorithm, KeySpec, PinId};

/// 9A, PIV Authentication.
pub(crate) const PIV_AUTHENTICATION: u8 = 0x9A;
/// 9C, Digital Signature ("PIN Always").
pub(crate) const DIGITAL_SIGNATURE: u8 = 0x9C;
/// 9D, Key Management.
pub(crate) const KEY_MANAGEMENT: u8 = 0x9D;
/// 9E, Card Authentication (no PIN).
pub(crate) const CARD_AUTHENTICATION: u8 = 0x9E;
/// 82, Retired Key Management 1; 83 to 95 are 2 to 20.
pub(crate) const RETIRED_FIRST: u8 = 0x82;
/// 95, Retired Key Management 20.
pub(crate) const RETIRED_LAST: u8 = 0x95;

/// The containers of a card whose model lists none, in index order: 0 = 9A, 1 = 9C, 2 = 9D,
/// 3 = 9E, 4..23 = 82..95 (the order of OpenSC's key ids 01, 02, 03, 04, 05..).
pub(crate) fn default_slots() -> Vec<u8> {
    let mut slots =
        vec![PIV_AUTHENTICATION, DIGITAL_SIGNATURE, KEY_MANAGEMENT, CARD_AUTHENTICATION];
    slots.extend(RETIRED_FIRST..=RETIRED_LAST);
    slots
}

/// Whether `key_ref` is an asymmetric key reference of the PIV Card Application
/// (SP 800-73-4 Pt 1 Table 4b).
pub(crate) fn is_key_slot(key_ref: u8) -> bool {
    matches!(key_ref, PIV_AUTHENTICATION | DIGITAL_SIGNATURE | KEY_MANAGEMENT | CARD_AUTHENTICATION)
        || is_retired(key_ref)
}

/// Whether `key_ref` is one of the twenty retired key management keys.
pub(crate) fn is_retired(key_ref: u8) -> bool {
    (RETIRED_FIRST..=RETIRED_LAST).contains(&key_ref)
}

/// The position of a retired key (82 is 0, 95 is 19).
pub(crate) fn retired_position(key_ref: u8) -> Option<u8> {
    is_retired(key_ref).then(|| key_ref - RETIRED_FIRST)
}

/// The tag of the certificate object of a key (SP 800-73-4 Pt 1 Table 3): 9A 5FC105, 9C 5FC10A,
/// 9D 5FC10B, 9E 5FC101, 82..95 5FC10D..5FC120.
pub(crate) fn certificate_tag(key_ref: u8) -> Option<u32> {
    match key_ref {
        PIV_AUTHENTICATION => Some(0x5F_C105),
        DIGITAL_SIGNATURE => Some(0x5F_C10A),
        KEY_MANAGEMENT => Some(0x5F_C10B),
        CARD_AUTHENTICATION => Some(0x5F_C101),
        r if is_retired(r) => Some(0x5F_C10D + u32::from(r - RETIRED_FIRST)),
        _ => None,
    }
}

/// A label for a key reference, as SP 800-73-4 Pt 1 Table 4b names it.
pub(crate) fn label(key_ref: u8) -> String {
    match key_ref {
        PIV_AUTHENTICATION => "PIV Authentication (9A)".into(),
        DIGITAL_SIGNATURE => "Digital Signature (9C)".into(),
        KEY_MANAGEMENT => "Key Management (9D)".into(),
        CARD_AUTHENTICATION => "Card Authentication (9E)".into(),
        r => match retired_position(r) {
            Some(n) => format!("Retired Key Management {} ({r:02X})", n + 1),
            None => format!("key {r:02X}"),
        },
    }
}

/// The PIN that unlocks a key (SP 800-73-4 Pt 1 Table 4b, access rules): the Card
/// Authentication key needs none, every other key the PIV Card Application PIN.
pub(crate) fn pin(key_ref: u8) -> PinId {
    if key_ref == CARD_AUTHENTICATION { PinId::EVERYONE } else { PinId::USER }
}

/// SP 800-73-4 Pt 1 §3.2.2 / Table 4b: the Digital Signature key is "PIN Always": the PIN is
/// verified immediately before each use.
pub(crate) fn always_authenticate(key_ref: u8) -> bool {
    key_ref == DIGITAL_SIGNATURE
}

/// The minidriver key spec of a key. RSA: the Digital Signature and Card Authentication keys
/// sign only (AT_SIGNATURE); PIV Authentication, Key Management and the retired keys also
/// decrypt (AT_KEYEXCHANGE). ECC: the key management keys (9D, 82..95) are key establishment
/// keys (SP 800-78-4 §3.1: ECDH) and are reported as ECDH, i.e. key exchange; the others sign
/// (ECDSA).
pub(crate) fn key_spec(key_ref: u8, algorithm: KeyAlgorithm) -> KeySpec {
    let key_management = key_ref == KEY_MANAGEMENT || is_retired(key_ref);
    match algorithm {
        KeyAlgorithm::Rsa(_) if key_management || key_ref == PIV_AUTHENTICATION => {
            KeySpec::Exchange
        }
        KeyAlgorithm::Rsa(_) => KeySpec::Signature,
        KeyAlgorithm::Ec(curve) if key_management => KeySpec::Ecdh(curve),
        KeyAlgorithm::Ec(curve) => KeySpec::Ecdsa(curve),
    }
}

/// The algorithm identifier of an asymmetric key (SP 800-78-4 Table 6-2: 06 RSA 1024, 07 RSA
/// 2048, 11 ECC P-256, 14 ECC P-384; SP 800-78-5 Table 6-2: 05 RSA 3072; 16 RSA 4096 is the
/// YubiKey's, which piv-authenticator and our simulated card share).
pub(crate) fn algorithm_id(algorithm: KeyAlgorithm) -> Option<u8> {
    match algorithm {
        KeyAlgorithm::Rsa(1024) => Some(0x06),
        KeyAlgorithm::Rsa(2048) => Some(0x07),
        KeyAlgorithm::Rsa(3072) => Some(0x05),
        KeyAlgorithm::Rsa(4096) => Some(0x16),
        KeyAlgorithm::Ec(Curve::P256) => Some(0x11),
        KeyAlgorithm::Ec(Curve::P384) => Some(0x14),
        _ => None,
    }
}

/// The algorithms a PIV card takes when its model lists none (SP 800-78-4 Table 3-1 for the
/// PIV keys of today: RSA 2048, ECC P-256 and P-384).
pub(crate) fn default_algorithms() -> Vec<KeyAlgorithm> {
    vec![KeyAlgorithm::Rsa(2048), KeyAlgorithm::Ec(Curve::P256), KeyAlgorithm::Ec(Curve::P384)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_tags_and_specs() {
        let slots = default_slots();
        assert_eq!(slots.len(), 24);
        assert_eq!(&slots[..5], &[0x9A, 0x9C, 0x9D, 0x9E, 0x82]);
        assert_eq!(slots[23], 0x95);
        // SP 800-73-4 Pt 1 Table 3.
        assert_eq!(certificate_tag(0x9A), Some(0x5FC105));
        assert_eq!(certificate_tag(0x9E), Some(0x5FC101));
        assert_eq!(certificate_tag(0x82), Some(0x5FC10D));
        assert_eq!(certificate_tag(0x95), Some(0x5FC120));
        assert_eq!(certificate_tag(0x9B), None);
        assert_eq!(key_spec(0x9A, KeyAlgorithm::Rsa(2048)), KeySpec::Exchange);
        assert_eq!(key_spec(0x9C, KeyAlgorithm::Rsa(2048)), KeySpec::Signature);
        assert_eq!(key_spec(0x9D, KeyAlgorithm::Ec(Curve::P256)), KeySpec::Ecdh(Curve::P256));
        assert_eq!(key_spec(0x85, KeyAlgorithm::Ec(Curve::P384)), KeySpec::Ecdh(Curve::P384));
        assert_eq!(key_spec(0x9E, KeyAlgorithm::Ec(Curve::P256)), KeySpec::Ecdsa(Curve::P256));
        assert_eq!(pin(0x9E), PinId::EVERYONE);
        assert!(always_authenticate(0x9C));
        assert_eq!(label(0x83), "Retired Key Management 2 (83)");
    }
}
