//! Per-blob progress of pulls and pushes, reported through a [`ProgressSink`].

use kiln_cache::digest::Digest;

/// Which way bytes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From a registry into the store.
    Pull,
    /// From the store to a registry.
    Push,
}

/// What a blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    /// An image config.
    Config,
    /// A layer.
    Layer,
}

/// What is happening to a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgressStatus {
    /// The transfer starts.
    Started,
    /// Bytes moved (`current` of `total`); sent at most about once per MiB.
    Transferring,
    /// A try failed and another one follows.
    Retrying {
        /// The try that comes next (2 for the first retry).
        attempt: u32,
        /// What went wrong.
        reason: String,
    },
    /// Nothing to move: the store (pull) or the registry (push) has it already.
    AlreadyPresent,
    /// Pushed by mounting it from another repository of the same registry.
    Mounted {
        /// The repository it was mounted from.
        from: String,
    },
    /// Done and verified.
    Done,
}

/// One progress report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Pull or push.
    pub direction: Direction,
    /// The blob.
    pub digest: Digest,
    /// Config or layer.
    pub kind: BlobKind,
    /// Bytes moved so far.
    pub current: u64,
    /// The blob's size.
    pub total: u64,
    /// What happened.
    pub status: ProgressStatus,
}

/// Receives progress reports (from several threads; keep it quick).
pub trait ProgressSink: Sync {
    /// Handles one report.
    fn progress(&self, p: &Progress);
}

impl ProgressSink for () {
    fn progress(&self, _p: &Progress) {}
}

impl<F: Fn(&Progress) + Sync> ProgressSink for F {
    fn progress(&self, p: &Progress) {
        self(p)
    }
}

/// Reports for one blob, with byte updates thinned out.
pub(crate) struct BlobProgress<'a> {
    sink: &'a dyn ProgressSink,
    direction: Direction,
    digest: Digest,
    kind: BlobKind,
    total: u64,
    last: std::sync::atomic::AtomicU64,
}

/// Bytes between two `Transferring` reports.
const STEP: u64 = 1 << 20;

impl<'a> BlobProgress<'a> {
    pub(crate) fn new(
        sink: &'a dyn ProgressSink,
        direction: Direction,
        digest: &Digest,
        kind: BlobKind,
        total: u64,
    ) -> Self {
        BlobProgress {
            sink,
            direction,
            digest: digest.clone(),
            kind,
            total,
            last: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(crate) fn report(&self, current: u64, status: ProgressStatus) {
        self.sink.progress(&Progress {
            direction: self.direction,
            digest: self.digest.clone(),
            kind: self.kind,
            current,
            total: self.total,
            status,
        });
    }

    /// A byte count update, reported when it moved by a step or reached the end.
    pub(crate) fn bytes(&self, current: u64) {
        use std::sync::atomic::Ordering;
        let last = self.last.load(Ordering::Relaxed);
        if current >= last + STEP || (current == self.total && current != last) {
            self.last.store(current, Ordering::Relaxed);
            self.report(current, ProgressStatus::Transferring);
        }
    }

    /// Starting over from `current` (a resumed or restarted transfer).
    pub(crate) fn rewind(&self, current: u64) {
        self.last.store(current, std::sync::atomic::Ordering::Relaxed);
    }
}
