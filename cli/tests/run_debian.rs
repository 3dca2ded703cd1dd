//! RUN on a real Debian base: `apt-get install` of a real package inside the sandbox, as root
//! and rootless. The base is a `mmdebstrap` rootfs (made once per machine, cached) added with
//! kiln's own `ADD` of a tar archive.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A Debian bookworm minbase rootfs tar, made with mmdebstrap once and kept in /var/cache.
fn debian_tar() -> PathBuf {
    require("mmdebstrap");
    let dir = Path::new("/var/cache/kiln-test");
    let tar = dir.join("debian-bookworm-minbase.tar");
    if tar.exists() {
        return tar;
    }
    std::fs::create_dir_all(dir).unwrap();
    // Both tests may ask at once: one makes it, the other waits for it.
    let lock = std::fs::File::create(dir.join(".lock")).unwrap();
    assert_eq!(unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) }, 0);
    if tar.exists() {
        return tar;
    }
    let partial = dir.join(format!("debian.tar.{}", std::process::id()));
    let mirror = "http://deb.debian.org/debian";
    run_ok(
        Command::new("mmdebstrap")
            .args(["--variant=minbase", "--format=tar", "--quiet", "bookworm"])
            .arg(&partial)
            .arg(mirror),
    );
    std::fs::rename(&partial, &tar).unwrap();
    tar
}

fn apt_install(who: As) {
    let tar = debian_tar();
    let env = Env::for_user(who);
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    // A hard link would cross devices; the test user must be able to read the copy.
    std::fs::copy(&tar, ctx.join("debian.tar")).unwrap();
    env.write_as(who, &ctx, &[(
        "Dockerfile",
        "FROM scratch\nADD debian.tar /\n\
         RUN apt-get update && apt-get install -y --no-install-recommends hello && rm -rf /var/lib/apt/lists/*\n\
         RUN hello > /greeting\nCMD [\"hello\"]\n",
    )]);
    let layout = env.path("out");
    let dest = format!("type=oci,dest={}", layout.display());
    let out = env.kiln_as(
        who,
        &["build", "--progress", "plain", "-t", "deb:1", "--output", &dest, ctx.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rootfs = umoci_unpack(&layout, "1", &env.path("bundle"));
    assert!(rootfs.join("usr/bin/hello").is_file(), "hello was installed");
    assert_eq!(std::fs::read_to_string(rootfs.join("greeting")).unwrap(), "Hello, world!\n");
    assert!(!rootfs.join("var/lib/apt/lists/partial").exists());
    // dpkg's own record of it, as apt left it.
    let status = std::fs::read_to_string(rootfs.join("var/lib/dpkg/status")).unwrap();
    assert!(status.contains("Package: hello\nStatus: install ok installed"), "dpkg status");
}

#[test]
fn apt_get_install_in_a_debian_base_as_root() {
    apt_install(As::Root);
}

#[test]
fn apt_get_install_in_a_debian_base_rootless() {
    apt_install(As::Rootless);
}
