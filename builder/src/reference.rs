//! Image names as users write them with `-t`: `name[:tag]`, following Docker's grammar.
//!
//! Registry normalization (`busybox` → `docker.io/library/busybox`) belongs to the registry
//! client; the local store keys images by `name:tag` exactly as written, with `latest` added.

use std::fmt;

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
    fn rejects_bad_names() {
        for bad in ["", "Hello", "app:", "app:.x", "-app", "app_", "a/B", "app@sha256:00", "a//b"] {
            assert!(ImageName::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let e = ImageName::parse("Hello").unwrap_err();
        assert!(e.to_string().starts_with("invalid image name \"Hello\": each path component"));
    }
}
