//! Image names and references, following Docker's grammar.
//!
//! - [`ImageName`]: `name[:tag]` as users write it with `-t`. The local store keys images by
//!   this form exactly as written, with `latest` added (`hello` → `hello:latest`).
//! - [`Reference`]: a fully qualified registry reference with Docker's normalization
//!   (`busybox` → `docker.io/library/busybox:latest`, `localhost:5000/a:1`, `name@sha256:…`,
//!   `name:tag@digest`). Images pulled from a registry are stored under
//!   [`Reference::to_string`], their fully qualified form.
//!
//! Short names (no registry host) are qualified through `registries.conf` by
//! [`crate::registry::conf`]; [`Reference::parse`] alone applies Docker's default (`docker.io`).

use std::fmt;

use kiln_cache::digest::Digest;

/// A parsed `name[:tag]` (an optional `@digest` is kept but not used for tagging).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageName {
    /// Repository path, possibly with a registry host (`localhost:5000/app`).
    pub repository: String,
    /// Tag; `latest` when none was written.
    pub tag: String,
}

/// Why a name is not a valid image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image name {name:?}: {reason}")]
pub struct NameError {
    /// The name as given.
    pub name: String,
    /// What rule it breaks.
    pub reason: &'static str,
}

impl ImageName {
    /// Parses `name[:tag]`.
    pub fn parse(name: &str) -> Result<ImageName, NameError> {
        let err = |reason| NameError { name: name.to_string(), reason };
        if name.is_empty() {
            return Err(err("the name is empty"));
        }
        if name.contains('@') {
            return Err(err("a digest cannot be used as a tag"));
        }
        // A ':' after the last '/' separates the tag; one before it is a registry port.
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], &name[last_slash + i + 1..]),
            None => (name, "latest"),
        };
        validate_repository(repository).map_err(err)?;
        validate_tag(tag).map_err(err)?;
        Ok(ImageName { repository: repository.to_string(), tag: tag.to_string() })
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.repository, self.tag)
    }
}

/// Docker Hub's canonical registry name.
pub const DOCKER_HUB: &str = "docker.io";

/// A registry reference, normalized: registry host, repository path, tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host with optional port (`docker.io`, `127.0.0.1:5000`, `[::1]:5000`).
    pub registry: String,
    /// Repository path inside the registry (`library/busybox`, `org/app`).
    pub repository: String,
    /// The tag; `latest` is filled in when neither a tag nor a digest was written.
    pub tag: Option<String>,
    /// The digest, when the reference pins one (it wins over the tag when fetching).
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses `[host[:port]/]path[:tag][@digest]` with Docker's normalization: no host means
    /// `docker.io`, a one-component path on Docker Hub gets `library/`, `index.docker.io` is
    /// `docker.io`, and `latest` is the tag when neither tag nor digest is given.
    pub fn parse(input: &str) -> Result<Reference, NameError> {
        let err = |reason| NameError { name: input.to_string(), reason };
        let parts = split_reference(input).map_err(err)?;
        let (registry, path) = match parts.domain {
            Some(d) => (d.to_string(), parts.path.to_string()),
            None => (DOCKER_HUB.to_string(), parts.path.to_string()),
        };
        Reference::from_parts(&registry, &path, parts.tag, parts.digest).map_err(err)
    }

    /// Builds a reference from a registry, a path and an optional tag/digest, normalizing the
    /// Docker Hub names (`index.docker.io` → `docker.io`, `busybox` → `library/busybox`).
    pub fn from_parts(
        registry: &str,
        path: &str,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> Result<Reference, &'static str> {
        validate_host(registry)?;
        let registry = if registry == "index.docker.io" {
            DOCKER_HUB.to_string()
        } else {
            registry.to_string()
        };
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        validate_path(&repository)?;
        if registry.len() + 1 + repository.len() > 255 {
            return Err("the name is longer than 255 characters");
        }
        if let Some(t) = tag {
            validate_tag(t)?;
        }
        let digest = match digest {
            Some(d) => Some(d.parse::<Digest>().map_err(|_| {
                "a digest is sha256: followed by 64 lower-case hex digits (other algorithms are not supported)"
            })?),
            None => None,
        };
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference { registry, repository, tag, digest })
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What to ask the registry for: the digest when pinned, else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The same repository with another tag (and no digest).
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference { tag: Some(tag.to_string()), digest: None, ..self.clone() }
    }

    /// The same repository pinned to `digest` (the tag is dropped).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference { tag: None, digest: Some(digest), ..self.clone() }
    }

    /// Docker's short display form: `docker.io/library/` and `docker.io/` are left out.
    pub fn familiar(&self) -> String {
        let name = if self.registry == DOCKER_HUB {
            self.repository.strip_prefix("library/").unwrap_or(&self.repository).to_string()
        } else {
            self.name()
        };
        let mut out = name;
        if let Some(t) = &self.tag {
            out.push(':');
            out.push_str(t);
        }
        if let Some(d) = &self.digest {
            out.push('@');
            out.push_str(&d.to_string());
        }
        out
    }
}

