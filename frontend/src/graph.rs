//! The build graph: what [`crate::lower`] produces and `kiln-builder` runs.
//!
//! A graph is a list of stages. Each stage starts from a [`Base`] and applies [`Step`]s in order;
//! a step either changes the filesystem ([`Op`]) or only the config. Edges between stages are the
//! `Base::Stage` and `CopySource::Stage` references, always pointing at an earlier index, so running
//! stages in index order (or any topological order) is valid.
//!
//! All words are already expanded: the builder never sees `$VAR`.

use serde::Serialize;

use crate::config::ContainerConfig;
use crate::diag::Span;
pub use crate::mode::{ChmodClause, FileMode};

/// The stages a build needs, pruned to what the target depends on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildGraph {
    /// Stages in Dockerfile order; every reference points to a smaller index.
    pub stages: Vec<Stage>,
    /// Index into `stages` of the stage whose result is the image.
    pub target: usize,
    /// Warnings found while lowering (unused build args, deprecated forms, ...).
    pub warnings: Vec<crate::diag::Diagnostic>,
}

/// One `FROM` and the instructions under it.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Base {
    /// `FROM scratch`: empty.
    Scratch,
    /// An image found by the [`ImageResolver`].
    Image(Box<ResolvedImage>),
    /// The result of an earlier stage (index into [`BuildGraph::stages`]).
    Stage(usize),
    /// A `--build-context NAME=…` of files (a directory, git repository or tarball), by name:
    /// the stage starts with those files as its only layer and the config of `FROM scratch`.
    Named(String),
}

/// One instruction of a stage, as it affects the image.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// `COPY`.
    Copy(Box<CopyOp>),
    /// `WORKDIR`: create the directory if it does not exist.
    Mkdir(MkdirOp),
    /// `RUN`: run a command in a sandbox on the stage's filesystem.
    Run(Box<RunOp>),
    /// `ADD`: like `COPY` from the context, plus URLs, git repositories and archive extraction.
    Add(Box<AddOp>),
}

/// `COPY` after expansion.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// `--chmod` as permission bits, when written in octal (`None` for a symbolic mode: see
    /// `chmod_mode`).
    #[serde(serialize_with = "octal_opt")]
    pub chmod: Option<u32>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// `--chmod` in either form (octal or symbolic like `u+x,go-w`); apply it per file and
    /// directory with [`FileMode::apply`]. Set whenever `--chmod` was given.
    pub chmod_mode: Option<FileMode>,
}

/// Where `COPY` reads from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CopySource {
    /// The build context.
    Context,
    /// `--from=STAGE`: an earlier stage (index into [`BuildGraph::stages`]).
    Stage(usize),
    /// `--from=IMAGE`: an image found by the [`ImageResolver`].
    Image(Box<ResolvedImage>),
    /// `--from=NAME` naming a `--build-context` of files (read like the build context, with
    /// that context's own `.dockerignore`).
    Named(String),
}

/// `WORKDIR` after expansion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MkdirOp {
    /// Absolute path to create (with parents) if missing.
    pub path: String,
    /// Owner for directories created, `user[:group]` as `USER` had it, or `None` for root.
    pub owner: Option<String>,
}

/// `RUN` after expansion: everything needed to run the command, with no Dockerfile knowledge.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunOp {
    /// The program and its arguments. Shell form: the stage's `SHELL` (default
    /// `["/bin/sh", "-c"]`) plus the command text; exec form: the JSON array as written;
    /// heredocs: as BuildKit runs them (see [`RunOp::files`]).
    pub argv: Vec<String>,
    /// `KEY=value` entries: the image `Env`, `ENV`s and the `ARG`s in scope with a value (in
    /// definition order), then proxy build args (`HTTP_PROXY`… in both cases) and
    /// `SSH_AUTH_SOCK` for a `type=ssh` mount, unless already set. Secrets with `env=` are not
    /// here: the builder adds them (see [`RunMount::Secret`]).
    pub env: Vec<String>,
    /// `USER` as written (`name`, `uid`, `name:group`, ...; empty for root). Names are
    /// resolved by the builder in the stage's `/etc/passwd` and `/etc/group`.
    pub user: String,
    /// Absolute working directory (created by the builder if missing).
    pub workdir: String,
    /// `--mount`s, in the order written.
    pub mounts: Vec<RunMount>,
    /// `--network`.
    pub network: RunNetwork,
    /// `--security`.
    pub security: RunSecurity,
    /// Files to provide read-only and uncommitted at their absolute `path` while the command
    /// runs: a single heredoc starting with `#!` is run as `/dev/pipes/NAME`, as BuildKit does.
    pub files: Vec<RunFile>,
    /// The command as written in the Dockerfile (shell text or JSON array), for messages.
    pub command: String,
}

