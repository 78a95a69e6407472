//! Logon eligibility of one certificate (rules 2-9), the way the Windows 10/11 smart card
//! credential provider decides which certificates to list: a pure function of the
//! certificate, the container's key spec, `now` and the settings.

use std::fmt;

use der::asn1::ObjectIdentifier as Oid;

use crate::policy::{Policy, Setting};
use crate::{Curve, KeyKind, LogonCert, SanUpn, Timestamp, oid};

/// The key spec of the container holding the certificate's key (Minidriver v7 §4.3). ECC
/// containers whose key also does ECDH count as key exchange (the card layer reports them so).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeySpec {
    /// AT_KEYEXCHANGE: the key decrypts or agrees (and signs).
    Exchange,
    /// AT_SIGNATURE: a signature-only key.
    Signature,
}

impl KeySpec {
    /// `AT_KEYEXCHANGE` / `AT_SIGNATURE`.
    pub fn registry_name(self) -> &'static str {
        match self {
            KeySpec::Exchange => "AT_KEYEXCHANGE",
            KeySpec::Signature => "AT_SIGNATURE",
        }
    }
}

/// Why a certificate is not eligible: one per failed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// Rule 2: now < notBefore.
    NotYetValid {
        /// notBefore.
        not_before: Timestamp,
    },
    /// Rule 2: now > notAfter.
    Expired {
        /// notAfter.
        not_after: Timestamp,
    },
    /// Rule 3: a key type logon never takes.
    KeyType {
        /// The key.
        key: KeyKind,
    },
    /// Rule 3: an ECC key on a logon curve, but EnumerateECCCerts is 0.
    EccNotEnabled {
        /// The curve.
        curve: Curve,
    },
    /// Rule 4: a signature-only key and AllowSignatureOnlyKeys is 0.
    SignatureOnlyKey,
    /// Rule 5: keyUsage present without digitalSignature.
    KeyUsage,
    /// Rule 6: no EKU that logon accepts.
    Eku {
        /// The EKU list; `None` when the extension is absent.
        eku: Option<Vec<Oid>>,
        /// AllowCertificatesWithNoEKU.
        allow_no_eku: bool,
    },
    /// Rule 7: a critical extension logon does not recognise (RFC 5280 §4.2).
    UnknownCriticalExtension {
        /// Its OID.
        oid: Oid,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NotYetValid { not_before } => write!(
                f,
                "not valid yet: notBefore is {not_before} (AllowTimeInvalidCertificates=1 would list it)"
            ),
            Reason::Expired { not_after } => write!(
                f,
                "expired: notAfter is {not_after} (AllowTimeInvalidCertificates=1 would list it)"
            ),
            Reason::KeyType { key: KeyKind::Ec { curve } } => {
                write!(f, "ECC key on {curve}: logon takes only RSA and ECC on P-256, P-384, P-521")
            }
            Reason::KeyType { key } => {
                write!(f, "{key} key: logon takes only RSA and ECC on P-256, P-384, P-521")
            }
            Reason::EccNotEnabled { curve } => {
                write!(f, "ECC key on {curve}: ECC certificates need EnumerateECCCerts=1")
            }
            Reason::SignatureOnlyKey => {
                f.write_str("signature-only key (AT_SIGNATURE): needs AllowSignatureOnlyKeys=1")
            }
            Reason::KeyUsage => f.write_str("keyUsage does not include digitalSignature"),
            Reason::Eku { eku, allow_no_eku } => {
                let has = |o: &Oid| eku.as_deref().is_some_and(|e| e.contains(o));
                match (eku, allow_no_eku) {
                    (None, false) => f.write_str(
                        "no extKeyUsage extension: needs Smart Card Logon 1.3.6.1.4.1.311.20.2.2 \
                         (or AllowCertificatesWithNoEKU=1)",
                    )?,
                    (Some(_), false)
                        if has(&oid::KP_CLIENT_AUTH) || has(&oid::ANY_EXTENDED_KEY_USAGE) =>
                    {
                        f.write_str(
                            "extKeyUsage lacks Smart Card Logon 1.3.6.1.4.1.311.20.2.2 (its \
                             Client Authentication or anyExtendedKeyUsage needs \
                             AllowCertificatesWithNoEKU=1)",
                        )?
                    }
                    (_, false) => {
                        f.write_str("extKeyUsage lacks Smart Card Logon 1.3.6.1.4.1.311.20.2.2")?
                    }
                    (_, true) => f.write_str(
                        "extKeyUsage has none of Smart Card Logon 1.3.6.1.4.1.311.20.2.2, \
                         Client Authentication 1.3.6.1.5.5.7.3.2, anyExtendedKeyUsage 2.5.29.37.0",
                    )?,
                }
                if has(&oid::PKINIT_KP_CLIENT_AUTH) {
                    f.write_str(
                        "; its id-pkinit-KPClientAuth 1.3.6.1.5.2.3.4 is not enough for the \
                         Windows client (MIT and Heimdal KDCs accept it)",
                    )?;
                }
                Ok(())
            }
            Reason::UnknownCriticalExtension { oid } => {
                write!(f, "unrecognised critical extension {oid} (RFC 5280 §4.2)")
            }
        }
    }
}

