//! The C ABI: the exported `C_*` functions, the function lists and interfaces, and the only
//! `unsafe` code of the crate (reading and writing the application's memory).
//!
//! Every exported function is a thin shim: it checks and copies its pointer arguments into
//! Rust values, calls the safe code of [`crate::module`], and writes the results back. Each
//! runs under `catch_unwind` (a panic, which would be a bug, becomes `CKR_GENERAL_ERROR`
//! instead of unwinding into C) and under the module's logging.
//!
//! The safety contract of every exported function is PKCS#11's: each non-NULL pointer
//! argument points to memory of the type and size the specification gives for it (an array
//! of the given count, a buffer of `*pulLen` bytes), valid for the duration of the call.
//! NULL where the specification requires a pointer gives `CKR_ARGUMENTS_BAD`.
#![allow(unsafe_code)]
// The parameter names are the specification's.
#![allow(non_snake_case)]
// `pub` for the C linker (the functions are exported by name), not for Rust callers.
#![allow(unreachable_pub)]

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

use cryptoki_sys::*;
use scard_minidriver::Pin;

use crate::error::{Error, Result};
use crate::logging;
use crate::mechanisms::{self, MechParams, Mechanism, ParamKind};
use crate::module::{self, InitArgs, Out, Produced};
use crate::objects::{AttrValue, Template};

/// Runs one entry point: logging, the panic guard, the error's code.
fn entry(name: &'static str, f: impl FnOnce() -> Result<CK_RV>) -> CK_RV {
    let guarded = catch_unwind(AssertUnwindSafe(|| {
        logging::with_logging(|| {
            let rv = match catch_unwind(AssertUnwindSafe(f)) {
                Ok(Ok(rv)) => rv,
                Ok(Err(err)) => {
                    tracing::debug!("{name}: {err}");
                    err.rv()
                }
                Err(_) => {
                    tracing::error!("{name}: {}", Error::Panic);
                    Error::Panic.rv()
                }
            };
            tracing::trace!("{name} -> {rv:#x}");
            rv
        })
    }));
    guarded.unwrap_or(CKR_GENERAL_ERROR)
}

/// A slice of the application's array (`len` 0: empty, whatever the pointer).
///
/// # Safety
/// `ptr` is NULL or valid for reads of `len` elements for the duration of the call.
unsafe fn slice<'a, T>(ptr: *const T, len: CK_ULONG, what: &'static str) -> Result<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Error::ArgumentsBad(what));
    }
    let len = usize::try_from(len).map_err(|_| Error::ArgumentsBad(what))?;
    // SAFETY: non-NULL, and the caller guarantees `len` readable elements (PKCS#11 contract).
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Reads a value the application points to.
///
/// # Safety
/// `ptr` is NULL or valid for a read of a `T`.
unsafe fn read<T: Copy>(ptr: *const T, what: &'static str) -> Result<T> {
    if ptr.is_null() {
        return Err(Error::ArgumentsBad(what));
    }
    // SAFETY: non-NULL and valid for a read of T by the caller's contract; read_unaligned
    // takes no alignment for granted.
    Ok(unsafe { ptr.read_unaligned() })
}

/// Writes a value where the application points.
///
/// # Safety
/// `ptr` is NULL or valid for a write of a `T`.
unsafe fn write<T>(ptr: *mut T, value: T, what: &'static str) -> Result<()> {
    if ptr.is_null() {
        return Err(Error::ArgumentsBad(what));
    }
    // SAFETY: non-NULL and valid for a write of T by the caller's contract.
    unsafe { ptr.write_unaligned(value) };
    Ok(())
}

/// Copies `bytes` to the application's buffer.
///
/// # Safety
/// `dst` is valid for writes of `bytes.len()` bytes.
unsafe fn copy_out(dst: *mut u8, bytes: &[u8]) {
    // SAFETY: the caller checked the buffer holds `bytes.len()` bytes; the regions cannot
    // overlap (ours is a fresh Rust allocation).
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
}

/// A PIN (a NULL pointer would mean a protected authentication path, which no reader here
/// has).
///
/// # Safety
/// As [`slice`].
unsafe fn pin(ptr: *const CK_UTF8CHAR, len: CK_ULONG) -> Result<Pin> {
    if ptr.is_null() {
        return Err(Error::ArgumentsBad("NULL PIN (no protected authentication path)"));
    }
    // SAFETY: forwarded contract.
    Ok(Pin::new(unsafe { slice(ptr, len, "PIN") }?.to_vec()))
}

/// A template copied out of the application's memory.
///
/// # Safety
/// `ptr` is NULL or an array of `count` attributes, each `pValue` NULL or valid for
/// `ulValueLen` bytes.
unsafe fn template(ptr: *const CK_ATTRIBUTE, count: CK_ULONG) -> Result<Template> {
    // SAFETY: forwarded contract.
    let attrs = unsafe { slice(ptr, count, "template") }?;
    let mut out = Vec::with_capacity(attrs.len());
    for a in attrs {
        // SAFETY: forwarded contract (each value is `ulValueLen` readable bytes).
        let value = unsafe { slice(a.pValue as *const u8, a.ulValueLen, "attribute value") }?;
        out.push((a.type_, value.to_vec()));
    }
    Ok(out)
}

/// Reads a parameter structure of exactly its size.
///
/// # Safety
/// `m.pParameter` is NULL or valid for `m.ulParameterLen` bytes.
unsafe fn param<T: Copy>(m: &CK_MECHANISM) -> Option<T> {
    if m.pParameter.is_null() || usize::try_from(m.ulParameterLen).ok()? != size_of::<T>() {
        return None;
    }
    // SAFETY: non-NULL, and the application says `ulParameterLen` (= size_of T) bytes are there.
    Some(unsafe { (m.pParameter as *const T).read_unaligned() })
}

/// A mechanism and its parameter, copied out.
///
/// # Safety
/// `ptr` is NULL or a valid `CK_MECHANISM` whose parameter is valid for its length, and the
/// parameter's own pointers are valid for their lengths.
unsafe fn mechanism(ptr: *const CK_MECHANISM) -> Result<Mechanism> {
    // SAFETY: forwarded contract.
    let m = unsafe { read(ptr, "mechanism") }?;
    let none = m.pParameter.is_null() && m.ulParameterLen == 0;
    let params = match mechanisms::param_kind(m.mechanism) {
        _ if none => MechParams::None,
        ParamKind::None => MechParams::Malformed,
        ParamKind::Pss => {
            // SAFETY: forwarded contract (the parameter is valid for its length).
            match unsafe { param::<CK_RSA_PKCS_PSS_PARAMS>(&m) } {
                Some(p) => MechParams::Pss { hash_alg: p.hashAlg, mgf: p.mgf, salt_len: p.sLen },
                None => MechParams::Malformed,
            }
        }
        ParamKind::Oaep => {
            // SAFETY: forwarded contract (the parameter is valid for its length).
            match unsafe { param::<CK_RSA_PKCS_OAEP_PARAMS>(&m) } {
                Some(p) => {
                    // SAFETY: forwarded contract (the label holds ulSourceDataLen bytes).
                    let label = unsafe {
                        slice(p.pSourceData as *const u8, p.ulSourceDataLen, "OAEP label")
                    }?;
                    MechParams::Oaep {
                        hash_alg: p.hashAlg,
                        mgf: p.mgf,
                        source: p.source,
                        source_data: label.to_vec(),
                    }
                }
                None => MechParams::Malformed,
            }
        }
        ParamKind::Ecdh => {
            // SAFETY: forwarded contract (the parameter is valid for its length).
            match unsafe { param::<CK_ECDH1_DERIVE_PARAMS>(&m) } {
                Some(p) => {
                    // SAFETY: forwarded contract (each buffer holds its length in bytes).
                    let (shared, public) = unsafe {
                        (
                            slice(p.pSharedData, p.ulSharedDataLen, "shared data")?,
                            slice(p.pPublicData, p.ulPublicDataLen, "public data")?,
                        )
                    };
                    MechParams::Ecdh {
                        kdf: p.kdf,
                        shared_data: shared.to_vec(),
                        public_data: public.to_vec(),
                    }
                }
                None => MechParams::Malformed,
            }
        }
    };
    Ok(Mechanism { kind: m.mechanism, params })
}

