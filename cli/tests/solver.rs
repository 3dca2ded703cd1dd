//! The parallel solver: shared work runs once, a failure stops the build with its own error.

mod common;

use common::*;
use std::process::Command;

#[test]
fn an_identical_step_in_two_stages_runs_once() {
    let env = Env::new();
    let ctx = env.path("ctx");
    write_files(
        &ctx,
        &[(
            "Dockerfile",
            "FROM scratch AS a\nCOPY big /big\nFROM scratch AS b\nCOPY big /big\nFROM scratch\nCOPY --from=a /big /a\nCOPY --from=b /big /b\n",
        )],
    );
    std::fs::write(ctx.join("big"), vec![1u8; 2_000_000]).unwrap();
    let out = env.kiln(&["build", "--progress", "plain", "--jobs", "2", ctx.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stderr(&out);
    let copies: Vec<bool> =
        steps(&log).into_iter().filter(|(t, _)| t == "COPY big /big").map(|(_, c)| c).collect();
    assert_eq!(copies.len(), 2, "{log}");
    assert_eq!(copies.iter().filter(|c| **c).count(), 1, "one runs, the other reuses it:\n{log}");
}

#[test]
fn a_failing_stage_fails_the_build_with_its_own_error() {
    let env = Env::new();
    let ctx = env.path("ctx");
    write_files(
        &ctx,
        &[
            (
                "Dockerfile",
                "FROM scratch AS ok\nCOPY a /a\nFROM scratch AS broken\nCOPY missing /m\nFROM scratch\nCOPY --from=ok /a /a\nCOPY --from=broken /m /m\n",
            ),
            ("a", "a"),
        ],
    );
    let out = env.kiln(&["build", "--progress", "plain", "-t", "never:1", ctx.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let message = err.lines().find_map(|l| l.strip_prefix("error: ")).unwrap_or_default();
    assert!(message.starts_with("Dockerfile:4:1: COPY: source \"missing\" not found"), "{err}");
    // The final stage never started.
    assert!(!err.contains("COPY /a /a"), "{err}");
    assert!(!env.kiln_ok(&["images"]).contains("never"));
}

/// Start and end times (seconds of uptime) a RUN recorded in the image.
fn interval(rootfs: &std::path::Path, name: &str) -> (f64, f64) {
    let read = |f: &str| -> f64 {
        std::fs::read_to_string(rootfs.join(format!("{name}-{f}"))).unwrap().trim().parse().unwrap()
    };
    (read("start"), read("end"))
}

#[test]
fn independent_stages_run_at_the_same_time() {
    let env = Env::new();
    let ctx = busybox_context(
        &env,
        As::Root,
        &[(
            "Dockerfile",
            "FROM scratch AS base\nCOPY rootfs/ /\n\
         FROM base AS a\nRUN read t _ < /proc/uptime; echo $t > /a-start; sleep 2; read t _ < /proc/uptime; echo $t > /a-end\n\
         FROM base AS b\nRUN read t _ < /proc/uptime; echo $t > /b-start; sleep 2; read t _ < /proc/uptime; echo $t > /b-end\n\
         FROM scratch\nCOPY --from=a /a-start /a-end /\nCOPY --from=b /b-start /b-end /\n",
        )],
    );
    let layout = env.path("out");
    env.build_to_layout(&ctx, "par", &layout, &["--jobs", "2"]);
    let rootfs = umoci_unpack(&layout, "par", &env.path("bundle"));
    let (a0, a1) = interval(&rootfs, "a");
    let (b0, b1) = interval(&rootfs, "b");
    // The two 2-second RUNs overlapped in time: they ran in parallel, not one after the other.
    // (A wall-clock bound would only restate this, and flake on a loaded machine.)
    assert!(a0 < b1 && b0 < a1, "a {a0}..{a1}, b {b0}..{b1}");
}

#[test]
fn a_failure_cancels_a_running_sibling_and_leaves_nothing_behind() {
    let env = Env::new();
    let ctx = busybox_context(
        &env,
        As::Root,
        &[(
            "Dockerfile",
            "FROM scratch AS base\nCOPY rootfs/ /\n\
         FROM base AS slow\nRUN sleep 41.5\n\
         FROM base AS broken\nRUN sleep 1 && exit 7\n\
         FROM scratch\nCOPY --from=slow /bin /slow\nCOPY --from=broken /bin /broken\n",
        )],
    );
    let started = std::time::Instant::now();
    let out = env.kiln(&["build", "--progress", "plain", "--jobs", "2", ctx.to_str().unwrap()]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("exit code: 7"), "{}", stderr(&out));
    assert!(took.as_secs() < 20, "the sleeping sibling was not stopped: {took:?}");
    assert_no_leftovers(&env, "sleep 41.5");
}

/// No process of the build, no sandbox mount and no temporary directory is left.
fn assert_no_leftovers(env: &Env, command: &str) {
    let ps = Command::new("pgrep").args(["-f", command]).output().unwrap();
    assert!(ps.stdout.is_empty(), "processes left: {}", String::from_utf8_lossy(&ps.stdout));
    let root = env.root();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(root.to_str().unwrap()),
        "mounts left under {}:\n{mounts}",
        root.display()
    );
    let tmp: Vec<_> = std::fs::read_dir(root.join("tmp"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(tmp.is_empty(), "temporaries left: {tmp:?}");
}

#[test]
fn ctrl_c_stops_the_build_and_cleans_up() {
    let env = Env::new();
    let ctx = busybox_context(
        &env,
        As::Root,
        &[("Dockerfile", "FROM scratch\nCOPY rootfs/ /\nRUN echo started && sleep 42.5\n")],
    );
    let mut child = env
        .kiln_cmd(&["build", "--progress", "plain", ctx.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the RUN printed its first line, then press Ctrl-C.
    let mut reader = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut reader, &mut line).unwrap() == 0 {
            panic!("kiln ended before the RUN started:\n{seen}");
        }
        seen.push_str(&line);
        if line.contains(" started") {
            break;
        }
    }
    let started = std::time::Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(started.elapsed().as_secs() < 15, "Ctrl-C took {:?}", started.elapsed());
    assert_eq!(status.code(), Some(1), "{seen}{rest}");
    assert!(rest.contains("interrupted"), "{rest}");
    assert_no_leftovers(&env, "sleep 42.5");
}
