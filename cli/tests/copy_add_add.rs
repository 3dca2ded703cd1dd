//! ADD: local tar archives in every compression (made with the system's tar, gzip, bzip2, xz
//! and zstd), `--unpack`, downloads from a server on 127.0.0.1 (`--checksum`, 404,
//! `Last-Modified`, ETag revalidation) and git repositories made by the test.

mod common;
mod copy_add_support;

use std::path::PathBuf;

use common::*;
use copy_add_support::*;

/// A context holding `payload/` (a file, a nested file, a symlink and a hard link) and archives
/// of it: `p.tar`, `p.tar.gz`, `p.tar.bz2`, `p.tar.xz`, `p.tar.zst`, owned 1234:5678.
fn archives(env: &Env) -> PathBuf {
    for tool in ["tar", "gzip", "bzip2", "xz", "zstd"] {
        require(tool);
    }
    let ctx = env.path("ctx");
    write_files(
        &ctx,
        &[("payload/f.txt", "f"), ("payload/sub/g.txt", "g"), ("plain.tar.gz", "not an archive")],
    );
    std::os::unix::fs::symlink("f.txt", ctx.join("payload/link")).expect("symlink");
    std::fs::hard_link(ctx.join("payload/f.txt"), ctx.join("payload/sub/hard")).expect("hard link");
    sh(
        &ctx,
        "tar --owner=1234 --group=5678 --numeric-owner --mtime=@1000000000 -cf p.tar -C payload . \
         && gzip -k p.tar && bzip2 -k p.tar && xz -k p.tar && zstd -q p.tar -o p.tar.zst",
    );
    ctx
}

fn payload() -> std::collections::BTreeMap<String, Node> {
    expect(&[
        ("f.txt", file("f")),
        ("link", Node::Link("f.txt".into())),
        ("sub", dir()),
        ("sub/g.txt", file("g")),
        ("sub/hard", file("f")),
    ])
}

#[test]
fn local_archives_of_every_compression_are_extracted() {
    let env = Env::new();
    let ctx = archives(&env);
    let df = "FROM scratch
ADD p.tar /plain
ADD p.tar.gz /gz/
ADD p.tar.bz2 /bz2
ADD p.tar.xz /xz
ADD p.tar.zst /zst
ADD --unpack=false p.tar.gz /kept/
ADD plain.tar.gz /notarchive/
";
    let b = build(&env, &ctx, df, &[]);
    let t = tree(&b.rootfs);
    for dest in ["plain", "gz", "bz2", "xz", "zst"] {
        assert_eq!(under(&t, dest), payload(), "ADD into /{dest}");
        let root = b.rootfs.join(dest);
        assert_eq!(owner(&root.join("sub/g.txt")), (1234, 5678), "{dest}: members keep owners");
        assert_eq!(mtime(&root.join("sub/g.txt")), 1_000_000_000, "{dest}: members keep mtimes");
        assert_eq!(inode(&root.join("f.txt")), inode(&root.join("sub/hard")), "{dest}: hard link");
    }
    // --unpack=false copies the archive itself; a file that only looks like one is copied too.
    let kept = std::fs::read(b.rootfs.join("kept/p.tar.gz")).expect("kept archive");
    assert_eq!(kept, std::fs::read(ctx.join("p.tar.gz")).expect("original"));
    assert_eq!(under(&t, "notarchive"), expect(&[("plain.tar.gz", file("not an archive"))]));
}

#[test]
fn archive_members_get_the_chown_owner_and_never_land_outside() {
    require("python3");
    let env = Env::new();
    let ctx = archives(&env);
    // Members that climb out with `..` or absolute paths stay below the destination.
    sh(
        &ctx,
        "python3 - <<'EOF'
import io, tarfile
with tarfile.open('evil.tar', 'w') as t:
    for name, data in [('../../escape.txt', b'e'), ('/abs.txt', b'a'), ('ok/../fine.txt', b'f')]:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
EOF",
    );
    let df = "FROM scratch\nADD --chown=7:9 p.tar.gz /owned/\nADD evil.tar /jail/\n";
    let b = build(&env, &ctx, df, &[]);
    assert_eq!(owner(&b.rootfs.join("owned/sub/g.txt")), (7, 9));
    assert_eq!(owner(&b.rootfs.join("owned/link")), (7, 9));
    let t = tree(&b.rootfs);
    assert_eq!(
        under(&t, "jail"),
        expect(&[
            ("abs.txt", Node::File(0o644, "a".into())),
            ("escape.txt", Node::File(0o644, "e".into())),
            ("fine.txt", Node::File(0o644, "f".into())),
        ])
    );
    assert!(!t.contains_key("escape.txt") && !t.contains_key("abs.txt"), "{:?}", t.keys());
}

