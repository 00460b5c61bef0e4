"""Judging delivery reports: which messages are settled, and which of them failed.

A message is settled when its status counts as success, or when it is final (no
later report may change it). The default success is ``delivered``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_SUCCESS", "Verdict", "judge", "message_ids_from", "success_statuses"]

DEFAULT_SUCCESS = ("delivered",)


def success_statuses(value: str | Iterable[str], *, field: str = "success_statuses") -> tuple[str, ...]:
    """Validate status names against the core lifecycle.

    >>> success_statuses(["Delivered", "sent"])
    ('delivered', 'sent')
    """
    from smsrelay import Status

    names = [value] if isinstance(value, str) else list(value)
    known = {s.value for s in Status}
    out = tuple(str(n).strip().lower() for n in names)
    bad = [n for n in out if n not in known]
    if bad or not out:
        raise ValueError(f"{field}: {bad or 'nothing'} is not a status; choose from {', '.join(sorted(known))}")
    return out


@dataclass(frozen=True)
class Verdict:
    """``done`` when every message is settled; ``failures`` are settled but not successful."""

    done: bool
    failures: tuple[str, ...]
    pending: tuple[str, ...]

    def failure_message(self, statuses: Mapping[str, Mapping[str, Any]]) -> str:
        lines = []
        for mid in self.failures[:20]:
            s = statuses[mid]
            why = f" ({s['reason']})" if s.get("reason") else ""
            raw = f" [{s['raw_status']}]" if s.get("raw_status") else ""
            lines.append(f"{mid} to {s.get('to') or '?'}: {s['status']}{raw}{why}")
        more = f"; and {len(self.failures) - 20} more" if len(self.failures) > 20 else ""
        return f"{len(self.failures)} of {len(statuses)} message(s) did not succeed: " + "; ".join(lines) + more


def judge(statuses: Mapping[str, Mapping[str, Any]], success: Sequence[str] = DEFAULT_SUCCESS) -> Verdict:
    """Settle each message's latest status (a dict with ``status``) against ``success``.

    >>> judge({"m1": {"status": "delivered"}, "m2": {"status": "failed"}}).failures
    ('m2',)
    """
    from smsrelay import Status

    pending: list[str] = []
    failures: list[str] = []
    for mid, report in statuses.items():
        status = str(report.get("status") or "unknown")
        if status in success:
            continue
        if Status(status).final:
            failures.append(mid)
        else:
            pending.append(mid)
    return Verdict(done=not pending, failures=tuple(failures), pending=tuple(pending))


def message_ids_from(value: Any) -> list[str]:
    """Message ids from an id, a list of ids, or ``SendSmsOperator`` results (also mapped ones).

    >>> message_ids_from([{"message_ids": ["m1"]}, "m2", None])
    ['m1', 'm2']
    """
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, Mapping):
        return message_ids_from(value.get("message_ids"))
    if isinstance(value, Iterable):
        # In order, once each; a dict keeps both (a list scan per id is quadratic on a campaign's 100,000s).
        return list(dict.fromkeys(mid for item in value for mid in message_ids_from(item)))
    raise TypeError(f"message_ids: expected ids or SendSmsOperator results, got {type(value).__name__}")
