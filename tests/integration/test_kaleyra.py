"""The Kaleyra adapter against its emulator over loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import pytest

from smsrelay import Client, ManualClock, Message, Recipient, Status
from smsrelay.emulators.kaleyra import KaleyraEmulator
from smsrelay.errors import AmbiguousSend, AuthError, ConfigError, InvalidRequest, WebhookError
from smsrelay.lifecycle import merge_all
from smsrelay.model import Delivery, OptOut, Reply
from smsrelay.providers.kaleyra import KaleyraProvider
from tests.fixtures.kaleyra import KALEYRA_SECRET, KALEYRA_SID, HookSink

IN = "+9198765"  # + four digits: the sandbox's magic endings on an Indian mobile range
SEND = rf"/v1/{KALEYRA_SID}/messages"


def num(last4: str) -> str:
    return IN + "1" + last4


def forms(emu: KaleyraEmulator, path: str = SEND) -> list[dict[str, str]]:
    return [dict(parse_qsl(r.body.decode(), keep_blank_values=True)) for r in emu.received("POST", path)]


def test_send_speaks_the_wire_format(kaleyra: Client, kaleyra_emulator: KaleyraEmulator) -> None:
    result = kaleyra.send([num("1000"), num("1001")], "Hello! This is my first SMS.", key="order-7")
    (req,) = kaleyra_emulator.received("POST", SEND)
    form = forms(kaleyra_emulator)[0]
    assert req.header("api-key") == "test-key"
    assert "x-www-form-urlencoded" in (req.header("content-type") or "")
    assert form["to"] == f"{num('1000')},{num('1001')}"
    assert form["body"] == "Hello! This is my first SMS." and form["sender"] == "KLRHXA" and form["source"] == "API"
    assert form["ref"].startswith("srb-") and len(form["ref"]) <= 50
    assert "callback" not in form and "unicode" not in form
    assert [r.message_id for r in result.results] == [f"{result.batch_id}:1", f"{result.batch_id}:2"]
    assert {r.status for r in result.results} == {Status.QUEUED}


def test_one_recipient_carries_its_own_key_as_ref(kaleyra: Client, kaleyra_emulator: KaleyraEmulator) -> None:
    result = kaleyra.send(num("1002"), "नमस्ते")
    form = forms(kaleyra_emulator)[0]
    assert form["ref"] == result.results[0].key
    assert form["unicode"] == "1"


def test_equal_bodies_batch_and_personalised_bodies_split(kaleyra: Client, kaleyra_emulator: KaleyraEmulator) -> None:
    same = kaleyra.send([f"+91987{i:07d}" for i in range(250)], "Sale")
    # Requests run concurrently, so they may arrive in any order.
    assert sorted(len(f["to"].split(",")) for f in forms(kaleyra_emulator)) == [50, 100, 100]
    assert same.all_accepted and len(set(same.message_ids)) == 250
    kaleyra_emulator.reset()
    people = [Recipient(num(f"20{i:02d}"), vars={"n": i % 3}) for i in range(9)]
    result = kaleyra.send_many(Message("Code {{ n }}"), people)
    assert sorted((f["body"], len(f["to"].split(","))) for f in forms(kaleyra_emulator)) == [
        ("Code 0", 3),
        ("Code 1", 3),
        ("Code 2", 3),
    ]
    for person, r in zip(people, result.results, strict=True):
        assert r.to == person.to
        assert kaleyra_emulator.messages[r.message_id].body == f"Code {person.vars['n']}"


def test_every_status_path_with_its_trace(kaleyra: Client, kaleyra_emulator: KaleyraEmulator) -> None:
    result = kaleyra.send([num(d) for d in ("0001", "0002", "0003", "0008", "1234")], "Hi")
    early = kaleyra.status(result.message_ids)
    assert {d.status for d in early.values()} == {Status.SENT}
    kaleyra_emulator.advance(10)
    final = {d.message_id: d for d in kaleyra.status(result.message_ids).values()}
    got = {r.to[-4:]: (final[r.message_id].status, final[r.message_id].reason) for r in result.results}
    assert got == {
        "0001": (Status.FAILED, "ABSENT-SUB"),
        "0002": (Status.EXPIRED, "EXPIRED"),
        "0003": (Status.REJECTED, "DND-NUMB"),
        "0008": (Status.UNKNOWN, "SENT - NO DLR"),
        "1234": (Status.DELIVERED, None),
    }
    assert final[result.message_ids[4]].raw_status == "Delivered"
    assert final[result.message_ids[4]].phone == num("1234")


def callback_client(factory: Callable[..., Client], sink: HookSink, **kw: object) -> Client:
    return factory(callback_url=sink.url + "/hook", **kw)


def test_callbacks_carry_the_secret_header_and_parse_into_deliveries(
    kaleyra_client_factory: Callable[..., Client], kaleyra_emulator: KaleyraEmulator, hook_sink: HookSink
) -> None:
    client = callback_client(kaleyra_client_factory, hook_sink)
    result = client.send([num("0009"), num("0001")], "Hi")
    callback = json.loads(forms(kaleyra_emulator)[0]["callback"])
    assert callback == {
        "url": hook_sink.url + "/hook",
        "method": "POST",
        "header": {"X-Smsrelay-Token": KALEYRA_SECRET},
    }
    kaleyra_emulator.advance(10)
    hooks = wait_for(hook_sink, 5)
    events: list[Delivery] = []
    for hook in hooks:
        client.provider.verify_webhook(hook)
        (event,) = client.provider.parse_webhook(hook)
        assert isinstance(event, Delivery)
        events.append(event)
    latest = merge_all(events)
    late, failed = result.message_ids
    # 0009: a duplicate Sent arrives after Delivered, and does not win.
    assert [e.status for e in events if e.message_id == late][-1] == Status.SENT
    assert latest[late].status == Status.DELIVERED
    assert (latest[failed].status, latest[failed].reason) == (Status.FAILED, "ABSENT-SUB")
    assert latest[failed].phone == num("0001") and latest[failed].message_ref == forms(kaleyra_emulator)[0]["ref"]
    assert len({e.event_id for e in events}) == len(events)


def test_get_callbacks_parse_from_the_query(
    kaleyra_client_factory: Callable[..., Client], kaleyra_emulator: KaleyraEmulator, hook_sink: HookSink
) -> None:
    client = callback_client(kaleyra_client_factory, hook_sink, callback_method="GET")
    result = client.send(num("3000"), "Hi")
    kaleyra_emulator.advance(10)
    hooks = wait_for(hook_sink, 2)
    assert {h.method for h in hooks} == {"GET"}
    parsed = [e for h in hooks for e in client.provider.parse_webhook(h)]
    assert [(e.message_id, e.status) for e in parsed] == [
        (result.message_ids[0], Status.SENT),
        (result.message_ids[0], Status.DELIVERED),
    ]


def test_inbound_replies_thread_by_phone_and_stop_opts_out(
    kaleyra_client_factory: Callable[..., Client],
    kaleyra_emulator: KaleyraEmulator,
    hook_sink: HookSink,
    clock: ManualClock,
) -> None:
    client = kaleyra_client_factory(timezone="Asia/Kolkata")
    kaleyra_emulator.configure_inbound(hook_sink.url + "/hook", {"X-Smsrelay-Token": KALEYRA_SECRET})
    client.send([num("0004"), num("0007")], "Reply YES or STOP")
    kaleyra_emulator.advance(5)
    replied_at = clock.now()
    hooks = wait_for(hook_sink, 2)
    events = [e for h in hooks for e in client.provider.parse_webhook(h)]
    replies = {e.phone: e for e in events if isinstance(e, Reply)}
    assert {p: r.text for p, r in replies.items()} == {num("0004"): "YES", num("0007"): "STOP"}
    assert replies[num("0004")].occurred_at == replied_at  # zone-less IST read as IST
    assert replies[num("0004")].to == "+919000000000"
    (opt_out,) = [e for e in events if isinstance(e, OptOut)]
    assert opt_out.phone == num("0007")


def test_callbacks_without_the_right_header_are_refused(kaleyra: Client) -> None:
    from smsrelay.webhooks import WebhookRequest

    body = json.dumps({"id": "b:1", "status": "Delivered"}).encode()
    for headers in ({}, {"X-Smsrelay-Token": "wrong"}):
        with pytest.raises(WebhookError) as exc:
            kaleyra.provider.verify_webhook(WebhookRequest("POST", "/hook", headers=headers, body=body))
        assert exc.value.status_code == 401
    unset = Client("kaleyra", api_key="k", sid="HX1", env={})
    with pytest.raises(WebhookError, match="webhook_secret is not set"):
        unset.provider.verify_webhook(WebhookRequest("POST", "/hook", headers={"X-Smsrelay-Token": "x"}, body=body))


def test_bad_key_429_and_field_errors(
    kaleyra_client_factory: Callable[..., Client], kaleyra_emulator: KaleyraEmulator, clock: ManualClock
) -> None:
    with pytest.raises(AuthError, match="api_key and sid"):
        kaleyra_client_factory(api_key="wrong").send(num("4000"), "Hi")
    client = kaleyra_client_factory()
    kaleyra_emulator.inject("rate_limit", path=SEND, retry_after=3)
    before = clock.now()
    assert client.send(num("4001"), "Hi").all_accepted
    assert len(kaleyra_emulator.received("POST", SEND)) == 3  # the refused key, the 429, the retry
    assert clock.now() - before >= timedelta(seconds=3)
    # Courier's capture of Kaleyra's field-keyed error, verbatim.
    kaleyra_emulator.inject("status", status=400, path=SEND, body='{"error":{"to":"invalid number"}}')
    refused = client.send(num("4002"), "Hi").results[0]
    assert refused.status == Status.REJECTED and "field 'to': invalid number" in (refused.error or "")


def test_the_seed_failure_response_becomes_a_clear_error(kaleyra: Client, kaleyra_emulator: KaleyraEmulator) -> None:
    seed = (
        '{\n  "code": "E401",\n  "message": "SMS length is exceeding 4000 characters.",\n'
        '  "error": {\n    "body": "SMS length is exceeding 4000 characters."\n  }\n}'
    )
    kaleyra_emulator.inject("status", status=400, path=SEND, body=seed)
    provider = kaleyra.provider
    sms = kaleyra.prepare(Message("Hi"), [num("4100")])[0]
    with pytest.raises(InvalidRequest) as exc:
        provider.send(sms)
    assert exc.value.code == "E401" and exc.value.field == "message"
    assert "exceeding 4000 characters" in str(exc.value)


def test_the_seed_success_response_parses(kaleyra: Client, kaleyra_emulator: KaleyraEmulator) -> None:
    seed = """{
  "id": "ee8aXXXX-XXXX-XXXX-XXXX-9b717XXXX30d",
  "sender": "KLRHXA",
  "type": "DEFAULT",
  "body": "Hello! This is my first SMS.",
  "createdDateTime": "2019-11-04 10:42:23+00:00",
  "totalCount": 1,
  "data": [
    {
      "message_id": "ee8aXXXX-XXXX-XXXX-XXXX-9b717XXXX30d:1",
      "recipient": "1XXXXXXXXXX"
    }
  ],
  "dlrurl": null,
  "error": {}
}"""
    kaleyra_emulator.inject("status", status=202, path=SEND, body=seed, headers={"Content-Type": "application/json"})
    result = kaleyra.send("+12025550143", "Hello! This is my first SMS.")
    assert result.batch_id == "ee8aXXXX-XXXX-XXXX-XXXX-9b717XXXX30d"
    (r,) = result.results
    assert (r.message_id, r.status) == ("ee8aXXXX-XXXX-XXXX-XXXX-9b717XXXX30d:1", Status.QUEUED)


def test_a_reset_after_accept_is_settled_by_ref_without_resending(
    kaleyra: Client, kaleyra_emulator: KaleyraEmulator
) -> None:
    kaleyra_emulator.inject("reset_after", path=SEND)
    result = kaleyra.send([num("5000"), num("5001")], "Hi")
    assert len(kaleyra_emulator.received("POST", SEND)) == 1
    assert len(kaleyra_emulator.messages) == 2
    assert sorted(result.message_ids) == sorted(kaleyra_emulator.messages)
    assert [r.to for r in result.results] == [num("5000"), num("5001")]
    assert len(kaleyra_emulator.received("GET", SEND)) == 1  # the lookup by ref


def test_a_send_that_never_arrived_is_sent_once_after_the_lookup(
    kaleyra: Client, kaleyra_emulator: KaleyraEmulator
) -> None:
    kaleyra_emulator.inject("status", status=502, path=SEND, body="bad gateway")
    result = kaleyra.send(num("5100"), "Hi")
    assert result.all_accepted
    assert len(kaleyra_emulator.messages) == 1
    assert len(kaleyra_emulator.received("POST", SEND)) == 2


def test_an_ambiguous_send_that_cannot_be_looked_up_raises(kaleyra: Client, kaleyra_emulator: KaleyraEmulator) -> None:
    kaleyra_emulator.inject("reset_after", path=SEND)
    kaleyra_emulator.inject("status", method="GET", status=503, path=SEND, times=200)
    with pytest.raises(AmbiguousSend) as exc:
        kaleyra.send(num("5200"), "Hi")
    assert len(exc.value.keys) == 1
    assert len(kaleyra_emulator.received("POST", SEND)) == 1


def test_the_sms_endpoint_schedules_and_regions_pick_hosts(
    kaleyra_client_factory: Callable[..., Client], kaleyra_emulator: KaleyraEmulator
) -> None:
    client = kaleyra_client_factory(endpoint="sms", callback_profile_id="IN_profile", timezone="Asia/Kolkata")
    kaleyra_emulator.profiles["IN_profile"] = {"url": "http://127.0.0.1:9/hook", "method": "POST", "header": {}}
    at = datetime(2026, 1, 1, 6, tzinfo=UTC)
    result = client.send_many(Message("Later", send_at=at), [num("6000")])
    form = forms(kaleyra_emulator, rf"/v1/{KALEYRA_SID}/sms")[0]
    assert form["time"] == "2026-01-01T11:30:00+05:30" and form["callback_profile_id"] == "IN_profile"
    assert result.results[0].status == Status.SCHEDULED
    assert client.status(result.message_ids)[result.message_ids[0]].status == Status.SENT
    with pytest.raises(ConfigError, match="callback profile"):
        kaleyra_client_factory(endpoint="sms", callback_url="http://example.invalid/hook")
    with pytest.raises(ConfigError, match="NA pod"):
        Client("kaleyra", api_key="k", sid="HX1US", region="na", endpoint="messages", env={})
    na = Client("kaleyra", api_key="k", sid="HX1US", region="na", env={}).provider
    assert isinstance(na, KaleyraProvider)
    assert (na.endpoint, na.transport.base_url) == ("sms", "https://api.na.kaleyra.ai")
    messages = kaleyra_client_factory()
    with pytest.raises(InvalidRequest, match="/sms endpoint"):
        messages.provider.send(messages.prepare(Message("x", send_at=at), [num("6001")])[0])


def wait_for(sink: HookSink, n: int) -> list:
    """Pushes are delivered by the emulator's background thread; wait (briefly) for ``n``."""
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        hooks = sink.webhooks()
        if len(hooks) >= n:
            return hooks
        time.sleep(0.02)
    raise AssertionError(f"expected {n} callbacks, got {len(sink.webhooks())}")


