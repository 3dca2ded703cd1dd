//! Converting a stored layer: recompressing it (the tar bytes are kept exactly, so the diff_id
//! does not change, and it is verified on the way) or rewriting it with its mtimes clamped to
//! an epoch (`--rewrite-timestamp`).

use std::io::{self, Read, Write};

use crate::blob::BlobStore;
use crate::digest::HashingWriter;
use crate::error::{Error, Result};
use crate::layer::compression::{DecodeAs, Decoder, Encoder};
use crate::layer::{Compression, LayerInfo, read_layer};
use crate::snapshot::LayerDesc;

use super::tarout::{MemberOptions, MtimeRule, TarOut};

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// A plain tar.
    Plain,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Codec {
    /// The codec of a [`Compression`].
    pub fn of(c: &Compression) -> Codec {
        match c {
            Compression::None => Codec::Plain,
            Compression::Gzip { .. } => Codec::Gzip,
            Compression::Zstd { .. } => Codec::Zstd,
        }
    }
}

/// The codec of a stored layer: from its media type, or for Docker media types (which do not
/// say) from the blob's first bytes.
pub fn layer_codec(blobs: &BlobStore, layer: &LayerDesc) -> Result<Codec> {
    Ok(match DecodeAs::from_media_type(&layer.media_type)? {
        DecodeAs::Plain => Codec::Plain,
        DecodeAs::Gzip => Codec::Gzip,
        DecodeAs::Zstd => Codec::Zstd,
        DecodeAs::Sniff => {
            let mut head = [0u8; 4];
            let mut f = std::fs::File::open(blobs.path(&layer.digest))
                .map_err(|e| Error::io("open", blobs.path(&layer.digest), e))?;
            let n = read_up_to(&mut f, &mut head)
                .map_err(|e| Error::io("read", blobs.path(&layer.digest), e))?;
            if head[..n].starts_with(&[0x1f, 0x8b]) {
                Codec::Gzip
            } else if head[..n].starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
                Codec::Zstd
            } else {
                Codec::Plain
            }
        }
    })
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Stores `layer` again compressed with `to`. The uncompressed stream is copied as it is and
/// hashed: a diff_id other than `layer.diff_id` (or a blob that does not match its digest) is
/// an error and nothing is stored.
pub fn recompress_layer(
    blobs: &BlobStore,
    layer: &LayerDesc,
    to: Compression,
) -> Result<LayerInfo> {
    recompress_layer_reporting(blobs, layer, to, &mut |_| {})
}

/// [`recompress_layer`], calling `read` with the number of blob bytes read so far after each
/// read (the blob's size is the total).
pub fn recompress_layer_reporting(
    blobs: &BlobStore,
    layer: &LayerDesc,
    to: Compression,
    read: &mut dyn FnMut(u64),
) -> Result<LayerInfo> {
    to.validate()?;
    let how = DecodeAs::from_media_type(&layer.media_type)?;
    let what = format!("recompressing layer {}", layer.digest);
    let reader = Counting { inner: blobs.open_verified(&layer.digest)?, done: 0, report: read };
    let mut decoder = Decoder::new(reader, how).map_err(|e| Error::stream(what.clone(), e))?;
    let blob = blobs.ingest()?;
    let encoder = Encoder::new(blob, to).map_err(|e| Error::stream(what.clone(), e))?;
    let mut tar = HashingWriter::new(encoder);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match decoder.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::stream(what, e)),
        };
        tar.write_all(&buf[..n]).map_err(|e| Error::stream(what.clone(), e))?;
    }
    // Read the blob to its end: that is where its digest is checked.
    let mut raw = decoder.into_inner();
    io::copy(&mut raw, &mut io::sink()).map_err(|e| Error::stream(what.clone(), e))?;
    let (encoder, diff_id, _) = tar.into_parts();
    if diff_id != layer.diff_id {
        return Err(Error::DigestMismatch {
            what: format!("diff_id of layer {}", layer.digest),
            expected: layer.diff_id.clone(),
            actual: diff_id,
        });
    }
    let blob = encoder.finish().map_err(|e| Error::stream(what, e))?;
    let (digest, size) = blob.commit(None)?;
    Ok(LayerInfo { digest, diff_id, size, media_type: to.media_type().to_string() })
}

/// A reader that reports how many bytes went through it.
struct Counting<'a, R> {
    inner: R,
    done: u64,
    report: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.done += n as u64;
            (self.report)(self.done);
        }
        Ok(n)
    }
}

