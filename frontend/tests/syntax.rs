//! Parsing: directives, continuations, comments, heredocs, forms, flags and spans.

mod common;

use common::{parse_err, parse_ok};
use kiln_frontend::Span;
use kiln_frontend::syntax::{Command, CommandLine, Healthcheck, Instruction, Source, Word};

fn sp(line: u32, col: u32, end_line: u32, end_col: u32) -> Span {
    Span { line, col, end_line, end_col }
}

fn texts(words: &[Word]) -> Vec<&str> {
    words.iter().map(|w| w.text.as_str()).collect()
}

fn only(text: &str) -> Instruction {
    let df = parse_ok(text);
    df.instructions.last().cloned().expect("an instruction")
}

#[test]
fn directives_are_read_only_at_the_top() {
    let df = parse_ok("# syntax=docker/dockerfile:1\n# escape=`\n# check=skip=all\nFROM a\n");
    let names: Vec<(&str, &str)> =
        df.directives.iter().map(|d| (d.name.as_str(), d.value.as_str())).collect();
    assert_eq!(names, [("syntax", "docker/dockerfile:1"), ("escape", "`"), ("check", "skip=all")]);
    assert_eq!(df.escape, '`');
    assert_eq!(df.directive("escape"), Some("`"));
    assert_eq!(df.directives[1].span, sp(2, 1, 2, 11));

    // A blank line, a comment or an instruction ends the directives.
    for text in [
        "\n# escape=`\nFROM a\n",
        "# a comment\n# escape=`\nFROM a\n",
        "FROM a\n# escape=`\n",
        "# unknown=x\n# escape=`\nFROM a\n",
    ] {
        let df = parse_ok(text);
        assert_eq!(df.escape, '\\', "{text:?}");
        assert!(df.directive("escape").is_none(), "{text:?}");
    }
    // Case and spacing do not matter; leading blanks are allowed.
    let df = parse_ok("  #  ESCAPE  =  `  \nFROM a\n");
    assert_eq!(df.escape, '`');
}

#[test]
fn escape_directive_changes_continuations_and_windows_paths() {
    let df = parse_ok("# escape=`\nFROM a\nCOPY c:\\src\\ `\n  c:\\dst\\\nWORKDIR c:\\app\n");
    match &df.instructions[1].command {
        Command::Copy(c) => {
            assert_eq!(c.sources.len(), 1);
            assert!(matches!(&c.sources[0], Source::Path(w) if w.text == "c:\\src\\"));
            assert_eq!(c.dest.text, "c:\\dst\\");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&df.instructions[2].command, Command::Workdir(w) if w.text == "c:\\app"));
}

