//! kiln's own user namespace for a non-root user, entered once per process.
//!
//! [`enter_rootless_namespace_if_needed`] re-executes the kiln binary (same arguments) in a new
//! user + mount namespace where the user is root and ids 1… map to the user's `/etc/subuid` /
//! `/etc/subgid` range (through `newuidmap`/`newgidmap`), and waits for it, passing on its exit
//! status; the original process never returns from the call. Everything the build does —
//! extracting snapshots with their owners, `COPY`, overlay mounts, every `RUN` — then happens
//! as namespace root, so files on disk get subordinate-id owners and read back inside the
//! namespace as the image's ids.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Command;
use std::sync::OnceLock;

use super::caps::{self, CAP_SYS_ADMIN};
use super::error::{Result, SandboxError};
use super::probe::{find_in_path, in_initial_user_namespace, probe};
use super::spec::Isolation;
use super::sys;

/// Set in the re-executed child's environment while it enters the namespace.
const CHILD_ENV: &str = "_KILN_USERNS_CHILD";
/// The child's descriptors: it writes to the parent on 3, reads from the parent on 4.
const TO_PARENT_FD: libc::c_int = 3;
const FROM_PARENT_FD: libc::c_int = 4;

/// Where kiln runs, as far as user namespaces go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserNamespace {
    /// None is needed: kiln is root with `CAP_SYS_ADMIN`, or the isolation asked for does not
    /// use one.
    NotNeeded,
    /// kiln runs as root of its own user namespace.
    Inside {
        /// `/proc/self/uid_map`, one `inside outside count` per line.
        uid_map: String,
        /// `/proc/self/gid_map`.
        gid_map: String,
        /// Set when only the user's own id is mapped: `chown` to other ids will fail.
        warning: Option<String>,
    },
    /// No user namespace can be created here (`auto` isolation then falls back to chroot).
    Unavailable {
        /// Why.
        reason: String,
    },
}

/// The warning the parent passed to this (child) process, if any.
static WARNING: OnceLock<Option<String>> = OnceLock::new();

/// For a non-root user (or root without `CAP_SYS_ADMIN`) and `Auto`/`Rootless` isolation:
/// re-executes this program inside a new user + mount namespace and exits with its status
/// (never returning here); in that child (or when nothing is needed) returns where kiln runs.
///
/// Call it once, after parsing arguments and before starting any thread, from a program that
/// called [`super::sandbox_entry_if_requested`] first thing in `main`.
pub fn enter_rootless_namespace_if_needed(isolation: Isolation) -> Result<UserNamespace> {
    if matches!(isolation, Isolation::Root | Isolation::Chroot) {
        return Ok(UserNamespace::NotNeeded);
    }
    if caps::has_effective(CAP_SYS_ADMIN) {
        if in_initial_user_namespace() {
            return Ok(UserNamespace::NotNeeded);
        }
        return Ok(inside());
    }
    if let Some(reason) = &probe()?.user_namespace_error {
        let reason = format!("user namespaces are refused here: {reason}");
        if isolation == Isolation::Rootless {
            return Err(SandboxError::Isolation { mode: isolation, reason });
        }
        return Ok(UserNamespace::Unavailable { reason });
    }
    run_outer()
}

fn inside() -> UserNamespace {
    let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let gid_map = std::fs::read_to_string("/proc/self/gid_map").unwrap_or_default();
    let single = uid_map.lines().count() == 1 && uid_map.split_whitespace().nth(2) == Some("1");
    let warning = WARNING.get().cloned().flatten().or_else(|| {
        single.then(|| {
            "only your own uid is mapped in kiln's user namespace: RUN steps that chown to other \
             ids will fail"
                .to_string()
        })
    });
    UserNamespace::Inside { uid_map, gid_map, warning }
}

/// How the child's ids get mapped.
enum MapPlan {
    /// `newuidmap`/`newgidmap` with these `inside outside count` triples.
    Helpers { uids: Vec<[u64; 3]>, gids: Vec<[u64; 3]> },
    /// Written directly by this process (`setgroups` denied first unless `keep_setgroups`).
    Direct { uids: Vec<[u64; 3]>, gids: Vec<[u64; 3]>, keep_setgroups: bool },
}

