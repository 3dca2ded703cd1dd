"""Everything a run needs before it measures: packages, the rootless user, base images, kiln.

All of it is idempotent: a second run finds what the first made and does nothing.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .util import CmdError, have, say, sh, tail

#: Debian packages the harness needs, with a file that proves each is installed.
PACKAGES = {
    "buildah": "/usr/bin/buildah",
    "skopeo": "/usr/bin/skopeo",
    "umoci": "/usr/bin/umoci",
    "runc": "/usr/sbin/runc",
    "docker-registry": "/usr/bin/docker-registry",
    "busybox-static": None,  # /bin/busybox may come from the dynamic `busybox` package
    "uidmap": "/usr/bin/newuidmap",
    "mmdebstrap": "/usr/bin/mmdebstrap",
    "pigz": "/usr/bin/pigz",
    "zstd": "/usr/bin/zstd",
    "time": "/usr/bin/time",
    "fuse-overlayfs": "/usr/bin/fuse-overlayfs",
    "slirp4netns": "/usr/bin/slirp4netns",
}

#: Installed only when the BuildKit column is wanted.
DOCKER_PACKAGES = {"docker.io": "/usr/sbin/dockerd"}

BENCH_USER = "kilnbench"


@dataclass
class Paths:
    """Where a run keeps things."""

    repo: Path  # the kiln checkout (parent of bench/)
    bench: Path  # bench/
    scratch: Path  # per-run data: contexts, stores, exports, logs
    cache: Path  # kept between runs: base images

    @property
    def logs(self) -> Path:
        """One log file per (case, tool) and one for setup."""
        return self.scratch / "logs"


def dpkg_installed(pkg: str) -> bool:
    """Whether dpkg says a package is installed."""
    proc = sh(["dpkg-query", "-W", "-f=${Status}", pkg], check=False)
    return proc.returncode == 0 and "install ok installed" in proc.stdout


def ensure_packages(want_docker: bool, log: Path) -> None:
    """apt-get install whatever is missing (apt-get update first, only when something is)."""
    wanted = dict(PACKAGES)
    if want_docker:
        wanted.update(DOCKER_PACKAGES)
    missing = [
        pkg
        for pkg, probe in wanted.items()
        if (probe is not None and not have(probe)) or (probe is None and not dpkg_installed(pkg))
    ]
    if not missing:
        return
    say(f"  apt-get install {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    sh(["apt-get", "update", "-q"], env=env, log=log, timeout=900)
    sh(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
        env=env,
        log=log,
        timeout=1800,
    )


@dataclass
class BenchUser:
    """The unprivileged user that runs rootless buildah and kiln."""

    name: str
    uid: int
    gid: int
    home: Path

    @property
    def runtime_dir(self) -> Path:
        """Its XDG_RUNTIME_DIR."""
        return Path(f"/run/user/{self.uid}")

    def env(self) -> dict[str, str]:
        """A clean environment for its commands."""
        return {
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
        }

    def wrap(self, argv: list[str], extra_env: dict[str, str] | None = None) -> list[str]:
        """The command line that runs `argv` as this user with a clean environment."""
        env = self.env()
        env.update(extra_env or {})
        pairs = [f"{k}={v}" for k, v in env.items()]
        return ["runuser", "-u", self.name, "--", "env", "-i", *pairs, *argv]


def _next_subid_start(path: Path) -> int:
    start = 100000
    try:
        for line in path.read_text().splitlines():
            parts = line.strip().split(":")
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                start = max(start, int(parts[1]) + int(parts[2]))
    except FileNotFoundError:
        pass
    return start


def ensure_user(log: Path) -> BenchUser:
    """Create the bench user with subordinate id ranges and a runtime dir (idempotent)."""
    try:
        pw = pwd.getpwnam(BENCH_USER)
    except KeyError:
        say(f"  creating user {BENCH_USER}")
        sh(["useradd", "--create-home", "--shell", "/bin/sh", BENCH_USER], log=log)
        pw = pwd.getpwnam(BENCH_USER)
    for kind, flag in (("subuid", "--add-subuids"), ("subgid", "--add-subgids")):
        path = Path(f"/etc/{kind}")
        text = path.read_text() if path.exists() else ""
        if not re.search(rf"^({BENCH_USER}|{pw.pw_uid}):\d+:\d+", text, re.M):
            start = _next_subid_start(path)
            sh(["usermod", flag, f"{start}-{start + 65535}", BENCH_USER], log=log)
    user = BenchUser(BENCH_USER, pw.pw_uid, pw.pw_gid, Path(pw.pw_dir))
    user.home.mkdir(parents=True, exist_ok=True)
    os.chown(user.home, user.uid, user.gid)
    user.runtime_dir.mkdir(parents=True, exist_ok=True)
    os.chown(user.runtime_dir, user.uid, user.gid)
    os.chmod(user.runtime_dir, 0o700)
    return user


def make_user_dir(path: Path, user: BenchUser) -> Path:
    """Create an empty directory owned by the bench user (removing what was there)."""
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.chown(path, user.uid, user.gid)
    return path


# ---------------------------------------------------------------- base images


@dataclass
class BaseImage:
    """A base image kept as an OCI layout (tag `latest`) in the cache dir."""

    key: str  # busybox, debian, debian-gcc
    placeholder: str  # how a case's Dockerfile names it, e.g. @BUSYBOX@
    layout: Path

    @property
    def ref_name(self) -> str:
        """The repository name each tool's store knows it by."""
        return f"kiln-bench/{self.key}"


