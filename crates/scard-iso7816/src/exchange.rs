//! The exchange engine: turns one logical command into the APDUs a card with given limits
//! accepts, and the card's answers back into one response. Sans-IO: the caller moves bytes.
//!
//! What it does (ISO/IEC 7816-4 §5.1.1, §5.3.3; ISO/IEC 7816-3 §12.2):
//! - command chaining (CLA bit b5, 0x10) when the data exceed the card's command limit;
//! - extended length fields only when the limits say both reader and card take them;
//! - a GET RESPONSE loop while the card answers `61xx`, bounded in rounds and in bytes;
//! - one resend with the corrected Le after `6Cxx` to a command with an Le (a second `6Cxx`
//!   is an error; to a command without Le, `6Cxx` is the final answer);
//! - a response longer than Ne is an error, not a truncation.
//!
//! ```
//! use scard_iso7816::{CardLimits, CommandApdu, Exchange, Step};
//! let select = CommandApdu::new(0x00, 0xA4, 0x04, 0x00)
//!     .with_data([0xA0, 0x00, 0x00, 0x03, 0x08])?
//!     .with_ne(256)?;
//! let mut exchange = Exchange::new(&select, CardLimits::default())?;
//! // A card that answers 6110, then sends the 16 bytes on GET RESPONSE.
//! let mut card = [vec![0x61, 0x10], [vec![0xAA; 16], vec![0x90, 0x00]].concat()].into_iter();
//! let response = loop {
//!     let _apdu_to_send: &[u8] = exchange.apdu();
//!     let answer = card.next().unwrap();
//!     match exchange.receive(&answer)? {
//!         Step::Transmit => continue,
//!         Step::Done(response) => break response,
//!     }
//! };
//! assert!(response.is_success());
//! assert_eq!(response.data().len(), 16);
//! # Ok::<(), scard_iso7816::Error>(())
//! ```

use alloc::vec::Vec;
use core::fmt;

use zeroize::Zeroizing;

use crate::apdu::{self, CommandApdu, Ins, ResponseApdu};
use crate::error::Error;
use crate::status::StatusWord;

/// CLA bit b5: "command is not the last of a chain" (ISO/IEC 7816-4 §5.4.1, table 2 and 3).
const CLA_CHAINING: u8 = 0x10;

/// What the card (and the reader in front of it) accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardLimits {
    /// Largest Nc of one APDU. At most 255 unless `extended_length`.
    pub max_command_data: usize,
    /// Largest Ne of one APDU. At most 256 unless `extended_length`.
    pub max_response_data: u32,
    /// Both the reader and the card take extended length fields.
    pub extended_length: bool,
    /// The card accepts command chaining.
    pub command_chaining: bool,
    /// Most `61xx` answers followed with GET RESPONSE in one exchange. The default, 256, is
    /// what 64 KiB in 256-byte pieces needs; a card past it is looping.
    pub max_get_response: u16,
}

impl Default for CardLimits {
    /// Short APDUs only, chaining allowed: what every ISO/IEC 7816 card must take.
    fn default() -> Self {
        Self {
            max_command_data: apdu::MAX_SHORT_NC,
            max_response_data: apdu::MAX_SHORT_NE,
            extended_length: false,
            command_chaining: true,
            max_get_response: 256,
        }
    }
}

impl CardLimits {
    /// Extended length with the given per-APDU limits, chaining allowed.
    pub fn extended(max_command_data: usize, max_response_data: u32) -> Self {
        Self { max_command_data, max_response_data, extended_length: true, ..Self::default() }
    }

    fn check(&self) -> Result<(), Error> {
        let (max_nc, max_ne) = if self.extended_length {
            (apdu::MAX_NC, apdu::MAX_NE)
        } else {
            (apdu::MAX_SHORT_NC, apdu::MAX_SHORT_NE)
        };
        if self.max_command_data == 0 || self.max_command_data > max_nc {
            return Err(Error::InvalidLimits {
                reason: if self.extended_length {
                    "max_command_data must be in 1..=65535"
                } else {
                    "max_command_data must be in 1..=255 without extended length"
                },
            });
        }
        if self.max_response_data == 0 || self.max_response_data > max_ne {
            return Err(Error::InvalidLimits {
                reason: if self.extended_length {
                    "max_response_data must be in 1..=65536"
                } else {
                    "max_response_data must be in 1..=256 without extended length"
                },
            });
        }
        Ok(())
    }
}

