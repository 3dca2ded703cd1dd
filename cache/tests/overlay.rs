//! Real overlayfs: an upper directory read back as layer entries, and snapshots used as lower
//! directories. Needs root (mount); prints why and passes trivially otherwise.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{entry, file, is_root, tree};
use kiln_cache::snapshot::ExtractOptions;
use kiln_cache::{
    BlobStore, EntryKind, FileSource, LayerDesc, LayerEntry, LayerOptions, Snapshots,
    entries_from_dir, write_layer,
};

/// An overlay mount, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn overlay(
        target: &Path,
        lower: &[&Path],
        upper: Option<(&Path, &Path)>,
        userxattr: bool,
    ) -> Mount {
        let lowers: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
        let mut opts = format!("lowerdir={}", lowers.join(":"));
        if let Some((upper, work)) = upper {
            opts += &format!(",upperdir={},workdir={}", upper.display(), work.display());
        }
        if userxattr {
            opts += ",userxattr";
        }
        let out = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(target)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount {opts}: {}", String::from_utf8_lossy(&out.stderr));
        Mount(target.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("SKIPPED {test}: needs root to mount overlayfs (CI runs as root)");
    true
}

fn summary(entries: &[LayerEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            let kind = match &e.kind {
                EntryKind::Dir => "dir".to_string(),
                EntryKind::File { size, source: FileSource::Path(_) } => format!("file {size}"),
                EntryKind::File { .. } => "file (bytes)".to_string(),
                EntryKind::Symlink { target } => format!("symlink {target}"),
                EntryKind::Hardlink { target } => format!("hardlink {target}"),
                EntryKind::Whiteout => "whiteout".to_string(),
                EntryKind::OpaqueDir => "opaque".to_string(),
                other => format!("{other:?}"),
            };
            format!("{} {kind}", e.path)
        })
        .collect()
}

#[test]
fn upper_dir_becomes_layer_entries() {
    if skip_unless_root("upper_dir_becomes_layer_entries") {
        return;
    }
    for userxattr in [false, true] {
        let t = tempfile::tempdir().unwrap();
        let [lower, upper, work, merged] = ["lower", "upper", "work", "merged"].map(|n| {
            let p = t.path().join(n);
            fs::create_dir(&p).unwrap();
            p
        });
        fs::write(lower.join("gone"), b"old").unwrap();
        fs::create_dir_all(lower.join("d/sub")).unwrap();
        fs::write(lower.join("d/old"), b"old").unwrap();
        fs::write(lower.join("keep"), b"keep").unwrap();
        fs::create_dir(lower.join("k")).unwrap();
        fs::write(lower.join("k/deleted"), b"x").unwrap();
        {
            let _m = Mount::overlay(&merged, &[&lower], Some((&upper, &work)), userxattr);
            fs::remove_file(merged.join("gone")).unwrap();
            fs::remove_dir_all(merged.join("d")).unwrap();
            fs::create_dir(merged.join("d")).unwrap();
            fs::write(merged.join("d/new"), b"new!").unwrap();
            fs::write(merged.join("newfile"), b"12345").unwrap();
            fs::hard_link(merged.join("newfile"), merged.join("hl")).unwrap();
            std::os::unix::fs::symlink("newfile", merged.join("sym")).unwrap();
            fs::remove_file(merged.join("k/deleted")).unwrap();
            rustix::fs::setxattr(
                merged.join("newfile"),
                "user.note",
                b"hi",
                rustix::fs::XattrFlags::empty(),
            )
            .unwrap();
        }
        let entries = entries_from_dir(&upper).unwrap();
        assert_eq!(
            summary(&entries),
            [
                "gone whiteout",
                "d dir",
                "d opaque",
                "d/new file 4",
                "hl file 5",
                "k dir",
                "k/deleted whiteout",
                "newfile hardlink hl",
                "sym symlink newfile",
            ],
            "userxattr={userxattr}"
        );
        let hl = entries.iter().find(|e| e.path == "hl").unwrap();
        assert_eq!(hl.xattrs.get("user.note").map(Vec::as_slice), Some(&b"hi"[..]));
        assert!(
            entries.iter().all(|e| e.xattrs.keys().all(|k| !k.contains("overlay"))),
            "overlay's own xattrs are dropped"
        );

        // The diff written as a layer, extracted as a snapshot, stacked on the lower: same view.
        let root = t.path().join("kiln");
        let blobs = BlobStore::open(&root).unwrap();
        let info = write_layer(&blobs, &entries, &LayerOptions::default()).unwrap();
        let snaps = Snapshots::open(&root).unwrap();
        let layer =
            LayerDesc { digest: info.digest, diff_id: info.diff_id, media_type: info.media_type };
        let snap = snaps.ensure(&blobs, &layer).unwrap();
        let view = t.path().join("view");
        fs::create_dir(&view).unwrap();
        let _m = Mount::overlay(&view, &[&snap, &lower], None, true);
        assert_eq!(
            tree(&view),
            ["d", "d/new", "hl", "k", "keep", "newfile", "sym"],
            "userxattr={userxattr}"
        );
        assert_eq!(fs::read(view.join("d/new")).unwrap(), b"new!");
    }
}

fn base_layer() -> Vec<LayerEntry> {
    vec![
        entry("etc", EntryKind::Dir),
        file("etc/a", b"a"),
        file("etc/b", b"b"),
        entry("opt", EntryKind::Dir),
        file("opt/x", b"x"),
        file("top", b"t"),
    ]
}

fn change_layer() -> Vec<LayerEntry> {
    vec![
        entry("etc/a", EntryKind::Whiteout),
        entry("opt", EntryKind::Dir),
        entry("opt", EntryKind::OpaqueDir),
        file("opt/y", b"y"),
        entry("top", EntryKind::Whiteout),
    ]
}

#[test]
fn snapshots_work_as_overlay_lower_dirs() {
    if skip_unless_root("snapshots_work_as_overlay_lower_dirs") {
        return;
    }
    for xattr_whiteouts in [false, true] {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("kiln");
        let blobs = BlobStore::open(&root).unwrap();
        let snaps =
            Snapshots::open(&root).unwrap().with_options(ExtractOptions { xattr_whiteouts });
        let mut dirs = Vec::new();
        for entries in [base_layer(), change_layer()] {
            let info = write_layer(&blobs, &entries, &LayerOptions::default()).unwrap();
            let layer = LayerDesc {
                digest: info.digest,
                diff_id: info.diff_id,
                media_type: info.media_type,
            };
            dirs.push(snaps.ensure(&blobs, &layer).unwrap());
        }
        let merged = t.path().join("merged");
        fs::create_dir(&merged).unwrap();
        let _m = Mount::overlay(&merged, &[&dirs[1], &dirs[0]], None, true);
        assert_eq!(
            tree(&merged),
            ["etc", "etc/b", "opt", "opt/y"],
            "xattr_whiteouts={xattr_whiteouts}"
        );
    }
}