/// Fills an array the PKCS#11 way (§5.2): NULL array: the count; too small: the count and
/// `CKR_BUFFER_TOO_SMALL`; else the elements and the count.
///
/// # Safety
/// `list` is NULL or valid for `*count` writes; `count` is NULL or valid for a read and write.
unsafe fn fill<T: Copy>(list: *mut T, count: *mut CK_ULONG, items: &[T]) -> Result<CK_RV> {
    let n = items.len() as CK_ULONG;
    if list.is_null() {
        // SAFETY: forwarded contract.
        unsafe { write(count, n, "count") }?;
        return Ok(CKR_OK);
    }
    // SAFETY: forwarded contract.
    let room = unsafe { read(count, "count") }?;
    // SAFETY: forwarded contract.
    unsafe { write(count, n, "count") }?;
    if room < n {
        return Ok(CKR_BUFFER_TOO_SMALL);
    }
    for (i, item) in items.iter().enumerate() {
        // SAFETY: i < n <= room elements are writable.
        unsafe { list.add(i).write_unaligned(*item) };
    }
    Ok(CKR_OK)
}

/// Runs an operation with output (`C_Sign`, `C_Decrypt`, ...): reads the buffer length
/// first (a NULL length fails before anything is done), then writes the output and its
/// length the PKCS#11 way.
///
/// # Safety
/// `out` is NULL or valid for `*len` byte writes; `len` is NULL or valid for read and write.
unsafe fn produce(
    out: *mut u8,
    len: *mut CK_ULONG,
    f: impl FnOnce(Out) -> Result<Produced>,
) -> Result<CK_RV> {
    // SAFETY: forwarded contract.
    let room = unsafe { read(len, "output length") }?;
    let target = if out.is_null() {
        Out::Query
    } else {
        Out::Buffer(usize::try_from(room).unwrap_or(usize::MAX))
    };
    let (n, rv) = match f(target)? {
        Produced::Data(bytes) => match target {
            Out::Buffer(room) if bytes.len() <= room => {
                // SAFETY: `out` holds `room` >= bytes.len() bytes.
                unsafe { copy_out(out, &bytes) };
                (bytes.len(), CKR_OK)
            }
            Out::Buffer(_) => (bytes.len(), CKR_BUFFER_TOO_SMALL),
            Out::Query => (bytes.len(), CKR_OK),
        },
        Produced::Len(n) => (n, CKR_OK),
        Produced::TooSmall(n) => (n, CKR_BUFFER_TOO_SMALL),
    };
    // SAFETY: forwarded contract.
    unsafe { write(len, n as CK_ULONG, "output length") }?;
    Ok(rv)
}

fn ok(result: Result<()>) -> Result<CK_RV> {
    result.map(|()| CKR_OK)
}

// ----- general purpose (PKCS#11 3.0 §5.4) ------------------------------------------------

/// `C_Initialize`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Initialize(pInitArgs: *mut c_void) -> CK_RV {
    entry("C_Initialize", || {
        let args = if pInitArgs.is_null() {
            None
        } else {
            // SAFETY: a non-NULL pInitArgs points to a CK_C_INITIALIZE_ARGS (§5.4).
            let a = unsafe { read(pInitArgs as *const CK_C_INITIALIZE_ARGS, "init args") }?;
            let given = [
                a.CreateMutex.is_some(),
                a.DestroyMutex.is_some(),
                a.LockMutex.is_some(),
                a.UnlockMutex.is_some(),
            ];
            Some(InitArgs {
                mutex_functions: given.iter().filter(|g| **g).count(),
                flags: a.flags,
                reserved_null: a.pReserved.is_null(),
            })
        };
        ok(module::initialize(args))
    })
}

/// `C_Finalize`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Finalize(pReserved: *mut c_void) -> CK_RV {
    entry("C_Finalize", || {
        if !pReserved.is_null() {
            return Err(Error::ArgumentsBad("C_Finalize: pReserved must be NULL"));
        }
        ok(module::finalize())
    })
}

/// `C_GetInfo`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetInfo(pInfo: *mut CK_INFO) -> CK_RV {
    entry("C_GetInfo", || {
        if pInfo.is_null() {
            return Err(Error::ArgumentsBad("pInfo"));
        }
        let info = module::info()?;
        // SAFETY: pInfo points to a CK_INFO.
        unsafe { write(pInfo, info, "pInfo") }?;
        Ok(CKR_OK)
    })
}

/// `C_GetFunctionList`: the PKCS#11 2.40 list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetFunctionList(ppFunctionList: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    entry("C_GetFunctionList", || {
        let list = &FUNCTIONS_2_40 as *const CK_FUNCTION_LIST as *mut CK_FUNCTION_LIST;
        // SAFETY: ppFunctionList points to a pointer the application owns.
        unsafe { write(ppFunctionList, list, "ppFunctionList") }?;
        Ok(CKR_OK)
    })
}

/// `C_GetInterfaceList`: "PKCS 11" 3.0, then "PKCS 11" 2.40.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetInterfaceList(
    pInterfacesList: *mut CK_INTERFACE,
    pulCount: *mut CK_ULONG,
) -> CK_RV {
    entry("C_GetInterfaceList", || {
        // SAFETY: forwarded contract (array of *pulCount interfaces).
        unsafe { fill(pInterfacesList, pulCount, &INTERFACES.0) }
    })
}

/// `C_GetInterface`: by name ("PKCS 11" or NULL), version (3.0, 2.40 or NULL: 3.0) and flags
/// (the module's interfaces have none).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetInterface(
    pInterfaceName: *mut CK_UTF8CHAR,
    pVersion: *mut CK_VERSION,
    ppInterface: *mut *mut CK_INTERFACE,
    flags: CK_FLAGS,
) -> CK_RV {
    entry("C_GetInterface", || {
        if ppInterface.is_null() {
            return Err(Error::ArgumentsBad("ppInterface"));
        }
        if !pInterfaceName.is_null() {
            // SAFETY: a non-NULL name is a NUL-terminated string (§5.4.5).
            let name =
                unsafe { std::ffi::CStr::from_ptr(pInterfaceName as *const std::ffi::c_char) };
            if name.to_bytes() != INTERFACE_NAME.split_last().map_or(&[][..], |(_, n)| n) {
                return Err(Error::ArgumentsBad("unknown interface name"));
            }
        }
        let version = if pVersion.is_null() {
            None
        } else {
            // SAFETY: a non-NULL version points to a CK_VERSION.
            Some(unsafe { read(pVersion as *const CK_VERSION, "pVersion") }?)
        };
        let chosen = match version {
            None => INTERFACES.0.first(),
            Some(v) => INTERFACES.0.iter().find(|i| {
                // SAFETY: every pFunctionList of ours starts with its CK_VERSION.
                let ours = unsafe { (i.pFunctionList as *const CK_VERSION).read() };
                ours.major == v.major && ours.minor == v.minor
            }),
        };
        match chosen {
            Some(interface) if flags & !interface.flags == 0 => {
                let p = interface as *const CK_INTERFACE as *mut CK_INTERFACE;
                // SAFETY: ppInterface points to a pointer the application owns.
                unsafe { write(ppInterface, p, "ppInterface") }?;
                Ok(CKR_OK)
            }
            _ => Err(Error::ArgumentsBad("no interface of that version and flags")),
        }
    })
}

// ----- slots and tokens (§5.5) ----------------------------------------------------------

/// `C_GetSlotList`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetSlotList(
    tokenPresent: CK_BBOOL,
    pSlotList: *mut CK_SLOT_ID,
    pulCount: *mut CK_ULONG,
) -> CK_RV {
    entry("C_GetSlotList", || {
        if pulCount.is_null() {
            return Err(Error::ArgumentsBad("pulCount"));
        }
        let slots = module::slot_list(tokenPresent != CK_FALSE, pSlotList.is_null())?;
        // SAFETY: forwarded contract (array of *pulCount slot ids).
        unsafe { fill(pSlotList, pulCount, &slots) }
    })
}

/// `C_GetSlotInfo`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetSlotInfo(slotID: CK_SLOT_ID, pInfo: *mut CK_SLOT_INFO) -> CK_RV {
    entry("C_GetSlotInfo", || {
        if pInfo.is_null() {
            return Err(Error::ArgumentsBad("pInfo"));
        }
        let info = module::slot_info(slotID)?;
        // SAFETY: pInfo points to a CK_SLOT_INFO.
        unsafe { write(pInfo, info, "pInfo") }?;
        Ok(CKR_OK)
    })
}

/// `C_GetTokenInfo`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetTokenInfo(slotID: CK_SLOT_ID, pInfo: *mut CK_TOKEN_INFO) -> CK_RV {
    entry("C_GetTokenInfo", || {
        if pInfo.is_null() {
            return Err(Error::ArgumentsBad("pInfo"));
        }
        let info = module::token_info(slotID)?;
        // SAFETY: pInfo points to a CK_TOKEN_INFO.
        unsafe { write(pInfo, info, "pInfo") }?;
        Ok(CKR_OK)
    })
}

