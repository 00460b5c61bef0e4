"""A templated campaign to a list, sharded over mapped tasks, then a wait for delivery.

Each shard is one mapped ``SendSmsOperator`` task instance, so Celery or Kubernetes
workers send the shards in parallel; each recipient gets its own variables, and a
retried shard never sends twice. Runs against the connection ``smsrelay_default``
(the sandbox, or any backend), e.g.::

    export AIRFLOW_CONN_SMSRELAY_DEFAULT='{"conn_type": "smsrelay_sandbox"}'
    airflow dags test example_smsrelay_campaign -c '{"recipients": 1000, "shards": 10}'

Against a real account, give the connection the extra ``rate_limit_store`` (a PostgreSQL
URL every worker reaches): the shards then take turns from one bucket for the account,
so four workers on a Kudosity account send at its 15 calls a second together, not 15
each (which the provider would answer with 429s)::

    export AIRFLOW_CONN_SMSRELAY_DEFAULT='{"conn_type": "smsrelay_kudosity", "password": "...",
      "extra": {"sender": "Acme", "rate_limit_store": "postgresql://airflow@db/smsrelay"}}'

On a backend that cannot be asked by key (Kudosity V1), also give the workers
``SMSRELAY_JOURNAL`` (the same URL), so a shard whose worker dies is not sent twice. For
shards of thousands, see docs/airflow.md ("Sharding a campaign"): hand them over compactly,
and set ``[workers] min_heartbeat_interval = 1`` so a finished shard frees its slot at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

try:
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2.x
    from airflow import DAG  # type: ignore[no-redef]
    from airflow.decorators import task  # type: ignore[no-redef]
    from airflow.models.param import Param  # type: ignore[no-redef]

from smsrelay_airflow.operators.send import SendSmsOperator
from smsrelay_airflow.sensors.delivery import SmsDeliverySensor

with DAG(
    dag_id="example_smsrelay_campaign",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["smsrelay", "example"],
    params={
        "recipients": Param(30, type="integer", minimum=1, maximum=100000),
        "shards": Param(3, type="integer", minimum=1, maximum=1000),
        # Australia's numbers for fiction (0491 57x xxx); none ends in a sandbox magic number.
        "first_number": Param(61491571000, type="integer"),
    },
) as dag:

    @task
    def shards(params: dict[str, Any] | None = None) -> list[list[dict[str, Any]]]:
        """The audience, split into one list per mapped send task (a real DAG would query a table)."""
        assert params is not None
        audience = [
            {"to": f"+{params['first_number'] + i}", "name": f"Customer {i}", "code": f"SMS{i:05d}"}
            for i in range(params["recipients"])
        ]
        n = params["shards"]
        return [audience[i::n] for i in range(n) if audience[i::n]]

    send = SendSmsOperator.partial(
        task_id="send",
        # Rendered per recipient by smsrelay; only vars are rendered by Airflow first.
        message_template="Hi {{ name }}, your {{ day }} code is {{ code }}.",
        vars={"day": "{{ ds }}"},
        retries=2,
        # How many shards send at once. The account's rate is kept by the connection's
        # rate_limit_store across all of them, whatever this number and the worker count.
        max_active_tis_per_dag=4,
        # The sensor and the summary need only the ids and counts: the per-recipient rows
        # (~150 bytes each) stay in the task state, out of XCom.
        return_results=False,
    ).expand(to=shards())

    delivered = SmsDeliverySensor(
        task_id="delivered",
        message_ids=send.output,
        deferrable=True,
        poke_interval=2,
        timeout=3600,
    )

    @task
    def summary(results: list[dict[str, Any]]) -> dict[str, int]:
        totals = {"accepted": 0, "rejected": 0, "parts": 0}
        for shard in results:
            for k in totals:
                totals[k] += int(shard[k])
        print(f"campaign: {totals}")
        return totals

    s = summary(send.output)
    delivered >> s

if __name__ == "__main__":
    dag.test()
