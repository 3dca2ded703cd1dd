//! Diagnostics: errors and warnings that point at a place in the Dockerfile.

use std::fmt;

use serde::Serialize;

/// A region of the Dockerfile. Lines and columns are 1-based; columns count characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Span {
    /// First line of the region.
    pub line: u32,
    /// Column of the first character.
    pub col: u32,
    /// Last line of the region (inclusive).
    pub end_line: u32,
    /// Column just past the last character.
    pub end_col: u32,
}

impl Span {
    /// A span covering `len` characters of one line.
    pub fn on_line(line: u32, col: u32, len: u32) -> Self {
        Span { line, col, end_line: line, end_col: col + len }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        let (start, end) = if (self.line, self.col) <= (other.line, other.col) {
            (self, other)
        } else {
            (other, self)
        };
        let last = if (end.end_line, end.end_col) >= (start.end_line, start.end_col) {
            end
        } else {
            start
        };
        Span { line: start.line, col: start.col, end_line: last.end_line, end_col: last.end_col }
    }
}

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The build cannot go on.
    Error,
    /// The build goes on; the user should know.
    Warning,
}

/// An error or warning about a Dockerfile, shown as `FILE:LINE:COL: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The Dockerfile's name as the user gave it (e.g. `Dockerfile`).
    pub file: String,
    /// Where in the file.
    pub span: Span,
    /// The instruction keyword this is about, upper-case (e.g. `COPY`), if any.
    pub instruction: Option<String>,
    /// What is wrong and, where it helps, what to do.
    pub message: String,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn error(file: &str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: file.to_string(),
            span,
            instruction: None,
            message: message.into(),
        }
    }

    /// A warning at `span`.
    pub fn warning(file: &str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(file, span, message) }
    }

    /// Names the instruction the diagnostic is about.
    pub fn in_instruction(mut self, keyword: &str) -> Self {
        self.instruction = Some(keyword.to_ascii_uppercase());
        self
    }

    /// The diagnostic as a compiler shows it: the `FILE:LINE:COL: message` line, then the
    /// offending line of `source_text` (the Dockerfile's text) with a caret under the column
    /// (`^~~~` along the span when it stays on that line). Without a place in the file, or
    /// when the line does not exist in `source_text`, only the first line.
    pub fn render(&self, source_text: &str) -> String {
        let mut out = self.to_string();
        if self.span.line == 0 {
            return out;
        }
        let Some(raw) = source_text.split('\n').nth(self.span.line as usize - 1) else {
            return out;
        };
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let line = if self.span.line == 1 { line.trim_start_matches('\u{feff}') } else { line };
        let number = self.span.line.to_string();
        let gutter = " ".repeat(number.len());
        out.push_str(&format!("\n{gutter} |\n{number} | {line}\n{gutter} | "));
        // Keep tabs in the padding so the caret lines up however tabs are shown.
        let col = self.span.col.max(1) as usize;
        for c in line.chars().take(col - 1) {
            out.push(if c == '\t' { '\t' } else { ' ' });
        }
        out.push('^');
        let chars = line.chars().count();
        if self.span.end_line == self.span.line && self.span.end_col as usize > col + 1 {
            let end = (self.span.end_col as usize).min(chars + 1);
            out.push_str(&"~".repeat(end.saturating_sub(col + 1)));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A diagnostic about the build as a whole (e.g. `--target`) has no place in the file.
        if self.span.line > 0 {
            write!(f, "{}:{}:{}: ", self.file, self.span.line, self.span.col)?;
        }
        if self.severity == Severity::Warning {
            write!(f, "warning: ")?;
        }
        match &self.instruction {
            Some(kw) => write!(f, "{kw}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}
