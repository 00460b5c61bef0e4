"""SMSKit push verification and parsing: the signature assumption, the replay window, fuzzing."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsrelay import ConfigError, Delivery, InvalidRequest, ManualClock, OptOut, Reply, Status, WebhookError
from smsrelay.config import ProviderSettings
from smsrelay.providers.smskit import SIGNATURE_HEADER, TIMESTAMP_HEADER, SmsKitProvider, signature
from smsrelay.webhooks import WebhookRequest

SECRET = "whsec_unit_0123456789abcdef"
NOW = datetime(2026, 6, 23, 10, 5, 0, tzinfo=UTC)


@pytest.fixture
def provider() -> SmsKitProvider:
    settings = ProviderSettings("smskit", api_key="sk_unit", webhook_secret=SECRET, base_url="http://127.0.0.1:9")
    return SmsKitProvider(settings, clock=ManualClock(NOW))


def push(body: bytes, *, secret: str = SECRET, at: datetime = NOW, headers: dict[str, str] | None = None):
    stamp = str(int(at.timestamp()))
    hdrs = {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: signature(secret, stamp, body)}
    hdrs.update(headers or {})
    return WebhookRequest("POST", "/hooks/smskit", headers=hdrs, body=body)


def test_the_signature_scheme_is_hmac_sha256_over_timestamp_dot_body():
    body = b'{"event":"sms:received"}'
    expected = hmac.new(SECRET.encode(), b"1750672800." + body, hashlib.sha256).hexdigest()
    assert signature(SECRET, "1750672800", body) == "sha256=" + expected


def test_an_authentic_push_verifies(provider):
    provider.verify_webhook(push(b"{}"))


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda r: WebhookRequest(r.method, r.path, headers={}, body=r.body), "no X-SMSKit-Signature"),
        (lambda r: push(r.body + b" "), None),
        (lambda r: push(r.body, secret="wrong-secret-0123456"), "does not match"),
        (lambda r: push(r.body, headers={TIMESTAMP_HEADER: "yesterday"}), "unix seconds"),
        (lambda r: push(r.body, at=datetime(2026, 6, 23, 9, 0, tzinfo=UTC)), "replay window"),
        (lambda r: push(r.body, at=datetime(2026, 6, 23, 11, 0, tzinfo=UTC)), "replay window"),
    ],
)
def test_a_forged_stale_or_unsigned_push_is_401(provider, mutate, needle):
    good = push(b'{"event":"sms:received"}')
    bad = mutate(good)
    if needle is None:  # the body changed under a signature made for the old body
        bad = WebhookRequest(bad.method, bad.path, headers=good.headers, body=bad.body)
        needle = "does not match"
    with pytest.raises(WebhookError) as err:
        provider.verify_webhook(bad)
    assert err.value.status_code == 401 and needle in str(err.value)
    assert SECRET not in str(err.value)


def test_without_a_configured_secret_every_push_is_refused():
    bare = SmsKitProvider(ProviderSettings("smskit", api_key="sk_unit"), clock=ManualClock(NOW))
    with pytest.raises(WebhookError) as err:
        bare.verify_webhook(push(b"{}"))
    assert err.value.status_code == 401 and "webhook_secret" in str(err.value)


def test_status_events_map_and_keep_the_event_id(provider):
    body = {
        "event": "sms:failed",
        "eventId": "evt_A",
        "jobId": "job_1",
        "status": "DeadLetter",
        "recipient": "+254712345678",
        "attempts": 3,
        "createdAt": "2026-06-23T10:00:00Z",
        "failedAt": "2026-06-23T10:03:00Z",
        "error": "Retries exhausted",
    }
    [event] = provider.parse_webhook(push(json.dumps(body).encode()))
    assert isinstance(event, Delivery)
    assert (event.event_id, event.message_id, event.status, event.raw_status) == (
        "evt_A",
        "job_1",
        Status.FAILED,
        "DeadLetter",
    )
    assert event.reason == "dead_letter: Retries exhausted"
    assert event.occurred_at == datetime(2026, 6, 23, 10, 3, tzinfo=UTC)


def test_a_stop_reply_gives_a_reply_and_an_opt_out(provider):
    body = {"event": "sms:received", "eventId": "evt_S", "from": "+254712345678", "to": "+254700000000"}
    body |= {"content": "stop please", "receivedAt": "2026-06-23T10:05:00Z"}
    reply, opt_out = provider.parse_webhook(push(json.dumps(body).encode()))
    assert isinstance(reply, Reply) and isinstance(opt_out, OptOut)
    assert opt_out.phone == reply.phone == "+254712345678" and opt_out.event_id != reply.event_id


def test_unknown_event_types_are_ignored(provider):
    assert provider.parse_webhook(push(b'{"event":"webhook:ping","eventId":"evt_P"}')) == []


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b'{"event":"sms:delivered"}',
        b'{"event":"sms:delivered","eventId":"e","jobId":"j","deliveredAt":"soon"}',
        b'{"event":"sms:received","eventId":"e"}',
        b'{"event":"sms:received","eventId":"e","from":"+1","content":5}',
        b"[1, 2]",
        b"[" * 100000,
    ],
)
def test_malformed_pushes_are_400(provider, body):
    with pytest.raises(WebhookError) as err:
        provider.parse_webhook(push(body))
    assert err.value.status_code == 400


_FUZZ = SmsKitProvider(ProviderSettings("smskit", api_key="sk_unit"), clock=ManualClock(NOW))
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
_field = st.one_of(st.none(), st.integers(), st.text(max_size=30), st.sampled_from(["", "Z", "2026-06-23T10:00:00Z"]))


@settings(max_examples=300, deadline=None)
@given(
    event=st.sampled_from(["sms:sent", "sms:delivered", "sms:failed", "sms:received", "x", None]),
    fields=st.dictionaries(
        st.sampled_from(
            ["eventId", "jobId", "status", "recipient", "from", "to", "content", "receivedAt", "deliveredAt", "sentAt"]
        ),
        _field,
    ),
)
def test_fuzzed_payloads_parse_or_raise_webhook_error_only(event, fields):
    body = json.dumps({"event": event, **fields}).encode()
    try:
        events = _FUZZ.parse_webhook(WebhookRequest("POST", "/h", body=body))
    except WebhookError as exc:
        assert exc.status_code == 400
        return
    for e in events:
        assert e.occurred_at.tzinfo is not None and e.event_id


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | _json.map(lambda v: json.dumps(v).encode()))
def test_fuzzed_bodies_parse_or_raise_webhook_error_only(body):
    try:
        events = _FUZZ.parse_webhook(WebhookRequest("POST", "/h", body=body))
    except WebhookError as exc:
        assert exc.status_code == 400
    else:
        assert all(e.occurred_at.tzinfo is not None and e.event_id for e in events)


@pytest.mark.parametrize(
    ("options", "field"),
    [({"priority": 11}, "priority"), ({"devices": "phone-1"}, "devices"), ({"devices": "dvc_X:a"}, "devices")],
)
def test_bad_options_are_refused_at_construction_naming_the_field(options, field):
    with pytest.raises(InvalidRequest) as err:
        SmsKitProvider(ProviderSettings("smskit", api_key="sk_unit", options=options))
    assert err.value.field == field


def test_unknown_option_in_config_names_the_setting():
    from smsrelay.config import settings_from_mapping

    with pytest.raises(ConfigError) as err:
        settings_from_mapping({"provider": "smskit", "api_key": "k", "smskit": {"priorty": 3}}, env={})
    assert err.value.field == "smskit.priorty"