/// Rewrites `layer` with every mtime later than `epoch` set to `epoch`, compressed with `to`.
/// Returns `None` when no mtime was later (the layer stays as it is and nothing is stored).
/// Headers are re-encoded with kiln's deterministic encoder (numeric owners, PAX where needed).
pub fn rewrite_layer_mtimes(
    blobs: &BlobStore,
    layer: &LayerDesc,
    epoch: i64,
    to: Compression,
) -> Result<Option<LayerInfo>> {
    to.validate()?;
    let what = format!("rewriting layer {}", layer.digest);
    let blob = blobs.ingest()?;
    let encoder = Encoder::new(blob, to).map_err(|e| Error::stream(what.clone(), e))?;
    let opts = MemberOptions { mtime: MtimeRule::Clamp(epoch), owner: None };
    let mut out = TarOut::new(HashingWriter::new(encoder), opts);
    let reader = blobs.open_verified(&layer.digest)?;
    let summary = read_layer(reader, &layer.media_type, |h, content| {
        let path = h.path.clone();
        out.member(&path, h, Some(content))
    })?;
    if summary.diff_id != layer.diff_id {
        return Err(Error::DigestMismatch {
            what: format!("diff_id of layer {}", layer.digest),
            expected: layer.diff_id.clone(),
            actual: summary.diff_id,
        });
    }
    if out.stats.mtimes_changed == 0 {
        return Ok(None);
    }
    let hashing = out.finish()?;
    let (encoder, diff_id, _) = hashing.into_parts();
    let blob = encoder.finish().map_err(|e| Error::stream(what, e))?;
    let (digest, size) = blob.commit(None)?;
    Ok(Some(LayerInfo { digest, diff_id, size, media_type: to.media_type().to_string() }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{EntryKind, FileSource, LayerEntry, LayerOptions, write_layer};

    fn entries(mtime: i64) -> Vec<LayerEntry> {
        let e = |path: &str, kind: EntryKind| LayerEntry {
            path: path.into(),
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime,
            xattrs: Default::default(),
        };
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 13) as u8).collect();
        vec![
            e("etc", EntryKind::Dir),
            e(
                "etc/big",
                EntryKind::File { size: data.len() as u64, source: FileSource::Bytes(data) },
            ),
            e("etc/link", EntryKind::Symlink { target: "big".into() }),
            e("etc/hard", EntryKind::Hardlink { target: "etc/big".into() }),
            e("gone", EntryKind::Whiteout),
            e("opq", EntryKind::Dir),
            e("opq", EntryKind::OpaqueDir),
        ]
    }

    fn desc(info: &LayerInfo) -> LayerDesc {
        LayerDesc {
            digest: info.digest.clone(),
            diff_id: info.diff_id.clone(),
            media_type: info.media_type.clone(),
        }
    }

    #[test]
    fn recompression_keeps_the_diff_id_for_every_pair() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let kinds =
            [Compression::None, Compression::Gzip { level: 6 }, Compression::Zstd { level: 3 }];
        for from in kinds {
            let opts = LayerOptions { compression: from, clamp_mtime: None };
            let src = write_layer(&blobs, &entries(5), &opts).unwrap();
            assert_eq!(layer_codec(&blobs, &desc(&src)).unwrap(), Codec::of(&from));
            for to in kinds {
                let out = recompress_layer(&blobs, &desc(&src), to).unwrap();
                assert_eq!(out.diff_id, src.diff_id);
                assert_eq!(out.media_type, to.media_type());
                // The same as writing the layer with `to` in the first place.
                let direct = write_layer(
                    &blobs,
                    &entries(5),
                    &LayerOptions { compression: to, clamp_mtime: None },
                )
                .unwrap();
                assert_eq!(out.digest, direct.digest, "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn a_wrong_diff_id_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let src = write_layer(&blobs, &entries(5), &LayerOptions::default()).unwrap();
        let mut d = desc(&src);
        d.diff_id = crate::digest::Digest::of_bytes(b"other");
        let err = recompress_layer(&blobs, &d, Compression::Zstd { level: 3 }).unwrap_err();
        assert!(err.to_string().starts_with("digest mismatch for diff_id of layer"), "{err}");
    }

    #[test]
    fn rewriting_clamps_like_the_writer_and_leaves_old_layers_alone() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let gz = LayerOptions::default();
        let late = write_layer(&blobs, &entries(2_000), &gz).unwrap();
        let out = rewrite_layer_mtimes(&blobs, &desc(&late), 1_000, Compression::Gzip { level: 6 })
            .unwrap()
            .expect("rewritten");
        let clamped = write_layer(
            &blobs,
            &entries(2_000),
            &LayerOptions { clamp_mtime: Some(1_000), ..gz.clone() },
        )
        .unwrap();
        assert_eq!(out, clamped);
        let early = write_layer(&blobs, &entries(500), &gz).unwrap();
        assert_eq!(
            rewrite_layer_mtimes(&blobs, &desc(&early), 1_000, Compression::Gzip { level: 6 })
                .unwrap(),
            None
        );
    }
}
