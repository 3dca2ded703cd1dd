//! Pull and push against a real `docker-registry`, cross-checked with skopeo.

mod registry_support;

use std::sync::Mutex;

use kiln_builder::platform::Platform;
use kiln_builder::reference::Reference;
use kiln_builder::registry::{Direction, Progress, ProgressStatus, Registry, RegistryError};
use kiln_cache::layer::Compression;
use kiln_cache::store::ImageStore;
use registry_support::*;
use serde_json::Value;

fn store_in(dir: &std::path::Path, name: &str) -> ImageStore {
    ImageStore::open(&dir.join(name)).expect("store")
}

#[test]
fn kiln_pushes_what_skopeo_reads_and_pulls_it_back_verified() {
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path(), "a");
    let big = noise(3 << 20, 1);
    let image = make_image(
        &store,
        &[
            vec![file("etc/hello", b"hello\n")],
            vec![file("data/big.bin", &big)],
            vec![file("etc/third", b"third layer\n")],
        ],
        Compression::Gzip { level: 6 },
        "amd64",
    );
    let registry = Registry::new(options(tmp.path(), None, Some(false))).unwrap();
    let dest = Reference::parse(&format!("{}/team/app:1", reg.host())).unwrap();
    let events = Mutex::new(Vec::new());
    let sink = |p: &Progress| events.lock().unwrap().push(p.clone());
    let pushed = registry.push(&store, &image, &dest, &sink).unwrap();
    assert_eq!(pushed.digest, digest_of(&image));
    assert_eq!((pushed.uploaded, pushed.existing, pushed.mounted), (4, 0, 0));

    // skopeo sees the same manifest digest and the same layers.
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{dest}")]);
    assert_eq!(kiln_cache::digest::Digest::of_bytes(raw.as_bytes()), pushed.digest);
    let info: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{dest}"),
    ]))
    .unwrap();
    assert_eq!(info["Digest"], pushed.digest.to_string());
    assert_eq!(info["Architecture"], "amd64");
    assert_eq!(info["Layers"].as_array().unwrap().len(), 3);
    let events = events.into_inner().unwrap();
    assert!(events.iter().all(|e| e.direction == Direction::Push));
    for status in [ProgressStatus::Started, ProgressStatus::Done] {
        assert_eq!(events.iter().filter(|e| e.status == status).count(), 4, "{events:#?}");
    }
    assert!(events.iter().all(|e| e.current <= e.total), "{events:#?}");

    // Pushing again: every blob is already there.
    let again = registry.push(&store, &image, &dest, &()).unwrap();
    assert_eq!((again.uploaded, again.existing), (0, 4));

    // Pull into an empty store: tagged under the full name, every blob verified.
    let other = store_in(tmp.path(), "b");
    let events = Mutex::new(Vec::new());
    let sink = |p: &Progress| events.lock().unwrap().push(p.clone());
    let pulled =
        registry.pull(&other, &dest, &Platform::parse("linux/amd64").unwrap(), &sink).unwrap();
    let events = events.into_inner().unwrap();
    let big_layer: Vec<u64> = events
        .iter()
        .filter(|e| e.status == ProgressStatus::Transferring && e.total > (3 << 20) / 2)
        .map(|e| e.current)
        .collect();
    // A report per MiB and one at the end, in order.
    assert!(big_layer.len() >= 3, "per-layer byte progress: {big_layer:?}");
    assert!(big_layer.windows(2).all(|w| w[0] < w[1]), "{big_layer:?}");
    assert_eq!(big_layer.last(), events.iter().map(|e| e.total).max().as_ref());
    assert_eq!(pulled.manifest_digest, pushed.digest);
    assert_eq!((pulled.blobs, pulled.fetched), (4, 4));
    let tagged = other.resolve(&format!("{}/team/app:1", reg.host())).unwrap().expect("tagged");
    assert_eq!(tagged.digest().to_string(), pushed.digest.to_string());
    assert_eq!(tagged.platform().as_ref().unwrap().architecture().to_string(), "amd64");
    for d in [&pulled.manifest_digest, &pulled.config_digest] {
        other.blobs().read(d).unwrap();
    }
    // A second pull skips everything it has.
    let second = registry.pull(&other, &dest, &Platform::host(), &()).unwrap();
    assert_eq!(second.fetched, 0);
}

