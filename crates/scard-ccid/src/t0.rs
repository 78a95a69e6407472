//! Command APDUs over T=0 at TPDU level (ISO/IEC 7816-3 §12.2): the transport layer maps each
//! case to command TPDUs (CLA INS P1 P2 P3, then the data); the reader handles the procedure bytes
//! (§10.3.3) and returns the response TPDU: the data and SW1 SW2. This module decides which
//! TPDUs to send and assembles the response APDU, sans-IO.
//!
//! - Case 1: CLA INS P1 P2 00 (§12.2.2).
//! - Case 2: P3 = Le (00 means 256); `6Cxx` means "wrong length, resend with P3 = xx"
//!   (§12.2.3); `61xx` means more data: GET RESPONSE with P3 = min(xx, what is still wanted).
//! - Case 3: P3 = Lc with the data; the status word is the answer (§12.2.4).
//! - Case 4: sent as case 3; `61xx` is followed by GET RESPONSE (§12.2.5). A `9000` without data
//!   is final: no GET RESPONSE is invented.
//! - Extended case 2 (Ne > 256): P3 = 00 and GET RESPONSE while the card answers `61xx` and
//!   fewer than Ne bytes arrived. Command data longer than 255 bytes would need ENVELOPE and is
//!   refused.
//!
//! GET RESPONSE echoes the class byte of the command without the chaining bit (channel bits
//! and secure messaging indication kept), unless another class is configured.

use scard_iso7816::apdu::CommandApdu;
use zeroize::Zeroizing;

use crate::error::Error;

/// INS of GET RESPONSE (ISO/IEC 7816-4 §7.6.1).
const INS_GET_RESPONSE: u8 = 0xC0;
/// CLA bit b5: command chaining (ISO/IEC 7816-4 §5.4.1).
const CLA_CHAINING: u8 = 0x10;

/// Choices of the T=0 mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct T0Options {
    /// Most GET RESPONSE commands in one exchange (256 reach 64 KiB in 256-byte pieces).
    pub max_get_response: u16,
    /// The class byte of GET RESPONSE; `None` echoes the command's class.
    pub get_response_cla: Option<u8>,
    /// Largest response accepted (data and SW1 SW2).
    pub max_response: usize,
}

impl Default for T0Options {
    fn default() -> Self {
        Self { max_get_response: 256, get_response_cla: None, max_response: 65538 }
    }
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum T0Step {
    /// Send this command TPDU and feed its response TPDU back.
    Send(Zeroizing<Vec<u8>>),
    /// The response APDU (data and SW1 SW2).
    Done(Zeroizing<Vec<u8>>),
}

/// One command APDU being exchanged over T=0.
#[derive(Clone, PartialEq, Eq)]
pub struct T0Exchange {
    options: T0Options,
    cla: u8,
    /// Ne, when response data is expected.
    ne: Option<usize>,
    /// The TPDU in flight.
    tpdu: Zeroizing<Vec<u8>>,
    /// Whether the TPDU in flight is a case 2 TPDU (P3 is Le), so 6Cxx can correct it.
    tpdu_expects_data: bool,
    /// Whether the TPDU in flight was already resent after 6Cxx.
    resent: bool,
    data: Zeroizing<Vec<u8>>,
    rounds: u16,
    done: bool,
}

impl core::fmt::Debug for T0Exchange {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("T0Exchange")
            .field("ne", &self.ne)
            .field("tpdu_len", &self.tpdu.len())
            .field("received", &self.data.len())
            .field("rounds", &self.rounds)
            .field("done", &self.done)
            .finish()
    }
}

impl T0Exchange {
    /// Maps `apdu` to its first TPDU.
    pub fn new(apdu: &[u8], options: T0Options) -> Result<(Self, Zeroizing<Vec<u8>>), Error> {
        let cmd = CommandApdu::decode(apdu)?;
        let nc = cmd.data().len();
        if nc > 255 {
            return Err(Error::T0CommandTooLong { nc });
        }
        let ne = cmd.ne().and_then(|ne| usize::try_from(ne).ok());
        let mut tpdu = Zeroizing::new(Vec::with_capacity(5 + nc));
        tpdu.extend_from_slice(&cmd.header());
        let expects_data = match (nc, ne) {
            // §12.2.2: case 1, P3 = 00.
            (0, None) => {
                tpdu.push(0);
                false
            }
            // §12.2.3: case 2, P3 = Le (Ne 256 and above: 00).
            (0, Some(ne)) => {
                tpdu.push(u8::try_from(ne).unwrap_or(0));
                true
            }
            // §12.2.4, §12.2.5: cases 3 and 4, P3 = Lc and the data.
            (nc, _) => {
                tpdu.push(u8::try_from(nc).unwrap_or(0));
                tpdu.extend_from_slice(cmd.data());
                false
            }
        };
        let cla = options.get_response_cla.unwrap_or(cmd.cla() & !CLA_CHAINING);
        let first = tpdu.clone();
        Ok((
            Self {
                options,
                cla,
                ne,
                tpdu,
                tpdu_expects_data: expects_data,
                resent: false,
                data: Zeroizing::new(Vec::new()),
                rounds: 0,
                done: false,
            },
            first,
        ))
    }

