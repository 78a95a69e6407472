//! PKCS#11 objects over the key storage provider's keys: a certificate, a public key and a
//! private key per container (PKCS#11 3.0 §4.6 certificates, §4.8 public keys, §4.9 private
//! keys), tied by `CKA_ID` = container index + 1; and the secret keys `C_DeriveKey` makes
//! (session objects, §4.10). Attribute values are computed from the [`KeyInfo`], never
//! stored twice; templates are lists of (type, bytes).

use std::sync::Arc;

use cryptoki_sys::*;
use der::Encode;
use scard_ksp::{KeyInfo, KeyUsage};
use scard_minidriver::{CachePolicy, Curve, KeyAlgorithm, PublicKey};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::mechanisms;

/// What a template says: attribute types and their values as the application gave them.
pub(crate) type Template = Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>;

/// A CK_ULONG attribute value (native byte order, as the C struct holds it).
pub(crate) fn ulong(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

/// A CK_BBOOL attribute value.
pub(crate) fn bool_value(v: bool) -> Vec<u8> {
    vec![if v { CK_TRUE } else { CK_FALSE }]
}

/// The value of a template attribute, if present.
pub(crate) fn find(t: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)], ty: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
    t.iter().find(|(a, _)| *a == ty).map(|(_, v)| v.as_slice())
}

/// A CK_ULONG template attribute (`CKR_ATTRIBUTE_VALUE_INVALID` when it is not one).
pub(crate) fn find_ulong(
    t: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ty: CK_ATTRIBUTE_TYPE,
) -> Result<Option<CK_ULONG>> {
    match find(t, ty) {
        None => Ok(None),
        Some(v) => {
            let bytes: [u8; std::mem::size_of::<CK_ULONG>()] =
                v.try_into().map_err(|_| Error::AttributeValueInvalid(ty))?;
            Ok(Some(CK_ULONG::from_ne_bytes(bytes)))
        }
    }
}

/// A CK_BBOOL template attribute.
pub(crate) fn find_bool(
    t: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ty: CK_ATTRIBUTE_TYPE,
) -> Result<Option<bool>> {
    match find(t, ty) {
        None => Ok(None),
        Some([b]) => Ok(Some(*b != CK_FALSE)),
        Some(_) => Err(Error::AttributeValueInvalid(ty)),
    }
}

/// One attribute of an object, as `C_GetAttributeValue` reports it (PKCS#11 3.0 §5.7.5).
#[derive(Debug)]
pub(crate) enum AttrValue {
    /// The value (zeroized when dropped: a derived key's `CKA_VALUE` is a secret).
    Value(Zeroizing<Vec<u8>>),
    /// The attribute exists but may not be revealed (`CKR_ATTRIBUTE_SENSITIVE`).
    Sensitive,
    /// The object has no such attribute (`CKR_ATTRIBUTE_TYPE_INVALID`).
    Invalid,
}

impl AttrValue {
    fn of(bytes: Vec<u8>) -> Self {
        AttrValue::Value(Zeroizing::new(bytes))
    }
}

/// What the module keeps of a container's key (from the provider's [`KeyInfo`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    /// The provider's name of the key (`\\.\<reader>\<container>`).
    pub(crate) name: String,
    /// The container index.
    pub(crate) container: u8,
    /// Algorithm and size.
    pub(crate) algorithm: KeyAlgorithm,
    /// The public key, when known.
    pub(crate) public_key: Option<PublicKey>,
    /// The certificate (DER), when the container has one.
    pub(crate) certificate: Option<Vec<u8>>,
    /// The certificate's fields, decoded once (`None` without a certificate, or when it does
    /// not decode).
    cert_fields: Option<CertFields>,
    /// The container's label.
    pub(crate) label: String,
    /// What the key may do.
    pub(crate) usage: KeyUsage,
    /// The key needs its PIN right before every use (`CKA_ALWAYS_AUTHENTICATE`).
    pub(crate) always_authenticate: bool,
}

impl From<&KeyInfo> for Key {
    fn from(k: &KeyInfo) -> Self {
        Self {
            name: k.name.clone(),
            container: k.container_index,
            algorithm: k.algorithm,
            public_key: k.public_key.clone(),
            certificate: k.certificate.clone(),
            cert_fields: k.certificate.as_deref().and_then(cert_fields),
            label: k.label.clone(),
            usage: k.usage,
            // PIV 9C, and OpenPGP's signature key when PW1 is valid for one signature.
            always_authenticate: k.always_authenticate
                || k.cache_policy == CachePolicy::AlwaysPrompt,
        }
    }
}

