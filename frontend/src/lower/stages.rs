//! The stage table: splitting the file at `FROM`, naming stages, finding what each stage
//! depends on (its base stage, `COPY --from`, `ONBUILD` triggers) and which stages a target
//! needs.

use std::collections::{BTreeMap, BTreeSet};

use super::named::{Named, NamedTarget};
use crate::diag::{Diagnostic, Span};
use crate::graph::ResolvedImage;
use crate::syntax::{Command, Flag, Instruction};

/// What a stage starts from, before images are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BaseRef {
    /// `FROM scratch`.
    Scratch,
    /// An earlier stage, by position.
    Stage(usize),
    /// An image to resolve.
    Image,
    /// A named build context of files, by name.
    Named(String),
}

/// One stage of the file.
#[derive(Debug)]
pub(crate) struct StageDef<'a> {
    /// 0-based position among all stages.
    pub position: usize,
    /// The `FROM` instruction.
    pub from: &'a Instruction,
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    /// The instructions after `FROM`.
    pub body: Vec<&'a Instruction>,
    /// The base name after expansion.
    pub image: String,
    /// `--platform` after expansion and normalization.
    pub platform: Option<String>,
    /// What the stage starts from.
    pub base: BaseRef,
}

impl StageDef<'_> {
    /// The name BuildKit uses in messages: the stage name or `stage-N`.
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| format!("stage-{}", self.position))
    }

    /// The span of the image word of `FROM`.
    pub fn image_span(&self) -> Span {
        match &self.from.command {
            Command::From(f) => f.image.span,
            _ => self.from.span,
        }
    }
}

/// Where `COPY --from` reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FromRef {
    /// A stage, by position.
    Stage(usize),
    /// An image reference.
    Image(String),
    /// `scratch`: nothing to copy.
    Scratch,
    /// A named build context of files, by name.
    Named(String),
}

