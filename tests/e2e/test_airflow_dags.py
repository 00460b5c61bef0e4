"""The provider on real Airflow 3, against the sandbox: the example DAGs, replies, retry safety.

All DAG runs of this module happen in ONE subprocess with ``dag.test()`` (start-up
is most of the cost), on a private, migrated SQLite metadata DB. Triggers run inline
under ``dag.test()``, so the deferrable paths are covered. What the provider did is
read back from the instrument (the sandbox's outbox) and from Airflow's own tables
(task states, XCom).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.airflow import DagRun, Scenario, new_airflow_home, sandbox_outbox

pytestmark = [pytest.mark.airflow, pytest.mark.slow, pytest.mark.xdist_group("airflow-sandbox")]

REPLIES_DAG = """
from datetime import UTC, datetime

from airflow.sdk import DAG, task

from smsrelay_airflow.hooks.sms import SmsHook
from smsrelay_airflow.sensors.reply import SmsReplySensor

A, B, C, OTHER = "+61491572001", "+61491572002", "+61491572003", "+61491572999"
PATTERNS = {"approve": ["YES", "APPROVE"], "reject": ["NO", "REJECT"]}

with DAG("smsrelay_e2e_replies", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:

    @task
    def inject() -> str:
        start = datetime.now(UTC).isoformat()
        sandbox = SmsHook("smsrelay_default").client.provider
        sandbox.inject_reply(A, "YES", delay=-120)        # before the sensors' start time
        sandbox.inject_reply(OTHER, "YES", delay=1)       # from another number
        sandbox.inject_reply(A, "maybe later", delay=1)   # matches neither pattern
        sandbox.inject_reply(A, "Approve, go ahead", delay=2)
        sandbox.inject_reply(B, "no - not today", delay=1)
        sandbox.inject_reply(C, "yes", delay=1)
        return start

    # dag.test() runs the sensors one after another, so each counts replies from the
    # moment of injection rather than from its own start.
    kw = dict(after="{{ ti.xcom_pull(task_ids='inject') }}", poke_interval=0.5, timeout=60, **PATTERNS)
    approve = SmsReplySensor(task_id="approve", from_numbers=A, deferrable=True, **kw)
    reject = SmsReplySensor(task_id="reject", from_numbers=[B, "+61491572998"], deferrable=True, **kw)
    poke = SmsReplySensor(task_id="poke", from_numbers=C, deferrable=False, **kw)
    inject() >> [approve, reject, poke]
"""

RETRY_DAG = '''
from datetime import datetime, timedelta

from airflow.sdk import DAG

from smsrelay_airflow.operators.send import SendSmsOperator

TO = ["+61491573001", "+61491573002", "+61491573003"]


class CrashAfterSend(SendSmsOperator):
    """The worker dies after the provider accepted the send (first try only)."""

    def execute(self, context):
        out = super().execute(context)
        if context["ti"].try_number == 1:
            raise RuntimeError("worker lost after the provider accepted the send")
        return out


with DAG("smsrelay_e2e_retry", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
    # The body changes with the try number, so the idempotency key differs between tries:
    # only the ids kept in task_state_store from try 1 can stop a second send.
    CrashAfterSend(
        task_id="send",
        to=TO,
        message="Your code, try {{ ti.try_number }}",
        retries=2,
        retry_delay=timedelta(seconds=0),
    )
'''


@pytest.fixture(scope="module")
def sandbox_runs(
    airflow_db_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, DagRun], dict[str, list[dict[str, Any]]]]:
    where = tmp_path_factory.mktemp("airflow-sandbox")
    af = new_airflow_home(airflow_db_template, where)
    sandbox = where / "sandbox.db"
    # Short simulated delays: dag.test() runs on the real clock.
    extra = {"path": str(sandbox), "sent_after": 0.1, "delivered_after": 0.3, "reply_after": 0.3}
    af.connection("smsrelay_default", {"conn_type": "smsrelay_sandbox", "extra": extra})
    af.add_dag("e2e_replies", textwrap.dedent(REPLIES_DAG))
    af.add_dag("e2e_retry", textwrap.dedent(RETRY_DAG))
    runs = af.run(
        [
            # The sandbox's magic numbers: 0004 answers YES, 0005 answers NO.
            Scenario("approval_yes", "example_smsrelay_approval", {"approver": "+61491570004"}),
            Scenario("approval_no", "example_smsrelay_approval", {"approver": "+61491570005"}),
            Scenario("alert", "example_smsrelay_alert", {"on_call": "+61491570156"}),
            Scenario("replies", "smsrelay_e2e_replies"),
            Scenario("retry", "smsrelay_e2e_retry"),
            Scenario("campaign", "example_smsrelay_campaign", {"recipients": 1000, "shards": 10}),
        ]
    )
    return runs, sandbox_outbox(sandbox)


def test_campaign_of_1000_over_10_mapped_shards_sends_each_once(sandbox_runs: Any) -> None:
    runs, outbox = sandbox_runs
    run = runs["campaign"]

    assert run.state == "success", run.output[-5000:]
    states = run.states()
    shards = [k for k in states if k[0] == "send"]
    assert len(shards) == 10 and all(states[k][0] == "success" for k in shards)
    assert run.task_state("delivered") == "success"
    campaign = {p: m for p, m in outbox.items() if p.startswith("+6149157")}
    campaign = {p: m for p, m in campaign.items() if 61491571000 <= int(p[1:]) <= 61491571999}
    assert len(campaign) == 1000
    assert all(len(msgs) == 1 for msgs in campaign.values())
    assert run.xcom("summary") == {"accepted": 1000, "rejected": 0, "parts": 1000}
    # Each recipient's own variables reached its message; vars rendered {{ ds }} first.
    body = campaign["+61491571007"][0]["body"]
    assert body.startswith("Hi Customer 7, your 20") and body.endswith(" code is SMS00007.")
    shard = run.xcom("send", 0)
    assert shard["accepted"] == 100 and len(shard["message_ids"]) == 100


def test_approval_by_sms_yes_deploys_and_confirms(sandbox_runs: Any) -> None:
    runs, outbox = sandbox_runs
    run = runs["approval_yes"]

    assert run.state == "success", run.output[-5000:]
    reply = run.xcom("approval")
    assert reply["from"] == "+61491570004" and reply["text"] == "YES" and reply["decision"] == "approve"
    assert run.task_state("deploy") == "success" and run.task_state("confirm") == "success"
    bodies = [m["body"] for m in outbox["+61491570004"]]
    assert len(bodies) == 2
    assert bodies[0].startswith("Deploy billing-api (run manual__") and "Reply YES" in bodies[0]
    assert bodies[1].startswith("billing-api deployed")


def test_approval_by_sms_no_fails_and_never_deploys(sandbox_runs: Any) -> None:
    runs, outbox = sandbox_runs
    run = runs["approval_no"]

    assert run.state == "failed"
    assert run.task_state("approval") == "failed"
    assert run.task_state("deploy") == "upstream_failed"
    assert "rejected by SMS: +61491570005 replied 'NO'" in run.output
    assert len(outbox["+61491570005"]) == 1  # the question only, no confirmation


def test_failure_alert_names_dag_task_run_and_try(sandbox_runs: Any) -> None:
    runs, outbox = sandbox_runs
    run = runs["alert"]

    assert run.task_state("check_freshness") == "failed"
    [alert] = outbox["+61491570156"]
    assert alert["body"].startswith("Airflow FAILED: example_smsrelay_alert.check_freshness run manual__")
    assert " try 1" in alert["body"]


def test_reply_sensor_ignores_early_foreign_and_unmatched_replies(sandbox_runs: Any) -> None:
    runs, _ = sandbox_runs
    run = runs["replies"]

    assert run.task_state("approve") == "success", run.output[-5000:]
    approved = run.xcom("approve")
    assert approved["from"] == "+61491572001" and approved["text"] == "Approve, go ahead"
    assert run.task_state("reject") == "failed"
    assert "rejected by SMS: +61491572002 replied 'no - not today'" in run.output
    assert run.task_state("poke") == "success"
    assert run.xcom("poke")["text"] == "yes"


def test_retry_after_crash_sends_nothing_twice(sandbox_runs: Any) -> None:
    runs, outbox = sandbox_runs
    run = runs["retry"]

    assert run.state == "success", run.output[-5000:]
    assert run.states()[("send", -1)] == ("success", 2)
    sent = {p: m for p, m in outbox.items() if p.startswith("+61491573")}
    assert sorted(sent) == ["+61491573001", "+61491573002", "+61491573003"]
    assert all(len(m) == 1 and m[0]["body"] == "Your code, try 1" for m in sent.values())
    assert sorted(run.xcom("send")["message_ids"]) == sorted(m[0]["message_id"] for m in sent.values())