#[test]
fn continuations_join_lines_and_skip_comments_and_blank_lines() {
    let df =
        parse_ok("FROM a\nRUN echo a \\\n# inner comment\n  # indented comment\n\n    && echo b\n");
    let run = &df.instructions[1];
    assert_eq!(run.original, "RUN echo a     && echo b");
    assert_eq!(run.span, sp(2, 1, 6, 14));
    match &run.command {
        Command::Run(r) => match &r.command {
            CommandLine::Shell(w) => {
                assert_eq!(w.text, "echo a     && echo b");
                assert_eq!(w.span, sp(2, 5, 6, 14));
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    // The blank line inside the continuation gives a warning (BuildKit's NoEmptyContinuation).
    assert_eq!(df.warnings.len(), 1);
    assert_eq!(
        df.warnings[0].to_string(),
        "Dockerfile:5:1: warning: empty continuation line: BuildKit will reject these in a \
         future release; remove the blank line"
    );
}

#[test]
fn escaped_escape_is_not_a_continuation() {
    let df = parse_ok("FROM a\nRUN echo \\\\\nCMD x\n");
    assert_eq!(df.instructions.len(), 3);
    assert_eq!(df.instructions[1].original, "RUN echo \\\\");
}

#[test]
fn continuation_at_end_of_file_is_accepted_with_a_warning() {
    let df = parse_ok("FROM a\nCMD x \\");
    assert_eq!(df.instructions.len(), 2);
    match &df.instructions[1].command {
        Command::Cmd(CommandLine::Shell(w)) => assert_eq!(w.text, "x"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        df.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "Dockerfile:2:7: warning: the file ends right after a line continuation (\\); remove it or finish the instruction"
        ]
    );
}

#[test]
fn keywords_are_case_insensitive_and_leading_blanks_ignored() {
    let df = parse_ok("from a AS b\n   copy x y\nWorkDir /w\n");
    assert_eq!(df.instructions[0].name(), "FROM");
    assert_eq!(df.instructions[1].name(), "COPY");
    assert_eq!(df.instructions[1].keyword, "copy");
    assert_eq!(df.instructions[1].keyword_span, sp(2, 4, 2, 8));
    assert_eq!(df.instructions[2].name(), "WORKDIR");
}

#[test]
fn bom_crlf_and_tabs() {
    let df = parse_ok("\u{feff}FROM a\r\nENV\tA=1 \\\r\n\tB=2\r\n");
    assert_eq!(df.instructions.len(), 2);
    assert_eq!(df.instructions[0].span, sp(1, 1, 1, 7));
    match &df.instructions[1].command {
        Command::Env(kv) => {
            assert_eq!(kv.len(), 2);
            assert_eq!((kv[1].key.text.as_str(), kv[1].value.text.as_str()), ("B", "2"));
            assert_eq!(kv[1].key.span, sp(3, 2, 3, 3));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn from_forms() {
    let i = only("FROM --platform=$BUILDPLATFORM golang:1.22 AS Build\n");
    let Command::From(f) = &i.command else { panic!() };
    assert_eq!(f.image.text, "golang:1.22");
    assert_eq!(f.image.span, sp(1, 32, 1, 43));
    assert_eq!(f.platform.as_ref().and_then(|p| p.value.as_deref()), Some("$BUILDPLATFORM"));
    assert_eq!(f.platform.as_ref().map(|p| p.span), Some(sp(1, 6, 1, 31)));
    assert_eq!(f.alias.as_ref().map(|a| a.text.as_str()), Some("Build"));
    assert_eq!(i.flags.len(), 1);
    assert_eq!(i.flags[0].text(), "--platform=$BUILDPLATFORM");
    let df = parse_ok("FROM x AS Build\n");
    assert_eq!(
        df.warnings[0].to_string(),
        "Dockerfile:1:11: warning: FROM: stage name \"Build\" should be lower-case: \"build\""
    );
    let df = parse_ok("FROM x as y\n");
    assert_eq!(
        df.warnings[0].to_string(),
        "Dockerfile:1:8: warning: FROM: the casing of \"as\" does not match \"FROM\""
    );
    assert!(parse_ok("from x as y\nFROM x AS z\n").warnings.is_empty());
}

#[test]
fn exec_and_shell_forms() {
    let i = only("FROM a\nCMD [\"echo\", \"a b\", \"c\\\"d\"]\n");
    let Command::Cmd(CommandLine::Exec(words)) = &i.command else { panic!("{:?}", i.command) };
    assert_eq!(texts(words), ["echo", "a b", "c\"d"]);
    assert_eq!(words[1].span, sp(2, 14, 2, 19));

    let i = only("FROM a\nENTRYPOINT exec   app --flag\n");
    let Command::Entrypoint(CommandLine::Shell(w)) = &i.command else { panic!() };
    assert_eq!(w.text, "exec   app --flag");

    // Invalid JSON is the shell form, as in BuildKit, with a warning.
    let df = parse_ok("FROM a\nCMD ['single', 'quotes']\n");
    let Command::Cmd(CommandLine::Shell(w)) = &df.instructions[1].command else { panic!() };
    assert_eq!(w.text, "['single', 'quotes']");
    assert!(df.warnings[0].to_string().starts_with(
        "Dockerfile:2:5: warning: CMD: this looks like the exec (JSON) form but is not valid JSON"
    ));

    // Text after the array is ignored, like Go's json.Decoder.
    let i = only("FROM a\nCMD [\"a\"] ignored\n");
    assert!(matches!(&i.command, Command::Cmd(CommandLine::Exec(w)) if texts(w) == ["a"]));

    // An empty exec form and a bare CMD.
    assert!(
        matches!(&only("FROM a\nCMD []\n").command, Command::Cmd(CommandLine::Exec(w)) if w.is_empty())
    );
    assert!(
        matches!(&only("FROM a\nCMD\n").command, Command::Cmd(CommandLine::Shell(w)) if w.text.is_empty())
    );
}

#[test]
fn run_flags() {
    let i = only(
        "FROM a\nRUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=x --network=none pip install\n",
    );
    let Command::Run(r) = &i.command else { panic!() };
    assert_eq!(r.mounts.len(), 2);
    assert_eq!(r.mounts[1].value.as_deref(), Some("type=secret,id=x"));
    assert_eq!(r.network.as_ref().and_then(|f| f.value.as_deref()), Some("none"));
    assert!(matches!(&r.command, CommandLine::Shell(w) if w.text == "pip install"));
}

#[test]
fn env_and_label_pairs() {
    let i = only("FROM a\nENV A=1 B=\"two words\" C=x\\ y D=\n");
    let Command::Env(kv) = &i.command else { panic!() };
    let pairs: Vec<(&str, &str, bool)> =
        kv.iter().map(|p| (p.key.text.as_str(), p.value.text.as_str(), p.legacy)).collect();
    assert_eq!(
        pairs,
        [("A", "1", false), ("B", "\"two words\"", false), ("C", "x\\ y", false), ("D", "", false)]
    );
    assert_eq!(kv[1].key.span, sp(2, 9, 2, 10));
    assert_eq!(kv[1].value.span, sp(2, 11, 2, 22));

    // Legacy form: the value is the rest of the line.
    let df = parse_ok("FROM a\nENV NAME some value  here\n");
    let Command::Env(kv) = &df.instructions[1].command else { panic!() };
    assert_eq!(
        (kv[0].key.text.as_str(), kv[0].value.text.as_str(), kv[0].legacy),
        ("NAME", "some value  here", true)
    );
    assert_eq!(
        df.warnings[0].to_string(),
        "Dockerfile:2:5: warning: ENV: legacy \"ENV KEY value\" form; write ENV NAME=value (quote values with spaces)"
    );

    let i = only("FROM a\nLABEL \"com.example.vendor\"=\"ACME\" version=1.0\n");
    let Command::Label(kv) = &i.command else { panic!() };
    assert_eq!(kv[0].key.text, "\"com.example.vendor\"");
    assert_eq!(kv[1].value.text, "1.0");
}

#[test]
fn arg_declarations() {
    let i = only("ARG A B=2 C=\"x y\" D=\n");
    let Command::Arg(d) = &i.command else { panic!() };
    let got: Vec<(&str, Option<&str>)> = d
        .iter()
        .map(|a| (a.name.text.as_str(), a.default.as_ref().map(|w| w.text.as_str())))
        .collect();
    assert_eq!(got, [("A", None), ("B", Some("2")), ("C", Some("\"x y\"")), ("D", Some(""))]);
}

#[test]
fn copy_forms_and_flags() {
    let i = only(
        "FROM a\nCOPY --from=build --chown=app:app --chmod=0755 --link --parents --exclude=*.md --exclude=tmp a b /dst/\n",
    );
    let Command::Copy(c) = &i.command else { panic!() };
    assert_eq!(c.from.as_ref().and_then(|f| f.value.as_deref()), Some("build"));
    assert_eq!(c.chown.as_ref().and_then(|f| f.value.as_deref()), Some("app:app"));
    assert_eq!(c.chmod.as_ref().and_then(|f| f.value.as_deref()), Some("0755"));
    assert!(c.link && c.parents);
    assert_eq!(
        c.exclude.iter().map(|f| f.value.as_deref().unwrap_or("")).collect::<Vec<_>>(),
        ["*.md", "tmp"]
    );
    assert_eq!(c.sources.len(), 2);
    assert_eq!(c.dest.text, "/dst/");
    assert!(!c.json);
    assert_eq!(i.flags.len(), 7);

    let i = only("FROM a\nCOPY [\"a b\", \"c\", \"/d e/\"]\n");
    let Command::Copy(c) = &i.command else { panic!() };
    assert!(c.json);
    assert!(matches!(&c.sources[0], Source::Path(w) if w.text == "a b"));
    assert_eq!(c.dest.text, "/d e/");

    let i = only("FROM a\nCOPY --link=false x y\n");
    let Command::Copy(c) = &i.command else { panic!() };
    assert!(!c.link);

    let i = only(
        "FROM a\nADD --checksum=sha256:abc --keep-git-dir --unpack=false https://x/y.tgz /z\n",
    );
    let Command::Add(a) = &i.command else { panic!() };
    assert!(a.keep_git_dir);
    assert_eq!(a.unpack, Some(false));
    assert_eq!(a.checksum.as_ref().and_then(|f| f.value.as_deref()), Some("sha256:abc"));
}

#[test]
fn single_argument_instructions_take_the_rest_of_the_line() {
    assert!(
        matches!(&only("FROM a\nWORKDIR /a b\n").command, Command::Workdir(w) if w.text == "/a b")
    );
    assert!(
        matches!(&only("FROM a\nUSER app:app\n").command, Command::User(w) if w.text == "app:app")
    );
    assert!(
        matches!(&only("FROM a\nSTOPSIGNAL SIGKILL\n").command, Command::StopSignal(w) if w.text == "SIGKILL")
    );
    let df = parse_ok("FROM a\nMAINTAINER Jane <j@example.com>\n");
    assert!(
        matches!(&df.instructions[1].command, Command::Maintainer(w) if w.text == "Jane <j@example.com>")
    );
    assert_eq!(
        df.warnings[0].to_string(),
        "Dockerfile:2:1: warning: MAINTAINER: MAINTAINER is deprecated; use LABEL org.opencontainers.image.authors=\"...\""
    );
}

#[test]
fn expose_volume_shell() {
    let i = only("FROM a\nEXPOSE 80 443/tcp $PORT\n");
    let Command::Expose(w) = &i.command else { panic!() };
    assert_eq!(texts(w), ["80", "443/tcp", "$PORT"]);
    let i = only("FROM a\nVOLUME /data /logs\n");
    assert!(
        matches!(&i.command, Command::Volume { paths, json: false } if texts(paths) == ["/data", "/logs"])
    );
    let i = only("FROM a\nVOLUME [\"/data\", \" /x \"]\n");
    assert!(
        matches!(&i.command, Command::Volume { paths, json: true } if texts(paths) == ["/data", "/x"])
    );
    let i = only("FROM a\nSHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\n");
    assert!(
        matches!(&i.command, Command::Shell(w) if texts(w) == ["/bin/bash", "-o", "pipefail", "-c"])
    );
}

#[test]
fn healthcheck_forms() {
    let i = only(
        "FROM a\nHEALTHCHECK --interval=5m --timeout=3s --start-period=1s --start-interval=500ms --retries=3 CMD curl -f http://localhost/ || exit 1\n",
    );
    let Command::Healthcheck(Healthcheck::Cmd {
        command,
        interval,
        timeout,
        start_period,
        start_interval,
        retries,
    }) = &i.command
    else {
        panic!("{:?}", i.command)
    };
    assert!(
        matches!(command, CommandLine::Shell(w) if w.text == "curl -f http://localhost/ || exit 1")
    );
    assert_eq!(interval.as_ref().map(|d| d.nanos), Some(300_000_000_000));
    assert_eq!(timeout.as_ref().map(|d| d.nanos), Some(3_000_000_000));
    assert_eq!(start_period.as_ref().map(|d| d.nanos), Some(1_000_000_000));
    assert_eq!(start_interval.as_ref().map(|d| d.nanos), Some(500_000_000));
    assert_eq!(retries.as_ref().map(|r| r.1), Some(3));

    let i = only("FROM a\nhealthcheck cmd [\"/bin/check\", \"-q\"]\n");
    assert!(
        matches!(&i.command, Command::Healthcheck(Healthcheck::Cmd { command: CommandLine::Exec(w), .. }) if texts(w) == ["/bin/check", "-q"])
    );
    assert!(matches!(
        &only("FROM a\nHEALTHCHECK NONE\n").command,
        Command::Healthcheck(Healthcheck::None)
    ));
    let df = parse_ok("FROM a\nHEALTHCHECK --interval=1s NONE\n");
    assert_eq!(
        df.warnings[0].to_string(),
        "Dockerfile:2:13: warning: HEALTHCHECK: HEALTHCHECK NONE ignores --interval=1s; remove it"
    );
}

#[test]
fn onbuild_keeps_the_trigger_and_its_text() {
    let i = only("FROM a\nONBUILD  COPY --chown=1 . /app\n");
    let Command::Onbuild(o) = &i.command else { panic!() };
    assert_eq!(o.expression, "COPY --chown=1 . /app");
    assert_eq!(o.trigger.name(), "COPY");
    assert_eq!(o.trigger.keyword_span, sp(2, 10, 2, 14));
    assert!(matches!(&o.trigger.command, Command::Copy(c) if c.chown.is_some()));

    let i = only("FROM a\nonbuild run <<EOF\necho hi\nEOF\n");
    let Command::Onbuild(o) = &i.command else { panic!() };
    assert_eq!(o.expression, "run <<EOF\necho hi\nEOF");
    assert_eq!(o.trigger.heredocs.len(), 1);
    assert_eq!(i.span, sp(2, 1, 4, 4));
}

#[test]
fn heredocs_are_read_after_the_line() {
    let df = parse_ok(
        "FROM a\nRUN <<EOF\necho one\n  echo two\nEOF\nRUN <<-EOT bash\n\tindented\n\tEOT\nCOPY <<one.txt <<\"two.txt\" /dest/\nfirst\none.txt\nsecond $X\ntwo.txt\nRUN 3<<'Q' cat\nnot $expanded\nQ\n",
    );
    assert_eq!(df.instructions.len(), 5);
    let run = &df.instructions[1];
    assert_eq!(run.heredocs.len(), 1);
    let h = &run.heredocs[0];
    assert_eq!(
        (h.name.as_str(), h.content.as_str(), h.expand, h.chomp),
        ("EOF", "echo one\n  echo two\n", true, false)
    );
    assert_eq!(h.span, sp(2, 5, 2, 10));
    assert_eq!(h.body_span, sp(3, 1, 5, 4));
    assert_eq!(run.span, sp(2, 1, 5, 4));

    let h = &df.instructions[2].heredocs[0];
    assert_eq!((h.name.as_str(), h.content.as_str(), h.chomp), ("EOT", "\tindented\n", true));
    assert_eq!(h.chomped_content(), "indented\n");

    let Command::Copy(c) = &df.instructions[3].command else { panic!() };
    let inline: Vec<(&str, &str, bool)> = c
        .sources
        .iter()
        .map(|s| match s {
            Source::Heredoc { doc, .. } => (doc.name.as_str(), doc.content.as_str(), doc.expand),
            Source::Path(w) => (w.text.as_str(), "", false),
        })
        .collect();
    assert_eq!(inline, [("one.txt", "first\n", true), ("two.txt", "second $X\n", false)]);

    let h = &df.instructions[4].heredocs[0];
    assert_eq!((h.name.as_str(), h.fd, h.expand), ("Q", 3, false));
}

#[test]
fn heredocs_only_where_buildkit_reads_them() {
    // JSON form, quoted openers and other instructions do not open heredocs.
    let df = parse_ok("FROM a\nRUN [\"<<EOF\"]\nRUN echo '<<EOF'\nUSER <<EOF\nCMD x\n");
    assert_eq!(df.instructions.len(), 5);
    assert!(df.instructions.iter().all(|i| i.heredocs.is_empty()));
    assert!(matches!(&df.instructions[3].command, Command::User(w) if w.text == "<<EOF"));
}

#[test]
fn heredoc_body_keeps_comments_and_continuation_characters() {
    let df = parse_ok("FROM a\nRUN <<EOF\n# not a comment \\\n\nline\nEOF\nCMD x\n");
    assert_eq!(df.instructions[1].heredocs[0].content, "# not a comment \\\n\nline\n");
    assert_eq!(df.instructions.len(), 3);
}

#[test]
fn flags_keep_exact_spans_across_lines() {
    let df = parse_ok("FROM a\nCOPY \\\n  --chown=1:1 \\\n  a /b\n");
    let i = &df.instructions[1];
    assert_eq!(i.flags[0].span, sp(3, 3, 3, 14));
    let Command::Copy(c) = &i.command else { panic!() };
    assert_eq!(c.dest.span, sp(4, 5, 4, 7));
    assert_eq!(i.span, sp(2, 1, 4, 7));
}

#[test]
fn quoted_flag_values_and_double_dash() {
    let i = only("FROM a\nCOPY --chown=\"my user\" -- --odd-name /x\n");
    let Command::Copy(c) = &i.command else { panic!() };
    assert_eq!(c.chown.as_ref().and_then(|f| f.value.as_deref()), Some("my user"));
    assert!(matches!(&c.sources[0], Source::Path(w) if w.text == "--odd-name"));
}

#[test]
fn empty_and_comment_only_files_are_errors() {
    assert_eq!(
        parse_err(""),
        "Dockerfile:1:1: the Dockerfile has no instructions; it needs at least a FROM line"
    );
    assert_eq!(
        parse_err("# just a comment\n\n"),
        "Dockerfile:2:1: the Dockerfile has no instructions; it needs at least a FROM line"
    );
}

#[test]
fn check_directive_skips_parse_warnings() {
    let df = parse_ok(
        "# check=skip=MaintainerDeprecated,StageNameCasing\nFROM a AS Big\nMAINTAINER me\n",
    );
    assert!(df.warnings.is_empty(), "{:?}", df.warnings);
    let df = parse_ok("# check=skip=all\nFROM a\nENV A b\n");
    assert!(df.warnings.is_empty());
}
