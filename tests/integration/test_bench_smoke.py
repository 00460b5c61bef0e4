"""Every benchmark runs on tiny inputs in `make test`, so `make bench` never rots.

No timing is asserted here: only that each benchmark runs to the end and reports
its figures in the table.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.__main__ import modules
from tests.conftest import ROOT


@pytest.mark.parametrize("name", modules())
def test_benchmark_smoke_run(name: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--only", name],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = proc.stdout.strip().splitlines()[-1]
    assert not summary.startswith("0 figures"), f"{name} printed no figures:\n{proc.stdout}\n{proc.stderr[-2000:]}"
