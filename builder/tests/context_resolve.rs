//! Build context: finding the ignore file, and resolving COPY sources in a real directory.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use kiln_builder::context::{BuildContext, ContextEntry, ContextError};

/// Creates a tree from specs: `dir/` (directory), `path=content` (file), `link->target`.
fn tree(specs: &[&str]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    for spec in specs {
        let root = tmp.path();
        if let Some((link, target)) = spec.split_once("->") {
            mkparent(&root.join(link));
            symlink(target, root.join(link)).expect("symlink");
        } else if let Some((file, content)) = spec.split_once('=') {
            mkparent(&root.join(file));
            fs::write(root.join(file), content).expect("write");
        } else {
            fs::create_dir_all(root.join(spec)).expect("mkdir");
        }
    }
    tmp
}

fn mkparent(path: &Path) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir parent");
}

fn open(dir: &tempfile::TempDir) -> BuildContext {
    BuildContext::open(dir.path(), None).expect("open context")
}

fn root(dir: &tempfile::TempDir) -> PathBuf {
    fs::canonicalize(dir.path()).expect("canonical")
}

/// (rel_path, resolved_rel_path, is_dir) of each entry.
fn summary(entries: &[ContextEntry]) -> Vec<(String, String, bool)> {
    entries.iter().map(|e| (e.rel_path.clone(), e.resolved_rel_path.clone(), e.is_dir)).collect()
}

fn names(entries: &[ContextEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.rel_path.as_str()).collect()
}

fn err(ctx: &BuildContext, source: &str) -> String {
    match ctx.resolve_sources(source) {
        Ok(found) => panic!("{source:?} should fail, resolved {:?}", names(&found)),
        Err(e) => e.to_string(),
    }
}

#[test]
fn ignore_file_precedence() {
    let dir = tree(&[
        ".dockerignore=a\n",
        ".containerignore=b\n",
        "build/app.Dockerfile=FROM scratch\n",
        "build/app.Dockerfile.dockerignore=c\n",
        "build/app.Dockerfile.containerignore=d\n",
        "build/other.Dockerfile.containerignore=d\n",
    ]);
    let r = root(&dir);
    let text = |ctx: &BuildContext| -> Vec<String> {
        ctx.rules().patterns().iter().map(|p| p.to_string()).collect()
    };

    // <Dockerfile>.dockerignore first, even over <Dockerfile>.containerignore (buildah).
    let df = dir.path().join("build/app.Dockerfile");
    let ctx = BuildContext::open(dir.path(), Some(&df)).expect("open");
    assert_eq!(text(&ctx), ["c"]);
    assert_eq!(ctx.ignore_file(), Some(df.with_file_name("app.Dockerfile.dockerignore").as_path()));

    // Then <Dockerfile>.containerignore.
    let other = dir.path().join("build/other.Dockerfile");
    let ctx = BuildContext::open(dir.path(), Some(&other)).expect("open");
    assert_eq!(text(&ctx), ["d"]);

    // Then .containerignore over .dockerignore in the root (buildah's order).
    let plain = dir.path().join("Dockerfile");
    let ctx = BuildContext::open(dir.path(), Some(&plain)).expect("open");
    assert_eq!(text(&ctx), ["b"]);
    assert_eq!(ctx.ignore_file(), Some(dir.path().join(".containerignore").as_path()));
    assert_eq!(ctx.root(), r.as_path());

    fs::remove_file(dir.path().join(".containerignore")).expect("rm");
    let ctx = BuildContext::open(dir.path(), None).expect("open");
    assert_eq!(text(&ctx), ["a"]);

    fs::remove_file(dir.path().join(".dockerignore")).expect("rm");
    let ctx = BuildContext::open(dir.path(), None).expect("open");
    assert!(ctx.rules().is_empty());
    assert_eq!(ctx.ignore_file(), None);
}

#[test]
fn ignore_file_errors() {
    let dir = tree(&[".dockerignore=ok\n# fine\n\n  [abc\n"]);
    let e = BuildContext::open(dir.path(), None).expect_err("bad pattern");
    let file = dir.path().join(".dockerignore");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: line 4: invalid pattern \"[abc\": character class `[` is not closed by `]`",
            file.display()
        )
    );
    match e {
        ContextError::IgnoreFile { source, .. } => assert_eq!(source.line, 4),
        other => panic!("unexpected {other:?}"),
    }

    let dir = tree(&[".dockerignore/"]);
    let e = BuildContext::open(dir.path(), None).expect_err("a directory");
    assert!(
        e.to_string()
            .starts_with(&format!("cannot read {}: ", dir.path().join(".dockerignore").display())),
        "{e}"
    );

    let missing = dir.path().join("nope");
    let e = BuildContext::open(&missing, None).expect_err("missing root");
    assert!(
        e.to_string()
            .starts_with(&format!("cannot open the build context {}: ", missing.display()))
    );
    let file = tree(&["f=x"]);
    let e = BuildContext::open(&file.path().join("f"), None).expect_err("file root");
    assert_eq!(
        e.to_string(),
        format!("the build context {} is not a directory", file.path().join("f").display())
    );
}

