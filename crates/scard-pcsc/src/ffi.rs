//! The only `unsafe` code of scard-pcsc: loading the PC/SC library at run time and one safe
//! function per C function used. Every pointer handed to C is made here from a Rust slice,
//! string or local that outlives the call; nothing raw leaves this module.
//!
//! Types are those of `/usr/include/PCSC/wintypes.h` and `pcsclite.h` (pcsc-lite 1.9.9):
//! on Linux and the BSDs `DWORD` is `unsigned long` and `LONG` is `long` (both 64-bit on
//! x86_64), `SCARDCONTEXT` and `SCARDHANDLE` are `LONG`, and the structures have the natural
//! C layout; on macOS (PCSC.framework) `DWORD` is `uint32_t`, `LONG` is `int32_t` and
//! `SCARD_READERSTATE` / `SCARD_IO_REQUEST` are `#pragma pack(1)`.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_void};
use std::ptr;

use crate::code::ReturnCode;

/// `DWORD` (wintypes.h).
#[cfg(target_os = "macos")]
pub(crate) type Dword = u32;
/// `LONG` (wintypes.h).
#[cfg(target_os = "macos")]
pub(crate) type Long = i32;
/// `DWORD` (wintypes.h).
#[cfg(not(target_os = "macos"))]
pub(crate) type Dword = std::ffi::c_ulong;
/// `LONG` (wintypes.h).
#[cfg(not(target_os = "macos"))]
pub(crate) type Long = std::ffi::c_long;

/// `SCARDCONTEXT` (pcsclite.h: `typedef LONG SCARDCONTEXT`).
pub(crate) type RawContext = Long;
/// `SCARDHANDLE` (pcsclite.h: `typedef LONG SCARDHANDLE`).
pub(crate) type RawHandle = Long;

/// `MAX_ATR_SIZE` (pcsclite.h).
pub(crate) const MAX_ATR_SIZE: usize = 33;
/// `MAX_READERNAME` (pcsclite.h).
const MAX_READERNAME: usize = 128;

/// `SCARD_READERSTATE` (pcsclite.h), packed on macOS.
#[cfg_attr(target_os = "macos", repr(C, packed(1)))]
#[cfg_attr(not(target_os = "macos"), repr(C))]
#[derive(Clone, Copy)]
struct ReaderStateC {
    sz_reader: *const c_char,
    pv_user_data: *mut c_void,
    dw_current_state: Dword,
    dw_event_state: Dword,
    cb_atr: Dword,
    rgb_atr: [u8; MAX_ATR_SIZE],
}

/// `SCARD_IO_REQUEST` (pcsclite.h: `{ unsigned long dwProtocol; unsigned long cbPciLength; }`,
/// `uint32_t` and packed on macOS).
#[cfg_attr(target_os = "macos", repr(C, packed(1)))]
#[cfg_attr(not(target_os = "macos"), repr(C))]
struct IoRequest {
    dw_protocol: Dword,
    cb_pci_length: Dword,
}

// winscard.h prototypes.
type FnEstablishContext =
    unsafe extern "C" fn(Dword, *const c_void, *const c_void, *mut RawContext) -> Long;
type FnReleaseContext = unsafe extern "C" fn(RawContext) -> Long;
type FnIsValidContext = unsafe extern "C" fn(RawContext) -> Long;
type FnListReaders =
    unsafe extern "C" fn(RawContext, *const c_char, *mut c_char, *mut Dword) -> Long;
type FnGetStatusChange = unsafe extern "C" fn(RawContext, Dword, *mut ReaderStateC, Dword) -> Long;
type FnCancel = unsafe extern "C" fn(RawContext) -> Long;
type FnConnect = unsafe extern "C" fn(
    RawContext,
    *const c_char,
    Dword,
    Dword,
    *mut RawHandle,
    *mut Dword,
) -> Long;
type FnReconnect = unsafe extern "C" fn(RawHandle, Dword, Dword, Dword, *mut Dword) -> Long;
type FnDisconnect = unsafe extern "C" fn(RawHandle, Dword) -> Long;
type FnBeginTransaction = unsafe extern "C" fn(RawHandle) -> Long;
type FnEndTransaction = unsafe extern "C" fn(RawHandle, Dword) -> Long;
type FnStatus = unsafe extern "C" fn(
    RawHandle,
    *mut c_char,
    *mut Dword,
    *mut Dword,
    *mut Dword,
    *mut u8,
    *mut Dword,
) -> Long;
type FnTransmit = unsafe extern "C" fn(
    RawHandle,
    *const IoRequest,
    *const u8,
    Dword,
    *mut IoRequest,
    *mut u8,
    *mut Dword,
) -> Long;
type FnControl = unsafe extern "C" fn(
    RawHandle,
    Dword,
    *const c_void,
    Dword,
    *mut c_void,
    Dword,
    *mut Dword,
) -> Long;
type FnGetAttrib = unsafe extern "C" fn(RawHandle, Dword, *mut u8, *mut Dword) -> Long;

