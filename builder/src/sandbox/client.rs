//! The caller's side of one RUN: starts the helper process, feeds it the request, turns the
//! command's output into lines, and cancels.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};

use super::cancel::CancelToken;
use super::error::{Result, SandboxError};
use super::protocol::{HELPER_ARG, HelperRequest, REPORT_FD, Report};
use super::spec::{ExitStatus, RootfsDriver, Stream};
use super::sys;

/// A line longer than this is passed on in pieces.
const MAX_LINE: usize = 64 * 1024;
/// How long the helper gets to tear down after a cancel before it is killed.
const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// How a helper run ended.
pub(crate) enum Ended {
    /// The command ran and ended so.
    Exited { status: ExitStatus, rootfs: RootfsDriver },
    /// No overlay could be mounted (only with the `Auto` driver).
    NoOverlay(String),
}

/// Starts the helper for `request`, streams output to `on_output` until everything is gone.
pub(crate) fn run_helper(
    request: &HelperRequest,
    on_output: &mut dyn FnMut(Stream, &str),
    cancel: &CancelToken,
) -> Result<Ended> {
    let helper_err = |what: &str, e: io::Error| SandboxError::Helper(format!("{what}: {e}"));
    let pipe =
        || rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(io::Error::from);
    let (out_r, out_w) = pipe().map_err(|e| helper_err("pipe", e))?;
    let (err_r, err_w) = pipe().map_err(|e| helper_err("pipe", e))?;
    let (rep_r, rep_w) = pipe().map_err(|e| helper_err("pipe", e))?;
    let rep_fd = rep_w.as_raw_fd();
    let mut command = Command::new("/proc/self/exe");
    command
        .arg(HELPER_ARG)
        .stdin(Stdio::piped())
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w));
    // SAFETY: only async-signal-safe calls (dup2, fcntl, prctl) in the child.
    unsafe {
        command.pre_exec(move || {
            sys::unblock_all_signals()?;
            if rep_fd == REPORT_FD {
                sys::cvt(libc::fcntl(REPORT_FD, libc::F_SETFD, 0))?;
            } else {
                sys::dup2(rep_fd, REPORT_FD)?;
            }
            sys::set_parent_death_signal(libc::SIGKILL)
        });
    }
    let mut child = command.spawn().map_err(|e| helper_err("starting /proc/self/exe", e))?;
    // Our copies of the write ends must go, or the pipes never reach end-of-file.
    drop(command);
    drop(rep_w);
    let json = serde_json::to_vec(request)
        .map_err(|e| SandboxError::Helper(format!("encoding the request: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that died early shows up below through its exit and reports.
        let _ = stdin.write_all(&json);
    }
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_child(&child),
        rustix::process::PidfdFlags::empty(),
    )
    .map_err(|e| helper_err("pidfd_open", e.into()))?;

    let mut streams = [
        Reader::new(out_r, Some(Stream::Stdout)),
        Reader::new(err_r, Some(Stream::Stderr)),
        Reader::new(rep_r, None),
    ];
    let mut reports = Vec::new();
    let mut exited_at: Option<Instant> = None;
    let mut cancelled_at: Option<Instant> = None;
    loop {
        if cancel.is_cancelled() && cancelled_at.is_none() {
            cancelled_at = Some(Instant::now());
            let _ = sys::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        if let Some(t) = cancelled_at
            && t.elapsed() > CANCEL_GRACE
        {
            let _ = child.kill();
        }
        let open: Vec<usize> = (0..streams.len()).filter(|&i| !streams[i].eof).collect();
        if open.is_empty() && exited_at.is_some() {
            break;
        }
        // After the helper is gone, stragglers holding a pipe get a short grace.
        if let Some(t) = exited_at
            && t.elapsed() > Duration::from_millis(500)
        {
            break;
        }
        let mut fds: Vec<PollFd<'_>> =
            open.iter().map(|&i| PollFd::new(&streams[i].fd, PollFlags::IN)).collect();
        if exited_at.is_none() {
            fds.push(PollFd::new(&pidfd, PollFlags::IN));
        }
        let timeout = Timespec { tv_sec: 0, tv_nsec: 50_000_000 };
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(helper_err("poll", e.into())),
        }
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        drop(fds);
        for (k, &i) in open.iter().enumerate() {
            if ready[k] {
                streams[i].read_some(on_output, &mut reports);
            }
        }
        if exited_at.is_none() && ready.get(open.len()).copied().unwrap_or(false) {
            exited_at = Some(Instant::now());
        }
    }
    for s in &mut streams {
        s.finish(on_output, &mut reports);
    }
    let status = child.wait().map_err(|e| helper_err("waiting for the helper", e))?;
    if cancel.is_cancelled() {
        return Err(SandboxError::Cancelled);
    }
    let mut rootfs = RootfsDriver::Auto;
    let mut setup_error = None;
    for report in reports {
        match report {
            Report::Rootfs(d) => rootfs = d,
            Report::NoOverlay(msg) => return Ok(Ended::NoOverlay(msg)),
            Report::SetupFailed(msg) => setup_error = Some(SandboxError::Setup(msg)),
            Report::ExecFailed(msg) => setup_error = Some(SandboxError::Exec(msg)),
            Report::Exit(status) => {
                if setup_error.is_none() {
                    return Ok(Ended::Exited { status, rootfs });
                }
            }
        }
    }
    Err(setup_error.unwrap_or_else(|| {
        SandboxError::Helper(format!("ended ({status}) without reporting the command's exit"))
    }))
}

/// One pipe being read: output lines go to the callback, report lines are decoded.
struct Reader {
    fd: OwnedFd,
    stream: Option<Stream>,
    buf: Vec<u8>,
    eof: bool,
}

impl Reader {
    fn new(fd: OwnedFd, stream: Option<Stream>) -> Self {
        Reader { fd, stream, buf: Vec::new(), eof: false }
    }

    fn read_some(&mut self, on_output: &mut dyn FnMut(Stream, &str), reports: &mut Vec<Report>) {
        let mut chunk = [0u8; 16384];
        let mut file = FdReader(self.fd.as_fd());
        match file.read(&mut chunk) {
            Ok(0) => self.eof = true,
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => self.eof = true,
        }
        self.emit_lines(on_output, reports, false);
    }

    fn finish(&mut self, on_output: &mut dyn FnMut(Stream, &str), reports: &mut Vec<Report>) {
        self.emit_lines(on_output, reports, true);
    }

    fn emit_lines(
        &mut self,
        on_output: &mut dyn FnMut(Stream, &str),
        reports: &mut Vec<Report>,
        all: bool,
    ) {
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            self.emit(start, end, on_output, reports);
            start = end + 1;
        }
        if self.buf.len() - start >= MAX_LINE || (all && start < self.buf.len()) {
            let end = self.buf.len();
            self.emit(start, end, on_output, reports);
            start = end;
        }
        self.buf.drain(..start);
    }

    fn emit(
        &self,
        start: usize,
        end: usize,
        on_output: &mut dyn FnMut(Stream, &str),
        reports: &mut Vec<Report>,
    ) {
        let line = &self.buf[start..end];
        match self.stream {
            Some(stream) => on_output(stream, &String::from_utf8_lossy(line)),
            None => {
                if let Ok(report) = serde_json::from_slice::<Report>(line) {
                    reports.push(report);
                }
            }
        }
    }
}

/// `read(2)` on a borrowed descriptor.
struct FdReader<'a>(std::os::fd::BorrowedFd<'a>);

impl Read for FdReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        rustix::io::read(self.0, buf).map_err(io::Error::from)
    }
}
