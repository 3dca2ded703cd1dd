//! Pushing: every blob of the image (in parallel: `HEAD` to skip what the registry has, a
//! cross-repository mount where another repository of the same registry has it, an upload
//! otherwise), then the manifest; an index's manifests go before the index.

use std::collections::{BTreeSet, HashMap};

use futures_util::{StreamExt, TryStreamExt};
use kiln_cache::digest::Digest;
use kiln_cache::store::ImageStore;
use oci_spec::image::Descriptor;

use super::client::RepoClient;
use super::error::{RegistryError, Result};
use super::media::{self, Kind};
use super::progress::{BlobKind, BlobProgress, Direction, ProgressSink, ProgressStatus};
use super::upload::Uploaded;
use super::{Pushed, Registry};
use crate::reference::{Reference, split_reference};

/// Most repositories a push asks a token for to mount from.
const MAX_MOUNT_SOURCES: usize = 4;

/// Counters of one push.
#[derive(Default)]
struct Tally {
    uploaded: usize,
    existing: usize,
    mounted: usize,
    bytes: u64,
}

impl Registry {
    /// Pushes the image `source` (a manifest or index in `store`) to `dest`: tag `dest.tag`, or
    /// by digest when `dest` has only a digest (which must be the image's). Returns the pushed
    /// digest.
    pub fn push(
        &self,
        store: &ImageStore,
        source: &Descriptor,
        dest: &Reference,
        progress: &dyn ProgressSink,
    ) -> Result<Pushed> {
        self.conf.check_blocked(dest)?;
        let digest = Digest::try_from(source.digest())?;
        if let Some(d) = &dest.digest
            && *d != digest
        {
            return Err(RegistryError::Manifest {
                reference: dest.to_string(),
                message: format!("the image being pushed is {digest}, not the digest in the name"),
            });
        }
        let host = self.host(&dest.registry, self.conf.insecure(dest))?;
        let _gc = kiln_cache::gc::GcLock::build(store.root())?;
        let bytes = store.blobs().read(&digest)?;
        let mounts = mount_sources(store, dest);
        let mut repos: BTreeSet<&String> = mounts.values().flatten().collect();
        while repos.len() > MAX_MOUNT_SOURCES {
            repos.pop_last();
        }
        let mut scopes = vec![format!("repository:{}:pull,push", dest.repository)];
        scopes.extend(repos.iter().map(|r| format!("repository:{r}:pull")));
        let allowed: BTreeSet<String> = repos.into_iter().cloned().collect();
        let credential = self.options.auth.lookup(&dest.registry, &dest.repository)?;
        self.runtime.block_on(async {
            let client = RepoClient::connect(host, &dest.repository, credential, scopes).await?;
            let mut tally = Tally::default();
            let media_type = source.media_type().to_string();
            let (doc, kind, media_type) = media::parse(&bytes, &media_type).map_err(|message| {
                RegistryError::Manifest { reference: digest.to_string(), message }
            })?;
            if kind == Kind::Index {
                for child in &doc.manifests {
                    let d: Digest = child.digest.parse()?;
                    let child_bytes = store.blobs().read(&d)?;
                    let (cdoc, _, cmedia) =
                        media::parse(&child_bytes, &child.media_type).map_err(|message| {
                            RegistryError::Manifest { reference: d.to_string(), message }
                        })?;
                    self.push_blobs(&client, store, &cdoc, &mounts, &allowed, progress, &mut tally)
                        .await?;
                    client.put_manifest(&d.to_string(), &child_bytes, &cmedia).await?;
                }
            } else {
                self.push_blobs(&client, store, &doc, &mounts, &allowed, progress, &mut tally)
                    .await?;
            }
            let target = dest.tag.clone().unwrap_or_else(|| digest.to_string());
            let reported = client.put_manifest(&target, &bytes, &media_type).await?;
            if let Some(r) = reported
                && r != digest.to_string()
            {
                return Err(RegistryError::Manifest {
                    reference: dest.to_string(),
                    message: format!("the registry stored the manifest as {r}, expected {digest}"),
                });
            }
            Ok(Pushed {
                reference: dest.clone(),
                digest: digest.clone(),
                uploaded: tally.uploaded,
                existing: tally.existing,
                mounted: tally.mounted,
                bytes: tally.bytes,
            })
        })
    }

