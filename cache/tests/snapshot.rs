//! Snapshots: extraction into overlay format, verification, and containment of hostile tars.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use common::{entry, file, is_root, tree};
use kiln_cache::layer::MEDIA_TYPE_TAR;
use kiln_cache::snapshot::{ExtractOptions, running_as_real_root};
use kiln_cache::{
    BlobStore, Compression, Digest, EntryKind, Error, LayerDesc, LayerEntry, LayerOptions,
    Snapshots, write_layer,
};
use tar::EntryType;

const T0: i64 = 1_700_000_000;

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    rustix::fs::lgetxattr(path, name, &mut buf[..]).ok().map(|n| buf[..n].to_vec())
}

fn sample() -> Vec<LayerEntry> {
    let mut xattrs = BTreeMap::new();
    xattrs.insert("user.kiln".to_string(), b"v1".to_vec());
    xattrs.insert("user.overlay.redirect".to_string(), b"/evil".to_vec());
    vec![
        LayerEntry { uid: 1000, gid: 1000, mode: 0o750, ..entry("app", EntryKind::Dir) },
        LayerEntry { mode: 0o4755, xattrs, ..file("app/run", b"#!/bin/sh\n") },
        LayerEntry { uid: 1000, gid: 1000, ..file("app/data.txt", b"hello") },
        LayerEntry {
            mode: 0o777,
            ..entry("app/link", EntryKind::Symlink { target: "/etc/passwd".into() })
        },
        entry("app/hard", EntryKind::Hardlink { target: "app/data.txt".into() }),
        entry("app/pipe", EntryKind::Fifo),
        entry("app/gone", EntryKind::Whiteout),
        LayerEntry {
            mode: 0o666,
            ..entry("dev/null", EntryKind::CharDevice { major: 1, minor: 3 })
        },
        entry("etc", EntryKind::Dir),
        entry("etc", EntryKind::OpaqueDir),
        entry("etc/removed", EntryKind::Whiteout),
        LayerEntry { mode: 0o555, ..entry("ro", EntryKind::Dir) },
        file("ro/inside", b"x"),
    ]
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    blobs: BlobStore,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("kiln");
    let blobs = BlobStore::open(&root).unwrap();
    Fixture { _dir: dir, root, blobs }
}

fn desc_of(blobs: &BlobStore, entries: &[LayerEntry]) -> LayerDesc {
    let info = write_layer(blobs, entries, &LayerOptions::default()).unwrap();
    LayerDesc { digest: info.digest, diff_id: info.diff_id, media_type: info.media_type }
}

