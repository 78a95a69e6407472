//! Keys: every claimed algorithm in every operation and padding (existing keys, else keys
//! generated in free containers), refusals before the PIN, key generation, and a certificate
//! written and read back.

use std::collections::BTreeMap;

use scard_iso7816::apdu::Ins;
use scard_minidriver::{CardError, CardProperties, Curve, FilePath, KeyAlgorithm, PinId};

use super::super::keys::{self, KeyAt, Op, Refusal, Trial, no_credential};
use super::{Blocked, Run, list, names};
use crate::conformance_cmd::Status;
use crate::host;

impl Run {
    /// An algorithm the card does not claim is refused before anything is sent (asked before
    /// any authentication of this run, so that a profile that sent it anyway would meet a
    /// card that refuses it too).
    pub(super) fn unclaimed_algorithm(&mut self) {
        let Some(props) = self.props.clone() else { return };
        let candidates = [
            KeyAlgorithm::Ec(Curve::P521),
            KeyAlgorithm::Rsa(1024),
            KeyAlgorithm::Rsa(3072),
            KeyAlgorithm::Ec(Curve::P384),
            KeyAlgorithm::Rsa(4096),
        ];
        let Some(alg) = candidates.into_iter().find(|a| !props.algorithms.contains(a)) else {
            return;
        };
        let Ok((_, free)) = keys::inventory(self.card()) else { return };
        let Some(index) = free.first().copied() else { return };
        let before = self.conn.counter.snapshot();
        let result = self.card().generate_key(index, alg);
        let delta = self.conn.counter.snapshot().since(&before);
        let sent = delta.ins(Ins::VERIFY.0)
            + delta.ins(Ins::GENERATE_ASYMMETRIC_KEY_PAIR.0)
            + delta.ins(Ins::GENERATE_KEY_PAIR_46.0);
        let what = format!("generate {alg} (not claimed) in container {index}");
        let (ok, detail) = match &result {
            Err(err @ CardError::Unsupported { .. }) if sent == 0 => {
                (true, format!("{what}: {err}"))
            }
            Err(err) => {
                (false, format!("{what}: answered {err} after {sent} VERIFY/GENERATE APDU(s)"))
            }
            Ok(_) => (false, format!("{what}: the card generated it")),
        };
        if result.is_ok() {
            // It must not stay: remove it (this needs the admin).
            let removed = self
                .session
                .credentials
                .admin_write(self.conn.card.as_mut(), |card| card.delete_container(index));
            if let Err(err) = removed {
                self.generation_problems.push(format!("{what}: could not remove it: {err}"));
            }
        }
        self.refusals.push(Refusal { what, ok, detail });
    }

