//! Table-driven tests of the ignore rules, derived from the behaviour patternmatcher's and
//! the `ignorefile` reader's tests describe (cases written for kiln).

use super::*;

/// (ignore-file lines, path, excluded?)
type Case = (&'static [&'static str], &'static str, bool);

const CASES: &[Case] = &[
    // --- `*`, `?` and anchoring at the context root
    (&["*"], "file.go", true),
    (&["*"], "sub/file.go", true),
    (&["*.go"], "file.go", true),
    (&["*.go"], "sub/file.go", false),
    (&["*.md"], "README.md", true),
    (&["*.md"], "docs/README.md", false),
    (&["?"], "a", true),
    (&["?"], "ab", false),
    (&["?"], "a/b", true),
    (&["a?c"], "a/c", false),
    (&["abc?def"], "abcZdef", true),
    (&["abc?def"], "abcdef", false),
    (&["abc?def"], "abc/def", false),
    (&["*/*.txt"], "a/b.txt", true),
    (&["*/*.txt"], "a/b/c.txt", false),
    (&["*/*.txt"], "b.txt", false),
    (&["a/*.txt"], "a/file.txt", true),
    (&["a/*.txt"], "a/dir/file.txt", false),
    (&[".*"], ".foo", true),
    (&[".*"], "foo", false),
    (&[".*"], "sub/.foo", false),
    (&["node_modules"], "node_modules/x/y", true),
    (&["node_modules"], "pkg/node_modules", false),
    // --- plain names: exact, and everything beneath
    (&["a/b"], "a", false),
    (&["a/b"], "a/b", true),
    (&["a/b"], "a/bc", false),
    (&["a/b"], "a/b/c", true),
    (&["abc.def"], "abc.def", true),
    (&["abc.def"], "abcdef", false),
    (&["abc.def"], "abcZdef", false),
    (&["a(b)c/def"], "a(b)c/def", true),
    (&["a(b)c/def"], "a(b)c/xyz", false),
    (&["a.|)$(}+{bc"], "a.|)$(}+{bc", true),
    (
        &["dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"],
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        true,
    ),
    (&["dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", true),
    (&["docs"], "docs/README.md", true),
    (&["docs"], "docs", true),
    (&["docs"], "docsx", false),
    // --- `**`
    (&["**"], "file", true),
    (&["**"], "dir/file", true),
    (&["**/"], "file", true),
    (&["**/**"], "dir/file", true),
    (&["***"], "a/b/c", true),
    (&["dir/**"], "dir/file", true),
    (&["dir/**"], "dir/a/b", true),
    (&["dir/**"], "dir", false),
    (&["dir/**"], "dirx/file", false),
    (&["abc/**"], "abc", false),
    (&["abc/**"], "abc/def/ghi", true),
    (&["abc**"], "abcdef", true),
    (&["abc**"], "abc/def", true),
    (&["abc**"], "ab", false),
    (&["**/dir"], "dir", true),
    (&["**/dir"], "a/dir", true),
    (&["**/dir"], "a/dir/file", true),
    (&["**/dir"], "a/xdir", false),
    (&["**/dir"], "adir", false),
    (&["**dir"], "adir", true),
    (&["**dir"], "a/bdir/file", true),
    (&["**a]"], "xa]", false),
    (&["**a]"], "b/a]", true),
    (&["**/dir2/*"], "dir/dir2/file", true),
    (&["**/dir2/*"], "dir2/file", true),
    (&["**/dir2/*"], "dir/dir2", false),
    (&["**/dir2/**"], "dir/dir2/dir3/file", true),
    (&["**/dir2/**"], "dir2", false),
    (&["**file"], "file", true),
    (&["**file"], "dir/file", true),
    (&["**file"], "dir/myfile", true),
    (&["**/file*"], "dir/dir/file.txt", true),
    (&["**/file*txt"], "dir/dir/file.txt", true),
    (&["**/file*txt"], "dir/dir/file.txt.bak", false),
    (&["**/file*.txt*"], "dir/dir/file.txt", true),
    (&["**/*.go"], "file.go", true),
    (&["**/*.go"], "sub/file.go", true),
    (&["**/*.go"], "a/b/c/file.go", true),
    (&["**/*.go"], "a/b/file.txt", false),
    (&["**/**/*.txt"], "file.txt", true),
    (&["**/**/*.txt"], "dir/dir/file.txt", true),
    (&["**/**/*.txt2"], "dir/dir/file.txt", false),
    (&["a**/*.txt"], "a/file.txt", true),
    (&["a**/*.txt"], "a/dir/dir/file.txt", true),
    (&["a**/*.txt"], "abc.txt", true),
    (&["a**/*.txt"], "b/file.txt", false),
    (&["a/*.txt**"], "a/file.txt", true),
    (&["a/*.txt**"], "a/file.txt.bak", true),
    (&["a**b"], "ab", true),
    (&["a**b"], "a/b", true),
    (&["a**b"], "ax/b", true),
    (&["a**b"], "axb", false),
    (&["x/**/y"], "x/y", true),
    (&["x/**/y"], "x/a/b/y", true),
    (&["x/**/y"], "x/ay", false),
    (&["**/foo/bar"], "foo/bar", true),
    (&["**/foo/bar"], "dir/dir2/foo/bar", true),
    (&["**/foo/bar"], "dir/foo/bar/baz", true),
    (&["**/.foo"], ".foo", true),
    (&["**/.foo"], "bar.foo", false),
    (&["**/.git"], ".git/HEAD", true),
    (&["**/.git"], "sub/.git/HEAD", true),
    (&["**/.git"], ".gitignore", false),
    (&["**/node_modules"], "pkg/node_modules/z", true),
    (&["**/node_modules"], "pkg/node_modulesx", false),
    (&["**/temp*"], "temp", true),
    (&["**/temp*"], "a/b/temporary/c", true),
    // --- classes and escapes
    (&["a[b-d]e"], "ace", true),
    (&["a[b-d]e"], "ae", false),
    (&["a[b-d]e"], "aae", false),
    (&["a[^b-d]e"], "aze", true),
    (&["a[^b-d]e"], "ace", false),
    (&["*.[ch]"], "x.c", true),
    (&["*.[ch]"], "x.h", true),
    (&["*.[ch]"], "x.o", false),
    (&["[a-c]*"], "banana", true),
    (&["[a-c]*"], "dog", false),
    (&["[\\]a]x"], "]x", true),
    (&["[x\\-]"], "-", true),
    (&["a\\\\"], "a\\", true),
    (&["a\\*b"], "a*b", true),
    (&["a\\*b"], "axb", false),
    (&["☺*"], "☺face", true),
    (&["a?b"], "a☺b", true),
    (&["[a-ζ]*"], "α", true),
    (&["*[a-ζ]"], "A", false),
    // --- reading: cleaning, slashes, whitespace, comments, BOM, CRLF
    (&["docs/"], "docs/README.md", true),
    (&["/docs"], "docs/x", true),
    (&["./docs"], "docs/x", true),
    (&["docs/../src"], "src/main.rs", true),
    (&["docs/../src"], "docs/x", false),
    (&["docs//api"], "docs/api/x", true),
    (&["/a/b/../c"], "a/c/d", true),
    (&["  docs  "], "docs", true),
    (&["\tdocs"], "docs", true),
    (&["# docs"], "# docs", false),
    (&["# docs"], "docs", false),
    (&[" # docs"], "# docs", true),
    (&["\u{feff}x"], "x", true),
    (&["x\r", "y\r"], "y", true),
    (&["", "   ", "x"], "x", true),
    (&["/"], "a", false),
    (&["."], "a", false),
    (&[".."], "a", false),
    (&["../*"], "a", false),
    (&["*", "!."], "a", true),
    (&["**/*.go"], "sub/", false),
    (&["docs"], "docs/", true),
    // --- exceptions and "last match wins"
    (&["*.go", "!main.go"], "main.go", false),
    (&["*.go", "!main.go"], "util.go", true),
    (&["!main.go", "*.go"], "main.go", true),
    (&["docs", "!docs/README.md"], "docs/README.md", false),
    (&["docs", "!docs/README.md"], "docs/other.md", true),
    (&["docs", "!docs/README.md"], "docs", true),
    (&["docs/", "!docs/README.md"], "docs/README.md", false),
    (&["docs/*", "!docs/README.md"], "docs/README.md", false),
    (&["docs/*", "!docs/README.md"], "docs/a", true),
    (&["**", "!util/docker/web"], "util/docker/web/foo", false),
    (&["**", "!util/docker/web"], "util/docker/other", true),
    (&["**", "!util/docker/web"], "util/docker", true),
    (&["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", true),
    (&["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/bar", false),
    (&["**", "!dist/*.whl"], "dist/x.whl", false),
    (&["**", "!dist/*.whl"], "dist/x.tar.gz", true),
    (&["*", "!keep", "keep/secret"], "keep/a", false),
    (&["*", "!keep", "keep/secret"], "keep/secret/x", true),
    (&["a/b", "!a"], "a/b", false),
    (&["a", "!a/b", "a/b/c"], "a/b/x", false),
    (&["a", "!a/b", "a/b/c"], "a/b/c", true),
    (&["a", "!a/b", "a/b/c"], "a/other", true),
    (&["**/*.log", "!important.log"], "important.log", false),
    (&["**/*.log", "!important.log"], "logs/important.log", true),
    (&["**/*.log", "!**/important.log"], "logs/important.log", false),
    (&["! x"], "x", false),
    (&["*", "! x"], "x", false),
    (&["*", "! x"], "y", true),
    (&["*", "!/x"], "x/y", false),
    (&["!*", "*"], "a", true),
    (&["x", "!x", "x"], "x/y", true),
    (&["x", "!x"], "x/y", false),
    (&["a/**/b", "!a/x/b"], "a/x/b", false),
    (&["a/**/b", "!a/x/b"], "a/y/b", true),
    (&["a/**/b", "!a/x/b"], "a/b", true),
    (&["*", "!*.md"], "README.md", false),
    (&["*", "!*.md"], "docs/README.md", true),
    (&["*", "!docs", "docs/*.tmp"], "docs/a.tmp", true),
    (&["*", "!docs", "docs/*.tmp"], "docs/a.md", false),
    (&["!!x"], "!x", false),
    (&["!!x", "*"], "!x", true),
];

fn rules(lines: &[&str]) -> IgnoreRules {
    IgnoreRules::parse(&lines.join("\n"))
        .unwrap_or_else(|e| panic!("rules {lines:?} should parse: {e}"))
}

#[test]
fn table() {
    assert!(CASES.len() >= 100, "{} cases", CASES.len());
    for &(lines, path, want) in CASES {
        let r = rules(lines);
        assert_eq!(r.is_excluded(path), want, "rules {lines:?}, path {path:?}");
        // The walker's incremental answers agree with the one-shot answer.
        assert_eq!(
            r.state_of(path).is_excluded(),
            want,
            "state_of: rules {lines:?}, path {path:?}"
        );
        let trimmed = path.trim_end_matches('/');
        let parent = trimmed.rsplit_once('/').map_or("", |(p, _)| p);
        let parent_state = r.state_of(parent);
        assert_eq!(
            r.is_excluded_in(&parent_state, trimmed),
            want,
            "is_excluded_in: {lines:?} {path:?}"
        );
        assert_eq!(r.excluded_by(path).is_some(), want, "excluded_by: {lines:?} {path:?}");
    }
}

#[test]
fn the_root_is_never_excluded() {
    for lines in [&["*"][..], &["**"], &["."], &["/"]] {
        let r = rules(lines);
        assert!(!r.is_excluded(""), "{lines:?}");
        assert!(!r.is_excluded("."), "{lines:?}");
        assert!(!r.root_state().is_excluded());
    }
}

#[test]
fn bad_patterns_name_their_line() {
    let cases: &[(&str, &str)] = &[
        ("!", "line 1: invalid pattern \"!\": `!` must be followed by a pattern"),
        ("  !  ", "line 1: invalid pattern \"!\": `!` must be followed by a pattern"),
        ("!/", "line 1: invalid pattern \"!/\": `!` must be followed by a pattern"),
        ("ok\n[", "line 2: invalid pattern \"[\": character class `[` is not closed by `]`"),
        ("a\n\n# c\nb\\", "line 4: invalid pattern \"b\\\\\": the pattern ends with a lone `\\`"),
        (
            "x\r\n[z-a]\r\n",
            "line 2: invalid pattern \"[z-a]\": character range `z-a` is out of order",
        ),
        (
            "[]a]",
            "line 1: invalid pattern \"[]a]\": `]` must be escaped with `\\` at this place in a character class",
        ),
        (
            "a[^]",
            "line 1: invalid pattern \"a[^]\": `]` must be escaped with `\\` at this place in a character class",
        ),
        (
            "docs/[a-",
            "line 1: invalid pattern \"docs/[a-\": character class `[` is not closed by `]`",
        ),
    ];
    for (text, want) in cases {
        let err = IgnoreRules::parse(text).expect_err(text);
        assert_eq!(err.to_string(), *want, "{text:?}");
    }
    let err = IgnoreRules::parse("a\nb\n!").expect_err("lone !");
    assert_eq!(err.line, 3);
    assert_eq!(err.reason, PatternError::LoneExclamation);
}

#[test]
fn patterns_keep_their_cleaned_text_line_and_kind() {
    let r = rules(&["# comment", "", "/build/", "!build/keep.txt ", "  **/*.tmp"]);
    let seen: Vec<(String, bool, usize)> =
        r.patterns().iter().map(|p| (p.to_string(), p.is_exception(), p.line())).collect();
    assert_eq!(
        seen,
        vec![
            ("build".to_string(), false, 3),
            ("!build/keep.txt".to_string(), true, 4),
            ("**/*.tmp".to_string(), false, 5),
        ]
    );
    assert_eq!(r.patterns()[1].text(), "build/keep.txt");
    assert!(r.has_exceptions());
    assert!(!IgnoreRules::empty().has_exceptions());
    assert!(IgnoreRules::empty().is_empty());
    assert_eq!(r.excluded_by("build/x").map(|p| p.line()), Some(3));
    assert!(r.excluded_by("build/keep.txt").is_none());
    assert_eq!(r.excluded_by("a/b.tmp").map(Pattern::text), Some("**/*.tmp"));
}

#[test]
fn pruning_excluded_directories() {
    // (rules, excluded directory, could an exception re-include something beneath it?)
    let cases: &[(&[&str], &str, bool)] = &[
        (&["a"], "a", false),
        (&["a", "!a/b"], "a", true),
        (&["a", "!a/b"], "a/c", false),
        (&["a", "!a/b/c"], "a/b", true),
        (&["a", "!**/keep"], "a", true),
        (&["a", "!a/*.md"], "a", true),
        (&["a", "!a/*.md"], "a/sub", false),
        (&["!a/b", "a"], "a", false),
        (&["*", "!x*"], "y", false),
        (&["*", "!x*/z"], "xy", true),
        (&["*", "!abc**"], "ab", false),
        (&["*", "!ab/c**"], "ab", true),
        (&["node_modules", "!node_modules/.keep", "node_modules"], "node_modules", false),
        (&["lib", "!lib/**/*.o"], "lib", true),
        (&["lib", "!lib/**/*.o"], "lib/x", true),
        (&["lib", "!src/**/*.o"], "lib", false),
        (&["build", "!build/[a-c]*/out"], "build", true),
        (&["build", "!build/[a-c]*/out"], "build/d", false),
        (&["build", "!build/[a-c]*/out"], "build/b", true),
    ];
    for &(lines, dir, want) in cases {
        let r = rules(lines);
        let state = r.state_of(dir);
        assert!(state.is_excluded(), "{dir} should be excluded by {lines:?}");
        assert_eq!(r.may_reinclude_under(&state, dir), want, "rules {lines:?}, dir {dir:?}");
    }
}

#[test]
fn pruning_never_hides_a_reincluded_path() {
    // For every (rules, path) in the table that is not excluded, no excluded ancestor may
    // claim that nothing beneath it can be re-included.
    for &(lines, path, excluded) in CASES {
        if excluded {
            continue;
        }
        let r = rules(lines);
        let path = path.trim_end_matches('/');
        for (i, _) in path.match_indices('/') {
            let dir = &path[..i];
            let state = r.state_of(dir);
            if state.is_excluded() {
                assert!(r.may_reinclude_under(&state, dir), "{lines:?}: {dir} pruned, {path} lost");
            }
        }
    }
}
