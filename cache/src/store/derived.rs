//! Layers derived from other layers — recompressed, timestamps rewritten, squashed — recorded so
//! the same derivation is never done twice.
//!
//! One small JSON file per derivation under `ROOT/cache/derived/`, named by the sha256 of a key
//! that says exactly what was derived from what (`compress:<diff_id>:zstd-3`,
//! `epoch:<diff_id>:1700000000:gzip-6`, ...). A record whose blob is gone (pruned) is a miss.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::blob::BlobStore;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::write_atomic;
use crate::index::LayerRef;

/// What a record file holds.
#[derive(Serialize, Deserialize)]
struct Record {
    /// The key, for people reading the file.
    key: String,
    /// The derived layer.
    layer: LayerRef,
}

/// The records of derived layers of a kiln root.
#[derive(Debug, Clone)]
pub struct DerivedLayers {
    dir: PathBuf,
}

impl DerivedLayers {
    /// Opens (creating if needed) `root/cache/derived`.
    pub fn open(root: &Path) -> Result<DerivedLayers> {
        let dir = root.join("cache/derived");
        std::fs::create_dir_all(&dir).ctx("create directory", &dir)?;
        Ok(DerivedLayers { dir })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{}.json", Digest::of_bytes(key.as_bytes()).hex()))
    }

    /// The layer recorded for `key`, if its blob is still in `blobs` with the recorded size.
    pub fn get(&self, key: &str, blobs: &BlobStore) -> Result<Option<LayerRef>> {
        let path = self.path(key);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        // A record that does not parse, or names another key, is a miss; `put` replaces it.
        let Ok(record) = serde_json::from_slice::<Record>(&bytes) else { return Ok(None) };
        if record.key != key || !blobs.contains(&record.layer.digest) {
            return Ok(None);
        }
        match blobs.size(&record.layer.digest) {
            Ok(size) if size == record.layer.size => Ok(Some(record.layer)),
            _ => Ok(None),
        }
    }

    /// Records that `key` gave `layer` (written after the layer's blob, atomically).
    pub fn put(&self, key: &str, layer: &LayerRef) -> Result<()> {
        let record = Record { key: key.to_string(), layer: layer.clone() };
        let bytes = crate::json::to_canonical_vec(&record, "derived layer record")?;
        write_atomic(&self.path(key), &bytes, 0o644)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_miss_when_the_blob_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let derived = DerivedLayers::open(dir.path()).unwrap();
        let digest = blobs.put_bytes(b"layer bytes").unwrap();
        let layer = LayerRef {
            digest: digest.clone(),
            diff_id: Digest::of_bytes(b"tar"),
            size: 11,
            media_type: "application/vnd.oci.image.layer.v1.tar+zstd".into(),
        };
        assert_eq!(derived.get("compress:x:zstd-3", &blobs).unwrap(), None);
        derived.put("compress:x:zstd-3", &layer).unwrap();
        assert_eq!(derived.get("compress:x:zstd-3", &blobs).unwrap(), Some(layer.clone()));
        assert_eq!(derived.get("compress:x:zstd-4", &blobs).unwrap(), None);
        // A wrong size (a record from another blob) is a miss.
        derived.put("k", &LayerRef { size: 3, ..layer.clone() }).unwrap();
        assert_eq!(derived.get("k", &blobs).unwrap(), None);
        blobs.remove(&digest).unwrap();
        assert_eq!(derived.get("compress:x:zstd-3", &blobs).unwrap(), None);
    }
}
