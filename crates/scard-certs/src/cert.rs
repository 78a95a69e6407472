//! A certificate as logon sees it: strict DER parsing (RFC 5280 §4.1 with the DER rules of
//! X.690), the subject key, and the extensions logon reads, all decoded while parsing so a
//! certificate that is built at all is fully understood.

use std::fmt::{self, Write as _};

use der::asn1::{
    Any, BmpString, Ia5StringRef, ObjectIdentifier as Oid, OctetStringRef, PrintableStringRef,
    UintRef, Utf8StringRef,
};
use der::{Decode, Encode, Sequence, Tag, Tagged};
use sha1::{Digest, Sha1};
use x509_cert::Certificate;
use x509_cert::certificate::Version;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAltName};
use x509_cert::name::Name;
use x509_cert::spki::SubjectPublicKeyInfoOwned;

use crate::{CertError, Timestamp, oid};

/// A parsed certificate. Built only by [`LogonCert::from_der`]: holding one means the bytes
/// were a strict DER certificate and every extension logon reads decoded.
#[derive(Clone, PartialEq, Eq)]
pub struct LogonCert {
    der: Vec<u8>,
    version: u8,
    serial: Vec<u8>,
    subject: Name,
    issuer: Name,
    not_before: Timestamp,
    not_after: Timestamp,
    key: KeyKind,
    key_usage: Option<KeyUsage>,
    eku: Option<Vec<Oid>>,
    upns: Vec<SanUpn>,
    emails: Vec<String>,
    basic_constraints: Option<BasicConstraints>,
    template: Option<Template>,
    template_name: Option<String>,
    sid: Option<String>,
    extensions: Vec<ExtensionInfo>,
    thumbprint: [u8; 20],
}

impl fmt::Debug for LogonCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogonCert")
            .field("subject", &self.subject())
            .field("serial", &self.serial_hex())
            .field("key", &self.key)
            .field("sha1", &self.thumbprint_hex())
            .finish_non_exhaustive()
    }
}

/// The subject public key's algorithm (and size or curve).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyKind {
    /// RFC 3279 §2.3.1 rsaEncryption, with the modulus size in bits.
    Rsa {
        /// Modulus bits.
        bits: u32,
    },
    /// RFC 4055 id-RSASSA-PSS (an RSA key restricted to PSS).
    RsaPss {
        /// Modulus bits.
        bits: u32,
    },
    /// RFC 5480 id-ecPublicKey on a curve.
    Ec {
        /// The curve.
        curve: Curve,
    },
    /// RFC 8410 Ed25519.
    Ed25519,
    /// RFC 8410 Ed448.
    Ed448,
    /// RFC 8410 X25519.
    X25519,
    /// RFC 8410 X448.
    X448,
    /// RFC 3279 DSA.
    Dsa,
    /// Anything else.
    Other {
        /// The algorithm OID.
        oid: Oid,
    },
}

impl KeyKind {
    /// The algorithm name used in output (`rsa`, `ec`, `ed25519`, ...; the dotted OID for an
    /// unknown algorithm).
    pub fn alg_name(&self) -> String {
        match self {
            KeyKind::Rsa { .. } => "rsa".into(),
            KeyKind::RsaPss { .. } => "rsa-pss".into(),
            KeyKind::Ec { .. } => "ec".into(),
            KeyKind::Ed25519 => "ed25519".into(),
            KeyKind::Ed448 => "ed448".into(),
            KeyKind::X25519 => "x25519".into(),
            KeyKind::X448 => "x448".into(),
            KeyKind::Dsa => "dsa".into(),
            KeyKind::Other { oid } => oid.to_string(),
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::Rsa { bits } => write!(f, "RSA {bits}"),
            KeyKind::RsaPss { bits } => write!(f, "RSA-PSS {bits}"),
            KeyKind::Ec { curve } => write!(f, "ECC {curve}"),
            KeyKind::Ed25519 => f.write_str("Ed25519"),
            KeyKind::Ed448 => f.write_str("Ed448"),
            KeyKind::X25519 => f.write_str("X25519"),
            KeyKind::X448 => f.write_str("X448"),
            KeyKind::Dsa => f.write_str("DSA"),
            KeyKind::Other { oid } => write!(f, "key algorithm {oid}"),
        }
    }
}

