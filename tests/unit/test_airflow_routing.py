"""``SendSmsOperator`` through a routing connection: its extra holds the routes, or names their file.

Real Airflow connections (``AIRFLOW_CONN_*``), the operator executed, the ME-SMS and
SMSKit emulators over loopback HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("airflow")

from airflow.sdk import Connection
from smsrelay_airflow._compat import AirflowException, AirflowFailException
from smsrelay_airflow.hooks.sms import SmsHook
from smsrelay_airflow.operators.send import STATE_KEY, SendSmsOperator

from smsrelay import ConfigError
from smsrelay.emulators.mesms import MeSmsEmulator
from smsrelay.emulators.smskit import SmsKitEmulator
from tests.fixtures.smskit import SMSKIT_KEY
from tests.unit.test_airflow_provider import TI, StateStore, context

THAI, AUSTRALIAN = "+66812345678", "+61491570156"


def routing(mesms: MeSmsEmulator, smskit: SmsKitEmulator) -> dict[str, Any]:
    """Thai numbers through ME-SMS, the rest through an SMSKit phone."""
    return {
        "accounts": {
            "th": {"provider": "mesms", "api_key": "test-key", "sender": "Acme", "base_url": mesms.url},
            "phone": {"provider": "smskit", "api_key": SMSKIT_KEY, "base_url": smskit.url},
        },
        "routes": [{"match": {"country": "TH"}, "accounts": ["th"]}, {"accounts": ["phone"]}],
    }


def connect(monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any]) -> None:
    conn = Connection(conn_id="smsrelay_default", conn_type="smsrelay_sandbox", extra=json.dumps(extra))
    monkeypatch.setenv("AIRFLOW_CONN_SMSRELAY_DEFAULT", conn.as_json())


def test_the_operator_sends_each_recipient_through_its_routes_account(
    monkeypatch: pytest.MonkeyPatch, mesms_emulator: MeSmsEmulator, smskit_emulator: SmsKitEmulator
) -> None:
    connect(monkeypatch, {"routing": routing(mesms_emulator, smskit_emulator)})
    op = SendSmsOperator(task_id="send", to=[THAI, AUSTRALIAN], message="Deploy done")
    output = op.execute(context(store=StateStore()))
    assert output["provider"] == "routing"
    assert [(r["to"], r["account"]) for r in output["results"]] == [(THAI, "th"), (AUSTRALIAN, "phone")]
    assert output["accepted"] == 2
    assert len(mesms_emulator.received("POST", "/api/v2/sms/send")) == 1
    assert len(smskit_emulator.received("POST", "/api/sms/send")) == 1


def test_a_retry_sends_only_what_the_earlier_try_did_not(
    monkeypatch: pytest.MonkeyPatch, mesms_emulator: MeSmsEmulator, smskit_emulator: SmsKitEmulator
) -> None:
    connect(monkeypatch, {"routing": routing(mesms_emulator, smskit_emulator)})
    store = StateStore()
    SendSmsOperator(task_id="send", to=[THAI, AUSTRALIAN], message="hi").execute(context(TI(), store))
    again = SendSmsOperator(task_id="send", to=[THAI, AUSTRALIAN], message="hi")
    output = again.execute(context(TI(try_number=2), store))
    assert output["accepted"] == 2
    assert len(mesms_emulator.received("POST", "/api/v2/sms/send")) == 1  # not sent twice
    assert len(smskit_emulator.received("POST", "/api/sms/send")) == 1


def test_a_routing_file_named_by_the_extra_and_a_message_in_doubt_is_not_failed_over(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mesms_emulator: MeSmsEmulator, smskit_emulator: SmsKitEmulator
) -> None:
    config = routing(mesms_emulator, smskit_emulator)
    config["routes"][0]["accounts"] = ["th", "phone"]
    path = tmp_path / "routes.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    connect(monkeypatch, {"routing_file": str(path)})
    mesms_emulator.inject("reset_after", method="POST", path="/api/v2/sms/send")
    store = StateStore()
    with pytest.raises(AirflowException, match="may or may not have been accepted"):
        SendSmsOperator(task_id="send", to=[THAI], message="hi").execute(context(store=store))
    assert len(mesms_emulator.state()["batches"]) == 1
    assert smskit_emulator.received("POST") == []  # in doubt stays with its account
    [row] = store.data[STATE_KEY]["results"]
    assert (row["account"], row["status"]) == ("th", "unknown")
    # The retry does not offer it to any account again.
    with pytest.raises(AirflowFailException, match="at th"):
        SendSmsOperator(task_id="send", to=[THAI], message="hi").execute(context(TI(try_number=2), store))
    assert smskit_emulator.received("POST") == [] and len(mesms_emulator.state()["batches"]) == 1


def test_a_bad_routing_extra_fails_the_task_naming_the_connection_and_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bad = {"accounts": {"a": {"provider": "sandbox"}}, "routes": [{"accounts": ["a", "nope"]}]}
    connect(monkeypatch, {"routing": bad})
    with pytest.raises(AirflowFailException) as info:
        SendSmsOperator(task_id="send", to=[THAI], message="hi").execute(context())
    text = str(info.value)
    assert "Airflow connection 'smsrelay_default', extra 'routing'" in text
    assert "routes.0.accounts.1" in text and "no account named 'nope'" in text


def test_a_routed_connection_sends_only(monkeypatch: pytest.MonkeyPatch) -> None:
    routes = {"accounts": {"a": {"provider": "sandbox"}}, "routes": [{"accounts": ["a"]}]}
    connect(monkeypatch, {"routing": routes})
    with pytest.raises(ConfigError, match="through a connection for one account"):
        SmsHook().status(["m-1"])
    op = SendSmsOperator(task_id="send", to=[THAI], message="hi", wait_for_delivery=True)
    with pytest.raises(AirflowFailException, match="wait_for_delivery needs a connection for one account"):
        op.execute(context())
