//! A cross-process file lock (`flock`), held for as long as the [`FileLock`] value lives.
//!
//! Each [`FileLock`] opens the lock file anew, so two threads of one process exclude each other
//! exactly like two processes do (`flock` locks belong to an open file description).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;
use rustix::io::Errno;

use crate::error::{Error, Result};

/// A held `flock` on a file; released when dropped.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
    exclusive: bool,
}

impl FileLock {
    /// Waits for and takes an exclusive lock on `path` (created if missing).
    pub fn exclusive(path: &Path) -> Result<FileLock> {
        Self::take(path, FlockOperation::LockExclusive, true)?.ok_or_else(|| busy(path))
    }

    /// Waits for and takes a shared lock on `path` (created if missing).
    pub fn shared(path: &Path) -> Result<FileLock> {
        Self::take(path, FlockOperation::LockShared, false)?.ok_or_else(|| busy(path))
    }

    /// Takes an exclusive lock on `path` if nobody holds it; `None` when it is busy.
    pub fn try_exclusive(path: &Path) -> Result<Option<FileLock>> {
        Self::take(path, FlockOperation::NonBlockingLockExclusive, true)
    }

    /// Takes a shared lock on `path` unless someone holds it exclusively; `None` when busy.
    pub fn try_shared(path: &Path) -> Result<Option<FileLock>> {
        Self::take(path, FlockOperation::NonBlockingLockShared, false)
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True for an exclusive lock, false for a shared one.
    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }

    fn take(path: &Path, op: FlockOperation, exclusive: bool) -> Result<Option<FileLock>> {
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
        {
            Ok(f) => f,
            // On a read-only filesystem nobody writes, but readers (`kiln images`, `kiln cache
            // check --dry-run`) still lock: `flock` works on a read-only descriptor.
            Err(e) if e.raw_os_error() == Some(libc::EROFS) => OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_CLOEXEC)
                .open(path)
                .map_err(|_| Error::io("open lock file", path, e))?,
            Err(e) => return Err(Error::io("open lock file", path, e)),
        };
        loop {
            match rustix::fs::flock(&file, op) {
                Ok(()) => {
                    return Ok(Some(FileLock { file, path: path.to_path_buf(), exclusive }));
                }
                Err(Errno::INTR) => continue,
                Err(Errno::WOULDBLOCK) => return Ok(None),
                Err(e) => return Err(Error::io("flock", path, e.into())),
            }
        }
    }
}

/// A blocking `flock` never reports "busy"; this only guards against a kernel that would.
fn busy(path: &Path) -> Error {
    Error::io("flock", path, Errno::WOULDBLOCK.into())
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first makes it explicit.
        let _ = rustix::fs::flock(&self.file, FlockOperation::Unlock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_releases_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.lock");
        let a = FileLock::exclusive(&p).unwrap();
        assert!(a.is_exclusive());
        assert!(FileLock::try_exclusive(&p).unwrap().is_none());
        assert!(FileLock::try_shared(&p).unwrap().is_none());
        drop(a);
        let s1 = FileLock::shared(&p).unwrap();
        let s2 = FileLock::try_shared(&p).unwrap();
        assert!(s2.is_some());
        assert!(FileLock::try_exclusive(&p).unwrap().is_none());
        drop((s1, s2));
        assert!(FileLock::try_exclusive(&p).unwrap().is_some());
    }

    #[test]
    fn missing_directory_names_the_path() {
        let err = FileLock::exclusive(Path::new("/nonexistent-kiln-dir/x.lock")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "open lock file /nonexistent-kiln-dir/x.lock: No such file or directory (os error 2)"
        );
    }
}