/// What to do after a response was consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send [`Exchange::apdu`] (a new APDU) and feed its answer to [`Exchange::receive`].
    Transmit,
    /// The exchange is over. The status word is the card's final answer; it may be an error.
    Done(ResponseApdu),
}

/// The APDU in flight: a piece of the command, or a GET RESPONSE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    /// Command data `start..end`; `last` when this is the final (or only) piece.
    Piece { start: usize, end: usize, last: bool, le: Option<u32> },
    /// GET RESPONSE with this Le.
    GetResponse { le: u32 },
}

/// One command being exchanged with a card. See the module documentation.
pub struct Exchange<'a> {
    command: &'a CommandApdu,
    limits: CardLimits,
    pending: Pending,
    /// The encoding of `pending`, zeroized on drop (it may hold a PIN).
    out: Zeroizing<Vec<u8>>,
    /// Response data gathered so far.
    data: Zeroizing<Vec<u8>>,
    /// Ne of the whole command (65536 when the command has no Le).
    ne: u32,
    get_response_rounds: u16,
    resent_with_corrected_le: bool,
    apdus_sent: usize,
    done: bool,
}

impl fmt::Debug for Exchange<'_> {
    /// The APDU in flight and the data gathered may hold a PIN or a decrypted secret: only
    /// their lengths are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchange")
            .field("command", self.command)
            .field("limits", &self.limits)
            .field("pending", &self.pending)
            .field("apdu_len", &self.out.len())
            .field("data_len", &self.data.len())
            .field("get_response_rounds", &self.get_response_rounds)
            .field("apdus_sent", &self.apdus_sent)
            .field("done", &self.done)
            .finish()
    }
}

impl<'a> Exchange<'a> {
    /// Starts exchanging `command` with a card of the given limits. [`Exchange::apdu`] is the
    /// first APDU to send.
    pub fn new(command: &'a CommandApdu, limits: CardLimits) -> Result<Self, Error> {
        limits.check()?;
        let nc = command.data().len();
        let chunk = limits.max_command_data;
        if nc > chunk {
            if !limits.command_chaining {
                return Err(Error::CommandTooLong { len: nc, max: chunk });
            }
            let cla = command.cla();
            // ISO/IEC 7816-4 §5.4.1: b5 of an interindustry CLA marks a chained command; FF is
            // not a class at all (reader pseudo-APDUs of PC/SC part 3 use it).
            if cla == 0xFF {
                return Err(Error::ChainingNotPossible { cla, reason: "CLA FF is not a class" });
            }
            if cla & CLA_CHAINING != 0 {
                return Err(Error::ChainingNotPossible {
                    cla,
                    reason: "the chaining bit is already set",
                });
            }
        }
        let end = nc.min(chunk);
        let last = end == nc;
        let le = if last { command.ne().map(|ne| ne.min(Self::max_le(&limits))) } else { None };
        let mut exchange = Self {
            command,
            limits,
            pending: Pending::Piece { start: 0, end, last, le },
            out: Zeroizing::new(Vec::with_capacity(apdu::encoded_len(end, le, false) + 2)),
            data: Zeroizing::new(Vec::new()),
            // A command without Le may still be answered with data: a T=0 card answers a case 4
            // command sent as case 3 with 61xx (ISO/IEC 7816-3 §12.2.4), and JavaCard / YubiKey
            // PIV return data to a SELECT without Le. Accept what the card offers, up to the
            // largest Ne; with an Le, more than Ne is an error.
            ne: command.ne().unwrap_or(apdu::MAX_NE),
            get_response_rounds: 0,
            resent_with_corrected_le: false,
            apdus_sent: 1,
            done: false,
        };
        exchange.encode_pending();
        Ok(exchange)
    }

