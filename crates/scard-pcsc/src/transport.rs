//! A connection to a card through PC/SC: [`PcscTransport`]. The blocking PC/SC calls run on
//! the connection's own thread ([`crate::worker`]) with their own context, so one stuck card
//! holds up nothing else, and every exchange has a deadline.

use std::sync::Arc;
use std::time::Duration;

use scard_iso7816::apdu::trace_command;
use scard_transport::{
    CardTransport, Disposition, Protocol, ShareMode, TransportError, command_name,
};
use zeroize::Zeroize;

use crate::code::{ReturnCode, map_error};
use crate::context::{Context, Handle};
use crate::ffi::Api;
use crate::part10::{self, Features, PinModify, PinVerify};
use crate::state::{
    LEAVE_CARD, PROTOCOL_T0, PROTOCOL_T1, disposition, protocol_of, protocol_value, share_mode,
};
use crate::worker::Worker;

/// Receive buffer of `SCardTransmit` / `SCardControl`: the largest response APDU, 65536
/// data bytes and SW1 SW2 (pcsclite.h's MAX_BUFFER_SIZE_EXTENDED, 65548, also covers the
/// command side).
const RECEIVE_BUFFER: usize = 65_538;

/// Largest attribute we read with `SCardGetAttrib` (pcsc-lite's limit is
/// MAX_BUFFER_SIZE, 264).
const ATTRIBUTE_BUFFER: usize = 264;

/// The connection state, owned by the connection's thread. `handle` is declared before
/// `ctx` so it is disconnected before the context is released.
struct Conn {
    handle: Handle,
    _ctx: Context,
    reader: String,
    share: u32,
    protocol: Protocol,
    buf: Vec<u8>,
}

/// What a (re)connection learnt: the ATR and the active protocol.
type Snapshot = (Vec<u8>, Protocol);

impl Conn {
    /// A new context and `SCardConnect` with T=0 or T=1, then `SCardStatus` for the ATR.
    fn open(
        api: Arc<Api>,
        reader: String,
        pcsc_name: &str,
        share: u32,
    ) -> Result<(Conn, Snapshot), TransportError> {
        let ctx = Context::establish(api)
            .map_err(|code| map_error(code, &reader, "SCardEstablishContext"))?;
        let (handle, active) = ctx
            .connect(pcsc_name, share, PROTOCOL_T0 | PROTOCOL_T1)
            .map_err(|code| map_error(code, &reader, "SCardConnect"))?;
        let protocol = protocol_of(active).ok_or_else(|| TransportError::Protocol {
            reader: reader.clone(),
            reason: format!("SCardConnect chose protocol 0x{active:X}, neither T=0 nor T=1"),
        })?;
        // Capacity only: SCardTransmit writes into it (ffi.rs), nothing to zero-fill first.
        let buf = Vec::with_capacity(RECEIVE_BUFFER);
        let mut conn = Conn { handle, _ctx: ctx, reader, share, protocol, buf };
        // Another application reset the card right after we connected: a new connection has
        // no state to lose (each notice is acknowledged and the status read again; a few
        // resets in a row are waited through).
        let mut snapshot = conn.status();
        for _ in 0..4 {
            if !matches!(snapshot, Err(TransportError::CardReset { .. })) {
                break;
            }
            snapshot = conn.status();
        }
        Ok((conn, snapshot?))
    }

    /// Maps a failed call; after `SCARD_W_RESET_CARD` first acknowledges the reset
    /// (`SCardReconnect` leaving the card as it is), so the next call works and the caller
    /// sees [`TransportError::CardReset`] exactly once.
    fn failed(&mut self, code: ReturnCode, call: &'static str) -> TransportError {
        if code == ReturnCode::W_RESET_CARD {
            tracing::debug!("{}: card reset by another application", self.reader);
            if let Err(err) = self.reconnect(LEAVE_CARD) {
                return err;
            }
        }
        map_error(code, &self.reader, call)
    }

