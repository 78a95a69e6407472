//! PIV data objects: their tags, read access rules and the contents a new card is issued with
//! (SP 800-73-4 Pt 1 §3 and Appendix A).

use super::tlv;

/// The tag of a GET DATA response that is not wrapped in 53 (Discovery object, BIT group
/// template): SP 800-73-4 Pt 2 §3.1.2.
const DISCOVERY_TAG: u32 = 0x7E;
const BIT_GROUP_TEMPLATE_TAG: u32 = 0x7F61;

/// BER-TLV tags of the PIV data objects (SP 800-73-4 Pt 1 Table 3).
pub(crate) mod tag {
    /// X.509 Certificate for Card Authentication (key 9E).
    pub(crate) const CARD_AUTH_CERT: u32 = 0x5F_C101;
    /// Card Holder Unique Identifier.
    pub(crate) const CHUID: u32 = 0x5F_C102;
    /// Cardholder Fingerprints.
    pub(crate) const FINGERPRINTS: u32 = 0x5F_C103;
    /// X.509 Certificate for PIV Authentication (key 9A).
    pub(crate) const PIV_AUTH_CERT: u32 = 0x5F_C105;
    /// Security Object.
    pub(crate) const SECURITY_OBJECT: u32 = 0x5F_C106;
    /// Card Capability Container.
    pub(crate) const CCC: u32 = 0x5F_C107;
    /// Cardholder Facial Image.
    pub(crate) const FACIAL_IMAGE: u32 = 0x5F_C108;
    /// Printed Information.
    pub(crate) const PRINTED_INFO: u32 = 0x5F_C109;
    /// X.509 Certificate for Digital Signature (key 9C).
    pub(crate) const SIGNATURE_CERT: u32 = 0x5F_C10A;
    /// X.509 Certificate for Key Management (key 9D).
    pub(crate) const KEY_MGMT_CERT: u32 = 0x5F_C10B;
    /// Key History Object.
    pub(crate) const KEY_HISTORY: u32 = 0x5F_C10C;
    /// Retired X.509 Certificate for Key Management 1 (key 82); 2 to 20 follow (to 5FC120).
    pub(crate) const RETIRED_CERT_1: u32 = 0x5F_C10D;
    /// Retired X.509 Certificate for Key Management 20 (key 95).
    pub(crate) const RETIRED_CERT_20: u32 = 0x5F_C120;
    /// Cardholder Iris Images.
    pub(crate) const IRIS_IMAGES: u32 = 0x5F_C121;
    /// Secure Messaging Certificate Signer.
    pub(crate) const SM_CERT_SIGNER: u32 = 0x5F_C122;
    /// Pairing Code Reference Data Container.
    pub(crate) const PAIRING_CODE: u32 = 0x5F_C123;
    /// Discovery Object.
    pub(crate) const DISCOVERY: u32 = super::DISCOVERY_TAG;
    /// Biometric Information Templates Group Template.
    pub(crate) const BIT_GROUP_TEMPLATE: u32 = super::BIT_GROUP_TEMPLATE_TAG;
}

/// Who may read a data object (SP 800-73-4 Pt 1 Table 2, "Access Rule for Read"). Every object
/// is written with PUT DATA after PIV Card Application Administrator authentication (9B).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadAccess {
    /// Always.
    Always,
    /// PIN (or OCC, which this card does not have).
    Pin,
}

/// Largest object content PUT DATA accepts. SP 800-73-4 Pt 1 Appendix A gives minimum
/// capacities (the largest, the facial image, is 12710 bytes); this card takes a little more.
pub(crate) const MAX_OBJECT_LEN: usize = 16 * 1024;

/// What the card knows of one data object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ObjectInfo {
    /// The read access rule.
    pub(crate) read: ReadAccess,
    /// The tag GET DATA wraps the content in: 53, or the object's own tag for 7E and 7F61
    /// (SP 800-73-4 Pt 2 §3.1.2).
    pub(crate) response_tag: u32,
}

