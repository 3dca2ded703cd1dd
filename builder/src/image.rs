//! Image assembly: the OCI image config (with Docker's fields) and the manifest.
//!
//! The config is kiln's own struct so Docker-only fields survive (see
//! [`kiln_frontend::ContainerConfig`]); unknown top-level fields of a base image's config are kept.
//! Everything serializes with sorted maps, so the same inputs give the same bytes.

use std::collections::BTreeMap;

use kiln_frontend::ContainerConfig;
use oci_spec::image::{Descriptor, ImageManifest, ImageManifestBuilder, MediaType};
use serde::{Deserialize, Serialize};

/// Media type of an OCI image config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of an OCI image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// Docker's schema-2 manifest media type (read, never written).
pub const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker's manifest list media type (read, never written).
pub const DOCKER_MANIFEST_LIST_MEDIA_TYPE: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";

/// The image config blob (`application/vnd.oci.image.config.v1+json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfigFile {
    /// When the image was created (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// `MAINTAINER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// CPU architecture (`amd64`).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// CPU variant (`v8`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Runtime defaults.
    #[serde(default)]
    pub config: ContainerConfig,
    /// The layers' uncompressed digests.
    pub rootfs: RootFs,
    /// One entry per instruction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Top-level fields kiln does not interpret (e.g. Docker's `container_config`), kept.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `sha256:` digests of the uncompressed layer tars, bottom first.
    pub diff_ids: Vec<String>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs { kind: "layers".to_string(), diff_ids: Vec::new() }
    }
}

/// One `history` entry of an image config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// When the step ran (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The instruction, as `docker history` shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Author of the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The step changed no file: no layer belongs to it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

impl ImageConfigFile {
    /// Serializes to the bytes that are stored and digested (sorted keys, no whitespace).
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        canonical_json(self)
    }
}

/// Serializes `value` as JSON with object keys sorted, so equal values give equal bytes.
pub fn canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    // serde_json::Value's map is a BTreeMap (no `preserve_order`), which sorts keys.
    let tree = serde_json::to_value(value)?;
    serde_json::to_vec(&tree)
}

/// Builds the OCI manifest for a config blob and layer descriptors.
pub fn manifest(config: Descriptor, layers: Vec<Descriptor>) -> ImageManifest {
    // The builder only fails on missing required fields, and all are given here.
    ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config)
        .layers(layers)
        .build()
        .unwrap_or_else(|e| unreachable!("manifest with every field set: {e}"))
}

/// Formats seconds since the epoch as RFC 3339 UTC (`2024-01-02T03:04:05Z`).
pub fn rfc3339(unix_seconds: i64) -> String {
    let secs = u64::try_from(unix_seconds).unwrap_or(0);
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_unknown_fields_and_sorts_keys() {
        let raw = br#"{"os":"linux","architecture":"amd64","config":{"Env":["A=1"]},"rootfs":{"type":"layers","diff_ids":["sha256:00"]},"docker_version":"20.10","history":[{"created_by":"x","empty_layer":true}]}"#;
        let cfg: ImageConfigFile = serde_json::from_slice(raw).unwrap();
        assert_eq!(cfg.other.get("docker_version").and_then(|v| v.as_str()), Some("20.10"));
        assert!(cfg.history[0].empty_layer);
        let out = String::from_utf8(cfg.to_bytes().unwrap()).unwrap();
        assert_eq!(
            out,
            r#"{"architecture":"amd64","config":{"Env":["A=1"]},"docker_version":"20.10","history":[{"created_by":"x","empty_layer":true}],"os":"linux","rootfs":{"diff_ids":["sha256:00"],"type":"layers"}}"#
        );
    }

    #[test]
    fn rfc3339_formats_utc_seconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
