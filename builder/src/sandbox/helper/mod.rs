//! The sandbox helper: a fresh, single-threaded kiln process (`/proc/self/exe
//! __kiln-sandbox`) that builds one RUN's namespaces and mounts, forks the RUN's pid 1, and
//! waits for it. Being single-threaded, it may fork and then run ordinary code.
//!
//! Order: new mount/UTS/IPC(/net) namespaces → everything private → loopback, host name →
//! root file system (overlay, fuse-overlayfs or the copy) → `/dev`, `/sys`, `/etc` files,
//! spec mounts → new PID namespace → fork pid 1 → (pid 1) own mount namespace, `/proc`,
//! `pivot_root` → fork the command.

use std::fs;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::protocol::{HelperRequest, Report};
use super::spec::{Isolation, NetworkMode, RootfsDriver};
use super::sys;

mod exec;
mod mounts;
mod net;
mod private;

pub(crate) use exec::kill_tree_signal;
pub(crate) use mounts::mount_overlay;

/// The helper's entry point (never returns).
pub(crate) fn main() -> ! {
    let mut input = Vec::new();
    if let Err(e) = io::stdin().lock().read_to_end(&mut input) {
        Report::SetupFailed(format!("reading the request: {e}")).send();
        sys::exit_now(1);
    }
    let request: HelperRequest = match serde_json::from_slice(&input) {
        Ok(r) => r,
        Err(e) => {
            Report::SetupFailed(format!("decoding the request: {e}")).send();
            sys::exit_now(1);
        }
    };
    // The RUN gets no standard input, and no controlling terminal.
    let _ = sys::null_onto(0);
    sys::setsid();
    match run(&request) {
        Ok(()) => sys::exit_now(0),
        Err(message) => {
            Report::SetupFailed(message).send();
            sys::exit_now(1)
        }
    }
}

/// What the helper set up and must tear down.
struct Running {
    fuse: Option<Child>,
    rootfs: PathBuf,
}

fn run(req: &HelperRequest) -> Result<(), String> {
    let spec = &req.spec;
    let helper_pid = sys::getpid();
    // Cancellation arrives as SIGTERM from the caller; handle it in the wait loop below.
    let wait_set = sys::sigset(&[libc::SIGTERM, libc::SIGCHLD]);
    sys::block_signals(&wait_set).map_err(|e| format!("blocking signals: {e}"))?;

    let namespaces = req.isolation != Isolation::Chroot;
    let net = spec.network == NetworkMode::None;
    let mut got_pid = false;
    if namespaces {
        let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
        if net {
            flags |= libc::CLONE_NEWNET;
        }
        sys::unshare(flags).map_err(|e| format!("creating namespaces: {e}"))?;
        mounts::make_all_private().map_err(|e| format!("making mounts private: {e}"))?;
        sethostname(&spec.hostname)?;
    } else {
        // Chroot isolation: take whichever namespaces this runner allows.
        if sys::unshare(libc::CLONE_NEWUTS).is_ok() {
            sethostname(&spec.hostname)?;
        }
        let _ = sys::unshare(libc::CLONE_NEWIPC);
        if net && sys::unshare(libc::CLONE_NEWNET).is_err() {
            return Err(
                "--network=none needs a network namespace, which this runner refuses".into()
            );
        }
    }
    if net {
        net::loopback_up().map_err(|e| format!("bringing up loopback: {e}"))?;
    }

    let mut running = Running { fuse: None, rootfs: req.layout.rootfs.clone() };
    let root = if namespaces { Some(setup_rootfs(req, &mut running)?) } else { None };

    let mut cmd = exec::Command::new(spec).map_err(|e| format!("preparing the command: {e}"))?;
    if !namespaces {
        cmd.set_chroot(&req.layout.rootfs).map_err(|e| e.to_string())?;
    }
    if namespaces {
        sys::unshare(libc::CLONE_NEWPID).map_err(|e| format!("creating the PID namespace: {e}"))?;
        got_pid = true;
    } else if sys::unshare(libc::CLONE_NEWPID).is_ok() {
        got_pid = true;
    }

    // SAFETY: the helper is single-threaded.
    let init = match unsafe { sys::fork() } {
        Ok(0) => {
            pid1(root.as_ref().map(|_| req.layout.rootfs.as_path()), &cmd, helper_pid, got_pid)
        }
        Ok(pid) => pid,
        Err(e) => return Err(format!("starting the sandbox's pid 1: {e}")),
    };
    // Only the sandbox holds the output pipes now: the caller sees them close when it is gone.
    let _ = sys::null_onto(1);
    let _ = sys::null_onto(2);
    drop(root);
    wait_for(init, got_pid, &wait_set);
    teardown(running);
    Ok(())
}

