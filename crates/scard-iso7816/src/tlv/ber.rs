//! BER-TLV data objects (ISO/IEC 7816-4:2005 §5.2.2; tag and length fields per ISO/IEC 8825-1,
//! i.e. X.690 §8.1.2 and §8.1.3).
//!
//! Decoding is zero-copy: [`iter`] walks a buffer and yields [`Tlv`] values that borrow their
//! tag, value and raw encoding from it; nothing is allocated per element. Constructed objects
//! are opened one level at a time with [`Tlv::children`], which keeps absolute offsets (so an
//! error deep inside a response still names its position in the whole buffer) and enforces
//! [`ParseOptions::max_depth`].
//!
//! Strict by default: minimal lengths, no padding. The two leniencies real cards need are named
//! options ([`ParseOptions::allow_non_minimal_length`], [`ParseOptions::skip_padding`]), never
//! silent fallbacks. A strict decode re-encoded with [`write()`] gives back the same bytes.

use alloc::vec::Vec;
use core::fmt;
use core::iter::FusedIterator;

use crate::cursor::Cursor;
use crate::error::Error;
use crate::hex::Hex;

/// Tag fields longer than this are rejected with [`Error::TagTooLong`]: a leading byte and at
/// most three subsequent bytes, so that every tag fits the `u32` of [`Tag`].
pub const MAX_TAG_LEN: usize = 4;

/// Length fields carry at most this many subsequent bytes ('81' to '84').
pub const MAX_LENGTH_OCTETS: usize = 4;

/// Depth limit of [`ParseOptions::STRICT`] and [`ParseOptions::LENIENT`].
pub const DEFAULT_MAX_DEPTH: usize = 16;

/// The class of a tag, bits 8-7 of its leading byte (X.690 §8.1.2.2, table 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagClass {
    /// `00`: universal (ASN.1 types such as INTEGER 02, SEQUENCE 30).
    Universal,
    /// `01`: application (e.g. 4F, 5F2D, 61, 7F49).
    Application,
    /// `10`: context-specific (e.g. 80, 9A, A5, BF0C).
    ContextSpecific,
    /// `11`: private (e.g. C0, DF1F, FE).
    Private,
}

/// A BER-TLV tag: the tag bytes as written on the wire, big-endian in a `u32`
/// (`5FC102`, `7F49`, `9A`).
///
/// An open newtype: any tag a card sends round-trips. [`Tag::new`] does not check the value (so
/// tags can be `const`); [`Tag::from_bytes`] and [`write()`] do.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(u32);

impl Tag {
    /// The tag whose bytes, big-endian, are `value` (`Tag::new(0x5FC102)` is `5F C1 02`).
    /// Not checked; an ill-formed tag is refused by [`write()`].
    pub const fn new(value: u32) -> Tag {
        Tag(value)
    }

    /// Parses exactly one complete tag field, nothing before or after it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Tag, Error> {
        let mut cur = Cursor::new(bytes);
        let tag = read_tag(&mut cur)?;
        cur.finish("BER-TLV tag")?;
        Ok(tag)
    }

    /// The tag bytes as a big-endian number.
    pub const fn value(self) -> u32 {
        self.0
    }

    /// Number of bytes of the tag field (1 to 4).
    pub const fn encoded_len(self) -> usize {
        match self.0 {
            0..=0xFF => 1,
            0x100..=0xFFFF => 2,
            0x1_0000..=0xFF_FFFF => 3,
            _ => 4,
        }
    }

    /// Appends the tag bytes to `out`.
    pub fn to_bytes(&self, out: &mut Vec<u8>) {
        let bytes = self.0.to_be_bytes();
        out.extend_from_slice(bytes.get(4 - self.encoded_len()..).unwrap_or_default());
    }

    /// The leading byte of the tag field.
    const fn leading_byte(self) -> u8 {
        // Truncation intended: the shift leaves the leading byte in the low 8 bits.
        (self.0 >> (8 * (self.encoded_len() - 1))) as u8
    }

    /// Class from bits 8-7 of the leading byte (X.690 §8.1.2.2).
    pub const fn class(self) -> TagClass {
        match self.leading_byte() >> 6 {
            0 => TagClass::Universal,
            1 => TagClass::Application,
            2 => TagClass::ContextSpecific,
            _ => TagClass::Private,
        }
    }

    /// Bit 6 of the leading byte: the value is a sequence of BER-TLV objects (X.690 §8.1.2.5).
    pub const fn is_constructed(self) -> bool {
        self.leading_byte() & 0x20 != 0
    }

    /// The tag number: bits 5-1 of the leading byte, or bits 7-1 of the subsequent bytes
    /// concatenated when bits 5-1 are all one (X.690 §8.1.2.4.2 b).
    pub fn number(self) -> u32 {
        let lead = self.leading_byte();
        if lead & 0x1F != 0x1F {
            return u32::from(lead & 0x1F);
        }
        self.0
            .to_be_bytes()
            .iter()
            .skip(5 - self.encoded_len())
            .fold(0u32, |acc, b| (acc << 7) | u32::from(b & 0x7F))
    }

    /// Succeeds when the tag is one complete, well-formed tag field.
    fn check(self) -> Result<(), Error> {
        let mut bytes = Vec::with_capacity(MAX_TAG_LEN);
        self.to_bytes(&mut bytes);
        match Tag::from_bytes(&bytes) {
            Ok(parsed) if parsed == self => Ok(()),
            Ok(_) | Err(Error::TrailingBytes { .. }) => {
                Err(Error::InvalidTag { offset: 0, reason: "value holds more than one tag field" })
            }
            Err(Error::Truncated { .. }) => {
                Err(Error::InvalidTag { offset: 0, reason: "tag field is incomplete" })
            }
            Err(e) => Err(e),
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:0width$X}", self.0, width = 2 * self.encoded_len())
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({self})")
    }
}

/// How forgiving the decoder is. Every leniency is a named flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// Accept lengths encoded in more bytes than needed (`81 05`, `82 00 10`).
    pub allow_non_minimal_length: bool,
    /// Skip `00` and `FF` bytes before, between and after objects (ISO/IEC 7816-4 §5.2.2).
    pub skip_padding: bool,
    /// Deepest nesting accepted: top-level objects have depth 0, the children of a depth-`n`
    /// object depth `n + 1`. An object deeper than this is [`Error::DepthExceeded`].
    pub max_depth: usize,
}

