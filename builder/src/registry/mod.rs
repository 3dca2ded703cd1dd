//! The OCI distribution client: pull images into the local store and push them out, with the
//! configuration users already have. Knows nothing of Dockerfiles.
//!
//! - [`conf`] — `registries.conf` (short names, aliases, mirrors, insecure, blocked)
//! - [`credentials`] — `auth.json` / Docker `config.json` / credential helpers; login files
//! - [`auth`] — `WWW-Authenticate` challenges, basic auth, bearer tokens
//! - [`transport`] — HTTPS (rustls, `certs.d`), the `/v2/` ping, retries
//! - `client` — manifests and blobs of one repository (verified downloads with resume, uploads)
//! - `pull` / `push` — whole images, layers in parallel
//! - [`progress`] — per-blob byte progress for the progress display
//!
//! The API is synchronous; a small tokio runtime inside [`Registry`] runs the transfers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use kiln_cache::digest::Digest;
use oci_spec::image::Descriptor;

use crate::reference::Reference;

pub mod auth;
pub(crate) mod client;
pub mod conf;
pub mod credentials;
pub mod error;
mod media;
pub mod progress;
mod pull;
mod push;
pub mod transport;
mod upload;

pub use conf::{ConfPaths, RegistriesConf};
pub use credentials::{AuthFiles, Credential};
pub use error::RegistryError;
pub use progress::{BlobKind, Direction, Progress, ProgressSink, ProgressStatus};
pub use transport::{CertDirs, RetryPolicy};

use error::Result;
use transport::HostClient;

/// Everything that decides how kiln talks to registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// The `registries.conf` files.
    pub conf: ConfPaths,
    /// The credentials files.
    pub auth: AuthFiles,
    /// Where CA and client certificates are.
    pub certs: CertDirs,
    /// `--tls-verify`: `Some(false)` allows plain HTTP and unverified TLS for every registry,
    /// `Some(true)` requires verified TLS even where `registries.conf` says `insecure`.
    pub tls_verify: Option<bool>,
    /// Retries of failed requests.
    pub retry: RetryPolicy,
    /// Blobs transferred at the same time.
    pub max_concurrent: usize,
    /// Push blobs in pieces of this size (`None`: one request per blob, falling back to
    /// 16 MiB pieces when the registry answers 413).
    pub chunk_size: Option<u64>,
}

impl RegistryOptions {
    /// The user's configuration: `registries.conf` and auth files where containers tools look
    /// for them, `certs.d` directories, default retries, 6 parallel transfers.
    pub fn from_env() -> RegistryOptions {
        RegistryOptions {
            conf: ConfPaths::from_env(),
            auth: AuthFiles::from_env(None),
            certs: CertDirs::from_env(None),
            tls_verify: None,
            retry: RetryPolicy::default(),
            max_concurrent: 6,
            chunk_size: None,
        }
    }
}

/// What a pull stored.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The name the image is stored under in the local store (fully qualified).
    pub reference: Reference,
    /// Where it actually came from (differs for mirrors and `location` rewrites).
    pub source: Reference,
    /// The descriptor tagged in the store (the platform's manifest).
    pub descriptor: Descriptor,
    /// The manifest's digest.
    pub manifest_digest: Digest,
    /// The index's digest when the reference named a multi-platform image.
    pub index_digest: Option<Digest>,
    /// The config's digest (the image id).
    pub config_digest: Digest,
    /// Blobs (config and layers) in the image.
    pub blobs: usize,
    /// Blobs that were downloaded (the others were in the store already).
    pub fetched: usize,
    /// Bytes downloaded.
    pub bytes: u64,
    /// Things the user should know (platform mismatch, mirrors that failed).
    pub warnings: Vec<String>,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// Where it went.
    pub reference: Reference,
    /// The pushed manifest's (or index's) digest.
    pub digest: Digest,
    /// Blobs sent.
    pub uploaded: usize,
    /// Blobs the registry had already.
    pub existing: usize,
    /// Blobs mounted from other repositories.
    pub mounted: usize,
    /// Bytes sent.
    pub bytes: u64,
}

/// A registry client with its configuration, connections and credentials.
pub struct Registry {
    options: RegistryOptions,
    conf: RegistriesConf,
    hosts: Mutex<HashMap<(String, bool), Arc<HostClient>>>,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("options", &self.options).finish_non_exhaustive()
    }
}