/// What is left in `<root>/snapshots` besides complete snapshots and lock files.
fn leftovers(root: &Path) -> Vec<String> {
    fs::read_dir(root.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock") && n.starts_with('.'))
        .collect()
}

#[test]
fn extracts_into_overlay_format() {
    let fx = fixture();
    let snaps = Snapshots::open(&fx.root).unwrap();
    let layer = desc_of(&fx.blobs, &sample());
    assert!(!snaps.contains(&layer.diff_id));
    let fs_dir = snaps.ensure(&fx.blobs, &layer).unwrap();
    assert_eq!(fs_dir, fx.root.join("snapshots").join(layer.diff_id.hex()).join("fs"));
    assert_eq!(snaps.path(&layer.diff_id), fs_dir);
    assert!(snaps.contains(&layer.diff_id));

    let meta = |p: &str| fs::symlink_metadata(fs_dir.join(p)).unwrap();
    assert_eq!(fs::read(fs_dir.join("app/data.txt")).unwrap(), b"hello");
    assert_eq!(meta("app/run").mode() & 0o7777, 0o4755, "setuid kept");
    assert_eq!(meta("app/run").mtime(), T0);
    assert_eq!(meta("app").mode() & 0o7777, 0o750);
    assert_eq!(meta("app").mtime(), T0, "directory mtime set after its contents");
    assert_eq!(meta("ro").mode() & 0o7777, 0o555);
    assert_eq!(fs::read(fs_dir.join("ro/inside")).unwrap(), b"x");
    assert_eq!(fs::read_link(fs_dir.join("app/link")).unwrap(), Path::new("/etc/passwd"));
    assert_eq!(meta("app/link").mtime(), T0);
    assert_eq!(meta("app/hard").ino(), meta("app/data.txt").ino());
    assert!(meta("app/pipe").file_type().is_fifo());
    assert_eq!(xattr(&fs_dir.join("app/run"), "user.kiln").as_deref(), Some(&b"v1"[..]));
    assert_eq!(
        xattr(&fs_dir.join("app/run"), "user.overlay.redirect"),
        None,
        "overlay xattrs never taken from a layer"
    );
    if is_root() {
        assert_eq!((meta("app/data.txt").uid(), meta("app/data.txt").gid()), (1000, 1000));
        assert_eq!((meta("app").uid(), meta("app").gid()), (1000, 1000));
    }

    // Whiteouts: 0:0 character devices; opaque directory: user.overlay.opaque=y.
    for w in ["etc/removed", "app/gone"] {
        let m = meta(w);
        assert!(m.file_type().is_char_device(), "{w}");
        assert_eq!(m.rdev(), 0, "{w}");
    }
    assert_eq!(xattr(&fs_dir.join("etc"), "user.overlay.opaque").as_deref(), Some(&b"y"[..]));
    assert_eq!(xattr(&fs_dir.join("app"), "user.overlay.opaque"), None);

    let report = snaps.report(&layer.diff_id).unwrap().unwrap();
    assert_eq!(report.diff_id.as_ref(), Some(&layer.diff_id));
    assert_eq!(report.entries, 13);
    assert_eq!(report.ignored_xattrs, 1, "the overlay xattr");
    assert_eq!(report.xattr_whiteouts, 0);
    if running_as_real_root() {
        assert_eq!(report.skipped_devices, 0);
        assert!(meta("dev/null").file_type().is_char_device());
        assert_eq!(meta("dev/null").rdev(), rustix::fs::makedev(1, 3));
    } else {
        assert_eq!(report.skipped_devices, 1);
        assert!(!fs_dir.join("dev/null").exists());
    }

    // A second ensure reuses the snapshot (a local change survives: nothing was re-extracted).
    fs::write(fs_dir.join("marker-from-test"), b"").unwrap();
    assert_eq!(snaps.ensure(&fx.blobs, &layer).unwrap(), fs_dir);
    assert!(fs_dir.join("marker-from-test").exists());
    assert!(leftovers(&fx.root).is_empty());
}

#[test]
fn xattr_whiteouts_when_asked() {
    let fx = fixture();
    let snaps =
        Snapshots::open(&fx.root).unwrap().with_options(ExtractOptions { xattr_whiteouts: true });
    let layer = desc_of(&fx.blobs, &sample());
    let fs_dir = snaps.ensure(&fx.blobs, &layer).unwrap();
    for w in ["etc/removed", "app/gone"] {
        let m = fs::symlink_metadata(fs_dir.join(w)).unwrap();
        assert!(m.is_file() && m.len() == 0, "{w}");
        assert_eq!(xattr(&fs_dir.join(w), "user.overlay.whiteout").as_deref(), Some(&b""[..]));
    }
    // `app` holds an xattr whiteout: marked x. `etc` is opaque: stays y. The root is marked x.
    assert_eq!(xattr(&fs_dir.join("app"), "user.overlay.opaque").as_deref(), Some(&b"x"[..]));
    assert_eq!(xattr(&fs_dir.join("etc"), "user.overlay.opaque").as_deref(), Some(&b"y"[..]));
    assert_eq!(xattr(&fs_dir, "user.overlay.opaque").as_deref(), Some(&b"x"[..]));
    assert_eq!(snaps.report(&layer.diff_id).unwrap().unwrap().xattr_whiteouts, 2);
}

#[test]
fn wrong_diff_id_or_corrupt_blob_leaves_nothing() {
    let fx = fixture();
    let snaps = Snapshots::open(&fx.root).unwrap();
    let mut layer = desc_of(&fx.blobs, &sample());
    let real = layer.diff_id.clone();
    layer.diff_id = Digest::of_bytes(b"not the tar");
    match snaps.ensure(&fx.blobs, &layer).unwrap_err() {
        Error::DigestMismatch { expected, actual, what } => {
            assert_eq!((&expected, &actual), (&layer.diff_id, &real));
            assert!(what.starts_with("layer diff_id"), "{what}");
        }
        other => panic!("unexpected {other}"),
    }
    assert!(!snaps.contains(&layer.diff_id));
    assert!(!fx.root.join("snapshots").join(layer.diff_id.hex()).exists());
    assert!(leftovers(&fx.root).is_empty());

    // Same layer, blob corrupted on disk (one byte of the gzip trailer flipped).
    layer.diff_id = real.clone();
    let p = fx.blobs.path(&layer.digest);
    let mut bytes = fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0xff;
    fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    fs::write(&p, &bytes).unwrap();
    let err = snaps.ensure(&fx.blobs, &layer).unwrap_err().to_string();
    assert_eq!(err, "reading layer tail: corrupt gzip stream does not have a matching checksum");
    assert!(!snaps.contains(&real));
    assert!(leftovers(&fx.root).is_empty());

    // An uncompressed layer whose file content changed on disk: the tar still parses, the
    // blob digest check at the end of the stream catches it.
    let plain = write_layer(
        &fx.blobs,
        &[file("f", b"original")],
        &LayerOptions { compression: Compression::None, clamp_mtime: None },
    )
    .unwrap();
    let p = fx.blobs.path(&plain.digest);
    let bytes = fs::read(&p).unwrap();
    let at = bytes.windows(8).position(|w| w == b"original").unwrap();
    let mut changed = bytes.clone();
    changed[at] = b'O';
    fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    fs::write(&p, &changed).unwrap();
    let layer = LayerDesc {
        digest: plain.digest.clone(),
        diff_id: plain.diff_id.clone(),
        media_type: plain.media_type,
    };
    let err = snaps.ensure(&fx.blobs, &layer).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "reading layer tail: blob {}: digest mismatch: expected {}, got {}",
            p.display(),
            plain.digest,
            Digest::of_bytes(&changed)
        )
    );
    assert!(leftovers(&fx.root).is_empty());
}

