//! Temporary directories a build needs while it runs (downloads, git checkouts, extracted tar
//! contexts, spooled archive members), under the kiln root's `tmp/` and removed when the
//! [`Scratch`] is dropped. A crash leaves them to `kiln cache prune`, which empties `tmp/`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tempfile::TempDir;

/// Owner of a build's temporary directories.
#[derive(Debug)]
pub struct Scratch {
    parent: PathBuf,
    dirs: Mutex<Vec<TempDir>>,
}

impl Scratch {
    /// Temporary directories will be made in `parent` (created if missing).
    pub fn new(parent: &Path) -> Scratch {
        Scratch { parent: parent.to_path_buf(), dirs: Mutex::new(Vec::new()) }
    }

    /// Scratch space under the kiln root `root` (`root/tmp`).
    pub fn in_root(root: &Path) -> Scratch {
        Scratch::new(&root.join("tmp"))
    }

    /// A new empty directory named `prefix…`, kept until the scratch is dropped.
    pub fn dir(&self, prefix: &str) -> io::Result<PathBuf> {
        std::fs::create_dir_all(&self.parent)?;
        let dir = private(prefix).tempdir_in(&self.parent)?;
        let path = dir.path().to_path_buf();
        self.dirs.lock().unwrap_or_else(|p| p.into_inner()).push(dir);
        Ok(path)
    }

    /// A new empty directory the caller owns (removed when the returned guard drops).
    pub fn owned_dir(&self, prefix: &str) -> io::Result<TempDir> {
        std::fs::create_dir_all(&self.parent)?;
        private(prefix).tempdir_in(&self.parent)
    }
}

/// A temporary directory of mode `0700` (tempfile's default follows the umask): extracted
/// contexts and downloads are the user's, and may hold set-uid files.
fn private(prefix: &str) -> tempfile::Builder<'_, 'static> {
    use std::os::unix::fs::PermissionsExt;
    let mut b = tempfile::Builder::new();
    b.prefix(prefix).permissions(std::fs::Permissions::from_mode(0o700));
    b
}