/// An elliptic curve of an id-ecPublicKey key (RFC 5480 §2.1.1 ECParameters).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Curve {
    /// secp256r1.
    P256,
    /// secp384r1.
    P384,
    /// secp521r1.
    P521,
    /// Another named curve; `name` is its SEC 2 or RFC 5639 name when known.
    Named {
        /// The curve OID.
        oid: Oid,
        /// Its name.
        name: Option<&'static str>,
    },
    /// specifiedCurve: explicit parameters (RFC 5480 forbids them in certificates).
    Explicit,
    /// implicitCurve (NULL): inherited parameters (RFC 5480 forbids them in certificates).
    Implicit,
}

impl Curve {
    /// Whether the curve is one logon can take with EnumerateECCCerts=1.
    pub fn is_nist_logon_curve(&self) -> bool {
        matches!(self, Curve::P256 | Curve::P384 | Curve::P521)
    }
}

/// `P-256`, `P-384`, `P-521`, a SEC name such as `secp256k1`, or the dotted OID.
impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Curve::P256 => f.write_str("P-256"),
            Curve::P384 => f.write_str("P-384"),
            Curve::P521 => f.write_str("P-521"),
            Curve::Named { name: Some(name), .. } => f.write_str(name),
            Curve::Named { oid, name: None } => write!(f, "{oid}"),
            Curve::Explicit => f.write_str("explicit parameters"),
            Curve::Implicit => f.write_str("implicitCurve"),
        }
    }
}

/// One subjectAltName otherName of type UPN (MS-WCCE §2.2.2.7.5 szOID_NT_PRINCIPAL_NAME), by
/// how its value is encoded. Only a non-empty UTF8String is a UPN.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SanUpn {
    /// A UTF8String, exactly as stored.
    Utf8(String),
    /// An IA5String (not a UPN for Windows).
    Ia5(String),
    /// Another type.
    Other {
        /// Its tag.
        tag: Tag,
    },
}

/// The certificate template extension (MS-WCCE §2.2.2.7.7.2 szOID_CERTIFICATE_TEMPLATE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// templateID: the template's OID.
    pub oid: Oid,
    /// templateMajorVersion.
    pub major: Option<u32>,
    /// templateMinorVersion.
    pub minor: Option<u32>,
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.oid)?;
        if let Some(major) = self.major {
            write!(f, " major {major}")?;
        }
        if let Some(minor) = self.minor {
            write!(f, " minor {minor}")?;
        }
        Ok(())
    }
}

/// One extension of the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionInfo {
    /// extnID.
    pub oid: Oid,
    /// critical.
    pub critical: bool,
    /// Its name when rule 7 recognises it (RFC 5280 §4.2 and the Microsoft extensions).
    pub name: Option<&'static str>,
}

/// MS-WCCE §2.2.2.7.7.2:
/// `CertificateTemplateOID ::= SEQUENCE { templateID OBJECT IDENTIFIER,
/// templateMajorVersion INTEGER (0..4294967295) OPTIONAL,
/// templateMinorVersion INTEGER (0..4294967295) OPTIONAL }`.
#[derive(Sequence)]
struct TemplateExt {
    template_id: Oid,
    #[asn1(optional = "true")]
    major: Option<u32>,
    #[asn1(optional = "true")]
    minor: Option<u32>,
}

/// RFC 8017 Appendix A.1.1: `RSAPublicKey ::= SEQUENCE { modulus INTEGER,
/// publicExponent INTEGER }` (both positive).
#[derive(Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

