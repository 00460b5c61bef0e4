"""The Kudosity V1 adapter against the V1 emulator, over real HTTP on loopback."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qsl

import pytest
import requests

from smsrelay import Client, Message, Recipient
from smsrelay.emulators.kudosity_v1 import KudosityV1Emulator
from smsrelay.errors import AuthError, ConfigError, InsufficientCredit, NotCancellable, WebhookError
from smsrelay.model import Delivery, LinkHit, OptOut, Reply, Status
from smsrelay.webhooks import WebhookRequest
from tests.fixtures.kudosity import SENDER, V1_KEY, V1_SECRET, wait_for_pushes


def sends(emu):
    return [r.form() for r in emu.received("POST", "/send-sms.json")]


def test_1200_numbers_take_exactly_3_requests(kudosity_v1, kudosity_v1_emulator):
    numbers = [f"+614915{i:05d}" for i in range(10, 1210)]
    result = kudosity_v1.send(numbers, "Service notice")
    assert result.all_accepted and len(result.results) == 1200
    assert len(kudosity_v1_emulator.received()) == 3
    forms = sends(kudosity_v1_emulator)
    assert sorted(len(f["to"].split(",")) for f in forms) == [200, 500, 500]
    assert all(f["from"] == SENDER and f["message"] == "Service notice" for f in forms)
    assert {n for f in forms for n in f["to"].split(",")} == {n.lstrip("+") for n in numbers}
    # Each recipient's id is the send's message_id and its number.
    r = result.results[7]
    assert r.message_id == f"{r.message_id.split(':')[0]}:{r.to.lstrip('+')}"
    assert len(set(result.batch_id.split(","))) == 3


def test_personalised_bodies_are_grouped_per_distinct_body(kudosity_v1, kudosity_v1_emulator):
    people = [Recipient(f"+6149157{i:04d}", {"team": "red" if i % 2 else "blue"}) for i in range(10, 20)]
    result = kudosity_v1.send(people, "Team {{ team }} meets at 9")
    assert result.all_accepted
    assert sorted(f["message"] for f in sends(kudosity_v1_emulator)) == [
        "Team blue meets at 9",
        "Team red meets at 9",
    ]


def test_schedule_validity_callbacks_and_cancel(kudosity_v1_factory, kudosity_v1_emulator, clock):
    client = kudosity_v1_factory(dlr_callback="https://hooks.example.com/dlr")
    when = clock.now() + timedelta(hours=2)
    msg = Message(
        "Sale [tracked-link]",
        send_at=when,
        validity=timedelta(hours=1),
        options={"tracked_link_url": "https://shop.example.com/sale"},
    )
    result = client.send("+61491570156", msg)
    [r] = result.results
    assert r.status is Status.SCHEDULED
    [form] = sends(kudosity_v1_emulator)
    assert form["send_at"] == when.strftime("%Y-%m-%d %H:%M:%S")
    assert form["validity"] == "60"
    assert form["tracked_link_url"] == "https://shop.example.com/sale"
    assert form["dlr_callback"] == "https://hooks.example.com/dlr"
    client.cancel(r.message_id)
    assert kudosity_v1_emulator.state()["messages"][0]["cancelled"] is True
    with pytest.raises(NotCancellable, match="already been cancelled"):
        client.cancel(r.message_id)


def test_tracked_link_needs_its_placeholder(kudosity_v1, kudosity_v1_emulator):
    result = kudosity_v1.send("+61491570156", Message("Sale", options={"tracked_link_url": "https://x.example"}))
    assert "[tracked-link]" in (result.results[0].error or "")
    assert kudosity_v1_emulator.received() == []


def test_status_pages_through_get_sms_sent(kudosity_v1, kudosity_v1_emulator):
    numbers = [f"+614915{i:05d}" for i in range(100, 350)] + ["+61491570001", "+61491570002"]
    result = kudosity_v1.send(numbers, "Hi")
    kudosity_v1_emulator.advance(5)
    ids = [result.results[0].message_id, result.results[-2].message_id, result.results[-1].message_id]
    reports = kudosity_v1.status(ids)
    assert [reports[i].status for i in ids] == [Status.DELIVERED, Status.FAILED, Status.EXPIRED]
    assert reports[ids[1]].raw_status == "hard-bounce"
    pages = kudosity_v1_emulator.received("POST", "/get-sms-sent.json")
    assert len(pages) == 3  # 252 recipients, 100 a page


def test_signed_callbacks_verify_and_parse(kudosity_v1_factory, kudosity_v1_emulator, webhook_sink):
    base = webhook_sink.url + "/kudosity?src=smsrelay&tenant=a%2Fb"  # our own params come first
    client = kudosity_v1_factory(dlr_callback=base, reply_callback=base, link_hits_callback=base)
    result = client.send(["+61491570156", "+61491570007", "+61491570006"], "Hi {{ 'there' }}")
    kudosity_v1_emulator.advance(10)
    wait_for_pushes(kudosity_v1_emulator, 5)
    p = client.provider
    events = []
    for req in webhook_sink.webhook_requests():
        assert req.method == "GET" and req.query.startswith("src=smsrelay&tenant=a%2Fb&")
        p.verify_webhook(req)
        events.extend(p.parse_webhook(req))
    by_to = {r.to: r for r in result.results}
    deliveries = {e.message_id: e for e in events if isinstance(e, Delivery)}
    assert {d.status for d in deliveries.values()} == {Status.DELIVERED}
    assert set(deliveries) == {r.message_id for r in result.results}
    [reply] = [e for e in events if isinstance(e, Reply)]
    assert reply.text == "STOP" and reply.in_reply_to == by_to["+61491570007"].message_id
    [opt] = [e for e in events if isinstance(e, OptOut)]
    assert opt.phone == "+61491570007"
    [hit] = [e for e in events if isinstance(e, LinkHit)]
    assert hit.message_id == by_to["+61491570006"].message_id and hit.hits == 1


def test_altered_or_reordered_callback_is_refused(kudosity_v1_factory, kudosity_v1_emulator, webhook_sink):
    client = kudosity_v1_factory(dlr_callback=webhook_sink.url + "/dlr")
    client.send("+61491570156", "Hi")
    kudosity_v1_emulator.advance(5)
    wait_for_pushes(kudosity_v1_emulator, 1)
    [req] = webhook_sink.webhook_requests()
    client.provider.verify_webhook(req)
    pairs = req.query.split("&")
    reordered = WebhookRequest("GET", req.path, "&".join(reversed(pairs)), req.headers)
    altered = WebhookRequest("GET", req.path, req.query.replace("delivered", "hard-bounce"), req.headers)
    unsigned = WebhookRequest("GET", req.path, req.query, {})
    for bad in (reordered, altered, unsigned):
        with pytest.raises(WebhookError) as info:
            client.provider.verify_webhook(bad)
        assert info.value.status_code == 401
    assert dict(parse_qsl(req.query))["status"] == "delivered"


def test_reply_polling_via_get_sms_responses(kudosity_v1, kudosity_v1_emulator):
    result = kudosity_v1.send(["+61491570004", "+61491570005"], "Coming? YES/NO")
    kudosity_v1_emulator.advance(10)
    page = kudosity_v1.events(limit=1)
    assert page.more and len(page) == 1
    rest = kudosity_v1.events(page.cursor)
    replies = [e for e in [*page, *rest] if isinstance(e, Reply)]
    assert sorted(r.text for r in replies) == ["NO", "YES"]
    assert {r.in_reply_to for r in replies} == {r.message_id for r in result.results}
    assert kudosity_v1.events(rest.cursor).events == []
    kudosity_v1_emulator.inject_reply("+61491570004", "Actually no")
    assert [e.text for e in kudosity_v1.events(rest.cursor)] == ["Actually no"]


def test_balance_stats_and_format_number(kudosity_v1, kudosity_v1_emulator):
    before = kudosity_v1.balance()
    assert before.currency == "AUD"
    result = kudosity_v1.send(["+61491570156", "+61491570157"], "Hi")
    assert before.amount - kudosity_v1.balance().amount == Decimal("0.174")  # 2 parts at 0.087
    kudosity_v1_emulator.advance(5)
    stats = kudosity_v1.provider.stats(result.results[0].message_id)
    assert stats["delivered"] == 2 and stats["recipientCount"] == 2
    number = kudosity_v1.provider.format_number("0491 570 156", "au")
    assert number["international"] == 61491570156 and number["isValid"] is True


def test_insufficient_credit_keeps_kudosity_code(kudosity_v1_factory, clock):
    with KudosityV1Emulator(clock=clock, credentials={V1_KEY: V1_SECRET}, balance="0.01") as emu:
        client = kudosity_v1_factory(base_url=emu.url)
        with pytest.raises(InsufficientCredit) as info:
            client.send("+61491570156", "Hi")
        assert info.value.code == "LEDGER_ERROR"
        assert "Insufficient funds" in str(info.value)


def test_wrong_secret_is_an_auth_error_without_the_secret(kudosity_v1_factory):
    client = kudosity_v1_factory(api_secret="not-the-secret-123456")
    with pytest.raises(AuthError) as info:
        client.send("+61491570156", "Hi")
    assert "AUTH_FAILED" in str(info.value)
    assert "not-the-secret-123456" not in str(info.value) + repr(info.value)


def test_bad_caller_id_names_the_sender(kudosity_v1):
    [r] = kudosity_v1.send("+61491570156", "Hi", sender="12 34").results
    assert r.status is Status.REJECTED and "BAD_CALLER_ID" in (r.error or "")


def test_over_limit_is_retried(kudosity_v1, kudosity_v1_emulator):
    kudosity_v1_emulator.inject("rate_limit", path="/send-sms.json", times=2)
    assert kudosity_v1.send("+61491570156", "Hi").all_accepted
    assert len(kudosity_v1_emulator.state()["messages"]) == 1


def test_reset_after_accept_is_ambiguous_not_resent(kudosity_v1, kudosity_v1_emulator):
    from smsrelay.errors import AmbiguousSend

    kudosity_v1_emulator.inject("reset_after", path="/send-sms.json")
    with pytest.raises(AmbiguousSend) as info:
        kudosity_v1.send("+61491570156", "Hi")
    # V1 has no message_ref to look it up by, so smsrelay refuses to guess.
    assert len(info.value.keys) == 1
    assert len(kudosity_v1_emulator.state()["messages"]) == 1


def test_v1_needs_the_secret():
    with pytest.raises(ConfigError, match="api_secret"):
        Client("kudosity", env={}, api="v1", api_key="k-123456")
    with pytest.raises(ConfigError, match="api must be v2 or v1"):
        Client("kudosity", env={}, api="v3", api_key="k-123456")


def test_emulator_counts_a_number_given_twice_once_in_the_order_given(kudosity_v1_emulator):
    # OAS1 send-sms: `to` is a list of numbers; the emulator sends each distinct number once.
    to = "61491570157,61491570156,+61491570157,61491570158"
    answer = requests.post(
        kudosity_v1_emulator.url + "/send-sms.json",
        data={"message": "Hi", "to": to, "from": SENDER},
        auth=(V1_KEY, V1_SECRET),
        timeout=10,
    ).json()
    assert answer["recipients"] == 3
    assert list(kudosity_v1_emulator.messages[answer["message_id"]]["recipients"]) == [
        "61491570157",
        "61491570156",
        "61491570158",
    ]
