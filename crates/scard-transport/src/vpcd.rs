//! `vpcd:<host>:<port>` readers: our stack listens on a TCP port as vsmartcard's vpcd does,
//! and a virtual card (scard-sim's `scard sim`, vsmartcard's vicc, the Nitrokey emulators)
//! connects to it.
//!
//! Wire protocol (vsmartcard vpcd): every frame is a 2-byte big-endian length and the payload.
//! A 1-byte payload is a control message to the card: 00 power off, 01 power on, 02 reset (no
//! reply), 04 get ATR (the card replies with one frame holding the ATR). A longer payload is a
//! command APDU; the card replies with one frame holding the response APDU. A closed
//! connection (or a zero-length reply) means the card was removed. Every frame goes out in
//! one write with TCP_NODELAY, and TCP_QUICKACK is re-armed after every read, or each APDU
//! pays the ~45 ms of Nagle against delayed ACKs.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::command_name;
use crate::{
    Backend, CardTransport, DEFAULT_TIMEOUT, Disposition, Protocol, ReaderEvent, ReaderInfo,
    ReaderName, ShareMode, TransportError,
};

/// The frame format, shared with the card side (scard-sim's vpcd client).
pub mod frame {
    /// Largest payload: the length field has 16 bits.
    pub const MAX_PAYLOAD: usize = 0xFFFF;

    /// One frame: the 2-byte big-endian length and the payload; `None` when the payload is
    /// longer than [`MAX_PAYLOAD`].
    pub fn encode(payload: &[u8]) -> Option<Vec<u8>> {
        let len = u16::try_from(payload.len()).ok()?;
        let mut out = Vec::with_capacity(2 + payload.len());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(payload);
        Some(out)
    }

    /// The payload of the first complete frame in `buf` and the number of bytes it used.
    pub fn split(buf: &[u8]) -> Option<(&[u8], usize)> {
        let [hi, lo, rest @ ..] = buf else { return None };
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        rest.get(..len).map(|payload| (payload, 2 + len))
    }

    /// Control messages to the card.
    pub const POWER_OFF: u8 = 0x00;
    /// Power on.
    pub const POWER_ON: u8 = 0x01;
    /// Warm reset.
    pub const RESET: u8 = 0x02;
    /// Ask for the ATR.
    pub const GET_ATR: u8 = 0x04;
}

/// Re-arms TCP_QUICKACK (Linux clears it after use).
fn quickack(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_quickack(true);
}

/// A connected virtual card.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    atr: Vec<u8>,
    /// Incremented on every reset through any connection.
    resets: u64,
    /// Incremented on every card connection.
    generation: u64,
}

#[derive(Default)]
struct State {
    conn: Option<Conn>,
    generations: u64,
    events: VecDeque<ReaderEvent>,
    exclusive: bool,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One `vpcd:` reader: a listening socket and at most one connected card.
pub struct VpcdBackend {
    name: String,
    listener: TcpListener,
    wait: Duration,
    /// The deadline of each exchange: the first deadline of every connection, and the wait
    /// for a connecting card's ATR (at most 5 s).
    timeout: Duration,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for VpcdBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VpcdBackend").field("name", &self.name).finish()
    }
}

impl VpcdBackend {
    /// Listens on `host:port`; a connection waits up to `wait` for a card to connect.
    pub fn listen(host: &str, port: u16, wait: Duration) -> Result<Self, TransportError> {
        let requested = ReaderName::Vpcd { host: host.to_owned(), port }.to_string();
        let io = |source| TransportError::Io { reader: requested.clone(), source };
        let listener = TcpListener::bind((host, port)).map_err(io)?;
        listener.set_nonblocking(true).map_err(io)?;
        // Port 0 binds any free port: the name carries the real one.
        let bound = listener.local_addr().map_err(io)?.port();
        let name = ReaderName::Vpcd { host: host.to_owned(), port: bound }.to_string();
        Ok(Self {
            name,
            listener,
            wait,
            timeout: DEFAULT_TIMEOUT,
            state: Arc::new(Mutex::new(State::default())),
        })
    }

    /// Sets the deadline of each exchange (default [`DEFAULT_TIMEOUT`]): connections start
    /// with it, and a card that connects is given it (at most 5 s) to tell its ATR.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The reader name, `vpcd:<host>:<port>` (with the port actually bound).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bound port (useful when listening on port 0).
    pub fn port(&self) -> Option<u16> {
        self.listener.local_addr().ok().map(|a| a.port())
    }

