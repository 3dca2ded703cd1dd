//! Lowering one stage: its base config, then each instruction (the base image's `ONBUILD`
//! triggers first) as a config change and a [`Step`], the way BuildKit's dispatcher does.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use super::LowerOptions;
use super::args::Globals;
use super::expand::Expander;
use super::gofmt;
use super::meta;
use super::paths;
use super::stages::StageDef;
use crate::config::{ContainerConfig, Healthcheck as ConfigHealthcheck};
use crate::diag::{Diagnostic, Span};
use crate::graph::{ImageResolver, MkdirOp, Op, Step};
use crate::syntax::{CheckConfig, Command, CommandLine, Healthcheck, Instruction, KeyValue};

/// What every stage's lowering shares.
pub(crate) struct Shared<'a> {
    /// Word expansion for this file.
    pub x: Expander<'a>,
    /// Build options.
    pub options: &'a LowerOptions,
    /// Finds images for `COPY --from=IMAGE`.
    pub resolver: &'a dyn ImageResolver,
    /// Global ARGs.
    pub globals: &'a Globals,
    /// Which warnings to report.
    pub check: &'a CheckConfig,
    /// All stages of the file.
    pub stages: &'a [StageDef<'a>],
    /// The named build contexts.
    pub named: &'a super::named::Named,
    /// Stage position → index in the pruned graph.
    pub index_of: &'a BTreeMap<usize, usize>,
    /// The platform images are resolved for (`None`: the host's).
    pub platform: Option<String>,
}

/// What a stage built on another stage inherits besides the config: BuildKit's state
/// environment (which holds `ARG` values) and the `ARG`s declared so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct Inherited {
    /// The state environment, in definition order.
    pub env: Vec<(String, String)>,
    /// `ARG`s declared, in order, with their values.
    pub build_args: Vec<(String, Option<String>)>,
}

/// A trigger being run: the `FROM` it belongs to (steps and warnings point there).
#[derive(Debug, Clone)]
pub(crate) struct TriggerCtx {
    pub from_span: Span,
}

/// The state of a stage while its instructions are applied.
pub(crate) struct StageBuilder<'s, 'a> {
    /// Shared context.
    pub sh: &'s Shared<'a>,
    /// This stage's position.
    pub pos: usize,
    /// The config so far.
    pub config: ContainerConfig,
    /// Variables for expansion (BuildKit's state environment: image `Env`, `ENV`, `ARG`).
    pub vars: BTreeMap<String, String>,
    /// The names of `vars` in definition order (the order `RUN` gets them in).
    pub var_order: Vec<String>,
    /// `ARG`s declared in this stage and the stages it builds on, in order, with their values
    /// (BuildKit's `buildArgs`: they prefix `RUN` history and silence `UndefinedVar`).
    pub build_args: Vec<(String, Option<String>)>,
    /// `UndefinedVar` warnings found by expansions of the current instruction.
    undefined: RefCell<Vec<Diagnostic>>,
    /// Steps so far.
    pub steps: Vec<Step>,
    /// Warnings found.
    pub warnings: Vec<Diagnostic>,
    /// `ARG` names declared in this stage.
    pub declared_args: BTreeSet<String>,
    /// The operating system the stage is for.
    pub os: String,
    /// `MAINTAINER`, the image's `author`.
    pub author: Option<String>,
    /// Set while a trigger runs.
    pub trigger: Option<TriggerCtx>,
    cmd_seen: Option<Span>,
    entrypoint_seen: Option<Span>,
    healthcheck_seen: Option<Span>,
    workdir_set: bool,
}

