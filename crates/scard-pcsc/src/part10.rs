//! PC/SC part 10 ("IFDs with Secure PIN Entry Capabilities", v2.02.09): the feature list a
//! reader returns for `CM_IOCTL_GET_FEATURE_REQUEST`, and the `PIN_VERIFY_STRUCTURE` /
//! `PIN_MODIFY_STRUCTURE` sent to `FEATURE_VERIFY_PIN_DIRECT` / `FEATURE_MODIFY_PIN_DIRECT` so
//! a pin-pad reader asks for the PIN itself (it never passes through the host). Constants and
//! layouts from /usr/include/PCSC/reader.h. Encoders and the parser are pure; [`features`],
//! [`verify_pin_direct`] and [`modify_pin_direct`] work over any [`CardTransport`] with
//! control codes.

use std::fmt;

use scard_transport::{CardTransport, TransportError};

use crate::Error;

/// `SCARD_CTL_CODE(code)` of pcsc-lite and macOS (reader.h: `0x42000000 + code`).
pub const fn scard_ctl_code(code: u32) -> u32 {
    0x4200_0000 + code
}

/// `CM_IOCTL_GET_FEATURE_REQUEST` (reader.h: `SCARD_CTL_CODE(3400)`), PC/SC part 10 §2.2.
pub const CM_IOCTL_GET_FEATURE_REQUEST: u32 = scard_ctl_code(3400);

/// A PC/SC part 10 feature tag (reader.h `FEATURE_*`). An open newtype.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Feature(pub u8);

macro_rules! features {
    ($( $name:ident = $value:literal; )*) => {
        impl Feature {
            $( #[doc = concat!("`FEATURE_", stringify!($name), "` (reader.h).")]
               pub const $name: Feature = Feature($value); )*

            /// The reader.h name (`FEATURE_VERIFY_PIN_DIRECT`), for known tags.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some(concat!("FEATURE_", stringify!($name))), )*
                    _ => None,
                }
            }
        }
    };
}

features! {
    VERIFY_PIN_START = 0x01;
    VERIFY_PIN_FINISH = 0x02;
    MODIFY_PIN_START = 0x03;
    MODIFY_PIN_FINISH = 0x04;
    GET_KEY_PRESSED = 0x05;
    VERIFY_PIN_DIRECT = 0x06;
    MODIFY_PIN_DIRECT = 0x07;
    MCT_READER_DIRECT = 0x08;
    MCT_UNIVERSAL = 0x09;
    IFD_PIN_PROPERTIES = 0x0A;
    ABORT = 0x0B;
    SET_SPE_MESSAGE = 0x0C;
    VERIFY_PIN_DIRECT_APP_ID = 0x0D;
    MODIFY_PIN_DIRECT_APP_ID = 0x0E;
    WRITE_DISPLAY = 0x0F;
    GET_KEY = 0x10;
    IFD_DISPLAY_PROPERTIES = 0x11;
    GET_TLV_PROPERTIES = 0x12;
    CCID_ESC_COMMAND = 0x13;
    EXECUTE_PACE = 0x20;
}

impl fmt::Debug for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "Feature(0x{:02X})", self.0),
        }
    }
}

/// The features a reader offers and the control code of each (PC/SC part 10 §2.2). Built
/// only by [`Features::parse`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    entries: Vec<(Feature, u32)>,
}

