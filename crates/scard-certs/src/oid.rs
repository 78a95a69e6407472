//! Object identifiers this module reads, each with the document that assigns it, and the
//! names used in output.

pub use der::asn1::ObjectIdentifier as Oid;

// --- Extensions (RFC 5280 §4.2.1 standard extensions, §4.2.2 private Internet extensions) ---

/// RFC 5280 §4.2.1.1 authorityKeyIdentifier.
pub const AUTHORITY_KEY_ID: Oid = Oid::new_unwrap("2.5.29.35");
/// RFC 5280 §4.2.1.2 subjectKeyIdentifier.
pub const SUBJECT_KEY_ID: Oid = Oid::new_unwrap("2.5.29.14");
/// RFC 5280 §4.2.1.3 keyUsage.
pub const KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.15");
/// RFC 5280 §4.2.1.4 certificatePolicies.
pub const CERTIFICATE_POLICIES: Oid = Oid::new_unwrap("2.5.29.32");
/// RFC 5280 §4.2.1.5 policyMappings.
pub const POLICY_MAPPINGS: Oid = Oid::new_unwrap("2.5.29.33");
/// RFC 5280 §4.2.1.6 subjectAltName.
pub const SUBJECT_ALT_NAME: Oid = Oid::new_unwrap("2.5.29.17");
/// RFC 5280 §4.2.1.7 issuerAltName.
pub const ISSUER_ALT_NAME: Oid = Oid::new_unwrap("2.5.29.18");
/// RFC 5280 §4.2.1.8 subjectDirectoryAttributes.
pub const SUBJECT_DIRECTORY_ATTRIBUTES: Oid = Oid::new_unwrap("2.5.29.9");
/// RFC 5280 §4.2.1.9 basicConstraints.
pub const BASIC_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.19");
/// RFC 5280 §4.2.1.10 nameConstraints.
pub const NAME_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.30");
/// RFC 5280 §4.2.1.11 policyConstraints.
pub const POLICY_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.36");
/// RFC 5280 §4.2.1.12 extKeyUsage.
pub const EXT_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37");
/// RFC 5280 §4.2.1.13 cRLDistributionPoints.
pub const CRL_DISTRIBUTION_POINTS: Oid = Oid::new_unwrap("2.5.29.31");
/// RFC 5280 §4.2.1.14 inhibitAnyPolicy.
pub const INHIBIT_ANY_POLICY: Oid = Oid::new_unwrap("2.5.29.54");
/// RFC 5280 §4.2.1.15 freshestCRL.
pub const FRESHEST_CRL: Oid = Oid::new_unwrap("2.5.29.46");
/// RFC 5280 §4.2.2.1 authorityInfoAccess.
pub const AUTHORITY_INFO_ACCESS: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.1.1");
/// RFC 5280 §4.2.2.2 subjectInfoAccess.
pub const SUBJECT_INFO_ACCESS: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.1.11");

/// MS-WCCE §2.2.2.7.7.2 szOID_CERTIFICATE_TEMPLATE (template OID, major, minor version).
pub const CERTIFICATE_TEMPLATE: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.21.7");
/// MS-WCCE §2.2.2.7.7.1 szOID_ENROLL_CERTTYPE_EXTENSION (version 1 template name).
pub const ENROLL_CERTTYPE: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.20.2");
/// MS-WCCE §2.2.2.7.7.4 szOID_NTDS_CA_SECURITY_EXT (the account's SID; KB5014754).
pub const NTDS_CA_SECURITY_EXT: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.25.2");
/// MS-WCCE §2.2.2.7.7.4 szOID_NTDS_OBJECTSID, the otherName inside the SID extension.
pub const NTDS_OBJECTSID: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.25.2.1");

/// Every extension rule 7 recognises: all of RFC 5280 §4.2 plus the Microsoft template and
/// SID extensions. A critical extension not listed here makes a certificate not eligible.
pub const RECOGNISED_EXTENSIONS: [(Oid, &str); 20] = [
    (AUTHORITY_KEY_ID, "authorityKeyIdentifier"),
    (SUBJECT_KEY_ID, "subjectKeyIdentifier"),
    (KEY_USAGE, "keyUsage"),
    (CERTIFICATE_POLICIES, "certificatePolicies"),
    (POLICY_MAPPINGS, "policyMappings"),
    (SUBJECT_ALT_NAME, "subjectAltName"),
    (ISSUER_ALT_NAME, "issuerAltName"),
    (SUBJECT_DIRECTORY_ATTRIBUTES, "subjectDirectoryAttributes"),
    (BASIC_CONSTRAINTS, "basicConstraints"),
    (NAME_CONSTRAINTS, "nameConstraints"),
    (POLICY_CONSTRAINTS, "policyConstraints"),
    (EXT_KEY_USAGE, "extKeyUsage"),
    (CRL_DISTRIBUTION_POINTS, "cRLDistributionPoints"),
    (INHIBIT_ANY_POLICY, "inhibitAnyPolicy"),
    (FRESHEST_CRL, "freshestCRL"),
    (AUTHORITY_INFO_ACCESS, "authorityInfoAccess"),
    (SUBJECT_INFO_ACCESS, "subjectInfoAccess"),
    (CERTIFICATE_TEMPLATE, "certificateTemplate"),
    (ENROLL_CERTTYPE, "certificateTemplateName"),
    (NTDS_CA_SECURITY_EXT, "ntdsCaSecurity (SID)"),
];

