//! Glob programs: Go's `filepath.Match` syntax, plus the `**` forms of `.dockerignore`.
//!
//! A pattern compiles to a short list of instructions run as an NFA (linear in the length of
//! the path, whatever the pattern). Two compilers share it: [`Program::segment`] is Go's
//! `filepath.Match` (COPY sources, one path segment at a time; `**` is just two `*`), and the
//! `.dockerignore` compiler in `ignore` adds `**` (any number of directories).

/// Why a pattern is not valid (Go's `filepath.ErrBadPattern`, with the reason spelled out).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// `[` without its closing `]`.
    #[error("character class `[` is not closed by `]`")]
    UnterminatedClass,
    /// `-` or `]` where a class expects a character (escape it with `\`).
    #[error("`{0}` must be escaped with `\\` at this place in a character class")]
    BadClassChar(char),
    /// A range whose start is after its end, such as `[z-a]`.
    #[error("character range `{0}-{1}` is out of order")]
    RangeOutOfOrder(char, char),
    /// The pattern ends with a lone `\`.
    #[error("the pattern ends with a lone `\\`")]
    TrailingBackslash,
    /// An ignore-file line that is only `!`.
    #[error("`!` must be followed by a pattern")]
    LoneExclamation,
}

/// One step of a glob program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Inst {
    /// This exact character.
    Lit(char),
    /// `?`: one character other than `/`.
    AnyButSlash,
    /// `[...]`: one character in (or, negated, not in) the ranges. Like Go, it may match `/`.
    Class { negated: bool, ranges: Vec<(char, char)> },
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**` followed by more pattern: nothing, or anything that ends with `/` (`(.*/)?`).
    AnyDirs,
    /// `**` at the end: anything (`.*`).
    AnyRest,
}

/// A compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Program {
    insts: Vec<Inst>,
}

impl Program {
    /// Wraps instructions built by a compiler.
    pub(crate) fn new(insts: Vec<Inst>) -> Program {
        Program { insts }
    }

    /// Compiles a Go `filepath.Match` pattern (used on one path segment at a time).
    pub(crate) fn segment(pattern: &str) -> Result<Program, PatternError> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut insts = Vec::new();
        let mut pos = 0;
        while pos < chars.len() {
            let ch = chars[pos];
            pos += 1;
            match ch {
                '*' => insts.push(Inst::Star),
                '?' => insts.push(Inst::AnyButSlash),
                '\\' => {
                    let Some(&next) = chars.get(pos) else {
                        return Err(PatternError::TrailingBackslash);
                    };
                    insts.push(Inst::Lit(next));
                    pos += 1;
                }
                '[' => {
                    let (inst, next) = parse_class(&chars, pos)?;
                    insts.push(inst);
                    pos = next;
                }
                c => insts.push(Inst::Lit(c)),
            }
        }
        Ok(Program { insts })
    }

    /// Whether the whole of `text` matches.
    pub(crate) fn matches(&self, text: &str) -> bool {
        self.run(text, false)
    }

    /// Whether some string that starts with `prefix` could match (used to decide whether a
    /// directory's contents can match at all).
    pub(crate) fn could_match_with_prefix(&self, prefix: &str) -> bool {
        self.run(prefix, true)
    }

    fn run(&self, text: &str, prefix_only: bool) -> bool {
        let n = self.insts.len();
        if n < 128 {
            self.run_with(text, prefix_only, SmallStates::default(), SmallStates::default())
        } else {
            self.run_with(text, prefix_only, LargeStates::new(n), LargeStates::new(n))
        }
    }

    fn run_with<S: StateSet>(
        &self,
        text: &str,
        prefix_only: bool,
        mut cur: S,
        mut next: S,
    ) -> bool {
        let n = self.insts.len();
        enter(&mut cur, 0, &self.insts);
        for c in text.chars() {
            next.clear();
            for i in 0..n {
                let at = cur.at(i);
                let inner = cur.inner(i);
                if !at && !inner {
                    continue;
                }
                match &self.insts[i] {
                    Inst::Lit(l) => {
                        if at && c == *l {
                            enter(&mut next, i + 1, &self.insts);
                        }
                    }
                    Inst::AnyButSlash => {
                        if at && c != '/' {
                            enter(&mut next, i + 1, &self.insts);
                        }
                    }
                    Inst::Class { negated, ranges } => {
                        let hit = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                        if at && hit != *negated {
                            enter(&mut next, i + 1, &self.insts);
                        }
                    }
                    Inst::Star => {
                        if at && c != '/' {
                            enter(&mut next, i, &self.insts);
                        }
                    }
                    Inst::AnyDirs => {
                        // Go's regexp `.` does not match a newline; `(.*/)?` inherits that.
                        if c != '\n' {
                            next.set_inner(i);
                        }
                        if c == '/' {
                            enter(&mut next, i + 1, &self.insts);
                        }
                    }
                    Inst::AnyRest => {
                        if at && c != '\n' {
                            enter(&mut next, i, &self.insts);
                        }
                    }
                }
            }
            if next.is_empty() {
                return false;
            }
            std::mem::swap(&mut cur, &mut next);
        }
        if prefix_only { !cur.is_empty() } else { cur.at(n) }
    }
}

/// The NFA's active states: `at(i)` = about to run instruction `i` (`at(n)` = matched);
/// `inner(i)` = inside the `.*` of an `AnyDirs` at `i`.
trait StateSet {
    fn at(&self, i: usize) -> bool;
    fn set_at(&mut self, i: usize);
    fn inner(&self, i: usize) -> bool;
    fn set_inner(&mut self, i: usize);
    fn clear(&mut self);
    fn is_empty(&self) -> bool;
}

/// Activates `i` and everything reachable from it without reading a character.
fn enter<S: StateSet>(states: &mut S, mut i: usize, insts: &[Inst]) {
    loop {
        if states.at(i) {
            return;
        }
        states.set_at(i);
        match insts.get(i) {
            Some(Inst::Star | Inst::AnyDirs | Inst::AnyRest) => i += 1,
            _ => return,
        }
    }
}

/// States as bit masks, for programs of fewer than 128 instructions (no allocation).
#[derive(Default)]
struct SmallStates {
    at: u128,
    inner: u128,
}

impl StateSet for SmallStates {
    fn at(&self, i: usize) -> bool {
        self.at & (1 << i) != 0
    }
    fn set_at(&mut self, i: usize) {
        self.at |= 1 << i;
    }
    fn inner(&self, i: usize) -> bool {
        self.inner & (1 << i) != 0
    }
    fn set_inner(&mut self, i: usize) {
        self.inner |= 1 << i;
    }
    fn clear(&mut self) {
        *self = SmallStates::default();
    }
    fn is_empty(&self) -> bool {
        self.at == 0 && self.inner == 0
    }
}

/// States for longer programs.
struct LargeStates {
    at: Vec<bool>,
    inner: Vec<bool>,
}

impl LargeStates {
    fn new(n: usize) -> LargeStates {
        LargeStates { at: vec![false; n + 1], inner: vec![false; n] }
    }
}

impl StateSet for LargeStates {
    fn at(&self, i: usize) -> bool {
        self.at[i]
    }
    fn set_at(&mut self, i: usize) {
        self.at[i] = true;
    }
    fn inner(&self, i: usize) -> bool {
        self.inner[i]
    }
    fn set_inner(&mut self, i: usize) {
        self.inner[i] = true;
    }
    fn clear(&mut self) {
        self.at.fill(false);
        self.inner.fill(false);
    }
    fn is_empty(&self) -> bool {
        !self.at.iter().any(|&b| b) && !self.inner.iter().any(|&b| b)
    }
}

/// Parses a character class after its `[` (at `pos`), with Go `filepath.Match`'s grammar:
/// `[` [`^`] { char | char `-` char } `]`, where a char is anything but `-`, `]` and `\`, or
/// `\` followed by any character. Returns the instruction and the position after `]`.
pub(crate) fn parse_class(chars: &[char], mut pos: usize) -> Result<(Inst, usize), PatternError> {
    let mut negated = false;
    if chars.get(pos) == Some(&'^') {
        negated = true;
        pos += 1;
    }
    let mut ranges = Vec::new();
    loop {
        if chars.get(pos) == Some(&']') && !ranges.is_empty() {
            return Ok((Inst::Class { negated, ranges }, pos + 1));
        }
        let (lo, after) = class_char(chars, pos)?;
        pos = after;
        let mut hi = lo;
        if chars.get(pos) == Some(&'-') {
            let (h, after) = class_char(chars, pos + 1)?;
            hi = h;
            pos = after;
        }
        if lo > hi {
            // filepath.Match accepts it, but Docker's regexp translation fails on it.
            return Err(PatternError::RangeOutOfOrder(lo, hi));
        }
        ranges.push((lo, hi));
    }
}

/// One character of a class (Go's `getEsc`): the class must go on after it.
fn class_char(chars: &[char], pos: usize) -> Result<(char, usize), PatternError> {
    let mut pos = pos;
    let c = match chars.get(pos) {
        None => return Err(PatternError::UnterminatedClass),
        Some(&c @ ('-' | ']')) => return Err(PatternError::BadClassChar(c)),
        Some('\\') => {
            pos += 1;
            *chars.get(pos).ok_or(PatternError::UnterminatedClass)?
        }
        Some(&c) => c,
    };
    pos += 1;
    if pos >= chars.len() {
        return Err(PatternError::UnterminatedClass);
    }
    Ok((c, pos))
}

/// Whether a path segment has an unescaped `*`, `?` or `[` (BuildKit's test for a wildcard
/// source; a `\` hides the character after it).
pub fn has_wildcard(segment: &str) -> bool {
    let mut chars = segment.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// Go `filepath.Match` of one path segment against a name (no `/` in either): `*` any run,
/// `?` one character, `[...]` classes with ranges and `^`, `\` escapes.
pub fn match_segment(pattern: &str, name: &str) -> Result<bool, PatternError> {
    Ok(Program::segment(pattern)?.matches(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's own `filepath.Match` cases (pattern, name, result), as far as one segment goes.
    #[test]
    fn segment_matching_follows_go_filepath_match() {
        let cases: &[(&str, &str, Result<bool, PatternError>)] = &[
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*", "abc", Ok(true)),
            ("a*b*c*d*e*", "axbxcxdxe", Ok(true)),
            ("a*b*c*d*e*", "axbxcxdxexxx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[e-g]", "abc", Ok(false)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^b-d]", "abc", Ok(false)),
            ("ab[^e-g]", "abc", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a☺b", Ok(true)),
            ("a[^a]b", "a☺b", Ok(true)),
            ("a???b", "a☺b", Ok(false)),
            ("[a-ζ]*", "α", Ok(true)),
            ("*[a-ζ]", "A", Ok(false)),
            ("[\\]a]", "]", Ok(true)),
            ("[\\-]", "-", Ok(true)),
            ("[x\\-]", "x", Ok(true)),
            ("[x\\-]", "-", Ok(true)),
            ("[x\\-]", "z", Ok(false)),
            ("[\\-x]", "-", Ok(true)),
            ("[\\-x]", "a", Ok(false)),
            ("[]a]", "]", Err(PatternError::BadClassChar(']'))),
            ("[-]", "-", Err(PatternError::BadClassChar('-'))),
            ("[x-]", "x", Err(PatternError::BadClassChar(']'))),
            ("[-x]", "x", Err(PatternError::BadClassChar('-'))),
            ("\\", "a", Err(PatternError::TrailingBackslash)),
            ("[a-b-c]", "a", Err(PatternError::BadClassChar('-'))),
            ("[", "a", Err(PatternError::UnterminatedClass)),
            ("[^", "a", Err(PatternError::UnterminatedClass)),
            ("[^bc", "a", Err(PatternError::UnterminatedClass)),
            ("a[", "a", Err(PatternError::UnterminatedClass)),
            ("[a\\", "a", Err(PatternError::UnterminatedClass)),
            ("[z-a]", "m", Err(PatternError::RangeOutOfOrder('z', 'a'))),
            ("*x", "xxx", Ok(true)),
            ("**", "anything", Ok(true)),
            ("[*]", "*", Ok(true)),
            ("[*]", "a", Ok(false)),
            ("a]", "a]", Ok(true)),
            ("", "", Ok(true)),
            ("", "a", Ok(false)),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(&match_segment(pattern, name), want, "pattern {pattern:?} name {name:?}");
        }
    }

    #[test]
    fn wildcard_detection_skips_escaped_characters() {
        let cases = [
            ("plain.txt", false),
            ("*.txt", true),
            ("file?.txt", true),
            ("[ab].txt", true),
            ("a\\*b", false),
            ("a\\\\*", true),
            ("trailing\\", false),
            ("]", false),
        ];
        for (segment, want) in cases {
            assert_eq!(has_wildcard(segment), want, "{segment:?}");
        }
    }

    #[test]
    fn prefix_viability() {
        let p = Program::segment("ab*").expect("valid");
        assert!(p.could_match_with_prefix("a"));
        assert!(p.could_match_with_prefix("abzzz"));
        assert!(!p.could_match_with_prefix("b"));
        assert!(p.could_match_with_prefix(""));
    }

    #[test]
    fn long_runs_of_stars_stay_linear() {
        let p = Program::segment(&"a*".repeat(40)).expect("valid");
        let name = "a".repeat(39);
        assert!(!p.matches(&name));
        assert!(p.matches(&"a".repeat(40)));
    }

    #[test]
    fn programs_longer_than_the_bit_masks_work_the_same() {
        let p = Program::segment(&"a?*".repeat(60)).expect("valid");
        assert!(p.matches(&"ab".repeat(60)));
        assert!(p.matches(&"abzz".repeat(60)));
        assert!(!p.matches(&"ab".repeat(59)));
        assert!(p.could_match_with_prefix("abzza"));
        assert!(!p.could_match_with_prefix("b"));
    }
}
