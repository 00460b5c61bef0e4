"""SMSKit (smskit.cloud): an SMS gateway that sends through the account's Android phones.

One recipient per ``POST /api/sms/send``, answered ``202 {jobId, status}``; SMSKit
dedupes on ``idempotencyKey`` ("same key never sends twice"), so smsrelay always
sets it and the transport may safely repeat a send whose answer was lost.

The documented budget is **100 requests per hour per API client**, for every call
(sends, status polls, device lists). smsrelay spends it carefully: the client-side
limiter lets at most 100 requests through in any hour (so a small send goes at once,
and a big one waits for the window instead of hitting 429); ``Client.estimate`` and
``send_many`` say up front how long a batch takes; and status polling is discouraged
in favour of the signed webhooks.

Source: SMSKit's API reference, https://smskit.cloud/docs/api (cited below as *seed*;
the lifecycle mapping of its job statuses is smsrelay's own reading of that page).

>>> from smsrelay import Client
>>> client = Client("smskit", api_key="sk_live_…")  # doctest: +SKIP
>>> client.send("+254712345678", "Your code is 123456").message_ids  # doctest: +SKIP
['job_7H2K9M4P1Q6R3T8V5W0X']
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

import requests

from smsrelay.clock import Clock
from smsrelay.errors import (
    AuthError,
    ConfigError,
    InvalidRequest,
    NotFound,
    ProviderServerError,
    RateLimited,
    SmsRelayError,
    Unsupported,
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
from smsrelay.providers.base import BatchOutcome, EventPage, Provider, Webhook
from smsrelay.redaction import redact
from smsrelay.transport import (
    SERVER_ERROR,
    ErrorRule,
    StatusTable,
    Transport,
    WindowLimiter,
    default_error,
    error_for_status,
    parse_retry_after,
)
from smsrelay.webhooks import WebhookRequest, constant_time_equals, json_body

if TYPE_CHECKING:
    from smsrelay.config import ProviderSettings

__all__ = [
    "EVENT_STATUS",
    "SIGNATURE_HEADER",
    "STATUS",
    "STOP_WORDS",
    "TIMESTAMP_HEADER",
    "WEBHOOK_EVENTS",
    "SmsKitProvider",
    "signature",
]

log = logging.getLogger("smsrelay.providers.smskit")

# https://smskit.cloud/docs/api, job status: SMSKit's job statuses -> common lifecycle.
STATUS: dict[str, Status] = {
    "Pending": Status.QUEUED,  # accepted, in SMSKit's queue
    "Assigned": Status.QUEUED,  # on a phone, not yet radio-sent, so not "sent"
    "Sent": Status.SENT,  # handed to the carrier by the phone
    "Delivered": Status.DELIVERED,  # handset delivery report
    "Failed": Status.FAILED,
    "DeadLetter": Status.FAILED,  # retries exhausted: failed, reason dead_letter
}
# seed: the webhook events that report a job's status.
EVENT_STATUS: dict[str, Status] = {
    "sms:sent": Status.SENT,
    "sms:delivered": Status.DELIVERED,
    "sms:failed": Status.FAILED,
}
WEBHOOK_EVENTS = ("sms:sent", "sms:delivered", "sms:failed", "sms:received")  # seed
# seed: "STOP / opt-out keywords are honored automatically". ASSUMPTION: the usual
# carrier keyword set (CTIA), matched on the first word, since SMSKit lists none.
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
TIMESTAMP_FIELDS = ("deliveredAt", "failedAt", "sentAt", "receivedAt", "occurredAt", "createdAt")

SIGNATURE_HEADER = "X-SMSKit-Signature"
TIMESTAMP_HEADER = "X-SMSKit-Timestamp"
DEFAULT_TOLERANCE = 300.0


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The signature SMSKit puts on a webhook push: the one place the scheme lives.

    ASSUMPTION: the seed says only "verify the payload signature". We take
    HMAC-SHA256, keyed with the webhook secret, over ``"<timestamp>." + raw body``,
    sent as ``X-SMSKit-Signature: sha256=<hex>`` beside ``X-SMSKit-Timestamp: <unix
    seconds>``. The timestamp is signed so the replay window cannot be forged; the
    closest public analogue (sms-gate.app) signs body and timestamp the same way.

    >>> signature("s3cret-s3cret-16", "1750672800", b"{}")[:7]
    'sha256='
    """
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str) or not value:
        raise ValueError(f"not a timestamp: {value!r}")
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)  # seed: timestamps are UTC
    return dt.astimezone(UTC)