/// The object with `tag`, if the PIV data model defines one.
pub(crate) fn lookup(tag: u32) -> Option<ObjectInfo> {
    let always = ObjectInfo { read: ReadAccess::Always, response_tag: 0x53 };
    let pin = ObjectInfo { read: ReadAccess::Pin, response_tag: 0x53 };
    match tag {
        tag::DISCOVERY | tag::BIT_GROUP_TEMPLATE => {
            Some(ObjectInfo { read: ReadAccess::Always, response_tag: tag })
        }
        tag::FINGERPRINTS
        | tag::FACIAL_IMAGE
        | tag::PRINTED_INFO
        | tag::IRIS_IMAGES
        | tag::PAIRING_CODE => Some(pin),
        tag::CARD_AUTH_CERT
        | tag::CHUID
        | tag::PIV_AUTH_CERT
        | tag::SECURITY_OBJECT
        | tag::CCC
        | tag::SIGNATURE_CERT
        | tag::KEY_MGMT_CERT
        | tag::KEY_HISTORY
        | tag::RETIRED_CERT_1..=tag::RETIRED_CERT_20
        | tag::SM_CERT_SIGNER => Some(always),
        _ => None,
    }
}

/// The PIV AID with its version (SP 800-73-4 Pt 1 §2.2).
pub(crate) const PIV_AID: [u8; 11] =
    [0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00];

/// The label in the application property template.
const APPLICATION_LABEL: &[u8] = b"scard simulated PIV";

/// Algorithms this card offers, by SP 800-78-4 Table 6-2 identifier (and 05, RSA 3072, of
/// SP 800-78-5): management key 3DES, AES-128/192/256; RSA 2048/3072; ECC P-256/P-384.
const ALGORITHMS: [u8; 8] = [0x03, 0x08, 0x0A, 0x0C, 0x07, 0x05, 0x11, 0x14];

/// The SELECT response: Application Property Template (SP 800-73-4 Pt 2 §3.1.1, Table 3).
pub(crate) fn application_property_template() -> Vec<u8> {
    let mut apt = Vec::new();
    // 4F: the application identifier of the application (its PIX).
    tlv::put(&mut apt, 0x4F, PIV_AID.get(5..).unwrap_or_default());
    // 79: coexistent tag allocation authority, holding 4F with the NIST RID.
    tlv::put(&mut apt, 0x79, &tlv::object(0x4F, PIV_AID.get(..5).unwrap_or_default()));
    // 50: application label.
    tlv::put(&mut apt, 0x50, APPLICATION_LABEL);
    // AC: cryptographic algorithms supported, one 80 per algorithm, then 06 with length 0.
    let mut algorithms = Vec::new();
    for id in ALGORITHMS {
        tlv::put(&mut algorithms, 0x80, &[id]);
    }
    tlv::put(&mut algorithms, 0x06, &[]);
    tlv::put(&mut apt, 0xAC, &algorithms);
    tlv::object(0x61, &apt)
}

/// Discovery Object content (SP 800-73-4 Pt 1 §3.3.2, Table 18): 4F the PIV AID, 5F2F the PIN
/// usage policy. First byte 40: only the PIV Card Application PIN satisfies the access rules
/// (bit 7); no global PIN, OCC or VCI. Second byte 00: no global PIN, so no preference.
pub(crate) fn discovery() -> Vec<u8> {
    let mut out = Vec::new();
    tlv::put(&mut out, 0x4F, &PIV_AID);
    tlv::put(&mut out, 0x5F2F, &[0x40, 0x00]);
    out
}

/// FASC-N fields (TIG SCEPACS v2.3 §6.2: agency, system, credential, credential series,
/// individual credential issue, person identifier, organizational category, organization
/// identifier, person/organization association category), each a string of decimal digits.
pub(crate) struct FascN<'a> {
    pub(crate) agency: &'a [u8; 4],
    pub(crate) system: &'a [u8; 4],
    pub(crate) credential: &'a [u8; 6],
    pub(crate) series: u8,
    pub(crate) issue: u8,
    pub(crate) person: &'a [u8; 10],
    pub(crate) category: u8,
    pub(crate) organization: &'a [u8; 4],
    pub(crate) association: u8,
}

