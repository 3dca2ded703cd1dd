//! Snapshots: each layer unpacked once, by diff_id, into a directory in overlayfs format that a
//! RUN step can use directly as an overlay `lowerdir`.
//!
//! Layout under the kiln root:
//!
//! ```text
//! snapshots/<diff_id hex>/fs/             the layer's files
//! snapshots/<diff_id hex>/snapshot.json   written last: the extraction report (marks it complete)
//! snapshots/<diff_id hex>.lock            held while one process extracts it
//! snapshots/.tmp-*/                       extractions in progress (renamed in when complete)
//! ```
//!
//! Overlay format: a whiteout is a 0:0 character device (allowed unprivileged since Linux 5.8);
//! where `mknod` is refused it is an empty regular file with the xattr `user.overlay.whiteout`,
//! its parent directory and the snapshot root then carrying `user.overlay.opaque=x` ("contains
//! xattr whiteouts", overlayfs ≥ 6.7; `x` does **not** mean opaque). An opaque directory has
//! `user.overlay.opaque=y`. The `user.` names are what overlayfs reads when mounted with the
//! `userxattr` option (rootless); as real root the `trusted.` twins are set as well.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::blob::BlobStore;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{remove_tree, write_replace};
use crate::lock::FileLock;

mod extract;
mod secure;

pub use extract::{
    ExtractOptions, ExtractReport, OPAQUE_XATTR, WHITEOUT_XATTR, extract_layer,
    running_as_real_root,
};

/// Name of the completion marker (and report) inside a snapshot directory.
const MARKER: &str = "snapshot.json";

/// What [`Snapshots::ensure`] needs to know about a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDesc {
    /// Digest of the layer blob in the blob store.
    pub digest: Digest,
    /// Digest of the uncompressed tar (the snapshot's name; verified while extracting).
    pub diff_id: Digest,
    /// The blob's media type (decides the decompression).
    pub media_type: String,
}

/// The snapshot directory of a kiln root.
#[derive(Debug, Clone)]
pub struct Snapshots {
    dir: PathBuf,
    opts: ExtractOptions,
}

impl Snapshots {
    /// Opens (creating if needed) `<root>/snapshots`.
    pub fn open(root: &Path) -> Result<Snapshots> {
        let dir = root.join("snapshots");
        fs::create_dir_all(&dir).ctx("create directory", &dir)?;
        Ok(Snapshots { dir, opts: ExtractOptions::default() })
    }

    /// The same store, extracting with `opts` from now on.
    pub fn with_options(mut self, opts: ExtractOptions) -> Snapshots {
        self.opts = opts;
        self
    }

    /// The files directory of the snapshot `diff_id` (whether or not it exists yet).
    pub fn path(&self, diff_id: &Digest) -> PathBuf {
        self.dir.join(diff_id.hex()).join("fs")
    }

    /// True when the snapshot `diff_id` is complete: its marker exists and was written since the
    /// machine last booted. Snapshot files are not fsynced (a `syncfs` per layer costs far more
    /// than the extraction on a busy disk); a process crash loses nothing from the page cache,
    /// and after a power failure — a new boot — every snapshot is extracted again from its
    /// verified blob.
    pub fn contains(&self, diff_id: &Digest) -> bool {
        is_complete(&self.dir.join(diff_id.hex()))
    }

    /// Makes `upper`, an overlay upper directory whose tar is the layer `diff_id` (already
    /// written to a blob from it), the snapshot of that layer, by moving it: the next step needs
    /// no extraction. `upper` must be on the kiln root's file system. Does nothing if the
    /// snapshot exists; returns its files directory either way.
    pub fn adopt(&self, diff_id: &Digest, upper: &Path) -> Result<PathBuf> {
        if self.contains(diff_id) {
            return Ok(self.path(diff_id));
        }
        let hex = diff_id.hex();
        let _lock = FileLock::exclusive(&self.dir.join(format!("{hex}.lock")))?;
        if self.contains(diff_id) {
            return Ok(self.path(diff_id));
        }
        let final_dir = self.dir.join(&hex);
        remove_tree(&final_dir)?;
        let tmp = private_tempdir_builder()
            .tempdir_in(&self.dir)
            .ctx("create temp directory in", &self.dir)?
            .keep();
        let result = fs::rename(upper, tmp.join("fs"))
            .ctx("move upper directory to", &tmp)
            .and_then(|()| {
                let report =
                    ExtractReport { diff_id: Some(diff_id.clone()), ..ExtractReport::default() };
                self.mark_complete(&tmp, &report)
            })
            .and_then(|()| fs::rename(&tmp, &final_dir).ctx("rename snapshot into", &final_dir));
        if let Err(e) = result {
            let _ = remove_tree(&tmp);
            return Err(e);
        }
        Ok(self.path(diff_id))
    }

