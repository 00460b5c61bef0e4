"""Requests for providers whose one request carries one body for many recipients.

ME-SMS and Kaleyra take a list of numbers with a single text, so recipients can
share a request only when their rendered bodies (and sender, schedule and options)
are equal. The client asks an adapter's ``plan_requests`` for its chunks; these
are the shared pieces.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from smsrelay.model import PreparedSms
from smsrelay.providers.base import BatchOutcome

__all__ = ["RequestStream", "join_outcomes", "plan_by_body"]


def plan_by_body(batch: Sequence[PreparedSms], size: int) -> list[list[PreparedSms]]:
    """Group messages by body, sender, schedule and options, ``size`` at most per group.

    Groups keep the order of their first message; within a group, the input order.

    >>> from smsrelay.model import Message
    >>> m = Message("x")
    >>> sms = [PreparedSms(f"+6681234000{i}", b, f"k{i}", "GSM-7", 1, m) for i, b in enumerate("aba")]
    >>> [[s.body for s in g] for g in plan_by_body(sms, 100)]
    [['a', 'a'], ['b']]
    """
    groups: dict[tuple[Any, ...], list[PreparedSms]] = {}
    for sms in batch:
        m = sms.message
        key = (sms.body, m.sender, m.send_at, json.dumps(dict(m.options), sort_keys=True, default=str))
        groups.setdefault(key, []).append(sms)
    return [g[i : i + size] for g in groups.values() for i in range(0, len(g), size)]


def join_outcomes(outcomes: Sequence[BatchOutcome]) -> BatchOutcome:
    """One outcome for several requests: their batch ids joined by commas, results in order."""
    ids = [o.batch_id for o in outcomes if o.batch_id]
    return BatchOutcome(",".join(ids) or None, [r for o in outcomes for r in o.results])


class RequestStream:
    """Plan requests while messages are still arriving: a full request is final at once.

    ``plan`` is the adapter's ``plan_requests``; a request of ``size`` (``bulk_max``)
    messages cannot grow, so it is handed out as soon as it is planned. Smaller ones
    wait for more messages with the same body, or for :meth:`close`, so the requests
    are the ones planning every message at once would give.

    >>> from smsrelay.model import Message
    >>> m = Message("x")
    >>> sms = [PreparedSms(f"+6681234000{i}", "a", f"k{i}", "GSM-7", 1, m) for i in range(3)]
    >>> stream = RequestStream(lambda b: plan_by_body(b, 2), 2)
    >>> [len(c) for c in stream.add(sms)], [len(c) for c in stream.close()]
    ([2], [1])
    """

    def __init__(self, plan: Callable[[list[PreparedSms]], list[list[PreparedSms]]], size: int) -> None:
        self._plan = plan
        self._size = max(1, size)
        self._waiting: list[PreparedSms] = []

    def add(self, messages: Sequence[PreparedSms]) -> list[list[PreparedSms]]:
        """The full requests these messages (and those still waiting) make."""
        if not messages:
            return []
        planned = self._plan([*self._waiting, *messages])
        self._waiting = [p for chunk in planned if len(chunk) < self._size for p in chunk]
        return [chunk for chunk in planned if len(chunk) >= self._size]

    def close(self) -> list[list[PreparedSms]]:
        """Every request still waiting: no more messages will come."""
        waiting, self._waiting = self._waiting, []
        return self._plan(waiting) if waiting else []