    /// The TPDU in flight.
    pub fn tpdu(&self) -> &[u8] {
        &self.tpdu
    }

    /// Whether the exchange is over.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feeds the response TPDU of the TPDU in flight.
    pub fn receive(&mut self, response: &[u8]) -> Result<T0Step, Error> {
        if self.done {
            return Err(Error::T0Finished);
        }
        let (body, sw) = match response.len().checked_sub(2).map(|n| response.split_at(n)) {
            Some((body, [sw1, sw2])) => (body, (*sw1, *sw2)),
            _ => {
                self.done = true;
                return Err(Error::T0ResponseTooShort { len: response.len() });
            }
        };
        match sw {
            // §12.2.3: 6Cxx to a TPDU whose P3 is Le: send it again with P3 = xx.
            (0x6C, xx) if self.tpdu_expects_data => {
                if self.resent {
                    self.done = true;
                    return Err(Error::T0WrongLengthLoop);
                }
                self.resent = true;
                if let Some(p3) = self.tpdu.get_mut(4) {
                    *p3 = xx;
                }
                Ok(T0Step::Send(self.tpdu.clone()))
            }
            // §12.2.3, §12.2.5: 61xx, more data available, when the command wants data.
            (0x61, xx) if self.ne.is_some() => {
                self.push(body)?;
                let wanted = self.ne.unwrap_or(0).saturating_sub(self.data.len());
                if wanted == 0 {
                    return self.finish(sw);
                }
                self.rounds += 1;
                if self.rounds > self.options.max_get_response {
                    self.done = true;
                    return Err(Error::T0GetResponseLoop { rounds: self.rounds });
                }
                let available = if xx == 0 { 256 } else { usize::from(xx) };
                let le = available.min(wanted).min(256);
                self.tpdu = Zeroizing::new(vec![
                    self.cla,
                    INS_GET_RESPONSE,
                    0x00,
                    0x00,
                    u8::try_from(le).unwrap_or(0),
                ]);
                self.tpdu_expects_data = true;
                self.resent = false;
                Ok(T0Step::Send(self.tpdu.clone()))
            }
            _ => {
                self.push(body)?;
                self.finish(sw)
            }
        }
    }

    fn push(&mut self, body: &[u8]) -> Result<(), Error> {
        if self.data.len() + body.len() + 2 > self.options.max_response {
            self.done = true;
            return Err(Error::T0ResponseTooLong { max: self.options.max_response });
        }
        self.data.extend_from_slice(body);
        Ok(())
    }

