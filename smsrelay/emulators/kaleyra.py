"""Kaleyra (kaleyra.io) SMS API v1, as a local server.

Sources: Kaleyra's SMS API documentation, https://developers.kaleyra.io/docs/ (the pages
send-your-first-sms, understand-route-types, sms-api-send-the-first-sms, sms-api-status,
sms-callback, receive-message and sms-status-and-status-trace-codes; cited below by page
name, or as *seed*), and Courier's Kaleyra handler (https://github.com/nyaruka/courier,
handlers/kaleyra) for captured responses. Kaleyra publishes no
OpenAPI spec, so every behaviour the documents leave open is marked ``ASSUMPTION``.

Sends take a comma-separated ``to`` and answer a batch ``id`` with one
``<id>:<n>`` message id per recipient. Delivery runs on the emulator's clock: ``Sent``,
then the final status; callbacks go to the send's ``callback`` object or callback
profile, with its static ``header`` map (Kaleyra signs nothing, sms-callback). Inbound (MO)
messages go to the configured Receive Message URL (:meth:`KaleyraEmulator.configure_inbound`,
or ``POST /_emulator/inbound``); :meth:`KaleyraEmulator.reply` (``POST /_emulator/reply``, or
the kit's shared ``POST /_emulator/replies``) injects one.

Outcomes by the recipient's last four digits (as the sandbox's): 0001 ``UnDelivered``
(``ABSENT-SUB``), 0002 expired (``EXPIRED``), 0003 ``NotSent`` (``DND-NUMB``), 0004
reply "YES", 0005 reply "NO", 0007 reply "STOP", 0008 ``SENT - NO DLR``, 0009 a late
duplicate ``Sent`` callback after ``Delivered``; anything else is delivered. A number that
replied STOP (or UNSUBSCRIBE, …) is afterwards ``NotSent`` with ``OPT-OUT``. Kaleyra
has no link tracking, so 0006 is delivered.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from smsrelay.emulators.base import Emulator, EmuRequest, EmuResponse, RateLimit, json_response, route

__all__ = ["KaleyraEmulator", "kaleyra_time"]

ROUTES = ("OTP", "DEFAULT", "MKT", "DEFAULT/MKT", "TXN")  # understand-route-types: route types
MAX_BODY = 4_000  # seed: "SMS length is exceeding 4000 characters" [SEED-ONLY]
MAX_REF = 50  # seed: optional parameters, "each can have a maximum of 50 characters"
# ASSUMPTION: no documented cap on comma-separated `to`; the JSON API's node limit is 1,000
# (sms-api-send-the-first-sms).
MAX_TO = 1_000
NUMBER = re.compile(r"\+?\d{8,15}")
# last four digits -> (poll status, status_details / trace, callback status)
OUTCOMES: dict[str, tuple[str, str, str]] = {
    "0001": ("UnDelivered", "ABSENT-SUB", "Undelivered"),
    "0002": ("UnDelivered", "EXPIRED", "Undelivered"),
    "0003": ("NotSent", "DND-NUMB", "Failed"),
    "0008": ("Sent", "SENT - NO DLR", "Sent"),
}
DELIVERED = ("Delivered", "DELIVERED", "Delivered")
OPTED_OUT = ("NotSent", "OPT-OUT", "Failed")
OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT"})
REPLIES = {"0004": "YES", "0005": "NO", "0007": "STOP"}


def kaleyra_time(dt: datetime, zone: ZoneInfo | None = None) -> str:
    """seed: ``createdDateTime`` is ``YYYY-MM-DD HH:MM:SS+00:00`` (a space, not ``T``).

    >>> from datetime import UTC
    >>> kaleyra_time(datetime(2019, 11, 4, 10, 42, 23, tzinfo=UTC))
    '2019-11-04 10:42:23+00:00'
    """
    return (dt.astimezone(zone) if zone else dt).isoformat(sep=" ", timespec="seconds")


@dataclass
class _Msg:
    message_id: str
    batch_id: str
    recipient: str
    body: str
    ref: str | None
    created_at: datetime
    callback: dict[str, Any] | None
    # ASSUMPTION: before its first report a message polls as Sent/SUBMITTED (the poll
    # documents only Delivered, UnDelivered, NotSent and Sent; api-evangelist's model lists SUBMITTED).
    status: str = "Sent"
    details: str = "SUBMITTED"
    extra: dict[str, Any] = field(default_factory=dict)


class KaleyraEmulator(Emulator):
    """The Kaleyra v1 SMS endpoints for the accounts in ``sids``, with the keys in ``api_keys``.

    ``zone`` is the account's zone: callback and MO timestamps are written in it with
    no offset, as Kaleyra does (receive-message).
    """

    name = "kaleyra"
    # Kaleyra support, CleverTap integration (https://support.kaleyra.com/support/solutions/
    # articles/3000110656): Kaleyra throttles "up to 50,000 requests for every 5 minutes".
    # ASSUMPTION: a sliding five-minute window over the account; no Retry-After (none is
    # documented; Courier treats a bare 429 as throttled).
    documented_rate_limit = RateLimit(
        50_000, 300.0, source="Kaleyra support 3000110656: 50,000 requests for every 5 minutes"
    )

    def __init__(
        self,
        *,
        api_keys: tuple[str, ...] = ("test-key",),
        sids: tuple[str, ...] = ("HXAP0000000000",),
        zone: str = "Asia/Kolkata",
        profiles: Mapping[str, Mapping[str, Any]] | None = None,
        vmn: str = "+919000000000",
        sent_after: float = 1.0,
        delivered_after: float = 3.0,
        reply_after: float = 5.0,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.api_keys = api_keys
        self.sids = sids
        self.zone = ZoneInfo(zone)
        # sms-callback: callback profiles are made in the dashboard: url, method, static headers.
        self.profiles = {k: dict(v) for k, v in (profiles or {}).items()}
        self.vmn = vmn
        self.inbound: dict[str, Any] | None = None
        self.opted_out: set[str] = set()
        self.sent_after = sent_after
        self.delivered_after = delivered_after
        self.reply_after = reply_after
        self.messages: dict[str, _Msg] = {}
        self.batches: dict[str, dict[str, Any]] = {}

    # -- errors --------------------------------------------------------------------------
    @staticmethod
    def _field_error(name: str, message: str, status: int = 400) -> EmuResponse:
        # Courier's captures: field-keyed error objects, {"error": {"to": "invalid number"}}.
        return json_response({"error": {name: message}}, status)

    @staticmethod
    def _coded(status: int, code: str, message: str, fields: Mapping[str, str] | None = None) -> EmuResponse:
        # seed: {"code": "E401", "message": "...", "error": {"body": "..."}} [SEED-ONLY].
        return json_response({"code": code, "message": message, "error": dict(fields or {})}, status)

    def not_found(self, req: EmuRequest) -> EmuResponse:
        return self._coded(404, "E404", "Resource not found.")

    def rate_limited(self, req: EmuRequest, headers: dict[str, str]) -> EmuResponse:
        # Kaleyra's CleverTap integration page: Kaleyra throttles (≈ 50k requests / 5 min).
        # ASSUMPTION: the 429 body.
        resp = self._coded(429, "E429", "Too many requests.")
        resp.headers.update(headers)
        return resp

    def _auth(self, req: EmuRequest, sid: str) -> EmuResponse | None:
        # send-your-first-sms: header `api-key`; the SID is in the path.
        if self.key_accepted(req.header("api-key"), self.api_keys) and sid in self.sids:
            return None
        # ASSUMPTION: the body of a refused key is not documented; a coded error with 401.
        return self._coded(401, "E001", "Unauthorized: invalid api-key or SID.")

    # -- set-up from tests and the control API -----------------------------------------------
    def configure_inbound(self, url: str, headers: Mapping[str, str] | None = None, method: str = "POST") -> None:
        """Point Receive Message (receive-message, a dashboard setting) at ``url`` with static headers."""
        self.inbound = {"url": url, "headers": dict(headers or {}), "method": method}

    def reply(self, from_number: str, text: str, *, to: str | None = None, keyword: str = "") -> dict[str, Any]:
        """An inbound SMS from ``from_number`` to the VMN, pushed to the inbound URL; its payload."""
        now = self.clock.now()
        word = (text.split() or [""])[0].upper()
        if word in OPT_OUT_WORDS:
            # receive-message: sends to opted-out numbers fail with NOT-SENT / OPT-OUT.
            with self.lock:
                self.opted_out.add(from_number.lstrip("+"))
        # receive-message: the incoming-profile JSON template, key for key; `source` is the
        # handset (ASSUMPTION: the sample leaves open which of source/recipient is).
        payload = {
            "source": from_number.lstrip("+"),
            "recipient": to or self.vmn,
            "description": "Message has been received",
            "status": "RECEIVED",
            "status_trace": "RECEIVED",
            "id": uuid.uuid4().hex,
            "kid": uuid.uuid4().hex,
            "message": text,
            "keyword": keyword or word,
            "operator": "JIO",
            "circle": "JIO ASSAM",
            "timestamp": now.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S"),
            "parts[n]": "1",
        }
        if self.inbound is not None:
            self.push(
                self.inbound["url"],
                method=self.inbound["method"],
                json_body=payload,
                headers=self.inbound["headers"],
            )
        return payload

    def _control(self, req: EmuRequest) -> EmuResponse:
        """Extra control calls: ``POST inbound`` {url, headers, method}, ``POST reply`` {from, text, to?}."""
        op = (req.method, req.path.removeprefix("/_emulator/").rstrip("/"))
        if op in (("POST", "inbound"), ("POST", "reply")):
            try:
                spec = req.json()
                if op[1] == "inbound":
                    self.configure_inbound(str(spec["url"]), spec.get("headers"), str(spec.get("method", "POST")))
                    return json_response({"ok": True})
                return json_response(self.reply(str(spec["from"]), str(spec["text"]), to=spec.get("to")))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                return json_response({"error": f"bad control request: {exc!r}"}, 400)
        return super()._control(req)

    # The kit's shared calls; Kaleyra has no link tracking (see the module docs).
    def control_reply(self, phone: str, text: str, to: str | None) -> dict[str, Any]:
        return self.reply(phone, text, to=to)

    def control_opt_out(self, phone: str) -> dict[str, Any]:
        # receive-message: an opt-out is a STOP reply; later sends to the number are NotSent/OPT-OUT.
        return self.reply(phone, "STOP")

    def control_messages(self) -> Iterable[dict[str, Any]]:
        for m in self.messages.values():
            yield {
                "id": m.message_id,
                "to": "+" + m.recipient,
                "from": self.batches.get(m.batch_id, {}).get("sender"),
                "body": m.body,
                "status": m.status,
            }

    def state(self) -> dict[str, Any]:
        return {
            "messages": [
                {"message_id": m.message_id, "recipient": m.recipient, "status": m.status, "ref": m.ref}
                for m in self.messages.values()
            ]
        }

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.messages.clear()
            self.batches.clear()
            self.opted_out.clear()

    # -- sending ----------------------------------------------------------------------------
    def _fields(self, req: EmuRequest) -> dict[str, Any] | None:
        ctype = (req.header("content-type") or "").lower()
        if "json" in ctype:
            try:
                data = req.json()
            except ValueError:
                return None
            return data if isinstance(data, dict) else None
        try:
            return dict(req.form())
        except UnicodeDecodeError:
            return None

    def _callback(self, fields: Mapping[str, Any]) -> tuple[dict[str, Any] | None, EmuResponse | None]:
        raw = fields.get("callback")
        profile = fields.get("callback_profile_id")
        if profile:
            if profile not in self.profiles:
                return None, self._field_error("callback_profile_id", "invalid callback profile id")
            return dict(self.profiles[profile]), None
        if not raw:
            return None, None
        # ASSUMPTION: in a form body the callback object travels as its JSON text.
        try:
            cb = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            return None, self._field_error("callback", "callback must be a JSON object")
        if not isinstance(cb, dict) or not isinstance(cb.get("url"), str) or not cb["url"].startswith("http"):
            return None, self._field_error("callback", "callback.url is required")
        method = str(cb.get("method") or "POST").upper()
        if method not in ("GET", "POST"):
            return None, self._field_error("callback", "callback.method must be GET or POST")
        headers = cb.get("header") or {}
        if not isinstance(headers, dict):
            return None, self._field_error("callback", "callback.header must be an object")
        return {"url": cb["url"], "method": method, "header": {str(k): str(v) for k, v in headers.items()}}, None

    def _send(self, req: EmuRequest, sid: str, newer: bool) -> EmuResponse:
        if denied := self._auth(req, sid):
            return denied
        fields = self._fields(req)
        if fields is None:
            return self._coded(400, "E400", "The request body could not be read.")
        to = str(fields.get("to") or "")
        body = str(fields.get("body") or "")
        numbers = [n.strip() for n in to.split(",") if n.strip()]
        if not numbers:
            return self._field_error("to", "to is required")
        if len(numbers) > MAX_TO:
            return self._field_error("to", f"at most {MAX_TO} recipients per request")
        for n in numbers:
            if not NUMBER.fullmatch(n):
                return self._field_error("to", "invalid number")
        if not body.strip():
            return self._field_error("body", "body is required")
        if len(body) > MAX_BODY:
            msg = "SMS length is exceeding 4000 characters."
            return self._coded(400, "E401", msg, {"body": msg})  # seed: the literal failure response
        kind = str(fields.get("type") or "DEFAULT").upper()
        if kind not in ROUTES:
            return self._field_error("type", f"type must be one of {', '.join(ROUTES)}")
        for name in ("ref", "ref1", "ref2"):
            if len(str(fields.get(name) or "")) > MAX_REF:
                return self._field_error(name, f"{name} can have a maximum of {MAX_REF} characters")
        if "callback" in fields and newer:
            # sms-callback: the callback object appears only on /messages; /sms uses profiles.
            return self._field_error("callback", "callback is not supported on /sms; use callback_profile_id")
        if "time" in fields and not newer:
            return self._field_error("time", "time (scheduling) is supported on /sms only")
        callback, bad = self._callback(fields)
        if bad:
            return bad
        now = self.clock.now()
        dispatch = now
        if fields.get("time"):
            try:
                when = datetime.fromisoformat(str(fields["time"]))
            except ValueError:
                return self._field_error("time", "time must be ISO 8601 with an offset")
            if when.tzinfo is None or when <= now:
                return self._field_error("time", "time must be in the future, with an offset")
            dispatch = when
        batch_id = str(uuid.uuid4())
        sender = str(fields.get("sender") or "KLRHXA")  # seed: "default KLRHXA"
        data = []
        msgs = []
        for i, n in enumerate(numbers, start=1):
            digits = n.lstrip("+")
            m = _Msg(f"{batch_id}:{i}", batch_id, digits, body, fields.get("ref"), now, callback)
            msgs.append(m)
            data.append({"message_id": m.message_id, "recipient": digits})
        with self.lock:
            for m in msgs:
                self.messages[m.message_id] = m
            self.batches[batch_id] = {"ref": fields.get("ref"), "ids": [m.message_id for m in msgs], "sender": sender}
        delay = (dispatch - now).total_seconds()
        for m in msgs:
            self._simulate(m, delay)
        resp: dict[str, Any] = {
            "id": batch_id,
            "sender": sender,
            "type": kind,
            "body": body,
            "createdDateTime": kaleyra_time(now),
            "totalCount": len(numbers),
            "data": data,
            "dlrurl": None,
            "error": {},
        }
        if fields.get("template_id"):
            resp["template_id"] = str(fields["template_id"])
        if fields.get("unicode"):
            resp["unicode"] = 1
        # ASSUMPTION: 202, as Courier's handler checks; /sms answers the same shape.
        return json_response(resp, 202)

    @route("POST", r"/v1/(?P<sid>[^/]+)/messages")
    def send_messages(self, req: EmuRequest, sid: str) -> EmuResponse:
        return self._send(req, sid, newer=False)

    @route("POST", r"/v1/(?P<sid>[^/]+)/sms")
    def send_sms(self, req: EmuRequest, sid: str) -> EmuResponse:
        return self._send(req, sid, newer=True)

    # -- simulated delivery ---------------------------------------------------------------------
    def _simulate(self, m: _Msg, delay: float) -> None:
        last4 = m.recipient[-4:]
        poll, details, cb_status = OUTCOMES.get(last4, DELIVERED)
        if m.recipient in self.opted_out:
            poll, details, cb_status = OPTED_OUT
        sent, final = delay + self.sent_after, delay + self.delivered_after
        self.after(sent, lambda: self._report(m, "Sent", "SENT", "Sent", sent))
        self.after(final, lambda: self._report(m, poll, details, cb_status, final))
        if last4 == "0009":
            self.after(final + 1, lambda: self._callback_push(m, "Sent", "SENT", final + 1))
        if last4 in REPLIES:

            def answer() -> None:
                self.reply("+" + m.recipient, REPLIES[last4])

            self.after(delay + self.reply_after, answer)

    def _report(self, m: _Msg, poll: str, details: str, cb_status: str, offset: float) -> None:
        with self.lock:
            m.status, m.details = poll, details
        self._callback_push(m, cb_status, details, offset)

    def _callback_push(self, m: _Msg, status: str, trace: str, offset: float) -> None:
        if m.callback is None:
            return
        # The event's own time (not when a manual clock's timers happened to run).
        at = m.created_at + timedelta(seconds=offset)
        # ASSUMPTION: the SMS callback's variable names are not published (sms-callback); these
        # mirror the incoming profile's (id, recipient, status, status_trace, timestamp) plus ref.
        payload = {
            "id": m.message_id,
            "recipient": m.recipient,
            "status": status,
            "status_trace": trace,
            "description": f"Message status is {status}",
            "timestamp": at.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S"),
            "ref": m.ref or "",
        }
        url, method = m.callback["url"], m.callback["method"]
        headers = dict(m.callback.get("header") or {})
        if method == "GET":
            # sms-callback: Kaleyra calls the URL with GET (query) or POST, as configured.
            sep = "&" if "?" in url else "?"
            self.push(url + sep + urlencode(payload), method="GET", headers=headers)
        else:
            self.push(url, method="POST", json_body=payload, headers=headers)

    # -- status and lookup ----------------------------------------------------------------------
    def _status(self, req: EmuRequest, sid: str) -> EmuResponse:
        if denied := self._auth(req, sid):
            return denied
        ids = [i.strip() for i in req.params.get("message_ids", "").split(",") if i.strip()]
        if not ids:
            return self._field_error("message_ids", "message_ids is required")
        with self.lock:
            found = [self.messages[i] for i in ids if i in self.messages]
        # sms-api-status: {"data":[{"campaign_id": "…:1", "status": "Delivered", "status_details": "DELIVERED"}],
        # "error":{}}
        data = [{"campaign_id": m.message_id, "status": m.status, "status_details": m.details} for m in found]
        return json_response({"data": data, "error": {}})

    @route("GET", r"/v1/(?P<sid>[^/]+)/messages/status")
    def status_messages(self, req: EmuRequest, sid: str) -> EmuResponse:
        return self._status(req, sid)

    @route("GET", r"/v1/(?P<sid>[^/]+)/sms/status")
    def status_sms(self, req: EmuRequest, sid: str) -> EmuResponse:
        return self._status(req, sid)

    @route("GET", r"/v1/(?P<sid>[^/]+)/messages")
    def list_messages(self, req: EmuRequest, sid: str) -> EmuResponse:
        # ASSUMPTION: the message log (api-evangelist's model of the Kaleyra API) filters by `ref`, the
        # column Kaleyra's reports show; smsrelay uses it to settle an ambiguous send.
        if denied := self._auth(req, sid):
            return denied
        ref = req.params.get("ref")
        with self.lock:
            rows: Sequence[_Msg] = [m for m in self.messages.values() if ref is None or m.ref == ref]
            data = [
                {
                    "message_id": m.message_id,
                    "id": m.batch_id,
                    "recipient": m.recipient,
                    "ref": m.ref,
                    "status": m.status,
                    "createdDateTime": kaleyra_time(m.created_at),
                }
                for m in rows
            ]
        return json_response({"data": data, "error": {}})
