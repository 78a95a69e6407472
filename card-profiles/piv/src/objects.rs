//! PIV data objects as this profile reads and writes them (SP 800-73-4 Pt 1 §3 and Appendix A):
//! the GET DATA / PUT DATA envelopes, the CHUID, certificate objects and the Key History
//! object. Parsers only: a value here exists only if the card's bytes had the right shape.

use scard_iso7816::tlv::ber::{self, ParseOptions, Tag, Tlv};
use scard_minidriver::{CardError, PublicKey, Result};
use sha2::{Digest, Sha256};

/// Card Holder Unique Identifier (SP 800-73-4 Pt 1 Table 3).
pub const CHUID: u32 = 0x5F_C102;
/// Key History Object (SP 800-73-4 Pt 1 Table 3).
pub const KEY_HISTORY: u32 = 0x5F_C10C;

/// Appends one BER-TLV object. Tags here are constants and values are bounded by the APDU
/// size, so the encoder cannot refuse them; its error is still carried, never ignored.
pub fn put_tlv(out: &mut Vec<u8>, tag: u32, value: &[u8]) -> Result<()> {
    ber::write(out, Tag::new(tag), value)
        .map_err(|source| CardError::Codec { operation: "encoding a PIV command", source })
}

/// The bytes of a tag (1 to 3 bytes for PIV tags: 7E, 7F61, 5FC1xx), as a tag list 5C carries
/// it (SP 800-73-4 Pt 2 §3.1.2).
pub fn tag_bytes(tag: u32) -> Vec<u8> {
    let bytes = tag.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(3);
    bytes.get(skip..).unwrap_or_default().to_vec()
}

/// The command data of GET DATA: the tag list `5C` with one tag (SP 800-73-4 Pt 2 §3.1.2).
pub fn get_data_command(tag: u32) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(5);
    put_tlv(&mut out, 0x5C, &tag_bytes(tag))?;
    Ok(out)
}

/// The command data of PUT DATA: `5C` tag list and `53` the content (SP 800-73-4 Pt 2
/// §3.3.1); empty content removes the object.
pub fn put_data_command(tag: u32, content: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(content.len() + 12);
    put_tlv(&mut out, 0x5C, &tag_bytes(tag))?;
    put_tlv(&mut out, 0x53, content)?;
    Ok(out)
}

fn malformed(operation: &'static str, reason: impl Into<String>) -> CardError {
    CardError::Malformed { operation, reason: reason.into() }
}

/// Decodes `data` as exactly one BER-TLV object (trailing bytes are an error).
pub fn single<'a>(operation: &'static str, data: &'a [u8]) -> Result<Tlv<'a>> {
    let (tlv, rest) = ber::decode_one(data, ParseOptions::STRICT)
        .map_err(|source| CardError::Codec { operation, source })?;
    if !rest.is_empty() {
        return Err(malformed(operation, format!("{} bytes after the object", rest.len())));
    }
    Ok(tlv)
}

/// The children of a constructed value, each tag at most once, all well formed.
pub fn children<'a>(operation: &'static str, value: &'a [u8]) -> Result<Vec<Tlv<'a>>> {
    let mut out: Vec<Tlv<'a>> = Vec::new();
    for item in ber::iter(value, ParseOptions::STRICT) {
        let tlv = item.map_err(|source| CardError::Codec { operation, source })?;
        if out.iter().any(|t| t.tag() == tlv.tag()) {
            return Err(malformed(operation, format!("element {} appears twice", tlv.tag())));
        }
        out.push(tlv);
    }
    Ok(out)
}

/// The first child with `tag`.
pub fn child<'a>(children: &[Tlv<'a>], tag: u32) -> Option<&'a [u8]> {
    children.iter().find(|t| t.tag().value() == tag).map(|t| t.value())
}

/// The content of a GET DATA response: the `53` object (SP 800-73-4 Pt 2 §3.1.2). An empty
/// `53` is an object that was written empty (piv-authenticator keeps deleted objects so):
/// `None`, like an absent one.
pub fn object_content<'a>(operation: &'static str, response: &'a [u8]) -> Result<Option<&'a [u8]>> {
    let tlv = single(operation, response)?;
    if tlv.tag().value() != 0x53 {
        return Err(malformed(operation, format!("answer tag {}, expected 53", tlv.tag())));
    }
    Ok((!tlv.value().is_empty()).then_some(tlv.value()))
}

/// What the profile uses of the CHUID (SP 800-73-4 Pt 1 §3.1.2, Table 9).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chuid {
    /// 30: the FASC-N (25 bytes).
    pub fasc_n: Option<Vec<u8>>,
    /// 34: the card's GUID (16 bytes; all zeros means none).
    pub guid: Option<[u8; 16]>,
}

