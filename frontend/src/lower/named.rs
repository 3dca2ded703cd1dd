//! Named build contexts (`--build-context NAME=VALUE`): what a name used in `FROM`,
//! `COPY --from` or `RUN --mount=from=` stands for, as BuildKit's dockerui decides.
//!
//! A stage whose name is a named context is replaced by it (its instructions are not run). A
//! `FROM` image or a `from` value that is no stage is looked up among the named contexts by
//! its familiar form (`docker.io/library/alpine:latest`, `alpine:latest` and `alpine` are the
//! same name), before it is taken for an image.

use std::collections::BTreeMap;

use super::stages::{StageDef, find_by_name};
use super::{LowerOptions, NamedContext};
use crate::diag::{Diagnostic, Span};

/// What a named context resolves to once the stages are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NamedTarget {
    /// An image reference for the resolver.
    Image(String),
    /// A stage, by position.
    Stage(usize),
    /// Files the builder provides, by context name.
    Files(String),
}

/// The named contexts of a build, keyed by their familiar names.
#[derive(Debug, Default)]
pub(crate) struct Named {
    by_name: BTreeMap<String, NamedTarget>,
}

/// The familiar form of an image-like name: without `docker.io/library/`, `docker.io/` and a
/// `:latest` tag, lower-cased (`docker.io/library/Alpine:latest` → `alpine`).
pub(crate) fn familiar(name: &str) -> String {
    let mut n = name.to_ascii_lowercase();
    for prefix in
        ["docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"]
    {
        if let Some(rest) = n.strip_prefix(prefix) {
            n = rest.to_string();
            break;
        }
    }
    if !n.contains('@')
        && let Some(rest) = n.strip_suffix(":latest")
    {
        n = rest.to_string();
    }
    n
}

impl Named {
    /// Resolves `options.named_contexts` against the stages of the file: `target:STAGE`
    /// must name a stage.
    pub(crate) fn new(
        file: &str,
        options: &LowerOptions,
        stages: &[StageDef<'_>],
    ) -> Result<Named, Diagnostic> {
        let mut by_name = BTreeMap::new();
        for (name, value) in &options.named_contexts {
            let target = match value {
                NamedContext::Image(reference) => NamedTarget::Image(reference.clone()),
                NamedContext::Files => NamedTarget::Files(name.clone()),
                NamedContext::Stage(stage) => match find_by_name(stages, stage) {
                    Some(p) => NamedTarget::Stage(p),
                    None => {
                        let names: Vec<&str> =
                            stages.iter().filter_map(|s| s.name.as_deref()).collect();
                        let mut msg = format!(
                            "--build-context {name}=target:{stage}: no stage is named {stage:?}"
                        );
                        if !names.is_empty() {
                            msg.push_str(&format!(" (the stages are {})", names.join(", ")));
                        }
                        return Err(Diagnostic::error(file, Span::default(), msg));
                    }
                },
            };
            by_name.insert(familiar(name), target);
        }
        Ok(Named { by_name })
    }

    /// What `name` (a `FROM` image, a `from` value or a stage name) stands for, if it is a
    /// named context.
    pub(crate) fn get(&self, name: &str) -> Option<&NamedTarget> {
        if self.by_name.is_empty() || name.eq_ignore_ascii_case("scratch") {
            return None;
        }
        self.by_name.get(&familiar(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn familiar_names_match_like_dockerui() {
        for (input, want) in [
            ("alpine", "alpine"),
            ("alpine:latest", "alpine"),
            ("docker.io/library/alpine:latest", "alpine"),
            ("docker.io/user/app:1", "user/app:1"),
            ("alpine:3.18", "alpine:3.18"),
            ("Base", "base"),
            ("reg:5000/a/b:latest", "reg:5000/a/b"),
            ("a@sha256:abc", "a@sha256:abc"),
        ] {
            assert_eq!(familiar(input), want, "{input}");
        }
    }
}
