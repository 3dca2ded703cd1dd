//! First level: physical lines → parser directives and logical lines (continuations joined,
//! comments and blank lines inside continuations skipped) → heredoc bodies.
//!
//! Every byte of a logical line remembers where it was written, so the second level can give
//! exact spans to words that were split over several physical lines.

use super::ast::{Directive, Heredoc};
use super::heredoc::HeredocSpec;
use crate::diag::{Diagnostic, Span};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: u32,
    pub col: u32,
}

/// One instruction's text with continuation lines joined.
#[derive(Debug, Clone)]
pub(crate) struct Logical {
    /// The joined text (leading whitespace of the first line removed, continuation characters
    /// removed, comment lines skipped).
    pub text: String,
    /// Where each byte of `text` was written, plus one entry for the position just past the end.
    pub pos: Vec<Pos>,
    /// The last physical line this logical line used (continuations and skipped lines included).
    pub last_line: u32,
    /// Length in characters of that last line.
    pub last_line_chars: u32,
}

impl Logical {
    fn new() -> Self {
        Logical { text: String::new(), pos: Vec::new(), last_line: 0, last_line_chars: 0 }
    }

    /// Appends `piece`, written on `line` starting at column `col`.
    fn push(&mut self, piece: &str, line: u32, col: u32) {
        self.pos.reserve(piece.len() + 1);
        self.text.reserve(piece.len());
        if piece.is_ascii() {
            self.pos.extend((col..).take(piece.len()).map(|c| Pos { line, col: c }));
            self.text.push_str(piece);
            return;
        }
        for (c, ch) in (col..).zip(piece.chars()) {
            for _ in 0..ch.len_utf8() {
                self.pos.push(Pos { line, col: c });
            }
            self.text.push(ch);
        }
    }

    /// Closes the position table with the position just past the last character.
    fn finish(&mut self) {
        let end = match self.pos.last() {
            Some(p) => Pos { line: p.line, col: p.col + 1 },
            None => Pos { line: self.last_line, col: 1 },
        };
        self.pos.push(end);
    }

    /// The span of bytes `start..end` of `text`.
    pub fn span(&self, start: usize, end: usize) -> Span {
        let s = self.pos[start.min(self.pos.len() - 1)];
        if end <= start {
            return Span { line: s.line, col: s.col, end_line: s.line, end_col: s.col };
        }
        let e = self.pos[(end - 1).min(self.pos.len() - 1)];
        Span { line: s.line, col: s.col, end_line: e.line, end_col: e.col + 1 }
    }
}

/// Reads a Dockerfile line by line.
pub(crate) struct LineReader<'a> {
    file: &'a str,
    lines: Vec<&'a str>,
    next: usize,
    /// The escape character in effect.
    pub escape: char,
    directives_done: bool,
    /// Directives found so far.
    pub directives: Vec<Directive>,
    /// Warnings found so far, with the name of the rule that raised them.
    pub warnings: Vec<(&'static str, Diagnostic)>,
}

/// A physical line without its line ending (`\r` and `\n` trimmed, as BuildKit does).
fn content(raw: &str) -> &str {
    raw.trim_end_matches(['\r', '\n'])
}

/// Whitespace as Go's `regexp` `\s` sees it (ASCII only).
fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

/// Matches `#\s*NAME\s*=\s*VALUE\s*` (BuildKit's directive pattern); `None` when it does not.
fn match_directive(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix('#')?.trim_start_matches(is_re_space);
    let name_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let (name, after) = rest.split_at(name_len);
    let value = after.trim_start_matches(is_re_space).strip_prefix('=')?;
    let value = value.trim_matches(is_re_space);
    if value.is_empty() {
        return None;
    }
    Some((name.to_ascii_lowercase(), value.to_string()))
}

/// Removes a trailing line-continuation character (BuildKit's rule: the escape character,
/// optionally followed by spaces or tabs, at the end of the line, not itself escaped).
/// Returns the text kept and whether the line continues.
pub(crate) fn strip_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    let Some(before) = t.strip_suffix(escape) else {
        return (line, false);
    };
    if before.is_empty() || !before.ends_with(escape) { (before, true) } else { (line, false) }
}

