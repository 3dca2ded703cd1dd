//! `ADD` of a tar archive: its members become items of the layer directly — they are never
//! written to the host under their own names, so no member can land outside the destination.
//! Paths are cleaned as if rooted at the destination (`..` cannot climb above it); contents
//! up to 64 KiB are kept in memory while the members held so total at most 16 MiB, the others
//! spooled to numbered files in scratch space: memory stays bounded whatever the archive holds
//! (100,000 small members of a few MiB of gzip would otherwise take gigabytes).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::Path;

use std::os::unix::fs::MetadataExt;

use kiln_cache::layer::{
    EntryKind, FileIdentity, FileSource, HeaderKind, MEDIA_TYPE_TAR, read_layer,
};

use super::copy::CopyError;
use super::place::{Item, ItemKind, Source};
use crate::context::compress::decompress;
use crate::context::{ContextError, Scratch};

/// Members up to this size may stay in memory.
const IN_MEMORY: u64 = 64 * 1024;
/// The most bytes of member contents one archive keeps in memory; past it, every member is
/// spooled.
const IN_MEMORY_TOTAL: u64 = 16 * 1024 * 1024;

/// The archive at `path` (written as `written`), as a source that lands inside the
/// destination with the members' own owners.
pub(crate) fn archive_source(
    path: &Path,
    identity: Option<&FileIdentity>,
    written: &str,
    scratch: &Scratch,
) -> Result<Source, CopyError> {
    let fail =
        |e: io::Error| CopyError::Archive { what: written.to_string(), reason: e.to_string() };
    let changed = || CopyError::from(ContextError::Changed { path: path.to_path_buf() });
    let file = File::open(path).map_err(fail)?;
    let before = file.metadata().map_err(fail)?;
    // With `identity` (what was hashed for the key), it must be that file, before and after
    // it is read.
    if identity.is_some_and(|expect| FileIdentity::of(&before) != *expect) {
        return Err(changed());
    }
    let check = file.try_clone().map_err(fail)?;
    let source = archive_source_capped(file, written, scratch, IN_MEMORY_TOTAL)?;
    if let Some(expect) = identity {
        let after = check.metadata().map_err(fail)?;
        if !expect.unchanged_since_open(before.nlink(), &FileIdentity::of(&after), after.nlink()) {
            return Err(changed());
        }
    }
    Ok(source)
}

/// [`archive_source`] keeping at most `memory_cap` bytes of contents in memory.
fn archive_source_capped(
    file: File,
    written: &str,
    scratch: &Scratch,
    memory_cap: u64,
) -> Result<Source, CopyError> {
    let fail = |reason: String| CopyError::Archive { what: written.to_string(), reason };
    let (_, decoded) = decompress(file).map_err(|e| fail(e.to_string()))?;
    let mut items: Vec<Item> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut spool: Option<std::path::PathBuf> = None;
    let mut spooled = 0usize;
    // Bytes held in memory (a member replaced by a later one is still counted: the bound is
    // what matters).
    let mut in_memory = 0u64;
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
                let source = if *size <= IN_MEMORY && in_memory + *size <= memory_cap {
                    in_memory += *size;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of `count` members of `size` bytes each (member `i` filled with byte `i`).
    fn tar_of(count: usize, size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..count {
            let mut header = [0u8; 512];
            let name = format!("m{i}");
            header[..name.len()].copy_from_slice(name.as_bytes());
            header[100..108].copy_from_slice(b"0000644\0");
            header[108..116].copy_from_slice(b"0000000\0");
            header[116..124].copy_from_slice(b"0000000\0");
            header[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
            header[136..148].copy_from_slice(b"00000000000\0");
            header[156] = b'0';
            header[257..263].copy_from_slice(b"ustar\0");
            header[263..265].copy_from_slice(b"00");
            header[148..156].copy_from_slice(b"        ");
            let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
            header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            out.extend_from_slice(&header);
            out.extend(std::iter::repeat_n(i as u8, size));
            out.resize(out.len().next_multiple_of(512), 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    fn contents(item: &Item) -> Vec<u8> {
        match &item.kind {
            ItemKind::File { source: FileSource::Bytes(b), .. } => b.clone(),
            ItemKind::File { source: FileSource::Path(p), .. } => std::fs::read(p).unwrap(),
            _ => panic!("{} is not a file", item.rel),
        }
    }

    #[test]
    fn members_past_the_memory_cap_are_spooled() {
        let dir = tempfile::tempdir().unwrap();
        let tar = dir.path().join("a.tar");
        // 40 members of 60 KiB: 2.4 MiB in all, against a cap of 1 MiB.
        let size = 60 * 1024;
        std::fs::write(&tar, tar_of(40, size)).unwrap();
        let scratch = Scratch::new(dir.path());
        let source =
            archive_source_capped(File::open(&tar).unwrap(), "a.tar", &scratch, 1024 * 1024)
                .unwrap();
        assert_eq!(source.items.len(), 40);
        let held: Vec<bool> = source
            .items
            .iter()
            .map(|i| matches!(&i.kind, ItemKind::File { source: FileSource::Bytes(_), .. }))
            .collect();
        // 17 members (1,044,480 bytes) fit under 1 MiB; the 18th would pass it.
        let expected: Vec<bool> = (0..40).map(|i| i < 17).collect();
        assert_eq!(held, expected);
        let in_memory: usize = source
            .items
            .iter()
            .filter_map(|i| match &i.kind {
                ItemKind::File { source: FileSource::Bytes(b), .. } => Some(b.len()),
                _ => None,
            })
            .sum();
        assert!(in_memory <= 1024 * 1024, "{in_memory} bytes held");
        for (i, item) in source.items.iter().enumerate() {
            assert_eq!(item.rel, format!("m{i}"));
            assert_eq!(contents(item), vec![i as u8; size], "member {i}");
        }
    }

    #[test]
    fn the_default_cap_holds_small_archives_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let tar = dir.path().join("a.tar");
        std::fs::write(&tar, tar_of(3, 10)).unwrap();
        let scratch = Scratch::new(dir.path());
        let source = archive_source(&tar, None, "a.tar", &scratch).unwrap();
        assert!(
            source
                .items
                .iter()
                .all(|i| matches!(&i.kind, ItemKind::File { source: FileSource::Bytes(_), .. }))
        );
        assert_eq!(contents(&source.items[2]), vec![2u8; 10]);
    }
}
