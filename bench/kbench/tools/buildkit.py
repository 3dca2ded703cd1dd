"""BuildKit, as the builder inside a private dockerd from Debian's docker.io package."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

from ..setup import BaseImage
from ..util import Sample, have, sh, tail, timed
from .base import Tool, add, plain_cached_steps
#: What docker 20.10 says when asked for an output or option its builder does not have.
_CANNOT = re.compile(
    r"not supported|unsupported|unknown (flag|exporter|compression)|invalid (output|compression)"
    r"|exporter \S+ could not be found",
    re.I,
)


def _proc_status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, val = line.split(":", 1)
                out[key] = int(val.split()[0])
    except (OSError, ValueError):
        pass
    return out


class BuildKit(Tool):
    """Debian's docker.io daemon (20.10) with `DOCKER_BUILDKIT=1 /usr/bin/docker build`.

    The harness starts its own dockerd with a private data root and socket. Peak memory is the
    daemon's: its high-water mark is reset (/proc/PID/clear_refs) before each command and read
    after, and the growth over the resident size at the start is reported.
    """

    key = "buildkit"
    label = "buildkit"

    def __init__(self, workdir: Path, log: Path):
        super().__init__()
        self.dir = workdir
        self.log = log
        self.sock = workdir / "docker.sock"
        self.proc: subprocess.Popen | None = None
        self.env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(workdir / "home"),
            "DOCKER_HOST": f"unix://{self.sock}",
            "DOCKER_BUILDKIT": "1",
            "DOCKER_CONFIG": str(workdir / "client-config"),
        }
        self.method_notes += [
            "buildkit: Debian's docker.io (dockerd 20.10 with its BuildKit builder), a private dockerd "
            "started by the harness (own --data-root and socket), `DOCKER_BUILDKIT=1 /usr/bin/docker build "
            "--network host`; cold = `docker builder prune -af` + `docker rmi` of every image but the "
            "base images (loaded with skopeo)",
            "buildkit peak RSS: the client's RSS says nothing, so the column shows how much dockerd's "
            "resident set grew during the command (peak minus its size at the start)",
            "buildkit export is `docker save` (a docker-archive, uncompressed layers), not an OCI archive; "
            "export-zstd asks `docker build -o type=oci,dest=x.tar,compression=zstd`",
            "buildkit remote cache: docker 20.10 without buildx has no `--cache-to`, so the cache is BuildKit's "
            "inline cache: cache-export = `docker build --build-arg BUILDKIT_INLINE_CACHE=1` + `docker push` "
            "(timed together), cache-import = `docker build --cache-from REF` after the build cache and images "
            "were removed. An inline cache is mode=min: it holds the final image's layers only; when the "
            "final stage hits, the other stages are skipped, but a change in one of them finds nothing cached",
        ]

    def _docker(self, *args: str) -> list[str]:
        return ["/usr/bin/docker", *args]

    def start(self) -> None:
        if not (have("/usr/bin/docker") and have("/usr/sbin/dockerd")):
            self.available, self.reason = False, "Debian's docker.io is not installed (/usr/bin/docker, dockerd)"
            return
        shutil.rmtree(self.dir, ignore_errors=True)
        for d in ("data", "exec", "home", "client-config"):
            (self.dir / d).mkdir(parents=True, exist_ok=True)
        logf = open(self.log, "a")
        self.proc = subprocess.Popen(
            [
                "/usr/sbin/dockerd",
                "--data-root",
                str(self.dir / "data"),
                "--exec-root",
                str(self.dir / "exec"),
                "-H",
                f"unix://{self.sock}",
                "--pidfile",
                str(self.dir / "docker.pid"),
                "--bridge",
                "none",
                "--iptables=false",
                "--ip-masq=false",
                "--containerd-namespace",
                "kiln-bench",
                "--containerd-plugins-namespace",
                "kiln-bench-plugins",
            ],
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if sh(self._docker("version"), env=self.env, check=False, timeout=10).returncode == 0:
                return
            time.sleep(0.5)
        self.stop()
        log_tail = tail(self.log.read_text(errors="replace"), 3) if self.log.exists() else ""
        self.available = False
        self.reason = f"dockerd did not start here: {log_tail}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def version(self) -> str:
        v = sh(self._docker("version", "--format", "{{.Server.Version}}"), env=self.env, check=False)
        return f"dockerd {v.stdout.strip()} (BuildKit builder), client /usr/bin/docker"

    def _timed(self, argv: list[str], log: Path) -> Sample:
        pid = self.proc.pid if self.proc is not None else 0
        before = _proc_status(pid).get("VmRSS")
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
            reset_ok = True
        except OSError:
            reset_ok = False
        s = timed(argv, env=self.env, log=log, rss=False)
        after = _proc_status(pid).get("VmHWM")
        if reset_ok and before is not None and after is not None:
            s.rss_kb = max(0, after - before)
        return s

    def base_refs(self, bases: list[BaseImage]) -> dict[str, str]:
        return {b.placeholder: f"{b.ref_name}:latest" for b in bases}

    def _images(self) -> list[tuple[str, str]]:
        out = sh(
            self._docker("image", "ls", "-a", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"),
            env=self.env,
            check=False,
        ).stdout
        return [(p[0], p[1]) for p in (l.split() for l in out.splitlines()) if len(p) == 2]

    def reset(self, bases: list[BaseImage]) -> None:
        """Prune the build cache and remove every image but the wanted bases (kept, as for buildah);
        load missing bases with skopeo."""
        sh(self._docker("builder", "prune", "-af"), env=self.env, check=False)
        keep_names = {f"{b.ref_name}:latest" for b in bases}
        images = self._images()
        keep_ids = {i for i, name in images if name in keep_names}
        drop = sorted({i for i, _ in images} - keep_ids)
        if drop:
            sh(self._docker("rmi", "-f", *drop), env=self.env, check=False)
        present = {name for _, name in self._images()}
        for b in bases:
            if f"{b.ref_name}:latest" not in present:
                sh(
                    [
                        "skopeo",
                        "copy",
                        "-q",
                        "--dest-daemon-host",
                        f"unix://{self.sock}",
                        f"oci:{b.layout}:latest",
                        f"docker-daemon:{b.ref_name}:latest",
                    ],
                    timeout=900,
                )

    def build(self, dockerfile: Path, context: Path, tag: str, log: Path) -> Sample:
        return self._timed(
            self._docker(
                "build", "--network", "host", "--progress", "plain", "-f", str(dockerfile), "-t", tag, str(context)
            ),
            log,
        )

    def image_present(self, tag: str, log: Path) -> bool:
        return sh(self._docker("image", "inspect", tag), env=self.env, check=False).returncode == 0

    def _build_argv(self, dockerfile: Path, context: Path, tag: str, *extra: str) -> list[str]:
        return self._docker(
            "build", "--network", "host", "--progress", "plain", *extra, "-f", str(dockerfile), "-t", tag, str(context)
        )

    def export(
        self, dockerfile: Path, context: Path, tag: str, dest: Path, log: Path, compression: str = "gzip"
    ) -> Sample:
        if compression == "gzip":
            return self._timed(self._docker("save", "-o", str(dest), tag), log)
        out = f"type=oci,dest={dest},compression={compression}"
        return self._timed(self._build_argv(dockerfile, context, tag, "--output", out), log)

    def cache_export(
        self, dockerfile: Path, context: Path, tag: str, registry: str, repo: str, log: Path
    ) -> Sample:
        ref = f"{registry}/{repo}:cache"
        built = self._timed(
            self._build_argv(dockerfile, context, tag, "--build-arg", "BUILDKIT_INLINE_CACHE=1", "-t", ref), log
        )
        if not built.ok:
            return built
        return add(built, self._timed(self._docker("push", "--quiet", ref), log))

    def cache_import(
        self, dockerfile: Path, context: Path, tag: str, registry: str, repo: str, log: Path
    ) -> Sample:
        ref = f"{registry}/{repo}:cache"
        return self._timed(self._build_argv(dockerfile, context, tag, "--cache-from", ref), log)

    cache_note = (
        " (an inline cache: it carries the final stage's layers; the other stages' steps count as cached "
        "when the final stage hits, as their results are not needed)"
    )

    def cached_steps(self, output: str) -> int:
        return plain_cached_steps(output)

    def classify(self, sample: Sample) -> tuple[str, str, str]:
        lines = [l.strip() for l in sample.output.splitlines() if l.strip()]
        hit = next((l for l in lines if _CANNOT.search(l)), None)
        if hit is not None:
            return "na", "n/a (docker 20.10)", f"docker 20.10 cannot: {hit[:200]}"
        return super().classify(sample)

    def push(self, tag: str, ref: str, log: Path) -> Sample:
        sh(self._docker("tag", tag, ref), env=self.env)
        return self._timed(self._docker("push", "--quiet", ref), log)

    def pull(self, ref: str, log: Path) -> Sample:
        return self._timed(self._docker("pull", "--quiet", ref), log)
