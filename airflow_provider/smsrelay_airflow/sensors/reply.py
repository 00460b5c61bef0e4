"""``SmsReplySensor``: approval by SMS. Wait for a reply from given numbers after a time.

A reply matching ``approve`` succeeds and returns the text and who sent it; one
matching ``reject`` fails the task saying who rejected it and how. Replies from other
numbers, from before ``after``, or matching neither pattern are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from smsrelay_airflow._compat import AirflowException, AirflowFailException, BaseSensorOperator
from smsrelay_airflow.replies import DEFAULT_APPROVE, DEFAULT_REJECT, ReplyRule, pattern_source
from smsrelay_airflow.sensors.delivery import _default_deferrable

if TYPE_CHECKING:
    from smsrelay_airflow.hooks.sms import SmsHook
    from smsrelay_airflow.polling import ReplyPoller

__all__ = ["SmsReplySensor"]


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


class SmsReplySensor(BaseSensorOperator):
    """Wait for an approving reply; fail on a rejecting one.

    ``approve``/``reject`` are regexes (matched at the start, case-insensitively) or
    keyword lists. ``after`` (a datetime or ISO text, templated) defaults to when the
    sensor started; pass the ``sent_at`` of the question's ``SendSmsOperator``
    result to count replies from the moment it went out. Returns ``{"text", "from",
    "occurred_at", ...}``.

    >>> SmsReplySensor(task_id="approval", from_numbers=["+61491570156"], approve=["YES", "APPROVE"],
    ...                reject=["NO", "REJECT"], timeout=3600, deferrable=True)  # doctest: +SKIP
    """

    template_fields: Sequence[str] = ("from_numbers", "after", "approve", "reject", "in_reply_to", "sms_conn_id")
    ui_color = "#e8d2b8"

    def __init__(
        self,
        *,
        from_numbers: Any = None,
        after: datetime | str | None = None,
        approve: str | Sequence[str] | None = DEFAULT_APPROVE,
        reject: str | Sequence[str] | None = DEFAULT_REJECT,
        in_reply_to: Any = None,
        sms_conn_id: str = "smsrelay_default",
        deferrable: bool | None = None,
        hook_params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 30)
        kwargs.setdefault("timeout", 3600)
        super().__init__(**kwargs)
        self.from_numbers = from_numbers
        self.after = after
        self.approve = approve
        self.reject = reject
        self.in_reply_to = in_reply_to
        self.sms_conn_id = sms_conn_id
        self.deferrable = _default_deferrable() if deferrable is None else deferrable
        self.hook_params = dict(hook_params or {})
        self.reply: dict[str, Any] | None = None

    @cached_property
    def hook(self) -> SmsHook:
        from smsrelay_airflow.hooks.sms import SmsHook

        return SmsHook(self.sms_conn_id, **self.hook_params)

    def rule(self, context: Any) -> ReplyRule:
        """Validate the (rendered) arguments into a matching rule; bad input names the field."""
        from smsrelay.errors import InvalidRequest
        from smsrelay.phone import normalize
        from smsrelay_airflow.outcomes import message_ids_from

        try:
            region = self.hook.settings.default_region
            numbers = frozenset(normalize(n, region) for n in _as_list(self.from_numbers))
            approve = pattern_source(self.approve, field="approve")
            reject = pattern_source(self.reject, field="reject")
            after = self._after(context)
            threads = frozenset(message_ids_from(self.in_reply_to))
        except InvalidRequest as exc:
            raise AirflowFailException(f"{self.task_id}: from_numbers: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise AirflowFailException(f"{self.task_id}: {exc}") from None
        return ReplyRule(numbers, after, approve, reject, threads)

    def _after(self, context: Any) -> datetime:
        value = self.after
        if value is None or value == "":
            ti = context.get("ti")
            value = getattr(ti, "start_date", None) or datetime.now(UTC)
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(f"after: {value!r} is not an ISO 8601 date and time") from None
        if not isinstance(value, datetime):
            raise ValueError(f"after: expected a datetime or ISO text, got {type(value).__name__}")
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @cached_property
    def poller(self) -> ReplyPoller:
        from smsrelay_airflow.polling import ReplyPoller

        return ReplyPoller(self.rule(self._context))

    def poke(self, context: Any) -> bool:
        from smsrelay.errors import ProviderServerError, RateLimited, SmsRelayError, TransportError

        self._context = context
        try:
            found = self.poller.poll(self.hook)
        except (TransportError, ProviderServerError, RateLimited) as exc:
            self.log.warning("Polling replies failed; trying again at the next poke: %s", exc)
            return False
        except SmsRelayError as exc:
            raise AirflowFailException(f"{self.task_id}: {exc}") from None
        if found is None:
            return False
        self.reply = self._decide(found)
        return True

    def _decide(self, found: Mapping[str, Any]) -> dict[str, Any]:
        if found["decision"] == "reject":
            raise AirflowFailException(
                f"{self.task_id}: rejected by SMS: {found['from']} replied {found['text']!r} at {found['occurred_at']}"
            )
        self.log.info("Approved by SMS: %s replied %r.", found["from"], found["text"])
        return dict(found)

    def execute(self, context: Any) -> dict[str, Any]:
        self._context = context
        if not self.deferrable:
            super().execute(context)
            assert self.reply is not None
            return self.reply
        if self.poke(context):
            assert self.reply is not None
            return self.reply
        from smsrelay_airflow.triggers.sms import SmsReplyTrigger

        rule = self.poller.rule
        self.defer(
            trigger=SmsReplyTrigger(
                self.sms_conn_id,
                from_numbers=sorted(rule.numbers),
                after=rule.after.isoformat() if rule.after else None,
                approve=rule.approve,
                reject=rule.reject,
                in_reply_to=sorted(rule.in_reply_to),
                poll_interval=float(self.poke_interval),
                hook_params=self.hook_params,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)) if self.timeout else None,
        )

    def execute_complete(self, context: Any, event: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired."""
        if not event or event.get("status") != "reply":
            raise AirflowException(f"{self.task_id}: waiting for a reply failed: {(event or {}).get('message')}")
        return self._decide(event["reply"])