fn plan_maps() -> (MapPlan, Option<String>) {
    // SAFETY: plain system calls.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if uid == 0 {
        // Root without CAP_SYS_ADMIN (an unprivileged container): keep every id it has.
        let same = |file: &str| -> Vec<[u64; 3]> {
            parse_map(&std::fs::read_to_string(file).unwrap_or_default())
                .into_iter()
                .map(|[inside, _, count]| [inside, inside, count])
                .collect()
        };
        return (
            MapPlan::Direct {
                uids: same("/proc/self/uid_map"),
                gids: same("/proc/self/gid_map"),
                keep_setgroups: true,
            },
            None,
        );
    }
    let name = user_name(uid);
    let sub_uids = subordinate_ranges("/etc/subuid", name.as_deref(), uid);
    let sub_gids = subordinate_ranges("/etc/subgid", name.as_deref(), uid);
    let tools = find_in_path("newuidmap").is_some() && find_in_path("newgidmap").is_some();
    if !sub_uids.is_empty() && !sub_gids.is_empty() && tools {
        let stack = |own: u64, ranges: &[(u64, u64)]| {
            let mut out = vec![[0, own, 1]];
            let mut next = 1;
            for &(start, count) in ranges {
                out.push([next, start, count]);
                next += count;
            }
            out
        };
        return (
            MapPlan::Helpers {
                uids: stack(uid.into(), &sub_uids),
                gids: stack(gid.into(), &sub_gids),
            },
            None,
        );
    }
    let who = name.unwrap_or_else(|| uid.to_string());
    let why = if tools {
        format!("no subordinate ids for {who} in /etc/subuid and /etc/subgid")
    } else {
        "newuidmap/newgidmap are not installed (Debian package uidmap)".to_string()
    };
    let warning = format!(
        "{why}: kiln maps only your own uid and gid to root; RUN steps that chown to other ids \
         will fail (add a range, e.g. `usermod --add-subuids 100000-165535 --add-subgids \
         100000-165535 {who}`)"
    );
    (
        MapPlan::Direct {
            uids: vec![[0, uid.into(), 1]],
            gids: vec![[0, gid.into(), 1]],
            keep_setgroups: false,
        },
        Some(warning),
    )
}

/// `inside outside count` lines.
fn parse_map(text: &str) -> Vec<[u64; 3]> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<u64> = l.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            (f.len() == 3).then(|| [f[0], f[1], f[2]])
        })
        .collect()
}

/// The `start:count` ranges of `file` (`/etc/subuid` format) for the user `name` or `uid`.
pub(crate) fn subordinate_ranges(file: &str, name: Option<&str>, uid: u32) -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    parse_subordinate(&text, name, uid)
}

/// Parses `/etc/subuid`-format text.
pub(crate) fn parse_subordinate(text: &str, name: Option<&str>, uid: u32) -> Vec<(u64, u64)> {
    let uid_s = uid.to_string();
    text.lines()
        .filter_map(|line| {
            let mut f = line.trim().split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            if who != uid_s && Some(who) != name {
                return None;
            }
            let start = start.parse::<u64>().ok()?;
            let count = count.parse::<u64>().ok()?;
            (count > 0).then_some((start, count))
        })
        .collect()
}

/// The login name of `uid`.
fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 16384];
    // SAFETY: passwd is plain data; getpwuid_r fills it and points into buf.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result = std::ptr::null_mut();
    // SAFETY: valid pointers and buffer length.
    let r =
        unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut result) };
    if r != 0 || result.is_null() {
        return None;
    }
    // SAFETY: pw_name points to a NUL-terminated string inside buf.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    name.to_str().ok().map(str::to_string)
}

/// The original process: starts the child, maps its ids, waits for it and exits like it.
fn run_outer() -> ! {
    let fail = |msg: String| -> ! {
        eprintln!("kiln: entering a user namespace: {msg}");
        std::process::exit(1)
    };
    let (plan, warning) = plan_maps();
    let pipes = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .and_then(|a| Ok((a, rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)));
    let ((up_read, up_write), (down_read, down_write)) = match pipes {
        Ok(p) => p,
        Err(e) => fail(format!("pipe: {e}")),
    };
    let signals = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGCHLD];
    let set = sys::sigset(&signals);
    if let Err(e) = sys::block_signals(&set) {
        fail(format!("blocking signals: {e}"));
    }
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| OsString::from("kiln"));
    let mut command = Command::new("/proc/self/exe");
    command.arg0(arg0).args(args).env(CHILD_ENV, "1");
    let (up_fd, down_fd) = (up_write.as_raw_fd(), down_read.as_raw_fd());
    // SAFETY: only async-signal-safe calls (dup2, fcntl, prctl) in the child.
    unsafe {
        command.pre_exec(move || {
            // This thread blocked the signals it forwards; the child starts clean.
            sys::unblock_all_signals()?;
            move_fd(up_fd, TO_PARENT_FD)?;
            move_fd(down_fd, FROM_PARENT_FD)?;
            sys::set_parent_death_signal(libc::SIGKILL)
        });
    }
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => fail(format!("re-executing kiln: {e}")),
    };
    drop(up_write);
    drop(down_read);
    let pid = child.id();
    let mut up = std::fs::File::from(up_read);
    let mut first = [0u8; 1];
    let unshared = matches!(up.read(&mut first), Ok(1)) && first[0] == b'u';
    let mut down = std::fs::File::from(down_write);
    if unshared {
        let answer = match write_maps(pid, &plan) {
            Ok(()) => format!("o{}", warning.unwrap_or_default()),
            Err(e) => format!("e{e}"),
        };
        let _ = down.write_all(answer.as_bytes());
    }
    drop(down);
    let status = wait_forwarding(&mut child, &set);
    if let Some(sig) = status.signal() {
        sys::reset_signals();
        // SAFETY: plain system call; re-raises the child's fatal signal on ourselves.
        unsafe { libc::raise(sig) };
        std::process::exit(128 + sig);
    }
    std::process::exit(status.code().unwrap_or(1))
}

