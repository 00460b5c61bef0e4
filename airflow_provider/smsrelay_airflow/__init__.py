"""Apache Airflow provider for smsrelay: send SMS, wait for delivery reports and replies,
and start DAGs from inbound SMS.

>>> from smsrelay_airflow.operators.send import SendSmsOperator  # doctest: +SKIP
>>> SendSmsOperator(task_id="hi", to="+61491570156", message="Hi")  # doctest: +SKIP
>>> from smsrelay_airflow import sms_asset  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smsrelay_airflow.assets import sms_asset

__version__ = "0.1.0"

__all__ = ["sms_asset"]


def __getattr__(name: str) -> Any:
    # Lazy: Airflow imports this package to read get_provider_info(), which must stay cheap.
    if name == "sms_asset":
        from smsrelay_airflow.assets import sms_asset

        return sms_asset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