    /// Writes the markers that say the snapshot in `dir` is complete (report, then boot id).
    fn mark_complete(&self, dir: &Path, report: &ExtractReport) -> Result<()> {
        let json = crate::json::to_canonical_vec(report, "snapshot report")?;
        write_replace(&dir.join(MARKER), &json, 0o644)?;
        write_replace(&dir.join(BOOT_MARKER), boot_id().as_bytes(), 0o644)
    }

    /// The extraction report of a complete snapshot, `None` if there is none.
    pub fn report(&self, diff_id: &Digest) -> Result<Option<ExtractReport>> {
        let path = self.dir.join(diff_id.hex()).join(MARKER);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| Error::Json { what: path.display().to_string(), source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    /// Returns the files directory of `layer`'s snapshot, extracting the blob first if no
    /// complete snapshot exists. Two processes asking at once: one extracts, the other waits and
    /// reuses it. The blob digest and the diff_id are verified while extracting; on any error
    /// nothing is left behind.
    pub fn ensure(&self, blobs: &BlobStore, layer: &LayerDesc) -> Result<PathBuf> {
        if self.contains(&layer.diff_id) {
            return Ok(self.path(&layer.diff_id));
        }
        let hex = layer.diff_id.hex();
        let _lock = FileLock::exclusive(&self.dir.join(format!("{hex}.lock")))?;
        if self.contains(&layer.diff_id) {
            return Ok(self.path(&layer.diff_id));
        }
        let final_dir = self.dir.join(&hex);
        // A directory without its marker is the leftover of a crash: start again.
        remove_tree(&final_dir)?;

        let tmp = private_tempdir_builder()
            .tempdir_in(&self.dir)
            .ctx("create temp directory in", &self.dir)?
            .keep();
        let result = self.extract_into(&tmp, blobs, layer);
        match result {
            Ok(()) => {
                if let Err(e) = fs::rename(&tmp, &final_dir) {
                    let _ = remove_tree(&tmp);
                    return Err(Error::io("rename snapshot into", final_dir, e));
                }
                Ok(self.path(&layer.diff_id))
            }
            Err(e) => {
                let _ = remove_tree(&tmp);
                Err(e)
            }
        }
    }

    /// Removes the snapshot `diff_id` (for garbage collection); true when it existed.
    pub fn remove(&self, diff_id: &Digest) -> Result<bool> {
        let hex = diff_id.hex();
        let _lock = FileLock::exclusive(&self.dir.join(format!("{hex}.lock")))?;
        let dir = self.dir.join(&hex);
        let existed = dir.exists();
        remove_tree(&dir)?;
        Ok(existed)
    }

    fn extract_into(&self, tmp: &Path, blobs: &BlobStore, layer: &LayerDesc) -> Result<()> {
        let fs_dir = tmp.join("fs");
        fs::create_dir(&fs_dir).ctx("create directory", &fs_dir)?;
        let reader = blobs.open_verified(&layer.digest)?;
        let report =
            extract_layer(reader, &layer.media_type, &fs_dir, Some(&layer.diff_id), &self.opts)?;
        self.mark_complete(tmp, &report)
    }
}

/// Snapshot directories are made `0700` (tempfile's default follows the umask): a snapshot
/// holds the set-uid files of the images it comes from, which no other user may reach even
/// when the kiln root is readable by them.
fn private_tempdir_builder() -> tempfile::Builder<'static, 'static> {
    use std::os::unix::fs::PermissionsExt;
    let mut b = tempfile::Builder::new();
    b.prefix(".tmp-").permissions(fs::Permissions::from_mode(0o700));
    b
}

/// Whether the snapshot directory `dir` (`<root>/snapshots/<hex>`) was completed in this boot.
pub(crate) fn is_complete(dir: &Path) -> bool {
    match fs::read_to_string(dir.join(BOOT_MARKER)) {
        Ok(boot) => boot.trim() == boot_id(),
        Err(_) => false,
    }
}

/// The marker holding the boot id the snapshot was completed in.
const BOOT_MARKER: &str = "boot-id";

/// This boot's id (`/proc/sys/kernel/random/boot_id`); a constant where it cannot be read, which
/// only costs the power-failure safety of snapshots there.
fn boot_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown-boot".to_string())
    })
}
