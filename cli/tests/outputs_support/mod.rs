//! Support for the `--output` end-to-end tests: the images they build, file trees read back
//! from disk for comparison, and `podman` with a private store.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{As, Env, busybox_context, require, run_ok, write_files};

/// The base image every test builds first: busybox, and files in `/etc` that the app's steps
/// delete (so its layers hold whiteouts and an opaque directory).
pub const BASE: &str = "outputs/base:1";

/// The app's steps: a file from the context, then RUNs that delete base files and a directory
/// (and make it again: an opaque directory), hard links (one whose first name is deleted
/// later), modes (0600, 0700, setuid), owners and a symlink.
pub const APP_DOCKERFILE: &str = "FROM outputs/base:1\n\
LABEL from.dockerfile=yes stays=dockerfile\n\
COPY f /f\n\
RUN rm /etc/gone.txt && rm -r /etc/dir && mkdir /etc/dir && echo new > /etc/dir/b \
&& ln /f /f.hard && chmod 0600 /f && mkdir -m 0700 /priv && echo s > /priv/x \
&& chown 1234:5678 /priv/x && echo hi > /hi && chmod 4755 /hi && ln -s /hi /hilink\n\
RUN rm /f && echo again > /g && ln /g /g2\n";

/// Builds [`BASE`] in `env`'s root.
pub fn build_base(env: &Env) {
    let ctx = busybox_context(
        env,
        As::Root,
        &[
            ("Dockerfile", "FROM scratch\nCOPY rootfs/ /\nCMD [\"/bin/sh\"]\n"),
            ("rootfs/etc/dir/a.conf", "conf\n"),
            ("rootfs/etc/gone.txt", "gone\n"),
            ("rootfs/etc/keep", "keep\n"),
        ],
    );
    env.kiln_ok(&["build", "-t", BASE, ctx.to_str().expect("utf-8")]);
}

/// A context directory `name` with `dockerfile` and `files`.
pub fn context(env: &Env, name: &str, dockerfile: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = env.path(name);
    std::fs::create_dir_all(&dir).expect("mkdir context");
    write_files(&dir, files);
    std::fs::write(dir.join("Dockerfile"), dockerfile).expect("write Dockerfile");
    dir
}

/// The app context ([`APP_DOCKERFILE`]) under `env`; [`build_base`] must have run.
pub fn app_context(env: &Env) -> PathBuf {
    context(env, "app", APP_DOCKERFILE, &[("f", "file\n")])
}

/// Runs `kiln build ARGS... CONTEXT` and asserts success; returns (stdout bytes, stderr).
pub fn build(env: &Env, ctx: &Path, args: &[&str]) -> (Vec<u8>, String) {
    let mut all: Vec<&str> = vec!["build"];
    all.extend_from_slice(args);
    all.push(ctx.to_str().expect("utf-8"));
    let out = env.kiln(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "kiln {all:?} failed ({}):\n{stderr}", out.status);
    (out.stdout, stderr)
}

/// A path as `&str` (test paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Parses JSON bytes.
pub fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("JSON")
}

/// `skopeo ARGS` (success asserted) as JSON.
pub fn skopeo_json(args: &[&str]) -> Value {
    serde_json::from_str(&crate::registry_support::skopeo(args)).expect("skopeo JSON")
}

/// (manifest digest, config digest) from `--metadata-file`.
pub fn metadata(file: &Path) -> (String, String) {
    let m = json_of(&std::fs::read(file).expect("metadata file"));
    (
        m["containerimage.digest"].as_str().expect("digest").to_string(),
        m["containerimage.config.digest"].as_str().expect("config digest").to_string(),
    )
}

/// `--output` value `type=KIND,dest=PATH` plus `extra` options.
pub fn out(kind: &str, dest: &Path, extra: &str) -> String {
    let mut s = format!("type={kind},dest={}", dest.display());
    if !extra.is_empty() {
        s.push(',');
        s.push_str(extra);
    }
    s
}

/// What `kiln inspect NAME` says: (manifest, config).
pub fn inspect(env: &Env, name: &str) -> (Value, Value) {
    let details: Value =
        serde_json::from_str(&env.kiln_ok(&["inspect", name])).expect("inspect JSON");
    (details["manifest"].clone(), details["config"].clone())
}

/// The `digest` fields of a manifest's layers.
pub fn layer_digests(manifest: &Value) -> Vec<String> {
    field_of_layers(manifest, "digest")
}

/// The `mediaType` fields of a manifest's layers.
pub fn layer_media_types(manifest: &Value) -> Vec<String> {
    field_of_layers(manifest, "mediaType")
}

fn field_of_layers(manifest: &Value, field: &str) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l[field].as_str().expect("layer field").to_string())
        .collect()
}

/// The config's `rootfs.diff_ids`.
pub fn diff_ids(config: &Value) -> Vec<String> {
    config["rootfs"]["diff_ids"]
        .as_array()
        .expect("diff_ids")
        .iter()
        .map(|d| d.as_str().expect("diff_id").to_string())
        .collect()
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    kiln_cache::digest::Digest::of_bytes(bytes).to_string()
}

/// The path of blob `digest` in an OCI layout.
pub fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))
}

