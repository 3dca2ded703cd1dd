"""The results: markdown tables printed to the terminal and written to bench/RESULTS.md."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

from .floors import FLOORS
from .util import Cell, sh

TOOL_LABELS = {
    "kiln": "kiln",
    "buildah": "buildah root",
    "buildah-rootless": "buildah rootless",
    "buildkit": "buildkit",
}

#: The figures the team's brief gave for this machine: (case, scenario) → (BuildKit s, Buildah s).
TARGETS = [
    ("two-stage apt+gcc build, cold", "apt", "cold", 8.9, 14.0),
    ("two-stage apt+gcc build, warm no-op", "apt", "warm", 0.08, 0.54),
    ("re-check of a 20,000-file context (warm no-op)", "bigcontext", "warm", 0.32, 8.7),
]


@dataclass
class Report:
    """Everything a run measured, plus what is needed to describe it."""

    cases: list[str]
    scenarios: list[str]
    tools: list[str]
    reps: int
    quick: bool
    results: dict[str, dict[str, dict[str, Cell]]] = field(default_factory=dict)  # case → tool → scenario
    floors: dict[str, tuple[int, int, dict[str, Cell]]] = field(default_factory=dict)  # case → (bytes, files, …)
    case_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # case → (context bytes, files)
    versions: dict[str, str] = field(default_factory=dict)
    method_notes: list[str] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    started: str = ""
    command: str = ""
    scale_note: str = ""
    load: str = ""
    run_steps: dict[str, int] = field(default_factory=dict)  # case → RUN instructions in its Dockerfile
    case_scenarios: dict[str, list[str]] = field(default_factory=dict)  # case → scenarios measured
    labels: dict[str, str] = field(default_factory=dict)  # tool → column header (from the adapters)

    def label(self, tool: str) -> str:
        """The column header of `tool` (e.g. `buildah-j2` → 'buildah root --jobs 2')."""
        return self.labels.get(tool) or TOOL_LABELS.get(tool, tool)

    def rows(self) -> list[tuple[str, str]]:
        """(case, scenario) pairs in table order."""
        return [(c, s) for c in self.cases for s in self.scenarios if s in self.case_scenarios.get(c, self.scenarios)]


def fmt_s(v: float | None) -> str:
    """Seconds with sensible precision."""
    if v is None:
        return "–"
    if v < 1:
        return f"{v:.3f}"
    if v < 10:
        return f"{v:.2f}"
    return f"{v:.1f}"


def fmt_ratio(a: float | None, b: float | None) -> str:
    """a ÷ b as '0.25×', or '–'."""
    if a is None or b is None or b <= 0:
        return "–"
    r = a / b
    if r >= 10:
        return f"{r:.0f}×"
    return f"{r:.2f}×" if r >= 0.1 else f"{r:.3f}×"


def fmt_duration(seconds: float) -> str:
    """'42 s' or '17.2 min'."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def fmt_mb(kb: float | None) -> str:
    """kB as MB."""
    return "–" if kb is None else f"{kb / 1024:.0f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table with padded columns (readable raw in a terminal too)."""
    header = [c.replace("|", "\\|") for c in header]
    rows = [[c.replace("|", "\\|") for c in r] for r in rows]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


class Notes:
    """Numbered notes for cells that have no number (n/a, error) or a caveat."""

    def __init__(self) -> None:
        self.by_reason: dict[str, list[str]] = {}

    def ref(self, reason: str, where: str) -> int:
        """Register `where` under `reason`; returns the note's number."""
        if reason not in self.by_reason:
            self.by_reason[reason] = []
        if where not in self.by_reason[reason]:
            self.by_reason[reason].append(where)
        return list(self.by_reason).index(reason) + 1

    def render(self) -> str:
        """The notes as a numbered list."""
        out = []
        for i, (reason, where) in enumerate(self.by_reason.items(), 1):
            out.append(f"{i}. {reason} — {_compact(where)}")
        return "\n".join(out)


def _compact(where: list[str]) -> str:
    """'kiln apt/cold', 'kiln apt/warm' … → 'kiln: apt (cold, warm)'."""
    grouped: dict[str, dict[str, list[str]]] = {}
    for w in where:
        tool, rest = w.split(" ", 1)
        case, scen = rest.split("/", 1)
        grouped.setdefault(tool, {}).setdefault(case, []).append(scen)
    parts = []
    for tool, cases in grouped.items():
        cs = "; ".join(f"{c} ({', '.join(s)})" for c, s in cases.items())
        parts.append(f"{tool}: {cs}")
    return " · ".join(parts)


def _cell_text(cell: Cell | None, notes: Notes, where: str) -> str:
    if cell is None:
        return "–"
    if cell.status != "ok" or not cell.seconds:
        n = notes.ref(cell.reason or cell.label, where)
        return f"{cell.label or 'n/a'} [{n}]"
    text = fmt_s(cell.time.median if cell.time else None)
    if cell.reason:
        text += f" [{notes.ref(cell.reason, where)}]"
    return text


