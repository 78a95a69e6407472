//! The vocabulary of the minidriver layer: PIN roles, key specs, algorithms, padding, public
//! keys, containers and card properties (Smart Card Minidriver Specification v7, rendered as
//! Rust types rather than the C ABI's flags).

use std::fmt;

use zeroize::Zeroizing;

use crate::error::{CardError, Result};

/// A secret that leaves the card or the user (decrypted data, a shared secret): zeroized on
/// drop. Its `Debug` shows only the length.
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps bytes (taken, not copied).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }
    /// The bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(REDACTED, {} bytes)", self.0.len())
    }
}

/// A PIN, PUK, admin PIN or management key value: zeroized on drop, never printed.
#[derive(Clone)]
pub struct Pin(Zeroizing<Vec<u8>>);

impl Pin {
    /// Wraps PIN bytes (as the user typed them, before any card padding).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(Zeroizing::new(bytes.into()))
    }
    /// The bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether the PIN is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(REDACTED)")
    }
}

/// A minidriver PIN id (Minidriver v7 §4.4: `PIN_ID`): 0 everyone, 1 user, 2 admin, 3-7
/// card-specific. Only 0..=7 can be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PinId(u8);

impl PinId {
    /// ROLE_EVERYONE.
    pub const EVERYONE: PinId = PinId(0);
    /// ROLE_USER.
    pub const USER: PinId = PinId(1);
    /// ROLE_ADMIN.
    pub const ADMIN: PinId = PinId(2);

    /// A PIN id, if `id` is 0..=7.
    pub fn new(id: u8) -> Result<Self> {
        if id <= 7 {
            Ok(Self(id))
        } else {
            Err(CardError::InvalidInput { what: "PIN id", reason: format!("{id} (must be 0..7)") })
        }
    }
    /// The number.
    pub fn get(self) -> u8 {
        self.0
    }
    /// The set holding just this PIN.
    pub fn set(self) -> PinSet {
        PinSet(1 << self.0)
    }
}

impl fmt::Display for PinId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("PIN 0 (everyone)"),
            1 => f.write_str("PIN 1 (user)"),
            2 => f.write_str("PIN 2 (admin)"),
            n => write!(f, "PIN {n}"),
        }
    }
}

/// A set of PIN ids (Minidriver v7 §4.4: `PIN_SET`, bit n = PIN id n).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PinSet(pub u8);

impl PinSet {
    /// No PIN.
    pub const NONE: PinSet = PinSet(0);
    /// Whether `pin` is in the set.
    pub fn contains(self, pin: PinId) -> bool {
        self.0 & (1 << pin.0) != 0
    }
    /// The set with `pin` added.
    pub fn with(self, pin: PinId) -> PinSet {
        PinSet(self.0 | (1 << pin.0))
    }
    /// The set without the PINs of `other`.
    pub fn without(self, other: PinSet) -> PinSet {
        PinSet(self.0 & !other.0)
    }
    /// The PIN ids in the set.
    pub fn ids(self) -> impl Iterator<Item = PinId> {
        (0..8u8).filter(move |n| self.0 & (1 << n) != 0).map(PinId)
    }
}

/// How a PIN is presented (Minidriver v7 §4.4: `SECRET_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PinType {
    /// Characters typed by the user (AlphaNumericPinType).
    AlphaNumeric,
    /// Entered on the reader's pin pad (ExternalPinType).
    External,
    /// A key: the card sends a challenge, the host answers (ChallengeResponsePinType), e.g. the
    /// PIV card management key.
    ChallengeResponse,
    /// No PIN (EmptyPinType).
    Empty,
}

/// What a PIN is for (Minidriver v7 §4.4: `SECRET_PURPOSE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PinPurpose {
    /// Authentication (the user's PIN).
    Authentication,
    /// Digital signature (e.g. OpenPGP PW1 for PSO:CDS).
    DigitalSignature,
    /// Encryption / decryption.
    Encryption,
    /// Non-repudiation.
    NonRepudiation,
    /// Administrator (PUK-less admin, management key, PW3).
    Administrator,
    /// The primary card PIN.
    Primary,
    /// An unblock code (PUK, resetting code).
    UnblockOnly,
}

/// How long the host may cache a PIN (Minidriver v7 §4.4: `PIN_CACHE_POLICY_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CachePolicy {
    /// Until the card is reset or removed.
    Normal,
    /// This many seconds.
    Timed(u32),
    /// Never cached.
    None,
    /// Asked before every use of the key (PIV 9C: SP 800-73-4 Pt 1 §3.2.2).
    AlwaysPrompt,
}

