//! Hostile build contexts at the library level: special files, ignore files that are symlinks
//! out of the context, and hashing that never blocks. (End-to-end builds of the same cases:
//! cli/tests/hostile_context.rs.)

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use kiln_builder::context::{BuildContext, ContextError};
use kiln_builder::key::ContextHasher;

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

fn mkfifo(p: &Path) {
    let ok = Command::new("mkfifo").arg(p).status().expect("mkfifo").success();
    assert!(ok);
}

/// Runs `f` on a thread; fails the test if it has not returned within a minute (a hang).
fn no_hang<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("{what} hung"))
}

#[test]
fn special_files_are_left_out_of_walks_and_refused_as_sources() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    write(&root, "d/file", "f");
    mkfifo(&root.join("d/fifo"));
    let _sock = std::os::unix::net::UnixListener::bind(root.join("d/sock")).unwrap();
    let ctx = BuildContext::open(&root, None).unwrap();

    for (source, kind) in [("d/fifo", "a named pipe"), ("d/sock", "a socket")] {
        let e = ctx.resolve_sources(source).expect_err(source);
        assert!(matches!(e, ContextError::SpecialFile { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "source {source:?} is {kind} ({}): only files, directories and symlinks are \
                 copied from a build context",
                root.join(source).display()
            )
        );
    }
    // A wildcard leaves them out; one that matches only them matches nothing.
    let names: Vec<String> =
        ctx.resolve_sources("d/*").unwrap().into_iter().map(|e| e.rel_path).collect();
    assert_eq!(names, ["d/file"]);
    let e = ctx.resolve_sources("d/fi?o").expect_err("only a fifo");
    assert!(matches!(e, ContextError::NotFound { .. }), "{e:?}");

    // Hashing the directory (what a COPY's cache key reads) never opens the pipe.
    let kiln_root = tempfile::tempdir().unwrap();
    let kr = kiln_root.path().to_path_buf();
    let digest = no_hang("hashing a directory holding a fifo", move || {
        let hasher = ContextHasher::new(&ctx, &kr).unwrap();
        hasher.digest(&["d".to_string()]).map(|d| d.to_string())
    });
    assert!(digest.unwrap().starts_with("sha256:"));
}

#[test]
fn a_fifo_swapped_in_after_listing_is_an_error_not_a_hang() {
    // The walk saw a regular file; by the time it is hashed, it is a named pipe.
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    write(&root, "d/f", "content");
    let ctx = BuildContext::open(&root, None).unwrap();
    let entry = ctx.resolve_sources("d/f").unwrap().remove(0);
    fs::remove_file(root.join("d/f")).unwrap();
    mkfifo(&root.join("d/f"));
    let kiln_root = tempfile::tempdir().unwrap();
    let kr = kiln_root.path().to_path_buf();
    let result = no_hang("hashing a fifo", move || {
        let hasher = ContextHasher::new(&ctx, &kr).unwrap();
        let item = kiln_builder::key::HashItem {
            file: Some((
                entry.abs_path.clone(),
                kiln_cache::layer::FileIdentity::of(&entry.metadata),
            )),
            ..kiln_builder::key::HashItem::new("f".into(), "file", 0o644, String::new())
        };
        hasher.digest_items(vec![item]).map_err(|e| e.to_string())
    });
    let err = result.expect_err("a fifo is not hashed");
    assert_eq!(
        err,
        format!(
            "cannot read {} in the build context: not a regular file",
            root.join("d/f").display()
        )
    );
}

#[test]
fn an_ignore_file_symlinked_out_of_the_context_is_resolved_inside_it() {
    let top = tempfile::tempdir().unwrap();
    let top = fs::canonicalize(top.path()).unwrap();
    let root = top.join("ctx");
    write(&top, "outside/ignore", "keep.txt\n");
    write(&root, "keep.txt", "k");
    write(&root, "inner/ignore", "other.txt\n");
    write(&root, "other.txt", "o");
    let out_abs = top.join("outside/ignore");

    // Absolute and relative links out: resolved inside the context, where nothing is.
    for target in [out_abs.to_str().unwrap().to_string(), "../outside/ignore".into()] {
        let _ = fs::remove_file(root.join(".dockerignore"));
        symlink(&target, root.join(".dockerignore")).unwrap();
        let ctx = BuildContext::open(&root, None).unwrap();
        assert_eq!(ctx.ignore_file(), None, "{target}: the host file was read");
        assert_eq!(ctx.resolve_sources("keep.txt").unwrap().len(), 1);
    }
    // A link inside the context is followed.
    fs::remove_file(root.join(".dockerignore")).unwrap();
    symlink("inner/ignore", root.join(".dockerignore")).unwrap();
    let ctx = BuildContext::open(&root, None).unwrap();
    assert!(ctx.resolve_sources("other.txt").is_err(), "excluded by inner/ignore");
    assert_eq!(ctx.resolve_sources("keep.txt").unwrap().len(), 1);
    // An absolute link is taken from the context root, as in a chroot.
    fs::remove_file(root.join(".dockerignore")).unwrap();
    symlink("/inner/ignore", root.join(".dockerignore")).unwrap();
    let ctx = BuildContext::open(&root, None).unwrap();
    assert!(ctx.resolve_sources("other.txt").is_err(), "excluded by /inner/ignore");
}

/// Peak RSS (`VmHWM`, KiB) of this process.
fn peak_rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Where the memory of a huge context goes, phase by phase: the walk alone, then the content
/// digest of `COPY . /` (its lean walk, hashing, stat cache, and the listing it keeps). A
/// measurement, not a test: point `KILN_HOSTILE_CTX` at a big context and run with
/// `--ignored --nocapture`.
#[test]
#[ignore = "measurement: needs KILN_HOSTILE_CTX, a directory with many files"]
fn memory_of_a_huge_context_by_phase() {
    let Some(dir) = std::env::var_os("KILN_HOSTILE_CTX") else { return };
    let base = peak_rss_kib();
    let ctx = BuildContext::open(Path::new(&dir), None).unwrap();
    let entry = ctx.resolve_sources(".").unwrap().remove(0);
    let walked = ctx.walk(&entry).unwrap();
    let n = walked.len();
    let after_walk = peak_rss_kib();
    println!(
        "walk: {n} entries, peak RSS +{} KiB ({} bytes per entry; WalkEntry is {} bytes)",
        after_walk - base,
        (after_walk - base) * 1024 / n as u64,
        std::mem::size_of::<kiln_builder::context::WalkEntry>()
    );
    drop(walked);
    let kiln_root = tempfile::tempdir().unwrap();
    let hasher = ContextHasher::new(&ctx, kiln_root.path()).unwrap();
    // What a `COPY . /` computes for its key (the listing stays, for planning the step).
    kiln_builder::ops::copy::context_digest(&hasher, &[".".to_string()], false, &[], None).unwrap();
    let after_digest = peak_rss_kib();
    println!(
        "content digest (walk, hash, stat cache): peak RSS +{} KiB ({} bytes per entry)",
        after_digest - base,
        (after_digest - base) * 1024 / n as u64
    );
}
