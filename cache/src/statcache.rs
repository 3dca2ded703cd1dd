//! A persistent stat cache: file identity and times → content digest, so re-hashing a build
//! context reads only the files that changed.
//!
//! An entry is trusted only when device, inode, size, mtime and ctime (nanoseconds) all match.
//! Files modified in the last [`RACY_WINDOW_NS`] before the cache was loaded are never
//! recorded: a write in the same timestamp tick could otherwise go unnoticed (git's "racily
//! clean" problem). The cache is one file per scope (a context directory), written atomically;
//! two builds saving at once lose at most some entries, which only costs re-hashing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{IoContext, Result};
use crate::fsutil::write_atomic;
use crate::layer::FileIdentity;

/// Files changed this recently (nanoseconds) are not cached.
pub const RACY_WINDOW_NS: i128 = 2_000_000_000;

const MAGIC: &[u8; 8] = b"kilnsc02";

/// Bytes of one entry in the cache file: path hash, dev, ino, size, mtime, ctime, digest.
const RECORD: usize = 8 * 6 + 32;

/// Content digests of files, remembered by their stat identity.
///
/// Entries are keyed by a 64-bit hash of the path (FNV-1a), not the path itself, to keep a
/// million entries small (80 bytes each). A collision cannot give a wrong digest: an entry
/// is used only when device, inode, size and both times match, which two different paths
/// share only when they are hard links of one file, with one content.
#[derive(Debug)]
pub struct StatCache {
    file: PathBuf,
    entries: HashMap<u64, (FileIdentity, Digest)>,
    loaded_at_ns: i128,
    dirty: bool,
}

impl StatCache {
    /// Loads the cache for `scope` (e.g. a context directory) from `root/cache/stat/`.
    /// A missing or unreadable cache file gives an empty cache.
    pub fn load(root: &Path, scope: &Path) -> Result<StatCache> {
        let dir = root.join("cache/stat");
        std::fs::create_dir_all(&dir).ctx("create directory", &dir)?;
        let id = Digest::of_bytes(scope.as_os_str().as_encoded_bytes());
        let file = dir.join(format!("{}.bin", &id.hex()[..32]));
        let entries = std::fs::read(&file).ok().and_then(|b| decode(&b)).unwrap_or_default();
        let loaded_at_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        Ok(StatCache { file, entries, loaded_at_ns, dirty: false })
    }

    /// The remembered digest of `path` if it is still the file `identity` describes.
    pub fn lookup(&self, path: &Path, identity: &FileIdentity) -> Option<Digest> {
        let (seen, digest) = self.entries.get(&path_key(path))?;
        (seen == identity).then(|| digest.clone())
    }

    /// Remembers `digest` for `path` as of `identity` (skipped for files changed very
    /// recently: a later write in the same timestamp tick would go unnoticed).
    pub fn insert(&mut self, path: &Path, identity: &FileIdentity, digest: Digest) {
        let changed = i128::from(identity.mtime_ns.max(identity.ctime_ns));
        if self.loaded_at_ns - changed < RACY_WINDOW_NS {
            return;
        }
        self.entries.insert(path_key(path), (*identity, digest));
        self.dirty = true;
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no entry is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the cache back if it changed.
    pub fn save(&mut self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        write_atomic(&self.file, &encode(&self.entries), 0o600)?;
        self.dirty = false;
        Ok(())
    }
}

/// FNV-1a (64-bit) of the path's bytes: stable across runs and Rust versions, as the cache
/// file needs.
fn path_key(path: &Path) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn encode(entries: &HashMap<u64, (FileIdentity, Digest)>) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + entries.len() * RECORD);
    out.extend_from_slice(MAGIC);
    for (key, (id, digest)) in entries {
        out.extend_from_slice(&key.to_le_bytes());
        out.extend_from_slice(&id.dev.to_le_bytes());
        out.extend_from_slice(&id.ino.to_le_bytes());
        out.extend_from_slice(&id.size.to_le_bytes());
        out.extend_from_slice(&id.mtime_ns.to_le_bytes());
        out.extend_from_slice(&id.ctime_ns.to_le_bytes());
        out.extend_from_slice(digest.as_bytes());
    }
    out
}

