//! `kiln plan`: the build graph printed without building, named contexts included.

mod common;

use common::*;

#[test]
fn plan_prints_the_graph_with_named_contexts() {
    let env = Env::new();
    let ctx = env.path("ctx");
    write_files(
        &ctx,
        &[("Dockerfile", "FROM scratch AS a\nCOPY --from=extra x /x\nFROM base\nENV A=1\n")],
    );
    let text = env.kiln_ok(&[
        "plan",
        "--build-context",
        "base=target:a",
        "--build-context",
        "extra=/tmp",
        ctx.to_str().unwrap(),
    ]);
    assert!(text.contains("stage 1 (FROM on line 3, stage 1 of the file)"), "{text}");
    assert!(text.contains("  base: stage 0\n"), "{text}");
    assert!(text.contains(r#""from":{"named":"extra"}"#), "{text}");
    // Without the named context, `base` is an image the store does not have.
    let out = env.kiln(&["plan", ctx.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("base"), "{}", stderr(&out));
}