BASES = {"busybox": "@BUSYBOX@", "debian": "@DEBIAN@", "debian-gcc": "@DEBIAN_GCC@"}


def debian_mirror() -> tuple[str, str]:
    """(suite, mirror URL) of this machine's Debian apt sources."""
    suite = "bookworm"
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                suite = line.split("=", 1)[1].strip().strip('"') or suite
    except OSError:
        pass
    mirror = "http://deb.debian.org/debian"
    src = Path("/etc/apt/sources.list.d/debian.sources")
    if src.exists():
        for block in src.read_text().split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", block, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", block, re.M)
            if uris and suites and suite in suites.group(1).split():
                mirror = uris.group(1)
                break
    else:
        lst = Path("/etc/apt/sources.list")
        if lst.exists():
            m = re.search(rf"^deb\s+(\S+)\s+{suite}\s", lst.read_text(), re.M)
            if m:
                mirror = m.group(1)
    return suite, mirror


def _recipe(key: str) -> str:
    suite, mirror = debian_mirror()
    if key == "busybox":
        digest = hashlib.sha256(Path("/bin/busybox").read_bytes()).hexdigest()
        return f"busybox-static {digest} v1"
    if key == "debian":
        return f"mmdebstrap minbase {suite} {mirror} v1"
    if key == "debian-gcc":
        return f"mmdebstrap minbase+gcc,libc6-dev {suite} {mirror} v1"
    raise ValueError(key)


