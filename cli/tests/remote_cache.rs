//! `--cache-to` / `--cache-from type=registry` end to end: two kiln roots (two CI "runners") and
//! a real `docker-registry`. Runner A builds and exports its cache; runner B starts empty and
//! builds from it: every step CACHED and the same image, one changed file reruns only what reads
//! it, `mode=min` vs `max` on a multi-stage build, cache mounts carried over, and missing,
//! foreign and corrupt caches give a warning and a good build.

mod common;
#[path = "../../builder/tests/registry_support/mod.rs"]
mod registry_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use registry_support::{TestRegistry, skopeo};
use serde_json::Value;

/// One runner: its own kiln root, HOME and copy of the context (busybox + `files`).
struct Runner {
    env: Env,
    who: As,
}

impl Runner {
    fn new(who: As, dockerfile: &str, files: &[(&str, &str)]) -> Runner {
        let env = Env::for_user(who);
        let mut all = vec![("Dockerfile", dockerfile)];
        all.extend_from_slice(files);
        busybox_context(&env, who, &all);
        let home = env.path("home");
        std::fs::create_dir_all(&home).unwrap();
        if who == As::Rootless {
            run_ok(Command::new("chown").arg("kilntest:kilntest").arg(&home));
        }
        Runner { env, who }
    }

    fn ctx(&self) -> PathBuf {
        self.env.path("ctx")
    }

    fn write(&self, files: &[(&str, &str)]) {
        self.env.write_as(self.who, &self.ctx(), files);
    }

    /// `kiln build --progress plain --tls-verify=false ARGS CTX`: (image id, stderr).
    fn build(&self, args: &[&str]) -> (String, String) {
        let out = self.build_output(args);
        let err = stderr(&out);
        assert!(out.status.success(), "kiln build {args:?} failed:\n{err}");
        (String::from_utf8_lossy(&out.stdout).trim().to_string(), err)
    }

    fn build_output(&self, args: &[&str]) -> std::process::Output {
        let ctx = self.ctx();
        let mut all = vec!["build", "--progress", "plain", "--tls-verify=false"];
        all.extend_from_slice(args);
        all.push(ctx.to_str().unwrap());
        let mut cmd = self.env.kiln_cmd_as(self.who, &all);
        if self.who == As::Root {
            cmd.env("HOME", self.env.path("home"))
                .env_remove("REGISTRY_AUTH_FILE")
                .env_remove("DOCKER_CONFIG")
                .env_remove("XDG_CONFIG_HOME");
        }
        cmd.output().expect("run kiln")
    }

    /// Builds into an OCI layout; returns (layout dir, stderr).
    fn build_to_layout(&self, tag: &str, args: &[&str]) -> (PathBuf, String) {
        let dest = self.env.path(&format!("out-{tag}"));
        let output = format!("type=oci,dest={}", dest.display());
        let name = format!("rc:{tag}");
        let mut all = vec!["-t", &name, "--output", &output];
        all.extend_from_slice(args);
        let (_, err) = self.build(&all);
        (dest, err)
    }
}

/// The steps that were not reported CACHED (filesystem steps only).
fn ran(stderr: &str) -> Vec<String> {
    rebuilt(stderr)
}

/// Every COPY/RUN/WORKDIR step, and whether it was CACHED.
fn fs_steps(stderr: &str) -> Vec<(String, bool)> {
    steps(stderr)
        .into_iter()
        .filter(|(t, _)| ["COPY", "RUN", "WORKDIR", "ADD"].iter().any(|k| t.starts_with(k)))
        .collect()
}

fn warnings(stderr: &str) -> Vec<&str> {
    stderr.lines().filter_map(|l| l.strip_prefix("WARNING: ")).collect()
}

fn notes<'a>(stderr: &'a str, prefix: &str) -> Vec<&'a str> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("NOTE: "))
        .filter(|l| l.starts_with(prefix))
        .collect()
}

/// A file of the image in the layout at `layout` (tag `tag`), read from its layers top down.
fn image_file(layout: &Path, tag: &str, path: &str) -> String {
    let manifest = skopeo_manifest(layout, tag);
    for layer in manifest["layers"].as_array().unwrap().iter().rev() {
        let blob = layout
            .join("blobs/sha256")
            .join(layer["digest"].as_str().unwrap().trim_start_matches("sha256:"));
        let out = Command::new("tar").arg("-xzOf").arg(&blob).arg(path).output().unwrap();
        if out.status.success() {
            return String::from_utf8(out.stdout).unwrap();
        }
    }
    panic!("{path} is in no layer of {}", layout.display());
}

