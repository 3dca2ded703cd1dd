//! Lowering `RUN`: argv (shell, exec, heredocs), environment, user/workdir, mounts with
//! BuildKit's defaults, network/security, history text, and errors with positions.

mod common;

use common::{history, lower_err, lower_ok, opts, opts_args, target, warnings};
use kiln_frontend::graph::{
    Base, CacheSharing, MountSource, Op, RunFile, RunMount, RunNetwork, RunOp, RunSecurity,
};
use kiln_frontend::lower::LowerOptions;

fn run_op_with(text: &str, o: &LowerOptions) -> RunOp {
    let g = lower_ok(text, o);
    match target(&g).steps.iter().rev().find_map(|st| st.op.clone()) {
        Some(Op::Run(r)) => *r,
        other => panic!("no run op: {other:?}"),
    }
}

fn run_op(text: &str) -> RunOp {
    run_op_with(text, &opts())
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn shell_and_exec_forms() {
    let r = run_op("FROM busybox\nRUN echo hi  \\\n  there\n");
    assert_eq!(r.argv, strs(&["/bin/sh", "-c", "echo hi    there"]));
    assert_eq!(r.command, "echo hi    there");
    assert_eq!(r.env, ["PATH=/bin"]);
    assert_eq!((r.user.as_str(), r.workdir.as_str()), ("", "/"));
    assert_eq!((r.network, r.security), (RunNetwork::Default, RunSecurity::Sandbox));
    assert!(r.mounts.is_empty() && r.files.is_empty());

    let r =
        run_op("FROM busybox\nSHELL [\"/bin/bash\", \"-eo\", \"pipefail\", \"-c\"]\nRUN a | b\n");
    assert_eq!(r.argv, strs(&["/bin/bash", "-eo", "pipefail", "-c", "a | b"]));

    let r = run_op("FROM busybox\nRUN [\"echo\", \"a b\"]\n");
    assert_eq!(r.argv, strs(&["echo", "a b"]));
    assert_eq!(r.command, r#"["echo","a b"]"#);

    let g = lower_ok("FROM busybox\nRUN echo hi\nRUN [\"echo\", \"a b\"]\nRUN\n", &opts());
    assert_eq!(history(target(&g)), ["RUN /bin/sh -c echo hi", "RUN echo a b", "RUN /bin/sh -c "]);
    assert!(target(&g).steps.iter().all(|s| s.keyword == "RUN"));
}

#[test]
fn user_workdir_and_environment() {
    let r =
        run_op("FROM node:20\nENV A=1\nUSER app:staff\nWORKDIR src\nARG V=2\nENV A=3\nRUN make\n");
    assert_eq!(r.user, "app:staff");
    assert_eq!(r.workdir, "/home/node/src");
    assert_eq!(r.env, ["PATH=/usr/bin", "NODE_VERSION=20.1", "A=3", "V=2"]);
}

#[test]
fn args_prefix_history_as_buildkit_does() {
    let text = "FROM busybox\nARG A=1\nARG B\nENV C=3\nRUN x\n";
    let g = lower_ok(text, &opts());
    assert_eq!(history(target(&g))[3], "RUN |2 A=1 B= /bin/sh -c x");
    let r = run_op(text);
    assert_eq!(r.env, ["PATH=/bin", "A=1", "C=3"]);

    let g = lower_ok(text, &opts_args(&[("B", "two words")]));
    assert_eq!(history(target(&g))[3], "RUN |2 A=1 B=two words /bin/sh -c x");

    // ENV after ARG shows the ENV value; a redeclared ARG keeps its first position.
    let g = lower_ok("FROM busybox\nARG A=1\nARG B=2\nENV A=env\nARG B=3\nRUN x\n", &opts());
    assert_eq!(history(target(&g))[4], "RUN |2 A=env B=3 /bin/sh -c x");

    // Stages built on a stage inherit its ARGs.
    let g = lower_ok("FROM busybox AS base\nARG A=1\nFROM base\nARG Z=9\nRUN x\n", &opts());
    assert_eq!(history(target(&g))[1], "RUN |2 A=1 Z=9 /bin/sh -c x");
    assert!(matches!(target(&g).base, Base::Stage(0)));
}

#[test]
fn proxy_build_args_reach_run_but_not_history() {
    let o = opts_args(&[("HTTP_PROXY", "http://proxy:3128"), ("no_proxy", "localhost")]);
    let g = lower_ok("FROM busybox\nRUN apk add git\n", &o);
    assert_eq!(history(target(&g)), ["RUN /bin/sh -c apk add git"]);
    let r = run_op_with("FROM busybox\nRUN apk add git\n", &o);
    assert_eq!(
        r.env,
        [
            "PATH=/bin",
            "HTTP_PROXY=http://proxy:3128",
            "http_proxy=http://proxy:3128",
            "NO_PROXY=localhost",
            "no_proxy=localhost"
        ]
    );
    assert!(warnings(&g).is_empty(), "{:?}", warnings(&g));
}

#[test]
fn heredocs_run_as_buildkit_runs_them() {
    let r = run_op("FROM busybox\nRUN <<EOF\necho a\necho $HOME\nEOF\n");
    assert_eq!(r.argv, strs(&["/bin/sh", "-c", "echo a\necho $HOME\n"]));
    assert!(r.files.is_empty());

    let g = lower_ok("FROM busybox\nRUN <<EOF\necho a\nEOF\n", &opts());
    assert_eq!(history(target(&g)), ["RUN /bin/sh -c echo a\n"]);

    let r = run_op("FROM busybox\nRUN <<-EOF\n\techo a\n\tEOF\n");
    assert_eq!(r.argv[2], "echo a\n");

    let r = run_op("FROM busybox\nRUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n");
    assert_eq!(r.argv, strs(&["/bin/sh", "-c", "/dev/pipes/EOF"]));
    assert_eq!(
        r.files,
        [RunFile {
            path: "/dev/pipes/EOF".into(),
            content: "#!/usr/bin/env python3\nprint(1)\n".into(),
            mode: 0o755
        }]
    );

    let r = run_op("FROM busybox\nRUN <<EOF python3\nprint(1)\nEOF\n");
    assert_eq!(r.argv, strs(&["/bin/sh", "-c", "<<EOF python3\nprint(1)\nEOF"]));
    assert_eq!(r.command, "<<EOF python3");

    let r = run_op("FROM busybox\nRUN cat <<A && cat <<-B\nfirst\nA\n\tsecond\n\tB\n");
    assert_eq!(r.argv[2], "cat <<A && cat <<-B\nfirst\nA\n\tsecond\nB");

    // A heredoc inside a continuation.
    let r = run_op("FROM busybox\nRUN --network=none \\\n  <<EOF\nls\nEOF\n");
    assert_eq!((r.argv[2].as_str(), r.network), ("ls\n", RunNetwork::None));
}

#[test]
fn mounts_get_buildkit_defaults() {
    let r = run_op(
        "FROM busybox AS deps\nFROM busybox\nWORKDIR /w\n\
         RUN --mount=type=cache,target=/root/.cache \\\n\
             --mount=from=deps,source=out,target=rel \\\n\
             --mount=type=tmpfs,target=/tmp,size=64m \\\n\
             --mount=type=secret,id=npmrc \\\n\
             --mount=type=secret,target=/etc/token,env=TOKEN,required \\\n\
             --mount=type=ssh \\\n\
             --mount=type=ssh,id=work,target=/s.sock,mode=0660 \\\n\
             --mount=type=bind,target=/ctx,rw \\\n\
             make\n",
    );
    assert_eq!(
        r.mounts,
        [
            RunMount::Cache {
                target: "/root/.cache".into(),
                id: "/root/.cache".into(),
                from: MountSource::Scratch,
                source: "/".into(),
                sharing: CacheSharing::Shared,
                readonly: false,
                uid: 0,
                gid: 0,
                mode: 0o755,
            },
            RunMount::Bind {
                target: "/w/rel".into(),
                from: MountSource::Stage(0),
                source: "/out".into(),
                readonly: true,
            },
            RunMount::Tmpfs { target: "/tmp".into(), size: Some(64 << 20) },
            RunMount::Secret {
                id: "npmrc".into(),
                target: Some("/run/secrets/npmrc".into()),
                env: None,
                required: false,
                uid: 0,
                gid: 0,
                mode: 0o400,
            },
            RunMount::Secret {
                id: "token".into(),
                target: Some("/etc/token".into()),
                env: Some("TOKEN".into()),
                required: true,
                uid: 0,
                gid: 0,
                mode: 0o400,
            },
            RunMount::Ssh {
                id: "default".into(),
                target: "/run/buildkit/ssh_agent.0".into(),
                required: false,
                uid: 0,
                gid: 0,
                mode: 0o600,
            },
            RunMount::Ssh {
                id: "work".into(),
                target: "/s.sock".into(),
                required: false,
                uid: 0,
                gid: 0,
                mode: 0o660,
            },
            RunMount::Bind {
                target: "/ctx".into(),
                from: MountSource::Context,
                source: "/".into(),
                readonly: false,
            },
        ]
    );
    assert_eq!(r.env.last().map(String::as_str), Some("SSH_AUTH_SOCK=/run/buildkit/ssh_agent.0"));
    assert_eq!(r.mounts[4].target(), Some("/etc/token"));
}

#[test]
fn mount_values_expand_and_from_resolves_images_and_stages() {
    let r = run_op(
        "FROM busybox\nARG CACHE=/var/cache/apk\nRUN --mount=type=cache,id=apk-$CACHE,target=$CACHE,sharing=locked,from=tools:1,source=/seed \\\n    --mount=type=secret,id=tok,env=TOK apk add x\n",
    );
    let RunMount::Cache { target, id, from, sharing, source, .. } = &r.mounts[0] else {
        panic!("{:?}", r.mounts)
    };
    assert_eq!((target.as_str(), id.as_str()), ("/var/cache/apk", "apk-/var/cache/apk"));
    assert_eq!((sharing, source.as_str()), (&CacheSharing::Locked, "/seed"));
    let MountSource::Image(img) = from else { panic!("{from:?}") };
    assert_eq!(img.reference, "tools:1");
    assert!(
        matches!(&r.mounts[1], RunMount::Secret { target: None, env: Some(e), .. } if e == "TOK")
    );
    assert!(!r.env.iter().any(|e| e.starts_with("TOK=")), "secrets never enter env");
}

#[test]
fn stages_used_only_by_mounts_are_built_and_others_pruned() {
    let text = "FROM busybox AS a\nFROM busybox AS b\nFROM busybox AS unused\nFROM busybox\n\
                RUN --mount=from=a,target=/a --mount=type=cache,from=b,target=/b true\n";
    let g = lower_ok(text, &opts());
    let names: Vec<_> = g.stages.iter().map(|s| s.name.clone()).collect();
    assert_eq!(names, [Some("a".into()), Some("b".into()), None]);
    let Some(Op::Run(r)) = &target(&g).steps[0].op else { panic!() };
    assert!(matches!(r.mounts[0], RunMount::Bind { from: MountSource::Stage(0), .. }));
    assert!(matches!(r.mounts[1], RunMount::Cache { from: MountSource::Stage(1), .. }));
}

#[test]
fn network_and_security() {
    let r = run_op("FROM busybox\nRUN --network=host --security=insecure ip a\n");
    assert_eq!((r.network, r.security), (RunNetwork::Host, RunSecurity::Insecure));
    let g = lower_ok("FROM busybox\nRUN --network=none true\n", &opts());
    assert_eq!(history(target(&g)), ["RUN /bin/sh -c true"]);
}

#[test]
fn run_errors_point_at_the_option() {
    let cases: &[(&str, &str)] = &[
        (
            "FROM busybox\nRUN --mount=type=bind,trget=/x true\n",
            "Dockerfile:2:23: RUN: --mount: unknown --mount option \"trget\"; did you mean target?",
        ),
        (
            "FROM busybox\nRUN --mount=type=cache,target=/c,uid=x true\n",
            "Dockerfile:2:34: RUN: --mount: uid=x: not a numeric id",
        ),
        (
            "FROM busybox\nRUN --mount=\"type=bind,trget=/x\" true\n",
            "Dockerfile:2:5: RUN: --mount: unknown --mount option \"trget\"; did you mean target?",
        ),
        (
            "FROM busybox\nRUN --mount=type=bind,target=/ true\n",
            "Dockerfile:2:5: RUN: --mount: invalid target \"/\": a mount cannot cover the root directory; give target=/some/dir",
        ),
        (
            "FROM busybox\nRUN --mount=type=secret true\n",
            "Dockerfile:2:5: RUN: --mount: a secret mount needs id= (or target=): --mount=type=secret,id=NAME",
        ),
        (
            "FROM busybox AS self\nRUN --mount=from=self,target=/x true\n",
            "Dockerfile:2:5: RUN: --mount from=self: a stage cannot mount itself (self)",
        ),
        (
            "FROM busybox AS first\nRUN --mount=from=later,target=/x true\nFROM busybox AS later\nFROM first\n",
            "Dockerfile:2:5: RUN: --mount from=later: stage \"later\" is defined after this stage (first, line 3); a stage can only mount stages above it",
        ),
        (
            "FROM busybox\nRUN --mount=from=nosuch:1,target=/x true\n",
            "Dockerfile:2:5: RUN: image \"nosuch:1\" not found: no such image in the local store (nosuch:1)",
        ),
        (
            "FROM busybox\nRUN --mount=type=cache,target=${X:?required} true\n",
            "Dockerfile:2:24: RUN: --mount: target=${X:?required}: X: required (in \"${X:?required}\")",
        ),
        (
            "FROM busybox\nRUN []\n",
            "Dockerfile:2:1: RUN: RUN [] has nothing to run: give the program, like RUN [\"make\", \"all\"]",
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
