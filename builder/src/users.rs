//! `user[:group]` → numeric ids, through a stage's `/etc/passwd` and `/etc/group`.

use crate::fsview::LayeredView;

/// Numeric owner of files written by an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Why a `user[:group]` could not be turned into ids.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// A user name that the stage's `/etc/passwd` does not list.
    #[error(
        "user {name:?} not found in /etc/passwd of the image (use a numeric id, or create the user first)"
    )]
    UnknownUser {
        /// The name.
        name: String,
    },
    /// A group name that the stage's `/etc/group` does not list.
    #[error(
        "group {name:?} not found in /etc/group of the image (use a numeric id, or create the group first)"
    )]
    UnknownGroup {
        /// The name.
        name: String,
    },
    /// An empty user or group part.
    #[error("invalid owner {spec:?}: expected user[:group], names or numeric ids")]
    Invalid {
        /// The spec as given.
        spec: String,
    },
    /// Reading `/etc/passwd` or `/etc/group` failed.
    #[error("reading {path} of the image: {source}")]
    Read {
        /// Which file.
        path: &'static str,
        /// The cause.
        source: std::io::Error,
    },
}

/// Resolves `spec` (`user`, `user:group`, ids or names) against `view`'s account files.
///
/// As Docker documents: a user without a group gets the user's numeric id as group id when the
/// user is numeric, and the user's primary group when it is a name. Unlike BuildKit, an unknown
/// name is an error rather than silently root.
pub fn resolve_owner(spec: &str, view: &LayeredView) -> Result<Owner, UserError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() || group.is_some_and(str::is_empty) {
        return Err(UserError::Invalid { spec: spec.to_string() });
    }
    let (uid, primary_gid) = match user.parse::<u32>() {
        Ok(id) => (id, id),
        Err(_) => {
            let passwd = read(view, "/etc/passwd")?;
            find_account(&passwd, user, 2, Some(3))
                .ok_or_else(|| UserError::UnknownUser { name: user.to_string() })?
        }
    };
    let gid = match group {
        None => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(id) => id,
            Err(_) => {
                let groups = read(view, "/etc/group")?;
                find_account(&groups, g, 2, None)
                    .map(|(gid, _)| gid)
                    .ok_or_else(|| UserError::UnknownGroup { name: g.to_string() })?
            }
        },
    };
    Ok(Owner { uid, gid })
}

/// The supplementary groups of user `name` (or numeric `uid`): every group of the stage's
/// `/etc/group` that lists the user as a member, besides its primary group `gid`, as Docker
/// gives a container process.
pub fn supplementary_groups(
    name: &str,
    uid: u32,
    gid: u32,
    view: &LayeredView,
) -> Result<Vec<u32>, UserError> {
    // A numeric user is looked up by its name in /etc/passwd, if it has one.
    let user_name = if name.parse::<u32>().is_ok() {
        let passwd = read(view, "/etc/passwd")?;
        passwd
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.get(2).and_then(|id| id.trim().parse::<u32>().ok()) == Some(uid))
                    .then(|| f[0].to_string())
            })
            .unwrap_or_default()
    } else {
        name.to_string()
    };
    if user_name.is_empty() {
        return Ok(Vec::new());
    }
    let groups = read(view, "/etc/group")?;
    let mut out: Vec<u32> = groups
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let id = f.get(2)?.trim().parse::<u32>().ok()?;
            let members = f.get(3)?;
            members.split(',').any(|m| m.trim() == user_name).then_some(id)
        })
        .filter(|id| *id != gid)
        .collect();
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn read(view: &LayeredView, path: &'static str) -> Result<String, UserError> {
    let bytes = view.read_file(path).map_err(|source| UserError::Read { path, source })?;
    Ok(String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned())
}

/// Finds `name` in a colon-separated account file; returns field `id_field` and, if asked,
/// field `second_field`, both numeric.
fn find_account(
    text: &str,
    name: &str,
    id_field: usize,
    second_field: Option<usize>,
) -> Option<(u32, u32)> {
    text.lines().filter(|l| !l.trim_start().starts_with('#')).find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.first() != Some(&name) {
            return None;
        }
        let id = fields.get(id_field)?.trim().parse().ok()?;
        let second = match second_field {
            Some(i) => fields.get(i)?.trim().parse().ok()?,
            None => id,
        };
        Some((id, second))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view_with(passwd: &str, group: &str) -> (tempfile::TempDir, LayeredView) {
        let t = tempfile::tempdir().unwrap();
        let etc = t.path().join("l/etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("passwd"), passwd).unwrap();
        std::fs::write(etc.join("group"), group).unwrap();
        let view = LayeredView::new([t.path().join("l")]);
        (t, view)
    }

    #[test]
    fn resolves_names_and_ids_like_docker() {
        let (_t, v) = view_with(
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
            "root:x:0:\nstaff:x:50:\napp:x:1001:\n",
        );
        let r = |s: &str| resolve_owner(s, &v).map(|o| (o.uid, o.gid));
        assert_eq!(r("app").unwrap(), (1000, 1001));
        assert_eq!(r("app:staff").unwrap(), (1000, 50));
        assert_eq!(r("10").unwrap(), (10, 10));
        assert_eq!(r("10:20").unwrap(), (10, 20));
        assert_eq!(r("10:staff").unwrap(), (10, 50));
        assert_eq!(r("app:7").unwrap(), (1000, 7));
        assert_eq!(
            r("nobody").unwrap_err().to_string(),
            "user \"nobody\" not found in /etc/passwd of the image (use a numeric id, or create the user first)"
        );
        assert!(matches!(r("app:nogroup"), Err(UserError::UnknownGroup { .. })));
        assert!(matches!(r(":1"), Err(UserError::Invalid { .. })));
    }

    #[test]
    fn supplementary_groups_come_from_group_membership() {
        let (_t, v) = view_with(
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
            "root:x:0:\nwheel:x:10:root,app\naudio:x:29:app\napp:x:1001:app\n",
        );
        assert_eq!(supplementary_groups("app", 1000, 1001, &v).unwrap(), [10, 29]);
        assert_eq!(supplementary_groups("1000", 1000, 1001, &v).unwrap(), [10, 29]);
        assert_eq!(supplementary_groups("0", 0, 0, &v).unwrap(), [10]);
        assert!(supplementary_groups("5", 5, 5, &v).unwrap().is_empty());
    }

    #[test]
    fn numeric_ids_need_no_account_files() {
        let v = LayeredView::new(Vec::new());
        assert_eq!(resolve_owner("5:6", &v).unwrap(), Owner { uid: 5, gid: 6 });
        assert!(matches!(resolve_owner("app", &v), Err(UserError::UnknownUser { .. })));
    }
}
