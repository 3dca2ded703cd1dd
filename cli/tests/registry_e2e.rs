//! End-to-end through the `kiln` binary against a real `docker-registry`: build and push, skopeo
//! reads it; skopeo pushes, kiln pulls and builds FROM it; login/logout; credential helpers.

mod common;
#[path = "../../builder/tests/registry_support/mod.rs"]
mod registry_support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Env, write_files};
use registry_support::{TestRegistry, skopeo};
use serde_json::Value;

/// A kiln command isolated from the user's registry configuration: its own HOME, runtime dir,
/// registries.conf (with `insecure` for `insecure_hosts`) and no auth file override.
fn isolated(env: &Env, args: &[&str], insecure_hosts: &[&str]) -> Command {
    let home = env.path("home");
    let run = env.path("run");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&run).unwrap();
    let conf = env.path("registries.conf");
    let mut text = String::new();
    for h in insecure_hosts {
        text.push_str(&format!("[[registry]]\nlocation = \"{h}\"\ninsecure = true\n"));
    }
    std::fs::write(&conf, text).unwrap();
    let mut cmd = env.kiln_cmd(args);
    cmd.env("HOME", &home)
        .env("XDG_RUNTIME_DIR", &run)
        .env("CONTAINERS_REGISTRIES_CONF", &conf)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("DOCKER_CONFIG")
        .env_remove("XDG_CONFIG_HOME");
    cmd
}

fn ok(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().expect("run kiln");
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{e}", out.status);
    (o, e)
}

fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run kiln");
    assert_eq!(out.status.code(), Some(1), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn context(env: &Env, name: &str, dockerfile: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = env.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    write_files(&dir, files);
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    dir
}

fn raw_digest(reference: &str) -> String {
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{reference}")]);
    kiln_cache::digest::Digest::of_bytes(raw.as_bytes()).to_string()
}

#[test]
fn build_push_and_outputs_reach_the_registry() {
    let reg = TestRegistry::plain();
    let env = Env::new();
    let ctx = context(
        &env,
        "ctx",
        "FROM scratch\nCOPY hello /hello\nCMD [\"/hello\"]\n",
        &[("hello", "hi\n")],
    );
    let name = format!("{}/e2e/app:1", reg.host());
    let ctx_s = ctx.to_str().unwrap();
    let (stdout, stderr) = ok(&mut isolated(
        &env,
        &["build", "-t", &name, "--push", "--tls-verify=false", ctx_s],
        &[],
    ));
    let pushed_line =
        stderr.lines().find(|l| l.starts_with("Pushed ")).unwrap_or_else(|| panic!("{stderr}"));
    let digest = raw_digest(&name);
    assert_eq!(pushed_line, format!("Pushed {}/e2e/app@{digest}", reg.host()));
    assert!(stdout.trim().starts_with("sha256:"), "{stdout}");
    let config: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--config",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]))
    .unwrap();
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["/hello"]));
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);

    // kiln push NAME DEST --digestfile: the same manifest under another name.
    let copy = format!("{}/e2e/copy:2", reg.host());
    let digestfile = env.path("digest.txt");
    let (stdout, stderr) = ok(&mut isolated(
        &env,
        &["push", "--tls-verify=false", "--digestfile", digestfile.to_str().unwrap(), &name, &copy],
        &[],
    ));
    assert_eq!(stdout.trim(), digest);
    assert_eq!(std::fs::read_to_string(&digestfile).unwrap(), digest);
    assert!(
        stderr.contains("skipped: already exists") || stderr.contains("mounted from e2e/app"),
        "{stderr}"
    );
    assert_eq!(raw_digest(&copy), digest);

    // --output type=registry with registries.conf marking the registry insecure.
    let out = format!("{}/e2e/out:3", reg.host());
    let output = format!("type=registry,name={out}");
    ok(&mut isolated(&env, &["build", "--output", &output, ctx_s], &[&reg.host()]));
    assert_eq!(raw_digest(&out), digest);

    // Without --tls-verify=false or registries.conf, a plain-HTTP registry is refused.
    let err =
        fails(&mut isolated(&env, &["push", &name, &format!("{}/e2e/no:1", reg.host())], &[]));
    assert!(err.contains("TLS"), "{err}");
}

/// The JSON progress objects of `stderr` for `task`.
fn progress_of(stderr: &str, task: &str) -> Vec<Value> {
    stderr
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .filter(|o| o["type"] == "progress" && o["task"] == task)
        .collect()
}

