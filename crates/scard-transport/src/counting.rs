//! A transport that counts what goes over the wire: APDUs, bytes each way, commands per
//! instruction, extended-length and chained commands, the largest command and response, and
//! resets. It forwards every call to the transport it wraps and changes nothing, so it can sit
//! under any card module (`scard bench`, the conformance suite, APDU-count goals of tests).
//!
//! The counts live behind a [`Counter`] handle that stays with the caller when the wrapped
//! transport is handed to a card module.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use scard_iso7816::CommandApdu;

use crate::{CardTransport, Disposition, Protocol, TransportError};

/// What went over a [`Counting`] transport.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Command APDUs answered by the card.
    pub apdus: u64,
    /// Bytes of those command APDUs.
    pub bytes_sent: u64,
    /// Bytes of their response APDUs (data and status word).
    pub bytes_received: u64,
    /// Command APDUs per instruction byte (INS).
    pub by_ins: BTreeMap<u8, u64>,
    /// Command APDUs in extended-length form (ISO/IEC 7816-3 §12.1.3: Lc or Le of 3 bytes
    /// starting with 00).
    pub extended: u64,
    /// Command APDUs with the command-chaining bit of the class byte (ISO/IEC 7816-4 §5.4.1:
    /// b5 of CLA) set: every part of a chain but the last.
    pub chained: u64,
    /// The longest command APDU, in bytes.
    pub max_command: usize,
    /// The most command data (Nc) one APDU carried.
    pub max_command_data: usize,
    /// The longest response APDU, in bytes (data and status word).
    pub max_response: usize,
    /// Reconnections and disconnections that reset or unpowered the card.
    pub resets: u64,
}

impl Tally {
    /// Command APDUs with instruction byte `ins`.
    pub fn ins(&self, ins: u8) -> u64 {
        self.by_ins.get(&ins).copied().unwrap_or(0)
    }

    /// What was counted since `earlier` (a snapshot of the same counter). The maxima are
    /// those of the whole count.
    pub fn since(&self, earlier: &Tally) -> Tally {
        let by_ins = self
            .by_ins
            .iter()
            .map(|(ins, n)| (*ins, n.saturating_sub(earlier.ins(*ins))))
            .filter(|(_, n)| *n > 0)
            .collect();
        Tally {
            apdus: self.apdus.saturating_sub(earlier.apdus),
            bytes_sent: self.bytes_sent.saturating_sub(earlier.bytes_sent),
            bytes_received: self.bytes_received.saturating_sub(earlier.bytes_received),
            by_ins,
            extended: self.extended.saturating_sub(earlier.extended),
            chained: self.chained.saturating_sub(earlier.chained),
            max_command: self.max_command,
            max_command_data: self.max_command_data,
            max_response: self.max_response,
            resets: self.resets.saturating_sub(earlier.resets),
        }
    }

    /// Adds the counts of `other` (another connection's) to these; maxima are the larger.
    pub fn add(&mut self, other: &Tally) {
        self.apdus += other.apdus;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        for (ins, n) in &other.by_ins {
            *self.by_ins.entry(*ins).or_insert(0) += n;
        }
        self.extended += other.extended;
        self.chained += other.chained;
        self.max_command = self.max_command.max(other.max_command);
        self.max_command_data = self.max_command_data.max(other.max_command_data);
        self.max_response = self.max_response.max(other.max_response);
        self.resets += other.resets;
    }

    fn record(&mut self, command: &[u8], response: &[u8]) {
        self.apdus += 1;
        self.bytes_sent += command.len() as u64;
        self.bytes_received += response.len() as u64;
        if let Some(ins) = command.get(1) {
            *self.by_ins.entry(*ins).or_insert(0) += 1;
        }
        if let Ok(decoded) = CommandApdu::decode(command) {
            if decoded.is_extended() {
                self.extended += 1;
            }
            self.max_command_data = self.max_command_data.max(decoded.data().len());
        }
        // ISO/IEC 7816-4 §5.4.1: b5 (0x10) of an interindustry class byte (b8 = 0) is
        // "command chaining: not the last command of a chain".
        if command.first().is_some_and(|cla| cla & 0x80 == 0 && cla & 0x10 != 0) {
            self.chained += 1;
        }
        self.max_command = self.max_command.max(command.len());
        self.max_response = self.max_response.max(response.len());
    }
}

/// A handle on the counts of a [`Counting`] transport (cheap to clone; all clones see the
/// same counts).
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<Mutex<Tally>>);

impl Counter {
    fn lock(&self) -> MutexGuard<'_, Tally> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The counts as they are now.
    pub fn snapshot(&self) -> Tally {
        self.lock().clone()
    }

    /// Starts counting from zero again.
    pub fn clear(&self) {
        *self.lock() = Tally::default();
    }
}

/// A [`CardTransport`] that forwards to another one and counts.
pub struct Counting {
    inner: Box<dyn CardTransport>,
    counter: Counter,
}

impl std::fmt::Debug for Counting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counting")
            .field("reader", &self.inner.reader())
            .field("tally", &self.counter.snapshot())
            .finish()
    }
}

impl Counting {
    /// Wraps `inner`, counting from zero.
    pub fn new(inner: Box<dyn CardTransport>) -> Self {
        Self { inner, counter: Counter::default() }
    }

