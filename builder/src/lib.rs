//! kiln's builder: runs a [`kiln_frontend::BuildGraph`] and assembles the image.
//!
//! - [`build`]: one build, from Dockerfile and context to a tagged, exported image
//! - [`solver`]: runs the stages in parallel, every step through the cache
//! - [`key`]: cache keys and context hashing
//! - [`context`]: the build context and `.dockerignore`
//! - [`ops`]: filesystem changes (`COPY`, `WORKDIR`)
//! - [`fsview`]: a merged view of snapshot directories
//! - [`resolver`]: base images from the local store, OCI layouts and registries
//! - [`registry`]: the OCI distribution client (pull, push, auth, registries.conf)
//! - [`remote_cache`]: sharing the cache between machines (`--cache-to`, `--cache-from`)
//! - [`image`]: image config and manifest
//! - [`images`]: listing, inspecting and removing stored images
//! - [`export`]: `--output` writers
//! - [`events`]: what the builder reports while it works

pub mod build;
pub mod context;
pub mod events;
pub mod export;
pub mod fsview;
pub mod image;
pub mod images;
pub mod key;
pub mod ops;
pub mod platform;
pub mod reference;
pub mod registry;
pub mod remote_cache;
pub mod resolver;
pub mod sandbox;
pub mod solver;
pub mod users;

pub use build::{BuildRequest, BuildResult, Builder, DockerfileInput};

/// Why a build (or an image command) failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A problem with the Dockerfile or one of its steps, at a line and column.
    #[error("{0}")]
    Dockerfile(#[from] kiln_frontend::Diagnostic),
    /// The build context cannot be read.
    #[error("build context: {0}")]
    Context(#[from] context::ContextError),
    /// The kiln root (store, blobs, snapshots) failed.
    #[error("kiln store: {0}")]
    Store(#[from] kiln_cache::Error),
    /// Serializing JSON failed.
    #[error("encoding JSON: {0}")]
    Json(serde_json::Error),
    /// No image with this name.
    #[error("image {0:?} not found")]
    ImageNotFound(String),
    /// A name given by the user is not valid.
    #[error(transparent)]
    Name(#[from] reference::NameError),
    /// Pulling or pushing an image failed.
    #[error("{0}")]
    Registry(String),
    /// Exporting the build cache (`--cache-to`) failed.
    #[error(transparent)]
    RemoteCache(#[from] remote_cache::RemoteCacheError),
    /// An output cannot be written as asked (`--output`, `--compression`, ...).
    #[error("{0}")]
    Export(String),
    /// The build was interrupted (Ctrl-C, SIGTERM); everything it started was stopped.
    #[error("the build was interrupted")]
    Interrupted,
    /// Something kiln itself got wrong.
    #[error("internal error: {0}")]
    Internal(String),
}