impl ParseOptions {
    /// Minimal lengths, no padding, depth 16.
    pub const STRICT: ParseOptions = ParseOptions {
        allow_non_minimal_length: false,
        skip_padding: false,
        max_depth: DEFAULT_MAX_DEPTH,
    };

    /// Non-minimal lengths and padding accepted, depth 16.
    pub const LENIENT: ParseOptions = ParseOptions {
        allow_non_minimal_length: true,
        skip_padding: true,
        max_depth: DEFAULT_MAX_DEPTH,
    };
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self::STRICT
    }
}

/// One decoded BER-TLV object, borrowing from the buffer it was decoded from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    tag: Tag,
    value: &'a [u8],
    raw: &'a [u8],
    offset: usize,
    value_offset: usize,
    depth: usize,
    opts: ParseOptions,
}

impl<'a> Tlv<'a> {
    /// The tag.
    pub fn tag(&self) -> Tag {
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

    /// Absolute offset of the first tag byte.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Absolute offset of the first value byte.
    pub fn value_offset(&self) -> usize {
        self.value_offset
    }

    /// Nesting depth: 0 for top-level objects.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Whether the tag says the value is a sequence of BER-TLV objects.
    pub fn is_constructed(&self) -> bool {
        self.tag.is_constructed()
    }

    /// Iterates the value as BER-TLV objects one level down, with the same options and absolute
    /// offsets. Works whatever the constructed bit says: the caller asked for it.
    pub fn children(&self) -> TlvIter<'a> {
        TlvIter {
            cur: Cursor::with_base(self.value, self.value_offset),
            opts: self.opts,
            depth: self.depth.saturating_add(1),
            done: false,
        }
    }

    /// The first direct child with `tag`. Errors met before it are returned.
    pub fn find(&self, tag: Tag) -> Result<Option<Tlv<'a>>, Error> {
        find_in(self.children(), tag)
    }
}

impl fmt::Debug for Tlv<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tlv")
            .field("tag", &self.tag)
            .field("offset", &self.offset)
            .field("value", &Hex(self.value))
            .finish()
    }
}

/// Iterator over consecutive BER-TLV objects at one nesting level. Yields at most one error,
/// then ends.
#[derive(Debug, Clone)]
pub struct TlvIter<'a> {
    cur: Cursor<'a>,
    opts: ParseOptions,
    depth: usize,
    done: bool,
}

impl<'a> Iterator for TlvIter<'a> {
    type Item = Result<Tlv<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.opts.skip_padding {
            skip_padding(&mut self.cur);
        }
        if self.cur.is_empty() {
            self.done = true;
            return None;
        }
        let item = if self.depth > self.opts.max_depth {
            Err(Error::DepthExceeded { offset: self.cur.offset(), limit: self.opts.max_depth })
        } else {
            read_tlv(&mut self.cur, self.opts, self.depth)
        };
        if item.is_err() {
            self.done = true;
        }
        Some(item)
    }
}

impl FusedIterator for TlvIter<'_> {}

/// Iterates the top-level objects of `buf` (depth 0, offsets from the start of `buf`).
pub fn iter(buf: &[u8], opts: ParseOptions) -> TlvIter<'_> {
    TlvIter { cur: Cursor::new(buf), opts, depth: 0, done: false }
}

/// Decodes the object at the start of `buf` (after padding, if skipped) and returns it with the
/// bytes that follow it. An empty buffer is [`Error::Truncated`].
pub fn decode_one(buf: &[u8], opts: ParseOptions) -> Result<(Tlv<'_>, &[u8]), Error> {
    let mut cur = Cursor::new(buf);
    if opts.skip_padding {
        skip_padding(&mut cur);
    }
    let tlv = read_tlv(&mut cur, opts, 0)?;
    Ok((tlv, cur.rest()))
}

/// The first top-level object of `buf` with `tag`. Errors met before it are returned; bytes
/// after it are not looked at.
pub fn find(buf: &[u8], tag: Tag, opts: ParseOptions) -> Result<Option<Tlv<'_>>, Error> {
    find_in(iter(buf, opts), tag)
}

/// Checks that `buf` is a sequence of well-formed objects, opening every constructed object down
/// to `opts.max_depth`. Iterative: the explicit stack holds one iterator per open level and is
/// bounded by `max_depth + 2` (and by half the buffer length).
pub fn validate(buf: &[u8], opts: ParseOptions) -> Result<(), Error> {
    let mut stack: Vec<TlvIter<'_>> = Vec::new();
    stack.push(iter(buf, opts));
    while let Some(level) = stack.last_mut() {
        match level.next() {
            None => {
                stack.pop();
            }
            Some(Err(e)) => return Err(e),
            Some(Ok(tlv)) => {
                if tlv.is_constructed() {
                    stack.push(tlv.children());
                }
            }
        }
    }
    Ok(())
}

/// Appends the minimal length field for `len` (X.690 §10.1): one byte below 128, else `81` to
/// `84` and the length in as few bytes as it needs.
pub fn encode_length(len: usize, out: &mut Vec<u8>) -> Result<(), Error> {
    push_length(length_u32(len)?, out);
    Ok(())
}

/// Appends one object: `tag`, the minimal length of `value`, and `value`. Nothing is appended
/// when the tag is ill-formed ([`Error::InvalidTag`], [`Error::TagTooLong`]) or the value longer
/// than `FFFFFFFF` bytes ([`Error::ValueTooLong`]).
pub fn write(out: &mut Vec<u8>, tag: Tag, value: &[u8]) -> Result<(), Error> {
    tag.check()?;
    let len = length_u32(value.len())?;
    tag.to_bytes(out);
    push_length(len, out);
    out.extend_from_slice(value);
    Ok(())
}

fn find_in<'a>(objects: TlvIter<'a>, tag: Tag) -> Result<Option<Tlv<'a>>, Error> {
    for item in objects {
        let tlv = item?;
        if tlv.tag == tag {
            return Ok(Some(tlv));
        }
    }
    Ok(None)
}

/// ISO/IEC 7816-4 §5.2.2: '00' or 'FF' bytes without meaning may occur before, between or after
/// BER-TLV objects.
fn skip_padding(cur: &mut Cursor<'_>) {
    while matches!(cur.peek_u8(), Some(0x00 | 0xFF)) {
        if cur.take(1, "BER-TLV padding").is_err() {
            break;
        }
    }
}

