"""Send outcomes issue 14 added to the core: a send in doubt is left for review and never resent;
one certainly not sent (throttled) goes back to Queued and the next run sends it."""

from __future__ import annotations

from tests.fixtures.kudosity import SENDER, V2_KEY

MSG = "SMS_Message__c"


def test_an_in_doubt_send_is_marked_ambiguous_and_never_resent(make_bridge, sf_org, kudosity_v2_emulator) -> None:
    sf_org.insert(MSG, [{"To__c": "+61491570150", "Body__c": "Hi", "Status__c": "Queued"}])
    bridge = make_bridge(
        env={"KUDOSITY_KEY": V2_KEY},
        sms={"provider": "kudosity", "api": "v2", "api_key": "${KUDOSITY_KEY}",
             "base_url": kudosity_v2_emulator.url, "sender": SENDER, "timeout": 5, "retries": 0},
    )  # fmt: skip
    bridge.preflight()
    # The send is accepted, then the connection drops; every lookup by key fails: in doubt.
    kudosity_v2_emulator.inject("reset_after", path="/v2/sms", method="POST")
    kudosity_v2_emulator.inject("status", status=503, body='{"error":"down"}', path="/v2/sms", method="GET", times=100)
    summary = bridge.sync(pull=False)
    assert summary.ambiguous == 1 and summary.sent == 0
    row = sf_org.records(MSG)[0]
    assert row["Status__c"] == "Ambiguous" and row["Error_Code__c"] == "IN_DOUBT"
    assert "not resent" in row["Error_Message__c"]
    kudosity_v2_emulator.faults.clear()
    assert bridge.sync(pull=False).sent == 0
    assert len(kudosity_v2_emulator.outbound) == 1  # the one the provider took; nothing sent twice
    assert sf_org.records(MSG)[0]["Status__c"] == "Ambiguous"


def test_a_throttled_send_goes_back_to_queued_and_the_next_run_sends_it(
    make_bridge, sf_org, kudosity_v2_emulator
) -> None:
    sf_org.insert(MSG, [{"To__c": "+61491570151", "Body__c": "Hi", "Status__c": "Queued"}])
    bridge = make_bridge(
        env={"KUDOSITY_KEY": V2_KEY},
        sms={"provider": "kudosity", "api": "v2", "api_key": "${KUDOSITY_KEY}",
             "base_url": kudosity_v2_emulator.url, "sender": SENDER, "timeout": 5, "retries": 0},
    )  # fmt: skip
    bridge.preflight()
    kudosity_v2_emulator.inject("rate_limit", path="/v2/sms", method="POST", times=1)
    summary = bridge.sync(pull=False)
    assert summary.requeued == 1 and summary.sent == 0 and summary.failed == 0
    row = sf_org.records(MSG)[0]
    assert row["Status__c"] == "Queued" and row["Error_Code__c"] == "NOT_SENT"
    assert len(kudosity_v2_emulator.outbound) == 0
    assert bridge.sync(pull=False).sent == 1  # certainly not sent before, so sent now, once
    assert len(kudosity_v2_emulator.outbound) == 1
    assert sf_org.records(MSG)[0]["Status__c"] == "Sent"