impl<'a> LineReader<'a> {
    /// Starts reading `text`.
    pub fn new(file: &'a str, text: &'a str) -> Self {
        LineReader {
            file,
            lines: text.split_inclusive('\n').collect(),
            next: 0,
            escape: '\\',
            directives_done: false,
            directives: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The number of physical lines.
    pub fn line_count(&self) -> u32 {
        self.lines.len() as u32
    }

    fn directive(&mut self, trimmed: &str, line: u32, col: u32) -> Result<(), Diagnostic> {
        if self.directives_done {
            return Ok(());
        }
        let Some((name, value)) = match_directive(trimmed) else {
            self.directives_done = true;
            return Ok(());
        };
        if !matches!(name.as_str(), "syntax" | "escape" | "check") {
            self.directives_done = true;
            return Ok(());
        }
        let span = Span::on_line(line, col, trimmed.chars().count() as u32);
        if self.directives.iter().any(|d| d.name == name) {
            return Err(Diagnostic::error(
                self.file,
                span,
                format!(
                    "the {name} directive is given twice; a Dockerfile can set it only once, \
                     in its first lines"
                ),
            ));
        }
        if name == "escape" {
            self.escape = match value.as_str() {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    return Err(Diagnostic::error(
                        self.file,
                        span,
                        format!(
                            "invalid escape character {value:?}: the escape directive takes \\ \
                             (the default) or ` (backtick)"
                        ),
                    ));
                }
            };
        }
        self.directives.push(Directive { name, value, span });
        Ok(())
    }

    /// The next logical line, or `None` at the end of the file.
    pub fn next_logical(&mut self) -> Result<Option<Logical>, Diagnostic> {
        while self.next < self.lines.len() {
            let n = self.next;
            self.next += 1;
            let lineno = n as u32 + 1;
            let mut line = content(self.lines[n]);
            if n == 0 {
                line = line.strip_prefix('\u{feff}').unwrap_or(line);
            }
            let trimmed = line.trim_start();
            let lead = line[..line.len() - trimmed.len()].chars().count() as u32;
            self.directive(trimmed, lineno, lead + 1)?;
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let mut logical = Logical::new();
            let (kept, mut more) = strip_continuation(trimmed, self.escape);
            logical.push(kept, lineno, lead + 1);
            logical.last_line = lineno;
            logical.last_line_chars = line.chars().count() as u32;
            while more {
                if self.next >= self.lines.len() {
                    self.warnings.push((
                        "ContinuationAtEndOfFile",
                        Diagnostic::warning(
                            self.file,
                            Span::on_line(logical.last_line, logical.last_line_chars, 1),
                            format!(
                                "the file ends right after a line continuation ({}); remove it or \
                             finish the instruction",
                                self.escape
                            ),
                        ),
                    ));
                    break;
                }
                let m = self.next;
                self.next += 1;
                let ln = m as u32 + 1;
                let line = content(self.lines[m]);
                logical.last_line = ln;
                logical.last_line_chars = line.chars().count() as u32;
                if line.trim_start().starts_with('#') {
                    continue;
                }
                if line.trim().is_empty() {
                    self.warnings.push((
                        "NoEmptyContinuation",
                        Diagnostic::warning(
                            self.file,
                            Span::on_line(ln, 1, 0),
                            "empty continuation line: BuildKit will reject these in a future \
                             release; remove the blank line",
                        ),
                    ));
                    continue;
                }
                let (kept, again) = strip_continuation(line, self.escape);
                logical.push(kept, ln, 1);
                more = again;
            }
            logical.finish();
            if logical.text.trim().is_empty() {
                continue;
            }
            return Ok(Some(logical));
        }
        Ok(None)
    }

    /// Reads the bodies of the heredocs `specs` opened on `logical`, which is updated to end
    /// after the last delimiter line.
    pub fn read_heredocs(
        &mut self,
        logical: &mut Logical,
        specs: Vec<HeredocSpec>,
    ) -> Result<Vec<Heredoc>, Diagnostic> {
        let mut docs = Vec::with_capacity(specs.len());
        for spec in specs {
            let first = self.next as u32 + 1;
            let mut body = String::new();
            let mut end = None;
            while self.next < self.lines.len() {
                let raw = self.lines[self.next];
                self.next += 1;
                let mut candidate = content(raw);
                if spec.chomp {
                    candidate = candidate.trim_start_matches('\t');
                }
                if candidate == spec.name {
                    end = Some((self.next as u32, content(raw).chars().count() as u32));
                    break;
                }
                body.push_str(raw);
            }
            let span = logical.span(spec.start, spec.end);
            let Some((end_line, end_chars)) = end else {
                return Err(Diagnostic::error(
                    self.file,
                    span,
                    format!(
                        "unterminated heredoc: the file ends before a line that reads {:?} \
                         closes it; add that line after the heredoc's content",
                        spec.name
                    ),
                ));
            };
            logical.last_line = end_line;
            logical.last_line_chars = end_chars;
            docs.push(Heredoc {
                name: spec.name,
                content: body,
                expand: spec.expand,
                chomp: spec.chomp,
                fd: spec.fd,
                span,
                body_span: Span { line: first, col: 1, end_line, end_col: end_chars + 1 },
            });
        }
        Ok(docs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directive_pattern_follows_buildkit() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("# syntax=docker/dockerfile:1", Some(("syntax", "docker/dockerfile:1"))),
            ("#escape=`", Some(("escape", "`"))),
            ("#  ESCAPE  =  \\  ", Some(("escape", "\\"))),
            ("# check=skip=all;error=true", Some(("check", "skip=all;error=true"))),
            ("# escape=", None),
            ("# escape", None),
            ("# 1x=y", None),
            ("#! /bin/sh", None),
            ("FROM x", None),
            ("# foo2=bar", Some(("foo2", "bar"))),
        ];
        for (line, want) in cases {
            let got = match_directive(line);
            assert_eq!(got.as_ref().map(|(a, b)| (a.as_str(), b.as_str())), *want, "line {line:?}");
        }
    }

    #[test]
    fn continuation_rule_matches_buildkit_regex() {
        let cases: &[(&str, char, &str, bool)] = &[
            ("RUN a \\", '\\', "RUN a ", true),
            ("RUN a \\  \t", '\\', "RUN a ", true),
            ("RUN a\\", '\\', "RUN a", true),
            ("\\", '\\', "", true),
            ("  \\ ", '\\', "  ", true),
            ("RUN a \\\\", '\\', "RUN a \\\\", false),
            ("RUN a", '\\', "RUN a", false),
            ("RUN a `", '`', "RUN a ", true),
            ("RUN a \\", '`', "RUN a \\", false),
            ("RUN a \\ x", '\\', "RUN a \\ x", false),
        ];
        for (line, esc, kept, more) in cases {
            assert_eq!(strip_continuation(line, *esc), (*kept, *more), "line {line:?}");
        }
    }

    #[test]
    fn logical_lines_keep_positions_across_continuations() {
        let text = "FROM a\n  RUN x \\\n# c\n\n   y\n";
        let mut r = LineReader::new("Dockerfile", text);
        let first = r.next_logical().unwrap().unwrap();
        assert_eq!(first.text, "FROM a");
        let second = r.next_logical().unwrap().unwrap();
        assert_eq!(second.text, "RUN x    y");
        assert_eq!(second.pos[0], Pos { line: 2, col: 3 });
        let y = second.text.find('y').unwrap();
        assert_eq!(second.pos[y], Pos { line: 5, col: 4 });
        assert_eq!(second.last_line, 5);
        assert_eq!(r.warnings.len(), 1);
        assert_eq!(r.warnings[0].1.span.line, 4);
        assert!(r.next_logical().unwrap().is_none());
    }
}
