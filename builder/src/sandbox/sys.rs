//! Thin wrappers over the raw Linux calls the sandbox needs (errno → `io::Error`).
//!
//! Everything here is a direct system call without allocation, usable in a process that was
//! just forked from the single-threaded sandbox helper.

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `ret == -1` → the current errno.
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// `ret == -1` → the current errno (for `syscall` results).
pub(crate) fn cvt_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// A path as a C string (an interior NUL is an `InvalidInput` error).
pub(crate) fn cpath(path: &Path) -> io::Result<CString> {
    cstr(path.as_os_str().as_bytes())
}

/// Bytes as a C string (an interior NUL is an `InvalidInput` error).
pub(crate) fn cstr(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in string"))
}

/// `fork(2)`.
///
/// # Safety
/// The calling process must be single-threaded (the sandbox helper is), so the child may
/// allocate and run ordinary code.
pub(crate) unsafe fn fork() -> io::Result<libc::pid_t> {
    // SAFETY: the caller guarantees a single-threaded process.
    cvt(unsafe { libc::fork() })
}

/// `unshare(2)`.
pub(crate) fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: plain system call.
    cvt(unsafe { libc::unshare(flags) }).map(drop)
}

/// `mount(2)`.
pub(crate) fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> io::Result<()> {
    let p = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: all pointers are NUL-terminated strings or null.
    cvt(unsafe {
        libc::mount(p(source), target.as_ptr(), p(fstype), flags, p(data).cast::<libc::c_void>())
    })
    .map(drop)
}

/// `umount2(2)`.
pub(crate) fn umount2(target: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: NUL-terminated string.
    cvt(unsafe { libc::umount2(target.as_ptr(), flags) }).map(drop)
}

/// `pivot_root(2)`.
pub(crate) fn pivot_root(new_root: &CStr, put_old: &CStr) -> io::Result<()> {
    // SAFETY: NUL-terminated strings.
    cvt_long(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) })
        .map(drop)
}

/// `chdir(2)`.
pub(crate) fn chdir(path: &CStr) -> io::Result<()> {
    // SAFETY: NUL-terminated string.
    cvt(unsafe { libc::chdir(path.as_ptr()) }).map(drop)
}

/// `fchdir(2)`.
pub(crate) fn fchdir(fd: libc::c_int) -> io::Result<()> {
    // SAFETY: plain system call.
    cvt(unsafe { libc::fchdir(fd) }).map(drop)
}

/// `chroot(2)`.
pub(crate) fn chroot(path: &CStr) -> io::Result<()> {
    // SAFETY: NUL-terminated string.
    cvt(unsafe { libc::chroot(path.as_ptr()) }).map(drop)
}

/// `sethostname(2)`.
pub(crate) fn sethostname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length of a valid buffer.
    cvt(unsafe { libc::sethostname(name.as_ptr().cast::<libc::c_char>(), name.len()) }).map(drop)
}

/// Asks for `signal` when the parent dies.
pub(crate) fn set_parent_death_signal(signal: libc::c_int) -> io::Result<()> {
    // SAFETY: plain prctl.
    cvt(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) }).map(drop)
}

/// Makes this process the reaper of its orphaned descendants.
pub(crate) fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: plain prctl.
    cvt(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) }).map(drop)
}

/// `kill(2)`.
pub(crate) fn kill(pid: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: plain system call.
    cvt(unsafe { libc::kill(pid, signal) }).map(drop)
}

/// `waitpid(2)`, retried on `EINTR`; `Ok(None)` with `WNOHANG` and nothing to reap.
pub(crate) fn waitpid(
    pid: libc::pid_t,
    flags: libc::c_int,
) -> io::Result<Option<(libc::pid_t, libc::c_int)>> {
    loop {
        let mut status = 0;
        // SAFETY: valid pointer to a c_int.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r == -1 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(if r == 0 { None } else { Some((r, status)) });
    }
}

/// A signal set holding `signals`.
pub(crate) fn sigset(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer.
    unsafe { libc::sigemptyset(&mut set) };
    for &s in signals {
        // SAFETY: valid pointer.
        unsafe { libc::sigaddset(&mut set, s) };
    }
    set
}

/// Blocks `signals` in the calling thread.
pub(crate) fn block_signals(set: &libc::sigset_t) -> io::Result<()> {
    // SAFETY: valid pointers.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, set, std::ptr::null_mut()) };
    if r != 0 { Err(io::Error::from_raw_os_error(r)) } else { Ok(()) }
}

/// Unblocks every signal (async-signal-safe; for `pre_exec`: a spawned child inherits the
/// parent thread's mask).
pub(crate) fn unblock_all_signals() -> io::Result<()> {
    let empty = sigset(&[]);
    // SAFETY: valid pointers.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) };
    if r != 0 { Err(io::Error::from_raw_os_error(r)) } else { Ok(()) }
}

/// Unblocks every signal and restores the default action of all of them (before `execve`).
pub(crate) fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: restoring the default disposition is always valid.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    let empty = sigset(&[]);
    // SAFETY: valid pointers.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) };
}

/// Waits for one of the (blocked) signals in `set`, with a timeout; `Ok(None)` on timeout.
pub(crate) fn sigtimedwait(
    set: &libc::sigset_t,
    timeout_ms: u64,
) -> io::Result<Option<libc::c_int>> {
    let ts = libc::timespec {
        tv_sec: (timeout_ms / 1000) as libc::time_t,
        tv_nsec: ((timeout_ms % 1000) * 1_000_000) as libc::c_long,
    };
    // SAFETY: valid pointers; the info struct is optional.
    let r = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    if r == -1 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(r))
}

/// Writes all of `buf` to `fd` (retrying on `EINTR` and short writes).
pub(crate) fn write_all(fd: libc::c_int, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: valid buffer.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast::<libc::c_void>(), buf.len()) };
        if n == -1 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// `dup2(2)`.
pub(crate) fn dup2(old: libc::c_int, new: libc::c_int) -> io::Result<()> {
    // SAFETY: plain system call.
    cvt(unsafe { libc::dup2(old, new) }).map(drop)
}

/// `close(2)`, errors ignored.
pub(crate) fn close(fd: libc::c_int) {
    // SAFETY: the caller owns fd.
    unsafe { libc::close(fd) };
}

/// `_exit(2)`: leaves at once, without running destructors or flushing stdio.
pub(crate) fn exit_now(code: libc::c_int) -> ! {
    // SAFETY: always valid.
    unsafe { libc::_exit(code) }
}

/// `getpid(2)`.
pub(crate) fn getpid() -> libc::pid_t {
    // SAFETY: always valid.
    unsafe { libc::getpid() }
}

/// `getppid(2)`.
pub(crate) fn getppid() -> libc::pid_t {
    // SAFETY: always valid.
    unsafe { libc::getppid() }
}

/// `setsid(2)`, errors ignored (fails only for a process group leader).
pub(crate) fn setsid() {
    // SAFETY: always valid.
    unsafe { libc::setsid() };
}

/// Opens `/dev/null` onto fd `target`.
pub(crate) fn null_onto(target: libc::c_int) -> io::Result<()> {
    // SAFETY: NUL-terminated literal.
    let fd = cvt(unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })?;
    if fd != target {
        dup2(fd, target)?;
        close(fd);
    }
    Ok(())
}

/// The `waitpid` status as an exit code or signal.
pub(crate) fn decode_status(status: libc::c_int) -> super::ExitStatus {
    if libc::WIFSIGNALED(status) {
        super::ExitStatus::Signal(libc::WTERMSIG(status))
    } else {
        super::ExitStatus::Code(libc::WEXITSTATUS(status))
    }
}