/// The loaded PC/SC library and the entry points we use. The function pointers stay valid
/// for as long as `_lib` is loaded, which is as long as this value lives.
pub(crate) struct Api {
    establish_context: FnEstablishContext,
    release_context: FnReleaseContext,
    is_valid_context: FnIsValidContext,
    list_readers: FnListReaders,
    get_status_change: FnGetStatusChange,
    cancel: FnCancel,
    connect: FnConnect,
    reconnect: FnReconnect,
    disconnect: FnDisconnect,
    begin_transaction: FnBeginTransaction,
    end_transaction: FnEndTransaction,
    status: FnStatus,
    transmit: FnTransmit,
    control: FnControl,
    get_attrib: FnGetAttrib,
    path: String,
    _lib: libloading::Library,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("path", &self.path).finish()
    }
}

/// One reader of an `SCardGetStatusChange` call: the name and the state we know (in), the
/// state and ATR pcsc-lite reports (out).
#[derive(Debug, Clone)]
pub(crate) struct ReaderStateIo {
    pub(crate) name: CString,
    pub(crate) current: u32,
    pub(crate) event: u32,
    pub(crate) atr: Vec<u8>,
}

/// A `u32` as a `DWORD`.
#[allow(clippy::useless_conversion)]
pub(crate) fn dword(value: u32) -> Dword {
    Dword::from(value)
}

/// The low 32 bits of a `DWORD` (every PC/SC flag, protocol and length we read fits).
#[allow(clippy::cast_possible_truncation, clippy::unnecessary_cast)]
fn low32(value: Dword) -> u32 {
    value as u32
}

/// A return code as the open newtype; `SCARD_*` codes are 32-bit values in a `LONG` (positive
/// in a 64-bit `long`, negative in macOS's `int32_t`).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn check(code: Long) -> Result<(), ReturnCode> {
    if code == 0 { Ok(()) } else { Err(ReturnCode(code as u32)) }
}

/// A length as a `DWORD`, or `SCARD_E_INVALID_PARAMETER` when it does not fit.
fn len_dword(len: usize) -> Result<Dword, ReturnCode> {
    Dword::try_from(len).map_err(|_| ReturnCode::E_INVALID_PARAMETER)
}

/// A `DWORD` length reported by the library, clamped to the buffer it describes.
fn reported_len(len: Dword, capacity: usize) -> usize {
    usize::try_from(len).unwrap_or(usize::MAX).min(capacity)
}

impl Api {
    /// Loads the first library of `candidates` that opens and has every entry point.
    pub(crate) fn load(candidates: &[&str]) -> Result<Api, String> {
        let mut why = Vec::new();
        for path in candidates {
            match Self::load_one(path) {
                Ok(api) => return Ok(api),
                Err(err) => why.push(err),
            }
        }
        Err(why.join("; "))
    }

