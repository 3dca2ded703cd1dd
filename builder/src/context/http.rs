//! Downloads for `ADD https://…` and URL contexts: streamed into a file while hashing, with
//! `--checksum` verified, `Last-Modified` parsed for the file's mtime, and `ETag` /
//! `Last-Modified` remembered so that the next build can ask "changed?" instead of
//! downloading again (`ROOT/cache/http/<sha256 of the URL>.json`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kiln_cache::digest::{Digest, Digester};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The server answered with an error status.
    #[error("downloading {url} failed: HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// Status code and reason (`404 Not Found`).
        status: String,
    },
    /// The request could not be made or the body not read.
    #[error("downloading {url} failed: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The content does not match `--checksum`.
    #[error("{url}: checksum mismatch: --checksum is {expected} but the download is {actual}")]
    Checksum {
        /// The URL.
        url: String,
        /// The checksum asked for.
        expected: String,
        /// The checksum of what was downloaded.
        actual: String,
    },
    /// Writing the download failed.
    #[error("saving {url} to {}: {source}", path.display())]
    Io {
        /// The URL.
        url: String,
        /// The file being written.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A downloaded file.
#[derive(Debug, Clone)]
pub struct Download {
    /// Where the content is.
    pub path: PathBuf,
    /// sha256 of the content.
    pub digest: Digest,
    /// `Last-Modified` as seconds since the epoch, when the server sent a valid one.
    pub last_modified: Option<i64>,
    /// `ETag`, if sent.
    pub etag: Option<String>,
}

/// What a previous build learned about a URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRecord {
    /// `ETag` of the content last downloaded.
    pub etag: Option<String>,
    /// `Last-Modified` as sent.
    pub last_modified_raw: Option<String>,
    /// `Last-Modified` in seconds.
    pub last_modified: Option<i64>,
    /// sha256 of that content.
    pub digest: Digest,
}

/// The outcome of asking whether a URL changed.
#[derive(Debug, Clone)]
pub enum Probe {
    /// The server says the recorded content is current (304).
    Unchanged(HttpRecord),
    /// The content was downloaded again.
    Fetched(Download),
}

fn client() -> Result<reqwest::Client, String> {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| error_chain(&e))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// The record file of `url` under the kiln root.
fn record_path(root: &Path, url: &str) -> PathBuf {
    root.join("cache/http").join(format!("{}.json", Digest::of_bytes(url.as_bytes()).hex()))
}

