//! The T=1 block protocol of ISO/IEC 7816-3 §11, interface device side, as a sans-IO state
//! machine: [`T1`] turns a command APDU into blocks to send and the card's blocks into the
//! response APDU.
//!
//! A block (§11.3) is a prologue (NAD, PCB, LEN), an information field of LEN bytes (0 to
//! 254) and the epilogue (LRC, one byte, or CRC, two bytes, chosen by the first TC for T=1).
//! The engine implements:
//! - I-blocks with chaining (M bit) in both directions and the send sequence numbers N(S)
//!   (§11.6.2), R-blocks acknowledging chained blocks or requesting retransmission;
//! - S(IFS) negotiation of IFSD and the card's S(IFS request) changing IFSC (§11.4.2);
//! - S(WTX): the card's waiting time extension request is answered and the multiplier is
//!   handed to the caller (CCID puts it in bBWI of the next XfrBlock);
//! - S(ABORT) both ways, S(RESYNCH) (§11.6.3.3);
//! - error handling (§11.6.3): an invalid block (bad LRC/CRC, bad length, bad PCB) or a
//!   timeout is answered with an R-block (code 1 EDC/parity, 2 other); an R-block is
//!   retransmitted when the answer to it is invalid; an S(request) is retransmitted when its
//!   answer is invalid; after three failed exchanges of a block the interface device sends
//!   S(RESYNCH request), at most three times per exchange, then gives up.
//!
//! After a resynchronisation the command is sent again from its first block, unless its
//! instruction may carry a secret (VERIFY, CHANGE REFERENCE DATA, ...): DESIGN.md forbids
//! retrying those automatically, so the exchange fails with [`Error::T1Resynchronised`].

use core::fmt;

use scard_iso7816::apdu::Ins;
use scard_iso7816::atr::{Atr, EdcKind};
use zeroize::Zeroizing;

use crate::error::Error;

/// The default IFSC and IFSD (ISO/IEC 7816-3 §11.4.2).
pub const DEFAULT_IFS: u8 = 32;
/// The largest information field (§11.4.2: IFS 01 to FE).
pub const MAX_IFS: u8 = 254;

/// PCB bit 8 clear: I-block (§11.3.2.2).
const PCB_I_MASK: u8 = 0x80;
/// PCB bits 8-7 = 10: R-block.
const PCB_R: u8 = 0x80;
/// PCB bits 8-7 = 11: S-block.
const PCB_S: u8 = 0xC0;
/// I-block: N(S) in bit 7.
const PCB_I_NS: u8 = 0x40;
/// I-block: more-data bit M in bit 6.
const PCB_I_MORE: u8 = 0x20;
/// R-block: N(R) in bit 5.
const PCB_R_NR: u8 = 0x10;
/// S-block: bit 6 set for a response.
const PCB_S_RESPONSE: u8 = 0x20;

/// The kind of an S-block, bits 5-1 of its PCB (§11.3.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SKind {
    /// 00000: RESYNCH.
    Resynch,
    /// 00001: IFS.
    Ifs,
    /// 00010: ABORT.
    Abort,
    /// 00011: WTX.
    Wtx,
}

impl SKind {
    fn bits(self) -> u8 {
        match self {
            Self::Resynch => 0,
            Self::Ifs => 1,
            Self::Abort => 2,
            Self::Wtx => 3,
        }
    }
}

/// The error indication of an R-block, bits 4-1 of its PCB (§11.3.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RCode {
    /// 0000: error free (acknowledgement).
    Ok,
    /// 0001: EDC or parity error.
    Edc,
    /// 0010: other errors.
    Other,
    /// Any other value (RFU).
    Rfu(u8),
}

impl RCode {
    fn bits(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Edc => 1,
            Self::Other => 2,
            Self::Rfu(b) => b & 0x0F,
        }
    }
}

