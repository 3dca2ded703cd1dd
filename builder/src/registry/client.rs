//! Requests to one repository of one registry: authenticated sends with retries, manifests,
//! and blob downloads (verified, resumed with `Range` after a broken connection). Uploads are
//! in `upload`.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use kiln_cache::blob::BlobStore;
use kiln_cache::digest::Digest;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use reqwest::{RequestBuilder, Response, StatusCode, Url};

use super::auth::{Auth, parse_challenges};
use super::credentials::Credential;
use super::error::{RegistryError, Result};
use super::progress::{BlobProgress, ProgressStatus};
use super::transport::{
    Failure, HostClient, classify, display_url, error_detail, retryable_status,
};

/// Media types kiln accepts for manifests, best first.
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Manifests bigger than this are refused (containers/image uses the same limit).
const MANIFEST_LIMIT: u64 = 4 << 20;

/// A connection to `registry/repository`, authenticated for some scopes.
pub(crate) struct RepoClient {
    pub host: Arc<HostClient>,
    pub repository: String,
    pub(super) base: Url,
    pub(super) auth: Auth,
}

impl RepoClient {
    /// Pings the host (once per host) and authenticates for `scopes`.
    pub(crate) async fn connect(
        host: Arc<HostClient>,
        repository: &str,
        credential: Option<Credential>,
        scopes: Vec<String>,
    ) -> Result<RepoClient> {
        let ping = host.ping().await?;
        let base = ping.base.clone();
        let auth = Auth::new(&host.host, credential, scopes);
        if !ping.challenges.is_empty() {
            auth.prime(&host, &ping.challenges).await?;
        }
        Ok(RepoClient { host, repository: repository.to_string(), base, auth })
    }

    /// `registry/repository`, for messages.
    pub(crate) fn name(&self) -> String {
        format!("{}/{}", self.host.host, self.repository)
    }

    /// `BASE/v2/REPOSITORY/SUFFIX`.
    pub(crate) fn url(&self, suffix: &str) -> Result<Url> {
        self.base
            .join(&format!("v2/{}/{suffix}", self.repository))
            .map_err(|e| RegistryError::Internal(format!("building a URL: {e}")))
    }

    /// Sends `make()` with the current credentials. A 401 renews them once; connection
    /// failures and retryable statuses are tried again with backoff. The response may still
    /// have an error status (the caller maps it).
    pub(super) async fn send(
        &self,
        url: &Url,
        make: &dyn Fn() -> RequestBuilder,
        on_retry: &dyn Fn(u32, &str),
    ) -> Result<Response> {
        let retry = &self.host.retry;
        let mut attempt = 1;
        let mut renewed = false;
        loop {
            if self.auth.expiring().await {
                self.auth.refresh(&self.host).await?;
            }
            let (header, generation) = self.auth.header().await;
            let mut rb = make();
            if let Some(h) = &header {
                rb = rb.header(AUTHORIZATION, h);
            }
            let reason = match rb.send().await {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !renewed => {
                    renewed = true;
                    let challenges: Vec<_> = resp
                        .headers()
                        .get_all(reqwest::header::WWW_AUTHENTICATE)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .flat_map(parse_challenges)
                        .collect();
                    self.auth.renew(&self.host, generation, &challenges).await?;
                    continue;
                }
                Ok(resp) if retryable_status(resp.status()) && attempt < retry.attempts => {
                    format!("HTTP {}", resp.status())
                }
                Ok(resp) if retryable_status(resp.status()) => {
                    return Err(RegistryError::Status {
                        url: display_url(url),
                        status: resp.status().as_u16(),
                        detail: format!(" (after {attempt} attempts)"),
                    });
                }
                Ok(resp) => return Ok(resp),
                Err(e) => match classify(&self.host.host, url, e) {
                    Failure::Fatal(err) => return Err(err),
                    Failure::Retry(m) if attempt < retry.attempts => m,
                    Failure::Retry(m) => {
                        return Err(RegistryError::Transport {
                            url: display_url(url),
                            message: format!("{m} (after {attempt} attempts)"),
                        });
                    }
                },
            };
            attempt += 1;
            on_retry(attempt, &reason);
            tokio::time::sleep(retry.delay(attempt - 1)).await;
        }
    }

