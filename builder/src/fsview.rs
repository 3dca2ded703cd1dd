//! A read-only, merged view of a stack of snapshot directories, with overlayfs semantics.
//!
//! Snapshots are stored in overlayfs format (a whiteout is a 0:0 character device, an opaque
//! directory carries `user.overlay.opaque=y` or `trusted.overlay.opaque=y`), so the same
//! directories serve as overlay lower dirs for `RUN`. This module answers path lookups across
//! them in user space, which `COPY --from`, `--chown` name lookups and destination checks need
//! without mounting anything (and so without privileges).

use std::collections::BTreeMap;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Symlinks followed while resolving one path before giving up (Linux uses 40).
const MAX_SYMLINKS: usize = 40;

/// A merged view of snapshot directories.
#[derive(Debug, Clone, Default)]
pub struct LayeredView {
    /// Snapshot directories, top (newest) first.
    layers: Vec<PathBuf>,
}

/// A file found in the view.
#[derive(Debug, Clone)]
pub struct ViewEntry {
    /// Where its bytes are on the host.
    pub host_path: PathBuf,
    /// Its metadata (not following a symlink).
    pub metadata: Metadata,
}

/// How a path looks in one layer.
enum InLayer {
    Absent,
    Whiteout,
    NonDir(Metadata),
    Dir { metadata: Metadata, opaque: bool },
}

impl LayeredView {
    /// A view of `layers`, given bottom (oldest) first as an image lists them.
    pub fn new(bottom_first: impl IntoIterator<Item = PathBuf>) -> Self {
        let mut layers: Vec<PathBuf> = bottom_first.into_iter().collect();
        layers.reverse();
        LayeredView { layers }
    }

    /// True when the view has no layers (`FROM scratch` before any change).
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Looks up `path` (absolute or relative to `/`, already resolved: symlinks are not followed).
    pub fn lookup(&self, path: &str) -> io::Result<Option<ViewEntry>> {
        let components = components(path);
        if components.is_empty() {
            // The root always exists; report the topmost layer's root directory.
            return Ok(match self.layers.first() {
                Some(top) => {
                    Some(ViewEntry { host_path: top.clone(), metadata: fs::metadata(top)? })
                }
                None => None,
            });
        }
        for layer in &self.layers {
            match self.probe(layer, &components)? {
                Probe::Found(entry) => return Ok(Some(entry)),
                Probe::Hidden => return Ok(None),
                Probe::NotHere { stop } => {
                    if stop {
                        return Ok(None);
                    }
                }
            }
        }
        Ok(None)
    }

    /// Looks at `components` in one layer.
    fn probe(&self, layer: &Path, components: &[&str]) -> io::Result<Probe> {
        let mut host = layer.to_path_buf();
        let mut opaque_above = false;
        for (i, name) in components.iter().enumerate() {
            host.push(name);
            let last = i + 1 == components.len();
            match in_layer(&host)? {
                InLayer::Absent => return Ok(Probe::NotHere { stop: opaque_above }),
                InLayer::Whiteout => return Ok(Probe::Hidden),
                InLayer::NonDir(metadata) => {
                    return Ok(if last {
                        Probe::Found(ViewEntry { host_path: host, metadata })
                    } else {
                        // A file where a directory was expected: nothing exists below it.
                        Probe::Hidden
                    });
                }
                InLayer::Dir { metadata, opaque } => {
                    if last {
                        return Ok(Probe::Found(ViewEntry { host_path: host, metadata }));
                    }
                    opaque_above |= opaque;
                }
            }
        }
        Ok(Probe::NotHere { stop: opaque_above })
    }

    /// Lists directory `path` (resolved) merged across layers: name → entry, sorted by name.
    /// Returns `None` when `path` is not a directory in the view.
    pub fn read_dir(&self, path: &str) -> io::Result<Option<BTreeMap<String, ViewEntry>>> {
        let components = components(path);
        let mut seen: BTreeMap<String, Option<ViewEntry>> = BTreeMap::new();
        let mut found_dir = false;
        for layer in &self.layers {
            let host = components.iter().fold(layer.clone(), |p, c| p.join(c));
            let probe = if components.is_empty() {
                Probe::Found(ViewEntry { metadata: fs::metadata(&host)?, host_path: host.clone() })
            } else {
                self.probe(layer, &components)?
            };
            match probe {
                Probe::Found(e) if e.metadata.is_dir() => {
                    found_dir = true;
                    merge_listing(&host, &mut seen)?;
                    if is_opaque(&host) {
                        break;
                    }
                }
                // A non-directory (or deletion) here hides everything below; if nothing above
                // was a directory, the path is not a directory at all.
                Probe::Found(_) | Probe::Hidden => break,
                Probe::NotHere { stop: true } => break,
                Probe::NotHere { stop: false } => {}
            }
        }
        if !found_dir {
            return Ok(None);
        }
        Ok(Some(seen.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect()))
    }

