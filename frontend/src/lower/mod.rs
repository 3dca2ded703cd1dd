//! Lowering: a parsed [`Dockerfile`] plus build options → [`BuildGraph`].
//!
//! Owns ARG/ENV scoping (global ARGs before the first `FROM`, `--build-arg`, predefined platform
//! ARGs), stage naming and lookup, `--target` pruning, config changes of metadata instructions,
//! and expansion of words in the instructions where `docker build` expands them.
//!
//! The order follows BuildKit's `dockerfile2llb`: split the file into stages, evaluate global
//! ARGs, expand every `FROM`, find the stages the target needs (resolving their base images, whose
//! `ONBUILD` triggers may need more stages), then lower the needed stages in file order.

mod add;
mod args;
mod copy;
mod dispatch;
mod expand;
mod gofmt;
mod lints;
mod meta;
mod named;
mod paths;
mod pattern;
mod platform;
mod run;
mod stages;

use std::collections::{BTreeMap, BTreeSet};

use self::dispatch::{Inherited, Shared, StageBuilder};
use self::expand::{Expander, Tracking};
use self::platform::Platform;
use self::stages::{BaseRef, StageDef};
use crate::config::ContainerConfig;
use crate::diag::{Diagnostic, Severity, Span};
use crate::graph::{Base, BuildGraph, ImageResolver, ResolvedImage, Stage};
use crate::syntax::{CheckConfig, Command, Dockerfile, Instruction};

/// What the user asked for on the command line that shapes the graph.
#[derive(Debug, Clone, Default)]
pub struct LowerOptions {
    /// `--build-arg K=V` (a `K` without value is resolved from the environment by the CLI).
    pub build_args: BTreeMap<String, String>,
    /// `--target STAGE`: the stage to build; the last stage when `None`.
    pub target: Option<String>,
    /// The platform built for, `os/arch[/variant]` (e.g. `linux/amd64`).
    pub target_platform: String,
    /// The platform of the machine building, `os/arch[/variant]`.
    pub build_platform: String,
    /// `--build-context NAME=VALUE`, by name: what `FROM NAME`, `COPY --from=NAME` and
    /// `RUN --mount=from=NAME` (and a stage named `NAME`) stand for.
    pub named_contexts: BTreeMap<String, NamedContext>,
}

/// What a `--build-context` name stands for, as far as lowering is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// An image, by a reference the [`ImageResolver`] resolves (`docker-image://REF` gives
    /// `REF`; an `oci-layout://PATH[:TAG]` reference is passed as is).
    Image(String),
    /// Another stage of the Dockerfile, by name (`target:STAGE`).
    Stage(String),
    /// Files the builder provides under this name (a directory, git repository or tarball).
    Files,
}

pub use self::add::{GitRef, git_ref as parse_git_ref};
pub use self::platform::{host as host_platform, normalize as normalize_platform};

fn option_platform(file: &str, value: &str, what: &str) -> Result<Platform, Diagnostic> {
    if value.is_empty() {
        return Ok(Platform::host());
    }
    Platform::parse(value)
        .map_err(|m| Diagnostic::error(file, Span::default(), format!("{what}: {m}")))
}

/// Splits the instructions into global ARGs and stages.
fn split(df: &Dockerfile) -> Result<(Vec<&Instruction>, Vec<StageDef<'_>>), Diagnostic> {
    let mut meta = Vec::new();
    let mut stages: Vec<StageDef<'_>> = Vec::new();
    for instr in &df.instructions {
        match &instr.command {
            Command::From(f) => stages.push(StageDef {
                position: stages.len(),
                from: instr,
                name: f.alias.as_ref().map(|a| a.text.to_lowercase()),
                body: Vec::new(),
                image: String::new(),
                platform: None,
                base: BaseRef::Image,
            }),
            Command::Arg(_) if stages.is_empty() => meta.push(instr),
            _ => match stages.last_mut() {
                Some(s) => s.body.push(instr),
                None => {
                    return Err(Diagnostic::error(
                        &df.file,
                        instr.keyword_span,
                        format!(
                            "{} comes before the first FROM; only ARG may come before FROM \
                             (add a FROM line above it)",
                            instr.name()
                        ),
                    )
                    .in_instruction(instr.name()));
                }
            },
        }
    }
    if stages.is_empty() {
        let span = df.instructions.first().map_or(Span::default(), |i| i.span);
        return Err(Diagnostic::error(
            &df.file,
            span,
            "no FROM instruction: a build needs at least one FROM line (only ARG may come before it)",
        ));
    }
    Ok((meta, stages))
}

