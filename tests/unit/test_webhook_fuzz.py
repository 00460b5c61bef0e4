"""Fuzz every webhook verifier and parser, and the receiver in front of them.

Arbitrary bytes, headers and query strings (and JSON shaped like providers'
payloads, to get past the first checks) must give either core events or a
``WebhookError`` with a 4xx status: never another exception, never a 5xx.
"""

from __future__ import annotations

import json
import tempfile
from datetime import datetime

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsrelay.config import ProviderSettings
from smsrelay.errors import ConfigError, Unsupported, WebhookError
from smsrelay.inbox import open_inbox
from smsrelay.model import Delivery, LinkHit, OptOut, Reply
from smsrelay.providers import PROVIDERS, provider_class
from smsrelay.receiver import Route, create_app
from smsrelay.webhooks import WebhookRequest
from tests.fixtures.receiver import run_receiver

SECRET = "fuzz-webhook-secret-0123"
# Option variants per provider: Kudosity serves two wire formats from one adapter.
VARIANTS = {"kudosity": [{"api": "v2"}, {"api": "v1"}]}
EXTRA_OPTIONS = {"kaleyra": {"sid": "HXFUZZ0000000001"}}


def _webhook_adapters() -> list[tuple[str, object]]:
    out = []
    state = tempfile.mkdtemp(prefix="smsrelay-fuzz-")
    for name in PROVIDERS:
        try:
            cls = provider_class(name)
        except ConfigError:
            continue  # not landed
        for variant in VARIANTS.get(name, [{}]):
            options = {**EXTRA_OPTIONS.get(name, {}), **variant}
            if name == "sandbox":
                options["path"] = f"{state}/sandbox.db"
            allowed = {k: v for k, v in options.items() if k in cls.options}
            settings_ = ProviderSettings(
                name,
                api_key="fuzz-api-key-0123",
                api_secret="fuzz-api-secret-0123",
                webhook_secret=SECRET,
                options=allowed,
            )
            adapter = cls(settings_)
            try:
                adapter.parse_webhook(WebhookRequest("POST", "/", body=b"{}"))
            except Unsupported:
                continue  # pushes nothing (e.g. ME-SMS polls only)
            except WebhookError:
                pass
            label = name + (f"-{variant['api']}" if "api" in variant else "")
            out.append((label, adapter))
    return out


ADAPTERS = _webhook_adapters()

