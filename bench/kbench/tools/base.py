"""The interface every builder adapter implements."""

from __future__ import annotations

from pathlib import Path

from ..setup import BaseImage
from ..util import Sample, tail


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

    def export(self, dockerfile: Path, context: Path, tag: str, dest: Path, log: Path) -> Sample:
        """Timed write of the image to an archive at `dest`."""
        raise NotImplementedError

    def push(self, tag: str, ref: str, log: Path) -> Sample:
        """Timed push of `tag` to the registry reference `ref`."""
        raise NotImplementedError

    def pull(self, ref: str, log: Path) -> Sample:
        """Timed pull of `ref` into the (empty) store."""
        raise NotImplementedError

    def unsupported(self, scenario: str) -> str:
        """Why this tool cannot do `scenario` (export, push, pull) yet; "" when it can."""
        return ""

    def classify(self, sample: Sample) -> tuple[str, str, str]:
        """(status, table label, reason) for a failed command."""
        return "error", "error", f"exit {sample.rc}: {tail(sample.output, 3)}"
