//! Merging the headers of stacked layers into one plan: which member of which layer each path
//! of the result comes from, with OCI semantics — a later member replaces an earlier one, a
//! directory over a directory merges, a whiteout (`.wh.x`) deletes what lower layers have at and
//! below `x`, an opaque marker hides what lower layers have below its directory, and neither
//! touches members of its own layer.
//!
//! Two results are planned from the same merge: a **root filesystem** (whiteouts and opaque
//! markers dropped: nothing is below) and a **squashed layer** (they are kept, to act on the
//! layers below the squashed ones). Hard links whose target was replaced or deleted later keep
//! the content they linked to: the first surviving link becomes the file and the others link to
//! it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::layer::{HeaderKind, LayerHeader};

/// A member: its layer (bottom is 0) and its index among that layer's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Pos {
    pub layer: usize,
    pub member: usize,
}

/// What the merge keeps at one path.
#[derive(Debug, Clone, Default)]
struct Slot {
    /// The member giving this path's kind and metadata; `None` for a directory only implied.
    entry: Option<Pos>,
    /// The entry is a directory (or the slot is an implied directory).
    dir: bool,
    /// For hard links: the member whose content they share.
    link_source: Option<Pos>,
    /// (squash) The path is deleted from the layers below.
    whiteout: Option<Pos>,
    /// (squash) The directory hides the layers below.
    opaque: Option<Pos>,
}

/// One member to write while streaming a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Emit {
    /// The member name to write it under.
    pub path: PathBuf,
    /// Write a hard link to this path instead of the member itself.
    pub link_to: Option<PathBuf>,
}

/// What to write, in order: `dirs` first (from headers already read), then while streaming the
/// layers bottom up, `emits` at their members.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Directories (and, for a squash, whiteouts and opaque markers) in path order, each with
    /// the member whose header to write (`None`: an implied directory, written 0755 root).
    pub dirs: Vec<(PathBuf, DirItem)>,
    /// Per member, what to write while streaming.
    pub emits: BTreeMap<Pos, Vec<Emit>>,
}

/// A header-only item of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DirItem {
    /// A directory from this member (or implied).
    Dir(Option<Pos>),
    /// An opaque marker for the directory (squash only).
    Opaque(Pos),
    /// A whiteout (squash only).
    Whiteout(Pos),
}

/// Whether whiteouts and opaque markers are kept in the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The result is a whole filesystem.
    Rootfs,
    /// The result is one layer applied on what lies below the merged layers.
    Squash,
}

/// Paths strictly below `p` in `slots` (or all of them for the root).
fn below<'a>(slots: &'a BTreeMap<PathBuf, Slot>, p: &'a Path) -> impl Iterator<Item = &'a PathBuf> {
    use std::ops::Bound;
    slots
        .range::<Path, _>((Bound::Excluded(p), Bound::Unbounded))
        .map(|(k, _)| k)
        .take_while(move |k| k.starts_with(p))
}

/// Whether a slot holds anything that came from a layer before `layer`.
fn from_lower(s: &Slot, layer: usize) -> bool {
    let lower = |p: Option<Pos>| p.is_some_and(|p| p.layer < layer);
    lower(s.entry) || lower(s.whiteout) || lower(s.opaque) || (s.entry.is_none() && s.dir)
}

/// Merges `layers` (each a list of headers in stream order, bottom layer first).
pub(crate) fn plan(layers: &[Vec<LayerHeader>], mode: Mode) -> Result<Plan> {
    let mut slots: BTreeMap<PathBuf, Slot> = BTreeMap::new();
    for (li, members) in layers.iter().enumerate() {
        for (mi, h) in members.iter().enumerate() {
            apply(&mut slots, Pos { layer: li, member: mi }, h, mode)?;
        }
    }
    if mode == Mode::Rootfs {
        // Parents no layer declared (malformed layers): implied directories.
        let missing: Vec<PathBuf> = slots
            .keys()
            .flat_map(|k| k.ancestors().skip(1).filter(|a| !a.as_os_str().is_empty()))
            .filter(|a| !slots.contains_key(*a))
            .map(Path::to_path_buf)
            .collect();
        for a in missing {
            slots.insert(a, Slot { dir: true, ..Slot::default() });
        }
    }
    Ok(finish(slots, layers, mode))
}

