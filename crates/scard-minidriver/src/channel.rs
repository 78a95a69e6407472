//! The card channel: one connection to a card as a profile sees it. It sends logical commands
//! through scard-iso7816's exchange engine with the card model's limits, keeps transactions
//! nested, remembers the selected application and the PINs verified in this session, and
//! turns a reset notice into lost state.

use scard_iso7816::apdu::Ins;
use scard_iso7816::{CardLimits, CommandApdu, ResponseApdu, StatusWord};
use scard_transport::{CardTransport, Disposition, TransportError};

use crate::cache::{ObjectStore, Objects};
use crate::error::{CardError, Result};
use crate::types::{PinId, PinSet};

/// Counters of what went over the channel (for `scard bench` and the APDU-count goals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelStats {
    /// Logical commands sent (each may be several APDUs).
    pub commands: u64,
    /// Resets seen.
    pub resets: u64,
}

/// A connection to a card with the state a profile needs across calls.
pub struct CardChannel {
    transport: Box<dyn CardTransport>,
    limits: CardLimits,
    depth: u32,
    selected: Option<Vec<u8>>,
    authenticated: PinSet,
    stats: ChannelStats,
    /// Outermost transactions begun so far.
    transactions: u64,
    /// Where the profile may keep public card objects across processes.
    store: Option<ObjectStore>,
    /// The object store's entries to write when the outermost transaction ends.
    pending: Option<PendingObjects>,
}

/// One family's entries for the object store, written when the transaction ends: a listing
/// that reads several objects writes the file once, not once per object.
#[derive(Debug)]
struct PendingObjects {
    card_id: [u8; 16],
    family: &'static str,
    validator: Vec<u8>,
    objects: Objects,
}

impl std::fmt::Debug for CardChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardChannel")
            .field("reader", &self.transport.reader())
            .field("limits", &self.limits)
            .field("transaction_depth", &self.depth)
            .field("authenticated", &self.authenticated)
            .finish()
    }
}

impl CardChannel {
    /// A channel over a connected transport with short-APDU limits until a profile sets the
    /// card model's.
    pub fn new(transport: Box<dyn CardTransport>) -> Self {
        Self {
            transport,
            limits: CardLimits::default(),
            depth: 0,
            selected: None,
            authenticated: PinSet::NONE,
            stats: ChannelStats::default(),
            transactions: 0,
            store: None,
            pending: None,
        }
    }

    /// Lets the profile keep public card objects (certificates, public keys) across
    /// processes in `store` (`None`: in this process only).
    pub fn set_object_store(&mut self, store: Option<ObjectStore>) {
        self.store = store;
    }

    /// Where the profile may keep public card objects across processes, if anywhere.
    pub fn object_store(&self) -> Option<&ObjectStore> {
        self.store.as_ref()
    }

    /// Keeps `objects` as the store's entries for this card and family (replacing the file;
    /// see [`ObjectStore::store`]). Inside a transaction the write waits for the outermost
    /// transaction to end, so the last entries given are written once; outside one it is
    /// written now. Public data only. A store that cannot be written costs later processes
    /// a read of the card, nothing else: the failure is logged, not returned.
    pub fn store_objects(
        &mut self,
        card_id: [u8; 16],
        family: &'static str,
        validator: Vec<u8>,
        objects: Objects,
    ) {
        if self.store.is_none() {
            return;
        }
        let entry = PendingObjects { card_id, family, validator, objects };
        if let Some(earlier) = self.pending.take() {
            if (earlier.card_id, earlier.family) != (card_id, family) {
                self.write_objects(earlier);
            }
        }
        if self.depth > 0 {
            self.pending = Some(entry);
        } else {
            self.write_objects(entry);
        }
    }

    fn write_objects(&self, p: PendingObjects) {
        let Some(store) = &self.store else { return };
        if let Err(err) = store.store(&p.card_id, p.family, &p.validator, &p.objects) {
            tracing::warn!("{} object store: {err}", p.family);
        }
    }

