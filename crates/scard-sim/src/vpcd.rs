//! Attaching a simulated card to pcscd through vsmartcard's vpcd reader driver.
//!
//! The card is a TCP client of vpcd (which pcscd loads; it listens on 35963 for "Virtual PCD
//! 00 00" and 35964 for "Virtual PCD 00 01"). Wire protocol (vsmartcard's vpcd.c): every frame
//! is a 2-byte big-endian length and the payload. A 1-byte payload is a control byte: 00 power
//! off, 01 power on, 02 reset (no reply), 04 get ATR (answered with one frame holding the ATR).
//! A longer payload is a command APDU, answered with one frame holding the response APDU.
//! pcscd polls with 04 about every 400 ms, so the card answers whenever asked and never sends
//! anything unasked. Closing the connection removes the card.
//!
//! Latency: Debian's vpcd writes the length and the body with two `send()` calls, so a card
//! that lets Nagle's algorithm and delayed ACKs interact pays about 45 ms per APDU. The
//! socket therefore sets TCP_NODELAY, and re-arms TCP_QUICKACK after every read (Linux clears
//! it), and every reply goes out in one write.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use scard_iso7816::apdu::trace_command;
use scard_iso7816::hex::Hex;
use scard_transport::vpcd::frame;

use crate::{Card, SimError};

/// Default vpcd port (slot 0, "Virtual PCD 00 00").
pub const DEFAULT_PORT: u16 = 35963;

/// How often a blocked read wakes up to look at the stop flag.
const POLL: Duration = Duration::from_millis(200);

/// Why [`serve`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The stop flag was raised; the connection was closed (the card counts as removed).
    Stopped,
    /// vpcd closed the connection (pcscd stopped or restarted).
    Disconnected,
}

/// What a session did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    /// Command APDUs processed.
    pub apdus: u64,
    /// Control messages received (power on/off, reset, get ATR).
    pub controls: u64,
    /// Time spent inside the card's APDU processor.
    pub processing: Duration,
}

/// Connects to vpcd at `addr` (`host:port`), retrying until `wait` has passed (pcscd may be
/// starting). Sets TCP_NODELAY.
pub fn connect(addr: &str, wait: Duration) -> Result<TcpStream, SimError> {
    let vpcd_err = |source| SimError::Vpcd { addr: addr.to_owned(), source };
    let deadline = Instant::now() + wait;
    loop {
        let attempt = addr
            .to_socket_addrs()
            .map_err(vpcd_err)?
            .next()
            .ok_or_else(|| vpcd_err(std::io::Error::new(ErrorKind::NotFound, "no address")))
            .and_then(|sock| {
                TcpStream::connect_timeout(&sock, Duration::from_secs(2)).map_err(vpcd_err)
            });
        match attempt {
            Ok(stream) => {
                stream.set_nodelay(true).map_err(vpcd_err)?;
                stream.set_read_timeout(Some(POLL)).map_err(vpcd_err)?;
                return Ok(stream);
            }
            Err(err) if Instant::now() >= deadline => return Err(err),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Serves `card` on a connected vpcd stream until vpcd disconnects or `stop` is raised.
pub fn serve(
    card: &mut dyn Card,
    mut stream: TcpStream,
    addr: &str,
    stop: &AtomicBool,
) -> Result<(End, Stats), SimError> {
    let io_err = |source| SimError::Vpcd { addr: addr.to_owned(), source };
    let mut stats = Stats::default();
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 65536 + 2];
    loop {
        if stop.load(Ordering::SeqCst) {
            let _ = stream.shutdown(Shutdown::Both);
            return Ok((End::Stopped, stats));
        }
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Ok((End::Disconnected, stats)),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                return Ok((End::Disconnected, stats));
            }
            Err(e) => return Err(io_err(e)),
        };
        // Linux clears TCP_QUICKACK after use: re-arm it so the next segment is ACKed at once.
        let _ = socket2::SockRef::from(&stream).set_quickack(true);
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        while let Some((payload, used)) = frame::split(&buf) {
            let reply = handle(card, payload, &mut stats);
            buf.drain(..used);
            if let Some(reply) = reply.and_then(|r| frame::encode(&r)) {
                stream.write_all(&reply).map_err(io_err)?;
            }
        }
    }
}

