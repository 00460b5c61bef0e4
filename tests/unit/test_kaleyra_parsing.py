"""Kaleyra's status mapping and callback parser, including hypothesis fuzzing."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsrelay.config import ProviderSettings
from smsrelay.errors import WebhookError
from smsrelay.model import Delivery, OptOut, Reply, Status
from smsrelay.providers.kaleyra import KaleyraProvider, map_status
from smsrelay.webhooks import WebhookRequest


def provider(**options: object) -> KaleyraProvider:
    return KaleyraProvider(
        ProviderSettings("kaleyra", api_key="k", webhook_secret="s3cret", options={"sid": "HX1", **options})
    )


@pytest.mark.parametrize(
    ("status", "trace", "expected", "reason"),
    [
        ("Delivered", "DELIVERED", Status.DELIVERED, None),
        ("DELIVRD", "", Status.DELIVERED, None),
        ("Sent", "SUBMITTED", Status.SENT, None),
        ("ENROUTE", None, Status.SENT, None),
        ("NotSent", "DND-NUMB", Status.REJECTED, "DND-NUMB"),
        ("NOT-SENT", "NOT-SENT/DND-NUMB", Status.REJECTED, "NOT-SENT/DND-NUMB"),
        ("", "NOT-SENT/NO-CREDITS", Status.REJECTED, "NOT-SENT/NO-CREDITS"),
        ("UnDelivered", "ABSENT-SUB", Status.FAILED, "ABSENT-SUB"),
        ("UNDELIVERED", "UNDELIVERED/MEM-EXEC", Status.FAILED, "UNDELIVERED/MEM-EXEC"),
        ("Undelivered", "EXPIRED", Status.EXPIRED, "EXPIRED"),
        ("Failed", "", Status.FAILED, None),
        ("Sent", "SENT - NO DLR", Status.UNKNOWN, "SENT - NO DLR"),
        ("SomethingNew", "", Status.UNKNOWN, None),
    ],
)
def test_status_and_trace_map_onto_the_lifecycle(
    status: str, trace: str | None, expected: Status, reason: str | None
) -> None:
    assert map_status(status, trace) == (expected, reason)


def test_the_documented_incoming_sample_is_a_reply_and_an_opt_out() -> None:
    # https://developers.kaleyra.io/docs/receive-message: the incoming-SMS callback profile's sample, verbatim.
    sample = (
        '{"description":"Message has been sent","id":"90eX…48","kid":"90e7…08","recipient":"+91XXXXXXXXXX",'
        '"source":"91XXXXXXXXXX","status":"SENT","status_trace":"SENT","message":"UNSUBSCRIBE THE OFFER message",'
        '"keyword":"SAMPLE","operator":"JIO","circle":"JIO ASSAM","timestamp":"2025-04-17 18:35:20",'
        '"parts[n]":"SAMPLE"}'
    )
    events = provider(region="in").parse_webhook(WebhookRequest("POST", "/hook", body=sample.encode()))
    reply, opt_out = events
    assert isinstance(reply, Reply) and isinstance(opt_out, OptOut)
    assert reply.text == "UNSUBSCRIBE THE OFFER message" and reply.message_id == "90eX…48"
    assert reply.occurred_at == datetime(2025, 4, 17, 13, 5, 20, tzinfo=UTC)  # IST, the IN pod's zone
    assert opt_out.phone == reply.phone and opt_out.event_id != reply.event_id


def test_timestamps_without_a_zone_use_the_configured_one() -> None:
    body = json.dumps({"id": "b:1", "status": "Delivered", "timestamp": "2026-01-01 00:00:00"}).encode()
    utc = provider().parse_webhook(WebhookRequest("POST", "/h", body=body))[0]
    ist = provider(timezone="Asia/Kolkata").parse_webhook(WebhookRequest("POST", "/h", body=body))[0]
    assert (utc.occurred_at - ist.occurred_at).total_seconds() == 5.5 * 3600
    zoned = json.dumps({"id": "b:1", "status": "Delivered", "timestamp": "2026-01-01 00:00:00+00:00"}).encode()
    assert provider(timezone="Asia/Kolkata").parse_webhook(WebhookRequest("POST", "/h", body=zoned))[0].occurred_at == (
        datetime(2026, 1, 1, tzinfo=UTC)
    )


def test_a_get_dlr_and_a_redelivery_share_one_event_id() -> None:
    req = WebhookRequest("GET", "/h", query="id=abc%3A1&status=Delivered&recipient=919876512345&ref=k1")
    first, again = provider().parse_webhook(req)[0], provider().parse_webhook(req)[0]
    assert isinstance(first, Delivery)
    assert (first.message_id, first.phone, first.message_ref, first.batch_id) == ("abc:1", "+919876512345", "k1", "abc")
    assert first.event_id == again.event_id


@pytest.mark.parametrize(
    "req",
    [
        WebhookRequest("POST", "/h", body=b"[1, 2]"),
        WebhookRequest("POST", "/h", body=b"{not json"),
        WebhookRequest("POST", "/h", body=b'{"status": "Delivered"}'),
        WebhookRequest("POST", "/h", body=b'{"id": "x:1"}'),
        WebhookRequest("GET", "/h", query=""),
        WebhookRequest("POST", "/h", body=b'{"id": "x:1", "status": "Sent", "timestamp": "yesterday"}'),
        WebhookRequest("POST", "/h", body=b'{"message": "hi"}'),
        WebhookRequest("POST", "/h", body=b"\xff\xfe"),
    ],
)
def test_malformed_callbacks_are_400s(req: WebhookRequest) -> None:
    with pytest.raises(WebhookError) as exc:
        provider().parse_webhook(req)
    assert exc.value.status_code == 400


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST"]),
    query=st.text(max_size=80),
    body=st.one_of(
        st.binary(max_size=200),
        st.dictionaries(
            st.sampled_from(
                ["id", "status", "status_trace", "recipient", "source", "message", "timestamp", "ref", "kid"]
            ),
            st.one_of(st.text(max_size=30), st.integers(), st.none(), st.lists(st.integers(), max_size=2)),
        ).map(lambda d: json.dumps(d).encode()),
    ),
    ctype=st.sampled_from(["application/json", "application/x-www-form-urlencoded", ""]),
)
def test_the_parser_never_raises_anything_but_webhook_error(method: str, query: str, body: bytes, ctype: str) -> None:
    req = WebhookRequest(method, "/h", query=query, headers={"Content-Type": ctype}, body=body)
    try:
        events = provider().parse_webhook(req)
    except WebhookError as exc:
        assert exc.status_code == 400
    else:
        assert events and all(e.provider == "kaleyra" for e in events)


def test_what_a_process_remembers_of_its_sends_is_bounded() -> None:
    from smsrelay.providers.kaleyra import _Recent

    recent = _Recent[str](3)
    for i in range(10):
        recent[f"id{i}"] = f"+9198765{i:05d}"
        recent.get("id0")  # used again and again: stays
    assert len(recent) == 3
    assert recent.get("id0") == "+919876500000" and recent.get("id9") == "+919876500009"
    assert recent.get("id1") is None  # the least recently used went first
