"""The Airflow provider's parts, in-process and without a metadata DB.

Connections come from ``AIRFLOW_CONN_*`` variables; the backends are the sandbox (a
SQLite file) and the Kudosity V2 emulator on loopback. The context handed to
``execute`` is a small stand-in for the task runner's, holding a real dict-backed
``task_state_store`` with the accessor's get/set interface.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("airflow")
pytestmark = pytest.mark.airflow

from airflow.sdk import Connection  # noqa: E402
from smsrelay_airflow._compat import AirflowException, AirflowFailException, TaskDeferred  # noqa: E402
from smsrelay_airflow.connections import BACKENDS  # noqa: E402
from smsrelay_airflow.get_provider_info import get_provider_info  # noqa: E402
from smsrelay_airflow.hooks.sms import SmsHook, settings_for_connection  # noqa: E402
from smsrelay_airflow.notifications.sms import SmsNotifier, send_sms_notification  # noqa: E402
from smsrelay_airflow.operators.send import STATE_KEY, SendSmsOperator, recipients_from  # noqa: E402
from smsrelay_airflow.outcomes import judge, message_ids_from, success_statuses  # noqa: E402
from smsrelay_airflow.replies import DEFAULT_APPROVE, DEFAULT_REJECT, ReplyRule, pattern_source  # noqa: E402
from smsrelay_airflow.sensors.delivery import SmsDeliverySensor  # noqa: E402
from smsrelay_airflow.sensors.reply import SmsReplySensor  # noqa: E402
from smsrelay_airflow.triggers.sms import SmsDeliveryTrigger, SmsReplyTrigger  # noqa: E402

from smsrelay.errors import ConfigError  # noqa: E402
from tests.fixtures.airflow import sandbox_outbox  # noqa: E402
from tests.fixtures.kudosity import SENDER, V2_KEY  # noqa: E402


# -- stand-ins for the task runner's context -------------------------------------------
class StateStore:
    """The ``task_state_store`` interface (get/set), kept in a dict that survives "retries"."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return json.loads(json.dumps(self.data[key])) if key in self.data else default

    def set(self, key: str, value: Any, **_: Any) -> None:
        self.data[key] = json.loads(json.dumps(value))  # JSON only, as the real store

    def rows(self) -> list[dict[str, Any]]:
        """The send's stored rows: one JSON string once every outcome is known, else a list."""
        rows = self.data[STATE_KEY]["results"]
        return list(json.loads(rows) if isinstance(rows, str) else rows)


class TI:
    def __init__(self, task_id: str = "send", try_number: int = 1, map_index: int = -1) -> None:
        self.dag_id, self.run_id, self.task_id = "dag", "manual__2026-01-01", task_id
        self.try_number, self.map_index = try_number, map_index
        self.start_date = datetime.now(UTC)
        self.state = "failed"
        self.log_url = "http://airflow.local/log?x=1"
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def context(ti: TI | None = None, store: StateStore | None = None) -> dict[str, Any]:
    ti = ti or TI()
    ctx: dict[str, Any] = {"ti": ti, "run_id": ti.run_id, "dag": None}
    if store is not None:
        ctx["task_state_store"] = store
    return ctx


@pytest.fixture
def sandbox_conn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """``smsrelay_default`` -> a sandbox with instant delivery."""
    path = tmp_path / "sandbox.db"
    extra = {"path": str(path), "sent_after": 0, "delivered_after": 0, "reply_after": 0}
    conn = Connection(conn_id="smsrelay_default", conn_type="smsrelay_sandbox", extra=json.dumps(extra))
    monkeypatch.setenv("AIRFLOW_CONN_SMSRELAY_DEFAULT", conn.as_json())
    return path


