//! Content digests (`sha256:<hex>`) and readers/writers that hash what flows through them.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// A sha256 content digest, shown as `sha256:<64 lowercase hex digits>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    bytes: [u8; 32],
}

impl Digest {
    /// The algorithm name, as it appears before the colon.
    pub const SHA256: &'static str = "sha256";

    /// The digest of `data`.
    pub fn of_bytes(data: &[u8]) -> Digest {
        let mut d = Digester::new();
        d.update(data);
        d.finish()
    }

    /// A digest from its 32 raw bytes.
    pub fn from_raw(bytes: [u8; 32]) -> Digest {
        Digest { bytes }
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// The 64 lowercase hex digits (the part after `sha256:`).
    pub fn hex(&self) -> String {
        hex::encode(self.bytes)
    }

    /// The algorithm name: always `"sha256"` for now.
    pub fn algorithm(&self) -> &'static str {
        Self::SHA256
    }

    /// The same digest as an `oci_spec` digest.
    pub fn to_oci(&self) -> oci_spec::image::Digest {
        // The string is valid by construction; oci_spec accepts every valid sha256 digest.
        oci_spec::image::Sha256Digest::from_str(&self.hex())
            .map(Into::into)
            .unwrap_or_else(|_| unreachable!("a sha256 hex string is always a valid oci digest"))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = Error;

    /// Parses `sha256:<64 lowercase hex>`; anything else (other algorithms, uppercase) is an error.
    fn from_str(s: &str) -> Result<Digest> {
        let bad = |reason| Error::InvalidDigest { input: s.to_string(), reason };
        let (alg, hex_part) = s.split_once(':').ok_or_else(|| bad("missing \"sha256:\" prefix"))?;
        if alg != Self::SHA256 {
            return Err(bad("unsupported algorithm (only sha256)"));
        }
        if hex_part.len() != 64 {
            return Err(bad("expected 64 hex digits"));
        }
        if !hex_part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad("expected lowercase hex digits"));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut bytes).map_err(|_| bad("expected hex digits"))?;
        Ok(Digest { bytes })
    }
}

impl TryFrom<&oci_spec::image::Digest> for Digest {
    type Error = Error;

    fn try_from(d: &oci_spec::image::Digest) -> Result<Digest> {
        d.to_string().parse()
    }
}

impl From<&Digest> for oci_spec::image::Digest {
    fn from(d: &Digest) -> oci_spec::image::Digest {
        d.to_oci()
    }
}

impl From<Digest> for oci_spec::image::Digest {
    fn from(d: Digest) -> oci_spec::image::Digest {
        d.to_oci()
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Digest, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An incremental sha256 hasher that also counts bytes.
#[derive(Clone, Default)]
pub struct Digester {
    hasher: Sha256,
    len: u64,
}

impl Digester {
    /// A fresh hasher.
    pub fn new() -> Digester {
        Digester::default()
    }

    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.len += data.len() as u64;
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing was fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        Digest { bytes: self.hasher.finalize().into() }
    }
}

/// A writer that hashes and counts every byte it passes on to `W`.
pub struct HashingWriter<W> {
    inner: W,
    digester: Digester,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> HashingWriter<W> {
        HashingWriter { inner, digester: Digester::new() }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.digester.len()
    }

    /// True when nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.digester.is_empty()
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The inner writer, mutably (bytes written to it directly are not hashed).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Digest and byte count of everything written so far, without consuming the writer.
    pub fn current(&self) -> (Digest, u64) {
        (self.digester.clone().finish(), self.digester.len())
    }

    /// Digest and byte count of everything written (the inner writer is dropped, not flushed).
    pub fn finish(self) -> (Digest, u64) {
        let (_, d, n) = self.into_parts();
        (d, n)
    }

    /// The inner writer, the digest and the byte count.
    pub fn into_parts(self) -> (W, Digest, u64) {
        let len = self.digester.len();
        (self.inner, self.digester.finish(), len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts every byte read through it from `R`.
pub struct HashingReader<R> {
    inner: R,
    digester: Digester,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> HashingReader<R> {
        HashingReader { inner, digester: Digester::new() }
    }

    /// Bytes read so far.
    pub fn len(&self) -> u64 {
        self.digester.len()
    }

    /// True when nothing was read yet.
    pub fn is_empty(&self) -> bool {
        self.digester.is_empty()
    }

    /// The inner reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Digest and byte count of everything read so far, without consuming the reader.
    pub fn current(&self) -> (Digest, u64) {
        (self.digester.clone().finish(), self.digester.len())
    }

    /// Digest and byte count of everything read so far.
    pub fn finish(self) -> (Digest, u64) {
        let (_, d, n) = self.into_parts();
        (d, n)
    }

    /// The inner reader, the digest and the byte count.
    pub fn into_parts(self) -> (R, Digest, u64) {
        let len = self.digester.len();
        (self.inner, self.digester.finish(), len)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ABC: &str = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn known_vectors() {
        assert_eq!(Digest::of_bytes(b"").to_string(), EMPTY);
        assert_eq!(Digest::of_bytes(b"abc").to_string(), ABC);
        let million_a = vec![b'a'; 1_000_000];
        assert_eq!(
            Digest::of_bytes(&million_a).hex(),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    #[test]
    fn parse_roundtrip_and_errors() {
        let d: Digest = ABC.parse().unwrap();
        assert_eq!(d, Digest::of_bytes(b"abc"));
        assert_eq!(d.algorithm(), "sha256");
        let cases = [
            ("", "missing \"sha256:\" prefix"),
            ("sha512:00", "unsupported algorithm (only sha256)"),
            ("sha256:abc", "expected 64 hex digits"),
            (
                "sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
                "expected lowercase hex digits",
            ),
        ];
        for (input, reason) in cases {
            let err = input.parse::<Digest>().unwrap_err();
            assert_eq!(err.to_string(), format!("invalid digest {input:?}: {reason}"));
        }
    }

    #[test]
    fn serde_as_string_and_oci_conversion() {
        let d = Digest::of_bytes(b"abc");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{ABC}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"sha256:zz\"").is_err());
        let oci = d.to_oci();
        assert_eq!(oci.to_string(), ABC);
        assert_eq!(Digest::try_from(&oci).unwrap(), d);
    }

    #[test]
    fn hashing_reader_and_writer() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"ab").unwrap();
        w.write_all(b"c").unwrap();
        let (inner, d, n) = w.into_parts();
        assert_eq!((inner.as_slice(), d, n), (&b"abc"[..], Digest::of_bytes(b"abc"), 3));

        let mut r = HashingReader::new(&b"abc"[..]);
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        assert_eq!(r.finish(), (Digest::of_bytes(b"abc"), 3));
    }
}
