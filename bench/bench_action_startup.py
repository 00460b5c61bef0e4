"""The Action's start-up cost, in the Action's own venv (what the image installs).

* a dry run of ``python -m action.main`` (sandbox, one recipient), against a bare
  ``python -c pass`` in the same venv: the time the action adds (goal under 0.4 s);
* ``import action.main`` alone;
* the installed size of the venv's runtime site-packages (goal under 40 MB).

Each figure is the least CPU time of several runs (wall time: the median). ``--smoke`` takes fewer runs, and
measures the dev venv when the Action's venv is not built yet (building takes ~30 s).
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import Figure

ROOT = Path(__file__).resolve().parents[1]
BENCH = "action_startup"


def _timed(argv: list[str], env: dict[str, str], cwd: Path, runs: int) -> tuple[float, float]:
    """Median wall time and least CPU time (user + system) of a child process.

    CPU time is the headline: on a shared, loaded machine wall time mostly measures
    the queue for a core, not the program; and the least of several runs, since
    interference only ever adds (cache misses, frequency changes).
    """
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(argv, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return statistics.median(walls), min(cpus)


def _size_mb(site: Path) -> float:
    return sum(p.stat().st_size for p in site.rglob("*") if p.is_file()) / 1e6


def run(smoke: bool) -> list[Figure]:
    sys.path.insert(0, str(ROOT))
    from action.demo import runner_env
    from action.install import cached, site_packages

    venv = cached(ROOT, build=not smoke)
    where = "the Action's venv" if venv else "the dev venv (Action venv not built; smoke)"
    python = str(venv / "bin" / "python") if venv else sys.executable
    runs = 3 if smoke else 15
    with tempfile.TemporaryDirectory(prefix="bench-action-") as tmp:
        work = Path(tmp)
        # The environment the runner gives the step, as in `make demo`: every input, GITHUB_*.
        env = runner_env(
            work,
            {
                "provider": "sandbox",
                "to": "+61491570156",
                "message": "Deployed {{ github.repository }}",
                "dry-run": "true",
            },
        )
        work = Path(env["GITHUB_WORKSPACE"])
        bare = _timed([python, "-c", "pass"], env, work, runs)
        imported = _timed([python, "-c", "import action.main"], env, work, runs)
        dry = _timed([python, "-m", "action.main"], env, work, runs)
    added = dry[1] - bare[1]
    figures = [
        Figure(BENCH, "python -c pass (CPU)", bare[1], "s", detail=f"least of {runs}, {where}"),
        Figure(BENCH, "import action.main, added (CPU)", imported[1] - bare[1], "s", detail=where),
        Figure(
            BENCH,
            "dry run, added to bare python (CPU)",
            added,
            "s",
            goal="< 0.4 s",
            met=added < 0.4,
            detail=f"CPU {dry[1]:.3f}s - {bare[1]:.3f}s, {where}",
        ),
        Figure(BENCH, "dry run, added to bare python (wall)", dry[0] - bare[0], "s", detail="load-sensitive"),
    ]
    if venv:
        size = _size_mb(site_packages(venv))
        figures.append(
            Figure(BENCH, "runtime site-packages", size, "MB", goal="< 40 MB", met=size < 40, detail="installed size")
        )
    return figures
