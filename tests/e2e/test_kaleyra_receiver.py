"""Kaleyra callbacks through the real webhook receiver into the inbox: authenticated, once each."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from smsrelay import Client
from smsrelay.emulators.kaleyra import KaleyraEmulator
from smsrelay.inbox import open_inbox
from smsrelay.model import Delivery, OptOut, Reply, Status
from tests.fixtures.kaleyra import KALEYRA_SECRET

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")


def wait_for_pushes(emu: KaleyraEmulator, n: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if len(emu.pushes) >= n and all(p.delivered or p.last_status == 401 for p in emu.pushes):
            return
        time.sleep(0.02)
    raise AssertionError(f"pushes not settled: {[(p.attempts, p.last_status) for p in emu.pushes]}")


def test_dlrs_and_replies_land_once_and_late_sent_never_wins(
    kaleyra_client_factory: Callable[..., Client],
    kaleyra_emulator: KaleyraEmulator,
    start_receiver: Callable[..., Any],
    tmp_path: Path,
) -> None:
    inbox = open_inbox(tmp_path / "inbox.db")
    rec = start_receiver({"kaleyra": kaleyra_client_factory().provider}, inbox)
    hook = rec.url + "/webhooks/kaleyra"
    kaleyra_emulator.configure_inbound(hook, {"X-Smsrelay-Token": KALEYRA_SECRET})
    client = kaleyra_client_factory(callback_url=hook)
    sent = client.send(["+919876510009", "+919876510007", "+919876510001"], "Hi")
    kaleyra_emulator.advance(10)
    wait_for_pushes(kaleyra_emulator, 8)  # 3 Sent, 3 final, 1 late Sent, 1 reply
    assert {p.last_status for p in kaleyra_emulator.pushes} == {200}
    events = inbox.read_after(0, 1000, include_superseded=True).events
    assert len({e.event_id for e in events}) == len(events)
    latest = {e.message_id: e for e in inbox.read_after(0, 1000).events if isinstance(e, Delivery)}
    late, stop, failed = sent.message_ids
    assert (latest[late].status, latest[stop].status) == (Status.DELIVERED, Status.DELIVERED)
    assert (latest[failed].status, latest[failed].reason) == (Status.FAILED, "ABSENT-SUB")
    assert [e.text for e in events if isinstance(e, Reply)] == ["STOP"]
    assert [e.phone for e in events if isinstance(e, OptOut)] == ["+919876510007"]


def test_a_callback_without_the_token_is_refused(
    kaleyra: Client, kaleyra_emulator: KaleyraEmulator, start_receiver: Callable[..., Any], tmp_path: Path
) -> None:
    inbox = open_inbox(tmp_path / "inbox.db")
    rec = start_receiver({"kaleyra": kaleyra.provider}, inbox)
    kaleyra_emulator.push(rec.url + "/webhooks/kaleyra", json_body={"id": "x:1", "status": "Delivered"})
    wait_for_pushes(kaleyra_emulator, 1)
    assert kaleyra_emulator.pushes[0].last_status == 401
    assert inbox.read_after(0, 10).events == []
