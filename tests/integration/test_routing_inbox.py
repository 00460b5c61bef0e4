"""A routing file with an inbox, over the emulators and a real receiver process.

One routed send to Thai, Indian, Australian and New Zealand numbers; then Kudosity and
SMSKit push to their accounts' routes of ``smsrelay webhooks serve --config routes.yaml``,
ME-SMS is polled and Kaleyra is asked the status of the sends it watches; ``Router.events``
reads them as one feed, each event once, each naming its account.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from smsrelay import ConfigError, ManualClock, Router, load_routing
from smsrelay.emulators.kaleyra import KaleyraEmulator
from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator
from smsrelay.emulators.mesms import MeSmsEmulator
from smsrelay.emulators.smskit import SmsKitEmulator
from tests.fixtures.kaleyra import KALEYRA_SECRET, KALEYRA_SID
from tests.fixtures.kudosity import HOOK_SECRET, SENDER, V2_KEY, wait_for_pushes
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
    """``smsrelay webhooks serve --config routes.yaml`` as a process; its inbox is the routing file's."""
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
        assert health.json()["routes"] == ["au", "in", "phone", "th"]  # one route per account
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


def test_two_accounts_of_one_provider_cannot_share_an_inbox(tmp_path: Path, clock: ManualClock) -> None:
    config = {
        "accounts": {"a": {"provider": "sandbox"}, "b": {"provider": "sandbox"}},
        "routes": [{"accounts": ["a", "b"]}],
        "inbox": str(tmp_path / "inbox.db"),
    }
    path = tmp_path / "routes.yaml"
    path.write_text(json.dumps(config, indent=1), encoding="utf-8")
    # In the file: refused as it loads, naming the file, the line and the key.
    with pytest.raises(ConfigError) as info:
        load_routing(path, env={})
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if '"inbox"' in text)
    assert (info.value.file, info.value.field, info.value.line) == (str(path), "inbox", line)
    assert "'a' and 'b' are both sandbox" in str(info.value)
    # Given to the router: sending works, reading events is refused.
    del config["inbox"]
    path.write_text(json.dumps(config), encoding="utf-8")
    with Router(load_routing(path, env={}), clock=clock, env={}, inbox=str(tmp_path / "inbox.db")) as router:
        assert router.send("+61491570156", "hi").all_accepted
        with pytest.raises(ConfigError, match="'a' and 'b' are both sandbox"):
            router.events()
