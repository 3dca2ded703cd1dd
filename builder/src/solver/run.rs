//! `RUN` steps: the cache key, the sandbox spec (user, mounts, secrets, network), the command's
//! output as events, and the diff.
//!
//! The cache key holds the command, its environment, user, working directory, network and
//! every mount's options, plus the content its bind mounts read. It never holds a secret's value
//! (only its id), nor what a cache mount contains (as BuildKit).

mod context_mount;

use std::collections::VecDeque;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_cache::digest::Digest;
use kiln_cache::layer::{LayerEntry, entries_from_dir};
use kiln_cache::lock::FileLock;
use kiln_frontend::graph::{CacheSharing, MountSource, RunMount, RunNetwork, RunOp, RunSecurity};
use serde_json::json;

use super::{Solver, StageResult, image_state};
use crate::events::Event;
use crate::fsview::LayeredView;
use crate::key;
use crate::ops::copy::context_digest;
use crate::sandbox::{
    self, MountKind, NetworkMode, SandboxError, SandboxMount, SandboxSpec, SecretBytes, Stream,
};
use crate::users::{resolve_owner, supplementary_groups};

/// Output lines kept to explain a failed command.
const TAIL_LINES: usize = 15;

/// Where a secret's value comes from (`kiln build --secret id=ID,src=FILE|env=VAR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file on the host.
    File(PathBuf),
    /// An environment variable of the kiln process.
    Env(String),
}

impl SecretSource {
    fn read(&self, id: &str) -> Result<Vec<u8>, String> {
        match self {
            SecretSource::File(path) => std::fs::read(path)
                .map_err(|e| format!("secret {id:?}: reading {}: {e}", path.display())),
            SecretSource::Env(var) => std::env::var(var)
                .map(String::into_bytes)
                .map_err(|_| format!("secret {id:?}: environment variable {var} is not set")),
        }
    }
}

/// What a RUN produced, and the scratch directory its entries' files live in.
pub(super) struct RunResult {
    pub entries: Vec<LayerEntry>,
    /// The upper directory the entries point into; removed when dropped (unless adopted).
    pub upper: Upper,
}

/// An upper directory inside a scratch directory that is removed when this is dropped.
pub(super) struct Upper {
    /// The upper directory (overlay format).
    pub path: PathBuf,
    _scratch: tempfile::TempDir,
}

/// Locks a cache mount holds while the RUN runs.
enum CacheLock {
    None,
    Held(#[allow(dead_code)] FileLock),
}

impl Solver<'_> {
    /// The cache key of `run` on the state `parent`.
    pub(super) fn run_key(
        &self,
        run: &RunOp,
        parent: &Digest,
        done: &[Option<Arc<StageResult>>],
    ) -> Result<Digest, String> {
        let mut inputs = Vec::new();
        let mut mounts = Vec::new();
        for m in &run.mounts {
            match m {
                RunMount::Bind { target, from, source, readonly } => {
                    inputs.push(self.mount_input(from, source, done)?);
                    mounts.push(json!({"bind": target, "from": source_kind(from), "source": source, "ro": readonly}));
                }
                RunMount::Cache { target, id, sharing, readonly, uid, gid, mode, from, source } => {
                    mounts.push(
                        json!({"cache": target, "id": id, "sharing": format!("{sharing:?}"),
                        "ro": readonly, "uid": uid, "gid": gid, "mode": mode,
                        "from": source_kind(from), "source": source}),
                    );
                }
                RunMount::Tmpfs { target, size } => {
                    mounts.push(json!({"tmpfs": target, "size": size}))
                }
                // The secret's id and where it goes, never its value.
                RunMount::Secret { id, target, env, required, uid, gid, mode } => {
                    mounts.push(json!({"secret": id, "target": target, "env": env,
                        "required": required, "uid": uid, "gid": gid, "mode": mode}));
                }
                RunMount::Ssh { id, target, required, uid, gid, mode } => {
                    mounts.push(json!({"ssh": id, "target": target, "required": required,
                        "uid": uid, "gid": gid, "mode": mode}));
                }
            }
        }
        let files: Vec<_> = run
            .files
            .iter()
            .map(|f| json!({"path": f.path, "mode": f.mode, "content": Digest::of_bytes(f.content.as_bytes()).to_string()}))
            .collect();
        let description = json!({
            "run": {
                "argv": run.argv,
                "env": run.env,
                "user": run.user,
                "workdir": run.workdir,
                "network": format!("{:?}", self.network_of(run)),
                "security": format!("{:?}", run.security),
                "mounts": mounts,
                "files": files,
            }
        });
        Ok(key::step(parent, description, &inputs))
    }

