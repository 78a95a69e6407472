//! The layer that moves APDUs.
//!
//! - [`CardTransport`]: bytes in, bytes out, the ATR, transactions (scoped: [`Transaction`]),
//!   reconnect with a reset notice, disconnect with a disposition, control codes.
//! - [`Backend`]: a family of readers (in-process virtual cards, vpcd, PC/SC, CCID) that lists
//!   readers and connects to one.
//! - [`Registry`]: the resource manager over all backends, resolving reader names
//!   ([`ReaderName`]: `sim:<family>[:<state>]`, `vpcd:<host>:<port>`, `pcsc:<name or glob>`,
//!   `ccid:<vid>:<pid>[:<serial>]` or `ccid:*`), and reader groups (`group:<name>`: the first
//!   reader of the group with a card).
//! - [`virtual_card`]: in-process virtual cards behind the [`virtual_card::VirtualCard`] trait.
//! - [`vpcd`]: our stack listening as vsmartcard's vpcd does, for virtual cards over TCP.
//! - [`counting`]: a transport wrapper that counts APDUs and bytes (`scard bench`, the
//!   conformance suite).
//! - [`faults`]: a transport wrapper that removes the card, resets it, or fails the transfer
//!   at the Nth APDU (fault-injection tests).
//!
//! Card logic above this layer never sees USB or PC/SC: only [`CardTransport`].
#![forbid(unsafe_code)]

pub mod counting;
mod error;
pub mod faults;
mod name;
mod registry;
pub mod virtual_card;
pub mod vpcd;

use std::time::Duration;

pub use error::{TransportError, command_name};
pub use name::{ReaderName, glob_match};
pub use registry::{Backend, GROUP_PREFIX, ReaderEvent, ReaderInfo, Registry, group_name};

/// Default deadline of one exchange.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The transmission protocol in use (ISO/IEC 7816-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// T=0, character-oriented.
    T0,
    /// T=1, block-oriented.
    T1,
    /// A virtual card without a 7816-3 transmission protocol (APDUs are passed as they are).
    Apdu,
}

/// How a connection shares the card with other applications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ShareMode {
    /// Others may use the card between our transactions.
    #[default]
    Shared,
    /// Nobody else may connect while we are connected.
    Exclusive,
}

/// What happens to the card when a connection ends or is reconnected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Disposition {
    /// Leave it as it is (authentication states stay).
    #[default]
    Leave,
    /// Warm reset.
    Reset,
    /// Power it off.
    Unpower,
    /// Eject it (readers that can).
    Eject,
}

/// A connection to a card. Implementations are thin: they move bytes and report what
/// happened to the card; all APDU logic lives above (scard-iso7816's exchange engine).
pub trait CardTransport: Send {
    /// The reader's full name (with its backend prefix, e.g. `pcsc:Virtual PCD 00 00`).
    fn reader(&self) -> &str;

    /// The card's ATR as of the last (re)connection.
    fn atr(&self) -> &[u8];

    /// The protocol in use.
    fn protocol(&self) -> Protocol;

    /// Sends one command APDU and returns the response APDU (data and SW1 SW2), within the
    /// deadline set by [`CardTransport::set_timeout`]. When the card was reset by someone else
    /// since the last exchange this returns [`TransportError::CardReset`] once: the caller
    /// must drop its authentication state and select its application again.
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError>;

    /// Starts exclusive access (other applications wait). Prefer [`transaction`].
    fn begin_transaction(&mut self) -> Result<(), TransportError>;

    /// Ends exclusive access.
    fn end_transaction(&mut self, disposition: Disposition) -> Result<(), TransportError>;

    /// Reconnects, resetting the card when `disposition` says so, and re-reads the ATR.
    fn reconnect(&mut self, disposition: Disposition) -> Result<(), TransportError>;

    /// Ends the connection.
    fn disconnect(&mut self, disposition: Disposition) -> Result<(), TransportError>;

    /// A reader control (escape) code, where the backend has one.
    fn control(&mut self, code: u32, data: &[u8]) -> Result<Vec<u8>, TransportError> {
        let _ = (code, data);
        Err(TransportError::Unsupported { reader: self.reader().to_owned(), what: "control codes" })
    }

    /// Sets the deadline of each exchange (default [`DEFAULT_TIMEOUT`]).
    fn set_timeout(&mut self, timeout: Duration);

    /// Whether the reader passes extended-length APDUs (the card's own support is the card
    /// profile's business).
    fn extended_length(&self) -> bool {
        true
    }
}

impl std::fmt::Debug for dyn CardTransport + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardTransport")
            .field("reader", &self.reader())
            .field("protocol", &self.protocol())
            .field("atr", &scard_iso7816::hex::Hex(self.atr()))
            .finish()
    }
}

/// Starts a transaction on `transport`; it ends (leaving the card) when the guard drops.
pub fn transaction(transport: &mut dyn CardTransport) -> Result<Transaction<'_>, TransportError> {
    transport.begin_transaction()?;
    Ok(Transaction { transport, ended: false })
}

/// Exclusive access to a card for as long as it lives (DESIGN.md: transactions are scoped
/// borrows). Authentication obtained inside belongs to the transaction.
pub struct Transaction<'a> {
    transport: &'a mut dyn CardTransport,
    ended: bool,
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction").field("reader", &self.transport.reader()).finish()
    }
}

