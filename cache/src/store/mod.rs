//! The local image store: an OCI image layout at the kiln root (`oci-layout`, `index.json`,
//! `blobs/`), with tags as `org.opencontainers.image.ref.name` annotations in `index.json`.
//!
//! Every `index.json` change is a read-modify-write under an exclusive `flock` on
//! `index.json.lock`, written atomically (temp + fsync + rename + fsync of the directory), so
//! concurrent taggers never lose or corrupt an entry. Readers need no lock. Fields of
//! `index.json` kiln does not know are kept as they are.
//!
//! Exports live here too: OCI layouts and archives ([`write_layout`], [`write_layout_tar`]),
//! Docker archives ([`write_docker_archive`]), the flattened root filesystem
//! ([`write_rootfs_tar`], [`write_rootfs_dir`]), squashed layers ([`squash_layers`]) and layer
//! conversions ([`recompress_layer`], [`rewrite_layer_mtimes`]) recorded in [`DerivedLayers`].

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::image::{ANNOTATION_REF_NAME, Descriptor};
use serde_json::{Map, Value};

use crate::blob::BlobStore;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::write_atomic;
use crate::json::to_canonical_vec;
use crate::lock::FileLock;

mod convert;
mod derived;
mod docker;
mod layout;
mod merge;
mod rootfs;
mod tarout;

pub use convert::{
    Codec, layer_codec, recompress_layer, recompress_layer_reporting, rewrite_layer_mtimes,
};
pub use derived::DerivedLayers;
pub use docker::{DockerTag, write_docker_archive, write_docker_archive_to};
pub use layout::{write_layout, write_layout_tar, write_layout_tar_to, write_layout_with};
pub use rootfs::{squash_layers, write_rootfs_dir, write_rootfs_tar};
pub use tarout::{MemberOptions, MemberStats, MtimeRule};

/// Contents of the `oci-layout` file.
pub(crate) const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// Media type of an OCI image index.
pub(crate) const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The tag of a descriptor (its `org.opencontainers.image.ref.name` annotation).
pub fn ref_name(desc: &Descriptor) -> Option<&str> {
    desc.annotations().as_ref()?.get(ANNOTATION_REF_NAME).map(String::as_str)
}

/// An empty OCI image index as kiln writes it.
pub(crate) fn empty_index() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("schemaVersion".into(), Value::from(2));
    m.insert("mediaType".into(), Value::from(MEDIA_TYPE_INDEX));
    m.insert("manifests".into(), Value::Array(Vec::new()));
    m
}

/// The OCI image layout at a kiln root.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
    blobs: BlobStore,
}

impl ImageStore {
    /// Opens the layout at `root`, creating `oci-layout`, `index.json` and `blobs/` if missing.
    pub fn open(root: &Path) -> Result<ImageStore> {
        Self::open_unexplained(root).map_err(|e| crate::access::explain(root, e))
    }

    fn open_unexplained(root: &Path) -> Result<ImageStore> {
        fs::create_dir_all(root).ctx("create directory", root)?;
        let blobs = BlobStore::open(root)?;
        let store = ImageStore { root: root.to_path_buf(), blobs };
        let layout = root.join("oci-layout");
        if !store.index_path().is_file() || !layout.is_file() {
            let _lock = store.lock()?;
            if !layout.is_file() {
                write_atomic(&layout, OCI_LAYOUT, 0o644)?;
            }
            if !store.index_path().is_file() {
                let bytes = to_canonical_vec(&Value::Object(empty_index()), "index.json")?;
                write_atomic(&store.index_path(), &bytes, 0o644)?;
            }
        }
        Ok(store)
    }

    /// The layout root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The blob store of the layout.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Points tag `name` (stored exactly as given) at `manifest`, replacing any entry with the
    /// same name. The manifest blob must be in the store.
    pub fn tag(&self, name: &str, manifest: Descriptor) -> Result<()> {
        if name.is_empty() {
            return Err(Error::Invalid("empty image name".into()));
        }
        let digest = Digest::try_from(manifest.digest())?;
        if !self.blobs.contains(&digest) {
            return Err(Error::BlobNotFound(digest));
        }
        let mut desc = manifest;
        let mut ann = desc.annotations().clone().unwrap_or_default();
        ann.insert(ANNOTATION_REF_NAME.to_string(), name.to_string());
        desc.set_annotations(Some(ann));
        self.update(|list| {
            let pos = list.iter().position(|d| ref_name(d) == Some(name));
            list.retain(|d| ref_name(d) != Some(name));
            match pos {
                Some(i) => list.insert(i.min(list.len()), desc),
                None => list.push(desc),
            }
            true
        })
    }

    /// The descriptor tagged `name`, if any.
    pub fn resolve(&self, name: &str) -> Result<Option<Descriptor>> {
        Ok(self.read_manifests()?.into_iter().find(|d| ref_name(d) == Some(name)))
    }

    /// All tags and their descriptors, sorted by name (untagged entries are not listed).
    pub fn list(&self) -> Result<Vec<(String, Descriptor)>> {
        let mut out: Vec<(String, Descriptor)> = self
            .read_manifests()?
            .into_iter()
            .filter_map(|d| ref_name(&d).map(|n| (n.to_string(), d.clone())))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Removes tag `name`; false when there was no such tag. Blobs stay (for garbage collection).
    pub fn untag(&self, name: &str) -> Result<bool> {
        let mut removed = false;
        self.update(|list| {
            let before = list.len();
            list.retain(|d| ref_name(d) != Some(name));
            removed = list.len() != before;
            removed
        })?;
        Ok(removed)
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    fn lock(&self) -> Result<FileLock> {
        FileLock::exclusive(&self.root.join("index.json.lock"))
    }

    fn read_index(&self) -> Result<Map<String, Value>> {
        let path = self.index_path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(empty_index()),
            Err(e) => return Err(Error::io("read", path, e)),
        };
        let what = || path.display().to_string();
        match serde_json::from_slice(&bytes)
            .map_err(|source| Error::Json { what: what(), source })?
        {
            Value::Object(m) => Ok(m),
            _ => Err(Error::Invalid(format!("{}: not a JSON object", what()))),
        }
    }

    fn manifests_of(&self, index: &Map<String, Value>) -> Result<Vec<Descriptor>> {
        match index.get("manifests") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(v) => serde_json::from_value(v.clone()).map_err(|source| Error::Json {
                what: format!("manifests of {}", self.index_path().display()),
                source,
            }),
        }
    }

    fn read_manifests(&self) -> Result<Vec<Descriptor>> {
        let index = self.read_index()?;
        self.manifests_of(&index)
    }

    /// Read-modify-write of the manifest list under the lock; `change` returns whether it
    /// changed anything (nothing is written otherwise).
    fn update(&self, change: impl FnOnce(&mut Vec<Descriptor>) -> bool) -> Result<()> {
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let mut list = self.manifests_of(&index)?;
        if !change(&mut list) {
            return Ok(());
        }
        let manifests = serde_json::to_value(&list)
            .map_err(|source| Error::Json { what: "index.json manifests".into(), source })?;
        index.insert("manifests".into(), manifests);
        let bytes = to_canonical_vec(&Value::Object(index), "index.json")?;
        write_atomic(&self.index_path(), &bytes, 0o644)
    }
}
