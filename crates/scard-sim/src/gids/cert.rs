//! The minidriver's compressed certificate file format that OpenSC reads from a GIDS card.

/// The minidriver's certificate file as OpenSC's gids_encode_certificate writes it and
/// gids_read_binary reads it back (OpenSC card-gids.c; the GIDS and minidriver specifications
/// do not document it): 01 00 (compression version), the uncompressed length as u16 LE, then
/// the zlib stream (RFC 1950, what zlib's uncompress() takes).
pub(super) fn compressed_file(certificate: &[u8]) -> Vec<u8> {
    let len = u16::try_from(certificate.len()).unwrap_or(u16::MAX);
    let mut out = vec![0x01, 0x00];
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crate::cert::zlib(certificate));
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Inflates a zlib stream.
    pub(crate) fn inflate(stream: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(stream), &mut out).unwrap();
        out
    }

    #[test]
    fn compressed_file_layout() {
        let file = compressed_file(b"cert");
        assert_eq!(&file[..4], &[1, 0, 4, 0]);
        assert_eq!(inflate(&file[4..]), b"cert");
    }
}