fn sethostname(name: &str) -> Result<(), String> {
    sys::sethostname(name).map_err(|e| format!("setting host name {name:?}: {e}"))
}

/// Mounts the root file system and everything in it; returns the root's descriptor.
fn setup_rootfs(req: &HelperRequest, running: &mut Running) -> Result<OwnedFd, String> {
    let layout = &req.layout;
    let mut lowers: Vec<PathBuf> = vec![layout.stubs.clone()];
    lowers.extend(req.spec.lower_dirs.iter().rev().cloned());
    let used = match req.rootfs {
        RootfsDriver::Copy => {
            mounts::bind_self(&layout.rootfs)
                .map_err(|e| format!("mounting the root file system: {e}"))?;
            RootfsDriver::Copy
        }
        RootfsDriver::KernelOverlay => {
            mounts::mount_overlay(&lowers, &layout.upper, &layout.work, &layout.rootfs)
                .map_err(|e| format!("mounting overlayfs: {e}"))?;
            RootfsDriver::KernelOverlay
        }
        RootfsDriver::FuseOverlay => {
            running.fuse = Some(start_fuse(&lowers, layout)?);
            RootfsDriver::FuseOverlay
        }
        RootfsDriver::Auto => {
            match mounts::mount_overlay(&lowers, &layout.upper, &layout.work, &layout.rootfs) {
                Ok(()) => RootfsDriver::KernelOverlay,
                Err(kernel) => match start_fuse(&lowers, layout) {
                    Ok(child) => {
                        running.fuse = Some(child);
                        RootfsDriver::FuseOverlay
                    }
                    Err(fuse) => {
                        Report::NoOverlay(format!("overlayfs: {kernel}; {fuse}")).send();
                        sys::exit_now(0);
                    }
                },
            }
        }
    };
    Report::Rootfs(used).send();
    if req.can_mknod {
        // A RUN step as real root keeps CAP_MKNOD (Docker's default set) and has no device
        // cgroup: without `nodev`, a node it makes for the host's disk would open it. Nodes
        // can still be made (they go into the layer), not used; /dev's devices are binds.
        mounts::remount_nodev(&layout.rootfs)
            .map_err(|e| format!("making the root file system nodev: {e}"))?;
    }
    let root = mounts::open_dir(&layout.rootfs)
        .map_err(|e| format!("opening the root file system: {e}"))?;
    mounts::mount_dev(&root, gid_mapped(5)).map_err(|e| format!("mounting /dev: {e}"))?;
    mounts::mount_sys(&root).map_err(|e| format!("mounting /sys: {e}"))?;
    for (target, file) in ETC_FILES {
        mounts::bind_file(&root, &layout.etc.join(file), target)
            .map_err(|e| format!("mounting {target}: {e}"))?;
    }
    let mut private = private::Private::new(&layout.private);
    for (n, m) in req.spec.mounts.iter().enumerate() {
        mounts::apply_mount(&root, m, n, &mut private)
            .map_err(|e| format!("mounting {}: {e}", m.target))?;
    }
    Ok(root)
}

/// The files the sandbox provides in `/etc`, and their names in the layout's `etc` directory.
pub(crate) const ETC_FILES: [(&str, &str); 3] =
    [("/etc/hosts", "hosts"), ("/etc/resolv.conf", "resolv.conf"), ("/etc/hostname", "hostname")];

