//! Sharing the build cache between machines (`--cache-to`, `--cache-from`) through a registry
//! or an OCI layout directory. Knows the cache index and the registry client, not Dockerfiles.
//!
//! - [`spec`] — the flags' values (`type=registry,ref=REF,mode=max,...`)
//! - [`format`] — the cache as an OCI image manifest whose config is a subset of the cache index
//!   (documented in `docs/CACHE-FORMAT.md`)
//! - [`import`] — reads the caches' indexes when a build starts; the solver asks
//!   [`RemoteCache`] on a local miss, and only then is the layer fetched
//! - `export` — writes the build's records (and cache mounts) at the end of a build
//! - `mounts` — `RUN --mount=type=cache` contents as archives
//!
//! A cache that cannot be read never fails a build: it is a warning, and the build runs
//! without it.

mod export;
pub mod format;
pub mod import;
mod mounts;
mod source;
pub mod spec;

pub use import::RemoteCache;
pub use spec::{CacheExport, CacheImport, CacheLocation, CacheMode, CacheSpecError};

pub(crate) use export::export_all;
pub(crate) use mounts::mount_dir;

/// Why exporting a cache failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteCacheError {
    /// Writing or pushing the cache failed.
    #[error(
        "exporting the cache to {target}: {message} (add ignore-error=true to --cache-to to build anyway)"
    )]
    Export {
        /// Where it was going.
        target: String,
        /// What went wrong.
        message: String,
    },
}
