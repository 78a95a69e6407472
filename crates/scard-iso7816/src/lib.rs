//! ISO/IEC 7816 codec for scard.
//!
//! Everything here is sans-IO: functions and state machines that take bytes and return values
//! or the next bytes to send. Nothing in this crate performs I/O, reads a clock or allocates per
//! parsed element while iterating TLV data.
//!
//! - [`apdu`]: command APDUs of every case (ISO/IEC 7816-3 §12.1, 7816-4 §5.1) and responses.
//! - [`status`]: [`StatusWord`] with named values and classifiers (ISO/IEC 7816-4 §5.6).
//! - [`exchange`]: the exchange engine: command chaining, GET RESPONSE, `6Cxx` resend.
//! - [`tlv`]: BER-TLV, SIMPLE-TLV and COMPACT-TLV (ISO/IEC 7816-4 §5.2, §8.1.1).
//! - [`atr`]: the answer-to-reset (ISO/IEC 7816-3 §8) and its historical bytes (7816-4 §8.1).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

/// Declares the named values of an open newtype over an integer (`StatusWord`, `Ins`): one
/// associated constant per value and a `name()` lookup. Unknown values stay valid.
macro_rules! named_values {
    ($ty:ident, $name_doc:literal; $( $(#[$doc:meta])* $name:ident = $value:literal, $label:literal; )*) => {
        impl $ty {
            $( $(#[$doc])* pub const $name: $ty = $ty($value); )*

            #[doc = $name_doc]
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some($label), )*
                    _ => None,
                }
            }
        }
    };
}

pub mod apdu;
pub mod atr;
pub mod cursor;
mod error;
pub mod exchange;
pub mod hex;
pub mod status;
pub mod tlv;

pub use apdu::{Case, CommandApdu, ResponseApdu};
pub use atr::Atr;
pub use error::Error;
pub use exchange::{CardLimits, Exchange, Step};
pub use status::StatusWord;

/// Result type of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;
