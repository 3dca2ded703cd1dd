//! Outputs of a build (`--output`) and the image assembly options that shape them
//! (`--compression`, `--annotation`, `--label`, `--squash`, `--rewrite-timestamp`).
//!
//! - [`spec`]: parsing `--output` values into [`Output`]s
//! - [`compress`]: layer compression and its conversions
//! - [`annotations`]: manifest / descriptor / index annotations
//! - `transform`: `--rewrite-timestamp` and `--squash`
//! - `oci`, `docker`: OCI layouts and archives, Docker archives
//! - `rootfs`: `type=local` and `type=tar`
//! - `image`: `type=image` / `type=registry` (tag, push)
//!
//! [`Exporter`] holds the assembled image: the config (shared by every output, so one image
//! id) and, per distinct compression and manifest annotations, a manifest made on first use.

pub mod annotations;
pub(crate) mod assemble;
pub mod compress;
mod docker;
mod image;
mod oci;
mod rootfs;
pub mod spec;
pub(crate) mod transform;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;

use kiln_cache::blob::BlobStore;
use kiln_cache::digest::Digest;
use kiln_cache::index::LayerRef;
use oci_spec::image::{Descriptor, MediaType};

pub use annotations::Annotations;
pub use compress::{Codec, CompressionSpec};
pub use spec::{Dest, ImageOptions, Output, OutputSpecError};

use crate::BuildError;
use crate::events::EventSink;
use crate::reference::ImageName;

/// How the image is assembled, for every output (per-output options go over these).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// `--compression`, `--compression-level`.
    pub compression: CompressionSpec,
    /// `--annotation`s.
    pub annotations: Annotations,
    /// `--label KEY=VALUE`: added to the image config's labels (over the Dockerfile's).
    pub labels: BTreeMap<String, String>,
    /// `--squash`: the final stage's own layers become one.
    pub squash: bool,
    /// `--rewrite-timestamp`: every layer the build made gets its mtimes clamped to
    /// `SOURCE_DATE_EPOCH`, cached layers made without it included.
    pub rewrite_timestamp: bool,
}

/// A manifest made for one compression and set of manifest annotations.
#[derive(Debug, Clone)]
pub struct Composed {
    /// The manifest's descriptor (no annotations of its own).
    pub descriptor: Descriptor,
    /// The manifest's digest.
    pub digest: Digest,
    /// The layers as the manifest lists them.
    pub layers: Vec<LayerRef>,
    /// Sum of the layer blob sizes.
    pub size: u64,
}

/// The assembled image, ready to be written to outputs.
pub struct Exporter<'a> {
    root: &'a Path,
    blobs: &'a BlobStore,
    config: Descriptor,
    layers: Vec<LayerRef>,
    first_own: usize,
    options: &'a ExportOptions,
    tags: &'a [ImageName],
    epoch: Option<i64>,
    composed: Mutex<HashMap<String, Composed>>,
}

