//! Any word expanded with both escape characters, in word and words mode.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let vars = |name: &str| match name {
        "A" => Some("alpha beta".to_string()),
        "EMPTY" => Some(String::new()),
        n if n.len() == 1 => Some(n.repeat(3)),
        _ => None,
    };
    for escape in ['\\', '`'] {
        let _ = kiln_frontend::expand::expand_word(&text, escape, &vars);
        let _ = kiln_frontend::expand::expand_words(&text, escape, &vars);
    }
});