    /// What a bind mount's content is keyed by.
    fn mount_input(
        &self,
        from: &MountSource,
        source: &str,
        done: &[Option<Arc<StageResult>>],
    ) -> Result<Digest, String> {
        let sources = vec![if source.is_empty() { ".".to_string() } else { source.to_string() }];
        match from {
            MountSource::Context => {
                context_digest(self.hasher, &sources, false, &[], None).map_err(|e| e.to_string())
            }
            MountSource::Named(name) => {
                let hasher = self
                    .sources
                    .named_hasher(name)
                    .ok_or_else(|| format!("no --build-context named {name:?}"))?;
                context_digest(hasher, &sources, false, &[], None).map_err(|e| e.to_string())
            }
            MountSource::Scratch => Ok(key::scratch()),
            MountSource::Stage(i) => {
                let result = done[*i].as_ref().ok_or("mounted stage has no result")?;
                Ok(result.key.clone())
            }
            MountSource::Image(img) => {
                let loaded = self.resolver.loaded(&img.id).ok_or("image was not resolved")?;
                Ok(key::image(&loaded.manifest_digest))
            }
        }
    }

    fn network_of(&self, run: &RunOp) -> NetworkMode {
        match run.network {
            RunNetwork::Default => self.options.network,
            RunNetwork::None => NetworkMode::None,
            RunNetwork::Host => NetworkMode::Host,
        }
    }

    /// Runs `run` on `state` in a sandbox; its changes become layer entries.
    pub(super) fn execute_run(
        &self,
        run: &RunOp,
        state: &StageResult,
        done: &[Option<Arc<StageResult>>],
        vertex: usize,
    ) -> Result<RunResult, String> {
        if run.security == RunSecurity::Insecure {
            return Err("RUN --security=insecure is not supported: kiln does not grant a build \
                        step more privileges than the sandbox gives"
                .to_string());
        }
        let lower_dirs = self.snapshot_dirs(&state.layers)?;
        let view = LayeredView::new(lower_dirs.clone());
        // 0700: while the step runs, the upper directory holds whatever it made (set-uid
        // files included).
        let scratch = tempfile::Builder::new()
            .prefix("run-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(self.builder.root().join("tmp"))
            .map_err(|e| format!("creating a scratch directory: {e}"))?;
        let sandbox_dir = scratch.path().join("sandbox");
        std::fs::create_dir(&sandbox_dir)
            .map_err(|e| format!("creating {}: {e}", sandbox_dir.display()))?;

        let mut spec = SandboxSpec::new(lower_dirs, sandbox_dir, run.argv.clone());
        spec.env = run.env.clone();
        spec.cwd = run.workdir.clone();
        spec.network = self.network_of(run);
        spec.isolation = self.options.isolation;
        let (uid, gid, groups) = self.run_user(run, &view)?;
        spec.uid = uid;
        spec.gid = gid;
        spec.additional_gids = groups;

        let mut locks = Vec::new();
        for (n, m) in run.mounts.iter().enumerate() {
            let dir = scratch.path().join(format!("mount-{n}"));
            if let Some((mount, lock)) = self.prepare_mount(m, &dir, done, &mut spec.env)? {
                spec.mounts.push(mount);
                locks.push(lock);
            }
        }
        for (n, file) in run.files.iter().enumerate() {
            let path = scratch.path().join(format!("file-{n}"));
            write_file(&path, file.content.as_bytes(), file.mode)?;
            spec.mounts.push(SandboxMount {
                target: file.path.clone(),
                kind: MountKind::Bind { source: path, readonly: true },
            });
        }

        self.note_isolation_once();
        let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
        let mut on_output = |_stream: Stream, line: &str| {
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.to_string());
            self.events.emit(Event::StepLog { vertex, line: line.to_string() });
        };
        let outcome = match sandbox::run(&spec, &mut on_output, self.cancel) {
            Ok(o) => o,
            Err(SandboxError::Cancelled) => return Err(CANCELLED.to_string()),
            Err(e) => return Err(e.to_string()),
        };
        drop(locks);
        if let Some(why) = &outcome.rootfs_fallback {
            self.note_once(&format!("RUN uses a {} root file system: {why}", outcome.rootfs));
        }
        if !outcome.status.success() {
            let mut message = format!("the command {} failed ({})", run.command, outcome.status);
            if !tail.is_empty() {
                message.push_str(&format!(
                    "; its last lines of output:\n  {}",
                    Vec::from(tail).join("\n  ")
                ));
            }
            return Err(message);
        }
        let entries = entries_from_dir(&spec.upper_dir())
            .map_err(|e| format!("reading the RUN's changes: {e}"))?;
        let upper = Upper { path: spec.upper_dir(), _scratch: scratch };
        Ok(RunResult { entries, upper })
    }

