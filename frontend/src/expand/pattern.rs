//! Shell patterns for `${VAR#p}`, `${VAR%p}` and `${VAR/p/r}`, matched the way BuildKit does.
//!
//! BuildKit turns the pattern into a Go regular expression (`*` → `.*` or `.*?`, `?` → `.`,
//! everything else literal; no bracket expressions) and uses leftmost-first matching. This is a
//! direct matcher for that small language with the same priorities: a backtracking search in
//! priority order, memoising failed states so it stays linear in pattern × text. Like Go's `.`,
//! the wildcards never match a newline.

use std::collections::HashSet;

use super::names::is_name_char;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `?`: any one character but `\n`.
    Any,
    /// `*`: any run of characters without `\n`.
    Star,
}

/// A compiled pattern.
struct Pattern {
    toks: Vec<Tok>,
    /// `*` prefers the longest run (`##`, `%%`, `/`) instead of the shortest.
    greedy: bool,
}

impl Pattern {
    /// Compiles a pattern. `\` makes `*`, `?` and `\` literal; `\}` and `\/` are `}` and `/`.
    fn compile(pattern: &str, greedy: bool) -> Result<Pattern, String> {
        let mut chars: Vec<char> = pattern.chars().collect();
        // BuildKit reads the pattern with Go's text/scanner, which drops a leading BOM.
        if chars.first() == Some(&'\u{feff}') {
            chars.remove(0);
        }
        let mut toks = Vec::with_capacity(chars.len());
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                '*' => toks.push(Tok::Star),
                '?' => toks.push(Tok::Any),
                '\\' => match chars.get(i) {
                    // The escape only kept `}` or `/` from ending the `${...}`; the next
                    // character is read as an ordinary literal.
                    Some('}' | '/') => {}
                    Some(&e @ ('*' | '?' | '\\')) => {
                        toks.push(Tok::Lit(e));
                        i += 1;
                    }
                    Some(other) => {
                        return Err(format!(
                            "invalid escape '\\{other}' (only \\*, \\?, \\\\, \\}} and \\/ \
                             are allowed)"
                        ));
                    }
                    None => return Err("the pattern ends with a lone '\\'".to_string()),
                },
                other => toks.push(Tok::Lit(other)),
            }
        }
        Ok(Pattern { toks, greedy })
    }

    /// The end of the highest-priority match starting at `start`, if any.
    fn match_at(&self, text: &[char], start: usize, memo: &mut Memo) -> Option<usize> {
        // Depth-first search in priority order over states (pattern index, text index); `path`
        // holds the states being explored and how many of their alternatives were tried.
        let mut path: Vec<(usize, usize, usize)> = Vec::new();
        let mut next = Some((0, start));
        loop {
            if let Some((pi, ti)) = next.take() {
                if pi == self.toks.len() {
                    // The states on the path lead here: they did not fail.
                    for &(pi, ti, _) in &path {
                        memo.remove(pi, ti);
                    }
                    return Some(ti);
                }
                if memo.insert(pi, ti) {
                    path.push((pi, ti, 0));
                }
            }
            let (pi, ti, tried) = path.last_mut()?;
            if *tried == 2 {
                path.pop();
                continue;
            }
            next = self.alternatives(*pi, *ti, text)[*tried];
            *tried += 1;
        }
    }

    /// The states that follow `(pi, ti)`, in order of priority.
    fn alternatives(&self, pi: usize, ti: usize, text: &[char]) -> [Option<(usize, usize)>; 2] {
        let here = text.get(ti).copied();
        let wild = here.is_some_and(|c| c != '\n');
        match self.toks[pi] {
            Tok::Lit(c) => [(here == Some(c)).then_some((pi + 1, ti + 1)), None],
            Tok::Any => [wild.then_some((pi + 1, ti + 1)), None],
            Tok::Star => {
                let more = wild.then_some((pi, ti + 1));
                let done = Some((pi + 1, ti));
                if self.greedy { [more, done] } else { [done, more] }
            }
        }
    }

    /// The leftmost match at or after `from`, as `(start, end)`.
    fn find(&self, text: &[char], from: usize, memo: &mut Memo) -> Option<(usize, usize)> {
        (from..=text.len()).find_map(|s| self.match_at(text, s, memo).map(|e| (s, e)))
    }

    fn memo(&self, text: &[char]) -> Memo {
        Memo::new(self.toks.len() + 1, text.len() + 1)
    }
}

