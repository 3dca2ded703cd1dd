//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use kiln_cache::{EntryKind, FileSource, LayerEntry};

/// A layer entry with mode 0644 (0755 for dirs), owner 0:0, mtime 1_700_000_000.
pub fn entry(path: &str, kind: EntryKind) -> LayerEntry {
    let mode = if kind == EntryKind::Dir { 0o755 } else { 0o644 };
    LayerEntry {
        path: path.into(),
        kind,
        mode,
        uid: 0,
        gid: 0,
        mtime: 1_700_000_000,
        xattrs: BTreeMap::new(),
    }
}

/// A file entry with in-memory content.
pub fn file(path: &str, data: &[u8]) -> LayerEntry {
    entry(
        path,
        EntryKind::File { source: FileSource::Bytes(data.to_vec()), size: data.len() as u64 },
    )
}

/// Runs a command; panics with its output when it cannot be started or fails.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env("TZ", "UTC")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (is it installed?): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// True when running as root (tests needing mounts or devices check this).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Every path under `dir` (relative, sorted), to compare trees before and after.
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            if e.file_type().unwrap().is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