#[test]
fn concurrent_ensure_extracts_once() {
    let fx = fixture();
    let layer = desc_of(&fx.blobs, &sample());
    let paths: Vec<PathBuf> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (root, blobs, layer) = (&fx.root, &fx.blobs, &layer);
                s.spawn(move || Snapshots::open(root).unwrap().ensure(blobs, layer).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(paths.windows(2).all(|w| w[0] == w[1]));
    assert!(leftovers(&fx.root).is_empty());
    assert_eq!(fs::read(paths[0].join("app/data.txt")).unwrap(), b"hello");
}

#[test]
fn later_entries_replace_earlier_ones() {
    let fx = fixture();
    let snaps = Snapshots::open(&fx.root).unwrap();
    let tar = hostile_tar(&[
        Raw::file("f", b"first"),
        Raw::file("f", b"second"),
        Raw::dir("d"),
        Raw::file("d/keep", b"k"),
        Raw::dir("d"),
        Raw::file("x", b"file"),
        Raw::dir("x"),
        Raw::file("x/in", b"in"),
        Raw::dir("y"),
        Raw::file("y/in", b"in"),
        Raw::file("y", b"now a file"),
        Raw::file(".wh.w", b""),
        Raw::dir("w"),
        Raw::file("w/new", b""),
    ]);
    let layer = store_tar(&fx.blobs, &tar);
    let dir = snaps.ensure(&fx.blobs, &layer).unwrap();
    assert_eq!(fs::read(dir.join("f")).unwrap(), b"second");
    assert_eq!(fs::read(dir.join("d/keep")).unwrap(), b"k", "a dir over a dir merges");
    assert_eq!(fs::read(dir.join("x/in")).unwrap(), b"in");
    assert_eq!(fs::read(dir.join("y")).unwrap(), b"now a file");
    // Deleted then re-created in the same layer: the new directory hides the lower one.
    assert_eq!(xattr(&dir.join("w"), "user.overlay.opaque").as_deref(), Some(&b"y"[..]));
    assert_eq!(tree(&dir), ["d", "d/keep", "f", "w", "w/new", "x", "x/in", "y"]);
}

#[test]
fn root_entry_metadata_and_root_opaque_marker() {
    let fx = fixture();
    let snaps = Snapshots::open(&fx.root).unwrap();
    let mut root_dir = Raw::dir(".");
    root_dir.mode = 0o711;
    let tar = hostile_tar(&[root_dir, Raw::file("./.wh..wh..opq", b""), Raw::file("./a", b"a")]);
    let dir = snaps.ensure(&fx.blobs, &store_tar(&fx.blobs, &tar)).unwrap();
    let meta = fs::metadata(&dir).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o711);
    assert_eq!(meta.mtime(), T0);
    assert_eq!(xattr(&dir, "user.overlay.opaque").as_deref(), Some(&b"y"[..]));
    assert_eq!(tree(&dir), ["a"]);
}

