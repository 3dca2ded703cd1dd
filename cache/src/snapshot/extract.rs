//! [`extract_layer`]: kiln's own layer extractor into an overlayfs-format directory.
//!
//! Every member is created relative to the root's descriptor through [`Root`], so nothing can
//! be written outside it. Later members replace earlier ones at the same path (a directory over
//! a directory merges). Directory modes, owners and mtimes are applied at the end, deepest first,
//! so their contents can be written and their mtimes are not disturbed.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layer::{HeaderKind, LayerHeader, read_layer};
use crate::xattrs;

use super::secure::{Root, lstat_at, remove_at};

/// The xattr marking an opaque directory for overlayfs mounted with `userxattr`.
pub const OPAQUE_XATTR: &str = "user.overlay.opaque";
/// The xattr marking a zero-size regular file as a whiteout (overlayfs ≥ 6.7, lower layers).
pub const WHITEOUT_XATTR: &str = "user.overlay.whiteout";

/// How [`extract_layer`] works.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractOptions {
    /// Write whiteouts as xattr whiteouts (see [`WHITEOUT_XATTR`]) instead of trying a 0:0
    /// character device first.
    pub xattr_whiteouts: bool,
}

/// What an extraction did, beyond the plain files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractReport {
    /// The layer's diff_id (verified).
    pub diff_id: Option<Digest>,
    /// Tar members applied.
    pub entries: u64,
    /// Device nodes skipped because kiln is not running as real root.
    pub skipped_devices: u64,
    /// Xattrs not set: refused by the kernel/filesystem, on symlinks or special files, or
    /// overlay's own (`*.overlay.*`, never taken from a layer).
    pub ignored_xattrs: u64,
    /// Members whose owner could not be set (ids not mapped in this user namespace).
    pub ownership_failures: u64,
    /// Whiteouts written as xattr whiteouts because `mknod` of a 0:0 device was refused.
    pub xattr_whiteouts: u64,
    /// Tar members skipped by the reader (global headers, aufs metadata, unknown types).
    pub skipped_members: u64,
}

/// True when running as root in the initial user namespace (may create device nodes).
pub fn running_as_real_root() -> bool {
    if !rustix::process::geteuid().is_root() {
        return false;
    }
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
        .unwrap_or(false)
}

/// Extracts the layer stream `reader` of `media_type` into the existing empty directory `dest`
/// in overlayfs format (whiteouts as 0:0 character devices, opaque directories with
/// `user.overlay.opaque=y`). With `expected_diff_id`, a different diff_id is an error (the caller
/// removes `dest`). Directory metadata is applied only once the whole stream checked out.
pub fn extract_layer(
    reader: impl Read,
    media_type: &str,
    dest: &Path,
    expected_diff_id: Option<&Digest>,
    opts: &ExtractOptions,
) -> Result<ExtractReport> {
    let root = Root::open(dest)?;
    let euid_root = rustix::process::geteuid().is_root();
    let mut x = Extractor {
        root,
        chown: euid_root,
        devices: running_as_real_root(),
        trusted_xattrs: running_as_real_root(),
        opts: opts.clone(),
        dirs: BTreeMap::new(),
        report: ExtractReport::default(),
        buf: vec![0u8; 256 * 1024],
    };
    let summary = read_layer(reader, media_type, |h, content| x.apply(h, content))?;
    if let Some(exp) = expected_diff_id
        && summary.diff_id != *exp
    {
        return Err(Error::DigestMismatch {
            what: format!("layer diff_id (extracting into {})", dest.display()),
            expected: exp.clone(),
            actual: summary.diff_id,
        });
    }
    x.finish_dirs()?;
    x.report.diff_id = Some(summary.diff_id);
    x.report.skipped_members = summary.skipped;
    Ok(x.report)
}

/// Metadata of a directory, applied at the end.
struct DirMeta {
    dev: u64,
    ino: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
}

struct Extractor {
    root: Root,
    chown: bool,
    devices: bool,
    trusted_xattrs: bool,
    opts: ExtractOptions,
    dirs: BTreeMap<PathBuf, DirMeta>,
    report: ExtractReport,
    buf: Vec<u8>,
}

