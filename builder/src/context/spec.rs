//! Where a build context comes from: a directory (read in place), `-` (a tar archive or a
//! Dockerfile on stdin), a local tar archive, a URL (a tar archive, or a Dockerfile as plain
//! text) or a git repository; and `--build-context NAME=VALUE`. Archives are extracted with
//! kiln's safe extractor into a temporary directory under the kiln root, removed afterwards.

use std::fs::File;
use std::io::{Cursor, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use kiln_frontend::lower::{GitRef, NamedContext, parse_git_ref};
use tempfile::TempDir;

use super::compress::{ArchiveCompression, decompress, is_tar_header};
use super::scratch::Scratch;
use super::{ContextError, git, http};

/// A git repository as a context: remote, reference and sub-directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource {
    /// What `git clone` takes.
    pub remote: String,
    /// Branch, tag or commit (`None`: the remote's `HEAD`).
    pub reference: Option<String>,
    /// The sub-directory that is the context (`None`: the repository's root).
    pub subdir: Option<String>,
}

/// Where a build context comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextSource {
    /// A directory, read in place.
    Dir(PathBuf),
    /// `-`: a tar archive (plain or compressed) or a Dockerfile, on stdin.
    Stdin,
    /// A local tar archive (plain, gzip, bzip2, xz or zstd).
    Tarball(PathBuf),
    /// An `http(s)://` URL of a tar archive (or of a Dockerfile, for the main context).
    Url(String),
    /// A git repository (`https://host/repo.git#ref:dir`, `git@host:repo`, `git://`, `ssh://`,
    /// `file://`, `github.com/owner/repo`).
    Git(GitSource),
}

impl ContextSource {
    /// Interprets a context argument as `docker build` does (plus local tar archives and
    /// `file://` repositories).
    pub fn parse(value: &str) -> ContextSource {
        if value == "-" {
            return ContextSource::Stdin;
        }
        if let Some(rest) = value.strip_prefix("github.com/") {
            // `docker build github.com/owner/repo#ref:dir` means the https remote.
            let (repo, fragment) = match rest.split_once('#') {
                Some((r, f)) => (r, Some(f)),
                None => (rest, None),
            };
            let (reference, subdir) = match fragment.map(|f| f.split_once(':').unwrap_or((f, ""))) {
                Some((r, d)) => (non_empty(r), non_empty(d)),
                None => (None, None),
            };
            let remote = format!("https://github.com/{repo}");
            return ContextSource::Git(GitSource { remote, reference, subdir });
        }
        if let Some(g) = parse_git_ref(value) {
            let GitRef { remote, reference, subdir } = g;
            return ContextSource::Git(GitSource { remote, reference, subdir });
        }
        if value.starts_with("http://") || value.starts_with("https://") {
            return ContextSource::Url(value.to_string());
        }
        let path = PathBuf::from(value);
        if path.is_file() { ContextSource::Tarball(path) } else { ContextSource::Dir(path) }
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// A context made ready to read: its directory, and a Dockerfile when the source was one.
#[derive(Debug)]
pub struct PreparedContext {
    /// The context directory.
    pub dir: PathBuf,
    /// The Dockerfile's text, when the source was a Dockerfile (stdin or URL) rather than a
    /// context: the context is then empty.
    pub dockerfile: Option<String>,
    /// The temporary directory holding an extracted or fetched context.
    temp: Option<TempDir>,
}

impl Drop for PreparedContext {
    fn drop(&mut self) {
        if let Some(t) = &self.temp {
            make_removable(t.path());
        }
    }
}

/// Gives the owner write and search permission on every directory under `dir`, so that a
/// context extracted with read-only directories can be removed by a user that is not root.
fn make_removable(dir: &Path) {
    let Ok(meta) = std::fs::symlink_metadata(dir) else { return };
    if !meta.is_dir() {
        return;
    }
    let mode = meta.permissions().mode();
    if mode & 0o700 != 0o700 {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o700));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                make_removable(&e.path());
            }
        }
    }
}