    /// Makes sure the registry has the config and layers of one manifest.
    #[allow(clippy::too_many_arguments)]
    async fn push_blobs(
        &self,
        client: &RepoClient,
        store: &ImageStore,
        manifest: &media::Doc,
        mounts: &HashMap<Digest, Vec<String>>,
        allowed: &BTreeSet<String>,
        sink: &dyn ProgressSink,
        tally: &mut Tally,
    ) -> Result<()> {
        let mut blobs = Vec::new();
        if let Some(c) = &manifest.config {
            blobs.push((c.digest.parse::<Digest>()?, c.size, BlobKind::Config));
        }
        for l in &manifest.layers {
            let d: Digest = l.digest.parse()?;
            if l.urls.as_ref().is_some_and(|u| !u.is_empty()) && !store.blobs().contains(&d) {
                // Foreign layers stay where their URLs point, as Docker does.
                continue;
            }
            if !blobs.iter().any(|(x, _, _)| *x == d) {
                blobs.push((d, l.size, BlobKind::Layer));
            }
        }
        for (d, size, _) in &blobs {
            let have = store.blobs().size(d)?;
            if have != *size {
                return Err(RegistryError::Store(kiln_cache::Error::SizeMismatch {
                    what: format!("blob {d}"),
                    expected: *size,
                    actual: have,
                }));
            }
        }
        let chunk = self.options.chunk_size;
        let limit = self.options.max_concurrent.max(1);
        let outcomes: Vec<(Uploaded, u64)> =
            futures_util::stream::iter(blobs.into_iter().map(|(d, size, kind)| {
                let from: Vec<String> = mounts
                    .get(&d)
                    .map(|v| v.iter().filter(|r| allowed.contains(*r)).cloned().collect())
                    .unwrap_or_default();
                async move {
                    let p = BlobProgress::new(sink, Direction::Push, &d, kind, size);
                    p.report(0, ProgressStatus::Started);
                    let outcome =
                        client.push_blob(store.blobs(), &d, size, &from, chunk, &p).await?;
                    match &outcome {
                        Uploaded::Exists => p.report(size, ProgressStatus::AlreadyPresent),
                        Uploaded::Mounted(r) => {
                            p.report(size, ProgressStatus::Mounted { from: r.clone() })
                        }
                        Uploaded::Sent => p.report(size, ProgressStatus::Done),
                    }
                    Ok::<_, RegistryError>((outcome, size))
                }
            }))
            .buffer_unordered(limit)
            .try_collect()
            .await?;
        for (o, size) in outcomes {
            match o {
                Uploaded::Exists => tally.existing += 1,
                Uploaded::Mounted(_) => tally.mounted += 1,
                Uploaded::Sent => {
                    tally.uploaded += 1;
                    tally.bytes += size;
                }
            }
        }
        Ok(())
    }
}

/// Which other repositories of `dest`'s registry have each blob, judged from the images of
/// the local store named after them (pulled from there, or pushed there earlier).
fn mount_sources(store: &ImageStore, dest: &Reference) -> HashMap<Digest, Vec<String>> {
    let mut out: HashMap<Digest, Vec<String>> = HashMap::new();
    let Ok(list) = store.list() else { return out };
    for (name, desc) in list {
        let qualified = split_reference(&name).is_ok_and(|p| p.domain.is_some());
        let Ok(r) = Reference::parse(&name) else { continue };
        if !qualified || r.registry != dest.registry || r.repository == dest.repository {
            continue;
        }
        let Ok(d) = Digest::try_from(desc.digest()) else { continue };
        let Ok(bytes) = store.blobs().read(&d) else { continue };
        let Ok((doc, Kind::Manifest, _)) =
            media::parse(&bytes, desc.media_type().to_string().as_str())
        else {
            continue;
        };
        for blob in doc.config.iter().chain(doc.layers.iter()) {
            if let Ok(bd) = blob.digest.parse::<Digest>() {
                let repos = out.entry(bd).or_default();
                if !repos.contains(&r.repository) {
                    repos.push(r.repository.clone());
                }
            }
        }
    }
    out
}
