//! The GIDS file system: elementary files under the application DF, each described by the
//! file control parameters (FCP, tag 62) the host gave in CREATE FILE. Two kinds of EF exist:
//! BER-TLV data-object files (file descriptor byte 39) holding the minidriver files as DOs, and
//! key files (file descriptor byte 18, file identifiers B0xx) holding one key each.
//!
//! The GIDS 1.0 specification text was not available while this was written. The layouts
//! below are those OpenSC's GIDS driver (card-gids.c) writes and reads, and the GidsApplet
//! JavaCard implementation (vletoux/GidsApplet, which OpenSC was developed against) interprets;
//! each is named where it is used.

use std::collections::BTreeMap;

use scard_iso7816::StatusWord;
use scard_iso7816::tlv::ber::{self, ParseOptions, Tag};
use zeroize::Zeroizing;

use crate::keys::PrivateKey;

/// ISO/IEC 7816-4 file control parameters (FCP) template.
pub(super) const TAG_FCP: u32 = 0x62;
/// File descriptor byte (first byte of tag 82, ISO/IEC 7816-4).
const TAG_FDB: u32 = 0x82;
/// File identifier.
const TAG_FID: u32 = 0x83;
/// Security attributes in compact format.
const TAG_SA_COMPACT: u32 = 0x8C;
/// Control reference template of a key file (the algorithm and usages it allows).
const TAG_CRT: u32 = 0xA5;
/// Algorithm reference inside a CRT.
const TAG_ALG: u32 = 0x80;

/// FDB 39: EF holding BER-TLV data objects (OpenSC gids_initialize "File type=39=TLV structure
/// for BER-TLV DOs").
pub(super) const FDB_DATA_OBJECTS: u8 = 0x39;
/// FDB 18: key file (OpenSC gids_perform_create_keyfile / gids_initialize "key file").
pub(super) const FDB_KEY: u8 = 0x18;

/// Access-mode bits of the compact security attributes, as GidsApplet's File.java reads them
/// (ISO/IEC 7816-4 compact format: access-mode byte, then one security-condition byte per bit
/// set, from b7 down to b1).
pub(super) mod op {
    /// DO file: GET DATA. Key file: read the public key.
    pub(in super::super) const READ: u8 = 0x01;
    /// DO file: PUT DATA. Key file: import a key (PUT DATA 3FFF, DO 70).
    pub(in super::super) const WRITE: u8 = 0x02;
    /// Key file: MANAGE SECURITY ENVIRONMENT (and so use of the key).
    pub(in super::super) const KEY_MSE: u8 = 0x04;
    /// Key file: GENERATE ASYMMETRIC KEY PAIR.
    pub(in super::super) const KEY_GENERATE: u8 = 0x08;
    /// EF: ACTIVATE FILE.
    pub(in super::super) const ACTIVATE: u8 = 0x10;
    /// EF: DELETE FILE.
    pub(in super::super) const DELETE: u8 = 0x40;
    /// DF: DELETE FILE of a child.
    pub(in super::super) const DF_DELETE_CHILD: u8 = 0x01;
    /// DF: CREATE FILE of an EF.
    pub(in super::super) const DF_CREATE_EF: u8 = 0x02;
}

/// What the holder of the card has proved in this session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Auth {
    /// The user PIN (key reference 80) was verified.
    pub(super) user: bool,
    /// The administrator key was authenticated (GENERAL AUTHENTICATE).
    pub(super) admin: bool,
}

/// The security-condition byte that guards `op` in the compact attributes `sa` (the value of
/// tag 8C), or `None` when the access-mode byte does not list `op` (no restriction).
pub(super) fn condition(sa: &[u8], op: u8) -> Option<u8> {
    let (&mode, conditions) = sa.split_first()?;
    if mode & op == 0 {
        return None;
    }
    // One condition byte per access-mode bit set, b7 first; b8 is not an operation bit.
    let index = (0..7u8)
        .rev()
        .map(|b| 1u8 << b)
        .take_while(|&bit| bit != op)
        .fold(0, |n, bit| if mode & bit != 0 { n + 1 } else { n });
    // A condition byte missing from the attributes: never allowed.
    Some(conditions.get(index).copied().unwrap_or(0xFF))
}