/// `C_WaitForSlotEvent`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_WaitForSlotEvent(
    flags: CK_FLAGS,
    pSlot: *mut CK_SLOT_ID,
    pReserved: *mut c_void,
) -> CK_RV {
    entry("C_WaitForSlotEvent", || {
        if pSlot.is_null() || !pReserved.is_null() {
            return Err(Error::ArgumentsBad("pSlot must be given and pReserved NULL"));
        }
        let slot = module::wait_for_slot_event(flags & CKF_DONT_BLOCK != 0)?;
        // SAFETY: pSlot points to a CK_SLOT_ID.
        unsafe { write(pSlot, slot, "pSlot") }?;
        Ok(CKR_OK)
    })
}

/// `C_GetMechanismList`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetMechanismList(
    slotID: CK_SLOT_ID,
    pMechanismList: *mut CK_MECHANISM_TYPE,
    pulCount: *mut CK_ULONG,
) -> CK_RV {
    entry("C_GetMechanismList", || {
        if pulCount.is_null() {
            return Err(Error::ArgumentsBad("pulCount"));
        }
        let list = module::mechanism_list(slotID)?;
        // SAFETY: forwarded contract (array of *pulCount mechanism types).
        unsafe { fill(pMechanismList, pulCount, &list) }
    })
}

/// `C_GetMechanismInfo`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetMechanismInfo(
    slotID: CK_SLOT_ID,
    type_: CK_MECHANISM_TYPE,
    pInfo: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    entry("C_GetMechanismInfo", || {
        if pInfo.is_null() {
            return Err(Error::ArgumentsBad("pInfo"));
        }
        let info = module::mechanism_info(slotID, type_)?;
        // SAFETY: pInfo points to a CK_MECHANISM_INFO.
        unsafe { write(pInfo, info, "pInfo") }?;
        Ok(CKR_OK)
    })
}

/// `C_InitPIN`: the SO sets (unblocks) the user PIN.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_InitPIN(
    hSession: CK_SESSION_HANDLE,
    pPin: *mut CK_UTF8CHAR,
    ulPinLen: CK_ULONG,
) -> CK_RV {
    entry("C_InitPIN", || {
        // SAFETY: pPin holds ulPinLen bytes.
        let pin = unsafe { pin(pPin, ulPinLen) }?;
        ok(module::init_pin(hSession, pin))
    })
}

/// `C_SetPIN`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SetPIN(
    hSession: CK_SESSION_HANDLE,
    pOldPin: *mut CK_UTF8CHAR,
    ulOldLen: CK_ULONG,
    pNewPin: *mut CK_UTF8CHAR,
    ulNewLen: CK_ULONG,
) -> CK_RV {
    entry("C_SetPIN", || {
        // SAFETY: each PIN pointer holds its length in bytes.
        let (old, new) = unsafe { (pin(pOldPin, ulOldLen)?, pin(pNewPin, ulNewLen)?) };
        ok(module::set_pin(hSession, old, new))
    })
}

// ----- sessions (§5.6) --------------------------------------------------------------------

/// `C_OpenSession` (notifications are not used).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_OpenSession(
    slotID: CK_SLOT_ID,
    flags: CK_FLAGS,
    _pApplication: *mut c_void,
    _Notify: CK_NOTIFY,
    phSession: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    entry("C_OpenSession", || {
        if phSession.is_null() {
            return Err(Error::ArgumentsBad("phSession"));
        }
        let h = module::open_session(slotID, flags)?;
        // SAFETY: phSession points to a CK_SESSION_HANDLE.
        unsafe { write(phSession, h, "phSession") }?;
        Ok(CKR_OK)
    })
}

/// `C_CloseSession`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_CloseSession(hSession: CK_SESSION_HANDLE) -> CK_RV {
    entry("C_CloseSession", || ok(module::close_session(hSession)))
}

/// `C_CloseAllSessions`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_CloseAllSessions(slotID: CK_SLOT_ID) -> CK_RV {
    entry("C_CloseAllSessions", || ok(module::close_all_sessions(slotID)))
}

/// `C_GetSessionInfo`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetSessionInfo(
    hSession: CK_SESSION_HANDLE,
    pInfo: *mut CK_SESSION_INFO,
) -> CK_RV {
    entry("C_GetSessionInfo", || {
        if pInfo.is_null() {
            return Err(Error::ArgumentsBad("pInfo"));
        }
        let info = module::session_info(hSession)?;
        // SAFETY: pInfo points to a CK_SESSION_INFO.
        unsafe { write(pInfo, info, "pInfo") }?;
        Ok(CKR_OK)
    })
}

/// `C_Login`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Login(
    hSession: CK_SESSION_HANDLE,
    userType: CK_USER_TYPE,
    pPin: *mut CK_UTF8CHAR,
    ulPinLen: CK_ULONG,
) -> CK_RV {
    entry("C_Login", || {
        // SAFETY: pPin holds ulPinLen bytes.
        let pin = unsafe { pin(pPin, ulPinLen) }?;
        ok(module::login(hSession, userType, pin))
    })
}

/// `C_Logout`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Logout(hSession: CK_SESSION_HANDLE) -> CK_RV {
    entry("C_Logout", || ok(module::logout(hSession)))
}

// ----- objects (§5.7) ---------------------------------------------------------------------

/// `C_CreateObject`: a certificate for a container (`CKA_ID`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_CreateObject(
    hSession: CK_SESSION_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
    phObject: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    entry("C_CreateObject", || {
        if phObject.is_null() {
            return Err(Error::ArgumentsBad("phObject"));
        }
        // SAFETY: pTemplate holds ulCount attributes.
        let t = unsafe { template(pTemplate, ulCount) }?;
        let h = module::create_object(hSession, t)?;
        // SAFETY: phObject points to a CK_OBJECT_HANDLE.
        unsafe { write(phObject, h, "phObject") }?;
        Ok(CKR_OK)
    })
}

/// `C_DestroyObject`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DestroyObject(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
) -> CK_RV {
    entry("C_DestroyObject", || ok(module::destroy_object(hSession, hObject)))
}

/// `C_GetObjectSize`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetObjectSize(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
    pulSize: *mut CK_ULONG,
) -> CK_RV {
    entry("C_GetObjectSize", || {
        if pulSize.is_null() {
            return Err(Error::ArgumentsBad("pulSize"));
        }
        let size = module::object_size(hSession, hObject)?;
        // SAFETY: pulSize points to a CK_ULONG.
        unsafe { write(pulSize, size as CK_ULONG, "pulSize") }?;
        Ok(CKR_OK)
    })
}

/// `C_GetAttributeValue` (§5.7.5: every attribute is processed; the return code is
/// `CKR_ATTRIBUTE_SENSITIVE`, `CKR_ATTRIBUTE_TYPE_INVALID` or `CKR_BUFFER_TOO_SMALL` when
/// one of them applied to any attribute, in that order of precedence).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetAttributeValue(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
) -> CK_RV {
    entry("C_GetAttributeValue", || {
        // SAFETY: pTemplate holds ulCount attributes.
        let attrs = unsafe { slice(pTemplate as *const CK_ATTRIBUTE, ulCount, "pTemplate") }?;
        let types: Vec<CK_ATTRIBUTE_TYPE> = attrs.iter().map(|a| a.type_).collect();
        let values = module::attribute_values(hSession, hObject, &types)?;
        let (mut sensitive, mut invalid, mut small) = (false, false, false);
        for (i, value) in values.into_iter().enumerate() {
            // SAFETY: i < ulCount, and the application's array is writable (§5.7.5).
            let a = unsafe { &mut *pTemplate.add(i) };
            a.ulValueLen = match value {
                AttrValue::Sensitive => {
                    sensitive = true;
                    CK_UNAVAILABLE_INFORMATION
                }
                AttrValue::Invalid => {
                    invalid = true;
                    CK_UNAVAILABLE_INFORMATION
                }
                AttrValue::Value(v) if a.pValue.is_null() => v.len() as CK_ULONG,
                AttrValue::Value(v) if (v.len() as CK_ULONG) <= a.ulValueLen => {
                    // SAFETY: pValue holds ulValueLen >= v.len() bytes.
                    unsafe { copy_out(a.pValue as *mut u8, &v) };
                    v.len() as CK_ULONG
                }
                AttrValue::Value(_) => {
                    small = true;
                    CK_UNAVAILABLE_INFORMATION
                }
            };
        }
        Ok(if sensitive {
            CKR_ATTRIBUTE_SENSITIVE
        } else if invalid {
            CKR_ATTRIBUTE_TYPE_INVALID
        } else if small {
            CKR_BUFFER_TOO_SMALL
        } else {
            CKR_OK
        })
    })
}

