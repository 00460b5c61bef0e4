"""The bridge where the org emulator now fails as Salesforce does: a bad value, a slow Bulk 2.0
job, and a query URL over the limit."""

from __future__ import annotations

from smsrelay_salesforce.config import config_from_mapping
from smsrelay_salesforce.sync import Bridge

from tests.fixtures.bridge import bridge_mapping

MSG = "SMS_Message__c"


def test_one_bad_value_fails_its_record_only_and_the_batch_is_written_in_one_call(make_bridge, sf_org) -> None:
    ids = sf_org.insert(MSG, [{"To__c": f"+6149157100{i}", "Status__c": "Queued"} for i in range(3)])
    org = make_bridge().org
    org.describe(MSG)  # as the preflight does; the value check reads the cached describe
    before = sf_org.api_calls
    updates = [
        {"Id": ids[0], "Status__c": "Sending", "Attempts__c": 1},
        {"Id": ids[1], "Status__c": "Sending", "Attempts__c": "abc"},
        {"Id": ids[2], "Status__c": "Sending", "Send_At__c": "2026-12-05 10:00"},
    ]
    outcomes = org.write("update", MSG, updates)
    assert [o.ok for o in outcomes] == [True, False, False]
    assert outcomes[1].code == "INVALID_TYPE_ON_FIELD_IN_RECORD" and "Attempts__c" in (outcomes[1].message or "")
    assert "dateTime with a time" in (outcomes[2].message or "")
    assert sf_org.api_calls - before == 1  # the good record went in one Collections call, not refused with it
    status = {r["Id"]: r["Status__c"] for r in sf_org.records(MSG)}
    assert [status[i] for i in ids] == ["Sending", "Queued", "Queued"]


def test_the_bridge_polls_a_bulk_job_that_takes_time_with_backoff(sf_org_factory, sf_tls, clock, tmp_path) -> None:
    # Bulk API 2.0 Developer Guide, "Get Information About a Job": state is UploadComplete, then
    # InProgress while Salesforce processes the data, then JobComplete (or Failed).
    slow = sf_org_factory(bulk_processing_seconds=30)
    slow.insert(MSG, [{"To__c": f"+614915702{i:02d}", "Body__c": "Hi", "Status__c": "Queued"} for i in range(6)])
    data = bridge_mapping(slow, sf_tls.ca_path, tmp_path, limits={"bulk_threshold": 3})
    config = config_from_mapping(data, env={"SF_TEST_TOKEN": slow.issue_token()})
    with Bridge(config, clock=clock, bulk_poll=2.0) as bridge:
        started = clock.now()
        summary = bridge.sync(pull=False)
    assert summary.sent == 6 and not summary.failures
    assert {r["Status__c"] for r in slow.records(MSG)} == {"Sent"}
    assert set(slow.state()["jobs"].values()) == {"JobComplete"}
    assert (clock.now() - started).total_seconds() >= 30  # it waited for the job, on the clock
    polls = len([r for r in slow.received("GET") if "/jobs/ingest/" in r.path and r.path.count("/") <= 7])
    assert 2 <= polls <= 8  # InProgress seen, then backoff 2, 4, 8, 16 s: a handful of calls


def test_long_in_lists_are_cut_below_the_414_limit(make_bridge, sf_org) -> None:
    # 3,000 provider message ids of 40 characters: one IN list would be ~130 KB of URL.
    ids = [f"msg-{i:036d}" for i in range(3000)]
    sf_org.insert(MSG, [{"To__c": "+61491570100", "Provider_Message_Id__c": m} for m in ids[::100]])
    org = make_bridge().org
    before = sf_org.api_calls
    rows = list(org.select_in(["Id", "Provider_Message_Id__c"], MSG, "Provider_Message_Id__c", ids))
    assert sorted(r["Provider_Message_Id__c"] for r in rows) == ids[::100]
    queries = sf_org.api_calls - before
    assert queries >= 10  # cut into many queries, none refused with 414
    assert not [r for r in sf_org.requests if r.query and len(r.path) + len(r.query) > 16_384]
