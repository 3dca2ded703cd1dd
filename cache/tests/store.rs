//! Image store (tags in index.json, concurrency) and layout/archive export read by outside tools.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{entry, file, run};
use kiln_cache::{
    BlobStore, Digest, EntryKind, Error, ImageStore, LayerEntry, LayerOptions, write_layer,
    write_layout, write_layout_tar,
};
use oci_spec::image::{Descriptor, MediaType};

/// Stores a one-layer image (layer, config, manifest) and returns the manifest descriptor.
fn make_image(blobs: &BlobStore, entries: &[LayerEntry]) -> Descriptor {
    let layer = write_layer(blobs, entries, &LayerOptions::default()).unwrap();
    let config = format!(
        r#"{{"architecture":"amd64","config":{{"Cmd":["/hello"]}},"os":"linux","rootfs":{{"diff_ids":["{}"],"type":"layers"}}}}"#,
        layer.diff_id
    );
    let config_digest = blobs.put_bytes(config.as_bytes()).unwrap();
    let manifest = format!(
        r#"{{"config":{{"digest":"{config_digest}","mediaType":"application/vnd.oci.image.config.v1+json","size":{}}},"layers":[{{"digest":"{}","mediaType":"{}","size":{}}}],"mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}}"#,
        config.len(),
        layer.digest,
        layer.media_type,
        layer.size
    );
    let d = blobs.put_bytes(manifest.as_bytes()).unwrap();
    Descriptor::new(MediaType::ImageManifest, manifest.len() as u64, d.to_oci())
}

fn hello_entries(msg: &str) -> Vec<LayerEntry> {
    vec![
        LayerEntry { mode: 0o755, ..file("hello", format!("#!/bin/sh\necho {msg}\n").as_bytes()) },
        entry("etc", EntryKind::Dir),
        LayerEntry { uid: 1000, gid: 1000, ..file("etc/motd", msg.as_bytes()) },
        entry("bin", EntryKind::Symlink { target: "usr/bin".into() }),
    ]
}

#[test]
fn tag_resolve_list_untag() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    assert_eq!(
        fs::read(dir.path().join("oci-layout")).unwrap(),
        br#"{"imageLayoutVersion":"1.0.0"}"#
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("index.json")).unwrap(),
        r#"{"manifests":[],"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}"#
    );
    let a = make_image(store.blobs(), &hello_entries("a"));
    let b = make_image(store.blobs(), &hello_entries("b"));
    store.tag("hello:1", a.clone()).unwrap();
    store.tag("docker.io/library/other:latest", a.clone()).unwrap();
    assert_eq!(store.resolve("hello:1").unwrap().unwrap().digest(), a.digest());
    assert_eq!(store.resolve("hello:2").unwrap(), None);

    // Re-tagging replaces the entry in place.
    store.tag("hello:1", b.clone()).unwrap();
    assert_eq!(store.resolve("hello:1").unwrap().unwrap().digest(), b.digest());
    let names: Vec<(String, String)> =
        store.list().unwrap().into_iter().map(|(n, d)| (n, d.digest().to_string())).collect();
    assert_eq!(
        names,
        [
            ("docker.io/library/other:latest".to_string(), a.digest().to_string()),
            ("hello:1".to_string(), b.digest().to_string()),
        ]
    );
    let index = fs::read_to_string(dir.path().join("index.json")).unwrap();
    assert_eq!(
        index,
        format!(
            concat!(
                r#"{{"manifests":[{{"annotations":{{"org.opencontainers.image.ref.name":"hello:1"}},"#,
                r#""digest":"{}","mediaType":"application/vnd.oci.image.manifest.v1+json","size":{}}},"#,
                r#"{{"annotations":{{"org.opencontainers.image.ref.name":"docker.io/library/other:latest"}},"#,
                r#""digest":"{}","mediaType":"application/vnd.oci.image.manifest.v1+json","size":{}}}],"#,
                r#""mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}}"#
            ),
            b.digest(),
            b.size(),
            a.digest(),
            a.size()
        )
    );

    assert!(store.untag("hello:1").unwrap());
    assert!(!store.untag("hello:1").unwrap());
    assert_eq!(store.list().unwrap().len(), 1);
    // Reopening keeps what is there.
    let again = ImageStore::open(dir.path()).unwrap();
    assert_eq!(
        again.resolve("docker.io/library/other:latest").unwrap().unwrap().digest(),
        a.digest()
    );

    let missing = Descriptor::new(MediaType::ImageManifest, 3, Digest::of_bytes(b"nope").to_oci());
    assert!(matches!(store.tag("x", missing), Err(Error::BlobNotFound(_))));
    assert_eq!(store.tag("", a).unwrap_err().to_string(), "empty image name");
}

