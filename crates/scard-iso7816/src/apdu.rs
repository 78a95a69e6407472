//! Command and response APDUs (ISO/IEC 7816-3 §12.1, ISO/IEC 7816-4 §5.1).
//!
//! A [`CommandApdu`] is built only through constructors that enforce the limits (Nc at most
//! 65535, Ne in 1..=65536), so encoding cannot fail. Encoding picks the short form when the
//! data and Ne fit it and the extended form otherwise (or when asked to). Decoding classifies
//! any byte string into one of the seven cases, or names what is wrong with it; a decoded
//! command remembers its length form, so `decode(b)?.to_bytes() == b` for every valid `b`.
//!
//! Command data may hold a PIN or a key: it is zeroized on drop, and `Debug` / [`trace_command`]
//! blank it for the instructions that carry secrets.

use alloc::vec::Vec;
use core::fmt;

use zeroize::{Zeroize, Zeroizing};

use crate::cursor::Cursor;
use crate::error::Error;
use crate::hex::Hex;
use crate::status::StatusWord;

/// Largest Nc: an extended Lc field is two bytes (ISO/IEC 7816-3 §12.1.3).
pub const MAX_NC: usize = 65535;
/// Largest Ne: an extended Le of 0000 means 65536 (ISO/IEC 7816-3 §12.1.3).
pub const MAX_NE: u32 = 65536;
/// Largest Nc of a short APDU (ISO/IEC 7816-3 §12.1.3).
pub const MAX_SHORT_NC: usize = 255;
/// Largest Ne of a short APDU: a short Le of 00 means 256 (ISO/IEC 7816-3 §12.1.3).
pub const MAX_SHORT_NE: u32 = 256;

/// The instruction byte. An open newtype: every value round-trips; known ones have names.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ins(pub u8);

named_values! {
    Ins, "The name of an interindustry instruction (ISO/IEC 7816-4 §5.4 table 4).";
    /// 0E ERASE BINARY.
    ERASE_BINARY = 0x0E, "ERASE BINARY";
    /// 20 VERIFY.
    VERIFY = 0x20, "VERIFY";
    /// 21 VERIFY (odd INS, BER-TLV data).
    VERIFY_ODD = 0x21, "VERIFY";
    /// 22 MANAGE SECURITY ENVIRONMENT.
    MANAGE_SECURITY_ENVIRONMENT = 0x22, "MANAGE SECURITY ENVIRONMENT";
    /// 24 CHANGE REFERENCE DATA.
    CHANGE_REFERENCE_DATA = 0x24, "CHANGE REFERENCE DATA";
    /// 2A PERFORM SECURITY OPERATION.
    PERFORM_SECURITY_OPERATION = 0x2A, "PERFORM SECURITY OPERATION";
    /// 2C RESET RETRY COUNTER.
    RESET_RETRY_COUNTER = 0x2C, "RESET RETRY COUNTER";
    /// 44 ACTIVATE FILE.
    ACTIVATE_FILE = 0x44, "ACTIVATE FILE";
    /// 46 GENERATE ASYMMETRIC KEY PAIR (ISO/IEC 7816-8).
    GENERATE_KEY_PAIR_46 = 0x46, "GENERATE ASYMMETRIC KEY PAIR";
    /// 47 GENERATE ASYMMETRIC KEY PAIR.
    GENERATE_ASYMMETRIC_KEY_PAIR = 0x47, "GENERATE ASYMMETRIC KEY PAIR";
    /// 70 MANAGE CHANNEL.
    MANAGE_CHANNEL = 0x70, "MANAGE CHANNEL";
    /// 82 EXTERNAL AUTHENTICATE.
    EXTERNAL_AUTHENTICATE = 0x82, "EXTERNAL AUTHENTICATE";
    /// 84 GET CHALLENGE.
    GET_CHALLENGE = 0x84, "GET CHALLENGE";
    /// 86 GENERAL AUTHENTICATE.
    GENERAL_AUTHENTICATE_86 = 0x86, "GENERAL AUTHENTICATE";
    /// 87 GENERAL AUTHENTICATE (odd INS, used by PIV and GIDS).
    GENERAL_AUTHENTICATE = 0x87, "GENERAL AUTHENTICATE";
    /// 88 INTERNAL AUTHENTICATE.
    INTERNAL_AUTHENTICATE = 0x88, "INTERNAL AUTHENTICATE";
    /// A4 SELECT.
    SELECT = 0xA4, "SELECT";
    /// A5 SELECT DATA (ISO/IEC 7816-4 §11.4.2; OpenPGP card 3.4 §7.2.5).
    SELECT_DATA = 0xA5, "SELECT DATA";
    /// B0 READ BINARY.
    READ_BINARY = 0xB0, "READ BINARY";
    /// B1 READ BINARY (odd INS).
    READ_BINARY_ODD = 0xB1, "READ BINARY";
    /// B2 READ RECORD(S).
    READ_RECORD = 0xB2, "READ RECORD";
    /// C0 GET RESPONSE.
    GET_RESPONSE = 0xC0, "GET RESPONSE";
    /// C2 ENVELOPE.
    ENVELOPE = 0xC2, "ENVELOPE";
    /// CA GET DATA.
    GET_DATA = 0xCA, "GET DATA";
    /// CB GET DATA (odd INS, BER-TLV data).
    GET_DATA_ODD = 0xCB, "GET DATA";
    /// CC GET NEXT DATA (ISO/IEC 7816-4 §11.4.5; OpenPGP card 3.4 §7.2.7).
    GET_NEXT_DATA = 0xCC, "GET NEXT DATA";
    /// D6 UPDATE BINARY.
    UPDATE_BINARY = 0xD6, "UPDATE BINARY";
    /// DA PUT DATA.
    PUT_DATA = 0xDA, "PUT DATA";
    /// DB PUT DATA (odd INS, BER-TLV data).
    PUT_DATA_ODD = 0xDB, "PUT DATA";
    /// DC UPDATE RECORD.
    UPDATE_RECORD = 0xDC, "UPDATE RECORD";
    /// E0 CREATE FILE.
    CREATE_FILE = 0xE0, "CREATE FILE";
    /// E4 DELETE FILE.
    DELETE_FILE = 0xE4, "DELETE FILE";
    /// E6 TERMINATE DF (ISO/IEC 7816-9; OpenPGP card 3.4 §7.2.17).
    TERMINATE_DF = 0xE6, "TERMINATE DF";
}

