//! What this machine allows ([`probe`]) and which isolation mode follows
//! ([`choose_isolation`]).
//!
//! Probing needs a single-threaded process (`unshare` of a mount namespace refuses threaded
//! callers), so [`probe`] runs `/proc/self/exe __kiln-sandbox-probe` once per process and
//! keeps the answer.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::caps::{self, CAP_SYS_ADMIN, CAP_SYS_CHROOT};
use super::error::{Result, SandboxError};
use super::helper;
use super::protocol::PROBE_ARG;
use super::spec::Isolation;
use super::sys;

/// What works on this machine, for this process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// The effective user id.
    pub euid: u32,
    /// Running in the initial user namespace.
    pub initial_user_namespace: bool,
    /// `CAP_SYS_ADMIN` is effective (in the current user namespace).
    pub cap_sys_admin: bool,
    /// `CAP_SYS_CHROOT` is effective.
    pub cap_sys_chroot: bool,
    /// Why a new user namespace cannot be created (`None`: it can).
    pub user_namespace_error: Option<String>,
    /// Why new mount, PID, UTS, IPC and network namespaces cannot be created as this process is
    /// (`None`: they can).
    pub namespaces_error: Option<String>,
    /// Why kernel overlayfs cannot be mounted (`None`: it can; tried on a tmpfs, inside a user
    /// namespace when this process lacks `CAP_SYS_ADMIN`).
    pub kernel_overlay_error: Option<String>,
    /// Why fuse-overlayfs cannot be used (`None`: the binary is there and `/dev/fuse` opens).
    pub fuse_overlay_error: Option<String>,
    /// Device nodes can be created (`mknod`).
    pub mknod: bool,
}

impl Capabilities {
    /// Root in the initial user namespace, with `CAP_SYS_ADMIN`.
    pub fn real_root(&self) -> bool {
        self.euid == 0 && self.initial_user_namespace && self.cap_sys_admin
    }
}

/// The isolation mode a build uses and why, to show once per build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsolationChoice {
    /// The mode (never `Auto`).
    pub isolation: Isolation,
    /// A sentence saying why.
    pub reason: String,
}

static PROBED: OnceLock<std::result::Result<Capabilities, String>> = OnceLock::new();

/// What works here (probed once per process by a helper process).
pub fn probe() -> Result<&'static Capabilities> {
    PROBED
        .get_or_init(run_probe_helper)
        .as_ref()
        .map_err(|e| SandboxError::Helper(format!("probing the machine: {e}")))
}

fn run_probe_helper() -> std::result::Result<Capabilities, String> {
    let out = Command::new("/proc/self/exe")
        .arg(PROBE_ARG)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("starting /proc/self/exe: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the probe exited with {} (does this program call sandbox_entry_if_requested() first \
             in main?)",
            out.status
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("reading its answer: {e}"))
}

/// Chooses the isolation mode for `requested` from what [`probe`] found; `Auto` picks root,
/// else rootless, else chroot.
pub fn choose_isolation(requested: Isolation) -> Result<IsolationChoice> {
    decide(requested, probe()?)
}

