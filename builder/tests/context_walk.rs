//! Build context: walking directory sources with the ignore rules applied.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use kiln_builder::context::{BuildContext, ContextEntry, ContextError, IgnoreRules, WalkEntry};

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

fn source(ctx: &BuildContext, written: &str) -> ContextEntry {
    let mut found = ctx.resolve_sources(written).unwrap_or_else(|e| panic!("{written}: {e}"));
    assert_eq!(found.len(), 1, "{written}");
    found.remove(0)
}

/// Each entry as `path` + a type mark: `/` directory, `@` symlink, nothing for a file.
fn listing(entries: &[WalkEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|w| {
            let mark = if w.file_type.is_dir() {
                "/"
            } else if w.file_type.is_symlink() {
                "@"
            } else {
                ""
            };
            format!("{}{mark}", w.rel_to_source)
        })
        .collect()
}

fn walk(ctx: &BuildContext, written: &str) -> Vec<String> {
    listing(&ctx.walk(&source(ctx, written)).unwrap_or_else(|e| panic!("walk {written}: {e}")))
}

#[test]
fn walks_everything_in_depth_first_byte_order() {
    let dir = tree(&[
        "a/x=1",
        "a.b/y=2",
        "a-c=3",
        "B=4",
        "b=5",
        "a/sub/z=6",
        "a/sub/Z=7",
        "empty/",
        "link-to-dir->a",
        "link-dangling->nowhere",
    ]);
    let ctx = BuildContext::open(dir.path(), None).expect("open");
    assert_eq!(
        walk(&ctx, "."),
        [
            "B",
            "a/",
            "a/sub/",
            "a/sub/Z",
            "a/sub/z",
            "a/x",
            "a-c",
            "a.b/",
            "a.b/y",
            "b",
            "empty/",
            "link-dangling@",
            "link-to-dir@",
        ]
    );
    assert_eq!(walk(&ctx, "a"), ["sub/", "sub/Z", "sub/z", "x"]);
    assert_eq!(walk(&ctx, "empty"), Vec::<String>::new());
    // A file source has nothing beneath it.
    assert_eq!(walk(&ctx, "b"), Vec::<String>::new());
}

#[test]
fn entries_carry_paths_and_lstat_metadata() {
    let dir = tree(&["src/file=hello", "src/link->file"]);
    let ctx = BuildContext::open(dir.path(), None).expect("open");
    let root = fs::canonicalize(dir.path()).expect("canonical");
    let entries = ctx.walk(&source(&ctx, "src")).expect("walk");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].abs_path, root.join("src/file"));
    assert_eq!(entries[0].metadata.len(), 5);
    assert!(entries[0].file_type.is_file());
    assert_eq!(entries[1].abs_path, root.join("src/link"));
    assert!(entries[1].metadata.file_type().is_symlink());
    assert_eq!(entries[1].metadata.len(), 4, "the link itself, not its target");
}

#[test]
fn a_symlinked_directory_source_walks_its_target_with_the_targets_rules() {
    let dir = tree(&[
        ".dockerignore=real/*.tmp\n",
        "real/keep.txt=k",
        "real/junk.tmp=j",
        "real/inner/also.tmp=a",
        "alias->real",
    ]);
    let ctx = BuildContext::open(dir.path(), None).expect("open");
    let entry = source(&ctx, "alias");
    assert_eq!((entry.rel_path.as_str(), entry.resolved_rel_path.as_str()), ("alias", "real"));
    // Exclusions apply to the real paths: real/*.tmp, not real/inner/also.tmp.
    assert_eq!(listing(&ctx.walk(&entry).expect("walk")), ["inner/", "inner/also.tmp", "keep.txt"]);
}