    /// Accepts a pending card connection, powers the card on and reads its ATR.
    fn accept_pending(&self) -> Result<(), TransportError> {
        // A dead connection first: a card that went away frees the reader.
        self.check_alive();
        if lock(&self.state).conn.is_some() {
            return Ok(());
        }
        let stream = match self.listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(source) => return Err(TransportError::Io { reader: self.name.clone(), source }),
        };
        let io = |source| TransportError::Io { reader: self.name.clone(), source };
        stream.set_nonblocking(false).map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        let mut state = lock(&self.state);
        state.generations += 1;
        let mut conn = Conn {
            stream,
            buf: Vec::new(),
            atr: Vec::new(),
            resets: 0,
            generation: state.generations,
        };
        send(&self.name, &mut conn, &[frame::POWER_ON])?;
        // A card that connects and never tells its ATR is dropped at the deadline.
        let atr = get_atr(&self.name, &mut conn, self.timeout.min(Duration::from_secs(5)))?;
        conn.atr = atr.clone();
        state.conn = Some(conn);
        state.events.push_back(ReaderEvent::CardInserted { reader: self.name.clone(), atr });
        Ok(())
    }

    /// Drops the connection if the card closed it.
    fn check_alive(&self) {
        let mut state = lock(&self.state);
        let closed = match state.conn.as_ref() {
            Some(conn) => {
                let _ = conn.stream.set_nonblocking(true);
                let mut probe = [0u8; 1];
                let closed = matches!(conn.stream.peek(&mut probe), Ok(0))
                    || matches!(conn.stream.peek(&mut probe), Err(ref e) if e.kind() != ErrorKind::WouldBlock);
                let _ = conn.stream.set_nonblocking(false);
                closed
            }
            None => false,
        };
        if closed {
            state.conn = None;
            state.events.push_back(ReaderEvent::CardRemoved { reader: self.name.clone() });
        }
    }
}

fn send(reader: &str, conn: &mut Conn, payload: &[u8]) -> Result<(), TransportError> {
    let bytes = frame::encode(payload).ok_or_else(|| TransportError::Protocol {
        reader: reader.to_owned(),
        reason: format!("a {}-byte command does not fit a vpcd frame", payload.len()),
    })?;
    conn.stream.write_all(&bytes).map_err(|source| match source.kind() {
        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset => {
            TransportError::CardRemoved { reader: reader.to_owned() }
        }
        _ => TransportError::Io { reader: reader.to_owned(), source },
    })
}

/// Reads one frame, waiting at most `timeout`; `command` names what it answers.
fn receive(
    reader: &str,
    conn: &mut Conn,
    timeout: Duration,
    command: &str,
) -> Result<Vec<u8>, TransportError> {
    let deadline = Instant::now() + timeout;
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((payload, used)) = frame::split(&conn.buf) {
            let payload = payload.to_vec();
            conn.buf.drain(..used);
            if payload.is_empty() {
                // vpcd: a zero-length reply means the card is gone.
                return Err(TransportError::CardRemoved { reader: reader.to_owned() });
            }
            return Ok(payload);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(TransportError::Timeout {
                reader: reader.to_owned(),
                command: command.to_owned(),
                after: timeout,
            });
        }
        let _ = conn.stream.set_read_timeout(Some(left));
        match conn.stream.read(&mut chunk) {
            Ok(0) => return Err(TransportError::CardRemoved { reader: reader.to_owned() }),
            Ok(n) => {
                quickack(&conn.stream);
                conn.buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                return Err(TransportError::CardRemoved { reader: reader.to_owned() });
            }
            Err(source) => return Err(TransportError::Io { reader: reader.to_owned(), source }),
        }
    }
}

fn get_atr(reader: &str, conn: &mut Conn, timeout: Duration) -> Result<Vec<u8>, TransportError> {
    send(reader, conn, &[frame::GET_ATR])?;
    receive(reader, conn, timeout, "GET ATR")
}