    /// The reader's name.
    pub fn reader(&self) -> &str {
        self.transport.reader()
    }

    /// The card's ATR.
    pub fn atr(&self) -> &[u8] {
        self.transport.atr()
    }

    /// The transport (for calls the channel does not wrap).
    pub fn transport(&mut self) -> &mut dyn CardTransport {
        self.transport.as_mut()
    }

    /// Gives the transport back (ends nothing).
    pub fn into_transport(self) -> Box<dyn CardTransport> {
        self.transport
    }

    /// The limits in use.
    pub fn limits(&self) -> CardLimits {
        self.limits
    }

    /// Sets the limits (from the card model and what the card says); extended length is kept
    /// only when the reader passes it too.
    pub fn set_limits(&mut self, mut limits: CardLimits) {
        if !self.transport.extended_length() {
            limits.extended_length = false;
            limits.max_command_data =
                limits.max_command_data.min(scard_iso7816::apdu::MAX_SHORT_NC);
            limits.max_response_data =
                limits.max_response_data.min(scard_iso7816::apdu::MAX_SHORT_NE);
        }
        self.limits = limits;
    }

    /// Counters.
    pub fn stats(&self) -> ChannelStats {
        self.stats
    }

    /// Begins a transaction, or joins the one already open (transactions nest; the card is
    /// released when the outermost ends).
    pub fn begin(&mut self) -> Result<()> {
        if self.depth == 0 {
            match self.transport.begin_transaction() {
                Ok(()) => {}
                // Another application reset the card since our last transaction: the notice
                // arrives here. The session state is dropped (`lost`) and the transaction
                // begins on the reset card; the next command selects the application again.
                // Each notice is of one reset; while we waited for the card, others may have
                // reset it again (a few times at most are waited through).
                Err(err @ TransportError::CardReset { .. }) => {
                    let mut last = self.lost(err);
                    let mut begun = false;
                    for _ in 0..RESETS_WAITED_THROUGH {
                        match self.transport.begin_transaction() {
                            Ok(()) => {
                                begun = true;
                                break;
                            }
                            Err(err @ TransportError::CardReset { .. }) => last = self.lost(err),
                            Err(err) => return Err(self.lost(err)),
                        }
                    }
                    if !begun {
                        return Err(last);
                    }
                }
                Err(err) => return Err(self.lost(err)),
            }
            self.transactions += 1;
        }
        self.depth += 1;
        Ok(())
    }

    /// How many outermost transactions were begun on this channel: a profile that caches
    /// card data validates it once per transaction (another application may have changed the
    /// card between two), and this number tells one transaction from the next.
    pub fn transaction_count(&self) -> u64 {
        self.transactions
    }

    /// Ends one level of transaction.
    pub fn end(&mut self) -> Result<()> {
        match self.depth {
            0 => Ok(()),
            1 => {
                self.depth = 0;
                let ended =
                    self.transport.end_transaction(Disposition::Leave).map_err(|e| self.lost(e));
                // After the card is released: the file is ours, not the card's.
                if let Some(p) = self.pending.take() {
                    self.write_objects(p);
                }
                ended
            }
            _ => {
                self.depth -= 1;
                Ok(())
            }
        }
    }

    /// Runs `f` inside a transaction (joining an open one).
    pub fn in_transaction<R>(&mut self, f: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        self.begin()?;
        let result = f(self);
        let ended = self.end();
        let value = result?;
        ended?;
        Ok(value)
    }

    /// Whether a transaction is open.
    pub fn in_transaction_now(&self) -> bool {
        self.depth > 0
    }

    /// The PINs verified in this session (dropped on reset).
    pub fn authenticated(&self) -> PinSet {
        self.authenticated
    }

    /// Records a successful authentication.
    pub fn set_authenticated(&mut self, pin: PinId) {
        self.authenticated = self.authenticated.with(pin);
    }

