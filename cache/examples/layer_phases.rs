//! Times the phases a RUN step's changes go through, on a directory standing in for its upper
//! dir: listing (`entries_from_dir`), writing the layer blob (tar, hash, compress, store) and
//! unpacking it again into a snapshot. Prints wall and CPU seconds of each, for profiling:
//! `cargo run --release -p kiln-cache --example layer_phases -- DIR [gzip|zstd|none] [LEVEL]`.

use std::time::Instant;

use kiln_cache::blob::BlobStore;
use kiln_cache::layer::{Compression, LayerOptions, entries_from_dir, write_layer};
use kiln_cache::snapshot::{LayerDesc, Snapshots};

/// CPU seconds (user + system) this process has used.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Runs `f`, printing its wall and CPU time under `name`.
fn phase<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let (wall, cpu) = (Instant::now(), cpu_seconds());
    let out = f();
    println!(
        "{name:<10} wall {:>7.3}s  cpu {:>7.3}s",
        wall.elapsed().as_secs_f64(),
        cpu_seconds() - cpu
    );
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: layer_phases DIR [gzip|zstd|none] [LEVEL]")?;
    let kind = args.next().unwrap_or_else(|| "gzip".to_string());
    let level = args.next().map(|l| l.parse()).transpose()?;
    let compression = match kind.as_str() {
        "zstd" => Compression::Zstd { level: level.unwrap_or(3) },
        "none" => Compression::None,
        _ => Compression::Gzip { level: level.unwrap_or(6) as u32 },
    };
    let root = tempfile::tempdir_in("/var/tmp")?;
    let blobs = BlobStore::open(root.path())?;
    let snapshots = Snapshots::open(root.path())?;

    let entries = phase("list", || entries_from_dir(std::path::Path::new(&dir)))?;
    let options = LayerOptions { compression, clamp_mtime: None };
    let info = phase("write", || write_layer(&blobs, &entries, &options))?;
    println!("{} entries, blob {} bytes ({})", entries.len(), info.size, info.media_type);
    let desc =
        LayerDesc { digest: info.digest, diff_id: info.diff_id, media_type: info.media_type };
    phase("unpack", || snapshots.ensure(&blobs, &desc))?;
    Ok(())
}