impl Features {
    /// Parses the answer to `CM_IOCTL_GET_FEATURE_REQUEST`: a list of `PCSC_TLV_STRUCTURE`
    /// (reader.h): tag (1 byte), length (1 byte, always 4), control code (4 bytes, big
    /// endian, PC/SC part 10 §2.2). An empty answer is a reader without features.
    pub fn parse(bytes: &[u8]) -> Result<Features, Error> {
        let mut entries = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let offset = bytes.len() - rest.len();
            let [tag, len, tail @ ..] = rest else {
                return Err(Error::FeatureList { what: "a truncated tag and length", offset });
            };
            if *len != 4 {
                return Err(Error::FeatureList {
                    what: "a length other than 4",
                    offset: offset + 1,
                });
            }
            let [a, b, c, d, tail @ ..] = tail else {
                return Err(Error::FeatureList {
                    what: "a truncated control code",
                    offset: offset + 2,
                });
            };
            entries.push((Feature(*tag), u32::from_be_bytes([*a, *b, *c, *d])));
            rest = tail;
        }
        Ok(Features { entries })
    }

    /// The control code of `feature`, when the reader has it.
    pub fn control_code(&self, feature: Feature) -> Option<u32> {
        self.entries.iter().find(|(f, _)| *f == feature).map(|(_, code)| *code)
    }

    /// Every feature with its control code, in the reader's order.
    pub fn iter(&self) -> impl Iterator<Item = (Feature, u32)> + '_ {
        self.entries.iter().copied()
    }

    /// Whether the reader offers no feature.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// How the PIN digits are coded in the PIN frame (`bmFormatString` bits 1-0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PinCoding {
    /// One byte per digit, 0x00-0x09.
    Binary,
    /// Two digits per byte.
    Bcd,
    /// One byte per digit, '0'-'9'.
    Ascii,
}

/// `bmFormatString` (PC/SC part 10 §2.5.2; CCID §6.1.11.6 has the same byte): where and how
/// the reader puts the digits in the APDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PinFormat {
    /// Bits 1-0: digit coding.
    pub coding: PinCoding,
    /// Bit 2: digits justified right (fillers left) instead of left.
    pub justify_right: bool,
    /// Bits 6-3: offset of the PIN frame in the PIN block (0-15), in bytes when
    /// `offset_in_bytes` (bit 7), else in bits.
    pub offset: u8,
    /// Bit 7: the offset's unit is a byte.
    pub offset_in_bytes: bool,
}

impl PinFormat {
    /// ASCII digits, left-justified, at the start of the PIN block (GnuPG's 0x82).
    pub const ASCII: PinFormat = PinFormat {
        coding: PinCoding::Ascii,
        justify_right: false,
        offset: 0,
        offset_in_bytes: true,
    };

    fn byte(self) -> Result<u8, Error> {
        if self.offset > 15 {
            return Err(Error::PinStructure {
                field: "bmFormatString offset",
                value: self.offset.into(),
                max: 15,
            });
        }
        let coding = match self.coding {
            PinCoding::Binary => 0b00,
            PinCoding::Bcd => 0b01,
            PinCoding::Ascii => 0b10,
        };
        Ok((u8::from(self.offset_in_bytes) << 7)
            | (self.offset << 3)
            | (u8::from(self.justify_right) << 2)
            | coding)
    }
}

/// `bmPINBlockString` and `bmPINLengthFormat` (PC/SC part 10 §2.5.2): the PIN block and where
/// the reader writes the number of digits entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PinBlock {
    /// `bmPINBlockString` bits 3-0: size of the PIN block in bytes (0-15; 0: as long as the
    /// PIN entered).
    pub size: u8,
    /// `bmPINBlockString` bits 7-4: size in bits of the PIN length field (0-15; 0: none).
    pub length_bits: u8,
    /// `bmPINLengthFormat` bits 3-0: position of the PIN length field (0-15).
    pub length_position: u8,
    /// `bmPINLengthFormat` bit 4: the position is in bytes, else in bits.
    pub length_position_in_bytes: bool,
}

impl PinBlock {
    fn bytes(self) -> Result<(u8, u8), Error> {
        for (field, value) in [
            ("bmPINBlockString size", self.size),
            ("bmPINBlockString length bits", self.length_bits),
            ("bmPINLengthFormat position", self.length_position),
        ] {
            if value > 15 {
                return Err(Error::PinStructure { field, value: value.into(), max: 15 });
            }
        }
        Ok((
            (self.length_bits << 4) | self.size,
            (u8::from(self.length_position_in_bytes) << 4) | self.length_position,
        ))
    }
}

/// `bEntryValidationCondition` bit: the maximum number of digits was entered.
pub const VALIDATE_MAX_SIZE: u8 = 0x01;
/// `bEntryValidationCondition` bit: the validation key was pressed.
pub const VALIDATE_KEY: u8 = 0x02;
/// `bEntryValidationCondition` bit: the timeout passed.
pub const VALIDATE_TIMEOUT: u8 = 0x04;

/// wLangId of US English.
pub const LANG_EN_US: u16 = 0x0409;