    /// Wraps `inner` and returns the boxed transport with its counter.
    pub fn wrap(inner: Box<dyn CardTransport>) -> (Box<dyn CardTransport>, Counter) {
        let counting = Self::new(inner);
        let counter = counting.counter();
        (Box::new(counting), counter)
    }

    /// The handle on the counts.
    pub fn counter(&self) -> Counter {
        self.counter.clone()
    }

    /// The wrapped transport back.
    pub fn into_inner(self) -> Box<dyn CardTransport> {
        self.inner
    }

    fn note_reset(&self, disposition: Disposition) {
        if matches!(disposition, Disposition::Reset | Disposition::Unpower | Disposition::Eject) {
            self.counter.lock().resets += 1;
        }
    }
}

impl CardTransport for Counting {
    fn reader(&self) -> &str {
        self.inner.reader()
    }

    fn atr(&self) -> &[u8] {
        self.inner.atr()
    }

    fn protocol(&self) -> Protocol {
        self.inner.protocol()
    }

    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let response = self.inner.transmit(command)?;
        self.counter.lock().record(command, &response);
        Ok(response)
    }

    fn begin_transaction(&mut self) -> Result<(), TransportError> {
        self.inner.begin_transaction()
    }

    fn end_transaction(&mut self, disposition: Disposition) -> Result<(), TransportError> {
        self.inner.end_transaction(disposition)?;
        self.note_reset(disposition);
        Ok(())
    }

    fn reconnect(&mut self, disposition: Disposition) -> Result<(), TransportError> {
        self.inner.reconnect(disposition)?;
        self.note_reset(disposition);
        Ok(())
    }

    fn disconnect(&mut self, disposition: Disposition) -> Result<(), TransportError> {
        self.inner.disconnect(disposition)?;
        self.note_reset(disposition);
        Ok(())
    }

    fn control(&mut self, code: u32, data: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.inner.control(code, data)
    }

    fn set_timeout(&mut self, timeout: Duration) {
        self.inner.set_timeout(timeout);
    }

    fn extended_length(&self) -> bool {
        self.inner.extended_length()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtual_card::{VirtualBackend, VirtualCard};
    use crate::{Registry, ShareMode};

    /// Answers every command with two data bytes and 9000.
    struct Echo;

    impl VirtualCard for Echo {
        fn atr(&self) -> Vec<u8> {
            vec![0x3B, 0x00]
        }
        fn power_on(&mut self) {}
        fn reset(&mut self) {}
        fn power_off(&mut self) {}
        fn process(&mut self, _command: &[u8]) -> Vec<u8> {
            vec![0xAA, 0xBB, 0x90, 0x00]
        }
    }

    fn connect() -> Box<dyn CardTransport> {
        let backend = VirtualBackend::new();
        backend.insert("sim:echo", Box::new(Echo));
        let mut registry = Registry::new();
        registry.add(Box::new(backend));
        registry.connect(Some("sim:echo"), ShareMode::Shared).unwrap()
    }

    #[test]
    fn counts_apdus_bytes_forms_and_resets() {
        let (mut t, counter) = Counting::wrap(connect());
        assert_eq!(t.reader(), "sim:echo");
        assert_eq!(t.atr(), [0x3B, 0x00]);
        // Case 1, short case 4, extended case 3 (Lc 00 01 00, 256 bytes), a chained part.
        t.transmit(&[0x00, 0x20, 0x00, 0x80]).unwrap();
        t.transmit(&[0x00, 0xCA, 0x00, 0x6E, 0x01, 0x5C, 0x00]).unwrap();
        let mut extended = vec![0x00, 0xDB, 0x3F, 0xFF, 0x00, 0x01, 0x00];
        extended.extend_from_slice(&[0x5A; 256]);
        t.transmit(&extended).unwrap();
        t.transmit(&[0x10, 0xDB, 0x3F, 0xFF, 0x02, 0x01, 0x02]).unwrap();
        let first = counter.snapshot();
        assert_eq!(first.apdus, 4);
        assert_eq!(first.bytes_sent, 4 + 7 + 263 + 7);
        assert_eq!(first.bytes_received, 16);
        assert_eq!((first.ins(0x20), first.ins(0xCA), first.ins(0xDB)), (1, 1, 2));
        assert_eq!((first.extended, first.chained), (1, 1));
        assert_eq!((first.max_command, first.max_command_data, first.max_response), (263, 256, 4));

        t.reconnect(Disposition::Reset).unwrap();
        t.transmit(&[0x00, 0x20, 0x00, 0x80]).unwrap();
        let delta = counter.snapshot().since(&first);
        assert_eq!((delta.apdus, delta.ins(0x20), delta.ins(0xDB), delta.resets), (1, 1, 0, 1));
        assert_eq!(delta.bytes_sent, 4);

        let mut sum = first.clone();
        sum.add(&delta);
        assert_eq!((sum.apdus, sum.ins(0x20), sum.resets, sum.max_command), (5, 2, 1, 263));

        counter.clear();
        assert_eq!(counter.snapshot(), Tally::default());
    }

    #[test]
    fn errors_are_not_counted() {
        let (mut t, counter) = Counting::wrap(connect());
        t.disconnect(Disposition::Leave).unwrap();
        assert!(t.transmit(&[0x00, 0x20, 0x00, 0x80]).is_err());
        assert_eq!(counter.snapshot().apdus, 0);
    }
}
