//! Parallel gzip in the manner of `pigz`: one standard gzip stream made of independently
//! compressed 128 KiB blocks, each primed with the 32 KiB of input before it, all but the last
//! ended with a sync flush. Blocks of a batch are compressed on rayon's pool while the caller
//! goes on producing the next batch (reading, tarring, hashing), as pigz overlaps its reads
//! with compression; batches are written out in order.
//!
//! Written here because the parallel-gzip crate (`gzp`) needs a C zlib for its dictionary
//! priming and does not build on the pure-Rust `zlib-rs` backend kiln uses. The output depends
//! only on the input, the level and the block size — never on the number of threads — so layer
//! digests are reproducible on any machine.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, sync_channel};

use flate2::{Compress, Compression, FlushCompress, Status};
use rayon::prelude::*;

/// Input bytes per independently compressed block (pigz's default).
pub const BLOCK_SIZE: usize = 128 * 1024;
/// Bytes of preceding input each block is primed with (deflate's window).
const DICT_SIZE: usize = 32 * 1024;
/// Blocks compressed together in one parallel batch.
const BATCH_BLOCKS: usize = 32;
/// Batches being compressed while the next one fills.
const IN_FLIGHT: usize = 2;

/// A batch's compressed blocks, once the pool has made them.
type Batch = Receiver<io::Result<Vec<Vec<u8>>>>;

/// A writer producing one gzip stream, compressing blocks in parallel.
pub struct ParallelGzip<W: Write> {
    inner: Option<W>,
    level: u32,
    /// Input not compressed yet (always holds the last block, which may turn out to be final).
    pending: Vec<u8>,
    /// The last `DICT_SIZE` bytes of input already compressed.
    dict: Vec<u8>,
    crc: crc32fast::Hasher,
    total: u64,
    /// Batches handed to the pool, oldest first.
    in_flight: VecDeque<Batch>,
}

impl<W: Write> ParallelGzip<W> {
    /// Starts a gzip stream on `inner` at `level` (0..=9); writes the header now.
    pub fn new(mut inner: W, level: u32) -> io::Result<Self> {
        // Fixed header: no name, mtime 0, XFL from the level (as gzip/pigz), OS 255 "unknown".
        let xfl = match level {
            9 => 2,
            1 => 4,
            _ => 0,
        };
        inner.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255])?;
        Ok(ParallelGzip {
            inner: Some(inner),
            level,
            pending: Vec::with_capacity(BLOCK_SIZE * (BATCH_BLOCKS + 1)),
            dict: Vec::new(),
            crc: crc32fast::Hasher::new(),
            total: 0,
            in_flight: VecDeque::new(),
        })
    }

    fn inner(&mut self) -> io::Result<&mut W> {
        self.inner.as_mut().ok_or_else(|| io::Error::other("gzip stream already finished"))
    }

    /// Compresses every complete block but the last one held in `pending`.
    fn compress_ready(&mut self) -> io::Result<()> {
        let blocks = self.pending.len() / BLOCK_SIZE;
        if blocks < 2 {
            return Ok(());
        }
        let ready = (blocks - 1) * BLOCK_SIZE;
        let rest = self.pending.split_off(ready);
        let data = std::mem::replace(&mut self.pending, rest);
        let next_dict = tail(&self.dict, &data);
        let dict = std::mem::replace(&mut self.dict, next_dict);
        if rayon::current_thread_index().is_some() {
            // On one of the pool's own threads (several layers compressed at once): waiting
            // on a channel here could starve the pool of the very thread the batch needs, so
            // the batch is compressed now, its blocks still in parallel.
            let out = compress_blocks(&data, &dict, self.level, false)?;
            let inner = self.inner()?;
            for chunk in out {
                inner.write_all(&chunk)?;
            }
            return Ok(());
        }
        if self.in_flight.len() == IN_FLIGHT {
            self.write_oldest()?;
        }
        let (done, batch) = sync_channel(1);
        let level = self.level;
        rayon::spawn(move || {
            // The receiver only goes away when the stream is dropped unfinished.
            let _ = done.send(compress_blocks(&data, &dict, level, false));
        });
        self.in_flight.push_back(batch);
        Ok(())
    }

    /// Waits for the oldest batch in flight and writes it out.
    fn write_oldest(&mut self) -> io::Result<()> {
        let Some(batch) = self.in_flight.pop_front() else { return Ok(()) };
        let out = batch.recv().map_err(|_| io::Error::other("a gzip worker stopped"))??;
        let inner = self.inner()?;
        for chunk in out {
            inner.write_all(&chunk)?;
        }
        Ok(())
    }

    /// Compresses what is left as the final block, writes the trailer, returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        while !self.in_flight.is_empty() {
            self.write_oldest()?;
        }
        let rest = std::mem::take(&mut self.pending);
        let out = compress_blocks(&rest, &self.dict, self.level, true)?;
        let crc = std::mem::take(&mut self.crc).finalize();
        let total = self.total;
        let mut inner =
            self.inner.take().ok_or_else(|| io::Error::other("gzip stream already finished"))?;
        for chunk in out {
            inner.write_all(&chunk)?;
        }
        inner.write_all(&crc.to_le_bytes())?;
        inner.write_all(&(total as u32).to_le_bytes())?;
        Ok(inner)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.crc.update(buf);
        self.total += buf.len() as u64;
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= BLOCK_SIZE * (BATCH_BLOCKS + 1) {
            self.compress_ready()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Blocks are only emitted whole; flushing the inner writer is all that can be done.
        self.inner()?.flush()
    }
}

