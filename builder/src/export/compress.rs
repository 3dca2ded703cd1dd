//! Layer compression of the image outputs: `--compression`, `--compression-level` and the
//! `compression=`, `compression-level=`, `force-compression=` output options.
//!
//! Rules: without `compression`, layers the build made are gzip (converted if the cache holds
//! them otherwise) and base-image layers stay as pulled (plain tars, as the local store keeps
//! kiln's own layers, are gzipped); with `compression=X`, every layer not
//! in X is converted; `force-compression=true` also re-encodes layers already in X, at the
//! requested level. A conversion keeps the tar bytes (the diff_id, so the image config, is
//! unchanged), runs in parallel across layers, and is recorded (diff_id, compression) →
//! blob in [`DerivedLayers`] so it is done once.

use std::path::Path;

use kiln_cache::blob::BlobStore;
use kiln_cache::index::LayerRef;
use kiln_cache::layer::Compression;
use kiln_cache::snapshot::LayerDesc;
use kiln_cache::store::{DerivedLayers, layer_codec, recompress_layer_reporting};

use crate::BuildError;
use crate::events::{Event, EventSink, Progress, ProgressState, Task};

pub use kiln_cache::store::Codec;

/// The compression an output asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompressionSpec {
    /// `gzip`, `zstd` or `uncompressed`; `None` when not given.
    pub kind: Option<Codec>,
    /// The level (gzip 0–9, zstd 1–22); the codec's default when `None` (gzip 6, zstd 3).
    pub level: Option<i32>,
    /// Re-encode layers already in the requested codec too.
    pub force: bool,
}

/// `true`/`false` (also `1`/`0`), as BuildKit's boolean options.
pub(crate) fn parse_bool(v: &str) -> Result<bool, String> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err("expected true or false".to_string()),
    }
}

impl CompressionSpec {
    /// Parses a codec name: `gzip`, `zstd`, `uncompressed`.
    pub fn parse_kind(v: &str) -> Result<Codec, String> {
        match v {
            "gzip" => Ok(Codec::Gzip),
            "zstd" => Ok(Codec::Zstd),
            "uncompressed" => Ok(Codec::Plain),
            _ => Err("expected gzip, zstd or uncompressed".to_string()),
        }
    }

