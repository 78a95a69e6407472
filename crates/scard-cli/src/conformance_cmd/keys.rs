//! Keys on the card under test: which containers hold what, trying every padding of an
//! operation on a key (what the card does is verified on the host; what it refuses must be
//! refused before any PIN is sent), and the writes (key generation, certificates, deletion)
//! with the `cardcf` counters read around each.

use scard_iso7816::StatusWord;
use scard_iso7816::apdu::Ins;
use scard_minidriver::{
    CardCf, CardError, CardModule, ContainerInfo, KeyAlgorithm, PinId, PublicKey,
};

use super::session::{Connection, Credentials};
use crate::host::{DecryptCase, Ephemeral, SignCase};

/// A key operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Op {
    Sign,
    Decrypt,
    Agree,
}

impl Op {
    /// `sign`, `decrypt`, `agree`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Sign => "sign",
            Op::Decrypt => "decrypt",
            Op::Agree => "agree",
        }
    }

    /// What a key of `algorithm` is for: RSA signs and decrypts, EC signs and agrees.
    pub(crate) fn for_algorithm(algorithm: KeyAlgorithm) -> [Op; 2] {
        if algorithm.is_rsa() { [Op::Sign, Op::Decrypt] } else { [Op::Sign, Op::Agree] }
    }
}

/// Something the card or its profile refused: it must be refused as unsupported, and before
/// any PIN (no VERIFY APDU while it was asked for).
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub(crate) what: String,
    /// Refused as unsupported with no VERIFY sent.
    pub(crate) ok: bool,
    pub(crate) detail: String,
}

/// What happened when one operation was tried on one key, padding by padding.
#[derive(Debug, Default)]
pub(crate) struct Trial {
    /// At least one padding was accepted before the PIN (the key is for this operation).
    pub(crate) capable: bool,
    pub(crate) worked: Vec<String>,
    pub(crate) failed: Vec<String>,
    pub(crate) skipped: Vec<String>,
    pub(crate) refused: Vec<Refusal>,
    /// A signature case that worked (for the reset checks).
    pub(crate) signer: Option<SignCase>,
}

/// A key that was found or made, with the container it is in.
#[derive(Debug, Clone)]
pub(crate) struct KeyAt {
    pub(crate) info: ContainerInfo,
    pub(crate) public: PublicKey,
    pub(crate) algorithm: KeyAlgorithm,
}

impl KeyAt {
    /// The key of a container that holds one (its public key read), if it is usable here.
    pub(crate) fn of(info: ContainerInfo) -> Option<KeyAt> {
        let public = info.public_key.clone()?;
        let algorithm = public.algorithm().ok()?;
        Some(KeyAt { info, public, algorithm })
    }

    pub(crate) fn index(&self) -> u8 {
        self.info.index
    }
}

/// Whether a credential error means "no credential to use" (the case is skipped) rather than
/// a failure of the card.
pub(crate) fn no_credential(err: &CardError) -> bool {
    matches!(err, CardError::InvalidInput { what: "secret input", .. })
}

/// Asks for something that was refused before the PIN once more, without a PIN: it must be
/// refused as unsupported and no VERIFY may go to the card.
fn refusal(
    conn: &mut Connection,
    what: String,
    first: &CardError,
    again: impl FnOnce(&mut dyn CardModule) -> Result<(), CardError>,
) -> Refusal {
    let before = conn.counter.snapshot();
    let result = again(conn.card.as_mut());
    let verifies = conn.counter.snapshot().since(&before).ins(Ins::VERIFY.0);
    let ok = matches!(result, Err(CardError::Unsupported { .. })) && verifies == 0;
    let detail = match (&result, verifies) {
        (Err(CardError::Unsupported { .. }), 0) => format!("{what}: {first}"),
        (Err(CardError::Unsupported { .. }), n) => {
            format!("{what}: refused, but only after {n} VERIFY APDU(s)")
        }
        (Err(err), _) => format!("{what}: refused by the check, then answered {err}"),
        (Ok(()), _) => format!("{what}: refused by the check, then done anyway"),
    };
    Refusal { what, ok, detail }
}

