//! Checking the flags an instruction was given against the flags it takes (BuildKit's `BFlags`).

use super::ast::Flag;
use super::lines::Logical;
use super::suggest::closest;
use super::words::RawFlag;
use crate::diag::Diagnostic;

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `--name`, `--name=true`, `--name=false`.
    Bool,
    /// `--name=value`, once.
    Value,
    /// `--name=value`, any number of times.
    Many,
}

/// The flags of `COPY`.
pub(crate) const COPY: &[(&str, Kind)] = &[
    ("from", Kind::Value),
    ("chown", Kind::Value),
    ("chmod", Kind::Value),
    ("link", Kind::Bool),
    ("parents", Kind::Bool),
    ("exclude", Kind::Many),
];
/// The flags of `ADD`.
pub(crate) const ADD: &[(&str, Kind)] = &[
    ("chown", Kind::Value),
    ("chmod", Kind::Value),
    ("link", Kind::Bool),
    ("keep-git-dir", Kind::Bool),
    ("checksum", Kind::Value),
    ("exclude", Kind::Many),
    ("unpack", Kind::Bool),
];
/// The flags of `FROM`.
pub(crate) const FROM: &[(&str, Kind)] = &[("platform", Kind::Value)];
/// The flags of `RUN`.
pub(crate) const RUN: &[(&str, Kind)] =
    &[("mount", Kind::Many), ("network", Kind::Value), ("security", Kind::Value)];
/// The flags of `HEALTHCHECK`.
pub(crate) const HEALTHCHECK: &[(&str, Kind)] = &[
    ("interval", Kind::Value),
    ("timeout", Kind::Value),
    ("start-period", Kind::Value),
    ("start-interval", Kind::Value),
    ("retries", Kind::Value),
];

/// Flags checked against an instruction's table.
#[derive(Debug, Clone, Default)]
pub(crate) struct Checked {
    /// All flags, in order.
    pub all: Vec<Flag>,
}

impl Checked {
    /// The flag `name`, if given (the last one for repeatable flags).
    pub fn get(&self, name: &str) -> Option<Flag> {
        self.all.iter().rev().find(|f| f.name == name).cloned()
    }

    /// Every occurrence of flag `name`, in order.
    pub fn get_all(&self, name: &str) -> Vec<Flag> {
        self.all.iter().filter(|f| f.name == name).cloned().collect()
    }

    /// The value of boolean flag `name` (`false` when absent).
    pub fn bool(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|f| f.value.as_deref().is_none_or(|v| v.eq_ignore_ascii_case("true")))
    }

    /// The value of boolean flag `name`, `None` when absent.
    pub fn opt_bool(&self, name: &str) -> Option<bool> {
        self.get(name).map(|f| f.value.as_deref().is_none_or(|v| v.eq_ignore_ascii_case("true")))
    }
}

/// Converts raw flags to [`Flag`]s with spans, without checking them.
pub(crate) fn convert(raw: &[RawFlag], line: &Logical) -> Vec<Flag> {
    raw.iter()
        .map(|f| Flag {
            name: f.name.clone(),
            value: f.value.clone(),
            span: line.span(f.start, f.end),
        })
        .collect()
}

/// Checks `raw` against `table` for instruction `instr` (upper-case).
pub(crate) fn check(
    file: &str,
    instr: &str,
    table: &[(&str, Kind)],
    raw: &[RawFlag],
    line: &Logical,
) -> Result<Checked, Diagnostic> {
    let flags = convert(raw, line);
    let err =
        |f: &Flag, msg: String| Err(Diagnostic::error(file, f.span, msg).in_instruction(instr));
    for (i, f) in flags.iter().enumerate() {
        let Some(&(_, kind)) = table.iter().find(|(n, _)| *n == f.name) else {
            if table.is_empty() {
                let mut msg = format!("{instr} takes no flags, but --{} was given", f.name);
                if matches!(instr, "CMD" | "ENTRYPOINT") {
                    msg = format!(
                        "{instr} takes no flags, so a shell-form command cannot start with \
                         \"--{}\"; use the exec form: {instr} [\"{}\", ...]",
                        f.name,
                        f.text()
                    );
                }
                return err(f, msg);
            }
            let names: Vec<String> = table.iter().map(|(n, _)| format!("--{n}")).collect();
            let msg = match closest(&f.name, table.iter().map(|(n, _)| *n)) {
                Some(s) => format!("unknown flag --{}; did you mean --{s}?", f.name),
                None => format!("unknown flag --{}; {instr} takes {}", f.name, names.join(", ")),
            };
            return err(f, msg);
        };
        if kind != Kind::Many && flags[..i].iter().any(|p| p.name == f.name) {
            return err(f, format!("--{} is given twice; give it once", f.name));
        }
        match (kind, f.value.as_deref()) {
            (Kind::Bool, Some("")) => {
                return err(
                    f,
                    format!(
                        "--{0}= has no value; write --{0} (or --{0}=true, --{0}=false)",
                        f.name
                    ),
                );
            }
            (Kind::Bool, Some(v))
                if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") =>
            {
                return err(f, format!("--{} takes true or false, not {v:?}", f.name));
            }
            (Kind::Value | Kind::Many, None) => {
                return err(f, format!("--{0} needs a value: --{0}=<value>", f.name));
            }
            _ => {}
        }
    }
    Ok(Checked { all: flags })
}
