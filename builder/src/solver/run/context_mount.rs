//! What `RUN --mount=type=bind` of a build context (the main one or a named one) shows.
//!
//! As in BuildKit, where the context reaches the builder already filtered, the mount shows
//! exactly what `.dockerignore` leaves: the files a `COPY` of the same source would copy, and
//! that the step's cache key covers (`context_digest` in the solver). How:
//!
//! - nothing excluded under the source (the common case, and always without an ignore file):
//!   the directory itself, bind-mounted read-only;
//! - something excluded, read-only, kernel overlayfs usable: [`MountKind::Filtered`], a
//!   read-only overlay of the directory under a layer of whiteouts, one per excluded entry,
//!   made on a tmpfs inside the sandbox. Chosen over a tree of hard links (`link(2)` changes
//!   the ctime of every context file, which invalidates kiln's stat cache and git's index)
//!   and over a copy (it costs time and disk in proportion to the context): it costs one
//!   listing per kept directory and one whiteout per excluded entry, works rootless (kernel
//!   overlay in a user namespace; a 0:0 whiteout needs no privilege), and leaves nothing
//!   behind;
//! - read-write (`rw`), or no kernel overlay: a copy of the kept entries (`copy_file_range`,
//!   which reflinks where the file system can), bound into the sandbox.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::context::{BuildContext, WalkEntry};
use crate::sandbox::{self, Isolation, MountKind};

/// The mount that shows `source` of `ctx`, filtered by its ignore rules; `scratch` is a path
/// (not yet existing) where a copy may be made.
pub(super) fn context_mount(
    ctx: &BuildContext,
    source: &str,
    scratch: &Path,
    readonly: bool,
    isolation: Isolation,
) -> Result<MountKind, String> {
    let source = if source.is_empty() { "." } else { source };
    let mut entries = ctx.resolve_sources(source).map_err(|e| e.to_string())?;
    if entries.len() != 1 {
        return Err(format!(
            "--mount source {source:?} names {} paths; name one file or directory",
            entries.len()
        ));
    }
    let entry = entries.remove(0);
    if !entry.is_dir {
        // An excluded file cannot be named (resolving refuses it): the file is shown as it is.
        if readonly {
            return Ok(MountKind::Bind { source: entry.abs_path, readonly });
        }
        copy_entry(&entry.abs_path, &entry.metadata, scratch)?;
        return Ok(MountKind::Bind { source: scratch.to_path_buf(), readonly });
    }
    if readonly && ctx.rules().is_empty() {
        return Ok(MountKind::Bind { source: entry.abs_path, readonly });
    }
    let walk = ctx.walk(&entry).map_err(|e| e.to_string())?;
    if readonly {
        let hidden = hidden_entries(&entry.abs_path, &walk)?;
        if hidden.is_empty() {
            return Ok(MountKind::Bind { source: entry.abs_path, readonly });
        }
        if sandbox::filtered_views_supported(isolation) {
            return Ok(MountKind::Filtered { source: entry.abs_path, hidden });
        }
    }
    copy_kept(&entry.metadata, &walk, scratch)?;
    Ok(MountKind::Bind { source: scratch.to_path_buf(), readonly })
}

/// The entries on disk under `root` that `walk` (its kept entries) leaves out: every child of
/// a kept directory that is not kept itself. An excluded directory is one entry (nothing
/// beneath it is listed), unless an exception re-includes something in it: then it is kept
/// and its other children are hidden one by one.
fn hidden_entries(root: &Path, walk: &[WalkEntry]) -> Result<Vec<String>, String> {
    let kept: HashSet<&str> = walk.iter().map(|w| w.rel_to_source.as_str()).collect();
    let dirs = std::iter::once("")
        .chain(walk.iter().filter(|w| w.file_type.is_dir()).map(|w| w.rel_to_source.as_str()));
    let mut hidden = Vec::new();
    for dir in dirs {
        let abs = if dir.is_empty() { root.to_path_buf() } else { root.join(dir) };
        let listing = match fs::read_dir(&abs) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("listing {}: {e}", abs.display())),
        };
        for child in listing {
            let child = child.map_err(|e| format!("listing {}: {e}", abs.display()))?;
            let name = child.file_name();
            let Some(name) = name.to_str() else {
                return Err(format!(
                    "{}: the name is not valid UTF-8, which kiln does not support yet",
                    child.path().display()
                ));
            };
            let rel = if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") };
            if !kept.contains(rel.as_str()) {
                hidden.push(rel);
            }
        }
    }
    Ok(hidden)
}