/// A decoded block (without NAD and epilogue).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Block<'a> {
    /// Information block.
    I {
        /// N(S), 0 or 1.
        ns: bool,
        /// M: more data follow in the next I-block.
        more: bool,
        /// INF.
        inf: &'a [u8],
    },
    /// Receive-ready block.
    R {
        /// N(R): the N(S) of the I-block expected next.
        nr: bool,
        /// The error indication.
        code: RCode,
    },
    /// Supervisory block.
    S {
        /// The kind.
        kind: SKind,
        /// Response (true) or request.
        response: bool,
        /// INF (one byte for IFS and WTX, empty otherwise).
        inf: &'a [u8],
    },
}

impl fmt::Debug for Block<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::I { ns, more, inf } => {
                write!(
                    f,
                    "I({}, {}) {} bytes",
                    u8::from(*ns),
                    if *more { "M" } else { "-" },
                    inf.len()
                )
            }
            Self::R { nr, code } => write!(f, "R({}) {code:?}", u8::from(*nr)),
            Self::S { kind, response, inf } => write!(
                f,
                "S({kind:?} {}) {:02X?}",
                if *response { "response" } else { "request" },
                inf
            ),
        }
    }
}

/// Why a received block is invalid (ISO/IEC 7816-3 §11.6.3: these are answered with an R-block).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Invalid {
    /// Shorter than prologue plus epilogue.
    TooShort,
    /// LEN = FF (RFU).
    LenRfu,
    /// LEN does not match the bytes received.
    LengthMismatch,
    /// The LRC or CRC is wrong.
    Edc,
    /// A PCB no block type allows (R-block with bit 6 or a LEN, unknown S-block).
    Pcb,
    /// An S-block with the wrong INF length for its kind.
    SLength,
}

/// LRC: exclusive-or of all bytes (ISO/IEC 7816-3 §11.4.4).
pub fn lrc(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |acc, b| acc ^ b)
}

/// CRC of ISO/IEC 7816-3 §11.4.4 as libccid (openct checksum.c) computes it: polynomial
/// x^16 + x^12 + x^5 + 1 processed least significant bit first (0x8408), initial value FFFF,
/// no final inversion, sent most significant byte first.
pub fn crc(bytes: &[u8]) -> [u8; 2] {
    let mut v: u16 = 0xFFFF;
    for b in bytes {
        v ^= u16::from(*b);
        for _ in 0..8 {
            v = if v & 1 != 0 { (v >> 1) ^ 0x8408 } else { v >> 1 };
        }
    }
    v.to_be_bytes()
}

/// Encodes a block: NAD, PCB, LEN, INF, epilogue. `inf` must be at most 254 bytes (the engine
/// never builds longer ones; longer input is truncated to keep the encoding total).
pub fn encode_block(nad: u8, pcb: u8, inf: &[u8], edc: EdcKind) -> Zeroizing<Vec<u8>> {
    let inf = inf.get(..usize::from(MAX_IFS)).unwrap_or(inf);
    let mut out = Zeroizing::new(Vec::with_capacity(inf.len() + 5));
    out.push(nad);
    out.push(pcb);
    out.push(u8::try_from(inf.len()).unwrap_or(MAX_IFS));
    out.extend_from_slice(inf);
    match edc {
        EdcKind::Lrc => {
            let l = lrc(&out);
            out.push(l);
        }
        EdcKind::Crc => {
            let c = crc(&out);
            out.extend_from_slice(&c);
        }
    }
    out
}

