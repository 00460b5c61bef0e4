"""Run every ``bench/bench_*.py`` module, print one table, and write docs/performance.md.

``python -m bench`` runs the full sizes and writes ``docs/performance.md`` from the run
(``bench/performance.md.in`` is its fixed prose); ``--write PATH`` writes elsewhere,
``--write ''`` nowhere. ``python -m bench --smoke`` runs tiny inputs (used by ``make
test`` so the benchmarks never rot) and writes nothing unless ``--write`` says where.
``--only NAME`` picks benches, and then writes nothing unless ``--write`` says where:
the document stands for one whole run.
"""

from __future__ import annotations

import argparse
import importlib
import pathlib
import sys
import time

from bench.report import Figure, document, machine, summary, table

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "performance.md"


def modules() -> list[str]:
    here = pathlib.Path(__file__).parent
    return sorted(p.stem for p in here.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--smoke", action="store_true", help="tiny inputs, for make test (writes nothing)")
    parser.add_argument("--only", action="append", default=[], help="run only these benches (e.g. bench_send)")
    parser.add_argument(
        "--write",
        metavar="PATH",
        default=None,
        help=f"write the report here ('' for nowhere); default {DOC.name} for a full run, nowhere otherwise",
    )
    args = parser.parse_args(argv)
    write = args.write if args.write is not None else ("" if args.smoke or args.only else str(DOC))
    figures: list[Figure] = []
    began = time.perf_counter()
    for name in modules():
        if args.only and name not in args.only and name.removeprefix("bench_") not in args.only:
            continue
        started = time.perf_counter()
        mod = importlib.import_module(f"bench.{name}")
        print(f"# {name} ...", file=sys.stderr, flush=True)
        figures.extend(mod.run(smoke=args.smoke))
        print(f"# {name} took {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
    took = time.perf_counter() - began
    print(f"Machine: {machine()}")
    print(table(figures))
    print(f"\n{summary(figures)}")
    if write:
        pathlib.Path(write).write_text(document(figures, took=took))
        print(f"# wrote {write}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
