//! What a build reads besides its main context: named contexts of files
//! (`--build-context NAME=DIR|URL|git`), and the downloads and git checkouts of `ADD`, each
//! fetched once per build and kept in scratch space until the build ends.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kiln_cache::digest::Digest;
use serde_json::json;

use super::git::{self, Checkout};
use super::http::{self, Download, Probe};
use super::scratch::Scratch;
use super::spec::{NamedSource, PreparedContext};
use super::{BuildContext, ContextError};
use crate::key::ContextHasher;

/// The named contexts of files of a build, prepared (fetched, extracted) and opened.
#[derive(Debug, Default)]
pub struct NamedContexts {
    contexts: BTreeMap<String, (BuildContext, PreparedContext)>,
}

impl NamedContexts {
    /// Prepares every [`NamedSource::Files`] of `named`; temporary directories go under
    /// `scratch_parent`. Each context reads its own `.dockerignore`.
    pub fn prepare(
        named: &BTreeMap<String, NamedSource>,
        scratch_parent: &Path,
    ) -> Result<NamedContexts, ContextError> {
        let mut contexts = BTreeMap::new();
        for (name, source) in named {
            let NamedSource::Files(source) = source else { continue };
            let prepared =
                PreparedContext::prepare(source, scratch_parent, &mut std::io::empty()).map_err(
                    |e| ContextError::NamedSpec { spec: name.clone(), reason: e.to_string() },
                )?;
            if prepared.dockerfile.is_some() {
                return Err(ContextError::NamedSpec {
                    spec: name.clone(),
                    reason: "is not a directory, tar archive or git repository".into(),
                });
            }
            let context = BuildContext::open(&prepared.dir, None)?;
            contexts.insert(name.clone(), (context, prepared));
        }
        Ok(NamedContexts { contexts })
    }

    /// The context named `name`.
    pub fn get(&self, name: &str) -> Option<&BuildContext> {
        self.contexts.get(name).map(|(c, _)| c)
    }
}

/// A git source fetched once per build: remote and reference.
type GitKey = (String, Option<String>);

/// Sources a build's steps read: named contexts (with their hashers), downloads and git
/// checkouts. Shared by the solver's stage threads.
pub struct Sources<'a> {
    root: PathBuf,
    named: BTreeMap<String, (&'a BuildContext, ContextHasher<'a>)>,
    scratch: Scratch,
    downloads: Mutex<HashMap<String, Arc<Download>>>,
    checkouts: Mutex<HashMap<GitKey, Arc<Checkout>>>,
}

impl<'a> Sources<'a> {
    /// Sources for a build in the kiln root `root`, with the named contexts `named`.
    pub fn new(root: &Path, named: &'a NamedContexts) -> Result<Sources<'a>, kiln_cache::Error> {
        let mut map = BTreeMap::new();
        for (name, (context, _)) in &named.contexts {
            map.insert(name.clone(), (context, ContextHasher::new(context, root)?));
        }
        Ok(Sources {
            root: root.to_path_buf(),
            named: map,
            scratch: Scratch::in_root(root),
            downloads: Mutex::new(HashMap::new()),
            checkouts: Mutex::new(HashMap::new()),
        })
    }

    /// The named context of files `name`.
    pub fn named(&self, name: &str) -> Option<&'a BuildContext> {
        self.named.get(name).map(|(c, _)| *c)
    }

    /// The hasher of the named context `name`.
    pub fn named_hasher(&self, name: &str) -> Option<&ContextHasher<'a>> {
        self.named.get(name).map(|(_, h)| h)
    }

    /// Scratch space that lives as long as the build.
    pub fn scratch(&self) -> &Scratch {
        &self.scratch
    }

    /// Writes the named contexts' stat caches back (best effort).
    pub fn save(&self) {
        for (_, hasher) in self.named.values() {
            hasher.save();
        }
    }

    /// What identifies the content of `url` for a cache key: the `--checksum` when given (no
    /// request is made), else the content digest and `Last-Modified` — asked of the server
    /// with the `ETag` / `Last-Modified` a previous build recorded, downloaded when changed.
    pub fn url_key(&self, url: &str, checksum: Option<&str>) -> Result<Digest, String> {
        if let Some(sum) = checksum {
            return Ok(Digest::of_bytes(json!({ "checksum": sum }).to_string().as_bytes()));
        }
        let mut downloads = self.downloads.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = downloads.get(url) {
            return Ok(content_key(&d.digest, d.last_modified));
        }
        let previous = http::load_record(&self.root, url);
        let dest = self.download_path()?;
        let (probe, raw) =
            http::fetch(url, &dest, None, previous.as_ref()).map_err(|e| e.to_string())?;
        match probe {
            Probe::Unchanged(record) => Ok(content_key(&record.digest, record.last_modified)),
            Probe::Fetched(d) => {
                http::save_record(&self.root, url, &d, raw);
                let key = content_key(&d.digest, d.last_modified);
                downloads.insert(url.to_string(), Arc::new(d));
                Ok(key)
            }
        }
    }

    /// The content of `url` (downloaded once per build), verified against `checksum`.
    pub fn download(&self, url: &str, checksum: Option<&str>) -> Result<Arc<Download>, String> {
        let mut downloads = self.downloads.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = downloads.get(url) {
            if let Some(sum) = checksum
                && sum.starts_with("sha256:")
                && d.digest.to_string() != sum
            {
                return Err(http::HttpError::Checksum {
                    url: url.to_string(),
                    expected: sum.to_string(),
                    actual: d.digest.to_string(),
                }
                .to_string());
            }
            if checksum.is_none_or(|s| s.starts_with("sha256:")) {
                return Ok(d.clone());
            }
        }
        let dest = self.download_path()?;
        let (probe, raw) = http::fetch(url, &dest, checksum, None).map_err(|e| e.to_string())?;
        let Probe::Fetched(d) = probe else {
            return Err(format!("downloading {url}: the server sent no content"));
        };
        http::save_record(&self.root, url, &d, raw);
        let d = Arc::new(d);
        downloads.insert(url.to_string(), d.clone());
        Ok(d)
    }

    fn download_path(&self) -> Result<PathBuf, String> {
        let dir = self.scratch.dir("add-url-").map_err(|e| format!("scratch space: {e}"))?;
        Ok(dir.join("download"))
    }

    /// `reference` of the git repository `remote`, fetched once per build.
    pub fn git(&self, remote: &str, reference: Option<&str>) -> Result<Arc<Checkout>, String> {
        let key = (remote.to_string(), reference.map(str::to_string));
        let mut checkouts = self.checkouts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = checkouts.get(&key) {
            return Ok(c.clone());
        }
        let dir = self.scratch.dir("add-git-").map_err(|e| format!("scratch space: {e}"))?;
        let checkout = Arc::new(git::fetch(remote, reference, &dir).map_err(|e| e.to_string())?);
        checkouts.insert(key, checkout.clone());
        Ok(checkout)
    }
}

/// The key input of downloaded content: its digest and the mtime it will get.
fn content_key(digest: &Digest, last_modified: Option<i64>) -> Digest {
    let doc = json!({ "content": digest.to_string(), "last_modified": last_modified });
    Digest::of_bytes(doc.to_string().as_bytes())
}
