//! RUN sandbox tests in real namespaces. As root they use root isolation; run by
//! `scripts/rootless-test` as a user with a subordinate id range, the same tests run rootless
//! (the binary enters kiln's user namespace first, as the kiln CLI does).

mod sandbox_support;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln_builder::sandbox::{
    self, CancelToken, DOCKER_DEFAULT_CAPS, ExitStatus, Isolation, MountKind, NetworkMode,
    RootfsDriver, SandboxError, SandboxMount, SecretBytes, UserNamespace,
};
use sandbox_support::*;

fn main() {
    sandbox::sandbox_entry_if_requested();
    match sandbox::enter_rootless_namespace_if_needed(Isolation::Auto) {
        Ok(UserNamespace::Inside { warning: Some(w), .. }) => eprintln!("warning: {w}"),
        Ok(_) => {}
        Err(e) => panic!("entering the user namespace: {e}"),
    }
    if std::env::var_os(SIGTERM_CHILD).is_some() {
        sigterm_child();
    }
    run_tests(vec![
        ("user_namespace_is_reported", user_namespace_is_reported),
        ("output_lines_are_captured", output_lines_are_captured),
        ("exit_codes_and_signals", exit_codes_and_signals),
        ("missing_command_is_an_exec_error", missing_command_is_an_exec_error),
        ("env_cwd_user_groups_hostname", env_cwd_user_groups_hostname),
        ("run_true_leaves_an_empty_diff", run_true_leaves_an_empty_diff),
        ("changes_to_lower_files_become_the_diff", changes_to_lower_files_become_the_diff),
        ("copy_driver_gives_the_same_diff", copy_driver_gives_the_same_diff),
        (
            "fuse_driver_gives_the_same_diff_or_says_why_not",
            fuse_driver_gives_the_same_diff_or_says_why_not,
        ),
        ("chown_to_several_ids", chown_to_several_ids),
        (
            "etc_files_are_provided_but_never_in_the_diff",
            etc_files_are_provided_but_never_in_the_diff,
        ),
        ("network_none_has_only_loopback", network_none_has_only_loopback),
        ("host_network_sees_host_interfaces", host_network_sees_host_interfaces),
        ("host_processes_are_invisible", host_processes_are_invisible),
        (
            "host_mounts_are_invisible_and_writes_stay_inside",
            host_mounts_are_invisible_and_writes_stay_inside,
        ),
        ("capabilities_are_dockers_default", capabilities_are_dockers_default),
        ("dev_proc_sys_are_provided", dev_proc_sys_are_provided),
        (
            "device_nodes_made_by_a_run_cannot_be_opened",
            device_nodes_made_by_a_run_cannot_be_opened,
        ),
        ("bind_tmpfs_mounts_and_their_stubs", bind_tmpfs_mounts_and_their_stubs),
        ("filtered_views_hide_entries", filtered_views_hide_entries),
        ("secret_files_never_reach_the_disk", secret_files_never_reach_the_disk),
        ("cancel_kills_everything_and_cleans_up", cancel_kills_everything_and_cleans_up),
        ("sigterm_to_kiln_cancels_the_run", sigterm_to_kiln_cancels_the_run),
        ("explicit_chroot_isolation", explicit_chroot_isolation),
        ("overhead_is_measured", overhead_is_measured),
    ])
}

fn user_namespace_is_reported() {
    let ns = sandbox::enter_rootless_namespace_if_needed(Isolation::Auto).unwrap();
    if real_root() {
        assert_eq!(ns, UserNamespace::NotNeeded);
        assert_eq!(isolation(), Isolation::Root);
        return;
    }
    assert_eq!(isolation(), Isolation::Rootless);
    let UserNamespace::Inside { uid_map, warning, .. } = ns else { panic!("{ns:?}") };
    let lines: Vec<Vec<u64>> = uid_map
        .lines()
        .map(|l| l.split_whitespace().map(|x| x.parse().unwrap()).collect())
        .collect();
    let outside = lines[0][1];
    assert_eq!(lines[0], [0, outside, 1], "root is the user");
    if many_ids_mapped() {
        assert_eq!(warning, None);
        assert_eq!(lines[1][0], 1);
    } else {
        let user = std::env::var("USER").unwrap();
        assert_eq!(
            warning.unwrap(),
            format!(
                "no subordinate ids for {user} in /etc/subuid and /etc/subgid: kiln maps only your own \
                 uid and gid to root; RUN steps that chown to other ids will fail (add a range, e.g. \
                 `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}`)"
            )
        );
        assert_eq!(lines.len(), 1);
    }
}

