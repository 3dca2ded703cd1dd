//! Errors of the build context.

use std::fmt;
use std::path::PathBuf;

use super::glob::{PatternError, has_wildcard};
use super::ignore::IgnoreError;

/// A path that exists but that the ignore file excludes, and the line that does it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclusion {
    /// The excluded path (absolute).
    pub path: PathBuf,
    /// The ignore file, as shown to the user (relative to the context when inside it).
    pub ignore_file: String,
    /// The 1-based line of the deciding pattern.
    pub line: usize,
    /// The deciding pattern, as cleaned.
    pub pattern: String,
}

impl fmt::Display for Exclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} exists but is excluded by {} line {} ({:?})",
            self.path.display(),
            self.ignore_file,
            self.line,
            self.pattern
        )
    }
}

/// Why the build context cannot give what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The context directory cannot be opened.
    #[error("cannot open the build context {}: {source}", path.display())]
    Root {
        /// The directory as given.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The context is not a directory.
    #[error("the build context {} is not a directory", path.display())]
    RootNotDirectory {
        /// The path as given.
        path: PathBuf,
    },
    /// The ignore file exists but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    IgnoreFileUnreadable {
        /// The ignore file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The ignore file has a bad pattern.
    #[error("{}: {source}", path.display())]
    IgnoreFile {
        /// The ignore file.
        path: PathBuf,
        /// Which line and why.
        source: IgnoreError,
    },
    /// A source path that leaves the context (`../x`, `a/../../x`).
    #[error("source {source_path:?} is outside the build context")]
    SourceOutsideContext {
        /// The source as written.
        source_path: String,
    },
    /// A wildcard source that is not a valid pattern.
    #[error("source {source_path:?} is not a valid pattern: {reason}")]
    BadSourcePattern {
        /// The source as written.
        source_path: String,
        /// What is wrong with it.
        reason: PatternError,
    },
    /// Nothing in the context matches the source (or what matches is excluded).
    #[error("{}", not_found_message(source_path, looked_for, excluded.as_deref()))]
    NotFound {
        /// The source as written.
        source_path: String,
        /// The absolute path looked for (with the wildcards, for a pattern).
        looked_for: PathBuf,
        /// Set when the path exists but the ignore file excludes it.
        excluded: Option<Box<Exclusion>>,
    },
    /// A chain of symlinks too long (or a loop) while following a source.
    #[error("source {source_path:?}: too many levels of symbolic links at {}", path.display())]
    SymlinkLoop {
        /// The source as written.
        source_path: String,
        /// Where the chain was given up.
        path: PathBuf,
    },
    /// A literal source that is a named pipe, socket or device: reading it could block, and
    /// kiln copies only files, directories and symlinks from a context (inside a directory
    /// source such entries are left out; BuildKit recreates FIFOs and devices).
    #[error(
        "source {source_path:?} is {kind} ({}): only files, directories and symlinks are \
         copied from a build context",
        path.display()
    )]
    SpecialFile {
        /// The source as written.
        source_path: String,
        /// The special file.
        path: PathBuf,
        /// `a named pipe`, `a socket`, `a character device` or `a block device`.
        kind: &'static str,
    },
    /// A file that is no longer the one listed (replaced, rewritten or touched) while its
    /// content was read for a cache key: the key would not name what is copied.
    #[error(
        "{} changed while building: it was replaced or modified while kiln read it; run the \
         build again",
        path.display()
    )]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// A file name (or symlink target) that is not UTF-8, which kiln does not handle yet.
    #[error("{}: the name is not valid UTF-8, which kiln does not support yet", path.display())]
    NotUtf8 {
        /// The path with the name.
        path: PathBuf,
    },
    /// Reading the context failed.
    #[error("cannot read {} in the build context: {source}", path.display())]
    Io {
        /// The path being read.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A context given as a URL could not be downloaded.
    #[error("build context: {0}")]
    Http(#[from] super::http::HttpError),
    /// A context given as a git repository could not be fetched.
    #[error("build context: {0}")]
    Git(#[from] super::git::GitError),
    /// A context given as a tar archive (file, stdin or download) is not one, or is broken.
    #[error("build context {what}: {reason}")]
    Archive {
        /// The file, `stdin` or the URL.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A `--build-context` value that kiln cannot use.
    #[error("--build-context {spec:?}: {reason}")]
    NamedSpec {
        /// The value as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn not_found_message(
    source: &str,
    looked_for: &std::path::Path,
    excluded: Option<&Exclusion>,
) -> String {
    let wildcard = source.split('/').any(has_wildcard);
    match (wildcard, excluded) {
        (false, None) => format!(
            "source {source:?} not found: {} does not exist in the build context",
            looked_for.display()
        ),
        (false, Some(ex)) => format!("source {source:?} not found: {ex}"),
        (true, None) => format!(
            "source {source:?} not found: nothing in the build context matches {}",
            looked_for.display()
        ),
        (true, Some(ex)) => format!(
            "source {source:?} not found: nothing in the build context matches {}; {ex}",
            looked_for.display()
        ),
    }
}
