//! [`CancelToken`]: stops a running sandbox from another thread or from a signal.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A shared cancel flag. Cloning gives another handle to the same flag. A [`super::run`] that
/// sees it set kills the RUN's whole process tree, waits for it to be gone, removes its
/// temporary directories and returns [`super::SandboxError::Cancelled`].
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    flag: Arc<AtomicBool>,
}

impl CancelToken {
    /// A token not cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every run watching this token.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    /// True once [`CancelToken::cancel`] was called (or a registered signal arrived).
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// The flag itself, for signal handlers that act on it (e.g. exit on a second signal).
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.flag)
    }

    /// Cancels this token when the process receives one of `signals` (for example `SIGINT`
    /// and `SIGTERM`), instead of the signal's default action.
    pub fn cancel_on_signals(&self, signals: &[i32]) -> io::Result<()> {
        for &signal in signals {
            signal_hook::flag::register(signal, Arc::clone(&self.flag))?;
        }
        Ok(())
    }
}
