//! `ADD`: like `COPY` from the context, plus tar archives extracted into the destination
//! (local ones unless `--unpack=false`, downloads only with `--unpack=true`), URLs and git
//! repositories.
//!
//! Downloads and checkouts are fetched before planning (their digests and commits are part of
//! the cache key) and handed in as [`Fetched`]. A downloaded file gets mode 0600 and the
//! `Last-Modified` time (else the build's time), as BuildKit does; files from git get the
//! commit's time, so the same commit always gives the same layer.

use std::sync::Arc;

use kiln_cache::layer::{FileSource, LayerEntry};
use kiln_frontend::graph::{AddOp, AddSource};

use super::archive::archive_source;
use super::copy::{CopyError, inline_sources};
use super::gather::{Gather, context_sources};
use super::place::{Item, ItemKind, Placement, Source, place};
use crate::context::compress::is_tar_archive;
use crate::context::exclude::Excludes;
use crate::context::git::Checkout;
use crate::context::http::Download;
use crate::context::{BuildContext, IgnoreRules, Scratch};
use crate::fsview::LayeredView;
use crate::users::Owner;

/// A fetched remote source of an `ADD`, in the order of [`AddOp::sources`].
#[derive(Debug, Clone)]
pub enum Fetched {
    /// A context path: nothing fetched.
    Local,
    /// A download.
    Url(Arc<Download>),
    /// A git checkout.
    Git(Arc<Checkout>),
}

/// Everything an `ADD` needs besides the op itself.
pub struct AddInputs<'a> {
    /// The build context.
    pub context: &'a BuildContext,
    /// The stage's filesystem before this step (an empty view for `--link`).
    pub dest_view: &'a LayeredView,
    /// `--chown`, resolved.
    pub owner: Option<Owner>,
    /// mtime for directories the step creates, heredoc files and downloads without
    /// `Last-Modified`.
    pub now: i64,
    /// The remote sources, one per [`AddOp::sources`] entry.
    pub fetched: &'a [Fetched],
    /// Where large archive members are spooled.
    pub scratch: &'a Scratch,
    /// What was read from the context for this step's key ([`local_digest`]): extracted or
    /// copied instead of reading the context again.
    pub hashed: Option<&'a super::copy::Hashed>,
}

/// Computes the layer entries of `op`.
pub fn plan_add(op: &AddOp, inputs: &AddInputs<'_>) -> Result<Vec<LayerEntry>, CopyError> {
    let excludes = Excludes::new(&op.exclude)?;
    let g = Gather { parents: false, excludes: excludes.as_ref(), now: inputs.now };
    let mut sources = Vec::new();
    for (i, source) in op.sources.iter().enumerate() {
        let fetched = inputs.fetched.get(i).unwrap_or(&Fetched::Local);
        match (source, fetched) {
            (AddSource::Local { path }, _) => {
                for s in context_sources(inputs.context, path, g, inputs.hashed)? {
                    sources.push(unpack_local(s, op.unpack, inputs.scratch)?);
                }
            }
            (AddSource::Url { url, filename, .. }, Fetched::Url(d)) => {
                if op.unpack == Some(true) && is_tar_archive(&d.path) {
                    sources.push(archive_source(&d.path, None, url, inputs.scratch)?);
                    continue;
                }
                let mut item = Item::new_dir(String::new(), d.last_modified.unwrap_or(inputs.now));
                let size = std::fs::metadata(&d.path)
                    .map_err(super::copy::io_err(d.path.display().to_string()))?
                    .len();
                item.kind = ItemKind::File { source: FileSource::Path(d.path.clone()), size };
                item.mode = 0o600;
                sources.push(Source {
                    written: url.clone(),
                    base_name: filename.clone(),
                    contents: false,
                    keep_owner: false,
                    chmod: true,
                    items: vec![item],
                });
            }
            (AddSource::Git { remote, subdir, keep_git_dir, .. }, Fetched::Git(c)) => {
                sources.push(git_source(remote, c, subdir.as_deref(), *keep_git_dir, g)?);
            }
            (other, _) => {
                return Err(CopyError::Fetch(format!("{other:?} was not fetched before planning")));
            }
        }
    }
    sources.extend(inline_sources(&op.inline, inputs.now));
    let placement = Placement {
        instr: "ADD",
        dest: &op.dest,
        dest_is_dir: op.dest_is_dir,
        view: inputs.dest_view,
        owner: inputs.owner,
        chmod: op.chmod.as_ref(),
        now: inputs.now,
    };
    place(sources, &placement)
}

/// A local file source that is a tar archive becomes the archive's contents (unless
/// `--unpack=false`).
fn unpack_local(s: Source, unpack: Option<bool>, scratch: &Scratch) -> Result<Source, CopyError> {
    if s.contents || unpack == Some(false) {
        return Ok(s);
    }
    let (path, identity) = match s.items.first().map(|i| &i.kind) {
        Some(ItemKind::File { source: FileSource::Checked(c), .. }) => {
            (c.path.clone(), Some(c.identity))
        }
        Some(ItemKind::File { source, .. }) => match source.path() {
            Some(p) => (p.to_path_buf(), None),
            None => return Ok(s),
        },
        _ => return Ok(s),
    };
    if is_tar_archive(&path) {
        archive_source(&path, identity.as_ref(), &s.written, scratch)
    } else {
        Ok(s)
    }
}

/// The tree of a git checkout (or its `subdir`) as a source landing inside the destination;
/// `.git` only with `--keep-git-dir` (and no sub-directory).
fn git_source(
    remote: &str,
    checkout: &Checkout,
    subdir: Option<&str>,
    keep_git_dir: bool,
    g: Gather<'_>,
) -> Result<Source, CopyError> {
    let tree = BuildContext::with_rules(&checkout.dir, IgnoreRules::empty())?;
    let pattern = subdir.unwrap_or(".");
    let mut found = context_sources(&tree, pattern, g, None)?;
    let mut source = match found.pop() {
        Some(s) if found.is_empty() && s.contents => s,
        _ => {
            return Err(CopyError::Fetch(format!(
                "{remote}: {pattern} is not a directory of the repository"
            )));
        }
    };
    if !keep_git_dir || subdir.is_some() {
        source.items.retain(|i| i.rel != ".git" && !i.rel.starts_with(".git/"));
    }
    for item in &mut source.items {
        item.mtime = checkout.commit_time;
    }
    source.written = remote.to_string();
    Ok(source)
}

/// The digest of what the local sources of `op` select in `hasher`'s context (with
/// `--exclude`), for the cache key; with `keep`, what was read is kept for the plan
/// (`AddInputs::hashed`).
pub fn local_digest(
    hasher: &crate::key::ContextHasher<'_>,
    op: &AddOp,
    keep: Option<&super::copy::Hashed>,
) -> Result<kiln_cache::digest::Digest, CopyError> {
    let paths: Vec<String> = op
        .sources
        .iter()
        .filter_map(|s| match s {
            AddSource::Local { path } => Some(path.clone()),
            _ => None,
        })
        .collect();
    super::copy::context_digest(hasher, &paths, false, &op.exclude, keep)
}
