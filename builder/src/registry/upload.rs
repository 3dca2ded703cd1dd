//! Blob uploads to one repository: `HEAD` to skip, a cross-repository mount, then a
//! monolithic `PUT` or `PATCH` pieces with `Content-Range`; broken uploads start over.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use kiln_cache::blob::BlobStore;
use kiln_cache::digest::Digest;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Response, StatusCode, Url};

use super::client::RepoClient;
use super::error::{RegistryError, Result};
use super::progress::{BlobProgress, ProgressStatus};
use super::transport::{Failure, classify, display_url, retryable_status};

/// How a blob got to the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Uploaded {
    /// It was there already.
    Exists,
    /// Mounted from another repository.
    Mounted(String),
    /// Its bytes were sent.
    Sent,
}

impl RepoClient {
    /// Makes sure the registry has the blob: `HEAD`, then a mount from one of `mount_from`,
    /// then an upload (monolithic, or in `chunk_size` pieces). Broken uploads start over.
    pub(crate) async fn push_blob(
        &self,
        blobs: &BlobStore,
        digest: &Digest,
        size: u64,
        mount_from: &[String],
        chunk_size: Option<u64>,
        progress: &BlobProgress<'_>,
    ) -> Result<Uploaded> {
        if self.has_blob(digest).await? {
            return Ok(Uploaded::Exists);
        }
        // One mount try (the first repository known to have it); a refused mount still
        // opens an upload session, which the upload then uses.
        let mut session = None;
        if let Some(from) = mount_from.first() {
            match self.start_upload(Some((digest, from))).await? {
                Start::Mounted => return Ok(Uploaded::Mounted(from.clone())),
                Start::Session(loc, min) => session = Some((loc, min)),
            }
        }
        let retry = &self.host.retry;
        let mut chunk_size = chunk_size;
        let mut attempt = 1;
        loop {
            let (location, min_chunk) = match session.take() {
                Some(s) => s,
                None => match self.start_upload(None).await? {
                    Start::Session(loc, min) => (loc, min),
                    Start::Mounted => return Ok(Uploaded::Exists),
                },
            };
            progress.rewind(0);
            if self.auth.expiring().await {
                self.auth.refresh(&self.host).await?;
            }
            let result = match chunk_size {
                None => self.upload_whole(blobs, digest, size, &location, progress).await,
                Some(cs) => {
                    let cs = cs.max(min_chunk.unwrap_or(0)).max(1);
                    self.upload_chunks(blobs, digest, size, location, cs, progress).await
                }
            };
            let reason = match result {
                Ok(()) => return Ok(Uploaded::Sent),
                Err(UploadFailure::Fatal(e)) => return Err(e),
                Err(UploadFailure::TooLarge) if chunk_size.is_none() => {
                    // The registry limits request sizes: send it in pieces instead.
                    chunk_size = Some(16 << 20);
                    continue;
                }
                Err(UploadFailure::TooLarge) => {
                    return Err(RegistryError::Status {
                        url: display_url(&self.url("blobs/uploads/")?),
                        status: 413,
                        detail: ": the registry refuses chunks this large".into(),
                    });
                }
                Err(UploadFailure::Retry(reason)) => reason,
            };
            if attempt >= retry.attempts {
                return Err(RegistryError::Transport {
                    url: display_url(&self.url("blobs/uploads/")?),
                    message: format!("uploading {digest}: {reason} (after {attempt} attempts)"),
                });
            }
            attempt += 1;
            progress.report(0, ProgressStatus::Retrying { attempt, reason });
            tokio::time::sleep(retry.delay(attempt - 1)).await;
        }
    }

    /// `POST …/blobs/uploads/` (with `mount` and `from` when mounting).
    async fn start_upload(&self, mount: Option<(&Digest, &String)>) -> Result<Start> {
        let mut url = self.url("blobs/uploads/")?;
        if let Some((digest, from)) = mount {
            url.query_pairs_mut()
                .append_pair("mount", &digest.to_string())
                .append_pair("from", from);
        }
        let resp = self
            .send(&url, &|| self.host.http.post(url.clone()).header(CONTENT_LENGTH, 0), &|_, _| {})
            .await?;
        match resp.status() {
            StatusCode::CREATED if mount.is_some() => Ok(Start::Mounted),
            StatusCode::ACCEPTED | StatusCode::CREATED => {
                let location = self.location(&resp)?;
                let min = resp
                    .headers()
                    .get("oci-chunk-min-length")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                Ok(Start::Session(location, min))
            }
            _ => Err(self.status_error(resp, "upload").await),
        }
    }

