//! The Smart Card Device Class descriptor (CCID Rev 1.1 §5.1, table 5.1-1): 54 bytes of type
//! 21h that follow the interface descriptor of a CCID interface.
//!
//! [`ClassDescriptor::parse`] checks bLength and bDescriptorType and keeps every field; the
//! bit fields are open newtypes ([`Features`], [`Protocols`], [`VoltageSupport`],
//! [`Mechanical`], [`PinSupport`]) whose unknown bits survive. Consistency the slot engine
//! needs (one exchange level) is checked where it is used, by
//! [`ClassDescriptor::exchange_level`].

use core::fmt;

use crate::error::Error;
use scard_iso7816::cursor::Cursor;

/// bDescriptorType of the CCID class descriptor (CCID §5.1).
pub const DESCRIPTOR_TYPE: u8 = 0x21;
/// bLength of the CCID class descriptor (CCID §5.1: 36h).
pub const DESCRIPTOR_LEN: usize = 54;
/// The CCID header in front of abData in every bulk message (CCID §6.1, §6.2).
pub const HEADER_LEN: usize = 10;
/// The largest IFSD ISO/IEC 7816-3 allows (§11.4.2: 01 to FE).
pub const MAX_IFS: u8 = 254;

/// bVoltageSupport (CCID §5.1 offset 5): 01h 5.0 V, 02h 3.0 V, 04h 1.8 V.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VoltageSupport(pub u8);

impl VoltageSupport {
    /// Class A, 5.0 V.
    pub const V5_0: u8 = 0x01;
    /// Class B, 3.0 V.
    pub const V3_0: u8 = 0x02;
    /// Class C, 1.8 V.
    pub const V1_8: u8 = 0x04;

    /// Whether the reader can supply 5.0 V.
    pub fn v5_0(self) -> bool {
        self.0 & Self::V5_0 != 0
    }
    /// Whether the reader can supply 3.0 V.
    pub fn v3_0(self) -> bool {
        self.0 & Self::V3_0 != 0
    }
    /// Whether the reader can supply 1.8 V.
    pub fn v1_8(self) -> bool {
        self.0 & Self::V1_8 != 0
    }
}

impl fmt::Debug for VoltageSupport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VoltageSupport({:#04X}", self.0)?;
        for (on, name) in [(self.v5_0(), " 5.0V"), (self.v3_0(), " 3.0V"), (self.v1_8(), " 1.8V")] {
            if on {
                f.write_str(name)?;
            }
        }
        f.write_str(")")
    }
}

/// dwProtocols (CCID §5.1 offset 6): bit 0 T=0, bit 1 T=1; the high word is RFU.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Protocols(pub u32);

impl Protocols {
    /// T=0.
    pub const T0: u32 = 0x0001;
    /// T=1.
    pub const T1: u32 = 0x0002;

    /// Whether the reader supports T=0.
    pub fn t0(self) -> bool {
        self.0 & Self::T0 != 0
    }
    /// Whether the reader supports T=1.
    pub fn t1(self) -> bool {
        self.0 & Self::T1 != 0
    }
    /// Whether the reader supports protocol `t` (0 or 1).
    pub fn supports(self, t: u8) -> bool {
        match t {
            0 => self.t0(),
            1 => self.t1(),
            _ => false,
        }
    }
}