def _problem_text(resp: requests.Response) -> tuple[str, str | None]:
    """The provider's explanation and the field it names, from any error body shape."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300].strip(), None
    if not isinstance(body, dict):
        return str(body)[:300], None
    errors = body.get("errors")
    if isinstance(errors, dict) and errors:
        # ASP.NET problem details: {"errors": {"recipient": ["..."]}}
        field, msgs = next(iter(errors.items()))
        text = "; ".join(str(m) for m in msgs) if isinstance(msgs, list) else str(msgs)
        field = str(field)
        return text, field[:1].lower() + field[1:]
    for name in ("detail", "error", "message", "title"):
        if isinstance(body.get(name), str) and body[name]:
            return body[name], None
    return json.dumps(body)[:300], None


# seed "Errors & rate limits": each error status, as a core error; others take the defaults.
ERRORS: StatusTable = {
    400: ErrorRule(InvalidRequest, "SMSKit refused the request{where}: {text}"),
    401: ErrorRule(
        AuthError,
        "SMSKit refused the API key (401): it is missing or wrong, or the API client is suspended; "
        "check the key and the client's status in the dashboard",
    ),
    403: ErrorRule(
        AuthError,
        "SMSKit refused the targeting (403): a device or SIM in 'devices' belongs to another account; "
        "use ids from `smsrelay devices`",
    ),
    404: ErrorRule(NotFound, "SMSKit does not know this id (404): {text}"),
    422: ErrorRule(
        InvalidRequest,
        "SMSKit has no eligible phone or SIM to send from (422); bring a phone online, "
        "enable a SIM, or relax the 'devices' targeting",
        field="devices",
        code="no_eligible_device",
    ),
    429: ErrorRule(
        RateLimited,
        "SMSKit rate limit reached (429; 100 requests/hour per API client); wait{hint} and retry, "
        "or add phones for more capacity",
    ),
    SERVER_ERROR: ErrorRule(ProviderServerError, "SMSKit failed on its side ({status}): {text}"),
}


def _error(resp: requests.Response) -> SmsRelayError:
    """Map an SMSKit error response to a core error (seed: "Errors & rate limits")."""
    status = resp.status_code
    text, field = _problem_text(resp)
    text = redact(text)
    if status not in ERRORS and status < 500:
        return default_error(resp, "smskit")
    wait = parse_retry_after(resp.headers.get("Retry-After")) if status == 429 else None
    words = {"where": f" in {field!r}" if field else "", "hint": f" for {wait:.0f} s" if wait is not None else ""}
    extra: dict[str, Any] = {"retry_after": timedelta(seconds=wait) if status == 429 and wait is not None else None}
    return error_for_status(
        ERRORS, status, provider="smskit", text=text, field=field, words=words, **(extra if status == 429 else {})
    )


class SmsKitProvider(Provider):
    """The SMSKit adapter.

    Options: ``priority`` (0-10, default for every send), ``devices`` (comma-separated
    ``dvc_…`` or ``dvc_…:<simSlot>`` targets), ``webhook_tolerance`` (the replay window
    in seconds, default 300). ``rate_limit`` (requests a second, default 100/3600) is
    enforced as a budget per hour.
    """

    name: ClassVar[str] = "smskit"
    transport: Transport
    capabilities = Capabilities(
        bulk_max=1,  # https://smskit.cloud/docs/api POST /api/sms/send: one recipient per request
        concurrency=8,
        status_poll=True,
        dlr_push=True,
        inbound_push=True,
        inbound_poll=True,
        event_poll=True,
        idempotency=True,
        max_chars=1600,  # seed: "Up to 1,600 characters"
        webhook_api=True,
    )
    wire_format = "e164"  # seed: a number without "+" is taken as Kenyan, so always send "+"
    options: ClassVar[Mapping[str, type]] = {
        "priority": int,
        "devices": list,  # a list in YAML, or "dvc_A,dvc_B:1" from the environment
        "webhook_tolerance": float,
    }
    default_base_url: ClassVar[str] = "https://api.smskit.cloud"
    default_rate_limit: ClassVar[float | None] = 100 / 3600  # seed: 100 requests/hour
    default_rate_window: ClassVar[tuple[int, float] | None] = (100, 3600.0)

    def __init__(self, settings: ProviderSettings, *, clock: Clock | None = None) -> None:
        super().__init__(settings, clock=clock)
        self.default_priority = self._priority(settings.option("priority"), "priority")
        self.default_devices = self._devices(settings.option("devices"), "devices")
        self.tolerance = float(settings.option("webhook_tolerance", DEFAULT_TOLERANCE))
        # The documented budget is per hour: a rate_limit given in requests a second is one too.
        rate = settings.rate_limit
        window = WindowLimiter(max(1, round(rate * 3600)), 3600.0, clock=self.clock) if rate else None
        self.transport = self.make_transport(
            settings.base_url or self.default_base_url,
            headers={"X-Api-Key": settings.api_key or "", "Accept": "application/json"},
            error_mapper=_error,
            limiter=window,
        )
        self._warned_status = False

    def close(self) -> None:
        self.transport.close()

    # -- validation of options ---------------------------------------------------
    @staticmethod
    def _priority(value: Any, field: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
            raise InvalidRequest(
                f"priority must be a whole number from 0 to 10 (9-10 for OTPs), got {value!r}",
                field=field,
                provider="smskit",
            )
        return value

    @staticmethod
    def _devices(value: Any, field: str) -> list[dict[str, Any]] | None:
        """Targets as ``[{"deviceId": ..., "simSlot": ...}]`` from a string, list or dicts."""
        if value is None or value == "" or value == []:
            return None
        items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise InvalidRequest("devices must be a list of device ids", field=field, provider="smskit")
        out: list[dict[str, Any]] = []
        for item in items:
            if isinstance(item, Mapping) and isinstance(item.get("deviceId"), str):
                target: dict[str, Any] = {"deviceId": item["deviceId"]}
                if item.get("simSlot") is not None:
                    target["simSlot"] = item["simSlot"]
            elif isinstance(item, str) and item.startswith("dvc_"):
                device, _, slot = item.partition(":")
                target = {"deviceId": device}
                if slot:
                    if not slot.isdigit():
                        raise InvalidRequest(
                            f"{item!r}: the SIM slot after ':' must be a number", field=field, provider="smskit"
                        )
                    target["simSlot"] = int(slot)
            else:
                raise InvalidRequest(
                    f"{item!r} is not a device id; use ids like dvc_… from `smsrelay devices`, "
                    "optionally with ':<simSlot>'",
                    field=field,
                    provider="smskit",
                )
            out.append(target)
        return out

    def _body(self, sms: PreparedSms) -> dict[str, Any]:
        options = sms.message.options
        priority = self._priority(sms.message.priority, "priority")
        if priority is None:
            priority = self._priority(options.get("priority"), "options.priority")
        if priority is None:
            priority = self.default_priority
        devices = self._devices(options.get("devices"), "options.devices") or self.default_devices
        # The idempotency key is always set: it is what makes a repeated send safe.
        body: dict[str, Any] = {"recipient": sms.to, "message": sms.body, "idempotencyKey": sms.key}
        if priority is not None:
            body["priority"] = priority
        if devices:
            body["devices"] = devices
        return body

    # -- sending ---------------------------------------------------------------------
    def send(self, batch: Sequence[PreparedSms], *, dry_run: bool = False) -> BatchOutcome:
        """Send each message with its own request (SMSKit takes one recipient per call)."""
        if dry_run:
            raise Unsupported("SMSKit has no dry run; smsrelay validates locally instead", provider=self.name)
        results: list[RecipientResult] = []
        for sms in batch:
            body = self._body(sms)
            try:
                # Safe to repeat: SMSKit dedupes on idempotencyKey (seed).
                resp = self.transport.request("POST", "/api/sms/send", json=body, idempotent=True)
            except (InvalidRequest, NotFound) as exc:
                if len(batch) == 1:
                    raise
                results.append(RecipientResult(to=sms.to, status=Status.REJECTED, error=str(exc), key=sms.key))
                continue
            results.append(self._accepted(sms, resp))
        return BatchOutcome(batch_id=None, results=results)

    def _accepted(self, sms: PreparedSms, resp: requests.Response) -> RecipientResult:
        try:
            data = resp.json()
            job_id = data["jobId"]
            raw_status = data.get("status", "Pending")
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ProviderServerError(
                f"SMSKit answered {resp.status_code} without a jobId; the send may have been accepted",
                provider=self.name,
                status_code=resp.status_code,
            ) from None
        if not isinstance(job_id, str) or not job_id:
            raise ProviderServerError("SMSKit answered with an empty jobId", provider=self.name)
        status = STATUS.get(raw_status, Status.QUEUED)
        return RecipientResult(
            to=sms.to, status=status, message_id=job_id, parts=sms.parts, key=sms.key, raw=dict(data)
        )

    # -- status ---------------------------------------------------------------------
    def status(self, message_ids: Sequence[str]) -> list[Delivery]:
        """The job status of each id; each one costs a request of the hourly budget."""
        if not self._warned_status and len(message_ids) > 0:
            self._warned_status = True
            log.warning(
                "smskit: each status poll costs one of the 100 requests/hour; register a webhook "
                "(`smsrelay webhooks register`) to have delivery reports pushed instead"
            )
        out: list[Delivery] = []
        for job_id in message_ids:
            try:
                resp = self.transport.request("GET", f"/api/sms/{quote(job_id, safe='')}/status")
            except NotFound:
                raise NotFound(
                    f"SMSKit has no job {job_id!r} (404); check the id", provider=self.name, status_code=404
                ) from None
            try:
                out.append(self._delivery(resp.json(), source="poll"))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ProviderServerError(
                    f"SMSKit answered an unreadable status for {job_id!r}: {exc}", provider=self.name
                ) from None
        return out

    def _delivery(self, data: Mapping[str, Any], *, source: str, event: str | None = None) -> Delivery:
        job_id = data["jobId"]
        if not isinstance(job_id, str) or not job_id:
            raise ValueError("jobId is missing")
        raw_status = data.get("status")
        if event is not None:
            status = EVENT_STATUS[event]
            if raw_status not in STATUS:
                raw_status = event
        elif raw_status in STATUS:
            status = STATUS[raw_status]
        elif isinstance(raw_status, str) and raw_status:
            # ASSUMPTION: a status SMSKit adds later is a step on the way, never a final one;
            # raw_status keeps it for the caller.
            log.warning("smskit: unknown job status %r for %s; treating it as queued", raw_status, job_id)
            status = Status.QUEUED
        else:
            raise ValueError("status is missing")
        occurred = self._occurred(data, status)
        reason = None
        if raw_status == "DeadLetter":
            reason = "dead_letter" + (f": {data['error']}" if data.get("error") else "")
        elif status is Status.FAILED and data.get("error"):
            reason = str(data["error"])
        recipient = data.get("recipient")
        phone = from_wire(recipient) if isinstance(recipient, str) and recipient else ""
        event_id = data.get("eventId") if event is not None else None
        if not isinstance(event_id, str) or not event_id:
            event_id = event_id_for(self.name, "delivery", job_id, raw_status, occurred.isoformat())
        return Delivery(
            event_id=event_id,
            provider=self.name,
            phone=phone,
            occurred_at=occurred,
            message_id=job_id,
            raw=dict(data),
            status=status,
            raw_status=str(raw_status),
            reason=reason,
        )

    def _occurred(self, data: Mapping[str, Any], status: Status) -> datetime:
        preferred = {
            Status.DELIVERED: "deliveredAt",
            Status.FAILED: "failedAt",
            Status.SENT: "sentAt",
        }.get(status)
        names = ([preferred] if preferred else []) + [n for n in TIMESTAMP_FIELDS if n != preferred]
        for name in names:
            if data.get(name):
                return _parse_time(data[name])
        # ASSUMPTION: a status without its own timestamp happened when we saw it.
        return self.clock.now()

    # -- inbound ---------------------------------------------------------------------
    def _received(self, data: Mapping[str, Any]) -> list[Event]:
        event_id = data["eventId"]
        sender, text = data["from"], data.get("content", "")
        if not isinstance(event_id, str) or not event_id or not isinstance(sender, str) or not sender:
            raise ValueError("eventId and from are required")
        if not isinstance(text, str):
            raise ValueError("content must be text")
        to = data.get("to")
        phone = from_wire(sender)
        occurred = _parse_time(data["receivedAt"]) if data.get("receivedAt") else self.clock.now()
        message_id = data.get("messageId") if isinstance(data.get("messageId"), str) else None
        reply = Reply(
            event_id=event_id,
            provider=self.name,
            phone=phone,
            occurred_at=occurred,
            message_id=message_id,
            raw=dict(data),
            text=text,
            to=from_wire(to) if isinstance(to, str) and to else None,
        )
        events: list[Event] = [reply]
        words = text.strip().split()
        if words and words[0].upper().strip(".!") in STOP_WORDS:
            events.append(
                OptOut(
                    event_id=event_id_for(self.name, "opt_out", event_id),
                    provider=self.name,
                    phone=phone,
                    occurred_at=occurred,
                    message_id=message_id,
                    raw=dict(data),
                    source="reply",
                    text=text,
                )
            )
        return events

    def poll_events(self, cursor: str | None, *, limit: int = 500) -> EventPage:
        """Inbound replies after ``cursor`` (SMSKit's ``since``); deliveries come by webhook.

        >>> page = provider.poll_events(None)  # doctest: +SKIP
        >>> [e.kind for e in page], page.cursor  # doctest: +SKIP
        (['reply', 'reply', 'opt_out'], 'cur_2')
        """
        params: dict[str, Any] = {"limit": max(1, min(limit, 100))}
        if cursor:
            params["since"] = cursor
        data = self.transport.request("GET", "/api/messages/inbound", params=params).json()
        events: list[Event] = []
        for item in data.get("messages") or []:
            try:
                events.extend(self._received(item))
            except (KeyError, TypeError, ValueError) as exc:
                # One malformed message must not stall the feed; the cursor moves past it.
                log.warning("smskit: skipped a malformed inbound message: %s", exc)
        next_cursor = data.get("nextCursor") or cursor
        return EventPage(events=events, cursor=next_cursor, more=bool(data.get("hasMore")))

    # -- webhooks --------------------------------------------------------------------
    def verify_webhook(self, request: WebhookRequest) -> None:
        """Check the push's signature and that its timestamp is within the replay window."""
        secret = self.settings.webhook_secret
        if not secret:
            raise WebhookError(
                "smskit: no webhook_secret is configured, so pushes cannot be verified; set the secret "
                "you registered the webhook with",
                provider=self.name,
                status_code=401,
            )
        given = request.header(SIGNATURE_HEADER)
        stamp = request.header(TIMESTAMP_HEADER)
        if not given or not stamp:
            raise WebhookError(
                f"smskit: the push has no {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header",
                provider=self.name,
                status_code=401,
            )
        try:
            sent_at = datetime.fromtimestamp(int(stamp.strip()), UTC)
        except (ValueError, OverflowError, OSError):
            raise WebhookError(
                f"smskit: {TIMESTAMP_HEADER} is not unix seconds", provider=self.name, status_code=401
            ) from None
        if abs((self.clock.now() - sent_at).total_seconds()) > self.tolerance:
            raise WebhookError(
                f"smskit: the push is outside the {self.tolerance:.0f} s replay window",
                provider=self.name,
                status_code=401,
            )
        if not constant_time_equals(given.strip(), signature(secret, stamp.strip(), request.body)):
            raise WebhookError("smskit: the webhook signature does not match", provider=self.name, status_code=401)

    def parse_webhook(self, request: WebhookRequest) -> list[Event]:
        """Events from an ``sms:*`` push; unknown event types (e.g. pings) give none."""
        data = json_body(request, self.name, what="smskit: the push body")
        # ASSUMPTION: one event per push, as in the seed's example; a list is read too.
        items = data if isinstance(data, list) else [data]
        events: list[Event] = []
        for item in items:
            try:
                if not isinstance(item, dict):
                    raise TypeError("an event must be a JSON object")
                kind = item.get("event")
                if kind in EVENT_STATUS:
                    events.append(self._delivery(item, source="push", event=kind))
                elif kind == "sms:received":
                    events.extend(self._received(item))
                else:
                    log.info("smskit: ignored a push of event type %r", kind)
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
                raise WebhookError(
                    f"smskit: malformed {str(item.get('event')) if isinstance(item, dict) else 'push'} "
                    f"payload: {redact(str(exc))[:200]}",
                    provider=self.name,
                    status_code=400,
                ) from None
            except SmsRelayError as exc:
                raise WebhookError(f"smskit: malformed push: {exc}", provider=self.name, status_code=400) from None
        return events

    def register_webhook(self, url: str, *, events: Sequence[str] | None = None, name: str | None = None) -> Webhook:
        """Subscribe ``url``; pushes are signed with the configured ``webhook_secret``.

        >>> provider.register_webhook("https://example.com/hooks/smskit")  # doctest: +SKIP
        Webhook(id='whk_…', events=('sms:sent', 'sms:delivered', 'sms:failed', 'sms:received'), name=None)
        """
        if not self.settings.webhook_secret:
            raise ConfigError(
                "smskit needs webhook_secret (16+ random characters) before registering a webhook: SMSKit "
                "signs pushes with it and smsrelay verifies them with it",
                field="webhook_secret",
                provider=self.name,
            )
        wanted = list(events or WEBHOOK_EVENTS)
        bad = [e for e in wanted if e not in WEBHOOK_EVENTS]
        if bad:
            raise InvalidRequest(
                f"unknown SMSKit event {bad[0]!r}; choose from {', '.join(WEBHOOK_EVENTS)}",
                field="events",
                provider=self.name,
            )
        body = {"url": url, "events": wanted, "secret": self.settings.webhook_secret}
        data = self.transport.request("POST", "/api/webhooks", json=body).json()
        return self._webhook(data)

    @staticmethod
    def _webhook(data: Mapping[str, Any]) -> Webhook:
        raw = {k: v for k, v in data.items() if k != "secret"}
        return Webhook(
            id=str(data["id"]), url=str(data.get("url", "")), events=tuple(data.get("events") or ()), raw=raw
        )

    def list_webhooks(self) -> list[Webhook]:
        data = self.transport.request("GET", "/api/webhooks").json()
        items = data.get("webhooks", []) if isinstance(data, dict) else data
        return [self._webhook(item) for item in items]

    def get_webhook(self, webhook_id: str) -> Webhook:
        """One webhook subscription by id."""
        return self._webhook(self.transport.request("GET", f"/api/webhooks/{quote(webhook_id, safe='')}").json())

    def ping_webhook(self, webhook_id: str) -> str:
        """Ask SMSKit to push a test event to the webhook; returns its event id if given."""
        path = f"/api/webhooks/{quote(webhook_id, safe='')}/ping"
        data = self.transport.request("POST", path, idempotent=True).json()
        return str(data.get("eventId", "")) if isinstance(data, dict) else ""

    def delete_webhook(self, webhook_id: str) -> None:
        raise Unsupported(
            "SMSKit's API has no way to delete a webhook (seed: register, list, detail, ping); "
            "remove it in the SMSKit dashboard",
            provider=self.name,
        )

    # -- account --------------------------------------------------------------------
    def devices(self) -> list[Mapping[str, Any]]:
        """The account's phones and their SIMs (``GET /api/devices``)."""
        data = self.transport.request("GET", "/api/devices").json()
        items = data.get("devices", []) if isinstance(data, dict) else data
        return [dict(d) for d in items if isinstance(d, Mapping)]

    def check(self) -> None:
        self.transport.request("GET", "/api/devices")