/// Tries every padding of `op` on a key. PINs are verified right before each use (a
/// "PIN always" key needs it), only for what the profile accepted before the PIN.
pub(crate) fn exercise(
    conn: &mut Connection,
    credentials: &mut Credentials,
    key: &KeyAt,
    op: Op,
) -> Trial {
    match op {
        Op::Sign => exercise_sign(conn, credentials, key),
        Op::Decrypt => exercise_decrypt(conn, credentials, key),
        Op::Agree => exercise_agree(conn, credentials, key),
    }
}

fn exercise_sign(conn: &mut Connection, credentials: &mut Credentials, key: &KeyAt) -> Trial {
    let mut trial = Trial::default();
    let index = key.index();
    for case in SignCase::all(key.algorithm) {
        let input = match case.input(key.algorithm) {
            Ok(input) => input,
            Err(e) => {
                trial.failed.push(format!("{}: {e}", case.name));
                continue;
            }
        };
        let request = case.request(&input);
        match conn.card.check_sign(index, &request) {
            Ok(()) => {
                trial.capable = true;
                if let Err(err) = credentials.verify(conn.card.as_mut(), key.info.pin) {
                    if no_credential(&err) {
                        trial.skipped.push(err.to_string());
                    } else {
                        trial.failed.push(format!("{}: VERIFY: {err}", case.name));
                    }
                    continue;
                }
                match conn.card.sign(index, &request) {
                    Ok(signature) => match case.verify(&key.public, &signature) {
                        Ok(()) => {
                            trial.worked.push(case.name.to_owned());
                            trial.signer.get_or_insert(case);
                        }
                        Err(e) => trial
                            .failed
                            .push(format!("{}: the signature does not verify: {e}", case.name)),
                    },
                    Err(err) => trial.failed.push(format!("{}: {err}", case.name)),
                }
            }
            Err(err @ CardError::Unsupported { .. }) => {
                let what =
                    format!("sign {} with {} in container {index}", case.name, key.algorithm);
                let r = refusal(conn, what, &err, |card| card.sign(index, &request).map(|_| ()));
                trial.refused.push(r);
            }
            Err(err) => trial.failed.push(format!("{}: check before the PIN: {err}", case.name)),
        }
    }
    trial
}

fn exercise_decrypt(conn: &mut Connection, credentials: &mut Credentials, key: &KeyAt) -> Trial {
    let mut trial = Trial::default();
    let index = key.index();
    for case in DecryptCase::all() {
        match conn.card.check_decrypt(index, &case.padding) {
            Ok(()) => {
                trial.capable = true;
                let (plain, cryptogram) = match case.encrypt(&key.public) {
                    Ok(pair) => pair,
                    Err(e) => {
                        trial.failed.push(format!("{}: host encryption: {e}", case.name));
                        continue;
                    }
                };
                if let Err(err) = credentials.verify(conn.card.as_mut(), key.info.pin) {
                    if no_credential(&err) {
                        trial.skipped.push(err.to_string());
                    } else {
                        trial.failed.push(format!("{}: VERIFY: {err}", case.name));
                    }
                    continue;
                }
                match conn.card.decrypt(index, &case.padding, &cryptogram) {
                    Ok(secret) if secret.expose() == plain.as_slice() => {
                        trial.worked.push(case.name.to_owned());
                    }
                    Ok(secret) => trial.failed.push(format!(
                        "{}: {} bytes back, not the {} bytes encrypted",
                        case.name,
                        secret.expose().len(),
                        plain.len()
                    )),
                    Err(err) => trial.failed.push(format!("{}: {err}", case.name)),
                }
            }
            Err(err @ CardError::Unsupported { .. }) => {
                let what =
                    format!("decrypt {} with {} in container {index}", case.name, key.algorithm);
                let block = vec![0x01; key.algorithm.signature_len()];
                let padding = case.padding.clone();
                let r = refusal(conn, what, &err, |card| {
                    card.decrypt(index, &padding, &block).map(|_| ())
                });
                trial.refused.push(r);
            }
            Err(err) => trial.failed.push(format!("{}: check before the PIN: {err}", case.name)),
        }
    }
    trial
}

/// Whether an error means the operation is there but needs the PIN first.
fn needs_pin(err: &CardError) -> bool {
    matches!(err, CardError::AuthRequired { .. })
        || matches!(err, CardError::Status { sw, .. } if *sw == StatusWord::SECURITY_STATUS_NOT_SATISFIED)
}