@pytest.fixture
def kudosity_conn(monkeypatch: pytest.MonkeyPatch, start_emulator: Any) -> Any:
    """``smsrelay_default`` -> the Kudosity V2 emulator (real clock, no read lag)."""
    emu = start_emulator("kudosity-v2", api_keys=(V2_KEY,), sent_after=0, delivered_after=0, reply_after=0)
    extra = {"api": "v2", "sender": SENDER, "read_lag": 0, "timeout": 5}
    conn = Connection(
        conn_id="smsrelay_default",
        conn_type="smsrelay_kudosity",
        host=emu.url,
        password=V2_KEY,
        extra=json.dumps(extra),
    )
    monkeypatch.setenv("AIRFLOW_CONN_SMSRELAY_DEFAULT", conn.as_json())
    return emu


# -- registration ------------------------------------------------------------------------
def test_provider_info_validates_against_airflows_schema() -> None:
    import airflow
    import jsonschema

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    types = {c["connection-type"]: c for c in info["connection-types"]}
    assert sorted(types) == sorted(
        ["smsrelay_kudosity", "smsrelay_smskit", "smsrelay_mesms", "smsrelay_kaleyra", "smsrelay_sandbox"]
    )
    assert types["smsrelay_kudosity"]["conn-fields"]["api_secret"]["schema"]["format"] == "password"
    assert types["smsrelay_kudosity"]["ui-field-behaviour"]["relabeling"]["password"] == "API key"
    assert "password" in types["smsrelay_sandbox"]["ui-field-behaviour"]["hidden-fields"]


@pytest.mark.parametrize("conn_type", sorted(BACKENDS))
def test_each_connection_type_has_a_hook_with_the_same_form(conn_type: str) -> None:
    import importlib

    backend = BACKENDS[conn_type]
    module, _, name = backend.hook_class.rpartition(".")
    hook_cls = getattr(importlib.import_module(module), name)
    assert hook_cls.conn_type == conn_type and issubclass(hook_cls, SmsHook)
    behaviour = hook_cls.get_ui_field_behaviour()
    assert behaviour["hidden_fields"] == list(backend.hidden)
    try:
        widgets = hook_cls.get_connection_form_widgets()
    except ImportError:  # Airflow 3 without the FAB provider: the declarative conn-fields are used
        return
    assert sorted(widgets) == sorted(backend.fields)


# -- connection -> settings ---------------------------------------------------------------
def test_hook_arguments_override_connection_extras(tmp_path: Path) -> None:
    conn = Connection(
        conn_id="sms",
        conn_type="smsrelay_sandbox",
        extra=json.dumps({"extra__smsrelay_sandbox__sender": "FromConn", "path": str(tmp_path / "s.db")}),
    )
    assert settings_for_connection(conn).sender == "FromConn"  # the 2.x UI's prefixed extras
    assert settings_for_connection(conn, {"sender": "FromHook", "timeout": None}).sender == "FromHook"


def test_a_host_without_scheme_uses_schema_and_port() -> None:
    conn = Connection(
        conn_id="k", conn_type="smsrelay_kudosity", host="127.0.0.1", schema="http", port=8080, password="k-123456"
    )
    settings = settings_for_connection(conn)
    assert settings.base_url == "http://127.0.0.1:8080"
    assert settings.api_key == "k-123456"


def test_missing_api_key_names_the_connection_and_the_password_field() -> None:
    conn = Connection(conn_id="kudo", conn_type="smsrelay_kudosity")
    with pytest.raises(ConfigError) as err:
        settings_for_connection(conn)
    assert "Airflow connection 'kudo'" in str(err.value) and "password" in str(err.value)


def test_unknown_extra_and_foreign_type_are_named() -> None:
    bad_extra = Connection(conn_id="s", conn_type="smsrelay_sandbox", extra=json.dumps({"colour": "red"}))
    with pytest.raises(ConfigError, match="colour"):
        settings_for_connection(bad_extra)
    foreign = Connection(conn_id="h", conn_type="http", host="example.com")
    with pytest.raises(ConfigError, match="conn_type"):
        settings_for_connection(foreign)


