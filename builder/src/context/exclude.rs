//! `COPY`/`ADD --exclude=PATTERN`: Docker's ignore-pattern syntax (the `.dockerignore` rules:
//! `filepath.Match` per segment, `**`, `!` exceptions, a directory's match covering what is
//! beneath it), matched the way BuildKit's copy does:
//!
//! - a wildcard source's match is tested by its path below the pattern's literal prefix
//!   (`COPY --exclude=*.txt src/hom* /d/` leaves out `src/homework.txt`);
//! - what a directory source holds is tested by its path below that directory;
//! - a source named literally is never left out itself.

use super::glob::has_wildcard;
use super::ignore::{IgnoreError, IgnoreRules};

/// The `--exclude` patterns of one instruction.
#[derive(Debug, Clone)]
pub struct Excludes {
    rules: IgnoreRules,
    patterns: Vec<String>,
}

impl Excludes {
    /// The rules for `patterns`; `None` when there are none.
    pub fn new(patterns: &[String]) -> Result<Option<Excludes>, IgnoreError> {
        if patterns.is_empty() {
            return Ok(None);
        }
        let rules = IgnoreRules::parse(&patterns.join("\n"))?;
        Ok(Some(Excludes { rules, patterns: patterns.to_vec() }))
    }

    /// The patterns as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether the match `rel_path` (relative to the context or source root, as found) of the
    /// source `pattern` is left out. Literal sources never are.
    pub fn excludes_match(&self, pattern: &str, rel_path: &str) -> bool {
        let segments: Vec<&str> =
            pattern.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
        let Some(first_wild) = segments.iter().position(|s| has_wildcard(s)) else {
            return false;
        };
        let mut rel: Vec<&str> =
            rel_path.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
        let literal = &segments[..first_wild];
        if rel.len() > literal.len() && rel[..literal.len()] == *literal {
            rel.drain(..literal.len());
        }
        self.rules.is_excluded(&rel.join("/"))
    }

    /// Which entries to keep, for entries beneath a copied directory given as (path below that
    /// directory, is a directory), parents before children: those not excluded, and excluded
    /// directories that hold something kept (re-included by a `!` pattern).
    pub fn keep(&self, entries: &[(&str, bool)]) -> Vec<bool> {
        let mut keep: Vec<bool> = entries.iter().map(|(p, _)| !self.rules.is_excluded(p)).collect();
        if !self.rules.has_exceptions() {
            return keep;
        }
        let index: std::collections::HashMap<&str, usize> =
            entries.iter().enumerate().filter(|(_, e)| e.1).map(|(i, e)| (e.0, i)).collect();
        for i in (0..entries.len()).rev() {
            if !keep[i] {
                continue;
            }
            let path = entries[i].0;
            for (cut, _) in path.match_indices('/') {
                if let Some(&d) = index.get(&path[..cut]) {
                    keep[d] = true;
                }
            }
        }
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(patterns: &[&str]) -> Excludes {
        let owned: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        Excludes::new(&owned).unwrap().unwrap()
    }

    #[test]
    fn matches_are_tested_below_the_literal_prefix() {
        let e = ex(&["*.txt"]);
        assert!(e.excludes_match("hom*", "homework.txt"));
        assert!(!e.excludes_match("hom*", "home.md"));
        assert!(e.excludes_match("src/hom*", "src/homework.txt"));
        assert!(!e.excludes_match("homework.txt", "homework.txt"), "literal sources stay");
        assert!(ex(&["a/*.txt"]).excludes_match("./src/*/x*", "src/a/x.txt"));
        assert!(!ex(&["src"]).excludes_match("src/*", "src/a"), "the prefix is not matched");
    }

    #[test]
    fn keep_follows_ignore_rules_with_exceptions() {
        let e = ex(&["docs", "!docs/keep.md", "*.log"]);
        let entries = [
            ("a.log", false),
            ("b", false),
            ("docs", true),
            ("docs/drop.md", false),
            ("docs/keep.md", false),
            ("sub", true),
            ("sub/x.log", false),
        ];
        assert_eq!(e.keep(&entries), [false, true, true, false, true, true, true]);
        assert!(Excludes::new(&[]).unwrap().is_none());
    }
}
