//! Values of the PC/SC API (pcsclite.h): scope, protocols, share modes, dispositions, reader
//! state flags, and the reader-list multi-string. Pure.

use std::fmt;

use scard_transport::{Disposition, Protocol, ShareMode};

/// `SCARD_SCOPE_SYSTEM` (pcsclite.h).
pub(crate) const SCOPE_SYSTEM: u32 = 0x0002;

/// `SCARD_PROTOCOL_T0` (pcsclite.h).
pub(crate) const PROTOCOL_T0: u32 = 0x0001;
/// `SCARD_PROTOCOL_T1` (pcsclite.h).
pub(crate) const PROTOCOL_T1: u32 = 0x0002;

/// `SCARD_SHARE_EXCLUSIVE` (pcsclite.h).
const SHARE_EXCLUSIVE: u32 = 0x0001;
/// `SCARD_SHARE_SHARED` (pcsclite.h).
const SHARE_SHARED: u32 = 0x0002;

/// `SCARD_LEAVE_CARD` (pcsclite.h).
pub(crate) const LEAVE_CARD: u32 = 0x0000;
/// `SCARD_RESET_CARD` (pcsclite.h).
const RESET_CARD: u32 = 0x0001;
/// `SCARD_UNPOWER_CARD` (pcsclite.h).
const UNPOWER_CARD: u32 = 0x0002;
/// `SCARD_EJECT_CARD` (pcsclite.h).
const EJECT_CARD: u32 = 0x0003;

/// The PnP pseudo-reader of `SCardGetStatusChange` that changes when readers come and go
/// (pcsc-lite's "\\?PnP?\Notification"; its state's upper 16 bits count the readers).
pub const PNP_NOTIFICATION: &str = r"\\?PnP?\Notification";

/// `dwShareMode` for a share mode.
pub(crate) fn share_mode(mode: ShareMode) -> u32 {
    match mode {
        ShareMode::Shared => SHARE_SHARED,
        ShareMode::Exclusive => SHARE_EXCLUSIVE,
    }
}

/// `dwDisposition` / `dwInitialization` for a disposition.
pub(crate) fn disposition(disposition: Disposition) -> u32 {
    match disposition {
        Disposition::Leave => LEAVE_CARD,
        Disposition::Reset => RESET_CARD,
        Disposition::Unpower => UNPOWER_CARD,
        Disposition::Eject => EJECT_CARD,
    }
}

/// The protocol of an active `SCARD_PROTOCOL_*` value (we only ever ask for T=0 or T=1).
pub(crate) fn protocol_of(active: u32) -> Option<Protocol> {
    match active {
        PROTOCOL_T0 => Some(Protocol::T0),
        PROTOCOL_T1 => Some(Protocol::T1),
        _ => None,
    }
}

/// The `SCARD_PROTOCOL_*` value (and so the `SCARD_IO_REQUEST`) of a protocol.
pub(crate) fn protocol_value(protocol: Protocol) -> u32 {
    match protocol {
        Protocol::T0 => PROTOCOL_T0,
        Protocol::T1 | Protocol::Apdu => PROTOCOL_T1,
    }
}

/// `dwEventState` / `dwCurrentState` of a reader (pcsclite.h `SCARD_STATE_*`). pcsc-lite keeps
/// an event counter in the upper 16 bits (it grows with every card insertion and removal).
/// An open newtype: unknown bits are kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReaderState(pub u32);

impl ReaderState {
    /// `SCARD_STATE_UNAWARE`: the application wants the current state.
    pub const UNAWARE: ReaderState = ReaderState(0x0000);
    /// `SCARD_STATE_IGNORE`: ignore this reader.
    pub const IGNORE: ReaderState = ReaderState(0x0001);
    /// `SCARD_STATE_CHANGED`: the state differs from `dwCurrentState`.
    pub const CHANGED: ReaderState = ReaderState(0x0002);
    /// `SCARD_STATE_UNKNOWN`: no such reader.
    pub const UNKNOWN: ReaderState = ReaderState(0x0004);
    /// `SCARD_STATE_UNAVAILABLE`: status unavailable.
    pub const UNAVAILABLE: ReaderState = ReaderState(0x0008);
    /// `SCARD_STATE_EMPTY`: no card.
    pub const EMPTY: ReaderState = ReaderState(0x0010);
    /// `SCARD_STATE_PRESENT`: a card is in the reader.
    pub const PRESENT: ReaderState = ReaderState(0x0020);
    /// `SCARD_STATE_ATRMATCH`: the ATR matches the one asked for.
    pub const ATRMATCH: ReaderState = ReaderState(0x0040);
    /// `SCARD_STATE_EXCLUSIVE`: in exclusive use by an application.
    pub const EXCLUSIVE: ReaderState = ReaderState(0x0080);
    /// `SCARD_STATE_INUSE`: in (shared) use by an application.
    pub const INUSE: ReaderState = ReaderState(0x0100);
    /// `SCARD_STATE_MUTE`: the card does not answer the reset.
    pub const MUTE: ReaderState = ReaderState(0x0200);
    /// `SCARD_STATE_UNPOWERED`: the card is not powered.
    pub const UNPOWERED: ReaderState = ReaderState(0x0400);