fn read_tlv<'a>(cur: &mut Cursor<'a>, opts: ParseOptions, depth: usize) -> Result<Tlv<'a>, Error> {
    let mut whole = cur.clone();
    let offset = cur.offset();
    let tag = read_tag(cur)?;
    let length_offset = cur.offset();
    let len = read_length(cur, opts)?;
    let available = cur.remaining();
    if len > available {
        return Err(Error::LengthOverrun { offset: length_offset, len, available });
    }
    let value = cur.sub(len, "BER-TLV value")?;
    let raw = whole.take(cur.offset() - offset, "BER-TLV object")?;
    Ok(Tlv { tag, value: value.rest(), raw, offset, value_offset: value.offset(), depth, opts })
}

fn read_tag(cur: &mut Cursor<'_>) -> Result<Tag, Error> {
    let offset = cur.offset();
    let lead = cur.take_u8("BER-TLV tag")?;
    // ISO/IEC 7816-4 §5.2.2.1: '00' and 'FF' are invalid first tag bytes (they are padding).
    if lead == 0x00 || lead == 0xFF {
        return Err(Error::InvalidTag {
            offset,
            reason: "00 and FF are not valid first tag bytes",
        });
    }
    let mut value = u32::from(lead);
    // X.690 §8.1.2.3: bits 5-1 not all one, the tag field is this single byte.
    if lead & 0x1F != 0x1F {
        return Ok(Tag(value));
    }
    // X.690 §8.1.2.4: bits 5-1 all one, subsequent bytes follow. Tag numbers below 31 in this
    // form (EMV's 9F02, 9F1A, ...) are accepted: they round-trip byte for byte.
    for index in 1..MAX_TAG_LEN {
        let byte_offset = cur.offset();
        let byte = cur.take_u8("BER-TLV tag")?;
        // X.690 §8.1.2.4.2 c: bits 7-1 of the first subsequent byte shall not all be zero.
        if index == 1 && byte & 0x7F == 0 {
            return Err(Error::InvalidTag {
                offset: byte_offset,
                reason: "first subsequent tag byte has bits 7-1 all zero",
            });
        }
        value = (value << 8) | u32::from(byte);
        // X.690 §8.1.2.4.2 a: bit 8 is one in every subsequent byte but the last.
        if byte & 0x80 == 0 {
            return Ok(Tag(value));
        }
    }
    Err(Error::TagTooLong { offset, max: MAX_TAG_LEN })
}

fn read_length(cur: &mut Cursor<'_>, opts: ParseOptions) -> Result<usize, Error> {
    let offset = cur.offset();
    let first = cur.take_u8("BER-TLV length")?;
    // X.690 §8.1.3.4: short form, bit 8 zero, the length is bits 7-1.
    if first & 0x80 == 0 {
        return Ok(usize::from(first));
    }
    // ISO/IEC 7816-4 §5.2.2.2: ISO/IEC 7816 does not use the indefinite form '80' (X.690 §8.1.3.6).
    if first == 0x80 {
        return Err(Error::IndefiniteLength { offset });
    }
    let octets = usize::from(first & 0x7F);
    // ISO/IEC 7816-4 §5.2.2.2: '85' to 'FF' are invalid first length bytes (X.690 §8.1.3.5 c
    // reserves 'FF' as well).
    if octets > MAX_LENGTH_OCTETS {
        return Err(Error::LengthTooLong { offset, octets });
    }
    // X.690 §8.1.3.5: long form, bits 7-1 give the number of subsequent bytes.
    let bytes = cur.take(octets, "BER-TLV length")?;
    let len = bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
    // X.690 §10.1 (and ISO/IEC 7816-4 §5.2.2.2 table 8): the length in the fewest bytes.
    if usize::from(length_octets(len)) != octets && !opts.allow_non_minimal_length {
        return Err(Error::NonMinimalLength { offset });
    }
    usize::try_from(len).map_err(|_| Error::LengthOverrun {
        offset,
        len: usize::MAX,
        available: cur.remaining(),
    })
}

/// Subsequent bytes of the minimal length field for `len` (0 for the short form).
const fn length_octets(len: u32) -> u8 {
    match len {
        0..=0x7F => 0,
        0x80..=0xFF => 1,
        0x100..=0xFFFF => 2,
        0x1_0000..=0xFF_FFFF => 3,
        _ => 4,
    }
}

fn length_u32(len: usize) -> Result<u32, Error> {
    u32::try_from(len).map_err(|_| Error::ValueTooLong { len, encoding: "BER-TLV" })
}

