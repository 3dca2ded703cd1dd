//! `--build-context NAME=VALUE` of each kind — a directory, a tar archive URL, a git
//! repository, `docker-image://`, `oci-layout://`, `target:STAGE` — used by `FROM`,
//! `COPY --from`, and to replace a stage of the same name.

mod common;
mod copy_add_support;

use std::path::PathBuf;

use common::*;
use copy_add_support::*;

fn dirs(env: &Env) -> (PathBuf, PathBuf) {
    let ctx = env.path("ctx");
    write_files(&ctx, &[("main.txt", "main")]);
    let extra = env.path("extra");
    write_files(
        &extra,
        &[
            ("e.txt", "extra"),
            ("sub/s.txt", "s"),
            ("secret.key", "k"),
            (".dockerignore", "*.key\n"),
        ],
    );
    (ctx, extra)
}

fn flag(name: &str, value: &str) -> String {
    format!("--build-context={name}={value}")
}

#[test]
fn a_directory_context_is_read_in_place_by_from_and_copy_from() {
    let env = Env::new();
    let (ctx, extra) = dirs(&env);
    let df = "FROM extra
COPY main.txt /
COPY --from=extra sub /from-sub/
";
    let f = flag("extra", extra.to_str().expect("utf-8"));
    let b = build(&env, &ctx, df, &[&f]);
    assert_eq!(
        tree(&b.rootfs),
        expect(&[
            (".dockerignore", file("*.key\n")),
            ("e.txt", file("extra")),
            ("from-sub", dir()),
            ("from-sub/s.txt", file("s")),
            ("main.txt", file("main")),
            ("sub", dir()),
            ("sub/s.txt", file("s")),
        ]),
        "the named context's own .dockerignore applies"
    );
    let history = skopeo_config(&b.layout, "t")["history"].clone();
    assert_eq!(history[0]["created_by"], "FROM extra (build context)");

    // Changing the named context invalidates what reads it, and only that.
    std::fs::write(extra.join("sub/s.txt"), "changed").expect("write");
    let again = build(&env, &ctx, df, &[&f]);
    assert_eq!(rebuilt(&again.stderr), ["COPY main.txt /", "COPY sub /from-sub/"]);
    assert_eq!(tree(&again.rootfs)["from-sub/s.txt"], file("changed"));

    let out = build_raw(&env, &ctx, "FROM scratch\nCOPY --from=nope x /\n", &[&flag("other", "/")]);
    assert!(!out.status.success());
}

#[test]
fn a_named_context_replaces_the_stage_of_that_name() {
    let env = Env::new();
    let (ctx, extra) = dirs(&env);
    let df = "FROM scratch AS deps
COPY main.txt /from-stage
FROM scratch
COPY --from=deps / /deps/
";
    let b = build(&env, &ctx, df, &[&flag("deps", extra.to_str().expect("utf-8"))]);
    let t = under(&tree(&b.rootfs), "deps");
    assert_eq!(t["e.txt"], file("extra"));
    assert!(!t.contains_key("from-stage"), "{:?}", t.keys());
}

#[test]
fn image_contexts_docker_image_and_oci_layout() {
    let env = Env::new();
    let (ctx, _) = dirs(&env);
    // An image in the store, and the same built into an OCI layout.
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY main.txt /img.txt\nLABEL k=v\n")
        .expect("write");
    let layout = env.path("base-layout");
    let out = format!("type=oci,dest={}", layout.display());
    env.kiln_ok(&["build", "-t", "local/base:1", "--output", &out, ctx.to_str().expect("utf-8")]);
    let tagged = skopeo_manifest(&layout, "1");
    assert!(tagged["layers"].is_array());

    let df = "FROM alpine
COPY --from=src /img.txt /copied.txt
";
    let b = build(
        &env,
        &ctx,
        df,
        &[
            &flag("alpine", "docker-image://local/base:1"),
            &flag("src", &format!("oci-layout://{}:1", layout.display())),
        ],
    );
    let t = tree(&b.rootfs);
    assert_eq!(t["img.txt"], file("main"));
    assert_eq!(t["copied.txt"], file("main"));
    assert_eq!(skopeo_config(&b.layout, "t")["config"]["Labels"]["k"], "v");
    // The familiar form of a name matches too (docker.io/library/alpine:latest is alpine).
    let b = build(
        &env,
        &ctx,
        "FROM docker.io/library/alpine:latest\n",
        &[&flag("alpine", "docker-image://local/base:1")],
    );
    assert_eq!(tree(&b.rootfs)["img.txt"], file("main"));
}

#[test]
fn git_url_and_target_contexts() {
    require("git");
    let env = Env::new();
    let (ctx, _) = dirs(&env);
    let repo = env.path("repo");
    write_files(&repo, &[("g.txt", "from git")]);
    sh(
        &repo,
        "git init -q -b main . && git config user.email t@example.com && git config user.name t \
         && git add -A && git commit -q -m one",
    );
    let server = Server::start();
    let archive = env.path("a.tgz");
    sh(&env.path("ctx"), &format!("tar -czf {} main.txt", archive.display()));
    server.put(
        "/a.tgz",
        Resource {
            body: std::fs::read(&archive).expect("archive"),
            etag: None,
            last_modified: None,
        },
    );
    let df = "FROM scratch AS builder
COPY main.txt /built.txt
FROM scratch
COPY --from=repo g.txt /
COPY --from=tarball main.txt /from-url.txt
COPY --from=out /built.txt /
";
    let b = build(
        &env,
        &ctx,
        df,
        &[
            &flag("repo", &format!("file://{}#main", repo.display())),
            &flag("tarball", &server.url("/a.tgz")),
            &flag("out", "target:builder"),
        ],
    );
    assert_eq!(
        tree(&b.rootfs),
        expect(&[
            ("built.txt", file("main")),
            ("from-url.txt", file("main")),
            ("g.txt", file("from git")),
        ])
    );

    let out = build_raw(&env, &ctx, "FROM scratch\n", &[&flag("x", "target:nosuch")]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--build-context x=target:nosuch: no stage is named \"nosuch\""),
        "{}",
        stderr(&out)
    );
    let out = build_raw(&env, &ctx, "FROM scratch\n", &["--build-context", "novalue"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--build-context \"novalue\": write NAME=VALUE"),
        "{}",
        stderr(&out)
    );
}
