//! Registry credentials: containers' `auth.json`, Docker's `config.json` (`auths`, `credsStore`,
//! `credHelpers` through `docker-credential-*` helpers), and writing logins the way podman does.
//!
//! Lookup order (containers/image's): `--authfile` / `$REGISTRY_AUTH_FILE` alone when given;
//! otherwise `$XDG_RUNTIME_DIR/containers/auth.json` (`/run/containers/$UID/auth.json` without
//! it), `~/.config/containers/auth.json`, `$DOCKER_CONFIG/config.json` or
//! `~/.docker/config.json`, and `~/.dockercfg`. In each file: a `credHelpers` entry for the
//! registry, then `auths` keys from the most specific (`registry/namespace/repo`) to the
//! registry, then keys written as URLs (`https://index.docker.io/v1/`), then `credsStore`.
//! Secrets never appear in errors or `Debug` output.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::{Map, Value};

use super::error::{RegistryError, Result};
use crate::reference::DOCKER_HUB;

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (or personal access token).
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// An OAuth2 refresh token ("identity token"), exchanged for access tokens.
    IdentityToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { username, .. } => {
                write!(f, "Basic {{ username: {username:?}, password: <redacted> }}")
            }
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// The flavour of a credentials file, which decides a few lookup details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    /// containers' `auth.json` (namespaced keys, helpers asked with `docker.io`).
    Containers,
    /// Docker's `config.json` (helpers asked with `https://index.docker.io/v1/` for Hub).
    Docker,
    /// `~/.dockercfg`: the `auths` object is the whole file.
    DockerLegacy,
}

/// The credentials files to consult, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFiles {
    files: Vec<(PathBuf, FileKind)>,
    login_file: PathBuf,
}

impl AuthFiles {
    /// The files containers/image reads for this user; `authfile` (`--authfile`) or
    /// `$REGISTRY_AUTH_FILE` replaces them all.
    pub fn from_env(authfile: Option<&Path>) -> AuthFiles {
        let explicit = authfile.map(Path::to_path_buf).or_else(|| {
            std::env::var_os("REGISTRY_AUTH_FILE").filter(|v| !v.is_empty()).map(PathBuf::from)
        });
        if let Some(path) = explicit {
            return AuthFiles::only(path);
        }
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let runtime = match env("XDG_RUNTIME_DIR") {
            Some(dir) => dir.join("containers/auth.json"),
            // SAFETY: getuid has no preconditions and cannot fail.
            None => {
                PathBuf::from(format!("/run/containers/{}/auth.json", unsafe { libc::getuid() }))
            }
        };
        let mut files = vec![(runtime.clone(), FileKind::Containers)];
        let home = env("HOME");
        let config_home =
            env("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config")));
        if let Some(c) = config_home {
            files.push((c.join("containers/auth.json"), FileKind::Containers));
        }
        match (env("DOCKER_CONFIG"), &home) {
            (Some(dir), _) => files.push((dir.join("config.json"), FileKind::Docker)),
            (None, Some(h)) => files.push((h.join(".docker/config.json"), FileKind::Docker)),
            (None, None) => {}
        }
        if let Some(h) = &home {
            files.push((h.join(".dockercfg"), FileKind::DockerLegacy));
        }
        AuthFiles { files, login_file: runtime }
    }

    /// Exactly one containers-format file, which `kiln login` also writes.
    pub fn only(path: impl Into<PathBuf>) -> AuthFiles {
        let path = path.into();
        AuthFiles { files: vec![(path.clone(), FileKind::Containers)], login_file: path }
    }

    /// This list plus a Docker `config.json` consulted after it (for tests and tools).
    pub fn with_docker_config(mut self, path: impl Into<PathBuf>) -> AuthFiles {
        self.files.push((path.into(), FileKind::Docker));
        self
    }

    /// The file `kiln login` writes and `kiln logout` edits.
    pub fn login_file(&self) -> &Path {
        &self.login_file
    }

    /// The Docker `config.json` files in the list (for `logout`'s hint).
    pub fn docker_files(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().filter(|(_, k)| *k != FileKind::Containers).map(|(p, _)| p.as_path())
    }

    /// The credentials for `repository` (e.g. `library/busybox`) on `registry`, if any file
    /// has some.
    pub fn lookup(&self, registry: &str, repository: &str) -> Result<Option<Credential>> {
        for (path, kind) in &self.files {
            if let Some(c) = lookup_in_file(path, *kind, registry, repository)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }
}

