"""bridge.yaml's ``sms:`` given as a routing config: each record goes through its route's account,
and every account's events are written back (docs/salesforce.md, docs/routing.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from smsrelay_salesforce.config import config_from_mapping, load_config
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
    """A bridge whose ``sms:`` routes Thai numbers to ME-SMS and Australian ones to Kudosity V2."""
    data = bridge_mapping(sf_org, sf_tls.ca_path, tmp_path)
    data["send"] = {"country": "AU"}  # no sender here: each account sends from its own
    data["sms"] = {
        "accounts": {
            "th": {"provider": "mesms", "api_key": "${MESMS_KEY}", "sender": "Acme", "base_url": mesms_emulator.url},
            "au": {
                "provider": "kudosity",
                "api": "v2",
                "api_key": "${KUDOSITY_KEY}",
                "sender": SENDER,
                "base_url": kudosity_v2_emulator.url,
                "timeout": 5,
            },
        },
        "routes": [
            {"match": {"country": "TH"}, "accounts": ["th"]},
            {"match": {"country": "AU"}, "accounts": ["au"]},
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