/// A file made available to a `RUN` command and never committed to the layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunFile {
    /// Absolute path inside the sandbox.
    pub path: String,
    /// The content.
    pub content: String,
    /// Permission bits.
    #[serde(serialize_with = "octal")]
    pub mode: u32,
}

/// `RUN --network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunNetwork {
    /// The build's network mode (the host's network unless `kiln build --network` says otherwise).
    #[default]
    Default,
    /// A new network namespace with only loopback.
    None,
    /// The host's network namespace.
    Host,
}

/// `RUN --security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunSecurity {
    /// The default sandbox.
    #[default]
    Sandbox,
    /// All capabilities, no seccomp/AppArmor (needs the builder's permission).
    Insecure,
}

/// Where a `bind` or `cache` mount takes its content from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountSource {
    /// The build context (bind mounts without `from`).
    Context,
    /// Empty (`from=scratch`, and cache mounts without `from`).
    Scratch,
    /// An earlier stage's result (index into [`BuildGraph::stages`]).
    Stage(usize),
    /// An image found by the [`ImageResolver`].
    Image(Box<ResolvedImage>),
    /// A `--build-context` of files, by name (`from=NAME`).
    Named(String),
}

/// `RUN --mount=type=cache,sharing=...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheSharing {
    /// Several builds may use the cache at once.
    #[default]
    Shared,
    /// A build that finds the cache in use gets a new empty one.
    Private,
    /// A build waits until no other build uses the cache.
    Locked,
}

/// One `RUN --mount`, validated, with BuildKit's defaults filled in. Every `target` is absolute
/// (relative targets are joined with the working directory).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum RunMount {
    /// `type=bind` (the default type): a directory or file of the context, a stage or an image.
    Bind {
        /// Mount point.
        target: String,
        /// What is mounted.
        from: MountSource,
        /// Absolute path inside `from` (`/` for its root).
        source: String,
        /// Read-only (the default). When writable, writes are discarded after the command.
        readonly: bool,
    },
    /// `type=cache`: a persistent directory kept by the builder between builds.
    Cache {
        /// Mount point.
        target: String,
        /// The cache's identity (`id=`, default: the `target` as written, cleaned).
        id: String,
        /// Initial content of a new cache (`from=`, default: empty).
        from: MountSource,
        /// Absolute path inside `from` used as the cache's initial content (`/` for its root).
        source: String,
        /// Concurrent use.
        sharing: CacheSharing,
        /// Read-only (default: writable).
        readonly: bool,
        /// Owner of a new cache directory (default 0).
        uid: u32,
        /// Group of a new cache directory (default 0).
        gid: u32,
        /// Permission bits of a new cache directory (default 0o755).
        #[serde(serialize_with = "octal")]
        mode: u32,
    },
    /// `type=tmpfs`: an empty in-memory filesystem.
    Tmpfs {
        /// Mount point.
        target: String,
        /// `size=` in bytes, if given.
        size: Option<u64>,
    },
    /// `type=secret`: a secret from `kiln build --secret id=...`, as a file and/or a variable.
    Secret {
        /// The secret's id (`id=`, else `source=`, else the base name of `target`).
        id: String,
        /// Where the file is mounted; `None` when only `env=` was asked for.
        target: Option<String>,
        /// Name of an environment variable that receives the secret's value.
        env: Option<String>,
        /// The build fails if the secret was not provided (default: the mount is skipped).
        required: bool,
        /// Owner of the file (default 0).
        uid: u32,
        /// Group of the file (default 0).
        gid: u32,
        /// Permission bits of the file (default 0o400).
        #[serde(serialize_with = "octal")]
        mode: u32,
    },
    /// `type=ssh`: an SSH agent socket from `kiln build --ssh id=...`.
    Ssh {
        /// The agent's id (default `default`).
        id: String,
        /// Socket path (default `/run/buildkit/ssh_agent.N`, N counting this RUN's ssh mounts).
        target: String,
        /// The build fails if the agent was not provided (default: the mount is skipped).
        required: bool,
        /// Owner of the socket (default 0).
        uid: u32,
        /// Group of the socket (default 0).
        gid: u32,
        /// Permission bits of the socket (default 0o600).
        #[serde(serialize_with = "octal")]
        mode: u32,
    },
}

