//! What the caller and the sandbox helper process tell each other.
//!
//! The caller starts the helper as `/proc/self/exe __kiln-sandbox` and writes one JSON
//! [`HelperRequest`] to its standard input. The helper's standard output and error are the
//! command's; it sends [`Report`]s, one JSON object per line, on [`REPORT_FD`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::spec::{ExitStatus, Isolation, RootfsDriver, SandboxSpec};
use super::sys;

/// `argv[1]` that makes a kiln process the sandbox helper for one RUN.
pub(crate) const HELPER_ARG: &str = "__kiln-sandbox";
/// `argv[1]` that makes a kiln process report what this machine allows, then exit.
pub(crate) const PROBE_ARG: &str = "__kiln-sandbox-probe";
/// The helper's file descriptor for reports.
pub(crate) const REPORT_FD: libc::c_int = 3;

/// Directories of one run, all inside the spec's scratch directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Layout {
    /// The overlay upper directory (the diff).
    pub upper: PathBuf,
    /// The overlay work directory.
    pub work: PathBuf,
    /// The mount point of the root file system, or the copied root file system.
    pub rootfs: PathBuf,
    /// The top lower layer holding mount-point stubs.
    pub stubs: PathBuf,
    /// Files bind-mounted over `/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`.
    pub etc: PathBuf,
    /// An empty `0700` directory on which the helper mounts a tmpfs, in its own mount
    /// namespace only, for secrets and the top layers of filtered views.
    pub private: PathBuf,
}

/// What the helper is asked to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HelperRequest {
    /// The RUN.
    pub spec: SandboxSpec,
    /// The isolation mode, resolved (never `Auto`).
    pub isolation: Isolation,
    /// The root file system driver: `Auto` means kernel overlay, else fuse-overlayfs.
    pub rootfs: RootfsDriver,
    /// Where things are.
    pub layout: Layout,
    /// Whether device nodes can be created (else host nodes are bind-mounted).
    pub can_mknod: bool,
}

/// A message from the helper (or the processes it starts) to the caller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Report {
    /// The root file system is mounted with this driver.
    Rootfs(RootfsDriver),
    /// No overlay could be mounted (the caller falls back to the copy driver).
    NoOverlay(String),
    /// Namespaces, mounts or ids could not be set up.
    SetupFailed(String),
    /// The command could not be executed.
    ExecFailed(String),
    /// The command ended.
    Exit(ExitStatus),
}

impl Report {
    /// Sends this report on [`REPORT_FD`] in one write (errors ignored: the caller is gone).
    pub(crate) fn send(&self) {
        // Keep every report below PIPE_BUF so it arrives in one piece.
        let short = |m: &String| {
            let mut end = m.len().min(3000);
            while !m.is_char_boundary(end) {
                end -= 1;
            }
            m[..end].to_string()
        };
        let report = match self {
            Report::NoOverlay(m) => Report::NoOverlay(short(m)),
            Report::SetupFailed(m) => Report::SetupFailed(short(m)),
            Report::ExecFailed(m) => Report::ExecFailed(short(m)),
            other => other.clone(),
        };
        if let Ok(mut line) = serde_json::to_vec(&report) {
            line.push(b'\n');
            let _ = sys::write_all(REPORT_FD, &line);
        }
    }
}
