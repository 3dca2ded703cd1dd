//! Build arguments: the predefined platform ARGs, global ARGs (before the first `FROM`) with
//! `--build-arg` overrides, and which names BuildKit itself consumes.

use std::collections::{BTreeMap, BTreeSet};

use super::expand::Expander;
use super::platform::Platform;
use crate::diag::Diagnostic;
use crate::syntax::{Command, Instruction};

/// Proxy variables BuildKit passes to `RUN` without an `ARG` (and keeps out of history).
pub(crate) const PROXY_ARGS: [&str; 5] =
    ["HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY"];

/// Names of the automatic platform ARGs.
pub(crate) const PLATFORM_ARGS: [&str; 11] = [
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDOSVERSION",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETOSVERSION",
    "TARGETARCH",
    "TARGETVARIANT",
    "TARGETSTAGE",
];

/// Whether `--build-arg NAME` is used by BuildKit itself even when no `ARG` declares it.
pub(crate) fn is_builtin(name: &str) -> bool {
    PLATFORM_ARGS.contains(&name)
        || PROXY_ARGS.iter().any(|p| p.eq_ignore_ascii_case(name))
        || name == "SOURCE_DATE_EPOCH"
        || name.starts_with("BUILDKIT_")
}

/// The automatic platform ARGs (BuildKit's `defaultArgs`), `--build-arg` overriding them.
pub(crate) fn predefined(
    build: &Platform,
    target: &Platform,
    target_stage: &str,
    overrides: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let values = [
        ("BUILDPLATFORM", build.format()),
        ("BUILDOS", build.os.clone()),
        ("BUILDOSVERSION", String::new()),
        ("BUILDARCH", build.arch.clone()),
        ("BUILDVARIANT", build.variant.clone()),
        ("TARGETPLATFORM", target.format()),
        ("TARGETOS", target.os.clone()),
        ("TARGETOSVERSION", String::new()),
        ("TARGETARCH", target.arch.clone()),
        ("TARGETVARIANT", target.variant.clone()),
        ("TARGETSTAGE", target_stage.to_string()),
    ];
    values
        .into_iter()
        .map(|(k, v)| (k.to_string(), overrides.get(k).cloned().unwrap_or(v)))
        .collect()
}

/// The global scope: what `FROM` lines see, and what `ARG NAME` inside a stage inherits.
#[derive(Debug, Clone, Default)]
pub(crate) struct Globals {
    /// Names with a value.
    pub values: BTreeMap<String, String>,
    /// Names declared by an `ARG` before the first `FROM` (with or without a value).
    pub declared: BTreeSet<String>,
}

/// Evaluates the `ARG`s before the first `FROM` in order: a `--build-arg` wins, else the default
/// expanded with the globals defined so far.
pub(crate) fn globals(
    x: &Expander<'_>,
    predefined: BTreeMap<String, String>,
    meta: &[&Instruction],
    build_args: &BTreeMap<String, String>,
) -> Result<Globals, Diagnostic> {
    let mut g = Globals { values: predefined, declared: BTreeSet::new() };
    for instr in meta {
        let Command::Arg(decls) = &instr.command else { continue };
        for d in decls {
            let name = d.name.text.clone();
            let value = match (build_args.get(&name), &d.default) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(def)) => {
                    let values = g.values.clone();
                    Some(x.word(def, "ARG", &|k| values.get(k).cloned())?)
                }
                (None, None) => None,
            };
            if let Some(v) = value {
                g.values.insert(name.clone(), v);
            }
            g.declared.insert(name);
        }
    }
    Ok(g)
}
