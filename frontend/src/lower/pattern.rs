//! Syntax check of `--exclude` patterns: Go `filepath.Match` syntax with `**`, and a leading
//! `!` for exceptions, as BuildKit's pattern matcher accepts them.

/// Reads one character of a class (BuildKit/Go `getEsc`): not `-` or `]`, `\` escapes.
fn class_char(chars: &[char], i: &mut usize) -> Result<char, String> {
    match chars.get(*i) {
        None => Err("a [ has no closing ]".to_string()),
        Some('-') | Some(']') => {
            Err(format!("{:?} cannot start a range in [...]; escape it with \\", chars[*i]))
        }
        Some('\\') => {
            *i += 1;
            let c = *chars.get(*i).ok_or("a [ has no closing ]")?;
            *i += 1;
            Ok(c)
        }
        Some(&c) => {
            *i += 1;
            Ok(c)
        }
    }
}

/// Checks `pattern`; the error says what is wrong.
pub(crate) fn validate(pattern: &str) -> Result<(), String> {
    let body = match pattern.strip_prefix('!') {
        Some("") => return Err("\"!\" alone excludes nothing; write !PATTERN".to_string()),
        Some(rest) => rest,
        None => pattern,
    };
    if body.is_empty() {
        return Err("an empty pattern matches nothing".to_string());
    }
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return Err("the pattern ends with an unfinished escape \\".to_string());
                }
                i += 2;
            }
            '[' => {
                i += 1;
                if chars.get(i) == Some(&'^') {
                    i += 1;
                }
                let mut ranges = 0;
                loop {
                    if chars.get(i) == Some(&']') && ranges > 0 {
                        i += 1;
                        break;
                    }
                    class_char(&chars, &mut i)?;
                    if chars.get(i) == Some(&'-') {
                        i += 1;
                        class_char(&chars, &mut i)?;
                    }
                    ranges += 1;
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn go_pattern_syntax() {
        for good in
            ["*.txt", "**/*.go", "a/b", "[a-z]*", "[^0-9]", "\\*", "!keep.txt", "[\\]]", "x]"]
        {
            assert_eq!(validate(good), Ok(()), "{good}");
        }
        let bad: &[(&str, &str)] = &[
            ("[a", "no closing ]"),
            ("[]", "cannot start a range"),
            ("[a-]", "cannot start a range"),
            ("a\\", "unfinished escape"),
            ("!", "excludes nothing"),
            ("", "empty pattern"),
        ];
        for (p, want) in bad {
            let e = validate(p).unwrap_err();
            assert!(e.contains(want), "{p}: {e}");
        }
    }
}
