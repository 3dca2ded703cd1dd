//! [`read_layer`]: a streaming layer reader. Decompresses by media type, walks the tar with the
//! `tar` crate's entry iterator (never its `unpack`), normalizes paths and whiteouts, and hashes
//! the uncompressed stream to give the diff_id.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::rc::Rc;

use tar::EntryType;

use crate::digest::{Digest, HashingReader};
use crate::error::{Error, Result};

use super::compression::{DecodeAs, Decoder};
use super::{OPAQUE_MARKER, WHITEOUT_PREFIX};

/// One member of a layer as read from its tar, normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerHeader {
    /// The path relative to the layer root, cleaned as if rooted at `/`: no leading `/` or
    /// `./`, no `.` components, `..` resolved lexically and never above the root. Empty for the
    /// root directory itself. For whiteouts, the deleted path; for opaque markers, the directory.
    pub path: PathBuf,
    /// What it is.
    pub kind: HeaderKind,
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
    /// Numeric owner (PAX `uid` applied).
    pub uid: u32,
    /// Numeric group (PAX `gid` applied).
    pub gid: u32,
    /// Modification time in seconds (PAX `mtime` applied, fraction dropped).
    pub mtime: i64,
    /// Extended attributes from PAX `SCHILY.xattr.*` records.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

/// The kind of a [`LayerHeader`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderKind {
    /// A directory.
    Dir,
    /// A regular file; its content is the visitor's reader.
    File {
        /// Size in bytes.
        size: u64,
    },
    /// A symbolic link, target as stored (may be absolute or point anywhere).
    Symlink {
        /// The raw target.
        target: PathBuf,
    },
    /// A hard link to another member, target cleaned like [`LayerHeader::path`].
    Hardlink {
        /// The cleaned layer path linked to.
        target: PathBuf,
    },
    /// A character device.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
    /// An OCI whiteout (`.wh.<name>`): `path` is deleted.
    Whiteout,
    /// An OCI opaque marker (`.wh..wh..opq`): `path`'s lower contents are hidden.
    OpaqueDir,
}

/// What [`read_layer`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadSummary {
    /// sha256 of the whole uncompressed stream (the layer's diff_id).
    pub diff_id: Digest,
    /// Size of the uncompressed stream in bytes.
    pub tar_size: u64,
    /// Members passed to the visitor.
    pub entries: u64,
    /// Members skipped: global PAX headers, other `.wh..wh.` metadata files, unknown types.
    pub skipped: u64,
}

/// Reads a layer stream of `media_type` (OCI tar / tar+gzip / tar+zstd, or a Docker layer type,
/// where the compression is sniffed from the magic bytes), calling `visit` for each member with
/// its header and a reader of its content (empty for non-files; unread content is skipped).
///
/// After the last member the rest of the stream is read to its end, so the returned diff_id
/// covers every byte and a [`crate::blob::VerifiedReader`] underneath gets to verify the blob.
pub fn read_layer<R: Read>(
    reader: R,
    media_type: &str,
    mut visit: impl FnMut(&LayerHeader, &mut dyn Read) -> Result<()>,
) -> Result<ReadSummary> {
    let how = DecodeAs::from_media_type(media_type)?;
    let decoder = Decoder::new(reader, how).map_err(|e| Error::stream("reading layer", e))?;
    let budget = HeaderBudget::default();
    let mut archive = tar::Archive::new(budget.wrap(HashingReader::new(decoder)));
    let (mut entries, mut skipped) = (0u64, 0u64);
    let tar_err = |e: io::Error| Error::stream("reading layer tar", e);
    let mut iter = archive.entries().map_err(tar_err)?;
    loop {
        // The tar crate reads PAX and GNU long-name members whole into memory while finding the
        // next member: that part alone is bounded.
        budget.limit(MAX_HEADER_BYTES);
        let item = iter.next();
        budget.unlimit();
        let Some(item) = item else { break };
        let mut entry = item.map_err(tar_err)?;
        match header_of(&mut entry)? {
            Some(h) => {
                entries += 1;
                visit(&h, &mut entry)?;
            }
            None => skipped += 1,
        }
        // Content the visitor left unread is skipped here, streamed, outside the budget.
        io::copy(&mut entry, &mut io::sink())
            .map_err(|e| Error::stream("reading layer member content", e))?;
    }
    let mut hashing = archive.into_inner().inner;
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| Error::stream("reading layer tail", e))?;
    let (decoder, diff_id, tar_size) = hashing.into_parts();
    let mut raw = decoder.into_inner();
    io::copy(&mut raw, &mut io::sink()).map_err(|e| Error::stream("reading layer blob", e))?;
    Ok(ReadSummary { diff_id, tar_size, entries, skipped })
}

/// Most bytes the tar crate may read while finding one member: its header block plus any PAX
/// (`x`), GNU long-name (`L`) and long-link (`K`) members before it, which it holds in memory.
/// Go's `archive/tar` (docker, containerd) refuses each of those past 1 MiB.
pub(crate) const MAX_HEADER_BYTES: u64 = 4 << 20;

/// A byte budget shared with a [`Budgeted`] reader: unlimited unless [`HeaderBudget::limit`]
/// set one.
#[derive(Clone, Default)]
struct HeaderBudget(Rc<Cell<Option<u64>>>);

impl HeaderBudget {
    fn wrap<R: Read>(&self, inner: R) -> Budgeted<R> {
        Budgeted { inner, budget: self.clone() }
    }
    fn limit(&self, bytes: u64) {
        self.0.set(Some(bytes));
    }
    fn unlimit(&self) {
        self.0.set(None);
    }
}

