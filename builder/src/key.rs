//! Cache keys: what exactly produced a filesystem state.
//!
//! A key is the sha256 of a canonical JSON document naming the op (after expansion, with every
//! flag), the key of the state it builds on, the keys of its other inputs (`COPY --from`), and
//! for context sources the digest of the content it reads. File modification times are not part
//! of it: a file touched but unchanged does not invalidate (as BuildKit). Bump [`KEY_VERSION`]
//! whenever what goes into a key or what an op produces changes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use kiln_cache::digest::{Digest, Digester};
use kiln_cache::layer::FileIdentity;
use kiln_cache::statcache::StatCache;
use rayon::prelude::*;
use serde_json::{Value, json};

use crate::context::{BuildContext, ContextError};
use crate::events::{Event, EventSink, Progress, ProgressState, Task};

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
    events: Option<&'a dyn EventSink>,
}

/// Below this many bytes to read, hashing is not reported (it takes milliseconds).
const REPORT_MIN: u64 = 8 << 20;

/// Bytes between two progress reports of hashing.
const REPORT_STEP: u64 = 4 << 20;

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
    /// A file on disk whose content digest is added (through the stat cache), with what it
    /// must still be when it is read.
    pub file: Option<(PathBuf, FileIdentity)>,
}

impl HashItem {
    /// An item without file content.
    pub fn new(path: String, kind: &'static str, mode: u32, detail: String) -> HashItem {
        HashItem { path, kind, mode, detail, file: None }
    }
}

/// The digest of a list of items, fed one at a time ([`ItemDigester::add`]): length-prefixed
/// fields, so no two different lists hash alike.
pub struct ItemDigester {
    d: Digester,
}

impl Default for ItemDigester {
    fn default() -> Self {
        ItemDigester { d: Digester::new() }
    }
}

impl ItemDigester {
    /// Adds one item: where it lands, its kind, permission bits and what else identifies it
    /// (for a file, its content digest).
    pub fn add(&mut self, path: &str, kind: &str, mode: u32, detail: &str) {
        for field in [path, kind, &format!("{mode:o}"), detail] {
            self.d.update(&(field.len() as u64).to_le_bytes());
            self.d.update(field.as_bytes());
        }
    }

    /// The digest of the items added.
    pub fn finish(self) -> Digest {
        self.d.finish()
    }
}

impl<'a> ContextHasher<'a> {
    /// A hasher for `context`, with its stat cache loaded from the kiln root.
    pub fn new(
        context: &'a BuildContext,
        root: &std::path::Path,
    ) -> Result<Self, kiln_cache::Error> {
        let stat = StatCache::load(root, context.root())?;
        Ok(ContextHasher { context, stat: Mutex::new(stat), events: None })
    }

    /// Reports the bytes read to hash files (when there are many) to `events`, as
    /// [`Task::Hash`] progress of `context`.
    pub fn with_events(mut self, events: &'a dyn EventSink) -> Self {
        self.events = Some(events);
        self
    }

