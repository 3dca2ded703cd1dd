//! [`entries_from_dir`]: an overlayfs upper directory (the diff of a RUN step) → layer entries.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::xattrs;

use super::sort::sort_entries;
use super::{EntryKind, FileSource, LayerEntry};

/// Walks `dir`, an overlayfs upper directory, into sorted layer entries (the directory itself is
/// not an entry):
///
/// - a character device 0:0 (overlay's whiteout), or a regular file with an
///   `overlay.whiteout` xattr, becomes [`EntryKind::Whiteout`];
/// - a directory with `trusted.overlay.opaque` or `user.overlay.opaque` = `y` gives a
///   [`EntryKind::Dir`] and an [`EntryKind::OpaqueDir`] entry;
/// - a file whose inode was already seen under another path becomes a [`EntryKind::Hardlink`]
///   to the first path in sorted order;
/// - xattrs are kept except overlay's own (`*.overlay.*`) and `security.selinux` (a host label);
/// - sockets are skipped (they cannot be stored in a tar).
///
/// Files are referenced by path ([`FileSource::Path`]), not read. Names must be UTF-8. An upper
/// directory with overlay `redirect` or `metacopy` xattrs (overlay mounted with `redirect_dir=on`
/// or `metacopy=on`) is refused, since its files do not hold the whole diff.
pub fn entries_from_dir(dir: &Path) -> Result<Vec<LayerEntry>> {
    let mut out = Vec::new();
    let mut first_link: HashMap<(u64, u64), String> = HashMap::new();
    // Depth-first in byte order of names: a stack of (layer path, disk path), reversed.
    let mut stack: Vec<(String, PathBuf)> = children(dir, "")?.into_iter().rev().collect();
    while let Some((rel, abs)) = stack.pop() {
        let meta = fs::symlink_metadata(&abs).ctx("stat", &abs)?;
        let ft = meta.file_type();
        let all_xattrs =
            xattrs::list_path(&abs).map_err(|e| Error::io("list xattrs of", &abs, e.into()))?;
        for bad in ["redirect", "metacopy"] {
            if all_xattrs.contains_key(&format!("trusted.overlay.{bad}"))
                || all_xattrs.contains_key(&format!("user.overlay.{bad}"))
            {
                return Err(Error::entry(
                    &rel,
                    format!("overlay {bad} xattr found: mount the overlay with {bad}=off"),
                ));
            }
        }
        let overlay_flag = |name: &str| {
            all_xattrs
                .get(&format!("trusted.overlay.{name}"))
                .or_else(|| all_xattrs.get(&format!("user.overlay.{name}")))
                .map(Vec::as_slice)
        };
        let is_xattr_whiteout = ft.is_file() && overlay_flag("whiteout").is_some();
        let opaque = ft.is_dir() && overlay_flag("opaque") == Some(b"y");
        let xattrs: BTreeMap<String, Vec<u8>> = all_xattrs
            .iter()
            .filter(|(k, _)| !xattrs::is_overlay_xattr(k) && k.as_str() != "security.selinux")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let base = LayerEntry {
            path: rel.clone(),
            kind: EntryKind::Dir,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: meta.mtime(),
            xattrs,
        };
        let rdev = meta.rdev();
        let kind = if (ft.is_char_device() && rdev == 0) || is_xattr_whiteout {
            EntryKind::Whiteout
        } else if ft.is_dir() {
            for child in children(&abs, &rel)?.into_iter().rev() {
                stack.push(child);
            }
            EntryKind::Dir
        } else if ft.is_socket() {
            continue;
        } else if meta.nlink() > 1
            && let Some(first) = first_link.get(&(meta.dev(), meta.ino()))
        {
            EntryKind::Hardlink { target: first.clone() }
        } else {
            if meta.nlink() > 1 {
                first_link.insert((meta.dev(), meta.ino()), rel.clone());
            }
            if ft.is_file() {
                EntryKind::File { source: FileSource::Path(abs.clone()), size: meta.len() }
            } else if ft.is_symlink() {
                let target = fs::read_link(&abs).ctx("readlink", &abs)?;
                let target = target.to_str().ok_or_else(|| {
                    Error::entry(&rel, format!("symlink target {target:?} is not UTF-8"))
                })?;
                EntryKind::Symlink { target: target.to_string() }
            } else if ft.is_char_device() {
                EntryKind::CharDevice {
                    major: rustix::fs::major(rdev),
                    minor: rustix::fs::minor(rdev),
                }
            } else if ft.is_block_device() {
                EntryKind::BlockDevice {
                    major: rustix::fs::major(rdev),
                    minor: rustix::fs::minor(rdev),
                }
            } else {
                EntryKind::Fifo
            }
        };
        let is_dir = matches!(kind, EntryKind::Dir);
        out.push(LayerEntry { kind, ..base });
        if opaque && is_dir {
            out.push(LayerEntry {
                path: rel,
                kind: EntryKind::OpaqueDir,
                mode: 0,
                uid: 0,
                gid: 0,
                mtime: 0,
                xattrs: BTreeMap::new(),
            });
        }
    }
    sort_entries(&mut out);
    Ok(out)
}

/// The entries of directory `abs` (layer path `rel`), sorted by name bytes.
fn children(abs: &Path, rel: &str) -> Result<Vec<(String, PathBuf)>> {
    let mut names = Vec::new();
    for ent in fs::read_dir(abs).ctx("read directory", abs)? {
        let ent = ent.ctx("read directory", abs)?;
        names.push(ent.file_name());
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    names
        .into_iter()
        .map(|name| {
            let s = name.to_str().ok_or_else(|| {
                Error::entry(
                    format!("{rel}/{}", name.to_string_lossy()),
                    "file name is not UTF-8 (kiln layers need UTF-8 names)",
                )
            })?;
            let child_rel = if rel.is_empty() { s.to_string() } else { format!("{rel}/{s}") };
            Ok((child_rel, abs.join(&name)))
        })
        .collect()
}
