//! Flattening layers: the final root filesystem as one tar stream or as files in a directory,
//! and several layers squashed into one.
//!
//! Two passes over the layer blobs. The first reads every layer's headers (in parallel, diff_ids
//! verified) and merges them ([`super::merge`]); the second streams the layers bottom up and
//! writes the members that survive in layer order. Directories come from headers already read:
//! a squashed layer lists them first, in path order (as layers usually do); a root filesystem
//! tar lists them last, deepest first, so extractors that set a directory's metadata as soon as
//! they move past it (GNU tar) do not see its mtime changed by files written into it later.
//! Nothing is unpacked on disk for the tar form; the directory form feeds the tar stream to
//! kiln's extractor ([`crate::snapshot::extract_layer`]), so it inherits its safety (nothing
//! lands outside the directory) and its privilege rules.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::blob::BlobStore;
use crate::digest::HashingWriter;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{parent_dir, remove_tree};
use crate::layer::compression::Encoder;
use crate::layer::{HeaderKind, LayerHeader, LayerInfo, LayerOptions, MEDIA_TYPE_TAR, read_layer};
use crate::snapshot::{ExtractOptions, ExtractReport, LayerDesc, extract_layer};

use super::merge::{DirItem, Mode, Plan, Pos, plan};
use super::tarout::{MemberOptions, MemberStats, MtimeRule, TarOut};

/// Reads the headers of every layer, in parallel, checking each diff_id.
fn read_headers(blobs: &BlobStore, layers: &[LayerDesc]) -> Result<Vec<Vec<LayerHeader>>> {
    layers
        .par_iter()
        .map(|layer| {
            let mut headers = Vec::new();
            let reader = blobs.open_verified(&layer.digest)?;
            let summary = read_layer(reader, &layer.media_type, |h, _| {
                headers.push(h.clone());
                Ok(())
            })?;
            check_diff_id(layer, &summary.diff_id)?;
            Ok(headers)
        })
        .collect()
}

fn check_diff_id(layer: &LayerDesc, actual: &crate::digest::Digest) -> Result<()> {
    if *actual != layer.diff_id {
        return Err(Error::DigestMismatch {
            what: format!("diff_id of layer {}", layer.digest),
            expected: layer.diff_id.clone(),
            actual: actual.clone(),
        });
    }
    Ok(())
}

/// A directory no layer declared: 0755, owned by root, mtime 0.
fn implied_dir(path: &Path) -> LayerHeader {
    LayerHeader {
        path: path.to_path_buf(),
        kind: HeaderKind::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: 0,
        xattrs: BTreeMap::new(),
    }
}

/// Writes the header-only items of `plan` (directories, and for a squash whiteouts and
/// opaque markers), in `order`.
fn write_dirs<'a, W: Write>(
    headers: &[Vec<LayerHeader>],
    order: impl Iterator<Item = &'a (PathBuf, DirItem)>,
    out: &mut TarOut<W>,
) -> Result<()> {
    for (path, item) in order {
        let at = |p: &Pos| &headers[p.layer][p.member];
        match item {
            DirItem::Dir(Some(pos)) => out.member(path, at(pos), None)?,
            DirItem::Dir(None) => out.member(path, &implied_dir(path), None)?,
            DirItem::Opaque(pos) => {
                let marker = LayerHeader { kind: HeaderKind::OpaqueDir, ..at(pos).clone() };
                out.member(path, &marker, None)?
            }
            DirItem::Whiteout(pos) => out.member(path, at(pos), None)?,
        }
    }
    Ok(())
}

/// Writes what `plan` says, reading contents from the layers: directories first for a
/// squashed layer, last (deepest first) for a root filesystem (see the module docs).
fn write_plan<W: Write>(
    blobs: &BlobStore,
    layers: &[LayerDesc],
    headers: &[Vec<LayerHeader>],
    plan: &Plan,
    mode: Mode,
    out: &mut TarOut<W>,
) -> Result<()> {
    if mode == Mode::Squash {
        write_dirs(headers, plan.dirs.iter(), out)?;
    }
    write_members(blobs, layers, plan, out)?;
    if mode == Mode::Rootfs {
        write_dirs(headers, plan.dirs.iter().rev(), out)?;
    }
    Ok(())
}

/// Streams the layers bottom up, writing the members `plan` keeps.
fn write_members<W: Write>(
    blobs: &BlobStore,
    layers: &[LayerDesc],
    plan: &Plan,
    out: &mut TarOut<W>,
) -> Result<()> {
    for (li, layer) in layers.iter().enumerate() {
        let start = Pos { layer: li, member: 0 };
        let end = Pos { layer: li + 1, member: 0 };
        let mut todo = plan.emits.range(start..end).peekable();
        if todo.peek().is_none() {
            continue;
        }
        let mut member = 0usize;
        let reader = blobs.open_verified(&layer.digest)?;
        let summary = read_layer(reader, &layer.media_type, |h, content| {
            let here = member;
            member += 1;
            while let Some((pos, emits)) = todo.next_if(|(p, _)| p.member == here) {
                let _ = pos;
                for e in emits {
                    match &e.link_to {
                        Some(target) => out.hardlink(&e.path, target, h)?,
                        None => out.member(&e.path, h, Some(&mut *content))?,
                    }
                }
            }
            Ok(())
        })?;
        check_diff_id(layer, &summary.diff_id)?;
    }
    Ok(())
}

