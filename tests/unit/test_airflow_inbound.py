"""The inbound-SMS watcher's parts, in-process: the filter, the payload, serialisation and the cursor.

The feed is the real one, over the sandbox (a SQLite file) and a temporary inbox. The
ack-mode producer is driven with Airflow's own ``AdvanceItem``/``AdvanceOutcome``,
as the triggerer's shared-stream manager would after storing each event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("airflow")
pytestmark = pytest.mark.airflow

from airflow.sdk import DAG, Asset, Connection  # noqa: E402
from airflow.triggers.base import BaseEventTrigger  # noqa: E402
from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome, SharedStreamManager  # noqa: E402
from smsrelay_airflow import sms_asset  # noqa: E402
from smsrelay_airflow.assets import cursor_for  # noqa: E402
from smsrelay_airflow.get_provider_info import get_provider_info  # noqa: E402
from smsrelay_airflow.inbound import InboundPayload, InboundRule  # noqa: E402
from smsrelay_airflow.triggers.inbound import SmsInboundTrigger  # noqa: E402

from smsrelay import Client, ConfigError, Reply  # noqa: E402

ON_CALL = "+61491574001"
STRANGER = "+61491574999"
RERUN = r"^RERUN (?P<job>\w+)$"


def reply(text: str, phone: str = ON_CALL, provider: str = "sandbox", to: str | None = None) -> Reply:
    at = datetime(2026, 12, 6, 1, 2, 3, tzinfo=UTC)
    return Reply(f"{provider}:reply:{phone}:{text}", provider, phone, at, "mo-1", text=text, to=to)


# -- the filter ------------------------------------------------------------------------------
def test_the_allowlist_is_required() -> None:
    for allow in ([], "", None):
        with pytest.raises(ConfigError, match="field 'allow': is empty; name the numbers"):
            InboundRule.build(allow=allow)


def test_a_bad_allowlist_entry_is_named_by_place_and_masked() -> None:
    with pytest.raises(ConfigError) as caught:
        InboundRule.build(allow=[ON_CALL, "+61 491 574 0021234567"])
    assert "field 'allow[1]'" in str(caught.value)
    assert "4910021234567" not in str(caught.value).replace(" ", "")


def test_only_allowed_senders_pass_in_any_notation() -> None:
    rule = InboundRule.build(allow="+61 491 574 001, +61491574002", pattern=RERUN)
    assert rule.allow == frozenset({ON_CALL, "+61491574002"})
    assert rule.test(sender=ON_CALL, text="RERUN billing") == {"job": "billing"}
    assert rule.test(sender=STRANGER, text="RERUN billing") is None


def test_keywords_match_the_first_word_in_any_case() -> None:
    rule = InboundRule.build(allow=[ON_CALL], keywords=["RERUN", "retry"])
    assert rule.test(sender=ON_CALL, text="  rerun billing") == {}
    assert rule.keyword("Retry it") == "retry"
    assert rule.test(sender=ON_CALL, text="please RERUN billing") is None
    with pytest.raises(ConfigError, match=r"field 'keywords\[0\]': 'RE RUN' is not one word"):
        InboundRule.build(allow=[ON_CALL], keywords=["RE RUN"])


def test_keywords_and_pattern_must_both_pass() -> None:
    rule = InboundRule.build(allow=[ON_CALL], keywords=["RERUN"], pattern=r"(?P<job>billing|payroll)$")
    assert rule.test(sender=ON_CALL, text="RERUN payroll") == {"job": "payroll"}
    assert rule.test(sender=ON_CALL, text="RERUN marketing") is None
    assert rule.test(sender=ON_CALL, text="SKIP payroll") is None


def test_the_pattern_is_case_sensitive_unless_it_says_otherwise() -> None:
    assert InboundRule.build(allow=[ON_CALL], pattern=RERUN).test(sender=ON_CALL, text="Rerun billing") is None
    rule = InboundRule.build(allow=[ON_CALL], pattern="(?i)" + RERUN)
    assert rule.test(sender=ON_CALL, text="Rerun billing") == {"job": "billing"}
    with pytest.raises(ConfigError, match="field 'pattern': '\\(' is not a valid regular expression"):
        InboundRule.build(allow=[ON_CALL], pattern="(")


def test_a_stranger_asking_is_told_apart_from_other_traffic() -> None:
    rule = InboundRule.build(allow=[ON_CALL], pattern=RERUN)
    assert rule.asks(reply("RERUN billing", phone=STRANGER))
    assert not rule.asks(reply("thanks!", phone=STRANGER))
    assert not rule.asks(reply("RERUN billing"))  # allowed: it fires, it does not "ask"


def test_provider_and_destination_narrow_the_messages() -> None:
    rule = InboundRule.build(allow=[ON_CALL], provider="kudosity", to=["+61491570100"])
    assert rule.payload(reply("hi", provider="kudosity", to="+61491570100")) is not None
    assert rule.payload(reply("hi", provider="sandbox", to="+61491570100")) is None
    assert rule.payload(reply("hi", provider="kudosity", to="+61491570200")) is None


def test_the_payload_carries_text_sender_time_ids_and_groups_and_its_repr_masks_numbers() -> None:
    payload = InboundRule.build(allow=[ON_CALL], pattern=RERUN).payload(reply("RERUN billing", to="+61491570100"))
    assert payload == {
        "text": "RERUN billing",
        "from": ON_CALL,
        "to": "+61491570100",
        "occurred_at": "2026-12-06T01:02:03+00:00",
        "provider": "sandbox",
        "message_id": "mo-1",
        "event_id": f"sandbox:reply:{ON_CALL}:RERUN billing",
        "in_reply_to": None,
        "keyword": None,
        "groups": {"job": "billing"},
    }
    assert json.loads(json.dumps(payload)) == payload  # stored as the asset event's extra
    assert ON_CALL not in repr(payload) and "+61491570100" not in repr(payload)
    assert "+614•••••001" in repr(payload)
    assert isinstance(payload, InboundPayload)


# -- the trigger and the asset ---------------------------------------------------------------
def test_trigger_kwargs_round_trip_and_are_its_identity() -> None:
    a = SmsInboundTrigger("sms", allow=[ON_CALL, "+61491574002"], pattern=RERUN, cursor="airflow/x")
    b = SmsInboundTrigger("sms", allow="+61 491 574 002,+61491574001", pattern=RERUN, cursor="airflow/x")
    path, kwargs = a.serialize()
    assert path == "smsrelay_airflow.triggers.inbound.SmsInboundTrigger"
    assert SmsInboundTrigger(**kwargs).serialize() == (path, kwargs)
    # Airflow dedupes watchers by this hash: the same filter written differently is one trigger.
    assert BaseEventTrigger.hash(*a.serialize()) == BaseEventTrigger.hash(*b.serialize())
    c = SmsInboundTrigger("sms", allow=[ON_CALL], pattern=RERUN, cursor="airflow/x")
    assert BaseEventTrigger.hash(*a.serialize()) != BaseEventTrigger.hash(*c.serialize())


def test_trigger_repr_masks_the_allowlist() -> None:
    text = repr(SmsInboundTrigger("sms", allow=[ON_CALL], to=["+61491570100"], cursor="airflow/x"))
    assert ON_CALL not in text and "+61491570100" not in text
    assert "+614•••••001" in text


def test_trigger_arguments_are_checked() -> None:
    with pytest.raises(ConfigError, match="field 'cursor'"):
        SmsInboundTrigger("sms", allow=[ON_CALL], cursor="has space")
    with pytest.raises(ConfigError, match="field 'inbox': holds a password"):
        SmsInboundTrigger("sms", allow=[ON_CALL], cursor="c", inbox="postgresql://app:s3cret@db/sms")
    with pytest.raises(ConfigError, match="field 'poll_interval'"):
        SmsInboundTrigger("sms", allow=[ON_CALL], cursor="c", poll_interval=600)


def test_sms_asset_schedules_a_dag_and_names_its_cursor_after_the_asset() -> None:
    asset = sms_asset("billing-rerun", conn_id="sms", allow=[ON_CALL], pattern=RERUN)
    assert isinstance(asset, Asset) and asset.name == "billing-rerun"
    [watcher] = asset.watchers
    assert watcher.name == "sms:billing-rerun"
    assert isinstance(watcher.trigger, SmsInboundTrigger)
    assert watcher.trigger.cursor == "airflow/billing-rerun" == cursor_for("billing-rerun")
    assert cursor_for("billing rerun") != cursor_for("billing_rerun")
    with DAG("rerun", schedule=[asset], start_date=datetime(2026, 1, 1)) as dag:
        pass
    assert "billing-rerun" in repr(dag.timetable)


def test_the_example_dag_parses_and_is_scheduled_by_its_sms_asset() -> None:
    from airflow.dag_processing.dagbag import DagBag

    from tests.fixtures.airflow import EXAMPLE_DAGS

    bag = DagBag(str(EXAMPLE_DAGS / "example_smsrelay_inbound.py"))
    assert bag.import_errors == {}
    dag = bag.dags.get("example_smsrelay_inbound")
    assert dag is not None and "billing-rerun" in repr(dag.timetable)
    assert "SmsInboundTrigger" in repr(dag.timetable) and "+61491570156" not in repr(dag.timetable)


def test_provider_info_lists_the_inbound_trigger() -> None:
    [triggers] = get_provider_info()["triggers"]
    assert "smsrelay_airflow.triggers.inbound" in triggers["python-modules"]


# -- the feed and the durable cursor ---------------------------------------------------------
@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Client:
    """``sms`` -> a sandbox; returns a client on the same file, to inject inbound messages."""
    path = tmp_path / "sandbox.db"
    conn = Connection(conn_id="sms", conn_type="smsrelay_sandbox", extra=json.dumps({"path": str(path)}))
    monkeypatch.setenv("AIRFLOW_CONN_SMS", conn.as_json())
    client = Client("sandbox", path=str(path))
    yield client
    client.close()


def watcher(tmp_path: Path) -> SmsInboundTrigger:
    inbox = str(tmp_path / "inbox.db")
    return SmsInboundTrigger("sms", allow=[ON_CALL], pattern=RERUN, cursor="airflow/t", inbox=inbox, poll_interval=0.01)


async def take(stream: AsyncIterator[tuple[Any, Any]], n: int) -> list[tuple[Any, Any]]:
    return [await anext(stream) for _ in range(n)]


def clean(payload: int) -> AdvanceItem:
    return AdvanceItem(payload, AdvanceOutcome(acked=1, failed=0))


def committed(tmp_path: Path) -> int | None:
    """The watcher's committed position; None before it first started."""
    path = tmp_path / "inbox.db"
    if not path.exists():
        return None
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:  # read-only: never create it
        try:
            row = db.execute("SELECT position FROM cursors WHERE name = 'airflow/t'").fetchone()
        except sqlite3.OperationalError:  # the inbox is being created
            return None
    return int(row[0]) if row else None


