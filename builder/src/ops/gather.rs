//! Reading `COPY`/`ADD` sources into [`Source`]s: from a build context (wildcards, symlinks
//! followed inside it, `.dockerignore`) or from another filesystem seen through a
//! [`LayeredView`]; with `--parents` (the path below the context, or below a `/./` pivot, is
//! kept) and `--exclude`.

use std::path::PathBuf;
use std::sync::Mutex;

use kiln_cache::layer::{FileIdentity, FileSource};

use super::copy::{CopyError, io_err};
use super::place::{Item, ItemKind, Source, base_name, join};
use crate::context::exclude::Excludes;
use crate::context::{BuildContext, ContextError, Found, has_wildcard, match_segment};
use crate::fsview::{LayeredView, ViewEntry};

/// How sources are read.
#[derive(Clone, Copy)]
pub(crate) struct Gather<'a> {
    /// `--parents`.
    pub parents: bool,
    /// `--exclude`.
    pub excludes: Option<&'a Excludes>,
    /// mtime of parent directories `--parents` makes up (when the source's own cannot be read).
    pub now: i64,
}

/// `--parents`: the part of a source before a `/./` pivot (its directories are not kept) and
/// the rest (kept below the destination).
fn pivot(pattern: &str) -> (&str, &str) {
    match pattern.split_once("/./") {
        Some((base, rest)) => (base, rest),
        None => ("", pattern),
    }
}

/// The cleaned segments of a path.
fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty() && *s != ".").collect()
}

/// `rel` below `base` (both cleaned, '/'-separated), or `rel` itself when it is not below.
fn below(base: &[&str], rel: &str) -> String {
    let parts = segments(rel);
    if parts.len() >= base.len() && parts[..base.len()] == *base {
        parts[base.len()..].join("/")
    } else {
        parts.join("/")
    }
}

/// Drops the items `excludes` leaves out (tested by their `rel`), keeping the first item when
/// `keep_first` (a directory source itself).
fn filter(items: Vec<Item>, excludes: Option<&Excludes>, keep_first: bool) -> Vec<Item> {
    let Some(ex) = excludes else { return items };
    let paths: Vec<(&str, bool)> =
        items.iter().map(|i| (i.rel.as_str(), matches!(i.kind, ItemKind::Dir))).collect();
    let mut keep = ex.keep(&paths);
    if keep_first && let Some(k) = keep.first_mut() {
        *k = true;
    }
    items.into_iter().zip(keep).filter(|(_, k)| *k).map(|(i, _)| i).collect()
}

/// The sources `pattern` names in the build context `ctx`.
///
/// When `hashed` holds the same request, read for the step's cache key, those very sources
/// are returned (once): the files are then the ones whose contents went into the key, each
/// carrying the identity it had when it was hashed ([`FileSource::Checked`]), which the layer
/// writer checks again. Otherwise the context is read afresh.
pub(crate) fn context_sources(
    ctx: &BuildContext,
    pattern: &str,
    g: Gather<'_>,
    hashed: Option<&Hashed>,
) -> Result<Vec<Source>, CopyError> {
    if let Some(mut sources) = hashed.and_then(|h| h.take(ctx, pattern, g)) {
        for item in sources.iter_mut().flat_map(|s| s.items.iter_mut()) {
            if item.mtime == UNSET_MTIME {
                item.mtime = g.now;
            }
        }
        return Ok(sources);
    }
    read_context_sources(ctx, pattern, g)
}

/// The mtime given to directories `--parents` makes up while hashing (replaced by the
/// planning time when the sources kept in a [`Hashed`] are taken back).
pub(crate) const UNSET_MTIME: i64 = i64::MIN;

