//! Secrets and ssh agents given to RUN steps leave no trace: after builds with `--secret` and
//! `--ssh`, nothing kiln wrote holds the secret's bytes — not a file of the kiln root (blobs
//! decompressed, cache records, snapshots, cache mounts, temporaries), not the OCI and Docker
//! outputs (archives unpacked, blobs decompressed), not `--metadata-file`/`--iidfile`, not the
//! progress output in plain or JSON mode. (run.rs checks that secrets reach the RUN.)

mod common;

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use common::*;

/// An ssh-agent holding one fresh key; killed (by its pid) when dropped.
struct Agent {
    pid: i32,
    socket: PathBuf,
    /// A line of the private key's body: what must never be seen.
    key_line: String,
}

impl Agent {
    fn start(env: &Env, who: As) -> Agent {
        require("ssh-agent");
        let dir = env.path("agent");
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("id_ed25519");
        run_ok(
            Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", ""]).arg("-f").arg(&key),
        );
        let private = std::fs::read_to_string(&key).unwrap();
        let key_line = private.lines().nth(1).unwrap().to_string();
        let socket = dir.join("agent.sock");
        if who == As::Rootless {
            run_ok(Command::new("chown").args(["-R", "kilntest:kilntest"]).arg(&dir));
        }
        let as_user = |program: &str| {
            let mut cmd = match who {
                As::Root => Command::new(program),
                As::Rootless => {
                    let mut c = Command::new("runuser");
                    c.args(["-u", "kilntest", "--", program]);
                    c
                }
            };
            cmd.env("SSH_AUTH_SOCK", &socket);
            cmd
        };
        let out = run_ok(as_user("ssh-agent").args(["-s", "-a"]).arg(&socket));
        let pid = out
            .split(';')
            .find_map(|part| part.trim().strip_prefix("SSH_AGENT_PID="))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no agent pid in {out}"));
        let agent = Agent { pid, socket: socket.clone(), key_line };
        run_ok(as_user("ssh-add").arg("-q").arg(&key));
        agent
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        unsafe { libc::kill(self.pid, libc::SIGTERM) };
    }
}

/// A secret value no file holds by chance.
fn fresh_secret() -> Vec<u8> {
    let mut raw = [0u8; 16];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut raw).unwrap();
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    format!("kiln-test-secret-{hex}").into_bytes()
}

/// Decompresses `data` with an outside tool (`gzip -dc`, `zstd -dc`).
fn decompress(tool: &str, data: &[u8]) -> Vec<u8> {
    let mut child = Command::new(tool)
        .args(["-dc"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    let _ = writer.join().unwrap();
    assert!(out.status.success(), "{tool} -dc failed");
    out.stdout
}

/// The regular files of a tar stream: (name, content).
fn tar_files(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 512 <= data.len() {
        let header = &data[at..at + 512];
        if header.iter().all(|b| *b == 0) {
            break;
        }
        let name = String::from_utf8_lossy(&header[..100]).trim_end_matches('\0').to_string();
        let size_field = String::from_utf8_lossy(&header[124..136]).to_string();
        let size = usize::from_str_radix(size_field.trim_matches(|c| c == '\0' || c == ' '), 8)
            .unwrap_or(0);
        let start = at + 512;
        let end = (start + size).min(data.len());
        if matches!(header[156], b'0' | 0) {
            out.push((name, data[start..end].to_vec()));
        }
        at = start + size.div_ceil(512) * 512;
    }
    out
}

fn is_tar(data: &[u8]) -> bool {
    data.len() >= 512 && &data[257..262] == b"ustar"
}

/// Where in `data` (named `what`) a needle occurs, looking inside compressed streams and tars.
fn find_in(what: &str, data: &[u8], needles: &[Vec<u8>], found: &mut Vec<String>) {
    for needle in needles {
        if data.windows(needle.len()).any(|w| w == needle.as_slice()) {
            found.push(format!("{what} holds {:?}", String::from_utf8_lossy(needle)));
        }
    }
    if data.starts_with(&[0x1f, 0x8b]) {
        find_in(&format!("{what} (gunzipped)"), &decompress("gzip", data), needles, found);
    } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        find_in(&format!("{what} (unzstd)"), &decompress("zstd", data), needles, found);
    } else if is_tar(data) {
        for (name, content) in tar_files(data) {
            find_in(&format!("{what}:{name}"), &content, needles, found);
        }
    }
}

/// Scans every file, link target and name under `dir`; returns how many files it read.
fn scan_tree(dir: &Path, needles: &[Vec<u8>], found: &mut Vec<String>) -> usize {
    let mut files = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let shown = path.display().to_string();
            find_in(&format!("the name {shown}"), path.as_os_str().as_bytes(), needles, found);
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                find_in(
                    &format!("the link {shown}"),
                    target.as_os_str().as_bytes(),
                    needles,
                    found,
                );
            } else if meta.is_file() {
                files += 1;
                find_in(&shown, &std::fs::read(&path).unwrap(), needles, found);
            }
        }
    }
    files
}

