//! Slash-separated path handling with Go's `path.Clean` rules (image paths are always `/`).

/// Go's `path.Clean`: shortest equivalent path, `.` for an empty one.
pub(crate) fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// The absolute, clean path `p` names when the current directory is `dir` (BuildKit's
/// `NormalizeWorkdir` and the directory part of `NormalizePath`).
pub(crate) fn resolve(dir: &str, p: &str) -> String {
    if p.starts_with('/') { clean(p) } else { clean(&format!("/{dir}/{p}")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go() {
        let cases = [
            ("", "."),
            ("/", "/"),
            ("a/b/../c", "a/c"),
            ("/../a", "/a"),
            ("../a", "../a"),
            ("a/..", "."),
            ("//a//b/", "/a/b"),
            ("/a/./b/.", "/a/b"),
        ];
        for (input, want) in cases {
            assert_eq!(clean(input), want, "{input}");
        }
        assert_eq!(resolve("/app", "src"), "/app/src");
        assert_eq!(resolve("/app", "/etc/"), "/etc");
        assert_eq!(resolve("", "x"), "/x");
        assert_eq!(resolve("/app", ".."), "/");
        assert_eq!(resolve("/app", ""), "/app");
    }
}
