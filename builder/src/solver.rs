//! The solver: runs a build graph's stages in parallel, each step through the cache.
//!
//! Every stage gets a thread that waits for the stages it needs (its base, `COPY --from`
//! sources) and then runs its steps in order. A bounded number of steps run at once (`--jobs`).
//! Each filesystem step has a cache key ([`crate::key`]); a hit reuses the recorded layer
//! without running anything, a miss runs the op under a per-key lock (so two builds — in this
//! process or another — that need the same state produce it once) and records the result. The
//! first failure cancels the rest: stages waiting give up, running ones stop at the next step.

mod run;
mod sources;

pub use run::SecretSource;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kiln_cache::digest::Digest;
use kiln_cache::index::{CacheRecord, LayerRef};
use kiln_cache::layer::{Compression, LayerEntry, LayerOptions, write_layer};
use kiln_cache::snapshot::LayerDesc;
use kiln_frontend::graph::{
    Base, BuildGraph, CopyOp, CopySource, MkdirOp, MountSource, Op, RunMount, Stage, Step,
};
use kiln_frontend::{Diagnostic, Span};
use serde_json::json;

use self::sources::{copy_digest, key_parent, state_key_after};
use crate::BuildError;
use crate::build::Builder;
use crate::context::BuildContext;
use crate::context::sources::Sources;
use crate::events::{Event, EventSink};
use crate::fsview::LayeredView;
use crate::image::{History, rfc3339};
use crate::key::{self, ContextHasher};
use crate::ops::copy::{CopyFrom, CopyInputs, Hashed, plan_copy};
use crate::ops::mkdir::plan_mkdir;
use crate::remote_cache::RemoteCache;
use crate::resolver::{ImageLocation, LoadedImage, StoreResolver, layout_blob_path};
use crate::sandbox::{CancelToken, Isolation, NetworkMode};
use crate::users::resolve_owner;

/// How the solver may use the cache and the machine.
#[derive(Debug, Clone)]
pub struct SolveOptions {
    /// Steps running at once (at least 1).
    pub jobs: usize,
    /// `--no-cache`: run every step.
    pub no_cache: bool,
    /// `--no-cache-filter`: stages (by name or index) whose steps always run.
    pub no_cache_stages: Vec<String>,
    /// `SOURCE_DATE_EPOCH`: clamps layer mtimes and fixes timestamps.
    pub source_date_epoch: Option<i64>,
    /// The build's own time (seconds since the epoch).
    pub now: i64,
    /// How RUN steps are isolated (`--isolation`).
    pub isolation: Isolation,
    /// The network of RUN steps without `--network` (`kiln build --network`).
    pub network: NetworkMode,
    /// `--secret`s by id.
    pub secrets: BTreeMap<String, SecretSource>,
    /// `--ssh` agent sockets by id.
    pub ssh: BTreeMap<String, PathBuf>,
    /// How new layers are stored: plain tars (outputs and pushes compress them).
    pub compression: Compression,
}

/// A stage's filesystem and metadata after its last step.
#[derive(Debug, Clone)]
pub(crate) struct StageResult {
    /// Cache key of the final filesystem state.
    pub key: Digest,
    /// Layers, bottom first.
    pub layers: Vec<LayerRef>,
    /// History entries, one per instruction (the base image's first).
    pub history: Vec<History>,
    /// The config's `author`.
    pub author: Option<String>,
    /// When the filesystem last changed (seconds), for `created` fields; `None` for scratch.
    pub changed_at: Option<i64>,
    /// The cache records of the steps that made it, in order (for `--cache-to`).
    pub records: Vec<(Digest, CacheRecord)>,
}

/// Why a stage stopped.
enum StageError {
    /// Another stage failed first.
    Canceled,
    /// This stage failed.
    Failed(BuildError),
}

impl From<BuildError> for StageError {
    fn from(e: BuildError) -> Self {
        StageError::Failed(e)
    }
}

/// Limits how many steps run at once.
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    fn acquire(&self) -> SlotGuard<'_> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        SlotGuard(self)
    }
}

struct SlotGuard<'a>(&'a Slots);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let mut free = self.0.free.lock().unwrap_or_else(|p| p.into_inner());
        *free += 1;
        self.0.freed.notify_one();
    }
}