/// States `(pattern index, text index)` known not to reach the end of the pattern (plus those
/// being explored). That does not depend on where the match started, so one memo serves every
/// search over the same text.
enum Memo {
    Bits { width: usize, bits: Vec<u64> },
    Set { width: usize, set: HashSet<usize> },
}

impl Memo {
    fn new(rows: usize, width: usize) -> Memo {
        const MAX_BITS: usize = 1 << 24;
        match rows.checked_mul(width) {
            Some(n) if n <= MAX_BITS => Memo::Bits { width, bits: vec![0; n.div_ceil(64)] },
            _ => Memo::Set { width, set: HashSet::new() },
        }
    }

    /// Marks a state; false when it was already marked.
    fn insert(&mut self, pi: usize, ti: usize) -> bool {
        match self {
            Memo::Bits { width, bits } => {
                let n = pi * *width + ti;
                let (word, bit) = (n / 64, 1u64 << (n % 64));
                let fresh = bits[word] & bit == 0;
                bits[word] |= bit;
                fresh
            }
            Memo::Set { width, set } => set.insert(pi * *width + ti),
        }
    }

    /// Unmarks a state.
    fn remove(&mut self, pi: usize, ti: usize) {
        match self {
            Memo::Bits { width, bits } => {
                let n = pi * *width + ti;
                bits[n / 64] &= !(1u64 << (n % 64));
            }
            Memo::Set { width, set } => {
                set.remove(&(pi * *width + ti));
            }
        }
    }
}

/// Removes the shortest (or longest, `greedy`) prefix of `value` matching `pattern`.
pub(crate) fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let pat = Pattern::compile(pattern, greedy)?;
    let text: Vec<char> = value.chars().collect();
    let mut memo = pat.memo(&text);
    Ok(match pat.match_at(&text, 0, &mut memo) {
        Some(end) => text[end..].iter().collect(),
        None => value.to_string(),
    })
}

/// Removes the shortest (or longest, `greedy`) suffix of `value` matching `pattern`.
///
/// As in BuildKit, this is a prefix trim of the reversed value with the reversed pattern
/// (escape pairs kept in order).
pub(crate) fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let reversed_value: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &reversed_value, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

/// Reverses a pattern, keeping each `\x` pair as `\x`.
fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = chars.clone();
    let last = chars.len().saturating_sub(1);
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' && i != last {
            out[last - i - 1] = '\\';
            out[last - i] = chars[i + 1];
            i += 2;
        } else {
            out[last - i] = chars[i];
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// Replaces the first (or every, `all`) match of `pattern` in `value`; `*` is greedy.
///
/// The first-match form inserts `replacement` as is. The every-match form follows Go's
/// `Regexp.ReplaceAllString`: `$0`/`${0}` in the replacement stand for the matched text, `$$`
/// for `$`, any other `$name` for nothing; an empty match right after a match is not replaced.
pub(crate) fn replace(
    pattern: &str,
    value: &str,
    replacement: &str,
    all: bool,
) -> Result<String, String> {
    let pat = Pattern::compile(pattern, true)?;
    let text: Vec<char> = value.chars().collect();
    let mut memo = pat.memo(&text);
    if !all {
        return Ok(match pat.find(&text, 0, &mut memo) {
            Some((start, end)) => {
                let mut out: String = text[..start].iter().collect();
                out.push_str(replacement);
                out.extend(&text[end..]);
                out
            }
            None => value.to_string(),
        });
    }
    let mut out = String::with_capacity(value.len());
    let mut last_end = 0;
    let mut search = 0;
    while search <= text.len() {
        let Some((start, end)) = pat.find(&text, search, &mut memo) else {
            break;
        };
        out.extend(&text[last_end..start]);
        if end > last_end || start == 0 {
            expand_template(&mut out, replacement, &text[start..end]);
        }
        last_end = end;
        search = if search + 1 > end { search + 1 } else { end };
    }
    out.extend(&text[last_end..]);
    Ok(out)
}

/// Go's `Regexp.Expand` for a pattern without capture groups: only group 0 (the match) exists.
fn expand_template(out: &mut String, template: &str, matched: &[char]) {
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        match template_ref(rest) {
            Some((name, after)) => {
                if name == "0" {
                    out.extend(matched);
                }
                rest = after;
            }
            None => out.push('$'),
        }
    }
    out.push_str(rest);
}

