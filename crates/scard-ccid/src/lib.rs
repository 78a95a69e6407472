//! USB CCID reader driver for scard: the sans-IO protocol core.
//!
//! Everything here takes bytes and returns values or the next bytes to send; nothing performs
//! I/O or reads a clock. The USB side is the [`usb::CcidUsb`] trait (bulk-out, bulk-in with a
//! timeout, interrupt-in, control): a rusb shell implements it for real readers, the
//! `sim` module (feature `sim`) for tests, and [`usb::Driver`] runs the engine over it.
//!
//! - [`descriptor`]: the CCID class descriptor (CCID Rev 1.1 §5.1) and its named bit fields.
//! - [`message`]: every bulk-out command (§6.1), bulk-in response (§6.2), interrupt message
//!   (§6.3) and class request (§5.3), with wire values as open newtypes.
//! - [`t1`]: the T=1 block engine of ISO/IEC 7816-3 §11 (chaining, IFS, WTX, resynch, abort,
//!   LRC/CRC, error recovery), sans-IO.
//! - [`t0`]: the mapping of command APDUs to T=0 TPDUs (ISO/IEC 7816-3 §12.2), with `61xx`
//!   GET RESPONSE and `6Cxx` resend.
//! - [`slot`]: the slot engine: power on (voltage classes, PPS, SetParameters, IFSD), APDU
//!   exchange at the reader's level (TPDU T=0/T=1, short APDU, extended APDU with chaining),
//!   bSeq matching, time extension, errors.
//! - [`usb`]: the USB boundary and a blocking driver over it.
//! - `rusb_shell` (feature `usb`, on by default): the thin shell over libusb (vendored by
//!   rusb): finds CCID interfaces, claims them, moves the bytes. No protocol logic.
//! - [`backend`]: the `ccid:` backend of scard-transport ([`CcidBackend`], [`CcidTransport`]),
//!   generic over the bus ([`UsbBus`]) so it is tested without USB.
//! - `sim` (feature `sim`): a simulated CCID reader holding closure cards.
//!
//! The blocking driver over the simulated reader (a T=0 card answering `90 00` to anything):
//!
//! ```
//! # #[cfg(feature = "sim")] {
//! use scard_ccid::sim::{SimCard, SimConfig, SimReader};
//! use scard_ccid::{Driver, DriverConfig};
//!
//! let atr = [0x3B, 0x08, 0x52, 0x55, 0x53, 0x54, 0x43, 0x43, 0x49, 0x44];
//! let reader = SimReader::new(SimConfig::tpdu_t0(), Some(SimCard::new(&atr, |_| vec![0x90, 0x00])));
//! let descriptor = reader.descriptor();
//! let mut driver = Driver::new(reader, descriptor, DriverConfig::default())?;
//! assert_eq!(driver.power_on(0)?.protocol, 0);
//! assert_eq!(&driver.transmit(0, &[0x00, 0xA4, 0x04, 0x00])?[..], &[0x90, 0x00]);
//! # }
//! # Ok::<(), scard_ccid::Error>(())
//! ```
#![forbid(unsafe_code)]

/// Declares the named values of an open newtype over an integer: one associated constant per
/// value, a `name()` lookup, and a `Debug` that prints the name (or the hex value when unknown).
macro_rules! open_newtype {
    ($(#[$meta:meta])* $ty:ident($int:ty), $width:literal;
     $( $(#[$doc:meta])* $name:ident = $value:literal, $label:literal; )*) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty(pub $int);

        impl $ty {
            $( $(#[$doc])* pub const $name: $ty = $ty($value); )*

            /// The name of this value, when it has one.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some($label), )*
                    _ => None,
                }
            }
        }

        impl core::fmt::Debug for $ty {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(name) => write!(f, "{}({:#0w$X} {})", stringify!($ty), self.0, name, w = $width),
                    None => write!(f, "{}({:#0w$X})", stringify!($ty), self.0, w = $width),
                }
            }
        }

        impl core::fmt::Display for $ty {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(name) => write!(f, "{name} ({:#0w$X})", self.0, w = $width),
                    None => write!(f, "{:#0w$X}", self.0, w = $width),
                }
            }
        }
    };
}

pub mod backend;
pub mod descriptor;
mod error;
pub mod message;
#[cfg(feature = "usb")]
pub mod rusb_shell;
#[cfg(feature = "sim")]
pub mod sim;
pub mod slot;
pub mod t0;
pub mod t1;
pub mod usb;

pub use backend::{CcidBackend, CcidConfig, CcidTransport, DeviceInfo, UsbBus};
pub use descriptor::{ClassDescriptor, ExchangeLevel, Features};
pub use error::{Error, UsbFailure, UsbOperation};
pub use message::{MessageType, SlotError};
pub use slot::{Outcome, Slot, SlotConfig, Step};
pub use usb::{CcidUsb, Driver, DriverConfig};

/// Result type of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;
