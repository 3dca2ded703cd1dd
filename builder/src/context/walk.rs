//! Listing what is beneath a directory source, with the ignore rules applied.
//!
//! One `getdents` per directory and one `fstatat` (relative to the open directory, no path
//! walk) per entry kept; entry types come from the directory listing, so an excluded file
//! costs no stat and an excluded directory that no exception can reach into is not read at
//! all. Directories are listed in parallel (rayon) once a tree is wide enough for it to pay.

use std::ffi::OsString;
use std::fs::{self, DirEntry, FileType, Metadata};
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

impl BuildContext {
    /// Every entry beneath a directory source that is not excluded, in the order of a
    /// depth-first walk that visits each directory's entries sorted by the bytes of their
    /// names (a directory comes before its contents; paths compare segment by segment).
    /// Symlinks inside are listed as links, not followed. An excluded directory appears only
    /// when something beneath it is re-included by an exception, and then with only that.
    /// For a source that is not a directory, the list is empty.
    pub fn walk(&self, entry: &ContextEntry) -> Result<Vec<WalkEntry>, ContextError> {
        self.walk_with(entry, &|found: Found<'_>| {
            Ok(Some(WalkEntry {
                file_type: found.metadata.file_type(),
                abs_path: found.abs_path.to_path_buf(),
                rel_to_source: found.rel_to_source,
                metadata: found.metadata,
            }))
        })
    }

    /// The walk of [`BuildContext::walk`], keeping for each entry only what `make` makes of it
    /// (`None`: nothing): a caller that needs little per entry (a huge context) holds one
    /// listing of its own records, nothing else. `make` runs in parallel for wide trees; the
    /// records come back in walk order.
    pub fn walk_with<T, F>(&self, entry: &ContextEntry, make: &F) -> Result<Vec<T>, ContextError>
    where
        T: Send,
        F: Fn(Found<'_>) -> Result<Option<T>, ContextError> + Sync,
    {
        let mut out = Vec::new();
        self.walk_into(entry, make, &mut out)?;
        Ok(out)
    }

    /// [`BuildContext::walk_with`], appending the records to `out` (which then need not be
    /// copied into another list).
    pub fn walk_into<T, F>(
        &self,
        entry: &ContextEntry,
        make: &F,
        out: &mut Vec<T>,
    ) -> Result<(), ContextError>
    where
        T: Send,
        F: Fn(Found<'_>) -> Result<Option<T>, ContextError> + Sync,
    {
        if !entry.is_dir {
            return Ok(());
        }
        let rel = internal(&entry.resolved_rel_path);
        let state = self.rules.state_of(rel);
        self.walk_dir(&entry.abs_path, rel, "", &state, make, out)
    }

    fn walk_dir<T, F>(
        &self,
        dir: &Path,
        ctx_rel: &str,
        src_rel: &str,
        state: &MatchState,
        make: &F,
        out: &mut Vec<T>,
    ) -> Result<(), ContextError>
    where
        T: Send,
        F: Fn(Found<'_>) -> Result<Option<T>, ContextError> + Sync,
    {
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
        // Stat (and make the records of) wide directories' entries in parallel, then descend
        // in order, one directory at a time: only one directory's records are ever held
        // apart from the listing, never a subtree's.
        let stated: Vec<Result<Stated<T>, ContextError>> = if kept.len() >= PARALLEL_MIN {
            kept.into_par_iter().map(|k| self.stat_one(dir, src_rel, k, make)).collect()
        } else {
            kept.into_iter().map(|k| self.stat_one(dir, src_rel, k, make)).collect()
        };
        for one in stated {
            let Stated { record, descend } = one?;
            let at = out.len();
            let had_own = record.is_some();
            out.extend(record);
            let Some((path, child_ctx, rel_to_source, state)) = descend else { continue };
            match self.walk_dir(&path, &child_ctx, &rel_to_source, &state, make, out) {
                Ok(()) => {}
                // What vanished, or what an excluded directory keeps unreadable, is not there.
                Err(ContextError::Io { source, .. })
                    if source.kind() == ErrorKind::NotFound
                        || (state.is_excluded()
                            && source.kind() == ErrorKind::PermissionDenied) =>
                {
                    out.truncate(at + usize::from(had_own));
                }
                Err(e) => return Err(e),
            }
            // An excluded directory is listed only for what an exception keeps beneath it.
            if state.is_excluded() && out.len() == at + usize::from(had_own) {
                out.truncate(at);
            }
        }
        Ok(())
    }

    /// One kept child: its record, and for a directory what to walk next.
    fn stat_one<T, F>(
        &self,
        dir: &Path,
        src_rel: &str,
        kept: Kept,
        make: &F,
    ) -> Result<Stated<T>, ContextError>
    where
        F: Fn(Found<'_>) -> Result<Option<T>, ContextError> + Sync,
    {
        let abs_path = dir.join(&kept.name);
        let rel_to_source = join(src_rel, &kept.name);
        let metadata = match kept.entry.metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Ok(Stated { record: None, descend: None });
            }
            Err(source) => return Err(io_error(&abs_path, source)),
        };
        let Some(state) = kept.dir_state else {
            let record = make(Found { rel_to_source, abs_path: &abs_path, metadata })?;
            return Ok(Stated { record, descend: None });
        };
        let found = Found { rel_to_source: rel_to_source.clone(), abs_path: &abs_path, metadata };
        let record = make(found)?;
        Ok(Stated { record, descend: Some((abs_path, kept.child_ctx, rel_to_source, state)) })
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

/// One entry a walk found, for [`BuildContext::walk_with`].
pub struct Found<'a> {
    /// Path under the source directory, '/'-separated (`"sub/file"`).
    pub rel_to_source: String,
    /// Absolute path on the host.
    pub abs_path: &'a Path,
    /// Metadata of the entry itself (`lstat`).
    pub metadata: Metadata,
}

/// A child stat'ed: its record, and for a directory (path, context path, path below the
/// source, match state) to walk it.
struct Stated<T> {
    record: Option<T>,
    descend: Option<(PathBuf, String, String, MatchState)>,
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