/// What identifies a token object across listings: container, class, and the bytes that make
/// it (certificate or public key).
pub(crate) type Identity = (u8, TokenClass, Vec<u8>);

/// A public key's bytes, one string per key (kind, curve, lengths and values): what tells two
/// keys apart in an [`Identity`], without encoding a SubjectPublicKeyInfo.
pub(crate) fn key_bytes(key: &PublicKey) -> Vec<u8> {
    match key {
        PublicKey::Rsa { n, e } => {
            let mut out = Vec::with_capacity(n.len() + e.len() + 5);
            out.push(b'R');
            out.extend_from_slice(&(n.len() as u32).to_be_bytes());
            out.extend_from_slice(n);
            out.extend_from_slice(e);
            out
        }
        PublicKey::Ec { curve, point } => {
            let mut out = format!("E{curve:?}:").into_bytes();
            out.extend_from_slice(point);
            out
        }
    }
}

/// The three objects of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum TokenClass {
    /// `CKO_CERTIFICATE` (when the container has one).
    Certificate,
    /// `CKO_PUBLIC_KEY` (when the public key is known).
    PublicKey,
    /// `CKO_PRIVATE_KEY`.
    PrivateKey,
}

/// An object on the card: one side of a container's key, or its certificate.
#[derive(Debug, Clone)]
pub(crate) struct TokenObject {
    /// Which object of the container.
    pub(crate) class: TokenClass,
    /// The key (shared by the container's objects).
    pub(crate) key: Arc<Key>,
}

/// A secret key made by `C_DeriveKey` (a session object: it lives in the module's memory
/// until its session closes, zeroized then).
#[derive(Debug)]
pub(crate) struct SessionKey {
    /// The key's value.
    pub(crate) value: Zeroizing<Vec<u8>>,
    /// `CKA_KEY_TYPE` (`CKK_GENERIC_SECRET` unless the template said otherwise).
    pub(crate) key_type: CK_KEY_TYPE,
    /// `CKA_SENSITIVE`.
    pub(crate) sensitive: bool,
    /// `CKA_EXTRACTABLE`.
    pub(crate) extractable: bool,
    /// `CKA_PRIVATE`.
    pub(crate) private: bool,
    /// `CKA_LABEL`.
    pub(crate) label: Vec<u8>,
    /// `CKA_ID`.
    pub(crate) id: Vec<u8>,
    /// The usage flags the template set (`CKA_ENCRYPT`, `CKA_DECRYPT`, ...).
    pub(crate) usage: Vec<(CK_ATTRIBUTE_TYPE, bool)>,
    /// `CKA_ALLOWED_MECHANISMS` as the template gave it.
    pub(crate) allowed: Option<Vec<u8>>,
}

/// The usage attributes a derived key may carry, all false unless the template sets them.
pub(crate) const SECRET_USAGE: [CK_ATTRIBUTE_TYPE; 8] =
    [CKA_ENCRYPT, CKA_DECRYPT, CKA_SIGN, CKA_VERIFY, CKA_WRAP, CKA_UNWRAP, CKA_DERIVE, CKA_TRUSTED];

/// The DER OID of a curve, `CKA_EC_PARAMS` (RFC 5480 §2.1.1.1: namedCurve).
pub(crate) fn ec_params(curve: Curve) -> &'static [u8] {
    match curve {
        // 1.2.840.10045.3.1.7 secp256r1
        Curve::P256 => &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07],
        // 1.3.132.0.34 secp384r1
        Curve::P384 => &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22],
        // 1.3.132.0.35 secp521r1
        Curve::P521 => &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x23],
    }
}

/// The curve of a `CKA_EC_PARAMS` value (a namedCurve OID).
pub(crate) fn curve_of_params(params: &[u8]) -> Option<Curve> {
    [Curve::P256, Curve::P384, Curve::P521].into_iter().find(|c| ec_params(*c) == params)
}