impl LogonCert {
    /// Parses one DER certificate (RFC 5280 §4.1). Rejected: PEM text; anything that is not
    /// exactly one DER `Certificate` (truncated, trailing bytes, non-minimal or indefinite
    /// lengths, BER-only encodings such as an explicit DEFAULT value); extensions or unique
    /// ids in a version 1 certificate; a repeated extension; an extension this module reads
    /// (keyUsage, extKeyUsage, subjectAltName, basicConstraints, the certificate template
    /// extensions, the SID extension) that does not decode; a subject key that does not
    /// decode for its algorithm.
    pub fn from_der(data: &[u8]) -> Result<Self, CertError> {
        if looks_like_pem(data) {
            return Err(CertError::Pem);
        }
        // X.690 §10: DER. `from_der` rejects trailing bytes, indefinite lengths and
        // non-minimal lengths; re-encoding catches what it decodes leniently (DEFAULT values
        // encoded explicitly, X.690 §11.5).
        let cert = Certificate::from_der(data)?;
        let again = cert.to_der()?;
        if again != data {
            let offset = again.iter().zip(data).take_while(|(a, b)| a == b).count();
            return Err(CertError::NotCanonical { offset });
        }
        let tbs = &cert.tbs_certificate;
        let version = match tbs.version {
            Version::V1 => 1,
            Version::V2 => 2,
            Version::V3 => 3,
        };
        // RFC 5280 §4.1.2.8: unique identifiers only in version 2 or 3.
        if version == 1 {
            if tbs.issuer_unique_id.is_some() {
                return Err(CertError::FieldNotInVersion { field: "issuerUniqueID", version });
            }
            if tbs.subject_unique_id.is_some() {
                return Err(CertError::FieldNotInVersion { field: "subjectUniqueID", version });
            }
        }
        // RFC 5280 §4.1.2.9: extensions only in version 3.
        if version != 3 && tbs.extensions.is_some() {
            return Err(CertError::FieldNotInVersion { field: "extensions", version });
        }
        let key = key_kind(&tbs.subject_public_key_info)?;
        let mut parsed = LogonCert {
            der: data.to_vec(),
            version,
            serial: tbs.serial_number.as_bytes().to_vec(),
            subject: tbs.subject.clone(),
            issuer: tbs.issuer.clone(),
            not_before: Timestamp::from_duration(tbs.validity.not_before.to_unix_duration()),
            not_after: Timestamp::from_duration(tbs.validity.not_after.to_unix_duration()),
            key,
            key_usage: None,
            eku: None,
            upns: Vec::new(),
            emails: Vec::new(),
            basic_constraints: None,
            template: None,
            template_name: None,
            sid: None,
            extensions: Vec::new(),
            thumbprint: Sha1::digest(data).into(),
        };
        for ext in tbs.extensions.as_deref().unwrap_or_default() {
            // RFC 5280 §4.2: "A certificate MUST NOT include more than one instance of a
            // particular extension."
            if parsed.extensions.iter().any(|e| e.oid == ext.extn_id) {
                return Err(CertError::DuplicateExtension { oid: ext.extn_id });
            }
            parsed.extensions.push(ExtensionInfo {
                oid: ext.extn_id,
                critical: ext.critical,
                name: oid::extension_name(&ext.extn_id),
            });
            parsed.read_extension(ext.extn_id, ext.extn_value.as_bytes())?;
        }
        // RFC 5280 §4.1.2.6 / Appendix A: e-mail addresses may also sit in the subject as
        // PKCS #9 emailAddress (IA5String; UTF8String is taken too).
        for atv in tbs.subject.0.iter().flat_map(|rdn| rdn.0.iter()) {
            if atv.oid == oid::EMAIL_ADDRESS {
                let mail = match atv.value.tag() {
                    Tag::Ia5String => Ia5StringRef::try_from(&atv.value).map(|s| s.to_string()),
                    Tag::Utf8String => Utf8StringRef::try_from(&atv.value).map(|s| s.to_string()),
                    _ => continue,
                };
                if let Ok(mail) = mail {
                    parsed.emails.push(mail);
                }
            }
        }
        Ok(parsed)
    }

