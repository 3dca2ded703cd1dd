//! `.dockerignore` rules, as Docker and BuildKit apply them.
//!
//! Hand-written on purpose: gitignore crates (`ignore`, `globset`) implement different rules.
//! Docker's differ from gitignore in ways that change what a build sees: patterns are always
//! anchored at the context root (`*.go` does not match `sub/x.go`; write `**/*.go`), there is
//! no "directory only" trailing slash (`Clean` removes it), a pattern that matches a directory
//! excludes everything beneath it, `!` exceptions can re-include files under an excluded
//! directory (gitignore cannot), and the last matching line wins.
//!
//! What is reproduced, from moby/patternmatcher and its `ignorefile` reader:
//! - Reading: a UTF-8 BOM is dropped; lines starting with `#` (in the first column) are
//!   comments; each line is trimmed; blank lines are skipped; `!` starts an exception (space
//!   after it allowed); each pattern goes through Go's `filepath.Clean` and loses a leading `/`.
//! - Matching: a path is excluded when the last pattern that matches the path *or one of its
//!   parent directories* is not an exception. The context root itself is never excluded.
//! - Syntax per Go's `filepath.Match`: `*` (no `/`), `?`, `[...]` with ranges and `^`, `\`
//!   escapes; plus `**`: `**/` matches any number of directories (including none), a trailing
//!   `**` matches anything, and a pattern that starts with `**` followed only by plain
//!   characters is a plain suffix test (`**.txt` matches `a/b.txt`), as in patternmatcher.
//! - Invalid patterns are errors (patternmatcher fails too, at parse or at first match).
//!
//! Known differences, where patternmatcher's regexp translation garbles a pattern that
//! `filepath.Match` defines: `*` or `?` inside `[...]` are plain characters here; `\d`, `\w`
//! and the like are the escaped letter here (not a regexp class); a `^` outside a class is a
//! plain character here (never matches in Docker). BuildKit's incremental walk matcher also
//! forgets an exception that was skipped while matching a parent directory (so `a/b` then
//! `!a` leaves `a/b` excluded there); kiln applies the rule above consistently instead.

mod compile;
#[cfg(test)]
mod tests;

use std::fmt;

use super::glob::PatternError;
use super::paths::clean;
use compile::Matcher;

/// A bad line in an ignore file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: invalid pattern {pattern:?}: {reason}")]
pub struct IgnoreError {
    /// 1-based line number in the ignore file.
    pub line: usize,
    /// The line as written, trimmed.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: PatternError,
}

/// One pattern of an ignore file.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    exception: bool,
    line: usize,
    matcher: Matcher,
}

impl Pattern {
    /// The cleaned pattern, without its `!`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether this is an exception (`!pattern`), which re-includes what it matches.
    pub fn is_exception(&self) -> bool {
        self.exception
    }

    /// The 1-based line it came from.
    pub fn line(&self) -> usize {
        self.line
    }

    /// Whether the pattern matches this path itself (parent directories not considered).
    pub fn matches(&self, rel_path: &str) -> bool {
        self.matcher.matches(rel_path)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.exception { write!(f, "!{}", self.text) } else { f.write_str(&self.text) }
    }
}

/// The parsed rules of a `.dockerignore` (or `.containerignore`) file.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    patterns: Vec<Pattern>,
}

/// What the rules say about one directory, carried down a walk so that each entry below is
/// tested against its own path only (a parent's matches hold for its children).
#[derive(Debug, Clone)]
pub struct MatchState {
    /// `hits[i]`: pattern `i` matches this path or one of its parents.
    hits: Vec<bool>,
    /// The last pattern that matches, which decides.
    decider: Option<usize>,
    excluded: bool,
}

impl MatchState {
    /// Whether the path this state belongs to is excluded.
    pub fn is_excluded(&self) -> bool {
        self.excluded
    }
}