impl fmt::Debug for Protocols {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Protocols({:#010X}", self.0)?;
        if self.t0() {
            f.write_str(" T=0")?;
        }
        if self.t1() {
            f.write_str(" T=1")?;
        }
        f.write_str(")")
    }
}

/// Declares a bit-set newtype over u32 with named flags and a Debug listing them.
macro_rules! flags32 {
    ($(#[$meta:meta])* $ty:ident; $( $(#[$doc:meta])* $name:ident = $value:literal, $label:literal; )*) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $ty(pub u32);

        impl $ty {
            $( $(#[$doc])* pub const $name: u32 = $value; )*
            const NAMES: &'static [(u32, &'static str)] = &[$( ($value, $label), )*];

            /// Whether every bit of `flag` is set.
            pub fn contains(self, flag: u32) -> bool {
                self.0 & flag == flag
            }

            /// The names of the set bits that have one.
            pub fn names(self) -> impl Iterator<Item = &'static str> {
                Self::NAMES.iter().filter(move |(bit, _)| *bit != 0 && self.0 & bit == *bit).map(|(_, n)| *n)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:#010X}", stringify!($ty), self.0)?;
                for name in self.names() {
                    write!(f, " {name}")?;
                }
                f.write_str(")")
            }
        }
    };
}

flags32! {
    /// dwFeatures (CCID §5.1 offset 40). The exchange level is one of the 0x00070000 bits (none
    /// set means character level); see [`Features::exchange_level`].
    Features;
    /// 02h: automatic parameter configuration based on ATR data.
    AUTO_PARAMETERS_FROM_ATR = 0x0000_0002, "auto-parameters-from-ATR";
    /// 04h: automatic activation of ICC on inserting.
    AUTO_ACTIVATION = 0x0000_0004, "auto-activation";
    /// 08h: automatic ICC voltage selection.
    AUTO_VOLTAGE = 0x0000_0008, "auto-voltage";
    /// 10h: automatic ICC clock frequency change according to active parameters.
    AUTO_CLOCK = 0x0000_0010, "auto-clock";
    /// 20h: automatic baud rate change according to active parameters.
    AUTO_BAUD = 0x0000_0020, "auto-baud";
    /// 40h: automatic parameters negotiation made by the CCID (proprietary algorithm).
    AUTO_PARAMETER_NEGOTIATION = 0x0000_0040, "auto-parameter-negotiation";
    /// 80h: automatic PPS made by the CCID according to the active parameters.
    AUTO_PPS = 0x0000_0080, "auto-PPS";
    /// 100h: the CCID can set the ICC in clock stop mode.
    CLOCK_STOP = 0x0000_0100, "clock-stop";
    /// 200h: NAD value other than 00 accepted (T=1).
    NAD_OTHER_THAN_ZERO = 0x0000_0200, "NAD-not-zero";
    /// 400h: automatic IFSD exchange as first exchange (T=1).
    AUTO_IFSD = 0x0000_0400, "auto-IFSD";
    /// 10000h: TPDU level exchanges.
    TPDU = 0x0001_0000, "TPDU";
    /// 20000h: short APDU level exchanges.
    SHORT_APDU = 0x0002_0000, "short-APDU";
    /// 40000h: short and extended APDU level exchanges.
    EXTENDED_APDU = 0x0004_0000, "extended-APDU";
    /// 100000h: USB wake up signalling on card insertion and removal.
    USB_WAKE_UP = 0x0010_0000, "USB-wake-up";
}

/// The exchange level mask of dwFeatures (CCID §5.1: "only one of the following values may be
/// present to select a level of exchange").
pub const EXCHANGE_LEVEL_MASK: u32 = 0x0007_0000;

/// The level at which the reader exchanges data with the host (CCID §5.1 dwFeatures, §6.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExchangeLevel {
    /// No level bit: the host drives the card character by character.
    Character,
    /// TPDU: the host runs T=0 (TPDUs) or T=1 (blocks); the reader moves bytes.
    Tpdu,
    /// Short APDU: the reader takes short APDUs and handles the protocol.
    ShortApdu,
    /// Short and extended APDU, extended ones chained with wLevelParameter.
    ExtendedApdu,
}

impl Features {
    /// The exchange level, or an error when more than one level bit is set.
    pub fn exchange_level(self) -> Result<ExchangeLevel, Error> {
        match self.0 & EXCHANGE_LEVEL_MASK {
            0 => Ok(ExchangeLevel::Character),
            Self::TPDU => Ok(ExchangeLevel::Tpdu),
            Self::SHORT_APDU => Ok(ExchangeLevel::ShortApdu),
            Self::EXTENDED_APDU => Ok(ExchangeLevel::ExtendedApdu),
            _ => Err(Error::InvalidDescriptor {
                field: "dwFeatures",
                value: self.0,
                reason: "more than one exchange level",
            }),
        }
    }
}

flags32! {
    /// dwMechanical (CCID §5.1 offset 36).
    Mechanical;
    /// 01h: card accept mechanism.
    ACCEPT = 0x01, "accept";
    /// 02h: card ejection mechanism.
    EJECT = 0x02, "eject";
    /// 04h: card capture mechanism.
    CAPTURE = 0x04, "capture";
    /// 08h: card lock/unlock mechanism.
    LOCK = 0x08, "lock";
}