def test_secret_goes_through_airflows_redact_and_nowhere_raw(kudosity_conn: Any) -> None:
    from airflow.sdk._shared.secrets_masker import redact

    secret_extra = "v1-secret-zyxwvutsrq"
    hook = SmsHook(api_secret=secret_extra)
    settings = hook.settings  # reading the connection registers its secrets with Airflow's masker
    assert redact(f"key={V2_KEY} secret={secret_extra}") == "key=*** secret=***"
    assert V2_KEY not in repr(hook) and V2_KEY not in repr(settings) and secret_extra not in repr(settings)
    ok, message = hook.test_connection()
    assert ok, message
    assert V2_KEY not in message


@pytest.mark.parametrize("via", ["connection", "hook argument"])
@pytest.mark.parametrize("conn_type", sorted(BACKENDS))
def test_every_field_the_table_marks_secret_or_url_is_masked(conn_type: str, via: str) -> None:
    """The field table alone says what to mask, so a secret field added there is masked with no other change."""
    import uuid

    from airflow.sdk._shared.secrets_masker import redact

    marked = {name: f for name, f in BACKENDS[conn_type].fields.items() if f.secret or f.dsn}

    def read(mask_secrets: bool) -> tuple[dict[str, str], dict[str, str]]:
        """A hook given every marked field, read as building its client does: (secrets, URL passwords)."""
        run = uuid.uuid4().hex[:12]  # fresh values: the masker is process-wide
        secrets = {n: f"{n}-{run}" for n, f in marked.items() if not f.dsn}
        passwords = {n: f"pw-{n}-{run}" for n, f in marked.items() if f.dsn}
        values = {**secrets, **{n: f"postgresql://airflow:{pw}@db/smsrelay" for n, pw in passwords.items()}}
        extra, arguments = (values, {}) if via == "connection" else ({}, values)
        conn = Connection(conn_id="sms", conn_type=conn_type, login="HXIN1", extra=json.dumps(extra))
        hook = SmsHook(connection=conn, api_key=f"key-{run}", mask_secrets=mask_secrets, **arguments)
        assert hook.settings and hook.journal == values.get("journal")  # client-only: not a provider setting
        return {**secrets, "api_key": f"key-{run}"}, passwords

    secrets, passwords = read(mask_secrets=True)
    for name, value in secrets.items():
        assert redact(f"{name}={value}") == f"{name}=***", name
    for name, password in passwords.items():
        url = f"postgresql://airflow:{password}@db/smsrelay"
        assert redact(url) == "postgresql://airflow:***@db/smsrelay", name
    if via == "hook argument":  # Airflow itself masks a connection's extras whose names sound secret
        # Triggers pass mask_secrets=False (a mask_secret call from the triggerer's loop can deadlock).
        secrets, passwords = read(mask_secrets=False)
        assert all(redact(value) == value for value in [*secrets.values(), *passwords.values()])


def test_the_cores_secret_settings_are_masked_though_no_form_field_names_them() -> None:
    from airflow.sdk._shared.secrets_masker import redact

    previous = "whsec-previous-5f1e2d3c4b"  # the secret being rotated out: a setting, not a form field
    conn = Connection(conn_id="sms", conn_type="smsrelay_kudosity", password="key-0123456789")
    hook = SmsHook(connection=conn, webhook_secret_previous=previous)
    assert hook.settings
    assert redact(f"secret={previous}") == "secret=***"


def test_test_connection_reports_a_refused_key(monkeypatch: pytest.MonkeyPatch, kudosity_conn: Any) -> None:
    conn = Connection(
        conn_id="wrong", conn_type="smsrelay_kudosity", host=kudosity_conn.url, password="not-the-key-000"
    )
    monkeypatch.setenv("AIRFLOW_CONN_WRONG", conn.as_json())
    ok, message = SmsHook("wrong", read_lag=0).test_connection()
    assert not ok and message
    assert "not-the-key-000" not in message