impl Chuid {
    /// Parses a CHUID content.
    pub fn parse(content: &[u8]) -> Result<Self> {
        const OP: &str = "reading the CHUID";
        let items = children(OP, content)?;
        let guid = match child(&items, 0x34) {
            None => None,
            Some(g) => Some(<[u8; 16]>::try_from(g).map_err(|_| {
                malformed(OP, format!("GUID (34) of {} bytes, expected 16", g.len()))
            })?),
        };
        let fasc_n = child(&items, 0x30).filter(|f| !f.is_empty()).map(<[u8]>::to_vec);
        Ok(Self { fasc_n, guid })
    }

    /// The GUID when it is not all zeros.
    pub fn real_guid(&self) -> Option<[u8; 16]> {
        self.guid.filter(|g| g.iter().any(|b| *b != 0))
    }

    /// The 16-byte card identity: the GUID, or when it is all zeros a SHA-256 of the FASC-N
    /// cut to 16 bytes (the FASC-N identifies the credential: TIG SCEPACS §6.2).
    pub fn card_id(&self) -> Option<[u8; 16]> {
        if let Some(guid) = self.real_guid() {
            return Some(guid);
        }
        let fasc_n = self.fasc_n.as_ref().filter(|f| f.iter().any(|b| *b != 0))?;
        Some(hash16(b"PIV FASC-N", fasc_n))
    }
}

/// SHA-256 of a domain label and `data`, the first 16 bytes.
pub fn hash16(label: &[u8], data: &[u8]) -> [u8; 16] {
    let digest = Sha256::new().chain_update(label).chain_update(data).finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(digest.get(..16).unwrap_or(&[0u8; 16]));
    out
}

/// SP 800-73-4 Pt 1 Table 10: CertInfo bit 0 (b1) set means the certificate is compressed
/// (gzip).
const CERTINFO_COMPRESSED: u8 = 0x01;

/// The certificate in a certificate object (SP 800-73-4 Pt 1 Table 10 and Tables 15-17: 70 the
/// certificate, 71 CertInfo, 72 MSCUID (optional), FE error detection code), inflated when
/// CertInfo says it is compressed.
pub fn certificate_from_object(content: &[u8]) -> Result<Vec<u8>> {
    const OP: &str = "reading a certificate object";
    let items = children(OP, content)?;
    let cert = child(&items, 0x70).ok_or_else(|| malformed(OP, "no certificate (70)"))?;
    let info = match child(&items, 0x71) {
        None | Some([]) => 0,
        Some([b]) => *b,
        Some(other) => {
            return Err(malformed(OP, format!("CertInfo (71) of {} bytes", other.len())));
        }
    };
    if info & CERTINFO_COMPRESSED != 0 {
        scard_minidriver::fs::gunzip_certificate(cert)
    } else if cert.is_empty() {
        Err(malformed(OP, "empty certificate (70)"))
    } else {
        Ok(cert.to_vec())
    }
}

/// The content of a certificate object for `der`: 70 the certificate, 71 CertInfo 00
/// (uncompressed), FE the empty error detection code (SP 800-73-4 Pt 1 Table 10).
pub fn certificate_object(der: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(der.len() + 12);
    put_tlv(&mut out, 0x70, der)?;
    put_tlv(&mut out, 0x71, &[0x00])?;
    put_tlv(&mut out, 0xFE, &[])?;
    Ok(out)
}

/// The public key of a certificate (its SubjectPublicKeyInfo: RFC 5280 §4.1.2.7).
pub fn certificate_public_key(der: &[u8]) -> Result<PublicKey> {
    use der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(der).map_err(|e| CardError::InvalidInput {
        what: "certificate",
        reason: format!("not a DER X.509 certificate: {e}"),
    })?;
    let spki = cert.tbs_certificate.subject_public_key_info.to_der().map_err(|e| {
        CardError::InvalidInput { what: "certificate", reason: format!("public key: {e}") }
    })?;
    PublicKey::from_spki_der(&spki)
}

/// The Key History object (SP 800-73-4 Pt 1 §3.3.2, Table 19): C1 keysWithOnCardCerts, C2
/// keysWithOffCardCerts, F3 offCardCertURL, FE error detection code. The retired keys with
/// on-card certificates are the lowest key references: 82 .. 82 + C1 - 1.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyHistory {
    /// C1.
    pub on_card: u8,
    /// C2.
    pub off_card: u8,
    /// F3, kept as it is when the object is written back.
    pub url: Option<Vec<u8>>,
}