/// Decodes a block, checking length and epilogue. Returns NAD and the block.
pub fn decode_block(bytes: &[u8], edc: EdcKind) -> Result<(u8, Block<'_>), Invalid> {
    let edc_len = match edc {
        EdcKind::Lrc => 1,
        EdcKind::Crc => 2,
    };
    let [nad, pcb, len, ..] = *bytes else { return Err(Invalid::TooShort) };
    if bytes.len() < 3 + edc_len {
        return Err(Invalid::TooShort);
    }
    // §11.3.1: LEN = FF is RFU.
    if len == 0xFF {
        return Err(Invalid::LenRfu);
    }
    let body_len = 3 + usize::from(len);
    if bytes.len() != body_len + edc_len {
        return Err(Invalid::LengthMismatch);
    }
    let (body, epilogue) = bytes.split_at(body_len);
    let ok = match edc {
        EdcKind::Lrc => epilogue == [lrc(body)],
        EdcKind::Crc => epilogue == crc(body),
    };
    if !ok {
        return Err(Invalid::Edc);
    }
    let inf = body.get(3..).unwrap_or(&[]);
    let block = if pcb & PCB_I_MASK == 0 {
        Block::I { ns: pcb & PCB_I_NS != 0, more: pcb & PCB_I_MORE != 0, inf }
    } else if pcb & PCB_S == PCB_R {
        // §11.3.2.2: R-block bit 6 is 0 and the information field is absent.
        if pcb & 0x20 != 0 || !inf.is_empty() {
            return Err(Invalid::Pcb);
        }
        let code = match pcb & 0x0F {
            0 => RCode::Ok,
            1 => RCode::Edc,
            2 => RCode::Other,
            other => RCode::Rfu(other),
        };
        Block::R { nr: pcb & PCB_R_NR != 0, code }
    } else {
        let kind = match pcb & 0x1F {
            0 => SKind::Resynch,
            1 => SKind::Ifs,
            2 => SKind::Abort,
            3 => SKind::Wtx,
            _ => return Err(Invalid::Pcb),
        };
        // §11.3.2.2: IFS and WTX carry one byte, RESYNCH and ABORT none.
        let expected = match kind {
            SKind::Ifs | SKind::Wtx => 1,
            SKind::Resynch | SKind::Abort => 0,
        };
        if inf.len() != expected {
            return Err(Invalid::SLength);
        }
        Block::S { kind, response: pcb & PCB_S_RESPONSE != 0, inf }
    };
    Ok((nad, block))
}

/// PCB of an I-block.
pub fn pcb_i(ns: bool, more: bool) -> u8 {
    (if ns { PCB_I_NS } else { 0 }) | if more { PCB_I_MORE } else { 0 }
}

/// PCB of an R-block.
pub fn pcb_r(nr: bool, code: RCode) -> u8 {
    PCB_R | (if nr { PCB_R_NR } else { 0 }) | code.bits()
}

/// PCB of an S-block.
pub fn pcb_s(kind: SKind, response: bool) -> u8 {
    PCB_S | (if response { PCB_S_RESPONSE } else { 0 }) | kind.bits()
}

/// Parameters of a T=1 session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct T1Config {
    /// IFSC, the card's information field size (first TA for T=1; 1..=254).
    pub ifsc: u8,
    /// The error detection code (first TC for T=1).
    pub edc: EdcKind,
    /// NAD of the blocks the interface device sends (0: no addressing).
    pub nad: u8,
    /// Failed exchanges of one block before resynchronisation (§11.6.3: 3).
    pub max_attempts: u8,
    /// S(RESYNCH request)s per exchange before giving up (§11.6.3: 3).
    pub max_resynch: u8,
    /// Largest response APDU accepted (65536 data bytes and SW1 SW2 by default).
    pub max_response: usize,
    /// Blocks received in one exchange before giving up (bounds WTX loops and endless chains).
    pub max_blocks: u32,
}

impl Default for T1Config {
    fn default() -> Self {
        Self {
            ifsc: DEFAULT_IFS,
            edc: EdcKind::Lrc,
            nad: 0,
            max_attempts: 3,
            max_resynch: 3,
            max_response: 65538,
            max_blocks: 8192,
        }
    }
}

impl T1Config {
    /// IFSC and EDC from the ATR (ISO/IEC 7816-3 §11.4); an IFSC of 00 or FF (RFU) is taken
    /// as the default 32.
    pub fn from_atr(atr: &Atr) -> Self {
        let t1 = atr.t1();
        let ifsc = t1
            .map(|p| p.ifsc)
            .and_then(|v| u8::try_from(v).ok())
            .filter(|v| (1..=MAX_IFS).contains(v))
            .unwrap_or(DEFAULT_IFS);
        Self { ifsc, edc: t1.map_or(EdcKind::Lrc, |p| p.edc), ..Self::default() }
    }
}

