//! Serving a simulated card to QEMU's `ccid-card-passthru` device: the client (card provider)
//! side of the VSCard protocol (libcacard's vscard_common.h, protocol version 0.0.2), over a
//! unix socket or TCP.
//!
//! QEMU's `usb-ccid` presents a TPDU-level reader that only speaks T=0 and passes the
//! abData of each XfrBlock to the card verbatim (../shared/qemu-ccid.md §5). The card therefore
//! has to behave as a T=0 card, which [`T0Adapter`] does in front of any [`Card`]: response
//! data of a case 3 or 4 command waits behind `61xx` for GET RESPONSE, and a case 2 command
//! whose Le is not the length of the data is answered `6Cxx` (ISO/IEC 7816-3 §10.3.3, §12.2).
//! The ATR QEMU gets announces T=0 (see [`t0_atr`]).
//!
//! Wire format: every message is a 12-byte header of three big-endian u32 (type, reader id,
//! payload length) and the payload ([`Header`]). The provider sends Init and ReaderAdd; QEMU
//! answers with Init and Error(SUCCESS) carrying the reader id; the provider sends the ATR
//! (card inserted), then answers every APDU message with one APDU message, in order. CardRemove
//! removes the card. QEMU sends nothing on the guest's power on, power off or reset.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use scard_iso7816::apdu::trace_command;
use scard_iso7816::atr::Atr;
use scard_iso7816::hex::Hex;
use zeroize::Zeroizing;

use crate::{Card, SimError};

/// The header's length: type, reader id and payload length, each a big-endian u32.
pub const HEADER_LEN: usize = 12;
/// Init's magic, "VSCD" (sent as these bytes, not byte-swapped).
pub const MAGIC: [u8; 4] = *b"VSCD";
/// Protocol version 0.0.2 (`major << 21 | middle << 10 | minor`).
pub const VERSION: u32 = 2;
/// The reader id of messages about no reader in particular.
pub const UNDEFINED_READER: u32 = 0xFFFF_FFFF;
/// Largest payload accepted (QEMU buffers 64 KiB; an APDU is at most 65544 bytes).
pub const MAX_PAYLOAD: usize = 1 << 20;

/// How often a blocked read wakes up to look at the stop flag and the idle timer.
const POLL: Duration = Duration::from_millis(50);

/// ISO/IEC 7816-4 §7.6.1 GET RESPONSE.
const INS_GET_RESPONSE: u8 = 0xC0;

/// A VSCard message type (vscard_common.h `VSCMsgType`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageType(pub u32);

impl MessageType {
    /// Init: magic, version, capabilities (both directions).
    pub const INIT: Self = Self(1);
    /// Error: a u32 code; the acknowledgement of ReaderAdd, ATR, CardRemove, ReaderRemove.
    pub const ERROR: Self = Self(2);
    /// ReaderAdd: the reader's name (provider to QEMU).
    pub const READER_ADD: Self = Self(3);
    /// ReaderRemove (provider to QEMU).
    pub const READER_REMOVE: Self = Self(4);
    /// ATR: a card was inserted or reset (provider to QEMU).
    pub const ATR: Self = Self(5);
    /// CardRemove (provider to QEMU).
    pub const CARD_REMOVE: Self = Self(6);
    /// APDU: a command APDU (QEMU to provider) or its response (provider to QEMU).
    pub const APDU: Self = Self(7);
    /// Flush: answer FlushComplete once every APDU is answered (QEMU to provider).
    pub const FLUSH: Self = Self(8);
    /// FlushComplete (provider to QEMU).
    pub const FLUSH_COMPLETE: Self = Self(9);

    /// The name of this type, when it has one.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "Init",
            2 => "Error",
            3 => "ReaderAdd",
            4 => "ReaderRemove",
            5 => "ATR",
            6 => "CardRemove",
            7 => "APDU",
            8 => "Flush",
            9 => "FlushComplete",
            _ => return None,
        })
    }
}

impl std::fmt::Debug for MessageType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => write!(f, "MessageType({} {name})", self.0),
            None => write!(f, "MessageType({:#X})", self.0),
        }
    }
}

/// Error codes (vscard_common.h `VSCErrorCode`).
pub mod code {
    /// Success: the acknowledgement.
    pub const SUCCESS: u32 = 0;
    /// General error (QEMU: an ATR it rejects, an unexpected message).
    pub const GENERAL_ERROR: u32 = 1;
    /// No more readers.
    pub const CANNOT_ADD_MORE_READERS: u32 = 2;
    /// A card is in the reader already.
    pub const CARD_ALREADY_INSERTED: u32 = 3;
}

