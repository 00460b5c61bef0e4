"""Kudosity's emulators and adapter held against the published OpenAPI descriptions.

Every request the adapter makes must validate against the spec's request schema,
and every emulator response against its response schema (openapi-core). Where the
spec and the research notes (kudosity.md) disagree, the emulator follows the
observed behaviour, and the test says so next to the deviation.
"""

from __future__ import annotations

import copy
import json
import pathlib
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import pytest
import yaml
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_schema_validator import OAS30Validator
from werkzeug.datastructures import Headers, ImmutableMultiDict

from smsrelay.emulators.base import EmuRequest, EmuResponse
from smsrelay.errors import AuthError, InvalidRequest, NotFound
from smsrelay.model import Delivery, LinkHit, OptOut, Reply, Status
from smsrelay.providers.kudosity import V2_STATUS
from smsrelay.webhooks import WebhookRequest
from tests.fixtures.kudosity import wait_for_pushes

HERE = pathlib.Path(__file__).parent / "kudosity"
V2_SPEC: dict[str, Any] = yaml.safe_load((HERE / "transmit-message-api-v2.openapi.yaml").read_text())
V1_SPEC: dict[str, Any] = json.loads((HERE / "transmit-sms-api-v1.openapi.json").read_text())
V2_HOST = "https://api.transmitmessage.com"
V1_HOST = "https://api.transmitsms.com"


@dataclass
class SpecRequest:
    """An emulator-recorded request in openapi-core's request protocol."""

    host_url: str
    path: str
    method: str
    body: bytes | None
    content_type: str
    parameters: RequestParameters = field(default_factory=RequestParameters)

    @classmethod
    def of(cls, req: EmuRequest, host: str) -> SpecRequest:
        return cls(
            host_url=host,
            path=req.path,
            method=req.method.lower(),
            body=req.body or None,
            content_type=(req.header("Content-Type") or "").lower(),
            parameters=RequestParameters(
                query=ImmutableMultiDict(parse_qsl(req.query, keep_blank_values=True)),
                header=Headers(dict(req.headers)),
                cookie=ImmutableMultiDict(),
            ),
        )


@dataclass
class SpecResponse:
    status_code: int
    data: bytes | None
    headers: Headers
    content_type: str

    @classmethod
    def of(cls, resp: EmuResponse) -> SpecResponse:
        headers = {"Content-Type": "application/json", **resp.headers}
        return cls(resp.status, resp.body, Headers(headers), headers["Content-Type"].lower())


def declared(spec: dict[str, Any], path: str, method: str, status: int) -> bool:
    """True when the spec describes this status for this operation."""
    for pattern, item in spec["paths"].items():
        parts = re.split(r"(\{[^}]+\})", pattern)
        regex = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
        if re.fullmatch(regex, path) and method.lower() in item:
            return str(status) in item[method.lower()]["responses"]
    return False