async def until(done: Any, tmp_path: Path, timeout: float = 30.0) -> int | None:
    """Wait (bounded) for another task to move the cursor; return the committed position."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done():
        assert loop.time() < deadline, f"cursor stuck at {committed(tmp_path)}"
        await asyncio.sleep(0.01)
    return committed(tmp_path)


async def opened(trigger: SmsInboundTrigger) -> tuple[Any, AsyncIterator[tuple[Any, Any]]]:
    """A producer whose stream has started: its cursor exists, and the first read's tick is taken."""
    producer = SmsInboundTrigger.create_shared_stream_producer(trigger.serialize()[1])
    stream = producer.open_stream()
    [(tick, _)] = await take(stream, 1)
    assert tick is None
    return producer, stream


async def closed(producer: Any, stream: Any) -> None:
    await stream.aclose()
    await producer.aclose()


def test_a_new_watcher_starts_after_the_history_the_feed_holds(sandbox: Client, tmp_path: Path) -> None:
    sandbox.provider.inject_reply(ON_CALL, "RERUN billing")  # sent before the watcher existed

    async def run() -> list[Any]:
        producer, stream = await opened(watcher(tmp_path))
        try:
            sandbox.provider.inject_reply(ON_CALL, "RERUN payroll")
            return [r.text if r else None for r, _ in await take(stream, 2)]
        finally:
            await closed(producer, stream)

    assert asyncio.run(run()) == ["RERUN payroll", None]
    assert committed(tmp_path) == 1  # the start; payroll is not confirmed stored here


