//! RUN end to end, as root and as a non-root user (rootless): layer diffs with whiteouts and
//! ownership, USER/WORKDIR/SHELL, exec form, heredocs, every mount type, networks, failures.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::*;

/// Builds `ctx` as `who` into an OCI layout; returns (layout dir, stderr).
fn build(
    env: &Env,
    who: As,
    ctx: &Path,
    tag: &str,
    extra: &[&str],
) -> (std::path::PathBuf, String) {
    let out = env.path(&format!("out-{tag}"));
    let dest = format!("type=oci,dest={}", out.display());
    let name = format!("run:{tag}");
    let mut args = vec!["build", "--progress", "plain", "-t", &name, "--output", &dest];
    args.extend_from_slice(extra);
    let c = ctx.to_str().unwrap().to_string();
    args.push(&c);
    let o = env.kiln_as(who, &args);
    let err = stderr(&o);
    assert!(o.status.success(), "kiln {args:?} as {who:?} failed:\n{err}");
    (out, err)
}

/// Names in the tar of layer `index` (negative: from the end) of a layout's image.
fn layer_names(layout: &Path, tag: &str, index: isize) -> Vec<String> {
    let manifest = skopeo_manifest(layout, tag);
    let layers = manifest["layers"].as_array().unwrap();
    let i = if index < 0 { layers.len() as isize + index } else { index } as usize;
    let digest = layers[i]["digest"].as_str().unwrap().trim_start_matches("sha256:");
    let out = run_ok(Command::new("tar").arg("-tzf").arg(layout.join("blobs/sha256").join(digest)));
    out.lines().map(str::to_string).collect()
}

fn changes_files_owners_and_whiteouts(who: As) {
    let env = Env::for_user(who);
    let ctx = busybox_context(
        &env,
        who,
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY rootfs/ /\nRUN mkdir -p /data /gone && echo one > /data/a && echo x > /gone/f && echo keep > /keep\n\
         RUN rm -r /gone && rm /bin/ls && echo two >> /data/a && chown 1234:5678 /data/a && chown 42:43 /keep\n\
         RUN touch /untouched-by-later || true\n",
        )],
    );
    let (out, _) = build(&env, who, &ctx, "diff", &[]);
    let names = layer_names(&out, "diff", -2);
    for expected in ["bin/.wh.ls", ".wh.gone", "data/a"] {
        assert!(
            names.iter().any(|n| n.trim_end_matches('/') == expected),
            "{expected} missing in {names:?}"
        );
    }
    assert!(
        !names
            .iter()
            .any(|n| n.contains("resolv.conf") || n.contains("hostname") || n.contains("hosts")),
        "{names:?}"
    );
    let rootfs = umoci_unpack(&out, "diff", &env.path("bundle"));
    assert!(!rootfs.join("bin/ls").exists());
    assert!(!rootfs.join("gone").exists());
    assert_eq!(std::fs::read_to_string(rootfs.join("data/a")).unwrap(), "one\ntwo\n");
    let a = std::fs::metadata(rootfs.join("data/a")).unwrap();
    assert_eq!((a.uid(), a.gid()), (1234, 5678));
    let k = std::fs::metadata(rootfs.join("keep")).unwrap();
    assert_eq!((k.uid(), k.gid()), (42, 43));
    assert!(!rootfs.join("etc/resolv.conf").exists(), "sandbox files must not be committed");
}

#[test]
fn run_changes_files_owners_and_whiteouts_as_root() {
    changes_files_owners_and_whiteouts(As::Root);
}

#[test]
fn run_changes_files_owners_and_whiteouts_rootless() {
    changes_files_owners_and_whiteouts(As::Rootless);
}

fn user_workdir_shell_exec_and_heredoc(who: As) {
    let env = Env::for_user(who);
    let ctx = busybox_context(
        &env,
        who,
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY rootfs/ /\nCOPY etc/ /etc/\nWORKDIR /work/dir\nRUN pwd > /where && mkdir -m 1777 /tmp\n\
         USER app\nRUN id > /tmp/who\nUSER root\n\
         SHELL [\"/bin/busybox\", \"sh\", \"-c\"]\nRUN echo \"$0\" > /shell\n\
         RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo exec > /exec\"]\n\
         RUN <<EOF\necho line1 > /heredoc\necho line2 >> /heredoc\nEOF\n\
         ENV GREETING=hi\nARG LEVEL=3\nRUN echo \"$GREETING $LEVEL\" > /env\n",
            ),
            ("etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"),
            ("etc/group", "root:x:0:\napp:x:1000:\nwheel:x:10:app\n"),
        ],
    );
    let (out, _) = build(&env, who, &ctx, "user", &[]);
    let rootfs = umoci_unpack(&out, "user", &env.path("bundle"));
    let read =
        |p: &str| std::fs::read_to_string(rootfs.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert_eq!(read("where"), "/work/dir\n");
    assert_eq!(read("tmp/who").trim(), "uid=1000(app) gid=1000(app) groups=10(wheel)");
    assert_eq!(read("shell"), "sh\n");
    assert_eq!(read("exec"), "exec\n");
    assert_eq!(read("heredoc"), "line1\nline2\n");
    assert_eq!(read("env"), "hi 3\n");
    let config = skopeo_config(&out, "user");
    let env_vars = config["config"]["Env"].to_string();
    assert!(!env_vars.contains("LEVEL"), "ARGs are not persisted: {env_vars}");
}