    fn status(&mut self) -> Result<Snapshot, TransportError> {
        match self.handle.status() {
            Ok((_, active, atr)) => {
                self.protocol = protocol_of(active).unwrap_or(self.protocol);
                Ok((atr, self.protocol))
            }
            Err(code) => Err(self.failed(code, "SCardStatus")),
        }
    }

    fn reconnect(&mut self, initialization: u32) -> Result<Snapshot, TransportError> {
        match self.handle.reconnect(self.share, PROTOCOL_T0 | PROTOCOL_T1, initialization) {
            Ok(active) => {
                self.protocol = protocol_of(active).unwrap_or(self.protocol);
                match self.handle.status() {
                    Ok((_, _, atr)) => Ok((atr, self.protocol)),
                    Err(code) => Err(map_error(code, &self.reader, "SCardStatus")),
                }
            }
            Err(code) => Err(map_error(code, &self.reader, "SCardReconnect")),
        }
    }

    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        tracing::trace!("{} >> {}", self.reader, trace_command(command));
        if let Err(code) =
            self.handle.transmit(protocol_value(self.protocol), command, &mut self.buf)
        {
            return Err(self.failed(code, "SCardTransmit"));
        }
        let response = self.take_answer();
        let n = response.len();
        match response.as_slice() {
            [.., sw1, sw2] => {
                // Response data may be secret (decrypted plaintext): only its length is traced.
                tracing::trace!("{} << {} byte(s) {sw1:02X}{sw2:02X}", self.reader, n - 2);
                Ok(response)
            }
            _ => Err(TransportError::Protocol {
                reader: self.reader.clone(),
                reason: format!("a {n}-byte response has no status word"),
            }),
        }
    }

    fn control(&mut self, code: u32, data: &[u8]) -> Result<Vec<u8>, TransportError> {
        match self.handle.control(code, data, &mut self.buf) {
            Ok(()) => Ok(self.take_answer()),
            Err(rc) => Err(self.failed(rc, "SCardControl")),
        }
    }

    /// The answer in the receive buffer, copied out; the buffer's copy is zeroed (an answer
    /// may be decrypted data or a shared secret, which must not stay behind in the
    /// connection's buffer).
    fn take_answer(&mut self) -> Vec<u8> {
        let answer = self.buf.clone();
        self.buf.as_mut_slice().zeroize();
        self.buf.clear();
        answer
    }

    fn attribute(&mut self, id: u32) -> Result<Vec<u8>, TransportError> {
        let mut buf = [0u8; ATTRIBUTE_BUFFER];
        match self.handle.get_attrib(id, &mut buf) {
            Ok(n) => Ok(buf.get(..n).unwrap_or_default().to_vec()),
            Err(rc) => Err(self.failed(rc, "SCardGetAttrib")),
        }
    }
}

/// A connection to a card in a PC/SC reader (`pcsc:<reader name>`). Every call has the
/// deadline set with [`CardTransport::set_timeout`] (default [`scard_transport::DEFAULT_TIMEOUT`]); after a
/// timeout the connection is unusable until [`CardTransport::reconnect`], which opens a new
/// one.
pub struct PcscTransport {
    reader: String,
    pcsc_name: String,
    api: Arc<Api>,
    share: ShareMode,
    worker: Option<Worker<Conn>>,
    atr: Vec<u8>,
    protocol: Protocol,
    timeout: Duration,
    /// A reset notice that came with the end of a transaction (see
    /// [`CardTransport::end_transaction`]), reported by the next call.
    reset_pending: bool,
}

impl std::fmt::Debug for PcscTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcscTransport")
            .field("reader", &self.reader)
            .field("share", &self.share)
            .field("protocol", &self.protocol)
            .field("atr", &scard_iso7816::hex::Hex(&self.atr))
            .field("worker", &self.worker)
            .finish()
    }
}

