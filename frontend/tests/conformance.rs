//! The conformance suite: every Dockerfile under `tests/conformance/` is parsed and lowered,
//! and both results are compared with the committed snapshots in `tests/snapshots/`
//! (`<name>.parse`: the `kiln parse --json` output or the rendered error; `<name>.graph`: the
//! `kiln plan` text or the rendered error).
//!
//! A line `# kiln-test: ARGS` in a Dockerfile sets lowering options: `--target=STAGE`,
//! `--build-arg=K=V`, `--platform=OS/ARCH`. Review changes with `cargo insta review` (or
//! `INSTA_UPDATE=always cargo test --test conformance` and `git diff`).

mod common;

use std::path::Path;

use common::{FakeResolver, opts};
use kiln_frontend::lower::{LowerOptions, lower};
use kiln_frontend::syntax::parse;

fn options(text: &str) -> LowerOptions {
    let mut o = opts();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("# kiln-test:") else { continue };
        for arg in rest.split_whitespace() {
            if let Some(t) = arg.strip_prefix("--target=") {
                o.target = Some(t.to_string());
            } else if let Some(kv) = arg.strip_prefix("--build-arg=") {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                o.build_args.insert(k.to_string(), v.to_string());
            } else if let Some(p) = arg.strip_prefix("--platform=") {
                o.target_platform = p.to_string();
            } else {
                panic!("unknown kiln-test option {arg}");
            }
        }
    }
    o
}

fn check(path: &Path) {
    let name = path.file_stem().and_then(|s| s.to_str()).expect("file name").to_string();
    let text = std::fs::read_to_string(path).expect("read conformance file");
    let (parsed, graph) = match parse("Dockerfile", &text) {
        Ok(df) => {
            let json = serde_json::to_string_pretty(&df.to_json()).expect("json");
            let graph = match lower(&df, &options(&text), &FakeResolver::default()) {
                Ok(g) => kiln_frontend::show::graph(&g),
                Err(e) => format!("error: {}\n", e.render(&text)),
            };
            (json, graph)
        }
        Err(e) => {
            let rendered = format!("error: {}\n", e.render(&text));
            (rendered.clone(), rendered)
        }
    };
    insta::with_settings!({ snapshot_path => "snapshots", prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!(format!("{name}.parse"), parsed);
        insta::assert_snapshot!(format!("{name}.graph"), graph);
    });
}

#[test]
fn conformance_suite() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("conformance dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "Dockerfile"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "conformance files missing: {}", files.len());
    for f in &files {
        check(f);
    }
}
