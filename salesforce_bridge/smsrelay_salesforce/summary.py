"""What one bridge run did: counts per outcome and the Salesforce API calls per phase.

>>> s = Summary(); s.sent += 2; s.calls["claim"] = 1
>>> s.line()
'sent 2, updated 0, failed 0, skipped 0, rejected 0; Salesforce API calls 1 (claim 1)'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["Summary"]


@dataclass
class Summary:
    """Counters of one run. ``calls`` maps a phase (claim, write-back, deliveries...) to API calls."""

    dry_run: bool = False
    due: int = 0
    sent: int = 0
    failed: int = 0
    rejected: int = 0
    skipped_opted_out: int = 0
    ambiguous: int = 0
    requeued: int = 0  # certainly not sent (throttled, or refused before the request was written): Queued again
    reconciled: int = 0
    resent: int = 0
    claim_failed: int = 0
    writeback_failed: int = 0
    events: int = 0
    deliveries_updated: int = 0
    deliveries_unchanged: int = 0
    replies: int = 0
    link_hits: int = 0
    opt_outs: int = 0
    unmatched: int = 0
    event_write_failed: int = 0
    paused: str | None = None
    calls: dict[str, int] = field(default_factory=dict)
    sent_by: dict[str, int] = field(default_factory=dict)  # a routing config: records sent, per account
    api_usage: str | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def updated(self) -> int:
        return self.deliveries_updated + self.replies + self.link_hits + self.opt_outs

    @property
    def skipped(self) -> int:
        return self.skipped_opted_out

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def failures(self) -> int:
        """Failures that need a person: failed sends excluded (they are a delivery outcome)."""
        return self.claim_failed + self.writeback_failed + self.event_write_failed + len(self.errors)

    def add_calls(self, phase: str, n: int) -> None:
        if n:
            self.calls[phase] = self.calls.get(phase, 0) + n

    def add(self, other: Summary) -> None:
        """Fold ``other`` into this one: counters and calls summed, errors appended.

        >>> a, b = Summary(sent=1), Summary(sent=2, calls={"claim": 1}); a.add(b); a.sent, a.calls
        (3, {'claim': 1})
        """
        for f in fields(self):
            mine = getattr(self, f.name)
            if isinstance(mine, int) and not isinstance(mine, bool):
                setattr(self, f.name, mine + getattr(other, f.name))
        for phase, n in other.calls.items():
            self.add_calls(phase, n)
        for account, n in other.sent_by.items():
            self.sent_by[account] = self.sent_by.get(account, 0) + n
        self.errors.extend(other.errors)
        self.paused = other.paused or self.paused

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(updated=self.updated, total_calls=self.total_calls)
        return out

    def line(self) -> str:
        phases = ", ".join(f"{k} {v}" for k, v in self.calls.items())
        text = (
            f"sent {self.sent}, updated {self.updated}, failed {self.failed}, skipped {self.skipped}, "
            f"rejected {self.rejected}; Salesforce API calls {self.total_calls}" + (f" ({phases})" if phases else "")
        )
        if self.dry_run:
            text = "dry run (nothing sent or written): " + text
        if self.paused:
            text += f"; paused: {self.paused}"
        return text

    def table(self) -> str:
        rows: list[tuple[str, object]] = [
            ("records due", self.due),
            ("sent", self.sent),
            *((f"sent by account {a}", n) for a, n in self.sent_by.items()),
            ("reconciled after a crash", self.reconciled),
            ("failed", self.failed),
            ("rejected (invalid number or template)", self.rejected),
            ("skipped: opted out", self.skipped_opted_out),
            ("ambiguous (left for review)", self.ambiguous),
            ("not sent, queued again (throttled)", self.requeued),
            ("events read", self.events),
            ("delivery statuses updated", self.deliveries_updated),
            ("replies written", self.replies),
            ("link hits written", self.link_hits),
            ("opt-outs written", self.opt_outs),
            ("events with no matching record", self.unmatched),
            ("writes Salesforce refused", self.claim_failed + self.writeback_failed + self.event_write_failed),
        ]
        for phase, n in self.calls.items():
            rows.append((f"API calls: {phase}", n))
        rows.append(("API calls: total", self.total_calls))
        if self.api_usage:
            rows.append(("org API usage", self.api_usage))
        width = max(len(r[0]) for r in rows)
        lines = [f"  {k:<{width}}  {v}" for k, v in rows]
        if self.paused:
            lines.append(f"  paused: {self.paused}")
        for e in self.errors:
            lines.append(f"  error: {e}")
        return "\n".join(lines)
