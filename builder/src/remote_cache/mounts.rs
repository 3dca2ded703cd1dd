//! Cache mount contents (`RUN --mount=type=cache`) as archives: written from the mount's
//! directory in the kiln root on export, extracted into a new one on import.

use std::path::{Path, PathBuf};

use kiln_cache::blob::BlobStore;
use kiln_cache::digest::Digest;
use kiln_cache::index::LayerRef;
use kiln_cache::layer::{Compression, EntryKind, LayerOptions, entries_from_dir, write_layer};
use kiln_cache::snapshot::{ExtractOptions, extract_layer};
use kiln_frontend::graph::{BuildGraph, MountSource, Op, RunMount};

use super::format::MountEntry;

/// The directory holding cache mount `id` in the kiln root `root` (what `RUN` mounts).
pub(crate) fn mount_dir(root: &Path, id: &str) -> PathBuf {
    let name = Digest::of_bytes(id.as_bytes()).hex();
    root.join("cache/mounts").join(&name[..32])
}

/// The ids of the cache mounts the graph's `RUN`s use, each once, in order.
pub(super) fn mount_ids(graph: &BuildGraph) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for step in graph.stages.iter().flat_map(|s| &s.steps) {
        let Some(Op::Run(run)) = &step.op else { continue };
        for m in &run.mounts {
            if let RunMount::Cache { id, from: MountSource::Scratch, .. } = m
                && !ids.contains(id)
            {
                ids.push(id.clone());
            }
        }
    }
    ids
}

/// What exporting one cache mount gave.
pub(super) enum Exported {
    /// The archive was written.
    Written(MountEntry),
    /// The directory does not exist in this root (no RUN used it here yet).
    Absent,
    /// It holds more than the limit: (its size).
    TooBig(u64),
}

/// Writes the contents of cache mount `id` as an archive into `blobs`, unless they are over
/// `max_size` bytes.
pub(super) fn export(
    root: &Path,
    blobs: &BlobStore,
    id: &str,
    compression: Compression,
    max_size: u64,
) -> Result<Exported, String> {
    let dir = mount_dir(root, id);
    if !dir.is_dir() {
        return Ok(Exported::Absent);
    }
    let entries = entries_from_dir(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let content_size: u64 = entries
        .iter()
        .map(|e| match e.kind {
            EntryKind::File { size, .. } => size,
            _ => 0,
        })
        .sum();
    if content_size > max_size {
        return Ok(Exported::TooBig(content_size));
    }
    let options = LayerOptions { compression, clamp_mtime: None };
    let info = write_layer(blobs, &entries, &options)
        .map_err(|e| format!("archiving {}: {e}", dir.display()))?;
    let layer = LayerRef {
        digest: info.digest,
        diff_id: info.diff_id,
        size: info.size,
        media_type: info.media_type,
    };
    Ok(Exported::Written(MountEntry { id: id.to_string(), layer, content_size }))
}

/// Extracts the archive of `entry` (already in `blobs`) into the empty directory `dest`; on
/// failure `dest` is emptied again.
pub(super) fn restore(blobs: &BlobStore, entry: &MountEntry, dest: &Path) -> Result<(), String> {
    let result =
        blobs.open_verified(&entry.layer.digest).map_err(|e| e.to_string()).and_then(|reader| {
            extract_layer(
                reader,
                &entry.layer.media_type,
                dest,
                Some(&entry.layer.diff_id),
                &ExtractOptions::default(),
            )
            .map_err(|e| e.to_string())
        });
    if let Err(e) = result {
        empty_dir(dest);
        return Err(e);
    }
    Ok(())
}

/// Removes everything inside `dir` (best effort), keeping `dir` itself.
fn empty_dir(dir: &Path) {
    let Ok(list) = std::fs::read_dir(dir) else { return };
    for entry in list.flatten() {
        let path = entry.path();
        let removed = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
        let _ = removed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_and_restores_a_mount_within_its_limit() {
        let root = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(root.path()).unwrap();
        let gz = Compression::Gzip { level: 6 };
        assert!(matches!(export(root.path(), &blobs, "/cache", gz, 10).unwrap(), Exported::Absent));
        let dir = mount_dir(root.path(), "/cache");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/a"), "hello").unwrap();
        std::fs::write(dir.join("b"), "12345678").unwrap();
        std::os::unix::fs::symlink("sub/a", dir.join("link")).unwrap();
        match export(root.path(), &blobs, "/cache", gz, 12).unwrap() {
            Exported::TooBig(n) => assert_eq!(n, 13),
            _ => panic!("13 bytes are over a 12-byte limit"),
        }
        let Exported::Written(entry) = export(root.path(), &blobs, "/cache", gz, 13).unwrap()
        else {
            panic!("13 bytes fit a 13-byte limit")
        };
        assert_eq!((entry.id.as_str(), entry.content_size), ("/cache", 13));
        // The same contents give the same archive.
        let Exported::Written(again) = export(root.path(), &blobs, "/cache", gz, 13).unwrap()
        else {
            panic!()
        };
        assert_eq!(again.layer, entry.layer);

        let dest = tempfile::tempdir().unwrap();
        restore(&blobs, &entry, dest.path()).unwrap();
        assert_eq!(std::fs::read_to_string(dest.path().join("sub/a")).unwrap(), "hello");
        assert_eq!(std::fs::read_to_string(dest.path().join("b")).unwrap(), "12345678");
        assert_eq!(std::fs::read_link(dest.path().join("link")).unwrap(), Path::new("sub/a"));

        // A wrong diff_id is refused and leaves the directory empty.
        let mut bad = entry.clone();
        bad.layer.diff_id = Digest::of_bytes(b"other");
        let dest = tempfile::tempdir().unwrap();
        let err = restore(&blobs, &bad, dest.path()).unwrap_err();
        assert!(err.contains("diff_id"), "{err}");
        assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);
    }

    #[test]
    fn mount_dir_hashes_the_id() {
        let d = mount_dir(Path::new("/r"), "/root/.cache");
        let hex = Digest::of_bytes(b"/root/.cache").hex();
        assert_eq!(d, Path::new("/r/cache/mounts").join(&hex[..32]));
    }
}
