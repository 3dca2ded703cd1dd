//! Mounts made by the sandbox helper in the RUN's private mount namespace: the overlay root,
//! `/dev`, `/sys`, `/proc`, the `/etc` files and the spec's mounts. Every target inside the
//! root is resolved with `openat2(RESOLVE_IN_ROOT)` and mounted on through `/proc/self/fd/N`,
//! so symlinks in the image never lead a mount outside the root.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, fsconfig_create, fsconfig_set_flag,
    fsconfig_set_string, fsmount, fsopen, move_mount,
};

use super::private::Private;
use crate::sandbox::spec::{MountKind, SandboxMount};
use crate::sandbox::sys::{self, cstr};

/// Makes every mount of this namespace private, so nothing propagates back to the host.
pub(crate) fn make_all_private() -> io::Result<()> {
    sys::mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None)
}

/// Opens `path` (absolute, in the container) under `root` without leaving it.
pub(crate) fn open_in_root(root: &impl AsFd, path: &str) -> io::Result<OwnedFd> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(
            root,
            rel,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            // EAGAIN: a mount or rename anywhere on the system raced the scoped lookup (other
            // sandboxes mount all the time); the kernel asks the caller to try again.
            Err(rustix::io::Errno::AGAIN) if tries < 32 => tries += 1,
            other => return Ok(other?),
        }
    }
}

/// The magic `/proc/self/fd/N` path of `fd`, to mount on or from.
pub(crate) fn fd_path(fd: &impl AsRawFd) -> CString {
    // A decimal number never contains NUL.
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default()
}

/// Opens a directory (a host path) as an `O_PATH` descriptor.
pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?)
}

/// Mounts a kernel overlay of `lowers` (top first) on `target`, with `userxattr`,
/// `redirect_dir=nofollow` and `metacopy=off` (the upper dir then holds whole files and no
/// redirects, as the layer walker needs), and `volatile`: without it, unmounting syncs the
/// whole file system of the upper directory (~100 ms per RUN here); the diff is read back
/// through the page cache and the layer blob is fsynced when stored.
pub(crate) fn mount_overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> io::Result<()> {
    match mount_overlay_new_api(lowers, upper, work, target) {
        Ok(()) => Ok(()),
        // `lowerdir+` came with Linux 6.8; older kernels take the option string.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) => {
            mount_overlay_legacy(lowers, upper, work, target)
        }
        Err(e) => Err(e),
    }
}

fn mount_overlay_new_api(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> io::Result<()> {
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    for lower in lowers {
        fsconfig_set_string(&fs, "lowerdir+", lower.as_path())?;
    }
    fsconfig_set_string(&fs, "upperdir", upper)?;
    fsconfig_set_string(&fs, "workdir", work)?;
    fsconfig_set_flag(&fs, "userxattr")?;
    fsconfig_set_string(&fs, "redirect_dir", "nofollow")?;
    fsconfig_set_string(&fs, "metacopy", "off")?;
    fsconfig_set_flag(&fs, "volatile")?;
    fsconfig_create(&fs)?;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())?;
    let target_fd = open_dir(target)?;
    move_mount(
        &mnt,
        "",
        &target_fd,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )?;
    Ok(())
}