/// Evaluates a security-condition byte (ISO/IEC 7816-4 compact format): 00 always, FF never;
/// otherwise b7 secure messaging, b6 external authentication (the admin key), b5 user
/// authentication (the PIN), and b8 set means all of them, clear means at least one.
pub(super) fn satisfied(sc: u8, auth: Auth) -> bool {
    match sc {
        0x00 => true,
        0xFF => false,
        _ => {
            // This card offers no secure messaging: a condition that names it fails.
            let wanted = [(0x40, false), (0x20, auth.admin), (0x10, auth.user)];
            let mut named = wanted.iter().filter(|(bit, _)| sc & bit != 0).peekable();
            if named.peek().is_none() {
                return false;
            }
            if sc & 0x80 != 0 { named.all(|&(_, ok)| ok) } else { named.any(|&(_, ok)| ok) }
        }
    }
}

/// Checks `op` against the compact attributes `sa` (empty: no restriction).
pub(super) fn check_access(sa: &[u8], op: u8, auth: Auth) -> Result<(), StatusWord> {
    match condition(sa, op) {
        None => Ok(()),
        Some(sc) if satisfied(sc, auth) => Ok(()),
        Some(_) => Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED),
    }
}

/// The parts of an FCP the card acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fcp {
    /// File descriptor byte.
    pub(super) fdb: u8,
    /// File identifier.
    pub(super) fid: u16,
    /// Compact security attributes (value of 8C), empty when absent.
    pub(super) sa: Vec<u8>,
    /// Value of the CRT template A5 (key files), empty when absent.
    pub(super) crt: Vec<u8>,
}

/// BER-TLV as hosts write it: non-minimal lengths tolerated, no padding.
pub(super) const HOST_TLV: ParseOptions =
    ParseOptions { allow_non_minimal_length: true, skip_padding: false, max_depth: 4 };

impl Fcp {
    /// Parses a whole FCP template (62 L {82 .., 83 02 FID, 8C .., A5 ..}) with nothing after
    /// it. The FDB and the two-byte FID are mandatory (GidsApplet getSafeFile); a key file
    /// must carry its CRT template.
    pub(super) fn parse(bytes: &[u8]) -> Option<Fcp> {
        let (outer, rest) = ber::decode_one(bytes, HOST_TLV).ok()?;
        if !rest.is_empty() || outer.tag() != Tag::new(TAG_FCP) {
            return None;
        }
        let mut fdb = None;
        let mut fid = None;
        let mut sa = Vec::new();
        let mut crt = Vec::new();
        for child in outer.children() {
            let child = child.ok()?;
            match child.tag().value() {
                TAG_FDB => fdb = child.value().first().copied(),
                TAG_FID => {
                    let [hi, lo] = <[u8; 2]>::try_from(child.value()).ok()?;
                    fid = Some(u16::from_be_bytes([hi, lo]));
                }
                TAG_SA_COMPACT => sa = child.value().to_vec(),
                TAG_CRT => {
                    ber::validate(child.value(), HOST_TLV).ok()?;
                    crt = child.value().to_vec();
                }
                _ => {}
            }
        }
        let fcp = Fcp { fdb: fdb?, fid: fid?, sa, crt };
        match fcp.fdb {
            FDB_DATA_OBJECTS => Some(fcp),
            FDB_KEY if !fcp.crt.is_empty() => Some(fcp),
            _ => None,
        }
    }

    /// Whether the key file's CRT template allows algorithm `alg` for the operation whose
    /// template tag is `usage` (B6 signature, B8 confidentiality, A4 authentication): one CRT
    /// of that tag must carry `80 01 alg` (GidsApplet CRTKeyFile.CheckUsage).
    pub(super) fn allows(&self, usage: u8, alg: u8) -> bool {
        ber::iter(&self.crt, HOST_TLV)
            .map_while(Result::ok)
            .filter(|t| t.tag() == Tag::new(u32::from(usage)))
            .any(|t| {
                t.children()
                    .map_while(Result::ok)
                    .any(|c| c.tag() == Tag::new(TAG_ALG) && c.value() == [alg])
            })
    }
}

/// Life cycle of a file (ISO/IEC 7816-4 life cycle status): created by CREATE FILE, usable after
/// ACTIVATE FILE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum LifeCycle {
    /// Created, not yet activated: only ACTIVATE FILE (and DELETE FILE) apply.
    Creation,
    /// Operational, activated.
    Activated,
}

/// What a key file holds.
#[derive(Clone, Default)]
pub(super) enum KeySlot {
    /// Nothing generated or imported yet.
    #[default]
    Empty,
    /// An asymmetric key pair.
    Private(PrivateKey),
    /// A symmetric key (the administrator key: 24 bytes of 3DES).
    Secret(Zeroizing<Vec<u8>>),
}

