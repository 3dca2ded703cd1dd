//! Any bytes as a manifest, an index or an image config, the documents kiln reads from
//! layouts and registries it does not control.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<oci_spec::image::ImageManifest>(data);
    let _ = serde_json::from_slice::<oci_spec::image::ImageIndex>(data);
    if let Ok(config) = serde_json::from_slice::<kiln_builder::image::ImageConfigFile>(data) {
        // What kiln writes back must serialize again.
        let _ = config.to_bytes();
    }
});
