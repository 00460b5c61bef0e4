"""make mutation: mutation testing of the core's pure modules, with a score per module.

Two tools, one table:

- mutmut (configured in ``[tool.mutmut]`` in pyproject.toml) mutates the function bodies of the
  core's pure modules. It first records which of the configured unit tests call each function,
  so every mutant runs only the tests that execute the code it changed.
- mutmut never mutates module-level data, so ``mutation/tables.py`` mutates the tables:
  ``lifecycle.PROGRESS``, ``segments.SINGLE``/``MULTI``, ``redaction.SECRET_NAMES``, and the
  adapters' status maps, each against its module's unit tests (the adapters' against
  ``tests/unit/test_status_tables.py``, written from the vendors' documents). A core module's
  row counts both kinds of mutant; an adapter's row, its tables'. ``--fail-under`` gates every row.

The score leaves out the mutants listed in ``mutation/equivalents.md``: those change the code
but not its behaviour, so no test can kill them. Each has a line there saying why. A listed
mutant that a test kills, or that no longer exists, is reported as stale so the list stays true.

    python mutation/run.py                  # a run (about 2 minutes on 2 cores)
    python mutation/run.py --core-only      # skip the adapters' tables
    python mutation/run.py --fail-under 90  # exit 1 if a module scores below 90%
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import tables

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ROOT / "mutants"
EQUIVALENTS = Path(__file__).with_name("equivalents.md")

# mutmut's exit codes (mutmut.stats.status_by_exit_code): 1 and 3 are a failing test run.
# A timeout means the mutant made the code hang, which a user notices too, so it counts as killed.
KILLED = {1, 3, 24, -24, 36, 152, 255}
SURVIVED = {0}
NO_TESTS = {5, 33}
# - `smsrelay.lifecycle.x_merge__mutmut_8`: why it is equivalent
_LISTED = re.compile(r"^- `(?P<name>[^`]+)`", re.MULTILINE)
# mutmut names a function's mutant `module.x_function__mutmut_N`, a method's `module.xǁClassǁmethod__mutmut_N`.
_MUTMUT_NAME = re.compile(r"\.x[_ǁ]")


@dataclass
class Score:
    module: str  # e.g. smsrelay.lifecycle
    tables_only: bool  # an adapter: only its tables are mutated
    mutants: int = 0
    killed: int = 0
    equivalent: int = 0
    undetected: list[str] = field(default_factory=list)  # survived, or no test runs it, and not listed

    @property
    def percent(self) -> float:
        counted = self.mutants - self.equivalent
        return 100.0 * self.killed / counted if counted else 100.0

    def add(self, name: str, killed: bool, listed: set[str]) -> None:
        self.mutants += 1
        if killed:
            self.killed += 1
        elif name in listed:
            self.equivalent += 1
        else:
            self.undetected.append(name)


def core_modules() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mutmut"]
    return [path.removesuffix(".py").replace("/", ".") for path in config["only_mutate"]]


def equivalents() -> set[str]:
    return set(_LISTED.findall(EQUIVALENTS.read_text(encoding="utf-8"))) if EQUIVALENTS.exists() else set()


def run_mutmut(max_children: int) -> dict[str, bool]:
    """Every mutmut mutant's name, and whether a test killed it."""
    # A fresh copy each time: mutmut caches results per function, and a cached survivor would
    # hide a test added since.
    shutil.rmtree(MUTANTS, ignore_errors=True)
    cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)]
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"mutmut failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    results: dict[str, bool] = {}
    for module in core_modules():
        meta = MUTANTS / (module.replace(".", "/") + ".py.meta")
        codes: dict[str, int | None] = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        for name, code in codes.items():
            if code not in KILLED | SURVIVED | NO_TESTS:
                sys.exit(f"{name}: unexpected mutmut exit code {code}; see `mutmut show {name}`")
            results[name] = code in KILLED
    return results


def _natural(name: str) -> tuple[str, int, str]:
    head, _, n = name.rpartition("_")
    return (head, int(n), "") if n.isdigit() else (name, 0, name)


def table(scores: list[Score]) -> str:
    rows = ["| module | mutants | killed | equivalent | score without equivalents |", "|---|---:|---:|---:|---:|"]
    for s in scores:
        label = s.module.removeprefix("smsrelay.").replace(".", "/") + ".py" + (" (tables)" if s.tables_only else "")
        rows.append(f"| `{label}` | {s.mutants} | {s.killed} | {s.equivalent} | {s.percent:.0f}% |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--core-only", action="store_true", help="skip the adapters' tables")
    parser.add_argument("--fail-under", type=float, default=0.0, metavar="PERCENT", help="for every module")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)

    started = time.monotonic()
    core = core_modules()
    results = run_mutmut(args.max_children)
    mutmut_seconds = time.monotonic() - started
    if args.core_only:
        tables.TABLES = {m: t for m, t in tables.TABLES.items() if m in core}
    results.update(tables.run(args.max_children))

    listed = equivalents()
    scores = {m: Score(m, tables_only=False) for m in core}
    for name in sorted(results, key=_natural):
        module = _MUTMUT_NAME.split(name, 1)[0] if "__mutmut_" in name else tables.module_of(name)
        scores.setdefault(module, Score(module, tables_only=True)).add(name, results[name], listed)

    print(table(list(scores.values())))
    for s in scores.values():
        for name in s.undetected:
            print(f"undetected: {name}" + (f"  (mutmut show {name})" if "__mutmut_" in name else ""))
    stale = sorted(n for n in listed if results.get(n, True))
    for name in stale:
        print(f"stale in {EQUIVALENTS.name}: {name} is killed or no longer exists")
    print(f"mutmut {mutmut_seconds:.0f} s, tables {time.monotonic() - started - mutmut_seconds:.0f} s")
    low = [s.module for s in scores.values() if s.percent < args.fail_under]
    if low:
        print(f"below {args.fail_under:.0f}%: {', '.join(low)}")
    return 1 if low or stale else 0


if __name__ == "__main__":
    sys.exit(main())
