//! Pulling: manifest (or index → the platform's manifest), then config and layers in
//! parallel into the blob store (each verified), the manifest last, then the tag.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use kiln_cache::digest::Digest;
use kiln_cache::store::ImageStore;
use oci_spec::image::{Arch, Descriptor, MediaType, Os, PlatformBuilder};

use super::auth::Auth;
use super::client::RepoClient;
use super::conf::PullSource;
use super::credentials::Credential;
use super::error::{RegistryError, Result};
use super::media::{self, Kind};
use super::progress::{BlobKind, BlobProgress, Direction, ProgressSink, ProgressStatus};
use super::transport::HostClient;
use super::{Pulled, Registry};
use crate::platform::Platform;
use crate::reference::Reference;

impl Registry {
    /// Pulls what `name` means: a fully qualified name directly, a short name through its
    /// alias or each search registry in turn (see [`super::conf::RegistriesConf::candidates`]).
    pub fn pull_name(
        &self,
        store: &ImageStore,
        name: &str,
        platform: &Platform,
        progress: &dyn ProgressSink,
    ) -> Result<Pulled> {
        let candidates = self.candidates(name)?;
        if candidates.len() == 1 {
            return self.pull(store, &candidates[0], platform, progress);
        }
        let mut failures = Vec::new();
        for c in &candidates {
            match self.pull(store, c, platform, progress) {
                Ok(p) => return Ok(p),
                Err(
                    e @ (RegistryError::NotFound { .. }
                    | RegistryError::Unauthorized { .. }
                    | RegistryError::Denied { .. }
                    | RegistryError::Transport { .. }),
                ) => {
                    failures.push(format!("{c}: {e}"));
                }
                Err(e) => return Err(e),
            }
        }
        Err(RegistryError::ShortName {
            name: name.to_string(),
            message: format!("not found in any search registry ({})", failures.join("; ")),
        })
    }

    /// Pulls `reference` for `platform` into `store` and tags it there under the reference's
    /// fully qualified name. Mirrors from `registries.conf` are tried first; nothing is tagged
    /// unless every blob arrived and was verified.
    pub fn pull(
        &self,
        store: &ImageStore,
        reference: &Reference,
        platform: &Platform,
        progress: &dyn ProgressSink,
    ) -> Result<Pulled> {
        let sources = self.conf.pull_sources(reference)?;
        // Pruning must not take the blobs between their arrival and the tag.
        let _gc = kiln_cache::gc::GcLock::build(store.root())?;
        let mut mirror_failures = Vec::new();
        for source in &sources {
            let host = self.host(&source.reference.registry, source.insecure)?;
            match self.runtime.block_on(self.pull_from(host, store, source, platform, progress)) {
                Ok(mut pulled) => {
                    store.tag(&reference.to_string(), pulled.descriptor.clone())?;
                    pulled.reference = reference.clone();
                    pulled.warnings.extend(mirror_failures);
                    return Ok(pulled);
                }
                Err(e) if source.mirror => {
                    mirror_failures
                        .push(format!("mirror {} failed: {e}", source.reference.registry));
                }
                Err(e) => return Err(e),
            }
        }
        Err(RegistryError::Internal(format!("no source to pull {reference} from")))
    }

