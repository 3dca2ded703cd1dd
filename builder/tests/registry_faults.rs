//! A flaky network between kiln and a real registry: 500s, resets, truncated and corrupted
//! bodies injected by a proxy. kiln retries what is retryable, resumes broken downloads with
//! `Range`, rejects bad bytes, and never stores anything unverified.

mod registry_support;

use std::sync::Mutex;

use kiln_builder::platform::Platform;
use kiln_builder::reference::Reference;
use kiln_builder::registry::{Progress, ProgressStatus, Registry, RegistryError};
use kiln_cache::digest::Digest;
use kiln_cache::layer::Compression;
use kiln_cache::store::ImageStore;
use oci_spec::image::Descriptor;
use registry_support::*;

/// A registry holding one image of three layers (one of 3 MiB) under `faults/app:1`.
struct Fixture {
    reg: TestRegistry,
    tmp: tempfile::TempDir,
    image: Descriptor,
    big_layer: (Digest, u64),
}

fn fixture() -> Fixture {
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("src")).unwrap();
    let image = make_image(
        &store,
        &[
            vec![file("a", b"first layer")],
            vec![file("big", &noise(3 << 20, 42))],
            vec![file("c", b"third layer")],
        ],
        Compression::Gzip { level: 1 },
        "amd64",
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&store.blobs().read(&digest_of(&image)).unwrap()).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    let big = layers.iter().max_by_key(|l| l["size"].as_u64().unwrap()).unwrap();
    let big_layer =
        (big["digest"].as_str().unwrap().parse().unwrap(), big["size"].as_u64().unwrap());
    let registry = Registry::new(options(tmp.path(), None, Some(false))).unwrap();
    let dest = Reference::parse(&format!("{}/faults/app:1", reg.host())).unwrap();
    registry.push(&store, &image, &dest, &()).unwrap();
    Fixture { reg, tmp, image, big_layer }
}

fn pull_through(
    fx: &Fixture,
    proxy: &FaultProxy,
    store_name: &str,
) -> (ImageStore, Result<kiln_builder::registry::Pulled, RegistryError>, Vec<Progress>) {
    let store = ImageStore::open(&fx.tmp.path().join(store_name)).unwrap();
    let registry = Registry::new(options(fx.tmp.path(), None, Some(false))).unwrap();
    let reference = Reference::parse(&format!("{}/faults/app:1", proxy.host())).unwrap();
    let events = Mutex::new(Vec::new());
    let sink = |p: &Progress| events.lock().unwrap().push(p.clone());
    let result = registry.pull(&store, &reference, &Platform::parse("linux/amd64").unwrap(), &sink);
    (store, result, events.into_inner().unwrap())
}

#[test]
fn server_errors_and_resets_are_retried() {
    let fx = fixture();
    let big = fx.big_layer.0.to_string();
    let proxy = FaultProxy::start(
        fx.reg.addr(),
        vec![
            Rule::new("GET", "/manifests/1", Fault::Status(500), 2),
            Rule::new("GET", &big, Fault::Status(503), 1),
            Rule::new("GET", &big, Fault::Reset, 1),
            Rule::new("GET", "/blobs/", Fault::Status(502), 1),
        ],
    );
    let (store, result, events) = pull_through(&fx, &proxy, "dst");
    let pulled = result.unwrap();
    assert_eq!(pulled.manifest_digest, digest_of(&fx.image));
    let seen = proxy.seen();
    let manifest_gets = seen.iter().filter(|s| s.path.ends_with("/manifests/1")).count();
    assert_eq!(manifest_gets, 3, "{seen:#?}");
    let big_gets = seen.iter().filter(|s| s.path.contains(&big)).count();
    assert!(big_gets >= 3, "{seen:#?}");
    let retries: Vec<_> =
        events.iter().filter(|e| matches!(e.status, ProgressStatus::Retrying { .. })).collect();
    assert!(retries.len() >= 2, "{events:#?}");
    assert!(store.resolve(&format!("{}/faults/app:1", proxy.host())).unwrap().is_some());
    assert_store_verified(&store);
}

