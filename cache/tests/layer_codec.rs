//! Layer tar codec: determinism, compatibility with GNU tar, streaming read-back.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use common::{entry, file, run};
use kiln_cache::layer::{HeaderKind, LayerHeader, MEDIA_TYPE_DOCKER_LAYER, MEDIA_TYPE_TAR_GZIP};
use kiln_cache::{
    BlobStore, Compression, Digest, EntryKind, FileSource, LayerEntry, LayerOptions, read_layer,
    write_layer,
};

const T0: i64 = 1_700_000_000; // 2023-11-14 22:13:20 UTC
const CLAMP: i64 = 1_800_000_000; // 2027-01-15 08:00:00 UTC

fn long_path() -> String {
    format!("deep/{}/file", "x".repeat(150))
}

fn very_long_path() -> String {
    // Over 256 bytes (needs a PAX path), each component under NAME_MAX.
    format!("long/{}/{}/{}", "y".repeat(100), "y".repeat(100), "z".repeat(80))
}

/// A layer with every kind of entry, given out of order.
fn sample_entries(scratch: &Path) -> Vec<LayerEntry> {
    let script = scratch.join("run.sh");
    fs::write(&script, b"#!/bin/sh\necho hi\n").unwrap();
    let mut xattrs = BTreeMap::new();
    xattrs.insert("user.kiln".to_string(), b"v1".to_vec());
    vec![
        entry("etc/removed", EntryKind::Whiteout),
        LayerEntry { uid: 1000, gid: 1000, ..entry("app", EntryKind::Dir) },
        LayerEntry {
            mode: 0o4755,
            xattrs,
            ..entry("app/run", EntryKind::File { source: FileSource::Path(script), size: 18 })
        },
        LayerEntry { uid: 1000, gid: 1000, mtime: 2_000_000_000, ..file("app/data.txt", b"hello") },
        LayerEntry {
            mode: 0o777,
            ..entry("app/link", EntryKind::Symlink { target: "run".into() })
        },
        entry("app/hard", EntryKind::Hardlink { target: "app/data.txt".into() }),
        entry("app/pipe", EntryKind::Fifo),
        entry("dev", EntryKind::Dir),
        LayerEntry {
            mode: 0o666,
            ..entry("dev/null", EntryKind::CharDevice { major: 1, minor: 3 })
        },
        entry("etc", EntryKind::OpaqueDir),
        entry("etc", EntryKind::Dir),
        LayerEntry { mode: 0o1777, ..entry("tmp", EntryKind::Dir) },
        file(&long_path(), b"deep"),
        file(&very_long_path(), b"long"),
        file("caf\u{e9}.txt", b"utf8"),
    ]
}

fn opts(compression: Compression) -> LayerOptions {
    LayerOptions { compression, clamp_mtime: Some(CLAMP) }
}

#[test]
fn same_entries_give_byte_identical_blobs() {
    let scratch = tempfile::tempdir().unwrap();
    let entries = sample_entries(scratch.path());
    for compression in
        [Compression::Gzip { level: 6 }, Compression::Zstd { level: 3 }, Compression::None]
    {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let (sa, sb) = (BlobStore::open(a.path()).unwrap(), BlobStore::open(b.path()).unwrap());
        let ia = write_layer(&sa, &entries, &opts(compression)).unwrap();
        let mut reversed = entries.clone();
        reversed.reverse();
        let ib = write_layer(&sb, &reversed, &opts(compression)).unwrap();
        assert_eq!(ia, ib, "{compression:?}");
        assert_eq!(fs::read(sa.path(&ia.digest)).unwrap(), fs::read(sb.path(&ib.digest)).unwrap());
        assert_eq!(ia.media_type, compression.media_type());
        assert_eq!(ia.size, fs::metadata(sa.path(&ia.digest)).unwrap().len());
        // The diff_id does not depend on the compression.
        let tar_info = write_layer(&sa, &entries, &opts(Compression::None)).unwrap();
        assert_eq!(ia.diff_id, tar_info.diff_id);
        assert_eq!(tar_info.digest, tar_info.diff_id);
    }
}