impl KeyHistory {
    /// Parses a Key History content. C1 + C2 is at most 20 (the retired keys).
    pub fn parse(content: &[u8]) -> Result<Self> {
        const OP: &str = "reading the Key History object";
        let items = children(OP, content)?;
        let count = |tag: u32| -> Result<u8> {
            match child(&items, tag) {
                Some([n]) => Ok(*n),
                Some(other) => Err(malformed(OP, format!("{tag:02X} of {} bytes", other.len()))),
                None => Err(malformed(OP, format!("no {tag:02X}"))),
            }
        };
        let history = Self {
            on_card: count(0xC1)?,
            off_card: count(0xC2)?,
            url: child(&items, 0xF3).map(<[u8]>::to_vec),
        };
        if usize::from(history.on_card) + usize::from(history.off_card) > 20 {
            return Err(malformed(
                OP,
                format!("{} + {} retired keys; there are 20", history.on_card, history.off_card),
            ));
        }
        Ok(history)
    }

    /// Encodes the content.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        put_tlv(&mut out, 0xC1, &[self.on_card])?;
        put_tlv(&mut out, 0xC2, &[self.off_card])?;
        if let Some(url) = &self.url {
            put_tlv(&mut out, 0xF3, url)?;
        }
        put_tlv(&mut out, 0xFE, &[])?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scard_iso7816::hex::decode_lenient as h;

    #[test]
    fn envelopes() {
        assert_eq!(get_data_command(0x5FC105).unwrap(), h("5C 03 5F C1 05").unwrap());
        assert_eq!(get_data_command(0x7E).unwrap(), h("5C 01 7E").unwrap());
        assert_eq!(put_data_command(0x5FC10A, &[]).unwrap(), h("5C 03 5FC10A 53 00").unwrap());
        assert_eq!(object_content("t", &h("53 00").unwrap()).unwrap(), None);
        assert_eq!(object_content("t", &h("53 02 C1 00").unwrap()).unwrap(), Some(&[0xC1, 0][..]));
        assert!(object_content("t", &h("53 02 C1 00 00").unwrap()).is_err());
        assert!(object_content("t", &h("54 00").unwrap()).is_err());
        assert!(object_content("t", &h("53 05 C1").unwrap()).is_err());
    }

    #[test]
    fn chuid_card_id() {
        // SP 800-73-4 Pt 1 Table 9 layout, the test FASC-N of TIG SCEPACS.
        let fasc = h("D4E739DA739CED39CE739D836858210842108421C84210C3EB").unwrap();
        let mut content = Vec::new();
        put_tlv(&mut content, 0x30, &fasc).unwrap();
        put_tlv(&mut content, 0x34, &[0x11; 16]).unwrap();
        put_tlv(&mut content, 0x35, b"20991231").unwrap();
        put_tlv(&mut content, 0x3E, &[]).unwrap();
        put_tlv(&mut content, 0xFE, &[]).unwrap();
        let chuid = Chuid::parse(&content).unwrap();
        assert_eq!(chuid.card_id(), Some([0x11; 16]));
        // A zero GUID: the FASC-N, hashed; never the FASC-N bytes themselves.
        let zero = Chuid { guid: Some([0; 16]), fasc_n: Some(fasc.clone()) };
        let id = zero.card_id().unwrap();
        assert_eq!(id, hash16(b"PIV FASC-N", &fasc));
        assert_ne!(&id[..], &fasc[..16]);
        assert_eq!(Chuid { guid: Some([0; 16]), fasc_n: None }.card_id(), None);
        let mut bad = Vec::new();
        put_tlv(&mut bad, 0x34, &[1; 15]).unwrap();
        assert!(Chuid::parse(&bad).is_err());
    }

    #[test]
    fn key_history_roundtrip_and_limits() {
        let kh = KeyHistory { on_card: 2, off_card: 1, url: None };
        let enc = kh.encode().unwrap();
        assert_eq!(enc, h("C1 01 02 C2 01 01 FE 00").unwrap());
        assert_eq!(KeyHistory::parse(&enc).unwrap(), kh);
        assert!(KeyHistory::parse(&h("C1 01 15 C2 01 00").unwrap()).is_err());
        assert!(KeyHistory::parse(&h("C1 01 01").unwrap()).is_err());
    }

    #[test]
    fn certificate_objects() {
        let der = h("30 03 02 01 05").unwrap();
        let obj = certificate_object(&der).unwrap();
        assert_eq!(obj, h("70 05 3003020105 71 01 00 FE 00").unwrap());
        assert_eq!(certificate_from_object(&obj).unwrap(), der);
        assert!(certificate_from_object(&h("71 01 00").unwrap()).is_err());
        // CertInfo bit 0: gzip (SP 800-73-4 Pt 1 Table 10).
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&der).unwrap();
        let mut zipped = Vec::new();
        put_tlv(&mut zipped, 0x70, &gz.finish().unwrap()).unwrap();
        put_tlv(&mut zipped, 0x71, &[0x01]).unwrap();
        assert_eq!(certificate_from_object(&zipped).unwrap(), der);
    }
}
