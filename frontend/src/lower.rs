//! Lowering: a parsed [`Dockerfile`] plus build options → [`BuildGraph`].
//!
//! Owns ARG/ENV scoping (global ARGs before the first `FROM`, `--build-arg`, predefined platform
//! ARGs), stage naming and lookup, `--target` pruning, config changes of metadata instructions,
//! and expansion of words in the instructions where `docker build` expands them.

use std::collections::BTreeMap;

use crate::diag::Diagnostic;
use crate::graph::{BuildGraph, ImageResolver};
use crate::syntax::Dockerfile;

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
}

/// Lowers `dockerfile` to a build graph, resolving base images through `resolver`.
pub fn lower(
    dockerfile: &Dockerfile,
    options: &LowerOptions,
    resolver: &dyn ImageResolver,
) -> Result<BuildGraph, Diagnostic> {
    let _ = (dockerfile, options, resolver);
    unimplemented!("lowering is being written")
}
