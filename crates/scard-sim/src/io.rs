//! The card side of ISO/IEC 7816-4 transmission: decoding command APDUs, command chaining
//! (§5.3.3), and response data longer than Ne handed out with `61xx` and GET RESPONSE
//! (§5.1.3, §7.6.1). Every simulated card runs its application behind one [`CardIo`].

use scard_iso7816::apdu::{CommandApdu, Ins};
use scard_iso7816::status::StatusWord;
use zeroize::Zeroizing;

/// What an application answers to a complete command: data with 9000, or a status word
/// without data.
pub type Reply = Result<Vec<u8>, StatusWord>;

/// A complete command as an application sees it: chained pieces are joined, the chaining bit
/// is cleared.
#[derive(Clone, Copy)]
pub struct Command<'a> {
    /// CLA without the chaining bit.
    pub cla: u8,
    /// INS.
    pub ins: u8,
    /// P1.
    pub p1: u8,
    /// P2.
    pub p2: u8,
    /// The command data (all pieces of a chain).
    pub data: &'a [u8],
    /// Ne of the last piece; `None` when it had no Le field.
    pub ne: Option<u32>,
    /// Whether the last piece used extended length fields.
    pub extended: bool,
}

impl Command<'_> {
    /// P1 and P2 as one number, P1 high.
    pub fn p1p2(&self) -> u16 {
        u16::from_be_bytes([self.p1, self.p2])
    }
}

impl std::fmt::Debug for Command<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The data may be a PIN or a key: lengths only.
        f.debug_struct("Command")
            .field("cla", &format_args!("{:02X}", self.cla))
            .field("ins", &Ins(self.ins))
            .field("p1p2", &format_args!("{:04X}", self.p1p2()))
            .field("nc", &self.data.len())
            .field("ne", &self.ne)
            .finish()
    }
}

/// CLA bit b5: more commands of this chain follow (ISO/IEC 7816-4 §5.4.1).
const CLA_CHAINING: u8 = 0x10;

/// Longest chained command data accepted: beyond it the card answers 6A84 (not enough memory).
pub const MAX_CHAINED_DATA: usize = 70_000;

/// A chain being received.
struct Chain {
    header: [u8; 3],
    data: Zeroizing<Vec<u8>>,
}

/// Response data waiting for GET RESPONSE.
struct Pending {
    data: Zeroizing<Vec<u8>>,
    sent: usize,
}

/// Card-side transmission state. Volatile: [`CardIo::reset`] on every power-on and reset.
pub struct CardIo {
    extended_length: bool,
    answer_without_le: bool,
    chain: Option<Chain>,
    pending: Option<Pending>,
}

impl std::fmt::Debug for CardIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardIo")
            .field("extended_length", &self.extended_length)
            .field("answer_without_le", &self.answer_without_le)
            .field("chaining", &self.chain.is_some())
            .field("pending", &self.pending.as_ref().map(|p| p.data.len() - p.sent))
            .finish()
    }
}

impl CardIo {
    /// A card that accepts extended length fields when `extended_length`.
    pub fn new(extended_length: bool) -> Self {
        Self { extended_length, answer_without_le: false, chain: None, pending: None }
    }

    /// Answers a command without an Le field as if its Le were 00 (Ne 256, or 65536 for an
    /// extended command): response data up to that length come back at once with 9000, longer
    /// data through `61xx`. JavaCard cards over T=1 and YubiKeys behave so, and
    /// yubico-piv-tool relies on it (its SELECT has no Le). Without it, any response data to a
    /// command without Le waits behind `61xx`.
    pub fn answer_without_le(mut self) -> Self {
        self.answer_without_le = true;
        self
    }

    /// Forgets any chain or pending response.
    pub fn reset(&mut self) {
        self.chain = None;
        self.pending = None;
    }

