from datetime import timedelta

import pytest

from smsrelay import Client, Message, NotCancellable, Status
from smsrelay.model import Delivery


def test_magic_numbers_cover_every_outcome(sandbox, clock):
    numbers = [f"+6149157000{d}" for d in range(10)]
    result = sandbox.send(numbers, "Hi")
    clock.advance(60)
    final = {d.phone[-1]: d.status for d in sandbox.status(result.message_ids).values()}
    assert final == {
        "0": Status.DELIVERED,
        "1": Status.FAILED,
        "2": Status.EXPIRED,
        "3": Status.REJECTED,
        "4": Status.DELIVERED,
        "5": Status.DELIVERED,
        "6": Status.DELIVERED,
        "7": Status.DELIVERED,
        "8": Status.UNKNOWN,
        "9": Status.DELIVERED,  # despite the late duplicate "sent"
    }
    kinds = [(e.kind, e.phone[-1]) for e in sandbox.events(limit=1000) if e.kind != "delivery"]
    assert kinds == [("reply", "4"), ("reply", "5"), ("link_hit", "6"), ("reply", "7"), ("opt_out", "7")]


def test_lifecycle_moves_with_the_clock(sandbox, clock):
    mid = sandbox.send("+61491570156", "Hi").message_ids[0]
    assert sandbox.status(mid)[mid].status is Status.QUEUED
    clock.advance(0.2)
    assert sandbox.status(mid)[mid].status is Status.SENT
    clock.advance(0.8)
    assert sandbox.status(mid)[mid].status is Status.DELIVERED


def test_opted_out_numbers_are_not_sent_again(sandbox, clock):
    sandbox.send("+61491570007", "Hi")
    clock.advance(60)
    again = sandbox.send("+61491570007", "Hi again")
    assert again.results[0].status is Status.REJECTED
    assert "opted out" in again.results[0].error


def test_schedule_and_cancel(sandbox, clock):
    msg = Message("Later", send_at=clock.now() + timedelta(hours=1))
    result = sandbox.send_many(msg, ["+61491570156"])
    mid = result.message_ids[0]
    assert result.results[0].status is Status.SCHEDULED
    sandbox.cancel(mid)
    clock.advance(7200)
    assert sandbox.status(mid)[mid].status is Status.CANCELLED
    with pytest.raises(NotCancellable) as info:
        sandbox.cancel(mid)
    assert info.value.reason == "ALREADY_CANCELLED"


def test_events_page_with_a_durable_cursor(sandbox, clock):
    sandbox.send([f"+6149157{i:04d}" for i in range(10, 20)], "Hi")
    clock.advance(60)
    seen: list[str] = []
    cursor = None
    while True:
        page = sandbox.events(since=cursor, limit=7)
        seen.extend(e.event_id for e in page)
        cursor = page.cursor
        if not page.more:
            break
    assert len(seen) == len(set(seen)) == 30
    assert sandbox.events(since=cursor).events == []


def test_state_is_shared_across_clients(tmp_path, clock):
    path = str(tmp_path / "shared.db")
    a = Client("sandbox", path=path, clock=clock, env={})
    b = Client("sandbox", path=path, clock=clock, env={})
    mid = a.send("+61491570156", "Hi").message_ids[0]
    clock.advance(5)
    assert isinstance(b.status(mid)[mid], Delivery)
    sent = a.send("+61491570157", "Hi", key="k1").results[0]
    assert b.lookup([sent.key, "unknown-key"]) == {sent.key: b.lookup([sent.key])[sent.key]}
    assert b.lookup([sent.key])[sent.key].message_id == sent.message_id


def test_balance_and_quote(sandbox):
    before = sandbox.balance().amount
    sandbox.send("+61491570156", "x" * 200)  # two parts
    assert before - sandbox.balance().amount == 2 * sandbox.preview("x").cost.amount
