"""The provider on real Airflow 3 over HTTP: the Kudosity V2 emulator, on loopback.

The emulator runs in this process on the real clock; the DAG runs in an Airflow
subprocess with an ``AIRFLOW_CONN_*`` pointing at the emulator's URL. The emulator's
record of received requests counts what was sent.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator
from tests.e2e.test_airflow_dags import RETRY_DAG
from tests.fixtures.airflow import DagRun, Scenario, new_airflow_home
from tests.fixtures.kudosity import SENDER, V2_KEY

pytestmark = [pytest.mark.airflow, pytest.mark.slow, pytest.mark.xdist_group("airflow-http")]


@pytest.fixture(scope="module")
def http_runs(
    airflow_db_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, DagRun], KudosityV2Emulator]]:
    emu = KudosityV2Emulator(api_keys=(V2_KEY,), sent_after=0.1, delivered_after=0.3, reply_after=0.5).start()
    try:
        af = new_airflow_home(airflow_db_template, tmp_path_factory.mktemp("airflow-http"))
        conn = {
            "conn_type": "smsrelay_kudosity",
            "host": emu.url,
            "password": V2_KEY,
            "extra": {"api": "v2", "sender": SENDER, "rate_limit": 1000, "timeout": 5},
        }
        af.connection("smsrelay_default", conn)
        af.add_dag("e2e_retry", textwrap.dedent(RETRY_DAG))
        runs = af.run(
            [
                Scenario("retry", "smsrelay_e2e_retry"),
                # The emulator's magic number 0004 replies YES, like the sandbox's.
                Scenario("approval", "example_smsrelay_approval", {"approver": "+61491570004"}),
            ]
        )
        yield runs, emu
    finally:
        emu.stop()


def _recipients(emu: KudosityV2Emulator) -> Counter[str]:
    return Counter(r.json()["recipient"] for r in emu.received("POST", "/v2/sms"))


def test_retry_after_crash_sends_each_message_once_over_http(http_runs: Any) -> None:
    runs, emu = http_runs
    run = runs["retry"]

    assert run.state == "success", run.output[-5000:]
    assert run.states()[("send", -1)] == ("success", 2)
    sent = {r: n for r, n in _recipients(emu).items() if r.startswith("61491573")}
    assert sent == {"61491573001": 1, "61491573002": 1, "61491573003": 1}


def test_approval_dag_runs_unchanged_against_kudosity_v2(http_runs: Any) -> None:
    runs, emu = http_runs
    run = runs["approval"]

    assert run.state == "success", run.output[-5000:]
    assert run.xcom("approval")["text"] == "YES"
    assert _recipients(emu)["61491570004"] == 2  # the question, then the confirmation


def test_the_api_key_never_shows_in_airflow_output(http_runs: Any) -> None:
    runs, _ = http_runs

    for run in runs.values():
        assert V2_KEY not in run.output
