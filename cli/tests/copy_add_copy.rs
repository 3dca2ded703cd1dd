//! COPY, complete: every source/destination combination the Dockerfile reference defines,
//! `--parents`, `--exclude`, `--link`, `--chown` names, symlinks and hard links; checked on the
//! image unpacked by umoci and on the layer's tar members.

mod common;
mod copy_add_support;

use common::*;
use copy_add_support::*;

/// A context with files, a directory tree, links and an ignore file.
fn context(env: &Env) -> std::path::PathBuf {
    let ctx = env.path("ctx");
    write_files(
        &ctx,
        &[
            ("a.txt", "a"),
            ("b.txt", "b"),
            ("c.md", "c"),
            ("dir/one", "1"),
            ("dir/sub/two", "2"),
            ("src/app/x.txt", "x"),
            ("src/app/y.log", "y"),
            ("src/lib/z.txt", "z"),
            ("src/docs/d.md", "d"),
            ("ignored.txt", "never"),
            (".dockerignore", "ignored.txt\n"),
        ],
    );
    std::os::unix::fs::symlink("one", ctx.join("dir/link")).expect("symlink");
    std::os::unix::fs::symlink("a.txt", ctx.join("to-a")).expect("symlink");
    std::fs::hard_link(ctx.join("dir/one"), ctx.join("dir/sub/one-again")).expect("hard link");
    ctx
}