    /// Decodes one extension logon reads; the others are only listed.
    fn read_extension(&mut self, id: Oid, value: &[u8]) -> Result<(), CertError> {
        let name = oid::extension_name(&id).unwrap_or("extension");
        let decode_err = |source| CertError::Extension { oid: id, name, source };
        let content_err = |reason| CertError::ExtensionContent { oid: id, name, reason };
        match id {
            // RFC 5280 §4.2.1.3: "at least one of the bits in the KeyUsage type MUST be set".
            oid::KEY_USAGE => {
                let ku = KeyUsage::from_der(value).map_err(decode_err)?;
                if ku.0.is_empty() {
                    return Err(content_err("no bit set (RFC 5280 §4.2.1.3)"));
                }
                self.key_usage = Some(ku);
            }
            // RFC 5280 §4.2.1.12: ExtKeyUsageSyntax ::= SEQUENCE SIZE (1..MAX) OF KeyPurposeId.
            oid::EXT_KEY_USAGE => {
                let eku = ExtendedKeyUsage::from_der(value).map_err(decode_err)?;
                if eku.0.is_empty() {
                    return Err(content_err("empty (RFC 5280 §4.2.1.12 SIZE (1..MAX))"));
                }
                self.eku = Some(eku.0);
            }
            // RFC 5280 §4.2.1.6: GeneralNames ::= SEQUENCE SIZE (1..MAX) OF GeneralName.
            oid::SUBJECT_ALT_NAME => {
                let san = SubjectAltName::from_der(value).map_err(decode_err)?;
                if san.0.is_empty() {
                    return Err(content_err("empty (RFC 5280 §4.2.1.6 SIZE (1..MAX))"));
                }
                for general in &san.0 {
                    match general {
                        GeneralName::OtherName(other)
                            if other.type_id == oid::NT_PRINCIPAL_NAME =>
                        {
                            self.upns.push(san_upn(&other.value).map_err(decode_err)?);
                        }
                        GeneralName::Rfc822Name(mail) => self.emails.push(mail.to_string()),
                        _ => {}
                    }
                }
            }
            // RFC 5280 §4.2.1.9.
            oid::BASIC_CONSTRAINTS => {
                self.basic_constraints =
                    Some(BasicConstraints::from_der(value).map_err(decode_err)?);
            }
            oid::CERTIFICATE_TEMPLATE => {
                let t = TemplateExt::from_der(value).map_err(decode_err)?;
                if t.major.is_none() && t.minor.is_some() {
                    return Err(content_err("minor version without a major version"));
                }
                self.template =
                    Some(Template { oid: t.template_id, major: t.major, minor: t.minor });
            }
            // MS-WCCE §2.2.2.7.7.1: the version 1 template name, a string (BMPString as the
            // Windows CA writes it).
            oid::ENROLL_CERTTYPE => {
                let any = Any::from_der(value).map_err(decode_err)?;
                let name = match any.tag() {
                    Tag::BmpString => any.decode_as::<BmpString>().map(|s| s.to_string()),
                    Tag::Utf8String => Utf8StringRef::try_from(&any).map(|s| s.to_string()),
                    Tag::PrintableString => {
                        PrintableStringRef::try_from(&any).map(|s| s.to_string())
                    }
                    Tag::Ia5String => Ia5StringRef::try_from(&any).map(|s| s.to_string()),
                    _ => return Err(content_err("the template name is not a string")),
                };
                self.template_name = Some(name.map_err(decode_err)?);
            }
            // MS-WCCE §2.2.2.7.7.4: a GeneralNames holding the otherName szOID_NTDS_OBJECTSID
            // whose value is an OCTET STRING with the SID as text ("S-1-5-21-...").
            oid::NTDS_CA_SECURITY_EXT => {
                let names = Vec::<GeneralName>::from_der(value).map_err(decode_err)?;
                let sid = names.iter().find_map(|g| match g {
                    GeneralName::OtherName(o) if o.type_id == oid::NTDS_OBJECTSID => Some(o),
                    _ => None,
                });
                let Some(sid) = sid else {
                    return Err(content_err("no szOID_NTDS_OBJECTSID otherName"));
                };
                let text = OctetStringRef::try_from(&sid.value).map_err(decode_err)?;
                let text = std::str::from_utf8(text.as_bytes())
                    .ok()
                    .filter(|s| is_sid_string(s))
                    .ok_or_else(|| content_err("the SID is not S-1-<authority>-<sub>..."))?;
                self.sid = Some(text.to_owned());
            }
            _ => {}
        }
        Ok(())
    }

