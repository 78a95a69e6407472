//! PC/SC return codes and their one mapping to [`TransportError`].

use std::fmt;
use std::time::Duration;

use scard_transport::TransportError;

use crate::Error;

/// A PC/SC return code (`SCARD_S_SUCCESS`, `SCARD_F_*`, `SCARD_E_*`, `SCARD_W_*`,
/// `SCARD_P_*`; values from /usr/include/PCSC/pcsclite.h, pcsc-lite 1.9.9). An open newtype:
/// unknown codes stay valid and print in hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReturnCode(pub u32);

macro_rules! return_codes {
    ($( $name:ident = $value:literal, $text:literal; )*) => {
        impl ReturnCode {
            $( #[doc = $text] pub const $name: ReturnCode = ReturnCode($value); )*

            /// The C name (`SCARD_E_NO_SMARTCARD`), for known codes.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some(concat!("SCARD_", stringify!($name))), )*
                    _ => None,
                }
            }

            /// What pcsclite.h says the code means, for known codes.
            pub fn description(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some($text), )*
                    _ => None,
                }
            }
        }
    };
}

// pcsclite.h, in header order. 0x8010001F is both SCARD_E_UNEXPECTED and (in pcsc-lite)
// SCARD_E_UNSUPPORTED_FEATURE; pcsc-lite returns it for unsupported features, so that is its
// name here. 0x80100022 is Windows' SCARD_E_UNSUPPORTED_FEATURE (commented out in pcsc-lite).
return_codes! {
    S_SUCCESS = 0x0000_0000, "No error was encountered.";
    F_INTERNAL_ERROR = 0x8010_0001, "An internal consistency check failed.";
    E_CANCELLED = 0x8010_0002, "The action was cancelled by an SCardCancel request.";
    E_INVALID_HANDLE = 0x8010_0003, "The supplied handle was invalid.";
    E_INVALID_PARAMETER = 0x8010_0004, "One or more of the supplied parameters could not be properly interpreted.";
    E_INVALID_TARGET = 0x8010_0005, "Registry startup information is missing or invalid.";
    E_NO_MEMORY = 0x8010_0006, "Not enough memory available to complete this command.";
    F_WAITED_TOO_LONG = 0x8010_0007, "An internal consistency timer has expired.";
    E_INSUFFICIENT_BUFFER = 0x8010_0008, "The data buffer to receive returned data is too small for the returned data.";
    E_UNKNOWN_READER = 0x8010_0009, "The specified reader name is not recognized.";
    E_TIMEOUT = 0x8010_000A, "The user-specified timeout value has expired.";
    E_SHARING_VIOLATION = 0x8010_000B, "The smart card cannot be accessed because of other connections outstanding.";
    E_NO_SMARTCARD = 0x8010_000C, "The operation requires a smart card, but no smart card is currently in the device.";
    E_UNKNOWN_CARD = 0x8010_000D, "The specified smart card name is not recognized.";
    E_CANT_DISPOSE = 0x8010_000E, "The system could not dispose of the media in the requested manner.";
    E_PROTO_MISMATCH = 0x8010_000F, "The requested protocols are incompatible with the protocol currently in use with the smart card.";
    E_NOT_READY = 0x8010_0010, "The reader or smart card is not ready to accept commands.";
    E_INVALID_VALUE = 0x8010_0011, "One or more of the supplied parameters values could not be properly interpreted.";
    E_SYSTEM_CANCELLED = 0x8010_0012, "The action was cancelled by the system, presumably to log off or shut down.";
    F_COMM_ERROR = 0x8010_0013, "An internal communications error has been detected.";
    F_UNKNOWN_ERROR = 0x8010_0014, "An internal error has been detected, but the source is unknown.";
    E_INVALID_ATR = 0x8010_0015, "An ATR obtained from the registry is not a valid ATR string.";
    E_NOT_TRANSACTED = 0x8010_0016, "An attempt was made to end a non-existent transaction.";
    E_READER_UNAVAILABLE = 0x8010_0017, "The specified reader is not currently available for use.";
    P_SHUTDOWN = 0x8010_0018, "The operation has been aborted to allow the server application to exit.";
    E_PCI_TOO_SMALL = 0x8010_0019, "The PCI receive buffer was too small.";
    E_READER_UNSUPPORTED = 0x8010_001A, "The reader driver does not meet minimal requirements for support.";
    E_DUPLICATE_READER = 0x8010_001B, "The reader driver did not produce a unique reader name.";
    E_CARD_UNSUPPORTED = 0x8010_001C, "The smart card does not meet minimal requirements for support.";
    E_NO_SERVICE = 0x8010_001D, "The smart card resource manager (pcscd) is not running.";
    E_SERVICE_STOPPED = 0x8010_001E, "The smart card resource manager has shut down.";
    E_UNSUPPORTED_FEATURE = 0x8010_001F, "This smart card (or reader) does not support the requested feature.";
    E_ICC_INSTALLATION = 0x8010_0020, "No primary provider can be found for the smart card.";
    E_ICC_CREATEORDER = 0x8010_0021, "The requested order of object creation is not supported.";
    E_UNSUPPORTED_FEATURE_WINDOWS = 0x8010_0022, "This smart card does not support the requested feature (Windows value).";
    E_DIR_NOT_FOUND = 0x8010_0023, "The identified directory does not exist in the smart card.";
    E_FILE_NOT_FOUND = 0x8010_0024, "The identified file does not exist in the smart card.";
    E_NO_DIR = 0x8010_0025, "The supplied path does not represent a smart card directory.";
    E_NO_FILE = 0x8010_0026, "The supplied path does not represent a smart card file.";
    E_NO_ACCESS = 0x8010_0027, "Access is denied to this file.";
    E_WRITE_TOO_MANY = 0x8010_0028, "The smart card does not have enough memory to store the information.";
    E_BAD_SEEK = 0x8010_0029, "There was an error trying to set the smart card file object pointer.";
    E_INVALID_CHV = 0x8010_002A, "The supplied PIN is incorrect.";
    E_UNKNOWN_RES_MNG = 0x8010_002B, "An unrecognized error code was returned from a layered component.";
    E_NO_SUCH_CERTIFICATE = 0x8010_002C, "The requested certificate does not exist.";
    E_CERTIFICATE_UNAVAILABLE = 0x8010_002D, "The requested certificate could not be obtained.";
    E_NO_READERS_AVAILABLE = 0x8010_002E, "Cannot find a smart card reader.";
    E_COMM_DATA_LOST = 0x8010_002F, "A communications error with the smart card has been detected.";
    E_NO_KEY_CONTAINER = 0x8010_0030, "The requested key container does not exist on the smart card.";
    E_SERVER_TOO_BUSY = 0x8010_0031, "The smart card resource manager is too busy to complete this operation.";
    W_UNSUPPORTED_CARD = 0x8010_0065, "The reader cannot communicate with the card, due to ATR string configuration conflicts.";
    W_UNRESPONSIVE_CARD = 0x8010_0066, "The smart card is not responding to a reset.";
    W_UNPOWERED_CARD = 0x8010_0067, "Power has been removed from the smart card, so that further communication is not possible.";
    W_RESET_CARD = 0x8010_0068, "The smart card has been reset, so any shared state information is invalid.";
    W_REMOVED_CARD = 0x8010_0069, "The smart card has been removed, so further communication is not possible.";
    W_SECURITY_VIOLATION = 0x8010_006A, "Access was denied because of a security violation.";
    W_WRONG_CHV = 0x8010_006B, "The card cannot be accessed because the wrong PIN was presented.";
    W_CHV_BLOCKED = 0x8010_006C, "The card cannot be accessed because the maximum number of PIN entry attempts has been reached.";
    W_EOF = 0x8010_006D, "The end of the smart card file has been reached.";
    W_CANCELLED_BY_USER = 0x8010_006E, "The user pressed Cancel on a smart card selection dialog.";
    W_CARD_NOT_AUTHENTICATED = 0x8010_006F, "No PIN was presented to the smart card.";
}

