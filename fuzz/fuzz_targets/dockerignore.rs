//! Any text as a .dockerignore, matched against paths taken from the same input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (rules, paths) = text.split_once('\0').unwrap_or((&text, "a/b/c"));
    if let Ok(rules) = kiln_builder::context::IgnoreRules::parse(rules) {
        for path in paths.split('\n').take(32) {
            let _ = rules.is_excluded(path.trim_start_matches('/'));
        }
    }
    for segment in paths.split('/').take(8) {
        let _ = kiln_builder::context::match_segment(rules, segment);
    }
});