def test_the_producer_commits_what_airflow_stored_and_a_restart_resumes_after_it(
    sandbox: Client, tmp_path: Path
) -> None:
    trigger = watcher(tmp_path)

    async def first_run() -> list[tuple[Any, Any]]:
        producer, stream = await opened(trigger)
        try:
            sandbox.provider.inject_reply(ON_CALL, "RERUN billing")
            sandbox.provider.inject_reply(STRANGER, "RERUN billing")
            items = await take(stream, 3)  # both replies (the filter judges them), then a tick
            await producer.advance([clean(items[0][1])])  # Airflow stored the billing event
            return items
        finally:
            await closed(producer, stream)

    items = asyncio.run(first_run())
    assert [r.phone if r else None for r, _ in items] == [ON_CALL, STRANGER, None]
    assert [trigger.event_for(r) is not None for r, _ in items[:2]] == [True, False]
    assert committed(tmp_path) == items[0][1] == 1  # only what Airflow confirmed

    sandbox.provider.inject_reply(ON_CALL, "RERUN payroll")  # while "the triggerer is down"

    async def second_run() -> list[Any]:
        producer = SmsInboundTrigger.create_shared_stream_producer(trigger.serialize()[1])
        stream = producer.open_stream()
        try:
            items = await take(stream, 3)
            await producer.advance([clean(at) for _, at in items])
            return [(r.phone, r.text) if r is not None else None for r, _ in items]
        finally:
            await closed(producer, stream)

    # Billing is not read again; the unconfirmed one is, and payroll, which arrived while down.
    assert asyncio.run(second_run()) == [(STRANGER, "RERUN billing"), (ON_CALL, "RERUN payroll"), None]
    assert committed(tmp_path) == 3