#[test]
fn literal_sources() {
    let dir = tree(&["a.txt=A", "src/main.rs=fn main(){}", "src/lib/x.rs=x", "empty/"]);
    let ctx = open(&dir);
    let r = root(&dir);

    let got = ctx.resolve_sources("a.txt").expect("a.txt");
    assert_eq!(summary(&got), [("a.txt".into(), "a.txt".into(), false)]);
    assert_eq!(got[0].abs_path, r.join("a.txt"));
    assert_eq!(got[0].metadata.len(), 1);

    // Cleaning: ./, .., //, trailing slash, leading / (the context root, as BuildKit).
    for written in ["./src/lib/", "src//lib", "/src/lib", "src/main.rs/../lib", "src/./lib/."] {
        let got = ctx.resolve_sources(written).expect(written);
        assert_eq!(summary(&got), [("src/lib".into(), "src/lib".into(), true)], "{written}");
        assert_eq!(got[0].abs_path, r.join("src/lib"));
    }
    for written in [".", "/", "", "src/.."] {
        let got = ctx.resolve_sources(written).expect(written);
        assert_eq!(summary(&got), [(".".into(), ".".into(), true)], "{written:?}");
        assert_eq!(got[0].abs_path, r);
    }
    // A `\` in a segment without wildcards is part of the name (BuildKit).
    assert_eq!(
        err(&ctx, "a\\.txt"),
        format!(
            "source \"a\\\\.txt\" not found: {} does not exist in the build context",
            r.join("a\\.txt").display()
        )
    );
}

#[test]
fn sources_outside_the_context() {
    let dir = tree(&["a=1", "sub/b=2"]);
    let ctx = open(&dir);
    for written in ["..", "../a", "sub/../../a", "/../a", "./../x/*", "sub/../.."] {
        let e = ctx.resolve_sources(written).expect_err(written);
        assert!(matches!(e, ContextError::SourceOutsideContext { .. }), "{written}: {e:?}");
        assert_eq!(e.to_string(), format!("source {written:?} is outside the build context"));
    }
    // Going up and back down inside the context is fine.
    let got = ctx.resolve_sources("sub/../a").expect("inside");
    assert_eq!(names(&got), ["a"]);
}

#[test]
fn missing_and_excluded_sources_say_what_was_looked_for() {
    let dir = tree(&[
        ".dockerignore=# secrets\n*.key\nlogs\n!logs/keep.log\n",
        "app.key=k",
        "app.txt=t",
        "logs/a.log=a",
        "logs/keep.log=k",
        "logs/old/b.log=b",
    ]);
    let ctx = open(&dir);
    let r = root(&dir);

    assert_eq!(
        err(&ctx, "nope.txt"),
        format!(
            "source \"nope.txt\" not found: {} does not exist in the build context",
            r.join("nope.txt").display()
        )
    );
    assert_eq!(
        err(&ctx, "no/such/dir/file"),
        format!(
            "source \"no/such/dir/file\" not found: {} does not exist in the build context",
            r.join("no/such/dir/file").display()
        )
    );
    // Through a file as if it were a directory.
    assert_eq!(
        err(&ctx, "app.txt/x"),
        format!(
            "source \"app.txt/x\" not found: {} does not exist in the build context",
            r.join("app.txt/x").display()
        )
    );
    assert_eq!(
        err(&ctx, "app.key"),
        format!(
            "source \"app.key\" not found: {} exists but is excluded by .dockerignore line 2 (\"*.key\")",
            r.join("app.key").display()
        )
    );
    assert_eq!(
        err(&ctx, "logs/a.log"),
        format!(
            "source \"logs/a.log\" not found: {} exists but is excluded by .dockerignore line 3 (\"logs\")",
            r.join("logs/a.log").display()
        )
    );
    assert_eq!(
        err(&ctx, "logs/old"),
        format!(
            "source \"logs/old\" not found: {} exists but is excluded by .dockerignore line 3 (\"logs\")",
            r.join("logs/old").display()
        )
    );
    match ctx.resolve_sources("app.key") {
        Err(ContextError::NotFound { source_path, looked_for, excluded: Some(ex) }) => {
            assert_eq!(source_path, "app.key");
            assert_eq!(looked_for, r.join("app.key"));
            assert_eq!(
                (ex.line, ex.pattern.as_str(), ex.ignore_file.as_str()),
                (2, "*.key", ".dockerignore")
            );
        }
        other => panic!("unexpected {other:?}"),
    }

    // The re-included file, and its excluded directory (which then holds only that file).
    assert_eq!(names(&ctx.resolve_sources("logs/keep.log").expect("keep")), ["logs/keep.log"]);
    let logs = ctx.resolve_sources("logs").expect("logs dir");
    assert_eq!(summary(&logs), [("logs".into(), "logs".into(), true)]);
    let walked: Vec<String> =
        ctx.walk(&logs[0]).expect("walk").into_iter().map(|w| w.rel_to_source).collect();
    assert_eq!(walked, ["keep.log"]);
}