/// The test FASC-N every simulated card carries: agency 9999, system 9999, credential 999999,
/// series 0, issue 1, person 0000000000, category 3 (commercial enterprise), organization 0000, association
/// 1 (employee).
pub(crate) const SIMULATED_FASC_N: FascN<'static> = FascN {
    agency: &[9, 9, 9, 9],
    system: &[9, 9, 9, 9],
    credential: &[9, 9, 9, 9, 9, 9],
    series: 0,
    issue: 1,
    person: &[0; 10],
    category: 3,
    organization: &[0; 4],
    association: 1,
};

impl FascN<'_> {
    /// The 25-byte encoding (TIG SCEPACS §6.2): 40 characters of 5 bits, each 4 data bits
    /// least significant first and an odd parity bit, between start sentinel, field separators
    /// and end sentinel, followed by the longitudinal redundancy character.
    pub(crate) fn encode(&self) -> [u8; 25] {
        const SS: u8 = 0x0B;
        const FS: u8 = 0x0D;
        const ES: u8 = 0x0F;
        let mut chars: Vec<u8> = Vec::with_capacity(40);
        chars.push(SS);
        chars.extend_from_slice(self.agency);
        chars.push(FS);
        chars.extend_from_slice(self.system);
        chars.push(FS);
        chars.extend_from_slice(self.credential);
        chars.push(FS);
        chars.push(self.series);
        chars.push(FS);
        chars.push(self.issue);
        chars.push(FS);
        chars.extend_from_slice(self.person);
        chars.push(self.category);
        chars.extend_from_slice(self.organization);
        chars.push(self.association);
        chars.push(ES);
        // LRC: the exclusive or of the data bits of every character before it.
        let lrc = chars.iter().fold(0u8, |acc, c| acc ^ (c & 0x0F));
        chars.push(lrc);
        let mut out = [0u8; 25];
        let mut bit = 0usize;
        for c in chars {
            let data = c & 0x0F;
            // b1 (least significant) is sent first; the fifth bit makes the count of ones odd.
            let parity = u8::from(data.count_ones() % 2 == 0);
            for b in [data & 1, (data >> 1) & 1, (data >> 2) & 1, (data >> 3) & 1, parity] {
                if let Some(byte) = out.get_mut(bit / 8) {
                    *byte |= b << (7 - bit % 8);
                }
                bit += 1;
            }
        }
        out
    }
}

/// Expiration date of the simulated CHUID, YYYYMMDD (the card has no clock).
const CHUID_EXPIRATION: &[u8; 8] = b"20991231";

/// CHUID content (SP 800-73-4 Pt 1 §3.1.2, Table 9): 30 FASC-N, 34 GUID, 35 expiration date,
/// 3E issuer asymmetric signature (empty: nobody signed this card), FE error detection code.
pub(crate) fn chuid(guid: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::new();
    tlv::put(&mut out, 0x30, &SIMULATED_FASC_N.encode());
    tlv::put(&mut out, 0x34, guid);
    tlv::put(&mut out, 0x35, CHUID_EXPIRATION);
    tlv::put(&mut out, 0x3E, &[]);
    tlv::put(&mut out, 0xFE, &[]);
    out
}

/// The GUID in a CHUID content, if there is one.
pub(crate) fn chuid_guid(chuid: &[u8]) -> Option<[u8; 16]> {
    let found = scard_iso7816::tlv::ber::iter(chuid, tlv::COMMAND_DATA)
        .filter_map(Result::ok)
        .find(|t| t.tag().value() == 0x34)?;
    found.value().try_into().ok()
}

