//! `--output` image options end to end: compression (levels, conversions, base layers,
//! forcing), annotations and labels, `--squash`, `--rewrite-timestamp`, and the usage errors.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::common::{self, Env, run_ok, skopeo_config, skopeo_manifest, umoci_unpack};
use crate::outputs_support::*;

#[test]
fn compression_options_convert_layers_once_and_keep_diff_ids() {
    let env = Env::new();
    build_base(&env);
    let app = app_context(&env);
    let layout = |n: &str| env.path(n);
    let manifest_of = |dir: &Path| skopeo_manifest(dir, "1");
    let tagged = |dir: &Path, extra: &str| out("oci", dir, &format!("name=c:1{extra}"));
    build(&env, &app, &["-o", &tagged(&layout("gzip"), "")]);
    let gzip = manifest_of(&layout("gzip"));
    let config = common::raw_config(&layout("gzip"), "1");
    let ids = diff_ids(&config);

    // zstd at levels 3 and 19, and uncompressed, in one build (outputs over the build's flags).
    build(
        &env,
        &app,
        &[
            "--compression=zstd",
            "-o",
            &tagged(&layout("z3"), ""),
            "-o",
            &tagged(&layout("z19"), ",compression-level=19"),
            "-o",
            &tagged(&layout("plain"), ",compression=uncompressed"),
        ],
    );
    let z3 = manifest_of(&layout("z3"));
    let z19 = manifest_of(&layout("z19"));
    let plain = manifest_of(&layout("plain"));
    for (m, media) in [(&z3, "+zstd"), (&z19, "+zstd"), (&plain, "")] {
        assert_eq!(
            layer_media_types(m),
            vec![format!("application/vnd.oci.image.layer.v1.tar{media}"); 4]
        );
        // The config (so the image id) does not change with the compression.
        assert_eq!(m["config"], gzip["config"]);
    }
    // Uncompressed blobs are the tars themselves: their digests are the diff_ids.
    assert_eq!(layer_digests(&plain), ids);
    let (z3d, z19d) = (layer_digests(&z3), layer_digests(&z19));
    for i in 0..4 {
        assert_ne!(z3d[i], z19d[i], "layer {i}: the level made no difference");
    }
    // busybox compresses better at 19.
    let size = |m: &Value| m["layers"][0]["size"].as_u64().unwrap();
    assert!(size(&z19) < size(&z3), "{} !< {}", size(&z19), size(&z3));
    for (i, d) in z19d.iter().enumerate() {
        let tar = run_bytes(Command::new("zstd").arg("-dc").arg(blob(&layout("z19"), d)));
        assert_eq!(sha256(&tar), ids[i]);
    }

    // By default every layer is gzip, the base's too (the local store keeps kiln's layers
    // as plain tars): each a gzip stream of its diff_id's tar.
    assert_eq!(layer_media_types(&gzip), vec!["application/vnd.oci.image.layer.v1.tar+gzip"; 4]);
    for (i, d) in layer_digests(&gzip).iter().enumerate() {
        let tar = run_bytes(Command::new("gzip").arg("-dc").arg(blob(&layout("gzip"), d)));
        assert_eq!(sha256(&tar), ids[i]);
    }
    // Conversions are recorded (derived layers), one per layer and compression.
    let records = std::fs::read_dir(env.root().join("cache/derived")).unwrap().count();
    assert!(records >= 3 * 4, "{records} derived-layer records");
}

