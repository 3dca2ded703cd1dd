//! `--output` end to end through the `kiln` binary, each output read back by an outside tool:
//! `podman load` and `skopeo` for Docker archives, `skopeo` and `umoci` for OCI layouts and
//! archives, GNU tar and `umoci unpack` for the root filesystem outputs, a real
//! `docker-registry` for pushed zstd images. Compression, annotations, labels, `--squash`,
//! `--rewrite-timestamp` and the usage errors are in `outputs_support/image_options.rs`.

mod common;
#[path = "outputs_support/image_options.rs"]
mod image_options;
mod outputs_support;
#[path = "../../builder/tests/registry_support/mod.rs"]
mod registry_support;

use std::process::Command;

use common::{Env, run_ok, skopeo_config, skopeo_manifest, umoci_unpack};
use outputs_support::*;
use serde_json::json;

#[test]
fn docker_archive_is_read_by_podman_and_skopeo() {
    let env = Env::new();
    build_base(&env);
    let app = app_context(&env);
    let archive = env.path("app.tar");
    let local = env.path("local");
    let meta = env.path("meta.json");
    build(
        &env,
        &app,
        &[
            "-t",
            "outputs/app:1",
            "--metadata-file",
            s(&meta),
            "-o",
            &out("docker", &archive, ""),
            "-o",
            &out("local", &local, ""),
        ],
    );
    let (_, config_digest) = metadata(&meta);
    let (_, config) = inspect(&env, "outputs/app:1");
    let path = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    let index = json_of(&tar_member(&archive, "index.json"));
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap().to_string();
    let manifest = json_of(&tar_member(&archive, &path(&manifest_digest)));
    assert_eq!(manifest["config"]["digest"], config_digest);
    let layers = layer_digests(&manifest);
    // Layers are gzip by default, each the tar its diff_id names.
    assert_eq!(
        layer_media_types(&manifest),
        vec!["application/vnd.oci.image.layer.v1.tar+gzip"; 4]
    );
    let unpacked_archive = env.path("archive");
    untar(&archive, &unpacked_archive);
    for (layer, diff_id) in layers.iter().zip(diff_ids(&config)) {
        let tar =
            run_bytes(Command::new("gzip").arg("-dc").arg(unpacked_archive.join(path(layer))));
        assert_eq!(sha256(&tar), diff_id);
    }

    // The members: the OCI layout files, Docker's two files, then every blob once.
    let members = tar_members(&archive);
    assert_eq!(
        members[..6],
        ["oci-layout", "index.json", "manifest.json", "repositories", "blobs/", "blobs/sha256/"]
    );
    let mut blobs: Vec<String> = members[6..].to_vec();
    blobs.sort();
    let mut expected: Vec<String> = layers.iter().map(|d| path(d)).collect();
    expected.push(path(&config_digest));
    expected.push(path(&manifest_digest));
    expected.sort();
    assert_eq!(blobs, expected);
    assert_eq!(
        json_of(&tar_member(&archive, "manifest.json")),
        json!([{
            "Config": path(&config_digest),
            "RepoTags": ["outputs/app:1"],
            "Layers": layers.iter().map(|d| path(d)).collect::<Vec<_>>(),
        }])
    );
    let top = layers.last().unwrap().trim_start_matches("sha256:");
    assert_eq!(json_of(&tar_member(&archive, "repositories")), json!({"outputs/app": {"1": top}}));
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(
        index["manifests"][0]["annotations"],
        json!({
            "io.containerd.image.name": "docker.io/outputs/app:1",
            "org.opencontainers.image.ref.name": "1"
        })
    );

    // skopeo's docker-archive transport reads manifest.json (and finds the image by its tag).
    let inspected =
        skopeo_json(&["inspect", &format!("docker-archive:{}:outputs/app:1", s(&archive))]);
    assert_eq!(inspected["Layers"], json!(diff_ids(&config)));
    let missing = Command::new("skopeo")
        .args(["inspect", &format!("docker-archive:{}:outputs/app:2", s(&archive))])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains(r#"Tag \"docker.io/outputs/app:2\" not found"#),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    let copied = env.path("copied");
    registry_support::skopeo(&[
        "copy",
        &format!("docker-archive:{}:outputs/app:1", s(&archive)),
        &format!("oci:{}:copied", s(&copied)),
    ]);
    let local_tree = tree(&local);
    assert_app_rootfs(&local_tree);
    let unpacked = umoci_unpack(&copied, "copied", &env.path("bundle"));
    assert_same_tree("skopeo copy docker-archive: + umoci", &local_tree, &tree(&unpacked));

    // podman load: the image, its id, its layers and its files.
    let podman = Podman::new(&env.path("podman"));
    let loaded = podman.ok(&["load", "-i", s(&archive)]);
    assert_eq!(loaded, "Loaded image: docker.io/outputs/app:1\n");
    let image = podman.inspect("outputs/app:1");
    assert_eq!(image["Id"], config_digest.trim_start_matches("sha256:"));
    assert_eq!(image["RootFS"]["Layers"], json!(diff_ids(&config)));
    assert_eq!(image["Labels"]["from.dockerfile"], "yes");
    assert_same_tree("podman load", &local_tree, &podman.rootfs_tree("outputs/app:1"));

    // Two names, zstd layers, to stdout: index.json then lists two entries, so podman falls
    // back to manifest.json (its Docker-archive reader, which names short names localhost/).
    let (stdout, stderr) = build(
        &env,
        &app,
        &[
            "-t",
            "outputs/app:1",
            "-t",
            "outputs/app:latest",
            "--compression=zstd",
            "-o",
            "type=docker,dest=-",
        ],
    );
    assert!(
        stderr.contains("wrote Docker archive to stdout (outputs/app:1, outputs/app:latest)"),
        "{stderr}"
    );
    let piped = env.path("piped.tar");
    std::fs::write(&piped, &stdout).unwrap();
    let docker_manifest = json_of(&tar_member(&piped, "manifest.json"));
    assert_eq!(docker_manifest[0]["RepoTags"], json!(["outputs/app:1", "outputs/app:latest"]));
    assert_eq!(docker_manifest[0]["Config"], path(&config_digest));
    let index = json_of(&tar_member(&piped, "index.json"));
    let zstd_manifest =
        json_of(&tar_member(&piped, &path(index["manifests"][0]["digest"].as_str().unwrap())));
    assert_eq!(
        layer_media_types(&zstd_manifest),
        vec!["application/vnd.oci.image.layer.v1.tar+zstd"; 4]
    );
    let podman = Podman::new(&env.path("podman2"));
    assert_eq!(
        podman.ok(&["load", "-i", s(&piped)]),
        "Loaded image: localhost/outputs/app:1\nLoaded image: localhost/outputs/app:latest\n"
    );
    let image = podman.inspect("localhost/outputs/app:latest");
    assert_eq!(image["Id"], config_digest.trim_start_matches("sha256:"));
    assert_eq!(image["RootFS"]["Layers"], json!(diff_ids(&config)));
    assert_same_tree("podman load (zstd)", &local_tree, &podman.rootfs_tree("outputs/app:latest"));
}

#[test]
fn oci_layout_and_archives_are_read_by_skopeo_and_umoci() {
    let env = Env::new();
    build_base(&env);
    let app = app_context(&env);
    let layout = env.path("layout");
    let archive = env.path("app.tar");
    let forced = env.path("app.oci");
    let not_tar = env.path("dir.tar");
    let meta = env.path("meta.json");
    let (stdout, stderr) = build(
        &env,
        &app,
        &[
            "-t",
            "outputs/app:1",
            "--metadata-file",
            s(&meta),
            "-o",
            &out("oci", &layout, ""),
            "-o",
            &out("oci", &archive, ""),
            "-o",
            &out("oci", &forced, "tar=true"),
            "-o",
            &out("oci", &not_tar, "tar=false"),
        ],
    );
    let (_, config_digest) = metadata(&meta);
    let index = json_of(&std::fs::read(layout.join("index.json")).unwrap());
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_string();
    // Every output is reported, and the image id is printed (no output took stdout).
    for line in [
        format!("wrote OCI layout {}", layout.display()),
        format!("wrote OCI archive {}", archive.display()),
        format!("wrote OCI archive {}", forced.display()),
        format!("wrote OCI layout {}", not_tar.display()),
    ] {
        assert!(stderr.contains(&line), "{line:?} missing in:\n{stderr}");
    }
    assert_eq!(String::from_utf8(stdout).unwrap(), format!("{config_digest}\n"));

    // The directory forms: skopeo finds the tag, the manifest is the build's.
    assert!(not_tar.join("oci-layout").is_file() && not_tar.join("index.json").is_file());
    let raw =
        run_ok(Command::new("skopeo").args(["inspect", "--raw", &format!("oci:{}:1", s(&layout))]));
    assert_eq!(sha256(raw.as_bytes()), digest);
    assert_eq!(json_of(raw.as_bytes())["config"]["digest"], config_digest);
    let raw_dir = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci:{}:1", s(&not_tar)),
    ]));
    assert_eq!(raw_dir, raw);
    // The archive forms: the same bytes (one writer, deterministic), read by skopeo by tag and
    // as the only image.
    let archive_bytes = std::fs::read(&archive).unwrap();
    assert_eq!(archive_bytes, std::fs::read(&forced).unwrap());
    for reference in [
        format!("oci-archive:{}:1", s(&archive)),
        format!("oci-archive:{}", s(&archive)),
        format!("oci-archive:{}:1", s(&forced)),
    ] {
        let raw_archive = run_ok(Command::new("skopeo").args(["inspect", "--raw", &reference]));
        assert_eq!(raw_archive, raw, "{reference}");
    }
    let manifest = json_of(raw.as_bytes());
    let (_, config) = inspect(&env, "outputs/app:1");
    let inspected = skopeo_json(&["inspect", &format!("oci-archive:{}:1", s(&archive))]);
    assert_eq!(inspected["Layers"], json!(layer_digests(&manifest)));
    assert_eq!(skopeo_config(&layout, "1")["rootfs"], config["rootfs"]);
    assert_eq!(sha256(&std::fs::read(blob(&layout, &config_digest)).unwrap()), config_digest);
    assert_eq!(
        layer_media_types(&skopeo_manifest(&layout, "1")),
        vec!["application/vnd.oci.image.layer.v1.tar+gzip"; 4]
    );

    // umoci unpacks the layout and the archive (extracted by GNU tar) to the same files.
    let from_dir = tree(&umoci_unpack(&layout, "1", &env.path("bundle-dir")));
    assert_app_rootfs(&from_dir);
    let extracted = env.path("extracted");
    untar(&archive, &extracted);
    let from_archive = tree(&umoci_unpack(&extracted, "1", &env.path("bundle-tar")));
    assert_same_tree("umoci unpack of the archive", &from_dir, &from_archive);

    // To stdout (`type=oci,dest=-` is an archive): the same bytes as the file, and no image
    // id on stdout to spoil them.
    let (piped, _) = build(&env, &app, &["-t", "outputs/app:1", "-o", "type=oci,dest=-"]);
    assert_eq!(piped, archive_bytes);
    // A second name is a second index.json entry for the same manifest.
    let two = env.path("two");
    build(
        &env,
        &app,
        &[
            "-t",
            "outputs/app:1",
            "-o",
            &out("oci", &two, "name=outputs/app:1,name=example.com/x/y:2"),
        ],
    );
    for tag in ["1", "2"] {
        let r = run_ok(Command::new("skopeo").args([
            "inspect",
            "--raw",
            &format!("oci:{}:{tag}", s(&two)),
        ]));
        assert_eq!(r, raw, "tag {tag}");
    }
}

