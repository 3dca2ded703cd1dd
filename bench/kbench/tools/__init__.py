"""One adapter per builder: how to empty its store, build, export, push and pull, and time it.

Every adapter keeps its state in a dedicated dir under the run's scratch dir, so a user's own
images and caches are never touched.
"""

from __future__ import annotations

from pathlib import Path

from ..setup import BenchUser
from .base import Tool, Unsupported
from .buildah import Buildah
from .buildkit import BuildKit
from .kiln import Kiln

__all__ = ["Tool", "Unsupported", "Buildah", "BuildKit", "Kiln", "all_tools"]


def all_tools(
    user: BenchUser, scratch: Path, kiln_bin: Path | None, kiln_why: str, jobs: list[int], logs: Path
) -> dict[str, Tool]:
    """Every tool adapter, keyed by name, in table-column order. Buildah root and rootless run
    with `--jobs jobs[0]`; each further value is a root buildah of its own (`buildah-jN`)."""
    stores = scratch / "stores"
    tools: dict[str, Tool] = {
        "kiln": Kiln(kiln_bin, kiln_why, user, stores / "kiln"),
        "buildah": Buildah(False, user, stores / "buildah-root", jobs[0]),
        "buildah-rootless": Buildah(True, user, stores / "buildah-rootless", jobs[0]),
    }
    for n in jobs[1:]:
        extra = Buildah(False, user, stores / f"buildah-root-j{n}", n, extra=True)
        tools[extra.key] = extra
    tools["buildkit"] = BuildKit(scratch / "docker", logs / "dockerd.log")
    return tools