fn exercise_agree(conn: &mut Connection, credentials: &mut Credentials, key: &KeyAt) -> Trial {
    let mut trial = Trial::default();
    let index = key.index();
    let KeyAlgorithm::Ec(curve) = key.algorithm else {
        trial.failed.push("ecdh: not an EC key".into());
        return trial;
    };
    let ephemeral = match Ephemeral::new(curve) {
        Ok(e) => e,
        Err(e) => {
            trial.skipped.push(format!("ecdh: {e}"));
            return trial;
        }
    };
    let peer = ephemeral.public();
    let expected = match ephemeral.shared(&key.public) {
        Ok(x) => x,
        Err(e) => {
            trial.failed.push(format!("ecdh: host: {e}"));
            return trial;
        }
    };
    // There is no check before the PIN for ECDH: ask without verifying first. A key that
    // cannot agree is refused at once; one that can asks for its PIN (or, verified earlier in
    // this session, answers).
    let before = conn.counter.snapshot();
    let first = conn.card.agree(index, &peer);
    let verifies = conn.counter.snapshot().since(&before).ins(Ins::VERIFY.0);
    let answer = match first {
        Err(err @ CardError::Unsupported { .. }) => {
            let what = format!("agree ecdh with {} in container {index}", key.algorithm);
            let detail = if verifies == 0 {
                format!("{what}: {err}")
            } else {
                format!("{what}: refused, but only after {verifies} VERIFY APDU(s)")
            };
            trial.refused.push(Refusal { what, ok: verifies == 0, detail });
            return trial;
        }
        Err(err) if needs_pin(&err) => {
            trial.capable = true;
            if let Err(err) = credentials.verify(conn.card.as_mut(), key.info.pin) {
                if no_credential(&err) {
                    trial.skipped.push(err.to_string());
                } else {
                    trial.failed.push(format!("ecdh: VERIFY: {err}"));
                }
                return trial;
            }
            conn.card.agree(index, &peer)
        }
        other => {
            trial.capable = true;
            other
        }
    };
    match answer {
        Ok(secret) if secret.expose() == expected.as_slice() => trial.worked.push("ecdh".into()),
        Ok(_) => trial.failed.push("ecdh: the shared secret differs from the host's".into()),
        Err(err) => trial.failed.push(format!("ecdh: {err}")),
    }
    trial
}

/// Operations of the other key type, which a key must refuse before any PIN: ECDH with an
/// RSA key; RSA decryption and a PKCS#1 signature with an EC key.
pub(crate) fn mismatched(conn: &mut Connection, key: &KeyAt) -> Vec<Refusal> {
    let index = key.index();
    let alg = key.algorithm;
    let mut out = Vec::new();
    let unexpected = |what: String, detail: String| Refusal { what, ok: false, detail };
    if alg.is_rsa() {
        let what = format!("agree ecdh with {alg} in container {index}");
        match Ephemeral::new(scard_minidriver::Curve::P256) {
            Ok(eph) => {
                let peer = eph.public();
                let before = conn.counter.snapshot();
                let result = conn.card.agree(index, &peer);
                let verifies = conn.counter.snapshot().since(&before).ins(Ins::VERIFY.0);
                out.push(match result {
                    Err(err @ CardError::Unsupported { .. }) if verifies == 0 => {
                        Refusal { detail: format!("{what}: {err}"), what, ok: true }
                    }
                    Err(err) => unexpected(
                        what.clone(),
                        format!("{what}: answered {err} ({verifies} VERIFY)"),
                    ),
                    Ok(_) => unexpected(what.clone(), format!("{what}: an RSA key agreed")),
                });
            }
            Err(e) => out.push(unexpected(what.clone(), format!("{what}: {e}"))),
        }
    } else {
        let case = SignCase::mismatched(alg);
        let input = vec![0x5A; case.hash.len()];
        let request = case.request(&input);
        let what = format!("sign {} with {alg} in container {index}", case.name);
        out.push(match conn.card.check_sign(index, &request) {
            Err(err @ CardError::Unsupported { .. }) => {
                refusal(conn, what, &err, |card| card.sign(index, &request).map(|_| ()))
            }
            Err(err) => unexpected(what.clone(), format!("{what}: check answered {err}")),
            Ok(()) => unexpected(what.clone(), format!("{what}: accepted before the PIN")),
        });
        let padding = scard_minidriver::DecryptPadding::Pkcs1;
        let what = format!("decrypt pkcs1 with {alg} in container {index}");
        out.push(match conn.card.check_decrypt(index, &padding) {
            Err(err @ CardError::Unsupported { .. }) => refusal(conn, what, &err, |card| {
                card.decrypt(index, &padding, &[0x01; 256]).map(|_| ())
            }),
            Err(err) => unexpected(what.clone(), format!("{what}: check answered {err}")),
            Ok(()) => unexpected(what.clone(), format!("{what}: accepted before the PIN")),
        });
    }
    out
}

