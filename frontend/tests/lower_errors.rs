//! Every lowering error, with its exact `file:line:col: INSTR: message` text.

mod common;

use common::{lower_err, lower_ok, opts, opts_args, opts_target};
use kiln_frontend::lower::LowerOptions;

const CASES: &[(&str, &str)] = &[
    // Structure.
    (
        "ENV A=1\nFROM busybox\n",
        "Dockerfile:1:1: ENV: ENV comes before the first FROM; only ARG may come before FROM (add a FROM line above it)",
    ),
    (
        "ARG A=1\n",
        "Dockerfile:1:1: no FROM instruction: a build needs at least one FROM line (only ARG may come before it)",
    ),
    // Base images.
    (
        "FROM nosuch:1\n",
        "Dockerfile:1:6: FROM: image \"nosuch:1\" not found: no such image in the local store (nosuch:1)",
    ),
    (
        "FROM later\nFROM busybox AS later\nFROM scratch\nCOPY --from=0 / /\n",
        "Dockerfile:1:6: FROM: image \"later\" not found: no such image in the local store (later); stage \"later\" is defined later (line 2), and a stage can only build on stages above it",
    ),
    (
        "ARG IMG\nFROM $IMG\n",
        "Dockerfile:2:6: FROM: the base image \"$IMG\" expands to an empty string; give the ARG a default before the first FROM (ARG NAME=image) or pass --build-arg NAME=image",
    ),
    (
        "FROM --platform=linux/amd64/v2/x busybox\n",
        "Dockerfile:1:6: FROM: invalid platform \"linux/amd64/v2/x\": write os/arch[/variant], like linux/amd64 or linux/arm/v7",
    ),
    (
        "ARG P\nFROM --platform=$P busybox\n",
        "Dockerfile:2:6: FROM: --platform=$P expands to an empty platform",
    ),
    // COPY --from.
    (
        "FROM scratch\nCOPY --from=nosuch /a /a\n",
        "Dockerfile:2:6: COPY: image \"nosuch\" not found: no such image in the local store (nosuch)",
    ),
    (
        "FROM scratch\nCOPY --from=3 /a /a\n",
        "Dockerfile:2:6: COPY: --from=3: there is no stage 3; stages are numbered from 0 to 0",
    ),
    (
        "FROM busybox AS a\nFROM scratch\nCOPY --from=-1 /a /a\n",
        "Dockerfile:3:6: COPY: --from=-1: there is no stage -1; stages are numbered from 0 to 1",
    ),
    (
        "FROM scratch AS one\nCOPY --from=two /a /a\nFROM busybox AS two\nFROM one\n",
        "Dockerfile:2:6: COPY: --from=two: stage \"two\" is defined after this stage (one, line 3); a stage can only copy from stages above it",
    ),
    (
        "FROM scratch AS self\nCOPY --from=self /a /a\n",
        "Dockerfile:2:6: COPY: --from=self: a stage cannot copy from itself (self)",
    ),
    (
        "FROM scratch\nCOPY --from=0 /a /a\n",
        "Dockerfile:2:6: COPY: --from=0: a stage cannot copy from itself (stage-0)",
    ),
    (
        "FROM scratch\nCOPY --from=scratch /a /a\n",
        "Dockerfile:2:6: COPY: --from=scratch: scratch is empty, so there is nothing to copy",
    ),
    (
        "ARG SRC=busybox\nFROM scratch\nCOPY --from=$SRC /a /a\n",
        "Dockerfile:3:6: COPY: --from=$SRC: --from does not expand variables (BuildKit does not either); declare the image in a stage instead: ARG IMG=... before the first FROM, then FROM $IMG AS src, and COPY --from=src",
    ),
    // COPY flags and destination.
    (
        "FROM scratch\nCOPY --chmod=u+y a /a\n",
        "Dockerfile:2:6: COPY: --chmod=u+y: 'y' is not an operator (+, - or =) in clause \"u+y\"; write an octal mode like 0755 or a symbolic one like u+x, go-w or a=rX",
    ),
    (
        "FROM scratch\nCOPY --chmod=0999 a /a\n",
        "Dockerfile:2:6: COPY: --chmod=0999: an octal mode has only the digits 0 to 7, like 0755 or 644",
    ),
    (
        "FROM scratch\nCOPY --chmod=10000 a /a\n",
        "Dockerfile:2:6: COPY: --chmod=10000: an octal mode is at most 7777, like 0755 or 644",
    ),
    (
        "FROM scratch\nCOPY --exclude=[a src /a\n",
        "Dockerfile:2:6: COPY: --exclude=[a: a [ has no closing ]",
    ),
    (
        "FROM scratch\nCOPY https://example.com/a.txt /a\n",
        "Dockerfile:2:6: COPY: https://example.com/a.txt: COPY cannot download a URL; use ADD for URLs",
    ),
    (
        "FROM scratch\nCOPY git@github.com:o/r.git /a\n",
        "Dockerfile:2:6: COPY: git@github.com:o/r.git: COPY cannot fetch a git repository; use ADD for git sources",
    ),
    (
        "FROM scratch\nCOPY a b /app\n",
        "Dockerfile:2:10: COPY: several sources are copied, so the destination must be a directory: write \"/app/\" (with a trailing /)",
    ),
    (
        "FROM scratch\nCOPY <<A <<B out.txt\nx\nA\ny\nB\n",
        "Dockerfile:2:14: COPY: several sources are copied, so the destination must be a directory: write \"out.txt/\" (with a trailing /)",
    ),
    // Other instructions.
    (
        "FROM busybox\nSTOPSIGNAL SIGNOPE\n",
        "Dockerfile:2:12: STOPSIGNAL: invalid signal \"SIGNOPE\": write a signal name like SIGTERM or SIGQUIT, or a number",
    ),
    (
        "FROM busybox\nEXPOSE 80/icmp\n",
        "Dockerfile:2:8: EXPOSE: invalid protocol \"icmp\" in \"80/icmp\": use tcp, udp or sctp",
    ),
    (
        "FROM busybox\nEXPOSE http\n",
        "Dockerfile:2:8: EXPOSE: invalid port \"http\" in \"http\": write a port or range with an optional protocol, like 80, 53/udp or 8000-8010/tcp",
    ),
    (
        "FROM busybox\nEXPOSE 90-80\n",
        "Dockerfile:2:8: EXPOSE: invalid port range \"90-80\": the end is below the start",
    ),
    (
        "FROM busybox\nVOLUME $NOPE\n",
        "Dockerfile:2:8: VOLUME: the VOLUME path \"$NOPE\" expands to an empty string",
    ),
    (
        "FROM busybox\nENV $NOPE=1\n",
        "Dockerfile:2:5: ENV: the name \"$NOPE\" expands to an empty string",
    ),
    // ONBUILD triggers of base images.
    (
        "FROM onbuild-bad\n",
        "Dockerfile:1:1: FROM: ONBUILD trigger \"COPY onlyone\" of base image \"onbuild-bad\": COPY needs a source and a destination: COPY <src>... <dest> (the destination is the last argument)",
    ),
    (
        "FROM busybox AS base\nONBUILD RUN --mount=type=bnd x\nFROM base\n",
        "Dockerfile:3:1: RUN: in ONBUILD trigger \"RUN --mount=type=bnd x\" of the base: --mount: unsupported mount type \"bnd\"; did you mean bind?",
    ),
];