def _busybox_rootfs_tar(work: Path) -> Path:
    rootfs = work / "rootfs"
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "tmp", "var"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    os.chmod(rootfs / "tmp", 0o1777)
    shutil.copy2("/bin/busybox", rootfs / "bin/busybox")
    applets = sh(["/bin/busybox", "--list-full"]).stdout.split()
    for applet in applets:
        if applet == "bin/busybox":
            continue
        link = rootfs / applet
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to("/bin/busybox")
    (rootfs / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (rootfs / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\n")
    tarball = work / "layer.tar"
    sh(
        [
            "tar",
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-C",
            str(rootfs),
            "-cf",
            str(tarball),
            ".",
        ]
    )
    return tarball


def _debian_rootfs_tar(work: Path, include: list[str], log: Path) -> Path:
    suite, mirror = debian_mirror()
    tarball = work / "layer.tar"
    argv = ["mmdebstrap", "--variant=minbase", "--format=tar"]
    if include:
        argv.append("--include=" + ",".join(include))
    argv += [suite, str(tarball), mirror]
    sh(argv, log=log, timeout=1800)
    return tarball


def ensure_base(key: str, cache: Path, log: Path) -> BaseImage:
    """Return the cached base image, building it first if the cache lacks it or is stale."""
    layout = cache / "images" / key
    stamp = layout / "kiln-bench-recipe"
    recipe = _recipe(key)
    base = BaseImage(key, BASES[key], layout)
    if stamp.exists() and stamp.read_text() == recipe:
        return base
    say(f"  making base image {key} (cached in {layout})")
    started = time.monotonic()
    work = cache / "tmp" / key
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if key == "busybox":
        tarball = _busybox_rootfs_tar(work)
        cmd, created_by = "/bin/sh", "busybox-static rootfs made by bench/run"
    elif key == "debian":
        tarball = _debian_rootfs_tar(work, [], log)
        cmd, created_by = "/bin/bash", "mmdebstrap --variant=minbase"
    else:
        tarball = _debian_rootfs_tar(work, ["gcc", "libc6-dev"], log)
        cmd, created_by = "/bin/bash", "mmdebstrap --variant=minbase --include=gcc,libc6-dev"
    tmp_layout = work / "layout"
    ref = f"{tmp_layout}:latest"
    sh(["umoci", "init", "--layout", str(tmp_layout)], log=log)
    sh(["umoci", "new", "--image", ref], log=log)
    sh(
        ["umoci", "raw", "add-layer", "--image", ref, "--history.created_by", created_by, str(tarball)],
        log=log,
        timeout=1800,
    )
    sh(
        [
            "umoci",
            "config",
            "--image",
            ref,
            "--config.cmd",
            cmd,
            "--config.env",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ],
        log=log,
    )
    (tmp_layout / "kiln-bench-recipe").write_text(recipe)
    sh(["chmod", "-R", "a+rX", str(tmp_layout)])
    shutil.rmtree(layout, ignore_errors=True)
    layout.parent.mkdir(parents=True, exist_ok=True)
    tmp_layout.rename(layout)
    shutil.rmtree(work, ignore_errors=True)
    say(f"    {key}: {time.monotonic() - started:.0f} s")
    return base


# ---------------------------------------------------------------- kiln binary


def build_kiln(paths: Paths, log: Path) -> tuple[Path | None, str]:
    """`cargo build --release -p kiln`; returns (a private copy of the binary, "") or (None, why)."""
    cargo = shutil.which("cargo") or str(Path.home() / ".cargo/bin/cargo")
    if not have(cargo):
        return None, "cargo not found, so kiln could not be built"
    env = dict(os.environ, CARGO_TARGET_DIR=str(paths.repo / "target"))
    say("  cargo build --release -p kiln")
    try:
        proc = sh(
            [cargo, "build", "--release", "-p", "kiln"], cwd=paths.repo, env=env, check=False, log=log, timeout=3600
        )
    except CmdError as e:
        return None, f"cargo build did not finish: {e}"
    if proc.returncode != 0:
        errors = [l for l in proc.stdout.splitlines() if l.startswith("error")]
        first = errors[0] if errors else tail(proc.stdout, 2)
        return None, f"`cargo build --release -p kiln` failed: {first}"
    built = paths.repo / "target" / "release" / "kiln"
    if not built.exists():
        return None, f"cargo succeeded but {built} is missing"
    dest = paths.scratch / "bin" / "kiln"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(built, dest)
    os.chmod(dest, 0o755)
    os.chmod(dest.parent, 0o755)
    return dest, ""


def git_describe(repo: Path) -> str:
    """The checkout's commit (read-only git), with '+dirty' when the tree has changes."""
    try:
        rev = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "") if rev else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
