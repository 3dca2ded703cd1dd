//! Stored images: list, inspect, remove (`kiln images`, `kiln inspect`, `kiln rmi`).

use kiln_cache::digest::Digest;
use kiln_cache::store::ImageStore;
use oci_spec::image::{Descriptor, ImageManifest};
use serde::Serialize;

use crate::BuildError;
use crate::image::ImageConfigFile;

/// One line of `kiln images`.
#[derive(Debug, Clone, Serialize)]
pub struct ImageSummary {
    /// `name:tag`.
    pub name: String,
    /// Config digest (the image id).
    pub id: String,
    /// Manifest digest.
    pub digest: String,
    /// `created` of the config.
    pub created: Option<String>,
    /// Sum of compressed layer sizes plus config and manifest.
    pub size: u64,
}

/// What `kiln inspect` shows.
#[derive(Debug, Clone, Serialize)]
pub struct ImageDetails {
    /// `name:tag`.
    pub name: String,
    /// Manifest digest.
    pub digest: String,
    /// Config digest.
    pub id: String,
    /// The manifest, as stored.
    pub manifest: serde_json::Value,
    /// The config, as stored.
    pub config: serde_json::Value,
}

fn parse_digest(d: &oci_spec::image::Digest) -> Result<Digest, BuildError> {
    d.to_string().parse().map_err(|e| BuildError::Internal(format!("stored digest {d}: {e}")))
}

fn load(
    store: &ImageStore,
    desc: &Descriptor,
) -> Result<(ImageManifest, Vec<u8>, Vec<u8>), BuildError> {
    let manifest_bytes = store.blobs().read(&parse_digest(desc.digest())?)?;
    let manifest: ImageManifest =
        serde_json::from_slice(&manifest_bytes).map_err(BuildError::Json)?;
    let config_bytes = store.blobs().read(&parse_digest(manifest.config().digest())?)?;
    Ok((manifest, manifest_bytes, config_bytes))
}

/// Every tagged image, sorted by name.
pub fn list(store: &ImageStore) -> Result<Vec<ImageSummary>, BuildError> {
    let mut out = Vec::new();
    for (name, desc) in store.list()? {
        let (manifest, manifest_bytes, config_bytes) = load(store, &desc)?;
        let config: ImageConfigFile =
            serde_json::from_slice(&config_bytes).map_err(BuildError::Json)?;
        let size = manifest.layers().iter().map(|l| l.size()).sum::<u64>()
            + config_bytes.len() as u64
            + manifest_bytes.len() as u64;
        out.push(ImageSummary {
            name,
            id: manifest.config().digest().to_string(),
            digest: desc.digest().to_string(),
            created: config.created,
            size,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The manifest and config of image `name`.
pub fn inspect(store: &ImageStore, name: &str) -> Result<ImageDetails, BuildError> {
    let (key, desc) = find(store, name)?;
    let (manifest, manifest_bytes, config_bytes) = load(store, &desc)?;
    Ok(ImageDetails {
        name: key,
        digest: desc.digest().to_string(),
        id: manifest.config().digest().to_string(),
        manifest: serde_json::from_slice(&manifest_bytes).map_err(BuildError::Json)?,
        config: serde_json::from_slice(&config_bytes).map_err(BuildError::Json)?,
    })
}

/// Removes the tag `name`; the blobs stay until garbage collection.
pub fn remove(store: &ImageStore, name: &str) -> Result<(), BuildError> {
    let (key, _) = find(store, name)?;
    if store.untag(&key)? { Ok(()) } else { Err(BuildError::ImageNotFound(key)) }
}

/// The stored name and manifest for `name` as the user wrote it: `-t` names as written, pulled
/// images by their short (`busybox`) or fully qualified (`docker.io/library/busybox:latest`) name.
fn find(store: &ImageStore, name: &str) -> Result<(String, Descriptor), BuildError> {
    crate::resolver::find_in_store(store, name, None)
        .map_err(BuildError::Registry)?
        .ok_or_else(|| BuildError::ImageNotFound(name.to_string()))
}