def _median(cell: Cell | None) -> float | None:
    if cell is None or cell.status != "ok" or not cell.seconds:
        return None
    return cell.time.median if cell.time else None


def main_table(rep: Report, notes: Notes) -> str:
    """Median seconds per tool, and kiln's ratios to the others."""
    others = [t for t in rep.tools if t != "kiln"]
    header = ["case", "scenario", *(rep.label(t) for t in rep.tools)]
    if "kiln" in rep.tools:
        header += [f"kiln÷{rep.label(t)}" for t in others]
    rows = []
    for case, scen in rep.rows():
        cells = {t: rep.results.get(case, {}).get(t, {}).get(scen) for t in rep.tools}
        row = [case, scen] + [_cell_text(cells[t], notes, f"{t} {case}/{scen}") for t in rep.tools]
        if "kiln" in rep.tools:
            k = _median(cells["kiln"])
            row += [fmt_ratio(k, _median(cells[t])) for t in others]
        rows.append(row)
    return table(header, rows)


def spread_table(rep: Report) -> str:
    """min–max seconds per tool."""
    header = ["case", "scenario", *(rep.label(t) for t in rep.tools)]
    rows = []
    for case, scen in rep.rows():
        row = [case, scen]
        for t in rep.tools:
            cell = rep.results.get(case, {}).get(t, {}).get(scen)
            st = cell.time if cell is not None and cell.status == "ok" else None
            row.append(f"{fmt_s(st.min)}–{fmt_s(st.max)} (n={st.n})" if st else "–")
        rows.append(row)
    return table(header, rows)


def rss_table(rep: Report) -> str:
    """Median peak RSS per tool, MB."""
    header = [
        "case",
        "scenario",
        *(rep.label(t) + (" (dockerd growth)" if t == "buildkit" else "") for t in rep.tools),
    ]
    rows = []
    for case, scen in rep.rows():
        row = [case, scen]
        for t in rep.tools:
            cell = rep.results.get(case, {}).get(t, {}).get(scen)
            st = cell.rss if cell is not None and cell.status == "ok" else None
            row.append(fmt_mb(st.median) if st else "–")
        rows.append(row)
    return table(header, rows)


def floors_table(rep: Report) -> str:
    """Median seconds (and MB/s) of each floor per case."""
    header = ["case", "data", *FLOORS]
    rows = []
    for case in rep.cases:
        if case not in rep.floors:
            continue
        size, files, cells = rep.floors[case]
        row = [case, f"{size / 1e6:.0f} MB tar, {files} files"]
        for f in FLOORS:
            st = cells[f].time if f in cells else None
            row.append(f"{fmt_s(st.median)} ({size / 1e6 / st.median:.0f} MB/s)" if st and st.median > 0 else "–")
        rows.append(row)
    return table(header, rows) if rows else "(no case with at least 5 MB of data was run)"


def targets_table(rep: Report) -> str:
    """The brief's reference figures beside this run's."""
    header = ["comparison", "BuildKit (brief)", "Buildah (brief)", *(f"{rep.label(t)} (here)" for t in rep.tools)]
    rows = []
    for label, case, scen, bk, bah in TARGETS:
        if case == "bigcontext" and rep.quick:
            label += f" (this run: {rep.case_sizes.get(case, (0, 0))[1]:,} files, --quick)"
        row = [f"{label} — `{case}/{scen}`", fmt_s(bk), fmt_s(bah)]
        for t in rep.tools:
            row.append(fmt_s(_median(rep.results.get(case, {}).get(t, {}).get(scen))))
        rows.append(row)
    return table(header, rows)


def derived_lines(rep: Report) -> list[str]:
    """Per-RUN overhead from the `runs` case (its COPY sits after half of the RUN steps)."""
    out = []
    runs = rep.results.get("runs", {})
    steps = rep.run_steps.get("runs", 50)
    for t in rep.tools:
        cold = _median(runs.get(t, {}).get("cold"))
        inc = _median(runs.get(t, {}).get("incremental"))
        if cold is None and inc is None:
            continue
        parts = []
        if cold is not None:
            parts.append(f"cold ÷ {steps} = {cold / steps * 1000:.0f} ms")
        if inc is not None:
            parts.append(f"incremental ÷ {steps // 2} = {inc / (steps // 2) * 1000:.0f} ms")
        out.append(f"- {rep.label(t)}: per `RUN true` step ≈ " + ", ".join(parts))
    return out


#: Export scenario → the floor that does the same compression of the same data.
EXPORT_FLOORS = {"export": "tar | pigz -p 2", "export-zstd": "tar | zstd -T0"}


def export_table(rep: Report) -> str:
    """Export medians beside the floor that compresses the same data the same way."""
    header = ["case", "scenario", "floor", *(rep.label(t) for t in rep.tools)]
    rows = []
    for case, scen in rep.rows():
        if scen not in EXPORT_FLOORS or case not in rep.floors:
            continue
        size, _, fcells = rep.floors[case]
        fname = EXPORT_FLOORS[scen]
        fst = fcells[fname].time if fname in fcells else None
        floor = fst.median if fst else None
        row = [case, scen, f"{fname} {fmt_s(floor)} s"]
        for t in rep.tools:
            m = _median(rep.results.get(case, {}).get(t, {}).get(scen))
            if m is None:
                row.append("–")
                continue
            row.append(f"{fmt_s(m)} s, {size / 1e6 / m:.0f} MB/s, {fmt_ratio(m, floor)} floor")
        rows.append(row)
    return table(header, rows) if rows else ""


