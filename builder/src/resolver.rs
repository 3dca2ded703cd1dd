//! Finds base images for `FROM` and `COPY --from`: the local store or an OCI layout on disk.
//!
//! Implements the frontend's [`ImageResolver`]. Every image it resolves is remembered by id
//! (`sha256:` of its manifest) so the builder can fetch its layers afterwards.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kiln_cache::digest::Digest;
use kiln_cache::store::ImageStore;
use kiln_frontend::{ImageResolver, ResolvedImage};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use crate::image::{
    DOCKER_MANIFEST_LIST_MEDIA_TYPE, DOCKER_MANIFEST_MEDIA_TYPE, INDEX_MEDIA_TYPE, ImageConfigFile,
    MANIFEST_MEDIA_TYPE,
};
use crate::platform::Platform;
use crate::reference::ImageName;

/// Prefix of references to an OCI layout on disk: `oci-layout://PATH[:TAG|@DIGEST]`.
pub const OCI_LAYOUT_PREFIX: &str = "oci-layout://";

/// Where an image's blobs are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageLocation {
    /// kiln's own store.
    Store,
    /// An OCI layout directory (blobs are imported into the store when used).
    Layout(PathBuf),
}

/// An image the resolver found, with what the builder needs to use it.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// The manifest's digest.
    pub manifest_digest: Digest,
    /// The manifest.
    pub manifest: ImageManifest,
    /// The parsed config.
    pub config: ImageConfigFile,
    /// Where the blobs are.
    pub location: ImageLocation,
}

/// Resolves references against the local store and OCI layouts, for one platform.
pub struct StoreResolver<'a> {
    store: &'a ImageStore,
    platform: Platform,
    loaded: Mutex<HashMap<String, Arc<LoadedImage>>>,
}

impl<'a> StoreResolver<'a> {
    /// A resolver over `store`, choosing `platform` from multi-platform images.
    pub fn new(store: &'a ImageStore, platform: Platform) -> Self {
        StoreResolver { store, platform, loaded: Mutex::new(HashMap::new()) }
    }

    /// The image resolved earlier with this id.
    pub fn loaded(&self, id: &str) -> Option<Arc<LoadedImage>> {
        self.loaded.lock().ok()?.get(id).cloned()
    }

    fn load(&self, reference: &str, platform: &Platform) -> Result<LoadedImage, String> {
        if let Some(rest) = reference.strip_prefix(OCI_LAYOUT_PREFIX) {
            return load_from_layout(rest, platform);
        }
        let name = ImageName::parse(reference).map_err(|e| e.to_string())?;
        let key = name.to_string();
        let descriptor = self
            .store
            .resolve(&key)
            .map_err(|e| format!("reading the image store: {e}"))?
            .ok_or_else(|| {
                format!(
                    "image {key:?} is not in the local store (pulling from registries is not \
                     supported yet: build it first, or use oci-layout://PATH:TAG)"
                )
            })?;
        let read = |d: &Digest| self.store.blobs().read(d).map_err(|e| e.to_string());
        let (manifest_digest, manifest) = pick_manifest(&descriptor, &read, platform)?;
        let config = read_config(&manifest, &read)?;
        Ok(LoadedImage { manifest_digest, manifest, config, location: ImageLocation::Store })
    }
}

impl ImageResolver for StoreResolver<'_> {
    fn resolve(&self, reference: &str, platform: Option<&str>) -> Result<ResolvedImage, String> {
        let platform = match platform {
            Some(p) => Platform::parse(p).map_err(|e| e.to_string())?,
            None => self.platform.clone(),
        };
        let image = self.load(reference, &platform)?;
        let id = image.manifest_digest.to_string();
        let resolved = ResolvedImage {
            reference: reference.to_string(),
            id: id.clone(),
            config: image.config.config.clone(),
            os: image.config.os.clone(),
            architecture: image.config.architecture.clone(),
        };
        if let Ok(mut map) = self.loaded.lock() {
            map.insert(id, Arc::new(image));
        }
        Ok(resolved)
    }
}

/// Reads `PATH[:TAG|@DIGEST]` from an OCI layout directory.
fn load_from_layout(spec: &str, platform: &Platform) -> Result<LoadedImage, String> {
    let (path, selector) = split_layout_spec(spec);
    let dir = PathBuf::from(path);
    let index_bytes = fs::read(dir.join("index.json"))
        .map_err(|e| format!("reading OCI layout {}: {e}", dir.join("index.json").display()))?;
    let index: ImageIndex = serde_json::from_slice(&index_bytes)
        .map_err(|e| format!("{}/index.json is not an OCI index: {e}", dir.display()))?;
    let manifests = index.manifests();
    let chosen = match &selector {
        Selector::Digest(d) => manifests.iter().find(|m| m.digest().to_string() == *d),
        Selector::Tag(t) => manifests.iter().find(|m| ref_name(m) == Some(t.as_str())),
        Selector::None if manifests.len() == 1 => manifests.first(),
        Selector::None => manifests.iter().find(|m| ref_name(m) == Some("latest")),
    };
    let descriptor = chosen.ok_or_else(|| {
        let names: Vec<&str> = manifests.iter().filter_map(ref_name).collect();
        format!(
            "no image {} in OCI layout {} (it has: {})",
            match &selector {
                Selector::Tag(t) => format!("tagged {t:?}"),
                Selector::Digest(d) => format!("with digest {d}"),
                Selector::None => "tagged \"latest\" (and more than one image)".to_string(),
            },
            dir.display(),
            if names.is_empty() { "no tags".to_string() } else { names.join(", ") }
        )
    })?;
    let read = |d: &Digest| read_layout_blob(&dir, d);
    let (manifest_digest, manifest) = pick_manifest(descriptor, &read, platform)?;
    let config = read_config(&manifest, &read)?;
    Ok(LoadedImage { manifest_digest, manifest, config, location: ImageLocation::Layout(dir) })
}

