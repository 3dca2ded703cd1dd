//! Character classes for variable names, as BuildKit (Go's `unicode` package) defines them.

use unicode_general_category::{GeneralCategory, get_general_category};

/// A decimal digit in any script (general category Nd), like Go's `unicode.IsDigit`.
pub(crate) fn is_digit(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    get_general_category(c) == GeneralCategory::DecimalNumber
}

/// A letter in any script (general categories Lu, Ll, Lt, Lm, Lo), like Go's `unicode.IsLetter`.
pub(crate) fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    matches!(
        get_general_category(c),
        GeneralCategory::UppercaseLetter
            | GeneralCategory::LowercaseLetter
            | GeneralCategory::TitlecaseLetter
            | GeneralCategory::ModifierLetter
            | GeneralCategory::OtherLetter
    )
}

/// A character that may continue a name: letter, digit or `_`.
pub(crate) fn is_name_char(c: char) -> bool {
    c == '_' || is_letter(c) || is_digit(c)
}

/// POSIX special parameters, each a one-character name (`0` is caught as a digit first).
pub(crate) fn is_special_param(c: char) -> bool {
    matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

/// Whitespace as Go's `unicode.IsSpace` sees it (the Unicode White_Space property).
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(is_digit('7'));
        assert!(is_digit('٣')); // Arabic-Indic digit three (Nd)
        assert!(!is_digit('²')); // superscript two is No, not Nd
        assert!(!is_digit('Ⅳ')); // Roman numeral four is Nl
        assert!(is_letter('é'));
        assert!(is_letter('한'));
        assert!(!is_letter('\u{0301}')); // combining acute accent (Mn)
        assert!(!is_letter('Ⓐ')); // circled letter is So, though Alphabetic
        assert!(is_name_char('_'));
        assert!(!is_name_char('-'));
        assert!(is_special_param('!'));
        assert!(!is_special_param('%'));
        assert!(is_space('\u{a0}'));
        assert!(is_space('\u{85}'));
        assert!(!is_space('\u{200b}'));
    }
}