impl Ins {
    /// Whether command data of this instruction may hold a secret (a PIN, a PUK, a reference
    /// value, an authentication witness): such data is blanked in `Debug` and traces.
    /// DESIGN.md: VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER, GENERAL AUTHENTICATE,
    /// key import: PUT DATA (DA / DB: OpenPGP 3.4 §4.4.3.12 and GIDS private-key import, new
    /// admin keys) and the YubiKey PIV extensions IMPORT ASYMMETRIC KEY (FE) and SET
    /// MANAGEMENT KEY (FF). A PUT DATA of a certificate is blanked too: the trace cannot tell.
    pub const fn carries_secret(self) -> bool {
        matches!(self.0, 0x20 | 0x21 | 0x24 | 0x2C | 0x86 | 0x87 | 0x82 | 0xDA | 0xDB | 0xFE | 0xFF)
    }
}

impl fmt::Debug for Ins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "Ins({:02X} {name})", self.0),
            None => write!(f, "Ins({:02X})", self.0),
        }
    }
}

impl fmt::Display for Ins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02X}", self.0)
    }
}

/// The seven command cases of ISO/IEC 7816-3 §12.1.2 (table 13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Case {
    /// No data, no response data expected.
    Case1,
    /// Short Le only.
    Case2Short,
    /// Short Lc and data.
    Case3Short,
    /// Short Lc, data and short Le.
    Case4Short,
    /// Extended Le only.
    Case2Extended,
    /// Extended Lc and data.
    Case3Extended,
    /// Extended Lc, data and extended Le.
    Case4Extended,
}

