"""The benchmark cases: where their files come from, what is generated, what changes.

A case is a folder `bench/cases/<name>/` holding a `Dockerfile` (base images written as
placeholders such as `@BUSYBOX@`, replaced per tool) and its small sources. Big contexts are
generated here, deterministically (seeded), into the run's scratch dir.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

#: A fixed mtime for generated files, so two runs produce identical trees.
FIXED_MTIME = 1_700_000_000

# Bytes drawn uniformly and mapped through this table have about 4.4 bits of entropy per byte:
# gzip shrinks them to roughly 60 %, like source code and text. "Binary" files are half raw
# random bytes (incompressible) and half such text.
_ALPHABET = (
    b"eeeeeeeeeettttttaaaaaooooooiiiiinnnnnssssshhhhrrrrdddlllcccuuummwwffggyyppbbvkjxqz"
    b"                    \n\n\n\n(){};=_,.:0123456789EATS"
)
_TABLE = bytes(_ALPHABET[i % len(_ALPHABET)] for i in range(256))


def _content(rng: random.Random, size: int, binary: bool) -> bytes:
    if binary:
        half = size // 2
        return rng.randbytes(half) + rng.randbytes(size - half).translate(_TABLE)
    return rng.randbytes(size).translate(_TABLE)


@dataclass
class Group:
    """A part of a generated tree: a folder, its share of files and bytes, the file kind."""

    folder: str
    file_share: float
    byte_share: float
    exts: tuple[str, ...]
    binary: bool


def generate_tree(root: Path, seed: int, files: int, total_bytes: int, groups: list[Group]) -> int:
    """Write `files` files of `total_bytes` bytes in all under `root`; returns the bytes written.

    Sizes follow a log-normal spread (many small files, a few big ones); about 25 files per
    folder, two folder levels per group. The same arguments always give the same tree.
    """
    written = 0
    for gi, g in enumerate(groups):
        rng = random.Random(seed * 1000 + gi)
        n = max(1, round(files * g.file_share))
        weights = [rng.lognormvariate(0.0, 1.4) for _ in range(n)]
        scale = total_bytes * g.byte_share / sum(weights)
        for i, w in enumerate(weights):
            size = max(1, int(w * scale))
            rel = Path(g.folder) / f"d{i // 625:02d}" / f"e{(i // 25) % 25:02d}" / f"f{i:05d}{g.exts[i % len(g.exts)]}"
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_content(rng, size, g.binary))
            os.utime(path, (FIXED_MTIME, FIXED_MTIME))
            written += size
    return written


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (FIXED_MTIME, FIXED_MTIME))


# ---------------------------------------------------------------- generators per case


def gen_scratch_static(ctx: Path, quick: bool) -> None:
    """The 'application' is busybox-static's binary (a ~2 MB static executable)."""
    shutil.copy2("/bin/busybox", ctx / "app")
    os.utime(ctx / "app", (FIXED_MTIME, FIXED_MTIME))


def gen_manylayers(ctx: Path, quick: bool) -> None:
    """15 text files of 64 KiB, one per COPY step."""
    rng = random.Random(3)
    for i in range(1, 16):
        _write(ctx / f"layer-{i:02d}.txt", _content(rng, 64 * 1024, False))


BIGCONTEXT = {"full": (20_000, 200_000_000), "quick": (5_000, 20_000_000)}


def gen_bigcontext(ctx: Path, quick: bool) -> None:
    """A source tree with assets, plus build output, VCS data and logs that .dockerignore drops."""
    files, total = BIGCONTEXT["quick" if quick else "full"]
    groups = [
        Group("src", 0.70, 0.45, (".c", ".h", ".rs", ".py", ".js", ".go", ".md"), False),
        Group("assets", 0.05, 0.25, (".png", ".bin", ".woff"), True),
        Group("build", 0.12, 0.15, (".o", ".a", ".d"), True),  # ignored
        Group(".git/objects", 0.10, 0.10, ("",), True),  # ignored
        Group("logs", 0.03, 0.05, (".log",), False),  # ignored, except logs/keep.log
    ]
    generate_tree(ctx, 11, files - 2, total, groups)
    _write(ctx / "src/app/main.c", b'#include <stdio.h>\nint main(void) { puts("bigcontext"); return 0; }\n')
    _write(ctx / "logs/keep.log", b"this log is re-included by a ! rule\n")


BIGIMAGE = {"full": (4_000, 500_000_000), "quick": (1_000, 60_000_000)}


def gen_bigimage(ctx: Path, quick: bool) -> None:
    """A rootfs-like tree: executables and libraries (binary), docs and data (text)."""
    files, total = BIGIMAGE["quick" if quick else "full"]
    root = ctx / "rootfs"
    groups = [
        Group("usr/bin", 0.10, 0.30, ("",), True),
        Group("usr/lib/x86_64-linux-gnu", 0.20, 0.45, (".so", ".so.1", ".a"), True),
        Group("usr/share", 0.65, 0.22, (".txt", ".html", ".gz", ".mo"), False),
        Group("etc", 0.05, 0.03, (".conf", ""), False),
    ]
    generate_tree(root, 22, files - 1, total, groups)
    shutil.copy2("/bin/busybox", root / "usr/bin/app")
    os.utime(root / "usr/bin/app", (FIXED_MTIME, FIXED_MTIME))


# ---------------------------------------------------------------- the cases


