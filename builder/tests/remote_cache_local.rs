//! `--cache-to` / `--cache-from` with `type=local` (an OCI layout directory) through the builder
//! API, between two kiln roots ("runners"): every step hits and the image is the same; `min`
//! leaves out the stages the final image does not contain; corrupt, foreign and missing caches
//! are warnings; a failed export fails the build unless `ignore-error=true`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kiln_builder::events::Event;
use kiln_builder::remote_cache::{CacheExport, CacheImport};
use kiln_builder::{BuildError, BuildRequest, BuildResult, Builder, DockerfileInput};
use serde_json::Value;

const DOCKERFILE: &str = "FROM scratch AS deps\nCOPY deps.txt /deps/\nWORKDIR /deps\n\
    FROM scratch\nCOPY --from=deps /deps /deps\nCOPY app.txt /app/\nENV A=1\n";

/// One runner: a kiln root and its own copy of the context.
struct Runner {
    dir: tempfile::TempDir,
}

impl Runner {
    fn new(app: &str) -> Runner {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = dir.path().join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("deps.txt"), "deps\n").unwrap();
        std::fs::write(ctx.join("app.txt"), app).unwrap();
        Runner { dir }
    }

    fn build(&self, from: &[&str], to: &[&str]) -> (Result<BuildResult, BuildError>, Vec<Event>) {
        let dockerfile =
            DockerfileInput { name: "Dockerfile".into(), path: None, text: DOCKERFILE.into() };
        let mut req = BuildRequest::new(self.dir.path().join("ctx"), dockerfile);
        req.cache_from = from.iter().map(|s| CacheImport::parse(s).unwrap()).collect();
        req.cache_to = to.iter().map(|s| CacheExport::parse(s).unwrap()).collect();
        let builder = Builder::open(&self.dir.path().join("root")).unwrap();
        let events = Mutex::new(Vec::new());
        let sink = |e: Event| events.lock().unwrap().push(e);
        let result = builder.build(&req, &sink);
        (result, events.into_inner().unwrap())
    }
}

/// (instruction, cached) of the filesystem steps, in start order.
fn steps(events: &[Event]) -> Vec<(String, bool)> {
    let mut started = Vec::new();
    for e in events {
        if let Event::StepStarted { vertex, text, .. } = e
            && (text.starts_with("COPY") || text.starts_with("WORKDIR"))
        {
            started.push((*vertex, text.clone()));
        }
    }
    started
        .into_iter()
        .map(|(v, text)| {
            let cached = events
                .iter()
                .any(|e| matches!(e, Event::StepDone { vertex, cached: true, .. } if *vertex == v));
            (text, cached)
        })
        .collect()
}

fn warnings(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Warning(w) => Some(w.clone()),
            _ => None,
        })
        .collect()
}

fn notices(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Notice(w) => Some(w.clone()),
            _ => None,
        })
        .collect()
}

const ALL: [&str; 4] =
    ["COPY deps.txt /deps/", "WORKDIR /deps", "COPY /deps /deps", "COPY app.txt /app/"];

fn expect(cached: [bool; 4]) -> Vec<(String, bool)> {
    ALL.iter().zip(cached).map(|(t, c)| (t.to_string(), c)).collect()
}

/// The cache layout's manifest and config.
fn read_cache(dir: &Path) -> (Value, Value) {
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "latest");
    let blob = |d: &Value| -> PathBuf {
        dir.join("blobs/sha256").join(d.as_str().unwrap().trim_start_matches("sha256:"))
    };
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(blob(&index["manifests"][0]["digest"])).unwrap())
            .unwrap();
    let config: Value =
        serde_json::from_slice(&std::fs::read(blob(&manifest["config"]["digest"])).unwrap())
            .unwrap();
    (manifest, config)
}

