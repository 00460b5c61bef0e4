"""Triggers that wait on the triggerer for delivery reports and replies. They never send.

Each builds its own client inside ``run()`` (a trigger is serialised and rebuilt, so
it holds only JSON-safe arguments) and runs the core's blocking calls in a thread,
so the triggerer's event loop never blocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from smsrelay_airflow.outcomes import DEFAULT_SUCCESS, judge
from smsrelay_airflow.polling import DeliveryPoller, ReplyPoller
from smsrelay_airflow.replies import ReplyRule

__all__ = ["SmsDeliveryTrigger", "SmsReplyTrigger", "connect"]


async def connect(sms_conn_id: str, hook_params: dict[str, Any] | None) -> Any:
    """An ``SmsHook`` built from a connection fetched without blocking the event loop."""
    from smsrelay_airflow._compat import BaseHook
    from smsrelay_airflow.hooks.sms import SmsHook

    aget = getattr(BaseHook, "aget_connection", None)  # Airflow >= 3.1
    if aget is not None:
        conn = await aget(sms_conn_id)
    else:
        conn = await asyncio.to_thread(BaseHook.get_connection, sms_conn_id)
    return SmsHook(sms_conn_id, connection=conn, mask_secrets=False, **(hook_params or {}))


def _transient(exc: BaseException) -> bool:
    from smsrelay import ProviderServerError, RateLimited, TransportError

    return isinstance(exc, TransportError | ProviderServerError | RateLimited)


class _PollingTrigger(BaseTrigger):
    """Connect, then call :meth:`check` in a thread every ``poll_interval`` until it returns a payload.

    Transient provider errors are logged and retried; any other error ends the wait
    with ``{"status": "error", "message": ...}``.
    """

    sms_conn_id: str
    hook_params: dict[str, Any]
    poll_interval: float
    what = "polling"

    def check(self, hook: Any) -> dict[str, Any] | None:
        raise NotImplementedError

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            hook = await connect(self.sms_conn_id, self.hook_params)
        except Exception as exc:
            yield TriggerEvent({"status": "error", "message": str(exc)})
            return
        try:
            while True:
                try:
                    payload = await asyncio.to_thread(self.check, hook)
                except Exception as exc:
                    if not _transient(exc):
                        yield TriggerEvent({"status": "error", "message": str(exc)})
                        return
                    self.log.warning("%s failed, will retry: %s", self.what, exc)
                else:
                    if payload is not None:
                        yield TriggerEvent(payload)
                        return
                await asyncio.sleep(self.poll_interval)
        finally:
            hook.close()  # quick, and must not await: this may run while the generator is closed


def _ids(value: Sequence[str] | Mapping[str, Sequence[str]]) -> list[str] | dict[str, list[str]]:
    """JSON-safe: a list of ids (the connection's one account), or ``{account: [ids]}`` (a routed one)."""
    if isinstance(value, Mapping):
        return {str(account): list(ids) for account, ids in value.items()}
    return list(value)


def _by_account(ids: list[str] | dict[str, list[str]]) -> dict[str | None, list[str]]:
    return {None: ids} if isinstance(ids, list) else {account: list(v) for account, v in ids.items()}


class SmsDeliveryTrigger(_PollingTrigger):
    """Fires when every message is settled (successful or final); polls ``status()``/``events()``.

    ``message_ids`` is a list of ids, or on a routed connection ``{account: [ids]}``: each
    message is followed on the account that sent it.
    """

    def __init__(
        self,
        sms_conn_id: str,
        message_ids: Sequence[str] | Mapping[str, Sequence[str]],
        *,
        poll_interval: float = 30.0,
        success_statuses: Sequence[str] = DEFAULT_SUCCESS,
        hook_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow's BaseTrigger.__init__ has no annotations
        self.sms_conn_id = sms_conn_id
        self.message_ids = _ids(message_ids)
        self.poll_interval = float(poll_interval)
        self.success_statuses = list(success_statuses)
        self.hook_params = hook_params or {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "sms_conn_id": self.sms_conn_id,
                "message_ids": self.message_ids,
                "poll_interval": self.poll_interval,
                "success_statuses": self.success_statuses,
                "hook_params": self.hook_params,
            },
        )

    what = "polling delivery reports"

    def check(self, hook: Any) -> dict[str, Any] | None:
        if "_poller" not in self.__dict__:
            self._poller = DeliveryPoller(_by_account(self.message_ids))
            self._pending: tuple[str, ...] = ()
        statuses = self._poller.poll(hook)
        verdict = judge(statuses, self.success_statuses)
        if verdict.done:
            return {"status": "done", "statuses": statuses}
        if verdict.pending != self._pending:  # log once per change, not per poll
            self.log.info("%d of %d message(s) still pending", len(verdict.pending), len(statuses))
            self._pending = verdict.pending
        return None


class SmsReplyTrigger(_PollingTrigger):
    """Fires when the core's approval rule decides the gate; polls the event feed.

    On a routed connection the feed is every account's, merged, and ``in_reply_to`` may be
    ``{account: [ids]}`` so each account is asked for its own question's first report.
    """

    def __init__(
        self,
        sms_conn_id: str,
        *,
        from_numbers: Sequence[str] = (),
        after: str | None = None,
        approve: str | None = None,
        reject: str | None = None,
        in_reply_to: Sequence[str] | Mapping[str, Sequence[str]] = (),
        code: str | None = None,
        open_for: float = 3600.0,
        poll_interval: float = 30.0,
        hook_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow's BaseTrigger.__init__ has no annotations
        self.sms_conn_id = sms_conn_id
        self.from_numbers = list(from_numbers)
        self.after = after
        self.approve = approve
        self.reject = reject
        self.in_reply_to = _ids(in_reply_to)
        self.code = code
        self.open_for = float(open_for)
        self.poll_interval = float(poll_interval)
        self.hook_params = hook_params or {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "sms_conn_id": self.sms_conn_id,
                "from_numbers": self.from_numbers,
                "after": self.after,
                "approve": self.approve,
                "reject": self.reject,
                "in_reply_to": self.in_reply_to,
                "code": self.code,
                "open_for": self.open_for,
                "poll_interval": self.poll_interval,
                "hook_params": self.hook_params,
            },
        )

    def rule(self) -> ReplyRule:
        return ReplyRule(
            numbers=frozenset(self.from_numbers),
            after=datetime.fromisoformat(self.after) if self.after else None,
            approve=self.approve,
            reject=self.reject,
            in_reply_to=frozenset(
                self.in_reply_to
                if isinstance(self.in_reply_to, list)
                else (mid for ids in self.in_reply_to.values() for mid in ids)
            ),
            code=self.code,
            open_for=timedelta(seconds=self.open_for),
        )

    what = "polling replies"

    def check(self, hook: Any) -> dict[str, Any] | None:
        if "_poller" not in self.__dict__:
            asks = None if isinstance(self.in_reply_to, list) else _by_account(self.in_reply_to)
            self._poller = ReplyPoller(self.rule(), asks)
        found = self._poller.poll(hook, self._passed)
        return None if found is None else {"status": "reply", "reply": found}

    def _passed(self, reply: Any, why: str) -> None:
        from smsrelay import mask_phone

        self.log.info("A reply from %s %s; still waiting", mask_phone(reply.phone), why)