/// A received fault instead of a block (what a TPDU-level CCID reports in bError).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// No block within the block waiting time (CCID ICC_MUTE).
    Timeout,
    /// A parity error (CCID XFR_PARITY_ERROR).
    Parity,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum T1Step {
    /// Send `block`; `wtx` is the waiting time multiplier for its answer (0: none).
    Send {
        /// The block to send.
        block: Zeroizing<Vec<u8>>,
        /// The card's S(WTX) multiplier for the answer to this block (0 or 1: none).
        wtx: u8,
    },
    /// The exchange is complete: the response APDU.
    Response(Zeroizing<Vec<u8>>),
    /// The S(IFS) negotiation is complete: IFSD is now this value.
    IfsdSet(u8),
    /// The chain was aborted with S(ABORT).
    Aborted,
    /// A requested resynchronisation succeeded.
    Resynchronised,
}

/// What the last block sent was (for retransmission rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    None,
    I,
    R,
    SRequest,
    SResponse,
}

/// What to do after a successful resynchronisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resume {
    Nothing,
    Apdu,
    Ifs,
    /// The command was built by the reader (PIN pad): it cannot be sent again.
    External,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Idle,
    /// S(IFS request) with this value in flight.
    Ifs {
        value: u8,
    },
    /// I-block with `cmd[pos..pos + chunk]` in flight; `external`: built by the reader.
    Sending {
        pos: usize,
        chunk: usize,
        external: bool,
    },
    /// Receiving the card's chain into `rx`.
    Receiving,
    /// S(RESYNCH request) in flight.
    Resynch {
        resume: Resume,
    },
    /// S(ABORT request) in flight.
    Abort,
    /// S(ABORT response) sent after the card's S(ABORT request).
    CardAborted,
}

/// The T=1 engine. See the module documentation.
pub struct T1 {
    cfg: T1Config,
    ifsc: u8,
    ifsd: u8,
    /// N(S) of the next I-block the interface device sends.
    ns: bool,
    /// N(S) of the next I-block expected from the card (sent as N(R)).
    nr: bool,
    state: State,
    /// The command APDU of the exchange in progress.
    cmd: Zeroizing<Vec<u8>>,
    /// The response being received.
    rx: Zeroizing<Vec<u8>>,
    /// The last block sent.
    last: Zeroizing<Vec<u8>>,
    last_kind: Sent,
    /// The I-block in flight (retransmitted on request).
    current_i: Zeroizing<Vec<u8>>,
    /// Consecutive failed exchanges.
    errors: u8,
    /// S(RESYNCH request)s in this exchange.
    resynchs: u8,
    /// Blocks received in this exchange.
    blocks: u32,
    /// Set after a failure that may have left the card out of step.
    needs_resynch: bool,
    /// The IFSD to request once a resynchronisation interrupting S(IFS) succeeds.
    pending_ifs: Option<u8>,
}

impl fmt::Debug for T1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("T1")
            .field("ifsc", &self.ifsc)
            .field("ifsd", &self.ifsd)
            .field("ns", &self.ns)
            .field("nr", &self.nr)
            .field("state", &self.state)
            .field("errors", &self.errors)
            .field("resynchs", &self.resynchs)
            .finish_non_exhaustive()
    }
}

impl T1 {
    /// A session after the ATR: N(S) = N(R) = 0, IFSD 32 (§11.4.2).
    pub fn new(cfg: T1Config) -> Result<Self, Error> {
        if !(1..=MAX_IFS).contains(&cfg.ifsc) {
            return Err(Error::T1InvalidIfs { value: cfg.ifsc.into() });
        }
        Ok(Self {
            cfg,
            ifsc: cfg.ifsc,
            ifsd: DEFAULT_IFS,
            ns: false,
            nr: false,
            state: State::Idle,
            cmd: Zeroizing::new(Vec::new()),
            rx: Zeroizing::new(Vec::new()),
            last: Zeroizing::new(Vec::new()),
            last_kind: Sent::None,
            current_i: Zeroizing::new(Vec::new()),
            errors: 0,
            resynchs: 0,
            blocks: 0,
            needs_resynch: false,
            pending_ifs: None,
        })
    }