fn secrets_and_ssh_leave_no_trace(who: As) {
    require("zstd");
    let env = Env::for_user(who);
    let secret = fresh_secret();
    let secret_file = env.path("secret.txt");
    std::fs::write(&secret_file, &secret).unwrap();
    let agent = Agent::start(&env, who);
    let len = secret.len();
    let ctx = busybox_context(
        &env,
        who,
        &[(
            "Dockerfile",
            &format!(
                "FROM scratch\nCOPY rootfs/ /\n\
                 RUN --mount=type=secret,id=tok cat /run/secrets/tok > /dev/null && echo read-the-file\n\
                 RUN --mount=type=cache,target=/cache --mount=type=secret,id=tok \
                 wc -c < /run/secrets/tok > /cache/len && cp /cache/len /len\n\
                 RUN --mount=type=secret,id=tok,env=TOK test ${{#TOK}} -eq {len} && echo ok > /env-ok\n\
                 RUN --mount=type=ssh test -S \"$SSH_AUTH_SOCK\" && echo ok > /ssh-ok\n"
            ),
        )],
    );
    if who == As::Rootless {
        run_ok(Command::new("chown").args(["kilntest:kilntest"]).arg(&secret_file));
    }
    let out_dir = env.path("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    if who == As::Rootless {
        run_ok(Command::new("chown").args(["kilntest:kilntest"]).arg(&out_dir));
    }
    let secret_arg = format!("id=tok,src={}", secret_file.display());
    let ssh_arg = format!("default={}", agent.socket.display());
    let mut progress_logs = Vec::new();
    for (mode, extra) in [("plain", None), ("json", Some("--no-cache"))] {
        let o = |name: &str| out_dir.join(format!("{mode}-{name}")).display().to_string();
        let (layout, oci_tar, docker_tar) = (o("layout"), o("oci.tar"), o("docker.tar"));
        let (metadata, iid) = (o("metadata.json"), o("iid"));
        let mut args = vec![
            "build".to_string(),
            "--progress".into(),
            mode.into(),
            "-t".into(),
            format!("secrets:{mode}"),
            "--secret".into(),
            secret_arg.clone(),
            "--ssh".into(),
            ssh_arg.clone(),
            "--metadata-file".into(),
            metadata,
            "--iidfile".into(),
            iid,
            "-o".into(),
            format!("type=oci,dest={layout}"),
            "-o".into(),
            format!("type=oci,dest={oci_tar}"),
            "-o".into(),
            format!("type=docker,dest={docker_tar}"),
        ];
        args.extend(extra.map(str::to_string));
        args.push(ctx.display().to_string());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = env.kiln_as(who, &argv);
        assert!(out.status.success(), "kiln {argv:?} as {who:?}:\n{}", stderr(&out));
        progress_logs.push((format!("{mode} progress (stderr)"), out.stderr));
        progress_logs.push((format!("{mode} output (stdout)"), out.stdout));
    }
    // The secret and the agent did reach the RUN steps.
    let rootfs = umoci_unpack(&out_dir.join("plain-layout"), "plain", &env.path("bundle"));
    let read = |p: &str| std::fs::read_to_string(rootfs.join(p)).unwrap_or_default();
    assert_eq!(read("len").trim(), len.to_string());
    assert_eq!(read("env-ok"), "ok\n");
    assert_eq!(read("ssh-ok"), "ok\n");
    let (plain, json) = (&progress_logs[0].1, &progress_logs[2].1);
    assert!(String::from_utf8_lossy(plain).contains("read-the-file"), "the RUN's log is shown");
    assert!(String::from_utf8_lossy(json).contains("read-the-file"), "the RUN's log is shown");

    let needles = vec![
        secret.clone(),
        base64::engine::general_purpose::STANDARD.encode(&secret).into_bytes(),
        agent.key_line.clone().into_bytes(),
    ];
    let mut found = Vec::new();
    let root_files = scan_tree(&env.root(), &needles, &mut found);
    let output_files = scan_tree(&out_dir, &needles, &mut found);
    for (what, bytes) in &progress_logs {
        find_in(what, bytes, &needles, &mut found);
    }
    assert!(root_files > 10 && output_files > 10, "{root_files} and {output_files} files scanned");
    assert!(found.is_empty(), "the secret leaked:\n{}", found.join("\n"));
    // The scan sees what it looks for, inside a compressed stream too.
    let mut probe = Vec::new();
    let gzipped = {
        let mut child = Command::new("gzip")
            .arg("-c")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&[b"x".as_slice(), &secret].concat()).unwrap();
        child.wait_with_output().unwrap().stdout
    };
    find_in("probe", &gzipped, &needles, &mut probe);
    assert_eq!(probe.len(), 1, "{probe:?}");
}

#[test]
fn secrets_and_ssh_leave_no_trace_as_root() {
    secrets_and_ssh_leave_no_trace(As::Root);
}

#[test]
fn secrets_and_ssh_leave_no_trace_rootless() {
    secrets_and_ssh_leave_no_trace(As::Rootless);
}