impl Backend for VpcdBackend {
    fn prefix(&self) -> &'static str {
        "vpcd"
    }

    fn readers(&mut self) -> Result<Vec<ReaderInfo>, TransportError> {
        self.accept_pending()?;
        let atr = lock(&self.state).conn.as_ref().map(|c| c.atr.clone());
        Ok(vec![ReaderInfo { name: self.name.clone(), atr }])
    }

    fn connect(
        &mut self,
        name: &ReaderName,
        mode: ShareMode,
    ) -> Result<Option<Box<dyn CardTransport>>, TransportError> {
        if name.to_string() != self.name {
            return Ok(None);
        }
        let deadline = Instant::now() + self.wait;
        loop {
            self.accept_pending()?;
            if lock(&self.state).conn.is_some() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(TransportError::NoCard { reader: self.name.clone() });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut state = lock(&self.state);
        if state.exclusive {
            return Err(TransportError::Sharing { reader: self.name.clone() });
        }
        state.exclusive = mode == ShareMode::Exclusive;
        let Some(conn) = state.conn.as_ref() else {
            return Err(TransportError::NoCard { reader: self.name.clone() });
        };
        Ok(Some(Box::new(VpcdTransport {
            reader: self.name.clone(),
            state: Arc::clone(&self.state),
            atr: conn.atr.clone(),
            resets: conn.resets,
            generation: conn.generation,
            timeout: self.timeout,
            exclusive: mode == ShareMode::Exclusive,
            connected: true,
        })))
    }

    fn wait_events(&mut self, timeout: Duration) -> Result<Vec<ReaderEvent>, TransportError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.accept_pending()?;
            let events: Vec<ReaderEvent> = lock(&self.state).events.drain(..).collect();
            if !events.is_empty() || Instant::now() >= deadline {
                return Ok(events);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A connection to the card behind a `vpcd:` reader.
struct VpcdTransport {
    reader: String,
    state: Arc<Mutex<State>>,
    atr: Vec<u8>,
    resets: u64,
    generation: u64,
    timeout: Duration,
    exclusive: bool,
    connected: bool,
}

impl VpcdTransport {
    /// Runs `f` on the live connection after checking it is still our card.
    fn with_conn<T>(
        &mut self,
        f: impl FnOnce(&str, &mut Conn) -> Result<T, TransportError>,
    ) -> Result<T, TransportError> {
        let reader = self.reader.clone();
        if !self.connected {
            return Err(TransportError::NoCard { reader });
        }
        let mut state = lock(&self.state);
        let Some(conn) = state.conn.as_mut().filter(|c| c.generation == self.generation) else {
            return Err(TransportError::CardRemoved { reader });
        };
        if conn.resets != self.resets {
            self.resets = conn.resets;
            return Err(TransportError::CardReset { reader });
        }
        let result = f(&reader, conn);
        if matches!(result, Err(TransportError::CardRemoved { .. })) {
            if let Some(conn) = state.conn.take() {
                let _ = conn.stream.shutdown(Shutdown::Both);
            }
            state.events.push_back(ReaderEvent::CardRemoved { reader });
        }
        result
    }
}

impl CardTransport for VpcdTransport {
    fn reader(&self) -> &str {
        &self.reader
    }

    fn atr(&self) -> &[u8] {
        &self.atr
    }

    fn protocol(&self) -> Protocol {
        // vpcd reports T=1 to pcscd; the card gets whole APDUs.
        Protocol::T1
    }

    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let timeout = self.timeout;
        self.with_conn(|reader, conn| {
            send(reader, conn, command)?;
            let response = receive(reader, conn, timeout, &command_name(command))?;
            if response.len() < 2 {
                return Err(TransportError::Protocol {
                    reader: reader.to_owned(),
                    reason: format!(
                        "a {}-byte response to {} has no status word",
                        response.len(),
                        command_name(command)
                    ),
                });
            }
            Ok(response)
        })
    }

    fn begin_transaction(&mut self) -> Result<(), TransportError> {
        // One card, one socket: exchanges are serialised by the connection lock.
        self.with_conn(|_, _| Ok(()))
    }

    fn end_transaction(&mut self, disposition: Disposition) -> Result<(), TransportError> {
        match disposition {
            Disposition::Leave => Ok(()),
            other => self.reconnect(other),
        }
    }

    fn reconnect(&mut self, disposition: Disposition) -> Result<(), TransportError> {
        let timeout = self.timeout;
        let result = self.with_conn(|reader, conn| {
            match disposition {
                Disposition::Leave => {}
                Disposition::Reset | Disposition::Eject => send(reader, conn, &[frame::RESET])?,
                Disposition::Unpower => {
                    send(reader, conn, &[frame::POWER_OFF])?;
                    send(reader, conn, &[frame::POWER_ON])?;
                }
            }
            if disposition != Disposition::Leave {
                conn.resets += 1;
            }
            let atr = get_atr(reader, conn, timeout)?;
            conn.atr = atr.clone();
            Ok((conn.resets, atr))
        });
        match result {
            Ok((resets, atr)) => {
                self.resets = resets;
                self.atr = atr;
                Ok(())
            }
            Err(TransportError::CardReset { .. }) => self.reconnect(disposition),
            Err(err) => Err(err),
        }
    }

    fn disconnect(&mut self, disposition: Disposition) -> Result<(), TransportError> {
        if !self.connected {
            return Ok(());
        }
        let result = match disposition {
            Disposition::Leave => Ok(()),
            Disposition::Unpower | Disposition::Eject => self.with_conn(|reader, conn| {
                conn.resets += 1;
                send(reader, conn, &[frame::POWER_OFF])
            }),
            Disposition::Reset => self.reconnect(Disposition::Reset),
        };
        self.connected = false;
        if self.exclusive {
            lock(&self.state).exclusive = false;
        }
        result
    }

    fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }
}

