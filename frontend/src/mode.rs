//! `--chmod` modes: octal (`0755`) or symbolic like chmod(1) (`u+x,go-w`, `a=rX`), as
//! BuildKit accepts them since Dockerfile 1.14.
//!
//! A symbolic mode is applied to each file and directory separately ([`FileMode::apply`]),
//! because `X` and the copy forms (`g=u`) depend on the mode a path already has. There is no
//! umask: a clause without `u`, `g`, `o` or `a` applies to all three classes.

use std::fmt;

use serde::Serialize;

/// A parsed `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "form", rename_all = "lowercase")]
pub enum FileMode {
    /// An octal mode (at most `7777`): every path gets exactly these bits.
    Octal {
        /// The permission bits.
        #[serde(serialize_with = "crate::graph::octal")]
        bits: u32,
    },
    /// A symbolic mode, applied to each path's current bits.
    Symbolic {
        /// The mode as written.
        text: String,
        /// The comma-separated clauses, in order.
        clauses: Vec<ChmodClause>,
    },
}

/// One clause of a symbolic mode: `[ugoa]*` followed by actions (`+rw`, `-x`, `=u`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChmodClause {
    /// Which classes are changed: `u`, `g`, `o` as bits 4, 2, 1 (`a` sets all three); 0 when
    /// none was written, which means all classes.
    pub who: u8,
    /// The actions, in order.
    pub actions: Vec<ChmodAction>,
}

/// `+`, `-` or `=` with the permissions it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChmodAction {
    /// `+`, `-` or `=`.
    pub op: char,
    /// The permission letters (`rwxXst`), or one class letter (`u`, `g`, `o`) to copy from.
    pub perms: String,
}

const WHO_U: u8 = 4;
const WHO_G: u8 = 2;
const WHO_O: u8 = 1;

impl FileMode {
    /// Parses a `--chmod` value. The error says what is wrong, for the user.
    pub fn parse(text: &str) -> Result<FileMode, String> {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            if text.bytes().any(|b| b > b'7') {
                return Err("an octal mode has only the digits 0 to 7, like 0755 or 644".into());
            }
            return match u32::from_str_radix(text, 8) {
                Ok(bits) if bits <= 0o7777 => Ok(FileMode::Octal { bits }),
                _ => Err("an octal mode is at most 7777, like 0755 or 644".into()),
            };
        }
        let mut clauses = Vec::new();
        for clause in text.split(',') {
            clauses.push(parse_clause(clause).map_err(|why| {
                format!(
                    "{why}; write an octal mode like 0755 or a symbolic one like u+x, go-w \
                     or a=rX"
                )
            })?);
        }
        Ok(FileMode::Symbolic { text: text.to_string(), clauses })
    }

    /// The octal bits, when the mode is octal.
    pub fn octal(&self) -> Option<u32> {
        match self {
            FileMode::Octal { bits } => Some(*bits),
            FileMode::Symbolic { .. } => None,
        }
    }

    /// The permission bits (`0o7777` range) a path with permission bits `current` gets;
    /// `is_dir` matters for `X`.
    pub fn apply(&self, current: u32, is_dir: bool) -> u32 {
        match self {
            FileMode::Octal { bits } => *bits,
            FileMode::Symbolic { clauses, .. } => {
                clauses.iter().fold(current & 0o7777, |mode, c| c.apply(mode, is_dir))
            }
        }
    }
}

impl fmt::Display for FileMode {
    /// The mode as BuildKit shows it in history: octal as written back (`755`), symbolic as
    /// written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileMode::Octal { bits } => write!(f, "{bits:o}"),
            FileMode::Symbolic { text, .. } => f.write_str(text),
        }
    }
}

fn parse_clause(clause: &str) -> Result<ChmodClause, String> {
    let mut who = 0u8;
    let mut chars = clause.chars().peekable();
    while let Some(&c) = chars.peek() {
        who |= match c {
            'u' => WHO_U,
            'g' => WHO_G,
            'o' => WHO_O,
            'a' => WHO_U | WHO_G | WHO_O,
            _ => break,
        };
        chars.next();
    }
    let mut actions = Vec::new();
    while let Some(op) = chars.next() {
        if !matches!(op, '+' | '-' | '=') {
            return Err(format!("{op:?} is not an operator (+, - or =) in clause {clause:?}"));
        }
        let mut perms = String::new();
        if let Some(&c) = chars.peek()
            && matches!(c, 'u' | 'g' | 'o')
        {
            chars.next();
            perms.push(c);
        } else {
            while let Some(&c) = chars.peek() {
                if !matches!(c, 'r' | 'w' | 'x' | 'X' | 's' | 't') {
                    break;
                }
                chars.next();
                perms.push(c);
            }
        }
        actions.push(ChmodAction { op, perms });
    }
    if actions.is_empty() {
        return Err(format!("clause {clause:?} has no operator (+, - or =)"));
    }
    Ok(ChmodClause { who, actions })
}

