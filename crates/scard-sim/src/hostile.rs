//! A hostile card: a real simulated card (PIV, OpenPGP or GIDS, chosen by the seed) behind a
//! layer that, driven by a seed, breaks the rules of ISO/IEC 7816 the way broken, counterfeit
//! or malicious cards do. The stack above must survive every answer without a panic, a hang
//! or a retried VERIFY, and report each failure as one line naming the operation.
//!
//! Per seed, a [`Plan`] is drawn once: the family of the card inside, whether its ATR is wrong,
//! how many APDUs are answered faithfully before trouble starts (so that the profiles get far
//! enough to be stressed), the fault rate after that, and which [`Fault`]s are used. Every
//! decision comes from a ChaCha20 stream seeded by the seed: the same seed and the same
//! commands give the same answers. About one seed in twelve gets no faults at all, so that a
//! test over many seeds also sees complete successes.
//!
//! Faults (ISO/IEC 7816-4 §5.1 says what a well-formed answer is; these are not):
//! - truncated responses (the status word cut off or half of it left);
//! - responses longer than the command's Ne (up to 65 KiB of data);
//! - wrong status words (plausible ones: 6982, 63C0, 9000 for an error, 61xx / 6Cxx out of
//!   place) and random ones;
//! - `61xx` forever: every GET RESPONSE is answered with some bytes and `61xx` again;
//! - `6Cxx` loops: the command resent with the corrected Le gets another `6Cxx`;
//! - malformed BER-TLV in the data: lengths past the end, huge lengths (84 FFFFFFF0),
//!   indefinite or invalid length forms, nesting thousands of levels deep, flipped bytes;
//! - wrong ATRs (empty, truncated, too long, random, another family's);
//! - stalls: no answer at all until the card is reset ([`Card::answer`] returns `None`; the
//!   in-process reader turns it into a timeout at its deadline, over vpcd the answer is simply
//!   never sent);
//! - resets in the middle: the card loses its volatile state (selection, verified PINs)
//!   without the reader knowing, and sometimes answers with its ATR.
//!
//! Reader names: `sim:hostile:<seed>` in process (`scard info --reader sim:hostile:42`), and
//! `scard sim hostile --seed <seed> --vpcd HOST:PORT` attached to pcscd. The family inside is
//! `[piv, openpgp, gids][seed % 3]`, provisioned so that container 0 holds a key: PIV 9A with a
//! P-256 key and its certificate, OpenPGP's signature key P-256, GIDS its personalised RSA 2048
//! key. The PINs are the families' defaults (123456).

use std::sync::OnceLock;

use rand_core::RngCore;
use scard_iso7816::apdu::CommandApdu;

use crate::keys::KeyAlgorithm;
use crate::{Card, Family, SimRng, gids, openpgp, piv};

/// The longest response data a hostile card sends: 65 KiB.
pub const MAX_OVERSIZED: usize = 65 * 1024;

/// The ways a hostile card breaks an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The response is cut short (possibly into or before its status word).
    Truncate,
    /// More response data than the command's Ne allows, up to [`MAX_OVERSIZED`].
    Oversize,
    /// A plausible but wrong status word (with or without the data).
    WrongStatus,
    /// Random status word and random data.
    RandomStatus,
    /// `61xx`, and `61xx` again on every GET RESPONSE, until a reset.
    MoreDataForever,
    /// `6Cxx`, and another `6Cxx` when the command is resent with that Le.
    WrongLengthLoop,
    /// The response data with its BER-TLV broken.
    MalformedTlv,
    /// No answer, to this command and every other, until a reset.
    Stall,
    /// The card resets itself before answering (selection and verified PINs lost).
    Reset,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 9] = [
        Fault::Truncate,
        Fault::Oversize,
        Fault::WrongStatus,
        Fault::RandomStatus,
        Fault::MoreDataForever,
        Fault::WrongLengthLoop,
        Fault::MalformedTlv,
        Fault::Stall,
        Fault::Reset,
    ];
}

