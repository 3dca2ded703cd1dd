//! Second level: one logical line → one typed [`Instruction`] (keyword, flags, arguments).

use super::ast::{Command, Heredoc, INSTRUCTIONS, Instruction, Onbuild, Word};
use super::check::CheckConfig;
use super::commands;
use super::lines::Logical;
use super::suggest::closest;
use super::words::{Json, RawFlag, extract_flags, is_sep, parse_json, trim_range};
use crate::diag::{Diagnostic, Span};

/// What the instruction parsers share.
pub(crate) struct Ctx<'a> {
    /// File name for diagnostics.
    pub file: &'a str,
    /// The logical line being parsed.
    pub line: &'a Logical,
    /// The escape character.
    pub escape: char,
    /// Heredocs read after the line.
    pub heredocs: &'a [Heredoc],
    /// Which warnings to report.
    pub check: &'a CheckConfig,
    /// Warnings collected.
    pub warnings: &'a mut Vec<Diagnostic>,
}

/// The parts of an instruction line, as byte offsets into the logical line.
pub(crate) struct Parts {
    /// Upper-case instruction name (as written, upper-cased).
    pub upper: String,
    /// The keyword as written.
    pub keyword: String,
    /// Span of the keyword.
    pub kw_span: Span,
    /// Span of the whole instruction.
    pub span: Span,
    /// Start of the keyword.
    pub start: usize,
    /// End of the keyword.
    pub kw_end: usize,
    /// Flags as extracted.
    pub flags: Vec<RawFlag>,
    /// Start of the (trimmed) arguments.
    pub a: usize,
    /// End of the (trimmed) arguments.
    pub b: usize,
}

impl Ctx<'_> {
    /// A [`Word`] for bytes `a..b` of the line.
    pub fn word(&self, a: usize, b: usize) -> Word {
        Word { text: self.line.text[a..b].to_string(), span: self.line.span(a, b) }
    }

    /// The text of bytes `a..b` of the line.
    pub fn text(&self, a: usize, b: usize) -> &str {
        &self.line.text[a..b]
    }

    /// An error at `span` about instruction `instr`.
    pub fn err<T>(&self, span: Span, instr: &str, msg: impl Into<String>) -> Result<T, Diagnostic> {
        Err(Diagnostic::error(self.file, span, msg).in_instruction(instr))
    }

    /// Records a warning of lint rule `rule`, unless `# check=` skips it.
    pub fn lint(&mut self, rule: &str, span: Span, instr: &str, msg: impl Into<String>) {
        if self.check.allows(rule) {
            self.warnings.push(Diagnostic::warning(self.file, span, msg).in_instruction(instr));
        }
    }

    /// The outcome of reading `a..b` as a JSON array, with a warning when it looks like one but
    /// is not valid JSON (BuildKit then silently uses the shell form).
    pub fn json(&mut self, a: usize, b: usize, instr: &str) -> Result<Json, Diagnostic> {
        let json = parse_json(&self.line.text, a, b);
        match &json {
            Json::NotStrings => {
                return self.err(
                    self.line.span(a, b),
                    instr,
                    "the JSON array may hold only strings: write [\"executable\", \"arg\"]",
                );
            }
            Json::Shell(Some(why)) => {
                let span = self.line.span(a, b);
                self.lint(
                    "InvalidJSONForm",
                    span,
                    instr,
                    format!(
                        "this looks like the exec (JSON) form but is not valid JSON ({why}), so \
                         it is used as a shell command; JSON needs double quotes: [\"a\", \"b\"]"
                    ),
                );
            }
            _ => {}
        }
        Ok(json)
    }
}

/// Whether heredocs are read for this line (BuildKit: `RUN`, `COPY`, `ADD`, also behind
/// `ONBUILD`, and only in shell form).
pub(crate) fn may_have_heredocs(text: &str) -> bool {
    let (start, end) = trim_range(text, 0, text.len());
    let kw_end = text[start..end].find(is_sep).map_or(end, |i| start + i);
    let (_, args) = extract_flags(text, kw_end, end);
    let (a, b) = trim_range(text, args, end);
    match text[start..kw_end].to_lowercase().as_str() {
        "onbuild" => may_have_heredocs(&text[a..b]),
        "run" | "copy" | "add" => !matches!(parse_json(text, a, b), Json::Strings(_)),
        _ => false,
    }
}