#[test]
fn gnu_tar_lists_exactly_what_was_written() {
    let scratch = tempfile::tempdir().unwrap();
    let store = BlobStore::open(&scratch.path().join("root")).unwrap();
    let info =
        write_layer(&store, &sample_entries(scratch.path()), &opts(Compression::Gzip { level: 6 }))
            .unwrap();
    let tar_path = scratch.path().join("layer.tar");
    let gz = store.path(&info.digest);
    let gunzip = std::process::Command::new("gunzip").arg("-c").arg(&gz).output().unwrap();
    assert!(gunzip.status.success(), "{}", String::from_utf8_lossy(&gunzip.stderr));
    let raw = gunzip.stdout;
    fs::write(&tar_path, &raw).unwrap();
    assert_eq!(Digest::of_bytes(&raw), info.diff_id);

    let listing = run(
        "tar",
        &[
            "-tvf",
            tar_path.to_str().unwrap(),
            "--numeric-owner",
            "--full-time",
            "--quoting-style=literal",
        ],
    );
    let lines: Vec<String> =
        listing.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    let t0 = "2023-11-14 22:13:20";
    let expected = vec![
        format!("drwxr-xr-x 1000/1000 0 {t0} app/"),
        "-rw-r--r-- 1000/1000 5 2027-01-15 08:00:00 app/data.txt".to_string(),
        format!("hrw-r--r-- 0/0 0 {t0} app/hard link to app/data.txt"),
        format!("lrwxrwxrwx 0/0 0 {t0} app/link -> run"),
        format!("prw-r--r-- 0/0 0 {t0} app/pipe"),
        format!("-rwsr-xr-x 0/0 18 {t0} app/run"),
        format!("-rw-r--r-- 0/0 4 {t0} caf\u{e9}.txt"),
        format!("-rw-r--r-- 0/0 4 {t0} {}", long_path()),
        format!("drwxr-xr-x 0/0 0 {t0} dev/"),
        format!("crw-rw-rw- 0/0 1,3 {t0} dev/null"),
        format!("drwxr-xr-x 0/0 0 {t0} etc/"),
        format!("-rw-r--r-- 0/0 0 {t0} etc/.wh..wh..opq"),
        format!("-rw-r--r-- 0/0 0 {t0} etc/.wh.removed"),
        format!("-rw-r--r-- 0/0 4 {t0} {}", very_long_path()),
        format!("drwxrwxrwt 0/0 0 {t0} tmp/"),
    ];
    assert_eq!(lines, expected);

    // Contents and xattrs as GNU tar extracts them.
    let out = scratch.path().join("out");
    fs::create_dir(&out).unwrap();
    run(
        "tar",
        &[
            "-xf",
            tar_path.to_str().unwrap(),
            "-C",
            out.to_str().unwrap(),
            "--xattrs",
            "--xattrs-include=user.*",
            "--exclude=dev/null",
            "--exclude=app/pipe",
            "--warning=no-timestamp",
        ],
    );
    assert_eq!(fs::read(out.join("app/run")).unwrap(), b"#!/bin/sh\necho hi\n");
    assert_eq!(fs::read(out.join(very_long_path())).unwrap(), b"long");
    let x = rustix::fs::lgetxattr(out.join("app/run"), "user.kiln", &mut [0u8; 16][..]).unwrap();
    assert_eq!(x, 2);
}

#[test]
fn headers_carry_no_names_and_no_access_times() {
    let scratch = tempfile::tempdir().unwrap();
    let store = BlobStore::open(scratch.path()).unwrap();
    let info = write_layer(
        &store,
        &[LayerEntry { uid: 5, gid: 6, ..file("f", b"x") }],
        &opts(Compression::None),
    )
    .unwrap();
    let raw = store.read(&info.digest).unwrap();
    assert_eq!(raw.len(), 512 * 4, "header, one data block, two end blocks");
    assert_eq!(&raw[265..329], &[0u8; 64][..], "uname and gname are empty");
    assert_eq!(&raw[257..265], b"ustar\x0000");
    assert_eq!(&raw[108..116], b"0000005\0");
    assert!(!raw.windows(5).any(|w| w == b"atime" || w == b"ctime"));
    assert!(raw[1024..].iter().all(|&b| b == 0));
}