/// How the ATR is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AtrFault {
    /// No bytes at all.
    Empty,
    /// The real ATR cut short.
    Truncated,
    /// The real ATR with bytes appended (beyond the 33 ISO/IEC 7816-3 §8.2.1 allows).
    TooLong,
    /// Random bytes.
    Random,
    /// The ATR of another family's card (the profile chosen by ATR is the wrong one).
    OtherFamily,
    /// TS says inverse convention (3F) over a direct-convention ATR.
    Inverse,
}

/// What a seed makes of the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The card inside.
    pub family: Family,
    /// How the ATR is wrong, if it is.
    pub atr: Option<AtrFault>,
    /// APDUs answered faithfully before any fault.
    pub calm: u32,
    /// Chance of a fault per APDU after the calm ones, in percent (0: a faithful card).
    pub rate: u32,
    /// The faults drawn from.
    pub faults: Vec<Fault>,
}

impl Plan {
    /// The plan of `seed`.
    pub fn of(seed: u64) -> Self {
        let family = family_of(seed);
        let mut rng = Dice(SimRng::from_seed(seed ^ 0x6E6F_7374_696C_6521));
        if rng.below(12) == 0 {
            return Plan { family, atr: None, calm: 0, rate: 0, faults: Vec::new() };
        }
        let atr = (rng.below(100) < 15).then(|| {
            rng.pick(
                &[
                    AtrFault::Empty,
                    AtrFault::Truncated,
                    AtrFault::TooLong,
                    AtrFault::Random,
                    AtrFault::OtherFamily,
                    AtrFault::Inverse,
                ],
                AtrFault::Empty,
            )
        });
        // Mostly early trouble, sometimes late (after the card was opened and listed).
        let calm = match rng.below(4) {
            0 => 0,
            1 => rng.below(8),
            2 => rng.below(30),
            _ => rng.below(80),
        };
        let rate = rng.pick(&[5, 15, 35, 70, 100], 35);
        let mut faults = Vec::new();
        for _ in 0..=rng.below(3) {
            let fault = rng.pick(&Fault::ALL, Fault::Truncate);
            if !faults.contains(&fault) {
                faults.push(fault);
            }
        }
        Plan { family, atr, calm, rate, faults }
    }

    /// One line for humans: `piv, faults after 12 APDUs at 35%: Truncate, Stall; ATR Empty`.
    pub fn describe(&self) -> String {
        let mut text = if self.faults.is_empty() {
            format!("{}, no faults", self.family)
        } else {
            let names: Vec<String> = self.faults.iter().map(|f| format!("{f:?}")).collect();
            format!(
                "{}, faults after {} APDUs at {}%: {}",
                self.family,
                self.calm,
                self.rate,
                names.join(", ")
            )
        };
        if let Some(atr) = self.atr {
            text.push_str(&format!("; ATR {atr:?}"));
        }
        text
    }
}

/// The family inside the hostile card of `seed`: piv, openpgp, gids for seed % 3 = 0, 1, 2.
pub fn family_of(seed: u64) -> Family {
    match seed % 3 {
        0 => Family::Piv,
        1 => Family::OpenPgp,
        _ => Family::Gids,
    }
}

/// Decisions from a seeded stream.
struct Dice(SimRng);

impl Dice {
    /// A number in `0..n` (`0` when `n` is 0).
    fn below(&mut self, n: u32) -> u32 {
        self.0.next_u32().checked_rem(n).unwrap_or(0)
    }

    /// A number in `0..n` for sizes.
    fn below_usize(&mut self, n: usize) -> usize {
        usize::try_from(self.0.next_u64()).unwrap_or(0).checked_rem(n).unwrap_or(0)
    }

    fn percent(&mut self, p: u32) -> bool {
        self.below(100) < p
    }

    /// One of `items` (`fallback` when there are none).
    fn pick<T: Copy>(&mut self, items: &[T], fallback: T) -> T {
        let n = u32::try_from(items.len()).unwrap_or(u32::MAX);
        let i = usize::try_from(self.below(n)).unwrap_or(0);
        items.get(i).copied().unwrap_or(fallback)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        self.0.bytes(n)
    }
}

/// What the card is in the middle of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    /// Answers nothing until a reset.
    Stalled,
    /// Every GET RESPONSE gets more bytes and `61xx`.
    MoreDataForever,
    /// The command with this header gets `6Cxx` again.
    WrongLengthLoop {
        header: [u8; 4],
    },
}