# -- V1 deviations: the spec against what the research recorded --------------------------
def v1_spec_as_observed() -> dict[str, Any]:
    spec = copy.deepcopy(V1_SPEC)
    paths = spec["paths"]
    # OAS1 marks message_id, keyword_id, keyword and number all required, while its own
    # descriptions make them alternatives ("Required if keyword_id or keyword is not
    # set"); the Kudosity docs list them as filters. We drop the impossible "required".
    form = paths["/get-sms-responses.json"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
    form["schema"].pop("required", None)
    # OAS1 types get-sms-sent's `delivery` as boolean, yet documents the values
    # delivered | failed | pending (Kudosity docs, get-sms-sent).
    sent_form = paths["/get-sms-sent.json"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
    sent_form["schema"]["properties"]["delivery"] = {"type": "string", "enum": ["delivered", "failed", "pending"]}
    # OAS1 types `recipients` as one object with a `delivery_status` object; the docs and
    # https://github.com/kudosity/kudosity-dev-docs describe a paginated list of recipients with a status string.
    sent = paths["/get-sms-sent.json"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    sent["properties"]["recipients"] = {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["msisdn", "delivery_status"],
            "properties": {
                "msisdn": {"type": "integer"},
                "first_name": {"type": "string"},
                "last_name": {"type": "string"},
                "delivery_status": {"type": "string", "enum": ["delivered", "pending", "soft-bounce", "hard-bounce"]},
                # OAS1 types `optout` integer but says "Set to true"; its example has false.
                "optout": {"type": "boolean"},
            },
        },
    }
    # OAS1's example has the page block and `total` at the top level; the schema omits them.
    sent["properties"]["page"] = {
        "type": "object",
        "required": ["count", "number"],
        "properties": {"count": {"type": "integer"}, "number": {"type": "integer"}},
    }
    sent["properties"]["total"] = {"type": "integer"}
    sent["additionalProperties"] = False
    # Kudosity docs (timestamps): V1 timestamps are "YYYY-MM-DD HH:MM:SS" in UTC (the XML example and the
    # timestamps page); OAS1 declares RFC 3339 date-time for send_at.
    # Its own descriptions say so too ("Must be in ISO8601 format YYYY-MM-DD HH:MM:SS").
    v1_time = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"}
    send_form = paths["/send-sms.json"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
    for where, names in (
        (paths["/send-sms.json"]["post"]["responses"]["200"]["content"]["application/json"]["schema"], ["send_at"]),
        (sent["properties"]["message"], ["send_at"]),
        (send_form["schema"], ["send_at"]),
        (form["schema"], ["start", "end"]),
    ):
        for name in names:
            where["properties"][name] = v1_time
    # format-number's `rawinput` is described as "Unused, always returns null" but typed
    # as a non-nullable string; the emulator returns null as described.
    fmt = paths["/format-number.json"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    fmt["properties"]["number"]["properties"]["rawinput"]["nullable"] = True
    return spec


def check_exchanges(openapi: OpenAPI, spec: dict[str, Any], host: str, exchanges: list) -> dict[str, int]:
    """Validate every request, and every declared response; return counts for the test to assert on."""
    counts = {"requests": 0, "responses": 0, "undeclared": 0}
    for req, resp in exchanges:
        sreq = SpecRequest.of(req, host)
        if req.header("Authorization") or req.header("x-api-key"):
            openapi.validate_request(sreq)
            counts["requests"] += 1
        if declared(spec, req.path, req.method, resp.status):
            openapi.validate_response(sreq, SpecResponse.of(resp))
            counts["responses"] += 1
        else:
            counts["undeclared"] += 1
            body = json.loads(resp.body)
            # Undeclared errors keep the shapes the Kudosity docs show: a plain string,
            # or the {code, description} block of the auth and rate-limit errors.
            assert isinstance(body.get("error"), str) or set(body["error"]) >= {"code", "description"}, body
    return counts


# ========================================================================= V2
def test_v2_every_request_and_response_matches_the_spec(kudosity_v2_factory, kudosity_v2_emulator, webhook_sink):
    openapi = OpenAPI.from_dict(V2_SPEC)
    client = kudosity_v2_factory()
    sent = client.send(["+61491570156", "+61491570004", "+61491570007", "+61491570006"], "Hi {{ 'you' }} 👋")
    client.send("+61491570157", "Hi", sender="61400000000")  # 400 Sender not found
    client.status(sent.message_ids[:1])  # 404 during the lag, then 200
    kudosity_v2_emulator.inject("reset_after", path="/v2/sms", method="POST")
    client.send("+61491570158", "Reconciled")  # GET /v2/sms?message_ref=…
    p = client.provider
    hook = p.register_webhook(webhook_sink.url + "/k")
    p.update_webhook(hook.id, events=["delivery"], rate_limit=50)
    p.get_webhook(hook.id)
    p.list_webhooks()
    with pytest.raises(NotFound, match="Webhook not found"):
        p.delete_webhook("00000000-0000-0000-0000-000000000000")
    with pytest.raises(InvalidRequest, match="not a Kudosity V2 id"):
        p.delete_webhook("not-a-uuid")  # refused before sending: the spec's {id} is a UUID
    kudosity_v2_emulator.advance(10)
    kudosity_v2_emulator.advance(3)
    client.events()
    p.delete_webhook(hook.id)
    with pytest.raises(AuthError):
        kudosity_v2_factory(api_key="bad-key-1234567").send("+61491570156", "x")
    counts = check_exchanges(openapi, V2_SPEC, V2_HOST, kudosity_v2_emulator.exchanges)
    assert counts["requests"] == len(kudosity_v2_emulator.exchanges)
    assert counts["responses"] >= 15
    # POST /v2/sms declares no error response; its 400 is the plain string of OAS2's error examples.
    assert counts["undeclared"] >= 1


def test_v2_webhook_pushes_match_the_event_schemas(kudosity_v2, kudosity_v2_emulator, webhook_sink):
    kudosity_v2.provider.register_webhook(webhook_sink.url + "/k")
    kudosity_v2.send(["+61491570156", "+61491570004", "+61491570007", "+61491570006", "+61491570001"], "Hi")
    kudosity_v2_emulator.advance(10)
    wait_for_pushes(kudosity_v2_emulator)
    kinds = set()
    for req in webhook_sink.webhook_requests():
        body = json.loads(req.body)
        assert set(body) >= {"event_type", "timestamp", "webhook_id", "webhook_name"}
        key, schema = EVENT_BODY[body["event_type"]]
        validate(schema, body[key])
        kinds.add(body["event_type"])
    assert kinds == {"SMS_STATUS", "SMS_INBOUND", "LINK_HIT", "OPT_OUT"}


EVENT_BODY = {
    "SMS_STATUS": ("status", "V2Status"),
    "SMS_INBOUND": ("mo", "V2MO"),
    "LINK_HIT": ("link_hit", "V2LinkHit"),
    "OPT_OUT": ("opt_out", "V2OptOut"),
}


def validate(schema_name: str, instance: Any) -> None:
    root = {"$ref": f"#/components/schemas/{schema_name}", "components": V2_SPEC["components"]}
    OAS30Validator(root).validate(instance)


def test_v2_status_table_covers_the_spec_enums():
    schemas = V2_SPEC["components"]["schemas"]
    for name in ("Status", "MessageStatus"):  # 13 values; webhooks add INVALID
        for value in schemas[name]["enum"]:
            assert value in V2_STATUS, f"{name} value {value} has no mapping"
    assert len(schemas["Status"]["enum"]) == 13


# -- the seed check: the research's printed examples and the live captures ----------------
# The webhook payload examples of the Kudosity docs (https://github.com/kudosity/kudosity-dev-docs,
# about-webhooks), verbatim (so some lines are long).
KUDOSITY_MD_EXAMPLES = [
    """{ "event_type":"SMS_STATUS","timestamp":"2025-04-23T00:05:18.567890Z",
  "webhook_id":"fd0e6485-b905-44c1-bd55-fee1d0d6d864","webhook_name":"SMS Status Webhook",
  "status":{"id":"e48d3e71-264e-4afb-9c06-edec1f0bb9d4","type":"SMS","message_ref":"test V2 QA SMS Send",
            "sender":"447507222200","routed_via":"6140000000","recipient":"6140000000","status":"DELIVERED"} }""",
    """{ "event_type":"SMS_INBOUND","timestamp":"2021-05-06T05:16:33.345678Z","webhook_id":"…","webhook_name":"SMS Inbound Webhook",
  "mo":{"type":"SMS","id":"alss-2way-605b31c7-d2c49104","message":"Stop","recipient":"61481074190",
        "routed_via":"447507333300","sender":"447507222200",
        "last_message":{"type":"SMS","id":"a51ebe4e-a412-440e-a8d9-464e68a521cc","message":"Hey, check this out!",
                        "message_ref":"ncc5009d","recipient":"447507222200","routed_via":"447507333300","sender":"61481074190"}}}""",  # noqa: E501
    """{ "event_type":"LINK_HIT","timestamp":"2021-07-20T23:14:04.789012Z","webhook_id":"…","webhook_name":"Link Tracking Webhook",
  "link_hit":{"hits":1,"url":"https://www.example.com/abc",
    "source_message":{"type":"SMS","id":"faf68308-16cd-4cf9-aef7-47342bd405be",
      "message":"Hey, Check this out! http://clckme.info/KYhSsuIH for Opt-out reply STOP or hit opt out link - http://nsub.me/vqHTcCsh",
      "message_ref":"D301","recipient":"61435795809","sender":"61481074185"}}}""",  # noqa: E501
    """{ "event_type":"OPT_OUT","timestamp":"2021-05-06T05:16:20.456789Z","webhook_id":"…","webhook_name":"Opt Out Webhook",
  "opt_out":{"source":"LINK_HIT",
    "source_message":{"type":"SMS","id":"a51ebe4e-…","message":"…","message_ref":"ncc5009d","recipient":"61435790000","sender":"61481074190"}}}""",  # noqa: E501
]
LIVE = sorted((HERE / "live-webhooks").glob("*.json"))


@pytest.mark.parametrize("raw", KUDOSITY_MD_EXAMPLES + [p.read_text() for p in LIVE])
def test_seed_payloads_match_the_schemas_and_parse(kudosity_v2, raw):
    body = json.loads(raw)
    key, schema = EVENT_BODY[body["event_type"]]
    validate(schema, body[key])
    events = kudosity_v2.provider.parse_webhook(WebhookRequest("POST", "/k", body=raw.encode()))
    assert events
    first = events[0]
    assert first.occurred_at.tzinfo is not None and first.phone.startswith("+")
    if body["event_type"] == "SMS_STATUS":
        assert isinstance(first, Delivery) and first.message_ref
        assert first.status is V2_STATUS[body["status"]["status"]] and first.raw_status == body["status"]["status"]
    elif body["event_type"] == "SMS_INBOUND":
        assert isinstance(first, Reply) and first.message_ref == body["mo"]["last_message"]["message_ref"]
        assert first.in_reply_to == body["mo"]["last_message"]["id"]
        if first.text.strip().upper() == "STOP":
            assert isinstance(events[1], OptOut)
    elif body["event_type"] == "LINK_HIT":
        assert isinstance(first, LinkHit) and first.url == "https://www.example.com/abc"
    else:
        assert isinstance(first, OptOut) and first.source == "link"


def test_live_duplicate_link_hits_are_distinct_and_sent_after_delivered_merges(kudosity_v2):
    from smsrelay.lifecycle import merge_all

    parse = kudosity_v2.provider.parse_webhook
    hits = [
        parse(WebhookRequest("POST", "/k", body=(HERE / "live-webhooks" / n).read_bytes()))[0]
        for n in ("link-hit-sms.json", "link-hit-sms-repeat.json")
    ]
    assert hits[0].event_id != hits[1].event_id and [h.hits for h in hits] == [1, 2]
    delivered = parse(
        WebhookRequest("POST", "/k", body=(HERE / "live-webhooks/sms-status-delivered.json").read_bytes())
    )
    sent = parse(WebhookRequest("POST", "/k", body=(HERE / "live-webhooks/sms-status-sent.json").read_bytes()))
    merged = merge_all([*delivered, *sent, *sent])  # the SENT redelivered after DELIVERED
    assert [d.status for d in merged.values()] == [Status.DELIVERED]


# ========================================================================= V1
def test_v1_every_request_and_response_matches_the_spec(kudosity_v1_factory, kudosity_v1_emulator, webhook_sink, clock):
    from datetime import timedelta

    from smsrelay import Message

    openapi = OpenAPI.from_dict(v1_spec_as_observed())
    client = kudosity_v1_factory(dlr_callback=webhook_sink.url + "/dlr")
    numbers = [f"+614915{i:05d}" for i in range(100, 230)] + ["+61491570004", "+61491570001"]
    result = client.send(numbers, "Hi there")
    later = client.send("+61491570156", Message("Later", send_at=clock.now() + timedelta(hours=1)))
    kudosity_v1_emulator.advance(10)
    client.status([result.results[0].message_id])
    client.events()
    client.balance()
    client.provider.stats(result.results[0].message_id)
    client.provider.format_number("0491570156", "AU")
    client.cancel(later.results[0].message_id)
    client.send("+61491570156", "Hi", sender="12 34")  # 400 BAD_CALLER_ID
    counts = check_exchanges(openapi, V1_SPEC, V1_HOST, kudosity_v1_emulator.exchanges)
    assert counts["requests"] == len(kudosity_v1_emulator.exchanges)
    assert counts["responses"] >= 8


def test_v1_polled_delivery_reports_use_get_sms_sent_as_specified(kudosity_v1_factory, kudosity_v1_emulator, tmp_path):
    openapi = OpenAPI.from_dict(v1_spec_as_observed())
    client = kudosity_v1_factory(inbox=str(tmp_path / "inbox.db"))
    client.send([f"+614915{i:05d}" for i in range(100, 230)] + ["+61491570001"], "Hi there")
    kudosity_v1_emulator.advance(10)
    events = client.events(cursor="conformance").events
    assert sum(isinstance(e, Delivery) for e in events) == 131
    polls = [r.form() for r in kudosity_v1_emulator.received("POST", r"/get-sms-sent\.json")]
    # Kudosity docs (pagination): max is at most 100.
    assert [(f["page"], f["max"]) for f in polls] == [("1", "100"), ("2", "100")]
    counts = check_exchanges(openapi, V1_SPEC, V1_HOST, kudosity_v1_emulator.exchanges)
    assert counts["requests"] == len(kudosity_v1_emulator.exchanges) and counts["responses"] >= 4