/// `CKA_EC_POINT`: the DER OCTET STRING of the uncompressed point (PKCS#11 3.0 §2.3.3).
pub(crate) fn ec_point_der(point: &[u8]) -> Option<Vec<u8>> {
    der::asn1::OctetStringRef::new(point).ok()?.to_der().ok()
}

/// The fields of a DER X.509 certificate that PKCS#11 lists (RFC 5280 §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
struct CertFields {
    subject: Vec<u8>,
    issuer: Vec<u8>,
    serial: Vec<u8>,
    spki: Vec<u8>,
}

/// The DER of the fields PKCS#11 shows of a certificate, as they stand in it (RFC 5280
/// §4.1: Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue };
/// TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
/// validity, subject, subjectPublicKeyInfo, ... }). Each element's tag and length are checked
/// and nothing in them is decoded: the attributes are these bytes, and a full decode of the
/// certificate cost ten times the walk. `None` for anything else.
fn cert_fields(der: &[u8]) -> Option<CertFields> {
    use der::{Reader, SliceReader, Tag, TagNumber};
    fn element<'r>(r: &mut impl Reader<'r>, tag: Tag) -> der::Result<&'r [u8]> {
        r.peek_tag()?.assert_eq(tag)?;
        r.tlv_bytes()
    }
    fn rest<'r>(r: &mut impl Reader<'r>) -> der::Result<()> {
        let len = r.remaining_len();
        r.read_slice(len).map(|_| ())
    }
    let mut reader = SliceReader::new(der).ok()?;
    let fields = reader
        .sequence(|cert| {
            let fields = cert.sequence(|tbs| {
                let version = Tag::ContextSpecific { constructed: true, number: TagNumber::N0 };
                if tbs.peek_tag()? == version {
                    tbs.tlv_bytes()?;
                }
                let serial = element(tbs, Tag::Integer)?;
                element(tbs, Tag::Sequence)?; // signature (AlgorithmIdentifier)
                let issuer = element(tbs, Tag::Sequence)?;
                element(tbs, Tag::Sequence)?; // validity
                let subject = element(tbs, Tag::Sequence)?;
                let spki = element(tbs, Tag::Sequence)?;
                rest(tbs)?; // unique ids, extensions
                Ok(CertFields {
                    subject: subject.to_vec(),
                    issuer: issuer.to_vec(),
                    serial: serial.to_vec(),
                    spki: spki.to_vec(),
                })
            })?;
            element(cert, Tag::Sequence)?; // signatureAlgorithm
            element(cert, Tag::BitString)?; // signatureValue
            Ok(fields)
        })
        .ok()?;
    reader.finish(fields).ok()
}

/// `CKA_KEY_TYPE` of an algorithm.
pub(crate) fn key_type(algorithm: KeyAlgorithm) -> CK_KEY_TYPE {
    match algorithm {
        KeyAlgorithm::Rsa(_) => CKK_RSA,
        KeyAlgorithm::Ec(_) => CKK_EC,
    }
}

/// `CKA_ID` of a container: its index + 1, one byte (PIV 01 = 9A, 02 = 9C, 03 = 9D, 04 = 9E;
/// OpenPGP 01 signature, 02 decryption, 03 authentication), as OpenSC numbers them.
pub(crate) fn id_of(index: u8) -> Vec<u8> {
    vec![index.wrapping_add(1)]
}

/// The container a `CKA_ID` names (one byte, 1..=255).
pub(crate) fn container_of_id(id: &[u8]) -> Option<u8> {
    match id {
        [n] if *n > 0 => Some(n - 1),
        _ => None,
    }
}

impl TokenObject {
    /// `CKA_CLASS`.
    pub(crate) fn class_value(&self) -> CK_OBJECT_CLASS {
        match self.class {
            TokenClass::Certificate => CKO_CERTIFICATE,
            TokenClass::PublicKey => CKO_PUBLIC_KEY,
            TokenClass::PrivateKey => CKO_PRIVATE_KEY,
        }
    }

    /// Whether only a logged-in user may see the object (`CKA_PRIVATE`).
    pub(crate) fn private(&self) -> bool {
        self.class == TokenClass::PrivateKey
    }

    /// What identifies the object across listings of the card: the container, the class and
    /// the bytes that make it (a new key or certificate in the same container is a new object).
    pub(crate) fn identity(&self) -> Identity {
        let content = match self.class {
            TokenClass::Certificate => self.key.certificate.clone().unwrap_or_default(),
            _ => self.key.public_key.as_ref().map(key_bytes).unwrap_or_default(),
        };
        (self.key.container, self.class, content)
    }

