//! The content-addressed blob store: `<root>/blobs/sha256/<hex>`, written through temp files
//! under `<root>/tmp/` and renamed in, so a reader never sees a partial blob.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::digest::{Digest, HashingReader, HashingWriter};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{copy_file_fast, fsync_dir, hash_file};

/// Mode of committed blob files: read-only, so nothing edits a blob in place by accident.
const BLOB_MODE: u32 = 0o444;

/// A directory of blobs named by their sha256 digest.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    dir: PathBuf,
    tmp: PathBuf,
}

impl BlobStore {
    /// Opens (creating if needed) the blob store of the OCI layout rooted at `layout_root`.
    pub fn open(layout_root: &Path) -> Result<BlobStore> {
        let dir = layout_root.join("blobs").join(Digest::SHA256);
        let tmp = layout_root.join("tmp");
        fs::create_dir_all(&dir).ctx("create directory", &dir)?;
        fs::create_dir_all(&tmp).ctx("create directory", &tmp)?;
        Ok(BlobStore { root: layout_root.to_path_buf(), dir, tmp })
    }

    /// The layout root this store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` is (or would be) stored.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    /// True when the blob is stored (its content is not re-verified).
    pub fn contains(&self, digest: &Digest) -> bool {
        fs::symlink_metadata(self.path(digest)).is_ok_and(|m| m.is_file())
    }

    /// The stored size of a blob.
    pub fn size(&self, digest: &Digest) -> Result<u64> {
        let path = self.path(digest);
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::BlobNotFound(digest.clone()))
            }
            Err(e) => Err(Error::io("stat", path, e)),
        }
    }

    /// Reads a whole blob into memory and checks its digest. For small blobs (JSON); stream
    /// layers with [`BlobStore::open_verified`].
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.path(digest);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::BlobNotFound(digest.clone()));
            }
            Err(e) => return Err(Error::io("read", path, e)),
        };
        let actual = Digest::of_bytes(&data);
        if actual != *digest {
            return Err(Error::DigestMismatch {
                what: format!("blob {}", path.display()),
                expected: digest.clone(),
                actual,
            });
        }
        Ok(data)
    }

    /// Opens a blob for streaming. The reader fails with `InvalidData` at end of file when
    /// the content does not hash to `digest`, so a consumer that reads to the end has verified it.
    pub fn open_verified(&self, digest: &Digest) -> Result<VerifiedReader> {
        let path = self.path(digest);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::BlobNotFound(digest.clone()));
            }
            Err(e) => return Err(Error::io("open", path, e)),
        };
        let size = file.metadata().ctx("stat", &path)?.len();
        Ok(VerifiedReader { inner: HashingReader::new(file), expected: digest.clone(), size, path })
    }

    /// Stores `data` and returns its digest (a no-op when the blob is already there).
    pub fn put_bytes(&self, data: &[u8]) -> Result<Digest> {
        let digest = Digest::of_bytes(data);
        if self.contains(&digest) {
            return Ok(digest);
        }
        let mut w = self.ingest()?;
        w.write_all(data).ctx("write", w.temp_path())?;
        w.commit(Some(&digest))?;
        Ok(digest)
    }

    /// Stores everything `reader` yields; with `expected`, a different digest is an error and
    /// nothing is stored.
    pub fn put_reader(
        &self,
        mut reader: impl Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64)> {
        let mut w = self.ingest()?;
        let temp = w.temp_path().to_path_buf();
        io::copy(&mut reader, &mut w).map_err(|e| Error::io("copy into", temp, e))?;
        w.commit(expected)
    }

    /// Starts writing a new blob; see [`BlobWriter::commit`].
    pub fn ingest(&self) -> Result<BlobWriter> {
        let tmp = tempfile::Builder::new()
            .prefix("ingest-")
            .tempfile_in(&self.tmp)
            .ctx("create temp file in", &self.tmp)?;
        let file = tmp.reopen().ctx("open", tmp.path())?;
        Ok(BlobWriter {
            store: self.clone(),
            out: HashingWriter::new(BufWriter::with_capacity(256 * 1024, file)),
            tmp,
        })
    }

    /// Copies the file at `path` into the store (reflink or `copy_file_range` where the
    /// filesystem allows), hashing the stored copy; with `expected`, a mismatch stores nothing.
    pub fn import_file(&self, path: &Path, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        if let Some(d) = expected
            && self.contains(d)
        {
            return Ok((d.clone(), self.size(d)?));
        }
        let src = File::open(path).ctx("open", path)?;
        let tmp = tempfile::Builder::new()
            .prefix("import-")
            .tempfile_in(&self.tmp)
            .ctx("create temp file in", &self.tmp)?;
        copy_file_fast(&src, tmp.as_file(), path, tmp.path())?;
        let check = File::open(tmp.path()).ctx("open", tmp.path())?;
        let (digest, size) = hash_file(&check, tmp.path())?;
        self.commit_temp(tmp, digest, size, expected)
    }

    /// Removes a blob (for garbage collection); true when it existed.
    pub fn remove(&self, digest: &Digest) -> Result<bool> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("remove", path, e)),
        }
    }

    /// Fsyncs and renames a hashed temp file into place (or drops it on mismatch / if present).
    fn commit_temp(
        &self,
        tmp: tempfile::NamedTempFile,
        digest: Digest,
        size: u64,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64)> {
        if let Some(exp) = expected
            && *exp != digest
        {
            return Err(Error::DigestMismatch {
                what: format!("blob being stored (temp file {})", tmp.path().display()),
                expected: exp.clone(),
                actual: digest,
            });
        }
        let dest = self.path(&digest);
        if self.contains(&digest) {
            return Ok((digest, size));
        }
        let f = tmp.as_file();
        f.set_permissions(fs::Permissions::from_mode(BLOB_MODE)).ctx("chmod", tmp.path())?;
        f.sync_all().ctx("fsync", tmp.path())?;
        tmp.persist(&dest).map_err(|e| Error::io("rename temp file to", &dest, e.error))?;
        fsync_dir(&self.dir)?;
        Ok((digest, size))
    }
}