fn collect(
    store: &BlobStore,
    digest: &Digest,
    media_type: &str,
) -> (Vec<(LayerHeader, Vec<u8>)>, Digest) {
    let mut seen = Vec::new();
    let summary = read_layer(store.open_verified(digest).unwrap(), media_type, |h, r| {
        let mut data = Vec::new();
        r.read_to_end(&mut data).unwrap();
        seen.push((h.clone(), data));
        Ok(())
    })
    .unwrap();
    assert_eq!(summary.entries as usize, seen.len());
    (seen, summary.diff_id)
}

#[test]
fn read_layer_gives_back_what_write_layer_wrote() {
    let scratch = tempfile::tempdir().unwrap();
    let store = BlobStore::open(&scratch.path().join("root")).unwrap();
    for compression in
        [Compression::Gzip { level: 1 }, Compression::Zstd { level: 3 }, Compression::None]
    {
        let info =
            write_layer(&store, &sample_entries(scratch.path()), &opts(compression)).unwrap();
        let (seen, diff_id) = collect(&store, &info.digest, &info.media_type);
        assert_eq!(diff_id, info.diff_id);
        let summary: Vec<(String, HeaderKind, u32, u32, i64, usize)> = seen
            .iter()
            .map(|(h, data)| {
                (
                    h.path.to_string_lossy().into_owned(),
                    h.kind.clone(),
                    h.mode,
                    h.uid,
                    h.mtime,
                    data.len(),
                )
            })
            .collect();
        let p = |s: &str| PathBuf::from(s);
        let expected = vec![
            ("app".to_string(), HeaderKind::Dir, 0o755, 1000, T0, 0),
            ("app/data.txt".into(), HeaderKind::File { size: 5 }, 0o644, 1000, CLAMP, 5),
            (
                "app/hard".into(),
                HeaderKind::Hardlink { target: p("app/data.txt") },
                0o644,
                0,
                T0,
                0,
            ),
            ("app/link".into(), HeaderKind::Symlink { target: p("run") }, 0o777, 0, T0, 0),
            ("app/pipe".into(), HeaderKind::Fifo, 0o644, 0, T0, 0),
            ("app/run".into(), HeaderKind::File { size: 18 }, 0o4755, 0, T0, 18),
            ("caf\u{e9}.txt".into(), HeaderKind::File { size: 4 }, 0o644, 0, T0, 4),
            (long_path(), HeaderKind::File { size: 4 }, 0o644, 0, T0, 4),
            ("dev".into(), HeaderKind::Dir, 0o755, 0, T0, 0),
            ("dev/null".into(), HeaderKind::CharDevice { major: 1, minor: 3 }, 0o666, 0, T0, 0),
            ("etc".into(), HeaderKind::Dir, 0o755, 0, T0, 0),
            ("etc".into(), HeaderKind::OpaqueDir, 0o644, 0, T0, 0),
            ("etc/removed".into(), HeaderKind::Whiteout, 0o644, 0, T0, 0),
            (very_long_path(), HeaderKind::File { size: 4 }, 0o644, 0, T0, 4),
            ("tmp".into(), HeaderKind::Dir, 0o1777, 0, T0, 0),
        ];
        assert_eq!(summary, expected, "{compression:?}");
        let run_entry = &seen[5].0;
        assert_eq!(run_entry.xattrs.get("user.kiln").map(Vec::as_slice), Some(&b"v1"[..]));
    }
}

