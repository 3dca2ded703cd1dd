//! One build: Dockerfile + context in, image (tagged, exported) out.
//!
//! Stages run in graph order; each keeps its layers, history and config. Filesystem steps write
//! one layer each through [`kiln_cache::layer`]; config-only steps add history. The image is
//! tagged only after every output was written, so a failed build leaves no tag behind.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use kiln_cache::digest::Digest;
use kiln_cache::layer::{Compression, LayerEntry, LayerInfo, LayerOptions, write_layer};
use kiln_cache::snapshot::{LayerDesc, Snapshots};
use kiln_cache::store::ImageStore;
use kiln_frontend::graph::{Base, BuildGraph, CopySource, MkdirOp, Op, Stage};
use kiln_frontend::lower::{LowerOptions, lower};
use kiln_frontend::{Diagnostic, Span, syntax};
use oci_spec::image::{Descriptor, MediaType};

use crate::BuildError;
use crate::context::BuildContext;
use crate::events::{Event, EventSink};
use crate::export::{Output, write_output};
use crate::fsview::LayeredView;
use crate::image::{History, ImageConfigFile, RootFs, manifest, rfc3339};
use crate::ops::copy::{CopyFrom, CopyInputs, plan_copy};
use crate::ops::mkdir::plan_mkdir;
use crate::platform::Platform;
use crate::reference::ImageName;
use crate::resolver::{ImageLocation, LoadedImage, StoreResolver, layout_blob_path};
use crate::users::resolve_owner;

/// The Dockerfile to build.
#[derive(Debug, Clone)]
pub struct DockerfileInput {
    /// Name shown in diagnostics (`Dockerfile`, `app/Containerfile`, `-`).
    pub name: String,
    /// Where it is on disk, if it is a file (used to find `<name>.dockerignore`).
    pub path: Option<PathBuf>,
    /// Its text.
    pub text: String,
}

