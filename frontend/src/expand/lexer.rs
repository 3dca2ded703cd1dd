//! The expansion proper: a scanner over the word's characters that follows BuildKit's lexer
//! rule by rule (where quotes, escapes and `$` are recognised, which escapes survive, which
//! errors win).

use std::collections::BTreeSet;

use super::names::{is_digit, is_name_char, is_space, is_special_param};
use super::{ExpandError, ExpandOptions, Expansion, Vars, pattern};

/// How deeply `${...}` may nest. BuildKit has no limit; this one only stops a hostile word from
/// overflowing the stack.
const MAX_DEPTH: usize = 200;

/// One expansion in progress.
pub(crate) struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    opts: ExpandOptions,
    vars: Vars<'a>,
    /// Whether escape characters are kept; turned on inside patterns.
    raw_escapes: bool,
    depth: usize,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

/// The "words" view of the top level: text split on unquoted whitespace.
#[derive(Default)]
struct Words {
    done: Vec<String>,
    current: String,
    in_word: bool,
}

impl Words {
    /// An unquoted character (or one from a variable's value): whitespace ends the word.
    fn add_char(&mut self, c: char) {
        if !is_space(c) {
            self.add_raw_char(c);
        } else if self.in_word && !self.current.is_empty() {
            self.done.push(std::mem::take(&mut self.current));
            self.in_word = false;
        }
    }

    /// A quoted or escaped character: always part of the word.
    fn add_raw_char(&mut self, c: char) {
        self.current.push(c);
        self.in_word = true;
    }

    fn add_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_str(&mut self, s: &str) {
        self.current.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.current.is_empty() {
            self.done.push(self.current);
        }
        self.done
    }
}