/// One PIN of the card, as `PinInfo` lists it (Minidriver v7 §4.4: `PIN_INFO`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinInfo {
    /// The id.
    pub id: PinId,
    /// The card's own name for it ("PIV Card Application PIN", "PW1", ...).
    pub name: String,
    /// How it is presented.
    pub pin_type: PinType,
    /// What it is for.
    pub purpose: PinPurpose,
    /// Which PINs must be verified to change it.
    pub change_permission: PinSet,
    /// Which PINs (or PUK role) unblock it; empty if it cannot be unblocked.
    pub unblock_permission: PinSet,
    /// Host cache policy.
    pub cache_policy: CachePolicy,
    /// Shortest accepted value, in bytes (checked before VERIFY: a card may count a try for a
    /// value of the wrong length).
    pub min_len: usize,
    /// Longest accepted value, in bytes.
    pub max_len: usize,
    /// Tries left, when the card tells without a try.
    pub tries_left: Option<u8>,
}

/// A minidriver key spec (Minidriver v7 §4.3: `AT_KEYEXCHANGE` 1, `AT_SIGNATURE` 2,
/// `AT_ECDSA_P256` 3 .. `AT_ECDHE_P521` 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeySpec {
    /// RSA key for key exchange (decrypt) and signatures.
    Exchange,
    /// RSA key for signatures only.
    Signature,
    /// ECDSA key on a curve.
    Ecdsa(Curve),
    /// ECDH key on a curve.
    Ecdh(Curve),
}

impl KeySpec {
    /// The `AT_*` value.
    pub fn to_u32(self) -> u32 {
        match self {
            KeySpec::Exchange => 1,
            KeySpec::Signature => 2,
            KeySpec::Ecdsa(c) => 3 + c.index(),
            KeySpec::Ecdh(c) => 6 + c.index(),
        }
    }
    /// The key spec of an `AT_*` value.
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => KeySpec::Exchange,
            2 => KeySpec::Signature,
            3..=5 => KeySpec::Ecdsa(Curve::from_index(v - 3)?),
            6..=8 => KeySpec::Ecdh(Curve::from_index(v - 6)?),
            _ => return None,
        })
    }
    /// The name used in output and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            KeySpec::Exchange => "exchange",
            KeySpec::Signature => "signature",
            KeySpec::Ecdsa(_) => "ecdsa",
            KeySpec::Ecdh(_) => "ecdh",
        }
    }
    /// Whether the key may decrypt or agree (key exchange role). An ECC container whose key
    /// also does ECDH is reported as key exchange (issue 6: logon eligibility).
    pub fn is_exchange(self) -> bool {
        matches!(self, KeySpec::Exchange | KeySpec::Ecdh(_))
    }
}

/// A NIST prime curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    /// P-256 (secp256r1).
    P256,
    /// P-384 (secp384r1).
    P384,
    /// P-521 (secp521r1).
    P521,
}

impl Curve {
    fn index(self) -> u32 {
        match self {
            Curve::P256 => 0,
            Curve::P384 => 1,
            Curve::P521 => 2,
        }
    }
    fn from_index(i: u32) -> Option<Self> {
        [Curve::P256, Curve::P384, Curve::P521].get(i as usize).copied()
    }
    /// Size of a field element (and of r, s and the shared secret) in bytes.
    pub fn field_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }
    /// Key size in bits.
    pub fn bits(self) -> u16 {
        match self {
            Curve::P256 => 256,
            Curve::P384 => 384,
            Curve::P521 => 521,
        }
    }
}

/// A key algorithm and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// RSA with a modulus of this many bits.
    Rsa(u16),
    /// ECC on a curve.
    Ec(Curve),
}

