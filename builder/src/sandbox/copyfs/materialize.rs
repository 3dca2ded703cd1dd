//! [`materialize`]: snapshot directories (overlay format) copied into one root directory.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::super::error::{IoContext, Result, SandboxError};
use super::super::stubs::set_times;
use super::{Manifest, copy_xattrs, is_opaque, is_whiteout, remove_any, walk};

/// Copies `layers` (bottom first) into the empty directory `rootfs` with overlay semantics
/// (whiteouts delete, opaque directories hide what is below), keeping modes, owners (where
/// this user namespace maps them), times, xattrs and hard links; returns the manifest of the
/// result.
pub(crate) fn materialize(layers: &[PathBuf], rootfs: &Path) -> Result<Manifest> {
    let mut dirs: BTreeMap<String, (PathBuf, fs::Metadata)> = BTreeMap::new();
    for layer in layers {
        let root_meta = fs::symlink_metadata(layer).ctx("stat", layer)?;
        dirs.insert(String::new(), (layer.clone(), root_meta));
        let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
        let mut failure: Option<SandboxError> = None;
        walk(layer, &mut |rel, meta| {
            if failure.is_some() {
                return false;
            }
            let src = layer.join(rel);
            let dst = rootfs.join(rel);
            match copy_one(&src, &dst, meta, &mut links) {
                Ok(descend) => {
                    if meta.is_dir() {
                        dirs.insert(rel.to_string(), (src, meta.clone()));
                    }
                    descend
                }
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
    }
    // Directory metadata last, deepest first, so writing their contents did not disturb it.
    for (rel, (src, meta)) in dirs.iter().rev() {
        let dst = rootfs.join(rel);
        if !fs::symlink_metadata(&dst).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        apply_owner_mode(&dst, meta);
        copy_xattrs(src, &dst);
        set_times(&dst, meta)?;
    }
    Manifest::take(rootfs)
}

/// Copies one entry; returns whether to descend (directories).
fn copy_one(
    src: &Path,
    dst: &Path,
    meta: &fs::Metadata,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<bool> {
    let ft = meta.file_type();
    if is_whiteout(src, meta) {
        remove_any(dst).ctx("remove", dst)?;
        return Ok(false);
    }
    let existing = fs::symlink_metadata(dst).ok();
    if ft.is_dir() {
        match existing {
            Some(m) if m.is_dir() => {
                if is_opaque(src) {
                    for ent in fs::read_dir(dst).ctx("read directory", dst)? {
                        let ent = ent.ctx("read directory", dst)?;
                        remove_any(&ent.path()).ctx("remove", ent.path())?;
                    }
                }
            }
            Some(_) => {
                remove_any(dst).ctx("remove", dst)?;
                fs::create_dir(dst).ctx("create directory", dst)?;
            }
            None => fs::create_dir(dst).ctx("create directory", dst)?,
        }
        // Writable while its contents are copied; the real mode is applied at the end.
        fs::set_permissions(dst, fs::Permissions::from_mode(0o700)).ctx("chmod", dst)?;
        return Ok(true);
    }
    if existing.is_some() {
        remove_any(dst).ctx("remove", dst)?;
    }
    if ft.is_socket() {
        return Ok(false);
    }
    let key = (meta.dev(), meta.ino());
    if meta.nlink() > 1
        && let Some(first) = links.get(&key)
    {
        fs::hard_link(first, dst).ctx("hard link", dst)?;
        return Ok(false);
    }
    if ft.is_file() {
        fs::copy(src, dst).ctx("copy", src)?;
    } else if ft.is_symlink() {
        let target = fs::read_link(src).ctx("readlink", src)?;
        std::os::unix::fs::symlink(&target, dst).ctx("symlink", dst)?;
    } else {
        let kind = if ft.is_char_device() {
            rustix::fs::FileType::CharacterDevice
        } else if ft.is_block_device() {
            rustix::fs::FileType::BlockDevice
        } else {
            rustix::fs::FileType::Fifo
        };
        let made = rustix::fs::mknodat(
            rustix::fs::CWD,
            dst,
            kind,
            rustix::fs::Mode::from_raw_mode(meta.mode() & 0o7777),
            meta.rdev(),
        );
        if made.is_err() {
            // Device nodes need real root; the RUN sees none (as with snapshot extraction).
            return Ok(false);
        }
    }
    if meta.nlink() > 1 {
        links.insert(key, dst.to_path_buf());
    }
    if !ft.is_symlink() {
        apply_owner_mode(dst, meta);
        copy_xattrs(src, dst);
    } else {
        let _ = std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid()));
    }
    set_times(dst, meta)?;
    Ok(false)
}

/// Owner (where mapped), then mode (chown clears set-id bits).
pub(crate) fn apply_owner_mode(dst: &Path, meta: &fs::Metadata) {
    let _ = std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid()));
    let _ = fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777));
}