    /// The numeric user, group and supplementary groups of `RUN` (from `USER`).
    fn run_user(&self, run: &RunOp, view: &LayeredView) -> Result<(u32, u32, Vec<u32>), String> {
        let spec = if run.user.is_empty() { "0" } else { run.user.as_str() };
        let owner = resolve_owner(spec, view).map_err(|e| format!("USER {}: {e}", run.user))?;
        let name = spec.split(':').next().unwrap_or(spec);
        let groups = if spec.contains(':') {
            Vec::new()
        } else {
            supplementary_groups(name, owner.uid, owner.gid, view).map_err(|e| e.to_string())?
        };
        Ok((owner.uid, owner.gid, groups))
    }

    /// The sandbox mount for one `--mount`; `None` for an optional secret or ssh socket that
    /// was not given. Secrets with `env=` go into `env`.
    fn prepare_mount(
        &self,
        mount: &RunMount,
        dir: &Path,
        done: &[Option<Arc<StageResult>>],
        env: &mut Vec<String>,
    ) -> Result<Option<(SandboxMount, CacheLock)>, String> {
        let bind = |target: &str, source: PathBuf, readonly: bool| SandboxMount {
            target: target.to_string(),
            kind: MountKind::Bind { source, readonly },
        };
        Ok(Some(match mount {
            RunMount::Bind { target, from, source, readonly } => {
                let kind = self.bind_source(from, source, dir, *readonly, done)?;
                (SandboxMount { target: target.clone(), kind }, CacheLock::None)
            }
            RunMount::Cache { target, id, from, sharing, readonly, uid, gid, mode, .. } => {
                if !matches!(from, MountSource::Scratch) {
                    return Err(format!(
                        "--mount=type=cache,id={id}: seeding a cache mount from another stage \
                         (from=) is not supported yet"
                    ));
                }
                let (host, lock) = self.cache_dir(id, *sharing, *uid, *gid, *mode, dir)?;
                (bind(target, host, *readonly), lock)
            }
            RunMount::Tmpfs { target, size } => (
                SandboxMount { target: target.clone(), kind: MountKind::Tmpfs { size: *size } },
                CacheLock::None,
            ),
            RunMount::Secret { id, target, env: env_name, required, uid, gid, mode } => {
                let Some(source) = self.options.secrets.get(id) else {
                    if *required {
                        return Err(format!(
                            "secret {id:?} is required: give it with kiln build --secret id={id},src=FILE"
                        ));
                    }
                    return Ok(None);
                };
                let value = source.read(id)?;
                if let Some(name) = env_name {
                    env.push(format!("{name}={}", String::from_utf8_lossy(&value)));
                }
                let target = match (target, env_name) {
                    (Some(t), _) => t.clone(),
                    (None, Some(_)) => return Ok(None),
                    (None, None) => format!("/run/secrets/{id}"),
                };
                // Written by the sandbox on a tmpfs of its own: never on disk.
                let kind = MountKind::Secret {
                    data: SecretBytes(value),
                    mode: *mode,
                    uid: *uid,
                    gid: *gid,
                };
                (SandboxMount { target, kind }, CacheLock::None)
            }
            RunMount::Ssh { id, target, required, .. } => {
                let Some(socket) = self.options.ssh.get(id) else {
                    if *required {
                        return Err(format!(
                            "ssh agent {id:?} is required: give it with kiln build --ssh {id}"
                        ));
                    }
                    return Ok(None);
                };
                (bind(target, socket.clone(), false), CacheLock::None)
            }
        }))
    }