impl PreparedContext {
    /// Makes `source` readable as a directory; temporary directories go under `scratch_parent`
    /// (the kiln root's `tmp/`). `stdin` is read for [`ContextSource::Stdin`].
    pub fn prepare(
        source: &ContextSource,
        scratch_parent: &Path,
        stdin: &mut dyn Read,
    ) -> Result<PreparedContext, ContextError> {
        let scratch = Scratch::new(scratch_parent);
        let temp = |prefix: &str| {
            scratch
                .owned_dir(prefix)
                .map_err(|source| ContextError::Io { path: scratch_parent.to_path_buf(), source })
        };
        match source {
            ContextSource::Dir(dir) => {
                Ok(PreparedContext { dir: dir.clone(), dockerfile: None, temp: None })
            }
            ContextSource::Stdin => {
                let t = temp("context-stdin-")?;
                let text = unpack_or_text(stdin, t.path(), "from stdin")?;
                Ok(PreparedContext { dir: t.path().to_path_buf(), dockerfile: text, temp: Some(t) })
            }
            ContextSource::Tarball(path) => {
                let what = path.display().to_string();
                let file = File::open(path)
                    .map_err(|source| ContextError::Root { path: path.clone(), source })?;
                let t = temp("context-tar-")?;
                if unpack_or_text(file, t.path(), &what)?.is_some() {
                    return Err(ContextError::Archive {
                        what,
                        reason: "is neither a directory nor a tar archive (plain, gzip, bzip2, \
                                 xz or zstd)"
                            .into(),
                    });
                }
                Ok(PreparedContext { dir: t.path().to_path_buf(), dockerfile: None, temp: Some(t) })
            }
            ContextSource::Url(url) => {
                let download = temp("context-download-")?;
                let file = download.path().join("download");
                let (probe, _) = http::fetch(url, &file, None, None)?;
                let http::Probe::Fetched(d) = probe else {
                    return Err(ContextError::Archive {
                        what: url.clone(),
                        reason: "the server sent no content".into(),
                    });
                };
                let reader = File::open(&d.path)
                    .map_err(|source| ContextError::Io { path: d.path.clone(), source })?;
                let t = temp("context-url-")?;
                let text = unpack_or_text(reader, t.path(), url)?;
                Ok(PreparedContext { dir: t.path().to_path_buf(), dockerfile: text, temp: Some(t) })
            }
            ContextSource::Git(g) => {
                let t = temp("context-git-")?;
                let checkout = git::fetch(&g.remote, g.reference.as_deref(), t.path())?;
                let git_dir = checkout.dir.join(".git");
                std::fs::remove_dir_all(&git_dir)
                    .map_err(|source| ContextError::Io { path: git_dir, source })?;
                let dir = match &g.subdir {
                    Some(sub) => {
                        let clean = super::paths::clean(sub);
                        if clean.starts_with("..") || clean.starts_with('/') {
                            return Err(ContextError::SourceOutsideContext {
                                source_path: sub.clone(),
                            });
                        }
                        checkout.dir.join(clean)
                    }
                    None => checkout.dir.clone(),
                };
                if !dir.is_dir() {
                    return Err(ContextError::RootNotDirectory { path: dir });
                }
                Ok(PreparedContext { dir, dockerfile: None, temp: Some(t) })
            }
        }
    }
}

/// Extracts the tar archive `reader` carries into `dir` and returns `None`; when the stream is
/// not compressed and does not start with a tar header, returns it as text (a Dockerfile).
fn unpack_or_text(
    mut reader: impl Read,
    dir: &Path,
    what: &str,
) -> Result<Option<String>, ContextError> {
    let io = |source| ContextError::Io { path: PathBuf::from(what), source };
    let mut head = Vec::with_capacity(512);
    reader.by_ref().take(512).read_to_end(&mut head).map_err(io)?;
    let compressed = ArchiveCompression::detect(&head) != ArchiveCompression::None;
    let stream = Cursor::new(head.clone()).chain(reader);
    if !compressed && !is_tar_header(&head) {
        let mut bytes = head;
        let mut rest = stream;
        bytes.clear();
        rest.read_to_end(&mut bytes).map_err(io)?;
        return match String::from_utf8(bytes) {
            Ok(text) => Ok(Some(text)),
            Err(_) => Err(ContextError::Archive {
                what: what.to_string(),
                reason: "is neither a tar archive (plain, gzip, bzip2, xz or zstd) nor a \
                         Dockerfile"
                    .into(),
            }),
        };
    }
    extract_tar(stream, dir, what)?;
    Ok(None)
}