/// The bits a class owns: its `rwx` and its special bit.
fn class_mask(who: u8) -> u32 {
    let who = if who == 0 { WHO_U | WHO_G | WHO_O } else { who };
    let mut mask = 0;
    if who & WHO_U != 0 {
        mask |= 0o4700;
    }
    if who & WHO_G != 0 {
        mask |= 0o2070;
    }
    if who & WHO_O != 0 {
        mask |= 0o1007;
    }
    mask
}

impl ChmodClause {
    fn apply(&self, mut mode: u32, is_dir: bool) -> u32 {
        let mask = class_mask(self.who);
        for action in &self.actions {
            let bits = action.bits(mode, is_dir) & mask;
            mode = match action.op {
                '+' => mode | bits,
                '-' => mode & !bits,
                _ => (mode & !mask) | bits,
            };
        }
        mode
    }
}

impl ChmodAction {
    /// The bits this action names for all classes (masked by the clause's classes later).
    fn bits(&self, mode: u32, is_dir: bool) -> u32 {
        let copy = |shift: u32| {
            let rwx = (mode >> shift) & 0o7;
            rwx * 0o111
        };
        match self.perms.as_str() {
            "u" => return copy(6),
            "g" => return copy(3),
            "o" => return copy(0),
            _ => {}
        }
        self.perms.chars().fold(0, |bits, c| {
            bits | match c {
                'r' => 0o444,
                'w' => 0o222,
                'x' => 0o111,
                'X' if is_dir || mode & 0o111 != 0 => 0o111,
                's' => 0o6000,
                't' => 0o1000,
                _ => 0,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(m: &str, current: u32, dir: bool) -> u32 {
        FileMode::parse(m).unwrap().apply(current, dir)
    }

    #[test]
    fn octal_modes() {
        assert_eq!(FileMode::parse("755"), Ok(FileMode::Octal { bits: 0o755 }));
        assert_eq!(FileMode::parse("0644"), Ok(FileMode::Octal { bits: 0o644 }));
        assert_eq!(FileMode::parse("7777"), Ok(FileMode::Octal { bits: 0o7777 }));
        assert!(FileMode::parse("17777").unwrap_err().contains("at most 7777"));
        assert!(FileMode::parse("0999").unwrap_err().contains("digits 0 to 7"));
        assert_eq!(FileMode::parse("0644").unwrap().to_string(), "644");
        assert_eq!(apply("600", 0o777, false), 0o600);
    }

    #[test]
    fn symbolic_modes_like_chmod() {
        let cases: &[(&str, u32, bool, u32)] = &[
            ("u+x", 0o644, false, 0o744),
            ("go-w", 0o666, false, 0o644),
            ("a=rw", 0o755, false, 0o666),
            ("=r", 0o777, false, 0o444),
            ("+x", 0o644, false, 0o755),
            ("a+X", 0o644, false, 0o644),
            ("a+X", 0o744, false, 0o755),
            ("a+X", 0o644, true, 0o755),
            ("u=rwx,go=rx", 0o600, false, 0o755),
            ("g=u", 0o640, false, 0o660),
            ("o=g", 0o654, false, 0o655),
            ("u+s", 0o755, false, 0o4755),
            ("g+s", 0o755, true, 0o2755),
            ("+t", 0o777, true, 0o1777),
            ("o+t", 0o777, true, 0o1777),
            ("u+t", 0o777, true, 0o777),
            ("u+x-w", 0o644, false, 0o544),
            ("u=", 0o754, false, 0o054),
            ("a-s", 0o6755, false, 0o755),
        ];
        for (m, cur, dir, want) in cases {
            assert_eq!(apply(m, *cur, *dir), *want, "{m} on {cur:o} (dir {dir})");
        }
        assert_eq!(FileMode::parse("u+x,go-w").unwrap().to_string(), "u+x,go-w");
    }

    #[test]
    fn bad_symbolic_modes() {
        let cases: &[(&str, &str)] = &[
            ("", "clause \"\" has no operator"),
            ("u", "clause \"u\" has no operator"),
            ("u+y", "'y' is not an operator"),
            ("x+u", "'x' is not an operator"),
            ("u+x,", "clause \"\" has no operator"),
            (",u+x", "clause \"\" has no operator"),
            ("ug", "clause \"ug\" has no operator"),
            ("999", "an octal mode has only the digits 0 to 7"),
            ("0o755", "'0' is not an operator"),
            ("u+rwz", "'z' is not an operator"),
        ];
        for (bad, want) in cases {
            let e = FileMode::parse(bad).unwrap_err();
            assert!(e.starts_with(want), "{bad}: {e}");
        }
    }
}
