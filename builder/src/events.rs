//! Structured build events. The builder never prints; the CLI renders these.

use std::time::Duration;

/// Something that happened during a build.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A step started. `vertex` numbers steps in the order they start, from 1.
    StepStarted {
        /// Step number in this build.
        vertex: usize,
        /// Stage label as BuildKit prints it (`stage-0`, or the stage name).
        stage: String,
        /// 1-based step index within the stage (the `FROM` is step 1).
        index: usize,
        /// Number of steps in the stage, `FROM` included.
        total: usize,
        /// The instruction (`COPY app /app`).
        text: String,
    },
    /// A step finished.
    StepDone {
        /// Step number.
        vertex: usize,
        /// How long it took.
        duration: Duration,
        /// The result came from the cache.
        cached: bool,
    },
    /// A line of output or information about a step.
    StepLog {
        /// Step number.
        vertex: usize,
        /// The text, without a trailing newline.
        line: String,
    },
    /// Something the user should know that does not stop the build.
    Warning(String),
    /// Information about how the build runs (isolation chosen, fallbacks), shown once.
    Notice(String),
    /// The image was written.
    ImageWritten {
        /// Manifest digest.
        manifest_digest: String,
        /// Config digest (the image id).
        config_digest: String,
        /// Tags given with `-t`.
        names: Vec<String>,
    },
    /// An output was written (`--output`).
    OutputWritten {
        /// What and where, e.g. `oci layout /tmp/out`.
        description: String,
    },
}

/// Receives build events. Implemented by the CLI's renderers; `()` discards them.
pub trait EventSink: Sync {
    /// Handles one event.
    fn emit(&self, event: Event);
}

impl EventSink for () {
    fn emit(&self, _event: Event) {}
}

impl<F: Fn(Event) + Sync> EventSink for F {
    fn emit(&self, event: Event) {
        self(event)
    }
}