#[test]
fn a_local_cache_makes_an_empty_root_build_the_same_image_from_cache() {
    let a = Runner::new("app v1\n");
    let out = tempfile::tempdir().unwrap();
    let (max_dir, min_dir) = (out.path().join("max"), out.path().join("min"));
    let to_max = format!("type=local,dest={},mode=max", max_dir.display());
    let to_min = format!("type=local,dest={}", min_dir.display());
    let (built, events) = a.build(&[], &[&to_max, &to_min]);
    let built = built.unwrap();
    assert_eq!(steps(&events), expect([false; 4]));
    // `COPY /deps /deps` makes the same layer as `COPY deps.txt /deps/`: one blob, listed once.
    assert_eq!(
        notices(&events),
        vec![
            format!(
                "cache exported to {}:latest: 4 steps, 2 layers, 0 cache mounts",
                max_dir.display()
            ),
            format!(
                "cache exported to {}:latest: 2 steps, 2 layers, 0 cache mounts",
                min_dir.display()
            ),
        ]
    );

    let (manifest, config) = read_cache(&max_dir);
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.kiln.cache.config.v1+json");
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 2);
    assert_eq!(config["format"], "kiln-cache-v1");
    let descriptions: Vec<&str> = config["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["description"].as_str().unwrap())
        .collect();
    assert_eq!(descriptions, ALL);
    // WORKDIR of a directory that exists changes nothing: a record without a layer.
    assert_eq!(config["records"][1]["layer"], Value::Null);

    // max: every step of both stages comes from the cache, and the image is the same.
    let b = Runner::new("app v1\n");
    let from_max = format!("type=local,src={}", max_dir.display());
    let (result, events) = b.build(&[&from_max], &[]);
    let result = result.unwrap();
    assert_eq!(steps(&events), expect([true; 4]));
    assert_eq!(result.manifest_digest, built.manifest_digest);
    assert_eq!(result.config_digest, built.config_digest);
    assert!(warnings(&events).is_empty(), "{:?}", warnings(&events));
    // The records are in B's own index now: a second build hits locally.
    let (_, events) = b.build(&[], &[]);
    assert_eq!(steps(&events), expect([true; 4]));

    // min: the deps stage is not in the final image, so it runs; the final stage hits.
    let c = Runner::new("app v1\n");
    let from_min = format!("type=local,src={}", min_dir.display());
    let (result, events) = c.build(&[&from_min], &[]);
    assert_eq!(steps(&events), expect([false, false, true, true]));
    assert_eq!(result.unwrap().manifest_digest, built.manifest_digest);

    // One file changed on the runner: only the step that reads it runs.
    let d = Runner::new("app v2\n");
    let (result, events) = d.build(&[&from_max], &[]);
    assert_eq!(steps(&events), expect([true, true, true, false]));
    assert_ne!(result.unwrap().manifest_digest, built.manifest_digest);
}

#[test]
fn zstd_caches_give_zstd_layers_with_the_same_content() {
    let a = Runner::new("app\n");
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("cache");
    let to = format!("type=local,dest={},mode=max,compression=zstd", dir.display());
    let (built, _) = a.build(&[], &[&to]);
    let built = built.unwrap();
    let (manifest, _) = read_cache(&dir);
    for layer in manifest["layers"].as_array().unwrap() {
        assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd");
    }
    let b = Runner::new("app\n");
    let from = format!("type=local,src={}", dir.display());
    let (result, events) = b.build(&[&from], &[]);
    assert_eq!(steps(&events), expect([true; 4]));
    let result = result.unwrap();
    // The image's own layers are brought to the build's compression (gzip by default) with
    // kiln's deterministic encoder: the zstd cache gives the very image the first runner made.
    assert_eq!(result.manifest_digest, built.manifest_digest);
    assert_eq!(result.config_digest, built.config_digest);
}