/// `dup2(from, to)`, clearing close-on-exec also when `from == to`.
fn move_fd(from: libc::c_int, to: libc::c_int) -> std::io::Result<()> {
    if from == to {
        // SAFETY: plain fcntl.
        sys::cvt(unsafe { libc::fcntl(to, libc::F_SETFD, 0) }).map(drop)
    } else {
        sys::dup2(from, to)
    }
}

fn write_maps(pid: u32, plan: &MapPlan) -> std::result::Result<(), String> {
    let lines =
        |m: &[[u64; 3]]| m.iter().map(|[a, b, c]| format!("{a} {b} {c}\n")).collect::<String>();
    match plan {
        MapPlan::Helpers { uids, gids } => {
            for (tool, map) in [("newuidmap", uids), ("newgidmap", gids)] {
                let args: Vec<String> =
                    map.iter().flat_map(|t| t.iter().map(u64::to_string)).collect();
                let out = Command::new(tool)
                    .arg(pid.to_string())
                    .args(&args)
                    .output()
                    .map_err(|e| format!("{tool}: {e}"))?;
                if !out.status.success() {
                    return Err(format!(
                        "{tool} {pid} {}: {}",
                        args.join(" "),
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
            }
            Ok(())
        }
        MapPlan::Direct { uids, gids, keep_setgroups } => {
            let write = |file: &str, text: String| {
                let path = format!("/proc/{pid}/{file}");
                std::fs::write(&path, text).map_err(|e| format!("writing {path}: {e}"))
            };
            if !keep_setgroups {
                write("setgroups", "deny".into())?;
            }
            write("uid_map", lines(uids))?;
            write("gid_map", lines(gids))
        }
    }
}

/// Waits for the child, passing on SIGTERM and SIGHUP, and SIGINT/SIGQUIT sent with `kill`
/// (a terminal's Ctrl-C reaches the child directly).
fn wait_forwarding(
    child: &mut std::process::Child,
    set: &libc::sigset_t,
) -> std::process::ExitStatus {
    let pid = child.id() as libc::pid_t;
    loop {
        // SAFETY: siginfo_t is plain data.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let ts = libc::timespec { tv_sec: 1, tv_nsec: 0 };
        // SAFETY: valid pointers.
        let sig = unsafe { libc::sigtimedwait(set, &mut info, &ts) };
        if sig > 0 && sig != libc::SIGCHLD {
            let from_kernel = info.si_code == libc::SI_KERNEL;
            if !(from_kernel && (sig == libc::SIGINT || sig == libc::SIGQUIT)) {
                let _ = sys::kill(pid, sig);
            }
        }
        match child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) => {}
            Err(_) => return std::process::ExitStatus::from_raw(1 << 8),
        }
    }
}

/// In the re-executed child, first thing in `main`: enters the namespace the parent maps.
pub(crate) fn child_enter_if_requested() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    // SAFETY: called first thing in main, before any other thread exists.
    unsafe { std::env::remove_var(CHILD_ENV) };
    // SAFETY: the parent handed us these descriptors.
    let to_parent: OwnedFd = unsafe { std::os::fd::FromRawFd::from_raw_fd(TO_PARENT_FD) };
    // SAFETY: as above.
    let from_parent: OwnedFd = unsafe { std::os::fd::FromRawFd::from_raw_fd(FROM_PARENT_FD) };
    let fail = |msg: String| -> ! {
        eprintln!("kiln: entering a user namespace: {msg}");
        sys::exit_now(1)
    };
    if let Err(e) = sys::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) {
        fail(format!("unshare: {e}"));
    }
    let mut to_parent = std::fs::File::from(to_parent);
    if let Err(e) = to_parent.write_all(b"u") {
        fail(format!("talking to the parent: {e}"));
    }
    drop(to_parent);
    let mut answer = String::new();
    let _ = std::fs::File::from(from_parent).read_to_string(&mut answer);
    match answer.strip_prefix('o') {
        Some(warning) => {
            let _ = WARNING.set((!warning.is_empty()).then(|| warning.to_string()));
        }
        None => fail(answer.strip_prefix('e').unwrap_or("the parent gave up").to_string()),
    }
    // Our uid now maps to root, and a new user namespace gives its creator every capability.
    if let Err(e) = sys::mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None) {
        fail(format!("making mounts private: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges_match_by_name_or_uid() {
        let text =
            "alice:100000:65536\n1001:200000:1000\nbob:300000:65536\nalice:500000:10\nbad:x:1\n";
        assert_eq!(parse_subordinate(text, Some("alice"), 1000), [(100000, 65536), (500000, 10)]);
        assert_eq!(parse_subordinate(text, Some("carol"), 1001), [(200000, 1000)]);
        assert_eq!(parse_subordinate(text, None, 4242), []);
        assert_eq!(parse_subordinate("bad:1:0\n", Some("bad"), 1), []);
    }

    #[test]
    fn id_maps_parse() {
        assert_eq!(
            parse_map("         0       1001          1\n         1     100000      65536\n"),
            [[0, 1001, 1], [1, 100000, 65536]]
        );
    }
}
