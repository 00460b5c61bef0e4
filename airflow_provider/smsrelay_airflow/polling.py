"""The read-only calls sensors make (on the worker) and triggers make (in a thread).

Nothing here sends: a trigger may be replayed after a triggerer restart, so it only
reads delivery reports and the event feed (https://github.com/apache/airflow/issues/67945).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smsrelay import Delivery, Reply
    from smsrelay_airflow.hooks.sms import SmsHook
    from smsrelay_airflow.replies import ReplyRule

__all__ = ["DeliveryPoller", "ReplyPoller"]

PAGE = 500


def _report(d: Delivery | None) -> dict[str, Any]:
    if d is None:
        return {"status": "queued", "reason": None, "raw_status": None, "to": None}
    return {
        "status": d.status.value,
        "reason": d.reason,
        "raw_status": d.raw_status,
        "to": d.phone,
        "at": d.occurred_at.isoformat(),
    }


class DeliveryPoller:
    """The latest report of each message: ``status()`` where the provider has it, else the event feed."""

    def __init__(self, message_ids: Sequence[str]) -> None:
        self.message_ids = list(message_ids)
        self.cursor: str | None = None
        self._seen: dict[str, Delivery] = {}

    def poll(self, hook: SmsHook) -> dict[str, dict[str, Any]]:
        client = hook.client
        reports = client.status(self.message_ids) if client.capabilities.status_poll else self._from_feed(hook)
        return {mid: _report(reports.get(mid)) for mid in self.message_ids}

    def _from_feed(self, hook: SmsHook) -> dict[str, Delivery]:
        from smsrelay import Delivery, merge

        wanted = set(self.message_ids)
        while True:
            page = hook.events(self.cursor, limit=PAGE)
            for event in page:
                if isinstance(event, Delivery) and event.message_id in wanted:
                    self._seen[event.message_id] = merge(self._seen.get(event.message_id), event)
            self.cursor = page.cursor or self.cursor
            if not page.more:
                return self._seen


class ReplyPoller:
    """Reads the event feed forward from its cursor until the core's approval rule decides the gate.

    The gate's send time is the provider's own: its first report of the question's
    messages (``status()`` at the first poll where the provider has it, then the feed).
    """

    def __init__(self, rule: ReplyRule) -> None:
        self.rule = rule
        self.approval = rule.approval()
        self.cursor: str | None = None
        self.reason = "no reply yet"
        self._asked = False
        self._told: set[tuple[str, str]] = set()

    def poll(self, hook: SmsHook, on_passed: Callable[[Reply, str], None] | None = None) -> dict[str, Any] | None:
        """The deciding reply as a JSON-safe dict, or None; ``on_passed`` hears each reply that did not decide, once."""
        client = hook.client
        ids = sorted(self.rule.in_reply_to)
        if ids and not self._asked and client.capabilities.status_poll:
            from smsrelay import SmsRelayError

            try:  # not yet listed (read-after-write lag) is no failure: the feed reports it too
                self.approval.observe(client.status(ids).values())
                self._asked = True
            except SmsRelayError:
                pass
        while True:
            page = hook.events(self.cursor, limit=PAGE)
            self.approval.observe(page.events)
            self.cursor = page.cursor or self.cursor
            if not page.more:
                break
        verdict = self.approval.verdict()
        self.reason = verdict.reason
        for reply, why in verdict.passed:
            if on_passed is not None and (reply.event_id, why) not in self._told:
                self._told.add((reply.event_id, why))
                on_passed(reply, why)
        event = verdict.reply
        if event is None:
            return None
        return {
            "decision": "approve" if verdict.decision == "approved" else "reject",
            "text": event.text,
            "from": event.phone,
            "occurred_at": event.occurred_at.isoformat(),
            "event_id": event.event_id,
            "message_id": event.message_id,
            "in_reply_to": event.in_reply_to,
            "reason": verdict.reason,
        }