/// A secret mounted inside a cache mount: the mount point is made in the cache directory, and
/// the value stays out of it.
#[test]
fn a_secret_mounted_inside_a_cache_mount_stays_out_of_the_cache() {
    let env = Env::new();
    let secret = fresh_secret();
    let secret_file = env.path("secret.txt");
    std::fs::write(&secret_file, &secret).unwrap();
    let ctx = busybox_context(
        &env,
        As::Root,
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY rootfs/ /\n\
             RUN --mount=type=cache,target=/cache --mount=type=secret,id=tok,target=/cache/tok \
             wc -c < /cache/tok > /cache/len && cp /cache/len /len\n",
        )],
    );
    let layout = env.path("out");
    let secret_arg = format!("id=tok,src={}", secret_file.display());
    env.build_to_layout(&ctx, "nested", &layout, &["--secret", &secret_arg]);
    let rootfs = umoci_unpack(&layout, "nested", &env.path("bundle"));
    let len = std::fs::read_to_string(rootfs.join("len")).unwrap();
    assert_eq!(len.trim(), secret.len().to_string());
    let needles = vec![secret];
    let mut found = Vec::new();
    scan_tree(&env.root(), &needles, &mut found);
    scan_tree(&layout, &needles, &mut found);
    assert!(found.is_empty(), "the secret leaked:\n{}", found.join("\n"));
}

/// The pids of the kiln processes (not their sandbox helpers) using the kiln root `root`.
fn kiln_pids(root: &Path) -> Vec<i32> {
    let needle = root.as_os_str().as_bytes();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let is_kiln = args.first().is_some_and(|a| a.ends_with(b"/kiln"));
        if is_kiln && args.contains(&needle) {
            pids.push(pid);
        }
    }
    pids
}

/// Whether a process whose command line holds `marker` is alive.
fn alive_with(marker: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline"))
            .map(|c| c.split(|&b| b == 0).any(|a| a == marker.as_bytes()))
            .unwrap_or(false)
    })
}

/// kiln killed with SIGKILL while a RUN holds a secret: the secret was only ever on the
/// sandbox's tmpfs, so no file under the kiln root holds it, though the RUN's scratch
/// directory is left behind.
fn a_killed_run_leaves_no_secret_on_disk(who: As) {
    use std::io::BufRead;
    let env = Env::for_user(who);
    let secret = fresh_secret();
    let secret_file = env.path("secret.txt");
    std::fs::write(&secret_file, &secret).unwrap();
    if who == As::Rootless {
        run_ok(Command::new("chown").args(["kilntest:kilntest"]).arg(&secret_file));
    }
    let marker = format!("{}", 900_000 + std::process::id() % 90_000);
    let ctx = busybox_context(
        &env,
        who,
        &[(
            "Dockerfile",
            &format!(
                "FROM scratch\nCOPY rootfs/ /\n\
                 RUN --mount=type=secret,id=tok --mount=type=secret,id=tok,target=/etc/tok,mode=0444 \
                 cat /run/secrets/tok /etc/tok > /dev/null && echo the-run-has-its-secret-$((6*7)) && sleep {marker}\n"
            ),
        )],
    );
    let secret_arg = format!("id=tok,src={}", secret_file.display());
    let c = ctx.display().to_string();
    let mut child = env
        .kiln_cmd_as(who, &["build", "--progress", "plain", "--secret", &secret_arg, &c])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read on a thread to the end, so that kiln never writes to a closed pipe.
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    for line in rx.iter() {
        let ready = line.contains("the-run-has-its-secret-42");
        seen.push(line);
        if ready {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.contains("the-run-has-its-secret-42")),
        "the RUN never started:\n{}",
        seen.join("\n")
    );
    let pids = kiln_pids(&env.root());
    assert!(!pids.is_empty(), "no kiln process found");
    for pid in pids {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let _ = child.wait();
    reader.join().unwrap();
    // The sandbox dies with kiln (parent-death signal); wait for it to be gone.
    let start = std::time::Instant::now();
    while alive_with(&marker) {
        assert!(start.elapsed().as_secs() < 60, "the RUN outlived kiln");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let runs: Vec<String> = std::fs::read_dir(env.root().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("run-"))
        .collect();
    assert_eq!(runs.len(), 1, "the killed RUN's scratch directory is left behind: {seen:?}");
    let needles = vec![
        secret.clone(),
        base64::engine::general_purpose::STANDARD.encode(&secret).into_bytes(),
    ];
    let mut found = Vec::new();
    let files = scan_tree(&env.root(), &needles, &mut found);
    assert!(files > 5, "{files} files scanned");
    assert!(found.is_empty(), "the secret is on disk:\n{}", found.join("\n"));
}

#[test]
fn a_killed_run_leaves_no_secret_on_disk_as_root() {
    a_killed_run_leaves_no_secret_on_disk(As::Root);
}

#[test]
fn a_killed_run_leaves_no_secret_on_disk_rootless() {
    a_killed_run_leaves_no_secret_on_disk(As::Rootless);
}
