//! `COPY`: turns a [`CopyOp`] into the entries of one layer.
//!
//! Sources come from the build context (or a named context) or from another filesystem (a
//! stage or an image, seen through a [`LayeredView`]); the destination is checked against the
//! stage's current view so that existing directories (and symlinks to them) are copied into,
//! as `docker build` does. With `--link` the caller passes an empty view: the layer is made
//! as if on an empty filesystem, so it does not depend on the stage's content.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use kiln_cache::digest::Digest;
use kiln_cache::layer::{EntryKind, LayerEntry};
use kiln_frontend::graph::CopyOp;

pub use super::gather::Hashed;
use super::gather::{self, Gather, UNSET_MTIME, context_sources, view_sources};
use super::place::{Placement, Source, place};
use crate::context::BuildContext;
use crate::context::exclude::Excludes;
use crate::fsview::LayeredView;
use crate::key::ContextHasher;
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
    /// Several sources (or wildcard matches) onto a destination that is not a directory.
    #[error(
        "{count} sources ({sources}) are copied, so the destination {dest:?} must be a \
         directory: end it with a slash ({dest}/)"
    )]
    SeveralSources {
        /// `COPY` or `ADD`.
        instr: &'static str,
        /// How many sources.
        count: usize,
        /// The sources as written.
        sources: String,
        /// The destination.
        dest: String,
    },
    /// A hard link (in an archive) to something that is not an earlier file of it.
    #[error("{source_path}: hard link {link} points to {target}, which is not a file it holds")]
    BadHardlink {
        /// The archive.
        source_path: String,
        /// The link's path in the layer.
        link: String,
        /// What it points to.
        target: String,
    },
    /// An `--exclude` pattern that is not valid.
    #[error("--exclude: {0}")]
    Exclude(#[from] crate::context::IgnoreError),
    /// An archive that cannot be read.
    #[error("{what}: {reason}")]
    Archive {
        /// The archive as written.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A download or git checkout failed.
    #[error("{0}")]
    Fetch(String),
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CopyError {
    let what = what.into();
    move |source| CopyError::Io { what, source }
}

/// Everything a `COPY` needs besides the op itself.
pub struct CopyInputs<'a> {
    /// Where sources come from.
    pub from: CopyFrom<'a>,
    /// The stage's filesystem before this step (an empty view for `--link`).
    pub dest_view: &'a LayeredView,
    /// `--chown`, resolved.
    pub owner: Option<Owner>,
    /// mtime for directories the copy creates and for heredoc files.
    pub now: i64,
    /// What was read from the context for this step's key ([`context_digest`]): copied
    /// instead of reading the context again.
    pub hashed: Option<&'a Hashed>,
}

/// Computes the layer entries of `op`.
pub fn plan_copy(op: &CopyOp, inputs: &CopyInputs<'_>) -> Result<Vec<LayerEntry>, CopyError> {
    let excludes = Excludes::new(&op.exclude)?;
    let g = Gather { parents: op.parents, excludes: excludes.as_ref(), now: inputs.now };
    let mut sources = Vec::new();
    for pattern in &op.sources {
        match inputs.from {
            CopyFrom::Context(ctx) => {
                sources.extend(context_sources(ctx, pattern, g, inputs.hashed)?)
            }
            CopyFrom::View(view) => sources.extend(view_sources(view, pattern, g)?),
        }
    }
    sources.extend(inline_sources(&op.inline, inputs.now));
    // An octal `--chmod` is a symbolic-free mode too: both forms apply per path.
    let octal = op.chmod.map(|bits| kiln_frontend::graph::FileMode::Octal { bits });
    let chmod = op.chmod_mode.as_ref().or(octal.as_ref());
    let placement = Placement {
        instr: "COPY",
        dest: &op.dest,
        dest_is_dir: op.dest_is_dir,
        view: inputs.dest_view,
        owner: inputs.owner,
        chmod,
        now: inputs.now,
    };
    place(sources, &placement)
}

/// Heredoc sources (`COPY <<EOF /dest`): files of mode 0644 made at `now`.
pub(crate) fn inline_sources(inline: &[(String, String)], now: i64) -> Vec<Source> {
    inline
        .iter()
        .map(|(name, content)| {
            let bytes = content.as_bytes().to_vec();
            let size = bytes.len() as u64;
            let mut item = super::place::Item::new_dir(String::new(), now);
            item.kind = super::place::ItemKind::File {
                source: kiln_cache::layer::FileSource::Bytes(bytes),
                size,
            };
            item.mode = 0o644;
            Source {
                written: name.clone(),
                base_name: name.clone(),
                contents: false,
                keep_owner: false,
                chmod: true,
                items: vec![item],
            }
        })
        .collect()
}

/// The digest of what `sources` select in the context of `hasher` with `--parents` and
/// `--exclude` as given: paths as they will be copied, types, permission bits, file contents,
/// link targets and which files are hard links of each other (not mtimes or owners).
///
/// Every file is read for its digest only if it is still the file the walk listed. With
/// `keep`, what was read is kept there for the [`plan_copy`] (or `ADD`) of the step
/// (`CopyInputs::hashed`): it copies that very listing, each file checked by the layer writer
/// against the identity it had when hashed, so a layer never holds other content than its
/// key names.
pub fn context_digest(
    hasher: &ContextHasher<'_>,
    sources: &[String],
    parents: bool,
    exclude: &[String],
    keep: Option<&Hashed>,
) -> Result<Digest, CopyError> {
    let excludes = Excludes::new(exclude)?;
    let g = Gather { parents, excludes: excludes.as_ref(), now: UNSET_MTIME };
    let mut gathered = Vec::new();
    for (i, pattern) in sources.iter().enumerate() {
        for source in gather::read_context_sources(hasher.context(), pattern, g)? {
            gathered.push((i, source));
        }
    }
    let digest = super::hash::digest_sources(hasher, &gathered)?;
    let Some(keep) = keep else { return Ok(digest) };
    let mut gathered = gathered.into_iter().peekable();
    for (i, pattern) in sources.iter().enumerate() {
        let mut mine = Vec::new();
        while let Some((_, source)) = gathered.next_if(|(j, _)| *j == i) {
            mine.push(source);
        }
        keep.keep(hasher.context(), pattern, g, mine);
    }
    Ok(digest)
}

/// Adds `dir` and its ancestors: existing ones with their current metadata, missing ones created.
/// The entries' paths are their keys (their own `path` is left empty until
/// [`Entries::into_vec`](super::place::Entries::into_vec)).
pub(crate) fn add_directory_chain(
    entries: &mut super::place::Entries,
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
        if entries.contains(&key) {
            continue;
        }
        let existing = view.lookup(&path).map_err(io_err(path.clone()))?;
        let entry = match existing {
            Some(e) if e.metadata.is_dir() => LayerEntry {
                path: String::new(),
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
                path: String::new(),
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