/// `C_FindObjectsInit`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_FindObjectsInit(
    hSession: CK_SESSION_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
) -> CK_RV {
    entry("C_FindObjectsInit", || {
        // SAFETY: pTemplate holds ulCount attributes.
        let t = unsafe { template(pTemplate, ulCount) }?;
        ok(module::find_init(hSession, t))
    })
}

/// `C_FindObjects`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_FindObjects(
    hSession: CK_SESSION_HANDLE,
    phObject: *mut CK_OBJECT_HANDLE,
    ulMaxObjectCount: CK_ULONG,
    pulObjectCount: *mut CK_ULONG,
) -> CK_RV {
    entry("C_FindObjects", || {
        if pulObjectCount.is_null() || (phObject.is_null() && ulMaxObjectCount > 0) {
            return Err(Error::ArgumentsBad("phObject / pulObjectCount"));
        }
        let max = usize::try_from(ulMaxObjectCount).unwrap_or(usize::MAX);
        let found = module::find(hSession, max)?;
        for (i, h) in found.iter().enumerate() {
            // SAFETY: i < found.len() <= ulMaxObjectCount handles are writable.
            unsafe { phObject.add(i).write_unaligned(*h) };
        }
        // SAFETY: pulObjectCount points to a CK_ULONG.
        unsafe { write(pulObjectCount, found.len() as CK_ULONG, "pulObjectCount") }?;
        Ok(CKR_OK)
    })
}

/// `C_FindObjectsFinal`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_FindObjectsFinal(hSession: CK_SESSION_HANDLE) -> CK_RV {
    entry("C_FindObjectsFinal", || ok(module::find_final(hSession)))
}

// ----- signatures and decryption (§5.9, §5.13) ------------------------------------------

/// `C_SignInit` (a NULL mechanism ends the active signature).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SignInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    entry("C_SignInit", || {
        let mech = if pMechanism.is_null() {
            None
        } else {
            // SAFETY: pMechanism points to a CK_MECHANISM with a valid parameter.
            Some(unsafe { mechanism(pMechanism) }?)
        };
        ok(module::sign_init(hSession, mech, hKey))
    })
}

/// `C_Sign`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Sign(
    hSession: CK_SESSION_HANDLE,
    pData: *mut CK_BYTE,
    ulDataLen: CK_ULONG,
    pSignature: *mut CK_BYTE,
    pulSignatureLen: *mut CK_ULONG,
) -> CK_RV {
    entry("C_Sign", || {
        // SAFETY: pData holds ulDataLen bytes; pSignature holds *pulSignatureLen bytes.
        unsafe {
            let data = slice(pData, ulDataLen, "pData")?;
            produce(pSignature, pulSignatureLen, |out| module::sign(hSession, data, out))
        }
    })
}

/// `C_SignUpdate`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SignUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: *mut CK_BYTE,
    ulPartLen: CK_ULONG,
) -> CK_RV {
    entry("C_SignUpdate", || {
        // SAFETY: pPart holds ulPartLen bytes.
        let part = unsafe { slice(pPart, ulPartLen, "pPart") }?;
        ok(module::sign_update(hSession, part))
    })
}

/// `C_SignFinal`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SignFinal(
    hSession: CK_SESSION_HANDLE,
    pSignature: *mut CK_BYTE,
    pulSignatureLen: *mut CK_ULONG,
) -> CK_RV {
    entry("C_SignFinal", || {
        // SAFETY: pSignature holds *pulSignatureLen bytes.
        unsafe { produce(pSignature, pulSignatureLen, |out| module::sign_final(hSession, out)) }
    })
}

/// `C_DecryptInit` (a NULL mechanism ends the active decryption).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DecryptInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    entry("C_DecryptInit", || {
        let mech = if pMechanism.is_null() {
            None
        } else {
            // SAFETY: pMechanism points to a CK_MECHANISM with a valid parameter.
            Some(unsafe { mechanism(pMechanism) }?)
        };
        ok(module::decrypt_init(hSession, mech, hKey))
    })
}

/// `C_Decrypt`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Decrypt(
    hSession: CK_SESSION_HANDLE,
    pEncryptedData: *mut CK_BYTE,
    ulEncryptedDataLen: CK_ULONG,
    pData: *mut CK_BYTE,
    pulDataLen: *mut CK_ULONG,
) -> CK_RV {
    entry("C_Decrypt", || {
        // SAFETY: pEncryptedData holds ulEncryptedDataLen bytes; pData holds *pulDataLen.
        unsafe {
            let data = slice(pEncryptedData, ulEncryptedDataLen, "pEncryptedData")?;
            produce(pData, pulDataLen, |out| module::decrypt(hSession, data, out))
        }
    })
}

// ----- keys (§5.14) -----------------------------------------------------------------------

/// `C_GenerateKeyPair`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GenerateKeyPair(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    pPublicKeyTemplate: *mut CK_ATTRIBUTE,
    ulPublicKeyAttributeCount: CK_ULONG,
    pPrivateKeyTemplate: *mut CK_ATTRIBUTE,
    ulPrivateKeyAttributeCount: CK_ULONG,
    phPublicKey: *mut CK_OBJECT_HANDLE,
    phPrivateKey: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    entry("C_GenerateKeyPair", || {
        if phPublicKey.is_null() || phPrivateKey.is_null() {
            return Err(Error::ArgumentsBad("phPublicKey / phPrivateKey"));
        }
        // SAFETY: the mechanism and the templates are valid for their counts.
        let (mech, public, private) = unsafe {
            (
                mechanism(pMechanism)?,
                template(pPublicKeyTemplate, ulPublicKeyAttributeCount)?,
                template(pPrivateKeyTemplate, ulPrivateKeyAttributeCount)?,
            )
        };
        let (pub_h, priv_h) = module::generate_key_pair(hSession, mech, public, private)?;
        // SAFETY: both point to CK_OBJECT_HANDLEs.
        unsafe {
            write(phPublicKey, pub_h, "phPublicKey")?;
            write(phPrivateKey, priv_h, "phPrivateKey")?;
        }
        Ok(CKR_OK)
    })
}

/// `C_DeriveKey` (`CKM_ECDH1_DERIVE`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DeriveKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hBaseKey: CK_OBJECT_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulAttributeCount: CK_ULONG,
    phKey: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    entry("C_DeriveKey", || {
        if phKey.is_null() {
            return Err(Error::ArgumentsBad("phKey"));
        }
        // SAFETY: the mechanism and the template are valid for their counts.
        let (mech, t) = unsafe { (mechanism(pMechanism)?, template(pTemplate, ulAttributeCount)?) };
        let h = module::derive_key(hSession, mech, hBaseKey, t)?;
        // SAFETY: phKey points to a CK_OBJECT_HANDLE.
        unsafe { write(phKey, h, "phKey") }?;
        Ok(CKR_OK)
    })
}

/// `C_SeedRandom`: no random number generator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SeedRandom(
    hSession: CK_SESSION_HANDLE,
    _pSeed: *mut CK_BYTE,
    _ulSeedLen: CK_ULONG,
) -> CK_RV {
    entry("C_SeedRandom", || ok(module::random(hSession)))
}

/// `C_GenerateRandom`: no random number generator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GenerateRandom(
    hSession: CK_SESSION_HANDLE,
    _RandomData: *mut CK_BYTE,
    _ulRandomLen: CK_ULONG,
) -> CK_RV {
    entry("C_GenerateRandom", || ok(module::random(hSession)))
}

/// `C_GetFunctionStatus` / `C_CancelFunction`: legacy, no parallel functions (§5.16).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetFunctionStatus(_hSession: CK_SESSION_HANDLE) -> CK_RV {
    CKR_FUNCTION_NOT_PARALLEL
}

/// `C_CancelFunction`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_CancelFunction(_hSession: CK_SESSION_HANDLE) -> CK_RV {
    CKR_FUNCTION_NOT_PARALLEL
}

/// Functions the module does not implement: `CKR_FUNCTION_NOT_SUPPORTED` (after the
/// session handle is checked, for those that take one).
macro_rules! not_supported {
    (session: $($name:ident ( $($arg:ident : $ty:ty),* );)*) => {$(
        #[doc = concat!("`", stringify!($name), "`: not supported.")]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(hSession: CK_SESSION_HANDLE, $(_: $ty),*) -> CK_RV {
            entry(stringify!($name), || {
                ok(module::unsupported_in_session(hSession, stringify!($name)))
            })
        }
    )*};
    (other: $($name:ident ( $($arg:ident : $ty:ty),* );)*) => {$(
        #[doc = concat!("`", stringify!($name), "`: not supported.")]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($(_: $ty),*) -> CK_RV {
            entry(stringify!($name), || {
                if !module::initialized() {
                    return Err(Error::NotInitialized);
                }
                Err(Error::FunctionNotSupported(stringify!($name)))
            })
        }
    )*};
}

