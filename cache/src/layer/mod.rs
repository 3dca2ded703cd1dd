//! The layer tar codec: deterministic writing ([`write_layer`]), walking an overlayfs upper
//! directory into entries ([`entries_from_dir`]) and streaming reading ([`read_layer`]).
//!
//! Paths in a [`LayerEntry`] are relative and `/`-separated (`usr/bin/env`), never with a
//! leading `/` or `./`. Whiteouts and opaque directories are entries of their own kinds; the
//! writer turns them into OCI `.wh.<name>` / `.wh..wh..opq` files.

use std::collections::BTreeMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::digest::Digest;

pub(crate) mod compression;
mod from_dir;
pub mod pgzip;
mod reader;
mod sort;
pub(crate) mod tar_header;
mod writer;

pub use compression::Compression;
pub use from_dir::entries_from_dir;
pub use reader::{HeaderKind, LayerHeader, ReadSummary, read_layer};
pub use writer::write_layer;

/// OCI media type of an uncompressed layer.
pub const MEDIA_TYPE_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI media type of a gzip layer.
pub const MEDIA_TYPE_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI media type of a zstd layer.
pub const MEDIA_TYPE_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker schema 2 media type of a (gzip) layer.
pub const MEDIA_TYPE_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker schema 2 media type of a foreign (non-distributable) layer.
pub const MEDIA_TYPE_DOCKER_FOREIGN_LAYER: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// The prefix OCI layers give to a whiteout file (`dir/.wh.name` deletes `dir/name`).
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The name of the OCI opaque-directory marker (`dir/.wh..wh..opq`).
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// One file-system object of a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    /// Relative, `/`-separated path without a leading `/` or `./` (`etc/passwd`).
    pub path: String,
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits, including setuid/setgid/sticky (`0o7777` at most).
    pub mode: u32,
    /// Numeric owner.
    pub uid: u32,
    /// Numeric group.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Extended attributes (`security.capability`, `user.*`, ...), written as PAX records.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

/// The kind of a [`LayerEntry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file of `size` bytes, read from `source` while writing.
    File {
        /// Where the content comes from.
        source: FileSource,
        /// Its size in bytes; the writer fails if the source has another size.
        size: u64,
    },
    /// A symbolic link.
    Symlink {
        /// The link's target, stored as is.
        target: String,
    },
    /// A hard link to another entry of the same layer.
    Hardlink {
        /// The layer path of the entry linked to (must be written earlier).
        target: String,
    },
    /// A character device.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
    /// A deletion: `path` is the deleted path (written as `.wh.<name>` in its parent).
    Whiteout,
    /// `path` is a directory whose lower-layer contents are hidden (written as
    /// `<path>/.wh..wh..opq`); usually given together with a `Dir` entry of the same path.
    OpaqueDir,
}

/// Where a file's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    /// Streamed from a file on disk (opened without following a final symlink).
    Path(PathBuf),
    /// Held in memory.
    Bytes(Vec<u8>),
    /// Streamed from a file on disk that must still be the file described by its identity
    /// (as it was when its content was hashed for a cache key): the writer compares the
    /// opened file with it before and after copying, and fails if it changed.
    Checked(Box<CheckedFile>),
}

impl FileSource {
    /// The file on disk the content is read from, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            FileSource::Path(p) => Some(p),
            FileSource::Checked(c) => Some(&c.path),
            FileSource::Bytes(_) => None,
        }
    }

    /// A [`FileSource::Checked`] of `path`, expected to be `identity`.
    pub fn checked(path: PathBuf, identity: FileIdentity) -> FileSource {
        FileSource::Checked(Box::new(CheckedFile { path, identity }))
    }
}

/// A file on disk and what it must still be when it is copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedFile {
    /// The file (opened without following a final symlink).
    pub path: PathBuf,
    /// What `stat` said when its content was read for the cache key.
    pub identity: FileIdentity,
}

/// Which file, in which state: device, inode, size, and the modification and change times in
/// nanoseconds. Equal identities mean the same content for all practical purposes (what git
/// and the stat cache rely on); a file replaced (new inode), rewritten (size, mtime) or
/// touched back (ctime) gets another identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// `st_size`.
    pub size: u64,
    /// `st_mtime` in nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// `st_ctime` in nanoseconds since the epoch.
    pub ctime_ns: i64,
}

impl FileIdentity {
    /// The identity `meta` describes.
    pub fn of(meta: &Metadata) -> FileIdentity {
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Whether a file that was `self` when it was opened (with `links_before` links) still
    /// holds the same bytes, judging by `after` (a later `fstat` of the same descriptor, with
    /// `links_after` links): same size and modification time, and the same change time unless
    /// the link count moved, which a rename over the file or its removal does to the old
    /// inode without touching its content.
    pub fn unchanged_since_open(
        &self,
        links_before: u64,
        after: &FileIdentity,
        links_after: u64,
    ) -> bool {
        self.dev == after.dev
            && self.ino == after.ino
            && self.size == after.size
            && self.mtime_ns == after.mtime_ns
            && (self.ctime_ns == after.ctime_ns || links_before != links_after)
    }

    /// The modification time in whole seconds (rounded down).
    pub fn mtime_secs(&self) -> i64 {
        self.mtime_ns.div_euclid(1_000_000_000)
    }
}

/// How a layer is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerOptions {
    /// The compression of the blob.
    pub compression: Compression,
    /// `SOURCE_DATE_EPOCH`: mtimes later than this are set to it.
    pub clamp_mtime: Option<i64>,
}

/// What [`write_layer`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// Digest of the (compressed) blob, as referenced from a manifest.
    pub digest: Digest,
    /// Digest of the uncompressed tar, as listed in the image config's `rootfs.diff_ids`.
    pub diff_id: Digest,
    /// Size of the (compressed) blob in bytes.
    pub size: u64,
    /// The layer's media type (`application/vnd.oci.image.layer.v1.tar+gzip`, ...).
    pub media_type: String,
}