/// Go's `strconv.Atoi` on a stage index (`0`, `+1`, `-2`).
fn as_index(v: &str) -> Option<i64> {
    let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// The stage with `name` (lower-case compare; the last one wins, as in BuildKit).
pub(crate) fn find_by_name(stages: &[StageDef<'_>], name: &str) -> Option<usize> {
    let lower = name.to_lowercase();
    stages.iter().rev().find(|s| s.name.as_deref() == Some(lower.as_str())).map(|s| s.position)
}

/// Interprets a `--from` value (never expanded, as in BuildKit).
pub(crate) fn from_ref(
    file: &str,
    stages: &[StageDef<'_>],
    named: &Named,
    flag: &Flag,
    instr: &str,
) -> Result<Option<FromRef>, Diagnostic> {
    let v = flag.value.as_deref().unwrap_or("");
    from_value(file, stages, named, v, flag.span, "--from", instr)
}

/// Interprets the value `v` of a `from` option (`what` names it in messages: `--from`,
/// `--mount from`) written at `span`: a stage index, a stage name, a named build context,
/// `scratch` or an image.
pub(crate) fn from_value(
    file: &str,
    stages: &[StageDef<'_>],
    named: &Named,
    v: &str,
    span: Span,
    what: &str,
    instr: &str,
) -> Result<Option<FromRef>, Diagnostic> {
    if v.is_empty() {
        return Ok(None);
    }
    if let Some(i) = as_index(v) {
        if i < 0 || i as usize >= stages.len() {
            let msg = format!(
                "{what}={v}: there is no stage {v}; stages are numbered from 0 to {}",
                stages.len() - 1
            );
            return Err(Diagnostic::error(file, span, msg).in_instruction(instr));
        }
        return Ok(Some(FromRef::Stage(i as usize)));
    }
    if let Some(p) = find_by_name(stages, v) {
        return Ok(Some(FromRef::Stage(p)));
    }
    match named.get(v) {
        Some(NamedTarget::Stage(p)) => return Ok(Some(FromRef::Stage(*p))),
        Some(NamedTarget::Image(reference)) => return Ok(Some(FromRef::Image(reference.clone()))),
        Some(NamedTarget::Files(name)) => return Ok(Some(FromRef::Named(name.clone()))),
        None => {}
    }
    if v == "scratch" {
        return Ok(Some(FromRef::Scratch));
    }
    Ok(Some(FromRef::Image(v.to_string())))
}

/// The stages an instruction reads: `COPY --from` and `RUN --mount=from=` (`ONBUILD` is not
/// run here: ignored).
fn instr_stage_deps(
    file: &str,
    stages: &[StageDef<'_>],
    named: &Named,
    instr: &Instruction,
) -> Result<Vec<usize>, Diagnostic> {
    let mut out = Vec::new();
    match &instr.command {
        Command::Copy(c) => {
            if let Some(flag) = &c.from
                && let Some(FromRef::Stage(p)) = from_ref(file, stages, named, flag, "COPY")?
            {
                out.push(p);
            }
        }
        Command::Run(r) => {
            for flag in &r.mounts {
                let value = flag.value.as_deref().unwrap_or("");
                let Some(from) = crate::syntax::mount::from_of(value) else { continue };
                let what = "--mount from";
                if let Some(FromRef::Stage(p)) =
                    from_value(file, stages, named, &from, flag.span, what, "RUN")?
                {
                    out.push(p);
                }
            }
        }
        _ => {}
    }
    Ok(out)
}

/// The triggers a stage runs first: its base stage's `ONBUILD` instructions, or the parsed
/// `OnBuild` list of its base image.
pub(crate) fn local_triggers<'a>(
    stages: &[StageDef<'a>],
    s: &StageDef<'a>,
) -> Vec<(String, Instruction)> {
    let BaseRef::Stage(p) = s.base else { return Vec::new() };
    stages[p]
        .body
        .iter()
        .filter_map(|i| match &i.command {
            Command::Onbuild(o) => Some((o.expression.clone(), (*o.trigger).clone())),
            _ => None,
        })
        .collect()
}

/// Positions of the stages `s` depends on directly.
pub(crate) fn deps(
    file: &str,
    stages: &[StageDef<'_>],
    named: &Named,
    s: &StageDef<'_>,
    triggers: &[(String, Instruction)],
) -> Result<BTreeSet<usize>, Diagnostic> {
    let mut out = BTreeSet::new();
    if let BaseRef::Stage(p) = s.base {
        out.insert(p);
    }
    for instr in &s.body {
        out.extend(instr_stage_deps(file, stages, named, instr)?);
    }
    for (expr, instr) in triggers {
        let found = instr_stage_deps(file, stages, named, instr).map_err(|mut d| {
            d.span = s.from.span;
            d.message = format!("ONBUILD trigger {expr:?}: {}", d.message);
            d
        })?;
        out.extend(found);
    }
    Ok(out)
}

/// Every stage `target` needs, itself included.
pub(crate) fn reachable(
    file: &str,
    stages: &[StageDef<'_>],
    named: &Named,
    target: usize,
    image_triggers: &BTreeMap<usize, Vec<(String, Instruction)>>,
) -> Result<BTreeSet<usize>, Diagnostic> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(p) = todo.pop() {
        if !seen.insert(p) {
            continue;
        }
        let s = &stages[p];
        let triggers = match image_triggers.get(&p) {
            Some(t) => t.clone(),
            None => local_triggers(stages, s),
        };
        todo.extend(deps(file, stages, named, s, &triggers)?);
    }
    Ok(seen)
}

/// Parses the `OnBuild` triggers of a resolved base image.
pub(crate) fn image_triggers(
    file: &str,
    s: &StageDef<'_>,
    image: &ResolvedImage,
) -> Result<Vec<(String, Instruction)>, Diagnostic> {
    let mut out = Vec::new();
    for expr in &image.config.on_build {
        let fail = |msg: String| {
            Diagnostic::error(
                file,
                s.from.span,
                format!("ONBUILD trigger {expr:?} of base image {:?}: {msg}", s.image),
            )
            .in_instruction("FROM")
        };
        let df = crate::syntax::parse(file, expr).map_err(|d| fail(d.message))?;
        let [instr] = df.instructions.as_slice() else {
            return Err(fail("a trigger must be a single instruction".to_string()));
        };
        if matches!(instr.command, Command::From(_) | Command::Onbuild(_) | Command::Maintainer(_))
        {
            return Err(fail(format!("{} cannot be an ONBUILD trigger", instr.name())));
        }
        out.push((expr.clone(), instr.clone()));
    }
    Ok(out)
}
