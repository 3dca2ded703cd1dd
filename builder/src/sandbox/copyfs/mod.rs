//! The copy driver, for where no overlay can be mounted (and for chroot isolation): the
//! snapshots are copied into a root directory ([`materialize`]), the RUN works on it, and the
//! changes are moved into an overlay-format upper directory ([`diff`]) that
//! `kiln_cache::layer::entries_from_dir` reads like a real overlay's.
//!
//! A change is detected by inode and `ctime` (which no program can set back): a path whose
//! inode or `ctime` differs from the [`Manifest`] taken before the RUN changed.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::error::{IoContext, Result};

mod diff;
mod materialize;

pub(crate) use diff::{Exclusions, diff};
pub(crate) use materialize::materialize;

/// What a path was before the RUN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Snap {
    ino: u64,
    /// Creation time where the file system records it (inode numbers are reused at once).
    btime: Option<(i64, u32)>,
    ctime: (i64, i64),
    kind: u32,
}

impl Snap {
    fn of(path: &Path, meta: &fs::Metadata) -> Snap {
        Snap {
            ino: meta.ino(),
            btime: birth_time(path),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            kind: meta.mode() & libc::S_IFMT,
        }
    }

    /// The same file (not a new one under the same name).
    fn same_object(&self, other: &Snap) -> bool {
        self.ino == other.ino && self.kind == other.kind && self.btime == other.btime
    }
}

fn birth_time(path: &Path) -> Option<(i64, u32)> {
    use rustix::fs::{AtFlags, StatxFlags, statx};
    let st = statx(rustix::fs::CWD, path, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::BTIME).ok()?;
    (st.stx_mask & StatxFlags::BTIME.bits() != 0)
        .then_some((st.stx_btime.tv_sec, st.stx_btime.tv_nsec))
}

/// Every path of a root directory with its inode and change time.
#[derive(Debug, Default)]
pub(crate) struct Manifest {
    entries: HashMap<String, Snap>,
}

impl Manifest {
    /// Records every path under `root` (without following symlinks).
    pub(crate) fn take(root: &Path) -> Result<Manifest> {
        let mut entries = HashMap::new();
        walk(root, &mut |rel, meta| {
            entries.insert(rel.to_string(), Snap::of(&root.join(rel), meta));
            true
        })?;
        Ok(Manifest { entries })
    }
}

/// Depth-first walk of `root` (not following symlinks, not including the root itself);
/// `visit(rel, meta)` returns whether to descend into a directory.
pub(crate) fn walk(root: &Path, visit: &mut dyn FnMut(&str, &fs::Metadata) -> bool) -> Result<()> {
    let mut stack: Vec<String> = children(root, "")?;
    while let Some(rel) = stack.pop() {
        let path = root.join(&rel);
        let meta = fs::symlink_metadata(&path).ctx("stat", &path)?;
        if visit(&rel, &meta) && meta.is_dir() {
            stack.extend(children(&path, &rel)?);
        }
    }
    Ok(())
}

/// The relative paths of `dir`'s entries (`rel` is `dir` relative to the root).
fn children(dir: &Path, rel: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for ent in fs::read_dir(dir).ctx("read directory", dir)? {
        let ent = ent.ctx("read directory", dir)?;
        let name = ent.file_name();
        let name = name.to_string_lossy();
        out.push(if rel.is_empty() { name.into_owned() } else { format!("{rel}/{name}") });
    }
    Ok(out)
}

/// True for an overlay whiteout: a 0:0 character device, or a file with an
/// `overlay.whiteout` xattr.
pub(crate) fn is_whiteout(path: &Path, meta: &fs::Metadata) -> bool {
    let ft = meta.file_type();
    (ft.is_char_device() && meta.rdev() == 0)
        || (ft.is_file()
            && meta.len() == 0
            && (has_xattr(path, "user.overlay.whiteout")
                || has_xattr(path, "trusted.overlay.whiteout")))
}

/// True for a directory overlay treats as opaque (`overlay.opaque` = `y`).
pub(crate) fn is_opaque(path: &Path) -> bool {
    ["user.overlay.opaque", "trusted.overlay.opaque"]
        .iter()
        .any(|name| matches!(xattr::get(path, name), Ok(Some(v)) if v == b"y"))
}

fn has_xattr(path: &Path, name: &str) -> bool {
    matches!(xattr::get(path, name), Ok(Some(_)))
}

/// Removes whatever is at `path` (a directory with its contents); absent is fine.
pub(crate) fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates an overlay whiteout at `path`: a 0:0 character device, or where `mknod` is refused
/// an empty file with `user.overlay.whiteout`.
pub(crate) fn make_whiteout(path: &Path) -> Result<()> {
    let made = rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    );
    if made.is_ok() {
        return Ok(());
    }
    fs::write(path, b"").ctx("create whiteout", path)?;
    xattr::set(path, "user.overlay.whiteout", b"").ctx("mark whiteout", path)
}

/// Copies the xattrs of `src` to `dst` except overlay's own and SELinux labels (best effort).
pub(crate) fn copy_xattrs(src: &Path, dst: &Path) {
    let Ok(names) = xattr::list(src) else { return };
    for name in names {
        let n = name.to_string_lossy();
        if n.contains(".overlay.") || n.contains(".fuseoverlayfs.") || n == "security.selinux" {
            continue;
        }
        if let Ok(Some(value)) = xattr::get(src, &name) {
            let _ = xattr::set(dst, &name, &value);
        }
    }
}
