//! What the card tells without writing: the model's ATR, properties, the logical file
//! system, the card id on several connections, PIN info, and PIN try counters.

use std::collections::BTreeMap;

use scard_iso7816::apdu::Ins;
use scard_iso7816::hex;
use scard_minidriver::fs::decode_cmapfile;
use scard_minidriver::{CardError, FilePath, PinId, PinType};
use scard_transport::Disposition;

use super::{Run, fresh_tries, names, wrong_value};
use crate::conformance_cmd::Status;
use crate::host;

impl Run {
    /// The card was opened with its profile.
    pub(super) fn open(&mut self) {
        let model = self.conn.card.model().clone();
        let reader = self.conn.card.channel().reader().to_owned();
        let how = if self.session.profile().is_some() {
            "as given with --profile"
        } else {
            "as the registry chose it"
        };
        self.push(
            names::OPEN,
            Status::Pass,
            format!(
                "{reader}: model {:?} ({}) from {}, {how}",
                model.name, model.family, model.source
            ),
        );
    }

    /// The card's ATR is one the model names (with its masks).
    pub(super) fn atr(&mut self) {
        let model = self.conn.card.model().clone();
        let atr = self.conn.card.channel().atr().to_vec();
        let atr_hex = hex::encode_upper(&atr);
        if model.atrs.is_empty() {
            self.push(
                names::ATR,
                Status::Skip,
                format!(
                    "{:?} is its family's generic model: it names no ATR (the card was recognised by its application); a model for this card lists ATR {atr_hex}",
                    model.name
                ),
            );
            return;
        }
        match model.atrs.iter().find(|p| p.matches(&atr)) {
            Some(p) => self.push(
                names::ATR,
                Status::Pass,
                format!(
                    "ATR {atr_hex} matches {} (mask {}) of {:?}",
                    hex::encode_upper(&p.value),
                    hex::encode_upper(&p.mask),
                    model.name
                ),
            ),
            None => {
                let patterns: Vec<String> =
                    model.atrs.iter().map(|p| hex::encode_upper(&p.value)).collect();
                self.push(
                    names::ATR,
                    Status::Fail,
                    format!(
                        "ATR {atr_hex} matches none of the ATRs of {:?} ({}): {}",
                        model.name,
                        model.source,
                        patterns.join(", ")
                    ),
                );
            }
        }
    }

    /// Properties, PINs and every container read without a PIN, consistent with each other
    /// and with the model.
    pub(super) fn properties(&mut self) {
        match self.properties_inner() {
            Ok((problems, detail)) if problems.is_empty() => {
                self.push(names::PROPERTIES, Status::Pass, detail);
            }
            Ok((problems, _)) => self.push(names::PROPERTIES, Status::Fail, problems.join("; ")),
            Err(err) => self.push(names::PROPERTIES, Status::Fail, err.to_string()),
        }
    }