impl KeyAlgorithm {
    /// Parses `rsa1024`, `rsa2048`, `rsa3072`, `rsa4096`, `p256`, `p384`, `p521`.
    pub fn parse(s: &str) -> Result<Self> {
        let lower = s.to_ascii_lowercase();
        let alg = match lower.as_str() {
            "p256" | "p-256" | "ecc256" | "secp256r1" => KeyAlgorithm::Ec(Curve::P256),
            "p384" | "p-384" | "ecc384" | "secp384r1" => KeyAlgorithm::Ec(Curve::P384),
            "p521" | "p-521" | "ecc521" | "secp521r1" => KeyAlgorithm::Ec(Curve::P521),
            _ => match lower.strip_prefix("rsa").and_then(|b| b.parse::<u16>().ok()) {
                Some(bits) if (512..=8192).contains(&bits) && bits % 8 == 0 => {
                    KeyAlgorithm::Rsa(bits)
                }
                _ => {
                    return Err(CardError::InvalidInput {
                        what: "key algorithm",
                        reason: format!(
                            "{s:?} (expected rsa2048, rsa3072, rsa4096, p256, p384 or p521)"
                        ),
                    });
                }
            },
        };
        Ok(alg)
    }
    /// Size in bits.
    pub fn bits(self) -> u16 {
        match self {
            KeyAlgorithm::Rsa(bits) => bits,
            KeyAlgorithm::Ec(c) => c.bits(),
        }
    }
    /// Whether it is RSA.
    pub fn is_rsa(self) -> bool {
        matches!(self, KeyAlgorithm::Rsa(_))
    }
    /// Size of a signature (RSA) or of r||s (ECDSA) in bytes.
    pub fn signature_len(self) -> usize {
        match self {
            KeyAlgorithm::Rsa(bits) => usize::from(bits).div_ceil(8),
            KeyAlgorithm::Ec(c) => 2 * c.field_len(),
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyAlgorithm::Rsa(bits) => write!(f, "rsa{bits}"),
            KeyAlgorithm::Ec(c) => write!(f, "p{}", c.bits()),
        }
    }
}

/// A hash algorithm of a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// SHA-1 (legacy; still signed by cards for old protocols).
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

#[allow(clippy::len_without_is_empty)] // a digest length, not a collection
impl HashAlg {
    /// Digest length in bytes.
    pub fn len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }
    /// Hashes `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            HashAlg::Sha1 => sha1::Sha1::digest(data).to_vec(),
            HashAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
    /// The DER prefix of the PKCS#1 v1.5 DigestInfo for this hash (RFC 8017 §9.2, note 1).
    pub fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            HashAlg::Sha1 => &[
                0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
                0x14,
            ],
            HashAlg::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            HashAlg::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            HashAlg::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }
    /// The DigestInfo of `digest` (prefix || digest), checking the digest length.
    pub fn digest_info(self, digest: &[u8]) -> Result<Vec<u8>> {
        if digest.len() != self.len() {
            return Err(CardError::InvalidInput {
                what: "digest",
                reason: format!("{} bytes, {self:?} needs {}", digest.len(), self.len()),
            });
        }
        let mut out = self.digest_info_prefix().to_vec();
        out.extend_from_slice(digest);
        Ok(out)
    }
}

/// The padding of a signature (Minidriver v7 `CARD_SIGNING_INFO`: `CARD_PADDING_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignPadding {
    /// No padding: the data is signed as given (raw RSA of a full block, or ECDSA of a hash).
    None,
    /// RSASSA-PKCS1-v1_5 (RFC 8017 §8.2); with no hash the data is an already encoded DigestInfo.
    Pkcs1,
    /// RSASSA-PSS with MGF1 of the same hash and this salt length (RFC 8017 §8.1).
    Pss {
        /// Salt length in bytes.
        salt_len: usize,
    },
}

/// A signature request: what to sign and how.
#[derive(Debug, Clone, Copy)]
pub struct SignRequest<'a> {
    /// The hash algorithm `data` was made with; `None` when `data` is not a bare digest.
    pub hash: Option<HashAlg>,
    /// The padding.
    pub padding: SignPadding,
    /// The digest (or, with `hash` `None`, the already formatted input).
    pub data: &'a [u8],
}

/// The padding of a decryption (Minidriver v7 `CARD_RSA_DECRYPT_INFO`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecryptPadding {
    /// Raw RSA: the full block comes back.
    None,
    /// RSAES-PKCS1-v1_5 (RFC 8017 §7.2).
    Pkcs1,
    /// RSAES-OAEP with MGF1 of `hash` and a label (RFC 8017 §7.1).
    Oaep {
        /// Hash of OAEP and MGF1.
        hash: HashAlg,
        /// The label (usually empty).
        label: Vec<u8>,
    },
}

/// A public key as the card reports it.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA modulus and public exponent, big-endian without leading zeros.
    Rsa {
        /// Modulus n.
        n: Vec<u8>,
        /// Public exponent e.
        e: Vec<u8>,
    },
    /// An EC point in SEC1 uncompressed form (04 || x || y).
    Ec {
        /// The curve.
        curve: Curve,
        /// The point.
        point: Vec<u8>,
    },
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.algorithm() {
            Ok(alg) => write!(f, "PublicKey({alg})"),
            Err(_) => f.write_str("PublicKey(invalid)"),
        }
    }
}