    /// The APDU to send now.
    pub fn apdu(&self) -> &[u8] {
        &self.out
    }

    /// How many APDUs this exchange has asked to send so far (including the current one).
    pub fn apdus_sent(&self) -> usize {
        self.apdus_sent
    }

    /// Whether the exchange has finished.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Consumes the card's answer to [`Exchange::apdu`].
    pub fn receive(&mut self, response: &[u8]) -> Result<Step, Error> {
        if self.done {
            return Err(Error::ExchangeFinished);
        }
        // Any error ends the exchange too.
        self.done = true;
        let (data, sw) = apdu::split_response(response)?;
        let step = match self.pending {
            Pending::Piece { end, last: false, .. } => self.after_chained_piece(end, data, sw)?,
            _ => self.after_final(data, sw)?,
        };
        if step == Step::Transmit {
            self.done = false;
            self.apdus_sent += 1;
            self.encode_pending();
        }
        Ok(step)
    }

    /// ISO/IEC 7816-4 §5.3.3: each command of a chain but the last is answered with 9000 and
    /// no data; anything else ends the chain with the card's answer.
    fn after_chained_piece(
        &mut self,
        end: usize,
        data: &[u8],
        sw: StatusWord,
    ) -> Result<Step, Error> {
        if !data.is_empty() {
            return Err(Error::ResponseTooLong { ne: 0, got: data.len() });
        }
        if !sw.is_success() {
            return Ok(Step::Done(ResponseApdu::status(sw)));
        }
        let nc = self.command.data().len();
        let next_end = nc.min(end + self.limits.max_command_data);
        let last = next_end == nc;
        let le = if last {
            self.command.ne().map(|ne| ne.min(Self::max_le(&self.limits)))
        } else {
            None
        };
        self.pending = Pending::Piece { start: end, end: next_end, last, le };
        Ok(Step::Transmit)
    }

    /// The answer to the last piece of the command or to a GET RESPONSE.
    fn after_final(&mut self, data: &[u8], sw: StatusWord) -> Result<Step, Error> {
        // ISO/IEC 7816-3 §12.2.3 / 7816-4 §5.1.3: 6Cxx aborts the command (no data) and gives
        // the exact Ne: resend once with Le = xx.
        if let Some(exact) = sw.correct_le() {
            // Only an Le field can be wrong: to a command without one (case 1 or 3: VERIFY,
            // CHANGE REFERENCE DATA, PUT DATA, ...) 6Cxx is the final answer. Sending such a
            // command again would repeat its effect: a second PIN presentation.
            if matches!(self.pending, Pending::Piece { .. }) && self.command.ne().is_none() {
                return Ok(Step::Done(ResponseApdu::status(sw)));
            }
            if self.resent_with_corrected_le {
                return Err(Error::WrongLengthLoop { sw });
            }
            self.resent_with_corrected_le = true;
            let exact = u32::try_from(exact).unwrap_or(u32::MAX);
            self.check_room(exact)?;
            self.pending = match self.pending {
                Pending::Piece { start, end, last, .. } => {
                    Pending::Piece { start, end, last, le: Some(exact) }
                }
                Pending::GetResponse { .. } => Pending::GetResponse { le: exact },
            };
            return Ok(Step::Transmit);
        }
        self.check_room_for(data.len())?;
        self.data.extend_from_slice(data);
        // ISO/IEC 7816-4 §5.1.3: 61xx means xx more bytes are available by GET RESPONSE.
        if let Some(available) = sw.bytes_remaining() {
            self.get_response_rounds += 1;
            if self.get_response_rounds > self.limits.max_get_response {
                return Err(Error::GetResponseLoop { rounds: self.get_response_rounds });
            }
            let available = u32::try_from(available).unwrap_or(u32::MAX);
            let room = self.room();
            if room == 0 {
                return Err(Error::ResponseTooLong {
                    ne: self.ne,
                    got: self.data.len().saturating_add(usize::try_from(available).unwrap_or(0)),
                });
            }
            self.pending = Pending::GetResponse { le: available.min(room) };
            return Ok(Step::Transmit);
        }
        let data = core::mem::take(&mut *self.data);
        Ok(Step::Done(ResponseApdu::new(data, sw)))
    }

