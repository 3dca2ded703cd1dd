//! Exporting images as a standalone OCI image layout directory or an OCI archive (a tar of the
//! same layout, what `skopeo copy oci-archive:` reads). Only blobs reachable from the given
//! manifests are written, each verified by digest on the way.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use oci_spec::image::{ANNOTATION_REF_NAME, Descriptor};
use rustix::fs::{CWD, RenameFlags};
use serde::Deserialize;
use serde_json::Value;

use crate::blob::BlobStore;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{copy_file_fast, fsync_dir, hash_file, parent_dir, remove_tree};
use crate::json::to_canonical_vec;
use crate::layer::tar_header::{BLOCK, TarHeader, typeflag};

use super::{OCI_LAYOUT, empty_index};

/// The parts of a manifest or index that reference other blobs.
#[derive(Deserialize)]
struct Refs {
    #[serde(default)]
    config: Option<BlobRef>,
    #[serde(default)]
    layers: Vec<BlobRef>,
    #[serde(default)]
    manifests: Vec<BlobRef>,
}

#[derive(Deserialize)]
struct BlobRef {
    digest: String,
    size: u64,
    #[serde(default)]
    urls: Option<Vec<String>>,
}

/// A blob to export.
struct Blob {
    digest: Digest,
    size: u64,
}

/// Every blob reachable from `manifests` (manifests, indexes, configs, layers), each once,
/// in discovery order. Foreign layers (with `urls`) missing from the store are left out.
fn reachable(blobs: &BlobStore, manifests: &[(Descriptor, Option<String>)]) -> Result<Vec<Blob>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack: Vec<(Digest, u64, bool)> = Vec::new();
    for (desc, _) in manifests.iter().rev() {
        stack.push((Digest::try_from(desc.digest())?, desc.size(), true));
    }
    while let Some((digest, size, is_manifest)) = stack.pop() {
        if !seen.insert(digest.clone()) {
            continue;
        }
        let actual = blobs.size(&digest)?;
        if actual != size {
            return Err(Error::SizeMismatch {
                what: format!("blob {digest}"),
                expected: size,
                actual,
            });
        }
        out.push(Blob { digest: digest.clone(), size });
        if !is_manifest {
            continue;
        }
        let bytes = blobs.read(&digest)?;
        let refs: Refs = serde_json::from_slice(&bytes)
            .map_err(|source| Error::Json { what: format!("manifest {digest}"), source })?;
        let parse = |r: &BlobRef| -> Result<Digest> { r.digest.parse() };
        for m in refs.manifests.iter().rev() {
            stack.push((parse(m)?, m.size, true));
        }
        for l in refs.layers.iter().rev() {
            let d = parse(l)?;
            if l.urls.as_ref().is_some_and(|u| !u.is_empty()) && !blobs.contains(&d) {
                continue;
            }
            stack.push((d, l.size, false));
        }
        if let Some(c) = &refs.config {
            stack.push((parse(c)?, c.size, false));
        }
    }
    Ok(out)
}

/// The `index.json` of an exported layout: the manifests, each with its ref name if given.
fn index_json(manifests: &[(Descriptor, Option<String>)]) -> Result<Vec<u8>> {
    index_json_with(manifests, &BTreeMap::new())
}

/// [`index_json`] with `annotations` on the index itself (none: no `annotations` field).
pub(crate) fn index_json_with(
    manifests: &[(Descriptor, Option<String>)],
    annotations: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let mut list = Vec::with_capacity(manifests.len());
    for (desc, name) in manifests {
        let mut d = desc.clone();
        if let Some(name) = name {
            let mut ann = d.annotations().clone().unwrap_or_default();
            ann.insert(ANNOTATION_REF_NAME.to_string(), name.clone());
            d.set_annotations(Some(ann));
        }
        list.push(d);
    }
    let mut index = empty_index();
    index.insert(
        "manifests".into(),
        serde_json::to_value(&list)
            .map_err(|source| Error::Json { what: "index.json".into(), source })?,
    );
    if !annotations.is_empty() {
        let ann = serde_json::to_value(annotations)
            .map_err(|source| Error::Json { what: "index.json".into(), source })?;
        index.insert("annotations".into(), ann);
    }
    to_canonical_vec(&Value::Object(index), "index.json")
}

