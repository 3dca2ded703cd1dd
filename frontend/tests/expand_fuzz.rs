//! Arbitrary input never panics, and a few properties that hold for every word.

mod expand_common;

use expand_common::lookup;
use kiln_frontend::expand::{ExpandOptions, expand, expand_word, expand_words};
use proptest::prelude::*;

/// Words built mostly from the characters the lexer treats specially.
fn tricky_word() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "$", "{", "}", ":", "-", "+", "?", "#", "%", "/", "\\", "`", "'", "\"", " ", "\t", "\n",
        "*", "=", "!", "@", "0", "1", "a", "PWD", "NULL", "AB", "STAR", "é", "한", "\u{feff}",
        "${", "${PWD", ":-", "##", "%%", "//", "\\}", "\\/",
    ]);
    prop::collection::vec(pieces, 0..40).prop_map(|v| v.concat())
}

fn escape_char() -> impl Strategy<Value = char> {
    prop_oneof![Just('\\'), Just('`'), any::<char>()]
}

fn options() -> impl Strategy<Value = ExpandOptions> {
    (escape_char(), any::<[bool; 4]>()).prop_map(|(escape, [q, e, s, k])| ExpandOptions {
        escape,
        raw_quotes: q,
        raw_escapes: e,
        skip_quotes: s,
        keep_unset: k,
    })
}

/// The error offset must point inside the word (or just past its end).
fn offset_in_range(word: &str, offset: usize) -> bool {
    offset <= word.chars().count()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_never_panic(word in any::<String>(), opts in options()) {
        if let Err(e) = expand(&word, &opts, &lookup) {
            prop_assert!(offset_in_range(&word, e.offset), "{e:?}");
        }
    }

    #[test]
    fn tricky_words_never_panic(word in tricky_word(), opts in options()) {
        if let Err(e) = expand(&word, &opts, &lookup) {
            prop_assert!(offset_in_range(&word, e.offset), "{e:?}");
            prop_assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn words_and_word_agree_on_errors(word in tricky_word()) {
        let one = expand_word(&word, '\\', &lookup);
        let many = expand_words(&word, '\\', &lookup);
        prop_assert_eq!(one.is_err(), many.is_err());
        if let Ok(words) = many {
            prop_assert!(words.iter().all(|w| !w.is_empty()));
        }
    }

    #[test]
    fn text_without_special_characters_is_unchanged(
        word in "[^$'\"\\\\\u{feff}]*",
    ) {
        prop_assert_eq!(expand_word(&word, '\\', &lookup).unwrap(), word.clone());
        let split: Vec<String> = word.split(char::is_whitespace)
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect();
        prop_assert_eq!(expand_words(&word, '\\', &lookup).unwrap(), split);
    }

    #[test]
    fn single_quoting_is_literal(body in "[^']*") {
        let quoted = format!("'{body}'");
        prop_assert_eq!(expand_word(&quoted, '\\', &lookup).unwrap(), body.clone());
        let words = expand_words(&quoted, '\\', &lookup).unwrap();
        let want: Vec<String> = if body.is_empty() { vec![] } else { vec![body] };
        prop_assert_eq!(words, want);
    }

    #[test]
    fn escaping_every_character_gives_the_text_back(text in any::<String>()) {
        let escaped: String = text.chars().flat_map(|c| ['\\', c]).collect();
        prop_assert_eq!(expand_word(&escaped, '\\', &lookup).unwrap(), text);
    }

    #[test]
    fn a_variable_value_is_inserted_verbatim(value in any::<String>()) {
        let v = value.clone();
        let vars = move |name: &str| (name == "V").then(|| v.clone());
        prop_assert_eq!(expand_word("$V", '\\', &vars).unwrap(), value.clone());
        prop_assert_eq!(expand_word("\"${V}\"", '\\', &vars).unwrap(), value.clone());
        prop_assert_eq!(expand_word("${V-x}", '\\', &vars).unwrap(), value);
    }
}