fn error(offset: usize, message: impl Into<String>) -> ExpandError {
    ExpandError { message: message.into(), offset }
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(word: &str, opts: &ExpandOptions, vars: Vars<'a>) -> Lexer<'a> {
        let chars: Vec<char> = word.chars().collect();
        // BuildKit reads the word with Go's text/scanner, which skips a byte-order mark at the
        // very start.
        let pos = usize::from(chars.first() == Some(&'\u{feff}'));
        Lexer {
            chars,
            pos,
            opts: *opts,
            vars,
            raw_escapes: opts.raw_escapes,
            depth: 0,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        }
    }

    pub(crate) fn run(mut self) -> Result<Expansion, ExpandError> {
        let mut words = Words::default();
        let raw = self.opts.raw_escapes;
        let (word, _) = self.process_until(None, raw, Some(&mut words))?;
        Ok(Expansion {
            word,
            words: words.finish(),
            matched: self.matched,
            unmatched: self.unmatched,
        })
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        let value = (self.vars)(name);
        let seen = if value.is_some() { &mut self.matched } else { &mut self.unmatched };
        if !seen.contains(name) {
            seen.insert(name.to_string());
        }
        value
    }

    /// Expands up to `stop` (consumed) or the end of the word. Returns the text and whether it
    /// ended well: `false` when `stop` was wanted but the word ended first.
    fn process_until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
        words: Option<&mut Words>,
    ) -> Result<(String, bool), ExpandError> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let result = self.process_until_inner(stop, words);
        self.raw_escapes = saved;
        result
    }

    fn process_until_inner(
        &mut self,
        stop: Option<char>,
        mut words: Option<&mut Words>,
    ) -> Result<(String, bool), ExpandError> {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok((out, true));
            }
            let is_quote = !self.opts.skip_quotes && (c == '\'' || c == '"');
            if c == '$' || is_quote {
                let piece = match c {
                    '$' => self.dollar()?,
                    '\'' => self.single_quote()?,
                    _ => self.double_quote()?,
                };
                out.push_str(&piece);
                if let Some(w) = words.as_deref_mut() {
                    if c == '$' { w.add_str(&piece) } else { w.add_raw_str(&piece) }
                }
                continue;
            }
            self.pos += 1;
            let mut c = c;
            if c == self.opts.escape {
                if self.raw_escapes {
                    out.push(c);
                    if let Some(w) = words.as_deref_mut() {
                        w.add_raw_char(c);
                    }
                }
                // An escape at the very end of the word is dropped.
                let Some(escaped) = self.next() else { break };
                c = escaped;
                if let Some(w) = words.as_deref_mut() {
                    w.add_raw_char(c);
                }
            } else if let Some(w) = words.as_deref_mut() {
                w.add_char(c);
            }
            out.push(c);
        }
        Ok((out, stop.is_none()))
    }

    /// `'...'`: everything literal up to the next `'`; there is no escaping inside.
    fn single_quote(&mut self) -> Result<String, ExpandError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        if self.opts.raw_quotes {
            out.push('\'');
        }
        loop {
            match self.next() {
                None => {
                    return Err(error(
                        start,
                        "unterminated single-quoted string: missing the closing '",
                    ));
                }
                Some('\'') => {
                    if self.opts.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    /// `"..."`: `$` expands; the escape character only escapes `"`, `$` and itself and is
    /// otherwise kept.
    fn double_quote(&mut self) -> Result<String, ExpandError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        if self.opts.raw_quotes {
            out.push('"');
        }
        loop {
            match self.peek() {
                None => {
                    return Err(error(
                        start,
                        "unterminated double-quoted string: missing the closing \"",
                    ));
                }
                Some('"') => {
                    self.pos += 1;
                    if self.opts.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let value = self.dollar()?;
                    out.push_str(&value);
                }
                Some(c) => {
                    self.pos += 1;
                    let mut c = c;
                    if c == self.opts.escape {
                        if self.raw_escapes {
                            out.push(c);
                        }
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.opts.escape => {
                                self.pos += 1;
                                c = n;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    /// A name after `$` or `${`: all digits if it starts with one, a single special parameter
    /// character, or letters, digits and `_`. Empty when none of those follows.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && is_digit(c) {
                while let Some(d) = self.peek().filter(|&d| is_digit(d)) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && is_special_param(c) {
                self.pos += 1;
                return c.to_string();
            }
            if !is_name_char(c) {
                break;
            }
            self.pos += 1;
            name.push(c);
        }
        name
    }

    /// A reference starting at the `$` under the cursor.
    fn dollar(&mut self) -> Result<String, ExpandError> {
        let start = self.pos;
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.opts.keep_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1;
        if self.depth >= MAX_DEPTH {
            return Err(error(
                start,
                format!("variable references nested more than {MAX_DEPTH} deep"),
            ));
        }
        self.depth += 1;
        let result = self.braced(start);
        self.depth -= 1;
        result
    }

    /// The rest of a `${...}` whose `${` starts at `start`.
    fn braced(&mut self, start: usize) -> Result<String, ExpandError> {
        match self.peek() {
            None => return Err(missing_brace(start, "")),
            Some(c @ ('{' | '}' | ':')) => {
                return Err(error(
                    start,
                    format!(
                        "bad substitution: expected a variable name after \"${{\", found '{c}'"
                    ),
                ));
            }
            Some(_) => {}
        }
        let name = self.name();
        let op_pos = self.pos;
        let Some(op) = self.next() else {
            return Err(missing_brace(start, &name));
        };
        match op {
            '}' => Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.opts.keep_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' => {
                let modifier = self.next();
                if let Some(m @ ('#' | '%')) = modifier {
                    return Err(unsupported(&name, &format!(":{m}"), op_pos));
                }
                self.modifier(start, &name, true, modifier, op_pos)
            }
            '+' | '-' | '?' | '#' | '%' => self.modifier(start, &name, false, Some(op), op_pos),
            '/' => self.replace(start, &name),
            other if name.is_empty() => Err(error(
                start,
                format!(
                    "bad substitution: expected a variable name after \"${{\", found '{other}'"
                ),
            )),
            other => Err(unsupported(&name, &other.to_string(), op_pos)),
        }
    }

    /// `${NAME<op>word}` and `${NAME:<op>word}` for `-`, `+`, `?`, `#`, `##`, `%`, `%%`.
    fn modifier(
        &mut self,
        start: usize,
        name: &str,
        colon: bool,
        op: Option<char>,
        op_pos: usize,
    ) -> Result<String, ExpandError> {
        // Patterns keep their escapes so that `\*` stays a literal star.
        let raw = matches!(op, Some('#' | '%'));
        let (word, closed) = self.process_until(Some('}'), raw, None)?;
        if !closed {
            return Err(missing_brace(start, name));
        }
        let value = self.lookup(name);
        let mut op_text = String::from(if colon { ":" } else { "" });
        op_text.extend(op);
        if value.is_none() && self.opts.keep_unset {
            return Ok(format!("${{{name}{op_text}{word}}}"));
        }
        // With `:`, an empty value counts as unset.
        let missing = match &value {
            None => true,
            Some(v) => colon && v.is_empty(),
        };
        match op {
            Some('-') => Ok(if missing { word } else { value.unwrap_or_default() }),
            Some('+') => Ok(if missing { String::new() } else { word }),
            Some('?') => {
                if !missing {
                    return Ok(value.unwrap_or_default());
                }
                let message = if !word.is_empty() {
                    word
                } else if value.is_none() {
                    "is not allowed to be unset".to_string()
                } else {
                    "is not allowed to be empty".to_string()
                };
                Err(error(start, format!("{name}: {message}")))
            }
            Some(c @ ('#' | '%')) => {
                let (greedy, pat) = match word.strip_prefix(c) {
                    Some(rest) => (true, rest),
                    None => (false, word.as_str()),
                };
                let value = value.unwrap_or_default();
                let trimmed = if c == '#' {
                    pattern::trim_prefix(pat, &value, greedy)
                } else {
                    pattern::trim_suffix(pat, &value, greedy)
                };
                trimmed.map_err(|e| bad_pattern(start, name, pat, &e))
            }
            _ => Err(unsupported(name, &op_text, op_pos)),
        }
    }

    /// `${NAME/pattern/replacement}` and `${NAME//pattern/replacement}`.
    fn replace(&mut self, start: usize, name: &str) -> Result<String, ExpandError> {
        let all = self.peek() == Some('/');
        if all {
            self.pos += 1;
        }
        let (pat, closed) = self.process_until(Some('/'), true, None)?;
        if !closed {
            return Err(error(
                start,
                format!(
                    "missing '/' after the pattern in \"${{{name}/...\" \
                     (the form is ${{{name}/pattern/replacement}})"
                ),
            ));
        }
        let (replacement, closed) = self.process_until(Some('}'), true, None)?;
        if !closed {
            return Err(missing_brace(start, name));
        }
        let value = self.lookup(name);
        if value.is_none() && self.opts.keep_unset {
            // BuildKit writes a single '/' here even for `//`.
            return Ok(format!("${{{name}/{pat}/{replacement}}}"));
        }
        pattern::replace(&pat, &value.unwrap_or_default(), &replacement, all)
            .map_err(|e| bad_pattern(start, name, &pat, &e))
    }
}

fn missing_brace(start: usize, name: &str) -> ExpandError {
    error(start, format!("missing '}}' to close \"${{{name}\""))
}

fn unsupported(name: &str, op: &str, offset: usize) -> ExpandError {
    error(
        offset,
        format!(
            "unsupported modifier \"{op}\" in \"${{{name}{op}...}}\" \
             (supported: - :- + :+ ? :? # ## % %% / //)"
        ),
    )
}

fn bad_pattern(start: usize, name: &str, pat: &str, problem: &str) -> ExpandError {
    error(start, format!("invalid pattern \"{pat}\" in \"${{{name}...}}\": {problem}"))
}