/// One build's graph being solved.
pub(crate) struct Solver<'a> {
    pub builder: &'a Builder,
    pub graph: &'a BuildGraph,
    pub resolver: &'a StoreResolver<'a>,
    pub context: &'a BuildContext,
    pub hasher: &'a ContextHasher<'a>,
    /// Named contexts, downloads and git checkouts.
    pub sources: &'a Sources<'a>,
    pub events: &'a dyn EventSink,
    pub options: &'a SolveOptions,
    /// The Dockerfile's name, for diagnostics.
    pub file: &'a str,
    /// Set when the build stops (a failure, or Ctrl-C): running RUNs are killed.
    pub cancel: &'a CancelToken,
    /// The isolation was reported (once per build).
    pub isolation_noted: OnceLock<()>,
    /// A root file system fallback was reported (once per build).
    pub fallback_noted: OnceLock<()>,
    /// `--cache-from`: consulted on a local cache miss.
    pub remote: Option<&'a RemoteCache>,
}

/// Completed stages, shared between stage threads.
struct Board {
    results: Mutex<Vec<Option<Arc<StageResult>>>>,
    changed: Condvar,
    canceled: AtomicBool,
    first_error: Mutex<Option<BuildError>>,
}

impl Solver<'_> {
    /// Runs every stage; returns their results in graph order, or the first error.
    pub fn solve(&self) -> Result<Vec<Arc<StageResult>>, BuildError> {
        let stages = &self.graph.stages;
        let board = Board {
            results: Mutex::new(vec![None; stages.len()]),
            changed: Condvar::new(),
            canceled: AtomicBool::new(false),
            first_error: Mutex::new(None),
        };
        let slots = Slots { free: Mutex::new(self.options.jobs.max(1)), freed: Condvar::new() };
        let vertex = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for (index, stage) in stages.iter().enumerate() {
                let (board, slots, vertex) = (&board, &slots, &vertex);
                scope.spawn(move || {
                    let outcome = self.run_stage(stage, board, slots, vertex);
                    let mut results = board.results.lock().unwrap_or_else(|p| p.into_inner());
                    match outcome {
                        Ok(result) => results[index] = Some(Arc::new(result)),
                        Err(StageError::Canceled) => {}
                        Err(StageError::Failed(e)) => {
                            board.canceled.store(true, Ordering::SeqCst);
                            // Running RUNs of other stages are killed.
                            self.cancel.cancel();
                            let mut first =
                                board.first_error.lock().unwrap_or_else(|p| p.into_inner());
                            first.get_or_insert(e);
                        }
                    }
                    board.changed.notify_all();
                });
            }
        });
        if let Some(e) = board.first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        if self.cancel.is_cancelled() {
            return Err(BuildError::Interrupted);
        }
        let results = board.results.into_inner().unwrap_or_else(|p| p.into_inner());
        results
            .into_iter()
            .map(|r| r.ok_or_else(|| BuildError::Internal("a stage produced no result".into())))
            .collect()
    }

    /// Waits until the stages `deps` are done; `None` when the build was canceled.
    fn wait_for(&self, deps: &[usize], board: &Board) -> Option<Vec<Option<Arc<StageResult>>>> {
        let mut results = board.results.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if board.canceled.load(Ordering::SeqCst) || self.cancel.is_cancelled() {
                return None;
            }
            if deps.iter().all(|d| results[*d].is_some()) {
                return Some(results.clone());
            }
            // A timeout, to notice a Ctrl-C (which sets the cancel token, not the board).
            results = board
                .changed
                .wait_timeout(results, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn run_stage(
        &self,
        stage: &Stage,
        board: &Board,
        slots: &Slots,
        vertex: &AtomicUsize,
    ) -> Result<StageResult, StageError> {
        let deps = stage_dependencies(stage);
        let done = self.wait_for(&deps, board).ok_or(StageError::Canceled)?;
        let label = stage_label(stage);
        let total = stage.steps.len() + 1;
        let no_cache = self.options.no_cache
            || self.options.no_cache_stages.iter().any(|s| {
                Some(s.to_ascii_lowercase()) == stage.name || *s == stage.position.to_string()
            });

        let v = vertex.fetch_add(1, Ordering::SeqCst) + 1;
        let started = Instant::now();
        let from_text = match &stage.base {
            Base::Scratch => "FROM scratch".to_string(),
            Base::Image(img) => format!("FROM {}", img.reference),
            Base::Stage(i) => format!("FROM {}", stage_label(&self.graph.stages[*i])),
            Base::Named(name) => format!("FROM {name} (build context)"),
        };
        self.events.emit(Event::StepStarted {
            vertex: v,
            stage: label.clone(),
            index: 1,
            total,
            text: from_text,
        });
        let mut state = match &stage.base {
            Base::Scratch => StageResult {
                key: key::scratch(),
                layers: Vec::new(),
                history: Vec::new(),
                author: None,
                changed_at: None,
                records: Vec::new(),
            },
            Base::Stage(i) => done[*i].as_deref().cloned().ok_or(StageError::Canceled)?,
            Base::Image(img) => {
                let loaded = self.loaded(&img.id, stage.span, "FROM")?;
                let _slot = slots.acquire();
                self.import_layers(&loaded).map_err(|e| self.error(stage.span, "FROM", e))?;
                image_state(&loaded).map_err(|e| self.error(stage.span, "FROM", e))?
            }
            Base::Named(name) => {
                let _slot = slots.acquire();
                self.named_base(name).map_err(|e| self.error(stage.span, "FROM", e))?
            }
        };
        self.events.emit(Event::StepDone { vertex: v, duration: started.elapsed(), cached: false });
        if stage.author.is_some() {
            state.author = stage.author.clone();
        }

        // History entries of config-only steps that come before any layer get their time once
        // the stage is done (see `fill_history_times`): index into `state.history`.
        let first_own_entry = state.history.len();
        for (i, step) in stage.steps.iter().enumerate() {
            if board.canceled.load(Ordering::SeqCst) || self.cancel.is_cancelled() {
                return Err(StageError::Canceled);
            }
            let v = vertex.fetch_add(1, Ordering::SeqCst) + 1;
            let started = Instant::now();
            self.events.emit(Event::StepStarted {
                vertex: v,
                stage: label.clone(),
                index: i + 2,
                total,
                text: step.created_by.clone(),
            });
            let cached = match &step.op {
                None => {
                    let created = self.options.source_date_epoch.or(state.changed_at);
                    let mut entry = history(step, 0, true);
                    entry.created = created.map(rfc3339);
                    state.history.push(entry);
                    false
                }
                Some(op) => {
                    let _slot = slots.acquire();
                    self.run_op(op, step, &mut state, &done, no_cache, v)?
                }
            };
            self.events.emit(Event::StepDone { vertex: v, duration: started.elapsed(), cached });
        }
        fill_history_times(&mut state.history[first_own_entry..], self.options.now);
        Ok(state)
    }

    /// A `created` time: `SOURCE_DATE_EPOCH`, else the given time, else now.
    fn timestamp(&self, at: Option<i64>) -> i64 {
        self.options.source_date_epoch.or(at).unwrap_or(self.options.now)
    }

    /// Runs (or reuses) a filesystem step; returns whether it came from the cache.
    fn run_op(
        &self,
        op: &Op,
        step: &Step,
        state: &mut StageResult,
        done: &[Option<Arc<StageResult>>],
        no_cache: bool,
        vertex: usize,
    ) -> Result<bool, StageError> {
        let fail = |e: String| {
            if e == run::CANCELLED && self.cancel.is_cancelled() {
                StageError::Canceled
            } else {
                StageError::Failed(self.error(step.span, &step.keyword, e))
            }
        };
        // What the key read from the build context, for the plan to copy exactly that.
        let hashed = Hashed::default();
        let key = self.op_key(op, &state.key, done, &hashed).map_err(fail)?;
        let index = &self.builder.index;
        let blobs = self.builder.store().blobs();
        let lookup =
            |index: &kiln_cache::index::CacheIndex| -> Result<Option<CacheRecord>, StageError> {
                if no_cache {
                    return Ok(None);
                }
                index.get(&key, blobs).map_err(|e| StageError::Failed(e.into()))
            };
        let found = match lookup(index)? {
            None if !no_cache => self.remote.and_then(|r| r.hit(&key, self.builder, self.events)),
            found => found,
        };
        let (record, cached) = match found {
            Some(record) => (record, true),
            None => {
                // Someone else (another stage, another kiln) may be producing this very state.
                let _lock = index.lock(&key).map_err(|e| StageError::Failed(e.into()))?;
                match lookup(index)? {
                    Some(record) => (record, true),
                    None => {
                        // A RUN's entries point into its scratch directory: keep it until written.
                        let (entries, scratch) = match op {
                            Op::Run(run) => {
                                let r = self.execute_run(run, state, done, vertex).map_err(fail)?;
                                (r.entries, Some(r.upper))
                            }
                            _ => (self.plan(op, state, done, &hashed).map_err(fail)?, None),
                        };
                        let layer = self.write(&entries).map_err(fail)?;
                        // The RUN's upper directory already is that layer, unpacked: keep it as
                        // the snapshot instead of extracting the blob again for the next step.
                        if let (Some(layer), Some(upper)) = (&layer, &scratch) {
                            let _ = self.builder.snapshots.adopt(&layer.diff_id, &upper.path);
                        }
                        drop(scratch);
                        let record = CacheRecord {
                            layer,
                            created: self.options.source_date_epoch.unwrap_or(self.options.now),
                            description: step.created_by.clone(),
                        };
                        index.put(&key, &record).map_err(|e| StageError::Failed(e.into()))?;
                        (record, false)
                    }
                }
            }
        };
        state.records.push((key.clone(), record.clone()));
        let empty = record.layer.is_none();
        if let Some(layer) = record.layer {
            state.layers.push(layer);
            state.changed_at = Some(record.created);
        }
        let created = self.timestamp(Some(record.created));
        state.history.push(history(step, created, empty));
        state.key = state_key_after(op, &state.key, key);
        Ok(cached)
    }

    /// The cache key of `op` applied on the state `parent`.
    fn op_key(
        &self,
        op: &Op,
        parent: &Digest,
        done: &[Option<Arc<StageResult>>],
        keep: &Hashed,
    ) -> Result<Digest, String> {
        match op {
            Op::Copy(copy) => {
                let (from, input) = match &copy.from {
                    CopySource::Context => ("context", copy_digest(self.hasher, copy, keep)?),
                    CopySource::Stage(i) => {
                        let result = done[*i].as_ref().ok_or("source stage has no result")?;
                        ("stage", result.key.clone())
                    }
                    CopySource::Image(img) => {
                        let loaded =
                            self.resolver.loaded(&img.id).ok_or("image was not resolved")?;
                        ("image", key::image(&loaded.manifest_digest))
                    }
                    CopySource::Named(name) => ("named", self.named_digest(name, copy, keep)?),
                };
                let parent = key_parent(copy.link, copy.chown.as_deref(), parent);
                Ok(key::step(&parent, copy_description(copy, from), &[input]))
            }
            Op::Mkdir(MkdirOp { path, owner }) => {
                Ok(key::step(parent, json!({ "mkdir": path, "owner": owner }), &[]))
            }
            Op::Add(add) => self.add_key(add, parent, keep),
            Op::Run(run) => self.run_key(run, parent, done),
            other => Err(format!("{other:?} is not supported yet")),
        }
    }

    /// The layer entries `op` produces on `state`.
    fn plan(
        &self,
        op: &Op,
        state: &StageResult,
        done: &[Option<Arc<StageResult>>],
        hashed: &Hashed,
    ) -> Result<Vec<LayerEntry>, String> {
        let dest_view = self.view(&state.layers)?;
        match op {
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
                        let result = done[*i].as_ref().ok_or("source stage has no result")?;
                        source_view = self.view(&result.layers)?;
                        CopyFrom::View(&source_view)
                    }
                    CopySource::Image(img) => {
                        let loaded =
                            self.resolver.loaded(&img.id).ok_or("image was not resolved")?;
                        self.import_layers(&loaded)?;
                        source_view = self.view(&image_state(&loaded)?.layers)?;
                        CopyFrom::View(&source_view)
                    }
                    CopySource::Named(name) => CopyFrom::Context(self.named_context(name)?),
                };
                let now = self.timestamp(None);
                // --link: the layer is made on an empty filesystem.
                let empty = LayeredView::default();
                let dest_view = if copy.link { &empty } else { &dest_view };
                let inputs = CopyInputs { from, dest_view, owner, now, hashed: Some(hashed) };
                plan_copy(copy, &inputs).map_err(|e| e.to_string())
            }
            Op::Mkdir(mkdir) => {
                let owner = match &mkdir.owner {
                    Some(spec) => resolve_owner(spec, &dest_view).unwrap_or_else(|e| {
                        self.events.emit(Event::Warning(format!(
                            "WORKDIR {}: {e}; the directory is created owned by root",
                            mkdir.path
                        )));
                        Default::default()
                    }),
                    None => Default::default(),
                };
                plan_mkdir(&mkdir.path, &dest_view, owner, self.timestamp(None))
                    .map_err(|e| e.to_string())
            }
            Op::Add(add) => self.plan_add(add, &dest_view, hashed),
            other => Err(format!("{other:?} is not supported yet")),
        }
    }

    /// Writes `entries` as a layer; `None` when there are none (the step changed nothing).
    fn write(&self, entries: &[LayerEntry]) -> Result<Option<LayerRef>, String> {
        if entries.is_empty() {
            return Ok(None);
        }
        let options = LayerOptions {
            compression: self.options.compression,
            clamp_mtime: self.options.source_date_epoch,
        };
        let info = write_layer(self.builder.store().blobs(), entries, &options)
            .map_err(|e| e.to_string())?;
        Ok(Some(LayerRef {
            digest: info.digest,
            diff_id: info.diff_id,
            size: info.size,
            media_type: info.media_type,
        }))
    }

    /// The merged view of `layers`, unpacking each into a snapshot on first use.
    fn view(&self, layers: &[LayerRef]) -> Result<LayeredView, String> {
        Ok(LayeredView::new(self.snapshot_dirs(layers)?))
    }

    /// The snapshot directories of `layers`, bottom first, unpacking each on first use.
    fn snapshot_dirs(&self, layers: &[LayerRef]) -> Result<Vec<PathBuf>, String> {
        let blobs = self.builder.store().blobs();
        layers
            .iter()
            .map(|l| {
                let desc = LayerDesc {
                    digest: l.digest.clone(),
                    diff_id: l.diff_id.clone(),
                    media_type: l.media_type.clone(),
                };
                self.builder.snapshots.ensure(blobs, &desc).map_err(|e| e.to_string())
            })
            .collect()
    }

    fn loaded(&self, id: &str, span: Span, keyword: &str) -> Result<Arc<LoadedImage>, BuildError> {
        self.resolver
            .loaded(id)
            .ok_or_else(|| self.error(span, keyword, format!("image {id} was not resolved")))
    }

    /// Copies an OCI layout image's blobs into the store (verified), so it can be exported.
    fn import_layers(&self, image: &LoadedImage) -> Result<(), String> {
        let ImageLocation::Layout(dir) = &image.location else { return Ok(()) };
        let blobs = self.builder.store().blobs();
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

    fn error(&self, span: Span, keyword: &str, message: impl Into<String>) -> BuildError {
        BuildError::Dockerfile(Diagnostic::error(self.file, span, message).in_instruction(keyword))
    }
}

