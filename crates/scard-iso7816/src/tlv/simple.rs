//! SIMPLE-TLV data objects (ISO/IEC 7816-4:2005 §5.2.1): a one-byte tag and a length of one
//! byte, or of `FF` followed by two bytes.
//!
//! Decoding is zero-copy: [`iter`] yields [`SimpleTlv`] values borrowing from the buffer, with
//! absolute offsets, and allocates nothing. Strict by default; the one leniency (a three-byte
//! length where one byte would do) is the named option
//! [`ParseOptions::allow_non_minimal_length`].

use alloc::vec::Vec;
use core::fmt;
use core::iter::FusedIterator;

use crate::cursor::Cursor;
use crate::error::Error;
use crate::hex::Hex;

/// The largest length a SIMPLE-TLV length field can carry (`FF FFFF`).
pub const MAX_VALUE_LEN: usize = 0xFFFF;

/// How forgiving the decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ParseOptions {
    /// Accept `FF 00 xx` with `xx` below `FF`, a length one byte could have carried.
    pub allow_non_minimal_length: bool,
}

impl ParseOptions {
    /// Lengths must use the one-byte form when they can.
    pub const STRICT: ParseOptions = ParseOptions { allow_non_minimal_length: false };
    /// Three-byte lengths accepted for any value.
    pub const LENIENT: ParseOptions = ParseOptions { allow_non_minimal_length: true };
}

/// One decoded SIMPLE-TLV object, borrowing from the buffer it was decoded from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SimpleTlv<'a> {
    tag: u8,
    value: &'a [u8],
    raw: &'a [u8],
    offset: usize,
}

impl<'a> SimpleTlv<'a> {
    /// The tag, `01` to `FE`.
    pub fn tag(&self) -> u8 {
        self.tag
    }

    /// The value field (empty when the length is zero).
    pub fn value(&self) -> &'a [u8] {
        self.value
    }

    /// The whole encoding: tag, length and value fields.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Absolute offset of the tag byte.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl fmt::Debug for SimpleTlv<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleTlv")
            .field("tag", &format_args!("{:02X}", self.tag))
            .field("offset", &self.offset)
            .field("value", &Hex(self.value))
            .finish()
    }
}

/// Iterator over consecutive SIMPLE-TLV objects. Yields at most one error, then ends.
#[derive(Debug, Clone)]
pub struct SimpleTlvIter<'a> {
    cur: Cursor<'a>,
    opts: ParseOptions,
    done: bool,
}

impl<'a> Iterator for SimpleTlvIter<'a> {
    type Item = Result<SimpleTlv<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.cur.is_empty() {
            self.done = true;
            return None;
        }
        let item = read(&mut self.cur, self.opts);
        if item.is_err() {
            self.done = true;
        }
        Some(item)
    }
}

impl FusedIterator for SimpleTlvIter<'_> {}

/// Iterates the SIMPLE-TLV objects of `buf` (offsets from the start of `buf`).
pub fn iter(buf: &[u8], opts: ParseOptions) -> SimpleTlvIter<'_> {
    SimpleTlvIter { cur: Cursor::new(buf), opts, done: false }
}

/// Decodes the object at the start of `buf` and returns it with the bytes that follow it.
pub fn decode_one(buf: &[u8], opts: ParseOptions) -> Result<(SimpleTlv<'_>, &[u8]), Error> {
    let mut cur = Cursor::new(buf);
    let tlv = read(&mut cur, opts)?;
    Ok((tlv, cur.rest()))
}

/// The first object of `buf` with `tag`. Errors met before it are returned; bytes after it are
/// not looked at.
pub fn find(buf: &[u8], tag: u8, opts: ParseOptions) -> Result<Option<SimpleTlv<'_>>, Error> {
    for item in iter(buf, opts) {
        let tlv = item?;
        if tlv.tag == tag {
            return Ok(Some(tlv));
        }
    }
    Ok(None)
}

/// Checks that `buf` is a sequence of well-formed SIMPLE-TLV objects.
pub fn validate(buf: &[u8], opts: ParseOptions) -> Result<(), Error> {
    iter(buf, opts).try_for_each(|item| item.map(|_| ()))
}