    fn load_one(path: &str) -> Result<Api, String> {
        // SAFETY: loading a shared library runs its initialisers. The candidates are the
        // system's PC/SC client library (pcsc-lite's libpcsclite.so.1 or macOS's
        // PCSC.framework), whose initialisers are sound to run in any process; a path given
        // through SCARD_PCSC_LIBRARY is the user's explicit choice of such a library.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| format!("{e}"))?;
        macro_rules! sym {
            ($ty:ty, $($name:literal),+) => {{
                let mut found: Option<$ty> = None;
                $(
                    if found.is_none() {
                        // SAFETY: the symbol is the winscard.h function of that name, and
                        // `$ty` is its prototype with this platform's DWORD/LONG (see the
                        // module documentation); the pointer is copied out but only used
                        // while `lib` is alive (it is stored next to it in `Api`).
                        found = unsafe { lib.get::<$ty>(concat!($name, "\0").as_bytes()) }
                            .ok()
                            .map(|s| *s);
                    }
                )+
                found.ok_or_else(|| format!("{path}: no symbol {}", [$($name),+].join(" or ")))?
            }};
        }
        Ok(Api {
            establish_context: sym!(FnEstablishContext, "SCardEstablishContext"),
            release_context: sym!(FnReleaseContext, "SCardReleaseContext"),
            is_valid_context: sym!(FnIsValidContext, "SCardIsValidContext"),
            list_readers: sym!(FnListReaders, "SCardListReaders"),
            get_status_change: sym!(FnGetStatusChange, "SCardGetStatusChange"),
            cancel: sym!(FnCancel, "SCardCancel"),
            connect: sym!(FnConnect, "SCardConnect"),
            reconnect: sym!(FnReconnect, "SCardReconnect"),
            disconnect: sym!(FnDisconnect, "SCardDisconnect"),
            begin_transaction: sym!(FnBeginTransaction, "SCardBeginTransaction"),
            end_transaction: sym!(FnEndTransaction, "SCardEndTransaction"),
            status: sym!(FnStatus, "SCardStatus"),
            transmit: sym!(FnTransmit, "SCardTransmit"),
            // macOS: SCardControl132 has the pcsc-lite 1.3.2+ signature; SCardControl there
            // is the older one.
            #[cfg(target_os = "macos")]
            control: sym!(FnControl, "SCardControl132", "SCardControl"),
            #[cfg(not(target_os = "macos"))]
            control: sym!(FnControl, "SCardControl"),
            get_attrib: sym!(FnGetAttrib, "SCardGetAttrib"),
            path: (*path).to_owned(),
            _lib: lib,
        })
    }

    /// The path the library was loaded from.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// `SCardEstablishContext(dwScope, NULL, NULL, &ctx)`.
    pub(crate) fn establish_context(&self, scope: u32) -> Result<RawContext, ReturnCode> {
        let mut ctx: RawContext = 0;
        // SAFETY: the reserved pointers may be NULL (winscard.h `/*@null@*/`); `ctx` is a
        // live local the library writes one SCARDCONTEXT to.
        check(unsafe {
            (self.establish_context)(dword(scope), ptr::null(), ptr::null(), &mut ctx)
        })?;
        Ok(ctx)
    }

    /// `SCardReleaseContext`.
    pub(crate) fn release_context(&self, ctx: RawContext) -> Result<(), ReturnCode> {
        // SAFETY: value arguments only; an unknown context is reported as
        // SCARD_E_INVALID_HANDLE.
        check(unsafe { (self.release_context)(ctx) })
    }

    /// `SCardIsValidContext`.
    pub(crate) fn is_valid_context(&self, ctx: RawContext) -> bool {
        // SAFETY: value arguments only.
        check(unsafe { (self.is_valid_context)(ctx) }).is_ok()
    }

    /// `SCardListReaders(ctx, NULL, buf, &len)`: the raw multi-string (names separated by NUL,
    /// ended by an empty name). Sizes the buffer with a first call and retries when the list
    /// grew in between.
    pub(crate) fn list_readers(&self, ctx: RawContext) -> Result<Vec<u8>, ReturnCode> {
        for _ in 0..4 {
            let mut len: Dword = 0;
            // SAFETY: groups NULL means all readers; a NULL buffer asks for the length only,
            // written to the live local `len`.
            check(unsafe { (self.list_readers)(ctx, ptr::null(), ptr::null_mut(), &mut len) })?;
            let mut buf = vec![0u8; reported_len(len, 1 << 20)];
            let mut got = len_dword(buf.len())?;
            // SAFETY: `buf` is writable for `got` bytes and outlives the call; the library
            // writes at most `got` bytes and stores the length used in `got`.
            let rc = unsafe {
                (self.list_readers)(ctx, ptr::null(), buf.as_mut_ptr().cast::<c_char>(), &mut got)
            };
            match check(rc) {
                Ok(()) => {
                    buf.truncate(reported_len(got, buf.len()));
                    return Ok(buf);
                }
                Err(ReturnCode::E_INSUFFICIENT_BUFFER) => continue,
                Err(code) => return Err(code),
            }
        }
        Err(ReturnCode::E_INSUFFICIENT_BUFFER)
    }