/// Handles one frame's payload; `Some(reply)` when vpcd expects an answer.
fn handle(card: &mut dyn Card, payload: &[u8], stats: &mut Stats) -> Option<Vec<u8>> {
    match payload {
        [] => None,
        [control] => {
            stats.controls += 1;
            match *control {
                frame::POWER_OFF => {
                    tracing::debug!("vpcd: power off");
                    card.power_off();
                    None
                }
                frame::POWER_ON => {
                    tracing::debug!("vpcd: power on");
                    card.power_on();
                    None
                }
                frame::RESET => {
                    tracing::debug!("vpcd: reset");
                    card.reset();
                    None
                }
                frame::GET_ATR => Some(card.atr().to_vec()),
                other => {
                    tracing::warn!("vpcd: unknown control byte {other:02X} ignored");
                    None
                }
            }
        }
        command => {
            stats.apdus += 1;
            tracing::trace!(">> {}", trace_command(command));
            let started = Instant::now();
            let answer = card.answer(command);
            stats.processing += started.elapsed();
            let Some(mut response) = answer else {
                // A stalled card: no reply; the reader's deadline decides what happens next.
                tracing::trace!("<< (no answer)");
                return None;
            };
            if response.len() > frame::MAX_PAYLOAD {
                // 65536 data bytes and SW1 SW2 do not fit a vpcd frame.
                tracing::warn!("vpcd: response of {} bytes does not fit a frame", response.len());
                response = scard_iso7816::StatusWord::WRONG_LENGTH.to_bytes().to_vec();
            }
            let sw_at = response.len().saturating_sub(2);
            tracing::trace!(
                "<< [{} bytes] {}",
                sw_at,
                Hex(response.get(sw_at..).unwrap_or_default())
            );
            Some(response)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::Arc;

    /// A card that answers every command with its length and 9000, and counts power cycles.
    struct EchoCard {
        power_ons: u32,
    }

    impl Card for EchoCard {
        fn family(&self) -> crate::Family {
            crate::Family::Piv
        }

        fn atr(&self) -> &[u8] {
            &[0x3B, 0x02, 0x14, 0x50]
        }

        fn power_on(&mut self) {
            self.power_ons += 1;
        }

        fn process(&mut self, command: &[u8]) -> Vec<u8> {
            vec![u8::try_from(command.len()).unwrap_or(0xFF), 0x90, 0x00]
        }

        fn save_state(&self) -> serde_json::Value {
            serde_json::json!({ "power_ons": self.power_ons })
        }
    }

    /// A stand-in for vpcd: accepts the card, sends frames the way vpcd.c does (length and
    /// body in two writes), reads replies.
    #[test]
    fn speaks_the_vpcd_protocol() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_card = Arc::clone(&stop);
        let addr_card = addr.clone();
        let card_thread = std::thread::spawn(move || {
            let mut card = EchoCard { power_ons: 0 };
            let stream = connect(&addr_card, Duration::from_secs(5)).unwrap();
            let served = serve(&mut card, stream, &addr_card, &stop_card).unwrap();
            (served, card.power_ons)
        });
        let (mut vpcd, _) = listener.accept().unwrap();
        let mut send = |payload: &[u8]| {
            vpcd.write_all(&u16::try_from(payload.len()).unwrap().to_be_bytes()).unwrap();
            vpcd.write_all(payload).unwrap();
        };
        send(&[0x04]);
        send(&[0x01]);
        send(&[0x04]);
        // SELECT PIV (SP 800-73-4 Pt 2 §3.1.1).
        send(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00]);
        let mut read_frame = || {
            let mut len = [0u8; 2];
            vpcd.read_exact(&mut len).unwrap();
            let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
            vpcd.read_exact(&mut body).unwrap();
            body
        };
        let atr1 = read_frame();
        let atr2 = read_frame();
        assert_eq!(atr1, atr2);
        assert_eq!(atr1, [0x3B, 0x02, 0x14, 0x50]);
        assert_eq!(read_frame(), [11, 0x90, 0x00]);
        stop.store(true, Ordering::SeqCst);
        let ((end, stats), power_ons) = card_thread.join().unwrap();
        assert_eq!(end, End::Stopped);
        assert_eq!(power_ons, 1);
        assert_eq!((stats.apdus, stats.controls), (1, 3));
        // The card closed the connection: vpcd sees end of stream (card removed).
        let mut rest = Vec::new();
        assert_eq!(vpcd.read_to_end(&mut rest).unwrap(), 0);
    }
}
