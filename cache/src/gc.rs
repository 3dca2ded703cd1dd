//! Garbage collection and consistency checks of a kiln root.
//!
//! What is live: every blob reachable from a tag in `index.json` (manifests, indexes, configs,
//! layers), every layer blob a cache record points to, and the snapshots of those layers.
//! Builds hold [`GcLock::build`] (shared) for their whole run; pruning and repairing take it
//! exclusively, so they never remove what a running build uses.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::blob::BlobStore;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::remove_tree;
use crate::index::CacheIndex;
use crate::lock::FileLock;
use crate::store::ImageStore;

/// The lock that keeps pruning away from running builds.
pub struct GcLock;

impl GcLock {
    fn path(root: &Path) -> Result<PathBuf> {
        // A root that does not exist yet is an empty one.
        std::fs::create_dir_all(root)
            .ctx("create directory", root)
            .map_err(|e| crate::access::explain(root, e))?;
        Ok(root.join("gc.lock"))
    }

    /// Held (shared) by a build (or a pull or push) from start to end. Fails at once with
    /// [`Error::ReadOnlyRoot`] when `root` is on a read-only filesystem: they all write.
    pub fn build(root: &Path) -> Result<FileLock> {
        let path = Self::path(root)?;
        if rustix::fs::access(root, rustix::fs::Access::WRITE_OK) == Err(rustix::io::Errno::ROFS) {
            return Err(Error::ReadOnlyRoot { root: root.to_path_buf() });
        }
        FileLock::shared(&path).map_err(|e| crate::access::explain(root, e))
    }

    /// Held (exclusive) while pruning or repairing: waits for running builds.
    pub fn exclusive(root: &Path) -> Result<FileLock> {
        FileLock::exclusive(&Self::path(root)?).map_err(|e| crate::access::explain(root, e))
    }

    /// The exclusive lock if no build runs right now.
    pub fn try_exclusive(root: &Path) -> Result<Option<FileLock>> {
        FileLock::try_exclusive(&Self::path(root)?).map_err(|e| crate::access::explain(root, e))
    }
}

/// Bytes and item counts of one kind of stored thing.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Amount {
    /// How many.
    pub count: u64,
    /// Their size in bytes.
    pub bytes: u64,
}

impl Amount {
    fn add(&mut self, bytes: u64) {
        self.count += 1;
        self.bytes += bytes;
    }
}

/// What `kiln cache du` reports.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Usage {
    /// Blobs of tagged images.
    pub images: Amount,
    /// Layer blobs only the build cache refers to.
    pub cache_layers: Amount,
    /// Blobs nothing refers to (removed by any prune).
    pub unreferenced: Amount,
    /// Unpacked snapshots.
    pub snapshots: Amount,
    /// Cache records.
    pub records: u64,
    /// Cache-only layer bytes by age of their record: `< 1h`, `< 1d`, `< 7d`, `older`.
    pub cache_by_age: BTreeMap<String, Amount>,
}

/// How much to prune.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Remove every cache record (tagged images are kept).
    pub all: bool,
    /// Remove cache records older than this.
    pub older_than: Option<Duration>,
    /// Remove the oldest cache records until the root holds at most this many bytes.
    pub keep_storage: Option<u64>,
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    /// Cache records removed.
    pub records: u64,
    /// Blobs removed.
    pub blobs: Amount,
    /// Snapshots removed.
    pub snapshots: Amount,
    /// Leftover temporary files and directories removed.
    pub temporaries: u64,
}

/// What `kiln cache check` found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CheckReport {
    /// Blobs verified.
    pub blobs_checked: u64,
    /// Blobs whose content does not match their name (removed with `repair`).
    pub corrupt_blobs: Vec<String>,
    /// Cache records pointing at a missing blob (removed with `repair`).
    pub dangling_records: Vec<String>,
    /// Cache records that do not parse (removed with `repair`).
    pub bad_records: Vec<String>,
    /// Snapshot directories without their completion marker (removed with `repair`).
    pub partial_snapshots: Vec<String>,
    /// Tags whose image lacks a blob: cannot be repaired here (rebuild or pull it again).
    pub broken_tags: Vec<String>,
    /// Leftover temporary files (removed with `repair`).
    pub temporaries: u64,
    /// Whether the problems found were repaired.
    pub repaired: bool,
}

