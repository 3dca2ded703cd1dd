//! Finds base images for `FROM` and `COPY --from`: the local store, an OCI layout on disk, or
//! a registry (pulled into the local store and tagged there, per the [`PullPolicy`]).
//!
//! Implements the frontend's [`ImageResolver`]. Every image it resolves is remembered by id
//! (`sha256:` of its manifest) so the builder can fetch its layers afterwards.
//!
//! A name is looked up in the local store as written (`hello` → `hello:latest`, how `-t`
//! stores it), then under the fully qualified names it may mean (`docker.io/library/hello:latest`,
//! how pulls store it; short names through `registries.conf`). A name pinned by digest is found
//! by the digest alone when the store has that manifest.

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
use crate::reference::{ImageName, Reference, split_reference};
use crate::registry::{self, ProgressSink, PullPolicy, Registry};

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

/// Which registry client a resolver pulls with.
enum Access {
    /// The process-wide [`registry::session`] (built on first use).
    Session,
    /// A given client and policy.
    Explicit(Arc<Registry>, PullPolicy),
    /// No registry: local store and OCI layouts only.
    Offline,
}

/// Resolves references against the local store, OCI layouts and registries, for one platform.
pub struct StoreResolver<'a> {
    store: &'a ImageStore,
    platform: Platform,
    loaded: Mutex<HashMap<String, Arc<LoadedImage>>>,
    access: Access,
    progress: Option<&'a dyn ProgressSink>,
    /// Store keys of what this resolver pulled, by reference and platform (pulled once).
    pulled: Mutex<HashMap<(String, String), String>>,
}

impl<'a> StoreResolver<'a> {
    /// A resolver over `store`, choosing `platform` from multi-platform images, pulling what
    /// the store lacks with the process-wide [`registry::session`].
    pub fn new(store: &'a ImageStore, platform: Platform) -> Self {
        StoreResolver::with_access(store, platform, Access::Session)
    }

    /// A resolver that pulls with `registry` according to `pull`.
    pub fn with_registry(
        store: &'a ImageStore,
        platform: Platform,
        registry: Arc<Registry>,
        pull: PullPolicy,
    ) -> Self {
        StoreResolver::with_access(store, platform, Access::Explicit(registry, pull))
    }

    /// A resolver that never pulls.
    pub fn offline(store: &'a ImageStore, platform: Platform) -> Self {
        StoreResolver::with_access(store, platform, Access::Offline)
    }

    fn with_access(store: &'a ImageStore, platform: Platform, access: Access) -> Self {
        StoreResolver {
            store,
            platform,
            loaded: Mutex::new(HashMap::new()),
            access,
            progress: None,
            pulled: Mutex::new(HashMap::new()),
        }
    }

    /// Reports the byte progress of pulls to `sink`.
    pub fn with_progress(mut self, sink: &'a dyn ProgressSink) -> Self {
        self.progress = Some(sink);
        self
    }

    /// The image resolved earlier with this id.
    pub fn loaded(&self, id: &str) -> Option<Arc<LoadedImage>> {
        self.loaded.lock().ok()?.get(id).cloned()
    }

    fn load(&self, reference: &str, platform: &Platform) -> Result<LoadedImage, String> {
        if let Some(rest) = reference.strip_prefix(OCI_LAYOUT_PREFIX) {
            return load_from_layout(rest, platform);
        }
        let (registry, policy, setup_error) = match &self.access {
            Access::Offline => (None, PullPolicy::Never, None),
            Access::Explicit(r, p) => (Some(r.clone()), *p, None),
            Access::Session => match registry::session() {
                Ok(s) => (Some(s.registry.clone()), s.pull, None),
                Err(e) => (None, PullPolicy::Missing, Some(e)),
            },
        };
        let memo_key = (reference.to_string(), platform.to_string());
        let memo = self.pulled.lock().ok().and_then(|m| m.get(&memo_key).cloned());
        if let Some(key) = memo {
            return self.load_stored(&key, platform);
        }
        if policy != PullPolicy::Always
            && let Some(image) = self.find_local(reference, registry.as_deref(), platform)?
        {
            let fits = image.config.os == platform.os
                && image.config.architecture == platform.architecture;
            if fits || policy == PullPolicy::Never {
                return Ok(image);
            }
        }
        let Some(registry) = registry.filter(|_| policy != PullPolicy::Never) else {
            let shown =
                ImageName::parse(reference).map(|n| n.to_string()).unwrap_or(reference.to_string());
            if let Some(e) = setup_error {
                return Err(format!(
                    "image {shown:?} is not in the local store, and it cannot be pulled: {e}"
                ));
            }
            return Err(format!(
                "image {shown:?} is not in the local store and pulling is off (--pull=never); \
                 pull it first, or use oci-layout://PATH:TAG"
            ));
        };
        let sink: &dyn ProgressSink = self.progress.unwrap_or(&());
        let pulled = registry
            .pull_name(self.store, reference, platform, sink)
            .map_err(|e| format!("pulling {reference}: {e}"))?;
        let key = pulled.reference.to_string();
        if let Ok(mut m) = self.pulled.lock() {
            m.insert(memo_key, key.clone());
        }
        self.load_stored(&key, platform)
    }