    /// `SCardGetStatusChange(ctx, timeout, states, n)`: fills `event` and `atr` of every
    /// entry (also when the call times out: pcsc-lite then reports the unchanged states).
    pub(crate) fn get_status_change(
        &self,
        ctx: RawContext,
        timeout_ms: u32,
        readers: &mut [ReaderStateIo],
    ) -> Result<(), ReturnCode> {
        let mut states: Vec<ReaderStateC> = readers
            .iter()
            .map(|r| ReaderStateC {
                sz_reader: r.name.as_ptr(),
                pv_user_data: ptr::null_mut(),
                dw_current_state: dword(r.current),
                dw_event_state: 0,
                cb_atr: 0,
                rgb_atr: [0; MAX_ATR_SIZE],
            })
            .collect();
        let count = len_dword(states.len())?;
        // SAFETY: `states` holds `count` initialised SCARD_READERSTATE values whose
        // `szReader` point into the CStrings of `readers`, which are borrowed (and so alive
        // and unmoved) for the whole call; the library writes only inside those structs.
        let rc =
            unsafe { (self.get_status_change)(ctx, dword(timeout_ms), states.as_mut_ptr(), count) };
        for (io, c) in readers.iter_mut().zip(&states) {
            // Copies out of the (possibly packed) struct: no references to its fields.
            let (event, len, atr) = (c.dw_event_state, c.cb_atr, c.rgb_atr);
            io.event = low32(event);
            io.atr = atr.get(..reported_len(len, MAX_ATR_SIZE)).unwrap_or_default().to_vec();
        }
        check(rc)
    }

    /// `SCardCancel`: ends a blocking `SCardGetStatusChange` on `ctx` (callable from any
    /// thread).
    pub(crate) fn cancel(&self, ctx: RawContext) -> Result<(), ReturnCode> {
        // SAFETY: value arguments only.
        check(unsafe { (self.cancel)(ctx) })
    }

    /// `SCardConnect`: the handle and the active protocol.
    pub(crate) fn connect(
        &self,
        ctx: RawContext,
        reader: &CStr,
        share: u32,
        preferred: u32,
    ) -> Result<(RawHandle, u32), ReturnCode> {
        let mut handle: RawHandle = 0;
        let mut active: Dword = 0;
        // SAFETY: `reader` is a NUL-terminated string alive for the call; `handle` and
        // `active` are live locals the library writes to.
        check(unsafe {
            (self.connect)(
                ctx,
                reader.as_ptr(),
                dword(share),
                dword(preferred),
                &mut handle,
                &mut active,
            )
        })?;
        Ok((handle, low32(active)))
    }

    /// `SCardReconnect`: the active protocol.
    pub(crate) fn reconnect(
        &self,
        handle: RawHandle,
        share: u32,
        preferred: u32,
        initialization: u32,
    ) -> Result<u32, ReturnCode> {
        let mut active: Dword = 0;
        // SAFETY: value arguments and one live local written by the library.
        check(unsafe {
            (self.reconnect)(
                handle,
                dword(share),
                dword(preferred),
                dword(initialization),
                &mut active,
            )
        })?;
        Ok(low32(active))
    }

    /// `SCardDisconnect`.
    pub(crate) fn disconnect(&self, handle: RawHandle, disposition: u32) -> Result<(), ReturnCode> {
        // SAFETY: value arguments only.
        check(unsafe { (self.disconnect)(handle, dword(disposition)) })
    }

    /// `SCardBeginTransaction`.
    pub(crate) fn begin_transaction(&self, handle: RawHandle) -> Result<(), ReturnCode> {
        // SAFETY: value arguments only.
        check(unsafe { (self.begin_transaction)(handle) })
    }

    /// `SCardEndTransaction`.
    pub(crate) fn end_transaction(
        &self,
        handle: RawHandle,
        disposition: u32,
    ) -> Result<(), ReturnCode> {
        // SAFETY: value arguments only.
        check(unsafe { (self.end_transaction)(handle, dword(disposition)) })
    }

    /// `SCardStatus`: the state flags, the active protocol and the ATR.
    pub(crate) fn status(&self, handle: RawHandle) -> Result<(u32, u32, Vec<u8>), ReturnCode> {
        let mut name = [0u8; MAX_READERNAME];
        let mut name_len = len_dword(name.len())?;
        let mut state: Dword = 0;
        let mut protocol: Dword = 0;
        let mut atr = [0u8; MAX_ATR_SIZE];
        let mut atr_len = len_dword(atr.len())?;
        // SAFETY: every pointer is to a live local; the buffers are writable for the lengths
        // passed in `name_len` and `atr_len`, which the library updates.
        check(unsafe {
            (self.status)(
                handle,
                name.as_mut_ptr().cast::<c_char>(),
                &mut name_len,
                &mut state,
                &mut protocol,
                atr.as_mut_ptr(),
                &mut atr_len,
            )
        })?;
        let atr = atr.get(..reported_len(atr_len, MAX_ATR_SIZE)).unwrap_or_default().to_vec();
        Ok((low32(state), low32(protocol), atr))
    }

