"""Run every ``bench/bench_*.py`` module and print one table.

``python -m bench`` runs the full sizes; ``python -m bench --smoke`` runs tiny
inputs (used by ``make test`` so the benchmarks never rot); ``--only NAME`` picks.
"""

from __future__ import annotations

import argparse
import importlib
import pathlib
import platform
import sys
import time

from bench.report import Figure, table


def modules() -> list[str]:
    here = pathlib.Path(__file__).parent
    return sorted(p.stem for p in here.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--smoke", action="store_true", help="tiny inputs, for make test")
    parser.add_argument("--only", action="append", default=[], help="run only these benches (e.g. bench_send)")
    args = parser.parse_args(argv)
    figures: list[Figure] = []
    for name in modules():
        if args.only and name not in args.only and name.removeprefix("bench_") not in args.only:
            continue
        started = time.perf_counter()
        mod = importlib.import_module(f"bench.{name}")
        print(f"# {name} ...", file=sys.stderr, flush=True)
        figures.extend(mod.run(smoke=args.smoke))
        print(f"# {name} took {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
    print(
        f"Machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
        f"{__import__('os').cpu_count()} cores"
    )
    print(table(figures))
    missed = [f for f in figures if f.met is False]
    print(f"\n{len(figures)} figures, {sum(1 for f in figures if f.met)} goals met, {len(missed)} missed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
