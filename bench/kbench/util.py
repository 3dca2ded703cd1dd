"""Running commands, timing them, and summarising repeated measurements."""

from __future__ import annotations

import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

#: Print every command before running it (set by `--verbose`).
VERBOSE = False

#: Default limit for one measured command, in seconds.
TIMEOUT = 1800

#: Where unmeasured commands are logged when the caller names no log (set per case and tool).
CURRENT_LOG: Path | None = None


def say(msg: str) -> None:
    """Print a progress line at once."""
    print(msg, flush=True)


def debug(msg: str) -> None:
    """Print a line only with --verbose."""
    if VERBOSE:
        print("    · " + msg, flush=True)


class CmdError(RuntimeError):
    """A setup command failed; carries the command line and the tail of its output."""

    def __init__(self, argv: list[str], rc: int, output: str):
        self.argv = argv
        self.rc = rc
        self.output = output
        super().__init__(f"`{shlex.join(argv)}` exited {rc}: {tail(output, 6)}")


def tail(text: str, lines: int = 4) -> str:
    """The last non-empty lines of a command's output, joined with ' | '."""
    keep = [l.strip() for l in text.splitlines() if l.strip()]
    return " | ".join(keep[-lines:])


def sh(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    check: bool = True,
    timeout: float | None = TIMEOUT,
    log: Path | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess:
    """Run an unmeasured command; stdout and stderr are merged into `.stdout`."""
    debug(shlex.join(argv))
    log = log if log is not None else CURRENT_LOG
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            argv,
            env=env,
            cwd=cwd,
            input=input,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        raise CmdError(argv, -1, out + f"\n(timed out after {timeout} s)") from None
    except FileNotFoundError as e:
        raise CmdError(argv, 127, str(e)) from None
    if log is not None:
        with open(log, "a") as f:
            took = time.perf_counter() - start
            f.write(f"$ {shlex.join(argv)}\n{proc.stdout}\n[not measured: exit {proc.returncode} after {took:.2f} s]\n")
    if check and proc.returncode != 0:
        raise CmdError(argv, proc.returncode, proc.stdout)
    return proc


def have(cmd: str) -> bool:
    """Whether a command is on PATH (or an absolute path that exists)."""
    if "/" in cmd:
        return os.access(cmd, os.X_OK)
    from shutil import which

    return which(cmd) is not None


@dataclass
class Sample:
    """One measured run of a command."""

    seconds: float
    ok: bool
    rc: int
    rss_kb: int | None = None
    output: str = ""


def timed(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    log: Path | None = None,
    rss: bool = True,
    timeout: float = TIMEOUT,
) -> Sample:
    """Run a command, timing its wall clock; with `rss`, wrap it in `/usr/bin/time -f %M`.

    GNU time reports the largest resident set of the process tree it waited for.
    """
    rss_file = None
    full = list(argv)
    if rss:
        rss_file = Path(f"/tmp/kiln-bench-rss.{os.getpid()}")
        rss_file.unlink(missing_ok=True)
        full = ["/usr/bin/time", "-q", "-f", "%M", "-o", str(rss_file), *argv]
    debug(shlex.join(argv))
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            full,
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=timeout,
        )
        out, rc = proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        out += f"\n(timed out after {timeout} s)"
        rc = -1
    elapsed = time.perf_counter() - start
    rss_kb = None
    if rss_file is not None:
        try:
            rss_kb = int(rss_file.read_text().strip().splitlines()[-1])
        except (OSError, ValueError, IndexError):
            rss_kb = None
        rss_file.unlink(missing_ok=True)
    if log is not None:
        with open(log, "a") as f:
            f.write(f"$ {shlex.join(argv)}\n{out}\n[exit {rc}, {elapsed:.3f} s, rss {rss_kb} kB]\n")
    return Sample(seconds=elapsed, ok=rc == 0, rc=rc, rss_kb=rss_kb, output=out)


@dataclass
class Stat:
    """Median, minimum and maximum of repeated measurements."""

    median: float
    min: float
    max: float
    n: int

    @staticmethod
    def of(values: list[float]) -> "Stat | None":
        """Summarise a list of values; None when it is empty."""
        if not values:
            return None
        return Stat(statistics.median(values), min(values), max(values), len(values))


@dataclass
class Cell:
    """The outcome of one (case, scenario, tool): measured samples, or why there are none."""

    seconds: list[float] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)
    #: "ok", "na" (not applicable / not supported) or "error"
    status: str = "ok"
    #: short text shown in the table instead of a number (e.g. "n/a (kiln: not yet)")
    label: str = ""
    #: the reason, written to the notes section
    reason: str = ""

    @property
    def time(self) -> Stat | None:
        """Summary of the wall-clock seconds."""
        return Stat.of(self.seconds)

    @property
    def rss(self) -> Stat | None:
        """Summary of the peak resident set sizes, in kB."""
        return Stat.of([float(v) for v in self.rss_kb])


def fail_exit(msg: str) -> None:
    """Print an error and exit with status 1."""
    print(f"bench/run: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)