fn http_date_1994() -> String {
    "Sun, 06 Nov 1994 08:49:37 GMT".to_string()
}

#[test]
fn add_url_downloads_with_mode_0600_and_the_last_modified_time() {
    let env = Env::new();
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    let server = Server::start();
    server.put(
        "/files/hello.txt",
        Resource { body: b"hello".to_vec(), etag: None, last_modified: Some(http_date_1994()) },
    );
    let url = server.url("/files/hello.txt");
    let b = build(&env, &ctx, &format!("FROM scratch\nADD {url} /dl/\nADD {url} /renamed\n"), &[]);
    assert_eq!(
        under(&tree(&b.rootfs), "dl"),
        expect(&[("hello.txt", Node::File(0o600, "hello".into()))])
    );
    assert_eq!(mtime(&b.rootfs.join("dl/hello.txt")), 784_111_777);
    assert_eq!(tree(&b.rootfs)["renamed"], Node::File(0o600, "hello".into()));
    assert_eq!(owner(&b.rootfs.join("renamed")), (0, 0));
}

#[test]
fn add_url_checksums_are_verified() {
    let env = Env::new();
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    let server = Server::start();
    server
        .put("/v1.bin", Resource { body: b"version 1".to_vec(), etag: None, last_modified: None });
    let url = server.url("/v1.bin");
    let good = sha256(b"version 1");
    let b = build(&env, &ctx, &format!("FROM scratch\nADD --checksum={good} {url} /v\n"), &[]);
    assert_eq!(tree(&b.rootfs)["v"], Node::File(0o600, "version 1".into()));

    let bad = sha256(b"something else");
    let out = build_raw(&env, &ctx, &format!("FROM scratch\nADD --checksum={bad} {url} /v\n"), &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("Dockerfile:2")
            && err.contains(&format!(
                "{url}: checksum mismatch: --checksum is {bad} but the download is {good}"
            )),
        "{err}"
    );
}

#[test]
fn add_url_404_names_the_url_and_the_status() {
    let env = Env::new();
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    let server = Server::start();
    let url = server.url("/missing.tar.gz");
    let out = build_raw(&env, &ctx, &format!("FROM scratch\nADD {url} /x/\n"), &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&format!("downloading {url} failed: HTTP 404 Not Found")), "{err}");
    assert!(err.contains("Dockerfile:2"), "{err}");
}

#[test]
fn add_url_archives_are_extracted_only_with_unpack_true() {
    let env = Env::new();
    let ctx = archives(&env);
    let server = Server::start();
    let body = std::fs::read(ctx.join("p.tar.xz")).expect("archive");
    server.put("/p.tar.xz", Resource { body: body.clone(), etag: None, last_modified: None });
    let url = server.url("/p.tar.xz");
    let b = build(
        &env,
        &ctx,
        &format!("FROM scratch\nADD {url} /as-file/\nADD --unpack=true {url} /unpacked/\n"),
        &[],
    );
    assert_eq!(std::fs::read(b.rootfs.join("as-file/p.tar.xz")).expect("download"), body);
    assert_eq!(under(&tree(&b.rootfs), "unpacked"), payload());
}

