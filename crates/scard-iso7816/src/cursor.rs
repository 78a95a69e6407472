//! The one decoding cursor shape used by every parser of card and reader output in scard:
//! `take` / `sub` / `finish`, trailing bytes rejected, every error carrying the absolute offset
//! where it happened. Other crates (the CCID driver) decode with it too.

use crate::error::Error;

/// A read position over a borrowed buffer. `base` is the absolute offset of `buf[0]` in the
/// outermost buffer, so errors raised inside a sub-cursor still name the right offset.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0, base: 0 }
    }

    /// A cursor over `buf` whose first byte sits at absolute offset `base`.
    pub fn with_base(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }

    /// Absolute offset of the next byte.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unread bytes, without consuming them.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    pub fn peek_u8(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Takes exactly `n` bytes or fails with [`Error::Truncated`] naming `what`.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n);
        match end.and_then(|end| self.buf.get(self.pos..end)) {
            Some(bytes) => {
                self.pos += n;
                Ok(bytes)
            }
            None => Err(Error::Truncated {
                what,
                offset: self.offset(),
                needed: n,
                available: self.remaining(),
            }),
        }
    }

    pub fn take_u8(&mut self, what: &'static str) -> Result<u8, Error> {
        let bytes = self.take(1, what)?;
        Ok(bytes.first().copied().unwrap_or_default())
    }

    pub fn take_u16_be(&mut self, what: &'static str) -> Result<u16, Error> {
        let bytes = self.take(2, what)?;
        match bytes {
            [hi, lo] => Ok(u16::from_be_bytes([*hi, *lo])),
            _ => Err(Error::Truncated { what, offset: self.offset(), needed: 2, available: 0 }),
        }
    }

    /// Takes a 16-bit little-endian field (CCID and USB descriptors are little endian).
    pub fn take_u16_le(&mut self, what: &'static str) -> Result<u16, Error> {
        Ok(u16::from_le_bytes(self.take_array::<2>(what)?))
    }

    /// Takes a 32-bit little-endian field.
    pub fn take_u32_le(&mut self, what: &'static str) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.take_array::<4>(what)?))
    }

    /// Takes exactly `N` bytes as an array.
    pub fn take_array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Error> {
        let offset = self.offset();
        let bytes = self.take(N, what)?;
        <[u8; N]>::try_from(bytes).map_err(|_| Error::Truncated {
            what,
            offset,
            needed: N,
            available: bytes.len(),
        })
    }

    /// Takes `n` bytes as a sub-cursor that keeps absolute offsets.
    pub fn sub(&mut self, n: usize, what: &'static str) -> Result<Cursor<'a>, Error> {
        let base = self.offset();
        let bytes = self.take(n, what)?;
        Ok(Cursor::with_base(bytes, base))
    }

    /// Takes everything that is left.
    pub fn take_rest(&mut self) -> &'a [u8] {
        let rest = self.rest();
        self.pos = self.buf.len();
        rest
    }

    /// Succeeds only when every byte was consumed.
    pub fn finish(&self, what: &'static str) -> Result<(), Error> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Error::TrailingBytes { what, offset: self.offset(), count: self.remaining() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_sub_finish_keep_absolute_offsets() {
        let data = [1u8, 2, 3, 4, 5];
        let mut c = Cursor::new(&data);
        assert_eq!(c.take_u8("a").unwrap(), 1);
        let mut sub = c.sub(3, "sub").unwrap();
        assert_eq!(sub.offset(), 1);
        assert_eq!(sub.take_u16_be("b").unwrap(), 0x0203);
        assert_eq!(
            sub.finish("sub"),
            Err(Error::TrailingBytes { what: "sub", offset: 3, count: 1 })
        );
        assert_eq!(
            sub.take(2, "c"),
            Err(Error::Truncated { what: "c", offset: 3, needed: 2, available: 1 })
        );
        assert_eq!(c.take_rest(), &[5]);
        assert!(c.finish("all").is_ok());
    }

    #[test]
    fn little_endian_fields() {
        let data = [0x36, 0x10, 0x01, 0xA0, 0x0F, 0x00, 0x00, 0xFF];
        let mut c = Cursor::new(&data);
        assert_eq!(c.take_u8("a").unwrap(), 0x36);
        assert_eq!(c.take_u16_le("b").unwrap(), 0x0110);
        assert_eq!(c.take_u32_le("c").unwrap(), 4000);
        assert_eq!(
            c.take_u16_le("d"),
            Err(Error::Truncated { what: "d", offset: 7, needed: 2, available: 1 })
        );
        assert_eq!(c.take_array::<1>("e").unwrap(), [0xFF]);
    }
}
