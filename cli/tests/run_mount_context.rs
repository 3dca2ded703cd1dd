//! `RUN --mount=type=bind` of the build context honours `.dockerignore`, as in BuildKit (where
//! the context reaches the builder already filtered): excluded files are not in the mount, a
//! change to one does not re-run the step, a change to a file it shows does; the mount is
//! read-only (or a throw-away copy with `rw`), and the context is never written. As root and
//! rootless.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::*;

const IGNORE: &str = "secret.env\nignored-dir\nsub/*.log\n!sub/keep.log\n";

// The step mounting only `sub` comes first, so that its key does not follow the others'.
const DOCKERFILE: &str = "FROM scratch\nCOPY rootfs/ /\n\
RUN --mount=type=bind,source=sub,target=/sub ls -A /sub > /sub-only\n\
RUN --mount=type=bind,target=/ctx ls -A /ctx > /root-list && ls -A /ctx/sub > /sub-list \
&& cat /ctx/data.txt > /data && (cat /ctx/secret.env 2>/dev/null || echo none) > /secret \
&& (ls /ctx/ignored-dir 2>/dev/null || echo none) > /ignored \
&& stat -c '%a %Y' /ctx/sub > /sub-stat \
&& (touch /ctx/new 2>/dev/null && echo writable || echo read-only) > /ro\n\
RUN --mount=type=bind,target=/ctx,rw ls -A /ctx > /rw-list && cat /ctx/sub/keep.log > /rw-keep \
&& touch /ctx/new && rm /ctx/data.txt && echo done > /rw\n";

/// Builds `ctx` as `who` with plain progress into an OCI layout; returns (rootfs, stderr).
fn build(env: &Env, who: As, ctx: &Path, tag: &str) -> (std::path::PathBuf, String) {
    build_with(env, who, ctx, tag, &[])
}

/// [`build`] with extra arguments.
fn build_with(
    env: &Env,
    who: As,
    ctx: &Path,
    tag: &str,
    extra: &[&str],
) -> (std::path::PathBuf, String) {
    let out = env.path(&format!("out-{tag}"));
    let dest = format!("type=oci,dest={}", out.display());
    let name = format!("mounts:{tag}");
    let c = ctx.to_str().unwrap();
    let mut args = vec!["build", "--progress", "plain", "-t", &name, "--output", &dest];
    args.extend_from_slice(extra);
    args.push(c);
    let o = env.kiln_as(who, &args);
    let err = stderr(&o);
    assert!(o.status.success(), "kiln {args:?} as {who:?} failed:\n{err}");
    let rootfs = umoci_unpack(&out, tag, &env.path(&format!("bundle-{tag}")));
    (rootfs, err)
}

