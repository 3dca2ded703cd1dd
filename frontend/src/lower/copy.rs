//! Lowering `COPY`, and what `ADD` shares with it: `--chown`, `--chmod`, `--exclude`, sources
//! (paths and heredocs) and the destination joined with the working directory.

use super::dispatch::StageBuilder;
use super::paths;
use super::pattern;
use super::stages::{self, FromRef};
use crate::diag::{Diagnostic, Span};
use crate::graph::{CopyOp, CopySource, FileMode, Op, ResolvedImage};
use crate::syntax::{Copy, Flag, Instruction, Source, Word};

/// What a `from` value names, once resolved.
pub(crate) enum Resolved {
    /// A stage, by index in the graph.
    Stage(usize),
    /// An image.
    Image(Box<ResolvedImage>),
    /// `scratch`.
    Scratch,
    /// A named build context of files.
    Named(String),
}

/// The flags and operands `COPY` and `ADD` share, as written.
pub(crate) struct Operands<'i> {
    /// `COPY` or `ADD`.
    pub instr: &'static str,
    /// `--chown`.
    pub chown: &'i Option<Flag>,
    /// `--chmod`.
    pub chmod: &'i Option<Flag>,
    /// `--exclude`s.
    pub exclude: &'i [Flag],
    /// Sources.
    pub sources: &'i [Source],
    /// Destination.
    pub dest: &'i Word,
    /// JSON form.
    pub json: bool,
}

/// The shared parts after expansion.
pub(crate) struct Expanded {
    /// `--chown` value, if not empty.
    pub chown: Option<String>,
    /// `--chmod` value as written after expansion, if not empty.
    pub chmod_text: Option<String>,
    /// `--chmod` parsed.
    pub chmod: Option<FileMode>,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// Path sources after expansion, with the word each came from.
    pub sources: Vec<(String, Word)>,
    /// Heredoc sources: (name, content).
    pub inline: Vec<(String, String)>,
    /// The destination as written after expansion.
    pub dest_text: String,
}

impl Expanded {
    /// `COPY`/`ADD` flags as BuildKit writes them into history.
    pub fn history(&self, instr: &str, parents: bool, sources: &[String]) -> String {
        let mut text = String::from(instr);
        if parents {
            text.push_str(" --parents");
        }
        if let Some(v) = &self.chown {
            text.push_str(&format!(" --chown={v}"));
        }
        if let Some(v) = &self.chmod_text {
            text.push_str(&format!(" --chmod={v}"));
        }
        for s in sources {
            text.push_str(&format!(" {s}"));
        }
        for (name, _) in &self.inline {
            text.push_str(&format!(" <<{name}"));
        }
        text.push_str(&format!(" {}", self.dest_text));
        text
    }
}

/// Whether a destination as written names a directory.
fn names_dir(dest: &str) -> bool {
    dest.is_empty() || dest == "." || dest.ends_with('/') || dest.ends_with("/.")
}

impl StageBuilder<'_, '_> {
    /// Resolves the value `v` of a `from` option written at `span`; `what` names the option
    /// and `verb` what it does with a stage (`copy from`, `mount`) in messages.
    pub(crate) fn resolve_from(
        &self,
        v: &str,
        span: Span,
        (what, verb): (&str, &str),
        instr: &str,
    ) -> Result<Option<Resolved>, Diagnostic> {
        let err = |m: String| self.err(span, instr, m);
        let stages = self.sh.stages;
        match stages::from_value(self.sh.x.file, stages, self.sh.named, v, span, what, instr)? {
            None => Ok(None),
            Some(FromRef::Stage(p)) if p >= self.pos => {
                let here = stages[self.pos].label();
                let msg = if p == self.pos {
                    format!("{what}={v}: a stage cannot {verb} itself ({here})")
                } else {
                    format!(
                        "{what}={v}: stage {:?} is defined after this stage ({here}, line {}); \
                         a stage can only {verb} stages above it",
                        stages[p].label(),
                        stages[p].from.span.line
                    )
                };
                Err(err(msg))
            }
            Some(FromRef::Stage(p)) => match self.sh.index_of.get(&p) {
                Some(&i) => Ok(Some(Resolved::Stage(i))),
                None => Err(err(format!("internal error: stage {p} was pruned"))),
            },
            Some(FromRef::Scratch) => Ok(Some(Resolved::Scratch)),
            Some(FromRef::Named(name)) => Ok(Some(Resolved::Named(name))),
            Some(FromRef::Image(reference)) => {
                let image =
                    self.sh.resolver.resolve(&reference, self.sh.platform.as_deref()).map_err(
                        |m| {
                            let mut msg = format!("image {reference:?} not found: {m}");
                            let names: Vec<&str> =
                                stages.iter().filter_map(|s| s.name.as_deref()).collect();
                            if !names.is_empty() {
                                msg.push_str(&format!(
                                    "; no stage is named {reference:?} either (the stages are {}",
                                    names.join(", ")
                                ));
                                if let Some(s) = crate::syntax::closest_word(&reference, names) {
                                    msg.push_str(&format!("; did you mean {s}?"));
                                }
                                msg.push(')');
                            }
                            err(msg)
                        },
                    )?;
                Ok(Some(Resolved::Image(Box::new(image))))
            }
        }
    }