    /// Turns an error status into an error, with the registry's own message when it sent one.
    pub(super) async fn status_error(&self, resp: Response, what: &str) -> RegistryError {
        let status = resp.status();
        let url = display_url(resp.url());
        let body = resp.bytes().await.unwrap_or_default();
        let message = registry_message(&body);
        let detail = if message.is_empty() { String::new() } else { format!(": {message}") };
        match status {
            StatusCode::NOT_FOUND => RegistryError::NotFound {
                registry: self.host.host.clone(),
                repository: self.repository.clone(),
                what: what.to_string(),
            },
            StatusCode::UNAUTHORIZED => {
                RegistryError::Unauthorized { registry: self.host.host.clone(), detail }
            }
            StatusCode::FORBIDDEN => RegistryError::Denied {
                registry: self.host.host.clone(),
                repository: self.repository.clone(),
                detail,
            },
            _ => RegistryError::Status { url, status: status.as_u16(), detail },
        }
    }

    /// Fetches a manifest or index by tag or digest: its bytes and media type. Bodies cut
    /// short are fetched again.
    pub(crate) async fn get_manifest(&self, reference: &str) -> Result<(Vec<u8>, String)> {
        let url = self.url(&format!("manifests/{reference}"))?;
        let what = format!("manifest {reference}");
        let retry = &self.host.retry;
        let mut attempt = 1;
        loop {
            let resp = self
                .send(
                    &url,
                    &|| self.host.http.get(url.clone()).header(ACCEPT, MANIFEST_ACCEPT),
                    &|_, _| {},
                )
                .await?;
            if !resp.status().is_success() {
                return Err(self.status_error(resp, &what).await);
            }
            if resp.content_length().is_some_and(|n| n > MANIFEST_LIMIT) {
                return Err(self.too_big(&what));
            }
            let media_type = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
                .unwrap_or_default();
            match read_limited(resp, MANIFEST_LIMIT).await {
                Ok(Some(body)) => return Ok((body, media_type)),
                Ok(None) => return Err(self.too_big(&what)),
                Err(e) if attempt < retry.attempts => {
                    let _ = e;
                    attempt += 1;
                    tokio::time::sleep(retry.delay(attempt - 1)).await;
                }
                Err(e) => {
                    return Err(RegistryError::Transport {
                        url: display_url(&url),
                        message: format!("{e} (after {attempt} attempts)"),
                    });
                }
            }
        }
    }

    fn too_big(&self, what: &str) -> RegistryError {
        RegistryError::Manifest {
            reference: self.name(),
            message: format!("{what} is larger than {MANIFEST_LIMIT} bytes"),
        }
    }

    /// Uploads a manifest under `reference` (a tag or its digest); returns the digest the
    /// registry reports, if it does.
    pub(crate) async fn put_manifest(
        &self,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Option<String>> {
        let url = self.url(&format!("manifests/{reference}"))?;
        let body = Bytes::copy_from_slice(bytes);
        let resp = self
            .send(
                &url,
                &|| {
                    self.host
                        .http
                        .put(url.clone())
                        .header(CONTENT_TYPE, media_type)
                        .body(body.clone())
                },
                &|_, _| {},
            )
            .await?;
        if !resp.status().is_success() {
            return Err(self.status_error(resp, &format!("manifest {reference}")).await);
        }
        Ok(resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string))
    }

