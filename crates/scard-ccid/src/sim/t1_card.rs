//! The card side of T=1 (ISO/IEC 7816-3 §11) for the simulated reader: receives the interface
//! device's blocks, hands complete APDUs to the card closure, and answers with blocks, chained
//! to the IFSD the interface device announced.

use scard_iso7816::atr::EdcKind;

use crate::t1::{Block, Invalid, RCode, SKind, decode_block, encode_block, pcb_i, pcb_r, pcb_s};

/// Things the card does on its own, set through the simulator's knobs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CardBehaviour {
    /// Ask for a waiting time extension (S(WTX request)) before each response.
    pub(crate) wtx: Option<u8>,
    /// Ask again this many times after each S(WTX response) (`u32::MAX`: forever).
    pub(crate) wtx_repeat: u32,
    /// Announce a new IFSC (S(IFS request)) before the next response.
    pub(crate) ifs_request: Option<u8>,
    /// Answer the next S(IFS request) of the interface device with an R-block instead.
    pub(crate) ignore_ifs: bool,
}

#[derive(Debug)]
pub(crate) struct CardT1 {
    edc: EdcKind,
    /// The card's own receive size.
    ifsc: u8,
    /// The interface device's receive size.
    ifsd: u8,
    /// N(S) of the card's next I-block.
    ns: bool,
    /// N(S) expected of the interface device's next I-block.
    nr: bool,
    rx: Vec<u8>,
    tx: Vec<u8>,
    tx_pos: usize,
    /// The last block sent (retransmitted on request).
    last: Vec<u8>,
    /// N(S) of the last I-block sent, while a chain is being sent.
    last_i_ns: Option<bool>,
    /// The block held back behind an S(WTX request) or S(IFS request).
    deferred: Option<Vec<u8>>,
    /// S(WTX request)s still to send before the held-back block.
    wtx_left: u32,
    /// Complete APDUs received (for tests).
    pub(crate) apdus: usize,
}

impl CardT1 {
    pub(crate) fn new(edc: EdcKind, ifsc: u8) -> Self {
        Self {
            edc,
            ifsc,
            ifsd: 32,
            ns: false,
            nr: false,
            rx: Vec::new(),
            tx: Vec::new(),
            tx_pos: 0,
            last: Vec::new(),
            last_i_ns: None,
            deferred: None,
            wtx_left: 0,
            apdus: 0,
        }
    }

    /// The error detection code.
    pub(crate) fn edc(&self) -> EdcKind {
        self.edc
    }

    /// The interface device's IFSD as the card knows it.
    pub(crate) fn ifsd(&self) -> u8 {
        self.ifsd
    }

    fn block(&self, pcb: u8, inf: &[u8]) -> Vec<u8> {
        encode_block(0, pcb, inf, self.edc).to_vec()
    }

    fn send(&mut self, block: Vec<u8>) -> Vec<u8> {
        self.last = block.clone();
        block
    }

    fn r_block(&mut self, code: RCode) -> Vec<u8> {
        let b = self.block(pcb_r(self.nr, code), &[]);
        self.send(b)
    }

    /// The next I-block of the response chain.
    fn next_chunk(&mut self) -> Vec<u8> {
        let end = (self.tx_pos + usize::from(self.ifsd)).min(self.tx.len());
        let more = end < self.tx.len();
        let inf = self.tx.get(self.tx_pos..end).unwrap_or(&[]).to_vec();
        let block = self.block(pcb_i(self.ns, more), &inf);
        self.last_i_ns = more.then_some(self.ns);
        self.ns = !self.ns;
        self.tx_pos = end;
        block
    }

    /// Handles one block from the interface device; returns the card's answer.
    pub(crate) fn handle(
        &mut self,
        bytes: &[u8],
        card: &mut dyn FnMut(&[u8]) -> Vec<u8>,
        behaviour: &mut CardBehaviour,
    ) -> Vec<u8> {
        let block = match decode_block(bytes, self.edc) {
            Ok((_, b)) => b,
            Err(Invalid::Edc) => return self.r_block(RCode::Edc),
            Err(_) => return self.r_block(RCode::Other),
        };
        match block {
            Block::I { ns, more, inf } => {
                if inf.len() > usize::from(self.ifsc) {
                    return self.r_block(RCode::Other);
                }
                if ns != self.nr {
                    // The interface device sent a block again: our answer was lost.
                    return self.last.clone();
                }
                self.nr = !self.nr;
                self.rx.extend_from_slice(inf);
                if more {
                    return self.r_block(RCode::Ok);
                }
                self.apdus += 1;
                let apdu = core::mem::take(&mut self.rx);
                self.tx = card(&apdu);
                self.tx_pos = 0;
                let first = self.next_chunk();
                if let Some(v) = behaviour.ifs_request.take() {
                    self.ifsc = v;
                    self.deferred = Some(first);
                    let b = self.block(pcb_s(SKind::Ifs, false), &[v]);
                    return self.send(b);
                }
                if let Some(m) = behaviour.wtx {
                    self.deferred = Some(first);
                    self.wtx_left = behaviour.wtx_repeat;
                    let b = self.block(pcb_s(SKind::Wtx, false), &[m]);
                    return self.send(b);
                }
                self.send(first)
            }
            Block::R { nr, .. } => match self.last_i_ns {
                // Acknowledgement of a chained block: the next one.
                Some(sent) if nr != sent => {
                    let b = self.next_chunk();
                    self.send(b)
                }
                _ => self.last.clone(),
            },
            Block::S { kind, response: false, inf } => match (kind, inf) {
                (SKind::Ifs, [v]) => {
                    if behaviour.ignore_ifs {
                        return self.r_block(RCode::Other);
                    }
                    self.ifsd = *v;
                    let b = self.block(pcb_s(SKind::Ifs, true), &[*v]);
                    self.send(b)
                }
                (SKind::Resynch, []) => {
                    self.ns = false;
                    self.nr = false;
                    self.rx.clear();
                    self.tx.clear();
                    self.last_i_ns = None;
                    self.deferred = None;
                    self.wtx_left = 0;
                    self.ifsd = 32;
                    let b = self.block(pcb_s(SKind::Resynch, true), &[]);
                    self.send(b)
                }
                (SKind::Abort, []) => {
                    self.rx.clear();
                    self.tx.clear();
                    self.last_i_ns = None;
                    let b = self.block(pcb_s(SKind::Abort, true), &[]);
                    self.send(b)
                }
                _ => self.r_block(RCode::Other),
            },
            // The interface device answered our S(WTX) or S(IFS) request: the held-back block.
            // A card that keeps asking for more time (ISO/IEC 7816-3 §11.6.2.3 sets no limit).
            Block::S { kind: SKind::Wtx, response: true, .. }
                if self.wtx_left > 0 && self.deferred.is_some() =>
            {
                if self.wtx_left != u32::MAX {
                    self.wtx_left -= 1;
                }
                let m = behaviour.wtx.unwrap_or(1);
                let b = self.block(pcb_s(SKind::Wtx, false), &[m]);
                self.send(b)
            }
            Block::S { response: true, .. } => match self.deferred.take() {
                Some(b) => self.send(b),
                None => self.r_block(RCode::Other),
            },
        }
    }
}