FIELD_NAMES = [
    "event",
    "event_type",
    "type",
    "status",
    "message_id",
    "messageId",
    "id",
    "message_ref",
    "ref",
    "mobile",
    "msisdn",
    "to",
    "from",
    "sender",
    "phone",
    "number",
    "message",
    "text",
    "body",
    "response",
    "timestamp",
    "created_at",
    "datetime_entry",
    "time",
    "receivedAt",
    "data",
    "url",
    "link",
    "payload",
    "error",
    "reason",
    "provider",
    "kind",
    "event_id",
    "phone_number",
    "occurred_at",
    "events",
    "parts",
    "callback",
    "response_id",
    "long_message",
    "sms_id",
    "ip",
    "date",
    "deliveredAt",
    "failedAt",
]
VALUES = [
    "SMS_STATUS",
    "SMS_INBOUND",
    "LINK_HIT",
    "OPT_OUT",
    "delivered",
    "DELIVERED",
    "sent",
    "failed",
    "sms:sent",
    "sms:delivered",
    "sms:failed",
    "sms:received",
    "STOP",
    "+61491570156",
    "61491570156",
    "0491570156",
    "2026-01-01T00:00:00Z",
    "2026-01-01 00:00:00",
    "1767225600",
    "reply",
    "delivery",
    "sandbox",
    "link_hit",
    "opt_out",
    "",
    "null",
    "-1",
    "1e999",
    "\x00",
    "🙂",
]

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30), st.sampled_from(VALUES)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=10)), inner, max_size=6),
    ),
    max_leaves=25,
)
# Bodies meant to break a parser rather than pass it: deep nesting (a JSON parser recursing
# into 100,000 "[" raised RecursionError), non-finite and huge numbers, invalid UTF-8.
hostile = st.one_of(
    st.integers(min_value=1, max_value=200_000).map(lambda n: b"[" * n),
    st.integers(min_value=60, max_value=5_000).map(lambda n: b'{"events":' * n),
    st.sampled_from([b"NaN", b"[Infinity]", b'{"events": -Infinity}', b"[1e999]", b'{"id": 1e400}']),
    st.integers(min_value=4_000, max_value=20_000).map(lambda n: b'{"id": ' + b"9" * n + b"}"),
    st.binary(min_size=1, max_size=40).map(lambda b: b'{"event_type": "' + b + b'\xff"}'),
)
bodies = st.one_of(
    hostile,
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=8).map(lambda v: json.dumps(v).encode()),
    st.lists(st.dictionaries(st.sampled_from(FIELD_NAMES), json_scalars, max_size=8), max_size=3).map(
        lambda v: json.dumps({"events": v}).encode()
    ),
)
queries = st.one_of(
    st.text(max_size=80),
    st.lists(
        st.tuples(
            st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8)),
            st.one_of(st.sampled_from(VALUES), st.text(max_size=20)),
        ),
        max_size=8,
    ).map(lambda pairs: "&".join(f"{requests.utils.quote(k)}={requests.utils.quote(v)}" for k, v in pairs)),
    st.just(f"token={SECRET}"),
)
HEADER_NAMES = [
    "x-transmitsms-signature",
    "X-SMSKit-Signature",
    "X-SMSKit-Timestamp",
    "X-Smsrelay-Token",
    "Content-Type",
    "Authorization",
]
headers = st.dictionaries(
    st.one_of(st.sampled_from(HEADER_NAMES), st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)),
    st.text(max_size=40),
    max_size=4,
)
requests_ = st.builds(
    WebhookRequest,
    method=st.sampled_from(["GET", "POST", "PUT"]),
    path=st.sampled_from(["/", "/webhooks/x", "/webhooks/x/dlr", "/webhooks/x/mo"]),
    query=queries,
    headers=headers,
    body=bodies,
)

EVENT_TYPES = (Delivery, Reply, LinkHit, OptOut)


@pytest.mark.parametrize(("label", "adapter"), ADAPTERS, ids=[label for label, _ in ADAPTERS])
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests_)
def test_parsers_give_events_or_a_clear_4xx(label, adapter, request):
    for step in (adapter.verify_webhook, adapter.parse_webhook):
        try:
            result = step(request)
        except WebhookError as exc:
            assert exc.status_code is not None and 400 <= exc.status_code < 500, (label, exc)
            assert exc.message
            continue
        if step is adapter.parse_webhook:
            assert isinstance(result, list)
            for event in result:
                assert isinstance(event, EVENT_TYPES)
                assert isinstance(event.event_id, str) and event.event_id
                assert isinstance(event.occurred_at, datetime) and event.occurred_at.tzinfo is not None
                assert isinstance(event.phone, str)


@pytest.fixture(scope="module")
def fuzz_receiver(tmp_path_factory):
    inbox = open_inbox(tmp_path_factory.mktemp("fuzz") / "inbox.db")
    routes = [Route(label, (adapter,)) for label, adapter in ADAPTERS]
    rec = run_receiver(create_app(routes, inbox, max_body=4096))
    yield rec, [label for label, _ in ADAPTERS]
    rec.stop()
    inbox.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), request=requests_)
def test_the_receiver_answers_4xx_or_2xx_never_5xx(fuzz_receiver, data, request):
    rec, labels = fuzz_receiver
    route = data.draw(st.sampled_from([*labels, "nosuch"]))
    safe_headers = {k: v for k, v in request.headers.items() if v.isprintable() and v.isascii() and "\n" not in v}
    try:
        resp = requests.request(
            request.method,
            f"{rec.url}/webhooks/{route}?{request.query}",
            data=request.body,
            headers=safe_headers,
            timeout=10,
        )
    except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, ValueError):
        return  # the client refused to send it; nothing reached the server
    assert resp.status_code in (200, 400, 401, 404, 405, 413), resp.text
    assert requests.get(f"{rec.url}/healthz", timeout=10).status_code == 200
