//! Resolving a COPY source as written into context entries.
//!
//! As BuildKit does: the source is cleaned lexically against the context root (a leading `/`
//! is the root); the segments before the first one with a wildcard are a literal path whose
//! symlinks are followed inside the context; the rest is matched segment by segment with Go's
//! `filepath.Match` against the directory listings (symlinks on the way are not followed,
//! results in depth-first order, names sorted by bytes); every match, and a literal source,
//! is followed if it is a symlink. Following stays inside the context: an absolute link target
//! restarts at the context root and `..` stops there, like a chroot. Excluded paths do not
//! exist for any of this. Unlike BuildKit (which quietly maps `../x` to `x`), a source that
//! climbs above the root is an error, as in the classic builder.

use std::collections::VecDeque;
use std::fs::{self, Metadata};
use std::io::ErrorKind;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

use super::glob::{Program, has_wildcard};
use super::ignore::MatchState;
use super::paths::{join, public};
use super::walk::list_dir;
use super::{BuildContext, ContextEntry, ContextError};

/// How many symlinks one source may go through (as containerd's `RootPath`).
const MAX_LINKS: usize = 255;

/// The outcome of following a path inside the context.
enum Lookup {
    /// It exists: its resolved path (internal form) and metadata.
    Found { rel: String, metadata: Metadata },
    /// It does not (or is excluded).
    Missing { looked_for: PathBuf, excluded_rel: Option<String> },
}

/// A wildcard match in progress.
struct Candidate {
    lexical: String,
    resolved: String,
    state: MatchState,
}