    /// The `Location` of an upload session, resolved against the registry.
    fn location(&self, resp: &Response) -> Result<Url> {
        let loc = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()).ok_or_else(|| {
            RegistryError::Status {
                url: display_url(resp.url()),
                status: resp.status().as_u16(),
                detail: ": the registry sent no upload Location".into(),
            }
        })?;
        self.base.join(loc).map_err(|_| RegistryError::Status {
            url: display_url(resp.url()),
            status: resp.status().as_u16(),
            detail: ": the upload Location is not a URL".into(),
        })
    }

    /// One `PUT LOCATION?digest=…` with the whole blob as body.
    async fn upload_whole(
        &self,
        blobs: &BlobStore,
        digest: &Digest,
        size: u64,
        location: &Url,
        progress: &BlobProgress<'_>,
    ) -> Result<(), UploadFailure> {
        let mut url = location.clone();
        url.query_pairs_mut().append_pair("digest", &digest.to_string());
        let (header, _) = self.auth.header().await;
        let sent = Arc::new(AtomicU64::new(0));
        let reader = blobs.open_verified(digest).map_err(|e| UploadFailure::Fatal(e.into()))?;
        let mut rb = self
            .host
            .http
            .put(url.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(read_stream(reader, sent.clone())));
        if let Some(h) = header {
            rb = rb.header(AUTHORIZATION, h);
        }
        let resp = with_ticks(rb.send(), || progress.bytes(sent.load(Ordering::Relaxed))).await;
        self.finish_request(resp, &url, StatusCode::CREATED, "upload").await.map(|_| ())
    }

    /// `PATCH` pieces with `Content-Range`, then `PUT LOCATION?digest=…`.
    async fn upload_chunks(
        &self,
        blobs: &BlobStore,
        digest: &Digest,
        size: u64,
        mut location: Url,
        chunk: u64,
        progress: &BlobProgress<'_>,
    ) -> Result<(), UploadFailure> {
        let path = blobs.path(digest);
        let mut offset = 0u64;
        while offset < size {
            let len = chunk.min(size - offset);
            let mut file = std::fs::File::open(&path).map_err(|source| {
                UploadFailure::Fatal(RegistryError::Io { op: "open", path: path.clone(), source })
            })?;
            file.seek(SeekFrom::Start(offset)).map_err(|source| {
                UploadFailure::Fatal(RegistryError::Io { op: "seek", path: path.clone(), source })
            })?;
            let sent = Arc::new(AtomicU64::new(offset));
            let (header, _) = self.auth.header().await;
            let mut rb = self
                .host
                .http
                .patch(location.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, len)
                .header(CONTENT_RANGE, format!("{offset}-{}", offset + len - 1))
                .body(reqwest::Body::wrap_stream(read_stream(file.take(len), sent.clone())));
            if let Some(h) = header {
                rb = rb.header(AUTHORIZATION, h);
            }
            let resp = with_ticks(rb.send(), || progress.bytes(sent.load(Ordering::Relaxed))).await;
            let resp =
                self.finish_request(resp, &location, StatusCode::ACCEPTED, "upload chunk").await?;
            location = self.location(&resp).map_err(UploadFailure::Fatal)?;
            offset += len;
        }
        let mut url = location.clone();
        url.query_pairs_mut().append_pair("digest", &digest.to_string());
        let (header, _) = self.auth.header().await;
        let mut rb = self.host.http.put(url.clone()).header(CONTENT_LENGTH, 0);
        if let Some(h) = header {
            rb = rb.header(AUTHORIZATION, h);
        }
        let resp = rb.send().await;
        self.finish_request(resp, &url, StatusCode::CREATED, "upload").await.map(|_| ())
    }

    /// Sorts the outcome of an upload request.
    async fn finish_request(
        &self,
        resp: reqwest::Result<Response>,
        url: &Url,
        expect: StatusCode,
        what: &str,
    ) -> Result<Response, UploadFailure> {
        match resp {
            Ok(r)
                if r.status() == expect
                    || (expect == StatusCode::ACCEPTED && r.status() == StatusCode::NO_CONTENT) =>
            {
                Ok(r)
            }
            Ok(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(UploadFailure::TooLarge),
            Ok(r) if retryable_status(r.status()) || r.status() == StatusCode::UNAUTHORIZED => {
                Err(UploadFailure::Retry(format!("HTTP {}", r.status())))
            }
            Ok(r) => Err(UploadFailure::Fatal(self.status_error(r, what).await)),
            Err(e) => match classify(&self.host.host, url, e) {
                Failure::Fatal(e) => Err(UploadFailure::Fatal(e)),
                Failure::Retry(m) => Err(UploadFailure::Retry(m)),
            },
        }
    }
}

/// How `POST …/uploads/` answered.
enum Start {
    /// The mount worked: nothing to upload.
    Mounted,
    /// An upload session, and the registry's minimum chunk size if it gave one.
    Session(Url, Option<u64>),
}

/// Why an upload try failed.
enum UploadFailure {
    /// Start a new upload and try again.
    Retry(String),
    /// 413: the request was too big.
    TooLarge,
    /// Give up.
    Fatal(RegistryError),
}

/// A body stream reading `reader` in 1 MiB pieces, counting bytes into `sent`.
fn read_stream<R: Read + Send + 'static>(
    reader: R,
    sent: Arc<AtomicU64>,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures_util::stream::unfold(Some(reader), move |state| {
        let sent = sent.clone();
        async move {
            let mut reader = state?;
            let mut buf = vec![0u8; 1 << 20];
            match reader.read(&mut buf) {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    sent.fetch_add(n as u64, Ordering::Relaxed);
                    Some((Ok(Bytes::from(buf)), Some(reader)))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    })
}

/// Runs `fut`, calling `tick` every 200 ms meanwhile (upload progress).
async fn with_ticks<F: std::future::Future>(fut: F, mut tick: impl FnMut()) -> F::Output {
    tokio::pin!(fut);
    let mut interval = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            out = &mut fut => return out,
            _ = interval.tick() => tick(),
        }
    }
}
