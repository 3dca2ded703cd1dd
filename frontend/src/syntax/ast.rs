//! The parsed form of a Dockerfile: typed instructions holding unexpanded words with spans.

use crate::diag::{Diagnostic, Span};

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    /// The file name used in diagnostics.
    pub file: String,
    /// Parser directives found at the top (`# syntax=`, `# escape=`, `# check=`), in order.
    pub directives: Vec<Directive>,
    /// The escape character (`\` unless `# escape=` chose `` ` ``).
    pub escape: char,
    /// The instructions, in file order.
    pub instructions: Vec<Instruction>,
    /// Warnings found while parsing (empty continuation lines, ignored flags, legacy forms, ...).
    pub warnings: Vec<Diagnostic>,
}

impl Dockerfile {
    /// The value of directive `name` (lower-case: `syntax`, `escape`, `check`), if present.
    pub fn directive(&self, name: &str) -> Option<&str> {
        self.directives.iter().find(|d| d.name == name).map(|d| d.value.as_str())
    }
}

/// A parser directive such as `# syntax=docker/dockerfile:1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Lower-case name: `syntax`, `escape` or `check`.
    pub name: String,
    /// The value, trimmed.
    pub value: String,
    /// The directive's line.
    pub span: Span,
}

/// A piece of text from the Dockerfile, unexpanded, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The text as written (JSON-form arguments: the decoded string).
    pub text: String,
    /// Where it was written.
    pub span: Span,
}

/// A flag such as `--from=build` or `--link`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The name without the leading `--`.
    pub name: String,
    /// The value after `=` (quotes removed), or `None` for `--name` alone.
    pub value: Option<String>,
    /// Where the flag was written (from `--` to the end of the value).
    pub span: Span,
}

impl Flag {
    /// The flag as BuildKit reports it: `--name=value` or `--name`.
    pub fn text(&self) -> String {
        match &self.value {
            Some(v) => format!("--{}={v}", self.name),
            None => format!("--{}", self.name),
        }
    }

    /// The value as a [`Word`] (empty for `--name` alone), spanning the whole flag.
    pub fn word(&self) -> Word {
        Word { text: self.value.clone().unwrap_or_default(), span: self.span }
    }

    /// The span of characters `offset..offset + len` of the value, when the flag was written on
    /// one line as `--name=value` without quotes or escapes; otherwise the whole flag.
    pub fn value_span(&self, offset: usize, len: usize) -> Span {
        let value = self.value.as_deref().unwrap_or("");
        let prefix = self.name.chars().count() + 3;
        let s = self.span;
        let plain = s.line == s.end_line
            && s.end_col.saturating_sub(s.col) as usize == prefix + value.chars().count();
        if !plain {
            return s;
        }
        Span::on_line(s.line, s.col + (prefix + offset) as u32, len.max(1) as u32)
    }
}

/// A here-document (`<<EOF` ... `EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word with quotes removed (`EOF`).
    pub name: String,
    /// The body as written: every line up to the delimiter, each with its line ending.
    /// Tabs are not yet stripped for `<<-` (see [`Heredoc::chomp`]).
    pub content: String,
    /// Variables in the body are expanded (the delimiter was not quoted).
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from body lines (and the delimiter line).
    pub chomp: bool,
    /// The file descriptor written before `<<` (`3<<EOF`), 0 when none.
    pub fd: u32,
    /// Where `<<EOF` was written.
    pub span: Span,
    /// The body lines and the delimiter line.
    pub body_span: Span,
}

impl Heredoc {
    /// The body with leading tabs removed from every line when `chomp` is set.
    pub fn chomped_content(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        self.content.split_inclusive('\n').map(|l| l.trim_start_matches('\t')).collect()
    }
}

