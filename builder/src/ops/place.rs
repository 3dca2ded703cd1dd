//! What `COPY` and `ADD` share once their sources are read: each source is a list of items
//! (files, directories, links) at paths relative to where it lands, and [`place`] puts them
//! under the destination as `docker build` does, turning them into layer entries.

use std::collections::{BTreeMap, HashMap};
use std::fs::Metadata;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use kiln_cache::layer::{EntryKind, FileSource, LayerEntry};
use kiln_frontend::graph::FileMode;

use super::copy::{CopyError, add_directory_chain, io_err};
use crate::fsview::LayeredView;
use crate::users::Owner;

/// One thing to copy, at a path relative to where its source lands.
pub(crate) struct Item {
    /// Path under the source's target (empty for the target itself).
    pub rel: String,
    /// What it is.
    pub kind: ItemKind,
    /// Permission bits.
    pub mode: u32,
    /// Owner, kept when the source keeps owners.
    pub uid: u32,
    /// Group, kept when the source keeps owners.
    pub gid: u32,
    /// Modification time (seconds).
    pub mtime: i64,
    /// Extended attributes.
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// `(device, inode)` of a regular file with several links, to keep them linked.
    pub inode: Option<(u64, u64)>,
}

/// The kind of an [`Item`].
pub(crate) enum ItemKind {
    /// A directory.
    Dir,
    /// A regular file.
    File {
        /// Its content.
        source: FileSource,
        /// Its size.
        size: u64,
    },
    /// A symbolic link, target as stored.
    Symlink(String),
    /// A hard link to another item of the same source, by its `rel`.
    Hardlink(String),
    /// A device or named pipe (from archives).
    Special(EntryKind),
}

impl Item {
    /// An item with the metadata of `meta` (mode, owner, mtime).
    pub fn from_meta(rel: String, kind: ItemKind, meta: &Metadata) -> Item {
        let inode = (meta.is_file() && meta.nlink() > 1).then(|| (meta.dev(), meta.ino()));
        Item {
            rel,
            kind,
            mode: meta.permissions().mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: meta.mtime(),
            xattrs: BTreeMap::new(),
            inode,
        }
    }

    /// A directory item created by the copy (mode 0755, root, `mtime`).
    pub fn new_dir(rel: String, mtime: i64) -> Item {
        Item {
            rel,
            kind: ItemKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime,
            xattrs: BTreeMap::new(),
            inode: None,
        }
    }
}

/// A top-level source after wildcard expansion.
pub(crate) struct Source {
    /// The source as written, for messages.
    pub written: String,
    /// The name a single file takes in a destination directory.
    pub base_name: String,
    /// The items land inside the destination, which is a directory (directory sources,
    /// archives, git trees, `--parents`); otherwise the source is one file that becomes the
    /// destination or lands in it under `base_name`.
    pub contents: bool,
    /// Items keep their owner when `--chown` is not given (other stages, images, archives);
    /// otherwise they belong to root (the context, downloads, git).
    pub keep_owner: bool,
    /// `--chmod` applies to the items (not to archive members, as in BuildKit).
    pub chmod: bool,
    /// What to copy; for a single file, one item with an empty `rel`.
    pub items: Vec<Item>,
}

/// Where and how sources are placed.
pub(crate) struct Placement<'a> {
    /// The instruction (`COPY`, `ADD`), for messages.
    pub instr: &'static str,
    /// The absolute destination as written (joined with the working directory).
    pub dest: &'a str,
    /// The destination was written as a directory (trailing `/`).
    pub dest_is_dir: bool,
    /// The stage's filesystem before the step (empty for `--link`).
    pub view: &'a LayeredView,
    /// `--chown`, resolved.
    pub owner: Option<Owner>,
    /// `--chmod`.
    pub chmod: Option<&'a FileMode>,
    /// mtime of directories the copy creates.
    pub now: i64,
}

/// The entries of a layer being planned, by path; a later entry replaces an earlier one at
/// the same path. One string per entry: the path is the index's key, and each entry's own
/// `path` stays empty until [`Entries::into_vec`].
#[derive(Default)]
pub(crate) struct Entries {
    index: BTreeMap<String, usize>,
    slots: Vec<LayerEntry>,
}

