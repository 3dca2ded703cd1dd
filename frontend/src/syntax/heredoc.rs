//! Finding heredoc openers (`<<EOF`, `<<-EOF`, `3<<"EOF"`) in an instruction line.
//!
//! BuildKit splits the whole line into shell words (quotes and escapes kept) and treats every
//! word of the form `[digits]<<[-]DELIM` as a heredoc; a quoted delimiter turns expansion off.

/// A heredoc opener found on a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeredocSpec {
    /// The delimiter, quotes removed.
    pub name: String,
    /// The body is expanded (no quotes in the delimiter).
    pub expand: bool,
    /// `<<-`.
    pub chomp: bool,
    /// The digits before `<<`.
    pub fd: u32,
    /// Byte range of the opener word in the line.
    pub start: usize,
    /// End of that range.
    pub end: usize,
}

/// Splits `line` into shell words on unquoted whitespace, keeping quotes and escapes
/// (BuildKit's lexer in raw mode, escape `\`). `None` when a quote is not closed.
fn raw_words(line: &str) -> Option<Vec<(usize, usize)>> {
    let mut words = Vec::new();
    let mut start: Option<usize> = None;
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                words.push((s, i));
            }
            continue;
        }
        if start.is_none() {
            start = Some(i);
        }
        match c {
            '\\' => {
                chars.next();
            }
            '\'' => loop {
                match chars.next() {
                    Some((_, '\'')) => break,
                    Some(_) => {}
                    None => return None,
                }
            },
            '"' => loop {
                match chars.next() {
                    Some((_, '"')) => break,
                    Some((_, '\\')) => {
                        chars.next();
                    }
                    Some(_) => {}
                    None => return None,
                }
            },
            _ => {}
        }
    }
    if let Some(s) = start {
        words.push((s, line.len()));
    }
    Some(words)
}

/// Removes quotes and processes `\` escapes the way BuildKit's lexer does for one word.
/// `None` when a quote is not closed or the word splits into several.
fn unquote(word: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '\'' => loop {
                match chars.next()? {
                    '\'' => break,
                    ch => out.push(ch),
                }
            },
            '"' => loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => match chars.next()? {
                        ch @ ('"' | '$' | '\\') => out.push(ch),
                        ch => {
                            out.push('\\');
                            out.push(ch);
                        }
                    },
                    ch => out.push(ch),
                }
            },
            c if c.is_whitespace() => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

fn count_quotes(s: &str) -> usize {
    s.chars().filter(|&c| c == '\'' || c == '"').count()
}

/// Parses one word as a heredoc opener (`^(\d*)<<(-?)([^<]*)$` with a non-empty delimiter).
/// Returns `(fd, chomp, name, expand)`.
pub(crate) fn parse_opener(word: &str) -> Option<(u32, bool, String, bool)> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let rest = word[digits..].strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let name = unquote(rest)?;
    let expand = count_quotes(&name) == count_quotes(rest);
    let fd = word[..digits].parse::<u32>().unwrap_or(0);
    Some((fd, chomp, name, expand))
}

/// All heredoc openers on `line` (an instruction that may carry heredocs), in order.
pub(crate) fn find_openers(line: &str, offset: usize) -> Vec<HeredocSpec> {
    let Some(words) = raw_words(line) else {
        return Vec::new();
    };
    words
        .into_iter()
        .filter_map(|(s, e)| {
            let (fd, chomp, name, expand) = parse_opener(&line[s..e])?;
            Some(HeredocSpec { name, expand, chomp, fd, start: offset + s, end: offset + e })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openers_follow_buildkit_rules() {
        let valid = ["<<EOF", "<<'EOF'", "<<\"EOF\"", "<<-EOF", "<<-'EOF'", "<<-\"EOF\""];
        for w in valid {
            let (_, _, name, _) = parse_opener(w).unwrap();
            assert_eq!(name, "EOF", "{w}");
        }
        for w in ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<'EOF", "<<EOF\"", "x<<EOF"] {
            assert_eq!(parse_opener(w), None, "{w}");
        }
        assert_eq!(parse_opener("3<<EOF"), Some((3, false, "EOF".into(), true)));
        assert_eq!(parse_opener("<<-'E'OF"), Some((0, true, "EOF".into(), false)));
        assert_eq!(parse_opener("<<E\\\"OF"), Some((0, false, "E\"OF".into(), true)));
    }

    #[test]
    fn finds_openers_outside_quotes_only() {
        let names = |l: &str| find_openers(l, 0).into_iter().map(|h| h.name).collect::<Vec<_>>();
        assert_eq!(names("RUN <<EOF"), ["EOF"]);
        assert_eq!(names("RUN <<EOF <<EOF2"), ["EOF", "EOF2"]);
        assert_eq!(names("RUN 4<<EOF cat"), ["EOF"]);
        assert!(names("RUN '<<EOF'").is_empty());
        assert!(names("RUN \"<<EOF\"").is_empty());
        assert!(names("RUN echo 'unterminated <<EOF").is_empty());
        assert_eq!(names("COPY <<a <<b /dest"), ["a", "b"]);
        let spec = &find_openers("RUN  <<-X", 10)[0];
        assert_eq!((spec.start, spec.end, spec.chomp), (15, 19, true));
    }
}
