//! Any text as a Dockerfile: parse and lower (with a resolver that knows no image).
#![no_main]

use kiln_frontend::graph::{ImageResolver, ResolvedImage};
use kiln_frontend::lower::{LowerOptions, lower};
use libfuzzer_sys::fuzz_target;

struct NoImages;

impl ImageResolver for NoImages {
    fn resolve(&self, reference: &str, _platform: Option<&str>) -> Result<ResolvedImage, String> {
        Err(format!("{reference}: no images while fuzzing"))
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(df) = kiln_frontend::syntax::parse("Dockerfile", &text) {
        let options = LowerOptions {
            target_platform: "linux/amd64".into(),
            build_platform: "linux/amd64".into(),
            ..LowerOptions::default()
        };
        let _ = lower(&df, &options, &NoImages);
    }
});