impl Entries {
    /// Whether an entry is at `path`.
    pub fn contains(&self, path: &str) -> bool {
        self.index.contains_key(path)
    }

    /// Puts `entry` at `path` (its own `path` field is ignored).
    pub fn insert(&mut self, path: String, entry: LayerEntry) {
        match self.index.get(&path) {
            Some(&slot) => self.slots[slot] = entry,
            None => {
                self.index.insert(path, self.slots.len());
                self.slots.push(entry);
            }
        }
    }

    /// The entry at `path`.
    pub fn get(&self, path: &str) -> Option<&LayerEntry> {
        self.index.get(path).map(|&slot| &self.slots[slot])
    }

    /// The entry at `path`, to change.
    pub fn get_mut(&mut self, path: &str) -> Option<&mut LayerEntry> {
        self.index.get(path).map(|&slot| &mut self.slots[slot])
    }

    /// Room for `more` entries.
    pub fn reserve(&mut self, more: usize) {
        self.slots.reserve(more);
    }

    /// The entries in path order (bytes), each given its path.
    pub fn into_vec(self) -> Vec<LayerEntry> {
        let mut slots = self.slots;
        for (path, slot) in self.index {
            slots[slot].path = path;
        }
        slots.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        slots
    }
}

/// Hard-link groups being collected: layer path → group, and the members of each group.
#[derive(Default)]
struct Links {
    group_of: HashMap<String, usize>,
    members: Vec<Vec<String>>,
    by_inode: HashMap<(u64, u64), usize>,
}

impl Links {
    fn join(&mut self, path: &str, group: usize) {
        self.group_of.insert(path.to_string(), group);
        self.members[group].push(path.to_string());
    }

    fn new_group(&mut self) -> usize {
        self.members.push(Vec::new());
        self.members.len() - 1
    }
}

