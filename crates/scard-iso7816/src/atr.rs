//! The answer-to-reset (ISO/IEC 7816-3 §8) and its historical bytes (ISO/IEC 7816-4 §8.1.1).
//!
//! [`Atr::parse`] checks the structure of §8.2 (TS, T0, the interface bytes chained by TDi, K
//! historical bytes, TCK when required, nothing after) and keeps the bytes; the accessors
//! interpret them with the defaults of §8.3. A wrong TCK is reported by [`Atr::tck`], not as a
//! parse error, and the historical bytes are decoded only on request by
//! [`Atr::historical_info`], so a card with proprietary historical bytes still parses.
//!
//! RFU codes (Fi, Di, WI) are reported as `None` by the interpreting accessors, as
//! pcsc-tools' `ATR_analysis` prints "RFU" for them; the raw byte stays available.

use alloc::vec::Vec;
use core::fmt;

use crate::cursor::Cursor;
use crate::error::Error;
use crate::status::StatusWord;
use crate::tlv::compact::{self, CompactTlv};

/// ISO/IEC 7816-3 §8.2.1: TS followed by at most 32 characters.
pub const MAX_LEN: usize = 33;

/// Default Fi when TA1 is absent (ISO/IEC 7816-3 §8.3, Fi = 372).
pub const DEFAULT_FI: u16 = 372;
/// Default Di when TA1 is absent (ISO/IEC 7816-3 §8.3, Di = 1).
pub const DEFAULT_DI: u8 = 1;
/// Default waiting time integer of T=0 when TC2 is absent (ISO/IEC 7816-3 §10.2).
pub const DEFAULT_WI: u8 = 10;
/// Default IFSC of T=1 when no TA for T=1 is present (ISO/IEC 7816-3 §11.4.2).
pub const DEFAULT_IFSC: u16 = 32;
/// Default block waiting integer of T=1 (ISO/IEC 7816-3 §11.4.3).
pub const DEFAULT_BWI: u8 = 4;
/// Default character waiting integer of T=1 (ISO/IEC 7816-3 §11.4.3).
pub const DEFAULT_CWI: u8 = 13;

/// The protocol type T=15: not a protocol, it qualifies global interface bytes (§8.2.3).
pub const T15: u8 = 15;

/// ISO/IEC 7816-3 §8.3 table 7: Fi by the high quartet of TA1 (`None` = RFU).
const FI_TABLE: [Option<u16>; 16] = [
    Some(372),
    Some(372),
    Some(558),
    Some(744),
    Some(1116),
    Some(1488),
    Some(1860),
    None,
    None,
    Some(512),
    Some(768),
    Some(1024),
    Some(1536),
    Some(2048),
    None,
    None,
];

/// ISO/IEC 7816-3 §8.3 table 7: f(max) in kHz by the high quartet of TA1 (`None` = RFU).
const FMAX_KHZ_TABLE: [Option<u32>; 16] = [
    Some(4_000),
    Some(5_000),
    Some(6_000),
    Some(8_000),
    Some(12_000),
    Some(16_000),
    Some(20_000),
    None,
    None,
    Some(5_000),
    Some(7_500),
    Some(10_000),
    Some(15_000),
    Some(20_000),
    None,
    None,
];

/// ISO/IEC 7816-3 §8.3 table 8: Di by the low quartet of TA1 (`None` = RFU).
const DI_TABLE: [Option<u8>; 16] = [
    None,
    Some(1),
    Some(2),
    Some(4),
    Some(8),
    Some(16),
    Some(32),
    Some(64),
    Some(12),
    Some(20),
    None,
    None,
    None,
    None,
    None,
    None,
];

/// The coding convention announced by TS (ISO/IEC 7816-3 §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Convention {
    /// TS = 3B: state H is 1, least significant bit first.
    Direct,
    /// TS = 3F: state L is 1, most significant bit first.
    Inverse,
}

/// A byte of the ATR that the input ended before (named in [`Error::AtrTruncated`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AtrField {
    /// TAi, with i from 1.
    Ta(u8),
    /// TBi, with i from 1.
    Tb(u8),
    /// TCi, with i from 1.
    Tc(u8),
    /// TDi, with i from 1.
    Td(u8),
    /// Historical byte `index` (from 1) of the `count` that T0 announces.
    Historical {
        /// The first missing historical byte, from 1.
        index: u8,
        /// K, the number of historical bytes T0 announces.
        count: u8,
    },
    /// The check byte, required because a TDi indicates a protocol other than T=0.
    Tck,
}

impl fmt::Display for AtrField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ta(i) => write!(f, "TA{i}"),
            Self::Tb(i) => write!(f, "TB{i}"),
            Self::Tc(i) => write!(f, "TC{i}"),
            Self::Td(i) => write!(f, "TD{i}"),
            Self::Historical { index, count } => write!(f, "historical byte {index} of {count}"),
            Self::Tck => f.write_str("TCK"),
        }
    }
}

/// One group of interface bytes TAi TBi TCi TDi (ISO/IEC 7816-3 §8.2.3). Group 1 is announced
/// by T0, group i+1 by TDi.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct InterfaceBytes {
    /// TAi.
    pub ta: Option<u8>,
    /// TBi.
    pub tb: Option<u8>,
    /// TCi.
    pub tc: Option<u8>,
    /// TDi.
    pub td: Option<u8>,
}

impl InterfaceBytes {
    /// The protocol type T that TDi indicates (bits 4-1), if TDi is present.
    pub fn protocol(&self) -> Option<u8> {
        // ISO/IEC 7816-3 §8.2.3: bits 4 to 1 of TDi encode T.
        self.td.map(|td| td & 0x0F)
    }
}

/// Result of the check byte test (ISO/IEC 7816-3 §8.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TckStatus {
    /// No TCK: only T=0 is indicated.
    Absent,
    /// The exclusive-or of T0 to TCK is zero.
    Correct,
    /// The exclusive-or of T0 to TCK is not zero (see [`Atr::expected_tck`]).
    Wrong,
}

/// The specific mode byte TA2 (ISO/IEC 7816-3 §8.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpecificMode {
    /// The protocol of the specific mode (bits 4-1).
    pub protocol: u8,
    /// Bit 8 is 0: the card can change to the negotiable mode (after a warm reset).
    pub changeable: bool,
    /// Bit 5 is 1: the transmission parameters are implicit, not those of TA1.
    pub implicit_parameters: bool,
}

/// Error detection code of T=1, bit 1 of the first TC for T=1 (ISO/IEC 7816-3 §11.4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EdcKind {
    /// Longitudinal redundancy check, one byte (default).
    Lrc,
    /// Cyclic redundancy check, two bytes.
    Crc,
}

/// The T=1 parameters of the ATR, with the defaults of ISO/IEC 7816-3 §11.4 applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct T1Parameters {
    /// Information field size of the card: the first TA for T=1, default 32. Values 00 and FF
    /// are RFU (§11.4.2) and are returned as given.
    pub ifsc: u16,
    /// Block waiting integer: bits 8-5 of the first TB for T=1, default 4 (A to F are RFU).
    pub bwi: u8,
    /// Character waiting integer: bits 4-1 of the first TB for T=1, default 13.
    pub cwi: u8,
    /// Error detection code: bit 1 of the first TC for T=1, default LRC.
    pub edc: EdcKind,
}

/// Clock stop indicator X, bits 8-7 of the first TA for T=15 (ISO/IEC 7816-3 §8.3 table 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClockStop {
    /// 00: clock stop not supported (default).
    NotSupported,
    /// 01: supported, state L preferred.
    StateL,
    /// 10: supported, state H preferred.
    StateH,
    /// 11: supported, no preference.
    NoPreference,
}

/// The first TA for T=15 (ISO/IEC 7816-3 §8.3): clock stop indicator and class indicator.
/// An open newtype over the byte; when absent the default is [`ClassIndicator::DEFAULT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClassIndicator(pub u8);

impl ClassIndicator {
    /// Clock stop not supported, class A only (ISO/IEC 7816-3 §8.3).
    pub const DEFAULT: Self = Self(0x01);

    /// Bits 8-7 (ISO/IEC 7816-3 §8.3 table 9).
    pub fn clock_stop(self) -> ClockStop {
        match self.0 >> 6 {
            0 => ClockStop::NotSupported,
            1 => ClockStop::StateL,
            2 => ClockStop::StateH,
            _ => ClockStop::NoPreference,
        }
    }

    /// Bits 6-1: one bit per class of operating conditions (§8.3 table 10).
    pub fn classes(self) -> u8 {
        self.0 & 0x3F
    }

    /// Bit 1: class A (5 V) accepted.
    pub fn class_a(self) -> bool {
        self.0 & 0x01 != 0
    }