#[test]
fn transfers_and_compression_report_byte_progress() {
    let reg = TestRegistry::plain();
    let env = Env::new();
    let ctx = context(&env, "ctx", "FROM scratch\nCOPY big /big\n", &[]);
    // 3 MB that do not compress: several byte reports per layer.
    let mut noise = vec![0u8; 3_000_000];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut noise)
        .unwrap();
    std::fs::write(ctx.join("big"), noise).unwrap();
    let name = format!("{}/progress/app:1", reg.host());
    let host = reg.host();
    let insecure = [host.as_str()];
    let (_, stderr) = ok(&mut isolated(
        &env,
        &["build", "--progress=json", "-t", &name, "--push", ctx.to_str().unwrap()],
        &insecure,
    ));
    let manifest: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]))
    .unwrap();
    let layer = &manifest["layers"][0];
    let (layer_digest, layer_size) = (layer["digest"].as_str().unwrap(), layer["size"].as_u64());
    // The stored plain layer was compressed on the way out: reports from 0 to its size.
    let compress = progress_of(&stderr, "compress");
    assert!(compress.len() >= 3, "{stderr}");
    assert_eq!(compress.first().unwrap()["state"], "running");
    assert_eq!(compress.first().unwrap()["current"], 0);
    let done = compress.last().unwrap();
    assert_eq!(done["state"], "done", "{stderr}");
    assert_eq!(done["current"], done["total"]);
    assert!(done["total"].as_u64().unwrap() > 3_000_000);
    assert_eq!(done["vertex"], Value::Null);
    // The push: the compressed layer and the config, each to its end.
    let push = progress_of(&stderr, "push");
    let of_layer: Vec<&Value> = push.iter().filter(|o| o["id"] == layer_digest).collect();
    // (Byte reports in between depend on how the body is sent: not asserted.)
    assert!(of_layer.len() >= 2, "{stderr}");
    assert_eq!(of_layer[0]["state"], "running");
    let last = of_layer.last().unwrap();
    assert_eq!((last["state"].as_str(), last["current"].as_u64()), (Some("done"), layer_size));
    assert_eq!(last["total"].as_u64(), layer_size);
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    assert!(push.iter().any(|o| o["id"] == config_digest && o["state"] == "done"), "{stderr}");
    let pushed = stderr
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|o| o["type"] == "pushed")
        .unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(pushed["digest"], raw_digest(&name));
    assert_eq!(pushed["name"], format!("{}/progress/app", reg.host()));

    // Pushing again: every blob is skipped, in plain lines.
    let (_, stderr) = ok(&mut isolated(
        &env,
        &["build", "--progress=plain", "-t", &name, "--push", ctx.to_str().unwrap()],
        &insecure,
    ));
    let short = &layer_digest[..19];
    assert!(stderr.contains(&format!("push {short} skipped: already exists\n")), "{stderr}");

    // Another root builds FROM it: the layer is pulled with byte progress, in plain lines.
    let other = Env::new();
    let from = context(&other, "from", &format!("FROM {name}\nENV X=1\n"), &[]);
    let (_, stderr) = ok(&mut isolated(
        &other,
        &["build", "--progress=plain", from.to_str().unwrap()],
        &insecure,
    ));
    let size = kiln_render_size(layer_size.unwrap());
    assert!(stderr.contains(&format!("pull {short} {size} DONE ")), "{stderr}");
}

/// `2.50MB`, as kiln prints sizes (decimal units, three significant digits).
fn kiln_render_size(bytes: u64) -> String {
    let mb = bytes as f64 / 1e6;
    if mb >= 100.0 {
        format!("{mb:.0}MB")
    } else if mb >= 10.0 {
        format!("{mb:.1}MB")
    } else {
        format!("{mb:.2}MB")
    }
}