/// bPINSupport (CCID §5.1 offset 52): 01h PIN verification, 02h PIN modification.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PinSupport(pub u8);

impl PinSupport {
    /// Whether the reader verifies PINs on its PIN pad.
    pub fn verify(self) -> bool {
        self.0 & 0x01 != 0
    }
    /// Whether the reader modifies PINs on its PIN pad.
    pub fn modify(self) -> bool {
        self.0 & 0x02 != 0
    }
}

impl fmt::Debug for PinSupport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PinSupport({:#04X}", self.0)?;
        if self.verify() {
            f.write_str(" verify")?;
        }
        if self.modify() {
            f.write_str(" modify")?;
        }
        f.write_str(")")
    }
}

/// wLcdLayout (CCID §5.1 offset 50): XXYY, XX lines and YY characters per line; 0000 no LCD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LcdLayout {
    /// Number of lines.
    pub lines: u8,
    /// Characters per line.
    pub chars_per_line: u8,
}

/// A parsed CCID class descriptor; built only by [`ClassDescriptor::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClassDescriptor {
    pub(crate) bcd_ccid: u16,
    pub(crate) max_slot_index: u8,
    pub(crate) voltage_support: VoltageSupport,
    pub(crate) protocols: Protocols,
    pub(crate) default_clock: u32,
    pub(crate) maximum_clock: u32,
    pub(crate) num_clock_supported: u8,
    pub(crate) data_rate: u32,
    pub(crate) max_data_rate: u32,
    pub(crate) num_data_rates_supported: u8,
    pub(crate) max_ifsd: u32,
    pub(crate) synch_protocols: u32,
    pub(crate) mechanical: Mechanical,
    pub(crate) features: Features,
    pub(crate) max_message_length: u32,
    pub(crate) class_get_response: u8,
    pub(crate) class_envelope: u8,
    pub(crate) lcd_layout: LcdLayout,
    pub(crate) pin_support: PinSupport,
    pub(crate) max_busy_slots: u8,
}

