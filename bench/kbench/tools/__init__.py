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
    user: BenchUser, scratch: Path, kiln_bin: Path | None, kiln_why: str, jobs: int, logs: Path
) -> dict[str, Tool]:
    """Every tool adapter, keyed by name, in table-column order."""
    stores = scratch / "stores"
    return {
        "kiln": Kiln(kiln_bin, kiln_why, user, stores / "kiln"),
        "buildah": Buildah(False, user, stores / "buildah-root", jobs),
        "buildah-rootless": Buildah(True, user, stores / "buildah-rootless", jobs),
        "buildkit": BuildKit(scratch / "docker", logs / "dockerd.log"),
    }