impl<'a> Exporter<'a> {
    /// An exporter of the image with `config` and `layers` (the first `first_own` from a base
    /// image), named `tags`; `epoch` is `SOURCE_DATE_EPOCH`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        root: &'a Path,
        blobs: &'a BlobStore,
        config: Descriptor,
        layers: Vec<LayerRef>,
        first_own: usize,
        options: &'a ExportOptions,
        tags: &'a [ImageName],
        epoch: Option<i64>,
    ) -> Exporter<'a> {
        Exporter {
            root,
            blobs,
            config,
            layers,
            first_own,
            options,
            tags,
            epoch,
            composed: Mutex::new(HashMap::new()),
        }
    }

    /// The image as the local store keeps it (what `-t` tags): the build's own layers as plain
    /// tars (see [`compress::canonical_layers`]).
    pub(crate) fn main(&self, events: &dyn EventSink) -> Result<Composed, BuildError> {
        let key = format!("canonical{:?}", self.options.annotations.manifest);
        self.compose(key, &self.options.annotations.manifest, || {
            compress::canonical_layers(self.root, self.blobs, &self.layers, self.first_own, events)
        })
    }

    /// The manifest for `spec` and `annotations`, made (and stored) on first use.
    fn compose_for(
        &self,
        spec: &CompressionSpec,
        annotations: &BTreeMap<String, String>,
        events: &dyn EventSink,
    ) -> Result<Composed, BuildError> {
        self.compose(format!("{spec:?}{annotations:?}"), annotations, || {
            let (root, blobs, first_own) = (self.root, self.blobs, self.first_own);
            compress::prepare_layers(root, blobs, &self.layers, first_own, spec, events)
        })
    }

    /// The manifest named `key` with `annotations` over the layers `make` gives, made (and
    /// stored) on first use.
    fn compose(
        &self,
        key: String,
        annotations: &BTreeMap<String, String>,
        make: impl FnOnce() -> Result<Vec<LayerRef>, BuildError>,
    ) -> Result<Composed, BuildError> {
        if let Some(done) = self.lock().get(&key) {
            return Ok(done.clone());
        }
        let layers = make()?;
        let descriptors = layers
            .iter()
            .map(|l| {
                Descriptor::new(MediaType::from(l.media_type.as_str()), l.size, l.digest.to_oci())
            })
            .collect();
        let mut manifest = crate::image::manifest(self.config.clone(), descriptors);
        if !annotations.is_empty() {
            manifest.set_annotations(Some(
                annotations.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            ));
        }
        let bytes = crate::image::canonical_json(&manifest).map_err(BuildError::Json)?;
        let digest = self.blobs.put_bytes(&bytes)?;
        let descriptor =
            Descriptor::new(MediaType::ImageManifest, bytes.len() as u64, digest.to_oci());
        let size = layers.iter().map(|l| l.size).sum();
        let done = Composed { descriptor, digest, layers, size };
        self.lock().insert(key, done.clone());
        Ok(done)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Composed>> {
        self.composed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The manifest for an output's image options (over the build's).
    fn image_for(
        &self,
        image: &ImageOptions,
        events: &dyn EventSink,
    ) -> Result<(Composed, Annotations), BuildError> {
        let spec = image.compression.over(&self.options.compression);
        let annotations = image.annotations.over(&self.options.annotations);
        Ok((self.compose_for(&spec, &annotations.manifest, events)?, annotations))
    }

    /// Writes `output` (reporting compression and push progress to `events`); returns a
    /// description for the user.
    pub fn write(&self, output: &Output, events: &dyn EventSink) -> Result<String, BuildError> {
        match output {
            Output::Oci { dest, tar, image } => {
                let (composed, annotations) = self.image_for(image, events)?;
                oci::write(self.blobs, &composed, &annotations, &self.names(image)?, dest, *tar)
            }
            Output::Docker { dest, image } => {
                let (composed, annotations) = self.image_for(image, events)?;
                docker::write(self.blobs, &composed, &annotations, &self.names(image)?, dest)
            }
            Output::Local { dest } => {
                rootfs::write_local(self.blobs, &self.layers, dest, self.epoch)
            }
            Output::Tar { dest } => rootfs::write_tar(self.blobs, &self.layers, dest, self.epoch),
            Output::Image { push, image: options } => {
                let (composed, _) = self.image_for(options, events)?;
                image::write(self.blobs, &composed, &options.names, *push, events)
            }
        }
    }

    /// The names an archive gives the image: its `name=`s, else the `-t` tags.
    fn names(&self, image: &ImageOptions) -> Result<Vec<crate::reference::Reference>, BuildError> {
        if image.names.is_empty() {
            return self
                .tags
                .iter()
                .map(|t| Ok(crate::reference::Reference::parse(&t.to_string())?))
                .collect();
        }
        image.names.iter().map(|n| Ok(crate::reference::Reference::parse(n)?)).collect()
    }
}