impl ClassDescriptor {
    /// Parses the 54-byte class descriptor (CCID §5.1 table 5.1-1), bLength and
    /// bDescriptorType included. Errors: a length other than 54 (truncated or trailing bytes),
    /// bLength other than 36h, bDescriptorType other than 21h.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let mut c = Cursor::new(bytes);
        // Offset 0 bLength: 36h.
        let length = c.take_u8("bLength")?;
        if usize::from(length) != DESCRIPTOR_LEN {
            return Err(Error::InvalidDescriptor {
                field: "bLength",
                value: length.into(),
                reason: "must be 54 (36h)",
            });
        }
        // Offset 1 bDescriptorType: 21h (functional, Smart Card Device Class).
        let kind = c.take_u8("bDescriptorType")?;
        if kind != DESCRIPTOR_TYPE {
            return Err(Error::InvalidDescriptor {
                field: "bDescriptorType",
                value: kind.into(),
                reason: "must be 21h",
            });
        }
        let d = Self {
            // Offset 2 bcdCCID: release number in BCD (0110h for Rev 1.1).
            bcd_ccid: c.take_u16_le("bcdCCID")?,
            // Offset 4 bMaxSlotIndex: slots are 0 ..= bMaxSlotIndex.
            max_slot_index: c.take_u8("bMaxSlotIndex")?,
            // Offset 5 bVoltageSupport.
            voltage_support: VoltageSupport(c.take_u8("bVoltageSupport")?),
            // Offset 6 dwProtocols.
            protocols: Protocols(c.take_u32_le("dwProtocols")?),
            // Offset 10 dwDefaultClock, kHz.
            default_clock: c.take_u32_le("dwDefaultClock")?,
            // Offset 14 dwMaximumClock, kHz.
            maximum_clock: c.take_u32_le("dwMaximumClock")?,
            // Offset 18 bNumClockSupported (0: default and maximum only).
            num_clock_supported: c.take_u8("bNumClockSupported")?,
            // Offset 19 dwDataRate, bps.
            data_rate: c.take_u32_le("dwDataRate")?,
            // Offset 23 dwMaxDataRate, bps.
            max_data_rate: c.take_u32_le("dwMaxDataRate")?,
            // Offset 27 bNumDataRatesSupported (0: any rate between default and maximum).
            num_data_rates_supported: c.take_u8("bNumDataRatesSupported")?,
            // Offset 28 dwMaxIFSD: the largest IFSD for T=1.
            max_ifsd: c.take_u32_le("dwMaxIFSD")?,
            // Offset 32 dwSynchProtocols: 2-wire, 3-wire, I2C.
            synch_protocols: c.take_u32_le("dwSynchProtocols")?,
            // Offset 36 dwMechanical.
            mechanical: Mechanical(c.take_u32_le("dwMechanical")?),
            // Offset 40 dwFeatures.
            features: Features(c.take_u32_le("dwFeatures")?),
            // Offset 44 dwMaxCCIDMessageLength: header (10) plus the largest abData.
            max_message_length: c.take_u32_le("dwMaxCCIDMessageLength")?,
            // Offset 48 bClassGetResponse: FFh echoes the class of the APDU.
            class_get_response: c.take_u8("bClassGetResponse")?,
            // Offset 49 bClassEnvelope: FFh echoes the class of the APDU.
            class_envelope: c.take_u8("bClassEnvelope")?,
            // Offset 50 wLcdLayout: XXYY = lines, characters per line.
            lcd_layout: {
                let [chars_per_line, lines] = c.take_u16_le("wLcdLayout")?.to_le_bytes();
                LcdLayout { lines, chars_per_line }
            },
            // Offset 52 bPINSupport.
            pin_support: PinSupport(c.take_u8("bPINSupport")?),
            // Offset 53 bMaxCCIDBusySlots.
            max_busy_slots: c.take_u8("bMaxCCIDBusySlots")?,
        };
        c.finish("CCID class descriptor")?;
        Ok(d)
    }

    /// Finds and parses the CCID class descriptor among the extra descriptors that follow an
    /// interface descriptor (what libusb returns as `extra`): a chain of standard descriptors,
    /// each starting with bLength and bDescriptorType (USB 2.0 §9.5).
    pub fn find(extra: &[u8]) -> Result<Self, Error> {
        let mut rest = extra;
        while let [len, kind, ..] = *rest {
            let len = usize::from(len);
            if len < 2 {
                break;
            }
            let Some(this) = rest.get(..len) else { break };
            if kind == DESCRIPTOR_TYPE && len == DESCRIPTOR_LEN {
                return Self::parse(this);
            }
            rest = rest.get(len..).unwrap_or(&[]);
        }
        Err(Error::DescriptorNotFound)
    }

    /// The 54 bytes of the descriptor.
    pub fn to_bytes(&self) -> [u8; DESCRIPTOR_LEN] {
        let mut out = Vec::with_capacity(DESCRIPTOR_LEN);
        out.push(0x36);
        out.push(DESCRIPTOR_TYPE);
        out.extend_from_slice(&self.bcd_ccid.to_le_bytes());
        out.push(self.max_slot_index);
        out.push(self.voltage_support.0);
        for dw in [self.protocols.0, self.default_clock, self.maximum_clock] {
            out.extend_from_slice(&dw.to_le_bytes());
        }
        out.push(self.num_clock_supported);
        out.extend_from_slice(&self.data_rate.to_le_bytes());
        out.extend_from_slice(&self.max_data_rate.to_le_bytes());
        out.push(self.num_data_rates_supported);
        for dw in [
            self.max_ifsd,
            self.synch_protocols,
            self.mechanical.0,
            self.features.0,
            self.max_message_length,
        ] {
            out.extend_from_slice(&dw.to_le_bytes());
        }
        out.push(self.class_get_response);
        out.push(self.class_envelope);
        out.push(self.lcd_layout.chars_per_line);
        out.push(self.lcd_layout.lines);
        out.push(self.pin_support.0);
        out.push(self.max_busy_slots);
        let mut fixed = [0u8; DESCRIPTOR_LEN];
        for (dst, src) in fixed.iter_mut().zip(&out) {
            *dst = *src;
        }
        fixed
    }

    /// bcdCCID, e.g. 0x0110 for Rev 1.1.
    pub fn bcd_ccid(&self) -> u16 {
        self.bcd_ccid
    }
    /// bMaxSlotIndex.
    pub fn max_slot_index(&self) -> u8 {
        self.max_slot_index
    }
    /// Number of slots (bMaxSlotIndex + 1).
    pub fn slot_count(&self) -> usize {
        usize::from(self.max_slot_index) + 1
    }
    /// bVoltageSupport.
    pub fn voltage_support(&self) -> VoltageSupport {
        self.voltage_support
    }
    /// dwProtocols.
    pub fn protocols(&self) -> Protocols {
        self.protocols
    }
    /// dwDefaultClock in kHz.
    pub fn default_clock_khz(&self) -> u32 {
        self.default_clock
    }
    /// dwMaximumClock in kHz.
    pub fn maximum_clock_khz(&self) -> u32 {
        self.maximum_clock
    }
    /// bNumClockSupported.
    pub fn num_clock_supported(&self) -> u8 {
        self.num_clock_supported
    }
    /// dwDataRate in bps.
    pub fn data_rate(&self) -> u32 {
        self.data_rate
    }
    /// dwMaxDataRate in bps.
    pub fn max_data_rate(&self) -> u32 {
        self.max_data_rate
    }
    /// bNumDataRatesSupported.
    pub fn num_data_rates_supported(&self) -> u8 {
        self.num_data_rates_supported
    }
    /// dwMaxIFSD as sent (some readers announce more than the 254 T=1 allows).
    pub fn max_ifsd(&self) -> u32 {
        self.max_ifsd
    }
    /// The IFSD to negotiate: dwMaxIFSD capped at 254 (ISO/IEC 7816-3 §11.4.2); `None` when
    /// dwMaxIFSD is 0.
    pub fn ifsd(&self) -> Option<u8> {
        match self.max_ifsd {
            0 => None,
            n => Some(u8::try_from(n.min(u32::from(MAX_IFS))).unwrap_or(MAX_IFS)),
        }
    }
    /// dwSynchProtocols.
    pub fn synch_protocols(&self) -> u32 {
        self.synch_protocols
    }
    /// dwMechanical.
    pub fn mechanical(&self) -> Mechanical {
        self.mechanical
    }
    /// dwFeatures.
    pub fn features(&self) -> Features {
        self.features
    }
    /// The exchange level from dwFeatures.
    pub fn exchange_level(&self) -> Result<ExchangeLevel, Error> {
        self.features.exchange_level()
    }
    /// dwMaxCCIDMessageLength.
    pub fn max_message_length(&self) -> u32 {
        self.max_message_length
    }
    /// The largest abData of one message: dwMaxCCIDMessageLength - 10 (CCID §5.1).
    pub fn max_payload(&self) -> usize {
        usize::try_from(self.max_message_length).unwrap_or(usize::MAX).saturating_sub(HEADER_LEN)
    }
    /// bClassGetResponse.
    pub fn class_get_response(&self) -> u8 {
        self.class_get_response
    }
    /// bClassEnvelope.
    pub fn class_envelope(&self) -> u8 {
        self.class_envelope
    }
    /// wLcdLayout.
    pub fn lcd_layout(&self) -> LcdLayout {
        self.lcd_layout
    }
    /// bPINSupport.
    pub fn pin_support(&self) -> PinSupport {
        self.pin_support
    }
    /// bMaxCCIDBusySlots.
    pub fn max_busy_slots(&self) -> u8 {
        self.max_busy_slots
    }
}