    /// Bit 2: class B (3 V) accepted.
    pub fn class_b(self) -> bool {
        self.0 & 0x02 != 0
    }

    /// Bit 3: class C (1.8 V) accepted.
    pub fn class_c(self) -> bool {
        self.0 & 0x04 != 0
    }
}

/// A parsed answer-to-reset. Owned (at most 33 bytes); built only by [`Atr::parse`].
///
/// ```
/// use scard_iso7816::atr::{Atr, Convention, TckStatus};
///
/// // Yubico YubiKey 5.
/// let atr = Atr::from_hex("3B FD 13 00 00 81 31 FE 15 80 73 C0 21 C0 57 59 75 62 69 4B 65 79 40")?;
/// assert_eq!(atr.convention(), Convention::Direct);
/// assert_eq!(atr.protocols(), &[1]);
/// assert_eq!((atr.fi(), atr.di()), (Some(372), Some(4)));
/// assert_eq!(atr.ifsc(), Some(254));
/// assert_eq!(atr.tck(), TckStatus::Correct);
/// assert_eq!(atr.historical().first(), Some(&0x80));
/// # Ok::<(), scard_iso7816::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Atr {
    bytes: [u8; MAX_LEN],
    len: u8,
    groups: Vec<InterfaceBytes>,
    protocols: Vec<u8>,
    historical_start: u8,
    historical_len: u8,
    tck_present: bool,
}

impl Atr {
    /// Parses an ATR (ISO/IEC 7816-3 §8.2), TS included.
    ///
    /// Errors, checked in this order: more than 33 bytes ([`Error::AtrTooLong`]); fewer than 2
    /// ([`Error::AtrTooShort`]); TS other than 3B or 3F ([`Error::InvalidTs`]); fewer bytes than
    /// T0 and the TDi announce, TCK included when required ([`Error::AtrTruncated`]); bytes
    /// after the TCK or after the historical bytes ([`Error::TrailingBytes`]). A wrong TCK and
    /// malformed historical bytes are not errors here.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let len = bytes.len();
        // ISO/IEC 7816-3 §8.2.1: TS and at most 32 further characters.
        if len > MAX_LEN {
            return Err(Error::AtrTooLong { len });
        }
        // ISO/IEC 7816-3 §8.2.1: TS and T0 are mandatory.
        if len < 2 {
            return Err(Error::AtrTooShort { len });
        }
        let mut c = Cursor::new(bytes);
        let ts = c.take_u8("TS")?;
        // ISO/IEC 7816-3 §8.1: TS is 3B (direct) or 3F (inverse).
        convention_of(ts)?;
        let t0 = c.take_u8("T0")?;

        // ISO/IEC 7816-3 §8.2.2: T0 = Y1 (bits 8-5) and K (bits 4-1).
        let k = t0 & 0x0F;
        let mut y = t0 >> 4;
        let mut groups = Vec::new();
        let mut protocols: Vec<u8> = Vec::new();
        let mut tck_required = false;
        let mut i: u8 = 1;
        loop {
            // ISO/IEC 7816-3 §8.2.3: bits 5, 6, 7, 8 of Yi announce TAi, TBi, TCi, TDi.
            let group = InterfaceBytes {
                ta: take_if(&mut c, y & 0x1 != 0, AtrField::Ta(i))?,
                tb: take_if(&mut c, y & 0x2 != 0, AtrField::Tb(i))?,
                tc: take_if(&mut c, y & 0x4 != 0, AtrField::Tc(i))?,
                td: take_if(&mut c, y & 0x8 != 0, AtrField::Td(i))?,
            };
            groups.push(group);
            let Some(td) = group.td else { break };
            let t = td & 0x0F;
            // ISO/IEC 7816-3 §8.2.5: TCK is present unless only T=0 is indicated.
            if t != 0 {
                tck_required = true;
            }
            // ISO/IEC 7816-3 §8.2.3: T=15 qualifies global bytes and is not a protocol offer.
            if t != T15 && !protocols.contains(&t) {
                protocols.push(t);
            }
            y = td >> 4;
            i = i.saturating_add(1);
        }
        // ISO/IEC 7816-3 §8.2.3: without TD1 (or without any offer) the only offer is T=0.
        if protocols.is_empty() {
            protocols.push(0);
        }

        // ISO/IEC 7816-3 §8.2.4: K historical bytes.
        let historical_start = c.offset();
        let available = c.remaining();
        if c.take(usize::from(k), "historical bytes").is_err() {
            let index = u8::try_from(available).unwrap_or(u8::MAX).saturating_add(1);
            return Err(Error::AtrTruncated {
                missing: AtrField::Historical { index, count: k },
                offset: historical_start + available,
            });
        }
        // ISO/IEC 7816-3 §8.2.5: TCK, when a TDi indicates a protocol other than T=0.
        if tck_required {
            take_if(&mut c, true, AtrField::Tck)?;
        }
        // ISO/IEC 7816-3 §8.2.1: nothing follows the last character.
        c.finish(if tck_required { "ATR after TCK" } else { "ATR after the historical bytes" })?;

