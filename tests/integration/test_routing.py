"""Routing over the emulators: one mixed batch, one request per account at the floor, and failover only on a refusal."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from smsrelay import AmbiguousRoute, ManualClock, Router, Status, load_routing
from smsrelay.emulators.kaleyra import KaleyraEmulator
from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator
from smsrelay.emulators.mesms import MeSmsEmulator
from smsrelay.emulators.smskit import SmsKitEmulator
from tests.fixtures.kaleyra import KALEYRA_SID
from tests.fixtures.kudosity import SENDER, V2_KEY
from tests.fixtures.smskit import SMSKIT_KEY

THAI = [f"+668123{i:05d}" for i in range(500)]
INDIAN = ["+919876543210", "+919876543211", "+919876543212"]
AUSTRALIAN = ["+61491570156", "+61491570157"]
KALEYRA_SEND = rf"/v1/{KALEYRA_SID}/messages"


@pytest.fixture
def routes(
    tmp_path: Path,
    mesms_emulator: MeSmsEmulator,
    kaleyra_emulator: KaleyraEmulator,
    kudosity_v2_emulator: KudosityV2Emulator,
    smskit_emulator: SmsKitEmulator,
) -> Path:
    """A routing file over the four emulators: TH to ME-SMS, IN to Kaleyra, AU to Kudosity then SMSKit."""
    config = {
        "accounts": {
            "th": {"provider": "mesms", "api_key": "test-key", "sender": "Acme", "base_url": mesms_emulator.url},
            "in": {
                "provider": "kaleyra",
                "api_key": "test-key",
                "sid": KALEYRA_SID,
                "sender": "KLRHXA",
                "base_url": kaleyra_emulator.url,
            },
            "au": {
                "provider": "kudosity",
                "api": "v2",
                "api_key": V2_KEY,
                "sender": SENDER,
                "base_url": kudosity_v2_emulator.url,
                "timeout": 5,
            },
            "phone": {"provider": "smskit", "api_key": SMSKIT_KEY, "base_url": smskit_emulator.url},
        },
        "routes": [
            {"match": {"country": "TH"}, "accounts": ["th"]},
            {"match": {"country": "IN"}, "accounts": ["in"]},
            {"match": {"country": ["AU", "NZ"]}, "accounts": ["au", "phone"]},
        ],
    }
    path = tmp_path / "routes.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


def router(routes: Path, clock: ManualClock) -> Router:
    return Router(load_routing(routes, env={}), clock=clock, env={})


def test_a_mixed_batch_reaches_each_account_at_the_floor_request_count(
    routes: Path,
    clock: ManualClock,
    mesms_emulator: MeSmsEmulator,
    kaleyra_emulator: KaleyraEmulator,
    kudosity_v2_emulator: KudosityV2Emulator,
    smskit_emulator: SmsKitEmulator,
) -> None:
    batch = [INDIAN[0], AUSTRALIAN[0], *THAI[:250], INDIAN[1], AUSTRALIAN[1], *THAI[250:], INDIAN[2]]
    with router(routes, clock) as r:
        routed = r.send(batch, "Your parcel is on its way")
    assert [x.to for x in routed.results] == batch  # the caller's order
    accounts = {"+66": "th", "+91": "in", "+61": "au"}
    assert [x.account for x in routed.results] == [accounts[n[:3]] for n in batch]
    assert routed.all_accepted
    assert all(x.refusals == () for x in routed.results)
    # One shared body: one ME-SMS request for the 500 Thai numbers, one Kaleyra request for the Indian
    # ones, and one Kudosity V2 request per number (V2 takes one recipient per call).
    assert len(mesms_emulator.received("POST", "/api/v2/sms/send")) == 1
    assert len(kaleyra_emulator.received("POST", KALEYRA_SEND)) == 1
    assert len(kudosity_v2_emulator.received("POST", "/v2/sms")) == 2
    assert kudosity_v2_emulator.received("GET") == []  # no lookup: the keys are this send's own
    assert smskit_emulator.received() == []


def test_insufficient_credit_at_kudosity_fails_over_to_smskit_with_the_same_key(
    routes: Path, clock: ManualClock, kudosity_v2_emulator: KudosityV2Emulator, smskit_emulator: SmsKitEmulator
) -> None:
    # Kudosity answers a send it cannot pay for with LEDGER_ERROR (Kudosity API error codes:
    # https://developers.kudosity.com/reference, "LEDGER_ERROR: insufficient funds").
    ledger = json.dumps({"error": {"code": "LEDGER_ERROR", "description": "Insufficient funds"}})
    kudosity_v2_emulator.inject("status", method="POST", path="/v2/sms", status=400, body=ledger, times=100)
    with router(routes, clock) as r:
        routed = r.send(AUSTRALIAN, "Your code is 4711", key="otp-42")
    assert routed.all_accepted
    assert [x.account for x in routed.results] == ["phone", "phone"]
    for item in routed.results:
        [refusal] = item.refusals
        assert refusal.account == "au"
        assert "top up the Kudosity account" in refusal.error
        assert item.result.key is not None and item.result.key.startswith("sr-")
    assert len(smskit_emulator.received("POST", "/api/sms/send")) == 2
    assert kudosity_v2_emulator.outbound == []


def test_a_reset_after_accept_does_not_fail_over_and_is_reported_in_doubt(
    routes: Path, clock: ManualClock, kudosity_v2_emulator: KudosityV2Emulator, smskit_emulator: SmsKitEmulator
) -> None:
    kudosity_v2_emulator.inject("reset_after", method="POST", path="/v2/sms")
    # The lookup by key cannot settle it either: the outcome stays in doubt.
    kudosity_v2_emulator.inject("status", method="GET", path="/v2/sms", status=503, times=1000)
    with router(routes, clock) as r, pytest.raises(AmbiguousRoute) as info:
        r.send(AUSTRALIAN[0], "Hi")
    [item] = info.value.routed.results
    assert item.account == "au"
    assert item.result.in_doubt and item.result.status is Status.UNKNOWN
    assert info.value.keys == [item.result.key]
    assert len(kudosity_v2_emulator.outbound) == 1  # it did arrive, once
    assert smskit_emulator.received() == []  # and was never offered to another account


def test_a_throttle_is_reported_not_failed_over(
    routes: Path, clock: ManualClock, kudosity_v2_emulator: KudosityV2Emulator, smskit_emulator: SmsKitEmulator
) -> None:
    kudosity_v2_emulator.inject("rate_limit", method="POST", path="/v2/sms", retry_after=3600, times=100)
    with router(routes, clock) as r:
        routed = r.send(AUSTRALIAN[0], "Hi")
    [item] = routed.results
    assert item.account == "au"
    assert item.result.status is Status.FAILED and item.result.retry_after is not None
    assert smskit_emulator.received() == []


def closed_port() -> int:
    """A loopback port nobody listens on: a connection there is refused before any byte is sent."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_connection_refused_before_sending_fails_over(
    routes: Path, clock: ManualClock, smskit_emulator: SmsKitEmulator
) -> None:
    config = json.loads(routes.read_text(encoding="utf-8"))
    config["accounts"]["au"].update(base_url=f"http://127.0.0.1:{closed_port()}", retries=1)
    routes.write_text(json.dumps(config), encoding="utf-8")
    with router(routes, clock) as r:
        routed = r.send(AUSTRALIAN[0], "Hi")
    [item] = routed.results
    assert item.result.accepted and item.account == "phone"
    [refusal] = item.refusals
    assert refusal.account == "au" and "not sent" in refusal.error
    assert len(smskit_emulator.received("POST", "/api/sms/send")) == 1