impl PcscTransport {
    /// Connects to the PC/SC reader `pcsc_name`; `timeout` is the deadline of the connection
    /// and of every exchange until [`CardTransport::set_timeout`] (the backend passes
    /// [`scard_transport::DEFAULT_TIMEOUT`] unless told otherwise).
    pub(crate) fn open(
        api: Arc<Api>,
        pcsc_name: &str,
        share: ShareMode,
        timeout: Duration,
    ) -> Result<PcscTransport, TransportError> {
        let reader = format!("pcsc:{pcsc_name}");
        let (worker, (atr, protocol)) = spawn(&api, &reader, pcsc_name, share, timeout)?;
        tracing::debug!("{reader}: connected ({protocol:?}, {share:?})");
        Ok(PcscTransport {
            reader,
            pcsc_name: pcsc_name.to_owned(),
            api,
            share,
            worker: Some(worker),
            atr,
            protocol,
            timeout,
            reset_pending: false,
        })
    }

    /// The reset notice kept from the end of a transaction, once.
    fn take_reset_notice(&mut self) -> Result<(), TransportError> {
        if std::mem::take(&mut self.reset_pending) {
            return Err(TransportError::CardReset { reader: self.reader.clone() });
        }
        Ok(())
    }

    /// The PC/SC reader name (without the `pcsc:` prefix).
    pub fn pcsc_name(&self) -> &str {
        &self.pcsc_name
    }

    /// Runs `job` on the connection's thread within the deadline.
    fn call<T, F>(&mut self, command: impl FnOnce() -> String, job: F) -> Result<T, TransportError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn) -> Result<T, TransportError> + Send + 'static,
    {
        let Some(worker) = self.worker.as_mut() else {
            return Err(TransportError::NoCard { reader: self.reader.clone() });
        };
        let result = worker.call(command, self.timeout, job);
        if matches!(result, Err(TransportError::CardReset { .. })) {
            // The thread already reconnected; take the card's new ATR.
            self.refresh();
        }
        result
    }

    fn refresh(&mut self) {
        if let Some(worker) = self.worker.as_mut() {
            match worker.call(|| "SCardStatus".to_owned(), self.timeout, Conn::status) {
                Ok((atr, protocol)) => {
                    self.atr = atr;
                    self.protocol = protocol;
                }
                Err(err) => {
                    tracing::debug!("{}: reading the ATR after a reset: {err}", self.reader)
                }
            }
        }
    }

    /// A reader attribute (`SCardGetAttrib`, reader.h `SCARD_ATTR_*`).
    pub fn attribute(&mut self, id: u32) -> Result<Vec<u8>, TransportError> {
        self.call(|| format!("SCardGetAttrib 0x{id:08X}"), move |c| c.attribute(id))
    }

    /// The reader's PC/SC part 10 features (see [`part10::features`]).
    pub fn features(&mut self) -> Result<Features, TransportError> {
        part10::features(self)
    }

    /// VERIFY with the PIN entered on the reader's pin-pad (see [`part10::verify_pin_direct`]).
    pub fn verify_pin_direct(&mut self, request: &PinVerify) -> Result<Vec<u8>, TransportError> {
        let features = self.features()?;
        part10::verify_pin_direct(self, &features, request)
    }

    /// CHANGE REFERENCE DATA with the PINs entered on the reader's pin-pad (see
    /// [`part10::modify_pin_direct`]).
    pub fn modify_pin_direct(&mut self, request: &PinModify) -> Result<Vec<u8>, TransportError> {
        let features = self.features()?;
        part10::modify_pin_direct(self, &features, request)
    }
}

