//! The RUN's pid 1 (a minimal init) and the command it starts.

use std::ffi::CString;
use std::io;
use std::path::Path;

use crate::sandbox::caps::{self, DOCKER_DEFAULT_CAPS};
use crate::sandbox::protocol::Report;
use crate::sandbox::spec::{DEFAULT_PATH, SandboxSpec};
use crate::sandbox::sys;

/// Signals pid 1 passes on to the command.
pub(crate) const FORWARDED: [libc::c_int; 6] =
    [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2];

/// The signal the helper sends pid 1 to end the run when pid 1 is not alone in a PID namespace
/// (chroot isolation): it then kills everything it started itself.
pub(crate) fn kill_tree_signal() -> libc::c_int {
    libc::SIGRTMIN() + 2
}

/// What the command needs, prepared before forking.
pub(crate) struct Command {
    argv: Vec<CString>,
    env: Vec<CString>,
    path: String,
    cwd: String,
    uid: u32,
    gid: u32,
    groups: Vec<libc::gid_t>,
    last_cap: u32,
    chroot: Option<CString>,
}

impl Command {
    /// Prepares `spec`'s command.
    pub(crate) fn new(spec: &SandboxSpec) -> io::Result<Command> {
        let argv =
            spec.argv.iter().map(|a| sys::cstr(a.as_bytes())).collect::<io::Result<Vec<_>>>()?;
        let env =
            spec.env.iter().map(|e| sys::cstr(e.as_bytes())).collect::<io::Result<Vec<_>>>()?;
        let path = spec
            .env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
            .to_string();
        Ok(Command {
            argv,
            env,
            path,
            cwd: spec.cwd.clone(),
            uid: spec.uid,
            gid: spec.gid,
            groups: spec.additional_gids.clone(),
            last_cap: caps::last_cap(),
            chroot: None,
        })
    }

    /// Makes the command `chroot` into `dir` first (chroot isolation).
    pub(crate) fn set_chroot(&mut self, dir: &Path) -> io::Result<()> {
        self.chroot = Some(sys::cpath(dir)?);
        Ok(())
    }

    /// In the forked child: switches ids and capabilities, enters the working directory and
    /// executes the command. Never returns: on failure it reports and exits 127.
    pub(crate) fn exec(&self, in_new_session: bool) -> ! {
        sys::reset_signals();
        if !in_new_session {
            // SAFETY: plain system call; makes the command its own process group.
            unsafe { libc::setpgid(0, 0) };
        }
        // SAFETY: plain system call.
        unsafe { libc::umask(0o022) };
        if let Err(e) = self.enter() {
            Report::SetupFailed(e).send();
            sys::exit_now(127);
        }
        let err = self.execvp();
        Report::ExecFailed(err).send();
        sys::exit_now(127)
    }

    fn enter(&self) -> Result<(), String> {
        if let Some(dir) = &self.chroot {
            sys::chroot(dir).map_err(|e| format!("chroot: {e}"))?;
            sys::chdir(c"/").map_err(|e| format!("chroot: {e}"))?;
        }
        // The working directory is created as root, like Docker's.
        let cwd = Path::new(&self.cwd);
        if !cwd.is_dir() {
            std::fs::create_dir_all(cwd)
                .map_err(|e| format!("creating working directory {}: {e}", self.cwd))?;
        }
        caps::drop_bounding_except(&DOCKER_DEFAULT_CAPS, self.last_cap)
            .map_err(|e| format!("dropping capabilities: {e}"))?;
        self.set_groups()?;
        // SAFETY: plain system calls.
        sys::cvt(unsafe { libc::setresgid(self.gid, self.gid, self.gid) })
            .map_err(|e| format!("setting group id {}: {e}", self.gid))?;
        // SAFETY: plain system call.
        sys::cvt(unsafe { libc::setresuid(self.uid, self.uid, self.uid) })
            .map_err(|e| format!("setting user id {}: {e}", self.uid))?;
        let keep: &[u32] = if self.uid == 0 { &DOCKER_DEFAULT_CAPS } else { &[] };
        caps::set_exact(keep).map_err(|e| format!("setting capabilities: {e}"))?;
        let c = sys::cstr(self.cwd.as_bytes()).map_err(|e| e.to_string())?;
        sys::chdir(&c).map_err(|e| format!("entering working directory {}: {e}", self.cwd))?;
        Ok(())
    }

