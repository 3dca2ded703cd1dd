//! Helpers for kiln's end-to-end tests: run the real binary, read results with outside tools.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The repository's `testdata/` directory.
pub fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata").join(name)
}

/// Fails the test with an install hint when an outside tool is missing: these tests never
/// skip silently (scripts/setup-machine installs every tool they use).
pub fn require(tool: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(found, "{tool} is required by this test: run scripts/setup-machine");
}

/// A scratch directory with a kiln root inside.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `kiln --root ROOT args...`
    pub fn kiln(&self, args: &[&str]) -> Output {
        self.kiln_cmd(args).output().expect("run kiln")
    }

    pub fn kiln_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
        cmd.arg("--root").arg(self.root()).args(args);
        cmd.env_remove("SOURCE_DATE_EPOCH");
        cmd
    }

    /// Runs kiln and asserts success; returns stdout.
    pub fn kiln_ok(&self, args: &[&str]) -> String {
        let out = self.kiln(args);
        assert!(
            out.status.success(),
            "kiln {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Builds `context` and writes an OCI layout to `dest` with tag `tag`; returns stderr.
    pub fn build_to_layout(
        &self,
        context: &Path,
        tag: &str,
        dest: &Path,
        extra: &[&str],
    ) -> String {
        let output = format!("type=oci,dest={}", dest.display());
        let name = format!("test/image:{tag}");
        let mut args = vec!["build", "-t", &name, "--output", &output];
        args.extend_from_slice(extra);
        let ctx = context.to_str().expect("utf-8 path");
        args.push(ctx);
        let out = self.kiln(&args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "kiln {args:?} failed:\n{stderr}");
        stderr
    }
}

/// Runs a command and asserts it succeeded; returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `skopeo inspect --raw oci:DIR:TAG` as JSON (the manifest).
pub fn skopeo_manifest(layout: &Path, tag: &str) -> Value {
    require("skopeo");
    let raw = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:{tag}", layout.display())),
    );
    serde_json::from_str(&raw).expect("manifest JSON")
}

/// `skopeo inspect --config oci:DIR:TAG` as JSON (the image config).
pub fn skopeo_config(layout: &Path, tag: &str) -> Value {
    require("skopeo");
    let raw = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--config"])
            .arg(format!("oci:{}:{tag}", layout.display())),
    );
    serde_json::from_str(&raw).expect("config JSON")
}

/// `umoci unpack` of DIR:TAG into a new bundle; returns the bundle's rootfs.
pub fn umoci_unpack(layout: &Path, tag: &str, bundle: &Path) -> PathBuf {
    require("umoci");
    run_ok(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:{tag}", layout.display()))
            .arg(bundle),
    );
    bundle.join("rootfs")
}

/// Copies Debian's static busybox into `dir/bin` with a few applet links.
pub fn busybox_rootfs(dir: &Path) {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox is required: run scripts/setup-machine (busybox-static)"
    );
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir bin");
    std::fs::copy(busybox, bin.join("busybox")).expect("copy busybox");
    for applet in ["sh", "echo", "cat", "ls", "id"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("applet link");
    }
}

/// Writes files given as (relative path, content) under `dir`.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (rel, content) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, content).expect("write");
    }
}

/// stderr of an Output as a String.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The image config blob exactly as stored in an OCI layout (skopeo re-encodes configs and
/// drops Docker-only fields such as `Shell`).
pub fn raw_config(layout: &Path, tag: &str) -> Value {
    let manifest = skopeo_manifest(layout, tag);
    let digest = manifest["config"]["digest"].as_str().expect("config digest");
    let blob = layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    serde_json::from_slice(&std::fs::read(blob).expect("config blob")).expect("config JSON")
}

/// Parses `--progress=plain` output into (step text, cached) pairs, in start order.
pub fn steps(stderr: &str) -> Vec<(String, bool)> {
    let mut started: Vec<(String, String)> = Vec::new();
    let mut cached = std::collections::HashMap::new();
    for line in stderr.lines() {
        let Some(rest) = line.strip_prefix('#') else { continue };
        let Some((vertex, text)) = rest.split_once(' ') else { continue };
        if let Some(step) = text.strip_prefix('[') {
            let text = step.split_once("] ").map(|(_, t)| t).unwrap_or(step);
            started.push((vertex.to_string(), text.to_string()));
        } else if text == "CACHED" {
            cached.insert(vertex.to_string(), true);
        }
    }
    started.into_iter().map(|(v, t)| (t, cached.contains_key(&v))).collect()
}

/// The texts of the steps that ran (not cached), skipping config-only and FROM steps.
pub fn rebuilt(stderr: &str) -> Vec<String> {
    steps(stderr)
        .into_iter()
        .filter(|(t, cached)| {
            !cached
                && (t.starts_with("COPY")
                    || t.starts_with("RUN")
                    || t.starts_with("WORKDIR")
                    || t.starts_with("ADD"))
        })
        .map(|(t, _)| t)
        .collect()
}

/// Who runs kiln in a test: root, or a non-root user with a subordinate id range (rootless).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum As {
    Root,
    /// `kilntest`, created by scripts/test-users.
    Rootless,
}

impl Env {
    /// A scratch directory the given user can use (owned by it for `As::Rootless`).
    pub fn for_user(who: As) -> Env {
        let env = Env::new();
        if who == As::Rootless {
            let ok = Command::new("id")
                .arg("kilntest")
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            assert!(ok, "user kilntest is missing: run scripts/test-users (as root)");
            std::fs::set_permissions(
                env.dir.path(),
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .unwrap();
            run_ok(Command::new("chown").args(["-R", "kilntest:kilntest"]).arg(env.dir.path()));
        }
        env
    }

    /// `kiln --root ROOT args...` as `who`.
    pub fn kiln_as(&self, who: As, args: &[&str]) -> Output {
        self.kiln_cmd_as(who, args).output().expect("run kiln")
    }

    /// The command for `kiln_as`.
    pub fn kiln_cmd_as(&self, who: As, args: &[&str]) -> Command {
        match who {
            As::Root => self.kiln_cmd(args),
            As::Rootless => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", "kilntest", "--", "env", "-i"])
                    .arg("PATH=/usr/local/bin:/usr/bin:/bin")
                    .arg(format!("HOME={}", self.dir.path().display()))
                    .arg(env!("CARGO_BIN_EXE_kiln"))
                    .arg("--root")
                    .arg(self.root())
                    .args(args);
                cmd
            }
        }
    }

    /// Writes files and gives them to the test user when rootless.
    pub fn write_as(&self, who: As, dir: &Path, files: &[(&str, &str)]) {
        write_files(dir, files);
        if who == As::Rootless {
            run_ok(Command::new("chown").args(["-R", "kilntest:kilntest"]).arg(dir));
        }
    }
}

/// A context with a busybox rootfs under `rootfs/` and the given extra files.
pub fn busybox_context(env: &Env, who: As, files: &[(&str, &str)]) -> PathBuf {
    let ctx = env.path("ctx");
    busybox_rootfs(&ctx.join("rootfs"));
    for applet in [
        "mkdir", "rm", "chown", "id", "touch", "sleep", "date", "grep", "wc", "stat", "test",
        "pwd", "seq", "mkfifo", "true", "false", "cp", "ln", "env", "chmod", "head", "tr",
    ] {
        let _ = std::os::unix::fs::symlink("busybox", ctx.join("rootfs/bin").join(applet));
    }
    env.write_as(who, &ctx, files);
    ctx
}