    fn finish(&mut self, (sw1, sw2): (u8, u8)) -> Result<T0Step, Error> {
        self.done = true;
        let mut out = core::mem::replace(&mut self.data, Zeroizing::new(Vec::new()));
        out.extend_from_slice(&[sw1, sw2]);
        Ok(T0Step::Done(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scard_iso7816::hex::{decode_lenient as h, encode_spaced};

    /// Runs the exchange against scripted response TPDUs; checks each TPDU sent.
    fn run(apdu: &str, script: &[(&str, &str)]) -> Result<String, Error> {
        let (mut ex, mut tpdu) = T0Exchange::new(&h(apdu).unwrap(), T0Options::default())?;
        for (n, (expected, answer)) in script.iter().enumerate() {
            assert_eq!(encode_spaced(&tpdu), *expected, "TPDU {n}");
            match ex.receive(&h(answer).unwrap())? {
                T0Step::Send(next) => tpdu = next,
                T0Step::Done(r) => {
                    assert_eq!(n + 1, script.len(), "done early");
                    return Ok(encode_spaced(&r));
                }
            }
        }
        panic!("script ended before the exchange");
    }

    #[test]
    fn case_1_and_3() {
        // Case 1: P3 = 00.
        assert_eq!(run("00 A4 00 00", &[("00 A4 00 00 00", "90 00")]).unwrap(), "90 00");
        // Case 3: P3 = Lc; 61xx passes through (no data was asked for).
        assert_eq!(
            run("00 22 41 B6 03 80 01 01", &[("00 22 41 B6 03 80 01 01", "61 10")]).unwrap(),
            "61 10"
        );
    }

    #[test]
    fn case_2_with_6cxx_and_61xx() {
        // Le 00 (256) but the card has 8 bytes: 6C08, resend with P3 = 08.
        assert_eq!(
            run(
                "00 CA 00 6E 00",
                &[("00 CA 00 6E 00", "6C 08"), ("00 CA 00 6E 08", "01 02 03 04 05 06 07 08 90 00")]
            )
            .unwrap(),
            "01 02 03 04 05 06 07 08 90 00"
        );
        // A second 6Cxx after the resend is an error.
        assert_eq!(
            run("00 CA 00 6E 00", &[("00 CA 00 6E 00", "6C 08"), ("00 CA 00 6E 08", "6C 04")]),
            Err(Error::T0WrongLengthLoop)
        );
        // 61xx after a case 2 command: GET RESPONSE for the rest.
        assert_eq!(
            run(
                "00 B0 00 00 04",
                &[("00 B0 00 00 04", "AA BB 61 02"), ("00 C0 00 00 02", "CC DD 90 00")]
            )
            .unwrap(),
            "AA BB CC DD 90 00"
        );
    }

    #[test]
    fn case_4_becomes_case_3_and_get_response() {
        // The libcacard CAC applet under QEMU (../shared/qemu-ccid.md §5): SELECT answers 61 0D.
        assert_eq!(
            run(
                "00 A4 04 00 07 A0 00 00 00 79 01 00 00",
                &[
                    ("00 A4 04 00 07 A0 00 00 00 79 01 00", "61 0D"),
                    ("00 C0 00 00 0D", "6F 0B 84 07 A0 00 00 00 79 01 00 A5 00 90 00"),
                ]
            )
            .unwrap(),
            "6F 0B 84 07 A0 00 00 00 79 01 00 A5 00 90 00"
        );
        // 9000 without data is final.
        assert_eq!(
            run("00 A4 04 00 01 AA 00", &[("00 A4 04 00 01 AA", "90 00")]).unwrap(),
            "90 00"
        );
        // A GET RESPONSE with a wrong Le answered 6Cxx is corrected.
        assert_eq!(
            run(
                "00 A4 04 00 01 AA 00",
                &[
                    ("00 A4 04 00 01 AA", "61 00"),
                    ("00 C0 00 00 00", "6C 03"),
                    ("00 C0 00 00 03", "01 02 03 90 00")
                ]
            )
            .unwrap(),
            "01 02 03 90 00"
        );
        // Ne smaller than what the card offers: GET RESPONSE asks for Ne only.
        assert_eq!(
            run(
                "00 A4 04 00 01 AA 02",
                &[("00 A4 04 00 01 AA", "61 20"), ("00 C0 00 00 02", "01 02 61 1E")]
            )
            .unwrap(),
            "01 02 61 1E"
        );
        // Errors pass through.
        assert_eq!(
            run("00 A4 04 00 01 AA 00", &[("00 A4 04 00 01 AA", "6A 82")]).unwrap(),
            "6A 82"
        );
    }

    #[test]
    fn get_response_class_and_loop_bound() {
        // Logical channel 1, command chaining bit cleared for GET RESPONSE.
        assert_eq!(
            run("11 B0 00 00 00", &[("11 B0 00 00 00", "61 01"), ("01 C0 00 00 01", "AA 90 00")])
                .unwrap(),
            "AA 90 00"
        );
        let opts = T0Options { max_get_response: 2, ..T0Options::default() };
        let (mut ex, _) = T0Exchange::new(&h("00 B0 00 00 00 01 00").unwrap(), opts).unwrap();
        assert!(matches!(ex.receive(&[1, 0x61, 0x01]).unwrap(), T0Step::Send(_)));
        assert!(matches!(ex.receive(&[2, 0x61, 0x01]).unwrap(), T0Step::Send(_)));
        assert_eq!(ex.receive(&[3, 0x61, 0x01]), Err(Error::T0GetResponseLoop { rounds: 3 }));
        assert!(ex.is_done());
        assert_eq!(ex.receive(&[0x90, 0]), Err(Error::T0Finished));
    }

    #[test]
    fn extended_case_2() {
        // Ne 300: P3 = 00, 256 bytes with 61 2C, then GET RESPONSE for 44.
        let first = format!("{}61 2C", "AB ".repeat(256));
        let second = format!("{}90 00", "CD ".repeat(44));
        let r =
            run("00 B0 00 00 00 01 2C", &[("00 B0 00 00 00", &first), ("00 C0 00 00 2C", &second)])
                .unwrap();
        assert_eq!(r.len(), (300 + 2) * 3 - 1);
        // Command data over 255 bytes is refused.
        let mut long = h("00 D6 00 00 00 01 2C").unwrap();
        long.extend(vec![0; 300]);
        assert_eq!(
            T0Exchange::new(&long, T0Options::default()).unwrap_err(),
            Error::T0CommandTooLong { nc: 300 }
        );
    }

    #[test]
    fn malformed_responses() {
        let (mut ex, _) =
            T0Exchange::new(&h("00 B0 00 00 00").unwrap(), T0Options::default()).unwrap();
        assert_eq!(ex.receive(&[0x90]), Err(Error::T0ResponseTooShort { len: 1 }));
        assert!(T0Exchange::new(&[0x00, 0xA4], T0Options::default()).is_err());
        let opts = T0Options { max_response: 4, ..T0Options::default() };
        let (mut ex, _) = T0Exchange::new(&h("00 B0 00 00 00").unwrap(), opts).unwrap();
        assert_eq!(ex.receive(&[1, 2, 3, 0x90, 0]), Err(Error::T0ResponseTooLong { max: 4 }));
    }
}
