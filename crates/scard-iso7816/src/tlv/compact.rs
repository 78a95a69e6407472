//! COMPACT-TLV (ISO/IEC 7816-4 §8.1.1.2): one byte whose high quartet is the tag number and
//! whose low quartet is the length (0 to 15), then that many value bytes. Used by the
//! historical bytes of the ATR (see [`crate::atr`]).
//!
//! [`iter()`] walks a buffer without copying; [`write()`] appends one object.

use alloc::vec::Vec;
use core::iter::FusedIterator;

use crate::cursor::Cursor;
use crate::error::Error;

/// ISO/IEC 7816-4 §8.1.1.2: country code (ISO 3166-1), tag `1`.
pub const COUNTRY_CODE: u8 = 0x1;
/// ISO/IEC 7816-4 §8.1.1.2: issuer identification number (ISO/IEC 7812-1), tag `2`.
pub const ISSUER_IDENTIFICATION_NUMBER: u8 = 0x2;
/// ISO/IEC 7816-4 §8.1.1.2: card service data byte, tag `3`.
pub const CARD_SERVICE_DATA: u8 = 0x3;
/// ISO/IEC 7816-4 §8.1.1.2: initial access data, tag `4`.
pub const INITIAL_ACCESS_DATA: u8 = 0x4;
/// ISO/IEC 7816-4 §8.1.1.2: card issuer's data, tag `5`.
pub const CARD_ISSUER_DATA: u8 = 0x5;
/// ISO/IEC 7816-4 §8.1.1.2: pre-issuing data, tag `6`.
pub const PRE_ISSUING_DATA: u8 = 0x6;
/// ISO/IEC 7816-4 §8.1.1.2: card capabilities (software function tables), tag `7`.
pub const CARD_CAPABILITIES: u8 = 0x7;
/// ISO/IEC 7816-4 §8.1.1.3: status indicator (LCS, SW1-SW2), tag `8`.
pub const STATUS_INDICATOR: u8 = 0x8;
/// ISO/IEC 7816-4 §8.1.1.2: application identifier, tag `F`.
pub const APPLICATION_IDENTIFIER: u8 = 0xF;

/// Largest tag number and largest length: one quartet each.
pub const MAX_TAG: u8 = 0x0F;
/// Largest value length a COMPACT-TLV object can carry.
pub const MAX_LEN: usize = 15;

/// The name ISO/IEC 7816-4 §8.1.1.2 gives a COMPACT-TLV tag number, if any.
pub fn tag_name(tag: u8) -> Option<&'static str> {
    // ISO/IEC 7816-4 §8.1.1.2, the COMPACT-TLV tags of the historical bytes.
    match tag {
        COUNTRY_CODE => Some("country code"),
        ISSUER_IDENTIFICATION_NUMBER => Some("issuer identification number"),
        CARD_SERVICE_DATA => Some("card service data"),
        INITIAL_ACCESS_DATA => Some("initial access data"),
        CARD_ISSUER_DATA => Some("card issuer's data"),
        PRE_ISSUING_DATA => Some("pre-issuing data"),
        CARD_CAPABILITIES => Some("card capabilities"),
        STATUS_INDICATOR => Some("status indicator"),
        APPLICATION_IDENTIFIER => Some("application identifier"),
        _ => None,
    }
}

/// One COMPACT-TLV data object, borrowing its value from the decoded buffer. Built only by the
/// parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactTlv<'a> {
    pub(crate) tag: u8,
    pub(crate) value: &'a [u8],
    pub(crate) offset: usize,
}

impl<'a> CompactTlv<'a> {
    /// Tag number, 0 to 15 (the high quartet of the first byte).
    pub fn tag(&self) -> u8 {
        self.tag
    }

    /// The value bytes (as many as the low quartet of the first byte says).
    pub fn value(&self) -> &'a [u8] {
        self.value
    }

    /// Offset of the tag-length byte (absolute, when the iterator was given a base).
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The name of the tag (ISO/IEC 7816-4 §8.1.1.2), if it has one.
    pub fn name(&self) -> Option<&'static str> {
        tag_name(self.tag)
    }

    /// The tag-length byte that encodes this object.
    pub fn header(&self) -> u8 {
        // A value is never longer than 15 bytes: it came from a quartet.
        (self.tag << 4) | (u8::try_from(self.value.len()).unwrap_or(0) & 0x0F)
    }
}

/// Iterates over the COMPACT-TLV objects of `buf`; offsets are relative to `buf`.
pub fn iter(buf: &[u8]) -> Iter<'_> {
    Iter::with_base(buf, 0)
}

/// Zero-copy iterator over COMPACT-TLV objects. It yields `Err` once, for an object whose value
/// runs past the end of the buffer, and then stops (it is fused).
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    cursor: Cursor<'a>,
    failed: bool,
}

impl<'a> Iter<'a> {
    /// An iterator over `buf` whose first byte sits at absolute offset `base`, so that object
    /// offsets and errors name positions in an enclosing buffer (e.g. the whole ATR).
    pub(crate) fn with_base(buf: &'a [u8], base: usize) -> Self {
        Self { cursor: Cursor::with_base(buf, base), failed: false }
    }

    fn decode_one(&mut self) -> Result<CompactTlv<'a>, Error> {
        let offset = self.cursor.offset();
        // ISO/IEC 7816-4 §8.1.1.2: tag number in bits 8-5, length in bits 4-1.
        let header = self.cursor.take_u8("COMPACT-TLV tag-length byte")?;
        let tag = header >> 4;
        let len = usize::from(header & 0x0F);
        let available = self.cursor.remaining();
        let value = self
            .cursor
            .take(len, "COMPACT-TLV value")
            .map_err(|_| Error::LengthOverrun { offset, len, available })?;
        Ok(CompactTlv { tag, value, offset })
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = Result<CompactTlv<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.cursor.is_empty() {
            return None;
        }
        let item = self.decode_one();
        if item.is_err() {
            self.failed = true;
        }
        Some(item)
    }
}

