"""Waiting after a send: for every delivery report, or for a reply that decides a gate.

Both poll through the core (``Client.status`` and ``Client.events``) every
``interval`` seconds until done or ``timeout``; a poll that fails is retried at
the next interval rather than ending the wait.

>>> decide("yes please", re.compile("^yes"), re.compile("^no"))
'approved'
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from smsrelay.client import Client
from smsrelay.errors import SmsRelayError
from smsrelay.model import Delivery, Reply

__all__ = ["ReplyOutcome", "decide", "wait_for_delivery", "wait_for_reply"]

log = logging.getLogger("smsrelay.action")
Sleep = Callable[[float], None]


def wait_for_delivery(
    client: Client,
    message_ids: Sequence[str],
    *,
    timeout: float,
    interval: float,
    sleep: Sleep = time.sleep,
) -> tuple[dict[str, Delivery], bool]:
    """Poll until every message has a final status; return the reports and whether all are final."""
    deadline = time.monotonic() + timeout
    reports: dict[str, Delivery] = {}
    while True:
        try:
            reports.update(client.status(list(message_ids)))
        except SmsRelayError as exc:
            log.warning("delivery status poll failed, trying again: %s", exc)
        if message_ids and all(mid in reports and reports[mid].status.final for mid in message_ids):
            return reports, True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return reports, False
        sleep(min(interval, remaining))


def decide(text: str, approve: re.Pattern[str], reject: re.Pattern[str]) -> str | None:
    """``approved``, ``rejected`` or None for a reply's text; a reject match wins a tie.

    >>> decide("NO", re.compile("^yes", re.I), re.compile("^no", re.I))
    'rejected'
    """
    if reject.search(text):
        return "rejected"
    if approve.search(text):
        return "approved"
    return None


@dataclass(frozen=True)
class ReplyOutcome:
    """How a reply wait ended: ``approved``, ``rejected`` or ``timeout``, and the deciding reply."""

    decision: str
    reply: Reply | None = None
    ignored: int = 0


def wait_for_reply(
    client: Client,
    *,
    allowed: Collection[str],
    message_ids: Collection[str],
    not_before: datetime,
    approve: re.Pattern[str],
    reject: re.Pattern[str],
    timeout: float,
    interval: float,
    sleep: Sleep = time.sleep,
    on_ignored: Callable[[Reply], None] | None = None,
) -> ReplyOutcome:
    """Poll the event feed for the first reply from ``allowed`` that matches a pattern.

    A reply counts only if it came after ``not_before`` and, where the provider
    threads replies, answers one of ``message_ids``: an old "YES" in the feed never
    approves a new deploy.
    """
    deadline = time.monotonic() + timeout
    cursor: str | None = None
    seen: set[str] = set()
    ignored = 0
    while True:
        try:
            while True:
                page = client.events(since=cursor)
                cursor = page.cursor or cursor
                for event in page.events:
                    if not isinstance(event, Reply) or event.event_id in seen:
                        continue
                    seen.add(event.event_id)
                    if not _relevant(event, allowed, message_ids, not_before):
                        continue
                    verdict = decide(event.text, approve, reject)
                    if verdict is not None:
                        return ReplyOutcome(verdict, event, ignored)
                    ignored += 1
                    if on_ignored:
                        on_ignored(event)
                if not page.more:
                    break
        except SmsRelayError as exc:
            log.warning("reply poll failed, trying again: %s", exc)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return ReplyOutcome("timeout", None, ignored)
        sleep(min(interval, remaining))


def _relevant(reply: Reply, allowed: Collection[str], message_ids: Collection[str], not_before: datetime) -> bool:
    if reply.phone not in allowed or reply.occurred_at < not_before:
        return False
    return reply.in_reply_to is None or reply.in_reply_to in message_ids
