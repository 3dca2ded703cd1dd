//! Faults: a full disk, a read-only root, permission errors. Each gives a clear error, nothing
//! panics, and the store stays consistent (`kiln cache check`). Runs as root (it mounts).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// A tmpfs mounted for the test's lifetime; unmounted (lazily, so a failed test cannot leave it
/// busy) when dropped.
struct Mount {
    dir: PathBuf,
}

impl Mount {
    /// Mounts a tmpfs of `size` (e.g. `16m`) on `dir` (created).
    fn tmpfs(dir: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(dir).unwrap();
        run_ok(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
                .arg(dir),
        );
        Mount { dir: dir.to_path_buf() }
    }

    /// Bind-mounts `source` on `dir` read-only.
    fn read_only_bind(source: &Path, dir: &Path) -> Mount {
        std::fs::create_dir_all(dir).unwrap();
        run_ok(Command::new("mount").arg("--bind").arg(source).arg(dir));
        let mount = Mount { dir: dir.to_path_buf() };
        run_ok(Command::new("mount").args(["-o", "remount,bind,ro"]).arg(dir));
        mount
    }

    /// Remounts read-only (`ro`) or read-write.
    fn remount(&self, options: &str) {
        run_ok(Command::new("mount").args(["-o", &format!("remount,{options}")]).arg(&self.dir));
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// `kiln --root ROOT ...` for a root that is not the Env's default one.
fn kiln_at(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("run kiln")
}

/// The one-line message after `error: ` in kiln's stderr.
fn error_message(out: &Output) -> String {
    let err = stderr(out);
    err.lines().find_map(|l| l.strip_prefix("error: ")).unwrap_or_default().to_string()
}

/// Asserts that kiln failed with exit code 1, an error message and no panic.
fn assert_clean_failure(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("RUST_BACKTRACE"), "{err}");
    err
}

/// `kiln cache check --dry-run --json` of `root`: it must report nothing inconsistent.
fn assert_consistent(root: &Path) -> serde_json::Value {
    let out = kiln_at(root, &["cache", "check", "--dry-run", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check JSON: {e}\n{}", stderr(&out)));
    assert!(out.status.success(), "{report:#}\n{}", stderr(&out));
    for list in ["corrupt_blobs", "dangling_records", "bad_records", "broken_tags"] {
        assert_eq!(report[list], serde_json::json!([]), "{list}: {report:#}");
    }
    report
}

/// Random bytes (incompressible: a layer of them is as big as the file).
fn random_file(path: &Path, mib: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    run_ok(Command::new("dd").arg("if=/dev/urandom").arg(format!("of={}", path.display())).args([
        "bs=1M",
        &format!("count={mib}"),
        "status=none",
    ]));
}

/// Entries left in `root/tmp` (a failed build must remove its temporaries).
fn leftovers(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root.join("tmp"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn a_full_disk_while_writing_a_copy_layer_fails_clearly_and_leaves_the_store_consistent() {
    let env = Env::new();
    let root = env.path("small");
    let _mount = Mount::tmpfs(&root, "16m");
    let ctx = env.path("ctx");
    write_files(&ctx, &[("Dockerfile", "FROM scratch\nCOPY small /small\nCOPY big /big\n")]);
    random_file(&ctx.join("small"), 1);
    random_file(&ctx.join("big"), 40);
    let c = ctx.to_str().unwrap();
    let out = kiln_at(&root, &["build", "--progress", "plain", "-t", "full:1", c]);
    let err = assert_clean_failure(&out);
    let message = error_message(&out);
    assert_eq!(
        message,
        "Dockerfile:3:1: COPY: writing layer entry \"big\": No space left on device (os error 28)",
        "{err}"
    );
    assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));
    assert_consistent(&root);
    // The first COPY's layer was kept and is reused; a build that fits succeeds.
    write_files(&ctx, &[("Dockerfile", "FROM scratch\nCOPY small /small\nCOPY Dockerfile /\n")]);
    let out = kiln_at(&root, &["build", "--progress", "plain", "-t", "fits:1", c]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(rebuilt(&stderr(&out)), ["COPY Dockerfile /"], "{}", stderr(&out));
    assert_consistent(&root);
}

#[test]
fn a_full_disk_during_and_after_a_run_step_fails_clearly_and_leaves_the_store_consistent() {
    let env = Env::new();
    let root = env.path("small");
    let _mount = Mount::tmpfs(&root, "16m");
    let ctx = busybox_context(&env, As::Root, &[]);
    std::os::unix::fs::symlink("busybox", ctx.join("rootfs/bin/dd")).unwrap();
    let c = ctx.to_str().unwrap();
    // The command itself runs out of space.
    write_files(
        &ctx,
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY rootfs/ /\nRUN dd if=/dev/urandom of=/big bs=1M count=40\n",
        )],
    );
    let out = kiln_at(&root, &["build", "--progress", "plain", c]);
    let err = assert_clean_failure(&out);
    let message = err.split("error: ").nth(1).unwrap_or_default();
    assert!(message.starts_with("Dockerfile:3:1: RUN: the command dd if=/dev/urandom"), "{err}");
    assert!(message.contains("No space left on device"), "{err}");
    assert!(message.contains("exit code: 1"), "{err}");
    assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));
    assert_consistent(&root);
    // The command fits, but its layer (compressed random bytes) does not.
    write_files(
        &ctx,
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY rootfs/ /\nRUN dd if=/dev/urandom of=/big bs=1M count=8\n",
        )],
    );
    let out = kiln_at(&root, &["build", "--progress", "plain", c]);
    let err = assert_clean_failure(&out);
    let message = error_message(&out);
    assert_eq!(
        message,
        "Dockerfile:3:1: RUN: writing layer entry \"big\": No space left on device (os error 28)",
        "{err}"
    );
    assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));
    assert_consistent(&root);
    // A RUN that fits builds, reusing the COPY layer.
    write_files(&ctx, &[("Dockerfile", "FROM scratch\nCOPY rootfs/ /\nRUN echo ok > /ok\n")]);
    let out = kiln_at(&root, &["build", "--progress", "plain", c]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(rebuilt(&stderr(&out)), ["RUN /bin/sh -c echo ok > /ok"], "{}", stderr(&out));
    assert_consistent(&root);
}