/// Splits the instruction starting at byte `start` of the line into its parts.
fn split(line: &Logical, start: usize) -> Parts {
    let text = &line.text;
    let (s, end) = trim_range(text, start, text.len());
    let kw_end = text[s..end].find(is_sep).map_or(end, |i| s + i);
    let rest = text[kw_end..end].find(|c| !is_sep(c)).map_or(end, |i| kw_end + i);
    let (flags, args) = if rest < end { extract_flags(text, rest, end) } else { (Vec::new(), end) };
    let (a, b) = trim_range(text, args, end);
    let keyword = text[s..kw_end].to_string();
    let kw_span = line.span(s, kw_end);
    let span = Span {
        line: kw_span.line,
        col: kw_span.col,
        end_line: line.last_line,
        end_col: line.last_line_chars + 1,
    };
    Parts { upper: keyword.to_uppercase(), keyword, kw_span, span, start: s, kw_end, flags, a, b }
}

/// Parses the instruction starting at byte `start` of the line. `previous` is the name of the
/// instruction before it, for hints.
pub(crate) fn parse(
    ctx: &mut Ctx<'_>,
    start: usize,
    previous: Option<&str>,
) -> Result<Instruction, Diagnostic> {
    let p = split(ctx.line, start);
    let (command, flags) = match p.upper.as_str() {
        "FROM" => commands::from(ctx, &p)?,
        "RUN" => commands::run(ctx, &p)?,
        "CMD" => commands::cmd(ctx, &p)?,
        "ENTRYPOINT" => commands::entrypoint(ctx, &p)?,
        "SHELL" => commands::shell(ctx, &p)?,
        "ENV" | "LABEL" => commands::env_or_label(ctx, &p)?,
        "ARG" => commands::arg(ctx, &p)?,
        "COPY" => commands::copy(ctx, &p)?,
        "ADD" => commands::add(ctx, &p)?,
        "WORKDIR" | "USER" | "MAINTAINER" | "STOPSIGNAL" => commands::single(ctx, &p)?,
        "EXPOSE" => commands::expose(ctx, &p)?,
        "VOLUME" => commands::volume(ctx, &p)?,
        "HEALTHCHECK" => commands::healthcheck(ctx, &p)?,
        "ONBUILD" => onbuild(ctx, &p)?,
        _ => return unknown(ctx, &p, previous),
    };
    Ok(Instruction {
        keyword: p.keyword,
        keyword_span: p.kw_span,
        span: p.span,
        original: ctx.line.text[p.start..].to_string(),
        flags,
        heredocs: if command_takes_heredocs(&command) { ctx.heredocs.to_vec() } else { Vec::new() },
        command,
    })
}

fn command_takes_heredocs(c: &Command) -> bool {
    matches!(c, Command::Run(_) | Command::Copy(_) | Command::Add(_) | Command::Onbuild(_))
}

fn unknown<T>(ctx: &Ctx<'_>, p: &Parts, previous: Option<&str>) -> Result<T, Diagnostic> {
    let mut msg = match closest(&p.keyword, INSTRUCTIONS) {
        Some(s) => format!("unknown instruction {:?}; did you mean {s}?", p.keyword),
        None => format!(
            "unknown instruction {:?}; the instructions are {}",
            p.keyword,
            INSTRUCTIONS.join(", ")
        ),
    };
    if previous == Some("RUN") && p.keyword.chars().any(|c| c.is_lowercase()) {
        msg.push_str(&format!(
            " (if this line continues the RUN above, end that line with {})",
            ctx.escape
        ));
    }
    ctx.err(p.kw_span, &p.upper, msg)
}

fn onbuild(ctx: &mut Ctx<'_>, p: &Parts) -> Result<(Command, Vec<super::ast::Flag>), Diagnostic> {
    if p.a == p.b {
        return ctx.err(
            p.kw_span,
            "ONBUILD",
            "ONBUILD needs an instruction to run when the image is used as a base: \
             ONBUILD <INSTRUCTION> ...",
        );
    }
    let flags = super::flags::check(ctx.file, "ONBUILD", &[], &p.flags, ctx.line)?;
    let inner = split(ctx.line, p.a);
    match inner.upper.as_str() {
        "ONBUILD" => {
            return ctx.err(
                inner.kw_span,
                "ONBUILD",
                "ONBUILD ONBUILD is not allowed: a trigger cannot add another trigger",
            );
        }
        "FROM" | "MAINTAINER" => {
            return ctx.err(
                inner.kw_span,
                "ONBUILD",
                format!("{} cannot be an ONBUILD trigger", inner.upper),
            );
        }
        _ => {}
    }
    let trigger = parse(ctx, p.a, None)?;
    // BuildKit stores the text after `ONBUILD` and its blanks, with heredoc bodies appended.
    let text = &ctx.line.text;
    let after = text[p.kw_end..].find(|c: char| !matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' '));
    let mut expression = after.map_or(String::new(), |i| text[p.kw_end + i..].to_string());
    for doc in ctx.heredocs {
        expression.push('\n');
        expression.push_str(&doc.content);
        expression.push_str(&doc.name);
    }
    Ok((Command::Onbuild(Onbuild { trigger: Box::new(trigger), expression }), flags.all))
}
