//! A directory used as a jail: every path is resolved with `openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)` relative to an `O_PATH` descriptor of the root, so
//! `..`, absolute symlinks and symlinks pointing out all stay inside it. Final components are
//! then handled with `*at` calls that do not follow symlinks.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// Flags every resolution inside the root uses.
const RESOLVE: ResolveFlags =
    ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS).union(ResolveFlags::NO_XDEV);

/// An open root directory that paths are resolved within.
pub(crate) struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    /// Opens `path` (an existing directory) as the root.
    pub(crate) fn open(path: &Path) -> Result<Root> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("open", path, e.into()))?;
        Ok(Root { fd, path: path.to_path_buf() })
    }

    /// The host path of `rel` (for error messages only; never opened by path).
    pub(crate) fn display(&self, rel: &Path) -> PathBuf {
        self.path.join(rel)
    }

    /// An error on `rel` while doing `op`.
    pub(crate) fn err(&self, op: &'static str, rel: &Path, e: Errno) -> Error {
        Error::io(op, self.display(rel), e.into())
    }

    /// Resolves `rel` inside the root and opens it with `flags`.
    pub(crate) fn resolve(
        &self,
        rel: &Path,
        flags: OFlags,
        extra: ResolveFlags,
    ) -> Result<OwnedFd, Errno> {
        let rel: &Path = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(
                &self.fd,
                rel,
                flags | OFlags::CLOEXEC,
                Mode::empty(),
                RESOLVE | extra,
            ) {
                // EAGAIN: a concurrent rename raced the lookup; try again a few times.
                Err(Errno::AGAIN) if tries < 8 => tries += 1,
                other => return other,
            }
        }
    }

    /// Opens the directory `rel` (resolved in the root), readable (for xattrs, fchmod).
    pub(crate) fn open_dir(&self, rel: &Path) -> Result<OwnedFd> {
        self.resolve(rel, OFlags::RDONLY | OFlags::DIRECTORY, ResolveFlags::empty())
            .map_err(|e| self.err("open directory", rel, e))
    }

    /// Returns an `O_PATH` descriptor of directory `rel`, creating missing directories on the way
    /// (mode 0755). A component that exists and is not a directory (or a dangling symlink) is an error.
    pub(crate) fn ensure_dir(&self, rel: &Path) -> Result<OwnedFd> {
        let flags = OFlags::PATH | OFlags::DIRECTORY;
        match self.resolve(rel, flags, ResolveFlags::empty()) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) => {}
            Err(e) => return Err(self.err("open directory", rel, e)),
        }
        let mut cur = self
            .resolve(Path::new(""), flags, ResolveFlags::empty())
            .map_err(|e| self.err("open", rel, e))?;
        let mut prefix = PathBuf::new();
        for comp in rel.components() {
            let Component::Normal(name) = comp else { continue };
            prefix.push(name);
            cur = match self.resolve(&prefix, flags, ResolveFlags::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(&cur, name, Mode::from_raw_mode(0o755)) {
                        Ok(()) => {}
                        Err(Errno::EXIST) => {
                            return Err(self.err(
                                "create directory (a dangling symlink is in the way)",
                                &prefix,
                                Errno::EXIST,
                            ));
                        }
                        Err(e) => return Err(self.err("create directory", &prefix, e)),
                    }
                    self.resolve(&prefix, flags, ResolveFlags::empty())
                        .map_err(|e| self.err("open directory", &prefix, e))?
                }
                Err(e) => return Err(self.err("open directory", &prefix, e)),
            };
        }
        Ok(cur)
    }
}

/// What is at `name` in `dir`, without following a symlink; `None` when nothing is.
pub(crate) fn lstat_at(dir: impl AsFd, name: &OsStr) -> Result<Option<rustix::fs::Stat>, Errno> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes `name` in `dir` (recursively for a directory), never following symlinks.
pub(crate) fn remove_at(dir: impl AsFd, name: &OsStr) -> Result<(), Errno> {
    let dir = dir.as_fd();
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) => return Ok(()),
        Err(Errno::ISDIR | Errno::PERM) => {}
        Err(e) => return Err(e),
    }
    let sub = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    // Make sure we may delete inside it (directories are created 0700 until finalized, but a
    // merged directory may already carry its final mode).
    let _ = rustix::fs::fchmod(&sub, Mode::from_raw_mode(0o700));
    let mut names = Vec::new();
    for ent in rustix::fs::Dir::read_from(&sub)? {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push((
                std::ffi::OsString::from(<OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(n)),
                ent.file_type(),
            ));
        }
    }
    for (n, ft) in names {
        if ft == FileType::Directory {
            remove_at(&sub, &n)?;
        } else {
            match rustix::fs::unlinkat(&sub, &n, AtFlags::empty()) {
                Ok(()) => {}
                Err(Errno::ISDIR) => remove_at(&sub, &n)?,
                Err(e) => return Err(e),
            }
        }
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}