/// The fields shared by the verify and modify structures.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Common {
    format: u8,
    block: u8,
    length_format: u8,
    min_digits: u8,
    max_digits: u8,
    apdu: Vec<u8>,
}

impl Common {
    fn new(
        apdu: &[u8],
        format: PinFormat,
        block: PinBlock,
        min_digits: u8,
        max_digits: u8,
    ) -> Result<Common, Error> {
        if apdu.len() < 4 {
            return Err(Error::PinStructure { field: "APDU length", value: apdu.len(), max: 4 });
        }
        // The structure travels in one SCardControl buffer and one CCID message.
        if apdu.len() > usize::from(u16::MAX) {
            return Err(Error::PinStructure {
                field: "APDU length",
                value: apdu.len(),
                max: usize::from(u16::MAX),
            });
        }
        if max_digits == 0 || min_digits > max_digits {
            return Err(Error::PinStructure {
                field: "minimum PIN digits",
                value: min_digits.into(),
                max: max_digits.into(),
            });
        }
        let (block, length_format) = block.bytes()?;
        Ok(Common {
            format: format.byte()?,
            block,
            length_format,
            min_digits,
            max_digits,
            apdu: apdu.to_vec(),
        })
    }

    /// `wPINMaxExtraDigit`: 0xXXYY with XX the minimum and YY the maximum number of digits.
    fn extra_digit(&self) -> u16 {
        u16::from_be_bytes([self.min_digits, self.max_digits])
    }

    fn data_length(&self) -> u32 {
        u32::try_from(self.apdu.len()).unwrap_or(u32::MAX)
    }
}

/// `PIN_VERIFY_STRUCTURE` (PC/SC part 10 §2.5.2; reader.h), sent with
/// `FEATURE_VERIFY_PIN_DIRECT`. Built by its constructors, which enforce every field's
/// limits, so [`PinVerify::encode`] cannot fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinVerify {
    /// `bTimerOut`: seconds for the whole entry (0: the reader's default).
    pub timeout: u8,
    /// `bTimerOut2`: seconds after the first key stroke (0: the reader's default).
    pub timeout_after_key: u8,
    /// `bEntryValidationCondition` ([`VALIDATE_KEY`] etc.).
    pub entry_validation: u8,
    /// `bNumberMessage` (0: none, 1: one, 0xFF: the reader's default).
    pub messages: u8,
    /// `wLangId` of the messages.
    pub lang_id: u16,
    /// `bMsgIndex`.
    pub message_index: u8,
    common: Common,
}

impl PinVerify {
    /// A structure for the command template `apdu` (header, Lc and the PIN block the reader
    /// fills in), with `min_digits..=max_digits` digits. Defaults: reader timeouts,
    /// validation key, the reader's default message in US English.
    pub fn new(
        apdu: &[u8],
        format: PinFormat,
        block: PinBlock,
        min_digits: u8,
        max_digits: u8,
    ) -> Result<PinVerify, Error> {
        let common = Common::new(apdu, format, block, min_digits, max_digits)?;
        Ok(PinVerify {
            timeout: 0,
            timeout_after_key: 0,
            entry_validation: validation(min_digits, max_digits),
            messages: 0xFF,
            lang_id: LANG_EN_US,
            message_index: 0,
            common,
        })
    }

    /// VERIFY `header` (CLA INS P1 P2) with ASCII digits left-justified in a `block_len`-byte
    /// PIN block filled with `pad`: PIV's form (SP 800-73-4 Pt 2 §3.2.1: PIN padded with
    /// 0xFF to 8 bytes).
    pub fn fixed_ascii(
        header: [u8; 4],
        block_len: u8,
        pad: u8,
        min_digits: u8,
        max_digits: u8,
    ) -> Result<PinVerify, Error> {
        let mut apdu = header.to_vec();
        apdu.push(block_len);
        apdu.extend(std::iter::repeat_n(pad, usize::from(block_len)));
        let block = PinBlock { size: block_len, ..PinBlock::default() };
        PinVerify::new(&apdu, PinFormat::ASCII, block, min_digits, max_digits)
    }

