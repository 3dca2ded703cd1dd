//! The parallel solver: shared work runs once, a failure stops the build with its own error.

mod common;

use common::*;

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