    fn properties_inner(&mut self) -> Result<(Vec<String>, String), CardError> {
        let model = self.card().model().clone();
        let props = self.card().properties()?;
        let card_id = self.card().card_id()?;
        self.card().pins()?;
        let listed = self.card().containers()?;
        let mut problems = Vec::new();
        if props.family != model.family {
            problems.push(format!("family {:?}, the model's is {:?}", props.family, model.family));
        }
        if props.model != model.name {
            problems.push(format!("model {:?}, the model file says {:?}", props.model, model.name));
        }
        if props.card_id != card_id {
            problems.push("the card id of the properties differs from cardid".into());
        }
        if props.algorithms.is_empty() {
            problems.push("no algorithms".into());
        }
        if !model.algorithms.is_empty() {
            for a in props.algorithms.iter().filter(|a| !model.algorithms.contains(a)) {
                problems.push(format!("{a} is not among the model's algorithms"));
            }
        }
        if props.key_generation && !model.key_generation {
            problems.push("key generation claimed, the model says none".into());
        }
        if props.read_only != model.read_only {
            problems
                .push(format!("read-only {}, the model says {}", props.read_only, model.read_only));
        }
        if listed.len() > props.max_containers {
            problems.push(format!(
                "{} containers listed, at most {} claimed",
                listed.len(),
                props.max_containers
            ));
        }
        let mut with_keys = 0;
        let mut certificates = 0;
        for c in &listed {
            let index = c.index;
            let full = match self.card().container(index) {
                Ok(full) => full,
                Err(err) => {
                    problems.push(format!("container {index}: {err}"));
                    continue;
                }
            };
            if full.has_key() != c.has_key() {
                problems.push(format!(
                    "container {index}: the list and the container disagree about its key"
                ));
            }
            if full.has_key() {
                with_keys += 1;
                if full.public_key.is_none() {
                    problems.push(format!("container {index}: key without a readable public key"));
                }
            }
            if full.has_certificate {
                certificates += 1;
                match self.card().certificate(index) {
                    Ok(Some(der)) => match host::certificate_key(&der) {
                        Ok(key) if full.public_key.as_ref().is_none_or(|k| *k == key) => {}
                        Ok(_) => problems.push(format!(
                            "container {index}: the certificate's public key is not the container's"
                        )),
                        Err(e) => problems.push(format!("container {index}: {e}")),
                    },
                    Ok(None) => problems
                        .push(format!("container {index}: listed with a certificate, none read")),
                    Err(err) => problems.push(format!("container {index}: certificate: {err}")),
                }
            }
        }
        if props.free_containers != props.max_containers.saturating_sub(with_keys) {
            problems.push(format!(
                "{} free containers claimed; {} of {} hold keys",
                props.free_containers, with_keys, props.max_containers
            ));
        }
        let algorithms: Vec<String> = props.algorithms.iter().map(ToString::to_string).collect();
        let detail = format!(
            "{} {:?}, serial {}, {} containers ({} with keys, {} with certificates, {} free), algorithms {}, key generation {}, read-only {}",
            props.family,
            props.model,
            props.serial,
            props.max_containers,
            with_keys,
            certificates,
            props.free_containers,
            algorithms.join(" "),
            props.key_generation,
            props.read_only
        );
        self.props = Some(props);
        Ok((problems, detail))
    }

    /// The logical file system (Minidriver v7 §5): listed files readable, their sizes as
    /// file info says, and consistent with the card's objects.
    pub(super) fn file_system(&mut self) {
        match self.file_system_inner() {
            Ok((problems, detail)) if problems.is_empty() => {
                self.push(names::FILES, Status::Pass, detail);
            }
            Ok((problems, _)) => self.push(names::FILES, Status::Fail, problems.join("; ")),
            Err(err) => self.push(names::FILES, Status::Fail, err.to_string()),
        }
    }

