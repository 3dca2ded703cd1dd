//! Layer compression: encoders for writing, media-type (and magic-byte) driven decoders for reading.

use std::io::{self, BufRead, BufReader, Read, Write};

use crate::error::{Error, Result};

use super::{
    MEDIA_TYPE_DOCKER_FOREIGN_LAYER, MEDIA_TYPE_DOCKER_LAYER, MEDIA_TYPE_TAR, MEDIA_TYPE_TAR_GZIP,
    MEDIA_TYPE_TAR_ZSTD,
};

/// The compression of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (zlib-rs), `level` 0..=9. Level 6 is what `docker build` and BuildKit use.
    Gzip {
        /// Compression level, 0 (store) to 9 (best).
        level: u32,
    },
    /// zstd, `level` 1..=22 (multithreaded mode, whose bytes do not depend on the worker count).
    Zstd {
        /// Compression level.
        level: i32,
    },
}

impl Default for Compression {
    /// gzip at level 6.
    fn default() -> Compression {
        Compression::Gzip { level: 6 }
    }
}

impl Compression {
    /// The OCI layer media type for this compression.
    pub fn media_type(&self) -> &'static str {
        match self {
            Compression::None => MEDIA_TYPE_TAR,
            Compression::Gzip { .. } => MEDIA_TYPE_TAR_GZIP,
            Compression::Zstd { .. } => MEDIA_TYPE_TAR_ZSTD,
        }
    }

    /// Checks the level is in range.
    pub(crate) fn validate(&self) -> Result<()> {
        match *self {
            Compression::Gzip { level } if level > 9 => {
                Err(Error::Invalid(format!("gzip level {level} is out of range 0..=9")))
            }
            Compression::Zstd { level } if !(1..=22).contains(&level) => {
                Err(Error::Invalid(format!("zstd level {level} is out of range 1..=22")))
            }
            _ => Ok(()),
        }
    }
}

/// A compressing writer; [`Encoder::finish`] writes the trailer and returns the inner writer.
pub(crate) enum Encoder<W: Write> {
    Plain(W),
    Gzip(super::pgzip::ParallelGzip<W>),
    Zstd(zstd::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    pub(crate) fn new(inner: W, compression: Compression) -> io::Result<Encoder<W>> {
        Ok(match compression {
            Compression::None => Encoder::Plain(inner),
            // Parallel, yet the bytes depend only on input and level (see pgzip).
            Compression::Gzip { level } => {
                Encoder::Gzip(super::pgzip::ParallelGzip::new(inner, level)?)
            }
            Compression::Zstd { level } => {
                let mut e = zstd::Encoder::new(inner, level)?;
                // zstd's multithreaded mode gives the same bytes for any worker count >= 1.
                let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
                e.multithread(workers as u32)?;
                // 2 MiB jobs (the default at level 3 is 8 MiB): each worker's buffers stay
                // small, so converting two large layers at once stays far under 150 MB.
                e.set_parameter(zstd::stream::raw::CParameter::JobSize(2 << 20))?;
                Encoder::Zstd(e)
            }
        })
    }

    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Plain(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

/// What a media type says about the compression of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecodeAs {
    Plain,
    Gzip,
    Zstd,
    /// Docker media types: look at the first bytes.
    Sniff,
}

impl DecodeAs {
    /// Maps a layer media type to how it is decoded.
    pub(crate) fn from_media_type(media_type: &str) -> Result<DecodeAs> {
        let nondist = |suffix: &str| {
            format!("application/vnd.oci.image.layer.nondistributable.v1.tar{suffix}")
        };
        Ok(match media_type {
            MEDIA_TYPE_TAR => DecodeAs::Plain,
            MEDIA_TYPE_TAR_GZIP => DecodeAs::Gzip,
            MEDIA_TYPE_TAR_ZSTD => DecodeAs::Zstd,
            MEDIA_TYPE_DOCKER_LAYER | MEDIA_TYPE_DOCKER_FOREIGN_LAYER => DecodeAs::Sniff,
            m if m == nondist("") => DecodeAs::Plain,
            m if m == nondist("+gzip") => DecodeAs::Gzip,
            m if m == nondist("+zstd") => DecodeAs::Zstd,
            m if m.starts_with("application/vnd.docker.image.rootfs.") => DecodeAs::Sniff,
            other => return Err(Error::UnsupportedMediaType(other.to_string())),
        })
    }
}

/// A decompressing reader over `R`; [`Decoder::into_inner`] gives `R` back (so the caller can
/// drain it to the end, which verifies a blob read through a `VerifiedReader`).
pub(crate) enum Decoder<R: Read> {
    Plain(BufReader<R>),
    Gzip(Box<flate2::bufread::MultiGzDecoder<BufReader<R>>>),
    Zstd(zstd::Decoder<'static, BufReader<R>>),
}

impl<R: Read> Decoder<R> {
    pub(crate) fn new(inner: R, how: DecodeAs) -> io::Result<Decoder<R>> {
        let mut buffered = BufReader::with_capacity(256 * 1024, inner);
        let how = match how {
            DecodeAs::Sniff => {
                let head = buffered.fill_buf()?;
                if head.starts_with(&[0x1f, 0x8b]) {
                    DecodeAs::Gzip
                } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
                    DecodeAs::Zstd
                } else {
                    DecodeAs::Plain
                }
            }
            other => other,
        };
        Ok(match how {
            DecodeAs::Gzip => {
                Decoder::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(buffered)))
            }
            DecodeAs::Zstd => Decoder::Zstd(zstd::Decoder::with_buffer(buffered)?),
            DecodeAs::Plain | DecodeAs::Sniff => Decoder::Plain(buffered),
        })
    }

    pub(crate) fn into_inner(self) -> BufReader<R> {
        match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(d) => d.into_inner(),
            Decoder::Zstd(d) => d.finish(),
        }
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(c: Compression, how: DecodeAs) -> Vec<u8> {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 7) as u8).collect();
        let mut enc = Encoder::new(Vec::new(), c).unwrap();
        enc.write_all(&data).unwrap();
        let compressed = enc.finish().unwrap();
        let mut out = Vec::new();
        Decoder::new(&compressed[..], how).unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        compressed
    }

    #[test]
    fn encode_decode_each_kind_and_sniff() {
        let gz = roundtrip(Compression::Gzip { level: 6 }, DecodeAs::Gzip);
        assert_eq!(&gz[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        roundtrip(Compression::Gzip { level: 6 }, DecodeAs::Sniff);
        roundtrip(Compression::Zstd { level: 3 }, DecodeAs::Zstd);
        roundtrip(Compression::Zstd { level: 3 }, DecodeAs::Sniff);
        roundtrip(Compression::None, DecodeAs::Plain);
        roundtrip(Compression::None, DecodeAs::Sniff);
    }

    #[test]
    fn media_types() {
        assert_eq!(DecodeAs::from_media_type(MEDIA_TYPE_TAR_GZIP).unwrap(), DecodeAs::Gzip);
        assert_eq!(DecodeAs::from_media_type(MEDIA_TYPE_DOCKER_LAYER).unwrap(), DecodeAs::Sniff);
        assert_eq!(
            DecodeAs::from_media_type(
                "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            )
            .unwrap(),
            DecodeAs::Zstd
        );
        assert_eq!(
            DecodeAs::from_media_type("text/plain").unwrap_err().to_string(),
            "unsupported layer media type \"text/plain\""
        );
        assert!(Compression::Gzip { level: 10 }.validate().is_err());
        assert!(Compression::Zstd { level: 0 }.validate().is_err());
    }
}