impl Transaction<'_> {
    /// Sends one APDU inside the transaction.
    pub fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.transport.transmit(command)
    }

    /// The transport, for calls other than transmit.
    pub fn transport(&mut self) -> &mut dyn CardTransport {
        self.transport
    }

    /// Ends the transaction with a disposition (e.g. [`Disposition::Reset`] to drop the
    /// card's authentication state).
    pub fn end(mut self, disposition: Disposition) -> Result<(), TransportError> {
        self.ended = true;
        self.transport.end_transaction(disposition)
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.ended {
            if let Err(err) = self.transport.end_transaction(Disposition::Leave) {
                tracing::warn!("ending the transaction on {}: {err}", self.transport.reader());
            }
        }
    }
}

/// Sends one logical command through the exchange engine of scard-iso7816 (command chaining,
/// GET RESPONSE on `61xx`, one resend on `6Cxx`, extended length only when `limits` allow it)
/// and returns the card's complete response. Every APDU is traced at trace level as `>>` /
/// `<<` hex, with secret-bearing command data blanked (DESIGN.md).
pub fn exchange(
    transport: &mut dyn CardTransport,
    command: &scard_iso7816::CommandApdu,
    limits: scard_iso7816::CardLimits,
) -> Result<scard_iso7816::ResponseApdu, TransportError> {
    use scard_iso7816::exchange::{Exchange, Step};
    // Errors name the logical command (its INS), whatever APDU of the exchange went wrong.
    let card_err = |reader: &str, source| TransportError::Card {
        reader: reader.to_owned(),
        command: command_name(&[command.cla(), command.ins().0]),
        source,
    };
    let mut engine = Exchange::new(command, limits).map_err(|e| card_err(transport.reader(), e))?;
    loop {
        let apdu = engine.apdu();
        let ins = apdu.get(1).map(|i| scard_iso7816::apdu::Ins(*i));
        tracing::trace!(
            ">> {} ({})",
            scard_iso7816::apdu::trace_command(apdu),
            ins.and_then(|i| i.name()).unwrap_or("?")
        );
        let started = std::time::Instant::now();
        // The raw answer may be a decrypted secret: zeroized when dropped, as the response
        // the engine builds from it is.
        let answer = zeroize::Zeroizing::new(transport.transmit(apdu)?);
        tracing::trace!(
            "<< [{} bytes] {} ({:.1} ms)",
            answer.len().saturating_sub(2),
            trace_sw(&answer),
            started.elapsed().as_secs_f64() * 1000.0
        );
        match engine.receive(&answer).map_err(|e| card_err(transport.reader(), e))? {
            Step::Transmit => {}
            Step::Done(response) => return Ok(response),
        }
    }
}

/// The status word of a response for the trace (the data may be a secret: not shown).
fn trace_sw(answer: &[u8]) -> String {
    let at = answer.len().saturating_sub(2);
    scard_iso7816::hex::encode_upper(answer.get(at..).unwrap_or_default())
}

#[cfg(test)]
mod exchange_tests {
    use super::*;
    use crate::virtual_card::{VirtualBackend, VirtualCard};
    use scard_iso7816::{CardLimits, CommandApdu, StatusWord};

    /// Returns 600 bytes through 61xx / GET RESPONSE like a T=0 card, and 6A82 for SELECT.
    struct LongAnswer {
        left: usize,
    }

    impl VirtualCard for LongAnswer {
        fn atr(&self) -> Vec<u8> {
            vec![0x3B, 0x00]
        }
        fn power_on(&mut self) {}
        fn reset(&mut self) {}
        fn power_off(&mut self) {}
        fn process(&mut self, command: &[u8]) -> Vec<u8> {
            match command.get(1) {
                Some(0xA4) => vec![0x6A, 0x82],
                Some(0xCA) => {
                    self.left = 600;
                    vec![0x61, 0x00]
                }
                Some(0xC0) => {
                    let n = self.left.min(256);
                    self.left -= n;
                    let mut out = vec![0x5A; n];
                    let sw: u16 =
                        if self.left == 0 { 0x9000 } else { 0x6100 | self.left.min(255) as u16 };
                    out.extend_from_slice(&sw.to_be_bytes());
                    out
                }
                _ => vec![0x6D, 0x00],
            }
        }
    }

    #[test]
    fn the_engine_runs_over_a_transport() {
        let backend = VirtualBackend::new();
        backend.insert("sim:long", Box::new(LongAnswer { left: 0 }));
        let mut registry = Registry::new();
        registry.add(Box::new(backend));
        let mut t = registry.connect(Some("sim:long"), ShareMode::Shared).unwrap();
        let get = CommandApdu::new(0, 0xCA, 0, 0x6E).with_ne(65536).unwrap();
        let r = exchange(t.as_mut(), &get, CardLimits::default()).unwrap();
        assert_eq!((r.data().len(), r.sw()), (600, StatusWord::SUCCESS));
        let select = CommandApdu::new(0, 0xA4, 4, 0).with_data([0xA0, 0]).unwrap();
        let r = exchange(t.as_mut(), &select, CardLimits::default()).unwrap();
        assert_eq!(r.sw(), StatusWord::FILE_NOT_FOUND);
        // More than Ne is the card's fault, reported with the reader's name.
        let short = CommandApdu::new(0, 0xCA, 0, 0x6E).with_ne(10).unwrap();
        let err = exchange(t.as_mut(), &short, CardLimits::default()).unwrap_err();
        assert!(matches!(err, TransportError::Card { .. }), "{err}");
        assert!(err.to_string().starts_with("sim:long: GET DATA (INS CA): "), "{err}");
    }
}