impl fmt::Display for Reference {
    /// The fully qualified form: `registry/repository[:tag][@digest]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// A reference split as written, before any registry is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefParts<'a> {
    /// The registry host, when the first component is one (has `.` or `:`, or is `localhost`).
    pub domain: Option<&'a str>,
    /// The repository path (without the host).
    pub path: &'a str,
    /// The tag, if written.
    pub tag: Option<&'a str>,
    /// The digest text, if written (not yet validated).
    pub digest: Option<&'a str>,
}

/// Splits a reference as written into host, path, tag and digest (Docker's rules for what
/// counts as a host). Only the shape is checked here; [`Reference::from_parts`] validates.
pub fn split_reference(input: &str) -> Result<RefParts<'_>, &'static str> {
    if input.is_empty() {
        return Err("the name is empty");
    }
    let (rest, digest) = match input.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (input, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    let (domain, path) = match name.split_once('/') {
        Some((first, path)) if is_domain(first) => (Some(first), path),
        _ => (None, name),
    };
    if path.is_empty() {
        return Err("the repository path is empty");
    }
    Ok(RefParts { domain, path, tag, digest })
}

/// Docker's rule: a first component is a registry host when it has a `.` or a `:`, is
/// `localhost`, or has upper-case letters (which a path component cannot have).
fn is_domain(first: &str) -> bool {
    first.contains('.')
        || first.contains(':')
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase())
}

/// Checks `host[:port]`: DNS labels or an IPv4 address, or `[IPv6]`, then an optional port.
fn validate_host(host: &str) -> Result<(), &'static str> {
    const BAD: &str = "the registry host is not host[:port]";
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => {
            let (v6, after) = rest.split_once(']').ok_or(BAD)?;
            let v6_ok =
                !v6.is_empty() && v6.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
            if !v6_ok {
                return Err(BAD);
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or(BAD)?),
            };
            (None, port)
        }
        None => match host.rsplit_once(':') {
            Some((n, p)) => (Some(n), Some(p)),
            None => (Some(host), None),
        },
    };
    if let Some(p) = port
        && (p.is_empty() || p.len() > 5 || !p.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(BAD);
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    match name {
        Some(n) if !n.split('.').all(label_ok) => Err(BAD),
        _ => Ok(()),
    }
}

fn validate_path(path: &str) -> Result<(), &'static str> {
    if path.split('/').all(valid_path_component) {
        Ok(())
    } else {
        Err(
            "each path component is lower-case letters and digits, separated by '.', '_', '__' or '-'",
        )
    }
}

fn validate_tag(tag: &str) -> Result<(), &'static str> {
    let ok_first = tag.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let ok_rest = tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if tag.is_empty() || tag.len() > 128 || !ok_first || !ok_rest {
        return Err("a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'");
    }
    Ok(())
}

fn validate_repository(repo: &str) -> Result<(), &'static str> {
    let mut parts = repo.split('/').peekable();
    // A first component with '.', ':' or equal to localhost is a registry host.
    if let Some(first) = parts.peek() {
        let is_host = repo.contains('/')
            && (first.contains('.') || first.contains(':') || *first == "localhost");
        if is_host {
            let host_ok = first
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
            if !host_ok {
                return Err("the registry host has characters a host name cannot have");
            }
            parts.next();
        }
    }
    for part in parts {
        if !valid_path_component(part) {
            return Err(
                "each path component is lower-case letters and digits, separated by '.', '_', '__' or '-'",
            );
        }
    }
    Ok(())
}