    /// An approximate size in bytes (`C_GetObjectSize`).
    pub(crate) fn size(&self) -> usize {
        match self.class {
            TokenClass::Certificate => self.key.certificate.as_ref().map_or(0, Vec::len),
            _ => self
                .key
                .public_key
                .as_ref()
                .and_then(|k| k.to_spki_der().ok())
                .map_or(0, |d| d.len()),
        }
    }

    /// One attribute.
    pub(crate) fn attribute(&self, ty: CK_ATTRIBUTE_TYPE) -> AttrValue {
        let key = self.key.as_ref();
        // §4.4 storage objects, common to the three.
        match ty {
            CKA_CLASS => return AttrValue::of(ulong(self.class_value())),
            CKA_TOKEN => return AttrValue::of(bool_value(true)),
            CKA_PRIVATE => return AttrValue::of(bool_value(self.private())),
            CKA_MODIFIABLE | CKA_COPYABLE => return AttrValue::of(bool_value(false)),
            CKA_DESTROYABLE => return AttrValue::of(bool_value(true)),
            CKA_LABEL => return AttrValue::of(key.label.as_bytes().to_vec()),
            CKA_ID => return AttrValue::of(id_of(key.container)),
            _ => {}
        }
        match self.class {
            TokenClass::Certificate => self.certificate_attribute(ty),
            TokenClass::PublicKey | TokenClass::PrivateKey => self.key_attribute(ty),
        }
    }

    fn certificate_attribute(&self, ty: CK_ATTRIBUTE_TYPE) -> AttrValue {
        let Some(der) = self.key.certificate.as_deref() else { return AttrValue::Invalid };
        let fields = &self.key.cert_fields;
        let field = |f: fn(&CertFields) -> &Vec<u8>| match fields {
            Some(c) => AttrValue::of(f(c).clone()),
            None => AttrValue::of(Vec::new()),
        };
        match ty {
            CKA_CERTIFICATE_TYPE => AttrValue::of(ulong(CKC_X_509)),
            CKA_TRUSTED => AttrValue::of(bool_value(false)),
            CKA_CERTIFICATE_CATEGORY => AttrValue::of(ulong(CK_CERTIFICATE_CATEGORY_TOKEN_USER)),
            // §4.6.3: the first three bytes of the SHA-1 of the value.
            CKA_CHECK_VALUE => {
                use sha1::Digest;
                AttrValue::of(sha1::Sha1::digest(der).get(..3).unwrap_or_default().to_vec())
            }
            CKA_START_DATE
            | CKA_END_DATE
            | CKA_URL
            | CKA_HASH_OF_SUBJECT_PUBLIC_KEY
            | CKA_HASH_OF_ISSUER_PUBLIC_KEY => AttrValue::of(Vec::new()),
            CKA_JAVA_MIDP_SECURITY_DOMAIN => AttrValue::of(ulong(CK_SECURITY_DOMAIN_UNSPECIFIED)),
            CKA_NAME_HASH_ALGORITHM => AttrValue::of(ulong(CKM_SHA_1)),
            CKA_PUBLIC_KEY_INFO => field(|c| &c.spki),
            CKA_SUBJECT => field(|c| &c.subject),
            CKA_ISSUER => field(|c| &c.issuer),
            CKA_SERIAL_NUMBER => field(|c| &c.serial),
            CKA_VALUE => AttrValue::of(der.to_vec()),
            _ => AttrValue::Invalid,
        }
    }

