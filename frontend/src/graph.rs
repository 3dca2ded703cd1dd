//! The build graph: what [`crate::lower`] produces and `kiln-builder` runs.
//!
//! A graph is a list of stages. Each stage starts from a [`Base`] and applies [`Step`]s in order;
//! a step either changes the filesystem ([`Op`]) or only the config. Edges between stages are the
//! `Base::Stage` and `CopySource::Stage` references, always pointing at an earlier index, so running
//! stages in index order (or any topological order) is valid.
//!
//! All words are already expanded: the builder never sees `$VAR`.

use crate::config::ContainerConfig;
use crate::diag::Span;

/// The stages a build needs, pruned to what the target depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildGraph {
    /// Stages in Dockerfile order; every reference points to a smaller index.
    pub stages: Vec<Stage>,
    /// Index into `stages` of the stage whose result is the image.
    pub target: usize,
    /// Warnings found while lowering (unused build args, deprecated forms, ...).
    pub warnings: Vec<crate::diag::Diagnostic>,
}

/// One `FROM` and the instructions under it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// `AS name`, lower-cased, if given.
    pub name: Option<String>,
    /// 0-based position of this stage's `FROM` among all `FROM`s of the file (before pruning).
    pub position: usize,
    /// Span of the `FROM` instruction.
    pub span: Span,
    /// What the stage starts from.
    pub base: Base,
    /// The stage's instructions after `FROM`, in order (including the base image's `ONBUILD`
    /// triggers, which come first).
    pub steps: Vec<Step>,
    /// The config at the end of the stage: the base config with every step applied.
    pub config: ContainerConfig,
    /// `FROM --platform` after expansion, if given.
    pub platform: Option<String>,
    /// Operating system the image is for (`linux`).
    pub os: String,
    /// CPU architecture the image is for (GOARCH names: `amd64`, `arm64`).
    pub architecture: String,
    /// `MAINTAINER` of this stage (the image config's `author`), if given.
    pub author: Option<String>,
}

/// Where a stage's filesystem starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Base {
    /// `FROM scratch`: empty.
    Scratch,
    /// An image found by the [`ImageResolver`].
    Image(Box<ResolvedImage>),
    /// The result of an earlier stage (index into [`BuildGraph::stages`]).
    Stage(usize),
}

/// One instruction of a stage, as it affects the image.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Span of the whole instruction.
    pub span: Span,
    /// The instruction keyword, upper-case (`COPY`, `ENV`, ...).
    pub keyword: String,
    /// The `history[].created_by` text, as BuildKit writes it (e.g. `COPY app /app # buildkit` →
    /// kiln writes `COPY app /app`; `ENV A=1`; `CMD ["sh"]`).
    pub created_by: String,
    /// The filesystem change, or `None` for a config-only instruction (`ENV`, `LABEL`, ...).
    pub op: Option<Op>,
}

/// A filesystem change.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Op {
    /// `COPY` (and, later, `ADD`).
    Copy(Box<CopyOp>),
    /// `WORKDIR`: create the directory if it does not exist.
    Mkdir(MkdirOp),
}

/// `COPY` after expansion.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyOp {
    /// Where the sources are read from.
    pub from: CopySource,
    /// Source paths as written after expansion (relative to the context or the source root;
    /// may hold wildcards in Go `filepath.Match` syntax).
    pub sources: Vec<String>,
    /// Inline sources from heredocs (`COPY <<EOF /dest`): (file name, content).
    pub inline: Vec<(String, String)>,
    /// Absolute destination path (already joined with the WORKDIR), without a trailing slash
    /// except for `/` itself.
    pub dest: String,
    /// The destination was written with a trailing `/` (or is `.`/WORKDIR-relative directory form):
    /// it names a directory.
    pub dest_is_dir: bool,
    /// `--chown=user[:group]` after expansion (names are resolved by the builder in the stage's
    /// `/etc/passwd` and `/etc/group`).
    pub chown: Option<String>,
    /// `--chmod` as permission bits.
    pub chmod: Option<u32>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
}

/// Where `COPY` reads from.
#[derive(Debug, Clone, PartialEq)]
pub enum CopySource {
    /// The build context.
    Context,
    /// `--from=STAGE`: an earlier stage (index into [`BuildGraph::stages`]).
    Stage(usize),
    /// `--from=IMAGE`: an image found by the [`ImageResolver`].
    Image(Box<ResolvedImage>),
}

/// `WORKDIR` after expansion.
#[derive(Debug, Clone, PartialEq)]
pub struct MkdirOp {
    /// Absolute path to create (with parents) if missing.
    pub path: String,
    /// Owner for directories created, `user[:group]` as `USER` had it, or `None` for root.
    pub owner: Option<String>,
}

/// A base image found by an [`ImageResolver`].
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedImage {
    /// The reference as written in the Dockerfile (after expansion).
    pub reference: String,
    /// Identifies the image to the builder (e.g. the manifest digest); opaque to the frontend.
    pub id: String,
    /// The image's container config.
    pub config: ContainerConfig,
    /// Operating system (`linux`).
    pub os: String,
    /// CPU architecture (`amd64`, `arm64`, ...).
    pub architecture: String,
}

/// Finds base images for the frontend. Implemented by the builder (local store, OCI layouts,
/// registries); tests implement it with a table.
pub trait ImageResolver {
    /// Resolves `reference` (as written after expansion, e.g. `alpine:3`, `oci-layout:///p:tag`)
    /// for `platform` (`os/arch[/variant]`, `None` for the host's).
    ///
    /// The error is a message for the user; the frontend adds the file and line.
    fn resolve(&self, reference: &str, platform: Option<&str>) -> Result<ResolvedImage, String>;
}
