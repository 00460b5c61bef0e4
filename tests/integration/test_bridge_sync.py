"""The bridge against the HTTPS org emulator (simple-salesforce, unmodified) and the sandbox provider.

Recipients use the sandbox's magic numbers (last four digits): 0001 failed, 0004 reply YES,
0006 link hit, 0007 STOP, 0009 a late duplicate ``sent`` after ``delivered``.
"""

from __future__ import annotations

from typing import Any

import pytest
from smsrelay_salesforce.state import State

from smsrelay import Message, Recipient

MSG = "SMS_Message__c"


def by_to(org: Any, where: str = "Direction__c = 'Outbound'") -> dict[str, dict[str, Any]]:
    return {r["To__c"]: r for r in org.records(MSG, where)}


def sandbox_count(bridge: Any, key: str | None = None) -> int:
    db = bridge.client.provider._db()
    if key is None:
        return db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    return db.execute("SELECT COUNT(*) FROM messages WHERE key = ?", (key,)).fetchone()[0]


def test_due_records_are_claimed_sent_and_written_back(make_bridge, queue_messages, sf_org, clock) -> None:
    queue_messages(5)
    later = clock.now().replace(year=2027).isoformat()
    sf_org.insert(MSG, [{"To__c": "+61491570200", "Body__c": "later", "Status__c": "Queued", "Send_At__c": later}])
    bridge = make_bridge()
    summary = bridge.sync()
    assert summary.sent == 5 and summary.due == 5 and not summary.failures
    rows = by_to(sf_org)
    for i in range(5):
        r = rows[f"+6149157{100 + i:04d}"]
        assert r["Status__c"] == "Sent" and r["Provider__c"] == "sandbox"
        assert r["Provider_Message_Id__c"].startswith("sbx-") and r["Parts__c"] == 1
        assert r["Send_Key__c"] == f"sf-{r['Id']}-1" and r["Attempts__c"] == 1
    assert rows["+61491570200"]["Status__c"] == "Queued"  # not due yet
    assert sandbox_count(bridge) == 5
    clock.advance(10)
    summary = bridge.sync()
    assert summary.sent == 0 and summary.deliveries_updated == 5
    rows = by_to(sf_org)
    assert {rows[f"+6149157{100 + i:04d}"]["Delivery_Status__c"] for i in range(5)} == {"Delivered"}
    assert rows["+61491570100"]["Delivered_At__c"] is not None
    # Calls per phase stay within the floor (one Collections call per 200 records) plus a few queries.
    assert summary.total_calls <= 6


