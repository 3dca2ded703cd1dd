//! Compresses a file the way kiln compresses layers and prints the throughput:
//! `cargo run --release -p kiln-cache --example compress -- FILE [gzip|zstd] [LEVEL]`.
//! The bench harness runs it beside `pigz` and `zstd -T0` on the same data.

use std::io::{Read, Write};
use std::time::Instant;

use kiln_cache::layer::pgzip::ParallelGzip;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or_else(|| std::io::Error::other("usage: compress FILE [gzip|zstd] [LEVEL]"))?;
    let kind = args.next().unwrap_or_else(|| "gzip".to_string());
    let mut data = Vec::new();
    std::fs::File::open(&path)?.read_to_end(&mut data)?;
    let started = Instant::now();
    let out_len = match kind.as_str() {
        "zstd" => {
            let level = args.next().and_then(|l| l.parse().ok()).unwrap_or(3);
            let mut e = zstd::Encoder::new(Vec::new(), level)?;
            e.multithread(std::thread::available_parallelism().map_or(1, |n| n.get()) as u32)?;
            e.write_all(&data)?;
            e.finish()?.len()
        }
        _ => {
            let level = args.next().and_then(|l| l.parse().ok()).unwrap_or(6);
            let mut w = ParallelGzip::new(Vec::new(), level)?;
            w.write_all(&data)?;
            w.finish()?.len()
        }
    };
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{kind}: {} -> {} bytes in {secs:.3}s ({:.1} MB/s)",
        data.len(),
        out_len,
        data.len() as f64 / secs / 1e6
    );
    Ok(())
}