# -- recipients and verdicts -----------------------------------------------------------------
def test_recipients_from_numbers_strings_and_dicts() -> None:
    rs = recipients_from(["+61491570156", {"to": "+61491570157", "name": "Ann", "vars": {"code": 7}}])
    assert [(r.to, dict(r.vars)) for r in rs] == [("+61491570156", {}), ("+61491570157", {"name": "Ann", "code": 7})]
    assert [r.to for r in recipients_from("+61491570156, +61491570157")] == ["+61491570156", "+61491570157"]
    with pytest.raises(ValueError, match=r"to\[1\]: a recipient dict needs a 'to'"):
        recipients_from(["+61491570156", {"name": "Bo"}])
    with pytest.raises(ValueError, match=r"to\[0\]: expected a number"):
        recipients_from([3.5])


def test_judge_success_pending_and_failures() -> None:
    statuses = {"a": {"status": "delivered"}, "b": {"status": "sent"}, "c": {"status": "expired", "reason": "late"}}
    verdict = judge(statuses)
    assert verdict.pending == ("b",) and verdict.failures == ("c",) and not verdict.done
    assert "c to ?: expired (late)" in verdict.failure_message(statuses)
    assert judge({"b": {"status": "sent"}}, ("sent", "delivered")).done
    with pytest.raises(ValueError, match="success_statuses"):
        success_statuses(["delivred"])
    assert message_ids_from([{"message_ids": ["m1", "m2"]}, {"message_ids": ["m2"]}, "m3"]) == ["m1", "m2", "m3"]


def test_reply_rule_patterns() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rule = ReplyRule(frozenset({"+61491570156"}), start, DEFAULT_APPROVE, DEFAULT_REJECT)
    at = start + timedelta(seconds=1)
    assert rule.decide({"phone": "+61491570156", "text": "Yes!", "occurred_at": at}) == "approve"
    assert rule.decide({"phone": "+61491570156", "text": "nope", "occurred_at": at}) is None
    assert rule.decide({"phone": "+61491570156", "text": "No", "occurred_at": at}) == "reject"
    assert rule.decide({"phone": "+61491570157", "text": "YES", "occurred_at": at}) is None
    assert rule.decide({"phone": "+61491570156", "text": "YES", "occurred_at": start - timedelta(1)}) is None
    assert pattern_source(["ship it"], field="approve") == r"(?:ship\ it)\b"
    with pytest.raises(ValueError, match="approve: '\\(' is not a valid regular expression"):
        pattern_source("(", field="approve")


# -- SendSmsOperator ---------------------------------------------------------------------------
def test_send_returns_json_safe_results_and_a_retry_reuses_the_stored_ids(sandbox_conn: Path) -> None:
    store = StateStore()
    op = SendSmsOperator(task_id="send", to=["+61491570156", "+61491570157"], message="Hi")

    first = op.execute(context(TI(try_number=1), store))

    assert json.loads(json.dumps(first)) == first
    assert first["accepted"] == 2 and first["parts"] == 2 and first["provider"] == "sandbox"
    assert isinstance(store.get(STATE_KEY)["results"], str)  # one string: Airflow checks a list item by item
    assert store.rows()[0]["message_id"] == first["message_ids"][0]
    op.message = "Hi, changed between tries"  # a different body would be a different key
    again = op.execute(context(TI(try_number=2), store))
    assert again["message_ids"] == first["message_ids"]
    assert {p: len(m) for p, m in sandbox_outbox(sandbox_conn).items()} == {"+61491570156": 1, "+61491570157": 1}


def test_return_results_off_keeps_ids_and_counts_and_a_retry_still_finds_the_rows(sandbox_conn: Path) -> None:
    from smsrelay_airflow.polling import ids_by_account

    store = StateStore()
    op = SendSmsOperator(task_id="send", to=["+61491570156", "+61491570157"], message="Hi", return_results=False)

    first = op.execute(context(TI(try_number=1), store))

    assert "results" not in first and (first["accepted"], first["rejected"], first["parts"]) == (2, 0, 2)
    assert ids_by_account(first) == {None: first["message_ids"]}  # what SmsDeliverySensor follows
    assert [r["to"] for r in store.rows()] == ["+61491570156", "+61491570157"]
    again = op.execute(context(TI(try_number=2), store))
    assert again["message_ids"] == first["message_ids"]
    assert {p: len(m) for p, m in sandbox_outbox(sandbox_conn).items()} == {"+61491570156": 1, "+61491570157": 1}