#[test]
fn lowering_errors_have_exact_text() {
    let mut failures = Vec::new();
    for (input, want) in CASES {
        let got = std::panic::catch_unwind(|| lower_err(input, &opts()))
            .unwrap_or_else(|_| "<lowered fine>".into());
        if got != *want {
            failures.push(format!("input {input:?}\n  want {want}\n  got  {got}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn target_errors_list_the_stages() {
    assert_eq!(
        lower_err("FROM busybox AS build\nFROM scratch AS final\n", &opts_target("buidl")),
        "--target \"buidl\": no stage has that name; the stages are build, final (did you mean build?)"
    );
    assert_eq!(
        lower_err("FROM busybox\n", &opts_target("x")),
        "--target \"x\": no stage has that name; this Dockerfile names no stages (name one with FROM image AS name)"
    );
}

#[test]
fn bad_platform_options_are_reported() {
    let o = LowerOptions { target_platform: "bogus".into(), ..Default::default() };
    assert_eq!(
        lower_err("FROM scratch\n", &o),
        "target platform: invalid platform \"bogus\": \"bogus\" is neither an OS nor an architecture; write os/arch, like linux/amd64"
    );
}

#[test]
fn expansion_errors_point_into_the_word() {
    let e = lower_err("FROM busybox\nWORKDIR ${DIR:?set DIR}\n", &opts());
    assert!(e.starts_with("Dockerfile:2:"), "{e}");
    assert!(e.contains("WORKDIR: "), "{e}");
    assert!(e.ends_with("(in \"${DIR:?set DIR}\")"), "{e}");
    assert!(e.contains("set DIR"), "{e}");
    // With the variable set the same line lowers.
    lower_ok("FROM busybox\nENV DIR=/d\nWORKDIR ${DIR:?set DIR}\n", &opts());

    let e = lower_err("ARG X=${NEED:?missing}\nFROM busybox\n", &opts());
    assert!(e.starts_with("Dockerfile:1:") && e.contains("ARG: "), "{e}");
    lower_ok("ARG X=${NEED:?missing}\nFROM busybox\n", &opts_args(&[("X", "given")]));
}

#[test]
fn quoted_copy_paths_suggest_the_json_form() {
    assert_eq!(
        lower_err("FROM busybox\nCOPY \"a b\" /c/\n", &opts()),
        "Dockerfile:2:6: COPY: unterminated double-quoted string: missing the closing \" (in \"\\\"a\"); \
         the shell form splits at every space, so for paths with spaces use the JSON form: \
         COPY [\"a b\", \"/dest/\"]"
    );
    lower_ok("FROM busybox\nCOPY [\"a b\", \"/c/\"]\n", &opts());
}

#[test]
fn check_error_turns_warnings_into_errors() {
    assert_eq!(
        lower_err("# check=error=true\nFROM busybox\nMAINTAINER me\n", &opts()),
        "Dockerfile:3:1: MAINTAINER: MAINTAINER is deprecated; use LABEL org.opencontainers.image.authors=\"...\" (# check=error=true makes warnings fail the build)"
    );
    lower_ok(
        "# check=error=true;skip=MaintainerDeprecated\nFROM busybox\nMAINTAINER me\n",
        &opts(),
    );
}

#[test]
fn errors_in_stages_not_built_are_not_reported() {
    lower_ok("FROM nosuch AS unused\nSTOPSIGNAL BOGUS\nFROM scratch\n", &opts());
    // ...but an invalid --from index is, as in BuildKit.
    assert_eq!(
        lower_err("FROM scratch AS unused\nCOPY --from=9 a b\nFROM scratch\n", &opts()),
        "Dockerfile:2:6: COPY: --from=9: there is no stage 9; stages are numbered from 0 to 1"
    );
}