#[test]
fn base_layers_keep_their_compression_unless_forced() {
    let env = Env::new();
    // A base image in an OCI layout (gzip at the default level), used by FROM oci-layout://.
    let base_ctx = common::busybox_context(
        &env,
        common::As::Root,
        &[("Dockerfile", "FROM scratch\nCOPY rootfs/ /\n")],
    );
    let base = env.path("base");
    build(&env, &base_ctx, &["-o", &out("oci", &base, "name=b:1")]);
    let base_layer = layer_digests(&skopeo_manifest(&base, "1"))[0].clone();
    let app = context(
        &env,
        "app",
        &format!("FROM oci-layout://{}:1\nCOPY f /f\n", base.display()),
        &[("f", "file\n")],
    );
    let layout = |n: &str| env.path(n);
    let tagged = |dir: &Path, extra: &str| out("oci", dir, &format!("name=c:1{extra}"));
    let layers_of = |n: &str| layer_digests(&skopeo_manifest(&layout(n), "1"));
    build(&env, &app, &["-o", &tagged(&layout("default"), "")]);
    let default = layers_of("default");
    assert_eq!(default[0], base_layer, "the base layer was re-encoded");
    // Another gzip level: the base's gzip layer stays, the build's own layer is made at it.
    build(
        &env,
        &app,
        &["--compression=gzip", "--compression-level=1", "-o", &tagged(&layout("g1"), "")],
    );
    let g1 = layers_of("g1");
    assert_eq!(g1[0], base_layer);
    assert_ne!(g1[1], default[1]);
    // Forced: the base layer is re-encoded at level 1 too (same tar, same diff_id).
    build(
        &env,
        &app,
        &["--compression-level=1", "--force-compression", "-o", &tagged(&layout("g1f"), "")],
    );
    let forced = layers_of("g1f");
    assert_ne!(forced[0], base_layer);
    assert_eq!(forced[1], g1[1]);
    let ids = diff_ids(&common::raw_config(&layout("g1f"), "1"));
    for (i, d) in forced.iter().enumerate() {
        let tar = run_bytes(Command::new("gzip").arg("-dc").arg(blob(&layout("g1f"), d)));
        assert_eq!(sha256(&tar), ids[i]);
    }
    // The same options on the output, as BuildKit spells them: the same (recorded) conversion.
    build(
        &env,
        &app,
        &[
            "-o",
            &tagged(&layout("g1o"), ",compression=gzip,compression-level=1,force-compression=true"),
        ],
    );
    assert_eq!(layers_of("g1o"), forced);
    // zstd converts every layer, the base's included.
    build(&env, &app, &["--compression=zstd", "-o", &tagged(&layout("z"), "")]);
    assert_eq!(
        layer_media_types(&skopeo_manifest(&layout("z"), "1")),
        vec!["application/vnd.oci.image.layer.v1.tar+zstd"; 2]
    );
}

#[test]
fn annotations_and_labels_land_where_asked() {
    let env = Env::new();
    build_base(&env);
    let app = app_context(&env);
    let layout = env.path("layout");
    let docker = env.path("docker.tar");
    build(
        &env,
        &app,
        &[
            "-t",
            "outputs/app:1",
            "--annotation",
            "org.opencontainers.image.title=kiln",
            "--annotation",
            "index,manifest-descriptor:team=core",
            "--annotation",
            "manifest:over=flag",
            "--label",
            "build.by=kiln",
            "--label",
            "stays=flag",
            "-o",
            &out(
                "oci",
                &layout,
                "annotation.over=output,annotation-index.idx=2,annotation-manifest-descriptor.md=3",
            ),
            "-o",
            &out("docker", &docker, ""),
        ],
    );
    let raw =
        run_ok(Command::new("skopeo").args(["inspect", "--raw", &format!("oci:{}:1", s(&layout))]));
    let manifest: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        manifest["annotations"],
        json!({"org.opencontainers.image.title": "kiln", "over": "output"})
    );
    let index = json_of(&std::fs::read(layout.join("index.json")).unwrap());
    assert_eq!(index["annotations"], json!({"idx": "2", "team": "core"}));
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(index["manifests"][0]["digest"], sha256(raw.as_bytes()));
    assert_eq!(
        index["manifests"][0]["annotations"],
        json!({"md": "3", "org.opencontainers.image.ref.name": "1", "team": "core"})
    );
    // Labels: the flags' over the Dockerfile's, in the config (the same for every output).
    let config = skopeo_config(&layout, "1");
    assert_eq!(
        config["config"]["Labels"],
        json!({"build.by": "kiln", "from.dockerfile": "yes", "stays": "flag"})
    );
    // The Docker archive has the build's annotations only (no output options given there).
    let docker_index = json_of(&tar_member(&docker, "index.json"));
    assert_eq!(docker_index["annotations"], json!({"team": "core"}));
    let docker_manifest = json_of(&tar_member(
        &docker,
        &format!(
            "blobs/sha256/{}",
            docker_index["manifests"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:")
        ),
    ));
    assert_eq!(
        docker_manifest["annotations"],
        json!({"org.opencontainers.image.title": "kiln", "over": "flag"})
    );
    assert_eq!(docker_manifest["config"], manifest["config"]);
    // The stored image (what -t names) has the build's manifest annotations too.
    let (stored, _) = inspect(&env, "outputs/app:1");
    assert_eq!(stored["annotations"], docker_manifest["annotations"]);
    assert_eq!(stored["config"], docker_manifest["config"]);
}

