//! kiln's content-addressed storage. Knows layers, blobs and images; never Dockerfiles.
//!
//! - [`digest`]: sha256 digests and hashing readers/writers.
//! - [`blob`]: the blob store (temp file, fsync, rename; every read verified).
//! - [`layer`]: the deterministic layer tar codec (writer, overlay-dir walker, streaming reader).
//! - [`snapshot`]: layers unpacked once, safely, into overlayfs-format directories.
//! - [`store`]: the local image store (an OCI image layout with tags) and layout/archive export.
//! - [`index`]: the cache index (cache key → layer), with per-key locks.
//! - [`statcache`]: file stat → content digest, so unchanged files are not re-read.
//! - [`gc`]: disk usage, pruning and consistency checks.
//! - [`lock`]: cross-process file locks.
//! - [`json`]: canonical JSON (stable bytes, stable digests).

#![warn(missing_docs)]

mod access;
pub mod blob;
pub mod digest;
pub mod error;
mod fsutil;
pub mod gc;
pub mod index;
pub mod json;
pub mod layer;
pub mod lock;
pub mod snapshot;
pub mod statcache;
pub mod store;
mod xattrs;

pub use blob::{BlobStore, BlobWriter, VerifiedReader};
pub use digest::{Digest, Digester, HashingReader, HashingWriter};
pub use error::{Error, Result};
pub use layer::{
    Compression, EntryKind, FileSource, LayerEntry, LayerInfo, LayerOptions, entries_from_dir,
    read_layer, write_layer,
};
pub use lock::FileLock;
pub use snapshot::{ExtractReport, LayerDesc, Snapshots};
pub use store::{ImageStore, write_layout, write_layout_tar};