/// Escapes the characters overlay's option parser treats specially.
fn escape_overlay_path(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in path.as_os_str().as_bytes() {
        if matches!(b, b',' | b':' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// The longest option string `mount(2)` takes (one page, with room for the NUL).
const MAX_MOUNT_DATA: usize = 4095;

fn mount_overlay_legacy(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> io::Result<()> {
    let build = |lowers: &[Vec<u8>]| {
        let mut data = b"lowerdir=".to_vec();
        data.extend(lowers.join(&b':'));
        data.extend(b",upperdir=");
        data.extend(escape_overlay_path(upper));
        data.extend(b",workdir=");
        data.extend(escape_overlay_path(work));
        data.extend(b",userxattr,redirect_dir=nofollow,metacopy=off,volatile");
        data
    };
    let absolute: Vec<Vec<u8>> = lowers.iter().map(|l| escape_overlay_path(l)).collect();
    let mut data = build(&absolute);
    let mut restore_cwd = None;
    if data.len() > MAX_MOUNT_DATA {
        // Too long for one page: name the lowers relative to their common parent.
        let parent = common_parent(lowers).ok_or_else(|| too_many_layers(lowers.len()))?;
        let relative: Vec<Vec<u8>> = lowers
            .iter()
            .map(|l| escape_overlay_path(l.strip_prefix(&parent).unwrap_or(l)))
            .collect();
        data = build(&relative);
        if data.len() > MAX_MOUNT_DATA {
            return Err(too_many_layers(lowers.len()));
        }
        restore_cwd = Some(std::env::current_dir()?);
        std::env::set_current_dir(&parent)?;
    }
    let result = sys::mount(
        Some(c"overlay"),
        &sys::cpath(target)?,
        Some(c"overlay"),
        0,
        Some(&cstr(&data)?),
    );
    if let Some(dir) = restore_cwd {
        std::env::set_current_dir(dir)?;
    }
    result
}

fn too_many_layers(n: usize) -> io::Error {
    io::Error::other(format!(
        "{n} layers do not fit in one overlay mount on this kernel (Linux 6.8 lifts the limit)"
    ))
}

/// The deepest directory containing all of `paths`.
fn common_parent(paths: &[PathBuf]) -> Option<PathBuf> {
    let mut parent = paths.first()?.parent()?.to_path_buf();
    while !paths.iter().all(|p| p.starts_with(&parent)) {
        parent = parent.parent()?.to_path_buf();
    }
    Some(parent)
}

/// Bind-mounts the directory `target` onto itself so it is a mount point (for `pivot_root`).
pub(crate) fn bind_self(target: &Path) -> io::Result<()> {
    let t = sys::cpath(target)?;
    sys::mount(Some(&t), &t, None, libc::MS_BIND | libc::MS_REC, None)
}

/// Device nodes of the sandbox's `/dev`: name, major, minor.
const DEVICES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Makes the mount at `at` `nodev` (its other per-mount flags cleared: it is read-write,
/// suid allowed).
pub(crate) fn remount_nodev(at: &Path) -> io::Result<()> {
    let at = cstr(at.as_os_str().as_bytes())?;
    sys::mount(None, &at, None, libc::MS_REMOUNT | libc::MS_BIND | libc::MS_NODEV, None)
}

/// Mounts a fresh `/dev` (a `nodev` tmpfs) in `root`: the [`DEVICES`] bind-mounted from the
/// host (each bind its own mount, so usable), `/dev/pts`, `/dev/shm`, `/dev/mqueue` and the
/// usual symlinks. Device nodes a RUN step makes there cannot be opened.
pub(crate) fn mount_dev(root: &OwnedFd, gid5_mapped: bool) -> io::Result<()> {
    let target = open_in_root(root, "/dev")?;
    sys::mount(
        Some(c"tmpfs"),
        &fd_path(&target),
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_STRICTATIME,
        Some(c"mode=755,size=65536k"),
    )?;
    drop(target);
    let dev = rustix::fs::open(
        &*proc_join(root, "dev")?,
        OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let dev_path = fd_path(&dev);
    for (name, _, _) in DEVICES {
        let file = rustix::fs::openat(
            &dev,
            name,
            OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        )?;
        drop(file);
        let host = cstr(format!("/dev/{name}").as_bytes())?;
        let at = cstr(&[dev_path.as_bytes(), b"/", name.as_bytes()].concat())?;
        sys::mount(Some(&host), &at, None, libc::MS_BIND, None)?;
    }
    let sub = |name: &str| cstr(&[dev_path.as_bytes(), b"/", name.as_bytes()].concat());
    for dir in ["pts", "shm", "mqueue"] {
        rustix::fs::mkdirat(&dev, dir, Mode::from_raw_mode(0o755))?;
    }
    let pts_opts = if gid5_mapped {
        c"newinstance,ptmxmode=0666,mode=0620,gid=5"
    } else {
        c"newinstance,ptmxmode=0666,mode=0620"
    };
    sys::mount(
        Some(c"devpts"),
        &sub("pts")?,
        Some(c"devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some(pts_opts),
    )?;
    sys::mount(
        Some(c"shm"),
        &sub("shm")?,
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        Some(c"mode=1777,size=65536k"),
    )?;
    // mqueue needs the new IPC namespace; without it /dev/mqueue stays an empty directory.
    let _ = sys::mount(
        Some(c"mqueue"),
        &sub("mqueue")?,
        Some(c"mqueue"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    );
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
    ] {
        rustix::fs::symlinkat(to, &dev, link)?;
    }
    Ok(())
}

/// `/proc/self/fd/<root>/<rel>`: a path under the root descriptor for directories kiln itself
/// just created (no symlinks to fear).
fn proc_join(root: &OwnedFd, rel: &str) -> io::Result<CString> {
    cstr(&[fd_path(root).as_bytes(), b"/", rel.as_bytes()].concat())
}

/// Mounts `/sys` read-only: a new sysfs where allowed (real root, or a new network
/// namespace), else the host's, bound recursively and made read-only.
pub(crate) fn mount_sys(root: &OwnedFd) -> io::Result<()> {
    let target = open_in_root(root, "/sys")?;
    let at = fd_path(&target);
    let flags = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    if sys::mount(Some(c"sysfs"), &at, Some(c"sysfs"), flags, None).is_ok() {
        return Ok(());
    }
    sys::mount(Some(c"/sys"), &at, None, libc::MS_BIND | libc::MS_REC, None)?;
    let mounted = open_in_root(root, "/sys")?;
    make_readonly_recursive(&mounted)
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, MOUNT_ATTR_RDONLY)`; falls back to a
/// read-only remount of the top mount only on kernels without it.
fn make_readonly_recursive(fd: &OwnedFd) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 1;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let attr = MountAttr { attr_set: MOUNT_ATTR_RDONLY, attr_clr: 0, propagation: 0, userns_fd: 0 };
    // SAFETY: valid descriptor, empty path, valid struct pointer and size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r == 0 {
        return Ok(());
    }
    remount_readonly(&fd_path(fd))
}

/// Remounts the bind mount at `at` read-only, keeping the flags a user namespace may not drop.
pub(crate) fn remount_readonly(at: &CString) -> io::Result<()> {
    let st = rustix::fs::statvfs(at.as_c_str())?;
    let mut flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY;
    let kept = st.f_flag;
    for (st_flag, ms_flag) in [
        (rustix::fs::StatVfsMountFlags::NOSUID, libc::MS_NOSUID),
        (rustix::fs::StatVfsMountFlags::NODEV, libc::MS_NODEV),
        (rustix::fs::StatVfsMountFlags::NOEXEC, libc::MS_NOEXEC),
        (rustix::fs::StatVfsMountFlags::NOATIME, libc::MS_NOATIME),
        (rustix::fs::StatVfsMountFlags::NODIRATIME, libc::MS_NODIRATIME),
        (rustix::fs::StatVfsMountFlags::RELATIME, libc::MS_RELATIME),
    ] {
        if kept.contains(st_flag) {
            flags |= ms_flag;
        }
    }
    sys::mount(None, at, None, flags, None)
}

/// Paths of `/proc` hidden from the RUN (as Docker does), and those made read-only.
const PROC_MASKED_FILES: [&str; 6] =
    ["kcore", "keys", "latency_stats", "timer_list", "timer_stats", "sched_debug"];
const PROC_MASKED_DIRS: [&str; 2] = ["acpi", "scsi"];
const PROC_READONLY: [&str; 5] = ["bus", "fs", "irq", "sys", "sysrq-trigger"];

/// Mounts a new procfs on `/proc` of `root` (call it from inside the new PID namespace),
/// masking the kernel's sensitive files the way Docker's default spec does.
pub(crate) fn mount_proc(root: &OwnedFd) -> io::Result<()> {
    let target = open_in_root(root, "/proc")?;
    sys::mount(
        Some(c"proc"),
        &fd_path(&target),
        Some(c"proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    )?;
    drop(target);
    let proc_dir = rustix::fs::open(
        &*proc_join(root, "proc")?,
        OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let base = fd_path(&proc_dir);
    let at = |name: &str| cstr(&[base.as_bytes(), b"/", name.as_bytes()].concat());
    let exists = |name: &str| {
        rustix::fs::statat(&proc_dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok()
    };
    for name in PROC_MASKED_FILES {
        if exists(name) {
            sys::mount(Some(c"/dev/null"), &at(name)?, None, libc::MS_BIND, None)?;
        }
    }
    for name in PROC_MASKED_DIRS {
        if exists(name) {
            sys::mount(Some(c"tmpfs"), &at(name)?, Some(c"tmpfs"), libc::MS_RDONLY, None)?;
        }
    }
    for name in PROC_READONLY {
        if exists(name) {
            let p = at(name)?;
            sys::mount(Some(&p), &p, None, libc::MS_BIND | libc::MS_REC, None)?;
            remount_readonly(&p)?;
        }
    }
    Ok(())
}

/// Bind-mounts the host file `source` over `target` in `root`.
pub(crate) fn bind_file(root: &OwnedFd, source: &Path, target: &str) -> io::Result<()> {
    let at = open_in_root(root, target)?;
    sys::mount(Some(&sys::cpath(source)?), &fd_path(&at), None, libc::MS_BIND, None)
}

/// Applies one of the spec's mounts (number `n` of the spec; secrets and filtered views are
/// prepared in `private`).
pub(crate) fn apply_mount(
    root: &OwnedFd,
    m: &SandboxMount,
    n: usize,
    private: &mut Private,
) -> io::Result<()> {
    let at = match open_in_root(root, &m.target) {
        Ok(at) => at,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            // The stub layer made every mount point, but an earlier mount (say a cache
            // directory) now hides this one's parent: make it there, as BuildKit does.
            let dir = match &m.kind {
                MountKind::Bind { source, .. } => source.is_dir(),
                MountKind::Tmpfs { .. } | MountKind::Filtered { .. } => true,
                MountKind::Secret { .. } => false,
            };
            create_mount_point(root, &m.target, dir)?;
            open_in_root(root, &m.target)?
        }
        Err(e) => return Err(e),
    };
    let at_path = fd_path(&at);
    match &m.kind {
        MountKind::Bind { source, readonly } => {
            sys::mount(
                Some(&sys::cpath(source)?),
                &at_path,
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
            )?;
            if *readonly {
                let mounted = open_in_root(root, &m.target)?;
                make_readonly_recursive(&mounted)?;
            }
        }
        MountKind::Tmpfs { size } => {
            let opts = match size {
                Some(bytes) => format!("mode=1777,size={bytes}"),
                None => "mode=1777".to_string(),
            };
            sys::mount(
                Some(c"tmpfs"),
                &at_path,
                Some(c"tmpfs"),
                libc::MS_NOSUID | libc::MS_NODEV,
                Some(&cstr(opts.as_bytes())?),
            )?;
        }
        MountKind::Filtered { source, hidden } => {
            let layer = private.hiding_layer(n, source, hidden)?;
            mount_readonly_overlay(&[layer, source.clone()], &at)?;
        }
        MountKind::Secret { data, mode, uid, gid } => {
            let file = private.secret_file(n, &data.0, *mode, *uid, *gid)?;
            sys::mount(Some(&sys::cpath(&file)?), &at_path, None, libc::MS_BIND, None)?;
            let mounted = open_in_root(root, &m.target)?;
            make_readonly_recursive(&mounted)?;
        }
    }
    Ok(())
}

/// Mounts a read-only, `nodev` kernel overlay of `lowers` (top first, at least two) on the
/// directory `at` (an `O_PATH` descriptor), with the rootfs's options: `userxattr`,
/// `redirect_dir=nofollow`, `metacopy=off`. (`nodev`: a device node in a context, say from a
/// tar context extracted as root, cannot be opened through the view.)
fn mount_readonly_overlay(lowers: &[PathBuf], at: &OwnedFd) -> io::Result<()> {
    let new_api = || -> io::Result<()> {
        let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
        for lower in lowers {
            fsconfig_set_string(&fs, "lowerdir+", lower.as_path())?;
        }
        fsconfig_set_flag(&fs, "userxattr")?;
        fsconfig_set_string(&fs, "redirect_dir", "nofollow")?;
        fsconfig_set_string(&fs, "metacopy", "off")?;
        fsconfig_create(&fs)?;
        let attrs = MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NODEV;
        let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)?;
        move_mount(
            &mnt,
            "",
            at,
            "",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        )?;
        Ok(())
    };
    match new_api() {
        Ok(()) => Ok(()),
        // `lowerdir+` came with Linux 6.8; older kernels take the option string.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) => {
            let escaped: Vec<Vec<u8>> = lowers.iter().map(|l| escape_overlay_path(l)).collect();
            let mut data = b"lowerdir=".to_vec();
            data.extend(escaped.join(&b':'));
            data.extend(b",userxattr,redirect_dir=nofollow,metacopy=off");
            if data.len() > MAX_MOUNT_DATA {
                return Err(io::Error::other("the filtered view's paths are too long to mount"));
            }
            sys::mount(
                Some(c"overlay"),
                &fd_path(at),
                Some(c"overlay"),
                libc::MS_RDONLY | libc::MS_NODEV,
                Some(&cstr(&data)?),
            )
        }
        Err(e) => Err(e),
    }
}

/// Creates the mount point `target` (a directory, or an empty file) and its missing parents,
/// every step resolved inside `root`.
fn create_mount_point(root: &OwnedFd, target: &str, dir: bool) -> io::Result<()> {
    let parts: Vec<&str> = target.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    let Some((name, parents)) = parts.split_last() else { return Ok(()) };
    let mut at = String::from("/");
    for part in parents {
        let next = format!("{at}{part}/");
        if open_in_root(root, &next).is_err() {
            let parent = open_in_root(root, &at)?;
            rustix::fs::mkdirat(&parent, *part, Mode::from_raw_mode(0o755))?;
        }
        at = next;
    }
    let parent = open_in_root(root, &at)?;
    if dir {
        rustix::fs::mkdirat(&parent, *name, Mode::from_raw_mode(0o755))?;
    } else {
        let file = rustix::fs::openat(
            &parent,
            *name,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(0o644),
        )?;
        drop(file);
    }
    Ok(())
}

/// Makes `root` the root of this mount namespace and detaches the old root.
pub(crate) fn pivot_into(root: &OwnedFd) -> io::Result<()> {
    sys::fchdir(root.as_raw_fd())?;
    sys::pivot_root(c".", c".")?;
    sys::umount2(c".", libc::MNT_DETACH)?;
    sys::chdir(c"/")
}
