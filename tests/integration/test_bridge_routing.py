"""bridge.yaml's ``sms:`` given as a routing config: each record goes through its route's account,
and every account's events are written back (docs/salesforce.md, docs/routing.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from smsrelay_salesforce.config import config_from_mapping, load_config
from smsrelay_salesforce.follow import Follower
from smsrelay_salesforce.sync import Bridge

from smsrelay import ConfigError, ManualClock
from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator
from smsrelay.emulators.mesms import MeSmsEmulator
from tests.fixtures.bridge import bridge_mapping
from tests.fixtures.kudosity import SENDER, V2_KEY

MSG = "SMS_Message__c"
# Last four digits pick the emulators' outcomes: 0140/0141 are delivered by both.
THAI = ["+66812340140", "+66812340141", "+66812340142"]
AUSTRALIAN = ["+61491570140", "+61491570141"]

BRIDGE_YAML = """\
salesforce:
  auth: token
  instance_url: https://acme.my.salesforce.com
  access_token: ${SF_TOKEN}
sms:
  accounts:
    th: {provider: mesms, api_key: "${MESMS_KEY}", sender: ACME}
  routes:
    - accounts: [th]
      match: {country: TH, colour: red}
"""


def test_a_bad_route_in_sms_names_the_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bridge.yaml"
    path.write_text(BRIDGE_YAML, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"SF_TOKEN": "00Dxx!abc", "MESMS_KEY": "k"})
    # The line is the nearest one bridge.yaml's line map holds: sms.routes.
    assert (info.value.file, info.value.line, info.value.field) == (str(path), 8, "sms.routes.0.match.colour")
    assert "unknown key" in str(info.value)


@pytest.fixture
def routed_bridge(
    sf_org: Any,
    sf_tls: Any,
    tmp_path: Path,
    clock: ManualClock,
    mesms_emulator: MeSmsEmulator,
    kudosity_v2_emulator: KudosityV2Emulator,
) -> Any:
    """A bridge whose ``sms:`` routes Thai numbers to ME-SMS and Australian ones to Kudosity V2, then
    to a spare Kudosity account on the same emulator (so a message sent twice would show there)."""
    kudosity = {
        "provider": "kudosity",
        "api": "v2",
        "api_key": "${KUDOSITY_KEY}",
        "sender": SENDER,
        "base_url": kudosity_v2_emulator.url,
        "timeout": 5,
        "retries": 0,
    }
    data = bridge_mapping(sf_org, sf_tls.ca_path, tmp_path)
    data["send"] = {"country": "AU"}  # no sender here: each account sends from its own
    data["sms"] = {
        "accounts": {
            "th": {"provider": "mesms", "api_key": "${MESMS_KEY}", "sender": "Acme", "base_url": mesms_emulator.url},
            "au": kudosity,
            "spare": kudosity,
        },
        "routes": [
            {"match": {"country": "TH"}, "accounts": ["th"]},
            {"match": {"country": "AU"}, "accounts": ["au", "spare"]},
        ],
    }
    env = {"SF_TEST_TOKEN": sf_org.issue_token(), "MESMS_KEY": "test-key", "KUDOSITY_KEY": V2_KEY}
    bridge = Bridge(config_from_mapping(data, env=env), clock=clock, bulk_poll=0.01)
    yield bridge
    bridge.close()


def test_a_mixed_batch_is_sent_per_account_and_each_accounts_reports_are_written_back(
    routed_bridge: Bridge,
    sf_org: Any,
    clock: ManualClock,
    mesms_emulator: MeSmsEmulator,
    kudosity_v2_emulator: KudosityV2Emulator,
) -> None:
    numbers = [THAI[0], AUSTRALIAN[0], THAI[1], AUSTRALIAN[1], THAI[2]]
    sf_org.insert(MSG, [{"To__c": n, "Body__c": "Your parcel is on its way", "Status__c": "Queued"} for n in numbers])
    summary = routed_bridge.sync()
    assert summary.sent == 5 and not summary.failures, summary.errors
    assert summary.sent_by == {"th": 3, "au": 2}
    assert "accounts=['th', 'au', 'spare']" in repr(routed_bridge)
    assert "sent by account th" in summary.table()
    rows = {r["To__c"]: r for r in sf_org.records(MSG, "Direction__c = 'Outbound'")}
    assert {r["Status__c"] for r in rows.values()} == {"Sent"}
    assert {n: rows[n]["Provider__c"] for n in numbers} == {n: "mesms" if n in THAI else "kudosity" for n in numbers}
    # The floor per account: one ME-SMS request for the shared body, one Kudosity V2 call per number.
    assert len(mesms_emulator.received("POST", "/api/v2/sms/send")) == 1
    assert len(kudosity_v2_emulator.received("POST", "/v2/sms")) == 2
    for _ in range(6):  # both emulators run on the shared clock; the reports fall due
        kudosity_v2_emulator.advance(10)
    summary = routed_bridge.sync()
    assert not summary.failures, summary.errors
    rows = {r["To__c"]: r for r in sf_org.records(MSG, "Direction__c = 'Outbound'")}
    assert rows[THAI[0]]["Delivery_Status__c"] == "Delivered"
    assert rows[AUSTRALIAN[0]]["Delivery_Status__c"] == "Delivered"
    # One cursor per account, and nothing was sent twice.
    assert routed_bridge.state.cursor("events:th") is not None
    assert routed_bridge.state.cursor("events:au") is not None
    assert routed_bridge.sync().updated == 0
    assert len(mesms_emulator.received("POST", "/api/v2/sms/send")) == 1
    assert len(kudosity_v2_emulator.received("POST", "/v2/sms")) == 2


def test_routed_sends_claim_their_keys_in_the_journal_beside_the_state_file(
    routed_bridge: Bridge, sf_org: Any, kudosity_v2_emulator: KudosityV2Emulator
) -> None:
    numbers = [AUSTRALIAN[0], THAI[0], AUSTRALIAN[1]]
    sf_org.insert(MSG, [{"To__c": n, "Body__c": "Your parcel is on its way", "Status__c": "Queued"} for n in numbers])
    summary = routed_bridge.sync(pull=False)
    assert summary.sent == 3 and not summary.failures, summary.errors
    # Each key was claimed in the journal before its request, so none was looked up at Kudosity
    # first: the only reads are the preflight's credential checks (GET /v2/sms?limit=1, per account).
    assert {r.query for r in kudosity_v2_emulator.received("GET")} == {"limit=1"}
    journal = routed_bridge.client.journal
    assert journal is not None and Path(str(routed_bridge.config.state_file)).with_suffix(".journal.db").exists()
    assert all(c.journal is not None for c in routed_bridge.router.clients.values())  # type: ignore[union-attr]
    keys = [r["Send_Key__c"] for r in sf_org.records(MSG)]
    claim = journal.begin("kudosity", keys)  # asking again: every Kudosity key is recorded as accepted
    assert sorted(claim.recorded) == sorted(k for k, n in zip(keys, numbers, strict=True) if n in AUSTRALIAN)


def test_a_record_in_doubt_is_left_for_review_and_never_offered_to_the_next_account(
    routed_bridge: Bridge, sf_org: Any, kudosity_v2_emulator: KudosityV2Emulator
) -> None:
    sf_org.insert(MSG, [{"To__c": AUSTRALIAN[0], "Body__c": "Hi", "Status__c": "Queued"}])
    routed_bridge.preflight()
    # The send is accepted, then the connection drops; every lookup by key fails: in doubt.
    kudosity_v2_emulator.inject("reset_after", path="/v2/sms", method="POST")
    kudosity_v2_emulator.inject("status", status=503, body='{"error":"down"}', path="/v2/sms", method="GET", times=100)
    summary = routed_bridge.sync(pull=False)
    assert summary.ambiguous == 1 and summary.sent == 0
    [row] = sf_org.records(MSG)
    assert row["Status__c"] == "Ambiguous" and row["Error_Code__c"] == "IN_DOUBT"
    assert row["Error_Message__c"].startswith("in doubt: kudosity ")
    kudosity_v2_emulator.faults.clear()
    assert routed_bridge.sync(pull=False).sent == 0
    # The one message the first account took; the spare account was never asked to send it.
    assert len(kudosity_v2_emulator.outbound) == 1


def test_a_definite_refusal_moves_the_record_to_the_routes_next_account(
    routed_bridge: Bridge, sf_org: Any, kudosity_v2_emulator: KudosityV2Emulator
) -> None:
    sf_org.insert(MSG, [{"To__c": AUSTRALIAN[0], "Body__c": "Hi", "Status__c": "Queued"}])
    routed_bridge.preflight()
    # Kudosity answers a send it cannot pay for with LEDGER_ERROR (Kudosity API error codes:
    # https://developers.kudosity.com/reference, "LEDGER_ERROR: insufficient funds"); once only.
    ledger = '{"error": {"code": "LEDGER_ERROR", "description": "Insufficient funds"}}'
    kudosity_v2_emulator.inject("status", method="POST", path="/v2/sms", status=400, body=ledger, times=1)
    summary = routed_bridge.sync(pull=False)
    assert summary.sent == 1 and not summary.failures, summary.errors
    [row] = sf_org.records(MSG)
    assert row["Status__c"] == "Sent"
    assert len(kudosity_v2_emulator.received("POST", "/v2/sms")) == 2  # refused at au, then sent by spare
    assert len(kudosity_v2_emulator.outbound) == 1  # once


def test_follow_is_refused_plainly_when_routed(routed_bridge: Bridge) -> None:
    with pytest.raises(ConfigError, match=r"with a routing config, set sms\.inbox"):
        Follower(routed_bridge)


def test_a_crash_left_in_sending_is_not_resent_when_an_account_cannot_be_asked(
    routed_bridge: Bridge, sf_org: Any, mesms_emulator: MeSmsEmulator, kudosity_v2_emulator: KudosityV2Emulator
) -> None:
    # ME-SMS has no lookup by key, so no account can be ruled out as the one that took it.
    record = {"To__c": AUSTRALIAN[0], "Body__c": "a", "Status__c": "Sending", "Send_Key__c": "k-1", "Attempts__c": 1}
    sf_org.insert(MSG, [record])
    summary = routed_bridge.sync(pull=False)
    assert summary.ambiguous == 1 and summary.resent == 0
    [row] = sf_org.records(MSG)
    assert row["Status__c"] == "Ambiguous" and row["Error_Code__c"] == "AMBIGUOUS"
    assert row["Error_Message__c"].startswith("not every account of the routing config can be asked")
    assert kudosity_v2_emulator.received("POST") == [] and mesms_emulator.received("POST") == []
