//! [`diff`]: the changes a RUN made to a copied root, moved into an overlay-format upper
//! directory.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io;
use std::path::Path;

use super::super::error::{IoContext, Result};
use super::super::stubs::set_times;
use super::materialize::apply_owner_mode;
use super::{Manifest, Snap, copy_xattrs, make_whiteout, walk};

/// Paths a diff leaves out: files the sandbox provided, and directories whose contents are
/// the sandbox's (chroot isolation's `/dev`, `/proc`, `/sys`).
#[derive(Debug, Default, Clone)]
pub(crate) struct Exclusions {
    /// Exact relative paths.
    pub paths: HashSet<String>,
    /// Relative paths of directories whose contents are left out.
    pub contents_of: HashSet<String>,
}

impl Exclusions {
    fn excludes(&self, rel: &str) -> bool {
        if self.paths.contains(rel) {
            return true;
        }
        let mut cur = rel;
        while let Some((parent, _)) = cur.rsplit_once('/') {
            if self.contents_of.contains(parent) {
                return true;
            }
            cur = parent;
        }
        false
    }
}

/// Compares `rootfs` with `before` and moves what changed into the empty directory `upper`:
/// new and modified files (renamed, so hard links stay links), directories (created with their
/// current metadata; replaced ones opaque), and whiteouts for deleted paths.
pub(crate) fn diff(
    before: &Manifest,
    rootfs: &Path,
    upper: &Path,
    excluded: &Exclusions,
) -> Result<()> {
    let mut seen: HashSet<String> = HashSet::new();
    // Directories whose contents are all new (created or replaced by the RUN).
    let mut fresh: HashSet<String> = HashSet::new();
    let mut changed: Vec<(String, Change)> = Vec::new();
    walk(rootfs, &mut |rel, meta| {
        if excluded.excludes(rel) {
            return false;
        }
        seen.insert(rel.to_string());
        let parent_fresh = rel.rsplit_once('/').is_some_and(|(p, _)| fresh.contains(p));
        let now = Snap::of(&rootfs.join(rel), meta);
        let old = before.entries.get(rel).copied();
        let same_object = !parent_fresh && old.is_some_and(|o| o.same_object(&now));
        if meta.is_dir() {
            if !same_object {
                fresh.insert(rel.to_string());
                changed.push((
                    rel.to_string(),
                    Change::Dir { opaque: old.is_some() && !parent_fresh },
                ));
            } else if old.is_some_and(|o| o.ctime != now.ctime) {
                changed.push((rel.to_string(), Change::Dir { opaque: false }));
            }
            return true;
        }
        if !same_object || old.is_some_and(|o| o.ctime != now.ctime) {
            changed.push((rel.to_string(), Change::Move));
        }
        false
    })?;
    let mut made_dirs: BTreeSet<String> = BTreeSet::new();
    for (rel, change) in &changed {
        ensure_parents(rootfs, upper, rel, &mut made_dirs)?;
        let src = rootfs.join(rel);
        let dst = upper.join(rel);
        match change {
            Change::Dir { opaque } => {
                if made_dirs.insert(rel.clone()) {
                    fs::create_dir(&dst).ctx("create directory", &dst)?;
                }
                if *opaque {
                    xattr::set(&dst, "user.overlay.opaque", b"y").ctx("mark opaque", &dst)?;
                }
            }
            Change::Move => move_file(&src, &dst)?,
        }
    }
    // Deleted paths: a whiteout where the parent still exists as the same directory.
    let mut removed: Vec<&String> = before
        .entries
        .keys()
        .filter(|rel| !seen.contains(*rel) && !excluded.excludes(rel))
        .filter(|rel| match rel.rsplit_once('/') {
            Some((parent, _)) => seen.contains(parent) && !fresh.contains(parent),
            None => true,
        })
        .collect();
    removed.sort();
    for rel in removed {
        ensure_parents(rootfs, upper, rel, &mut made_dirs)?;
        make_whiteout(&upper.join(rel))?;
    }
    // Directory metadata last, deepest first.
    for rel in made_dirs.iter().rev() {
        let src = rootfs.join(rel);
        let dst = upper.join(rel);
        let meta = fs::symlink_metadata(&src).ctx("stat", &src)?;
        apply_owner_mode(&dst, &meta);
        copy_xattrs(&src, &dst);
        set_times(&dst, &meta)?;
    }
    Ok(())
}

enum Change {
    Dir { opaque: bool },
    Move,
}

/// Creates the parent directories of `rel` in `upper` (metadata applied later).
fn ensure_parents(
    rootfs: &Path,
    upper: &Path,
    rel: &str,
    made: &mut BTreeSet<String>,
) -> Result<()> {
    let mut prefix = String::new();
    let parts: Vec<&str> = rel.split('/').collect();
    for name in &parts[..parts.len() - 1] {
        prefix = if prefix.is_empty() { name.to_string() } else { format!("{prefix}/{name}") };
        if made.contains(&prefix) {
            continue;
        }
        let dst = upper.join(&prefix);
        if !rootfs.join(&prefix).is_dir() {
            continue;
        }
        match fs::create_dir(&dst) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(super::super::error::SandboxError::io("create directory", dst, e));
            }
        }
        made.insert(prefix.clone());
    }
    Ok(())
}

/// Moves a file (any non-directory) from the root into the upper directory.
fn move_file(src: &Path, dst: &Path) -> Result<()> {
    fs::rename(src, dst).ctx("move into the diff", src)
}