/// Writes an OCI image layout directory at `dest` holding `manifests` (each tagged with its
/// `org.opencontainers.image.ref.name` when given) and every blob they reach. The layout is
/// built in a temp directory beside `dest` and renamed in; an existing `dest` must be empty or
/// an OCI layout, which is then replaced whole.
pub fn write_layout(
    dest: &Path,
    blobs: &BlobStore,
    manifests: &[(Descriptor, Option<String>)],
) -> Result<()> {
    write_layout_with(dest, blobs, manifests, &BTreeMap::new())
}

/// [`write_layout`] with `index_annotations` on the layout's `index.json`.
pub fn write_layout_with(
    dest: &Path,
    blobs: &BlobStore,
    manifests: &[(Descriptor, Option<String>)],
    index_annotations: &BTreeMap<String, String>,
) -> Result<()> {
    let parent = parent_dir(dest);
    let replace = check_dest_dir(dest)?;
    let list = reachable(blobs, manifests)?;
    let tmp = tempfile::Builder::new()
        .prefix(".kiln-layout-")
        .tempdir_in(parent)
        .ctx("create temp directory in", parent)?;
    let blob_dir = tmp.path().join("blobs").join(Digest::SHA256);
    fs::create_dir_all(&blob_dir).ctx("create directory", &blob_dir)?;
    for b in &list {
        let src_path = blobs.path(&b.digest);
        let dst_path = blob_dir.join(b.digest.hex());
        let src = File::open(&src_path).ctx("open", &src_path)?;
        let dst = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&dst_path)
            .ctx("create", &dst_path)?;
        copy_file_fast(&src, &dst, &src_path, &dst_path)?;
        let check = File::open(&dst_path).ctx("open", &dst_path)?;
        let (digest, size) = hash_file(&check, &dst_path)?;
        if digest != b.digest {
            return Err(Error::DigestMismatch {
                what: format!("blob {}", src_path.display()),
                expected: b.digest.clone(),
                actual: digest,
            });
        }
        if size != b.size {
            return Err(Error::SizeMismatch {
                what: format!("blob {}", src_path.display()),
                expected: b.size,
                actual: size,
            });
        }
        dst.sync_all().ctx("fsync", &dst_path)?;
    }
    write_synced(&tmp.path().join("oci-layout"), OCI_LAYOUT)?;
    write_synced(&tmp.path().join("index.json"), &index_json_with(manifests, index_annotations)?)?;
    fsync_dir(&blob_dir)?;
    fsync_dir(&tmp.path().join("blobs"))?;
    fsync_dir(tmp.path())?;
    fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .ctx("chmod", tmp.path())?;
    let tmp_path = tmp.keep();
    let installed = if replace {
        // Swap the old layout out and the new one in, atomically; then delete the old one.
        rustix::fs::renameat_with(CWD, &tmp_path, CWD, dest, RenameFlags::EXCHANGE)
            .map_err(|e| Error::io("exchange with", dest, e.into()))
    } else {
        fs::rename(&tmp_path, dest).ctx("rename into", dest)
    };
    if let Err(e) = installed {
        let _ = remove_tree(&tmp_path);
        return Err(e);
    }
    remove_tree(&tmp_path)?;
    fsync_dir(parent)
}

/// Decides how `dest` can be (re)placed: `Ok(false)` when absent or an empty directory (plain
/// rename), `Ok(true)` when an OCI layout to replace, an error otherwise.
fn check_dest_dir(dest: &Path) -> Result<bool> {
    match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("stat", dest, e)),
        Ok(m) if !m.is_dir() => {
            Err(Error::Invalid(format!("{} exists and is not a directory", dest.display())))
        }
        Ok(_) => {
            let empty = fs::read_dir(dest).ctx("read directory", dest)?.next().is_none();
            if empty {
                Ok(false)
            } else if dest.join("oci-layout").is_file() {
                Ok(true)
            } else {
                Err(Error::Invalid(format!(
                    "{} exists and is neither empty nor an OCI layout; refusing to replace it",
                    dest.display()
                )))
            }
        }
    }
}

fn write_synced(path: &Path, data: &[u8]) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .ctx("create", path)?;
    f.write_all(data).ctx("write", path)?;
    f.sync_all().ctx("fsync", path)
}

/// Writes the same layout as [`write_layout`] as a tar archive at `dest_file` (OCI archive
/// format): `oci-layout`, `index.json`, then `blobs/sha256/<hex>`, with fixed metadata (mode
/// 0644/0755, owner 0, mtime 0), streamed and verified, built in a temp file and renamed in.
pub fn write_layout_tar(
    dest_file: &Path,
    blobs: &BlobStore,
    manifests: &[(Descriptor, Option<String>)],
) -> Result<()> {
    let index = index_json(manifests)?;
    write_file_atomically(dest_file, |out| write_archive(out, blobs, manifests, &index, &[]))
}