/// One instruction: the keyword, its flags, its arguments (typed per instruction) and heredocs.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    /// The keyword as written (any case).
    pub keyword: String,
    /// Where the keyword was written.
    pub keyword_span: Span,
    /// The whole instruction: from the keyword to the end of its last line (heredoc bodies
    /// included).
    pub span: Span,
    /// The instruction's text as BuildKit keeps it: continuation lines joined, comments inside
    /// them dropped, heredoc bodies not included.
    pub original: String,
    /// All flags, in order, as written.
    pub flags: Vec<Flag>,
    /// Heredocs opened on this instruction's line, in order.
    pub heredocs: Vec<Heredoc>,
    /// The typed arguments.
    pub command: Command,
}

impl Instruction {
    /// The upper-case instruction name (`COPY`, `ENV`, ...).
    pub fn name(&self) -> &'static str {
        self.command.name()
    }
}

/// Arguments that can be written in exec (JSON) form or shell form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    /// `["executable", "arg"]`: the decoded strings.
    Exec(Vec<Word>),
    /// `executable arg`: the rest of the line as written (possibly empty).
    Shell(Word),
}

impl CommandLine {
    /// The arguments as strings: the exec array, or the shell-form text as one element
    /// (none when the shell form is empty).
    pub fn args(&self) -> Vec<String> {
        match self {
            CommandLine::Exec(words) => words.iter().map(|w| w.text.clone()).collect(),
            CommandLine::Shell(w) if w.text.is_empty() => Vec::new(),
            CommandLine::Shell(w) => vec![w.text.clone()],
        }
    }

    /// Whether the exec (JSON) form was used.
    pub fn is_exec(&self) -> bool {
        matches!(self, CommandLine::Exec(_))
    }
}

/// `KEY=value` (or legacy `KEY value`) in `ENV` and `LABEL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key, unexpanded.
    pub key: Word,
    /// The value, unexpanded.
    pub value: Word,
    /// Written in the legacy `KEY value` form (no `=`).
    pub legacy: bool,
}

/// `NAME` or `NAME=default` in `ARG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    /// The name.
    pub name: Word,
    /// The default, unexpanded, if `=` was written.
    pub default: Option<Word>,
}

/// A source of `COPY`/`ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A path (or URL, or wildcard pattern), unexpanded.
    Path(Word),
    /// `<<EOF`: an inline file whose content is the heredoc.
    Heredoc {
        /// The `<<EOF` word.
        word: Word,
        /// The heredoc it names (empty content when none was read, as BuildKit does).
        doc: Heredoc,
    },
}

/// `FROM [--platform=P] image [AS name]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    /// The image reference or stage name, unexpanded.
    pub image: Word,
    /// `--platform`, unexpanded.
    pub platform: Option<Flag>,
    /// The stage name as written (compare lower-cased).
    pub alias: Option<Word>,
}

/// `RUN [--mount=...] [--network=...] [--security=...] command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// `--mount` flags, in order (their options are parsed when `RUN` is lowered).
    pub mounts: Vec<Flag>,
    /// `--network`.
    pub network: Option<Flag>,
    /// `--security`.
    pub security: Option<Flag>,
    /// The command.
    pub command: CommandLine,
}

/// `COPY [flags] <src>... <dest>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// `--from`.
    pub from: Option<Flag>,
    /// `--chown`.
    pub chown: Option<Flag>,
    /// `--chmod`.
    pub chmod: Option<Flag>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude` patterns, in order.
    pub exclude: Vec<Flag>,
    /// Sources, in order.
    pub sources: Vec<Source>,
    /// Destination, unexpanded.
    pub dest: Word,
    /// Written in JSON form.
    pub json: bool,
}

/// `ADD [flags] <src>... <dest>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    /// `--chown`.
    pub chown: Option<Flag>,
    /// `--chmod`.
    pub chmod: Option<Flag>,
    /// `--link`.
    pub link: bool,
    /// `--keep-git-dir`.
    pub keep_git_dir: bool,
    /// `--checksum`.
    pub checksum: Option<Flag>,
    /// `--unpack` (`None` when not given).
    pub unpack: Option<bool>,
    /// `--exclude` patterns, in order.
    pub exclude: Vec<Flag>,
    /// Sources, in order.
    pub sources: Vec<Source>,
    /// Destination, unexpanded.
    pub dest: Word,
    /// Written in JSON form.
    pub json: bool,
}

