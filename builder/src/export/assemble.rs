//! The end of a build: layer transforms, the image config, the manifest, every output, then
//! the tags (last, so a failed output leaves no tag behind).

use std::collections::BTreeMap;
use std::path::Path;

use kiln_cache::store::ImageStore;
use kiln_frontend::graph::Stage;
use oci_spec::image::{Descriptor, MediaType};

use super::transform::{Bases, rewrite_timestamps, squash};
use super::{ExportOptions, Exporter};
use crate::BuildError;
use crate::build::{BuildRequest, BuildResult};
use crate::events::{Event, EventSink};
use crate::image::{ImageConfigFile, RootFs, rfc3339};
use crate::solver::StageResult;

/// Assembles the image of `stage` from its result `state`, writes `req`'s outputs and tags it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn finish(
    root: &Path,
    store: &ImageStore,
    req: &BuildRequest,
    stage: &Stage,
    state: &StageResult,
    bases: Bases,
    created: i64,
    events: &dyn EventSink,
) -> Result<BuildResult, BuildError> {
    let blobs = store.blobs();
    let options: &ExportOptions = &req.export;
    // Layers made here are stored as plain tars; outputs compress them.
    let new_layers = kiln_cache::layer::Compression::None;
    let mut layers = state.layers.clone();
    let mut history = state.history.clone();
    if options.rewrite_timestamp {
        match req.source_date_epoch {
            Some(epoch) => {
                let n =
                    rewrite_timestamps(root, blobs, &mut layers, bases.image, epoch, new_layers)?;
                if n > 0 {
                    events.emit(Event::Notice(format!(
                        "--rewrite-timestamp: {n} cached layers rewritten with mtimes clamped to {epoch}"
                    )));
                }
            }
            None => events.emit(Event::Warning(
                "--rewrite-timestamp has no effect without SOURCE_DATE_EPOCH".to_string(),
            )),
        }
    }
    if options.squash {
        let n = squash(
            root,
            blobs,
            &mut layers,
            &mut history,
            bases.stage_base,
            req.source_date_epoch,
            created,
            new_layers,
        )?;
        if n > 0 {
            events.emit(Event::Notice(format!("--squash: {n} layers squashed into one")));
        }
    }
    let mut container = stage.config.clone();
    container.labels.extend(options.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    let config = ImageConfigFile {
        created: Some(rfc3339(created)),
        author: state.author.clone(),
        architecture: stage.architecture.clone(),
        os: stage.os.clone(),
        variant: None,
        config: container,
        rootfs: RootFs {
            kind: "layers".to_string(),
            diff_ids: layers.iter().map(|l| l.diff_id.to_string()).collect(),
        },
        history,
        other: BTreeMap::new(),
    };
    let config_bytes = config.to_bytes().map_err(BuildError::Json)?;
    let config_digest = blobs.put_bytes(&config_bytes)?;
    let config_desc =
        Descriptor::new(MediaType::ImageConfig, config_bytes.len() as u64, config_digest.to_oci());
    let first_own = bases.image.min(layers.len());
    let exporter = Exporter::new(
        root,
        blobs,
        config_desc,
        layers,
        first_own,
        options,
        &req.tags,
        req.source_date_epoch,
    );
    let main = exporter.main(events)?;
    for output in &req.outputs {
        let written = exporter.write(output, events)?;
        events.emit(Event::OutputWritten { description: written });
    }
    for name in &req.tags {
        store.tag(&name.to_string(), main.descriptor.clone())?;
    }
    events.emit(Event::ImageWritten {
        manifest_digest: main.digest.to_string(),
        config_digest: config_digest.to_string(),
        names: req.tags.iter().map(ToString::to_string).collect(),
    });
    Ok(BuildResult {
        manifest_digest: main.digest,
        config_digest,
        manifest_descriptor: main.descriptor,
        size: main.size,
    })
}