/// A message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The message type.
    pub kind: MessageType,
    /// The reader id ([`UNDEFINED_READER`] when none).
    pub reader: u32,
    /// The payload length; computed from the payload when encoding.
    pub length: u32,
}

/// Encodes one message. Payloads are ours and short (an APDU response is at most 65538
/// bytes), so the length always fits.
pub fn encode(kind: MessageType, reader: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    // Offset 0 type, 4 reader id, 8 length: big-endian u32 each.
    out.extend_from_slice(&kind.0.to_be_bytes());
    out.extend_from_slice(&reader.to_be_bytes());
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A message read from the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// Its header.
    pub header: Header,
    /// Its payload.
    pub payload: &'a [u8],
}

/// The first complete message in `buf` and the bytes it takes; `Ok(None)` when more bytes are
/// needed; an error for a payload longer than [`MAX_PAYLOAD`].
pub fn split(buf: &[u8]) -> Result<Option<(Message<'_>, usize)>, &'static str> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else { return Ok(None) };
    let word = |at: usize| {
        let b = header.get(at..at + 4).and_then(|b| <[u8; 4]>::try_from(b).ok());
        b.map_or(0, u32::from_be_bytes)
    };
    let header = Header { kind: MessageType(word(0)), reader: word(4), length: word(8) };
    let length = usize::try_from(header.length).unwrap_or(usize::MAX);
    if length > MAX_PAYLOAD {
        return Err("message longer than 1 MiB");
    }
    let used = HEADER_LEN + length;
    Ok(buf.get(HEADER_LEN..used).map(|payload| (Message { header, payload }, used)))
}

/// The payload of Init: the magic, the version and one capability word (none defined).
pub fn init_payload() -> Vec<u8> {
    let mut p = MAGIC.to_vec();
    p.extend_from_slice(&VERSION.to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes());
    p
}

/// The ATR to present through a T=0-only reader: the card's own when it offers T=0,
/// otherwise TS, T0 with the historical byte count (up to 15) and no interface bytes, and the
/// historical bytes: a card offering only the implicit T=0 (ISO/IEC 7816-3 §8.2.3), without
/// TCK (§8.2.5: absent when only T=0 is indicated).
pub fn t0_atr(atr: &[u8]) -> Vec<u8> {
    match Atr::parse(atr) {
        Ok(parsed) if parsed.offers(0) => atr.to_vec(),
        Ok(parsed) => {
            let historical = parsed.historical();
            let k = historical.len().min(15);
            let mut out = vec![parsed.ts(), u8::try_from(k).unwrap_or(15)];
            out.extend_from_slice(historical.get(..k).unwrap_or_default());
            out
        }
        // Not an ATR at all: passed on, QEMU judges it.
        Err(_) => atr.to_vec(),
    }
}

/// The card side of T=0 in front of an APDU-level card (ISO/IEC 7816-3 §10.3.3, §12.2), for
/// a reader that passes command TPDUs verbatim.
///
/// - A TPDU of 5 bytes is case 1 or 2 (P3 is Le, 00 meaning 256): the card sees the short
///   case 2 APDU. When it answers fewer data bytes than Le, the answer is `6Cxx` with the
///   length (§12.2.3), and kept: the resend with P3 = xx gets it without running the command
///   twice.
/// - A longer TPDU is case 3 or 4 (P3 is Lc): the card sees the command without Le; response
///   data is kept for GET RESPONSE and announced with `61xx` (§12.2.5, xx = 00 for 256 or
///   more).
/// - GET RESPONSE hands out the kept data, P3 bytes at a time (`6Cxx` when P3 asks for more
///   than there is), ending with the card's status word (which may be its own `61xx`); with
///   nothing kept, it goes to the card (whose own pending data it fetches).
#[derive(Default)]
pub struct T0Adapter {
    /// Response data of a case 3 or 4 command, and the status word that ends it.
    pending: Option<(Zeroizing<Vec<u8>>, [u8; 2])>,
    /// The answer to the last case 2 TPDU refused with 6Cxx, by header, for its resend.
    resend: Option<([u8; 4], Zeroizing<Vec<u8>>)>,
}