    /// VERIFY `header` with a variable-length ASCII PIN whose length the reader puts in Lc
    /// (the template's Lc is 00): the OpenPGP card's form, as GnuPG sends it.
    pub fn variable_ascii(
        header: [u8; 4],
        min_digits: u8,
        max_digits: u8,
    ) -> Result<PinVerify, Error> {
        let mut apdu = header.to_vec();
        apdu.push(0);
        PinVerify::new(&apdu, PinFormat::ASCII, PinBlock::default(), min_digits, max_digits)
    }

    /// The structure's bytes. Multi-byte fields are in host byte order, as pcsc-lite's
    /// reader.h declares them (`uint16_t`, `uint32_t`; libccid converts them for the reader);
    /// little-endian on every host we build for.
    pub fn encode(&self) -> Vec<u8> {
        let c = &self.common;
        let mut out = Vec::with_capacity(19 + c.apdu.len());
        out.push(self.timeout); // 0 bTimerOut
        out.push(self.timeout_after_key); // 1 bTimerOut2
        out.push(c.format); // 2 bmFormatString
        out.push(c.block); // 3 bmPINBlockString
        out.push(c.length_format); // 4 bmPINLengthFormat
        out.extend_from_slice(&c.extra_digit().to_ne_bytes()); // 5-6 wPINMaxExtraDigit
        out.push(self.entry_validation); // 7 bEntryValidationCondition
        out.push(self.messages); // 8 bNumberMessage
        out.extend_from_slice(&self.lang_id.to_ne_bytes()); // 9-10 wLangId
        out.push(self.message_index); // 11 bMsgIndex
        out.extend_from_slice(&[0, 0, 0]); // 12-14 bTeoPrologue (reader.h: fill with 00)
        out.extend_from_slice(&c.data_length().to_ne_bytes()); // 15-18 ulDataLength
        out.extend_from_slice(&c.apdu); // 19.. abData
        out
    }
}

/// `PIN_MODIFY_STRUCTURE` (PC/SC part 10 §2.5.3; reader.h), sent with
/// `FEATURE_MODIFY_PIN_DIRECT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinModify {
    /// `bTimerOut`.
    pub timeout: u8,
    /// `bTimerOut2`.
    pub timeout_after_key: u8,
    /// `bEntryValidationCondition`.
    pub entry_validation: u8,
    /// `bNumberMessage` (0xFF: the reader's default).
    pub messages: u8,
    /// `wLangId`.
    pub lang_id: u16,
    /// `bMsgIndex1`, `bMsgIndex2`, `bMsgIndex3`.
    pub message_indexes: [u8; 3],
    offset_old: u8,
    offset_new: u8,
    confirm: u8,
    common: Common,
}

/// `bConfirmPIN` bit 0: the new PIN is entered twice.
pub const CONFIRM_NEW_PIN: u8 = 0x01;
/// `bConfirmPIN` bit 1: the current PIN is entered too (at `bInsertionOffsetOld`).
pub const ENTER_CURRENT_PIN: u8 = 0x02;

/// Where a pin-pad puts the PINs of a modify, and which it asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PinInsertion {
    /// `bInsertionOffsetOld`: bytes from the start of the data field to the current PIN.
    pub offset_old: u8,
    /// `bInsertionOffsetNew`: bytes from the start of the data field to the new PIN.
    pub offset_new: u8,
    /// `bConfirmPIN`: [`CONFIRM_NEW_PIN`] | [`ENTER_CURRENT_PIN`].
    pub confirm: u8,
}

impl PinModify {
    /// A structure for the CHANGE REFERENCE DATA template `apdu`, the PINs placed as
    /// `insertion` says, with `min_digits..=max_digits` digits.
    pub fn new(
        apdu: &[u8],
        format: PinFormat,
        block: PinBlock,
        insertion: PinInsertion,
        min_digits: u8,
        max_digits: u8,
    ) -> Result<PinModify, Error> {
        let common = Common::new(apdu, format, block, min_digits, max_digits)?;
        let PinInsertion { offset_old, offset_new, confirm } = insertion;
        if confirm > (CONFIRM_NEW_PIN | ENTER_CURRENT_PIN) {
            return Err(Error::PinStructure {
                field: "bConfirmPIN",
                value: confirm.into(),
                max: 3,
            });
        }
        Ok(PinModify {
            timeout: 0,
            timeout_after_key: 0,
            entry_validation: validation(min_digits, max_digits),
            messages: 0xFF,
            lang_id: LANG_EN_US,
            message_indexes: [0, 1, 2],
            offset_old,
            offset_new,
            confirm,
            common,
        })
    }

