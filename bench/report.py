"""One row per measured figure, and the table ``make bench`` prints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """A measured figure, and the goal it is held to (if any).

    ``met`` is None when there is no goal; ``detail`` says how it was measured.
    """

    bench: str
    name: str
    value: float
    unit: str
    goal: str | None = None
    met: bool | None = None
    detail: str = ""

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


def table(figures: Sequence[Figure]) -> str:
    """A Markdown table of every figure, with a goal column."""
    lines = ["| bench | figure | value | goal | verdict |", "|---|---|---|---|---|"]
    for f in figures:
        lines.append(f"| {f.bench} | {f.name} | {fmt(f.value)} {f.unit} | {f.goal or ''} | {f.verdict()} |")
    return "\n".join(lines)
