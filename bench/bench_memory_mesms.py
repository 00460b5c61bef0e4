"""Peak memory of streaming ME-SMS recipient statuses: flat in N, under 150 MB.

The emulator derives each recipient's status from its index (it stores nothing per
recipient); a child process streams every status through
``MeSmsProvider.iter_recipients`` and reports its own peak RSS (``VmHWM``, see :mod:`bench.memory`), so
the figure is the client's memory alone. A small run gives the baseline for flatness.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from bench.report import Figure
from smsrelay.emulators.mesms import MeSmsEmulator

ROOT = Path(__file__).resolve().parents[1]
BENCH = "memory_mesms"
FULL, SMOKE, BASELINE = 1_000_000, 10_000, 10_000

CHILD = textwrap.dedent(
    """
    import json, sys, time
    from bench.memory import peak_rss_mb
    from smsrelay.config import ProviderSettings
    from smsrelay.providers.mesms import MeSmsProvider

    provider = MeSmsProvider(ProviderSettings("mesms", api_key="test-key", base_url=sys.argv[1]))
    started, count = time.perf_counter(), 0
    for _report in provider.iter_recipients(sys.argv[2]):
        count += 1
    took = time.perf_counter() - started
    peak_mb = peak_rss_mb()
    print(json.dumps({"count": count, "peak_mb": peak_mb, "seconds": took}))
    """
)


def _stream(emu: MeSmsEmulator, n: int) -> dict[str, float]:
    uuid = emu.create_batch(n)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, emu.url, uuid], capture_output=True, text=True, timeout=1800, check=True, cwd=ROOT
    )
    data: dict[str, float] = json.loads(out.stdout)
    if data["count"] != n:
        raise RuntimeError(f"streamed {data['count']} of {n} statuses")
    return data


def run(smoke: bool) -> list[Figure]:
    n = SMOKE if smoke else FULL
    started = time.perf_counter()
    with MeSmsEmulator() as emu:
        base = _stream(emu, BASELINE)
        big = _stream(emu, n) if n != BASELINE else base
    growth = big["peak_mb"] - base["peak_mb"]
    how = f"{n:,} statuses, pages of 1,000, child process peak RSS"
    return [
        Figure(
            BENCH, f"peak RSS streaming {n:,} statuses", big["peak_mb"], "MB", "< 150 MB", big["peak_mb"] < 150, how
        ),
        Figure(
            BENCH,
            f"RSS growth {BASELINE:,} → {n:,} statuses",
            growth,
            "MB",
            "flat (< 15 MB)",
            growth < 15,
            f"baseline {base['peak_mb']:.1f} MB at {BASELINE:,}",
        ),
        Figure(BENCH, "statuses streamed per second", n / big["seconds"], "statuses/s", detail=how),
        Figure(BENCH, "bench wall time", time.perf_counter() - started, "s"),
    ]
