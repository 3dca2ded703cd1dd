//! [`SandboxError`]: why a RUN sandbox could not run its command.

use std::io;
use std::path::PathBuf;

/// Why a RUN could not be run (a command that ran and failed is not an error: see
/// [`super::ExitStatus`]).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The spec is not usable.
    #[error("invalid sandbox spec: {0}")]
    InvalidSpec(String),
    /// The requested isolation mode is not available here.
    #[error("isolation {mode}: {reason}")]
    Isolation {
        /// The mode asked for.
        mode: super::Isolation,
        /// Why it cannot be used.
        reason: String,
    },
    /// A feature this isolation mode cannot provide.
    #[error("{0}")]
    Unsupported(String),
    /// A file system operation of the sandbox failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Setting up the sandbox (namespaces, mounts, ids) failed.
    #[error("sandbox setup: {0}")]
    Setup(String),
    /// The command could not be started (not found, not executable, ...).
    #[error("{0}")]
    Exec(String),
    /// The sandbox helper process failed.
    #[error("sandbox helper: {0}")]
    Helper(String),
    /// The RUN was cancelled; its processes were killed.
    #[error("cancelled")]
    Cancelled,
    /// Reading a snapshot or writing the diff failed.
    #[error(transparent)]
    Store(#[from] kiln_cache::Error),
}

impl SandboxError {
    /// An [`SandboxError::Io`].
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        SandboxError::Io { what, path: path.into(), source }
    }
}

/// `Result<T, SandboxError>`.
pub type Result<T, E = SandboxError> = std::result::Result<T, E>;

/// Adds a [`SandboxError::Io`] context to `io::Result`s.
pub(crate) trait IoContext<T> {
    fn ctx(self, what: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, what: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| SandboxError::io(what, path, e))
    }
}
