//! Second-level helpers: splitting an instruction line into keyword, flags and argument words
//! the way BuildKit's line parsers do. All positions are byte offsets into the line.

use serde::Deserialize;

/// Whitespace as BuildKit's `reWhitespace` (`[\t\v\f\r ]`) sees it.
pub(crate) fn is_sep(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// Byte range of `s[start..end]` with Unicode whitespace trimmed on both sides.
pub(crate) fn trim_range(s: &str, start: usize, end: usize) -> (usize, usize) {
    let piece = &s[start..end];
    let lead = piece.len() - piece.trim_start().len();
    let trail = piece.len() - piece.trim_end().len();
    if lead == piece.len() {
        return (start, start);
    }
    (start + lead, end - trail)
}

/// Splits `s[start..end]` on runs of [`is_sep`] whitespace (BuildKit's
/// `parseStringsWhitespaceDelimited`; no quote handling).
pub(crate) fn split_sep(s: &str, start: usize, end: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut word: Option<usize> = None;
    for (i, c) in s[start..end].char_indices() {
        let i = start + i;
        if is_sep(c) {
            if let Some(w) = word.take() {
                out.push((w, i));
            }
        } else if word.is_none() {
            word = Some(i);
        }
    }
    if let Some(w) = word {
        out.push((w, end));
    }
    out
}

/// Splits `s[start..end]` into words, keeping quotes and escapes in the words (BuildKit's
/// `parseWords`, used for `ENV`, `LABEL` and `ARG`). An escape character at the very end is
/// dropped.
pub(crate) fn parse_words(s: &str, start: usize, end: usize, escape: char) -> Vec<(usize, usize)> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let mut out = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word_start = start;
    let mut word_end = start;
    let mut blank_ok = false;
    let mut chars = s[start..end].char_indices().map(|(i, c)| (start + i, c)).peekable();
    while let Some((i, c)) = chars.next() {
        let next_is_end = chars.peek().is_none();
        match phase {
            Phase::Spaces => {
                if c.is_whitespace() {
                    continue;
                }
                word_start = i;
                word_end = i;
                blank_ok = false;
                phase = Phase::Word;
            }
            Phase::Word | Phase::Quote(_) => {}
        }
        match phase {
            Phase::Spaces => {}
            Phase::Word => {
                if c.is_whitespace() {
                    if blank_ok || word_end > word_start {
                        out.push((word_start, word_end));
                    }
                    phase = Phase::Spaces;
                    continue;
                }
                if c == '\'' || c == '"' {
                    phase = Phase::Quote(c);
                    blank_ok = true;
                }
                if c == escape {
                    if next_is_end {
                        continue;
                    }
                    if let Some((j, n)) = chars.next() {
                        word_end = j + n.len_utf8();
                    }
                    continue;
                }
                word_end = i + c.len_utf8();
            }
            Phase::Quote(q) => {
                if c == q {
                    phase = Phase::Word;
                }
                if c == escape && q != '\'' {
                    if next_is_end {
                        phase = Phase::Word;
                        continue;
                    }
                    if let Some((j, n)) = chars.next() {
                        word_end = j + n.len_utf8();
                    }
                    continue;
                }
                word_end = i + c.len_utf8();
            }
        }
    }
    if phase != Phase::Spaces && (blank_ok || word_end > word_start) {
        out.push((word_start, word_end));
    }
    out
}

/// A flag as extracted from the line, before it is checked against what the instruction takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawFlag {
    /// Name without `--`.
    pub name: String,
    /// Value after `=`, quotes removed.
    pub value: Option<String>,
    /// Byte range of the flag as written.
    pub start: usize,
    /// End of that range.
    pub end: usize,
}

/// Extracts leading `--flag[=value]` words from `s[start..end]` (BuildKit's
/// `extractBuilderFlags`: quotes removed, `\` escapes the next character, `--` alone ends the
/// flags). Returns the flags and the offset where the arguments start.
pub(crate) fn extract_flags(s: &str, start: usize, end: usize) -> (Vec<RawFlag>, usize) {
    let mut flags = Vec::new();
    let mut chars = s[start..end].char_indices().map(|(i, c)| (start + i, c)).peekable();
    loop {
        // Looking for the start of a word.
        let (i, c) = loop {
            match chars.peek() {
                None => return (flags, end),
                Some(&(_, c)) if c.is_whitespace() => {
                    chars.next();
                }
                Some(&pair) => break pair,
            }
        };
        if c != '-' || !s[i..end].starts_with("--") {
            return (flags, i);
        }
        let word_start = i;
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut word_end = end;
        while let Some((j, ch)) = chars.next() {
            match quote {
                None if ch.is_whitespace() => {
                    word_end = j;
                    break;
                }
                None if ch == '\'' || ch == '"' => quote = Some(ch),
                Some(q) if ch == q => quote = None,
                _ if ch == '\\' => {
                    if let Some((_, n)) = chars.next() {
                        word.push(n);
                    }
                }
                _ => word.push(ch),
            }
        }
        if word == "--" {
            return (flags, word_end);
        }
        let body = &word[2..];
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (body.to_string(), None),
        };
        flags.push(RawFlag { name, value, start: word_start, end: word_end });
    }
}