#[test]
fn skopeo_pushes_and_kiln_pulls_and_builds_from_it() {
    let reg = TestRegistry::plain();
    let env = Env::new();
    // A base image built by kiln into an OCI layout, pushed by skopeo with zstd layers.
    let base_ctx = context(
        &env,
        "base",
        "FROM scratch\nCOPY etc /etc\nCOPY bin /bin\nENV BASE=1\n",
        &[("etc/os-release", "ID=kilntest\n"), ("bin/tool", "#!/bin/sh\n")],
    );
    let layout = env.path("base-layout");
    Env::new().build_to_layout(&base_ctx, "base", &layout, &[]);
    let base = format!("{}/e2e/base:1", reg.host());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-compress-format=zstd",
        &format!("oci:{}:base", layout.display()),
        &format!("docker://{base}"),
    ]);
    let raw: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{base}"),
    ]))
    .unwrap();
    assert!(raw["layers"][0]["mediaType"].as_str().unwrap().ends_with("+zstd"), "{raw:#}");

    // --pull=never: not in the store, so it fails and says why.
    let app = context(
        &env,
        "app",
        &format!("FROM {base}\nCOPY app.txt /app.txt\n"),
        &[("app.txt", "app\n")],
    );
    let app_s = app.to_str().unwrap();
    let err = fails(&mut isolated(
        &env,
        &["build", "--pull=never", "-t", "app:1", app_s],
        &[&reg.host()],
    ));
    assert!(err.contains("is not in the local store and pulling is off (--pull=never)"), "{err}");

    // FROM a registry image: pulled (registries.conf says the registry is insecure), tagged,
    // and the build's image has the base's layers below its own.
    let dest = env.path("app-layout");
    let output = format!("type=oci,dest={}", dest.display());
    ok(&mut isolated(&env, &["build", "-t", "app:1", "--output", &output, app_s], &[&reg.host()]));
    let (images, _) = ok(&mut isolated(&env, &["images", "--json"], &[]));
    let images: Value = serde_json::from_str(&images).unwrap();
    let names: Vec<&str> =
        images.as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, [base.as_str(), "app:1"]);
    let manifest = common::skopeo_manifest(&dest, "1");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), raw["layers"].as_array().unwrap().len() + 1);
    assert_eq!(layers[0]["digest"], raw["layers"][0]["digest"]);
    // The tag moves to a new image: --pull=missing keeps using the stored one, --pull=always
    // fetches the new one.
    let base2_ctx = context(
        &env,
        "base2",
        "FROM scratch\nCOPY etc /etc\n",
        &[("etc/os-release", "ID=kilntest2\n")],
    );
    let layout2 = env.path("base2-layout");
    Env::new().build_to_layout(&base2_ctx, "base", &layout2, &[]);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-compress-format=zstd",
        &format!("oci:{}:base", layout2.display()),
        &format!("docker://{base}"),
    ]);
    let new_raw: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{base}"),
    ]))
    .unwrap();
    let first_layer = |name: &str| -> Value {
        let (out, _) = ok(&mut isolated(&env, &["inspect", name], &[]));
        let details: Value = serde_json::from_str(&out).unwrap();
        details["manifest"]["layers"][0]["digest"].clone()
    };
    ok(&mut isolated(&env, &["build", "-t", "app:2", app_s], &[&reg.host()]));
    assert_eq!(first_layer("app:2"), raw["layers"][0]["digest"]);
    ok(&mut isolated(&env, &["build", "--pull=always", "-t", "app:3", app_s], &[&reg.host()]));
    assert_eq!(first_layer("app:3"), new_raw["layers"][0]["digest"]);
    assert_ne!(new_raw["layers"][0]["digest"], raw["layers"][0]["digest"]);

    // COPY --from a registry image reads its zstd layers (the copy lands in a new gzip layer).
    let copier = context(
        &env,
        "copier",
        &format!("FROM scratch\nCOPY --from={base} /etc/os-release /copied\n"),
        &[],
    );
    let copied = env.path("copier-layout");
    let output = format!("type=oci,dest={}", copied.display());
    ok(&mut isolated(
        &env,
        &["build", "-t", "copier:1", "--output", &output, copier.to_str().unwrap()],
        &[&reg.host()],
    ));
    let rootfs = common::umoci_unpack(&copied, "1", &env.path("bundle"));
    // The local tag now names the image --pull=always fetched.
    assert_eq!(std::fs::read_to_string(rootfs.join("copied")).unwrap(), "ID=kilntest2\n");

    // kiln pull of the same image again skips every blob.
    let (stdout, stderr) = ok(&mut isolated(&env, &["pull", &base], &[&reg.host()]));
    assert!(stdout.trim().starts_with("sha256:"));
    assert!(!stderr.contains(" done "), "{stderr}");
    assert!(stderr.contains("skipped: already exists"), "{stderr}");
    // A single-platform image asked for another platform: used, with a warning.
    let (_, stderr) =
        ok(&mut isolated(&env, &["pull", "--platform", "linux/s390x", &base], &[&reg.host()]));
    assert!(
        stderr.contains(&format!(
            "WARNING: {base} is for linux/amd64, not the requested linux/s390x"
        )),
        "{stderr}"
    );
}

