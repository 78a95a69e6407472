//! The PC/SC backend of scard: readers `pcsc:<name or glob>` through the system's PC/SC
//! service (pcsc-lite's pcscd on Linux and the BSDs, PCSC.framework on macOS).
//!
//! - The PC/SC library is loaded at run time ([`PcscBackend::new`]: `libpcsclite.so.1`, then
//!   `libpcsclite.so`; macOS's framework; `SCARD_PCSC_LIBRARY` overrides), never linked: a
//!   build needs no system library, and without one the backend reports
//!   "PC/SC not available: ..." while the other backends keep working.
//! - [`PcscBackend`] implements [`scard_transport::Backend`]: reader listing with card
//!   presence and ATR, connection by exact name or glob, and events (card inserted / removed,
//!   reader added / removed through the PnP notification reader) with `SCardGetStatusChange`.
//! - [`PcscTransport`] implements [`scard_transport::CardTransport`]: T=0 / T=1, shared or
//!   exclusive, transactions, `SCARD_W_RESET_CARD` acknowledged and reported once as
//!   [`scard_transport::TransportError::CardReset`], dispositions, control codes, reader
//!   attributes, and a deadline on every call (the calls of a connection run on its own
//!   thread: pcsc-lite's `SCardTransmit` has no timeout).
//! - [`part10`]: PC/SC part 10 features of pin-pad readers (`FEATURE_VERIFY_PIN_DIRECT`,
//!   `FEATURE_MODIFY_PIN_DIRECT`).
//!
//! All `unsafe` code is in the private `ffi` module; every PC/SC return code is mapped to a
//! transport error in one function ([`ReturnCode`] names them).

mod backend;
mod code;
mod context;
mod ffi;
pub mod part10;
mod state;
mod transport;
mod worker;

use std::time::Duration;

pub use backend::{Canceller, LIBRARY_ENV, PcscBackend, resolve};
pub use code::ReturnCode;
pub use state::{PNP_NOTIFICATION, ReaderState, parse_multi_string};
pub use transport::PcscTransport;

/// Reader attributes for [`PcscTransport::attribute`] (reader.h `SCARD_ATTR_*`).
pub mod attr {
    const fn value(class: u32, tag: u32) -> u32 {
        (class << 16) | tag
    }
    /// `SCARD_ATTR_VENDOR_NAME`.
    pub const VENDOR_NAME: u32 = value(1, 0x0100);
    /// `SCARD_ATTR_VENDOR_IFD_TYPE`.
    pub const VENDOR_IFD_TYPE: u32 = value(1, 0x0101);
    /// `SCARD_ATTR_VENDOR_IFD_VERSION`.
    pub const VENDOR_IFD_VERSION: u32 = value(1, 0x0102);
    /// `SCARD_ATTR_VENDOR_IFD_SERIAL_NO`.
    pub const VENDOR_IFD_SERIAL_NO: u32 = value(1, 0x0103);
    /// `SCARD_ATTR_CHANNEL_ID`.
    pub const CHANNEL_ID: u32 = value(2, 0x0110);
    /// `SCARD_ATTR_MAX_IFSD`.
    pub const MAX_IFSD: u32 = value(3, 0x0125);
    /// `SCARD_ATTR_CURRENT_PROTOCOL_TYPE`.
    pub const CURRENT_PROTOCOL_TYPE: u32 = value(8, 0x0201);
    /// `SCARD_ATTR_ICC_PRESENCE`.
    pub const ICC_PRESENCE: u32 = value(9, 0x0300);
    /// `SCARD_ATTR_ATR_STRING`.
    pub const ATR_STRING: u32 = value(9, 0x0303);
    /// `SCARD_ATTR_MAXINPUT`.
    pub const MAXINPUT: u32 = value(7, 0xA007);
    /// `SCARD_ATTR_DEVICE_FRIENDLY_NAME` (the `_A` variant on pcsc-lite).
    pub const DEVICE_FRIENDLY_NAME: u32 = value(0x7FFF, 0x0003);
}

/// Errors of this crate. They reach callers inside [`scard_transport::TransportError`]
/// (`Io`'s source, or the reason of `Protocol`), and from the pure parsers and encoders.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A PC/SC call failed with a code that has no transport meaning of its own.
    #[error("{call} failed: {code}")]
    Call {
        /// The PC/SC function.
        call: &'static str,
        /// What it returned.
        code: ReturnCode,
    },
    /// An earlier call of the connection got no answer in time; the connection is unusable.
    #[error(
        "connection unusable: {command} got no answer within {after:?} (reconnect or connect again)"
    )]
    Unusable {
        /// The command that timed out.
        command: String,
        /// Its deadline.
        after: Duration,
    },
    /// The connection's thread is gone.
    #[error("the connection's thread ended")]
    WorkerEnded,
    /// A malformed part 10 feature list.
    #[error("PC/SC part 10 feature list: {what} at offset {offset}")]
    FeatureList {
        /// What is wrong.
        what: &'static str,
        /// Byte offset in the list.
        offset: usize,
    },
    /// A PIN structure field out of range.
    #[error("PIN structure: {field} is {value}, limit {max}")]
    PinStructure {
        /// The field (PC/SC part 10 name).
        field: &'static str,
        /// The value given.
        value: usize,
        /// Its limit.
        max: usize,
    },
}

#[cfg(test)]
mod tests {
    #[test]
    fn attributes_match_reader_h() {
        // reader.h: SCARD_ATTR_VALUE(SCARD_CLASS_ICC_STATE, 0x0303) etc.
        assert_eq!(super::attr::ATR_STRING, 0x0009_0303);
        assert_eq!(super::attr::VENDOR_NAME, 0x0001_0100);
        assert_eq!(super::attr::DEVICE_FRIENDLY_NAME, 0x7FFF_0003);
    }
}
