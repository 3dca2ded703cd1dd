//! Lexical path helpers for '/'-separated paths relative to the context root.

/// Go's `path.Clean`: collapses `//`, drops `.`, resolves `..` against what precedes it (a
/// rooted path cannot climb above `/`; a relative one keeps leading `..`), and removes a
/// trailing `/`. The empty path cleans to `.`.
pub(crate) fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// `dir/name`, where the empty `dir` is the context root.
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") }
}

/// The internal form of a path relative to the root: `""` for the root itself.
pub(crate) fn internal(rel: &str) -> &str {
    if rel == "." { "" } else { rel }
}

/// The public form: `"."` for the root itself.
pub(crate) fn public(rel: &str) -> String {
    if rel.is_empty() { ".".to_string() } else { rel.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go_path_clean() {
        let cases = [
            ("", "."),
            (".", "."),
            ("./", "."),
            ("/", "/"),
            ("//", "/"),
            ("abc", "abc"),
            ("abc/", "abc"),
            ("a//b", "a/b"),
            ("a/./b", "a/b"),
            ("a/b/..", "a"),
            ("a/../..", ".."),
            ("../a", "../a"),
            ("../../a/../b", "../../b"),
            ("/../a", "/a"),
            ("/a/../..", "/"),
            ("a/b/../../c/", "c"),
            ("!..", "!.."),
            ("!/", "!"),
            ("**/", "**"),
            ("./*.go", "*.go"),
        ];
        for (input, want) in cases {
            assert_eq!(clean(input), want, "clean({input:?})");
        }
    }

    #[test]
    fn join_and_forms() {
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("a/b", "c"), "a/b/c");
        assert_eq!(internal("."), "");
        assert_eq!(internal("a"), "a");
        assert_eq!(public(""), ".");
        assert_eq!(public("a/b"), "a/b");
    }
}
