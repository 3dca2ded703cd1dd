//! Command-line flags (clap derive). Every command has `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// kiln: build container images from Dockerfiles, without a daemon and without root.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, propagate_version = true)]
pub struct Cli {
    /// Where kiln keeps images, layers and caches [default: $KILN_ROOT, else
    /// $XDG_DATA_HOME/kiln for a user, /var/lib/kiln for root]
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// kiln's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an image from a Dockerfile and a context directory.
    Build(Box<BuildArgs>),
    /// List the images in the local store.
    Images {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show an image's manifest and config as JSON.
    Inspect {
        /// Image name (`name[:tag]`).
        name: String,
    },
    /// Inspect and prune the build cache.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Remove image names from the local store.
    Rmi {
        /// Image names (`name[:tag]`).
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Parse a Dockerfile and print it (`--json`: instructions, flags, arguments, heredocs).
    Parse(crate::cmd_parse::ParseArgs),
    /// Show the build graph of a Dockerfile for a target, without building it.
    Plan(crate::cmd_plan::PlanArgs),
    /// Pull an image from a registry into the local store.
    Pull(crate::cmd_registry::PullArgs),
    /// Push an image from the local store to a registry.
    Push(crate::cmd_registry::PushArgs),
    /// Log in to a registry (stores the credentials where podman does).
    Login(crate::cmd_registry::LoginArgs),
    /// Remove stored registry credentials.
    Logout(crate::cmd_registry::LogoutArgs),
}

/// `kiln build` flags.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name the image NAME[:TAG] (repeatable).
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    pub tags: Vec<String>,

    /// The Dockerfile (`-` reads it from stdin) [default: CONTEXT/Containerfile, else
    /// CONTEXT/Dockerfile]
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<String>,

    /// Set a build-time variable (`K=V`, or `K` to take it from the environment).
    #[arg(long = "build-arg", value_name = "K[=V]")]
    pub build_args: Vec<String>,

    /// Build this stage (and what it needs) instead of the last one.
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,

    /// Also write the result here (repeatable): `type=oci,dest=DIR|FILE.tar|-` (OCI layout or
    /// archive), `type=docker,dest=FILE|-` (for docker/podman load), `type=local,dest=DIR` (the
    /// root filesystem as files), `type=tar,dest=FILE|-` (the root filesystem as one tar),
    /// `type=image,name=REF[,push=true]`, `type=registry,name=REF`. Image outputs also take
    /// `name=`, `compression=`, `compression-level=`, `force-compression=`,
    /// `annotation[-TYPE].KEY=`. `-o -` is `type=tar,dest=-`, `-o DIR` is `type=local,dest=DIR`.
    /// When an output goes to stdout, the image id is not printed (use --iidfile).
    #[arg(short = 'o', long = "output", value_name = "type=KIND,dest=PATH")]
    pub outputs: Vec<String>,

    /// Compression of the layers written to outputs and pushed: gzip (default), zstd or
    /// uncompressed. The local store keeps the build's own layers uncompressed, as Buildah's
    /// and Docker's do; they are compressed when first written out or pushed, and that
    /// conversion is cached.
    #[arg(long, value_name = "gzip|zstd|uncompressed")]
    pub compression: Option<String>,

    /// Compression level: gzip 0-9 (default 6), zstd 1-22 (default 3).
    #[arg(long = "compression-level", value_name = "N")]
    pub compression_level: Option<i32>,

    /// Re-encode every layer with --compression/--compression-level, even those already in
    /// that compression.
    #[arg(long = "force-compression")]
    pub force_compression: bool,

    /// Add an annotation to the image manifest: `KEY=VALUE`, or `TYPES:KEY=VALUE` with TYPES
    /// among manifest, manifest-descriptor, index (comma-separated). Repeatable.
    #[arg(long = "annotation", value_name = "[TYPES:]KEY=VALUE")]
    pub annotations: Vec<String>,

    /// Add a label to the image config (over the Dockerfile's LABELs). Repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,

    /// Squash the layers the final stage adds into one layer (its base's layers are kept).
    #[arg(long)]
    pub squash: bool,

    /// With SOURCE_DATE_EPOCH: also clamp file mtimes in layers taken from the cache that
    /// were made without it (layers of the base image are never rewritten).
    #[arg(long = "rewrite-timestamp")]
    pub rewrite_timestamp: bool,

    /// Steps to run at once [default: the number of CPUs].
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
    pub jobs: usize,

    /// Run every step; use no cached result.
    #[arg(long)]
    pub no_cache: bool,

    /// Run every step of these stages (by name or index) without the cache. Repeatable.
    #[arg(long = "no-cache-filter", value_name = "STAGE", value_delimiter = ',')]
    pub no_cache_filter: Vec<String>,

    /// How to show progress: auto (tty on a terminal, else plain), tty, plain, json, quiet.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: crate::render::Progress,

    /// Print nothing but the image id (as docker build -q): --progress=quiet.
    #[arg(short, long, conflicts_with = "progress")]
    pub quiet: bool,

    /// Write the image id (config digest) to FILE.
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,

    /// Write the image's digests and names as JSON to FILE.
    #[arg(long = "metadata-file", value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,

    /// How RUN steps are isolated: auto (the strongest that works here), rootless, root,
    /// chroot (for runners that refuse user namespaces).
    #[arg(long, value_name = "MODE", default_value = "auto")]
    pub isolation: kiln_builder::sandbox::Isolation,

    /// The network of RUN steps that do not give `--network`: host (default) or none.
    #[arg(long, value_name = "MODE", default_value = "host")]
    pub network: String,

    /// A secret for `RUN --mount=type=secret`: `id=ID,src=FILE` or `id=ID,env=VAR`. Its value
    /// never reaches a layer, the config, the history or the cache. Repeatable.
    #[arg(long = "secret", value_name = "id=ID,src=FILE|env=VAR")]
    pub secrets: Vec<String>,

    /// An SSH agent for `RUN --mount=type=ssh`: `default` (from $SSH_AUTH_SOCK) or
    /// `ID=SOCKET`. Repeatable.
    #[arg(long = "ssh", value_name = "ID[=SOCKET]")]
    pub ssh: Vec<String>,

    /// Export the build cache: `type=registry,ref=REF` or `type=local,dest=DIR`, with
    /// `mode=min|max` (the final image's steps, or every stage's), `compression=gzip|zstd`,
    /// `mounts=true` (RUN cache mounts too, up to `mounts-max-size=SIZE`, default 512MiB),
    /// `ignore-error=true`. Repeatable.
    #[arg(long = "cache-to", value_name = "type=registry,ref=REF[,mode=max]")]
    pub cache_to: Vec<String>,

    /// Use a cache exported with --cache-to when a step misses the local cache:
    /// `type=registry,ref=REF`, `REF`, or `type=local,src=DIR`. A cache that cannot be read
    /// is a warning, never an error. Repeatable (the first that has a step wins).
    #[arg(long = "cache-from", value_name = "type=registry,ref=REF")]
    pub cache_from: Vec<String>,

    /// Registry flags: --pull, --push, --tls-verify, --authfile, --cert-dir.
    #[command(flatten)]
    pub registry: crate::cmd_registry::BuildRegistryArgs,

    /// An extra named context for FROM, COPY --from and RUN --mount=from=: NAME=DIR,
    /// NAME=ARCHIVE, NAME=URL, NAME=GIT-URL, NAME=docker-image://REF,
    /// NAME=oci-layout://PATH[:TAG], NAME=target:STAGE. Repeatable.
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub build_contexts: Vec<String>,

    /// The build context: a directory, a tar archive (plain, gzip, bzip2, xz, zstd), `-` (a
    /// tar archive or a Dockerfile on stdin), the URL of a tar archive, or a git repository
    /// (`https://host/repo.git#ref:dir`, `git@host:repo`, `file:///path#ref`).
    #[arg(value_name = "CONTEXT")]
    pub context: PathBuf,
}

/// `kiln cache` subcommands.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Show what the kiln root holds, by kind and age.
    Du {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove cache entries and everything no tagged image or cache entry needs.
    Prune {
        /// Remove every cache entry (tagged images stay).
        #[arg(long)]
        all: bool,
        /// Remove the oldest cache entries until the root holds at most SIZE (e.g. 10GB).
        #[arg(long, value_name = "SIZE")]
        keep_storage: Option<String>,
        /// `until=DURATION`: remove cache entries older than DURATION (e.g. 24h, 7days).
        #[arg(long, value_name = "until=DURATION")]
        filter: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify every blob by digest and the cache's consistency, and repair what can be.
    Check {
        /// Only report; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}
