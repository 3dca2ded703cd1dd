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
    /// Bytes done of a long piece of work: a pull, a push, context hashing, layer compression.
    Progress(Progress),
    /// An output was written (`--output`).
    OutputWritten {
        /// What and where, e.g. `oci layout /tmp/out`.
        description: String,
    },
}

/// What kind of work a [`Progress`] event measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// A blob coming from a registry.
    Pull,
    /// A blob going to a registry.
    Push,
    /// Build-context files read to compute a cache key.
    Hash,
    /// A layer being compressed (or recompressed) for an output or a push.
    Compress,
}

impl Task {
    /// The word used in progress displays and JSON (`pull`, `push`, `hash`, `compress`).
    pub fn name(self) -> &'static str {
        match self {
            Task::Pull => "pull",
            Task::Push => "push",
            Task::Hash => "hash",
            Task::Compress => "compress",
        }
    }
}

/// Where a piece of work stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgressState {
    /// Under way (the first report of an item says it started).
    Running,
    /// Finished: `current` is the number of bytes in all.
    Done,
    /// Nothing to do, and why (`already exists`, `mounted from REPO`).
    Skipped(String),
}

/// Bytes done of one item of work (reports are thinned out: about one per MiB).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The step it belongs to; `None` for work outside steps (pulling a `FROM` image while
    /// the Dockerfile is resolved, compressing and pushing after the build).
    pub vertex: Option<usize>,
    /// What kind of work.
    pub task: Task,
    /// The item: a blob digest (`sha256:...`) or, for hashing, the source (`context`).
    pub id: String,
    /// Bytes done.
    pub current: u64,
    /// Bytes in all (0 when not known).
    pub total: u64,
    /// Where it stands.
    pub state: ProgressState,
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

/// Registry transfer reports as build events: byte progress as [`Event::Progress`], retries
/// as warnings.
pub struct TransferEvents<'a> {
    events: &'a dyn EventSink,
}

impl<'a> TransferEvents<'a> {
    /// Forwards registry progress to `events`.
    pub fn new(events: &'a dyn EventSink) -> Self {
        TransferEvents { events }
    }
}

impl crate::registry::ProgressSink for TransferEvents<'_> {
    fn progress(&self, p: &crate::registry::Progress) {
        use crate::registry::{Direction, ProgressStatus};
        let task = match p.direction {
            Direction::Pull => Task::Pull,
            Direction::Push => Task::Push,
        };
        let state = match &p.status {
            ProgressStatus::Started | ProgressStatus::Transferring => ProgressState::Running,
            ProgressStatus::Done => ProgressState::Done,
            ProgressStatus::AlreadyPresent => ProgressState::Skipped("already exists".into()),
            ProgressStatus::Mounted { from } => {
                ProgressState::Skipped(format!("mounted from {from}"))
            }
            ProgressStatus::Retrying { attempt, reason } => {
                self.events.emit(Event::Warning(format!(
                    "{} {}: retrying (attempt {attempt}): {reason}",
                    task.name(),
                    p.digest
                )));
                return;
            }
        };
        self.events.emit(Event::Progress(Progress {
            vertex: None,
            task,
            id: p.digest.to_string(),
            current: p.current,
            total: p.total,
            state,
        }));
    }
}
