//! Reading `COPY`/`ADD` sources into [`Source`]s: from a build context (wildcards, symlinks
//! followed inside it, `.dockerignore`) or from another filesystem seen through a
//! [`LayeredView`]; with `--parents` (the path below the context, or below a `/./` pivot, is
//! kept) and `--exclude`.

use kiln_cache::layer::FileSource;

use super::copy::{CopyError, io_err};
use super::place::{Item, ItemKind, Source, base_name, join};
use crate::context::exclude::Excludes;
use crate::context::{BuildContext, has_wildcard, match_segment};
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
pub(crate) fn context_sources(
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
            let source = FileSource::Path(entry.abs_path.clone());
            ItemKind::File { source, size: entry.metadata.len() }
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
        let mut first = Item::from_meta(kept.clone(), top, &entry.metadata);
        if !entry.is_dir {
            first.meta = Some(entry.metadata.clone());
        }
        items.push(first);
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
                let rel = if kept.is_empty() {
                    w.rel_to_source.clone()
                } else {
                    join(&kept, &w.rel_to_source)
                };
                let mut item = Item::from_meta(rel, kind, m);
                if m.is_file() {
                    item.meta = Some(m.clone());
                }
                items.push(item);
            }
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
