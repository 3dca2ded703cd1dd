//! fuse-overlayfs writes some of its markers in its own way; [`normalize`] turns its upper
//! directory into the kernel overlay's format that `entries_from_dir` reads.
//!
//! - `.wh.<name>` files (its whiteouts where `mknod` is refused) → overlay whiteouts;
//! - `.wh..wh..opq` files and `user.fuseoverlayfs.opaque` → `user.overlay.opaque=y`;
//! - its other `user.fuseoverlayfs.*` xattrs are removed;
//! - it marks every directory it creates opaque: the mark is dropped where no lower layer has
//!   that directory (the kernel overlay does not set it there either).

use std::fs;
use std::path::Path;

use super::copyfs::{is_opaque, make_whiteout, walk};
use super::error::{IoContext, Result};
use crate::fsview::LayeredView;

const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OPAQUE_DEVICE: &str = ".wh..opq";
const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = "user.overlay.opaque";

/// Normalizes the fuse-overlayfs upper directory `upper` (over the lowers of `view`) in place.
pub(crate) fn normalize(upper: &Path, view: &LayeredView) -> Result<()> {
    let mut paths: Vec<String> = Vec::new();
    walk(upper, &mut |rel, _| {
        paths.push(rel.to_string());
        true
    })?;
    fix_xattrs(upper)?;
    for rel in paths {
        let path = upper.join(&rel);
        let (parent, name) = match rel.rsplit_once('/') {
            Some((p, n)) => (upper.join(p), n.to_string()),
            None => (upper.to_path_buf(), rel.clone()),
        };
        fix_xattrs(&path)?;
        if name == OPAQUE_MARKER || name == OPAQUE_DEVICE {
            fs::remove_file(&path).ctx("remove", &path)?;
            xattr::set(&parent, OPAQUE, b"y").ctx("mark opaque", &parent)?;
        } else if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX)
            && fs::symlink_metadata(&path).is_ok_and(|m| m.is_file())
        {
            fs::remove_file(&path).ctx("remove", &path)?;
            make_whiteout(&parent.join(hidden))?;
        }
    }
    let mut opaque = Vec::new();
    walk(upper, &mut |rel, meta| {
        if meta.is_dir() && is_opaque(&upper.join(rel)) {
            opaque.push(rel.to_string());
        }
        meta.is_dir()
    })?;
    for rel in opaque {
        let below = view.lookup(&rel).ctx("reading", rel.as_str())?;
        if !below.is_some_and(|e| e.metadata.is_dir()) {
            let path = upper.join(&rel);
            for name in [OPAQUE, "trusted.overlay.opaque"] {
                if let Ok(Some(_)) = xattr::get(&path, name) {
                    xattr::remove(&path, name).ctx("remove xattr of", &path)?;
                }
            }
        }
    }
    Ok(())
}

/// `user.fuseoverlayfs.opaque` → `user.overlay.opaque`; other fuse-overlayfs xattrs dropped.
fn fix_xattrs(path: &Path) -> Result<()> {
    let Ok(names) = xattr::list(path) else { return Ok(()) };
    for name in names {
        let n = name.to_string_lossy().into_owned();
        if !n.starts_with("user.fuseoverlayfs.") {
            continue;
        }
        if n == "user.fuseoverlayfs.opaque" {
            xattr::set(path, OPAQUE, b"y").ctx("mark opaque", path)?;
        }
        xattr::remove(path, &name).ctx("remove xattr of", path)?;
    }
    Ok(())
}