impl Case {
    /// `1`, `2S`, `3S`, `4S`, `2E`, `3E` or `4E`.
    pub const fn label(self) -> &'static str {
        match self {
            Case::Case1 => "1",
            Case::Case2Short => "2S",
            Case::Case3Short => "3S",
            Case::Case4Short => "4S",
            Case::Case2Extended => "2E",
            Case::Case3Extended => "3E",
            Case::Case4Extended => "4E",
        }
    }

    /// Whether the case uses extended length fields.
    pub const fn is_extended(self) -> bool {
        matches!(self, Case::Case2Extended | Case::Case3Extended | Case::Case4Extended)
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A command APDU: header CLA INS P1 P2, command data (Nc bytes) and the expected response
/// length Ne (absent when no response data is expected).
#[derive(Clone, PartialEq, Eq)]
pub struct CommandApdu {
    cla: u8,
    ins: Ins,
    p1: u8,
    p2: u8,
    data: Zeroizing<Vec<u8>>,
    ne: Option<u32>,
    /// Encode with extended length fields even when short ones would do.
    extended: bool,
}

impl CommandApdu {
    /// A case 1 command: header only.
    pub fn new(cla: u8, ins: u8, p1: u8, p2: u8) -> Self {
        Self {
            cla,
            ins: Ins(ins),
            p1,
            p2,
            data: Zeroizing::new(Vec::new()),
            ne: None,
            extended: false,
        }
    }

    /// Sets the command data (Nc = `data.len()`, at most 65535).
    pub fn with_data(mut self, data: impl Into<Vec<u8>>) -> Result<Self, Error> {
        let mut data = data.into();
        if data.len() > MAX_NC {
            let len = data.len();
            data.zeroize();
            return Err(Error::DataTooLong { len });
        }
        self.data = Zeroizing::new(data);
        Ok(self)
    }

    /// Sets Ne, the maximum number of response data bytes expected (1..=65536). 256 is what a
    /// short Le of 00 asks for, 65536 what an extended Le of 0000 asks for.
    pub fn with_ne(mut self, ne: u32) -> Result<Self, Error> {
        if ne == 0 || ne > MAX_NE {
            return Err(Error::NeOutOfRange { ne });
        }
        self.ne = Some(ne);
        Ok(self)
    }

    /// Removes Ne: no response data expected.
    pub fn without_ne(mut self) -> Self {
        self.ne = None;
        self
    }

    /// Asks for extended length fields even when short ones would do.
    pub fn with_extended(mut self, extended: bool) -> Self {
        self.extended = extended;
        self
    }

    /// Decodes a command APDU, classifying it into one of the cases of ISO/IEC 7816-3 §12.1.3.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let mut cur = Cursor::new(bytes);
        let [cla, ins, p1, p2] = match cur.take(4, "command header") {
            Ok(&[cla, ins, p1, p2]) => [cla, ins, p1, p2],
            _ => return Err(Error::CommandTooShort { len: bytes.len() }),
        };
        let apdu = Self::new(cla, ins, p1, p2);
        let body_len = cur.remaining();
        // §12.1.3: L = 0 is case 1.
        let Some(first) = cur.peek_u8() else {
            return Ok(apdu);
        };
        // §12.1.3: L = 1 is case 2S; Le = B1, 00 meaning 256.
        if body_len == 1 {
            return apdu.with_ne(short_ne(first));
        }
        let _ = cur.take_u8("Lc")?;
        if first != 0 {
            return Self::decode_short_body(apdu, usize::from(first), cur);
        }
        // B1 = 00 and L > 1: the extended forms.
        match body_len {
            // §12.1.3: L = 3 and B1 = 00 is case 2E; Le = B2 B3, 0000 meaning 65536.
            3 => {
                let le = cur.take_u16_be("extended Le")?;
                apdu.with_ne(extended_ne(le)).map(|a| a.with_extended(true))
            }
            2 => Err(Error::ExtendedMarker {
                offset: 4,
                reason: "00 followed by one byte: neither a short Lc (01..FF) nor an extended field",
            }),
            _ => Self::decode_extended_body(apdu, cur),
        }
    }

    /// Short Lc = `lc` (01..FF) was read; the rest is data and an optional one-byte Le.
    fn decode_short_body(apdu: Self, lc: usize, mut cur: Cursor<'_>) -> Result<Self, Error> {
        let available = cur.remaining();
        if available < lc || available > lc + 2 {
            return Err(Error::LcMismatch { lc, available });
        }
        let data = cur.take(lc, "command data")?;
        let apdu = apdu.with_data(data)?;
        match cur.remaining() {
            // §12.1.3: L = 1 + B1 is case 3S.
            0 => Ok(apdu),
            // §12.1.3: L = 2 + B1 is case 4S; the last byte is Le.
            1 => {
                let le = cur.take_u8("Le")?;
                apdu.with_ne(short_ne(le))
            }
            _ => Err(Error::LeMalformed {
                offset: cur.offset(),
                reason: "two-byte Le after a short Lc (short and extended fields mixed)",
            }),
        }
    }

    /// B1 = 00 was read and at least three more bytes follow: extended Lc B2 B3 (not 0000).
    fn decode_extended_body(apdu: Self, mut cur: Cursor<'_>) -> Result<Self, Error> {
        let lc_offset = cur.offset();
        let lc = usize::from(cur.take_u16_be("extended Lc")?);
        if lc == 0 {
            // §12.1.3: an extended Lc field B2 B3 is never 0000.
            return Err(Error::ExtendedMarker {
                offset: lc_offset,
                reason: "extended Lc of 0000 (Nc must be at least 1)",
            });
        }
        let available = cur.remaining();
        if available < lc || available > lc + 2 {
            return Err(Error::LcMismatch { lc, available });
        }
        let data = cur.take(lc, "command data")?;
        let apdu = apdu.with_data(data)?.with_extended(true);
        match cur.remaining() {
            // §12.1.3: L = 3 + (B2||B3) is case 3E.
            0 => Ok(apdu),
            // §12.1.3: L = 5 + (B2||B3) is case 4E; the last two bytes are Le.
            2 => {
                let le = cur.take_u16_be("extended Le")?;
                apdu.with_ne(extended_ne(le))
            }
            _ => Err(Error::LeMalformed {
                offset: cur.offset(),
                reason: "one-byte Le after an extended Lc (extended case 4 needs two bytes)",
            }),
        }
    }

    /// CLA.
    pub fn cla(&self) -> u8 {
        self.cla
    }

    /// INS.
    pub fn ins(&self) -> Ins {
        self.ins
    }

    /// P1.
    pub fn p1(&self) -> u8 {
        self.p1
    }

    /// P2.
    pub fn p2(&self) -> u8 {
        self.p2
    }

    /// CLA INS P1 P2.
    pub fn header(&self) -> [u8; 4] {
        [self.cla, self.ins.0, self.p1, self.p2]
    }

    /// The command data (Nc bytes).
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Ne, or `None` when no response data is expected.
    pub fn ne(&self) -> Option<u32> {
        self.ne
    }

    /// Whether this command is encoded with extended length fields.
    pub fn is_extended(&self) -> bool {
        self.case().is_extended()
    }

    /// Whether extended length fields were asked for (decoded from an extended APDU, or set
    /// with [`CommandApdu::with_extended`]), even where short ones would do.
    pub fn prefers_extended(&self) -> bool {
        self.extended
    }

    /// The case this command is encoded as.
    pub fn case(&self) -> Case {
        let extended = needs_extended(self.data.len(), self.ne, self.extended);
        match (self.data.is_empty(), self.ne.is_some(), extended) {
            (true, false, _) => Case::Case1,
            (true, true, false) => Case::Case2Short,
            (false, false, false) => Case::Case3Short,
            (false, true, false) => Case::Case4Short,
            (true, true, true) => Case::Case2Extended,
            (false, false, true) => Case::Case3Extended,
            (false, true, true) => Case::Case4Extended,
        }
    }

    /// Length of the encoding.
    pub fn encoded_len(&self) -> usize {
        encoded_len(self.data.len(), self.ne, self.extended)
    }

    /// Appends the encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        encode_parts(out, self.header(), &self.data, self.ne, self.extended);
    }

    /// The encoding. It may hold a PIN: the buffer is zeroized on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(self.encoded_len()));
        self.encode_into(&mut out);
        out
    }
}

