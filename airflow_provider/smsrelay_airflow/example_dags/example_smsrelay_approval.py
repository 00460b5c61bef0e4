"""A deploy gated on approval by SMS: ask, wait for YES or NO, then deploy and confirm.

The approver's reply is matched against keywords; a NO fails the approval task, so
the deploy never runs. With the sandbox, ``+61491570004`` always answers YES and
``+61491570005`` always answers NO::

    export AIRFLOW_CONN_SMSRELAY_DEFAULT='{"conn_type": "smsrelay_sandbox"}'
    airflow dags test example_smsrelay_approval -c '{"approver": "+61491570004"}'
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
from smsrelay_airflow.sensors.reply import SmsReplySensor

with DAG(
    dag_id="example_smsrelay_approval",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["smsrelay", "example"],
    params={
        "approver": Param("+61491570004", type="string"),
        "service": Param("billing-api", type="string"),
        "timeout": Param(900, type="integer", minimum=1),
    },
) as dag:
    ask = SendSmsOperator(
        task_id="ask",
        to="{{ params.approver }}",
        message="Deploy {{ params.service }} (run {{ run_id }})? Reply YES to approve or NO to reject.",
    )

    approval = SmsReplySensor(
        task_id="approval",
        from_numbers="{{ params.approver }}",
        # The question: replies count from the provider's own time for its send, not this worker's clock.
        in_reply_to=ask.output,
        approve=["YES", "Y", "APPROVE"],
        reject=["NO", "N", "REJECT"],
        deferrable=True,
        poke_interval=2,
        timeout=900,
    )

    @task
    def deploy(reply: dict[str, Any], params: dict[str, Any] | None = None) -> str:
        assert params is not None
        print(f"deploying {params['service']}: approved by {reply['from']} ({reply['text']!r})")
        return params["service"]

    done = deploy(approval.output)

    confirm = SendSmsOperator(
        task_id="confirm",
        to="{{ params.approver }}",
        message="{{ params.service }} deployed (run {{ run_id }}). Thanks!",
    )
    ask >> approval
    done >> confirm

if __name__ == "__main__":
    dag.test()