    /// `SCardTransmit` with the `SCARD_IO_REQUEST` of `protocol` (a `SCARD_PROTOCOL_*` value)
    /// and no receive PCI: the response length in `recv`.
    pub(crate) fn transmit(
        &self,
        handle: RawHandle,
        protocol: u32,
        send: &[u8],
        recv: &mut Vec<u8>,
    ) -> Result<(), ReturnCode> {
        let pci = IoRequest {
            dw_protocol: dword(protocol),
            cb_pci_length: len_dword(std::mem::size_of::<IoRequest>())?,
        };
        let send_len = len_dword(send.len())?;
        recv.clear();
        let capacity = recv.capacity();
        let mut recv_len = len_dword(capacity)?;
        // SAFETY: `pci` is a live local with the pcsclite.h layout; `send` is readable for
        // `send_len` bytes and `recv`'s allocation writable for `recv_len` (its capacity)
        // bytes, both borrowed for the call; pioRecvPci may be NULL (winscard.h `/*@out@*/`,
        // pcsc-lite ignores it).
        check(unsafe {
            (self.transmit)(
                handle,
                &pci,
                send.as_ptr(),
                send_len,
                ptr::null_mut(),
                recv.as_mut_ptr(),
                &mut recv_len,
            )
        })?;
        // SAFETY: on success SCardTransmit has written `recv_len` bytes (pcbRecvLength is
        // in/out: the length received) at the start of the allocation; the length is capped
        // at the capacity, so every byte below it is initialised.
        unsafe { recv.set_len(reported_len(recv_len, capacity)) };
        Ok(())
    }

    /// `SCardControl`: the answer in `recv` (written into its capacity; its length is the
    /// answer's).
    pub(crate) fn control(
        &self,
        handle: RawHandle,
        code: u32,
        send: &[u8],
        recv: &mut Vec<u8>,
    ) -> Result<(), ReturnCode> {
        let send_len = len_dword(send.len())?;
        recv.clear();
        let capacity = recv.capacity();
        let recv_cap = len_dword(capacity)?;
        let mut returned: Dword = 0;
        // SAFETY: `send` is readable for `send_len` bytes and `recv`'s allocation writable for
        // `recv_cap` (its capacity) bytes, both borrowed for the call; `returned` is a live
        // local.
        check(unsafe {
            (self.control)(
                handle,
                dword(code),
                send.as_ptr().cast::<c_void>(),
                send_len,
                recv.as_mut_ptr().cast::<c_void>(),
                recv_cap,
                &mut returned,
            )
        })?;
        // SAFETY: on success SCardControl has written `returned` bytes at the start of the
        // allocation; capped at the capacity, every byte below the new length is initialised.
        unsafe { recv.set_len(reported_len(returned, capacity)) };
        Ok(())
    }

    /// `SCardGetAttrib`: the attribute's length in `buf`.
    pub(crate) fn get_attrib(
        &self,
        handle: RawHandle,
        id: u32,
        buf: &mut [u8],
    ) -> Result<usize, ReturnCode> {
        let mut len = len_dword(buf.len())?;
        // SAFETY: `buf` is writable for `len` bytes and borrowed for the call; `len` is a
        // live local the library updates.
        check(unsafe { (self.get_attrib)(handle, dword(id), buf.as_mut_ptr(), &mut len) })?;
        Ok(reported_len(len, buf.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    fn layouts_match_pcsclite_on_linux_64() {
        // pcsclite.h: two pointers, three unsigned longs, 33 bytes, padded to 8.
        assert_eq!(std::mem::size_of::<ReaderStateC>(), 80);
        assert_eq!(std::mem::size_of::<IoRequest>(), 16);
        assert_eq!(std::mem::size_of::<Dword>(), 8);
        assert_eq!(std::mem::size_of::<Long>(), 8);
    }

    #[test]
    fn codes_from_long() {
        assert_eq!(check(0), Ok(()));
        #[cfg(not(target_os = "macos"))]
        assert_eq!(check(0x8010_0068), Err(ReturnCode::W_RESET_CARD));
    }

    #[test]
    fn missing_library_says_which() {
        let err = Api::load(&["/nonexistent/libpcsclite.so.1", "/nonexistent/b.so"]).unwrap_err();
        assert!(err.contains("/nonexistent/libpcsclite.so.1") && err.contains("b.so"), "{err}");
    }
}
