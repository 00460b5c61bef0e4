"""The read-only calls sensors make (on the worker) and triggers make (in a thread).

Nothing here sends: a trigger may be replayed after a triggerer restart, so it only
reads delivery reports and the event feed (research/airflow.md §0.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smsrelay.model import Delivery
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
        from smsrelay.lifecycle import merge
        from smsrelay.model import Delivery

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
    """Reads the event feed forward from its cursor until a reply satisfies the rule."""

    def __init__(self, rule: ReplyRule) -> None:
        self.rule = rule
        self.cursor: str | None = None
        self.ignored = 0

    def poll(self, hook: SmsHook) -> dict[str, Any] | None:
        from smsrelay.model import Reply

        while True:
            page = hook.events(self.cursor, limit=PAGE)
            for event in page:
                if not isinstance(event, Reply):
                    continue
                reply = {
                    "phone": event.phone,
                    "text": event.text,
                    "occurred_at": event.occurred_at,
                    "in_reply_to": event.in_reply_to,
                }
                decision = self.rule.decide(reply)
                if decision is None:
                    self.ignored += 1
                    continue
                return {
                    "decision": decision,
                    "text": event.text,
                    "from": event.phone,
                    "occurred_at": event.occurred_at.isoformat(),
                    "event_id": event.event_id,
                    "message_id": event.message_id,
                    "in_reply_to": event.in_reply_to,
                }
            self.cursor = page.cursor or self.cursor
            if not page.more:
                return None