/// Starts a connection thread that opens the connection.
fn spawn(
    api: &Arc<Api>,
    reader: &str,
    pcsc_name: &str,
    share: ShareMode,
    timeout: Duration,
) -> Result<(Worker<Conn>, Snapshot), TransportError> {
    let (api, owned_reader, name) = (Arc::clone(api), reader.to_owned(), pcsc_name.to_owned());
    Worker::spawn(reader, "SCardConnect", timeout, move || {
        Conn::open(api, owned_reader, &name, share_mode(share))
    })
}

impl CardTransport for PcscTransport {
    fn reader(&self) -> &str {
        &self.reader
    }

    fn atr(&self) -> &[u8] {
        &self.atr
    }

    fn protocol(&self) -> Protocol {
        self.protocol
    }

    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.take_reset_notice()?;
        let owned = command.to_vec();
        self.call(|| command_name(command), move |c| c.transmit(&owned))
    }

    fn begin_transaction(&mut self) -> Result<(), TransportError> {
        self.take_reset_notice()?;
        self.call(
            || "BEGIN TRANSACTION (SCardBeginTransaction)".to_owned(),
            |c| match c.handle.begin_transaction() {
                Ok(()) => Ok(()),
                Err(code) => Err(c.failed(code, "SCardBeginTransaction")),
            },
        )
    }

    fn end_transaction(&mut self, how: Disposition) -> Result<(), TransportError> {
        let value = disposition(how);
        let noticed = self.call(
            || "END TRANSACTION (SCardEndTransaction)".to_owned(),
            move |c| match c.handle.end_transaction(value) {
                Ok(()) => Ok(false),
                // pcsc-lite looks for a reset by another application before it ends the
                // transaction, and keeps the transaction when it reports one (winscard.c
                // SCardEndTransaction): a reset from before our transaction began (its lock
                // was taken after the check), with no command of ours in between to hear of
                // it. The notice is acknowledged, the transaction ended again, and the
                // notice reported by our next call.
                Err(code) if code == ReturnCode::W_RESET_CARD => {
                    let _ = c.failed(code, "SCardEndTransaction");
                    match c.handle.end_transaction(value) {
                        Ok(()) => Ok(true),
                        Err(code) => Err(c.failed(code, "SCardEndTransaction")),
                    }
                }
                Err(code) => Err(c.failed(code, "SCardEndTransaction")),
            },
        )?;
        if noticed {
            self.reset_pending = true;
        }
        if how != Disposition::Leave || noticed {
            self.refresh();
        }
        Ok(())
    }

    fn reconnect(&mut self, how: Disposition) -> Result<(), TransportError> {
        if self.worker.as_ref().is_none_or(Worker::is_stuck) {
            // After a timeout (or a disconnect) a new connection replaces the old one; the
            // old thread releases its own when its stuck call returns.
            let (worker, _) =
                spawn(&self.api, &self.reader, &self.pcsc_name, self.share, self.timeout)?;
            self.worker = Some(worker);
        }
        let value = disposition(how);
        let (atr, protocol) =
            self.call(|| "RECONNECT (SCardReconnect)".to_owned(), move |c| c.reconnect(value))?;
        self.atr = atr;
        self.protocol = protocol;
        Ok(())
    }

    fn disconnect(&mut self, how: Disposition) -> Result<(), TransportError> {
        let Some(worker) = self.worker.as_mut() else { return Ok(()) };
        if worker.is_stuck() {
            self.worker = None;
            return Ok(());
        }
        let value = disposition(how);
        let reader = self.reader.clone();
        let result = worker.call(
            || "DISCONNECT (SCardDisconnect)".to_owned(),
            self.timeout,
            move |c| {
                c.handle
                    .disconnect(value)
                    .map_err(|code| map_error(code, &reader, "SCardDisconnect"))
            },
        );
        self.worker = None;
        result
    }

    fn control(&mut self, code: u32, data: &[u8]) -> Result<Vec<u8>, TransportError> {
        let owned = data.to_vec();
        self.call(|| format!("SCardControl 0x{code:08X}"), move |c| c.control(code, &owned))
    }

    fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }
}
