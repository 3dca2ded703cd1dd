//! HTTP(S) to one registry host: the `reqwest` client with its TLS settings (system roots plus
//! `certs.d` CAs and client certificates, or no verification for insecure registries), the
//! `/v2/` ping that picks the scheme, retries with backoff, and error classification.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{StatusCode, Url};

use super::auth::{Challenge, parse_challenges};
use super::error::{RegistryError, Result};

/// How often and how patiently to retry what may succeed on a second try (5xx, 429, resets,
/// timeouts, truncated bodies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (at least 1).
    pub attempts: u32,
    /// The wait before the first retry; doubled each time.
    pub initial_delay: Duration,
    /// The longest wait between tries.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1-based).
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX);
        self.initial_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Where TLS material for registries is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertDirs {
    /// `--cert-dir`: a directory holding the files directly (used for every registry).
    pub explicit: Option<PathBuf>,
    /// `certs.d` roots, each with one sub-directory per `host[:port]`; the first that has
    /// the host wins.
    pub roots: Vec<PathBuf>,
}

impl CertDirs {
    /// `~/.config/containers/certs.d` (not for root), `/etc/containers/certs.d`,
    /// `/etc/docker/certs.d`.
    pub fn from_env(explicit: Option<&Path>) -> CertDirs {
        let mut roots = Vec::new();
        // SAFETY: geteuid has no preconditions and cannot fail.
        let is_root = unsafe { libc::geteuid() } == 0;
        if !is_root && let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            roots.push(PathBuf::from(home).join(".config/containers/certs.d"));
        }
        roots.push(PathBuf::from("/etc/containers/certs.d"));
        roots.push(PathBuf::from("/etc/docker/certs.d"));
        CertDirs { explicit: explicit.map(Path::to_path_buf), roots }
    }

    /// The directory to read for `host`, if any.
    pub fn for_host(&self, host: &str) -> Option<PathBuf> {
        if let Some(d) = &self.explicit {
            return Some(d.clone());
        }
        self.roots.iter().map(|r| r.join(host)).find(|d| d.is_dir())
    }
}

/// A failure and whether trying again may help.
pub(crate) enum Failure {
    /// Worth another try (the message says what happened).
    Retry(String),
    /// Final.
    Fatal(RegistryError),
}

/// The connection to one registry host.
pub(crate) struct HostClient {
    /// `host[:port]`.
    pub host: String,
    /// Plain HTTP and unverified TLS allowed.
    pub insecure: bool,
    /// The HTTP client (connection pool) for this host.
    pub http: reqwest::Client,
    /// How to retry.
    pub retry: RetryPolicy,
    ping: tokio::sync::OnceCell<Ping>,
}

/// What `GET /v2/` told us.
pub(crate) struct Ping {
    /// `https://host` or `http://host`.
    pub base: Url,
    /// Its `WWW-Authenticate` challenges (empty: anonymous access).
    pub challenges: Vec<Challenge>,
}

impl HostClient {
    /// A client for `host`, with the CAs and client certificate found in `certs`.
    pub(crate) fn new(
        host: &str,
        insecure: bool,
        certs: &CertDirs,
        retry: RetryPolicy,
    ) -> Result<HostClient> {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .tcp_keepalive(Duration::from_secs(30))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60));
        if insecure {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        if let Some(dir) = certs.for_host(host) {
            let (cas, identity) = read_cert_dir(&dir)?;
            if !cas.is_empty() && !insecure {
                builder = builder.tls_certs_merge(cas);
            }
            if let Some(id) = identity {
                builder = builder.identity(id);
            }
        }
        let http = builder.build().map_err(|e| {
            RegistryError::Internal(format!("building the HTTP client: {}", error_detail(&e)))
        })?;
        Ok(HostClient {
            host: host.to_string(),
            insecure,
            http,
            retry,
            ping: tokio::sync::OnceCell::new(),
        })
    }

    /// `GET /v2/` once per host: picks `https` (or, for an insecure registry that does not
    /// speak TLS, `http`) and records the auth challenges.
    pub(crate) async fn ping(&self) -> Result<&Ping> {
        self.ping.get_or_try_init(|| self.do_ping()).await
    }

    async fn do_ping(&self) -> Result<Ping> {
        let schemes: &[&str] = if self.insecure { &["https", "http"] } else { &["https"] };
        let mut last = String::new();
        for attempt in 1..=self.retry.attempts.max(1) {
            for scheme in schemes {
                let base =
                    Url::parse(&format!("{scheme}://{}/", endpoint(&self.host))).map_err(|_| {
                        RegistryError::Internal(format!(
                            "registry host {:?} does not make a URL",
                            self.host
                        ))
                    })?;
                let url = base.join("v2/").map_err(|e| RegistryError::Internal(e.to_string()))?;
                match self.http.get(url.clone()).send().await {
                    Ok(resp) => {
                        let status = resp.status();
                        if retryable_status(status) {
                            last = format!("HTTP {status}");
                            continue;
                        }
                        if status == StatusCode::NOT_FOUND {
                            return Err(RegistryError::Status {
                                url: display_url(&url),
                                status: 404,
                                detail: ": not a registry (no v2 API here)".into(),
                            });
                        }
                        let challenges = resp
                            .headers()
                            .get_all(reqwest::header::WWW_AUTHENTICATE)
                            .iter()
                            .filter_map(|v| v.to_str().ok())
                            .flat_map(parse_challenges)
                            .collect();
                        return Ok(Ping { base, challenges });
                    }
                    Err(e) => match classify(&self.host, &url, e) {
                        // With TLS not verified, a TLS failure means "try plain HTTP".
                        Failure::Fatal(err) if !self.insecure => return Err(err),
                        Failure::Fatal(err) => last = err.to_string(),
                        Failure::Retry(m) => last = m,
                    },
                }
            }
            if attempt < self.retry.attempts {
                tokio::time::sleep(self.retry.delay(attempt)).await;
            }
        }
        Err(RegistryError::Transport {
            url: format!("{}://{}/v2/", schemes[0], endpoint(&self.host)),
            message: format!("{last} (after {} attempts)", self.retry.attempts.max(1)),
        })
    }
}