#[test]
fn eight_threads_tagging_at_once_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let img = make_image(store.blobs(), &hello_entries("t"));
    std::thread::scope(|s| {
        for t in 0..8 {
            let (store, img) = (&store, &img);
            s.spawn(move || {
                // Each thread opens its own store handle, as separate builds would.
                let own = ImageStore::open(store.root()).unwrap();
                for i in 0..10 {
                    own.tag(&format!("t{t}:{i}"), img.clone()).unwrap();
                }
            });
        }
    });
    let names: Vec<String> = store.list().unwrap().into_iter().map(|(n, _)| n).collect();
    let mut expected: Vec<String> =
        (0..8).flat_map(|t| (0..10).map(move |i| format!("t{t}:{i}"))).collect();
    expected.sort();
    assert_eq!(names, expected);
}

/// Child half of `two_processes_tagging_at_once`: runs only when the parent sets the variables.
#[test]
fn child_tagger() {
    let (Ok(root), Ok(prefix)) =
        (std::env::var("KILN_TEST_TAG_ROOT"), std::env::var("KILN_TEST_TAG_PREFIX"))
    else {
        return;
    };
    let store = ImageStore::open(Path::new(&root)).unwrap();
    let (_, img) = store.list().unwrap().into_iter().next().unwrap();
    for i in 0..25 {
        store.tag(&format!("{prefix}:{i}"), img.clone()).unwrap();
    }
}

#[test]
fn two_processes_tagging_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let img = make_image(store.blobs(), &hello_entries("p"));
    store.tag("seed", img).unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = ["pa", "pb"]
        .iter()
        .map(|prefix| {
            Command::new(&exe)
                .args(["--exact", "child_tagger", "--nocapture"])
                .env("KILN_TEST_TAG_ROOT", dir.path())
                .env("KILN_TEST_TAG_PREFIX", prefix)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
    let names = store.list().unwrap();
    assert_eq!(names.len(), 51);
    for p in ["pa", "pb"] {
        for i in 0..25 {
            assert!(names.iter().any(|(n, _)| *n == format!("{p}:{i}")), "{p}:{i} lost");
        }
    }
}

#[test]
fn layout_is_read_by_skopeo_umoci_and_oci_image_tool() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("root")).unwrap();
    let a = make_image(store.blobs(), &hello_entries("first"));
    let b = make_image(store.blobs(), &hello_entries("second"));
    let unrelated = store.blobs().put_bytes(b"not part of any image").unwrap();
    let manifests =
        vec![(a.clone(), Some("app:1".to_string())), (b.clone(), Some("app:2".to_string()))];

    let out = dir.path().join("out");
    write_layout(&out, store.blobs(), &manifests).unwrap();
    assert!(!out.join("blobs/sha256").join(unrelated.hex()).exists(), "only reachable blobs");
    assert_eq!(fs::read_dir(out.join("blobs/sha256")).unwrap().count(), 6);
    let ls = run("umoci", &["ls", "--layout", out.to_str().unwrap()]);
    assert_eq!(ls, "app:1\napp:2\n");
    let raw = run("skopeo", &["inspect", "--raw", &format!("oci:{}:app:2", out.display())]);
    let manifest_b = store.blobs().read(&Digest::try_from(b.digest()).unwrap()).unwrap();
    assert_eq!(raw.as_bytes(), manifest_b.as_slice());
    let cfg = run("skopeo", &["inspect", "--config", &format!("oci:{}:app:1", out.display())]);
    assert!(cfg.contains("\"/hello\""), "{cfg}");
    let v = run(
        "oci-image-tool",
        &["validate", "--type", "image", "--ref", "name=app:1", out.to_str().unwrap()],
    );
    assert!(v.contains("Validation succeeded"), "{v}");

    // umoci unpacks the layer: files, modes, owners and symlinks as written.
    let bundle = dir.path().join("bundle");
    run(
        "umoci",
        &["unpack", "--image", &format!("{}:app:2", out.display()), bundle.to_str().unwrap()],
    );
    let rootfs = bundle.join("rootfs");
    assert_eq!(fs::read(rootfs.join("hello")).unwrap(), b"#!/bin/sh\necho second\n");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(rootfs.join("hello")).unwrap().mode() & 0o7777, 0o755);
    if common::is_root() {
        assert_eq!(fs::metadata(rootfs.join("etc/motd")).unwrap().uid(), 1000);
    }
    assert_eq!(fs::read_link(rootfs.join("bin")).unwrap(), Path::new("usr/bin"));

    // Writing again replaces the layout whole (one image now).
    write_layout(&out, store.blobs(), &manifests[..1]).unwrap();
    assert_eq!(run("umoci", &["ls", "--layout", out.to_str().unwrap()]), "app:1\n");
    assert_eq!(fs::read_dir(out.join("blobs/sha256")).unwrap().count(), 3);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3, "no temp dir left: root, out, bundle");

    // A directory that is neither empty nor a layout is never replaced.
    let precious = dir.path().join("precious");
    fs::create_dir(&precious).unwrap();
    fs::write(precious.join("thesis.txt"), b"x").unwrap();
    assert_eq!(
        write_layout(&precious, store.blobs(), &manifests).unwrap_err().to_string(),
        format!(
            "{} exists and is neither empty nor an OCI layout; refusing to replace it",
            precious.display()
        )
    );
    assert_eq!(fs::read(precious.join("thesis.txt")).unwrap(), b"x");
}

