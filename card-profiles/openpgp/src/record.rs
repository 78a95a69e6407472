//! The cache freshness record this profile keeps on the card, in the private use DO 0102
//! (OpenPGP card 3.4 §4.4.1: read always, write after PW3), so that `cardcf` is the same for
//! every process and writer that uses this profile.
//!
//! Layout (20 bytes):
//! - 0..4: magic `scCF` (a DO holding anything else belongs to someone else: never touched);
//! - 4: version 1;
//! - 5..11: the `cardcf` file (Minidriver v7 §5.1.2: version, pins, containers u16 LE, files
//!   u16 LE);
//! - 11: which containers hold a certificate (bit n = container n), as last written by us;
//! - 12..20: the key digest ([`crate::ard::ApplicationData::key_digest`]: fingerprints C5 and
//!   generation dates CD) when the record was written.
//!
//! Other software (GnuPG, OpenSC) does not update the record. A key it generates, imports or
//! deletes changes the fingerprints and dates, so the digest no longer matches: the profile
//! then reports the container and file counters moved by a value derived from the new digest
//! (the same in every process), and reads the certificates to learn which exist. A
//! certificate written by other software without a key change is not noticed (a limit of
//! this scheme; GnuPG and OpenSC rarely write 7F21).

use scard_minidriver::CardCf;

/// The record's magic.
pub const MAGIC: [u8; 4] = *b"scCF";
/// The record's version.
pub const VERSION: u8 = 1;
/// The record's size.
pub const LEN: usize = 20;

/// What DO 0102 holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordState {
    /// The card has no private use DOs (extended capabilities C0 b4 clear).
    Unsupported,
    /// Nothing: the profile may create its record (with PW3).
    Empty,
    /// Someone else's data: left alone, the counters are kept in the module.
    Foreign,
    /// Our record.
    Ours(Record),
}

/// The decoded record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// The counters.
    pub cf: CardCf,
    /// Bit n: container n holds a certificate.
    pub certificates: u8,
    /// The key digest when written.
    pub digest: [u8; 8],
}

impl Record {
    /// Encodes the 20 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(LEN);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.cf.encode());
        out.push(self.certificates);
        out.extend_from_slice(&self.digest);
        out
    }

    /// The counters as they stand for a card whose key digest is now `digest`: the stored ones
    /// when nobody else changed the keys; else the container and file counters moved by
    /// 1 + a value taken from the new digest (never 0 mod 2^16, so they differ from the stored
    /// ones, and the same for every reader of the card).
    pub fn effective_cf(&self, digest: &[u8; 8]) -> CardCf {
        if *digest == self.digest {
            return self.cf;
        }
        let [d0, d1, d2, d3, ..] = *digest;
        let step = |x: u8, y: u8| (u16::from_le_bytes([x, y]) % 0xFFFF).wrapping_add(1);
        let mut cf = self.cf;
        cf.containers = cf.containers.wrapping_add(step(d0, d1));
        cf.files = cf.files.wrapping_add(step(d2, d3));
        cf
    }
}

impl RecordState {
    /// Decodes the content of DO 0102.
    pub fn decode(bytes: &[u8]) -> RecordState {
        match bytes {
            [] => RecordState::Empty,
            [m0, m1, m2, m3, VERSION, c @ .., certificates, d0, d1, d2, d3, d4, d5, d6, d7]
                if [*m0, *m1, *m2, *m3] == MAGIC && c.len() == CardCf::LEN =>
            {
                match CardCf::decode(c) {
                    Ok(cf) => RecordState::Ours(Record {
                        cf,
                        certificates: *certificates,
                        digest: [*d0, *d1, *d2, *d3, *d4, *d5, *d6, *d7],
                    }),
                    Err(_) => RecordState::Foreign,
                }
            }
            _ => RecordState::Foreign,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_foreign_data() {
        let rec = Record {
            cf: CardCf { version: 0, pins: 1, containers: 0x1234, files: 7 },
            certificates: 0b101,
            digest: [1, 2, 3, 4, 5, 6, 7, 8],
        };
        let bytes = rec.encode();
        assert_eq!(bytes.len(), LEN);
        assert_eq!(RecordState::decode(&bytes), RecordState::Ours(rec));
        assert_eq!(RecordState::decode(&[]), RecordState::Empty);
        assert_eq!(RecordState::decode(b"my own notes"), RecordState::Foreign);
        assert_eq!(RecordState::decode(&bytes[..19]), RecordState::Foreign);
        let mut other_version = bytes.clone();
        other_version[4] = 2;
        assert_eq!(RecordState::decode(&other_version), RecordState::Foreign);
    }

    #[test]
    fn a_foreign_key_change_moves_the_counters() {
        let rec = Record { cf: CardCf::default(), certificates: 0, digest: [9; 8] };
        assert_eq!(rec.effective_cf(&[9; 8]), rec.cf);
        for digest in [[0u8; 8], [0xFF; 8], [0xFE, 0xFF, 0, 0, 0, 0, 0, 0]] {
            let cf = rec.effective_cf(&digest);
            assert_ne!(cf.containers, rec.cf.containers);
            assert_ne!(cf.files, rec.cf.files);
            assert_eq!(cf.pins, rec.cf.pins);
        }
        assert_ne!(rec.effective_cf(&[1; 8]), rec.effective_cf(&[2; 8]));
    }
}