    fn file_system_inner(&mut self) -> Result<(Vec<String>, String), CardError> {
        let mut problems = Vec::new();
        let root = self.card().list_files(None)?;
        let mscp = self.card().list_files(Some("mscp"))?;
        for required in ["cardid", "cardcf", "cardapps"] {
            if !root.iter().any(|n| n.eq_ignore_ascii_case(required)) {
                problems.push(format!("no {required} in the root"));
            }
        }
        if !mscp.iter().any(|n| n.eq_ignore_ascii_case("cmapfile")) {
            problems.push("no mscp/cmapfile".into());
        }
        let names: Vec<String> = root
            .iter()
            .filter(|n| !n.eq_ignore_ascii_case("mscp"))
            .cloned()
            .chain(mscp.iter().map(|n| format!("mscp/{n}")))
            .collect();
        let mut files = BTreeMap::new();
        for name in &names {
            let path = match FilePath::parse(name) {
                Ok(p) => p,
                Err(err) => {
                    problems.push(format!("{name}: {err}"));
                    continue;
                }
            };
            match self.card().read_file(&path) {
                Ok(data) => {
                    match self.card().file_info(&path) {
                        Ok(info) if info.size == data.len() => {}
                        Ok(info) => problems.push(format!(
                            "{name}: file info says {} bytes, {} read",
                            info.size,
                            data.len()
                        )),
                        Err(err) => problems.push(format!("{name}: file info: {err}")),
                    }
                    files.insert(path.name(), (path, data));
                }
                Err(err) => problems.push(format!("{name}: {err}")),
            }
        }
        let card_id = self.card().card_id()?;
        if let Some((_, data)) = files.get("cardid") {
            if data.as_slice() != card_id.as_slice() {
                problems.push("cardid is not the card id".into());
            }
        }
        if let Some((_, data)) = files.get("cardcf") {
            let now = self.card().cardcf()?;
            match scard_minidriver::CardCf::decode(data) {
                Ok(cf) if cf == now => {}
                Ok(cf) => problems.push(format!("cardcf file {cf:?}, cardcf() {now:?}")),
                Err(err) => problems.push(err.to_string()),
            }
        }
        if let Some((_, data)) = files.get("cardapps") {
            if !data.chunks(8).any(|c| c.starts_with(b"mscp")) {
                problems.push("cardapps does not name mscp".into());
            }
        }
        let containers = self.card().containers()?;
        if let Some((_, data)) = files.get("mscp/cmapfile") {
            match decode_cmapfile(data) {
                Ok(records) => {
                    for c in &containers {
                        let rec = records.get(usize::from(c.index));
                        let valid = rec.is_some_and(|r| r.is_valid());
                        if valid != c.has_key() {
                            problems.push(format!(
                                "cmapfile record {} is {}, the container {} a key",
                                c.index,
                                if valid { "valid" } else { "not valid" },
                                if c.has_key() { "holds" } else { "holds no" }
                            ));
                        }
                        if let (Some(rec), Some(alg)) = (rec, c.algorithm) {
                            let bits = rec.sig_key_bits.max(rec.kx_key_bits);
                            if valid && bits != alg.bits() {
                                problems.push(format!(
                                    "cmapfile record {}: {bits} bits, the key is {alg}",
                                    c.index
                                ));
                            }
                        }
                    }
                }
                Err(err) => problems.push(err.to_string()),
            }
        }
        let mut certs = 0;
        for c in containers.iter().filter(|c| c.has_certificate) {
            let Some(path) = FilePath::certificate(c) else { continue };
            let name = path.name();
            let Some((_, data)) = files.get(&name) else {
                problems.push(format!(
                    "container {} has a certificate, but {name} is not listed",
                    c.index
                ));
                continue;
            };
            let compressed = data.starts_with(&[0x01, 0x00]);
            if compressed != self.conn.card.model().certificate_compression {
                problems.push(format!(
                    "{name} is {}compressed, the model says {}",
                    if compressed { "" } else { "not " },
                    self.conn.card.model().certificate_compression
                ));
            }
            let der = scard_minidriver::fs::decompress_certificate(data);
            let direct = self.card().certificate(c.index)?;
            match der {
                Ok(der) if Some(&der) == direct.as_ref() => certs += 1,
                Ok(_) => problems.push(format!("{name} is not the container's certificate")),
                Err(err) => problems.push(format!("{name}: {err}")),
            }
        }
        let detail = format!(
            "{} files read ({}), cmapfile consistent with the {} container(s), {} certificate file(s)",
            names.len(),
            names.join(" "),
            containers.len(),
            certs
        );
        Ok((problems, detail))
    }

    /// The card id is a real 16-byte identity (Minidriver v7 §5.1.1), the same on a new
    /// connection and after a reconnection.
    pub(super) fn card_id_stable(&mut self) {
        match self.card_id_inner() {
            Ok(Ok(detail)) => self.push(names::CARD_ID, Status::Pass, detail),
            Ok(Err(problem)) => self.push(names::CARD_ID, Status::Fail, problem),
            Err(err) => self.push(names::CARD_ID, Status::Fail, err.to_string()),
        }
    }