/// The registry's stored copy of a blob (to corrupt it).
fn stored_blob(reg: &TestRegistry, digest: &str) -> PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    reg.dir
        .path()
        .join("data/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

/// Uploads a blob to `repo` with curl (anything, unlike kiln, which only pushes what it built).
fn put_blob(reg: &TestRegistry, repo: &str, data: &[u8]) {
    let digest = kiln_cache::digest::Digest::of_bytes(data);
    let head = run_ok(
        Command::new("curl")
            .args(["-sS", "-D", "-", "-o", "/dev/null", "-X", "POST"])
            .arg(format!("http://{}/v2/{repo}/blobs/uploads/", reg.host())),
    );
    let location = head
        .lines()
        .find_map(|l| l.strip_prefix("Location: ").or_else(|| l.strip_prefix("location: ")))
        .expect("upload location")
        .trim()
        .to_string();
    let file = reg.dir.path().join("upload.bin");
    std::fs::write(&file, data).unwrap();
    let code = run_ok(
        Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--data-binary"])
            .arg(format!("@{}", file.display()))
            .args(["-H", "Content-Type: application/octet-stream"])
            .arg(format!("{location}&digest={digest}")),
    );
    assert_eq!(code, "201");
}

/// Puts a manifest under `repo:tag` with curl.
fn put_manifest(reg: &TestRegistry, repo: &str, tag: &str, manifest: &[u8]) {
    let file = reg.dir.path().join("manifest.json");
    std::fs::write(&file, manifest).unwrap();
    let code = run_ok(
        Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--data-binary"])
            .arg(format!("@{}", file.display()))
            .args(["-H", "Content-Type: application/vnd.oci.image.manifest.v1+json"])
            .arg(format!("http://{}/v2/{repo}/manifests/{tag}", reg.host())),
    );
    assert_eq!(code, "201");
}

fn raw_manifest(reference: &str) -> Value {
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{reference}")]);
    serde_json::from_str(&raw).unwrap()
}

const SIMPLE: &str = "FROM scratch\nCOPY rootfs/ /\nRUN mkdir /work && echo built > /work/out\n\
    COPY app.txt /app/\nRUN cat /app/app.txt > /app/copy\nENV X=1\n";

#[test]
fn a_second_runner_builds_every_step_from_the_registry_cache() {
    let reg = TestRegistry::plain();
    let cache = format!("{}/cache/app:main", reg.host());
    let a = Runner::new(As::Root, SIMPLE, &[("app.txt", "v1\n")]);
    let to = format!("type=registry,ref={cache}");
    let meta_a = a.env.path("meta.json");
    let (id_a, err) = a.build(&["--cache-to", &to, "--metadata-file", meta_a.to_str().unwrap()]);
    assert!(fs_steps(&err).iter().all(|(_, cached)| !cached), "{err}");
    let exported = notes(&err, "cache exported to ");
    assert_eq!(exported.len(), 1, "{err}");
    assert!(
        exported[0].ends_with(
            ": 4 steps, 4 layers, 0 cache mounts (5 blobs uploaded, 0 already there, 0 mounted)"
        ),
        "{err}"
    );
    // In the registry: an OCI image manifest with kiln's cache config.
    let manifest = raw_manifest(&cache);
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.kiln.cache.config.v1+json");
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 4);

    // Runner B starts empty: every step is CACHED and the image is the same, byte for byte.
    let b = Runner::new(As::Root, SIMPLE, &[("app.txt", "v1\n")]);
    let from = format!("type=registry,ref={cache}");
    let meta_b = b.env.path("meta.json");
    let (id_b, err) =
        b.build(&["--cache-from", &from, "--metadata-file", meta_b.to_str().unwrap()]);
    assert_eq!(
        fs_steps(&err),
        vec![
            ("COPY rootfs/ /".to_string(), true),
            ("RUN /bin/sh -c mkdir /work && echo built > /work/out".to_string(), true),
            ("COPY app.txt /app/".to_string(), true),
            ("RUN /bin/sh -c cat /app/app.txt > /app/copy".to_string(), true),
        ],
        "{err}"
    );
    assert_eq!(
        notes(&err, "importing cache "),
        vec![format!("importing cache {cache}: 4 steps, 0 cache mounts")]
    );
    assert!(warnings(&err).is_empty(), "{err}");
    assert_eq!(id_b, id_a);
    let digest = |p: &Path| -> Value {
        serde_json::from_slice::<Value>(&std::fs::read(p).unwrap()).unwrap()["containerimage.digest"].clone()
    };
    assert_eq!(digest(&meta_b), digest(&meta_a));

    // One changed file on a fresh runner: only the steps from the COPY that reads it run.
    let c = Runner::new(As::Root, SIMPLE, &[("app.txt", "v2\n")]);
    let (id_c, err) = c.build(&["--cache-from", &from]);
    assert_eq!(
        ran(&err),
        vec![
            "COPY app.txt /app/".to_string(),
            "RUN /bin/sh -c cat /app/app.txt > /app/copy".to_string()
        ],
        "{err}"
    );
    assert_ne!(id_c, id_a);

    // Exporting again: the registry has every blob (HEAD), nothing is uploaded.
    let (_, err) = a.build(&["--cache-to", &to]);
    assert!(
        notes(&err, "cache exported to ")[0]
            .ends_with("(0 blobs uploaded, 5 already there, 0 mounted)"),
        "{err}"
    );
    // To another repository of the registry: the blobs of an image pushed there are mounted.
    let image = format!("{}/apps/app:1", reg.host());
    a.build(&["-t", &image, "--push"]);
    let other = format!("type=registry,ref={}/cache/other:main", reg.host());
    let (_, err) = a.build(&["--cache-to", &other]);
    let line = notes(&err, "cache exported to ")[0];
    assert!(line.ends_with("(1 blobs uploaded, 0 already there, 4 mounted)"), "{line}");
}