/// The record a previous build kept for `url`.
pub fn load_record(root: &Path, url: &str) -> Option<HttpRecord> {
    let bytes = std::fs::read(record_path(root, url)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Keeps what was learned about `url` (best effort: a failure only costs a download).
pub fn save_record(root: &Path, url: &str, d: &Download, last_modified_raw: Option<String>) {
    let record = HttpRecord {
        etag: d.etag.clone(),
        last_modified_raw,
        last_modified: d.last_modified,
        digest: d.digest.clone(),
    };
    let path = record_path(root, url);
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    if let Ok(bytes) = serde_json::to_vec(&record) {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, bytes).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
}

/// Downloads `url` into `dest` (a new file). With `previous`, asks the server first whether
/// the content changed (`If-None-Match` / `If-Modified-Since`). With `checksum`
/// (`sha256:…`, `sha384:…`, `sha512:…`), the content must match it.
pub fn fetch(
    url: &str,
    dest: &Path,
    checksum: Option<&str>,
    previous: Option<&HttpRecord>,
) -> Result<(Probe, Option<String>), HttpError> {
    let transport = |reason: String| HttpError::Transport { url: url.to_string(), reason };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| transport(format!("starting the HTTP runtime: {e}")))?;
    let http = client().map_err(transport)?;
    runtime.block_on(async {
        let mut request = http.get(url);
        if let Some(p) = previous {
            if let Some(etag) = &p.etag {
                request = request.header(reqwest::header::IF_NONE_MATCH, etag);
            }
            if let Some(lm) = &p.last_modified_raw {
                request = request.header(reqwest::header::IF_MODIFIED_SINCE, lm);
            }
        }
        let mut response = request.send().await.map_err(|e| transport(error_chain(&e)))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED
            && let Some(p) = previous
        {
            return Ok((Probe::Unchanged(p.clone()), p.last_modified_raw.clone()));
        }
        if !status.is_success() {
            return Err(HttpError::Status { url: url.to_string(), status: status.to_string() });
        }
        let header = |name: reqwest::header::HeaderName| {
            response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
        };
        let etag = header(reqwest::header::ETAG);
        let last_modified_raw = header(reqwest::header::LAST_MODIFIED);
        let last_modified = last_modified_raw.as_deref().and_then(parse_http_date);
        let io = |source| HttpError::Io { url: url.to_string(), path: dest.to_path_buf(), source };
        let mut file = std::fs::File::create(dest).map_err(io)?;
        let mut sha256 = Digester::new();
        let mut other = Checksum::new(checksum);
        while let Some(chunk) = response.chunk().await.map_err(|e| transport(error_chain(&e)))? {
            sha256.update(&chunk);
            other.update(&chunk);
            file.write_all(&chunk).map_err(io)?;
        }
        file.sync_all().map_err(io)?;
        let digest = sha256.finish();
        if let Some(expected) = checksum {
            let actual = other.finish(&digest);
            if actual != expected {
                return Err(HttpError::Checksum {
                    url: url.to_string(),
                    expected: expected.to_string(),
                    actual,
                });
            }
        }
        let download = Download { path: dest.to_path_buf(), digest, last_modified, etag };
        Ok((Probe::Fetched(download), last_modified_raw))
    })
}

/// A second hash for `--checksum` when it is not sha256.
enum Checksum {
    Sha256,
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Checksum {
    fn new(checksum: Option<&str>) -> Checksum {
        match checksum.and_then(|c| c.split_once(':')).map(|(a, _)| a) {
            Some("sha384") => Checksum::Sha384(sha2::Sha384::new()),
            Some("sha512") => Checksum::Sha512(sha2::Sha512::new()),
            _ => Checksum::Sha256,
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Checksum::Sha256 => {}
            Checksum::Sha384(h) => h.update(data),
            Checksum::Sha512(h) => h.update(data),
        }
    }

    /// `algo:hex` of the content.
    fn finish(self, sha256: &Digest) -> String {
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        match self {
            Checksum::Sha256 => sha256.to_string(),
            Checksum::Sha384(h) => format!("sha384:{}", hex(&h.finalize())),
            Checksum::Sha512(h) => format!("sha512:{}", hex(&h.finalize())),
        }
    }
}

/// Parses an HTTP date (RFC 9110 IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`, and the
/// obsolete RFC 850 and asctime forms) into seconds since the epoch.
pub fn parse_http_date(text: &str) -> Option<i64> {
    let months =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month =
        |m: &str| months.iter().position(|x| x.eq_ignore_ascii_case(m)).map(|i| i as i64 + 1);
    let words: Vec<&str> = text.split_whitespace().collect();
    let (day, mon, year, time) = match words.as_slice() {
        // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
        [_, d, m, y, t, "GMT"] => (d.parse().ok()?, month(m)?, y.parse().ok()?, *t),
        // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
        [_, dmy, t, "GMT"] => {
            let mut p = dmy.split('-');
            let d: i64 = p.next()?.parse().ok()?;
            let m = month(p.next()?)?;
            let y: i64 = p.next()?.parse().ok()?;
            (
                d,
                m,
                if y < 70 {
                    2000 + y
                } else if y < 100 {
                    1900 + y
                } else {
                    y
                },
                *t,
            )
        }
        // asctime: Sun Nov  6 08:49:37 1994
        [_, m, d, t, y] => (d.parse().ok()?, month(m)?, y.parse().ok()?, *t),
        _ => return None,
    };
    let mut hms = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, s) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=31).contains(&day) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(year, mon, day) * 86_400 + h * 3600 + mi * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = (if y >= 0 { y } else { y - 399 }) / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(784_111_777));
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("Tue, 29 Feb 2000 12:00:00 GMT"), Some(951_825_600));
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"), None);
    }
}
