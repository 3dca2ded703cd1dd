//! End-to-end: `kiln build` on testdata/, checked with skopeo, umoci, runc and the OCI schemas.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn basic_image_has_the_config_layers_and_files_the_dockerfile_describes() {
    let env = Env::new();
    let layout = env.path("out");
    env.build_to_layout(&testdata("basic"), "basic", &layout, &[]);

    let manifest = skopeo_manifest(&layout, "basic");
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.oci.image.config.v1+json");
    let layers = manifest["layers"].as_array().expect("layers");
    // WORKDIR creates /opt/app, then four COPYs: five layers.
    assert_eq!(layers.len(), 5, "{manifest:#}");
    for layer in layers {
        assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
    }

    let config = skopeo_config(&layout, "basic");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    assert!(config["created"].as_str().is_some_and(|c| c.ends_with('Z')), "{config:#}");
    let c = &config["config"];
    let env_vars = strings(&c["Env"]);
    assert!(env_vars.contains(&"APP_HOME=/opt/app".to_string()), "{env_vars:?}");
    assert!(env_vars.contains(&"VERSION=1.0".to_string()), "{env_vars:?}");
    assert!(
        env_vars.contains(
            &"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()
        ),
        "default PATH missing: {env_vars:?}"
    );
    assert_eq!(c["WorkingDir"], "/opt/app");
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(
        keys(&c["ExposedPorts"]),
        BTreeSet::from(["53/udp".to_string(), "8080/tcp".to_string()])
    );
    assert_eq!(keys(&c["Volumes"]), BTreeSet::from(["/data".to_string()]));
    assert_eq!(c["StopSignal"], "SIGTERM");
    assert_eq!(strings(&raw_config(&layout, "basic")["config"]["Shell"]), ["/bin/ash", "-c"]);
    assert_eq!(strings(&c["Entrypoint"]), ["/bin/app"]);
    assert_eq!(strings(&c["Cmd"]), ["--serve"]);
    assert_eq!(c["Labels"]["org.example.version"], "1.0");
    assert_eq!(c["Labels"]["org.example.name"], "basic");

    let diff_ids = strings(&config["rootfs"]["diff_ids"]);
    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(diff_ids.len(), layers.len());
    let history = config["history"].as_array().expect("history");
    let non_empty = history.iter().filter(|h| h["empty_layer"] != Value::Bool(true)).count();
    assert_eq!(non_empty, layers.len(), "one non-empty history entry per layer: {history:#?}");
    let created_by: Vec<&str> = history.iter().filter_map(|h| h["created_by"].as_str()).collect();
    assert!(created_by.contains(&"COPY app/ ./"), "{created_by:?}");
    assert!(created_by.contains(&"WORKDIR /opt/app"), "{created_by:?}");
    assert!(created_by.contains(&"USER 1000:1000"), "{created_by:?}");
    assert!(created_by.iter().any(|c| c.starts_with("CMD [")), "{created_by:?}");
    let user = history.iter().find(|h| h["created_by"] == "USER 1000:1000").expect("USER entry");
    assert_eq!(user["empty_layer"], true);

    // The files, as umoci unpacks them.
    let rootfs = umoci_unpack(&layout, "basic", &env.path("bundle"));
    assert_eq!(std::fs::read_to_string(rootfs.join("opt/app/hello.txt")).unwrap(), "hello\n");
    assert_eq!(std::fs::read_to_string(rootfs.join("opt/app/sub/nested.txt")).unwrap(), "nested\n");
    assert_eq!(
        std::fs::read_link(rootfs.join("opt/app/hello-link")).unwrap(),
        Path::new("hello.txt")
    );
    assert_eq!(mode(&rootfs.join("opt/app/hello.txt")), 0o644);
    assert_eq!(mode(&rootfs.join("docs/a.txt")), 0o600);
    assert_eq!(mode(&rootfs.join("docs/b.txt")), 0o600);
    assert!(!rootfs.join("docs/c.md").exists(), "the wildcard must not match c.md");
    let owned = std::fs::metadata(rootfs.join("owned/hello.txt")).unwrap();
    assert_eq!((owned.uid(), owned.gid()), (1234, 2345));
    let plain = std::fs::metadata(rootfs.join("opt/app/hello.txt")).unwrap();
    assert_eq!((plain.uid(), plain.gid()), (0, 0), "files from the context belong to root");
    // A symlink named as a COPY source is followed: the file is copied, not the link.
    let linked = std::fs::symlink_metadata(rootfs.join("linked/link.txt")).unwrap();
    assert!(linked.is_file());
    assert_eq!(std::fs::read_to_string(rootfs.join("linked/link.txt")).unwrap(), "hello\n");
    // mtimes of copied files are kept.
    let src_mtime = std::fs::metadata(testdata("basic/app/hello.txt")).unwrap().mtime();
    assert_eq!(plain.mtime(), src_mtime);
}

