//! Docker archives (`docker save` format, what `docker load`, `podman load` and
//! `skopeo copy docker-archive:` read): an OCI archive whose `index.json` names the image, plus
//! Docker's `manifest.json` (config and layer paths inside the archive, `RepoTags`) and the
//! legacy `repositories` file — the combined layout `docker save` writes since Docker 25.
//! Layer files are the layer blobs as they are (`blobs/sha256/<digest>`); loaders decompress
//! gzip and zstd layers themselves.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use oci_spec::image::Descriptor;
use serde::Deserialize;
use serde_json::json;

use crate::blob::BlobStore;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::json::to_canonical_vec;

use super::layout::{index_json_with, write_archive, write_file_atomically};

/// A name the archive gives the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerTag {
    /// Docker's short repository name (`app`, `localhost:5000/team/app`).
    pub repository: String,
    /// The tag (`latest`).
    pub tag: String,
    /// The fully qualified name (`docker.io/library/app:latest`), for containerd's
    /// `io.containerd.image.name` annotation in `index.json`.
    pub full_name: String,
}

/// containerd's (and Docker's) index annotation with the full image name.
const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";
/// OCI's index annotation with the tag.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Deserialize)]
struct ManifestRefs {
    config: BlobRef,
    #[serde(default)]
    layers: Vec<BlobRef>,
}

#[derive(Deserialize)]
struct BlobRef {
    digest: String,
}

/// The JSON files a Docker archive holds besides its blobs.
struct ArchiveMetadata {
    index: Vec<u8>,
    manifest_json: Vec<u8>,
    repositories: Option<Vec<u8>>,
}

/// The archive's `index.json`, `manifest.json` and `repositories` for `manifest`.
fn metadata(
    blobs: &BlobStore,
    manifest: &Descriptor,
    tags: &[DockerTag],
    index_annotations: &BTreeMap<String, String>,
) -> Result<ArchiveMetadata> {
    let digest = Digest::try_from(manifest.digest())?;
    let refs: ManifestRefs = serde_json::from_slice(&blobs.read(&digest)?)
        .map_err(|source| Error::Json { what: format!("manifest {digest}"), source })?;
    let path = |d: &str| -> Result<String> {
        let d: Digest = d.parse()?;
        Ok(format!("blobs/sha256/{}", d.hex()))
    };
    let layers = refs.layers.iter().map(|l| path(&l.digest)).collect::<Result<Vec<_>>>()?;
    let repo_tags: Vec<String> =
        tags.iter().map(|t| format!("{}:{}", t.repository, t.tag)).collect();
    let manifest_json = to_canonical_vec(
        &json!([{ "Config": path(&refs.config.digest)?, "RepoTags": repo_tags, "Layers": layers }]),
        "manifest.json",
    )?;
    let repositories = match refs.layers.last() {
        Some(top) if !tags.is_empty() => {
            let top: Digest = top.digest.parse()?;
            let mut repos: BTreeMap<&str, BTreeMap<&str, String>> = BTreeMap::new();
            for t in tags {
                repos.entry(&t.repository).or_default().insert(&t.tag, top.hex());
            }
            Some(to_canonical_vec(&repos, "repositories")?)
        }
        _ => None,
    };
    let mut entries: Vec<(Descriptor, Option<String>)> = Vec::new();
    for t in tags {
        let mut d = manifest.clone();
        let mut ann = d.annotations().clone().unwrap_or_default();
        ann.insert(CONTAINERD_IMAGE_NAME.to_string(), t.full_name.clone());
        ann.insert(REF_NAME.to_string(), t.tag.clone());
        d.set_annotations(Some(ann));
        entries.push((d, None));
    }
    if entries.is_empty() {
        entries.push((manifest.clone(), None));
    }
    let index = index_json_with(&entries, index_annotations)?;
    Ok(ArchiveMetadata { index, manifest_json, repositories })
}

/// Streams a Docker archive of the image `manifest` named `tags` to `out`.
pub fn write_docker_archive_to(
    out: &mut dyn Write,
    blobs: &BlobStore,
    manifest: &Descriptor,
    tags: &[DockerTag],
    index_annotations: &BTreeMap<String, String>,
) -> Result<()> {
    let ArchiveMetadata { index, manifest_json, repositories } =
        metadata(blobs, manifest, tags, index_annotations)?;
    let mut extra: Vec<(&str, &[u8])> = vec![("manifest.json", &manifest_json)];
    if let Some(r) = &repositories {
        extra.push(("repositories", r));
    }
    write_archive(out, blobs, &[(manifest.clone(), None)], &index, &extra)
}

/// Writes a Docker archive at `dest_file` (through a temp file renamed in).
pub fn write_docker_archive(
    dest_file: &Path,
    blobs: &BlobStore,
    manifest: &Descriptor,
    tags: &[DockerTag],
    index_annotations: &BTreeMap<String, String>,
) -> Result<()> {
    write_file_atomically(dest_file, |out| {
        write_docker_archive_to(out, blobs, manifest, tags, index_annotations)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::MediaType;
    use serde_json::Value;

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn metadata_names_config_layers_and_tags() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let l1 = Digest::of_bytes(b"l1");
        let l2 = Digest::of_bytes(b"l2");
        let cfg = Digest::of_bytes(b"cfg");
        let manifest = json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg.to_string(), "size": 3},
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l1.to_string(), "size": 2},
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l2.to_string(), "size": 2}
            ]
        });
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let md = blobs.put_bytes(&bytes).unwrap();
        let desc = Descriptor::new(MediaType::ImageManifest, bytes.len() as u64, md.to_oci());
        let tags = vec![
            DockerTag {
                repository: "app".into(),
                tag: "1".into(),
                full_name: "docker.io/library/app:1".into(),
            },
            DockerTag {
                repository: "app".into(),
                tag: "latest".into(),
                full_name: "docker.io/library/app:latest".into(),
            },
        ];
        let ArchiveMetadata { index, manifest_json: mj, repositories: repos } =
            metadata(&blobs, &desc, &tags, &BTreeMap::new()).unwrap();
        assert_eq!(
            parse(&mj),
            json!([{
                "Config": format!("blobs/sha256/{}", cfg.hex()),
                "RepoTags": ["app:1", "app:latest"],
                "Layers": [format!("blobs/sha256/{}", l1.hex()), format!("blobs/sha256/{}", l2.hex())]
            }])
        );
        assert_eq!(parse(&repos.unwrap()), json!({"app": {"1": l2.hex(), "latest": l2.hex()}}));
        let index = parse(&index);
        assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
        assert_eq!(
            index["manifests"][1]["annotations"],
            json!({"io.containerd.image.name": "docker.io/library/app:latest", "org.opencontainers.image.ref.name": "latest"})
        );
        // No names: no repositories file, one unnamed index entry.
        let ArchiveMetadata { index, manifest_json: mj, repositories: repos } =
            metadata(&blobs, &desc, &[], &BTreeMap::new()).unwrap();
        assert_eq!(parse(&mj)[0]["RepoTags"], json!([]));
        assert!(repos.is_none());
        assert_eq!(parse(&index)["manifests"][0].get("annotations"), None);
    }
}