impl BuildContext {
    /// The context entries a COPY source names. `source` is the source as written (after
    /// variable expansion), relative to the context root (a leading `/` is the root), with
    /// wildcards allowed (Go `filepath.Match` per segment). Errors: a source that climbs out
    /// of the context; nothing matching (the message names the path looked for and, when it
    /// exists but is excluded, the ignore file line); a bad pattern; a symlink loop.
    pub fn resolve_sources(&self, source: &str) -> Result<Vec<ContextEntry>, ContextError> {
        let mut segments: Vec<&str> = Vec::new();
        for part in source.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    if segments.pop().is_none() {
                        return Err(ContextError::SourceOutsideContext {
                            source_path: source.to_string(),
                        });
                    }
                }
                p => segments.push(p),
            }
        }
        match segments.iter().position(|s| has_wildcard(s)) {
            None => self.resolve_literal(source, &segments).map(|e| vec![e]),
            Some(i) => self.resolve_wildcard(source, &segments[..i], &segments[i..]),
        }
    }

    fn resolve_literal(
        &self,
        source: &str,
        segments: &[&str],
    ) -> Result<ContextEntry, ContextError> {
        let (rel, metadata) = match self.follow(source, &[], segments)? {
            Lookup::Found { rel, metadata } => (rel, metadata),
            Lookup::Missing { looked_for, excluded_rel } => {
                return Err(self.not_found(source, looked_for, excluded_rel));
            }
        };
        if !self.visible(&rel, &metadata)? {
            return Err(self.not_found(source, self.abs(&rel), Some(rel)));
        }
        if let Some(kind) = special_kind(&metadata) {
            return Err(ContextError::SpecialFile {
                source_path: source.to_string(),
                path: self.abs(&rel),
                kind,
            });
        }
        Ok(self.entry(segments.join("/"), rel, metadata))
    }

    fn resolve_wildcard(
        &self,
        source: &str,
        prefix: &[&str],
        pattern: &[&str],
    ) -> Result<Vec<ContextEntry>, ContextError> {
        let programs =
            pattern.iter().map(|s| Program::segment(s)).collect::<Result<Vec<_>, _>>().map_err(
                |reason| ContextError::BadSourcePattern { source_path: source.to_string(), reason },
            )?;
        let (base, metadata) = match self.follow(source, &[], prefix)? {
            Lookup::Found { rel, metadata } => (rel, metadata),
            Lookup::Missing { looked_for, excluded_rel } => {
                let looked_for = pattern.iter().fold(looked_for, |p, s| p.join(s));
                return Err(self.not_found(source, looked_for, excluded_rel));
            }
        };
        let looked_for = pattern.iter().fold(self.abs(&base), |p, s| p.join(s));
        if !metadata.is_dir() {
            return Err(self.not_found(source, looked_for, None));
        }
        if !self.visible(&base, &metadata)? {
            return Err(self.not_found(source, looked_for, Some(base)));
        }

        let state = self.rules.state_of(&base);
        let mut candidates = vec![Candidate { lexical: prefix.join("/"), resolved: base, state }];
        let mut first_excluded: Option<String> = None;
        for (depth, program) in programs.iter().enumerate() {
            let last = depth + 1 == programs.len();
            let mut next = Vec::new();
            for cand in &candidates {
                let dir = self.abs(&cand.resolved);
                let children = list_dir(&dir)
                    .map_err(|source| ContextError::Io { path: dir.clone(), source })?;
                for child in children {
                    let name = match child.name {
                        Ok(name) => name,
                        Err(raw) if program.matches(&raw.to_string_lossy()) => {
                            return Err(ContextError::NotUtf8 { path: dir.join(raw) });
                        }
                        Err(_) => continue,
                    };
                    if !program.matches(&name) {
                        continue;
                    }
                    let is_dir = child.file_type.is_dir();
                    if !last && !is_dir {
                        continue;
                    }
                    let resolved = join(&cand.resolved, &name);
                    let state = self.rules.enter(&cand.state, &resolved);
                    let reachable = !state.is_excluded()
                        || (is_dir
                            && self.rules.may_reinclude_under(&state, &resolved)
                            && (!last || self.any_visible_beneath(&resolved, &state)?));
                    if !reachable {
                        first_excluded.get_or_insert(resolved);
                        continue;
                    }
                    next.push(Candidate { lexical: join(&cand.lexical, &name), resolved, state });
                }
            }
            candidates = next;
        }
        if candidates.is_empty() {
            return Err(self.not_found(source, looked_for, first_excluded));
        }

        let mut entries = Vec::with_capacity(candidates.len());
        for cand in candidates {
            let parts: Vec<&str> = cand.resolved.split('/').collect();
            let (last, parents) = parts.split_last().unwrap_or((&"", &[]));
            let (rel, metadata) = match self.follow(source, parents, &[*last])? {
                Lookup::Found { rel, metadata } => (rel, metadata),
                Lookup::Missing { looked_for, excluded_rel } => {
                    return Err(self.not_found(source, looked_for, excluded_rel));
                }
            };
            if rel != cand.resolved && !self.visible(&rel, &metadata)? {
                return Err(self.not_found(source, self.abs(&rel), Some(rel)));
            }
            // Pipes, sockets and devices a wildcard matches are left out, as in a walk.
            if special_kind(&metadata).is_none() {
                entries.push(self.entry(cand.lexical, rel, metadata));
            }
        }
        if entries.is_empty() {
            return Err(self.not_found(source, looked_for, first_excluded));
        }
        Ok(entries)
    }

    /// Follows `rest` from the already resolved directory `base` (components from the root),
    /// symlinks included, without leaving the context.
    fn follow(&self, source: &str, base: &[&str], rest: &[&str]) -> Result<Lookup, ContextError> {
        let mut resolved: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        let mut queue: VecDeque<String> = rest.iter().map(|s| s.to_string()).collect();
        let mut metadata: Option<Metadata> = None;
        let mut links = 0;
        while let Some(part) = queue.pop_front() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    resolved.pop();
                    metadata = None;
                    continue;
                }
                _ => {}
            }
            let candidate = if resolved.is_empty() {
                part.clone()
            } else {
                format!("{}/{part}", resolved.join("/"))
            };
            let abs = self.abs(&candidate);
            let meta = match fs::symlink_metadata(&abs) {
                Ok(m) => m,
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                    let looked_for = queue.iter().fold(abs, |p, q| p.join(q));
                    return Ok(Lookup::Missing { looked_for, excluded_rel: None });
                }
                Err(source) => return Err(ContextError::Io { path: abs, source }),
            };
            if !meta.file_type().is_symlink() {
                resolved.push(part);
                metadata = Some(meta);
                continue;
            }
            // A symlink: it exists only if it is not excluded; then its target takes its place.
            if self.rules.is_excluded(&candidate) {
                return Ok(Lookup::Missing { looked_for: abs, excluded_rel: Some(candidate) });
            }
            links += 1;
            if links > MAX_LINKS {
                return Err(ContextError::SymlinkLoop {
                    source_path: source.to_string(),
                    path: abs,
                });
            }
            let target = fs::read_link(&abs)
                .map_err(|source| ContextError::Io { path: abs.clone(), source })?;
            let Some(target) = target.to_str() else {
                return Err(ContextError::NotUtf8 { path: abs });
            };
            if target.starts_with('/') {
                resolved.clear();
            }
            for piece in target.split('/').rev() {
                queue.push_front(piece.to_string());
            }
            metadata = None;
        }
        let rel = resolved.join("/");
        let metadata = match metadata {
            Some(m) => m,
            None => {
                let abs = self.abs(&rel);
                fs::symlink_metadata(&abs)
                    .map_err(|source| ContextError::Io { path: abs, source })?
            }
        };
        Ok(Lookup::Found { rel, metadata })
    }

    /// Whether a resolved path exists in the filtered context: not excluded, or a directory
    /// holding something re-included.
    fn visible(&self, rel: &str, metadata: &Metadata) -> Result<bool, ContextError> {
        if rel.is_empty() {
            return Ok(true);
        }
        let state = self.rules.state_of(rel);
        if !state.is_excluded() {
            return Ok(true);
        }
        if metadata.is_dir() && self.rules.may_reinclude_under(&state, rel) {
            return self.any_visible_beneath(rel, &state);
        }
        Ok(false)
    }

    fn entry(&self, lexical: String, rel: String, metadata: Metadata) -> ContextEntry {
        ContextEntry {
            rel_path: public(&lexical),
            abs_path: self.abs(&rel),
            resolved_rel_path: public(&rel),
            is_dir: metadata.is_dir(),
            metadata,
        }
    }

    fn not_found(
        &self,
        source: &str,
        looked_for: PathBuf,
        excluded_rel: Option<String>,
    ) -> ContextError {
        ContextError::NotFound {
            source_path: source.to_string(),
            looked_for,
            excluded: excluded_rel.and_then(|rel| self.exclusion(&rel)).map(Box::new),
        }
    }
}

/// What a special file is (`a named pipe`, ...), `None` for files, directories and symlinks.
pub(super) fn special_kind(metadata: &Metadata) -> Option<&'static str> {
    let t = metadata.file_type();
    if t.is_file() || t.is_dir() || t.is_symlink() {
        None
    } else if t.is_fifo() {
        Some("a named pipe")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_char_device() {
        Some("a character device")
    } else {
        Some("a block device")
    }
}
