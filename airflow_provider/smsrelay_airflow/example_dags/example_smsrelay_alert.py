"""An SMS alert to the on-call number when a task fails (a task-level callback).

Task-level callbacks run on the worker. Airflow 3.3.2's ``dags test`` breaks on
DAG-level notifier callbacks (apache/airflow#64649), so the examples attach the
notifier to the task; in a deployment a DAG-level ``on_failure_callback`` works too::

    export AIRFLOW_CONN_SMSRELAY_DEFAULT='{"conn_type": "smsrelay_sandbox"}'
    airflow dags test example_smsrelay_alert
"""

from __future__ import annotations

from datetime import datetime

try:
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2.x
    from airflow import DAG  # type: ignore[no-redef]
    from airflow.decorators import task  # type: ignore[no-redef]
    from airflow.models.param import Param  # type: ignore[no-redef]

from smsrelay_airflow.notifications.sms import send_sms_notification

with DAG(
    dag_id="example_smsrelay_alert",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["smsrelay", "example"],
    params={"on_call": Param("+61491570156", type="string"), "max_age_days": Param(1, type="integer")},
) as dag:

    @task(retries=0, on_failure_callback=send_sms_notification(to="{{ params.on_call }}"))
    def check_freshness(params: dict[str, int] | None = None) -> None:
        """Fails on purpose, to show the alert: the data is older than allowed."""
        assert params is not None
        age_days = 3
        if age_days > params["max_age_days"]:
            raise ValueError(f"the orders table is {age_days} days old (allowed: {params['max_age_days']})")

    check_freshness()

if __name__ == "__main__":
    dag.test()
