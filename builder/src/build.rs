//! One build: Dockerfile + context in, image (tagged, exported) out.
//!
//! Parse, lower, solve ([`crate::solver`]), then assemble the image from the target stage. The
//! image is tagged only after every output was written, so a failed build leaves no tag behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use kiln_cache::digest::Digest;
use kiln_cache::index::CacheIndex;
use kiln_cache::snapshot::Snapshots;
use kiln_cache::store::ImageStore;
use kiln_frontend::lower::{LowerOptions, lower};
use kiln_frontend::syntax;
use oci_spec::image::Descriptor;

use crate::BuildError;
use crate::context::sources::{NamedContexts, Sources};
use crate::context::{BuildContext, NamedSource};
use crate::events::{Event, EventSink};
use crate::export::{ExportOptions, Output};
use crate::key::ContextHasher;
use crate::platform::Platform;
use crate::reference::ImageName;
use crate::remote_cache::{CacheExport, CacheImport, RemoteCache, export_all};
use crate::resolver::StoreResolver;
use crate::sandbox::{CancelToken, Isolation, NetworkMode};
use crate::solver::{SecretSource, SolveOptions, Solver};

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
    /// How the image is assembled: compression, annotations, labels, squash, timestamps.
    pub export: ExportOptions,
    /// `SOURCE_DATE_EPOCH`: fixes timestamps for reproducible digests.
    pub source_date_epoch: Option<i64>,
    /// `--jobs`: steps running at once (0 = number of CPUs).
    pub jobs: usize,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--no-cache-filter`: stages that always run.
    pub no_cache_filter: Vec<String>,
    /// `--build-context NAME=VALUE`, by name.
    pub named_contexts: BTreeMap<String, NamedSource>,
    /// `--isolation`: how RUN steps are isolated.
    pub isolation: Isolation,
    /// `--network`: the network of RUN steps that do not say.
    pub network: NetworkMode,
    /// `--secret id=ID,src=FILE|env=VAR`, by id.
    pub secrets: BTreeMap<String, SecretSource>,
    /// `--ssh ID[=SOCKET]`: agent sockets by id.
    pub ssh: BTreeMap<String, PathBuf>,
    /// Stops the build (Ctrl-C): running RUNs are killed and cleaned up.
    pub cancel: CancelToken,
    /// `--cache-from`: caches consulted when a step misses the local cache.
    pub cache_from: Vec<CacheImport>,
    /// `--cache-to`: where the build's cache is exported when it succeeds.
    pub cache_to: Vec<CacheExport>,
}

impl BuildRequest {
    /// A request with defaults for everything but the context and the Dockerfile.
    pub fn new(context_dir: PathBuf, dockerfile: DockerfileInput) -> Self {
        BuildRequest {
            context_dir,
            dockerfile,
            tags: Vec::new(),
            build_args: BTreeMap::new(),
            target: None,
            outputs: Vec::new(),
            export: ExportOptions::default(),
            source_date_epoch: None,
            jobs: 0,
            no_cache: false,
            no_cache_filter: Vec::new(),
            named_contexts: BTreeMap::new(),
            isolation: Isolation::Auto,
            network: NetworkMode::Host,
            secrets: BTreeMap::new(),
            ssh: BTreeMap::new(),
            cancel: CancelToken::new(),
            cache_from: Vec::new(),
            cache_to: Vec::new(),
        }
    }
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
    /// Sum of the layer sizes (compressed) of the image.
    pub size: u64,
}

/// Builds images into a kiln root.
pub struct Builder {
    root: PathBuf,
    store: ImageStore,
    pub(crate) snapshots: Snapshots,
    pub(crate) index: CacheIndex,
}

impl Builder {
    /// Opens (creating if needed) the kiln root at `root`.
    pub fn open(root: &Path) -> Result<Builder, BuildError> {
        let store = ImageStore::open(root)?;
        let snapshots = Snapshots::open(root)?;
        let index = CacheIndex::open(root)?;
        Ok(Builder { root: root.to_path_buf(), store, snapshots, index })
    }

    /// The image store of this root.
    pub fn store(&self) -> &ImageStore {
        &self.store
    }

    /// The kiln root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The cache index of this root.
    pub fn cache_index(&self) -> &CacheIndex {
        &self.index
    }

    /// Runs a build.
    pub fn build(
        &self,
        req: &BuildRequest,
        events: &dyn EventSink,
    ) -> Result<BuildResult, BuildError> {
        // Keeps `kiln cache prune` from removing what this build uses, until it returns.
        let _gc = kiln_cache::gc::GcLock::build(&self.root)?;
        req.export.compression.validate().map_err(BuildError::Export)?;
        let now = unix_now();
        let context = BuildContext::open(&req.context_dir, req.dockerfile.path.as_deref())?;
        let dockerfile = syntax::parse(&req.dockerfile.name, &req.dockerfile.text)?;
        let platform = Platform::host();
        let transfers = crate::events::TransferEvents::new(events);
        let resolver = StoreResolver::new(&self.store, platform.clone()).with_progress(&transfers);
        let options = LowerOptions {
            build_args: req.build_args.clone(),
            target: req.target.clone(),
            target_platform: platform.to_string(),
            build_platform: platform.to_string(),
            named_contexts: req
                .named_contexts
                .iter()
                .map(|(name, source)| (name.clone(), source.for_lowering()))
                .collect(),
        };
        let graph = lower(&dockerfile, &options, &resolver)?;
        for warning in &graph.warnings {
            events.emit(Event::Warning(warning.to_string()));
        }
        let hasher = ContextHasher::new(&context, &self.root)?.with_events(events);
        let named = NamedContexts::prepare(&req.named_contexts, &self.root.join("tmp"))?;
        let sources = Sources::new(&self.root, &named)?;
        let jobs = if req.jobs == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        } else {
            req.jobs
        };
        let solve_options = SolveOptions {
            jobs,
            no_cache: req.no_cache,
            no_cache_stages: req.no_cache_filter.clone(),
            source_date_epoch: req.source_date_epoch,
            now,
            isolation: req.isolation,
            network: req.network,
            secrets: req.secrets.clone(),
            ssh: req.ssh.clone(),
            // Layers are stored as plain tars and compressed by outputs and pushes (see
            // `export::compress::canonical_layers`).
            compression: kiln_cache::layer::Compression::None,
        };
        let remote = (!req.no_cache && !req.cache_from.is_empty())
            .then(|| RemoteCache::import(&req.cache_from, &platform.to_string(), self, events));
        let solver = Solver {
            builder: self,
            graph: &graph,
            resolver: &resolver,
            context: &context,
            hasher: &hasher,
            sources: &sources,
            events,
            options: &solve_options,
            file: &req.dockerfile.name,
            cancel: &req.cancel,
            isolation_noted: std::sync::OnceLock::new(),
            fallback_noted: std::sync::OnceLock::new(),
            remote: remote.as_ref(),
        };
        let solved = solver.solve();
        hasher.save();
        sources.save();
        let results = solved?;
        export_all(self, &req.cache_to, &graph, &results, &platform.to_string(), events)?;
        let target = &graph.stages[graph.target];
        let state = &results[graph.target];
        let created = req.source_date_epoch.or(state.changed_at).unwrap_or(now);
        let bases = crate::export::transform::bases(&graph, &results);
        crate::export::assemble::finish(
            &self.root,
            &self.store,
            req,
            target,
            state,
            bases,
            created,
            events,
        )
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