def test_replies_link_hits_stop_failures_and_the_merge_rule(make_bridge, sf_org, clock) -> None:
    contact = sf_org.insert("Contact", [{"LastName": "Ng", "FirstName": "Ann", "MobilePhone": "0491 570 004"}])[0]
    lead = sf_org.insert("Lead", [{"LastName": "Lee", "Company": "Acme", "MobilePhone": "+61 491 570 007"}])[0]
    numbers = ["+61491570001", "+61491570004", "+61491570006", "+61491570007", "+61491570009"]
    sf_org.insert(MSG, [{"To__c": n, "Body__c": "Hi", "Status__c": "Queued"} for n in numbers])
    bridge = make_bridge()
    bridge.sync()
    clock.advance(10)
    summary = bridge.sync()
    assert summary.replies == 2 and summary.link_hits == 1 and summary.opt_outs == 1 and not summary.failures
    out = by_to(sf_org)
    assert out["+61491570001"]["Delivery_Status__c"] == "Failed"
    assert out["+61491570001"]["Error_Message__c"] == "handset refused the message"
    assert out["+61491570001"]["Status__c"] == "Sent"  # handed off; the carrier failed it
    assert out["+61491570009"]["Delivery_Status__c"] == "Delivered"  # the late "sent" lost
    replies = {r["Phone_E164__c"]: r for r in sf_org.records(MSG, "Direction__c = 'Inbound'")}
    yes = replies["+61491570004"]
    assert yes["Body__c"] == "YES" and yes["Status__c"] == "Received"
    assert yes["In_Reply_To__c"] == out["+61491570004"]["Id"] and yes["Contact__c"] == contact
    stop = replies["+61491570007"]
    assert stop["Body__c"] == "STOP" and stop["Lead__c"] == lead
    hits = sf_org.records("SMS_Link_Hit__c")
    assert len(hits) == 1 and hits[0]["Message__c"] == out["+61491570006"]["Id"]
    rollup = bridge.org.query(f"SELECT Link_Hits__c FROM {MSG} WHERE Id = '{out['+61491570006']['Id']}'")
    assert rollup[0]["Link_Hits__c"] == 1
    consent = sf_org.records("SMS_Consent__c")
    assert [(c["Phone__c"], c["Opted_Out__c"], c["Opt_Out_Source__c"]) for c in consent] == [
        ("+61491570007", True, "Reply")
    ]
    # The opted-out number is never sent to again, from any record.
    sf_org.insert(MSG, [{"To__c": "0491 570 007", "Body__c": "again", "Status__c": "Queued"}])
    summary = bridge.sync()
    assert summary.skipped_opted_out == 1 and summary.sent == 0
    skipped = sf_org.records(MSG, "To__c = '0491 570 007'")[0]
    assert skipped["Status__c"] == "Skipped_Opted_Out" and skipped["Provider_Message_Id__c"] is None
    assert sandbox_count(bridge) == 5


def test_replaying_the_same_events_changes_nothing(make_bridge, bridge_config, sf_org, clock, tmp_path) -> None:
    numbers = ["+61491570004", "+61491570006", "+61491570007", "+61491570120"]
    sf_org.insert(MSG, [{"To__c": n, "Body__c": "Hi", "Status__c": "Queued"} for n in numbers])
    bridge = make_bridge()
    bridge.sync()
    clock.advance(10)
    bridge.sync()
    ignore = {"LastModifiedDate", "SystemModstamp"}

    def snapshot() -> dict[str, list[dict[str, Any]]]:
        return {
            o: sorted(
                ({k: v for k, v in r.items() if k not in ignore} for r in sf_org.records(o)), key=lambda r: r["Id"]
            )
            for o in (MSG, "SMS_Link_Hit__c", "SMS_Consent__c")
        }

    before = snapshot()
    # Forget everything the bridge knew: a fresh state file replays the whole feed from the start.
    fresh = make_bridge(state_file=str(tmp_path / "fresh.db"))
    summary = fresh.sync(push=False)
    assert summary.events > 0 and not summary.failures
    assert summary.deliveries_updated == 0  # the org already holds these statuses: no write
    assert snapshot() == before


def test_an_opted_out_number_is_skipped_and_an_invalid_one_rejected_while_the_rest_go(
    make_bridge, queue_messages, sf_org
) -> None:
    sf_org.insert("SMS_Consent__c", [{"Phone__c": "+61491570101", "Opted_Out__c": True, "Opt_Out_Source__c": "Manual"}])
    queue_messages(3)
    sf_org.insert(MSG, [{"To__c": "12345", "Body__c": "x", "Status__c": "Queued"}])
    sf_org.insert(MSG, [{"To__c": "+61491570150", "Status__c": "Queued"}])  # no body
    bridge = make_bridge()
    summary = bridge.sync()
    assert (summary.sent, summary.skipped_opted_out, summary.rejected) == (2, 1, 2)
    rows = by_to(sf_org)
    assert rows["+61491570101"]["Status__c"] == "Skipped_Opted_Out"
    bad = rows["12345"]
    assert bad["Status__c"] == "Rejected" and bad["Error_Code__c"] == "INVALID_NUMBER"
    assert "12345" in bad["Error_Message__c"]
    assert rows["+61491570150"]["Error_Code__c"] == "EMPTY_BODY"
    assert sandbox_count(bridge) == 2