#[test]
fn skopeo_pushes_a_multi_arch_index_and_kiln_picks_the_platform() {
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let src = store_in(tmp.path(), "src");
    let amd = make_image(
        &src,
        &[vec![file("arch", b"amd64\n")]],
        Compression::Gzip { level: 6 },
        "amd64",
    );
    let arm = make_image(
        &src,
        &[vec![file("arch", b"arm64\n")]],
        Compression::Zstd { level: 3 },
        "arm64",
    );
    let index = make_index(&src, &[(&amd, "amd64"), (&arm, "arm64")]);
    let layout = tmp.path().join("layout");
    kiln_cache::store::write_layout(&layout, src.blobs(), &[(index.clone(), Some("multi".into()))])
        .unwrap();
    let dest = format!("{}/multi/app:v2", reg.host());
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", layout.display()),
        &format!("docker://{dest}"),
    ]);

    let registry = Registry::new(options(tmp.path(), None, Some(false))).unwrap();
    let reference = Reference::parse(&dest).unwrap();
    for (platform, want) in [("linux/arm64", &arm), ("linux/amd64", &amd)] {
        let store = store_in(tmp.path(), platform.replace('/', "-").as_str());
        let pulled =
            registry.pull(&store, &reference, &Platform::parse(platform).unwrap(), &()).unwrap();
        assert_eq!(pulled.manifest_digest, digest_of(want), "{platform}");
        assert_eq!(pulled.index_digest, Some(digest_of(&index)));
        let tagged = store.resolve(&dest).unwrap().unwrap();
        assert_eq!(tagged.digest(), want.digest());
        let arch = platform.rsplit('/').next().unwrap();
        assert_eq!(tagged.platform().as_ref().unwrap().architecture().to_string(), arch);
    }
    let store = store_in(tmp.path(), "s390x");
    let err = registry
        .pull(&store, &reference, &Platform::parse("linux/s390x").unwrap(), &())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{dest}: no image for platform linux/s390x (the index has linux/amd64, linux/arm64)"
        )
    );
    assert!(store.list().unwrap().is_empty());

    // Pinned by the index digest: the same choice, and the digest is checked.
    let pinned =
        Reference::parse(&format!("{}/multi/app@{}", reg.host(), digest_of(&index))).unwrap();
    let store = store_in(tmp.path(), "pinned");
    let pulled =
        registry.pull(&store, &pinned, &Platform::parse("linux/arm64").unwrap(), &()).unwrap();
    assert_eq!(pulled.manifest_digest, digest_of(&arm));
    assert!(store.resolve(&pinned.to_string()).unwrap().is_some());
}

#[test]
fn kiln_pushes_an_index_with_chunked_uploads_and_mounts_across_repositories() {
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path(), "s");
    let amd =
        make_image(&store, &[vec![file("big", &noise(600_000, 7))]], Compression::None, "amd64");
    let arm = make_image(
        &store,
        &[vec![file("big", &noise(500_000, 8))]],
        Compression::Gzip { level: 1 },
        "arm64",
    );
    let index = make_index(&store, &[(&amd, "amd64"), (&arm, "arm64")]);
    let mut opts = options(tmp.path(), None, Some(false));
    opts.chunk_size = Some(100_000);
    let registry = Registry::new(opts).unwrap();
    let first = Reference::parse(&format!("{}/base/img:1", reg.host())).unwrap();
    let pushed = registry.push(&store, &index, &first, &()).unwrap();
    assert_eq!(pushed.digest, digest_of(&index));
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{first}")]);
    let doc: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(doc["manifests"].as_array().unwrap().len(), 2);
    // skopeo can read the arm64 image through the index, layer bytes included.
    let out = tmp.path().join("copy");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--override-arch=arm64",
        &format!("docker://{first}"),
        &format!("oci:{}:x", out.display()),
    ]);

    // kiln pulls the uncompressed (amd64) and gzip (arm64) layers back through the index.
    for (platform, want) in [("linux/amd64", &amd), ("linux/arm64", &arm)] {
        let fresh = store_in(tmp.path(), &format!("fresh-{}", platform.replace('/', "-")));
        let pulled =
            registry.pull(&fresh, &first, &Platform::parse(platform).unwrap(), &()).unwrap();
        assert_eq!(pulled.manifest_digest, digest_of(want));
        assert_store_verified(&fresh);
    }

    // The store now names an image of repository base/img on this registry: pushing the same
    // blobs to another repository mounts them instead of uploading.
    store.tag(&first.to_string(), amd.clone()).unwrap();
    let events = Mutex::new(Vec::new());
    let sink = |p: &Progress| events.lock().unwrap().push(p.clone());
    let second = Reference::parse(&format!("{}/other/img:1", reg.host())).unwrap();
    let pushed = registry.push(&store, &amd, &second, &sink).unwrap();
    assert_eq!((pushed.mounted, pushed.uploaded), (2, 0), "{:#?}", events.lock().unwrap());
    let mounted: Vec<_> = events
        .into_inner()
        .unwrap()
        .into_iter()
        .filter(|e| matches!(&e.status, ProgressStatus::Mounted { from } if from == "base/img"))
        .collect();
    assert_eq!(mounted.len(), 2);
    skopeo(&["inspect", "--tls-verify=false", &format!("docker://{second}")]);
}