impl Drop for VpcdTransport {
    fn drop(&mut self) {
        let _ = self.disconnect(Disposition::Leave);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;

    /// A minimal virtual card on the card side of the protocol: echoes the command length,
    /// stalls on INS 0xEE, hangs up on INS 0xDD.
    fn card(port: u16) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream.set_nodelay(true).unwrap();
            let mut controls = Vec::new();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            loop {
                let n = match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => return controls,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                while let Some((payload, used)) = frame::split(&buf) {
                    let payload = payload.to_vec();
                    buf.drain(..used);
                    match payload.as_slice() {
                        [c] => {
                            controls.push(*c);
                            if *c == frame::GET_ATR {
                                stream.write_all(&frame::encode(&[0x3B, 0x00]).unwrap()).unwrap();
                            }
                        }
                        [_, 0xEE, ..] => std::thread::sleep(Duration::from_millis(400)),
                        [_, 0xDD, ..] => return controls,
                        cmd => {
                            let reply = [u8::try_from(cmd.len()).unwrap(), 0x90, 0x00];
                            stream.write_all(&frame::encode(&reply).unwrap()).unwrap();
                        }
                    }
                }
            }
        })
    }

    #[test]
    fn card_connects_exchanges_resets_and_leaves() {
        let backend = VpcdBackend::listen("127.0.0.1", 0, Duration::from_secs(5)).unwrap();
        let port = backend.port().unwrap();
        let name = format!("vpcd:127.0.0.1:{port}");
        let mut registry = Registry::new();
        registry.add(Box::new(backend));
        let card = card(port);
        let mut t = registry.connect(Some(&name), ShareMode::Shared).unwrap();
        assert_eq!(t.atr(), [0x3B, 0x00]);
        assert_eq!(t.transmit(&[0, 0xA4, 4, 0, 1, 0xA0]).unwrap(), [6, 0x90, 0]);
        t.reconnect(Disposition::Reset).unwrap();
        // A stalled card is a timeout naming the reader and the command.
        t.set_timeout(Duration::from_millis(100));
        let err = t.transmit(&[0, 0xEE, 0, 0]).unwrap_err();
        assert!(matches!(err, TransportError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains(&name) && err.to_string().contains("INS EE"), "{err}");
        std::thread::sleep(Duration::from_millis(400));
        // The card hangs up: removal.
        t.set_timeout(Duration::from_secs(2));
        let _ = t.transmit(&[0, 0xDD, 0, 0]);
        let err = t.transmit(&[0, 0xB0, 0, 0]).unwrap_err();
        assert!(matches!(err, TransportError::CardRemoved { .. }), "{err}");
        let controls = card.join().unwrap();
        assert_eq!(controls, [frame::POWER_ON, frame::GET_ATR, frame::RESET, frame::GET_ATR]);
        let events = registry.wait_events(Duration::from_millis(50)).unwrap();
        assert!(matches!(events.first(), Some(ReaderEvent::CardInserted { .. })), "{events:?}");
        assert!(matches!(events.last(), Some(ReaderEvent::CardRemoved { .. })), "{events:?}");
    }

    #[test]
    fn no_card_within_the_wait() {
        let backend = VpcdBackend::listen("127.0.0.1", 0, Duration::from_millis(100)).unwrap();
        let name = backend.name().to_owned();
        let mut registry = Registry::new();
        registry.add(Box::new(backend));
        let (readers, _) = registry.readers();
        assert_eq!(readers, vec![ReaderInfo { name: name.clone(), atr: None }]);
        assert!(matches!(
            registry.connect(Some(&name), ShareMode::Shared),
            Err(TransportError::NoCard { .. })
        ));
    }

    #[test]
    fn frames() {
        assert_eq!(frame::split(&[0, 1, 4, 0, 2]), Some((&[4u8][..], 3)));
        assert_eq!(frame::split(&[0, 3, 1, 2]), None);
        assert_eq!(frame::split(&[0]), None);
        assert_eq!(frame::encode(&[0x90, 0x00]), Some(vec![0, 2, 0x90, 0x00]));
        assert_eq!(frame::encode(&vec![0; 65536]), None);
    }
}
