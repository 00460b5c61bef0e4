"""No hostile body gets a 5xx: every parser answers 400 for anything that is not a valid event.

A 5xx makes a provider retry the same poison body forever, so the receiver answers 5xx
only when the inbox cannot store the events. The bodies here are authentic (they pass
verification), so the parsers themselves are exercised: deep nesting, huge and
non-finite numbers, invalid UTF-8, wrong JSON types at every field of a valid event,
and bodies at the size limit.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsrelay.config import ProviderSettings
from smsrelay.errors import WebhookError
from smsrelay.inbox import open_inbox
from smsrelay.model import Delivery, event_to_dict
from smsrelay.providers import provider_class
from smsrelay.providers.base import Provider
from smsrelay.receiver import DEFAULT_MAX_BODY, Route, create_app
from smsrelay.webhooks import MAX_JSON_DEPTH, WebhookRequest, json_body
from tests.fixtures.receiver import run_receiver

SECRET = "hostile-webhook-secret-0123"
MAX_BODY = DEFAULT_MAX_BODY
AT = datetime(2026, 1, 1, tzinfo=UTC)

# One valid JSON event per parser, from the vendors' documented samples (see each adapter).
VALID: dict[str, dict[str, Any]] = {
    "sandbox": {
        "events": [event_to_dict(Delivery("e1", "sandbox", "+61491570156", AT, "sbx-1", raw={}, raw_status="x"))]
    },
    "kudosity": {
        "event_type": "SMS_STATUS",
        "timestamp": "2026-08-05T11:58:03Z",
        "status": {"id": "m1", "type": "SMS", "sender": "61491570017", "recipient": "61491570006", "status": "x"},
    },
    "kaleyra": {"id": "b:1", "status": "Delivered", "recipient": "+919900000000", "timestamp": "2026-01-01 00:00:00"},
    "smskit": {
        "event": "sms:failed",
        "eventId": "evt_A",
        "jobId": "job_1",
        "status": "DeadLetter",
        "recipient": "+254712345678",
        "attempts": 3,
        "createdAt": "2026-06-23T10:00:00Z",
        "failedAt": "2026-06-23T10:03:00Z",
        "error": "Retries exhausted",
    },
}
OPTIONS: dict[str, dict[str, Any]] = {"kaleyra": {"sid": "HXHOSTILE0000001"}, "kudosity": {"api": "v2"}}


def adapter(name: str, tmp_path_factory: pytest.TempPathFactory) -> Provider:
    options = dict(OPTIONS.get(name, {}))
    if name == "sandbox":
        options["path"] = str(tmp_path_factory.mktemp("sbx") / "sandbox.db")
    settings_ = ProviderSettings(name, api_key="hostile-key-0123", webhook_secret=SECRET, options=options)
    return provider_class(name)(settings_)


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Provider]:
    return {name: adapter(name, tmp_path_factory) for name in VALID}


POISON = {
    "100,000 [": b"[" * 100_000,
    "100,000 {": b'{"a":' * 100_000,
    "deep but closed": b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1),
    "NaN": b'{"events": NaN}',
    "Infinity": b'{"event_type": Infinity}',
    "1e999": b'{"event_type": "SMS_STATUS", "timestamp": 1e999}',
    "a 5000-digit integer": b'{"id": ' + b"9" * 5000 + b"}",
    "invalid UTF-8": b'{"id": "\xff\xfe"}',
    "a lone surrogate": b'{"id": "\\ud800", "status": "Delivered"}',
    "at the size limit": json.dumps({"id": "x" * (MAX_BODY - 20)}).encode()[:MAX_BODY],
}


def parse(provider: Provider, body: bytes) -> list[Any] | int:
    """The events, or the 4xx status of the ``WebhookError``; any other exception fails the test."""
    try:
        return provider.parse_webhook(
            WebhookRequest("POST", "/", headers={"Content-Type": "application/json"}, body=body)
        )
    except WebhookError as exc:
        assert exc.status_code is not None and 400 <= exc.status_code < 500
        return exc.status_code


@pytest.mark.parametrize("name", sorted(VALID))
@pytest.mark.parametrize("poison", sorted(POISON))
def test_poison_bodies_are_a_400_from_every_parser(adapters, name: str, poison: str) -> None:
    outcome = parse(adapters[name], POISON[poison])
    assert outcome == 400 or isinstance(outcome, list)


def test_the_strict_json_reader_refuses_what_json_loads_would_take() -> None:
    for body in (b"[" * 100_000, b"[NaN]", b"[-Infinity]", b"[1e999]", b"\xff"):
        with pytest.raises(WebhookError) as info:
            json_body(WebhookRequest("POST", "/", body=body), "sandbox")
        assert info.value.status_code == 400
    # Brackets inside strings are text, not nesting.
    assert json_body(WebhookRequest("POST", "/", body=b'["' + b"[" * 200 + b'"]'), "sandbox") == ["[" * 200]


WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.just("9" * 400),
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a field (and to every nested object or list) in a JSON value."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths(v, (*prefix, i))
    return out


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = replaced(copy[path[0]], path[1:], new)
    return copy


@pytest.mark.parametrize("name", sorted(VALID))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_wrong_type_at_any_field_is_events_or_a_400(adapters, name: str, data: st.DataObject) -> None:
    valid = VALID[name]
    path = data.draw(st.sampled_from(paths(valid)))
    body = json.dumps(replaced(valid, path, data.draw(WRONG))).encode()
    outcome = parse(adapters[name], body)
    assert outcome == 400 or isinstance(outcome, list)


@pytest.fixture(scope="module")
def receiver(adapters, tmp_path_factory):
    inbox = open_inbox(tmp_path_factory.mktemp("hostile") / "inbox.db")
    rec = run_receiver(create_app([Route(n, (a,)) for n, a in adapters.items()], inbox, max_body=MAX_BODY))
    yield rec
    rec.stop()
    inbox.close()


def authentic(name: str) -> tuple[str, dict[str, str]]:
    """The query and headers that pass ``name``'s verification (shared-secret routes)."""
    if name == "kudosity":
        return f"token={SECRET}", {}
    return "", {"X-Smsrelay-Token": SECRET}


