"""make mutation: run mutmut over the core's pure modules and print a score per module.

mutmut's configuration is ``[tool.mutmut]`` in pyproject.toml: which modules it mutates, and
which unit tests it may run. Before running the mutants it records which of those tests call
each function, so every mutant runs only the tests that execute the code it changed.

The score leaves out the mutants listed in ``mutation/equivalents.md``: those change the code
but not its behaviour, so no test can kill them. Each has a line there saying why. A listed
mutant that a test kills, or that no longer exists, is reported as stale so the list stays true.

mutmut 3 mutates function bodies only. Module-level tables (``lifecycle.PROGRESS``,
``redaction.SECRET_NAMES``, ``segments.SINGLE``/``MULTI``, the adapters' status dicts) are
never mutated by it; the functions that read them are.

    python mutation/run.py                  # a fresh run (about 4 minutes on 2 cores)
    python mutation/run.py --report-only    # the table from the last run's mutants/
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
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ROOT / "mutants"
EQUIVALENTS = Path(__file__).with_name("equivalents.md")

# mutmut's exit codes (mutmut.stats.status_by_exit_code): 1 and 3 are a failing test run.
# A timeout means the mutant made the code hang, which a user notices too, so it counts as killed.
KILLED = {1, 3, 24, -24, 36, 152, 255}
SURVIVED = {0}
NO_TESTS = {5, 33}
# `- \`smsrelay.lifecycle.x_merge__mutmut_8\`: why it is equivalent`
_LISTED = re.compile(r"^- `(?P<name>[\w.]+__mutmut_\d+)`", re.MULTILINE)


@dataclass
class Score:
    module: str
    mutants: int = 0
    killed: int = 0
    equivalent: int = 0
    undetected: tuple[str, ...] = ()  # survived, or no test runs it, and not listed as equivalent

    @property
    def percent(self) -> float:
        counted = self.mutants - self.equivalent
        return 100.0 * self.killed / counted if counted else 100.0


def modules() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mutmut"]
    return list(config["only_mutate"])


def equivalents() -> set[str]:
    return set(_LISTED.findall(EQUIVALENTS.read_text(encoding="utf-8"))) if EQUIVALENTS.exists() else set()


def run_mutmut(max_children: int) -> None:
    # A fresh copy each time: mutmut caches results per function, and a cached survivor would
    # hide a test added since.
    shutil.rmtree(MUTANTS, ignore_errors=True)
    cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)]
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"mutmut failed (exit {done.returncode}):\n{done.stderr[-4000:]}")


def score(path: str, listed: set[str]) -> tuple[Score, set[str]]:
    """The module's score, and the listed equivalents that are stale (killed or gone)."""
    meta = MUTANTS / (path + ".meta")
    if not meta.exists():
        sys.exit(f"{meta.relative_to(ROOT)} is missing: run without --report-only first")
    codes: dict[str, int | None] = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
    prefix = path.removesuffix(".py").replace("/", ".") + "."
    mine = {name for name in listed if name.startswith(prefix)}
    result = Score(module=Path(path).name, mutants=len(codes))
    undetected = []
    for name, code in sorted(codes.items(), key=lambda kv: _natural(kv[0])):
        if code in KILLED:
            result.killed += 1
        elif name in mine:
            result.equivalent += 1
        elif code in SURVIVED or code in NO_TESTS:
            undetected.append(name)
        else:
            sys.exit(f"{name}: unexpected mutmut exit code {code}; see `mutmut show {name}`")
    result.undetected = tuple(undetected)
    stale = {name for name in mine if name not in codes or codes[name] in KILLED}
    return result, stale


def _natural(name: str) -> tuple[str, int]:
    head, _, n = name.rpartition("_")
    return head, int(n)


def table(scores: list[Score]) -> str:
    rows = ["| module | mutants | killed | equivalent | score without equivalents |", "|---|---:|---:|---:|---:|"]
    for s in scores:
        rows.append(f"| `{s.module}` | {s.mutants} | {s.killed} | {s.equivalent} | {s.percent:.0f}% |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report-only", action="store_true", help="print the table from the last run")
    parser.add_argument("--fail-under", type=float, default=0.0, metavar="PERCENT")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)

    started = time.monotonic()
    if not args.report_only:
        run_mutmut(args.max_children)
    listed = equivalents()
    scores, stale = [], set()
    for path in modules():
        s, gone = score(path, listed)
        scores.append(s)
        stale |= gone
    print(table(scores))
    for s in scores:
        for name in s.undetected:
            print(f"undetected: {name}  (mutmut show {name})")
    for name in sorted(stale):
        print(f"stale in {EQUIVALENTS.name}: {name} is killed or no longer exists")
    if not args.report_only:
        print(f"mutmut ran in {time.monotonic() - started:.0f} s")
    low = [s.module for s in scores if s.percent < args.fail_under]
    if low:
        print(f"below {args.fail_under:.0f}%: {', '.join(low)}")
    return 1 if low or stale else 0


if __name__ == "__main__":
    sys.exit(main())