const STAGES: &str = "FROM scratch AS base\nCOPY rootfs/ /\n\
    FROM base AS build\nRUN echo compiled > /artifact\n\
    FROM base\nCOPY --from=build /artifact /artifact\nRUN cat /artifact > /copy\n";

#[test]
fn max_lets_another_runner_skip_intermediate_stages_and_min_does_not() {
    let reg = TestRegistry::plain();
    let min = format!("{}/cache/stages:min", reg.host());
    let max = format!("{}/cache/stages:max", reg.host());
    let a = Runner::new(As::Root, STAGES, &[]);
    let (id_a, err) = a.build(&[
        "--cache-to",
        &format!("type=registry,ref={min},mode=min"),
        "--cache-to",
        &format!("type=registry,ref={max},mode=max"),
    ]);
    let exported = notes(&err, "cache exported to ");
    assert!(exported[0].contains(": 3 steps, 3 layers, 0 cache mounts"), "{err}");
    // `COPY /artifact /artifact` makes the same layer as the RUN that wrote it: listed once,
    // and the second export finds in the registry what the first one sent.
    assert!(
        exported[1]
            .contains(": 4 steps, 3 layers, 0 cache mounts (1 blobs uploaded, 3 already there"),
        "{err}"
    );

    let all = |cached: [bool; 4]| -> Vec<(String, bool)> {
        [
            "COPY rootfs/ /",
            "RUN /bin/sh -c echo compiled > /artifact",
            "COPY /artifact /artifact",
            "RUN /bin/sh -c cat /artifact > /copy",
        ]
        .iter()
        .zip(cached)
        .map(|(t, c)| (t.to_string(), c))
        .collect()
    };
    let b = Runner::new(As::Root, STAGES, &[]);
    let (id_b, err) = b.build(&["--cache-from", &format!("type=registry,ref={max}")]);
    assert_eq!(fs_steps(&err), all([true; 4]), "{err}");
    assert_eq!(id_b, id_a);

    // min holds the final image's steps: the build stage runs again; the final stage, whose
    // keys depend on the build stage's definition (not on its result), still hits.
    let c = Runner::new(As::Root, STAGES, &[]);
    let (id_c, err) = c.build(&["--cache-from", &format!("type=registry,ref={min}")]);
    assert_eq!(fs_steps(&err), all([true, false, true, true]), "{err}");
    assert_eq!(id_c, id_a);
}

const MOUNTS: &str = "FROM scratch\nCOPY rootfs/ /\nCOPY v.txt /v.txt\n\
    RUN --mount=type=cache,target=/dl cat /v.txt >> /dl/log && cp /dl/log /log\n";