/// The name of a recognised extension.
pub fn extension_name(oid: &Oid) -> Option<&'static str> {
    RECOGNISED_EXTENSIONS.iter().find(|(o, _)| o == oid).map(|(_, name)| *name)
}

// --- Extended key usages ---

/// MS: szOID_KP_SMARTCARD_LOGON, Smart Card Logon.
pub const KP_SMARTCARD_LOGON: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.20.2.2");
/// RFC 5280 §4.2.1.12 anyExtendedKeyUsage.
pub const ANY_EXTENDED_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37.0");
/// RFC 5280 §4.2.1.12 id-kp-clientAuth.
pub const KP_CLIENT_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.2");
/// RFC 4556 §3.2.2 id-pkinit-KPClientAuth.
pub const PKINIT_KP_CLIENT_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.2.3.4");

// --- Names ---

/// MS-WCCE §2.2.2.7.5 szOID_NT_PRINCIPAL_NAME: the UPN otherName of subjectAltName.
pub const NT_PRINCIPAL_NAME: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.20.2.3");
/// RFC 5280 Appendix A (PKCS #9) emailAddress attribute of a subject name.
pub const EMAIL_ADDRESS: Oid = Oid::new_unwrap("1.2.840.113549.1.9.1");

// --- Key algorithms ---

/// RFC 3279 §2.3.1 rsaEncryption.
pub const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
/// RFC 4055 §1.2 id-RSASSA-PSS.
pub const RSASSA_PSS: Oid = Oid::new_unwrap("1.2.840.113549.1.1.10");
/// RFC 5480 §2.1.1 id-ecPublicKey.
pub const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
/// RFC 8410 §3 id-X25519.
pub const X25519: Oid = Oid::new_unwrap("1.3.101.110");
/// RFC 8410 §3 id-X448.
pub const X448: Oid = Oid::new_unwrap("1.3.101.111");
/// RFC 8410 §3 id-Ed25519.
pub const ED25519: Oid = Oid::new_unwrap("1.3.101.112");
/// RFC 8410 §3 id-Ed448.
pub const ED448: Oid = Oid::new_unwrap("1.3.101.113");
/// RFC 3279 §2.3.2 id-dsa.
pub const DSA: Oid = Oid::new_unwrap("1.2.840.10040.4.1");

/// RFC 5480 §2.1.1.1 secp256r1 (P-256).
pub const SECP256R1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
/// RFC 5480 §2.1.1.1 secp384r1 (P-384).
pub const SECP384R1: Oid = Oid::new_unwrap("1.3.132.0.34");
/// RFC 5480 §2.1.1.1 secp521r1 (P-521).
pub const SECP521R1: Oid = Oid::new_unwrap("1.3.132.0.35");

/// Named curves other than the three NIST curves logon takes, by their SEC 2 (v2, §2-3) or
/// RFC 5639 §4.1 names, so output says `secp256k1` rather than an OID.
pub const OTHER_CURVES: [(Oid, &str); 13] = [
    (Oid::new_unwrap("1.3.132.0.10"), "secp256k1"),
    (Oid::new_unwrap("1.2.840.10045.3.1.1"), "secp192r1"),
    (Oid::new_unwrap("1.3.132.0.31"), "secp192k1"),
    (Oid::new_unwrap("1.3.132.0.33"), "secp224r1"),
    (Oid::new_unwrap("1.3.132.0.32"), "secp224k1"),
    (Oid::new_unwrap("1.3.132.0.8"), "secp160r1"),
    (Oid::new_unwrap("1.3.132.0.9"), "secp160k1"),
    (Oid::new_unwrap("1.3.132.0.30"), "secp160r2"),
    (Oid::new_unwrap("1.3.36.3.3.2.8.1.1.3"), "brainpoolP192r1"),
    (Oid::new_unwrap("1.3.36.3.3.2.8.1.1.7"), "brainpoolP256r1"),
    (Oid::new_unwrap("1.3.36.3.3.2.8.1.1.9"), "brainpoolP320r1"),
    (Oid::new_unwrap("1.3.36.3.3.2.8.1.1.11"), "brainpoolP384r1"),
    (Oid::new_unwrap("1.3.36.3.3.2.8.1.1.13"), "brainpoolP512r1"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognised_extensions_are_distinct() {
        for (i, (a, _)) in RECOGNISED_EXTENSIONS.iter().enumerate() {
            for (b, _) in RECOGNISED_EXTENSIONS.iter().skip(i + 1) {
                assert_ne!(a, b);
            }
        }
        assert_eq!(extension_name(&EXT_KEY_USAGE), Some("extKeyUsage"));
        assert_eq!(extension_name(&KP_SMARTCARD_LOGON), None);
    }
}