/// Reads a credentials file as a JSON object; `None` when it does not exist.
fn read_json(path: &Path) -> Result<Option<Map<String, Value>>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(RegistryError::Io { op: "read", path: path.into(), source }),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(Map::new()));
    }
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(Some(m)),
        Ok(_) => Err(cred_err(path, "not a JSON object")),
        Err(e) => Err(cred_err(path, &format!("invalid JSON: {e}"))),
    }
}

fn cred_err(path: &Path, message: &str) -> RegistryError {
    RegistryError::Credentials { path: path.into(), message: message.to_string() }
}

/// The registry a key of `auths` is about: URL schemes and paths of Docker's legacy keys
/// are dropped (`https://index.docker.io/v1/` → `docker.io`).
fn normalize_key(key: &str) -> String {
    let stripped =
        key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    let host = stripped.split('/').next().unwrap_or(stripped);
    normalize_registry(host)
}

/// Docker Hub's aliases become `docker.io`.
fn normalize_registry(host: &str) -> String {
    match host {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
        other => other.to_string(),
    }
}

fn lookup_in_file(
    path: &Path,
    kind: FileKind,
    registry: &str,
    repository: &str,
) -> Result<Option<Credential>> {
    let Some(doc) = read_json(path)? else { return Ok(None) };
    let registry = normalize_registry(registry);
    let empty = Map::new();
    let (auths, helpers, store) = if kind == FileKind::DockerLegacy {
        (&doc, &empty, None)
    } else {
        let obj = |k: &str| doc.get(k).and_then(Value::as_object).unwrap_or(&empty);
        (obj("auths"), obj("credHelpers"), doc.get("credsStore").and_then(Value::as_str))
    };
    let helper_server = |kind: FileKind| {
        if registry == DOCKER_HUB && kind != FileKind::Containers {
            "https://index.docker.io/v1/".to_string()
        } else {
            registry.clone()
        }
    };
    let helper_for = helpers
        .iter()
        .find(|(k, _)| normalize_key(k) == registry)
        .and_then(|(_, v)| v.as_str())
        .filter(|h| !h.is_empty());
    if let Some(helper) = helper_for {
        return run_helper(helper, &helper_server(kind));
    }
    // Most specific key first: registry/ns/repo, registry/ns, registry.
    let mut keys = Vec::new();
    if kind == FileKind::Containers && !repository.is_empty() {
        let full = format!("{registry}/{repository}");
        let mut key = full.as_str();
        loop {
            keys.push(key.to_string());
            match key.rfind('/') {
                Some(i) => key = &key[..i],
                None => break,
            }
        }
    } else {
        keys.push(registry.clone());
    }
    for key in &keys {
        if let Some(entry) = auths.get(key)
            && let Some(c) = decode_entry(path, key, entry)?
        {
            return Ok(Some(c));
        }
    }
    for (key, entry) in auths {
        if !keys.contains(key)
            && normalize_key(key) == registry
            && let Some(c) = decode_entry(path, key, entry)?
        {
            return Ok(Some(c));
        }
    }
    if let Some(helper) = store.filter(|s| !s.is_empty()) {
        return run_helper(helper, &helper_server(kind));
    }
    Ok(None)
}

/// Decodes one `auths` entry: `identitytoken`, or `auth` (base64 of `user:password`), or
/// `username`/`password`. An empty entry (what Docker writes beside a `credsStore`) is `None`.
fn decode_entry(path: &Path, key: &str, entry: &Value) -> Result<Option<Credential>> {
    let field = |k: &str| entry.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    if let Some(token) = field("identitytoken") {
        return Ok(Some(Credential::IdentityToken(token.to_string())));
    }
    if let Some(auth) = field("auth") {
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let decoded = engine
            .decode(auth.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                cred_err(path, &format!("the \"auth\" of {key:?} is not base64 of user:password"))
            })?;
        let (username, password) = decoded.split_once(':').ok_or_else(|| {
            cred_err(path, &format!("the \"auth\" of {key:?} has no ':' between user and password"))
        })?;
        return Ok(Some(Credential::Basic {
            username: username.to_string(),
            password: password.to_string(),
        }));
    }
    match (field("username"), field("password")) {
        (Some(u), Some(p)) => {
            Ok(Some(Credential::Basic { username: u.to_string(), password: p.to_string() }))
        }
        _ => Ok(None),
    }
}

