//! Lowering `ADD` (local archives, URLs with checksums, git sources), `--chmod` in both forms
//! for `COPY` and `ADD`, and `UndefinedVar` warnings.

mod common;

use common::{history, lower_err, lower_ok, opts, target, warnings};
use kiln_frontend::graph::{AddOp, AddSource, CopyOp, FileMode, Op};

fn last_op(text: &str) -> Op {
    let g = lower_ok(text, &opts());
    target(&g).steps.iter().rev().find_map(|st| st.op.clone()).expect("an op")
}

fn add_op(text: &str) -> AddOp {
    match last_op(text) {
        Op::Add(a) => *a,
        other => panic!("no add op: {other:?}"),
    }
}

fn copy_op(text: &str) -> CopyOp {
    match last_op(text) {
        Op::Copy(c) => *c,
        other => panic!("no copy op: {other:?}"),
    }
}

const SUM: &str = "sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d";

#[test]
fn local_sources_and_flags() {
    let a = add_op(
        "FROM busybox\nWORKDIR /opt\nADD --chown=app:app --chmod=640 --link --exclude=*.md --unpack=false app.tar.gz vendor/ ./\n",
    );
    assert_eq!(
        a.sources,
        [
            AddSource::Local { path: "app.tar.gz".into() },
            AddSource::Local { path: "vendor/".into() }
        ]
    );
    assert_eq!((a.dest.as_str(), a.dest_is_dir), ("/opt", true));
    assert_eq!(a.chown.as_deref(), Some("app:app"));
    assert_eq!(a.chmod, Some(FileMode::Octal { bits: 0o640 }));
    assert!(a.link);
    assert_eq!(a.exclude, ["*.md"]);
    assert_eq!(a.unpack, Some(false));
    assert_eq!(add_op("FROM busybox\nADD a.tar /\n").unpack, None);

    let g = lower_ok("FROM busybox\nADD --chown=1:2 --chmod=u+x --link a b /d/\n", &opts());
    assert_eq!(history(target(&g)), ["ADD --chown=1:2 --chmod=u+x a b /d/"]);
    assert_eq!(target(&g).steps[0].keyword, "ADD");
}

#[test]
fn urls_with_checksums() {
    let a = add_op(&format!(
        "FROM busybox\nADD --checksum={SUM} https://example.com/dl/tool-1.0.tgz?sig=1 /usr/local/\n"
    ));
    assert_eq!(
        a.sources,
        [AddSource::Url {
            url: "https://example.com/dl/tool-1.0.tgz?sig=1".into(),
            filename: "tool-1.0.tgz".into(),
            checksum: Some(SUM.into()),
        }]
    );
    let a = add_op("FROM busybox\nARG V=2\nADD http://example.com/ /x\n");
    assert!(
        matches!(&a.sources[0], AddSource::Url { filename, checksum: None, .. } if filename == "__unnamed__")
    );
}

#[test]
fn git_sources() {
    let a = add_op(
        "FROM busybox\nADD --keep-git-dir=true https://github.com/moby/buildkit.git#v0.10.1:frontend /src\n",
    );
    assert_eq!(
        a.sources,
        [AddSource::Git {
            remote: "https://github.com/moby/buildkit.git".into(),
            reference: Some("v0.10.1".into()),
            subdir: Some("frontend".into()),
            keep_git_dir: true,
        }]
    );
    let a = add_op("FROM busybox\nADD git@github.com:moby/buildkit.git /src\n");
    assert!(matches!(&a.sources[0], AddSource::Git { reference: None, keep_git_dir: false, .. }));
}

#[test]
fn heredoc_sources() {
    let a = add_op("FROM busybox\nARG NAME=kiln\nADD <<EOF /etc/motd\nhello $NAME\nEOF\n");
    assert_eq!(a.inline, [("EOF".to_string(), "hello kiln\n".to_string())]);
    assert!(a.sources.is_empty());
    assert_eq!((a.dest.as_str(), a.dest_is_dir), ("/etc/motd", false));
}