    /// Every algorithm the card claims, in every operation it is for, with every padding the
    /// profile accepts: existing keys first; with --destructive, keys generated in free
    /// containers (and deleted again) for what the existing keys do not cover.
    pub(super) fn algorithms(&mut self) {
        let Some(props) = self.props.clone() else {
            self.push("sign", Status::Fail, "the card's properties could not be read");
            return;
        };
        let (existing, free) = match keys::inventory(self.card()) {
            Ok(x) => x,
            Err(err) => {
                self.push("sign", Status::Fail, format!("listing the containers: {err}"));
                return;
            }
        };
        // Containers that served an operation before, per key type: tried first.
        let mut learned: BTreeMap<(bool, Op), Vec<u8>> = BTreeMap::new();
        for alg in props.algorithms.clone() {
            let ops = Op::for_algorithm(alg);
            if !host::host_supports(alg) {
                for op in ops {
                    let name = format!("{}-{alg}", op.name());
                    self.push(&name, Status::Skip, format!("the host cannot check {alg}"));
                }
                continue;
            }
            let mut done: BTreeMap<Op, (String, Trial)> = BTreeMap::new();
            let mut blocked: Option<Blocked> = None;
            for key in existing.iter().filter(|k| k.algorithm == alg) {
                let source = format!("existing key in container {}", key.index());
                self.try_key(key, &ops, &mut done, source, true);
                let mismatched = keys::mismatched(&mut self.conn, key);
                self.refusals.extend(mismatched);
            }
            let wants_keys = ops.iter().any(|op| !done.contains_key(op));
            if wants_keys && self.destructive && props.key_generation && !props.read_only {
                let mut order: Vec<u8> = Vec::new();
                for op in ops.iter().filter(|op| !done.contains_key(op)) {
                    for c in learned.get(&(alg.is_rsa(), *op)).into_iter().flatten() {
                        if free.contains(c) && !order.contains(c) {
                            order.push(*c);
                        }
                    }
                }
                for c in &free {
                    if !order.contains(c) {
                        order.push(*c);
                    }
                }
                let mut mismatched_done = false;
                for index in order {
                    if ops.iter().all(|op| done.contains_key(op)) {
                        break;
                    }
                    let key = match self.generate_checked(index, alg) {
                        Ok(key) => key,
                        Err(reason) => {
                            blocked = Some(reason);
                            break;
                        }
                    };
                    let source = format!("key generated in container {index}");
                    let covered = self.try_key(&key, &ops, &mut done, source, false);
                    for op in covered {
                        learned.entry((alg.is_rsa(), op)).or_default().push(index);
                    }
                    if !mismatched_done {
                        let mismatched = keys::mismatched(&mut self.conn, &key);
                        self.refusals.extend(mismatched);
                        mismatched_done = true;
                    }
                    if let Err(reason) = self.delete_checked(index) {
                        blocked = Some(reason.into());
                        break;
                    }
                }
            }
            for op in ops {
                let name = format!("{}-{alg}", op.name());
                let (status, detail) = match (done.remove(&op), &blocked) {
                    (Some((source, trial)), _) => judge(&source, &trial),
                    (None, Some(blocked)) => (blocked.status(), blocked.reason.clone()),
                    (None, None) if !self.destructive => (
                        Status::Skip,
                        format!(
                            "no {alg} key on the card that can {}; --destructive generates one",
                            op.name()
                        ),
                    ),
                    (None, None) if !props.key_generation || props.read_only => (
                        Status::Skip,
                        format!(
                            "no {alg} key on the card that can {}, and the card generates none",
                            op.name()
                        ),
                    ),
                    (None, None) => (
                        Status::Fail,
                        format!("no free container took a {alg} key that can {}", op.name()),
                    ),
                };
                self.push(&name, status, detail);
            }
        }
    }

    /// Tries the operations not done yet on a key; returns those it can do. A key that stays
    /// on the card (`lasting`) and signs after the user PIN serves the reset checks.
    fn try_key(
        &mut self,
        key: &KeyAt,
        ops: &[Op],
        done: &mut BTreeMap<Op, (String, Trial)>,
        source: String,
        lasting: bool,
    ) -> Vec<Op> {
        let mut covered = Vec::new();
        for op in ops {
            if done.contains_key(op) {
                continue;
            }
            let trial = keys::exercise(&mut self.conn, &mut self.session.credentials, key, *op);
            self.refusals.extend(trial.refused.iter().cloned());
            if trial.capable {
                if let Some(case) = trial.signer {
                    if lasting && key.info.pin == PinId::USER && self.signer.is_none() {
                        self.signer = Some((key.clone(), case));
                    }
                }
                covered.push(*op);
                done.insert(*op, (source.clone(), trial));
            }
        }
        covered
    }

