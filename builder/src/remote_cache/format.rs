//! The cache format (see `docs/CACHE-FORMAT.md`): an OCI image manifest whose config blob
//! (media type [`CONFIG_MEDIA_TYPE`]) is a subset of the cache index, and whose layers are the
//! cached layer blobs and the cache mount archives.

use std::collections::{BTreeMap, HashMap};

use kiln_cache::digest::Digest;
use kiln_cache::index::{CacheRecord, LayerRef};
use oci_spec::image::{Descriptor, ImageManifest, MediaType};
use serde::{Deserialize, Serialize};

use crate::key::KEY_VERSION;

/// The media type of the cache's config blob.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.kiln.cache.config.v1+json";

/// The `format` field of a config this kiln reads and writes.
pub const FORMAT: &str = "kiln-cache-v1";

/// Configs larger than this are refused (a million records stay well below it).
pub const CONFIG_LIMIT: u64 = 64 << 20;

/// The config blob: cache key → layer, and the cache mounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheConfig {
    /// Always [`FORMAT`].
    pub format: String,
    /// The [`KEY_VERSION`] of the kiln that computed the keys.
    pub key_version: String,
    /// The platform the build ran for (`linux/amd64`).
    pub platform: String,
    /// The steps' results, by cache key.
    #[serde(default)]
    pub records: Vec<CacheEntry>,
    /// The cache mounts' contents.
    #[serde(default)]
    pub mounts: Vec<MountEntry>,
}

/// One step's result: a cache index record under its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The cache key.
    pub key: Digest,
    /// What the step produced (its layer is one of the manifest's layers).
    #[serde(flatten)]
    pub record: CacheRecord,
}

/// The contents of one `RUN --mount=type=cache` directory, as a layer-style tar blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountEntry {
    /// The mount's `id` (its target when none was given).
    pub id: String,
    /// The blob (one of the manifest's layers).
    pub layer: LayerRef,
    /// Bytes of the files it holds.
    pub content_size: u64,
}

/// Why a fetched manifest or config is not a usable kiln cache.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Not an OCI image manifest whose config is a kiln cache config.
    #[error("not a kiln cache ({0})")]
    Foreign(String),
    /// A kiln cache that cannot be read.
    #[error("the cache is corrupt: {0}")]
    Corrupt(String),
    /// Written by a kiln whose keys differ from ours: no key can match.
    #[error("written by a kiln with other cache keys ({0}, this kiln uses {KEY_VERSION})")]
    OtherKeys(String),
    /// Written for another platform.
    #[error("written for platform {found}, this build is for {wanted}")]
    OtherPlatform {
        /// The cache's platform.
        found: String,
        /// This build's platform.
        wanted: String,
    },
}

impl CacheConfig {
    /// An empty config for this kiln and `platform`.
    pub fn new(platform: &str) -> CacheConfig {
        CacheConfig {
            format: FORMAT.to_string(),
            key_version: KEY_VERSION.to_string(),
            platform: platform.to_string(),
            records: Vec::new(),
            mounts: Vec::new(),
        }
    }

    /// Every distinct layer blob the config names (records first), in order.
    pub fn layers(&self) -> Vec<LayerRef> {
        let mut out: Vec<LayerRef> = Vec::new();
        let records = self.records.iter().filter_map(|e| e.record.layer.as_ref());
        for layer in records.chain(self.mounts.iter().map(|m| &m.layer)) {
            if !out.iter().any(|l| l.digest == layer.digest) {
                out.push(layer.clone());
            }
        }
        out
    }

    /// The config blob's bytes (canonical JSON).
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        crate::image::canonical_json(self)
    }

    /// The manifest for this config, stored as `config_digest` (`config_size` bytes).
    pub fn manifest(&self, config_digest: &Digest, config_size: u64) -> ImageManifest {
        let config = Descriptor::new(
            MediaType::Other(CONFIG_MEDIA_TYPE.to_string()),
            config_size,
            config_digest.to_oci(),
        );
        let layers = self
            .layers()
            .iter()
            .map(|l| {
                Descriptor::new(MediaType::from(l.media_type.as_str()), l.size, l.digest.to_oci())
            })
            .collect();
        crate::image::manifest(config, layers)
    }
}

