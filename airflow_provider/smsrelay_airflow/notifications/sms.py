"""``SmsNotifier`` (alias ``send_sms_notification``): an SMS from a task or DAG callback.

>>> from smsrelay_airflow.notifications.sms import send_sms_notification  # doctest: +SKIP
>>> BashOperator(task_id="load", bash_command="exit 1",
...              on_failure_callback=send_sms_notification(to="+61491570156"))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from smsrelay_airflow._compat import AirflowException, BaseNotifier, notifier_init_kwargs

if TYPE_CHECKING:
    from smsrelay import SendResult
    from smsrelay_airflow.hooks.sms import SmsHook

__all__ = ["DEFAULT_MESSAGE", "SmsNotifier", "send_sms_notification"]

# Users want a sensible default body instead of a long Jinja string:
# https://github.com/apache/airflow/issues/35381 ("Extend Notifier interface").
DEFAULT_MESSAGE = (
    "Airflow {{ (ti.state or 'callback') | string | upper }}: {{ dag.dag_id if dag else ti.dag_id }}"
    ".{{ ti.task_id if ti else '' }} run {{ run_id }} try {{ ti.try_number if ti else '' }}"
    "{% if ti and ti.log_url %} {{ ti.log_url }}{% endif %}"
)


class SmsNotifier(BaseNotifier):
    """Send an SMS when a callback fires: ``on_failure_callback``, ``on_success_callback``, SLA/deadline.

    The default message names the DAG, task, run, try number and log URL. Each
    (dag, run, task, try, recipient) sends at most once, even if the callback fires twice.
    """

    template_fields = ("to", "message", "sender", "sms_conn_id")

    def __init__(
        self,
        *,
        to: str | Sequence[str],
        message: str = DEFAULT_MESSAGE,
        sender: str | None = None,
        sms_conn_id: str = "smsrelay_default",
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**notifier_init_kwargs(kwargs))
        self.to = to
        self.message = message
        self.sender = sender
        self.sms_conn_id = sms_conn_id
        self.hook_params = dict(hook_params or {})

    @cached_property
    def hook(self) -> SmsHook:
        from smsrelay_airflow.hooks.sms import SmsHook

        return SmsHook(self.sms_conn_id, **self.hook_params)

    @staticmethod
    def dedupe_key(context: Any) -> str:
        """One key per callback occurrence, so a callback fired twice sends once."""
        ti = context.get("ti")
        dag = context.get("dag")
        parts = [
            getattr(ti, "dag_id", None) or getattr(dag, "dag_id", None) or "",
            context.get("run_id") or getattr(ti, "run_id", "") or "",
            getattr(ti, "task_id", "") or "",
            str(getattr(ti, "map_index", "")),
            str(getattr(ti, "try_number", "")),
            str(getattr(ti, "state", "") or ""),
        ]
        return "airflow-notify/" + "/".join(parts)

    def _send(self, context: Any) -> SendResult:
        from smsrelay import SmsRelayError, mask_phone

        try:
            result = self.hook.send(self.to, self.message, sender=self.sender, key=self.dedupe_key(context))
        except SmsRelayError as exc:
            raise AirflowException(f"SMS notification failed: {exc}") from None
        if not result.accepted:
            reasons = "; ".join(f"{mask_phone(r.to)}: {r.error or r.status.value}" for r in result.failed)
            raise AirflowException(f"SMS notification was not sent: {reasons}")
        return result

    def notify(self, context: Any) -> None:
        """Send the (already rendered) message."""
        self._send(context)

    async def async_notify(self, context: Any) -> None:
        """The same, for the triggerer (deadline alerts); the blocking client runs in a thread."""
        if "hook" not in self.__dict__:
            from smsrelay_airflow.triggers.sms import connect

            self.__dict__["hook"] = await connect(self.sms_conn_id, self.hook_params)
        await asyncio.to_thread(self._send, context)


send_sms_notification = SmsNotifier
