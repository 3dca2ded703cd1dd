"""The interface every builder adapter implements."""

from __future__ import annotations

import re
from pathlib import Path

from ..setup import BaseImage
from ..util import Sample, tail


_VERTEX = re.compile(r"^#(\d+) \[[^\]]*\] (\w+)")
_CACHED = re.compile(r"^#(\d+) CACHED\b")


def plain_cached_steps(output: str) -> int:
    """In BuildKit's plain progress (kiln prints the same): `#N [stage i/n] RUN …` vertices that
    also print `#N CACHED`, counting RUN, COPY and ADD."""
    instr: dict[str, str] = {}
    cached: set[str] = set()
    for line in output.splitlines():
        m = _VERTEX.match(line)
        if m:
            instr[m.group(1)] = m.group(2).upper()
        m = _CACHED.match(line)
        if m:
            cached.add(m.group(1))
    return sum(1 for v in cached if instr.get(v) in ("RUN", "COPY", "ADD"))


def add(a: Sample, b: Sample) -> Sample:
    """Two commands timed as one: seconds summed, the larger peak RSS, outputs joined."""
    rss = max((r for r in (a.rss_kb, b.rss_kb) if r is not None), default=None)
    return Sample(a.seconds + b.seconds, a.ok and b.ok, b.rc if a.ok else a.rc, rss, a.output + "\n" + b.output)


class Unsupported(Exception):
    """The tool cannot do this scenario (yet); the message says why."""


class Tool:
    """The interface the runner uses. Subclasses fill it in."""

    key = ""  # kiln, buildah, buildah-rootless, buildkit
    label = ""  # column header
    rootless = False

    def __init__(self) -> None:
        self.available = True
        self.reason = ""  # why unavailable
        self.method_notes: list[str] = []  # how this tool's numbers were taken

    def start(self) -> None:
        """Prepare once per run (start a daemon, probe features)."""

    def stop(self) -> None:
        """Undo start()."""

    def version(self) -> str:
        """A one-line version string for RESULTS.md."""
        return ""

    def base_refs(self, bases: list[BaseImage]) -> dict[str, str]:
        """Dockerfile placeholder → the name this tool finds the base image under."""
        raise NotImplementedError

    def reset(self, bases: list[BaseImage]) -> None:
        """Empty the tool's store and build cache, then load `bases` (not timed)."""
        raise NotImplementedError

    def build(self, dockerfile: Path, context: Path, tag: str, log: Path) -> Sample:
        """Timed build of `context` with `dockerfile`, tagged `tag`."""
        raise NotImplementedError

    def image_present(self, tag: str, log: Path) -> bool:
        """Whether the store holds `tag` after a build."""
        return True

    def export(
        self, dockerfile: Path, context: Path, tag: str, dest: Path, log: Path, compression: str = "gzip"
    ) -> Sample:
        """Timed write of the image to an archive at `dest`, layers in `compression` (gzip, zstd)."""
        raise NotImplementedError

    def export_reuses_conversions(self, compression: str) -> bool:
        """Whether the tool keeps a layer it converted to `compression` for the next export (then
        each repetition starts from a fresh store, so every one converts)."""
        return False

    #: Appended to the cache-import note (how the tool's cache works, when it differs).
    cache_note = ""

    def cache_export(
        self, dockerfile: Path, context: Path, tag: str, registry: str, repo: str, log: Path
    ) -> Sample:
        """Timed build that also exports its build cache to `registry`/`repo` (a new repository)."""
        raise NotImplementedError

    def cache_import(
        self, dockerfile: Path, context: Path, tag: str, registry: str, repo: str, log: Path
    ) -> Sample:
        """Timed build (on an emptied store) that may take steps from the cache in `registry`/`repo`."""
        raise NotImplementedError

    def cached_steps(self, output: str) -> int:
        """How many RUN/COPY/ADD steps a build's output reports as cached; -1 when unknown."""
        return -1

    def push(self, tag: str, ref: str, log: Path) -> Sample:
        """Timed push of `tag` to the registry reference `ref`."""
        raise NotImplementedError

    def pull(self, ref: str, log: Path) -> Sample:
        """Timed pull of `ref` into the (empty) store."""
        raise NotImplementedError

    def unsupported(self, scenario: str) -> str:
        """Why this tool cannot do `scenario` (export, export-zstd, push, pull, cache) yet; "" when it can."""
        return ""

    def classify(self, sample: Sample) -> tuple[str, str, str]:
        """(status, table label, reason) for a failed command."""
        return "error", "error", f"exit {sample.rc}: {tail(sample.output, 3)}"