impl PublicKey {
    /// An RSA key, leading zero bytes of n and e removed.
    pub fn rsa(n: &[u8], e: &[u8]) -> Self {
        let strip = |b: &[u8]| {
            b.iter()
                .position(|&x| x != 0)
                .map_or(Vec::new(), |i| b.get(i..).unwrap_or_default().to_vec())
        };
        PublicKey::Rsa { n: strip(n), e: strip(e) }
    }

    /// The algorithm and size; an RSA modulus that is not a whole number of bytes of a usual
    /// size is still reported with its bit length.
    pub fn algorithm(&self) -> Result<KeyAlgorithm> {
        match self {
            PublicKey::Rsa { n, .. } => {
                let lead = n.first().copied().unwrap_or(0);
                let bits = n.len() * 8 - lead.leading_zeros() as usize;
                let bits = u16::try_from(bits.div_ceil(8) * 8).map_err(|_| CardError::Crypto {
                    operation: "public key",
                    reason: format!("RSA modulus of {bits} bits"),
                })?;
                Ok(KeyAlgorithm::Rsa(bits))
            }
            PublicKey::Ec { curve, .. } => Ok(KeyAlgorithm::Ec(*curve)),
        }
    }

    /// The DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7), checking the key is valid.
    pub fn to_spki_der(&self) -> Result<Vec<u8>> {
        use pkcs8::EncodePublicKey;
        let bad = |reason: String| CardError::Crypto { operation: "public key", reason };
        let doc = match self {
            PublicKey::Rsa { n, e } => rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(n),
                rsa::BigUint::from_bytes_be(e),
            )
            .map_err(|e| bad(e.to_string()))?
            .to_public_key_der(),
            PublicKey::Ec { curve: Curve::P256, point } => p256::PublicKey::from_sec1_bytes(point)
                .map_err(|e| bad(format!("P-256 point: {e}")))?
                .to_public_key_der(),
            PublicKey::Ec { curve: Curve::P384, point } => p384::PublicKey::from_sec1_bytes(point)
                .map_err(|e| bad(format!("P-384 point: {e}")))?
                .to_public_key_der(),
            PublicKey::Ec { curve: Curve::P521, .. } => {
                return Err(bad("P-521 keys cannot be encoded here".to_owned()));
            }
        };
        doc.map(|d| d.as_bytes().to_vec()).map_err(|e| bad(e.to_string()))
    }

    /// PEM "PUBLIC KEY" text of [`PublicKey::to_spki_der`].
    pub fn to_pem(&self) -> Result<String> {
        let der = self.to_spki_der()?;
        pem_encode("PUBLIC KEY", &der)
    }

    /// Parses a DER SubjectPublicKeyInfo (RSA, P-256, P-384).
    pub fn from_spki_der(der: &[u8]) -> Result<Self> {
        use pkcs8::DecodePublicKey;
        use rsa::traits::PublicKeyParts;
        if let Ok(k) = rsa::RsaPublicKey::from_public_key_der(der) {
            return Ok(PublicKey::rsa(&k.n().to_bytes_be(), &k.e().to_bytes_be()));
        }
        if let Ok(k) = p256::PublicKey::from_public_key_der(der) {
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            return Ok(PublicKey::Ec {
                curve: Curve::P256,
                point: k.to_encoded_point(false).as_bytes().to_vec(),
            });
        }
        if let Ok(k) = p384::PublicKey::from_public_key_der(der) {
            use p384::elliptic_curve::sec1::ToEncodedPoint;
            return Ok(PublicKey::Ec {
                curve: Curve::P384,
                point: k.to_encoded_point(false).as_bytes().to_vec(),
            });
        }
        Err(CardError::InvalidInput {
            what: "public key",
            reason: "not a DER SubjectPublicKeyInfo of an RSA, P-256 or P-384 key".to_owned(),
        })
    }

    /// Parses PEM ("PUBLIC KEY") or DER SubjectPublicKeyInfo.
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<Self> {
        match pem_decode(bytes, "PUBLIC KEY")? {
            Some(der) => Self::from_spki_der(&der),
            None => Self::from_spki_der(bytes),
        }
    }
}

/// PEM text of DER bytes (RFC 7468 §2), lines of 64 characters.
pub fn pem_encode(label: &str, der: &[u8]) -> Result<String> {
    use der::pem::LineEnding;
    der::pem::encode_string(label, LineEnding::LF, der)
        .map_err(|e| CardError::Crypto { operation: "PEM encoding", reason: e.to_string() })
}