/// Parses the cache file; `None` if it is not one (it is then rebuilt).
fn decode(bytes: &[u8]) -> Option<HashMap<u64, (FileIdentity, Digest)>> {
    let rest = bytes.strip_prefix(MAGIC.as_slice())?;
    if rest.len() % RECORD != 0 {
        return None;
    }
    let mut entries = HashMap::with_capacity(rest.len() / RECORD);
    for record in rest.chunks_exact(RECORD) {
        let word = |i: usize| -> Option<[u8; 8]> { record[i * 8..i * 8 + 8].try_into().ok() };
        let id = FileIdentity {
            dev: u64::from_le_bytes(word(1)?),
            ino: u64::from_le_bytes(word(2)?),
            size: u64::from_le_bytes(word(3)?),
            mtime_ns: i64::from_le_bytes(word(4)?),
            ctime_ns: i64::from_le_bytes(word(5)?),
        };
        let digest = Digest::from_raw(record[48..].try_into().ok()?);
        entries.insert(u64::from_le_bytes(word(0)?), (id, digest));
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    #[test]
    fn entries_survive_a_save_and_stale_ones_do_not_match() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("f");
        std::fs::write(&file, b"one").unwrap();
        let meta = FileIdentity::of(&std::fs::metadata(&file).unwrap());
        let mut cache = StatCache::load(t.path(), Path::new("/ctx")).unwrap();
        // Just written: inside the racy window, so not remembered.
        cache.insert(&file, &meta, Digest::of_bytes(b"one"));
        assert!(cache.is_empty());
        // Seen from later on, the same file is old enough.
        cache.loaded_at_ns += 10 * RACY_WINDOW_NS;
        cache.insert(&file, &meta, Digest::of_bytes(b"one"));
        assert_eq!(cache.lookup(&file, &meta), Some(Digest::of_bytes(b"one")));
        cache.save().unwrap();
        let reloaded = StatCache::load(t.path(), Path::new("/ctx")).unwrap();
        assert_eq!(reloaded.lookup(&file, &meta), Some(Digest::of_bytes(b"one")));
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&file, b"two").unwrap();
        let changed = FileIdentity::of(&std::fs::metadata(&file).unwrap());
        assert_eq!(reloaded.lookup(&file, &changed), None, "a changed file must not match");
        let other_scope = StatCache::load(t.path(), Path::new("/other")).unwrap();
        assert!(other_scope.is_empty());
    }

    #[test]
    fn decode_rejects_garbage_and_round_trips() {
        assert!(decode(b"nope").is_none());
        let mut m = HashMap::new();
        let s = FileIdentity { dev: 1, ino: 2, size: 3, mtime_ns: -4, ctime_ns: 5 };
        let raw = Path::new(std::ffi::OsStr::from_bytes(b"/a/\xff"));
        m.insert(path_key(raw), (s, Digest::of_bytes(b"x")));
        m.insert(path_key(Path::new("/a/b")), (s, Digest::of_bytes(b"y")));
        assert_ne!(path_key(raw), path_key(Path::new("/a/b")));
        assert_eq!(decode(&encode(&m)), Some(m));
        // A truncated file is discarded as a whole (and rebuilt by hashing).
        let bytes =
            encode(&HashMap::from([(path_key(Path::new("/b")), (s, Digest::of_bytes(b"y")))]));
        assert_eq!(decode(&bytes[..bytes.len() - 3]), None);
        // The cache file of an older kiln is not one: rebuilt.
        assert_eq!(decode(b"kilnsc01\0\0\0\0"), None);
    }
}
