//! `--cache-from`: the caches' manifests and configs are read when the build starts; a layer
//! is fetched only when a step's key hits, then recorded in the local cache index.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use kiln_cache::blob::BlobStore;
use kiln_cache::digest::Digest;
use kiln_cache::index::{CacheRecord, LayerRef};
use kiln_cache::layer::read_layer;

use super::format::{self, MountEntry};
use super::source::Source;
use super::spec::{CacheImport, CacheLocation};
use crate::build::Builder;
use crate::events::{Event, EventSink, TransferEvents};
use crate::registry;

/// The caches a build imports: what they hold, and where to fetch it.
pub struct RemoteCache {
    /// Each cache's name (for messages) and source.
    sources: Vec<(String, Source)>,
    /// Records by key, with the index of the source that has them (the first one wins).
    records: HashMap<Digest, (usize, CacheRecord)>,
    /// Cache mounts by id.
    mounts: BTreeMap<String, (usize, MountEntry)>,
    /// Layers whose diff_id was checked in this build.
    verified: Mutex<HashSet<Digest>>,
}

impl RemoteCache {
    /// Reads the manifest and config of each cache in `imports`, for a build on `platform`.
    /// A cache that is missing, unreachable, corrupt or not a kiln cache is left out with a
    /// warning: importing never fails the build.
    pub fn import(
        imports: &[CacheImport],
        platform: &str,
        builder: &Builder,
        events: &dyn EventSink,
    ) -> RemoteCache {
        let mut cache = RemoteCache {
            sources: Vec::new(),
            records: HashMap::new(),
            mounts: BTreeMap::new(),
            verified: Mutex::new(HashSet::new()),
        };
        if imports.is_empty() {
            return cache;
        }
        let registry = imports
            .iter()
            .any(|i| matches!(i.location, CacheLocation::Registry(_)))
            .then(registry::session)
            .transpose();
        let registry = match registry {
            Ok(r) => r,
            Err(e) => {
                events.emit(Event::Warning(format!(
                    "--cache-from: no registry client ({e}); building without the registry caches"
                )));
                None
            }
        };
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kiln-cache-import")
            .enable_all()
            .build()
        {
            Ok(r) => Arc::new(r),
            Err(e) => {
                events.emit(Event::Warning(format!(
                    "--cache-from: cannot start the I/O runtime ({e}); building without the caches"
                )));
                return cache;
            }
        };
        let blobs = builder.store().blobs();
        for import in imports {
            let name = import.location.to_string();
            let client = registry.as_ref().map(|s| s.registry.as_ref());
            match open(&import.location, client, &runtime, blobs, platform) {
                Ok((source, parsed)) => {
                    let index = cache.sources.len();
                    let (mut records, mut mounts) = (0, 0);
                    for (key, record) in parsed.records {
                        if let std::collections::hash_map::Entry::Vacant(v) =
                            cache.records.entry(key)
                        {
                            v.insert((index, record));
                            records += 1;
                        }
                    }
                    for (id, mount) in parsed.mounts {
                        if let std::collections::btree_map::Entry::Vacant(v) =
                            cache.mounts.entry(id)
                        {
                            v.insert((index, mount));
                            mounts += 1;
                        }
                    }
                    let dropped = if parsed.dropped > 0 {
                        format!(
                            "; {} entries whose blob the manifest does not list were ignored",
                            parsed.dropped
                        )
                    } else {
                        String::new()
                    };
                    events.emit(Event::Notice(format!(
                        "importing cache {name}: {records} steps, {mounts} cache mounts{dropped}"
                    )));
                    cache.sources.push((name, source));
                }
                Err(e) => events.emit(Event::Warning(format!(
                    "cache {name} cannot be used: {e}; building without it"
                ))),
            }
        }
        cache
    }

    /// True when no cache could be imported.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.mounts.is_empty()
    }

    /// Number of records the caches hold (each key once).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// The imported result for `key`, after a local miss: its layer is fetched (verified by
    /// digest and diff_id) and the record is written to the local cache index. `None` when no
    /// cache has the key, or fetching failed (a warning; the step then runs).
    pub(crate) fn hit(
        &self,
        key: &Digest,
        builder: &Builder,
        events: &dyn EventSink,
    ) -> Option<CacheRecord> {
        let (source, record) = self.records.get(key)?;
        let (name, source) = &self.sources[*source];
        if let Some(layer) = &record.layer {
            let blobs = builder.store().blobs();
            let fetched = source
                .fetch_layer(blobs, layer, &TransferEvents::new(events))
                .and_then(|()| self.verify(blobs, layer));
            if let Err(e) = fetched {
                events.emit(Event::Warning(format!(
                    "cache {name}: {}: {e}; the step runs instead",
                    record.description
                )));
                return None;
            }
        }
        if let Err(e) = builder.cache_index().put(key, record) {
            events.emit(Event::Warning(format!("recording an imported cache result: {e}")));
        }
        Some(record.clone())
    }

    /// Fills the new, empty cache mount directory `dest` with the imported contents of cache
    /// mount `id`, if a cache has them (a failure is a warning; the mount then starts empty).
    pub(crate) fn restore_mount(
        &self,
        id: &str,
        dest: &Path,
        builder: &Builder,
        events: &dyn EventSink,
    ) {
        let Some((source, entry)) = self.mounts.get(id) else { return };
        let (name, source) = &self.sources[*source];
        let blobs = builder.store().blobs();
        let restored = source
            .fetch_layer(blobs, &entry.layer, &TransferEvents::new(events))
            .and_then(|()| super::mounts::restore(blobs, entry, dest));
        match restored {
            Ok(()) => events.emit(Event::Notice(format!(
                "cache mount {id} restored from {name} ({} bytes)",
                entry.content_size
            ))),
            Err(e) => events.emit(Event::Warning(format!(
                "cache mount {id} from {name}: {e}; it starts empty"
            ))),
        }
    }

    /// Checks that `layer`'s blob holds a tar whose digest is its diff_id (once per build).
    fn verify(&self, blobs: &BlobStore, layer: &LayerRef) -> Result<(), String> {
        let done = |v: &Mutex<HashSet<Digest>>| {
            v.lock().unwrap_or_else(|p| p.into_inner()).contains(&layer.digest)
        };
        if done(&self.verified) {
            return Ok(());
        }
        let reader = blobs.open_verified(&layer.digest).map_err(|e| e.to_string())?;
        let summary = read_layer(reader, &layer.media_type, |_, _| Ok(()))
            .map_err(|e| format!("layer {}: {e}", layer.digest))?;
        if summary.diff_id != layer.diff_id {
            return Err(format!(
                "layer {} has diff_id {}, not {} as the cache says",
                layer.digest, summary.diff_id, layer.diff_id
            ));
        }
        self.verified.lock().unwrap_or_else(|p| p.into_inner()).insert(layer.digest.clone());
        Ok(())
    }
}

/// Opens one cache: manifest, then config (both verified by digest), checked for this build.
fn open(
    location: &CacheLocation,
    registry: Option<&registry::Registry>,
    runtime: &Arc<tokio::runtime::Runtime>,
    blobs: &BlobStore,
    platform: &str,
) -> Result<(Source, format::Parsed), String> {
    let (source, manifest) = Source::open(location, registry, runtime)?;
    let (config_digest, config_size) = format::config_of(&manifest).map_err(|e| e.to_string())?;
    source.fetch(blobs, &config_digest, config_size, &())?;
    let config = blobs.read(&config_digest).map_err(|e| e.to_string())?;
    let parsed = format::parse(&manifest, &config, platform).map_err(|e| e.to_string())?;
    Ok((source, parsed))
}
