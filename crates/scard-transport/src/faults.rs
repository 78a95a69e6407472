//! A transport that injects a fault at the Nth command APDU: the card is pulled out, the card
//! is reset by someone else, or the transfer fails (with the command lost on its way to the
//! card, or executed by the card with its answer lost). It forwards everything else to the
//! transport it wraps, so it can sit under any card module; tests sweep N over every APDU of
//! an operation and check that the card is left in a consistent state (issue 9).
//!
//! After the fault the card is in the state a real card would be in:
//! - [`Fault::Remove`]: nothing written before the Nth APDU is lost; the Nth never reaches the
//!   card; the card is powered off (its volatile state: selection, verified PINs, is gone) and
//!   the connection reports [`TransportError::CardRemoved`] from then on, as PC/SC does
//!   (SCARD_W_REMOVED_CARD) until the application connects again.
//! - [`Fault::Reset`]: the card is reset before the Nth APDU (by another application, or a
//!   brown-out): it does not get the command, its volatile state is gone, and the connection
//!   reports [`TransportError::CardReset`] for that exchange (PC/SC SCARD_W_RESET_CARD); later
//!   exchanges go through.
//! - [`Fault::CommandLost`]: the Nth APDU never reaches the card; the exchange fails with an
//!   I/O error; later exchanges go through.
//! - [`Fault::AnswerLost`]: the card executes the Nth APDU (its effects stay) but the answer
//!   never arrives: the exchange fails with [`TransportError::Timeout`]; later exchanges go
//!   through.
//!
//! The plan lives behind a [`FaultHandle`] that stays with the caller (and may be shared by
//! several wrapped connections: the APDU count then runs across them).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::{CardTransport, Disposition, Protocol, TransportError, command_name};

/// What happens at the chosen APDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The card is pulled out before the APDU reaches it.
    Remove,
    /// The card is reset before the APDU reaches it.
    Reset,
    /// The transfer fails before the APDU reaches the card.
    CommandLost,
    /// The card executes the APDU; its answer is lost.
    AnswerLost,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 4] =
        [Fault::Remove, Fault::Reset, Fault::CommandLost, Fault::AnswerLost];
}

#[derive(Debug, Default)]
struct Plan {
    /// Command APDUs passed to the card (or failed by the fault) so far.
    seen: u64,
    /// The fault and the (1-based) APDU number it hits.
    armed: Option<(u64, Fault)>,
    /// The fault that fired, with the APDU it hit (INS).
    fired: Option<(Fault, u8)>,
}

/// The plan of a [`Faults`] transport (cheap to clone; clones share it).
#[derive(Debug, Clone, Default)]
pub struct FaultHandle(Arc<Mutex<Plan>>);

impl FaultHandle {
    /// A handle with nothing armed.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Plan> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Command APDUs seen so far (the one a fault hit included).
    pub fn seen(&self) -> u64 {
        self.lock().seen
    }

    /// Arms `fault` for the `n`th APDU from now (1: the next one). Clears a fired fault.
    pub fn arm(&self, n: u64, fault: Fault) {
        let mut plan = self.lock();
        let at = plan.seen.saturating_add(n.max(1));
        plan.armed = Some((at, fault));
        plan.fired = None;
    }

    /// Disarms without firing.
    pub fn disarm(&self) {
        self.lock().armed = None;
    }

    /// The fault that fired and the INS of the APDU it hit, if it fired.
    pub fn fired(&self) -> Option<(Fault, u8)> {
        self.lock().fired
    }

    /// Counts one APDU; the fault to apply to it, if any.
    fn next(&self, ins: u8) -> Option<Fault> {
        let mut plan = self.lock();
        plan.seen = plan.seen.saturating_add(1);
        match plan.armed {
            Some((at, fault)) if at == plan.seen => {
                plan.armed = None;
                plan.fired = Some((fault, ins));
                Some(fault)
            }
            _ => None,
        }
    }
}

/// A [`CardTransport`] that injects the fault of its [`FaultHandle`].
pub struct Faults {
    inner: Box<dyn CardTransport>,
    handle: FaultHandle,
    /// The card was pulled out (by the fault): every call reports it.
    removed: bool,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("reader", &self.inner.reader())
            .field("plan", &*self.handle.lock())
            .field("removed", &self.removed)
            .finish()
    }
}

impl Faults {
    /// Wraps `inner` with the plan of `handle`.
    pub fn new(inner: Box<dyn CardTransport>, handle: FaultHandle) -> Self {
        Self { inner, handle, removed: false }
    }

    /// Wraps `inner` with a new plan and returns the boxed transport with its handle.
    pub fn wrap(inner: Box<dyn CardTransport>) -> (Box<dyn CardTransport>, FaultHandle) {
        let handle = FaultHandle::new();
        (Box::new(Self::new(inner, handle.clone())), handle)
    }

