"""The pipelined push: claimed a batch at a time while claimed batches are sent, each record once.

Against the org emulator and the Kaleyra emulator (100 recipients a request for one body).
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import parse_qs

import pytest

from smsrelay import AuthError, ConfigError
from tests.fixtures.kaleyra import KALEYRA_SID

MSG = "SMS_Message__c"
SENDS = rf"/v1/{KALEYRA_SID}/messages"


def kaleyra_bridge(make_bridge: Any, kaleyra_emulator: Any, **overrides: Any) -> Any:
    sms = {
        "provider": "kaleyra",
        "api_key": "${KALEYRA_KEY}",
        "sid": KALEYRA_SID,
        "base_url": kaleyra_emulator.url,
        "sender": "ACMEAU",
        "timeout": 5,
    }
    return make_bridge(env={"KALEYRA_KEY": "test-key"}, sms=sms, **overrides)


def statuses(sf_org: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in sf_org.records(MSG):
        out[r["Status__c"]] = out.get(r["Status__c"], 0) + 1
    return out


def test_claimed_batches_are_sent_in_full_requests_with_no_lookup_before_sending(
    make_bridge, queue_messages, sf_org, kaleyra_emulator
) -> None:
    queue_messages(250, body="Your appointment is tomorrow")
    bridge = kaleyra_bridge(make_bridge, kaleyra_emulator, limits={"batch_size": 50})
    summary = bridge.sync(pull=False)
    assert summary.sent == 250 and not summary.failures
    assert summary.calls["claim"] == 1 + 1 + 5  # the opt-out list, one query page, 5 claims of 50
    assert statuses(sf_org) == {"Sent": 250}
    # Claims of 50 still make full requests of 100; no key is looked up first (no inbox: the
    # bridge's journal beside its state file holds the keys), so the sends are the only requests.
    assert len(kaleyra_emulator.received("POST", SENDS)) == 3
    assert kaleyra_emulator.received("GET", SENDS) == []
    assert bridge.config.state_file.with_name(bridge.config.state_file.stem + ".journal.db").exists()
    ids = [r["Provider_Message_Id__c"] for r in sf_org.records(MSG)]
    assert len(set(ids)) == 250 and all(ids)


def test_a_pause_part_way_through_the_claims_sends_and_writes_back_what_was_claimed(
    make_bridge, queue_messages, sf_org, kaleyra_emulator
) -> None:
    bridge = kaleyra_bridge(make_bridge, kaleyra_emulator, limits={"batch_size": 50})
    bridge.sync(pull=False)  # the checks, once per bridge, so the next sync's calls are known
    queue_messages(250, body="Your appointment is tomorrow")
    # The next sync reads the Sending records and the opt-out list, then one query page (3
    # calls), then claims 50 (the 4th call): the default 90% ceiling is met after it.
    sf_org.set_api_usage(13_500 - 4, 15_000)
    summary = bridge.sync(pull=False)
    assert summary.paused and "ceiling 90%" in summary.paused
    assert summary.sent == 50 and not summary.failures
    assert statuses(sf_org) == {"Sent": 50, "Queued": 200}  # nothing left in Sending
    sf_org.set_api_usage(100, 15_000)
    assert bridge.sync(pull=False).sent == 200
    phones = [r["Phone_E164__c"] for r in sf_org.records(MSG)]
    assert statuses(sf_org) == {"Sent": 250} and len(set(phones)) == 250
    assert len(kaleyra_emulator.received("POST", SENDS)) == 1 + 2  # 50 in one request, then 200 in two


def test_a_provider_refusal_puts_every_claimed_record_back_to_queued(
    make_bridge, queue_messages, sf_org, kaleyra_emulator
) -> None:
    queue_messages(250, body="Your appointment is tomorrow")
    bridge = kaleyra_bridge(make_bridge, kaleyra_emulator, limits={"batch_size": 50})
    bridge.preflight()
    kaleyra_emulator.inject("status", status=401, method="POST", path=SENDS, times=100)
    with pytest.raises(AuthError):
        bridge.sync(pull=False)
    # Whatever was claimed when Kaleyra refused went back to Queued: no record waits in Sending.
    assert statuses(sf_org) == {"Queued": 250}
    kaleyra_emulator.faults.clear()
    summary = bridge.sync(pull=False)
    assert summary.sent == 250 and summary.reconciled == 0 and statuses(sf_org) == {"Sent": 250}


def test_the_due_query_goes_out_with_the_start_up_checks_and_a_failed_check_claims_nothing(
    make_bridge, queue_messages, sf_org, kaleyra_emulator
) -> None:
    queue_messages(3, body="Your appointment is tomorrow")
    # A mapping the org does not match: the checks fail, after the due query was read with them.
    bridge = kaleyra_bridge(make_bridge, kaleyra_emulator, mapping={"message": {"fields": {"to": "Attempts__c"}}})
    with pytest.raises(ConfigError, match="nothing was claimed or changed"):
        bridge.sync(pull=False)
    soql = [parse_qs(r.query).get("q", [""])[0] for r in sf_org.received("GET")]
    assert len([q for q in soql if q.endswith("ORDER BY Id") and "Status__c = 'Queued'" in q]) == 1
    assert statuses(sf_org) == {"Queued": 3}
    assert kaleyra_emulator.received("POST", SENDS) == []


def test_a_claim_lets_the_other_threads_go_once_its_body_is_written_before_the_answer(
    make_bridge, queue_messages, sf_org
) -> None:
    ids = queue_messages(3)
    org = make_bridge().org
    write = org.prepare_collection("update", MSG, [{"Id": i, "Status__c": "Sending"} for i in ids])
    on_wire, answered = threading.Event(), threading.Event()
    seen: list[bool] = []
    outcomes: list[Any] = []

    def sent() -> None:
        seen.append(answered.is_set())
        on_wire.set()

    def claim() -> None:
        outcomes.extend(org.write_prepared(write, sent=sent))
        answered.set()

    worker = threading.Thread(target=claim)
    with sf_org.lock:  # the org answers nothing until the test lets it
        worker.start()
        assert on_wire.wait(10)
        assert not answered.is_set()
    worker.join(10)
    assert seen == [False]  # called once, before the answer
    assert [o.ok for o in outcomes] == [True] * 3 and statuses(sf_org) == {"Sending": 3}
