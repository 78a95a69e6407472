//! Card state: recovery from resets, the cleanup of what the run made, the `cardcf`
//! counters around every write, and how commands over 255 bytes went.

use scard_iso7816::apdu::Ins;
use scard_iso7816::hex;
use scard_minidriver::{PinId, PinSet};
use scard_transport::Disposition;

use super::super::keys::{self, Write};
use super::{Run, auth_needed, names};
use crate::conformance_cmd::Status;

impl Run {
    /// After a reset, the next operation works and the authentication is gone: the channel
    /// counts no PIN, and a key that needs the user PIN refuses to sign until it is verified
    /// again.
    fn after_reset(&mut self) -> Result<String, String> {
        let id = self.card().card_id().map_err(|e| format!("the next operation failed: {e}"))?;
        if Some(id) != self.card_id {
            return Err(format!("card id {} after the reset", hex::encode_upper(&id)));
        }
        let verified = self.card().channel().authenticated();
        if verified != PinSet::NONE {
            return Err(format!("the session still counts {verified:?} as verified"));
        }
        let Some((key, case)) = self.signer.clone() else {
            return Ok("card id read again, no PIN counted as verified (no key that needs the user PIN to show the card's side)".into());
        };
        let input = case.input(key.algorithm)?;
        let request = case.request(&input);
        let before = self.conn.counter.snapshot();
        let refused_by = match self.card().sign(key.index(), &request) {
            Ok(_) => return Err("a signature was made without the PIN after the reset".into()),
            Err(err) if auth_needed(&err) => {
                if self.conn.counter.snapshot().since(&before).apdus == 0 {
                    "by the profile, whose authentication state the reset dropped"
                } else {
                    "by the card"
                }
            }
            Err(err) => return Err(format!("signing without the PIN answered {err}")),
        };
        self.session
            .credentials
            .verify(self.conn.card.as_mut(), PinId::USER)
            .map_err(|e| format!("VERIFY after the reset: {e}"))?;
        let signature = self
            .card()
            .sign(key.index(), &request)
            .map_err(|e| format!("signing after VERIFY: {e}"))?;
        case.verify(&key.public, &signature)
            .map_err(|e| format!("the signature after the reset does not verify: {e}"))?;
        Ok(format!(
            "card id read again; {} in container {} refused without the PIN ({refused_by}), signs after VERIFY",
            case.name,
            key.index()
        ))
    }

    /// Verifies the user PIN when a key needs it, so that a reset has something to drop.
    fn verify_before_reset(&mut self) -> Result<(), String> {
        if self.signer.is_some() {
            self.session
                .credentials
                .verify(self.conn.card.as_mut(), PinId::USER)
                .map_err(|e| format!("VERIFY before the reset: {e}"))?;
        }
        Ok(())
    }

    /// Another application resets the card (SCardReconnect with SCARD_RESET_CARD on its own
    /// connection): this connection learns of it and recovers.
    pub(super) fn reset_by_other(&mut self) {
        let result = (|| {
            self.verify_before_reset()?;
            let mut other = self.session.raw().map_err(|e| format!("a second connection: {e}"))?;
            other.reconnect(Disposition::Reset).map_err(|e| format!("resetting the card: {e}"))?;
            drop(other);
            self.after_reset()
        })();
        match result {
            Ok(detail) => self.push(names::RESET_OTHER, Status::Pass, detail),
            Err(problem) => self.push(names::RESET_OTHER, Status::Fail, problem),
        }
    }

    /// This connection reconnects with a reset (SCARD_RESET_CARD): the application is selected
    /// again and the authentication is gone.
    pub(super) fn reconnect_reset(&mut self) {
        let result = (|| {
            self.verify_before_reset()?;
            let channel = self.conn.card.channel();
            channel
                .transport()
                .reconnect(Disposition::Reset)
                .map_err(|e| format!("reconnecting with a reset: {e}"))?;
            channel.forget_selection();
            channel.clear_authenticated(PinSet(0xFF));
            self.after_reset()
        })();
        match result {
            Ok(detail) => self.push(names::RECONNECT, Status::Pass, detail),
            Err(problem) => self.push(names::RECONNECT, Status::Fail, problem),
        }
    }

    /// Removes what the run created.
    pub(super) fn cleanup(&mut self) {
        let Some((key, has_certificate)) = self.kept.take() else {
            let detail = if self.destructive {
                "nothing left to remove"
            } else {
                "nothing written without --destructive"
            };
            self.push(names::CLEANUP, Status::Skip, detail);
            return;
        };
        let index = key.index();
        let mut problems = Vec::new();
        if has_certificate {
            if let Err(err) = keys::put_certificate(
                &mut self.conn,
                &mut self.session.credentials,
                &mut self.writes,
                index,
                None,
            ) {
                problems.push(format!("removing the certificate of container {index}: {err}"));
            }
            match self.card().certificate(index) {
                Ok(None) => {}
                Ok(Some(_)) => problems.push(format!("container {index} still has a certificate")),
                Err(err) => problems.push(format!("container {index}: {err}")),
            }
        }
        if let Err(problem) = self.delete_checked(index) {
            problems.push(problem);
        }
        if let Some((signer, _)) = &self.signer {
            if signer.index() == index {
                self.signer = None;
            }
        }
        if problems.is_empty() {
            self.push(
                names::CLEANUP,
                Status::Pass,
                format!("container {index} emptied (key{}); every other key made by the run was deleted after use", if has_certificate { " and certificate" } else { "" }),
            );
        } else {
            self.push(names::CLEANUP, Status::Fail, problems.join("; "));
        }
    }

