"""``SmsReplySensor``: approval by SMS. Wait for the reply that decides this gate.

Which reply decides is the core's one approval rule (``smsrelay.approval``), the same as
the GitHub Action's. A reply matching ``approve`` succeeds and returns the text and who
sent it; one matching ``reject`` fails the task saying who rejected it and how. Replies
from other numbers, from before the question went out (by the provider's clock, given
``in_reply_to``), matching neither pattern, or that may answer another open gate are
logged with the reason and ignored.
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
    keyword lists; the defaults are the core's words. ``in_reply_to`` (templated: the
    question's ``SendSmsOperator`` result or its message ids) names the question: the
    provider's first report of it is the gate's send time, and a reply before that never
    counts. Without it, ``after`` (a datetime or ISO text, templated; default: when the
    sensor started) is, by this worker's clock. ``code`` is the per-gate code the question
    offered ("Reply YES 4821"): when several gates are open for one approver, only a
    reply with the code (or threaded by the provider) decides. On a routing connection
    the replies are every account's, merged, so a reply to a question any account sent is
    seen; the result then names the ``account`` it came in on. Returns ``{"text", "from",
    "occurred_at", "decision", "reason", ...}``.

    >>> SmsReplySensor(task_id="approval", from_numbers=["+61491570156"], approve=["YES", "APPROVE"],
    ...                reject=["NO", "REJECT"], in_reply_to=ask.output, timeout=3600,
    ...                deferrable=True)  # doctest: +SKIP
    """

    template_fields: Sequence[str] = (
        "from_numbers",
        "after",
        "approve",
        "reject",
        "in_reply_to",
        "code",
        "sms_conn_id",
    )
    ui_color = "#e8d2b8"

    def __init__(
        self,
        *,
        from_numbers: Any = None,
        after: datetime | str | None = None,
        approve: str | Sequence[str] | None = DEFAULT_APPROVE,
        reject: str | Sequence[str] | None = DEFAULT_REJECT,
        in_reply_to: Any = None,
        code: str | None = None,
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
        self.code = code
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
        from smsrelay import InvalidRequest, normalize_phone
        from smsrelay_airflow.outcomes import message_ids_from

        try:
            region = self.hook.default_region
            numbers = frozenset(normalize_phone(n, region) for n in _as_list(self.from_numbers))
            approve = pattern_source(self.approve, field="approve")
            reject = pattern_source(self.reject, field="reject")
            after = self._after(context)
            threads = frozenset(message_ids_from(self.in_reply_to))
            code = str(self.code).strip() if self.code not in (None, "") else None
            if code is not None and not code.isdigit():
                raise ValueError(f"code: {self.code!r} must be digits, as offered in the question")
        except InvalidRequest as exc:
            raise AirflowFailException(f"{self.task_id}: from_numbers: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise AirflowFailException(f"{self.task_id}: {exc}") from None
        open_for = timedelta(seconds=float(self.timeout)) if self.timeout else timedelta(hours=1)
        return ReplyRule(numbers, after, approve, reject, threads, code, open_for)

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
        from smsrelay_airflow.polling import ReplyPoller, ids_by_account

        rule = self.rule(self._context)
        try:  # the account of each question message, where its rows name it (a routed send)
            asks = ids_by_account(self.in_reply_to)
        except (TypeError, ValueError) as exc:
            raise AirflowFailException(f"{self.task_id}: in_reply_to: {exc}") from None
        return ReplyPoller(rule, None if None in asks else asks)

    def poke(self, context: Any) -> bool:
        from smsrelay import ProviderServerError, RateLimited, SmsRelayError, TransportError

        self._context = context
        try:
            found = self.poller.poll(self.hook, self._passed)
        except (TransportError, ProviderServerError, RateLimited) as exc:
            self.log.warning("Polling replies failed; trying again at the next poke: %s", exc)
            return False
        except SmsRelayError as exc:
            raise AirflowFailException(f"{self.task_id}: {exc}") from None
        if found is None:
            return False
        self.reply = self._decide(found)
        return True

    def _passed(self, reply: Any, why: str) -> None:
        from smsrelay import mask_phone

        self.log.info("A reply from %s %s; still waiting.", mask_phone(reply.phone), why)

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
        from smsrelay_airflow.polling import for_trigger
        from smsrelay_airflow.triggers.sms import SmsReplyTrigger

        rule = self.poller.rule
        asks = self.poller.asks
        self.defer(
            trigger=SmsReplyTrigger(
                self.sms_conn_id,
                from_numbers=sorted(rule.numbers),
                after=rule.after.isoformat() if rule.after else None,
                approve=rule.approve,
                reject=rule.reject,
                in_reply_to=for_trigger(asks) if asks else sorted(rule.in_reply_to),
                code=rule.code,
                open_for=rule.open_for.total_seconds(),
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