impl fmt::Display for ReturnCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.name(), self.description()) {
            (Some(name), Some(text)) => write!(f, "{name} (0x{:08X}): {text}", self.0),
            _ => write!(f, "PC/SC error 0x{:08X}", self.0),
        }
    }
}

impl fmt::Debug for ReturnCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "ReturnCode(0x{:08X})", self.0),
        }
    }
}

/// The backend name in [`TransportError::BackendUnavailable`].
pub(crate) const BACKEND: &str = "PC/SC";

/// THE mapping of a failed PC/SC call to the transport's error (DESIGN.md: one function per
/// boundary). `reader` is the full reader name (`pcsc:...`, or `pcsc` for context calls) and
/// `call` the PC/SC function that failed.
pub(crate) fn map_error(code: ReturnCode, reader: &str, call: &'static str) -> TransportError {
    let reader_owned = || reader.to_owned();
    let protocol = || TransportError::Protocol {
        reader: reader_owned(),
        reason: format!("{call} failed: {code}"),
    };
    let io = |kind: std::io::ErrorKind| TransportError::Io {
        reader: reader_owned(),
        source: std::io::Error::new(kind, Error::Call { call, code }),
    };
    match code {
        ReturnCode::W_RESET_CARD => TransportError::CardReset { reader: reader_owned() },
        // The reader going away takes its card with it.
        ReturnCode::W_REMOVED_CARD | ReturnCode::E_READER_UNAVAILABLE => {
            TransportError::CardRemoved { reader: reader_owned() }
        }
        ReturnCode::E_NO_SMARTCARD => TransportError::NoCard { reader: reader_owned() },
        ReturnCode::E_SHARING_VIOLATION => TransportError::Sharing { reader: reader_owned() },
        ReturnCode::E_UNKNOWN_READER | ReturnCode::E_NO_READERS_AVAILABLE => {
            TransportError::UnknownReader {
                name: reader_owned(),
                known: "none of that name in PC/SC (see `scard readers`)".to_owned(),
            }
        }
        // Only SCardGetStatusChange has a PC/SC timeout, and it handles it itself.
        ReturnCode::E_TIMEOUT => TransportError::Timeout {
            reader: reader_owned(),
            command: call.to_owned(),
            after: Duration::ZERO,
        },
        ReturnCode::E_NO_SERVICE | ReturnCode::E_SERVICE_STOPPED | ReturnCode::P_SHUTDOWN => {
            TransportError::BackendUnavailable {
                backend: BACKEND,
                reason: format!("{call}: {code}"),
            }
        }
        ReturnCode::E_UNSUPPORTED_FEATURE | ReturnCode::E_UNSUPPORTED_FEATURE_WINDOWS => {
            TransportError::Unsupported { reader: reader_owned(), what: call }
        }
        ReturnCode::W_UNRESPONSIVE_CARD
        | ReturnCode::W_UNPOWERED_CARD
        | ReturnCode::W_UNSUPPORTED_CARD
        | ReturnCode::E_PROTO_MISMATCH
        | ReturnCode::E_INVALID_ATR
        | ReturnCode::E_CARD_UNSUPPORTED
        | ReturnCode::E_NOT_TRANSACTED
        | ReturnCode::E_INSUFFICIENT_BUFFER
        | ReturnCode::E_PCI_TOO_SMALL
        | ReturnCode::E_INVALID_VALUE
        | ReturnCode::E_INVALID_PARAMETER => protocol(),
        ReturnCode::E_CANCELLED | ReturnCode::E_SYSTEM_CANCELLED => {
            io(std::io::ErrorKind::Interrupted)
        }
        ReturnCode::E_NOT_READY | ReturnCode::E_SERVER_TOO_BUSY => {
            io(std::io::ErrorKind::WouldBlock)
        }
        _ => io(std::io::ErrorKind::Other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mapping table: every code we give a meaning, and a few that fall through.
    #[test]
    fn error_mapping_table() {
        use TransportError as T;
        type Check = fn(&TransportError) -> bool;
        let table: &[(ReturnCode, &str, Check)] = &[
            (ReturnCode::W_RESET_CARD, "CardReset", |e| matches!(e, T::CardReset { .. })),
            (ReturnCode::W_REMOVED_CARD, "CardRemoved", |e| matches!(e, T::CardRemoved { .. })),
            (ReturnCode::E_READER_UNAVAILABLE, "CardRemoved", |e| {
                matches!(e, T::CardRemoved { .. })
            }),
            (ReturnCode::E_NO_SMARTCARD, "NoCard", |e| matches!(e, T::NoCard { .. })),
            (ReturnCode::E_SHARING_VIOLATION, "Sharing", |e| matches!(e, T::Sharing { .. })),
            (ReturnCode::E_UNKNOWN_READER, "UnknownReader", |e| {
                matches!(e, T::UnknownReader { .. })
            }),
            (ReturnCode::E_NO_READERS_AVAILABLE, "UnknownReader", |e| {
                matches!(e, T::UnknownReader { .. })
            }),
            (ReturnCode::E_TIMEOUT, "Timeout", |e| matches!(e, T::Timeout { .. })),
            (ReturnCode::E_NO_SERVICE, "BackendUnavailable", |e| {
                matches!(e, T::BackendUnavailable { backend: "PC/SC", .. })
            }),
            (ReturnCode::E_SERVICE_STOPPED, "BackendUnavailable", |e| {
                matches!(e, T::BackendUnavailable { .. })
            }),
            (ReturnCode::P_SHUTDOWN, "BackendUnavailable", |e| {
                matches!(e, T::BackendUnavailable { .. })
            }),
            (ReturnCode::E_UNSUPPORTED_FEATURE, "Unsupported", |e| {
                matches!(e, T::Unsupported { what: "SCardTransmit", .. })
            }),
            (ReturnCode::E_UNSUPPORTED_FEATURE_WINDOWS, "Unsupported", |e| {
                matches!(e, T::Unsupported { .. })
            }),
            (ReturnCode::W_UNRESPONSIVE_CARD, "Protocol", |e| matches!(e, T::Protocol { .. })),
            (ReturnCode::W_UNPOWERED_CARD, "Protocol", |e| matches!(e, T::Protocol { .. })),
            (ReturnCode::E_PROTO_MISMATCH, "Protocol", |e| matches!(e, T::Protocol { .. })),
            (ReturnCode::E_NOT_TRANSACTED, "Protocol", |e| matches!(e, T::Protocol { .. })),
            (ReturnCode::E_INSUFFICIENT_BUFFER, "Protocol", |e| matches!(e, T::Protocol { .. })),
            (
                ReturnCode::E_CANCELLED,
                "Io",
                |e| matches!(e, T::Io { source, .. } if source.kind() == std::io::ErrorKind::Interrupted),
            ),
            (ReturnCode::E_INVALID_HANDLE, "Io", |e| matches!(e, T::Io { .. })),
            (ReturnCode::F_COMM_ERROR, "Io", |e| matches!(e, T::Io { .. })),
            (ReturnCode::E_COMM_DATA_LOST, "Io", |e| matches!(e, T::Io { .. })),
            (ReturnCode(0x1234_5678), "Io", |e| matches!(e, T::Io { .. })),
        ];
        for (code, expected, check) in table {
            let err = map_error(*code, "pcsc:Reader 00 00", "SCardTransmit");
            assert!(check(&err), "{code:?} should map to {expected}, got {err:?}");
            let text = err.to_string();
            if !matches!(err, T::BackendUnavailable { .. }) {
                assert!(text.contains("pcsc:Reader 00 00"), "{code:?}: {text}");
            }
        }
    }

    #[test]
    fn io_errors_carry_the_call_and_code() {
        let err = map_error(ReturnCode::E_INVALID_HANDLE, "pcsc:R", "SCardStatus");
        let TransportError::Io { source, .. } = &err else { panic!("{err:?}") };
        let inner = source.get_ref().and_then(|e| e.downcast_ref::<Error>()).unwrap();
        assert!(matches!(
            inner,
            Error::Call { call: "SCardStatus", code: ReturnCode::E_INVALID_HANDLE }
        ));
        assert!(err.to_string().contains("SCARD_E_INVALID_HANDLE (0x80100003)"), "{err}");
    }

    #[test]
    fn names_and_display() {
        assert_eq!(ReturnCode::E_NO_SMARTCARD.name(), Some("SCARD_E_NO_SMARTCARD"));
        assert_eq!(format!("{:?}", ReturnCode::W_RESET_CARD), "SCARD_W_RESET_CARD");
        assert_eq!(format!("{:?}", ReturnCode(0x8010_0099)), "ReturnCode(0x80100099)");
        assert_eq!(ReturnCode(0x8010_0099).to_string(), "PC/SC error 0x80100099");
        let unavailable = map_error(ReturnCode::E_NO_SERVICE, "pcsc", "SCardEstablishContext");
        assert_eq!(
            unavailable.to_string(),
            "PC/SC not available: SCardEstablishContext: SCARD_E_NO_SERVICE (0x8010001D): \
             The smart card resource manager (pcscd) is not running."
        );
    }
}
