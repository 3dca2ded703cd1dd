//! kiln's Dockerfile frontend: text in, [`BuildGraph`] out.
//!
//! The frontend is pure: it never touches the filesystem, the network or processes.
//! Base-image configs reach it through the [`ImageResolver`] trait.
//!
//! - [`syntax`]: lexer and parser (directives, continuations, heredocs, flags, spans) → [`syntax::Dockerfile`]
//! - [`expand`]: BuildKit-compatible word expansion (`$VAR`, `${VAR:-x}`, quoting)
//! - [`lower`]: ARG/ENV scoping, stages, `--target` pruning → [`BuildGraph`]
//! - [`diag`]: errors and warnings with spans, [`Diagnostic::render`] with the line and a caret
//! - [`config`]: the Docker-compatible container config an image carries
//! - [`mode`]: `--chmod` modes (octal and symbolic)
//! - [`show`]: the text form of a graph (`kiln plan`)

pub mod config;
pub mod diag;
pub mod expand;
pub mod graph;
pub mod lower;
pub mod mode;
pub mod show;
pub mod syntax;

pub use config::ContainerConfig;
pub use diag::{Diagnostic, Severity, Span};
pub use graph::{BuildGraph, ImageResolver, ResolvedImage};