#[test]
fn unusable_local_caches_are_warnings_and_the_build_runs() {
    let a = Runner::new("app\n");
    let out = tempfile::tempdir().unwrap();
    let good = out.path().join("good");
    let to = format!("type=local,dest={},mode=max", good.display());
    a.build(&[], &[&to]).0.unwrap();

    // Missing directory, and a tag the layout does not have.
    let missing = out.path().join("missing");
    let b = Runner::new("app\n");
    let (result, events) = b.build(
        &[
            &format!("type=local,src={}", missing.display()),
            &format!("type=local,src={},tag=v9", good.display()),
        ],
        &[],
    );
    result.unwrap();
    assert_eq!(
        warnings(&events),
        vec![
            format!(
                "cache {}:latest cannot be used: {}/index.json does not exist; building without it",
                missing.display(),
                missing.display()
            ),
            format!(
                "cache {}:v9 cannot be used: {}/index.json has no manifest named \"v9\"; building without it",
                good.display(),
                good.display()
            ),
        ]
    );
    assert_eq!(steps(&events), expect([false; 4]));

    // Foreign: an image layout, not a cache.
    let image = out.path().join("image");
    let dockerfile =
        DockerfileInput { name: "Dockerfile".into(), path: None, text: DOCKERFILE.into() };
    let mut req = BuildRequest::new(a.dir.path().join("ctx"), dockerfile);
    req.outputs = vec![kiln_builder::export::Output::Oci {
        dest: kiln_builder::export::Dest::Path(image.clone()),
        tar: Some(false),
        image: Default::default(),
    }];
    req.tags = vec![kiln_builder::reference::ImageName::parse("x:latest").unwrap()];
    Builder::open(&a.dir.path().join("root")).unwrap().build(&req, &()).unwrap();
    let c = Runner::new("app\n");
    let (result, events) = c.build(&[&format!("type=local,src={}", image.display())], &[]);
    result.unwrap();
    assert_eq!(
        warnings(&events),
        vec![format!(
            "cache {}:latest cannot be used: not a kiln cache (its config is application/vnd.oci.image.config.v1+json); building without it",
            image.display()
        )]
    );

    // Corrupt config: the copy is refused by digest, nothing is imported.
    let (manifest, _) = read_cache(&good);
    let config_blob = good
        .join("blobs/sha256")
        .join(manifest["config"]["digest"].as_str().unwrap().trim_start_matches("sha256:"));
    let original = std::fs::read(&config_blob).unwrap();
    std::fs::write(&config_blob, b"{\"format\":\"kiln-cache-v1\"}").unwrap();
    let d = Runner::new("app\n");
    let from = format!("type=local,src={}", good.display());
    let (result, events) = d.build(&[&from], &[]);
    result.unwrap();
    let w = warnings(&events);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with(&format!(
            "cache {}:latest cannot be used: reading {}",
            good.display(),
            config_blob.display()
        )),
        "{w:?}"
    );
    assert!(w[0].contains("digest mismatch") || w[0].contains("does not match"), "{w:?}");
    assert_eq!(steps(&events), expect([false; 4]));
    std::fs::write(&config_blob, original).unwrap();

    // Corrupt layer: the config is fine, but the step whose layer is bad runs instead.
    let app_layer = manifest["layers"].as_array().unwrap().last().unwrap();
    let layer_blob = good
        .join("blobs/sha256")
        .join(app_layer["digest"].as_str().unwrap().trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&layer_blob).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&layer_blob, bytes).unwrap();
    let e = Runner::new("app\n");
    let (result, events) = e.build(&[&from], &[]);
    result.unwrap();
    let w = warnings(&events);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with(&format!("cache {}:latest: COPY app.txt /app/: reading", good.display())),
        "{w:?}"
    );
    assert!(w[0].ends_with("; the step runs instead"), "{w:?}");
    assert_eq!(steps(&events), expect([true, true, true, false]));
}

#[test]
fn a_failed_export_fails_the_build_unless_ignored() {
    let a = Runner::new("app\n");
    let file = a.dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let to = format!("type=local,dest={}", file.display());
    let (result, _) = a.build(&[], &[&to]);
    let err = result.unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "exporting the cache to {}:latest: {} exists and is not a directory (add ignore-error=true to --cache-to to build anyway)",
            file.display(),
            file.display()
        )
    );
    let (result, events) = a.build(&[], &[&format!("{to},ignore-error=true")]);
    result.unwrap();
    let w = warnings(&events);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].ends_with("(ignored: ignore-error=true)"), "{w:?}");
}