def test_a_rerun_with_a_journal_keeps_each_key_with_the_account_that_took_it(
    routes: Path,
    clock: ManualClock,
    tmp_path: Path,
    kudosity_v2_emulator: KudosityV2Emulator,
    smskit_emulator: SmsKitEmulator,
) -> None:
    journal = str(tmp_path / "journal.db")
    ledger = json.dumps({"error": {"code": "LEDGER_ERROR", "description": "Insufficient funds"}})
    kudosity_v2_emulator.inject("status", method="POST", path="/v2/sms", status=400, body=ledger, times=100)
    with Router(load_routing(routes, env={}), clock=clock, env={}, journal=journal) as r:
        first = r.send(AUSTRALIAN[0], "Your code is 4711", key="otp-43")
    assert first.results[0].account == "phone"
    kudosity_v2_emulator.reset()  # topped up: Kudosity would take it now
    with Router(load_routing(routes, env={}), clock=clock, env={}, journal=journal) as r:
        again = r.send(AUSTRALIAN[0], "Your code is 4711", key="otp-43")
    [item] = again.results
    assert item.account == "phone" and item.reason.startswith("pinned")
    assert item.result.accepted and item.result.key == first.results[0].result.key
    assert kudosity_v2_emulator.outbound == []  # never sent twice, from two accounts
    assert len(smskit_emulator.received("POST", "/api/sms/send")) == 1


def test_events_from_every_account_come_merged_each_naming_its_account(
    routes: Path,
    clock: ManualClock,
    mesms_emulator: MeSmsEmulator,
    kudosity_v2_emulator: KudosityV2Emulator,
) -> None:
    with router(routes, clock) as r:
        sent = r.send([THAI[0], AUSTRALIAN[0]], "Your parcel is on its way")
        mesms_emulator.advance(120)  # the shared clock: both emulators' deliveries fall due
        kudosity_v2_emulator.advance(0)
        page = r.events()
        final = {(e.account, e.event.phone) for e in page if e.event.kind == "delivery" and e.event.final}
        assert final == {("th", THAI[0]), ("au", AUSTRALIAN[0])}
        assert [e.event.occurred_at for e in page] == sorted(e.event.occurred_at for e in page)
        assert set(page.cursors) == {"th", "au", "phone"}  # Kaleyra lists no events: read by id
        assert len(r.events(page.cursors)) == 0  # from the cursors on, nothing new
    assert sent.all_accepted


def test_an_ambiguous_route_carries_the_whole_send_as_every_ambiguous_send_does(
    routes: Path, clock: ManualClock, kudosity_v2_emulator: KudosityV2Emulator, mesms_emulator: MeSmsEmulator
) -> None:
    kudosity_v2_emulator.inject("reset_after", method="POST", path="/v2/sms")
    kudosity_v2_emulator.inject("status", method="GET", path="/v2/sms", status=503, times=1000)
    with router(routes, clock) as r, pytest.raises(AmbiguousRoute) as info:
        r.send([THAI[0], AUSTRALIAN[0]], "Hi")
    result = info.value.result
    assert result is not None and result.provider == "routing"
    assert [(x.to, x.status) for x in result.results] == [(THAI[0], Status.QUEUED), (AUSTRALIAN[0], Status.UNKNOWN)]
    assert result.results[1].in_doubt
