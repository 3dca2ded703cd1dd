//! Lowering `COPY`: where it reads from (`--from`), its flags, sources (paths and heredocs) and
//! the destination joined with the working directory.

use super::dispatch::StageBuilder;
use super::paths;
use super::stages::{self, FromRef};
use crate::diag::Diagnostic;
use crate::graph::{CopyOp, CopySource, Op};
use crate::syntax::{Copy, Flag, Instruction, Source};

/// Parses `--chmod` (octal only for now, as BuildKit's stable syntax).
fn chmod(v: &str) -> Result<u32, String> {
    let octal = !v.is_empty() && v.bytes().all(|b| (b'0'..=b'7').contains(&b));
    if octal {
        if let Ok(mode) = u32::from_str_radix(v, 8)
            && mode <= 0o7777
        {
            return Ok(mode);
        }
        return Err(format!("--chmod={v}: the mode is above 7777"));
    }
    if v.contains(['+', '-', '=']) {
        return Err(format!(
            "--chmod={v}: symbolic modes (like u+x) are not supported yet; write an octal mode \
             like 0755"
        ));
    }
    Err(format!("--chmod={v}: not an octal mode; write one between 0 and 7777, like 0644 or 755"))
}

impl StageBuilder<'_, '_> {
    fn copy_source(&self, flag: &Flag) -> Result<CopySource, Diagnostic> {
        let err = |m: String| self.err(flag.span, "COPY", m);
        let v = flag.value.as_deref().unwrap_or("");
        if crate::expand::references_variables(v, self.sh.x.escape) {
            return Err(err(format!(
                "--from={v}: --from does not expand variables (BuildKit does not either); declare \
                 the image in a stage instead: ARG IMG=... before the first FROM, then \
                 FROM $IMG AS src, and COPY --from=src"
            )));
        }
        let stages = self.sh.stages;
        match stages::from_ref(self.sh.x.file, stages, flag, "COPY")? {
            None => Ok(CopySource::Context),
            Some(FromRef::Stage(p)) if p >= self.pos => {
                let here = stages[self.pos].label();
                let msg = if p == self.pos {
                    format!("--from={v}: a stage cannot copy from itself ({here})")
                } else {
                    format!(
                        "--from={v}: stage {:?} is defined after this stage ({here}, line {}); \
                         a stage can only copy from stages above it",
                        stages[p].label(),
                        stages[p].from.span.line
                    )
                };
                Err(err(msg))
            }
            Some(FromRef::Stage(p)) => match self.sh.index_of.get(&p) {
                Some(&i) => Ok(CopySource::Stage(i)),
                None => Err(err(format!("internal error: stage {p} was pruned"))),
            },
            Some(FromRef::Scratch) => Err(err(
                "--from=scratch: scratch is empty, so there is nothing to copy".to_string(),
            )),
            Some(FromRef::Image(reference)) => {
                let image = self
                    .sh
                    .resolver
                    .resolve(&reference, self.sh.platform.as_deref())
                    .map_err(|m| err(format!("image {reference:?} not found: {m}")))?;
                Ok(CopySource::Image(Box::new(image)))
            }
        }
    }

    /// Applies a `COPY` instruction.
    pub fn copy(&mut self, instr: &Instruction, c: &Copy) -> Result<(), Diagnostic> {
        let from = match &c.from {
            Some(flag) => self.copy_source(flag)?,
            None => CopySource::Context,
        };
        let opt = |v: String| (!v.is_empty()).then_some(v);
        let chown = match &c.chown {
            Some(f) => opt(self.expand(&f.word(), "COPY")?),
            None => None,
        };
        let chmod_text = match &c.chmod {
            Some(f) => opt(self.expand(&f.word(), "COPY")?),
            None => None,
        };
        let mode = match (&chmod_text, &c.chmod) {
            (Some(v), Some(f)) => Some(chmod(v).map_err(|m| self.err(f.span, "COPY", m))?),
            _ => None,
        };
        let mut exclude = Vec::new();
        for f in &c.exclude {
            exclude.push(self.expand(&f.word(), "COPY")?);
        }
        let mut sources = Vec::new();
        let mut inline = Vec::new();
        for s in &c.sources {
            match s {
                Source::Path(w) => {
                    let quoted = !c.json && w.text.contains(['"', '\'']);
                    sources.push(self.expand(w, "COPY").map_err(|mut d| {
                        if quoted {
                            d.message.push_str(
                                "; the shell form splits at every space, so for paths with \
                                 spaces use the JSON form: COPY [\"a b\", \"/dest/\"]",
                            );
                        }
                        d
                    })?);
                }
                Source::Heredoc { word, doc } => {
                    let mut content = doc.chomped_content();
                    if doc.expand {
                        let vars = &self.vars;
                        content =
                            self.sh.x.heredoc(&content, word, "COPY", &|k| vars.get(k).cloned())?;
                    }
                    inline.push((doc.name.clone(), content));
                }
            }
        }
        let dest_text = self.expand(&c.dest, "COPY")?;
        let dest_is_dir = dest_text.is_empty()
            || dest_text == "."
            || dest_text.ends_with('/')
            || dest_text.ends_with("/.");
        if sources.len() + inline.len() > 1 && !dest_is_dir {
            return Err(self.err(
                c.dest.span,
                "COPY",
                format!(
                    "several sources are copied, so the destination must be a directory: \
                     write {:?} (with a trailing /)",
                    format!("{dest_text}/")
                ),
            ));
        }
        let dest = paths::resolve(&self.config.working_dir, &dest_text);

        let mut text = String::from("COPY");
        if c.parents {
            text.push_str(" --parents");
        }
        if let Some(v) = &chown {
            text.push_str(&format!(" --chown={v}"));
        }
        if let Some(v) = &chmod_text {
            text.push_str(&format!(" --chmod={v}"));
        }
        for s in &sources {
            text.push_str(&format!(" {s}"));
        }
        for (name, _) in &inline {
            text.push_str(&format!(" <<{name}"));
        }
        text.push_str(&format!(" {dest_text}"));

        let op = CopyOp {
            from,
            sources,
            inline,
            dest,
            dest_is_dir,
            chown,
            chmod: mode,
            link: c.link,
            parents: c.parents,
            exclude,
        };
        self.step(instr, text, Some(Op::Copy(Box::new(op))));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::chmod;

    #[test]
    fn chmod_is_octal_up_to_7777() {
        assert_eq!(chmod("755"), Ok(0o755));
        assert_eq!(chmod("0644"), Ok(0o644));
        assert_eq!(chmod("7777"), Ok(0o7777));
        assert_eq!(chmod("0"), Ok(0));
        assert!(chmod("17777").unwrap_err().contains("above 7777"));
        assert!(chmod("u+x").unwrap_err().contains("symbolic modes"));
        assert!(chmod("999").unwrap_err().contains("not an octal mode"));
        assert!(chmod("0o755").unwrap_err().contains("not an octal mode"));
    }
}