/// A raw tar member, written without the `tar` crate's path checks.
struct Raw {
    name: Vec<u8>,
    kind: EntryType,
    link: Vec<u8>,
    data: Vec<u8>,
    dev: Option<(u32, u32)>,
    mode: u32,
}

impl Raw {
    fn file(name: &str, data: &[u8]) -> Raw {
        Raw {
            name: name.into(),
            kind: EntryType::Regular,
            link: vec![],
            data: data.into(),
            dev: None,
            mode: 0o644,
        }
    }
    fn dir(name: &str) -> Raw {
        Raw {
            name: format!("{name}/").into(),
            kind: EntryType::Directory,
            link: vec![],
            data: vec![],
            dev: None,
            mode: 0o644,
        }
    }
    fn symlink(name: &str, target: &str) -> Raw {
        Raw {
            name: name.into(),
            kind: EntryType::Symlink,
            link: target.into(),
            data: vec![],
            dev: None,
            mode: 0o644,
        }
    }
    fn hardlink(name: &str, target: &str) -> Raw {
        Raw {
            name: name.into(),
            kind: EntryType::Link,
            link: target.into(),
            data: vec![],
            dev: None,
            mode: 0o644,
        }
    }
    fn chardev(name: &str, major: u32, minor: u32) -> Raw {
        Raw {
            name: name.into(),
            kind: EntryType::Char,
            link: vec![],
            data: vec![],
            dev: Some((major, minor)),
            mode: 0o644,
        }
    }
}

