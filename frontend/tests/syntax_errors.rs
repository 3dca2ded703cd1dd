//! Every parse error, with its exact `file:line:col: INSTR: message` text.

mod common;

use common::parse_err;

const CASES: &[(&str, &str)] = &[
    // Unknown instructions, with a suggestion when one is close.
    (
        "FROM a\nCPOY x y\n",
        "Dockerfile:2:1: CPOY: unknown instruction \"CPOY\"; did you mean COPY?",
    ),
    (
        "FROM a\n  form x\n",
        "Dockerfile:2:3: FORM: unknown instruction \"form\"; did you mean FROM?",
    ),
    (
        "FROM a\nRUN apt-get update &&\n    apt-get install -y x\n",
        "Dockerfile:3:5: APT-GET: unknown instruction \"apt-get\"; the instructions are FROM, RUN, CMD, LABEL, MAINTAINER, EXPOSE, ENV, ADD, COPY, ENTRYPOINT, VOLUME, USER, WORKDIR, ARG, ONBUILD, STOPSIGNAL, HEALTHCHECK, SHELL (if this line continues the RUN above, end that line with \\)",
    ),
    // Directives.
    (
        "# escape=`\n# escape=\\\nFROM a\n",
        "Dockerfile:2:1: the escape directive is given twice; a Dockerfile can set it only once, in its first lines",
    ),
    (
        "# escape=x\nFROM a\n",
        "Dockerfile:1:1: invalid escape character \"x\": the escape directive takes \\ (the default) or ` (backtick)",
    ),
    (
        "# check=skip\nFROM a\n",
        "Dockerfile:1:1: invalid check option \"skip\": write skip=RULE[,RULE], skip=all or error=true",
    ),
    // RUN flags, checked while parsing as BuildKit does.
    (
        "FROM a\nRUN --network=bridge true\n",
        "Dockerfile:2:5: RUN: invalid --network value \"bridge\"; use default, none, host",
    ),
    (
        "FROM a\nRUN --security=privileged true\n",
        "Dockerfile:2:5: RUN: invalid --security value \"privileged\"; use sandbox, insecure",
    ),
    (
        "FROM a\nRUN --mount=type=bind,from=$IMG,target=/x true\n",
        "Dockerfile:2:23: RUN: --mount: from=$IMG uses a variable, but from is never expanded; name the image in a stage instead: ARG IMG=... before the first FROM, FROM $IMG AS src, then --mount=from=src",
    ),
    (
        "FROM a\nRUN --mount=type=bind,source=a\\\"b true\n",
        "Dockerfile:2:5: RUN: --mount: a '\"' inside an option must be doubled and the whole option quoted: \"key=a\"\"b\"",
    ),
    (
        "FROM a\nRUN --mount=type=ssh --mount='\"a,b' true\n",
        "Dockerfile:2:22: RUN: --mount: a quoted option has no closing '\"'",
    ),
    // Flags.
    (
        "FROM a\nCOPY --chwon=1 a b\n",
        "Dockerfile:2:6: COPY: unknown flag --chwon; did you mean --chown?",
    ),
    (
        "FROM a\nCOPY --bogus a b\n",
        "Dockerfile:2:6: COPY: unknown flag --bogus; COPY takes --from, --chown, --chmod, --link, --parents, --exclude",
    ),
    ("FROM a\nENV --x=1 A=1\n", "Dockerfile:2:5: ENV: ENV takes no flags, but --x was given"),
    (
        "FROM a\nCMD --help\n",
        "Dockerfile:2:5: CMD: CMD takes no flags, so a shell-form command cannot start with \"--help\"; use the exec form: CMD [\"--help\", ...]",
    ),
    (
        "FROM a\nENTRYPOINT --port=80 serve\n",
        "Dockerfile:2:12: ENTRYPOINT: ENTRYPOINT takes no flags, so a shell-form command cannot start with \"--port\"; use the exec form: ENTRYPOINT [\"--port=80\", ...]",
    ),
    ("FROM a\nCOPY --from a b\n", "Dockerfile:2:6: COPY: --from needs a value: --from=<value>"),
    (
        "FROM a\nCOPY --link=yes a b\n",
        "Dockerfile:2:6: COPY: --link takes true or false, not \"yes\"",
    ),
    (
        "FROM a\nCOPY --link= a b\n",
        "Dockerfile:2:6: COPY: --link= has no value; write --link (or --link=true, --link=false)",
    ),
    (
        "FROM a\nCOPY --from=x --from=y a b\n",
        "Dockerfile:2:15: COPY: --from is given twice; give it once",
    ),
    ("FROM --plat=x a\n", "Dockerfile:1:6: FROM: unknown flag --plat; did you mean --platform?"),
    (
        "FROM a\nRUN --mnt=type=cache x\n",
        "Dockerfile:2:5: RUN: unknown flag --mnt; did you mean --mount?",
    ),
    (
        "FROM a\nONBUILD --x RUN y\n",
        "Dockerfile:2:9: ONBUILD: ONBUILD takes no flags, but --x was given",
    ),
    // FROM.
    (
        "FROM\n",
        "Dockerfile:1:1: FROM: FROM needs a base image: FROM image[:tag] [AS name], or FROM scratch",
    ),
    (
        "FROM a b\n",
        "Dockerfile:1:8: FROM: unexpected \"b\" after the image; write FROM image[:tag] [AS name]",
    ),
    (
        "FROM a AS\n",
        "Dockerfile:1:8: FROM: missing the stage name after AS; write FROM image[:tag] [AS name]",
    ),
    (
        "FROM a named b\n",
        "Dockerfile:1:8: FROM: expected AS before the stage name, found \"named\"; write FROM image[:tag] [AS name]",
    ),
    (
        "FROM a AS b c\n",
        "Dockerfile:1:13: FROM: unexpected \"c\" after the stage name; write FROM image[:tag] [AS name]",
    ),
    (
        "FROM a AS 1st\n",
        "Dockerfile:1:11: FROM: invalid stage name \"1st\": a stage name starts with a letter and holds only letters, digits, \"-\", \"_\" and \".\"",
    ),
    (
        "FROM a AS my/stage\n",
        "Dockerfile:1:11: FROM: invalid stage name \"my/stage\": a stage name starts with a letter and holds only letters, digits, \"-\", \"_\" and \".\"",
    ),
    // Arguments.
    (
        "FROM a\nCOPY only-one\n",
        "Dockerfile:2:6: COPY: COPY needs a source and a destination: COPY <src>... <dest> (the destination is the last argument)",
    ),
    (
        "FROM a\nADD\n",
        "Dockerfile:2:1: ADD: ADD needs a source and a destination: ADD <src>... <dest> (the destination is the last argument)",
    ),
    (
        "FROM a\nCOPY [\"x\"]\n",
        "Dockerfile:2:7: COPY: COPY needs a source and a destination: COPY <src>... <dest> (the destination is the last argument)",
    ),
    (
        "FROM a\nCOPY x <<EOF\nhi\nEOF\n",
        "Dockerfile:2:8: COPY: COPY cannot take a heredoc as its destination; put the destination last",
    ),
    ("FROM a\nENV\n", "Dockerfile:2:1: ENV: ENV needs at least one KEY=value pair"),
    ("FROM a\nLABEL\n", "Dockerfile:2:1: LABEL: LABEL needs at least one KEY=value pair"),
    (
        "FROM a\nENV ONLYKEY\n",
        "Dockerfile:2:5: ENV: ENV ONLYKEY needs a value: write ENV ONLYKEY=value",
    ),
    (
        "FROM a\nENV A=1 B\n",
        "Dockerfile:2:9: ENV: \"B\" is not KEY=value; write KEY=value (quote a value with spaces: KEY=\"a b\")",
    ),
    ("FROM a\nENV =x\n", "Dockerfile:2:5: ENV: missing the name before \"=\" in \"=x\""),
    ("FROM a\nLABEL a=1 =2\n", "Dockerfile:2:11: LABEL: missing the name before \"=\" in \"=2\""),
    ("ARG\n", "Dockerfile:1:1: ARG: ARG needs a name: ARG NAME[=default]"),
    ("ARG =1\n", "Dockerfile:1:5: ARG: missing the name before \"=\" in \"=1\""),
    ("FROM a\nWORKDIR\n", "Dockerfile:2:1: WORKDIR: WORKDIR needs a path: WORKDIR /path"),
    (
        "FROM a\nUSER\n",
        "Dockerfile:2:1: USER: USER needs a user: USER name[:group] or USER uid[:gid]",
    ),
    (
        "FROM a\nSTOPSIGNAL\n",
        "Dockerfile:2:1: STOPSIGNAL: STOPSIGNAL needs a signal: STOPSIGNAL SIGTERM (or a number)",
    ),
    (
        "FROM a\nMAINTAINER\n",
        "Dockerfile:2:1: MAINTAINER: MAINTAINER needs a name (MAINTAINER is deprecated: use LABEL org.opencontainers.image.authors=...)",
    ),
    (
        "FROM a\nEXPOSE\n",
        "Dockerfile:2:1: EXPOSE: EXPOSE needs at least one port: EXPOSE 80 443/tcp",
    ),
    ("FROM a\nVOLUME\n", "Dockerfile:2:1: VOLUME: VOLUME needs at least one path: VOLUME /data"),
    ("FROM a\nVOLUME []\n", "Dockerfile:2:1: VOLUME: VOLUME needs at least one path: VOLUME /data"),
    ("FROM a\nVOLUME [\"/a\", \" \"]\n", "Dockerfile:2:15: VOLUME: a VOLUME path cannot be empty"),
    // JSON.
    (
        "FROM a\nCMD [\"a\", 1]\n",
        "Dockerfile:2:5: CMD: the JSON array may hold only strings: write [\"executable\", \"arg\"]",
    ),
    (
        "FROM a\nCOPY [\"a\", null, \"b\"]\n",
        "Dockerfile:2:6: COPY: the JSON array may hold only strings: write [\"executable\", \"arg\"]",
    ),
    // SHELL.
    (
        "FROM a\nSHELL /bin/bash -c\n",
        "Dockerfile:2:7: SHELL: SHELL needs the JSON form: SHELL [\"executable\", \"parameters\"]",
    ),
    (
        "FROM a\nSHELL [\"c:\\windows\\cmd.exe\", \"/S\"]\n",
        "Dockerfile:2:7: SHELL: SHELL needs the JSON form: SHELL [\"executable\", \"parameters\"]; a path with back-slashes must escape them in JSON: [\"c:\\\\path\\\\to\\\\file.exe\", \"/parameter\"]",
    ),
    (
        "FROM a\nSHELL []\n",
        "Dockerfile:2:7: SHELL: SHELL needs a command: SHELL [\"/bin/sh\", \"-c\"]",
    ),
    (
        "FROM a\nSHELL\n",
        "Dockerfile:2:1: SHELL: SHELL needs a command: SHELL [\"/bin/sh\", \"-c\"]",
    ),
    // HEALTHCHECK.
    (
        "FROM a\nHEALTHCHECK\n",
        "Dockerfile:2:1: HEALTHCHECK: HEALTHCHECK needs CMD <command> or NONE",
    ),
    (
        "FROM a\nHEALTHCHECK NONE x\n",
        "Dockerfile:2:18: HEALTHCHECK: HEALTHCHECK NONE takes no arguments",
    ),
    (
        "FROM a\nHEALTHCHECK curl localhost\n",
        "Dockerfile:2:13: HEALTHCHECK: unknown HEALTHCHECK type \"curl\": write HEALTHCHECK CMD <command> or HEALTHCHECK NONE",
    ),
    (
        "FROM a\nHEALTHCHECK CMD\n",
        "Dockerfile:2:13: HEALTHCHECK: HEALTHCHECK CMD needs a command to run",
    ),
    (
        "FROM a\nHEALTHCHECK CMD []\n",
        "Dockerfile:2:13: HEALTHCHECK: HEALTHCHECK CMD needs a command to run",
    ),
    (
        "FROM a\nHEALTHCHECK --interval=5 CMD x\n",
        "Dockerfile:2:13: HEALTHCHECK: --interval: missing unit in duration \"5\"; write a number with a unit, like 30s, 1m30s or 500ms",
    ),
    (
        "FROM a\nHEALTHCHECK --timeout=10x CMD x\n",
        "Dockerfile:2:13: HEALTHCHECK: --timeout: unknown unit \"x\" in duration \"10x\"; write a number with a unit, like 30s, 1m30s or 500ms",
    ),
    (
        "FROM a\nHEALTHCHECK --interval=10us CMD x\n",
        "Dockerfile:2:13: HEALTHCHECK: --interval must be at least 1ms (or 0 for the default)",
    ),
    (
        "FROM a\nHEALTHCHECK --retries=-1 CMD x\n",
        "Dockerfile:2:13: HEALTHCHECK: --retries cannot be negative (-1)",
    ),
    (
        "FROM a\nHEALTHCHECK --retries=many CMD x\n",
        "Dockerfile:2:13: HEALTHCHECK: --retries takes a whole number, not \"many\"",
    ),
    (
        "FROM a\nHEALTHCHECK --bogus=1 CMD x\n",
        "Dockerfile:2:13: HEALTHCHECK: unknown flag --bogus; HEALTHCHECK takes --interval, --timeout, --start-period, --start-interval, --retries",
    ),
    // ONBUILD.
    (
        "FROM a\nONBUILD\n",
        "Dockerfile:2:1: ONBUILD: ONBUILD needs an instruction to run when the image is used as a base: ONBUILD <INSTRUCTION> ...",
    ),
    (
        "FROM a\nONBUILD ONBUILD RUN x\n",
        "Dockerfile:2:9: ONBUILD: ONBUILD ONBUILD is not allowed: a trigger cannot add another trigger",
    ),
    ("FROM a\nONBUILD from b\n", "Dockerfile:2:9: ONBUILD: FROM cannot be an ONBUILD trigger"),
    (
        "FROM a\nONBUILD MAINTAINER me\n",
        "Dockerfile:2:9: ONBUILD: MAINTAINER cannot be an ONBUILD trigger",
    ),
    (
        "FROM a\nONBUILD CPY x y\n",
        "Dockerfile:2:9: CPY: unknown instruction \"CPY\"; did you mean COPY?",
    ),
    (
        "FROM a\nONBUILD COPY x\n",
        "Dockerfile:2:14: COPY: COPY needs a source and a destination: COPY <src>... <dest> (the destination is the last argument)",
    ),
    // Heredocs.
    (
        "FROM a\nRUN <<EOF\necho hi\n",
        "Dockerfile:2:5: RUN: unterminated heredoc: the file ends before a line that reads \"EOF\" closes it; add that line after the heredoc's content",
    ),
    (
        "FROM a\nCOPY <<A <<B /d/\na\nA\nb\n",
        "Dockerfile:2:10: COPY: unterminated heredoc: the file ends before a line that reads \"B\" closes it; add that line after the heredoc's content",
    ),
    (
        "FROM a\nRUN <<EOF\n  EOF\n",
        "Dockerfile:2:5: RUN: unterminated heredoc: the file ends before a line that reads \"EOF\" closes it; add that line after the heredoc's content",
    ),
];

#[test]
fn parse_errors_have_exact_text() {
    let mut failures = Vec::new();
    for (input, want) in CASES {
        let got = std::panic::catch_unwind(|| parse_err(input))
            .unwrap_or_else(|_| "<parsed fine>".into());
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