enum Selector {
    None,
    Tag(String),
    Digest(String),
}

/// Splits `PATH[:TAG|@DIGEST]`; a `:` counts as a tag separator only after the last `/`.
fn split_layout_spec(spec: &str) -> (&str, Selector) {
    if let Some((path, digest)) = spec.rsplit_once('@') {
        return (path, Selector::Digest(digest.to_string()));
    }
    let last_slash = spec.rfind('/').map_or(0, |i| i + 1);
    match spec[last_slash..].rfind(':') {
        Some(i) => (&spec[..last_slash + i], Selector::Tag(spec[last_slash + i + 1..].to_string())),
        None => (spec, Selector::None),
    }
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations().as_ref()?.get("org.opencontainers.image.ref.name").map(String::as_str)
}

/// Reads and verifies a blob of an OCI layout that kiln does not own (never writes to it).
pub fn read_layout_blob(dir: &Path, digest: &Digest) -> Result<Vec<u8>, String> {
    let path = layout_blob_path(dir, digest);
    let bytes = fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let actual = Digest::of_bytes(&bytes);
    if actual != *digest {
        return Err(format!("{} is corrupt: its digest is {actual}", path.display()));
    }
    Ok(bytes)
}

/// Where a blob lives in an OCI layout directory.
pub fn layout_blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs").join(digest.algorithm()).join(digest.hex())
}

/// Follows `descriptor` to an image manifest, choosing `platform` in an index.
fn pick_manifest(
    descriptor: &Descriptor,
    read: &dyn Fn(&Digest) -> Result<Vec<u8>, String>,
    platform: &Platform,
) -> Result<(Digest, ImageManifest), String> {
    let mut current = descriptor.clone();
    // An index may point to another index; two levels are more than enough in practice.
    for _ in 0..4 {
        let digest: Digest =
            current.digest().to_string().parse().map_err(|e| format!("bad digest: {e}"))?;
        let bytes = read(&digest)?;
        let media_type = current.media_type().to_string();
        let is_index =
            media_type == INDEX_MEDIA_TYPE || media_type == DOCKER_MANIFEST_LIST_MEDIA_TYPE;
        if !is_index {
            if media_type != MANIFEST_MEDIA_TYPE && media_type != DOCKER_MANIFEST_MEDIA_TYPE {
                return Err(format!("unsupported manifest media type {media_type}"));
            }
            let manifest: ImageManifest = serde_json::from_slice(&bytes)
                .map_err(|e| format!("manifest {digest} is invalid: {e}"))?;
            return Ok((digest, manifest));
        }
        let index: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| format!("index {digest} is invalid: {e}"))?;
        current = index
            .manifests()
            .iter()
            .find(|m| m.platform().as_ref().is_some_and(|p| platform.matches(p)))
            .cloned()
            .ok_or_else(|| format!("the image has no variant for platform {platform}"))?;
    }
    Err("image index nesting is too deep".to_string())
}

fn read_config(
    manifest: &ImageManifest,
    read: &dyn Fn(&Digest) -> Result<Vec<u8>, String>,
) -> Result<ImageConfigFile, String> {
    let digest: Digest =
        manifest.config().digest().to_string().parse().map_err(|e| format!("bad digest: {e}"))?;
    let bytes = read(&digest)?;
    serde_json::from_slice(&bytes).map_err(|e| format!("image config {digest} is invalid: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_specs_split_at_the_last_component() {
        let cases = [
            ("/a/b", "/a/b", ""),
            ("/a/b:v1", "/a/b", "tag v1"),
            ("/a:x/b", "/a:x/b", ""),
            ("rel/dir:latest", "rel/dir", "tag latest"),
            ("/a/b@sha256:00", "/a/b", "digest sha256:00"),
        ];
        for (spec, path, sel) in cases {
            let (p, s) = split_layout_spec(spec);
            let s = match s {
                Selector::None => String::new(),
                Selector::Tag(t) => format!("tag {t}"),
                Selector::Digest(d) => format!("digest {d}"),
            };
            assert_eq!((p, s.as_str()), (path, sel), "{spec}");
        }
    }
}