/// A blob being written. Bytes go to a temp file while being hashed; nothing is visible in the
/// store until [`BlobWriter::commit`]. Dropping it without committing deletes the temp file.
pub struct BlobWriter {
    store: BlobStore,
    out: HashingWriter<BufWriter<File>>,
    tmp: tempfile::NamedTempFile,
}

impl BlobWriter {
    /// The temp file being written (for error messages).
    pub fn temp_path(&self) -> &Path {
        self.tmp.path()
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.out.len()
    }

    /// True when nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Flushes, fsyncs and renames the blob into place. With `expected`, a different digest is
    /// an error and nothing is stored. Returns the digest and the size.
    pub fn commit(self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let BlobWriter { store, out, tmp } = self;
        let (buf, digest, size) = out.into_parts();
        buf.into_inner().map_err(|e| Error::io("write", tmp.path(), e.into_error()))?;
        store.commit_temp(tmp, digest, size, expected)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A blob reader that checks the digest when it reaches the end of the file.
pub struct VerifiedReader {
    inner: HashingReader<File>,
    expected: Digest,
    size: u64,
    path: PathBuf,
}

impl VerifiedReader {
    /// The blob's size on disk.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The path being read.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Read for VerifiedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let read = self.inner.len();
            if read != self.size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "blob {}: size changed while reading (expected {} bytes, read {read})",
                        self.path.display(),
                        self.size
                    ),
                ));
            }
            let (actual, _) = self.inner.current();
            if actual != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "blob {}: digest mismatch: expected {}, got {actual}",
                        self.path.display(),
                        self.expected
                    ),
                ));
            }
        }
        Ok(n)
    }
}