#[test]
fn source_and_destination_combinations_follow_the_dockerfile_reference() {
    let env = Env::new();
    let ctx = context(&env);
    let df = "FROM scratch
WORKDIR /exists
COPY a.txt /f2f/renamed.txt
COPY a.txt /exists
COPY a.txt /f2d/
COPY dir /d2d
COPY dir/ /d2dslash/
COPY *.txt /wild/
COPY a* /single
COPY to-a /followed
COPY . /all/
COPY [\"b.txt\", \"c.md\", \"/two/\"]
";
    let b = build(&env, &ctx, df, &[]);
    let t = tree(&b.rootfs);
    // file → file: the destination is the new name.
    assert_eq!(t["f2f/renamed.txt"], file("a"));
    // file → existing directory (no trailing slash): copied into it.
    assert_eq!(under(&t, "exists"), expect(&[("a.txt", file("a"))]));
    // file → dir/: created, file inside under its own name.
    assert_eq!(under(&t, "f2d"), expect(&[("a.txt", file("a"))]));
    // dir → dir (with or without slash): the contents, not the directory itself; links stay
    // links; hard links stay linked.
    let dir_tree = expect(&[
        ("link", Node::Link("one".into())),
        ("one", file("1")),
        ("sub", dir()),
        ("sub/one-again", file("1")),
        ("sub/two", file("2")),
    ]);
    assert_eq!(under(&t, "d2d"), dir_tree);
    assert_eq!(under(&t, "d2dslash"), dir_tree);
    assert_eq!(inode(&b.rootfs.join("d2d/one")), inode(&b.rootfs.join("d2d/sub/one-again")));
    // Wildcards with several matches into dir/ (ignored files are not matched).
    assert_eq!(under(&t, "wild"), expect(&[("a.txt", file("a")), ("b.txt", file("b"))]));
    // A wildcard with one match onto a path without slash: that path is the file.
    assert_eq!(t["single"], file("a"));
    // A symlink named as a source is followed.
    assert_eq!(t["followed"], file("a"));
    // Several sources in JSON form into a directory.
    assert_eq!(under(&t, "two"), expect(&[("b.txt", file("b")), ("c.md", file("c"))]));
    // `.` copies the whole context, minus .dockerignore'd files.
    assert!(t.contains_key("all/src/app/x.txt"));
    assert!(t.contains_key("all/.dockerignore"));
    assert!(!t.contains_key("all/ignored.txt"), "{:?}", under(&t, "all").keys());
    assert_eq!(t["all/to-a"], Node::Link("a.txt".into()));
    // Files from the context belong to root.
    assert_eq!(owner(&b.rootfs.join("f2d/a.txt")), (0, 0));
}

#[test]
fn hard_links_in_a_copied_directory_are_tar_hard_links() {
    let env = Env::new();
    let ctx = context(&env);
    let b = build(&env, &ctx, "FROM scratch\nCOPY dir /d/\n", &[]);
    let listing = top_layer_listing(&b.layout);
    let links: Vec<&String> = listing.iter().filter(|l| l.contains(" link to ")).collect();
    assert_eq!(links.len(), 1, "{listing:#?}");
    assert!(links[0].ends_with("d/sub/one-again link to d/one"), "{listing:#?}");
    let symlinks: Vec<&String> = listing.iter().filter(|l| l.starts_with('l')).collect();
    assert!(symlinks[0].ends_with("d/link -> one"), "{listing:#?}");
}

#[test]
fn several_matches_need_a_directory_destination() {
    let env = Env::new();
    let ctx = context(&env);
    let out = build_raw(&env, &ctx, "FROM scratch\nCOPY *.txt /dest\n", &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("Dockerfile:2")
            && err.contains(
                "2 sources (a.txt, b.txt) are copied, so the destination \"/dest\" must be a \
                 directory: end it with a slash (/dest/)"
            ),
        "{err}"
    );
    // Into an existing directory it is fine (as BuildKit).
    let b = build(&env, &ctx, "FROM scratch\nWORKDIR /dest\nCOPY *.txt /dest\n", &[]);
    assert_eq!(
        under(&tree(&b.rootfs), "dest"),
        expect(&[("a.txt", file("a")), ("b.txt", file("b"))])
    );
}

#[test]
fn a_directory_onto_a_file_is_refused() {
    let env = Env::new();
    let ctx = context(&env);
    let out = build_raw(&env, &ctx, "FROM scratch\nCOPY a.txt /f\nCOPY dir /f\n", &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cannot copy directory dir onto file /f"), "{}", stderr(&out));
}

#[test]
fn parents_keep_the_source_path_below_the_context_or_the_pivot() {
    let env = Env::new();
    let ctx = context(&env);
    let df = "FROM scratch
COPY --parents src/app/x.txt src/lib /p1/
COPY --parents src/./app/x.txt /p2/
COPY --parents ./src/*/*.txt /p3/
COPY --parents src/./app /p4
";
    let b = build(&env, &ctx, df, &[]);
    let t = tree(&b.rootfs);
    assert_eq!(
        under(&t, "p1"),
        expect(&[
            ("src", dir()),
            ("src/app", dir()),
            ("src/app/x.txt", file("x")),
            ("src/lib", dir()),
            ("src/lib/z.txt", file("z")),
        ])
    );
    assert_eq!(under(&t, "p2"), expect(&[("app", dir()), ("app/x.txt", file("x"))]));
    assert_eq!(
        under(&t, "p3"),
        expect(&[
            ("src", dir()),
            ("src/app", dir()),
            ("src/app/x.txt", file("x")),
            ("src/lib", dir()),
            ("src/lib/z.txt", file("z")),
        ])
    );
    assert_eq!(
        under(&t, "p4"),
        expect(&[("app", dir()), ("app/x.txt", file("x")), ("app/y.log", file("y"))])
    );
    // The history keeps the flag, as BuildKit writes it.
    let config = skopeo_config(&b.layout, "t");
    assert_eq!(config["history"][0]["created_by"], "COPY --parents src/app/x.txt src/lib /p1/");
}

#[test]
fn exclude_patterns_leave_out_matches_and_what_directories_hold() {
    let env = Env::new();
    let ctx = context(&env);
    let df = "FROM scratch
COPY --exclude=**/*.log --exclude=docs src /e1/
COPY --exclude=*.md * /e2/
COPY --exclude=app --exclude=!app/x.txt src /e3/
COPY --exclude=*.txt a.txt /e4/
";
    let b = build(&env, &ctx, df, &[]);
    let t = tree(&b.rootfs);
    assert_eq!(
        under(&t, "e1"),
        expect(&[
            ("app", dir()),
            ("app/x.txt", file("x")),
            ("lib", dir()),
            ("lib/z.txt", file("z")),
        ])
    );
    // A wildcard's matches are tested too: c.md is left out, the rest of the context is not.
    let e2 = under(&t, "e2");
    assert!(e2.contains_key("a.txt") && e2.contains_key("one") && e2.contains_key("app/x.txt"));
    assert!(!e2.contains_key("c.md"), "{:?}", e2.keys());
    // `!` re-includes below an excluded directory.
    assert_eq!(
        under(&t, "e3"),
        expect(&[
            ("app", dir()),
            ("app/x.txt", file("x")),
            ("docs", dir()),
            ("docs/d.md", file("d")),
            ("lib", dir()),
            ("lib/z.txt", file("z")),
        ])
    );
    // A source named literally is copied even when a pattern matches it (as BuildKit).
    assert_eq!(under(&t, "e4"), expect(&[("a.txt", file("a"))]));
}

#[test]
fn exclude_keeps_the_cache_when_only_excluded_files_change() {
    let env = Env::new();
    let ctx = context(&env);
    let df = "FROM scratch\nCOPY --exclude=**/*.log src /s/\n";
    build(&env, &ctx, df, &[]);
    std::fs::write(ctx.join("src/app/y.log"), "changed").expect("write");
    let second = build(&env, &ctx, df, &[]);
    assert!(rebuilt(&second.stderr).is_empty(), "{}", second.stderr);
    std::fs::write(ctx.join("src/app/x.txt"), "changed").expect("write");
    let third = build(&env, &ctx, df, &[]);
    assert_eq!(rebuilt(&third.stderr), ["COPY src /s/"]);
}

#[test]
fn link_layers_do_not_depend_on_the_stage_below() {
    let env = Env::new();
    let ctx = context(&env);
    let first = build(&env, &ctx, "FROM scratch\nCOPY b.txt /base/\nCOPY --link dir /l/\n", &[]);
    let second = build(&env, &ctx, "FROM scratch\nCOPY c.md /base/\nCOPY --link dir /l/\n", &[]);
    // The COPY --link step is a cache hit on another base, and its layer is the same blob.
    assert_eq!(rebuilt(&second.stderr), ["COPY c.md /base/"], "{}", second.stderr);
    assert_eq!(layer_digests(&first.layout)[1], layer_digests(&second.layout)[1]);
    assert_eq!(under(&tree(&second.rootfs), "base"), expect(&[("c.md", file("c"))]));
    assert_eq!(under(&tree(&second.rootfs), "l")["one"], file("1"));
    // The step after it is not shared between the two bases.
    let third = build(
        &env,
        &ctx,
        "FROM scratch\nCOPY c.md /base/\nCOPY --link dir /l/\nCOPY a.txt /after/\n",
        &[],
    );
    let fourth = build(
        &env,
        &ctx,
        "FROM scratch\nCOPY b.txt /base/\nCOPY --link dir /l/\nCOPY a.txt /after/\n",
        &[],
    );
    assert_eq!(rebuilt(&third.stderr), ["COPY a.txt /after/"], "{}", third.stderr);
    assert_eq!(rebuilt(&fourth.stderr), ["COPY a.txt /after/"], "{}", fourth.stderr);
    assert!(tree(&fourth.rootfs).contains_key("base/b.txt"));
}

#[test]
fn link_makes_parents_on_an_empty_filesystem() {
    let env = Env::new();
    let ctx = context(&env);
    // Without --link the existing /opt keeps its mode in the layer; with --link the layer was
    // made without looking at it, so /opt is a new 0755 directory owned by the --chown ids.
    let df =
        "FROM scratch\nCOPY --chmod=700 dir/one /opt/\nCOPY --link --chown=7:8 a.txt /opt/x/\n";
    let b = build(&env, &ctx, df, &[]);
    let listing = top_layer_listing(&b.layout);
    assert_eq!(listing.len(), 3, "{listing:#?}");
    assert!(
        listing[0].starts_with("drwxr-xr-x 7/8 ") && listing[0].ends_with(" opt/"),
        "{listing:#?}"
    );
    assert!(listing[2].starts_with("-rw-r--r-- 7/8 ") && listing[2].ends_with(" opt/x/a.txt"));
}

#[test]
fn chown_names_come_from_the_stage_accounts() {
    let env = Env::new();
    let ctx = context(&env);
    write_files(
        &ctx,
        &[
            ("etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n"),
            ("etc/group", "root:x:0:\nstaff:x:50:\napp:x:1001:\n"),
        ],
    );
    let df = "FROM scratch
COPY etc /etc/
COPY --chown=app a.txt /o/primary
COPY --chown=app:staff dir /o/d/
COPY --chown=12:34 --link a.txt /o/numeric
";
    let b = build(&env, &ctx, df, &[]);
    assert_eq!(owner(&b.rootfs.join("o/primary")), (1000, 1001));
    assert_eq!(owner(&b.rootfs.join("o/d/sub/two")), (1000, 50));
    assert_eq!(owner(&b.rootfs.join("o/d/link")), (1000, 50));
    assert_eq!(owner(&b.rootfs.join("o/numeric")), (12, 34));
    let out =
        build_raw(&env, &ctx, "FROM scratch\nCOPY etc /etc/\nCOPY --chown=nobody a.txt /x\n", &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("user \"nobody\" not found in /etc/passwd"), "{}", stderr(&out));
}

#[test]
fn copy_from_a_stage_keeps_links_owners_and_parents() {
    let env = Env::new();
    let ctx = context(&env);
    let df = "FROM scratch AS src
COPY --chown=5:6 dir /data/
FROM scratch
COPY --from=src /data /d1/
COPY --from=src --parents /data/./sub /d2/
COPY --from=src --exclude=sub /data /d3/
";
    let b = build(&env, &ctx, df, &[]);
    let t = tree(&b.rootfs);
    assert_eq!(under(&t, "d1")["link"], Node::Link("one".into()));
    assert_eq!(owner(&b.rootfs.join("d1/sub/two")), (5, 6));
    assert_eq!(inode(&b.rootfs.join("d1/one")), inode(&b.rootfs.join("d1/sub/one-again")));
    assert_eq!(
        under(&t, "d2"),
        expect(&[("sub", dir()), ("sub/one-again", file("1")), ("sub/two", file("2"))])
    );
    assert_eq!(under(&t, "d3"), expect(&[("link", Node::Link("one".into())), ("one", file("1"))]));
}
