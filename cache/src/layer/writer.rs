//! [`write_layer`]: entries → deterministic tar → compression → blob store, in one pass.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::blob::BlobStore;
use crate::digest::HashingWriter;
use crate::error::{Error, IoContext, Result};

use super::compression::Encoder;
use super::sort::sorted_entries;
use super::tar_header::{BLOCK, TarHeader, typeflag};
use super::{
    EntryKind, FileIdentity, FileSource, LayerEntry, LayerInfo, LayerOptions, OPAQUE_MARKER,
    WHITEOUT_PREFIX,
};

/// Writes `entries` as one layer blob into `blobs` and returns its digests.
///
/// Entries are sorted (see the module docs), headers are filled from the entries alone (numeric
/// ids, empty user/group names, no atime/ctime, mtimes clamped to `opts.clamp_mtime`), whiteouts
/// become `.wh.` files, and file contents are streamed from disk. The same entries and options
/// always give the same bytes. The tar is hashed (diff_id) while it is compressed, and the blob
/// hashed while it is stored.
pub fn write_layer(
    blobs: &BlobStore,
    entries: &[LayerEntry],
    opts: &LayerOptions,
) -> Result<LayerInfo> {
    opts.compression.validate()?;
    let sorted = sorted_entries(entries)?;
    let blob = blobs.ingest()?;
    let temp = blob.temp_path().to_path_buf();
    let stream_err =
        |e: io::Error| Error::stream(format!("writing layer to {}", temp.display()), e);
    let encoder = Encoder::new(blob, opts.compression).map_err(stream_err)?;
    let mut tar = HashingWriter::new(encoder);
    let mut buf = vec![0u8; 256 * 1024];
    for e in sorted {
        write_entry(&mut tar, e, opts.clamp_mtime, &mut buf)?;
    }
    // End of archive: two zero blocks.
    tar.write_all(&[0u8; BLOCK * 2]).map_err(stream_err)?;
    let (encoder, diff_id, _) = tar.into_parts();
    let blob = encoder.finish().map_err(stream_err)?;
    let (digest, size) = blob.commit(None)?;
    Ok(LayerInfo { digest, diff_id, size, media_type: opts.compression.media_type().to_string() })
}

/// Writes one entry (header + content + padding).
fn write_entry(
    out: &mut impl Write,
    e: &LayerEntry,
    clamp: Option<i64>,
    buf: &mut [u8],
) -> Result<()> {
    let mtime = match clamp {
        Some(limit) if e.mtime > limit => limit,
        _ => e.mtime,
    };
    let (parent, base) = match e.path.rsplit_once('/') {
        Some((p, b)) => (format!("{p}/"), b),
        None => (String::new(), e.path.as_str()),
    };
    let (name, flag, linkname, size, dev) = match &e.kind {
        EntryKind::Dir => (format!("{}/", e.path), typeflag::DIR, "", 0, (0, 0)),
        EntryKind::File { size, .. } => (e.path.clone(), typeflag::REGULAR, "", *size, (0, 0)),
        EntryKind::Symlink { target } => {
            (e.path.clone(), typeflag::SYMLINK, target.as_str(), 0, (0, 0))
        }
        EntryKind::Hardlink { target } => {
            (e.path.clone(), typeflag::HARDLINK, target.as_str(), 0, (0, 0))
        }
        EntryKind::CharDevice { major, minor } => {
            (e.path.clone(), typeflag::CHAR, "", 0, (*major, *minor))
        }
        EntryKind::BlockDevice { major, minor } => {
            (e.path.clone(), typeflag::BLOCK, "", 0, (*major, *minor))
        }
        EntryKind::Fifo => (e.path.clone(), typeflag::FIFO, "", 0, (0, 0)),
        EntryKind::Whiteout => {
            (format!("{parent}{WHITEOUT_PREFIX}{base}"), typeflag::REGULAR, "", 0, (0, 0))
        }
        EntryKind::OpaqueDir => {
            (format!("{}/{OPAQUE_MARKER}", e.path), typeflag::REGULAR, "", 0, (0, 0))
        }
    };
    let no_xattrs = Default::default();
    let xattrs = match e.kind {
        // Markers carry no attributes of their own.
        EntryKind::Whiteout | EntryKind::OpaqueDir => &no_xattrs,
        _ => &e.xattrs,
    };
    let header = TarHeader {
        name: &name,
        typeflag: flag,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        size,
        mtime,
        linkname,
        devmajor: dev.0,
        devminor: dev.1,
        xattrs,
    };
    let bytes = header.encode().map_err(|reason| Error::entry(&e.path, reason))?;
    let stream_err =
        |err: io::Error| Error::stream(format!("writing layer entry {:?}", e.path), err);
    out.write_all(&bytes).map_err(stream_err)?;
    if let EntryKind::File { source, size } = &e.kind {
        match source {
            FileSource::Bytes(data) => {
                if data.len() as u64 != *size {
                    return Err(Error::entry(
                        &e.path,
                        format!("declared size {size} but {} bytes were given", data.len()),
                    ));
                }
                out.write_all(data).map_err(stream_err)?;
            }
            FileSource::Path(path) => copy_exact(out, path, *size, &e.path, buf, None)?,
            FileSource::Checked(c) => {
                copy_exact(out, &c.path, *size, &e.path, buf, Some(&c.identity))?;
            }
        }
        let pad = (size.next_multiple_of(BLOCK as u64) - size) as usize;
        out.write_all(&[0u8; BLOCK][..pad]).map_err(stream_err)?;
    }
    Ok(())
}