fn cache_mounts_are_restored_on_the_other_runner(who: As) {
    let reg = TestRegistry::plain();
    let cache = format!(
        "{}/cache/mounts:{}",
        reg.host(),
        if who == As::Root { "root" } else { "rootless" }
    );
    let a = Runner::new(who, MOUNTS, &[("v.txt", "one\n")]);
    let (_, err) = a.build(&["--cache-to", &format!("type=registry,ref={cache},mounts=true")]);
    assert!(
        notes(&err, "cache exported to ")[0].contains(": 3 steps, 3 layers, 1 cache mounts"),
        "{err}"
    );

    // B changes the file the RUN reads: the RUN runs, with A's download directory in place.
    let b = Runner::new(who, MOUNTS, &[("v.txt", "two\n")]);
    let (layout, err) =
        b.build_to_layout("b", &["--cache-from", &format!("type=registry,ref={cache}")]);
    assert_eq!(
        ran(&err),
        vec![
            "COPY v.txt /v.txt".to_string(),
            format!("RUN /bin/sh -c cat /v.txt >> /dl/log && cp /dl/log /log")
        ],
        "{err}"
    );
    assert_eq!(
        notes(&err, "cache mount "),
        vec![format!("cache mount /dl restored from {cache} (4 bytes)")],
        "{err}"
    );
    assert_eq!(image_file(&layout, "b", "log"), "one\ntwo\n");
    // Once the directory exists locally it is B's own: nothing is restored over it.
    b.write(&[("v.txt", "three\n")]);
    let (layout, err) =
        b.build_to_layout("b2", &["--cache-from", &format!("type=registry,ref={cache}")]);
    assert!(notes(&err, "cache mount ").is_empty(), "{err}");
    assert_eq!(image_file(&layout, "b2", "log"), "one\ntwo\nthree\n");
}

#[test]
fn cache_mounts_are_restored_on_the_other_runner_as_root() {
    cache_mounts_are_restored_on_the_other_runner(As::Root);
}

#[test]
fn cache_mounts_are_restored_on_the_other_runner_rootless() {
    cache_mounts_are_restored_on_the_other_runner(As::Rootless);
}

#[test]
fn cache_mounts_stay_home_without_mounts_true_or_over_the_limit() {
    let reg = TestRegistry::plain();
    let plain = format!("{}/cache/nomounts:1", reg.host());
    let small = format!("{}/cache/nomounts:2", reg.host());
    let a = Runner::new(As::Root, MOUNTS, &[("v.txt", "one\n")]);
    let (_, err) = a.build(&[
        "--cache-to",
        &format!("type=registry,ref={plain}"),
        "--cache-to",
        &format!("type=registry,ref={small},mounts=true,mounts-max-size=3"),
    ]);
    assert_eq!(
        notes(&err, "cache mount "),
        vec!["cache mount /dl holds 4 bytes, more than mounts-max-size=3: not exported"],
        "{err}"
    );
    for cache in [&plain, &small] {
        let b = Runner::new(As::Root, MOUNTS, &[("v.txt", "two\n")]);
        let (layout, err) =
            b.build_to_layout("b", &["--cache-from", &format!("type=registry,ref={cache}")]);
        assert!(notes(&err, "cache mount ").is_empty(), "{err}");
        assert_eq!(image_file(&layout, "b", "log"), "two\n");
    }
}

