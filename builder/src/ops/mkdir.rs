//! `WORKDIR`: create the directory (and its parents) when it does not exist.

use kiln_cache::layer::LayerEntry;

use crate::fsview::LayeredView;
use crate::ops::copy::{CopyError, add_directory_chain};
use crate::users::Owner;

/// Entries that create `path` in `view`: empty when it already is a directory. Parents that
/// exist appear with their current metadata (as an overlay diff would show them).
pub fn plan_mkdir(
    path: &str,
    view: &LayeredView,
    owner: Owner,
    now: i64,
) -> Result<Vec<LayerEntry>, CopyError> {
    let io = |source| CopyError::Io { what: path.to_string(), source };
    let resolved = view.resolve(path, true).map_err(io)?;
    if let Some(existing) = view.lookup(&resolved).map_err(io)? {
        if existing.metadata.is_dir() {
            return Ok(Vec::new());
        }
        return Err(CopyError::NotADirectory { dest: path.to_string(), existing: resolved });
    }
    let mut entries = crate::ops::place::Entries::default();
    add_directory_chain(&mut entries, view, &resolved, owner, now)?;
    Ok(entries.into_vec())
}