def cache_table(rep: Report) -> str:
    """Per case and tool: cold, the build that exports its cache, the build that imports it."""
    header = ["case", "tool", "cold", "cache-export", "export cost", "cache-import", "import ÷ cold"]
    rows = []
    for case in rep.cases:
        scens = rep.case_scenarios.get(case, rep.scenarios)
        if not {"cache-export", "cache-import"} & set(scens):
            continue
        for t in rep.tools:
            cells = rep.results.get(case, {}).get(t, {})
            cold, exp, imp = (_median(cells.get(s)) for s in ("cold", "cache-export", "cache-import"))
            cost = "–"
            if exp is not None and cold:
                d = exp - cold
                cost = f"{'+' if d >= 0 else '−'}{fmt_s(abs(d))} s ({d / cold * 100:+.0f} %)"
            rows.append(
                [case, rep.label(t), fmt_s(cold), fmt_s(exp), cost, fmt_s(imp), fmt_ratio(imp, cold)]
            )
    return table(header, rows) if rows else ""


def machine_lines() -> list[str]:
    """CPU, cores, RAM, kernel, OS."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    os_name = "Linux"
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores",
        f"- RAM: {mem / 1024:.1f} GiB",
        f"- kernel: {platform.release()} ({os_name})",
    ]


def tool_versions() -> dict[str, str]:
    """Versions of the helper programs the floors and setup use."""

    def first(argv: list[str]) -> str:
        proc = sh(argv, check=False, timeout=30)
        lines = [l for l in proc.stdout.splitlines() if l.strip()]
        return lines[0].strip() if lines else "?"

    return {
        "runc": first(["runc", "--version"]),
        "skopeo": first(["skopeo", "--version"]),
        "docker-registry": first(["docker-registry", "--version"]),
        "gzip": first(["gzip", "--version"]),
        "pigz": first(["pigz", "--version"]),
        "zstd": first(["zstd", "--version"]),
    }


def render(rep: Report) -> str:
    """The whole RESULTS.md text."""
    notes = Notes()
    main = main_table(rep, notes)
    mode = "quick" if rep.quick else "full"
    out = [
        "# kiln benchmark results",
        "",
        "Written by `bench/run` (see `bench/README.md`); do not edit by hand. Absolute times are noisy;",
        "the ratios are what is tracked. A ratio below 1 means kiln is faster.",
        "",
        f"- date: {rep.started}",
        f"- command: `{rep.command}` ({mode} run, {rep.reps} repetitions per cell)",
    ]
    if rep.scale_note:
        out.append(f"- sizes: {rep.scale_note}")
    out += ["- run time: " + ", ".join(f"{k} {fmt_duration(v)}" for k, v in rep.timings.items())]
    out += ["", "## Machine", "", *machine_lines()]
    if rep.load:
        out.append(f"- load: {rep.load}; other work on the machine makes times noisier")
    out += ["", "## Versions", ""]
    out += [f"- {k}: {v}" for k, v in rep.versions.items()]
    out += [
        "",
        "## Median seconds",
        "",
        "Medians of the repetitions; `[n]` points to a note below.",
        "",
        main,
        "",
        "## Against the brief's reference figures (seconds)",
        "",
        targets_table(rep),
        "",
    ]
    derived = derived_lines(rep)
    if derived:
        out += [
            "## Per-step overhead (from the `runs` case; an upper bound: the whole build over its RUN steps)",
            "",
            *derived,
            "",
        ]
    exports = export_table(rep)
    if exports:
        out += [
            "## Export against the floors (median seconds, MB/s of the tar stream, × the floor)",
            "",
            "The floor compresses the same tar stream the same way: `tar | pigz -p 2` for gzip, "
            "`tar | zstd -T0` for zstd. BuildKit's gzip export is `docker save` (no compression).",
            "",
            exports,
            "",
        ]
    caches = cache_table(rep)
    if caches:
        out += [
            "## Remote cache through the local registry (median seconds; every build on an emptied store)",
            "",
            "export cost = cache-export − cold (the same build without exporting); import ÷ cold below 1 "
            "means the imported cache saved time.",
            "",
            caches,
            "",
        ]
    out += [
        "## Physical floors (median seconds, throughput of the tar stream)",
        "",
        floors_table(rep),
        "",
        "## Peak RSS, MB (median of the repetitions)",
        "",
        rss_table(rep),
        "",
        "## Spread: min–max seconds",
        "",
        spread_table(rep),
        "",
        "## Notes",
        "",
        notes.render() or "(none)",
        "",
        "How each tool was run:",
        "",
        *(f"- {n}" for n in rep.method_notes),
        "",
    ]
    return "\n".join(out)
