//! The minidriver logical file system (Minidriver v7 §5): file names, the `cardcf` cache file,
//! the `mscp/cmapfile` container map, and certificate compression of `kxc`/`ksc` files.

use std::io::{Read, Write};

use crate::error::{CardError, Result};
use crate::types::ContainerInfo;

/// A file of the logical file system, by what it means.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FilePath {
    /// `cardid`: the 16-byte card identity (Minidriver v7 §5.1.1).
    CardId,
    /// `cardcf`: the cache freshness file (§5.1.2).
    CardCf,
    /// `cardapps`: the application directory (§5.1.3), 8-byte names.
    CardApps,
    /// `mscp/cmapfile`: the container map (§5.2.1).
    CmapFile,
    /// `mscp/kxcNN`: the key exchange certificate of container NN (§5.2.2).
    KeyExchangeCert(u8),
    /// `mscp/kscNN`: the signature certificate of container NN.
    SignatureCert(u8),
    /// `mscp/msroots`: trusted roots (§5.2.3).
    MsRoots,
    /// Any other file (directory name, file name).
    Other(Option<String>, String),
}

impl FilePath {
    /// Parses `cardid`, `mscp/cmapfile`, `mscp/kxc00`, ... (a leading `/` is allowed, names are
    /// case-insensitive as on Windows; directory and file names are at most 8 characters).
    pub fn parse(path: &str) -> Result<Self> {
        let bad = |reason: &str| CardError::InvalidInput {
            what: "file name",
            reason: format!("{path:?}: {reason}"),
        };
        let trimmed = path.trim_start_matches('/').to_ascii_lowercase();
        let (dir, name) = match trimmed.split_once('/') {
            Some((d, n)) => (Some(d.to_owned()), n.to_owned()),
            None => (None, trimmed.clone()),
        };
        if name.is_empty() || name.len() > 8 || name.contains('/') {
            return Err(bad("a file name is 1 to 8 characters, in the root or one directory"));
        }
        if dir.as_ref().is_some_and(|d| d.is_empty() || d.len() > 8) {
            return Err(bad("a directory name is 1 to 8 characters"));
        }
        let cert_index = |prefix: &str| -> Option<u8> {
            let digits = name.strip_prefix(prefix)?;
            if digits.len() == 2 && digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                u8::from_str_radix(digits, 16).ok()
            } else {
                None
            }
        };
        Ok(match (dir.as_deref(), name.as_str()) {
            (None, "cardid") => FilePath::CardId,
            (None, "cardcf") => FilePath::CardCf,
            (None, "cardapps") => FilePath::CardApps,
            (Some("mscp"), "cmapfile") => FilePath::CmapFile,
            (Some("mscp"), "msroots") => FilePath::MsRoots,
            (Some("mscp"), _) if cert_index("kxc").is_some() => {
                FilePath::KeyExchangeCert(cert_index("kxc").unwrap_or_default())
            }
            (Some("mscp"), _) if cert_index("ksc").is_some() => {
                FilePath::SignatureCert(cert_index("ksc").unwrap_or_default())
            }
            _ => FilePath::Other(dir, name),
        })
    }

    /// The canonical name.
    pub fn name(&self) -> String {
        match self {
            FilePath::CardId => "cardid".into(),
            FilePath::CardCf => "cardcf".into(),
            FilePath::CardApps => "cardapps".into(),
            FilePath::CmapFile => "mscp/cmapfile".into(),
            FilePath::MsRoots => "mscp/msroots".into(),
            FilePath::KeyExchangeCert(n) => format!("mscp/kxc{n:02x}"),
            FilePath::SignatureCert(n) => format!("mscp/ksc{n:02x}"),
            FilePath::Other(Some(d), n) => format!("{d}/{n}"),
            FilePath::Other(None, n) => n.clone(),
        }
    }

    /// The certificate file of a container, by its key spec (kxc for key exchange, ksc else).
    pub fn certificate(container: &ContainerInfo) -> Option<FilePath> {
        let spec = container.key_spec?;
        Some(if spec.is_exchange() {
            FilePath::KeyExchangeCert(container.index)
        } else {
            FilePath::SignatureCert(container.index)
        })
    }
}

/// Information about a file (Minidriver v7 `CARD_FILE_INFO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    /// Size in bytes.
    pub size: usize,
    /// Who may read: everyone (true) or the user only.
    pub read_everyone: bool,
    /// Who may write: the user (true) or the admin only.
    pub write_user: bool,
}

