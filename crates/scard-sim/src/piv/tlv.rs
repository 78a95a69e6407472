//! The BER-TLV the PIV card reads and writes (SP 800-73-4 Pt 2 §2.3: data objects are BER-TLV
//! per ISO/IEC 8825-1). Writing cannot fail: tags are the card's own constants and lengths are
//! computed from the data. Reading goes through `scard_iso7816::tlv::ber`.

use scard_iso7816::tlv::ber::{self, ParseOptions, Tlv};

/// How the card parses command data: definite lengths, non-minimal length fields tolerated (they
/// are still well formed), no padding between objects.
pub(crate) const COMMAND_DATA: ParseOptions =
    ParseOptions { allow_non_minimal_length: true, skip_padding: false, max_depth: 8 };

/// Appends `tag` (its big-endian bytes, leading zero bytes dropped), the minimal DER length of
/// `value` (X.690 §8.1.3) and `value`.
pub(crate) fn put(out: &mut Vec<u8>, tag: u32, value: &[u8]) {
    ber::Tag::new(tag).to_bytes(out);
    // Only lengths above 4 GiB fail; card data objects are a few KiB at most.
    let _ = ber::encode_length(value.len(), out);
    out.extend_from_slice(value);
}

/// One object: `tag`, length, `value`.
pub(crate) fn object(tag: u32, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 8);
    put(&mut out, tag, value);
    out
}

/// The single object that makes up all of `data` (nothing before or after it).
pub(crate) fn single(data: &[u8]) -> Option<Tlv<'_>> {
    let (tlv, rest) = ber::decode_one(data, COMMAND_DATA).ok()?;
    rest.is_empty().then_some(tlv)
}

/// Whether `data` is a sequence of well-formed BER-TLV objects at its top level. Values are
/// not opened: PIV puts raw bytes under tags whose constructed bit is set (the FASC-N under 30).
pub(crate) fn is_sequence(data: &[u8]) -> bool {
    ber::iter(data, COMMAND_DATA).all(|item| item.is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_minimal_and_tags_keep_their_bytes() {
        assert_eq!(object(0x53, &[]), [0x53, 0x00]);
        assert_eq!(object(0x7E, &[1; 3]), [0x7E, 0x03, 1, 1, 1]);
        assert_eq!(object(0x7F49, &[0; 127])[..3], [0x7F, 0x49, 0x7F]);
        assert_eq!(object(0x5FC102, &[0; 128])[..5], [0x5F, 0xC1, 0x02, 0x81, 0x80]);
        assert_eq!(object(0x53, &[0; 256])[..4], [0x53, 0x82, 0x01, 0x00]);
        assert_eq!(object(0x53, &[0; 70_000])[..5], [0x53, 0x83, 0x01, 0x11, 0x70]);
        // Tag 00 is written as one byte.
        assert_eq!(object(0x00, &[]), [0x00, 0x00]);
    }

    #[test]
    fn single_and_sequence() {
        assert!(single(&[0x5C, 0x01, 0x7E]).is_some());
        assert!(single(&[0x5C, 0x01, 0x7E, 0x00]).is_none());
        assert!(single(&[0x5C, 0x02, 0x7E]).is_none());
        assert!(single(&[]).is_none());
        // Non-minimal lengths are tolerated.
        assert!(single(&[0x5C, 0x81, 0x01, 0x7E]).is_some());
        assert!(is_sequence(&[0x30, 0x02, 0xD4, 0xE7, 0xFE, 0x00]));
        assert!(is_sequence(&[]));
        assert!(!is_sequence(&[0x70, 0x05, 0x00]));
    }
}