/// Asks `docker-credential-<helper> get` for `server`'s credentials. "not found" answers are
/// `None`; the helper's output is never quoted in errors when it succeeded.
fn run_helper(helper: &str, server: &str) -> Result<Option<Credential>> {
    let program = format!("docker-credential-{helper}");
    let fail = |message: String| RegistryError::Helper { helper: helper.to_string(), message };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading its input is judged by its exit status below.
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| fail(format!("waiting for {program}: {e}")))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout);
        let err_text = String::from_utf8_lossy(&out.stderr);
        let first = text.lines().chain(err_text.lines()).find(|l| !l.trim().is_empty());
        let first = first.unwrap_or("").trim();
        if first.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(fail(format!("{} ({first})", out.status)));
    }
    let reply: Value = serde_json::from_slice(&out.stdout)
        .map_err(|_| fail("its answer is not the JSON the helper protocol specifies".into()))?;
    let username = reply.get("Username").and_then(Value::as_str).unwrap_or("");
    let secret = reply.get("Secret").and_then(Value::as_str).unwrap_or("");
    if secret.is_empty() {
        return Ok(None);
    }
    if username == "<token>" {
        return Ok(Some(Credential::IdentityToken(secret.to_string())));
    }
    Ok(Some(Credential::Basic { username: username.to_string(), password: secret.to_string() }))
}

/// The `auths` key `kiln login REGISTRY` uses: URL schemes and trailing slashes dropped, Docker
/// Hub's aliases normalized (`https://index.docker.io/v1/` → `docker.io`); a namespace
/// (`quay.io/team`) is kept.
pub fn login_key(registry: &str) -> String {
    let stripped = registry
        .strip_prefix("https://")
        .or_else(|| registry.strip_prefix("http://"))
        .unwrap_or(registry)
        .trim_end_matches('/');
    match stripped.split_once('/') {
        Some((host, rest)) if host == "index.docker.io" && rest.starts_with("v1") => {
            DOCKER_HUB.to_string()
        }
        Some((host, rest)) => format!("{}/{rest}", normalize_registry(host)),
        None => normalize_registry(stripped),
    }
}

/// Records `username`/`password` for `key` in the containers auth file at `path`, as podman
/// does: `{"auths": {KEY: {"auth": base64("user:password")}}}`, other content kept, written
/// atomically with mode 0600 (its directory is created 0700).
pub fn store_login(path: &Path, key: &str, username: &str, password: &str) -> Result<()> {
    let mut doc = read_json(path)?.unwrap_or_default();
    let auths = doc.entry("auths").or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(auths) = auths else {
        return Err(cred_err(path, "\"auths\" is not a JSON object"));
    };
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut entry = Map::new();
    entry.insert("auth".into(), Value::String(encoded));
    auths.insert(key.to_string(), Value::Object(entry));
    write_json(path, &doc)
}

/// Removes `key` from the auth file at `path` (`None`: every entry); true when something was
/// removed.
pub fn remove_login(path: &Path, key: Option<&str>) -> Result<bool> {
    let Some(mut doc) = read_json(path)? else { return Ok(false) };
    let Some(Value::Object(auths)) = doc.get_mut("auths") else { return Ok(false) };
    let removed = match key {
        Some(k) => auths.remove(k).is_some(),
        None => {
            let any = !auths.is_empty();
            auths.clear();
            any
        }
    };
    if removed {
        write_json(path, &doc)?;
    }
    Ok(removed)
}

/// Whether any `auths` key of the file at `path` is about `registry` (for logout's hints).
pub fn has_entry(path: &Path, registry: &str) -> bool {
    let Ok(Some(doc)) = read_json(path) else { return false };
    let registry = normalize_registry(registry);
    let in_obj = |k: &str| {
        doc.get(k)
            .and_then(Value::as_object)
            .is_some_and(|o| o.keys().any(|key| normalize_key(key) == registry))
    };
    in_obj("auths") || in_obj("credHelpers")
}

fn write_json(path: &Path, doc: &Map<String, Value>) -> Result<()> {
    let io_err = |op, source| RegistryError::Io { op, path: path.into(), source };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| io_err("create directory", e))?;
    let mut bytes = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut bytes, formatter);
    serde::Serialize::serialize(doc, &mut ser).map_err(|e| cred_err(path, &e.to_string()))?;
    bytes.push(b'\n');
    let tmp = dir.join(format!(
        ".{}.kiln-tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("auth.json")
    ));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io_err("create", e))?;
    f.write_all(&bytes).map_err(|e| io_err("write", e))?;
    f.sync_all().map_err(|e| io_err("fsync", e))?;
    fs::rename(&tmp, path).map_err(|e| io_err("rename into place", e))
}
