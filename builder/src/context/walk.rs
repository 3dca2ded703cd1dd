//! Listing what is beneath a directory source, with the ignore rules applied.
//!
//! One `getdents` per directory and one `fstatat` (relative to the open directory, no path
//! walk) per entry kept; entry types come from the directory listing, so an excluded file
//! costs no stat and an excluded directory that no exception can reach into is not read at
//! all. Directories are listed in parallel (rayon) once a tree is wide enough for it to pay.

use std::ffi::OsString;
use std::fs::{self, DirEntry, FileType};
use std::io::{self, ErrorKind};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::ignore::MatchState;
use super::paths::{internal, join};
use super::{BuildContext, ContextEntry, ContextError, WalkEntry};

/// One directory entry, with its name decoded when it is UTF-8.
pub(super) struct Child {
    /// The name, or the raw name when it is not UTF-8.
    pub(super) name: Result<String, OsString>,
    /// Its type (symlinks not followed).
    pub(super) file_type: FileType,
    /// The entry, for its metadata.
    pub(super) entry: DirEntry,
}

/// The entries of a directory, sorted by the bytes of their names. Entries that vanish
/// while being listed are left out.
pub(super) fn list_dir(dir: &Path) -> io::Result<Vec<Child>> {
    let mut children = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let file_type = match entry.file_type() {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let name = entry.file_name().into_string();
        children.push(Child { name, file_type, entry });
    }
    children.sort_by(|a, b| a.entry.file_name().as_bytes().cmp(b.entry.file_name().as_bytes()));
    Ok(children)
}

/// What one directory contributes to a walk: its kept entries in order, each followed by the
/// entries beneath it when it is a directory.
type Listing = Vec<WalkEntry>;

impl BuildContext {
    /// Every entry beneath a directory source that is not excluded, in the order of a
    /// depth-first walk that visits each directory's entries sorted by the bytes of their
    /// names (a directory comes before its contents; paths compare segment by segment).
    /// Symlinks inside are listed as links, not followed. An excluded directory appears only
    /// when something beneath it is re-included by an exception, and then with only that.
    /// For a source that is not a directory, the list is empty.
    pub fn walk(&self, entry: &ContextEntry) -> Result<Vec<WalkEntry>, ContextError> {
        if !entry.is_dir {
            return Ok(Vec::new());
        }
        let rel = internal(&entry.resolved_rel_path);
        let state = self.rules.state_of(rel);
        self.walk_dir(&entry.abs_path, rel, "", &state)
    }

    fn walk_dir(
        &self,
        dir: &Path,
        ctx_rel: &str,
        src_rel: &str,
        state: &MatchState,
    ) -> Result<Listing, ContextError> {
        let children = list_dir(dir).map_err(|source| io_error(dir, source))?;
        let mut kept = Vec::with_capacity(children.len());
        for child in children {
            let name = match child.name {
                Ok(name) => name,
                Err(raw) => return Err(ContextError::NotUtf8 { path: dir.join(raw) }),
            };
            let child_ctx = join(ctx_rel, &name);
            if child.file_type.is_dir() {
                let child_state = self.rules.enter(state, &child_ctx);
                if child_state.is_excluded()
                    && !self.rules.may_reinclude_under(&child_state, &child_ctx)
                {
                    continue;
                }
                kept.push(Kept {
                    name,
                    child_ctx,
                    entry: child.entry,
                    dir_state: Some(child_state),
                });
            } else if !self.rules.is_excluded_in(state, &child_ctx) {
                kept.push(Kept { name, child_ctx, entry: child.entry, dir_state: None });
            }
        }
        // Stat and descend; wide directories in parallel. Results keep the sorted order.
        let parts: Vec<Result<Listing, ContextError>> = if kept.len() >= PARALLEL_MIN {
            kept.into_par_iter().map(|k| self.visit(dir, src_rel, k)).collect()
        } else {
            kept.into_iter().map(|k| self.visit(dir, src_rel, k)).collect()
        };
        let mut out = Vec::new();
        for part in parts {
            out.extend(part?);
        }
        Ok(out)
    }

    /// One kept child: its own entry, then (for a directory) what is beneath it.
    fn visit(&self, dir: &Path, src_rel: &str, kept: Kept) -> Result<Listing, ContextError> {
        let abs_path = dir.join(&kept.name);
        let rel_to_source = join(src_rel, &kept.name);
        let metadata = match kept.entry.metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(io_error(&abs_path, source)),
        };
        let file_type = metadata.file_type();
        let Some(state) = kept.dir_state else {
            return Ok(vec![WalkEntry { rel_to_source, abs_path, file_type, metadata }]);
        };
        let beneath = match self.walk_dir(&abs_path, &kept.child_ctx, &rel_to_source, &state) {
            Ok(beneath) => beneath,
            // What vanished, or what an excluded directory keeps unreadable, is not there.
            Err(ContextError::Io { source, .. })
                if source.kind() == ErrorKind::NotFound
                    || (state.is_excluded() && source.kind() == ErrorKind::PermissionDenied) =>
            {
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        if state.is_excluded() && beneath.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(beneath.len() + 1);
        out.push(WalkEntry { rel_to_source, abs_path: abs_path.clone(), file_type, metadata });
        out.extend(beneath);
        Ok(out)
    }

    /// Whether anything beneath the directory `ctx_rel` (state `state`) is visible: used for an
    /// excluded directory that an exception may reach into.
    pub(super) fn any_visible_beneath(
        &self,
        ctx_rel: &str,
        state: &MatchState,
    ) -> Result<bool, ContextError> {
        let dir = self.abs(ctx_rel);
        let children = match list_dir(&dir) {
            Ok(c) => c,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::PermissionDenied) => {
                return Ok(false);
            }
            Err(source) => return Err(io_error(&dir, source)),
        };
        for child in children {
            let name = match child.name {
                Ok(name) => name,
                Err(raw) => return Err(ContextError::NotUtf8 { path: dir.join(raw) }),
            };
            let child_ctx = join(ctx_rel, &name);
            if !child.file_type.is_dir() {
                if !self.rules.is_excluded_in(state, &child_ctx) {
                    return Ok(true);
                }
                continue;
            }
            let child_state = self.rules.enter(state, &child_ctx);
            if !child_state.is_excluded() {
                return Ok(true);
            }
            if self.rules.may_reinclude_under(&child_state, &child_ctx)
                && self.any_visible_beneath(&child_ctx, &child_state)?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Directories with at least this many kept entries are processed in parallel.
const PARALLEL_MIN: usize = 8;

/// A child that passed the rules, waiting to be stat'ed (and walked, for a directory).
struct Kept {
    name: String,
    child_ctx: String,
    entry: DirEntry,
    /// The directory's match state; `None` for a non-directory.
    dir_state: Option<MatchState>,
}

fn io_error(path: &Path, source: io::Error) -> ContextError {
    ContextError::Io { path: PathBuf::from(path), source }
}
