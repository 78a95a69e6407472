//! PINs, PUKs and resetting codes with retry counters (ISO/IEC 7816-4 §7.5.6 VERIFY: a failed
//! comparison answers 63Cx with the tries left, a blocked reference 6983).

use scard_iso7816::status::StatusWord;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::state::hex_bytes;

/// A reference value with its retry counter. The value is zeroized on drop.
#[derive(Clone, Serialize, Deserialize)]
pub struct Pin {
    #[serde(with = "hex_bytes")]
    value: Zeroizing<Vec<u8>>,
    max_tries: u8,
    tries_left: u8,
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pin")
            .field("value", &"REDACTED")
            .field("tries_left", &self.tries_left)
            .field("max_tries", &self.max_tries)
            .finish()
    }
}

impl Pin {
    /// A reference value with `max_tries` tries (1..=15).
    pub fn new(value: &[u8], max_tries: u8) -> Self {
        let max_tries = max_tries.clamp(1, 15);
        Self { value: Zeroizing::new(value.to_vec()), max_tries, tries_left: max_tries }
    }

    /// Tries left before the reference is blocked.
    pub fn tries_left(&self) -> u8 {
        self.tries_left
    }

    /// The retry limit.
    pub fn max_tries(&self) -> u8 {
        self.max_tries
    }

    /// Whether the counter is at zero.
    pub fn is_blocked(&self) -> bool {
        self.tries_left == 0
    }

    /// The stored length (OpenPGP reports PIN lengths in its status bytes).
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// Whether the stored value is empty (an unset resetting code).
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// Compares `candidate`: on a match the counter is reset; on a mismatch it is decremented
    /// and the answer is 63Cx with the tries left; a blocked reference answers 6983 without
    /// comparing.
    pub fn verify(&mut self, candidate: &[u8]) -> Result<(), StatusWord> {
        if self.is_blocked() {
            return Err(StatusWord::AUTH_METHOD_BLOCKED);
        }
        if constant_time_eq(&self.value, candidate) {
            self.tries_left = self.max_tries;
            Ok(())
        } else {
            self.tries_left -= 1;
            Err(Self::tries_status(self.tries_left))
        }
    }

    /// The status of an empty VERIFY for a reference that is not verified: 63Cx, or 6983.
    pub fn status(&self) -> StatusWord {
        if self.is_blocked() {
            StatusWord::AUTH_METHOD_BLOCKED
        } else {
            Self::tries_status(self.tries_left)
        }
    }

    fn tries_status(tries: u8) -> StatusWord {
        StatusWord::from_bytes(0x63, 0xC0 | (tries & 0x0F))
    }

    /// Replaces the value and resets the counter.
    pub fn set(&mut self, value: &[u8]) {
        self.value = Zeroizing::new(value.to_vec());
        self.tries_left = self.max_tries;
    }

    /// Resets the counter to its maximum (an unblock).
    pub fn reset_counter(&mut self) {
        self.tries_left = self.max_tries;
    }

    /// Sets the retry limit and resets the counter.
    pub fn set_max_tries(&mut self, max_tries: u8) {
        self.max_tries = max_tries.clamp(1, 15);
        self.tries_left = self.max_tries;
    }
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdown_block_and_reset() {
        let mut pin = Pin::new(b"123456", 3);
        assert_eq!(pin.status(), StatusWord(0x63C3));
        assert_eq!(pin.verify(b"000000"), Err(StatusWord(0x63C2)));
        assert_eq!(pin.verify(b"123456"), Ok(()));
        assert_eq!(pin.tries_left(), 3);
        assert_eq!(pin.verify(b"1"), Err(StatusWord(0x63C2)));
        assert_eq!(pin.verify(b"1"), Err(StatusWord(0x63C1)));
        assert_eq!(pin.verify(b"1"), Err(StatusWord(0x63C0)));
        assert!(pin.is_blocked());
        assert_eq!(pin.verify(b"123456"), Err(StatusWord::AUTH_METHOD_BLOCKED));
        assert_eq!(pin.status(), StatusWord::AUTH_METHOD_BLOCKED);
        pin.reset_counter();
        assert_eq!(pin.verify(b"123456"), Ok(()));
        pin.set(b"654321");
        assert_eq!(pin.verify(b"123456"), Err(StatusWord(0x63C2)));
        assert!(!format!("{pin:?}").contains("654321"));
    }
}
