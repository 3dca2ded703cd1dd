//! Fuzzes the whole frontend: parse arbitrary text, print it back and parse again (the
//! instructions must be the same), render every diagnostic, and lower with an in-memory
//! resolver. Any panic is a bug.
#![no_main]

use kiln_frontend::graph::{ImageResolver, ResolvedImage};
use kiln_frontend::lower::{LowerOptions, lower};
use kiln_frontend::syntax::parse;
use libfuzzer_sys::fuzz_target;

/// Every image exists and is empty.
struct AnyImage;

impl ImageResolver for AnyImage {
    fn resolve(&self, reference: &str, _: Option<&str>) -> Result<ResolvedImage, String> {
        if reference.contains("missing") {
            return Err("no such image".into());
        }
        Ok(ResolvedImage {
            reference: reference.to_string(),
            id: format!("id-{reference}"),
            config: Default::default(),
            os: "linux".into(),
            architecture: "amd64".into(),
        })
    }
}

fn positions_dropped(
    df: &kiln_frontend::syntax::Dockerfile,
) -> kiln_frontend::syntax::JsonDockerfile {
    let mut j = df.to_json();
    for i in &mut j.instructions {
        i.line = 0;
        i.end_line = 0;
    }
    j
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let df = match parse("Dockerfile", text) {
        Ok(df) => df,
        Err(e) => {
            let _ = e.render(text);
            return;
        }
    };
    let printed = df.to_text();
    let again = parse("Dockerfile", &printed).expect("printed Dockerfile parses");
    assert_eq!(positions_dropped(&df), positions_dropped(&again), "round trip changed it");
    for w in &df.warnings {
        let _ = w.render(text);
    }
    let options = LowerOptions {
        target_platform: "linux/amd64".into(),
        build_platform: "linux/amd64".into(),
        ..Default::default()
    };
    match lower(&df, &options, &AnyImage) {
        Ok(g) => {
            let _ = kiln_frontend::show::graph(&g);
        }
        Err(e) => {
            let _ = e.render(text);
        }
    }
});