fn lines(rootfs: &Path, file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(rootfs.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    text.lines().map(str::to_string).collect()
}

/// Writes `content` to `rel` in the context, as `who`'s file.
fn rewrite(ctx: &Path, who: As, rel: &str, content: &str) {
    std::fs::write(ctx.join(rel), content).unwrap();
    if who == As::Rootless {
        run_ok(Command::new("chown").args(["kilntest:kilntest"]).arg(ctx.join(rel)));
    }
}

fn bind_mounts_of_the_context_honour_the_ignore_file(who: As) {
    let env = Env::for_user(who);
    let ctx = busybox_context(
        &env,
        who,
        &[
            ("Dockerfile", DOCKERFILE),
            (".dockerignore", IGNORE),
            ("data.txt", "data v1\n"),
            ("secret.env", "TOKEN=hunter2\n"),
            ("ignored-dir/x", "hidden\n"),
            ("sub/a.txt", "a\n"),
            ("sub/b.log", "b\n"),
            ("sub/keep.log", "keep\n"),
        ],
    );
    std::fs::set_permissions(ctx.join("sub"), std::fs::Permissions::from_mode(0o750)).unwrap();
    let sub_mtime = std::fs::metadata(ctx.join("sub")).unwrap().mtime();

    let (rootfs, _) = build(&env, who, &ctx, "v1");
    let top = [".dockerignore", "Dockerfile", "data.txt", "rootfs", "sub"];
    assert_eq!(lines(&rootfs, "root-list"), top);
    assert_eq!(lines(&rootfs, "sub-list"), ["a.txt", "keep.log"]);
    assert_eq!(lines(&rootfs, "sub-only"), ["a.txt", "keep.log"]);
    assert_eq!(lines(&rootfs, "data"), ["data v1"]);
    assert_eq!(lines(&rootfs, "secret"), ["none"]);
    assert_eq!(lines(&rootfs, "ignored"), ["none"]);
    assert_eq!(lines(&rootfs, "sub-stat"), [format!("750 {sub_mtime}")]);
    assert_eq!(lines(&rootfs, "ro"), ["read-only"]);
    // `rw` gives a filtered copy: writable, thrown away.
    assert_eq!(lines(&rootfs, "rw-list"), top);
    assert_eq!(lines(&rootfs, "rw-keep"), ["keep"]);
    assert_eq!(lines(&rootfs, "rw"), ["done"]);
    assert!(!ctx.join("new").exists(), "the context is never written");
    assert_eq!(std::fs::read_to_string(ctx.join("data.txt")).unwrap(), "data v1\n");
    let scratch: Vec<_> = std::fs::read_dir(env.root().join("tmp")).unwrap().collect();
    assert!(scratch.is_empty(), "scratch left behind: {scratch:?}");

    // Excluded files are not part of the steps' keys: changing them re-runs nothing.
    rewrite(&ctx, who, "secret.env", "TOKEN=changed\n");
    rewrite(&ctx, who, "ignored-dir/x", "changed\n");
    rewrite(&ctx, who, "sub/b.log", "changed\n");
    let (_, err) = build(&env, who, &ctx, "v2");
    assert_eq!(rebuilt(&err), Vec::<String>::new(), "{err}");

    // A file the mounts show is: the two steps mounting the whole context re-run.
    rewrite(&ctx, who, "data.txt", "data v2\n");
    let (rootfs, err) = build(&env, who, &ctx, "v3");
    let ran = rebuilt(&err);
    assert_eq!(ran.len(), 2, "{err}");
    assert!(ran[0].contains("/root-list") && ran[1].contains("/rw-list"), "{ran:?}");
    assert_eq!(lines(&rootfs, "data"), ["data v2"]);

    // A re-included file under an excluded pattern is shown and keyed.
    rewrite(&ctx, who, "sub/keep.log", "keep v2\n");
    let (rootfs, err) = build(&env, who, &ctx, "v4");
    assert_eq!(rebuilt(&err).len(), 3, "{err}");
    assert_eq!(lines(&rootfs, "rw-keep"), ["keep v2"]);
}

#[test]
fn bind_mounts_of_the_context_honour_the_ignore_file_as_root() {
    bind_mounts_of_the_context_honour_the_ignore_file(As::Root);
}

#[test]
fn bind_mounts_of_the_context_honour_the_ignore_file_rootless() {
    bind_mounts_of_the_context_honour_the_ignore_file(As::Rootless);
}

/// Without an ignore file the context is bound as it is: every file shows, each is keyed.
#[test]
fn without_an_ignore_file_everything_shows() {
    let env = Env::new();
    let ctx = busybox_context(
        &env,
        As::Root,
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY rootfs/ /\nRUN --mount=type=bind,target=/ctx ls -A /ctx > /list \
                 && cat /ctx/.env > /env\n",
            ),
            (".env", "one\n"),
        ],
    );
    let (rootfs, _) = build(&env, As::Root, &ctx, "plain1");
    assert_eq!(lines(&rootfs, "list"), [".env", "Dockerfile", "rootfs"]);
    assert_eq!(lines(&rootfs, "env"), ["one"]);
    std::fs::write(ctx.join(".env"), "two\n").unwrap();
    let (rootfs, err) = build(&env, As::Root, &ctx, "plain2");
    assert_eq!(rebuilt(&err).len(), 1, "{err}");
    assert_eq!(lines(&rootfs, "env"), ["two"]);
}

/// A read-write mount of another stage is a copy: what the RUN writes there never reaches the
/// stage's snapshots (it used to be hard links to them).
#[test]
fn a_read_write_mount_of_a_stage_never_changes_the_stage() {
    let env = Env::new();
    let ctx = busybox_context(
        &env,
        As::Root,
        &[
            (
                "Dockerfile",
                "FROM scratch AS files\nCOPY data.txt /f.txt\n\
                 FROM scratch\nCOPY rootfs/ /\n\
                 RUN --mount=type=bind,from=files,target=/s,rw echo changed > /s/f.txt \
                 && chmod 600 /s/f.txt && cat /s/f.txt > /during\n\
                 RUN --mount=type=bind,from=files,target=/s stat -c %a /s/f.txt > /mode \
                 && cat /s/f.txt > /after\n\
                 COPY --from=files /f.txt /copied.txt\n",
            ),
            ("data.txt", "original\n"),
        ],
    );
    let (rootfs, _) = build(&env, As::Root, &ctx, "stage-rw");
    assert_eq!(lines(&rootfs, "during"), ["changed"]);
    assert_eq!(lines(&rootfs, "after"), ["original"]);
    assert_eq!(lines(&rootfs, "mode"), ["644"]);
    assert_eq!(lines(&rootfs, "copied.txt"), ["original"]);
}

/// A named context's own ignore file filters its bind mounts the same way.
#[test]
fn a_named_context_mount_honours_its_own_ignore_file() {
    let env = Env::new();
    let ctx = busybox_context(
        &env,
        As::Root,
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY rootfs/ /\n\
             RUN --mount=type=bind,from=extra,target=/n ls -A /n > /named-list\n",
        )],
    );
    let extra = env.path("extra");
    write_files(
        &extra,
        &[(".dockerignore", ".git\n*.key\n"), ("a", "a"), ("b.key", "k"), (".git/HEAD", "h")],
    );
    let arg = format!("--build-context=extra={}", extra.display());
    let (rootfs, _) = build_with(&env, As::Root, &ctx, "named1", &[&arg]);
    assert_eq!(lines(&rootfs, "named-list"), [".dockerignore", "a"]);
    std::fs::write(extra.join("b.key"), "changed").unwrap();
    let (_, err) = build_with(&env, As::Root, &ctx, "named2", &[&arg]);
    assert_eq!(rebuilt(&err), Vec::<String>::new(), "{err}");
}
