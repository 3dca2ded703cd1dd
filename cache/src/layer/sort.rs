//! Entry validation and the canonical order of a layer: depth-first by path component, parents
//! before children, and inside a directory its opaque marker first, then its whiteouts, then the
//! other entries by name (byte order).

use std::collections::HashMap;

use crate::error::{Error, Result};

use super::{EntryKind, LayerEntry, WHITEOUT_PREFIX};

/// Checks `path` is relative, `/`-separated and clean (no empty, `.` or `..` components).
pub(crate) fn validate_path(path: &str) -> Result<()> {
    let reason = if path.is_empty() {
        "empty path"
    } else if path.starts_with('/') {
        "path must be relative (no leading '/')"
    } else if path.ends_with('/') {
        "path must not end with '/'"
    } else if path.contains('\0') {
        "path contains a NUL byte"
    } else if path.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        "path has an empty, '.' or '..' component"
    } else {
        return Ok(());
    };
    Err(Error::entry(path, reason))
}

/// Rank of an entry inside its parent directory: opaque marker, whiteouts, then the rest.
/// The key is the path's components, each with its rank; computed on the fly (nothing
/// allocated per entry, which matters for layers of a million files).
fn sort_key(e: &LayerEntry) -> impl Iterator<Item = (u8, &str)> {
    let count = e.path.split('/').count();
    let last_rank = if matches!(e.kind, EntryKind::Whiteout) { 1 } else { 2 };
    let marker = matches!(e.kind, EntryKind::OpaqueDir).then_some((0, ""));
    e.path
        .split('/')
        .enumerate()
        .map(move |(i, c)| (if i + 1 == count { last_rank } else { 2 }, c))
        .chain(marker)
}

/// The canonical order of two entries.
fn canonical(a: &LayerEntry, b: &LayerEntry) -> std::cmp::Ordering {
    sort_key(a).cmp(sort_key(b))
}

/// Sorts `entries` into canonical order in place (no validation).
pub(crate) fn sort_entries(entries: &mut [LayerEntry]) {
    entries.sort_by(canonical);
}

/// Validates `entries` and returns them in canonical order.
pub(crate) fn sorted_entries(entries: &[LayerEntry]) -> Result<Vec<&LayerEntry>> {
    let mut keyed = Vec::with_capacity(entries.len());
    for e in entries {
        validate_path(&e.path)?;
        if e.mode & !0o7777 != 0 {
            return Err(Error::entry(
                &e.path,
                format!("mode {:#o} has bits beyond 0o7777", e.mode),
            ));
        }
        let base = e.path.rsplit('/').next().unwrap_or(&e.path);
        if base.starts_with(WHITEOUT_PREFIX) {
            return Err(Error::entry(
                &e.path,
                "names starting with \".wh.\" are reserved for whiteouts in OCI layers",
            ));
        }
        keyed.push(e);
    }
    keyed.sort_by(|a, b| canonical(a, b));

    // Position of each path in the order, for duplicate and hardlink checks.
    let mut seen: HashMap<&str, &LayerEntry> = HashMap::with_capacity(keyed.len());
    for e in &keyed {
        if let Some(prev) = seen.get(e.path.as_str()) {
            let pair_ok = matches!(
                (&prev.kind, &e.kind),
                (EntryKind::Dir, EntryKind::OpaqueDir) | (EntryKind::OpaqueDir, EntryKind::Dir)
            );
            if !pair_ok {
                return Err(Error::entry(&e.path, "duplicate path"));
            }
        }
        if let EntryKind::Hardlink { target } = &e.kind {
            validate_path(target)?;
            match seen.get(target.as_str()).map(|t| &t.kind) {
                Some(
                    EntryKind::File { .. }
                    | EntryKind::Symlink { .. }
                    | EntryKind::CharDevice { .. }
                    | EntryKind::BlockDevice { .. }
                    | EntryKind::Fifo,
                ) => {}
                Some(_) => {
                    return Err(Error::entry(
                        &e.path,
                        format!("hard link target {target:?} is not a file"),
                    ));
                }
                None => {
                    return Err(Error::entry(
                        &e.path,
                        format!("hard link target {target:?} is not an earlier entry of the layer"),
                    ));
                }
            }
        }
        seen.insert(&e.path, e);
    }
    Ok(keyed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::FileSource;
    use std::collections::BTreeMap;

    fn entry(path: &str, kind: EntryKind) -> LayerEntry {
        LayerEntry {
            path: path.into(),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: BTreeMap::new(),
        }
    }

    fn file(path: &str) -> LayerEntry {
        entry(path, EntryKind::File { source: FileSource::Bytes(vec![]), size: 0 })
    }

    #[test]
    fn order_is_depth_first_with_markers_first() {
        let entries = vec![
            file("a-c"),
            file("a/z"),
            entry("a/b", EntryKind::Whiteout),
            entry("a", EntryKind::OpaqueDir),
            entry("a", EntryKind::Dir),
            file("a/a"),
            file("B"),
        ];
        let order: Vec<String> = sorted_entries(&entries)
            .unwrap()
            .iter()
            .map(|e| format!("{}:{:?}", e.path, std::mem::discriminant(&e.kind)))
            .collect();
        let names: Vec<&str> = order.iter().map(|s| s.split(':').next().unwrap()).collect();
        assert_eq!(names, ["B", "a", "a", "a/b", "a/a", "a/z", "a-c"]);
        let sorted = sorted_entries(&entries).unwrap();
        assert_eq!(sorted[1].kind, EntryKind::Dir);
        assert_eq!(sorted[2].kind, EntryKind::OpaqueDir);
        assert_eq!(sorted[3].kind, EntryKind::Whiteout);
    }

    #[test]
    fn rejects_bad_entries() {
        let cases: Vec<(Vec<LayerEntry>, &str)> = vec![
            (vec![file("/abs")], "layer entry \"/abs\": path must be relative (no leading '/')"),
            (vec![file("./a")], "layer entry \"./a\": path has an empty, '.' or '..' component"),
            (
                vec![file("a/../b")],
                "layer entry \"a/../b\": path has an empty, '.' or '..' component",
            ),
            (vec![file("a//b")], "layer entry \"a//b\": path has an empty, '.' or '..' component"),
            (vec![file("a/")], "layer entry \"a/\": path must not end with '/'"),
            (vec![file("")], "layer entry \"\": empty path"),
            (vec![file("a"), file("a")], "layer entry \"a\": duplicate path"),
            (
                vec![file("d/.wh.x")],
                "layer entry \"d/.wh.x\": names starting with \".wh.\" are reserved for whiteouts in OCI layers",
            ),
            (
                vec![file("b"), entry("a", EntryKind::Hardlink { target: "b".into() })],
                "layer entry \"a\": hard link target \"b\" is not an earlier entry of the layer",
            ),
            (
                vec![
                    entry("d", EntryKind::Dir),
                    entry("e", EntryKind::Hardlink { target: "d".into() }),
                ],
                "layer entry \"e\": hard link target \"d\" is not a file",
            ),
            (
                vec![LayerEntry { mode: 0o100644, ..file("m") }],
                "layer entry \"m\": mode 0o100644 has bits beyond 0o7777",
            ),
        ];
        for (entries, msg) in cases {
            assert_eq!(sorted_entries(&entries).unwrap_err().to_string(), msg);
        }
    }
}
