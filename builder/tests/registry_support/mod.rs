//! Test support for registry tests: Debian's `docker-registry` (the CNCF distribution server)
//! started on 127.0.0.1 on a free port (plain HTTP, or TLS with a CA made here and htpasswd
//! basic auth, or bearer tokens from a small token server), images made in a store, `skopeo`,
//! and a fault-injecting HTTP proxy. Everything is stopped when dropped.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln_builder::registry::{AuthFiles, CertDirs, ConfPaths, RegistryOptions, RetryPolicy};
use kiln_cache::digest::Digest;
use kiln_cache::layer::{
    Compression, EntryKind, FileSource, LayerEntry, LayerOptions, write_layer,
};
use kiln_cache::store::ImageStore;
use oci_spec::image::{Descriptor, MediaType};

pub mod token;

/// The registry server binary (Debian package `docker-registry`).
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// Fails with an install hint when a tool is missing (these tests never skip silently).
pub fn require(tool: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is required by this test: install it (see .ci: docker-registry, skopeo)"
    );
}

/// How a test registry authenticates.
pub enum AuthMode {
    /// Anyone may pull and push.
    None,
    /// htpasswd basic auth with one user.
    Basic { user: String, password: String },
    /// Bearer tokens from [`token::TokenServer`], which knows one user.
    Token { user: String, password: String },
}

/// A running `docker-registry`.
pub struct TestRegistry {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The directory holding `ca.crt` when the registry speaks TLS.
    pub ca_dir: Option<PathBuf>,
    /// The token server, for [`AuthMode::Token`].
    pub token: Option<token::TokenServer>,
}

impl TestRegistry {
    /// Plain HTTP, no auth.
    pub fn plain() -> TestRegistry {
        TestRegistry::start(false, AuthMode::None)
    }

    /// TLS with a CA made for the test, and htpasswd basic auth for `user`/`password`.
    pub fn secure(user: &str, password: &str) -> TestRegistry {
        TestRegistry::start(true, AuthMode::Basic { user: user.into(), password: password.into() })
    }

    /// Starts a registry; retries on another port when the chosen one was taken meanwhile.
    pub fn start(tls: bool, auth: AuthMode) -> TestRegistry {
        require(REGISTRY_BIN);
        let dir = tempfile::tempdir().expect("temp dir");
        let mut yaml = String::new();
        let ca_dir = tls.then(|| {
            let ca = dir.path().join("ca");
            std::fs::create_dir_all(&ca).expect("mkdir ca");
            make_tls(&ca, &dir.path().join("server.crt"), &dir.path().join("server.key"));
            ca
        });
        let mut token_server = None;
        match &auth {
            AuthMode::None => {}
            AuthMode::Basic { user, password } => {
                let hash = bcrypt::hash(password, 4).expect("bcrypt");
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, format!("{user}:{hash}\n")).expect("write htpasswd");
                yaml.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\n",
                    path.display()
                ));
            }
            AuthMode::Token { user, password } => {
                let server = token::TokenServer::start(user, password, "kiln-test-registry");
                let bundle = dir.path().join("token-ca.pem");
                std::fs::write(&bundle, &server.cert_pem).expect("write token cert");
                yaml.push_str(&format!(
                    "auth:\n  token:\n    realm: {}\n    service: kiln-test-registry\n    issuer: {}\n    rootcertbundle: {}\n",
                    server.realm(),
                    token::ISSUER,
                    bundle.display()
                ));
                token_server = Some(server);
            }
        }
        let data = dir.path().join("data");
        for _ in 0..5 {
            let port = free_port();
            let mut config = format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: kiln-test-secret\n",
                data.display()
            );
            if tls {
                config.push_str(&format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    dir.path().join("server.crt").display(),
                    dir.path().join("server.key").display()
                ));
            }
            config.push_str(&yaml);
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).expect("write config");
            let mut child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&config_path)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start docker-registry");
            if wait_listening(&mut child, port) {
                return TestRegistry { child, dir, port, ca_dir, token: token_server };
            }
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let _ = child.wait();
            eprintln!("docker-registry on port {port} did not start: {err}");
        }
        panic!("docker-registry did not start");
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Waits until something accepts connections on `port` (false when the child exited).
fn wait_listening(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Writes `ca_dir/ca.crt`, and a server certificate for `127.0.0.1` and `localhost` it signed.
pub fn make_tls(ca_dir: &Path, cert: &Path, key: &Path) {
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "kiln test CA");
    ca_params.key_usages =
        vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let server_key = rcgen::KeyPair::generate().expect("server key");
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("params");
    params.distinguished_name.push(rcgen::DnType::CommonName, "127.0.0.1");
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let server = params.signed_by(&server_key, &issuer).expect("server cert");
    std::fs::write(ca_dir.join("ca.crt"), ca_cert.pem()).expect("write ca");
    std::fs::write(cert, server.pem()).expect("write cert");
    std::fs::write(key, server_key.serialize_pem()).expect("write key");
}

