"""Kudosity's pure parts: status tables, timestamps, PHP's query JSON, and webhook parsing under fuzz."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsrelay.config import ProviderSettings
from smsrelay.errors import WebhookError
from smsrelay.model import Status
from smsrelay.providers.kudosity import (
    V1_STATUS,
    V2_STATUS,
    KudosityProvider,
    parse_time,
    php_json_of_query,
    php_parse_str,
    v1_signature,
)
from smsrelay.webhooks import WebhookRequest


def v2() -> KudosityProvider:
    return KudosityProvider(ProviderSettings("kudosity", api_key="k-123456", webhook_secret="tok-123456"))


def v1() -> KudosityProvider:
    return KudosityProvider(
        ProviderSettings("kudosity", api_key="k-123456", api_secret="s-123456", options={"api": "v1"})
    )


@pytest.mark.parametrize("raw", ["delivered", "DELIVERED", "Delivered"])
def test_v2_status_is_matched_case_insensitively_and_keeps_raw(raw):
    body = {"event_type": "SMS_STATUS", "timestamp": "2026-08-05T11:58:03Z"}
    body["status"] = {"id": "m1", "type": "SMS", "sender": "61491570017", "recipient": "61491570006", "status": raw}
    [d] = v2().parse_v2_event(body)
    assert d.status is Status.DELIVERED and d.raw_status == raw


def test_status_tables_are_complete_and_sane():
    assert V2_STATUS["SOFT_BOUNCE"] is Status.EXPIRED and V2_STATUS["ACCEPTED"] is Status.SENT
    assert not V2_STATUS["ACCEPTED"].final  # ACCEPTED ≠ delivered (the V2 OpenAPI's Status)
    assert V1_STATUS == {
        "delivered": Status.DELIVERED,
        "pending": Status.SENT,
        "soft-bounce": Status.EXPIRED,
        "hard-bounce": Status.FAILED,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-03-28T06:12:52.450674000Z", datetime(2022, 3, 28, 6, 12, 52, 450674, tzinfo=UTC)),
        ("2026-08-05T11:57:59Z", datetime(2026, 8, 5, 11, 57, 59, tzinfo=UTC)),
        ("2025-05-14T01:05:15.728779Z", datetime(2025, 5, 14, 1, 5, 15, 728779, tzinfo=UTC)),
        ("2020-06-18 02:42:06", datetime(2020, 6, 18, 2, 42, 6, tzinfo=UTC)),  # V1: UTC without a zone
        ("2020-06-18T12:42:06+10:00", datetime(2020, 6, 18, 2, 42, 6, tzinfo=UTC)),
        ("yesterday", None),
        ("", None),
    ],
)
def test_tolerant_timestamps(text, expected):
    assert parse_time(text) == expected


def test_php_parse_str_and_json_encode_rules():
    assert php_parse_str("a.b=1&a_b=2&c+d=3") == {"a_b": "2", "c_d": "3"}
    assert php_json_of_query("url=https://x.example/a?b=c&t=caf%C3%A9+%F0%9F%98%80") == (
        '{"url":"https:\\/\\/x.example\\/a?b=c","t":"caf\\u00e9 \\ud83d\\ude00"}'
    )
    assert php_json_of_query("") == "[]"
    assert php_json_of_query("l[]=a&l[]=b") == '{"l":["a","b"]}'


def test_v2_webhook_token_accepts_only_the_exact_secret():
    p = v2()
    p.verify_webhook(WebhookRequest("POST", "/k", "a=1&token=tok-123456"))
    for query in ("token=tok-12345", "token=TOK-123456", "token=", "x=tok-123456"):
        with pytest.raises(WebhookError) as info:
            p.verify_webhook(WebhookRequest("POST", "/k", query))
        assert info.value.status_code == 401


def test_v1_signature_over_own_params_first():
    query = "src=crm&message_id=1&mobile=61400000001&datetime=2020-05-16+12%3A10%3A00&status=delivered&user_id=1"
    sig = v1_signature(query, "s-123456")
    v1().verify_webhook(WebhookRequest("GET", "/dlr", query, {"X-Transmitsms-Signature": sig.upper()}))
    [d] = v1().parse_webhook(WebhookRequest("GET", "/dlr", query))
    assert d.message_id == "1:61400000001" and d.status is Status.DELIVERED
    assert d.occurred_at == datetime(2020, 5, 16, 12, 10, tzinfo=UTC)


def test_non_sms_channels_are_acknowledged_without_events():
    body = {"event_type": "WHATSAPP_STATUS", "timestamp": "2026-01-01T00:00:00Z", "status": {}}
    assert v2().parse_webhook(WebhookRequest("POST", "/k", body=json.dumps(body).encode())) == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=6,
)
event_like = st.fixed_dictionaries(
    {"event_type": st.sampled_from(["SMS_STATUS", "SMS_INBOUND", "LINK_HIT", "OPT_OUT", "MMS_STATUS", "X"])},
    optional={
        "timestamp": json_values,
        "status": json_values,
        "mo": json_values | st.fixed_dictionaries({"last_message": json_values, "sender": json_values}),
        "link_hit": json_values,
        "opt_out": json_values,
    },
)


@settings(max_examples=100, deadline=None)
@given(body=event_like.map(json.dumps).map(str.encode) | st.binary(max_size=200))
def test_v2_parser_raises_only_webhook_error(body):
    try:
        events = v2().parse_webhook(WebhookRequest("POST", "/k", body=body))
    except WebhookError as exc:
        assert exc.status_code == 400
    else:
        assert all(e.occurred_at.tzinfo is not None for e in events)


@settings(max_examples=100, deadline=None)
@given(query=st.text(max_size=120))
def test_v1_parser_and_verifier_raise_only_webhook_error(query):
    req = WebhookRequest("GET", "/cb", query, {"x-transmitsms-signature": "ab" * 32})
    with pytest.raises(WebhookError) as refused:  # "ab" * 32 is no query's signature
        v1().verify_webhook(req)
    assert refused.value.status_code in (400, 401)
    try:
        events = v1().parse_webhook(req)
    except WebhookError as exc:
        assert exc.status_code in (400, 401)
    else:
        assert all(e.occurred_at.tzinfo is not None and e.event_id for e in events)


def test_a_subclass_of_the_kudosity_base_still_gets_the_api_its_settings_name() -> None:
    from smsrelay.providers.kudosity import KudosityV1, KudosityV2

    class Audited(KudosityProvider):
        def check(self) -> None:
            raise RuntimeError("audited")

    v2_settings = ProviderSettings("kudosity", api_key="k")
    v1_settings = ProviderSettings("kudosity", api_key="k", api_secret="s", options={"api": "v1"})
    v2, v1 = Audited(v2_settings), Audited(v1_settings)
    assert isinstance(v2, Audited) and isinstance(v2, KudosityV2) and v2.capabilities.bulk_max == 1
    assert isinstance(v1, Audited) and isinstance(v1, KudosityV1) and v1.capabilities.bulk_max == 500
    with pytest.raises(RuntimeError, match="audited"):  # the subclass's override wins
        v1.check()
    assert type(Audited(v2_settings)) is type(v2)  # one class per pair, not one per instance