impl CheckReport {
    /// True when nothing is inconsistent: no corrupt blob, no record pointing nowhere, no
    /// unreadable record (or all were repaired), and no tag missing a blob. Temporaries and
    /// incomplete snapshots are garbage a crash may leave, not inconsistencies: kiln ignores
    /// them and `prune`/`check` remove them.
    pub fn is_clean(&self) -> bool {
        self.broken_tags.is_empty()
            && (self.repaired
                || (self.corrupt_blobs.is_empty()
                    && self.dangling_records.is_empty()
                    && self.bad_records.is_empty()))
    }
}

#[derive(Deserialize)]
struct Refs {
    #[serde(default)]
    config: Option<Ref>,
    #[serde(default)]
    layers: Vec<Ref>,
    #[serde(default)]
    manifests: Vec<Ref>,
}

#[derive(Deserialize)]
struct Ref {
    digest: String,
}

#[derive(Deserialize)]
struct ConfigRootfs {
    #[serde(default)]
    rootfs: Option<DiffIds>,
}

#[derive(Deserialize)]
struct DiffIds {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// Live blobs and snapshots (by digest hex).
#[derive(Default)]
struct Live {
    blobs: HashSet<String>,
    diff_ids: HashSet<String>,
    broken_tags: Vec<String>,
}

/// Everything reachable from tags.
fn tagged(store: &ImageStore) -> Result<Live> {
    let blobs = store.blobs();
    let mut live = Live::default();
    for (name, desc) in store.list()? {
        let mut stack = vec![(Digest::try_from(desc.digest())?, true)];
        while let Some((digest, is_manifest)) = stack.pop() {
            if !blobs.contains(&digest) {
                live.broken_tags.push(format!("{name} (missing {digest})"));
                continue;
            }
            if !live.blobs.insert(digest.hex()) || !is_manifest {
                continue;
            }
            let refs: Refs = serde_json::from_slice(&blobs.read(&digest)?)
                .map_err(|source| Error::Json { what: format!("manifest {digest}"), source })?;
            for m in &refs.manifests {
                stack.push((m.digest.parse()?, true));
            }
            for l in &refs.layers {
                stack.push((l.digest.parse()?, false));
            }
            if let Some(c) = refs.config {
                let config: Digest = c.digest.parse()?;
                if blobs.contains(&config) {
                    let rootfs: ConfigRootfs = serde_json::from_slice(&blobs.read(&config)?)
                        .unwrap_or(ConfigRootfs { rootfs: None });
                    for d in rootfs.rootfs.map(|r| r.diff_ids).unwrap_or_default() {
                        if let Ok(d) = d.parse::<Digest>() {
                            live.diff_ids.insert(d.hex());
                        }
                    }
                }
                stack.push((config, false));
            }
        }
    }
    Ok(live)
}

fn list_blobs(blobs: &BlobStore) -> Result<Vec<(String, u64, SystemTime)>> {
    let dir = blobs.root().join("blobs/sha256");
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(&dir) else { return Ok(out) };
    for entry in rd {
        let entry = entry.ctx("read directory", &dir)?;
        let Ok(meta) = entry.metadata() else { continue };
        if let Some(name) = entry.file_name().to_str() {
            out.push((name.to_string(), meta.len(), meta.modified().unwrap_or(UNIX_EPOCH)));
        }
    }
    Ok(out)
}

/// Snapshot directories: (name, is complete, path).
fn list_snapshots(root: &Path) -> Result<Vec<(String, bool, PathBuf)>> {
    let dir = root.join("snapshots");
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(&dir) else { return Ok(out) };
    for entry in rd {
        let entry = entry.ctx("read directory", &dir)?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
        if path.is_dir() {
            let complete = crate::snapshot::is_complete(&path);
            out.push((name, complete, path));
        }
    }
    Ok(out)
}

/// Bytes used by the files below `dir` (not following links).
fn tree_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.path().symlink_metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// What the root holds, by kind and age.
pub fn disk_usage(root: &Path) -> Result<Usage> {
    let store = ImageStore::open(root)?;
    let index = CacheIndex::open(root)?;
    let live = tagged(&store)?;
    let records = index.list()?;
    let now = now_secs();
    let mut cache_blobs: BTreeMap<String, i64> = BTreeMap::new();
    for (_, record) in &records {
        if let Some(layer) = &record.layer {
            let created = cache_blobs.entry(layer.digest.hex()).or_insert(record.created);
            *created = (*created).max(record.created);
        }
    }
    let mut usage = Usage { records: records.len() as u64, ..Usage::default() };
    for (hex, size, _) in list_blobs(store.blobs())? {
        if live.blobs.contains(&hex) {
            usage.images.add(size);
        } else if let Some(created) = cache_blobs.get(&hex) {
            usage.cache_layers.add(size);
            let age = now - created;
            let bucket = match age {
                a if a < 3600 => "< 1h",
                a if a < 86_400 => "< 1d",
                a if a < 7 * 86_400 => "< 7d",
                _ => "older",
            };
            usage.cache_by_age.entry(bucket.to_string()).or_default().add(size);
        } else {
            usage.unreferenced.add(size);
        }
    }
    for (_, complete, path) in list_snapshots(root)? {
        if complete {
            usage.snapshots.add(tree_size(&path));
        }
    }
    Ok(usage)
}

/// Removes cache records as `options` ask, then every blob and snapshot nothing live refers
/// to, and leftover temporaries. Waits for running builds to finish first.
pub fn prune(root: &Path, options: &PruneOptions) -> Result<PruneReport> {
    let _gc = GcLock::exclusive(root)?;
    prune_locked(root, options)
}

/// [`prune`] for a caller that already holds the exclusive [`GcLock`].
pub fn prune_locked(root: &Path, options: &PruneOptions) -> Result<PruneReport> {
    let store = ImageStore::open(root)?;
    let index = CacheIndex::open(root)?;
    let blobs = store.blobs();
    let live = tagged(&store)?;
    let mut report = PruneReport::default();
    let now = now_secs();

    let mut records = index.list()?;
    records.sort_by_key(|(_, r)| r.created);
    let mut kept = Vec::new();
    for (key, record) in records {
        let too_old =
            options.older_than.is_some_and(|age| now - record.created > age.as_secs() as i64);
        let dangling = record.layer.as_ref().is_some_and(|l| !blobs.contains(&l.digest));
        if options.all || too_old || dangling {
            index.remove(&key)?;
            report.records += 1;
        } else {
            kept.push((key, record));
        }
    }

    if let Some(limit) = options.keep_storage {
        // Oldest records first, until what stays fits.
        let mut total: u64 = list_blobs(blobs)?.iter().map(|b| b.1).sum::<u64>()
            + list_snapshots(root)?.iter().map(|s| tree_size(&s.2)).sum::<u64>();
        let mut i = 0;
        while total > limit && i < kept.len() {
            let (key, record) = &kept[i];
            index.remove(key)?;
            report.records += 1;
            if let Some(layer) = &record.layer {
                let shared = kept[i + 1..]
                    .iter()
                    .any(|(_, r)| r.layer.as_ref().is_some_and(|l| l.digest == layer.digest));
                if !shared && !live.blobs.contains(&layer.digest.hex()) {
                    total = total.saturating_sub(blobs.size(&layer.digest).unwrap_or(0));
                    total = total.saturating_sub(tree_size(
                        &root.join("snapshots").join(layer.diff_id.hex()),
                    ));
                }
            }
            i += 1;
        }
        kept.drain(..i);
    }

    let mut live_blobs = live.blobs;
    let mut live_snapshots = live.diff_ids;
    for (_, record) in &kept {
        if let Some(layer) = &record.layer {
            live_blobs.insert(layer.digest.hex());
            live_snapshots.insert(layer.diff_id.hex());
        }
    }
    for (hex, size, _) in list_blobs(blobs)? {
        if !live_blobs.contains(&hex) {
            let digest: Digest = format!("sha256:{hex}")
                .parse()
                .unwrap_or_else(|_| Digest::of_bytes(hex.as_bytes()));
            if blobs.remove(&digest)? {
                report.blobs.add(size);
            } else {
                // Not a digest-named file: remove it directly.
                let _ = std::fs::remove_file(blobs.root().join("blobs/sha256").join(&hex));
            }
        }
    }
    for (name, complete, path) in list_snapshots(root)? {
        if name.starts_with(".tmp-") {
            remove_tree(&path)?;
            report.temporaries += 1;
        } else if !complete || !live_snapshots.contains(&name) {
            let size = tree_size(&path);
            remove_tree(&path)?;
            report.snapshots.add(size);
        }
    }
    report.temporaries += remove_temporaries(root)?;
    Ok(report)
}

/// Removes leftovers of interrupted writes under `root/tmp`; returns how many.
fn remove_temporaries(root: &Path) -> Result<u64> {
    let dir = root.join("tmp");
    let mut count = 0;
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for entry in rd.flatten() {
            remove_tree(&entry.path())?;
            count += 1;
        }
    }
    Ok(count)
}

