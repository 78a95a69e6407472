//! The card side of vsmartcard's vpcd protocol: the card is the TCP client. Every frame is a
//! 2-byte big-endian length and the payload. A 1-byte payload is a control message (00 power
//! off, 01 power on, 02 reset: no reply; 04 get ATR: reply with the ATR); a longer one is a
//! command APDU, answered with one frame holding the response APDU.
//!
//! Latency: the reader side writes length and body with separate send() calls and answers are
//! small, so without TCP_NODELAY (Nagle) and TCP_QUICKACK re-armed after every read (Linux
//! clears it) each APDU waits ~45 ms for a delayed ACK.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Control messages.
pub const POWER_OFF: u8 = 0x00;
/// Power on.
pub const POWER_ON: u8 = 0x01;
/// Warm reset.
pub const RESET: u8 = 0x02;
/// The reader asks for the ATR.
pub const GET_ATR: u8 = 0x04;

/// A connection to a vpcd listener.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    buf: Vec<u8>,
}

impl Connection {
    /// Connects to `addr` (HOST:PORT), trying again every 100 ms for up to `wait`; `None`
    /// when nobody listened in time.
    pub fn connect(addr: &str, wait: Duration) -> Result<Option<Self>, String> {
        let deadline = Instant::now() + wait;
        loop {
            for peer in crate::resolve(addr)? {
                let left = deadline.saturating_duration_since(Instant::now());
                let timeout = left.clamp(Duration::from_millis(100), Duration::from_secs(2));
                if let Ok(stream) = TcpStream::connect_timeout(&peer, timeout) {
                    stream.set_nodelay(true).map_err(|e| format!("TCP_NODELAY: {e}"))?;
                    let conn = Self { stream, peer, buf: Vec::new() };
                    conn.quickack();
                    return Ok(Some(conn));
                }
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The listener's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn quickack(&self) {
        let _ = socket2::SockRef::from(&self.stream).set_quickack(true);
    }

    /// The next frame's payload; `None` when the reader closed the connection.
    pub fn read_frame(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut chunk = [0u8; 4096];
        loop {
            if let [hi, lo, rest @ ..] = self.buf.as_slice() {
                let len = usize::from(u16::from_be_bytes([*hi, *lo]));
                if rest.len() >= len {
                    let payload = rest[..len].to_vec();
                    self.buf.drain(..2 + len);
                    return Ok(Some(payload));
                }
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => {
                    self.quickack();
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends one frame, in one write.
    pub fn write_frame(&mut self, payload: &[u8]) -> io::Result<()> {
        let len = u16::try_from(payload.len())
            .map_err(|_| io::Error::new(ErrorKind::InvalidInput, "frame longer than 65535"))?;
        let mut frame = Vec::with_capacity(2 + payload.len());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame)
    }
}
