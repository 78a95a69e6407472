//! The safe layer over [`crate::ffi`]: a PC/SC context (released on drop) and a card handle
//! (disconnected on drop). Errors are raw [`ReturnCode`]s; the callers map them once.

use std::ffi::CString;
use std::sync::Arc;

use crate::code::ReturnCode;
use crate::ffi::{Api, RawContext, RawHandle, ReaderStateIo};
use crate::state::{LEAVE_CARD, PNP_NOTIFICATION, ReaderState, SCOPE_SYSTEM, parse_multi_string};

struct ContextInner {
    api: Arc<Api>,
    raw: RawContext,
}

impl Drop for ContextInner {
    fn drop(&mut self) {
        if let Err(code) = self.api.release_context(self.raw) {
            tracing::debug!("SCardReleaseContext: {code}");
        }
    }
}

/// An established PC/SC context. Clones share it; it is released when the last clone goes.
#[derive(Clone)]
pub(crate) struct Context {
    inner: Arc<ContextInner>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("raw", &self.inner.raw).finish()
    }
}

/// One reader's state as `SCardGetStatusChange` reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Observed {
    pub(crate) state: ReaderState,
    pub(crate) atr: Vec<u8>,
}

impl Context {
    /// `SCardEstablishContext(SCARD_SCOPE_SYSTEM)`.
    pub(crate) fn establish(api: Arc<Api>) -> Result<Context, ReturnCode> {
        let raw = api.establish_context(SCOPE_SYSTEM)?;
        Ok(Context { inner: Arc::new(ContextInner { api, raw }) })
    }

    /// `SCardIsValidContext` (a local check in pcsc-lite).
    pub(crate) fn is_valid(&self) -> bool {
        self.inner.api.is_valid_context(self.inner.raw)
    }

    /// The reader names (empty when pcsc-lite has none).
    pub(crate) fn list_readers(&self) -> Result<Vec<String>, ReturnCode> {
        match self.inner.api.list_readers(self.inner.raw) {
            Ok(bytes) => Ok(parse_multi_string(&bytes)),
            Err(ReturnCode::E_NO_READERS_AVAILABLE) => Ok(Vec::new()),
            Err(code) => Err(code),
        }
    }

    /// `SCardGetStatusChange` over `readers` (names with the state we know). Returns whether
    /// something changed (`false` when the timeout passed); `Err(SCARD_E_CANCELLED)` after
    /// [`Canceller::cancel`].
    pub(crate) fn status_change(
        &self,
        timeout_ms: u32,
        readers: &mut [ReaderStateIo],
    ) -> Result<bool, ReturnCode> {
        if readers.is_empty() {
            return Ok(false);
        }
        match self.inner.api.get_status_change(self.inner.raw, timeout_ms, readers) {
            Ok(()) => Ok(true),
            Err(ReturnCode::E_TIMEOUT) => Ok(false),
            Err(code) => Err(code),
        }
    }

    /// The current state of `names` (`SCARD_STATE_UNAWARE`, no waiting), and of the PnP
    /// pseudo-reader. Names that cannot be C strings are reported as unknown readers.
    pub(crate) fn snapshot(
        &self,
        names: &[String],
    ) -> Result<(Vec<(String, Observed)>, ReaderState), ReturnCode> {
        let mut io: Vec<ReaderStateIo> = names.iter().filter_map(|n| state_io(n, 0)).collect();
        io.extend(state_io(PNP_NOTIFICATION, 0));
        self.status_change(0, &mut io)?;
        let pnp = io.pop().map(|r| ReaderState(r.event)).unwrap_or(ReaderState::UNKNOWN);
        let readers = io
            .into_iter()
            .map(|r| {
                (
                    r.name.to_string_lossy().into_owned(),
                    Observed { state: ReaderState(r.event), atr: r.atr },
                )
            })
            .collect();
        Ok((readers, pnp))
    }

    /// `SCardConnect` to `reader` with `dwShareMode` `share` and `dwPreferredProtocols`
    /// `preferred`: the handle and the active protocol.
    pub(crate) fn connect(
        &self,
        reader: &str,
        share: u32,
        preferred: u32,
    ) -> Result<(Handle, u32), ReturnCode> {
        let name = CString::new(reader).map_err(|_| ReturnCode::E_UNKNOWN_READER)?;
        let (raw, active) = self.inner.api.connect(self.inner.raw, &name, share, preferred)?;
        Ok((Handle { api: Arc::clone(&self.inner.api), raw, open: true }, active))
    }

    /// `SCardCancel`.
    pub(crate) fn cancel(&self) -> Result<(), ReturnCode> {
        self.inner.api.cancel(self.inner.raw)
    }
}

/// A `SCardGetStatusChange` entry for `name`, unless the name has a NUL byte.
pub(crate) fn state_io(name: &str, current: u32) -> Option<ReaderStateIo> {
    let name = CString::new(name).ok()?;
    Some(ReaderStateIo { name, current, event: 0, atr: Vec::new() })
}

/// A connection to a card (`SCARDHANDLE`), disconnected (leaving the card) on drop unless
/// [`Handle::disconnect`] was called.
pub(crate) struct Handle {
    api: Arc<Api>,
    raw: RawHandle,
    open: bool,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").field("raw", &self.raw).field("open", &self.open).finish()
    }
}

impl Handle {
    pub(crate) fn reconnect(
        &mut self,
        share: u32,
        preferred: u32,
        initialization: u32,
    ) -> Result<u32, ReturnCode> {
        self.api.reconnect(self.raw, share, preferred, initialization)
    }

    /// `SCardDisconnect`; the handle is closed whatever the outcome.
    pub(crate) fn disconnect(&mut self, disposition: u32) -> Result<(), ReturnCode> {
        if !self.open {
            return Ok(());
        }
        self.open = false;
        self.api.disconnect(self.raw, disposition)
    }

    pub(crate) fn begin_transaction(&mut self) -> Result<(), ReturnCode> {
        self.api.begin_transaction(self.raw)
    }

    pub(crate) fn end_transaction(&mut self, disposition: u32) -> Result<(), ReturnCode> {
        self.api.end_transaction(self.raw, disposition)
    }

    /// The state flags, the active protocol and the ATR.
    pub(crate) fn status(&mut self) -> Result<(u32, u32, Vec<u8>), ReturnCode> {
        self.api.status(self.raw)
    }

    pub(crate) fn transmit(
        &mut self,
        protocol: u32,
        send: &[u8],
        recv: &mut Vec<u8>,
    ) -> Result<(), ReturnCode> {
        self.api.transmit(self.raw, protocol, send, recv)
    }

    pub(crate) fn control(
        &mut self,
        code: u32,
        send: &[u8],
        recv: &mut Vec<u8>,
    ) -> Result<(), ReturnCode> {
        self.api.control(self.raw, code, send, recv)
    }

    pub(crate) fn get_attrib(&mut self, id: u32, buf: &mut [u8]) -> Result<usize, ReturnCode> {
        self.api.get_attrib(self.raw, id, buf)
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Err(code) = self.disconnect(LEAVE_CARD) {
            tracing::debug!("SCardDisconnect on drop: {code}");
        }
    }
}