/// Extracts a (possibly compressed) tar stream into the empty directory `dir` with kiln's
/// extractor: nothing is written outside `dir`.
pub fn extract_tar(reader: impl Read, dir: &Path, what: &str) -> Result<(), ContextError> {
    let archive_error = |reason: String| ContextError::Archive { what: what.to_string(), reason };
    let (_, decoded) = decompress(reader).map_err(|e| archive_error(e.to_string()))?;
    kiln_cache::snapshot::extract_layer(
        decoded,
        kiln_cache::layer::MEDIA_TYPE_TAR,
        dir,
        None,
        &Default::default(),
    )
    .map_err(|e| archive_error(e.to_string()))?;
    Ok(())
}

/// What `--build-context NAME=VALUE` gives NAME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedSource {
    /// Files: a directory, tar archive, URL of one, or git repository.
    Files(ContextSource),
    /// `docker-image://REF`: an image, resolved like a `FROM` image.
    Image(String),
    /// `oci-layout://PATH[:TAG|@DIGEST]`: an image in an OCI layout on disk (the reference
    /// keeps its prefix: the resolver reads such references).
    OciLayout(String),
    /// `target:STAGE`: another stage of the Dockerfile.
    Stage(String),
}

impl NamedSource {
    /// Parses `NAME=VALUE`.
    pub fn parse(spec: &str) -> Result<(String, NamedSource), ContextError> {
        let bad = |reason: &str| ContextError::NamedSpec {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (name, value) = spec.split_once('=').ok_or_else(|| bad("write NAME=VALUE"))?;
        if name.is_empty() || value.is_empty() {
            return Err(bad("write NAME=VALUE; neither may be empty"));
        }
        if name.eq_ignore_ascii_case("scratch") || name.eq_ignore_ascii_case("context") {
            return Err(bad("\"scratch\" and \"context\" are reserved names"));
        }
        let source = if let Some(r) = value.strip_prefix("docker-image://") {
            if r.is_empty() {
                return Err(bad("docker-image:// needs an image reference"));
            }
            NamedSource::Image(r.to_string())
        } else if value.starts_with("oci-layout://") {
            NamedSource::OciLayout(value.to_string())
        } else if let Some(stage) = value.strip_prefix("target:") {
            NamedSource::Stage(stage.to_string())
        } else if value == "-" {
            return Err(bad("a named context cannot be read from stdin"));
        } else {
            NamedSource::Files(ContextSource::parse(value))
        };
        Ok((name.to_string(), source))
    }

    /// What the frontend needs to know about it.
    pub fn for_lowering(&self) -> NamedContext {
        match self {
            NamedSource::Files(_) => NamedContext::Files,
            NamedSource::Image(r) | NamedSource::OciLayout(r) => NamedContext::Image(r.clone()),
            NamedSource::Stage(s) => NamedContext::Stage(s.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_arguments() {
        assert_eq!(ContextSource::parse("-"), ContextSource::Stdin);
        assert_eq!(
            ContextSource::parse("https://example.com/r.git#main:sub"),
            ContextSource::Git(GitSource {
                remote: "https://example.com/r.git".into(),
                reference: Some("main".into()),
                subdir: Some("sub".into()),
            })
        );
        assert_eq!(
            ContextSource::parse("github.com/o/r#v1"),
            ContextSource::Git(GitSource {
                remote: "https://github.com/o/r".into(),
                reference: Some("v1".into()),
                subdir: None,
            })
        );
        assert!(matches!(ContextSource::parse("file:///srv/r"), ContextSource::Git(_)));
        assert_eq!(
            ContextSource::parse("https://example.com/c.tgz"),
            ContextSource::Url("https://example.com/c.tgz".into())
        );
        assert_eq!(ContextSource::parse("no/such/dir"), ContextSource::Dir("no/such/dir".into()));
    }

    #[test]
    fn named_values() {
        let (n, s) = NamedSource::parse("base=docker-image://alpine:3").unwrap();
        assert_eq!((n.as_str(), s), ("base", NamedSource::Image("alpine:3".into())));
        let (_, s) = NamedSource::parse("x=oci-layout:///l:t").unwrap();
        assert_eq!(s, NamedSource::OciLayout("oci-layout:///l:t".into()));
        let (_, s) = NamedSource::parse("x=target:build").unwrap();
        assert_eq!(s, NamedSource::Stage("build".into()));
        assert!(NamedSource::parse("novalue").is_err());
        assert!(NamedSource::parse("=x").is_err());
        assert!(NamedSource::parse("scratch=/tmp").is_err());
        assert!(NamedSource::parse("x=-").is_err());
    }
}