/// The `cardcf` file (Minidriver v7 §5.1.2, `CARD_CACHE_FILE_FORMAT`): 6 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CardCf {
    /// Offset 0: version (0).
    pub version: u8,
    /// Offset 1: PIN freshness, incremented on every PIN change.
    pub pins: u8,
    /// Offsets 2-3: container freshness (u16 little-endian), on every key/container change.
    pub containers: u16,
    /// Offsets 4-5: file freshness (u16 little-endian), on every file write.
    pub files: u16,
}

impl CardCf {
    /// Encoded size.
    pub const LEN: usize = 6;

    /// Decodes exactly 6 bytes (some cards store more: the rest is ignored only if the caller
    /// cut it off).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        match bytes {
            [version, pins, c0, c1, f0, f1] => Ok(Self {
                version: *version,
                pins: *pins,
                containers: u16::from_le_bytes([*c0, *c1]),
                files: u16::from_le_bytes([*f0, *f1]),
            }),
            _ => Err(CardError::Malformed {
                operation: "reading cardcf",
                reason: format!("{} bytes, cardcf has 6", bytes.len()),
            }),
        }
    }

    /// Encodes.
    pub fn encode(&self) -> [u8; 6] {
        let [c0, c1] = self.containers.to_le_bytes();
        let [f0, f1] = self.files.to_le_bytes();
        [self.version, self.pins, c0, c1, f0, f1]
    }

    /// After a PIN change.
    pub fn bump_pins(&mut self) {
        self.pins = self.pins.wrapping_add(1);
    }
    /// After a container change (key generated, imported, deleted).
    pub fn bump_containers(&mut self) {
        self.containers = self.containers.wrapping_add(1);
    }
    /// After a file write or delete.
    pub fn bump_files(&mut self) {
        self.files = self.files.wrapping_add(1);
    }
}

/// `CONTAINER_MAP_RECORD` flag: the record is in use.
pub const CONTAINER_MAP_VALID: u8 = 0x01;
/// `CONTAINER_MAP_RECORD` flag: the card's default container.
pub const CONTAINER_MAP_DEFAULT: u8 = 0x02;

/// One 86-byte record of `mscp/cmapfile` (Minidriver v7 §5.2.1, `CONTAINER_MAP_RECORD`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerMapRecord {
    /// Offsets 0-79: the container name, up to 39 UTF-16LE characters, zero-terminated.
    pub name: String,
    /// Offset 80: flags ([`CONTAINER_MAP_VALID`], [`CONTAINER_MAP_DEFAULT`]).
    pub flags: u8,
    /// Offset 82-83: signature key size in bits (u16 LE), 0 when none.
    pub sig_key_bits: u16,
    /// Offset 84-85: key exchange key size in bits (u16 LE), 0 when none.
    pub kx_key_bits: u16,
}

impl ContainerMapRecord {
    /// Size of a record.
    pub const LEN: usize = 86;
    /// Name characters (UTF-16 code units, including the terminating zero).
    const NAME_UNITS: usize = 40;

    /// The record of a container; a container without a key gives a zero-filled record (a
    /// deleted record is zero-filled, never removed).
    pub fn of(container: &ContainerInfo) -> Self {
        let Some(spec) = container.key_spec else { return Self::default() };
        let bits = container.algorithm.map_or(0, |a| a.bits());
        let mut flags = CONTAINER_MAP_VALID;
        if container.default {
            flags |= CONTAINER_MAP_DEFAULT;
        }
        let (sig_key_bits, kx_key_bits) = if spec.is_exchange() { (0, bits) } else { (bits, 0) };
        Self { name: container.name.clone(), flags, sig_key_bits, kx_key_bits }
    }

    /// Whether the record is in use.
    pub fn is_valid(&self) -> bool {
        self.flags & CONTAINER_MAP_VALID != 0
    }

    /// Encodes 86 bytes (a name longer than 39 UTF-16 units is cut).
    pub fn encode(&self) -> [u8; 86] {
        let mut out = [0u8; 86];
        for (slot, unit) in
            out.chunks_exact_mut(2).zip(self.name.encode_utf16().take(Self::NAME_UNITS - 1))
        {
            slot.copy_from_slice(&unit.to_le_bytes());
        }
        if let Some(b) = out.get_mut(80) {
            *b = self.flags;
        }
        if let Some(s) = out.get_mut(82..84) {
            s.copy_from_slice(&self.sig_key_bits.to_le_bytes());
        }
        if let Some(s) = out.get_mut(84..86) {
            s.copy_from_slice(&self.kx_key_bits.to_le_bytes());
        }
        out
    }

