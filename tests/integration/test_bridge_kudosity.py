"""The bridge with a real provider adapter: Kudosity V2 over loopback, polled for reports and replies."""

from __future__ import annotations

from typing import Any

from tests.fixtures.kudosity import SENDER, V2_KEY

MSG = "SMS_Message__c"


def test_sync_through_the_kudosity_v2_emulator(make_bridge, sf_org, kudosity_v2_emulator, clock) -> None:
    numbers = ["+61491570001", "+61491570004", "+61491570007", "+61491570140", "+61491570141"]
    sf_org.insert(MSG, [{"To__c": n, "Body__c": "Hello from Acme", "Status__c": "Queued"} for n in numbers])
    bridge = make_bridge(
        env={"KUDOSITY_KEY": V2_KEY},
        sms={
            "provider": "kudosity",
            "api": "v2",
            "api_key": "${KUDOSITY_KEY}",
            "base_url": kudosity_v2_emulator.url,
            "sender": SENDER,
            "timeout": 5,
        },
    )
    summary = bridge.sync()
    assert summary.sent == 5 and not summary.failures
    rows: dict[str, dict[str, Any]] = {r["To__c"]: r for r in sf_org.records(MSG, "Direction__c = 'Outbound'")}
    assert {r["Status__c"] for r in rows.values()} == {"Sent"} and all(
        r["Provider__c"] == "kudosity" for r in rows.values()
    )
    # The send key travelled as Kudosity's message_ref.
    assert len(kudosity_v2_emulator.received("POST", "/v2/sms")) == 5
    for _ in range(6):  # the emulator runs its timers as they fall due: reports, then replies
        kudosity_v2_emulator.advance(10)
    summary = bridge.sync()
    assert not summary.failures, summary.errors
    rows = {r["To__c"]: r for r in sf_org.records(MSG, "Direction__c = 'Outbound'")}
    assert rows["+61491570001"]["Delivery_Status__c"] == "Failed"
    assert rows["+61491570140"]["Delivery_Status__c"] == "Delivered"
    replies = {r["Phone_E164__c"]: r for r in sf_org.records(MSG, "Direction__c = 'Inbound'")}
    assert replies["+61491570004"]["Body__c"].upper() == "YES"
    assert replies["+61491570004"]["In_Reply_To__c"] == rows["+61491570004"]["Id"]
    assert [c["Phone__c"] for c in sf_org.records("SMS_Consent__c")] == ["+61491570007"]
    # Nothing was sent twice, and a second pass changes nothing.
    assert bridge.sync().updated == 0
    assert len(kudosity_v2_emulator.received("POST", "/v2/sms")) == 5
