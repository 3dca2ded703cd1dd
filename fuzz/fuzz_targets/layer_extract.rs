//! Any bytes as a tar layer unpacked into a snapshot directory: nothing may be created outside
//! it (checked by a sentinel beside it), and no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let dest = dir.path().join("snapshot");
    let outside = dir.path().join("outside");
    if std::fs::create_dir(&dest).is_err() || std::fs::create_dir(&outside).is_err() {
        return;
    }
    let opts = kiln_cache::snapshot::ExtractOptions::default();
    let _ = kiln_cache::snapshot::extract_layer(data, "application/vnd.oci.image.layer.v1.tar", &dest, None, &opts);
    let escaped: Vec<_> = std::fs::read_dir(dir.path())
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(escaped.len() == 2, "extraction created {escaped:?} beside the snapshot");
    assert!(std::fs::read_dir(&outside).map(|mut rd| rd.next().is_none()).unwrap_or(false), "wrote outside");
});