fn target_position(
    df: &Dockerfile,
    stages: &[StageDef<'_>],
    target: Option<&str>,
) -> Result<usize, Diagnostic> {
    let Some(t) = target else { return Ok(stages.len() - 1) };
    if let Some(p) = stages::find_by_name(stages, t) {
        return Ok(p);
    }
    let names: Vec<&str> = stages.iter().filter_map(|s| s.name.as_deref()).collect();
    let msg = if names.is_empty() {
        format!(
            "--target {t:?}: no stage has that name; this Dockerfile names no stages \
             (name one with FROM image AS name)"
        )
    } else {
        let mut m =
            format!("--target {t:?}: no stage has that name; the stages are {}", names.join(", "));
        if let Some(s) = crate::syntax::closest_word(t, names.iter().copied()) {
            m.push_str(&format!(" (did you mean {s}?)"));
        }
        m
    };
    Err(Diagnostic::error(&df.file, Span::default(), msg))
}

/// Expands every `FROM` with the global ARGs and decides what each stage starts from.
fn expand_froms(
    x: &Expander<'_>,
    named: &named::Named,
    stages: &mut [StageDef<'_>],
    globals: &args::Globals,
    predefined: &BTreeMap<String, String>,
    check: &CheckConfig,
    warnings: &mut Vec<Diagnostic>,
) -> Result<(), Diagnostic> {
    for i in 0..stages.len() {
        let Command::From(f) = &stages[i].from.command else { continue };
        let lookup = |k: &str| globals.values.get(k).cloned();
        let tracking = Tracking::new(&lookup);
        let image = x.word(&f.image, "FROM", &|k| tracking.get(k))?;
        if image.is_empty() {
            return Err(Diagnostic::error(
                x.file,
                f.image.span,
                format!(
                    "the base image {:?} expands to an empty string; give the ARG a default \
                     before the first FROM (ARG NAME=image) or pass --build-arg NAME=image",
                    f.image.text
                ),
            )
            .in_instruction("FROM"));
        }
        let mut platform = None;
        if let Some(flag) = &f.platform {
            let word = flag.word();
            let v = x.word(&word, "FROM", &|k| tracking.get(k))?;
            if v.is_empty() {
                return Err(Diagnostic::error(
                    x.file,
                    flag.span,
                    format!("--platform={} expands to an empty platform", word.text),
                )
                .in_instruction("FROM"));
            }
            let p = Platform::parse(&v)
                .map_err(|m| Diagnostic::error(x.file, flag.span, m).in_instruction("FROM"))?;
            platform = Some(p.format());
        }
        if check.allows("UndefinedArgInFrom") {
            for name in tracking.unset.borrow().iter() {
                if globals.declared.contains(name) || predefined.contains_key(name) {
                    continue;
                }
                warnings.push(
                    Diagnostic::warning(
                        x.file,
                        f.image.span,
                        format!(
                            "FROM uses ${name}, which no ARG before the first FROM declares; add \
                             ARG {name}=<default> at the top of the file"
                        ),
                    )
                    .in_instruction("FROM"),
                );
            }
        }
        let lower = image.to_lowercase();
        let mut image = image;
        let base =
            match stages[..i].iter().rev().find(|s| s.name.as_deref() == Some(lower.as_str())) {
                Some(s) => BaseRef::Stage(s.position),
                None if image == "scratch" => BaseRef::Scratch,
                None => match named.get(&image) {
                    Some(target) => {
                        let (base, shown) = named_base(x.file, &stages[i], target, &image)?;
                        image = shown;
                        base
                    }
                    None => BaseRef::Image,
                },
            };
        let s = &mut stages[i];
        s.image = image;
        s.platform = platform;
        s.base = base;
        // A stage whose name is a named context is that context: its instructions are not run.
        if let Some(name) = s.name.clone()
            && let Some(target) = named.get(&name)
        {
            let (base, shown) = named_base(x.file, s, target, &name)?;
            s.base = base;
            s.image = shown;
            s.body.clear();
        }
    }
    Ok(())
}

/// The base a named context gives the stage `s`, and the image text to record for it.
fn named_base(
    file: &str,
    s: &StageDef<'_>,
    target: &named::NamedTarget,
    name: &str,
) -> Result<(BaseRef, String), Diagnostic> {
    Ok(match target {
        named::NamedTarget::Image(reference) => (BaseRef::Image, reference.clone()),
        named::NamedTarget::Files(ctx) => (BaseRef::Named(ctx.clone()), name.to_string()),
        named::NamedTarget::Stage(p) if *p < s.position => (BaseRef::Stage(*p), name.to_string()),
        named::NamedTarget::Stage(_) => {
            return Err(Diagnostic::error(
                file,
                s.image_span(),
                format!(
                    "--build-context {name}=target:…: the stage it names is not above this \
                     stage ({}), and a stage can only build on stages above it",
                    s.label()
                ),
            )
            .in_instruction("FROM"));
        }
    })
}

fn resolve_error(file: &str, stages: &[StageDef<'_>], s: &StageDef<'_>, msg: String) -> Diagnostic {
    let mut m = format!("image {:?} not found: {msg}", s.image);
    if let Some(p) = stages::find_by_name(stages, &s.image)
        && p > s.position
    {
        m.push_str(&format!(
            "; stage {:?} is defined later (line {}), and a stage can only build on stages \
             above it",
            s.image, stages[p].from.span.line
        ));
    }
    Diagnostic::error(file, s.image_span(), m).in_instruction("FROM")
}

/// Lowers `dockerfile` to a build graph, resolving base images through `resolver`.
pub fn lower(
    dockerfile: &Dockerfile,
    options: &LowerOptions,
    resolver: &dyn ImageResolver,
) -> Result<BuildGraph, Diagnostic> {
    let file = dockerfile.file.as_str();
    let check = match dockerfile.directives.iter().find(|d| d.name == "check") {
        Some(d) => CheckConfig::parse(&d.value).map_err(|m| Diagnostic::error(file, d.span, m))?,
        None => CheckConfig::default(),
    };
    let x = Expander { file, escape: dockerfile.escape };
    let mut warnings = dockerfile.warnings.clone();

    let (meta, mut stages) = split(dockerfile)?;
    warnings.extend(lints::file_lints(dockerfile, &check));
    let target_pf = option_platform(file, &options.target_platform, "target platform")?;
    let build_pf = option_platform(file, &options.build_platform, "build platform")?;
    let target_pos = target_position(dockerfile, &stages, options.target.as_deref())?;
    let target_stage = match &options.target {
        Some(t) => t.clone(),
        None => stages[target_pos].name.clone().unwrap_or_default(),
    };
    let predefined = args::predefined(&build_pf, &target_pf, &target_stage, &options.build_args);
    let globals = args::globals(&x, predefined.clone(), &meta, &options.build_args)?;
    let named = named::Named::new(file, options, &stages)?;
    expand_froms(&x, &named, &mut stages, &globals, &predefined, &check, &mut warnings)?;
    for s in &stages {
        stages::deps(file, &stages, &named, s, &stages::local_triggers(&stages, s))?;
    }

    // Resolve the base images of the stages the target needs; their ONBUILD triggers may
    // need more stages, so repeat until nothing new is needed.
    let platform = (!options.target_platform.is_empty()).then(|| target_pf.format());
    let mut resolved: BTreeMap<usize, ResolvedImage> = BTreeMap::new();
    let mut triggers: BTreeMap<usize, Vec<(String, Instruction)>> = BTreeMap::new();
    let needed = loop {
        let needed = stages::reachable(file, &stages, &named, target_pos, &triggers)?;
        let pending: Vec<usize> = needed
            .iter()
            .copied()
            .filter(|p| stages[*p].base == BaseRef::Image && !resolved.contains_key(p))
            .collect();
        if pending.is_empty() {
            break needed;
        }
        for p in pending {
            let s = &stages[p];
            let pf = s.platform.clone().or_else(|| platform.clone());
            let image = resolver
                .resolve(&s.image, pf.as_deref())
                .map_err(|m| resolve_error(file, &stages, s, m))?;
            triggers.insert(p, stages::image_triggers(file, s, &image)?);
            resolved.insert(p, image);
        }
    };
    let index_of: BTreeMap<usize, usize> =
        needed.iter().enumerate().map(|(i, &p)| (p, i)).collect();

    let shared = Shared {
        x: Expander { file, escape: dockerfile.escape },
        options,
        resolver,
        globals: &globals,
        check: &check,
        stages: &stages,
        named: &named,
        index_of: &index_of,
        platform,
    };
    let mut built: BTreeMap<usize, Stage> = BTreeMap::new();
    let mut inherit: BTreeMap<usize, Inherited> = BTreeMap::new();
    let mut declared: BTreeSet<String> = globals.declared.clone();
    for &p in &needed {
        let s = &stages[p];
        let own_pf = match &s.platform {
            Some(v) => Platform::parse(v).unwrap_or_else(|_| target_pf.clone()),
            None => target_pf.clone(),
        };
        let (base, config, os, arch, run_first) = match s.base {
            BaseRef::Scratch => {
                let config = ContainerConfig { working_dir: "/".into(), ..Default::default() };
                (Base::Scratch, config, own_pf.os.clone(), own_pf.arch.clone(), Vec::new())
            }
            BaseRef::Named(ref name) => {
                let config = ContainerConfig { working_dir: "/".into(), ..Default::default() };
                let base = Base::Named(name.clone());
                (base, config, own_pf.os.clone(), own_pf.arch.clone(), Vec::new())
            }
            BaseRef::Stage(q) => {
                let Some(b) = built.get(&q) else {
                    return Err(Diagnostic::error(
                        file,
                        s.from.span,
                        "internal error: base stage not built",
                    ));
                };
                let index = index_of.get(&q).copied().unwrap_or_default();
                let t = stages::local_triggers(&stages, s);
                (Base::Stage(index), b.config.clone(), b.os.clone(), b.architecture.clone(), t)
            }
            BaseRef::Image => {
                let Some(img) = resolved.get(&p) else {
                    return Err(Diagnostic::error(
                        file,
                        s.from.span,
                        "internal error: image not resolved",
                    ));
                };
                let os = if img.os.is_empty() { own_pf.os.clone() } else { img.os.clone() };
                let arch = if img.architecture.is_empty() {
                    own_pf.arch.clone()
                } else {
                    img.architecture.clone()
                };
                let t = triggers.get(&p).cloned().unwrap_or_default();
                (Base::Image(Box::new(img.clone())), img.config.clone(), os, arch, t)
            }
        };
        let mut config = config;
        config.on_build.clear();
        let inherited = match s.base {
            BaseRef::Stage(q) => inherit.get(&q),
            _ => None,
        };
        let mut b = StageBuilder::new(&shared, p, config, os.clone(), inherited);
        for (expr, instr) in &run_first {
            b.apply_trigger(s.from.span, expr, instr)?;
        }
        for instr in &s.body {
            b.apply(instr)?;
        }
        warnings.append(&mut b.warnings);
        declared.extend(std::mem::take(&mut b.declared_args));
        inherit.insert(p, b.inherited());
        built.insert(
            p,
            Stage {
                name: s.name.clone(),
                position: p,
                span: s.from.span,
                base,
                steps: b.steps,
                config: b.config,
                platform: s.platform.clone(),
                os,
                architecture: arch,
                author: b.author,
            },
        );
    }

    for name in options.build_args.keys() {
        if !declared.contains(name) && !args::is_builtin(name) && check.allows("UnusedBuildArg") {
            warnings.push(Diagnostic::warning(
                file,
                Span::default(),
                format!(
                    "build argument {name:?} was given but no ARG instruction of the stages built \
                     declares it; add ARG {name} where it is needed"
                ),
            ));
        }
    }
    // In file order; warnings about the build as a whole (no line) last.
    warnings.sort_by_key(|d| (d.span.line == 0, d.span.line, d.span.col));
    if check.error
        && let Some(w) = warnings.first()
    {
        let mut e = w.clone();
        e.severity = Severity::Error;
        e.message = format!("{} (# check=error=true makes warnings fail the build)", e.message);
        return Err(e);
    }
    let target = index_of.get(&target_pos).copied().unwrap_or_default();
    Ok(BuildGraph { stages: built.into_values().collect(), target, warnings })
}
