//! Shared pieces of the sandbox tests: busybox root file systems, running a spec, reading the
//! diff, and a tiny wrapper over libtest-mimic.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_builder::sandbox::{
    self, CancelToken, Isolation, RunOutcome, SandboxError, SandboxSpec, Stream,
};
use kiln_cache::layer::{EntryKind, FileSource, entries_from_dir};

/// A test: its name and body (panics fail it).
pub type Test = (&'static str, fn());

/// Runs `tests` with libtest's command line (after the sandbox entry point).
pub fn run_tests(tests: Vec<Test>) -> ! {
    let args = libtest_mimic::Arguments::from_args();
    let trials = tests
        .into_iter()
        .map(|(name, f)| {
            libtest_mimic::Trial::test(name, move || {
                f();
                Ok(())
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}

/// A temporary directory for one test.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("kiln-sandbox-test-").tempdir().expect("tempdir")
}

/// Makes `dir` a snapshot-like busybox root: `/bin/busybox` with its applet links, `/etc`
/// with `passwd` and `group`, `/tmp`, `/root`. Returns `dir`.
pub fn busybox_root(dir: &Path) -> PathBuf {
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::copy("/bin/busybox", dir.join("bin/busybox")).expect("busybox-static is installed");
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
        }
    }
    fs::create_dir_all(dir.join("etc")).unwrap();
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
    )
    .unwrap();
    fs::write(dir.join("etc/group"), "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n").unwrap();
    fs::create_dir_all(dir.join("tmp")).unwrap();
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::create_dir_all(dir.join("root")).unwrap();
    fs::set_permissions(dir.join("root"), fs::Permissions::from_mode(0o700)).unwrap();
    dir.to_path_buf()
}

/// A test's world: a busybox lower layer and a scratch directory.
pub struct World {
    pub tmp: tempfile::TempDir,
    pub lowers: Vec<PathBuf>,
    pub scratch: PathBuf,
}

impl World {
    /// A busybox lower and an empty scratch directory.
    pub fn new() -> World {
        let tmp = tempdir();
        let base = busybox_root(&tmp.path().join("base"));
        let scratch = tmp.path().join("scratch");
        fs::create_dir(&scratch).unwrap();
        World { lowers: vec![base], scratch, tmp }
    }

    /// Adds an (empty) lower layer on top and returns its path.
    pub fn add_layer(&mut self, name: &str) -> PathBuf {
        let dir = self.tmp.path().join(name);
        fs::create_dir(&dir).unwrap();
        self.lowers.push(dir.clone());
        dir
    }

    /// A spec running `sh -c script`.
    pub fn sh(&self, script: &str) -> SandboxSpec {
        SandboxSpec::new(
            self.lowers.clone(),
            self.scratch.clone(),
            vec!["/bin/sh".into(), "-c".into(), script.into()],
        )
    }

    /// Empties the scratch directory for another run.
    pub fn reset_scratch(&self) {
        fs::remove_dir_all(&self.scratch).unwrap();
        fs::create_dir(&self.scratch).unwrap();
    }
}

/// What a run printed.
#[derive(Debug, Default)]
pub struct Output {
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

/// Runs `spec`, collecting its output.
pub fn run(spec: &SandboxSpec) -> (Result<RunOutcome, SandboxError>, Output) {
    let mut out = Output::default();
    let result = sandbox::run(
        spec,
        &mut |stream, line| match stream {
            Stream::Stdout => out.stdout.push(line.to_string()),
            Stream::Stderr => out.stderr.push(line.to_string()),
        },
        &CancelToken::new(),
    );
    (result, out)
}

/// Runs `spec` and insists that it exited 0; returns its standard output.
pub fn run_ok(spec: &SandboxSpec) -> Vec<String> {
    let (result, out) = run(spec);
    let outcome = match result {
        Ok(o) => o,
        Err(e) => panic!("run failed: {e}\nstdout: {:?}\nstderr: {:?}", out.stdout, out.stderr),
    };
    assert!(
        outcome.status.success(),
        "{}: stdout {:?} stderr {:?}",
        outcome.status,
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// One layer entry in a comparable form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub content: Option<Vec<u8>>,
}

/// The upper directory of `spec` read through `entries_from_dir`: path → entry.
pub fn diff(spec: &SandboxSpec) -> BTreeMap<String, Entry> {
    let entries = entries_from_dir(&spec.upper_dir()).expect("entries_from_dir");
    entries
        .into_iter()
        .map(|e| {
            let (kind, content) = match &e.kind {
                EntryKind::Dir => ("dir".to_string(), None),
                EntryKind::OpaqueDir => ("opaque".to_string(), None),
                EntryKind::Whiteout => ("whiteout".to_string(), None),
                EntryKind::File { source: FileSource::Path(p), .. } => {
                    ("file".to_string(), Some(fs::read(p).unwrap()))
                }
                EntryKind::File { source: FileSource::Bytes(b), .. } => {
                    ("file".to_string(), Some(b.clone()))
                }
                EntryKind::Symlink { target } => (format!("symlink:{target}"), None),
                EntryKind::Hardlink { target } => (format!("hardlink:{target}"), None),
                other => (format!("{other:?}"), None),
            };
            // Opaque markers share the directory's path: key them apart.
            let key = if kind == "opaque" { format!("{}#opaque", e.path) } else { e.path.clone() };
            (key, Entry { kind, mode: e.mode, uid: e.uid, gid: e.gid, content })
        })
        .collect()
}

/// The paths of a diff with their kinds, for compact assertions.
pub fn kinds(diff: &BTreeMap<String, Entry>) -> Vec<(String, String)> {
    diff.iter().map(|(p, e)| (p.clone(), e.kind.clone())).collect()
}

/// True when running as root in the initial user namespace.
pub fn real_root() -> bool {
    kiln_cache::snapshot::running_as_real_root()
}

/// True when uid 65534 and 1000 exist in this user namespace (a subordinate range is mapped).
pub fn many_ids_mapped() -> bool {
    let map = fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    map.lines().any(|l| {
        let f: Vec<u64> = l.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        f.len() == 3 && f[0] <= 1000 && 65534 < f[0] + f[2]
    })
}

/// Which isolation the tests get here.
pub fn isolation() -> Isolation {
    sandbox::choose_isolation(Isolation::Auto).expect("an isolation mode").isolation
}

/// The owner of `path`.
pub fn owner(path: &Path) -> (u32, u32) {
    let m = fs::symlink_metadata(path).unwrap();
    (m.uid(), m.gid())
}

/// Pids of processes whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for ent in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = ent.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            out.push(pid);
        }
    }
    out
}

/// Mount points of this process's namespace that lie under `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let prefix = dir.to_string_lossy().to_string();
    info.lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&prefix))
        .collect()
}

/// Names in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