/// A reader that fails once its [`HeaderBudget`] is spent (while one is set).
struct Budgeted<R> {
    inner: R,
    budget: HeaderBudget,
}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(left) = self.budget.0.get() else { return self.inner.read(buf) };
        if left == 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "a member's headers (PAX or GNU long-name records) exceed {} MiB",
                    MAX_HEADER_BYTES >> 20
                ),
            ));
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.budget.0.set(Some(left - n as u64));
        Ok(n)
    }
}

/// Cleans a tar path as if rooted at `/`: returns the components, never escaping the root.
pub(crate) fn clean_components(raw: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

fn join(comps: &[&[u8]]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(&comps.join(&b'/')))
}

fn lossy(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

/// The normalized header of a tar member, or `None` for members that are skipped.
fn header_of<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Option<LayerHeader>> {
    let raw_path = entry.path_bytes().into_owned();
    let shown = lossy(&raw_path);
    let bad = |reason: String| Error::entry(shown.clone(), reason);
    let hdr = entry.header().clone();
    // Like Go's archive/tar, an all-blank numeric field reads as 0.
    let raw = *hdr.as_bytes();
    let field = |r: io::Result<u64>, what: &str, range: std::ops::Range<usize>| {
        if raw[range].iter().all(|&b| b == 0 || b == b' ') {
            return Ok(0);
        }
        r.map_err(|e| bad(format!("bad {what} field: {e}")))
    };
    let mut mtime = i64::try_from(field(hdr.mtime(), "mtime", 136..148)?).unwrap_or(i64::MAX);
    let mut xattrs = BTreeMap::new();
    if let Some(pax) = entry.pax_extensions().map_err(|e| bad(format!("bad PAX header: {e}")))? {
        for ext in pax {
            let ext = ext.map_err(|e| bad(format!("bad PAX record: {e}")))?;
            let key = ext.key().map_err(|e| bad(format!("bad PAX key: {e}")))?;
            if key == "mtime" {
                let v = String::from_utf8_lossy(ext.value_bytes());
                let secs = v.split('.').next().unwrap_or("");
                mtime = secs.parse().map_err(|_| bad(format!("bad PAX mtime {v:?}")))?;
            } else if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                xattrs.insert(name.to_string(), ext.value_bytes().to_vec());
            }
        }
    }
    let mode = field(hdr.mode().map(u64::from), "mode", 100..108)? as u32 & 0o7777;
    let uid = u32::try_from(field(hdr.uid(), "uid", 108..116)?)
        .map_err(|_| bad("uid out of range".into()))?;
    let gid = u32::try_from(field(hdr.gid(), "gid", 116..124)?)
        .map_err(|_| bad("gid out of range".into()))?;
    if raw_path.contains(&0) {
        return Err(bad("the name contains a NUL byte".into()));
    }
    let comps = clean_components(&raw_path);
    let base = comps.last().copied().unwrap_or(b"");
    let et = hdr.entry_type();

    // Whiteouts are regular files named `.wh.<name>` (GNU tar may omit the type: '\0').
    let is_file_type = matches!(et, EntryType::Regular | EntryType::Continuous);
    if is_file_type && base.starts_with(WHITEOUT_PREFIX.as_bytes()) {
        let parent = &comps[..comps.len() - 1];
        if base == OPAQUE_MARKER.as_bytes() {
            return Ok(Some(LayerHeader {
                path: join(parent),
                kind: HeaderKind::OpaqueDir,
                mode,
                uid,
                gid,
                mtime,
                xattrs,
            }));
        }
        let name = &base[WHITEOUT_PREFIX.len()..];
        if name.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            // Other `.wh..wh.` files (aufs metadata) carry nothing for kiln.
            return Ok(None);
        }
        if name.is_empty() || name == b"." || name == b".." {
            return Err(bad("whiteout of an invalid name".into()));
        }
        let mut target = parent.to_vec();
        target.push(name);
        return Ok(Some(LayerHeader {
            path: join(&target),
            kind: HeaderKind::Whiteout,
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        }));
    }

    let device = |what: &str| -> Result<(u32, u32)> {
        let major = hdr.device_major().map_err(|e| bad(format!("bad {what} major: {e}")))?;
        let minor = hdr.device_minor().map_err(|e| bad(format!("bad {what} minor: {e}")))?;
        Ok((major.unwrap_or(0), minor.unwrap_or(0)))
    };
    let link = || -> Result<Vec<u8>> {
        let target = entry
            .link_name_bytes()
            .map(|l| l.into_owned())
            .ok_or_else(|| bad("link without a target".into()))?;
        if target.contains(&0) {
            return Err(bad("the link target contains a NUL byte".into()));
        }
        Ok(target)
    };
    let kind = match et {
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
            HeaderKind::File { size: entry.size() }
        }
        EntryType::Directory => HeaderKind::Dir,
        EntryType::Symlink => {
            HeaderKind::Symlink { target: PathBuf::from(OsStr::from_bytes(&link()?)) }
        }
        EntryType::Link => {
            let target = link()?;
            let t = clean_components(&target);
            if t.is_empty() {
                return Err(bad("hard link to the root directory".into()));
            }
            HeaderKind::Hardlink { target: join(&t) }
        }
        EntryType::Char => {
            let (major, minor) = device("character device")?;
            HeaderKind::CharDevice { major, minor }
        }
        EntryType::Block => {
            let (major, minor) = device("block device")?;
            HeaderKind::BlockDevice { major, minor }
        }
        EntryType::Fifo => HeaderKind::Fifo,
        // Global PAX headers, volume labels, unknown types.
        _ => return Ok(None),
    };
    if comps.is_empty() && kind != HeaderKind::Dir {
        return Err(bad("a non-directory member names the layer root".into()));
    }
    Ok(Some(LayerHeader { path: join(&comps), kind, mode, uid, gid, mtime, xattrs }))
}
