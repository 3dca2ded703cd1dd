//! Any bytes as a layer blob (plain, gzip, zstd): the streaming reader must return entries or an
//! error — never panic, hang, or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for media_type in [
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
    ] {
        let _ = kiln_cache::layer::read_layer(data, media_type, |_header, content| {
            std::io::copy(content, &mut std::io::sink())
                .map(|_| ())
                .map_err(|e| kiln_cache::Error::stream("fuzz", e))
        });
    }
});