#[test]
fn add_url_is_revalidated_with_its_etag() {
    let env = Env::new();
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    let server = Server::start();
    let resource = |body: &str, etag: &str| Resource {
        body: body.as_bytes().to_vec(),
        etag: Some(etag.to_string()),
        last_modified: None,
    };
    server.put("/data", resource("one", "\"e1\""));
    let url = server.url("/data");
    let df = format!("FROM scratch\nADD {url} /data\n");
    build(&env, &ctx, &df, &[]);
    assert_eq!(server.bodies_sent(), 1);
    // Unchanged: the server answers 304, no body is sent, the step is a cache hit.
    let again = build(&env, &ctx, &df, &[]);
    assert!(rebuilt(&again.stderr).is_empty(), "{}", again.stderr);
    assert_eq!(server.bodies_sent(), 1);
    // Changed: downloaded again, the step runs, the new content is in the image.
    server.put("/data", resource("two", "\"e2\""));
    let changed = build(&env, &ctx, &df, &[]);
    assert_eq!(rebuilt(&changed.stderr), [format!("ADD {url} /data")]);
    assert_eq!(tree(&changed.rootfs)["data"], Node::File(0o600, "two".into()));
    assert_eq!(server.bodies_sent(), 2);
}

/// A git repository with two commits on `main` (tag `v1` on the first), a `sub/` directory
/// and a fixed committer date per commit.
fn repo(env: &Env) -> (PathBuf, String) {
    require("git");
    let dir = env.path("repo");
    std::fs::create_dir_all(&dir).expect("repo dir");
    sh(
        &dir,
        "git init -q -b main . && git config user.email t@example.com && git config user.name t \
         && mkdir sub && echo v1 > file && echo s1 > sub/s && git add -A \
         && GIT_COMMITTER_DATE='@1500000000 +0000' git commit -q -m one && git tag v1 \
         && echo v2 > file && echo s2 > sub/s && git add -A \
         && GIT_COMMITTER_DATE='@1600000000 +0000' git commit -q -m two",
    );
    let url = format!("file://{}", dir.display());
    (dir, url)
}

#[test]
fn add_git_checks_out_refs_subdirs_and_keeps_git_dir_on_request() {
    let env = Env::new();
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    let (repo_dir, url) = repo(&env);
    let head = sh(&repo_dir, "git rev-parse HEAD").trim().to_string();
    let df = format!(
        "FROM scratch
ADD {url} /head/
ADD {url}#v1 /tag/
ADD {url}#main:sub /sub/
ADD --keep-git-dir {url}#{head} /withgit/
"
    );
    let b = build(&env, &ctx, &df, &[]);
    let t = tree(&b.rootfs);
    assert_eq!(
        under(&t, "head"),
        expect(&[("file", file("v2\n")), ("sub", dir()), ("sub/s", file("s2\n"))])
    );
    assert_eq!(
        under(&t, "tag"),
        expect(&[("file", file("v1\n")), ("sub", dir()), ("sub/s", file("s1\n"))])
    );
    assert_eq!(under(&t, "sub"), expect(&[("s", file("s2\n"))]));
    // Files get the commit's time: the same commit always gives the same layer.
    assert_eq!(mtime(&b.rootfs.join("head/file")), 1_600_000_000);
    assert_eq!(mtime(&b.rootfs.join("tag/file")), 1_500_000_000);
    let git_head = sh(&b.rootfs.join("withgit"), "git rev-parse HEAD");
    assert_eq!(git_head.trim(), head);
    assert!(!t.contains_key("head/.git"));
}

#[test]
fn add_git_is_keyed_by_the_commit() {
    let env = Env::new();
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    let (dir, url) = repo(&env);
    let df = format!("FROM scratch\nADD {url}#main /g/\n");
    build(&env, &ctx, &df, &[]);
    let again = build(&env, &ctx, &df, &[]);
    assert!(rebuilt(&again.stderr).is_empty(), "{}", again.stderr);
    sh(&dir, "echo v3 > file && git commit -q -am three");
    let changed = build(&env, &ctx, &df, &[]);
    assert_eq!(rebuilt(&changed.stderr), [format!("ADD {url}#main /g/")]);
    assert_eq!(tree(&changed.rootfs)["g/file"], file("v3\n"));
    let out = build_raw(&env, &ctx, &format!("FROM scratch\nADD {url}#nosuchref /g/\n"), &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("git fetch of {url} at nosuchref failed")),
        "{}",
        stderr(&out)
    );
}
