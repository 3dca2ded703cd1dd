//! Content digests of gathered sources, for cache keys: every item's place, type, permission
//! bits and content (files through the context's stat cache), link targets, and which files
//! are hard links of each other. Not mtimes or owners: context files are copied as root, and
//! a file touched but unchanged keeps its key (as BuildKit).

use std::collections::HashMap;

use kiln_cache::digest::Digest;
use kiln_cache::layer::FileSource;

use super::place::{ItemKind, Source};
use crate::context::ContextError;
use crate::key::{ContextHasher, HashItem};

/// The digest of `sources` (each with the index of the pattern it came from).
pub(crate) fn digest_sources(
    hasher: &ContextHasher<'_>,
    sources: &[(usize, Source)],
) -> Result<Digest, ContextError> {
    let mut items = Vec::new();
    let mut first_link: HashMap<(u64, u64), String> = HashMap::new();
    for (i, source) in sources {
        let prefix =
            format!("{i}:{}:{}", source.base_name, if source.contents { "d" } else { "f" });
        for item in &source.items {
            let path = format!("{prefix}/{}", item.rel);
            let (kind, detail, file) = match &item.kind {
                ItemKind::Dir => ("dir", String::new(), None),
                ItemKind::Symlink(t) => ("symlink", t.clone(), None),
                ItemKind::Hardlink(t) => ("hardlink", t.clone(), None),
                ItemKind::Special(k) => ("special", format!("{k:?}"), None),
                ItemKind::File { source, .. } => {
                    if let Some(inode) = item.inode {
                        if let Some(first) = first_link.get(&inode) {
                            items.push(HashItem::new(path, "hardlink", item.mode, first.clone()));
                            continue;
                        }
                        first_link.insert(inode, path.clone());
                    }
                    match (source, &item.meta) {
                        (FileSource::Path(p), Some(meta)) => {
                            ("file", String::new(), Some((p.clone(), meta.clone())))
                        }
                        (FileSource::Path(p), None) => {
                            let meta = std::fs::symlink_metadata(p)
                                .map_err(|source| ContextError::Io { path: p.clone(), source })?;
                            ("file", String::new(), Some((p.clone(), meta)))
                        }
                        (FileSource::Bytes(b), _) => {
                            ("file", Digest::of_bytes(b).to_string(), None)
                        }
                    }
                }
            };
            let mode = if matches!(item.kind, ItemKind::Symlink(_)) { 0o777 } else { item.mode };
            let mut h = HashItem::new(path, kind, mode, detail);
            h.file = file;
            items.push(h);
        }
    }
    hasher.digest_items(items)
}