def test_the_template_reads_related_contact_fields_and_a_missing_one_rejects_only_that_record(
    make_bridge, sf_org
) -> None:
    ann = sf_org.insert("Contact", [{"LastName": "Ng", "FirstName": "Ann"}])[0]
    sf_org.insert(
        MSG,
        [
            {"To__c": "+61491570300", "Status__c": "Queued", "Contact__c": ann, "Body__c": "your order shipped"},
            {"To__c": "+61491570301", "Status__c": "Queued", "Body__c": "no contact"},
        ],
    )
    bridge = make_bridge(send={"template": "Hi {{ Contact__r.FirstName }}, {{ Body__c }}"})
    summary = bridge.sync()
    assert summary.sent == 1 and summary.rejected == 1
    body = bridge.client.provider._db().execute("SELECT body FROM messages").fetchone()[0]
    assert body == "Hi Ann, your order shipped"
    bad = by_to(sf_org)["+61491570301"]
    assert bad["Status__c"] == "Rejected" and bad["Error_Code__c"] == "TEMPLATE_ERROR"


def test_per_user_sender_overrides(make_bridge, queue_messages, sf_org) -> None:
    owner = sf_org.records("User")[0]["Id"]
    queue_messages(1)
    bridge = make_bridge(send={"users": {owner: {"sender": "SalesTeam"}}})
    bridge.sync()
    sender = bridge.client.provider._db().execute("SELECT sender FROM messages").fetchone()[0]
    assert sender == "SalesTeam"


def test_a_crash_left_in_sending_is_reconciled_by_key_and_never_sent_twice(make_bridge, sf_org) -> None:
    ids = sf_org.insert(
        MSG,
        [
            {
                "To__c": "+61491570400",
                "Body__c": "a",
                "Status__c": "Sending",
                "Send_Key__c": "k-sent",
                "Attempts__c": 1,
            },
            {
                "To__c": "+61491570401",
                "Body__c": "b",
                "Status__c": "Sending",
                "Send_Key__c": "k-lost",
                "Attempts__c": 1,
            },
            {"To__c": "+61491570402", "Body__c": "c", "Status__c": "Sending", "Attempts__c": 1},
        ],
    )
    bridge = make_bridge()
    # The first one reached the provider before the crash; the second did not.
    first = bridge.client.send_many(Message("a", sender="Acme"), [Recipient("+61491570400", key="k-sent")])
    summary = bridge.sync()
    assert summary.reconciled == 1 and summary.resent == 1 and summary.ambiguous == 1
    assert sandbox_count(bridge, "k-sent") == 1 and sandbox_count(bridge, "k-lost") == 1
    rows = {r["Id"]: r for r in sf_org.records(MSG)}
    assert rows[ids[0]]["Status__c"] == "Sent"
    assert rows[ids[0]]["Provider_Message_Id__c"] == first.results[0].message_id
    assert rows[ids[1]]["Status__c"] == "Sent"
    assert rows[ids[2]]["Status__c"] == "Ambiguous" and sandbox_count(bridge) == 2


def test_lock_errors_5xx_and_an_expired_session_are_retried(make_bridge, queue_messages, sf_org, sf_jwt) -> None:
    queue_messages(4)
    bridge = make_bridge(
        salesforce={
            "auth": "jwt",
            "login_url": sf_org.url,
            "consumer_key": sf_org.consumer_key,
            "username": sf_org.username,
            "private_key_file": str(sf_jwt.private_key_path),
            "instance_url": None,
            "access_token": None,
        }
    )
    bridge.org.connect()
    sf_org.fail_records("UNABLE_TO_LOCK_ROW", sobject=MSG, times=2)
    sf_org.inject_error("SERVER_UNAVAILABLE", path="query", times=2)
    sf_org.expire_sessions()
    summary = bridge.sync()
    assert summary.sent == 4 and not summary.failures
    assert {r["Status__c"] for r in sf_org.records(MSG)} == {"Sent"}