impl IgnoreRules {
    /// Parses the text of an ignore file. The error names the 1-based line of a bad pattern.
    pub fn parse(text: &str) -> Result<IgnoreRules, IgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (index, raw) in text.split('\n').enumerate() {
            let line = index + 1;
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            let error = |reason| IgnoreError { line, pattern: raw.trim().to_string(), reason };
            let Some(read) = read_line(raw) else { continue };
            // Second pass, as patternmatcher.New does on what the reader produced.
            let trimmed = read.trim();
            if trimmed.is_empty() {
                continue;
            }
            let cleaned = clean(trimmed);
            let (exception, body) = match cleaned.strip_prefix('!') {
                Some("") => return Err(error(PatternError::LoneExclamation)),
                Some(body) => (true, body.to_string()),
                None => (false, cleaned),
            };
            let matcher = Matcher::compile(&body).map_err(error)?;
            patterns.push(Pattern { text: body, exception, line, matcher });
        }
        Ok(IgnoreRules { patterns })
    }

    /// Rules that exclude nothing.
    pub fn empty() -> IgnoreRules {
        IgnoreRules::default()
    }

    /// The patterns, in file order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether there are no patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any pattern is an exception (`!`).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }

    /// Whether `rel_path` ('/'-separated, relative to the context root, no leading `./`) is
    /// excluded: the last pattern matching it or one of its parent directories decides.
    pub fn is_excluded(&self, rel_path: &str) -> bool {
        self.deciding(rel_path).is_some_and(|p| !p.exception)
    }

    /// The pattern that excludes `rel_path`, if it is excluded.
    pub fn excluded_by(&self, rel_path: &str) -> Option<&Pattern> {
        self.deciding(rel_path).filter(|p| !p.exception)
    }

    fn deciding(&self, rel_path: &str) -> Option<&Pattern> {
        let path = rel_path.trim_end_matches('/');
        if path.is_empty() || path == "." {
            return None;
        }
        let mut candidates: Vec<&str> = path.match_indices('/').map(|(i, _)| &path[..i]).collect();
        candidates.push(path);
        self.patterns.iter().rev().find(|p| candidates.iter().any(|c| p.matcher.matches(c)))
    }

    /// The state of the context root (never excluded).
    pub fn root_state(&self) -> MatchState {
        MatchState { hits: vec![false; self.patterns.len()], decider: None, excluded: false }
    }

    /// The state of `rel_path` (the full path from the root), a child of `parent`'s path.
    pub fn enter(&self, parent: &MatchState, rel_path: &str) -> MatchState {
        let mut hits = parent.hits.clone();
        let mut decider = None;
        for (i, pattern) in self.patterns.iter().enumerate() {
            if !hits[i] && pattern.matcher.matches(rel_path) {
                hits[i] = true;
            }
            if hits[i] {
                decider = Some(i);
            }
        }
        let excluded = decider.is_some_and(|i| !self.patterns[i].exception);
        MatchState { hits, decider, excluded }
    }

    /// Whether `rel_path`, a child of `parent`'s path, is excluded (same answer as
    /// [`IgnoreRules::enter`], without building a state: for files).
    pub fn is_excluded_in(&self, parent: &MatchState, rel_path: &str) -> bool {
        self.patterns
            .iter()
            .enumerate()
            .rev()
            .find(|(i, p)| parent.hits[*i] || p.matcher.matches(rel_path))
            .is_some_and(|(_, p)| !p.exception)
    }

    /// The state of any path, computed from the root down.
    pub fn state_of(&self, rel_path: &str) -> MatchState {
        let mut state = self.root_state();
        let path = rel_path.trim_end_matches('/');
        if path.is_empty() || path == "." {
            return state;
        }
        for (i, _) in path.match_indices('/') {
            state = self.enter(&state, &path[..i]);
        }
        self.enter(&state, path)
    }

    /// Whether something beneath the directory `dir` (whose state is `dir_state`) could be
    /// re-included by an exception. When it is excluded and this is false, a walker can skip
    /// the whole directory without reading it. Only exceptions after the pattern that decided
    /// `dir` count (an earlier one is overridden for every child too).
    pub fn may_reinclude_under(&self, dir_state: &MatchState, dir: &str) -> bool {
        let start = dir_state.decider.map_or(0, |i| i + 1);
        let dir = dir.trim_end_matches('/');
        let prefix = if dir.is_empty() || dir == "." { String::new() } else { format!("{dir}/") };
        self.patterns[start..].iter().any(|p| p.exception && p.matcher.may_match_under(&prefix))
    }
}

/// The `ignorefile` reader's treatment of one line: `None` when it yields no pattern.
fn read_line(raw: &str) -> Option<String> {
    if raw.starts_with('#') {
        return None;
    }
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return None;
    }
    let (invert, rest) = match trimmed.strip_prefix('!') {
        Some(rest) => (true, rest.trim()),
        None => (false, trimmed),
    };
    let mut pattern = String::new();
    if !rest.is_empty() {
        pattern = clean(rest);
        if pattern.len() > 1 && pattern.starts_with('/') {
            pattern.remove(0);
        }
    }
    Some(if invert { format!("!{pattern}") } else { pattern })
}
