//! Rule 1: strict DER. A file that is not exactly one DER certificate, or whose extensions
//! logon reads do not decode, is rejected (an error, never "not eligible"); malformed input
//! never panics.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use der::Encode;
use der::asn1::ObjectIdentifier as Oid;
use scard_certs::testcert::{CertSpec, TestKey};
use scard_certs::{CertError, LogonCert, oid};

fn good() -> Vec<u8> {
    CertSpec::logon("alice@example.com")
        .template(Oid::new_unwrap("1.3.6.1.4.1.311.21.8.1"), Some(1), Some(2))
        .sid("S-1-5-21-1-2-3-1001")
        .build()
        .unwrap()
}

/// A DER TLV with a definite, minimal length.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// Rebuilds `der` with its TBSCertificate's extensions replaced by `extensions` (raw
/// Extension TLVs) and an optional raw version field.
fn with_raw_extensions(der: &[u8], version: &[u8], extensions: &[Vec<u8>]) -> Vec<u8> {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(der).unwrap();
    let tbs = &cert.tbs_certificate;
    let mut body = version.to_vec();
    body.extend(tbs.serial_number.to_der().unwrap());
    body.extend(tbs.signature.to_der().unwrap());
    body.extend(tbs.issuer.to_der().unwrap());
    body.extend(tbs.validity.to_der().unwrap());
    body.extend(tbs.subject.to_der().unwrap());
    body.extend(tbs.subject_public_key_info.to_der().unwrap());
    if !extensions.is_empty() {
        body.extend(tlv(0xA3, &tlv(0x30, &extensions.concat())));
    }
    let mut outer = tlv(0x30, &body);
    outer.extend(cert.signature_algorithm.to_der().unwrap());
    outer.extend(cert.signature.to_der().unwrap());
    tlv(0x30, &outer)
}

const V3: &[u8] = &[0xA0, 0x03, 0x02, 0x01, 0x02];

fn ext(id: &Oid, critical: Option<bool>, value: &[u8]) -> Vec<u8> {
    let mut body = id.to_der().unwrap();
    if let Some(c) = critical {
        body.extend([0x01, 0x01, if c { 0xFF } else { 0x00 }]);
    }
    body.extend(tlv(0x04, value));
    tlv(0x30, &body)
}

#[test]
fn the_raw_builder_reproduces_a_good_certificate() {
    let der =
        CertSpec::bare("x").ext(Oid::new_unwrap("1.2.3.4"), false, vec![5, 0]).build().unwrap();
    let again = with_raw_extensions(&der, V3, &[ext(&Oid::new_unwrap("1.2.3.4"), None, &[5, 0])]);
    assert_eq!(again, der);
    assert!(LogonCert::from_der(&again).is_ok());
}