#[test]
fn local_and_tar_outputs_equal_the_unpacked_image() {
    let env = Env::new();
    build_base(&env);
    let app = app_context(&env);
    let layout = env.path("layout");
    let local = env.path("local");
    let fs_tar = env.path("fs.tar");
    let (stdout, stderr) = build(
        &env,
        &app,
        &[
            "-t",
            "outputs/app:1",
            "-o",
            &out("oci", &layout, ""),
            "-o",
            &out("local", &local, ""),
            "-o",
            &out("tar", &fs_tar, ""),
        ],
    );
    assert!(
        stderr.contains(&format!("wrote root filesystem in {}\n", local.display())),
        "{stderr}"
    );
    assert!(String::from_utf8(stdout).unwrap().starts_with("sha256:"));

    // type=local: exactly what umoci unpacks from the image (paths, kinds, modes, owners,
    // mtimes, hard links, contents, link targets), whiteouts applied across layers.
    let local_tree = tree(&local);
    assert_app_rootfs(&local_tree);
    let unpacked = tree(&umoci_unpack(&layout, "1", &env.path("bundle")));
    assert_same_tree("type=local vs umoci unpack", &unpacked, &local_tree);

    // type=tar: GNU tar extracts it to the same tree; its members are the tree's paths.
    let extracted = env.path("extracted");
    untar(&fs_tar, &extracted);
    assert_same_tree("type=tar extracted vs type=local", &local_tree, &tree(&extracted));
    let mut members: Vec<String> =
        tar_members(&fs_tar).iter().map(|m| m.trim_end_matches('/').to_string()).collect();
    members.sort();
    assert_eq!(members, local_tree.keys().cloned().collect::<Vec<_>>());
    assert!(!members.iter().any(|m| m.contains(".wh.")), "{members:?}");

    // dest=- and the `-o -` shorthand: the same bytes on stdout, nothing else there.
    let (piped, _) = build(&env, &app, &["-o", "type=tar,dest=-"]);
    assert_eq!(piped, std::fs::read(&fs_tar).unwrap());
    let (short, _) = build(&env, &app, &["-o", "-"]);
    assert_eq!(short, piped);

    // The PATH shorthand is type=local; a non-empty destination is refused after the build.
    let short_dir = env.path("short");
    build(&env, &app, &["-o", s(&short_dir)]);
    assert_same_tree("-o DIR", &local_tree, &tree(&short_dir));
    let again = env.kiln(&["build", "-o", &out("local", &local, ""), s(&app)]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&again.stderr).lines().last().unwrap(),
        format!(
            "error: kiln store: {} exists and is not an empty directory; remove it or choose another destination",
            local.display()
        )
    );
}

