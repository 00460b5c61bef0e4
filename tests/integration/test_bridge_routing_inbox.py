"""The bridge with ``sms:`` a routing config and an inbox, on the org emulator: sync, ``sync
--follow`` and backfill across accounts, each event written back once (docs/salesforce.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from smsrelay_salesforce.config import config_from_mapping
from smsrelay_salesforce.follow import Follower
from smsrelay_salesforce.sync import Bridge

from smsrelay import ManualClock
from smsrelay.emulators.kaleyra import KaleyraEmulator
from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator
from smsrelay.emulators.mesms import MeSmsEmulator
from smsrelay.receiver import route_for
from tests.fixtures.bridge import bridge_mapping
from tests.fixtures.kaleyra import KALEYRA_SECRET, KALEYRA_SID
from tests.fixtures.kudosity import HOOK_SECRET, SENDER, V2_KEY, report_and_push, wait_for_pushes

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

MSG = "SMS_Message__c"
THAI, INDIAN, AUSTRALIAN = "+66812340140", "+919876543210", "+61491570140"
NUMBERS = [THAI, INDIAN, AUSTRALIAN]


def routed(
    sf_org: Any,
    sf_tls: Any,
    tmp_path: Path,
    mesms: MeSmsEmulator,
    kaleyra: KaleyraEmulator,
    kudosity: KudosityV2Emulator,
    *,
    inbox: bool = True,
) -> dict[str, Any]:
    """bridge.yaml as a mapping: Thai numbers to ME-SMS (polled), Indian to Kaleyra (asked by id),
    Australian to Kudosity V2 (pushed, and polled too)."""
    data = bridge_mapping(sf_org, sf_tls.ca_path, tmp_path)
    data["send"] = {"country": "AU"}
    data["sms"] = {
        "accounts": {
            "th": {"provider": "mesms", "api_key": "test-key", "sender": "Acme", "base_url": mesms.url},
            "in": {
                "provider": "kaleyra",
                "api_key": "test-key",
                "sid": KALEYRA_SID,
                "sender": "KLRHXA",
                "webhook_secret": KALEYRA_SECRET,
                "base_url": kaleyra.url,
            },
            "au": {
                "provider": "kudosity",
                "api": "v2",
                "api_key": V2_KEY,
                "sender": SENDER,
                "webhook_secret": HOOK_SECRET,
                "base_url": kudosity.url,
                "timeout": 5,
            },
        },
        "routes": [
            {"match": {"country": "TH"}, "accounts": ["th"]},
            {"match": {"country": "IN"}, "accounts": ["in"]},
            {"accounts": ["au"]},
        ],
    }
    if inbox:
        data["sms"]["inbox"] = str(tmp_path / "inbox.db")
    return data


def serve_inbox(bridge: Bridge, start_receiver: Any, webhooks: tuple[str, ...]) -> Any:
    """Start the receiver serving a route per account into the bridge's inbox; point ``webhooks``' providers at it."""
    router, routing = bridge.router, bridge.config.routing
    assert router is not None and router.inbox is not None and routing is not None
    receiver = start_receiver([route_for(s, name) for name, s in routing.accounts.items()], router.inbox)
    for name in webhooks:
        router.clients[name].provider.register_webhook(f"{receiver.url}/webhooks/{name}")
    return router


@pytest.fixture
def bridge(
    sf_org: Any,
    sf_tls: Any,
    tmp_path: Path,
    clock: ManualClock,
    mesms_emulator: MeSmsEmulator,
    kaleyra_emulator: KaleyraEmulator,
    kudosity_v2_emulator: KudosityV2Emulator,
    start_receiver: Any,
) -> Any:
    """The routed bridge, and the receiver serving a route per account into the routing config's inbox."""
    data = routed(sf_org, sf_tls, tmp_path, mesms_emulator, kaleyra_emulator, kudosity_v2_emulator)
    env = {"SF_TEST_TOKEN": sf_org.issue_token()}
    bridge = Bridge(config_from_mapping(data, env=env), clock=clock, bulk_poll=0.01)
    serve_inbox(bridge, start_receiver, ("au",))
    yield bridge
    bridge.close()


def send_and_report(
    bridge: Bridge,
    sf_org: Any,
    mesms: MeSmsEmulator,
    kaleyra: KaleyraEmulator,
    kudosity: KudosityV2Emulator,
) -> None:
    sf_org.insert(MSG, [{"To__c": n, "Body__c": "Your parcel is on its way", "Status__c": "Queued"} for n in NUMBERS])
    summary = bridge.sync(pull=False)
    assert summary.sent_by == {"th": 1, "in": 1, "au": 1}, summary.errors
    for _ in range(6):  # the shared clock: every emulator's reports fall due
        mesms.advance(30)
        kaleyra.tick()
        kudosity.tick()
    wait_for_pushes(kudosity)
    assert {p.last_status for p in kudosity.pushes} == {200}


def statuses(sf_org: Any) -> dict[str, str]:
    return {r["To__c"]: r["Delivery_Status__c"] for r in sf_org.records(MSG, "Direction__c = 'Outbound'")}


def test_sync_writes_every_accounts_pushed_polled_and_watched_reports_once(
    bridge: Bridge,
    sf_org: Any,
    mesms_emulator: MeSmsEmulator,
    kaleyra_emulator: KaleyraEmulator,
    kudosity_v2_emulator: KudosityV2Emulator,
) -> None:
    send_and_report(bridge, sf_org, mesms_emulator, kaleyra_emulator, kudosity_v2_emulator)
    summary = bridge.sync()
    assert not summary.failures, summary.errors
    assert statuses(sf_org) == dict.fromkeys(NUMBERS, "Delivered")
    # One cursor over the inbox, where every account's events meet; read on, nothing is new.
    assert bridge.state.cursor("events") is not None and bridge.state.cursor("events:au") is None
    again = bridge.sync()
    assert again.events == 0 and again.updated == 0