impl fmt::Debug for CommandApdu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("CommandApdu");
        s.field("case", &self.case())
            .field("cla", &format_args!("{:02X}", self.cla))
            .field("ins", &self.ins)
            .field("p1", &format_args!("{:02X}", self.p1))
            .field("p2", &format_args!("{:02X}", self.p2));
        if !self.data.is_empty() {
            s.field("nc", &self.data.len());
            if self.ins.carries_secret() {
                s.field("data", &format_args!("REDACTED"));
            } else {
                s.field("data", &Hex(&self.data));
            }
        }
        if let Some(ne) = self.ne {
            s.field("ne", &ne);
        }
        s.finish()
    }
}

/// Short Le byte to Ne: 00 means 256 (ISO/IEC 7816-3 §12.1.3).
fn short_ne(le: u8) -> u32 {
    if le == 0 { MAX_SHORT_NE } else { u32::from(le) }
}

/// Extended Le to Ne: 0000 means 65536 (ISO/IEC 7816-3 §12.1.3).
fn extended_ne(le: u16) -> u32 {
    if le == 0 { MAX_NE } else { u32::from(le) }
}

/// Whether data of `nc` bytes and `ne` need (or are asked to use) extended length fields.
/// A case 1 command has no length fields at all.
fn needs_extended(nc: usize, ne: Option<u32>, prefer_extended: bool) -> bool {
    let has_fields = nc > 0 || ne.is_some();
    has_fields && (prefer_extended || nc > MAX_SHORT_NC || ne.is_some_and(|n| n > MAX_SHORT_NE))
}