/// Streams the root filesystem of `layers` (bottom first) as one tar to `out`: the members
/// that survive, whiteouts and opaque markers applied and left out.
pub fn write_rootfs_tar(
    blobs: &BlobStore,
    layers: &[LayerDesc],
    out: impl Write,
    opts: MemberOptions,
) -> Result<MemberStats> {
    let headers = read_headers(blobs, layers)?;
    let plan = plan(&headers, Mode::Rootfs)?;
    let mut tar = TarOut::new(out, opts);
    write_plan(blobs, layers, &headers, &plan, Mode::Rootfs, &mut tar)?;
    let stats = tar.stats;
    tar.finish()?;
    Ok(stats)
}

/// Writes the root filesystem of `layers` as files in the directory `dest`, which must not
/// exist or be empty (it is built beside it and renamed in, so a failure leaves nothing).
/// Owners are set where the process may (see [`extract_layer`]); device nodes only as real root.
pub fn write_rootfs_dir(
    blobs: &BlobStore,
    layers: &[LayerDesc],
    dest: &Path,
    opts: MemberOptions,
) -> Result<ExtractReport> {
    match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("stat", dest, e)),
        Ok(m) if m.is_dir() && fs::read_dir(dest).ctx("read directory", dest)?.next().is_none() => {
        }
        Ok(_) => {
            return Err(Error::Invalid(format!(
                "{} exists and is not an empty directory; remove it or choose another destination",
                dest.display()
            )));
        }
    }
    let parent = parent_dir(dest);
    fs::create_dir_all(parent).ctx("create directory", parent)?;
    let tmp: PathBuf = tempfile::Builder::new()
        .prefix(".kiln-rootfs-")
        .tempdir_in(parent)
        .ctx("create temp directory in", parent)?
        .keep();
    let result = extract_rootfs(blobs, layers, &tmp, opts).and_then(|report| {
        fs::rename(&tmp, dest).ctx("rename into", dest)?;
        Ok(report)
    });
    if result.is_err() {
        let _ = remove_tree(&tmp);
    }
    result
}

/// The tar stream of [`write_rootfs_tar`], produced on a thread and extracted into `dir`.
fn extract_rootfs(
    blobs: &BlobStore,
    layers: &[LayerDesc],
    dir: &Path,
    opts: MemberOptions,
) -> Result<ExtractReport> {
    fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .ctx("chmod", dir)?;
    let (reader, writer) = io::pipe().map_err(|e| Error::stream("creating a pipe", e))?;
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            let out = io::BufWriter::with_capacity(256 * 1024, writer);
            write_rootfs_tar(blobs, layers, out, opts)
        });
        let extracted =
            extract_layer(reader, MEDIA_TYPE_TAR, dir, None, &ExtractOptions::default());
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err(Error::Invalid("the tar writer thread panicked".into())));
        // The writer's error is the cause when both failed (the extractor then saw a cut stream).
        produced?;
        extracted
    })
}

/// Squashes `layers` (bottom first) into one layer, written with `opts` (compression, and
/// `clamp_mtime` as `SOURCE_DATE_EPOCH` clamping). Whiteouts and opaque markers that act on
/// what is below the squashed layers are kept.
pub fn squash_layers(
    blobs: &BlobStore,
    layers: &[LayerDesc],
    opts: &LayerOptions,
) -> Result<LayerInfo> {
    opts.compression.validate()?;
    let headers = read_headers(blobs, layers)?;
    let plan = plan(&headers, Mode::Squash)?;
    let blob = blobs.ingest()?;
    let encoder = Encoder::new(blob, opts.compression)
        .map_err(|e| Error::stream("writing squashed layer", e))?;
    let rule = opts.clamp_mtime.map_or(MtimeRule::Keep, MtimeRule::Clamp);
    let mut tar =
        TarOut::new(HashingWriter::new(encoder), MemberOptions { mtime: rule, owner: None });
    write_plan(blobs, layers, &headers, &plan, Mode::Squash, &mut tar)?;
    let (encoder, diff_id, _) = tar.finish()?.into_parts();
    let blob = encoder.finish().map_err(|e| Error::stream("writing squashed layer", e))?;
    let (digest, size) = blob.commit(None)?;
    Ok(LayerInfo { digest, diff_id, size, media_type: opts.compression.media_type().to_string() })
}

#[cfg(test)]
#[path = "rootfs_tests.rs"]
mod tests;
