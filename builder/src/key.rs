//! Cache keys: what exactly produced a filesystem state.
//!
//! A key is the sha256 of a canonical JSON document naming the op (after expansion, with every
//! flag), the key of the state it builds on, the keys of its other inputs (`COPY --from`), and
//! for context sources the digest of the content it reads. File modification times are not part
//! of it: a file touched but unchanged does not invalidate (as BuildKit). Bump [`KEY_VERSION`]
//! whenever what goes into a key or what an op produces changes.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Mutex;

use kiln_cache::digest::{Digest, Digester};
use kiln_cache::statcache::StatCache;
use rayon::prelude::*;
use serde_json::{Value, json};

use crate::context::{BuildContext, ContextError};

/// Changes whenever keys computed by an older kiln must stop matching.
pub const KEY_VERSION: &str = "kiln-key-v2";

/// Key of the empty filesystem (`FROM scratch`).
pub fn scratch() -> Digest {
    key_of(&json!({ "v": KEY_VERSION, "base": "scratch" }))
}

/// Key of a base image, by manifest digest (a tag resolves to the digest first).
pub fn image(manifest_digest: &Digest) -> Digest {
    key_of(&json!({ "v": KEY_VERSION, "base": "image", "manifest": manifest_digest.to_string() }))
}

/// The parent of a `--link` step's key: its layer is made on an empty filesystem, so the
/// stage's state does not go into it (see [`after_link`]).
pub fn link_base() -> Digest {
    key_of(&json!({ "v": KEY_VERSION, "base": "link" }))
}

/// Key of the state after a `--link` layer whose own key is `layer_key` is applied on
/// `parent`: the layer is shared by every parent, the resulting states are not.
pub fn after_link(parent: &Digest, layer_key: &Digest) -> Digest {
    step(parent, json!({ "apply-link": layer_key.to_string() }), &[])
}

/// Key input for a git source: the commit, and what of it is copied.
pub fn git_source(commit: &str, subdir: Option<&str>, keep_git_dir: bool) -> Digest {
    let doc = json!({ "commit": commit, "subdir": subdir, "keep_git_dir": keep_git_dir });
    key_of(&doc)
}

/// Key of a step: `op` applied on `parent`, reading `inputs` (other states' keys or content
/// digests).
pub fn step(parent: &Digest, op: Value, inputs: &[Digest]) -> Digest {
    let inputs: Vec<String> = inputs.iter().map(ToString::to_string).collect();
    key_of(&json!({ "v": KEY_VERSION, "parent": parent.to_string(), "op": op, "inputs": inputs }))
}

fn key_of(doc: &Value) -> Digest {
    // serde_json's Value keeps object keys sorted: the bytes are canonical.
    Digest::of_bytes(doc.to_string().as_bytes())
}

/// Hashes what `COPY` reads from a build context, remembering file digests across builds.
pub struct ContextHasher<'a> {
    context: &'a BuildContext,
    stat: Mutex<StatCache>,
}

/// One thing a source contributes to the content digest.
struct Item {
    path: String,
    kind: &'static str,
    mode: u32,
    /// File: content digest; symlink: target; dir: empty.
    detail: String,
}

/// One entry of a selection to digest ([`ContextHasher::digest_items`]).
#[derive(Debug, Clone)]
pub struct HashItem {
    /// Where it lands (any text that differs when the place differs).
    pub path: String,
    /// `file`, `dir`, `symlink`, ...
    pub kind: &'static str,
    /// Permission bits.
    pub mode: u32,
    /// What else identifies it (a link target, the digest of in-memory content).
    pub detail: String,
    /// A file on disk whose content digest is added (through the stat cache).
    pub file: Option<(PathBuf, std::fs::Metadata)>,
}

impl HashItem {
    /// An item without file content.
    pub fn new(path: String, kind: &'static str, mode: u32, detail: String) -> HashItem {
        HashItem { path, kind, mode, detail, file: None }
    }
}

