"""The streamed pull window: events folded page by page on disk, written back chunk by chunk,
every record written once per window, a late ``sent`` never over ``delivered``, and a window
written in part replayed without writing anything twice."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from smsrelay_salesforce.pull import Puller
from smsrelay_salesforce.summary import Summary

from smsrelay import Delivery, LinkHit, Reply, Status
from tests.integration.test_bridge_pull import sent_message

MSG = "SMS_Message__c"


def test_a_window_folded_over_pages_and_written_in_chunks_writes_each_record_once(make_bridge, sf_org, clock) -> None:
    ids = {f"m{i}": sent_message(sf_org, f"+6149157060{i}", f"m{i}") for i in range(5)}
    t = clock.now()
    events: list[Any] = []
    for i in range(5):
        mid, phone = f"m{i}", f"+6149157060{i}"
        events += [
            Delivery(f"d{i}", "sandbox", phone, t + timedelta(seconds=5), mid, status=Status.DELIVERED),
            Delivery(f"s{i}", "sandbox", phone, t + timedelta(seconds=2), mid, status=Status.SENT),
        ]
    for i in range(5):  # the late duplicates come pages later, after every delivered
        events.append(Delivery(f"late{i}", "sandbox", f"+6149157060{i}", t + timedelta(seconds=2), f"m{i}",
                               status=Status.SENT))  # fmt: skip
    events += [
        Reply("r2", "sandbox", "+61491570601", t + timedelta(seconds=9), "mo-2", text="STOP", in_reply_to="m1"),
        Reply("r1", "sandbox", "+61491570601", t + timedelta(seconds=8), "mo-1", text="stop", in_reply_to="m1"),
        LinkHit("h1", "sandbox", "+61491570602", t, "m2", url="https://x.example/a"),
    ]
    bridge = make_bridge(limits={"event_page": 2})  # 18 events: 9 pages
    puller = Puller(bridge.org, bridge.client, bridge.config, bridge.state, write_chunk=2)
    first = Summary()
    puller.replay(events, first)
    assert first.events == len(events) and not first.failures
    assert first.deliveries_updated == 5  # one write per record, whatever page its events were on
    assert first.replies == 2 and first.link_hits == 1 and first.opt_outs == 1
    rows = {r["Id"]: r for r in sf_org.records(MSG, "Direction__c != 'Inbound'")}
    assert {rows[i]["Delivery_Status__c"] for i in ids.values()} == {"Delivered"}
    (consent,) = sf_org.records("SMS_Consent__c")
    assert consent["Keyword__c"] == "stop"  # the earliest STOP, though it came last
    assert bridge.state.staged_count() == 0  # nothing of the window is kept after it is written

    again = Summary()
    puller.replay(list(reversed(events)), again)
    assert again.deliveries_updated == 0 and again.deliveries_unchanged == 5


def test_sync_streams_many_windows_and_a_second_sync_writes_nothing(make_bridge, queue_messages, sf_org, clock) -> None:
    queue_messages(12)
    bridge = make_bridge(limits={"event_page": 5, "pull_window": 4})
    assert bridge.sync(pull=False).sent == 12
    clock.advance(10)
    summary = bridge.sync(push=False)
    assert summary.events == 36 and not summary.failures  # queued, sent and delivered for each
    assert sf_org.count(MSG, "Delivery_Status__c = 'Delivered'") == 12
    cursor = bridge.state.cursor("events")
    assert cursor is not None
    again = bridge.sync(push=False)
    assert again.events == 0 and again.updated == 0 and bridge.state.cursor("events") == cursor


def test_a_window_written_in_part_replays_without_a_second_write(make_bridge, queue_messages, sf_org, clock) -> None:
    queue_messages(6)
    bridge = make_bridge()
    assert bridge.sync(pull=False).sent == 6
    clock.advance(10)
    cursor = bridge.state.cursor("events")
    # The first record written in the window is refused for good; the other chunks are written.
    sf_org.fail_records("FIELD_CUSTOM_VALIDATION_EXCEPTION", sobject=MSG, times=1, message="blocked")
    puller = Puller(bridge.org, bridge.client, bridge.config, bridge.state, write_chunk=2)
    first = puller.run(Summary())
    assert first.event_write_failed == 1 and first.deliveries_updated == 5
    assert bridge.state.cursor("events") == cursor  # the whole window is read again next run
    assert sf_org.count(MSG, "Delivery_Status__c = 'Delivered'") == 5
    second = puller.run(Summary())
    # The replay writes the refused record alone: the five written ones are known, unchanged.
    assert second.deliveries_updated == 1 and second.deliveries_unchanged == 5 and not second.failures
    assert sf_org.count(MSG, "Delivery_Status__c = 'Delivered'") == 6
    assert bridge.state.cursor("events") != cursor