    fn key_attribute(&self, ty: CK_ATTRIBUTE_TYPE) -> AttrValue {
        let key = self.key.as_ref();
        let private = self.class == TokenClass::PrivateKey;
        let subject = || key.cert_fields.as_ref().map(|c| c.subject.clone()).unwrap_or_default();
        // §4.7 keys, common to both sides.
        match ty {
            CKA_KEY_TYPE => return AttrValue::of(ulong(key_type(key.algorithm))),
            CKA_START_DATE | CKA_END_DATE => return AttrValue::of(Vec::new()),
            CKA_DERIVE => return AttrValue::of(bool_value(key.usage.agree)),
            // Whether the card generated the key cannot be told for keys found on it.
            CKA_LOCAL => return AttrValue::of(bool_value(false)),
            CKA_KEY_GEN_MECHANISM => return AttrValue::of(ulong(CK_UNAVAILABLE_INFORMATION)),
            CKA_ALLOWED_MECHANISMS => {
                let mut out = Vec::new();
                for m in mechanisms::allowed(key) {
                    out.extend_from_slice(&m.to_ne_bytes());
                }
                return AttrValue::of(out);
            }
            CKA_SUBJECT => return AttrValue::of(subject()),
            CKA_PUBLIC_KEY_INFO => {
                return match key.public_key.as_ref().and_then(|k| k.to_spki_der().ok()) {
                    Some(spki) => AttrValue::of(spki),
                    None => AttrValue::of(Vec::new()),
                };
            }
            _ => {}
        }
        if private {
            // §4.9 private keys: never extractable, always sensitive.
            match ty {
                CKA_SENSITIVE | CKA_ALWAYS_SENSITIVE | CKA_NEVER_EXTRACTABLE => {
                    return AttrValue::of(bool_value(true));
                }
                CKA_EXTRACTABLE | CKA_SIGN_RECOVER | CKA_UNWRAP | CKA_WRAP_WITH_TRUSTED => {
                    return AttrValue::of(bool_value(false));
                }
                CKA_SIGN => return AttrValue::of(bool_value(key.usage.sign)),
                CKA_DECRYPT => return AttrValue::of(bool_value(key.usage.decrypt)),
                CKA_ALWAYS_AUTHENTICATE => {
                    return AttrValue::of(bool_value(key.always_authenticate));
                }
                _ => {}
            }
        } else {
            // §4.8 public keys.
            match ty {
                CKA_ENCRYPT => return AttrValue::of(bool_value(key.usage.decrypt)),
                CKA_VERIFY => return AttrValue::of(bool_value(key.usage.sign)),
                CKA_VERIFY_RECOVER | CKA_WRAP | CKA_TRUSTED => {
                    return AttrValue::of(bool_value(false));
                }
                _ => {}
            }
        }
        match (&key.public_key, key.algorithm) {
            (Some(PublicKey::Rsa { n, e }), _) => match ty {
                CKA_MODULUS => AttrValue::of(n.clone()),
                CKA_PUBLIC_EXPONENT => AttrValue::of(e.clone()),
                CKA_MODULUS_BITS if !private => {
                    AttrValue::of(ulong(CK_ULONG::from(key.algorithm.bits())))
                }
                CKA_PRIVATE_EXPONENT | CKA_PRIME_1 | CKA_PRIME_2 | CKA_EXPONENT_1
                | CKA_EXPONENT_2 | CKA_COEFFICIENT
                    if private =>
                {
                    AttrValue::Sensitive
                }
                _ => AttrValue::Invalid,
            },
            (Some(PublicKey::Ec { curve, point }), _) => match ty {
                CKA_EC_PARAMS => AttrValue::of(ec_params(*curve).to_vec()),
                CKA_EC_POINT if !private => match ec_point_der(point) {
                    Some(der) => AttrValue::of(der),
                    None => AttrValue::Invalid,
                },
                CKA_VALUE if private => AttrValue::Sensitive,
                _ => AttrValue::Invalid,
            },
            // The public key is not known: only what the algorithm says.
            (None, KeyAlgorithm::Ec(curve)) => match ty {
                CKA_EC_PARAMS => AttrValue::of(ec_params(curve).to_vec()),
                CKA_VALUE if private => AttrValue::Sensitive,
                _ => AttrValue::Invalid,
            },
            (None, KeyAlgorithm::Rsa(bits)) => match ty {
                CKA_MODULUS_BITS if !private => AttrValue::of(ulong(CK_ULONG::from(bits))),
                CKA_PRIVATE_EXPONENT | CKA_PRIME_1 | CKA_PRIME_2 | CKA_EXPONENT_1
                | CKA_EXPONENT_2 | CKA_COEFFICIENT
                    if private =>
                {
                    AttrValue::Sensitive
                }
                _ => AttrValue::Invalid,
            },
        }
    }
}

