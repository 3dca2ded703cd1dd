//! A persistent stat cache: file identity and times → content digest, so re-hashing a build
//! context reads only the files that changed.
//!
//! An entry is trusted only when device, inode, size, mtime and ctime (nanoseconds) all match.
//! Files modified in the last [`RACY_WINDOW_NS`] before the cache was loaded are never
//! recorded: a write in the same timestamp tick could otherwise go unnoticed (git's "racily
//! clean" problem). The cache is one file per scope (a context directory), written atomically;
//! two builds saving at once lose at most some entries, which only costs re-hashing.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{IoContext, Result};
use crate::fsutil::write_atomic;

/// Files changed this recently (nanoseconds) are not cached.
pub const RACY_WINDOW_NS: i128 = 2_000_000_000;

const MAGIC: &[u8; 8] = b"kilnsc01";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    fn of(meta: &Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }
}

/// Content digests of files, remembered by their stat identity.
#[derive(Debug)]
pub struct StatCache {
    file: PathBuf,
    entries: HashMap<PathBuf, (Stamp, Digest)>,
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

    /// The remembered digest of `path` if `meta` still matches what was recorded.
    pub fn lookup(&self, path: &Path, meta: &Metadata) -> Option<Digest> {
        let (stamp, digest) = self.entries.get(path)?;
        (*stamp == Stamp::of(meta)).then(|| digest.clone())
    }

    /// Remembers `digest` for `path` as of `meta` (skipped for files changed very recently).
    pub fn insert(&mut self, path: PathBuf, meta: &Metadata, digest: Digest) {
        let stamp = Stamp::of(meta);
        if self.loaded_at_ns - stamp.mtime_ns.max(stamp.ctime_ns) < RACY_WINDOW_NS {
            return;
        }
        self.entries.insert(path, (stamp, digest));
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

fn encode(entries: &HashMap<PathBuf, (Stamp, Digest)>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + entries.len() * 120);
    out.extend_from_slice(MAGIC);
    for (path, (s, digest)) in entries {
        let p = path.as_os_str().as_encoded_bytes();
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(&s.dev.to_le_bytes());
        out.extend_from_slice(&s.ino.to_le_bytes());
        out.extend_from_slice(&s.size.to_le_bytes());
        out.extend_from_slice(&s.mtime_ns.to_le_bytes());
        out.extend_from_slice(&s.ctime_ns.to_le_bytes());
        out.extend_from_slice(digest.as_bytes());
    }
    out
}

/// Parses the cache file; `None` if it is not one (it is then rebuilt).
fn decode(bytes: &[u8]) -> Option<HashMap<PathBuf, (Stamp, Digest)>> {
    let mut rest = bytes.strip_prefix(MAGIC.as_slice())?;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = rest.split_at_checked(n)?;
        rest = tail;
        Some(head)
    };
    let mut entries = HashMap::new();
    while let Some(len) = take(4) {
        let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
        // On Unix any byte string is a valid OsStr.
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(take(len)?));
        let u64_at = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
        let i128_at = |b: &[u8]| i128::from_le_bytes(b.try_into().unwrap_or([0; 16]));
        let stamp = Stamp {
            dev: u64_at(take(8)?),
            ino: u64_at(take(8)?),
            size: u64_at(take(8)?),
            mtime_ns: i128_at(take(16)?),
            ctime_ns: i128_at(take(16)?),
        };
        let digest = Digest::from_raw(take(32)?.try_into().ok()?);
        entries.insert(path, (stamp, digest));
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_a_save_and_stale_ones_do_not_match() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("f");
        std::fs::write(&file, b"one").unwrap();
        let meta = std::fs::metadata(&file).unwrap();
        let mut cache = StatCache::load(t.path(), Path::new("/ctx")).unwrap();
        // Just written: inside the racy window, so not remembered.
        cache.insert(file.clone(), &meta, Digest::of_bytes(b"one"));
        assert!(cache.is_empty());
        // Seen from later on, the same file is old enough.
        cache.loaded_at_ns += 10 * RACY_WINDOW_NS;
        cache.insert(file.clone(), &meta, Digest::of_bytes(b"one"));
        assert_eq!(cache.lookup(&file, &meta), Some(Digest::of_bytes(b"one")));
        cache.save().unwrap();
        let reloaded = StatCache::load(t.path(), Path::new("/ctx")).unwrap();
        assert_eq!(reloaded.lookup(&file, &meta), Some(Digest::of_bytes(b"one")));
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&file, b"two").unwrap();
        let changed = std::fs::metadata(&file).unwrap();
        assert_eq!(reloaded.lookup(&file, &changed), None, "a changed file must not match");
        let other_scope = StatCache::load(t.path(), Path::new("/other")).unwrap();
        assert!(other_scope.is_empty());
    }

    #[test]
    fn decode_rejects_garbage_and_round_trips() {
        assert!(decode(b"nope").is_none());
        let mut m = HashMap::new();
        let s = Stamp { dev: 1, ino: 2, size: 3, mtime_ns: -4, ctime_ns: 5 };
        m.insert(
            PathBuf::from(std::ffi::OsStr::from_bytes(b"/a/\xff")),
            (s, Digest::of_bytes(b"x")),
        );
        assert_eq!(decode(&encode(&m)), Some(m));
        // A truncated file is discarded as a whole (and rebuilt by hashing).
        let bytes = encode(&HashMap::from([(PathBuf::from("/b"), (s, Digest::of_bytes(b"y")))]));
        assert_eq!(decode(&bytes[..bytes.len() - 3]), None);
    }
}
