//! Where an imported cache's blobs come from: a registry repository (through the registry
//! client's verified, resumable downloads) or a local OCI layout directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_cache::blob::BlobStore;
use kiln_cache::digest::Digest;
use kiln_cache::index::LayerRef;
use serde::Deserialize;

use super::spec::CacheLocation;
use crate::reference::Reference;
use crate::registry::client::RepoClient;
use crate::registry::progress::{BlobKind, BlobProgress, Direction, ProgressSink};
use crate::registry::transport::HostClient;
use crate::registry::{Registry, RegistryError};

/// Local cache manifests larger than this are refused (as the registry client does).
const MANIFEST_LIMIT: u64 = 4 << 20;

/// An opened cache: its manifest bytes and a way to fetch its blobs.
pub(super) enum Source {
    /// A repository of a registry.
    Registry {
        /// The cache's reference.
        reference: Reference,
        /// The connection, authenticated for pulling.
        client: Box<RepoClient>,
        /// Runs the client's transfers.
        runtime: Arc<tokio::runtime::Runtime>,
    },
    /// An OCI image layout directory.
    Local {
        /// The directory.
        dir: PathBuf,
    },
}

impl Source {
    /// Connects to the cache at `location` and fetches its manifest (verified when the
    /// reference pins a digest). Returns the source and the manifest's bytes.
    pub(super) fn open(
        location: &CacheLocation,
        registry: Option<&Registry>,
        runtime: &Arc<tokio::runtime::Runtime>,
    ) -> Result<(Source, Vec<u8>), String> {
        match location {
            CacheLocation::Registry(reference) => {
                let registry = registry.ok_or("no registry client")?;
                let client =
                    runtime.block_on(connect(registry, reference)).map_err(|e| e.to_string())?;
                let (bytes, _) = runtime
                    .block_on(client.get_manifest(&reference.manifest_ref()))
                    .map_err(|e| e.to_string())?;
                if let Some(d) = &reference.digest
                    && Digest::of_bytes(&bytes) != *d
                {
                    return Err(format!("the manifest is not {d}"));
                }
                let source = Source::Registry {
                    reference: reference.clone(),
                    client: Box::new(client),
                    runtime: runtime.clone(),
                };
                Ok((source, bytes))
            }
            CacheLocation::Local { dir, tag } => {
                let bytes = local_manifest(dir, tag)?;
                Ok((Source::Local { dir: dir.clone() }, bytes))
            }
        }
    }

    /// Puts the blob `digest` (`size` bytes) into `blobs` unless it is there: downloaded or
    /// copied, verified by digest either way.
    pub(super) fn fetch(
        &self,
        blobs: &BlobStore,
        digest: &Digest,
        size: u64,
        progress: &dyn ProgressSink,
    ) -> Result<(), String> {
        if blobs.contains(digest) {
            return Ok(());
        }
        match self {
            Source::Registry { client, runtime, reference } => {
                let progress =
                    BlobProgress::new(progress, Direction::Pull, digest, BlobKind::Layer, size);
                runtime
                    .block_on(client.fetch_blob(blobs, digest, size, &progress))
                    .map(|_| ())
                    .map_err(|e| format!("fetching {digest} from {reference}: {e}"))
            }
            Source::Local { dir } => {
                let path = layout_blob(dir, digest);
                let (_, stored) = blobs
                    .import_file(&path, Some(digest))
                    .map_err(|e| format!("reading {}: {e}", path.display()))?;
                if stored != size {
                    return Err(format!("{} has {stored} bytes, not {size}", path.display()));
                }
                Ok(())
            }
        }
    }

    /// Fetches a layer's blob (see [`Source::fetch`]).
    pub(super) fn fetch_layer(
        &self,
        blobs: &BlobStore,
        layer: &LayerRef,
        progress: &dyn ProgressSink,
    ) -> Result<(), String> {
        self.fetch(blobs, &layer.digest, layer.size, progress)
    }
}

/// A connection to `reference`'s repository with pull access, as the registry client would
/// make for a pull (its connection settings, certificates and credentials).
async fn connect(registry: &Registry, reference: &Reference) -> Result<RepoClient, RegistryError> {
    registry.conf().check_blocked(reference)?;
    let options = registry.options();
    let host = HostClient::new(
        &reference.registry,
        registry.insecure(reference),
        &options.certs,
        options.retry.clone(),
    )?;
    let credential = options.auth.lookup(&reference.registry, &reference.repository)?;
    let scopes = vec![format!("repository:{}:pull", reference.repository)];
    RepoClient::connect(Arc::new(host), &reference.repository, credential, scopes).await
}

/// `DIR/blobs/sha256/HEX`.
pub(super) fn layout_blob(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs").join(digest.algorithm()).join(digest.hex())
}

#[derive(Deserialize)]
struct LayoutIndex {
    #[serde(default)]
    manifests: Vec<LayoutEntry>,
}

#[derive(Deserialize)]
struct LayoutEntry {
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

/// The bytes of the manifest named `tag` in the layout at `dir` (verified by digest).
fn local_manifest(dir: &Path, tag: &str) -> Result<Vec<u8>, String> {
    let index_path = dir.join("index.json");
    let text = std::fs::read(&index_path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{} does not exist", index_path.display()),
        _ => format!("reading {}: {e}", index_path.display()),
    })?;
    let index: LayoutIndex = serde_json::from_slice(&text)
        .map_err(|e| format!("{} is not an OCI index: {e}", index_path.display()))?;
    let entry = index
        .manifests
        .iter()
        .find(|m| {
            m.annotations.get(oci_spec::image::ANNOTATION_REF_NAME).map(String::as_str) == Some(tag)
        })
        .ok_or_else(|| format!("{} has no manifest named {tag:?}", index_path.display()))?;
    let digest: Digest = entry.digest.parse().map_err(|e| format!("index.json: {e}"))?;
    if entry.size > MANIFEST_LIMIT {
        return Err(format!("manifest {digest} is larger than {MANIFEST_LIMIT} bytes"));
    }
    let path = layout_blob(dir, &digest);
    let bytes = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let actual = Digest::of_bytes(&bytes);
    if actual != digest {
        return Err(format!("{} has digest {actual}, not {digest}", path.display()));
    }
    Ok(bytes)
}