/// Applies one member to the merge.
fn apply(slots: &mut BTreeMap<PathBuf, Slot>, pos: Pos, h: &LayerHeader, mode: Mode) -> Result<()> {
    let p = h.path.clone();
    let remove_lower_below = |slots: &mut BTreeMap<PathBuf, Slot>| {
        let gone: Vec<PathBuf> =
            below(slots, &p).filter(|k| from_lower(&slots[*k], pos.layer)).cloned().collect();
        for k in gone {
            slots.remove(&k);
        }
    };
    match &h.kind {
        HeaderKind::Whiteout => {
            remove_lower_below(slots);
            match slots.get(&p) {
                // An entry of this same layer: a whiteout only acts on the layers below.
                Some(s) if s.entry.is_some_and(|e| e.layer == pos.layer) => {}
                _ => {
                    slots.remove(&p);
                    if mode == Mode::Squash {
                        slots.insert(p, Slot { whiteout: Some(pos), ..Slot::default() });
                    }
                }
            }
        }
        HeaderKind::OpaqueDir => {
            remove_lower_below(slots);
            let slot = slots.entry(p).or_insert_with(|| Slot { dir: true, ..Slot::default() });
            if !slot.dir {
                // A marker in something that is not a directory: it is one now.
                *slot = Slot { dir: true, ..Slot::default() };
            }
            if mode == Mode::Squash {
                slot.opaque = Some(pos);
            }
        }
        kind => {
            // Ancestors that are not directories (or are deleted) become implied directories;
            // in a squash they hide what the layers below have there.
            for a in p.ancestors().skip(1).filter(|a| !a.as_os_str().is_empty()) {
                if let Some(s) = slots.get_mut(a)
                    && !s.dir
                {
                    *s = Slot { dir: true, ..Slot::default() };
                    if mode == Mode::Squash {
                        s.opaque = Some(pos);
                    }
                }
            }
            let is_dir = *kind == HeaderKind::Dir;
            let link_source = match kind {
                HeaderKind::Hardlink { target } => Some(link_source(slots, target, &p)?),
                _ => None,
            };
            let existing = slots.get(&p).cloned();
            if let Some(s) = slots.get_mut(&p)
                && is_dir
                && s.dir
            {
                // A directory over a directory: merged, the new metadata wins.
                s.entry = Some(pos);
                return Ok(());
            }
            // Anything else replaces what is there, and everything below it.
            let gone: Vec<PathBuf> = below(slots, &p).cloned().collect();
            for k in gone {
                slots.remove(&k);
            }
            // A directory over something deleted or replaced hides the layers below.
            let opaque = match &existing {
                Some(s) if mode == Mode::Squash && is_dir => Some(s.opaque.unwrap_or(pos)),
                _ => None,
            };
            slots.insert(
                p,
                Slot { entry: Some(pos), dir: is_dir, link_source, whiteout: None, opaque },
            );
        }
    }
    Ok(())
}

/// The member whose content a hard link to `target` shares (following links to links).
fn link_source(slots: &BTreeMap<PathBuf, Slot>, target: &Path, link: &Path) -> Result<Pos> {
    match slots.get(target) {
        Some(s) if !s.dir => match (s.link_source, s.entry) {
            (Some(src), _) | (None, Some(src)) => Ok(src),
            (None, None) => Err(dangling(link, target)),
        },
        _ => Err(dangling(link, target)),
    }
}

fn dangling(link: &Path, target: &Path) -> Error {
    Error::entry(
        link.to_string_lossy(),
        format!("hard link to {:?}, which is not a file of the layers below it", target),
    )
}