    /// Bytes the command may still receive.
    fn room(&self) -> u32 {
        let got = u32::try_from(self.data.len()).unwrap_or(u32::MAX);
        self.ne.saturating_sub(got)
    }

    fn check_room(&self, more: u32) -> Result<(), Error> {
        self.check_room_for(usize::try_from(more).unwrap_or(usize::MAX))
    }

    fn check_room_for(&self, more: usize) -> Result<(), Error> {
        let got = self.data.len().saturating_add(more);
        if got > usize::try_from(self.ne).unwrap_or(usize::MAX) {
            return Err(Error::ResponseTooLong { ne: self.ne, got });
        }
        Ok(())
    }

    fn max_le(limits: &CardLimits) -> u32 {
        if limits.extended_length {
            limits.max_response_data
        } else {
            limits.max_response_data.min(apdu::MAX_SHORT_NE)
        }
    }

    /// CLA of GET RESPONSE: the command's logical channel on an interindustry class
    /// (ISO/IEC 7816-4 §5.4.1), 00 for a proprietary class.
    fn get_response_cla(&self) -> u8 {
        let cla = self.command.cla();
        match cla {
            // First interindustry values 0x00..=0x0F: channel in b2 b1.
            0x00..=0x3F => cla & 0x03,
            // Further interindustry values 0x40..=0x7F: 0x40 and channel 4 + (b4..b1).
            0x40..=0x7F => cla & 0x4F,
            _ => 0x00,
        }
    }