impl RunMount {
    /// The mount point (`None` for a secret exposed only as a variable).
    pub fn target(&self) -> Option<&str> {
        match self {
            RunMount::Bind { target, .. }
            | RunMount::Cache { target, .. }
            | RunMount::Tmpfs { target, .. }
            | RunMount::Ssh { target, .. } => Some(target),
            RunMount::Secret { target, .. } => target.as_deref(),
        }
    }
}

/// `ADD` after expansion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AddOp {
    /// Sources, in order.
    pub sources: Vec<AddSource>,
    /// Inline sources from heredocs (`ADD <<EOF /dest`): (file name, content).
    pub inline: Vec<(String, String)>,
    /// Absolute destination path, as for [`CopyOp::dest`].
    pub dest: String,
    /// The destination names a directory (trailing `/`, `.`, or several sources).
    pub dest_is_dir: bool,
    /// `--chown=user[:group]` after expansion.
    pub chown: Option<String>,
    /// `--chmod`, octal or symbolic.
    pub chmod: Option<FileMode>,
    /// `--link`.
    pub link: bool,
    /// `--exclude` patterns (for local and git sources).
    pub exclude: Vec<String>,
    /// `--unpack`: `None` when not given (local archives are extracted, downloads are not),
    /// `Some(false)` never extracts, `Some(true)` extracts downloaded archives too.
    pub unpack: Option<bool>,
}

/// One source of `ADD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum AddSource {
    /// A path or wildcard in the build context; a tar archive (plain, gzip, bzip2, xz, zstd)
    /// is extracted unless `--unpack=false`.
    Local {
        /// The path as written after expansion (Go `filepath.Match` wildcards allowed).
        path: String,
    },
    /// An `http://` or `https://` URL to download.
    Url {
        /// The URL.
        url: String,
        /// The file name it is saved as: the last path segment, or `__unnamed__`.
        filename: String,
        /// `--checksum=ALGO:HEX` the download must match (sha256, sha384 or sha512).
        checksum: Option<String>,
    },
    /// A git repository (`git@host:repo.git`, `https://host/repo.git#ref:subdir`, `ssh://…`,
    /// `git://…`): its tree at `reference` is copied.
    Git {
        /// The remote as `git clone` takes it (fragment removed).
        remote: String,
        /// Branch, tag or commit (`None`: the remote's default branch).
        reference: Option<String>,
        /// Sub-directory of the repository to copy (`None`: all of it).
        subdir: Option<String>,
        /// `--keep-git-dir`: keep the `.git` directory.
        keep_git_dir: bool,
    },
}

/// A base image found by an [`ImageResolver`].
#[derive(Debug, Clone, PartialEq, Serialize)]
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

/// Serializes permission bits as an octal string (`"0755"`), the way people read modes.
pub(crate) fn octal<S: serde::Serializer>(bits: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("0{bits:o}"))
}

/// Serializes optional permission bits as an octal string, or `null`.
fn octal_opt<S: serde::Serializer>(bits: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
    match bits {
        Some(b) => octal(b, s),
        None => s.serialize_none(),
    }
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
