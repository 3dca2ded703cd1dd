"""Buildah: `buildah build --layers` with runc, as root or rootless (as the bench user)."""

from __future__ import annotations

import re
from pathlib import Path

from ..setup import BaseImage, BenchUser, make_user_dir
from ..util import Sample, debug, have, sh, timed
from .base import Tool

_STEP = re.compile(r"STEP \d+/\d+: (\w+)")


class Buildah(Tool):
    """`buildah build --layers` with runc, as root or as the bench user (rootless)."""

    def __init__(self, rootless: bool, user: BenchUser, store: Path, jobs: int, extra: bool = False):
        """`extra`: a further `--buildah-jobs` value, a root column of its own (`buildah-jN`)."""
        super().__init__()
        self.rootless = rootless
        self.key = "buildah-rootless" if rootless else "buildah"
        self.label = "buildah rootless" if rootless else "buildah root"
        if extra:
            self.key, self.label = f"buildah-j{jobs}", f"buildah root --jobs {jobs}"
        self.user = user
        self.store = store
        self.root = store / "root"
        self.runroot = (user.runtime_dir / "kiln-bench-buildah") if rootless else store / "run"
        self.jobs = jobs
        self.build_help = ""
        self.method_notes.append(
            f"{self.label}: `buildah build --layers --runtime runc --network host --jobs {jobs}`, "
            f"overlay storage in a dedicated --root; cold = every image but the base images removed "
            f"(`buildah rm -a`, `buildah rmi -f`), bases copied in once with skopeo"
            + ("; run as the unprivileged user via runuser" if rootless else "")
            + "; export = `buildah push [--compression-format zstd] IMAGE oci-archive:x.tar`; remote cache = "
            "`buildah build --cache-to REPO` / `--cache-from REPO` (`--tls-verify=false`; one image per cached step)"
        )

    def _wrap(self, argv: list[str]) -> list[str]:
        return self.user.wrap(argv) if self.rootless else argv

    def _buildah(self, *args: str) -> list[str]:
        return self._wrap(
            ["buildah", "--root", str(self.root), "--runroot", str(self.runroot), "--storage-driver", "overlay", *args]
        )

    def _storage_spec(self) -> str:
        return f"[overlay@{self.root}+{self.runroot}]"

    def start(self) -> None:
        if not have("buildah"):
            self.available, self.reason = False, "buildah is not installed"
            return
        self.build_help = sh(["buildah", "build", "--help"], check=False).stdout
        if self.rootless:
            make_user_dir(self.store, self.user)
            sh(self.user.wrap(["mkdir", "-p", str(self.runroot)]))
        else:
            self.store.mkdir(parents=True, exist_ok=True)

    def stop(self) -> None:
        if not self.available:
            return
        for args in (("rm", "-a"), ("rmi", "-a", "-f")):
            sh(self._buildah(*args), check=False)

    def version(self) -> str:
        return sh(["buildah", "--version"], check=False).stdout.strip()

    def base_refs(self, bases: list[BaseImage]) -> dict[str, str]:
        return {b.placeholder: f"localhost/{b.ref_name}:latest" for b in bases}

    def _images(self) -> list[tuple[str, str]]:
        """(id, name:tag) of every image in the store, intermediate ones included."""
        out = sh(
            self._buildah("images", "-a", "--no-trunc", "--format", "{{.ID}} {{.Name}}:{{.Tag}}"), check=False
        ).stdout
        rows = []
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0].startswith("sha256:"):
                rows.append((parts[0].removeprefix("sha256:"), parts[1]))
        return rows

    def reset(self, bases: list[BaseImage]) -> None:
        """Remove every container and every image but the wanted bases (which are kept, not
        re-copied: copying the Debian+gcc base takes ~6 s); then copy in missing bases."""
        sh(self._buildah("rm", "-a"), check=False)
        keep_names = {f"localhost/{b.ref_name}:latest" for b in bases}
        images = self._images()
        keep_ids = {i for i, name in images if name in keep_names}
        drop = sorted({i for i, _ in images} - keep_ids)
        if drop:
            sh(self._buildah("rmi", "-f", *drop), check=False)
        left = {i for i, _ in self._images()}
        if left - keep_ids:
            debug("buildah store not empty after rmi; wiping it")
            sh(self._buildah("rmi", "-a", "-f"), check=False)
            if self._images():
                sh(["rm", "-rf", str(self.root)], check=False)
        present = {name for _, name in self._images()}
        for b in bases:
            if f"localhost/{b.ref_name}:latest" not in present:
                sh(
                    self._wrap(
                        [
                            "skopeo",
                            "copy",
                            "-q",
                            f"oci:{b.layout}:latest",
                            f"containers-storage:{self._storage_spec()}localhost/{b.ref_name}:latest",
                        ]
                    ),
                    timeout=900,
                )

    def _build_argv(self, dockerfile: Path, context: Path, tag: str, *extra: str) -> list[str]:
        return self._buildah(
            "build",
            "--runtime",
            "runc",
            "--layers",
            "--network",
            "host",
            "--jobs",
            str(self.jobs),
            *extra,
            "-f",
            str(dockerfile),
            "-t",
            tag,
            str(context),
        )

    def build(self, dockerfile: Path, context: Path, tag: str, log: Path) -> Sample:
        return timed(self._build_argv(dockerfile, context, tag), log=log)

    def image_present(self, tag: str, log: Path) -> bool:
        return sh(self._buildah("inspect", "--type", "image", tag), check=False).returncode == 0

    def export(
        self, dockerfile: Path, context: Path, tag: str, dest: Path, log: Path, compression: str = "gzip"
    ) -> Sample:
        fmt = [] if compression == "gzip" else ["--compression-format", compression]
        return timed(self._buildah("push", "--quiet", *fmt, tag, f"oci-archive:{dest}"), log=log)

    def unsupported(self, scenario: str) -> str:
        if scenario == "cache" and "--cache-to" not in self.build_help:
            return "this buildah has no `build --cache-to` (buildah 1.27 added it)"
        return ""

    def cache_export(
        self, dockerfile: Path, context: Path, tag: str, registry: str, repo: str, log: Path
    ) -> Sample:
        extra = ("--cache-to", f"{registry}/{repo}", "--tls-verify=false")
        return timed(self._build_argv(dockerfile, context, tag, *extra), log=log)

    def cache_import(
        self, dockerfile: Path, context: Path, tag: str, registry: str, repo: str, log: Path
    ) -> Sample:
        extra = ("--cache-from", f"{registry}/{repo}", "--tls-verify=false")
        return timed(self._build_argv(dockerfile, context, tag, *extra), log=log)

    def cached_steps(self, output: str) -> int:
        """`STEP i/n: RUN …` followed by `--> Using cache …` (or `--> Cache pulled from remote …`)."""
        hits, instr, counted = 0, "", False
        for line in output.splitlines():
            m = _STEP.search(line)
            if m:
                instr, counted = m.group(1).upper(), False
            elif not counted and instr in ("RUN", "COPY", "ADD") and (
                "Using cache" in line or "Cache pulled from remote" in line
            ):
                hits, counted = hits + 1, True
        return hits

    def push(self, tag: str, ref: str, log: Path) -> Sample:
        return timed(self._buildah("push", "--quiet", "--tls-verify=false", tag, f"docker://{ref}"), log=log)

    def pull(self, ref: str, log: Path) -> Sample:
        return timed(self._buildah("pull", "--quiet", "--tls-verify=false", f"docker://{ref}"), log=log)