impl<'a> ContextHasher<'a> {
    /// A hasher for `context`, with its stat cache loaded from the kiln root.
    pub fn new(
        context: &'a BuildContext,
        root: &std::path::Path,
    ) -> Result<Self, kiln_cache::Error> {
        let stat = StatCache::load(root, context.root())?;
        Ok(ContextHasher { context, stat: Mutex::new(stat) })
    }

    /// The context this hasher reads.
    pub fn context(&self) -> &'a BuildContext {
        self.context
    }

    /// The digest of `items` in order; files' contents are digested (in parallel, through the
    /// stat cache) and added to their `detail`.
    pub fn digest_items(&self, items: Vec<HashItem>) -> Result<Digest, ContextError> {
        let mut files = Vec::new();
        let mut list: Vec<Item> = Vec::with_capacity(items.len());
        for (i, h) in items.into_iter().enumerate() {
            if let Some((path, meta)) = h.file {
                files.push((i, path, meta));
            }
            list.push(Item { path: h.path, kind: h.kind, mode: h.mode, detail: h.detail });
        }
        let digests = self.file_digests(&files)?;
        for ((index, _, _), digest) in files.iter().zip(digests) {
            list[*index].detail.push_str(&digest.to_string());
        }
        Ok(combine(&list))
    }

    /// The digest of everything `sources` (COPY source patterns) select: paths as they will be
    /// copied, file types, permission bits, contents and link targets.
    pub fn digest(&self, sources: &[String]) -> Result<Digest, ContextError> {
        let mut items: Vec<Item> = Vec::new();
        let mut files: Vec<(usize, PathBuf, std::fs::Metadata)> = Vec::new();
        for (i, pattern) in sources.iter().enumerate() {
            for entry in self.context.resolve_sources(pattern)? {
                let prefix = format!("{i}:{}", entry.rel_path);
                let mode = entry.metadata.permissions().mode() & 0o7777;
                if entry.is_dir {
                    items.push(Item {
                        path: prefix.clone(),
                        kind: "dir",
                        mode,
                        detail: String::new(),
                    });
                    for w in self.context.walk(&entry)? {
                        let path = format!("{prefix}/{}", w.rel_to_source);
                        let mode = w.metadata.permissions().mode() & 0o7777;
                        if w.file_type.is_dir() {
                            items.push(Item { path, kind: "dir", mode, detail: String::new() });
                        } else if w.file_type.is_symlink() {
                            let target = std::fs::read_link(&w.abs_path)
                                .map_err(|e| io_error(&w.abs_path, e))?;
                            let detail = target.to_string_lossy().into_owned();
                            items.push(Item { path, kind: "symlink", mode: 0o777, detail });
                        } else if w.file_type.is_file() {
                            files.push((items.len(), w.abs_path.clone(), w.metadata.clone()));
                            items.push(Item { path, kind: "file", mode, detail: String::new() });
                        }
                    }
                } else {
                    files.push((items.len(), entry.abs_path.clone(), entry.metadata.clone()));
                    items.push(Item { path: prefix, kind: "file", mode, detail: String::new() });
                }
            }
        }
        let digests = self.file_digests(&files)?;
        for ((index, _, _), digest) in files.iter().zip(digests) {
            items[*index].detail = digest.to_string();
        }
        Ok(combine(&items))
    }

    /// Content digests of `files`: from the stat cache when unchanged, else read (in parallel).
    fn file_digests(
        &self,
        files: &[(usize, PathBuf, std::fs::Metadata)],
    ) -> Result<Vec<Digest>, ContextError> {
        let cached: Vec<Option<Digest>> = {
            let stat = self.stat.lock().unwrap_or_else(|p| p.into_inner());
            files.iter().map(|(_, path, meta)| stat.lookup(path, meta)).collect()
        };
        let computed: Vec<Result<Digest, ContextError>> = files
            .par_iter()
            .zip(cached.par_iter())
            .map(|((_, path, _), hit)| match hit {
                Some(d) => Ok(d.clone()),
                None => hash_file(path),
            })
            .collect();
        let mut out = Vec::with_capacity(files.len());
        let mut stat = self.stat.lock().unwrap_or_else(|p| p.into_inner());
        for (((_, path, meta), hit), result) in files.iter().zip(&cached).zip(computed) {
            let digest = result?;
            if hit.is_none() {
                stat.insert(path.clone(), meta, digest.clone());
            }
            out.push(digest);
        }
        Ok(out)
    }

    /// Writes the stat cache back (best effort: a failure only costs re-hashing next time).
    pub fn save(&self) {
        let mut stat = self.stat.lock().unwrap_or_else(|p| p.into_inner());
        let _ = stat.save();
    }
}