#[test]
fn squash_makes_the_final_stage_layers_one() {
    let env = Env::new();
    build_base(&env);
    let app = app_context(&env);
    let plain = env.path("plain");
    let squashed = env.path("squashed");
    build(&env, &app, &["-o", &out("oci", &plain, "name=s:1")]);
    let (_, stderr) = build(&env, &app, &["--squash", "-o", &out("oci", &squashed, "name=s:1")]);
    assert!(stderr.contains("--squash: 3 layers squashed into one"), "{stderr}");
    let before = skopeo_manifest(&plain, "1");
    let after = skopeo_manifest(&squashed, "1");
    let (b, a) = (layer_digests(&before), layer_digests(&after));
    // The base's layer stays as it is; the app's three become one.
    assert_eq!(b.len(), 4);
    assert_eq!(a.len(), 2);
    assert_eq!(a[0], b[0]);
    let config = common::raw_config(&squashed, "1");
    assert_eq!(diff_ids(&config).len(), 2);
    let history: Vec<(String, bool)> = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["created_by"].as_str().unwrap_or("").to_string(),
                h["empty_layer"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    // The base's entry keeps its layer; the app's steps are marked empty, and one entry says
    // what the squashed layer is.
    let non_empty: Vec<&str> =
        history.iter().filter(|(_, e)| !e).map(|(c, _)| c.as_str()).collect();
    assert_eq!(non_empty, ["COPY rootfs/ /", "kiln build --squash"]);
    assert_eq!(history.len(), 2 + 4 + 1, "{history:?}");
    assert_eq!(config["history"][6]["comment"], "3 layers squashed into one");
    // The squashed layer keeps the whiteouts that act on the base.
    let members: Vec<String> = run_ok(Command::new("tar").arg("-tzf").arg(blob(&squashed, &a[1])))
        .lines()
        .map(str::to_string)
        .collect();
    for m in ["etc/.wh.gone.txt", "etc/dir/.wh..wh..opq", "f.hard", "g2"] {
        assert!(members.iter().any(|x| x == m), "{m} missing in {members:?}");
    }
    // `/f`, made and deleted within the squashed steps, is not in it (its whiteout may be:
    // harmless, nothing below has `/f`).
    assert!(!members.iter().any(|x| x == "f"), "{members:?}");
    // Unpacked, the squashed image has the same files as the plain one.
    let t_plain = tree(&umoci_unpack(&plain, "1", &env.path("b1")));
    let t_squashed = tree(&umoci_unpack(&squashed, "1", &env.path("b2")));
    assert_app_rootfs(&t_squashed);
    assert_same_tree("--squash", &t_plain, &t_squashed);

    // FROM scratch: every layer is the final stage's own, so the image has one layer.
    let scratch = context(
        &env,
        "scratch",
        "FROM scratch\nCOPY a /a\nCOPY b /b\n",
        &[("a", "a\n"), ("b", "b\n")],
    );
    let one = env.path("one");
    build(&env, &scratch, &["--squash", "-o", &out("oci", &one, "name=s:1")]);
    assert_eq!(layer_digests(&skopeo_manifest(&one, "1")).len(), 1);
    // One own layer: nothing to squash, the image is the plain one.
    let single = context(&env, "single", "FROM outputs/base:1\nCOPY a /a\n", &[("a", "a\n")]);
    let meta1 = env.path("m1.json");
    let meta2 = env.path("m2.json");
    build(&env, &single, &["--metadata-file", s(&meta1)]);
    let (_, stderr) = build(&env, &single, &["--squash", "--metadata-file", s(&meta2)]);
    assert!(!stderr.contains("squashed"), "{stderr}");
    assert_eq!(metadata(&meta1), metadata(&meta2));
}

/// Sets the mtime of every file under `dir` (links included) with `touch -h -d`.
fn touch_all(dir: &Path, date: &str) {
    run_ok(Command::new("find").arg(dir).args(["-exec", "touch", "-h", "-d", date, "{}", "+"]));
}

#[test]
fn rewrite_timestamp_gives_the_same_image_on_two_roots() {
    let dockerfile = "FROM scratch\nCOPY rootfs/ /\nCOPY f /f\nRUN echo made > /made\n";
    let mut digests = Vec::new();
    for (n, date) in [(1, "2031-01-01 00:00:00"), (2, "2032-06-06 12:00:00")] {
        let env = Env::new();
        let ctx = common::busybox_context(
            &env,
            common::As::Root,
            &[("Dockerfile", dockerfile), ("f", "same\n")],
        );
        touch_all(&ctx, date);
        // A first build without SOURCE_DATE_EPOCH fills the cache with the real mtimes.
        build(&env, &ctx, &["-t", "rt:plain"]);
        let with_epoch = |extra: &[&str], meta: &Path| {
            let mut args = vec!["build", "--metadata-file", s(meta)];
            args.extend_from_slice(extra);
            args.push(s(&ctx));
            let mut cmd = env.kiln_cmd(&args);
            cmd.env("SOURCE_DATE_EPOCH", "1700000000");
            let out = cmd.output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(out.status.success(), "{stderr}");
            (metadata(meta), stderr)
        };
        // Without the flag the cached layers keep their mtimes: the roots differ.
        let ((without, _), _) = with_epoch(&[], &env.path("m0.json"));
        let ((with, _), stderr) =
            with_epoch(&["--rewrite-timestamp"], &env.path(&format!("m{n}.json")));
        assert!(
            stderr.contains(
                "--rewrite-timestamp: 3 cached layers rewritten with mtimes clamped to 1700000000"
            ),
            "{stderr}"
        );
        assert_ne!(without, with);
        // Every mtime in the image is at most the epoch.
        let layout = env.path("layout");
        let oci = out("oci", &layout, "name=rt:1");
        with_epoch(&["--rewrite-timestamp", "-o", &oci], &env.path("m3.json"));
        let t = tree(&umoci_unpack(&layout, "1", &env.path("bundle")));
        for (path, node) in &t {
            assert!(node.mtime <= 1_700_000_000, "{path}: {}", node.mtime);
        }
        digests.push((without, with));
    }
    assert_ne!(digests[0].0, digests[1].0, "without --rewrite-timestamp the mtimes differ");
    assert_eq!(digests[0].1, digests[1].1, "--rewrite-timestamp: the same manifest");
}

#[test]
fn usage_errors_name_the_mistake() {
    let env = Env::new();
    let ctx = context(&env, "ctx", "FROM scratch\nCOPY f /f\n", &[("f", "f\n")]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["-o", "type=foo,dest=x"],
            "--output type=foo is not supported (supported: oci, docker, local, tar, image, registry)",
        ),
        (&["-o", "type=docker"], "--output type=docker needs dest=PATH"),
        (&["-o", "type=oci,tar=true"], "--output type=oci needs dest=PATH"),
        (&["-o", "type=image"], "--output type=image needs name=REF"),
        (
            &["-o", "type=oci,dest=-,tar=false"],
            "--output tar=\"false\": an OCI layout directory cannot go to stdout (dest=-)",
        ),
        (
            &["-o", "type=local,dest=-"],
            "--output type=local writes a directory; use type=tar,dest=- for stdout",
        ),
        (&["-o", "type=tar,dest=x,name=a"], "--output: unknown option \"name\" for type=tar"),
        (
            &["-o", "dest=x"],
            "invalid --output \"dest=x\": expected type=KIND,key=value,... (or - or a directory)",
        ),
        (&["-o", "-", "-o", "type=oci,dest=-"], "only one --output can write to stdout"),
        (
            &["--compression=zstd", "--compression-level=30"],
            "--compression-level: zstd levels are 1 to 22, not 30",
        ),
        (&["--compression-level=10"], "--compression-level: gzip levels are 0 to 9, not 10"),
        (&["--compression=lz4"], "--compression=lz4: expected gzip, zstd or uncompressed"),
        (
            &["--compression=uncompressed", "--compression-level=1"],
            "--compression-level: a compression level does not apply to uncompressed layers",
        ),
        (
            &["-o", "type=oci,dest=x,compression-level=30,compression=zstd"],
            "--output compression-level=\"30\": zstd levels are 1 to 22, not 30",
        ),
        // A level alone is checked with the build's codec (gzip by default).
        (
            &["-o", "type=oci,dest=x,compression-level=19"],
            "--output compression-level=\"19\": gzip levels are 0 to 9, not 19",
        ),
        (
            &["-o", "type=oci,dest=x,compression=brotli"],
            "--output compression=\"brotli\": expected gzip, zstd or uncompressed",
        ),
        (
            &["-o", "type=oci,dest=x,compression-level=high"],
            "--output compression-level=\"high\": expected a number",
        ),
        (
            &["--annotation", "index-descriptor:k=v"],
            "--annotation \"index-descriptor:k=v\": index-descriptor annotations need an image index, which a single-platform kiln build does not write",
        ),
        (&["--annotation", "novalue"], "--annotation \"novalue\": expected KEY=VALUE"),
        (&["--label", "=x"], "--label \"=x\": expected KEY=VALUE"),
    ];
    for (args, message) in cases {
        let mut all = vec!["build"];
        all.extend_from_slice(args);
        all.push(s(&ctx));
        let o = env.kiln(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8_lossy(&o.stderr), format!("error: {message}\n"), "{args:?}");
        assert!(o.stdout.is_empty());
    }
    // A level alone that fits the build's codec is fine.
    let layout = env.path("ok");
    build(
        &env,
        &ctx,
        &["--compression=zstd", "-o", &out("oci", &layout, "name=ok:1,compression-level=19")],
    );
    assert_eq!(
        layer_media_types(&skopeo_manifest(&layout, "1")),
        ["application/vnd.oci.image.layer.v1.tar+zstd"]
    );
}