def test_an_event_airflow_did_not_store_is_not_committed(sandbox: Client, tmp_path: Path) -> None:
    async def run() -> None:
        producer, stream = await opened(watcher(tmp_path))
        try:
            sandbox.provider.inject_reply(ON_CALL, "RERUN billing")
            sandbox.provider.inject_reply(ON_CALL, "RERUN payroll")
            (_, first), (_, second) = await take(stream, 2)
            lost = AdvanceItem(second, AdvanceOutcome(acked=0, failed=1))  # e.g. its persist timed out
            with pytest.raises(RuntimeError, match="not confirmed stored"):
                await producer.advance([clean(first), lost])
        finally:
            await closed(producer, stream)

    asyncio.run(run())
    assert committed(tmp_path) == 1  # billing only: payroll is read again


def test_through_airflows_shared_stream_manager_one_event_per_match_committed_once_stored(
    sandbox: Client, tmp_path: Path
) -> None:
    trigger = watcher(tmp_path)

    async def run() -> tuple[list[Any], int | None, int | None]:
        # What the triggerer's runner does with a shared-stream trigger (triggerer_job_runner.run_trigger).
        manager = SharedStreamManager()
        key = trigger.shared_stream_key()
        events = trigger.filter_shared_stream(manager.subscribe(trigger_id=1, trigger=trigger, key=key))
        first = asyncio.ensure_future(anext(events))
        await until(lambda: committed(tmp_path) is not None, tmp_path)  # the watcher started
        for phone, text in [(STRANGER, "RERUN billing"), (ON_CALL, "hello"), (ON_CALL, "RERUN billing")]:
            sandbox.provider.inject_reply(phone, text)
        payloads = [(await asyncio.wait_for(first, 30)).payload]
        seq = manager.bind_pending_event(trigger_id=1, key=key)
        assert seq is not None
        waiting = asyncio.ensure_future(anext(events))  # the filter moves on; nothing else matches
        before = await until(lambda: (committed(tmp_path) or 0) >= 2, tmp_path)  # up to the unstored event
        manager.confirm_persisted([seq])  # the supervisor stored it
        after = await until(lambda: committed(tmp_path) == 3, tmp_path)
        waiting.cancel()
        await manager.unsubscribe(1, key)
        return payloads, before, after

    payloads, before, after = asyncio.run(run())
    assert [p["groups"] for p in payloads] == [{"job": "billing"}]
    assert payloads[0]["from"] == ON_CALL
    assert (before, after) == (2, 3)


def test_run_fires_matching_messages_on_airflow_without_ack_mode(sandbox: Client, tmp_path: Path) -> None:
    trigger = watcher(tmp_path)

    async def run() -> dict[str, Any]:
        events = trigger.run()
        first = asyncio.ensure_future(anext(events))
        try:
            await until(lambda: committed(tmp_path) is not None, tmp_path)
            sandbox.provider.inject_reply(STRANGER, "RERUN billing")
            sandbox.provider.inject_reply(ON_CALL, "RERUN billing")
            return dict((await asyncio.wait_for(first, 30)).payload)
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    assert asyncio.run(run())["groups"] == {"job": "billing"}


def test_run_commits_a_page_one_poll_after_firing_it(sandbox: Client, tmp_path: Path) -> None:
    trigger = watcher(tmp_path)

    async def run() -> tuple[int | None, int | None]:
        events = trigger.run()
        first = asyncio.ensure_future(anext(events))
        try:
            start = await until(lambda: committed(tmp_path) is not None, tmp_path)
            sandbox.provider.inject_reply(ON_CALL, "RERUN billing")
            await asyncio.wait_for(first, 30)
            held = committed(tmp_path)  # fired, not yet committed: the triggerer may not have stored it
            following = asyncio.ensure_future(anext(events))  # the next poll commits it
            after = await until(lambda: committed(tmp_path) == (start or 0) + 1, tmp_path)
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
            return held, after
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    held, after = asyncio.run(run())
    assert (held, after) == (0, 1)


def test_a_watcher_on_a_broken_connection_fails_naming_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BROKEN", json.dumps({"conn_type": "smsrelay_kudosity"}))
    trigger = SmsInboundTrigger("broken", allow=[ON_CALL], cursor="airflow/t", poll_interval=0.01)

    async def run() -> None:
        producer = SmsInboundTrigger.create_shared_stream_producer(trigger.serialize()[1])
        await anext(producer.open_stream())

    with pytest.raises(ConfigError, match="Airflow connection 'broken': kudosity needs api_key"):
        asyncio.run(run())