    /// Takes an output option if it is one of this spec's (`compression`, `compression-level`,
    /// `force-compression`); returns whether it was. The level is not checked against the
    /// codec here: options come in any order, and the codec may come from the build's flags
    /// (see [`CompressionSpec::over`] and [`CompressionSpec::validate`]).
    pub fn set_option(&mut self, key: &str, value: &str) -> Result<bool, String> {
        match key {
            "compression" => self.kind = Some(Self::parse_kind(value)?),
            "compression-level" => {
                self.level = Some(value.parse().map_err(|_| "expected a number".to_string())?)
            }
            "force-compression" => self.force = parse_bool(value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// This spec's settings over `base`'s (an output's options over the build's flags); the
    /// base's level is kept only for the codec it was given for.
    pub fn over(&self, base: &CompressionSpec) -> CompressionSpec {
        let same_codec = self.kind.is_none() || base.kind.is_none() || self.kind == base.kind;
        CompressionSpec {
            kind: self.kind.or(base.kind),
            level: self.level.or(if same_codec { base.level } else { None }),
            force: self.force || base.force,
        }
    }

    /// Checks the level fits the codec.
    pub fn validate(&self) -> Result<(), String> {
        match (self.kind.unwrap_or(Codec::Gzip), self.level) {
            (_, None) => Ok(()),
            (Codec::Plain, Some(_)) => {
                Err("a compression level does not apply to uncompressed layers".to_string())
            }
            (Codec::Gzip, Some(l)) if !(0..=9).contains(&l) => {
                Err(format!("gzip levels are 0 to 9, not {l}"))
            }
            (Codec::Zstd, Some(l)) if !(1..=22).contains(&l) => {
                Err(format!("zstd levels are 1 to 22, not {l}"))
            }
            _ => Ok(()),
        }
    }

    /// How the build writes new layers (and converts others): the codec (gzip when not given)
    /// at the level (the codec's default when not given).
    pub fn target(&self) -> Compression {
        match self.kind.unwrap_or(Codec::Gzip) {
            Codec::Plain => Compression::None,
            Codec::Gzip => Compression::Gzip { level: self.level.unwrap_or(6).clamp(0, 9) as u32 },
            Codec::Zstd => Compression::Zstd { level: self.level.unwrap_or(3).clamp(1, 22) },
        }
    }

    /// Whether every layer is brought to [`CompressionSpec::target`] (not only the build's own).
    fn converts_all(&self) -> bool {
        self.kind.is_some() || self.force
    }
}

/// The name of a compression in derived-layer keys (`gzip-6`, `zstd-3`, `uncompressed`).
pub(crate) fn tag(c: Compression) -> String {
    match c {
        Compression::None => "uncompressed".to_string(),
        Compression::Gzip { level } => format!("gzip-{level}"),
        Compression::Zstd { level } => format!("zstd-{level}"),
    }
}

pub(crate) fn desc(l: &LayerRef) -> LayerDesc {
    LayerDesc {
        digest: l.digest.clone(),
        diff_id: l.diff_id.clone(),
        media_type: l.media_type.clone(),
    }
}

/// `layers` compressed as `spec` says; `first_own` is the index of the first layer the build
/// made (those below come from a base image).
pub(crate) fn prepare_layers(
    root: &Path,
    blobs: &BlobStore,
    layers: &[LayerRef],
    first_own: usize,
    spec: &CompressionSpec,
    events: &dyn EventSink,
) -> Result<Vec<LayerRef>, BuildError> {
    spec.validate().map_err(BuildError::Export)?;
    let derived = DerivedLayers::open(root)?;
    let target = spec.target();
    map_on_threads(layers, |i, layer| {
        let layer = oci_media_type(blobs, layer)?;
        let codec = layer_codec(blobs, &desc(&layer))?;
        // Base-image layers keep their compression unless asked, except plain tars (how
        // the local store keeps the layers kiln made, a local base image's included).
        if !spec.converts_all() && i < first_own && codec != Codec::Plain {
            return Ok(layer);
        }
        if codec == Codec::of(&target) && !spec.force {
            return Ok(layer);
        }
        Ok(convert(&derived, blobs, &layer, target, events)?)
    })
}

/// `layers` as the local store keeps them: the build's own layers (from `first_own` on) as
/// plain tars, base-image layers as they are.
///
/// Plain tars are kiln's canonical form of its own layers, as in Buildah's and Docker's
/// stores: a build never spends time compressing (outputs and pushes compress, once per
/// layer and compression, see [`convert`]), and the stored manifest depends on the files
/// alone, not on whether a layer was made here or imported compressed from a cache.
pub(crate) fn canonical_layers(
    root: &Path,
    blobs: &BlobStore,
    layers: &[LayerRef],
    first_own: usize,
    events: &dyn EventSink,
) -> Result<Vec<LayerRef>, BuildError> {
    let derived = DerivedLayers::open(root)?;
    map_on_threads(layers, |i, layer| {
        let layer = oci_media_type(blobs, layer)?;
        if i < first_own || layer_codec(blobs, &desc(&layer))? == Codec::Plain {
            return Ok(layer);
        }
        Ok(convert(&derived, blobs, &layer, Compression::None, events)?)
    })
}

/// `f` over `items` (with their indexes), on as many plain threads as there are CPUs, in
/// order; the first error is returned.
///
/// Not on rayon's pool: a gzip stream written from one of the pool's threads compresses each
/// batch in place (see `kiln_cache::layer::pgzip`), while from another thread it hands
/// batches to the pool and reads, hashes and writes meanwhile, which is what makes one big
/// layer compress at the speed of all cores.
fn map_on_threads<T: Sync>(
    items: &[T],
    f: impl Fn(usize, &T) -> Result<LayerRef, BuildError> + Sync,
) -> Result<Vec<LayerRef>, BuildError> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<LayerRef, BuildError>>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads.min(items.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let result = f(i, item);
                    let failed = result.is_err();
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(result);
                    }
                    if failed {
                        // The others stop at their next item.
                        next.store(items.len(), std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let mut out = Vec::with_capacity(items.len());
    for slot in results {
        match slot.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(result) => out.push(result?),
            // Not reached: skipped only after an earlier failure, returned above.
            None => return Err(BuildError::Export("a layer conversion did not run".into())),
        }
    }
    Ok(out)
}

/// Bytes between two progress reports of a conversion.
const REPORT_STEP: u64 = 1 << 20;

/// `layer` in `to`, from the derived-layer records or converted now (with its progress, as
/// blob bytes read of the blob's size, reported to `events`).
pub(crate) fn convert(
    derived: &DerivedLayers,
    blobs: &BlobStore,
    layer: &LayerRef,
    to: Compression,
    events: &dyn EventSink,
) -> Result<LayerRef, kiln_cache::Error> {
    let key = format!("compress:{}:{}", layer.diff_id, tag(to));
    if let Some(done) = derived.get(&key, blobs)? {
        return Ok(done);
    }
    let report = |current: u64, state: ProgressState| {
        events.emit(Event::Progress(Progress {
            vertex: None,
            task: Task::Compress,
            id: layer.digest.to_string(),
            current,
            total: layer.size,
            state,
        }))
    };
    report(0, ProgressState::Running);
    let mut last = 0;
    let info = recompress_layer_reporting(blobs, &desc(layer), to, &mut |read| {
        if read >= last + REPORT_STEP {
            last = read;
            report(read, ProgressState::Running);
        }
    })?;
    report(layer.size, ProgressState::Done);
    let done = LayerRef {
        digest: info.digest,
        diff_id: info.diff_id,
        size: info.size,
        media_type: info.media_type,
    };
    derived.put(&key, &done)?;
    Ok(done)
}

/// Docker layer media types (which do not say their compression) as the OCI type of what the
/// blob holds; other types as they are.
fn oci_media_type(blobs: &BlobStore, layer: &LayerRef) -> Result<LayerRef, BuildError> {
    let docker = layer.media_type.starts_with("application/vnd.docker.image.rootfs.diff.tar");
    if !docker || !blobs.contains(&layer.digest) {
        return Ok(layer.clone());
    }
    let media_type = match layer_codec(blobs, &desc(layer))? {
        Codec::Plain => Compression::None.media_type(),
        Codec::Gzip => Compression::Gzip { level: 6 }.media_type(),
        Codec::Zstd => Compression::Zstd { level: 3 }.media_type(),
    };
    Ok(LayerRef { media_type: media_type.to_string(), ..layer.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_levels_and_targets() {
        let mut s = CompressionSpec::default();
        assert_eq!(s.target(), Compression::Gzip { level: 6 });
        assert!(s.set_option("compression", "zstd").unwrap());
        assert_eq!(s.target(), Compression::Zstd { level: 3 });
        assert!(s.set_option("compression-level", "19").unwrap());
        assert_eq!(s.target(), Compression::Zstd { level: 19 });
        assert!(!s.set_option("name", "x").unwrap());
        // Options come in any order: the level is checked against the codec afterwards.
        let mut late = CompressionSpec::default();
        assert!(late.set_option("compression-level", "19").unwrap());
        assert_eq!(late.validate().unwrap_err(), "gzip levels are 0 to 9, not 19");
        assert!(late.set_option("compression", "zstd").unwrap());
        assert_eq!(late.validate(), Ok(()));
        assert!(s.set_option("compression", "gzip").unwrap());
        assert_eq!(s.validate().unwrap_err(), "gzip levels are 0 to 9, not 19");
        let plain = CompressionSpec { kind: Some(Codec::Plain), level: Some(1), force: false };
        assert_eq!(
            plain.validate().unwrap_err(),
            "a compression level does not apply to uncompressed layers"
        );
        assert_eq!(
            CompressionSpec { kind: Some(Codec::Zstd), level: Some(0), force: false }
                .validate()
                .unwrap_err(),
            "zstd levels are 1 to 22, not 0"
        );
        let output = CompressionSpec { kind: Some(Codec::Plain), ..Default::default() };
        let build = CompressionSpec { kind: Some(Codec::Zstd), level: Some(5), force: true };
        assert_eq!(
            output.over(&build),
            CompressionSpec { kind: Some(Codec::Plain), level: None, force: true }
        );
        let output = CompressionSpec { level: Some(1), ..Default::default() };
        assert_eq!(
            output.over(&build),
            CompressionSpec { kind: Some(Codec::Zstd), level: Some(1), force: true }
        );
        assert_eq!(tag(Compression::Gzip { level: 9 }), "gzip-9");
        assert_eq!(tag(Compression::None), "uncompressed");
    }
}
