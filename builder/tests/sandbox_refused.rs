//! A runner that refuses user namespaces, like an unprivileged CI container under Docker's
//! default seccomp profile: the "kiln" under test is uid 0 without `CAP_SYS_ADMIN`, and a
//! seccomp filter refuses `unshare`/`clone` with `CLONE_NEWUSER` (and `clone3`, as Docker's
//! profile does). `auto` isolation falls back to chroot, says why, and a RUN produces the same
//! diff as with namespaces. Needs real root (CI runs it as root).
//!
//! (`sysctl user.max_user_namespaces=0` would refuse them machine-wide, but root may not write
//! `/proc/sys/user/*` on kiln's CI machines, and a filter touches nothing outside the test.)

mod sandbox_support;

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kiln_builder::sandbox::{self, Isolation, UserNamespace};
use sandbox_support::*;

const CHILD_ENV: &str = "KILN_TEST_REFUSED_CHILD";
const SCRIPT: &str = "mkdir -p /app/sub; echo hi > /app/sub/f; rm /etc/group; chmod 700 /app; \
    echo done";

fn main() {
    sandbox::sandbox_entry_if_requested();
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(std::path::Path::new(&dir));
    }
    run_tests(vec![("auto_falls_back_to_chroot_when_user_namespaces_are_refused", refused)])
}

/// The "kiln" under test: uid 0 without CAP_SYS_ADMIN, in a world without user namespaces.
fn child(dir: &std::path::Path) -> ! {
    let ns = sandbox::enter_rootless_namespace_if_needed(Isolation::Auto).unwrap();
    let UserNamespace::Unavailable { reason } = ns else {
        panic!("expected no user namespace, got {ns:?}")
    };
    println!("userns: {reason}");
    let choice = sandbox::choose_isolation(Isolation::Auto).unwrap();
    println!("isolation: {}", choice.isolation);
    println!("reason: {}", choice.reason);
    let w = World {
        tmp: tempdir(),
        lowers: vec![dir.join("base")],
        scratch: dir.join("scratch-chroot"),
    };
    fs::create_dir(&w.scratch).unwrap();
    let spec = w.sh(SCRIPT);
    let out = run_ok(&spec);
    println!("out: {}", out.join("|"));
    println!("diff: {:?}", diff_summary(&spec));
    drop(w);
    std::process::exit(0)
}

fn diff_summary(spec: &kiln_builder::sandbox::SandboxSpec) -> Vec<String> {
    diff(spec)
        .into_iter()
        .map(|(p, e)| {
            format!(
                "{p} {} {:o} {}:{} {:?}",
                e.kind,
                e.mode,
                e.uid,
                e.gid,
                e.content.map(|c| String::from_utf8_lossy(&c).into_owned())
            )
        })
        .collect()
}

/// Installs a seccomp filter refusing new user namespaces: `unshare` and `clone` with
/// `CLONE_NEWUSER` fail with `EPERM`, `clone3` (whose flags a filter cannot read) with `ENOSYS`
/// so callers fall back to `clone`. Only async-signal-safe calls (for `pre_exec`).
fn refuse_user_namespaces() -> std::io::Result<()> {
    const LD_ABS: u16 = 0x20;
    const JEQ: u16 = 0x15;
    const JSET: u16 = 0x45;
    const RET: u16 = 0x06;
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    const ALLOW: u32 = 0x7fff_0000;
    const ERRNO: u32 = 0x0005_0000;
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let program = [
        op(LD_ABS, 0, 0, 4), // arch
        op(JEQ, 0, 7, AUDIT_ARCH_X86_64),
        op(LD_ABS, 0, 0, 0), // syscall number
        op(JEQ, 4, 0, libc::SYS_clone3 as u32),
        op(JEQ, 1, 0, libc::SYS_unshare as u32),
        op(JEQ, 0, 3, libc::SYS_clone as u32),
        op(LD_ABS, 0, 0, 16), // low word of the first argument (the flags)
        op(JSET, 2, 1, libc::CLONE_NEWUSER as u32),
        op(RET, 0, 0, ERRNO | libc::ENOSYS as u32),
        op(RET, 0, 0, ALLOW),
        op(RET, 0, 0, ERRNO | libc::EPERM as u32),
    ];
    let prog = libc::sock_fprog { len: program.len() as u16, filter: program.as_ptr() as *mut _ };
    // SAFETY: a valid filter program; installing it without no_new_privs needs CAP_SYS_ADMIN,
    // which the caller still has.
    if unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const _) }
        == -1
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn refused() {
    assert!(real_root(), "this test needs real root (it changes a sysctl)");
    let tmp = tempdir();
    busybox_root(&tmp.path().join("base"));
    // The same RUN with namespaces, as a reference.
    let reference = World {
        tmp: tempdir(),
        lowers: vec![tmp.path().join("base")],
        scratch: tmp.path().join("scratch-ns"),
    };
    fs::create_dir(&reference.scratch).unwrap();
    let spec = reference.sh(SCRIPT);
    assert_eq!(run_ok(&spec), ["done"]);
    let expected = diff_summary(&spec);

    let mut command = Command::new("/proc/self/exe");
    command.env(CHILD_ENV, tmp.path()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    // SAFETY: prctl is async-signal-safe. Dropping CAP_SYS_ADMIN from the bounding set makes
    // the executed child root without it, like a container's root.
    unsafe {
        command.pre_exec(|| {
            refuse_user_namespaces()?;
            if libc::prctl(libc::PR_CAPBSET_DROP, 21, 0, 0, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("the child hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert!(status.success(), "child failed: {stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "userns: user namespaces are refused here: Operation not permitted (os error 1)"
    );
    assert_eq!(lines[1], "isolation: chroot");
    assert_eq!(
        lines[2],
        "reason: namespaces are not available here (user namespaces: Operation not permitted (os \
         error 1); mount namespaces: Operation not permitted (os error 1)): chroot into a copied \
         root file system, snapshots by copy and diff"
    );
    assert_eq!(lines[3], "out: done");
    assert_eq!(lines[4], format!("diff: {expected:?}"));
}