    /// The context this hasher reads.
    pub fn context(&self) -> &'a BuildContext {
        self.context
    }

    /// The digest of `items` in order; files' contents are digested (in parallel, through the
    /// stat cache) and added to their `detail`.
    pub fn digest_items(&self, items: Vec<HashItem>) -> Result<Digest, ContextError> {
        let files: Vec<(&Path, &FileIdentity)> =
            items.iter().filter_map(|h| h.file.as_ref().map(|(p, id)| (p.as_path(), id))).collect();
        let mut digests = self.file_digests(&files)?.into_iter();
        let mut d = ItemDigester::default();
        for h in &items {
            let mut detail = h.detail.clone();
            if h.file.is_some() {
                let digest = digests.next().ok_or_else(|| missing_digest(&h.path))?;
                detail.push_str(&digest.to_string());
            }
            d.add(&h.path, h.kind, h.mode, &detail);
        }
        Ok(d.finish())
    }

    /// The digest of everything `sources` (COPY source patterns) select: paths as they will be
    /// copied, file types, permission bits, contents and link targets.
    pub fn digest(&self, sources: &[String]) -> Result<Digest, ContextError> {
        let mut items: Vec<HashItem> = Vec::new();
        for (i, pattern) in sources.iter().enumerate() {
            for entry in self.context.resolve_sources(pattern)? {
                let prefix = format!("{i}:{}", entry.rel_path);
                let mode = entry.metadata.permissions().mode() & 0o7777;
                if !entry.is_dir {
                    let mut item = HashItem::new(prefix, "file", mode, String::new());
                    item.file = Some((entry.abs_path.clone(), FileIdentity::of(&entry.metadata)));
                    items.push(item);
                    continue;
                }
                items.push(HashItem::new(prefix.clone(), "dir", mode, String::new()));
                for w in self.context.walk(&entry)? {
                    let path = format!("{prefix}/{}", w.rel_to_source);
                    let mode = w.metadata.permissions().mode() & 0o7777;
                    if w.file_type.is_dir() {
                        items.push(HashItem::new(path, "dir", mode, String::new()));
                    } else if w.file_type.is_symlink() {
                        let target = std::fs::read_link(&w.abs_path)
                            .map_err(|e| io_error(&w.abs_path, e))?;
                        let detail = target.to_string_lossy().into_owned();
                        items.push(HashItem::new(path, "symlink", 0o777, detail));
                    } else if w.file_type.is_file() {
                        let mut item = HashItem::new(path, "file", mode, String::new());
                        item.file = Some((w.abs_path, FileIdentity::of(&w.metadata)));
                        items.push(item);
                    }
                }
            }
        }
        self.digest_items(items)
    }

    /// Content digests of `files`, each of which must still be the file its identity
    /// describes (else [`ContextError::Changed`]): from the stat cache when it knows that
    /// identity, else read (in parallel, the bytes read reported as progress when there are
    /// many). Empty files are not opened.
    pub fn file_digests(
        &self,
        files: &[(&Path, &FileIdentity)],
    ) -> Result<Vec<Digest>, ContextError> {
        let known: Vec<Option<Digest>> = {
            let stat = self.stat.lock().unwrap_or_else(|p| p.into_inner());
            files
                .iter()
                .map(|(path, id)| match id.size {
                    0 => Some(empty_digest()),
                    _ => stat.lookup(path, id),
                })
                .collect()
        };
        let read: Vec<bool> = known.iter().map(Option::is_none).collect();
        let total: u64 =
            files.iter().zip(&known).filter(|(_, k)| k.is_none()).map(|((_, id), _)| id.size).sum();
        let progress = self.events.filter(|_| total >= REPORT_MIN).map(|events| Reporter {
            events,
            total,
            done: AtomicU64::new(0),
            last: AtomicU64::new(0),
        });
        if let Some(p) = &progress {
            p.report(0, ProgressState::Running);
        }
        let digests: Vec<Digest> = files
            .par_iter()
            .zip(known)
            .map(|((path, id), known)| match known {
                Some(digest) => Ok(digest),
                None => {
                    let digest = hash_file(path, id)?;
                    if let Some(p) = &progress {
                        p.add(id.size);
                    }
                    Ok(digest)
                }
            })
            .collect::<Result<_, ContextError>>()?;
        if let Some(p) = &progress {
            p.report(total, ProgressState::Done);
        }
        let mut stat = self.stat.lock().unwrap_or_else(|p| p.into_inner());
        for (((path, id), digest), read) in files.iter().zip(&digests).zip(read) {
            if read {
                stat.insert(path, id, digest.clone());
            }
        }
        Ok(digests)
    }

    /// Writes the stat cache back (best effort: a failure only costs re-hashing next time).
    pub fn save(&self) {
        let mut stat = self.stat.lock().unwrap_or_else(|p| p.into_inner());
        let _ = stat.save();
    }
}

/// Hashing progress of one [`ContextHasher::file_digests`] call.
struct Reporter<'a> {
    events: &'a dyn EventSink,
    total: u64,
    done: AtomicU64,
    last: AtomicU64,
}

impl Reporter<'_> {
    fn report(&self, current: u64, state: ProgressState) {
        self.events.emit(Event::Progress(Progress {
            vertex: None,
            task: Task::Hash,
            id: "context".to_string(),
            current,
            total: self.total,
            state,
        }));
    }

    /// `bytes` more were read; reported when it moved by a step.
    fn add(&self, bytes: u64) {
        let done = self.done.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let last = self.last.load(Ordering::Relaxed);
        if done >= last + REPORT_STEP
            && done < self.total
            && self.last.compare_exchange(last, done, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            self.report(done, ProgressState::Running);
        }
    }
}

/// sha256 of nothing.
fn empty_digest() -> Digest {
    Digest::of_bytes(b"")
}

/// An internal inconsistency (a file without its digest), reported rather than panicking.
fn missing_digest(what: &str) -> ContextError {
    let e = std::io::Error::other("internal error: no content digest was computed");
    io_error(Path::new(what), e)
}

fn io_error(path: &std::path::Path, source: std::io::Error) -> ContextError {
    ContextError::Io { path: path.to_path_buf(), source }
}

/// sha256 of a file's content, streamed. Opened without following a symlink and without
/// blocking (a named pipe put in its place would otherwise wait for a writer forever); anything
/// but a regular file is an error, and so is a file that is not (before or after it is read)
/// the one `expect` describes: the digest must be that of the file the walk listed, whose
/// identity the layer writer checks again when it copies it.
fn hash_file(path: &Path, expect: &FileIdentity) -> Result<Digest, ContextError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
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
    let changed = || ContextError::Changed { path: path.to_path_buf() };
    if FileIdentity::of(&meta) != *expect {
        return Err(changed());
    }
    let mut writer = kiln_cache::digest::HashingWriter::new(std::io::sink());
    let copied = std::io::copy(&mut file, &mut writer).map_err(|e| io_error(path, e))?;
    let after = file.metadata().map_err(|e| io_error(path, e))?;
    let same = expect.unchanged_since_open(meta.nlink(), &FileIdentity::of(&after), after.nlink());
    if copied != expect.size || !same {
        return Err(changed());
    }
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
