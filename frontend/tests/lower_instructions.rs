//! Lowering each instruction: config changes, steps and BuildKit's history text.

mod common;

use std::collections::BTreeMap;

use common::{env, history, lower_ok, opts, opts_args, target, warnings};
use kiln_frontend::config::Healthcheck;
use kiln_frontend::graph::{Base, CopyOp, CopySource, MkdirOp, Op};

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn copy_op(text: &str) -> CopyOp {
    let g = lower_ok(text, &opts());
    let s = target(&g);
    match s.steps.iter().rev().find_map(|st| st.op.clone()) {
        Some(Op::Copy(c)) => *c,
        other => panic!("no copy op: {other:?}"),
    }
}

#[test]
fn scratch_stage_gets_root_workdir_and_default_path() {
    let g = lower_ok("FROM scratch\n", &opts());
    let s = target(&g);
    assert_eq!(s.base, Base::Scratch);
    assert_eq!(s.config.working_dir, "/");
    assert_eq!(s.config.env, [format!("PATH={PATH}")]);
    assert_eq!((s.os.as_str(), s.architecture.as_str()), ("linux", "amd64"));
    assert!(s.steps.is_empty());
    assert_eq!(s.span.line, 1);
    assert_eq!(g.target, 0);
}

#[test]
fn image_config_is_inherited_and_path_added_only_when_missing() {
    let g = lower_ok("FROM node:20\n", &opts());
    let s = target(&g);
    let Base::Image(img) = &s.base else { panic!() };
    assert_eq!(img.id, "sha256:node:20");
    assert_eq!(s.config.env, ["PATH=/usr/bin", "NODE_VERSION=20.1"]);
    assert_eq!(s.config.working_dir, "/home/node");
    assert_eq!(s.config.user, "node");
    assert_eq!(s.config.cmd, Some(vec!["node".to_string()]));
    assert!(s.config.exposed_ports.contains_key("3000/tcp"));

    let g = lower_ok("FROM nopath\n", &opts());
    assert_eq!(target(&g).config.env, ["LANG=C.UTF-8".to_string(), format!("PATH={PATH}")]);
}

#[test]
fn env_sets_config_and_expands_with_previous_values() {
    let g = lower_ok(
        "FROM alpine:3\nENV A=1 B=\"two words\"\nENV A=changed C=$A D=${B}!\nENV LEGACY some value\n",
        &opts(),
    );
    let s = target(&g);
    assert_eq!(env(s, "A"), Some("changed"));
    assert_eq!(env(s, "B"), Some("two words"));
    assert_eq!(env(s, "C"), Some("1"), "ENV expands all words before setting any");
    assert_eq!(env(s, "D"), Some("two words!"));
    assert_eq!(env(s, "LEGACY"), Some("some value"));
    assert_eq!(s.config.env[0], format!("PATH={PATH}"));
    assert_eq!(s.config.env[1], "A=changed", "redefinition keeps the position");
    assert_eq!(
        history(s),
        ["ENV A=1 B=two words", "ENV A=changed C=1 D=two words!", "ENV LEGACY=some value"]
    );
    assert!(s.steps.iter().all(|st| st.op.is_none() && st.keyword == "ENV"));
}