/// Something worth knowing that is not part of eligibility (rule 9 and friends).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Note {
    /// A rule failed but a setting lets the certificate through.
    AllowedBy {
        /// The setting.
        setting: Setting,
        /// What it let through.
        what: String,
    },
    /// The EKU has id-pkinit-KPClientAuth.
    Pkinit,
    /// The SID security extension (strong mapping).
    Sid {
        /// The SID.
        sid: String,
    },
    /// No SID security extension.
    NoSid,
    /// The certificate template extension.
    Template {
        /// The template.
        template: crate::Template,
    },
    /// The version 1 template name.
    TemplateName {
        /// The name.
        name: String,
    },
    /// No UPN; logon shows the e-mail address or the subject.
    NoUpn,
    /// UPN otherNames that are not UPNs (IA5String, empty, another type).
    IgnoredUpn {
        /// How it was encoded.
        entry: SanUpn,
    },
    /// More than one UPN; the first is used.
    SeveralUpns {
        /// How many UTF8String UPNs.
        count: usize,
    },
    /// basicConstraints cA TRUE (not checked for logon).
    CaCertificate,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::AllowedBy { setting, what } => write!(f, "{what}: allowed by {setting}=1"),
            Note::Pkinit => f.write_str(
                "extKeyUsage has id-pkinit-KPClientAuth 1.3.6.1.5.2.3.4 (MIT and Heimdal KDCs \
                 accept it; the Windows client needs Smart Card Logon)",
            ),
            Note::Sid { sid } => write!(
                f,
                "SID extension 1.3.6.1.4.1.311.25.2: {sid} (strong certificate mapping, KB5014754)"
            ),
            Note::NoSid => f.write_str(
                "no SID extension 1.3.6.1.4.1.311.25.2: under KB5014754 full enforcement the \
                 account needs an explicit strong mapping",
            ),
            Note::Template { template } => {
                write!(f, "certificate template 1.3.6.1.4.1.311.21.7: {template}")
            }
            Note::TemplateName { name } => {
                write!(f, "certificate template name 1.3.6.1.4.1.311.20.2: {name}")
            }
            Note::NoUpn => f.write_str("no UPN: shown by e-mail address or subject"),
            Note::IgnoredUpn { entry: SanUpn::Ia5(s) } => {
                write!(f, "UPN otherName {s:?} is an IA5String, not a UTF8String: not a UPN")
            }
            Note::IgnoredUpn { entry: SanUpn::Utf8(_) } => {
                f.write_str("UPN otherName is an empty string: not a UPN")
            }
            Note::IgnoredUpn { entry: SanUpn::Other { tag } } => {
                write!(f, "UPN otherName of type {tag}, not a UTF8String: not a UPN")
            }
            Note::SeveralUpns { count } => {
                write!(f, "{count} UPNs in subjectAltName: the first is used")
            }
            Note::CaCertificate => {
                f.write_str("basicConstraints cA is TRUE (not checked for logon)")
            }
        }
    }
}

/// The outcome for one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// One per failed rule; empty when eligible.
    pub reasons: Vec<Reason>,
    /// Informational.
    pub notes: Vec<Note>,
}

impl Evaluation {
    /// Whether every rule passed.
    pub fn eligible(&self) -> bool {
        self.reasons.is_empty()
    }
}

fn allowed(setting: Setting, what: String, notes: &mut Vec<Note>) {
    notes.push(Note::AllowedBy { setting, what });
}

