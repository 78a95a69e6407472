//! Status words SW1-SW2 (ISO/IEC 7816-4 §5.6, tables 5 and 6).
//!
//! [`StatusWord`] is an open newtype: every 16-bit value round-trips, known values have names
//! (shown by `Debug`) and classifiers answer the questions upper layers ask.

use core::fmt;

/// The two trailing bytes of every response APDU.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusWord(pub u16);

/// The four categories of ISO/IEC 7816-4 §5.6 table 5, by SW1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusClass {
    /// 9000 and 61xx: the command completed.
    NormalProcessing,
    /// 62xx, 63xx: completed with a warning.
    Warning,
    /// 64xx, 65xx, 66xx: failed while executing.
    ExecutionError,
    /// 67xx to 6Fxx: rejected by checking.
    CheckingError,
    /// Anything else (90xx other than 9000 and 9xxx are proprietary; other SW1 are invalid).
    Other,
}

named_values! {
    StatusWord, "The name of a value that ISO/IEC 7816-4 gives one meaning, if any.";
    /// 9000: normal processing, no further qualification.
    SUCCESS = 0x9000, "Success";
    /// 6200: warning, state of non-volatile memory unchanged.
    WARNING_NV_UNCHANGED = 0x6200, "WarningNonVolatileUnchanged";
    /// 6281: part of the returned data may be corrupted.
    DATA_MAY_BE_CORRUPTED = 0x6281, "DataMayBeCorrupted";
    /// 6282: end of file or record reached before reading Ne bytes.
    END_OF_FILE = 0x6282, "EndOfFileBeforeNe";
    /// 6283: selected file deactivated.
    FILE_DEACTIVATED = 0x6283, "SelectedFileDeactivated";
    /// 6284: file control information not formatted per 7816-4 §5.3.3.
    FCI_NOT_FORMATTED = 0x6284, "FciNotFormatted";
    /// 6300: warning, non-volatile memory changed, no information given (verification failed).
    VERIFICATION_FAILED = 0x6300, "VerificationFailed";
    /// 6381: file filled up by the last write.
    FILE_FILLED = 0x6381, "FileFilledByLastWrite";
    /// 6400: execution error, non-volatile memory unchanged.
    EXECUTION_ERROR = 0x6400, "ExecutionError";
    /// 6581: memory failure.
    MEMORY_FAILURE = 0x6581, "MemoryFailure";
    /// 6700: wrong length, no further indication.
    WRONG_LENGTH = 0x6700, "WrongLength";
    /// 6881: logical channel not supported.
    LOGICAL_CHANNEL_NOT_SUPPORTED = 0x6881, "LogicalChannelNotSupported";
    /// 6882: secure messaging not supported.
    SECURE_MESSAGING_NOT_SUPPORTED = 0x6882, "SecureMessagingNotSupported";
    /// 6883: last command of the chain expected.
    LAST_COMMAND_OF_CHAIN_EXPECTED = 0x6883, "LastCommandOfChainExpected";
    /// 6884: command chaining not supported.
    CHAINING_NOT_SUPPORTED = 0x6884, "CommandChainingNotSupported";
    /// 6981: command incompatible with file structure.
    INCOMPATIBLE_FILE_STRUCTURE = 0x6981, "IncompatibleWithFileStructure";
    /// 6982: security status not satisfied.
    SECURITY_STATUS_NOT_SATISFIED = 0x6982, "SecurityStatusNotSatisfied";
    /// 6983: authentication method blocked.
    AUTH_METHOD_BLOCKED = 0x6983, "AuthenticationMethodBlocked";
    /// 6984: reference data not usable.
    REFERENCE_DATA_NOT_USABLE = 0x6984, "ReferenceDataNotUsable";
    /// 6985: conditions of use not satisfied.
    CONDITIONS_NOT_SATISFIED = 0x6985, "ConditionsOfUseNotSatisfied";
    /// 6986: command not allowed (no current EF).
    COMMAND_NOT_ALLOWED = 0x6986, "CommandNotAllowedNoCurrentEf";
    /// 6987: expected secure messaging data objects missing.
    SM_OBJECTS_MISSING = 0x6987, "SecureMessagingObjectsMissing";
    /// 6988: incorrect secure messaging data objects.
    SM_OBJECTS_INCORRECT = 0x6988, "SecureMessagingObjectsIncorrect";
    /// 6A80: incorrect parameters in the command data field.
    INCORRECT_DATA = 0x6A80, "IncorrectDataField";
    /// 6A81: function not supported.
    FUNCTION_NOT_SUPPORTED = 0x6A81, "FunctionNotSupported";
    /// 6A82: file or application not found.
    FILE_NOT_FOUND = 0x6A82, "FileOrApplicationNotFound";
    /// 6A83: record not found.
    RECORD_NOT_FOUND = 0x6A83, "RecordNotFound";
    /// 6A84: not enough memory space in the file.
    NOT_ENOUGH_MEMORY = 0x6A84, "NotEnoughMemory";
    /// 6A86: incorrect parameters P1-P2.
    INCORRECT_P1P2 = 0x6A86, "IncorrectP1P2";
    /// 6A87: Nc inconsistent with parameters P1-P2.
    NC_INCONSISTENT_WITH_P1P2 = 0x6A87, "NcInconsistentWithP1P2";
    /// 6A88: referenced data or reference data not found.
    REFERENCED_DATA_NOT_FOUND = 0x6A88, "ReferencedDataNotFound";
    /// 6A89: file already exists.
    FILE_EXISTS = 0x6A89, "FileAlreadyExists";
    /// 6A8A: DF name already exists.
    DF_NAME_EXISTS = 0x6A8A, "DfNameAlreadyExists";
    /// 6B00: wrong parameters P1-P2.
    WRONG_P1P2 = 0x6B00, "WrongP1P2";
    /// 6D00: instruction code not supported or invalid.
    INS_NOT_SUPPORTED = 0x6D00, "InsNotSupported";
    /// 6E00: class not supported.
    CLA_NOT_SUPPORTED = 0x6E00, "ClaNotSupported";
    /// 6F00: no precise diagnosis.
    NO_PRECISE_DIAGNOSIS = 0x6F00, "NoPreciseDiagnosis";
}