impl std::fmt::Debug for T0Adapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The kept data may be secret (decrypted plaintext): lengths only.
        f.debug_struct("T0Adapter")
            .field("pending", &self.pending.as_ref().map(|(d, _)| d.len()))
            .field("resend", &self.resend.as_ref().map(|(_, a)| a.len()))
            .finish()
    }
}

/// `61xx` or `6Cxx` with a length: xx is the length, 00 for 256 or more.
fn with_length(sw1: u8, len: usize) -> Vec<u8> {
    vec![sw1, u8::try_from(len.min(256) % 256).unwrap_or(0)]
}

impl T0Adapter {
    /// Forgets kept data (the card was reset or removed).
    pub fn reset(&mut self) {
        self.pending = None;
        self.resend = None;
    }

    /// Processes one command TPDU and returns the response TPDU (data and SW1 SW2).
    pub fn process(&mut self, card: &mut dyn Card, tpdu: &[u8]) -> Vec<u8> {
        // §12.1: a command TPDU is CLA INS P1 P2 P3 and, for cases 3 and 4, P3 data bytes.
        let Some((&[cla, ins, p1, p2, p3], body)) = tpdu.split_first_chunk::<5>() else {
            self.reset();
            return vec![0x67, 0x00];
        };
        let header = [cla, ins, p1, p2];
        let le = if p3 == 0 { 256 } else { usize::from(p3) };
        if let Some((kept_header, answer)) = self.resend.take() {
            if kept_header == header && body.is_empty() && answer.len() == le + 2 {
                return answer.to_vec();
            }
        }
        if ins == INS_GET_RESPONSE && body.is_empty() && self.pending.is_some() {
            return self.get_response(le);
        }
        self.pending = None;
        if body.is_empty() {
            // Cases 1 and 2.
            let answer = Zeroizing::new(card.process(tpdu));
            let data = answer.len().saturating_sub(2);
            if data > 0 && data < le {
                self.resend = Some((header, answer));
                return with_length(0x6C, data);
            }
            return answer.to_vec();
        }
        if body.len() != usize::from(p3) {
            return vec![0x67, 0x00];
        }
        // Cases 3 and 4.
        let answer = Zeroizing::new(card.process(tpdu));
        match answer.split_last_chunk::<2>() {
            Some((data, sw)) if !data.is_empty() => {
                self.pending = Some((Zeroizing::new(data.to_vec()), *sw));
                with_length(0x61, data.len())
            }
            _ => answer.to_vec(),
        }
    }

    fn get_response(&mut self, le: usize) -> Vec<u8> {
        let Some((data, sw)) = self.pending.as_mut() else { return vec![0x69, 0x85] };
        if le > data.len() {
            return with_length(0x6C, data.len());
        }
        let mut out: Vec<u8> = data.drain(..le).collect();
        if data.is_empty() {
            out.extend_from_slice(sw);
            self.pending = None;
        } else {
            out.extend_from_slice(&with_length(0x61, data.len()));
        }
        out
    }
}

/// Where the provider connects: a unix socket or TCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket path.
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
}

impl Endpoint {
    /// `HOST:PORT` (a numeric port after the last colon, no `/`) is TCP; anything else is a
    /// unix socket path.
    pub fn parse(addr: &str) -> Endpoint {
        let tcp = !addr.contains('/')
            && addr
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if tcp { Endpoint::Tcp(addr.to_owned()) } else { Endpoint::Unix(PathBuf::from(addr)) }
    }
}

/// A connected stream to QEMU.
#[derive(Debug)]
pub enum Stream {
    /// A unix socket.
    Unix(UnixStream),
    /// TCP (TCP_NODELAY set).
    Tcp(TcpStream),
}

impl Stream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(timeout),
            Stream::Tcp(s) => s.set_read_timeout(timeout),
        }
    }

    fn shutdown(&self) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.flush(),
            Stream::Tcp(s) => s.flush(),
        }
    }
}