#[test]
fn a_truncated_body_is_resumed_with_a_range_request() {
    let fx = fixture();
    let big = fx.big_layer.0.to_string();
    let cut = 1_000_000;
    let proxy = FaultProxy::start(
        fx.reg.addr(),
        vec![
            Rule::new("GET", &big, Fault::Truncate(cut), 1),
            Rule::new("GET", "/manifests/", Fault::Truncate(10), 1),
        ],
    );
    let (store, result, _) = pull_through(&fx, &proxy, "dst");
    result.unwrap();
    let ranges: Vec<Option<String>> =
        proxy.seen().into_iter().filter(|s| s.path.contains(&big)).map(|s| s.range).collect();
    assert_eq!(ranges, [None, Some(format!("bytes={cut}-"))]);
    assert_eq!(store.blobs().size(&fx.big_layer.0).unwrap(), fx.big_layer.1);
    assert_store_verified(&store);
}

#[test]
fn a_blob_with_the_wrong_digest_is_rejected_and_nothing_is_stored() {
    let fx = fixture();
    let big = fx.big_layer.0.to_string();
    let proxy = FaultProxy::start(fx.reg.addr(), vec![Rule::new("GET", &big, Fault::Corrupt, 100)]);
    let (store, result, _) = pull_through(&fx, &proxy, "dst");
    let err = result.unwrap_err();
    let RegistryError::DigestMismatch { expected, .. } = &err else { panic!("{err}") };
    assert_eq!(*expected, fx.big_layer.0);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "blob from {}/faults/app: digest mismatch: expected {big}, got sha256:",
            proxy.host()
        )),
        "{text}"
    );
    assert!(text.ends_with("(the registry sent corrupt data; nothing was stored)"), "{text}");
    // A corrupt blob is not retried: one request for it.
    assert_eq!(proxy.seen().iter().filter(|s| s.path.contains(&big)).count(), 1);
    assert!(!store.blobs().contains(&fx.big_layer.0));
    assert!(!store.blobs().contains(&digest_of(&fx.image)), "the manifest must not be stored");
    assert!(store.list().unwrap().is_empty());
    assert_store_verified(&store);
}

#[test]
fn errors_that_persist_give_up_with_a_clear_message() {
    let fx = fixture();
    let big = fx.big_layer.0.to_string();
    let proxy =
        FaultProxy::start(fx.reg.addr(), vec![Rule::new("GET", &big, Fault::Status(503), 100)]);
    let (store, result, _) = pull_through(&fx, &proxy, "dst");
    let err = result.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("http://{}/v2/faults/app/blobs/{big}: HTTP 503 (after 4 attempts)", proxy.host())
    );
    assert_eq!(proxy.seen().iter().filter(|s| s.path.contains(&big)).count(), 4);
    assert!(store.list().unwrap().is_empty());
    assert_store_verified(&store);

    // Not found is not retried.
    let registry = Registry::new(options(fx.tmp.path(), None, Some(false))).unwrap();
    let missing = Reference::parse(&format!("{}/faults/nothing:1", proxy.host())).unwrap();
    let err = registry.pull(&store, &missing, &Platform::host(), &()).unwrap_err();
    assert_eq!(err.to_string(), format!("manifest 1 not found in {}/faults/nothing", proxy.host()));
}

#[test]
fn pushes_survive_failed_uploads() {
    let fx = fixture();
    let proxy = FaultProxy::start(
        fx.reg.addr(),
        vec![
            Rule::new("PUT", "/blobs/uploads/", Fault::Status(500), 1),
            Rule::new("PUT", "/blobs/uploads/", Fault::Reset, 1),
            Rule::new("POST", "/blobs/uploads/", Fault::Status(502), 1),
            Rule::new("PUT", "/manifests/", Fault::Status(503), 1),
        ],
    );
    let store = ImageStore::open(&fx.tmp.path().join("src")).unwrap();
    let registry = Registry::new(options(fx.tmp.path(), None, Some(false))).unwrap();
    let dest = Reference::parse(&format!("{}/faults/pushed:1", proxy.host())).unwrap();
    let pushed = registry.push(&store, &fx.image, &dest, &()).unwrap();
    assert_eq!(pushed.digest, digest_of(&fx.image));
    let direct = format!("{}/faults/pushed:1", fx.reg.host());
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{direct}")]);
    assert_eq!(Digest::of_bytes(raw.as_bytes()), pushed.digest);
    let out = fx.tmp.path().join("check");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{direct}"),
        &format!("oci:{}:x", out.display()),
    ]);
}