/// Reads a manifest: not JSON is corrupt, JSON that is not an image manifest is foreign.
fn read_manifest(bytes: &[u8]) -> Result<ImageManifest, FormatError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| FormatError::Corrupt(format!("the manifest is not JSON: {e}")))?;
    serde_json::from_value(value)
        .map_err(|e| FormatError::Foreign(format!("not an OCI image manifest: {e}")))
}

/// The config descriptor of a cache manifest: (digest, size).
pub fn config_of(manifest_bytes: &[u8]) -> Result<(Digest, u64), FormatError> {
    let manifest = read_manifest(manifest_bytes)?;
    let config = manifest.config();
    let media_type = config.media_type().to_string();
    if media_type != CONFIG_MEDIA_TYPE {
        return Err(FormatError::Foreign(format!("its config is {media_type}")));
    }
    if config.size() > CONFIG_LIMIT {
        return Err(FormatError::Corrupt(format!(
            "the config is {} bytes, more than {CONFIG_LIMIT}",
            config.size()
        )));
    }
    let digest = Digest::try_from(config.digest())
        .map_err(|e| FormatError::Corrupt(format!("config digest: {e}")))?;
    Ok((digest, config.size()))
}

/// What a cache holds, checked against its manifest and this build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Records by key.
    pub records: HashMap<Digest, CacheRecord>,
    /// Cache mounts by id.
    pub mounts: BTreeMap<String, MountEntry>,
    /// Records or mounts dropped because their blob is not one of the manifest's layers.
    pub dropped: usize,
}

