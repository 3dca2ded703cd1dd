//! The solver's part for named build contexts (`--build-context`), `ADD` (keys with fetched
//! sources, planning) and `--link` keys.

use kiln_cache::digest::Digest;
use kiln_cache::index::CacheRecord;
use kiln_cache::layer::LayerEntry;
use kiln_frontend::graph::{AddOp, AddSource, CopyOp, CopySource, Op};
use serde_json::json;

use super::{Solver, StageResult};
use crate::context::BuildContext;
use crate::fsview::LayeredView;
use crate::image::{History, rfc3339};
use crate::key::{self, ContextHasher};
use crate::ops::add::{AddInputs, Fetched, local_digest, plan_add as ops_plan_add};
use crate::ops::copy::{CopyFrom, CopyInputs, Hashed, context_digest, plan_copy};
use crate::users::resolve_owner;

/// Named build contexts (`--build-context`), `ADD`, and `--link` (kept apart from the rest
/// of the solver).
impl Solver<'_> {
    /// The state `FROM NAME` starts from when NAME is a named context of files: its files as
    /// one layer (cached by their content), owned by root, and no history but this layer's.
    pub(super) fn named_base(&self, name: &str) -> Result<StageResult, String> {
        let hasher = self.sources.named_hasher(name).ok_or_else(|| unknown_context(name))?;
        let sources = vec![".".to_string()];
        let hashed = Hashed::default();
        let digest = context_digest(hasher, &sources, false, &[], Some(&hashed))
            .map_err(|e| e.to_string())?;
        let key = key::step(&key::scratch(), json!({ "named-context-base": name }), &[digest]);
        let index = &self.builder.index;
        let blobs = self.builder.store().blobs();
        let record = match index.get(&key, blobs).map_err(|e| e.to_string())? {
            Some(r) => r,
            None => {
                let _lock = index.lock(&key).map_err(|e| e.to_string())?;
                match index.get(&key, blobs).map_err(|e| e.to_string())? {
                    Some(r) => r,
                    None => {
                        let op = CopyOp {
                            from: CopySource::Named(name.to_string()),
                            sources,
                            inline: Vec::new(),
                            dest: "/".to_string(),
                            dest_is_dir: true,
                            chown: None,
                            chmod: None,
                            link: false,
                            parents: false,
                            exclude: Vec::new(),
                            chmod_mode: None,
                        };
                        let empty = LayeredView::default();
                        let inputs = CopyInputs {
                            from: CopyFrom::Context(hasher.context()),
                            dest_view: &empty,
                            owner: None,
                            now: self.timestamp(None),
                            hashed: Some(&hashed),
                        };
                        let entries = plan_copy(&op, &inputs).map_err(|e| e.to_string())?;
                        let record = CacheRecord {
                            layer: self.write(&entries)?,
                            created: self.options.source_date_epoch.unwrap_or(self.options.now),
                            description: format!("FROM {name} (build context)"),
                        };
                        index.put(&key, &record).map_err(|e| e.to_string())?;
                        record
                    }
                }
            }
        };
        let created = self.timestamp(Some(record.created));
        let history = History {
            created: Some(rfc3339(created)),
            created_by: Some(format!("FROM {name} (build context)")),
            author: None,
            comment: None,
            empty_layer: record.layer.is_none(),
        };
        Ok(StageResult {
            key,
            changed_at: record.layer.as_ref().map(|_| record.created),
            layers: record.layer.into_iter().collect(),
            history: vec![history],
            author: None,
            records: Vec::new(),
        })
    }

    /// The content digest of what `copy` reads from the named context `name`.
    pub(super) fn named_digest(
        &self,
        name: &str,
        copy: &CopyOp,
        keep: &Hashed,
    ) -> Result<Digest, String> {
        let hasher = self.sources.named_hasher(name).ok_or_else(|| unknown_context(name))?;
        copy_digest(hasher, copy, keep)
    }

    /// The named context `name`.
    pub(super) fn named_context(&self, name: &str) -> Result<&BuildContext, String> {
        self.sources.named(name).ok_or_else(|| unknown_context(name))
    }

    /// The key of `ADD`: the op with every flag, and for its sources the content of the local
    /// ones, each download's checksum or content, each git commit.
    pub(super) fn add_key(
        &self,
        add: &AddOp,
        parent: &Digest,
        keep: &Hashed,
    ) -> Result<Digest, String> {
        let mut inputs = Vec::new();
        if add.sources.iter().any(|s| matches!(s, AddSource::Local { .. })) {
            inputs.push(local_digest(self.hasher, add, Some(keep)).map_err(|e| e.to_string())?);
        }
        for source in &add.sources {
            match source {
                AddSource::Local { .. } => {}
                AddSource::Url { url, checksum, .. } => {
                    inputs.push(self.sources.url_key(url, checksum.as_deref())?);
                }
                AddSource::Git { remote, reference, subdir, keep_git_dir } => {
                    let checkout = self.sources.git(remote, reference.as_deref())?;
                    inputs.push(key::git_source(
                        &checkout.commit,
                        subdir.as_deref(),
                        *keep_git_dir,
                    ));
                }
            }
        }
        let op = serde_json::to_value(add).map_err(|e| e.to_string())?;
        let parent = key_parent(add.link, add.chown.as_deref(), parent);
        Ok(key::step(&parent, json!({ "add": op }), &inputs))
    }

    /// The layer entries of `ADD` on `dest_view`.
    pub(super) fn plan_add(
        &self,
        add: &AddOp,
        dest_view: &LayeredView,
        hashed: &Hashed,
    ) -> Result<Vec<LayerEntry>, String> {
        let owner = match &add.chown {
            Some(spec) => {
                Some(resolve_owner(spec, dest_view).map_err(|e| format!("--chown: {e}"))?)
            }
            None => None,
        };
        let mut fetched = Vec::with_capacity(add.sources.len());
        for source in &add.sources {
            fetched.push(match source {
                AddSource::Local { .. } => Fetched::Local,
                AddSource::Url { url, checksum, .. } => {
                    Fetched::Url(self.sources.download(url, checksum.as_deref())?)
                }
                AddSource::Git { remote, reference, .. } => {
                    Fetched::Git(self.sources.git(remote, reference.as_deref())?)
                }
            });
        }
        let empty = LayeredView::default();
        let inputs = AddInputs {
            context: self.context,
            dest_view: if add.link { &empty } else { dest_view },
            owner,
            now: self.timestamp(None),
            fetched: &fetched,
            scratch: self.sources.scratch(),
            hashed: Some(hashed),
        };
        ops_plan_add(add, &inputs).map_err(|e| e.to_string())
    }
}

