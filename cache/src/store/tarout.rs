//! Writing tar members from headers read with [`crate::layer::read_layer`], with kiln's
//! deterministic header encoder: the same header gives the same bytes the layer writer would
//! write for the same entry (so re-encoding a kiln layer unchanged gives the same diff_id).

use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::layer::tar_header::{BLOCK, TarHeader, typeflag};
use crate::layer::{HeaderKind, LayerHeader, OPAQUE_MARKER, WHITEOUT_PREFIX};

/// How the mtimes of written members are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MtimeRule {
    /// As read.
    #[default]
    Keep,
    /// Mtimes later than this are set to it (`SOURCE_DATE_EPOCH` clamping).
    Clamp(i64),
    /// Every mtime is set to this.
    Set(i64),
}

impl MtimeRule {
    /// The mtime to write for `mtime`.
    pub fn apply(self, mtime: i64) -> i64 {
        match self {
            MtimeRule::Keep => mtime,
            MtimeRule::Clamp(limit) => mtime.min(limit),
            MtimeRule::Set(t) => t,
        }
    }
}

/// What members are written with, beyond their own headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemberOptions {
    /// The mtime rule.
    pub mtime: MtimeRule,
    /// Every member gets this owner (uid, gid) instead of its own.
    pub owner: Option<(u32, u32)>,
}

/// `path` as UTF-8 (tar names kiln writes are UTF-8; PAX carries the rest).
fn utf8(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| {
        Error::entry(path.to_string_lossy(), "the path is not UTF-8, which kiln cannot re-encode")
    })
}

/// The tar member name of a header at `path` (directories end in `/`, the root is `./`;
/// whiteouts and opaque markers get their `.wh.` names).
fn member_name(path: &Path, kind: &HeaderKind) -> Result<String> {
    let p = utf8(path)?;
    Ok(match kind {
        HeaderKind::Dir if p.is_empty() => "./".to_string(),
        HeaderKind::Dir => format!("{p}/"),
        HeaderKind::Whiteout => match p.rsplit_once('/') {
            Some((parent, base)) => format!("{parent}/{WHITEOUT_PREFIX}{base}"),
            None => format!("{WHITEOUT_PREFIX}{p}"),
        },
        HeaderKind::OpaqueDir if p.is_empty() => OPAQUE_MARKER.to_string(),
        HeaderKind::OpaqueDir => format!("{p}/{OPAQUE_MARKER}"),
        _ => p.to_string(),
    })
}

/// Counts what a writer wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberStats {
    /// Members written.
    pub members: u64,
    /// Members whose mtime the rule changed.
    pub mtimes_changed: u64,
}

/// Writes tar members to `out`.
pub(crate) struct TarOut<W: Write> {
    pub(crate) out: W,
    opts: MemberOptions,
    pub(crate) stats: MemberStats,
    buf: Vec<u8>,
}

impl<W: Write> TarOut<W> {
    pub(crate) fn new(out: W, opts: MemberOptions) -> TarOut<W> {
        TarOut { out, opts, stats: MemberStats::default(), buf: vec![0u8; 256 * 1024] }
    }