/// Makes `dest` a copy of a directory (metadata `meta`) with only the entries of its `walk`:
/// directories, files and symlinks, with their permission bits, owners (where this process
/// may set them) and times. Special files are left out.
fn copy_kept(meta: &fs::Metadata, walk: &[WalkEntry], dest: &Path) -> Result<(), String> {
    fs::create_dir_all(dest).map_err(|e| format!("creating {}: {e}", dest.display()))?;
    let mut copied = Vec::with_capacity(walk.len());
    for w in walk {
        let target = dest.join(&w.rel_to_source);
        if w.file_type.is_dir() {
            fs::create_dir(&target).map_err(|e| format!("creating {}: {e}", target.display()))?;
        } else if w.file_type.is_symlink() || w.file_type.is_file() {
            copy_entry(&w.abs_path, &w.metadata, &target)?;
            continue;
        } else {
            continue;
        }
        copied.push((target, &w.metadata));
    }
    // Directories last, deepest first: their modes may forbid writing, their times change
    // with every entry made in them.
    for (target, meta) in copied.into_iter().rev() {
        set_metadata(&target, meta)?;
    }
    set_metadata(dest, meta)
}

/// Copies one file or symlink `from` (metadata `meta`) to `to`, metadata included.
fn copy_entry(from: &Path, meta: &fs::Metadata, to: &Path) -> Result<(), String> {
    if meta.file_type().is_symlink() {
        let link = fs::read_link(from).map_err(|e| format!("{}: {e}", from.display()))?;
        std::os::unix::fs::symlink(link, to)
            .map_err(|e| format!("creating {}: {e}", to.display()))?;
    } else {
        // copy_file_range(2): a reflink on file systems that share extents.
        fs::copy(from, to).map_err(|e| format!("copying {}: {e}", from.display()))?;
    }
    set_metadata(to, meta)
}

