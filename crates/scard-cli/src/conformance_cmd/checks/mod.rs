//! The checks of `scard conformance`, in the order they run. Each adds one line (or one per
//! algorithm and operation) to the report; a check that cannot run says why it skipped.
//!
//! - [`card`]: what the card tells without writing (ATR, properties, files, card id, PINs);
//! - [`crypto`]: algorithms, paddings, refusals before the PIN, key generation, certificates;
//! - [`state`]: resets, cleanup, freshness counters, extended length and chaining.

mod card;
mod crypto;
mod state;

use scard_iso7816::hex;
use scard_minidriver::{CardError, CardProperties, Pin, PinId};
use scard_transport::counting::Tally;

use super::keys::{KeyAt, Refusal, Write};
use super::session::{Connection, Session};
use super::{CardJson, Check, Status};
use crate::host::SignCase;

/// The report's check names that are not per algorithm.
pub(crate) mod names {
    pub(crate) const OPEN: &str = "open";
    pub(crate) const ATR: &str = "atr-matches-model";
    pub(crate) const PROPERTIES: &str = "properties-readable";
    pub(crate) const FILES: &str = "file-system";
    pub(crate) const CARD_ID: &str = "card-id-stable";
    pub(crate) const PIN_INFO: &str = "pin-info";
    pub(crate) const TRIES_USER: &str = "pin-tries-user";
    pub(crate) const TRIES_ADMIN: &str = "pin-tries-admin";
    pub(crate) const UNSUPPORTED: &str = "unsupported-refused-before-pin";
    pub(crate) const KEYGEN: &str = "key-generation";
    pub(crate) const CERTIFICATE: &str = "certificate-write-read";
    pub(crate) const RESET_OTHER: &str = "reset-by-another-connection";
    pub(crate) const RECONNECT: &str = "reconnect-reset";
    pub(crate) const CLEANUP: &str = "cleanup";
    pub(crate) const FRESHNESS: &str = "freshness-counters";
    pub(crate) const EXTENDED: &str = "extended-length-and-chaining";
}

/// Why keys could not be made: a missing credential (the check skips) or the card (it fails).
#[derive(Debug)]
struct Blocked {
    skip: bool,
    reason: String,
}

impl From<String> for Blocked {
    fn from(reason: String) -> Self {
        Blocked { skip: false, reason }
    }
}

impl From<&str> for Blocked {
    fn from(reason: &str) -> Self {
        Blocked { skip: false, reason: reason.to_owned() }
    }
}

impl Blocked {
    fn status(&self) -> Status {
        if self.skip { Status::Skip } else { Status::Fail }
    }
}

/// A run over one card.
struct Run {
    /// Declared before the session: connections end before the readers go.
    conn: Connection,
    session: Session,
    destructive: bool,
    checks: Vec<Check>,
    props: Option<CardProperties>,
    card_id: Option<[u8; 16]>,
    /// Writes with the counters around them.
    writes: Vec<Write>,
    /// What was refused, and whether before the PIN.
    refusals: Vec<Refusal>,
    /// Generated keys: what was checked about each.
    generated: Vec<String>,
    generation_problems: Vec<String>,
    /// Why no key could be generated for want of a credential.
    no_credential: Option<String>,
    /// A key this run made and keeps until the cleanup (the certificate check's), and
    /// whether its certificate is still on the card.
    kept: Option<(KeyAt, bool)>,
    /// A key that signs after the user PIN, with a case it signs (for the reset checks).
    signer: Option<(KeyAt, SignCase)>,
    /// What went over the run's other connections.
    others: Tally,
}

/// Runs every check on the session's card.
pub(super) fn run_all(mut session: Session, destructive: bool) -> (Option<CardJson>, Vec<Check>) {
    let conn = match session.connect() {
        Ok(conn) => conn,
        Err(err) => {
            let check = Check {
                name: names::OPEN.into(),
                status: Status::Fail,
                detail: format!("connecting and opening the card with its profile: {err}"),
            };
            return (None, vec![check]);
        }
    };
    let mut run = Run {
        conn,
        session,
        destructive,
        checks: Vec::new(),
        props: None,
        card_id: None,
        writes: Vec::new(),
        refusals: Vec::new(),
        generated: Vec::new(),
        generation_problems: Vec::new(),
        no_credential: None,
        kept: None,
        signer: None,
        others: Tally::default(),
    };
    run.open();
    run.atr();
    run.properties();
    run.file_system();
    run.card_id_stable();
    run.pin_info();
    run.unclaimed_algorithm();
    run.pin_tries(PinId::USER, names::TRIES_USER);
    run.pin_tries(PinId::ADMIN, names::TRIES_ADMIN);
    run.algorithms();
    run.unsupported();
    run.key_generation();
    run.certificate();
    run.reset_by_other();
    run.reconnect_reset();
    run.cleanup();
    run.freshness();
    run.extended_length();
    let card = run.card_json();
    (Some(card), run.checks)
}

/// Tries left of a PIN as the card tells without spending one; a PIN verified in this session
/// (PIV answers VERIFY without data with 9000 then) is logged out first.
fn fresh_tries(
    card: &mut dyn scard_minidriver::CardModule,
    pin: PinId,
) -> Result<Option<u8>, CardError> {
    if let Some(n) = card.tries_left(pin)? {
        return Ok(Some(n));
    }
    if card.deauthenticate(pin.set()).is_err() {
        return Ok(None);
    }
    card.tries_left(pin)
}

/// A value of the same length and characters as `right` that is not `right`.
fn wrong_value(right: &Pin) -> Pin {
    let mut bytes = right.expose().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last = match *last {
            b'0'..=b'8' => *last + 1,
            b'9' => b'0',
            b'x' => b'y',
            _ => b'x',
        };
    }
    Pin::new(bytes)
}

/// Whether an error says that the operation needs a PIN (again).
fn auth_needed(err: &CardError) -> bool {
    matches!(err, CardError::AuthRequired { .. } | CardError::CardReset { .. })
        || matches!(err, CardError::Status { sw, .. } if sw.0 == 0x6982)
}

fn list(items: &[String]) -> String {
    if items.is_empty() { "none".to_owned() } else { items.join(", ") }
}

impl Run {
    fn push(&mut self, name: &str, status: Status, detail: impl Into<String>) {
        self.checks.push(Check { name: name.to_owned(), status, detail: detail.into() });
    }

    /// Runs `f` on a new connection (another application's view of the card); its APDUs
    /// count in the run's totals.
    fn other<R>(
        &mut self,
        f: impl FnOnce(&mut Connection) -> Result<R, CardError>,
    ) -> Result<R, CardError> {
        let mut conn = self.session.connect()?;
        let result = f(&mut conn);
        self.others.add(&conn.counter.snapshot());
        result
    }

    fn card(&mut self) -> &mut dyn scard_minidriver::CardModule {
        self.conn.card.as_mut()
    }

    fn card_json(&mut self) -> CardJson {
        let model = self.conn.card.model().clone();
        let channel = self.conn.card.channel();
        CardJson {
            reader: channel.reader().to_owned(),
            atr: hex::encode_upper(channel.atr()),
            model: model.name,
            family: model.family,
            model_source: model.source,
            card_id: self.card_id.map(|id| hex::encode_upper(&id)),
        }
    }
}