/// Where a registry's API is: Docker Hub's is `registry-1.docker.io`, others at their name.
fn endpoint(host: &str) -> &str {
    if host == crate::reference::DOCKER_HUB { "registry-1.docker.io" } else { host }
}

/// Reads `*.crt` (CA certificates) and a `*.cert` + `*.key` pair (client certificate).
fn read_cert_dir(dir: &Path) -> Result<(Vec<reqwest::Certificate>, Option<reqwest::Identity>)> {
    let io = |path: &Path, source| RegistryError::Io { op: "read", path: path.into(), source };
    let mut names: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
        Err(e) => return Err(io(dir, e)),
    };
    names.sort();
    let mut cas = Vec::new();
    let mut identity = None;
    for path in &names {
        match path.extension().and_then(|e| e.to_str()) {
            Some("crt") => {
                let pem = fs::read(path).map_err(|e| io(path, e))?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                    RegistryError::Tls {
                        host: dir.display().to_string(),
                        message: format!("{}: {}", path.display(), error_detail(&e)),
                    }
                })?;
                cas.extend(certs);
            }
            Some("cert") => {
                let key = path.with_extension("key");
                let mut pem = fs::read(path).map_err(|e| io(path, e))?;
                pem.extend(fs::read(&key).map_err(|e| io(&key, e))?);
                identity =
                    Some(reqwest::Identity::from_pem(&pem).map_err(|e| RegistryError::Tls {
                        host: dir.display().to_string(),
                        message: format!(
                            "client certificate {}: {}",
                            path.display(),
                            error_detail(&e)
                        ),
                    })?);
            }
            _ => {}
        }
    }
    Ok((cas, identity))
}

/// Installs rustls' `ring` provider once per process (reqwest is built without a default).
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Another part of the process may have installed one already: that one is used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Statuses worth retrying.
pub(crate) fn retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// A URL for messages: no query string (upload state, tokens' scopes) and no user info.
pub(crate) fn display_url(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

/// The error and its causes, each once, without URLs (reqwest repeats them).
pub(crate) fn error_detail(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let mut text = err.to_string();
        if let Some(r) = err.downcast_ref::<reqwest::Error>() {
            if let Some(url) = r.url() {
                text = text
                    .replace(&format!(" ({url})"), "")
                    .replace(&format!(" for url ({url})"), "");
            }
            text = text.replace(" for url", "");
        }
        // Wrappers that say nothing the causes below do not say better.
        let generic = matches!(text.as_str(), "error sending request" | "client error (Connect)");
        if !generic && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// Finds a rustls error among `e`'s causes (TLS verification problems are not retried).
fn tls_error(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(t.to_string());
        }
        // `io::Error::source` skips the error it wraps: look inside it instead.
        cur = match err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// Sorts a request error into "retry" (connection problems, timeouts, broken bodies) and
/// "fatal" (TLS verification, malformed requests).
pub(crate) fn classify(host: &str, url: &Url, e: reqwest::Error) -> Failure {
    if let Some(t) = tls_error(&e) {
        return Failure::Fatal(RegistryError::Tls { host: host.to_string(), message: t });
    }
    let detail = error_detail(&e);
    // A name that does not resolve will not resolve a second later either.
    if e.is_builder() || e.is_redirect() || detail.contains("dns error") {
        return Failure::Fatal(RegistryError::Transport { url: display_url(url), message: detail });
    }
    Failure::Retry(detail)
}