    /// Minidriver v7 §5.1.2: every write moves its `cardcf` counter; a card that keeps them
    /// shows the same counters to a new connection. A PIN change (to the same value) moves
    /// the PIN counter.
    pub(super) fn freshness(&mut self) {
        if !self.destructive {
            self.push(names::FRESHNESS, Status::Skip, "nothing written without --destructive");
            return;
        }
        let mut notes = Vec::new();
        match self.session.credentials.user() {
            Ok(pin) => {
                let before = self.card().cardcf().ok();
                let changed = self.card().change_pin(PinId::USER, &pin, &pin);
                let after = self.card().cardcf().ok();
                match changed {
                    Ok(()) => self.writes.push(Write {
                        what: "change the user PIN (to itself)".into(),
                        before,
                        after,
                        counter: keys::Counter::Pins,
                    }),
                    Err(err) => {
                        self.session.credentials.note(&err);
                        notes.push(format!("changing the user PIN to itself failed: {err}"));
                    }
                }
            }
            Err(reason) => notes.push(format!("PIN change not tried: {reason}")),
        }
        if self.writes.is_empty() {
            self.push(names::FRESHNESS, Status::Skip, "nothing was written");
            return;
        }
        let mut problems: Vec<String> = self
            .writes
            .iter()
            .filter(|w| !w.moved())
            .map(|w| {
                format!(
                    "{}: {:?} counter did not move ({:?} -> {:?})",
                    w.what, w.counter, w.before, w.after
                )
            })
            .collect();
        problems.extend(notes.iter().filter(|n| n.contains("failed")).cloned());
        let on_card = self.conn.card.freshness_on_card();
        if on_card {
            let mine = self.card().cardcf();
            let theirs = self.other(|other| other.card.cardcf());
            match (mine, theirs) {
                (Ok(a), Ok(b)) if a == b => {}
                (Ok(a), Ok(b)) => {
                    problems.push(format!("a new connection reads {b:?}, this one {a:?}"))
                }
                (Err(e), _) | (_, Err(e)) => problems.push(format!("cardcf: {e}")),
            }
        }
        if problems.is_empty() {
            let kinds = |c: keys::Counter| self.writes.iter().filter(|w| w.counter == c).count();
            let detail = format!(
                "{} writes, each moved its counter ({} containers, {} files, {} PINs); counters {}",
                self.writes.len(),
                kinds(keys::Counter::Containers),
                kinds(keys::Counter::Files),
                kinds(keys::Counter::Pins),
                if on_card {
                    "kept on the card: a new connection reads the same"
                } else {
                    "kept by the profile for its connection"
                }
            );
            self.push(names::FRESHNESS, Status::Pass, detail);
        } else {
            self.push(names::FRESHNESS, Status::Fail, problems.join("; "));
        }
    }

    /// Commands and responses over 255 bytes went as the model (and the reader) allow:
    /// extended-length APDUs when both take them, else command chaining and GET RESPONSE.
    pub(super) fn extended_length(&mut self) {
        let mut tally = self.conn.counter.snapshot();
        tally.add(&self.others);
        let model = self.conn.card.model().limits;
        let limits = self.conn.card.channel().limits();
        let reader_ext = self.conn.card.channel().transport().extended_length();
        let big_command = tally.chained > 0 || tally.max_command_data > 255;
        let big_response = tally.max_response > 258 || tally.ins(Ins::GET_RESPONSE.0) > 0;
        let seen = format!(
            "model: extended length {}, chaining {}, Nc {} / Ne {}; in use: extended {}{}; seen: {} extended commands, {} chained parts, {} GET RESPONSE, largest command {} bytes ({} data), largest response {} bytes",
            model.extended_length,
            model.command_chaining,
            model.max_command_data,
            model.max_response_data,
            limits.extended_length,
            if reader_ext { "" } else { " (the reader passes no extended APDUs)" },
            tally.extended,
            tally.chained,
            tally.ins(Ins::GET_RESPONSE.0),
            tally.max_command,
            tally.max_command_data,
            tally.max_response
        );
        if !big_command && !big_response {
            self.push(
                names::EXTENDED,
                Status::Skip,
                format!(
                    "no command or response over 255 bytes in this run{}; {seen}",
                    if self.destructive {
                        ""
                    } else {
                        " (--destructive writes a certificate that needs them)"
                    }
                ),
            );
            return;
        }
        let mut problems = Vec::new();
        if !limits.extended_length && tally.extended > 0 {
            problems.push("extended APDUs sent where the limits allow short ones only".to_owned());
        }
        if limits.extended_length && big_command && tally.extended == 0 {
            problems.push(
                "commands over 255 bytes were chained although extended length is in use"
                    .to_owned(),
            );
        }
        if !limits.extended_length && big_command && tally.chained == 0 {
            problems.push("a command over 255 bytes went unchained in short form".to_owned());
        }
        if !limits.extended_length && tally.max_response > 258 {
            problems.push(format!("a {}-byte response to a short APDU", tally.max_response));
        }
        if !limits.command_chaining && tally.chained > 0 {
            problems.push(
                "chained commands although the model says the card does not chain".to_owned(),
            );
        }
        if model.extended_length && reader_ext && !limits.extended_length {
            problems
                .push("the model declares extended length, the profile does not use it".to_owned());
        }
        if problems.is_empty() {
            self.push(names::EXTENDED, Status::Pass, seen);
        } else {
            self.push(names::EXTENDED, Status::Fail, format!("{}; {seen}", problems.join("; ")));
        }
    }
}