/// Decodes the answer to GET_CLOCK_FREQUENCIES or GET_DATA_RATES (CCID §5.3.2, §5.3.3): an
/// array of little-endian dwords (kHz or bps).
pub fn decode_dword_list(bytes: &[u8]) -> Result<Vec<u32>, Error> {
    if bytes.len() % 4 != 0 {
        return Err(Error::TrailingBytes {
            what: "dword list",
            offset: bytes.len() - bytes.len() % 4,
            count: bytes.len() % 4,
        });
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(<[u8; 4]>::try_from(c).unwrap_or_default()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use scard_iso7816::hex::decode_lenient as h;

    /// Builds a descriptor the way libccid's `parse` tool lists it (readers/*.txt), field by
    /// field, so each test vector reads like its source.
    #[allow(clippy::too_many_arguments)]
    fn listed(
        bcd: u16,
        max_slot: u8,
        voltage: u8,
        protocols: u32,
        clocks: (u32, u32, u8),
        rates: (u32, u32, u8),
        max_ifsd: u32,
        synch: u32,
        features: u32,
        max_msg: u32,
        classes: (u8, u8),
        lcd: u16,
        pin: u8,
        busy: u8,
    ) -> Vec<u8> {
        let mut v = vec![0x36, 0x21];
        v.extend_from_slice(&bcd.to_le_bytes());
        v.extend_from_slice(&[max_slot, voltage]);
        v.extend_from_slice(&protocols.to_le_bytes());
        v.extend_from_slice(&clocks.0.to_le_bytes());
        v.extend_from_slice(&clocks.1.to_le_bytes());
        v.push(clocks.2);
        v.extend_from_slice(&rates.0.to_le_bytes());
        v.extend_from_slice(&rates.1.to_le_bytes());
        v.push(rates.2);
        v.extend_from_slice(&max_ifsd.to_le_bytes());
        v.extend_from_slice(&synch.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&features.to_le_bytes());
        v.extend_from_slice(&max_msg.to_le_bytes());
        v.extend_from_slice(&[classes.0, classes.1]);
        v.extend_from_slice(&lcd.to_le_bytes());
        v.extend_from_slice(&[pin, busy]);
        v
    }

    /// QEMU usb-ccid (QEMU 7.2.22), the bytes the guest read from the configuration
    /// descriptor, as recorded in ../shared/qemu-ccid.md §5; the same values are the
    /// `qemu_ccid_descriptor` array of qemu's hw/usb/dev-smartcard-reader.c.
    pub(crate) const QEMU_USB_CCID: &str = "36 21 10 01 00 07 01 00 00 00 A0 0F 00 00 00 00 01 00 00 80 25 00 00 00 C2 01 00 00 FE 00 00 00 \
         00 00 00 00 00 00 00 00 FE 04 01 00 12 00 01 00 FF FF 00 00 01 01";

    #[test]
    fn qemu_usb_ccid() {
        let d = ClassDescriptor::parse(&h(QEMU_USB_CCID).unwrap()).unwrap();
        assert_eq!(d.bcd_ccid(), 0x0110);
        assert_eq!(d.max_slot_index(), 0);
        assert_eq!(d.slot_count(), 1);
        assert!(
            d.voltage_support().v5_0() && d.voltage_support().v3_0() && d.voltage_support().v1_8()
        );
        assert!(d.protocols().t0() && !d.protocols().t1());
        assert_eq!((d.default_clock_khz(), d.maximum_clock_khz()), (4000, 65536));
        assert_eq!((d.data_rate(), d.max_data_rate()), (9600, 115_200));
        assert_eq!((d.num_clock_supported(), d.num_data_rates_supported()), (0, 0));
        assert_eq!(d.max_ifsd(), 254);
        assert_eq!(d.features().0, 0x0001_04FE);
        assert_eq!(d.exchange_level().unwrap(), ExchangeLevel::Tpdu);
        let names: Vec<_> = d.features().names().collect();
        assert_eq!(
            names,
            [
                "auto-parameters-from-ATR",
                "auto-activation",
                "auto-voltage",
                "auto-clock",
                "auto-baud",
                "auto-parameter-negotiation",
                "auto-PPS",
                "auto-IFSD",
                "TPDU"
            ]
        );
        assert_eq!(d.max_message_length(), 65554);
        assert_eq!(d.max_payload(), 65544);
        assert_eq!((d.class_get_response(), d.class_envelope()), (0xFF, 0xFF));
        assert_eq!(d.lcd_layout(), LcdLayout::default());
        assert!(d.pin_support().verify() && !d.pin_support().modify());
        assert_eq!(d.max_busy_slots(), 1);
        assert_eq!(&d.to_bytes()[..], &h(QEMU_USB_CCID).unwrap()[..]);
    }

    /// SCM Microsystems SCR3310 (04E6:5116), libccid readers/SCR3310.txt.
    #[test]
    fn scm_scr3310() {
        let bytes = listed(
            0x0100,
            0,
            0x01,
            0x0003,
            (4000, 12000, 0),
            (9600, 307_200, 0),
            252,
            0,
            0x0001_00BA,
            263,
            (0xFF, 0xFF),
            0,
            0,
            1,
        );
        let d = ClassDescriptor::parse(&bytes).unwrap();
        assert_eq!(d.bcd_ccid(), 0x0100);
        assert!(d.voltage_support().v5_0() && !d.voltage_support().v3_0());
        assert!(d.protocols().t0() && d.protocols().t1());
        assert_eq!(d.ifsd(), Some(252));
        assert!(d.features().contains(Features::AUTO_PPS));
        assert!(d.features().contains(Features::AUTO_PARAMETERS_FROM_ATR));
        assert!(!d.features().contains(Features::AUTO_IFSD));
        assert_eq!(d.exchange_level().unwrap(), ExchangeLevel::Tpdu);
        // libccid notes this firmware announces 263 instead of 270.
        assert_eq!(d.max_payload(), 253);
        assert_eq!(d.to_bytes().to_vec(), bytes);
    }

    /// Gemplus GemPC Twin (08E6:3437), libccid readers/GemPCTwin.txt.
    #[test]
    fn gemplus_gempc_twin() {
        let bytes = listed(
            0x0100,
            0,
            0x07,
            0x0003,
            (4000, 4000, 0),
            (10752, 344_086, 0),
            254,
            0,
            0x0001_0230,
            271,
            (0, 0),
            0,
            0,
            1,
        );
        let d = ClassDescriptor::parse(&bytes).unwrap();
        assert_eq!(d.exchange_level().unwrap(), ExchangeLevel::Tpdu);
        // No automatic PPS, parameters or IFSD: the host does PPS, SetParameters and S(IFS).
        for flag in [
            Features::AUTO_PPS,
            Features::AUTO_PARAMETER_NEGOTIATION,
            Features::AUTO_IFSD,
            Features::AUTO_VOLTAGE,
        ] {
            assert!(!d.features().contains(flag), "{flag:#X}");
        }
        assert!(d.features().contains(Features::NAD_OTHER_THAN_ZERO));
        assert_eq!(d.max_payload(), 261);
        assert_eq!(format!("{:?}", d.voltage_support()), "VoltageSupport(0x07 5.0V 3.0V 1.8V)");
    }

    /// HID Global OMNIKEY 3x21 (076B:3031), libccid readers/HID_Global_OMNIKEY_3x21_Smart_Card_Reader.txt.
    #[test]
    fn hid_omnikey_3x21() {
        let bytes = listed(
            0x0110,
            0,
            0x07,
            0x0003,
            (4800, 4800, 1),
            (10752, 412_903, 106),
            254,
            0x07,
            0x0004_07B8,
            271,
            (0xFF, 0xFF),
            0,
            0,
            1,
        );
        let d = ClassDescriptor::parse(&bytes).unwrap();
        assert_eq!(d.exchange_level().unwrap(), ExchangeLevel::ExtendedApdu);
        assert_eq!((d.num_clock_supported(), d.num_data_rates_supported()), (1, 106));
        assert_eq!(d.synch_protocols(), 7);
        assert!(d.features().contains(Features::CLOCK_STOP | Features::AUTO_IFSD));
        // 271 - 10: an extended APDU longer than 261 bytes is chained.
        assert_eq!(d.max_payload(), 261);
    }

    /// Cherry SmartTerminal ST-2xxx (046A:003E), libccid readers/CherrySmartTerminalST2XXX.txt
    /// (interface class FFh, but a regular CCID descriptor).
    #[test]
    fn cherry_st_2000() {
        let bytes = listed(
            0x0100,
            0,
            0x01,
            0x0003,
            (4000, 8000, 0),
            (10753, 344_105, 0),
            252,
            0,
            0x0001_00BA,
            263,
            (0xFF, 0xFF),
            0,
            0x03,
            1,
        );
        let d = ClassDescriptor::parse(&bytes).unwrap();
        assert!(d.pin_support().verify() && d.pin_support().modify());
        assert_eq!(format!("{:?}", d.pin_support()), "PinSupport(0x03 verify modify)");
        assert_eq!(d.exchange_level().unwrap(), ExchangeLevel::Tpdu);
    }

    /// Yubico YubiKey 4 OTP+U2F+CCID (1050:0407), CCID interface 2, libccid
    /// readers/Yubico_Yubikey_4_OTP+U2F+CCID.txt.
    #[test]
    fn yubico_yubikey_4() {
        let bytes = listed(
            0x0100,
            0,
            0x07,
            0x0002,
            (4000, 4000, 0),
            (307_200, 307_200, 0),
            2038,
            0,
            0x0004_00FE,
            3072,
            (0xFF, 0xFF),
            0,
            0,
            1,
        );
        let d = ClassDescriptor::parse(&bytes).unwrap();
        assert!(!d.protocols().t0() && d.protocols().t1());
        assert_eq!(d.exchange_level().unwrap(), ExchangeLevel::ExtendedApdu);
        // dwMaxIFSD 2038 is above what T=1 allows: the negotiable IFSD is capped at 254.
        assert_eq!(d.max_ifsd(), 2038);
        assert_eq!(d.ifsd(), Some(254));
        assert_eq!(d.max_payload(), 3062);
        assert!(d.features().contains(Features::AUTO_PARAMETER_NEGOTIATION));
    }

    /// Nitrokey Pro (20A0:4108), CCID interface 1, libccid readers/Nitrokey_Pro.txt.
    #[test]
    fn nitrokey_pro() {
        let bytes = listed(
            0x0110,
            0,
            0x02,
            0x0002,
            (3600, 3600, 0),
            (9677, 116_129, 0),
            254,
            0,
            0x0001_04BA,
            271,
            (0, 0),
            0,
            0,
            1,
        );
        let d = ClassDescriptor::parse(&bytes).unwrap();
        assert!(d.voltage_support().v3_0() && !d.voltage_support().v5_0());
        assert_eq!(d.exchange_level().unwrap(), ExchangeLevel::Tpdu);
        assert!(d.features().contains(Features::AUTO_IFSD));
        assert_eq!(
            format!("{:?}", d.features()),
            "Features(0x000104BA auto-parameters-from-ATR auto-voltage auto-clock auto-baud \
             auto-PPS auto-IFSD TPDU)"
        );
    }

    #[test]
    fn find_skips_other_descriptors() {
        // An endpoint descriptor, a vendor descriptor, then the class descriptor.
        let mut extra = h("07 05 81 03 40 00 FF 03 FF 00").unwrap();
        extra.extend(h(QEMU_USB_CCID).unwrap());
        assert_eq!(ClassDescriptor::find(&extra).unwrap().max_ifsd(), 254);
        assert_eq!(
            ClassDescriptor::find(&h("07 05 81 03 40 00 FF").unwrap()),
            Err(Error::DescriptorNotFound)
        );
        assert_eq!(ClassDescriptor::find(&[0x00, 0x21]), Err(Error::DescriptorNotFound));
        assert_eq!(ClassDescriptor::find(&[]), Err(Error::DescriptorNotFound));
    }

    #[test]
    fn rejects_wrong_length_and_type() {
        let good = h(QEMU_USB_CCID).unwrap();
        for len in 0..good.len() {
            assert!(ClassDescriptor::parse(&good[..len]).is_err(), "length {len}");
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(
            ClassDescriptor::parse(&long),
            Err(Error::TrailingBytes { what: "CCID class descriptor", offset: 54, count: 1 })
        );
        let mut bad = good.clone();
        bad[1] = 0xFF;
        assert!(matches!(
            ClassDescriptor::parse(&bad),
            Err(Error::InvalidDescriptor { field: "bDescriptorType", value: 0xFF, .. })
        ));
        bad = good.clone();
        bad[0] = 0x35;
        assert!(matches!(
            ClassDescriptor::parse(&bad),
            Err(Error::InvalidDescriptor { field: "bLength", .. })
        ));
    }

    #[test]
    fn exchange_levels() {
        assert_eq!(Features(0).exchange_level().unwrap(), ExchangeLevel::Character);
        assert_eq!(Features(0x0002_0000).exchange_level().unwrap(), ExchangeLevel::ShortApdu);
        assert!(Features(0x0003_0000).exchange_level().is_err());
        assert!(Features(0x0005_0000).exchange_level().is_err());
        // Bits outside the mask do not change the level.
        assert_eq!(Features(0x0011_0000).exchange_level().unwrap(), ExchangeLevel::Tpdu);
    }

    #[test]
    fn dword_lists() {
        // GemPC Twin data rates start 10753, 14337 bps (readers/GemPCTwin.txt).
        let bytes = [0x01, 0x2A, 0, 0, 0x01, 0x38, 0, 0];
        assert_eq!(decode_dword_list(&bytes).unwrap(), vec![10753, 14337]);
        assert!(decode_dword_list(&bytes[..5]).is_err());
        assert_eq!(decode_dword_list(&[]).unwrap(), Vec::<u32>::new());
    }
}
