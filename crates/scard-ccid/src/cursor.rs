//! The decoding cursor of this crate, in the shape scard-iso7816 uses (take / finish, trailing
//! bytes rejected, errors carrying the absolute offset). CCID fields wider than a byte are
//! little endian (CCID Rev 1.1 §1.3 "Fields that are larger than a byte are stored in little
//! endian").

use crate::error::Error;

#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Takes exactly `n` bytes or fails with [`Error::Truncated`] naming `what`.
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n);
        match end.and_then(|end| self.buf.get(self.pos..end)) {
            Some(bytes) => {
                self.pos += n;
                Ok(bytes)
            }
            None => Err(Error::Truncated {
                what,
                offset: self.pos,
                needed: n,
                available: self.remaining(),
            }),
        }
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, Error> {
        let [b] = self.array::<1>(what)?;
        Ok(b)
    }

    pub(crate) fn u16_le(&mut self, what: &'static str) -> Result<u16, Error> {
        Ok(u16::from_le_bytes(self.array::<2>(what)?))
    }

    pub(crate) fn u32_le(&mut self, what: &'static str) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.array::<4>(what)?))
    }

    pub(crate) fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Error> {
        let offset = self.pos;
        let bytes = self.take(N, what)?;
        <[u8; N]>::try_from(bytes).map_err(|_| Error::Truncated {
            what,
            offset,
            needed: N,
            available: bytes.len(),
        })
    }

    /// Takes everything that is left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        rest
    }

    /// Succeeds only when every byte was consumed.
    pub(crate) fn finish(&self, what: &'static str) -> Result<(), Error> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(Error::TrailingBytes { what, offset: self.pos, count }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn little_endian_fields_and_offsets() {
        let data = [0x36, 0x10, 0x01, 0xA0, 0x0F, 0x00, 0x00, 0xFF];
        let mut c = Cursor::new(&data);
        assert_eq!(c.u8("a").unwrap(), 0x36);
        assert_eq!(c.u16_le("b").unwrap(), 0x0110);
        assert_eq!(c.u32_le("c").unwrap(), 4000);
        assert_eq!(c.finish("x"), Err(Error::TrailingBytes { what: "x", offset: 7, count: 1 }));
        assert_eq!(
            c.u16_le("d"),
            Err(Error::Truncated { what: "d", offset: 7, needed: 2, available: 1 })
        );
        assert_eq!(c.rest(), &[0xFF]);
        assert!(c.finish("x").is_ok());
    }
}
