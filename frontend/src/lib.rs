//! kiln's Dockerfile frontend: text in, [`BuildGraph`] out.
//!
//! The frontend is pure: it never touches the filesystem, the network or processes.
//! Base-image configs reach it through the [`ImageResolver`] trait.
//!
//! - [`syntax`]: lexer and parser (directives, continuations, heredocs, flags, spans) → [`syntax::Dockerfile`]
//! - [`expand`]: BuildKit-compatible word expansion (`$VAR`, `${VAR:-x}`, quoting)
//! - [`lower`]: ARG/ENV scoping, stages, `--target` pruning → [`BuildGraph`]
//! - [`diag`]: errors and warnings with spans
//! - [`config`]: the Docker-compatible container config an image carries

pub mod config;
pub mod diag;
pub mod expand;
pub mod graph;
pub mod lower;
pub mod syntax;

pub use config::ContainerConfig;
pub use diag::{Diagnostic, Severity, Span};
pub use graph::{BuildGraph, ImageResolver, ResolvedImage};