/// One digest of a list of items: length-prefixed fields, so no two different lists hash alike.
fn combine(items: &[Item]) -> Digest {
    let mut d = Digester::new();
    for item in items {
        for field in [item.path.as_str(), item.kind, &format!("{:o}", item.mode), &item.detail] {
            d.update(&(field.len() as u64).to_le_bytes());
            d.update(field.as_bytes());
        }
    }
    d.finish()
}

fn io_error(path: &std::path::Path, source: std::io::Error) -> ContextError {
    ContextError::Io { path: path.to_path_buf(), source }
}

/// sha256 of a file's content, streamed. Opened without following a symlink and without
/// blocking (a named pipe put in its place would otherwise wait for a writer forever); anything
/// but a regular file is an error.
fn hash_file(path: &std::path::Path) -> Result<Digest, ContextError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    if !meta.is_file() {
        let e = std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file");
        return Err(io_error(path, e));
    }
    let mut writer = kiln_cache::digest::HashingWriter::new(std::io::sink());
    std::io::copy(&mut file, &mut writer).map_err(|e| io_error(path, e))?;
    Ok(writer.finish().0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_with(files: &[(&str, &str)]) -> (tempfile::TempDir, tempfile::TempDir) {
        let ctx = tempfile::tempdir().unwrap();
        for (p, c) in files {
            let path = ctx.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, c).unwrap();
        }
        (ctx, tempfile::tempdir().unwrap())
    }

    #[test]
    fn content_not_mtime_decides_the_digest() {
        let (ctx, root) = ctx_with(&[("a/x", "1"), ("a/y", "2"), ("b", "3")]);
        let context = BuildContext::open(ctx.path(), None).unwrap();
        let hasher = ContextHasher::new(&context, root.path()).unwrap();
        let srcs = vec!["a".to_string()];
        let first = hasher.digest(&srcs).unwrap();
        // Touch without change: same digest.
        std::fs::write(ctx.path().join("a/x"), "1").unwrap();
        assert_eq!(hasher.digest(&srcs).unwrap(), first);
        // Change content: different digest.
        std::fs::write(ctx.path().join("a/x"), "changed").unwrap();
        assert_ne!(hasher.digest(&srcs).unwrap(), first);
        // A file outside the sources does not matter.
        std::fs::write(ctx.path().join("a/x"), "1").unwrap();
        std::fs::write(ctx.path().join("b"), "other").unwrap();
        assert_eq!(hasher.digest(&srcs).unwrap(), first);
        // Mode bits matter.
        std::fs::set_permissions(ctx.path().join("a/y"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        assert_ne!(hasher.digest(&srcs).unwrap(), first);
    }

    #[test]
    fn keys_chain_through_parents_and_inputs() {
        let a = step(&scratch(), json!({"copy": "x"}), &[]);
        let b = step(&scratch(), json!({"copy": "y"}), &[]);
        assert_ne!(a, b);
        assert_ne!(step(&a, json!({}), &[]), step(&b, json!({}), &[]));
        assert_ne!(step(&a, json!({}), std::slice::from_ref(&b)), step(&a, json!({}), &[]));
        assert_eq!(step(&a, json!({"k": 1, "j": 2}), &[]), step(&a, json!({"j": 2, "k": 1}), &[]));
        assert_ne!(image(&a), scratch());
    }
}