fn times(mtime: i64) -> Timestamps {
    let t = Timespec { tv_sec: mtime, tv_nsec: 0 };
    Timestamps { last_access: t, last_modification: t }
}

fn split(path: &Path) -> (&Path, &OsStr) {
    (path.parent().unwrap_or(Path::new("")), path.file_name().unwrap_or_default())
}

impl Extractor {
    fn apply(&mut self, h: &LayerHeader, content: &mut dyn Read) -> Result<()> {
        self.report.entries += 1;
        if h.kind == HeaderKind::OpaqueDir {
            self.root.ensure_dir(&h.path)?;
            let fd = self.root.open_dir(&h.path)?;
            return self.set_opaque(&fd, &h.path, b"y");
        }
        if h.path.as_os_str().is_empty() {
            // The root directory itself (`./`): only its metadata.
            let fd = self.root.open_dir(&h.path)?;
            self.set_xattrs(&fd, h);
            return self.record_dir(&fd, h);
        }
        let (parent_rel, name) = split(&h.path);
        let parent = self.root.ensure_dir(parent_rel)?;
        let existing = lstat_at(&parent, name).map_err(|e| self.root.err("stat", &h.path, e))?;
        let mut replaced_whiteout = false;
        if let Some(st) = existing {
            let ft = FileType::from_raw_mode(st.st_mode);
            if ft == FileType::Directory && h.kind == HeaderKind::Dir {
                let fd = self.open_child_dir(&parent, name, &h.path)?;
                self.set_xattrs(&fd, h);
                return self.record_dir(&fd, h);
            }
            replaced_whiteout = (ft == FileType::CharacterDevice && st.st_rdev == 0)
                || (ft == FileType::RegularFile
                    && st.st_size == 0
                    && self.is_xattr_whiteout(&parent, name));
            remove_at(&parent, name).map_err(|e| self.root.err("remove", &h.path, e))?;
        }
        match &h.kind {
            HeaderKind::Dir => {
                rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o700))
                    .map_err(|e| self.root.err("create directory", &h.path, e))?;
                let fd = self.open_child_dir(&parent, name, &h.path)?;
                self.set_xattrs(&fd, h);
                if replaced_whiteout {
                    // Deleted and re-created in this layer: nothing from below shows through.
                    self.set_opaque(&fd, &h.path, b"y")?;
                }
                self.record_dir(&fd, h)?;
            }
            HeaderKind::File { .. } => self.write_file(&parent, name, h, content)?,
            HeaderKind::Symlink { target } => {
                rustix::fs::symlinkat(target.as_os_str(), &parent, name)
                    .map_err(|e| self.root.err("create symlink", &h.path, e))?;
                self.report.ignored_xattrs += h.xattrs.len() as u64;
                self.finish_special(&parent, name, h, false)?;
            }
            HeaderKind::Hardlink { target } => {
                let (tparent_rel, tname) = split(target);
                let tparent = self
                    .root
                    .resolve(tparent_rel, OFlags::PATH | OFlags::DIRECTORY, ResolveFlags::empty())
                    .map_err(|e| {
                        self.root.err("open hard link target directory", tparent_rel, e)
                    })?;
                rustix::fs::linkat(&tparent, tname, &parent, name, AtFlags::empty()).map_err(
                    |e| {
                        Error::entry(
                            h.path.to_string_lossy(),
                            format!("cannot hard link to {:?}: {}", target, io::Error::from(e)),
                        )
                    },
                )?;
            }
            HeaderKind::CharDevice { major, minor } | HeaderKind::BlockDevice { major, minor } => {
                if !self.devices {
                    self.report.skipped_devices += 1;
                    return Ok(());
                }
                let ft = if matches!(h.kind, HeaderKind::CharDevice { .. }) {
                    FileType::CharacterDevice
                } else {
                    FileType::BlockDevice
                };
                let dev = rustix::fs::makedev(*major, *minor);
                rustix::fs::mknodat(&parent, name, ft, Mode::from_raw_mode(0o600), dev)
                    .map_err(|e| self.root.err("create device", &h.path, e))?;
                self.report.ignored_xattrs += h.xattrs.len() as u64;
                self.finish_special(&parent, name, h, true)?;
            }
            HeaderKind::Fifo => {
                rustix::fs::mknodat(&parent, name, FileType::Fifo, Mode::from_raw_mode(0o600), 0)
                    .map_err(|e| self.root.err("create fifo", &h.path, e))?;
                self.report.ignored_xattrs += h.xattrs.len() as u64;
                self.finish_special(&parent, name, h, true)?;
            }
            HeaderKind::Whiteout => self.whiteout(&parent, parent_rel, name, &h.path)?,
            HeaderKind::OpaqueDir => {}
        }
        Ok(())
    }

    fn open_child_dir(&self, parent: &OwnedFd, name: &OsStr, rel: &Path) -> Result<OwnedFd> {
        rustix::fs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.root.err("open directory", rel, e))
    }

    fn record_dir(&mut self, fd: &OwnedFd, h: &LayerHeader) -> Result<()> {
        let st = rustix::fs::fstat(fd).map_err(|e| self.root.err("stat", &h.path, e))?;
        self.dirs.insert(
            h.path.clone(),
            DirMeta {
                dev: st.st_dev,
                ino: st.st_ino,
                mode: h.mode,
                uid: h.uid,
                gid: h.gid,
                mtime: h.mtime,
            },
        );
        Ok(())
    }

    fn write_file(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        h: &LayerHeader,
        content: &mut dyn Read,
    ) -> Result<()> {
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| self.root.err("create", &h.path, e))?;
        let mut file = std::fs::File::from(fd);
        let declared = match h.kind {
            HeaderKind::File { size } => size,
            _ => 0,
        };
        let mut written = 0u64;
        loop {
            let n = match content.read(&mut self.buf) {
                Ok(0) if written != declared => {
                    return Err(Error::entry(
                        h.path.to_string_lossy(),
                        format!(
                            "truncated: the layer ends after {written} of its {declared} bytes"
                        ),
                    ));
                }
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::stream(format!("reading layer member {:?}", h.path), e));
                }
            };
            io::Write::write_all(&mut file, &self.buf[..n])
                .map_err(|e| Error::io("write", self.root.display(&h.path), e))?;
            written += n as u64;
        }
        self.chown_fd(&file, h);
        rustix::fs::fchmod(&file, Mode::from_raw_mode(h.mode))
            .map_err(|e| self.root.err("chmod", &h.path, e))?;
        self.set_xattrs(&file, h);
        rustix::fs::futimens(&file, &times(h.mtime))
            .map_err(|e| self.root.err("set times of", &h.path, e))?;
        Ok(())
    }

    /// Owner, mode (unless a symlink) and mtime of a non-directory, non-file member.
    fn finish_special(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        h: &LayerHeader,
        chmod: bool,
    ) -> Result<()> {
        if self.chown {
            let ok = valid_id(h.uid) && valid_id(h.gid);
            let res = ok.then(|| {
                rustix::fs::chownat(
                    parent,
                    name,
                    Some(rustix::fs::Uid::from_raw(h.uid)),
                    Some(rustix::fs::Gid::from_raw(h.gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
            });
            if !matches!(res, Some(Ok(()))) {
                self.report.ownership_failures += 1;
            }
        }
        if chmod {
            rustix::fs::chmodat(parent, name, Mode::from_raw_mode(h.mode), AtFlags::empty())
                .map_err(|e| self.root.err("chmod", &h.path, e))?;
        }
        rustix::fs::utimensat(parent, name, &times(h.mtime), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.root.err("set times of", &h.path, e))
    }

    fn chown_fd(&mut self, fd: impl AsFd, h: &LayerHeader) {
        if !self.chown {
            return;
        }
        let ok = valid_id(h.uid)
            && valid_id(h.gid)
            && rustix::fs::fchown(
                fd,
                Some(rustix::fs::Uid::from_raw(h.uid)),
                Some(rustix::fs::Gid::from_raw(h.gid)),
            )
            .is_ok();
        if !ok {
            self.report.ownership_failures += 1;
        }
    }

    fn set_xattrs(&mut self, fd: impl AsFd, h: &LayerHeader) {
        for (k, v) in &h.xattrs {
            // Overlay's own attributes would change how the snapshot is read as a lower layer.
            if xattrs::is_overlay_xattr(k) || xattrs::set_fd(fd.as_fd(), k, v).is_err() {
                self.report.ignored_xattrs += 1;
            }
        }
    }

    /// Marks a directory opaque (`y`) or as holding xattr whiteouts (`x`, never over `y`).
    fn set_opaque(&mut self, fd: &OwnedFd, rel: &Path, value: &[u8]) -> Result<()> {
        if value == b"x" && xattrs::get_fd(fd, OPAQUE_XATTR).as_deref() == Some(b"y") {
            return Ok(());
        }
        xattrs::set_fd(fd, OPAQUE_XATTR, value)
            .map_err(|e| self.root.err("set user.overlay.opaque on", rel, e))?;
        if self.trusted_xattrs {
            // For overlay mounted without `userxattr` (rootful); not required.
            let _ = xattrs::set_fd(fd, "trusted.overlay.opaque", value);
        }
        Ok(())
    }

    fn is_xattr_whiteout(&self, parent: &OwnedFd, name: &OsStr) -> bool {
        rustix::fs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )
        .is_ok_and(|fd| xattrs::get_fd(&fd, WHITEOUT_XATTR).is_some())
    }

    /// A whiteout: a 0:0 character device, or when `mknod` is refused (or asked for), an empty
    /// file with `user.overlay.whiteout` whose parent and the layer root are marked `opaque=x`.
    fn whiteout(
        &mut self,
        parent: &OwnedFd,
        parent_rel: &Path,
        name: &OsStr,
        rel: &Path,
    ) -> Result<()> {
        if !self.opts.xattr_whiteouts {
            match rustix::fs::mknodat(parent, name, FileType::CharacterDevice, Mode::empty(), 0) {
                Ok(()) => return Ok(()),
                Err(Errno::PERM) => {}
                Err(e) => return Err(self.root.err("create whiteout", rel, e)),
            }
        }
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|e| self.root.err("create whiteout", rel, e))?;
        xattrs::set_fd(&fd, WHITEOUT_XATTR, b"")
            .map_err(|e| self.root.err("set user.overlay.whiteout on", rel, e))?;
        if self.trusted_xattrs {
            let _ = xattrs::set_fd(&fd, "trusted.overlay.whiteout", b"");
        }
        for dir in [parent_rel, Path::new("")] {
            let dfd = self.root.open_dir(dir)?;
            self.set_opaque(&dfd, dir, b"x")?;
        }
        self.report.xattr_whiteouts += 1;
        Ok(())
    }

    /// Applies directory metadata, deepest paths first; a directory replaced since it was
    /// recorded (other inode) is left alone.
    fn finish_dirs(&mut self) -> Result<()> {
        let dirs = std::mem::take(&mut self.dirs);
        for (rel, meta) in dirs.iter().rev() {
            let fd = match self.root.resolve(
                rel,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
                ResolveFlags::NO_SYMLINKS,
            ) {
                Ok(fd) => fd,
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                Err(e) => return Err(self.root.err("open directory", rel, e)),
            };
            let st = rustix::fs::fstat(&fd).map_err(|e| self.root.err("stat", rel, e))?;
            if (st.st_dev, st.st_ino) != (meta.dev, meta.ino) {
                continue;
            }
            let h = LayerHeader {
                path: rel.clone(),
                kind: HeaderKind::Dir,
                mode: meta.mode,
                uid: meta.uid,
                gid: meta.gid,
                mtime: meta.mtime,
                xattrs: BTreeMap::new(),
            };
            self.chown_fd(&fd, &h);
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode))
                .map_err(|e| self.root.err("chmod", rel, e))?;
            rustix::fs::futimens(&fd, &times(meta.mtime))
                .map_err(|e| self.root.err("set times of", rel, e))?;
        }
        Ok(())
    }
}

/// `-1` means "unchanged" to chown; a layer cannot ask for it.
fn valid_id(id: u32) -> bool {
    id != u32::MAX
}