    /// Forgets authentications.
    pub fn clear_authenticated(&mut self, set: PinSet) {
        self.authenticated = self.authenticated.without(set);
    }

    /// The AID selected last, if any.
    pub fn selected(&self) -> Option<&[u8]> {
        self.selected.as_deref()
    }

    /// Forgets the selected application (the next [`CardChannel::select`] sends SELECT).
    pub fn forget_selection(&mut self) {
        self.selected = None;
    }

    /// Selects an application by AID (SELECT, P1 04, P2 00: ISO/IEC 7816-4 §11.1.1), unless
    /// it is the one selected last in this session. Returns the FCI (empty when nothing was
    /// sent). Any status other than 9000 is an error.
    pub fn select(&mut self, aid: &[u8]) -> Result<Vec<u8>> {
        if self.selected.as_deref() == Some(aid) {
            return Ok(Vec::new());
        }
        let cmd = CommandApdu::new(0x00, Ins::SELECT.0, 0x04, 0x00)
            .with_data(aid.to_vec())
            .and_then(|c| c.with_ne(256))
            .map_err(|source| CardError::Codec { operation: "SELECT", source })?;
        let response = match self.transmit_raw(&cmd) {
            // The card was reset before this command (pcsc-lite may report a reset by another
            // application at the first command of our transaction): nothing of the session
            // is left, and selecting is what comes first anyway.
            Err(CardError::Transport(TransportError::CardReset { .. })) => {
                self.transmit_raw(&cmd)?
            }
            other => other?,
        };
        if response.sw() != StatusWord::SUCCESS {
            return Err(CardError::Status { operation: "SELECT", sw: response.sw() });
        }
        self.selected = Some(aid.to_vec());
        Ok(response.data().to_vec())
    }

    /// Sends one logical command and returns the complete response, whatever its status.
    ///
    /// When the transport reports that someone reset the card, the session's state is
    /// dropped (selection, authentications); if an application was selected it is selected
    /// again and the command is sent once more — unless it is a command whose meaning depends
    /// on authentication (VERIFY, CHANGE/RESET RETRY COUNTER, PSO, GENERAL/INTERNAL
    /// AUTHENTICATE, GENERATE ASYMMETRIC KEY PAIR, PUT DATA), which fails with
    /// [`CardError::CardReset`] so the caller authenticates again first.
    pub fn transmit(&mut self, operation: &'static str, cmd: &CommandApdu) -> Result<ResponseApdu> {
        // The reset notice clears the selection (`lost`): remember what was selected.
        let selected = self.selected.clone();
        match self.transmit_raw(cmd) {
            Err(CardError::Transport(TransportError::CardReset { .. })) => {
                let Some(aid) = selected else {
                    return self.transmit_raw(cmd);
                };
                if needs_auth_state(cmd.ins().0) {
                    return Err(CardError::CardReset { operation });
                }
                self.select(&aid)?;
                self.transmit_raw(cmd)
            }
            other => other,
        }
    }

    /// Sends a command and requires 9000, mapping other status words with
    /// [`CardError::from_status`] (PIN errors for `pin`).
    pub fn transmit_ok(
        &mut self,
        operation: &'static str,
        cmd: &CommandApdu,
        pin: Option<PinId>,
    ) -> Result<Vec<u8>> {
        let response = self.transmit(operation, cmd)?;
        if response.sw() == StatusWord::SUCCESS {
            Ok(response.data().to_vec())
        } else {
            Err(CardError::from_status(operation, response.sw(), pin))
        }
    }

    fn transmit_raw(&mut self, cmd: &CommandApdu) -> Result<ResponseApdu> {
        self.stats.commands += 1;
        scard_transport::exchange(self.transport.as_mut(), cmd, self.limits)
            .map_err(|e| self.lost(e))
    }

    /// Drops session state on errors that end it.
    fn lost(&mut self, err: TransportError) -> CardError {
        if err.ends_session() {
            self.stats.resets += 1;
            self.selected = None;
            self.authenticated = PinSet::NONE;
        }
        CardError::Transport(err)
    }

