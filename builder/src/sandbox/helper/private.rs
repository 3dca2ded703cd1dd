//! The helper's private tmpfs: a tmpfs mounted on the layout's `private` directory in the
//! helper's mount namespace only (kiln's own namespace sees an empty directory). It holds the
//! files of secrets and the top layers of filtered views; it is never reachable from the RUN
//! except through the mounts made from it, and it vanishes with the sandbox's namespaces, so
//! nothing in it can outlive the RUN on disk, even when kiln is killed with SIGKILL.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::sandbox::sys;

/// The private tmpfs, mounted when first needed.
pub(crate) struct Private {
    dir: PathBuf,
    mounted: bool,
}

impl Private {
    /// The tmpfs to be mounted on `dir` (an empty directory).
    pub(crate) fn new(dir: &Path) -> Private {
        Private { dir: dir.to_path_buf(), mounted: false }
    }

    fn ensure_mounted(&mut self) -> io::Result<()> {
        if !self.mounted {
            sys::mount(
                Some(c"tmpfs"),
                &sys::cpath(&self.dir)?,
                Some(c"tmpfs"),
                libc::MS_NOSUID | libc::MS_NODEV,
                Some(c"mode=0700"),
            )?;
            self.mounted = true;
        }
        Ok(())
    }

    /// Writes `data` to a new file of the tmpfs with `mode`, owned by `uid:gid`; returns its
    /// path (to bind-mount).
    pub(crate) fn secret_file(
        &mut self,
        n: usize,
        data: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> io::Result<PathBuf> {
        self.ensure_mounted()?;
        let path = self.dir.join(format!("secret-{n}"));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)?;
        file.write_all(data)?;
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        file.set_permissions(fs::Permissions::from_mode(mode & 0o7777))?;
        Ok(path)
    }

    /// Makes the top layer of a filtered view of `source`: a whiteout (a 0:0 character
    /// device) for each of `hidden`, in directories that carry the mode, owner and times of
    /// `source`'s (the top layer's directories are what the merged view shows); returns it.
    pub(crate) fn hiding_layer(
        &mut self,
        n: usize,
        source: &Path,
        hidden: &[String],
    ) -> io::Result<PathBuf> {
        self.ensure_mounted()?;
        let layer = self.dir.join(format!("view-{n}"));
        fs::create_dir(&layer)?;
        let mut dirs: Vec<String> = vec![String::new()];
        let mut made: BTreeSet<String> = BTreeSet::new();
        for path in hidden {
            let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
            let mut at = String::new();
            for segment in parent.split('/').filter(|s| !s.is_empty()) {
                if !at.is_empty() {
                    at.push('/');
                }
                at.push_str(segment);
                if made.insert(at.clone()) {
                    fs::create_dir(layer.join(&at))?;
                    dirs.push(at.clone());
                }
            }
            let whiteout = sys::cpath(&layer.join(path))?;
            // SAFETY: a valid NUL-terminated path.
            sys::cvt(unsafe { libc::mknod(whiteout.as_ptr(), libc::S_IFCHR, 0) })?;
        }
        // After every entry is made (making one changes its directory's times).
        for rel in dirs {
            let (ours, theirs) = if rel.is_empty() {
                (layer.clone(), source.to_path_buf())
            } else {
                (layer.join(&rel), source.join(&rel))
            };
            copy_dir_metadata(&theirs, &ours)?;
        }
        Ok(layer)
    }
}

/// Gives the directory `to` the owner, permission bits and times of the directory `from`
/// (the owner when this namespace maps it).
fn copy_dir_metadata(from: &Path, to: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(from) {
        Ok(m) if m.is_dir() => m,
        // Changed since the caller listed it: the view keeps the tmpfs's defaults there.
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let _ = std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()));
    fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    let times = [
        libc::timespec { tv_sec: meta.atime(), tv_nsec: meta.atime_nsec() },
        libc::timespec { tv_sec: meta.mtime(), tv_nsec: meta.mtime_nsec() },
    ];
    let path = sys::cpath(to)?;
    // SAFETY: a valid path and an array of two timespecs.
    sys::cvt(unsafe {
        libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW)
    })?;
    Ok(())
}
