"""An inbound SMS starts a DAG, on real Airflow 3: a scheduler, a triggerer, a dag-processor and an
api-server run as processes on a private SQLite metadata DB, against the sandbox.

Inbound messages are injected into the sandbox (its simulated handset), which the
watcher polls into its own inbox. What happened is read from Airflow's tables (DAG
runs, asset events, XCom) and from the inbox's cursor table. Every wait polls them
with a bound; none sleeps for time to pass.
"""

from __future__ import annotations

import sqlite3
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from smsrelay import Client
from tests.fixtures.airflow import AirflowServices, DagRun, new_airflow_home, wait_for

pytestmark = [pytest.mark.airflow, pytest.mark.slow, pytest.mark.xdist_group("airflow-inbound")]

ON_CALL = "+61491575001"
STRANGER = "+61491575999"
DAG_ID = "smsrelay_e2e_inbound"

INBOUND_DAG = """
from datetime import datetime

from airflow.sdk import DAG, task

from smsrelay_airflow import sms_asset

rerun = sms_asset(
    "billing-rerun",
    conn_id="smsrelay_default",
    allow=["{on_call}"],
    pattern=r"^RERUN (?P<job>\\w+)$",
    inbox="{inbox}",
    poll_interval=1,
)

with DAG("{dag_id}", schedule=[rerun], start_date=datetime(2026, 1, 1), catchup=False) as dag:

    @task
    def rerun_jobs(triggering_asset_events=None):
        return [e.extra["payload"]["groups"]["job"] for e in triggering_asset_events[rerun]]

    rerun_jobs()
"""


class Inbound:
    """The running Airflow, the sandbox's handset, and the watcher's inbox."""

    def __init__(self, airflow: AirflowServices, sandbox: Client, inbox: Path) -> None:
        self.airflow = airflow
        self.sandbox = sandbox
        self.inbox = inbox

    def text(self, phone: str, body: str) -> None:
        self.sandbox.provider.inject_reply(phone, body)

    def cursor(self) -> int | None:
        """Where the watcher's durable cursor stands; None before the watcher first started."""
        if not self.inbox.exists():
            return None
        with sqlite3.connect(f"file:{self.inbox}?mode=ro", uri=True, timeout=30) as db:
            try:
                row = db.execute("SELECT position FROM cursors WHERE name = 'airflow/billing-rerun'").fetchone()
            except sqlite3.OperationalError:  # the inbox is being created
                return None
        return int(row[0]) if row else None

    def stored(self) -> int:
        """How many events the inbox holds: the position the cursor reaches once all are handled."""
        if not self.inbox.exists():
            return 0
        with sqlite3.connect(self.inbox, timeout=30) as db:
            return int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])

    def settle(self, messages: int, runs: int) -> list[DagRun]:
        """Wait until the inbox holds ``messages`` events, the cursor passed them all, and ``runs`` runs ended."""
        try:
            wait_for(f"{messages} message(s) in the inbox", lambda: self.stored() >= messages)
            wait_for("the watcher's cursor to pass them", lambda: (self.cursor() or 0) >= self.stored() >= messages)

            def finished() -> list[DagRun]:
                found = self.airflow.dag_runs(DAG_ID)
                ended = len(found) >= runs and all(r.state in ("success", "failed") for r in found)
                return found if ended else []

            found: list[DagRun] = wait_for(f"{runs} finished run(s) of {DAG_ID}", finished)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.airflow.output()}") from None
        return found

    def jobs(self) -> list[list[str]]:
        return [run.xcom("rerun_jobs") for run in self.airflow.dag_runs(DAG_ID)]

    def asset_events(self) -> int:
        return int(self.airflow.query("SELECT COUNT(*) FROM asset_event")[0][0])


@pytest.fixture
def inbound(airflow_db_template: Path, tmp_path: Path) -> Iterator[Inbound]:
    where = tmp_path
    af = new_airflow_home(airflow_db_template, where)
    for example in af.dags.glob("example_*.py"):  # only this test's watcher polls
        example.unlink()
    inbox, sandbox_db = where / "inbox.db", where / "sandbox.db"
    af.connection("smsrelay_default", {"conn_type": "smsrelay_sandbox", "extra": {"path": str(sandbox_db)}})
    af.add_dag("e2e_inbound", textwrap.dedent(INBOUND_DAG).format(on_call=ON_CALL, inbox=inbox, dag_id=DAG_ID))
    airflow = AirflowServices(af)
    sandbox = Client("sandbox", path=str(sandbox_db))
    airflow.start()
    try:
        watching = Inbound(airflow, sandbox, inbox)
        # A new watcher starts after what the feed holds: text it only once its cursor exists.
        wait_for("the SMS watcher to start on the triggerer", lambda: watching.cursor() is not None)
        yield watching
    finally:
        airflow.stop()
        sandbox.close()


def an_allowed_rerun_starts_one_run_that_sees_the_job_and_a_strangers_starts_none(inbound: Inbound) -> None:
    runs, events, stored = len(inbound.airflow.dag_runs(DAG_ID)), inbound.asset_events(), inbound.stored()
    inbound.text(STRANGER, "RERUN billing")  # first: once the cursor passes the next one, it passed this
    inbound.text(ON_CALL, "RERUN billing")

    ended = inbound.settle(messages=stored + 2, runs=runs + 1)

    assert [r.state for r in ended[runs:]] == ["success"]
    assert inbound.jobs()[runs:] == [["billing"]]
    assert inbound.asset_events() == events + 1  # the stranger's message fired nothing
    # The triggerer logged both messages, each sender masked.
    log = inbound.airflow.log("triggerer").read_text(errors="replace")
    assert "from +614•••••001 matched" in log and "from +614•••••999, not on the allowlist, matches" in log
    assert ON_CALL not in log and STRANGER not in log


def a_triggerer_restart_between_two_messages_loses_and_repeats_none(inbound: Inbound) -> None:
    runs, events, stored = len(inbound.airflow.dag_runs(DAG_ID)), inbound.asset_events(), inbound.stored()
    inbound.text(ON_CALL, "RERUN payroll")
    inbound.settle(messages=stored + 1, runs=runs + 1)

    inbound.airflow.stop("triggerer")
    inbound.text(ON_CALL, "RERUN invoices")  # arrives while no triggerer runs: it waits at the provider
    assert inbound.cursor() == inbound.stored() == stored + 1
    inbound.airflow.start("triggerer")
    inbound.settle(messages=stored + 2, runs=runs + 2)
    inbound.text(ON_CALL, "RERUN tax")  # and one after the restart
    inbound.settle(messages=stored + 3, runs=runs + 3)

    assert inbound.jobs()[runs:] == [["payroll"], ["invoices"], ["tax"]]
    assert inbound.asset_events() == events + 3
    assert inbound.airflow.log("triggerer").read_text(errors="replace").count("Watching inbound SMS") == 2


def test_inbound_sms_starts_one_run_each_for_allowed_senders_only_across_a_triggerer_restart(
    inbound: Inbound,
) -> None:
    # One test, so one Airflow stack: four processes are the expensive part, on any xdist worker.
    an_allowed_rerun_starts_one_run_that_sees_the_job_and_a_strangers_starts_none(inbound)
    a_triggerer_restart_between_two_messages_loses_and_repeats_none(inbound)
