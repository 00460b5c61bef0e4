"""SalesforceSmsSyncOperator: one bridge cycle from Airflow connections, against the org emulator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("airflow")
pytestmark = pytest.mark.airflow

from airflow.sdk import Connection  # noqa: E402
from smsrelay_airflow._compat import AirflowException, AirflowFailException  # noqa: E402
from smsrelay_airflow.get_provider_info import get_provider_info  # noqa: E402
from smsrelay_airflow.operators.salesforce import SalesforceSmsSyncOperator, org_auth_from_connection  # noqa: E402


class TI:
    dag_id, task_id, run_id, try_number, map_index = "sms", "sync", "manual__1", 1, -1


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch, sf_org: Any, sf_tls: Any, tmp_path: Path) -> Path:
    sf = Connection(
        conn_id="salesforce_default",
        conn_type="salesforce",
        password=sf_org.issue_token(),
        extra=json.dumps({"instance_url": sf_org.url, "ca_bundle": str(sf_tls.ca_path)}),
    )
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", sf.as_json())
    extra = {"path": str(tmp_path / "sandbox.db"), "sent_after": 0, "delivered_after": 0, "reply_after": 0}
    sms = Connection(conn_id="smsrelay_default", conn_type="smsrelay_sandbox", extra=json.dumps(extra))
    monkeypatch.setenv("AIRFLOW_CONN_SMSRELAY_DEFAULT", sms.as_json())
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    return tmp_path


def test_the_provider_lists_the_operator() -> None:
    modules = [m for op in get_provider_info()["operators"] for m in op["python-modules"]]
    assert "smsrelay_airflow.operators.salesforce" in modules


def test_one_sync_cycle_from_airflow_connections(connections: Path, sf_org: Any, tmp_path: Path) -> None:
    sf_org.insert("SMS_Message__c", [{"To__c": "0491 570 004", "Body__c": "Hi", "Status__c": "Queued"}])
    config = tmp_path / "bridge.yaml"
    config.write_text("send:\n  country: AU\n  sender: Acme\nlimits:\n  batch_size: 100\n")
    op = SalesforceSmsSyncOperator(task_id="sync", config_file=str(config))
    result = op.execute({"ti": TI()})
    assert json.loads(json.dumps(result)) == result
    assert result["sent"] == 1 and result["replies"] == 1 and result["total_calls"] > 0
    # The next cycle starts from the stored cursor: nothing is sent or written twice.
    again = op.execute({"ti": TI()})
    assert again["sent"] == 0 and again["updated"] == 0 and again["events"] == 0
    (msg,) = sf_org.records("SMS_Message__c", "Direction__c = 'Outbound'")
    assert msg["Status__c"] == "Sent" and msg["Delivery_Status__c"] == "Delivered"
    assert (tmp_path / "airflow" / "smsrelay-salesforce" / "sms.sync.db").exists()


def test_jwt_from_the_connection_and_password_sign_in_refused(sf_org: Any, sf_jwt: Any) -> None:
    conn = Connection(
        conn_id="sf",
        conn_type="salesforce",
        login=sf_org.username,
        extra=json.dumps(
            {
                "consumer_key": sf_org.consumer_key,
                "private_key": sf_jwt.private_key_path.read_text(),
                "domain": "acme.my",
            }
        ),
    )
    auth = org_auth_from_connection(conn)
    assert auth.method == "jwt" and auth.login_url == "https://acme.my.salesforce.com" and auth.private_key
    legacy = Connection(
        conn_id="old", conn_type="salesforce", login="u@x", password="pw", extra=json.dumps({"security_token": "t"})
    )
    with pytest.raises(Exception, match="SOAP login"):
        org_auth_from_connection(legacy)


def test_a_bad_connection_fails_the_task_without_retrying(monkeypatch: pytest.MonkeyPatch, connections: Path) -> None:
    bad = Connection(conn_id="salesforce_default", conn_type="salesforce", login="u@x", password="pw")
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", bad.as_json())
    with pytest.raises(AirflowFailException, match="not supported"):
        SalesforceSmsSyncOperator(task_id="sync").execute({"ti": TI()})


def test_refused_writes_fail_the_task_after_the_cycle(connections: Path, sf_org: Any) -> None:
    sf_org.insert("SMS_Message__c", [{"To__c": "+61491570120", "Body__c": "Hi", "Status__c": "Queued"}])
    sf_org.fail_records("FIELD_CUSTOM_VALIDATION_EXCEPTION", sobject="SMS_Message__c", times=1)
    with pytest.raises(AirflowException, match="sent 0"):
        SalesforceSmsSyncOperator(task_id="sync").execute({"ti": TI()})


def test_without_the_bridge_installed_the_import_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['smsrelay_salesforce'] = None\n"
        "try:\n"
        "    import smsrelay_airflow.operators.salesforce\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "AirflowOptionalProviderFeatureException" in out.stdout
    assert "pip install smsrelay-salesforce" in out.stdout