impl SessionKey {
    /// One attribute (§4.10 secret keys).
    pub(crate) fn attribute(&self, ty: CK_ATTRIBUTE_TYPE) -> AttrValue {
        match ty {
            CKA_CLASS => AttrValue::of(ulong(CKO_SECRET_KEY)),
            CKA_TOKEN
            | CKA_MODIFIABLE
            | CKA_COPYABLE
            | CKA_LOCAL
            | CKA_ALWAYS_SENSITIVE
            | CKA_NEVER_EXTRACTABLE
            | CKA_WRAP_WITH_TRUSTED => AttrValue::of(bool_value(false)),
            CKA_DESTROYABLE => AttrValue::of(bool_value(true)),
            CKA_PRIVATE => AttrValue::of(bool_value(self.private)),
            CKA_LABEL => AttrValue::of(self.label.clone()),
            CKA_ID => AttrValue::of(self.id.clone()),
            CKA_KEY_TYPE => AttrValue::of(ulong(self.key_type)),
            CKA_START_DATE | CKA_END_DATE => AttrValue::of(Vec::new()),
            CKA_KEY_GEN_MECHANISM => AttrValue::of(ulong(CK_UNAVAILABLE_INFORMATION)),
            CKA_ALLOWED_MECHANISMS => AttrValue::of(self.allowed.clone().unwrap_or_default()),
            CKA_SENSITIVE => AttrValue::of(bool_value(self.sensitive)),
            CKA_EXTRACTABLE => AttrValue::of(bool_value(self.extractable)),
            CKA_VALUE_LEN => AttrValue::of(ulong(self.value.len() as CK_ULONG)),
            // §4.10: the value only leaves the module when the key is neither sensitive
            // nor unextractable.
            CKA_VALUE if self.sensitive || !self.extractable => AttrValue::Sensitive,
            CKA_VALUE => AttrValue::Value(self.value.clone()),
            t if SECRET_USAGE.contains(&t) => AttrValue::of(bool_value(
                self.usage.iter().find(|(a, _)| *a == t).is_some_and(|(_, v)| *v),
            )),
            _ => AttrValue::Invalid,
        }
    }
}