fn hostile_tar(members: &[Raw]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for m in members {
        let mut h = tar::Header::new_gnu();
        {
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..m.name.len()].copy_from_slice(&m.name);
            gnu.linkname[..m.link.len()].copy_from_slice(&m.link);
        }
        h.set_entry_type(m.kind);
        h.set_size(m.data.len() as u64);
        h.set_mode(if m.kind == EntryType::Directory && m.mode == 0o644 { 0o755 } else { m.mode });
        h.set_mtime(T0 as u64);
        if let Some((major, minor)) = m.dev {
            h.set_device_major(major).unwrap();
            h.set_device_minor(minor).unwrap();
        }
        h.set_cksum();
        b.append(&h, &m.data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

fn store_tar(blobs: &BlobStore, tar: &[u8]) -> LayerDesc {
    let d = blobs.put_bytes(tar).unwrap();
    LayerDesc { digest: d.clone(), diff_id: d, media_type: MEDIA_TYPE_TAR.into() }
}

/// A hostile case: name, members, and `Some(paths that must exist)` or `None` (must fail).
type Case = (&'static str, Vec<Raw>, Option<Vec<String>>);

#[test]
fn hostile_tars_stay_inside_the_snapshot() {
    let top = tempfile::tempdir().unwrap();
    let outside = top.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), b"s3cret").unwrap();
    let out_abs = outside.to_str().unwrap().to_string();
    let out_rel = out_abs.trim_start_matches('/').to_string();
    let ups = "../".repeat(20);
    let root = top.path().join("kiln");
    let blobs = BlobStore::open(&root).unwrap();
    let snaps = Snapshots::open(&root).unwrap();

    // (name, members, Some(paths that must exist in the snapshot) or None when it must fail)
    let cases: Vec<Case> = vec![
        (
            "dotdot",
            vec![Raw::file(&format!("{ups}{out_rel}/pwned"), b"x")],
            Some(vec![format!("{out_rel}/pwned")]),
        ),
        (
            "absolute",
            vec![Raw::file(&format!("{out_abs}/pwned"), b"x")],
            Some(vec![format!("{out_rel}/pwned")]),
        ),
        (
            "symlink-abs-then-write",
            vec![Raw::symlink("a", &out_abs), Raw::file("a/pwned", b"x")],
            None,
        ),
        (
            "symlink-rel-then-write",
            vec![Raw::symlink("up", &format!("{ups}{out_rel}")), Raw::file("up/pwned", b"x")],
            None,
        ),
        (
            "symlink-to-etc-then-write",
            vec![
                Raw::dir("etc"),
                Raw::symlink("a", "/etc"),
                Raw::file("a/passwd", b"root::0:0::/:/bin/sh\n"),
            ],
            Some(vec!["etc/passwd".into(), "a".into()]),
        ),
        ("hardlink-to-host-file", vec![Raw::hardlink("hl", &format!("{out_abs}/secret"))], None),
        ("hardlink-dotdot", vec![Raw::hardlink("hl", &format!("{ups}{out_rel}/secret"))], None),
        (
            "hardlink-through-symlink",
            vec![Raw::symlink("l", &out_abs), Raw::hardlink("hl", "l/secret")],
            None,
        ),
        (
            "hardlink-to-etc-passwd",
            vec![
                Raw::dir("etc"),
                Raw::file("etc/passwd", b"inner"),
                Raw::hardlink("hl", "/etc/passwd"),
            ],
            Some(vec!["hl".into(), "etc/passwd".into()]),
        ),
        (
            "symlink-then-dir",
            vec![Raw::symlink("x", &out_abs), Raw::dir("x"), Raw::file("x/f", b"x")],
            Some(vec!["x/f".into()]),
        ),
        (
            "file-over-symlink",
            vec![Raw::symlink("f", &format!("{out_abs}/secret")), Raw::file("f", b"overwritten?")],
            Some(vec!["f".into()]),
        ),
        ("whiteout-dotdot", vec![Raw::file(".wh...", b"")], None),
        ("whiteout-dotdot-nested", vec![Raw::dir("d"), Raw::file("d/.wh...", b"")], None),
        (
            "whiteout-through-symlink",
            vec![Raw::symlink("s", &out_abs), Raw::file("s/.wh.secret", b"")],
            None,
        ),
        (
            "opaque-through-symlink",
            vec![Raw::symlink("s", &out_abs), Raw::file("s/.wh..wh..opq", b"")],
            None,
        ),
        ("device-node", vec![Raw::chardev("dev/null2", 1, 3)], Some(vec![])),
    ];
    let before =
        tree(top.path()).into_iter().filter(|p| !p.starts_with("kiln")).collect::<Vec<_>>();
    let mut contained = 0;
    for (name, members, expect) in cases {
        let layer = store_tar(&blobs, &hostile_tar(&members));
        let result = snaps.ensure(&blobs, &layer);
        match (&result, &expect) {
            (Ok(dir), Some(paths)) => {
                for p in paths {
                    assert!(
                        fs::symlink_metadata(dir.join(p)).is_ok(),
                        "{name}: {p} missing in snapshot"
                    );
                }
                contained += 1;
            }
            (Err(e), None) => {
                eprintln!("{name}: refused: {e}");
                contained += 1;
            }
            _ => panic!("{name}: unexpected outcome {result:?}"),
        }
        if name == "hardlink-to-etc-passwd" {
            let dir = result.as_ref().unwrap();
            assert_eq!(fs::read(dir.join("hl")).unwrap(), b"inner");
        }
        if name == "file-over-symlink" {
            assert!(fs::symlink_metadata(result.as_ref().unwrap().join("f")).unwrap().is_file());
        }
        if name == "device-node" {
            let report = snaps.report(&layer.diff_id).unwrap().unwrap();
            assert_eq!(report.skipped_devices, u64::from(!running_as_real_root()));
        }
        // After every case: nothing changed outside the kiln root, no temp dirs left.
        let now =
            tree(top.path()).into_iter().filter(|p| !p.starts_with("kiln")).collect::<Vec<_>>();
        assert_eq!(now, before, "{name}: something was written outside");
        assert_eq!(fs::read(outside.join("secret")).unwrap(), b"s3cret", "{name}");
        assert!(leftovers(&root).is_empty(), "{name}: temp dir left");
    }
    assert_eq!(contained, 16);
}

#[test]
fn zstd_and_uncompressed_layers_extract_too() {
    let fx = fixture();
    let snaps = Snapshots::open(&fx.root).unwrap();
    for compression in [Compression::Zstd { level: 3 }, Compression::None] {
        let entries = vec![file("z", format!("{compression:?}").as_bytes())];
        let info =
            write_layer(&fx.blobs, &entries, &LayerOptions { compression, clamp_mtime: None })
                .unwrap();
        let layer =
            LayerDesc { digest: info.digest, diff_id: info.diff_id, media_type: info.media_type };
        let dir = snaps.ensure(&fx.blobs, &layer).unwrap();
        assert_eq!(fs::read(dir.join("z")).unwrap(), format!("{compression:?}").as_bytes());
    }
}