#[test]
fn a_read_only_root_fails_clearly_and_a_read_only_context_builds() {
    let env = Env::new();
    let root = env.path("ro-root");
    let mount = Mount::tmpfs(&root, "64m");
    let ctx = env.path("ctx");
    write_files(&ctx, &[("Dockerfile", "FROM scratch\nCOPY a /a\n"), ("a", "a\n")]);
    let c = ctx.to_str().unwrap();
    let out = kiln_at(&root, &["build", "--progress", "plain", "-t", "ro:1", c]);
    assert!(out.status.success(), "{}", stderr(&out));
    mount.remount("ro");
    write_files(&ctx, &[("a", "changed\n")]);
    let out = kiln_at(&root, &["build", "--progress", "plain", "-t", "ro:2", c]);
    let err = assert_clean_failure(&out);
    assert_eq!(
        error_message(&out),
        format!(
            "kiln root {} is on a read-only filesystem: a build, pull or push writes to it \
             (give a writable --root)",
            root.display()
        ),
        "{err}"
    );
    // Reading a read-only root still works.
    let images = kiln_at(&root, &["images"]);
    assert!(images.status.success(), "{}", stderr(&images));
    assert!(String::from_utf8_lossy(&images.stdout).contains("ro"), "{}", stderr(&images));
    assert_consistent(&root);
    mount.remount("rw");
    assert_consistent(&root);

    // A read-only context builds (kiln writes nothing into it).
    let ro_ctx = env.path("ro-ctx");
    let _ro = Mount::read_only_bind(&ctx, &ro_ctx);
    let out = env.kiln(&["build", "--progress", "plain", ro_ctx.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn an_unreadable_context_file_names_the_file_and_the_instruction() {
    let env = Env::for_user(As::Rootless);
    let ctx = env.path("ctx");
    env.write_as(
        As::Rootless,
        &ctx,
        &[("Dockerfile", "FROM scratch\nCOPY ok.txt /\nCOPY dir/ /dir/\n"), ("ok.txt", "ok\n")],
    );
    write_files(&ctx, &[("dir/private.txt", "root only\n")]);
    std::fs::set_permissions(ctx.join("dir/private.txt"), PermissionsExt::from_mode(0o600))
        .unwrap();
    let out = env.kiln_as(As::Rootless, &["build", "--progress", "plain", ctx.to_str().unwrap()]);
    let err = assert_clean_failure(&out);
    let message = error_message(&out);
    let file = ctx.join("dir/private.txt");
    assert_eq!(
        message,
        format!(
            "Dockerfile:3:1: COPY: cannot read {} in the build context: Permission denied (os error 13)",
            file.display()
        ),
        "{err}"
    );
    let check = env.kiln_as(As::Rootless, &["cache", "check", "--dry-run", "--json"]);
    assert!(check.status.success(), "{}", stderr(&check));
}

#[test]
fn a_kiln_root_owned_by_another_user_fails_clearly() {
    let env = Env::for_user(As::Rootless);
    let ctx = env.path("ctx");
    env.write_as(As::Rootless, &ctx, &[("Dockerfile", "FROM scratch\nCOPY a /\n"), ("a", "a\n")]);
    // Root makes the kiln root (0700, owned by root) with a first build.
    let out = env.kiln(&["build", "--progress", "plain", ctx.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::set_permissions(env.root(), PermissionsExt::from_mode(0o700)).unwrap();
    let root = env.root();
    for (args, owner) in [
        (vec!["build", "--progress", "plain", ctx.to_str().unwrap()], "another user"),
        (vec!["images"], "uid 0"),
        (vec!["cache", "check", "--dry-run"], "uid 0"),
    ] {
        let out = env.kiln_as(As::Rootless, &args);
        let err = assert_clean_failure(&out);
        let message = error_message(&out);
        let expected = format!(
            "kiln root {} belongs to {owner}, not to the user kiln runs as: use a root of your \
             own (--root or KILN_ROOT) or run kiln as its owner: ",
            root.display()
        );
        assert!(message.contains(&expected), "{args:?}: {err}");
        assert!(message.ends_with("Permission denied (os error 13)"), "{args:?}: {err}");
    }
}
