"""One row per measured figure, the table ``make bench`` prints, and docs/performance.md built from them."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

TEMPLATE = Path(__file__).with_name("performance.md.in")


@dataclass(frozen=True)
class Figure:
    """A measured figure, and the goal it is held to (if any).

    ``met`` is None when there is no goal; ``detail`` says how it was measured;
    ``closes`` says, for a goal that can be missed, what would close the gap (the report
    lists it under each missed goal).
    """

    bench: str
    name: str
    value: float
    unit: str
    goal: str | None = None
    met: bool | None = None
    detail: str = ""
    closes: str = ""

    def verdict(self) -> str:
        if self.met is None:
            return ""
        return "met" if self.met else f"MISSED ({self.detail})" if self.detail else "MISSED"


def fmt(value: float) -> str:
    if value == int(value) and abs(value) < 1e12:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.4f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(figures: Sequence[Figure]) -> str:
    """A Markdown table of every figure, with a goal column."""
    lines = ["| bench | figure | value | goal | verdict |", "|---|---|---|---|---|"]
    for f in figures:
        lines.append(
            f"| {f.bench} | {_cell(f.name)} | {fmt(f.value)} {f.unit} | {_cell(f.goal or '')} | {_cell(f.verdict())} |"
        )
    return "\n".join(lines)


def summary(figures: Sequence[Figure]) -> str:
    """``N figures, M goals met, K missed``."""
    met = sum(1 for f in figures if f.met)
    missed = sum(1 for f in figures if f.met is False)
    return f"{len(figures)} figures, {met} goals met, {missed} missed."


def misses(figures: Sequence[Figure]) -> str:
    """One bullet per missed goal: what was measured, against what, and what would close it."""
    out = []
    for f in figures:
        if f.met is not False:
            continue
        line = f"- **{f.bench}: {f.name}**: {fmt(f.value)} {f.unit} against {f.goal or 'its goal'}."
        if f.detail:
            line += f" {f.detail}."
        line += f" *What would close it:* {f.closes or 'not analysed yet.'}"
        out.append(line)
    return "\n".join(out) if out else "Every goal was met in this run."


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.0f} GiB"
    except OSError:
        pass
    return "unknown memory"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def machine() -> str:
    """The machine in one line: architecture, cores, memory, Python, OS."""
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {_memory_gib()}, "
        f"{platform.python_implementation()} {platform.python_version()}, {_os_name()}"
    )


def provenance() -> str:
    """Date, commit (with a note when the tree had changes) and machine of this run."""
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = " (with uncommitted changes in the tree)" if _git("status", "--porcelain", "--untracked-files=no") else ""
    return f"Measured on {today} at commit `{commit}`{dirty}, on {machine()}."


def document(figures: Sequence[Figure], *, template: Path = TEMPLATE, took: float | None = None) -> str:
    """docs/performance.md: the fixed prose of ``template``, then this run's provenance, table and misses."""
    head = template.read_text().rstrip()
    parts = [
        head,
        "## As measured",
        provenance()
        + (f" The whole run took {took / 60:.1f} minutes." if took is not None else "")
        + " The benchmark, the emulators and the client share the machine's cores.",
        table(figures),
        summary(figures),
        "## The goals that were missed, and what would close them",
        misses(figures),
    ]
    return "\n\n".join(parts) + "\n"
