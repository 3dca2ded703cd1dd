//! Tests of flattening and squashing, with layers written by kiln's layer writer.

use std::collections::BTreeMap;
use std::io::Read;

use super::*;
use crate::layer::{Compression, EntryKind, FileSource, LayerEntry, write_layer};

fn entry(path: &str, kind: EntryKind) -> LayerEntry {
    LayerEntry {
        path: path.into(),
        kind,
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 1000,
        xattrs: BTreeMap::new(),
    }
}
fn dir(path: &str) -> LayerEntry {
    LayerEntry { mode: 0o755, ..entry(path, EntryKind::Dir) }
}
fn file(path: &str, data: &str) -> LayerEntry {
    let bytes = data.as_bytes().to_vec();
    entry(path, EntryKind::File { size: bytes.len() as u64, source: FileSource::Bytes(bytes) })
}
fn wh(path: &str) -> LayerEntry {
    entry(path, EntryKind::Whiteout)
}
fn opaque(path: &str) -> LayerEntry {
    entry(path, EntryKind::OpaqueDir)
}
fn hard(path: &str, target: &str) -> LayerEntry {
    entry(path, EntryKind::Hardlink { target: target.into() })
}
fn sym(path: &str, target: &str) -> LayerEntry {
    LayerEntry { mode: 0o777, ..entry(path, EntryKind::Symlink { target: target.into() }) }
}

fn store() -> (tempfile::TempDir, BlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(dir.path()).unwrap();
    (dir, blobs)
}

fn layer(blobs: &BlobStore, entries: &[LayerEntry], c: Compression) -> LayerDesc {
    let info =
        write_layer(blobs, entries, &LayerOptions { compression: c, clamp_mtime: None }).unwrap();
    LayerDesc { digest: info.digest, diff_id: info.diff_id, media_type: info.media_type }
}

/// A tar as `name → description` (kind, mode, owner, mtime, content or link target).
fn listing(tar_bytes: &[u8]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut ar = tar::Archive::new(tar_bytes);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let what = match h.entry_type() {
            tar::EntryType::Directory => "dir".to_string(),
            tar::EntryType::Symlink => format!("sym {}", e.link_name().unwrap().unwrap().display()),
            tar::EntryType::Link => format!("link {}", e.link_name().unwrap().unwrap().display()),
            _ => {
                let mut s = String::new();
                e.read_to_string(&mut s).unwrap();
                format!("file {s:?}")
            }
        };
        let desc = format!(
            "{what} {:o} {}:{} @{}",
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mtime().unwrap()
        );
        assert!(out.insert(name.clone(), desc).is_none(), "{name} twice");
    }
    out
}

fn flatten(blobs: &BlobStore, layers: &[LayerDesc], opts: MemberOptions) -> Vec<u8> {
    let mut out = Vec::new();
    write_rootfs_tar(blobs, layers, &mut out, opts).unwrap();
    out
}

/// A stack exercising replacement, whiteouts, opaque directories and hard links.
fn stack(blobs: &BlobStore) -> Vec<LayerDesc> {
    let base = layer(
        blobs,
        &[
            dir("etc"),
            file("etc/a", "a0"),
            file("etc/b", "b0"),
            hard("etc/a-link", "etc/a"),
            dir("usr"),
            dir("usr/lib"),
            file("usr/lib/old", "old"),
            dir("usr/lib/sub"),
            file("usr/lib/sub/deep", "deep"),
            sym("lib", "usr/lib"),
            dir("gone"),
            file("gone/x", "x"),
        ],
        Compression::Gzip { level: 6 },
    );
    let l1 = layer(
        blobs,
        &[
            dir("etc"),
            file("etc/a", "a1"),
            wh("etc/b"),
            dir("usr/lib"),
            opaque("usr/lib"),
            file("usr/lib/new", "new"),
            wh("gone"),
            dir("tmp"),
        ],
        Compression::Zstd { level: 3 },
    );
    let l2 = layer(
        blobs,
        &[dir("tmp"), file("tmp/t", "t"), wh("tmp/none"), file("etc/b", "b2")],
        Compression::None,
    );
    vec![base, l1, l2]
}

