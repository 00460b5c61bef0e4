"""Kudosity V1 delivery reports in the polled feed: get-sms-sent per followed send, exact resume."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsrelay.errors import InvalidRequest, Unsupported
from smsrelay.model import Delivery, Reply, Status
from tests.fixtures.kudosity import wait_for_pushes

# Last four digits pick the emulator's outcome (sandbox table): 0156 delivered,
# 0001 hard bounce, 0004 delivered + reply YES, 0008 never reported.
DELIVERED, FAILED, REPLIES, SILENT = "+61491570156", "+61491570001", "+61491570004", "+61491570008"


def poll_all(provider, cursor, limit=500):
    """Every page from ``cursor`` on; returns (events, last cursor)."""
    events = []
    while True:
        page = provider.poll_events(cursor, limit=limit)
        events.extend(page.events)
        cursor = page.cursor
        if not page.more:
            return events, cursor


def statuses(events):
    return {(e.phone, e.status) for e in events if isinstance(e, Delivery)}


def settle(emulator, seconds=60):
    for _ in range(3):
        emulator.advance(seconds / 3)


def test_poll_yields_each_status_change_once_and_then_drops_settled_sends(kudosity_v1, kudosity_v1_emulator):
    result = kudosity_v1.send([DELIVERED, FAILED, REPLIES, SILENT], "Reply YES please")
    campaign = result.batch_id
    provider = kudosity_v1.provider

    first, cursor = poll_all(provider, None)
    # No DLR yet: get-sms-sent says pending, which is "sent" (OAS1 get-sms-sent, https://developers.kudosity.com/openapi/api_documentation.yml).
    assert statuses(first) == {(p, Status.SENT) for p in (DELIVERED, FAILED, REPLIES, SILENT)}
    assert all(e.message_id == f"{campaign}:{e.phone.lstrip('+')}" and e.batch_id == campaign for e in first)
    again, cursor = poll_all(provider, cursor)
    assert again == []  # nothing changed, nothing replayed

    settle(kudosity_v1_emulator)
    later, cursor = poll_all(provider, cursor)
    assert statuses(later) == {(DELIVERED, Status.DELIVERED), (FAILED, Status.FAILED), (REPLIES, Status.DELIVERED)}
    [reply] = [e for e in later if isinstance(e, Reply)]
    assert reply.text == "YES" and reply.in_reply_to == f"{campaign}:{REPLIES.lstrip('+')}"
    # Stable order: replies (by time), then deliveries by send and number.
    assert later[0] is reply
    assert [e.phone for e in later[1:]] == sorted(e.phone for e in later[1:])
    ids = [e.event_id for e in first + later]
    assert len(ids) == len(set(ids))
    # The same report polled again has the same id, so the inbox dedupes it.
    assert {e.event_id for e in provider.status([f"{campaign}:{DELIVERED.lstrip('+')}"])} <= set(ids)

    # The silent number keeps the send followed; the others are done.
    calls = len(kudosity_v1_emulator.received("POST", r"/get-sms-sent\.json"))
    assert poll_all(provider, cursor)[0] == []
    assert len(kudosity_v1_emulator.received("POST", r"/get-sms-sent\.json")) == calls + 1


def test_small_pages_resume_exactly_across_a_restart(kudosity_v1_factory, kudosity_v1_emulator):
    client = kudosity_v1_factory()
    client.send([f"+6149157{i:04d}" for i in range(150, 162)] + [REPLIES], "Numbers")
    client.send([DELIVERED, FAILED], "Another body")
    settle(kudosity_v1_emulator)
    whole, _ = poll_all(client.provider, None)

    # The same sends through pages of 3, each page polled by a new adapter (a restart).
    paged = []
    campaigns = sorted({e.batch_id for e in whole if isinstance(e, Delivery)})
    first = kudosity_v1_factory()
    first.provider.follow(campaigns)
    page = first.provider.poll_events(None, limit=3)
    paged.extend(page.events)
    cursor = page.cursor
    while page.more:
        page = kudosity_v1_factory().provider.poll_events(cursor, limit=3)
        assert len(page.events) <= 3
        paged.extend(page.events)
        cursor = page.cursor
    assert len(whole) == 12 + 1 + 2 + 1  # 15 deliveries and one reply
    assert [e.event_id for e in paged] == [e.event_id for e in whole]
    assert kudosity_v1_factory().provider.poll_events(cursor).events == []


def test_the_feed_follows_sends_across_a_restart_and_keeps_delivered(
    kudosity_v1_factory, kudosity_v1_emulator, tmp_path
):
    inbox = str(tmp_path / "inbox.db")
    sender = kudosity_v1_factory(inbox=inbox)
    result = sender.send([DELIVERED, FAILED], "Hello")
    campaign = result.batch_id
    sender.close()  # exits before any poll: only the inbox remembers the send

    settle(kudosity_v1_emulator)
    # A delivered DLR pushed to the receiver lands in the inbox first.
    pushed = Delivery(
        "kudosity:test-push",
        "kudosity",
        DELIVERED,
        kudosity_v1_emulator.clock.now(),
        f"{campaign}:{DELIVERED.lstrip('+')}",
        status=Status.DELIVERED,
        raw_status="delivered",
        batch_id=campaign,
    )
    reader = kudosity_v1_factory(inbox=inbox)
    reader.inbox.append([pushed])
    page = reader.events(cursor="ops")
    got = statuses(page.events)
    assert (FAILED, Status.FAILED) in got and (DELIVERED, Status.DELIVERED) in got
    reader.commit_events("ops", page)
    assert reader.inbox.watched("kudosity") == {}  # handed to the adapter's cursor

    restarted = kudosity_v1_factory(inbox=inbox)
    assert restarted.events(cursor="ops").events == []


def test_late_pending_never_follows_delivered(kudosity_v1_factory, kudosity_v1_emulator, tmp_path):
    inbox = str(tmp_path / "inbox.db")
    client = kudosity_v1_factory(inbox=inbox)
    result = client.send([SILENT], "Never reported")
    campaign = result.batch_id
    # The handset's DLR came by callback; get-sms-sent still says pending.
    client.inbox.append(
        [
            Delivery(
                "kudosity:test-push-2",
                "kudosity",
                SILENT,
                kudosity_v1_emulator.clock.now() - timedelta(seconds=1),
                f"{campaign}:{SILENT.lstrip('+')}",
                status=Status.DELIVERED,
                raw_status="delivered",
                batch_id=campaign,
            )
        ]
    )
    events = client.events(cursor="ops").events
    assert statuses(events) == {(SILENT, Status.DELIVERED)}


def test_follow_rejects_bad_ids_and_forgets_unknown_sends(kudosity_v1, kudosity_v2, kudosity_v1_emulator):
    with pytest.raises(InvalidRequest) as err:
        kudosity_v1.provider.follow(["abc:61491570156"])
    assert err.value.field == "message_id"
    with pytest.raises(Unsupported):
        kudosity_v2.provider.follow(["123"])
    # V2 lists statuses itself: the feed hands it no sends (the contract's flag, not a missing hook).
    assert not kudosity_v2.provider.capabilities.follow_sends
    assert kudosity_v1.provider.capabilities.follow_sends

    kudosity_v1.provider.follow(["999"])  # not a send of this account
    page = kudosity_v1.provider.poll_events(None)
    assert page.events == []
    assert kudosity_v1.provider.poll_events(page.cursor).events == []
    assert len(kudosity_v1_emulator.received("POST", r"/get-sms-sent\.json")) == 1


def test_a_send_stops_being_followed_after_the_poll_window(kudosity_v1_factory, kudosity_v1_emulator):
    client = kudosity_v1_factory()
    client.send([SILENT], "Never reported")
    _, cursor = poll_all(client.provider, None)
    kudosity_v1_emulator.advance(timedelta(hours=73).total_seconds())
    _, cursor = poll_all(client.provider, cursor)
    calls = len(kudosity_v1_emulator.received("POST", r"/get-sms-sent\.json"))
    assert poll_all(client.provider, cursor)[0] == []
    assert len(kudosity_v1_emulator.received("POST", r"/get-sms-sent\.json")) == calls


def test_a_garbled_cursor_is_refused_naming_the_field(kudosity_v1):
    bad = base64.urlsafe_b64encode(json.dumps({"w": {"1": "x"}}).encode()).decode().rstrip("=")
    with pytest.raises(InvalidRequest) as err:
        kudosity_v1.provider.poll_events(bad)
    assert err.value.field == "cursor"


def test_a_bulk_send_is_followed_through_the_feed_in_pages(kudosity_v1_factory, kudosity_v1_emulator, tmp_path):
    client = kudosity_v1_factory(inbox=str(tmp_path / "inbox.db"))
    numbers = [f"+614915{i:05d}" for i in range(10, 1210)]
    result = client.send(numbers, "Service notice")
    assert len(result.batch_id.split(",")) == 3 and len(client.inbox.watched("kudosity", 5000)) == 1200
    settle(kudosity_v1_emulator)
    got = []
    while True:
        page = client.events(cursor="ops", limit=500)
        got.extend(page.events)
        if not page.more:
            break
    assert sorted(e.phone for e in got) == sorted(numbers)
    assert {e.status for e in got} == {Status.DELIVERED}
    assert client.inbox.watched("kudosity") == {}
    assert client.events(cursor="ops").events == []


def test_a_scheduled_send_reports_nothing_until_it_goes_out(kudosity_v1_factory, kudosity_v1_emulator, clock):
    from smsrelay import Message

    client = kudosity_v1_factory()
    client.send(DELIVERED, Message("Tomorrow", send_at=clock.now() + timedelta(days=4)))
    events, cursor = poll_all(client.provider, None)
    assert events == []  # "pending" before send_at is not "sent"
    kudosity_v1_emulator.advance(timedelta(days=4).total_seconds() - 60)
    assert poll_all(client.provider, cursor)[0] == []  # still followed past 72 h: it has not started
    settle(kudosity_v1_emulator, 120)
    events, _ = poll_all(client.provider, cursor)
    assert statuses(events) == {(DELIVERED, Status.DELIVERED)}


def test_cursor_with_a_non_numeric_send_is_refused(kudosity_v1):
    bad = base64.urlsafe_b64encode(json.dumps({"w": {"x": ["2026-01-01 00:00:00", {}]}}).encode()).decode()
    with pytest.raises(InvalidRequest) as err:
        kudosity_v1.provider.poll_events(bad.rstrip("="))
    assert err.value.field == "cursor"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.text(max_size=60),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=12),
            lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from("tswx1"), kids, max_size=4),
            max_leaves=12,
        ).map(lambda v: base64.urlsafe_b64encode(json.dumps(v).encode()).decode().rstrip("=")),
    )
)
def test_any_cursor_polls_or_is_refused_as_a_cursor(kudosity_v1, cursor):
    try:
        kudosity_v1.provider.poll_events(cursor, limit=5)
    except InvalidRequest as exc:
        assert exc.field == "cursor"


def test_a_pushed_and_a_polled_report_are_one_event(kudosity_v1_factory, kudosity_v1_emulator, webhook_sink, tmp_path):
    client = kudosity_v1_factory(inbox=str(tmp_path / "inbox.db"), dlr_callback=webhook_sink.url + "/dlr")
    client.send([DELIVERED, FAILED], "Hi")
    settle(kudosity_v1_emulator)
    wait_for_pushes(kudosity_v1_emulator, 2)
    for req in webhook_sink.webhook_requests():  # what the receiver does with each callback
        client.provider.verify_webhook(req)
        client.inbox.append(client.provider.parse_webhook(req))
    events = client.events(cursor="ops").events
    assert sorted((e.phone, e.status) for e in events) == [(FAILED, Status.FAILED), (DELIVERED, Status.DELIVERED)]
