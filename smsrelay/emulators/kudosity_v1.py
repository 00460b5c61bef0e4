"""Kudosity's V1 "Transmit SMS" API (``api.transmitsms.com``), as a local server.

Citations: OAS1 is the V1 OpenAPI (https://developers.kudosity.com/openapi/api_documentation.yml),
"signature page" https://developers.kudosity.com/docs/validating-webhook-signatures-from-kudosity,
"Kudosity docs" the docs' source (https://github.com/kudosity/kudosity-dev-docs); each with the
fact it gives. HTTP Basic ``api_key:api_secret``, form bodies (or a
query string), ``.json`` paths, errors as ``{"error": {"code", "description"}}``.
DLR, reply and link-hit callbacks are GET requests to the URLs given per send (or
the account defaults given to the constructor), signed with
``x-transmitsms-signature`` exactly as Kudosity's reference script checks them.

Outcomes by the recipient's last four digits (as the sandbox's, as far as V1's four
statuses go): 0001 ``hard-bounce``, 0002 ``soft-bounce`` (expired), 0003
``hard-bounce`` (V1 has no "rejected"), 0004 reply "YES", 0005 reply "NO", 0006 a
link hit, 0007 reply "STOP" (``is_optout=yes``), 0008 stays ``pending`` with no DLR;
anything else is ``delivered``. :meth:`inject_reply` simulates any reply.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from smsrelay.emulators.base import Emulator, EmuRequest, EmuResponse, RateLimit, json_response, route
from smsrelay.errors import InvalidRequest
from smsrelay.phone import normalize
from smsrelay.providers.kudosity import parse_time, v1_signature
from smsrelay.segments import analyse

# Kudosity docs, API Overview: Rate limiting (reference/API Overview/rate-limiting.md in
# github.com/t--becker/kudosity-dev-docs): "we limit the number of API calls which can be made
# by each account to 15 calls per sec"; over it, 429 with OVER_LIMIT and the request is dropped.
# No Retry-After or rate headers are documented, so the 429 carries none.
# ASSUMPTION: a sliding one-second window over the whole account (the page names no algorithm),
# shared by V1 and V2 (one account, two APIs; the page predates V2 and V2 publishes no number).
ACCOUNT_RATE_LIMIT = RateLimit(
    15, 1.0, source="Kudosity docs, API Overview: Rate limiting (15 calls per sec per account)"
)

__all__ = ["KudosityV1Emulator"]

OUTCOMES = {"0001": "hard-bounce", "0002": "soft-bounce", "0003": "hard-bounce", "0008": "pending"}
REPLIES = {"0004": "YES", "0005": "NO", "0007": "STOP"}
MAX_TO = 500  # OAS1 send-sms `to`: up to 500 comma-separated numbers
MAX_CHARS = 612  # OAS1 send-sms `message`: at most 612 characters
PRICE_PER_PART = Decimal("0.087")  # OAS1 send-sms sample: one part cost 0.087
OK = {"code": "SUCCESS", "description": "OK"}


def _v1_time(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S")  # Kudosity docs (timestamps): YYYY-MM-DD HH:MM:SS, UTC


class KudosityV1Emulator(Emulator):
    """The V1 endpoints smsrelay uses. ``credentials`` maps API keys to secrets."""

    name = "kudosity-v1"
    documented_rate_limit = ACCOUNT_RATE_LIMIT

    def __init__(
        self,
        *,
        credentials: dict[str, str] | None = None,
        senders: tuple[str, ...] = ("61481074185", "Acme"),
        balance: Decimal | float | str = "100000",
        user_id: int = 63935,
        dlr_callback: str | None = None,
        reply_callback: str | None = None,
        link_hits_callback: str | None = None,
        delivered_after: float = 3.0,
        reply_after: float = 5.0,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.credentials = dict(credentials or {"test-key": "test-secret"})
        self.senders = senders
        self.balance = Decimal(str(balance))
        self.user_id = user_id
        # Account defaults (Settings); a send's own callback URLs override them (OAS1 send-sms).
        self.defaults = {
            "dlr_callback": dlr_callback,
            "reply_callback": reply_callback,
            "link_hits_callback": link_hits_callback,
        }
        self.delivered_after = delivered_after
        self.reply_after = reply_after
        self.messages: dict[int, dict[str, Any]] = {}
        self.responses: list[dict[str, Any]] = []
        self.exchanges: list[tuple[EmuRequest, EmuResponse]] = []
        self._ids = itertools.count(339683245)
        self._response_ids = itertools.count(36573149)

    # -- envelope and errors --------------------------------------------------------
    @staticmethod
    def _error(code: str, description: str, status: int) -> EmuResponse:
        # OAS1 error responses: the error block, with the HTTP status as its `header`.
        return json_response({"error": {"code": code, "description": description, "header": status}}, status)

    def not_found(self, req: EmuRequest) -> EmuResponse:
        return self._error("NOT_IMPLEMENTED", "The requested method is not implemented", 404)

    def method_not_allowed(self, req: EmuRequest) -> EmuResponse:
        return self._error("NOT_IMPLEMENTED", "The requested method is not implemented", 404)

    def rate_limited(self, req: EmuRequest, headers: dict[str, str]) -> EmuResponse:
        # Kudosity docs (rate limits): 429 with OVER_LIMIT; the request is dropped, not queued.
        resp = self._error("OVER_LIMIT", "You have exceeded the number of API calls per second", 429)
        resp.headers.update(headers)
        return resp

    def handle(self, req: EmuRequest) -> EmuResponse:
        resp = super().handle(req)
        with self.lock:
            self.exchanges.append((req, resp))
        return resp

    def _auth(self, req: EmuRequest) -> EmuResponse | None:
        header = req.header("Authorization") or ""
        if not header.startswith("Basic "):
            return self._error("AUTH_FAILED_NO_DATA", "You did not provide authentication data", 401)
        try:
            key, _, secret = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return self._error("AUTH_FAILED", "The auth data you have provided is invalid.", 401)
        known = self.credentials.get(key) == secret
        if not known and not (secret and key not in self.credentials and self.key_accepted(key, ())):
            return self._error("AUTH_FAILED", "The auth data you have provided is invalid.", 401)
        return None

    @staticmethod
    def _params(req: EmuRequest) -> dict[str, str]:
        # OAS1: form-encoded POST, some calls by GET with a query string.
        return {**req.params, **(req.form() if req.method == "POST" else {})}

    @staticmethod
    def _invalid(description: str) -> EmuResponse:
        return KudosityV1Emulator._error("FIELD_INVALID", description, 400)

    # -- send-sms ------------------------------------------------------------------------
    @route("POST", r"/send-sms\.json")
    def send_sms(self, req: EmuRequest) -> EmuResponse:
        if denied := self._auth(req):
            return denied
        p = self._params(req)
        message = p.get("message", "")
        if not message.strip():
            return self._error("FIELD_EMPTY", "Required field 'message' is empty", 400)
        if len(message) > MAX_CHARS:
            return self._invalid(f"'message' is longer than {MAX_CHARS} characters")
        if not p.get("to") and not p.get("list_id"):
            return self._error("FIELD_EMPTY", "Required field 'to' is empty", 400)
        raw_to = [n.strip() for n in p.get("to", "").split(",") if n.strip()]
        if len(raw_to) > MAX_TO:
            return self._invalid(f"'to' has more than {MAX_TO} numbers")
        sender = p.get("from", "")
        if sender and sender not in self.senders:
            # Kudosity docs (V1 error codes), BAD_CALLER_ID: sender invalid, inactive or expired.
            alnum = sender.replace("_", "").replace("-", "").isalnum() and not sender.isdigit()
            if not (alnum and len(sender) <= 11):
                return self._error("BAD_CALLER_ID", f"Caller ID '{sender}' is invalid or inactive", 400)
        now = self.clock.now()
        send_at = now
        if p.get("send_at"):
            when = parse_time(p["send_at"])
            if when is None or "T" in p["send_at"]:
                return self._invalid("'send_at' must be YYYY-MM-DD HH:MM:SS (UTC)")
            send_at = max(now, when)
        if p.get("validity") and not p["validity"].isdigit():
            return self._invalid("'validity' must be a number of minutes")
        for name in ("dlr_callback", "reply_callback", "link_hits_callback", "tracked_link_url"):
            if p.get(name) and not p[name].startswith(("http://", "https://")):
                return self._invalid(f"'{name}' must be a URL")
        seen: dict[str, None] = {}  # each number once, in the order given
        for n in raw_to:
            try:
                e164 = normalize(n, p.get("countrycode") or None) if p.get("countrycode") else normalize("+" + n)
            except InvalidRequest:
                continue  # OAS1 send-sms: "invalid numbers will be ignored"
            seen[e164.lstrip("+")] = None
        numbers = list(seen)
        if not numbers:
            return self._error("RECIPIENTS_ERROR", "No valid recipients left after validation", 400)
        parts = analyse(message).parts
        cost = PRICE_PER_PART * parts * len(numbers)
        with self.lock:
            if cost > self.balance:
                return self._error("LEDGER_ERROR", "Insufficient funds to send this message", 400)
            self.balance -= cost
            mid = next(self._ids)
            msg = {
                "message_id": mid,
                "message": message,
                "from": sender or "61400000000",
                "send_at": send_at,
                "created": now,
                "parts": parts,
                "cost": cost,
                "cancelled": False,
                "callbacks": {k: p.get(k) or v for k, v in self.defaults.items()},
                "tracked_link_url": p.get("tracked_link_url"),
                "recipients": {n: {"status": "pending", "optout": False, "hits": 0} for n in numbers},
            }
            self.messages[mid] = msg
        delay = (send_at - now).total_seconds()
        for number in numbers:
            self._simulate(msg, number, delay)
        return json_response(
            {
                "message_id": mid,
                "send_at": _v1_time(send_at),
                "recipients": len(numbers),
                "cost": float(round(cost, 3)),
                "sms": parts * len(numbers),
                "delivery_stats": {"delivered": 0, "pending": 0, "bounced": 0, "responses": 0, "optouts": 0},
                "error": OK,
            }
        )

    # -- simulated delivery and callbacks ------------------------------------------------
    def _simulate(self, msg: dict[str, Any], number: str, delay: float) -> None:
        tail = number[-4:]
        outcome = OUTCOMES.get(tail, "delivered")
        if outcome != "pending":
            self.after(delay + self.delivered_after, lambda: self._dlr(msg, number, outcome))
        if tail in REPLIES:
            text = REPLIES[tail]
            self.after(delay + self.reply_after, lambda: self._reply_later(msg, number, text))
        if tail == "0006":
            self.after(delay + self.reply_after, lambda: self.link_hit(msg["message_id"], number))

    def _dlr(self, msg: dict[str, Any], number: str, status: str) -> None:
        if msg["cancelled"]:
            return
        now = self.clock.now()
        with self.lock:
            msg["recipients"][number]["status"] = status
        # OAS1 dlr_callback params, in the order of the signature page's sample.
        self._callback(
            msg,
            "dlr_callback",
            [
                ("message_id", str(msg["message_id"])),
                ("mobile", number),
                ("datetime", _v1_time(now)),
                ("status", status),
                ("user_id", str(self.user_id)),
                ("rate", "10"),
            ],
        )

    def _callback(self, msg: dict[str, Any] | None, which: str, params: list[tuple[str, str]]) -> None:
        url = (msg["callbacks"].get(which) if msg else None) or self.defaults.get(which)
        if not url:
            return
        full = url + ("&" if "?" in url else "?") + urlencode(params)
        query = full.split("?", 1)[1]
        secret = next(iter(self.credentials.values()))
        # Signature page: HMAC-SHA256 with the API secret over json_encode of the query, in order.
        self.push(full, method="GET", headers={"x-transmitsms-signature": v1_signature(query, secret)})

    def _reply_later(self, msg: dict[str, Any], number: str, text: str) -> None:
        self._reply_to(msg, number, text)

    def _reply_to(self, msg: dict[str, Any] | None, number: str, text: str) -> dict[str, Any]:
        now = self.clock.now()
        optout = text.strip().upper() == "STOP"
        row = {
            "id": next(self._response_ids),
            "message_id": msg["message_id"] if msg else 0,
            "list_id": 0,
            "received_at": _v1_time(now),
            "first_name": None,
            "last_name": None,
            "msisdn": int(number),
            "response": text,
            "longcode": int(msg["from"]) if msg and str(msg["from"]).isdigit() else 61400000000,
            "original_message": msg["message"] if msg else None,
        }
        with self.lock:
            self.responses.append(row)
            if msg and optout:
                msg["recipients"][number]["optout"] = True
        # OAS1 reply_callback params.
        self._callback(
            msg,
            "reply_callback",
            [
                ("user_id", str(self.user_id)),
                ("message_id", str(row["message_id"])),
                ("mobile", number),
                ("longcode", str(row["longcode"])),
                ("datetime_entry", str(row["received_at"])),
                ("response", text),
                ("response_id", str(row["id"])),
                ("is_optout", "yes" if optout else "no"),
            ],
        )
        return row

    def inject_reply(self, phone: str, text: str) -> dict[str, Any]:
        """Simulate an SMS from ``phone``, as a reply to the last message sent to it."""
        number = phone.lstrip("+")
        with self.lock:
            last = max(
                (m for m in self.messages.values() if number in m["recipients"]),
                key=lambda m: m["message_id"],
                default=None,
            )
        return self._reply_to(last, number, text)

    def link_hit(self, message_id: int, number: str) -> None:
        """Simulate a visit to the tracked link of ``message_id`` by ``number``."""
        msg = self.messages[message_id]
        with self.lock:
            rcpt = msg["recipients"][number]
            rcpt["hits"] += 1
            hits = rcpt["hits"]
        # OAS1 link_hits_callback params.
        self._callback(
            msg,
            "link_hits_callback",
            [
                ("list_id", "0"),
                ("message_id", str(message_id)),
                ("mobile", number),
                ("longcode", str(msg["from"])),
                ("datetime", _v1_time(self.clock.now())),
                ("message", msg["message"]),
                ("user_id", str(self.user_id)),
                ("link_hits", str(hits)),
                ("firstname", ""),
                ("lastname", ""),
            ],
        )

    # -- other calls -----------------------------------------------------------------------
    def _message(self, p: dict[str, str], field: str = "message_id") -> dict[str, Any] | EmuResponse:
        value = p.get(field, "")
        if not value:
            return self._error("FIELD_EMPTY", f"Required field '{field}' is empty", 400)
        if not value.isdigit() or int(value) not in self.messages:
            return self._invalid(f"'{field}' is not a message of this account")
        return self.messages[int(value)]

    @route("POST", r"/cancel-sms\.json")
    def cancel_sms(self, req: EmuRequest) -> EmuResponse:
        if denied := self._auth(req):
            return denied
        msg = self._message(self._params(req), "id")
        if isinstance(msg, EmuResponse):
            return msg
        with self.lock:
            if msg["cancelled"]:
                return self._invalid("This message has already been cancelled")
            if msg["send_at"] <= self.clock.now():
                # ASSUMPTION: only a scheduled message that has not gone out can be cancelled.
                return self._invalid("This message has already been sent and cannot be cancelled")
            msg["cancelled"] = True
            self.balance += msg["cost"]
        return json_response({"success": "OK", "error": OK})

    def _page(self, p: dict[str, str], default_max: int = 10) -> tuple[int, int] | EmuResponse:
        try:
            page = int(p.get("page") or 1)
            size = int(p.get("max") or default_max)
        except ValueError:
            return self._invalid("'page' and 'max' must be numbers")
        if page < 1 or not 1 <= size <= 100:  # Kudosity docs (pagination): max is at most 100
            return self._invalid("'page' must be ≥ 1 and 'max' 1-100")
        return page, size

    @route("POST", r"/get-sms-sent\.json")
    def get_sms_sent(self, req: EmuRequest) -> EmuResponse:
        if denied := self._auth(req):
            return denied
        p = self._params(req)
        msg = self._message(p)
        if isinstance(msg, EmuResponse):
            return msg
        paging = self._page(p)
        if isinstance(paging, EmuResponse):
            return paging
        page, size = paging
        with self.lock:
            rows = [(n, dict(r)) for n, r in msg["recipients"].items()]
        wanted = p.get("delivery")
        if wanted:
            bounce = ("hard-bounce", "soft-bounce")
            rows = [(n, r) for n, r in rows if r["status"] == wanted or (wanted == "failed" and r["status"] in bounce)]
        total = len(rows)
        chunk = rows[(page - 1) * size : page * size]
        # OAS1 get-sms-sent: a paginated `recipients` list with each one's delivery_status; OAS1's
        # example carries `total` and `page` at the top and `optout` as false/true.
        return json_response(
            {
                "page": {"count": max(1, -(-total // size)), "number": page},
                "total": total,
                "message": self._summary(msg),
                "recipients": [
                    {
                        "msisdn": int(n),
                        "first_name": "",
                        "last_name": "",
                        "delivery_status": r["status"],
                        "optout": bool(r["optout"]),
                    }
                    for n, r in chunk
                ],
                "error": OK,
            }
        )

    def _summary(self, msg: dict[str, Any]) -> dict[str, Any]:
        stats = self._stats(msg)
        return {
            "message_id": msg["message_id"],
            "send_at": _v1_time(msg["send_at"]),
            "recipients": len(msg["recipients"]),
            "cost": float(round(msg["cost"], 3)),
            "sms": msg["parts"] * len(msg["recipients"]),
            "message_content": msg["message"],
            "delivery_stats": {k: stats[k] for k in ("delivered", "pending", "bounced", "responses")}
            | {"optouts": stats["opt-outs"]},
        }

    def _stats(self, msg: dict[str, Any]) -> dict[str, int]:
        with self.lock:
            statuses = [r["status"] for r in msg["recipients"].values()]
            hard = statuses.count("hard-bounce")
            soft = statuses.count("soft-bounce")
            return {
                "hard_bounced": hard,
                "soft_bounced": soft,
                "total": len(statuses),
                "recipientCount": len(statuses),
                "delivered": statuses.count("delivered"),
                "pending": statuses.count("pending"),
                "bounced": hard + soft,
                "responses": sum(1 for r in self.responses if r["message_id"] == msg["message_id"]),
                "opt-outs": sum(1 for r in msg["recipients"].values() if r["optout"]),
                "link_hits": sum(r["hits"] for r in msg["recipients"].values()),
            }

    @route("POST", r"/get-sms-stats\.json")
    def get_sms_stats(self, req: EmuRequest) -> EmuResponse:
        if denied := self._auth(req):
            return denied
        msg = self._message(self._params(req))
        if isinstance(msg, EmuResponse):
            return msg
        return json_response({"stats": self._stats(msg), "error": OK})

    @route("POST", r"/get-sms-responses\.json")
    def get_sms_responses(self, req: EmuRequest) -> EmuResponse:
        if denied := self._auth(req):
            return denied
        p = self._params(req)
        paging = self._page(p)
        if isinstance(paging, EmuResponse):
            return paging
        page, size = paging
        now = self.clock.now()
        start = parse_time(p.get("start")) if p.get("start") else now - timedelta(days=30)
        end = parse_time(p.get("end")) if p.get("end") else now
        if start is None or end is None:
            return self._invalid("'start' and 'end' must be YYYY-MM-DD HH:MM:SS (UTC)")
        with self.lock:
            rows = list(self.responses)
        if p.get("message_id"):
            rows = [r for r in rows if str(r["message_id"]) == p["message_id"]]
        if p.get("msisdn"):
            rows = [r for r in rows if str(r["msisdn"]) == p["msisdn"].lstrip("+")]
        rows = [r for r in rows if start <= (parse_time(r["received_at"]) or now) <= end]
        if p.get("include_original", "").lower() not in ("1", "true", "yes"):
            rows = [{k: v for k, v in r.items() if k != "original_message"} for r in rows]
        total = len(rows)
        return json_response(
            {
                "page": {"count": max(1, -(-total // size)), "number": page},
                "total": total,
                "responses": rows[(page - 1) * size : page * size],
                "error": OK,
            }
        )

    @route("GET", r"/get-balance\.json")
    def get_balance(self, req: EmuRequest) -> EmuResponse:
        if denied := self._auth(req):
            return denied
        return json_response({"balance": float(round(self.balance, 3)), "currency": "AUD", "error": OK})

    @route("POST", r"/format-number\.json")
    def format_number(self, req: EmuRequest) -> EmuResponse:
        if denied := self._auth(req):
            return denied
        p = self._params(req)
        if not p.get("msisdn") or not p.get("countrycode"):
            return self._error("FIELD_EMPTY", "Required fields 'msisdn' and 'countrycode'", 400)
        import phonenumbers

        try:
            parsed = phonenumbers.parse(p["msisdn"], p["countrycode"].upper())
            valid = phonenumbers.is_valid_number(parsed)
        except phonenumbers.NumberParseException:
            return json_response({"number": {"isValid": False, "type": 10}, "error": OK})
        kind = phonenumbers.number_type(parsed)
        mobile = kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
        national = int(parsed.national_number or 0)
        return json_response(
            {
                "number": {
                    "countrycode": parsed.country_code,
                    "nationalnumber": national,
                    "national_leading_zeroes": national,
                    "rawinput": None,
                    "international": int(f"{parsed.country_code}{national}"),
                    "type": (1 if mobile else 0) if valid else 10,
                    "isValid": valid,
                },
                "error": OK,
            }
        )

    # -- inspection ----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        with self.lock:
            return {
                "balance": str(self.balance),
                "messages": [
                    {
                        "message_id": m["message_id"],
                        "message": m["message"],
                        "send_at": _v1_time(m["send_at"]),
                        "cancelled": m["cancelled"],
                        "recipients": {n: r["status"] for n, r in m["recipients"].items()},
                    }
                    for m in self.messages.values()
                ],
                "responses": list(self.responses),
            }

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.messages.clear()
            self.responses.clear()
            self.exchanges.clear()

    # -- the kit's control API, in V1's terms (OAS1 callbacks) --------------------------------
    def _last_to(self, phone: str) -> dict[str, Any]:
        number = phone.lstrip("+")
        with self.lock:
            sent = [m for m in self.messages.values() if number in m["recipients"]]
        if not sent:
            raise LookupError("no message was sent to that number")
        return max(sent, key=lambda m: m["message_id"])

    def control_reply(self, phone: str, text: str, to: str | None) -> dict[str, Any]:
        return self.inject_reply(phone, text)

    def control_link_hit(self, phone: str, url: str | None) -> dict[str, Any]:
        # OAS1 link_hits_callback: the link is the send's tracked_link_url, no other URL.
        msg = self._last_to(phone)
        self.link_hit(msg["message_id"], phone.lstrip("+"))
        return {"message_id": msg["message_id"], "hits": msg["recipients"][phone.lstrip("+")]["hits"]}

    def control_opt_out(self, phone: str) -> dict[str, Any]:
        # OAS1 reply_callback: an opt-out is a STOP reply, called back with is_optout=yes.
        return self.inject_reply(phone, "STOP")

    def control_messages(self) -> Iterable[dict[str, Any]]:
        for m in sorted(self.messages.values(), key=lambda m: m["message_id"]):
            for number, rcpt in m["recipients"].items():
                yield {
                    # The id the adapter gives each recipient: <message_id>:<number>.
                    "id": f"{m['message_id']}:{number}",
                    "to": "+" + number,
                    "from": m["from"],
                    "body": m["message"],
                    "status": rcpt["status"],
                }