fn output_lines_are_captured() {
    let w = World::new();
    let (result, out) =
        run(&w.sh("echo hello; echo oops >&2; echo; printf 'a\\r\\nb\\n'; printf partial"));
    assert_eq!(result.unwrap().status, ExitStatus::Code(0));
    assert_eq!(out.stdout, ["hello", "", "a\r", "b", "partial"]);
    assert_eq!(out.stderr, ["oops"]);
}

fn exit_codes_and_signals() {
    let w = World::new();
    let (result, _) = run(&w.sh("exit 3"));
    assert_eq!(result.unwrap().status, ExitStatus::Code(3));
    w.reset_scratch();
    let (result, _) = run(&w.sh("kill -9 $$"));
    assert_eq!(result.unwrap().status, ExitStatus::Signal(9));
    w.reset_scratch();
    let (result, _) = run(&w.sh("exit 0"));
    assert!(result.unwrap().status.success());
}

fn missing_command_is_an_exec_error() {
    let w = World::new();
    let mut spec = w.sh("");
    spec.argv = vec!["no-such-tool".into(), "x".into()];
    let (result, _) = run(&spec);
    match result {
        Err(SandboxError::Exec(msg)) => {
            assert_eq!(msg, "exec: \"no-such-tool\": executable file not found in $PATH")
        }
        other => panic!("expected an exec error, got {other:?}"),
    }
}

fn env_cwd_user_groups_hostname() {
    let w = World::new();
    let mut spec =
        w.sh("echo $FOO; pwd; id -u; id -g; id -G; hostname; cat /etc/hostname; echo $HOME");
    spec.env.push("FOO=bar baz".into());
    spec.cwd = "/work/dir".into();
    spec.uid = 1000;
    spec.gid = 1000;
    spec.additional_gids = if many_ids_mapped() { vec![10, 20] } else { vec![] };
    spec.hostname = "builder-7".into();
    if !many_ids_mapped() {
        spec.uid = 0;
        spec.gid = 0;
    }
    let out = run_ok(&spec);
    let (uid, gid, groups) =
        if many_ids_mapped() { ("1000", "1000", "1000 10 20") } else { ("0", "0", "0") };
    assert_eq!(out, ["bar baz", "/work/dir", uid, gid, groups, "builder-7", "builder-7", ""]);
    // The working directory was created, as root, in the diff.
    let d = diff(&spec);
    assert_eq!(kinds(&d), [("work".into(), "dir".into()), ("work/dir".into(), "dir".into())]);
    assert_eq!((d["work/dir"].uid, d["work/dir"].mode), (0, 0o755));
}

fn run_true_leaves_an_empty_diff() {
    let w = World::new();
    let spec = w.sh("true");
    let outcome = run(&spec).0.unwrap();
    assert!(outcome.status.success());
    assert_eq!(kinds(&diff(&spec)), Vec::<(String, String)>::new());
    assert_eq!(names(&w.scratch), ["upper"], "temporary directories are removed");
}

/// A second lower layer: a file to delete, one to modify, a directory to replace, and a
/// whiteout of busybox's `vi` link.
fn layered_world() -> World {
    let mut w = World::new();
    let top = w.add_layer("top");
    fs::create_dir_all(top.join("data")).unwrap();
    fs::write(top.join("data/old.txt"), "old\n").unwrap();
    fs::write(top.join("data/mod.txt"), "orig\n").unwrap();
    fs::create_dir_all(top.join("d/inner")).unwrap();
    fs::write(top.join("d/inner/f"), "f\n").unwrap();
    fs::create_dir_all(top.join("bin")).unwrap();
    make_lower_whiteout(&top.join("bin/vi"));
    w
}

fn make_lower_whiteout(path: &std::path::Path) {
    let dev = rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    );
    if dev.is_err() {
        fs::write(path, "").unwrap();
        xattr::set(path, "user.overlay.whiteout", b"").unwrap();
        xattr::set(path.parent().unwrap(), "user.overlay.opaque", b"x").unwrap();
    }
}

const CHANGE_SCRIPT: &str = "test -e /bin/vi && echo vi-visible; \
    rm /data/old.txt; echo more >> /data/mod.txt; mkdir -p /new/sub; echo x > /new/sub/f; \
    rm -rf /d; mkdir /d; echo fresh > /d/fresh; ln /new/sub/f /new/link; ln -s /data/mod.txt /new/sym; \
    echo done";