#[test]
fn pem_text_is_rejected_with_a_clear_error() {
    let der = good();
    let b64 = {
        // Enough of base64 for a PEM body; the content does not matter.
        der.iter().map(|b| char::from(b'A' + b % 26)).collect::<String>()
    };
    for text in [
        format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n"),
        format!("\n\n  -----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n"),
        format!("\u{feff}-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n"),
        format!("-----BEGIN TRUSTED CERTIFICATE-----\n{b64}\n"),
        format!(
            "Certificate:\n    Data:\n        Version: 3 (0x2)\n-----BEGIN CERTIFICATE-----\n{b64}\n"
        ),
    ] {
        let err = LogonCert::from_der(text.as_bytes()).unwrap_err();
        assert!(matches!(err, CertError::Pem), "{err:?}");
        assert!(err.to_string().contains("PEM"));
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    let der = good();
    for extra in [&[0x00][..], &[0x00, 0x00], &[0x30, 0x00], b"garbage"] {
        let mut data = der.clone();
        data.extend_from_slice(extra);
        assert!(matches!(LogonCert::from_der(&data), Err(CertError::Der(_))), "{extra:?}");
    }
    // Two certificates back to back: still one file, rejected.
    let twice = [der.clone(), der].concat();
    assert!(LogonCert::from_der(&twice).is_err());
}

#[test]
fn truncation_at_every_byte_is_an_error() {
    let der = good();
    for len in 0..der.len() {
        assert!(LogonCert::from_der(&der[..len]).is_err(), "truncated to {len} bytes");
    }
    assert!(LogonCert::from_der(&der).is_ok());
}

#[test]
fn wrong_lengths_are_errors() {
    let der = good();
    assert_eq!(der[1], 0x82, "outer length is two bytes");
    let len = u16::from_be_bytes([der[2], der[3]]);
    for delta in [-2i32, -1, 1, 2, 1000] {
        let mut data = der.clone();
        let l = (i32::from(len) + delta) as u16;
        data[2..4].copy_from_slice(&l.to_be_bytes());
        assert!(LogonCert::from_der(&data).is_err(), "length {delta:+}");
    }
    // A length that runs past the end of a huge claim.
    let mut data = der.clone();
    data[1] = 0x84;
    data.splice(2..4, [0x7F, 0xFF, 0xFF, 0xFF]);
    assert!(LogonCert::from_der(&data).is_err());
}

#[test]
fn non_minimal_lengths_are_errors() {
    let der = good();
    // Outer length in three bytes (0x83 00 xx xx) instead of two.
    let mut data = vec![0x30, 0x83, 0x00];
    data.extend_from_slice(&der[2..]);
    assert!(matches!(LogonCert::from_der(&data), Err(CertError::Der(_))));
    // A short inner length in long form: the version [0] 03 as [0] 81 03, lengths adjusted.
    let tbs_start = 4;
    assert_eq!(&der[tbs_start..tbs_start + 2], &[0x30, 0x82]);
    let version_at = tbs_start + 4;
    assert_eq!(&der[version_at..version_at + 2], &[0xA0, 0x03]);
    let mut data = der.clone();
    data.insert(version_at + 1, 0x81);
    let tbs_len = u16::from_be_bytes([der[tbs_start + 2], der[tbs_start + 3]]) + 1;
    data[tbs_start + 2..tbs_start + 4].copy_from_slice(&tbs_len.to_be_bytes());
    let outer_len = u16::from_be_bytes([der[2], der[3]]) + 1;
    data[2..4].copy_from_slice(&outer_len.to_be_bytes());
    assert!(matches!(LogonCert::from_der(&data), Err(CertError::Der(_))));
}

#[test]
fn indefinite_lengths_are_errors() {
    let der = good();
    // BER indefinite form (X.690 §8.1.3.6) for the outer SEQUENCE.
    let mut data = vec![0x30, 0x80];
    data.extend_from_slice(&der[4..]);
    data.extend_from_slice(&[0x00, 0x00]);
    assert!(matches!(LogonCert::from_der(&data), Err(CertError::Der(_))));
}

#[test]
fn explicit_default_values_are_not_der() {
    let der = CertSpec::bare("x").build().unwrap();
    let private = Oid::new_unwrap("1.2.3.4");
    // critical FALSE spelled out (X.690 §11.5: DEFAULT values are omitted in DER).
    let data = with_raw_extensions(&der, V3, &[ext(&private, Some(false), &[5, 0])]);
    assert!(
        matches!(LogonCert::from_der(&data), Err(CertError::NotCanonical { .. })),
        "critical FALSE"
    );
    // critical TRUE is fine.
    let data = with_raw_extensions(&der, V3, &[ext(&private, Some(true), &[5, 0])]);
    assert!(LogonCert::from_der(&data).is_ok());
    // version v1 spelled out ([0] INTEGER 0).
    let data = with_raw_extensions(&der, &[0xA0, 0x03, 0x02, 0x01, 0x00], &[]);
    assert!(
        matches!(LogonCert::from_der(&data), Err(CertError::NotCanonical { .. })),
        "explicit v1"
    );
}

#[test]
fn deep_nesting_never_overflows() {
    let der = CertSpec::bare("x").build().unwrap();
    let mut nested = vec![0x05, 0x00];
    for _ in 0..20_000 {
        nested = tlv(0x30, &nested);
    }
    // In an extension nobody decodes: fine.
    let private = Oid::new_unwrap("1.2.3.4");
    let data = with_raw_extensions(&der, V3, &[ext(&private, None, &nested)]);
    assert!(LogonCert::from_der(&data).is_ok());
    // In the extensions logon decodes: errors.
    for id in [
        oid::SUBJECT_ALT_NAME,
        oid::EXT_KEY_USAGE,
        oid::CERTIFICATE_TEMPLATE,
        oid::NTDS_CA_SECURITY_EXT,
    ] {
        let data = with_raw_extensions(&der, V3, &[ext(&id, None, &nested)]);
        assert!(matches!(LogonCert::from_der(&data), Err(CertError::Extension { .. })), "{id}");
    }
    // As the whole file.
    assert!(LogonCert::from_der(&nested).is_err());
    // Nesting inside a SAN directoryName.
    let mut dn = tlv(0x30, &[]);
    for _ in 0..5_000 {
        dn = tlv(0x30, &dn);
    }
    let san = tlv(0x30, &tlv(0xA4, &dn));
    let data = with_raw_extensions(&der, V3, &[ext(&oid::SUBJECT_ALT_NAME, None, &san)]);
    assert!(LogonCert::from_der(&data).is_err());
}

#[test]
fn repeated_extensions_are_rejected() {
    let spec = CertSpec::logon("a@example.com");
    let eku =
        x509_cert::ext::pkix::ExtendedKeyUsage(vec![oid::KP_SMARTCARD_LOGON]).to_der().unwrap();
    let der = spec.ext_again(oid::EXT_KEY_USAGE, false, eku).build().unwrap();
    let err = LogonCert::from_der(&der).unwrap_err();
    assert!(
        matches!(err, CertError::DuplicateExtension { oid } if oid == oid::EXT_KEY_USAGE),
        "{err:?}"
    );
}

#[test]
fn extensions_and_unique_ids_only_where_the_version_allows() {
    let der = CertSpec::logon("a@example.com").version(1).build().unwrap();
    let err = LogonCert::from_der(&der).unwrap_err();
    assert!(
        matches!(err, CertError::FieldNotInVersion { field: "extensions", version: 1 }),
        "{err:?}"
    );
    let der = CertSpec::logon("a@example.com").version(2).build().unwrap();
    assert!(matches!(
        LogonCert::from_der(&der),
        Err(CertError::FieldNotInVersion { version: 2, .. })
    ));
}

/// Each extension logon reads, with a value that does not decode or breaks its definition.
#[test]
fn a_bad_extension_logon_reads_rejects_the_file() {
    let bad: Vec<(Oid, Vec<u8>, &str)> = vec![
        (oid::KEY_USAGE, vec![0x04, 0x00], "keyUsage not a BIT STRING"),
        (oid::KEY_USAGE, vec![0x03, 0x01, 0x00], "keyUsage with no bit"),
        (oid::EXT_KEY_USAGE, vec![0x30, 0x00], "empty EKU"),
        (oid::EXT_KEY_USAGE, vec![0x30, 0x03, 0x02, 0x01, 0x01], "EKU of an INTEGER"),
        (oid::SUBJECT_ALT_NAME, vec![0x30, 0x00], "empty SAN"),
        (oid::SUBJECT_ALT_NAME, vec![0x30, 0x02, 0x05, 0x00], "SAN of a NULL"),
        (
            oid::SUBJECT_ALT_NAME,
            // otherName UPN whose UTF8String is not UTF-8.
            tlv(
                0x30,
                &tlv(
                    0xA0,
                    &[
                        oid::NT_PRINCIPAL_NAME.to_der().unwrap(),
                        tlv(0xA0, &tlv(0x0C, &[0xC3, 0x28])),
                    ]
                    .concat(),
                ),
            ),
            "UPN not UTF-8",
        ),
        (oid::SUBJECT_ALT_NAME, tlv(0x30, &tlv(0x81, &[0xE9])), "rfc822Name not IA5"),
        (oid::BASIC_CONSTRAINTS, vec![0x30, 0x03, 0x02, 0x01, 0xFF], "basicConstraints pathLen -1"),
        (oid::BASIC_CONSTRAINTS, vec![0x02, 0x01, 0x00], "basicConstraints not a SEQUENCE"),
        (oid::CERTIFICATE_TEMPLATE, vec![0x30, 0x00], "template without an OID"),
        (
            oid::CERTIFICATE_TEMPLATE,
            tlv(
                0x30,
                &[Oid::new_unwrap("1.2.3.4").to_der().unwrap(), vec![0x02, 0x05, 0x01, 0, 0, 0, 0]]
                    .concat(),
            ),
            "template major above 2^32-1",
        ),
        (
            oid::CERTIFICATE_TEMPLATE,
            tlv(
                0x30,
                &[Oid::new_unwrap("1.2.3.4").to_der().unwrap(), vec![0x02, 0x01, 0xFF]].concat(),
            ),
            "template major negative",
        ),
        (
            oid::CERTIFICATE_TEMPLATE,
            tlv(
                0x30,
                &[
                    Oid::new_unwrap("1.2.3.4").to_der().unwrap(),
                    vec![0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
                ]
                .concat(),
            ),
            "template with three versions",
        ),
        (oid::ENROLL_CERTTYPE, vec![0x02, 0x01, 0x01], "template name not a string"),
        (oid::ENROLL_CERTTYPE, vec![0x1E, 0x03, 0x00, 0x41, 0x00], "template name odd BMPString"),
        (oid::NTDS_CA_SECURITY_EXT, vec![0x30, 0x00], "SID extension without the SID"),
        (
            oid::NTDS_CA_SECURITY_EXT,
            tlv(
                0x30,
                &tlv(
                    0xA0,
                    &[oid::NTDS_OBJECTSID.to_der().unwrap(), tlv(0xA0, &tlv(0x04, b"not a sid"))]
                        .concat(),
                ),
            ),
            "SID extension with text that is not a SID",
        ),
        (
            oid::NTDS_CA_SECURITY_EXT,
            tlv(
                0x30,
                &tlv(
                    0xA0,
                    &[
                        oid::NTDS_OBJECTSID.to_der().unwrap(),
                        tlv(0xA0, &tlv(0x0C, b"S-1-5-21-1-2")),
                    ]
                    .concat(),
                ),
            ),
            "SID extension with a UTF8String",
        ),
    ];
    for (id, value, what) in bad {
        let der = CertSpec::bare("x").ext(id, false, value).build().unwrap();
        let err = LogonCert::from_der(&der).unwrap_err();
        assert!(
            matches!(err, CertError::Extension { .. } | CertError::ExtensionContent { .. }),
            "{what}: {err:?}"
        );
        assert!(err.to_string().contains(&id.to_string()), "{what}: {err}");
    }
}

#[test]
fn extensions_logon_does_not_read_are_not_decoded() {
    // A garbage authorityKeyIdentifier is not our business (rule 7 only looks at criticality).
    let der = CertSpec::logon("a@example.com")
        .ext(oid::AUTHORITY_KEY_ID, false, vec![0xFF])
        .build()
        .unwrap();
    assert!(LogonCert::from_der(&der).is_ok());
}

#[test]
fn bad_subject_keys_are_rejected() {
    use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
    let der = CertSpec::logon("a@example.com").build().unwrap();
    let replace_key = |spki: SubjectPublicKeyInfoOwned| -> Vec<u8> {
        use der::Decode;
        let mut cert = x509_cert::Certificate::from_der(&der).unwrap();
        cert.tbs_certificate.subject_public_key_info = spki;
        cert.to_der().unwrap()
    };
    let bits = |b: &[u8]| der::asn1::BitString::from_bytes(b).unwrap();
    let alg =
        |o: Oid, p: Option<der::asn1::Any>| AlgorithmIdentifierOwned { oid: o, parameters: p };
    let cases = vec![
        (
            "RSA key not an RSAPublicKey",
            alg(oid::RSA_ENCRYPTION, Some(der::asn1::Any::null())),
            bits(&[0x05, 0x00]),
        ),
        (
            "RSA zero modulus",
            alg(oid::RSA_ENCRYPTION, Some(der::asn1::Any::null())),
            bits(&[0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x03]),
        ),
        (
            "RSA negative modulus",
            alg(oid::RSA_ENCRYPTION, Some(der::asn1::Any::null())),
            bits(&[0x30, 0x06, 0x02, 0x01, 0x80, 0x02, 0x01, 0x03]),
        ),
        (
            "RSA parameters not NULL",
            alg(oid::RSA_ENCRYPTION, Some(der::asn1::Any::encode_from(&oid::SECP256R1).unwrap())),
            bits(&[0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x03]),
        ),
        ("EC without parameters", alg(oid::EC_PUBLIC_KEY, None), bits(&[0x04; 65])),
        (
            "EC P-256 short point",
            alg(oid::EC_PUBLIC_KEY, Some(der::asn1::Any::encode_from(&oid::SECP256R1).unwrap())),
            bits(&[0x04; 64]),
        ),
        (
            "EC P-256 bad point format",
            alg(oid::EC_PUBLIC_KEY, Some(der::asn1::Any::encode_from(&oid::SECP256R1).unwrap())),
            bits(&[0x05; 65]),
        ),
        (
            "EC empty point",
            alg(
                oid::EC_PUBLIC_KEY,
                Some(der::asn1::Any::encode_from(&Oid::new_unwrap("1.3.132.0.10")).unwrap()),
            ),
            bits(&[]),
        ),
        (
            "EC parameters an INTEGER",
            alg(oid::EC_PUBLIC_KEY, Some(der::asn1::Any::new(der::Tag::Integer, vec![1]).unwrap())),
            bits(&[0x04; 65]),
        ),
        (
            "Ed25519 with parameters",
            alg(oid::ED25519, Some(der::asn1::Any::null())),
            bits(&[1; 32]),
        ),
        ("Ed25519 short", alg(oid::ED25519, None), bits(&[1; 31])),
    ];
    for (what, algorithm, subject_public_key) in cases {
        let data = replace_key(SubjectPublicKeyInfoOwned { algorithm, subject_public_key });
        let err = LogonCert::from_der(&data).unwrap_err();
        assert!(matches!(err, CertError::PublicKey { .. }), "{what}: {err:?}");
    }
    // Compressed P-256 points are fine.
    let ok = replace_key(SubjectPublicKeyInfoOwned {
        algorithm: alg(
            oid::EC_PUBLIC_KEY,
            Some(der::asn1::Any::encode_from(&oid::SECP256R1).unwrap()),
        ),
        subject_public_key: bits(&[0x02; 33]),
    });
    assert!(LogonCert::from_der(&ok).is_ok());
    let _ = TestKey::P256;
}

#[test]
fn corrupting_any_byte_never_panics() {
    let der = good();
    for i in 0..der.len() {
        for value in [0x00, 0x01, 0x7F, 0x80, 0x81, 0xFF, der[i] ^ 0x20] {
            let mut data = der.clone();
            data[i] = value;
            let _ = LogonCert::from_der(&data).map(|c| (c.subject(), c.upn().map(str::to_owned)));
        }
        // Deleting or duplicating a byte.
        let mut data = der.clone();
        data.remove(i);
        assert!(LogonCert::from_der(&data).is_err());
        let mut data = der.clone();
        data.insert(i, der[i]);
        assert!(LogonCert::from_der(&data).is_err());
    }
}