/// Runs `cmd`, asserts success, returns stdout as bytes (for decompressed layers).
pub fn run_bytes(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Member names of a tar file, in order (GNU tar).
pub fn tar_members(file: &Path) -> Vec<String> {
    run_ok(Command::new("tar").arg("-tf").arg(file)).lines().map(str::to_string).collect()
}

/// One member of a tar file, as bytes (GNU tar).
pub fn tar_member(file: &Path, name: &str) -> Vec<u8> {
    run_bytes(Command::new("tar").arg("-xOf").arg(file).arg(name))
}

/// Extracts a tar file into a new directory `dir` as GNU tar does (owners and modes kept).
pub fn untar(file: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    run_ok(
        Command::new("tar")
            .args(["--numeric-owner", "--same-owner", "-xpf"])
            .arg(file)
            .arg("-C")
            .arg(dir),
    );
}

/// One file of a tree, as compared between outputs and outside readers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `d`, `f`, `l` (symlink), or `?`.
    pub kind: char,
    /// Permission bits with setuid/setgid/sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    /// Hard link count (files).
    pub nlink: u64,
    /// Files: sha256 of the content; symlinks: the target.
    pub data: String,
}

/// Every path below `root` (not `root` itself), relative, with what it is.
pub fn tree(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    assert!(!out.is_empty(), "{} is empty", root.display());
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let meta = std::fs::symlink_metadata(&path).expect("lstat");
        let ft = meta.file_type();
        let (kind, data, nlink) = if ft.is_dir() {
            ('d', String::new(), 0)
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path).expect("readlink");
            ('l', target.to_string_lossy().into_owned(), 0)
        } else if ft.is_file() {
            ('f', sha256(&std::fs::read(&path).expect("read")), meta.nlink())
        } else {
            ('?', String::new(), meta.nlink())
        };
        let rel = path.strip_prefix(root).expect("below root").to_string_lossy().into_owned();
        out.insert(
            rel,
            Node {
                kind,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                mtime: meta.mtime(),
                nlink,
                data,
            },
        );
        if ft.is_dir() {
            walk(root, &path, out);
        }
    }
}

/// Asserts two trees are equal, naming the first paths that differ.
#[track_caller]
pub fn assert_same_tree(
    what: &str,
    expected: &BTreeMap<String, Node>,
    got: &BTreeMap<String, Node>,
) {
    let mut diffs = Vec::new();
    for (path, node) in expected {
        match got.get(path) {
            None => diffs.push(format!("{path}: missing")),
            Some(g) if g != node => diffs.push(format!("{path}: expected {node:?}, got {g:?}")),
            Some(_) => {}
        }
    }
    for path in got.keys().filter(|p| !expected.contains_key(*p)) {
        diffs.push(format!("{path}: not expected"));
    }
    assert!(diffs.is_empty(), "{what}: trees differ:\n{}", diffs.join("\n"));
}

/// Checks what the app image's root filesystem must hold (whiteouts applied, links kept).
#[track_caller]
pub fn assert_app_rootfs(t: &BTreeMap<String, Node>) {
    let file = |p: &str| t.get(p).unwrap_or_else(|| panic!("{p} missing"));
    assert!(!t.contains_key("etc/gone.txt"), "a whiteout was not applied");
    assert!(!t.contains_key("etc/dir/a.conf"), "the opaque directory kept a lower file");
    assert!(!t.contains_key("f"), "a whiteout was not applied");
    assert_eq!(file("etc/dir/b").data, sha256(b"new\n"));
    assert_eq!(file("etc/keep").data, sha256(b"keep\n"));
    // The hard link whose first name was deleted keeps the content and the 0600 mode.
    assert_eq!((file("f.hard").data.clone(), file("f.hard").mode), (sha256(b"file\n"), 0o600));
    assert_eq!((file("g").nlink, file("g2").nlink), (2, 2));
    assert_eq!(file("hi").mode, 0o4755);
    assert_eq!((file("hilink").kind, file("hilink").data.as_str()), ('l', "/hi"));
    assert_eq!((file("priv").kind, file("priv").mode), ('d', 0o700));
    assert_eq!((file("priv/x").uid, file("priv/x").gid), (1234, 5678));
    assert_eq!((file("bin/sh").kind, file("bin/sh").data.as_str()), ('l', "busybox"));
}

/// `podman` with its own store under a test directory (never the machine's).
pub struct Podman {
    root: PathBuf,
    runroot: PathBuf,
}

impl Podman {
    /// A podman whose store lives in `dir`.
    pub fn new(dir: &Path) -> Podman {
        require("podman");
        Podman { root: dir.join("storage"), runroot: dir.join("run") }
    }

    /// The podman command with the private store (vfs: no mounts needed).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.runroot)
            .args(["--storage-driver", "vfs", "--events-backend", "none"])
            .args(args);
        cmd
    }

    /// Runs podman and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        run_ok(&mut self.cmd(args))
    }

    /// Runs podman; returns its output whatever the status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run podman")
    }

    /// `podman image inspect NAME` (the first element).
    pub fn inspect(&self, name: &str) -> Value {
        let v: Value =
            serde_json::from_str(&self.ok(&["image", "inspect", name])).expect("podman JSON");
        v[0].clone()
    }

    /// The image's root filesystem as podman stores it (`podman image mount`), read as a tree.
    pub fn rootfs_tree(&self, name: &str) -> BTreeMap<String, Node> {
        let dir = self.ok(&["image", "mount", name]);
        let t = tree(Path::new(dir.trim()));
        self.ok(&["image", "unmount", name]);
        t
    }
}