#[test]
fn chmod_octal_and_symbolic() {
    let c = copy_op("FROM busybox\nCOPY --chmod=0755 a /a\n");
    assert_eq!((c.chmod, c.chmod_mode), (Some(0o755), Some(FileMode::Octal { bits: 0o755 })));
    let c = copy_op("FROM busybox\nARG M=u+x,go-w\nCOPY --chmod=$M a /a\n");
    assert_eq!(c.chmod, None);
    let mode = c.chmod_mode.expect("a mode");
    assert_eq!(mode.to_string(), "u+x,go-w");
    assert_eq!((mode.apply(0o666, false), mode.apply(0o644, true)), (0o744, 0o744));
    let g = lower_ok("FROM busybox\nCOPY --chmod=a=rX a /a\n", &opts());
    assert_eq!(history(target(&g)), ["COPY --chmod=a=rX a /a"]);
}

#[test]
fn add_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "FROM busybox\nADD --checksum=sha256:abc https://example.com/a /a\n",
            "Dockerfile:2:5: ADD: --checksum: a sha256 digest is 64 lower-case hex digits, not \"abc\"",
        ),
        (
            "FROM busybox\nADD --checksum=md5:00 https://example.com/a /a\n",
            "Dockerfile:2:5: ADD: --checksum: unsupported digest algorithm \"md5\"; use sha256, sha384 or sha512",
        ),
        (
            &format!("FROM busybox\nADD --checksum={SUM} local.tar /a\n"),
            "Dockerfile:2:5: ADD: --checksum only verifies http:// and https:// downloads, not \"local.tar\"",
        ),
        (
            &format!("FROM busybox\nADD --checksum={SUM} https://e.com/a https://e.com/b /d/\n"),
            "Dockerfile:2:5: ADD: --checksum verifies one download: give exactly one source",
        ),
        (
            "FROM busybox\nADD https://e.com/a https://e.com/b /d\n",
            "Dockerfile:2:37: ADD: several sources are copied, so the destination must be a directory: write \"/d/\" (with a trailing /)",
        ),
        (
            "FROM busybox\nADD --chmod=u+q a /a\n",
            "Dockerfile:2:5: ADD: --chmod=u+q: 'q' is not an operator (+, - or =) in clause \"u+q\"; write an octal mode like 0755 or a symbolic one like u+x, go-w or a=rX",
        ),
    ];
    let mut failures = Vec::new();
    for (input, want) in cases {
        let got = std::panic::catch_unwind(|| lower_err(input, &opts()))
            .unwrap_or_else(|_| "<lowered fine>".into());
        if got != *want {
            failures.push(format!("input {input:?}\n  want {want}\n  got  {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn undefined_variables_warn_like_buildkit() {
    let g = lower_ok(
        "FROM busybox\nENV FOO=1\nCOPY $SRC /x\nLABEL a=$FOOO b=${UNSET:-d}\nARG DECLARED\nWORKDIR /$DECLARED\nRUN echo $NOT_CHECKED\n",
        &opts(),
    );
    assert_eq!(
        warnings(&g),
        [
            "Dockerfile:3:6: warning: COPY: usage of undefined variable $SRC (no ARG or ENV defines it; it expands to an empty string)",
            "Dockerfile:4:9: warning: LABEL: usage of undefined variable $FOOO (did you mean $FOO?)",
            "Dockerfile:4:17: warning: LABEL: usage of undefined variable $UNSET (no ARG or ENV defines it; it expands to an empty string)",
        ]
    );
    let g = lower_ok("# check=skip=UndefinedVar\nFROM busybox\nCOPY $SRC /x\n", &opts());
    assert!(warnings(&g).is_empty());
    let g = lower_ok("FROM busybox\nRUN --mount=type=cache,target=/c$CACHE_DIR true\n", &opts());
    assert_eq!(
        warnings(&g),
        [
            "Dockerfile:2:5: warning: RUN: usage of undefined variable $CACHE_DIR (no ARG or ENV defines it; it expands to an empty string)"
        ]
    );
}
