"""Kaleyra (kaleyra.io) SMS API v1: ``api-key`` header, form-encoded sends.

Sources: Kaleyra's SMS API documentation, https://developers.kaleyra.io/docs/ (the pages
sms-api-send-the-first-sms, understand-route-types, sms-api-status, sms-callback,
receive-message and sms-status-and-status-trace-codes; cited below by page name, or as *seed*).

How smsrelay maps Kaleyra onto its model:

* **Endpoint and host.** ``POST /v1/<SID>/messages`` by default; ``endpoint: sms``
  selects the newer ``/v1/<SID>/sms`` (required on the NA pod, and the only one that
  schedules with ``time``). ``region`` picks the pod's host (send-your-first-sms).
* **Batching.** ``to`` is comma-separated, so recipients with the same rendered body
  share a request, ``batch_size`` (default 100) at a time; personalised bodies go one
  request per distinct body (:meth:`KaleyraProvider.plan_requests`).
* **Idempotency.** The key goes in ``ref`` (≤ 50 characters): a one-recipient request
  carries the recipient's key, a bulk request a key derived from its recipients' keys.
  After an ambiguous failure :meth:`lookup` finds what Kaleyra accepted by that ref.
* **Callbacks.** Kaleyra signs nothing (sms-callback). With ``callback_url`` set, each send
  on ``/messages`` carries ``callback = {url, method, header: {X-Smsrelay-Token:
  <webhook_secret>}}``; on ``/sms`` put the same header in a callback profile and set
  ``callback_profile_id``. :meth:`verify_webhook` checks that header.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests

from smsrelay.errors import (
    AuthError,
    ConfigError,
    InsufficientCredit,
    InvalidRequest,
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
    OptOut,
    PreparedSms,
    RecipientResult,
    Reply,
    Status,
    event_id_for,
)
from smsrelay.phone import from_wire
from smsrelay.providers.base import BatchOutcome, Provider
from smsrelay.providers.batching import body_key, join_outcomes, plan_by_body
from smsrelay.redaction import redact
from smsrelay.transport import OTHER, SERVER_ERROR, ErrorRule, StatusTable, Transport, error_for_status, json_object
from smsrelay.webhooks import WebhookRequest, constant_time_equals, json_body

__all__ = ["HOSTS", "STATUS", "TOKEN_HEADER", "TRACE_STATUS", "KaleyraProvider", "map_status"]

log = logging.getLogger("smsrelay.providers.kaleyra")

TOKEN_HEADER = "X-Smsrelay-Token"
# https://developers.kaleyra.io/docs/send-your-first-sms: regional pods (api_domain); NA is `.ai`, needs /sms.
HOSTS: dict[str, str] = {
    "global": "https://api.kaleyra.io",
    "in": "https://api.in.kaleyra.io",
    "ap": "https://api.ap.kaleyra.io",
    "sg": "https://api.ap.kaleyra.io",
    "eu": "https://api.eu.kaleyra.io",
    "na": "https://api.na.kaleyra.ai",
}
# https://developers.kaleyra.io/docs/sms-status-and-status-trace-codes: status (poll, callback) -> canonical.
STATUS: dict[str, Status] = {
    "SUBMITTED": Status.SENT,
    "ENROUTE": Status.SENT,
    "SENT": Status.SENT,
    "DELIVERED": Status.DELIVERED,
    "DELIVRD": Status.DELIVERED,
    "NOTSENT": Status.REJECTED,
    "NOT-SENT": Status.REJECTED,
    "UNDELIVERED": Status.FAILED,
    "UNDELIV": Status.FAILED,
    "FAILED": Status.FAILED,
    "EXPIRED": Status.EXPIRED,
    "SENT - NO DLR": Status.UNKNOWN,
}
# Traces (``status_details``/``status_trace``) that say more than the status beside them.
TRACE_STATUS: dict[str, Status] = {
    "DELIVERED": Status.DELIVERED,
    "DELIVRD": Status.DELIVERED,
    "EXPIRED": Status.EXPIRED,
    "SENT - NO DLR": Status.UNKNOWN,
}
ROUTES = frozenset(
    {"OTP", "DEFAULT", "MKT", "DEFAULT/MKT", "TXN"}
)  # https://developers.kaleyra.io/docs/understand-route-types
OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT"})
STATUS_IDS_PER_CALL = 100  # ASSUMPTION: no documented cap on message_ids; keeps the URL short
# What one process remembers of its sends (refs for reconciliation, numbers for status
# reports). Forgetting is safe: both fall back to what a restarted process does.
REMEMBERED = 100_000
# https://developers.kaleyra.io/docs/sms-api-send-the-first-sms: an error's status (or NO-CREDITS) as a core error.
ERRORS: StatusTable = {
    401: ErrorRule(AuthError, "Kaleyra refused the API key or SID ({status}); check api_key and sid"),
    402: ErrorRule(InsufficientCredit, "Kaleyra has not enough credit for this send; top up the account"),
    "NO-CREDITS": ErrorRule(InsufficientCredit, "Kaleyra has not enough credit for this send; top up the account"),
    403: ErrorRule(AuthError, "Kaleyra refused the API key or SID ({status}); check api_key and sid"),
    404: ErrorRule(NotFound, "Kaleyra found no such resource (404): {text}"),
    429: ErrorRule(RateLimited, "Kaleyra is throttling (429); it allows about 50,000 requests per 5 minutes"),
    SERVER_ERROR: ErrorRule(ProviderServerError, "Kaleyra failed on its side ({status})"),
    OTHER: ErrorRule(InvalidRequest, "Kaleyra refused the request ({status}): {text}"),
}
FIELDS = {"to": "to", "body": "message", "sender": "sender", "template_id": "template_id", "time": "send_at"}


_V = TypeVar("_V")


class _Recent(Generic[_V]):
    """A thread-safe map of at most ``limit`` entries that forgets the least recently used.

    >>> recent = _Recent[int](2); recent["a"] = 1; recent["b"] = 2; recent["c"] = 3
    >>> recent.get("a"), recent.get("c"), len(recent)
    (None, 3, 2)
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._data: OrderedDict[str, _V] = OrderedDict()
        self._lock = threading.Lock()

    def __setitem__(self, key: str, value: _V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.limit:
                self._data.popitem(last=False)

    def get(self, key: str, default: _V | None = None) -> _V | None:
        with self._lock:
            if key not in self._data:
                return default
            self._data.move_to_end(key)
            return self._data[key]

    def __len__(self) -> int:
        return len(self._data)


def map_status(status: str, trace: str | None = None) -> tuple[Status, str | None]:
    """A Kaleyra status and its trace as a canonical status and a reason.

    A trace may carry its status too (``NOT-SENT/DND-NUMB``).

    >>> map_status("UnDelivered", "ABSENT-SUB")
    (<Status.FAILED: 'failed'>, 'ABSENT-SUB')
    >>> map_status("NotSent", "NOT-SENT/DND-NUMB")
    (<Status.REJECTED: 'rejected'>, 'NOT-SENT/DND-NUMB')
    """
    raw = (status or "").strip().upper()
    detail = (trace or "").strip()
    head = detail.split("/", 1)[0].strip().upper() if "/" in detail else ""
    mapped = STATUS.get(raw) or STATUS.get(head) or Status.UNKNOWN
    mapped = TRACE_STATUS.get(detail.upper(), mapped)
    reason = detail if detail and mapped not in (Status.SENT, Status.DELIVERED) else None
    return mapped, reason


class KaleyraProvider(Provider):
    """The Kaleyra adapter. Settings: ``api_key``, ``sid``, and the options below.

    >>> from smsrelay.config import ProviderSettings
    >>> KaleyraProvider(ProviderSettings("kaleyra", api_key="k", options={"sid": "HXAP1"})).path("/messages")
    '/v1/HXAP1/messages'
    """

    name = "kaleyra"
    transport: Transport
    capabilities = Capabilities(
        bulk_max=100,
        # 32 in flight at ~150 ms is ~210 requests/s: enough to keep the documented 167/s busy.
        concurrency=32,
        status_poll=True,
        dlr_push=True,
        inbound_push=True,
        lookup_by_ref=True,
        max_chars=4_000,  # seed: "SMS length is exceeding 4000 characters" [SEED-ONLY]
    )
    wire_format = "e164"  # https://developers.kaleyra.io/docs/send-your-first-sms: `to` is `+CC…` or `CC…`
    options: ClassVar[Mapping[str, type]] = {
        "sid": str,
        "endpoint": str,
        "region": str,
        "route_type": str,
        "template_id": str,
        "callback_url": str,
        "callback_method": str,
        "callback_profile_id": str,
        "batch_size": int,
        "timezone": str,
        "max_chars": int,
    }
    required = ("api_key", "sid")
    default_base_url = HOSTS["global"]
    # "up to 50,000 requests for every 5 minutes" (support.kaleyra.com 3000110656); no TPS is published.
    default_rate_limit: ClassVar[float | None] = 50_000 / 300
    default_rate_window: ClassVar[tuple[int, float] | None] = (50_000, 300.0)

    def __init__(self, settings: Any, **kw: Any) -> None:
        super().__init__(settings, **kw)
        opt = settings.option
        self.sid = str(opt("sid") or "")
        region = str(opt("region") or "global").lower()
        if region not in HOSTS:
            raise ConfigError(f"unknown Kaleyra region {region!r}; one of {', '.join(HOSTS)}", field="region")
        endpoint = str(opt("endpoint") or ("sms" if region == "na" else "messages")).lower().strip("/")
        if endpoint not in ("messages", "sms"):
            raise ConfigError("endpoint must be 'messages' or 'sms'", field="endpoint")
        if region == "na" and endpoint != "sms":
            raise ConfigError("the NA pod takes only the /sms endpoint; set endpoint: sms", field="endpoint")
        self.endpoint = endpoint
        route = opt("route_type")
        if route is not None and str(route).upper() not in ROUTES:
            raise ConfigError(f"route_type must be one of {', '.join(sorted(ROUTES))}", field="route_type")
        self.route_type = str(route).upper() if route else None
        batch = int(opt("batch_size", 100))
        if not 1 <= batch <= 1_000:
            raise ConfigError("batch_size must be 1-1000 recipients", field="batch_size")
        method = str(opt("callback_method") or "POST").upper()
        if method not in ("GET", "POST"):
            raise ConfigError("callback_method must be GET or POST", field="callback_method")
        self.callback_method = method
        if opt("callback_url") and endpoint == "sms" and not opt("callback_profile_id"):
            raise ConfigError(
                "the /sms endpoint takes no callback object; create a callback profile carrying the header "
                f"{TOKEN_HEADER} and set callback_profile_id",
                field="callback_url",
            )
        if opt("callback_url") and not settings.webhook_secret:
            raise ConfigError(
                "callback_url needs webhook_secret: Kaleyra signs nothing, so smsrelay authenticates "
                f"callbacks by the header {TOKEN_HEADER}",
                field="webhook_secret",
            )
        default_zone = "Asia/Kolkata" if region == "in" else "UTC"
        try:
            # https://developers.kaleyra.io/docs/receive-message: MO timestamps carry no zone (IST on the IN pod?).
            self.zone = ZoneInfo(str(opt("timezone") or default_zone))
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"unknown time zone {opt('timezone')!r}", field="timezone") from None
        self.capabilities = replace(type(self).capabilities, bulk_max=batch, schedule=endpoint == "sms")
        self._refs = _Recent[tuple[str, int]](REMEMBERED)  # key -> (ref sent, position in its request)
        self._phones = _Recent[str](REMEMBERED)  # message id -> E.164, for status() reports
        self.transport = self.make_transport(
            settings.base_url or HOSTS[region],
            headers={"api-key": settings.api_key or "", "Accept": "application/json"},
            error_mapper=self._error,
            min_read_timeout=5.0,
        )

    def path(self, suffix: str) -> str:
        return f"/v1/{self.sid}{suffix}"

    def close(self) -> None:
        self.transport.close()

    # -- errors -------------------------------------------------------------------------
    def _error(self, resp: requests.Response) -> SmsRelayError:
        """Field-keyed ``{"error": {"to": "invalid number"}}`` or coded ``{code, message, error}``.

        Both shapes are in the sms-api-send-the-first-sms page's error examples.
        """
        body = json_object(resp)
        errors: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else {}
        code = str(body["code"]) if body.get("code") else None
        message = body.get("message") if isinstance(body.get("message"), str) else None
        if not message and isinstance(body.get("error"), str):
            message = body["error"]
        detail = "; ".join(f"{k}: {v}" for k, v in errors.items())
        text = redact(message or detail or resp.text[:300] or str(resp.reason))
        status = resp.status_code
        # Kaleyra names an empty account in its text, under any status but an auth refusal.
        credit = "NO-CREDITS" if "NO-CREDITS" in text.upper() and status not in (401, 403) else None
        if errors and status < 500 and status not in ERRORS and not credit:
            name, why = next(iter(errors.items()))
            kw: dict[str, Any] = {"provider": self.name, "status_code": status, "provider_message": text, "code": code}
            return InvalidRequest(
                f"Kaleyra refused the field {name!r}: {redact(str(why))}"
                + (f" (and {len(errors) - 1} more: {detail})" if len(errors) > 1 else ""),
                field=FIELDS.get(str(name), str(name)),
                **kw,
            )
        return error_for_status(ERRORS, status, provider=self.name, text=text, code=code, key=credit)

    # -- sending ------------------------------------------------------------------------
    def plan_requests(self, batch: Sequence[PreparedSms]) -> list[list[PreparedSms]]:
        """One request per distinct body (and sender, schedule, options), ``batch_size`` at most."""
        return plan_by_body(batch, self.capabilities.bulk_max)

    def request_key(self, sms: PreparedSms) -> Hashable:
        """Messages share a request only with equal body, sender, schedule and options."""
        return body_key(sms)

    @staticmethod
    def request_ref(keys: Sequence[str]) -> str:
        """The ``ref`` of a request: the key itself for one recipient, else a digest of all.

        >>> KaleyraProvider.request_ref(["sr-abc"])
        'sr-abc'
        """
        if len(keys) == 1 and len(keys[0]) <= 50:
            return keys[0]
        return "srb-" + hashlib.sha256("\x1f".join(keys).encode()).hexdigest()[:40]

    def _form(self, group: Sequence[PreparedSms], ref: str) -> dict[str, str]:
        first = group[0]
        msg = first.message
        opts = msg.options
        form: dict[str, str] = {"to": ",".join(s.to for s in group), "body": first.body, "source": "API"}
        sender = msg.sender or self.settings.sender
        if sender:
            form["sender"] = sender
        kind = str(opts.get("type") or self.route_type or "").upper()
        if kind:
            if kind not in ROUTES:
                raise InvalidRequest(
                    f"Kaleyra route type {kind!r} is not one of {', '.join(sorted(ROUTES))}",
                    field="type",
                    provider=self.name,
                )
            form["type"] = kind
        template = opts.get("template_id") or self.settings.option("template_id")
        if template:
            form["template_id"] = str(template)  # sms-api-send-the-first-sms: the India DLT template id
        if first.encoding == "UCS-2":
            form["unicode"] = "1"
        form["ref"] = ref
        for name in ("ref1", "ref2"):
            if opts.get(name):
                value = str(opts[name])
                if len(value) > 50:
                    raise InvalidRequest(f"{name} is over Kaleyra's 50 characters", field=name, provider=self.name)
                form[name] = value
        profile = opts.get("callback_profile_id") or self.settings.option("callback_profile_id")
        url = self.settings.option("callback_url")
        if profile:
            form["callback_profile_id"] = str(profile)
        elif url and self.endpoint == "messages":
            callback = {
                "url": url,
                "method": self.callback_method,
                "header": {TOKEN_HEADER: self.settings.webhook_secret or ""},
            }
            form["callback"] = json.dumps(callback, separators=(",", ":"))
        if msg.send_at is not None:
            if self.endpoint != "sms":
                raise InvalidRequest(
                    "Kaleyra schedules only on the /sms endpoint; set endpoint: sms",
                    field="send_at",
                    provider=self.name,
                )
            if msg.send_at.tzinfo is None:
                raise InvalidRequest("send_at needs a time zone", field="send_at", provider=self.name)
            # sms-api-send-the-first-sms: `time` is the account zone's ISO time
            form["time"] = msg.send_at.astimezone(self.zone).isoformat(timespec="seconds")
        return form

    def send(self, batch: Sequence[PreparedSms], *, dry_run: bool = False) -> BatchOutcome:
        """Send messages sharing one body in one request; ``data[]`` gives each its id."""
        groups = self.plan_requests(batch)
        if len(groups) != 1:
            return join_outcomes([self.send(g, dry_run=dry_run) for g in groups])
        group = groups[0]
        ref = self.request_ref([s.key for s in group])
        form = self._form(group, ref)
        for pos, sms in enumerate(group):
            self._refs[sms.key] = (ref, pos)
        resp = self.transport.request("POST", self.path(f"/{self.endpoint}"), data=form, idempotent=False)
        try:
            data = resp.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            # Accepted (2xx) but unreadable: the outcome is unknown, so reconcile by ref.
            raise ProviderServerError("Kaleyra accepted the send but its answer is not JSON", provider=self.name)
        status = Status.SCHEDULED if "time" in form else Status.QUEUED
        return BatchOutcome(data.get("id"), self._results(group, data.get("data"), status, data))

    def _results(
        self, group: Sequence[PreparedSms], rows: Any, status: Status, raw: Mapping[str, Any]
    ) -> list[RecipientResult]:
        rows = rows if isinstance(rows, list) else []
        by_number: dict[str, list[str]] = {}
        for row in rows:
            if isinstance(row, dict) and row.get("message_id"):
                by_number.setdefault(str(row.get("recipient", "")).lstrip("+"), []).append(str(row["message_id"]))
        out = []
        ordered = [str(r["message_id"]) for r in rows if isinstance(r, dict) and r.get("message_id")]
        for pos, sms in enumerate(group):
            ids = by_number.get(sms.to.lstrip("+"))
            if not ids and len(ordered) == len(group):
                # data[] follows the order of `to`; match by position when the number is
                # written differently (e.g. masked, or without its country code).
                ids = [ordered[pos]]
            if not ids:
                out.append(
                    RecipientResult(
                        to=sms.to,
                        status=Status.REJECTED,
                        key=sms.key,
                        error="Kaleyra accepted the request but returned no message id for this recipient",
                    )
                )
                continue
            mid = ids.pop(0)
            self._phones[mid] = sms.to
            out.append(RecipientResult(to=sms.to, status=status, message_id=mid, parts=sms.parts, key=sms.key))
        return out

    def lookup(self, keys: Sequence[str]) -> dict[str, RecipientResult]:
        """Find what Kaleyra accepted under each key's ``ref`` (after an ambiguous send)."""
        refs: dict[str, dict[int, str]] = {}
        for k in keys:
            ref, pos = self._refs.get(k) or (self.request_ref(keys), keys.index(k))
            refs.setdefault(ref, {})[pos] = k
        found: dict[str, RecipientResult] = {}
        for ref, positions in refs.items():
            resp = self.transport.request("GET", self.path("/messages"), params={"ref": ref})
            try:
                body = resp.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                # Not an answer: the client keeps asking, and never takes this for "not found".
                raise ProviderServerError(f"Kaleyra's lookup of ref {ref} is not a JSON object", provider=self.name)
            rows = body.get("data")
            rows = rows if isinstance(rows, list) else []
            for row in rows:
                if not isinstance(row, dict):
                    continue
                mid = str(row.get("message_id") or "")
                try:
                    pos = int(mid.rsplit(":", 1)[1]) - 1  # seed: <uuid>:<n>, n from 1 in `to` order
                except (IndexError, ValueError):
                    continue
                key = positions.get(pos)
                if key is None:
                    continue
                phone = from_wire(str(row.get("recipient") or ""))
                self._phones[mid] = phone
                found[key] = RecipientResult(to=phone, status=Status.QUEUED, message_id=mid, key=key, raw=row)
        return found

    # -- status ---------------------------------------------------------------------------
    def status(self, message_ids: Sequence[str]) -> list[Delivery]:
        """sms-api-status: ``GET …/status?message_ids=`` (``campaign_id`` names each message).

        The poll does not return the number; a report's ``phone`` is filled for messages
        this process sent or looked up, and is empty otherwise.
        """
        out: list[Delivery] = []
        ids = list(dict.fromkeys(message_ids))
        for i in range(0, len(ids), STATUS_IDS_PER_CALL):
            chunk = ids[i : i + STATUS_IDS_PER_CALL]
            resp = self.transport.request(
                "GET", self.path(f"/{self.endpoint}/status"), params={"message_ids": ",".join(chunk)}
            )
            for row in resp.json().get("data") or []:
                if not isinstance(row, dict) or not row.get("campaign_id"):
                    continue
                mid = str(row["campaign_id"])
                raw_status = str(row.get("status") or "")
                details = str(row.get("status_details") or "")
                status, reason = map_status(raw_status, details)
                out.append(
                    Delivery(
                        event_id=event_id_for(self.name, "delivery", mid, raw_status, details),
                        provider=self.name,
                        phone=self._phones.get(mid) or "",
                        occurred_at=self.clock.now(),
                        message_id=mid,
                        raw=row,
                        status=status,
                        raw_status=raw_status,
                        reason=reason,
                        batch_id=mid.rsplit(":", 1)[0],
                    )
                )
        return out

    def check(self) -> None:
        """A status poll for no real message: 200 with the key and SID right, else ``AuthError``."""
        # ASSUMPTION: Kaleyra answers an unknown id with an empty data list, not an error.
        self.transport.request("GET", self.path(f"/{self.endpoint}/status"), params={"message_ids": "smsrelay-check"})

    # -- callbacks ------------------------------------------------------------------------
    def verify_webhook(self, request: WebhookRequest) -> None:
        """The ``X-Smsrelay-Token`` header equals ``webhook_secret`` (Kaleyra signs nothing)."""
        secret = self.settings.webhook_secret
        if not secret:
            raise WebhookError(
                "webhook_secret is not set, so this Kaleyra callback cannot be authenticated",
                provider=self.name,
                status_code=401,
            )
        given = request.header(TOKEN_HEADER)
        if not given:
            raise WebhookError(f"missing {TOKEN_HEADER} header", provider=self.name, status_code=401)
        if not constant_time_equals(given.strip(), secret):
            raise WebhookError(f"{TOKEN_HEADER} does not match webhook_secret", provider=self.name, status_code=401)

    def parse_webhook(self, request: WebhookRequest) -> list[Event]:
        """A DLR (GET query or POST JSON/form) or an inbound SMS (the MO profile's JSON)."""
        try:
            payload = self._payload(request)
            if any(k in payload for k in ("message", "keyword", "kid")):
                return self._inbound(payload)
            return [self._dlr(payload)]
        except WebhookError:
            raise
        # OSError: fromtimestamp() of an epoch beyond the platform's time_t.
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError, OSError) as exc:
            raise WebhookError(
                f"malformed Kaleyra callback: {type(exc).__name__}", provider=self.name, status_code=400
            ) from None

    def _payload(self, request: WebhookRequest) -> dict[str, str]:
        if request.method.upper() == "GET" or not request.body.strip():
            pairs = request.params
            if not pairs:
                raise WebhookError("empty Kaleyra callback", provider=self.name, status_code=400)
            return {k: v for k, v in pairs}
        ctype = (request.header("content-type") or "").lower()
        if "form" in ctype:
            return dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
        data = json_body(request, self.name, what="the Kaleyra callback")
        if not isinstance(data, dict):
            raise WebhookError("a Kaleyra callback body must be a JSON object", provider=self.name, status_code=400)
        return {str(k): "" if v is None else str(v) for k, v in data.items()}

    def _time(self, value: str | None) -> datetime:
        text = (value or "").strip()
        if not text:
            return self.clock.now()
        if text.isdigit():
            return datetime.fromtimestamp(int(text), UTC)
        dt = datetime.fromisoformat(text)
        # https://developers.kaleyra.io/docs/receive-message: a zoneless time is the account's zone (`timezone`).
        return (dt if dt.tzinfo else dt.replace(tzinfo=self.zone)).astimezone(UTC)

    def _required(self, payload: Mapping[str, str], name: str) -> str:
        value = payload.get(name, "").strip()
        if not value:
            raise WebhookError(f"Kaleyra callback without {name!r}", provider=self.name, status_code=400)
        return value

    def _dlr(self, payload: Mapping[str, str]) -> Delivery:
        mid = self._required(payload, "id") if "id" in payload else self._required(payload, "message_id")
        raw_status = self._required(payload, "status")
        trace = payload.get("status_trace") or payload.get("status_details") or ""
        status, reason = map_status(raw_status, trace)
        number = payload.get("recipient") or payload.get("to") or payload.get("mobile") or ""
        return Delivery(
            event_id=event_id_for(self.name, "delivery", mid, raw_status, trace, payload.get("timestamp", "")),
            provider=self.name,
            phone=from_wire(number) if number else "",
            occurred_at=self._time(payload.get("timestamp")),
            message_id=mid,
            raw=dict(payload),
            status=status,
            raw_status=raw_status,
            reason=reason,
            message_ref=payload.get("ref") or None,
            batch_id=mid.rsplit(":", 1)[0] if ":" in mid else None,
        )

    def _inbound(self, payload: Mapping[str, str]) -> list[Event]:
        # ASSUMPTION: `source` is the handset and `recipient` our number (receive-message leaves it open).
        phone = from_wire(self._required(payload, "source"))
        text = payload.get("message", "")
        when = self._time(payload.get("timestamp"))
        mid = payload.get("id") or None
        event_id = f"kaleyra:reply:{mid}" if mid else event_id_for(self.name, "reply", phone, text, when)
        to = payload.get("recipient") or None
        reply = Reply(
            event_id=event_id,
            provider=self.name,
            phone=phone,
            occurred_at=when,
            message_id=mid,
            raw=dict(payload),
            text=text,
            to=from_wire(to) if to else None,
        )
        events: list[Event] = [reply]
        words = text.strip().upper().split()
        if words and words[0] in OPT_OUT_WORDS:
            events.append(
                OptOut(
                    event_id=event_id.replace(":reply:", ":opt_out:", 1),
                    provider=self.name,
                    phone=phone,
                    occurred_at=when,
                    message_id=mid,
                    raw=dict(payload),
                    source="reply",
                    text=text,
                )
            )
        return events
