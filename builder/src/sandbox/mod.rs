//! RUN sandboxes: each RUN in its own kernel namespaces on an overlay of the stage's snapshots,
//! the overlay's upper directory being the layer diff.
//!
//! - [`run`] executes one [`SandboxSpec`] and streams its output line by line.
//! - [`sandbox_entry_if_requested`] must be the first call in the program's `main`: [`run`]
//!   and [`probe`] re-execute the current binary (`/proc/self/exe`) as a fresh, single-threaded
//!   helper process, so nothing is ever forked from a threaded process.
//! - [`enter_rootless_namespace_if_needed`] puts a non-root kiln into its own user namespace
//!   once per process, before the build.
//! - [`choose_isolation`] / [`probe`]: which [`Isolation`] works here and why.
//!
//! Per RUN (root and rootless): new mount, PID, UTS, IPC (and network for `--network=none`)
//! namespaces; kernel overlayfs over the snapshots (else fuse-overlayfs, else a copy); a fresh
//! `/proc`, a minimal `/dev`, `/sys` read-only; `/etc/hosts`, `/etc/resolv.conf` and
//! `/etc/hostname` bind-mounted over mount points from a stub layer, so they never reach the
//! diff; `pivot_root`; Docker's default capabilities; a minimal pid 1 that forwards signals and
//! reaps. Nothing is mounted in kiln's own mount namespace: everything vanishes with the RUN's.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod cancel;
mod caps;
mod client;
mod copyfs;
mod error;
mod fuse_upper;
mod helper;
mod probe;
mod protocol;
mod rootless;
mod spec;
mod stubs;
mod sys;

pub use cancel::CancelToken;
pub use caps::DOCKER_DEFAULT_CAPS;
pub use error::{Result, SandboxError};
pub use probe::{Capabilities, IsolationChoice, choose_isolation, decide, probe};
pub use rootless::{UserNamespace, enter_rootless_namespace_if_needed};
pub use spec::{
    DEFAULT_PATH, ExitStatus, Isolation, MountKind, NetworkMode, RootfsDriver, RunOutcome,
    SandboxMount, SandboxSpec, SecretBytes, Stream, default_etc_hosts, host_resolv_conf,
};

use client::Ended;
use error::IoContext;
use protocol::{HELPER_ARG, HelperRequest, Layout, PROBE_ARG};
use stubs::Stub;

use crate::fsview::LayeredView;

/// Makes this process the sandbox helper or the probe when it was started as one (and then
/// never returns), and finishes entering kiln's user namespace in a re-executed rootless
/// process. Call it first thing in `main`, before any thread is started.
pub fn sandbox_entry_if_requested() {
    let arg = std::env::args_os().nth(1);
    if arg.as_deref() == Some(HELPER_ARG.as_ref()) {
        helper::main();
    }
    if arg.as_deref() == Some(PROBE_ARG.as_ref()) {
        probe::probe_main();
    }
    rootless::child_enter_if_requested();
}

/// Set (to why) once kernel overlay and fuse-overlayfs both failed: later RUNs copy straight
/// away.
static NO_OVERLAY: OnceLock<String> = OnceLock::new();

/// Whether [`MountKind::Filtered`] mounts can be made here: they need kernel overlayfs (and
/// namespaces). When not, the caller gives the RUN a filtered copy instead.
pub fn filtered_views_supported(isolation: Isolation) -> bool {
    let Ok(choice) = choose_isolation(isolation) else { return false };
    let Ok(caps) = probe() else { return false };
    choice.isolation != Isolation::Chroot
        && caps.kernel_overlay_error.is_none()
        && NO_OVERLAY.get().is_none()
}

