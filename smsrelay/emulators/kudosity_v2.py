"""Kudosity's V2 "Transmit Message" API (SMS and webhooks), as a local server.

Citations: OAS2 is the V2 OpenAPI (https://developers.kudosity.com/openapi/public-openapi.yaml),
"Kudosity docs" the docs' source (https://github.com/kudosity/kudosity-dev-docs), "PHP SDK" the
live captures in https://github.com/expertsystemsau/kudosity-php-sdk; each with the fact it gives.
Delivery is simulated on the emulator's clock, and webhooks are pushed to every registered URL
whose filter matches, at least once and out of order: a duplicate ``SENT`` follows
``DELIVERED``, as seen live.

Outcomes by the recipient's last four digits (as the sandbox's): 0001 hard bounce,
0002 soft bounce (expired), 0003 rejected, 0004 reply "YES", 0005 reply "NO", 0006
link hit, 0007 reply "STOP" and an opt-out, 0008 ``SENT`` and no report ever, 0009 a
late duplicate ``SENT``; anything else is delivered (also followed by a duplicate
``SENT`` unless ``duplicate_sent=False``). :meth:`inject_reply` simulates a reply.

Every exchange is kept in :attr:`exchanges` (request, response), so conformance
tests can hold both against the OpenAPI description.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from smsrelay.emulators.base import Emulator, EmuRequest, EmuResponse, json_response, route
from smsrelay.emulators.kudosity_v1 import ACCOUNT_RATE_LIMIT
from smsrelay.segments import analyse

__all__ = ["KudosityV2Emulator", "rfc3339_nanos"]

# OAS2 Status enum
STATUSES = (
    "PENDING",
    "SENT",
    "FAILED",
    "DELIVERED",
    "ACCEPTED",
    "SOFT_BOUNCE",
    "HARD_BOUNCE",
    "OTHER",
    "REJECTED",
    "PENDING_APPROVAL",
    "SUBMITTED",
    "UNDELIVERABLE",
    "READ",
)
# OAS2 EventType enum
EVENT_TYPES = frozenset(
    {
        "LINK_HIT",
        "OPT_OUT",
        "MMS_STATUS",
        "SMS_INBOUND",
        "SMS_STATUS",
        "MMS_INBOUND",
        "WHATSAPP_STATUS",
        "WHATSAPP_INBOUND",
        "RCS_STATUS",
        "RCS_INBOUND",
    }
)
# OAS2 WebhookRequest.filter: every field is an array of strings.
FILTER_FIELDS = ("event_type", "sender", "status", "message_ref", "campaign_id")
OUTCOMES = {"0001": "HARD_BOUNCE", "0002": "SOFT_BOUNCE", "0003": "REJECTED"}
REPLIES = {"0004": "YES", "0005": "NO", "0007": "STOP"}


def rfc3339_nanos(dt: datetime) -> str:
    """OAS2 SMSResponse: ``created_at`` has 9 fractional digits, e.g. ``2022-03-28T06:12:52.450674000Z``."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def _seconds(dt: datetime) -> str:
    # reference/kudosity/SOURCE.md: live webhook timestamps have second precision.
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


