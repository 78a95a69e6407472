//! Which certificates of one card logon lists (rules 10-12): the candidates a card offers,
//! rules 1-9 per certificate, then duplicates removed. The same code runs on a card
//! described in a file (`scard logon-enumerate`) and on a real card (`scard certs`).

use std::fmt;

use crate::policy::{Policy, Setting};
use crate::rules::{Evaluation, KeySpec, Reason, evaluate};
use crate::{CertError, LogonCert, Timestamp};

/// One key container as enumeration sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// The container name (unique on the card).
    pub name: String,
    /// The certificate's DER, when the container has one.
    pub certificate: Option<Vec<u8>>,
    /// Whether this is the card's default container.
    pub default: bool,
    /// The key spec of its key.
    pub key_spec: KeySpec,
}

/// A card's containers in card order. Built by [`Card::new`]: names are unique and at most
/// one container is the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    supports_user_certstore: bool,
    containers: Vec<Container>,
}

impl Card {
    /// A card; `supports_user_certstore` says whether its module returns every certificate
    /// at once (our `CardModule` does).
    pub fn new(
        supports_user_certstore: bool,
        containers: Vec<Container>,
    ) -> Result<Self, CertError> {
        for (i, c) in containers.iter().enumerate() {
            if containers.iter().take(i).any(|o| o.name == c.name) {
                return Err(CertError::DuplicateContainer { name: c.name.clone() });
            }
        }
        let mut defaults = containers.iter().filter(|c| c.default);
        if let (Some(first), Some(second)) = (defaults.next(), defaults.next()) {
            return Err(CertError::SeveralDefaults {
                first: first.name.clone(),
                second: second.name.clone(),
            });
        }
        Ok(Self { supports_user_certstore, containers })
    }

    /// The containers, in card order.
    pub fn containers(&self) -> &[Container] {
        &self.containers
    }

    /// Whether the card returns every certificate at once.
    pub fn supports_user_certstore(&self) -> bool {
        self.supports_user_certstore
    }
}

/// Why a container's certificate is not listed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Rejection {
    /// The container has no certificate.
    NoCertificate,
    /// Rule 10: the card cannot return all certificates and this is not the default
    /// container's key-exchange certificate.
    NotOffered,
    /// Rule 10: the default container holds only a signature key, so such a card offers
    /// nothing.
    DefaultSignatureOnly,
    /// Rule 1: the certificate does not parse.
    Unparsable(CertError),
    /// Rules 2-7.
    Ineligible(Vec<Reason>),
    /// Rule 11: byte-identical to the certificate of an earlier container.
    Identical {
        /// The container listed instead.
        of: String,
    },
    /// Rule 12: a duplicate (same template and UPN) of another container's certificate.
    Duplicate {
        /// The container listed instead.
        kept: String,
    },
}

impl Rejection {
    /// One line per reason.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Rejection::Ineligible(reasons) => reasons.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::NoCertificate => f.write_str("no certificate"),
            Rejection::NotOffered => f.write_str(
                "not offered: the card cannot return all its certificates \
                 (supports_user_certstore false), so only the default container's key-exchange \
                 certificate is read (ForceReadingAllCertificates=1 reads them all)",
            ),
            Rejection::DefaultSignatureOnly => f.write_str(
                "not offered: the default container holds only a signature key, and a card that \
                 cannot return all its certificates offers nothing then (whatever \
                 AllowSignatureOnlyKeys says; ForceReadingAllCertificates=1 reads them all)",
            ),
            Rejection::Unparsable(err) => write!(f, "certificate rejected: {err}"),
            Rejection::Ineligible(reasons) => {
                let lines: Vec<String> = reasons.iter().map(ToString::to_string).collect();
                f.write_str(&lines.join("\n"))
            }
            Rejection::Identical { of } => {
                write!(f, "the same certificate as container {of:?}, listed once")
            }
            Rejection::Duplicate { kept } => write!(
                f,
                "duplicate of container {kept:?}'s certificate (same template OID and major \
                 version, same UPN): filtered by FilterDuplicateCerts=1"
            ),
        }
    }
}

/// What became of one container.
#[derive(Debug)]
pub struct Outcome {
    /// The container name.
    pub name: String,
    /// The certificate, when it was read and parsed.
    pub cert: Option<LogonCert>,
    /// Rules 2-9, when the certificate was evaluated.
    pub evaluation: Option<Evaluation>,
    /// `None` when listed.
    pub rejection: Option<Rejection>,
}

impl Outcome {
    /// Whether logon lists this container's certificate.
    pub fn displayed(&self) -> bool {
        self.rejection.is_none()
    }
}

/// The enumeration of a card: one outcome per container, in card order.
#[derive(Debug)]
pub struct Enumeration {
    /// Every container.
    pub outcomes: Vec<Outcome>,
}

impl Enumeration {
    /// The names of the listed containers, in card order.
    pub fn displayed(&self) -> Vec<&str> {
        self.outcomes.iter().filter(|o| o.displayed()).map(|o| o.name.as_str()).collect()
    }