/// CCC content (SP 800-73-4 Pt 1 §3.1.1, Table 8): F0 card identifier (GSC-RID A0 00 00 01
/// 16, manufacturer FF, card type 02 = Java Card, 14 bytes of card id), F1/F2 container and
/// grammar versions 21, F3 applications CardURL (none), F4 PKCS#15 00, F5 data model 10, F6
/// access control rule table, F7 card APDUs, FA redirection, FB/FC capability and status
/// tuples, FD next CCC (all empty), FE error detection code.
pub(crate) fn ccc(card_id: &[u8; 14]) -> Vec<u8> {
    let mut identifier = vec![0xA0, 0x00, 0x00, 0x01, 0x16, 0xFF, 0x02];
    identifier.extend_from_slice(card_id);
    let mut out = Vec::new();
    tlv::put(&mut out, 0xF0, &identifier);
    tlv::put(&mut out, 0xF1, &[0x21]);
    tlv::put(&mut out, 0xF2, &[0x21]);
    tlv::put(&mut out, 0xF3, &[]);
    tlv::put(&mut out, 0xF4, &[0x00]);
    tlv::put(&mut out, 0xF5, &[0x10]);
    for empty in [0xF6, 0xF7, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE] {
        tlv::put(&mut out, empty, &[]);
    }
    out
}

/// Key History Object content (SP 800-73-4 Pt 1 §3.3.3, Table 19) for a card whose retired
/// certificate objects 1..=`on_card` may be present: C1 keysWithOnCardCerts, C2
/// keysWithOffCardCerts (0: no off-card certificates), FE error detection code.
pub(crate) fn key_history(on_card: u8) -> Vec<u8> {
    let mut out = Vec::new();
    tlv::put(&mut out, 0xC1, &[on_card]);
    tlv::put(&mut out, 0xC2, &[0]);
    tlv::put(&mut out, 0xFE, &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use scard_iso7816::hex::decode_lenient as h;

    #[test]
    fn fasc_n_encoding() {
        // The widely used test FASC-N 9999-9999-999999-0-1-0000000000-3-0000-1 (it is the
        // FASC-N of the default CHUID that yubico-piv-tool writes), encoded by hand per TIG
        // SCEPACS: SS 11010, '9' 10011, FS 10110, '0' 00001, '1' 10000, ES 11111, LRC.
        let expected = h("D4E739DA739CED39CE739D836858210842108421C84210C3EB").unwrap();
        assert_eq!(SIMULATED_FASC_N.encode().as_slice(), expected.as_slice());
    }

    #[test]
    fn templates() {
        assert_eq!(
            application_property_template(),
            h("61 42 4F 06 000010000100 79 07 4F 05 A000000308
               50 13 7363617264 2073696D756C61746564 20504956
               AC 1A 800103 800108 80010A 80010C 800107 800105 800111 800114 0600")
            .unwrap()
        );
        assert_eq!(discovery(), h("4F 0B A0000003080000100001 00 5F2F 02 4000").unwrap());
        let guid = [0x11; 16];
        let c = chuid(&guid);
        assert_eq!(chuid_guid(&c), Some(guid));
        assert!(tlv::is_sequence(&c));
        assert_eq!(c.len(), 2 + 25 + 2 + 16 + 2 + 8 + 2 + 2);
        let cc = ccc(&[0x22; 14]);
        assert_eq!(cc[..9], [0xF0, 0x15, 0xA0, 0x00, 0x00, 0x01, 0x16, 0xFF, 0x02]);
        assert!(tlv::is_sequence(&cc));
        assert_eq!(key_history(2), [0xC1, 1, 2, 0xC2, 1, 0, 0xFE, 0]);
    }

    #[test]
    fn access_rules() {
        assert_eq!(lookup(tag::PRINTED_INFO).unwrap().read, ReadAccess::Pin);
        assert_eq!(lookup(tag::FACIAL_IMAGE).unwrap().read, ReadAccess::Pin);
        assert_eq!(lookup(tag::FINGERPRINTS).unwrap().read, ReadAccess::Pin);
        assert_eq!(lookup(tag::CHUID).unwrap().read, ReadAccess::Always);
        assert_eq!(lookup(0x5F_C115).unwrap().read, ReadAccess::Always);
        assert_eq!(lookup(tag::DISCOVERY).unwrap().response_tag, 0x7E);
        assert_eq!(lookup(tag::CCC).unwrap().response_tag, 0x53);
        assert_eq!(lookup(0x5F_C104), None);
        assert_eq!(lookup(0x5F_FF00), None);
    }
}