/// Connects to QEMU's chardev at `addr` (see [`Endpoint::parse`]), retrying until `wait`
/// has passed (QEMU may be starting).
pub fn connect(addr: &str, wait: Duration) -> Result<Stream, SimError> {
    let err = |source| SimError::Vscard { addr: addr.to_owned(), source };
    let deadline = Instant::now() + wait;
    loop {
        let attempt = match Endpoint::parse(addr) {
            Endpoint::Unix(path) => UnixStream::connect(path).map(Stream::Unix),
            Endpoint::Tcp(hostport) => hostport
                .to_socket_addrs()
                .and_then(|mut addrs| {
                    addrs
                        .next()
                        .ok_or_else(|| std::io::Error::new(ErrorKind::NotFound, "no address"))
                })
                .and_then(|sock| TcpStream::connect_timeout(&sock, Duration::from_secs(2)))
                .and_then(|s| s.set_nodelay(true).map(|()| Stream::Tcp(s))),
        };
        match attempt {
            Ok(stream) => {
                stream.set_read_timeout(Some(POLL)).map_err(err)?;
                return Ok(stream);
            }
            Err(e) if Instant::now() >= deadline => return Err(err(e)),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Choices of [`serve`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The reader name sent with ReaderAdd (display only; QEMU ignores it).
    pub reader_name: String,
    /// Remove the card (CardRemove) once no APDU came for this long after the first one.
    pub remove_after_idle: Option<Duration>,
}

/// Why [`serve`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The stop flag was raised; the card and reader were removed and the connection closed.
    Stopped,
    /// QEMU closed the connection (the guest powered off, or QEMU stopped).
    Disconnected,
}

/// What a session did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    /// Command TPDUs processed.
    pub apdus: u64,
    /// Answers `61xx` (response data waiting for GET RESPONSE).
    pub more_data: u64,
    /// Answers `6Cxx` (wrong Le, resend with the right one).
    pub wrong_length: u64,
    /// Whether the card was removed (CardRemove sent).
    pub removed: bool,
    /// Time spent inside the card's APDU processor.
    pub processing: Duration,
}

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// ReaderAdd sent; waiting for its acknowledgement with the reader id.
    AwaitReader,
    /// ATR sent; waiting for its acknowledgement.
    AwaitAtr(u32),
    /// The card is in the reader.
    Inserted(u32),
    /// The card was removed.
    Removed(u32),
}

fn send(
    stream: &mut Stream,
    addr: &str,
    kind: MessageType,
    reader: u32,
    payload: &[u8],
) -> Result<(), SimError> {
    tracing::debug!("vscard >> {kind:?} reader {reader:#X} ({} bytes)", payload.len());
    stream
        .write_all(&encode(kind, reader, payload))
        .map_err(|source| SimError::Vscard { addr: addr.to_owned(), source })
}

