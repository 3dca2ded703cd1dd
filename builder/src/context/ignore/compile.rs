//! Compiling one cleaned `.dockerignore` pattern, classified as patternmatcher does.
//!
//! patternmatcher sorts each pattern into one of four kinds, and the kind changes what it
//! matches (`**foo` is a plain suffix test, while `**foo*` is a glob where `**` may only
//! stand for whole directories), so the classification is reproduced exactly: a pattern is
//! *exact* until a wildcard, class, escape or `]` makes it a *glob*; a trailing `**` after
//! plain characters makes it a *prefix*; a leading `**` makes it a *suffix* unless something
//! later makes it a glob.

use crate::context::glob::{Inst, PatternError, Program, parse_class};

/// How one pattern matches a path.
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    /// The path equals the text.
    Exact(String),
    /// The path starts with the text (the pattern was `text**`).
    Prefix(String),
    /// The path ends with the text, or equals it without its leading `/` (`**text`).
    Suffix(String),
    /// Anything else.
    Glob(Program),
}

impl Matcher {
    /// Compiles a cleaned pattern (no leading `!`).
    pub(crate) fn compile(pattern: &str) -> Result<Matcher, PatternError> {
        #[derive(PartialEq)]
        enum Kind {
            Exact,
            Prefix,
            Suffix,
            Glob,
        }
        let chars: Vec<char> = pattern.chars().collect();
        let mut kind = Kind::Exact;
        let mut insts = Vec::new();
        let mut pos = 0;
        let mut first = true;
        while pos < chars.len() {
            let ch = chars[pos];
            pos += 1;
            match ch {
                '*' if chars.get(pos) == Some(&'*') => {
                    pos += 1;
                    // `**/` is `**`: the slash belongs to it.
                    if chars.get(pos) == Some(&'/') {
                        pos += 1;
                    }
                    if pos == chars.len() {
                        if kind == Kind::Exact {
                            kind = Kind::Prefix;
                        } else {
                            insts.push(Inst::AnyRest);
                            kind = Kind::Glob;
                        }
                    } else {
                        insts.push(Inst::AnyDirs);
                        kind = Kind::Glob;
                    }
                    if first {
                        kind = Kind::Suffix;
                    }
                }
                '*' => {
                    insts.push(Inst::Star);
                    kind = Kind::Glob;
                }
                '?' => {
                    insts.push(Inst::AnyButSlash);
                    kind = Kind::Glob;
                }
                '\\' => {
                    let Some(&next) = chars.get(pos) else {
                        return Err(PatternError::TrailingBackslash);
                    };
                    insts.push(Inst::Lit(next));
                    pos += 1;
                    kind = Kind::Glob;
                }
                '[' => {
                    let (inst, next) = parse_class(&chars, pos)?;
                    insts.push(inst);
                    pos = next;
                    kind = Kind::Glob;
                }
                ']' => {
                    insts.push(Inst::Lit(']'));
                    kind = Kind::Glob;
                }
                c => insts.push(Inst::Lit(c)),
            }
            first = false;
        }
        Ok(match kind {
            Kind::Exact => Matcher::Exact(pattern.to_string()),
            Kind::Prefix => Matcher::Prefix(pattern[..pattern.len() - 2].to_string()),
            Kind::Suffix => Matcher::Suffix(pattern[2..].to_string()),
            Kind::Glob => Matcher::Glob(Program::new(insts)),
        })
    }

    /// Whether the pattern matches `path` itself.
    pub(crate) fn matches(&self, path: &str) -> bool {
        match self {
            Matcher::Exact(text) => path == text,
            Matcher::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Matcher::Suffix(suffix) => {
                path.ends_with(suffix.as_str())
                    || suffix.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            Matcher::Glob(program) => program.matches(path),
        }
    }

    /// Whether the pattern could match some path that starts with `dir_prefix` (a directory
    /// path ending in `/`, or empty for the root). May answer `true` when unsure.
    pub(crate) fn may_match_under(&self, dir_prefix: &str) -> bool {
        match self {
            Matcher::Exact(text) => text.starts_with(dir_prefix),
            Matcher::Prefix(prefix) => {
                prefix.starts_with(dir_prefix) || dir_prefix.starts_with(prefix.as_str())
            }
            Matcher::Suffix(_) => true,
            Matcher::Glob(program) => program.could_match_with_prefix(dir_prefix),
        }
    }
}
