//! `expand` with BuildKit's other lexer modes, and the names an expansion looked up.

mod expand_common;

use std::collections::BTreeSet;

use expand_common::lookup;
use kiln_frontend::expand::{ExpandOptions, expand, references_variables};

fn opts(f: impl FnOnce(&mut ExpandOptions)) -> ExpandOptions {
    let mut o = ExpandOptions::new('\\');
    f(&mut o);
    o
}

fn check(options: &ExpandOptions, cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for &(input, want) in cases {
        match expand(input, options, &lookup) {
            Ok(got) if got.word == want => {}
            other => failures.push(format!("{input:?}: want {want:?}, got {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn raw_quotes_keep_the_quotes() {
    check(
        &opts(|o| o.raw_quotes = true),
        &[
            (r#""a b" 'c'"#, r#""a b" 'c'"#),
            (r#"he"ll"o"#, r#"he"ll"o"#),
            (r#""$PWD""#, r#""/home""#),
            ("'$PWD'", "'$PWD'"),
            (r#""a\"b""#, r#""a"b""#),
            (r"a\ b", "a b"),
        ],
    );
}

#[test]
fn raw_escapes_keep_the_escape_character() {
    check(
        &opts(|o| o.raw_escapes = true),
        &[
            (r"a\ b", r"a\ b"),
            (r"\$PWD", r"\$PWD"),
            (r"abc\", r"abc\"),
            (r#""\$PWD""#, r"\$PWD"),
            (r#""a\b""#, r"a\\b"),
            (r#""a\\b""#, r"a\\b"),
            ("${UNSET:-a\\}b}", "a}b"),
        ],
    );
}

#[test]
fn skip_quotes_treats_quotes_as_text() {
    // What BuildKit does for heredoc bodies.
    check(
        &opts(|o| o.skip_quotes = true),
        &[
            (r#""$PWD""#, r#""/home""#),
            ("'$PWD'", "'/home'"),
            ("it's $SHELL", "it's bash"),
            (r#"say "hi"#, r#"say "hi"#),
            (r#"\"x\""#, r#""x""#),
            (r"\$PWD", "$PWD"),
            ("${UNSET:-'a}", "'a"),
            ("line1\nline2 $SHELL\n", "line1\nline2 bash\n"),
        ],
    );
}

#[test]
fn keep_unset_leaves_unknown_references_alone() {
    check(
        &opts(|o| o.keep_unset = true),
        &[
            ("$UNSET", "$UNSET"),
            ("${UNSET}", "${UNSET}"),
            ("$PWD $UNSET", "/home $UNSET"),
            ("$1 $@", "$1 $@"),
            ("${UNSET:-$PWD}", "${UNSET:-/home}"),
            ("${UNSET-x}", "${UNSET-x}"),
            ("${UNSET:+x}", "${UNSET:+x}"),
            ("${UNSET?boom}", "${UNSET?boom}"),
            ("${UNSET:?}", "${UNSET:?}"),
            ("${UNSET:=x}", "${UNSET:=x}"),
            ("${UNSET#a}", "${UNSET#a}"),
            ("${UNSET##*/}", "${UNSET##*/}"),
            ("${UNSET%%.*}", "${UNSET%%.*}"),
            ("${UNSET/a/b}", "${UNSET/a/b}"),
            // BuildKit writes one '/' back for `//`
            ("${UNSET//a/b}", "${UNSET/a/b}"),
            ("${UNSET:-'x y'}", "${UNSET:-x y}"),
            ("${NULL:-x}", "x"),
            ("${PWD:+set}", "set"),
            ("'$UNSET'", "$UNSET"),
        ],
    );
    // Set variables still get the usual checks.
    assert!(expand("${PWD:=x}", &opts(|o| o.keep_unset = true), &lookup).is_err());
    assert!(expand("${NULL:?}", &opts(|o| o.keep_unset = true), &lookup).is_err());
}

#[test]
fn run_step_name_mode() {
    // BuildKit names RUN steps with raw quotes and unset references kept.
    let o = opts(|o| {
        o.raw_quotes = true;
        o.keep_unset = true;
    });
    check(
        &o,
        &[(
            r#"echo "$UNSET" ${UNSET:-x} $SHELL 'lit $PWD'"#,
            r#"echo "$UNSET" ${UNSET:-x} bash 'lit $PWD'"#,
        )],
    );
}

#[test]
fn heredoc_detection_mode() {
    // BuildKit finds heredoc openers by splitting the line into words with raw quotes, raw
    // escapes and unset references kept.
    let o = opts(|o| {
        o.raw_quotes = true;
        o.raw_escapes = true;
        o.keep_unset = true;
    });
    let got = expand(r#"cat <<"EOF" <<-'X' > $OUT\ put "a b""#, &o, &|_| None).unwrap();
    assert_eq!(got.words, [r#"cat"#, r#"<<"EOF""#, "<<-'X'", ">", r"$OUT\ put", r#""a b""#]);
}

#[test]
fn words_and_word_come_from_one_pass() {
    let got = expand(r#"a "b c" $AB"#, &ExpandOptions::default(), &lookup).unwrap();
    assert_eq!(got.word, "a b c a b");
    assert_eq!(got.words, ["a", "b c", "a", "b"]);
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn matched_and_unmatched_names() {
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("x", &[], &[]),
        ("x ${UNUSED}", &[], &["UNUSED"]),
        ("${PWD-aaa} ${NULL-bbb} ${BAZ-ccc}", &["NULL", "PWD"], &["BAZ"]),
        ("${PWD:+aaa} ${NULL:+bbb} ${BAZ:+ccc}", &["NULL", "PWD"], &["BAZ"]),
        ("${PWD:-$SHELL}", &["PWD", "SHELL"], &[]),
        ("${UNSET:-${A:-$B}}", &[], &["A", "B", "UNSET"]),
        ("${PWD/$X/$Y}", &["PWD"], &["X", "Y"]),
        ("$1 $@ ${#}", &[], &["#", "1", "@"]),
        ("'$X' \\$Y", &[], &[]),
        (r#""$PWD" "${NULL}""#, &["NULL", "PWD"], &[]),
        ("$PWD $PWD", &["PWD"], &[]),
    ];
    for &(input, matched, unmatched) in cases {
        let got = expand(input, &ExpandOptions::default(), &lookup).unwrap();
        assert_eq!(got.matched, set(matched), "{input:?}");
        assert_eq!(got.unmatched, set(unmatched), "{input:?}");
    }
}

#[test]
fn the_closure_sees_every_lookup() {
    let seen = std::cell::RefCell::new(Vec::new());
    let vars = |name: &str| {
        seen.borrow_mut().push(name.to_string());
        lookup(name)
    };
    let got = kiln_frontend::expand::expand_word("$PWD ${X:-$SHELL} '$Q'", '\\', &vars).unwrap();
    assert_eq!(got, "/home bash $Q");
    assert_eq!(*seen.borrow(), ["PWD", "SHELL", "X"]);
}

#[test]
fn references() {
    for word in ["$X", "a${X}", "${X:-y}", "\"$X\"", "${", "$1", "${X?}"] {
        assert!(references_variables(word, '\\'), "{word:?}");
    }
    for word in ["", "plain", "'$X'", "\\$X", "$", "a $ b", "$%"] {
        assert!(!references_variables(word, '\\'), "{word:?}");
    }
    assert!(!references_variables("`$X", '`'));
    assert!(references_variables("\\$X", '`'));
}