    fn card_id_inner(&mut self) -> Result<Result<String, String>, CardError> {
        let id = self.card().card_id()?;
        self.card_id = Some(id);
        let hex_id = hex::encode_upper(&id);
        for n in [1usize, 2, 4, 8] {
            let first = id.get(..n).unwrap_or_default();
            if id.chunks(n).all(|c| c == first) {
                return Ok(Err(format!("{hex_id} is a {n}-byte value repeated, not an identity")));
            }
        }
        let id2 = self.other(|second| second.card.card_id())?;
        if id2 != id {
            return Ok(Err(format!(
                "{hex_id}, then {} on a new connection",
                hex::encode_upper(&id2)
            )));
        }
        let mut raw = self.session.raw()?;
        raw.reconnect(Disposition::Leave)?;
        let mut third = self.session.open(raw)?;
        let id3 = third.card.card_id();
        self.others.add(&third.counter.snapshot());
        let id3 = id3?;
        if id3 != id {
            return Ok(Err(format!(
                "{hex_id}, then {} after a reconnection",
                hex::encode_upper(&id3)
            )));
        }
        let zeros = id.iter().rev().take_while(|b| **b == 0).count();
        let note = if zeros >= 4 {
            format!(" (note: it ends in {zeros} zero bytes: is the card's serial number set?)")
        } else {
            String::new()
        };
        Ok(Ok(format!("{hex_id} on this connection, a new one and a reconnected one{note}")))
    }

    /// PIN info (Minidriver v7 §4.4 PIN_INFO): ids, types and tries readable and consistent.
    pub(super) fn pin_info(&mut self) {
        let pins = match self.card().pins() {
            Ok(p) => p,
            Err(err) => {
                self.push(names::PIN_INFO, Status::Fail, err.to_string());
                return;
            }
        };
        let mut problems = Vec::new();
        let mut described = Vec::new();
        let ids: Vec<PinId> = pins.iter().map(|p| p.id).collect();
        for (i, id) in ids.iter().enumerate() {
            if ids.iter().skip(i + 1).any(|other| other == id) {
                problems.push(format!("{id} listed twice"));
            }
        }
        match pins.iter().find(|p| p.id == PinId::USER) {
            None => problems.push("no user PIN (id 1)".into()),
            Some(p) if p.pin_type == PinType::ChallengeResponse => {
                problems.push("the user PIN is a challenge-response key".into());
            }
            Some(p) if p.tries_left.is_none() => {
                problems.push("the user PIN's tries left cannot be read without a try".into());
            }
            Some(_) => {}
        }
        for p in &pins {
            if p.min_len > p.max_len {
                problems.push(format!("{}: length {}..{}", p.id, p.min_len, p.max_len));
            }
            if p.pin_type != PinType::ChallengeResponse && p.min_len == 0 {
                problems.push(format!("{}: a PIN of length 0", p.id));
            }
            for other in p.change_permission.ids().chain(p.unblock_permission.ids()) {
                if !ids.contains(&other) {
                    problems.push(format!(
                        "{}: its permissions name {other}, which is not listed",
                        p.id
                    ));
                }
            }
            match self.card().tries_left(p.id) {
                Ok(t) if t == p.tries_left || p.tries_left.is_none() => {}
                Ok(t) => problems.push(format!(
                    "{}: PIN info says {:?} tries left, tries_left {t:?}",
                    p.id, p.tries_left
                )),
                Err(err) => problems.push(format!("{}: tries left: {err}", p.id)),
            }
            let tries =
                p.tries_left.map_or_else(|| "tries not told".to_owned(), |n| format!("{n} tries"));
            described.push(format!("{} {:?} {:?} {}", p.id.get(), p.name, p.pin_type, tries));
        }
        if problems.is_empty() {
            self.push(names::PIN_INFO, Status::Pass, described.join("; "));
        } else {
            self.push(names::PIN_INFO, Status::Fail, problems.join("; "));
        }
    }

    /// A wrong value takes exactly one try and a right one gives them back (ISO/IEC 7816-4
    /// §11.5.6: 63Cx). Never below 2 tries left: skipped under 3.
    pub(super) fn pin_tries(&mut self, pin: PinId, name: &str) {
        match self.pin_tries_inner(pin) {
            Ok((status, detail)) => self.push(name, status, detail),
            Err(err) => self.push(name, Status::Fail, err.to_string()),
        }
    }