    /// The current IFSC.
    pub fn ifsc(&self) -> u8 {
        self.ifsc
    }
    /// The current IFSD.
    pub fn ifsd(&self) -> u8 {
        self.ifsd
    }
    /// N(S) of the next I-block sent.
    pub fn ns(&self) -> bool {
        self.ns
    }
    /// N(S) expected of the card's next I-block.
    pub fn nr(&self) -> bool {
        self.nr
    }
    /// Whether no exchange is in progress.
    pub fn is_idle(&self) -> bool {
        self.state == State::Idle
    }
    /// The error detection code in use.
    pub fn edc(&self) -> EdcKind {
        self.cfg.edc
    }

    fn begin(&mut self) -> Result<(), Error> {
        if self.state != State::Idle {
            return Err(Error::T1Busy);
        }
        self.errors = 0;
        self.resynchs = 0;
        self.blocks = 0;
        self.rx = Zeroizing::new(Vec::new());
        Ok(())
    }

    /// Starts an S(IFS request) announcing `ifsd` (§11.4.2, §11.6.2: the interface device
    /// may send it as its first block).
    pub fn negotiate_ifsd(&mut self, ifsd: u8) -> Result<T1Step, Error> {
        if !(1..=MAX_IFS).contains(&ifsd) {
            return Err(Error::T1InvalidIfs { value: ifsd.into() });
        }
        self.begin()?;
        if self.needs_resynch {
            return self.start_resynch(Resume::Ifs, Some(ifsd));
        }
        Ok(self.send_ifs(ifsd))
    }

    /// Starts the exchange of a command APDU.
    pub fn transmit(&mut self, apdu: &[u8]) -> Result<T1Step, Error> {
        if apdu.is_empty() {
            return Err(Error::Apdu(scard_iso7816::Error::CommandTooShort { len: 0 }));
        }
        self.begin()?;
        self.cmd = Zeroizing::new(apdu.to_vec());
        if self.needs_resynch {
            return self.start_resynch(Resume::Apdu, None);
        }
        Ok(self.send_chunk(0))
    }

    /// Prepares the exchange of an I-block that the reader builds itself (PC_to_RDR_Secure at
    /// TPDU level, CCID §6.1.11 bTeoPrologue): returns the prologue NAD PCB LEN for an
    /// unchained I-block of `len` bytes and waits for the card's answer as if it had been sent.
    pub fn external_i_block(&mut self, len: usize) -> Result<[u8; 3], Error> {
        let len8 = u8::try_from(len).ok().filter(|l| *l <= self.ifsc);
        let Some(len8) = len8 else {
            return Err(Error::DataTooLong {
                what: "PIN pad APDU (one I-block, at most IFSC)",
                len,
                max: usize::from(self.ifsc),
            });
        };
        if self.needs_resynch {
            return Err(Error::T1Resynchronised);
        }
        self.begin()?;
        self.cmd = Zeroizing::new(Vec::new());
        self.state = State::Sending { pos: 0, chunk: 0, external: true };
        self.last = Zeroizing::new(Vec::new());
        self.current_i = Zeroizing::new(Vec::new());
        self.last_kind = Sent::I;
        Ok([self.cfg.nad, pcb_i(self.ns, false), len8])
    }

    /// Aborts the exchange in progress (or sends a lone S(ABORT request)) (§11.6.3.3).
    pub fn abort(&mut self) -> Result<T1Step, Error> {
        self.state = State::Idle;
        self.begin()?;
        self.state = State::Abort;
        Ok(self.send_s(SKind::Abort, false, &[], 0))
    }

