"""The performance page is built from one run's figures: prose, provenance, table, and each miss with its fix."""

from __future__ import annotations

import pathlib

from bench.__main__ import DOC, main
from bench.report import Figure, document


def test_the_page_lists_each_missed_goal_with_what_would_close_it(tmp_path: pathlib.Path) -> None:
    template = tmp_path / "performance.md.in"
    template.write_text("# Performance\n\nFixed prose.\n")
    figures = [
        Figure("send_x", "429s received", 3, "429s", goal="0", met=False, detail="15/s", closes="a window limiter"),
        Figure("send_x", "requests", 40, "requests", goal="= 40", met=True),
        Figure("send_x", "loopback share", 55.5, "%"),
        Figure("other", "p99", 70, "ms", goal="< 50 ms", met=False),  # an older bench: no closes
    ]
    page = document(figures, template=template)
    assert page.startswith("# Performance\n\nFixed prose.")
    assert "| send_x | 429s received | 3 429s | 0 | MISSED (15/s) |" in page
    assert "| send_x | loopback share | 55.50 % |  |  |" in page
    assert "4 figures, 1 goals met, 2 missed." in page
    misses = page.split("## The goals that were missed, and what would close them", 1)[1]
    assert "**send_x: 429s received**" in misses and "*What would close it:* a window limiter" in misses
    assert "**other: p99**" in misses and "not analysed yet" in misses
    assert "requests" not in misses  # a met goal is not a miss


def test_a_smoke_run_writes_the_page_only_where_told(tmp_path: pathlib.Path) -> None:
    before = DOC.stat().st_mtime_ns
    assert main(["--smoke", "--only", "no_such_bench"]) == 0
    assert DOC.stat().st_mtime_ns == before  # docs/performance.md stands for a full run only
    page = tmp_path / "page.md"
    assert main(["--smoke", "--only", "no_such_bench", "--write", str(page)]) == 0
    assert "0 figures, 0 goals met, 0 missed." in page.read_text()