@pytest.mark.parametrize("name", ["sandbox", "kudosity", "kaleyra"])
@pytest.mark.parametrize("poison", sorted(POISON))
def test_the_receiver_answers_an_authentic_poison_body_with_400(receiver, name: str, poison: str) -> None:
    query, headers = authentic(name)
    resp = requests.post(
        f"{receiver.url}/webhooks/{name}?{query}",
        data=POISON[poison],
        headers={**headers, "Content-Type": "application/json"},
        timeout=30,
    )
    assert resp.status_code in (200, 400), (poison, resp.status_code, resp.text)
    assert resp.status_code == 400 or poison == "at the size limit"


def test_only_a_store_that_cannot_store_answers_5xx(adapters, tmp_path) -> None:
    inbox = open_inbox(tmp_path / "inbox.db")
    rec = run_receiver(create_app([Route("sandbox", (adapters["sandbox"],))], inbox))
    try:
        url = f"{rec.url}/webhooks/sandbox"
        good = json.dumps(VALID["sandbox"]).encode()
        assert requests.post(url, data=good, headers={"X-Smsrelay-Token": SECRET}, timeout=10).status_code == 200
        inbox.close()  # the store is gone: the provider must retry later
        (tmp_path / "inbox.db").unlink()
        (tmp_path / "inbox.db").mkdir()
        resp = requests.post(url, data=good, headers={"X-Smsrelay-Token": SECRET}, timeout=10)
        assert resp.status_code == 503
        poison = requests.post(url, data=b"[" * 100_000, headers={"X-Smsrelay-Token": SECRET}, timeout=10)
        assert poison.status_code == 400
    finally:
        rec.stop()