#[test]
fn the_example_image_runs_under_runc() {
    require("runc");
    require("jq");
    let env = Env::new();
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    busybox_rootfs(&ctx.join("rootfs"));
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello/Dockerfile"),
        ctx.join("Dockerfile"),
    )
    .unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello/hello.sh"),
        ctx.join("hello.sh"),
    )
    .unwrap();
    let layout = env.path("out");
    env.build_to_layout(&ctx, "1", &layout, &["--build-arg", "GREETING=hi from the test"]);
    let rootfs = umoci_unpack(&layout, "1", &env.path("bundle"));
    assert!(rootfs.join("bin/busybox").is_file());
    let config_path = env.path("bundle/config.json");
    let config = run_ok(Command::new("jq").arg(".process.terminal = false").arg(&config_path));
    std::fs::write(&config_path, config).unwrap();
    let id = format!("kiln-test-{}", std::process::id());
    let out = Command::new("runc")
        .args(["run", "--bundle"])
        .arg(env.path("bundle"))
        .arg(&id)
        .output()
        .unwrap();
    let _ = Command::new("runc").args(["delete", "-f", &id]).output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "runc failed: {}\n{stdout}", stderr(&out));
    assert_eq!(stdout, "hi from the test\nrunning as 1000:1000 in /home/app\n");
}

#[test]
fn output_validates_against_the_oci_schemas() {
    require("/usr/bin/python3");
    require("oci-image-tool");
    let env = Env::new();
    let layout = env.path("out");
    env.build_to_layout(&testdata("basic"), "v", &layout, &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/validate_oci.py");
    run_ok(Command::new("/usr/bin/python3").arg(script).arg(&layout));
    run_ok(
        Command::new("oci-image-tool")
            .args(["validate", "--type", "image", "--ref", "name=v"])
            .arg(&layout),
    );
}

#[test]
fn oci_archive_output_is_readable_by_skopeo() {
    require("skopeo");
    let env = Env::new();
    let archive = env.path("image.tar");
    let dest = format!("type=oci,dest={}", archive.display());
    env.kiln_ok(&[
        "build",
        "-t",
        "arch:v2",
        "--output",
        &dest,
        testdata("multistage").to_str().unwrap(),
    ]);
    let raw = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--config"])
            .arg(format!("oci-archive:{}:v2", archive.display())),
    );
    let config: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(config["config"]["Labels"]["stage"], "final");
}

#[test]
fn same_source_date_epoch_gives_byte_identical_manifests() {
    let env = Env::new();
    let mut manifests = Vec::new();
    for i in 0..2 {
        // Separate roots: nothing is shared between the two builds.
        let root = env.path(&format!("root{i}"));
        let layout = env.path(&format!("out{i}"));
        let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .arg("--root")
            .arg(&root)
            .args(["build", "-t", "repro:1", "--output"])
            .arg(format!("type=oci,dest={}", layout.display()))
            .arg(testdata("basic"))
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let index: Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        let digest = index["manifests"][0]["digest"].as_str().unwrap().to_string();
        let blob = layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
        manifests.push(std::fs::read(blob).unwrap());
        let config = skopeo_config(&layout, "1");
        assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    }
    assert_eq!(manifests[0], manifests[1], "manifests differ between identical builds");
}

#[test]
fn multistage_copies_from_stages_and_prunes_unused_ones() {
    let env = Env::new();
    let layout = env.path("out");
    // The `unused` stage would fail (its source does not exist): it must not run.
    let log = env.build_to_layout(&testdata("multistage"), "m", &layout, &[]);
    assert!(!log.contains("does-not-exist"), "{log}");
    let rootfs = umoci_unpack(&layout, "m", &env.path("bundle"));
    assert_eq!(mode(&rootfs.join("usr/local/bin/tool")), 0o755);
    assert!(rootfs.join("app/src/main.c").is_file());
    assert!(rootfs.join("app/src/f.c").is_file());
    assert!(!rootfs.join("app/src/x.h").exists());
    assert!(rootfs.join("app/all-src/x.h").is_file());

    // --target builds an earlier stage.
    let layout2 = env.path("out2");
    env.build_to_layout(&testdata("multistage"), "b", &layout2, &["--target", "build"]);
    let rootfs2 = umoci_unpack(&layout2, "b", &env.path("bundle2"));
    assert!(rootfs2.join("out/tool").is_file());
    assert!(!rootfs2.join("app").exists());
}