#[test]
fn zstd_layers_are_pushed_and_read_back_from_a_registry() {
    let reg = registry_support::TestRegistry::plain();
    let env = Env::new();
    build_base(&env);
    let app = app_context(&env);
    let name = format!("{}/outputs/x:zstd", reg.host());
    let layout = env.path("z19");
    let local = env.path("local");
    let meta = env.path("meta.json");
    let (_, stderr) = build(
        &env,
        &app,
        &[
            "--compression=zstd",
            "--compression-level=19",
            "--tls-verify=false",
            "--metadata-file",
            s(&meta),
            "-o",
            &format!("type=image,name={name},push=true"),
            "-o",
            &out("oci", &layout, "name=z:19"),
            "-o",
            &out("local", &local, ""),
        ],
    );
    let (_, config_digest) = metadata(&meta);
    let manifest = skopeo_manifest(&layout, "19");
    let index = json_of(&std::fs::read(layout.join("index.json")).unwrap());
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_string();
    assert_eq!(manifest["config"]["digest"], config_digest);
    // The pushed image is the one the layout holds (same options, same manifest).
    assert!(
        stderr.contains(&format!("wrote image {name}, pushed {}/outputs/x@{digest}", reg.host())),
        "{stderr}"
    );
    assert_eq!(
        layer_media_types(&manifest),
        vec!["application/vnd.oci.image.layer.v1.tar+zstd"; 4]
    );
    let config = common::raw_config(&layout, "19");
    // Each blob is a zstd stream of the layer tar named by its diff_id.
    for (layer, diff_id) in layer_digests(&manifest).iter().zip(diff_ids(&config)) {
        let bytes = std::fs::read(blob(&layout, layer)).unwrap();
        assert_eq!(bytes[..4], [0x28, 0xb5, 0x2f, 0xfd], "{layer} is not zstd");
        let tar = run_bytes(Command::new("zstd").args(["-dc"]).arg(blob(&layout, layer)));
        assert_eq!(sha256(&tar), diff_id);
    }

    // The registry has the same manifest; skopeo copies it out with its zstd blobs intact.
    let remote = format!("docker://{name}");
    let raw = registry_support::skopeo(&["inspect", "--raw", "--tls-verify=false", &remote]);
    assert_eq!(sha256(raw.as_bytes()), digest);
    let back = env.path("back");
    registry_support::skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &remote,
        &format!("oci:{}:back", s(&back)),
    ]);
    let copied = skopeo_manifest(&back, "back");
    assert_eq!(layer_digests(&copied), layer_digests(&manifest));
    assert_eq!(layer_media_types(&copied), layer_media_types(&manifest));
    // umoci 0.4 reads no zstd: skopeo converts while copying, then the files are the image's.
    let back_gz = env.path("back-gz");
    registry_support::skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-compress-format=gzip",
        &remote,
        &format!("oci:{}:gz", s(&back_gz)),
    ]);
    let unpacked = tree(&umoci_unpack(&back_gz, "gz", &env.path("bundle")));
    assert_app_rootfs(&unpacked);
    assert_same_tree("pulled back from the registry", &tree(&local), &unpacked);

    // `kiln push` of the stored tag sends the same zstd manifest under another name.
    let other = format!("{}/outputs/y:zstd", reg.host());
    let mut push = env.kiln_cmd(&["push", "--tls-verify=false", &name, &other]);
    let pushed = run_ok(&mut push);
    assert_eq!(pushed.trim(), digest);
    let raw_other = registry_support::skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{other}"),
    ]);
    assert_eq!(raw_other, raw);
}