impl StatusWord {
    /// Builds a status word from SW1 and SW2.
    pub const fn from_bytes(sw1: u8, sw2: u8) -> Self {
        Self(u16::from_be_bytes([sw1, sw2]))
    }

    /// SW1.
    pub const fn sw1(self) -> u8 {
        self.0.to_be_bytes()[0]
    }

    /// SW2.
    pub const fn sw2(self) -> u8 {
        self.0.to_be_bytes()[1]
    }

    /// SW1 SW2 as sent on the wire.
    pub const fn to_bytes(self) -> [u8; 2] {
        self.0.to_be_bytes()
    }

    /// 9000 exactly.
    pub const fn is_success(self) -> bool {
        self.0 == 0x9000
    }

    /// The category of ISO/IEC 7816-4 §5.6 table 5.
    pub const fn class(self) -> StatusClass {
        match self.sw1() {
            0x61 => StatusClass::NormalProcessing,
            0x90 if self.0 == 0x9000 => StatusClass::NormalProcessing,
            0x62 | 0x63 => StatusClass::Warning,
            0x64..=0x66 => StatusClass::ExecutionError,
            0x67..=0x6F => StatusClass::CheckingError,
            _ => StatusClass::Other,
        }
    }

    /// 61xx: the number of response bytes still available, for a GET RESPONSE with Le = xx.
    /// `6100` means 256 or more (7816-4 §5.1.3: SW2 encodes the count, 00 meaning 256 when
    /// sent as a short Le).
    pub const fn bytes_remaining(self) -> Option<usize> {
        match self.to_bytes() {
            [0x61, 0x00] => Some(256),
            [0x61, n] => Some(n as usize),
            _ => None,
        }
    }

    /// 6Cxx: wrong Le field; xx is the exact Ne to resend with (00 meaning 256).
    pub const fn correct_le(self) -> Option<usize> {
        match self.to_bytes() {
            [0x6C, 0x00] => Some(256),
            [0x6C, n] => Some(n as usize),
            _ => None,
        }
    }

    /// 63Cx: a verification failed (or succeeded, for an empty VERIFY) and x tries remain
    /// (7816-4 §5.6 table 6, SW1 = 63, SW2 = Cx: counter x).
    pub const fn tries_left(self) -> Option<u8> {
        match self.to_bytes() {
            [0x63, n] if n & 0xF0 == 0xC0 => Some(n & 0x0F),
            _ => None,
        }
    }

    /// 6982.
    pub const fn is_security_status_not_satisfied(self) -> bool {
        self.0 == Self::SECURITY_STATUS_NOT_SATISFIED.0
    }

    /// 6983: the PIN or key is blocked.
    pub const fn is_auth_method_blocked(self) -> bool {
        self.0 == Self::AUTH_METHOD_BLOCKED.0
    }

    /// 6A82: file or application not found.
    pub const fn is_file_not_found(self) -> bool {
        self.0 == Self::FILE_NOT_FOUND.0
    }

    /// 6A88: referenced data (a data object, a key reference) not found.
    pub const fn is_referenced_data_not_found(self) -> bool {
        self.0 == Self::REFERENCED_DATA_NOT_FOUND.0
    }

    /// Anything meaning "not found": 6A82, 6A83 or 6A88.
    pub const fn is_not_found(self) -> bool {
        matches!(self.0, 0x6A82 | 0x6A83 | 0x6A88)
    }

    /// 6A86 (incorrect P1-P2) or 6B00 (wrong parameters P1-P2).
    pub const fn is_wrong_p1p2(self) -> bool {
        matches!(self.0, 0x6A86 | 0x6B00)
    }

