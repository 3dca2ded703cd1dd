//! Blob store: layout on disk, atomic commits, verification of what is read back.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;

use kiln_cache::{BlobStore, Digest, Error};

const ABC: &str = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

#[test]
fn put_read_and_layout_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(dir.path()).unwrap();
    let d = blobs.put_bytes(b"abc").unwrap();
    assert_eq!(d.to_string(), ABC);
    let expected_path = dir.path().join("blobs/sha256").join(d.hex());
    assert_eq!(blobs.path(&d), expected_path);
    assert_eq!(fs::read(&expected_path).unwrap(), b"abc");
    assert_eq!(fs::metadata(&expected_path).unwrap().permissions().mode() & 0o777, 0o444);
    assert!(blobs.contains(&d));
    assert_eq!(blobs.read(&d).unwrap(), b"abc");
    assert_eq!(blobs.size(&d).unwrap(), 3);
    // Storing again is a no-op.
    assert_eq!(blobs.put_bytes(b"abc").unwrap(), d);
    assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0, "no temp file left");

    let missing = Digest::of_bytes(b"nope");
    assert!(!blobs.contains(&missing));
    assert_eq!(blobs.read(&missing).unwrap_err().to_string(), format!("blob {missing} not found"));
    assert!(matches!(blobs.open_verified(&missing), Err(Error::BlobNotFound(_))));
}

#[test]
fn partial_blob_is_invisible_until_commit() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(dir.path()).unwrap();
    let data = vec![7u8; 1 << 20];
    let d = Digest::of_bytes(&data);
    let mut w = blobs.ingest().unwrap();
    w.write_all(&data[..1000]).unwrap();
    assert!(!blobs.contains(&d));
    assert_eq!(fs::read_dir(dir.path().join("blobs/sha256")).unwrap().count(), 0);
    w.write_all(&data[1000..]).unwrap();
    assert_eq!(w.len(), data.len() as u64);
    assert!(!blobs.contains(&d), "still not visible before commit");
    assert_eq!(w.commit(Some(&d)).unwrap(), (d.clone(), data.len() as u64));
    assert_eq!(blobs.read(&d).unwrap(), data);

    // Dropping an uncommitted writer leaves nothing behind.
    let mut w = blobs.ingest().unwrap();
    w.write_all(b"abandoned").unwrap();
    drop(w);
    assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    assert!(!blobs.contains(&Digest::of_bytes(b"abandoned")));
}

#[test]
fn expected_digest_mismatch_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(dir.path()).unwrap();
    let wrong = Digest::of_bytes(b"other");
    let mut w = blobs.ingest().unwrap();
    w.write_all(b"abc").unwrap();
    let err = w.commit(Some(&wrong)).unwrap_err();
    match err {
        Error::DigestMismatch { expected, actual, .. } => {
            assert_eq!(expected, wrong);
            assert_eq!(actual.to_string(), ABC);
        }
        other => panic!("unexpected {other}"),
    }
    assert_eq!(fs::read_dir(dir.path().join("blobs/sha256")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);

    let err = blobs.put_reader(&b"abc"[..], Some(&wrong)).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert_eq!(blobs.put_reader(&b"abc"[..], None).unwrap().0.to_string(), ABC);
}

#[test]
fn corrupt_blob_fails_read_and_verified_stream() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(dir.path()).unwrap();
    let d = blobs.put_bytes(b"hello world").unwrap();
    let p = blobs.path(&d);
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&p, b"hello WORLD").unwrap();

    let err = blobs.read(&d).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "digest mismatch for blob {}: expected {d}, got {}",
            p.display(),
            Digest::of_bytes(b"hello WORLD")
        )
    );

    let mut r = blobs.open_verified(&d).unwrap();
    let mut out = Vec::new();
    let err = r.read_to_end(&mut out).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("digest mismatch"), "{err}");

    // An intact blob streams fine.
    let good = blobs.put_bytes(b"fine").unwrap();
    let mut s = String::new();
    blobs.open_verified(&good).unwrap().read_to_string(&mut s).unwrap();
    assert_eq!(s, "fine");
}

#[test]
fn import_file_copies_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(&dir.path().join("root")).unwrap();
    let src = dir.path().join("src");
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    fs::write(&src, &data).unwrap();
    let want = Digest::of_bytes(&data);
    assert_eq!(blobs.import_file(&src, Some(&want)).unwrap(), (want.clone(), data.len() as u64));
    assert_eq!(blobs.read(&want).unwrap(), data);
    // The source is untouched and independent of the stored copy.
    fs::write(&src, b"changed").unwrap();
    assert_eq!(blobs.read(&want).unwrap(), data);
    let err = blobs.import_file(&src, Some(&Digest::of_bytes(b"x"))).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    let err = blobs.import_file(&dir.path().join("missing"), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "open {}: No such file or directory (os error 2)",
            dir.path().join("missing").display()
        )
    );
}

#[test]
fn concurrent_writers_of_the_same_blob() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(dir.path()).unwrap();
    let data = vec![42u8; 300_000];
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                let mut w = blobs.ingest().unwrap();
                w.write_all(&data).unwrap();
                w.commit(None).unwrap()
            });
        }
    });
    let d = Digest::of_bytes(&data);
    assert_eq!(blobs.read(&d).unwrap(), data);
    assert_eq!(fs::read_dir(dir.path().join("blobs/sha256")).unwrap().count(), 1);
    assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
}
