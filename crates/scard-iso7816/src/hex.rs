//! Hexadecimal text: upper-case output for traces and JSON, lenient input for people.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::error::Error;

/// Upper-case hex, no separators: `3B9513`.
pub fn encode_upper(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        push_byte(&mut out, *b);
    }
    out
}

/// Upper-case hex with one space between bytes: `3B 95 13`.
pub fn encode_spaced(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        push_byte(&mut out, *b);
    }
    out
}

fn push_byte(out: &mut String, b: u8) {
    for nibble in [b >> 4, b & 0x0F] {
        let digit = char::from_digit(u32::from(nibble), 16).unwrap_or('0');
        out.push(digit.to_ascii_uppercase());
    }
}

/// A `Display` adapter printing bytes as upper-case hex without allocating.
#[derive(Clone, Copy)]
pub struct Hex<'a>(pub &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Decodes hex typed by a person: upper or lower case, with optional spaces, tabs, colons,
/// dashes or newlines between digits, and an optional `0x` prefix. A byte is always two digits
/// written together; an odd digit count or any other character is an error with its offset.
pub fn decode_lenient(text: &str) -> Result<Vec<u8>, Error> {
    let body = text.trim();
    let (skip, body) = match body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        Some(rest) => (text.len() - rest.len(), rest),
        None => (text.len() - text.trim_start().len(), body),
    };
    let mut out = Vec::with_capacity(body.len() / 2);
    let mut high: Option<(u8, usize)> = None;
    // Bytes, not chars: every accepted character is ASCII, and the first byte of any other
    // character is no hex digit nor separator, so it is refused at its own offset.
    for (i, &b) in body.as_bytes().iter().enumerate() {
        let offset = skip + i;
        if matches!(b, b' ' | b'\t' | b':' | b'-' | b'\n' | b'\r') {
            if let Some((_, at)) = high {
                return Err(Error::InvalidHex { offset: at, reason: "half a byte" });
            }
            continue;
        }
        let nibble = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return Err(Error::InvalidHex { offset, reason: "not a hex digit" }),
        };
        match high.take() {
            Some((h, _)) => out.push((h << 4) | nibble),
            None => high = Some((nibble, offset)),
        }
    }
    if let Some((_, at)) = high {
        return Err(Error::InvalidHex { offset: at, reason: "half a byte" });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_lenient_forms() {
        assert_eq!(encode_upper(&[0x3B, 0x0a, 0xff]), "3B0AFF");
        assert_eq!(encode_spaced(&[0x3B, 0x0a]), "3B 0A");
        assert_eq!(alloc::format!("{}", Hex(&[1, 0xab])), "01AB");
        for text in ["3b0aff", "3B 0A FF", "3b:0a:ff", " 0x3B0AFF\n", "3B-0A-ff"] {
            assert_eq!(decode_lenient(text).unwrap(), [0x3B, 0x0A, 0xFF], "{text}");
        }
        assert_eq!(decode_lenient("").unwrap(), []);
    }

    #[test]
    fn rejects_odd_digits_and_junk() {
        assert_eq!(
            decode_lenient("3B 0"),
            Err(Error::InvalidHex { offset: 3, reason: "half a byte" })
        );
        assert_eq!(
            decode_lenient("3 B"),
            Err(Error::InvalidHex { offset: 0, reason: "half a byte" })
        );
        assert_eq!(
            decode_lenient("3BZZ"),
            Err(Error::InvalidHex { offset: 2, reason: "not a hex digit" })
        );
    }
}