/// The decision of [`choose_isolation`] for given capabilities.
pub fn decide(requested: Isolation, caps: &Capabilities) -> Result<IsolationChoice> {
    let ns_ok = caps.namespaces_error.is_none();
    let ns_why = caps.namespaces_error.as_deref().unwrap_or("");
    let userns_why = caps.user_namespace_error.as_deref().unwrap_or("available");
    let root = || -> std::result::Result<String, String> {
        if !caps.real_root() {
            return Err("needs root in the initial user namespace with CAP_SYS_ADMIN".into());
        }
        if !ns_ok {
            return Err(format!("namespaces are refused: {ns_why}"));
        }
        Ok("running as root: mount, PID, UTS, IPC (and network) namespaces, no user namespace"
            .into())
    };
    let rootless = || -> std::result::Result<String, String> {
        if caps.initial_user_namespace || caps.euid != 0 || !caps.cap_sys_admin {
            return Err(if caps.user_namespace_error.is_some() {
                format!("user namespaces are refused here ({userns_why})")
            } else {
                "kiln is not inside its user namespace (the program must call \
                 enter_rootless_namespace_if_needed before building)"
                    .into()
            });
        }
        if !ns_ok {
            return Err(format!("namespaces are refused inside the user namespace: {ns_why}"));
        }
        Ok(format!("rootless: namespaces inside kiln's user namespace ({})", id_map_summary()))
    };
    let chroot = || -> std::result::Result<String, String> {
        if caps.euid != 0 || !caps.cap_sys_chroot {
            return Err("needs uid 0 with CAP_SYS_CHROOT".into());
        }
        Ok("chroot into a copied root file system, snapshots by copy and diff".into())
    };
    let pick = |mode: Isolation, r: std::result::Result<String, String>| {
        r.map(|reason| IsolationChoice { isolation: mode, reason })
            .map_err(|reason| SandboxError::Isolation { mode, reason })
    };
    match requested {
        Isolation::Root => pick(Isolation::Root, root()),
        Isolation::Rootless => pick(Isolation::Rootless, rootless()),
        Isolation::Chroot => pick(Isolation::Chroot, chroot()),
        Isolation::Auto => {
            if let Ok(reason) = root() {
                return Ok(IsolationChoice { isolation: Isolation::Root, reason });
            }
            if let Ok(reason) = rootless() {
                return Ok(IsolationChoice { isolation: Isolation::Rootless, reason });
            }
            let why_not = if caps.euid == 0 && !caps.initial_user_namespace && ns_ok {
                String::new()
            } else {
                format!(
                    "user namespaces: {userns_why}; mount namespaces: {}",
                    caps.namespaces_error.as_deref().unwrap_or("need CAP_SYS_ADMIN")
                )
            };
            match chroot() {
                Ok(how) => Ok(IsolationChoice {
                    isolation: Isolation::Chroot,
                    reason: format!("namespaces are not available here ({why_not}): {how}"),
                }),
                Err(_) => Err(SandboxError::Isolation {
                    mode: Isolation::Auto,
                    reason: format!(
                        "no isolation works here: not root, and no user namespace ({why_not})"
                    ),
                }),
            }
        }
    }
}

/// `uid 0 → 1000, 1–65536 → 100000…` from this process's maps.
fn id_map_summary() -> String {
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let parts: Vec<String> = map
        .lines()
        .filter_map(|l| {
            let f: Vec<u64> = l.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            (f.len() == 3).then(|| {
                if f[2] == 1 {
                    format!("uid {} → host {}", f[0], f[1])
                } else {
                    format!("uids {}–{} → host {}–{}", f[0], f[0] + f[2] - 1, f[1], f[1] + f[2] - 1)
                }
            })
        })
        .collect();
    parts.join(", ")
}

/// True when this process is in the initial user namespace (its uid map is the identity).
pub(crate) fn in_initial_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
        .unwrap_or(false)
}

/// The probe process's entry point: prints [`Capabilities`] as JSON and exits.
pub(crate) fn probe_main() -> ! {
    let caps = measure();
    let json = serde_json::to_vec(&caps).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let ok = out.write_all(&json).and_then(|()| out.flush()).is_ok();
    sys::exit_now(if ok { 0 } else { 1 })
}