impl<'s, 'a> StageBuilder<'s, 'a> {
    /// Starts from `config` (the base's), adding the default `PATH` when it has none; a stage
    /// built on another stage also starts from what that stage `inherited`.
    pub fn new(
        sh: &'s Shared<'a>,
        pos: usize,
        mut config: ContainerConfig,
        os: String,
        inherited: Option<&Inherited>,
    ) -> Self {
        if config.env_get("PATH").is_none() {
            let path = if os == "windows" {
                "c:\\Windows\\System32;c:\\Windows"
            } else {
                super::platform::DEFAULT_PATH
            };
            config.env.push(format!("PATH={path}"));
        }
        if !config.working_dir.is_empty() {
            config.working_dir = paths::resolve("/", &config.working_dir);
        }
        let mut b = StageBuilder {
            sh,
            pos,
            config,
            vars: BTreeMap::new(),
            var_order: Vec::new(),
            build_args: Vec::new(),
            undefined: RefCell::new(Vec::new()),
            steps: Vec::new(),
            warnings: Vec::new(),
            declared_args: BTreeSet::new(),
            os,
            author: None,
            trigger: None,
            cmd_seen: None,
            entrypoint_seen: None,
            healthcheck_seen: None,
            workdir_set: false,
        };
        if let Some(inh) = inherited {
            for (k, v) in &inh.env {
                b.set_var(k, v);
            }
            b.build_args = inh.build_args.clone();
        }
        let env = b.config.env.clone();
        for kv in env {
            match kv.split_once('=') {
                Some((k, v)) => b.set_var(k, v),
                None => b.set_var(&kv, ""),
            }
        }
        b
    }

    /// Sets a variable of the state environment (keeping its position when redefined).
    pub fn set_var(&mut self, key: &str, value: &str) {
        if self.vars.insert(key.to_string(), value.to_string()).is_none() {
            self.var_order.push(key.to_string());
        }
    }

    /// The state environment as `KEY=value` entries, in definition order.
    pub fn env_list(&self) -> Vec<String> {
        self.var_order
            .iter()
            .map(|k| format!("{k}={}", self.vars.get(k).map_or("", String::as_str)))
            .collect()
    }

    /// What a stage built on this one inherits.
    pub fn inherited(&self) -> Inherited {
        Inherited {
            env: self
                .var_order
                .iter()
                .map(|k| (k.clone(), self.vars.get(k).cloned().unwrap_or_default()))
                .collect(),
            build_args: self.build_args.clone(),
        }
    }

    /// An error at `span` about `instr`.
    pub fn err(&self, span: Span, instr: &str, msg: impl Into<String>) -> Diagnostic {
        Diagnostic::error(self.sh.x.file, span, msg).in_instruction(instr)
    }

    /// Records a warning of `rule`, unless `# check=` skips it.
    pub fn lint(&mut self, rule: &str, span: Span, instr: &str, msg: impl Into<String>) {
        if self.sh.check.allows(rule) {
            let span = self.trigger.as_ref().map_or(span, |t| t.from_span);
            self.warnings
                .push(Diagnostic::warning(self.sh.x.file, span, msg).in_instruction(instr));
        }
    }

    /// Expands `word` with the stage's variables, noting undefined ones for `UndefinedVar`.
    pub fn expand(&self, word: &crate::syntax::Word, instr: &str) -> Result<String, Diagnostic> {
        let vars = &self.vars;
        let (value, unset) = self.sh.x.word_tracked(word, instr, &|k| vars.get(k).cloned())?;
        self.note_undefined(unset, word.span, instr);
        Ok(value)
    }

    /// Expands a heredoc body (`COPY <<EOF`) written at `at`.
    pub fn expand_heredoc(
        &self,
        body: &str,
        at: &crate::syntax::Word,
        instr: &str,
    ) -> Result<String, Diagnostic> {
        let vars = &self.vars;
        let (value, unset) = self.sh.x.heredoc(body, at, instr, &|k| vars.get(k).cloned())?;
        self.note_undefined(unset, at.span, instr);
        Ok(value)
    }

    /// Records `UndefinedVar` warnings for names expanded without a value, unless an `ARG`
    /// declares them (BuildKit's `reportUnmatchedVariables`).
    pub fn note_undefined(&self, unset: BTreeSet<String>, span: Span, instr: &str) {
        if !self.sh.check.allows("UndefinedVar") {
            return;
        }
        let span = self.trigger.as_ref().map_or(span, |t| t.from_span);
        let mut found = self.undefined.borrow_mut();
        for name in unset {
            if self.build_args.iter().any(|(k, _)| *k == name)
                || name.starts_with("BUILDKIT_SBOM_SCAN_")
                || found.iter().any(|d| d.span == span && d.message.contains(&format!("${name} ")))
            {
                continue;
            }
            let mut msg = format!("usage of undefined variable ${name} ");
            match crate::syntax::closest_word(&name, self.vars.keys().map(String::as_str)) {
                Some(s) => msg.push_str(&format!("(did you mean ${s}?)")),
                None => msg.push_str("(no ARG or ENV defines it; it expands to an empty string)"),
            }
            found.push(Diagnostic::warning(self.sh.x.file, span, msg).in_instruction(instr));
        }
    }

