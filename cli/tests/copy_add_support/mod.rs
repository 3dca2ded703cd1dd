//! Helpers for the COPY/ADD and context tests: build a Dockerfile and read the result back
//! with umoci, list a filesystem tree exactly, list a layer's tar members, and a tiny HTTP
//! server on 127.0.0.1 with ETag and Last-Modified.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use crate::common::*;

/// Writes `dockerfile` into `ctx` and builds it; returns the kiln output.
pub fn build_raw(env: &Env, ctx: &Path, dockerfile: &str, extra: &[&str]) -> Output {
    std::fs::write(ctx.join("Dockerfile"), dockerfile).expect("write Dockerfile");
    let mut args = vec!["build", "--progress=plain"];
    args.extend_from_slice(extra);
    let ctx_arg = ctx.to_str().expect("utf-8");
    args.push(ctx_arg);
    env.kiln(&args)
}

/// What [`build`] made.
pub struct Built {
    /// The unpacked root filesystem.
    pub rootfs: PathBuf,
    /// The OCI layout (tag `t`).
    pub layout: PathBuf,
    /// kiln's stderr (plain progress).
    pub stderr: String,
}

/// Builds `dockerfile` in `ctx` into an OCI layout and unpacks it with umoci.
pub fn build(env: &Env, ctx: &Path, dockerfile: &str, extra: &[&str]) -> Built {
    std::fs::write(ctx.join("Dockerfile"), dockerfile).expect("write Dockerfile");
    let n = next_id();
    let layout = env.path(&format!("layout-{n}"));
    let mut args = vec!["--progress=plain"];
    args.extend_from_slice(extra);
    let stderr = env.build_to_layout(ctx, "t", &layout, &args);
    let rootfs = umoci_unpack(&layout, "t", &env.path(&format!("bundle-{n}")));
    Built { rootfs, layout, stderr }
}

static COUNTER: Mutex<usize> = Mutex::new(0);

fn next_id() -> usize {
    let mut c = COUNTER.lock().unwrap_or_else(|p| p.into_inner());
    *c += 1;
    *c
}

/// One path of a tree, as compared in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory with its mode.
    Dir(u32),
    /// A file: mode and content.
    File(u32, String),
    /// A symbolic link and its target.
    Link(String),
}

/// Every path under `dir` (relative, sorted) with its type, mode and content / target.
pub fn tree(dir: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let rel = path.strip_prefix(root).expect("under root").to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(&path).expect("lstat");
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).expect("readlink");
            out.insert(rel, Node::Link(target.to_string_lossy().into_owned()));
        } else if meta.is_dir() {
            out.insert(rel, Node::Dir(mode));
            walk(root, &path, out);
        } else {
            let content =
                String::from_utf8_lossy(&std::fs::read(&path).expect("read")).into_owned();
            out.insert(rel, Node::File(mode, content));
        }
    }
}

/// The subtree of `tree` under `prefix/`, with `prefix/` removed.
pub fn under(tree: &BTreeMap<String, Node>, prefix: &str) -> BTreeMap<String, Node> {
    let p = format!("{prefix}/");
    tree.iter()
        .filter_map(|(k, v)| k.strip_prefix(&p).map(|rest| (rest.to_string(), v.clone())))
        .collect()
}

/// A file node of mode 0644.
pub fn file(content: &str) -> Node {
    Node::File(0o644, content.to_string())
}

/// A directory node of mode 0755.
pub fn dir() -> Node {
    Node::Dir(0o755)
}

/// Builds an expected tree from (path, node) pairs.
pub fn expect(pairs: &[(&str, Node)]) -> BTreeMap<String, Node> {
    pairs.iter().map(|(p, n)| (p.to_string(), n.clone())).collect()
}

/// (uid, gid) of a path.
pub fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.uid(), m.gid())
}

/// mtime (seconds) of a path.
pub fn mtime(p: &Path) -> i64 {
    std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).mtime()
}