fn assert_change_diff(spec: &kiln_builder::sandbox::SandboxSpec, out: &[String]) {
    assert_eq!(out, ["done"], "the lower whiteout hides /bin/vi");
    let d = diff(spec);
    assert_eq!(
        kinds(&d),
        [
            ("d", "dir"),
            ("d#opaque", "opaque"),
            ("d/fresh", "file"),
            ("data", "dir"),
            ("data/mod.txt", "file"),
            ("data/old.txt", "whiteout"),
            ("new", "dir"),
            ("new/link", "file"),
            ("new/sub", "dir"),
            ("new/sub/f", "hardlink:new/link"),
            ("new/sym", "symlink:/data/mod.txt"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(d["data/mod.txt"].content.as_deref(), Some(&b"orig\nmore\n"[..]));
    assert_eq!(d["d/fresh"].content.as_deref(), Some(&b"fresh\n"[..]));
    assert_eq!(d["new/link"].content.as_deref(), Some(&b"x\n"[..]));
}

fn changes_to_lower_files_become_the_diff() {
    let w = layered_world();
    let spec = w.sh(CHANGE_SCRIPT);
    let (result, out) = run(&spec);
    let outcome = result.unwrap();
    assert!(outcome.status.success(), "{:?}", out);
    assert_eq!(outcome.rootfs, RootfsDriver::KernelOverlay);
    assert_change_diff(&spec, &out.stdout);
    // The upper directory itself holds an overlay whiteout for the deleted file.
    let wh = fs::symlink_metadata(spec.upper_dir().join("data/old.txt")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
}

fn copy_driver_gives_the_same_diff() {
    let w = layered_world();
    let mut spec = w.sh(CHANGE_SCRIPT);
    spec.rootfs = RootfsDriver::Copy;
    let (result, out) = run(&spec);
    let outcome = result.unwrap();
    assert_eq!(outcome.rootfs, RootfsDriver::Copy);
    assert_change_diff(&spec, &out.stdout);
    w.reset_scratch();
    let mut spec = w.sh("true");
    spec.rootfs = RootfsDriver::Copy;
    run_ok(&spec);
    assert_eq!(kinds(&diff(&spec)), Vec::<(String, String)>::new());
}

fn fuse_driver_gives_the_same_diff_or_says_why_not() {
    let w = layered_world();
    let mut spec = w.sh(CHANGE_SCRIPT);
    spec.rootfs = RootfsDriver::FuseOverlay;
    let caps = sandbox::probe().unwrap();
    let (result, out) = run(&spec);
    match &caps.fuse_overlay_error {
        None => {
            let outcome = result.unwrap();
            assert_eq!(outcome.rootfs, RootfsDriver::FuseOverlay);
            assert_change_diff(&spec, &out.stdout);
        }
        Some(why) => match result {
            Err(SandboxError::Setup(msg)) => {
                assert!(msg.contains("fuse-overlayfs"), "{msg} (probe: {why})")
            }
            other => panic!("fuse-overlayfs is unusable here ({why}) but the run gave {other:?}"),
        },
    }
}

fn chown_to_several_ids() {
    let w = World::new();
    let spec = w.sh("touch /a /b /c; mkdir /d; chown 1000:1000 /a; chown 65534:65534 /b; chown 123:456 /c; chown 7:8 /d");
    if !many_ids_mapped() {
        let (result, out) = run(&spec);
        assert_eq!(
            result.unwrap().status,
            ExitStatus::Code(1),
            "chown fails with a single-id map: {out:?}"
        );
        return;
    }
    run_ok(&spec);
    let d = diff(&spec);
    let ids: Vec<(&str, u32, u32)> = d.iter().map(|(p, e)| (p.as_str(), e.uid, e.gid)).collect();
    assert_eq!(ids, [("a", 1000, 1000), ("b", 65534, 65534), ("c", 123, 456), ("d", 7, 8)]);
}

fn etc_files_are_provided_but_never_in_the_diff() {
    // Image without /etc/hosts or /etc/resolv.conf.
    let w = World::new();
    let mut spec = w.sh("cat /etc/hosts /etc/resolv.conf /etc/hostname; echo hi > /etc/hosts; echo x > /etc/new; rm /etc/resolv.conf; echo rm=$?");
    spec.etc_hosts = "10.0.0.1 test-host\n".into();
    spec.resolv_conf = "nameserver 10.0.0.53\n".into();
    let (result, out) = run(&spec);
    assert!(result.unwrap().status.success());
    assert_eq!(out.stdout, ["10.0.0.1 test-host", "nameserver 10.0.0.53", "kiln", "rm=1"]);
    assert_eq!(
        kinds(&diff(&spec)),
        [("etc".into(), "dir".into()), ("etc/new".into(), "file".into())]
    );

    // Image whose /etc/resolv.conf is a dangling symlink into /run, as systemd images have.
    let mut w = World::new();
    let top = w.add_layer("top");
    fs::create_dir_all(top.join("etc")).unwrap();
    std::os::unix::fs::symlink(
        "../run/systemd/resolve/stub-resolv.conf",
        top.join("etc/resolv.conf"),
    )
    .unwrap();
    fs::write(top.join("etc/hosts"), "127.0.0.1 image\n").unwrap();
    let mut spec = w.sh("cat /etc/resolv.conf /etc/hosts");
    spec.resolv_conf = "nameserver 10.0.0.53\n".into();
    spec.etc_hosts = "127.0.0.1 sandbox\n".into();
    assert_eq!(run_ok(&spec), ["nameserver 10.0.0.53", "127.0.0.1 sandbox"]);
    assert_eq!(kinds(&diff(&spec)), Vec::<(String, String)>::new());
}

fn network_none_has_only_loopback() {
    let w = World::new();
    let mut spec = w.sh("ls /sys/class/net; cat /sys/class/net/lo/flags; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '");
    spec.network = NetworkMode::None;
    assert_eq!(run_ok(&spec), ["lo", "0x9", "lo"]);
}

fn host_network_sees_host_interfaces() {
    let w = World::new();
    let spec = w.sh("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort");
    let mut host: Vec<String> = fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|s| s.trim().to_string()))
        .collect();
    host.sort();
    assert_eq!(run_ok(&spec), host);
}

fn host_processes_are_invisible() {
    let w = World::new();
    let out = run_ok(&w.sh("echo $$; ls /proc | grep '^[0-9]' | sort -n | tr '\\n' ' '"));
    // pid 1 is kiln's init, the shell is 2; `ls` and `grep`... come after.
    assert_eq!(out[0], "2");
    let pids: Vec<u32> = out[1].split_whitespace().map(|p| p.parse().unwrap()).collect();
    assert_eq!(pids[..2], [1, 2]);
    assert!(pids.len() <= 7 && pids.iter().all(|&p| p < 10), "{pids:?}");
}

fn host_mounts_are_invisible_and_writes_stay_inside() {
    let w = World::new();
    let marker = format!("kiln-outside-{}", std::process::id());
    let spec = w.sh(&format!(
        "cut -d' ' -f5 /proc/self/mountinfo | sort; echo x > /{marker}; mount -t tmpfs none /tmp 2>/dev/null; echo mount=$?"
    ));
    let out = run_ok(&spec);
    let (mounts, rest) = out.split_at(out.len() - 1);
    assert_ne!(rest[0], "mount=0", "mounting needs CAP_SYS_ADMIN, which the RUN lacks");
    let allowed_prefixes =
        ["/", "/dev", "/proc", "/sys", "/etc/hosts", "/etc/resolv.conf", "/etc/hostname"];
    for m in mounts {
        assert!(
            allowed_prefixes.iter().any(|p| m == p || m.starts_with(&format!("{p}/"))),
            "unexpected mount {m} in {mounts:?}"
        );
        assert!(!m.contains("kiln-sandbox-test"), "host path visible: {m}");
    }
    assert!(mounts.contains(&"/".to_string()) && mounts.contains(&"/proc".to_string()));
    assert!(!std::path::Path::new(&format!("/{marker}")).exists());
    assert_eq!(kinds(&diff(&spec)), [(marker, "file".to_string())]);
}

fn capabilities_are_dockers_default() {
    let w = World::new();
    let mut spec = w.sh("grep -E '^Cap(Eff|Prm|Bnd|Inh|Amb)' /proc/self/status | tr '\\t' ' '");
    let mask: u64 = DOCKER_DEFAULT_CAPS.iter().map(|c| 1u64 << c).sum();
    let root = run_ok(&spec);
    assert_eq!(
        root,
        [
            "CapInh: 0000000000000000".to_string(),
            format!("CapPrm: {mask:016x}"),
            format!("CapEff: {mask:016x}"),
            format!("CapBnd: {mask:016x}"),
            "CapAmb: 0000000000000000".to_string(),
        ]
    );
    if many_ids_mapped() {
        w.reset_scratch();
        spec.uid = 1000;
        spec.gid = 1000;
        let user = run_ok(&spec);
        assert_eq!(user[1], "CapPrm: 0000000000000000");
        assert_eq!(user[2], "CapEff: 0000000000000000");
        assert_eq!(user[3], format!("CapBnd: {mask:016x}"));
    }
}

fn dev_proc_sys_are_provided() {
    let w = World::new();
    let spec = w.sh(
        "ls /dev | tr '\\n' ' '; echo; echo x > /dev/null && head -c 4 /dev/zero | wc -c; \
         touch /sys/x 2>/dev/null; echo sys=$?; test -w /dev/shm && echo shm; cat /proc/1/cmdline | tr '\\0' ' ' | cut -c1-3",
    );
    let out = run_ok(&spec);
    assert_eq!(
        out[0],
        "core fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero "
    );
    assert_eq!(out[1..4], ["4", "sys=1", "shm"]);
    assert_eq!(kinds(&diff(&spec)), Vec::<(String, String)>::new());
}

fn device_nodes_made_by_a_run_cannot_be_opened() {
    // As real root a RUN keeps CAP_MKNOD: it can make nodes (they belong in the layer), but
    // never use them, or a node for the host's disk would give it the disk. (A rootless RUN
    // cannot make nodes at all.)
    let w = World::new();
    let spec = w.sh("for n in /n /dev/n2; do \
           if mknod $n c 1 3 2>/dev/null; then echo x 2>/dev/null > $n; echo $n=$?; \
           else echo $n=no-mknod; fi; \
         done; echo x > /dev/null && echo null-ok");
    let out = run_ok(&spec);
    if real_root() {
        assert_eq!(out, ["/n=1", "/dev/n2=1", "null-ok"]);
        assert_eq!(
            kinds(&diff(&spec)),
            [("n".to_string(), "CharDevice { major: 1, minor: 3 }".to_string())]
        );
    } else {
        assert_eq!(out, ["/n=no-mknod", "/dev/n2=no-mknod", "null-ok"]);
    }
}

fn bind_tmpfs_mounts_and_their_stubs() {
    let w = World::new();
    let ro = w.tmp.path().join("ro");
    let rw = w.tmp.path().join("rw");
    fs::create_dir(&ro).unwrap();
    fs::create_dir(&rw).unwrap();
    fs::write(ro.join("in"), "from host\n").unwrap();
    let secret = w.tmp.path().join("secret");
    fs::write(&secret, "s3cret\n").unwrap();
    let mut spec = w
        .sh("cat /src/in; echo y > /src/y 2>/dev/null; echo ro=$?; echo z > /cache/deep/z; \
         echo t > /root/tmpfs/t; cat /run/secrets/token; mount | grep -c /cache/deep");
    spec.mounts = vec![
        SandboxMount {
            target: "/src".into(),
            kind: MountKind::Bind { source: ro.clone(), readonly: true },
        },
        SandboxMount {
            target: "/cache/deep".into(),
            kind: MountKind::Bind { source: rw.clone(), readonly: false },
        },
        SandboxMount {
            target: "/root/tmpfs".into(),
            kind: MountKind::Tmpfs { size: Some(1 << 20) },
        },
        SandboxMount {
            target: "/run/secrets/token".into(),
            kind: MountKind::Bind { source: secret, readonly: true },
        },
    ];
    assert_eq!(run_ok(&spec), ["from host", "ro=1", "s3cret", "1"]);
    assert_eq!(fs::read_to_string(rw.join("z")).unwrap(), "z\n");
    assert_eq!(names(&ro), ["in"]);
    // Mount points made for the RUN are not part of its diff.
    assert_eq!(kinds(&diff(&spec)), Vec::<(String, String)>::new());
}

/// A filtered view shows the directory without the hidden entries (nested ones too, and a
/// directory's other entries stay), read-only, with the directories' own modes and times;
/// the host directory is untouched and nothing is left in the scratch directory.
fn filtered_views_hide_entries() {
    use std::os::unix::fs::PermissionsExt;
    assert!(sandbox::filtered_views_supported(Isolation::Auto), "kernel overlayfs is usable");
    let w = World::new();
    let src = w.tmp.path().join("src");
    for (path, content) in [
        ("keep.txt", "kept\n"),
        (".env", "TOKEN=1\n"),
        ("git/objects/o", "object\n"),
        ("sub/a.txt", "a\n"),
        ("sub/b.log", "b\n"),
        ("sub/deep/c.log", "c\n"),
        ("sub/deep/d.txt", "d\n"),
    ] {
        fs::create_dir_all(src.join(path).parent().unwrap()).unwrap();
        fs::write(src.join(path), content).unwrap();
    }
    fs::set_permissions(src.join("sub/deep"), fs::Permissions::from_mode(0o750)).unwrap();
    let deep = fs::metadata(src.join("sub/deep")).unwrap();
    let before = names(&src);
    let mut spec =
        w.sh("ls -A /v; ls -A /v/sub; ls -A /v/sub/deep; cat /v/keep.txt /v/sub/deep/d.txt; \
         cat /v/.env 2>/dev/null || echo no-env; stat -c '%a %Y' /v/sub/deep; \
         touch /v/new 2>/dev/null; echo touch=$?; rm /v/keep.txt 2>/dev/null; echo rm=$?");
    let hidden = [".env", "git", "sub/b.log", "sub/deep/c.log"];
    spec.mounts = vec![SandboxMount {
        target: "/v".into(),
        kind: MountKind::Filtered {
            source: src.clone(),
            hidden: hidden.iter().map(|h| h.to_string()).collect(),
        },
    }];
    let expected = [
        "keep.txt".to_string(),
        "sub".into(),
        "a.txt".into(),
        "deep".into(),
        "d.txt".into(),
        "kept".into(),
        "d".into(),
        "no-env".into(),
        format!("750 {}", deep.mtime()),
        "touch=1".into(),
        "rm=1".into(),
    ];
    assert_eq!(run_ok(&spec), expected);
    assert_eq!(names(&src), before);
    assert_eq!(fs::read_to_string(src.join("keep.txt")).unwrap(), "kept\n");
    assert_eq!(kinds(&diff(&spec)), Vec::<(String, String)>::new());
    assert_eq!(names(&w.scratch), ["upper"]);
    // Device nodes in the directory cannot be opened through the view (`nodev`).
    if real_root() {
        w.reset_scratch();
        let made = Command::new("mknod").arg(src.join("zero")).args(["c", "1", "5"]).status();
        assert!(made.unwrap().success(), "mknod");
        let mut spec = w.sh("head -c 1 /v/zero > /dev/null 2>&1; echo open=$?");
        spec.mounts = vec![SandboxMount {
            target: "/v".into(),
            kind: MountKind::Filtered { source: src.clone(), hidden: vec![".env".into()] },
        }];
        assert_eq!(run_ok(&spec), ["open=1"]);
        fs::remove_file(src.join("zero")).unwrap();
    }
    // A hidden path that is not plain is refused before anything runs.
    w.reset_scratch();
    let mut bad = w.sh("true");
    bad.mounts = vec![SandboxMount {
        target: "/v".into(),
        kind: MountKind::Filtered { source: src, hidden: vec!["../etc".into()] },
    }];
    let err = run(&bad).0.unwrap_err().to_string();
    assert!(err.contains("hidden path \"../etc\" is not a plain relative path"), "{err}");
}

/// A secret file is written by the sandbox on its own tmpfs: the RUN reads it with its mode
/// and owner, read-only, and no file on disk ever holds the value.
fn secret_files_never_reach_the_disk() {
    let w = World::new();
    let value = format!("kiln-secret-{}-{:?}", std::process::id(), Instant::now());
    let mut spec = w.sh("cat /run/secrets/tok; echo; stat -c '%a %u:%g' /run/secrets/tok; \
         echo x > /run/secrets/tok 2>/dev/null; echo write=$?; mount | grep -c /run/secrets/tok");
    spec.mounts = vec![SandboxMount {
        target: "/run/secrets/tok".into(),
        kind: MountKind::Secret {
            data: SecretBytes(value.clone().into_bytes()),
            mode: 0o440,
            uid: 0,
            gid: 0,
        },
    }];
    assert!(!format!("{spec:?}").contains(&value), "Debug never shows a secret");
    assert_eq!(run_ok(&spec), [value.clone(), "440 0:0".into(), "write=1".into(), "1".into()]);
    let mut stack = vec![w.tmp.path().to_path_buf()];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                files += 1;
                let data = fs::read(&path).unwrap();
                assert!(
                    !data.windows(value.len()).any(|win| win == value.as_bytes()),
                    "{} holds the secret",
                    path.display()
                );
            }
        }
    }
    assert!(files >= 3, "{files} files scanned");
    assert_eq!(names(&w.scratch), ["upper"]);
}