    fn copy_source(&self, flag: &Flag) -> Result<CopySource, Diagnostic> {
        let v = flag.value.as_deref().unwrap_or("");
        if crate::expand::references_variables(v, self.sh.x.escape) {
            return Err(self.err(
                flag.span,
                "COPY",
                format!(
                    "--from={v}: --from does not expand variables (BuildKit does not either); \
                     declare the image in a stage instead: ARG IMG=... before the first FROM, \
                     then FROM $IMG AS src, and COPY --from=src"
                ),
            ));
        }
        Ok(match self.resolve_from(v, flag.span, ("--from", "copy from"), "COPY")? {
            None => CopySource::Context,
            Some(Resolved::Stage(i)) => CopySource::Stage(i),
            Some(Resolved::Image(image)) => CopySource::Image(image),
            Some(Resolved::Named(name)) => CopySource::Named(name),
            Some(Resolved::Scratch) => {
                return Err(self.err(
                    flag.span,
                    "COPY",
                    "--from=scratch: scratch is empty, so there is nothing to copy",
                ));
            }
        })
    }

    /// Expands the flags and operands `COPY` and `ADD` share and checks them.
    pub(crate) fn operands(&mut self, o: &Operands<'_>) -> Result<Expanded, Diagnostic> {
        let instr = o.instr;
        let opt = |v: String| (!v.is_empty()).then_some(v);
        let chown = match o.chown {
            Some(f) => opt(self.expand(&f.word(), instr)?),
            None => None,
        };
        let chmod_text = match o.chmod {
            Some(f) => opt(self.expand(&f.word(), instr)?),
            None => None,
        };
        let chmod = match (&chmod_text, o.chmod) {
            (Some(v), Some(f)) => Some(
                FileMode::parse(v)
                    .map_err(|m| self.err(f.span, instr, format!("--chmod={v}: {m}")))?,
            ),
            _ => None,
        };
        let mut exclude = Vec::new();
        for f in o.exclude {
            let pat = self.expand(&f.word(), instr)?;
            if let Err(m) = pattern::validate(&pat) {
                return Err(self.err(f.span, instr, format!("--exclude={pat}: {m}")));
            }
            exclude.push(pat);
        }
        let mut sources = Vec::new();
        let mut inline = Vec::new();
        for s in o.sources {
            match s {
                Source::Path(w) => {
                    let quoted = !o.json && w.text.contains(['"', '\'']);
                    let v = self.expand(w, instr).map_err(|mut d| {
                        if quoted {
                            d.message.push_str(&format!(
                                "; the shell form splits at every space, so for paths with \
                                 spaces use the JSON form: {instr} [\"a b\", \"/dest/\"]"
                            ));
                        }
                        d
                    })?;
                    sources.push((v, w.clone()));
                }
                Source::Heredoc { word, doc } => {
                    let mut content = doc.chomped_content();
                    if doc.expand {
                        content = self.expand_heredoc(&content, word, instr)?;
                    }
                    inline.push((doc.name.clone(), content));
                }
            }
        }
        let dest_text = self.expand(o.dest, instr)?;
        Ok(Expanded { chown, chmod_text, chmod, exclude, sources, inline, dest_text })
    }

    /// The absolute destination and whether it names a directory; several sources need a
    /// directory.
    pub(crate) fn destination(
        &self,
        instr: &str,
        e: &Expanded,
        dest: &Word,
    ) -> Result<(String, bool), Diagnostic> {
        let dest_is_dir = names_dir(&e.dest_text);
        if e.sources.len() + e.inline.len() > 1 && !dest_is_dir {
            return Err(self.err(
                dest.span,
                instr,
                format!(
                    "several sources are copied, so the destination must be a directory: \
                     write {:?} (with a trailing /)",
                    format!("{}/", e.dest_text)
                ),
            ));
        }
        Ok((paths::resolve(&self.config.working_dir, &e.dest_text), dest_is_dir))
    }

    /// Applies a `COPY` instruction.
    pub fn copy(&mut self, instr: &Instruction, c: &Copy) -> Result<(), Diagnostic> {
        let from = match &c.from {
            Some(flag) => self.copy_source(flag)?,
            None => CopySource::Context,
        };
        let e = self.operands(&Operands {
            instr: "COPY",
            chown: &c.chown,
            chmod: &c.chmod,
            exclude: &c.exclude,
            sources: &c.sources,
            dest: &c.dest,
            json: c.json,
        })?;
        for (src, word) in &e.sources {
            let why = if super::add::git_ref(src).is_some() {
                "COPY cannot fetch a git repository; use ADD for git sources"
            } else if super::add::is_http(src) {
                "COPY cannot download a URL; use ADD for URLs"
            } else {
                continue;
            };
            return Err(self.err(word.span, "COPY", format!("{src}: {why}")));
        }
        let (dest, dest_is_dir) = self.destination("COPY", &e, &c.dest)?;
        let sources: Vec<String> = e.sources.iter().map(|(s, _)| s.clone()).collect();
        let text = e.history("COPY", c.parents, &sources);
        let op = CopyOp {
            from,
            sources,
            inline: e.inline,
            dest,
            dest_is_dir,
            chown: e.chown,
            chmod: e.chmod.as_ref().and_then(FileMode::octal),
            link: c.link,
            parents: c.parents,
            exclude: e.exclude,
            chmod_mode: e.chmod,
        };
        self.step(instr, text, Some(Op::Copy(Box::new(op))));
        Ok(())
    }
}
