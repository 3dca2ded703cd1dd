//! `ADD` of a tar archive: its members become items of the layer directly — they are never
//! written to the host under their own names, so no member can land outside the destination.
//! Paths are cleaned as if rooted at the destination (`..` cannot climb above it); contents
//! up to 64 KiB are kept in memory, larger ones spooled to numbered files in scratch space.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::Path;

use kiln_cache::layer::{EntryKind, FileSource, HeaderKind, MEDIA_TYPE_TAR, read_layer};

use super::copy::CopyError;
use super::place::{Item, ItemKind, Source};
use crate::context::Scratch;
use crate::context::compress::decompress;

/// Members smaller than this stay in memory.
const IN_MEMORY: u64 = 64 * 1024;

/// The archive at `path` (written as `written`), as a source that lands inside the
/// destination with the members' own owners.
pub(crate) fn archive_source(
    path: &Path,
    written: &str,
    scratch: &Scratch,
) -> Result<Source, CopyError> {
    let fail = |reason: String| CopyError::Archive { what: written.to_string(), reason };
    let file = File::open(path).map_err(|e| fail(e.to_string()))?;
    let (_, decoded) = decompress(file).map_err(|e| fail(e.to_string()))?;
    let mut items: Vec<Item> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut spool: Option<std::path::PathBuf> = None;
    let mut spooled = 0usize;
    let mut refused: Option<String> = None;
    read_layer(decoded, MEDIA_TYPE_TAR, |h, content| {
        let rel = match h.path.to_str() {
            Some(p) => p.to_string(),
            None => {
                refused.get_or_insert_with(|| format!("{}: the name is not UTF-8", h.path.display()));
                return Ok(());
            }
        };
        let kind = match &h.kind {
            HeaderKind::Dir => ItemKind::Dir,
            HeaderKind::File { size } => {
                let source = if *size <= IN_MEMORY {
                    let mut bytes = Vec::with_capacity(*size as usize);
                    content.read_to_end(&mut bytes).map_err(|e| stream_error(&rel, e))?;
                    FileSource::Bytes(bytes)
                } else {
                    let dir = match &spool {
                        Some(d) => d.clone(),
                        None => {
                            let d = scratch.dir("add-archive-").map_err(|e| stream_error(&rel, e))?;
                            spool = Some(d.clone());
                            d
                        }
                    };
                    spooled += 1;
                    let target = dir.join(spooled.to_string());
                    let mut out = File::create(&target).map_err(|e| stream_error(&rel, e))?;
                    io::copy(content, &mut out).map_err(|e| stream_error(&rel, e))?;
                    FileSource::Path(target)
                };
                ItemKind::File { source, size: *size }
            }
            HeaderKind::Symlink { target } => match target.to_str() {
                Some(t) => ItemKind::Symlink(t.to_string()),
                None => {
                    refused.get_or_insert_with(|| format!("{rel}: the link target is not UTF-8"));
                    return Ok(());
                }
            },
            HeaderKind::Hardlink { target } => match target.to_str() {
                Some(t) => ItemKind::Hardlink(t.to_string()),
                None => {
                    refused.get_or_insert_with(|| format!("{rel}: the link target is not UTF-8"));
                    return Ok(());
                }
            },
            HeaderKind::CharDevice { major, minor } => {
                ItemKind::Special(EntryKind::CharDevice { major: *major, minor: *minor })
            }
            HeaderKind::BlockDevice { major, minor } => {
                ItemKind::Special(EntryKind::BlockDevice { major: *major, minor: *minor })
            }
            HeaderKind::Fifo => ItemKind::Special(EntryKind::Fifo),
            HeaderKind::Whiteout | HeaderKind::OpaqueDir => {
                refused.get_or_insert_with(|| {
                    format!(
                        "{rel}: members named .wh.* are OCI whiteouts and cannot be added to a layer"
                    )
                });
                return Ok(());
            }
        };
        let item = Item {
            rel: rel.clone(),
            kind,
            mode: h.mode,
            uid: h.uid,
            gid: h.gid,
            mtime: h.mtime,
            xattrs: h.xattrs.clone(),
            inode: None,
            meta: None,
        };
        // A later member replaces an earlier one at the same path, as extracting does.
        match index.get(&rel) {
            Some(&i) => items[i] = item,
            None => {
                index.insert(rel, items.len());
                items.push(item);
            }
        }
        Ok(())
    })
    .map_err(|e| fail(e.to_string()))?;
    if let Some(reason) = refused {
        return Err(fail(reason));
    }
    Ok(Source {
        written: written.to_string(),
        base_name: String::new(),
        contents: true,
        keep_owner: true,
        chmod: false,
        items,
    })
}

fn stream_error(rel: &str, e: io::Error) -> kiln_cache::Error {
    kiln_cache::Error::stream(format!("reading archive member {rel}"), e)
}
