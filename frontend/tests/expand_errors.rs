//! Words BuildKit rejects: each must fail, with a message saying why and the character offset
//! of the construct at fault.

mod expand_common;

use expand_common::lookup;
use kiln_frontend::expand::{ExpandError, expand_word};

/// `(input, offset, text the message contains)` with `\` as the escape character.
const CASES: &[(&str, usize, &str)] = &[
    // unterminated quotes point at the opening quote
    ("he'llo", 2, "unterminated single-quoted string"),
    (r"he\\'llo", 4, "unterminated single-quoted string"),
    (r"'hello\''", 8, "unterminated single-quoted string"),
    ("'", 0, "missing the closing '"),
    (r#"a"bc"#, 1, "unterminated double-quoted string"),
    (r#"""""#, 2, "missing the closing \""),
    (r#""\""#, 0, "unterminated double-quoted string"),
    (r#""abc\"#, 0, "unterminated double-quoted string"),
    (r#"$""#, 1, "unterminated double-quoted string"),
    (r#""${PWD}"#, 0, "unterminated double-quoted string"),
    (r#"é"$PWD"#, 1, "unterminated double-quoted string"),
    ("${UNSET:-'}", 9, "unterminated single-quoted string"),
    // an unclosed `${` points at its `$`
    ("${", 0, "missing '}' to close \"${\""),
    ("${x", 0, "missing '}' to close \"${x\""),
    ("ab${x:-y", 2, "missing '}' to close \"${x\""),
    ("${x:", 0, "missing '}'"),
    ("${x:}", 0, "missing '}'"),
    ("${x-", 0, "missing '}'"),
    (r"${x-\}", 0, "missing '}'"),
    (r"${x:-a\", 0, "missing '}'"),
    ("${x#", 0, "missing '}'"),
    (r"${x#\}", 0, "missing '}'"),
    ("${x:-${y}", 0, "missing '}' to close \"${x\""),
    ("${x:-${y", 5, "missing '}' to close \"${y\""),
    ("${x/a/b", 0, "missing '}'"),
    ("${x//a/", 0, "missing '}'"),
    ("x${x/a}", 1, "missing '/'"),
    ("${x//}", 0, "missing '/'"),
    ("${x//ww}", 0, "missing '/'"),
    (r"${x/a\/}", 0, "missing '/'"),
    // `${` must be followed by a name
    ("${}", 0, "bad substitution"),
    ("${:}", 0, "bad substitution"),
    ("${:-x}", 0, "bad substitution"),
    ("${{x}}", 0, "bad substitution"),
    ("a${ x}", 1, "bad substitution"),
    // forms BuildKit does not support: the offset is the modifier's
    ("${PWD:=x}", 5, "unsupported modifier \":=\""),
    ("${PWD=x}", 5, "unsupported modifier \"=\""),
    ("é${x=1}", 4, "unsupported modifier \"=\""),
    ("${UNSET:=x}", 7, "unsupported modifier \":=\""),
    ("${PWD:#x}", 5, "unsupported modifier \":#\""),
    ("${PWD:%x}", 5, "unsupported modifier \":%\""),
    ("${PWD:/a/b}", 5, "unsupported modifier \":/\""),
    ("${PWD:}}", 5, "unsupported modifier \":}\""),
    ("${PWD!}", 5, "unsupported modifier \"!\""),
    ("${PWD }", 5, "unsupported modifier \" \""),
    ("${#PWD}", 3, "unsupported modifier \"P\""),
    ("${!PWD}", 3, "unsupported modifier \"P\""),
    ("${-x}", 3, "unsupported modifier \"x\""),
    ("${1a}", 3, "unsupported modifier \"a\""),
    ("${PWD^^}", 5, "unsupported modifier \"^\""),
    ("${PWD,}", 5, "unsupported modifier \",\""),
    ("${PWD:0:1}", 5, "unsupported modifier \":0\""),
    // `?` and `:?` with the user's message or a default one
    ("${UNSET:?must be set}", 0, "UNSET: must be set"),
    ("${UNSET?must be set}", 0, "UNSET: must be set"),
    ("x ${NULL:?empty!}", 2, "NULL: empty!"),
    ("${UNSET:?}", 0, "UNSET: is not allowed to be unset"),
    ("${UNSET?}", 0, "UNSET: is not allowed to be unset"),
    ("${NULL:?}", 0, "NULL: is not allowed to be empty"),
    ("${UNSET:?it is $PWD}", 0, "UNSET: it is /home"),
    ("${UNSET:?'a  b'}", 0, "UNSET: a  b"),
    ("${PWD:-${UNSET:?inner}}", 7, "UNSET: inner"),
    // patterns with an escape the matcher does not know, even when the variable is unset
    (r"${PWD#\x}", 0, "invalid escape '\\x'"),
    (r"${UNSET#\x}", 0, "invalid escape"),
    (r"${PWD%a\b}", 0, "invalid escape"),
    (r"${PWD/\a/b}", 0, "invalid escape"),
    (r#"${PWD#"\"}"#, 6, "unterminated double-quoted string"),
    ("${PWD#'\\'}", 0, "lone '\\'"),
    (r"${PWD##\}", 0, "missing '}'"),
];

#[test]
fn errors() {
    let mut failures = Vec::new();
    for &(input, offset, text) in CASES {
        match expand_word(input, '\\', &lookup) {
            Err(ExpandError { message, offset: got })
                if got == offset && message.contains(text) => {}
            other => failures.push(format!("{input:?}: want {text:?} at {offset}, got {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn backtick_escape_errors() {
    let cases: &[(&str, usize, &str)] = &[
        // `\` is an ordinary character: `\/` does not escape the separator here
        (r"${PWD/\//:}", 0, "lone '\\'"),
        (r#""a`"#, 0, "unterminated double-quoted string"),
        ("${x:-a`}", 0, "missing '}'"),
    ];
    for &(input, offset, text) in cases {
        let err = expand_word(input, '`', &lookup).unwrap_err();
        assert_eq!(err.offset, offset, "{input:?}: {err}");
        assert!(err.message.contains(text), "{input:?}: {err}");
    }
}

#[test]
fn display_is_the_message() {
    let err = expand_word("${UNSET:?set it with --build-arg}", '\\', &lookup).unwrap_err();
    assert_eq!(err.to_string(), "UNSET: set it with --build-arg");
    assert_eq!(err.to_string(), err.message);
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = "${a:-".repeat(10_000);
    let err = expand_word(&deep, '\\', &|_| None).unwrap_err();
    assert!(err.message.contains("nested more than"), "{err}");
    let ok = format!("{}x{}", "${a:-".repeat(150), "}".repeat(150));
    assert_eq!(expand_word(&ok, '\\', &|_| None).unwrap(), "x");
}