    /// Adds a step for `instr`.
    pub fn step(&mut self, instr: &Instruction, created_by: String, op: Option<Op>) {
        let span = self.trigger.as_ref().map_or(instr.span, |t| t.from_span);
        self.steps.push(Step { span, keyword: instr.name().to_string(), created_by, op });
    }

    /// Runs a base image's (or base stage's) `ONBUILD` trigger.
    pub fn apply_trigger(
        &mut self,
        from_span: Span,
        expression: &str,
        instr: &Instruction,
    ) -> Result<(), Diagnostic> {
        self.trigger = Some(TriggerCtx { from_span });
        let out = self.apply(instr).map_err(|mut d| {
            d.span = from_span;
            d.message = format!("in ONBUILD trigger {expression:?} of the base: {}", d.message);
            d
        });
        self.trigger = None;
        out
    }

    /// Applies one instruction.
    pub fn apply(&mut self, instr: &Instruction) -> Result<(), Diagnostic> {
        let out = self.apply_command(instr);
        let found = std::mem::take(&mut *self.undefined.borrow_mut());
        self.warnings.extend(found);
        out
    }

    fn apply_command(&mut self, instr: &Instruction) -> Result<(), Diagnostic> {
        match &instr.command {
            Command::Env(pairs) => self.env(instr, pairs),
            Command::Label(pairs) => self.label(instr, pairs),
            Command::Arg(decls) => self.arg(instr, decls),
            Command::Workdir(w) => self.workdir(instr, w),
            Command::User(w) => {
                let user = self.expand(w, "USER")?;
                self.config.user = user.clone();
                self.step(instr, format!("USER {user}"), None);
                Ok(())
            }
            Command::Cmd(line) => self.cmd(instr, line),
            Command::Entrypoint(line) => self.entrypoint(instr, line),
            Command::Shell(words) => {
                let shell: Vec<String> = words.iter().map(|w| w.text.clone()).collect();
                self.config.shell = shell.clone();
                self.step(instr, format!("SHELL {}", gofmt::list(&shell)), None);
                Ok(())
            }
            Command::Expose(words) => self.expose(instr, words),
            Command::Volume { paths, .. } => {
                let mut vols = Vec::new();
                for p in paths {
                    let v = self.expand(p, "VOLUME")?;
                    if v.is_empty() {
                        return Err(self.err(
                            p.span,
                            "VOLUME",
                            format!("the VOLUME path {:?} expands to an empty string", p.text),
                        ));
                    }
                    vols.push(v);
                }
                for v in &vols {
                    self.config.volumes.insert(v.clone(), ());
                }
                self.step(instr, format!("VOLUME {}", gofmt::list(&vols)), None);
                Ok(())
            }
            Command::StopSignal(w) => {
                let sig = self.expand(w, "STOPSIGNAL")?;
                if !meta::valid_signal(&sig) {
                    return Err(self.err(
                        w.span,
                        "STOPSIGNAL",
                        format!(
                            "invalid signal {sig:?}: write a signal name like SIGTERM or SIGQUIT, \
                             or a number"
                        ),
                    ));
                }
                self.config.stop_signal = sig.clone();
                self.step(instr, format!("STOPSIGNAL {sig}"), None);
                Ok(())
            }
            Command::Healthcheck(h) => self.healthcheck(instr, h),
            Command::Onbuild(o) => {
                self.config.on_build.push(o.expression.clone());
                Ok(())
            }
            Command::Maintainer(w) => {
                self.author = Some(w.text.clone());
                self.step(instr, format!("MAINTAINER {}", w.text), None);
                Ok(())
            }
            Command::Copy(c) => self.copy(instr, c),
            Command::Add(a) => self.add(instr, a),
            Command::Run(r) => self.run(instr, r),
            Command::From(_) => Err(self.err(
                instr.keyword_span,
                "FROM",
                "internal error: FROM inside a stage body",
            )),
        }
    }