#[test]
fn label_and_maintainer() {
    let g = lower_ok(
        "FROM node:20\nARG V=1.2\nLABEL version=$V \"com.example.name\"=\"App X\"\nMAINTAINER Jane <j@x>\n",
        &opts(),
    );
    let s = target(&g);
    let want: BTreeMap<String, String> =
        [("maintainer", "node"), ("version", "1.2"), ("com.example.name", "App X")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    assert_eq!(s.config.labels, want);
    assert_eq!(
        history(s),
        ["ARG V=1.2", "LABEL version=1.2 com.example.name=App X", "MAINTAINER Jane <j@x>"]
    );
    assert_eq!(s.steps[2].keyword, "MAINTAINER");
}

#[test]
fn workdir_is_joined_and_creates_the_directory_as_the_current_user() {
    let g = lower_ok(
        "FROM alpine:3\nWORKDIR /app\nWORKDIR src/../lib\nUSER 1000:1000\nWORKDIR /data/\nWORKDIR /\n",
        &opts(),
    );
    let s = target(&g);
    assert_eq!(s.config.working_dir, "/");
    assert_eq!(
        history(s),
        ["WORKDIR /app", "WORKDIR /app/lib", "USER 1000:1000", "WORKDIR /data", "WORKDIR /"]
    );
    let ops: Vec<Option<Op>> = s.steps.iter().map(|st| st.op.clone()).collect();
    assert_eq!(ops[0], Some(Op::Mkdir(MkdirOp { path: "/app".into(), owner: None })));
    assert_eq!(ops[1], Some(Op::Mkdir(MkdirOp { path: "/app/lib".into(), owner: None })));
    assert_eq!(
        ops[3],
        Some(Op::Mkdir(MkdirOp { path: "/data".into(), owner: Some("1000:1000".into()) }))
    );
    assert_eq!(ops[4], None, "WORKDIR / creates nothing");
    assert_eq!(s.config.user, "1000:1000");
}

#[test]
fn relative_workdir_starts_from_the_base_image_and_warns() {
    let g = lower_ok("FROM node:20\nWORKDIR app\nWORKDIR sub\n", &opts());
    let s = target(&g);
    assert_eq!(s.config.working_dir, "/home/node/app/sub");
    assert_eq!(
        warnings(&g),
        [
            "Dockerfile:2:9: warning: WORKDIR: relative WORKDIR \"app\" depends on the base image's working directory; write an absolute path"
        ]
    );
}

#[test]
fn workdir_and_user_expand_variables() {
    let g = lower_ok(
        "FROM alpine:3\nENV APP=/srv/app U=web\nWORKDIR $APP/bin\nUSER ${U}:${U}\n",
        &opts(),
    );
    let s = target(&g);
    assert_eq!(s.config.working_dir, "/srv/app/bin");
    assert_eq!(s.config.user, "web:web");
}

#[test]
fn cmd_and_entrypoint_forms() {
    let g = lower_ok("FROM alpine:3\nCMD [\"echo\", \"hi\"]\n", &opts());
    let s = target(&g);
    assert_eq!(s.config.cmd, Some(vec!["echo".to_string(), "hi".to_string()]));
    assert!(s.config.args_escaped);
    assert_eq!(history(s), [r#"CMD ["echo" "hi"]"#]);

    let g = lower_ok("FROM alpine:3\nCMD echo $HOME \"quoted\"\n", &opts());
    let s = target(&g);
    assert_eq!(
        s.config.cmd,
        Some(vec!["/bin/sh".to_string(), "-c".to_string(), "echo $HOME \"quoted\"".to_string()])
    );
    assert_eq!(history(s), [r#"CMD ["/bin/sh" "-c" "echo $HOME \"quoted\""]"#]);
    assert_eq!(
        warnings(&g),
        [
            "Dockerfile:2:1: warning: CMD: use the exec form, CMD [\"program\", \"arg\"]: in shell form the program runs under /bin/sh -c and does not receive stop signals such as SIGTERM"
        ]
    );

    let g = lower_ok(
        "FROM alpine:3\nSHELL [\"/bin/bash\", \"-eu\", \"-c\"]\nENTRYPOINT exec app\n",
        &opts(),
    );
    let s = target(&g);
    assert_eq!(
        s.config.entrypoint,
        Some(vec![
            "/bin/bash".to_string(),
            "-eu".to_string(),
            "-c".to_string(),
            "exec app".to_string()
        ])
    );
    assert_eq!(
        history(s),
        ["SHELL [/bin/bash -eu -c]", r#"ENTRYPOINT ["/bin/bash" "-eu" "-c" "exec app"]"#]
    );
    assert!(g.warnings.is_empty(), "no JSONArgsRecommended once SHELL is set");
}

#[test]
fn entrypoint_resets_the_inherited_cmd_but_not_one_set_in_the_stage() {
    let g = lower_ok("FROM node:20\nENTRYPOINT [\"tini\"]\n", &opts());
    let s = target(&g);
    assert_eq!(s.config.entrypoint, Some(vec!["tini".to_string()]));
    assert_eq!(s.config.cmd, None);

    let g = lower_ok("FROM node:20\nCMD [\"serve\"]\nENTRYPOINT [\"tini\"]\n", &opts());
    assert_eq!(target(&g).config.cmd, Some(vec!["serve".to_string()]));

    let g = lower_ok("FROM node:20\nENTRYPOINT []\n", &opts());
    let s = target(&g);
    assert_eq!(s.config.entrypoint, None);
    assert_eq!(history(s), ["ENTRYPOINT []"]);

    let g = lower_ok("FROM node:20\nCMD []\n", &opts());
    assert_eq!(target(&g).config.cmd, Some(vec![]));
}

#[test]
fn multiple_cmds_warn_at_the_ignored_one() {
    let g = lower_ok("FROM alpine:3\nCMD [\"a\"]\nCMD [\"b\"]\n", &opts());
    assert_eq!(target(&g).config.cmd, Some(vec!["b".to_string()]));
    assert_eq!(
        warnings(&g),
        ["Dockerfile:2:1: warning: CMD: this CMD has no effect: the CMD on line 3 replaces it"]
    );
}

#[test]
fn expose_normalizes_ports_and_writes_buildkit_history() {
    let g = lower_ok("FROM alpine:3\nARG P=8080\nEXPOSE 80 443/TCP 53/udp 9000-9001 $P\n", &opts());
    let s = target(&g);
    let ports: Vec<&str> = s.config.exposed_ports.keys().map(String::as_str).collect();
    assert_eq!(ports, ["443/tcp", "53/udp", "80/tcp", "8080/tcp", "9000/tcp", "9001/tcp"]);
    assert_eq!(
        history(s)[1],
        "EXPOSE map[443/tcp:{} 53/udp:{} 80/tcp:{} 8080/tcp:{} 9000/tcp:{} 9001/tcp:{}]"
    );
    assert_eq!(
        warnings(&g),
        ["Dockerfile:3:11: warning: EXPOSE: write the protocol in \"443/TCP\" in lower case"]
    );
}

#[test]
fn expose_splits_variables_into_several_ports() {
    let g = lower_ok("FROM alpine:3\nENV PORTS=\"80 81\"\nEXPOSE $PORTS\n", &opts());
    let ports: Vec<&str> = target(&g).config.exposed_ports.keys().map(String::as_str).collect();
    assert_eq!(ports, ["80/tcp", "81/tcp"]);
}

#[test]
fn volume_stopsignal_shell() {
    let g = lower_ok(
        "FROM alpine:3\nENV D=/data\nVOLUME $D [\"/not-json\"]\nVOLUME [\"/logs\", \"$D/x\"]\nSTOPSIGNAL SIGQUIT\nSHELL [\"/bin/ash\", \"-c\"]\n",
        &opts(),
    );
    let s = target(&g);
    let vols: Vec<&str> = s.config.volumes.keys().map(String::as_str).collect();
    assert_eq!(vols, ["/data", "/data/x", "/logs", "[/not-json]"]);
    assert_eq!(s.config.stop_signal, "SIGQUIT");
    assert_eq!(s.config.shell, ["/bin/ash", "-c"]);
    assert_eq!(
        history(s),
        [
            "ENV D=/data",
            "VOLUME [/data [/not-json]]",
            "VOLUME [/logs /data/x]",
            "STOPSIGNAL SIGQUIT",
            "SHELL [/bin/ash -c]",
        ]
    );
}

#[test]
fn healthcheck_config_and_history() {
    let g = lower_ok(
        "FROM alpine:3\nHEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD curl -f http://localhost/\n",
        &opts(),
    );
    let s = target(&g);
    assert_eq!(
        s.config.healthcheck,
        Some(Healthcheck {
            test: vec!["CMD-SHELL".into(), "curl -f http://localhost/".into()],
            interval: 30_000_000_000,
            timeout: 5_000_000_000,
            start_period: 0,
            start_interval: 0,
            retries: 3,
        })
    );
    assert_eq!(
        history(s),
        [r#"HEALTHCHECK &{["CMD-SHELL" "curl -f http://localhost/"] "30s" "5s" "0s" "0s" '\x03'}"#]
    );

    let g = lower_ok("FROM alpine:3\nHEALTHCHECK CMD [\"/check\", \"$NOT_EXPANDED\"]\n", &opts());
    let h = target(&g).config.healthcheck.clone().unwrap_or_default();
    assert_eq!(h.test, ["CMD", "/check", "$NOT_EXPANDED"]);

    let g = lower_ok("FROM alpine:3\nHEALTHCHECK NONE\n", &opts());
    let s = target(&g);
    assert_eq!(
        s.config.healthcheck.as_ref().map(|h| h.test.clone()),
        Some(vec!["NONE".to_string()])
    );
    assert_eq!(history(s), [r#"HEALTHCHECK &{["NONE"] "0s" "0s" "0s" "0s" '\x00'}"#]);
}

#[test]
fn onbuild_is_stored_without_a_history_entry() {
    let g = lower_ok("FROM alpine:3\nONBUILD COPY . /app\nONBUILD  RUN make $X\n", &opts());
    let s = target(&g);
    assert_eq!(s.config.on_build, ["COPY . /app", "RUN make $X"]);
    assert!(s.steps.is_empty());
}

#[test]
fn cmd_run_commands_are_not_expanded() {
    let g = lower_ok("FROM alpine:3\nENV X=1\nENTRYPOINT [\"$X\"]\nCMD echo $X\n", &opts());
    let s = target(&g);
    assert_eq!(s.config.entrypoint, Some(vec!["$X".to_string()]));
    assert_eq!(s.config.cmd.as_ref().and_then(|c| c.last().cloned()), Some("echo $X".to_string()));
}

#[test]
fn copy_from_context_with_dest_rules() {
    let c = copy_op("FROM alpine:3\nWORKDIR /app\nCOPY a.txt .\n");
    assert_eq!(c.from, CopySource::Context);
    assert_eq!(c.sources, ["a.txt"]);
    assert_eq!((c.dest.as_str(), c.dest_is_dir), ("/app", true));

    let c = copy_op("FROM alpine:3\nWORKDIR /app\nCOPY a.txt b/\n");
    assert_eq!((c.dest.as_str(), c.dest_is_dir), ("/app/b", true));

    let c = copy_op("FROM alpine:3\nWORKDIR /app\nCOPY a.txt b.txt\n");
    assert_eq!((c.dest.as_str(), c.dest_is_dir), ("/app/b.txt", false));

    let c = copy_op("FROM alpine:3\nCOPY a /\n");
    assert_eq!((c.dest.as_str(), c.dest_is_dir), ("/", true));

    let c = copy_op("FROM alpine:3\nCOPY a b c /opt/x/../y/\n");
    assert_eq!(c.sources, ["a", "b", "c"]);
    assert_eq!((c.dest.as_str(), c.dest_is_dir), ("/opt/y", true));

    let c = copy_op("FROM alpine:3\nCOPY *.txt /out\n");
    assert_eq!((c.dest.as_str(), c.dest_is_dir), ("/out", false));

    let c = copy_op("FROM alpine:3\nCOPY a sub/.\n");
    assert!(c.dest_is_dir);
    assert_eq!(c.dest, "/sub");
}

#[test]
fn copy_flags_and_expansion() {
    let text = "FROM alpine:3\nARG OWNER=app MODE=0640 EX=\"*.log\"\nENV DST=/srv\nCOPY --chown=$OWNER:$OWNER --chmod=$MODE --link --parents --exclude=$EX --exclude=tmp src/$OWNER.conf ${DST}/\n";
    let g = lower_ok(text, &opts());
    let s = target(&g);
    let Some(Op::Copy(c)) = s.steps.last().and_then(|st| st.op.clone()) else { panic!() };
    assert_eq!(c.chown.as_deref(), Some("app:app"));
    assert_eq!(c.chmod, Some(0o640));
    assert!(c.link && c.parents);
    assert_eq!(c.exclude, ["*.log", "tmp"]);
    assert_eq!(c.sources, ["src/app.conf"]);
    assert_eq!(c.dest, "/srv");
    assert_eq!(
        history(s).last().map(String::as_str),
        Some("COPY --parents --chown=app:app --chmod=0640 src/app.conf /srv/")
    );
}

#[test]
fn copy_history_omits_from_and_link() {
    let g = lower_ok("FROM alpine:3 AS a\nFROM alpine:3\nCOPY --from=a --link /x /y\n", &opts());
    assert_eq!(history(target(&g)), ["COPY /x /y"]);
}

#[test]
fn copy_heredocs_become_inline_files() {
    let text = "FROM alpine:3\nENV NAME=world\nCOPY <<hello.txt <<'raw.txt' <<-tabs.txt /files/\nhello $NAME \"quoted\" \\$HOME\nhello.txt\nnot $NAME\nraw.txt\n\t\tindented\n\ttabs.txt\n";
    let c = copy_op(text);
    assert_eq!(
        c.inline,
        [
            ("hello.txt".to_string(), "hello world \"quoted\" $HOME\n".to_string()),
            ("raw.txt".to_string(), "not $NAME\n".to_string()),
            ("tabs.txt".to_string(), "indented\n".to_string()),
        ]
    );
    assert!(c.sources.is_empty());
    assert_eq!((c.dest.as_str(), c.dest_is_dir), ("/files", true));
    let g = lower_ok(text, &opts());
    assert_eq!(
        history(target(&g)).last().map(String::as_str),
        Some("COPY <<hello.txt <<raw.txt <<tabs.txt /files/")
    );

    let c = copy_op("FROM alpine:3\nCOPY <<EOF /etc/motd\nWelcome\nEOF\n");
    assert_eq!(c.inline, [("EOF".to_string(), "Welcome\n".to_string())]);
    assert_eq!((c.dest.as_str(), c.dest_is_dir), ("/etc/motd", false));
}

#[test]
fn copy_json_form_keeps_spaces() {
    let c = copy_op("FROM alpine:3\nCOPY [\"my file.txt\", \"/dest dir/\"]\n");
    assert_eq!(c.sources, ["my file.txt"]);
    assert_eq!(c.dest, "/dest dir");
}

#[test]
fn arg_in_stage_is_recorded_in_history() {
    let g = lower_ok("FROM alpine:3\nARG A B=2\nARG C=$B-x\n", &opts_args(&[("A", "from-cli")]));
    let s = target(&g);
    assert_eq!(history(s), ["ARG A=from-cli B=2", "ARG C=2-x"]);
    assert_eq!(env(s, "A"), None, "ARG values are not ENV");
    let g = lower_ok("FROM alpine:3\nARG UNSET\n", &opts());
    assert_eq!(history(target(&g)), ["ARG UNSET"]);
}

#[test]
fn steps_carry_spans_and_keywords() {
    let g = lower_ok("FROM alpine:3\nENV A=1 \\\n    B=2\nCOPY x /y\n", &opts());
    let s = target(&g);
    assert_eq!(s.steps[0].keyword, "ENV");
    assert_eq!((s.steps[0].span.line, s.steps[0].span.end_line), (2, 3));
    assert_eq!(s.steps[1].keyword, "COPY");
    assert_eq!(s.steps[1].span.line, 4);
}