    /// Decodes one 86-byte record.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let bad =
            |reason: String| CardError::Malformed { operation: "reading mscp/cmapfile", reason };
        if bytes.len() != Self::LEN {
            return Err(bad(format!("record of {} bytes, expected 86", bytes.len())));
        }
        let units: Vec<u16> = bytes
            .get(..80)
            .unwrap_or_default()
            .chunks_exact(2)
            .map(|c| {
                u16::from_le_bytes([
                    c.first().copied().unwrap_or(0),
                    c.get(1).copied().unwrap_or(0),
                ])
            })
            .take_while(|&u| u != 0)
            .collect();
        let name =
            String::from_utf16(&units).map_err(|_| bad("container name is not UTF-16".into()))?;
        let byte = |i: usize| bytes.get(i).copied().unwrap_or(0);
        Ok(Self {
            name,
            flags: byte(80),
            sig_key_bits: u16::from_le_bytes([byte(82), byte(83)]),
            kx_key_bits: u16::from_le_bytes([byte(84), byte(85)]),
        })
    }
}

/// Encodes a whole cmapfile, one record per container index in order.
pub fn encode_cmapfile(containers: &[ContainerInfo]) -> Vec<u8> {
    let mut sorted: Vec<&ContainerInfo> = containers.iter().collect();
    sorted.sort_by_key(|c| c.index);
    let count = sorted.last().map_or(0, |c| usize::from(c.index) + 1);
    let mut out = vec![0u8; count * ContainerMapRecord::LEN];
    for c in sorted {
        let at = usize::from(c.index) * ContainerMapRecord::LEN;
        if let Some(slot) = out.get_mut(at..at + ContainerMapRecord::LEN) {
            slot.copy_from_slice(&ContainerMapRecord::of(c).encode());
        }
    }
    out
}

/// Decodes a whole cmapfile (a length that is not a multiple of 86 is an error).
pub fn decode_cmapfile(bytes: &[u8]) -> Result<Vec<ContainerMapRecord>> {
    if bytes.len() % ContainerMapRecord::LEN != 0 {
        return Err(CardError::Malformed {
            operation: "reading mscp/cmapfile",
            reason: format!("{} bytes is not a whole number of 86-byte records", bytes.len()),
        });
    }
    bytes.chunks_exact(ContainerMapRecord::LEN).map(ContainerMapRecord::decode).collect()
}

/// Largest certificate we inflate (a certificate is a few KiB; this bounds a zlib bomb).
pub const MAX_CERTIFICATE: usize = 64 * 1024;

/// Compresses a certificate the way Windows stores kxc/ksc files on cards that compress
/// (Minidriver v7 §6.3.1 `CARD_CERTIFICATE_COMPRESSED`): 2-byte flag 01 00, 2-byte
/// little-endian uncompressed length, then a zlib stream.
pub fn compress_certificate(der: &[u8]) -> Result<Vec<u8>> {
    let len = u16::try_from(der.len()).map_err(|_| CardError::InvalidInput {
        what: "certificate",
        reason: format!("{} bytes; a compressed kxc/ksc holds at most 65535", der.len()),
    })?;
    let mut out = vec![0x01, 0x00];
    out.extend_from_slice(&len.to_le_bytes());
    let mut enc = flate2::write::ZlibEncoder::new(out, flate2::Compression::best());
    enc.write_all(der).and_then(|_| enc.finish()).map_err(|e| CardError::Crypto {
        operation: "compressing a certificate",
        reason: e.to_string(),
    })
}

/// The DER of a kxc/ksc file: compressed files (flag 01 00) are inflated and their length
/// checked; anything starting with a DER SEQUENCE is returned as it is.
pub fn decompress_certificate(file: &[u8]) -> Result<Vec<u8>> {
    let bad =
        |reason: String| CardError::Malformed { operation: "reading a certificate file", reason };
    match file {
        [0x01, 0x00, l0, l1, stream @ ..] => {
            let len = usize::from(u16::from_le_bytes([*l0, *l1]));
            inflate(flate2::read::ZlibDecoder::new(stream), len).map_err(bad)
        }
        [0x30, ..] => Ok(file.to_vec()),
        [] => Err(bad("empty certificate file".into())),
        _ => Err(bad("neither a compressed certificate (01 00) nor DER".into())),
    }
}

/// Inflates at most `expected` bytes from `reader` and requires exactly that many.
pub fn inflate(reader: impl Read, expected: usize) -> std::result::Result<Vec<u8>, String> {
    if expected > MAX_CERTIFICATE {
        return Err(format!("declared length {expected} exceeds {MAX_CERTIFICATE}"));
    }
    let mut out = Vec::with_capacity(expected);
    reader
        .take(expected as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("bad compressed data: {e}"))?;
    if out.len() != expected {
        return Err(format!("inflated {} bytes, the header says {expected}", out.len()));
    }
    Ok(out)
}