impl FusedIterator for Iter<'_> {}

/// Appends one COMPACT-TLV object to `out`. The tag must be 0 to 15 and the value at most 15
/// bytes long (each is one quartet); otherwise nothing is written and an error says which.
pub fn write(out: &mut Vec<u8>, tag: u8, value: &[u8]) -> Result<(), Error> {
    // ISO/IEC 7816-4 §8.1.1.2: the tag number is one quartet.
    if tag > MAX_TAG {
        return Err(Error::InvalidTag {
            offset: out.len(),
            reason: "COMPACT-TLV tag number above 15",
        });
    }
    // ISO/IEC 7816-4 §8.1.1.2: the length is one quartet.
    let len = match u8::try_from(value.len()) {
        Ok(len) if usize::from(len) <= MAX_LEN => len,
        _ => return Err(Error::ValueTooLong { len: value.len(), encoding: "COMPACT-TLV" }),
    };
    out.reserve(1 + value.len());
    out.push((tag << 4) | len);
    out.extend_from_slice(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn iterates_yubikey_historical_bytes() {
        // YubiKey 5 (smartcard_list.txt): historical bytes after the category indicator 80.
        let buf = [0x73, 0xC0, 0x21, 0xC0, 0x57, 0x59, 0x75, 0x62, 0x69, 0x4B, 0x65, 0x79];
        let objects: Vec<_> = iter(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            objects,
            vec![
                CompactTlv { tag: 7, value: &[0xC0, 0x21, 0xC0], offset: 0 },
                CompactTlv { tag: 5, value: b"YubiKey", offset: 4 },
            ]
        );
        assert_eq!(objects[0].name(), Some("card capabilities"));
        assert_eq!(objects[1].name(), Some("card issuer's data"));
        assert_eq!(objects[0].header(), 0x73);
    }

    #[test]
    fn empty_buffer_and_zero_length_objects() {
        assert_eq!(iter(&[]).count(), 0);
        let objects: Vec<_> = iter(&[0x00, 0x80]).collect::<Result<_, _>>().unwrap();
        assert_eq!(objects[0], CompactTlv { tag: 0, value: &[], offset: 0 });
        assert_eq!(objects[1], CompactTlv { tag: 8, value: &[], offset: 1 });
    }

    #[test]
    fn overrun_is_reported_once_then_fused() {
        // 31 C0 then 73 announcing 3 bytes with only 2 left.
        let buf = [0x31, 0xC0, 0x73, 0xBE, 0x21];
        let mut it = iter(&buf);
        assert_eq!(it.next(), Some(Ok(CompactTlv { tag: 3, value: &[0xC0], offset: 0 })));
        assert_eq!(it.next(), Some(Err(Error::LengthOverrun { offset: 2, len: 3, available: 2 })));
        assert_eq!(it.next(), None);
        assert_eq!(it.next(), None);
    }

    #[test]
    fn base_makes_offsets_absolute() {
        let buf = [0x41, 0x11, 0x52];
        let mut it = Iter::with_base(&buf, 10);
        assert_eq!(it.next(), Some(Ok(CompactTlv { tag: 4, value: &[0x11], offset: 10 })));
        assert_eq!(it.next(), Some(Err(Error::LengthOverrun { offset: 12, len: 2, available: 0 })));
        assert_eq!(it.next(), None);
    }

    #[test]
    fn write_round_trips_and_checks_limits() {
        let mut out = Vec::new();
        write(&mut out, CARD_SERVICE_DATA, &[0xC5]).unwrap();
        write(&mut out, APPLICATION_IDENTIFIER, &[0xA0, 0x00, 0x00, 0x03, 0x08]).unwrap();
        write(&mut out, STATUS_INDICATOR, &[]).unwrap();
        write(&mut out, 0, &[0xAA; 15]).unwrap();
        assert_eq!(&out[..9], &[0x31, 0xC5, 0xF5, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x80]);
        assert_eq!(out[9], 0x0F);
        let decoded: Vec<_> = iter(&out).collect::<Result<_, _>>().unwrap();
        assert_eq!(decoded.len(), 4);
        let mut again = Vec::new();
        for tlv in &decoded {
            write(&mut again, tlv.tag, tlv.value).unwrap();
        }
        assert_eq!(again, out);

        let before = out.len();
        assert_eq!(
            write(&mut out, 16, &[]),
            Err(Error::InvalidTag { offset: before, reason: "COMPACT-TLV tag number above 15" })
        );
        assert_eq!(
            write(&mut out, 1, &[0; 16]),
            Err(Error::ValueTooLong { len: 16, encoding: "COMPACT-TLV" })
        );
        assert_eq!(out.len(), before, "nothing written on error");
    }

    #[test]
    fn tag_names_of_section_8_1_1_2() {
        let named: Vec<u8> = (0..=15).filter(|t| tag_name(*t).is_some()).collect();
        assert_eq!(named, vec![1, 2, 3, 4, 5, 6, 7, 8, 15]);
        assert_eq!(tag_name(1), Some("country code"));
        assert_eq!(tag_name(2), Some("issuer identification number"));
        assert_eq!(tag_name(6), Some("pre-issuing data"));
        assert_eq!(tag_name(8), Some("status indicator"));
        assert_eq!(tag_name(15), Some("application identifier"));
        assert_eq!(tag_name(0), None);
        assert_eq!(tag_name(9), None);
    }
}