    /// Whether the registry has the blob.
    pub(crate) async fn has_blob(&self, digest: &Digest) -> Result<bool> {
        let url = self.url(&format!("blobs/{digest}"))?;
        let resp = self.send(&url, &|| self.host.http.head(url.clone()), &|_, _| {}).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.status_error(resp, &format!("blob {digest}")).await),
        }
    }

    /// Downloads a blob into `blobs`, verified: a broken transfer resumes with `Range` (or
    /// starts over when the registry ignores it); more bytes than `size` or a wrong digest is
    /// an error and nothing is stored. Returns the bytes downloaded.
    pub(crate) async fn fetch_blob(
        &self,
        blobs: &BlobStore,
        digest: &Digest,
        size: u64,
        progress: &BlobProgress<'_>,
    ) -> Result<u64> {
        let url = self.url(&format!("blobs/{digest}"))?;
        let retry = &self.host.retry;
        let mut writer = blobs.ingest()?;
        let mut downloaded = 0u64;
        let mut attempt = 1;
        let on_retry = |attempt: u32, reason: &str| {
            progress.report(0, ProgressStatus::Retrying { attempt, reason: reason.to_string() })
        };
        loop {
            let offset = writer.len();
            let resp = self
                .send(
                    &url,
                    &|| {
                        let rb = self.host.http.get(url.clone());
                        if offset > 0 { rb.header(RANGE, format!("bytes={offset}-")) } else { rb }
                    },
                    &on_retry,
                )
                .await?;
            let status = resp.status();
            let resumed_ok = status == StatusCode::PARTIAL_CONTENT
                && offset > 0
                && content_range_start(&resp) == Some(offset);
            if status == StatusCode::RANGE_NOT_SATISFIABLE
                || (status == StatusCode::PARTIAL_CONTENT && !resumed_ok)
            {
                // The registry's idea of the range does not fit ours: start over.
                writer = blobs.ingest()?;
                progress.rewind(0);
                continue;
            }
            if !status.is_success() {
                return Err(self.status_error(resp, &format!("blob {digest}")).await);
            }
            if status == StatusCode::OK && offset > 0 {
                writer = blobs.ingest()?;
                progress.rewind(0);
            }
            let failure = self
                .stream_into(resp, &mut writer, size, digest, progress, &mut downloaded)
                .await?;
            let Some(reason) = failure else { break };
            if writer.len() == size {
                break;
            }
            if attempt >= retry.attempts {
                return Err(RegistryError::Transport {
                    url: display_url(&url),
                    message: format!(
                        "{reason} ({} of {size} bytes received, after {attempt} attempts)",
                        writer.len()
                    ),
                });
            }
            attempt += 1;
            on_retry(attempt, &reason);
            tokio::time::sleep(retry.delay(attempt - 1)).await;
        }
        let len = writer.len();
        if len != size {
            return Err(RegistryError::SizeMismatch {
                what: "blob",
                digest: digest.clone(),
                source_name: self.name(),
                expected: size,
                actual: len,
            });
        }
        match writer.commit(Some(digest)) {
            Ok(_) => Ok(downloaded),
            Err(kiln_cache::Error::DigestMismatch { expected, actual, .. }) => {
                Err(RegistryError::DigestMismatch {
                    what: "blob",
                    source_name: self.name(),
                    expected,
                    actual,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Copies a response body into `writer`; `Some(reason)` when the body broke off early.
    async fn stream_into(
        &self,
        mut resp: Response,
        writer: &mut kiln_cache::blob::BlobWriter,
        size: u64,
        digest: &Digest,
        progress: &BlobProgress<'_>,
        downloaded: &mut u64,
    ) -> Result<Option<String>> {
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let have = writer.len();
                    if have + chunk.len() as u64 > size {
                        return Err(RegistryError::SizeMismatch {
                            what: "blob",
                            digest: digest.clone(),
                            source_name: self.name(),
                            expected: size,
                            actual: have + chunk.len() as u64,
                        });
                    }
                    let temp = writer.temp_path().to_path_buf();
                    writer.write_all(&chunk).map_err(|source| RegistryError::Io {
                        op: "write",
                        path: temp,
                        source,
                    })?;
                    *downloaded += chunk.len() as u64;
                    progress.bytes(writer.len());
                }
                Ok(None) if writer.len() < size => {
                    return Ok(Some(format!(
                        "the body ended after {} of {size} bytes",
                        writer.len()
                    )));
                }
                Ok(None) => return Ok(None),
                Err(e) => return Ok(Some(error_detail(&e))),
            }
        }
    }
}

/// The start of a `Content-Range: bytes START-END/TOTAL` header.
fn content_range_start(resp: &Response) -> Option<u64> {
    let v = resp.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    let range = v.trim().strip_prefix("bytes")?.trim_start();
    range.split('-').next()?.trim().parse().ok()
}

/// The `message`s of a registry's JSON error body (`{"errors":[{"code":…,"message":…}]}`).
fn registry_message(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else { return String::new() };
    v.get("errors")
        .and_then(|e| e.as_array())
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e.get("message").and_then(|m| m.as_str()))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

/// Reads a whole body, `None` when it is longer than `limit`.
async fn read_limited(
    mut resp: Response,
    limit: u64,
) -> std::result::Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if out.len() as u64 + c.len() as u64 > limit {
                    return Ok(None);
                }
                out.extend_from_slice(&c);
            }
            Ok(None) => return Ok(Some(out)),
            Err(e) => return Err(error_detail(&e)),
        }
    }
}
