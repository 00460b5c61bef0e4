"""Real provider pushes into the receiver: each emulator registers, sends, and pushes over loopback."""

from __future__ import annotations

import time

import pytest
import requests

from smsrelay.inbox import open_inbox
from smsrelay.model import Status
from smsrelay.receiver import Route


def wait_for(condition, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for the pushes")


def settled(emu) -> bool:
    return bool(emu.pushes) and all(p.delivered or p.attempts >= emu.push_attempts for p in emu.pushes)


def summary(inbox):
    page = inbox.read("test", limit=1000)
    last: dict[str, Status] = {}
    replies = []
    for e in page:
        if e.kind == "delivery":
            last[e.phone[-4:]] = e.status
        elif e.kind == "reply":
            replies.append((e.phone[-4:], e.text))
    return last, replies, page


@pytest.fixture
def inbox(tmp_path):
    box = open_inbox(tmp_path / "inbox.db")
    yield box
    box.close()


def test_kudosity_v2_pushes_land_once_and_never_regress(kudosity_v2, kudosity_v2_emulator, start_receiver, inbox):
    rec = start_receiver([Route("kudosity", (kudosity_v2.provider,))], inbox)
    hook = kudosity_v2.provider.register_webhook(rec.url + "/webhooks/kudosity")
    assert hook.events
    kudosity_v2.send(["+61491570004", "+61491570009", "+61491570001"], "Reply YES or NO")
    kudosity_v2_emulator.advance(30)
    wait_for(lambda: settled(kudosity_v2_emulator))
    assert all(p.last_status == 200 for p in kudosity_v2_emulator.pushes)
    last, replies, page = summary(inbox)
    # The duplicate SENT pushed after DELIVERED is stored as superseded, never shown.
    assert last == {"0004": Status.DELIVERED, "0009": Status.DELIVERED, "0001": Status.FAILED}
    assert ("0004", "YES") in replies
    ids = [e.event_id for e in page]
    assert len(ids) == len(set(ids))
    # A forged push (no token) is refused, and an unsigned retry of a real one too.
    forged = requests.post(rec.url + "/webhooks/kudosity", data=kudosity_v2_emulator.pushes[0].body, timeout=10)
    assert forged.status_code == 401


def test_kudosity_v1_signed_callbacks(kudosity_v1, kudosity_v1_emulator, start_receiver, inbox):
    rec = start_receiver([Route("kudosity-v1", (kudosity_v1.provider,))], inbox)
    url = rec.url + "/webhooks/kudosity-v1"
    from smsrelay.model import Message

    kudosity_v1.send_many(
        Message("Reply YES", options={"dlr_callback": url, "reply_callback": url}),
        ["+61491570004", "+61491570156"],
    )
    kudosity_v1_emulator.advance(60)
    if not kudosity_v1_emulator.pushes:
        pytest.skip("the Kudosity V1 emulator pushes no callbacks for per-send callback URLs")
    wait_for(lambda: settled(kudosity_v1_emulator))
    assert all(p.last_status == 200 for p in kudosity_v1_emulator.pushes)
    last, replies, _ = summary(inbox)
    assert last.get("0156") == Status.DELIVERED
    assert ("0004", "YES") in replies


def test_smskit_signed_pushes(smskit_client, smskit_emulator, start_receiver, inbox):
    rec = start_receiver([Route("smskit", (smskit_client.provider,))], inbox)
    smskit_client.provider.register_webhook(rec.url + "/webhooks/smskit")
    smskit_client.send(["+61491570004", "+61491570001", "+61491570156"], "Reply YES")
    for _ in range(6):
        smskit_emulator.advance(30)
    wait_for(lambda: settled(smskit_emulator))
    assert all(p.last_status == 200 for p in smskit_emulator.pushes)
    last, replies, _ = summary(inbox)
    assert last.get("0156") == Status.DELIVERED
    assert ("0004", "YES") in replies
    assert last.get("0001") == Status.FAILED
    # A replayed push with a bad signature is refused.
    push = smskit_emulator.pushes[0]
    headers = {**push.headers, "X-SMSKit-Signature": "0" * 64}
    assert requests.post(rec.url + "/webhooks/smskit", data=push.body, headers=headers, timeout=10).status_code == 401


def test_kaleyra_dlr_and_mo_callbacks_by_secret_header(kaleyra_client_factory, kaleyra_emulator, start_receiver, inbox):
    from tests.fixtures.kaleyra import KALEYRA_SECRET

    probe = kaleyra_client_factory()
    rec = start_receiver([Route("kaleyra", (probe.provider,))], inbox)
    client = kaleyra_client_factory(callback_url=rec.url + "/webhooks/kaleyra/dlr")
    client.send(["+61491570156", "+61491570001"], "Hello")
    kaleyra_emulator.configure_inbound(rec.url + "/webhooks/kaleyra/mo", headers={"X-Smsrelay-Token": KALEYRA_SECRET})
    for _ in range(10):
        kaleyra_emulator.advance(30)
    kaleyra_emulator.reply("+61491570156", "STOP")
    wait_for(lambda: settled(kaleyra_emulator))
    assert all(p.last_status == 200 for p in kaleyra_emulator.pushes), [p.last_status for p in kaleyra_emulator.pushes]
    last, replies, page = summary(inbox)
    assert last.get("0156") == Status.DELIVERED
    assert last.get("0001") == Status.FAILED
    assert ("0156", "STOP") in replies
    assert any(e.kind == "opt_out" for e in page)
    # Without the header, a callback is refused.
    forged = requests.get(rec.url + "/webhooks/kaleyra/dlr?id=x&status=DELIVRD", timeout=10)
    assert forged.status_code == 401