        let mut owned = [0u8; MAX_LEN];
        for (dst, src) in owned.iter_mut().zip(bytes) {
            *dst = *src;
        }
        Ok(Self {
            bytes: owned,
            len: u8::try_from(len).unwrap_or(u8::MAX),
            groups,
            protocols,
            historical_start: u8::try_from(historical_start).unwrap_or(u8::MAX),
            historical_len: k,
            tck_present: tck_required,
        })
    }

    /// Parses an ATR written as hex (spaces, colons and case as [`crate::hex::decode_lenient`]).
    pub fn from_hex(text: &str) -> Result<Self, Error> {
        Self::parse(&crate::hex::decode_lenient(text)?)
    }

    /// All bytes of the ATR, TS to TCK.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    fn byte(&self, i: usize) -> u8 {
        self.bytes().get(i).copied().unwrap_or(0)
    }

    /// TS.
    pub fn ts(&self) -> u8 {
        self.byte(0)
    }

    /// The convention TS announces (ISO/IEC 7816-3 §8.1).
    pub fn convention(&self) -> Convention {
        // Checked by `parse`; the fallback is never taken.
        convention_of(self.ts()).unwrap_or(Convention::Direct)
    }

    /// The format byte T0 (ISO/IEC 7816-3 §8.2.2).
    pub fn t0(&self) -> u8 {
        self.byte(1)
    }

    /// The interface byte groups, group i at index i-1. Group 1 is always there (possibly
    /// empty); group i+1 exists iff TDi is present.
    pub fn interface_bytes(&self) -> &[InterfaceBytes] {
        &self.groups
    }

    /// Interface byte group `i` (from 1), if present.
    pub fn interface(&self, i: usize) -> Option<&InterfaceBytes> {
        i.checked_sub(1).and_then(|idx| self.groups.get(idx))
    }

    /// TAi (i from 1).
    pub fn ta(&self, i: usize) -> Option<u8> {
        self.interface(i).and_then(|g| g.ta)
    }

    /// TBi (i from 1).
    pub fn tb(&self, i: usize) -> Option<u8> {
        self.interface(i).and_then(|g| g.tb)
    }

    /// TCi (i from 1).
    pub fn tc(&self, i: usize) -> Option<u8> {
        self.interface(i).and_then(|g| g.tc)
    }

    /// TDi (i from 1).
    pub fn td(&self, i: usize) -> Option<u8> {
        self.interface(i).and_then(|g| g.td)
    }

    /// The protocols offered, in order of first appearance in TD1, TD2, ..., without repeats and
    /// without T=15 (which is not a protocol). `[0]` when no TDi indicates one (§8.2.3).
    pub fn protocols(&self) -> &[u8] {
        &self.protocols
    }

    /// Whether protocol `t` is offered.
    pub fn offers(&self, t: u8) -> bool {
        self.protocols.contains(&t)
    }

    /// TA1 as sent, if present.
    pub fn ta1(&self) -> Option<u8> {
        self.ta(1)
    }

    /// FI, the high quartet of TA1; 1 (Fi = 372) when TA1 is absent (ISO/IEC 7816-3 §8.3).
    pub fn fi_index(&self) -> u8 {
        self.ta1().map_or(1, |ta1| ta1 >> 4)
    }

    /// DI, the low quartet of TA1; 1 (Di = 1) when TA1 is absent (ISO/IEC 7816-3 §8.3).
    pub fn di_index(&self) -> u8 {
        self.ta1().map_or(1, |ta1| ta1 & 0x0F)
    }

    /// The clock rate conversion integer Fi (ISO/IEC 7816-3 §8.3 table 7), 372 when TA1 is
    /// absent, `None` when FI is RFU (7, 8, E, F).
    pub fn fi(&self) -> Option<u16> {
        // ISO/IEC 7816-3 §8.3 table 7.
        FI_TABLE.get(usize::from(self.fi_index())).copied().flatten()
    }

    /// The baud rate adjustment integer Di (ISO/IEC 7816-3 §8.3 table 8), 1 when TA1 is
    /// absent, `None` when DI is RFU (0, A to F).
    pub fn di(&self) -> Option<u8> {
        // ISO/IEC 7816-3 §8.3 table 8.
        DI_TABLE.get(usize::from(self.di_index())).copied().flatten()
    }

    /// f(max) in kHz for FI (ISO/IEC 7816-3 §8.3 table 7); 5000 when TA1 is absent.
    pub fn f_max_khz(&self) -> Option<u32> {
        // ISO/IEC 7816-3 §8.3 table 7.
        FMAX_KHZ_TABLE.get(usize::from(self.fi_index())).copied().flatten()
    }

    /// f(max) in MHz for FI (ISO/IEC 7816-3 §8.3 table 7); 5 when TA1 is absent.
    pub fn f_max_mhz(&self) -> Option<f32> {
        // Exact: every table value is a multiple of 0.5 MHz.
        self.f_max_khz().and_then(|khz| u16::try_from(khz).ok()).map(|khz| f32::from(khz) / 1000.0)
    }

    /// N, the extra guard time of TC1 (ISO/IEC 7816-3 §8.3); 0 when TC1 is absent.
    /// 255 means the minimum guard time (12 etu for T=0, 11 etu for T=1).
    pub fn extra_guard_time(&self) -> u8 {
        self.tc(1).unwrap_or(0)
    }

    /// The specific mode byte TA2 (ISO/IEC 7816-3 §8.3); `None` means negotiable mode.
    pub fn specific_mode(&self) -> Option<SpecificMode> {
        // ISO/IEC 7816-3 §8.3: TA2 bit 8 capability to change, bit 5 implicit, bits 4-1 T.
        self.ta(2).map(|ta2| SpecificMode {
            protocol: ta2 & 0x0F,
            changeable: ta2 & 0x80 == 0,
            implicit_parameters: ta2 & 0x10 != 0,
        })
    }

    /// The waiting time integer WI of T=0 from TC2 (ISO/IEC 7816-3 §10.2); 10 when TC2 is
    /// absent, `None` when TC2 is 00 (RFU).
    pub fn wi(&self) -> Option<u8> {
        // ISO/IEC 7816-3 §10.2: TC2 = 00 is RFU, no TC2 means WI = 10.
        match self.tc(2) {
            None => Some(DEFAULT_WI),
            Some(0) => None,
            Some(wi) => Some(wi),
        }
    }

    /// The first byte picked by `pick` in a group i >= 3 that follows a TD(i-1) indicating `t`
    /// (ISO/IEC 7816-3 §8.2.3: "the first TA/TB/TC for T=t").
    fn first_for(&self, t: u8, pick: fn(&InterfaceBytes) -> Option<u8>) -> Option<u8> {
        self.groups
            .windows(2)
            .skip(1)
            .filter_map(|pair| match pair {
                [prev, group] if prev.protocol() == Some(t) => pick(group),
                _ => None,
            })
            .next()
    }

    /// The first TAi (i >= 3) for protocol `t`, e.g. IFSC for T=1, class indicator for T=15.
    pub fn first_ta_for(&self, t: u8) -> Option<u8> {
        self.first_for(t, |g| g.ta)
    }

    /// The first TBi (i >= 3) for protocol `t`.
    pub fn first_tb_for(&self, t: u8) -> Option<u8> {
        self.first_for(t, |g| g.tb)
    }

    /// The first TCi (i >= 3) for protocol `t`.
    pub fn first_tc_for(&self, t: u8) -> Option<u8> {
        self.first_for(t, |g| g.tc)
    }

    /// IFSC (ISO/IEC 7816-3 §11.4.2): the first TAi (i >= 3) after a TD(i-1) indicating T=1;
    /// 32 when T=1 is offered without one; `None` when T=1 is not offered.
    pub fn ifsc(&self) -> Option<u16> {
        self.t1().map(|t1| t1.ifsc)
    }

    /// The T=1 parameters (ISO/IEC 7816-3 §11.4), `None` when T=1 is not offered.
    pub fn t1(&self) -> Option<T1Parameters> {
        if !self.offers(1) {
            return None;
        }
        // ISO/IEC 7816-3 §11.4.2: the first TA for T=1 is IFSC.
        let ifsc = self.first_ta_for(1).map_or(DEFAULT_IFSC, u16::from);
        // ISO/IEC 7816-3 §11.4.3: the first TB for T=1 is BWI (bits 8-5) and CWI (bits 4-1).
        let tb = self.first_tb_for(1);
        // ISO/IEC 7816-3 §11.4.4: bit 1 of the first TC for T=1 selects CRC.
        let edc = match self.first_tc_for(1) {
            Some(tc) if tc & 0x01 != 0 => EdcKind::Crc,
            _ => EdcKind::Lrc,
        };
        Some(T1Parameters {
            ifsc,
            bwi: tb.map_or(DEFAULT_BWI, |tb| tb >> 4),
            cwi: tb.map_or(DEFAULT_CWI, |tb| tb & 0x0F),
            edc,
        })
    }

    /// Block waiting integer of T=1 (default 4), `None` when T=1 is not offered.
    pub fn bwi(&self) -> Option<u8> {
        self.t1().map(|t1| t1.bwi)
    }

    /// Character waiting integer of T=1 (default 13), `None` when T=1 is not offered.
    pub fn cwi(&self) -> Option<u8> {
        self.t1().map(|t1| t1.cwi)
    }

    /// The first TA for T=15 (ISO/IEC 7816-3 §8.3), `None` when absent (then
    /// [`ClassIndicator::DEFAULT`] applies).
    pub fn class_indicator(&self) -> Option<ClassIndicator> {
        self.first_ta_for(T15).map(ClassIndicator)
    }

    /// The first TB for T=15 (ISO/IEC 7816-3 §8.3): use of contact C6 (SPU), `None` when
    /// absent (SPU not used).
    pub fn spu(&self) -> Option<u8> {
        self.first_tb_for(T15)
    }

    /// K, the number of historical bytes (ISO/IEC 7816-3 §8.2.2).
    pub fn k(&self) -> usize {
        usize::from(self.historical_len)
    }

    /// The historical bytes T1 ... TK (ISO/IEC 7816-3 §8.2.4).
    pub fn historical(&self) -> &[u8] {
        let start = usize::from(self.historical_start);
        self.bytes().get(start..start + self.k()).unwrap_or(&[])
    }

    /// Offset of the first historical byte in [`Atr::bytes`].
    pub fn historical_offset(&self) -> usize {
        usize::from(self.historical_start)
    }

    /// TCK as sent, if present.
    pub fn tck_byte(&self) -> Option<u8> {
        if self.tck_present { self.bytes().last().copied() } else { None }
    }

    /// The TCK value that would make the check correct: the exclusive-or of T0 up to the last
    /// historical byte. `None` when TCK is absent.
    pub fn expected_tck(&self) -> Option<u8> {
        if !self.tck_present {
            return None;
        }
        let body = self.bytes().get(1..).unwrap_or(&[]);
        let body = body.split_last().map_or(&[][..], |(_, before)| before);
        Some(body.iter().fold(0, |acc, b| acc ^ b))
    }

    /// The check byte test (ISO/IEC 7816-3 §8.2.5): the exclusive-or of all bytes from T0 to
    /// TCK inclusive is zero.
    pub fn tck(&self) -> TckStatus {
        if !self.tck_present {
            return TckStatus::Absent;
        }
        // ISO/IEC 7816-3 §8.2.5: XOR of T0 .. TCK must be zero.
        let xor = self.bytes().get(1..).unwrap_or(&[]).iter().fold(0, |acc, b| acc ^ b);
        if xor == 0 { TckStatus::Correct } else { TckStatus::Wrong }
    }

    /// Decodes the historical bytes per ISO/IEC 7816-4 §8.1.1. Errors carry offsets within
    /// [`Atr::bytes`]; they do not make the ATR itself invalid.
    pub fn historical_info(&self) -> Result<Historical<'_>, Error> {
        Historical::decode(self.historical(), self.historical_offset())
    }
}

impl fmt::Debug for Atr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Atr({self})")
    }
}

/// Upper-case hex with spaces: `3B 95 13 81 01 80 73 FF 01 00 0B`.
impl fmt::Display for Atr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.bytes().iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl AsRef<[u8]> for Atr {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

impl TryFrom<&[u8]> for Atr {
    type Error = Error;