fn measure() -> Capabilities {
    // SAFETY: plain system call.
    let euid = unsafe { libc::geteuid() };
    let cap_sys_admin = caps::has_effective(CAP_SYS_ADMIN);
    let user_namespace_error =
        trial(|| sys::unshare(libc::CLONE_NEWUSER).map_err(|e| e.to_string()));
    let namespaces_error = trial(|| {
        sys::unshare(
            libc::CLONE_NEWNS
                | libc::CLONE_NEWPID
                | libc::CLONE_NEWUTS
                | libc::CLONE_NEWIPC
                | libc::CLONE_NEWNET,
        )
        .map_err(|e| e.to_string())
    });
    let can_mount = namespaces_error.is_none() || user_namespace_error.is_none();
    let kernel_overlay_error = if can_mount {
        trial(|| overlay_trial(!cap_sys_admin))
    } else {
        Some("no mount namespace".into())
    };
    let mknod = namespaces_error.is_none() && trial(mknod_trial).is_none();
    Capabilities {
        euid,
        initial_user_namespace: in_initial_user_namespace(),
        cap_sys_admin,
        cap_sys_chroot: caps::has_effective(CAP_SYS_CHROOT),
        user_namespace_error,
        namespaces_error,
        kernel_overlay_error,
        fuse_overlay_error: fuse_error(),
        mknod,
    }
}

/// Runs `f` in a forked child; `None` when it succeeded, else its error message.
fn trial(f: impl FnOnce() -> std::result::Result<(), String>) -> Option<String> {
    let (read, write) = match rustix::pipe::pipe() {
        Ok(p) => p,
        Err(e) => return Some(format!("pipe: {e}")),
    };
    // SAFETY: the probe process is single-threaded.
    match unsafe { sys::fork() } {
        Ok(0) => {
            drop(read);
            let code = match f() {
                Ok(()) => 0,
                Err(msg) => {
                    let _ = sys::write_all(write.as_raw_fd(), msg.as_bytes());
                    1
                }
            };
            sys::exit_now(code)
        }
        Ok(pid) => {
            drop(write);
            let mut msg = String::new();
            // SAFETY: we own the read end.
            let mut file =
                unsafe { std::fs::File::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(read)) };
            let _ = file.read_to_string(&mut msg);
            match sys::waitpid(pid, 0) {
                Ok(Some((_, st))) if libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0 => None,
                _ => Some(if msg.is_empty() { "failed".into() } else { msg }),
            }
        }
        Err(e) => Some(format!("fork: {e}")),
    }
}

/// In a private mount namespace (inside a new user namespace when `in_userns`), mounts an
/// overlay on a tmpfs.
fn overlay_trial(in_userns: bool) -> std::result::Result<(), String> {
    if in_userns {
        // SAFETY: plain system calls.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        sys::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS).map_err(|e| e.to_string())?;
        let w = |file: &str, text: String| {
            std::fs::write(file, text).map_err(|e| format!("{file}: {e}"))
        };
        w("/proc/self/setgroups", "deny".into())?;
        w("/proc/self/uid_map", format!("0 {uid} 1"))?;
        w("/proc/self/gid_map", format!("0 {gid} 1"))?;
    } else {
        sys::unshare(libc::CLONE_NEWNS).map_err(|e| e.to_string())?;
    }
    let scratch = scratch_tmpfs()?;
    for d in ["l", "u", "w", "m"] {
        std::fs::create_dir(scratch.join(d)).map_err(|e| e.to_string())?;
    }
    helper_mount_overlay(
        &[scratch.join("l")],
        &scratch.join("u"),
        &scratch.join("w"),
        &scratch.join("m"),
    )
}

fn helper_mount_overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> std::result::Result<(), String> {
    helper::mount_overlay(lowers, upper, work, target).map_err(|e| e.to_string())
}

/// Mounts a tmpfs on the temp directory of a private mount namespace and returns it.
fn scratch_tmpfs() -> std::result::Result<PathBuf, String> {
    sys::mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None)
        .map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir();
    let c = sys::cpath(&dir).map_err(|e| e.to_string())?;
    sys::mount(Some(c"tmpfs"), &c, Some(c"tmpfs"), 0, None).map_err(|e| format!("tmpfs: {e}"))?;
    Ok(dir)
}

fn mknod_trial() -> std::result::Result<(), String> {
    sys::unshare(libc::CLONE_NEWNS).map_err(|e| e.to_string())?;
    let dir = scratch_tmpfs()?;
    let path = sys::cpath(&dir.join("null")).map_err(|e| e.to_string())?;
    // SAFETY: NUL-terminated path.
    sys::cvt(unsafe { libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) })
        .map(drop)
        .map_err(|e| e.to_string())
}