/// Serves `card` on a connected stream until QEMU disconnects or `stop` is raised.
pub fn serve(
    card: &mut dyn Card,
    mut stream: Stream,
    addr: &str,
    options: &Options,
    stop: &AtomicBool,
) -> Result<(End, Stats), SimError> {
    let io_err = |source| SimError::Vscard { addr: addr.to_owned(), source };
    let protocol = |reason| SimError::VscardProtocol { addr: addr.to_owned(), reason };
    let mut stats = Stats::default();
    let mut t0 = T0Adapter::default();
    let mut state = State::AwaitReader;
    let mut last_apdu: Option<Instant> = None;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 65536];
    send(&mut stream, addr, MessageType::INIT, UNDEFINED_READER, &init_payload())?;
    let mut name = options.reader_name.as_bytes().to_vec();
    name.push(0);
    send(&mut stream, addr, MessageType::READER_ADD, UNDEFINED_READER, &name)?;
    loop {
        if stop.load(Ordering::SeqCst) {
            if let State::Inserted(reader) = state {
                send(&mut stream, addr, MessageType::CARD_REMOVE, reader, &[])?;
                send(&mut stream, addr, MessageType::READER_REMOVE, reader, &[])?;
            }
            stream.shutdown();
            return Ok((End::Stopped, stats));
        }
        if let (State::Inserted(reader), Some(idle), Some(last)) =
            (state, options.remove_after_idle, last_apdu)
        {
            if last.elapsed() >= idle {
                tracing::debug!("vscard: no APDU for {idle:?}: card removed");
                send(&mut stream, addr, MessageType::CARD_REMOVE, reader, &[])?;
                card.power_off();
                t0.reset();
                stats.removed = true;
                state = State::Removed(reader);
            }
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
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        while let Some((Message { header, payload }, used)) = split(&buf).map_err(protocol)? {
            let payload = payload.to_vec();
            buf.drain(..used);
            tracing::debug!(
                "vscard << {:?} reader {:#X} ({} bytes)",
                header.kind,
                header.reader,
                payload.len()
            );
            match (header.kind, state) {
                (MessageType::INIT, _) => {
                    if payload.get(..4) != Some(&MAGIC[..]) {
                        tracing::warn!("vscard: Init without the VSCD magic");
                    }
                }
                (MessageType::ERROR, State::AwaitReader) => {
                    let code = error_code(&payload);
                    if code != code::SUCCESS || header.reader == UNDEFINED_READER {
                        return Err(SimError::VscardRefused {
                            addr: addr.to_owned(),
                            what: "ReaderAdd",
                            code,
                        });
                    }
                    card.power_on();
                    t0.reset();
                    let atr = t0_atr(card.atr());
                    tracing::debug!("vscard: reader {}, ATR {}", header.reader, Hex(&atr));
                    send(&mut stream, addr, MessageType::ATR, header.reader, &atr)?;
                    state = State::AwaitAtr(header.reader);
                }
                (MessageType::ERROR, State::AwaitAtr(reader)) => {
                    let code = error_code(&payload);
                    if code != code::SUCCESS {
                        return Err(SimError::VscardRefused {
                            addr: addr.to_owned(),
                            what: "ATR",
                            code,
                        });
                    }
                    state = State::Inserted(reader);
                }
                (MessageType::ERROR, _) => {
                    // Acknowledgements of CardRemove and the like.
                    let code = error_code(&payload);
                    if code != code::SUCCESS {
                        tracing::warn!("vscard: QEMU reports error code {code}");
                    }
                }
                (MessageType::APDU, State::Inserted(reader)) => {
                    stats.apdus += 1;
                    tracing::trace!(">> {}", trace_command(&payload));
                    let started = Instant::now();
                    let response = t0.process(card, &payload);
                    stats.processing += started.elapsed();
                    let sw_at = response.len().saturating_sub(2);
                    match response.get(sw_at) {
                        Some(0x61) if response.len() >= 2 => stats.more_data += 1,
                        Some(0x6C) if response.len() >= 2 => stats.wrong_length += 1,
                        _ => {}
                    }
                    tracing::trace!(
                        "<< [{} bytes] {}",
                        sw_at,
                        Hex(response.get(sw_at..).unwrap_or_default())
                    );
                    send(&mut stream, addr, MessageType::APDU, reader, &response)?;
                    last_apdu = Some(Instant::now());
                }
                (MessageType::APDU, _) => {
                    // No card: the guest's XfrBlock fails.
                    let reader = header.reader;
                    send(
                        &mut stream,
                        addr,
                        MessageType::ERROR,
                        reader,
                        &code::GENERAL_ERROR.to_be_bytes(),
                    )?;
                }
                (MessageType::FLUSH, _) => {
                    send(&mut stream, addr, MessageType::FLUSH_COMPLETE, header.reader, &[])?;
                }
                (other, _) => tracing::warn!("vscard: unexpected {other:?} ignored"),
            }
        }
    }
}