    /// CHANGE REFERENCE DATA `header` with the current and the new PIN as ASCII digits, each
    /// in a `block_len`-byte block filled with `pad`, the new PIN entered twice: PIV's form
    /// (SP 800-73-4 Pt 2 §3.2.2).
    pub fn fixed_ascii(
        header: [u8; 4],
        block_len: u8,
        pad: u8,
        min_digits: u8,
        max_digits: u8,
    ) -> Result<PinModify, Error> {
        let mut apdu = header.to_vec();
        apdu.push(block_len.saturating_mul(2));
        apdu.extend(std::iter::repeat_n(pad, usize::from(block_len) * 2));
        let block = PinBlock { size: block_len, ..PinBlock::default() };
        let insertion = PinInsertion {
            offset_old: 0,
            offset_new: block_len,
            confirm: CONFIRM_NEW_PIN | ENTER_CURRENT_PIN,
        };
        PinModify::new(&apdu, PinFormat::ASCII, block, insertion, min_digits, max_digits)
    }

    /// The structure's bytes (host byte order, see [`PinVerify::encode`]).
    pub fn encode(&self) -> Vec<u8> {
        let c = &self.common;
        let mut out = Vec::with_capacity(24 + c.apdu.len());
        out.push(self.timeout); // 0 bTimerOut
        out.push(self.timeout_after_key); // 1 bTimerOut2
        out.push(c.format); // 2 bmFormatString
        out.push(c.block); // 3 bmPINBlockString
        out.push(c.length_format); // 4 bmPINLengthFormat
        out.push(self.offset_old); // 5 bInsertionOffsetOld
        out.push(self.offset_new); // 6 bInsertionOffsetNew
        out.extend_from_slice(&c.extra_digit().to_ne_bytes()); // 7-8 wPINMaxExtraDigit
        out.push(self.confirm); // 9 bConfirmPIN
        out.push(self.entry_validation); // 10 bEntryValidationCondition
        out.push(self.messages); // 11 bNumberMessage
        out.extend_from_slice(&self.lang_id.to_ne_bytes()); // 12-13 wLangId
        out.extend_from_slice(&self.message_indexes); // 14-16 bMsgIndex1..3
        out.extend_from_slice(&[0, 0, 0]); // 17-19 bTeoPrologue
        out.extend_from_slice(&c.data_length().to_ne_bytes()); // 20-23 ulDataLength
        out.extend_from_slice(&c.apdu); // 24.. abData
        out
    }
}

/// Validation key, and also "maximum size reached" for a fixed number of digits (GnuPG's
/// choice, which pin-pads without an OK key need).
fn validation(min_digits: u8, max_digits: u8) -> u8 {
    if min_digits == max_digits { VALIDATE_KEY | VALIDATE_MAX_SIZE } else { VALIDATE_KEY }
}

/// The reader's part 10 features (`CM_IOCTL_GET_FEATURE_REQUEST`). A reader that does not
/// support the request has none.
pub fn features(transport: &mut dyn CardTransport) -> Result<Features, TransportError> {
    match transport.control(CM_IOCTL_GET_FEATURE_REQUEST, &[]) {
        Ok(bytes) => Features::parse(&bytes).map_err(|err| TransportError::Protocol {
            reader: transport.reader().to_owned(),
            reason: err.to_string(),
        }),
        Err(TransportError::Unsupported { .. }) => Ok(Features::default()),
        Err(err) => Err(err),
    }
}

/// Has the pin-pad reader ask for the PIN and send the VERIFY of `request`
/// (`FEATURE_VERIFY_PIN_DIRECT`): the card's response APDU (SW1 SW2; readers answer 6400 on
/// timeout and 6401 when the user cancels).
pub fn verify_pin_direct(
    transport: &mut dyn CardTransport,
    features: &Features,
    request: &PinVerify,
) -> Result<Vec<u8>, TransportError> {
    pin_direct(transport, features, Feature::VERIFY_PIN_DIRECT, &request.encode())
}

