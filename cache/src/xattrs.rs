//! Reading and writing extended attributes with rustix (no symlink following).

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::path::Path;

use rustix::io::Errno;

/// Overlayfs' own xattr namespaces (`trusted.overlay.*`, `user.overlay.*`).
pub(crate) fn is_overlay_xattr(name: &str) -> bool {
    name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.")
}

/// All xattrs of `path` (the link itself for a symlink). A filesystem without xattr support
/// gives an empty map. Names that are not UTF-8 are returned as an error.
pub(crate) fn list_path(path: &Path) -> Result<BTreeMap<String, Vec<u8>>, Errno> {
    let mut names = vec![0u8; 1024];
    let len = loop {
        match rustix::fs::llistxattr(path, &mut names[..]) {
            Ok(n) => break n,
            Err(Errno::RANGE) => {
                let need = rustix::fs::llistxattr_query(path)?;
                names.resize(need.max(names.len() * 2), 0);
            }
            Err(Errno::NOTSUP) => return Ok(BTreeMap::new()),
            Err(e) => return Err(e),
        }
    };
    let mut out = BTreeMap::new();
    for raw in names[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = std::str::from_utf8(raw).map_err(|_| Errno::ILSEQ)?;
        match get_path(path, name) {
            Ok(v) => {
                out.insert(name.to_string(), v);
            }
            // Removed between list and get.
            Err(Errno::NODATA) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// One xattr of `path` (not following a final symlink).
pub(crate) fn get_path(path: &Path, name: &str) -> Result<Vec<u8>, Errno> {
    let mut value = vec![0u8; 256];
    loop {
        match rustix::fs::lgetxattr(path, name, &mut value[..]) {
            Ok(n) => {
                value.truncate(n);
                return Ok(value);
            }
            Err(Errno::RANGE) => {
                let need = rustix::fs::lgetxattr_query(path, name)?;
                value.resize(need.max(value.len() * 2), 0);
            }
            Err(e) => return Err(e),
        }
    }
}

/// One xattr of an open file, `None` when it is not set or not supported.
pub(crate) fn get_fd(fd: impl AsFd, name: &str) -> Option<Vec<u8>> {
    let mut value = vec![0u8; 64];
    match rustix::fs::fgetxattr(fd, name, &mut value[..]) {
        Ok(n) => {
            value.truncate(n);
            Some(value)
        }
        Err(_) => None,
    }
}

/// Sets an xattr on an open file (or directory).
pub(crate) fn set_fd(fd: impl AsFd, name: &str, value: &[u8]) -> Result<(), Errno> {
    rustix::fs::fsetxattr(fd, name, value, rustix::fs::XattrFlags::empty())
}