/// Runs `spec`'s command in a sandbox, passing each line of its output to `on_output`, and
/// leaves its changes in [`SandboxSpec::upper_dir`] (overlay format). Returns how the command
/// ended (a non-zero exit is not an error). With `cancel` set, the RUN's processes are killed
/// and [`SandboxError::Cancelled`] is returned; in every case the temporary directories are
/// removed before returning and nothing stays mounted.
pub fn run(
    spec: &SandboxSpec,
    on_output: &mut dyn FnMut(Stream, &str),
    cancel: &CancelToken,
) -> Result<RunOutcome> {
    validate(spec)?;
    let choice = choose_isolation(spec.isolation)?;
    let isolation = choice.isolation;
    let caps = probe()?;
    let layout = Layout {
        upper: spec.scratch_dir.join("upper"),
        work: spec.scratch_dir.join("work"),
        rootfs: spec.scratch_dir.join("rootfs"),
        stubs: spec.scratch_dir.join("stubs"),
        etc: spec.scratch_dir.join("etc"),
        private: spec.scratch_dir.join("private"),
    };
    let _cleanup = Cleanup(&layout);
    for dir in
        [&layout.upper, &layout.work, &layout.rootfs, &layout.stubs, &layout.etc, &layout.private]
    {
        fs::create_dir(dir).ctx("create directory", dir)?;
    }
    set_mode(&layout.private, 0o700)?;
    set_mode(&layout.upper, 0o755)?;
    for ((_, name), content) in helper::ETC_FILES.iter().zip([
        &spec.etc_hosts,
        &spec.resolv_conf,
        &format!("{}\n", spec.hostname),
    ]) {
        let path = layout.etc.join(name);
        fs::write(&path, content).ctx("write", &path)?;
        set_mode(&path, 0o644)?;
    }
    let view = LayeredView::new(spec.lower_dirs.clone());
    let chroot = isolation == Isolation::Chroot;
    let resolved = stubs::build(&view, &layout.stubs, &wanted_stubs(spec, chroot)?)?;

    let mut driver = match (isolation, spec.rootfs) {
        (Isolation::Chroot, _) => RootfsDriver::Copy,
        (_, RootfsDriver::Auto) if NO_OVERLAY.get().is_some() => RootfsDriver::Copy,
        (_, d) => d,
    };
    let mut fallback = NO_OVERLAY.get().filter(|_| spec.rootfs == RootfsDriver::Auto).cloned();
    loop {
        let manifest = if driver == RootfsDriver::Copy {
            let mut layers = spec.lower_dirs.clone();
            layers.push(layout.stubs.clone());
            Some(copyfs::materialize(&layers, &layout.rootfs)?)
        } else {
            None
        };
        let request = HelperRequest {
            spec: spec.clone(),
            isolation,
            rootfs: driver,
            layout: layout.clone(),
            can_mknod: caps.mknod,
        };
        match client::run_helper(&request, on_output, cancel)? {
            Ended::NoOverlay(why) => {
                let _ = NO_OVERLAY.set(why.clone());
                fallback = Some(why);
                driver = RootfsDriver::Copy;
            }
            Ended::Exited { status, rootfs } => {
                let rootfs = if chroot { RootfsDriver::Copy } else { rootfs };
                if let Some(manifest) = manifest {
                    let mut excluded = copyfs::Exclusions::default();
                    if chroot {
                        // What the sandbox provided in place of mounts stays out of the diff.
                        excluded.paths.extend(resolved.iter().take(3).cloned());
                        // /dev, /proc and /sys are mounts under namespaces: neither they nor
                        // what the RUN put in them belong to the layer.
                        let special = ["dev", "proc", "sys"].map(String::from);
                        excluded.paths.extend(special.clone());
                        excluded.contents_of.extend(special);
                    }
                    copyfs::diff(&manifest, &layout.rootfs, &layout.upper, &excluded)?;
                } else if rootfs == RootfsDriver::FuseOverlay {
                    fuse_upper::normalize(&layout.upper, &view)?;
                }
                return Ok(RunOutcome { status, isolation, rootfs, rootfs_fallback: fallback });
            }
        }
    }
}

