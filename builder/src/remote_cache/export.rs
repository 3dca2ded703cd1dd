//! `--cache-to`: the build's cache records (and cache mounts) as an OCI image manifest, pushed
//! to a registry with the registry client (blobs the registry has are skipped, others mounted
//! across repositories when possible) or written as an OCI layout directory.

use std::collections::HashSet;
use std::sync::Arc;

use kiln_cache::digest::Digest;
use kiln_cache::index::CacheRecord;
use kiln_cache::store::{DerivedLayers, write_layout};
use kiln_frontend::graph::BuildGraph;
use oci_spec::image::{Descriptor, MediaType};

use super::RemoteCacheError;
use super::format::{CacheConfig, CacheEntry};
use super::mounts::{self, Exported};
use super::spec::{CacheExport, CacheLocation, CacheMode};
use crate::build::Builder;
use crate::events::{Event, EventSink, TransferEvents};
use crate::export::compress::convert;
use crate::registry;
use crate::solver::StageResult;

/// Exports the cache of a finished build to each of `exports`. A failure fails the build
/// unless the export says `ignore-error=true` (then it is a warning).
pub(crate) fn export_all(
    builder: &Builder,
    exports: &[CacheExport],
    graph: &BuildGraph,
    results: &[Arc<StageResult>],
    platform: &str,
    events: &dyn EventSink,
) -> Result<(), RemoteCacheError> {
    for export in exports {
        match export_one(builder, export, graph, results, platform, events) {
            Ok(summary) => events.emit(Event::Notice(summary)),
            Err(message) if export.ignore_error => events.emit(Event::Warning(format!(
                "exporting the cache to {}: {message} (ignored: ignore-error=true)",
                export.location
            ))),
            Err(message) => {
                return Err(RemoteCacheError::Export {
                    target: export.location.to_string(),
                    message,
                });
            }
        }
    }
    Ok(())
}

/// The records `mode` exports: the target stage's (which include those of the stages it is
/// built on) or every stage's, each key once, in build order.
fn records(
    mode: CacheMode,
    graph: &BuildGraph,
    results: &[Arc<StageResult>],
) -> Vec<(Digest, CacheRecord)> {
    let stages: Vec<&Arc<StageResult>> = match mode {
        CacheMode::Min => results.get(graph.target).into_iter().collect(),
        CacheMode::Max => results.iter().collect(),
    };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for stage in stages {
        for (key, record) in &stage.records {
            if seen.insert(key.clone()) {
                out.push((key.clone(), record.clone()));
            }
        }
    }
    out
}

/// Writes one export; returns the line that tells the user what was done.
fn export_one(
    builder: &Builder,
    export: &CacheExport,
    graph: &BuildGraph,
    results: &[Arc<StageResult>],
    platform: &str,
    events: &dyn EventSink,
) -> Result<String, String> {
    let blobs = builder.store().blobs();
    let derived = DerivedLayers::open(builder.root()).map_err(|e| e.to_string())?;
    let mut config = CacheConfig::new(platform);
    for (key, mut record) in records(export.mode, graph, results) {
        // Layers in another compression are converted (tar kept, recorded like the outputs').
        if let Some(layer) = &record.layer
            && layer.media_type != export.compression.media_type()
        {
            let converted = convert(&derived, blobs, layer, export.compression, events)
                .map_err(|e| format!("re-compressing layer {}: {e}", layer.digest))?;
            record.layer = Some(converted);
        }
        config.records.push(CacheEntry { key, record });
    }
    if export.mounts {
        for id in mounts::mount_ids(graph) {
            match mounts::export(builder.root(), blobs, &id, export.compression, export.mounts_max_size)? {
                Exported::Written(entry) => config.mounts.push(entry),
                Exported::Absent => {}
                Exported::TooBig(size) => events.emit(Event::Notice(format!(
                    "cache mount {id} holds {size} bytes, more than mounts-max-size={}: not exported",
                    export.mounts_max_size
                ))),
            }
        }
    }
    let config_bytes = config.to_bytes().map_err(|e| e.to_string())?;
    let config_digest = blobs.put_bytes(&config_bytes).map_err(|e| e.to_string())?;
    let manifest = config.manifest(&config_digest, config_bytes.len() as u64);
    let manifest_bytes = crate::image::canonical_json(&manifest).map_err(|e| e.to_string())?;
    let manifest_digest = blobs.put_bytes(&manifest_bytes).map_err(|e| e.to_string())?;
    let descriptor = Descriptor::new(
        MediaType::ImageManifest,
        manifest_bytes.len() as u64,
        manifest_digest.to_oci(),
    );
    let what = format!(
        "{} steps, {} layers, {} cache mounts",
        config.records.len(),
        manifest.layers().len(),
        config.mounts.len()
    );
    match &export.location {
        CacheLocation::Registry(reference) => {
            let session = registry::session()?;
            let pushed = session
                .registry
                .push(builder.store(), &descriptor, reference, &TransferEvents::new(events))
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "cache exported to {}@{manifest_digest}: {what} ({} blobs uploaded, {} already there, {} mounted)",
                reference.name(),
                pushed.uploaded,
                pushed.existing,
                pushed.mounted
            ))
        }
        CacheLocation::Local { dir, tag } => {
            write_layout(dir, blobs, &[(descriptor, Some(tag.clone()))])
                .map_err(|e| e.to_string())?;
            Ok(format!("cache exported to {}: {what}", export.location))
        }
    }
}