    const NAMES: [(ReaderState, &'static str); 11] = [
        (Self::IGNORE, "IGNORE"),
        (Self::CHANGED, "CHANGED"),
        (Self::UNKNOWN, "UNKNOWN"),
        (Self::UNAVAILABLE, "UNAVAILABLE"),
        (Self::EMPTY, "EMPTY"),
        (Self::PRESENT, "PRESENT"),
        (Self::ATRMATCH, "ATRMATCH"),
        (Self::EXCLUSIVE, "EXCLUSIVE"),
        (Self::INUSE, "INUSE"),
        (Self::MUTE, "MUTE"),
        (Self::UNPOWERED, "UNPOWERED"),
    ];

    /// Whether every bit of `flag` is set.
    pub fn contains(self, flag: ReaderState) -> bool {
        self.0 & flag.0 == flag.0
    }

    /// A card that answered its reset is in the reader (present and not mute).
    pub fn card_present(self) -> bool {
        self.contains(Self::PRESENT) && !self.contains(Self::MUTE)
    }

    /// The reader is unknown to PC/SC (it went away) or unusable.
    pub fn reader_gone(self) -> bool {
        self.contains(Self::UNKNOWN) || self.contains(Self::IGNORE)
    }

    /// pcsc-lite's event counter (upper 16 bits); for the PnP reader, the number of readers.
    pub fn event_count(self) -> u16 {
        u16::try_from(self.0 >> 16).unwrap_or(u16::MAX)
    }

    /// The value to pass back as `dwCurrentState` next time: the event state without
    /// `SCARD_STATE_CHANGED`.
    pub fn as_current(self) -> ReaderState {
        ReaderState(self.0 & !Self::CHANGED.0)
    }
}

impl fmt::Debug for ReaderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        let mut known = 0u32;
        for (flag, name) in Self::NAMES {
            known |= flag.0;
            if self.contains(flag) {
                parts.push(name.to_owned());
            }
        }
        let unknown = self.0 & 0xFFFF & !known;
        if unknown != 0 {
            parts.push(format!("0x{unknown:X}"));
        }
        if parts.is_empty() {
            parts.push("UNAWARE".to_owned());
        }
        f.write_str(&parts.join("|"))?;
        if self.event_count() != 0 {
            write!(f, " (events {})", self.event_count())?;
        }
        Ok(())
    }
}

/// The names of an `SCardListReaders` multi-string: NUL-terminated names, ended by an empty
/// name (an extra NUL). Tolerates a missing final terminator; non-UTF-8 bytes are replaced.
pub fn parse_multi_string(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|b| *b == 0)
        .take_while(|name| !name.is_empty())
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_strings() {
        assert_eq!(
            parse_multi_string(b"Virtual PCD 00 00\0Virtual PCD 00 01\0\0"),
            ["Virtual PCD 00 00", "Virtual PCD 00 01"]
        );
        assert_eq!(parse_multi_string(b"One\0\0"), ["One"]);
        // Empty lists in the shapes libraries produce them.
        assert!(parse_multi_string(b"\0").is_empty());
        assert!(parse_multi_string(b"\0\0").is_empty());
        assert!(parse_multi_string(b"").is_empty());
        // No final terminator, and garbage after the terminating empty name.
        assert_eq!(parse_multi_string(b"A\0B"), ["A", "B"]);
        assert_eq!(parse_multi_string(b"A\0\0junk\0"), ["A"]);
        assert_eq!(parse_multi_string(b"Caf\xc3\xa9\0\xff\0\0"), ["Café", "\u{fffd}"]);
    }

    #[test]
    fn reader_state_flags() {
        // pcsc-lite for vpcd with a card, event counter 3, in shared use, after a change.
        let s = ReaderState(0x0003_0122);
        assert!(s.card_present());
        assert!(s.contains(ReaderState::CHANGED));
        assert!(s.contains(ReaderState::INUSE));
        assert_eq!(s.event_count(), 3);
        assert_eq!(s.as_current(), ReaderState(0x0003_0120));
        assert_eq!(format!("{s:?}"), "CHANGED|PRESENT|INUSE (events 3)");
        let empty = ReaderState(0x0000_0012);
        assert!(!empty.card_present());
        assert_eq!(format!("{empty:?}"), "CHANGED|EMPTY");
        let mute = ReaderState(0x0220);
        assert!(!mute.card_present());
        assert!(ReaderState(0x0006).reader_gone());
        assert!(!s.reader_gone());
        assert_eq!(format!("{:?}", ReaderState::UNAWARE), "UNAWARE");
        assert_eq!(format!("{:?}", ReaderState(0x8000_0010)), "EMPTY (events 32768)");
        assert_eq!(format!("{:?}", ReaderState(0x0001_4000)), "0x4000 (events 1)");
    }

    #[test]
    fn api_values() {
        assert_eq!(share_mode(ShareMode::Shared), 2);
        assert_eq!(share_mode(ShareMode::Exclusive), 1);
        assert_eq!(disposition(Disposition::Leave), 0);
        assert_eq!(disposition(Disposition::Reset), 1);
        assert_eq!(disposition(Disposition::Unpower), 2);
        assert_eq!(disposition(Disposition::Eject), 3);
        assert_eq!(protocol_of(1), Some(Protocol::T0));
        assert_eq!(protocol_of(2), Some(Protocol::T1));
        assert_eq!(protocol_of(4), None);
        assert_eq!(protocol_value(Protocol::T0), 1);
        assert_eq!(protocol_value(Protocol::T1), 2);
        assert_eq!(PNP_NOTIFICATION.as_bytes(), b"\\\\?PnP?\\Notification");
    }
}