/// What to build and where to put it.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The context directory.
    pub context_dir: PathBuf,
    /// The Dockerfile.
    pub dockerfile: DockerfileInput,
    /// `-t` names.
    pub tags: Vec<ImageName>,
    /// `--build-arg`s.
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--output`s.
    pub outputs: Vec<Output>,
    /// `SOURCE_DATE_EPOCH`: fixes timestamps for reproducible digests.
    pub source_date_epoch: Option<i64>,
}

/// What a successful build produced.
#[derive(Debug, Clone)]
pub struct BuildResult {
    /// Digest of the image manifest.
    pub manifest_digest: Digest,
    /// Digest of the image config (the image id).
    pub config_digest: Digest,
    /// The manifest's descriptor, as tagged.
    pub manifest_descriptor: Descriptor,
}

/// A layer of an image being built.
#[derive(Debug, Clone, PartialEq)]
struct LayerRecord {
    digest: Digest,
    diff_id: Digest,
    size: u64,
    media_type: String,
}

impl From<LayerInfo> for LayerRecord {
    fn from(l: LayerInfo) -> Self {
        LayerRecord { digest: l.digest, diff_id: l.diff_id, size: l.size, media_type: l.media_type }
    }
}

/// A stage's filesystem and metadata at some point of the build.
#[derive(Debug, Clone, Default)]
struct StageState {
    layers: Vec<LayerRecord>,
    history: Vec<History>,
    /// The config's `author` (`MAINTAINER`), inherited from the base.
    author: Option<String>,
}

/// Builds images into a kiln root.
pub struct Builder {
    store: ImageStore,
    snapshots: Snapshots,
}

impl Builder {
    /// Opens (creating if needed) the kiln root at `root`.
    pub fn open(root: &std::path::Path) -> Result<Builder, BuildError> {
        let store = ImageStore::open(root)?;
        let snapshots = Snapshots::open(root)?;
        Ok(Builder { store, snapshots })
    }

    /// The image store of this root.
    pub fn store(&self) -> &ImageStore {
        &self.store
    }

    /// Runs a build.
    pub fn build(
        &self,
        req: &BuildRequest,
        events: &dyn EventSink,
    ) -> Result<BuildResult, BuildError> {
        let now = req.source_date_epoch.unwrap_or_else(unix_now);
        let context = BuildContext::open(&req.context_dir, req.dockerfile.path.as_deref())?;
        let dockerfile = syntax::parse(&req.dockerfile.name, &req.dockerfile.text)?;
        let platform = Platform::host();
        let resolver = StoreResolver::new(&self.store, platform.clone());
        let options = LowerOptions {
            build_args: req.build_args.clone(),
            target: req.target.clone(),
            target_platform: platform.to_string(),
            build_platform: platform.to_string(),
        };
        let graph = lower(&dockerfile, &options, &resolver)?;
        for warning in &graph.warnings {
            events.emit(Event::Warning(warning.to_string()));
        }
        let run = Run {
            builder: self,
            req,
            graph: &graph,
            resolver: &resolver,
            context: &context,
            events,
            now,
            vertex: std::cell::Cell::new(0),
        };
        let mut results: Vec<StageState> = Vec::with_capacity(graph.stages.len());
        for stage in &graph.stages {
            let state = run.stage(stage, &results)?;
            results.push(state);
        }
        let target = &graph.stages[graph.target];
        let final_state = &results[graph.target];
        self.finish(req, target, final_state, now, events)
    }

    /// Writes config and manifest, the outputs, then the tags.
    fn finish(
        &self,
        req: &BuildRequest,
        stage: &Stage,
        state: &StageState,
        now: i64,
        events: &dyn EventSink,
    ) -> Result<BuildResult, BuildError> {
        let config = ImageConfigFile {
            created: Some(rfc3339(now)),
            author: state.author.clone(),
            architecture: stage.architecture.clone(),
            os: stage.os.clone(),
            variant: None,
            config: stage.config.clone(),
            rootfs: RootFs {
                kind: "layers".to_string(),
                diff_ids: state.layers.iter().map(|l| l.diff_id.to_string()).collect(),
            },
            history: state.history.clone(),
            other: BTreeMap::new(),
        };
        let blobs = self.store.blobs();
        let config_bytes = config.to_bytes().map_err(BuildError::Json)?;
        let config_digest = blobs.put_bytes(&config_bytes)?;
        let config_desc = Descriptor::new(
            MediaType::ImageConfig,
            config_bytes.len() as u64,
            config_digest.to_oci(),
        );
        let layers = state
            .layers
            .iter()
            .map(|l| {
                Ok(Descriptor::new(
                    MediaType::from(l.media_type.as_str()),
                    l.size,
                    l.digest.to_oci(),
                ))
            })
            .collect::<Result<Vec<_>, BuildError>>()?;
        let manifest = manifest(config_desc, layers);
        let manifest_bytes = crate::image::canonical_json(&manifest).map_err(BuildError::Json)?;
        let manifest_digest = blobs.put_bytes(&manifest_bytes)?;
        let manifest_descriptor = Descriptor::new(
            MediaType::ImageManifest,
            manifest_bytes.len() as u64,
            manifest_digest.to_oci(),
        );
        for output in &req.outputs {
            let written = write_output(output, blobs, &manifest_descriptor, &req.tags)?;
            events.emit(Event::OutputWritten { description: written });
        }
        for name in &req.tags {
            self.store.tag(&name.to_string(), manifest_descriptor.clone())?;
        }
        events.emit(Event::ImageWritten {
            manifest_digest: manifest_digest.to_string(),
            config_digest: config_digest.to_string(),
            names: req.tags.iter().map(ToString::to_string).collect(),
        });
        Ok(BuildResult { manifest_digest, config_digest, manifest_descriptor })
    }
}

/// The state of one running build.
struct Run<'a> {
    builder: &'a Builder,
    req: &'a BuildRequest,
    graph: &'a BuildGraph,
    resolver: &'a StoreResolver<'a>,
    context: &'a BuildContext,
    events: &'a dyn EventSink,
    now: i64,
    vertex: std::cell::Cell<usize>,
}

impl Run<'_> {
    fn next_vertex(&self) -> usize {
        self.vertex.set(self.vertex.get() + 1);
        self.vertex.get()
    }

    fn stage_label(stage: &Stage) -> String {
        stage.name.clone().unwrap_or_else(|| format!("stage-{}", stage.position))
    }

    fn stage(&self, stage: &Stage, done: &[StageState]) -> Result<StageState, BuildError> {
        let label = Self::stage_label(stage);
        let total = stage.steps.len() + 1;
        let vertex = self.next_vertex();
        let started = Instant::now();
        let from_text = match &stage.base {
            Base::Scratch => "FROM scratch".to_string(),
            Base::Image(img) => format!("FROM {}", img.reference),
            Base::Stage(i) => format!("FROM {}", Self::stage_label(&self.graph.stages[*i])),
        };
        self.events.emit(Event::StepStarted {
            vertex,
            stage: label.clone(),
            index: 1,
            total,
            text: from_text,
        });
        let mut state = match &stage.base {
            Base::Scratch => StageState::default(),
            Base::Stage(i) => done[*i].clone(),
            Base::Image(img) => {
                let loaded = self.image(&img.id, stage.span, "FROM")?;
                self.import_layers(&loaded).map_err(|e| self.step_error(stage.span, "FROM", e))?;
                image_state(&loaded).map_err(|e| self.step_error(stage.span, "FROM", e))?
            }
        };
        self.events.emit(Event::StepDone { vertex, duration: started.elapsed(), cached: false });
        if stage.author.is_some() {
            state.author = stage.author.clone();
        }

        for (i, step) in stage.steps.iter().enumerate() {
            let vertex = self.next_vertex();
            let started = Instant::now();
            self.events.emit(Event::StepStarted {
                vertex,
                stage: label.clone(),
                index: i + 2,
                total,
                text: step.created_by.clone(),
            });
            let layer = match &step.op {
                None => None,
                Some(op) => self
                    .apply(op, &state, done)
                    .map_err(|e| self.step_error(step.span, &step.keyword, e))?,
            };
            let empty_layer = layer.is_none();
            if let Some(layer) = layer {
                state.layers.push(layer);
            }
            state.history.push(History {
                created: Some(rfc3339(self.now)),
                created_by: Some(step.created_by.clone()),
                author: None,
                comment: None,
                empty_layer,
            });
            self.events.emit(Event::StepDone {
                vertex,
                duration: started.elapsed(),
                cached: false,
            });
        }
        Ok(state)
    }

    /// Runs a filesystem op; `None` when it changed nothing.
    fn apply(
        &self,
        op: &Op,
        state: &StageState,
        done: &[StageState],
    ) -> Result<Option<LayerRecord>, String> {
        let dest_view = self.view(&state.layers)?;
        let entries = match op {
            Op::Copy(copy) => {
                let owner = match &copy.chown {
                    Some(spec) => {
                        Some(resolve_owner(spec, &dest_view).map_err(|e| format!("--chown: {e}"))?)
                    }
                    None => None,
                };
                let source_view;
                let from = match &copy.from {
                    CopySource::Context => CopyFrom::Context(self.context),
                    CopySource::Stage(i) => {
                        source_view = self.view(&done[*i].layers)?;
                        CopyFrom::View(&source_view)
                    }
                    CopySource::Image(img) => {
                        let loaded =
                            self.resolver.loaded(&img.id).ok_or("image was not resolved")?;
                        self.import_layers(&loaded)?;
                        source_view = self.view(&image_state(&loaded)?.layers)?;
                        CopyFrom::View(&source_view)
                    }
                };
                let inputs = CopyInputs { from, dest_view: &dest_view, owner, now: self.now };
                plan_copy(copy, &inputs).map_err(|e| e.to_string())?
            }
            Op::Mkdir(mkdir) => self.plan_mkdir(mkdir, &dest_view)?,
            other => return Err(format!("{other:?} is not supported yet")),
        };
        if entries.is_empty() {
            return Ok(None);
        }
        let options = LayerOptions {
            compression: Compression::Gzip { level: 6 },
            clamp_mtime: self.req.source_date_epoch,
        };
        let info = write_layer(self.builder.store.blobs(), &entries, &options)
            .map_err(|e| e.to_string())?;
        Ok(Some(info.into()))
    }

    fn plan_mkdir(&self, op: &MkdirOp, view: &LayeredView) -> Result<Vec<LayerEntry>, String> {
        let owner = match &op.owner {
            Some(spec) => resolve_owner(spec, view).unwrap_or_else(|e| {
                self.events.emit(Event::Warning(format!(
                    "WORKDIR {}: {e}; the directory is created owned by root",
                    op.path
                )));
                Default::default()
            }),
            None => Default::default(),
        };
        plan_mkdir(&op.path, view, owner, self.now).map_err(|e| e.to_string())
    }

    /// The merged view of `layers`, unpacking each into a snapshot on first use.
    fn view(&self, layers: &[LayerRecord]) -> Result<LayeredView, String> {
        let blobs = self.builder.store.blobs();
        let dirs = layers
            .iter()
            .map(|l| {
                let desc = LayerDesc {
                    digest: l.digest.clone(),
                    diff_id: l.diff_id.clone(),
                    media_type: l.media_type.clone(),
                };
                self.builder.snapshots.ensure(blobs, &desc).map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LayeredView::new(dirs))
    }

    fn image(&self, id: &str, span: Span, keyword: &str) -> Result<Arc<LoadedImage>, BuildError> {
        self.resolver
            .loaded(id)
            .ok_or_else(|| self.step_error(span, keyword, format!("image {id} was not resolved")))
    }

    /// Copies an OCI layout image's blobs into the store (verified), so it can be exported.
    fn import_layers(&self, image: &LoadedImage) -> Result<(), String> {
        let ImageLocation::Layout(dir) = &image.location else { return Ok(()) };
        let blobs = self.builder.store.blobs();
        for layer in image.manifest.layers() {
            let digest: Digest = layer.digest().to_string().parse().map_err(|e| format!("{e}"))?;
            if !blobs.contains(&digest) {
                blobs
                    .import_file(&layout_blob_path(dir, &digest), Some(&digest))
                    .map_err(|e| format!("importing layer {digest} from {}: {e}", dir.display()))?;
            }
        }
        Ok(())
    }

    fn step_error(&self, span: Span, keyword: &str, message: impl Into<String>) -> BuildError {
        BuildError::Dockerfile(
            Diagnostic::error(&self.req.dockerfile.name, span, message).in_instruction(keyword),
        )
    }
}

/// A base image's layers and history as the starting state of a stage.
fn image_state(image: &LoadedImage) -> Result<StageState, String> {
    let diff_ids = &image.config.rootfs.diff_ids;
    let layers = image.manifest.layers();
    if diff_ids.len() != layers.len() {
        return Err(format!(
            "image {} is inconsistent: {} layers but {} diff_ids",
            image.manifest_digest,
            layers.len(),
            diff_ids.len()
        ));
    }
    let layers = layers
        .iter()
        .zip(diff_ids)
        .map(|(l, diff_id)| {
            Ok(LayerRecord {
                digest: l.digest().to_string().parse().map_err(|e| format!("{e}"))?,
                diff_id: diff_id.parse().map_err(|e| format!("{e}"))?,
                size: l.size(),
                media_type: l.media_type().to_string(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(StageState {
        layers,
        history: image.config.history.clone(),
        author: image.config.author.clone(),
    })
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