/// The hostile card. See the module documentation.
pub struct HostileCard {
    seed: u64,
    plan: Plan,
    inner: Box<dyn Card>,
    atr: Vec<u8>,
    dice: Dice,
    mode: Mode,
    apdus: u64,
}

impl std::fmt::Debug for HostileCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostileCard")
            .field("seed", &self.seed)
            .field("plan", &self.plan)
            .field("mode", &self.mode)
            .field("apdus", &self.apdus)
            .finish()
    }
}

impl HostileCard {
    /// The hostile card of `seed`, its card inside provisioned (see the module documentation).
    pub fn new(seed: u64) -> Self {
        let plan = Plan::of(seed);
        let inner = provisioned(plan.family, seed);
        let mut dice = Dice(SimRng::from_seed(seed.rotate_left(17) ^ 0x0BAD_CA4D));
        let real = inner.atr().to_vec();
        let atr = match plan.atr {
            None => real,
            Some(fault) => wrong_atr(fault, &real, plan.family, &mut dice),
        };
        Self { seed, plan, inner, atr, dice, mode: Mode::Normal, apdus: 0 }
    }

    /// A hostile card of `seed` that follows `plan` instead of the seed's own (tests that
    /// want one fault).
    pub fn with_plan(seed: u64, plan: Plan) -> Self {
        let mut card = Self::new(seed);
        let real = provisioned_atr(plan.family);
        card.atr = match plan.atr {
            None => real,
            Some(fault) => wrong_atr(fault, &real, plan.family, &mut card.dice),
        };
        if plan.family != card.plan.family {
            card.inner = provisioned(plan.family, seed);
        }
        card.plan = plan;
        card
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// What the seed made of the card.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Whether this APDU gets a fault.
    fn roll(&mut self) -> Option<Fault> {
        let n = self.apdus;
        self.apdus += 1;
        if self.plan.faults.is_empty() || n < u64::from(self.plan.calm) {
            return None;
        }
        if !self.dice.percent(self.plan.rate) {
            return None;
        }
        let faults = self.plan.faults.clone();
        Some(self.dice.pick(&faults, Fault::Truncate))
    }

    fn hostile_answer(&mut self, command: &[u8]) -> Option<Vec<u8>> {
        match self.mode {
            Mode::Stalled => return None,
            Mode::MoreDataForever if command.get(1) == Some(&0xC0) => {
                // Mostly nothing, sometimes a few bytes: the loop, not the length, is the fault.
                let n = if self.dice.percent(80) { 0 } else { self.dice.below_usize(9) };
                let mut out = self.dice.bytes(n);
                out.extend_from_slice(&[0x61, self.dice.bytes(1).first().copied().unwrap_or(0)]);
                return Some(out);
            }
            Mode::WrongLengthLoop { header } if command.get(..4) == Some(&header[..]) => {
                return Some(vec![0x6C, self.wrong_le(command)]);
            }
            _ => self.mode = Mode::Normal,
        }
        let Some(fault) = self.roll() else {
            return Some(self.inner.process(command));
        };
        tracing::debug!("hostile card {}: {fault:?} on APDU {}", self.seed, self.apdus);
        let answer = match fault {
            Fault::Truncate => {
                let mut r = self.inner.process(command);
                let keep = self.dice.below_usize(r.len());
                r.truncate(keep);
                r
            }
            Fault::Oversize => {
                let mut r = self.inner.process(command);
                let ne = CommandApdu::decode(command)
                    .ok()
                    .and_then(|c| c.ne())
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(0);
                let sw = r.split_off(r.len().saturating_sub(2));
                let target = ne + 1 + self.dice.below_usize(MAX_OVERSIZED.saturating_sub(ne));
                let fill = target.saturating_sub(r.len()).max(1);
                let pattern = self.dice.bytes(fill.min(4096));
                r.extend(pattern.iter().copied().cycle().take(fill));
                r.truncate(MAX_OVERSIZED.max(ne + 1));
                r.extend_from_slice(if sw.len() == 2 { &sw } else { &[0x90, 0x00] });
                r
            }
            Fault::WrongStatus => {
                let mut r = self.inner.process(command);
                let sw = self.dice.pick(&PLAUSIBLE_WRONG_SW, 0x6F00);
                if self.dice.percent(50) {
                    r.clear();
                } else {
                    r.truncate(r.len().saturating_sub(2));
                }
                r.extend_from_slice(&sw.to_be_bytes());
                r
            }
            Fault::RandomStatus => {
                let n = if self.dice.percent(50) { 0 } else { self.dice.below_usize(300) };
                self.dice.bytes(n + 2)
            }
            Fault::MoreDataForever => {
                self.mode = Mode::MoreDataForever;
                vec![0x61, self.dice.bytes(1).first().copied().unwrap_or(0)]
            }
            Fault::WrongLengthLoop => {
                let mut header = [0u8; 4];
                for (h, c) in header.iter_mut().zip(command) {
                    *h = *c;
                }
                self.mode = Mode::WrongLengthLoop { header };
                vec![0x6C, self.wrong_le(command)]
            }
            Fault::MalformedTlv => {
                let mut r = self.inner.process(command);
                let sw = r.split_off(r.len().saturating_sub(2));
                let mut out = self.mangle_tlv(&r);
                out.extend_from_slice(if sw == [0x90, 0x00] || self.dice.percent(70) {
                    &[0x90, 0x00]
                } else {
                    &sw
                });
                out
            }
            Fault::Stall => {
                self.mode = Mode::Stalled;
                return None;
            }
            Fault::Reset => {
                self.inner.reset();
                if self.dice.percent(25) {
                    // Some cards answer a brown-out with their ATR on the line.
                    self.atr.clone()
                } else {
                    self.inner.process(command)
                }
            }
        };
        Some(answer)
    }

    /// An Le to offer in `6Cxx` that differs from what the command asked.
    fn wrong_le(&mut self, command: &[u8]) -> u8 {
        let asked = CommandApdu::decode(command).ok().and_then(|c| c.ne()).unwrap_or(0);
        let asked = u8::try_from(asked % 256).unwrap_or(0);
        let le = self.dice.bytes(1).first().copied().unwrap_or(0);
        if le == asked { le.wrapping_add(1) } else { le }
    }

    /// Breaks the BER-TLV structure of `data` (ISO/IEC 7816-4 §5.2 says what it should be).
    fn mangle_tlv(&mut self, data: &[u8]) -> Vec<u8> {
        let (tag_len, len_len) = tlv_header(data);
        let body_at = tag_len + len_len;
        let tag = data.get(..tag_len).filter(|t| !t.is_empty()).unwrap_or(&[0x53]).to_vec();
        let body = data.get(body_at..).unwrap_or_default();
        let mut out = tag.clone();
        match self.dice.below(6) {
            // A length past the end.
            0 => {
                let claimed = body.len() + 1 + self.dice.below_usize(300);
                push_len(&mut out, claimed);
                out.extend_from_slice(body);
            }
            // A huge length.
            1 => {
                out.extend_from_slice(&[0x84, 0xFF, 0xFF, 0xFF, 0xF0]);
                out.extend_from_slice(body);
            }
            // Indefinite (80) or a length of length beyond 4 bytes (85..FF).
            2 => {
                out.push(self.dice.pick(&[0x80, 0x85, 0x88, 0xFF], 0x80));
                out.extend_from_slice(body);
            }
            // Thousands of levels of nesting, every length right.
            3 => {
                let depth = 50 + self.dice.below_usize(3000);
                let inner_tag = self.dice.pick(&[0x7C_u8, 0x30, 0xA1, 0x6E, 0x73], 0x7C);
                let mut nested = body.to_vec();
                for _ in 0..depth {
                    let mut level = vec![inner_tag];
                    push_len(&mut level, nested.len());
                    level.extend_from_slice(&nested);
                    nested = level;
                    if nested.len() > MAX_OVERSIZED - 16 {
                        break;
                    }
                }
                out.clear();
                out.extend_from_slice(&tag);
                push_len(&mut out, nested.len());
                out.extend_from_slice(&nested);
            }
            // The TLV cut inside its value while its length still counts the whole.
            4 if !body.is_empty() => {
                out.extend_from_slice(data.get(tag_len..body_at).unwrap_or_default());
                out.extend_from_slice(body.get(..self.dice.below_usize(body.len())).unwrap_or(&[]));
            }
            // A few bytes flipped anywhere.
            _ => {
                out = data.to_vec();
                if out.is_empty() {
                    let n = 1 + self.dice.below_usize(16);
                    out = self.dice.bytes(n);
                }
                for _ in 0..=self.dice.below(4) {
                    let at = self.dice.below_usize(out.len());
                    let flip = self.dice.bytes(1).first().copied().unwrap_or(0xFF) | 1;
                    if let Some(b) = out.get_mut(at) {
                        *b ^= flip;
                    }
                }
            }
        }
        out
    }
}

/// Status words a confused or lying card gives (ISO/IEC 7816-4 §5.6 Table 5-6 and the
/// families' specifications), right in form but wrong for the command.
const PLAUSIBLE_WRONG_SW: [u16; 28] = [
    0x9000, 0x6982, 0x6983, 0x6984, 0x6985, 0x63C0, 0x63C1, 0x63C2, 0x63CF, 0x6300, 0x6A80, 0x6A82,
    0x6A86, 0x6A88, 0x6D00, 0x6E00, 0x6700, 0x6F00, 0x6581, 0x6B00, 0x6100, 0x61FF, 0x6C00, 0x6CFF,
    0x6283, 0x9FFF, 0x0000, 0xFFFF,
];

/// The sizes of the tag and length fields of the first BER-TLV header in `data` (zero when
/// there is none): tag bytes per ISO/IEC 7816-4 §5.2.2.1, lengths 00..7F or 81..84.
fn tlv_header(data: &[u8]) -> (usize, usize) {
    let Some(&first) = data.first() else { return (0, 0) };
    let mut tag_len = 1;
    if first & 0x1F == 0x1F {
        while tag_len < 3 && data.get(tag_len).is_some_and(|b| b & 0x80 != 0) {
            tag_len += 1;
        }
        tag_len += 1;
    }
    let len_len = match data.get(tag_len) {
        None => 0,
        Some(&l) if l < 0x80 => 1,
        Some(&l) => 1 + usize::from(l & 0x0F).min(4),
    };
    (tag_len.min(data.len()), len_len)
}

/// A definite BER length (ISO/IEC 7816-4 §5.2.2.2).
fn push_len(out: &mut Vec<u8>, len: usize) {
    let bytes = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    match len {
        0..=0x7F => out.push(bytes[3]),
        0x80..=0xFF => out.extend_from_slice(&[0x81, bytes[3]]),
        0x100..=0xFFFF => out.extend_from_slice(&[0x82, bytes[2], bytes[3]]),
        _ => {
            out.push(0x84);
            out.extend_from_slice(&bytes);
        }
    }
}

/// A wrong ATR for a card of `family` whose real ATR is `real`.
fn wrong_atr(fault: AtrFault, real: &[u8], family: Family, dice: &mut Dice) -> Vec<u8> {
    match fault {
        AtrFault::Empty => Vec::new(),
        AtrFault::Truncated => {
            real.get(..dice.below_usize(real.len())).unwrap_or_default().to_vec()
        }
        AtrFault::TooLong => {
            let mut atr = real.to_vec();
            let n = 34usize.saturating_sub(atr.len()) + dice.below_usize(20);
            atr.extend(dice.bytes(n));
            atr
        }
        AtrFault::Random => {
            let n = 1 + dice.below_usize(40);
            dice.bytes(n)
        }
        AtrFault::OtherFamily => match family {
            Family::Piv => openpgp::ATR.to_vec(),
            Family::OpenPgp => gids::ATR.to_vec(),
            Family::Gids => piv::ATR.to_vec(),
        },
        AtrFault::Inverse => {
            let mut atr = real.to_vec();
            if let Some(ts) = atr.first_mut() {
                *ts = 0x3F;
            }
            atr
        }
    }
}

/// The real ATR of a `family` card.
fn provisioned_atr(family: Family) -> Vec<u8> {
    match family {
        Family::Piv => piv::ATR.to_vec(),
        Family::OpenPgp => openpgp::ATR.to_vec(),
        Family::Gids => gids::ATR.to_vec(),
    }
}

/// A card of `family` with a key in container 0, its keys drawn from `seed`.
fn provisioned(family: Family, seed: u64) -> Box<dyn Card> {
    let rng = SimRng::from_seed(seed);
    match family {
        Family::Piv => {
            let mut card = piv::PivCard::new(rng);
            if let Err(err) =
                card.personalise(piv::KeySlot::PIV_AUTHENTICATION, KeyAlgorithm::P256, "hostile")
            {
                tracing::warn!("hostile card: personalising the PIV card: {err}");
            }
            Box::new(card)
        }
        Family::OpenPgp => {
            let mut card = openpgp::OpenPgpCard::new(rng);
            provision_openpgp(&mut card);
            Box::new(card)
        }
        Family::Gids => {
            // RSA 2048 key generation is slow: one personalised card per process, copied.
            static PERSONALISED: OnceLock<Option<serde_json::Value>> = OnceLock::new();
            let state = PERSONALISED.get_or_init(|| {
                let card = gids::GidsCard::new(SimRng::from_seed(0x6769_6473));
                Some(card.save_state())
            });
            match state.clone().map(|s| gids::GidsCard::from_state(s, rng.clone())) {
                Some(Ok(card)) => Box::new(card),
                _ => Box::new(gids::GidsCard::new(rng)),
            }
        }
    }
}

/// OpenPGP card 3.4: the signature key made P-256 and generated with the card's own commands
/// as GnuPG does it (§7.2.1 SELECT, §7.2.2 VERIFY PW3, §4.4.3.10 algorithm attributes C1,
/// §7.2.14 GENERATE ASYMMETRIC KEY PAIR, then the fingerprint C7 and its date CE).
fn provision_openpgp(card: &mut openpgp::OpenPgpCard) {
    const P256: [u8; 9] = [0x13, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
    card.power_on();
    send(card, 0xA4, 0x04, 0x00, &[0xD2, 0x76, 0x00, 0x01, 0x24, 0x01]);
    send(card, 0x20, 0x00, 0x83, b"12345678");
    send(card, 0xDA, 0x00, 0xC1, &P256);
    let public = send(card, 0x47, 0x80, 0x00, &[0xB6, 0x00]);
    // Any non-zero fingerprint marks the key as present; this one is a digest of the key.
    use sha1::Digest;
    let fingerprint = sha1::Sha1::digest(&public);
    send(card, 0xDA, 0x00, 0xC7, fingerprint.as_slice());
    send(card, 0xDA, 0x00, 0xCE, &[0x60, 0, 0, 0]);
    card.power_on();
}

/// Sends a command with Ne 65536 (extended) to `card` and returns its answer.
fn send(card: &mut openpgp::OpenPgpCard, ins: u8, p1: u8, p2: u8, data: &[u8]) -> Vec<u8> {
    CommandApdu::new(0, ins, p1, p2)
        .with_data(data.to_vec())
        .and_then(|c| c.with_ne(65536))
        .map(|c| card.process(&c.to_bytes()))
        .unwrap_or_default()
}

impl Card for HostileCard {
    fn family(&self) -> Family {
        self.plan.family
    }

    fn atr(&self) -> &[u8] {
        &self.atr
    }

    fn power_on(&mut self) {
        self.inner.power_on();
        self.mode = Mode::Normal;
    }

    fn reset(&mut self) {
        self.inner.reset();
        self.mode = Mode::Normal;
    }

    fn power_off(&mut self) {
        self.inner.power_off();
        self.mode = Mode::Normal;
    }

    /// As [`Card::answer`]; a stall is an empty answer (no status word).
    fn process(&mut self, command: &[u8]) -> Vec<u8> {
        self.hostile_answer(command).unwrap_or_default()
    }

    fn answer(&mut self, command: &[u8]) -> Option<Vec<u8>> {
        self.hostile_answer(command)
    }

    /// The seed: a hostile card keeps nothing else (its card inside is made again from it).
    fn save_state(&self) -> serde_json::Value {
        serde_json::json!({ "hostile_seed": self.seed })
    }
}

#[cfg(test)]
mod tests;