    /// Processes the raw bytes of one command APDU; `app` handles complete commands.
    pub fn process(&mut self, raw: &[u8], app: impl FnOnce(&Command<'_>) -> Reply) -> Vec<u8> {
        let Ok(apdu) = CommandApdu::decode(raw) else {
            // Undecodable length fields: ISO/IEC 7816-4 §5.6 table 6, wrong length.
            self.reset();
            return StatusWord::WRONG_LENGTH.to_bytes().to_vec();
        };
        let cla = apdu.cla();
        // ISO/IEC 7816-4 §5.4.1: CLA FF is invalid.
        if cla == 0xFF {
            self.reset();
            return StatusWord::CLA_NOT_SUPPORTED.to_bytes().to_vec();
        }
        if apdu.is_extended() && !self.extended_length {
            self.reset();
            return StatusWord::WRONG_LENGTH.to_bytes().to_vec();
        }
        if apdu.ins() == Ins::GET_RESPONSE && cla & 0x80 == 0 {
            self.chain = None;
            return self.get_response(&apdu);
        }
        // Any other command ends the offer of the previous response (ISO/IEC 7816-4 §7.6.1).
        self.pending = None;
        let header = [apdu.ins().0, apdu.p1(), apdu.p2()];
        let chained = cla & 0x80 == 0 && cla & CLA_CHAINING != 0;
        let previous = match self.chain.take() {
            // A different command abandons the chain.
            Some(chain) if chain.header == header => Some(chain.data),
            _ => None,
        };
        let mut data = previous.unwrap_or_default();
        if data.len() + apdu.data().len() > MAX_CHAINED_DATA {
            return StatusWord::NOT_ENOUGH_MEMORY.to_bytes().to_vec();
        }
        data.extend_from_slice(apdu.data());
        if chained {
            // ISO/IEC 7816-4 §5.3.3: each command of a chain but the last gets 9000.
            self.chain = Some(Chain { header, data });
            return StatusWord::SUCCESS.to_bytes().to_vec();
        }
        let command = Command {
            cla: cla & !CLA_CHAINING,
            ins: header[0],
            p1: header[1],
            p2: header[2],
            data: &data,
            ne: apdu.ne(),
            extended: apdu.is_extended(),
        };
        let reply = app(&command);
        let ne = match command.ne {
            None if self.answer_without_le => Some(if command.extended { 65536 } else { 256 }),
            ne => ne,
        };
        match reply {
            Ok(body) => self.respond(Zeroizing::new(body), ne),
            Err(sw) => sw.to_bytes().to_vec(),
        }
    }

    /// Sends up to Ne bytes of `body`; the rest waits for GET RESPONSE behind `61xx`.
    fn respond(&mut self, body: Zeroizing<Vec<u8>>, ne: Option<u32>) -> Vec<u8> {
        let ne = ne.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
        if body.len() <= ne {
            let mut out = Vec::with_capacity(body.len() + 2);
            out.extend_from_slice(&body);
            out.extend_from_slice(&StatusWord::SUCCESS.to_bytes());
            return out;
        }
        self.pending = Some(Pending { data: body, sent: 0 });
        self.continue_pending(ne)
    }

    /// ISO/IEC 7816-4 §7.6.1 GET RESPONSE: P1-P2 00 00, up to Ne more bytes.
    fn get_response(&mut self, apdu: &CommandApdu) -> Vec<u8> {
        if self.pending.is_none() {
            return StatusWord::CONDITIONS_NOT_SATISFIED.to_bytes().to_vec();
        }
        if apdu.p1() != 0 || apdu.p2() != 0 {
            return StatusWord::INCORRECT_P1P2.to_bytes().to_vec();
        }
        // No Le on GET RESPONSE: as much as a short Le 00 asks.
        let ne = apdu.ne().map_or(256, |n| usize::try_from(n).unwrap_or(usize::MAX));
        self.continue_pending(ne)
    }

    fn continue_pending(&mut self, ne: usize) -> Vec<u8> {
        let Some(pending) = self.pending.as_mut() else {
            return StatusWord::CONDITIONS_NOT_SATISFIED.to_bytes().to_vec();
        };
        let rest = pending.data.get(pending.sent..).unwrap_or_default();
        let take = rest.len().min(ne);
        let mut out = Vec::with_capacity(take + 2);
        out.extend_from_slice(rest.get(..take).unwrap_or_default());
        pending.sent += take;
        let left = pending.data.len() - pending.sent;
        if left == 0 {
            self.pending = None;
            out.extend_from_slice(&StatusWord::SUCCESS.to_bytes());
        } else {
            // 61xx: xx more bytes available, 00 meaning 256 or more.
            out.extend_from_slice(&[0x61, u8::try_from(left.min(256) % 256).unwrap_or(0)]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scard_iso7816::exchange::{CardLimits, Exchange, Step};
    use scard_iso7816::hex::decode_lenient as h;

    fn echo(cmd: &Command<'_>) -> Reply {
        match cmd.ins {
            0xCA => Ok(vec![0xAB; usize::from(cmd.p2) * 10]),
            0xDB => Ok(cmd.data.to_vec()),
            0x20 => Err(StatusWord(0x63C2)),
            _ => Err(StatusWord::INS_NOT_SUPPORTED),
        }
    }

    /// Drives the host-side exchange engine of scard-iso7816 against this card side.
    fn exchange(
        io: &mut CardIo,
        cmd: &CommandApdu,
        limits: CardLimits,
    ) -> (scard_iso7816::ResponseApdu, usize) {
        let mut ex = Exchange::new(cmd, limits).unwrap();
        loop {
            let answer = io.process(ex.apdu(), echo);
            match ex.receive(&answer).unwrap() {
                Step::Transmit => {}
                Step::Done(r) => return (r, ex.apdus_sent()),
            }
        }
    }

    #[test]
    fn long_responses_go_out_through_get_response() {
        let mut io = CardIo::new(false);
        let cmd = CommandApdu::new(0, 0xCA, 0, 100).with_ne(65536).unwrap();
        let (r, apdus) = exchange(&mut io, &cmd, CardLimits::default());
        assert!(r.is_success());
        assert_eq!(r.data().len(), 1000);
        assert_eq!(apdus, 4); // 256 + 256 + 256 + 232
    }

    #[test]
    fn extended_le_gets_everything_at_once() {
        let mut io = CardIo::new(true);
        let cmd = CommandApdu::new(0, 0xCA, 0, 100).with_ne(65536).unwrap();
        let (r, apdus) = exchange(&mut io, &cmd, CardLimits::extended(65535, 65536));
        assert_eq!((r.data().len(), apdus), (1000, 1));
        // Without extended support the card refuses extended APDUs.
        let mut io = CardIo::new(false);
        assert_eq!(io.process(&h("00CA006400 0000").unwrap(), echo), [0x67, 0x00]);
    }

    #[test]
    fn chained_commands_are_joined() {
        let mut io = CardIo::new(false);
        let data: Vec<u8> = (0..700u32).map(|i| i as u8).collect();
        let cmd = CommandApdu::new(0, 0xDB, 0x3F, 0xFF)
            .with_data(data.clone())
            .unwrap()
            .with_ne(65536)
            .unwrap();
        let (r, apdus) = exchange(&mut io, &cmd, CardLimits::default());
        assert_eq!(r.data(), data.as_slice());
        assert_eq!(apdus, 3 + 2); // 3 pieces, then 700 bytes back as 256 + 256 + 188
    }

    #[test]
    fn no_le_means_61xx_and_errors_carry_no_data() {
        let mut io = CardIo::new(false);
        assert_eq!(io.process(&h("00CA0001").unwrap(), echo), [0x61, 10]);
        assert_eq!(io.process(&h("00C0000004").unwrap(), echo), [0xAB, 0xAB, 0xAB, 0xAB, 0x61, 6]);
        assert_eq!(
            io.process(&h("00C0000006").unwrap(), echo),
            [0xAB, 0xAB, 0xAB, 0xAB, 0xAB, 0xAB, 0x90, 0]
        );
        assert_eq!(io.process(&h("00C0000006").unwrap(), echo), [0x69, 0x85]);
        assert_eq!(io.process(&h("00200080").unwrap(), echo), [0x63, 0xC2]);
        assert_eq!(io.process(&h("00 A4").unwrap(), echo), [0x67, 0x00]);
        assert_eq!(io.process(&h("FF CA 00 00 00").unwrap(), echo), [0x6E, 0x00]);
    }

    #[test]
    fn answer_without_le_treats_a_missing_le_as_00() {
        let mut io = CardIo::new(false).answer_without_le();
        let mut ten = vec![0xAB; 10];
        ten.extend_from_slice(&[0x90, 0x00]);
        assert_eq!(io.process(&h("00CA0001").unwrap(), echo), ten);
        let long = io.process(&h("00CA001E").unwrap(), echo);
        assert_eq!((long.len(), &long[256..]), (258, &[0x61, 44][..]));
        assert_eq!(io.process(&h("00200080").unwrap(), echo), [0x63, 0xC2]);
    }

    #[test]
    fn another_command_cancels_a_pending_response() {
        let mut io = CardIo::new(false);
        assert_eq!(io.process(&h("00CA000100").unwrap(), echo).len(), 12);
        assert_eq!(io.process(&h("00CA006400").unwrap(), echo)[256..], [0x61, 0x00]);
        assert_eq!(io.process(&h("00200080").unwrap(), echo), [0x63, 0xC2]);
        assert_eq!(io.process(&h("00C0000000").unwrap(), echo), [0x69, 0x85]);
    }
}