/// Appends one object: `tag`, the shortest length field for `value`, and `value`. Nothing is
/// appended when the tag is `00` or `FF` ([`Error::InvalidTag`]) or the value is longer than
/// 65535 bytes ([`Error::ValueTooLong`]).
pub fn write(out: &mut Vec<u8>, tag: u8, value: &[u8]) -> Result<(), Error> {
    check_tag(tag, 0)?;
    // ISO/IEC 7816-4 §5.2.1: the three-byte length field carries at most 65535.
    let len = u16::try_from(value.len())
        .map_err(|_| Error::ValueTooLong { len: value.len(), encoding: "SIMPLE-TLV" })?;
    out.push(tag);
    match u8::try_from(len) {
        // ISO/IEC 7816-4 §5.2.1: a first length byte other than 'FF' is the length (0 to 254).
        Ok(short) if short != 0xFF => out.push(short),
        _ => {
            out.push(0xFF);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    out.extend_from_slice(value);
    Ok(())
}

/// ISO/IEC 7816-4 §5.2.1: the tag is one byte from 1 to 254; '00' and 'FF' are invalid.
fn check_tag(tag: u8, offset: usize) -> Result<(), Error> {
    if tag == 0x00 || tag == 0xFF {
        return Err(Error::InvalidTag { offset, reason: "SIMPLE-TLV tags 00 and FF are invalid" });
    }
    Ok(())
}

fn read<'a>(cur: &mut Cursor<'a>, opts: ParseOptions) -> Result<SimpleTlv<'a>, Error> {
    let mut whole = cur.clone();
    let offset = cur.offset();
    let tag = cur.take_u8("SIMPLE-TLV tag")?;
    check_tag(tag, offset)?;
    let length_offset = cur.offset();
    let first = cur.take_u8("SIMPLE-TLV length")?;
    let len = if first == 0xFF {
        // ISO/IEC 7816-4 §5.2.1: 'FF' then two bytes encoding 0 to 65535.
        let len = cur.take_u16_be("SIMPLE-TLV length")?;
        // Our strictness, not the clause's ("any value"): 0 to 254 fit the one-byte form.
        if len < 0xFF && !opts.allow_non_minimal_length {
            return Err(Error::NonMinimalLength { offset: length_offset });
        }
        usize::from(len)
    } else {
        // ISO/IEC 7816-4 §5.2.1: a single byte encoding 0 to 254.
        usize::from(first)
    };
    let available = cur.remaining();
    if len > available {
        return Err(Error::LengthOverrun { offset: length_offset, len, available });
    }
    let value = cur.sub(len, "SIMPLE-TLV value")?.rest();
    let raw = whole.take(cur.offset() - offset, "SIMPLE-TLV object")?;
    Ok(SimpleTlv { tag, value, raw, offset })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex::decode_lenient;
    use alloc::{format, vec};

    fn h(text: &str) -> Vec<u8> {
        decode_lenient(text).unwrap()
    }

    fn all(buf: &[u8], opts: ParseOptions) -> Result<Vec<SimpleTlv<'_>>, Error> {
        iter(buf, opts).collect()
    }

    fn round_trip(buf: &[u8]) {
        let mut out = Vec::new();
        for tlv in all(buf, ParseOptions::STRICT).unwrap() {
            write(&mut out, tlv.tag(), tlv.value()).unwrap();
        }
        assert_eq!(out, buf);
    }

    #[test]
    fn short_and_long_lengths() {
        let mut buf = h("01 00  02 03 AABBCC  03 FE");
        buf.resize(buf.len() + 0xFE, 0x11);
        buf.extend(h("04 FF 00FF"));
        buf.resize(buf.len() + 0xFF, 0x22);
        buf.extend(h("FE FF 0100"));
        buf.resize(buf.len() + 0x100, 0x33);
        let objects = all(&buf, ParseOptions::STRICT).unwrap();
        let summary: Vec<_> =
            objects.iter().map(|t| (t.tag(), t.offset(), t.value().len())).collect();
        assert_eq!(
            summary,
            [
                (0x01, 0, 0),
                (0x02, 2, 3),
                (0x03, 7, 0xFE),
                (0x04, 0x107, 0xFF),
                (0xFE, 0x20A, 0x100)
            ]
        );
        assert_eq!(objects[1].value(), h("AABBCC"));
        assert_eq!(objects[1].raw(), h("02 03 AABBCC"));
        assert_eq!(objects[3].raw().len(), 4 + 0xFF);
        round_trip(&buf);
    }

    #[test]
    fn largest_value() {
        let mut buf = h("42 FF FFFF");
        buf.resize(buf.len() + 0xFFFF, 0x5A);
        let (tlv, rest) = decode_one(&buf, ParseOptions::STRICT).unwrap();
        assert_eq!(tlv.value().len(), MAX_VALUE_LEN);
        assert!(rest.is_empty());
        round_trip(&buf);
        let mut out = vec![0xAA];
        assert_eq!(
            write(&mut out, 0x42, &vec![0; MAX_VALUE_LEN + 1]),
            Err(Error::ValueTooLong { len: 0x1_0000, encoding: "SIMPLE-TLV" })
        );
        assert_eq!(out, [0xAA]);
    }

    #[test]
    fn write_picks_the_shortest_length() {
        for (len, header) in
            [(0usize, "07 00"), (0xFE, "07 FE"), (0xFF, "07 FF 00FF"), (0x1234, "07 FF 1234")]
        {
            let mut out = Vec::new();
            write(&mut out, 0x07, &vec![0; len]).unwrap();
            assert_eq!(&out[..out.len() - len], h(header), "{len:X}");
        }
    }

    #[test]
    fn tags_00_and_ff_are_invalid() {
        assert_eq!(
            all(&h("01 00 00 00"), ParseOptions::LENIENT),
            Err(Error::InvalidTag { offset: 2, reason: "SIMPLE-TLV tags 00 and FF are invalid" })
        );
        assert!(matches!(
            all(&h("FF 00"), ParseOptions::STRICT),
            Err(Error::InvalidTag { offset: 0, .. })
        ));
        for bad in [0x00, 0xFF] {
            let mut out = Vec::new();
            assert!(matches!(write(&mut out, bad, &[]), Err(Error::InvalidTag { .. })));
            assert!(out.is_empty());
        }
    }

    #[test]
    fn non_minimal_length_needs_the_option() {
        for (encoding, len) in
            [("01 FF 0000", 0usize), ("01 FF 0005 0102030405", 5), ("01 FF 00FE", 0xFE)]
        {
            let mut buf = h(encoding);
            buf.resize(4 + len, 0);
            assert_eq!(
                all(&buf, ParseOptions::STRICT),
                Err(Error::NonMinimalLength { offset: 1 }),
                "{encoding}"
            );
            let objects = all(&buf, ParseOptions::LENIENT).unwrap();
            assert_eq!(objects.len(), 1);
            assert_eq!(objects[0].value().len(), len);
            assert_eq!(objects[0].raw(), &buf[..]);
        }
    }

    #[test]
    fn overrun_and_truncation() {
        assert_eq!(
            all(&h("01 01 AA 02 05 BBCC"), ParseOptions::STRICT),
            Err(Error::LengthOverrun { offset: 4, len: 5, available: 2 })
        );
        assert_eq!(
            all(&h("01 FF 01"), ParseOptions::STRICT),
            Err(Error::Truncated { what: "SIMPLE-TLV length", offset: 2, needed: 2, available: 1 })
        );
        assert_eq!(
            all(&h("01"), ParseOptions::STRICT),
            Err(Error::Truncated { what: "SIMPLE-TLV length", offset: 1, needed: 1, available: 0 })
        );
        assert!(matches!(
            decode_one(&[], ParseOptions::STRICT),
            Err(Error::Truncated { offset: 0, .. })
        ));
        assert_eq!(all(&[], ParseOptions::STRICT).unwrap().len(), 0);
    }

    #[test]
    fn truncation_at_every_byte() {
        let mut objects = vec![h("01 00"), h("02 03 AABBCC"), h("7F FF 0100")];
        objects[2].resize(4 + 0x100, 0x44);
        objects.push(h("FE 01 55"));
        let mut buf = Vec::new();
        let mut boundaries = vec![(0usize, 0usize)];
        for object in &objects {
            buf.extend_from_slice(object);
            boundaries.push((buf.len(), boundaries.len()));
        }
        for n in 0..=buf.len() {
            let boundary = boundaries.iter().find(|(end, _)| *end == n);
            match (all(&buf[..n], ParseOptions::STRICT), boundary) {
                (Ok(found), Some((_, expected))) => assert_eq!(found.len(), *expected, "{n}"),
                (Err(Error::Truncated { .. } | Error::LengthOverrun { .. }), None) => {}
                (result, _) => panic!("prefix of {n} bytes: {result:?}"),
            }
        }
    }

    #[test]
    fn fused_after_error_and_find() {
        let buf = h("01 01 AA 00 02 01 BB");
        let mut it = iter(&buf, ParseOptions::STRICT);
        assert!(matches!(it.next(), Some(Ok(_))));
        assert!(matches!(it.next(), Some(Err(Error::InvalidTag { offset: 3, .. }))));
        assert!(it.next().is_none());
        assert_eq!(find(&buf, 0x01, ParseOptions::STRICT).unwrap().unwrap().value(), &[0xAA]);
        assert!(find(&buf, 0x02, ParseOptions::STRICT).is_err());
        assert!(validate(&buf, ParseOptions::STRICT).is_err());
        assert_eq!(validate(&buf[..3], ParseOptions::STRICT), Ok(()));
        let (first, rest) = decode_one(&buf, ParseOptions::STRICT).unwrap();
        assert_eq!((first.tag(), rest), (0x01, &buf[3..]));
    }

    #[test]
    fn debug_is_short() {
        let buf = h("0A 02 CAFE");
        let tlv = decode_one(&buf, ParseOptions::STRICT).unwrap().0;
        assert_eq!(format!("{tlv:?}"), "SimpleTlv { tag: 0A, offset: 0, value: CAFE }");
    }

    #[test]
    fn iterator_owns_no_heap_memory() {
        // See the BER-TLV test of the same name: nothing here owns a heap buffer.
        assert!(!core::mem::needs_drop::<SimpleTlvIter<'static>>());
        assert!(!core::mem::needs_drop::<SimpleTlv<'static>>());
    }
}
