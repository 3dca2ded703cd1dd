//! The cache index: cache key → the layer a step produced (or "no change").
//!
//! One small JSON file per key under `ROOT/cache/index/`, written atomically, so concurrent
//! builds never see a half-written record and a crash leaves at worst a missing one. A per-key
//! lock under `ROOT/cache/locks/` lets two processes that need the same key agree that one builds
//! it and the other waits and reuses it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::blob::BlobStore;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::write_replace;
use crate::lock::FileLock;

/// A layer as stored: enough to put it in a manifest and to unpack it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRef {
    /// Digest of the (compressed) blob.
    pub digest: Digest,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    /// Media type of the blob.
    pub media_type: String,
}

/// What a cached step produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The layer, or `None` when the step changed no file.
    pub layer: Option<LayerRef>,
    /// When the record was written (seconds since the epoch).
    pub created: i64,
    /// What produced it, for `kiln cache du` and debugging (e.g. `COPY . /app`).
    #[serde(default)]
    pub description: String,
}

/// The cache index of a kiln root.
#[derive(Debug, Clone)]
pub struct CacheIndex {
    records: PathBuf,
    locks: PathBuf,
}

impl CacheIndex {
    /// Opens (creating if needed) the index under `root/cache/`.
    pub fn open(root: &Path) -> Result<CacheIndex> {
        let records = root.join("cache/index");
        let locks = root.join("cache/locks");
        for dir in [&records, &locks] {
            std::fs::create_dir_all(dir).ctx("create directory", dir)?;
        }
        Ok(CacheIndex { records, locks })
    }

    fn record_path(&self, key: &Digest) -> PathBuf {
        self.records.join(format!("{}.json", key.hex()))
    }

    /// The record for `key`, if one exists and its layer blob is still in `blobs`.
    /// A record whose blob is gone (pruned, or lost in a crash) counts as a miss.
    pub fn get(&self, key: &Digest, blobs: &BlobStore) -> Result<Option<CacheRecord>> {
        let path = self.record_path(key);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let record: CacheRecord = match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            // A record that does not parse is treated as absent; `put` will replace it.
            Err(_) => return Ok(None),
        };
        match &record.layer {
            Some(layer) if !blobs.contains(&layer.digest) => Ok(None),
            _ => Ok(Some(record)),
        }
    }

    /// Records what `key` produced (atomically replacing any earlier record). Not fsynced: a
    /// record is derived data, and one lost to a power failure is only a cache miss (the blob
    /// it names was made durable before it).
    pub fn put(&self, key: &Digest, record: &CacheRecord) -> Result<()> {
        let bytes = crate::json::to_canonical_vec(record, "cache record")?;
        write_replace(&self.record_path(key), &bytes, 0o644)
    }

    /// Removes the record for `key`; true if there was one.
    pub fn remove(&self, key: &Digest) -> Result<bool> {
        let path = self.record_path(key);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("remove", &path, e)),
        }
    }

    /// Takes the exclusive lock for building `key`; held until the guard is dropped.
    pub fn lock(&self, key: &Digest) -> Result<FileLock> {
        FileLock::exclusive(&self.locks.join(format!("{}.lock", key.hex())))
    }

    /// Every record: (key, record). Unreadable records are skipped.
    pub fn list(&self) -> Result<Vec<(Digest, CacheRecord)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.records).ctx("read directory", &self.records)? {
            let entry = entry.ctx("read directory", &self.records)?;
            let name = entry.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".json")) else { continue };
            let Ok(key) = format!("sha256:{hex}").parse::<Digest>() else { continue };
            let Ok(bytes) = std::fs::read(entry.path()) else { continue };
            if let Ok(record) = serde_json::from_slice(&bytes) {
                out.push((key, record));
            }
        }
        out.sort_by_key(|(key, _)| key.hex());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_missing_blobs_are_misses() {
        let t = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(t.path()).unwrap();
        let index = CacheIndex::open(t.path()).unwrap();
        let key = Digest::of_bytes(b"key");
        assert_eq!(index.get(&key, &blobs).unwrap(), None);
        let digest = blobs.put_bytes(b"layer bytes").unwrap();
        let record = CacheRecord {
            layer: Some(LayerRef {
                digest: digest.clone(),
                diff_id: Digest::of_bytes(b"tar"),
                size: 11,
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            }),
            created: 5,
            description: "COPY a /".into(),
        };
        index.put(&key, &record).unwrap();
        assert_eq!(index.get(&key, &blobs).unwrap(), Some(record.clone()));
        assert_eq!(index.list().unwrap(), vec![(key.clone(), record)]);
        blobs.remove(&digest).unwrap();
        assert_eq!(index.get(&key, &blobs).unwrap(), None, "a record without its blob is a miss");
        let empty = CacheRecord { layer: None, created: 1, description: String::new() };
        index.put(&key, &empty).unwrap();
        assert_eq!(index.get(&key, &blobs).unwrap(), Some(empty));
        assert!(index.remove(&key).unwrap());
        assert_eq!(index.get(&key, &blobs).unwrap(), None);
    }

    #[test]
    fn a_corrupt_record_is_a_miss() {
        let t = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(t.path()).unwrap();
        let index = CacheIndex::open(t.path()).unwrap();
        let key = Digest::of_bytes(b"k");
        std::fs::write(index.record_path(&key), b"{not json").unwrap();
        assert_eq!(index.get(&key, &blobs).unwrap(), None);
    }
}
