//! The one error type of kiln-cache. Every I/O error carries the path it happened on.

use std::io;
use std::path::{Path, PathBuf};

use crate::digest::Digest;

/// Everything that can go wrong in kiln-cache.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed on `path`.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done ("open", "rename", ...).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Reading or writing a stream (a layer, an archive) failed.
    #[error("{what}: {source}")]
    Stream {
        /// What the stream is ("layer tar", "gzip stream", ...).
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A string is not a valid `sha256:<64 lowercase hex>` digest.
    #[error("invalid digest {input:?}: {reason}")]
    InvalidDigest {
        /// The text that failed to parse.
        input: String,
        /// Why it failed.
        reason: &'static str,
    },
    /// Content hashed to another digest than expected.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was checked (a blob path, "layer diff_id", ...).
        what: String,
        /// The digest that was asked for.
        expected: Digest,
        /// The digest of the bytes actually seen.
        actual: Digest,
    },
    /// Content had another size than expected.
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// What was checked.
        what: String,
        /// Expected size in bytes.
        expected: u64,
        /// Size actually seen.
        actual: u64,
    },
    /// The blob store does not hold this digest.
    #[error("blob {0} not found")]
    BlobNotFound(Digest),
    /// A layer entry (given to the writer, or read from a tar) is not acceptable.
    #[error("layer entry {path:?}: {reason}")]
    InvalidEntry {
        /// The entry's path as given or as read.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A layer media type kiln cannot read or write.
    #[error("unsupported layer media type {0:?}")]
    UnsupportedMediaType(String),
    /// A JSON document could not be read or written.
    #[error("{what}: invalid JSON: {source}")]
    Json {
        /// The file or document ("index.json at /x", "manifest sha256:...").
        what: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The kiln root belongs to another user, and this one may not write (or read) it.
    #[error(
        "kiln root {} belongs to {owner}, not to the user kiln runs as: use a root of your own \
         (--root or KILN_ROOT) or run kiln as its owner",
        root.display()
    )]
    RootNotYours {
        /// The kiln root.
        root: PathBuf,
        /// Who owns it (`uid N`, or `another user` when not mapped into kiln's user namespace).
        owner: String,
        /// The permission error that revealed it.
        #[source]
        source: Box<Error>,
    },
    /// A build, pull or push needs to write to a kiln root on a read-only filesystem.
    #[error(
        "kiln root {} is on a read-only filesystem: a build, pull or push writes to it \
         (give a writable --root)",
        root.display()
    )]
    ReadOnlyRoot {
        /// The kiln root.
        root: PathBuf,
    },
    /// A request that makes no sense (empty tag, bad compression level, ...).
    #[error("{0}")]
    Invalid(String),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on `path` while doing `op`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io { op, path: path.into(), source }
    }

    /// An error while streaming `what`.
    pub fn stream(what: impl Into<String>, source: io::Error) -> Error {
        Error::Stream { what: what.into(), source }
    }

    /// A bad layer entry.
    pub fn entry(path: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidEntry { path: path.into(), reason: reason.into() }
    }
}

/// Adds the operation and path to `io::Result`s.
pub(crate) trait IoContext<T> {
    /// Turns an `io::Error` into [`Error::Io`] naming `op` and `path`.
    fn ctx(self, op: &'static str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn ctx(self, op: &'static str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e.into()))
    }
}