    /// Resets the card to drop its security state (what a card without a logout command
    /// needs). Outside a transaction of ours, the reset ends a transaction of its own (PC/SC:
    /// SCardEndTransaction with SCARD_RESET_CARD), so it never cuts another application's
    /// exchange short, as a reconnection with a reset may (pcsc-lite checks the transaction
    /// lock only when the reconnection starts). The session's state goes with it.
    pub fn reset_card(&mut self) -> Result<()> {
        let result = if self.depth > 0 {
            self.transport.reconnect(Disposition::Reset)
        } else {
            self.begin()?;
            self.depth = 0;
            self.transport.end_transaction(Disposition::Reset)
        };
        self.selected = None;
        self.authenticated = PinSet::NONE;
        result.map_err(|e| self.lost(e))
    }
}

/// Reset notices waited through when a transaction begins (each is one reset by another
/// application while we waited for the card).
const RESETS_WAITED_THROUGH: usize = 4;

/// Commands whose result depends on the card's security state (ISO/IEC 7816-4 §11.5-11.6 and
/// the families' PSO / key commands): never sent blindly again after a reset.
fn needs_auth_state(ins: u8) -> bool {
    matches!(ins, 0x20 | 0x21 | 0x24 | 0x2C | 0x2A | 0x86 | 0x87 | 0x88 | 0x47 | 0xDA | 0xDB)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    /// A card that is always there and never spoken to.
    struct Quiet;

    impl CardTransport for Quiet {
        fn reader(&self) -> &str {
            "test:quiet"
        }
        fn atr(&self) -> &[u8] {
            &[0x3B, 0x00]
        }
        fn protocol(&self) -> scard_transport::Protocol {
            scard_transport::Protocol::T1
        }
        fn transmit(&mut self, _: &[u8]) -> std::result::Result<Vec<u8>, TransportError> {
            Ok(vec![0x90, 0x00])
        }
        fn begin_transaction(&mut self) -> std::result::Result<(), TransportError> {
            Ok(())
        }
        fn end_transaction(&mut self, _: Disposition) -> std::result::Result<(), TransportError> {
            Ok(())
        }
        fn reconnect(&mut self, _: Disposition) -> std::result::Result<(), TransportError> {
            Ok(())
        }
        fn disconnect(&mut self, _: Disposition) -> std::result::Result<(), TransportError> {
            Ok(())
        }
        fn set_timeout(&mut self, _: Duration) {}
    }

    fn entries(value: u8) -> Objects {
        Objects::from([("pub-1".to_owned(), vec![value; 3])])
    }

    #[test]
    fn object_store_writes_wait_for_the_outermost_transaction() {
        let dir = std::env::temp_dir().join(format!("scard-channel-{}", std::process::id()));
        let store = ObjectStore::new(&dir);
        let (id, other) = ([1u8; 16], [2u8; 16]);
        let mut channel = CardChannel::new(Box::new(Quiet));
        channel.set_object_store(Some(store.clone()));

        channel.begin().unwrap();
        channel.begin().unwrap();
        channel.store_objects(id, "openpgp", b"v".to_vec(), entries(1));
        channel.end().unwrap();
        channel.store_objects(id, "openpgp", b"v".to_vec(), entries(2));
        assert!(store.load(&id, "openpgp", b"v").is_empty(), "written inside the transaction");
        // Another card's entries: the earlier ones are written first, not lost.
        channel.store_objects(other, "openpgp", b"w".to_vec(), entries(3));
        assert_eq!(store.load(&id, "openpgp", b"v"), entries(2));
        assert!(store.load(&other, "openpgp", b"w").is_empty());
        channel.end().unwrap();
        assert_eq!(store.load(&other, "openpgp", b"w"), entries(3));

        // Outside a transaction: at once.
        channel.store_objects(id, "openpgp", b"v".to_vec(), entries(4));
        assert_eq!(store.load(&id, "openpgp", b"v"), entries(4));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
