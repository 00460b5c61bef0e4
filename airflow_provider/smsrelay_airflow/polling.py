"""The read-only calls sensors make (on the worker) and triggers make (in a thread).

Nothing here sends: a trigger may be replayed after a triggerer restart, so it only
reads delivery reports and the event feed (https://github.com/apache/airflow/issues/67945).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smsrelay import Delivery, Reply
    from smsrelay_airflow.hooks.sms import SmsHook
    from smsrelay_airflow.replies import ReplyRule

__all__ = ["DeliveryPoller", "ReplyPoller", "for_trigger", "ids_by_account"]

PAGE = 500

# Message ids by the account that sent them; None is a connection's one account.
ByAccount = dict[str | None, list[str]]


def ids_by_account(value: Any) -> ByAccount:
    """Message ids grouped by the account that sent them, from whatever a sensor was given.

    ``SendSmsOperator`` results (their rows name ``account`` on a routed connection),
    rows, ``{account: [ids]}``, or plain ids (the connection's one account: None).

    >>> ids_by_account({"results": [{"message_id": "m1", "account": "th"}, {"message_id": None}]})
    {'th': ['m1']}
    >>> ids_by_account({"au": ["k1"], "th": "m1"})
    {'au': ['k1'], 'th': ['m1']}
    >>> ids_by_account(["m1", "m2"])
    {None: ['m1', 'm2']}
    """
    from collections.abc import Iterable, Mapping

    from smsrelay_airflow.outcomes import message_ids_from

    # Each account's ids in order, once each: a dict, as a list scan per id is quadratic on 100,000s.
    out: dict[str | None, dict[str, None]] = {}

    def add(account: Any, ids: Iterable[str]) -> None:
        out.setdefault(None if account is None else str(account), {}).update(dict.fromkeys(ids))

    def walk(item: Any) -> None:
        if isinstance(item, Mapping):
            if "results" in item:  # a SendSmsOperator result: its rows say which account sent each
                for row in item["results"] or ():
                    walk(row)
            elif "message_ids" in item:
                add(None, message_ids_from(item["message_ids"]))
            elif "message_id" in item:  # one row
                if item.get("message_id"):
                    add(item.get("account"), [str(item["message_id"])])
            else:  # {account: ids}
                for account, ids in item.items():
                    add(account, message_ids_from(ids))
        elif item is None or isinstance(item, str):
            ids = message_ids_from(item)
            if ids:
                add(None, ids)
        elif isinstance(item, Iterable):
            for part in item:
                walk(part)
        else:
            raise TypeError(f"message_ids: expected ids or SendSmsOperator results, got {type(item).__name__}")

    walk(value)
    if None in out and len(out) > 1:
        raise ValueError("message_ids: some ids name their account and some do not; name it for all, or for none")
    return {account: list(ids) for account, ids in out.items() if ids}


def for_trigger(by_account: Mapping[str | None, Sequence[str]]) -> list[str] | dict[str, list[str]]:
    """JSON-safe ids for a trigger: a list for the connection's one account, else ``{account: [ids]}``."""
    if None in by_account:
        return list(by_account[None])
    return {str(account): list(ids) for account, ids in by_account.items()}


def _report(d: Delivery | None, account: str | None) -> dict[str, Any]:
    where = {} if account is None else {"account": account}
    if d is None:
        return {"status": "queued", "reason": None, "raw_status": None, "to": None, **where}
    return {
        "status": d.status.value,
        "reason": d.reason,
        "raw_status": d.raw_status,
        "to": d.phone,
        "at": d.occurred_at.isoformat(),
        **where,
    }


class DeliveryPoller:
    """The latest report of each message, asked of the account that sent it.

    ``status()`` where the provider has it, else that account's event feed (one cursor per account).
    """

    def __init__(self, message_ids: Sequence[str] | Mapping[str | None, Sequence[str]]) -> None:
        wanted = message_ids if isinstance(message_ids, Mapping) else {None: message_ids}
        self.by_account: ByAccount = {account: list(ids) for account, ids in wanted.items()}
        self.message_ids = [mid for ids in self.by_account.values() for mid in ids]
        self.cursors: dict[str | None, str | None] = {}
        self._seen: dict[str, Delivery] = {}

    def poll(self, hook: SmsHook) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for account, ids in self.by_account.items():
            client = hook.client_for(account)
            reports = client.status(ids) if client.capabilities.status_poll else self._from_feed(hook, account, ids)
            out.update({mid: _report(reports.get(mid), account) for mid in ids})
        return out

    def _from_feed(self, hook: SmsHook, account: str | None, ids: Sequence[str]) -> dict[str, Delivery]:
        from smsrelay import Delivery, merge

        wanted = set(ids)
        while True:
            page = hook.events(self.cursors.get(account), limit=PAGE, account=account)
            for event in page:
                if isinstance(event, Delivery) and event.message_id in wanted:
                    self._seen[event.message_id] = merge(self._seen.get(event.message_id), event)
            self.cursors[account] = page.cursor or self.cursors.get(account)
            if not page.more:
                return self._seen


class ReplyPoller:
    """Reads the event feed forward from its cursor until the core's approval rule decides the gate.

    The gate's send time is the provider's own: its first report of the question's
    messages (``status()`` at the first poll where the provider has it, then the feed).
    On a routed connection the feed is every account's, merged (``Router.events()``), so a
    reply to a message any account sent is seen; ``asks`` names the account of each
    question id, to ask that account's ``status()`` (without it, the feed reports them).
    """

    def __init__(self, rule: ReplyRule, asks: Mapping[str | None, Sequence[str]] | None = None) -> None:
        self.rule = rule
        self.approval = rule.approval()
        self.asks = None if asks is None else {account: sorted(ids) for account, ids in asks.items() if ids}
        self.cursor: str | None = None
        self.cursors: dict[str, str | None] = {}  # one per account, on a routed connection
        self.reason = "no reply yet"
        self._asked: set[str | None] = set()
        self._told: set[tuple[str, str]] = set()
        self._accounts: dict[str, str] = {}  # event id -> the account whose feed had it

    def poll(self, hook: SmsHook, on_passed: Callable[[Reply, str], None] | None = None) -> dict[str, Any] | None:
        """The deciding reply as a JSON-safe dict, or None; ``on_passed`` hears each reply that did not decide, once."""
        self._ask(hook)
        if hook.router is not None:
            while True:
                routed = hook.router.events(self.cursors, limit=PAGE)
                for item in routed:
                    self._accounts[item.event.event_id] = item.account
                self.approval.observe([item.event for item in routed])
                self.cursors = dict(routed.cursors)
                if not routed.more:
                    break
        else:
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
            **({"account": self._accounts[event.event_id]} if event.event_id in self._accounts else {}),
        }

    def _ask(self, hook: SmsHook) -> None:
        """Each account's first report of the question's messages, once, where it has ``status()``."""
        from smsrelay import SmsRelayError

        ids = sorted(self.rule.in_reply_to)
        asks = self.asks
        if asks is None:  # ids alone: the connection's one account; a routed feed reports them instead
            asks = {} if hook.router is not None or not ids else {None: ids}
        for account, wanted in asks.items():
            if account in self._asked or (account is None and hook.router is not None):
                continue
            client = hook.client_for(account)
            if not client.capabilities.status_poll:
                continue
            try:  # not yet listed (read-after-write lag) is no failure: the feed reports it too
                self.approval.observe(client.status(wanted).values())
                self._asked.add(account)
            except SmsRelayError:
                pass