/// (device, inode) of a path.
pub fn inode(p: &Path) -> (u64, u64) {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.dev(), m.ino())
}

/// The members of the top layer of `layout:t` as `tar -tv` lines (numeric owners).
pub fn top_layer_listing(layout: &Path) -> Vec<String> {
    let manifest = skopeo_manifest(layout, "t");
    let layers = manifest["layers"].as_array().expect("layers");
    let digest = layers.last().expect("a layer")["digest"].as_str().expect("digest").to_string();
    let blob = layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    let out = run_ok(Command::new("tar").args(["--numeric-owner", "-tvzf"]).arg(blob));
    out.lines().map(str::to_string).collect()
}

/// The layer digests of `layout:t`.
pub fn layer_digests(layout: &Path) -> Vec<String> {
    let manifest = skopeo_manifest(layout, "t");
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest").to_string())
        .collect()
}

/// Runs `sh -c script` in `dir`, asserting success.
pub fn sh(dir: &Path, script: &str) -> String {
    run_ok(Command::new("sh").arg("-c").arg(script).current_dir(dir))
}

/// A response the test server gives for a path.
#[derive(Debug, Clone)]
pub struct Resource {
    /// The body.
    pub body: Vec<u8>,
    /// `ETag`, if any (a request with a matching `If-None-Match` gets 304).
    pub etag: Option<String>,
    /// `Last-Modified`, if any.
    pub last_modified: Option<String>,
}

/// A tiny HTTP/1.1 server on 127.0.0.1 serving [`Resource`]s by path (404 otherwise), one
/// connection at a time, counting the requests that got a body.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    resources: Arc<Mutex<HashMap<String, Resource>>>,
    bodies: Arc<Mutex<usize>>,
}

impl Server {
    /// Starts the server (it stops with the test process).
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let resources: Arc<Mutex<HashMap<String, Resource>>> = Arc::default();
        let bodies: Arc<Mutex<usize>> = Arc::default();
        let (r, b) = (resources.clone(), bodies.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = serve(stream, &r, &b);
            }
        });
        Server { base, resources, bodies }
    }

    /// Serves `body` at `path`.
    pub fn put(&self, path: &str, resource: Resource) {
        self.resources.lock().expect("lock").insert(path.to_string(), resource);
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// How many responses carried a body (200).
    pub fn bodies_sent(&self) -> usize {
        *self.bodies.lock().expect("lock")
    }
}

fn serve(
    stream: TcpStream,
    resources: &Mutex<HashMap<String, Resource>>,
    bodies: &Mutex<usize>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut if_none_match = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("if-none-match")
        {
            if_none_match = Some(v.trim().to_string());
        }
    }
    let found = resources.lock().expect("lock").get(&path).cloned();
    let mut out = stream;
    match found {
        None => {
            let body = b"not here";
            write!(
                out,
                "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            out.write_all(body)?;
        }
        Some(r) if r.etag.is_some() && r.etag == if_none_match => {
            write!(
                out,
                "HTTP/1.1 304 Not Modified\r\nETag: {}\r\nConnection: close\r\n\r\n",
                r.etag.unwrap_or_default()
            )?;
        }
        Some(r) => {
            *bodies.lock().expect("lock") += 1;
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n",
                r.body.len()
            )?;
            if let Some(e) = &r.etag {
                write!(out, "ETag: {e}\r\n")?;
            }
            if let Some(lm) = &r.last_modified {
                write!(out, "Last-Modified: {lm}\r\n")?;
            }
            out.write_all(b"\r\n")?;
            out.write_all(&r.body)?;
        }
    }
    out.flush()
}

/// sha256 of `data` as `sha256:hex`, with the system's sha256sum.
pub fn sha256(data: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("x");
    std::fs::write(&f, data).expect("write");
    let out = run_ok(Command::new("sha256sum").arg(&f));
    format!("sha256:{}", out.split_whitespace().next().expect("hash"))
}