/// The last `DICT_SIZE` bytes of `before` followed by `data`.
fn tail(before: &[u8], data: &[u8]) -> Vec<u8> {
    if data.len() >= DICT_SIZE {
        return data[data.len() - DICT_SIZE..].to_vec();
    }
    let keep = DICT_SIZE - data.len();
    let mut t = before[before.len().saturating_sub(keep)..].to_vec();
    t.extend_from_slice(data);
    t
}

/// Compresses `data` as consecutive blocks; with `last`, the final block ends the deflate
/// stream (an empty `data` then still yields a valid final block).
fn compress_blocks(data: &[u8], dict: &[u8], level: u32, last: bool) -> io::Result<Vec<Vec<u8>>> {
    let count = data.len().div_ceil(BLOCK_SIZE).max(usize::from(last));
    (0..count)
        .into_par_iter()
        .map(|i| {
            let start = i * BLOCK_SIZE;
            let end = (start + BLOCK_SIZE).min(data.len());
            let block = &data[start.min(end)..end];
            let priming = if i == 0 { tail(&[], dict) } else { tail(dict, &data[..start]) };
            let final_block = last && i + 1 == count;
            deflate_block(block, &priming, level, final_block)
        })
        .collect()
}

/// Raw deflate of one block primed with `dict`, ended by a sync flush or, for the final block,
/// by the end of the stream.
fn deflate_block(block: &[u8], dict: &[u8], level: u32, final_block: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if final_block { FlushCompress::Finish } else { FlushCompress::Sync };
    let mut out = Vec::with_capacity(block.len() / 2 + 1024);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = c.total_in() as usize;
        let status =
            c.compress_vec(&block[consumed..], &mut out, flush).map_err(io::Error::other)?;
        let all_in = c.total_in() as usize == block.len();
        let room_left = out.len() < out.capacity();
        match status {
            Status::StreamEnd => break,
            _ if !final_block && all_in && room_left => break,
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivial: repeated words with a counter.
        let mut v = Vec::with_capacity(len);
        let mut i = 0u64;
        while v.len() < len {
            v.extend_from_slice(format!("line {i} of kiln's layer data {}\n", i % 97).as_bytes());
            i += 1;
        }
        v.truncate(len);
        v
    }

    fn gzip(data: &[u8], level: u32, chunk: usize) -> Vec<u8> {
        let mut w = ParallelGzip::new(Vec::new(), level).unwrap();
        for part in data.chunks(chunk.max(1)) {
            w.write_all(part).unwrap();
        }
        w.finish().unwrap()
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn round_trips_at_every_size_around_block_boundaries() {
        for len in [
            0,
            1,
            100,
            BLOCK_SIZE - 1,
            BLOCK_SIZE,
            BLOCK_SIZE + 1,
            3 * BLOCK_SIZE,
            40 * BLOCK_SIZE + 17,
        ] {
            let data = sample(len);
            for level in [0, 1, 6, 9] {
                let gz = gzip(&data, level, 70_000);
                assert_eq!(gunzip(&gz), data, "len {len} level {level}");
            }
        }
    }

    #[test]
    fn output_does_not_depend_on_threads_or_write_sizes() {
        let data = sample(70 * BLOCK_SIZE + 5);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| gzip(&data, 6, 1 << 20));
        let four = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap()
            .install(|| gzip(&data, 6, 4096));
        assert_eq!(one, four);
        // Outside the pool, batches are pipelined (compressed while the next one fills).
        assert_eq!(gzip(&data, 6, 777), one);
        // Compression stays close to a single stream's.
        let mut single = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        single.write_all(&data).unwrap();
        let single = single.finish().unwrap();
        assert!(one.len() < single.len() * 105 / 100, "{} vs {}", one.len(), single.len());
    }

    #[test]
    fn system_gzip_accepts_the_stream() {
        let data = sample(5 * BLOCK_SIZE + 3);
        let gz = gzip(&data, 6, 10_000);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.gz");
        std::fs::write(&path, &gz).unwrap();
        let out = std::process::Command::new("gzip").arg("-dc").arg(&path).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout, data);
    }
}