/// True when group `gid` is mapped in this user namespace.
fn gid_mapped(gid: u64) -> bool {
    fs::read_to_string("/proc/self/gid_map")
        .map(|map| {
            map.lines().any(|line| {
                let f: Vec<u64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
                f.len() == 3 && f[0] <= gid && gid < f[0] + f[2]
            })
        })
        .unwrap_or(false)
}

/// Starts `fuse-overlayfs` in the foreground (it dies with the helper) and waits until the
/// root file system is mounted.
fn start_fuse(lowers: &[PathBuf], layout: &super::protocol::Layout) -> Result<Child, String> {
    use std::os::unix::process::CommandExt;
    let join = |p: &Path| p.to_string_lossy().into_owned();
    let lowerdir: Vec<String> = lowers.iter().map(|p| join(p)).collect();
    let log_path = layout.work.with_file_name("fuse.log");
    let log = fs::File::create(&log_path)
        .map_err(|e| format!("fuse-overlayfs: creating its log: {e}"))?;
    let mut command = std::process::Command::new("fuse-overlayfs");
    command
        .arg("-f")
        .arg("-o")
        .arg(format!(
            "lowerdir={},upperdir={},workdir={},allow_other",
            lowerdir.join(":"),
            join(&layout.upper),
            join(&layout.work)
        ))
        .arg(&layout.rootfs)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        command.pre_exec(|| sys::set_parent_death_signal(libc::SIGKILL));
    }
    let mut child = command.spawn().map_err(|e| format!("fuse-overlayfs: {e}"))?;
    let parent_dev = device_of(layout.rootfs.parent().unwrap_or(Path::new("/")));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if device_of(&layout.rootfs) != parent_dev {
            return Ok(child);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!("fuse-overlayfs {status}: {}", log.trim()));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("fuse-overlayfs did not mount within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn device_of(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).ok().map(|m| m.dev())
}

/// The forked pid 1: its own mount namespace (so `pivot_root` leaves the helper alone),
/// `/proc`, `pivot_root`, then the init loop.
fn pid1(rootfs: Option<&Path>, cmd: &exec::Command, helper: libc::pid_t, alone: bool) -> ! {
    let _ = sys::set_parent_death_signal(libc::SIGKILL);
    // In a new PID namespace the parent is outside it and shows as 0.
    let parent = sys::getppid();
    if parent != helper && parent != 0 {
        sys::exit_now(1);
    }
    if let Some(rootfs) = rootfs {
        let setup = || -> io::Result<()> {
            sys::unshare(libc::CLONE_NEWNS)?;
            // Descriptors opened before name mounts of the helper's namespace: reopen.
            let root = mounts::open_dir(rootfs)?;
            mounts::mount_proc(&root)?;
            mounts::pivot_into(&root)
        };
        if let Err(e) = setup() {
            Report::SetupFailed(format!("mounting /proc and entering the root: {e}")).send();
            sys::exit_now(1);
        }
    }
    exec::init(cmd, alone)
}

/// Waits for pid 1; a SIGTERM from the caller (cancel) kills the whole sandbox first.
fn wait_for(init: libc::pid_t, alone_in_pidns: bool, set: &libc::sigset_t) {
    loop {
        if let Ok(Some(libc::SIGTERM)) = sys::sigtimedwait(set, 1000) {
            let signal = if alone_in_pidns { libc::SIGKILL } else { kill_tree_signal() };
            let _ = sys::kill(init, signal);
        }
        match sys::waitpid(init, libc::WNOHANG) {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) => {}
        }
    }
}

/// Unmounts the fuse-overlayfs root (its daemon then exits) and waits for the daemon.
fn teardown(running: Running) {
    let Some(mut fuse) = running.fuse else { return };
    if let Ok(path) = sys::cpath(&running.rootfs) {
        let _ = sys::umount2(&path, libc::MNT_DETACH);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = fuse.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = fuse.kill();
    let _ = fuse.wait();
}
