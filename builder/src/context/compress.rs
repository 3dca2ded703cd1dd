//! Recognizing tar archives: the compression (by magic bytes: gzip, bzip2, xz, zstd or none)
//! and a valid first tar header, as `docker build` does for `ADD` sources and tar contexts.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// How an archive stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveCompression {
    /// A plain stream.
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// bzip2 (`BZh`).
    Bzip2,
    /// xz (`fd 37 7a 58 5a 00`).
    Xz,
    /// zstd (`28 b5 2f fd`).
    Zstd,
}

impl ArchiveCompression {
    /// The compression `head` (the first bytes of a stream) starts with.
    pub fn detect(head: &[u8]) -> ArchiveCompression {
        if head.starts_with(&[0x1f, 0x8b]) {
            ArchiveCompression::Gzip
        } else if head.starts_with(b"BZh") {
            ArchiveCompression::Bzip2
        } else if head.starts_with(&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) {
            ArchiveCompression::Xz
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            ArchiveCompression::Zstd
        } else {
            ArchiveCompression::None
        }
    }
}

/// Wraps `reader` in the decoder its first bytes call for; returns the compression found.
pub fn decompress<'a>(
    reader: impl Read + 'a,
) -> io::Result<(ArchiveCompression, Box<dyn Read + 'a>)> {
    let mut buffered = BufReader::with_capacity(64 * 1024, reader);
    let head = buffered.fill_buf()?;
    let how = ArchiveCompression::detect(head);
    let decoded: Box<dyn Read + 'a> = match how {
        ArchiveCompression::None => Box::new(buffered),
        ArchiveCompression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        ArchiveCompression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(buffered)),
        ArchiveCompression::Xz => {
            Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(buffered))
        }
        ArchiveCompression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
    };
    Ok((how, decoded))
}

/// Whether `block` (512 bytes) is a tar header with a valid checksum (an all-zero block, the
/// end of an archive, is not).
pub fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < 512 || block.iter().all(|b| *b == 0) {
        return false;
    }
    let field = &block[148..156];
    let text: String =
        field.iter().map(|b| *b as char).filter(|c| !matches!(c, ' ' | '\0')).collect();
    let Ok(stored) = u32::from_str_radix(&text, 8) else { return false };
    let sum: u32 = block[..512]
        .iter()
        .enumerate()
        .map(|(i, b)| if (148..156).contains(&i) { u32::from(b' ') } else { u32::from(*b) })
        .sum();
    sum == stored
}

/// Whether the regular file at `path` is a tar archive, plain or compressed (its first member
/// header is read). Anything unreadable or undecodable is "not an archive", as in BuildKit.
pub fn is_tar_archive(path: &Path) -> bool {
    let Ok(file) = File::open(path) else { return false };
    let Ok((_, mut decoded)) = decompress(file) else { return false };
    let mut block = Vec::with_capacity(512);
    match decoded.by_ref().take(512).read_to_end(&mut block) {
        Ok(_) => is_tar_header(&block),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes() {
        assert_eq!(ArchiveCompression::detect(&[0x1f, 0x8b, 8]), ArchiveCompression::Gzip);
        assert_eq!(ArchiveCompression::detect(b"BZh91AY"), ArchiveCompression::Bzip2);
        assert_eq!(
            ArchiveCompression::detect(&[0xfd, b'7', b'z', b'X', b'Z', 0, 0]),
            ArchiveCompression::Xz
        );
        assert_eq!(ArchiveCompression::detect(&[0x28, 0xb5, 0x2f, 0xfd]), ArchiveCompression::Zstd);
        assert_eq!(ArchiveCompression::detect(b"FROM scratch"), ArchiveCompression::None);
        assert_eq!(ArchiveCompression::detect(b""), ArchiveCompression::None);
    }

    #[test]
    fn tar_headers_need_a_valid_checksum() {
        let mut block = vec![0u8; 512];
        block[..5].copy_from_slice(b"a.txt");
        block[156] = b'0';
        block[148..156].copy_from_slice(b"        ");
        let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
        block[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        assert!(is_tar_header(&block));
        block[0] = b'b';
        assert!(!is_tar_header(&block));
        assert!(!is_tar_header(&[0u8; 512]));
        assert!(!is_tar_header(b"short"));
    }
}