fn expected_root() -> BTreeMap<String, String> {
    [
        ("etc/", "dir 755 0:0 @1000"),
        ("etc/a", "file \"a1\" 644 0:0 @1000"),
        // The link keeps the content it had: the old `etc/a`.
        ("etc/a-link", "file \"a0\" 644 0:0 @1000"),
        ("etc/b", "file \"b2\" 644 0:0 @1000"),
        ("lib", "sym usr/lib 777 0:0 @1000"),
        ("tmp/", "dir 755 0:0 @1000"),
        ("tmp/t", "file \"t\" 644 0:0 @1000"),
        ("usr/", "dir 755 0:0 @1000"),
        ("usr/lib/", "dir 755 0:0 @1000"),
        ("usr/lib/new", "file \"new\" 644 0:0 @1000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[test]
fn the_root_filesystem_applies_every_layer() {
    let (_d, blobs) = store();
    let layers = stack(&blobs);
    let tar = flatten(&blobs, &layers, MemberOptions::default());
    assert_eq!(listing(&tar), expected_root());
    // Files in layer order, then directories, deepest first (so GNU tar, which sets a
    // directory's mtime when it moves past it, keeps it).
    let names: Vec<String> = tar::Archive::new(&tar[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names[names.len() - 4..], ["usr/lib/", "usr/", "tmp/", "etc/"]);
}

#[test]
fn mtimes_and_owners_can_be_set() {
    let (_d, blobs) = store();
    let layers = stack(&blobs);
    let opts = MemberOptions { mtime: MtimeRule::Set(5), owner: Some((1000, 1001)) };
    let got = listing(&flatten(&blobs, &layers, opts));
    assert_eq!(got["etc/a"], "file \"a1\" 644 1000:1001 @5");
    assert_eq!(got["usr/"], "dir 755 1000:1001 @5");
}

#[test]
fn a_squashed_layer_gives_the_same_root_filesystem() {
    let (_d, blobs) = store();
    let layers = stack(&blobs);
    let squashed = squash_layers(&blobs, &layers[1..], &LayerOptions::default()).unwrap();
    let squashed = LayerDesc {
        digest: squashed.digest,
        diff_id: squashed.diff_id,
        media_type: squashed.media_type,
    };
    let tar = flatten(&blobs, &[layers[0].clone(), squashed.clone()], MemberOptions::default());
    assert_eq!(listing(&tar), expected_root());
    // The squashed layer itself keeps the whiteouts and the opaque marker for the base.
    let mut raw = Vec::new();
    crate::layer::compression::Decoder::new(
        blobs.open_verified(&squashed.digest).unwrap(),
        crate::layer::compression::DecodeAs::Gzip,
    )
    .unwrap()
    .read_to_end(&mut raw)
    .unwrap();
    let names: Vec<String> = listing(&raw).into_keys().collect();
    assert_eq!(
        names,
        [
            ".wh.gone",
            "etc/",
            "etc/a",
            "etc/b",
            "tmp/",
            "tmp/.wh.none",
            "tmp/t",
            "usr/lib/",
            "usr/lib/.wh..wh..opq",
            "usr/lib/new"
        ]
    );
    // Squashing is deterministic.
    let again = squash_layers(&blobs, &layers[1..], &LayerOptions::default()).unwrap();
    assert_eq!(again.digest, squashed.digest);
}

#[test]
fn a_directory_gets_the_files_and_refuses_a_non_empty_destination() {
    let (d, blobs) = store();
    let layers = stack(&blobs);
    let dest = d.path().join("out/rootfs");
    let report = write_rootfs_dir(&blobs, &layers, &dest, MemberOptions::default()).unwrap();
    assert_eq!(report.skipped_devices, 0);
    assert_eq!(fs::read_to_string(dest.join("etc/a")).unwrap(), "a1");
    assert_eq!(fs::read_to_string(dest.join("etc/a-link")).unwrap(), "a0");
    assert_eq!(fs::read_link(dest.join("lib")).unwrap(), Path::new("usr/lib"));
    assert!(!dest.join("gone").exists());
    assert!(!dest.join("usr/lib/old").exists());
    let err = write_rootfs_dir(&blobs, &layers, &dest, MemberOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} exists and is not an empty directory; remove it or choose another destination",
            dest.display()
        )
    );
    // Nothing was left beside it.
    let names: Vec<_> =
        fs::read_dir(d.path().join("out")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["rootfs"]);
}

#[test]
fn a_corrupt_layer_fails_and_leaves_no_directory() {
    let (d, blobs) = store();
    let mut layers = stack(&blobs);
    layers[1].diff_id = crate::digest::Digest::of_bytes(b"not it");
    let dest = d.path().join("out");
    let err = write_rootfs_dir(&blobs, &layers, &dest, MemberOptions::default()).unwrap_err();
    assert!(err.to_string().starts_with("digest mismatch for diff_id of layer"), "{err}");
    assert!(!dest.exists());
    let leftovers: Vec<_> = fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".kiln-rootfs-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