    /// Generates a key and checks the card shows it; the key is recorded as this run's.
    fn generate_checked(&mut self, index: u8, alg: KeyAlgorithm) -> Result<KeyAt, Blocked> {
        let started = std::time::Instant::now();
        let public = keys::generate(
            &mut self.conn,
            &mut self.session.credentials,
            &mut self.writes,
            index,
            alg,
        )
        .map_err(|err| {
            let reason = format!("generating {alg} in container {index}: {err}");
            if no_credential(&err) {
                self.no_credential = Some(reason.clone());
            }
            Blocked { skip: no_credential(&err), reason }
        })?;
        let seconds = started.elapsed().as_secs_f64();
        let info = self
            .card()
            .container(index)
            .map_err(|err| format!("container {index} after generating {alg}: {err}"))?;
        let mut problems = Vec::new();
        if !info.has_key() {
            problems.push("no key listed".to_owned());
        }
        if info.public_key.as_ref() != Some(&public) {
            problems.push("not the generated public key".to_owned());
        }
        if info.algorithm != Some(alg) {
            problems.push(format!("algorithm {:?}", info.algorithm));
        }
        if problems.is_empty() {
            self.generated.push(format!("{alg} in {index} ({seconds:.1} s)"));
        } else {
            self.generation_problems
                .push(format!("{alg} generated in container {index}: {}", problems.join(", ")));
        }
        Ok(KeyAt { info, public, algorithm: alg })
    }

    /// Deletes a container this run filled and checks it is empty again.
    pub(super) fn delete_checked(&mut self, index: u8) -> Result<(), String> {
        keys::delete(&mut self.conn, &mut self.session.credentials, &mut self.writes, index)
            .map_err(|err| format!("deleting container {index}: {err}"))?;
        match self.card().container(index) {
            Ok(info) if !info.has_key() => Ok(()),
            Ok(_) => {
                let problem = format!("container {index} still holds a key after deletion");
                self.generation_problems.push(problem.clone());
                Err(problem)
            }
            Err(err) => Err(format!("container {index} after deletion: {err}")),
        }
    }

    /// What was refused during the run was refused as unsupported, before any PIN.
    pub(super) fn unsupported(&mut self) {
        if self.refusals.is_empty() {
            self.push(
                names::UNSUPPORTED,
                Status::Skip,
                "nothing was refused (no key to ask; --destructive generates some)",
            );
            return;
        }
        let bad: Vec<String> =
            self.refusals.iter().filter(|r| !r.ok).map(|r| r.detail.clone()).collect();
        if bad.is_empty() {
            let what: Vec<String> = self.refusals.iter().map(|r| r.what.clone()).collect();
            let detail = format!("{} refused with no VERIFY sent: {}", what.len(), what.join("; "));
            self.push(names::UNSUPPORTED, Status::Pass, detail);
        } else {
            self.push(names::UNSUPPORTED, Status::Fail, bad.join("; "));
        }
    }

    /// The keys generated for the algorithm checks: each listed with its public key, and gone
    /// after deletion.
    pub(super) fn key_generation(&mut self) {
        let generation = self.props.as_ref().is_some_and(|p| p.key_generation && !p.read_only);
        let (status, detail) = if !self.destructive {
            (Status::Skip, "writes nothing without --destructive".to_owned())
        } else if !generation {
            (Status::Skip, "the card (its model) does not generate keys".to_owned())
        } else if !self.generation_problems.is_empty() {
            (Status::Fail, self.generation_problems.join("; "))
        } else if let (true, Some(reason)) = (self.generated.is_empty(), &self.no_credential) {
            (Status::Skip, reason.clone())
        } else if self.generated.is_empty() {
            (Status::Skip, "no free container: nothing generated".to_owned())
        } else {
            (
                Status::Pass,
                format!(
                    "{} keys generated in free containers, each listed with its public key and deleted after use: {}",
                    self.generated.len(),
                    self.generated.join(", ")
                ),
            )
        };
        self.push(names::KEYGEN, status, detail);
    }