not_supported! { other:
    C_InitToken(a: CK_SLOT_ID, b: *mut CK_UTF8CHAR, c: CK_ULONG, d: *mut CK_UTF8CHAR);
}

type Bytes = *mut CK_BYTE;
type Len = CK_ULONG;
type LenPtr = *mut CK_ULONG;
type Mech = *mut CK_MECHANISM;
type Obj = CK_OBJECT_HANDLE;
type Attrs = *mut CK_ATTRIBUTE;
type Params = *mut c_void;

not_supported! { session:
    C_GetOperationState(a: Bytes, b: LenPtr);
    C_SetOperationState(a: Bytes, b: Len, c: Obj, d: Obj);
    C_CopyObject(a: Obj, b: Attrs, c: Len, d: *mut Obj);
    C_SetAttributeValue(a: Obj, b: Attrs, c: Len);
    C_EncryptInit(a: Mech, b: Obj);
    C_Encrypt(a: Bytes, b: Len, c: Bytes, d: LenPtr);
    C_EncryptUpdate(a: Bytes, b: Len, c: Bytes, d: LenPtr);
    C_EncryptFinal(a: Bytes, b: LenPtr);
    C_DecryptUpdate(a: Bytes, b: Len, c: Bytes, d: LenPtr);
    C_DecryptFinal(a: Bytes, b: LenPtr);
    C_DigestInit(a: Mech);
    C_Digest(a: Bytes, b: Len, c: Bytes, d: LenPtr);
    C_DigestUpdate(a: Bytes, b: Len);
    C_DigestKey(a: Obj);
    C_DigestFinal(a: Bytes, b: LenPtr);
    C_SignRecoverInit(a: Mech, b: Obj);
    C_SignRecover(a: Bytes, b: Len, c: Bytes, d: LenPtr);
    C_VerifyInit(a: Mech, b: Obj);
    C_Verify(a: Bytes, b: Len, c: Bytes, d: Len);
    C_VerifyUpdate(a: Bytes, b: Len);
    C_VerifyFinal(a: Bytes, b: Len);
    C_VerifyRecoverInit(a: Mech, b: Obj);
    C_VerifyRecover(a: Bytes, b: Len, c: Bytes, d: LenPtr);
    C_DigestEncryptUpdate(a: Bytes, b: Len, c: Bytes, d: LenPtr);
    C_DecryptDigestUpdate(a: Bytes, b: Len, c: Bytes, d: LenPtr);
    C_SignEncryptUpdate(a: Bytes, b: Len, c: Bytes, d: LenPtr);
    C_DecryptVerifyUpdate(a: Bytes, b: Len, c: Bytes, d: LenPtr);
    C_GenerateKey(a: Mech, b: Attrs, c: Len, d: *mut Obj);
    C_WrapKey(a: Mech, b: Obj, c: Obj, d: Bytes, e: LenPtr);
    C_UnwrapKey(a: Mech, b: Obj, c: Bytes, d: Len, e: Attrs, f: Len, g: *mut Obj);
    C_LoginUser(a: CK_USER_TYPE, b: *mut CK_UTF8CHAR, c: Len, d: *mut CK_UTF8CHAR, e: Len);
    C_SessionCancel(a: CK_FLAGS);
    C_MessageEncryptInit(a: Mech, b: Obj);
    C_EncryptMessage(a: Params, b: Len, c: Bytes, d: Len, e: Bytes, f: Len, g: Bytes, h: LenPtr);
    C_EncryptMessageBegin(a: Params, b: Len, c: Bytes, d: Len);
    C_EncryptMessageNext(a: Params, b: Len, c: Bytes, d: Len, e: Bytes, f: LenPtr, g: CK_FLAGS);
    C_MessageEncryptFinal();
    C_MessageDecryptInit(a: Mech, b: Obj);
    C_DecryptMessage(a: Params, b: Len, c: Bytes, d: Len, e: Bytes, f: Len, g: Bytes, h: LenPtr);
    C_DecryptMessageBegin(a: Params, b: Len, c: Bytes, d: Len);
    C_DecryptMessageNext(a: Params, b: Len, c: Bytes, d: Len, e: Bytes, f: LenPtr, g: CK_FLAGS);
    C_MessageDecryptFinal();
    C_MessageSignInit(a: Mech, b: Obj);
    C_SignMessage(a: Params, b: Len, c: Bytes, d: Len, e: Bytes, f: LenPtr);
    C_SignMessageBegin(a: Params, b: Len);
    C_SignMessageNext(a: Params, b: Len, c: Bytes, d: Len, e: Bytes, f: LenPtr);
    C_MessageSignFinal();
    C_MessageVerifyInit(a: Mech, b: Obj);
    C_VerifyMessage(a: Params, b: Len, c: Bytes, d: Len, e: Bytes, f: Len);
    C_VerifyMessageBegin(a: Params, b: Len);
    C_VerifyMessageNext(a: Params, b: Len, c: Bytes, d: Len, e: Bytes, f: Len);
    C_MessageVerifyFinal();
}

// ----- function lists and interfaces (§5.4) -----------------------------------------------

/// The interface name of both function lists (NUL-terminated).
const INTERFACE_NAME: &[u8] = b"PKCS 11\0";

macro_rules! function_list {
    ($ty:ident, $major:expr, $minor:expr, { $($extra:ident),* }) => {
        $ty {
            version: CK_VERSION { major: $major, minor: $minor },
            C_Initialize: Some(C_Initialize),
            C_Finalize: Some(C_Finalize),
            C_GetInfo: Some(C_GetInfo),
            C_GetFunctionList: Some(C_GetFunctionList),
            C_GetSlotList: Some(C_GetSlotList),
            C_GetSlotInfo: Some(C_GetSlotInfo),
            C_GetTokenInfo: Some(C_GetTokenInfo),
            C_GetMechanismList: Some(C_GetMechanismList),
            C_GetMechanismInfo: Some(C_GetMechanismInfo),
            C_InitToken: Some(C_InitToken),
            C_InitPIN: Some(C_InitPIN),
            C_SetPIN: Some(C_SetPIN),
            C_OpenSession: Some(C_OpenSession),
            C_CloseSession: Some(C_CloseSession),
            C_CloseAllSessions: Some(C_CloseAllSessions),
            C_GetSessionInfo: Some(C_GetSessionInfo),
            C_GetOperationState: Some(C_GetOperationState),
            C_SetOperationState: Some(C_SetOperationState),
            C_Login: Some(C_Login),
            C_Logout: Some(C_Logout),
            C_CreateObject: Some(C_CreateObject),
            C_CopyObject: Some(C_CopyObject),
            C_DestroyObject: Some(C_DestroyObject),
            C_GetObjectSize: Some(C_GetObjectSize),
            C_GetAttributeValue: Some(C_GetAttributeValue),
            C_SetAttributeValue: Some(C_SetAttributeValue),
            C_FindObjectsInit: Some(C_FindObjectsInit),
            C_FindObjects: Some(C_FindObjects),
            C_FindObjectsFinal: Some(C_FindObjectsFinal),
            C_EncryptInit: Some(C_EncryptInit),
            C_Encrypt: Some(C_Encrypt),
            C_EncryptUpdate: Some(C_EncryptUpdate),
            C_EncryptFinal: Some(C_EncryptFinal),
            C_DecryptInit: Some(C_DecryptInit),
            C_Decrypt: Some(C_Decrypt),
            C_DecryptUpdate: Some(C_DecryptUpdate),
            C_DecryptFinal: Some(C_DecryptFinal),
            C_DigestInit: Some(C_DigestInit),
            C_Digest: Some(C_Digest),
            C_DigestUpdate: Some(C_DigestUpdate),
            C_DigestKey: Some(C_DigestKey),
            C_DigestFinal: Some(C_DigestFinal),
            C_SignInit: Some(C_SignInit),
            C_Sign: Some(C_Sign),
            C_SignUpdate: Some(C_SignUpdate),
            C_SignFinal: Some(C_SignFinal),
            C_SignRecoverInit: Some(C_SignRecoverInit),
            C_SignRecover: Some(C_SignRecover),
            C_VerifyInit: Some(C_VerifyInit),
            C_Verify: Some(C_Verify),
            C_VerifyUpdate: Some(C_VerifyUpdate),
            C_VerifyFinal: Some(C_VerifyFinal),
            C_VerifyRecoverInit: Some(C_VerifyRecoverInit),
            C_VerifyRecover: Some(C_VerifyRecover),
            C_DigestEncryptUpdate: Some(C_DigestEncryptUpdate),
            C_DecryptDigestUpdate: Some(C_DecryptDigestUpdate),
            C_SignEncryptUpdate: Some(C_SignEncryptUpdate),
            C_DecryptVerifyUpdate: Some(C_DecryptVerifyUpdate),
            C_GenerateKey: Some(C_GenerateKey),
            C_GenerateKeyPair: Some(C_GenerateKeyPair),
            C_WrapKey: Some(C_WrapKey),
            C_UnwrapKey: Some(C_UnwrapKey),
            C_DeriveKey: Some(C_DeriveKey),
            C_SeedRandom: Some(C_SeedRandom),
            C_GenerateRandom: Some(C_GenerateRandom),
            C_GetFunctionStatus: Some(C_GetFunctionStatus),
            C_CancelFunction: Some(C_CancelFunction),
            C_WaitForSlotEvent: Some(C_WaitForSlotEvent),
            $($extra: Some($extra),)*
        }
    };
}