impl Registry {
    /// Reads `registries.conf` and starts the I/O runtime.
    pub fn new(options: RegistryOptions) -> Result<Registry> {
        let conf = RegistriesConf::load(&options.conf)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kiln-registry")
            .enable_all()
            .build()
            .map_err(|e| RegistryError::Internal(format!("starting the I/O runtime: {e}")))?;
        Ok(Registry { options, conf, hosts: Mutex::new(HashMap::new()), runtime })
    }

    /// The options it was made with.
    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    /// The merged `registries.conf`.
    pub fn conf(&self) -> &RegistriesConf {
        &self.conf
    }

    /// The fully qualified references `name` may mean, in the order a pull tries them.
    pub fn candidates(&self, name: &str) -> Result<Vec<Reference>> {
        self.conf.candidates(name)
    }

    /// Whether plain HTTP / unverified TLS is allowed for `reference` (`--tls-verify` first,
    /// then `registries.conf`).
    pub fn insecure(&self, reference: &Reference) -> bool {
        match self.options.tls_verify {
            Some(verify) => !verify,
            None => self.conf.insecure(reference),
        }
    }

    /// The shared connection to `host` (one per host and security setting).
    fn host(&self, host: &str, insecure: bool) -> Result<Arc<HostClient>> {
        let insecure = match self.options.tls_verify {
            Some(verify) => !verify,
            None => insecure,
        };
        let mut hosts =
            self.hosts.lock().map_err(|_| RegistryError::Internal("host table poisoned".into()))?;
        if let Some(h) = hosts.get(&(host.to_string(), insecure)) {
            return Ok(h.clone());
        }
        let client = Arc::new(HostClient::new(
            host,
            insecure,
            &self.options.certs,
            self.options.retry.clone(),
        )?);
        hosts.insert((host.to_string(), insecure), client.clone());
        Ok(client)
    }

    /// Checks `username`/`password` against `registry` (a host, optionally with a namespace)
    /// and records them in the login file; returns that file.
    pub fn login(&self, registry: &str, username: &str, password: &str) -> Result<PathBuf> {
        let key = credentials::login_key(registry);
        let host = key.split('/').next().unwrap_or(&key).to_string();
        let probe = Reference::from_parts(&host, "x", None, None)
            .map_err(|reason| crate::reference::NameError { name: registry.to_string(), reason })?;
        let client = self.host(&host, self.conf.insecure(&probe))?;
        let credential =
            Credential::Basic { username: username.to_string(), password: password.to_string() };
        self.runtime.block_on(pull::verify_login(&client, credential))?;
        let file = self.options.auth.login_file().to_path_buf();
        credentials::store_login(&file, &key, username, password)?;
        Ok(file)
    }

    /// Removes the login for `registry` (`None`: every login) from the login file; false when
    /// there was none.
    pub fn logout(&self, registry: Option<&str>) -> Result<bool> {
        let key = registry.map(credentials::login_key);
        credentials::remove_login(self.options.auth.login_file(), key.as_deref())
    }
}

/// How `FROM` and `COPY --from` images are fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Pull only what the local store does not have (the default).
    #[default]
    Missing,
    /// Always ask the registry (the local copy is used only when it is the same image).
    Always,
    /// Never pull: images must be in the local store.
    Never,
}

impl std::str::FromStr for PullPolicy {
    type Err = String;

    /// `always`, `missing` or `never` (`true`/`false` as Docker's `--pull` also accepts).
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "missing" | "false" => Ok(PullPolicy::Missing),
            "always" | "true" | "newer" => Ok(PullPolicy::Always),
            "never" => Ok(PullPolicy::Never),
            other => {
                Err(format!("invalid pull policy {other:?}: expected always, missing or never"))
            }
        }
    }
}

/// The registry access a process uses by default (set once by the `kiln` binary from its
/// flags; otherwise built from the environment on first use).
pub struct Session {
    /// The client.
    pub registry: Arc<Registry>,
    /// When to pull base images.
    pub pull: PullPolicy,
}

static SESSION: OnceLock<std::result::Result<Arc<Session>, String>> = OnceLock::new();

/// Installs the process-wide session; false when one was set (or built) already.
pub fn install_session(session: Session) -> bool {
    SESSION.set(Ok(Arc::new(session))).is_ok()
}

/// The process-wide session: the installed one, else one from [`RegistryOptions::from_env`]
/// with [`PullPolicy::Missing`].
pub fn session() -> std::result::Result<Arc<Session>, String> {
    SESSION
        .get_or_init(|| {
            Registry::new(RegistryOptions::from_env())
                .map(|r| Arc::new(Session { registry: Arc::new(r), pull: PullPolicy::Missing }))
                .map_err(|e| e.to_string())
        })
        .clone()
}