    /// 6D00: instruction not supported.
    pub const fn is_ins_not_supported(self) -> bool {
        self.0 == Self::INS_NOT_SUPPORTED.0
    }

    /// 6E00: class not supported.
    pub const fn is_cla_not_supported(self) -> bool {
        self.0 == Self::CLA_NOT_SUPPORTED.0
    }

    /// 6700 or 6Cxx.
    pub const fn is_wrong_length(self) -> bool {
        self.0 == 0x6700 || self.sw1() == 0x6C
    }
}

impl From<u16> for StatusWord {
    fn from(value: u16) -> Self {
        Self(value)
    }
}

impl From<StatusWord> for u16 {
    fn from(value: StatusWord) -> Self {
        value.0
    }
}

impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X}", self.0)?;
        if let Some(name) = self.name() {
            return write!(f, " ({name})");
        }
        if let Some(n) = self.bytes_remaining() {
            return write!(f, " (BytesRemaining {n})");
        }
        if let Some(n) = self.correct_le() {
            return write!(f, " (CorrectLe {n})");
        }
        if let Some(n) = self.tries_left() {
            return write!(f, " (TriesLeft {n})");
        }
        Ok(())
    }
}

impl fmt::Debug for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StatusWord({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    // Values from ISO/IEC 7816-4:2020 §5.6 tables 5 and 6.
    #[test]
    fn classifiers() {
        assert!(StatusWord(0x9000).is_success());
        assert!(!StatusWord(0x6100).is_success());
        assert_eq!(StatusWord(0x6110).bytes_remaining(), Some(16));
        assert_eq!(StatusWord(0x6100).bytes_remaining(), Some(256));
        assert_eq!(StatusWord(0x9000).bytes_remaining(), None);
        assert_eq!(StatusWord(0x6C20).correct_le(), Some(32));
        assert_eq!(StatusWord(0x6C00).correct_le(), Some(256));
        assert_eq!(StatusWord(0x6B00).correct_le(), None);
        assert_eq!(StatusWord(0x63C3).tries_left(), Some(3));
        assert_eq!(StatusWord(0x63C0).tries_left(), Some(0));
        assert_eq!(StatusWord(0x6300).tries_left(), None);
        assert_eq!(StatusWord(0x6381).tries_left(), None);
        assert!(StatusWord(0x6982).is_security_status_not_satisfied());
        assert!(StatusWord(0x6983).is_auth_method_blocked());
        assert!(StatusWord(0x6A82).is_file_not_found());
        assert!(StatusWord(0x6A88).is_referenced_data_not_found());
        assert!(StatusWord(0x6A83).is_not_found());
        assert!(!StatusWord(0x6A86).is_not_found());
        assert!(StatusWord(0x6A86).is_wrong_p1p2());
        assert!(StatusWord(0x6B00).is_wrong_p1p2());
        assert!(StatusWord(0x6D00).is_ins_not_supported());
        assert!(StatusWord(0x6E00).is_cla_not_supported());
        assert!(StatusWord(0x6700).is_wrong_length());
        assert!(StatusWord(0x6C10).is_wrong_length());
    }

    #[test]
    fn classes() {
        assert_eq!(StatusWord(0x9000).class(), StatusClass::NormalProcessing);
        assert_eq!(StatusWord(0x6108).class(), StatusClass::NormalProcessing);
        assert_eq!(StatusWord(0x6282).class(), StatusClass::Warning);
        assert_eq!(StatusWord(0x63C2).class(), StatusClass::Warning);
        assert_eq!(StatusWord(0x6581).class(), StatusClass::ExecutionError);
        assert_eq!(StatusWord(0x6A82).class(), StatusClass::CheckingError);
        assert_eq!(StatusWord(0x6F00).class(), StatusClass::CheckingError);
        assert_eq!(StatusWord(0x9001).class(), StatusClass::Other);
        assert_eq!(StatusWord(0x1234).class(), StatusClass::Other);
    }

    #[test]
    fn bytes_and_names() {
        let sw = StatusWord::from_bytes(0x6A, 0x82);
        assert_eq!(sw, StatusWord::FILE_NOT_FOUND);
        assert_eq!((sw.sw1(), sw.sw2()), (0x6A, 0x82));
        assert_eq!(sw.to_bytes(), [0x6A, 0x82]);
        assert_eq!(format!("{sw:?}"), "StatusWord(6A82 (FileOrApplicationNotFound))");
        assert_eq!(format!("{}", StatusWord(0x63C2)), "63C2 (TriesLeft 2)");
        assert_eq!(format!("{}", StatusWord(0x6110)), "6110 (BytesRemaining 16)");
        assert_eq!(format!("{}", StatusWord(0x6C20)), "6C20 (CorrectLe 32)");
        assert_eq!(format!("{:?}", StatusWord(0x9F12)), "StatusWord(9F12)");
        assert_eq!(u16::from(StatusWord::from(0x1234)), 0x1234);
    }
}