impl std::fmt::Debug for KeySlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySlot::Empty => f.write_str("Empty"),
            KeySlot::Private(k) => write!(f, "{k:?}"),
            KeySlot::Secret(s) => write!(f, "Secret({} bytes, REDACTED)", s.len()),
        }
    }
}

/// What an EF holds.
#[derive(Debug, Clone)]
pub(super) enum Content {
    /// BER-TLV data objects by tag (the tag bytes as a big-endian number).
    Objects(BTreeMap<u32, Vec<u8>>),
    /// A key.
    Key(KeySlot),
}

/// One elementary file.
#[derive(Debug, Clone)]
pub(super) struct Ef {
    /// The FCP as created (returned by SELECT).
    pub(super) fcp_bytes: Vec<u8>,
    /// Its parsed parts.
    pub(super) fcp: Fcp,
    /// Creation or activated.
    pub(super) life: LifeCycle,
    /// The data.
    pub(super) content: Content,
}

impl Ef {
    /// A new EF from an FCP (in the creation state, empty).
    pub(super) fn create(fcp_bytes: &[u8]) -> Option<Ef> {
        let fcp = Fcp::parse(fcp_bytes)?;
        let content = if fcp.fdb == FDB_KEY {
            Content::Key(KeySlot::Empty)
        } else {
            Content::Objects(BTreeMap::new())
        };
        Some(Ef { fcp_bytes: fcp_bytes.to_vec(), fcp, life: LifeCycle::Creation, content })
    }

    /// An EF created and activated, as personalisation leaves it.
    pub(super) fn active(fcp_bytes: &[u8]) -> Option<Ef> {
        let mut ef = Ef::create(fcp_bytes)?;
        ef.life = LifeCycle::Activated;
        Some(ef)
    }

    /// Checks an operation other than ACTIVATE on this file: the file must be activated
    /// (GidsApplet File.CheckPermission: 6985 in the creation state) and the condition met.
    pub(super) fn check(&self, op: u8, auth: Auth) -> Result<(), StatusWord> {
        if self.life != LifeCycle::Activated && op != op::ACTIVATE && op != op::DELETE {
            return Err(StatusWord::CONDITIONS_NOT_SATISFIED);
        }
        check_access(&self.fcp.sa, op, auth)
    }

    /// The data objects, if this is a DO file.
    pub(super) fn objects(&self) -> Option<&BTreeMap<u32, Vec<u8>>> {
        match &self.content {
            Content::Objects(o) => Some(o),
            Content::Key(_) => None,
        }
    }

    /// The data objects for writing, if this is a DO file.
    pub(super) fn objects_mut(&mut self) -> Option<&mut BTreeMap<u32, Vec<u8>>> {
        match &mut self.content {
            Content::Objects(o) => Some(o),
            Content::Key(_) => None,
        }
    }

    /// The key slot, if this is a key file.
    pub(super) fn key(&self) -> Option<&KeySlot> {
        match &self.content {
            Content::Key(k) => Some(k),
            Content::Objects(_) => None,
        }
    }

    /// The key slot for writing, if this is a key file.
    pub(super) fn key_mut(&mut self) -> Option<&mut KeySlot> {
        match &mut self.content {
            Content::Key(k) => Some(k),
            Content::Objects(_) => None,
        }
    }
}

/// The tag bytes of `tag` as a big-endian number, if they form one well-formed BER tag of at
/// most three bytes.
pub(super) fn tag_number(tag: &[u8]) -> Option<u32> {
    if tag.is_empty() || tag.len() > 3 {
        return None;
    }
    Tag::from_bytes(tag).ok()?;
    Some(tag.iter().fold(0u32, |n, &b| (n << 8) | u32::from(b)))
}

