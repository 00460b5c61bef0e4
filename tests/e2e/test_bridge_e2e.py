"""End to end: 5,000 queued records in the org emulator, sent through the sandbox, then their
delivery reports, 500 replies, 300 link hits and 50 STOP opt-outs written back; every record's
final state is checked, and the Salesforce API calls of each phase stay within ⌈N/200⌉ + 10."""

from __future__ import annotations

import math
import time

import pytest

pytestmark = pytest.mark.slow

MSG = "SMS_Message__c"


def numbers() -> dict[str, list[str]]:
    """Recipients by sandbox outcome (the last four digits pick it); all valid AU mobiles."""

    def magic(last4: str, n: int, prefix: int) -> list[str]:
        return [f"+61{prefix + k // 100}{k % 100:02d}{last4}" for k in range(n)]

    groups = {
        "yes": magic("0004", 250, 420),
        "no": magic("0005", 250, 423),
        "link": magic("0006", 300, 426),
        "stop": magic("0007", 50, 430),
    }
    groups["plain"] = [f"+6141{j:07d}" for j in range(10, 10 + 5000 - sum(len(v) for v in groups.values()))]
    return groups


@pytest.mark.parametrize("mode", ["collections", "bulk"])
def test_five_thousand_records_end_to_end(mode, make_bridge, sf_org, clock) -> None:
    groups = numbers()
    everyone = [n for v in groups.values() for n in v]
    assert len(everyone) == len(set(everyone)) == 5000
    sf_org.insert(
        MSG, [{"To__c": n, "Body__c": "Your appointment is tomorrow", "Status__c": "Queued"} for n in everyone]
    )
    limits = {"bulk_threshold": 1_000_000} if mode == "collections" else {}
    bridge = make_bridge(limits=limits)

    started = time.monotonic()
    push = bridge.sync(pull=False)
    push_seconds = time.monotonic() - started
    assert push.sent == 5000 and not push.failures
    clock.advance(30)  # every delivery report, reply, link hit and STOP is now due
    started = time.monotonic()
    pull = bridge.sync(push=False)
    pull_seconds = time.monotonic() - started
    assert not pull.failures and pull.unmatched == 0
    print(f"{mode}: push {push_seconds:.1f}s {push.calls}, pull {pull_seconds:.1f}s {pull.calls}")

    outbound = sf_org.records(MSG, "Direction__c = 'Outbound'")
    assert len(outbound) == 5000
    assert {(r["Status__c"], r["Delivery_Status__c"]) for r in outbound} == {("Sent", "Delivered")}
    assert all(r["Provider_Message_Id__c"] and r["Delivered_At__c"] for r in outbound)
    by_id = {r["Id"]: r for r in outbound}

    inbound = sf_org.records(MSG, "Direction__c = 'Inbound'")
    assert len(inbound) == 550 and pull.replies == 550
    texts = {"YES": set(groups["yes"]), "NO": set(groups["no"]), "STOP": set(groups["stop"])}
    for r in inbound:
        assert r["Phone_E164__c"] in texts[r["Body__c"]]
        assert by_id[r["In_Reply_To__c"]]["To__c"] == r["Phone_E164__c"]  # threaded to its outbound

    hits = sf_org.records("SMS_Link_Hit__c")
    assert len(hits) == 300 and {by_id[h["Message__c"]]["To__c"] for h in hits} == set(groups["link"])
    consent = sf_org.records("SMS_Consent__c")
    assert sorted(c["Phone__c"] for c in consent) == sorted(groups["stop"]) and all(c["Opted_Out__c"] for c in consent)

    n = 5000
    floor = math.ceil(n / 200)
    if mode == "collections":
        assert push.calls["claim"] <= floor + 10
        assert push.calls["write-back"] <= floor + 10
        assert pull.calls["deliveries"] <= floor + 10
        assert pull.calls["inbound"] <= math.ceil(900 / 200) + 10
    else:
        # One Bulk 2.0 job: create, upload, close, results (floor 4), plus polls; goal floor + 10.
        assert push.calls["write-back"] <= 4 + 10
        assert pull.calls["deliveries"] <= 4 + 10
        assert len(sf_org.state()["jobs"]) >= 2