/// Stages a stage needs before it can start.
fn stage_dependencies(stage: &Stage) -> Vec<usize> {
    let mut deps = Vec::new();
    if let Base::Stage(i) = stage.base {
        deps.push(i);
    }
    for step in &stage.steps {
        match &step.op {
            Some(Op::Copy(copy)) => {
                if let CopySource::Stage(i) = copy.from {
                    deps.push(i);
                }
            }
            Some(Op::Run(run)) => {
                for mount in &run.mounts {
                    if let RunMount::Bind { from: MountSource::Stage(i), .. }
                    | RunMount::Cache { from: MountSource::Stage(i), .. } = mount
                    {
                        deps.push(*i);
                    }
                }
            }
            _ => {}
        }
    }
    deps.sort_unstable();
    deps.dedup();
    deps
}

/// The stage's name as progress lines show it.
pub(crate) fn stage_label(stage: &Stage) -> String {
    stage.name.clone().unwrap_or_else(|| format!("stage-{}", stage.position))
}

/// Gives config-only entries that had no earlier layer to date them the time of the next
/// entry that has one (or `now` if none does), so that a fully cached rebuild writes the same
/// times, and so the same image id, whenever it runs.
fn fill_history_times(entries: &mut [History], now: i64) {
    let mut next = rfc3339(now);
    for entry in entries.iter_mut().rev() {
        match &entry.created {
            Some(created) => next = created.clone(),
            None => entry.created = Some(next.clone()),
        }
    }
}