#[test]
fn wildcards() {
    let dir = tree(&[
        ".dockerignore=secret*\n",
        "a.txt=a",
        "b.txt=b",
        "c.md=c",
        "secret.txt=s",
        "x*y=star",
        "dir.txt/inner=i",
        "src/one/Cargo.toml=1",
        "src/one/main.rs=m",
        "src/two/Cargo.toml=2",
        "src/three.toml=3",
        "src/zed/deep/Cargo.toml=4",
        "link.txt->a.txt",
    ]);
    let ctx = open(&dir);
    let r = root(&dir);
    let resolve =
        |s: &str| names(&ctx.resolve_sources(s).unwrap_or_else(|e| panic!("{s}: {e}"))).join(" ");

    assert_eq!(resolve("*.txt"), "a.txt b.txt dir.txt link.txt");
    assert_eq!(resolve("?.txt"), "a.txt b.txt");
    assert_eq!(resolve("[ab].txt"), "a.txt b.txt");
    assert_eq!(resolve("[^ab].*"), "c.md");
    // `\*` is a literal star only in a segment that is a pattern (it has another wildcard).
    assert_eq!(resolve("x\\*[y]"), "x*y");
    assert_eq!(resolve("x[*]y"), "x*y");
    assert_eq!(resolve("src/*/Cargo.toml"), "src/one/Cargo.toml src/two/Cargo.toml");
    assert_eq!(resolve("*/*/Cargo.toml"), "src/one/Cargo.toml src/two/Cargo.toml");
    assert_eq!(resolve("/src/*.toml"), "src/three.toml");
    assert_eq!(resolve("src/*"), "src/one src/three.toml src/two src/zed");
    assert_eq!(resolve("s*/o*/../t*"), "src/three.toml src/two");

    // A matched symlink is followed; its name stays the one matched.
    let got = ctx.resolve_sources("link.*").expect("link");
    assert_eq!(summary(&got), [("link.txt".into(), "a.txt".into(), false)]);
    assert_eq!(got[0].abs_path, r.join("a.txt"));
    let dirs = ctx.resolve_sources("dir.*").expect("dir");
    assert!(dirs[0].is_dir);

    assert_eq!(
        err(&ctx, "*.rs"),
        format!(
            "source \"*.rs\" not found: nothing in the build context matches {}",
            r.join("*.rs").display()
        )
    );
    assert_eq!(
        err(&ctx, "secret.*"),
        format!(
            "source \"secret.*\" not found: nothing in the build context matches {}; {} exists but is excluded by .dockerignore line 1 (\"secret*\")",
            r.join("secret.*").display(),
            r.join("secret.txt").display()
        )
    );
    // The literal part of a wildcard source must exist.
    assert_eq!(
        err(&ctx, "nodir/*.txt"),
        format!(
            "source \"nodir/*.txt\" not found: nothing in the build context matches {}",
            r.join("nodir/*.txt").display()
        )
    );
    assert_eq!(
        err(&ctx, "[z-a]*"),
        "source \"[z-a]*\" is not a valid pattern: character range `z-a` is out of order"
    );
    assert_eq!(
        err(&ctx, "src/[abc"),
        "source \"src/[abc\" is not a valid pattern: character class `[` is not closed by `]`"
    );
}