/// Reads what `pattern` names in the context.
pub(crate) fn read_context_sources(
    ctx: &BuildContext,
    pattern: &str,
    g: Gather<'_>,
) -> Result<Vec<Source>, CopyError> {
    let (base, rest) = if g.parents { pivot(pattern) } else { ("", pattern) };
    let full = if base.is_empty() { rest.to_string() } else { format!("{base}/{rest}") };
    let base_parts = segments(base);
    let mut out = Vec::new();
    for entry in ctx.resolve_sources(&full)? {
        if !g.parents && g.excludes.is_some_and(|ex| ex.excludes_match(pattern, &entry.rel_path)) {
            continue;
        }
        let top = if entry.is_dir {
            ItemKind::Dir
        } else {
            let identity = FileIdentity::of(&entry.metadata);
            let source = FileSource::checked(entry.abs_path.clone(), identity);
            ItemKind::File { source, size: identity.size }
        };
        let kept = if g.parents { below(&base_parts, &entry.rel_path) } else { String::new() };
        let mut items = Vec::new();
        if g.parents {
            // The directories between the pivot and the source, with their own metadata.
            let parts = segments(&kept);
            for i in 1..parts.len() {
                let rel = parts[..i].join("/");
                let host = ctx.root().join(base_parts.join("/")).join(&rel);
                items.push(match std::fs::symlink_metadata(&host) {
                    Ok(m) if m.is_dir() => Item::from_meta(rel, ItemKind::Dir, &m),
                    _ => Item::new_dir(rel, g.now),
                });
            }
        }
        items.push(Item::from_meta(kept.clone(), top, &entry.metadata));
        if entry.is_dir {
            let make = |found: Found<'_>| walked_item(&kept, found);
            ctx.walk_into(&entry, &make, &mut items)?;
        }
        let items = filter(items, g.excludes, !g.parents && entry.is_dir);
        if !items.iter().any(|i| i.rel == kept) {
            continue;
        }
        out.push(Source {
            written: pattern.to_string(),
            base_name: base_name(&entry.rel_path),
            contents: entry.is_dir || g.parents,
            keep_owner: false,
            chmod: true,
            items,
        });
    }
    Ok(out)
}

/// The item of one entry beneath a directory source (`kept`: where that source's items are,
/// below the target); `None` for what is not copied.
fn walked_item(kept: &str, found: Found<'_>) -> Result<Option<Item>, ContextError> {
    let m = &found.metadata;
    let kind = if m.is_dir() {
        ItemKind::Dir
    } else if m.file_type().is_symlink() {
        match std::fs::read_link(found.abs_path) {
            Ok(target) => ItemKind::Symlink(target.to_string_lossy().into_owned()),
            // Gone since it was listed: not there, like anything else that vanished.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(ContextError::Io { path: found.abs_path.to_path_buf(), source });
            }
        }
    } else if m.is_file() {
        let identity = FileIdentity::of(m);
        let source = FileSource::checked(found.abs_path.to_path_buf(), identity);
        ItemKind::File { source, size: identity.size }
    } else {
        // Sockets, FIFOs and devices in a context are not copied (as BuildKit).
        return Ok(None);
    };
    let rel = if kept.is_empty() { found.rel_to_source } else { join(kept, &found.rel_to_source) };
    Ok(Some(Item::from_meta(rel, kind, m)))
}

/// What was read from a context for one request (pattern, `--parents`, `--exclude`).
struct Remembered {
    root: PathBuf,
    pattern: String,
    parents: bool,
    excludes: Vec<String>,
    sources: Vec<Source>,
}

/// What a step read from the build context to compute its cache key, handed to the plan of
/// that step (`CopyInputs::hashed`, `AddInputs::hashed`) so that it copies exactly what was
/// hashed. Each request is taken once.
#[derive(Default)]
pub struct Hashed {
    entries: Mutex<Vec<Remembered>>,
}