/// Options for a test: an empty `registries.conf`, the given auth file, the CA directory,
/// and fast retries.
pub fn options(dir: &Path, ca_dir: Option<&Path>, tls_verify: Option<bool>) -> RegistryOptions {
    let conf = dir.join("registries.conf");
    if !conf.exists() {
        std::fs::write(&conf, "").expect("write registries.conf");
    }
    RegistryOptions {
        conf: ConfPaths::only(conf),
        auth: AuthFiles::only(dir.join("auth.json")),
        certs: CertDirs { explicit: ca_dir.map(Path::to_path_buf), roots: Vec::new() },
        tls_verify,
        retry: RetryPolicy {
            attempts: 4,
            initial_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        },
        max_concurrent: 4,
        chunk_size: None,
    }
}

/// A file entry for a layer.
pub fn file(path: &str, data: &[u8]) -> LayerEntry {
    LayerEntry {
        path: path.into(),
        kind: EntryKind::File { source: FileSource::Bytes(data.to_vec()), size: data.len() as u64 },
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 1_700_000_000,
        xattrs: BTreeMap::new(),
    }
}

/// Deterministic pseudo-random bytes (incompressible test data).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// An image made directly in `store`: one layer per entry list, an OCI config for
/// `linux/ARCH` and an OCI manifest; returns the manifest's descriptor (not tagged).
pub fn make_image(
    store: &ImageStore,
    layers: &[Vec<LayerEntry>],
    compression: Compression,
    arch: &str,
) -> Descriptor {
    let opts = LayerOptions { compression, clamp_mtime: None };
    let infos: Vec<_> =
        layers.iter().map(|l| write_layer(store.blobs(), l, &opts).expect("write layer")).collect();
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": infos.iter().map(|i| i.diff_id.to_string()).collect::<Vec<_>>()},
        "history": infos.iter().map(|_| serde_json::json!({"created_by": "test"})).collect::<Vec<_>>(),
    });
    let config_bytes = serde_json::to_vec(&config).expect("config json");
    let config_digest = store.blobs().put_bytes(&config_bytes).expect("put config");
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config_bytes.len()},
        "layers": infos.iter().map(|i| serde_json::json!({"mediaType": i.media_type, "digest": i.digest.to_string(), "size": i.size})).collect::<Vec<_>>(),
    });
    let bytes = serde_json::to_vec(&manifest).expect("manifest json");
    let digest = store.blobs().put_bytes(&bytes).expect("put manifest");
    Descriptor::new(MediaType::ImageManifest, bytes.len() as u64, digest.to_oci())
}

/// An OCI index over `manifests` (each with its platform `linux/ARCH`), stored in `store`.
pub fn make_index(store: &ImageStore, manifests: &[(&Descriptor, &str)]) -> Descriptor {
    let entries: Vec<_> = manifests
        .iter()
        .map(|(d, arch)| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": d.digest().to_string(),
                "size": d.size(),
                "platform": {"os": "linux", "architecture": arch},
            })
        })
        .collect();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    });
    let bytes = serde_json::to_vec(&index).expect("index json");
    let digest = store.blobs().put_bytes(&bytes).expect("put index");
    Descriptor::new(MediaType::ImageIndex, bytes.len() as u64, digest.to_oci())
}

/// The digest of a descriptor as kiln's type.
pub fn digest_of(d: &Descriptor) -> Digest {
    Digest::try_from(d.digest()).expect("digest")
}