fn unknown_context(name: &str) -> String {
    format!("build context {name:?} was not given (--build-context {name}=...)")
}

/// The content digest of what a `COPY` reads from the context of `hasher` (what was read
/// kept in `keep` for the step's plan).
pub(super) fn copy_digest(
    hasher: &ContextHasher<'_>,
    copy: &CopyOp,
    keep: &Hashed,
) -> Result<Digest, String> {
    context_digest(hasher, &copy.sources, copy.parents, &copy.exclude, Some(keep))
        .map_err(|e| e.to_string())
}

/// The parent that goes into a step's key: for `--link`, a constant (the layer does not
/// depend on the stage), unless `--chown` names a user or group, whose ids come from the
/// stage's `/etc/passwd` and `/etc/group`.
pub(super) fn key_parent(link: bool, chown: Option<&str>, parent: &Digest) -> Digest {
    let numeric = chown.is_none_or(|c| {
        c.split(':').all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
    });
    if link && numeric { key::link_base() } else { parent.clone() }
}

/// The key of the state after `op` ran with key `key` on the state `parent`: the op's key,
/// except for a `--link` layer keyed without its parent, which is applied on it.
pub(super) fn state_key_after(op: &Op, parent: &Digest, key: Digest) -> Digest {
    let link = match op {
        Op::Copy(c) => c.link,
        Op::Add(a) => a.link,
        _ => false,
    };
    if link { key::after_link(parent, &key) } else { key }
}