    fn expand_pairs(
        &self,
        pairs: &[KeyValue],
        instr: &str,
    ) -> Result<Vec<(String, String)>, Diagnostic> {
        let mut out = Vec::with_capacity(pairs.len());
        for kv in pairs {
            let key = self.expand(&kv.key, instr)?;
            if key.is_empty() {
                return Err(self.err(
                    kv.key.span,
                    instr,
                    format!("the name {:?} expands to an empty string", kv.key.text),
                ));
            }
            out.push((key, self.expand(&kv.value, instr)?));
        }
        Ok(out)
    }

    fn env(&mut self, instr: &Instruction, pairs: &[KeyValue]) -> Result<(), Diagnostic> {
        // Every word is expanded before any is set: `ENV A=1 B=$A` sees the old A.
        let pairs = self.expand_pairs(pairs, "ENV")?;
        let mut text = String::from("ENV");
        for (k, v) in pairs {
            text.push_str(&format!(" {k}={v}"));
            self.config.env_set(&k, &v);
            self.set_var(&k, &v);
        }
        self.step(instr, text, None);
        Ok(())
    }

    fn label(&mut self, instr: &Instruction, pairs: &[KeyValue]) -> Result<(), Diagnostic> {
        let pairs = self.expand_pairs(pairs, "LABEL")?;
        let mut text = String::from("LABEL");
        for (k, v) in pairs {
            text.push_str(&format!(" {k}={v}"));
            self.config.labels.insert(k, v);
        }
        self.step(instr, text, None);
        Ok(())
    }