#[test]
fn user_workdir_shell_exec_and_heredoc_as_root() {
    user_workdir_shell_exec_and_heredoc(As::Root);
}

#[test]
fn user_workdir_shell_exec_and_heredoc_rootless() {
    user_workdir_shell_exec_and_heredoc(As::Rootless);
}

fn mounts(who: As) {
    let env = Env::for_user(who);
    let ctx = busybox_context(
        &env,
        who,
        &[
            (
                "Dockerfile",
                "FROM scratch AS files\nCOPY data.txt /from-stage.txt\n\
          FROM scratch\nCOPY rootfs/ /\n\
          RUN --mount=type=cache,target=/cache echo run >> /cache/log && wc -l < /cache/log > /cache-count\n\
          RUN --mount=type=bind,source=data.txt,target=/in.txt cat /in.txt > /bound\n\
          RUN --mount=type=bind,from=files,target=/s cat /s/from-stage.txt > /stage-bound\n\
          RUN --mount=type=tmpfs,target=/scratch echo t > /scratch/x && test ! -e /keep-nothing && ls /scratch > /tmpfs-list\n\
          RUN --mount=type=secret,id=token cat /run/secrets/token | wc -c > /secret-len\n\
          RUN --mount=type=secret,id=token,env=TOKEN test -n \"$TOKEN\" && echo set > /secret-env\n",
            ),
            ("data.txt", "context data\n"),
            ("token.txt", "s3cr3t-value-42"),
        ],
    );
    let secret = format!("id=token,src={}", ctx.join("token.txt").display());
    let (out, _) = build(&env, who, &ctx, "m1", &["--secret", &secret]);
    let rootfs = umoci_unpack(&out, "m1", &env.path("b1"));
    let read =
        |p: &str| std::fs::read_to_string(rootfs.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert_eq!(read("cache-count").trim(), "1");
    assert_eq!(read("bound"), "context data\n");
    assert_eq!(read("stage-bound"), "context data\n");
    assert_eq!(read("tmpfs-list").trim(), "x");
    assert!(!rootfs.join("scratch/x").exists(), "tmpfs contents are not committed");
    assert!(!rootfs.join("cache/log").exists(), "cache contents are not committed");
    assert_eq!(read("secret-len").trim(), "15");
    assert_eq!(read("secret-env"), "set\n");
    assert!(!rootfs.join("run/secrets/token").exists());
    // The secret's value is nowhere in the image: no blob, config or history holds it.
    for entry in std::fs::read_dir(out.join("blobs/sha256")).unwrap() {
        let path = entry.unwrap().path();
        let raw = std::fs::read(&path).unwrap();
        let text = if raw.starts_with(&[0x1f, 0x8b]) {
            let mut s = Vec::new();
            std::io::Read::read_to_end(&mut flate2_gunzip(&raw), &mut s).unwrap();
            s
        } else {
            raw
        };
        assert!(
            !String::from_utf8_lossy(&text).contains("s3cr3t-value-42"),
            "secret leaked into {}",
            path.display()
        );
    }
    // The cache mount keeps its content for the next build (which must run the step again).
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY rootfs/ /\nRUN --mount=type=cache,target=/cache echo again >> /cache/log && wc -l < /cache/log > /cache-count\n").unwrap();
    if who == As::Rootless {
        run_ok(Command::new("chown").args(["kilntest:kilntest"]).arg(ctx.join("Dockerfile")));
    }
    let (out2, _) = build(&env, who, &ctx, "m2", &[]);
    let rootfs2 = umoci_unpack(&out2, "m2", &env.path("b2"));
    assert_eq!(std::fs::read_to_string(rootfs2.join("cache-count")).unwrap().trim(), "2");
    // A required secret that is not given fails with a clear message.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\nRUN --mount=type=secret,id=nope,required=true true\n",
    )
    .unwrap();
    let o = env.kiln_as(who, &["build", "--progress", "plain", ctx.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("secret \"nope\" is required"), "{}", stderr(&o));
}

fn flate2_gunzip(raw: &[u8]) -> impl std::io::Read + '_ {
    // The system gzip reads what kiln wrote; decompress through it to keep the test honest.
    let mut child = Command::new("gzip")
        .args(["-dc"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = raw.to_vec();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    std::io::Cursor::new(out.stdout)
}

#[test]
fn mounts_as_root() {
    mounts(As::Root);
}

#[test]
fn mounts_rootless() {
    mounts(As::Rootless);
}

fn networks(who: As) {
    let env = Env::for_user(who);
    let ctx = busybox_context(
        &env,
        who,
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY rootfs/ /\nRUN --network=none grep -c : /proc/net/dev > /none-ifaces && cat /proc/net/dev > /none-dev\n\
         RUN grep -c : /proc/net/dev > /host-ifaces\n",
        )],
    );
    let (out, _) = build(&env, who, &ctx, "net", &[]);
    let rootfs = umoci_unpack(&out, "net", &env.path("bundle"));
    let none = std::fs::read_to_string(rootfs.join("none-dev")).unwrap();
    assert_eq!(std::fs::read_to_string(rootfs.join("none-ifaces")).unwrap().trim(), "1", "{none}");
    assert!(none.contains("lo:"), "{none}");
    let host_count: usize =
        std::fs::read_to_string(rootfs.join("host-ifaces")).unwrap().trim().parse().unwrap();
    let real = std::fs::read_to_string("/proc/net/dev").unwrap().matches(':').count();
    assert_eq!(host_count, real, "the default network is the host's");
}