    /// The wrapped transport back.
    pub fn into_inner(self) -> Box<dyn CardTransport> {
        self.inner
    }

    fn removed_error(&self) -> TransportError {
        TransportError::CardRemoved { reader: self.inner.reader().to_owned() }
    }

    fn check_present(&self) -> Result<(), TransportError> {
        if self.removed { Err(self.removed_error()) } else { Ok(()) }
    }
}

impl CardTransport for Faults {
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
        self.check_present()?;
        let reader = self.inner.reader().to_owned();
        match self.handle.next(command.get(1).copied().unwrap_or(0)) {
            None => self.inner.transmit(command),
            Some(Fault::Remove) => {
                // The card loses power: what it wrote stays, what it held in RAM goes.
                if let Err(err) = self.inner.disconnect(Disposition::Unpower) {
                    tracing::debug!("{reader}: powering the pulled card off: {err}");
                }
                self.removed = true;
                Err(self.removed_error())
            }
            Some(Fault::Reset) => {
                self.inner.reconnect(Disposition::Reset)?;
                Err(TransportError::CardReset { reader })
            }
            Some(Fault::CommandLost) => Err(TransportError::Io {
                reader,
                source: std::io::Error::new(
                    std::io::ErrorKind::BrokenPipe,
                    "transfer failed (injected fault: the command did not reach the card)",
                ),
            }),
            Some(Fault::AnswerLost) => {
                // The card executes the command; its answer is dropped on the way back.
                let _ = self.inner.transmit(command)?;
                Err(TransportError::Timeout {
                    reader,
                    command: command_name(command),
                    after: Duration::ZERO,
                })
            }
        }
    }

    fn begin_transaction(&mut self) -> Result<(), TransportError> {
        self.check_present()?;
        self.inner.begin_transaction()
    }

    fn end_transaction(&mut self, disposition: Disposition) -> Result<(), TransportError> {
        self.check_present()?;
        self.inner.end_transaction(disposition)
    }

    fn reconnect(&mut self, disposition: Disposition) -> Result<(), TransportError> {
        self.check_present()?;
        self.inner.reconnect(disposition)
    }

    fn disconnect(&mut self, disposition: Disposition) -> Result<(), TransportError> {
        if self.removed {
            return Ok(());
        }
        self.inner.disconnect(disposition)
    }

    fn control(&mut self, code: u32, data: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.check_present()?;
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

    /// A card with one byte of persistent memory (UPDATE: INS D6, data = the value; READ: INS
    /// B0) and one bit of volatile state (VERIFY: INS 20 sets it; READ answers 6982 without).
    #[derive(Default)]
    struct Memory {
        stored: Arc<Mutex<u8>>,
        verified: bool,
        powered: bool,
    }

    impl VirtualCard for Memory {
        fn atr(&self) -> Vec<u8> {
            vec![0x3B, 0x00]
        }
        fn power_on(&mut self) {
            self.verified = false;
            self.powered = true;
        }
        fn reset(&mut self) {
            self.verified = false;
        }
        fn power_off(&mut self) {
            self.verified = false;
            self.powered = false;
        }
        fn process(&mut self, command: &[u8]) -> Vec<u8> {
            match (command.get(1), command.get(5)) {
                (Some(0x20), _) => {
                    self.verified = true;
                    vec![0x90, 0x00]
                }
                (Some(0xD6), Some(v)) => {
                    *self.stored.lock().unwrap() = *v;
                    vec![0x90, 0x00]
                }
                (Some(0xB0), _) if self.verified => {
                    vec![*self.stored.lock().unwrap(), 0x90, 0x00]
                }
                (Some(0xB0), _) => vec![0x69, 0x82],
                _ => vec![0x6D, 0x00],
            }
        }
    }

    const VERIFY: [u8; 6] = [0x00, 0x20, 0x00, 0x80, 0x01, 0x31];
    const READ: [u8; 5] = [0x00, 0xB0, 0x00, 0x00, 0x01];

    fn update(v: u8) -> [u8; 6] {
        [0x00, 0xD6, 0x00, 0x00, 0x01, v]
    }

    fn setup() -> (Registry, Arc<Mutex<u8>>) {
        let stored = Arc::new(Mutex::new(0));
        let backend = VirtualBackend::new();
        backend.insert(
            "sim:mem",
            Box::new(Memory { stored: Arc::clone(&stored), ..Default::default() }),
        );
        let mut registry = Registry::new();
        registry.add(Box::new(backend));
        (registry, stored)
    }

    fn connect(registry: &mut Registry) -> (Box<dyn CardTransport>, FaultHandle) {
        Faults::wrap(registry.connect(Some("sim:mem"), ShareMode::Shared).unwrap())
    }

    #[test]
    fn nothing_armed_passes_everything_through() {
        let (mut registry, stored) = setup();
        let (mut t, handle) = connect(&mut registry);
        assert_eq!(t.transmit(&update(7)).unwrap(), [0x90, 0x00]);
        assert_eq!(t.transmit(&VERIFY).unwrap(), [0x90, 0x00]);
        assert_eq!(t.transmit(&READ).unwrap(), [7, 0x90, 0x00]);
        assert_eq!((handle.seen(), handle.fired()), (3, None));
        assert_eq!(*stored.lock().unwrap(), 7);
    }

    #[test]
    fn removal_keeps_what_was_written_and_ends_the_connection() {
        let (mut registry, stored) = setup();
        let (mut t, handle) = connect(&mut registry);
        t.transmit(&VERIFY).unwrap();
        handle.arm(2, Fault::Remove);
        t.transmit(&update(5)).unwrap();
        let err = t.transmit(&update(9)).unwrap_err();
        assert!(matches!(err, TransportError::CardRemoved { .. }), "{err}");
        assert_eq!(handle.fired(), Some((Fault::Remove, 0xD6)));
        assert_eq!(*stored.lock().unwrap(), 5, "written before: kept; the pulled one: never");
        // Everything on this connection reports the removal from now on.
        assert!(matches!(t.transmit(&READ), Err(TransportError::CardRemoved { .. })));
        assert!(matches!(t.begin_transaction(), Err(TransportError::CardRemoved { .. })));
        assert!(matches!(t.reconnect(Disposition::Leave), Err(TransportError::CardRemoved { .. })));
        t.disconnect(Disposition::Leave).unwrap();
        // The card "inserted again": a new connection; the PIN state did not survive.
        let (mut again, _) = connect(&mut registry);
        assert_eq!(again.transmit(&READ).unwrap(), [0x69, 0x82]);
        again.transmit(&VERIFY).unwrap();
        assert_eq!(again.transmit(&READ).unwrap(), [5, 0x90, 0x00]);
    }

    #[test]
    fn reset_drops_the_volatile_state_and_is_reported_once() {
        let (mut registry, stored) = setup();
        let (mut t, handle) = connect(&mut registry);
        t.transmit(&VERIFY).unwrap();
        handle.arm(1, Fault::Reset);
        let err = t.transmit(&update(3)).unwrap_err();
        assert!(matches!(err, TransportError::CardReset { .. }), "{err}");
        assert!(err.ends_session());
        assert_eq!(*stored.lock().unwrap(), 0, "the command never reached the card");
        // Reported once; the card lost its authentication.
        assert_eq!(t.transmit(&READ).unwrap(), [0x69, 0x82]);
        t.transmit(&VERIFY).unwrap();
        t.transmit(&update(3)).unwrap();
        assert_eq!(t.transmit(&READ).unwrap(), [3, 0x90, 0x00]);
        assert_eq!(handle.fired(), Some((Fault::Reset, 0xD6)));
    }

    #[test]
    fn a_failed_transfer_may_or_may_not_have_reached_the_card() {
        let (mut registry, stored) = setup();
        let (mut t, handle) = connect(&mut registry);
        t.transmit(&VERIFY).unwrap();
        // Lost on the way to the card: not executed.
        handle.arm(1, Fault::CommandLost);
        let err = t.transmit(&update(1)).unwrap_err();
        assert!(matches!(err, TransportError::Io { .. }), "{err}");
        assert!(!err.ends_session(), "the card was neither reset nor removed");
        assert_eq!(*stored.lock().unwrap(), 0);
        // Executed, the answer lost: the effect is there.
        handle.arm(1, Fault::AnswerLost);
        let err = t.transmit(&update(2)).unwrap_err();
        assert!(matches!(err, TransportError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("INS D6"), "{err}");
        assert_eq!(*stored.lock().unwrap(), 2);
        assert_eq!(handle.fired(), Some((Fault::AnswerLost, 0xD6)));
        // The connection goes on; the security state is untouched.
        assert_eq!(t.transmit(&READ).unwrap(), [2, 0x90, 0x00]);
        assert_eq!(handle.seen(), 4);
    }

    #[test]
    fn the_count_runs_across_connections_sharing_a_handle() {
        let (mut registry, _) = setup();
        let handle = FaultHandle::new();
        let mut a = Faults::new(
            registry.connect(Some("sim:mem"), ShareMode::Shared).unwrap(),
            handle.clone(),
        );
        let mut b = Faults::new(
            registry.connect(Some("sim:mem"), ShareMode::Shared).unwrap(),
            handle.clone(),
        );
        handle.arm(3, Fault::CommandLost);
        a.transmit(&VERIFY).unwrap();
        b.transmit(&VERIFY).unwrap();
        assert!(a.transmit(&READ).is_err());
        assert!(b.transmit(&READ).is_ok());
        handle.arm(1, Fault::Remove);
        handle.disarm();
        assert!(a.transmit(&READ).is_ok());
        assert_eq!(handle.fired(), None, "arming clears a fired fault");
        assert!(format!("{a:?}").contains("sim:mem"));
    }
}