/// Streams exactly `size` bytes of the file at `path`; a file of another size is an error
/// (it changed since it was listed), since the tar header already promised `size`. With
/// `expect`, the open file must have that identity before and after its bytes are copied:
/// otherwise it was replaced or rewritten since it was hashed, and the layer would not hold
/// what its cache key names.
fn copy_exact(
    out: &mut impl Write,
    path: &Path,
    size: u64,
    entry: &str,
    buf: &mut [u8],
    expect: Option<&FileIdentity>,
) -> Result<()> {
    // Non-blocking: a named pipe swapped in for the file must not wait for a writer.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .ctx("open", path)?;
    let meta = f.metadata().ctx("stat", path)?;
    if !meta.is_file() {
        return Err(Error::entry(
            entry,
            format!("source {} is not a regular file", path.display()),
        ));
    }
    if let Some(want) = expect
        && FileIdentity::of(&meta) != *want
    {
        return Err(changed(entry, path, "before it was copied"));
    }
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match f.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(Error::entry(
                    entry,
                    format!(
                        "{} is shorter than its declared size {size} (changed while writing?)",
                        path.display()
                    ),
                ));
            }
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(Error::io("read", path, err)),
        };
        out.write_all(&buf[..n])
            .map_err(|err| Error::stream(format!("writing layer entry {entry:?}"), err))?;
        left -= n as u64;
    }
    if read_one_more(&mut f).ctx("read", path)? {
        return Err(Error::entry(
            entry,
            format!(
                "{} is longer than its declared size {size} (changed while writing?)",
                path.display()
            ),
        ));
    }
    if let Some(want) = expect {
        let after = f.metadata().ctx("stat", path)?;
        if !want.unchanged_since_open(meta.nlink(), &FileIdentity::of(&after), after.nlink()) {
            return Err(changed(entry, path, "while it was copied"));
        }
    }
    Ok(())
}

/// The error for a file that is not what was hashed for the cache key.
fn changed(entry: &str, path: &Path, when: &str) -> Error {
    Error::entry(
        entry,
        format!(
            "{} changed while building: it is not the file that was hashed for the cache key \
             (replaced or modified {when}); nothing was cached, run the build again",
            path.display()
        ),
    )
}

fn read_one_more(f: &mut File) -> io::Result<bool> {
    let mut one = [0u8; 1];
    loop {
        match f.read(&mut one) {
            Ok(n) => return Ok(n > 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}
