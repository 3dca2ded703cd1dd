//! Word expansion with the semantics of BuildKit's shell lexer.
//!
//! Dockerfile instructions expand `$VAR`, `${VAR}` and the `${VAR<op>word}` forms, remove quotes
//! and process the escape character the way BuildKit's `shell.Lex` does. That lexer is not a POSIX
//! shell (no command substitution, no arithmetic, no field splitting except in "words" mode, its
//! own rules for escapes inside quotes and inside patterns), so no existing crate matches it: this
//! module is kiln's own hand-written implementation of those rules, pure (no I/O) and tested
//! against BuildKit's observable behaviour.
//!
//! Supported forms: `$NAME`, `${NAME}`, `${NAME:-w}`, `${NAME-w}`, `${NAME:+w}`, `${NAME+w}`,
//! `${NAME:?msg}`, `${NAME?msg}`, `${NAME#p}`, `${NAME##p}`, `${NAME%p}`, `${NAME%%p}`,
//! `${NAME/p/r}` and `${NAME//p/r}` (patterns use `*` and `?`; `\` escapes them), with nested
//! expansions inside the words. Names are letters, digits and `_`; a name starting with a digit is
//! all the digits (`$12x` is `$12` then `x`), and `@ * # ? - $ !` are one-character names.
//! A `$` that no name follows stays a literal `$`.
//!
//! Where kiln knowingly differs from BuildKit:
//! - error messages are kiln's own (they name the construct; [`ExpandError::offset`] says where);
//! - in words mode, text before a `${...}` stays in its word (`a${X:-b}c` → `abc`); recent
//!   BuildKit versions share one buffer between nesting levels and drop the `a`;
//! - `${...}` may nest at most 200 deep, so that a hostile word cannot overflow the stack.

mod lexer;
mod names;
mod pattern;

use std::collections::BTreeSet;

/// Looks up a variable's value; `None` when unset. Callers can record which names were asked
/// for (to warn about unused build args) inside the closure.
pub type Vars<'a> = &'a dyn Fn(&str) -> Option<String>;

/// An expansion that cannot be done (bad substitution, `${VAR:?msg}` on an unset variable,
/// unterminated quote).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExpandError {
    /// What went wrong, for the user.
    pub message: String,
    /// Character offset in the word where it went wrong.
    pub offset: usize,
}

/// How to expand: the escape character and BuildKit's lexer switches.
///
/// [`ExpandOptions::new`] gives the behaviour used for ordinary instruction arguments; the
/// switches reproduce the other modes BuildKit uses internally (heredoc detection, heredoc
/// bodies, build-step names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpandOptions {
    /// The escape character: `\` by default, `` ` `` under `# escape=``.
    pub escape: char,
    /// Keep quote characters in the result instead of removing them (BuildKit's `RawQuotes`).
    pub raw_quotes: bool,
    /// Keep escape characters in the result (BuildKit's `RawEscapes`).
    pub raw_escapes: bool,
    /// Treat `'` and `"` as ordinary characters (BuildKit's `SkipProcessQuotes`, used for
    /// heredoc bodies).
    pub skip_quotes: bool,
    /// Leave references to unset variables as written (`$X`, `${X}`, `${X:-w}` with its word
    /// expanded) instead of expanding them (BuildKit's `SkipUnsetEnv`).
    pub keep_unset: bool,
}

impl ExpandOptions {
    /// The default mode with the given escape character.
    pub fn new(escape: char) -> Self {
        ExpandOptions {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_quotes: false,
            keep_unset: false,
        }
    }
}

impl Default for ExpandOptions {
    fn default() -> Self {
        ExpandOptions::new('\\')
    }
}

/// Everything one expansion produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expansion {
    /// The expanded word (BuildKit's `ProcessWord`).
    pub word: String,
    /// The expanded text split on unquoted whitespace (BuildKit's `ProcessWords`).
    pub words: Vec<String>,
    /// Names that were looked up and set.
    pub matched: BTreeSet<String>,
    /// Names that were looked up and unset.
    pub unmatched: BTreeSet<String>,
}

/// Expands `word` with full control over the mode, and reports which names were referenced.
pub fn expand(
    word: &str,
    options: &ExpandOptions,
    vars: Vars<'_>,
) -> Result<Expansion, ExpandError> {
    lexer::Lexer::new(word, options, vars).run()
}

/// Expands one word: variables substituted, quotes removed, escapes processed; no field splitting.
pub fn expand_word(word: &str, escape: char, vars: Vars<'_>) -> Result<String, ExpandError> {
    expand(word, &ExpandOptions::new(escape), vars).map(|e| e.word)
}

/// Expands and splits into words on unquoted whitespace (BuildKit's `ProcessWords`).
///
/// Whitespace that comes from a variable's value splits too (`$X` with `X="a b"` gives two
/// words); quoted or escaped whitespace does not; empty words (`""`) are dropped.
pub fn expand_words(word: &str, escape: char, vars: Vars<'_>) -> Result<Vec<String>, ExpandError> {
    expand(word, &ExpandOptions::new(escape), vars).map(|e| e.words)
}

/// Whether `word` contains a variable reference that expansion would look up (`$NAME` or
/// `${...}`), outside single quotes and not escaped. Malformed words count as referencing.
pub fn references_variables(word: &str, escape: char) -> bool {
    match expand(word, &ExpandOptions::new(escape), &|_| None) {
        Ok(e) => !e.unmatched.is_empty(),
        Err(_) => true,
    }
}
