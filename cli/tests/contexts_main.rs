//! The build context from everywhere `docker build` takes it: a tar archive or a Dockerfile on
//! stdin (`-`), a local tar archive, the URL of an archive or of a Dockerfile, and a git
//! repository (`file://…#ref:dir`). Extracted and fetched contexts are removed afterwards.

mod common;
mod copy_add_support;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::*;
use copy_add_support::*;

/// A context directory with a Dockerfile copying its files.
fn source_tree(env: &Env) -> PathBuf {
    let dir = env.path("src");
    write_files(
        &dir,
        &[
            ("Dockerfile", "FROM scratch\nCOPY . /ctx/\n"),
            ("hello.txt", "hello"),
            ("sub/inner.txt", "inner"),
            ("skip.txt", "skipped"),
            (".dockerignore", "skip.txt\n"),
        ],
    );
    dir
}

/// `kiln build -t t:1 --output type=oci,dest=LAYOUT ARGS... CONTEXT` with `stdin`; returns
/// the layout and the output.
fn build_with(env: &Env, args: &[&str], stdin: Option<&Path>) -> (PathBuf, std::process::Output) {
    let layout = env.path(&format!("layout-{}", args.len() + stdin.map_or(0, |_| 100)));
    let _ = std::fs::remove_dir_all(&layout);
    let output = format!("type=oci,dest={}", layout.display());
    let mut all = vec!["build", "--progress=plain", "-t", "x/t:t", "--output", &output];
    all.extend_from_slice(args);
    let mut cmd = env.kiln_cmd(&all);
    cmd.stdin(match stdin {
        Some(p) => Stdio::from(std::fs::File::open(p).expect("stdin file")),
        None => Stdio::null(),
    });
    (layout, cmd.output().expect("run kiln"))
}

fn unpacked(env: &Env, layout: &Path, name: &str) -> PathBuf {
    umoci_unpack(layout, "t", &env.path(name))
}

fn expected_ctx() -> std::collections::BTreeMap<String, Node> {
    expect(&[
        (".dockerignore", file("skip.txt\n")),
        ("Dockerfile", file("FROM scratch\nCOPY . /ctx/\n")),
        ("hello.txt", file("hello")),
        ("sub", dir()),
        ("sub/inner.txt", file("inner")),
    ])
}

fn tmp_is_empty(env: &Env) {
    let tmp = env.root().join("tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", tmp.display());
}

#[test]
fn a_tar_context_on_stdin_plain_or_compressed() {
    let env = Env::new();
    let src = source_tree(&env);
    sh(&src, "tar -cf ../ctx.tar . && gzip -kc ../ctx.tar > ../ctx.tgz");
    for archive in ["ctx.tar", "ctx.tgz"] {
        let (layout, out) = build_with(&env, &["-"], Some(&env.path(archive)));
        assert!(out.status.success(), "{archive}: {}", stderr(&out));
        let rootfs = unpacked(&env, &layout, &format!("b-{archive}"));
        assert_eq!(under(&tree(&rootfs), "ctx"), expected_ctx(), "{archive}");
    }
    tmp_is_empty(&env);
}

#[test]
fn a_dockerfile_on_stdin_builds_without_context_files() {
    let env = Env::new();
    let df = env.path("Dockerfile.stdin");
    std::fs::write(&df, "FROM scratch\nLABEL from=stdin\n").expect("write");
    let (layout, out) = build_with(&env, &["-"], Some(&df));
    assert!(out.status.success(), "{}", stderr(&out));
    let config = skopeo_config(&layout, "t");
    assert_eq!(config["config"]["Labels"]["from"], "stdin");

    std::fs::write(&df, "FROM scratch\nCOPY hello.txt /\n").expect("write");
    let (_, out) = build_with(&env, &["-"], Some(&df));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("source \"hello.txt\" not found"), "{}", stderr(&out));

    let (_, out) = build_with(&env, &["-f", "-", "-"], Some(&df));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the build context and the Dockerfile cannot both come from stdin"),
        "{}",
        stderr(&out)
    );
    tmp_is_empty(&env);
}

#[test]
fn a_local_tar_archive_is_a_context() {
    require("zstd");
    let env = Env::new();
    let src = source_tree(&env);
    sh(&src, "tar -cf - . | zstd -q -o ../ctx.tar.zst");
    let archive = env.path("ctx.tar.zst");
    let (layout, out) = build_with(&env, &[archive.to_str().expect("utf-8")], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(under(&tree(&unpacked(&env, &layout, "b")), "ctx"), expected_ctx());
    tmp_is_empty(&env);

    let not_archive = env.path("notes.txt");
    std::fs::write(&not_archive, "FROM scratch\n").expect("write");
    let (_, out) = build_with(&env, &[not_archive.to_str().expect("utf-8")], None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is neither a directory nor a tar archive"), "{}", stderr(&out));
}

#[test]
fn a_url_context_is_an_archive_or_a_dockerfile() {
    let env = Env::new();
    let src = source_tree(&env);
    sh(&src, "tar -czf ../ctx.tgz .");
    let server = Server::start();
    let body = std::fs::read(env.path("ctx.tgz")).expect("archive");
    server.put("/ctx.tgz", Resource { body, etag: None, last_modified: None });
    server.put(
        "/Dockerfile",
        Resource {
            body: b"FROM scratch\nLABEL from=url\n".to_vec(),
            etag: None,
            last_modified: None,
        },
    );
    let (layout, out) = build_with(&env, &[&server.url("/ctx.tgz")], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(under(&tree(&unpacked(&env, &layout, "b")), "ctx"), expected_ctx());

    let (layout, out) = build_with(&env, &["--no-cache", &server.url("/Dockerfile")], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(skopeo_config(&layout, "t")["config"]["Labels"]["from"], "url");

    let (_, out) = build_with(&env, &[&server.url("/nothing.tgz")], None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("HTTP 404 Not Found"), "{}", stderr(&out));
    tmp_is_empty(&env);
}

#[test]
fn a_git_repository_is_a_context_at_a_ref_and_subdirectory() {
    require("git");
    let env = Env::new();
    let repo = env.path("repo");
    write_files(
        &repo,
        &[
            ("app/Dockerfile", "FROM scratch\nCOPY . /ctx/\n"),
            ("app/Dockerfile.other", "FROM scratch\nCOPY v.txt /other\n"),
            ("app/v.txt", "one"),
            ("top.txt", "top"),
        ],
    );
    sh(
        &repo,
        "git init -q -b main . && git config user.email t@example.com && git config user.name t \
         && git add -A && git commit -q -m one && git tag v1 \
         && echo two > app/v.txt && git commit -q -am two",
    );
    let url = format!("file://{}#v1:app", repo.display());
    let (layout, out) = build_with(&env, &[&url], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        under(&tree(&unpacked(&env, &layout, "b1")), "ctx"),
        expect(&[
            ("Dockerfile", file("FROM scratch\nCOPY . /ctx/\n")),
            ("Dockerfile.other", file("FROM scratch\nCOPY v.txt /other\n")),
            ("v.txt", file("one")),
        ])
    );
    // -f names a file of the repository; the default branch is used without a ref.
    let url = format!("file://{}#:app", repo.display());
    let (layout, out) = build_with(&env, &["-f", "Dockerfile.other", &url], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tree(&unpacked(&env, &layout, "b2"))["other"], file("two\n"));
    tmp_is_empty(&env);
}
