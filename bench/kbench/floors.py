"""Physical floors: how fast this machine can read, compress, hash and copy the same data.

A builder cannot beat `tar | gzip` when it must write a gzip layer of the data, nor `cp -a`
when it must copy a context; these numbers put the builders' times in proportion.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from .runner import MIN_REPS, SLOW_SECONDS
from .util import Cell, sh, timed

#: Cases whose floor data is smaller than this get no floors (they would all read 0.0 s).
MIN_FLOOR_BYTES = 5_000_000

FLOORS = ["tar | cat", "tar | gzip", "tar | pigz -p 2", "tar | zstd -T0", "sha256sum", "cp -a"]


def _commands(data: Path, tarball: Path, copy_dest: Path) -> dict[str, str]:
    d, t, c = shlex.quote(str(data)), shlex.quote(str(tarball)), shlex.quote(str(copy_dest))
    tar = f"tar -C {d} -cf - ."
    return {
        # `tar -f /dev/null` skips reading file data, so the stream goes through cat.
        "tar | cat": f"{tar} | cat > /dev/null",
        "tar | gzip": f"{tar} | gzip -c > /dev/null",
        "tar | pigz -p 2": f"{tar} | pigz -p 2 -c > /dev/null",
        "tar | zstd -T0": f"{tar} | zstd -q -T0 -3 -c > /dev/null",
        "sha256sum": f"sha256sum {t} > /dev/null",
        "cp -a": f"cp -a {d} {c}",
    }


def measure(data: Path, work: Path, reps: int, log: Path) -> tuple[int, dict[str, Cell]]:
    """Time each floor `reps` times over `data`; returns (tar stream bytes, floor → Cell)."""
    work.mkdir(parents=True, exist_ok=True)
    tarball = work / "floor.tar"
    copy_dest = work / "floor-copy"
    sh(["tar", "-C", str(data), "-cf", str(tarball), "."], log=log)
    size = tarball.stat().st_size
    cells: dict[str, Cell] = {}
    for name, cmd in _commands(data, tarball, copy_dest).items():
        cell = Cell()
        n = reps
        while len(cell.seconds) < n:
            shutil.rmtree(copy_dest, ignore_errors=True)
            s = timed(["bash", "-o", "pipefail", "-c", cmd], log=log, rss=False)
            if not s.ok:
                cell.status, cell.label, cell.reason = "error", "error", f"`{cmd}` failed"
                break
            cell.seconds.append(s.seconds)
            if s.seconds > SLOW_SECONDS:
                n = min(n, MIN_REPS)
        cells[name] = cell
    shutil.rmtree(copy_dest, ignore_errors=True)
    tarball.unlink(missing_ok=True)
    return size, cells
