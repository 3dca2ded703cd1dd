//! The layer cache: exact invalidation, identical rebuilds, concurrency, --no-cache.

mod common;

use common::*;

const DOCKERFILE: &str = "FROM scratch\nARG MODE=a\nCOPY a.txt /a.txt\nCOPY dir/ /dir/\nENV MODE=$MODE\nCOPY --chmod=600 b.txt /b-$MODE.txt\nWORKDIR /work\n";

fn context(env: &Env) -> std::path::PathBuf {
    let ctx = env.path("ctx");
    write_files(
        &ctx,
        &[
            ("Dockerfile", DOCKERFILE),
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
            ("dir/one", "1\n"),
            ("dir/two", "2\n"),
            ("ignored.log", "x\n"),
        ],
    );
    ctx
}

fn build(env: &Env, ctx: &std::path::Path, extra: &[&str]) -> (String, String) {
    let mut args = vec!["build", "--progress", "plain", "-t", "cache:test"];
    args.extend_from_slice(extra);
    let c = ctx.to_str().unwrap().to_string();
    args.push(&c);
    let out = env.kiln(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    (String::from_utf8_lossy(&out.stdout).trim().to_string(), stderr(&out))
}

#[test]
fn a_no_op_rebuild_is_all_cached_and_gives_the_same_image() {
    let env = Env::new();
    let ctx = context(&env);
    let (id1, log1) = build(&env, &ctx, &[]);
    assert_eq!(rebuilt(&log1).len(), 4, "{log1}");
    let (id2, log2) = build(&env, &ctx, &[]);
    assert!(rebuilt(&log2).is_empty(), "nothing should run:\n{log2}");
    assert_eq!(id1, id2, "a fully cached rebuild gives the same image id");
    // Touching a file without changing it does not invalidate.
    std::fs::write(ctx.join("a.txt"), "a\n").unwrap();
    let (id3, log3) = build(&env, &ctx, &[]);
    assert!(rebuilt(&log3).is_empty(), "{log3}");
    assert_eq!(id1, id3);
}

#[test]
fn changing_a_file_rebuilds_the_steps_that_read_it_and_what_follows() {
    let env = Env::new();
    let ctx = context(&env);
    build(&env, &ctx, &[]);
    std::fs::write(ctx.join("dir/two"), "changed\n").unwrap();
    let (_, log) = build(&env, &ctx, &[]);
    assert_eq!(
        rebuilt(&log),
        ["COPY dir/ /dir/", "COPY --chmod=600 b.txt /b-a.txt", "WORKDIR /work"],
        "{log}"
    );
    // A file that no step reads changes nothing.
    std::fs::write(ctx.join("ignored.log"), "other\n").unwrap();
    let (_, log) = build(&env, &ctx, &[]);
    assert!(rebuilt(&log).is_empty(), "{log}");
    // A new file in a copied directory invalidates that COPY.
    std::fs::write(ctx.join("dir/three"), "3\n").unwrap();
    let (_, log) = build(&env, &ctx, &[]);
    assert_eq!(rebuilt(&log).first().map(String::as_str), Some("COPY dir/ /dir/"), "{log}");
}

#[test]
fn build_args_dockerignore_and_modes_invalidate_exactly() {
    let env = Env::new();
    let ctx = context(&env);
    build(&env, &ctx, &[]);
    // The ARG is used only by the last COPY's destination.
    let (_, log) = build(&env, &ctx, &["--build-arg", "MODE=b"]);
    assert_eq!(rebuilt(&log), ["COPY --chmod=600 b.txt /b-b.txt", "WORKDIR /work"], "{log}");
    // .dockerignore excluding a copied file changes that COPY's content.
    write_files(&ctx, &[(".dockerignore", "dir/one\n")]);
    let (_, log) = build(&env, &ctx, &[]);
    assert_eq!(rebuilt(&log).first().map(String::as_str), Some("COPY dir/ /dir/"), "{log}");
    // A mode change is a content change for COPY.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(ctx.join("a.txt"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (_, log) = build(&env, &ctx, &[]);
    assert_eq!(rebuilt(&log).first().map(String::as_str), Some("COPY a.txt /a.txt"), "{log}");
}

#[test]
fn no_cache_and_no_cache_filter_run_steps_again() {
    let env = Env::new();
    let ctx = env.path("ctx");
    write_files(
        &ctx,
        &[
            (
                "Dockerfile",
                "FROM scratch AS one\nCOPY a /a\nFROM scratch AS two\nCOPY --from=one /a /b\nCOPY a /c\n",
            ),
            ("a", "a"),
        ],
    );
    build(&env, &ctx, &[]);
    let (_, log) = build(&env, &ctx, &["--no-cache"]);
    assert_eq!(rebuilt(&log).len(), 3, "{log}");
    let (_, log) = build(&env, &ctx, &["--no-cache-filter", "two"]);
    assert_eq!(rebuilt(&log), ["COPY /a /b", "COPY a /c"], "{log}");
}

#[test]
fn a_changed_base_image_invalidates_everything_above_it() {
    let env = Env::new();
    let base = env.path("base");
    write_files(&base, &[("Dockerfile", "FROM scratch\nCOPY f /f\n"), ("f", "1")]);
    build_named(&env, &base, "base:1");
    let ctx = env.path("ctx");
    write_files(&ctx, &[("Dockerfile", "FROM base:1\nCOPY g /g\n"), ("g", "g")]);
    let (_, log) = build(&env, &ctx, &[]);
    assert_eq!(rebuilt(&log), ["COPY g /g"]);
    let (_, log) = build(&env, &ctx, &[]);
    assert!(rebuilt(&log).is_empty(), "{log}");
    write_files(&base, &[("f", "2")]);
    build_named(&env, &base, "base:1");
    let (_, log) = build(&env, &ctx, &[]);
    assert_eq!(rebuilt(&log), ["COPY g /g"], "the base moved: {log}");
}

fn build_named(env: &Env, ctx: &std::path::Path, name: &str) {
    env.kiln_ok(&["build", "--progress", "quiet", "-t", name, ctx.to_str().unwrap()]);
}

/// A context with a busybox rootfs and a Dockerfile whose RUN writes `word`.
fn run_context(env: &Env, name: &str, word: &str) -> std::path::PathBuf {
    let ctx = env.path(name);
    busybox_rootfs(&ctx.join("rootfs"));
    write_files(
        &ctx,
        &[
            (
                "Dockerfile",
                &format!(
                    "FROM scratch\nCOPY rootfs/ /\nRUN echo {word} > /word && cat /word /word > /twice\nCOPY f /f\n"
                ),
            ),
            ("f", word),
        ],
    );
    ctx
}

#[test]
fn eight_concurrent_builds_on_one_root_succeed_and_leave_it_consistent() {
    let env = Env::new();
    let copy_only = context(&env);
    let run_a = run_context(&env, "ctx-a", "alpha");
    let run_b = run_context(&env, "ctx-b", "beta");
    // (context, extra args): identical builds share their steps, the others differ in a RUN, a
    // COPY or a build arg.
    let builds: Vec<(&std::path::Path, &[&str])> = vec![
        (&run_a, &[]),
        (&copy_only, &[]),
        (&run_a, &[]),
        (&run_b, &[]),
        (&copy_only, &["--build-arg", "MODE=b"]),
        (&run_a, &[]),
        (&copy_only, &[]),
        (&run_b, &[]),
    ];
    let children: Vec<_> = builds
        .iter()
        .enumerate()
        .map(|(i, (ctx, extra))| {
            let tag = format!("same:{i}");
            let mut args = vec!["build", "--progress", "plain", "-t", &tag];
            args.extend_from_slice(extra);
            args.push(ctx.to_str().unwrap());
            env.kiln_cmd(&args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "build {i}:\n{}", stderr(&out));
    }
    let layers = |i: usize| {
        let v: serde_json::Value =
            serde_json::from_str(&env.kiln_ok(&["inspect", &format!("same:{i}")])).unwrap();
        v["manifest"]["layers"].clone()
    };
    // Each step's result was produced once and reused: identical builds have the same layers.
    for same in [[0, 2, 5].as_slice(), &[1, 6], &[3, 7]] {
        let first = layers(same[0]);
        for &i in &same[1..] {
            assert_eq!(layers(i), first, "builds {} and {i}", same[0]);
        }
    }
    // COPY rootfs, RUN, COPY f: the RUN made a layer of its own.
    assert_eq!(layers(0).as_array().map(Vec::len), Some(3), "{:#}", layers(0));
    assert_ne!(layers(0), layers(3));
    assert_ne!(layers(1), layers(4));
    let check: serde_json::Value =
        serde_json::from_str(&env.kiln_ok(&["cache", "check", "--dry-run", "--json"])).unwrap();
    for list in
        ["corrupt_blobs", "dangling_records", "bad_records", "partial_snapshots", "broken_tags"]
    {
        assert_eq!(check[list], serde_json::json!([]), "{list}: {check:#}");
    }
    assert_eq!(check["temporaries"], 0, "{check:#}");
}

#[test]
fn a_cache_record_whose_layer_blob_is_gone_is_rebuilt() {
    let env = Env::new();
    let ctx = context(&env);
    build(&env, &ctx, &[]);
    // Delete every blob: records now point at nothing.
    std::fs::remove_dir_all(env.root().join("blobs/sha256")).unwrap();
    std::fs::create_dir_all(env.root().join("blobs/sha256")).unwrap();
    let (_, log) = build(&env, &ctx, &[]);
    assert_eq!(rebuilt(&log).len(), 4, "{log}");
}