/// Has the pin-pad reader ask for the PINs and send the CHANGE REFERENCE DATA of `request`
/// (`FEATURE_MODIFY_PIN_DIRECT`): the card's response APDU.
pub fn modify_pin_direct(
    transport: &mut dyn CardTransport,
    features: &Features,
    request: &PinModify,
) -> Result<Vec<u8>, TransportError> {
    pin_direct(transport, features, Feature::MODIFY_PIN_DIRECT, &request.encode())
}

fn pin_direct(
    transport: &mut dyn CardTransport,
    features: &Features,
    feature: Feature,
    structure: &[u8],
) -> Result<Vec<u8>, TransportError> {
    let what = if feature == Feature::VERIFY_PIN_DIRECT {
        "FEATURE_VERIFY_PIN_DIRECT"
    } else {
        "FEATURE_MODIFY_PIN_DIRECT"
    };
    let Some(code) = features.control_code(feature) else {
        return Err(TransportError::Unsupported { reader: transport.reader().to_owned(), what });
    };
    let response = transport.control(code, structure)?;
    if response.len() < 2 {
        return Err(TransportError::Protocol {
            reader: transport.reader().to_owned(),
            reason: format!("{what} answered {} byte(s), not a status word", response.len()),
        });
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that answers control codes from a script and records what it was sent.
    struct PinPad {
        features: Vec<u8>,
        sent: Vec<(u32, Vec<u8>)>,
    }

    impl CardTransport for PinPad {
        fn reader(&self) -> &str {
            "pcsc:Pin Pad 00 00"
        }
        fn atr(&self) -> &[u8] {
            &[0x3B, 0x00]
        }
        fn protocol(&self) -> scard_transport::Protocol {
            scard_transport::Protocol::T1
        }
        fn transmit(&mut self, _: &[u8]) -> Result<Vec<u8>, TransportError> {
            unreachable!("pin-pad operations go through control codes")
        }
        fn begin_transaction(&mut self) -> Result<(), TransportError> {
            Ok(())
        }
        fn end_transaction(
            &mut self,
            _: scard_transport::Disposition,
        ) -> Result<(), TransportError> {
            Ok(())
        }
        fn reconnect(&mut self, _: scard_transport::Disposition) -> Result<(), TransportError> {
            Ok(())
        }
        fn disconnect(&mut self, _: scard_transport::Disposition) -> Result<(), TransportError> {
            Ok(())
        }
        fn control(&mut self, code: u32, data: &[u8]) -> Result<Vec<u8>, TransportError> {
            self.sent.push((code, data.to_vec()));
            match code {
                CM_IOCTL_GET_FEATURE_REQUEST => Ok(self.features.clone()),
                0x4200_0DB2 => Ok(vec![0x63, 0xC2]),
                _ => Err(TransportError::Unsupported { reader: self.reader().into(), what: "x" }),
            }
        }
        fn set_timeout(&mut self, _: std::time::Duration) {}
    }

    #[test]
    fn verify_goes_through_the_feature_control_code() {
        let mut reader = PinPad { features: vec![0x06, 4, 0x42, 0x00, 0x0D, 0xB2], sent: vec![] };
        let list = features(&mut reader).unwrap();
        let request = PinVerify::fixed_ascii([0x00, 0x20, 0x00, 0x80], 8, 0xFF, 6, 8).unwrap();
        let response = verify_pin_direct(&mut reader, &list, &request).unwrap();
        assert_eq!(response, [0x63, 0xC2], "the card's answer (wrong PIN, 2 tries left)");
        assert_eq!(reader.sent[0], (CM_IOCTL_GET_FEATURE_REQUEST, vec![]));
        assert_eq!(reader.sent[1], (0x4200_0DB2, request.encode()));
        // No MODIFY feature: unsupported, nothing sent.
        let modify = PinModify::fixed_ascii([0x00, 0x24, 0x00, 0x80], 8, 0xFF, 6, 8).unwrap();
        let err = modify_pin_direct(&mut reader, &list, &modify).unwrap_err();
        assert!(matches!(
            err,
            TransportError::Unsupported { what: "FEATURE_MODIFY_PIN_DIRECT", .. }
        ));
        assert_eq!(reader.sent.len(), 2);
        // A malformed feature list is a protocol error naming the reader.
        reader.features = vec![0x06, 4, 0x42];
        let err = features(&mut reader).unwrap_err();
        assert!(matches!(err, TransportError::Protocol { .. }), "{err:?}");
        assert!(err.to_string().contains("Pin Pad"), "{err}");
    }

    #[test]
    fn control_codes() {
        // reader.h: SCARD_CTL_CODE(3400) on pcsc-lite.
        assert_eq!(CM_IOCTL_GET_FEATURE_REQUEST, 0x4200_0D48);
    }

    #[test]
    fn feature_list() {
        // What libccid 1.5 answers for a pin-pad reader (e.g. a Cherry ST-2000): VERIFY and
        // MODIFY direct, IFD_PIN_PROPERTIES, GET_TLV_PROPERTIES, CCID_ESC_COMMAND, with
        // control codes SCARD_CTL_CODE(3500 + tag).
        let bytes = [
            0x06, 4, 0x42, 0x00, 0x0D, 0xB2, //
            0x07, 4, 0x42, 0x00, 0x0D, 0xB3, //
            0x0A, 4, 0x42, 0x00, 0x0D, 0xB6, //
            0x12, 4, 0x42, 0x00, 0x0D, 0xBE, //
            0x13, 4, 0x42, 0x00, 0x0D, 0xBF, //
        ];
        let f = Features::parse(&bytes).unwrap();
        assert_eq!(f.control_code(Feature::VERIFY_PIN_DIRECT), Some(scard_ctl_code(3506)));
        assert_eq!(f.control_code(Feature::MODIFY_PIN_DIRECT), Some(0x4200_0DB3));
        assert_eq!(f.control_code(Feature::ABORT), None);
        assert_eq!(f.iter().count(), 5);
        assert_eq!(format!("{:?}", f.iter().next().unwrap().0), "FEATURE_VERIFY_PIN_DIRECT");
        assert_eq!(format!("{:?}", Feature(0x77)), "Feature(0x77)");
        assert!(Features::parse(&[]).unwrap().is_empty());
    }

    #[test]
    fn bad_feature_lists_name_the_offset() {
        let e = |b: &[u8]| Features::parse(b).unwrap_err();
        assert!(matches!(e(&[0x06]), Error::FeatureList { offset: 0, .. }));
        assert!(matches!(e(&[0x06, 3, 1, 2, 3]), Error::FeatureList { offset: 1, .. }));
        assert!(matches!(
            e(&[0x06, 4, 0x42, 0, 0x0D, 0xB2, 0x07, 4, 0x42]),
            Error::FeatureList { offset: 8, .. }
        ));
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn piv_verify_structure() {
        // SP 800-73-4 Pt 2 §3.2.1: VERIFY 00 20 00 80, 8-byte block, PIN 6-8 ASCII digits
        // padded with FF. Layout per PC/SC part 10 §2.5.2.
        let v = PinVerify::fixed_ascii([0x00, 0x20, 0x00, 0x80], 8, 0xFF, 6, 8).unwrap();
        let expected: Vec<u8> = [
            &[0x00, 0x00][..],         // bTimerOut, bTimerOut2
            &[0x82],                   // bmFormatString: bytes, offset 0, left, ASCII
            &[0x08],                   // bmPINBlockString: no length field, 8-byte block
            &[0x00],                   // bmPINLengthFormat
            &[0x08, 0x06],             // wPINMaxExtraDigit 0x0608 (min 6, max 8), LE
            &[0x02],                   // bEntryValidationCondition: validation key
            &[0xFF],                   // bNumberMessage: reader default
            &[0x09, 0x04],             // wLangId 0x0409
            &[0x00],                   // bMsgIndex
            &[0x00, 0x00, 0x00],       // bTeoPrologue
            &[0x0D, 0x00, 0x00, 0x00], // ulDataLength 13
            &[0x00, 0x20, 0x00, 0x80, 0x08],
            &[0xFF; 8],
        ]
        .concat();
        assert_eq!(v.encode(), expected);
        assert_eq!(v.encode().len(), 19 + 13);
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn openpgp_verify_structure_matches_gnupg() {
        // GnuPG's pcsc_pinpad_verify for OpenPGP PW1 (VERIFY 00 20 00 82), variable length
        // 6-64 digits... pin-pads cap at 25, GnuPG's range is 1-25 by default.
        let mut v = PinVerify::variable_ascii([0x00, 0x20, 0x00, 0x82], 6, 25).unwrap();
        v.timeout = 30;
        let bytes = v.encode();
        assert_eq!(
            bytes,
            [
                30, 0, 0x82, 0x00, 0x00, 25, 6, 0x02, 0xFF, 0x09, 0x04, 0, 0, 0, 0, 5, 0, 0, 0,
                0x00, 0x20, 0x00, 0x82, 0x00
            ]
        );
        // A fixed number of digits also validates on the last digit.
        let fixed = PinVerify::variable_ascii([0, 0x20, 0, 0x81], 6, 6).unwrap();
        assert_eq!(fixed.encode()[7], VALIDATE_KEY | VALIDATE_MAX_SIZE);
    }

    #[test]
    fn format_and_block_bits() {
        let f = PinFormat {
            coding: PinCoding::Bcd,
            justify_right: true,
            offset: 7,
            offset_in_bytes: false,
        };
        // offset in bits (0), offset 7 (0111), right (1), BCD (01).
        assert_eq!(f.byte().unwrap(), 0b0011_1101);
        // The ACR83 manual's example: bmFormatString 0x39, bmPINBlockString 0x49,
        // bmPINLengthFormat 0x02 (BCD, PIN at bit 7, 4-bit length at bit 2, 9-byte block).
        let f = PinFormat {
            coding: PinCoding::Bcd,
            justify_right: false,
            offset: 7,
            offset_in_bytes: false,
        };
        assert_eq!(f.byte().unwrap(), 0x39);
        let b = PinBlock {
            size: 9,
            length_bits: 4,
            length_position: 2,
            length_position_in_bytes: false,
        };
        assert_eq!(b.bytes().unwrap(), (0x49, 0x02));
        let v = PinVerify::new(
            &[0, 0x20, 0, 1, 9, 0x57, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30],
            f,
            b,
            1,
            10,
        )
        .unwrap();
        assert_eq!(&v.encode()[2..7], &[0x39, 0x49, 0x02, 10, 1]);
    }

    #[test]
    fn limits_are_enforced_by_constructors() {
        let bad = PinFormat { offset: 16, ..PinFormat::ASCII };
        assert!(matches!(
            PinVerify::new(&[0, 0x20, 0, 0x80], bad, PinBlock::default(), 4, 8),
            Err(Error::PinStructure { field: "bmFormatString offset", value: 16, max: 15 })
        ));
        assert!(PinVerify::fixed_ascii([0, 0x20, 0, 0x80], 16, 0xFF, 4, 8).is_err());
        assert!(PinVerify::variable_ascii([0, 0x20, 0, 0x80], 9, 8).is_err());
        assert!(PinVerify::variable_ascii([0, 0x20, 0, 0x80], 0, 0).is_err());
        assert!(
            PinVerify::new(&[0, 0x20, 0], PinFormat::ASCII, PinBlock::default(), 4, 8).is_err()
        );
        assert!(
            PinModify::new(
                &[0, 0x24, 0, 0x80],
                PinFormat::ASCII,
                PinBlock::default(),
                PinInsertion { offset_old: 0, offset_new: 8, confirm: 4 },
                4,
                8
            )
            .is_err()
        );
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn piv_modify_structure() {
        // SP 800-73-4 Pt 2 §3.2.2: CHANGE REFERENCE DATA 00 24 00 80, old and new PIN in
        // two 8-byte blocks. Layout per PC/SC part 10 §2.5.3.
        let m = PinModify::fixed_ascii([0x00, 0x24, 0x00, 0x80], 8, 0xFF, 6, 8).unwrap();
        let bytes = m.encode();
        assert_eq!(
            bytes[..24],
            [
                0, 0, 0x82, 0x08, 0x00, 0, 8, 8, 6, 0x03, 0x02, 0xFF, 0x09, 0x04, 0, 1, 2, 0, 0, 0,
                21, 0, 0, 0
            ]
        );
        assert_eq!(bytes[24..29], [0x00, 0x24, 0x00, 0x80, 16]);
        assert_eq!(bytes.len(), 24 + 21);
    }
}
