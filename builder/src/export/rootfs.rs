//! `type=local` and `type=tar`: the image's final root filesystem, as files in a directory or
//! as one tar, with whiteouts applied (see [`kiln_cache::store::write_rootfs_tar`]).
//!
//! As BuildKit's local and tar exporters do, with `SOURCE_DATE_EPOCH` every file gets that
//! mtime. The tar keeps owners exactly; the directory keeps them when kiln runs as root, and
//! gives every file to the user otherwise (rootless kiln runs as root of its own user
//! namespace, where image owners would become subordinate ids the user cannot remove).

use std::path::Path;

use kiln_cache::blob::BlobStore;
use kiln_cache::index::LayerRef;
use kiln_cache::store::{MemberOptions, MtimeRule, write_rootfs_dir, write_rootfs_tar};

use super::compress::desc;
use super::spec::Dest;
use super::write_dest;
use crate::BuildError;

fn mtime_rule(epoch: Option<i64>) -> MtimeRule {
    epoch.map_or(MtimeRule::Keep, MtimeRule::Set)
}

/// Writes the root filesystem of `layers` as one tar to `dest`.
pub(super) fn write_tar(
    blobs: &BlobStore,
    layers: &[LayerRef],
    dest: &Dest,
    epoch: Option<i64>,
) -> Result<String, BuildError> {
    let descs: Vec<_> = layers.iter().map(desc).collect();
    let opts = MemberOptions { mtime: mtime_rule(epoch), owner: None };
    let mut members = 0;
    write_dest(dest, |out| {
        members = write_rootfs_tar(blobs, &descs, out, opts)?.members;
        Ok(())
    })?;
    Ok(match dest {
        Dest::Stdout => format!("root filesystem tar to stdout ({members} entries)"),
        Dest::Path(p) => format!("root filesystem tar {} ({members} entries)", p.display()),
    })
}

/// Writes the root filesystem of `layers` as files in `dest` (new or empty).
pub(super) fn write_local(
    blobs: &BlobStore,
    layers: &[LayerRef],
    dest: &Path,
    epoch: Option<i64>,
) -> Result<String, BuildError> {
    let descs: Vec<_> = layers.iter().map(desc).collect();
    let opts = MemberOptions { mtime: mtime_rule(epoch), owner: owner_override() };
    let report = write_rootfs_dir(blobs, &descs, dest, opts)?;
    let mut notes = Vec::new();
    if opts.owner.is_some() {
        notes.push("files owned by you: kiln is not running as root".to_string());
    }
    if report.skipped_devices > 0 {
        notes.push(format!(
            "{} device nodes left out (only root creates them)",
            report.skipped_devices
        ));
    }
    if report.ignored_xattrs > 0 {
        notes.push(format!("{} extended attributes not set", report.ignored_xattrs));
    }
    if report.ownership_failures > 0 {
        notes.push(format!("{} owners not set", report.ownership_failures));
    }
    let notes = if notes.is_empty() { String::new() } else { format!(" ({})", notes.join("; ")) };
    Ok(format!("root filesystem in {}{notes}", dest.display()))
}

/// `Some((0, 0))` when files written as "root" would not belong to the user who ran kiln: kiln
/// runs as root of a user namespace whose root is an unprivileged user outside (rootless).
/// Root's ids are the caller's there, so files given to 0:0 belong to the caller.
fn owner_override() -> Option<(u32, u32)> {
    if !rustix::process::geteuid().is_root() {
        // Not root at all: nothing is chowned, files are the caller's anyway.
        return None;
    }
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let root_outside = map.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        (f.next() == Some("0")).then(|| f.next().map(str::to_string)).flatten()
    });
    match root_outside.as_deref() {
        None | Some("0") => None,
        Some(_) => Some((0, 0)),
    }
}