/// Starts `script` in a thread and returns when its first output line `ready` arrived.
fn start_cancellable(
    w: &World,
    script: &str,
) -> (CancelToken, std::thread::JoinHandle<Result<(), SandboxError>>) {
    let spec = w.sh(script);
    let cancel = CancelToken::new();
    let token = cancel.clone();
    let ready = Arc::new(Mutex::new(false));
    let flag = Arc::clone(&ready);
    let handle = std::thread::spawn(move || {
        sandbox::run(
            &spec,
            &mut |_, line| {
                if line == "ready" {
                    *flag.lock().unwrap() = true;
                }
            },
            &token,
        )
        .map(drop)
    });
    let start = Instant::now();
    while !*ready.lock().unwrap() {
        assert!(start.elapsed() < Duration::from_secs(30), "the RUN never became ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    (cancel, handle)
}

fn cancel_kills_everything_and_cleans_up() {
    let w = World::new();
    let marker = format!("kiln-cancel-{}", std::process::id());
    let (cancel, handle) = start_cancellable(
        &w,
        &format!(
            "sh -c 'trap \"\" TERM; sleep 1000; : {marker}' & (trap '' TERM INT; sleep 1001; : {marker}) & echo ready; wait"
        ),
    );
    let running = processes_with(&marker);
    assert!(running.len() >= 2, "{running:?}");
    // The RUN's shell → pid 1 → the helper: this run's own processes (tests run in parallel).
    let shell = *running.iter().find(|&&p| !running.contains(&parent_of(p))).unwrap();
    let init = parent_of(shell);
    let helper = parent_of(init);
    assert_eq!(
        fs::read(format!("/proc/{helper}/cmdline")).unwrap().split(|&b| b == 0).nth(1),
        Some(&b"__kiln-sandbox"[..])
    );
    let sandbox_ns: Vec<String> = [helper, init]
        .iter()
        .filter_map(|p| fs::read_link(format!("/proc/{p}/ns/mnt")).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect();
    assert_eq!(sandbox_ns.len(), 2);
    // Holding the namespace open keeps its number from being reused by a sandbox another test
    // starts meanwhile (the kernel recycles freed namespace inode numbers), so a process found
    // in it below really is a leftover of this run.
    let _held: Vec<fs::File> = [helper, init]
        .iter()
        .map(|p| fs::File::open(format!("/proc/{p}/ns/mnt")).unwrap())
        .collect();
    cancel.cancel();
    match handle.join().unwrap() {
        Err(SandboxError::Cancelled) => {}
        other => panic!("expected Cancelled, got {other:?}"),
    }
    assert_eq!(processes_with(&marker), Vec::<u32>::new(), "RUN processes left");
    for pid in [helper, init] {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "process {pid} left");
    }
    // No process is left in the sandbox's mount namespace, so its mounts go with our last
    // reference to it; none was ever made in ours.
    for ent in fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(l) = fs::read_link(ent.path().join("ns/mnt")) {
            assert!(
                !sandbox_ns.contains(&l.to_string_lossy().into_owned()),
                "{:?} is still in the sandbox's mount namespace",
                ent.path()
            );
        }
    }
    assert_eq!(mounts_under(w.tmp.path()), Vec::<String>::new());
    assert_eq!(names(&w.scratch), ["upper"]);
}

const SIGTERM_CHILD: &str = "KILN_TEST_SIGTERM_CHILD";

/// The child of `sigterm_to_kiln_cancels_the_run`: a "kiln" that cancels on SIGTERM.
fn sigterm_child() -> ! {
    let w = World::new();
    let marker = std::env::var(SIGTERM_CHILD).unwrap();
    let cancel = CancelToken::new();
    cancel.cancel_on_signals(&[libc::SIGTERM, libc::SIGINT]).unwrap();
    let spec = w.sh(&format!("echo ready; sleep 1000; : {marker}"));
    println!("scratch {}", w.scratch.display());
    let result = sandbox::run(
        &spec,
        &mut |_, line| {
            println!("{line}");
        },
        &cancel,
    );
    println!("result {:?}", result.map(|o| o.status).map_err(|e| e.to_string()));
    println!("left {:?}", names(&w.scratch));
    drop(w);
    std::process::exit(0)
}

fn sigterm_to_kiln_cancels_the_run() {
    let marker = format!("kiln-sigterm-{}", std::process::id());
    let mut child = Command::new("/proc/self/exe")
        .env(SIGTERM_CHILD, &marker)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // A hang must fail the test, not the CI run.
    let pid = child.id();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        sandbox_support_kill(pid, libc::SIGKILL);
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let scratch = lines.next().unwrap().unwrap();
    assert!(scratch.starts_with("scratch "));
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    assert!(!processes_with(&marker).is_empty());
    sandbox_support_kill(child.id(), libc::SIGTERM);
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert!(child.wait().unwrap().success());
    assert_eq!(rest, ["result Err(\"cancelled\")", "left [\"upper\"]"]);
    assert_eq!(processes_with(&marker), Vec::<u32>::new());
}

/// The parent pid of `pid`.
fn parent_of(pid: u32) -> u32 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    rest.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn sandbox_support_kill(pid: u32, signal: i32) {
    // SAFETY: plain system call.
    unsafe { libc::kill(pid as i32, signal) };
}

fn explicit_chroot_isolation() {
    let chroot_ok = sandbox::choose_isolation(Isolation::Chroot);
    let w = layered_world();
    let mut spec = w.sh(CHANGE_SCRIPT);
    spec.isolation = Isolation::Chroot;
    match chroot_ok {
        Ok(_) => {
            let (result, out) = run(&spec);
            let outcome = result.unwrap();
            assert_eq!(
                (outcome.isolation, outcome.rootfs),
                (Isolation::Chroot, RootfsDriver::Copy)
            );
            assert_change_diff(&spec, &out.stdout);
            w.reset_scratch();
            let spec2 = {
                let mut s = w.sh("cat /etc/hosts; echo x > /dev/null; hostname");
                s.isolation = Isolation::Chroot;
                s.etc_hosts = "1.2.3.4 h\n".into();
                s
            };
            assert_eq!(run_ok(&spec2), ["1.2.3.4 h", "kiln"]);
            assert_eq!(kinds(&diff(&spec2)), Vec::<(String, String)>::new());
        }
        Err(e) => {
            // Rootless: chroot needs real uid 0 — and the run says so.
            assert!(!real_root());
            let (result, _) = run(&spec);
            assert_eq!(result.unwrap_err().to_string(), e.to_string());
        }
    }
}

fn overhead_is_measured() {
    const N: usize = 30;
    let w = World::new();
    let mut spec = w.sh("");
    spec.argv = vec!["/bin/true".into()];
    let mut sandboxed = Vec::new();
    let cpu = children_cpu_ms();
    for _ in 0..N {
        w.reset_scratch();
        let t = Instant::now();
        run_ok(&spec);
        sandboxed.push(t.elapsed());
    }
    let sandbox_cpu = (children_cpu_ms() - cpu) / N as f64;
    let mut direct = Vec::new();
    let cpu = children_cpu_ms();
    for _ in 0..N {
        let t = Instant::now();
        Command::new("/bin/busybox").arg("true").status().unwrap();
        direct.push(t.elapsed());
    }
    let direct_cpu = (children_cpu_ms() - cpu) / N as f64;
    let direct_ms = median_ms(&mut direct);
    eprintln!(
        "overhead: kiln sandbox ({}, {}) median {:.1} ms, min {:.1} ms, CPU {:.1} ms per RUN beyond a plain spawn ({:.2} ms, CPU {:.2} ms)",
        isolation(),
        RootfsDriver::KernelOverlay,
        median_ms(&mut sandboxed) - direct_ms,
        sandboxed[0].as_secs_f64() * 1000.0 - direct_ms,
        sandbox_cpu - direct_cpu,
        direct_ms,
        direct_cpu,
    );
    if real_root() && sandbox_support_find("runc") {
        let bundle = w.tmp.path().join("bundle");
        fs::create_dir(&bundle).unwrap();
        busybox_root(&bundle.join("rootfs"));
        let status = Command::new("runc").arg("spec").current_dir(&bundle).status().unwrap();
        assert!(status.success());
        let path = bundle.join("config.json");
        let mut config: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        config["process"]["terminal"] = false.into();
        config["process"]["args"] = serde_json::json!(["/bin/true"]);
        config["root"]["readonly"] = false.into();
        fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
        let mut runc = Vec::new();
        let cpu = children_cpu_ms();
        for i in 0..N {
            let t = Instant::now();
            let st = Command::new("runc")
                .args(["run", "--bundle"])
                .arg(&bundle)
                .arg(format!("kiln-overhead-{}-{i}", std::process::id()))
                .stdin(Stdio::null())
                .status()
                .unwrap();
            assert!(st.success());
            runc.push(t.elapsed());
        }
        let runc_cpu = (children_cpu_ms() - cpu) / N as f64;
        eprintln!(
            "overhead: runc run median {:.1} ms, min {:.1} ms, CPU {:.1} ms per RUN (plain rootfs directory, no overlay)",
            median_ms(&mut runc) - direct_ms,
            runc[0].as_secs_f64() * 1000.0 - direct_ms,
            runc_cpu - direct_cpu,
        );
    }
}

/// User + system CPU time of all waited-for descendants, in milliseconds.
fn children_cpu_ms() -> f64 {
    // SAFETY: rusage is plain data filled by getrusage.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    ms(usage.ru_utime) + ms(usage.ru_stime)
}

/// Sorts `times` and returns the median in milliseconds.
fn median_ms(times: &mut [Duration]) -> f64 {
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1000.0
}

fn sandbox_support_find(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}
