"""Kudosity's error bodies, as the emulators serve them, mapped onto the core taxonomy."""

from __future__ import annotations

import json

import pytest

from smsrelay.errors import (
    AuthError,
    InsufficientCredit,
    InvalidRequest,
    NotFound,
    ProviderServerError,
    RateLimited,
)

PROBLEM = {
    "type": "https://developers.kudosity.com/reference/errors#input-validation",
    "title": "Invalid Request",
    "detail": "The request contained invalid, or malformed parameters.",
    "status": 400,
    "issues": [{"name": "account_id", "code": 2200, "message": "The account_id supplied was invalid."}],
}


@pytest.mark.parametrize(
    ("status", "body", "cls", "text", "field"),
    [
        # V2 SMS and webhook endpoints: a plain string (https://developers.kudosity.com/openapi/public-openapi.yaml).
        (400, {"error": "Validation Error: recipient: invalid phone number"}, InvalidRequest, "recipient", "recipient"),
        # V2 Problem Details wrapped in CommonErrorResponse (OAS2).
        (
            400,
            {"error": PROBLEM, "request": {}, "meta": {}},
            InvalidRequest,
            "account_id supplied was invalid",
            "account_id",
        ),
        # The error registry's flat variant, 422 with `field` instead of `name`.
        (
            422,
            {**PROBLEM, "status": 422, "issues": [{"code": 2200, "field": "sender", "message": "bad"}]},
            InvalidRequest,
            "Invalid Request",
            "sender",
        ),
        (
            401,
            {"error": {"code": "AUTH_FAILED", "description": "The auth data you have provided is invalid."}},
            AuthError,
            "AUTH_FAILED",
            None,
        ),
        (
            400,
            {"error": {"code": "LEDGER_ERROR", "description": "Insufficient funds"}},
            InsufficientCredit,
            "LEDGER_ERROR",
            None,
        ),
        (
            400,
            {"error": {"code": "BAD_CALLER_ID", "description": "Caller ID invalid"}},
            InvalidRequest,
            "Caller ID invalid",
            "sender",
        ),
        (
            400,
            {"error": {"code": "FIELD_INVALID", "description": "If you provide 'keyword', you must provide 'number'"}},
            InvalidRequest,
            "'number'",
            None,
        ),
        (404, {"error": "SMS not found"}, NotFound, "SMS not found", None),
        (429, {"error": {"code": "OVER_LIMIT", "description": "Too Many Requests"}}, RateLimited, "OVER_LIMIT", None),
        (
            500,
            {"error": {"type": "x#server-error", "title": "Server Error", "status": 500}},
            ProviderServerError,
            "Server Error",
            None,
        ),
        (502, "<html>Bad gateway</html>", ProviderServerError, "Bad gateway", None),
        (403, "", AuthError, "403", None),
    ],
)
def test_error_bodies_map_to_the_core_taxonomy_keeping_kudosity_text(
    kudosity_v2_factory, kudosity_v2_emulator, status, body, cls, text, field
):
    client = kudosity_v2_factory(retries=1)
    raw = body if isinstance(body, str) else json.dumps(body)
    kudosity_v2_emulator.inject("status", status=status, body=raw, path="/v2/sms", method="GET")
    with pytest.raises(cls) as info:
        client.check()
    err = info.value
    assert text in str(err)
    assert err.status_code == status
    if field is not None:
        assert err.field == field