/// The image `manifest` (from the local store) as it is sent to a registry: its plain-tar
/// layers compressed as `spec` says (gzip by default; every layer when `spec` names a codec),
/// each conversion done once per root. Returns `manifest` itself when nothing changes.
pub fn distributable(
    root: &Path,
    blobs: &BlobStore,
    manifest: &Descriptor,
    spec: &CompressionSpec,
    events: &dyn EventSink,
) -> Result<Descriptor, BuildError> {
    let digest = Digest::try_from(manifest.digest())?;
    let bytes = blobs.read(&digest)?;
    let mut image: oci_spec::image::ImageManifest = serde_json::from_slice(&bytes)
        .map_err(|e| BuildError::Export(format!("manifest {digest}: {e}")))?;
    let config_digest = Digest::try_from(image.config().digest())?;
    let config: serde_json::Value = serde_json::from_slice(&blobs.read(&config_digest)?)
        .map_err(|e| BuildError::Export(format!("image config {config_digest}: {e}")))?;
    let diff_ids = config["rootfs"]["diff_ids"].as_array().cloned().unwrap_or_default();
    if diff_ids.len() != image.layers().len() {
        return Err(BuildError::Export(format!(
            "image {digest}: {} layers but {} diff_ids in its config",
            image.layers().len(),
            diff_ids.len()
        )));
    }
    let layers = image
        .layers()
        .iter()
        .zip(&diff_ids)
        .map(|(d, diff_id)| {
            let diff_id = diff_id.as_str().unwrap_or_default();
            Ok(LayerRef {
                digest: Digest::try_from(d.digest())?,
                diff_id: diff_id.parse()?,
                size: d.size(),
                media_type: d.media_type().to_string(),
            })
        })
        .collect::<Result<Vec<_>, BuildError>>()?;
    // Every layer counts as a base layer here: compressed ones stay as they are unless `spec`
    // names a codec, plain ones are compressed.
    let converted = compress::prepare_layers(root, blobs, &layers, layers.len(), spec, events)?;
    if converted.iter().zip(&layers).all(|(c, l)| c.digest == l.digest) {
        return Ok(manifest.clone());
    }
    let descriptors = converted
        .iter()
        .zip(image.layers())
        .map(|(l, old)| {
            let mut d =
                Descriptor::new(MediaType::from(l.media_type.as_str()), l.size, l.digest.to_oci());
            d.set_annotations(old.annotations().clone());
            d
        })
        .collect();
    image.set_layers(descriptors);
    let bytes = crate::image::canonical_json(&image).map_err(BuildError::Json)?;
    let digest = blobs.put_bytes(&bytes)?;
    let mut descriptor =
        Descriptor::new(MediaType::ImageManifest, bytes.len() as u64, digest.to_oci());
    descriptor.set_annotations(manifest.annotations().clone());
    descriptor.set_platform(manifest.platform().clone());
    Ok(descriptor)
}

/// Writes to a file through a temp file beside it (renamed in when complete) or to stdout.
pub(crate) fn write_dest(
    dest: &Dest,
    write: impl FnOnce(&mut dyn std::io::Write) -> Result<(), BuildError>,
) -> Result<(), BuildError> {
    use std::io::Write;
    let io_err = |what: &str, path: &Path, e: std::io::Error| {
        BuildError::Export(format!("{what} {}: {e}", path.display()))
    };
    match dest {
        Dest::Stdout => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
            write(&mut out)?;
            out.flush().map_err(|e| BuildError::Export(format!("writing to stdout: {e}")))
        }
        Dest::Path(path) => {
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let tmp = tempfile::Builder::new()
                .prefix(".kiln-output-")
                .tempfile_in(parent)
                .map_err(|e| io_err("creating a temp file in", parent, e))?;
            {
                let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file());
                write(&mut out)?;
                out.flush().map_err(|e| io_err("writing", tmp.path(), e))?;
            }
            tmp.as_file()
                .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .map_err(|e| io_err("chmod", tmp.path(), e))?;
            tmp.as_file().sync_all().map_err(|e| io_err("fsync", tmp.path(), e))?;
            tmp.persist(path).map_err(|e| io_err("renaming the temp file to", path, e.error))?;
            Ok(())
        }
    }
}
