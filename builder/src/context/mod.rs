//! The build context: a directory read in place, filtered by `.dockerignore`; and where
//! contexts and other sources come from ([`spec`]: directories, stdin, tar archives, URLs, git;
//! [`sources`]: named contexts, `ADD` downloads and git checkouts).
//!
//! [`BuildContext::open`] finds the ignore file and parses it ([`ignore`]);
//! [`BuildContext::resolve_sources`] turns a COPY source as written into the entries it names
//! (wildcards, symlinks scoped inside the context, exclusions), and [`BuildContext::walk`]
//! lists what is beneath a directory source. An excluded path is invisible, as in a BuildKit
//! context transfer; an excluded directory that holds a re-included (`!`) path stays visible
//! for that path's sake, with only the re-included contents.

pub mod compress;
mod error;
pub mod exclude;
pub mod git;
mod glob;
pub mod http;
pub mod ignore;
mod inroot;
mod paths;
mod resolve;
mod scratch;
pub mod sources;
pub mod spec;
mod walk;

use std::fs::{self, FileType, Metadata};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

pub use error::{ContextError, Exclusion};
pub use glob::{PatternError, has_wildcard, match_segment};
pub use ignore::{IgnoreError, IgnoreRules};
pub use inroot::read_in_root;
pub use scratch::Scratch;
pub use spec::{ContextSource, NamedSource, PreparedContext};
pub use walk::Found;

/// A build context directory with its ignore rules.
#[derive(Debug, Clone)]
pub struct BuildContext {
    root: PathBuf,
    rules: IgnoreRules,
    ignore_file: Option<PathBuf>,
    ignore_label: String,
}

/// One source resolved in the context.
#[derive(Debug, Clone)]
pub struct ContextEntry {
    /// The source's path relative to the context root, as named (cleaned, wildcards replaced
    /// by what they matched, symlinks not followed); `"."` for the root. Its last segment is
    /// the name a file source takes in a destination directory.
    pub rel_path: String,
    /// The same path after following symlinks (inside the context); equal to `rel_path` when
    /// no symlink was on the way.
    pub resolved_rel_path: String,
    /// The absolute path of the followed target.
    pub abs_path: PathBuf,
    /// Metadata of the followed target.
    pub metadata: Metadata,
    /// Whether the followed target is a directory.
    pub is_dir: bool,
}

/// One entry beneath a directory source.
#[derive(Debug, Clone)]
pub struct WalkEntry {
    /// Path under the source directory, '/'-separated (`"sub/file"`).
    pub rel_to_source: String,
    /// Absolute path on the host.
    pub abs_path: PathBuf,
    /// Type of the entry itself (symlinks are not followed).
    pub file_type: FileType,
    /// Metadata of the entry itself (`lstat`).
    pub metadata: Metadata,
}

impl BuildContext {
    /// Opens the context directory `root` and loads its ignore rules. The first file found
    /// wins: `<Dockerfile>.dockerignore` next to the Dockerfile (BuildKit, buildah), then
    /// `<Dockerfile>.containerignore` (buildah), then `.containerignore` and last
    /// `.dockerignore` in the context root (buildah reads `.containerignore` first; BuildKit
    /// knows only `.dockerignore`). `dockerfile` is the Dockerfile's path as the user gave it
    /// (`None` for a Dockerfile from stdin).
    pub fn open(root: &Path, dockerfile: Option<&Path>) -> Result<BuildContext, ContextError> {
        let root = canonical_root(root)?;
        let mut candidates = Vec::new();
        if let Some((df, name)) = dockerfile.and_then(|df| Some((df, df.file_name()?))) {
            for suffix in [".dockerignore", ".containerignore"] {
                let mut file_name = name.to_os_string();
                file_name.push(suffix);
                candidates.push(df.with_file_name(file_name));
            }
        }
        candidates.push(root.join(".containerignore"));
        candidates.push(root.join(".dockerignore"));
        for path in candidates {
            let read = match inroot::read_in_root(&root, &path) {
                Ok(Some(bytes)) => Ok(bytes),
                Ok(None) => fs::read(&path),
                Err(e) => Err(e),
            };
            let text = match read {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(source) => return Err(ContextError::IgnoreFileUnreadable { path, source }),
            };
            let rules = IgnoreRules::parse(&text)
                .map_err(|source| ContextError::IgnoreFile { path: path.clone(), source })?;
            return Ok(BuildContext::assemble(root, rules, Some(path)));
        }
        Ok(BuildContext::assemble(root, IgnoreRules::empty(), None))
    }

    /// A context with the given rules, not read from any file (named contexts, tests).
    pub fn with_rules(root: &Path, rules: IgnoreRules) -> Result<BuildContext, ContextError> {
        Ok(BuildContext::assemble(canonical_root(root)?, rules, None))
    }

    fn assemble(root: PathBuf, rules: IgnoreRules, ignore_file: Option<PathBuf>) -> BuildContext {
        let ignore_label = match &ignore_file {
            Some(path) => {
                let shown = fs::canonicalize(path).unwrap_or_else(|_| path.clone());
                match shown.strip_prefix(&root) {
                    Ok(inside) => inside.display().to_string(),
                    Err(_) => path.display().to_string(),
                }
            }
            None => "the ignore rules".to_string(),
        };
        BuildContext { root, rules, ignore_file, ignore_label }
    }

    /// The context directory (absolute, symlinks resolved).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The ignore rules in force.
    pub fn rules(&self) -> &IgnoreRules {
        &self.rules
    }

    /// The ignore file the rules came from, if any.
    pub fn ignore_file(&self) -> Option<&Path> {
        self.ignore_file.as_deref()
    }

    /// The reason `rel` is excluded, for error messages.
    fn exclusion(&self, rel: &str) -> Option<Exclusion> {
        self.rules.excluded_by(rel).map(|p| Exclusion {
            path: self.abs(rel),
            ignore_file: self.ignore_label.clone(),
            line: p.line(),
            pattern: p.to_string(),
        })
    }

    /// The absolute path of an internal relative path (`""` = the root).
    fn abs(&self, rel: &str) -> PathBuf {
        if rel.is_empty() { self.root.clone() } else { self.root.join(rel) }
    }
}

fn canonical_root(root: &Path) -> Result<PathBuf, ContextError> {
    let canonical = fs::canonicalize(root)
        .map_err(|source| ContextError::Root { path: root.to_path_buf(), source })?;
    let meta = fs::metadata(&canonical)
        .map_err(|source| ContextError::Root { path: root.to_path_buf(), source })?;
    if !meta.is_dir() {
        return Err(ContextError::RootNotDirectory { path: root.to_path_buf() });
    }
    Ok(canonical)
}