    /// The DER bytes, exactly as given.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The X.509 version: 1, 2 or 3.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The serial number's bytes (DER INTEGER content).
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    /// The serial number in upper-case hex.
    pub fn serial_hex(&self) -> String {
        hex_upper(&self.serial)
    }

    /// The subject as an RFC 4514 string (most specific RDN first: `CN=...,O=...,C=...`).
    pub fn subject(&self) -> String {
        render_name(&self.subject, false)
    }

    /// The subject for display: RFC 4514 order, or with ReverseSubject=1 the reverse
    /// (the order the RDNs are stored in).
    pub fn subject_for_display(&self, reverse: bool) -> String {
        render_name(&self.subject, reverse)
    }

    /// The issuer as an RFC 4514 string.
    pub fn issuer(&self) -> String {
        render_name(&self.issuer, false)
    }

    /// Whether subject and issuer are the same name (a self-issued certificate, RFC 5280
    /// §3.2: a root when it is also a CA).
    pub fn is_self_issued(&self) -> bool {
        self.subject == self.issuer
    }

    /// notBefore.
    pub fn not_before(&self) -> Timestamp {
        self.not_before
    }

    /// notAfter.
    pub fn not_after(&self) -> Timestamp {
        self.not_after
    }

    /// The subject key's algorithm.
    pub fn key(&self) -> &KeyKind {
        &self.key
    }

    /// Whether keyUsage allows digitalSignature; `None` when there is no keyUsage extension.
    pub fn key_usage_digital_signature(&self) -> Option<bool> {
        self.key_usage.map(|ku| ku.digital_signature())
    }

    /// The keyUsage bits set, by their RFC 5280 §4.2.1.3 names; `None` without the extension.
    pub fn key_usage_names(&self) -> Option<Vec<&'static str>> {
        use x509_cert::ext::pkix::KeyUsages as K;
        let ku = self.key_usage?;
        let all = [
            (K::DigitalSignature, "digitalSignature"),
            (K::NonRepudiation, "nonRepudiation"),
            (K::KeyEncipherment, "keyEncipherment"),
            (K::DataEncipherment, "dataEncipherment"),
            (K::KeyAgreement, "keyAgreement"),
            (K::KeyCertSign, "keyCertSign"),
            (K::CRLSign, "cRLSign"),
            (K::EncipherOnly, "encipherOnly"),
            (K::DecipherOnly, "decipherOnly"),
        ];
        Some(all.iter().filter(|(bit, _)| ku.0.contains(*bit)).map(|(_, name)| *name).collect())
    }

    /// The extKeyUsage purposes; `None` when the extension is absent.
    pub fn eku(&self) -> Option<&[Oid]> {
        self.eku.as_deref()
    }

    /// Whether the extKeyUsage extension lists `purpose`.
    pub fn has_eku(&self, purpose: &Oid) -> bool {
        self.eku.as_deref().is_some_and(|e| e.contains(purpose))
    }

    /// The UPN (rule 8): the value of the first subjectAltName otherName
    /// 1.3.6.1.4.1.311.20.2.3 that is a non-empty UTF8String, exactly as stored.
    pub fn upn(&self) -> Option<&str> {
        self.upns.iter().find_map(|u| match u {
            SanUpn::Utf8(s) if !s.is_empty() => Some(s.as_str()),
            _ => None,
        })
    }

    /// Every UPN otherName of subjectAltName, in order, whatever its encoding.
    pub fn upn_entries(&self) -> &[SanUpn] {
        &self.upns
    }

    /// The first e-mail address: subjectAltName rfc822Name, else the subject's emailAddress.
    pub fn email(&self) -> Option<&str> {
        self.emails.first().map(String::as_str)
    }

    /// basicConstraints cA, when the extension is present (reported, never checked: rule 8).
    pub fn basic_constraints_ca(&self) -> Option<bool> {
        self.basic_constraints.as_ref().map(|b| b.ca)
    }

    /// Whether this is a CA certificate (basicConstraints cA TRUE), for root propagation.
    pub fn is_ca(&self) -> bool {
        self.basic_constraints_ca() == Some(true)
    }

    /// The certificate template extension (1.3.6.1.4.1.311.21.7).
    pub fn template(&self) -> Option<&Template> {
        self.template.as_ref()
    }

    /// The version 1 template name (1.3.6.1.4.1.311.20.2).
    pub fn template_name(&self) -> Option<&str> {
        self.template_name.as_deref()
    }

    /// The SID of the SID security extension (1.3.6.1.4.1.311.25.2, KB5014754).
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// Every extension, in certificate order.
    pub fn extensions(&self) -> &[ExtensionInfo] {
        &self.extensions
    }

    /// Critical extensions rule 7 does not recognise.
    pub fn unrecognised_critical(&self) -> impl Iterator<Item = &Oid> {
        self.extensions.iter().filter(|e| e.critical && e.name.is_none()).map(|e| &e.oid)
    }

    /// SHA-1 of the DER (the Windows thumbprint).
    pub fn thumbprint_sha1(&self) -> [u8; 20] {
        self.thumbprint
    }

    /// The thumbprint in upper-case hex, as Windows shows it.
    pub fn thumbprint_hex(&self) -> String {
        hex_upper(&self.thumbprint)
    }

    /// What logon shows for the certificate: the UPN, else the e-mail address, else the
    /// subject (rule 8: a UPN is not required).
    pub fn display_name(&self, reverse_subject: bool) -> String {
        self.upn()
            .or(self.email())
            .map(str::to_owned)
            .unwrap_or_else(|| self.subject_for_display(reverse_subject))
    }
}