/// Whether an object with attributes `attr` matches a search template: every template
/// attribute must be one the object has, readable, with exactly that value (an attribute the
/// object does not have is no match, not an error).
pub(crate) fn matches(
    template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    attr: impl Fn(CK_ATTRIBUTE_TYPE) -> AttrValue,
) -> bool {
    template.iter().all(|(ty, want)| match attr(*ty) {
        AttrValue::Value(have) => have.as_slice() == want.as_slice(),
        AttrValue::Sensitive | AttrValue::Invalid => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use scard_minidriver::KeySpec;

    fn key(public_key: PublicKey, algorithm: KeyAlgorithm) -> Arc<Key> {
        let spec = match algorithm {
            KeyAlgorithm::Rsa(_) => KeySpec::Exchange,
            KeyAlgorithm::Ec(c) => KeySpec::Ecdsa(c),
        };
        Arc::new(Key {
            name: "\\\\.\\sim:piv\\{X}".into(),
            container: 2,
            algorithm,
            public_key: Some(public_key),
            certificate: None,
            cert_fields: None,
            label: "Key Management (9D)".into(),
            usage: KeyUsage::of(spec),
            always_authenticate: false,
        })
    }

    /// The walk gives what a full decode of the certificate gives, on every certificate
    /// x509-cert decodes: the fixtures of scard-certs and the fuzz corpus of certificates
    /// (which holds broken ones too: those must not panic, whatever the walk says).
    #[test]
    fn certificate_fields_agree_with_a_full_decode() {
        use der::Decode;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut decoded = 0;
        for dir in ["crates/scard-certs/tests/fixtures", "fuzz/corpus/cert_eligibility"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "pem") {
                    continue;
                }
                let der = std::fs::read(&path).unwrap();
                let walked = cert_fields(&der);
                let Ok(cert) = x509_cert::Certificate::from_der(&der) else { continue };
                let tbs = &cert.tbs_certificate;
                let fields = walked.unwrap_or_else(|| panic!("{}: not walked", path.display()));
                assert_eq!(fields.subject, tbs.subject.to_der().unwrap(), "{}", path.display());
                assert_eq!(fields.issuer, tbs.issuer.to_der().unwrap(), "{}", path.display());
                assert_eq!(
                    fields.serial,
                    tbs.serial_number.to_der().unwrap(),
                    "{}",
                    path.display()
                );
                assert_eq!(
                    fields.spki,
                    tbs.subject_public_key_info.to_der().unwrap(),
                    "{}",
                    path.display()
                );
                decoded += 1;
            }
        }
        assert!(decoded >= 10, "only {decoded} certificates decoded");
        // Not a certificate: a SEQUENCE of the wrong things, trailing bytes, truncation.
        assert!(cert_fields(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_none());
        let good = std::fs::read(root.join("crates/scard-certs/tests/fixtures/ca.der")).unwrap();
        assert!(cert_fields(&good).is_some());
        assert!(cert_fields(&[good.as_slice(), &[0]].concat()).is_none());
        assert!(cert_fields(&good[..good.len() - 1]).is_none());
    }

    fn value(v: AttrValue) -> Vec<u8> {
        match v {
            AttrValue::Value(v) => v.to_vec(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ec_attributes_are_der() {
        let point = {
            let mut p = vec![0x04];
            p.extend_from_slice(&[0x11; 64]);
            p
        };
        let k = key(
            PublicKey::Ec { curve: Curve::P256, point: point.clone() },
            KeyAlgorithm::Ec(Curve::P256),
        );
        let public = TokenObject { class: TokenClass::PublicKey, key: Arc::clone(&k) };
        let private = TokenObject { class: TokenClass::PrivateKey, key: k };
        // RFC 5480: secp256r1.
        assert_eq!(value(public.attribute(CKA_EC_PARAMS)), hex("06082A8648CE3D030107"));
        let der = value(public.attribute(CKA_EC_POINT));
        assert_eq!(&der[..2], &[0x04, 0x41]);
        assert_eq!(&der[2..], point.as_slice());
        assert_eq!(value(public.attribute(CKA_ID)), vec![3]);
        assert_eq!(value(private.attribute(CKA_SENSITIVE)), vec![CK_TRUE]);
        assert_eq!(value(private.attribute(CKA_EXTRACTABLE)), vec![CK_FALSE]);
        assert_eq!(value(private.attribute(CKA_PRIVATE)), vec![CK_TRUE]);
        assert_eq!(value(public.attribute(CKA_PRIVATE)), vec![CK_FALSE]);
        assert!(matches!(private.attribute(CKA_VALUE), AttrValue::Sensitive));
        assert!(matches!(private.attribute(CKA_EC_POINT), AttrValue::Invalid));
        assert!(matches!(public.attribute(CKA_MODULUS), AttrValue::Invalid));
        assert_eq!(curve_of_params(&hex("06052B81040022")), Some(Curve::P384));
        assert_eq!(curve_of_params(&hex("0605")), None);
    }

    #[test]
    fn templates_match_by_bytes_and_unknown_attributes_do_not_match() {
        let k = key(PublicKey::rsa(&[0xC1; 256], &[1, 0, 1]), KeyAlgorithm::Rsa(2048));
        let private = TokenObject { class: TokenClass::PrivateKey, key: k };
        let attr = |t| private.attribute(t);
        assert!(matches(&[(CKA_CLASS, ulong(CKO_PRIVATE_KEY)), (CKA_ID, vec![3])], attr));
        assert!(!matches(&[(CKA_CLASS, ulong(CKO_PUBLIC_KEY))], attr));
        assert!(!matches(&[(CKA_ID, vec![3, 0])], attr));
        assert!(!matches(&[(CKA_EC_POINT, vec![4])], attr), "an attribute the key lacks");
        assert!(!matches(&[(CKA_PRIVATE_EXPONENT, vec![1])], attr), "a sensitive attribute");
        assert!(matches(&[], attr));
        assert!(matches!(private.attribute(CKA_PRIME_1), AttrValue::Sensitive));
        assert_eq!(value(private.attribute(CKA_PUBLIC_EXPONENT)), vec![1, 0, 1]);
    }

    #[test]
    fn ids_name_containers() {
        assert_eq!(id_of(0), vec![1]);
        assert_eq!(container_of_id(&[1]), Some(0));
        assert_eq!(container_of_id(&[4]), Some(3));
        assert_eq!(container_of_id(&[0]), None);
        assert_eq!(container_of_id(&[1, 2]), None);
        assert_eq!(container_of_id(&[]), None);
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }
}