/// Turns the merged slots into what to write.
fn finish(slots: BTreeMap<PathBuf, Slot>, layers: &[Vec<LayerHeader>], mode: Mode) -> Plan {
    let mut plan = Plan::default();
    // Link groups whose source's own path no longer holds it: the first surviving link (in
    // writing order) carries the content, the others link to it.
    let mut anchors: HashMap<Pos, PathBuf> = HashMap::new();
    let mut links: Vec<(Pos, PathBuf, Pos)> = Vec::new();
    for (path, slot) in &slots {
        if slot.dir {
            plan.dirs.push((path.clone(), DirItem::Dir(slot.entry)));
            if let (Mode::Squash, Some(o)) = (mode, slot.opaque) {
                plan.dirs.push((path.clone(), DirItem::Opaque(o)));
            }
            continue;
        }
        if let Some(w) = slot.whiteout {
            plan.dirs.push((path.clone(), DirItem::Whiteout(w)));
            continue;
        }
        let Some(pos) = slot.entry else { continue };
        match slot.link_source {
            Some(src) => links.push((pos, path.clone(), src)),
            None => {
                plan.emits.entry(pos).or_default().push(Emit { path: path.clone(), link_to: None })
            }
        }
    }
    links.sort();
    for (pos, path, src) in links {
        let src_path = &layers[src.layer][src.member].path;
        let intact = slots.get(src_path).is_some_and(|s| s.entry == Some(src));
        let link_to = if intact {
            Some(src_path.clone())
        } else if let Some(anchor) = anchors.get(&src) {
            Some(anchor.clone())
        } else {
            anchors.insert(src, path.clone());
            plan.emits.entry(src).or_default().push(Emit { path: path.clone(), link_to: None });
            None
        };
        if let Some(target) = link_to {
            plan.emits.entry(pos).or_default().push(Emit { path, link_to: Some(target) });
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(path: &str, kind: HeaderKind) -> LayerHeader {
        LayerHeader {
            path: PathBuf::from(path),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Default::default(),
        }
    }
    fn dir(p: &str) -> LayerHeader {
        h(p, HeaderKind::Dir)
    }
    fn file(p: &str) -> LayerHeader {
        h(p, HeaderKind::File { size: 1 })
    }
    fn wh(p: &str) -> LayerHeader {
        h(p, HeaderKind::Whiteout)
    }
    fn opq(p: &str) -> LayerHeader {
        h(p, HeaderKind::OpaqueDir)
    }
    fn link(p: &str, t: &str) -> LayerHeader {
        h(p, HeaderKind::Hardlink { target: PathBuf::from(t) })
    }

    /// The plan as text: `D path@l.m`, `O path`, `W path`, then `path@l.m` / `path->target`.
    fn show(layers: &[Vec<LayerHeader>], mode: Mode) -> Vec<String> {
        let plan = plan(layers, mode).unwrap();
        let at =
            |p: Option<Pos>| p.map_or("-".to_string(), |p| format!("{}.{}", p.layer, p.member));
        let mut out: Vec<String> = plan
            .dirs
            .iter()
            .map(|(p, item)| match item {
                DirItem::Dir(pos) => format!("D {}@{}", p.display(), at(*pos)),
                DirItem::Opaque(_) => format!("O {}", p.display()),
                DirItem::Whiteout(_) => format!("W {}", p.display()),
            })
            .collect();
        for (pos, emits) in &plan.emits {
            for e in emits {
                out.push(match &e.link_to {
                    None => format!("{}@{}", e.path.display(), at(Some(*pos))),
                    Some(t) => format!("{}->{}", e.path.display(), t.display()),
                });
            }
        }
        out
    }

    #[test]
    fn later_members_win_and_directories_merge() {
        let layers =
            vec![vec![dir("a"), file("a/x"), file("a/y"), file("b")], vec![dir("a"), file("a/x")]];
        assert_eq!(show(&layers, Mode::Rootfs), ["D a@1.0", "a/y@0.2", "b@0.3", "a/x@1.1"]);
    }

    #[test]
    fn whiteouts_delete_below_and_are_kept_only_for_a_squash() {
        let layers = vec![
            vec![dir("a"), file("a/x"), dir("d"), file("d/k")],
            vec![dir("a"), wh("a/x"), wh("d")],
        ];
        assert_eq!(show(&layers, Mode::Rootfs), ["D a@1.0"]);
        // Squash of both onto nothing keeps the whiteouts (they act on what is below).
        assert_eq!(show(&layers, Mode::Squash), ["D a@1.0", "W a/x", "W d"]);
    }

    #[test]
    fn opaque_hides_lower_but_not_its_own_layer() {
        let layers = vec![
            vec![dir("o"), file("o/old"), dir("o/sub"), file("o/sub/deep")],
            vec![dir("o"), file("o/new"), opq("o")],
        ];
        assert_eq!(show(&layers, Mode::Rootfs), ["D o@1.0", "o/new@1.1"]);
        assert_eq!(show(&layers, Mode::Squash), ["D o@1.0", "O o", "o/new@1.1"]);
    }

    #[test]
    fn a_whiteout_does_not_delete_its_own_layer() {
        let layers = vec![vec![file("f")], vec![file("f"), wh("f")]];
        assert_eq!(show(&layers, Mode::Rootfs), ["f@1.0"]);
    }

    #[test]
    fn a_file_replacing_a_directory_drops_its_contents() {
        let layers = vec![vec![dir("a"), file("a/x")], vec![file("a")]];
        assert_eq!(show(&layers, Mode::Rootfs), ["a@1.0"]);
        // A directory re-created over a deletion hides the layers below when squashed.
        let layers = vec![vec![wh("d"), dir("d"), file("d/n")]];
        assert_eq!(show(&layers, Mode::Squash), ["D d@0.1", "O d", "d/n@0.2"]);
    }

    #[test]
    fn hard_links_keep_the_content_they_linked_to() {
        // Intact target: a plain link.
        let layers = vec![vec![file("a"), link("b", "a")]];
        assert_eq!(show(&layers, Mode::Rootfs), ["a@0.0", "b->a"]);
        // The target replaced above: the first link carries the old content, others link to it.
        let layers = vec![vec![file("a"), link("b", "a"), link("c", "a")], vec![file("a")]];
        assert_eq!(show(&layers, Mode::Rootfs), ["b@0.0", "c->b", "a@1.0"]);
        // The target deleted above.
        let layers = vec![vec![file("a"), link("b", "a")], vec![wh("a")]];
        assert_eq!(show(&layers, Mode::Rootfs), ["b@0.0"]);
        // A link to nothing is an error naming both.
        let err = plan(&[vec![link("b", "nope")]], Mode::Rootfs).unwrap_err();
        assert_eq!(
            err.to_string(),
            "layer entry \"b\": hard link to \"nope\", which is not a file of the layers below it"
        );
    }

    #[test]
    fn missing_parents_are_implied_for_a_rootfs() {
        let layers = vec![vec![file("x/y/z")]];
        assert_eq!(show(&layers, Mode::Rootfs), ["D x@-", "D x/y@-", "x/y/z@0.0"]);
        assert_eq!(show(&layers, Mode::Squash), ["x/y/z@0.0"]);
    }

    #[test]
    fn a_root_entry_and_root_opaque() {
        let layers = vec![vec![file("a"), dir("b")], vec![dir(""), opq(""), file("c")]];
        assert_eq!(show(&layers, Mode::Rootfs), ["D @1.0", "c@1.2"]);
    }
}