/// A `HEALTHCHECK` duration flag, already parsed (BuildKit checks them while parsing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationFlag {
    /// The flag as written.
    pub flag: Flag,
    /// The duration in nanoseconds.
    pub nanos: i64,
}

/// `HEALTHCHECK [flags] CMD command` or `HEALTHCHECK NONE`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // one per HEALTHCHECK line: boxing buys nothing
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable the base image's check.
    None,
    /// `HEALTHCHECK CMD ...`.
    Cmd {
        /// The command (exec form → `CMD`, shell form → `CMD-SHELL`).
        command: CommandLine,
        /// `--interval`.
        interval: Option<DurationFlag>,
        /// `--timeout`.
        timeout: Option<DurationFlag>,
        /// `--start-period`.
        start_period: Option<DurationFlag>,
        /// `--start-interval`.
        start_interval: Option<DurationFlag>,
        /// `--retries`.
        retries: Option<(Flag, i32)>,
    },
}

/// `ONBUILD <instruction>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Onbuild {
    /// The trigger instruction.
    pub trigger: Box<Instruction>,
    /// The trigger as stored in the image config (`OnBuild`): the text after `ONBUILD`, with
    /// heredoc bodies appended as BuildKit does.
    pub expression: String,
}

/// The typed arguments of an instruction, one variant per instruction.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `FROM`.
    From(From),
    /// `RUN`.
    Run(Run),
    /// `CMD`.
    Cmd(CommandLine),
    /// `ENTRYPOINT`.
    Entrypoint(CommandLine),
    /// `SHELL` (JSON form only).
    Shell(Vec<Word>),
    /// `ENV`.
    Env(Vec<KeyValue>),
    /// `LABEL`.
    Label(Vec<KeyValue>),
    /// `ARG`.
    Arg(Vec<ArgDecl>),
    /// `COPY`.
    Copy(Copy),
    /// `ADD`.
    Add(Add),
    /// `WORKDIR`.
    Workdir(Word),
    /// `USER`.
    User(Word),
    /// `EXPOSE`: the words as written.
    Expose(Vec<Word>),
    /// `VOLUME`: the paths; `json` when written as a JSON array.
    Volume {
        /// The paths, unexpanded.
        paths: Vec<Word>,
        /// Written in JSON form.
        json: bool,
    },
    /// `STOPSIGNAL`.
    StopSignal(Word),
    /// `HEALTHCHECK`.
    Healthcheck(Healthcheck),
    /// `ONBUILD`.
    Onbuild(Onbuild),
    /// `MAINTAINER` (deprecated).
    Maintainer(Word),
}

impl Command {
    /// The upper-case instruction name.
    pub fn name(&self) -> &'static str {
        match self {
            Command::From(_) => "FROM",
            Command::Run(_) => "RUN",
            Command::Cmd(_) => "CMD",
            Command::Entrypoint(_) => "ENTRYPOINT",
            Command::Shell(_) => "SHELL",
            Command::Env(_) => "ENV",
            Command::Label(_) => "LABEL",
            Command::Arg(_) => "ARG",
            Command::Copy(_) => "COPY",
            Command::Add(_) => "ADD",
            Command::Workdir(_) => "WORKDIR",
            Command::User(_) => "USER",
            Command::Expose(_) => "EXPOSE",
            Command::Volume { .. } => "VOLUME",
            Command::StopSignal(_) => "STOPSIGNAL",
            Command::Healthcheck(_) => "HEALTHCHECK",
            Command::Onbuild(_) => "ONBUILD",
            Command::Maintainer(_) => "MAINTAINER",
        }
    }
}

/// Every instruction keyword, upper-case, in the order the Dockerfile reference lists them.
pub const INSTRUCTIONS: [&str; 18] = [
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
];