    /// What a bind mount shows: a context's files as its ignore rules leave them
    /// ([`context_mount::context_mount`]), or a host directory holding a stage's or image's
    /// files. Writes to a read-write bind mount are thrown away: the RUN then gets a copy.
    fn bind_source(
        &self,
        from: &MountSource,
        source: &str,
        dir: &Path,
        readonly: bool,
        done: &[Option<Arc<StageResult>>],
    ) -> Result<MountKind, String> {
        let source = if source.is_empty() { "." } else { source };
        let isolation = self.options.isolation;
        let host = match from {
            MountSource::Context => {
                return context_mount::context_mount(
                    self.context,
                    source,
                    dir,
                    readonly,
                    isolation,
                );
            }
            MountSource::Named(name) => {
                let ctx = self
                    .sources
                    .named(name)
                    .ok_or_else(|| format!("no --build-context named {name:?}"))?;
                return context_mount::context_mount(ctx, source, dir, readonly, isolation);
            }
            MountSource::Scratch => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("creating {}: {e}", dir.display()))?;
                dir.to_path_buf()
            }
            MountSource::Stage(i) => {
                let result = done[*i].as_ref().ok_or("mounted stage has no result")?;
                let view = LayeredView::new(self.snapshot_dirs(&result.layers)?);
                materialize(&view, source, dir, readonly)?
            }
            MountSource::Image(img) => {
                let loaded = self.resolver.loaded(&img.id).ok_or("image was not resolved")?;
                self.import_layers(&loaded)?;
                let view = LayeredView::new(self.snapshot_dirs(&image_state(&loaded)?.layers)?);
                materialize(&view, source, dir, readonly)?
            }
        };
        Ok(MountKind::Bind { source: host, readonly })
    }

    /// The persistent directory of cache mount `id` (created with `uid:gid` and `mode`), locked
    /// as `sharing` asks for the time of the RUN.
    fn cache_dir(
        &self,
        id: &str,
        sharing: CacheSharing,
        uid: u32,
        gid: u32,
        mode: u32,
        scratch: &Path,
    ) -> Result<(PathBuf, CacheLock), String> {
        let base = self.builder.root().join("cache/mounts");
        let name = Digest::of_bytes(id.as_bytes()).hex();
        let dir = crate::remote_cache::mount_dir(self.builder.root(), id);
        let lock_path = base.join(format!("{}.lock", &name[..32]));
        std::fs::create_dir_all(&base).map_err(|e| format!("creating {}: {e}", base.display()))?;
        let lock = match sharing {
            CacheSharing::Shared => CacheLock::None,
            CacheSharing::Locked => {
                CacheLock::Held(FileLock::exclusive(&lock_path).map_err(|e| e.to_string())?)
            }
            CacheSharing::Private => {
                match FileLock::try_exclusive(&lock_path).map_err(|e| e.to_string())? {
                    Some(l) => CacheLock::Held(l),
                    // Another RUN holds it: this one gets a fresh, throw-away directory.
                    None => {
                        create_owned_dir(scratch, uid, gid, mode)?;
                        return Ok((scratch.to_path_buf(), CacheLock::None));
                    }
                }
            }
        };
        if !dir.exists() {
            // Per thread: two stages may create the same mount at once.
            let thread = format!("{:?}", std::thread::current().id());
            let thread: String = thread.chars().filter(char::is_ascii_digit).collect();
            let tmp = base.join(format!(".tmp-{}-{}-{thread}", &name[..16], std::process::id()));
            create_owned_dir(&tmp, uid, gid, mode)?;
            if let Some(remote) = self.remote {
                remote.restore_mount(id, &tmp, self.builder, self.events);
            }
            if std::fs::rename(&tmp, &dir).is_err() {
                // Created by someone else meanwhile.
                let _ = std::fs::remove_dir_all(&tmp);
            }
        }
        Ok((dir, lock))
    }

    fn note_isolation_once(&self) {
        if self.isolation_noted.set(()).is_err() {
            return;
        }
        match sandbox::choose_isolation(self.options.isolation) {
            Ok(choice) => self.events.emit(Event::Notice(format!(
                "RUN isolation: {} ({})",
                choice.isolation, choice.reason
            ))),
            Err(e) => self.events.emit(Event::Warning(format!("RUN isolation: {e}"))),
        }
    }

    fn note_once(&self, message: &str) {
        if self.fallback_noted.set(()).is_ok() {
            self.events.emit(Event::Notice(message.to_string()));
        }
    }
}