fn push_length(len: u32, out: &mut Vec<u8>) {
    let octets = length_octets(len);
    if octets == 0 {
        out.extend_from_slice(len.to_be_bytes().get(3..).unwrap_or_default());
    } else {
        out.push(0x80 | octets);
        let bytes = len.to_be_bytes();
        out.extend_from_slice(bytes.get(4 - usize::from(octets)..).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex::decode_lenient;
    use alloc::{format, vec};

    fn h(text: &str) -> Vec<u8> {
        decode_lenient(text).unwrap()
    }

    fn all(buf: &[u8], opts: ParseOptions) -> Result<Vec<Tlv<'_>>, Error> {
        iter(buf, opts).collect()
    }

    /// Counts every object in the tree (opening constructed objects), or the first error.
    fn count_nodes(buf: &[u8], opts: ParseOptions) -> Result<usize, Error> {
        fn walk(level: TlvIter<'_>) -> Result<usize, Error> {
            let mut n = 0;
            for item in level {
                let tlv = item?;
                n += 1;
                if tlv.is_constructed() {
                    n += walk(tlv.children())?;
                }
            }
            Ok(n)
        }
        walk(iter(buf, opts))
    }

    /// Re-encodes a strictly decoded buffer, rebuilding constructed values from their children.
    fn reencode(level: TlvIter<'_>, out: &mut Vec<u8>) {
        for item in level {
            let tlv = item.unwrap();
            if tlv.is_constructed() {
                let mut inner = Vec::new();
                reencode(tlv.children(), &mut inner);
                write(out, tlv.tag(), &inner).unwrap();
            } else {
                write(out, tlv.tag(), tlv.value()).unwrap();
            }
        }
    }

    fn assert_round_trip(buf: &[u8]) {
        let mut out = Vec::new();
        reencode(iter(buf, ParseOptions::STRICT), &mut out);
        assert_eq!(out, buf, "strict decode then encode must give the same bytes");
    }

    fn nested_30(levels: usize) -> Vec<u8> {
        let mut buf = h("30 00");
        for _ in 1..levels {
            let mut outer = Vec::new();
            write(&mut outer, Tag::new(0x30), &buf).unwrap();
            buf = outer;
        }
        buf
    }

    // ----- tags -----

    #[test]
    fn one_byte_tags() {
        for (byte, class, constructed, number) in [
            (0x02u8, TagClass::Universal, false, 2u32),
            (0x30, TagClass::Universal, true, 16),
            (0x4F, TagClass::Application, false, 15),
            (0x61, TagClass::Application, true, 1),
            (0x9A, TagClass::ContextSpecific, false, 26),
            (0xA5, TagClass::ContextSpecific, true, 5),
            (0xC0, TagClass::Private, false, 0),
            (0xFE, TagClass::Private, true, 30),
        ] {
            let tag = Tag::from_bytes(&[byte]).unwrap();
            assert_eq!(tag, Tag::new(u32::from(byte)));
            assert_eq!(tag.class(), class, "{tag}");
            assert_eq!(tag.is_constructed(), constructed, "{tag}");
            assert_eq!(tag.number(), number, "{tag}");
            assert_eq!(tag.encoded_len(), 1);
        }
    }

    #[test]
    fn multi_byte_tags() {
        for (bytes, value, class, constructed, number) in [
            ("5F2D", 0x5F2D, TagClass::Application, false, 0x2D),
            ("5F50", 0x5F50, TagClass::Application, false, 0x50),
            ("7F49", 0x7F49, TagClass::Application, true, 0x49),
            ("7F66", 0x7F66, TagClass::Application, true, 0x66),
            ("BF0C", 0xBF0C, TagClass::ContextSpecific, true, 0x0C),
            ("9F38", 0x9F38, TagClass::ContextSpecific, false, 0x38),
            ("DF1F", 0xDF1F, TagClass::Private, false, 0x1F),
            ("5FC102", 0x5F_C102, TagClass::Application, false, (0x41 << 7) | 0x02),
            ("BF8101", 0xBF_8101, TagClass::ContextSpecific, true, (1 << 7) | 1),
            ("5F818101", 0x5F81_8101, TagClass::Application, false, (1 << 14) | (1 << 7) | 1),
        ] {
            let raw = h(bytes);
            let tag = Tag::from_bytes(&raw).unwrap();
            assert_eq!(tag.value(), value);
            assert_eq!(tag.class(), class, "{tag}");
            assert_eq!(tag.is_constructed(), constructed, "{tag}");
            assert_eq!(tag.number(), number, "{tag}");
            assert_eq!(tag.encoded_len(), raw.len());
            let mut out = Vec::new();
            tag.to_bytes(&mut out);
            assert_eq!(out, raw);
        }
    }

    #[test]
    fn tag_debug_display_and_order() {
        assert_eq!(format!("{:?}", Tag::new(0x5FC102)), "Tag(5FC102)");
        assert_eq!(format!("{:?}", Tag::new(0x7F49)), "Tag(7F49)");
        assert_eq!(format!("{:?}", Tag::new(0x9A)), "Tag(9A)");
        assert_eq!(format!("{:?}", Tag::new(0x02)), "Tag(02)");
        assert_eq!(format!("{}", Tag::new(0x5F2D)), "5F2D");
        assert_eq!(format!("{}", Tag::new(0x0C)), "0C");
        assert!(Tag::new(0x4F) < Tag::new(0x5F2D));
    }

    #[test]
    fn low_tag_numbers_in_long_form_are_kept() {
        // EMV Book 3 Annex B uses 9F01..9F1E; they must round-trip.
        let tag = Tag::from_bytes(&h("9F02")).unwrap();
        assert_eq!(tag.number(), 2);
        assert_round_trip(&h("9F02 06 000000001000"));
    }

    #[test]
    fn tag_errors() {
        // X.690 §8.1.2.4.2 c
        assert_eq!(
            Tag::from_bytes(&h("5F 80 01")),
            Err(Error::InvalidTag {
                offset: 1,
                reason: "first subsequent tag byte has bits 7-1 all zero"
            })
        );
        assert!(matches!(Tag::from_bytes(&h("5F 00")), Err(Error::InvalidTag { offset: 1, .. })));
        // Five tag bytes.
        assert_eq!(
            Tag::from_bytes(&h("5F 81 81 81 01")),
            Err(Error::TagTooLong { offset: 0, max: 4 })
        );
        // A fourth byte with bit 8 set cannot be the last one.
        assert_eq!(
            Tag::from_bytes(&h("5F 81 81 81")),
            Err(Error::TagTooLong { offset: 0, max: 4 })
        );
        for padding in ["00", "FF"] {
            assert!(matches!(
                Tag::from_bytes(&h(padding)),
                Err(Error::InvalidTag { offset: 0, .. })
            ));
        }
        assert!(matches!(Tag::from_bytes(&h("5F")), Err(Error::Truncated { offset: 1, .. })));
        assert!(matches!(Tag::from_bytes(&h("5F C1")), Err(Error::Truncated { offset: 2, .. })));
        assert!(matches!(Tag::from_bytes(&[]), Err(Error::Truncated { offset: 0, .. })));
        assert!(matches!(
            Tag::from_bytes(&h("4F 01")),
            Err(Error::TrailingBytes { offset: 1, count: 1, .. })
        ));
        // In a stream, errors carry absolute offsets.
        assert_eq!(
            all(&h("4F 00 5F 81 81 81 01 00"), ParseOptions::STRICT),
            Err(Error::TagTooLong { offset: 2, max: 4 })
        );
    }

    #[test]
    fn write_refuses_ill_formed_tags_and_appends_nothing() {
        for bad in [0u32, 0xFF, 0x5F, 0x9F81, 0x4F01, 0x5F_8001, 0x1F_8181] {
            let mut out = vec![0xAA];
            let err = write(&mut out, Tag::new(bad), &[1, 2]).unwrap_err();
            assert!(matches!(err, Error::InvalidTag { .. }), "{bad:X}: {err:?}");
            assert_eq!(out, [0xAA]);
        }
        let mut out = Vec::new();
        write(&mut out, Tag::new(0x5FC102), &[]).unwrap();
        assert_eq!(out, h("5FC102 00"));
    }

    // ----- lengths -----

    #[test]
    fn long_form_lengths_81_82_83() {
        for (len, header) in [
            (0x80usize, "81 80"),
            (0xFF, "81 FF"),
            (0x100, "82 0100"),
            (0xFFFF, "82 FFFF"),
            (0x1_0000, "83 010000"),
        ] {
            let mut buf = h("04");
            buf.extend(h(header));
            let value: Vec<u8> = (0..len).map(|i| i as u8).collect();
            buf.extend_from_slice(&value);
            let (tlv, rest) = decode_one(&buf, ParseOptions::STRICT).unwrap();
            assert_eq!(tlv.tag(), Tag::new(0x04));
            assert_eq!(tlv.value(), &value[..], "{header}");
            assert_eq!(tlv.value_offset(), 1 + h(header).len());
            assert_eq!(tlv.raw(), &buf[..]);
            assert!(rest.is_empty());
            assert_round_trip(&buf);
        }
    }

    #[test]
    fn long_form_length_84() {
        // The smallest length that needs four bytes: 16 MiB.
        let len = 0x0100_0000usize;
        let mut buf = h("04 84 01000000");
        buf.resize(buf.len() + len, 0x5A);
        let (tlv, rest) = decode_one(&buf, ParseOptions::STRICT).unwrap();
        assert_eq!(tlv.value().len(), len);
        assert_eq!(tlv.value_offset(), 6);
        assert!(rest.is_empty());
        let mut out = Vec::new();
        write(&mut out, Tag::new(0x04), tlv.value()).unwrap();
        assert!(out == buf);
        // The largest announced length overruns a short buffer without overflowing anything.
        assert_eq!(
            all(&h("04 84 FFFFFFFF 00"), ParseOptions::STRICT),
            Err(Error::LengthOverrun { offset: 1, len: 0xFFFF_FFFF, available: 1 })
        );
    }

    #[test]
    fn encode_length_is_minimal() {
        for (len, expected) in [
            (0usize, "00"),
            (0x7F, "7F"),
            (0x80, "81 80"),
            (0xFF, "81 FF"),
            (0x100, "82 0100"),
            (0xFFFF, "82 FFFF"),
            (0x1_0000, "83 010000"),
            (0xFF_FFFF, "83 FFFFFF"),
            (0x100_0000, "84 01000000"),
            (0xFFFF_FFFF, "84 FFFFFFFF"),
        ] {
            let mut out = Vec::new();
            encode_length(len, &mut out).unwrap();
            assert_eq!(out, h(expected), "{len:X}");
            // And it decodes back (lengths only: the values are not there).
            let mut cur = Cursor::new(&out);
            assert_eq!(read_length(&mut cur, ParseOptions::STRICT).unwrap(), len);
            assert!(cur.is_empty());
        }
    }

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn encode_length_refuses_more_than_u32() {
        let mut out = Vec::new();
        assert_eq!(
            encode_length(0x1_0000_0000, &mut out),
            Err(Error::ValueTooLong { len: 0x1_0000_0000, encoding: "BER-TLV" })
        );
        assert!(out.is_empty());
    }

    #[test]
    fn indefinite_length_is_rejected() {
        // ISO/IEC 7816-4 §5.2.2.2: no indefinite form, even in lenient mode.
        for opts in [ParseOptions::STRICT, ParseOptions::LENIENT] {
            assert_eq!(
                all(&h("30 80 04 00 00 00"), opts),
                Err(Error::IndefiniteLength { offset: 1 })
            );
        }
    }

    #[test]
    fn length_fields_of_five_or_more_bytes_are_rejected() {
        for opts in [ParseOptions::STRICT, ParseOptions::LENIENT] {
            assert_eq!(
                all(&h("04 85 0000000001 AA"), opts),
                Err(Error::LengthTooLong { offset: 1, octets: 5 })
            );
            assert_eq!(
                all(&h("04 FF"), opts),
                Err(Error::LengthTooLong { offset: 1, octets: 127 })
            );
        }
    }

    #[test]
    fn non_minimal_lengths_strict_and_lenient() {
        let lenient_length_only =
            ParseOptions { allow_non_minimal_length: true, ..ParseOptions::STRICT };
        for (header, value_len) in [
            ("04 81 05", 5usize),
            ("04 81 00", 0),
            ("04 82 0010", 0x10),
            ("04 82 0080", 0x80),
            ("04 83 000001", 1),
            ("04 83 00FFFF", 0xFFFF),
            ("04 84 00000002", 2),
            ("04 84 0000FF00", 0xFF00),
        ] {
            let mut buf = h(header);
            buf.resize(buf.len() + value_len, 0x5A);
            let encoding = header;
            assert_eq!(
                all(&buf, ParseOptions::STRICT),
                Err(Error::NonMinimalLength { offset: 1 }),
                "{encoding}"
            );
            for opts in [ParseOptions::LENIENT, lenient_length_only] {
                let objects = all(&buf, opts).unwrap();
                assert_eq!(objects.len(), 1);
                assert_eq!(objects[0].value().len(), value_len, "{encoding}");
                assert_eq!(objects[0].raw(), &buf[..]);
            }
            // Re-encoding gives the minimal form, which is shorter.
            let mut out = Vec::new();
            write(&mut out, Tag::new(0x04), all(&buf, ParseOptions::LENIENT).unwrap()[0].value())
                .unwrap();
            assert!(out.len() < buf.len());
            assert!(all(&out, ParseOptions::STRICT).is_ok());
        }
    }

    #[test]
    fn length_overrun_names_the_length_field() {
        assert_eq!(
            all(&h("4F 00 5F2D 05 656E"), ParseOptions::STRICT),
            Err(Error::LengthOverrun { offset: 4, len: 5, available: 2 })
        );
        // A child running past its parent's value, though not past the buffer.
        assert_eq!(
            count_nodes(&h("61 03 4F 05 AA 9000"), ParseOptions::STRICT),
            Err(Error::LengthOverrun { offset: 3, len: 5, available: 1 })
        );
    }

    // ----- padding -----

    #[test]
    fn padding_only_with_skip_padding() {
        let buf = h("00 00 4F 01 AA FF FF 61 06 00 50 01 42 FF 00 00 FF");
        assert_eq!(
            all(&buf, ParseOptions::STRICT),
            Err(Error::InvalidTag { offset: 0, reason: "00 and FF are not valid first tag bytes" })
        );
        let skip_only = ParseOptions { skip_padding: true, ..ParseOptions::STRICT };
        for opts in [skip_only, ParseOptions::LENIENT] {
            let top = all(&buf, opts).unwrap();
            assert_eq!(top.len(), 2);
            assert_eq!(
                (top[0].tag(), top[0].offset(), top[0].value()),
                (Tag::new(0x4F), 2, &[0xAA][..])
            );
            assert_eq!(top[1].tag(), Tag::new(0x61));
            assert_eq!(top[1].offset(), 7);
            // Padding inside a constructed value, before and after the child.
            let kids: Vec<_> = top[1].children().collect::<Result<_, _>>().unwrap();
            assert_eq!(kids.len(), 1);
            assert_eq!(
                (kids[0].tag(), kids[0].offset(), kids[0].value()),
                (Tag::new(0x50), 10, &[0x42][..])
            );
            assert_eq!(validate(&buf, opts), Ok(()));
        }
        // Nothing but padding is an empty sequence.
        assert_eq!(all(&h("00 FF 00"), ParseOptions::LENIENT).unwrap().len(), 0);
        // decode_one skips leading padding and leaves what follows.
        let (tlv, rest) = decode_one(&buf, ParseOptions::LENIENT).unwrap();
        assert_eq!(tlv.offset(), 2);
        assert_eq!(rest, &buf[5..]);
        assert!(matches!(
            decode_one(&h("00 FF"), ParseOptions::LENIENT),
            Err(Error::Truncated { offset: 2, .. })
        ));
        // Padding is a tag-position rule only: 00 as a length or value byte is data.
        assert_eq!(all(&h("4F 00"), ParseOptions::STRICT).unwrap()[0].value(), &[] as &[u8]);
    }

    // ----- nesting -----

    #[test]
    fn depth_limit() {
        let twenty = nested_30(20);
        assert_eq!(twenty.len(), 40);
        // The object at depth 17 starts after 17 two-byte headers.
        assert_eq!(
            validate(&twenty, ParseOptions::STRICT),
            Err(Error::DepthExceeded { offset: 34, limit: 16 })
        );
        assert_eq!(
            count_nodes(&twenty, ParseOptions::STRICT),
            Err(Error::DepthExceeded { offset: 34, limit: 16 })
        );
        let deep = ParseOptions { max_depth: 32, ..ParseOptions::STRICT };
        assert_eq!(validate(&twenty, deep), Ok(()));
        assert_eq!(count_nodes(&twenty, deep), Ok(20));
        // Boundary: depths 0..=16 pass at max_depth 16, depth 17 does not.
        assert_eq!(validate(&nested_30(17), ParseOptions::STRICT), Ok(()));
        assert!(matches!(
            validate(&nested_30(18), ParseOptions::STRICT),
            Err(Error::DepthExceeded { limit: 16, .. })
        ));
        // max_depth 0: top level only.
        let flat = ParseOptions { max_depth: 0, ..ParseOptions::STRICT };
        assert_eq!(validate(&h("30 00 04 01 00"), flat), Ok(()));
        assert_eq!(
            validate(&h("30 02 04 00"), flat),
            Err(Error::DepthExceeded { offset: 2, limit: 0 })
        );
    }

    #[test]
    fn validate_survives_very_deep_input_without_recursion() {
        // 100 000 levels, each header 30 84 xxxxxxxx (lenient: non-minimal 84 lengths).
        let levels = 100_000usize;
        let mut buf = Vec::with_capacity(levels * 6);
        for level in 0..levels {
            let inner = (levels - level - 1) * 6;
            buf.extend_from_slice(&[0x30, 0x84]);
            buf.extend_from_slice(&(inner as u32).to_be_bytes());
        }
        let unlimited = ParseOptions { max_depth: usize::MAX, ..ParseOptions::LENIENT };
        assert_eq!(validate(&buf, unlimited), Ok(()));
        assert!(matches!(
            validate(&buf, ParseOptions::LENIENT),
            Err(Error::DepthExceeded { offset: 102, limit: 16 })
        ));
    }

    #[test]
    fn children_keep_absolute_offsets_and_options() {
        let buf = h("4F 01 AA  61 0A 4F 02 0102 79 04 4F 02 0304");
        let top = all(&buf, ParseOptions::STRICT).unwrap();
        let template = top[1];
        assert_eq!((template.offset(), template.value_offset(), template.depth()), (3, 5, 0));
        let kids: Vec<_> = template.children().collect::<Result<_, _>>().unwrap();
        assert_eq!(kids.len(), 2);
        assert_eq!((kids[0].offset(), kids[0].depth(), kids[0].raw()), (5, 1, &buf[5..9]));
        let grandchild = kids[1].find(Tag::new(0x4F)).unwrap().unwrap();
        assert_eq!((grandchild.offset(), grandchild.depth()), (11, 2));
        assert_eq!(grandchild.value(), &[3, 4]);
        assert_eq!(template.find(Tag::new(0x50)).unwrap(), None);
        // An error inside a child names its absolute offset.
        let bad = h("61 04 4F 80 00 00");
        let parent = decode_one(&bad, ParseOptions::STRICT).unwrap().0;
        assert_eq!(parent.find(Tag::new(0x4F)), Err(Error::IndefiniteLength { offset: 3 }));
    }

    #[test]
    fn iterator_is_fused_after_an_error() {
        let buf = h("4F 01 AA 00 4F 01 BB");
        let mut it = iter(&buf, ParseOptions::STRICT);
        assert!(matches!(it.next(), Some(Ok(_))));
        assert!(matches!(it.next(), Some(Err(Error::InvalidTag { offset: 3, .. }))));
        assert!(it.next().is_none());
        assert!(it.next().is_none());
    }

    #[test]
    fn top_level_find() {
        let buf = h("4F 01 AA 5F2D 02 656E 4F 01 BB");
        let found = find(&buf, Tag::new(0x5F2D), ParseOptions::STRICT).unwrap().unwrap();
        assert_eq!(found.value(), b"en");
        assert_eq!(found.offset(), 3);
        // The first match wins.
        let first = find(&buf, Tag::new(0x4F), ParseOptions::STRICT).unwrap().unwrap();
        assert_eq!(first.value(), &[0xAA]);
        assert_eq!(find(&buf, Tag::new(0x50), ParseOptions::STRICT), Ok(None));
        // Errors before the match propagate; bytes after it are not looked at.
        let broken = h("4F 09 AA 5F2D 02 656E");
        assert!(matches!(
            find(&broken, Tag::new(0x5F2D), ParseOptions::STRICT),
            Err(Error::LengthOverrun { .. })
        ));
        let tail = h("4F 01 AA 80");
        assert!(find(&tail, Tag::new(0x4F), ParseOptions::STRICT).unwrap().is_some());
    }

    #[test]
    fn empty_input() {
        assert_eq!(all(&[], ParseOptions::STRICT).unwrap().len(), 0);
        assert_eq!(validate(&[], ParseOptions::STRICT), Ok(()));
        assert!(matches!(
            decode_one(&[], ParseOptions::STRICT),
            Err(Error::Truncated { offset: 0, .. })
        ));
    }

    #[test]
    fn debug_of_tlv_is_short() {
        let buf = h("5F2D 02 656E");
        let tlv = decode_one(&buf, ParseOptions::STRICT).unwrap().0;
        assert_eq!(format!("{tlv:?}"), "Tlv { tag: Tag(5F2D), offset: 0, value: 656E }");
    }

    // ----- real card data -----

    /// SELECT PIV response of a YubiKey, as traced in OpenSC pull request #1243 (comment of
    /// 2018-01-24): the Application Property Template of NIST SP 800-73-4 Part 2 §3.1.1.
    const YUBIKEY_PIV_SELECT: &str = "61 11 4F 06 000010000100 79 07 4F 05 A000000308";

    /// SELECT PIV response of an Oberthur ID-One PIV BIO card, quoted in arekinath/PivApplet
    /// issue #15: template 61 with AID, authority 79, label 50, URL 5F50, followed by the
    /// extended length information 7F66 of ISO/IEC 7816-4 §12.7.1.
    const OBERTHUR_PIV_SELECT: &str = "61 39 4F 0B A0000003080000100001 00 79 07 4F 05 A000000308
        50 0E 49442D4F6E65205049562042494F
        5F50 10 7777772E6F62657274687572 2E636F6D
        7F66 08 02 02 8000 02 02 8000";

    /// SELECT (empty AID) response of an Oberthur COSMO 8.1 card: GlobalPlatform ISD FCI with
    /// Card Recognition Data, quoted in martinpaljak/GlobalPlatformPro issue #113.
    const COSMO_ISD_SELECT: &str = "6F 40 84 07 A0000001510000 A5 35
        73 2F 06 07 2A864886FC6B01 60 0C 06 0A 2A864886FC6B02020201
              63 09 06 07 2A864886FC6B03 64 0B 06 09 2A864886FC6B040370
        9F65 01 FF";

    /// SELECT 2PAY.SYS.DDF01 (PPSE, EMV Book B) response of a Visa debit card, quoted in
    /// javisHuang/Learn `emv/Initiate_Application.md` (status word 9000 removed).
    const VISA_PPSE_SELECT: &str = "6F 2F 84 0E 325041592E5359532E4444463031
        A5 1D BF0C 1A 61 18 4F 07 A0000000031010 50 0A 56495341204445424954 87 01 01";

    #[test]
    fn yubikey_piv_application_property_template() {
        let buf = h(YUBIKEY_PIV_SELECT);
        let (apt, rest) = decode_one(&buf, ParseOptions::STRICT).unwrap();
        assert!(rest.is_empty());
        assert_eq!(apt.tag(), Tag::new(0x61));
        assert!(apt.is_constructed());
        let pix = apt.find(Tag::new(0x4F)).unwrap().unwrap();
        assert_eq!(pix.value(), h("00 00 10 00 01 00"));
        assert_eq!(pix.offset(), 2);
        let authority = apt.find(Tag::new(0x79)).unwrap().unwrap();
        let rid = authority.find(Tag::new(0x4F)).unwrap().unwrap();
        assert_eq!(rid.value(), h("A0 00 00 03 08"));
        assert_eq!(rid.offset(), 12);
        assert_eq!(count_nodes(&buf, ParseOptions::STRICT), Ok(4));
        assert_round_trip(&buf);
    }

    #[test]
    fn oberthur_piv_select_response() {
        let buf = h(OBERTHUR_PIV_SELECT);
        let top = all(&buf, ParseOptions::STRICT).unwrap();
        assert_eq!(top.len(), 2);
        let apt = top[0];
        let label = apt.find(Tag::new(0x50)).unwrap().unwrap();
        assert_eq!(label.value(), b"ID-One PIV BIO");
        let url = apt.find(Tag::new(0x5F50)).unwrap().unwrap();
        assert_eq!(url.value(), b"www.oberthur.com");
        assert_eq!(url.tag().encoded_len(), 2);
        let ext = top[1];
        assert_eq!(ext.tag(), Tag::new(0x7F66));
        assert!(ext.is_constructed());
        let ints: Vec<_> = ext.children().map(|t| t.unwrap().value()).collect();
        assert_eq!(ints, [&[0x80, 0x00][..], &[0x80, 0x00][..]]);
        assert_eq!(count_nodes(&buf, ParseOptions::STRICT), Ok(9));
        assert_round_trip(&buf);
    }

    #[test]
    fn cosmo_globalplatform_card_recognition_data() {
        let buf = h(COSMO_ISD_SELECT);
        assert_eq!(validate(&buf, ParseOptions::STRICT), Ok(()));
        let fci = decode_one(&buf, ParseOptions::STRICT).unwrap().0;
        let a5 = fci.find(Tag::new(0xA5)).unwrap().unwrap();
        let crd = a5.find(Tag::new(0x73)).unwrap().unwrap();
        let oids: Vec<_> = crd.children().map(|t| t.unwrap().tag()).collect();
        assert_eq!(oids, [Tag::new(0x06), Tag::new(0x60), Tag::new(0x63), Tag::new(0x64)]);
        let scp = crd.find(Tag::new(0x64)).unwrap().unwrap().find(Tag::new(0x06)).unwrap().unwrap();
        assert_eq!(scp.depth(), 4);
        assert_eq!(scp.value(), h("2A864886FC6B040370"));
        let max_len = a5.find(Tag::new(0x9F65)).unwrap().unwrap();
        assert_eq!(max_len.value(), &[0xFF]);
        assert_round_trip(&buf);
        // Depth 4 is the deepest object: max_depth 3 refuses it.
        let shallow = ParseOptions { max_depth: 3, ..ParseOptions::STRICT };
        assert!(matches!(validate(&buf, shallow), Err(Error::DepthExceeded { limit: 3, .. })));
    }

    #[test]
    fn visa_ppse_with_bf0c() {
        let buf = h(VISA_PPSE_SELECT);
        let fci = decode_one(&buf, ParseOptions::STRICT).unwrap().0;
        let entry = fci
            .find(Tag::new(0xA5))
            .unwrap()
            .unwrap()
            .find(Tag::new(0xBF0C))
            .unwrap()
            .unwrap()
            .find(Tag::new(0x61))
            .unwrap()
            .unwrap();
        assert_eq!(entry.find(Tag::new(0x50)).unwrap().unwrap().value(), b"VISA DEBIT");
        assert_eq!(entry.find(Tag::new(0x4F)).unwrap().unwrap().value(), h("A0000000031010"));
        assert_round_trip(&buf);
    }

    // ----- truncation and round trip -----

    /// Several top-level objects with multi-byte tags, long-form lengths and nesting, and the
    /// end offset of each top-level object with the number of objects (all levels) up to it.
    fn truncation_corpus() -> (Vec<u8>, Vec<(usize, usize)>) {
        let mut objects: Vec<Vec<u8>> = Vec::new();
        objects.push(h(YUBIKEY_PIV_SELECT));
        // 5FC102 (primitive, 3-byte tag) with an 81 length holding a PIV CHUID-shaped 53.
        let mut chuid = Vec::new();
        write(&mut chuid, Tag::new(0x34), &[0x11; 16]).unwrap();
        write(&mut chuid, Tag::new(0x3E), &[0x22; 0x90]).unwrap();
        write(&mut chuid, Tag::new(0xFE), &[]).unwrap();
        let mut container = Vec::new();
        write(&mut container, Tag::new(0x53), &chuid).unwrap();
        let mut object = Vec::new();
        write(&mut object, Tag::new(0x5FC102), &container).unwrap();
        assert_eq!(object[3], 0x81);
        objects.push(object);
        // 7F49 (constructed) with an 82 length.
        let mut key = Vec::new();
        write(&mut key, Tag::new(0x81), &[0x33; 0x101]).unwrap();
        write(&mut key, Tag::new(0x82), &[1, 0, 1]).unwrap();
        let mut object = Vec::new();
        write(&mut object, Tag::new(0x7F49), &key).unwrap();
        assert_eq!(object[2], 0x82);
        objects.push(object);
        objects.push(h("9A 00"));
        // BF8101 (constructed, 3-byte tag) holding 5F2D and a constructed 7F66.
        objects.push(h("BF8101 0C 5F2D 02 656E 7F66 04 02 02 8000"));
        objects.push(h(VISA_PPSE_SELECT));

        let mut buf = Vec::new();
        let mut boundaries = vec![(0usize, 0usize)];
        for object in &objects {
            buf.extend_from_slice(object);
            boundaries.push((buf.len(), count_nodes(&buf, ParseOptions::STRICT).unwrap()));
        }
        (buf, boundaries)
    }

    #[test]
    fn truncation_at_every_byte() {
        let (buf, boundaries) = truncation_corpus();
        assert_eq!(boundaries.len(), 7);
        assert_eq!(boundaries[6].1, 4 + 1 + 3 + 1 + 4 + 8);
        assert!(buf.len() > 0x200);
        for n in 0..=buf.len() {
            let prefix = &buf[..n];
            let boundary = boundaries.iter().find(|(end, _)| *end == n);
            match (count_nodes(prefix, ParseOptions::STRICT), boundary) {
                (Ok(nodes), Some((_, expected))) => assert_eq!(nodes, *expected, "prefix {n}"),
                (Err(Error::Truncated { .. } | Error::LengthOverrun { .. }), None) => {}
                (result, _) => panic!("prefix of {n} bytes: {result:?}"),
            }
            let valid = validate(prefix, ParseOptions::STRICT).is_ok();
            assert_eq!(valid, boundary.is_some(), "prefix {n}");
        }
        assert_eq!(count_nodes(&buf, ParseOptions::STRICT), Ok(boundaries[6].1));
    }

    #[test]
    fn truncation_errors_name_the_place() {
        let buf = h("5FC102 81 80");
        assert_eq!(
            all(&buf[..2], ParseOptions::STRICT),
            Err(Error::Truncated { what: "BER-TLV tag", offset: 2, needed: 1, available: 0 })
        );
        assert_eq!(
            all(&buf[..4], ParseOptions::STRICT),
            Err(Error::Truncated { what: "BER-TLV length", offset: 4, needed: 1, available: 0 })
        );
        assert_eq!(
            all(&buf, ParseOptions::STRICT),
            Err(Error::LengthOverrun { offset: 3, len: 0x80, available: 0 })
        );
    }

    #[test]
    fn strict_decode_then_encode_is_identity() {
        let (buf, _) = truncation_corpus();
        assert_round_trip(&buf);
        for vector in [YUBIKEY_PIV_SELECT, OBERTHUR_PIV_SELECT, COSMO_ISD_SELECT, VISA_PPSE_SELECT]
        {
            assert_round_trip(&h(vector));
        }
        assert_round_trip(&nested_30(16));
        assert_round_trip(&h("5F818101 00 BF8101 03 9F02 00"));
    }

    // ----- no allocation while iterating -----

    #[test]
    fn iterator_owns_no_heap_memory() {
        // A counting global allocator would need `unsafe`, which this crate forbids. What can be
        // checked here: the iterator and the objects it yields own nothing that needs dropping,
        // so they hold no Vec, Box or other heap buffer.
        assert!(!core::mem::needs_drop::<TlvIter<'static>>());
        assert!(!core::mem::needs_drop::<Tlv<'static>>());
        assert!(!core::mem::needs_drop::<ParseOptions>());
    }
}
