"""``SmsDeliverySensor``: wait until messages reach a final status; fail on failed ones.

Pokes on the worker, or with ``deferrable=True`` waits on the triggerer, which only
polls the provider (``status()``, or the event feed where there is no status call).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from smsrelay_airflow._compat import AirflowException, AirflowFailException, BaseSensorOperator
from smsrelay_airflow.outcomes import DEFAULT_SUCCESS, judge, success_statuses

if TYPE_CHECKING:
    from smsrelay_airflow.hooks.sms import SmsHook
    from smsrelay_airflow.polling import DeliveryPoller

__all__ = ["SmsDeliverySensor"]


def _default_deferrable() -> bool:
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # Airflow 2.x
        from airflow.configuration import conf  # type: ignore[no-redef]
    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


class SmsDeliverySensor(BaseSensorOperator):
    """Wait for ``message_ids`` (ids, or ``SendSmsOperator`` results) to settle.

    On a routing connection each message is followed on the account that sent it: pass
    the operator's results (each row names its ``account``) or ``{account: [ids]}``.

    Succeeds when every message is in ``success_statuses`` (default ``delivered``);
    fails, naming each message, its status and the provider's reason, as soon as one
    reaches another final status (``failed``, ``rejected``, ``expired``...). Returns
    each message's latest status.

    >>> SmsDeliverySensor(task_id="delivered", message_ids=send.output, deferrable=True)  # doctest: +SKIP
    """

    template_fields: Sequence[str] = ("message_ids", "sms_conn_id")
    ui_color = "#d2e8b8"

    def __init__(
        self,
        *,
        message_ids: Any,
        sms_conn_id: str = "smsrelay_default",
        success_statuses: Sequence[str] = DEFAULT_SUCCESS,
        deferrable: bool | None = None,
        hook_params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 30)
        super().__init__(**kwargs)
        self.message_ids = message_ids
        self.sms_conn_id = sms_conn_id
        self.success_statuses = success_statuses
        self.deferrable = _default_deferrable() if deferrable is None else deferrable
        self.hook_params = dict(hook_params or {})
        self.statuses: dict[str, dict[str, Any]] = {}

    @cached_property
    def hook(self) -> SmsHook:
        from smsrelay_airflow.hooks.sms import SmsHook

        return SmsHook(self.sms_conn_id, **self.hook_params)

    @cached_property
    def poller(self) -> DeliveryPoller:
        from smsrelay_airflow.polling import DeliveryPoller

        return DeliveryPoller(self._ids())

    def _ids(self) -> dict[str | None, list[str]]:
        """The ids to follow, by the account that sent each (None: the connection's one account)."""
        from smsrelay_airflow.polling import ids_by_account

        try:
            self.success_statuses = success_statuses(self.success_statuses)
            ids = ids_by_account(self.message_ids)
        except (TypeError, ValueError) as exc:
            raise AirflowFailException(f"{self.task_id}: {exc}") from None
        if not ids:
            raise AirflowFailException(f"{self.task_id}: message_ids: no message ids to wait for")
        return ids

    def poke(self, context: Any) -> bool:
        from smsrelay import ProviderServerError, RateLimited, SmsRelayError, TransportError

        try:
            self.statuses = self.poller.poll(self.hook)
        except (TransportError, ProviderServerError, RateLimited) as exc:
            self.log.warning("Polling delivery reports failed; trying again at the next poke: %s", exc)
            return False
        except SmsRelayError as exc:
            raise AirflowFailException(f"{self.task_id}: {exc}") from None
        return self._settle(self.statuses)

    def _settle(self, statuses: Mapping[str, Mapping[str, Any]]) -> bool:
        verdict = judge(statuses, tuple(self.success_statuses))
        if verdict.failures:
            raise AirflowFailException(f"{self.task_id}: {verdict.failure_message(statuses)}")
        if not verdict.done:
            self.log.info("%d of %d message(s) still pending.", len(verdict.pending), len(statuses))
        return verdict.done

    def execute(self, context: Any) -> dict[str, Any]:
        if not self.deferrable:
            super().execute(context)
            return {"statuses": self.statuses}
        if self.poke(context):
            return {"statuses": self.statuses}
        from smsrelay_airflow.polling import for_trigger
        from smsrelay_airflow.triggers.sms import SmsDeliveryTrigger

        self.defer(
            trigger=SmsDeliveryTrigger(
                self.sms_conn_id,
                for_trigger(self.poller.by_account),
                poll_interval=float(self.poke_interval),
                success_statuses=list(self.success_statuses),
                hook_params=self.hook_params,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)) if self.timeout else None,
        )

    def execute_complete(self, context: Any, event: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired."""
        if not event or event.get("status") != "done":
            raise AirflowException(f"{self.task_id}: waiting for delivery failed: {(event or {}).get('message')}")
        self.success_statuses = success_statuses(self.success_statuses)
        self._settle(event["statuses"])
        return {"statuses": dict(event["statuses"])}
