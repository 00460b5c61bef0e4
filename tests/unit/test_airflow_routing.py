"""A routing connection: its extra holds the routes, or names their file.

``SendSmsOperator`` sends through it; the delivery and reply sensors and triggers follow
each message on the account that sent it, and read every account's replies. Real Airflow
connections (``AIRFLOW_CONN_*``), the operator executed, the triggers run with asyncio,
the ME-SMS, SMSKit and Kudosity V2 emulators over loopback HTTP on one manual clock.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("airflow")

from airflow.sdk import Connection
from smsrelay_airflow._compat import AirflowException, AirflowFailException, TaskDeferred
from smsrelay_airflow.hooks.sms import SmsHook
from smsrelay_airflow.operators.send import STATE_KEY, SendSmsOperator
from smsrelay_airflow.polling import for_trigger, ids_by_account
from smsrelay_airflow.sensors.delivery import SmsDeliverySensor
from smsrelay_airflow.sensors.reply import SmsReplySensor
from smsrelay_airflow.triggers.sms import SmsDeliveryTrigger, SmsReplyTrigger

from smsrelay import ConfigError, ManualClock
from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator
from smsrelay.emulators.mesms import MeSmsEmulator
from smsrelay.emulators.smskit import SmsKitEmulator
from tests.fixtures.kudosity import SENDER, V2_KEY
from tests.fixtures.smskit import SMSKIT_KEY
from tests.unit.test_airflow_provider import TI, StateStore, context

THAI, AUSTRALIAN = "+66812345678", "+61491570156"


@pytest.fixture
def clock() -> ManualClock:
    """The emulators' one manual clock, started at the real now.

    A routed connection's clients keep real time, and the Kudosity feed reads only its
    recent window (``poll_window``), so the emulators' clock must start where the clients' is.
    """
    return ManualClock(datetime.now(UTC))


def fire(trigger: Any) -> dict[str, Any]:
    """The trigger's first event, as the triggerer would run it (bounded, so a bug fails instead of hanging)."""

    async def first() -> dict[str, Any]:
        event = await asyncio.wait_for(anext(trigger.run()), timeout=30)
        return dict(event.payload)

    return asyncio.run(first())


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


def test_without_results_rows_each_message_still_names_its_account(
    monkeypatch: pytest.MonkeyPatch, mesms_emulator: MeSmsEmulator, smskit_emulator: SmsKitEmulator
) -> None:
    connect(monkeypatch, {"routing": routing(mesms_emulator, smskit_emulator)})
    op = SendSmsOperator(task_id="send", to=[THAI, AUSTRALIAN], message="Deploy done", return_results=False)
    output = op.execute(context(store=StateStore()))
    assert output["accepted"] == 2 and all(set(r) == {"message_id", "account"} for r in output["results"])
    assert sorted(ids_by_account(output)) == ["phone", "th"]  # a sensor asks each account for its own


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


def kudosity_routing(mesms: MeSmsEmulator, kudosity: KudosityV2Emulator) -> dict[str, Any]:
    """Thai numbers through ME-SMS, Australian ones through Kudosity V2: both on the test's manual clock."""
    return {
        "accounts": {
            "th": {"provider": "mesms", "api_key": "test-key", "sender": "Acme", "base_url": mesms.url},
            "au": {
                "provider": "kudosity",
                "api": "v2",
                "api_key": V2_KEY,
                "sender": SENDER,
                "base_url": kudosity.url,
                "read_lag": 0,
            },
        },
        "routes": [{"match": {"country": "TH"}, "accounts": ["th"]}, {"match": {"country": "AU"}, "accounts": ["au"]}],
    }


