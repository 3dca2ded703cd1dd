//! What a RUN sandbox is asked to do ([`SandboxSpec`]) and what it reports back.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The `PATH` a command gets when its environment has none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How a RUN is isolated (`--isolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// The strongest mode that works here (chosen once per process, see
    /// [`super::choose_isolation`]).
    #[default]
    Auto,
    /// Namespaces inside kiln's own user namespace (a non-root user; see
    /// [`super::enter_rootless_namespace_if_needed`]).
    Rootless,
    /// Namespaces as real root, no user namespace.
    Root,
    /// `chroot` into a copied root file system, with whatever namespaces are allowed; for
    /// runners that refuse user and mount namespaces.
    Chroot,
}

impl Isolation {
    /// The flag value (`auto`, `rootless`, `root`, `chroot`).
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Auto => "auto",
            Isolation::Rootless => "rootless",
            Isolation::Root => "root",
            Isolation::Chroot => "chroot",
        }
    }
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Isolation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Isolation::Auto),
            "rootless" => Ok(Isolation::Rootless),
            "root" => Ok(Isolation::Root),
            "chroot" => Ok(Isolation::Chroot),
            other => Err(format!(
                "unknown isolation {other:?} (expected auto, rootless, root or chroot)"
            )),
        }
    }
}

/// How the RUN's root file system is assembled from the snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RootfsDriver {
    /// Kernel overlayfs, else `fuse-overlayfs`, else a copy (the first that works here).
    #[default]
    Auto,
    /// Kernel overlayfs (`userxattr,redirect_dir=nofollow,metacopy=off`).
    KernelOverlay,
    /// `fuse-overlayfs` (needs `/dev/fuse`).
    FuseOverlay,
    /// The snapshots copied into a directory, the diff found by comparing before and after.
    Copy,
}

impl fmt::Display for RootfsDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RootfsDriver::Auto => "auto",
            RootfsDriver::KernelOverlay => "overlayfs",
            RootfsDriver::FuseOverlay => "fuse-overlayfs",
            RootfsDriver::Copy => "copy",
        })
    }
}

/// The network of a RUN (`RUN --network`; `default` is the host's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// The host's network namespace.
    #[default]
    Host,
    /// A new network namespace with only loopback, up.
    None,
}

/// A mount inside the sandbox, on top of the root file system. Its target is created (as a
/// directory, or as a file for a file source) when missing, without landing in the diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxMount {
    /// Absolute path inside the container (symlinks are resolved inside the root).
    pub target: String,
    /// What is mounted.
    pub kind: MountKind,
}

/// The kinds of [`SandboxMount`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A host file or directory (cache dirs, secrets, bind sources prepared by the builder).
    Bind {
        /// The host path.
        source: PathBuf,
        /// Mounted read-only.
        readonly: bool,
    },
    /// A fresh tmpfs.
    Tmpfs {
        /// Size limit in bytes (`None`: the kernel's default, half of RAM).
        size: Option<u64>,
    },
    /// A read-only view of the host directory `source` without the entries `hidden` (a build
    /// context filtered by its ignore file). The sandbox mounts a read-only overlay whose top
    /// layer, made on a tmpfs of the sandbox's own, whites out each hidden path: nothing is
    /// copied, the context is never written, and the cost is one whiteout per hidden entry.
    /// Needs kernel overlayfs ([`super::filtered_views_supported`]).
    Filtered {
        /// The host directory.
        source: PathBuf,
        /// Paths relative to `source` ('/'-separated) that the view does not show.
        hidden: Vec<String>,
    },
    /// A read-only file the sandbox writes on a tmpfs of its own mount namespace (a secret):
    /// its content never reaches a disk, and vanishes with the sandbox even when kiln is
    /// killed.
    Secret {
        /// The content.
        data: SecretBytes,
        /// Permission bits.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
}

/// Bytes that are never shown by `Debug` (secret values); sent to the sandbox helper as
/// base64 through its standard input (a pipe).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(pub Vec<u8>);

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes({} bytes)", self.0.len())
    }
}

impl Serialize for SecretBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine;
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(SecretBytes)
            .map_err(serde::de::Error::custom)
    }
}

/// One RUN step to execute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// The snapshot directories (overlay format), bottom (oldest) first.
    pub lower_dirs: Vec<PathBuf>,
    /// An empty directory owned by the caller, on the file system the diff should live on.
    /// The sandbox creates `upper/` in it (the diff, see [`SandboxSpec::upper_dir`]) and
    /// temporary directories it removes before [`super::run`] returns.
    pub scratch_dir: PathBuf,
    /// The command and its arguments (`argv[0]` is looked up in the `PATH` of `env`).
    pub argv: Vec<String>,
    /// The environment, `KEY=value` strings.
    pub env: Vec<String>,
    /// Working directory inside the container (absolute; created when missing).
    pub cwd: String,
    /// User id the command runs as.
    pub uid: u32,
    /// Group id the command runs as.
    pub gid: u32,
    /// Supplementary group ids.
    pub additional_gids: Vec<u32>,
    /// Host name in the sandbox's UTS namespace and `/etc/hostname`.
    pub hostname: String,
    /// The network.
    pub network: NetworkMode,
    /// Extra mounts, applied in order.
    pub mounts: Vec<SandboxMount>,
    /// Content of `/etc/hosts` (never committed to the layer).
    pub etc_hosts: String,
    /// Content of `/etc/resolv.conf` (never committed to the layer).
    pub resolv_conf: String,
    /// The isolation mode.
    pub isolation: Isolation,
    /// How the root file system is assembled.
    pub rootfs: RootfsDriver,
}

impl SandboxSpec {
    /// A spec running `argv` as root in `/` on `lower_dirs`, with the host's network and
    /// `resolv.conf`, host name `kiln` and the default `PATH`.
    pub fn new(lower_dirs: Vec<PathBuf>, scratch_dir: PathBuf, argv: Vec<String>) -> Self {
        let hostname = "kiln".to_string();
        SandboxSpec {
            lower_dirs,
            scratch_dir,
            argv,
            env: vec![format!("PATH={DEFAULT_PATH}")],
            cwd: "/".to_string(),
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
            etc_hosts: default_etc_hosts(&hostname),
            hostname,
            network: NetworkMode::Host,
            mounts: Vec::new(),
            resolv_conf: host_resolv_conf(),
            isolation: Isolation::Auto,
            rootfs: RootfsDriver::Auto,
        }
    }

    /// The upper directory: after [`super::run`], the RUN's changes in overlay format (give it
    /// to `kiln_cache::layer::entries_from_dir`).
    pub fn upper_dir(&self) -> PathBuf {
        self.scratch_dir.join("upper")
    }
}

/// The `/etc/hosts` Docker gives a build container named `hostname`.
pub fn default_etc_hosts(hostname: &str) -> String {
    format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
    )
}

/// The host's `/etc/resolv.conf` (empty when it cannot be read).
pub fn host_resolv_conf() -> String {
    std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
}

impl ExitStatus {
    /// True for exit code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code: {c}"),
            ExitStatus::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// What [`super::run`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// How the command ended.
    pub status: ExitStatus,
    /// The isolation mode used (never `Auto`).
    pub isolation: Isolation,
    /// The root file system driver used (never `Auto`).
    pub rootfs: RootfsDriver,
    /// Why no overlay was used, when the `Auto` driver fell back to copying.
    pub rootfs_fallback: Option<String>,
}