/// Reads `name` or `{name}` after a `$`; `None` when malformed (then the `$` is literal).
fn template_ref(s: &str) -> Option<(&str, &str)> {
    let (braced, body) = match s.strip_prefix('{') {
        Some(body) => (true, body),
        None => (false, s),
    };
    let len: usize = body.chars().take_while(|&c| is_name_char(c)).map(char::len_utf8).sum();
    if len == 0 {
        return None;
    }
    let (name, after) = body.split_at(len);
    if braced {
        let after = after.strip_prefix('}')?;
        return Some((name, after));
    }
    Some((name, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compile_errors() {
        for bad in ["\\", "\\x", "\\\\\\", "a\\b", "*\\"] {
            assert!(Pattern::compile(bad, true).is_err(), "{bad:?}");
        }
        for good in ["", "*", "?", "\\*", "\\?", "\\\\", "\\}", "\\/", "()[]{}^$.+|"] {
            assert!(Pattern::compile(good, true).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn reversing_patterns_keeps_escape_pairs() {
        let cases = [
            ("a\\*c", "c\\*a"),
            ("\\\\\\ab", "b\\a\\\\"),
            ("ab\\", "\\ba"),
            ("x\\y🚀z", "z🚀\\yx"),
            ("\\\\b", "b\\\\"),
            ("", ""),
        ];
        for (pattern, want) in cases {
            assert_eq!(reverse_pattern(pattern), want, "{pattern:?}");
        }
    }

    #[test]
    fn prefix_and_suffix() {
        let cases = [
            ("*", "xxyy", false, "xxyy"),
            ("*", "xxyy", true, ""),
            ("*x", "xxyy", false, "xyy"),
            ("*x", "xxyy", true, "yy"),
            ("?", "abc", false, "bc"),
            ("a*c", "abcabc", false, "abc"),
            ("a*c", "abcabc", true, ""),
            ("z", "abc", false, "abc"),
            ("*", "a\nb", true, "\nb"),
            ("?", "\nb", false, "\nb"),
        ];
        for (pattern, value, greedy, want) in cases {
            assert_eq!(trim_prefix(pattern, value, greedy).unwrap(), want, "#{pattern} {value}");
        }
        let cases = [
            ("*", "xxyy", false, "xxyy"),
            ("*", "xxyy", true, ""),
            ("y*", "xxyy", false, "xxy"),
            ("y*", "xxyy", true, "xx"),
            ("\\**", "xx**", true, "xx"),
            ("\\**\\*", "a***yy*", true, "a"),
        ];
        for (pattern, value, greedy, want) in cases {
            assert_eq!(trim_suffix(pattern, value, greedy).unwrap(), want, "%{pattern} {value}");
        }
    }

    #[test]
    fn replacing() {
        let cases = [
            ("o", "foo", "0", false, "f0o"),
            ("o", "foo", "0", true, "f00"),
            ("", "ab", "-", false, "-ab"),
            ("", "ab", "-", true, "-a-b-"),
            ("*", "ab", "-", true, "-"),
            ("x*", "axbxc", "<$0>", true, "a<xbxc>"),
            ("b", "abc", "[${0}$$$1$x${x}$]", true, "a[b$$]c"),
            ("b", "abc", "${0", true, "a${0c"),
            ("b", "abc", "$0", false, "a$0c"),
            ("?", "a\nb", ".", true, ".\n."),
        ];
        for (pattern, value, repl, all, want) in cases {
            assert_eq!(replace(pattern, value, repl, all).unwrap(), want, "{pattern} {value}");
        }
    }

    #[test]
    fn many_stars_stay_fast() {
        let pattern = "*a".repeat(200);
        let value = "b".repeat(5000);
        assert_eq!(trim_prefix(&pattern, &value, false).unwrap(), value);
        assert_eq!(replace(&pattern, &value, "", true).unwrap(), value);
    }
}
