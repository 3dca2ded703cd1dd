//! The error type of the registry client. Messages never contain credentials or tokens.

use std::path::PathBuf;

use kiln_cache::digest::Digest;

use crate::reference::NameError;

/// Everything that can go wrong talking to registries or reading their configuration.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// An image reference that does not parse.
    #[error(transparent)]
    Reference(#[from] NameError),
    /// A `registries.conf` file is invalid.
    #[error("registries configuration {}: {message}", path.display())]
    Config {
        /// The file (or drop-in) at fault.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A short name cannot be resolved to a registry.
    #[error("short name {name:?}: {message}")]
    ShortName {
        /// The name as written.
        name: String,
        /// Why it cannot be resolved.
        message: String,
    },
    /// A registry is marked `blocked = true` in `registries.conf`.
    #[error("registry {0} is blocked in registries.conf")]
    Blocked(String),
    /// An auth file or Docker config cannot be read or written.
    #[error("credentials file {}: {message}", path.display())]
    Credentials {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A `docker-credential-*` helper failed.
    #[error("credential helper docker-credential-{helper}: {message}")]
    Helper {
        /// The helper's name (without the `docker-credential-` prefix).
        helper: String,
        /// What went wrong (never the secret).
        message: String,
    },
    /// The registry could not be reached or the connection failed, after retries.
    #[error("{url}: {message}")]
    Transport {
        /// The URL (without query) that failed.
        url: String,
        /// What failed.
        message: String,
    },
    /// TLS verification failed.
    #[error(
        "{host}: TLS: {message} (for a private CA put its certificate in certs.d or pass \
         --cert-dir; --tls-verify=false skips verification)"
    )]
    Tls {
        /// The registry host.
        host: String,
        /// What rustls reported.
        message: String,
    },
    /// The registry wants credentials kiln does not have, or rejected them.
    #[error("{registry}: authentication required{detail}")]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// `: invalid username or password` and the like, or empty.
        detail: String,
    },
    /// The credentials are valid but not allowed to do this.
    #[error("{registry}: access to {repository} denied{detail}")]
    Denied {
        /// The registry host.
        registry: String,
        /// The repository.
        repository: String,
        /// The registry's message, or empty.
        detail: String,
    },
    /// A manifest or blob does not exist.
    #[error("{what} not found in {registry}/{repository}")]
    NotFound {
        /// The registry host.
        registry: String,
        /// The repository.
        repository: String,
        /// `manifest latest`, `blob sha256:…`.
        what: String,
    },
    /// The registry answered with an unexpected status.
    #[error("{url}: HTTP {status}{detail}")]
    Status {
        /// The URL (without query).
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The registry's error message, or empty.
        detail: String,
    },
    /// Content from the registry did not hash to the digest it was asked for.
    #[error(
        "{what} from {source_name}: digest mismatch: expected {expected}, got {actual} \
         (the registry sent corrupt data; nothing was stored)"
    )]
    DigestMismatch {
        /// `blob`, `manifest`.
        what: &'static str,
        /// `registry/repository`.
        source_name: String,
        /// The digest asked for.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
    },
    /// Content from the registry has a different size than its descriptor says.
    #[error(
        "{what} {digest} from {source_name}: size mismatch: expected {expected} bytes, got \
         {actual} (nothing was stored)"
    )]
    SizeMismatch {
        /// `blob`, `manifest`.
        what: &'static str,
        /// Its digest.
        digest: Digest,
        /// `registry/repository`.
        source_name: String,
        /// The size in the descriptor.
        expected: u64,
        /// What arrived (or at least how much).
        actual: u64,
    },
    /// A manifest or index kiln cannot use.
    #[error("{reference}: {message}")]
    Manifest {
        /// The image.
        reference: String,
        /// What is wrong.
        message: String,
    },
    /// The local store failed.
    #[error("kiln store: {0}")]
    Store(#[from] kiln_cache::Error),
    /// A local file operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was done.
        op: &'static str,
        /// To which file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Something that should not happen (an HTTP client that cannot be built, a runtime that
    /// cannot start).
    #[error("registry client: {0}")]
    Internal(String),
}

/// Result with [`RegistryError`].
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