/// The stubs a RUN needs: the `/etc` files first (their resolved paths are the chroot
/// exclusions), then the mount points.
fn wanted_stubs(spec: &SandboxSpec, chroot: bool) -> Result<Vec<(String, Stub)>> {
    let mut wanted = Vec::new();
    let contents = [&spec.etc_hosts, &spec.resolv_conf, &format!("{}\n", spec.hostname)];
    for ((target, _), content) in helper::ETC_FILES.iter().zip(contents) {
        let content = chroot.then(|| content.as_bytes().to_vec());
        wanted.push((target.to_string(), Stub::File(content)));
    }
    for dir in ["/proc", "/sys", "/dev"] {
        wanted.push((dir.to_string(), Stub::Dir));
    }
    if chroot {
        if !spec.mounts.is_empty() {
            return Err(SandboxError::Unsupported(
                "RUN --mount needs mount namespaces, which chroot isolation does not have".into(),
            ));
        }
        for (name, major, minor) in [
            ("null", 1, 3),
            ("zero", 1, 5),
            ("full", 1, 7),
            ("random", 1, 8),
            ("urandom", 1, 9),
            ("tty", 5, 0),
        ] {
            wanted.push((format!("/dev/{name}"), Stub::CharDevice(major, minor)));
        }
    }
    for m in &spec.mounts {
        let stub = match &m.kind {
            MountKind::Bind { source, .. } if !source.is_dir() => Stub::File(None),
            MountKind::Secret { .. } => Stub::File(None),
            _ => Stub::Dir,
        };
        wanted.push((m.target.clone(), stub));
    }
    Ok(wanted)
}

fn validate(spec: &SandboxSpec) -> Result<()> {
    let bad = |msg: String| Err(SandboxError::InvalidSpec(msg));
    if spec.argv.is_empty() {
        return bad("empty command".into());
    }
    if !spec.cwd.starts_with('/') {
        return bad(format!("working directory {:?} is not absolute", spec.cwd));
    }
    for m in &spec.mounts {
        if !m.target.starts_with('/') {
            return bad(format!("mount target {:?} is not absolute", m.target));
        }
        if let MountKind::Bind { source, .. } = &m.kind
            && !source.exists()
        {
            return bad(format!("mount source {} does not exist", source.display()));
        }
        if let MountKind::Filtered { source, hidden } = &m.kind {
            if !source.is_dir() {
                return bad(format!(
                    "filtered mount source {} is not a directory",
                    source.display()
                ));
            }
            if let Some(h) = hidden.iter().find(|h| !is_plain_relative(h)) {
                return bad(format!("hidden path {h:?} is not a plain relative path"));
            }
        }
    }
    for dir in &spec.lower_dirs {
        if !dir.is_dir() {
            return bad(format!("snapshot {} is not a directory", dir.display()));
        }
    }
    match fs::read_dir(&spec.scratch_dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return bad(format!(
                    "scratch directory {} is not empty",
                    spec.scratch_dir.display()
                ));
            }
        }
        Err(e) => return Err(SandboxError::io("open scratch directory", &spec.scratch_dir, e)),
    }
    if spec.hostname.is_empty() || spec.hostname.len() > 64 {
        return bad(format!("host name {:?} must have 1 to 64 characters", spec.hostname));
    }
    Ok(())
}

/// A '/'-separated relative path without empty, `.` or `..` segments.
fn is_plain_relative(path: &str) -> bool {
    !path.is_empty() && path.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).ctx("chmod", path)
}

/// Removes a run's temporary directories (everything but `upper/`).
struct Cleanup<'a>(&'a Layout);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let l = self.0;
        let fuse_log: PathBuf = l.work.with_file_name("fuse.log");
        for dir in [&l.work, &l.rootfs, &l.stubs, &l.etc, &l.private] {
            let _ = remove_tree(dir);
        }
        let _ = fs::remove_file(fuse_log);
    }
}

/// Removes a directory tree, making directories writable first where needed (overlay's work
/// directory holds a mode-000 `work/`).
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            use std::os::unix::fs::PermissionsExt;
            for entry in walkdir_dirs(dir) {
                let _ = fs::set_permissions(&entry, fs::Permissions::from_mode(0o700));
            }
            fs::remove_dir_all(dir)
        }
    }
}

/// Every directory under `dir` (not following symlinks), parents first.
fn walkdir_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(rd) = fs::read_dir(&out[i]) {
            for ent in rd.flatten() {
                if ent.file_type().is_ok_and(|t| t.is_dir()) {
                    out.push(ent.path());
                }
            }
        }
        i += 1;
    }
    out
}