def test_the_documented_status_response_parses(kaleyra: Client, kaleyra_emulator: KaleyraEmulator) -> None:
    # https://developers.kaleyra.io/docs/sms-api-status: the status poll's documented response, verbatim.
    doc = '{"data":[{"campaign_id":"507XXXX-…:1","status":"Delivered","status_details":"DELIVERED"}],"error":{}}'
    kaleyra_emulator.inject("status", status=200, method="GET", path=SEND + "/status", body=doc)
    (report,) = kaleyra.status("507XXXX-…:1").values()
    assert (report.message_id, report.status, report.raw_status) == ("507XXXX-…:1", Status.DELIVERED, "Delivered")
    assert report.batch_id == "507XXXX-…"


def test_secrets_stay_out_of_errors_reprs_and_logs(
    kaleyra_client_factory: Callable[..., Client],
    kaleyra_emulator: KaleyraEmulator,
    hook_sink: HookSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    client = callback_client(kaleyra_client_factory, hook_sink)
    client.check()
    kaleyra_emulator.inject("status", status=400, path=SEND, body='{"error":{"callback":"bad header"}}')
    refused = client.send(num("7000"), "Hi").results[0]
    with pytest.raises(AuthError) as denied:
        kaleyra_client_factory(api_key="wrong-key-123").check()
    shown = " ".join(
        [refused.error or "", str(denied.value), repr(client.provider), repr(client.settings), caplog.text]
    )
    assert "field 'callback'" in shown
    for secret in (KALEYRA_SECRET, "test-key", "wrong-key-123"):
        assert secret not in shown


def test_a_number_that_replied_stop_is_not_sent_again(kaleyra: Client, kaleyra_emulator: KaleyraEmulator) -> None:
    kaleyra.send(num("0007"), "Reply STOP to opt out")
    kaleyra_emulator.advance(10)
    again = kaleyra.send(num("0007"), "Are you sure?")
    kaleyra_emulator.advance(10)
    (report,) = kaleyra.status(again.message_ids).values()
    assert (report.status, report.reason) == (Status.REJECTED, "OPT-OUT")