pub(crate) fn encoded_len(nc: usize, ne: Option<u32>, prefer_extended: bool) -> usize {
    let extended = needs_extended(nc, ne, prefer_extended);
    let lc = match (nc, extended) {
        (0, _) => 0,
        (_, false) => 1,
        (_, true) => 3,
    };
    let le = match (ne, extended, nc) {
        (None, _, _) => 0,
        (Some(_), false, _) => 1,
        (Some(_), true, 0) => 3,
        (Some(_), true, _) => 2,
    };
    4 + lc + nc + le
}

/// Appends the encoding of a command to `out` (ISO/IEC 7816-3 §12.1.2). The caller
/// guarantees `data.len() <= 65535` and `ne` in 1..=65536 (the constructors do).
pub(crate) fn encode_parts(
    out: &mut Vec<u8>,
    header: [u8; 4],
    data: &[u8],
    ne: Option<u32>,
    prefer_extended: bool,
) {
    out.extend_from_slice(&header);
    let extended = needs_extended(data.len(), ne, prefer_extended);
    if !data.is_empty() {
        if extended {
            // Extended Lc: 00 then Nc on two bytes.
            let [_, _, hi, lo] = u32::try_from(data.len()).unwrap_or(0).to_be_bytes();
            out.extend_from_slice(&[0x00, hi, lo]);
        } else {
            out.push(u8::try_from(data.len()).unwrap_or(0));
        }
        out.extend_from_slice(data);
    }
    if let Some(ne) = ne {
        if extended {
            // Extended Le: two bytes (after the 00 marker when there is no Lc); 65536 is 0000.
            if data.is_empty() {
                out.push(0x00);
            }
            let [_, _, hi, lo] = (ne % 65536).to_be_bytes();
            out.extend_from_slice(&[hi, lo]);
        } else {
            // Short Le: 256 is 00.
            out.push(u8::try_from(ne % 256).unwrap_or(0));
        }
    }
}

/// A response APDU: response data and the status word SW1 SW2 (ISO/IEC 7816-4 §5.1).
/// The data may be a decrypted secret: it is zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct ResponseApdu {
    data: Zeroizing<Vec<u8>>,
    sw: StatusWord,
}

impl ResponseApdu {
    /// A response with `data` and `sw`.
    pub fn new(data: impl Into<Vec<u8>>, sw: StatusWord) -> Self {
        Self { data: Zeroizing::new(data.into()), sw }
    }

    /// A response with no data.
    pub fn status(sw: StatusWord) -> Self {
        Self::new(Vec::new(), sw)
    }

    /// Splits a received response into data and the trailing status word.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let (data, sw) = split_response(bytes)?;
        Ok(Self::new(data, sw))
    }

    /// The response data.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The status word.
    pub fn sw(&self) -> StatusWord {
        self.sw
    }

    /// Whether the status word is 9000.
    pub fn is_success(&self) -> bool {
        self.sw.is_success()
    }

    /// The data, if and only if the status word is 9000; otherwise the status word.
    pub fn into_success(self) -> Result<Zeroizing<Vec<u8>>, StatusWord> {
        if self.sw.is_success() { Ok(self.data) } else { Err(self.sw) }
    }

    /// The data, giving up the response.
    pub fn into_data(self) -> Zeroizing<Vec<u8>> {
        self.data
    }

    /// Data followed by SW1 SW2.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 2);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&self.sw.to_bytes());
        out
    }
}