/// Inflates a gzip (PIV CertInfo bit 0: SP 800-73-4 Pt 1 Table 10) or zlib stream of unknown
/// length, at most [`MAX_CERTIFICATE`] bytes.
pub fn gunzip_certificate(data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let result = if data.starts_with(&[0x1F, 0x8B]) {
        flate2::read::GzDecoder::new(data).take(MAX_CERTIFICATE as u64 + 1).read_to_end(&mut out)
    } else {
        flate2::read::ZlibDecoder::new(data).take(MAX_CERTIFICATE as u64 + 1).read_to_end(&mut out)
    };
    result.map_err(|e| CardError::Malformed {
        operation: "reading a compressed certificate",
        reason: e.to_string(),
    })?;
    if out.len() > MAX_CERTIFICATE {
        return Err(CardError::Malformed {
            operation: "reading a compressed certificate",
            reason: format!("inflates past {MAX_CERTIFICATE} bytes"),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{KeyAlgorithm, KeySpec, PinId};

    fn container(index: u8, spec: Option<KeySpec>, default: bool) -> ContainerInfo {
        ContainerInfo {
            index,
            key_ref: 0x9A,
            name: format!("c{index}"),
            label: String::new(),
            default,
            key_spec: spec,
            algorithm: spec.map(|_| KeyAlgorithm::Rsa(2048)),
            public_key: None,
            has_certificate: false,
            always_authenticate: false,
            pin: PinId::USER,
        }
    }

    #[test]
    fn cardcf_layout() {
        // Minidriver v7 §5.1.2: version, pins, containers u16 LE, files u16 LE.
        let mut cf = CardCf::decode(&[0, 1, 0x34, 0x12, 0xFF, 0xFF]).unwrap();
        assert_eq!((cf.pins, cf.containers, cf.files), (1, 0x1234, 0xFFFF));
        cf.bump_files();
        cf.bump_containers();
        cf.bump_pins();
        assert_eq!(cf.encode(), [0, 2, 0x35, 0x12, 0, 0]);
        assert!(CardCf::decode(&[0; 5]).is_err());
    }

    #[test]
    fn cmapfile_records() {
        let cs = [
            container(0, Some(KeySpec::Exchange), true),
            container(2, Some(KeySpec::Signature), false),
            container(1, None, false),
        ];
        let file = encode_cmapfile(&cs);
        assert_eq!(file.len(), 3 * 86);
        let records = decode_cmapfile(&file).unwrap();
        assert_eq!(records[0].name, "c0");
        assert_eq!(records[0].flags, CONTAINER_MAP_VALID | CONTAINER_MAP_DEFAULT);
        assert_eq!((records[0].sig_key_bits, records[0].kx_key_bits), (0, 2048));
        // The empty container 1 is a zero-filled record, not removed.
        assert!(file[86..172].iter().all(|&b| b == 0));
        assert!(!records[1].is_valid());
        assert_eq!((records[2].sig_key_bits, records[2].kx_key_bits), (2048, 0));
        // Name as UTF-16LE at offset 0, flags at 80.
        assert_eq!(&file[..6], &[b'c', 0, b'0', 0, 0, 0]);
        assert_eq!(file[80], 3);
        assert!(decode_cmapfile(&file[..85]).is_err());
    }

    #[test]
    fn file_names() {
        assert_eq!(FilePath::parse("/mscp/KXC01").unwrap(), FilePath::KeyExchangeCert(1));
        assert_eq!(FilePath::parse("mscp/ksc0a").unwrap(), FilePath::SignatureCert(10));
        assert_eq!(FilePath::parse("cardcf").unwrap(), FilePath::CardCf);
        assert_eq!(
            FilePath::parse("mscp/kxc1").unwrap(),
            FilePath::Other(Some("mscp".into()), "kxc1".into())
        );
        assert!(FilePath::parse("a/b/c").is_err());
        assert!(FilePath::parse("toolongname").is_err());
        assert_eq!(FilePath::KeyExchangeCert(3).name(), "mscp/kxc03");
    }

    #[test]
    fn certificate_compression_roundtrip() {
        let der: Vec<u8> =
            std::iter::once(0x30).chain((0..1000u32).map(|i| (i % 7) as u8)).collect();
        let file = compress_certificate(&der).unwrap();
        assert_eq!(&file[..4], &[0x01, 0x00, (der.len() & 0xFF) as u8, (der.len() >> 8) as u8]);
        assert!(file.len() < der.len());
        assert_eq!(decompress_certificate(&file).unwrap(), der);
        assert_eq!(decompress_certificate(&der).unwrap(), der);
        // A wrong declared length is an error, not a silent truncation.
        let mut lie = file.clone();
        lie[2] ^= 1;
        assert!(decompress_certificate(&lie).is_err());
        assert!(decompress_certificate(&[0x02, 0x00]).is_err());
    }
}