    fn set_groups(&self) -> Result<(), String> {
        // SAFETY: pointer and length of a valid slice.
        let r = unsafe { libc::setgroups(self.groups.len(), self.groups.as_ptr()) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        // A user namespace with a single-id map denies setgroups; with no extra groups asked
        // for, keeping the (unmapped) inherited ones is all that can be done.
        if self.groups.is_empty() && e.raw_os_error() == Some(libc::EPERM) {
            return Ok(());
        }
        Err(format!("setting supplementary groups {:?}: {e}", self.groups))
    }

    /// `execvpe` with the container's `PATH`; returns the error message if nothing ran.
    fn execvp(&self) -> String {
        let Some(arg0) = self.argv.first() else {
            return "exec: empty command".to_string();
        };
        let name = String::from_utf8_lossy(arg0.as_bytes()).into_owned();
        let mut argv: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = self.env.iter().map(|a| a.as_ptr()).collect();
        envp.push(std::ptr::null());
        let try_exec = |path: &CString| -> io::Error {
            // SAFETY: NUL-terminated strings and NULL-terminated arrays that outlive the call.
            unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            io::Error::last_os_error()
        };
        if name.contains('/') {
            let e = try_exec(arg0);
            return format!("exec: {name:?}: {e}");
        }
        let mut denied = None;
        for dir in self.path.split(':') {
            let dir = if dir.is_empty() { "." } else { dir };
            let Ok(candidate) = sys::cstr(format!("{dir}/{name}").as_bytes()) else { continue };
            let e = try_exec(&candidate);
            match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENOTDIR) => {}
                Some(libc::EACCES) => denied = Some(e),
                _ => return format!("exec: {name:?}: {e}"),
            }
        }
        match denied {
            Some(e) => format!("exec: {name:?}: {e}"),
            None => format!("exec: {name:?}: executable file not found in $PATH"),
        }
    }
}

/// Runs as pid 1 (or as the chroot's reaper): starts `cmd`, forwards signals to it, reaps every
/// child, and reports the command's exit. With `alone_in_pidns` false, it also kills whatever
/// the command left behind. Never returns.
pub(crate) fn init(cmd: &Command, alone_in_pidns: bool) -> ! {
    let mut watched: Vec<libc::c_int> = FORWARDED.to_vec();
    watched.push(libc::SIGCHLD);
    watched.push(kill_tree_signal());
    let set = sys::sigset(&watched);
    if let Err(e) = sys::block_signals(&set) {
        Report::SetupFailed(format!("blocking signals: {e}")).send();
        sys::exit_now(1);
    }
    if !alone_in_pidns {
        let _ = sys::set_child_subreaper();
    }
    // SAFETY: this process is single-threaded.
    let child = match unsafe { sys::fork() } {
        Ok(0) => cmd.exec(false),
        Ok(pid) => pid,
        Err(e) => {
            Report::SetupFailed(format!("starting the command: {e}")).send();
            sys::exit_now(1);
        }
    };
    let mut status = None;
    while status.is_none() {
        match sys::sigtimedwait(&set, 1000) {
            Ok(Some(libc::SIGCHLD)) | Ok(None) => {}
            Ok(Some(sig)) if sig == kill_tree_signal() => {
                kill_all(child);
                sys::exit_now(1);
            }
            Ok(Some(sig)) => {
                let _ = sys::kill(child, sig);
            }
            Err(_) => {}
        }
        while let Ok(Some((pid, st))) = sys::waitpid(-1, libc::WNOHANG) {
            if pid == child {
                status = Some(sys::decode_status(st));
            }
        }
    }
    if !alone_in_pidns {
        kill_all(child);
    }
    if let Some(status) = status {
        Report::Exit(status).send();
    }
    // As pid 1, exiting makes the kernel kill everything else in the namespace.
    sys::exit_now(0)
}

/// Kills the command's process group and every remaining child (orphans come to this
/// subreaper), until none is left.
fn kill_all(child: libc::pid_t) {
    let _ = sys::kill(-child, libc::SIGKILL);
    let _ = sys::kill(child, libc::SIGKILL);
    let me = sys::getpid();
    loop {
        for pid in children_of(me) {
            let _ = sys::kill(pid, libc::SIGKILL);
        }
        match sys::waitpid(-1, 0) {
            Ok(Some(_)) => {}
            _ => break,
        }
    }
}

/// Processes whose parent is `parent` (from `/proc/*/stat`).
fn children_of(parent: libc::pid_t) -> Vec<libc::pid_t> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for ent in dir.flatten() {
        let Some(pid) = ent.file_name().to_str().and_then(|s| s.parse::<libc::pid_t>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // The fields after the command name (which may hold spaces) start after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let ppid = rest.split_whitespace().nth(1).and_then(|s| s.parse::<libc::pid_t>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}