/// The PKCS#11 2.40 function list (`C_GetFunctionList`).
static FUNCTIONS_2_40: CK_FUNCTION_LIST = function_list!(CK_FUNCTION_LIST, 2, 40, {});

/// The PKCS#11 3.0 function list.
static FUNCTIONS_3_0: CK_FUNCTION_LIST_3_0 = function_list!(CK_FUNCTION_LIST_3_0, 3, 0, {
    C_GetInterfaceList, C_GetInterface, C_LoginUser, C_SessionCancel,
    C_MessageEncryptInit, C_EncryptMessage, C_EncryptMessageBegin, C_EncryptMessageNext,
    C_MessageEncryptFinal, C_MessageDecryptInit, C_DecryptMessage, C_DecryptMessageBegin,
    C_DecryptMessageNext, C_MessageDecryptFinal, C_MessageSignInit, C_SignMessage,
    C_SignMessageBegin, C_SignMessageNext, C_MessageSignFinal, C_MessageVerifyInit,
    C_VerifyMessage, C_VerifyMessageBegin, C_VerifyMessageNext, C_MessageVerifyFinal
});

/// The interfaces `C_GetInterfaceList` offers, 3.0 first (the default).
struct Interfaces([CK_INTERFACE; 2]);

// SAFETY: the raw pointers in the interfaces point to immutable statics (the name and the
// function lists); nothing ever writes through them, so sharing them between threads is
// sound.
unsafe impl Sync for Interfaces {}

static INTERFACES: Interfaces = Interfaces([
    CK_INTERFACE {
        pInterfaceName: INTERFACE_NAME.as_ptr() as *mut CK_CHAR,
        pFunctionList: &FUNCTIONS_3_0 as *const CK_FUNCTION_LIST_3_0 as *mut c_void,
        flags: 0,
    },
    CK_INTERFACE {
        pInterfaceName: INTERFACE_NAME.as_ptr() as *mut CK_CHAR,
        pFunctionList: &FUNCTIONS_2_40 as *const CK_FUNCTION_LIST as *mut c_void,
        flags: 0,
    },
]);

#[cfg(test)]
mod tests {
    //! The C boundary called as C calls it: NULL pointers, bad handles, buffer sizes, the
    //! function lists and interfaces. One test at a time (the module is one per process).

    use super::*;
    use std::ptr::{null, null_mut};
    use std::sync::Mutex;

    static SERIAL: Mutex<()> = Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[test]
    fn interfaces_and_function_lists() {
        let _g = serial();
        // SAFETY (test): the pointers are to live locals of the right types and sizes.
        unsafe {
            let mut list: *mut CK_FUNCTION_LIST = null_mut();
            assert_eq!(C_GetFunctionList(&mut list), CKR_OK);
            assert_eq!(((*list).version.major, (*list).version.minor), (2, 40));
            assert_eq!(C_GetFunctionList(null_mut()), CKR_ARGUMENTS_BAD);

            let mut count: CK_ULONG = 0;
            assert_eq!(C_GetInterfaceList(null_mut(), &mut count), CKR_OK);
            assert_eq!(count, 2);
            let mut one = [CK_INTERFACE::default(); 1];
            let mut small: CK_ULONG = 1;
            assert_eq!(C_GetInterfaceList(one.as_mut_ptr(), &mut small), CKR_BUFFER_TOO_SMALL);
            assert_eq!(small, 2);

            let mut iface: *mut CK_INTERFACE = null_mut();
            assert_eq!(C_GetInterface(null_mut(), null_mut(), &mut iface, 0), CKR_OK);
            let v = *((*iface).pFunctionList as *const CK_VERSION);
            assert_eq!((v.major, v.minor), (3, 0));
            let name = std::ffi::CStr::from_ptr((*iface).pInterfaceName as *const std::ffi::c_char);
            assert_eq!(name.to_bytes(), b"PKCS 11");
            let f30 = &*((*iface).pFunctionList as *const CK_FUNCTION_LIST_3_0);
            assert!(f30.C_GetInterface.is_some() && f30.C_MessageVerifyFinal.is_some());

            let mut v240 = CK_VERSION { major: 2, minor: 40 };
            let mut name = *b"PKCS 11\0";
            assert_eq!(C_GetInterface(name.as_mut_ptr(), &mut v240, &mut iface, 0), CKR_OK);
            let v = *((*iface).pFunctionList as *const CK_VERSION);
            assert_eq!((v.major, v.minor), (2, 40));
            let mut other = *b"Vendor\0";
            assert_eq!(
                C_GetInterface(other.as_mut_ptr(), null_mut(), &mut iface, 0),
                CKR_ARGUMENTS_BAD
            );
            assert_eq!(
                C_GetInterface(null_mut(), null_mut(), &mut iface, CKF_INTERFACE_FORK_SAFE),
                CKR_ARGUMENTS_BAD
            );
            assert_eq!(C_GetInterface(null_mut(), null_mut(), null_mut(), 0), CKR_ARGUMENTS_BAD);
        }
    }

    #[test]
    fn initialize_arguments_and_state() {
        let _g = serial();
        // SAFETY (test): the pointers are to live locals of the right types and sizes.
        unsafe {
            let _ = C_Finalize(null_mut());
            let mut info = CK_INFO::default();
            assert_eq!(C_GetInfo(&mut info), CKR_CRYPTOKI_NOT_INITIALIZED);
            let mut args = CK_C_INITIALIZE_ARGS {
                pReserved: std::ptr::dangling_mut::<c_void>(),
                ..Default::default()
            };
            assert_eq!(C_Initialize(&mut args as *mut _ as *mut c_void), CKR_ARGUMENTS_BAD);
            extern "C" fn create(_: *mut *mut c_void) -> CK_RV {
                CKR_OK
            }
            let mut partial =
                CK_C_INITIALIZE_ARGS { CreateMutex: Some(create), ..Default::default() };
            assert_eq!(C_Initialize(&mut partial as *mut _ as *mut c_void), CKR_ARGUMENTS_BAD);
            assert_eq!(C_Finalize(std::ptr::dangling_mut::<c_void>()), CKR_ARGUMENTS_BAD);
            assert_eq!(C_Finalize(null_mut()), CKR_CRYPTOKI_NOT_INITIALIZED);

            module::initialize_for_tests(&["sim:piv"]).unwrap();
            let mut os = CK_C_INITIALIZE_ARGS { flags: CKF_OS_LOCKING_OK, ..Default::default() };
            assert_eq!(
                C_Initialize(&mut os as *mut _ as *mut c_void),
                CKR_CRYPTOKI_ALREADY_INITIALIZED
            );
            assert_eq!(C_GetInfo(&mut info), CKR_OK);
            assert_eq!((info.cryptokiVersion.major, info.cryptokiVersion.minor), (3, 0));
            assert_eq!(&info.manufacturerID[..6], b"scard ");
            assert_eq!(C_GetInfo(null_mut()), CKR_ARGUMENTS_BAD);
            assert_eq!(C_Finalize(null_mut()), CKR_OK);
        }
    }