/// The code of an Error message (a big-endian u32; anything shorter is a general error).
fn error_code(payload: &[u8]) -> u32 {
    payload.first_chunk::<4>().map_or(code::GENERAL_ERROR, |b| u32::from_be_bytes(*b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::sync::Arc;

    use scard_iso7816::hex::decode_lenient as h;

    use crate::piv::{KeySlot, PivCard};
    use crate::{SimRng, keys::KeyAlgorithm};

    #[test]
    fn codec_round_trip_and_limits() {
        let m = encode(MessageType::APDU, 0, &[0x90, 0x00]);
        assert_eq!(m, h("00000007 00000000 00000002 9000").unwrap());
        let (Message { header, payload }, used) = split(&m).unwrap().unwrap();
        assert_eq!(
            (header, payload, used),
            (Header { kind: MessageType::APDU, reader: 0, length: 2 }, &[0x90, 0x00][..], 14)
        );
        assert_eq!(split(&m[..13]).unwrap(), None);
        assert_eq!(split(&m[..5]).unwrap(), None);
        let huge = h("00000007 00000000 7FFFFFFF").unwrap();
        assert!(split(&huge).is_err());
        // ../shared/qemu-ccid.md §8: the observed Init.
        assert_eq!(
            encode(MessageType::INIT, UNDEFINED_READER, &init_payload()),
            h("00000001 ffffffff 0000000c 56534344 00000002 00000000").unwrap()
        );
        assert_eq!(format!("{:?}", MessageType::CARD_REMOVE), "MessageType(6 CardRemove)");
        assert_eq!(format!("{:?}", MessageType(42)), "MessageType(0x2A)");
    }

    #[test]
    fn endpoints_and_atrs() {
        assert_eq!(Endpoint::parse("/tmp/vscard.sock"), Endpoint::Unix("/tmp/vscard.sock".into()));
        assert_eq!(Endpoint::parse("vscard.sock"), Endpoint::Unix("vscard.sock".into()));
        assert_eq!(Endpoint::parse("127.0.0.1:35963"), Endpoint::Tcp("127.0.0.1:35963".into()));
        assert_eq!(Endpoint::parse("localhost:1"), Endpoint::Tcp("localhost:1".into()));
        assert_eq!(Endpoint::parse("./a:1"), Endpoint::Unix("./a:1".into()));
        // The PIV card's T=1 ATR becomes a T=0 ATR with the same historical bytes.
        assert_eq!(t0_atr(&crate::piv::ATR), h("3B 0A 80 58 73 63 61 72 64 50 49 56").unwrap());
        let t0 = h("3B 08 52 55 53 54 43 43 49 44").unwrap();
        assert_eq!(t0_atr(&t0), t0);
        assert!(Atr::parse(&t0_atr(&crate::piv::ATR)).unwrap().offers(0));
    }

    /// An APDU-level card that answers READ BINARY-like `00 B0` with P2 bytes, and anything
    /// with data with 300 bytes (more than one GET RESPONSE).
    struct Plain;

    impl Card for Plain {
        fn family(&self) -> crate::Family {
            crate::Family::Piv
        }
        fn atr(&self) -> &[u8] {
            &[0x3B, 0x00]
        }
        fn power_on(&mut self) {}
        fn process(&mut self, command: &[u8]) -> Vec<u8> {
            let mut out: Vec<u8> = match command {
                [_, 0xB0, _, p2, ..] => (0..*p2).collect(),
                [_, _, _, _, _, _, ..] => (0..300u32).map(|i| i as u8).collect(),
                _ => Vec::new(),
            };
            out.extend_from_slice(&[0x90, 0x00]);
            out
        }
        fn save_state(&self) -> serde_json::Value {
            serde_json::Value::Null
        }
    }

    #[test]
    fn t0_adapter_procedure() {
        let mut t0 = T0Adapter::default();
        let mut card = Plain;
        // Case 2 with the right Le.
        assert_eq!(
            t0.process(&mut card, &h("00 B0 00 03 03").unwrap()),
            h("00 01 02 90 00").unwrap()
        );
        // Case 2, Le 00 (256) but 3 bytes: 6C03, and the resend gets the kept answer.
        assert_eq!(t0.process(&mut card, &h("00 B0 00 03 00").unwrap()), h("6C 03").unwrap());
        assert_eq!(
            t0.process(&mut card, &h("00 B0 00 03 03").unwrap()),
            h("00 01 02 90 00").unwrap()
        );
        // Case 3/4: 300 bytes wait behind 61 00, then 256 + 61 2C, then 2C bytes + 9000.
        assert_eq!(t0.process(&mut card, &h("00 CB 3F FF 01 00").unwrap()), h("61 00").unwrap());
        let first = t0.process(&mut card, &h("00 C0 00 00 00").unwrap());
        assert_eq!((first.len(), &first[256..]), (258, &[0x61, 0x2C][..]));
        // GET RESPONSE asking for more than there is: 6Cxx, nothing lost.
        assert_eq!(t0.process(&mut card, &h("00 C0 00 00 50").unwrap()), h("6C 2C").unwrap());
        let rest = t0.process(&mut card, &h("00 C0 00 00 2C").unwrap());
        assert_eq!((rest.len(), rest[0], &rest[44..]), (46, 0x00, &[0x90, 0x00][..]));
        // Not a TPDU.
        assert_eq!(t0.process(&mut card, &h("00 B0").unwrap()), h("67 00").unwrap());
        assert_eq!(t0.process(&mut card, &h("00 CB 3F FF 05 00").unwrap()), h("67 00").unwrap());
    }

    /// A stand-in for QEMU's ccid-card-passthru (the host side), as observed in
    /// ../shared/qemu-ccid.md §8, driving a personalised PIV card through T=0 TPDUs.
    #[test]
    fn serves_a_piv_card_to_a_passthru_host() {
        let dir = std::env::temp_dir().join(format!("scard-vscard-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vscard.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_card = Arc::clone(&stop);
        let addr = path.to_string_lossy().into_owned();
        let provider = std::thread::spawn(move || {
            let mut card = PivCard::new(SimRng::from_seed(3));
            card.personalise(KeySlot::PIV_AUTHENTICATION, KeyAlgorithm::P256, "vscard").unwrap();
            let stream = connect(&addr, Duration::from_secs(5)).unwrap();
            let options = Options {
                reader_name: "scard-sim piv".into(),
                remove_after_idle: Some(Duration::from_millis(200)),
            };
            serve(&mut card, stream, &addr, &options, &stop_card).unwrap()
        });
        let (mut host, _) = listener.accept().unwrap();
        let mut buf = Vec::new();
        let mut read = |host: &mut UnixStream| -> (Header, Vec<u8>) {
            loop {
                if let Some((Message { header, payload }, used)) = split(&buf).unwrap() {
                    let out = (header, payload.to_vec());
                    buf.drain(..used);
                    return out;
                }
                let mut chunk = [0u8; 4096];
                let n = host.read(&mut chunk).unwrap();
                assert!(n > 0, "provider closed");
                buf.extend_from_slice(&chunk[..n]);
            }
        };
        let (init, payload) = read(&mut host);
        assert_eq!((init.kind, &payload[..4]), (MessageType::INIT, &b"VSCD"[..]));
        let (add, name) = read(&mut host);
        assert_eq!((add.kind, &name[..]), (MessageType::READER_ADD, &b"scard-sim piv\0"[..]));
        host.write_all(&encode(MessageType::INIT, UNDEFINED_READER, &init_payload())).unwrap();
        host.write_all(&encode(MessageType::ERROR, 0, &0u32.to_be_bytes())).unwrap();
        let (atr, atr_bytes) = read(&mut host);
        assert_eq!((atr.kind, atr.reader), (MessageType::ATR, 0));
        assert_eq!(atr_bytes, h("3B 0A 80 58 73 63 61 72 64 50 49 56").unwrap());
        host.write_all(&encode(MessageType::ERROR, 0, &0u32.to_be_bytes())).unwrap();
        let mut apdu = |host: &mut UnixStream, tpdu: &str| -> Vec<u8> {
            host.write_all(&encode(MessageType::APDU, 0, &h(tpdu).unwrap())).unwrap();
            let (header, response) = read(host);
            assert_eq!(header.kind, MessageType::APDU);
            response
        };
        // SELECT as case 3: 61xx, then GET RESPONSE with Le 00: 6Cxx, resent: the APT.
        let sw = apdu(&mut host, "00 A4 04 00 09 A0 00 00 03 08 00 00 10 00");
        assert_eq!(sw[0], 0x61);
        let again = apdu(&mut host, "00 C0 00 00 00");
        assert_eq!(again, [0x6C, sw[1]]);
        let apt = apdu(&mut host, &format!("00 C0 00 00 {:02X}", sw[1]));
        assert_eq!((apt[0], &apt[apt.len() - 2..]), (0x61, &[0x90, 0x00][..]));
        // The certificate object through 61xx / GET RESPONSE.
        let sw = apdu(&mut host, "00 CB 3F FF 05 5C 03 5F C1 05");
        assert_eq!(sw, [0x61, 0x00]);
        let part = apdu(&mut host, "00 C0 00 00 00");
        assert_eq!(part[..2], [0x53, 0x82]);
        // A command arriving while the host forgot its data: the data is dropped.
        assert_eq!(apdu(&mut host, "00 20 00 80 00"), h("63 C3").unwrap());
        // Removal once idle: CardRemove.
        let (removed, _) = read(&mut host);
        assert_eq!(removed.kind, MessageType::CARD_REMOVE);
        host.write_all(&encode(MessageType::ERROR, 0, &0u32.to_be_bytes())).unwrap();
        // An APDU without a card: an Error.
        host.write_all(&encode(MessageType::APDU, 0, &h("00 A4 04 00 00").unwrap())).unwrap();
        let (error, code) = read(&mut host);
        assert_eq!((error.kind, code), (MessageType::ERROR, 1u32.to_be_bytes().to_vec()));
        drop(host);
        let (end, stats) = provider.join().unwrap();
        assert_eq!(end, End::Disconnected);
        assert_eq!((stats.apdus, stats.more_data, stats.wrong_length), (6, 3, 1));
        assert!(stats.removed);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