def test_the_delivery_trigger_follows_each_message_on_the_account_that_sent_it(
    monkeypatch: pytest.MonkeyPatch,
    mesms_emulator: MeSmsEmulator,
    kudosity_v2_emulator: KudosityV2Emulator,
) -> None:
    connect(monkeypatch, {"routing": kudosity_routing(mesms_emulator, kudosity_v2_emulator)})
    op = SendSmsOperator(task_id="send", to=[THAI, AUSTRALIAN], message="Deploy done", wait_for_delivery=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    output = deferred.value.kwargs["output"]
    [th_id, au_id] = output["message_ids"]
    trigger = deferred.value.trigger
    assert isinstance(trigger, SmsDeliveryTrigger)
    # Serialisable: {account: [ids]}, so the triggerer asks each account about its own messages.
    _, kwargs = trigger.serialize()
    assert kwargs["message_ids"] == {"th": [th_id], "au": [au_id]}
    assert json.loads(json.dumps(kwargs)) == kwargs
    rebuilt = SmsDeliveryTrigger(**kwargs)
    kudosity_v2_emulator.advance(2.5)  # one clock for both emulators: listed, not yet delivered
    assert rebuilt.check(SmsHook()) is None
    kudosity_v2_emulator.advance(5)  # past both emulators' delivery delays

    event = fire(rebuilt)

    assert event["status"] == "done"
    assert {mid: (s["account"], s["status"]) for mid, s in event["statuses"].items()} == {
        th_id: ("th", "delivered"),
        au_id: ("au", "delivered"),
    }
    done = op.execute_complete(context(), event=event, output=output)
    assert [(r["account"], r["status"]) for r in done["results"]] == [("th", "delivered"), ("au", "delivered")]


def test_the_delivery_sensor_takes_the_operators_rows_or_ids_by_account(
    monkeypatch: pytest.MonkeyPatch,
    mesms_emulator: MeSmsEmulator,
    kudosity_v2_emulator: KudosityV2Emulator,
) -> None:
    connect(monkeypatch, {"routing": kudosity_routing(mesms_emulator, kudosity_v2_emulator)})
    sent = SendSmsOperator(task_id="send", to=[THAI, AUSTRALIAN], message="hi").execute(context())
    kudosity_v2_emulator.advance(5)
    by_rows = SmsDeliverySensor(task_id="rows", message_ids=sent, poke_interval=0.1, timeout=10)
    assert {s["status"] for s in by_rows.execute(context())["statuses"].values()} == {"delivered"}
    th_id, au_id = sent["message_ids"]
    by_account = SmsDeliverySensor(task_id="ids", message_ids={"au": [au_id]}, poke_interval=0.1, timeout=10)
    assert by_account.execute(context())["statuses"][au_id]["status"] == "delivered"
    # Bare ids do not say which account sent them: the task fails saying how to name it.
    with pytest.raises(AirflowFailException, match="name the account of these messages"):
        SmsDeliverySensor(task_id="bare", message_ids=[th_id], poke_interval=0.1, timeout=10).execute(context())
    with pytest.raises(ConfigError, match="no account named 'nz'; its accounts are th, au"):
        SmsHook().status([au_id], account="nz")


def test_a_reply_to_the_kudosity_message_approves_the_reply_sensor_on_the_routed_connection(
    monkeypatch: pytest.MonkeyPatch,
    mesms_emulator: MeSmsEmulator,
    kudosity_v2_emulator: KudosityV2Emulator,
) -> None:
    connect(monkeypatch, {"routing": kudosity_routing(mesms_emulator, kudosity_v2_emulator)})
    asked = SendSmsOperator(task_id="ask", to=[THAI, AUSTRALIAN], message="Deploy? Reply YES").execute(context())
    kudosity_v2_emulator.advance(5)
    sensor = SmsReplySensor(
        task_id="approval", from_numbers=[AUSTRALIAN], in_reply_to=asked, poke_interval=0.1, deferrable=True
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, SmsReplyTrigger)
    _, kwargs = trigger.serialize()
    assert kwargs["in_reply_to"] == {"th": [asked["message_ids"][0]], "au": [asked["message_ids"][1]]}
    rebuilt = SmsReplyTrigger(**kwargs)
    kudosity_v2_emulator.inject_reply(AUSTRALIAN, "yes, ship it")
    kudosity_v2_emulator.advance(3)  # past the emulator's read-after-write lag, so the list shows it

    event = fire(rebuilt)

    assert event["status"] == "reply"
    reply = sensor.execute_complete(context(), event=event)
    assert (reply["decision"], reply["text"], reply["account"]) == ("approve", "yes, ship it", "au")


def test_ids_name_their_account_for_all_or_for_none(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [{"message_id": "m1", "account": "th"}, {"message_id": "m2", "account": "au"}]
    assert ids_by_account({"results": rows}) == {"th": ["m1"], "au": ["m2"]}
    assert for_trigger(ids_by_account(["m1", "m2"])) == ["m1", "m2"]  # one account: the list, as before
    with pytest.raises(ValueError, match="some ids name their account and some do not"):
        ids_by_account([*rows, "m3"])
    # A connection that does not route has no accounts to name.
    connect(monkeypatch, {})
    with pytest.raises(ConfigError, match="has no account 'au': it does not route"):
        SmsHook().status(["m1"], account="au")


def test_a_routed_connection_masks_each_accounts_secrets_as_the_field_table_marks_them(tmp_path: Path) -> None:
    """Each account's key and secrets masked whole, its rate_limit_store URL's password alone."""
    import uuid

    from airflow.sdk._shared.secrets_masker import redact

    run = uuid.uuid4().hex[:12]  # fresh values: the masker is process-wide
    store = f"postgresql://airflow:pw-{run}@db/smsrelay"
    secrets = {"api_key": f"key-{run}", "api_secret": f"v1-{run}", "webhook_secret": f"hook-{run}"}
    account = {"provider": "sandbox", "path": str(tmp_path / "sandbox.db"), "rate_limit_store": store, **secrets}
    # From a file: Airflow masks an inline extra's secret-sounding keys itself, not a file's.
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps({"accounts": {"a": account}, "routes": [{"accounts": ["a"]}]}))
    conn = Connection(conn_id="sms", conn_type="smsrelay_sandbox", extra=json.dumps({"routing_file": str(routes)}))
    hook = SmsHook(connection=conn)
    try:
        assert hook.router is not None and list(hook.router.clients) == ["a"]
        for name, value in secrets.items():
            assert redact(f"{name}={value}") == f"{name}=***", name
        assert redact(store) == "postgresql://airflow:***@db/smsrelay"
    finally:
        hook.close()