impl fmt::Debug for ResponseApdu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Response data is not redacted here because the command is unknown; callers that
        // receive secrets (decryption) must not Debug-print the response.
        f.debug_struct("ResponseApdu").field("len", &self.data.len()).field("sw", &self.sw).finish()
    }
}

/// Splits response bytes into the data and the status word, borrowing the data.
pub fn split_response(bytes: &[u8]) -> Result<(&[u8], StatusWord), Error> {
    match bytes.len().checked_sub(2).map(|n| bytes.split_at(n)) {
        Some((data, [sw1, sw2])) => Ok((data, StatusWord::from_bytes(*sw1, *sw2))),
        _ => Err(Error::ResponseTooShort { len: bytes.len() }),
    }
}

/// Formats raw command bytes for an APDU trace (`>>` lines): header and lengths in hex, and
/// the data blanked when the instruction carries a secret (VERIFY, CHANGE REFERENCE DATA,
/// RESET RETRY COUNTER, GENERAL AUTHENTICATE, EXTERNAL AUTHENTICATE). Works on any bytes,
/// decodable or not.
pub fn trace_command(bytes: &[u8]) -> TraceCommand<'_> {
    TraceCommand(bytes)
}

/// See [`trace_command`].
#[derive(Clone, Copy)]
pub struct TraceCommand<'a>(&'a [u8]);

impl fmt::Display for TraceCommand<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = self.0.get(1).is_some_and(|ins| Ins(*ins).carries_secret());
        match (secret, self.0.len() > 5) {
            (true, true) => {
                let head = self.0.get(..5).unwrap_or_default();
                write!(f, "{} [{} byte(s) redacted]", Hex(head), self.0.len() - 5)
            }
            _ => write!(f, "{}", Hex(self.0)),
        }
    }
}

