"""Kudosity pushes through the real webhook receiver into the inbox: nothing lost, nothing doubled."""

from __future__ import annotations

import pytest

from smsrelay.inbox import open_inbox
from smsrelay.model import Delivery, OptOut, Reply, Status
from tests.fixtures.kudosity import HOOK_SECRET, wait_for_pushes

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")


def test_v2_pushes_land_once_and_late_sent_never_wins(kudosity_v2, kudosity_v2_emulator, start_receiver, tmp_path):
    inbox = open_inbox(tmp_path / "inbox.db")
    rec = start_receiver({"kudosity": kudosity_v2.provider}, inbox)
    kudosity_v2.provider.register_webhook(rec.url + "/webhooks/kudosity")
    sent = kudosity_v2.send(["+61491570156", "+61491570007", "+61491570009"], "Hi")
    kudosity_v2_emulator.advance(10)
    wait_for_pushes(kudosity_v2_emulator)
    assert all(p.last_status == 200 for p in kudosity_v2_emulator.pushes)
    events = inbox.read_after(0, 1000, include_superseded=True).events
    ids = [e.event_id for e in events]
    assert len(ids) == len(set(ids))  # the redelivered SENT was stored once
    latest = {e.message_id: e for e in inbox.read_after(0, 1000).events if isinstance(e, Delivery)}
    assert {latest[m].status for m in sent.message_ids} == {Status.DELIVERED}
    assert [e.text for e in events if isinstance(e, Reply)] == ["STOP"]
    assert [e.phone for e in events if isinstance(e, OptOut)] == ["+61491570007"]


def test_v2_push_with_a_wrong_token_is_refused_and_retried(kudosity_v2, kudosity_v2_emulator, start_receiver, tmp_path):
    inbox = open_inbox(tmp_path / "inbox.db")
    rec = start_receiver({"kudosity": kudosity_v2.provider}, inbox)
    url = rec.url + "/webhooks/kudosity?token=guessed-" + HOOK_SECRET[:4]
    kudosity_v2_emulator.push(url, json_body={"event_type": "SMS_STATUS", "status": {}})
    import time

    deadline = time.monotonic() + 10
    while kudosity_v2_emulator.pushes[0].last_status is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert kudosity_v2_emulator.pushes[0].last_status == 401
    assert inbox.read_after(0, 10).events == []


def test_v1_signed_callbacks_through_the_receiver(kudosity_v1_factory, kudosity_v1_emulator, start_receiver, tmp_path):
    inbox = open_inbox(tmp_path / "inbox.db")
    placeholder = kudosity_v1_factory()
    rec = start_receiver({"kudosity-v1": placeholder.provider}, inbox)
    hook = rec.url + "/webhooks/kudosity-v1?src=smsrelay"
    client = kudosity_v1_factory(dlr_callback=hook, reply_callback=hook)
    sent = client.send(["+61491570156", "+61491570004"], "Coming? YES/NO")
    kudosity_v1_emulator.advance(10)
    wait_for_pushes(kudosity_v1_emulator, 3)
    assert all(p.last_status == 200 for p in kudosity_v1_emulator.pushes)
    events = inbox.read_after(0, 100).events
    assert {e.message_id for e in events if isinstance(e, Delivery)} == set(sent.message_ids)
    [reply] = [e for e in events if isinstance(e, Reply)]
    assert reply.text == "YES" and reply.in_reply_to == sent.results[1].message_id
