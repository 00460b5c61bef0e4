"""The provider on Airflow 2.11 (no ``airflow.sdk``; the ``_compat`` shim's fallbacks).

Airflow 2.11 lives in its own virtualenv, ``.venv/airflow2`` (``make airflow2``, a
prerequisite of ``make test``), since it cannot share one with Airflow 3. Without
``task_state_store``, a retry's safety rests on the idempotency key and the lookup by
key, which this checks against the Kudosity V2 emulator (no native idempotency).
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator
from tests.conftest import ROOT
from tests.fixtures.airflow import EXAMPLE_DAGS, sandbox_outbox
from tests.fixtures.kudosity import SENDER, V2_KEY

pytestmark = [pytest.mark.airflow, pytest.mark.slow, pytest.mark.xdist_group("airflow-http")]

AIRFLOW2 = ROOT / ".venv" / "airflow2" / "bin" / "airflow"

RETRY_DAG = """
from datetime import datetime, timedelta

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x
    from airflow import DAG

from smsrelay_airflow.operators.send import SendSmsOperator


class CrashAfterSend(SendSmsOperator):
    def execute(self, context):
        out = super().execute(context)
        if context["ti"].try_number == 1:
            raise RuntimeError("worker lost after the provider accepted the send")
        return out


with DAG("smsrelay_e2e_retry2", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
    CrashAfterSend(task_id="send", to=["+61491575001", "+61491575002"], message="Your code is 4242",
                   retries=1, retry_delay=timedelta(seconds=0))
"""


def _airflow(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(AIRFLOW2), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_approval_and_retry_on_airflow_2_11(tmp_path: Path, start_emulator: object) -> None:
    if not AIRFLOW2.exists():
        pytest.skip("Airflow 2.11 is not installed: run make airflow2")
    import os

    home, dags = tmp_path / "home", tmp_path / "dags"
    dags.mkdir()
    (dags / "approval.py").write_text((EXAMPLE_DAGS / "example_smsrelay_approval.py").read_text())
    (dags / "retry.py").write_text(textwrap.dedent(RETRY_DAG))
    sandbox = tmp_path / "sandbox.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SMSRELAY_"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW_CONN_SMSRELAY_DEFAULT=json.dumps(
            {
                "conn_type": "smsrelay_sandbox",
                "extra": {"path": str(sandbox), "sent_after": 0.1, "delivered_after": 0.3, "reply_after": 0.3},
            }
        ),
    )
    emu = start_emulator("kudosity-v2", api_keys=(V2_KEY,), sent_after=0.1, delivered_after=0.3)  # type: ignore[operator]
    assert isinstance(emu, KudosityV2Emulator)
    kudosity = {
        "conn_type": "smsrelay_kudosity",
        "host": emu.url,
        "password": V2_KEY,
        "extra": {"api": "v2", "sender": SENDER, "read_lag": 0, "timeout": 5},
    }

    migrate = _airflow(["db", "migrate"], env, tmp_path)
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
    approval = _airflow(
        ["dags", "test", "example_smsrelay_approval", "-c", '{"approver": "+61491570004"}'], env, tmp_path
    )
    retry = _airflow(
        ["dags", "test", "smsrelay_e2e_retry2"],
        {**env, "AIRFLOW_CONN_SMSRELAY_DEFAULT": json.dumps(kudosity)},
        tmp_path,
    )

    out = approval.stdout + approval.stderr
    assert approval.returncode == 0, out[-5000:]
    assert "Approved by SMS: +61491570004 replied 'YES'" in out
    assert len(sandbox_outbox(sandbox)["+61491570004"]) == 2  # the question and the confirmation
    out = retry.stdout + retry.stderr
    assert retry.returncode == 0, out[-5000:]
    assert "An earlier try already sent 2 message(s); not sending them again." in out
    recipients = sorted(r.json()["recipient"] for r in emu.received("POST", "/v2/sms"))
    assert recipients == ["61491575001", "61491575002"]