    fn try_from(bytes: &[u8]) -> Result<Self, Error> {
        Self::parse(bytes)
    }
}

fn convention_of(ts: u8) -> Result<Convention, Error> {
    // ISO/IEC 7816-3 §8.1: 3B direct, 3F inverse; no other value.
    match ts {
        0x3B => Ok(Convention::Direct),
        0x3F => Ok(Convention::Inverse),
        _ => Err(Error::InvalidTs { ts }),
    }
}

/// Takes one byte named `field` when `present`, or fails naming it.
fn take_if(c: &mut Cursor<'_>, present: bool, field: AtrField) -> Result<Option<u8>, Error> {
    if !present {
        return Ok(None);
    }
    let offset = c.offset();
    c.take_u8("ATR").map(Some).map_err(|_| Error::AtrTruncated { missing: field, offset })
}

/// The status indicator of the historical bytes (ISO/IEC 7816-4 §8.1.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusIndicator {
    /// Life cycle status byte (ISO/IEC 7816-4 §5.3.3.2), if given.
    pub lcs: Option<u8>,
    /// Status word, if given.
    pub sw: Option<StatusWord>,
}

impl StatusIndicator {
    /// ISO/IEC 7816-4 §8.1.1.3: one byte LCS, two bytes SW1-SW2, or three bytes LCS SW1 SW2.
    fn decode(value: &[u8], offset: usize) -> Result<Self, Error> {
        match value {
            [lcs] => Ok(Self { lcs: Some(*lcs), sw: None }),
            [sw1, sw2] => Ok(Self { lcs: None, sw: Some(StatusWord::from_bytes(*sw1, *sw2)) }),
            [lcs, sw1, sw2] => {
                Ok(Self { lcs: Some(*lcs), sw: Some(StatusWord::from_bytes(*sw1, *sw2)) })
            }
            _ => Err(Error::InvalidHistorical {
                offset,
                reason: "status indicator must be 1, 2 or 3 bytes",
            }),
        }
    }
}

/// COMPACT-TLV objects of the historical bytes, checked to be well formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactObjects<'a> {
    bytes: &'a [u8],
    base: usize,
}

impl<'a> CompactObjects<'a> {
    fn decode(bytes: &'a [u8], base: usize) -> Result<Self, Error> {
        // ISO/IEC 7816-4 §8.1.1.2: every object must fit in the historical bytes.
        for object in compact::Iter::with_base(bytes, base) {
            object?;
        }
        Ok(Self { bytes, base })
    }

    /// The encoded objects.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The objects in order; offsets are positions in the ATR.
    pub fn iter(&self) -> impl Iterator<Item = CompactTlv<'a>> + 'a {
        // Checked when built: the iterator yields no error.
        compact::Iter::with_base(self.bytes, self.base).filter_map(Result::ok)
    }

    /// The first object with tag `tag`.
    pub fn find(&self, tag: u8) -> Option<CompactTlv<'a>> {
        self.iter().find(|o| o.tag == tag)
    }
}

/// The historical bytes decoded by their category indicator (ISO/IEC 7816-4 §8.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Historical<'a> {
    /// K = 0.
    Empty,
    /// Category 00: COMPACT-TLV objects followed by the mandatory status indicator LCS SW1 SW2
    /// (ISO/IEC 7816-4 §8.1.1.1).
    CompactWithStatus {
        /// The objects between the category indicator and the status indicator.
        objects: CompactObjects<'a>,
        /// The last three historical bytes.
        status: StatusIndicator,
    },
    /// Category 80: COMPACT-TLV objects, the status indicator possibly among them as tag 8.
    Compact {
        /// All objects after the category indicator.
        objects: CompactObjects<'a>,
        /// The value of the first object with tag 8, if any.
        status: Option<StatusIndicator>,
    },
    /// Category 10: the next byte is a DIR data reference.
    DirReference(u8),
    /// Categories 81 to 8F: reserved for future use.
    Rfu {
        /// The category indicator.
        category: u8,
        /// The bytes after it.
        data: &'a [u8],
    },
    /// Any other category indicator: proprietary format.
    Proprietary {
        /// The category indicator.
        category: u8,
        /// The bytes after it.
        data: &'a [u8],
    },
}

impl<'a> Historical<'a> {
    /// Decodes historical bytes that start at offset `base` of the ATR.
    fn decode(bytes: &'a [u8], base: usize) -> Result<Self, Error> {
        let mut c = Cursor::with_base(bytes, base);
        let Some(category) = c.peek_u8() else {
            return Ok(Self::Empty);
        };
        c.take_u8("category indicator")?;
        let data_offset = c.offset();
        let data = c.take_rest();
        // ISO/IEC 7816-4 §8.1.1.1 table 83 (category indicator byte).
        match category {
            // 00: COMPACT-TLV objects, then a mandatory 3-byte status indicator.
            0x00 => {
                let Some(split) = data.len().checked_sub(3) else {
                    return Err(Error::Truncated {
                        what: "status indicator (LCS SW1 SW2)",
                        offset: data_offset,
                        needed: 3,
                        available: data.len(),
                    });
                };
                let (objects, status) = data.split_at_checked(split).unwrap_or((&[], data));
                Ok(Self::CompactWithStatus {
                    objects: CompactObjects::decode(objects, data_offset)?,
                    status: StatusIndicator::decode(status, data_offset + split)?,
                })
            }
            // 80: COMPACT-TLV objects, possibly including the status indicator (tag 8).
            0x80 => {
                let objects = CompactObjects::decode(data, data_offset)?;
                let status = match objects.find(compact::STATUS_INDICATOR) {
                    Some(o) => Some(StatusIndicator::decode(o.value, o.offset)?),
                    None => None,
                };
                Ok(Self::Compact { objects, status })
            }
            // 10: the next byte is the DIR data reference.
            0x10 => {
                let mut c = Cursor::with_base(data, data_offset);
                let reference = c.take_u8("DIR data reference")?;
                c.finish("historical bytes after the DIR data reference")?;
                Ok(Self::DirReference(reference))
            }
            // 81 to 8F: RFU.
            0x81..=0x8F => Ok(Self::Rfu { category, data }),
            // Any other value: proprietary.
            _ => Ok(Self::Proprietary { category, data }),
        }
    }

    /// The category indicator byte, `None` for [`Historical::Empty`].
    pub fn category(&self) -> Option<u8> {
        match self {
            Self::Empty => None,
            Self::CompactWithStatus { .. } => Some(0x00),
            Self::Compact { .. } => Some(0x80),
            Self::DirReference(_) => Some(0x10),
            Self::Rfu { category, .. } | Self::Proprietary { category, .. } => Some(*category),
        }
    }