/// Places `sources` under the destination and returns the layer entries.
pub(crate) fn place(sources: Vec<Source>, p: &Placement<'_>) -> Result<Vec<LayerEntry>, CopyError> {
    let view = p.view;
    let dest = view.resolve(p.dest, true).map_err(io_err(format!("destination {}", p.dest)))?;
    let existing = view.lookup(&dest).map_err(io_err(format!("destination {dest}")))?;
    let dest_exists_as_dir = existing.as_ref().is_some_and(|e| e.metadata.is_dir());
    let into_dir = p.dest_is_dir || dest_exists_as_dir;
    let files = sources.iter().filter(|s| !s.contents).count();
    if sources.len() > 1 && files > 0 && !into_dir {
        let written: Vec<&str> = sources.iter().map(|s| s.base_name.as_str()).collect();
        return Err(CopyError::SeveralSources {
            instr: p.instr,
            count: sources.len(),
            sources: written.join(", "),
            dest: p.dest.to_string(),
        });
    }
    let mut entries = Entries::default();
    entries.reserve(sources.iter().map(|s| s.items.len()).sum());
    let mut links = Links::default();
    let created_owner = p.owner.unwrap_or_default();

    for source in sources {
        let target = if source.contents {
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
        let target_parent = if source.contents { target.clone() } else { parent(&target) };
        add_directory_chain(&mut entries, view, &target_parent, created_owner, p.now)?;
        let mut source_links: Vec<(String, String)> = Vec::new();
        // Taken from the back of a reversed list, which shrinks as entries grow: a huge
        // source's items and its entries are not both held whole.
        let mut items = source.items;
        items.reverse();
        while let Some(item) = items.pop() {
            if items.capacity() > 4096 && items.len() < items.capacity() / 2 {
                items.shrink_to_fit();
            }
            if item.rel.is_empty() && source.contents {
                // The target directory itself: created like a parent, or kept as it is.
                continue;
            }
            let path = if item.rel.is_empty() { target.clone() } else { join(&target, &item.rel) };
            let key = path.trim_start_matches('/').to_string();
            if key.is_empty() {
                continue;
            }
            add_directory_chain(&mut entries, view, &parent(&path), created_owner, p.now)?;
            let (uid, gid) = match p.owner {
                Some(o) => (o.uid, o.gid),
                None if source.keep_owner => (item.uid, item.gid),
                None => (0, 0),
            };
            let chmod = |mode: u32, is_dir: bool| match (p.chmod, source.chmod) {
                (Some(m), true) => m.apply(mode, is_dir),
                _ => mode,
            };
            let (kind, mode) = match item.kind {
                ItemKind::Dir => (EntryKind::Dir, chmod(item.mode, true)),
                ItemKind::File { source, size } => {
                    (EntryKind::File { source, size }, chmod(item.mode, false))
                }
                ItemKind::Symlink(target) => (EntryKind::Symlink { target }, 0o777),
                ItemKind::Hardlink(to) => {
                    source_links.push((key.clone(), join(&target, &to)));
                    (EntryKind::Hardlink { target: String::new() }, item.mode)
                }
                ItemKind::Special(kind) => (kind, item.mode),
            };
            if let Some(old) = links.group_of.remove(&key) {
                links.members[old].retain(|m| *m != key);
            }
            if matches!(kind, EntryKind::File { .. })
                && let Some(inode) = item.inode
            {
                let group = match links.by_inode.get(&inode) {
                    Some(g) => *g,
                    None => {
                        let g = links.new_group();
                        links.by_inode.insert(inode, g);
                        g
                    }
                };
                links.join(&key, group);
            }
            entries.insert(
                key,
                LayerEntry {
                    // Filled from the map's key at the end (one string per entry meanwhile).
                    path: String::new(),
                    kind,
                    mode,
                    uid,
                    gid,
                    mtime: item.mtime,
                    xattrs: item.xattrs,
                },
            );
        }
        // Hard links of this source (archives): join their target's group.
        for (link, to) in source_links {
            let to_key = to.trim_start_matches('/').to_string();
            let group = match links.group_of.get(&to_key) {
                Some(g) => *g,
                None => {
                    let is_linkable = entries.get(&to_key).is_some_and(|e| {
                        !matches!(e.kind, EntryKind::Dir | EntryKind::Hardlink { .. })
                    });
                    if !is_linkable {
                        return Err(CopyError::BadHardlink {
                            source_path: source.written.clone(),
                            link: link.clone(),
                            target: to_key,
                        });
                    }
                    let g = links.new_group();
                    links.join(&to_key, g);
                    g
                }
            };
            links.join(&link, group);
        }
    }
    resolve_links(&mut entries, links)?;
    Ok(entries.into_vec())
}

/// Turns each group of paths that are one file into one entry holding the content (the
/// first in layer order) and hard links to it.
fn resolve_links(entries: &mut Entries, links: Links) -> Result<(), CopyError> {
    for mut members in links.members {
        members.retain(|m| entries.contains(m));
        if members.len() < 2 {
            continue;
        }
        members.sort_by(|a, b| a.split('/').cmp(b.split('/')));
        members.dedup();
        // The content: the member that is not a link.
        let Some(holder) = members
            .iter()
            .find(|m| entries.get(m).is_some_and(|e| !matches!(e.kind, EntryKind::Hardlink { .. })))
            .cloned()
        else {
            continue;
        };
        let first = members[0].clone();
        if holder != first {
            let content = entries.get(&holder).map(|e| e.kind.clone());
            if let (Some(kind), Some(e)) = (content, entries.get_mut(&first)) {
                e.kind = kind;
            }
        }
        for m in &members[1..] {
            if let Some(e) = entries.get_mut(m) {
                e.kind = EntryKind::Hardlink { target: first.clone() };
            }
        }
    }
    // A link whose target was replaced by a later source has nothing left to point to.
    if let Some((path, _)) = entries.index.iter().find(|(_, slot)| {
        matches!(&entries.slots[**slot].kind, EntryKind::Hardlink { target } if target.is_empty())
    }) {
        return Err(CopyError::BadHardlink {
            source_path: String::new(),
            link: path.clone(),
            target: "a file replaced by a later source".into(),
        });
    }
    Ok(())
}

/// `dir/name`.
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') { format!("{dir}{name}") } else { format!("{dir}/{name}") }
}

/// The parent of an absolute path (`/` for `/x`).
pub(crate) fn parent(path: &str) -> String {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) | None => "/".to_string(),
        Some((p, _)) => p.to_string(),
    }
}

/// The last segment of a path.
pub(crate) fn base_name(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}