#[test]
fn ignore_rules_prune_and_exceptions_reinclude() {
    let dir = tree(&[
        ".dockerignore=\
# build output
target
node_modules
!node_modules/keep/**
**/*.log
!important.log
docs/*
!docs/README.md
",
        "target/debug/app=bin",
        "node_modules/keep/index.js=k",
        "node_modules/keep/sub/x.js=x",
        "node_modules/drop/index.js=d",
        "src/main.rs=m",
        "src/debug.log=l",
        "important.log=i",
        "deep/important.log=i2",
        "docs/README.md=r",
        "docs/guide.md=g",
        "docs/img/logo.png=p",
        "Dockerfile=FROM scratch",
    ]);
    let ctx = BuildContext::open(dir.path(), None).expect("open");
    assert_eq!(
        walk(&ctx, "."),
        [
            ".dockerignore",
            "Dockerfile",
            "deep/",
            "docs/",
            "docs/README.md",
            "important.log",
            "node_modules/",
            "node_modules/keep/",
            "node_modules/keep/index.js",
            "node_modules/keep/sub/",
            "node_modules/keep/sub/x.js",
            "src/",
            "src/main.rs",
        ]
    );
    assert_eq!(walk(&ctx, "docs"), ["README.md"]);
    assert_eq!(walk(&ctx, "node_modules/keep"), ["index.js", "sub/", "sub/x.js"]);
}

#[test]
fn an_excluded_directory_no_exception_reaches_is_never_read() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    // A name the walker cannot handle proves whether a directory was read.
    let dir = tree(&[".dockerignore=locked\n!other/x\n", "locked/secret=s", "open/file=f"]);
    fs::write(dir.path().join("locked").join(OsStr::from_bytes(b"\xff")), "x").expect("write");
    let ctx = BuildContext::open(dir.path(), None).expect("open");
    assert_eq!(walk(&ctx, "."), [".dockerignore", "open/", "open/file"]);

    // With an exception that could reach inside, it has to be read.
    fs::write(dir.path().join(".dockerignore"), "locked\n!locked/keep\n").expect("write");
    let ctx = BuildContext::open(dir.path(), None).expect("open");
    let e = ctx.walk(&source(&ctx, ".")).expect_err("read");
    assert!(matches!(e, ContextError::NotUtf8 { .. }), "{e:?}");
}

#[test]
fn an_unreadable_included_directory_is_an_error() {
    let dir = tree(&["open/file=f", "closed/file=c"]);
    let closed = dir.path().join("closed");
    fs::set_permissions(&closed, fs::Permissions::from_mode(0o000)).expect("chmod");
    if fs::read_dir(&closed).is_ok() {
        // Running with CAP_DAC_OVERRIDE (root): permissions cannot be tested.
        fs::set_permissions(&closed, fs::Permissions::from_mode(0o755)).expect("chmod back");
        return;
    }
    let ctx = BuildContext::open(dir.path(), None).expect("open");
    let result = ctx.walk(&source(&ctx, "."));
    fs::set_permissions(&closed, fs::Permissions::from_mode(0o755)).expect("chmod back");
    let root = fs::canonicalize(dir.path()).expect("canonical");
    let e = result.expect_err("unreadable");
    assert!(matches!(e, ContextError::Io { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "cannot read {} in the build context: Permission denied (os error 13)",
            root.join("closed").display()
        )
    );
}

#[test]
fn non_utf8_names_are_a_clear_error() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = tree(&["d/ok=1", "skipped/x=2", ".dockerignore=skipped\n"]);
    let name = OsStr::from_bytes(b"caf\xe9");
    fs::write(dir.path().join("d").join(name), "x").expect("write");
    fs::write(dir.path().join("skipped").join(name), "x").expect("write");
    let ctx = BuildContext::open(dir.path(), None).expect("open");
    let root = fs::canonicalize(dir.path()).expect("canonical");
    let e = ctx.walk(&source(&ctx, "d")).expect_err("non-UTF-8");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: the name is not valid UTF-8, which kiln does not support yet",
            root.join("d").join(name).display()
        )
    );
    // Under an excluded directory that is pruned, it is never seen.
    fs::remove_file(dir.path().join("d").join(name)).expect("rm");
    assert_eq!(walk(&ctx, "."), [".dockerignore", "d/", "d/ok"]);
}

#[test]
fn a_large_context_is_walked_completely_and_in_order() {
    // 20,000 files in 200 directories, a tenth of them excluded, one directory pruned.
    let dir = tempfile::tempdir().expect("tempdir");
    for d in 0..200 {
        let sub = dir.path().join(format!("pkg{d:03}"));
        fs::create_dir(&sub).expect("mkdir");
        for f in 0..100 {
            let ext = if f % 10 == 0 { "tmp" } else { "rs" };
            fs::write(sub.join(format!("f{f:03}.{ext}")), "x").expect("write");
        }
    }
    let rules = IgnoreRules::parse("**/*.tmp\npkg199\n").expect("rules");
    let ctx = BuildContext::with_rules(dir.path(), rules).expect("context");
    let entries = ctx.walk(&source(&ctx, ".")).expect("walk");
    // 199 directories, 90 kept files in each.
    assert_eq!(entries.len(), 199 + 199 * 90);
    assert_eq!(entries[0].rel_to_source, "pkg000");
    assert_eq!(entries[1].rel_to_source, "pkg000/f001.rs");
    assert_eq!(entries.last().map(|e| e.rel_to_source.as_str()), Some("pkg198/f099.rs"));
    assert!(entries.iter().all(|e| !e.rel_to_source.ends_with(".tmp")));
    let paths: Vec<&str> = entries.iter().map(|e| e.rel_to_source.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
}
