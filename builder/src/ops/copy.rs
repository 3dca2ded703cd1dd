//! `COPY`: turns a [`CopyOp`] into the entries of one layer.
//!
//! Sources come from the build context or from another filesystem (a stage or an image, seen
//! through a [`LayeredView`]); the destination is checked against the stage's current view so
//! that existing directories (and symlinks to them) are copied into, as `docker build` does.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use kiln_cache::layer::{EntryKind, FileSource, LayerEntry};
use kiln_frontend::graph::CopyOp;

use crate::context::BuildContext;
use crate::fsview::{LayeredView, ViewEntry};
use crate::users::Owner;

/// Where `COPY` reads its sources.
pub enum CopyFrom<'a> {
    /// The build context.
    Context(&'a BuildContext),
    /// Another stage's or an image's filesystem.
    View(&'a LayeredView),
}

/// Why a `COPY` cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A source that matched nothing in a stage or image.
    #[error("{source_path}: no such file or directory in the source {place}")]
    NotFound {
        /// The source as written.
        source_path: String,
        /// `stage` or `image`.
        place: &'static str,
    },
    /// A problem in the build context (not found, outside, excluded...).
    #[error(transparent)]
    Context(#[from] crate::context::ContextError),
    /// The destination (or one of its parents) exists with the wrong type.
    #[error("cannot copy to {dest}: {existing} exists and is not a directory")]
    NotADirectory {
        /// The destination as resolved.
        dest: String,
        /// The existing path in the way.
        existing: String,
    },
    /// A directory source onto an existing file.
    #[error("cannot copy directory {source_path} onto file {dest}")]
    DirOntoFile {
        /// The source.
        source_path: String,
        /// The destination file.
        dest: String,
    },
    /// Reading the destination or source filesystem failed.
    #[error("reading {what}: {source}")]
    Io {
        /// What was being read.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A wildcard in a source is malformed.
    #[error("bad pattern {pattern:?} in COPY source")]
    BadPattern {
        /// The pattern.
        pattern: String,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CopyError {
    let what = what.into();
    move |source| CopyError::Io { what, source }
}

/// Everything a `COPY` needs besides the op itself.
pub struct CopyInputs<'a> {
    /// Where sources come from.
    pub from: CopyFrom<'a>,
    /// The stage's filesystem before this step.
    pub dest_view: &'a LayeredView,
    /// `--chown`, resolved.
    pub owner: Option<Owner>,
    /// mtime for directories the copy creates and for heredoc files.
    pub now: i64,
}

/// One thing to copy: a file, directory or symlink, at a path relative to the copy's target.
struct Item {
    /// Path under the target (empty for the target itself).
    rel: String,
    kind: ItemKind,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
}

enum ItemKind {
    Dir,
    File { source: FileSource, size: u64 },
    Symlink(String),
}

/// A top-level source after wildcard expansion: its base name and its items.
struct Source {
    /// Name as written, for messages.
    written: String,
    base_name: String,
    is_dir: bool,
    items: Vec<Item>,
}

/// Computes the layer entries of `op`.
pub fn plan_copy(op: &CopyOp, inputs: &CopyInputs<'_>) -> Result<Vec<LayerEntry>, CopyError> {
    let mut sources = Vec::new();
    for pattern in &op.sources {
        match inputs.from {
            CopyFrom::Context(ctx) => sources.extend(context_sources(ctx, pattern)?),
            CopyFrom::View(view) => sources.extend(view_sources(view, pattern)?),
        }
    }
    for (name, content) in &op.inline {
        let bytes = content.as_bytes().to_vec();
        let size = bytes.len() as u64;
        sources.push(Source {
            written: name.clone(),
            base_name: name.clone(),
            is_dir: false,
            items: vec![Item {
                rel: String::new(),
                kind: ItemKind::File { source: FileSource::Bytes(bytes), size },
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: inputs.now,
            }],
        });
    }
    let from_context = matches!(inputs.from, CopyFrom::Context(_));

    let view = inputs.dest_view;
    let dest = view.resolve(&op.dest, true).map_err(io_err(format!("destination {}", op.dest)))?;
    let existing = view.lookup(&dest).map_err(io_err(format!("destination {dest}")))?;
    let dest_exists_as_dir = existing.as_ref().is_some_and(|e| e.metadata.is_dir());
    let into_dir = op.dest_is_dir || sources.len() > 1 || dest_exists_as_dir;

    let mut entries: BTreeMap<String, LayerEntry> = BTreeMap::new();
    let created_owner = inputs.owner.unwrap_or_default();
    let add_parents = |entries: &mut BTreeMap<String, LayerEntry>, dir: &str| {
        add_directory_chain(entries, view, dir, created_owner, inputs.now)
    };

    for source in sources {
        let target = if source.is_dir {
            // A directory's contents go into the destination, which becomes a directory.
            if let Some(e) = view.lookup(&dest).map_err(io_err(dest.clone()))?
                && !e.metadata.is_dir()
            {
                return Err(CopyError::DirOntoFile { source_path: source.written, dest });
            }
            dest.clone()
        } else if into_dir {
            join(&dest, &source.base_name)
        } else {
            dest.clone()
        };
        let target_parent = if source.is_dir { target.clone() } else { parent(&target) };
        add_parents(&mut entries, &target_parent)?;
        for item in source.items {
            let path = if item.rel.is_empty() { target.clone() } else { join(&target, &item.rel) };
            if item.rel.is_empty() && source.is_dir {
                // The target directory itself: created like a parent, or kept as it is.
                continue;
            }
            let (uid, gid) = match inputs.owner {
                Some(o) => (o.uid, o.gid),
                None if from_context => (0, 0),
                None => (item.uid, item.gid),
            };
            let (kind, mode) = match item.kind {
                ItemKind::Dir => (EntryKind::Dir, chmod(op, item.mode, true)),
                ItemKind::File { source, size } => {
                    (EntryKind::File { source, size }, chmod(op, item.mode, false))
                }
                ItemKind::Symlink(target) => (EntryKind::Symlink { target }, 0o777),
            };
            let key = path.trim_start_matches('/').to_string();
            if key.is_empty() {
                continue;
            }
            entries.insert(
                key.clone(),
                LayerEntry {
                    path: key,
                    kind,
                    mode,
                    uid,
                    gid,
                    mtime: item.mtime,
                    xattrs: BTreeMap::new(),
                },
            );
        }
    }
    Ok(entries.into_values().collect())
}

/// The mode a copied path gets: `--chmod` (octal or symbolic) applied to its own mode.
fn chmod(op: &CopyOp, mode: u32, is_dir: bool) -> u32 {
    match (&op.chmod_mode, op.chmod) {
        (Some(m), _) => m.apply(mode, is_dir),
        (None, Some(bits)) => bits,
        (None, None) => mode,
    }
}

/// Adds `dir` and its ancestors: existing ones with their current metadata, missing ones created.
pub(crate) fn add_directory_chain(
    entries: &mut BTreeMap<String, LayerEntry>,
    view: &LayeredView,
    dir: &str,
    created_owner: Owner,
    now: i64,
) -> Result<(), CopyError> {
    let mut path = String::new();
    for component in dir.split('/').filter(|c| !c.is_empty()) {
        path.push('/');
        path.push_str(component);
        let key = path[1..].to_string();
        if entries.contains_key(&key) {
            continue;
        }
        let existing = view.lookup(&path).map_err(io_err(path.clone()))?;
        let entry = match existing {
            Some(e) if e.metadata.is_dir() => LayerEntry {
                path: key.clone(),
                kind: EntryKind::Dir,
                mode: e.metadata.permissions().mode() & 0o7777,
                uid: e.metadata.uid(),
                gid: e.metadata.gid(),
                mtime: e.metadata.mtime(),
                xattrs: BTreeMap::new(),
            },
            Some(_) => {
                return Err(CopyError::NotADirectory { dest: dir.to_string(), existing: path });
            }
            None => LayerEntry {
                path: key.clone(),
                kind: EntryKind::Dir,
                mode: 0o755,
                uid: created_owner.uid,
                gid: created_owner.gid,
                mtime: now,
                xattrs: BTreeMap::new(),
            },
        };
        entries.insert(key, entry);
    }
    Ok(())
}

fn context_sources(ctx: &BuildContext, pattern: &str) -> Result<Vec<Source>, CopyError> {
    let mut out = Vec::new();
    for entry in ctx.resolve_sources(pattern)? {
        let base_name = base_name(&entry.rel_path);
        let meta = &entry.metadata;
        let mut items = vec![Item {
            rel: String::new(),
            kind: if entry.is_dir {
                ItemKind::Dir
            } else {
                ItemKind::File {
                    source: FileSource::Path(entry.abs_path.clone()),
                    size: meta.len(),
                }
            },
            mode: meta.permissions().mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: meta.mtime(),
        }];
        if entry.is_dir {
            for w in ctx.walk(&entry)? {
                let m = &w.metadata;
                let kind = if m.is_dir() {
                    ItemKind::Dir
                } else if m.file_type().is_symlink() {
                    let target = std::fs::read_link(&w.abs_path)
                        .map_err(io_err(w.abs_path.display().to_string()))?;
                    ItemKind::Symlink(target.to_string_lossy().into_owned())
                } else if m.is_file() {
                    ItemKind::File { source: FileSource::Path(w.abs_path.clone()), size: m.len() }
                } else {
                    // Sockets, FIFOs and devices in a context are not copied (as BuildKit).
                    continue;
                };
                items.push(Item {
                    rel: w.rel_to_source.clone(),
                    kind,
                    mode: m.permissions().mode() & 0o7777,
                    uid: m.uid(),
                    gid: m.gid(),
                    mtime: m.mtime(),
                });
            }
        }
        out.push(Source { written: pattern.to_string(), base_name, is_dir: entry.is_dir, items });
    }
    Ok(out)
}

fn view_sources(view: &LayeredView, pattern: &str) -> Result<Vec<Source>, CopyError> {
    let mut out = Vec::new();
    for path in expand_in_view(view, pattern)? {
        let resolved = view.resolve(&path, true).map_err(io_err(path.clone()))?;
        let Some(top) = view.lookup(&resolved).map_err(io_err(path.clone()))? else {
            return Err(CopyError::NotFound { source_path: pattern.to_string(), place: "stage" });
        };
        let is_dir = top.metadata.is_dir();
        let mut items = vec![view_item(String::new(), &top)?];
        if is_dir {
            walk_view(view, &resolved, "", &mut items)?;
        }
        out.push(Source {
            written: pattern.to_string(),
            base_name: base_name(&path),
            is_dir,
            items,
        });
    }
    Ok(out)
}

fn view_item(rel: String, e: &ViewEntry) -> Result<Item, CopyError> {
    let m = &e.metadata;
    let kind = if m.is_dir() {
        ItemKind::Dir
    } else if m.file_type().is_symlink() {
        let target =
            std::fs::read_link(&e.host_path).map_err(io_err(e.host_path.display().to_string()))?;
        ItemKind::Symlink(target.to_string_lossy().into_owned())
    } else {
        ItemKind::File { source: FileSource::Path(e.host_path.clone()), size: m.len() }
    };
    Ok(Item {
        rel,
        kind,
        mode: m.permissions().mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        mtime: m.mtime(),
    })
}

fn walk_view(
    view: &LayeredView,
    dir: &str,
    rel: &str,
    items: &mut Vec<Item>,
) -> Result<(), CopyError> {
    let listing = view.read_dir(dir).map_err(io_err(dir.to_string()))?.unwrap_or_default();
    for (name, entry) in listing {
        let child_rel = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        let m = &entry.metadata;
        if !(m.is_dir() || m.is_file() || m.file_type().is_symlink()) {
            continue;
        }
        items.push(view_item(child_rel.clone(), &entry)?);
        if m.is_dir() {
            walk_view(view, &join(dir, &name), &child_rel, items)?;
        }
    }
    Ok(())
}

/// Expands wildcards in `pattern` against the view, component by component.
fn expand_in_view(view: &LayeredView, pattern: &str) -> Result<Vec<String>, CopyError> {
    let mut candidates = vec![String::from("/")];
    for component in pattern.split('/').filter(|c| !c.is_empty() && *c != ".") {
        let mut next = Vec::new();
        for base in &candidates {
            if component == ".." {
                next.push(parent(base));
            } else if !crate::context::has_wildcard(component) {
                next.push(join(base, component));
            } else {
                let dir = view.resolve(base, true).map_err(io_err(base.clone()))?;
                for name in view
                    .read_dir(&dir)
                    .map_err(io_err(dir.clone()))?
                    .unwrap_or_default()
                    .into_keys()
                {
                    let matched = crate::context::match_segment(component, &name)
                        .map_err(|_| CopyError::BadPattern { pattern: pattern.to_string() })?;
                    if matched {
                        next.push(join(base, &name));
                    }
                }
            }
        }
        candidates = next;
    }
    let mut found = Vec::new();
    for c in candidates {
        let resolved = view.resolve(&c, true).map_err(io_err(c.clone()))?;
        if view.lookup(&resolved).map_err(io_err(c.clone()))?.is_some() {
            found.push(c);
        }
    }
    if found.is_empty() {
        return Err(CopyError::NotFound { source_path: pattern.to_string(), place: "stage" });
    }
    Ok(found)
}

fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') { format!("{dir}{name}") } else { format!("{dir}/{name}") }
}

fn parent(path: &str) -> String {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) | None => "/".to_string(),
        Some((p, _)) => p.to_string(),
    }
}

fn base_name(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}