    /// A key generated in a free container, a certificate written for it and read back (the
    /// container, its kxc/ksc file, a new connection), then removed. The key stays for the
    /// reset checks; the cleanup deletes it.
    pub(super) fn certificate(&mut self) {
        if !self.destructive {
            self.push(names::CERTIFICATE, Status::Skip, "writes nothing without --destructive");
            return;
        }
        let Some(props) = self.props.clone() else {
            self.push(names::CERTIFICATE, Status::Fail, "the card's properties could not be read");
            return;
        };
        if !props.key_generation || props.read_only {
            self.push(
                names::CERTIFICATE,
                Status::Skip,
                "the card (its model) does not generate keys",
            );
            return;
        }
        match self.certificate_inner(&props) {
            Ok(Ok(detail)) => self.push(names::CERTIFICATE, Status::Pass, detail),
            Ok(Err(problem)) => self.push(names::CERTIFICATE, Status::Fail, problem),
            Err(blocked) => self.push(names::CERTIFICATE, blocked.status(), blocked.reason),
        }
    }

    fn certificate_inner(
        &mut self,
        props: &CardProperties,
    ) -> Result<Result<String, String>, Blocked> {
        let preferred =
            [KeyAlgorithm::Ec(Curve::P256), KeyAlgorithm::Ec(Curve::P384), KeyAlgorithm::Rsa(2048)];
        let alg = preferred
            .into_iter()
            .find(|a| props.algorithms.contains(a))
            .or_else(|| props.algorithms.iter().copied().find(|a| host::host_supports(*a)))
            .ok_or("no algorithm the host can check")?;
        let (_, free) = keys::inventory(self.card()).map_err(|e| e.to_string())?;
        // Containers whose key needs the user PIN first: that key then serves the reset checks.
        let mut order: Vec<u8> = Vec::new();
        for index in &free {
            if keys::pin_of(self.card(), *index) == PinId::USER {
                order.push(*index);
            }
        }
        let rest: Vec<u8> = free.iter().copied().filter(|i| !order.contains(i)).collect();
        order.extend(rest);
        let index = *order.first().ok_or("no free container")?;
        let key = self.generate_checked(index, alg)?;
        self.kept = Some((key.clone(), false));
        let cert = host::certificate_for(&key.public, "scard conformance")?;
        keys::put_certificate(
            &mut self.conn,
            &mut self.session.credentials,
            &mut self.writes,
            index,
            Some(&cert),
        )
        .map_err(|e| format!("writing the certificate: {e}"))?;
        self.kept = Some((key.clone(), true));
        let mut problems = Vec::new();
        match self.card().certificate(index) {
            Ok(Some(back)) if back == cert => {}
            Ok(Some(_)) => problems.push("read back different".to_owned()),
            Ok(None) => problems.push("not read back".to_owned()),
            Err(err) => problems.push(format!("reading it back: {err}")),
        }
        let info = self.card().container(index).map_err(|e| e.to_string())?;
        if !info.has_certificate {
            problems.push("the container does not list it".into());
        }
        let file = FilePath::certificate(&info);
        match &file {
            Some(path) => {
                let short = path.name().trim_start_matches("mscp/").to_owned();
                match self.card().list_files(Some("mscp")) {
                    Ok(names) if names.iter().any(|n| n.eq_ignore_ascii_case(&short)) => {}
                    Ok(names) => {
                        problems.push(format!("{} not in mscp ({})", path.name(), names.join(" ")))
                    }
                    Err(err) => problems.push(format!("listing mscp: {err}")),
                }
                match self.card().read_file(path) {
                    Ok(data) => match scard_minidriver::fs::decompress_certificate(&data) {
                        Ok(der) if der == cert => {}
                        Ok(_) => problems.push(format!("{} is not the certificate", path.name())),
                        Err(err) => problems.push(format!("{}: {err}", path.name())),
                    },
                    Err(err) => problems.push(format!("reading {}: {err}", path.name())),
                }
            }
            None => problems.push("no certificate file for the container".into()),
        }
        // What a later connection (another application) sees.
        let seen = self.other(|other| {
            let container = other.card.container(index)?;
            let certificate = other.card.certificate(index)?;
            Ok((container, certificate))
        });
        match seen {
            Ok((container, certificate)) => {
                if container.public_key.as_ref() != Some(&key.public) {
                    problems.push("a new connection does not see the key".into());
                }
                if certificate.as_ref() != Some(&cert) {
                    problems.push("a new connection does not read the certificate".into());
                }
            }
            Err(err) => problems.push(format!("a new connection: {err}")),
        }
        // Command chaining as the model declares it: a certificate over the largest command.
        let chained = match self.large_certificate(&key, cert.len()) {
            Ok(note) => note,
            Err(problem) => {
                problems.push(problem);
                String::new()
            }
        };
        // This key serves the reset checks when no other key did.
        if self.signer.is_none() && key.info.pin == PinId::USER {
            let trial =
                keys::exercise(&mut self.conn, &mut self.session.credentials, &key, Op::Sign);
            if let Some(case) = trial.signer {
                self.signer = Some((key.clone(), case));
            }
        }
        if !problems.is_empty() {
            return Ok(Err(problems.join("; ")));
        }
        Ok(Ok(format!(
            "{alg} key generated in container {index}, a {}-byte certificate written and read back (container, {}, a new connection){chained}; removed by the cleanup",
            cert.len(),
            file.map(|f| f.name()).unwrap_or_default()
        )))
    }