def test_a_retry_without_stored_ids_asks_the_provider_first(kudosity_conn: Any) -> None:
    op = SendSmsOperator(task_id="send", to=["+61491574001", "+61491574002"], message="Code 1234")

    first = op.execute(context(TI(try_number=1)))  # Airflow < 3.3: no task_state_store
    op2 = SendSmsOperator(task_id="send", to=["+61491574001", "+61491574002", "+61491574003"], message="Code 1234")
    second = op2.execute(context(TI(try_number=2)))

    recipients = [r.json()["recipient"] for r in kudosity_conn.received("POST", "/v2/sms")]
    assert sorted(recipients) == ["61491574001", "61491574002", "61491574003"]
    assert second["message_ids"][:2] == first["message_ids"]


def test_an_ambiguous_send_is_looked_up_not_resent(kudosity_conn: Any) -> None:
    store = StateStore()
    op = SendSmsOperator(task_id="send", to=["+61491574101", "+61491574102"], message="Code 99")
    first = op.execute(context(TI(try_number=1), store))
    # As a try whose send raised AmbiguousSend leaves it: the provider accepted, we never heard.
    state = store.get(STATE_KEY)
    state["results"] = store.rows()  # stored as a list, as a try that raised AmbiguousSend leaves it
    state["results"][1].update(message_id=None, status="unknown")
    store.set(STATE_KEY, state)

    again = op.execute(context(TI(try_number=2), store))

    assert again["message_ids"] == first["message_ids"]
    assert len(kudosity_conn.received("POST", "/v2/sms")) == 2


def test_an_ambiguous_send_without_lookup_fails_rather_than_guess(
    monkeypatch: pytest.MonkeyPatch, start_emulator: Any
) -> None:
    emu = start_emulator("mesms")
    conn = {"conn_type": "smsrelay_mesms", "host": emu.url, "password": "test-key", "extra": {"sender": "Acme"}}
    monkeypatch.setenv("AIRFLOW_CONN_MESMS", json.dumps(conn))
    store = StateStore()
    store.set(STATE_KEY, {"key": "k", "results": [{"to": "+61491574201", "message_id": None, "status": "unknown"}]})
    op = SendSmsOperator(task_id="send", sms_conn_id="mesms", to=["+61491574201"], message="Hi")

    with pytest.raises(
        AirflowFailException, match=r"may or may not have been accepted .*\+614•••••201.*not sending"
    ) as err:
        op.execute(context(TI(try_number=2), store))

    assert "+61491574201" not in str(err.value)  # the number is masked: the text lands in the task log
    assert emu.received("POST") == []


def test_bad_recipients_are_reported_without_stopping_the_batch(sandbox_conn: Path) -> None:
    store = StateStore()
    ti = TI()
    op = SendSmsOperator(task_id="send", to=["+61491570156", "12", "+61491570157"], message="Hi", retries=1)

    with pytest.raises(AirflowException, match=r"1 of 3 recipient\(s\) were not sent \(12: ") as err:
        op.execute(context(ti, store))

    assert not isinstance(err.value, AirflowFailException)
    assert sorted(sandbox_outbox(sandbox_conn)) == ["+61491570156", "+61491570157"]
    assert ti.xcom["return_value"]["accepted"] == 2
    lenient = SendSmsOperator(task_id="send", to=["12"], message="Hi", fail_on_rejected=False)
    assert lenient.execute(context(TI(task_id="lenient")))["rejected"] == 1