@dataclass
class Case:
    """One benchmark case."""

    name: str
    summary: str
    mutate: str  # the file (relative to the context) that the incremental scenario changes
    generate: Callable[[Path, bool], None] | None = None
    floor_dir: str = "."  # what the physical floors read (relative to the context)
    #: scenarios measured by `--quick` (a full run measures all of them)
    quick: tuple[str, ...] = ("cold", "warm", "incremental")

    def source_dir(self, bench: Path) -> Path:
        """The case's folder in the repo."""
        return bench / "cases" / self.name

    def bases(self, bench: Path) -> list[str]:
        """Base image keys the Dockerfile refers to through placeholders."""
        from .setup import BASES

        text = (self.source_dir(bench) / "Dockerfile").read_text()
        return [key for key, ph in BASES.items() if ph in text]


ALL = ("cold", "warm", "incremental", "export", "push", "pull")

#: Instructions whose steps make layers (what a remote cache carries).
CONTENT_STEPS = ("RUN ", "COPY ", "ADD ")

CASES = [
    Case(
        "scratch-static",
        "a static binary (busybox-static) and a config file on FROM scratch",
        "app",
        gen_scratch_static,
        quick=ALL,
    ),
    Case(
        "manylayers",
        "busybox base, 15 COPY + 15 ENV steps (30 steps)",
        "layer-08.txt",
        gen_manylayers,
        quick=("cold", "warm"),
    ),
    Case(
        "bigcontext",
        "COPY . of a 20,000-file, 200 MB context; .dockerignore drops ~30 % of the bytes",
        "src/app/main.c",
        gen_bigcontext,
    ),
    Case(
        "multistage",
        "4 independent gcc compile stages (Debian+gcc base) + final COPY --from onto busybox",
        "b.c",
        quick=("cold", "warm", "cache-export", "cache-import"),
    ),  # --quick: two stages
    Case(
        "apt",
        "two stages: Debian base, apt-get install gcc, compile an app; final Debian stage copies it",
        "app.c",
        quick=("cold", "warm"),
    ),
    Case(
        "runs", "busybox base, 50 `RUN true` steps with a COPY in the middle", "input.txt", quick=("cold", "warm")
    ),  # --quick: 10 steps
    Case(
        "bigimage",
        "FROM scratch, COPY of a generated ~500 MB rootfs tree (one layer)",
        "rootfs/usr/bin/app",
        gen_bigimage,
        floor_dir="rootfs",
        quick=("cold", "export", "export-zstd", "push", "pull"),
    ),
]

CASE_NAMES = [c.name for c in CASES]


class Workspace:
    """A case's context and per-tool Dockerfiles in the scratch dir, and its one-file changes."""

    def __init__(self, case: Case, bench: Path, scratch: Path, quick: bool):
        self.case = case
        self.bench = bench
        self.dir = scratch / "cases" / case.name
        self.context = self.dir / "context"
        self.quick = quick
        self._original: bytes | None = None
        self._changes = 0

    def materialize(self) -> int:
        """(Re)create the context: the case's files (minus its Dockerfile) plus generated ones.

        Returns the context's size in bytes.
        """
        shutil.rmtree(self.dir, ignore_errors=True)
        self.context.mkdir(parents=True)
        src = self.case.source_dir(self.bench)
        for entry in sorted(src.iterdir()):
            if entry.name in ("Dockerfile", "Dockerfile.quick"):
                continue
            if entry.is_dir():
                shutil.copytree(entry, self.context / entry.name)
            else:
                shutil.copy2(entry, self.context / entry.name)
        if self.case.generate is not None:
            self.case.generate(self.context, self.quick)
        os.system(f"chmod -R a+rX '{self.dir}'")
        return sum(p.stat().st_size for p in self.context.rglob("*") if p.is_file() and not p.is_symlink())

    def template(self) -> Path:
        """The case's Dockerfile; `Dockerfile.quick` in a quick run when the case has one."""
        src = self.case.source_dir(self.bench)
        if self.quick and (src / "Dockerfile.quick").exists():
            return src / "Dockerfile.quick"
        return src / "Dockerfile"

    def run_steps(self) -> int:
        """How many RUN instructions the Dockerfile in use has."""
        return sum(1 for l in self.template().read_text().splitlines() if l.strip().upper().startswith("RUN "))

    def steps(self) -> int:
        """How many RUN, COPY and ADD instructions (the steps that make layers) the Dockerfile has."""
        return sum(
            1 for l in self.template().read_text().splitlines() if l.strip().upper().startswith(CONTENT_STEPS)
        )

    def dockerfile(self, tool: str, refs: dict[str, str]) -> Path:
        """Write the Dockerfile for one tool (placeholders → that tool's base image names)."""
        text = self.template().read_text()
        for placeholder, ref in refs.items():
            text = text.replace(placeholder, ref)
        path = self.dir / f"Dockerfile.{tool}"
        path.write_text(text)
        os.chmod(path, 0o644)
        return path

    def change_one_file(self) -> None:
        """Append a line to the case's source file (new size, mtime now), like an edit."""
        path = self.context / self.case.mutate
        if self._original is None:
            self._original = path.read_bytes()
        self._changes += 1
        with open(path, "ab") as f:
            f.write(f"\n/* incremental change {self._changes} */\n".encode())
        now = time.time()
        os.utime(path, (now, now))

    def restore(self) -> None:
        """Put the changed file back as it was (the next tool starts from the same context)."""
        if self._original is None:
            return
        path = self.context / self.case.mutate
        path.write_bytes(self._original)
        now = time.time()
        os.utime(path, (now, now))
        self._original = None
        self._changes = 0

    def cleanup(self) -> None:
        """Remove the context and Dockerfiles."""
        shutil.rmtree(self.dir, ignore_errors=True)