fn valid_path_component(part: &str) -> bool {
    let bytes = part.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A separator: '.', '_', '__' or one or more '-'.
        let sep_start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &part[sep_start..i];
        let dashes = sep.bytes().all(|b| b == b'-');
        if !(sep == "." || sep == "_" || sep == "__" || dashes) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_tags() {
        let cases = [
            ("hello", "hello", "latest"),
            ("hello:1", "hello", "1"),
            ("org/app:v1.2-rc_3", "org/app", "v1.2-rc_3"),
            ("localhost:5000/app", "localhost:5000/app", "latest"),
            ("localhost:5000/app:7", "localhost:5000/app", "7"),
            ("my.registry/a/b__c:x", "my.registry/a/b__c", "x"),
            ("a--b", "a--b", "latest"),
        ];
        for (input, repo, tag) in cases {
            let n = ImageName::parse(input).unwrap();
            assert_eq!((n.repository.as_str(), n.tag.as_str()), (repo, tag), "{input}");
        }
    }

    #[test]
    fn references_are_normalized_as_docker_does() {
        let sha = format!("sha256:{}", "ab".repeat(32));
        let cases: Vec<(String, &str)> = vec![
            ("busybox".into(), "docker.io/library/busybox:latest"),
            ("busybox:1.36".into(), "docker.io/library/busybox:1.36"),
            ("org/app".into(), "docker.io/org/app:latest"),
            ("docker.io/busybox".into(), "docker.io/library/busybox:latest"),
            ("index.docker.io/library/busybox:1".into(), "docker.io/library/busybox:1"),
            ("localhost/app".into(), "localhost/app:latest"),
            ("localhost:5000/a/b:7".into(), "localhost:5000/a/b:7"),
            ("127.0.0.1:5000/app".into(), "127.0.0.1:5000/app:latest"),
            ("[::1]:5000/app:x".into(), "[::1]:5000/app:x"),
            ("quay.io/org/app:v1.2".into(), "quay.io/org/app:v1.2"),
            ("Registry.Example/app".into(), "Registry.Example/app:latest"),
            (format!("busybox@{sha}"), "docker.io/library/busybox@SHA"),
            (format!("busybox:1@{sha}"), "docker.io/library/busybox:1@SHA"),
        ];
        for (input, want) in cases {
            let r = Reference::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), want.replace("SHA", &sha), "{input}");
        }
        let r = Reference::parse(&format!("busybox:1@{sha}")).unwrap();
        assert_eq!(r.manifest_ref(), sha);
        assert_eq!(r.familiar(), format!("busybox:1@{sha}"));
        assert_eq!(r.name(), "docker.io/library/busybox");
        let r = Reference::parse("localhost:5000/app").unwrap();
        assert_eq!((r.registry.as_str(), r.repository.as_str()), ("localhost:5000", "app"));
        assert_eq!(r.familiar(), "localhost:5000/app:latest");
        assert_eq!(r.manifest_ref(), "latest");
    }

    #[test]
    fn bad_references_say_why() {
        let cases = [
            ("", "the name is empty"),
            ("app:", "a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'"),
            (
                "Registry.Example",
                "each path component is lower-case letters and digits, separated by '.', '_', '__' or '-'",
            ),
            (
                "a/B",
                "each path component is lower-case letters and digits, separated by '.', '_', '__' or '-'",
            ),
            ("host:99999999/app", "the registry host is not host[:port]"),
            ("-bad.io/app", "the registry host is not host[:port]"),
            ("[zz]:1/app", "the registry host is not host[:port]"),
            (
                "app@sha256:00",
                "a digest is sha256: followed by 64 lower-case hex digits (other algorithms are not supported)",
            ),
            ("localhost:5000/", "the repository path is empty"),
        ];
        for (input, reason) in cases {
            let e = Reference::parse(input).unwrap_err();
            assert_eq!(e.reason, reason, "{input:?}");
        }
    }

    #[test]
    fn split_reference_keeps_what_was_written() {
        let p = split_reference("busybox:1").unwrap();
        assert_eq!((p.domain, p.path, p.tag, p.digest), (None, "busybox", Some("1"), None));
        let p = split_reference("my.reg:5000/a/b").unwrap();
        assert_eq!((p.domain, p.path, p.tag), (Some("my.reg:5000"), "a/b", None));
        let p = split_reference("a/b@sha256:x").unwrap();
        assert_eq!((p.domain, p.path, p.digest), (None, "a/b", Some("sha256:x")));
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["", "Hello", "app:", "app:.x", "-app", "app_", "a/B", "app@sha256:00", "a//b"] {
            assert!(ImageName::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let e = ImageName::parse("Hello").unwrap_err();
        assert!(e.to_string().starts_with("invalid image name \"Hello\": each path component"));
    }
}