    fn write_all(&mut self, bytes: &[u8], what: &Path) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|e| Error::stream(format!("writing tar member {:?}", what), e))
    }

    /// Writes the header `h` as a member named after `path` (not `h.path`), with its content
    /// read from `content` for files (exactly the header's size). Hard links are written with
    /// [`TarOut::hardlink`].
    pub(crate) fn member(
        &mut self,
        path: &Path,
        h: &LayerHeader,
        content: Option<&mut dyn Read>,
    ) -> Result<()> {
        let (flag, size, linkname, dev) = match &h.kind {
            HeaderKind::Dir => (typeflag::DIR, 0, String::new(), (0, 0)),
            HeaderKind::File { size } => (typeflag::REGULAR, *size, String::new(), (0, 0)),
            HeaderKind::Symlink { target } => (
                typeflag::SYMLINK,
                0,
                String::from_utf8_lossy(target.as_os_str().as_bytes()).into_owned(),
                (0, 0),
            ),
            HeaderKind::Hardlink { target } => {
                return self.hardlink(path, target, h);
            }
            HeaderKind::CharDevice { major, minor } => {
                (typeflag::CHAR, 0, String::new(), (*major, *minor))
            }
            HeaderKind::BlockDevice { major, minor } => {
                (typeflag::BLOCK, 0, String::new(), (*major, *minor))
            }
            HeaderKind::Fifo => (typeflag::FIFO, 0, String::new(), (0, 0)),
            HeaderKind::Whiteout | HeaderKind::OpaqueDir => {
                (typeflag::REGULAR, 0, String::new(), (0, 0))
            }
        };
        if let HeaderKind::Symlink { target } = &h.kind
            && target.to_str().is_none()
        {
            return Err(Error::entry(
                path.to_string_lossy(),
                "the symlink target is not UTF-8, which kiln cannot re-encode",
            ));
        }
        let name = member_name(path, &h.kind)?;
        let marker = matches!(h.kind, HeaderKind::Whiteout | HeaderKind::OpaqueDir);
        let no_xattrs = Default::default();
        let bytes = self.encode(
            &name,
            flag,
            size,
            &linkname,
            dev,
            h,
            if marker { &no_xattrs } else { &h.xattrs },
            path,
        )?;
        self.write_all(&bytes, path)?;
        if size > 0 {
            let content = content.ok_or_else(|| {
                Error::entry(path.to_string_lossy(), "internal error: file content missing")
            })?;
            self.copy_exact(content, size, path)?;
            let pad = (size.next_multiple_of(BLOCK as u64) - size) as usize;
            self.write_all(&[0u8; BLOCK][..pad], path)?;
        }
        Ok(())
    }

    /// Writes a hard link named `path` to `target` with `h`'s metadata.
    pub(crate) fn hardlink(&mut self, path: &Path, target: &Path, h: &LayerHeader) -> Result<()> {
        let name = member_name(path, &HeaderKind::File { size: 0 })?;
        let target = utf8(target)?.to_string();
        let bytes =
            self.encode(&name, typeflag::HARDLINK, 0, &target, (0, 0), h, &h.xattrs, path)?;
        self.write_all(&bytes, path)
    }

    #[allow(clippy::too_many_arguments)]
    fn encode(
        &mut self,
        name: &str,
        flag: u8,
        size: u64,
        linkname: &str,
        dev: (u32, u32),
        h: &LayerHeader,
        xattrs: &std::collections::BTreeMap<String, Vec<u8>>,
        path: &Path,
    ) -> Result<Vec<u8>> {
        let mtime = self.opts.mtime.apply(h.mtime);
        if mtime != h.mtime {
            self.stats.mtimes_changed += 1;
        }
        let (uid, gid) = self.opts.owner.unwrap_or((h.uid, h.gid));
        let header = TarHeader {
            name,
            typeflag: flag,
            mode: h.mode,
            uid,
            gid,
            size,
            mtime,
            linkname,
            devmajor: dev.0,
            devminor: dev.1,
            xattrs,
        };
        self.stats.members += 1;
        header.encode().map_err(|reason| Error::entry(path.to_string_lossy(), reason))
    }

    fn copy_exact(&mut self, content: &mut dyn Read, size: u64, path: &Path) -> Result<()> {
        let mut left = size;
        while left > 0 {
            let want = self.buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match content.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(Error::entry(
                        path.to_string_lossy(),
                        format!("content ended {left} bytes before its size {size}"),
                    ));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::stream(format!("reading layer member {path:?}"), e));
                }
            };
            self.out
                .write_all(&self.buf[..n])
                .map_err(|e| Error::stream(format!("writing tar member {path:?}"), e))?;
            left -= n as u64;
        }
        Ok(())
    }

    /// Ends the archive (two zero blocks) and returns the writer.
    pub(crate) fn finish(mut self) -> Result<W> {
        self.write_all(&[0u8; BLOCK * 2], Path::new("end of archive"))?;
        self.out.flush().map_err(|e| Error::stream("flushing tar stream", e))?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    fn header(path: &str, kind: HeaderKind, mtime: i64) -> LayerHeader {
        LayerHeader {
            path: PathBuf::from(path),
            kind,
            mode: 0o644,
            uid: 1,
            gid: 2,
            mtime,
            xattrs: BTreeMap::new(),
        }
    }

    #[test]
    fn names_and_rules() {
        assert_eq!(member_name(Path::new(""), &HeaderKind::Dir).unwrap(), "./");
        assert_eq!(member_name(Path::new("a/b"), &HeaderKind::Dir).unwrap(), "a/b/");
        assert_eq!(member_name(Path::new("a/b"), &HeaderKind::Whiteout).unwrap(), "a/.wh.b");
        assert_eq!(member_name(Path::new("b"), &HeaderKind::Whiteout).unwrap(), ".wh.b");
        assert_eq!(member_name(Path::new("a"), &HeaderKind::OpaqueDir).unwrap(), "a/.wh..wh..opq");
        assert_eq!(MtimeRule::Clamp(10).apply(20), 10);
        assert_eq!(MtimeRule::Clamp(10).apply(5), 5);
        assert_eq!(MtimeRule::Set(10).apply(5), 10);
    }

    #[test]
    fn writes_members_that_tar_reads_back() {
        let mut t = TarOut::new(
            Vec::new(),
            MemberOptions { mtime: MtimeRule::Clamp(100), owner: Some((7, 8)) },
        );
        t.member(Path::new("d"), &header("d", HeaderKind::Dir, 50), None).unwrap();
        let mut data: &[u8] = b"hello";
        t.member(
            Path::new("d/f"),
            &header("x", HeaderKind::File { size: 5 }, 500),
            Some(&mut data),
        )
        .unwrap();
        t.hardlink(
            Path::new("d/g"),
            Path::new("d/f"),
            &header("g", HeaderKind::File { size: 0 }, 1),
        )
        .unwrap();
        assert_eq!(t.stats, MemberStats { members: 3, mtimes_changed: 1 });
        let bytes = t.finish().unwrap();
        let mut ar = tar::Archive::new(&bytes[..]);
        let got: Vec<(String, u64, u64, u64)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.mtime().unwrap(),
                    h.uid().unwrap(),
                    h.size().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("d/".to_string(), 50, 7, 0),
                ("d/f".to_string(), 100, 7, 5),
                ("d/g".to_string(), 1, 7, 0)
            ]
        );
    }

    #[test]
    fn short_content_is_an_error() {
        let mut t = TarOut::new(Vec::new(), MemberOptions::default());
        let mut data: &[u8] = b"hi";
        let err = t
            .member(Path::new("f"), &header("f", HeaderKind::File { size: 5 }, 0), Some(&mut data))
            .unwrap_err();
        assert_eq!(err.to_string(), "layer entry \"f\": content ended 3 bytes before its size 5");
    }
}