/// Rules 2-9 for one parsed certificate (rule 1 is [`LogonCert::from_der`]).
pub fn evaluate(
    cert: &LogonCert,
    key_spec: KeySpec,
    now: Timestamp,
    policy: &Policy,
) -> Evaluation {
    let mut reasons = Vec::new();
    let mut notes = Vec::new();

    // Rule 2: notBefore <= now <= notAfter, both ends inclusive (RFC 5280 §4.1.2.5).
    let time_reason = if now < cert.not_before() {
        Some(Reason::NotYetValid { not_before: cert.not_before() })
    } else if now > cert.not_after() {
        Some(Reason::Expired { not_after: cert.not_after() })
    } else {
        None
    };
    if let Some(reason) = time_reason {
        if policy.flag(Setting::AllowTimeInvalidCertificates) {
            let what = match reason {
                Reason::NotYetValid { not_before } => format!("not valid before {not_before}"),
                _ => format!("expired on {}", cert.not_after()),
            };
            allowed(Setting::AllowTimeInvalidCertificates, what, &mut notes);
        } else {
            reasons.push(reason);
        }
    }

    // Rule 3: RSA of any size; ECC on the three NIST curves with EnumerateECCCerts=1; no
    // other key.
    match cert.key() {
        KeyKind::Rsa { .. } => {}
        KeyKind::Ec { curve } if curve.is_nist_logon_curve() => {
            if !policy.flag(Setting::EnumerateECCCerts) {
                reasons.push(Reason::EccNotEnabled { curve: curve.clone() });
            }
        }
        other => reasons.push(Reason::KeyType { key: other.clone() }),
    }

    // Rule 4: signature-only keys only with AllowSignatureOnlyKeys=1.
    if key_spec == KeySpec::Signature {
        if policy.flag(Setting::AllowSignatureOnlyKeys) {
            allowed(Setting::AllowSignatureOnlyKeys, "signature-only key".into(), &mut notes);
        } else {
            reasons.push(Reason::SignatureOnlyKey);
        }
    }

    // Rule 5: keyUsage, when present, includes digitalSignature (RFC 5280 §4.2.1.3); absent
    // means unrestricted.
    if cert.key_usage_digital_signature() == Some(false) {
        reasons.push(Reason::KeyUsage);
    }

    // Rule 6: Smart Card Logon; with AllowCertificatesWithNoEKU=1 also no EKU,
    // anyExtendedKeyUsage or Client Authentication. id-pkinit-KPClientAuth never suffices.
    let allow_no_eku = policy.flag(Setting::AllowCertificatesWithNoEKU);
    if !cert.has_eku(&oid::KP_SMARTCARD_LOGON) {
        let relaxed = match cert.eku() {
            None => Some("no extKeyUsage extension"),
            Some(_) if cert.has_eku(&oid::ANY_EXTENDED_KEY_USAGE) => Some("anyExtendedKeyUsage"),
            Some(_) if cert.has_eku(&oid::KP_CLIENT_AUTH) => Some("Client Authentication EKU"),
            Some(_) => None,
        };
        match relaxed {
            Some(what) if allow_no_eku => {
                allowed(Setting::AllowCertificatesWithNoEKU, what.into(), &mut notes);
            }
            _ => reasons.push(Reason::Eku { eku: cert.eku().map(<[Oid]>::to_vec), allow_no_eku }),
        }
    }
    if cert.has_eku(&oid::PKINIT_KP_CLIENT_AUTH) {
        notes.push(Note::Pkinit);
    }

    // Rule 7: RFC 5280 §4.2 "A certificate-using system MUST reject the certificate if it
    // encounters a critical extension it does not recognize".
    for oid in cert.unrecognised_critical() {
        reasons.push(Reason::UnknownCriticalExtension { oid: *oid });
    }

    // Rule 8: basicConstraints is not checked; a UPN is not required.
    if cert.is_ca() {
        notes.push(Note::CaCertificate);
    }
    let utf8_upns =
        cert.upn_entries().iter().filter(|u| matches!(u, SanUpn::Utf8(s) if !s.is_empty())).count();
    for entry in cert.upn_entries() {
        if !matches!(entry, SanUpn::Utf8(s) if !s.is_empty()) {
            notes.push(Note::IgnoredUpn { entry: entry.clone() });
        }
    }
    if utf8_upns > 1 {
        notes.push(Note::SeveralUpns { count: utf8_upns });
    }
    if cert.upn().is_none() {
        notes.push(Note::NoUpn);
    }

    // Rule 9: informational extensions.
    match cert.sid() {
        Some(sid) => notes.push(Note::Sid { sid: sid.to_owned() }),
        None => notes.push(Note::NoSid),
    }
    if let Some(template) = cert.template() {
        notes.push(Note::Template { template: template.clone() });
    }
    if let Some(name) = cert.template_name() {
        notes.push(Note::TemplateName { name: name.to_owned() });
    }

    Evaluation { reasons, notes }
}
