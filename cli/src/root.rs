//! Where the kiln root is: `--root`, `$KILN_ROOT`, `$XDG_DATA_HOME/kiln` (user) or `/var/lib/kiln`.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// The kiln root directory to use.
pub fn kiln_root(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir.to_path_buf());
    }
    if let Some(dir) = std::env::var_os("KILN_ROOT").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if rustix_is_root() {
        return Ok(PathBuf::from("/var/lib/kiln"));
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir).join("kiln"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/kiln")),
        None => bail!("cannot choose a kiln root: set --root, KILN_ROOT or HOME"),
    }
}

fn rustix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