class KudosityV2Emulator(Emulator):
    """The V2 SMS and webhook endpoints. ``api_keys`` are the keys it accepts."""

    name = "kudosity-v2"
    # The account's 15 calls/s, 429 OVER_LIMIT and no Retry-After (see kudosity_v1).
    documented_rate_limit = ACCOUNT_RATE_LIMIT

    def __init__(
        self,
        *,
        api_keys: tuple[str, ...] = ("test-key",),
        senders: tuple[str, ...] = ("61481074185", "Acme"),
        sent_after: float = 1.0,
        delivered_after: float = 3.0,
        reply_after: float = 5.0,
        duplicate_sent: bool = True,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.api_keys = api_keys
        self.senders = senders
        self.sent_after = sent_after
        self.delivered_after = delivered_after
        self.reply_after = reply_after
        self.duplicate_sent = duplicate_sent
        self.smses: dict[str, dict[str, Any]] = {}
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.exchanges: list[tuple[EmuRequest, EmuResponse]] = []
        self._order = itertools.count()

    # -- errors in the shapes the spec gives ----------------------------------------
    def not_found(self, req: EmuRequest) -> EmuResponse:
        return json_response({"error": "Not Found"}, 404)

    def rate_limited(self, req: EmuRequest, headers: dict[str, str]) -> EmuResponse:
        # Kudosity docs (API Overview, rate limits): V1-style OVER_LIMIT block with 429; no rate headers.
        return json_response({"error": {"code": "OVER_LIMIT", "description": "Too Many Requests"}}, 429, headers)

    def _auth(self, req: EmuRequest) -> EmuResponse | None:
        if self.key_accepted(req.header("x-api-key"), self.api_keys):
            return None
        # Kudosity docs (authentication page): this body for a missing or invalid key.
        return json_response(
            {"error": {"code": "AUTH_FAILED", "description": "The auth data you have provided is invalid."}}, 401
        )

    @staticmethod
    def _bad(message: str) -> EmuResponse:
        # OAS2 (SMS and webhook endpoints): errors are a plain {"error": "<string>"}.
        return json_response({"error": message}, 400)

    # -- SMS ------------------------------------------------------------------------
    @route("POST", r"/v2/sms")
    def send_sms(self, req: EmuRequest) -> EmuResponse:
        if denied := self._auth(req):
            return denied
        try:
            body = req.json()
        except ValueError:
            return self._bad("Validation Error: invalid JSON body")
        if not isinstance(body, dict):
            return self._bad("Validation Error: body must be an object")
        for field in ("message", "sender", "recipient"):
            if not isinstance(body.get(field), str) or not body[field].strip():
                return self._bad(f"Validation Error: {field}: required")
        ref = body.get("message_ref", "")
        if not isinstance(ref, str) or len(ref) > 500:  # OAS2 SendSMSRequest: maxLength 500
            return self._bad("Validation Error: message_ref: maximum length is 500")
        if "track_links" in body and not isinstance(body["track_links"], bool):
            return self._bad("Validation Error: track_links: must be a boolean")
        recipient = body["recipient"].lstrip("+")
        if not recipient.isdigit() or not 8 <= len(recipient) <= 15:
            return self._bad("Validation Error: recipient: invalid phone number")
        if body["sender"].lstrip("+") not in self.senders and body["sender"] not in self.senders:
            return self._bad("Sender not found")  # OAS2 POST /v2/sms: a stale or unknown sender
        now = self.clock.now()
        seg = analyse(body["message"])
        sms = {
            "id": str(uuid.uuid4()),
            "recipient": recipient,
            "recipient_country": "AU" if recipient.startswith("61") else "",
            "sender": body["sender"].lstrip("+"),
            "sender_country": "AU",
            "message_ref": ref,
            "message": body["message"],
            "status": "pending",
            "sms_count": str(seg.parts),  # OAS2 SMSResponse: sms_count is a string
            "is_gsm": seg.encoding == "GSM-7",
            "is_sandbox": False,
            "routed_via": "",  # OAS2 SMSResponse: "" when unused
            "track_links": bool(body.get("track_links", False)),
            "direction": "OUT",
            "created_at": rfc3339_nanos(now),
            "updated_at": rfc3339_nanos(now),
            "_created": now,
            "_order": next(self._order),
        }
        with self.lock:
            self.smses[sms["id"]] = sms
        self._simulate(sms)
        return json_response(self._public(sms))  # OAS2 SMSResponse: a flat object

    def _public(self, sms: dict[str, Any], upper: bool = False) -> dict[str, Any]:
        out = {k: v for k, v in sms.items() if not k.startswith("_")}
        # PHP SDK captures: send and list return lowercase statuses; GET /v2/sms/{id} uppercase.
        out["status"] = out["status"].upper() if upper else out["status"].lower()
        return out

    @route("GET", r"/v2/sms/(?P<sms_id>[^/]+)")
    def get_sms(self, req: EmuRequest, sms_id: str) -> EmuResponse:
        if denied := self._auth(req):
            return denied
        with self.lock:
            sms = self.smses.get(sms_id)
        # PHP SDK captures: a read right after the send 404s for a few seconds (read-after-write lag).
        if sms is None or not self.visible(sms["_created"]):
            return json_response({"error": "SMS not found"}, 404)
        return json_response(self._public(sms, upper=True))

    @route("GET", r"/v2/sms")
    def list_sms(self, req: EmuRequest) -> EmuResponse:
        if denied := self._auth(req):
            return denied
        q = req.params
        try:
            limit = int(q.get("limit", 100))
            page = int(q.get("page", 1))
        except ValueError:
            return self._bad("Validation Error: limit and page must be integers")
        if limit < 1 or page < 1:
            return self._bad("Validation Error: limit and page must be positive")
        if problem := _list_filter_problem(req.query):
            return self._bad(problem)
        start = _parse_time(q.get("start_date"))
        end = _parse_time(q.get("end_date"))
        with self.lock:
            rows = sorted(self.smses.values(), key=lambda s: s["_order"])
        rows = [s for s in rows if self.visible(s["_created"])]
        for field in ("message_ref", "recipient", "sender", "direction"):
            if q.get(field):
                rows = [s for s in rows if s[field] == q[field].lstrip("+")]
        if q.get("status"):
            rows = [s for s in rows if s["status"].upper() == q["status"].upper()]
        if start:
            rows = [s for s in rows if s["_created"] >= start]
        if end:
            rows = [s for s in rows if s["_created"] <= end]
        if q.get("order_by[]") == "CREATED_AT_DESC" or q.get("order_by") == "CREATED_AT_DESC":
            rows.reverse()
        chunk = rows[(page - 1) * limit : page * limit]
        return json_response(
            {
                "smses": [self._public(s) for s in chunk],
                "total_records": str(len(rows)),  # OAS2 ListSMSResponse: strings
                "total_segments": str(sum(int(s["sms_count"]) for s in rows)),
            }
        )

    # -- webhooks ---------------------------------------------------------------------
    def _validate_webhook(self, body: Any) -> str | None:
        """The first way ``body`` breaks OAS2 ``WebhookRequest``, in Kudosity's words; None if valid."""
        if not isinstance(body, dict):
            return "Validation Error: body must be an object"
        name = body.get("name")
        if not isinstance(name, str) or not 2 <= len(name) <= 100:  # required, length(2|100)
            return "Validation Error: name: must be 2-100 characters"
        url = body.get("url")
        # PHP SDK captures: the API accepted http:// live, despite "https" in the docs.
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return "Validation Error: url: required"
        rate = body.get("rate_limit", 0)
        # OAS2: an integer, range(0|10000); JSON true is not one, though Python calls it an int.
        if isinstance(rate, bool) or not isinstance(rate, int):
            return "Validation Error: rate_limit: must be an integer"
        if not 0 <= rate <= 10000:
            return "Validation Error: rate_limit: greater than the maximum value of 10000"
        if "is_sandbox" in body and not isinstance(body["is_sandbox"], bool):
            return "Validation Error: is_sandbox: must be a boolean"
        # The deprecated top-level event_type is one EventType (a string), when given.
        top = body.get("event_type")
        if "event_type" in body and (not isinstance(top, str) or top not in EVENT_TYPES):
            return f"Validation Error: event_type: unknown value {str(body['event_type'])[:40]}"
        if "filter" not in body:
            return None
        flt = body["filter"]
        if not isinstance(flt, dict):  # OAS2 WebhookRequest.filter: type object
            return "Validation Error: filter: must be an object"
        for key in FILTER_FIELDS:  # each an array of strings
            if key not in flt:
                continue
            values = flt[key]
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                return f"Validation Error: filter.{key}: must be an array of strings"
        bad = [t for t in flt.get("event_type", []) if t not in EVENT_TYPES]
        if bad:
            return f"Validation Error: filter.event_type: unknown value {bad[0][:40]}"
        return None

    def _store_webhook(self, body: dict[str, Any], hook_id: str, created: datetime | None) -> dict[str, Any]:
        now = self.clock.now()
        flt = dict(body.get("filter") or {})
        if body.get("event_type") and not flt.get("event_type"):
            flt["event_type"] = [body["event_type"]]  # the deprecated top-level form
        hook = {
            "id": hook_id,
            "name": body["name"],
            "url": body["url"],
            "filter": flt,
            "rate_limit": body.get("rate_limit", 0),
            "is_sandbox": bool(body.get("is_sandbox", False)),
            "created_at": rfc3339_nanos(created or now),
            "updated_at": rfc3339_nanos(now),
        }
        with self.lock:
            self.webhooks[hook_id] = hook
        return hook

    @route("POST", r"/v2/webhook")
    def create_webhook(self, req: EmuRequest) -> EmuResponse:
        if denied := self._auth(req):
            return denied
        try:
            body = req.json()
        except ValueError:
            return self._bad("Validation Error: invalid JSON body")
        if problem := self._validate_webhook(body):
            return self._bad(problem)
        return json_response(self._store_webhook(body, str(uuid.uuid4()), None), 201)

    @route("GET", r"/v2/webhook")
    def list_webhooks(self, req: EmuRequest) -> EmuResponse:
        if denied := self._auth(req):
            return denied
        with self.lock:
            return json_response({"webhooks": list(self.webhooks.values())})

    @route("GET", r"/v2/webhook/(?P<hook_id>[^/]+)")
    def get_webhook(self, req: EmuRequest, hook_id: str) -> EmuResponse:
        if denied := self._auth(req):
            return denied
        hook = self.webhooks.get(hook_id)
        return json_response(hook) if hook else json_response({"error": "Webhook not found"}, 404)

    @route("PUT", r"/v2/webhook/(?P<hook_id>[^/]+)")
    def replace_webhook(self, req: EmuRequest, hook_id: str) -> EmuResponse:
        if denied := self._auth(req):
            return denied
        old = self.webhooks.get(hook_id)
        if old is None:
            return json_response({"error": "Webhook not found"}, 404)
        try:
            body = req.json()
        except ValueError:
            return self._bad("Validation Error: invalid JSON body")
        if problem := self._validate_webhook(body):
            return self._bad(problem)
        # OAS2 PUT /v2/webhook/{id}: a full replace; omitted fields reset to their defaults.
        created = _parse_time(old["created_at"])
        return json_response(self._store_webhook(body, hook_id, created))

    @route("DELETE", r"/v2/webhook/(?P<hook_id>[^/]+)")
    def delete_webhook(self, req: EmuRequest, hook_id: str) -> EmuResponse:
        if denied := self._auth(req):
            return denied
        try:
            uuid.UUID(hook_id)
        except ValueError:
            return self._bad("invalid webhook ID")
        with self.lock:
            if self.webhooks.pop(hook_id, None) is None:
                return json_response({"error": "Webhook not found"}, 404)
        return json_response({"message": "deleted"})

    # -- simulated delivery ----------------------------------------------------------
    def _simulate(self, sms: dict[str, Any]) -> None:
        tail = sms["recipient"][-4:]
        self.after(self.sent_after, lambda: self._status(sms, "SENT"))
        if tail == "0008":
            return  # sent, and no delivery report ever comes
        outcome = OUTCOMES.get(tail, "DELIVERED")
        self.after(self.delivered_after, lambda: self._status(sms, outcome))
        if outcome == "DELIVERED" and (self.duplicate_sent or tail == "0009"):
            # PHP SDK captures: a SENT was redelivered byte-identical ~60 s later, after DELIVERED.
            self.after(self.delivered_after + 0.5, lambda: self._redeliver_sent(sms))
        if tail in REPLIES:
            text = REPLIES[tail]
            self.after(self.reply_after, lambda: self._reply_later(sms, text))
        if tail == "0006":
            self.after(self.reply_after, lambda: self.link_hit(sms, "https://www.example.com/offer"))

    def _reply_later(self, sms: dict[str, Any], text: str) -> None:
        self.inbound(sms["recipient"], text, to=sms["sender"])

    def inject_reply(self, phone: str, text: str, *, to: str | None = None) -> dict[str, Any]:
        """Simulate an inbound SMS from ``phone``; threaded to the last message sent to it."""
        return self.inbound(phone, text, to=to or self.senders[0])

    def _status(self, sms: dict[str, Any], status: str) -> None:
        now = self.clock.now()
        with self.lock:
            sms["status"] = status.lower()
            sms["updated_at"] = rfc3339_nanos(now)
            sms.setdefault("_events", {})[status] = _seconds(now)
        self._emit("SMS_STATUS", {"status": self._status_body(sms, status)}, now, sms)

    def _status_body(self, sms: dict[str, Any], status: str) -> dict[str, Any]:
        return {
            "id": sms["id"],
            "type": "SMS",
            "message_ref": sms["message_ref"],
            "sender": sms["sender"],
            "recipient": sms["recipient"],
            "status": status,
        }

    def _redeliver_sent(self, sms: dict[str, Any]) -> None:
        stamp = sms.get("_events", {}).get("SENT")
        if stamp:
            self._emit("SMS_STATUS", {"status": self._status_body(sms, "SENT")}, None, sms, timestamp=stamp)

    def inbound(self, sender: str, text: str, *, to: str = "61481074185") -> dict[str, Any]:
        """Simulate an SMS from ``sender`` to our number ``to`` (a reply)."""
        now = self.clock.now()
        sender = sender.lstrip("+")
        with self.lock:
            last = max(
                (s for s in self.smses.values() if s["direction"] == "OUT" and s["recipient"] == sender),
                key=lambda s: s["_order"],
                default=None,
            )
        mo_id = "alss-2way-" + uuid.uuid4().hex[:8] + "-" + uuid.uuid4().hex[:8]
        record = {
            **{k: "" for k in ("recipient_country", "sender_country", "message_ref", "routed_via")},
            "id": mo_id,
            "recipient": to.lstrip("+"),
            "sender": sender,
            "message": text,
            "status": "delivered",
            "sms_count": "1",
            "is_gsm": True,
            "is_sandbox": False,
            "track_links": False,
            "direction": "IN",
            "created_at": rfc3339_nanos(now),
            "updated_at": rfc3339_nanos(now),
            "_created": now,
            "_order": next(self._order),
        }
        with self.lock:
            self.smses[mo_id] = record
        mo: dict[str, Any] = {
            "type": "SMS",
            "id": mo_id,
            "message": text,
            "recipient": to.lstrip("+"),
            "routed_via": "",
            "sender": sender,
        }
        if last is not None:  # Kudosity docs (webhooks): last_message is best-effort
            mo["last_message"] = {
                "type": "SMS",
                "id": last["id"],
                "message": last["message"],
                "message_ref": last["message_ref"],
                "recipient": last["recipient"],
                "routed_via": "",
                "sender": last["sender"],
            }
        self._emit("SMS_INBOUND", {"mo": mo}, now, last)
        if text.strip().upper() == "STOP" and last is not None:
            self._emit(
                "OPT_OUT", {"opt_out": {"source": "SMS_INBOUND", "source_message": self._source(last)}}, now, last
            )
        return record

    def _source(self, sms: dict[str, Any]) -> dict[str, Any]:
        return {k: sms[k] for k in ("id", "message", "message_ref", "recipient", "sender")} | {"type": "SMS"}

    def link_hit(self, sms: dict[str, Any], url: str) -> None:
        """Simulate a visit to a tracked link in ``sms``; ``hits`` is cumulative (Kudosity docs, webhooks)."""
        with self.lock:
            sms["_hits"] = sms.get("_hits", 0) + 1
            hits = sms["_hits"]
        body = {"link_hit": {"hits": hits, "url": url, "source_message": self._source(sms)}}
        self._emit("LINK_HIT", body, self.clock.now(), sms)

    def _emit(
        self,
        event_type: str,
        body: dict[str, Any],
        at: datetime | None,
        sms: dict[str, Any] | None,
        *,
        timestamp: str | None = None,
    ) -> None:
        with self.lock:
            hooks = list(self.webhooks.values())
        for hook in hooks:
            if not _matches(hook["filter"], event_type, body, sms):
                continue
            envelope = {
                "event_type": event_type,
                "timestamp": timestamp or _seconds(at or self.clock.now()),
                "webhook_id": hook["id"],
                "webhook_name": hook["name"],
                **body,
            }
            # Kudosity docs (webhooks), PHP SDK captures: JSON POST, no signature, only the basic headers.
            self.push(hook["url"], json_body=envelope, headers={"User-Agent": "Go-http-client/2.0"})

    def handle(self, req: EmuRequest) -> EmuResponse:
        resp = super().handle(req)
        with self.lock:
            self.exchanges.append((req, resp))
        return resp

    def state(self) -> dict[str, Any]:
        return {
            "smses": [self._public(s) for s in sorted(self.smses.values(), key=lambda s: s["_order"])],
            "webhooks": list(self.webhooks.values()),
        }

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.smses.clear()
            self.webhooks.clear()
            self.exchanges.clear()

    @property
    def outbound(self) -> list[dict[str, Any]]:
        """Messages sent through the API, in order (for tests)."""
        with self.lock:
            return [
                self._public(s)
                for s in sorted(self.smses.values(), key=lambda s: s["_order"])
                if s["direction"] == "OUT"
            ]

    # -- the kit's control API, in V2's terms (OAS2 webhook events) -------------------------
    def _last_to(self, phone: str) -> dict[str, Any]:
        number = phone.lstrip("+")
        with self.lock:
            sent = [s for s in self.smses.values() if s["direction"] == "OUT" and s["recipient"] == number]
        if not sent:
            raise LookupError("no message was sent to that number")
        return max(sent, key=lambda s: s["_order"])

    def control_reply(self, phone: str, text: str, to: str | None) -> dict[str, Any]:
        return self._public(self.inject_reply(phone, text, to=to))

    def control_link_hit(self, phone: str, url: str | None) -> dict[str, Any]:
        sms = self._last_to(phone)
        self.link_hit(sms, url or "https://www.example.com/offer")
        return {"message_id": sms["id"], "hits": sms["_hits"]}

    def control_opt_out(self, phone: str) -> dict[str, Any]:
        # Kudosity docs (webhooks): an opt-out is an OPT_OUT event, source SMS_INBOUND, after a STOP reply.
        sms = self._last_to(phone)
        return self._public(self.inbound(phone, "STOP", to=sms["sender"]))

    def control_messages(self) -> Iterable[dict[str, Any]]:
        for s in self.outbound:
            yield {
                "id": s["id"],
                "to": "+" + s["recipient"],
                "from": s["sender"],
                "body": s["message"],
                "status": s["status"],
            }


# OAS2 ListSMSRequest: the enums of the list's filters.
LIST_ENUMS = {
    "direction": frozenset({"OUT", "IN"}),
    "status": frozenset(STATUSES),
    "order_by": frozenset({"CREATED_AT_ASC", "CREATED_AT_DESC"}),
    "order_by[]": frozenset({"CREATED_AT_ASC", "CREATED_AT_DESC"}),
    # ASSUMPTION: OAS2 also allows CSV; the emulator serves JSON only, and says so.
    "format": frozenset({"JSON"}),
}


def _list_filter_problem(query: str) -> str | None:
    """The first ``GET /v2/sms`` filter outside its OAS2 enum, in Kudosity's words; None if all fit."""
    for name, value in parse_qsl(query, keep_blank_values=True):
        allowed = LIST_ENUMS.get(name)
        if allowed is not None and value not in allowed:
            return f"Validation Error: {name.rstrip('[]')}: unknown value {value[:40]}"
    return None


def _matches(flt: dict[str, Any], event_type: str, body: dict[str, Any], sms: dict[str, Any] | None) -> bool:
    """OAS2 WebhookRequest.filter: OR within an array, AND across fields."""
    types = flt.get("event_type") or []
    if types and event_type not in types:
        return False
    if flt.get("status") and event_type.endswith("_STATUS") and body["status"]["status"] not in flt["status"]:
        return False
    if flt.get("message_ref") and (sms is None or sms.get("message_ref") not in flt["message_ref"]):
        return False
    if flt.get("sender"):
        ours = body["mo"]["recipient"] if "mo" in body else (sms or {}).get("sender", "")
        if not any(s.lstrip("+") == ours for s in flt["sender"]):
            return False
    return True


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    if "." in text:  # trim nanoseconds to what fromisoformat takes
        head, _, rest = text.partition(".")
        digits = "".join(itertools.takewhile(str.isdigit, rest))
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
