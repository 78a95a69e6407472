//! Tag-length-value encodings of ISO/IEC 7816-4.
//!
//! - [`ber`]: BER-TLV (ISO/IEC 7816-4 §5.2, tags and lengths per ISO/IEC 8825-1 / X.690 §8.1).
//! - [`simple`]: SIMPLE-TLV (ISO/IEC 7816-4 §5.2.1): one-byte tag, one- or three-byte length.
//! - [`compact`]: COMPACT-TLV (ISO/IEC 7816-4 §8.1.1.2): tag and length in one byte, used by
//!   the historical bytes of the ATR.

pub mod ber;
pub mod compact;
pub mod simple;