def test_a_record_salesforce_refuses_to_claim_is_not_sent(make_bridge, queue_messages, sf_org) -> None:
    queue_messages(3)
    sf_org.fail_records("FIELD_CUSTOM_VALIDATION_EXCEPTION", sobject=MSG, times=1, message="Owner must approve")
    bridge = make_bridge()
    summary = bridge.sync()
    assert summary.claim_failed == 1 and summary.sent == 2
    assert sandbox_count(bridge) == 2
    assert sorted(r["Status__c"] for r in sf_org.records(MSG)) == ["Queued", "Sent", "Sent"]


def test_request_limit_exceeded_and_the_usage_ceiling_pause_the_bridge(make_bridge, queue_messages, sf_org) -> None:
    queue_messages(3)
    bridge = make_bridge()
    sf_org.inject_error("REQUEST_LIMIT_EXCEEDED", times=1)
    summary = bridge.sync()
    assert summary.paused and "REQUEST_LIMIT_EXCEEDED" in summary.paused and summary.sent == 0
    sf_org.set_api_usage(13_600, 15_000)  # 91%: above the default 90% ceiling
    summary = bridge.sync()
    assert summary.paused and "ceiling 90%" in summary.paused and summary.sent == 0
    assert sandbox_count(bridge) == 0
    sf_org.set_api_usage(100, 15_000)
    assert bridge.sync().sent == 3


def test_bulk_api_is_used_above_the_threshold(make_bridge, queue_messages, sf_org, clock) -> None:
    queue_messages(12)
    bridge = make_bridge(limits={"bulk_threshold": 5})
    summary = bridge.sync()
    assert summary.sent == 12
    jobs = sf_org.state()["jobs"]
    assert len(jobs) >= 1 and set(jobs.values()) == {"JobComplete"}
    assert {r["Status__c"] for r in sf_org.records(MSG)} == {"Sent"}
    clock.advance(10)
    summary = bridge.sync()
    assert summary.deliveries_updated == 12
    assert {r["Delivery_Status__c"] for r in sf_org.records(MSG)} == {"Delivered"}


def test_dry_run_sends_and_writes_nothing(make_bridge, queue_messages, sf_org) -> None:
    queue_messages(3)
    bridge = make_bridge()
    summary = bridge.sync(dry_run=True)
    assert summary.dry_run and summary.sent == 3
    assert {r["Status__c"] for r in sf_org.records(MSG)} == {"Queued"}
    assert sandbox_count(bridge) == 0


def test_two_syncs_on_one_state_file_do_not_overlap(make_bridge, bridge_config) -> None:
    bridge = make_bridge()
    other = State(bridge.config.state_file)
    other.lock()
    try:
        with pytest.raises(Exception, match="another smsrelay-salesforce sync"):
            bridge.sync()
    finally:
        other.close()


def test_client_credentials_sign_in_and_a_wrong_secret_is_a_clear_auth_error(
    make_bridge, queue_messages, sf_org
) -> None:
    from smsrelay.errors import AuthError

    queue_messages(1)
    creds = {
        "auth": "client_credentials",
        "login_url": sf_org.url,
        "consumer_key": sf_org.consumer_key,
        "consumer_secret": "${SF_SECRET}",
        "instance_url": None,
        "access_token": None,
    }
    wrong = make_bridge(env={"SF_SECRET": "not-the-secret-at-all"}, salesforce=creds)
    with pytest.raises(AuthError) as exc:
        wrong.sync()
    assert "client_credentials" in str(exc.value) and "not-the-secret-at-all" not in str(exc.value)
    right = make_bridge(env={"SF_SECRET": sf_org.consumer_secret}, salesforce=creds)
    assert right.sync().sent == 1