    /// The COMPACT-TLV objects, for categories 00 and 80.
    pub fn objects(&self) -> Option<CompactObjects<'a>> {
        match self {
            Self::CompactWithStatus { objects, .. } | Self::Compact { objects, .. } => {
                Some(*objects)
            }
            _ => None,
        }
    }

    /// The status indicator, if the format carries one.
    pub fn status(&self) -> Option<StatusIndicator> {
        match self {
            Self::CompactWithStatus { status, .. } => Some(*status),
            Self::Compact { status, .. } => *status,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;
    use alloc::vec;

    use crate::hex::{decode_lenient, encode_upper};

    fn atr(hex: &str) -> Atr {
        Atr::from_hex(hex).unwrap_or_else(|e| panic!("{hex}: {e}"))
    }

    use Convention::{Direct, Inverse};
    use TckStatus::{Absent, Correct, Wrong};

    /// (ATR, convention, protocols, Fi, Di, IFSC, TCK, historical bytes).
    type Card = (
        &'static str,
        Convention,
        &'static [u8],
        Option<u16>,
        Option<u8>,
        Option<u16>,
        TckStatus,
        &'static str,
    );

    /// ATRs of real cards, all from pcsc-tools' smartcard_list.txt (named as listed there).
    #[rustfmt::skip]
    const REAL_CARDS: &[Card] = &[
        // Yubico YubiKey 5 (CCID): T=1 only, TA1 13, IFSC FE, COMPACT-TLV with "YubiKey".
        ("3B FD 13 00 00 81 31 FE 15 80 73 C0 21 C0 57 59 75 62 69 4B 65 79 40", Direct, &[1], Some(372), Some(4), Some(254), Correct, "8073C021C057597562694B6579"),
        // "vsmartcard - iso7816" (the Nitrokey / trussed ATR): TD2 01 with no bytes, IFSC default.
        ("3B 95 13 81 01 80 73 FF 01 00 0B", Direct, &[1], Some(372), Some(4), Some(32), Correct, "8073FF0100"),
        // Yubico YubiKey 4: proprietary historical bytes "Yubikey4".
        ("3B F8 13 00 00 81 31 FE 15 59 75 62 69 6B 65 79 34 D4", Direct, &[1], Some(372), Some(4), Some(254), Correct, "597562696B657934"),
        // OpenPGP Card V2: T=1 and T=15 (global bytes), TC1 FF, Di 12, category 00.
        ("3B DA 18 FF 81 B1 FE 75 1F 03 00 31 C5 73 C0 01 40 00 90 00 0C", Direct, &[1], Some(372), Some(12), Some(254), Correct, "0031C573C00140009000"),
        // Smartcard-HSM (contact).
        ("3B FE 18 00 00 81 31 FE 45 80 31 81 54 48 53 4D 31 73 80 21 40 81 07 FA", Direct, &[1], Some(372), Some(12), Some(254), Correct, "8031815448534D31738021408107"),
        // Smartcard-HSM (Contactless Interface): T=0 and T=1, no TA1, IFSC default.
        ("3B 8E 80 01 80 31 81 54 48 53 4D 31 73 80 21 40 81 07 18", Direct, &[0, 1], Some(372), Some(1), Some(32), Correct, "8031815448534D31738021408107"),
        // Gemalto IDPrime MD: no TD1 (T=0 only, no TCK), TA1 96.
        ("3B 7F 96 00 00 80 31 80 65 B0 84 41 3D F6 12 0F FE 82 90 00", Direct, &[0], Some(512), Some(32), None, Absent, "80318065B084413DF6120FFE829000"),
        // US Department of Defense, TEST Common Access Card (CAC): no TA1, proprietary.
        ("3B 65 00 00 9C 02 02 07 02", Direct, &[0], Some(372), Some(1), None, Absent, "9C02020702"),
        // Estonian Identity Card (EstEID v1.0 2006 warm): "EstEID ver 1.0".
        ("3B 5E 11 FF 45 73 74 45 49 44 20 76 65 72 20 31 2E 30", Direct, &[0], Some(372), Some(1), None, Absent, "4573744549442076657220312E30"),
        // Belgium Electronic eID card: TA1 30 (DI 0 is RFU), TD1 40 (explicit T=0), TC2 0A.
        ("3B 98 30 40 0A A5 03 01 01 01 AD 13 11", Direct, &[0], Some(744), None, None, Absent, "A503010101AD1311"),
        // dnie (eID): TA1 7F, both FI 7 and DI F are RFU.
        ("3B 3B 7F 38 00 00 00 6A 44 4E 49 65 10 02 4C", Direct, &[0], None, None, None, Absent, "0000006A444E496510024C"),
        // NXP JCOP CJ3A081 (NFC): the PC/SC contactless ATR, T=0 and T=1.
        ("3B 8A 80 01 4A 33 41 30 38 31 56 32 34 31 6B", Direct, &[0, 1], Some(372), Some(1), Some(32), Correct, "4A334130383156323431"),
        // NXP J3D081 (JavaCard): no TA1, T=1, IFSC FE.
        ("3B E9 00 00 81 31 FE 45 4A 43 4F 50 32 34 32 52 32 A0", Direct, &[1], Some(372), Some(1), Some(254), Correct, "4A434F503234325232"),
        // "Nitrokey 3C NFC": TD1 01, COMPACT-TLV "Nitrokey 3".
        ("3B 8C 01 80 5A 4E 69 74 72 6F 6B 65 79 20 33 7D", Direct, &[1], Some(372), Some(1), Some(32), Correct, "805A4E6974726F6B65792033"),
        // eToken R2 2242: TD1 indicates T=15 (invalid in TD1), so T=0 by default, TCK present.
        ("3B 81 1F 00 CC 52", Direct, &[0], Some(372), Some(1), None, Correct, "CC"),
        // iClass SE Processor: TA2 specific mode, no historical bytes.
        ("3B 90 96 91 81 B1 FE 55 1F C7 D4", Direct, &[1], Some(512), Some(32), Some(254), Correct, ""),
        // GoldKey Security PIV Token: IFSC 80.
        ("3B 94 18 81 B1 80 7D 1F 03 19 C8 00 50 DC", Direct, &[1], Some(372), Some(12), Some(128), Correct, "19C80050"),
        // Atmel/Athena T0 Inverse Convention PC/SC Compliance Test Card No. 2.
        ("3F 96 18 80 01 80 51 00 61 10 30 9F", Inverse, &[0, 1], Some(372), Some(12), Some(32), Correct, "805100611030"),
        // Gemplus GemXplore: inverse, T=0 only, status indicator as COMPACT-TLV tag 8.
        ("3F 2F 00 80 59 AF 02 01 01 30 00 00 0A 0E 83 06 9F 12", Inverse, &[0], Some(372), Some(1), None, Absent, "8059AF0201013000000A0E83069F12"),
        // TVA Digital - Nagra Vision ID TV-01: inverse, T=1, TA2 specific mode.
        ("3F FF 95 00 FF 91 81 71 FE 47 00 44 4E 41 53 50 31 31 30 20 52 65 76 41 30 31 14", Inverse, &[1], Some(512), Some(16), Some(254), Correct, "444E41535031313020526576413031"),
        // NXP SAM AV3 module: T=1 with TC3, T=15 with TA4 and TB4.
        ("3B DF 18 FF 81 F1 FE 43 00 3F 07 83 4D 49 46 41 52 45 20 53 41 4D 20 41 56 33 30 11", Direct, &[1], Some(372), Some(12), Some(254), Correct, "4D49464152452053414D2041563330"),
        // Schlumberger Cryptoflex 8k (no RSA key generation): TC2 20.
        ("3B 85 40 20 68 01 01 00 00", Direct, &[0], Some(372), Some(1), None, Absent, "6801010000"),
        // Inside Secure VaultIC 460 Smart Object: TA2 80 (specific mode T=0).
        ("3B 9F 11 10 80 56 61 75 6C 74 49 43 20 34 36 30 31 2E 30 32", Direct, &[0], Some(372), Some(1), None, Absent, "5661756C74494320343630312E3032"),
        // Visa (Bank): category indicator 10, DIR data reference 50.
        ("3B 02 10 50", Direct, &[0], Some(372), Some(1), None, Absent, "1050"),
        // VISA DEBIT (Bank): category indicator 82 (RFU).
        ("3B 04 82 23 10 91", Direct, &[0], Some(372), Some(1), None, Absent, "82231091"),
        // ISO 14443 Type B without historical bytes.
        ("3B 80 80 01 01", Direct, &[0, 1], Some(372), Some(1), Some(32), Correct, ""),
        // RFID - ISO 14443 Type A - NXP DESFire or DESFire EV1 or EV2.
        ("3B 81 80 01 80 80", Direct, &[0, 1], Some(372), Some(1), Some(32), Correct, "80"),
        // Desfire (eID): the listed TCK is wrong (0F expected).
        ("3B 86 80 01 06 75 77 81 02 8F 00", Direct, &[0, 1], Some(372), Some(1), Some(32), Wrong, "06757781028F"),
        // MULTOS (PKI): the listed TCK is wrong (68 expected).
        ("3B 88 80 01 00 00 00 00 77 83 95 00 00", Direct, &[0, 1], Some(372), Some(1), Some(32), Wrong, "0000000077839500"),
        // giffgaff UK 3G SIM: T=0 and T=15, so TCK present.
        ("3B 9F 96 80 1F C7 80 31 E0 73 FE 21 1B 63 40 41 91 83 07 90 00 50", Direct, &[0], Some(512), Some(32), None, Correct, "8031E073FE211B6340419183079000"),
        // Old MobilCOM GSM (Telecom D1): TD1 00, explicit T=0, no TCK.
        ("3B 81 00 20", Direct, &[0], Some(372), Some(1), None, Absent, "20"),
        // Sonera UICC: T=0, T=1 and T=15, TC2 0A, TA1 94.
        ("3B FF 94 00 00 C0 0A B1 FE 49 1F 43 80 31 E0 73 F6 21 13 57 34 36 43 41 32 30 20 68", Direct, &[0, 1], Some(512), Some(8), Some(254), Correct, "8031E073F621135734364341323020"),
        // MasterCard - Intesa Sanpaolo Bank / Italy: category 80 with status indicator 83.
        ("3B 68 00 00 80 62 00 45 83 00 90 00", Direct, &[0], Some(372), Some(1), None, Absent, "8062004583009000"),
        // Rompetrol Romania Fill&Go Fuel Card: category 00 without its status indicator.
        ("3B 81 01 00 80", Direct, &[1], Some(372), Some(1), Some(32), Correct, "00"),
        // Laundromat payment card: category 00, status indicator only.
        ("3B 04 00 00 00 00", Direct, &[0], Some(372), Some(1), None, Absent, "00000000"),
        // Philips DESFire SAM: TA1 A8 (Fi 768, f max 7.5 MHz), IFSC FB.
        ("3B D0 A8 FF 81 F1 FB 24 00 1F C3 F4", Direct, &[1], Some(768), Some(12), Some(251), Correct, ""),
        // Infineon SLE88CFX4000P: TA1 D6 (Fi 2048), T=0, T=1, T=15, IFSC A0.
        ("3B 9F D6 80 B1 A0 59 1F C7 53 4C 45 38 38 5F 50 53 4C 5F 56 30 2E 35 30 01", Direct, &[0, 1], Some(2048), Some(32), Some(160), Correct, "534C4538385F50534C5F56302E3530"),
    ];

    #[test]
    fn real_cards() {
        assert!(REAL_CARDS.len() >= 30);
        for &(hex, convention, protocols, fi, di, ifsc, tck, historical) in REAL_CARDS {
            let a = atr(hex);
            assert_eq!(a.to_string(), hex, "Display round-trips");
            assert_eq!(a.convention(), convention, "{hex}: convention");
            assert_eq!(a.protocols(), protocols, "{hex}: protocols");
            assert_eq!((a.fi(), a.di()), (fi, di), "{hex}: Fi/Di");
            assert_eq!(a.ifsc(), ifsc, "{hex}: IFSC");
            assert_eq!(a.tck(), tck, "{hex}: TCK");
            assert_eq!(encode_upper(a.historical()), historical, "{hex}: historical bytes");
            assert_eq!(a.k(), historical.len() / 2, "{hex}: K");
            assert_eq!(a.tck_byte().is_some(), tck != Absent, "{hex}: TCK byte");
            // Lengths computed from the groups add up to the input.
            let interface: usize = a
                .interface_bytes()
                .iter()
                .map(|g| [g.ta, g.tb, g.tc, g.td].iter().flatten().count())
                .sum();
            assert_eq!(2 + interface + a.k() + usize::from(tck != Absent), a.bytes().len());
        }
    }

    #[test]
    fn yubikey_5() {
        // Yubico YubiKey 5 (smartcard_list.txt "Yubico YubiKey 5 NFC (PKI)" family).
        let a = atr("3B FD 13 00 00 81 31 FE 15 80 73 C0 21 C0 57 59 75 62 69 4B 65 79 40");
        assert_eq!(a.t0(), 0xFD);
        assert_eq!(
            a.interface_bytes(),
            &[
                InterfaceBytes { ta: Some(0x13), tb: Some(0x00), tc: Some(0x00), td: Some(0x81) },
                InterfaceBytes { ta: None, tb: None, tc: None, td: Some(0x31) },
                InterfaceBytes { ta: Some(0xFE), tb: Some(0x15), tc: None, td: None },
            ]
        );
        assert_eq!((a.fi_index(), a.di_index()), (1, 3));
        assert_eq!(a.f_max_khz(), Some(5_000));
        assert_eq!(a.f_max_mhz(), Some(5.0));
        assert_eq!(a.extra_guard_time(), 0);
        assert_eq!(a.specific_mode(), None);
        assert_eq!(a.t1(), Some(T1Parameters { ifsc: 254, bwi: 1, cwi: 5, edc: EdcKind::Lrc }));
        assert_eq!(a.class_indicator(), None);
        assert_eq!(a.tck_byte(), Some(0x40));
        assert_eq!(a.expected_tck(), Some(0x40));
        assert_eq!(a.historical_offset(), 9);
        let info = a.historical_info().unwrap();
        assert_eq!(info.category(), Some(0x80));
        assert_eq!(info.status(), None);
        let objects: Vec<_> = info.objects().unwrap().iter().collect();
        assert_eq!(
            objects,
            vec![
                CompactTlv { tag: 7, value: &[0xC0, 0x21, 0xC0], offset: 10 },
                CompactTlv { tag: 5, value: b"YubiKey", offset: 14 },
            ]
        );
        assert_eq!(format!("{a:?}"), format!("Atr({a})"));
    }

    #[test]
    fn trussed_defaults_for_t1() {
        // "vsmartcard - iso7816" in smartcard_list.txt, the ATR of Nitrokey 3 / trussed: TD2 01
        // announces nothing, so every T=1 parameter has its default.
        let a = atr("3B 95 13 81 01 80 73 FF 01 00 0B");
        assert_eq!(a.interface_bytes().len(), 3);
        assert_eq!(a.interface(3), Some(&InterfaceBytes::default()));
        assert_eq!(a.td(2), Some(0x01));
        assert_eq!(a.first_ta_for(1), None);
        assert_eq!(
            a.t1(),
            Some(T1Parameters {
                ifsc: DEFAULT_IFSC,
                bwi: DEFAULT_BWI,
                cwi: DEFAULT_CWI,
                edc: EdcKind::Lrc,
            })
        );
        assert_eq!((a.bwi(), a.cwi()), (Some(4), Some(13)));
        assert!(matches!(a.historical_info(), Ok(Historical::Compact { status: None, .. })));
    }

    #[test]
    fn openpgp_card_global_t15_and_category_00() {
        // OpenPGP Card V2.
        let a = atr("3B DA 18 FF 81 B1 FE 75 1F 03 00 31 C5 73 C0 01 40 00 90 00 0C");
        assert_eq!(a.extra_guard_time(), 255);
        assert_eq!(a.t1().map(|t| (t.bwi, t.cwi)), Some((7, 5)));
        let class = a.class_indicator().unwrap();
        assert_eq!(class, ClassIndicator(0x03));
        assert_eq!(class.clock_stop(), ClockStop::NotSupported);
        assert!(class.class_a() && class.class_b() && !class.class_c());
        assert_eq!(a.spu(), None);
        let info = a.historical_info().unwrap();
        let Historical::CompactWithStatus { objects, status } = info else {
            panic!("category 00 expected, got {info:?}");
        };
        assert_eq!(status, StatusIndicator { lcs: Some(0), sw: Some(StatusWord::SUCCESS) });
        let tags: Vec<_> = objects.iter().map(|o| (o.tag, o.value, o.offset)).collect();
        assert_eq!(tags, vec![(3, &[0xC5][..], 11), (7, &[0xC0, 0x01, 0x40][..], 13)]);
        assert_eq!(objects.find(compact::CARD_SERVICE_DATA).unwrap().value, &[0xC5]);
        assert_eq!(objects.as_bytes(), &[0x31, 0xC5, 0x73, 0xC0, 0x01, 0x40]);
    }

    #[test]
    fn nxp_sam_t1_edc_and_t15_bytes() {
        // NXP SAM AV3 module: TC3 00 (LRC), TA4 07 (classes A, B, C), TB4 83 (SPU).
        let a = atr(
            "3B DF 18 FF 81 F1 FE 43 00 3F 07 83 4D 49 46 41 52 45 20 53 41 4D 20 41 56 33 30 11",
        );
        assert_eq!(a.first_tc_for(1), Some(0x00));
        assert_eq!(a.t1().unwrap().edc, EdcKind::Lrc);
        let class = a.class_indicator().unwrap();
        assert!(class.class_a() && class.class_b() && class.class_c());
        assert_eq!(class.classes(), 0x07);
        assert_eq!(a.spu(), Some(0x83));
        // Proprietary historical bytes: "MIFARE SAM AV30".
        assert_eq!(
            a.historical_info(),
            Ok(Historical::Proprietary { category: 0x4D, data: b"IFARE SAM AV30" })
        );
    }

    #[test]
    fn uicc_t0_t1_t15() {
        // Sonera UICC: TDs say T=0, T=1, T=15; TC2 0A; TA4 43.
        let a = atr(
            "3B FF 94 00 00 C0 0A B1 FE 49 1F 43 80 31 E0 73 F6 21 13 57 34 36 43 41 32 30 20 68",
        );
        let tds: Vec<_> = a.interface_bytes().iter().filter_map(|g| g.protocol()).collect();
        assert_eq!(tds, vec![0, 1, 15]);
        assert_eq!(a.protocols(), &[0, 1]);
        assert!(a.offers(0) && a.offers(1) && !a.offers(15));
        assert_eq!(a.wi(), Some(10));
        assert_eq!((a.fi_index(), a.di_index()), (9, 4));
        assert_eq!(a.f_max_mhz(), Some(5.0));
        let class = a.class_indicator().unwrap();
        assert_eq!(class.clock_stop(), ClockStop::StateL);
        assert_eq!(class.classes(), 0x03);
        assert_eq!(a.t1().unwrap().bwi, 4);
        assert_eq!(a.t1().unwrap().cwi, 9);
    }

    #[test]
    fn specific_mode_ta2() {
        // iClass SE Processor: TA2 81, T=1, unable to change, parameters from TA1.
        let a = atr("3B 90 96 91 81 B1 FE 55 1F C7 D4");
        assert_eq!(
            a.specific_mode(),
            Some(SpecificMode { protocol: 1, changeable: false, implicit_parameters: false })
        );
        assert_eq!(a.class_indicator().unwrap().clock_stop(), ClockStop::NoPreference);
        assert_eq!(a.historical_info(), Ok(Historical::Empty));
        // Inside Secure VaultIC 460: TA2 80, T=0.
        let a = atr("3B 9F 11 10 80 56 61 75 6C 74 49 43 20 34 36 30 31 2E 30 32");
        assert_eq!(
            a.specific_mode(),
            Some(SpecificMode { protocol: 0, changeable: false, implicit_parameters: false })
        );
        // eToken R2 2242: TA2 00 after a TD1 indicating T=15.
        let a = atr("3B 81 1F 00 CC 52");
        assert_eq!(
            a.specific_mode(),
            Some(SpecificMode { protocol: 0, changeable: true, implicit_parameters: false })
        );
        // TA2 with bit 5: synthetic variant of the eToken ATR (TA2 10, TCK adjusted).
        let a = atr("3B 81 1F 10 CC 42");
        assert_eq!(a.tck(), Correct);
        assert!(a.specific_mode().unwrap().implicit_parameters);
    }

    #[test]
    fn t0_waiting_integer_tc2() {
        // Schlumberger Cryptoflex 8k: TC2 20.
        assert_eq!(atr("3B 85 40 20 68 01 01 00 00").wi(), Some(0x20));
        // Gemalto IDPrime MD: no TC2.
        assert_eq!(
            atr("3B 7F 96 00 00 80 31 80 65 B0 84 41 3D F6 12 0F FE 82 90 00").wi(),
            Some(10)
        );
        // TC2 00 is RFU (synthetic variant of the Cryptoflex ATR).
        assert_eq!(atr("3B 85 40 00 68 01 01 00 00").wi(), None);
    }

    #[test]
    fn fi_di_defaults_and_rfu() {
        // US DoD TEST CAC: no TA1, defaults Fi 372, Di 1, f max 5 MHz.
        let a = atr("3B 65 00 00 9C 02 02 07 02");
        assert_eq!(a.ta1(), None);
        assert_eq!((a.fi_index(), a.di_index()), (1, 1));
        assert_eq!((a.fi(), a.di(), a.f_max_mhz()), (Some(372), Some(1), Some(5.0)));
        // Belgium Electronic eID card: TA1 30, DI 0 is RFU.
        let a = atr("3B 98 30 40 0A A5 03 01 01 01 AD 13 11");
        assert_eq!((a.fi(), a.di(), a.f_max_khz()), (Some(744), None, Some(8_000)));
        // dnie: TA1 7F, FI 7 and DI F are RFU.
        let a = atr("3B 3B 7F 38 00 00 00 6A 44 4E 49 65 10 02 4C");
        assert_eq!((a.fi_index(), a.di_index()), (7, 15));
        assert_eq!((a.fi(), a.di(), a.f_max_mhz()), (None, None, None));
        // Philips DESFire SAM: TA1 A8, f max 7.5 MHz.
        let a = atr("3B D0 A8 FF 81 F1 FB 24 00 1F C3 F4");
        assert_eq!((a.fi(), a.di(), a.f_max_mhz()), (Some(768), Some(12), Some(7.5)));
        // Table 7, FI 0: Fi 372 with f max 4 MHz (synthetic).
        let a = atr("3B 10 01");
        assert_eq!((a.fi(), a.di(), a.f_max_mhz()), (Some(372), Some(1), Some(4.0)));
    }

    #[test]
    fn every_table_entry() {
        // ISO/IEC 7816-3 tables 7 and 8, all 16 codes each, through TA1 of "3B 10 xx".
        let fi = [372, 372, 558, 744, 1116, 1488, 1860, 0, 0, 512, 768, 1024, 1536, 2048, 0, 0];
        let fmax =
            [4.0, 5.0, 6.0, 8.0, 12.0, 16.0, 20.0, 0.0, 0.0, 5.0, 7.5, 10.0, 15.0, 20.0, 0.0, 0.0];
        let di = [0, 1, 2, 4, 8, 16, 32, 64, 12, 20, 0, 0, 0, 0, 0, 0];
        for code in 0..16u8 {
            let a = Atr::parse(&[0x3B, 0x10, code << 4 | 1]).unwrap();
            let i = usize::from(code);
            assert_eq!(a.fi(), (fi[i] != 0).then_some(fi[i]), "FI {code}");
            assert_eq!(a.f_max_mhz(), (fmax[i] != 0.0).then_some(fmax[i]), "FI {code}");
            let a = Atr::parse(&[0x3B, 0x10, 0x10 | code]).unwrap();
            assert_eq!(a.di(), (di[i] != 0).then_some(di[i]), "DI {code}");
        }
    }

    #[test]
    fn inverse_convention() {
        // Atmel/Athena T0 Inverse Convention PC/SC Compliance Test Card No. 2.
        let a = atr("3F 96 18 80 01 80 51 00 61 10 30 9F");
        assert_eq!(a.ts(), 0x3F);
        assert_eq!(a.convention(), Inverse);
        // The same TS read with the wrong convention is 03, which is not a TS.
        assert_eq!(
            Atr::from_hex("03 96 18 80 01 80 51 00 61 10 30 9F"),
            Err(Error::InvalidTs { ts: 0x03 })
        );
    }

    #[test]
    fn historical_categories() {
        // Visa (Bank): category 10, DIR data reference 50.
        assert_eq!(atr("3B 02 10 50").historical_info(), Ok(Historical::DirReference(0x50)));
        // VISA DEBIT (Bank): category 82 is RFU.
        assert_eq!(
            atr("3B 04 82 23 10 91").historical_info(),
            Ok(Historical::Rfu { category: 0x82, data: &[0x23, 0x10, 0x91] })
        );
        // US DoD TEST CAC: proprietary category 9C.
        assert_eq!(
            atr("3B 65 00 00 9C 02 02 07 02").historical_info(),
            Ok(Historical::Proprietary { category: 0x9C, data: &[0x02, 0x02, 0x07, 0x02] })
        );
        // Laundromat payment card: category 00 with no objects, status 00 0000.
        let a = atr("3B 04 00 00 00 00");
        let info = a.historical_info().unwrap();
        assert_eq!(info.objects().unwrap().iter().count(), 0);
        assert_eq!(info.status(), Some(StatusIndicator { lcs: Some(0), sw: Some(StatusWord(0)) }));
        // Gemplus GemXplore (inverse): category 80, status indicator 83 06 9F 12 as tag 8.
        let a = atr("3F 2F 00 80 59 AF 02 01 01 30 00 00 0A 0E 83 06 9F 12");
        let info = a.historical_info().unwrap();
        assert_eq!(
            info.status(),
            Some(StatusIndicator { lcs: Some(0x06), sw: Some(StatusWord(0x9F12)) })
        );
        assert_eq!(info.objects().unwrap().iter().count(), 2);
        // Gemalto IDPrime MD: tag 8 with two bytes is SW1 SW2 only.
        let a = atr("3B 7F 96 00 00 80 31 80 65 B0 84 41 3D F6 12 0F FE 82 90 00");
        let info = a.historical_info().unwrap();
        assert_eq!(
            info.status(),
            Some(StatusIndicator { lcs: None, sw: Some(StatusWord::SUCCESS) })
        );
        let names: Vec<_> = info.objects().unwrap().iter().map(|o| o.name()).collect();
        assert_eq!(
            names,
            vec![
                Some("card service data"),
                Some("pre-issuing data"),
                Some("country code"),
                Some("status indicator")
            ]
        );
        // MasterCard - Intesa Sanpaolo: 83 00 90 00.
        let a = atr("3B 68 00 00 80 62 00 45 83 00 90 00");
        let info = a.historical_info().unwrap();
        assert_eq!(
            info.status(),
            Some(StatusIndicator { lcs: Some(0), sw: Some(StatusWord::SUCCESS) })
        );
        // ISO 14443 Type B without historical bytes.
        assert_eq!(atr("3B 80 80 01 01").historical_info(), Ok(Historical::Empty));
    }

    #[test]
    fn broken_historical_bytes_do_not_fail_the_atr() {
        // Rompetrol Romania Fill&Go Fuel Card: category 00 but no room for the status indicator.
        let a = atr("3B 81 01 00 80");
        assert_eq!(a.tck(), Correct);
        assert_eq!(
            a.historical_info(),
            Err(Error::Truncated {
                what: "status indicator (LCS SW1 SW2)",
                offset: 4,
                needed: 3,
                available: 0
            })
        );
        // Category 80 with an object running past the end (synthetic, TCK adjusted).
        let a = Atr::parse(&[0x3B, 0x83, 0x01, 0x80, 0x73, 0xC0, 0xB1]).unwrap();
        assert_eq!(a.tck(), Correct);
        assert_eq!(
            a.historical_info(),
            Err(Error::LengthOverrun { offset: 4, len: 3, available: 1 })
        );
        // Category 80 with a 4-byte status indicator (synthetic, no TCK).
        let a = atr("3B 06 80 84 01 02 03 04");
        assert_eq!(
            a.historical_info(),
            Err(Error::InvalidHistorical {
                offset: 3,
                reason: "status indicator must be 1, 2 or 3 bytes"
            })
        );
        // Category 10 followed by two bytes (synthetic).
        assert_eq!(
            atr("3B 03 10 50 51").historical_info(),
            Err(Error::TrailingBytes {
                what: "historical bytes after the DIR data reference",
                offset: 4,
                count: 1
            })
        );
        // Category 10 alone (synthetic).
        assert!(matches!(
            atr("3B 01 10").historical_info(),
            Err(Error::Truncated { offset: 3, .. })
        ));
    }

    #[test]
    fn wrong_tck_is_reported_not_rejected() {
        // Desfire (eID) and MULTOS (PKI): listed with a wrong TCK.
        let a = atr("3B 86 80 01 06 75 77 81 02 8F 00");
        assert_eq!(a.tck(), Wrong);
        assert_eq!((a.tck_byte(), a.expected_tck()), (Some(0x00), Some(0x0F)));
        let a = atr("3B 88 80 01 00 00 00 00 77 83 95 00 00");
        assert_eq!(a.tck(), Wrong);
        assert_eq!(a.expected_tck(), Some(0x68));
        // T=0 only: no TCK to check.
        let a = atr("3B 81 00 20");
        assert_eq!((a.tck(), a.tck_byte(), a.expected_tck()), (Absent, None, None));
    }

    #[test]
    fn tck_presence_rules() {
        // giffgaff UK 3G SIM: T=0 and T=15 require TCK.
        assert_eq!(
            atr("3B 9F 96 80 1F C7 80 31 E0 73 FE 21 1B 63 40 41 91 83 07 90 00 50").tck(),
            Correct
        );
        // Microsoft Virtual Smart Card 0 (as listed): T=1 but no TCK.
        assert_eq!(
            Atr::from_hex("3B 8D 01 80 FB A0 00 00 03 97 42 54 46 59 04 01"),
            Err(Error::AtrTruncated { missing: AtrField::Tck, offset: 16 })
        );
        // Alice Tv italia (as listed): T=0 only, so the last byte is one too many.
        assert_eq!(
            Atr::from_hex("3B 67 00 FF C5 00 00 FF FF FF FF 5D"),
            Err(Error::TrailingBytes {
                what: "ATR after the historical bytes",
                offset: 11,
                count: 1
            })
        );
    }

    #[test]
    fn lengths() {
        assert_eq!(Atr::parse(&[]), Err(Error::AtrTooShort { len: 0 }));
        assert_eq!(Atr::parse(&[0x3B]), Err(Error::AtrTooShort { len: 1 }));
        // The shortest ATR: TS T0 with nothing announced.
        let a = atr("3B 00");
        assert_eq!((a.protocols(), a.k(), a.tck()), (&[0u8][..], 0, Absent));
        assert_eq!(a.interface_bytes(), &[InterfaceBytes::default()]);
        // Oberthur USIM card, listed with reader padding after the TCK: 10 trailing bytes.
        let padded = "3B 9F 96 80 1F C7 80 31 E0 73 FE 21 1B 64 07 59 51 00 82 90 00 CE 00 00 00 00 00 00 00 00 00 00";
        assert_eq!(
            Atr::from_hex(padded),
            Err(Error::TrailingBytes { what: "ATR after TCK", offset: 22, count: 10 })
        );
        let mut bytes = decode_lenient(padded).unwrap();
        assert_eq!(Atr::parse(&bytes[..22]).unwrap().tck(), Correct);
        // 33 bytes is still a length to look at; 34 is too long, whatever the content.
        bytes.resize(33, 0);
        assert!(matches!(Atr::parse(&bytes), Err(Error::TrailingBytes { count: 11, .. })));
        bytes.push(0);
        assert_eq!(Atr::parse(&bytes), Err(Error::AtrTooLong { len: 34 }));
        bytes[0] = 0x00;
        assert_eq!(Atr::parse(&bytes), Err(Error::AtrTooLong { len: 34 }));
        // A long valid chain (synthetic): T0 8F, TD1 to TD13 = 81 (T=1, next TD), TD14 = 01,
        // 15 historical bytes and TCK: 15 groups, 32 bytes.
        let mut long = vec![
            0x3B, 0x8F, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81,
            0x81, 0x01,
        ];
        long.extend_from_slice(b"fifteen bytes!!");
        let tck = long[1..].iter().fold(0, |x, b| x ^ b);
        long.push(tck);
        assert_eq!(long.len(), 32);
        let a = Atr::parse(&long).unwrap();
        assert_eq!((a.interface_bytes().len(), a.protocols(), a.tck()), (15, &[1u8][..], Correct));
    }

    #[test]
    fn truncated_at_every_byte() {
        // NXP SAM AV3 module: TS T0 TA1 TC1 TD1 TD2 TA3 TB3 TC3 TD3 TA4 TB4, 15 historical, TCK.
        let full = decode_lenient(
            "3B DF 18 FF 81 F1 FE 43 00 3F 07 83 4D 49 46 41 52 45 20 53 41 4D 20 41 56 33 30 11",
        )
        .unwrap();
        let fields = [
            AtrField::Ta(1),
            AtrField::Tc(1),
            AtrField::Td(1),
            AtrField::Td(2),
            AtrField::Ta(3),
            AtrField::Tb(3),
            AtrField::Tc(3),
            AtrField::Td(3),
            AtrField::Ta(4),
            AtrField::Tb(4),
        ];
        for len in 0..full.len() {
            let got = Atr::parse(&full[..len]);
            let missing = match len {
                0 | 1 => {
                    assert_eq!(got, Err(Error::AtrTooShort { len }));
                    continue;
                }
                2..=11 => fields[len - 2],
                12..=26 => AtrField::Historical { index: (len - 11) as u8, count: 15 },
                _ => AtrField::Tck,
            };
            assert_eq!(got, Err(Error::AtrTruncated { missing, offset: len }), "length {len}");
        }
        assert!(Atr::parse(&full).is_ok());
    }

    #[test]
    fn error_messages_name_the_missing_byte() {
        let e = Atr::from_hex("3B DF 18 FF 81 F1 FE").unwrap_err();
        assert_eq!(e.to_string(), "ATR truncated at offset 7: TB3 missing");
        let e = Atr::from_hex("3B 02 10").unwrap_err();
        assert_eq!(e.to_string(), "ATR truncated at offset 3: historical byte 2 of 2 missing");
        assert_eq!(AtrField::Tck.to_string(), "TCK");
        assert_eq!(AtrField::Td(12).to_string(), "TD12");
    }

    #[test]
    fn never_panics_on_generated_input() {
        // Every T0, every fill byte pattern, every length up to 34; all accessors exercised.
        let mut parsed = 0;
        for ts in [0x3B, 0x3F, 0x00] {
            for t0 in 0..=255u8 {
                for fill in [0x00, 0x01, 0x11, 0x80, 0x81, 0xF1, 0xFF] {
                    for len in 0..=34 {
                        let mut input = vec![fill; len];
                        if let Some(first) = input.get_mut(0) {
                            *first = ts;
                        }
                        if let Some(second) = input.get_mut(1) {
                            *second = t0;
                        }
                        let Ok(a) = Atr::parse(&input) else { continue };
                        parsed += 1;
                        assert_eq!(a.bytes(), &input[..]);
                        let _ = (a.fi(), a.di(), a.f_max_mhz(), a.wi(), a.specific_mode());
                        let _ = (a.t1(), a.class_indicator(), a.spu(), a.tck(), a.expected_tck());
                        let _ = a.historical_info().map(|h| h.objects().map(|o| o.iter().count()));
                        assert!(!a.protocols().is_empty() && !a.protocols().contains(&15));
                        assert_eq!(a.to_string().len(), input.len() * 3 - 1);
                    }
                }
            }
        }
        assert!(parsed > 1000, "{parsed}");
    }

    #[test]
    fn conversions() {
        let bytes = [0x3B, 0x02, 0x10, 0x50];
        let a = Atr::try_from(&bytes[..]).unwrap();
        assert_eq!(a.as_ref(), &bytes);
        assert_eq!(a.bytes(), &bytes);
        assert_eq!(Atr::from_hex("3b:02:10:50").unwrap(), a);
        assert!(matches!(Atr::from_hex("3B 0"), Err(Error::InvalidHex { .. })));
    }
}
