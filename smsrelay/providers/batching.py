"""Requests for providers whose one request carries one body for many recipients.

ME-SMS and Kaleyra take a list of numbers with a single text, so recipients can
share a request only when their rendered bodies (and sender, schedule and options)
are equal. The client asks an adapter's ``plan_requests`` for its chunks; these
are the shared pieces.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from smsrelay.model import PreparedSms
from smsrelay.providers.base import BatchOutcome

__all__ = ["RequestStream", "body_key", "join_outcomes", "plan_by_body"]


def body_key(sms: PreparedSms) -> tuple[Any, ...]:
    """What two messages must share to go in one one-body request: body, sender, schedule, options.

    >>> from smsrelay.model import Message
    >>> a, b = (PreparedSms("+66812340000", "hi", k, "GSM-7", 1, Message("hi")) for k in "ab")
    >>> body_key(a) == body_key(b)
    True
    """
    m = sms.message
    options = json.dumps(dict(m.options), sort_keys=True, default=str) if m.options else "{}"
    return (sms.body, m.sender, m.send_at, options)


def plan_by_body(batch: Sequence[PreparedSms], size: int) -> list[list[PreparedSms]]:
    """Group messages by :func:`body_key`, ``size`` at most per group.

    Groups keep the order of their first message; within a group, the input order.

    >>> from smsrelay.model import Message
    >>> m = Message("x")
    >>> sms = [PreparedSms(f"+6681234000{i}", b, f"k{i}", "GSM-7", 1, m) for i, b in enumerate("aba")]
    >>> [[s.body for s in g] for g in plan_by_body(sms, 100)]
    [['a', 'a'], ['b']]
    """
    groups: dict[tuple[Any, ...], list[PreparedSms]] = {}
    for sms in batch:
        groups.setdefault(body_key(sms), []).append(sms)
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

    ``key`` is the adapter's ``request_key``: ``plan`` never puts two keys in one
    request, and plans each key's messages as it would alone. Waiting messages are
    kept by key, and a key is planned only once it has ``size`` of them (fewer cannot
    make a full request), so each message is planned at most twice however many windows
    come: a personalised million costs a million, not a million squared over the
    window. Without ``key`` every message may share a request with any other.

    >>> from smsrelay.model import Message
    >>> m = Message("x")
    >>> sms = [PreparedSms(f"+6681234000{i}", "a", f"k{i}", "GSM-7", 1, m) for i in range(3)]
    >>> stream = RequestStream(lambda b: plan_by_body(b, 2), 2)
    >>> [len(c) for c in stream.add(sms)], [len(c) for c in stream.close()]
    ([2], [1])
    """

    def __init__(
        self,
        plan: Callable[[list[PreparedSms]], list[list[PreparedSms]]],
        size: int,
        key: Callable[[PreparedSms], Hashable] | None = None,
    ) -> None:
        self._plan = plan
        self._size = max(1, size)
        self._key = key
        self._waiting: dict[Hashable, list[PreparedSms]] = {}

    def add(self, messages: Sequence[PreparedSms]) -> list[list[PreparedSms]]:
        """The full requests these messages (and those still waiting) make."""
        ripe: dict[Hashable, None] = {}  # keys with a request's worth waiting, in order
        for sms in messages:
            key = self._key(sms) if self._key is not None else None
            group = self._waiting.setdefault(key, [])
            group.append(sms)
            if len(group) >= self._size:
                ripe[key] = None
        if not ripe:
            return []
        # One plan call for the keys that can fill a request; no other waiting message is looked at.
        planned = self._plan([sms for key in ripe for sms in self._waiting.pop(key)])
        for chunk in planned:
            if len(chunk) < self._size:
                key = self._key(chunk[0]) if self._key is not None else None
                self._waiting.setdefault(key, []).extend(chunk)
        return [chunk for chunk in planned if len(chunk) >= self._size]

    def close(self) -> list[list[PreparedSms]]:
        """Every request still waiting: no more messages will come."""
        waiting, self._waiting = self._waiting, {}
        return self._plan([sms for group in waiting.values() for sms in group]) if waiting else []