/// The DER inside PEM text with `label`, `None` if `bytes` is not PEM text at all.
pub fn pem_decode(bytes: &[u8], label: &str) -> Result<Option<Vec<u8>>> {
    let Ok(text) = std::str::from_utf8(bytes) else { return Ok(None) };
    if !text.trim_start().starts_with("-----BEGIN") {
        return Ok(None);
    }
    let (found, der) = der::pem::decode_vec(text.trim().as_bytes())
        .map_err(|e| CardError::InvalidInput { what: "PEM", reason: e.to_string() })?;
    if found != label {
        return Err(CardError::InvalidInput {
            what: "PEM",
            reason: format!("label {found:?}, expected {label:?}"),
        });
    }
    Ok(Some(der))
}

/// One key container (Minidriver v7 §5.2: `CONTAINER_INFO` plus the cmapfile record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// The index: stable per family (PIV 0 = 9A, 1 = 9C, 2 = 9D, 3 = 9E, 4.. = 82..;
    /// OpenPGP 0 signature, 1 decryption, 2 authentication).
    pub index: u8,
    /// The card's key reference (PIV slot, OpenPGP key number, GIDS key FID low byte).
    pub key_ref: u8,
    /// Container name (the cmapfile's GUID string, or a synthesized one); empty for a
    /// container without a key.
    pub name: String,
    /// A human label ("PIV AUTHENTICATION 9A", "OpenPGP signature key").
    pub label: String,
    /// The default container of the card.
    pub default: bool,
    /// The key spec, when the container holds a key.
    pub key_spec: Option<KeySpec>,
    /// The algorithm, when known.
    pub algorithm: Option<KeyAlgorithm>,
    /// The public key, when the card lets us read it.
    pub public_key: Option<PublicKey>,
    /// Whether a certificate is stored for the container.
    pub has_certificate: bool,
    /// The key needs its PIN right before every use (PIV 9C).
    pub always_authenticate: bool,
    /// The PIN that unlocks the key.
    pub pin: PinId,
}

impl ContainerInfo {
    /// Whether the container holds a key.
    pub fn has_key(&self) -> bool {
        self.key_spec.is_some()
    }
}

/// Sizes of keys a card takes for a key spec (Minidriver v7 `CARD_KEY_SIZES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySizes {
    /// Smallest size in bits.
    pub min: u16,
    /// Default size.
    pub default: u16,
    /// Largest.
    pub max: u16,
    /// Step between sizes.
    pub increment: u16,
}

/// What identifies a card and what its model says it can do, without reading its containers
/// (what a host needs when a card is inserted; [`CardProperties`] adds the free containers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardIdentity {
    /// The family ("piv", "openpgp", "gids").
    pub family: String,
    /// The card model's display name.
    pub model: String,
    /// 16-byte card identity (the `cardid` file).
    pub card_id: [u8; 16],
    /// The serial number as the card states it (hex or text).
    pub serial: String,
    /// On-card key generation.
    pub key_generation: bool,
    /// Algorithms the card (and its model) take.
    pub algorithms: Vec<KeyAlgorithm>,
    /// Number of containers.
    pub max_containers: usize,
    /// Read-only card.
    pub read_only: bool,
}

impl From<CardProperties> for CardIdentity {
    fn from(p: CardProperties) -> Self {
        Self {
            family: p.family,
            model: p.model,
            card_id: p.card_id,
            serial: p.serial,
            key_generation: p.key_generation,
            algorithms: p.algorithms,
            max_containers: p.max_containers,
            read_only: p.read_only,
        }
    }
}

/// What a card can do (Minidriver v7 `CARD_CAPABILITIES` plus the free-space properties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardProperties {
    /// The family ("piv", "openpgp", "gids").
    pub family: String,
    /// The card model's display name.
    pub model: String,
    /// 16-byte card identity (the `cardid` file).
    pub card_id: [u8; 16],
    /// The serial number as the card states it (hex or text).
    pub serial: String,
    /// On-card key generation.
    pub key_generation: bool,
    /// kxc/ksc files compressed (Minidriver v7 §6.3.1).
    pub certificate_compression: bool,
    /// Algorithms the card (and its model) take.
    pub algorithms: Vec<KeyAlgorithm>,
    /// Number of containers.
    pub max_containers: usize,
    /// Containers without a key.
    pub free_containers: usize,
    /// Read-only card.
    pub read_only: bool,
}