/// Owner (best effort: it may not be mapped here), permission bits (not for symlinks) and
/// times of `meta`, on `path` (not following a symlink).
fn set_metadata(path: &Path, meta: &fs::Metadata) -> Result<(), String> {
    let _ = std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid()));
    if !meta.file_type().is_symlink() {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| format!("chmod {}: {e}", path.display()))?;
    }
    let times = [
        libc::timespec { tv_sec: meta.atime(), tv_nsec: meta.atime_nsec() },
        libc::timespec { tv_sec: meta.mtime(), tv_nsec: meta.mtime_nsec() },
    ];
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("{}: a NUL byte in the path", path.display()))?;
    // SAFETY: a valid NUL-terminated path and an array of two timespecs.
    let r = unsafe {
        libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW)
    };
    if r != 0 {
        let e = io::Error::last_os_error();
        return Err(format!("setting the times of {}: {e}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::IgnoreRules;
    use std::os::unix::fs::PermissionsExt;

    fn context(rules: &str) -> (tempfile::TempDir, BuildContext) {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in [
            ("a.txt", "a"),
            ("secret", "s"),
            ("sub/x.log", "x"),
            ("sub/keep.log", "k"),
            ("sub/y.txt", "y"),
            ("other/z.txt", "z"),
        ] {
            let p = dir.path().join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        }
        std::os::unix::fs::symlink("../a.txt", dir.path().join("sub/link")).unwrap();
        fs::set_permissions(dir.path().join("sub"), fs::Permissions::from_mode(0o750)).unwrap();
        let rules = IgnoreRules::parse(rules).unwrap();
        let ctx = BuildContext::with_rules(dir.path(), rules).unwrap();
        (dir, ctx)
    }

    fn tree(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![(dir.to_path_buf(), String::new())];
        while let Some((abs, rel)) = stack.pop() {
            for e in fs::read_dir(&abs).unwrap() {
                let e = e.unwrap();
                let name = e.file_name().into_string().unwrap();
                let r = if rel.is_empty() { name } else { format!("{rel}/{name}") };
                let meta = fs::symlink_metadata(e.path()).unwrap();
                if meta.is_dir() {
                    stack.push((e.path(), r.clone()));
                    out.push(format!("{r}/ {:o}", meta.mode() & 0o7777));
                } else if meta.file_type().is_symlink() {
                    out.push(format!("{r} -> {}", fs::read_link(e.path()).unwrap().display()));
                } else {
                    out.push(format!("{r} = {}", fs::read_to_string(e.path()).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn excluded_entries_are_hidden_and_left_out_of_copies() {
        let (dir, ctx) = context("secret\nsub/*.log\n!sub/keep.log\n");
        let entry = ctx.resolve_sources(".").unwrap().remove(0);
        let walk = ctx.walk(&entry).unwrap();
        let mut hidden = hidden_entries(&entry.abs_path, &walk).unwrap();
        hidden.sort();
        assert_eq!(hidden, ["secret", "sub/x.log"]);

        let scratch = tempfile::tempdir().unwrap();
        let copy = scratch.path().join("mount-0");
        let kind = context_mount(&ctx, ".", &copy, false, Isolation::Auto).unwrap();
        assert_eq!(kind, MountKind::Bind { source: copy.clone(), readonly: false });
        let expected = [
            "a.txt = a",
            "other/ 755",
            "other/z.txt = z",
            "sub/ 750",
            "sub/keep.log = k",
            "sub/link -> ../a.txt",
            "sub/y.txt = y",
        ];
        assert_eq!(tree(&copy), expected);
        let times = |p: &Path| fs::symlink_metadata(p).unwrap().mtime_nsec();
        assert_eq!(times(&copy.join("sub")), times(&dir.path().join("sub")));
        assert_eq!(times(&copy.join("sub/y.txt")), times(&dir.path().join("sub/y.txt")));
    }

    #[test]
    fn sources_without_exclusions_are_bound_as_they_are() {
        let (dir, ctx) = context("secret\nsub/*.log\n");
        let scratch = tempfile::tempdir().unwrap();
        let at = scratch.path().join("m");
        let root = fs::canonicalize(dir.path()).unwrap();
        // Nothing excluded under `other`: its directory, bound directly.
        let kind = context_mount(&ctx, "other", &at, true, Isolation::Auto).unwrap();
        assert_eq!(kind, MountKind::Bind { source: root.join("other"), readonly: true });
        // A file source.
        let kind = context_mount(&ctx, "sub/y.txt", &at, true, Isolation::Auto).unwrap();
        assert_eq!(kind, MountKind::Bind { source: root.join("sub/y.txt"), readonly: true });
        // An excluded file cannot be named.
        let err = context_mount(&ctx, "secret", &at, true, Isolation::Auto).unwrap_err();
        assert!(err.contains("secret"), "{err}");
        // Without rules, the whole context is bound.
        let (dir, _) = context("");
        let plain = BuildContext::with_rules(dir.path(), IgnoreRules::empty()).unwrap();
        let kind = context_mount(&plain, ".", &at, true, Isolation::Auto).unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        assert_eq!(kind, MountKind::Bind { source: root, readonly: true });
        assert!(!at.exists(), "nothing was copied");
    }
}