    /// The image stored under `key`.
    fn load_stored(&self, key: &str, platform: &Platform) -> Result<LoadedImage, String> {
        let descriptor = self
            .store
            .resolve(key)
            .map_err(|e| format!("reading the image store: {e}"))?
            .ok_or_else(|| format!("image {key:?} is not in the local store"))?;
        self.load_descriptor(&descriptor, platform)
    }

    fn load_descriptor(
        &self,
        descriptor: &Descriptor,
        platform: &Platform,
    ) -> Result<LoadedImage, String> {
        let read = |d: &Digest| self.store.blobs().read(d).map_err(|e| e.to_string());
        let (manifest_digest, manifest) = pick_manifest(descriptor, &read, platform)?;
        let config = read_config(&manifest, &read)?;
        Ok(LoadedImage { manifest_digest, manifest, config, location: ImageLocation::Store })
    }

    /// Looks `reference` up in the local store (see [`find_in_store`]).
    fn find_local(
        &self,
        reference: &str,
        registry: Option<&Registry>,
        platform: &Platform,
    ) -> Result<Option<LoadedImage>, String> {
        match find_in_store(self.store, reference, registry)? {
            Some((_, descriptor)) => self.load_descriptor(&descriptor, platform).map(Some),
            None => Ok(None),
        }
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

/// Finds the image `reference` names in the local store: as written (`hello` →
/// `hello:latest`, as `-t` stores it), then under each fully qualified name it may mean
/// (through `registry`'s `registries.conf` when given; `docker.io/library/hello:latest`, as
/// pulls store it, and Docker's short form), then, when pinned by digest, by the digest alone.
/// Returns the store key and the descriptor.
pub fn find_in_store(
    store: &ImageStore,
    reference: &str,
    registry: Option<&Registry>,
) -> Result<Option<(String, Descriptor)>, String> {
    let mut keys = Vec::new();
    if let Ok(name) = ImageName::parse(reference) {
        keys.push(name.to_string());
    }
    let candidates = match registry {
        Some(r) => r.candidates(reference).unwrap_or_default(),
        None => Reference::parse(reference).into_iter().collect(),
    };
    for c in &candidates {
        keys.push(c.to_string());
        keys.push(c.familiar());
    }
    for key in keys {
        let found = store.resolve(&key).map_err(|e| format!("reading the image store: {e}"))?;
        if let Some(descriptor) = found {
            return Ok(Some((key, descriptor)));
        }
    }
    let pinned = split_reference(reference)
        .ok()
        .and_then(|p| p.digest)
        .and_then(|d| d.parse::<Digest>().ok());
    if let Some(digest) = pinned
        && store.blobs().contains(&digest)
        && let Some(descriptor) = stored_descriptor(store, &digest)
    {
        return Ok(Some((reference.to_string(), descriptor)));
    }
    Ok(None)
}

/// A descriptor for a manifest or index blob of the store, its media type read from the blob.
fn stored_descriptor(store: &ImageStore, digest: &Digest) -> Option<Descriptor> {
    let bytes = store.blobs().read(digest).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let media_type = match v.get("mediaType").and_then(|m| m.as_str()) {
        Some(m) => m.to_string(),
        None if v.get("manifests").is_some() => INDEX_MEDIA_TYPE.to_string(),
        None if v.get("config").is_some() => MANIFEST_MEDIA_TYPE.to_string(),
        None => return None,
    };
    Some(Descriptor::new(
        oci_spec::image::MediaType::from(media_type.as_str()),
        bytes.len() as u64,
        digest.to_oci(),
    ))
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
