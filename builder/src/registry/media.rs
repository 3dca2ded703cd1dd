//! Reading manifests and indexes as registries send them (OCI and Docker schema 2), leniently:
//! only the fields kiln needs, the raw bytes kept by the caller for digests.

use serde::Deserialize;

use crate::image::{
    DOCKER_MANIFEST_LIST_MEDIA_TYPE, DOCKER_MANIFEST_MEDIA_TYPE, INDEX_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
};
use crate::platform::Platform;

/// Docker's signed schema 1 manifest (refused: it is deprecated and has no config blob).
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// Docker's unsigned schema 1 manifest.
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";

/// A descriptor as found in a manifest or index.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Desc {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Plat>,
    #[serde(default)]
    pub urls: Option<Vec<String>>,
}

/// The platform of an index entry.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Plat {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// A manifest or an index.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Doc {
    #[serde(default)]
    pub schema_version: Option<u32>,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub config: Option<Desc>,
    #[serde(default)]
    pub layers: Vec<Desc>,
    #[serde(default)]
    pub manifests: Vec<Desc>,
}

/// What a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An image manifest.
    Manifest,
    /// An index / manifest list.
    Index,
}

/// Parses a manifest or index; `header_type` is the response's `Content-Type`. Returns the
/// document, its kind and the media type to record.
pub(crate) fn parse(bytes: &[u8], header_type: &str) -> Result<(Doc, Kind, String), String> {
    let doc: Doc = serde_json::from_slice(bytes)
        .map_err(|e| format!("the manifest is not valid JSON: {e}"))?;
    let declared = doc.media_type.clone().filter(|m| !m.is_empty());
    let media_type = declared.clone().unwrap_or_else(|| header_type.to_string());
    if doc.schema_version == Some(1)
        || media_type == DOCKER_SCHEMA1
        || media_type == DOCKER_SCHEMA1_SIGNED
    {
        return Err("Docker schema 1 manifests are not supported (push the image again with a current tool)".into());
    }
    let kind = match media_type.as_str() {
        INDEX_MEDIA_TYPE | DOCKER_MANIFEST_LIST_MEDIA_TYPE => Kind::Index,
        MANIFEST_MEDIA_TYPE | DOCKER_MANIFEST_MEDIA_TYPE => Kind::Manifest,
        // No (known) media type: judge by shape, as the OCI spec allows.
        _ if !doc.manifests.is_empty() && doc.config.is_none() => Kind::Index,
        _ if doc.config.is_some() => Kind::Manifest,
        other => return Err(format!("unsupported manifest media type {other:?}")),
    };
    let media_type = match (kind, media_type.as_str()) {
        (Kind::Index, INDEX_MEDIA_TYPE | DOCKER_MANIFEST_LIST_MEDIA_TYPE) => media_type,
        (Kind::Manifest, MANIFEST_MEDIA_TYPE | DOCKER_MANIFEST_MEDIA_TYPE) => media_type,
        (Kind::Index, _) => INDEX_MEDIA_TYPE.to_string(),
        (Kind::Manifest, _) => MANIFEST_MEDIA_TYPE.to_string(),
    };
    if kind == Kind::Manifest && doc.config.is_none() {
        return Err("the manifest has no config".into());
    }
    Ok((doc, kind, media_type))
}

/// The entry of an index for `platform`: an exact variant match first, then one whose
/// variant is unspecified on either side. Entries such as attestations (`unknown/unknown`)
/// never match.
pub(crate) fn choose<'a>(index: &'a Doc, platform: &Platform) -> Option<&'a Desc> {
    let fits = |d: &&Desc| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == platform.os && p.architecture == platform.architecture)
    };
    let exact = index.manifests.iter().filter(fits).find(|d| {
        let variant = d.platform.as_ref().and_then(|p| p.variant.as_deref());
        variant == platform.variant.as_deref()
    });
    exact.or_else(|| {
        index.manifests.iter().filter(fits).find(|d| {
            let variant = d.platform.as_ref().and_then(|p| p.variant.as_deref());
            variant.is_none() || platform.variant.is_none()
        })
    })
}

/// The platforms an index offers, for error messages (`linux/amd64, linux/arm64/v8`).
pub(crate) fn platforms(index: &Doc) -> String {
    let list: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .filter(|p| p.os != "unknown")
        .map(|p| match &p.variant {
            Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        })
        .collect();
    if list.is_empty() { "no platforms".to_string() } else { list.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(entries: &[(&str, &str, Option<&str>)]) -> Doc {
        let manifests: Vec<serde_json::Value> = entries
            .iter()
            .enumerate()
            .map(|(i, (os, arch, variant))| {
                let mut p = serde_json::json!({"os": os, "architecture": arch});
                if let Some(v) = variant {
                    p["variant"] = serde_json::json!(v);
                }
                serde_json::json!({"mediaType": MANIFEST_MEDIA_TYPE, "digest": format!("sha256:{i}"), "size": 1, "platform": p})
            })
            .collect();
        serde_json::from_value(serde_json::json!({"schemaVersion": 2, "manifests": manifests}))
            .unwrap()
    }

    #[test]
    fn platform_choice_prefers_exact_variants() {
        let idx = index(&[
            ("unknown", "unknown", None),
            ("linux", "arm", Some("v6")),
            ("linux", "arm", Some("v7")),
            ("linux", "amd64", None),
            ("linux", "arm64", Some("v8")),
        ]);
        let pick = |p: &str| choose(&idx, &Platform::parse(p).unwrap()).map(|d| d.digest.clone());
        assert_eq!(pick("linux/amd64").as_deref(), Some("sha256:3"));
        assert_eq!(pick("linux/arm/v7").as_deref(), Some("sha256:2"));
        // `linux/arm` means arm/v7 (containerd's normalization), not the first arm entry.
        assert_eq!(pick("linux/arm").as_deref(), Some("sha256:2"));
        assert_eq!(pick("linux/arm/v6").as_deref(), Some("sha256:1"));
        assert_eq!(pick("linux/arm64").as_deref(), Some("sha256:4"));
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(platforms(&idx), "linux/arm/v6, linux/arm/v7, linux/amd64, linux/arm64/v8");
    }

    #[test]
    fn kinds_follow_media_types_or_shape() {
        let oci = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"x","digest":"sha256:1","size":1},"layers":[]}"#;
        let (_, kind, mt) = parse(oci, "").unwrap();
        assert_eq!((kind, mt.as_str()), (Kind::Manifest, MANIFEST_MEDIA_TYPE));
        let bare_index = br#"{"schemaVersion":2,"manifests":[{"digest":"sha256:1","size":1}]}"#;
        let (_, kind, mt) = parse(bare_index, "application/json").unwrap();
        assert_eq!((kind, mt.as_str()), (Kind::Index, INDEX_MEDIA_TYPE));
        let docker = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:1","size":1},"layers":[]}"#;
        let (_, kind, mt) = parse(docker, DOCKER_MANIFEST_MEDIA_TYPE).unwrap();
        assert_eq!((kind, mt.as_str()), (Kind::Manifest, DOCKER_MANIFEST_MEDIA_TYPE));
        let v1 = br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        assert!(parse(v1, DOCKER_SCHEMA1_SIGNED).unwrap_err().contains("schema 1"));
        assert!(parse(b"{", "").unwrap_err().starts_with("the manifest is not valid JSON"));
    }
}