    fn encode_pending(&mut self) {
        self.out.clear();
        let prefer_extended = self.limits.extended_length && self.command.prefers_extended();
        match self.pending {
            Pending::Piece { start, end, last, le } => {
                let mut header = self.command.header();
                if !last {
                    header[0] |= CLA_CHAINING;
                }
                let piece = self.command.data().get(start..end).unwrap_or_default();
                apdu::encode_parts(&mut self.out, header, piece, le, prefer_extended);
            }
            Pending::GetResponse { le } => {
                // GET RESPONSE is always short (ISO/IEC 7816-4 §7.6.1): 61xx gives at most 256.
                let header = [self.get_response_cla(), Ins::GET_RESPONSE.0, 0x00, 0x00];
                apdu::encode_parts(&mut self.out, header, &[], Some(le.min(256)), false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex::decode_lenient as h;
    use alloc::format;
    use alloc::vec;

    /// Runs an exchange against a scripted card: each entry is (expected C-APDU hex, R-APDU hex).
    fn script(
        command: &CommandApdu,
        limits: CardLimits,
        steps: &[(&str, &str)],
    ) -> Result<ResponseApdu, Error> {
        let mut ex = Exchange::new(command, limits)?;
        for (i, (expect, answer)) in steps.iter().enumerate() {
            assert_eq!(ex.apdu(), h(expect).unwrap().as_slice(), "C-APDU {i}");
            match ex.receive(&h(answer).unwrap())? {
                Step::Transmit => {
                    assert!(i + 1 < steps.len(), "engine wants more after the script")
                }
                Step::Done(r) => {
                    assert_eq!(i + 1, steps.len(), "engine finished early");
                    assert_eq!(ex.apdus_sent(), steps.len());
                    assert_eq!(ex.receive(&[0x90, 0]), Err(Error::ExchangeFinished));
                    return Ok(r);
                }
            }
        }
        panic!("script ended before the exchange")
    }

    #[test]
    fn single_short_apdu() {
        let cmd = CommandApdu::new(0, 0xCA, 0x00, 0x6E).with_ne(256).unwrap();
        let r = script(&cmd, CardLimits::default(), &[("00CA006E00", "0102 9000")]).unwrap();
        assert_eq!((r.data(), r.sw()), (&[1u8, 2][..], StatusWord::SUCCESS));
    }

    #[test]
    fn get_response_loop() {
        // A T=0-style card handing out its answer in pieces (ISO/IEC 7816-4 §5.1.3).
        let cmd = CommandApdu::new(0, 0xCB, 0x3F, 0xFF)
            .with_data(h("5C035FC102").unwrap())
            .unwrap()
            .with_ne(65536)
            .unwrap();
        let first = format!("{} 6100", "AB".repeat(256));
        let r = script(
            &cmd,
            CardLimits::default(),
            &[
                ("00CB3FFF055C035FC10200", &first),
                ("00C0000000", &format!("{} 6110", "CD".repeat(256))),
                ("00C0000010", &format!("{} 9000", "EF".repeat(16))),
            ],
        )
        .unwrap();
        assert_eq!(r.data().len(), 528);
        assert_eq!((r.data()[0], r.data()[256], r.data()[527]), (0xAB, 0xCD, 0xEF));
        assert!(r.is_success());
    }

    #[test]
    fn get_response_keeps_logical_channel_and_final_warning() {
        let cmd = CommandApdu::new(0x01, 0xB0, 0, 0).with_ne(256).unwrap();
        let r = script(
            &cmd,
            CardLimits::default(),
            &[("01B0000000", "6104"), ("01C0000004", "01020304 6282")],
        )
        .unwrap();
        assert_eq!((r.data().len(), r.sw()), (4, StatusWord::END_OF_FILE));
    }

    #[test]
    fn wrong_le_resent_once() {
        // ISO/IEC 7816-3 §12.2.3: 6Cxx, resend with Le = xx.
        let cmd = CommandApdu::new(0, 0xB0, 0, 0).with_ne(256).unwrap();
        let r = script(
            &cmd,
            CardLimits::default(),
            &[("00B0000000", "6C08"), ("00B0000008", "0102030405060708 9000")],
        )
        .unwrap();
        assert_eq!(r.data().len(), 8);
        // Twice is a loop.
        let err =
            script(&cmd, CardLimits::default(), &[("00B0000000", "6C08"), ("00B0000008", "6C08")])
                .unwrap_err();
        assert_eq!(err, Error::WrongLengthLoop { sw: StatusWord(0x6C08) });
    }

    #[test]
    fn wrong_le_to_a_command_without_le_is_final() {
        // A hostile card answered VERIFY (case 3) with 6C00: resending it with an Le would
        // present the PIN twice. The answer is final and is the caller's to judge.
        let verify = CommandApdu::new(0, 0x20, 0, 0x80).with_data(*b"123456\xFF\xFF").unwrap();
        let r = script(&verify, CardLimits::default(), &[("0020008008313233343536FFFF", "6C00")])
            .unwrap();
        assert_eq!((r.data(), r.sw()), (&[][..], StatusWord(0x6C00)));
        let case1 = CommandApdu::new(0, 0x44, 0, 0);
        let r = script(&case1, CardLimits::default(), &[("00440000", "6C10")]).unwrap();
        assert_eq!(r.sw(), StatusWord(0x6C10));
    }

    #[test]
    fn wrong_le_above_ne_is_refused() {
        let cmd = CommandApdu::new(0, 0xB0, 0, 0).with_ne(4).unwrap();
        let err = script(&cmd, CardLimits::default(), &[("00B0000004", "6C08")]).unwrap_err();
        assert_eq!(err, Error::ResponseTooLong { ne: 4, got: 8 });
    }

    #[test]
    fn endless_61xx_is_bounded() {
        let cmd = CommandApdu::new(0, 0xCA, 0, 0x6E).with_ne(65536).unwrap();
        let mut ex = Exchange::new(&cmd, CardLimits::default()).unwrap();
        let mut rounds = 0;
        let err = loop {
            match ex.receive(&[0x61, 0x00]) {
                Ok(Step::Transmit) => rounds += 1,
                Ok(Step::Done(_)) => panic!("61xx cannot finish"),
                Err(e) => break e,
            }
        };
        assert_eq!(rounds, 256);
        assert_eq!(err, Error::GetResponseLoop { rounds: 257 });
    }

    #[test]
    fn more_than_ne_is_an_error() {
        let cmd = CommandApdu::new(0, 0xB0, 0, 0).with_ne(2).unwrap();
        let err =
            script(&cmd, CardLimits::default(), &[("00B0000002", "010203 9000")]).unwrap_err();
        assert_eq!(err, Error::ResponseTooLong { ne: 2, got: 3 });
        // A command without Le: what the card offers is taken (a T=0 card answers a case 4
        // command sent as case 3 with 61xx; found against Nitrokey's piv-authenticator).
        let select = CommandApdu::new(0, 0xA4, 4, 0).with_data([0xA0, 0, 0, 3, 8]).unwrap();
        let r = script(
            &select,
            CardLimits::default(),
            &[("00A4040005A000000308", "6102"), ("00C0000002", "6101 9000")],
        )
        .unwrap();
        assert_eq!((r.data(), r.sw()), (&[0x61u8, 0x01][..], StatusWord::SUCCESS));
        let cmd = CommandApdu::new(0, 0x20, 0, 0x80);
        let r = script(&cmd, CardLimits::default(), &[("00200080", "01 9000")]).unwrap();
        assert_eq!(r.data(), [1]);
        // 61xx once Ne is reached.
        let cmd = CommandApdu::new(0, 0xB0, 0, 0).with_ne(2).unwrap();
        let err = script(&cmd, CardLimits::default(), &[("00B0000002", "0102 6110")]).unwrap_err();
        assert_eq!(err, Error::ResponseTooLong { ne: 2, got: 18 });
    }

    #[test]
    fn command_chaining() {
        // ISO/IEC 7816-4 §5.3.3: 600 bytes over short APDUs: 255 + 255 + 90.
        let data: Vec<u8> = (0..600u32).map(|i| (i % 251) as u8).collect();
        let cmd = CommandApdu::new(0, 0xDB, 0x3F, 0xFF)
            .with_data(data.clone())
            .unwrap()
            .with_ne(256)
            .unwrap();
        let mut ex = Exchange::new(&cmd, CardLimits::default()).unwrap();
        let mut sent = Vec::new();
        let r = loop {
            let apdu = ex.apdu().to_vec();
            let last = apdu[0] & 0x10 == 0;
            sent.push(apdu);
            assert_eq!(last, sent.len() == 3);
            match ex.receive(&[0x90, 0x00]).unwrap() {
                Step::Transmit => {}
                Step::Done(r) => break r,
            }
        };
        assert!(r.is_success());
        assert_eq!(sent.len(), 3);
        assert_eq!(&sent[0][..5], &[0x10, 0xDB, 0x3F, 0xFF, 0xFF]);
        assert_eq!(sent[0].len(), 5 + 255);
        assert_eq!(&sent[1][..5], &[0x10, 0xDB, 0x3F, 0xFF, 0xFF]);
        assert_eq!(&sent[2][..5], &[0x00, 0xDB, 0x3F, 0xFF, 90]);
        assert_eq!(sent[2].len(), 5 + 90 + 1);
        assert_eq!(*sent[2].last().unwrap(), 0x00);
        let joined: Vec<u8> =
            sent.iter().flat_map(|a| a[5..5 + usize::from(a[4])].to_vec()).collect();
        assert_eq!(joined, data);
    }

    #[test]
    fn chaining_stops_at_a_refusal() {
        let cmd = CommandApdu::new(0, 0xDB, 0x3F, 0xFF).with_data(vec![1; 300]).unwrap();
        let mut ex = Exchange::new(&cmd, CardLimits::default()).unwrap();
        assert_eq!(
            ex.receive(&[0x68, 0x84]).unwrap(),
            Step::Done(ResponseApdu::status(StatusWord::CHAINING_NOT_SUPPORTED))
        );
    }

    #[test]
    fn chaining_refusals_before_sending() {
        let cmd = CommandApdu::new(0, 0xDB, 0x3F, 0xFF).with_data(vec![1; 300]).unwrap();
        let limits = CardLimits { command_chaining: false, ..CardLimits::default() };
        assert_eq!(
            Exchange::new(&cmd, limits).unwrap_err(),
            Error::CommandTooLong { len: 300, max: 255 }
        );
        let cmd = CommandApdu::new(0x10, 0xDB, 0x3F, 0xFF).with_data(vec![1; 300]).unwrap();
        assert!(matches!(
            Exchange::new(&cmd, CardLimits::default()),
            Err(Error::ChainingNotPossible { cla: 0x10, .. })
        ));
        let cmd = CommandApdu::new(0xFF, 0xDB, 0x3F, 0xFF).with_data(vec![1; 300]).unwrap();
        assert!(matches!(
            Exchange::new(&cmd, CardLimits::default()),
            Err(Error::ChainingNotPossible { cla: 0xFF, .. })
        ));
    }

    #[test]
    fn extended_only_when_limits_allow() {
        let cmd = CommandApdu::new(0, 0x2A, 0x80, 0x86)
            .with_data(vec![5; 300])
            .unwrap()
            .with_ne(65536)
            .unwrap();
        // Reader and card take extended length: one 4E APDU.
        let mut ex = Exchange::new(&cmd, CardLimits::extended(65535, 65536)).unwrap();
        assert_eq!(&ex.apdu()[..7], &[0, 0x2A, 0x80, 0x86, 0, 0x01, 0x2C]);
        assert_eq!(&ex.apdu()[ex.apdu().len() - 2..], &[0, 0]);
        let mut answer = vec![9; 1000];
        answer.extend_from_slice(&[0x90, 0]);
        let Step::Done(r) = ex.receive(&answer).unwrap() else { panic!("one APDU") };
        assert_eq!(r.data().len(), 1000);
        // Extended with a smaller card buffer: chained extended pieces.
        let ex = Exchange::new(&cmd, CardLimits::extended(128, 65536)).unwrap();
        assert_eq!(&ex.apdu()[..5], &[0x10, 0x2A, 0x80, 0x86, 128]);
        // Short only: chained short pieces, Le 00 then 61xx for the rest.
        let ex = Exchange::new(&cmd, CardLimits::default()).unwrap();
        assert_eq!(&ex.apdu()[..5], &[0x10, 0x2A, 0x80, 0x86, 0xFF]);
        // A command asking for extended form is sent short when the reader cannot.
        let cmd = CommandApdu::decode(&h("00B00000000010").unwrap()).unwrap();
        assert_eq!(
            Exchange::new(&cmd, CardLimits::default()).unwrap().apdu(),
            h("00B0000010").unwrap().as_slice()
        );
        assert_eq!(
            Exchange::new(&cmd, CardLimits::extended(65535, 65536)).unwrap().apdu(),
            h("00B00000000010").unwrap().as_slice()
        );
    }

    #[test]
    fn debug_does_not_show_the_pin() {
        let verify = CommandApdu::new(0, 0x20, 0, 0x80).with_data(*b"123456\xFF\xFF").unwrap();
        let ex = Exchange::new(&verify, CardLimits::default()).unwrap();
        let text = format!("{ex:?}");
        assert!(!text.contains("313233") && !text.contains("49, 50, 51"), "{text}");
        assert!(text.contains("apdu_len: 13"), "{text}");
    }

    #[test]
    fn invalid_limits_and_short_responses() {
        let cmd = CommandApdu::new(0, 0xB0, 0, 0).with_ne(1).unwrap();
        for limits in [
            CardLimits { max_command_data: 0, ..CardLimits::default() },
            CardLimits { max_command_data: 256, ..CardLimits::default() },
            CardLimits { max_response_data: 257, ..CardLimits::default() },
            CardLimits { max_response_data: 0, ..CardLimits::extended(10, 10) },
        ] {
            assert!(
                matches!(Exchange::new(&cmd, limits), Err(Error::InvalidLimits { .. })),
                "{limits:?}"
            );
        }
        let mut ex = Exchange::new(&cmd, CardLimits::default()).unwrap();
        assert_eq!(ex.receive(&[0x90]), Err(Error::ResponseTooShort { len: 1 }));
        assert!(ex.is_done());
    }
}