#[test]
fn tls_with_basic_auth_needs_the_ca_and_the_password() {
    let reg = TestRegistry::secure("kiln", "s3cret-pw");
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path(), "s");
    let image =
        make_image(&store, &[vec![file("f", b"x")]], Compression::Gzip { level: 6 }, "amd64");
    let dest = Reference::parse(&format!("{}/secure/app:1", reg.host())).unwrap();

    // Without the CA: a TLS error that says what to do.
    let registry = Registry::new(options(tmp.path(), None, None)).unwrap();
    let err = registry.push(&store, &image, &dest, &()).unwrap_err();
    assert!(matches!(err, RegistryError::Tls { .. }), "{err}");
    assert!(err.to_string().contains("certs.d"), "{err}");

    // With the CA but no credentials: authentication required.
    let registry = Registry::new(options(tmp.path(), reg.ca_dir.as_deref(), None)).unwrap();
    let err = registry.push(&store, &image, &dest, &()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: authentication required: no credentials found (run kiln login {})",
            reg.host(),
            reg.host()
        )
    );

    // A wrong password is refused by login and nothing is written.
    let err = registry.login(&reg.host(), "kiln", "wrong").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: authentication required: invalid username or password", reg.host())
    );
    assert!(!err.to_string().contains("wrong"));
    assert!(!tmp.path().join("auth.json").exists());

    // The right one is stored as podman stores it, and then push and pull work.
    let file = registry.login(&reg.host(), "kiln", "s3cret-pw").unwrap();
    let auth: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(auth["auths"][reg.host()]["auth"], "a2lsbjpzM2NyZXQtcHc=");
    let registry = Registry::new(options(tmp.path(), reg.ca_dir.as_deref(), None)).unwrap();
    registry.push(&store, &image, &dest, &()).unwrap();
    let other = store_in(tmp.path(), "o");
    registry.pull(&other, &dest, &Platform::parse("linux/amd64").unwrap(), &()).unwrap();

    // --tls-verify=false works without the CA.
    let registry = Registry::new(options(tmp.path(), None, Some(false))).unwrap();
    let third = store_in(tmp.path(), "t");
    registry.pull(&third, &dest, &Platform::parse("linux/amd64").unwrap(), &()).unwrap();

    // skopeo reads it with the same auth file and CA.
    skopeo(&[
        "inspect",
        "--authfile",
        tmp.path().join("auth.json").to_str().unwrap(),
        "--cert-dir",
        reg.ca_dir.as_deref().unwrap().to_str().unwrap(),
        &format!("docker://{dest}"),
    ]);
    assert!(registry.logout(Some(&reg.host())).unwrap());
    assert!(!registry.logout(Some(&reg.host())).unwrap());
}

