"""The scenario loop for one case and one tool: cold → warm → incremental → export → export-zstd →
push → pull → cache-export → cache-import."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

from .cases import Case, Workspace
from .registry import Registry
from .setup import BaseImage, BenchUser
from .tools import Tool, Unsupported
from . import util
from .util import Cell, CmdError, Sample, say

SCENARIOS = [
    "cold",
    "warm",
    "incremental",
    "export",
    "export-zstd",
    "push",
    "pull",
    "cache-export",
    "cache-import",
]

#: Scenarios that write an archive: scenario → layer compression asked for.
EXPORTS = {"export": "gzip", "export-zstd": "zstd"}

#: Scenarios that need the local registry.
REGISTRY_SCENARIOS = ("push", "pull", "cache-export", "cache-import")

#: A cell whose first repetition takes longer than this gets only the minimum of 3 repetitions.
SLOW_SECONDS = 5.0
MIN_REPS = 3


class Blocked(Exception):
    """A step failed in a way that makes the remaining scenarios meaningless."""

    def __init__(self, status: str, label: str, reason: str):
        super().__init__(reason)
        self.status, self.label, self.reason = status, label, reason


class CaseRun:
    """Runs the selected scenarios of one case with one tool and fills in its cells."""

    def __init__(
        self,
        ws: Workspace,
        tool: Tool,
        bases: list[BaseImage],
        reps: int,
        scenarios: list[str],
        registry: Registry | None,
        out_dir: Path,
        user: BenchUser,
        log: Path,
    ):
        self.ws = ws
        self.case: Case = ws.case
        self.tool = tool
        self.bases = bases
        self.reps = reps
        self.scenarios = scenarios
        self.registry = registry
        self.out_dir = out_dir
        self.user = user
        self.log = log
        self.tag = f"kiln-bench/{self.case.name}:latest"
        self.cells = {s: Cell() for s in scenarios}
        self.pushed_ref: str | None = None
        self.cache_repo: str | None = None  # the last remote cache exported (a registry repository)
        self.cache_exports = 0
        self.cache_error = ""
        self.dockerfile: Path | None = None

    # -------------------------------------------------------------- helpers

    def _show(self, scenario: str, text: str) -> None:
        say(f"      {self.tool.key:17} {scenario:11} {text}")

    def _set(self, scenario: str, status: str, label: str, reason: str) -> None:
        cell = self.cells[scenario]
        cell.seconds.clear()
        cell.rss_kb.clear()
        cell.status, cell.label, cell.reason = status, label, reason
        self._show(scenario, f"{label} — {reason[:150]}")

    def _mark_rest(self, status: str, label: str, reason: str) -> None:
        for cell in self.cells.values():
            if cell.status == "ok" and not cell.seconds:
                cell.status, cell.label, cell.reason = status, label, reason

    def _repeat(
        self, scenario: str, prepare: Callable[[], None], measure: Callable[[], Sample], what: str, blocking: bool
    ) -> bool:
        """Measure `scenario` up to `reps` times (3 when the first run is slow).

        A failure either blocks everything after it (builds) or only this scenario. Returns
        whether every repetition succeeded.
        """
        wanted = scenario in self.cells
        n = self.reps if wanted else 1
        shown = []
        i = 0
        try:
            while i < n:
                prepare()
                s = measure()
                if not s.ok:
                    status, label, reason = self.tool.classify(s)
                    if blocking:
                        raise Blocked(status, label, f"{what}: {reason}")
                    if wanted:
                        self._set(scenario, status, label, f"{what}: {reason}")
                    return False
                if wanted:
                    self.cells[scenario].seconds.append(s.seconds)
                    if s.rss_kb is not None:
                        self.cells[scenario].rss_kb.append(s.rss_kb)
                    shown.append(f"{s.seconds:.2f}s")
                if i == 0 and s.seconds > SLOW_SECONDS:
                    n = min(n, MIN_REPS)
                i += 1
        except Unsupported as u:
            if blocking:
                raise Blocked("na", "n/a (kiln: not yet)", str(u)) from None
            if wanted:
                self._set(scenario, "na", "n/a (kiln: not yet)", str(u))
            return False
        if wanted:
            self._show(scenario, " ".join(shown))
        return True

    def _reset(self, bases: list[BaseImage]) -> None:
        try:
            self.tool.reset(bases)
        except CmdError as e:
            raise Blocked("error", "error", f"could not empty the store or load the base images: {e}") from None
        self.dockerfile = self.ws.dockerfile(self.tool.key, self.tool.base_refs(self.bases))

    def _build(self) -> Sample:
        assert self.dockerfile is not None
        return self.tool.build(self.dockerfile, self.ws.context, self.tag, self.log)

    # -------------------------------------------------------------- scenarios

    def run(self) -> dict[str, Cell]:
        """Run every selected scenario; a failure marks the ones left as n/a or error."""
        util.CURRENT_LOG = self.log
        try:
            return self._run()
        finally:
            util.CURRENT_LOG = None

    def _run(self) -> dict[str, Cell]:
        if not self.tool.available:
            if self.tool.key == "kiln" and "not yet" in self.tool.reason:
                label = "n/a (kiln: not yet)"
            else:
                label = f"n/a ({self.tool.key}: cannot run)"
            self._mark_rest("na", label, self.tool.reason)
            return self.cells
        try:
            self._repeat("cold", lambda: self._reset(self.bases), self._build, "cold build", blocking=True)
            if not self.tool.image_present(self.tag, self.log):
                raise Blocked("error", "error", "the build exited 0 but the image is not in the store")
            if "warm" in self.cells:
                self._repeat("warm", lambda: None, self._build, "warm build", blocking=True)
            if "incremental" in self.cells:
                try:
                    self._repeat(
                        "incremental", self.ws.change_one_file, self._build, "incremental build", blocking=True
                    )
                finally:
                    self.ws.restore()
                if any(s in self.cells for s in (*EXPORTS, "push", "pull")):
                    # Bring the cache back to the restored context, so export starts warm.
                    s = self._build()
                    if not s.ok:
                        status, label, reason = self.tool.classify(s)
                        raise Blocked(status, label, f"rebuild: {reason}")
            for scenario, compression in EXPORTS.items():
                self._export(scenario, compression)
            self._push()
            self._pull()
            self._cache()
        except Blocked as b:
            self._mark_rest(b.status, b.label, b.reason)
            self._show("", f"{b.label} — {b.reason[:160]}")
        return self.cells

    def _export(self, scenario: str, compression: str) -> None:
        if scenario not in self.cells:
            return
        why = self.tool.unsupported(scenario)
        if why:
            self._set(scenario, "na", "n/a (kiln: not yet)", why)
            return
        dest_dir = self.out_dir / self.tool.key
        dest_dir.mkdir(parents=True, exist_ok=True)
        if self.tool.rootless:
            os.chown(dest_dir, self.user.uid, self.user.gid)
        dest = dest_dir / f"{self.case.name}.{scenario}.tar"
        fresh = self.tool.export_reuses_conversions(compression)

        def prepare() -> None:
            dest.unlink(missing_ok=True)
            if fresh:
                # The tool keeps layers it converted once; start each repetition from a store
                # whose image has only the build's own (gzip) layers, so the conversion is done.
                self._reset(self.bases)
                s = self._build()
                if not s.ok:
                    status, label, reason = self.tool.classify(s)
                    raise Blocked(status, label, f"the build before {scenario}: {reason}")

        def measure() -> Sample:
            assert self.dockerfile is not None
            s = self.tool.export(self.dockerfile, self.ws.context, self.tag, dest, self.log, compression)
            if s.ok and not dest.exists():
                s.ok, s.output = False, s.output + f"\n(exit 0 but {dest} was not written)"
            return s

        try:
            self._repeat(scenario, prepare, measure, scenario, blocking=False)
        finally:
            shutil.rmtree(dest_dir, ignore_errors=True)

    def _push(self) -> None:
        wanted = "push" in self.cells
        if not wanted and "pull" not in self.cells:
            return
        why = self.tool.unsupported("push")
        if why or self.registry is None:
            if wanted:
                self._set(
                    "push",
                    "na",
                    "n/a (kiln: not yet)" if why else "n/a (no registry)",
                    why or "the local docker-registry could not start",
                )
            return
        registry = self.registry
        repo = f"kiln-bench/{self.case.name}"
        ref = f"{registry.host}/{repo}:{self.tool.key}"

        def measure() -> Sample:
            s = self.tool.push(self.tag, ref, self.log)
            if s.ok and not registry.has(repo, self.tool.key):
                s.ok, s.output = False, s.output + "\n(exit 0 but the registry has no such manifest)"
            return s

        if self._repeat("push", registry.wipe, measure, "push", blocking=False):
            self.pushed_ref = ref

    def _pull_source(self) -> tuple[str | None, str]:
        """The reference to pull: this tool's own push, else whatever another tool left there."""
        if self.pushed_ref is not None:
            return self.pushed_ref, ""
        if self.registry is None:
            return None, ""
        repo = f"kiln-bench/{self.case.name}"
        for other in ("buildah", "buildah-rootless", "buildkit", "kiln"):
            if self.registry.has(repo, other):
                return f"{self.registry.host}/{repo}:{other}", f"{self.tool.key} pulled the image {other} pushed"
        return None, ""

    def _pull(self) -> None:
        if "pull" not in self.cells:
            return
        why = self.tool.unsupported("pull")
        if why:
            self._set("pull", "na", "n/a (kiln: not yet)", why)
            return
        ref, borrowed = self._pull_source()
        if ref is None:
            self._set(
                "pull", "na", "n/a (nothing to pull)", "no image of this case in the registry (no tool could push it)"
            )
            return
        if not self._repeat(
            "pull", lambda: self._reset([]), lambda: self.tool.pull(ref, self.log), "pull", blocking=False
        ):
            return
        if not self.tool.image_present(ref, self.log):
            self._set("pull", "error", "error", f"pull exited 0 but {ref} is not in the store")
        elif borrowed:
            self.cells["pull"].reason = borrowed

    # -------------------------------------------------------------- remote cache

    def _cache(self) -> None:
        """cache-export: a build on a fresh store that also exports its cache to the registry;
        cache-import: a build on a fresh store that may use that cache (--cache-from)."""
        wanted = [s for s in ("cache-export", "cache-import") if s in self.cells]
        if not wanted:
            return
        why = self.tool.unsupported("cache")
        if why or self.registry is None:
            for scenario in wanted:
                self._set(
                    scenario,
                    "na",
                    "n/a (kiln: not yet)" if why and self.tool.key == "kiln" else "n/a",
                    why or "the local docker-registry could not start",
                )
            return
        registry = self.registry

        def export_measure() -> Sample:
            assert self.dockerfile is not None
            # A new repository every time too (a client could remember where a blob was).
            self.cache_exports += 1
            repo = f"kiln-bench-cache/{self.case.name}/{self.tool.key}-{self.cache_exports}"
            s = self.tool.cache_export(self.dockerfile, self.ws.context, self.tag, registry.host, repo, self.log)
            if s.ok and repo not in registry.catalog():
                s.ok, s.output = False, s.output + f"\n(exit 0 but the registry has no repository {repo})"
            if s.ok:
                self.cache_repo = repo
            else:
                self.cache_error = self.tool.classify(s)[2]
            return s

        def export_prepare() -> None:
            self._reset(self.bases)
            # Empty storage: no blob can be skipped or mounted from an earlier repetition's repository.
            registry.wipe()

        # Runs once, unmeasured, when only cache-import was asked for.
        self._repeat("cache-export", export_prepare, export_measure, "cache-export build", blocking=False)
        if "cache-import" not in self.cells:
            return
        if self.cache_repo is None:
            if "cache-export" in self.cells:
                self._set("cache-import", "na", "n/a (no cache)", "no cache could be exported (see cache-export)")
            else:
                self._set("cache-import", "error", "error", f"the build exporting the cache failed: {self.cache_error}")
            return
        repo = self.cache_repo
        hits: list[int] = []

        def import_measure() -> Sample:
            assert self.dockerfile is not None
            s = self.tool.cache_import(self.dockerfile, self.ws.context, self.tag, registry.host, repo, self.log)
            if s.ok:
                hits.append(self.tool.cached_steps(s.output))
            return s

        if not self._repeat(
            "cache-import", lambda: self._reset(self.bases), import_measure, "cache-import build", blocking=False
        ):
            return
        if not self.tool.image_present(self.tag, self.log):
            self._set("cache-import", "error", "error", "the build exited 0 but the image is not in the store")
            return
        steps = self.ws.steps()
        counted = sorted({h for h in hits if h >= 0})
        if counted:
            n = "/".join(str(h) for h in counted)
            self.cells["cache-import"].reason = (
                f"{self.tool.label}: {n} of the Dockerfile's {steps} steps reported as taken from the cache"
                + self.tool.cache_note
            )
