//! Content digests of gathered sources, for cache keys: every item's place, type, permission
//! bits and content (files through the context's stat cache), link targets, and which files
//! are hard links of each other. Not mtimes or owners: context files are copied as root, and
//! a file touched but unchanged keeps its key (as BuildKit).
//!
//! Nothing is copied out of the sources: one pass picks the files to read, a second feeds
//! every item to the digest as it goes.

use std::collections::HashMap;
use std::path::Path;

use kiln_cache::digest::Digest;
use kiln_cache::layer::{FileIdentity, FileSource};

use super::place::{Item, ItemKind, Source};
use crate::context::ContextError;
use crate::key::{ContextHasher, ItemDigester};

/// What one item contributes, besides its place.
enum Part<'s> {
    /// Kind, mode and detail as they are.
    Plain(&'static str, u32, String),
    /// A hard link to the first item with the same inode (its path).
    LinkTo(u32, String),
    /// A file on disk whose content digest is the detail.
    Disk(u32, &'s Path, FileIdentity),
}

/// The digest of `sources` (each with the index of the pattern it came from).
pub(crate) fn digest_sources(
    hasher: &ContextHasher<'_>,
    sources: &[(usize, Source)],
) -> Result<Digest, ContextError> {
    // Pass 1: the files to read, in order (empty ones need no reading).
    let mut files: Vec<(&Path, FileIdentity)> = Vec::new();
    walk(sources, |_, part| {
        if let Part::Disk(_, path, id) = part
            && id.size > 0
        {
            files.push((path, id));
        }
        Ok(())
    })?;
    let refs: Vec<(&Path, &FileIdentity)> = files.iter().map(|(p, id)| (*p, id)).collect();
    let digests = hasher.file_digests(&refs)?;
    drop(refs);
    drop(files);
    // Pass 2: every item, in the same order.
    let empty = Digest::of_bytes(b"").to_string();
    let mut next = digests.iter();
    let mut d = ItemDigester::default();
    walk(sources, |path, part| {
        match part {
            Part::Plain(kind, mode, detail) => d.add(path, kind, mode, &detail),
            Part::LinkTo(mode, first) => d.add(path, "hardlink", mode, &first),
            Part::Disk(mode, _, id) if id.size == 0 => d.add(path, "file", mode, &empty),
            Part::Disk(mode, file, _) => {
                let digest = next.next().ok_or_else(|| ContextError::Io {
                    path: file.to_path_buf(),
                    source: std::io::Error::other("internal error: no content digest"),
                })?;
                d.add(path, "file", mode, &digest.to_string());
            }
        }
        Ok(())
    })?;
    Ok(d.finish())
}

/// Calls `f` with each item's key path and what it contributes, in order.
fn walk<'s>(
    sources: &'s [(usize, Source)],
    mut f: impl FnMut(&str, Part<'s>) -> Result<(), ContextError>,
) -> Result<(), ContextError> {
    let mut first_link: HashMap<(u64, u64), String> = HashMap::new();
    for (i, source) in sources {
        let prefix =
            format!("{i}:{}:{}", source.base_name, if source.contents { "d" } else { "f" });
        for item in &source.items {
            let path = format!("{prefix}/{}", item.rel);
            let part = part_of(item, &path, &mut first_link)?;
            f(&path, part)?;
        }
    }
    Ok(())
}

fn part_of<'s>(
    item: &'s Item,
    path: &str,
    first_link: &mut HashMap<(u64, u64), String>,
) -> Result<Part<'s>, ContextError> {
    Ok(match &item.kind {
        ItemKind::Dir => Part::Plain("dir", item.mode, String::new()),
        ItemKind::Symlink(t) => Part::Plain("symlink", 0o777, t.clone()),
        ItemKind::Hardlink(t) => Part::Plain("hardlink", item.mode, t.clone()),
        ItemKind::Special(k) => Part::Plain("special", item.mode, format!("{k:?}")),
        ItemKind::File { source, .. } => {
            if let Some(inode) = item.inode {
                if let Some(first) = first_link.get(&inode) {
                    return Ok(Part::LinkTo(item.mode, first.clone()));
                }
                first_link.insert(inode, path.to_string());
            }
            match source {
                FileSource::Checked(c) => Part::Disk(item.mode, &c.path, c.identity),
                FileSource::Path(p) => {
                    let meta = std::fs::symlink_metadata(p)
                        .map_err(|source| ContextError::Io { path: p.clone(), source })?;
                    Part::Disk(item.mode, p, FileIdentity::of(&meta))
                }
                FileSource::Bytes(b) => {
                    Part::Plain("file", item.mode, Digest::of_bytes(b).to_string())
                }
            }
        }
    })
}