/// Writes an OCI archive (as [`write_layout_tar`]) to a stream (e.g. stdout), with
/// `index_annotations` on its `index.json`.
pub fn write_layout_tar_to(
    out: &mut dyn Write,
    blobs: &BlobStore,
    manifests: &[(Descriptor, Option<String>)],
    index_annotations: &BTreeMap<String, String>,
) -> Result<()> {
    let index = index_json_with(manifests, index_annotations)?;
    write_archive(out, blobs, manifests, &index, &[])
}

/// Creates `dest_file` through a temp file beside it (mode 0644, fsynced, renamed in) whose
/// content `write` produces.
pub(crate) fn write_file_atomically(
    dest_file: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let parent = parent_dir(dest_file);
    let tmp = tempfile::Builder::new()
        .prefix(".kiln-archive-")
        .tempfile_in(parent)
        .ctx("create temp file in", parent)?;
    let tmp_path: PathBuf = tmp.path().to_path_buf();
    {
        let mut out = BufWriter::with_capacity(256 * 1024, tmp.as_file());
        write(&mut out)?;
        out.flush().map_err(|e| Error::io("write", &tmp_path, e))?;
    }
    tmp.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .ctx("chmod", &tmp_path)?;
    tmp.as_file().sync_all().ctx("fsync", &tmp_path)?;
    tmp.persist(dest_file).map_err(|e| Error::io("rename temp file to", dest_file, e.error))?;
    fsync_dir(parent)
}

/// Streams an OCI archive: `oci-layout`, `index.json` (`index`), the `extra` files (name,
/// bytes), then every blob `manifests` reach, each verified, with fixed metadata.
pub(crate) fn write_archive(
    out: &mut dyn Write,
    blobs: &BlobStore,
    manifests: &[(Descriptor, Option<String>)],
    index: &[u8],
    extra: &[(&str, &[u8])],
) -> Result<()> {
    let list = reachable(blobs, manifests)?;
    let werr = |e: io::Error| Error::stream("writing archive", e);
    let no_xattrs = BTreeMap::new();
    let put = |out: &mut dyn Write, name: &str, flag: u8, size: u64| -> Result<()> {
        let header = TarHeader {
            name,
            typeflag: flag,
            mode: if flag == typeflag::DIR { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            size,
            mtime: 0,
            linkname: "",
            devmajor: 0,
            devminor: 0,
            xattrs: &no_xattrs,
        };
        let bytes = header.encode().map_err(Error::Invalid)?;
        out.write_all(&bytes).map_err(werr)
    };
    let pad = |out: &mut dyn Write, size: u64| -> Result<()> {
        let n = (size.next_multiple_of(BLOCK as u64) - size) as usize;
        out.write_all(&[0u8; BLOCK][..n]).map_err(werr)
    };
    let mut files: Vec<(&str, &[u8])> = vec![("oci-layout", OCI_LAYOUT), ("index.json", index)];
    files.extend_from_slice(extra);
    for (name, data) in files {
        put(out, name, typeflag::REGULAR, data.len() as u64)?;
        out.write_all(data).map_err(werr)?;
        pad(out, data.len() as u64)?;
    }
    put(out, "blobs/", typeflag::DIR, 0)?;
    put(out, "blobs/sha256/", typeflag::DIR, 0)?;
    let mut buf = vec![0u8; 1 << 20];
    for b in &list {
        put(out, &format!("blobs/sha256/{}", b.digest.hex()), typeflag::REGULAR, b.size)?;
        let mut reader = blobs.open_verified(&b.digest)?;
        if reader.size() != b.size {
            return Err(Error::SizeMismatch {
                what: format!("blob {}", b.digest),
                expected: b.size,
                actual: reader.size(),
            });
        }
        let mut copied = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::stream(format!("reading blob {}", b.digest), e)),
            };
            out.write_all(&buf[..n]).map_err(werr)?;
            copied += n as u64;
        }
        if copied != b.size {
            return Err(Error::SizeMismatch {
                what: format!("blob {}", b.digest),
                expected: b.size,
                actual: copied,
            });
        }
        pad(out, b.size)?;
    }
    out.write_all(&[0u8; BLOCK * 2]).map_err(werr)?;
    out.flush().map_err(werr)
}
