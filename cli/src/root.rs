//! Where the kiln root is: `--root`, `$KILN_ROOT`, `$XDG_DATA_HOME/kiln` (user) or `/var/lib/kiln`.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// The kiln root directory to use, created `0700` for a non-root user (its snapshots hold
/// files of every image built, some readable only by their owner inside the image).
pub fn kiln_root(flag: Option<&Path>) -> Result<PathBuf> {
    let root = choose(flag)?;
    if !root.exists() && !rustix_is_root() {
        std::fs::create_dir_all(&root)?;
        std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    }
    Ok(root)
}

fn choose(flag: Option<&Path>) -> Result<PathBuf> {
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

/// Root of the machine: uid 0 that is uid 0 outside too. A rootless kiln runs as uid 0 of its
/// own user namespace, which must not send it to `/var/lib/kiln`.
fn rustix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid_zero = unsafe { libc::geteuid() == 0 };
    euid_zero
        && maps_root_to_root(&std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default())
}

/// Whether a `uid_map` maps uid 0 to uid 0 of the parent namespace.
fn maps_root_to_root(uid_map: &str) -> bool {
    uid_map.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.first() == Some(&"0") && fields.get(1) == Some(&"0")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_identity_mapped_root_is_root() {
        assert!(maps_root_to_root("         0          0 4294967295\n"));
        assert!(!maps_root_to_root("         0       1000          1\n"));
        assert!(!maps_root_to_root("0 1000 1\n1 100000 65536\n"));
        assert!(!maps_root_to_root(""));
    }
}