#[test]
fn rootless_local_output_gives_the_files_to_the_user() {
    use common::As;
    let who = As::Rootless;
    let env = Env::for_user(who);
    let ok = |args: &[&str]| {
        let o = env.kiln_as(who, args);
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "kiln {args:?} failed:\n{stderr}");
        stderr
    };
    let base = common::busybox_context(
        &env,
        who,
        &[
            ("Dockerfile", "FROM scratch\nCOPY rootfs/ /\n"),
            ("rootfs/etc/dir/a.conf", "conf\n"),
            ("rootfs/etc/gone.txt", "gone\n"),
            ("rootfs/etc/keep", "keep\n"),
        ],
    );
    ok(&["build", "-t", BASE, s(&base)]);
    let app = env.path("app");
    env.write_as(who, &app, &[("Dockerfile", APP_DOCKERFILE), ("f", "file\n")]);
    let local = env.path("local");
    let fs_tar = env.path("fs.tar");
    let stderr =
        ok(&["build", "-o", &out("local", &local, ""), "-o", &out("tar", &fs_tar, ""), s(&app)]);
    assert!(
        stderr.contains(&format!(
            "wrote root filesystem in {} (files owned by you: kiln is not running as root)",
            local.display()
        )),
        "{stderr}"
    );
    let uid: u32 = run_ok(Command::new("id").args(["-u", "kilntest"])).trim().parse().unwrap();
    let gid: u32 = run_ok(Command::new("id").args(["-g", "kilntest"])).trim().parse().unwrap();
    let local_tree = tree(&local);
    for (path, node) in &local_tree {
        assert_eq!((node.uid, node.gid), (uid, gid), "{path}");
    }
    // The tar keeps the image's owners; extracted by root, it is the same tree but for them.
    let extracted = env.path("extracted");
    untar(&fs_tar, &extracted);
    let from_tar = tree(&extracted);
    assert_app_rootfs(&from_tar);
    let with_owner = |t: &std::collections::BTreeMap<String, Node>| {
        t.iter()
            .map(|(p, n)| (p.clone(), Node { uid, gid, ..n.clone() }))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_same_tree("rootless type=local vs type=tar", &with_owner(&from_tar), &local_tree);
}