/// Verifies every blob by digest and the index's consistency; with `repair`, removes what is
/// wrong (corrupt blobs, records pointing nowhere, partial snapshots, temporaries).
pub fn check(root: &Path, repair: bool) -> Result<CheckReport> {
    // Exclusive even without repair: a running build's temporaries are not leftovers.
    let _gc = GcLock::exclusive(root)?;
    let store = ImageStore::open(root)?;
    CacheIndex::open(root)?;
    let blobs = store.blobs();
    let mut report = CheckReport { repaired: repair, ..CheckReport::default() };
    for (hex, _, _) in list_blobs(blobs)? {
        report.blobs_checked += 1;
        let Ok(digest) = format!("sha256:{hex}").parse::<Digest>() else {
            report.corrupt_blobs.push(hex.clone());
            if repair {
                let _ = std::fs::remove_file(blobs.root().join("blobs/sha256").join(&hex));
            }
            continue;
        };
        let ok = blobs.open_verified(&digest).and_then(|mut r| {
            std::io::copy(&mut r, &mut std::io::sink())
                .map_err(|e| Error::stream(digest.to_string(), e))
        });
        if ok.is_err() {
            report.corrupt_blobs.push(digest.to_string());
            if repair {
                blobs.remove(&digest)?;
            }
        }
    }
    let records_dir = root.join("cache/index");
    if let Ok(rd) = std::fs::read_dir(&records_dir) {
        for entry in rd.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                report.temporaries += 1;
                if repair {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            let parsed = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<crate::index::CacheRecord>(&b).ok());
            match parsed {
                None => {
                    report.bad_records.push(name);
                    if repair {
                        let _ = std::fs::remove_file(&path);
                    }
                }
                Some(record) => {
                    if let Some(layer) = &record.layer
                        && !blobs.contains(&layer.digest)
                    {
                        report.dangling_records.push(name);
                        if repair {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
            }
        }
    }
    for (name, complete, path) in list_snapshots(root)? {
        if name.starts_with(".tmp-") {
            report.temporaries += 1;
            if repair {
                remove_tree(&path)?;
            }
        } else if !complete {
            report.partial_snapshots.push(name);
            if repair {
                remove_tree(&path)?;
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(root.join("tmp")) {
        report.temporaries += rd.count() as u64;
        if repair {
            remove_temporaries(root)?;
        }
    }
    report.broken_tags = tagged(&store)?.broken_tags;
    Ok(report)
}
