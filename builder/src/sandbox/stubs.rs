//! The stub layer: a lower directory kiln puts on top of the snapshots so that every mount
//! point (`/proc`, `/dev`, `/sys`, `/etc/hosts`, `RUN --mount` targets) exists in the merged
//! root without being created through the overlay. Nothing of it reaches the upper directory,
//! so a RUN's diff never holds mount points it did not make itself.
//!
//! Paths are resolved like the kernel will resolve them inside the root (symlinks followed
//! inside it). Directories that already exist below are copied with their metadata (mode,
//! owner, times, xattrs), so the merged directory looks exactly as before.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::fsview::LayeredView;

use super::error::{IoContext, Result, SandboxError};

/// What must exist at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stub {
    /// A directory.
    Dir,
    /// A file; with content, it is written even when the image has one (chroot isolation's
    /// `/etc/hosts` and friends).
    File(Option<Vec<u8>>),
    /// A character device (chroot isolation's `/dev/null`, ...); skipped where `mknod` fails.
    CharDevice(u32, u32),
}

/// Creates in `stubs_dir` what `wanted` needs on top of the snapshots of `view`. Returns the
/// resolved container paths of all the wanted entries (for the copy driver's exclusions).
pub(crate) fn build(
    view: &LayeredView,
    stubs_dir: &Path,
    wanted: &[(String, Stub)],
) -> Result<Vec<String>> {
    let mut dir_times: Vec<(PathBuf, fs::Metadata)> = Vec::new();
    let mut made: BTreeSet<String> = BTreeSet::new();
    let mut resolved_paths = Vec::new();
    if let Some(root) = view.lookup("/").ctx("reading", "/")? {
        clone_meta(&root.metadata, &root.host_path, stubs_dir)?;
        dir_times.push((stubs_dir.to_path_buf(), root.metadata));
    }
    for (target, stub) in wanted {
        let resolved = view.resolve(target, true).ctx("resolving", target.as_str())?;
        let components: Vec<&str> = resolved.split('/').filter(|c| !c.is_empty()).collect();
        if components.is_empty() {
            return Err(SandboxError::InvalidSpec(format!(
                "cannot mount over the root ({target})"
            )));
        }
        resolved_paths.push(resolved.trim_start_matches('/').to_string());
        let existing = view.lookup(&resolved).ctx("reading", resolved.as_str())?;
        let fits = match (&existing, stub) {
            (Some(e), Stub::Dir) => e.metadata.is_dir(),
            (Some(e), Stub::File(None)) => !e.metadata.is_dir(),
            (Some(e), Stub::File(Some(_))) if e.metadata.is_dir() => {
                return Err(SandboxError::InvalidSpec(format!(
                    "{resolved} is a directory in the image"
                )));
            }
            (Some(_), Stub::CharDevice(..)) => true,
            _ => false,
        };
        if fits {
            continue;
        }
        if let (Some(e), Stub::Dir) = (&existing, stub)
            && !e.metadata.is_dir()
        {
            return Err(SandboxError::InvalidSpec(format!(
                "mount target {resolved} is not a directory in the image"
            )));
        }
        // Parents: copies of the image's directories, or new ones.
        let mut rel = String::new();
        for name in &components[..components.len() - 1] {
            rel = if rel.is_empty() { name.to_string() } else { format!("{rel}/{name}") };
            let host = stubs_dir.join(&rel);
            if !made.insert(rel.clone()) {
                continue;
            }
            match view.lookup(&rel).ctx("reading", rel.as_str())? {
                Some(e) if e.metadata.is_dir() => {
                    fs::create_dir(&host).ctx("create directory", &host)?;
                    clone_meta(&e.metadata, &e.host_path, &host)?;
                    dir_times.push((host, e.metadata));
                }
                Some(_) => {
                    return Err(SandboxError::InvalidSpec(format!(
                        "cannot create mount point {resolved}: /{rel} is not a directory in the image"
                    )));
                }
                None => new_dir(&host)?,
            }
        }
        let host = stubs_dir.join(resolved.trim_start_matches('/'));
        if !made.insert(resolved.trim_start_matches('/').to_string()) {
            continue;
        }
        match stub {
            Stub::Dir => new_dir(&host)?,
            Stub::File(content) => {
                fs::write(&host, content.as_deref().unwrap_or_default()).ctx("write", &host)?;
                fs::set_permissions(&host, fs::Permissions::from_mode(0o644))
                    .ctx("chmod", &host)?;
            }
            Stub::CharDevice(major, minor) => {
                // Where mknod is refused the RUN simply has no such device.
                let _ = rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &host,
                    rustix::fs::FileType::CharacterDevice,
                    rustix::fs::Mode::from_raw_mode(0o666),
                    rustix::fs::makedev(*major, *minor),
                );
                let _ = fs::set_permissions(&host, fs::Permissions::from_mode(0o666));
            }
        }
    }
    // Times last: creating entries changed the directories' mtimes.
    for (host, meta) in dir_times.iter().rev() {
        set_times(host, meta)?;
    }
    Ok(resolved_paths)
}

fn new_dir(host: &Path) -> Result<()> {
    fs::create_dir(host).ctx("create directory", host)?;
    fs::set_permissions(host, fs::Permissions::from_mode(0o755)).ctx("chmod", host)
}

/// Gives `dst` the mode, owner and xattrs of `meta`/`src` (owner and xattrs where allowed).
pub(crate) fn clone_meta(meta: &fs::Metadata, src: &Path, dst: &Path) -> Result<()> {
    fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777)).ctx("chmod", dst)?;
    // Ids outside this user namespace's map cannot be set; the directory keeps ours.
    let _ = std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid()));
    if meta.uid() != 0 || meta.gid() != 0 {
        // chown clears set-id bits: put the mode back.
        let _ = fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777));
    }
    if let Ok(names) = xattr::list(src) {
        for name in names {
            let n = name.to_string_lossy();
            if n.contains(".overlay.") || n == "security.selinux" {
                continue;
            }
            if let Ok(Some(value)) = xattr::get(src, &name) {
                let _ = xattr::set(dst, &name, &value);
            }
        }
    }
    Ok(())
}

/// Sets `dst`'s access and modification times to those of `meta` (not following a symlink).
pub(crate) fn set_times(dst: &Path, meta: &fs::Metadata) -> Result<()> {
    let ts = |sec: i64, nsec: i64| rustix::fs::Timespec { tv_sec: sec, tv_nsec: nsec as _ };
    let times = rustix::fs::Timestamps {
        last_access: ts(meta.atime(), meta.atime_nsec()),
        last_modification: ts(meta.mtime(), meta.mtime_nsec()),
    };
    rustix::fs::utimensat(rustix::fs::CWD, dst, &times, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| SandboxError::io("set times of", dst, io::Error::from(e)))
}
