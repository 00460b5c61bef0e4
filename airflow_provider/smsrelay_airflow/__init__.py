"""Apache Airflow provider for smsrelay: send SMS, wait for delivery reports and replies.

>>> from smsrelay_airflow.operators.send import SendSmsOperator  # doctest: +SKIP
>>> SendSmsOperator(task_id="hi", to="+61491570156", message="Hi")  # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"