impl fmt::Debug for TraceCommand<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex::decode_lenient as h;
    use alloc::format;
    use alloc::string::ToString;
    use alloc::vec;

    fn roundtrip(hex: &str) -> CommandApdu {
        let bytes = h(hex).unwrap();
        let apdu = CommandApdu::decode(&bytes).unwrap();
        assert_eq!(apdu.to_bytes().as_slice(), bytes.as_slice(), "{hex}");
        assert_eq!(apdu.encoded_len(), bytes.len(), "{hex}");
        apdu
    }

    // Vectors: NIST SP 800-73-4 Part 2 §3 (PIV SELECT, GET DATA, VERIFY), OpenPGP card 3.4
    // §7.2 (GET DATA 6E, PSO:CDS), and ISO/IEC 7816-3 §12.1.3 for the extended forms.
    #[test]
    fn case_1_verify_status() {
        // SP 800-73-4 Pt 2 §3.2.1: VERIFY with no data asks for the PIN status.
        let a = roundtrip("00 20 00 80");
        assert_eq!(a.case(), Case::Case1);
        assert_eq!(a.header(), [0x00, 0x20, 0x00, 0x80]);
        assert_eq!(a.ins(), Ins::VERIFY);
        assert!(a.data().is_empty());
        assert_eq!(a.ne(), None);
    }

    #[test]
    fn case_2s_get_challenge_and_le_00() {
        // ISO/IEC 7816-4 §11.5.3 GET CHALLENGE for 8 bytes.
        let a = roundtrip("00 84 00 00 08");
        assert_eq!((a.case(), a.ne()), (Case::Case2Short, Some(8)));
        // OpenPGP 3.4 §7.2.6 GET DATA 6E (Application Related Data) with Le 00 = 256.
        let a = roundtrip("00 CA 00 6E 00");
        assert_eq!((a.case(), a.ne()), (Case::Case2Short, Some(256)));
    }

    #[test]
    fn case_3s_verify_pin() {
        // SP 800-73-4 Pt 2 §3.2.1: VERIFY PIV Card Application PIN, 8 bytes padded with FF.
        let a = roundtrip("00 20 00 80 08 31 32 33 34 35 36 FF FF");
        assert_eq!((a.case(), a.data().len(), a.ne()), (Case::Case3Short, 8, None));
    }

    #[test]
    fn case_4s_select_piv() {
        // SP 800-73-4 Pt 2 §3.1.1: SELECT the PIV application by its full AID, Le 00.
        let a = roundtrip("00 A4 04 00 0B A0 00 00 03 08 00 00 10 00 01 00 00");
        assert_eq!(a.case(), Case::Case4Short);
        assert_eq!(a.data(), h("A000000308000010000100").unwrap().as_slice());
        assert_eq!(a.ne(), Some(256));
        // SP 800-73-4 Pt 2 §3.1.2: GET DATA for the CHUID (tag list 5C 03 5FC102).
        let a = roundtrip("00 CB 3F FF 05 5C 03 5F C1 02 00");
        assert_eq!((a.case(), a.data().len(), a.ne()), (Case::Case4Short, 5, Some(256)));
    }

    #[test]
    fn case_2e() {
        // ISO/IEC 7816-3 §12.1.3: 00 then two Le bytes; 0000 is 65536.
        let a = roundtrip("00 CA 00 6E 00 00 00");
        assert_eq!((a.case(), a.ne()), (Case::Case2Extended, Some(65536)));
        let a = roundtrip("00 B0 00 00 00 04 00");
        assert_eq!((a.case(), a.ne()), (Case::Case2Extended, Some(1024)));
        // Extended form kept even for a small Ne.
        let a = roundtrip("00 B0 00 00 00 00 10");
        assert_eq!((a.case(), a.ne()), (Case::Case2Extended, Some(16)));
    }

    #[test]
    fn case_3e_and_4e() {
        let mut bytes = h("00 DB 3F FF 00 01 00").unwrap();
        bytes.extend(core::iter::repeat_n(0xAB, 256));
        let a = CommandApdu::decode(&bytes).unwrap();
        assert_eq!((a.case(), a.data().len(), a.ne()), (Case::Case3Extended, 256, None));
        assert_eq!(a.to_bytes().as_slice(), bytes.as_slice());
        // OpenPGP 3.4 §7.2.10 PSO:CDS with extended length: 4E, Lc 0013, Le 0000.
        let a = roundtrip("00 2A 9E 9A 00 00 03 01 02 03 00 00");
        assert_eq!(
            (a.case(), a.data(), a.ne()),
            (Case::Case4Extended, &[1u8, 2, 3][..], Some(65536))
        );
        let a = roundtrip("00 A4 04 00 00 00 05 A0 00 00 03 08 01 00");
        assert_eq!((a.case(), a.ne()), (Case::Case4Extended, Some(256)));
    }

    #[test]
    fn encode_chooses_the_form() {
        let a = CommandApdu::new(0, 0xCA, 0, 0x6E).with_ne(256).unwrap();
        assert_eq!(a.to_bytes().as_slice(), h("00CA006E00").unwrap().as_slice());
        let a = a.with_ne(257).unwrap();
        assert_eq!(a.case(), Case::Case2Extended);
        assert_eq!(a.to_bytes().as_slice(), h("00CA006E000101").unwrap().as_slice());
        let a = CommandApdu::new(0, 0xDB, 0x3F, 0xFF).with_data(vec![7; 255]).unwrap();
        assert_eq!(a.case(), Case::Case3Short);
        let a = a.with_data(vec![7; 300]).unwrap().with_ne(65536).unwrap();
        assert_eq!(a.case(), Case::Case4Extended);
        let bytes = a.to_bytes();
        assert_eq!(&bytes[..7], &[0, 0xDB, 0x3F, 0xFF, 0, 0x01, 0x2C]);
        assert_eq!(&bytes[bytes.len() - 2..], &[0, 0]);
        assert_eq!(CommandApdu::decode(&bytes).unwrap(), a.with_extended(true));
        // A case 1 command has no length fields, even when extended is asked for.
        let a = CommandApdu::new(0, 0x20, 0, 0x80).with_extended(true);
        assert_eq!((a.case(), a.to_bytes().len()), (Case::Case1, 4));
    }

    #[test]
    fn constructor_limits() {
        let a = CommandApdu::new(0, 0xB0, 0, 0);
        assert_eq!(a.clone().with_ne(0), Err(Error::NeOutOfRange { ne: 0 }));
        assert_eq!(a.clone().with_ne(65537), Err(Error::NeOutOfRange { ne: 65537 }));
        assert!(a.clone().with_ne(65536).is_ok());
        assert_eq!(a.clone().with_data(vec![0; 65536]), Err(Error::DataTooLong { len: 65536 }));
        assert_eq!(a.with_data(vec![0; 65535]).unwrap().data().len(), 65535);
    }

    #[test]
    fn decode_errors_name_the_problem() {
        let err = |hex: &str| CommandApdu::decode(&h(hex).unwrap()).unwrap_err();
        assert_eq!(err(""), Error::CommandTooShort { len: 0 });
        assert_eq!(err("00 A4 04"), Error::CommandTooShort { len: 3 });
        // Lc says 5, 3 bytes follow.
        assert_eq!(err("00 A4 04 00 05 A0 00 00"), Error::LcMismatch { lc: 5, available: 3 });
        // Lc says 2, 5 bytes follow (data + 3).
        assert_eq!(err("00 A4 04 00 02 A0 00 00 00 00"), Error::LcMismatch { lc: 2, available: 5 });
        // Short Lc then a two-byte Le.
        assert!(matches!(err("00 A4 04 00 02 A0 00 01 00"), Error::LeMalformed { offset: 7, .. }));
        // 00 then a single byte.
        assert!(matches!(err("00 B0 00 00 00 10"), Error::ExtendedMarker { offset: 4, .. }));
        // Extended Lc 0000 with something after it.
        assert!(matches!(err("00 B0 00 00 00 00 00 01"), Error::ExtendedMarker { offset: 5, .. }));
        // Extended Lc 0003, data, one-byte Le.
        assert!(matches!(err("00 2A 9E 9A 00 00 03 01 02 03 00"), Error::LeMalformed { .. }));
        // Extended Lc 0004, only 3 data bytes.
        assert_eq!(err("00 2A 9E 9A 00 00 04 01 02 03"), Error::LcMismatch { lc: 4, available: 3 });
    }

    #[test]
    fn every_prefix_of_a_valid_apdu_decodes_or_errors() {
        // Truncating a 4E command at every byte: each prefix is either another valid case or a
        // clear error, never a panic, and valid ones still round-trip.
        let bytes = h("00 2A 9E 9A 00 00 05 01 02 03 04 05 01 00").unwrap();
        for n in 0..=bytes.len() {
            if let Ok(a) = CommandApdu::decode(&bytes[..n]) {
                assert_eq!(a.to_bytes().as_slice(), &bytes[..n]);
            }
        }
    }

    #[test]
    fn responses() {
        let r = ResponseApdu::decode(&h("01 02 90 00").unwrap()).unwrap();
        assert_eq!((r.data(), r.sw()), (&[1u8, 2][..], StatusWord::SUCCESS));
        assert!(r.is_success());
        assert_eq!(r.to_bytes(), h("01029000").unwrap());
        assert_eq!(r.clone().into_success().unwrap().as_slice(), &[1, 2]);
        let r = ResponseApdu::decode(&h("6A 82").unwrap()).unwrap();
        assert_eq!(r.clone().into_success(), Err(StatusWord::FILE_NOT_FOUND));
        assert!(r.data().is_empty());
        assert_eq!(ResponseApdu::decode(&[0x90]), Err(Error::ResponseTooShort { len: 1 }));
        assert_eq!(ResponseApdu::decode(&[]), Err(Error::ResponseTooShort { len: 0 }));
        assert_eq!(
            format!("{r:?}"),
            "ResponseApdu { len: 0, sw: StatusWord(6A82 (FileOrApplicationNotFound)) }"
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let verify =
            CommandApdu::decode(&h("00 20 00 80 08 31 32 33 34 35 36 FF FF").unwrap()).unwrap();
        let dbg = format!("{verify:?}");
        assert!(dbg.contains("REDACTED") && !dbg.contains("313233"), "{dbg}");
        let trace =
            trace_command(&h("00 20 00 80 08 31 32 33 34 35 36 FF FF").unwrap()).to_string();
        assert_eq!(trace, "0020008008 [8 byte(s) redacted]");
        let select = h("00 A4 04 00 05 A0 00 00 03 08").unwrap();
        assert_eq!(trace_command(&select).to_string(), "00A4040005A000000308");
        let dbg = format!("{:?}", CommandApdu::decode(&select).unwrap());
        assert!(dbg.contains("A000000308") && dbg.contains("Ins(A4 SELECT)"), "{dbg}");
    }
}
