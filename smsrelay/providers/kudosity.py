"""Kudosity, smsrelay's main provider: its V2 and V1 APIs behind one adapter.

``api: v2`` (the default) speaks the "Transmit Message" API: ``x-api-key``, JSON,
one recipient per call, webhooks managed through ``/v2/webhook``. ``api: v1`` speaks
the classic "Transmit SMS" API: HTTP Basic ``api_key:api_secret``, form bodies,
``.json`` paths, up to 500 recipients per call, and signed GET callbacks.

Sources are cited as ``kudosity.md §n`` (../shared/research/kudosity.md), OAS2
(transmit-message-api-v2.openapi.yaml) and OAS1 (transmit-sms-api-v1.openapi.json).

>>> from smsrelay.config import ProviderSettings
>>> KudosityProvider(ProviderSettings("kudosity", api_key="k")).api
'v2'
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote_to_bytes, urlencode, urlsplit, urlunsplit

import requests

from smsrelay.clock import Clock
from smsrelay.errors import (
    AuthError,
    ConfigError,
    InsufficientCredit,
    InvalidRequest,
    NotCancellable,
    NotFound,
    ProviderServerError,
    RateLimited,
    SmsRelayError,
    WebhookError,
)
from smsrelay.model import (
    Capabilities,
    Delivery,
    Event,
    LinkHit,
    OptOut,
    PreparedSms,
    RecipientResult,
    Reply,
    Status,
    event_id_for,
)
from smsrelay.phone import from_wire, to_wire
from smsrelay.providers.base import Balance, BatchOutcome, EventPage, Provider, Webhook
from smsrelay.providers.batching import plan_by_body
from smsrelay.providers.errors import OTHER, SERVER_ERROR, ErrorRule, StatusTable, error_for_status
from smsrelay.redaction import redact
from smsrelay.transport import Transport
from smsrelay.webhooks import WebhookRequest, constant_time_equals, json_body

__all__ = [
    "V1_STATUS",
    "V2_STATUS",
    "KudosityProvider",
    "php_json_of_query",
    "v1_signature",
]

log = logging.getLogger("smsrelay.providers.kudosity")

V2_BASE_URL = "https://api.transmitmessage.com"
V1_BASE_URL = "https://api.transmitsms.com"

# OAS2 Status enum (13 values) and MessageStatus (webhooks: the same plus INVALID),
# matched case-insensitively: send and list answer lowercase, get and webhooks
# uppercase (kudosity.md §3.2).
V2_STATUS: dict[str, Status] = {
    "PENDING": Status.QUEUED,  # queued
    "PENDING_APPROVAL": Status.QUEUED,  # awaiting approval by Kudosity support
    "SUBMITTED": Status.SENT,  # submitted to provider
    "SENT": Status.SENT,  # submitted to provider
    "ACCEPTED": Status.SENT,  # accepted by provider, delivery not confirmed (§3.6: ≠ delivered)
    "DELIVERED": Status.DELIVERED,
    "READ": Status.DELIVERED,  # read by recipient: delivered, and then some
    "FAILED": Status.FAILED,
    "HARD_BOUNCE": Status.FAILED,  # handset disconnected
    "UNDELIVERABLE": Status.FAILED,
    # §3.8: an expired message is reported as a soft bounce (handset off or out of range).
    "SOFT_BOUNCE": Status.EXPIRED,
    "REJECTED": Status.REJECTED,  # pending-approval message rejected by support
    "INVALID": Status.REJECTED,  # ASSUMPTION: webhook-only value, read as an invalid destination
    "OTHER": Status.UNKNOWN,  # any other DLR
}
# §3.8 DLR callback `status`; courier maps the same four values.
V1_STATUS: dict[str, Status] = {
    "delivered": Status.DELIVERED,
    "pending": Status.SENT,  # no DLR yet; allow up to 72 h
    "soft-bounce": Status.EXPIRED,  # expiry is reported as a soft bounce (§3.8 `validity`)
    "hard-bounce": Status.FAILED,
}
V2_REASONS = {
    "SOFT_BOUNCE": "handset off or out of range until the message expired",
    "HARD_BOUNCE": "handset disconnected",
    "REJECTED": "rejected by Kudosity support",
    "UNDELIVERABLE": "undeliverable",
    "INVALID": "invalid destination",
}

# Core event kinds -> V2 EventType, for `register_webhook(events=[...])`.
EVENT_TYPES = {"delivery": "SMS_STATUS", "reply": "SMS_INBOUND", "link_hit": "LINK_HIT", "opt_out": "OPT_OUT"}
DEFAULT_EVENTS = ("SMS_STATUS", "SMS_INBOUND", "LINK_HIT", "OPT_OUT")
OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})

V2_CAPABILITIES = Capabilities(
    bulk_max=1,  # §3.1: one recipient per call
    concurrency=8,
    status_poll=True,
    dlr_push=True,
    inbound_push=True,
    inbound_poll=True,
    event_poll=True,
    lookup_by_ref=True,
    link_tracking=True,
    # ASSUMPTION: V2 documents no limit; Kudosity's own OpenClaw plugin caps at 1600.
    max_chars=1600,
    webhook_api=True,
    requires_sender=True,  # OAS2 SendSMSRequest: `sender` is required
    sender_max_chars=11,  # kudosity.md §3.2: an alphanumeric sender is ≤ 11 characters
)
V1_CAPABILITIES = Capabilities(
    bulk_max=500,  # §3.8: up to 500 comma-separated numbers
    concurrency=4,
    schedule=True,
    cancel=True,
    status_poll=True,
    dlr_push=True,
    inbound_push=True,
    inbound_poll=True,
    event_poll=True,
    follow_sends=True,
    balance=True,
    link_tracking=True,
    max_chars=612,  # §3.8: message up to 612 characters
    # §3.8 would fall back to a shared number, but the adapter writes `from` on every call.
    requires_sender=True,
    sender_max_chars=11,  # §3.8: "an 11-character alphanumeric" sender
)


# -- V1 callback signatures: PHP's parse_str -> json_encode -> hash_hmac ------------------
def _php_urldecode(text: str) -> str:
    # PHP urldecode: "+" is a space, %XX is a byte, a malformed escape stays literal.
    raw = unquote_to_bytes(text.replace("+", " "))
    return raw.decode("utf-8")  # invalid UTF-8 makes json_encode fail: UnicodeDecodeError


def _php_key(key: str) -> str:
    # parse_str: leading spaces are dropped; " " and "." become "_" (before any "[").
    key = key.lstrip(" ")
    head, bracket, tail = key.partition("[")
    head = head.replace(" ", "_").replace(".", "_")
    if bracket and "]" not in tail:
        # An unclosed "[" is kept, but turned into "_" like PHP does.
        return head + "_" + tail
    return head + bracket + tail


_PHP_INT = re.compile(r"-?(0|[1-9][0-9]*)")


def php_parse_str(query: str) -> dict[str, Any]:
    """The array PHP's ``parse_str`` builds from a query string, in PHP's key order.

    Supports flat keys and one level of ``name[]``/``name[key]``; a repeated key
    keeps its first position and its last value, as PHP arrays do.

    >>> php_parse_str("b=2&a=x+y&b=3")
    {'b': '3', 'a': 'x y'}
    """
    out: dict[str, Any] = {}
    for piece in query.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        key = _php_key(_php_urldecode(name))
        if not key:
            continue
        val = _php_urldecode(value)
        m = re.fullmatch(r"([^\[]+)\[([^\]]*)\](.*)", key)
        if m is None:
            out[key] = val
            continue
        base, sub = m.group(1), m.group(2)
        arr = out.get(base)
        if not isinstance(arr, dict):
            arr = {}
            out[base] = arr
        if sub == "":
            ints = [int(k) for k in arr if _PHP_INT.fullmatch(k)]
            sub = str(max(ints) + 1 if ints else 0)
        arr[sub] = val
    return out


def _php_json(value: Any) -> str:
    if isinstance(value, dict):
        if not value:
            return "[]"  # PHP cannot tell an empty array from an empty list
        keys = list(value)
        if all(_PHP_INT.fullmatch(k) for k in keys) and [int(k) for k in keys] == list(range(len(keys))):
            return "[" + ",".join(_php_json(v) for v in value.values()) + "]"
        return "{" + ",".join(_php_json_str(k) + ":" + _php_json(v) for k, v in value.items()) + "}"
    return _php_json_str(str(value))


_PHP_ESCAPES = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _php_json_str(text: str) -> str:
    # json_encode defaults: "/" escaped as "\/", other controls as \u00XX, non-ASCII as
    # \uXXXX (lowercase hex, surrogate pairs), and DEL (0x7f) left as it is.
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _PHP_ESCAPES:
            out.append(_PHP_ESCAPES[ch])
        elif code < 0x20:
            out.append(f"\\u{code:04x}")
        elif code < 0x80:
            out.append(ch)
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
    out.append('"')
    return "".join(out)


def php_json_of_query(query: str) -> str:
    """PHP ``json_encode(parse_str(query))``: the text Kudosity signs (kudosity.md §3.7).

    >>> php_json_of_query("message_id=1&datetime=2021-04-26+04%3A18%3A00&url=a/b")
    '{"message_id":"1","datetime":"2021-04-26 04:18:00","url":"a\\\\/b"}'
    """
    return _php_json(php_parse_str(query))


def v1_signature(query: str, secret: str) -> str:
    """The ``x-transmitsms-signature`` of a V1 callback's raw query string.

    HMAC-SHA256 keyed with the API secret over :func:`php_json_of_query`, in hex.

    >>> len(v1_signature("message_id=1&status=delivered", "secret"))
    64
    """
    payload = php_json_of_query(query).encode("utf-8")
    return hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).hexdigest()


# -- time ------------------------------------------------------------------------------
def parse_time(value: Any) -> datetime | None:
    """A tolerant RFC 3339 / V1 ``YYYY-MM-DD HH:MM:SS`` parser; always UTC (§3.9).

    >>> parse_time("2022-03-28T06:12:52.450674000Z").microsecond
    450674
    """
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace(" ", "T", 1).replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d)?)(?:\.(\d+))?(.*)", text)
    if m is None:
        return None
    frac = (m.group(2) or "")[:6]
    try:
        dt = datetime.fromisoformat(m.group(1) + (f".{frac.ljust(6, '0')}" if frac else "") + m.group(3))
    except ValueError:
        return None
    # §3.9: V1 timestamps are always UTC, without a zone.
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _v1_time(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _rfc3339(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- errors ------------------------------------------------------------------------------
# An error response as a core error: by the V1 error code where there is one, else by status.
_SAID = "kudosity answered {status}{coded}: {text}; "
_AUTH = ErrorRule(AuthError, _SAID + "check the API key (and, for V1, the API secret)")
_CREDIT = ErrorRule(InsufficientCredit, _SAID + "top up the Kudosity account")
_SLOW = ErrorRule(RateLimited, _SAID + "slow down or ask Kudosity to raise the account's limit")
_NOT_FOUND = ErrorRule(NotFound, _SAID + "check the id")
_SERVER = ErrorRule(ProviderServerError, _SAID + "Kudosity failed on its side; try again later")
_FIX = ErrorRule(InvalidRequest, _SAID + "fix the request")
ERRORS: StatusTable = {
    "AUTH_FAILED_NO_DATA": _AUTH,
    "AUTH_FAILED": _AUTH,
    "NOT_IMPLEMENTED": _FIX,
    "OVER_LIMIT": _SLOW,
    "FIELD_EMPTY": _FIX,
    "FIELD_INVALID": _FIX,
    "MISSING_PARAM": _FIX,
    "NO_ACCESS": _AUTH,
    "KEY_EXISTS": _FIX,
    "LEDGER_ERROR": _CREDIT,
    "BAD_CALLER_ID": _FIX,
    "LIST_EMPTY": _FIX,
    "RECIPIENTS_ERROR": _FIX,
    "TOO-MANY-REQUESTS": _SLOW,
    429: _SLOW,
    401: _AUTH,
    403: _AUTH,
    402: _CREDIT,
    404: _NOT_FOUND,
    SERVER_ERROR: _SERVER,
    OTHER: _FIX,
}
_FIELD_IN_TEXT = re.compile(r"Validation Error: (?P<field>[A-Za-z_.\[\]0-9]+):")


def kudosity_error(resp: requests.Response) -> SmsRelayError:
    """The core error for a Kudosity error response, keeping Kudosity's own text.

    Handles V2's plain ``{"error": "..."}``, its Problem Details (flat or wrapped
    in ``error``), V1's ``{"error": {"code", "description"}}`` and bare HTTP codes.
    """
    status = resp.status_code
    try:
        body: Any = resp.json()
    except ValueError:
        body = None
    code: str | None = None
    text = ""
    field: str | None = None
    err = body.get("error") if isinstance(body, dict) else None
    problem = err if isinstance(err, dict) and ("title" in err or "detail" in err) else None
    if problem is None and isinstance(body, dict) and ("title" in body or "detail" in body):
        problem = body
    if problem is not None:
        # OAS2 ProblemDetails: {type, title, detail, status, issues[{name|field, code, message}]}
        title, detail = problem.get("title") or "", problem.get("detail") or ""
        text = f"{title}: {detail}" if title and detail and detail != title else (title or detail)
        issues = problem.get("issues") or []
        if issues and isinstance(issues[0], dict):
            first = issues[0]
            field = first.get("name") or first.get("field")
            text += f" ({field}: {first.get('message', '')})" if field else f" ({first.get('message', '')})"
        code = str(problem.get("type") or "").rsplit("#", 1)[-1] or None
    elif isinstance(err, dict):
        code = str(err.get("code") or "") or None
        text = str(err.get("description") or "")
    elif isinstance(err, str):
        text = err
    elif resp.text:
        text = resp.text[:300]
    if code == "SUCCESS":
        code = None
    if field is None:
        m = _FIELD_IN_TEXT.search(text)
        if m:
            field = m.group("field")
        elif "sender" in text.lower() or code == "BAD_CALLER_ID":
            field = "sender"
    shown = redact(text) or resp.reason or "no details"
    return error_for_status(
        ERRORS,
        status,
        provider="kudosity",
        text=shown,
        code=code,
        field=field,
        key=code.upper() if code else None,
        words={"coded": " " + code if code else ""},
    )


class _Cursor:
    """An opaque, resumable polling position: base64url of compact JSON."""

    @staticmethod
    def load(cursor: str | None) -> dict[str, Any]:
        if not cursor:
            return {}
        try:
            data = json.loads(base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)))
        except (ValueError, TypeError):
            raise InvalidRequest(f"not a Kudosity event cursor: {cursor[:40]!r}", field="cursor") from None
        if not isinstance(data, dict):
            raise InvalidRequest("not a Kudosity event cursor", field="cursor")
        return data

    @staticmethod
    def dump(data: Mapping[str, Any]) -> str:
        raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class KudosityProvider(Provider):
    """Kudosity V2 (``api: v2``, default) or V1 (``api: v1``, needs ``api_secret``).

    >>> from smsrelay.config import ProviderSettings
    >>> p = KudosityProvider(ProviderSettings("kudosity", api_key="k", api_secret="s", options={"api": "v1"}))
    >>> p.capabilities.bulk_max
    500
    """

    name: ClassVar[str] = "kudosity"
    transport: Transport
    capabilities = V2_CAPABILITIES
    wire_format = "digits"  # §3.2: E.164 digits without "+"
    options: ClassVar[dict[str, type]] = {
        "api": str,
        "read_lag": float,  # seconds a fresh V2 message may 404 (§3.3)
        "max_chars": int,
        "dlr_callback": str,
        "reply_callback": str,
        "link_hits_callback": str,
        "poll_window": float,  # hours of V2 history polling looks back for final statuses
    }
    required: ClassVar[tuple[str, ...]] = ("api_key",)
    default_base_url = V2_BASE_URL
    # §3.9: "15 calls per sec" per account; Kudosity drops what is over.
    default_rate_limit: ClassVar[float | None] = 15.0

    def __init__(self, settings: Any, *, clock: Clock | None = None) -> None:
        super().__init__(settings, clock=clock)
        api = str(settings.option("api", "v2")).lower().strip()
        if api not in ("v1", "v2"):
            raise ConfigError(f"api must be v2 or v1, got {api!r}", field="kudosity.api", provider=self.name)
        self.api = api
        if api == "v1":
            if not settings.api_secret:
                raise ConfigError(
                    "Kudosity's V1 API needs api_secret as well as api_key (Settings → API Settings); "
                    "set it in the config or as SMSRELAY_KUDOSITY_API_SECRET",
                    field="api_secret",
                    provider=self.name,
                )
            self.capabilities = V1_CAPABILITIES
        self.read_lag = float(settings.option("read_lag", 5.0))
        self.poll_window = timedelta(hours=float(settings.option("poll_window", 72.0)))
        base = settings.base_url or (V1_BASE_URL if api == "v1" else V2_BASE_URL)
        self.transport = self.make_transport(
            base,
            headers={"x-api-key": settings.api_key, "Accept": "application/json"} if api == "v2" else None,
            auth=(settings.api_key, settings.api_secret) if api == "v1" else None,
            error_mapper=kudosity_error,
        )
        self._seen_lock = threading.Lock()
        # V1 sends whose delivery reports poll_events must still fetch (get-sms-sent
        # needs a message_id); handed into the next cursor, where they stay durable.
        self._follow: set[str] = set()

    def follow_sends(self, message_ids: Sequence[str]) -> None:
        """The feed hands recorded sends to V1 (``capabilities.follow_sends``); V2 lists every status itself."""
        if self.api == "v1":
            self.follow(message_ids)

    def __repr__(self) -> str:
        return f"KudosityProvider(api={self.api!r}, base_url={redact(self.transport.base_url)!r})"

    def close(self) -> None:
        self.transport.close()

    @property
    def requests_made(self) -> int:
        """HTTP requests made so far (benchmarks and tests count them)."""
        return self.transport.requests_made

    def _v2_only(self, what: str) -> None:
        if self.api != "v2":
            from smsrelay.errors import Unsupported

            raise Unsupported(f"Kudosity's V1 API has no {what}; use api: v2", provider=self.name)

    def _v1_only(self, what: str) -> None:
        if self.api != "v1":
            from smsrelay.errors import Unsupported

            raise Unsupported(f"Kudosity's V2 API has no {what}; use api: v1", provider=self.name)

    # ===================================================================== sending
    def plan_requests(self, batch: Sequence[PreparedSms]) -> list[list[PreparedSms]]:
        """The client's chunks: V2 one message a request; V1 one body to ≤500 numbers a request.

        >>> provider.plan_requests(prepared)  # doctest: +SKIP
        [[PreparedSms(...), ...], ...]
        """
        if self.api == "v1":
            return plan_by_body(batch, self.capabilities.bulk_max)
        return [[p] for p in batch]

    def send(self, batch: Sequence[PreparedSms], *, dry_run: bool = False) -> BatchOutcome:
        """V2: one ``POST /v2/sms`` per message. V1: one ``send-sms`` per distinct body."""
        if not batch:
            return BatchOutcome(None, [])
        if dry_run:
            return BatchOutcome(None, [RecipientResult(p.to, Status.QUEUED, None, p.parts, key=p.key) for p in batch])
        if self.api == "v1":
            return self._send_v1(batch)
        return BatchOutcome(None, [self._send_v2(p) for p in batch])

    def _sender(self, sms: PreparedSms) -> str:
        sender = sms.message.sender or self.settings.sender
        if not sender:
            raise InvalidRequest(
                "Kudosity needs a sender: set `sender` in the settings or pass sender=…",
                field="sender",
                provider=self.name,
            )
        return sender.lstrip("+") if sender.lstrip("+").isdigit() else sender

    def _send_v2(self, sms: PreparedSms) -> RecipientResult:
        if sms.message.send_at is not None:
            raise InvalidRequest("Kudosity's V2 API cannot schedule (§3.2); use api: v1", field="send_at")
        body = {
            "message": sms.body,
            "sender": self._sender(sms),
            "recipient": to_wire(sms.to, "digits"),
            # The idempotency key travels in message_ref (≤500 chars, OAS2) for reconciliation.
            "message_ref": sms.key[:500],
            "track_links": bool(sms.message.track_links),
        }
        data = self.transport.request("POST", "/v2/sms", json=body).json()
        return self._v2_result(sms.to, sms.key, data, sms.parts)

    def _v2_result(self, to: str, key: str | None, data: Mapping[str, Any], parts: int = 0) -> RecipientResult:
        raw = str(data.get("status") or "PENDING")
        try:
            count = int(data.get("sms_count") or parts)  # §3.2: sms_count is a string
        except (TypeError, ValueError):
            count = parts
        status = V2_STATUS.get(raw.upper(), Status.QUEUED)
        return RecipientResult(to, status, str(data.get("id") or "") or None, count, key=key, raw=dict(data))

    def _send_v1(self, batch: Sequence[PreparedSms]) -> BatchOutcome:
        # V1 sends one body to many numbers, so group by everything the call carries.
        groups: dict[tuple[Any, ...], list[PreparedSms]] = {}
        for p in batch:
            m = p.message
            groups.setdefault(
                (p.body, self._sender(p), m.send_at, m.validity, m.track_links, _opts(m.options)), []
            ).append(p)
        results: dict[str, RecipientResult] = {}
        batch_ids: list[str] = []
        for group in groups.values():
            batch_id, rs = self._send_v1_group(group)
            if batch_id:
                batch_ids.append(batch_id)
            results.update((r.key or r.to, r) for r in rs)
        return BatchOutcome(",".join(batch_ids) or None, [results[p.key] for p in batch])

    def _send_v1_group(self, group: list[PreparedSms]) -> tuple[str | None, list[RecipientResult]]:
        first = group[0]
        m = first.message
        form: dict[str, str] = {
            "message": first.body,
            "to": ",".join(to_wire(p.to, "digits") for p in group),
            "from": self._sender(first),
        }
        now = self.clock.now()
        if m.send_at is not None and m.send_at > now:
            form["send_at"] = _v1_time(m.send_at)  # §3.8: YYYY-MM-DD HH:MM:SS, UTC
        if m.validity is not None:
            form["validity"] = str(max(1, int(m.validity.total_seconds() // 60)))  # minutes
        for name in ("tracked_link_url", "countrycode", "list_id", "replies_to_email"):
            if m.options.get(name) is not None:
                form[name] = str(m.options[name])
        for name in ("dlr_callback", "reply_callback", "link_hits_callback"):
            value = m.options.get(name) or self.settings.option(name)
            if value:
                form[name] = str(value)
        if "tracked_link_url" in form and "[tracked-link]" not in first.body:
            raise InvalidRequest(
                "tracked_link_url needs the placeholder [tracked-link] in the message (§3.8)",
                field="tracked_link_url",
                provider=self.name,
            )
        resp = self.transport.request("POST", "/send-sms.json", data=form).json()
        message_id = str(resp.get("message_id") or "")
        if not message_id:
            raise ProviderServerError(f"kudosity send-sms answered without a message_id: {resp}", provider=self.name)
        status = Status.SCHEDULED if "send_at" in form else Status.QUEUED
        parts = int(resp.get("sms") or 0) // max(1, int(resp.get("recipients") or 1)) or first.parts
        accepted = {to_wire(p.to, "digits") for p in group}
        if int(resp.get("recipients") or 0) < len(group):
            # §3.8: "invalid numbers will be ignored"; ask which ones were taken.
            accepted = {r["msisdn"] for r in self._v1_recipients(message_id)}
        out = []
        for p in group:
            digits = to_wire(p.to, "digits")
            if digits in accepted:
                out.append(RecipientResult(p.to, status, f"{message_id}:{digits}", parts, key=p.key, raw=resp))
            else:
                out.append(
                    RecipientResult(
                        p.to, Status.REJECTED, None, 0, key=p.key, error="Kudosity ignored this number as invalid"
                    )
                )
        if any(r.accepted for r in out):
            with self._seen_lock:
                self._follow.add(message_id)
        return message_id, out

    def follow(self, message_ids: Sequence[str]) -> None:
        """V1: poll these sends' delivery reports in the event feed until each recipient's is final.

        Takes campaign ids or per-recipient ids (``campaign:msisdn``); the feed
        hands over the sends it recorded, so reports survive a restart.

        >>> provider.follow(["373181398:61491570156"])  # doctest: +SKIP
        """
        campaigns = {mid.partition(":")[0] for mid in message_ids}
        bad = sorted(c for c in campaigns if not c.isdigit())
        if bad:
            raise InvalidRequest(f"{bad[0]!r} is not a Kudosity V1 message id", field="message_id")
        self._v1_only("get-sms-sent")
        with self._seen_lock:
            self._follow.update(campaigns)

    def lookup(self, keys: Sequence[str]) -> dict[str, RecipientResult]:
        """V2: find messages by ``message_ref`` (the idempotency key), one ``GET /v2/sms`` each.

        One pass: §3.3 lists a message only seconds after it was accepted, so "not
        found" is no proof by itself; the client asks again, with backoff, for its
        reconciliation window before it takes absence as proof.
        """
        self._v2_only("lookup by reference")
        found: dict[str, RecipientResult] = {}
        for key in keys:
            resp = self.transport.request(
                "GET", "/v2/sms", params={"message_ref": key[:500], "direction": "OUT", "limit": "10"}
            ).json()
            rows = resp.get("smses") if isinstance(resp, dict) else None
            for row in rows if isinstance(rows, list) else []:
                if isinstance(row, dict) and row.get("message_ref") == key[:500]:
                    found[key] = self._v2_result(from_wire(str(row.get("recipient", ""))), key, row)
                    break
        return found

    # ============================================================ status and polling
    def status(self, message_ids: Sequence[str]) -> list[Delivery]:
        """The current status of each message: V2 ``GET /v2/sms/{id}``, V1 ``get-sms-sent``."""
        if self.api == "v1":
            return self._status_v1(message_ids)
        return [self._status_v2(mid) for mid in message_ids]

    def get_sms(self, message_id: str) -> dict[str, Any]:
        """V2 ``GET /v2/sms/{id}``, retrying the documented read-after-write 404 (§3.3)."""
        self._v2_only("GET /v2/sms/{id}")
        waited = 0.0
        step = 0.5
        while True:
            resp = self.transport.request("GET", f"/v2/sms/{_path_id(message_id)}", ok=lambda r: r.status_code == 404)
            if resp.status_code != 404:
                data: dict[str, Any] = resp.json()
                return data
            if waited >= self.read_lag:
                raise kudosity_error(resp)
            self.clock.sleep(step)
            waited += step
            step = min(step * 2, 2.0)

    def _status_v2(self, message_id: str) -> Delivery:
        data = self.get_sms(message_id)
        raw = str(data.get("status") or "")
        at = parse_time(data.get("updated_at")) or parse_time(data.get("created_at")) or self.clock.now()
        return Delivery(
            event_id_for(self.name, "delivery", data.get("id", message_id), raw.upper()),
            self.name,
            from_wire(str(data.get("recipient", ""))),
            at,
            str(data.get("id") or message_id),
            raw=data,
            status=V2_STATUS.get(raw.upper(), Status.UNKNOWN),
            raw_status=raw,
            reason=V2_REASONS.get(raw.upper()),
            message_ref=data.get("message_ref") or None,
            parts=_int(data.get("sms_count")),
        )

    def _v1_recipients(self, message_id: str, delivery: str | None = None) -> list[dict[str, Any]]:
        """Every recipient of a V1 send with its delivery status (``get-sms-sent``, paged)."""
        return self._v1_sent(message_id, delivery)[1]

    def _v1_sent(self, message_id: str, delivery: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """``get-sms-sent``, every page: the send's ``message`` block and its recipients."""
        rows: list[dict[str, Any]] = []
        message: dict[str, Any] = {}
        page = 1
        while True:
            form = {"message_id": message_id, "page": str(page), "max": "100"}  # §3.9: max 100
            if delivery:
                form["delivery"] = delivery
            data = self.transport.request("POST", "/get-sms-sent.json", data=form, idempotent=True).json()
            rows.extend(r for r in data.get("recipients") or [] if isinstance(r, dict))
            if isinstance(data.get("message"), dict):
                message = data["message"]
            pg = data.get("page") or {}
            if int(pg.get("number") or page) >= int(pg.get("count") or 0):
                return message, [{**r, "msisdn": str(r.get("msisdn", ""))} for r in rows]
            page += 1

    def _status_v1(self, message_ids: Sequence[str]) -> list[Delivery]:
        wanted: dict[str, list[str | None]] = {}
        for mid in message_ids:
            campaign, _, msisdn = mid.partition(":")
            if not campaign.isdigit():
                raise InvalidRequest(f"{mid!r} is not a Kudosity V1 message id", field="message_id")
            wanted.setdefault(campaign, []).append(msisdn.lstrip("+") or None)
        out: list[Delivery] = []
        now = self.clock.now()
        for campaign, numbers in wanted.items():
            rows = self._v1_recipients(campaign)
            for row in rows:
                msisdn = row["msisdn"]
                if None not in numbers and msisdn not in numbers:
                    continue
                out.append(self._v1_delivery(campaign, row, str(row.get("delivery_status") or "pending").lower(), now))
        return out

    def poll_events(self, cursor: str | None, *, limit: int = 500) -> EventPage:
        """V2: final statuses and replies from ``GET /v2/sms``.

        V1: replies from ``get-sms-responses``, then delivery reports from
        ``get-sms-sent`` for the sends being followed (see :meth:`follow`).
        """
        if self.api == "v1":
            return self._poll_v1(cursor, limit)
        return self._poll_v2(cursor, limit)

    def _list_v2(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """Every page of ``GET /v2/sms``, oldest first (OAS2: order_by defaults to CREATED_AT_ASC)."""
        rows: list[dict[str, Any]] = []
        page = 1
        while True:
            data = self.transport.request(
                "GET", "/v2/sms", params={**params, "page": str(page), "limit": "1000"}
            ).json()
            chunk = [r for r in data.get("smses") or [] if isinstance(r, dict)]
            rows.extend(chunk)
            total = _int(data.get("total_records")) or 0  # §3.2: a string
            if not chunk or len(rows) >= total:
                return rows
            page += 1

    def _poll_v2(self, cursor: str | None, limit: int) -> EventPage:
        """Replies are new IN messages; deliveries are OUT messages that reached a final status.

        The cursor keeps a watermark per direction (a created_at, second precision)
        and the ids already reported at or after it, so a resumed poll neither
        replays nor skips. The OUT watermark stays at the oldest message still in
        flight (for at most ``poll_window``), and neither passes ``now - read_lag``,
        since rows younger than that may not be listed yet (§3.3).
        """
        state = _Cursor.load(cursor)
        now = self.clock.now()
        floor = (now - self.poll_window).replace(microsecond=0)
        horizon = now - timedelta(seconds=self.read_lag)
        events: list[Event] = []
        more = False
        # -- replies --
        in_mark = max(parse_time(state.get("i")) or floor, floor)
        in_seen = set(state.get("is") or [])
        created_of: dict[str, datetime] = {}
        stop: datetime | None = None
        for row in self._list_v2({"direction": "IN", "start_date": _rfc3339(in_mark)}):
            rid = _short(str(row.get("id")))
            created = parse_time(row.get("created_at")) or now
            created_of[rid] = created
            if rid in in_seen or created < in_mark:
                continue
            if len(events) >= limit:
                more, stop = True, created
                break
            events.extend(self._reply_events(row, created))
            in_seen.add(rid)
        new_in = max(in_mark, min(stop or now, horizon).replace(microsecond=0))
        in_seen = {r for r in in_seen if created_of.get(r, new_in) >= new_in}
        # -- final statuses --
        out_mark = max(parse_time(state.get("o")) or floor, floor)
        out_seen = set(state.get("os") or [])
        if not more:
            created_of = {}
            first_open: datetime | None = None
            rows = self._list_v2({"direction": "OUT", "start_date": _rfc3339(out_mark)})
            for row in rows:
                rid = _short(str(row.get("id")))
                created = parse_time(row.get("created_at")) or now
                created_of[rid] = created
                if not V2_STATUS.get(str(row.get("status", "")).upper(), Status.UNKNOWN).final:
                    first_open = first_open or created
                    continue
                if rid in out_seen:
                    continue
                if len(events) >= limit:
                    more, stop = True, created
                    break
                events.append(self._delivery_from_row(row))
                out_seen.add(rid)
            target = min(t for t in (first_open, stop, now, horizon) if t is not None)
            new_out = max(out_mark, target.replace(microsecond=0))
            out_seen = {r for r in out_seen if created_of.get(r, new_out) >= new_out}
            out_mark = new_out
        state = {"i": _rfc3339(new_in), "is": sorted(in_seen), "o": _rfc3339(out_mark), "os": sorted(out_seen)}
        return EventPage(events, _Cursor.dump(state), more)

    def _delivery_from_row(self, row: Mapping[str, Any]) -> Delivery:
        raw = str(row.get("status") or "")
        return Delivery(
            event_id_for(self.name, "delivery", row.get("id"), raw.upper()),
            self.name,
            from_wire(str(row.get("recipient", ""))),
            parse_time(row.get("updated_at")) or self.clock.now(),
            str(row.get("id")),
            raw=dict(row),
            status=V2_STATUS.get(raw.upper(), Status.UNKNOWN),
            raw_status=raw,
            reason=V2_REASONS.get(raw.upper()),
            message_ref=row.get("message_ref") or None,
            parts=_int(row.get("sms_count")),
        )

    def _reply_events(self, row: Mapping[str, Any], at: datetime) -> list[Event]:
        phone = from_wire(str(row.get("sender", "")))
        text = str(row.get("message") or "")
        rid = str(row.get("id"))
        reply = Reply(
            f"kudosity:mo:{rid}",
            self.name,
            phone,
            at,
            rid,
            raw=dict(row),
            text=text,
            to=str(row.get("recipient") or "") or None,
        )
        out: list[Event] = [reply]
        if text.strip().upper() in OPT_OUT_WORDS:
            out.append(OptOut(event_id_for(self.name, "opt_out", phone, rid), self.name, phone, at, None, text=text))
        return out

    def _poll_v1(self, cursor: str | None, limit: int) -> EventPage:
        """Replies from ``get-sms-responses``, from the cursor's time on, paged by 100.

        ASSUMPTION: OAS1 marks message_id/keyword_id/keyword/number all "required",
        yet describes them as alternatives and says a call without start/end covers
        the last 30 days; we ask account-wide with ``start``, as the reporting
        calls allow. Use ``message_id`` via :meth:`replies` where that is refused.

        Delivery reports come from ``get-sms-sent`` per followed send, not from the
        account-wide ``get-user-sms-sent`` (OAS1 "Get Activity Report"): that lists
        messages by send time within a required start/end, so a report arriving later
        for an older send has no place after a cursor, and every poll would re-read
        the whole 72 h DLR window (and other tools' sends on the account).
        """
        state = _Cursor.load(cursor)
        now = self.clock.now()
        raw_seen = state.get("s") or []
        if not isinstance(raw_seen, list) or not all(isinstance(r, str) for r in raw_seen):
            raise InvalidRequest("not a Kudosity event cursor", field="cursor")
        mark = parse_time(state.get("t")) or (now - timedelta(days=30))
        seen = set(raw_seen)
        events: list[Event] = []
        more = False
        for row in self.replies(start=mark):
            rid = str(row.get("id"))
            at = parse_time(row.get("received_at")) or now
            if rid in seen or at < mark:
                continue
            if len(events) >= limit:
                more = True
                break
            events.extend(self._v1_reply_events(row, at))
            if at > mark:
                mark, seen = at, set()
            seen.add(rid)
        with self._seen_lock:
            handed, self._follow = self._follow, set()
        try:
            watch = self._v1_watch_state(state.get("w"), handed, now)
            if not more:
                more = self._poll_v1_deliveries(watch, events, limit, now)
        except BaseException:
            with self._seen_lock:  # not in a returned cursor yet: keep them for the next poll
                self._follow |= handed
            raise
        out: dict[str, Any] = {"t": _v1_time(mark), "s": sorted(seen)}
        if watch:
            out["w"] = watch
        return EventPage(events, _Cursor.dump(out), more)

    @staticmethod
    def _v1_watch_state(raw: Any, handed: set[str], now: datetime) -> dict[str, list[Any]]:
        """The cursor's followed sends: campaign → [followed since, {msisdn: last status reported}]."""
        watch: dict[str, list[Any]] = {}
        if raw is not None:
            if not isinstance(raw, dict) or not all(
                str(k).isdigit()
                and isinstance(v, list)
                and len(v) == 2
                and isinstance(v[0], str)
                and isinstance(v[1], dict)
                for k, v in raw.items()
            ):
                raise InvalidRequest("not a Kudosity event cursor", field="cursor")
            watch = {str(k): [v[0], dict(v[1])] for k, v in raw.items()}
        for campaign in handed:
            watch.setdefault(campaign, [_v1_time(now), {}])
        return watch

    def _poll_v1_deliveries(self, watch: dict[str, list[Any]], events: list[Event], limit: int, now: datetime) -> bool:
        """Append each followed recipient's status change (campaigns in id order); True if cut at ``limit``.

        ``watch`` is updated in place: a recipient's reported status, and campaigns
        dropped once every recipient is final and reported, or after ``poll_window``.
        """
        for campaign in sorted(watch, key=int):
            since, reported = watch[campaign]
            try:
                message, rows = self._v1_sent(campaign)
            except (NotFound, InvalidRequest) as exc:
                # The emulator and Kudosity answer FIELD_INVALID for an unknown message_id (§3.9).
                log.warning("kudosity: stopped following V1 send %s: %s", campaign, exc)
                del watch[campaign]
                continue
            send_at = parse_time(message.get("send_at"))
            if send_at is not None and send_at > now:
                continue  # scheduled: "pending" means not sent yet, not "sent"
            settled = True
            for row in sorted(rows, key=lambda r: int(r["msisdn"]) if r["msisdn"].isdigit() else 0):
                msisdn = row["msisdn"]
                raw = str(row.get("delivery_status") or "pending").lower()
                settled = settled and V1_STATUS.get(raw, Status.UNKNOWN).final
                if reported.get(msisdn) == raw:
                    continue
                if len(events) >= limit:
                    return True
                # OAS1: recipients carry no time of the report, so it is the time we saw it.
                events.append(self._v1_delivery(campaign, row, raw, now))
                reported[msisdn] = raw
            followed = parse_time(since) or now
            started = max(followed, send_at) if send_at is not None else followed
            # §3.8: allow up to 72 h for a DLR; past poll_window a pending report will not come.
            if settled or now - started > self.poll_window:
                del watch[campaign]
        return False

    def _v1_delivery(self, campaign: str, row: Mapping[str, Any], raw: str, at: datetime) -> Delivery:
        msisdn = str(row["msisdn"])
        return Delivery(
            event_id_for(self.name, "delivery", campaign, msisdn, raw),
            self.name,
            from_wire(msisdn),
            at,
            f"{campaign}:{msisdn}",
            raw=dict(row),
            status=V1_STATUS.get(raw, Status.UNKNOWN),
            raw_status=raw,
            batch_id=campaign,
        )

    def replies(self, message_id: str | None = None, *, start: datetime | None = None) -> list[dict[str, Any]]:
        """V1 ``get-sms-responses``: replies, all pages, oldest first."""
        self._v1_only("get-sms-responses")
        rows: list[dict[str, Any]] = []
        page = 1
        while True:
            form = {"page": str(page), "max": "100"}
            if message_id:
                form["message_id"] = message_id.partition(":")[0]
            if start is not None:
                form["start"] = _v1_time(start)
                form["end"] = _v1_time(self.clock.now() + timedelta(minutes=1))
            data = self.transport.request("POST", "/get-sms-responses.json", data=form, idempotent=True).json()
            rows.extend(r for r in data.get("responses") or [] if isinstance(r, dict))
            pg = data.get("page") or {}
            if int(pg.get("number") or page) >= int(pg.get("count") or 0):
                return sorted(rows, key=lambda r: (str(r.get("received_at")), str(r.get("id"))))
            page += 1

    def _v1_reply_events(self, row: Mapping[str, Any], at: datetime) -> list[Event]:
        phone = from_wire(str(row.get("msisdn", "")))
        campaign = str(row.get("message_id") or "")
        digits = phone.lstrip("+")
        in_reply_to = f"{campaign}:{digits}" if campaign and campaign != "0" else None
        text = str(row.get("response") or "")
        rid = str(row.get("id"))
        out: list[Event] = [
            Reply(
                f"kudosity:v1-reply:{rid}",
                self.name,
                phone,
                at,
                rid,
                raw=dict(row),
                text=text,
                to=str(row.get("longcode") or "") or None,
                in_reply_to=in_reply_to,
            )
        ]
        if text.strip().upper() in OPT_OUT_WORDS:
            out.append(
                OptOut(
                    event_id_for(self.name, "opt_out", phone, in_reply_to or rid),
                    self.name,
                    phone,
                    at,
                    in_reply_to,
                    text=text,
                )
            )
        return out

    # ================================================================= webhooks
    def verify_webhook(self, request: WebhookRequest) -> None:
        """V2: the ``token`` query parameter equals ``webhook_secret``. V1: the HMAC header."""
        if self.api == "v1":
            given = request.header("x-transmitsms-signature")
            if not given:
                raise WebhookError("missing x-transmitsms-signature header", provider=self.name, status_code=401)
            try:
                expected = v1_signature(request.query, self.settings.api_secret or "")
            except UnicodeDecodeError:
                raise WebhookError("the callback's query is not UTF-8", provider=self.name, status_code=401) from None
            if not constant_time_equals(given.strip().lower(), expected):
                raise WebhookError(
                    "x-transmitsms-signature does not match the query (altered, reordered, or another secret)",
                    provider=self.name,
                    status_code=401,
                )
            return
        secret = self.settings.webhook_secret
        if not secret:
            raise WebhookError(
                "webhook_secret is not set, so this Kudosity V2 webhook cannot be authenticated",
                provider=self.name,
                status_code=401,
            )
        tokens = [v for k, v in request.params if k == "token"]
        # Kudosity V2 does not sign webhooks (§3.7); the URL's token is the credential.
        if len(tokens) != 1 or not constant_time_equals(tokens[0], secret):
            raise WebhookError("missing or wrong webhook token", provider=self.name, status_code=401)

    def parse_webhook(self, request: WebhookRequest) -> list[Event]:
        """V2 JSON events (``SMS_STATUS``, ``SMS_INBOUND``, ``LINK_HIT``, ``OPT_OUT``) or V1 GET callbacks."""
        try:
            if self.api == "v1":
                return self._parse_v1(request)
            return self._parse_v2(request)
        except WebhookError:
            raise
        except Exception as exc:  # a malformed payload is a 400, never a crash
            raise WebhookError(
                f"malformed Kudosity webhook: {type(exc).__name__}: {redact(str(exc))[:200]}",
                provider=self.name,
                status_code=400,
            ) from None

    def _parse_v2(self, request: WebhookRequest) -> list[Event]:
        return self.parse_v2_event(json_body(request, self.name))

    def parse_v2_event(self, data: Any) -> list[Event]:
        """Core events from one decoded V2 webhook body (kudosity.md §3.6)."""
        if not isinstance(data, dict) or not isinstance(data.get("event_type"), str):
            raise WebhookError("not a Kudosity V2 event: no event_type", provider=self.name, status_code=400)
        kind = data["event_type"].upper()
        at = parse_time(data.get("timestamp")) or self.clock.now()
        if kind in ("SMS_STATUS", "MMS_STATUS"):
            st = _obj(data, "status")
            raw = _str(st, "status")
            mid = _str(st, "id")
            return [
                Delivery(
                    # Redeliveries are byte-identical (§3.6), so id+status+time dedupes them.
                    event_id_for(self.name, "delivery", mid, raw.upper(), data.get("timestamp")),
                    self.name,
                    from_wire(_str(st, "recipient")),
                    at,
                    mid,
                    raw=data,
                    status=V2_STATUS.get(raw.upper(), Status.UNKNOWN),
                    raw_status=raw,
                    reason=st.get("description") or V2_REASONS.get(raw.upper()),
                    message_ref=st.get("message_ref") or None,
                )
            ]
        if kind in ("SMS_INBOUND", "MMS_INBOUND"):
            mo = _obj(data, "mo")
            last_value = mo.get("last_message")
            last: Mapping[str, Any] = last_value if isinstance(last_value, dict) else {}
            phone = from_wire(_str(mo, "sender"))
            text = str(mo.get("message") or "")
            mo_id = _str(mo, "id")
            reply = Reply(
                f"kudosity:mo:{mo_id}",
                self.name,
                phone,
                at,
                mo_id,
                raw=data,
                text=text,
                to=str(mo.get("recipient") or "") or None,
                in_reply_to=str(last.get("id")) if last.get("id") else None,
                # Replies thread through mo.last_message.message_ref (§3.6).
                message_ref=str(last.get("message_ref")) if last.get("message_ref") else None,
            )
            events: list[Event] = [reply]
            if text.strip().upper() in OPT_OUT_WORDS:
                ref = reply.in_reply_to or mo_id
                events.append(
                    OptOut(
                        event_id_for(self.name, "opt_out", phone, ref),
                        self.name,
                        phone,
                        at,
                        reply.in_reply_to,
                        text=text,
                    )
                )
            return events
        if kind == "LINK_HIT":
            hit = _obj(data, "link_hit")
            src = _obj(hit, "source_message")
            mid = _str(src, "id")
            hits = _int(hit.get("hits")) or 1
            return [
                LinkHit(
                    # `hits` is cumulative per link, so each value is one hit.
                    event_id_for(self.name, "link_hit", mid, hit.get("url"), hits),
                    self.name,
                    from_wire(_str(src, "recipient")),
                    at,
                    mid,
                    raw=data,
                    url=str(hit.get("url") or "") or None,
                    hits=hits,
                    message_ref=src.get("message_ref") or None,
                )
            ]
        if kind == "OPT_OUT":
            opt = _obj(data, "opt_out")
            src = _obj(opt, "source_message")
            phone = from_wire(_str(src, "recipient"))
            mid = _str(src, "id")
            source = str(opt.get("source") or "")
            return [
                OptOut(
                    # The same id as the OptOut a STOP reply yields, so the two dedupe.
                    event_id_for(self.name, "opt_out", phone, mid),
                    self.name,
                    phone,
                    at,
                    mid,
                    raw=data,
                    source="reply" if source.upper() == "SMS_INBOUND" else "link" if source else "unknown",
                )
            ]
        # Other channels (WhatsApp, RCS) are not smsrelay's: acknowledged, no events.
        return []

    def _parse_v1(self, request: WebhookRequest) -> list[Event]:
        params = dict(request.params)
        now = self.clock.now()
        if "response" in params or "response_id" in params:
            phone = from_wire(_req(params, "mobile"))
            campaign = params.get("message_id") or ""
            in_reply_to = f"{campaign}:{phone.lstrip('+')}" if campaign and campaign != "0" else None
            rid = params.get("response_id") or event_id_for(
                self.name, "v1-reply", phone, params.get("datetime_entry"), params.get("response")
            )
            at = parse_time(params.get("datetime_entry")) or now
            text = params.get("response", "")
            events: list[Event] = [
                Reply(
                    f"kudosity:v1-reply:{rid}",
                    self.name,
                    phone,
                    at,
                    rid,
                    raw=params,
                    text=text,
                    to=params.get("longcode") or None,
                    in_reply_to=in_reply_to,
                )
            ]
            if params.get("is_optout", "").lower() == "yes" or text.strip().upper() in OPT_OUT_WORDS:
                events.append(
                    OptOut(
                        event_id_for(self.name, "opt_out", phone, in_reply_to or rid),
                        self.name,
                        phone,
                        at,
                        in_reply_to,
                        raw=params,
                        text=text,
                    )
                )
            return events
        if "link_hits" in params:
            phone = from_wire(_req(params, "mobile"))
            campaign = _req(params, "message_id")
            hits = _int(params.get("link_hits")) or 1
            return [
                LinkHit(
                    event_id_for(self.name, "link_hit", campaign, phone, hits),
                    self.name,
                    phone,
                    parse_time(params.get("datetime")) or now,
                    f"{campaign}:{phone.lstrip('+')}",
                    raw=params,
                    hits=hits,
                    url=params.get("url") or None,
                )
            ]
        if "status" in params:
            phone = from_wire(_req(params, "mobile"))
            campaign = _req(params, "message_id")
            raw = params["status"]
            return [
                Delivery(
                    # The id get-sms-sent polling gives the same report, so push and poll collapse;
                    # a redelivered callback repeats all three fields.
                    event_id_for(self.name, "delivery", campaign, phone.lstrip("+"), raw.lower()),
                    self.name,
                    phone,
                    parse_time(params.get("datetime")) or now,
                    f"{campaign}:{phone.lstrip('+')}",
                    raw=params,
                    status=V1_STATUS.get(raw.lower(), Status.UNKNOWN),
                    raw_status=raw,
                    batch_id=campaign,
                )
            ]
        raise WebhookError(
            "not a Kudosity V1 callback: expected a DLR (status), reply (response) or link-hit (link_hits)",
            provider=self.name,
            status_code=400,
        )

    # -- webhook registration (V2) ------------------------------------------------------
    def _hook_url(self, url: str) -> str:
        secret = self.settings.webhook_secret
        if not secret:
            raise ConfigError(
                "Kudosity V2 does not sign webhooks, so smsrelay authenticates them with a secret token "
                "in the URL: set webhook_secret (e.g. SMSRELAY_KUDOSITY_WEBHOOK_SECRET)",
                field="webhook_secret",
                provider=self.name,
            )
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidRequest(f"{redact(url)!r} is not an http(s) URL", field="url", provider=self.name)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "token"]
        query.append(("token", secret))
        return urlunsplit(parts._replace(query=urlencode(query)))

    @staticmethod
    def _event_types(events: Sequence[str] | None) -> list[str]:
        if not events:
            return list(DEFAULT_EVENTS)
        out = []
        for e in events:
            for part in str(e).split(","):
                name = part.strip()
                if not name:
                    continue
                kind = EVENT_TYPES.get(name.lower(), name.upper())
                if kind not in {*DEFAULT_EVENTS, "MMS_STATUS", "MMS_INBOUND"}:
                    raise InvalidRequest(
                        f"unknown event {name!r}; use {', '.join(EVENT_TYPES)} or {', '.join(DEFAULT_EVENTS)}",
                        field="events",
                    )
                if kind not in out:
                    out.append(kind)
        return out

    def _webhook(self, data: Mapping[str, Any]) -> Webhook:
        flt = data.get("filter") or {}
        return Webhook(
            id=str(data.get("id")),
            url=str(data.get("url") or ""),
            events=tuple(flt.get("event_type") or ()),
            name=data.get("name"),
            raw=dict(data),
        )

    def register_webhook(self, url: str, *, events: Sequence[str] | None = None, name: str | None = None) -> Webhook:
        """``POST /v2/webhook`` for ``url`` with ``?token=<webhook_secret>`` appended.

        >>> provider.register_webhook("https://hooks.example.com/kudosity")  # doctest: +SKIP
        Webhook(id='67e3e4af-…', events=('SMS_STATUS', 'SMS_INBOUND', 'LINK_HIT', 'OPT_OUT'), name='smsrelay')
        """
        self._v2_only("webhook API (set callbacks per send or in the account settings)")
        body = {
            "name": _hook_name(name),
            "url": self._hook_url(url),
            "filter": {"event_type": self._event_types(events)},
        }
        return self._webhook(self.transport.request("POST", "/v2/webhook", json=body).json())

    def list_webhooks(self) -> list[Webhook]:
        self._v2_only("webhook API")
        data = self.transport.request("GET", "/v2/webhook").json()
        return [self._webhook(h) for h in data.get("webhooks") or []]

    def get_webhook(self, webhook_id: str) -> Webhook:
        self._v2_only("webhook API")
        return self._webhook(self.transport.request("GET", f"/v2/webhook/{_path_id(webhook_id)}").json())

    def update_webhook(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        name: str | None = None,
        rate_limit: int | None = None,
    ) -> Webhook:
        """``PUT /v2/webhook/{id}``: a full replace, so every current field is sent again (§3.6)."""
        current = self.get_webhook(webhook_id).raw
        flt = dict(current.get("filter") or {})
        if events is not None:
            flt["event_type"] = self._event_types(events)
        body = {
            "name": _hook_name(name or current.get("name")),
            "url": self._hook_url(url) if url else current.get("url"),
            "filter": {k: v for k, v in flt.items() if v},
            "rate_limit": rate_limit if rate_limit is not None else int(current.get("rate_limit") or 0),
        }
        data = self.transport.request("PUT", f"/v2/webhook/{_path_id(webhook_id)}", json=body).json()
        return self._webhook(data)

    def delete_webhook(self, webhook_id: str) -> None:
        self._v2_only("webhook API")
        self.transport.request("DELETE", f"/v2/webhook/{_path_id(webhook_id)}")

    # ==================================================================== account (V1)
    def cancel(self, message_id: str) -> None:
        """V1 ``cancel-sms``: cancel a scheduled send (every recipient of it)."""
        self._v1_only("cancel")
        campaign = message_id.partition(":")[0]
        if not campaign.isdigit():
            raise InvalidRequest(f"{message_id!r} is not a Kudosity V1 message id", field="message_id")
        try:
            self.transport.request("POST", "/cancel-sms.json", data={"id": campaign}, idempotent=True)
        except InvalidRequest as exc:
            raise NotCancellable(
                f"Kudosity would not cancel {campaign}: {exc.provider_message or exc.message}",
                reason=exc.code or "NOT_CANCELLABLE",
                provider=self.name,
                status_code=exc.status_code,
                provider_message=exc.provider_message,
            ) from None

    def balance(self) -> Balance:
        """V1 ``get-balance``."""
        self._v1_only("balance call")
        data = self.transport.request("GET", "/get-balance.json").json()
        try:
            amount = Decimal(str(data.get("balance")))
        except InvalidOperation:
            raise ProviderServerError(f"kudosity get-balance answered {data}", provider=self.name) from None
        return Balance(amount, data.get("currency"), raw=data)

    def stats(self, message_id: str) -> dict[str, Any]:
        """V1 ``get-sms-stats``: counts of delivered, bounced, replies, opt-outs and link hits."""
        self._v1_only("get-sms-stats")
        campaign = message_id.partition(":")[0]
        data = self.transport.request("POST", "/get-sms-stats.json", data={"message_id": campaign}, idempotent=True)
        stats: dict[str, Any] = data.json().get("stats") or {}
        return stats

    def format_number(self, msisdn: str, countrycode: str) -> dict[str, Any]:
        """V1 ``format-number``: Kudosity's own reading of a number in a country."""
        self._v1_only("format-number")
        form = {"msisdn": "".join(ch for ch in msisdn if ch.isdigit()), "countrycode": countrycode}
        data = self.transport.request("POST", "/format-number.json", data=form, idempotent=True).json()
        number: dict[str, Any] = data.get("number") or {}
        return number

    def check(self) -> None:
        """V2 ``GET /v2/sms?limit=1`` or V1 ``get-balance``, as Kudosity's plugins do (§4.4)."""
        if self.api == "v1":
            self.transport.request("GET", "/get-balance.json")
        else:
            self.transport.request("GET", "/v2/sms", params={"limit": "1"})


# -- small readers -------------------------------------------------------------------------
def _opts(options: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, str(v)) for k, v in options.items()))


def _short(message_id: str) -> str:
    return hashlib.sha256(message_id.encode()).hexdigest()[:12]


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _obj(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise WebhookError(f"the event has no {key!r} object", provider="kudosity", status_code=400)
    return value


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str | int) or str(value) == "":
        raise WebhookError(f"the event has no {key!r}", provider="kudosity", status_code=400)
    return str(value)


def _req(params: Mapping[str, str], key: str) -> str:
    value = params.get(key)
    if not value:
        raise WebhookError(f"the callback has no {key!r} parameter", provider="kudosity", status_code=400)
    return value


def _path_id(value: str) -> str:
    # OAS2: the {id} of /v2/sms and /v2/webhook is a UUID; refuse anything else before sending.
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise InvalidRequest(f"{value!r} is not a Kudosity V2 id (a UUID)", field="id", provider="kudosity") from None


def _hook_name(name: Any) -> str:
    text = str(name or "smsrelay").strip()
    if not 2 <= len(text) <= 100:  # OAS2 WebhookRequest.name: 2-100 characters
        raise InvalidRequest("a webhook name must be 2-100 characters", field="name", provider="kudosity")
    return text