fn history(step: &Step, created: i64, empty_layer: bool) -> History {
    History {
        created: Some(rfc3339(created)),
        created_by: Some(step.created_by.clone()),
        author: None,
        comment: None,
        empty_layer,
    }
}

/// What goes into a `COPY` key besides its inputs.
fn copy_description(copy: &CopyOp, from: &str) -> serde_json::Value {
    json!({
        "copy": {
            "from": from,
            "sources": copy.sources,
            "inline": copy.inline,
            "dest": copy.dest,
            "dest_is_dir": copy.dest_is_dir,
            "chown": copy.chown,
            "chmod": copy.chmod_mode.as_ref().map(ToString::to_string),
            "link": copy.link,
            "parents": copy.parents,
            "exclude": copy.exclude,
        }
    })
}

/// A base image's layers and history as the starting state of a stage.
pub(crate) fn image_state(image: &LoadedImage) -> Result<StageResult, String> {
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
            Ok(LayerRef {
                digest: l.digest().to_string().parse().map_err(|e| format!("{e}"))?,
                diff_id: diff_id.parse().map_err(|e| format!("{e}"))?,
                size: l.size(),
                media_type: l.media_type().to_string(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let changed_at = image
        .config
        .created
        .as_deref()
        .and_then(|c| humantime::parse_rfc3339_weak(c).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs() as i64));
    Ok(StageResult {
        key: key::image(&image.manifest_digest),
        layers,
        history: image.config.history.clone(),
        author: image.config.author.clone(),
        changed_at,
        records: Vec::new(),
    })
}