def test_follow_writes_every_accounts_events_and_commits_its_cursor(
    bridge: Bridge,
    sf_org: Any,
    mesms_emulator: MeSmsEmulator,
    kaleyra_emulator: KaleyraEmulator,
    kudosity_v2_emulator: KudosityV2Emulator,
) -> None:
    send_and_report(bridge, sf_org, mesms_emulator, kaleyra_emulator, kudosity_v2_emulator)
    follower = Follower(bridge, cursor="follow-test")
    first = follower.batch()
    while (more := follower.batch()).events:  # by size: the rest, if the first batch filled up
        first.events += more.events
    assert first.events > 0 and not first.errors
    assert statuses(sf_org) == dict.fromkeys(NUMBERS, "Delivered")
    assert bridge.router is not None and bridge.router.inbox is not None
    assert bridge.router.inbox.position("follow-test") > 0
    assert follower.batch().events == 0  # each event once


def test_follow_without_an_inbox_is_refused_naming_sms_inbox(
    sf_org: Any,
    sf_tls: Any,
    tmp_path: Path,
    clock: ManualClock,
    mesms_emulator: MeSmsEmulator,
    kaleyra_emulator: KaleyraEmulator,
    kudosity_v2_emulator: KudosityV2Emulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from smsrelay import ConfigError

    monkeypatch.delenv("SMSRELAY_INBOX", raising=False)
    data = routed(sf_org, sf_tls, tmp_path, mesms_emulator, kaleyra_emulator, kudosity_v2_emulator, inbox=False)
    config = config_from_mapping(data, env={"SF_TEST_TOKEN": sf_org.issue_token()})
    with Bridge(config, clock=clock) as bridge, pytest.raises(ConfigError) as info:
        Follower(bridge)
    assert info.value.field == "sms.inbox" and "webhooks serve --config" in str(info.value)


def test_backfill_asks_each_message_of_the_account_that_sent_it(
    bridge: Bridge,
    sf_org: Any,
    clock: ManualClock,
    mesms_emulator: MeSmsEmulator,
    kaleyra_emulator: KaleyraEmulator,
    kudosity_v2_emulator: KudosityV2Emulator,
) -> None:
    from datetime import timedelta

    send_and_report(bridge, sf_org, mesms_emulator, kaleyra_emulator, kudosity_v2_emulator)
    emulators = (mesms_emulator, kaleyra_emulator, kudosity_v2_emulator)
    before = [len(e.received("GET")) for e in emulators]
    summary = bridge.backfill(clock.now() - timedelta(days=1))
    assert not summary.errors and summary.events == 3
    # No pull ran: the reports came from the lookups, each asked of the account that sent it.
    assert statuses(sf_org) == dict.fromkeys(NUMBERS, "Delivered")
    assert [len(e.received("GET")) - n for e, n in zip(emulators, before, strict=True)] == [1, 1, 1]


def test_two_kudosity_accounts_share_sms_inbox_each_report_written_once(
    sf_org: Any,
    sf_tls: Any,
    tmp_path: Path,
    clock: ManualClock,
    mesms_emulator: MeSmsEmulator,
    kaleyra_emulator: KaleyraEmulator,
    kudosity_v2_emulator: KudosityV2Emulator,
    start_receiver: Any,
) -> None:
    # AU and NZ, two Kudosity accounts (two emulators), each pushing to its own route of sms.inbox.
    kiwi, nz_key = "+64211230140", "kv2-nz-key-9876543210"
    nz_emulator = KudosityV2Emulator(clock=clock, api_keys=(nz_key,), lag=2.0).start()
    try:
        data = routed(sf_org, sf_tls, tmp_path, mesms_emulator, kaleyra_emulator, kudosity_v2_emulator)
        sms = data["sms"]
        sms["accounts"]["nz"] = {**sms["accounts"]["au"], "api_key": nz_key, "base_url": nz_emulator.url}
        sms["routes"].insert(0, {"match": {"country": "NZ"}, "accounts": ["nz"]})
        with Bridge(config_from_mapping(data, env={"SF_TEST_TOKEN": sf_org.issue_token()}), clock=clock) as bridge:
            router = serve_inbox(bridge, start_receiver, ("au", "nz"))
            sf_org.insert(
                MSG, [{"To__c": n, "Body__c": "Your parcel", "Status__c": "Queued"} for n in (AUSTRALIAN, kiwi)]
            )
            assert bridge.sync(pull=False).sent_by == {"au": 1, "nz": 1}
            report_and_push(clock, kudosity_v2_emulator, nz_emulator)
            summary = bridge.sync()
            assert not summary.failures, summary.errors
            assert statuses(sf_org) == {AUSTRALIAN: "Delivered", kiwi: "Delivered"}
            # Each event stored once, naming the account whose route (or poll) brought it.
            entries = router.inbox.read_after(0, 1000).entries
            assert {(e.account, e.event.phone) for e in entries} == {("au", AUSTRALIAN), ("nz", kiwi)}
            assert len({e.event.event_id for e in entries}) == len(entries)
            assert bridge.sync().updated == 0
    finally:
        nz_emulator.stop()
