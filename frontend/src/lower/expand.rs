//! Calling [`crate::expand`] on Dockerfile words and turning its errors into diagnostics at the
//! word's position.

use std::cell::RefCell;
use std::collections::BTreeSet;

use crate::diag::{Diagnostic, Span};
use crate::expand::{self, ExpandError, ExpandOptions};
use crate::syntax::Word;

/// Expands words of one Dockerfile.
pub(crate) struct Expander<'a> {
    /// File name for diagnostics.
    pub file: &'a str,
    /// The Dockerfile's escape character.
    pub escape: char,
}

/// Variable lookup that records the names asked for and not set.
pub(crate) struct Tracking<'v> {
    lookup: &'v dyn Fn(&str) -> Option<String>,
    /// Names looked up that had no value.
    pub unset: RefCell<BTreeSet<String>>,
}

impl<'v> Tracking<'v> {
    /// Wraps `lookup`.
    pub fn new(lookup: &'v dyn Fn(&str) -> Option<String>) -> Self {
        Tracking { lookup, unset: RefCell::new(BTreeSet::new()) }
    }

    /// Looks `name` up, recording it when unset.
    pub fn get(&self, name: &str) -> Option<String> {
        let v = (self.lookup)(name);
        if v.is_none() {
            self.unset.borrow_mut().insert(name.to_string());
        }
        v
    }
}

impl Expander<'_> {
    fn error(&self, word: &Word, instr: &str, e: ExpandError) -> Diagnostic {
        let span = if word.span.line == word.span.end_line
            && word.span.end_col.saturating_sub(word.span.col) as usize == word.text.chars().count()
        {
            let col = word.span.col + e.offset.min(word.text.chars().count()) as u32;
            Span::on_line(word.span.line, col, 1)
        } else {
            word.span
        };
        Diagnostic::error(self.file, span, format!("{} (in {:?})", e.message, word.text))
            .in_instruction(instr)
    }

    /// Expands `word` as one word (BuildKit's `ProcessWord`).
    pub fn word(
        &self,
        word: &Word,
        instr: &str,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, Diagnostic> {
        expand::expand_word(&word.text, self.escape, vars).map_err(|e| self.error(word, instr, e))
    }

    /// Expands `word` as one word and also returns the names looked up without a value.
    pub fn word_tracked(
        &self,
        word: &Word,
        instr: &str,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(String, BTreeSet<String>), Diagnostic> {
        expand::expand(&word.text, &ExpandOptions::new(self.escape), vars)
            .map(|e| (e.word, e.unmatched))
            .map_err(|e| self.error(word, instr, e))
    }

    /// Expands `word` and splits it on unquoted whitespace (BuildKit's `ProcessWords`).
    pub fn words(
        &self,
        word: &Word,
        instr: &str,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<String>, Diagnostic> {
        expand::expand_words(&word.text, self.escape, vars).map_err(|e| self.error(word, instr, e))
    }

    /// Expands a heredoc body the way BuildKit does for `COPY <<EOF`: `\` is the escape
    /// character whatever the directive says, and quotes are ordinary characters. Also returns
    /// the names looked up without a value.
    pub fn heredoc(
        &self,
        body: &str,
        at: &Word,
        instr: &str,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(String, BTreeSet<String>), Diagnostic> {
        let options = ExpandOptions { skip_quotes: true, ..ExpandOptions::new('\\') };
        expand::expand(body, &options, vars).map(|e| (e.word, e.unmatched)).map_err(|e| {
            Diagnostic::error(
                self.file,
                at.span,
                format!("{} (in the heredoc {})", e.message, at.text),
            )
            .in_instruction(instr)
        })
    }
}