    /// Resolves symlinks in `path` the way the kernel would inside a root at `/`: absolute link
    /// targets restart at the root and `..` never climbs above it. The last component is
    /// followed only when `follow_last` is set. Missing components are kept as written.
    pub fn resolve(&self, path: &str, follow_last: bool) -> io::Result<String> {
        let mut pending: Vec<String> =
            components(path).iter().rev().map(|s| s.to_string()).collect();
        let mut resolved: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(name) = pending.pop() {
            match name.as_str() {
                "." | "" => continue,
                ".." => {
                    resolved.pop();
                    continue;
                }
                _ => {}
            }
            resolved.push(name);
            let is_last = pending.is_empty();
            if is_last && !follow_last {
                break;
            }
            let here = format!("/{}", resolved.join("/"));
            let Some(entry) = self.lookup(&here)? else { continue };
            if !entry.metadata.file_type().is_symlink() {
                continue;
            }
            hops += 1;
            if hops > MAX_SYMLINKS {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("too many levels of symbolic links resolving {path}"),
                ));
            }
            let target = fs::read_link(&entry.host_path)?;
            let target = target.to_str().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("link target of {here} is not UTF-8"),
                )
            })?;
            resolved.pop();
            if target.starts_with('/') {
                resolved.clear();
            }
            for part in target.split('/').rev() {
                pending.push(part.to_string());
            }
        }
        Ok(format!("/{}", resolved.join("/")))
    }

    /// Reads a whole file at `path` (symlinks followed), `None` if it does not exist.
    pub fn read_file(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        let resolved = self.resolve(path, true)?;
        match self.lookup(&resolved)? {
            Some(e) if e.metadata.is_file() => fs::read(&e.host_path).map(Some),
            _ => Ok(None),
        }
    }
}

/// Adds the entries of host directory `dir` that are not in `seen` yet (whiteouts as `None`).
fn merge_listing(dir: &Path, seen: &mut BTreeMap<String, Option<ViewEntry>>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("file name is not UTF-8 in {}", dir.display()),
            ));
        };
        if seen.contains_key(&name) {
            continue;
        }
        let metadata = fs::symlink_metadata(entry.path())?;
        let path = entry.path();
        let value = if is_whiteout_at(&path, &metadata) {
            None
        } else {
            Some(ViewEntry { host_path: path, metadata })
        };
        seen.insert(name, value);
    }
    Ok(())
}

enum Probe {
    Found(ViewEntry),
    /// Deleted or shadowed in this layer: lower layers must not be consulted.
    Hidden,
    /// Not in this layer; `stop` when an opaque directory above hides lower layers.
    NotHere {
        stop: bool,
    },
}

fn components(path: &str) -> Vec<&str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".").collect()
}

fn in_layer(host: &Path) -> io::Result<InLayer> {
    let metadata = match fs::symlink_metadata(host) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(InLayer::Absent),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(InLayer::Absent),
        Err(e) => return Err(e),
    };
    if is_whiteout_at(host, &metadata) {
        Ok(InLayer::Whiteout)
    } else if metadata.is_dir() {
        Ok(InLayer::Dir { opaque: is_opaque(host), metadata })
    } else {
        Ok(InLayer::NonDir(metadata))
    }
}

/// An overlayfs whiteout: a character device with device number 0:0, or (where `mknod` is
/// refused) an empty regular file carrying `user.overlay.whiteout` (Linux 6.7+).
fn is_whiteout_at(path: &Path, metadata: &Metadata) -> bool {
    is_whiteout(metadata)
        || (metadata.is_file()
            && metadata.len() == 0
            && matches!(xattr::get(path, kiln_cache::snapshot::WHITEOUT_XATTR), Ok(Some(_))))
}