    fn arg(
        &mut self,
        instr: &Instruction,
        decls: &[crate::syntax::ArgDecl],
    ) -> Result<(), Diagnostic> {
        let mut parts = Vec::new();
        for d in decls {
            let name = d.name.text.clone();
            let value = match (self.sh.options.build_args.get(&name), &d.default) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(def)) => Some(self.expand(def, "ARG")?),
                (None, None) => self.sh.globals.values.get(&name).cloned(),
            };
            match &value {
                Some(v) => {
                    if !name.starts_with("BUILDKIT_SBOM_SCAN_") {
                        self.set_var(&name, v);
                    }
                    parts.push(format!("{name}={v}"));
                }
                None => parts.push(name.clone()),
            }
            self.build_args.push((name.clone(), value));
            self.declared_args.insert(name);
        }
        self.step(instr, format!("ARG {}", parts.join(" ")), None);
        Ok(())
    }

    fn workdir(&mut self, instr: &Instruction, w: &crate::syntax::Word) -> Result<(), Diagnostic> {
        let path = self.expand(w, "WORKDIR")?;
        if !self.workdir_set && !path.starts_with('/') {
            self.lint(
                "WorkdirRelativePath",
                w.span,
                "WORKDIR",
                format!(
                    "relative WORKDIR {path:?} depends on the base image's working directory; \
                     write an absolute path"
                ),
            );
        }
        self.workdir_set = true;
        let wd = paths::resolve(&self.config.working_dir, &path);
        self.config.working_dir = wd.clone();
        let op = (wd != "/").then(|| {
            let owner = (!self.config.user.is_empty()).then(|| self.config.user.clone());
            Op::Mkdir(MkdirOp { path: wd.clone(), owner })
        });
        self.step(instr, format!("WORKDIR {wd}"), op);
        Ok(())
    }

    /// A shell-form command line with the stage's shell in front (BuildKit's `withShell`).
    pub(crate) fn with_shell(&self, text: String) -> Vec<String> {
        let mut args = if !self.config.shell.is_empty() {
            self.config.shell.clone()
        } else if self.os == "windows" {
            vec!["cmd".into(), "/S".into(), "/C".into()]
        } else {
            vec!["/bin/sh".into(), "-c".into()]
        };
        args.push(text);
        args
    }

    fn json_args_lint(&mut self, instr: &Instruction, line: &CommandLine) {
        if !line.is_exec() && self.config.shell.is_empty() {
            let name = instr.name();
            self.lint(
                "JSONArgsRecommended",
                instr.span,
                name,
                format!(
                    "use the exec form, {name} [\"program\", \"arg\"]: in shell form the program \
                     runs under /bin/sh -c and does not receive stop signals such as SIGTERM"
                ),
            );
        }
    }

    fn used_once(&mut self, instr: &Instruction, which: &str) {
        let name = instr.name();
        let span = self.trigger.as_ref().map_or(instr.span, |t| t.from_span);
        let previous = match which {
            "CMD" => self.cmd_seen.replace(span),
            "ENTRYPOINT" => self.entrypoint_seen.replace(span),
            _ => self.healthcheck_seen.replace(span),
        };
        if let Some(prev) = previous {
            self.lint(
                "MultipleInstructionsDisallowed",
                prev,
                name,
                format!("this {name} has no effect: the {name} on line {} replaces it", span.line),
            );
        }
    }

    fn cmd(&mut self, instr: &Instruction, line: &CommandLine) -> Result<(), Diagnostic> {
        self.used_once(instr, "CMD");
        self.json_args_lint(instr, line);
        let args = match line {
            CommandLine::Exec(_) => line.args(),
            CommandLine::Shell(w) => self.with_shell(w.text.clone()),
        };
        self.config.cmd = Some(args.clone());
        self.config.args_escaped = true;
        self.step(instr, format!("CMD {}", gofmt::quote_list(&args)), None);
        Ok(())
    }

    fn entrypoint(&mut self, instr: &Instruction, line: &CommandLine) -> Result<(), Diagnostic> {
        self.used_once(instr, "ENTRYPOINT");
        self.json_args_lint(instr, line);
        let args = match line {
            CommandLine::Exec(words) if words.is_empty() => None,
            CommandLine::Exec(_) => Some(line.args()),
            CommandLine::Shell(w) => Some(self.with_shell(w.text.clone())),
        };
        self.config.entrypoint = args.clone();
        // An ENTRYPOINT resets the CMD inherited from the base unless this stage set one.
        if self.cmd_seen.is_none() {
            self.config.cmd = None;
        }
        let shown = args.unwrap_or_default();
        self.step(instr, format!("ENTRYPOINT {}", gofmt::quote_list(&shown)), None);
        Ok(())
    }

    fn expose(
        &mut self,
        instr: &Instruction,
        words: &[crate::syntax::Word],
    ) -> Result<(), Diagnostic> {
        let mut ports = BTreeSet::new();
        for w in words {
            let vars = &self.vars;
            let specs = self.sh.x.words(w, "EXPOSE", &|k| vars.get(k).cloned())?;
            for spec in specs {
                let parsed =
                    meta::parse_expose(&spec).map_err(|m| self.err(w.span, "EXPOSE", m))?;
                if parsed.proto_casing {
                    self.lint(
                        "ExposeProtoCasing",
                        w.span,
                        "EXPOSE",
                        format!("write the protocol in {spec:?} in lower case"),
                    );
                }
                if parsed.host_part {
                    self.lint(
                        "ExposeInvalidFormat",
                        w.span,
                        "EXPOSE",
                        format!(
                            "EXPOSE {spec:?} names an IP address or host port, which are ignored; \
                             publish ports when the container runs"
                        ),
                    );
                }
                ports.extend(parsed.ports);
            }
        }
        for p in &ports {
            self.config.exposed_ports.insert(p.clone(), ());
        }
        let shown: Vec<String> = ports.iter().map(|p| format!("{p}:{{}}")).collect();
        self.step(instr, format!("EXPOSE map[{}]", shown.join(" ")), None);
        Ok(())
    }

    fn healthcheck(&mut self, instr: &Instruction, h: &Healthcheck) -> Result<(), Diagnostic> {
        self.used_once(instr, "HEALTHCHECK");
        let config = match h {
            Healthcheck::None => {
                ConfigHealthcheck { test: vec!["NONE".into()], ..Default::default() }
            }
            Healthcheck::Cmd {
                command,
                interval,
                timeout,
                start_period,
                start_interval,
                retries,
            } => {
                let mut test =
                    vec![if command.is_exec() { "CMD" } else { "CMD-SHELL" }.to_string()];
                match command {
                    CommandLine::Exec(_) => test.extend(command.args()),
                    CommandLine::Shell(w) => test.push(w.text.clone()),
                }
                let ns =
                    |d: &Option<crate::syntax::DurationFlag>| d.as_ref().map_or(0, |d| d.nanos);
                ConfigHealthcheck {
                    test,
                    interval: ns(interval),
                    timeout: ns(timeout),
                    start_period: ns(start_period),
                    start_interval: ns(start_interval),
                    retries: retries.as_ref().map_or(0, |(_, n)| *n),
                }
            }
        };
        let text = meta::healthcheck_history(&config);
        self.config.healthcheck = Some(config);
        self.step(instr, text, None);
        Ok(())
    }
}
