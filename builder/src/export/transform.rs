//! Changes to the final stage's layers before the image is assembled: `--rewrite-timestamp`
//! (mtimes clamped to `SOURCE_DATE_EPOCH` in every layer the build made) and `--squash` (the
//! final stage's own layers as one). Both give new diff_ids, so they run before the config is
//! written; both are recorded in [`DerivedLayers`] and done once.

use std::path::Path;
use std::sync::Arc;

use kiln_cache::blob::BlobStore;
use kiln_cache::index::LayerRef;
use kiln_cache::layer::{Compression, LayerOptions};
use kiln_cache::store::{DerivedLayers, rewrite_layer_mtimes, squash_layers};
use kiln_frontend::graph::{Base, BuildGraph};
use rayon::prelude::*;

use super::compress::{desc, tag};
use crate::BuildError;
use crate::image::{History, rfc3339};
use crate::solver::StageResult;

/// Where the target stage's layers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Bases {
    /// Layers of the target stage's base (image, stage or context): below its own steps.
    pub stage_base: usize,
    /// Layers of the image at the root of the target's `FROM` chain (0 for scratch or a
    /// context): never rewritten, kept in their compression unless asked.
    pub image: usize,
}

/// Layers a stage's own steps added (each step adds one history entry).
fn own_layers(graph: &BuildGraph, results: &[Arc<StageResult>], stage: usize) -> usize {
    let steps = graph.stages[stage].steps.len();
    let history = &results[stage].history;
    history[history.len().saturating_sub(steps)..].iter().filter(|h| !h.empty_layer).count()
}

/// The [`Bases`] of the target stage.
pub(crate) fn bases(graph: &BuildGraph, results: &[Arc<StageResult>]) -> Bases {
    let base_of = |stage: usize| {
        results[stage].layers.len().saturating_sub(own_layers(graph, results, stage))
    };
    let mut stage = graph.target;
    let image = loop {
        match &graph.stages[stage].base {
            Base::Stage(i) if *i < stage => stage = *i,
            Base::Image(_) => break base_of(stage),
            _ => break 0,
        }
    };
    Bases { stage_base: base_of(graph.target), image }
}

/// Clamps the mtimes of `layers[from..]` to `epoch`, writing changed layers with `to`.
pub(crate) fn rewrite_timestamps(
    root: &Path,
    blobs: &BlobStore,
    layers: &mut [LayerRef],
    from: usize,
    epoch: i64,
    to: Compression,
) -> Result<usize, BuildError> {
    let derived = DerivedLayers::open(root)?;
    let start = from.min(layers.len());
    let rewritten: Vec<Option<LayerRef>> = layers[start..]
        .par_iter()
        .map(|layer| -> Result<Option<LayerRef>, kiln_cache::Error> {
            let key = format!("epoch:{}:{epoch}:{}", layer.diff_id, tag(to));
            let unchanged = format!("epoch-unchanged:{}:{epoch}", layer.diff_id);
            if let Some(done) = derived.get(&key, blobs)? {
                return Ok(Some(done));
            }
            if derived.get(&unchanged, blobs)?.is_some() {
                return Ok(None);
            }
            match rewrite_layer_mtimes(blobs, &desc(layer), epoch, to)? {
                Some(info) => {
                    let done = LayerRef {
                        digest: info.digest,
                        diff_id: info.diff_id,
                        size: info.size,
                        media_type: info.media_type,
                    };
                    derived.put(&key, &done)?;
                    Ok(Some(done))
                }
                None => {
                    // Remembered (pointing at the layer itself) so it is not read again.
                    derived.put(&unchanged, layer)?;
                    Ok(None)
                }
            }
        })
        .collect::<Result<_, _>>()?;
    let mut count = 0;
    for (slot, new) in layers[start..].iter_mut().zip(rewritten) {
        if let Some(new) = new {
            *slot = new;
            count += 1;
        }
    }
    Ok(count)
}

/// Squashes `layers[from..]` into one layer (nothing when there are fewer than two) and marks
/// their history entries empty, adding one for the squashed layer. Returns how many layers
/// were squashed (0 when nothing changed).
#[allow(clippy::too_many_arguments)]
pub(crate) fn squash(
    root: &Path,
    blobs: &BlobStore,
    layers: &mut Vec<LayerRef>,
    history: &mut Vec<History>,
    from: usize,
    epoch: Option<i64>,
    created: i64,
    to: Compression,
) -> Result<usize, BuildError> {
    let start = from.min(layers.len());
    let count = layers.len() - start;
    if count < 2 {
        return Ok(0);
    }
    let derived = DerivedLayers::open(root)?;
    let ids: Vec<String> = layers[start..].iter().map(|l| l.diff_id.to_string()).collect();
    let key = format!(
        "squash:{}:{}:{}",
        ids.join(","),
        epoch.map_or("-".to_string(), |e| e.to_string()),
        tag(to)
    );
    let squashed = match derived.get(&key, blobs)? {
        Some(done) => done,
        None => {
            let descs: Vec<_> = layers[start..].iter().map(desc).collect();
            let info = squash_layers(
                blobs,
                &descs,
                &LayerOptions { compression: to, clamp_mtime: epoch },
            )?;
            let done = LayerRef {
                digest: info.digest,
                diff_id: info.diff_id,
                size: info.size,
                media_type: info.media_type,
            };
            derived.put(&key, &done)?;
            done
        }
    };
    layers.truncate(start);
    layers.push(squashed);
    let mut seen = 0;
    for h in history.iter_mut().filter(|h| !h.empty_layer) {
        seen += 1;
        if seen > start {
            h.empty_layer = true;
        }
    }
    history.push(History {
        created: Some(rfc3339(created)),
        created_by: Some("kiln build --squash".to_string()),
        author: None,
        comment: Some(format!("{count} layers squashed into one")),
        empty_layer: false,
    });
    Ok(count)
}