    /// The containers not listed, with their reasons.
    pub fn rejected(&self) -> Vec<(&str, &Rejection)> {
        self.outcomes
            .iter()
            .filter_map(|o| o.rejection.as_ref().map(|r| (o.name.as_str(), r)))
            .collect()
    }
}

/// Rules 10-12 over a card, with rules 1-9 per certificate.
pub fn enumerate(card: &Card, now: Timestamp, policy: &Policy) -> Enumeration {
    let read_all =
        card.supports_user_certstore || policy.flag(Setting::ForceReadingAllCertificates);
    let mut outcomes: Vec<Outcome> = card
        .containers
        .iter()
        .map(|c| {
            let outcome = |rejection, cert, evaluation| Outcome {
                name: c.name.clone(),
                cert,
                evaluation,
                rejection,
            };
            // Rule 10: the candidates.
            let Some(der) = &c.certificate else {
                return outcome(Some(Rejection::NoCertificate), None, None);
            };
            if !read_all {
                if !c.default {
                    return outcome(Some(Rejection::NotOffered), None, None);
                }
                if c.key_spec != KeySpec::Exchange {
                    return outcome(Some(Rejection::DefaultSignatureOnly), None, None);
                }
            }
            // Rules 1-9.
            let cert = match LogonCert::from_der(der) {
                Ok(cert) => cert,
                Err(err) => return outcome(Some(Rejection::Unparsable(err)), None, None),
            };
            let evaluation = evaluate(&cert, c.key_spec, now, policy);
            let rejection =
                (!evaluation.eligible()).then(|| Rejection::Ineligible(evaluation.reasons.clone()));
            outcome(rejection, Some(cert), Some(evaluation))
        })
        .collect();

    // Rule 11: byte-identical certificates are listed once, the first container in card
    // order (among those that passed rules 1-10) wins.
    for i in 0..outcomes.len() {
        let earlier = outcomes.iter().take(i).find(|o| {
            o.displayed() && o.cert.as_ref().map(LogonCert::der) == current_der(&outcomes, i)
        });
        if let Some(first) = earlier.map(|o| o.name.clone()) {
            if let Some(o) = outcomes.get_mut(i).filter(|o| o.displayed()) {
                o.rejection = Some(Rejection::Identical { of: first });
            }
        }
    }

    // Rule 12: FilterDuplicateCerts=1, among what passed every other rule.
    if policy.flag(Setting::FilterDuplicateCerts) {
        filter_duplicates(card, &mut outcomes);
    }
    Enumeration { outcomes }
}

fn current_der(outcomes: &[Outcome], i: usize) -> Option<&[u8]> {
    outcomes.get(i).and_then(|o| o.cert.as_ref()).map(LogonCert::der)
}

/// The rule 12 key: template OID and major version, and the UPN lower-cased (Unicode). No
/// key (never a duplicate) without a template or without a UPN.
fn duplicate_key(cert: &LogonCert) -> Option<(String, Option<u32>, String)> {
    let template = cert.template()?;
    let upn = cert.upn()?;
    Some((template.oid.to_string(), template.major, upn.to_lowercase()))
}

/// Rule 12: among duplicates keep the default container's key-exchange certificate, else the
/// latest notAfter, ties to the earlier container.
fn filter_duplicates(card: &Card, outcomes: &mut [Outcome]) {
    let preferred = |i: usize| {
        card.containers.get(i).is_some_and(|c| c.default && c.key_spec == KeySpec::Exchange)
    };
    let keys: Vec<Option<_>> = outcomes
        .iter()
        .map(|o| if o.displayed() { o.cert.as_ref().and_then(duplicate_key) } else { None })
        .collect();
    let not_after =
        |i: usize| outcomes.get(i).and_then(|o| o.cert.as_ref()).map(LogonCert::not_after);
    let mut losers: Vec<(usize, String)> = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let Some(key) = key else { continue };
        // Handle each group once, from its first member.
        if keys.iter().take(i).any(|k| k.as_ref() == Some(key)) {
            continue;
        }
        let members: Vec<usize> = keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.as_ref() == Some(key))
            .map(|(j, _)| j)
            .collect();
        if members.len() < 2 {
            continue;
        }
        let winner = members.iter().copied().find(|j| preferred(*j)).or_else(|| {
            // Latest notAfter; `max_by_key` keeps the last maximum, so walk backwards to let
            // the earliest container win ties.
            members.iter().rev().copied().max_by_key(|j| not_after(*j))
        });
        let Some(winner) = winner else { continue };
        let kept = outcomes.get(winner).map(|o| o.name.clone()).unwrap_or_default();
        losers.extend(members.into_iter().filter(|j| *j != winner).map(|j| (j, kept.clone())));
    }
    for (i, kept) in losers {
        if let Some(o) = outcomes.get_mut(i) {
            o.rejection = Some(Rejection::Duplicate { kept });
        }
    }
}