#[test]
fn bearer_tokens_from_the_token_server_for_pull_push_and_mount() {
    let reg = TestRegistry::start(
        true,
        AuthMode::Token { user: "tok".into(), password: "pw-tok".into() },
    );
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path(), "s");
    let image =
        make_image(&store, &[vec![file("t", b"token")]], Compression::Gzip { level: 6 }, "amd64");
    let dest = Reference::parse(&format!("{}/tok/app:1", reg.host())).unwrap();

    let registry = Registry::new(options(tmp.path(), reg.ca_dir.as_deref(), None)).unwrap();
    // Anonymous: the token server grants nothing, the registry refuses.
    let err = registry.push(&store, &image, &dest, &()).unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    registry.login(&reg.host(), "tok", "pw-tok").unwrap();
    let registry = Registry::new(options(tmp.path(), reg.ca_dir.as_deref(), None)).unwrap();
    registry.push(&store, &image, &dest, &()).unwrap();
    let token = reg.token.as_ref().unwrap();
    let requests = token.requests.lock().unwrap().clone();
    assert!(
        requests
            .iter()
            .any(|r| r.user.as_deref() == Some("tok")
                && r.scopes == ["repository:tok/app:pull,push"]),
        "{requests:#?}"
    );

    store.tag(&dest.to_string(), image.clone()).unwrap();
    let second = Reference::parse(&format!("{}/tok/copy:1", reg.host())).unwrap();
    let pushed = registry.push(&store, &image, &second, &()).unwrap();
    assert_eq!(pushed.mounted, 2);
    let requests = token.requests.lock().unwrap().clone();
    assert!(
        requests
            .iter()
            .any(|r| r.scopes == ["repository:tok/copy:pull,push", "repository:tok/app:pull"]),
        "{requests:#?}"
    );
    let other = store_in(tmp.path(), "o");
    registry.pull(&other, &second, &Platform::parse("linux/amd64").unwrap(), &()).unwrap();

    // An identity (refresh) token is exchanged with a POST.
    std::fs::write(
        tmp.path().join("auth.json"),
        format!(r#"{{"auths":{{"{}":{{"identitytoken":"refresh-tok"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let registry = Registry::new(options(tmp.path(), reg.ca_dir.as_deref(), None)).unwrap();
    let third = store_in(tmp.path(), "t");
    registry.pull(&third, &second, &Platform::parse("linux/amd64").unwrap(), &()).unwrap();
    assert!(token.requests.lock().unwrap().iter().any(|r| r.method == "POST" && r.granted));
}

#[test]
fn mirrors_from_registries_conf_are_tried_before_the_registry() {
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path(), "src");
    let image = make_image(
        &store,
        &[vec![file("m", b"mirrored")]],
        Compression::Gzip { level: 6 },
        "amd64",
    );
    let seed = Registry::new(options(tmp.path(), None, Some(false))).unwrap();
    let on_mirror = Reference::parse(&format!("{}/hub/library/app:1", reg.host())).unwrap();
    seed.push(&store, &image, &on_mirror, &()).unwrap();

    // docker.io is unreachable here; its mirror (this registry, under /hub) has the image.
    // A dead mirror listed first is skipped with a warning.
    std::fs::write(
        tmp.path().join("registries.conf"),
        format!(
            "[[registry]]\nlocation = \"docker.io\"\n[[registry.mirror]]\nlocation = \"127.0.0.1:1\"\ninsecure = true\n[[registry.mirror]]\nlocation = \"{}/hub\"\ninsecure = true\n",
            reg.host()
        ),
    )
    .unwrap();
    let registry = Registry::new(options(tmp.path(), None, None)).unwrap();
    let fresh = store_in(tmp.path(), "fresh");
    let pulled =
        registry.pull_name(&fresh, "app:1", &Platform::parse("linux/amd64").unwrap(), &()).unwrap();
    assert_eq!(pulled.reference.to_string(), "docker.io/library/app:1");
    assert_eq!(pulled.source, on_mirror);
    assert_eq!(pulled.manifest_digest, digest_of(&image));
    assert_eq!(pulled.warnings.len(), 1, "{:?}", pulled.warnings);
    assert!(pulled.warnings[0].starts_with("mirror 127.0.0.1:1 failed: "), "{:?}", pulled.warnings);
    assert!(fresh.resolve("docker.io/library/app:1").unwrap().is_some());
}

#[test]
fn short_names_try_each_search_registry_in_order() {
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path(), "src");
    let image =
        make_image(&store, &[vec![file("s", b"search")]], Compression::Gzip { level: 6 }, "amd64");
    let seed = Registry::new(options(tmp.path(), None, Some(false))).unwrap();
    let full = Reference::parse(&format!("{}/team/tool:1", reg.host())).unwrap();
    seed.push(&store, &image, &full, &()).unwrap();
    std::fs::write(
        tmp.path().join("registries.conf"),
        format!(
            "unqualified-search-registries = [\"127.0.0.1:1\", \"{h}\"]\n[[registry]]\nlocation = \"127.0.0.1:1\"\ninsecure = true\n[[registry]]\nlocation = \"{h}\"\ninsecure = true\n",
            h = reg.host()
        ),
    )
    .unwrap();
    let registry = Registry::new(options(tmp.path(), None, None)).unwrap();
    let fresh = store_in(tmp.path(), "fresh");
    let amd64 = Platform::parse("linux/amd64").unwrap();
    let pulled = registry.pull_name(&fresh, "team/tool:1", &amd64, &()).unwrap();
    assert_eq!(pulled.reference, full);
    assert!(fresh.resolve(&full.to_string()).unwrap().is_some());

    let err = registry.pull_name(&fresh, "team/absent:1", &amd64, &()).unwrap_err().to_string();
    assert!(err.starts_with("short name \"team/absent:1\": not found in any search registry (127.0.0.1:1/team/absent:1: "), "{err}");
    assert!(
        err.ends_with(&format!(
            "{h}/team/absent:1: manifest 1 not found in {h}/team/absent)",
            h = reg.host()
        )),
        "{err}"
    );
}