/// A `docker-credential-kilntest` helper that records what it was asked and answers with
/// `user`/`secret`.
fn helper(dir: &Path, user: &str, secret: &str) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let asked = dir.join("helper-asked");
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = get ] || exit 2\ncat > {}\nprintf '{{\"ServerURL\":\"x\",\"Username\":\"{user}\",\"Secret\":\"{secret}\"}}'\n",
        asked.display()
    );
    let path = bin.join("docker-credential-kilntest");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn login_logout_and_credential_helpers_against_tls_and_basic_auth() {
    let reg = TestRegistry::secure("e2e", "e2e-Secret-9");
    let env = Env::new();
    let ca = reg.ca_dir.as_deref().unwrap().to_str().unwrap().to_string();
    let host = reg.host();
    let ctx = context(&env, "ctx", "FROM scratch\nCOPY f /f\n", &[("f", "secure\n")]);
    let name = format!("{host}/sec/app:1");
    ok(&mut isolated(&env, &["build", "-t", &name, ctx.to_str().unwrap()], &[]));

    // A wrong password: refused, exit 1, and the password is not echoed anywhere.
    let mut login =
        isolated(&env, &["login", "--cert-dir", &ca, "-u", "e2e", "--password-stdin", &host], &[]);
    let out = feed(&mut login, "not-the-password\n");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        format!("error: {host}: authentication required: invalid username or password")
    );
    assert!(!env.path("run/containers/auth.json").exists());

    let mut login =
        isolated(&env, &["login", "--cert-dir", &ca, "-u", "e2e", "--password-stdin", &host], &[]);
    let out = feed(&mut login, "e2e-Secret-9\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Login Succeeded!\n");
    let auth: Value =
        serde_json::from_slice(&std::fs::read(env.path("run/containers/auth.json")).unwrap())
            .unwrap();
    // base64("e2e:e2e-Secret-9")
    assert_eq!(auth["auths"][&host]["auth"], "ZTJlOmUyZS1TZWNyZXQtOQ==");
    let (user, _) = ok(&mut isolated(&env, &["login", "--get-login", &host], &[]));
    assert_eq!(user, "e2e\n");

    let (digest, _) = ok(&mut isolated(&env, &["push", "--cert-dir", &ca, &name], &[]));
    let (logout, _) = ok(&mut isolated(&env, &["logout", &host], &[]));
    assert_eq!(logout, format!("Removed login credentials for {host}\n"));
    let err = fails(&mut isolated(&env, &["logout", &host], &[]));
    assert_eq!(err.trim(), format!("error: not logged into {host}"));
    let err = fails(&mut isolated(&env, &["pull", "--cert-dir", &ca, &name], &[]));
    assert!(err.contains("authentication required: no credentials found"), "{err}");

    // Docker's config.json with a credential helper for this registry.
    let docker_dir = env.path("home/.docker");
    std::fs::create_dir_all(&docker_dir).unwrap();
    std::fs::write(
        docker_dir.join("config.json"),
        format!(r#"{{"credHelpers":{{"{host}":"kilntest"}}}}"#),
    )
    .unwrap();
    let bin = helper(&env.path("helper"), "e2e", "e2e-Secret-9");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let (id, stderr) =
        ok(isolated(&env, &["pull", "--cert-dir", &ca, &name], &[]).env("PATH", &path));
    assert!(id.trim().starts_with("sha256:"), "{stderr}");
    assert_eq!(std::fs::read_to_string(env.path("helper/helper-asked")).unwrap(), host);
    let err = fails(&mut isolated(&env, &["logout", &host], &[]));
    assert!(err.contains("use docker logout"), "{err}");
    assert!(!digest.is_empty());

    // A helper with the wrong secret: refused by the registry, secret not shown.
    let bin = helper(&env.path("helper2"), "e2e", "wrong-secret-77");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = isolated(&env, &["pull", "--cert-dir", &ca, &name], &[])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("authentication required"), "{err}");
    assert!(!err.contains("wrong-secret-77"), "{err}");
}

/// Runs `cmd` with `input` on stdin.
fn feed(cmd: &mut Command, input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}