/// The error text of a RUN stopped because the build is being cancelled.
pub(super) const CANCELLED: &str = "cancelled";

fn source_kind(from: &MountSource) -> String {
    match from {
        MountSource::Context => "context".into(),
        MountSource::Scratch => "scratch".into(),
        MountSource::Stage(_) => "stage".into(),
        MountSource::Image(_) => "image".into(),
        MountSource::Named(n) => format!("named:{n}"),
    }
}

/// Writes `data` to a new file created with `mode` (never more open than that).
fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), String> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o777)
        .open(path)
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    file.write_all(data).map_err(|e| format!("writing {}: {e}", path.display()))?;
    // The umask may have taken bits away.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}

fn create_owned_dir(dir: &Path, uid: u32, gid: u32, mode: u32) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))
        .map_err(|e| format!("chown {}: {e}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", dir.display()))
}

/// Builds `dest` as a directory showing `source` of `view`: hard links to snapshot files for a
/// read-only mount (nothing is copied), copies for a read-write one (a write through a hard
/// link would change the snapshot).
fn materialize(
    view: &LayeredView,
    source: &str,
    dest: &Path,
    readonly: bool,
) -> Result<PathBuf, String> {
    let path = view
        .resolve(&format!("/{}", source.trim_start_matches('/')), true)
        .map_err(|e| e.to_string())?;
    let entry = view
        .lookup(&path)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("--mount source {source:?} does not exist in the stage"))?;
    if !entry.metadata.is_dir() {
        std::fs::create_dir_all(dest).map_err(|e| format!("creating {}: {e}", dest.display()))?;
        let file = dest.join("file");
        link_or_copy(&entry.host_path, &file, readonly)?;
        return Ok(file);
    }
    materialize_dir(view, &path, dest, readonly)?;
    Ok(dest.to_path_buf())
}

fn materialize_dir(
    view: &LayeredView,
    dir: &str,
    dest: &Path,
    readonly: bool,
) -> Result<(), String> {
    std::fs::create_dir_all(dest).map_err(|e| format!("creating {}: {e}", dest.display()))?;
    let listing = view.read_dir(dir).map_err(|e| e.to_string())?.unwrap_or_default();
    for (name, entry) in listing {
        let target = dest.join(&name);
        let meta = &entry.metadata;
        if meta.is_dir() {
            let sub = format!("{}/{name}", dir.trim_end_matches('/'));
            materialize_dir(view, &sub, &target, readonly)?;
        } else if meta.file_type().is_symlink() {
            let link = std::fs::read_link(&entry.host_path).map_err(|e| e.to_string())?;
            std::os::unix::fs::symlink(link, &target).map_err(|e| e.to_string())?;
        } else if meta.is_file() {
            link_or_copy(&entry.host_path, &target, readonly)?;
        }
    }
    Ok(())
}

fn link_or_copy(from: &Path, to: &Path, link: bool) -> Result<(), String> {
    if link && std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to).map(|_| ()).map_err(|e| format!("copying {}: {e}", from.display()))
}