/// PEM text (RFC 7468 §2): optional leading white space, then `-----BEGIN`; or, since a DER
/// certificate starts with a SEQUENCE tag (0x30), text with explanatory lines before the
/// encapsulation boundary (RFC 7468 §5.2, `openssl x509 -text` output).
fn looks_like_pem(data: &[u8]) -> bool {
    const BEGIN: &[u8] = b"-----BEGIN";
    let data = data.strip_prefix("\u{feff}".as_bytes()).unwrap_or(data);
    let start = data.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(data.len());
    let at_start = data.get(start..).is_some_and(|rest| rest.starts_with(BEGIN));
    at_start || (data.first() != Some(&0x30) && data.windows(BEGIN.len()).any(|w| w == BEGIN))
}

/// One UPN otherName value (the content of `[0] EXPLICIT`).
fn san_upn(value: &Any) -> Result<SanUpn, der::Error> {
    Ok(match value.tag() {
        Tag::Utf8String => SanUpn::Utf8(Utf8StringRef::try_from(value)?.as_str().to_owned()),
        Tag::Ia5String => SanUpn::Ia5(Ia5StringRef::try_from(value)?.as_str().to_owned()),
        tag => SanUpn::Other { tag },
    })
}

/// MS-DTYP §2.4.2.1 SID string: `S-1-` then the authority and at least one more number, all
/// decimal, separated by `-`.
fn is_sid_string(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("S-1-") else { return false };
    let parts: Vec<&str> = rest.split('-').collect();
    parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The subject key (RFC 5280 §4.1.2.7), decoded enough to know its type and size.
fn key_kind(spki: &SubjectPublicKeyInfoOwned) -> Result<KeyKind, CertError> {
    let alg = &spki.algorithm;
    let err = |algorithm, reason| CertError::PublicKey { algorithm, reason };
    let params = alg.parameters.as_ref();
    let bits = |algorithm| {
        spki.subject_public_key.as_bytes().ok_or_else(|| err(algorithm, "unused bits in the key"))
    };
    Ok(match alg.oid {
        // RFC 3279 §2.3.1: parameters NULL (absent is tolerated, as RFC 4055 §1.2 notes
        // some implementations do), the key an RSAPublicKey.
        oid::RSA_ENCRYPTION | oid::RSASSA_PSS => {
            let name = if alg.oid == oid::RSA_ENCRYPTION { "rsa" } else { "rsa-pss" };
            if alg.oid == oid::RSA_ENCRYPTION && params.is_some_and(|p| p.tag() != Tag::Null) {
                return Err(err(name, "parameters must be NULL"));
            }
            let key = RsaPublicKey::from_der(bits(name)?)
                .map_err(|_| err(name, "not an RSAPublicKey"))?;
            let modulus = key.modulus.as_bytes();
            let Some(first) = modulus.first().filter(|b| **b != 0) else {
                return Err(err(name, "zero modulus"));
            };
            if key.public_exponent.as_bytes().iter().all(|b| *b == 0) {
                return Err(err(name, "zero exponent"));
            }
            let len = u32::try_from(modulus.len()).map_err(|_| err(name, "modulus too long"))?;
            let bits = len * 8 - first.leading_zeros();
            if alg.oid == oid::RSA_ENCRYPTION {
                KeyKind::Rsa { bits }
            } else {
                KeyKind::RsaPss { bits }
            }
        }
        // RFC 5480 §2.1.1: ECParameters ::= CHOICE { namedCurve OBJECT IDENTIFIER,
        // implicitCurve NULL, specifiedCurve SpecifiedECDomain }; the point per SEC 1 §2.3.3.
        oid::EC_PUBLIC_KEY => {
            let params = params.ok_or_else(|| err("ec", "missing curve parameters"))?;
            let curve = match params.tag() {
                Tag::ObjectIdentifier => {
                    let curve: Oid =
                        params.decode_as().map_err(|_| err("ec", "bad curve identifier"))?;
                    match curve {
                        oid::SECP256R1 => Curve::P256,
                        oid::SECP384R1 => Curve::P384,
                        oid::SECP521R1 => Curve::P521,
                        other => Curve::Named {
                            oid: other,
                            name: oid::OTHER_CURVES
                                .iter()
                                .find(|(o, _)| *o == other)
                                .map(|(_, n)| *n),
                        },
                    }
                }
                Tag::Null => Curve::Implicit,
                Tag::Sequence => Curve::Explicit,
                _ => return Err(err("ec", "curve parameters are not a named curve")),
            };
            let point = bits("ec")?;
            let field = match curve {
                Curve::P256 => Some(32),
                Curve::P384 => Some(48),
                Curve::P521 => Some(66),
                _ => None,
            };
            let fits = match (point.first(), field) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(0x04), Some(n)) => point.len() == 1 + 2 * n,
                (Some(0x02 | 0x03), Some(n)) => point.len() == 1 + n,
                (Some(_), Some(_)) => false,
            };
            if !fits {
                return Err(err("ec", "the point does not fit the curve"));
            }
            KeyKind::Ec { curve }
        }
        // RFC 8410 §3: parameters MUST be absent; §4: the raw public key.
        oid::ED25519 | oid::ED448 | oid::X25519 | oid::X448 => {
            let (name, len, kind) = match alg.oid {
                oid::ED25519 => ("ed25519", 32, KeyKind::Ed25519),
                oid::ED448 => ("ed448", 57, KeyKind::Ed448),
                oid::X25519 => ("x25519", 32, KeyKind::X25519),
                _ => ("x448", 56, KeyKind::X448),
            };
            if params.is_some() {
                return Err(err(name, "parameters must be absent (RFC 8410 §3)"));
            }
            if bits(name)?.len() != len {
                return Err(err(name, "wrong key length"));
            }
            kind
        }
        oid::DSA => KeyKind::Dsa,
        other => KeyKind::Other { oid: other },
    })
}

/// A name as RFC 4514 §2.1 writes it (last RDN first), or in stored order. Never fails: an
/// attribute that cannot be shown becomes `?`.
fn render_name(name: &Name, stored_order: bool) -> String {
    let rdns: Vec<String> = name
        .0
        .iter()
        .map(|rdn| {
            let mut text = String::new();
            if write!(text, "{rdn}").is_err() {
                text = "?".into();
            }
            text
        })
        .collect();
    if stored_order { rdns.join(",") } else { rdns.into_iter().rev().collect::<Vec<_>>().join(",") }
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02X}");
        s
    })
}
