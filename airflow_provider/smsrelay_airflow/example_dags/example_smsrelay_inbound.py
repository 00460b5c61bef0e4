"""An inbound SMS starts a DAG: the on-call engineer texts "RERUN billing" and the job reruns.

``sms_asset`` gives an asset with an ``AssetWatcher``: the triggerer watches the
connection's inbound messages, and each one from an allowed number that matches
the pattern is an asset event, which schedules this DAG. The run reads the message
from the triggering asset event. Airflow 3 only (event-driven scheduling, AIP-82).

Try it with the sandbox (run a scheduler, a triggerer and a dag-processor), then
inject a message::

    export AIRFLOW_CONN_SMSRELAY_DEFAULT='{"conn_type": "smsrelay_sandbox"}'
    export SMSRELAY_ON_CALL=+61491570156
    python -c "from smsrelay import Client; Client('sandbox').provider.inject_reply('+61491570156', 'RERUN billing')"
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, task

from smsrelay_airflow import sms_asset

# Anyone can text a number: only these senders may start the rerun (comma-separated, E.164).
ON_CALL = os.environ.get("SMSRELAY_ON_CALL", "+61491570156")

billing_rerun = sms_asset(
    "billing-rerun",
    conn_id="smsrelay_default",
    allow=ON_CALL,
    # (?i) also accepts "Rerun billing" from a phone that capitalises the first word.
    pattern=r"(?i)^RERUN (?P<job>[a-z0-9_-]{1,40})$",
)

with DAG(
    dag_id="example_smsrelay_inbound",
    schedule=[billing_rerun],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["smsrelay", "example"],
) as dag:

    @task
    def rerun(triggering_asset_events: Any = None) -> list[str]:
        """Rerun each job asked for; messages that arrived together come as one run's events."""
        from smsrelay import mask_phone

        jobs = []
        for event in triggering_asset_events[billing_rerun]:
            sms = event.extra["payload"]
            print(f"rerunning {sms['groups']['job']}: asked by {mask_phone(sms['from'])} at {sms['occurred_at']}")
            jobs.append(sms["groups"]["job"])
        return jobs

    rerun()
