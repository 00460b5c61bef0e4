"""A routing file with an inbox, over the emulators and a real receiver process.

One routed send to Thai, Indian, Australian and New Zealand numbers; then Kudosity and
SMSKit push to their accounts' routes of ``smsrelay webhooks serve --config routes.yaml``,
ME-SMS is polled and Kaleyra is asked the status of the sends it watches; ``Router.events``
reads them as one feed, each event once, each naming its account. Two Kudosity accounts
(AU and NZ, two emulators) push to their own routes of one inbox and are told apart by
the route each event came in on; an inbox from before events named their account is
migrated in place.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from smsrelay import ManualClock, Router, load_routing, routing_from_mapping
from smsrelay.emulators.kaleyra import KaleyraEmulator
from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator
from smsrelay.emulators.mesms import MeSmsEmulator
from smsrelay.emulators.smskit import SmsKitEmulator
from tests.fixtures.kaleyra import KALEYRA_SECRET, KALEYRA_SID
from tests.fixtures.kudosity import HOOK_SECRET, SENDER, V2_KEY, report_and_push, wait_for_pushes
from tests.fixtures.smskit import SMSKIT_KEY, SMSKIT_WEBHOOK_SECRET

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

THAI, INDIAN, AUSTRALIAN, KIWI = "+66812345678", "+919876543210", "+61491570156", "+64211234567"


@pytest.fixture
def routes(
    tmp_path: Path,
    mesms_emulator: MeSmsEmulator,
    kaleyra_emulator: KaleyraEmulator,
    kudosity_v2_emulator: KudosityV2Emulator,
    smskit_emulator: SmsKitEmulator,
) -> Path:
    config = {
        "inbox": str(tmp_path / "inbox.db"),
        "accounts": {
            "th": {"provider": "mesms", "api_key": "test-key", "sender": "Acme", "base_url": mesms_emulator.url},
            "in": {
                "provider": "kaleyra",
                "api_key": "test-key",
                "sid": KALEYRA_SID,
                "sender": "KLRHXA",
                "webhook_secret": KALEYRA_SECRET,
                "base_url": kaleyra_emulator.url,
            },
            "au": {
                "provider": "kudosity",
                "api": "v2",
                "api_key": V2_KEY,
                "sender": SENDER,
                "webhook_secret": HOOK_SECRET,
                "base_url": kudosity_v2_emulator.url,
            },
            "phone": {
                "provider": "smskit",
                "api_key": SMSKIT_KEY,
                "webhook_secret": SMSKIT_WEBHOOK_SECRET,
                # The emulator signs on the test's manual clock, the receiver checks on the real one.
                "webhook_tolerance": 10**10,
                "base_url": smskit_emulator.url,
            },
        },
        "routes": [
            {"match": {"country": "TH"}, "accounts": ["th"]},
            {"match": {"country": "IN"}, "accounts": ["in"]},
            {"match": {"country": "AU"}, "accounts": ["au"]},
            {"accounts": ["phone"]},
        ],
    }
    path = tmp_path / "routes.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


@pytest.fixture
def receiver(routes: Path, tmp_path: Path) -> Iterator[str]:
    with serving(routes, tmp_path) as url:
        yield url


@contextmanager
def serving(routes: Path, tmp_path: Path) -> Iterator[str]:
    """``smsrelay webhooks serve --config routes.yaml`` as a process; its inbox is the routing file's."""
    accounts = sorted(json.loads(routes.read_text())["accounts"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "smsrelay", "webhooks", "serve", "--config", str(routes), "--port", str(port)]
    log = open(tmp_path / "receiver.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([*cmd, "--compact-interval", "0"], stdout=log, stderr=log, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "receiver.log").read_text()
            try:
                health = requests.get(url + "/healthz", timeout=1)
                if health.status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "the receiver did not start"
            time.sleep(0.05)
        assert health.json()["routes"] == accounts  # one route per account
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_pushed_polled_and_watched_events_of_every_account_come_once_each_naming_it(
    routes: Path,
    receiver: str,
    clock: ManualClock,
    mesms_emulator: MeSmsEmulator,
    kaleyra_emulator: KaleyraEmulator,
    kudosity_v2_emulator: KudosityV2Emulator,
    smskit_emulator: SmsKitEmulator,
) -> None:
    with Router(load_routing(routes, env={}), clock=clock, env={}) as router:
        assert router.inbox is not None  # the routing file's inbox: the receiver's
        router.clients["au"].provider.register_webhook(receiver + "/webhooks/au")
        router.clients["phone"].provider.register_webhook(receiver + "/webhooks/phone")
        sent = router.send([THAI, INDIAN, AUSTRALIAN, KIWI], "Your parcel is on its way")
        assert [r.account for r in sent.results] == ["th", "in", "au", "phone"]
        assert sent.all_accepted
        for _ in range(6):  # one shared clock: every emulator's reports fall due
            mesms_emulator.advance(30)
            for emu in (kaleyra_emulator, kudosity_v2_emulator, smskit_emulator):
                emu.tick()
        wait_for_pushes(kudosity_v2_emulator)
        wait_for_pushes(smskit_emulator)
        assert {p.last_status for p in [*kudosity_v2_emulator.pushes, *smskit_emulator.pushes]} == {200}

        first = router.events()
        finals = {(e.account, e.event.phone) for e in first if e.event.kind == "delivery" and e.event.final}
        assert finals == {("th", THAI), ("in", INDIAN), ("au", AUSTRALIAN), ("phone", KIWI)}
        assert set(first.cursors) == {"th", "in", "au", "phone"}

        # A reply pushed after the first read comes in the second, and nothing of the first again.
        kudosity_v2_emulator.inject_reply(AUSTRALIAN, "Thanks")
        wait_for_pushes(kudosity_v2_emulator)
        second = router.events(first.cursors)
        assert [(e.account, e.event.kind) for e in second] == [("au", "reply")]
        ids = [e.event.event_id for e in [*first, *second]]
        assert len(ids) == len(set(ids))  # pushed and polled (Kudosity does both): once each
        assert len(router.events(second.cursors)) == 0
        # The Kaleyra send is settled, so its status is no longer asked for.
        polls = len(kaleyra_emulator.received("GET"))
        router.events(second.cursors)
        assert len(kaleyra_emulator.received("GET")) == polls


def test_two_kudosity_accounts_share_one_inbox_each_event_naming_its_account(
    tmp_path: Path, clock: ManualClock, kudosity_v2_emulator: KudosityV2Emulator
) -> None:
    # Two Kudosity accounts (AU and NZ): two emulators, each with its own key, pushing to its own route.
    nz_key = "kv2-nz-key-9876543210"
    nz_emulator = KudosityV2Emulator(clock=clock, api_keys=(nz_key,), lag=2.0).start()
    try:
        account = {"provider": "kudosity", "api": "v2", "sender": SENDER, "webhook_secret": HOOK_SECRET}
        config = {
            "inbox": str(tmp_path / "inbox.db"),
            "accounts": {
                "au": {**account, "api_key": V2_KEY, "base_url": kudosity_v2_emulator.url},
                "nz": {**account, "api_key": nz_key, "base_url": nz_emulator.url},
            },
            "routes": [{"match": {"country": "NZ"}, "accounts": ["nz"]}, {"accounts": ["au"]}],
        }
        routes = tmp_path / "routes.yaml"
        routes.write_text(json.dumps(config), encoding="utf-8")
        with serving(routes, tmp_path) as url, Router(load_routing(routes, env={}), clock=clock, env={}) as router:
            for name in ("au", "nz"):
                router.clients[name].provider.register_webhook(f"{url}/webhooks/{name}")
            sent = router.send([AUSTRALIAN, KIWI], "Your parcel is on its way")
            assert [r.account for r in sent.results] == ["au", "nz"] and sent.all_accepted
            report_and_push(clock, kudosity_v2_emulator, nz_emulator)

            # Pushed to each route and polled from each account: every event once, naming its account.
            first = router.events()
            finals = {(e.account, e.event.phone) for e in first if e.event.kind == "delivery" and e.event.final}
            assert finals == {("au", AUSTRALIAN), ("nz", KIWI)}
            assert all(e.event.phone == {"au": AUSTRALIAN, "nz": KIWI}[e.account] for e in first)
            assert set(first.cursors) == {"au", "nz"}
            nz_emulator.inject_reply(KIWI, "Thanks")
            kudosity_v2_emulator.inject_reply(AUSTRALIAN, "Cheers")
            for emu in (kudosity_v2_emulator, nz_emulator):
                wait_for_pushes(emu)
            second = router.events(first.cursors)
            assert sorted((e.account, e.event.text) for e in second if e.event.kind == "reply") == [
                ("au", "Cheers"),
                ("nz", "Thanks"),
            ]
            ids = [e.event.event_id for e in [*first, *second]]
            assert len(ids) == len(set(ids))
            assert len(router.events(second.cursors)) == 0
    finally:
        nz_emulator.stop()


# The events table as inboxes created it before events named their account.
OLD_EVENTS_DDL = """CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, provider TEXT NOT NULL,
    kind TEXT NOT NULL, message_id TEXT, received_at REAL NOT NULL,
    superseded INTEGER NOT NULL DEFAULT 0, data TEXT NOT NULL)"""


def test_an_inbox_from_before_accounts_is_migrated_and_its_events_named_by_provider(
    tmp_path: Path,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
    mesms_emulator: MeSmsEmulator,
    kudosity_v2_emulator: KudosityV2Emulator,
) -> None:
    from smsrelay.inbox import open_inbox
    from smsrelay.model import Reply

    # Events a receiver stored before events named their account: one of ME-SMS, one of Kudosity.
    old = [
        Reply("old-mesms", "mesms", THAI, clock.now(), "mo1", text="hi"),
        Reply("old-kudosity", "kudosity", AUSTRALIAN, clock.now(), "mo2", text="hi"),
    ]
    with open_inbox(":memory:") as scratch:
        scratch.append(old)
        with scratch.transaction() as execute:
            rows = execute("SELECT event_id, provider, kind, message_id, received_at, data FROM events", ()).fetchall()
    path = tmp_path / "inbox.db"
    with sqlite3.connect(path) as conn:
        conn.execute(OLD_EVENTS_DDL)
        conn.executemany("INSERT INTO events VALUES (NULL, ?, ?, ?, ?, ?, 0, ?)", rows)
    conn.close()
    config = {
        "accounts": {
            "th": {"provider": "mesms", "api_key": "test-key", "sender": "Acme", "base_url": mesms_emulator.url},
            "au": {"provider": "kudosity", "api_key": V2_KEY, "sender": SENDER, "base_url": kudosity_v2_emulator.url},
            "nz": {"provider": "kudosity", "api_key": V2_KEY, "sender": SENDER, "base_url": kudosity_v2_emulator.url},
        },
        "routes": [{"accounts": ["th"]}],
    }
    with Router(routing_from_mapping(config, env={}), clock=clock, env={}, inbox=str(path)) as router:
        assert router.inbox is not None
        # The emulators hold nothing to poll: the page is what the old inbox held.
        with caplog.at_level(logging.WARNING, logger="smsrelay.routing"):
            page = router.events()
        # ME-SMS has one account: its old event is that account's. Kudosity has two: not guessed.
        assert [(e.account, e.event.event_id) for e in page] == [("th", "old-mesms")]
        assert "1 event(s) of the inbox name no account" in caplog.text
        # New events name their account, old rows stay readable.
        router.inbox.append([Reply("new", "kudosity", KIWI, clock.now(), "mo3", text="hi")], account="nz")
        assert [(e.account, e.event.event_id) for e in router.events(page.cursors)] == [("nz", "new")]


def test_two_kaleyra_accounts_each_ask_for_their_own_sends(
    tmp_path: Path, clock: ManualClock, kaleyra_emulator: KaleyraEmulator, start_emulator: Any
) -> None:
    # Kaleyra reports by message id: each account asks only for the sends it made, from one watch list.
    other_sid = "HXAP0000000001"
    other = start_emulator(KaleyraEmulator, clock=clock, sids=(other_sid,))
    account = {"provider": "kaleyra", "api_key": "test-key", "sender": "KLRHXA"}
    config = {
        "accounts": {
            "in": {**account, "sid": KALEYRA_SID, "base_url": kaleyra_emulator.url},
            "in2": {**account, "sid": other_sid, "base_url": other.url},
        },
        "routes": [{"match": {"prefix": "+9198"}, "accounts": ["in"]}, {"accounts": ["in2"]}],
        "inbox": str(tmp_path / "inbox.db"),
    }
    second = "+919123456789"
    with Router(routing_from_mapping(config, env={}), clock=clock, env={}) as router:
        sent = router.send([INDIAN, second], "Your parcel is on its way")
        assert [r.account for r in sent.results] == ["in", "in2"] and sent.all_accepted
        for _ in range(6):
            kaleyra_emulator.tick()
            other.tick()
            clock.advance(30)
        page = router.events()
        finals = {(e.account, e.event.phone) for e in page if e.event.kind == "delivery" and e.event.final}
        assert finals == {("in", INDIAN), ("in2", second)}
        # Neither emulator was asked about the other account's message.
        ids = [r.result.message_id or "" for r in sent.results]
        for emu, foreign in ((kaleyra_emulator, ids[1]), (other, ids[0])):
            asked_here = [r.params.get("message_ids", "") for r in emu.received("GET")]
            assert asked_here and not [q for q in asked_here if foreign in q.split(",")]
        # Settled, each is asked for no more, by either account.
        asked = [len(e.received("GET")) for e in (kaleyra_emulator, other)]
        assert len(router.events(page.cursors)) == 0
        assert [len(e.received("GET")) for e in (kaleyra_emulator, other)] == asked
