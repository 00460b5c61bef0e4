"""Waiting after a send: for every delivery report, or for a reply that decides a gate.

Both poll through the core (``Client.status`` and ``Client.events``) every
``interval`` seconds until done or ``timeout``; a poll that fails is retried at
the next interval rather than ending the wait. Which reply decides a gate is the
core's one approval rule (``smsrelay.approval``), shared with the Airflow sensor.

>>> ReplyOutcome("timeout").reply is None
True
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from smsrelay import Approval, Client, Delivery, Reply, SmsRelayError

__all__ = ["ReplyOutcome", "wait_for_delivery", "wait_for_reply"]

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


@dataclass(frozen=True)
class ReplyOutcome:
    """How a reply wait ended: ``approved``, ``rejected`` or ``timeout``, the deciding reply, and why."""

    decision: str
    reply: Reply | None = None
    reason: str = ""


def wait_for_reply(
    client: Client,
    approval: Approval,
    *,
    timeout: float,
    interval: float,
    sleep: Sleep = time.sleep,
    on_passed: Callable[[Reply, str], None] | None = None,
) -> ReplyOutcome:
    """Poll the event feed until the core's approval rule decides the gate, or ``timeout``.

    Every reply and delivery report goes to ``approval`` (``smsrelay.Approval``), which
    knows the gate's send time by the provider's clock and which replies count; a reply
    that does not decide is passed to ``on_passed`` with the reason, once per reason.
    """
    deadline = time.monotonic() + timeout
    cursor: str | None = None
    told: set[tuple[str, str]] = set()
    while True:
        try:
            while True:
                page = client.events(since=cursor)
                cursor = page.cursor or cursor
                approval.observe(page.events)
                if not page.more:
                    break
        except SmsRelayError as exc:
            log.warning("reply poll failed, trying again: %s", exc)
        verdict = approval.verdict()
        for reply, why in verdict.passed:
            if on_passed is not None and (reply.event_id, why) not in told:
                told.add((reply.event_id, why))
                on_passed(reply, why)
        if verdict.decision != "undecided":
            return ReplyOutcome(verdict.decision, verdict.reply, verdict.reason)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return ReplyOutcome("timeout", None, verdict.reason)
        sleep(min(interval, remaining))