#[test]
fn reads_archives_made_by_gnu_tar() {
    let scratch = tempfile::tempdir().unwrap();
    let src = scratch.path().join("src");
    let long_dir = src.join("d".repeat(120));
    fs::create_dir_all(&long_dir).unwrap();
    fs::write(long_dir.join("f".repeat(110)), b"content").unwrap();
    fs::hard_link(long_dir.join("f".repeat(110)), src.join("h")).unwrap();
    std::os::unix::fs::symlink("/target/elsewhere", src.join("s")).unwrap();
    let store = BlobStore::open(&scratch.path().join("root")).unwrap();
    for format in ["gnu", "pax", "ustar"] {
        let tgz = scratch.path().join(format!("{format}.tgz"));
        let args = [
            "-czf",
            tgz.to_str().unwrap(),
            &format!("--format={format}"),
            "-C",
            src.to_str().unwrap(),
            ".",
        ];
        let result = std::process::Command::new("tar").args(args).output().unwrap();
        if format == "ustar" {
            // 110-byte names after a 120-byte directory do not fit ustar: tar refuses.
            assert!(!result.status.success());
            continue;
        }
        assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
        let (digest, _) = store.import_file(&tgz, None).unwrap();
        // Docker media type: gzip is found by its magic bytes.
        let (seen, _) = collect(&store, &digest, MEDIA_TYPE_DOCKER_LAYER);
        let mut names: Vec<(String, String)> = seen
            .iter()
            .map(|(h, _)| (h.path.to_string_lossy().into_owned(), format!("{:?}", h.kind)))
            .collect();
        names.sort();
        let long_file = format!("{}/{}", "d".repeat(120), "f".repeat(110));
        let mut expected = vec![
            (String::new(), "Dir".to_string()),
            ("d".repeat(120), "Dir".to_string()),
            (long_file.clone(), "File { size: 7 }".to_string()),
            ("h".to_string(), format!("Hardlink {{ target: {long_file:?} }}")),
            ("s".to_string(), "Symlink { target: \"/target/elsewhere\" }".to_string()),
        ];
        expected.sort();
        // GNU tar stores whichever link name it met first as the file.
        if seen
            .iter()
            .any(|(h, _)| h.path == Path::new("h") && matches!(h.kind, HeaderKind::File { .. }))
        {
            expected[2].1 = "Hardlink { target: \"h\" }".to_string();
            expected[3].1 = "File { size: 7 }".to_string();
        }
        assert_eq!(names, expected, "{format}");
    }
    // The declared OCI gzip type also reads it.
    let (digest, _) = store.import_file(&scratch.path().join("pax.tgz"), None).unwrap();
    assert_eq!(collect(&store, &digest, MEDIA_TYPE_TAR_GZIP).0.len(), 5);
}

#[test]
fn writer_rejects_sources_that_disagree_with_their_size() {
    let scratch = tempfile::tempdir().unwrap();
    let store = BlobStore::open(&scratch.path().join("root")).unwrap();
    let f = scratch.path().join("f");
    fs::write(&f, b"12345").unwrap();
    let cases = [
        (
            4,
            format!(
                "layer entry \"f\": {} is longer than its declared size 4 (changed while writing?)",
                f.display()
            ),
        ),
        (
            6,
            format!(
                "layer entry \"f\": {} is shorter than its declared size 6 (changed while writing?)",
                f.display()
            ),
        ),
    ];
    for (size, msg) in cases {
        let e = entry("f", EntryKind::File { source: FileSource::Path(f.clone()), size });
        assert_eq!(
            write_layer(&store, &[e], &LayerOptions::default()).unwrap_err().to_string(),
            msg
        );
    }
    let e = entry("b", EntryKind::File { source: FileSource::Bytes(b"ab".to_vec()), size: 3 });
    assert_eq!(
        write_layer(&store, &[e], &LayerOptions::default()).unwrap_err().to_string(),
        "layer entry \"b\": declared size 3 but 2 bytes were given"
    );
    let missing = scratch.path().join("missing");
    let e = entry("m", EntryKind::File { source: FileSource::Path(missing.clone()), size: 0 });
    assert_eq!(
        write_layer(&store, &[e], &LayerOptions::default()).unwrap_err().to_string(),
        format!("open {}: No such file or directory (os error 2)", missing.display())
    );
    assert_eq!(
        write_layer(
            &store,
            &[],
            &LayerOptions { compression: Compression::Gzip { level: 12 }, clamp_mtime: None }
        )
        .unwrap_err()
        .to_string(),
        "gzip level 12 is out of range 0..=9"
    );
    // Failed writes leave no blob and no temp file.
    assert_eq!(fs::read_dir(scratch.path().join("root/blobs/sha256")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(scratch.path().join("root/tmp")).unwrap().count(), 0);
}

#[test]
fn empty_layer_is_two_zero_blocks() {
    let scratch = tempfile::tempdir().unwrap();
    let store = BlobStore::open(scratch.path()).unwrap();
    let info = write_layer(&store, &[], &LayerOptions::default()).unwrap();
    assert_eq!(info.diff_id, Digest::of_bytes(&[0u8; 1024]));
    assert_eq!(info.media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
}
