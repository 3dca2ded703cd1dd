//! Lowering `ADD`: each source classified as a git repository, a URL or a context path (as
//! BuildKit's `gitutil.ParseGitRef` and `isHTTPSource` decide), `--checksum`, `--unpack`,
//! `--keep-git-dir`, and the flags shared with `COPY`.

use super::copy::Operands;
use super::dispatch::StageBuilder;
use crate::diag::Diagnostic;
use crate::graph::{AddOp, AddSource, Op};
use crate::syntax::{Add, Instruction};

/// A git source: remote, reference (branch, tag, commit) and sub-directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRef {
    /// What `git clone` takes.
    pub remote: String,
    /// `#ref`.
    pub reference: Option<String>,
    /// `#ref:subdir`.
    pub subdir: Option<String>,
}

/// Whether `s` is `user@host:path` (the scp-like syntax git accepts for ssh).
fn is_scp_like(s: &str) -> bool {
    let Some((user, rest)) = s.split_once('@') else { return false };
    let Some((host, _)) = rest.split_once(':') else { return false };
    let user_ok =
        !user.is_empty() && user.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let host_ok =
        !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    user_ok && host_ok
}

/// The scheme of `s` when it starts with `letters-or-digits://`, lower-cased.
fn scheme(s: &str) -> Option<String> {
    let (scheme, _) = s.split_once("://")?;
    (!scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| scheme.to_ascii_lowercase())
}

/// The path part of a URL (between the host and `?`/`#`).
fn url_path(url: &str) -> &str {
    let after = url.split_once("://").map_or(url, |(_, r)| r);
    let end = after.find(['?', '#']).unwrap_or(after.len());
    let after = &after[..end];
    after.find('/').map_or("", |i| &after[i..])
}

/// Parses a git source the way BuildKit does: `scheme://…` with scheme `ssh`, `git`, or
/// `http(s)` when the path ends in `.git`, or scp-like `user@host:path`; an optional
/// `#ref[:subdir]` fragment. `github.com/…` without a scheme and `./`, `../` paths are local.
/// kiln also takes `file://` URLs as git repositories (BuildKit has no use for them).
pub fn git_ref(src: &str) -> Option<GitRef> {
    if src.starts_with("./") || src.starts_with("../") || src.starts_with("github.com/") {
        return None;
    }
    let (remote, fragment) = match src.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (src, None),
    };
    match scheme(src) {
        Some(s) if s == "ssh" || s == "git" || s == "file" => {}
        Some(s) if s == "http" || s == "https" => {
            if !url_path(remote).ends_with(".git") {
                return None;
            }
        }
        Some(_) => return None,
        None if is_scp_like(remote) => {}
        None => return None,
    }
    let (reference, subdir) = match fragment {
        Some(f) => match f.split_once(':') {
            Some((r, d)) => (r, d),
            None => (f, ""),
        },
        None => ("", ""),
    };
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Some(GitRef { remote: remote.to_string(), reference: some(reference), subdir: some(subdir) })
}

/// Whether `src` is downloaded over HTTP (an `http(s)://` URL that is not a git source).
pub(crate) fn is_http(src: &str) -> bool {
    (src.starts_with("http://") || src.starts_with("https://")) && git_ref(src).is_none()
}

/// Decodes `%XX` escapes (Go's `url.Parse` does for the path).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The file name a download is saved as: the last segment of the URL's path, or
/// `__unnamed__` (BuildKit's rule).
pub(crate) fn url_filename(url: &str) -> String {
    let path = percent_decode(url_path(url));
    let trimmed = path.trim_end_matches('/');
    let base = trimmed.rsplit('/').next().unwrap_or("");
    if base.is_empty() || base == "." { "__unnamed__".to_string() } else { base.to_string() }
}

/// Checks a `--checksum` value: `sha256:`, `sha384:` or `sha512:` and that many lower-case hex
/// digits (OCI digest syntax).
pub(crate) fn checksum(v: &str) -> Result<String, String> {
    let Some((algo, hex)) = v.split_once(':') else {
        return Err(format!(
            "{v:?} is not a digest; write ALGORITHM:HEX, like sha256:<64 hex digits>"
        ));
    };
    let len = match algo {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => {
            return Err(format!(
                "unsupported digest algorithm {algo:?}; use sha256, sha384 or sha512"
            ));
        }
    };
    if hex.len() != len || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(format!("a {algo} digest is {len} lower-case hex digits, not {hex:?}"));
    }
    Ok(v.to_string())
}

