//! Dockerfile syntax: parser directives, logical lines, heredocs, flags and arguments, with spans.
//!
//! A hand-written two-level parser following BuildKit's rules:
//! 1. [`lines`]: parser directives at the top, line continuations with the escape character
//!    (comment and blank lines inside them skipped), heredoc bodies;
//! 2. [`instruction`] and [`commands`]: keyword, flags and arguments of each instruction, in
//!    JSON (exec) or shell form, into a typed [`Command`].
//!
//! Words are kept unexpanded; [`crate::lower`] expands them where BuildKit does.

mod ast;
mod check;
mod commands;
pub(crate) mod duration;
mod flags;
mod heredoc;
mod instruction;
mod json;
mod lines;
pub mod mount;
mod print;
mod suggest;
mod units;
mod words;

pub use ast::{
    Add, ArgDecl, Command, CommandLine, Copy, Directive, Dockerfile, DurationFlag, Flag, From,
    Healthcheck, Heredoc, INSTRUCTIONS, Instruction, KeyValue, Onbuild, Run, Source, Word,
};
pub use check::CheckConfig;
pub(crate) use heredoc::parse_opener as heredoc_opener;
pub use json::{JsonDockerfile, JsonHeredoc, JsonInstruction};
pub(crate) use suggest::closest as closest_word;

use crate::diag::{Diagnostic, Span};

/// Parses `text`; `file` names it in diagnostics.
pub fn parse(file: &str, text: &str) -> Result<Dockerfile, Diagnostic> {
    let mut reader = lines::LineReader::new(file, text);
    let mut instructions: Vec<Instruction> = Vec::new();
    let mut warnings = Vec::new();
    let mut check: Option<CheckConfig> = None;
    while let Some(mut line) = reader.next_logical()? {
        let check = match &check {
            Some(c) => c.clone(),
            None => {
                let c = check_config(file, &reader.directives)?;
                check = Some(c.clone());
                c
            }
        };
        let specs = if instruction::may_have_heredocs(&line.text) {
            heredoc::find_openers(&line.text, 0)
        } else {
            Vec::new()
        };
        let docs = reader.read_heredocs(&mut line, specs).map_err(|d| {
            let keyword = line.text.split(char::is_whitespace).next().unwrap_or("");
            d.in_instruction(keyword)
        })?;
        let previous = instructions.last().map(Instruction::name);
        let mut ctx = instruction::Ctx {
            file,
            line: &line,
            escape: reader.escape,
            heredocs: &docs,
            check: &check,
            warnings: &mut warnings,
        };
        let instr = instruction::parse(&mut ctx, 0, previous)?;
        instructions.push(instr);
    }
    let check = match check {
        Some(c) => c,
        None => check_config(file, &reader.directives)?,
    };
    if instructions.is_empty() {
        return Err(Diagnostic::error(
            file,
            Span::on_line(reader.line_count().max(1), 1, 0),
            "the Dockerfile has no instructions; it needs at least a FROM line",
        ));
    }
    warnings.extend(
        std::mem::take(&mut reader.warnings)
            .into_iter()
            .filter(|(rule, _)| check.allows(rule))
            .map(|(_, d)| d),
    );
    warnings.sort_by_key(|d| (d.span.line, d.span.col));
    Ok(Dockerfile {
        file: file.to_string(),
        directives: reader.directives,
        escape: reader.escape,
        instructions,
        warnings,
    })
}

fn check_config(file: &str, directives: &[Directive]) -> Result<CheckConfig, Diagnostic> {
    match directives.iter().find(|d| d.name == "check") {
        Some(d) => CheckConfig::parse(&d.value).map_err(|e| Diagnostic::error(file, d.span, e)),
        None => Ok(CheckConfig::default()),
    }
}
