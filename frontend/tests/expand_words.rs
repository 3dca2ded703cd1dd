//! `expand_words`: BuildKit's `ProcessWords` (split on unquoted whitespace after expansion).

mod expand_common;

use expand_common::lookup;
use kiln_frontend::expand::expand_words;

/// `(input, expected words)` with `\` as the escape character.
const CASES: &[(&str, &[&str])] = &[
    ("", &[]),
    ("   ", &[]),
    ("hello", &["hello"]),
    ("hello world", &["hello", "world"]),
    ("  hello   world  ", &["hello", "world"]),
    ("a\tb\nc\r\nd", &["a", "b", "c", "d"]),
    ("a\u{a0}b\u{3000}c", &["a", "b", "c"]),
    ("a\u{85}b", &["a", "b"]),
    ("a\u{200b}b", &["a\u{200b}b"]),
    // quoting keeps whitespace; empty quotes make no word
    (r#""hello world""#, &["hello world"]),
    ("'hello world'", &["hello world"]),
    (r#"" a ""#, &[" a "]),
    (r#"a"b c"d"#, &["ab cd"]),
    ("'a'\"b\"c", &["abc"]),
    (r#""a" "b""#, &["a", "b"]),
    (r#"a "" b"#, &["a", "b"]),
    (r#""""#, &[]),
    ("''", &[]),
    (r#""" ''"#, &[]),
    (r#"x"""#, &["x"]),
    // escaped whitespace is part of the word
    (r"hello\ world", &["hello world"]),
    ("a\\\tb", &["a\tb"]),
    (r"a\  b", &["a ", "b"]),
    (r"\ ", &[" "]),
    (r"a\", &["a"]),
    (r"\'a b\'", &["'a", "b'"]),
    // values split on their whitespace unless quoted
    ("$AB", &["a", "b"]),
    (r#""$AB""#, &["a b"]),
    ("x$AB", &["xa", "b"]),
    ("${AB}y", &["a", "by"]),
    ("$SP", &["lead", "and", "trail"]),
    (r#""$SP""#, &[" lead and trail "]),
    ("[$SP]", &["[", "lead", "and", "trail", "]"]),
    ("'$AB'", &["$AB"]),
    (r"\$AB", &["$AB"]),
    ("$NULL", &[]),
    ("a $NULL b", &["a", "b"]),
    (r#""$NULL""#, &[]),
    (r#""" $AB """#, &["a", "b"]),
    ("$PWD$SHELL", &["/homebash"]),
    ("$PWD $SHELL", &["/home", "bash"]),
    ("$NL", &["a", "b"]),
    ("$KOREAN 한 국", &["한국어", "한", "국"]),
    // the whole `${...}` result splits, even text that was quoted inside it
    ("${UNSET:-a b}", &["a", "b"]),
    (r#"${UNSET:-"a b"}"#, &["a", "b"]),
    ("${UNSET:-'a b'}", &["a", "b"]),
    ("${AB:+x y}", &["x", "y"]),
    (r#""${UNSET:-a b}""#, &["a b"]),
    // text before a `${...}` stays in the same word
    ("a${UNSET:-b}c", &["abc"]),
    ("a${PWD}c", &["a/homec"]),
    (r#"a"${UNSET:-b}"c"#, &["abc"]),
    ("x${PWD#/}", &["xhome"]),
    ("x${FILE/a/ A}", &["x", "Archive.tar.gz"]),
    ("80/tcp ${UNSET:-443}/udp", &["80/tcp", "443/udp"]),
    ("$$ $", &["$"]),
    ("a $ b", &["a", "$", "b"]),
];

#[test]
fn words() {
    let mut failures = Vec::new();
    for &(input, want) in CASES {
        match expand_words(input, '\\', &lookup) {
            Ok(got) if got == want => {}
            other => failures.push(format!("{input:?}: want {want:?}, got {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn words_with_backtick_escape() {
    let cases: &[(&str, &[&str])] = &[
        ("a` b c", &["a b", "c"]),
        (r"C:\a b", &[r"C:\a", "b"]),
        (r#""C:\Program Files""#, &[r"C:\Program Files"]),
        ("`$AB", &["$AB"]),
    ];
    for &(input, want) in cases {
        assert_eq!(expand_words(input, '`', &lookup).unwrap(), want, "{input:?}");
    }
}

#[test]
fn words_errors_like_word() {
    for input in [r#"a "b"#, "a 'b", "${x", "${}", "${x:?}"] {
        assert!(expand_words(input, '\\', &lookup).is_err(), "{input:?}");
    }
}