impl StageBuilder<'_, '_> {
    /// Applies an `ADD` instruction.
    pub fn add(&mut self, instr: &Instruction, a: &Add) -> Result<(), Diagnostic> {
        let e = self.operands(&Operands {
            instr: "ADD",
            chown: &a.chown,
            chmod: &a.chmod,
            exclude: &a.exclude,
            sources: &a.sources,
            dest: &a.dest,
            json: a.json,
        })?;
        let checksum = match &a.checksum {
            Some(f) => {
                let v = self.expand(&f.word(), "ADD")?;
                if v.is_empty() {
                    None
                } else {
                    let sum = checksum(&v)
                        .map_err(|m| self.err(f.span, "ADD", format!("--checksum: {m}")))?;
                    if e.sources.len() + e.inline.len() != 1 {
                        return Err(self.err(
                            f.span,
                            "ADD",
                            "--checksum verifies one download: give exactly one source",
                        ));
                    }
                    Some((sum, f.span))
                }
            }
            None => None,
        };
        let mut sources = Vec::with_capacity(e.sources.len());
        for (src, _) in &e.sources {
            let source = if let Some(g) = git_ref(src) {
                AddSource::Git {
                    remote: g.remote,
                    reference: g.reference,
                    subdir: g.subdir,
                    keep_git_dir: a.keep_git_dir,
                }
            } else if is_http(src) {
                AddSource::Url {
                    url: src.clone(),
                    filename: url_filename(src),
                    checksum: checksum.as_ref().map(|(s, _)| s.clone()),
                }
            } else {
                AddSource::Local { path: src.clone() }
            };
            if let Some((_, span)) = &checksum
                && !matches!(source, AddSource::Url { .. })
            {
                return Err(self.err(
                    *span,
                    "ADD",
                    format!("--checksum only verifies http:// and https:// downloads, not {src:?}"),
                ));
            }
            sources.push(source);
        }
        let (dest, dest_is_dir) = self.destination("ADD", &e, &a.dest)?;
        let texts: Vec<String> = e.sources.iter().map(|(s, _)| s.clone()).collect();
        let created_by = e.history("ADD", false, &texts);
        let op = AddOp {
            sources,
            inline: e.inline,
            dest,
            dest_is_dir,
            chown: e.chown,
            chmod: e.chmod,
            link: a.link,
            exclude: e.exclude,
            unpack: a.unpack,
        };
        self.step(instr, created_by, Some(Op::Add(Box::new(op))));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_refs_like_buildkit() {
        let g = git_ref("https://github.com/moby/buildkit.git#v0.10.1:docs").unwrap();
        assert_eq!(g.remote, "https://github.com/moby/buildkit.git");
        assert_eq!(g.reference.as_deref(), Some("v0.10.1"));
        assert_eq!(g.subdir.as_deref(), Some("docs"));
        let g = git_ref("git@github.com:moby/buildkit.git").unwrap();
        assert_eq!(
            (g.remote.as_str(), g.reference, g.subdir),
            ("git@github.com:moby/buildkit.git", None, None)
        );
        assert!(git_ref("ssh://git@host/repo#main").is_some());
        assert!(git_ref("git://host/repo").is_some());
        assert!(git_ref("https://example.com/archive.tar.gz").is_none());
        assert!(git_ref("https://example.com/x.git?a=b").is_some());
        assert!(git_ref("github.com/moby/buildkit").is_none());
        assert!(git_ref("ftp://host/x.git").is_none());
        let g = git_ref("file:///srv/repo#v1:sub").unwrap();
        assert_eq!(
            (g.remote.as_str(), g.reference.as_deref(), g.subdir.as_deref()),
            ("file:///srv/repo", Some("v1"), Some("sub"))
        );
        assert!(git_ref("./x.git").is_none());
        assert!(git_ref("src/app").is_none());
        assert!(git_ref("c:/x").is_none());
    }

    #[test]
    fn urls_and_names() {
        assert!(is_http("https://example.com/a.tar.gz"));
        assert!(!is_http("https://example.com/a.git"));
        assert!(!is_http("file.txt"));
        assert_eq!(url_filename("https://example.com/dir/a%20b.tgz?x=1#f"), "a b.tgz");
        assert_eq!(url_filename("https://example.com"), "__unnamed__");
        assert_eq!(url_filename("https://example.com/"), "__unnamed__");
        assert_eq!(url_filename("https://example.com/dir/"), "dir");
    }

    #[test]
    fn checksums() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert_eq!(checksum(&good), Ok(good.clone()));
        assert!(checksum("sha256:abc").unwrap_err().contains("64 lower-case hex"));
        assert!(checksum(&format!("md5:{}", "a".repeat(32))).unwrap_err().contains("unsupported"));
        assert!(checksum("abc").unwrap_err().contains("not a digest"));
        assert!(checksum(&format!("sha256:{}", "A".repeat(64))).is_err());
    }
}