fn fuse_error() -> Option<String> {
    if find_in_path("fuse-overlayfs").is_none() {
        return Some("fuse-overlayfs is not installed".into());
    }
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse") {
        Ok(f) => {
            let _: OwnedFd = f.into();
            None
        }
        Err(e) => Some(format!("/dev/fuse: {e}")),
    }
}

/// The first `name` in `$PATH`.
pub(crate) fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(euid: u32, initial: bool, admin: bool) -> Capabilities {
        Capabilities {
            euid,
            initial_user_namespace: initial,
            cap_sys_admin: admin,
            cap_sys_chroot: euid == 0,
            user_namespace_error: None,
            namespaces_error: (!admin).then(|| "Operation not permitted (os error 1)".to_string()),
            kernel_overlay_error: None,
            fuse_overlay_error: None,
            mknod: admin && initial,
        }
    }

    fn err(requested: Isolation, c: &Capabilities) -> String {
        decide(requested, c).unwrap_err().to_string()
    }

    #[test]
    fn auto_prefers_root_then_rootless_then_chroot() {
        let root = decide(Isolation::Auto, &caps(0, true, true)).unwrap();
        assert_eq!(root.isolation, Isolation::Root);
        assert_eq!(
            root.reason,
            "running as root: mount, PID, UTS, IPC (and network) namespaces, no user namespace"
        );
        let rootless = decide(Isolation::Auto, &caps(0, false, true)).unwrap();
        assert_eq!(rootless.isolation, Isolation::Rootless);
        assert!(rootless.reason.starts_with("rootless: namespaces inside kiln's user namespace ("));

        let mut container = caps(0, true, false);
        container.user_namespace_error = Some("Operation not permitted (os error 1)".into());
        let chroot = decide(Isolation::Auto, &container).unwrap();
        assert_eq!(chroot.isolation, Isolation::Chroot);
        assert_eq!(
            chroot.reason,
            "namespaces are not available here (user namespaces: Operation not permitted (os error \
             1); mount namespaces: Operation not permitted (os error 1)): chroot into a copied root \
             file system, snapshots by copy and diff"
        );
    }

    #[test]
    fn unusable_modes_say_why() {
        let mut user = caps(1000, true, false);
        assert_eq!(
            err(Isolation::Auto, &user),
            "isolation auto: no isolation works here: not root, and no user namespace (user \
             namespaces: available; mount namespaces: Operation not permitted (os error 1))"
        );
        assert_eq!(
            err(Isolation::Rootless, &user),
            "isolation rootless: kiln is not inside its user namespace (the program must call \
             enter_rootless_namespace_if_needed before building)"
        );
        user.user_namespace_error = Some("No space left on device (os error 28)".into());
        assert_eq!(
            err(Isolation::Rootless, &user),
            "isolation rootless: user namespaces are refused here (No space left on device (os \
             error 28))"
        );
        assert_eq!(
            err(Isolation::Chroot, &user),
            "isolation chroot: needs uid 0 with CAP_SYS_CHROOT"
        );
        assert_eq!(
            err(Isolation::Root, &caps(0, false, true)),
            "isolation root: needs root in the initial user namespace with CAP_SYS_ADMIN"
        );
        assert_eq!(
            decide(Isolation::Chroot, &caps(0, true, true)).unwrap().isolation,
            Isolation::Chroot
        );
    }

    #[test]
    fn isolation_flag_values_round_trip() {
        for mode in [Isolation::Auto, Isolation::Rootless, Isolation::Root, Isolation::Chroot] {
            assert_eq!(mode.as_str().parse::<Isolation>(), Ok(mode));
        }
        assert_eq!(
            "vm".parse::<Isolation>(),
            Err("unknown isolation \"vm\" (expected auto, rootless, root or chroot)".to_string())
        );
    }
}