    /// Resynchronises now (§11.6.3.3): S(RESYNCH request).
    pub fn resynch(&mut self) -> Result<T1Step, Error> {
        self.state = State::Idle;
        self.begin()?;
        self.start_resynch(Resume::Nothing, None)
    }

    /// Feeds a fault reported instead of a block.
    pub fn receive_fault(&mut self, fault: Fault) -> Result<T1Step, Error> {
        if self.state == State::Idle {
            return Err(Error::T1Idle);
        }
        if self.state == State::CardAborted {
            self.fail();
            return Err(Error::T1CardAborted);
        }
        self.count_block()?;
        self.fault(match fault {
            Fault::Timeout => RCode::Other,
            Fault::Parity => RCode::Edc,
        })
    }

    /// Feeds a block received from the card.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<T1Step, Error> {
        if self.state == State::Idle {
            return Err(Error::T1Idle);
        }
        self.count_block()?;
        let block = match decode_block(bytes, self.cfg.edc) {
            // §11.3.1: the card answers with SAD and DAD swapped.
            Ok((nad, block)) if nad == self.cfg.nad.rotate_left(4) => block,
            Ok(_) => return self.fault(RCode::Other),
            Err(Invalid::Edc) => return self.fault(RCode::Edc),
            Err(_) => return self.fault(RCode::Other),
        };
        tracing::trace!(?block, "T=1 <<");
        // S requests of the card are answered whatever the state (§11.6.2).
        if let Block::S { kind, response: false, inf } = block {
            return self.card_request(kind, inf);
        }
        match self.state.clone() {
            State::Idle => Err(Error::T1Idle),
            State::Ifs { value } => match block {
                Block::S { kind: SKind::Ifs, response: true, inf: [v] } if *v == value => {
                    self.ifsd = value;
                    self.finish();
                    Ok(T1Step::IfsdSet(value))
                }
                _ => self.fault(RCode::Other),
            },
            State::Resynch { resume } => match block {
                Block::S { kind: SKind::Resynch, response: true, .. } => {
                    self.resynchronised(resume)
                }
                _ => self.fault(RCode::Other),
            },
            State::Abort => match block {
                Block::S { kind: SKind::Abort, response: true, .. } => {
                    self.finish();
                    Ok(T1Step::Aborted)
                }
                _ => self.fault(RCode::Other),
            },
            State::CardAborted => {
                self.fail();
                Err(Error::T1CardAborted)
            }
            State::Sending { pos, chunk, external } => {
                self.while_sending(block, pos, chunk, external)
            }
            State::Receiving => self.while_receiving(block),
        }
    }

    fn count_block(&mut self) -> Result<(), Error> {
        self.blocks = self.blocks.saturating_add(1);
        if self.blocks > self.cfg.max_blocks {
            self.fail();
            return Err(Error::T1ExchangeTooLong { blocks: self.cfg.max_blocks });
        }
        Ok(())
    }

    fn while_sending(
        &mut self,
        block: Block<'_>,
        pos: usize,
        chunk: usize,
        external: bool,
    ) -> Result<T1Step, Error> {
        let chained = pos + chunk < self.cmd.len();
        match block {
            Block::R { nr, .. } => {
                if chained && nr != self.ns {
                    // §11.6.2: R(N(R)) with N(R) the next N(S) acknowledges a chained block.
                    self.ns = !self.ns;
                    self.errors = 0;
                    Ok(self.send_chunk(pos + chunk))
                } else if nr == self.ns {
                    // §11.6.3: the card asks for the I-block again.
                    if external {
                        self.fail();
                        return Err(Error::T1CannotRetransmit);
                    }
                    self.errors += 1;
                    if self.errors >= self.cfg.max_attempts {
                        return self.start_resynch(Resume::Apdu, None);
                    }
                    let block = self.current_i.clone();
                    Ok(self.send_raw(block, Sent::I))
                } else {
                    // An acknowledgement of a block that was not chained.
                    self.fault(RCode::Other)
                }
            }
            Block::I { ns, more, inf } => {
                // §11.6.2: an I-block answers only the last block of a chain.
                if chained || ns != self.nr || inf.len() > usize::from(self.ifsd) {
                    return self.fault(RCode::Other);
                }
                // The card's I-block acknowledges ours.
                self.ns = !self.ns;
                self.state = State::Receiving;
                self.accept(inf, more)
            }
            Block::S { .. } => self.fault(RCode::Other),
        }
    }

    fn while_receiving(&mut self, block: Block<'_>) -> Result<T1Step, Error> {
        match block {
            Block::I { ns, more, inf } if ns == self.nr && inf.len() <= usize::from(self.ifsd) => {
                self.accept(inf, more)
            }
            _ => self.fault(RCode::Other),
        }
    }

    /// Takes the INF of an expected I-block of the card.
    fn accept(&mut self, inf: &[u8], more: bool) -> Result<T1Step, Error> {
        if self.rx.len() + inf.len() > self.cfg.max_response {
            self.fail();
            return Err(Error::T1ResponseTooLong { max: self.cfg.max_response });
        }
        self.rx.extend_from_slice(inf);
        self.nr = !self.nr;
        self.errors = 0;
        if more {
            // §11.6.2: a chained I-block is acknowledged by R(N(R)) with the next N(S).
            Ok(self.send_r(RCode::Ok))
        } else {
            let response = core::mem::replace(&mut self.rx, Zeroizing::new(Vec::new()));
            self.finish();
            Ok(T1Step::Response(response))
        }
    }

    /// The card's S(... request)s.
    fn card_request(&mut self, kind: SKind, inf: &[u8]) -> Result<T1Step, Error> {
        match (kind, inf) {
            // §11.6.2: S(WTX request) is answered by S(WTX response) with the same INF; the
            // multiplier applies to the waiting time for the next block.
            (SKind::Wtx, [m]) => {
                let m = *m;
                self.errors = 0;
                Ok(self.send_s(SKind::Wtx, true, &[m], m))
            }
            // §11.4.2: the card announces a new IFSC (1..=254).
            (SKind::Ifs, [v]) if (1..=MAX_IFS).contains(v) => {
                let v = *v;
                self.ifsc = v;
                self.errors = 0;
                Ok(self.send_s(SKind::Ifs, true, &[v], 0))
            }
            // §11.6.3.3: the card aborts its chain.
            (SKind::Abort, []) => {
                self.state = State::CardAborted;
                Ok(self.send_s(SKind::Abort, true, &[], 0))
            }
            // S(RESYNCH request) is sent only by the interface device; bad IFS values.
            _ => self.fault(RCode::Other),
        }
    }

    /// Error handling of §11.6.3 for an invalid block, a timeout or an unexpected block.
    fn fault(&mut self, code: RCode) -> Result<T1Step, Error> {
        if let State::Resynch { resume } = self.state {
            // Each S(RESYNCH request) gets one try.
            return self.start_resynch(resume, None);
        }
        self.errors += 1;
        if self.errors >= self.cfg.max_attempts {
            let resume = match self.state {
                State::Ifs { .. } => Resume::Ifs,
                State::Sending { external: true, .. } => Resume::External,
                State::Sending { .. } | State::Receiving => Resume::Apdu,
                _ => Resume::Nothing,
            };
            let ifs = match self.state {
                State::Ifs { value } => Some(value),
                _ => None,
            };
            return self.start_resynch(resume, ifs);
        }
        match (self.state.clone(), self.last_kind) {
            // An S(... request) whose answer is invalid is sent again.
            (State::Ifs { .. } | State::Abort, _) => {
                let block = self.last.clone();
                Ok(self.send_raw(block, Sent::SRequest))
            }
            // An R-block whose answer is invalid is sent again.
            (_, Sent::R) => {
                let block = self.last.clone();
                Ok(self.send_raw(block, Sent::R))
            }
            // Otherwise an R-block with the error indication and N(R) of the expected block.
            _ => Ok(self.send_r(code)),
        }
    }

    fn start_resynch(&mut self, resume: Resume, ifs: Option<u8>) -> Result<T1Step, Error> {
        if self.resynchs >= self.cfg.max_resynch {
            let attempts = self.resynchs;
            self.fail();
            return Err(Error::T1ResynchFailed { attempts });
        }
        // Remember the IFS value to request again after the resynch.
        if ifs.is_some() {
            self.pending_ifs = ifs;
        }
        self.resynchs += 1;
        self.errors = 0;
        self.state = State::Resynch { resume };
        Ok(self.send_s(SKind::Resynch, false, &[], 0))
    }

    fn resynchronised(&mut self, resume: Resume) -> Result<T1Step, Error> {
        // §11.6.3.3: after RESYNCH both sides restart with N(S) = 0 and the initial IFS values.
        self.ns = false;
        self.nr = false;
        self.ifsc = self.cfg.ifsc;
        self.ifsd = DEFAULT_IFS;
        self.needs_resynch = false;
        self.errors = 0;
        self.rx = Zeroizing::new(Vec::new());
        match resume {
            Resume::Nothing => {
                self.finish();
                Ok(T1Step::Resynchronised)
            }
            Resume::Ifs => match self.pending_ifs.take() {
                Some(v) => Ok(self.send_ifs(v)),
                None => {
                    self.finish();
                    Ok(T1Step::IfsdSet(DEFAULT_IFS))
                }
            },
            Resume::Apdu => {
                let secret = self.cmd.get(1).is_some_and(|ins| Ins(*ins).carries_secret());
                if secret {
                    self.finish();
                    return Err(Error::T1Resynchronised);
                }
                Ok(self.send_chunk(0))
            }
            Resume::External => {
                self.finish();
                Err(Error::T1Resynchronised)
            }
        }
    }

    fn send_ifs(&mut self, value: u8) -> T1Step {
        self.state = State::Ifs { value };
        self.send_s(SKind::Ifs, false, &[value], 0)
    }

    fn send_chunk(&mut self, pos: usize) -> T1Step {
        let len = self.cmd.len();
        let end = pos.saturating_add(usize::from(self.ifsc)).min(len);
        let more = end < len;
        let block = encode_block(
            self.cfg.nad,
            pcb_i(self.ns, more),
            self.cmd.get(pos..end).unwrap_or(&[]),
            self.cfg.edc,
        );
        self.state = State::Sending { pos, chunk: end.saturating_sub(pos), external: false };
        self.current_i = block.clone();
        self.send_raw(block, Sent::I)
    }

    fn send_r(&mut self, code: RCode) -> T1Step {
        let block = encode_block(self.cfg.nad, pcb_r(self.nr, code), &[], self.cfg.edc);
        self.send_raw(block, Sent::R)
    }

    fn send_s(&mut self, kind: SKind, response: bool, inf: &[u8], wtx: u8) -> T1Step {
        let block = encode_block(self.cfg.nad, pcb_s(kind, response), inf, self.cfg.edc);
        let sent = if response { Sent::SResponse } else { Sent::SRequest };
        self.last = block.clone();
        self.last_kind = sent;
        tracing::trace!(block = %scard_iso7816::hex::Hex(&block), "T=1 >>");
        T1Step::Send { block, wtx }
    }

    fn send_raw(&mut self, block: Zeroizing<Vec<u8>>, kind: Sent) -> T1Step {
        self.last = block.clone();
        self.last_kind = kind;
        T1Step::Send { block, wtx: 0 }
    }

    /// Forgets the exchange in progress after a CCID abort: the card may be out of step, so
    /// the next exchange starts with a resynchronisation.
    pub(crate) fn reset_after_abort(&mut self) {
        if self.state != State::Idle {
            self.fail();
        }
    }

    fn finish(&mut self) {
        self.state = State::Idle;
        self.cmd = Zeroizing::new(Vec::new());
    }

    fn fail(&mut self) {
        self.finish();
        self.needs_resynch = true;
    }
}

#[cfg(test)]
#[path = "t1_tests.rs"]
mod tests;