/// Which `cardcf` counter a write must move (Minidriver v7 §5.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counter {
    Pins,
    Containers,
    Files,
}

/// One write to the card and the counters around it.
#[derive(Debug, Clone)]
pub(crate) struct Write {
    pub(crate) what: String,
    pub(crate) before: Option<CardCf>,
    pub(crate) after: Option<CardCf>,
    pub(crate) counter: Counter,
}

impl Write {
    /// Whether the counter moved.
    pub(crate) fn moved(&self) -> bool {
        match (self.before, self.after) {
            (Some(b), Some(a)) => match self.counter {
                Counter::Pins => a.pins != b.pins,
                Counter::Containers => a.containers != b.containers,
                Counter::Files => a.files != b.files,
            },
            _ => false,
        }
    }
}

/// Runs a write as admin, reading `cardcf` before and after it into `log`.
pub(crate) fn write<R>(
    conn: &mut Connection,
    credentials: &mut Credentials,
    log: &mut Vec<Write>,
    what: String,
    counter: Counter,
    f: impl FnMut(&mut dyn CardModule) -> Result<R, CardError>,
) -> Result<R, CardError> {
    let before = conn.card.cardcf().ok();
    let result = credentials.admin_write(conn.card.as_mut(), f)?;
    let after = conn.card.cardcf().ok();
    log.push(Write { what, before, after, counter });
    Ok(result)
}

/// Generates a key in a container (logged).
pub(crate) fn generate(
    conn: &mut Connection,
    credentials: &mut Credentials,
    log: &mut Vec<Write>,
    index: u8,
    algorithm: KeyAlgorithm,
) -> Result<PublicKey, CardError> {
    let what = format!("generate {algorithm} in container {index}");
    write(conn, credentials, log, what, Counter::Containers, |card| {
        card.generate_key(index, algorithm)
    })
}

/// Deletes a container (logged).
pub(crate) fn delete(
    conn: &mut Connection,
    credentials: &mut Credentials,
    log: &mut Vec<Write>,
    index: u8,
) -> Result<(), CardError> {
    let what = format!("delete container {index}");
    write(conn, credentials, log, what, Counter::Containers, |card| card.delete_container(index))
}

/// Writes (Some) or removes (None) a container's certificate (logged).
pub(crate) fn put_certificate(
    conn: &mut Connection,
    credentials: &mut Credentials,
    log: &mut Vec<Write>,
    index: u8,
    der: Option<&[u8]>,
) -> Result<(), CardError> {
    let what = match der {
        Some(d) => format!("write a {}-byte certificate to container {index}", d.len()),
        None => format!("remove the certificate of container {index}"),
    };
    write(conn, credentials, log, what, Counter::Files, |card| card.put_certificate(index, der))
}

/// The containers (the profile's list) and the indexes below the card's maximum that hold no
/// key, which a new key may take; containers of keys are read whole (public keys).
pub(crate) fn inventory(card: &mut dyn CardModule) -> Result<(Vec<KeyAt>, Vec<u8>), CardError> {
    let props = card.properties()?;
    let listed = card.containers()?;
    let mut keys = Vec::new();
    let mut taken = Vec::new();
    for c in &listed {
        if c.has_key() {
            taken.push(c.index);
            if let Some(key) = KeyAt::of(card.container(c.index)?) {
                keys.push(key);
            }
        }
    }
    let max = u8::try_from(props.max_containers).unwrap_or(u8::MAX);
    let free = (0..max).filter(|i| !taken.contains(i)).collect();
    Ok((keys, free))
}

/// The PIN a container's key needs (`EVERYONE` for none).
pub(crate) fn pin_of(card: &mut dyn CardModule, index: u8) -> PinId {
    card.container(index).map(|c| c.pin).unwrap_or(PinId::USER)
}
