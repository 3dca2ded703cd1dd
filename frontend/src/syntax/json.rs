//! The `kiln parse --json` view of a [`Dockerfile`]: directives, and per instruction its
//! lower-case name, lines, flags, unexpanded arguments as written, form and heredocs.

use std::collections::BTreeMap;

use serde::Serialize;

use super::ast::{Command, CommandLine, Dockerfile, Healthcheck, Instruction, Source};

/// A parsed Dockerfile as `kiln parse --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JsonDockerfile {
    /// Parser directives: name → value.
    pub directives: BTreeMap<String, String>,
    /// The instructions in file order.
    pub instructions: Vec<JsonInstruction>,
}

/// One instruction in the `kiln parse --json` view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JsonInstruction {
    /// The instruction name, lower-case (`run`).
    pub cmd: String,
    /// First line (1-based).
    pub line: u32,
    /// Last line, heredoc bodies included.
    pub end_line: u32,
    /// Flags as `--name=value` (quotes removed) or `--name`.
    pub flags: Vec<String>,
    /// Arguments as written, unexpanded: shell form as one string, exec form as the array,
    /// `ENV`/`LABEL` as alternating key and value, `WORKDIR`/`USER`/`STOPSIGNAL`/`MAINTAINER`
    /// as one string, `ONBUILD` as the trigger's text, others split on whitespace.
    pub args: Vec<String>,
    /// Written in JSON (exec) form.
    pub json: bool,
    /// Heredocs attached to the instruction.
    pub heredocs: Vec<JsonHeredoc>,
}

/// A heredoc in the `kiln parse --json` view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JsonHeredoc {
    /// The delimiter without quotes.
    pub name: String,
    /// The body as written (`<<-` tabs not stripped).
    pub content: String,
    /// Variables in the body are expanded (the delimiter was not quoted).
    pub expand: bool,
}

fn command_line(c: &CommandLine) -> (Vec<String>, bool) {
    (c.args(), c.is_exec())
}

/// The `AS` keyword as written between the image and the stage name.
fn as_keyword(instr: &Instruction, alias: &str) -> String {
    let end = instr.original.rfind(alias).unwrap_or(instr.original.len());
    instr.original[..end].split_whitespace().last().unwrap_or("AS").to_string()
}

fn args(instr: &Instruction) -> (Vec<String>, bool) {
    let texts = |ws: &[super::ast::Word]| ws.iter().map(|w| w.text.clone()).collect::<Vec<_>>();
    match &instr.command {
        Command::From(f) => {
            let mut a = vec![f.image.text.clone()];
            if let Some(alias) = &f.alias {
                a.push(as_keyword(instr, &alias.text));
                a.push(alias.text.clone());
            }
            (a, false)
        }
        Command::Run(r) => command_line(&r.command),
        Command::Cmd(c) | Command::Entrypoint(c) => command_line(c),
        Command::Shell(words) => (texts(words), true),
        Command::Env(pairs) | Command::Label(pairs) => (
            pairs.iter().flat_map(|kv| [kv.key.text.clone(), kv.value.text.clone()]).collect(),
            false,
        ),
        Command::Arg(decls) => (
            decls
                .iter()
                .map(|d| match &d.default {
                    Some(v) => format!("{}={}", d.name.text, v.text),
                    None => d.name.text.clone(),
                })
                .collect(),
            false,
        ),
        Command::Copy(c) => (sources(&c.sources, &c.dest.text), c.json),
        Command::Add(a) => (sources(&a.sources, &a.dest.text), a.json),
        Command::Workdir(w)
        | Command::User(w)
        | Command::StopSignal(w)
        | Command::Maintainer(w) => (vec![w.text.clone()], false),
        Command::Expose(words) => (texts(words), false),
        Command::Volume { paths, json } => (texts(paths), *json),
        Command::Healthcheck(Healthcheck::None) => (vec!["NONE".to_string()], false),
        Command::Healthcheck(Healthcheck::Cmd { command, .. }) => {
            let (rest, json) = command_line(command);
            (std::iter::once("CMD".to_string()).chain(rest).collect(), json)
        }
        Command::Onbuild(o) => (vec![o.trigger.original.clone()], false),
    }
}

fn sources(sources: &[Source], dest: &str) -> Vec<String> {
    sources
        .iter()
        .map(|s| match s {
            Source::Path(w) => w.text.clone(),
            Source::Heredoc { word, .. } => word.text.clone(),
        })
        .chain(std::iter::once(dest.to_string()))
        .collect()
}

impl Dockerfile {
    /// The `kiln parse --json` view.
    pub fn to_json(&self) -> JsonDockerfile {
        let directives =
            self.directives.iter().map(|d| (d.name.clone(), d.value.clone())).collect();
        let instructions = self
            .instructions
            .iter()
            .map(|i| {
                let (args, json) = args(i);
                JsonInstruction {
                    cmd: i.name().to_lowercase(),
                    line: i.span.line,
                    end_line: i.span.end_line,
                    flags: i.flags.iter().map(|f| f.text()).collect(),
                    args,
                    json,
                    heredocs: i
                        .heredocs
                        .iter()
                        .map(|h| JsonHeredoc {
                            name: h.name.clone(),
                            content: h.content.clone(),
                            expand: h.expand,
                        })
                        .collect(),
                }
            })
            .collect();
        JsonDockerfile { directives, instructions }
    }
}