#[test]
fn missing_foreign_and_corrupt_caches_warn_and_the_build_runs_uncached() {
    let reg = TestRegistry::plain();
    let a = Runner::new(As::Root, SIMPLE, &[("app.txt", "v1\n")]);
    let cache = format!("{}/cache/app:main", reg.host());
    let image = format!("{}/apps/app:1", reg.host());
    a.build(&["--cache-to", &format!("type=registry,ref={cache}"), "-t", &image, "--push"]);
    let uncached = |err: &str| assert!(fs_steps(err).iter().all(|(_, c)| !c), "{err}");

    // Missing: no such tag, and no such repository.
    let b = Runner::new(As::Root, SIMPLE, &[("app.txt", "v1\n")]);
    let nope = format!("{}/cache/app:nope", reg.host());
    let none = format!("{}/nothing/here:1", reg.host());
    let (_, err) =
        b.build(&["--cache-from", &nope, "--cache-from", &format!("type=registry,ref={none}")]);
    assert_eq!(
        warnings(&err),
        vec![
            format!(
                "cache {nope} cannot be used: manifest nope not found in {}/cache/app; building without it",
                reg.host()
            ),
            format!(
                "cache {none} cannot be used: manifest 1 not found in {}/nothing/here; building without it",
                reg.host()
            ),
        ]
    );
    uncached(&err);

    // Foreign: an image, not a cache.
    let c = Runner::new(As::Root, SIMPLE, &[("app.txt", "v1\n")]);
    let (_, err) = c.build(&["--cache-from", &image]);
    assert_eq!(
        warnings(&err),
        vec![format!(
            "cache {image} cannot be used: not a kiln cache (its config is application/vnd.oci.image.config.v1+json); building without it"
        )]
    );
    uncached(&err);

    // A corrupt layer: that step runs, the others still come from the cache.
    let manifest = raw_manifest(&cache);
    let layers = manifest["layers"].as_array().unwrap();
    let app_layer = stored_blob(&reg, layers[2]["digest"].as_str().unwrap());
    let good_layer = std::fs::read(&app_layer).unwrap();
    let mut bad = good_layer.clone();
    let n = bad.len();
    bad[n / 2] ^= 0xff;
    std::fs::write(&app_layer, &bad).unwrap();
    let d = Runner::new(As::Root, SIMPLE, &[("app.txt", "v1\n")]);
    let (_, err) = d.build(&["--cache-from", &cache]);
    let w = warnings(&err);
    assert_eq!(w.len(), 1, "{err}");
    assert!(
        w[0].starts_with(&format!(
            "cache {cache}: COPY app.txt /app/: fetching {}",
            layers[2]["digest"].as_str().unwrap()
        )),
        "{err}"
    );
    assert!(w[0].ends_with("; the step runs instead"), "{err}");
    // Keys say what produced a state, not what it holds: the RUN after it still hits.
    assert_eq!(ran(&err), vec!["COPY app.txt /app/".to_string()], "{err}");
    std::fs::write(&app_layer, &good_layer).unwrap();

    // A corrupt config: refused by digest, nothing is imported.
    let config = stored_blob(&reg, manifest["config"]["digest"].as_str().unwrap());
    let good_config = std::fs::read(&config).unwrap();
    let mut bad = good_config.clone();
    bad[10] ^= 0x01;
    std::fs::write(&config, &bad).unwrap();
    let e = Runner::new(As::Root, SIMPLE, &[("app.txt", "v1\n")]);
    let (_, err) = e.build(&["--cache-from", &cache]);
    let w = warnings(&err);
    assert_eq!(w.len(), 1, "{err}");
    assert!(w[0].starts_with(&format!("cache {cache} cannot be used: ")), "{err}");
    assert!(w[0].contains("digest"), "{err}");
    uncached(&err);
    std::fs::write(&config, &good_config).unwrap();

    // A registry whose stored manifest is damaged (it answers 500).
    let tag_link = reg
        .dir
        .path()
        .join("data/docker/registry/v2/repositories/cache/app/_manifests/tags/main/current/link");
    let manifest_digest = std::fs::read_to_string(&tag_link).unwrap();
    let stored = stored_blob(&reg, manifest_digest.trim());
    let mut bad = std::fs::read(&stored).unwrap();
    bad[0] = b'#';
    std::fs::write(&stored, &bad).unwrap();
    let f = Runner::new(As::Root, SIMPLE, &[("app.txt", "v1\n")]);
    let (_, err) = f.build(&["--cache-from", &cache]);
    assert_eq!(
        warnings(&err),
        vec![format!(
            "cache {cache} cannot be used: http://{}/v2/cache/app/manifests/main: HTTP 500 (after 5 attempts); building without it",
            reg.host()
        )],
        "{err}"
    );
    uncached(&err);

    // A manifest that says kiln cache over a config that is not one.
    let bad_cache = format!("{}/cache/bad:1", reg.host());
    let config = b"not a cache config";
    let digest = kiln_cache::digest::Digest::of_bytes(config);
    put_blob(&reg, "cache/bad", config);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.kiln.cache.config.v1+json","digest":"{digest}","size":{}}},"layers":[]}}"#,
        config.len()
    );
    put_manifest(&reg, "cache/bad", "1", manifest.as_bytes());
    let g = Runner::new(As::Root, SIMPLE, &[("app.txt", "v1\n")]);
    let (_, err) = g.build(&["--cache-from", &bad_cache]);
    assert_eq!(
        warnings(&err),
        vec![format!(
            "cache {bad_cache} cannot be used: the cache is corrupt: the config is not JSON: expected ident at line 1 column 2; building without it"
        )],
        "{err}"
    );
    uncached(&err);
}
