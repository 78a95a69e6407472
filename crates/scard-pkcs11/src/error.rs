//! The one error type of the module, and the one function that turns an error into a CK_RV
//! ([`Error::rv`]). Errors of the key storage provider are mapped through their
//! [`scard_ksp::ErrorKind`]; the module's own conditions (handles, states, templates) have a
//! variant each, named after the code they give.

use cryptoki_sys::*;
use scard_ksp::{ErrorKind, KspError};

/// Errors of the PKCS#11 module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key storage provider (and below it the card and the reader) failed or refused.
    #[error(transparent)]
    Ksp(#[from] KspError),
    /// A call before `C_Initialize` (or after `C_Finalize`, or in a forked child).
    #[error("C_Initialize has not been called")]
    NotInitialized,
    /// `C_Initialize` twice.
    #[error("C_Initialize was already called")]
    AlreadyInitialized,
    /// A NULL pointer or an argument that cannot be right.
    #[error("bad arguments: {0}")]
    ArgumentsBad(&'static str),
    /// `CK_C_INITIALIZE_ARGS` with the application's mutex functions and without
    /// `CKF_OS_LOCKING_OK`: the module only has its own (OS) locks.
    #[error("the application's mutex functions cannot be used without CKF_OS_LOCKING_OK")]
    CantLock,
    /// No slot with this id.
    #[error("no slot {0}")]
    SlotIdInvalid(CK_SLOT_ID),
    /// The slot has no card.
    #[error("slot {0}: no token")]
    TokenNotPresent(CK_SLOT_ID),
    /// No session with this handle (or its token went away).
    #[error("no session {0}")]
    SessionHandleInvalid(CK_SESSION_HANDLE),
    /// `C_OpenSession` without `CKF_SERIAL_SESSION`.
    #[error("sessions must be serial (CKF_SERIAL_SESSION)")]
    SessionParallelNotSupported,
    /// A write in a read-only session.
    #[error("the session is read-only")]
    SessionReadOnly,
    /// `C_Login(CKU_SO)` while a read-only session of the token is open.
    #[error("a read-only session is open: the SO cannot log in")]
    SessionReadOnlyExists,
    /// A read-only session while the SO is logged in.
    #[error("the SO is logged in: no read-only session can be opened")]
    SessionReadWriteSoExists,
    /// No object with this handle that the session can see.
    #[error("no object {0}")]
    ObjectHandleInvalid(CK_OBJECT_HANDLE),
    /// No key with this handle that the session can see.
    #[error("no key {0}")]
    KeyHandleInvalid(CK_OBJECT_HANDLE),
    /// A user type other than CKU_SO, CKU_USER, CKU_CONTEXT_SPECIFIC.
    #[error("user type {0} is not CKU_SO, CKU_USER or CKU_CONTEXT_SPECIFIC")]
    UserTypeInvalid(CK_USER_TYPE),
    /// The operation needs a login that is not there.
    #[error("not logged in: {0}")]
    UserNotLoggedIn(&'static str),
    /// `C_Login` of the user type already logged in.
    #[error("already logged in")]
    UserAlreadyLoggedIn,
    /// `C_Login` of one user type while the other is logged in.
    #[error("the other user type is logged in")]
    UserAnotherAlreadyLoggedIn,
    /// An operation of this kind is already active in the session.
    #[error("an operation is already active in the session")]
    OperationActive,
    /// No operation of this kind is active in the session.
    #[error("no operation of this kind was initialized")]
    OperationNotInitialized,
    /// A mechanism the module (or this function, or this token) does not offer.
    #[error("mechanism {0:#x} is not supported here")]
    MechanismInvalid(CK_MECHANISM_TYPE),
    /// A mechanism parameter that is missing, malformed or not supported.
    #[error("mechanism parameter: {0}")]
    MechanismParamInvalid(&'static str),
    /// A mechanism for another key type.
    #[error("mechanism {mechanism:#x} is not for a key of type {key_type:#x}")]
    KeyTypeInconsistent {
        /// The mechanism.
        mechanism: CK_MECHANISM_TYPE,
        /// The key's CKA_KEY_TYPE.
        key_type: CK_KEY_TYPE,
    },
    /// The key may not do this (its CKA_SIGN / CKA_DECRYPT / CKA_DERIVE is false).
    #[error("the key may not {0}")]
    KeyFunctionNotPermitted(&'static str),
    /// An RSA key size the card does not generate.
    #[error("RSA keys of {0} bits cannot be generated on this card")]
    KeySizeRange(CK_ULONG),
    /// A curve the card does not take.
    #[error("curve not supported: {0}")]
    CurveNotSupported(&'static str),
    /// An attribute the object (or template) does not have.
    #[error("attribute {0:#x} is not valid here")]
    AttributeTypeInvalid(CK_ATTRIBUTE_TYPE),
    /// An attribute value that is malformed or cannot be honoured.
    #[error("attribute {0:#x}: invalid value")]
    AttributeValueInvalid(CK_ATTRIBUTE_TYPE),
    /// A template without an attribute the call needs.
    #[error("the template lacks attribute {0:#x}")]
    TemplateIncomplete(CK_ATTRIBUTE_TYPE),
    /// Template attributes that contradict each other or what the token can do.
    #[error("attribute {0:#x} contradicts the template or what the token can do")]
    TemplateInconsistent(CK_ATTRIBUTE_TYPE),
    /// Input data of a length the mechanism cannot take.
    #[error("{len} bytes of input; the mechanism takes at most {max}")]
    DataLenRange {
        /// The length given.
        len: usize,
        /// The most the mechanism takes.
        max: usize,
    },
    /// Input data the mechanism cannot take (an RSA block not below the modulus).
    #[error("invalid input data: {0}")]
    DataInvalid(&'static str),
    /// A ciphertext of a length the key cannot have produced.
    #[error("ciphertext of {len} bytes for a {k}-byte key")]
    EncryptedDataLenRange {
        /// The length given.
        len: usize,
        /// The key's modulus length.
        k: usize,
    },
    /// A function the module does not implement.
    #[error("{0} is not supported")]
    FunctionNotSupported(&'static str),
    /// A PIN value that cannot be the credential (an SO admin key that is not hex).
    #[error("incorrect PIN: {0}")]
    PinIncorrect(&'static str),
    /// `C_WaitForSlotEvent` with `CKF_DONT_BLOCK` and no event.
    #[error("no slot event")]
    NoEvent,
    /// `C_SeedRandom` / `C_GenerateRandom`: the module offers no random number generator.
    #[error("no random number generator")]
    RandomNoRng,
    /// A panic caught at the C boundary (a bug): the last resort.
    #[error("internal error (a panic was caught at the C boundary)")]
    Panic,
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The CK_RV of an error: the one place where errors become return codes.
    pub fn rv(&self) -> CK_RV {
        match self {
            Error::Ksp(e) => match e.kind() {
                ErrorKind::PinNeeded => CKR_USER_NOT_LOGGED_IN,
                ErrorKind::PinIncorrect => CKR_PIN_INCORRECT,
                ErrorKind::PinLocked => CKR_PIN_LOCKED,
                ErrorKind::PinLenRange => CKR_PIN_LEN_RANGE,
                ErrorKind::Cancelled => CKR_FUNCTION_CANCELED,
                ErrorKind::KeyNotFound => CKR_KEY_HANDLE_INVALID,
                ErrorKind::ReaderNotFound => CKR_SLOT_ID_INVALID,
                ErrorKind::NoCard => CKR_TOKEN_NOT_PRESENT,
                ErrorKind::CardRemoved => CKR_DEVICE_REMOVED,
                ErrorKind::CardNotRecognized => CKR_TOKEN_NOT_RECOGNIZED,
                ErrorKind::MechanismInvalid => CKR_MECHANISM_INVALID,
                ErrorKind::MechanismParamInvalid => CKR_MECHANISM_PARAM_INVALID,
                ErrorKind::KeyTypeInconsistent => CKR_KEY_TYPE_INCONSISTENT,
                ErrorKind::KeyFunctionNotPermitted => CKR_KEY_FUNCTION_NOT_PERMITTED,
                ErrorKind::DataLenRange => CKR_DATA_LEN_RANGE,
                ErrorKind::EncryptedDataLenRange => CKR_ENCRYPTED_DATA_LEN_RANGE,
                ErrorKind::EncryptedDataInvalid => CKR_ENCRYPTED_DATA_INVALID,
                ErrorKind::ArgumentsBad => CKR_ARGUMENTS_BAD,
                ErrorKind::WriteProtected => CKR_TOKEN_WRITE_PROTECTED,
                ErrorKind::DeviceMemory => CKR_DEVICE_MEMORY,
                ErrorKind::Busy | ErrorKind::DeviceError => CKR_DEVICE_ERROR,
                ErrorKind::Config => CKR_GENERAL_ERROR,
                ErrorKind::PinSourceFailed | ErrorKind::General => CKR_FUNCTION_FAILED,
                _ => CKR_FUNCTION_FAILED,
            },
            Error::NotInitialized => CKR_CRYPTOKI_NOT_INITIALIZED,
            Error::AlreadyInitialized => CKR_CRYPTOKI_ALREADY_INITIALIZED,
            Error::ArgumentsBad(_) => CKR_ARGUMENTS_BAD,
            Error::CantLock => CKR_CANT_LOCK,
            Error::SlotIdInvalid(_) => CKR_SLOT_ID_INVALID,
            Error::TokenNotPresent(_) => CKR_TOKEN_NOT_PRESENT,
            Error::SessionHandleInvalid(_) => CKR_SESSION_HANDLE_INVALID,
            Error::SessionParallelNotSupported => CKR_SESSION_PARALLEL_NOT_SUPPORTED,
            Error::SessionReadOnly => CKR_SESSION_READ_ONLY,
            Error::SessionReadOnlyExists => CKR_SESSION_READ_ONLY_EXISTS,
            Error::SessionReadWriteSoExists => CKR_SESSION_READ_WRITE_SO_EXISTS,
            Error::ObjectHandleInvalid(_) => CKR_OBJECT_HANDLE_INVALID,
            Error::KeyHandleInvalid(_) => CKR_KEY_HANDLE_INVALID,
            Error::UserTypeInvalid(_) => CKR_USER_TYPE_INVALID,
            Error::UserNotLoggedIn(_) => CKR_USER_NOT_LOGGED_IN,
            Error::UserAlreadyLoggedIn => CKR_USER_ALREADY_LOGGED_IN,
            Error::UserAnotherAlreadyLoggedIn => CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
            Error::OperationActive => CKR_OPERATION_ACTIVE,
            Error::OperationNotInitialized => CKR_OPERATION_NOT_INITIALIZED,
            Error::MechanismInvalid(_) => CKR_MECHANISM_INVALID,
            Error::MechanismParamInvalid(_) => CKR_MECHANISM_PARAM_INVALID,
            Error::KeyTypeInconsistent { .. } => CKR_KEY_TYPE_INCONSISTENT,
            Error::KeyFunctionNotPermitted(_) => CKR_KEY_FUNCTION_NOT_PERMITTED,
            Error::KeySizeRange(_) => CKR_KEY_SIZE_RANGE,
            Error::CurveNotSupported(_) => CKR_CURVE_NOT_SUPPORTED,
            Error::AttributeTypeInvalid(_) => CKR_ATTRIBUTE_TYPE_INVALID,
            Error::AttributeValueInvalid(_) => CKR_ATTRIBUTE_VALUE_INVALID,
            Error::TemplateIncomplete(_) => CKR_TEMPLATE_INCOMPLETE,
            Error::TemplateInconsistent(_) => CKR_TEMPLATE_INCONSISTENT,
            Error::DataLenRange { .. } => CKR_DATA_LEN_RANGE,
            Error::DataInvalid(_) => CKR_DATA_INVALID,
            Error::EncryptedDataLenRange { .. } => CKR_ENCRYPTED_DATA_LEN_RANGE,
            Error::FunctionNotSupported(_) => CKR_FUNCTION_NOT_SUPPORTED,
            Error::PinIncorrect(_) => CKR_PIN_INCORRECT,
            Error::NoEvent => CKR_NO_EVENT,
            Error::RandomNoRng => CKR_RANDOM_NO_RNG,
            Error::Panic => CKR_GENERAL_ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scard_minidriver::{CardError, PinId};
    use scard_transport::TransportError;

    /// The mapping as a table: every error kind of the key storage provider and every
    /// variant of the module's own, with the code it must give.
    #[test]
    fn every_error_has_its_code() {
        let r = || "sim:piv".to_owned();
        let rows: Vec<(Error, CK_RV)> = vec![
            (KspError::PinNeeded { reader: r(), pin: PinId::USER }.into(), CKR_USER_NOT_LOGGED_IN),
            (
                KspError::Card(CardError::WrongPin { pin: PinId::USER, tries_left: Some(2) })
                    .into(),
                CKR_PIN_INCORRECT,
            ),
            (KspError::Card(CardError::PinBlocked { pin: PinId::USER }).into(), CKR_PIN_LOCKED),
            (
                KspError::Card(CardError::PinFormat { pin: PinId::USER, reason: "x".into() })
                    .into(),
                CKR_PIN_LEN_RANGE,
            ),
            (KspError::Cancelled { reader: r(), pin: PinId::USER }.into(), CKR_FUNCTION_CANCELED),
            (KspError::KeyNotFound { name: "k".into() }.into(), CKR_KEY_HANDLE_INVALID),
            (
                KspError::UnknownReader { reader: r(), known: String::new() }.into(),
                CKR_SLOT_ID_INVALID,
            ),
            (KspError::NoCard { reader: r() }.into(), CKR_TOKEN_NOT_PRESENT),
            (KspError::CardRemoved { reader: r() }.into(), CKR_DEVICE_REMOVED),
            (
                KspError::UnrecognizedCard { reader: r(), reason: "x".into() }.into(),
                CKR_TOKEN_NOT_RECOGNIZED,
            ),
            (KspError::UnsupportedMechanism { what: "x".into() }.into(), CKR_MECHANISM_INVALID),
            (
                KspError::InvalidInput { what: "peer key", reason: "x".into() }.into(),
                CKR_MECHANISM_PARAM_INVALID,
            ),
            (
                KspError::KeyTypeMismatch { key: "k".into(), reason: "x".into() }.into(),
                CKR_KEY_TYPE_INCONSISTENT,
            ),
            (
                KspError::KeyUsage { key: "k".into(), operation: "decrypt" }.into(),
                CKR_KEY_FUNCTION_NOT_PERMITTED,
            ),
            (
                KspError::InvalidInput { what: "digest", reason: "x".into() }.into(),
                CKR_DATA_LEN_RANGE,
            ),
            (
                KspError::InvalidInput { what: "ciphertext", reason: "x".into() }.into(),
                CKR_ENCRYPTED_DATA_LEN_RANGE,
            ),
            (
                KspError::Card(CardError::Crypto { operation: "decrypt", reason: "x".into() })
                    .into(),
                CKR_ENCRYPTED_DATA_INVALID,
            ),
            (
                KspError::InvalidInput { what: "certificate", reason: "x".into() }.into(),
                CKR_ARGUMENTS_BAD,
            ),
            (
                KspError::Card(CardError::ReadOnly { model: "m".into() }).into(),
                CKR_TOKEN_WRITE_PROTECTED,
            ),
            (KspError::Card(CardError::NoFreeContainer).into(), CKR_DEVICE_MEMORY),
            (KspError::Transport(TransportError::Sharing { reader: r() }).into(), CKR_DEVICE_ERROR),
            (
                KspError::Card(CardError::Status {
                    operation: "sign",
                    sw: scard_iso7816::StatusWord(0x6F00),
                })
                .into(),
                CKR_DEVICE_ERROR,
            ),
            (
                KspError::Config {
                    file: "f".into(),
                    line: 1,
                    field: "readers".into(),
                    reason: "x".into(),
                }
                .into(),
                CKR_GENERAL_ERROR,
            ),
            (
                KspError::PinSource { source_name: "pinentry", reason: "x".into() }.into(),
                CKR_FUNCTION_FAILED,
            ),
            (
                KspError::Card(CardError::Crypto { operation: "sign", reason: "x".into() }).into(),
                CKR_FUNCTION_FAILED,
            ),
            (Error::NotInitialized, CKR_CRYPTOKI_NOT_INITIALIZED),
            (Error::AlreadyInitialized, CKR_CRYPTOKI_ALREADY_INITIALIZED),
            (Error::ArgumentsBad("x"), CKR_ARGUMENTS_BAD),
            (Error::CantLock, CKR_CANT_LOCK),
            (Error::SlotIdInvalid(9), CKR_SLOT_ID_INVALID),
            (Error::TokenNotPresent(0), CKR_TOKEN_NOT_PRESENT),
            (Error::SessionHandleInvalid(7), CKR_SESSION_HANDLE_INVALID),
            (Error::SessionParallelNotSupported, CKR_SESSION_PARALLEL_NOT_SUPPORTED),
            (Error::SessionReadOnly, CKR_SESSION_READ_ONLY),
            (Error::SessionReadOnlyExists, CKR_SESSION_READ_ONLY_EXISTS),
            (Error::SessionReadWriteSoExists, CKR_SESSION_READ_WRITE_SO_EXISTS),
            (Error::ObjectHandleInvalid(3), CKR_OBJECT_HANDLE_INVALID),
            (Error::KeyHandleInvalid(3), CKR_KEY_HANDLE_INVALID),
            (Error::UserTypeInvalid(5), CKR_USER_TYPE_INVALID),
            (Error::UserNotLoggedIn("x"), CKR_USER_NOT_LOGGED_IN),
            (Error::UserAlreadyLoggedIn, CKR_USER_ALREADY_LOGGED_IN),
            (Error::UserAnotherAlreadyLoggedIn, CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
            (Error::OperationActive, CKR_OPERATION_ACTIVE),
            (Error::OperationNotInitialized, CKR_OPERATION_NOT_INITIALIZED),
            (Error::MechanismInvalid(CKM_MD5), CKR_MECHANISM_INVALID),
            (Error::MechanismParamInvalid("x"), CKR_MECHANISM_PARAM_INVALID),
            (
                Error::KeyTypeInconsistent { mechanism: CKM_ECDSA, key_type: CKK_RSA },
                CKR_KEY_TYPE_INCONSISTENT,
            ),
            (Error::KeyFunctionNotPermitted("sign"), CKR_KEY_FUNCTION_NOT_PERMITTED),
            (Error::KeySizeRange(1000), CKR_KEY_SIZE_RANGE),
            (Error::CurveNotSupported("x"), CKR_CURVE_NOT_SUPPORTED),
            (Error::AttributeTypeInvalid(CKA_VALUE), CKR_ATTRIBUTE_TYPE_INVALID),
            (Error::AttributeValueInvalid(CKA_ID), CKR_ATTRIBUTE_VALUE_INVALID),
            (Error::TemplateIncomplete(CKA_VALUE), CKR_TEMPLATE_INCOMPLETE),
            (Error::TemplateInconsistent(CKA_TOKEN), CKR_TEMPLATE_INCONSISTENT),
            (Error::DataLenRange { len: 1, max: 0 }, CKR_DATA_LEN_RANGE),
            (Error::DataInvalid("x"), CKR_DATA_INVALID),
            (Error::EncryptedDataLenRange { len: 1, k: 256 }, CKR_ENCRYPTED_DATA_LEN_RANGE),
            (Error::FunctionNotSupported("C_Digest"), CKR_FUNCTION_NOT_SUPPORTED),
            (Error::PinIncorrect("x"), CKR_PIN_INCORRECT),
            (Error::NoEvent, CKR_NO_EVENT),
            (Error::RandomNoRng, CKR_RANDOM_NO_RNG),
            (Error::Panic, CKR_GENERAL_ERROR),
        ];
        for (err, rv) in rows {
            assert_eq!(err.rv(), rv, "{err}");
        }
    }
}