/// Reads a cache's manifest and config for a build on `platform`. Entries whose layer is not
/// listed in the manifest (with the same size and media type) are dropped and counted.
pub fn parse(
    manifest_bytes: &[u8],
    config_bytes: &[u8],
    platform: &str,
) -> Result<Parsed, FormatError> {
    let manifest = read_manifest(manifest_bytes)?;
    let probe: serde_json::Value = serde_json::from_slice(config_bytes)
        .map_err(|e| FormatError::Corrupt(format!("the config is not JSON: {e}")))?;
    match probe.get("format").and_then(|f| f.as_str()) {
        Some(FORMAT) => {}
        Some(other) => return Err(FormatError::Foreign(format!("format {other:?}"))),
        None => return Err(FormatError::Foreign("its config has no format".into())),
    }
    let config: CacheConfig = serde_json::from_value(probe)
        .map_err(|e| FormatError::Corrupt(format!("the config does not parse: {e}")))?;
    if config.key_version != KEY_VERSION {
        return Err(FormatError::OtherKeys(config.key_version));
    }
    if config.platform != platform {
        return Err(FormatError::OtherPlatform {
            found: config.platform,
            wanted: platform.to_string(),
        });
    }
    let listed: HashMap<String, (u64, String)> = manifest
        .layers()
        .iter()
        .map(|l| (l.digest().to_string(), (l.size(), l.media_type().to_string())))
        .collect();
    let in_manifest =
        |l: &LayerRef| listed.get(&l.digest.to_string()) == Some(&(l.size, l.media_type.clone()));
    let mut parsed = Parsed::default();
    for entry in config.records {
        if entry.record.layer.as_ref().is_some_and(|l| !in_manifest(l)) {
            parsed.dropped += 1;
            continue;
        }
        parsed.records.entry(entry.key).or_insert(entry.record);
    }
    for mount in config.mounts {
        if !in_manifest(&mount.layer) {
            parsed.dropped += 1;
            continue;
        }
        parsed.mounts.entry(mount.id.clone()).or_insert(mount);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(n: u8, media_type: &str) -> LayerRef {
        LayerRef {
            digest: Digest::of_bytes(&[n]),
            diff_id: Digest::of_bytes(&[n, n]),
            size: 100 + u64::from(n),
            media_type: media_type.to_string(),
        }
    }

    const GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

    fn sample() -> CacheConfig {
        let mut c = CacheConfig::new("linux/amd64");
        let rec = |l: Option<LayerRef>, d: &str| CacheRecord {
            layer: l,
            created: 1_700_000_000,
            description: d.to_string(),
        };
        c.records.push(CacheEntry {
            key: Digest::of_bytes(b"k1"),
            record: rec(Some(layer(1, GZ)), "COPY a /"),
        });
        c.records.push(CacheEntry { key: Digest::of_bytes(b"k2"), record: rec(None, "RUN true") });
        // The same layer under another key is listed once.
        c.records.push(CacheEntry {
            key: Digest::of_bytes(b"k3"),
            record: rec(Some(layer(1, GZ)), "COPY a /b"),
        });
        c.mounts.push(MountEntry {
            id: "/root/.cache".into(),
            layer: layer(2, GZ),
            content_size: 5,
        });
        c
    }

    #[test]
    fn round_trips_through_manifest_and_config() {
        let config = sample();
        let bytes = config.to_bytes().unwrap();
        let digest = Digest::of_bytes(&bytes);
        let manifest = config.manifest(&digest, bytes.len() as u64);
        assert_eq!(manifest.layers().len(), 2);
        let manifest_bytes = crate::image::canonical_json(&manifest).unwrap();
        assert_eq!(config_of(&manifest_bytes).unwrap(), (digest, bytes.len() as u64));
        let parsed = parse(&manifest_bytes, &bytes, "linux/amd64").unwrap();
        assert_eq!(parsed.records.len(), 3);
        assert_eq!(parsed.dropped, 0);
        assert_eq!(parsed.records[&Digest::of_bytes(b"k2")], config.records[1].record);
        assert_eq!(parsed.mounts["/root/.cache"], config.mounts[0]);
        // The config is canonical JSON with the record fields inline.
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with(r#"{"format":"kiln-cache-v1","key_version":"kiln-key-v2","mounts":[{"content_size":5,"id":"/root/.cache","layer":{"diff_id":"#), "{text}");
        assert!(
            text.contains(r#"{"created":1700000000,"description":"RUN true","key":"sha256:"#),
            "{text}"
        );
    }

    #[test]
    fn refuses_foreign_corrupt_and_mismatched_caches() {
        let config = sample();
        let bytes = config.to_bytes().unwrap();
        let digest = Digest::of_bytes(&bytes);
        let manifest = config.manifest(&digest, bytes.len() as u64);
        let manifest_bytes = crate::image::canonical_json(&manifest).unwrap();

        let image_manifest = crate::image::manifest(
            Descriptor::new(MediaType::ImageConfig, 2, digest.to_oci()),
            Vec::new(),
        );
        let image_bytes = crate::image::canonical_json(&image_manifest).unwrap();
        assert_eq!(
            config_of(&image_bytes).unwrap_err().to_string(),
            "not a kiln cache (its config is application/vnd.oci.image.config.v1+json)"
        );
        assert_eq!(
            config_of(b"{]").unwrap_err().to_string(),
            "the cache is corrupt: the manifest is not JSON: key must be a string at line 1 column 2"
        );
        assert!(matches!(config_of(br#"{"manifests":[]}"#), Err(FormatError::Foreign(_))));
        assert_eq!(
            parse(&manifest_bytes, b"\x00garbage", "linux/amd64").unwrap_err().to_string(),
            "the cache is corrupt: the config is not JSON: expected value at line 1 column 1"
        );
        assert_eq!(
            parse(&manifest_bytes, br#"{"format":"buildkit"}"#, "linux/amd64")
                .unwrap_err()
                .to_string(),
            "not a kiln cache (format \"buildkit\")"
        );
        assert!(matches!(
            parse(&manifest_bytes, br#"{"format":"kiln-cache-v1","records":7}"#, "linux/amd64"),
            Err(FormatError::Corrupt(_))
        ));
        let mut old = config.clone();
        old.key_version = "kiln-key-v1".into();
        assert_eq!(
            parse(&manifest_bytes, &old.to_bytes().unwrap(), "linux/amd64")
                .unwrap_err()
                .to_string(),
            "written by a kiln with other cache keys (kiln-key-v1, this kiln uses kiln-key-v2)"
        );
        assert_eq!(
            parse(&manifest_bytes, &bytes, "linux/arm64").unwrap_err().to_string(),
            "written for platform linux/amd64, this build is for linux/arm64"
        );
        // A record whose layer the manifest does not list is dropped, the rest kept.
        let mut extra = config.clone();
        extra.records.push(CacheEntry {
            key: Digest::of_bytes(b"k4"),
            record: CacheRecord {
                layer: Some(layer(9, GZ)),
                created: 0,
                description: String::new(),
            },
        });
        let parsed = parse(&manifest_bytes, &extra.to_bytes().unwrap(), "linux/amd64").unwrap();
        assert_eq!((parsed.records.len(), parsed.dropped), (3, 1));
    }
}