#[test]
fn chown_resolves_names_through_the_stage_accounts() {
    let env = Env::new();
    let layout = env.path("out");
    env.build_to_layout(&testdata("chown"), "c", &layout, &[]);
    let rootfs = umoci_unpack(&layout, "c", &env.path("bundle"));
    let ids = |p: &str| {
        let m = std::fs::metadata(rootfs.join(p)).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(ids("home/app/file.txt"), (1000, 50));
    assert_eq!(ids("home/app/primary.txt"), (1000, 1001));
    // WORKDIR after USER app creates the directory for that user.
    assert_eq!(ids("home/app/work"), (1000, 1001));
    let config = skopeo_config(&layout, "c");
    assert_eq!(config["config"]["User"], "app");
}

#[test]
fn dockerignore_rules_filter_the_context() {
    let env = Env::new();
    let layout = env.path("out");
    env.build_to_layout(&testdata("dockerignore"), "i", &layout, &[]);
    let rootfs = umoci_unpack(&layout, "i", &env.path("bundle"));
    let ctx = rootfs.join("ctx");
    assert!(ctx.join("README").is_file());
    assert!(ctx.join("src/main.txt").is_file());
    assert!(ctx.join("src/keep/important.tmp").is_file(), "! re-includes the file");
    assert!(!ctx.join("src/keep/scratch.tmp").exists(), "** pattern excludes it");
    assert!(!ctx.join("a.log").exists());
    assert!(!ctx.join("logs").exists());
    assert!(!ctx.join("Dockerfile").exists());
    assert!(ctx.join(".dockerignore").is_file(), ".dockerignore itself is not excluded");
}

#[test]
fn from_images_in_the_store_and_in_oci_layouts() {
    let env = Env::new();
    let base_layout = env.path("base");
    env.build_to_layout(&testdata("chown"), "base", &base_layout, &[]);
    let ctx = env.path("ctx");
    write_files(&ctx, &[("extra.txt", "extra\n")]);
    // FROM an OCI layout on disk.
    let from_layout =
        format!("FROM oci-layout://{}:base\nCOPY extra.txt /extra.txt\n", base_layout.display());
    write_files(&ctx, &[("Dockerfile", &from_layout)]);
    let out1 = env.path("out1");
    env.build_to_layout(&ctx, "l", &out1, &[]);
    let rootfs = umoci_unpack(&out1, "l", &env.path("bundle1"));
    assert!(rootfs.join("etc/passwd").is_file(), "base layers are kept");
    assert!(rootfs.join("extra.txt").is_file());
    let config = skopeo_config(&out1, "l");
    assert_eq!(config["config"]["User"], "app", "the base config is inherited");
    // FROM an image in the local store (tagged by the build above).
    write_files(&ctx, &[("Dockerfile", "FROM test/image:l\nLABEL derived=yes\n")]);
    let out2 = env.path("out2");
    env.build_to_layout(&ctx, "s", &out2, &[]);
    let m1 = skopeo_manifest(&out1, "l");
    let m2 = skopeo_manifest(&out2, "s");
    assert_eq!(m1["layers"], m2["layers"], "a metadata-only build reuses the base layers");
    assert_eq!(skopeo_config(&out2, "s")["config"]["Labels"]["derived"], "yes");
}

#[test]
fn images_inspect_and_rmi_manage_the_store() {
    let env = Env::new();
    env.kiln_ok(&["build", "-t", "one:1", "-t", "two", testdata("multistage").to_str().unwrap()]);
    let list = env.kiln_ok(&["images"]);
    assert!(list.contains("one:1") && list.contains("two:latest"), "{list}");
    let json: Value = serde_json::from_str(&env.kiln_ok(&["images", "--json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    let inspect: Value = serde_json::from_str(&env.kiln_ok(&["inspect", "one:1"])).unwrap();
    assert_eq!(inspect["config"]["config"]["Labels"]["stage"], "final");
    assert_eq!(inspect["manifest"]["schemaVersion"], 2);
    // The store is an OCI layout skopeo can read by name.
    let raw = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--config"])
            .arg(format!("oci:{}:one:1", env.root().display())),
    );
    assert!(raw.contains("\"stage\": \"final\"") || raw.contains("\"stage\":\"final\""), "{raw}");
    env.kiln_ok(&["rmi", "one:1"]);
    let list = env.kiln_ok(&["images"]);
    assert!(!list.contains("one:1") && list.contains("two:latest"), "{list}");
    let out = env.kiln(&["rmi", "one:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
}

#[test]
fn concurrent_builds_into_one_root_keep_every_tag() {
    let env = Env::new();
    env.kiln_ok(&["images"]); // creates the root
    let children: Vec<_> = (0..6)
        .map(|i| {
            env.kiln_cmd(&[
                "build",
                "-t",
                &format!("par:{i}"),
                testdata("multistage").to_str().unwrap(),
            ])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let list = env.kiln_ok(&["images"]);
    for i in 0..6 {
        assert!(list.contains(&format!("par:{i}")), "tag par:{i} lost:\n{list}");
    }
    let index: Value =
        serde_json::from_slice(&std::fs::read(env.root().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 6);
}

#[test]
fn symbolic_chmod_applies_per_file_and_directory() {
    let env = Env::new();
    let ctx = env.path("ctx");
    write_files(
        &ctx,
        &[
            ("Dockerfile", "FROM scratch\nCOPY --chmod=u+x,g-r,o= tree/ /t/\n"),
            ("tree/f", "f"),
            ("tree/d/g", "g"),
        ],
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(ctx.join("tree/f"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(ctx.join("tree/d"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let layout = env.path("out");
    env.build_to_layout(&ctx, "m", &layout, &[]);
    let rootfs = umoci_unpack(&layout, "m", &env.path("bundle"));
    assert_eq!(mode(&rootfs.join("t/f")), 0o700);
    assert_eq!(mode(&rootfs.join("t/d")), 0o710);
}