#[test]
fn networks_as_root() {
    networks(As::Root);
}

#[test]
fn networks_rootless() {
    networks(As::Rootless);
}

#[test]
fn a_failing_command_names_its_status_and_output_and_tags_nothing() {
    let env = Env::new();
    let ctx = busybox_context(
        &env,
        As::Root,
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY rootfs/ /\nRUN echo first line && echo \"to stderr\" >&2 && exit 3\n",
        )],
    );
    let o = env.kiln(&["build", "--progress", "plain", "-t", "fail:1", ctx.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let message = err.split("error: ").nth(1).unwrap_or_default();
    assert!(message.starts_with("Dockerfile:3:1: RUN: the command echo first line"), "{err}");
    assert!(message.contains("exit code: 3"), "{err}");
    assert!(message.contains("first line") && message.contains("to stderr"), "{err}");
    assert!(!env.kiln_ok(&["images"]).contains("fail"));
    let leftovers: Vec<_> = std::fs::read_dir(env.root().join("tmp")).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn run_layers_are_cached_and_rerun_when_their_inputs_change() {
    let env = Env::new();
    let ctx = busybox_context(
        &env,
        As::Root,
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY rootfs/ /\nARG V=1\nRUN echo $V > /v\nRUN --mount=type=bind,source=in.txt,target=/in cat /in > /copied\n",
            ),
            ("in.txt", "a"),
        ],
    );
    let c = ctx.to_str().unwrap();
    env.kiln_ok(&["build", "--progress", "plain", c]);
    let again = env.kiln(&["build", "--progress", "plain", c]);
    assert!(rebuilt(&stderr(&again)).is_empty(), "{}", stderr(&again));
    let arg = env.kiln(&["build", "--progress", "plain", "--build-arg", "V=2", c]);
    assert_eq!(rebuilt(&stderr(&arg)).len(), 2, "{}", stderr(&arg));
    std::fs::write(ctx.join("in.txt"), "b").unwrap();
    let bound = env.kiln(&["build", "--progress", "plain", "--build-arg", "V=2", c]);
    let ran = rebuilt(&stderr(&bound));
    assert_eq!(ran.len(), 1, "only the RUN reading in.txt: {}", stderr(&bound));
    assert!(ran[0].contains("cat /in"), "{ran:?}");
}

#[test]
fn exec_form_without_a_shell_and_a_missing_command() {
    let env = Env::new();
    let ctx = busybox_context(
        &env,
        As::Root,
        &[("Dockerfile", "FROM scratch\nCOPY rootfs/ /\nRUN [\"no-such-program\", \"x\"]\n")],
    );
    let o = env.kiln(&["build", "--progress", "plain", ctx.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no-such-program"), "{}", stderr(&o));
}