#[test]
fn symlinks_are_followed_inside_the_context() {
    let dir = tree(&[
        "data/file.txt=data",
        "data/sub/deep.txt=deep",
        "to-file->data/file.txt",
        "to-dir->data",
        "abs-in->/data/file.txt",
        "climb->../../../../data/sub",
        "nested/rel->../to-dir/sub",
        "abs-out->/etc/passwd",
        "dangling->missing.txt",
        "loop-a->loop-b",
        "loop-b->loop-a",
        "chain->to-dir",
    ]);
    let ctx = open(&dir);
    let r = root(&dir);
    let one = |s: &str| -> ContextEntry {
        let mut found = ctx.resolve_sources(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(found.len(), 1, "{s}");
        found.remove(0)
    };

    let e = one("to-file");
    assert_eq!(
        (e.rel_path.as_str(), e.resolved_rel_path.as_str(), e.is_dir),
        ("to-file", "data/file.txt", false)
    );
    assert_eq!(e.abs_path, r.join("data/file.txt"));
    assert_eq!(e.metadata.len(), 4);

    let e = one("to-dir");
    assert_eq!((e.resolved_rel_path.as_str(), e.is_dir), ("data", true));
    let e = one("to-dir/sub/deep.txt");
    assert_eq!(
        (e.rel_path.as_str(), e.resolved_rel_path.as_str()),
        ("to-dir/sub/deep.txt", "data/sub/deep.txt")
    );
    // An absolute target is taken from the context root; `..` stops at the root.
    assert_eq!(one("abs-in").resolved_rel_path, "data/file.txt");
    assert_eq!(one("climb").resolved_rel_path, "data/sub");
    assert_eq!(one("nested/rel").resolved_rel_path, "data/sub");
    assert_eq!(one("chain/file.txt").resolved_rel_path, "data/file.txt");
    // Wildcards below a symlinked directory.
    let got = ctx.resolve_sources("to-dir/*.txt").expect("glob under link");
    assert_eq!(summary(&got), [("to-dir/file.txt".into(), "data/file.txt".into(), false)]);

    // A target outside the context is looked for inside it.
    assert_eq!(
        err(&ctx, "abs-out"),
        format!(
            "source \"abs-out\" not found: {} does not exist in the build context",
            r.join("etc/passwd").display()
        )
    );
    assert_eq!(
        err(&ctx, "dangling"),
        format!(
            "source \"dangling\" not found: {} does not exist in the build context",
            r.join("missing.txt").display()
        )
    );
    assert_eq!(
        err(&ctx, "loop-a"),
        format!(
            "source \"loop-a\": too many levels of symbolic links at {}",
            r.join("loop-b").display()
        )
    );
}

#[test]
fn excluded_symlinks_and_excluded_targets() {
    let dir = tree(&[
        ".dockerignore=hidden\nprivate-link\n",
        "hidden/x.txt=x",
        "public->hidden/x.txt",
        "private-link->shown.txt",
        "shown.txt=s",
    ]);
    let ctx = open(&dir);
    let r = root(&dir);
    // The link is in the context; what it points to is not.
    assert_eq!(
        err(&ctx, "public"),
        format!(
            "source \"public\" not found: {} exists but is excluded by .dockerignore line 1 (\"hidden\")",
            r.join("hidden/x.txt").display()
        )
    );
    // An excluded link does not exist, even though its target does.
    assert_eq!(
        err(&ctx, "private-link"),
        format!(
            "source \"private-link\" not found: {} exists but is excluded by .dockerignore line 2 (\"private-link\")",
            r.join("private-link").display()
        )
    );
    assert_eq!(names(&ctx.resolve_sources("shown.txt").expect("shown")), ["shown.txt"]);
}

#[test]
fn the_context_root_can_be_reached_through_a_symlink() {
    let dir = tree(&["real/a=1", "alias->real"]);
    let ctx = BuildContext::open(&dir.path().join("alias"), None).expect("open via link");
    assert_eq!(ctx.root(), root(&dir).join("real"));
    assert_eq!(names(&ctx.resolve_sources("a").expect("a")), ["a"]);
}

#[test]
fn non_utf8_names_are_a_clear_error() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = tree(&["ok.txt=1"]);
    let bad = dir.path().join(OsStr::from_bytes(b"bad\xff.txt"));
    fs::write(&bad, "x").expect("write");
    let ctx = open(&dir);
    let r = root(&dir);
    let e = ctx.resolve_sources("*.txt").expect_err("non-UTF-8 match");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: the name is not valid UTF-8, which kiln does not support yet",
            r.join(OsStr::from_bytes(b"bad\xff.txt")).display()
        )
    );
    // A name the pattern cannot match is no problem.
    assert_eq!(names(&ctx.resolve_sources("ok*").expect("ok")), ["ok.txt"]);
    let link = dir.path().join("link");
    symlink(OsStr::from_bytes(b"bad\xff.txt"), &link).expect("symlink");
    let e = ctx.resolve_sources("link").expect_err("non-UTF-8 target");
    assert!(matches!(e, ContextError::NotUtf8 { .. }), "{e:?}");
}
