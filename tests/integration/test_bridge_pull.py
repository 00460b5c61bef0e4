"""Pull with hand-made event batches: threading fallbacks, the merge rule out of order, opt-out events,
idempotent replays, and a refused write holding the cursor."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from smsrelay_salesforce.pull import Puller
from smsrelay_salesforce.summary import Summary

from smsrelay import Delivery, LinkHit, OptOut, Reply, Status

MSG = "SMS_Message__c"


def sent_message(sf_org: Any, phone: str, mid: str, sender: str = "Acme", at: str = "2026-01-01T00:00:00Z") -> str:
    return sf_org.insert(
        MSG,
        [
            {
                "To__c": phone,
                "Phone_E164__c": phone,
                "Sender__c": sender,
                "Status__c": "Sent",
                "Provider_Message_Id__c": mid,
                "Send_Key__c": f"key-{mid}",
                "Delivery_Status__c": "Queued",
                "Sent_At__c": at,
            }
        ],
    )[0]


def test_out_of_order_reports_unthreaded_replies_and_opt_out_events(make_bridge, sf_org, clock) -> None:
    older = sent_message(sf_org, "+61491570500", "m-old", at="2025-12-31T00:00:00Z")
    newer = sent_message(sf_org, "+61491570500", "m-new", at="2025-12-31T12:00:00Z")
    other_sender = sent_message(sf_org, "+61491570500", "m-other", sender="Support", at="2026-01-01T00:00:00Z")
    hit_parent = sent_message(sf_org, "+61491570501", "m-hit")
    lead = sf_org.insert("Lead", [{"LastName": "Q", "Company": "Acme", "MobilePhone": "(04) 9157 0500"}])[0]
    t = clock.now()
    events = [
        # Delivered arrives before the late "sent" for the same message: delivered stays.
        Delivery("d2", "sandbox", "+61491570500", t + timedelta(seconds=5), "m-new", status=Status.DELIVERED),
        Delivery("d1", "sandbox", "+61491570500", t + timedelta(seconds=2), "m-new", status=Status.SENT),
        # No threading reference: the latest outbound to that phone from that sender (our number).
        Reply("r1", "sandbox", "+61491570500", t + timedelta(seconds=9), "mo-1", text="Yes please", to="Acme"),
        LinkHit("h1", "sandbox", "+61491570501", t, None, url="https://x.example/a", message_ref="key-m-hit"),
        OptOut("o1", "sandbox", "+61491570501", t, None, source="link"),
        # A report for a message this org never sent is counted, not written anywhere.
        Delivery("d9", "sandbox", "+61491570999", t, "m-unknown", status=Status.DELIVERED),
    ]
    bridge = make_bridge()
    puller = Puller(bridge.org, bridge.client, bridge.config, bridge.state)
    first = Summary()
    puller.replay(events, first)
    assert first.deliveries_updated == 1 and first.replies == 1 and first.link_hits == 1 and first.opt_outs == 1
    assert first.unmatched == 1 and not first.failures
    rows = {r["Id"]: r for r in sf_org.records(MSG)}
    assert rows[newer]["Delivery_Status__c"] == "Delivered" and rows[older]["Delivery_Status__c"] == "Queued"
    (reply,) = sf_org.records(MSG, "Direction__c = 'Inbound'")
    assert reply["In_Reply_To__c"] == newer and reply["In_Reply_To__c"] != other_sender
    assert reply["Lead__c"] == lead
    (hit,) = sf_org.records("SMS_Link_Hit__c")
    assert hit["Message__c"] == hit_parent and hit["Url__c"] == "https://x.example/a"
    (consent,) = sf_org.records("SMS_Consent__c")
    assert consent["Phone__c"] == "+61491570501" and consent["Opted_Out__c"] and consent["Opt_Out_Source__c"] == "Link"

    ignore = {"LastModifiedDate", "SystemModstamp"}
    before = [
        {k: v for k, v in r.items() if k not in ignore}
        for o in (MSG, "SMS_Link_Hit__c", "SMS_Consent__c")
        for r in sf_org.records(o)
    ]
    # The same batch again, and again in reverse order: nothing changes.
    puller.replay(events, Summary())
    puller.replay(list(reversed(events)), Summary())
    after = [
        {k: v for k, v in r.items() if k not in ignore}
        for o in (MSG, "SMS_Link_Hit__c", "SMS_Consent__c")
        for r in sf_org.records(o)
    ]
    assert after == before


def test_a_refused_event_write_keeps_the_cursor_and_lands_next_run(make_bridge, sf_org, clock) -> None:
    sf_org.insert(MSG, [{"To__c": "+61491570006", "Body__c": "Hi", "Status__c": "Queued"}])  # 0006: a link hit
    bridge = make_bridge()
    bridge.sync()
    clock.advance(10)
    cursor = bridge.state.cursor("events")
    sf_org.fail_records("FIELD_CUSTOM_VALIDATION_EXCEPTION", sobject="SMS_Link_Hit__c", times=1, message="blocked")
    summary = bridge.sync()
    assert summary.event_write_failed == 1 and "not advanced" in summary.errors[-1]
    assert bridge.state.cursor("events") == cursor
    assert sf_org.records("SMS_Link_Hit__c") == []
    summary = bridge.sync()
    assert summary.link_hits == 1 and not summary.failures
    assert len(sf_org.records("SMS_Link_Hit__c")) == 1
    assert bridge.state.cursor("events") != cursor