    /// Writes and reads back a certificate longer than the largest command the limits allow
    /// (when a certificate can be: Nc under 4000), so that the write goes in chained parts.
    fn large_certificate(&mut self, key: &KeyAt, written: usize) -> Result<String, String> {
        let limits = self.conn.card.channel().limits();
        let nc = limits.max_command_data;
        // Over 4000 bytes no certificate is; under the one just written, that one was.
        if nc >= 4000 || nc < written {
            return Ok(String::new());
        }
        if !limits.command_chaining {
            return Ok(format!("; the model allows no chaining: nothing over {nc} bytes written"));
        }
        let index = key.index();
        let cert = host::certificate_of_size(&key.public, "scard conformance chained", nc + 200)?;
        let what = format!("a {}-byte certificate (over the {nc}-byte command limit)", cert.len());
        match keys::put_certificate(
            &mut self.conn,
            &mut self.session.credentials,
            &mut self.writes,
            index,
            Some(&cert),
        ) {
            Ok(()) => {}
            // The card's own limit on certificates (OpenPGP: the card's capabilities).
            Err(err @ CardError::InvalidInput { .. }) => {
                return Ok(format!("; {what} not tried: {err}"));
            }
            Err(err) => return Err(format!("writing {what}: {err}")),
        }
        match self.card().certificate(index) {
            Ok(Some(back)) if back == cert => {}
            Ok(_) => return Err(format!("{what} read back different")),
            Err(err) => return Err(format!("reading {what} back: {err}")),
        }
        let theirs = self.other(|other| other.card.certificate(index));
        match theirs {
            Ok(Some(back)) if back == cert => {}
            Ok(_) => return Err(format!("a new connection reads {what} differently")),
            Err(err) => return Err(format!("a new connection reading {what}: {err}")),
        }
        Ok(format!(", then {what}, in chained parts, written and read back"))
    }
}

/// The verdict of one algorithm and operation.
fn judge(source: &str, trial: &Trial) -> (Status, String) {
    let refused: Vec<String> = trial.refused.iter().map(|r| r.what.clone()).collect();
    let refused = if refused.is_empty() {
        String::new()
    } else {
        format!("; refused before the PIN: {}", refused.len())
    };
    if !trial.failed.is_empty() {
        return (
            Status::Fail,
            format!(
                "{source}: failed: {}; worked: {}{refused}",
                trial.failed.join("; "),
                list(&trial.worked)
            ),
        );
    }
    if trial.worked.is_empty() {
        let mut why = trial.skipped.clone();
        why.dedup();
        return (Status::Skip, format!("{source}: nothing tried: {}", list(&why)));
    }
    (Status::Pass, format!("{source}: {} verified on the host{refused}", trial.worked.join(", ")))
}