#[test]
fn archive_is_read_by_skopeo() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("root")).unwrap();
    let a = make_image(store.blobs(), &hello_entries("archived"));
    let manifests = vec![(a.clone(), Some("arch:1".to_string()))];
    let tar_path = dir.path().join("image.tar");
    write_layout_tar(&tar_path, store.blobs(), &manifests).unwrap();
    let raw =
        run("skopeo", &["inspect", "--raw", &format!("oci-archive:{}:arch:1", tar_path.display())]);
    let manifest = store.blobs().read(&Digest::try_from(a.digest()).unwrap()).unwrap();
    assert_eq!(raw.as_bytes(), manifest.as_slice());
    let listing = run("tar", &["-tf", tar_path.to_str().unwrap()]);
    let names: Vec<&str> = listing.lines().collect();
    assert_eq!(names.len(), 7);
    assert_eq!(&names[..4], ["oci-layout", "index.json", "blobs/", "blobs/sha256/"]);
    // Deterministic: the same images give the same archive bytes.
    let again = dir.path().join("again.tar");
    write_layout_tar(&again, store.blobs(), &manifests).unwrap();
    assert_eq!(fs::read(&tar_path).unwrap(), fs::read(&again).unwrap());

    // A corrupt blob is caught while exporting, and nothing is written.
    let config_digest = {
        let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        m["config"]["digest"].as_str().unwrap().parse::<Digest>().unwrap()
    };
    let p = store.blobs().path(&config_digest);
    let mut bytes = fs::read(&p).unwrap();
    bytes[0] = b'[';
    fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    fs::write(&p, &bytes).unwrap();
    let bad = dir.path().join("bad.tar");
    let err = write_layout_tar(&bad, store.blobs(), &manifests).unwrap_err().to_string();
    assert!(err.contains("digest mismatch"), "{err}");
    assert!(!bad.exists());
    let err = write_layout(&dir.path().join("bad-dir"), store.blobs(), &manifests)
        .unwrap_err()
        .to_string();
    assert!(err.contains("digest mismatch"), "{err}");
    assert!(!dir.path().join("bad-dir").exists());
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