/// Runs skopeo and returns stdout; panics with its output on failure.
pub fn skopeo(args: &[&str]) -> String {
    require("skopeo");
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run skopeo: {e}"));
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What the fault proxy does to one matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answers with this status and an empty body, without asking the registry.
    Status(u16),
    /// Closes the connection with a TCP reset before answering.
    Reset,
    /// Forwards, then sends the headers and only this many body bytes, and closes.
    Truncate(usize),
    /// Forwards, then flips one bit in the middle of the body (same length).
    Corrupt,
}

/// A rule: the first `times` requests with this method whose path contains `path` get `fault`.
#[derive(Debug, Clone)]
pub struct Rule {
    pub method: String,
    pub path: String,
    pub fault: Fault,
    pub times: usize,
}

impl Rule {
    /// A rule for `times` matching requests.
    pub fn new(method: &str, path: &str, fault: Fault, times: usize) -> Rule {
        Rule { method: method.into(), path: path.into(), fault, times }
    }
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub fault: Option<Fault>,
}

/// An HTTP/1.1 proxy in front of a plain registry that injects faults (one request per
/// connection; it tells both sides `Connection: close`).
pub struct FaultProxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on a free port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr, rules: Vec<Rule>) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rules = Arc::new(Mutex::new(rules));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (rules, seen) = (rules.clone(), seen2.clone());
                        std::thread::spawn(move || {
                            let _ = handle(conn, upstream, &rules, &seen);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        FaultProxy { port, stop, seen, thread: Some(thread) }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen").clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends a TCP reset instead of an orderly close.
fn reset(conn: TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt on a valid, owned socket with a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(conn);
}

fn handle(
    conn: TcpStream,
    upstream: SocketAddr,
    rules: &Mutex<Vec<Rule>>,
    seen: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut head = Vec::new();
    let mut line = String::new();
    let mut content_length = 0usize;
    let mut range = None;
    let mut first = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if first.is_empty() {
            first = line.trim_end().to_string();
            head.extend_from_slice(line.as_bytes());
            continue;
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("connection:") {
            continue;
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("range:") {
            range = Some(line[6..].trim().to_string());
        }
        head.extend_from_slice(line.as_bytes());
    }
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    let mut body = vec![0u8; content_length];
    reader.read_exact(&mut body)?;
    let mut parts = first.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let fault = {
        let mut rules = rules.lock().expect("rules");
        let found =
            rules.iter_mut().find(|r| r.times > 0 && r.method == method && path.contains(&r.path));
        found.map(|r| {
            r.times -= 1;
            r.fault.clone()
        })
    };
    seen.lock().expect("seen").push(Seen { method, path, range, fault: fault.clone() });
    let mut conn = conn;
    match fault {
        Some(Fault::Status(code)) => {
            let msg = format!(
                "HTTP/1.1 {code} Injected\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            conn.write_all(msg.as_bytes())?;
            return Ok(());
        }
        Some(Fault::Reset) => {
            reset(conn);
            return Ok(());
        }
        _ => {}
    }
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(&head)?;
    up.write_all(&body)?;
    let mut response = Vec::new();
    up.read_to_end(&mut response)?;
    let split =
        response.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4).unwrap_or(response.len());
    match fault {
        Some(Fault::Truncate(n)) => {
            let end = (split + n).min(response.len());
            conn.write_all(&response[..end])?;
            conn.flush()?;
            // An orderly close: the client reads every byte sent, then an early end of body.
            conn.shutdown(std::net::Shutdown::Both)?;
        }
        Some(Fault::Corrupt) => {
            if response.len() > split {
                let mid = split + (response.len() - split) / 2;
                response[mid] ^= 0x40;
            }
            conn.write_all(&response)?;
        }
        _ => conn.write_all(&response)?,
    }
    Ok(())
}

/// Asserts that every blob of `store` hashes to its name and that no ingest temp file is left.
pub fn assert_store_verified(store: &ImageStore) {
    let dir = store.root().join("blobs/sha256");
    for entry in std::fs::read_dir(&dir).expect("blobs dir") {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read blob");
        let name = path.file_name().and_then(|n| n.to_str()).expect("name").to_string();
        assert_eq!(
            Digest::of_bytes(&data).hex(),
            name,
            "{} does not match its digest",
            path.display()
        );
    }
    let tmp: Vec<_> = std::fs::read_dir(store.root().join("tmp"))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    assert!(tmp.is_empty(), "temp files left behind: {tmp:?}");
}
