"""The ME-SMS adapter against its emulator over loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from smsrelay import Client, ManualClock, Message, Recipient, Status
from smsrelay.emulators.mesms import MeSmsEmulator
from smsrelay.errors import AmbiguousSend, AuthError, InsufficientCredit, InvalidRequest, NotCancellable
from smsrelay.model import PreparedSms
from smsrelay.providers.mesms import MeSmsProvider

TH = "+6681234"  # + four digits: the sandbox's magic numbers, on a Thai mobile range


def th(last4: str) -> str:
    return TH + last4


def sends(emu: MeSmsEmulator) -> list[dict]:
    return [r.json() for r in emu.received("POST", "/api/v2/sms/send")]


def test_send_speaks_the_wire_format(
    mesms_client_factory: Callable[..., Client], mesms_emulator: MeSmsEmulator
) -> None:
    mesms = mesms_client_factory(default_region="TH")  # so the national 08… number is read as Thai
    result = mesms.send([th("1000"), "0812341001"], "Hello", key="order-1")
    (req,) = mesms_emulator.received("POST", "/api/v2/sms/send")
    body = req.json()
    assert req.header("x-api-key") == "test-key"
    assert body == {"sender": "Acme", "msisdns": ["66812341000", "66812341001"], "content": "Hello"}
    uuid = result.batch_id
    assert uuid in mesms_emulator.batches
    assert [r.message_id for r in result.results] == [f"{uuid}:66812341000", f"{uuid}:66812341001"]
    assert [r.status for r in result.results] == [Status.QUEUED, Status.QUEUED]


def test_personalised_bodies_split_by_body_and_equal_bodies_share(mesms: Client, mesms_emulator: MeSmsEmulator) -> None:
    people = [Recipient(th(f"10{i:02d}"), vars={"name": ["Ann", "Bo"][i % 2]}) for i in range(10)]
    result = mesms.send_many(Message("Hi {{ name }}"), people)
    bodies = sorted((b["content"], len(b["msisdns"])) for b in sends(mesms_emulator))
    assert bodies == [("Hi Ann", 5), ("Hi Bo", 5)]
    assert result.all_accepted
    assert len({r.message_id for r in result.results}) == 10
    # Results stay in the caller's order, each carrying its own batch's uuid.
    for person, r in zip(people, result.results, strict=True):
        assert r.to == person.to
        batch = mesms_emulator.batches[r.message_id.split(":")[0]]
        assert batch.content == f"Hi {person.vars['name']}"


@pytest.mark.slow
def test_one_hundred_thousand_recipients_take_one_request(mesms: Client, mesms_emulator: MeSmsEmulator) -> None:
    # Prepared directly: the client's per-number validation (tested elsewhere) would
    # dominate the time; planning and sending are the adapter's, over real HTTP.
    msg = Message("Flash sale today", sender="Acme")
    batch = [PreparedSms(f"+6681{i:07d}", msg.body, f"k{i}", "GSM-7", 1, msg) for i in range(100_000)]
    provider = mesms.provider
    assert isinstance(provider, MeSmsProvider)
    (group,) = provider.plan_requests(batch)
    outcome = provider.send(group)
    assert len(mesms_emulator.received("POST", "/api/v2/sms/send")) == 1
    assert len(outcome.results) == 100_000 and all(r.status == Status.QUEUED for r in outcome.results)
    assert outcome.results[-1].message_id == f"{outcome.batch_id}:66810099999"
    assert len(mesms_emulator.batches[outcome.batch_id].msisdns) == 100_000


def test_send_many_puts_a_shared_body_in_one_request(mesms: Client, mesms_emulator: MeSmsEmulator) -> None:
    result = mesms.send([f"+6682{i:07d}" for i in range(3_000)], "Flash sale today")
    assert len(mesms_emulator.received("POST", "/api/v2/sms/send")) == 1
    assert len(result.results) == 3_000 and result.all_accepted


def test_every_status_path_maps_onto_the_lifecycle(mesms: Client, mesms_emulator: MeSmsEmulator) -> None:
    result = mesms.send([th(d) for d in ("0001", "0002", "0003", "0008", "1234")], "Hi")
    ids = result.message_ids
    pending = mesms.status(ids)
    assert {d.status for d in pending.values()} == {Status.QUEUED}
    mesms_emulator.advance(10)
    final = {d.phone[-4:]: d for d in mesms.status(ids).values()}
    assert {k: (v.status, v.raw_status) for k, v in final.items()} == {
        "0001": (Status.FAILED, "failed"),
        "0002": (Status.EXPIRED, "expired"),
        "0003": (Status.REJECTED, "blocked"),
        "0008": (Status.UNKNOWN, "timeout"),
        "1234": (Status.DELIVERED, "success"),
    }
    assert final["0003"].reason == "number is on the blocklist"
    assert final["1234"].message_id == f"{result.batch_id}:66812341234"
    assert final["1234"].occurred_at.tzinfo is not None


def test_a_non_thai_number_is_refused_alone_and_never_sent(mesms: Client, mesms_emulator: MeSmsEmulator) -> None:
    result = mesms.send([th("2000"), "+61491570156"], "Hi")
    assert [r.status for r in result.results] == [Status.QUEUED, Status.REJECTED]
    assert "only numbers in TH (+66)" in (result.results[1].error or "")
    assert sends(mesms_emulator)[0]["msisdns"] == ["66812342000"]


def test_bad_key_scope_and_credit_raise_clear_errors(
    mesms_client_factory: Callable[..., Client], mesms_emulator: MeSmsEmulator
) -> None:
    with pytest.raises(AuthError, match="API key"):
        mesms_client_factory(api_key="wrong-key").send(th("3000"), "Hi")
    with pytest.raises(AuthError, match="sms:send") as scope:
        mesms_client_factory(api_key="read-only-key").send(th("3000"), "Hi")
    assert scope.value.status_code == 403
    mesms_emulator.credits = 1
    with pytest.raises(InsufficientCredit) as credit:
        mesms_client_factory().send([th("3000"), th("3001")], "Hi")
    assert credit.value.code == "INSUFFICIENT_CREDITS"
    assert mesms_emulator.batches == {}


def test_an_unapproved_sender_rejects_its_recipients_with_the_reason(mesms: Client) -> None:
    result = mesms.send(th("3100"), "Hi", sender="NewBrand")
    assert result.results[0].status == Status.REJECTED
    assert "not approved" in (result.results[0].error or "")


def test_a_429_is_retried_after_its_retry_after(
    mesms: Client, mesms_emulator: MeSmsEmulator, clock: ManualClock
) -> None:
    mesms_emulator.inject("rate_limit", path="/api/v2/sms/send", retry_after=7)
    before = clock.now()
    result = mesms.send(th("4000"), "Hi")
    assert result.all_accepted
    assert len(mesms_emulator.received("POST", "/api/v2/sms/send")) == 2
    assert len(mesms_emulator.batches) == 1
    assert clock.now() - before >= timedelta(seconds=7)


def test_a_reset_after_accept_is_ambiguous_and_never_resent(mesms: Client, mesms_emulator: MeSmsEmulator) -> None:
    mesms_emulator.inject("reset_after", path="/api/v2/sms/send")
    with pytest.raises(AmbiguousSend) as exc:
        mesms.send([th("5000"), th("5001")], "Hi")
    assert len(exc.value.keys) == 2
    assert len(mesms_emulator.received("POST", "/api/v2/sms/send")) == 1
    assert len(mesms_emulator.batches) == 1  # it was accepted once, and only once


def test_a_5xx_on_send_is_not_repeated(mesms: Client, mesms_emulator: MeSmsEmulator) -> None:
    mesms_emulator.inject("status", status=503, path="/api/v2/sms/send", body='{"error":"down"}')
    with pytest.raises(AmbiguousSend):
        mesms.send(th("5100"), "Hi")
    assert len(mesms_emulator.received("POST", "/api/v2/sms/send")) == 1


def test_dry_run_and_preview_cost_nothing(mesms: Client, mesms_emulator: MeSmsEmulator) -> None:
    credits = mesms_emulator.credits
    result = mesms.send([th("6000"), th("6001")], "x" * 161, dry_run=True)
    assert result.dry_run and result.all_accepted and result.batch_id is None
    assert sends(mesms_emulator)[0]["dryRun"] is True
    preview = mesms.preview("x" * 161, [th("6000"), th("6001")])
    assert preview.cost is not None and preview.cost.amount == 4  # 2 parts x 2 recipients
    assert mesms_emulator.batches == {} and mesms_emulator.credits == credits


def test_schedule_and_cancel_with_each_refusal_reason(mesms: Client, mesms_emulator: MeSmsEmulator) -> None:
    at = datetime(2026, 1, 1, 10, tzinfo=UTC)
    result = mesms.send_many(Message("Later", send_at=at), [th("7000")])
    assert result.results[0].status == Status.SCHEDULED
    assert sends(mesms_emulator)[0]["scheduledTime"] == "2026-01-01T17:00:00+07:00"
    credits = mesms_emulator.credits
    mesms.cancel(result.message_ids[0])
    assert mesms_emulator.credits == credits + 1  # refunded
    with pytest.raises(NotCancellable) as again:
        mesms.cancel(result.batch_id)
    assert again.value.reason == "ALREADY_CANCELLED"
    now = mesms.send(th("7001"), "Now")
    with pytest.raises(NotCancellable) as unscheduled:
        mesms.cancel(now.batch_id)
    assert unscheduled.value.reason == "NOT_SCHEDULED"
    soon = mesms.send_many(Message("Soon", send_at=at), [th("7002")])
    mesms_emulator.advance(11 * 3600)
    with pytest.raises(NotCancellable) as processing:
        mesms.cancel(soon.batch_id)
    assert processing.value.reason == "ALREADY_PROCESSING"


def test_messages_detail_balance_and_senders(mesms: Client, mesms_emulator: MeSmsEmulator) -> None:
    provider = mesms.provider
    assert isinstance(provider, MeSmsProvider)
    result = mesms.send([th("0001"), th("8000")], "Hi")
    mesms_emulator.advance(10)
    detail = provider.message(result.batch_id)
    assert detail.status == Status.SENT and detail.dr_summary == {"failed": 1, "success": 1}
    assert [m.uuid for m in provider.messages(status="sent")] == [result.batch_id]
    assert provider.messages(status="scheduled") == []
    assert mesms.balance().amount == mesms_emulator.credits
    approved = {s.name for s in provider.senders() if s.approved}
    assert approved == {"Acme", "MeSMS"}
    with pytest.raises(InvalidRequest, match="unknown ME-SMS message status"):
        provider.messages(status="delivered")


def test_recipients_stream_lazily_with_a_status_filter(mesms: Client, mesms_emulator: MeSmsEmulator) -> None:
    provider = mesms.provider
    assert isinstance(provider, MeSmsProvider)
    provider.page_size = 7
    uuid = mesms_emulator.create_batch(30_000)
    failed = list(provider.iter_recipients(uuid, status="failed"))
    assert [d.phone for d in failed] == [f"+668000{n:05d}" for n in (1, 10001, 20001)]
    assert {d.status for d in failed} == {Status.FAILED}
    stream = provider.iter_recipients(uuid)
    first = [next(stream) for _ in range(10)]
    assert len(first) == 10
    # One filtered page, then two lazy pages of 7: nothing more is fetched than was read.
    assert len(mesms_emulator.received("GET", rf"/api/v2/sms/{uuid}/recipients")) == 1 + 2


def test_poll_events_resume_exactly_across_restarts(
    mesms_client_factory: Callable[..., Client], mesms_emulator: MeSmsEmulator
) -> None:
    client = mesms_client_factory()
    a = client.send([th(f"9{i:03d}") for i in range(5)], "A")
    mesms_emulator.advance(1)  # batches are read in creation order (to the second)
    b = client.send([th(f"8{i:03d}") for i in range(3)], "B")
    page = client.events(limit=100)
    assert list(page) == []  # nothing has settled yet
    mesms_emulator.advance(10)
    seen: list[str] = []
    cursor = page.cursor
    while True:
        fresh = mesms_client_factory()  # a restart: only the cursor survives
        page = fresh.events(cursor, limit=3)
        seen.extend(e.message_id for e in page)
        cursor = page.cursor
        if not page.more:
            break
    assert seen == a.message_ids + b.message_ids
    assert list(mesms_client_factory().events(cursor)) == []
    c = mesms_client_factory().send(th("7777"), "C")
    mesms_emulator.advance(10)
    assert [e.message_id for e in mesms_client_factory().events(cursor)] == c.message_ids


def test_a_cursor_from_elsewhere_is_refused(mesms: Client) -> None:
    with pytest.raises(InvalidRequest, match="cursor"):
        mesms.events("not-a-cursor")


def test_seed_examples_pass_through_the_adapter(mesms: Client, mesms_emulator: MeSmsEmulator) -> None:
    # seed 002: the error example, verbatim, and the variables / scheduledTime examples.
    seed_error = '{\n"error": "Insufficient credits",\n"code": "INSUFFICIENT_CREDITS"\n}'
    mesms_emulator.inject("status", status=402, path="/api/v2/sms/send", body=seed_error)
    with pytest.raises(InsufficientCredit) as exc:
        mesms.send(th("1111"), "Hi")
    assert exc.value.provider_message == "Insufficient credits" and exc.value.code == "INSUFFICIENT_CREDITS"
    at = datetime.fromisoformat("2026-06-01T10:00:00+07:00")
    msg = Message("Hello Toon", send_at=at, options={"template_id": 1, "variables": {"name": "Toon"}})
    result = mesms.send_many(msg, [th("1112")])
    body = sends(mesms_emulator)[-1]
    assert body["templateId"] == 1 and body["variables"] == {"name": "Toon"} and "content" not in body
    assert body["scheduledTime"] == "2026-06-01T10:00:00+07:00"
    assert mesms_emulator.batches[result.batch_id].content.startswith("Hello Toon")
    assert json.loads(seed_error)["code"] == "INSUFFICIENT_CREDITS"