impl Hashed {
    /// Keeps `sources`, read for `pattern` with `g` (whose `now` was [`UNSET_MTIME`]).
    pub(crate) fn keep(
        &self,
        ctx: &BuildContext,
        pattern: &str,
        g: Gather<'_>,
        sources: Vec<Source>,
    ) {
        let entry = Remembered {
            root: ctx.root().to_path_buf(),
            pattern: pattern.to_string(),
            parents: g.parents,
            excludes: excludes_of(g),
            sources,
        };
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).push(entry);
    }

    /// The sources kept for this request, if any (removed).
    fn take(&self, ctx: &BuildContext, pattern: &str, g: Gather<'_>) -> Option<Vec<Source>> {
        let mut list = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let excludes = excludes_of(g);
        let at = list.iter().position(|m| {
            m.root == ctx.root()
                && m.pattern == pattern
                && m.parents == g.parents
                && m.excludes == excludes
        })?;
        Some(list.remove(at).sources)
    }
}

fn excludes_of(g: Gather<'_>) -> Vec<String> {
    g.excludes.map(|e| e.patterns().to_vec()).unwrap_or_default()
}

/// The sources `pattern` names in another stage's or an image's filesystem.
pub(crate) fn view_sources(
    view: &LayeredView,
    pattern: &str,
    g: Gather<'_>,
) -> Result<Vec<Source>, CopyError> {
    let (base, rest) = if g.parents { pivot(pattern) } else { ("", pattern) };
    let full = if base.is_empty() { rest.to_string() } else { format!("{base}/{rest}") };
    let base_parts = segments(base);
    let mut out = Vec::new();
    for path in expand_in_view(view, &full)? {
        if !g.parents && g.excludes.is_some_and(|ex| ex.excludes_match(pattern, &path)) {
            continue;
        }
        let resolved = view.resolve(&path, true).map_err(io_err(path.clone()))?;
        let Some(top) = view.lookup(&resolved).map_err(io_err(path.clone()))? else {
            return Err(CopyError::NotFound { source_path: pattern.to_string(), place: "stage" });
        };
        let is_dir = top.metadata.is_dir();
        let kept = if g.parents { below(&base_parts, &path) } else { String::new() };
        let mut items = Vec::new();
        if g.parents {
            let parts = segments(&kept);
            for i in 1..parts.len() {
                let rel = parts[..i].join("/");
                let abs = format!("/{}", [base_parts.join("/"), rel.clone()].join("/"));
                let found =
                    view.resolve(&abs, true).ok().and_then(|r| view.lookup(&r).ok()).flatten();
                items.push(match found {
                    Some(e) if e.metadata.is_dir() => {
                        Item::from_meta(rel, ItemKind::Dir, &e.metadata)
                    }
                    _ => Item::new_dir(rel, g.now),
                });
            }
        }
        items.push(view_item(kept.clone(), &top)?);
        if is_dir {
            walk_view(view, &resolved, &kept, &mut items)?;
        }
        let items = filter(items, g.excludes, !g.parents && is_dir);
        if !items.iter().any(|i| i.rel == kept) {
            continue;
        }
        out.push(Source {
            written: pattern.to_string(),
            base_name: base_name(&path),
            contents: is_dir || g.parents,
            keep_owner: true,
            chmod: true,
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
    Ok(Item::from_meta(rel, kind, m))
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
                next.push(super::place::parent(base));
            } else if !has_wildcard(component) {
                next.push(join(base, component));
            } else {
                let dir = view.resolve(base, true).map_err(io_err(base.clone()))?;
                for name in view
                    .read_dir(&dir)
                    .map_err(io_err(dir.clone()))?
                    .unwrap_or_default()
                    .into_keys()
                {
                    let matched = match_segment(component, &name)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pivots_and_below() {
        assert_eq!(pivot("src/./app/x"), ("src", "app/x"));
        assert_eq!(pivot("./a/b"), ("", "./a/b"));
        assert_eq!(pivot("a/./b/./c"), ("a", "b/./c"));
        assert_eq!(below(&["src"], "src/app/x"), "app/x");
        assert_eq!(below(&[], "./a/b"), "a/b");
        assert_eq!(below(&["x"], "y/z"), "y/z");
    }
}