/// A character-device whiteout (device number 0:0).
pub fn is_whiteout(metadata: &Metadata) -> bool {
    metadata.file_type().is_char_device() && metadata.rdev() == 0
}

/// An overlayfs opaque directory marker, in either xattr namespace.
pub fn is_opaque(dir: &Path) -> bool {
    ["user.overlay.opaque", "trusted.overlay.opaque"]
        .iter()
        .any(|name| matches!(xattr::get(dir, name), Ok(Some(v)) if v == b"y"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn write(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    /// A whiteout needs mknod; as non-root on old kernels it may be refused.
    fn whiteout(root: &Path, rel: &str) -> bool {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &p,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0),
            0,
        )
        .is_ok()
    }

    #[test]
    fn upper_layers_win_and_directories_merge() {
        let t = tempfile::tempdir().unwrap();
        let (low, up) = (t.path().join("low"), t.path().join("up"));
        write(&low, "etc/passwd", "root:x:0:0::/root:/bin/sh\n");
        write(&low, "etc/group", "root:x:0:\n");
        write(&up, "etc/passwd", "new\n");
        write(&up, "etc/hosts", "h\n");
        let view = LayeredView::new([low, up]);
        assert_eq!(view.read_file("/etc/passwd").unwrap().unwrap(), b"new\n");
        let names: Vec<String> = view.read_dir("/etc").unwrap().unwrap().into_keys().collect();
        assert_eq!(names, ["group", "hosts", "passwd"]);
        assert!(view.lookup("/etc/missing").unwrap().is_none());
        assert!(view.read_dir("/etc/passwd").unwrap().is_none());
    }

    #[test]
    fn whiteouts_and_opaque_dirs_hide_lower_files() {
        let t = tempfile::tempdir().unwrap();
        let (low, up) = (t.path().join("low"), t.path().join("up"));
        write(&low, "a/keep", "1");
        write(&low, "a/gone", "2");
        write(&low, "b/old", "3");
        fs::create_dir_all(up.join("b")).unwrap();
        write(&up, "b/new", "4");
        if !whiteout(&up, "a/gone") {
            eprintln!("skipping: mknod of a whiteout is not permitted here");
            return;
        }
        xattr::set(up.join("b"), "user.overlay.opaque", b"y").unwrap();
        let view = LayeredView::new([low, up]);
        assert!(view.lookup("/a/gone").unwrap().is_none());
        assert!(view.lookup("/a/keep").unwrap().is_some());
        assert!(view.lookup("/b/old").unwrap().is_none());
        let b: Vec<String> = view.read_dir("/b").unwrap().unwrap().into_keys().collect();
        assert_eq!(b, ["new"]);
        let a: Vec<String> = view.read_dir("/a").unwrap().unwrap().into_keys().collect();
        assert_eq!(a, ["keep"]);
    }

    #[test]
    fn a_file_in_an_upper_layer_hides_a_lower_directory() {
        let t = tempfile::tempdir().unwrap();
        let (low, up) = (t.path().join("low"), t.path().join("up"));
        write(&low, "x/inner", "1");
        write(&up, "x", "file now");
        let view = LayeredView::new([low, up]);
        assert!(view.lookup("/x/inner").unwrap().is_none());
        assert!(view.lookup("/x").unwrap().unwrap().metadata.is_file());
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let low = t.path().join("low");
        write(&low, "usr/lib/f", "x");
        symlink("usr/lib", low.join("lib")).unwrap();
        symlink("/usr/lib/f", low.join("abs")).unwrap();
        symlink("../../../../etc", low.join("usr/up")).unwrap();
        symlink("loop", low.join("loop")).unwrap();
        let view = LayeredView::new([low]);
        assert_eq!(view.resolve("/lib/f", true).unwrap(), "/usr/lib/f");
        assert_eq!(view.resolve("/lib/new/dir", true).unwrap(), "/usr/lib/new/dir");
        assert_eq!(view.resolve("/abs", true).unwrap(), "/usr/lib/f");
        assert_eq!(view.resolve("/abs", false).unwrap(), "/abs");
        assert_eq!(view.resolve("/usr/up/passwd", true).unwrap(), "/etc/passwd");
        assert!(view.resolve("/loop", true).is_err());
    }
}