def test_malformed_to_fails_before_anything_is_sent(sandbox_conn: Path) -> None:
    op = SendSmsOperator(task_id="send", to=["+61491570156", {"name": "no number"}], message="Hi")
    with pytest.raises(AirflowFailException, match=r"send: to\[1\]"):
        op.execute(context())
    assert sandbox_outbox(sandbox_conn) == {}
    with pytest.raises(AirflowFailException, match="success_statuses"):
        SendSmsOperator(task_id="s", to="+61491570156", message="Hi", success_statuses=["done"]).execute(context())
    with pytest.raises(ValueError, match="exactly one of message or message_template"):
        SendSmsOperator(task_id="s", to="+61491570156")


def test_per_recipient_template_variables(sandbox_conn: Path) -> None:
    op = SendSmsOperator(
        task_id="send",
        to=[{"to": "+61491570156", "name": "Ann"}, {"to": "+61491570157", "name": "Bo"}],
        message_template="Hi {{ name }}, see you {{ day }}",
        vars={"day": "Monday"},
    )
    op.execute(context())
    bodies = {p: m[0]["body"] for p, m in sandbox_outbox(sandbox_conn).items()}
    assert bodies == {"+61491570156": "Hi Ann, see you Monday", "+61491570157": "Hi Bo, see you Monday"}


def test_wait_for_delivery_defers_to_a_polling_trigger_and_fails_on_a_failed_message(sandbox_conn: Path) -> None:
    op = SendSmsOperator(task_id="send", to=["+61491570156", "+61491570001"], message="Hi", wait_for_delivery=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, SmsDeliveryTrigger)
    output = deferred.value.kwargs["output"]
    assert trigger.message_ids == output["message_ids"]

    event = asyncio.run(anext(trigger.run())).payload  # the sandbox settles both at once

    assert event["status"] == "done"
    with pytest.raises(AirflowFailException, match=r"1 of 2 message\(s\) did not succeed: .* failed \[HARD_BOUNCE\]"):
        op.execute_complete(context(), event=event, output=output)