    fn pin_tries_inner(&mut self, pin: PinId) -> Result<(Status, String), CardError> {
        let pins = self.card().pins()?;
        let Some(info) = pins.iter().find(|p| p.id == pin) else {
            return Ok((Status::Skip, format!("the card has no {pin}")));
        };
        if info.pin_type == PinType::ChallengeResponse {
            return Ok((
                Status::Skip,
                format!("{pin} is a challenge-response key: the card tells no tries left to check"),
            ));
        }
        let value = match pin {
            PinId::ADMIN => self.session.credentials.admin(false),
            _ => self.session.credentials.user(),
        };
        let value = match value {
            Ok(v) => v,
            Err(reason) => return Ok((Status::Skip, reason)),
        };
        let Some(t0) = fresh_tries(self.card(), pin)? else {
            return Ok((
                Status::Skip,
                format!("the card does not tell the tries left of {pin} without a try"),
            ));
        };
        if t0 < 3 {
            // Not even the value given is sent: if it were wrong, fewer than 2 would be left.
            let reason = format!(
                "{pin} has {t0} tries left: the suite sends it only with 3 or more (never fewer than 2 left)"
            );
            self.session.credentials.withhold(pin, reason.clone());
            return Ok((Status::Skip, reason));
        }
        // The value must be right before a try is spent on a wrong one.
        if let Err(err) = self.card().authenticate(pin, &value) {
            self.session.credentials.note(&err);
            return Ok((Status::Fail, format!("the {pin} given was refused: {err}")));
        }
        let Some(t1) = fresh_tries(self.card(), pin)? else {
            return Ok((Status::Fail, format!("tries left of {pin} unreadable after a VERIFY")));
        };
        if t1 < t0 {
            return Ok((Status::Fail, format!("{t0} tries left, {t1} after the right value")));
        }
        let before = self.conn.counter.snapshot();
        let wrong = self.card().authenticate(pin, &wrong_value(&value));
        let verifies = self.conn.counter.snapshot().since(&before).ins(Ins::VERIFY.0);
        let told = match wrong {
            Ok(()) => return Ok((Status::Fail, format!("a wrong {pin} was accepted"))),
            Err(CardError::WrongPin { tries_left, .. }) => tries_left,
            Err(err) => {
                return Ok((Status::Fail, format!("a wrong {pin} was answered with {err}")));
            }
        };
        let t2 = fresh_tries(self.card(), pin)?;
        // Give the tries back before judging.
        if let Err(err) = self.card().authenticate(pin, &value) {
            self.session.credentials.note(&err);
            return Ok((
                Status::Fail,
                format!("the right {pin} was refused after a wrong one: {err}"),
            ));
        }
        let t3 = fresh_tries(self.card(), pin)?;
        let _ = self.card().deauthenticate(pin.set());
        let mut problems = Vec::new();
        if t2 != Some(t1 - 1) {
            problems.push(format!("{t1} tries left, {t2:?} after one wrong value"));
        }
        if told.is_some_and(|n| n != t1 - 1) {
            problems.push(format!(
                "the wrong value was answered with {told:?} tries left, not {}",
                t1 - 1
            ));
        }
        if verifies != 1 {
            problems.push(format!("{verifies} VERIFY APDUs for one wrong value"));
        }
        if t3 != Some(t1) {
            problems.push(format!("{t3:?} tries left after the right value, not {t1}"));
        }
        let told =
            told.map_or_else(|| "count not told".to_owned(), |n| format!("the card said {n}"));
        let detail = format!(
            "{t1} tries, {} after one wrong value ({told}, one VERIFY), {} after the right one",
            t2.map_or_else(|| "?".to_owned(), |n| n.to_string()),
            t3.map_or_else(|| "?".to_owned(), |n| n.to_string())
        );
        if problems.is_empty() {
            Ok((Status::Pass, detail))
        } else {
            Ok((Status::Fail, problems.join("; ")))
        }
    }
}
