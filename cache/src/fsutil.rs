//! Small filesystem helpers: atomic writes, directory fsync, fast copies, tree removal.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rustix::io::Errno;

use crate::digest::{Digest, Digester};
use crate::error::{Error, IoContext, Result};

/// Fsyncs the directory at `dir` (makes a rename or create in it durable).
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).ctx("open directory", dir)?;
    f.sync_all().ctx("fsync directory", dir)
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `data` to `path` atomically: a temp file beside it, fsync, rename, fsync of the directory.
/// The file gets mode `mode`.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .ctx("create temp file in", dir)?;
    tmp.write_all(data).ctx("write", tmp.path())?;
    tmp.as_file().set_permissions(fs::Permissions::from_mode(mode)).ctx("chmod", tmp.path())?;
    tmp.as_file().sync_all().ctx("fsync", tmp.path())?;
    tmp.persist(path).map_err(|e| Error::io("rename temp file to", path, e.error))?;
    fsync_dir(dir)
}

/// Writes `data` to `path` by temp file and rename, without fsync: for derived data that is
/// cheap to lose on a power failure (a cache record, a snapshot marker) but must never be seen
/// half-written.
pub(crate) fn write_replace(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .ctx("create temp file in", dir)?;
    tmp.write_all(data).ctx("write", tmp.path())?;
    tmp.as_file().set_permissions(fs::Permissions::from_mode(mode)).ctx("chmod", tmp.path())?;
    tmp.persist(path).map_err(|e| Error::io("rename temp file to", path, e.error))?;
    Ok(())
}

/// Copies all of `src` into `dst` (both open files, `dst` empty), using a reflink when the
/// filesystem can, else `copy_file_range`, else a plain read/write loop. Returns the bytes copied.
pub(crate) fn copy_file_fast(
    src: &File,
    dst: &File,
    src_path: &Path,
    dst_path: &Path,
) -> Result<u64> {
    let len = src.metadata().ctx("stat", src_path)?.len();
    if len > 0 && rustix::fs::ioctl_ficlone(dst, src).is_ok() {
        return Ok(len);
    }
    let mut copied = 0u64;
    let mut use_cfr = true;
    loop {
        if use_cfr {
            match rustix::fs::copy_file_range(src, None, dst, None, 1 << 30) {
                Ok(0) => return Ok(copied),
                Ok(n) => {
                    copied += n as u64;
                    continue;
                }
                Err(Errno::XDEV | Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP | Errno::PERM)
                    if copied == 0 =>
                {
                    use_cfr = false;
                }
                Err(e) => return Err(Error::io("copy_file_range to", dst_path, e.into())),
            }
        } else {
            let mut buf = vec![0u8; 256 * 1024];
            let (mut s, mut d) = (src, dst);
            loop {
                let n = match s.read(&mut buf) {
                    Ok(0) => return Ok(copied),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::io("read", src_path, e)),
                };
                d.write_all(&buf[..n]).ctx("write", dst_path)?;
                copied += n as u64;
            }
        }
    }
}

/// Hashes the whole file `f` (read from its current offset) and returns digest and size.
pub(crate) fn hash_file(mut f: &File, path: &Path) -> Result<(Digest, u64)> {
    let mut digester = Digester::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read", path, e)),
        };
        digester.update(&buf[..n]);
    }
    let size = digester.len();
    Ok((digester.finish(), size))
}

/// Removes `path` and everything below it, making directories writable first where a
/// permission error stops the removal (read-only directories unpacked from layers).
/// A missing `path` is not an error.
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("stat", path, e)),
        Ok(m) if !m.is_dir() => return fs::remove_file(path).ctx("remove", path),
        Ok(_) => {}
    }
    if fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    make_dirs_writable(path)?;
    fs::remove_dir_all(path).ctx("remove directory tree", path)
}

fn make_dirs_writable(dir: &Path) -> Result<()> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let _ = fs::set_permissions(&d, fs::Permissions::from_mode(0o700));
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for ent in rd.flatten() {
            if ent.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(ent.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"one", 0o644).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
    }

    #[test]
    fn copy_and_remove_tree() {
        let dir = tempfile::tempdir().unwrap();
        let src_p = dir.path().join("src");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&src_p, &data).unwrap();
        let dst_p = dir.path().join("dst");
        let (src, dst) = (File::open(&src_p).unwrap(), File::create(&dst_p).unwrap());
        assert_eq!(copy_file_fast(&src, &dst, &src_p, &dst_p).unwrap(), data.len() as u64);
        assert_eq!(fs::read(&dst_p).unwrap(), data);

        let tree = dir.path().join("tree");
        fs::create_dir_all(tree.join("a/b")).unwrap();
        fs::write(tree.join("a/b/f"), b"x").unwrap();
        fs::set_permissions(tree.join("a"), fs::Permissions::from_mode(0o555)).unwrap();
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        remove_tree(&tree).unwrap();
    }
}