    async fn pull_from(
        &self,
        host: Arc<HostClient>,
        store: &ImageStore,
        source: &PullSource,
        platform: &Platform,
        sink: &dyn ProgressSink,
    ) -> Result<Pulled> {
        let r = &source.reference;
        let credential = self.options.auth.lookup(&r.registry, &r.repository)?;
        let scopes = vec![format!("repository:{}:pull", r.repository)];
        let client = RepoClient::connect(host, &r.repository, credential, scopes).await?;
        let shown = r.to_string();
        let bad = |message: String| RegistryError::Manifest { reference: shown.clone(), message };

        let (bytes, header_type) = client.get_manifest(&r.manifest_ref()).await?;
        let digest = Digest::of_bytes(&bytes);
        check_manifest_digest(&client, r.digest.as_ref(), &digest)?;
        let (doc, kind, media_type) = media::parse(&bytes, &header_type).map_err(bad)?;
        let mut warnings = Vec::new();
        let (manifest_bytes, manifest_digest, manifest, media_type, index_digest, index_platform) =
            if kind == Kind::Index {
                let entry = media::choose(&doc, platform).ok_or_else(|| {
                    bad(format!(
                        "no image for platform {platform} (the index has {})",
                        media::platforms(&doc)
                    ))
                })?;
                let child: Digest =
                    entry.digest.parse().map_err(|e| bad(format!("index entry: {e}")))?;
                let (cbytes, ctype) = client.get_manifest(&child.to_string()).await?;
                let cdigest = Digest::of_bytes(&cbytes);
                check_manifest_digest(&client, Some(&child), &cdigest)?;
                let (cdoc, ckind, cmedia) = media::parse(&cbytes, &ctype).map_err(bad)?;
                if ckind != Kind::Manifest {
                    return Err(bad(format!("index entry {child} is not an image manifest")));
                }
                // The index is kept too (small), so the same pull by digest works offline.
                store.blobs().put_bytes(&bytes)?;
                (cbytes, cdigest, cdoc, cmedia, Some(digest), entry.platform.clone())
            } else {
                (bytes, digest, doc, media_type, None, None)
            };

        let config =
            manifest.config.clone().ok_or_else(|| bad("the manifest has no config".into()))?;
        let config_digest: Digest =
            config.digest.parse().map_err(|e| bad(format!("config: {e}")))?;
        let mut blobs = vec![(config_digest.clone(), config.size, BlobKind::Config)];
        let mut seen = HashSet::from([config_digest.clone()]);
        for layer in &manifest.layers {
            let d: Digest = layer.digest.parse().map_err(|e| bad(format!("layer: {e}")))?;
            if layer.urls.as_ref().is_some_and(|u| !u.is_empty()) && !store.blobs().contains(&d) {
                return Err(bad(format!(
                    "layer {d} is a foreign layer (urls); kiln cannot fetch those"
                )));
            }
            if seen.insert(d.clone()) {
                blobs.push((d, layer.size, BlobKind::Layer));
            }
        }
        let total_blobs = blobs.len();
        let limit = self.options.max_concurrent.max(1);
        let results: Vec<(bool, u64)> =
            futures_util::stream::iter(blobs.into_iter().map(|(d, size, kind)| {
                let client = &client;
                async move {
                    let p = BlobProgress::new(sink, Direction::Pull, &d, kind, size);
                    if store.blobs().contains(&d) {
                        p.report(size, ProgressStatus::AlreadyPresent);
                        return Ok((false, 0));
                    }
                    p.report(0, ProgressStatus::Started);
                    let n = client.fetch_blob(store.blobs(), &d, size, &p).await?;
                    p.report(size, ProgressStatus::Done);
                    Ok::<_, RegistryError>((true, n))
                }
            }))
            .buffer_unordered(limit)
            .try_collect()
            .await?;

        let config_bytes = store.blobs().read(&config_digest)?;
        let image_platform = config_platform(&config_bytes);
        if index_platform.is_none()
            && let Some((os, arch, _)) = &image_platform
            && (os != &platform.os || arch != &platform.architecture)
        {
            warnings.push(format!("{shown} is for {os}/{arch}, not the requested {platform}"));
        }
        // The manifest goes in last: once it is there, everything it points to is.
        let stored = store.blobs().put_bytes(&manifest_bytes)?;
        if stored != manifest_digest {
            return Err(RegistryError::Internal("stored manifest digest changed".into()));
        }
        let mut descriptor = Descriptor::new(
            MediaType::from(media_type.as_str()),
            manifest_bytes.len() as u64,
            manifest_digest.to_oci(),
        );
        let plat = index_platform.map(|p| (p.os, p.architecture, p.variant)).or(image_platform);
        if let Some((os, arch, variant)) = plat {
            let mut b = PlatformBuilder::default()
                .os(Os::from(os.as_str()))
                .architecture(Arch::from(arch.as_str()));
            if let Some(v) = variant {
                b = b.variant(v);
            }
            if let Ok(p) = b.build() {
                descriptor.set_platform(Some(p));
            }
        }
        Ok(Pulled {
            reference: r.clone(),
            source: r.clone(),
            descriptor,
            manifest_digest,
            index_digest,
            config_digest,
            blobs: total_blobs,
            fetched: results.iter().filter(|(f, _)| *f).count(),
            bytes: results.iter().map(|(_, n)| n).sum(),
            warnings,
        })
    }
}

/// A manifest fetched by digest must hash to it.
fn check_manifest_digest(
    client: &RepoClient,
    expected: Option<&Digest>,
    actual: &Digest,
) -> Result<()> {
    match expected {
        Some(e) if e != actual => Err(RegistryError::DigestMismatch {
            what: "manifest",
            source_name: client.name(),
            expected: e.clone(),
            actual: actual.clone(),
        }),
        _ => Ok(()),
    }
}

/// `os`, `architecture` and `variant` of an image config.
fn config_platform(bytes: &[u8]) -> Option<(String, String, Option<String>)> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    Some((s("os")?, s("architecture")?, s("variant")))
}

/// Checks credentials for `kiln login`: a token fetched with them (bearer registries), or
/// `GET /v2/` answered 200 with them (basic auth).
pub(super) async fn verify_login(host: &HostClient, credential: Credential) -> Result<()> {
    let ping = host.ping().await?;
    if ping.challenges.is_empty() {
        return Ok(());
    }
    let auth = Auth::new(&host.host, Some(credential), Vec::new());
    auth.prime(host, &ping.challenges).await?;
    let (header, _) = auth.header().await;
    let url = ping.base.join("v2/").map_err(|e| RegistryError::Internal(e.to_string()))?;
    let mut rb = host.http.get(url.clone());
    if let Some(h) = header {
        rb = rb.header(reqwest::header::AUTHORIZATION, h);
    }
    let resp =
        rb.send().await.map_err(|e| match super::transport::classify(&host.host, &url, e) {
            super::transport::Failure::Fatal(e) => e,
            super::transport::Failure::Retry(m) => {
                RegistryError::Transport { url: super::transport::display_url(&url), message: m }
            }
        })?;
    match resp.status() {
        s if s.is_success() => Ok(()),
        reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN => {
            Err(RegistryError::Unauthorized {
                registry: host.host.clone(),
                detail: ": invalid username or password".into(),
            })
        }
        s => Err(RegistryError::Status {
            url: super::transport::display_url(&url),
            status: s.as_u16(),
            detail: String::new(),
        }),
    }
}