    /// A thread blocked in `C_WaitForSlotEvent` lets the others work, and `C_Finalize` ends
    /// its wait with `CKR_CRYPTOKI_NOT_INITIALIZED` (PKCS#11 3.0 §5.5.x).
    #[test]
    fn finalize_ends_a_blocking_wait() {
        let _g = serial();
        module::initialize_for_tests(&["sim:piv"]).unwrap();
        let waiter = std::thread::spawn(|| {
            let mut slot: CK_SLOT_ID = 0;
            // SAFETY (test): a valid out pointer and NULL reserved.
            unsafe { C_WaitForSlotEvent(0, &mut slot, null_mut()) }
        });
        std::thread::sleep(std::time::Duration::from_millis(250));
        // SAFETY (test): the pointers are to live locals of the right types and sizes.
        unsafe {
            let mut info = CK_INFO::default();
            for _ in 0..5 {
                assert_eq!(C_GetInfo(&mut info), CKR_OK, "the waiting thread holds nothing");
            }
            assert!(!waiter.is_finished());
            assert_eq!(C_Finalize(null_mut()), CKR_OK);
        }
        assert_eq!(waiter.join().unwrap(), CKR_CRYPTOKI_NOT_INITIALIZED);
    }

    /// `C_GetAttributeValue` the PKCS#11 way (§5.7.5), on the certificate and keys of the
    /// simulated GIDS card.
    #[test]
    fn attribute_values_and_buffer_sizes() {
        let _g = serial();
        module::initialize_for_tests(&["sim:gids"]).unwrap();
        // SAFETY (test): the pointers are to live locals of the right types and sizes.
        unsafe {
            let mut h: CK_SESSION_HANDLE = 0;
            assert_eq!(C_OpenSession(0, CKF_SERIAL_SESSION, null_mut(), None, &mut h), CKR_OK);
            let mut class = CKO_CERTIFICATE;
            let mut find = [CK_ATTRIBUTE {
                type_: CKA_CLASS,
                pValue: &mut class as *mut _ as *mut c_void,
                ulValueLen: size_of::<CK_OBJECT_CLASS>() as CK_ULONG,
            }];
            assert_eq!(C_FindObjectsInit(h, find.as_mut_ptr(), 1), CKR_OK);
            let mut cert: CK_OBJECT_HANDLE = 0;
            let mut n: CK_ULONG = 0;
            assert_eq!(C_FindObjects(h, &mut cert, 1, &mut n), CKR_OK);
            assert_eq!(n, 1);
            assert_eq!(C_FindObjectsFinal(h), CKR_OK);

            // NULL pValue: the length; then the value; too small: unavailable and the code.
            let mut a = CK_ATTRIBUTE { type_: CKA_VALUE, pValue: null_mut(), ulValueLen: 0 };
            assert_eq!(C_GetAttributeValue(h, cert, &mut a, 1), CKR_OK);
            let len = a.ulValueLen as usize;
            assert!(len > 100);
            let mut buf = vec![0u8; len + 10];
            a.pValue = buf.as_mut_ptr() as *mut c_void;
            a.ulValueLen = buf.len() as CK_ULONG;
            assert_eq!(C_GetAttributeValue(h, cert, &mut a, 1), CKR_OK);
            assert_eq!(a.ulValueLen as usize, len);
            assert_eq!(buf[0], 0x30, "DER");
            a.ulValueLen = 10;
            assert_eq!(C_GetAttributeValue(h, cert, &mut a, 1), CKR_BUFFER_TOO_SMALL);
            assert_eq!(a.ulValueLen, CK_UNAVAILABLE_INFORMATION);
            let mut size: CK_ULONG = 0;
            assert_eq!(C_GetObjectSize(h, cert, &mut size), CKR_OK);
            assert_eq!(size as usize, len);

            // Every attribute is processed; an invalid type wins over a short buffer.
            let mut id = [0u8; 4];
            let mut small = [0u8; 1];
            let mut t = [
                CK_ATTRIBUTE {
                    type_: CKA_ID,
                    pValue: id.as_mut_ptr() as *mut c_void,
                    ulValueLen: 4,
                },
                CK_ATTRIBUTE { type_: CKA_MODULUS, pValue: null_mut(), ulValueLen: 0 },
                CK_ATTRIBUTE {
                    type_: CKA_SUBJECT,
                    pValue: small.as_mut_ptr() as *mut c_void,
                    ulValueLen: 1,
                },
            ];
            assert_eq!(C_GetAttributeValue(h, cert, t.as_mut_ptr(), 3), CKR_ATTRIBUTE_TYPE_INVALID);
            assert_eq!((t[0].ulValueLen, id[0]), (1, 0x01));
            assert_eq!(t[1].ulValueLen, CK_UNAVAILABLE_INFORMATION);
            assert_eq!(t[2].ulValueLen, CK_UNAVAILABLE_INFORMATION);

            // The private key after login: its secrets are sensitive, which wins.
            assert_eq!(C_Login(h, CKU_USER, b"123456".as_ptr() as *mut u8, 6), CKR_OK);
            let mut class = CKO_PRIVATE_KEY;
            find[0].pValue = &mut class as *mut _ as *mut c_void;
            assert_eq!(C_FindObjectsInit(h, find.as_mut_ptr(), 1), CKR_OK);
            let mut key: CK_OBJECT_HANDLE = 0;
            assert_eq!(C_FindObjects(h, &mut key, 1, &mut n), CKR_OK);
            assert_eq!(n, 1);
            assert_eq!(C_FindObjectsFinal(h), CKR_OK);
            let mut t = [
                CK_ATTRIBUTE { type_: CKA_PRIME_1, pValue: null_mut(), ulValueLen: 0 },
                CK_ATTRIBUTE { type_: CKA_EC_POINT, pValue: null_mut(), ulValueLen: 0 },
                CK_ATTRIBUTE { type_: CKA_MODULUS, pValue: null_mut(), ulValueLen: 0 },
            ];
            assert_eq!(C_GetAttributeValue(h, key, t.as_mut_ptr(), 3), CKR_ATTRIBUTE_SENSITIVE);
            assert_eq!(t[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
            assert_eq!(t[1].ulValueLen, CK_UNAVAILABLE_INFORMATION);
            assert_eq!(t[2].ulValueLen, 256, "the modulus is public");

            // Sign: a NULL buffer gives the length, a short one CKR_BUFFER_TOO_SMALL, and the
            // operation goes on until it gives the signature.
            let mut mech = CK_MECHANISM {
                mechanism: CKM_SHA256_RSA_PKCS,
                pParameter: null_mut(),
                ulParameterLen: 0,
            };
            assert_eq!(C_SignInit(h, &mut mech, key), CKR_OK);
            assert_eq!(C_SignInit(h, &mut mech, key), CKR_OPERATION_ACTIVE);
            let data = b"abc".as_ptr() as *mut u8;
            let mut len: CK_ULONG = 0;
            assert_eq!(C_Sign(h, data, 3, null_mut(), &mut len), CKR_OK);
            assert_eq!(len, 256);
            let mut sig = vec![0u8; 256];
            let mut short: CK_ULONG = 255;
            assert_eq!(C_Sign(h, data, 3, sig.as_mut_ptr(), &mut short), CKR_BUFFER_TOO_SMALL);
            assert_eq!(short, 256);
            assert_eq!(C_Sign(h, data, 3, sig.as_mut_ptr(), &mut len), CKR_OK);
            assert_eq!(
                C_Sign(h, data, 3, sig.as_mut_ptr(), &mut len),
                CKR_OPERATION_NOT_INITIALIZED
            );
            // Decrypt: the size query answers the modulus length without the card.
            mech.mechanism = CKM_RSA_PKCS;
            assert_eq!(C_DecryptInit(h, &mut mech, key), CKR_OK);
            let mut out_len: CK_ULONG = 0;
            assert_eq!(C_Decrypt(h, sig.as_mut_ptr(), 256, null_mut(), &mut out_len), CKR_OK);
            assert_eq!(out_len, 256);
            assert_eq!(C_DecryptInit(h, null_mut(), key), CKR_OK, "NULL mechanism ends it");
            assert_eq!(
                C_Decrypt(h, sig.as_mut_ptr(), 256, null_mut(), &mut out_len),
                CKR_OPERATION_NOT_INITIALIZED
            );
            assert_eq!(C_Finalize(null_mut()), CKR_OK);
        }
    }

    #[test]
    fn null_pointers_and_bad_handles() {
        let _g = serial();
        // SAFETY (test): the pointers are to live locals of the right types and sizes (or
        // NULL on purpose).
        unsafe {
            module::initialize_for_tests(&["sim:piv"]).unwrap();
            let mut count: CK_ULONG = 0;
            assert_eq!(C_GetSlotList(CK_TRUE, null_mut(), null_mut()), CKR_ARGUMENTS_BAD);
            assert_eq!(C_GetSlotList(CK_TRUE, null_mut(), &mut count), CKR_OK);
            assert_eq!(count, 1);
            let mut slots = [0 as CK_SLOT_ID; 1];
            let mut zero: CK_ULONG = 0;
            assert_eq!(C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut zero), CKR_BUFFER_TOO_SMALL);
            assert_eq!(zero, 1);
            assert_eq!(C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut count), CKR_OK);
            let slot = slots[0];
            let mut si = CK_SLOT_INFO::default();
            assert_eq!(C_GetSlotInfo(slot + 7, &mut si), CKR_SLOT_ID_INVALID);
            assert_eq!(C_GetSlotInfo(slot, null_mut()), CKR_ARGUMENTS_BAD);
            let mut ti = CK_TOKEN_INFO::default();
            assert_eq!(C_GetTokenInfo(slot, &mut ti), CKR_OK);
            assert_ne!(ti.flags & CKF_LOGIN_REQUIRED, 0);

            let mut h: CK_SESSION_HANDLE = 0;
            assert_eq!(
                C_OpenSession(slot, CKF_SERIAL_SESSION, null_mut(), None, null_mut()),
                CKR_ARGUMENTS_BAD
            );
            assert_eq!(
                C_OpenSession(slot, 0, null_mut(), None, &mut h),
                CKR_SESSION_PARALLEL_NOT_SUPPORTED
            );
            assert_eq!(
                C_OpenSession(99, CKF_SERIAL_SESSION, null_mut(), None, &mut h),
                CKR_SLOT_ID_INVALID
            );
            assert_eq!(C_OpenSession(slot, CKF_SERIAL_SESSION, null_mut(), None, &mut h), CKR_OK);

            assert_eq!(C_Login(h, CKU_USER, null_mut(), 0), CKR_ARGUMENTS_BAD);
            assert_eq!(
                C_Login(h + 1000, CKU_USER, b"123456".as_ptr() as *mut u8, 6),
                CKR_SESSION_HANDLE_INVALID
            );
            assert_eq!(C_Login(h, 7, b"123456".as_ptr() as *mut u8, 6), CKR_USER_TYPE_INVALID);
            assert_eq!(
                C_Login(h, CKU_CONTEXT_SPECIFIC, b"123456".as_ptr() as *mut u8, 6),
                CKR_OPERATION_NOT_INITIALIZED
            );
            assert_eq!(C_Logout(h), CKR_USER_NOT_LOGGED_IN);

            // A template pointer that is NULL with a count.
            assert_eq!(C_FindObjectsInit(h, null_mut(), 2), CKR_ARGUMENTS_BAD);
            assert_eq!(C_FindObjectsInit(h, null_mut(), 0), CKR_OK);
            assert_eq!(C_FindObjectsInit(h, null_mut(), 0), CKR_OPERATION_ACTIVE);
            let mut found = [0 as CK_OBJECT_HANDLE; 4];
            assert_eq!(C_FindObjects(h, found.as_mut_ptr(), 4, null_mut()), CKR_ARGUMENTS_BAD);
            assert_eq!(C_FindObjects(h, null_mut(), 4, &mut count), CKR_ARGUMENTS_BAD);
            assert_eq!(C_FindObjects(h, found.as_mut_ptr(), 4, &mut count), CKR_OK);
            assert_eq!(count, 0, "a new PIV card has no objects");
            assert_eq!(C_FindObjectsFinal(h), CKR_OK);
            assert_eq!(C_FindObjectsFinal(h), CKR_OPERATION_NOT_INITIALIZED);

            let mut attr = CK_ATTRIBUTE { type_: CKA_CLASS, pValue: null_mut(), ulValueLen: 0 };
            assert_eq!(C_GetAttributeValue(h, 12345, &mut attr, 1), CKR_OBJECT_HANDLE_INVALID);
            assert_eq!(C_GetAttributeValue(h, 12345, null_mut(), 1), CKR_ARGUMENTS_BAD);

            let mut mech =
                CK_MECHANISM { mechanism: CKM_ECDSA, pParameter: null_mut(), ulParameterLen: 0 };
            assert_eq!(C_SignInit(h, &mut mech, 12345), CKR_KEY_HANDLE_INVALID);
            let mut len: CK_ULONG = 64;
            let mut sig = [0u8; 64];
            assert_eq!(
                C_Sign(h, b"x".as_ptr() as *mut u8, 1, sig.as_mut_ptr(), &mut len),
                CKR_OPERATION_NOT_INITIALIZED
            );
            assert_eq!(
                C_Sign(h, b"x".as_ptr() as *mut u8, 1, sig.as_mut_ptr(), null_mut()),
                CKR_ARGUMENTS_BAD
            );
            assert_eq!(C_Sign(h, null_mut(), 5, sig.as_mut_ptr(), &mut len), CKR_ARGUMENTS_BAD);
            assert_eq!(C_SignFinal(h, sig.as_mut_ptr(), &mut len), CKR_OPERATION_NOT_INITIALIZED);
            assert_eq!(
                C_Decrypt(h, b"x".as_ptr() as *mut u8, 1, sig.as_mut_ptr(), &mut len),
                CKR_OPERATION_NOT_INITIALIZED
            );

            // A mechanism parameter of the wrong size.
            let mut pss =
                CK_RSA_PKCS_PSS_PARAMS { hashAlg: CKM_SHA256, mgf: CKG_MGF1_SHA256, sLen: 32 };
            let mut bad = CK_MECHANISM {
                mechanism: CKM_RSA_PKCS_PSS,
                pParameter: &mut pss as *mut _ as *mut c_void,
                ulParameterLen: 3,
            };
            assert_eq!(C_SignInit(h, &mut bad, 12345), CKR_KEY_HANDLE_INVALID);
            assert_eq!(
                mechanism(&bad).unwrap().params,
                MechParams::Malformed,
                "a PSS structure of 3 bytes is not read"
            );
            assert_eq!(C_SignInit(h, null_mut(), 0), CKR_OK, "NULL mechanism: nothing to end");

            let mut ph: CK_OBJECT_HANDLE = 0;
            let mut t = [CK_ATTRIBUTE { type_: CKA_CLASS, pValue: null_mut(), ulValueLen: 8 }];
            assert_eq!(C_CreateObject(h, t.as_mut_ptr(), 1, &mut ph), CKR_ARGUMENTS_BAD);
            assert_eq!(C_CreateObject(h, t.as_mut_ptr(), 1, null_mut()), CKR_ARGUMENTS_BAD);
            assert_eq!(
                C_GenerateKeyPair(h, &mut mech, null_mut(), 0, null_mut(), 0, &mut ph, null_mut()),
                CKR_ARGUMENTS_BAD
            );
            assert_eq!(C_DestroyObject(h, 12345), CKR_OBJECT_HANDLE_INVALID);
            assert_eq!(C_GetObjectSize(h, 12345, null_mut()), CKR_ARGUMENTS_BAD);
            assert_eq!(C_GenerateRandom(h, sig.as_mut_ptr(), 8), CKR_RANDOM_NO_RNG);
            assert_eq!(
                C_Digest(h, null_mut(), 0, null_mut(), &mut len),
                CKR_FUNCTION_NOT_SUPPORTED
            );
            assert_eq!(
                C_Digest(h + 1000, null_mut(), 0, null_mut(), &mut len),
                CKR_SESSION_HANDLE_INVALID
            );
            assert_eq!(C_InitToken(slot, null_mut(), 0, null_mut()), CKR_FUNCTION_NOT_SUPPORTED);

            let mut event: CK_SLOT_ID = 0;
            assert_eq!(
                C_WaitForSlotEvent(CKF_DONT_BLOCK, null_mut(), null_mut()),
                CKR_ARGUMENTS_BAD
            );
            assert_eq!(C_WaitForSlotEvent(CKF_DONT_BLOCK, &mut event, null_mut()), CKR_NO_EVENT);

            let mut session_info = CK_SESSION_INFO::default();
            assert_eq!(C_GetSessionInfo(h, &mut session_info), CKR_OK);
            assert_eq!(session_info.state, CKS_RO_PUBLIC_SESSION);
            assert_eq!(C_CloseSession(h), CKR_OK);
            assert_eq!(C_CloseSession(h), CKR_SESSION_HANDLE_INVALID);
            assert_eq!(C_GetSessionInfo(h, &mut session_info), CKR_SESSION_HANDLE_INVALID);
            assert_eq!(C_CloseAllSessions(99), CKR_SLOT_ID_INVALID);
            let _ = null::<u8>();
            assert_eq!(C_Finalize(null_mut()), CKR_OK);
            assert_eq!(
                C_GetSlotList(CK_TRUE, null_mut(), &mut count),
                CKR_CRYPTOKI_NOT_INITIALIZED
            );
            assert_eq!(C_InitToken(slot, null_mut(), 0, null_mut()), CKR_CRYPTOKI_NOT_INITIALIZED);
        }
    }
}