/// The outcome of reading arguments as a JSON array (BuildKit's `parseJSON`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Json {
    /// Not a JSON array: the shell form applies. Holds why, when the text started with `[`.
    Shell(Option<String>),
    /// A JSON array holding something other than strings: an error in BuildKit.
    NotStrings,
    /// An array of strings: each value and the byte range of its literal.
    Strings(Vec<(String, usize, usize)>),
}

/// Reads `s[start..end]` as a JSON array of strings. Like Go's `json.Decoder`, text after the
/// array is ignored.
pub(crate) fn parse_json(s: &str, start: usize, end: usize) -> Json {
    let (start, end) = trim_range(s, start, end);
    let text = &s[start..end];
    if !text.starts_with('[') {
        return Json::Shell(None);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let items = match serde_json::Value::deserialize(&mut de) {
        Ok(serde_json::Value::Array(items)) => items,
        Ok(_) => return Json::Shell(None),
        Err(e) => return Json::Shell(Some(e.to_string())),
    };
    let mut values = Vec::with_capacity(items.len());
    for item in items {
        match item {
            serde_json::Value::String(v) => values.push(v),
            _ => return Json::NotStrings,
        }
    }
    // Locate each string literal: in a valid array of strings every `"` outside a literal
    // opens the next element.
    let mut out = Vec::with_capacity(values.len());
    let mut chars = text.char_indices();
    let mut values = values.into_iter();
    while let Some((i, c)) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut close = text.len();
        while let Some((j, ch)) = chars.next() {
            match ch {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    close = j + 1;
                    break;
                }
                _ => {}
            }
        }
        let Some(v) = values.next() else { break };
        out.push((v, start + i, start + close));
    }
    Json::Strings(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts<'a>(s: &'a str, ranges: &[(usize, usize)]) -> Vec<&'a str> {
        ranges.iter().map(|&(a, b)| &s[a..b]).collect()
    }

    #[test]
    fn parse_words_keeps_quotes_and_escapes() {
        let cases: &[(&str, &[&str])] = &[
            ("a=1 b=2", &["a=1", "b=2"]),
            ("a=\"x y\" b='p q'", &["a=\"x y\"", "b='p q'"]),
            ("a=x\\ y b", &["a=x\\ y", "b"]),
            ("  a  ", &["a"]),
            ("a=\"\"", &["a=\"\""]),
            ("\"\"", &["\"\""]),
            ("a\\", &["a"]),
            ("a='it\\'s' b", &["a='it\\'s' b"]),
            ("k=\"x\\\" y\"", &["k=\"x\\\" y\""]),
        ];
        for (input, want) in cases {
            let got = parse_words(input, 0, input.len(), '\\');
            assert_eq!(texts(input, &got), *want, "input {input:?}");
        }
        let s = "a=`\" b";
        assert_eq!(texts(s, &parse_words(s, 0, s.len(), '`')), ["a=`\"", "b"]);
    }

    #[test]
    fn extract_flags_like_buildkit() {
        let s = "--from=build --chown=\"a b\" --link src dst";
        let (flags, rest) = extract_flags(s, 0, s.len());
        assert_eq!(&s[rest..], "src dst");
        let got: Vec<_> = flags.iter().map(|f| (f.name.as_str(), f.value.as_deref())).collect();
        assert_eq!(got, [("from", Some("build")), ("chown", Some("a b")), ("link", None)]);
        assert_eq!(&s[flags[1].start..flags[1].end], "--chown=\"a b\"");

        let s = "-- --not-a-flag x";
        let (flags, rest) = extract_flags(s, 0, s.len());
        assert!(flags.is_empty());
        assert_eq!(s[rest..].trim(), "--not-a-flag x");

        let s = "-x --y";
        let (flags, rest) = extract_flags(s, 0, s.len());
        assert!(flags.is_empty());
        assert_eq!(rest, 0);

        let s = "--mount=type=cache,target=/x";
        let (flags, rest) = extract_flags(s, 0, s.len());
        assert_eq!(rest, s.len());
        assert_eq!(flags[0].value.as_deref(), Some("type=cache,target=/x"));
    }

    #[test]
    fn json_arrays_like_go() {
        let s = r#"CMD ["a", "b\"c"] trailing"#;
        match parse_json(s, 4, s.len()) {
            Json::Strings(v) => {
                assert_eq!(v[0], ("a".to_string(), 4 + 1, 4 + 4));
                assert_eq!(v[1].0, "b\"c");
                assert_eq!(&s[v[1].1..v[1].2], r#""b\"c""#);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parse_json("[1]", 0, 3), Json::NotStrings);
        assert!(matches!(parse_json("['a']", 0, 5), Json::Shell(Some(_))));
        assert_eq!(parse_json("echo [x]", 0, 8), Json::Shell(None));
        assert_eq!(parse_json("[]", 0, 2), Json::Strings(vec![]));
    }

    #[test]
    fn split_sep_ignores_quotes() {
        let s = "\"a b\" c";
        assert_eq!(texts(s, &split_sep(s, 0, s.len())), ["\"a", "b\"", "c"]);
        assert_eq!(trim_range("  x  ", 0, 5), (2, 3));
        assert_eq!(trim_range("   ", 0, 3), (0, 0));
    }
}