def test_waiting_for_delivery_without_results_rows_returns_ids_counts_and_statuses(sandbox_conn: Path) -> None:
    op = SendSmsOperator(
        task_id="send", to=["+61491570156", "+61491570157"], message="Hi", wait_for_delivery=True, return_results=False
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    output = deferred.value.kwargs["output"]
    assert "results" not in output and deferred.value.trigger.message_ids == output["message_ids"]

    event = asyncio.run(anext(deferred.value.trigger.run())).payload
    done = op.execute_complete(context(), event=event, output=output)

    assert "results" not in done and done["accepted"] == 2
    assert {d["status"] for d in done["delivery"].values()} == {"delivered"}


# -- triggers and sensors -----------------------------------------------------------------------
def test_triggers_serialize_round_trip() -> None:
    for trigger in (
        SmsDeliveryTrigger("c", ["m1"], poll_interval=5, success_statuses=["delivered"]),
        SmsReplyTrigger("c", from_numbers=["+61491570156"], after="2026-01-01T00:00:00+00:00", approve="YES"),
    ):
        path, kwargs = trigger.serialize()
        assert path.startswith("smsrelay_airflow.triggers.sms.")
        json.dumps(kwargs)
        assert type(trigger)(**kwargs).serialize() == (path, kwargs)


def test_delivery_sensor_pokes_and_defers(sandbox_conn: Path) -> None:
    sent = SendSmsOperator(task_id="send", to=["+61491570156"], message="Hi").execute(context())
    sensor = SmsDeliverySensor(task_id="wait", message_ids=sent, poke_interval=0.1, timeout=10)
    assert sensor.execute(context())["statuses"][sent["message_ids"][0]]["status"] == "delivered"

    failed = SendSmsOperator(task_id="send2", to=["+61491570003"], message="Hi").execute(context(TI("send2")))
    with pytest.raises(AirflowFailException, match=r"rejected .*carrier rejected the number"):
        SmsDeliverySensor(task_id="wait2", message_ids=failed["message_ids"], poke_interval=0.1).execute(context())


def test_delivery_sensor_defers_while_messages_are_pending(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    extra = {"path": str(tmp_path / "slow.db"), "sent_after": 100, "delivered_after": 200}
    monkeypatch.setenv("AIRFLOW_CONN_SLOW", json.dumps({"conn_type": "smsrelay_sandbox", "extra": extra}))
    sent = SendSmsOperator(task_id="send", sms_conn_id="slow", to="+61491570156", message="Hi").execute(context())
    sensor = SmsDeliverySensor(task_id="w", sms_conn_id="slow", message_ids=sent, deferrable=True, timeout=60)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context())
    assert deferred.value.trigger.message_ids == sent["message_ids"]
    assert deferred.value.timeout == timedelta(seconds=60)


def test_reply_sensor_counts_from_its_start_and_rejects_with_a_clear_message(sandbox_conn: Path) -> None:
    sandbox = SmsHook().client.provider
    sandbox.inject_reply("+61491570156", "YES", delay=-60)  # before the sensor started: ignored
    sandbox.inject_reply("+61491570156", "REJECT: wrong build")
    sensor = SmsReplySensor(task_id="approval", from_numbers="+61491570156", poke_interval=0.1, timeout=5)
    ti = TI("approval")
    ti.start_date = datetime.now(UTC) - timedelta(seconds=30)
    with pytest.raises(AirflowFailException, match="rejected by SMS: \\+61491570156 replied 'REJECT: wrong build'"):
        sensor.execute(context(ti))


def test_reply_trigger_fires_on_an_approving_reply(sandbox_conn: Path) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    SmsHook().client.provider.inject_reply("+61491570157", "approve")
    SmsHook().client.provider.inject_reply("+61491570156", "ok, go")
    trigger = SmsReplyTrigger(
        "smsrelay_default", from_numbers=["+61491570156"], after=start.isoformat(), approve=DEFAULT_APPROVE
    )
    event = asyncio.run(anext(trigger.run())).payload
    assert event["status"] == "reply" and event["reply"]["from"] == "+61491570156"
    assert event["reply"]["text"] == "ok, go"


def _manual_kudosity(monkeypatch: pytest.MonkeyPatch, start_emulator: Any) -> Any:
    """``smsrelay_default`` -> a Kudosity V2 emulator on a manual clock (its polled replies are not threaded)."""
    from smsrelay import ManualClock

    emu = start_emulator("kudosity-v2", api_keys=(V2_KEY,), clock=ManualClock(datetime.now(UTC)))
    extra = {"api": "v2", "sender": SENDER, "read_lag": 0, "timeout": 5}
    conn = Connection(
        conn_id="smsrelay_default",
        conn_type="smsrelay_kudosity",
        host=emu.url,
        password=V2_KEY,
        extra=json.dumps(extra),
    )
    monkeypatch.setenv("AIRFLOW_CONN_SMSRELAY_DEFAULT", conn.as_json())
    return emu


def test_reply_trigger_a_yes_one_second_before_the_question_does_not_approve_it(
    monkeypatch: pytest.MonkeyPatch, start_emulator: Any
) -> None:
    """The core's rule through the trigger: the gate's time is the provider's accept, not the worker's clock."""
    emu = _manual_kudosity(monkeypatch, start_emulator)
    emu.inject_reply("+61491570156", "YES")
    emu.advance(1)
    asked = SendSmsOperator(task_id="ask", to="+61491570156", message="Deploy? Reply YES").execute(context())
    # Even an ``after`` a minute early (the old skew window) does not let the earlier YES in.
    early = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    trigger = SmsReplyTrigger(
        "smsrelay_default", from_numbers=["+61491570156"], after=early, in_reply_to=asked["message_ids"]
    )
    hook = SmsHook()
    assert trigger.check(hook) is None
    assert "1s before the gate's message" in trigger._poller.reason
    emu.advance(5)
    emu.inject_reply("+61491570156", "yes, go")
    fired = trigger.check(hook)
    assert fired is not None and fired["reply"]["text"] == "yes, go" and fired["reply"]["decision"] == "approve"


def test_reply_sensor_two_gates_for_one_approver_only_a_coded_reply_decides_and_only_its_gate(
    monkeypatch: pytest.MonkeyPatch, start_emulator: Any
) -> None:
    emu = _manual_kudosity(monkeypatch, start_emulator)
    lead = "+61491570156"
    ask_a = SendSmsOperator(task_id="a", to=lead, message="Deploy api? Reply YES 1111").execute(context(TI("a")))
    ask_b = SendSmsOperator(task_id="b", to=lead, message="Deploy web? Reply YES 2222").execute(context(TI("b")))
    kw: dict[str, Any] = {"from_numbers": lead, "poke_interval": 0.05, "timeout": 600, "deferrable": False}
    gate_a = SmsReplySensor(task_id="gate_a", in_reply_to=ask_a, code="1111", **kw)
    gate_b = SmsReplySensor(task_id="gate_b", in_reply_to=ask_b, code="2222", **kw)
    ctx_a, ctx_b = context(TI("gate_a")), context(TI("gate_b"))
    assert not gate_a.poke(ctx_a) and not gate_b.poke(ctx_b)  # each learns its send time from the provider
    emu.advance(30)  # both delivered: the provider's feed now reports each to the other gate

    emu.inject_reply(lead, "YES")  # which deploy? neither gate may take it
    assert not gate_a.poke(ctx_a) and not gate_b.poke(ctx_b)
    for gate, code in ((gate_a, "1111"), (gate_b, "2222")):
        assert "carries no code" in gate.poller.reason and f"reply with the gate's code ({code})" in gate.poller.reason

    emu.advance(1)
    emu.inject_reply(lead, "yes 2222")
    assert gate_b.poke(ctx_b) and gate_b.reply is not None and gate_b.reply["text"] == "yes 2222"
    assert gate_b.reply["decision"] == "approve"
    assert not gate_a.poke(ctx_a)
    assert "carries the code 2222, which is another gate's" in gate_a.poller.reason


def test_reply_trigger_serialises_the_code_and_window() -> None:
    trigger = SmsReplyTrigger("c", from_numbers=["+61491570156"], in_reply_to=["m1"], code="4821", open_for=900)
    _, kwargs = trigger.serialize()
    rule = SmsReplyTrigger(**kwargs).rule()
    assert rule.code == "4821" and rule.open_for == timedelta(minutes=15) and rule.in_reply_to == {"m1"}


def test_a_trigger_with_a_broken_connection_reports_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BROKEN", json.dumps({"conn_type": "smsrelay_kudosity"}))
    event = asyncio.run(anext(SmsDeliveryTrigger("broken", ["m1"]).run())).payload
    assert event["status"] == "error"
    assert (
        event["message"]
        == "Airflow connection 'broken': kudosity needs api_key; put it in the connection's password field"
    )


# -- notifier ----------------------------------------------------------------------------------
def test_notifier_default_message_and_dedupe(sandbox_conn: Path) -> None:
    from airflow.sdk import DAG

    dag = DAG("nightly_load", schedule=None, start_date=datetime(2026, 1, 1))
    ti = TI("load")
    ctx = {"dag": dag, "ti": ti, "run_id": ti.run_id, "params": {}}
    notifier = send_sms_notification(to="+61491570156")
    assert isinstance(notifier, SmsNotifier)

    notifier(ctx)
    notifier(ctx)  # a callback that fires twice sends once

    [sms] = sandbox_outbox(sandbox_conn)["+61491570156"]
    assert sms["body"] == (
        "Airflow FAILED: nightly_load.load run manual__2026-01-01 try 1 http://airflow.local/log?x=1"
    )


def test_notifier_async_notify_sends(sandbox_conn: Path) -> None:
    ti = TI("load")
    notifier = SmsNotifier(to="+61491570157", message="async alert")
    asyncio.run(notifier.async_notify({"ti": ti, "run_id": ti.run_id}))
    assert [m["body"] for m in sandbox_outbox(sandbox_conn)["+61491570157"]] == ["async alert"]
