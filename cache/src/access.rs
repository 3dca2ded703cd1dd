//! Saying plainly that a kiln root belongs to someone else, instead of a bare "Permission denied"
//! on whatever file kiln happened to touch first.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::Error;

/// `err`, or [`Error::RootNotYours`] wrapping it when it is a permission error and `root` is
/// owned by another user than the one kiln runs as.
pub(crate) fn explain(root: &Path, err: Error) -> Error {
    let denied = matches!(&err, Error::Io { source, .. }
        if source.kind() == std::io::ErrorKind::PermissionDenied);
    if !denied {
        return err;
    }
    let Ok(meta) = std::fs::metadata(root) else { return err };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() == me {
        return err;
    }
    let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let overflow = std::fs::read_to_string("/proc/sys/kernel/overflowuid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(65534);
    let owner = match owner_outside(&uid_map, meta.uid(), overflow) {
        Some(uid) => format!("uid {uid}"),
        None => "another user".to_string(),
    };
    Error::RootNotYours { root: root.to_path_buf(), owner, source: Box::new(err) }
}

/// The owner of a file as the initial namespace sees it, given the uid this process's user
/// namespace shows (`overflow` stands for an owner the namespace does not map).
fn owner_outside(uid_map: &str, uid: u32, overflow: u32) -> Option<u64> {
    let outside = outside_uid(uid_map, uid)?;
    (uid != overflow || outside == u64::from(uid)).then_some(outside)
}

/// The uid of the initial namespace that `uid` (of this process's user namespace) maps to.
fn outside_uid(uid_map: &str, uid: u32) -> Option<u64> {
    uid_map.lines().find_map(|line| {
        let f: Vec<u64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        let (inside, outside, count) = (*f.first()?, *f.get(1)?, *f.get(2)?);
        let uid = u64::from(uid);
        (inside..inside + count).contains(&uid).then(|| outside + (uid - inside))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_map_to_the_initial_namespace() {
        let identity = "         0          0 4294967295\n";
        assert_eq!(outside_uid(identity, 0), Some(0));
        assert_eq!(outside_uid(identity, 1002), Some(1002));
        let rootless = "0 1002 1\n1 100000 65536\n";
        assert_eq!(outside_uid(rootless, 0), Some(1002));
        assert_eq!(outside_uid(rootless, 5), Some(100004));
        assert_eq!(outside_uid(rootless, 65534), Some(165533));
        assert_eq!(outside_uid(rootless, 70000), None);
        // The overflow uid stands for an unmapped owner, except without a user namespace.
        assert_eq!(owner_outside(rootless, 65534, 65534), None);
        assert_eq!(owner_outside(rootless, 0, 65534), Some(1002));
        assert_eq!(owner_outside(identity, 65534, 65534), Some(65534));
    }

    #[test]
    fn only_permission_errors_on_a_root_of_another_user_are_explained() {
        let t = tempfile::tempdir().unwrap();
        let denied = || {
            Error::io(
                "open lock file",
                t.path().join("gc.lock"),
                std::io::Error::from_raw_os_error(libc::EACCES),
            )
        };
        // Our own root: the error stays as it is.
        assert!(matches!(explain(t.path(), denied()), Error::Io { .. }));
        let missing = Error::io("open", "/x", std::io::Error::from_raw_os_error(libc::ENOENT));
        assert!(matches!(explain(t.path(), missing), Error::Io { .. }));
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(t.path(), Some(4242), None).unwrap();
            let err = explain(t.path(), denied());
            assert!(matches!(err, Error::RootNotYours { .. }));
            assert!(
                err.to_string().starts_with(&format!(
                    "kiln root {} belongs to uid 4242, not to the user kiln runs as",
                    t.path().display()
                )),
                "{err}"
            );
        }
    }
}