/// Encodes one DO: its tag, the minimal length and the value.
pub(super) fn encode_do(tag: u32, value: &[u8], out: &mut Vec<u8>) -> Result<(), StatusWord> {
    ber::write(out, Tag::new(tag), value).map_err(|_| StatusWord::NO_PRECISE_DIAGNOSIS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_attributes_as_opensc_writes_them() {
        // OpenSC gids_initialize: EveryoneReadUserWriteAc 8C 03 03 30 00.
        let sa = [0x03, 0x30, 0x00];
        assert_eq!(condition(&sa, op::WRITE), Some(0x30));
        assert_eq!(condition(&sa, op::READ), Some(0x00));
        assert_eq!(condition(&sa, op::DELETE), None);
        // Key file 8C 05 8F 10 10 10 00: generate, MSE, put key need the PIN; public key free.
        let key = [0x8F, 0x10, 0x10, 0x10, 0x00];
        assert_eq!(condition(&key, op::KEY_GENERATE), Some(0x10));
        assert_eq!(condition(&key, op::KEY_MSE), Some(0x10));
        assert_eq!(condition(&key, op::WRITE), Some(0x10));
        assert_eq!(condition(&key, op::READ), Some(0x00));
        // Admin key 8C 04 87 00 20 FF.
        let admin = [0x87, 0x00, 0x20, 0xFF];
        assert_eq!(condition(&admin, op::KEY_MSE), Some(0x00));
        assert_eq!(condition(&admin, op::WRITE), Some(0x20));
        assert_eq!(condition(&admin, op::READ), Some(0xFF));
        // Truncated attributes deny.
        assert_eq!(condition(&[0x03, 0x30], op::READ), Some(0xFF));
        assert_eq!(condition(&[], op::READ), None);
    }

    #[test]
    fn security_conditions() {
        let none = Auth::default();
        let user = Auth { user: true, admin: false };
        let admin = Auth { user: false, admin: true };
        let both = Auth { user: true, admin: true };
        assert!(satisfied(0x00, none));
        assert!(!satisfied(0xFF, both));
        assert!(!satisfied(0x30, none) && satisfied(0x30, user) && satisfied(0x30, admin));
        assert!(!satisfied(0x20, user) && satisfied(0x20, admin));
        assert!(!satisfied(0x10, admin) && satisfied(0x10, user));
        assert!(!satisfied(0xB0, user) && satisfied(0xB0, both));
        assert!(!satisfied(0x40, both), "no secure messaging");
        assert!(!satisfied(0x01, both), "an SE number alone names no condition");
    }

    #[test]
    fn fcp_parsing() {
        // OpenSC gids_initialize EveryoneReadAdminWriteAc.
        let fcp = Fcp::parse(&[
            0x62, 0x0C, 0x82, 0x01, 0x39, 0x83, 0x02, 0xA0, 0x12, 0x8C, 0x03, 0x03, 0x20, 0x00,
        ])
        .unwrap();
        assert_eq!((fcp.fdb, fcp.fid, fcp.sa.as_slice()), (0x39, 0xA012, &[3, 0x20, 0][..]));
        // A key file without its CRT, a wrong outer tag, trailing bytes: refused.
        assert!(Fcp::parse(&[0x62, 0x07, 0x82, 0x01, 0x18, 0x83, 0x02, 0xB0, 0x81]).is_none());
        assert!(Fcp::parse(&[0x6F, 0x07, 0x82, 0x01, 0x39, 0x83, 0x02, 0xA0, 0x00]).is_none());
        assert!(Fcp::parse(&[0x62, 0x07, 0x82, 0x01, 0x39, 0x83, 0x02, 0xA0, 0x00, 0]).is_none());
        assert!(Fcp::parse(&[0x62, 0x06, 0x82, 0x01, 0x39, 0x83, 0x01, 0xA0]).is_none());
        assert!(Fcp::parse(&[]).is_none());
    }

    #[test]
    fn crt_usage() {
        // OpenSC's sign-only key file CRT for key 81, RSA 2048 (algid 07).
        let mut fcp = vec![0x62, 0x26, 0x82, 0x01, 0x18, 0x83, 0x02, 0xB0, 0x81];
        fcp.extend_from_slice(&[0x8C, 0x05, 0x8F, 0x10, 0x10, 0x10, 0x00, 0xA5, 0x16]);
        fcp.extend_from_slice(&[0xB6, 0x09, 0x80, 0x01, 0x17, 0x83, 0x01, 0x83, 0x95, 0x01, 0x40]);
        fcp.extend_from_slice(&[0xB6, 0x09, 0x80, 0x01, 0x57, 0x83, 0x01, 0x83, 0x95, 0x01, 0x40]);
        let fcp = Fcp::parse(&fcp).unwrap();
        assert!(fcp.allows(0xB6, 0x57) && fcp.allows(0xB6, 0x17));
        assert!(!fcp.allows(0xB8, 0x47) && !fcp.allows(0xB6, 0x47));
    }

    #[test]
    fn tags() {
        assert_eq!(tag_number(&[0xDF, 0x1F]), Some(0xDF1F));
        assert_eq!(tag_number(&[0x7F, 0x71]), Some(0x7F71));
        assert_eq!(tag_number(&[0xDF]), None);
        assert_eq!(tag_number(&[]), None);
        assert_eq!(tag_number(&[0x5F, 0xC1, 0x02, 0x00]), None);
    }
}
