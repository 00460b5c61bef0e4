"""ME-SMS (``me-sms.com``), the Thai bulk provider: API v2 with ``x-api-key``.

Source: ME-SMS's API documentation, https://me-sms.com/en/api-docs (statuses, errors,
preview, cancel) and https://v2.me-sms.com/zh/api-docs (send); cited below as *seed*.

How smsrelay maps ME-SMS onto its model:

* **One request, one body.** ``POST /api/v2/sms/send`` carries one ``content`` and up to
  2,000,000 ``msisdns``. Recipients whose rendered bodies are equal share a request;
  personalised bodies split the send into one request per distinct body
  (:meth:`MeSmsProvider.plan_requests`). ME-SMS's ``variables`` are one object per
  request, so they cannot personalise per recipient; a saved template with shared
  variables is sent with ``Message.options = {"template_id": 1, "variables": {...}}``.
* **Ids.** A send answers a batch ``uuid`` and no per-recipient id. smsrelay names each
  recipient ``<uuid>:<msisdn>`` (``msisdn`` as sent, e.g. ``66812345678``); that is the
  ``message_id`` of its result, of :meth:`status` and of its events.
* **Reports by polling.** ME-SMS pushes nothing. :meth:`iter_recipients` streams a
  batch's ``/recipients`` pages lazily (flat memory at any size), and
  :meth:`poll_events` turns settled batches into ``Delivery`` events.
* **No reference field.** A send whose outcome is unknown cannot be looked up, so the
  client raises ``AmbiguousSend`` rather than risk a double send.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
from collections.abc import Hashable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import requests

from smsrelay.errors import (
    AuthError,
    InsufficientCredit,
    InvalidRequest,
    NotCancellable,
    NotFound,
    ProviderServerError,
    RateLimited,
    SmsRelayError,
)
from smsrelay.model import Capabilities, Delivery, PreparedSms, RecipientResult, Status
from smsrelay.phone import to_wire
from smsrelay.providers.base import Balance, BatchOutcome, EventPage, Provider, Quote
from smsrelay.providers.batching import body_key, join_outcomes, plan_by_body
from smsrelay.redaction import redact
from smsrelay.transport import OTHER, SERVER_ERROR, ErrorRule, StatusTable, Transport, error_for_status, json_object

__all__ = ["MESSAGE_STATUS", "STATUS", "MeSmsBatch", "MeSmsProvider", "Sender"]

log = logging.getLogger("smsrelay.providers.mesms")

# https://me-sms.com/en/api-docs, GET /api/v2/sms/{uuid}/recipients: status -> canonical (its words in REASONS).
STATUS: dict[str, Status] = {
    "pending": Status.QUEUED,
    "success": Status.DELIVERED,
    "failed": Status.FAILED,
    "invalid": Status.REJECTED,
    "blocked": Status.REJECTED,
    "expired": Status.EXPIRED,
    "timeout": Status.UNKNOWN,
}
REASONS: dict[str, str] = {
    "failed": "send failed (phone off / no signal)",
    "invalid": "invalid number",
    "blocked": "number is on the blocklist",
    "expired": "retry window exhausted",
    "timeout": "no delivery report received within the allowed window",
}
# ASSUMPTION: https://me-sms.com/en/api-docs names message-level statuses without meanings; read as below.
MESSAGE_STATUS: dict[str, Status] = {
    "scheduled": Status.SCHEDULED,
    "pending": Status.QUEUED,
    "sent": Status.SENT,
    "failed": Status.FAILED,
    "cancelled": Status.CANCELLED,
}
CANCEL_REASONS = frozenset({"NOT_SCHEDULED", "ALREADY_CANCELLED", "ALREADY_PROCESSING"})
# seed: the status (or, where it decides, the error code) of an error response, as a core error.
ERRORS: StatusTable = {
    "INSUFFICIENT_CREDITS": ErrorRule(
        InsufficientCredit, "ME-SMS has not enough credit for this send (402); top up the account"
    ),
    401: ErrorRule(AuthError, "ME-SMS refused the API key (401); check SMSRELAY_MESMS_API_KEY"),
    402: ErrorRule(InsufficientCredit, "ME-SMS has not enough credit for this send (402); top up the account"),
    403: ErrorRule(AuthError, "ME-SMS refused this API key's scope (403); sending needs a key with sms:send or *"),
    404: ErrorRule(NotFound, "ME-SMS found no such resource (404): {text}"),
    429: ErrorRule(RateLimited, "ME-SMS rate limit exceeded (429); reduce throughput"),
    SERVER_ERROR: ErrorRule(ProviderServerError, "ME-SMS failed on its side ({status})"),
    OTHER: ErrorRule(InvalidRequest, "ME-SMS refused the request ({status} {code}): {text}"),
}
# The request field an error code names.
FIELDS: dict[str, str] = {"INVALID_MSISDN": "to", "CONTENT_TOO_LONG": "message", "SENDER_NOT_APPROVED": "sender"}
PAGE_SIZE = 1_000  # ASSUMPTION: the emulator's (undocumented) largest /recipients page
STATUS_FILTERS = tuple(STATUS)


@dataclass(frozen=True)
class MeSmsBatch:
    """One ME-SMS send (a "message"): its uuid, status and per-status counts."""

    uuid: str
    status: Status
    raw_status: str
    sender: str | None
    recipients: int
    created_at: datetime | None
    scheduled_at: datetime | None
    dr_summary: Mapping[str, int] | None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Sender:
    """A sender name on the account; only ``approved`` ones may send."""

    name: str
    status: str

    @property
    def approved(self) -> bool:
        return self.status == "approved"


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return _parse_time(value)


@functools.lru_cache(maxsize=4096)  # a page's rows share a handful of timestamps
def _parse_time(value: str) -> datetime | None:
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    # ASSUMPTION: a time without an offset is Bangkok time, the provider's own zone.
    return (dt if dt.tzinfo else dt.replace(tzinfo=_BANGKOK)).astimezone(UTC)


_BANGKOK = datetime.fromisoformat("2026-01-01T00:00:00+07:00").tzinfo


def _split_id(message_id: str) -> tuple[str, str | None]:
    batch, sep, msisdn = message_id.partition(":")
    return batch, (msisdn if sep else None)


class MeSmsProvider(Provider):
    """The ME-SMS adapter. Settings: ``api_key`` (scope ``sms:send`` to send), ``sender``.

    >>> from smsrelay.config import ProviderSettings
    >>> MeSmsProvider(ProviderSettings("mesms", api_key="k")).capabilities.bulk_max
    2000000
    """

    name = "mesms"
    transport: Transport
    capabilities = Capabilities(
        bulk_max=2_000_000,  # seed: "batch up to 2,000,000 numbers per request"
        concurrency=8,
        schedule=True,
        cancel=True,
        dry_run=True,
        status_poll=True,
        event_poll=True,
        balance=True,
        max_chars=1_000,  # https://me-sms.com/en/api-docs send: content ≤ 1,000 chars
        requires_sender=True,  # https://me-sms.com/en/api-docs send: `sender` is REQUIRED, an approved name
        sender_max_chars=11,  # https://me-sms.com/en/api-docs send: sender ≤ 11 chars
        countries=frozenset({"TH"}),  # https://me-sms.com/en/api-docs send: msisdns 66XXXXXXXXX or 0XXXXXXXXX
    )
    wire_format = "digits"  # https://me-sms.com/en/api-docs send: 66XXXXXXXXX, no "+"
    options: ClassVar[Mapping[str, type]] = {"page_size": int, "max_chars": int}
    default_base_url = "https://me-sms.com"

    def __init__(self, settings: Any, **kw: Any) -> None:
        super().__init__(settings, **kw)
        self.page_size = max(1, min(PAGE_SIZE, int(settings.option("page_size", PAGE_SIZE))))
        self.transport = self.make_transport(
            settings.base_url or self.default_base_url,
            headers={"x-api-key": settings.api_key or "", "Accept": "application/json"},
            error_mapper=self._error,
            min_read_timeout=5.0,
        )

    def close(self) -> None:
        self.transport.close()

    # -- errors -------------------------------------------------------------------------
    def _error(self, resp: requests.Response) -> SmsRelayError:
        """seed: errors are ``{"error": "...", "code": "..."}``; map on status, then code."""
        body = json_object(resp)
        text = redact(str(body.get("error") or resp.text[:300] or resp.reason))
        code = body.get("code") if isinstance(body.get("code"), str) else None
        status = resp.status_code
        if code in CANCEL_REASONS:
            kw: dict[str, Any] = {"provider": self.name, "status_code": status, "provider_message": text, "code": code}
            return NotCancellable(f"ME-SMS cannot cancel this message: {code}", reason=code, **kw)
        return error_for_status(ERRORS, status, provider=self.name, text=text, code=code, field=FIELDS.get(code or ""))

    # -- sending ------------------------------------------------------------------------
    def plan_requests(self, batch: Sequence[PreparedSms]) -> list[list[PreparedSms]]:
        """One request per distinct body (and sender, schedule, options), ≤ ``bulk_max`` each.

        >>> from smsrelay.config import ProviderSettings
        >>> from smsrelay.model import Message
        >>> p = MeSmsProvider(ProviderSettings("mesms", api_key="k"))
        >>> sms = [PreparedSms(f"+6681234000{i}", "hi", f"k{i}", "GSM-7", 1, Message("hi")) for i in range(3)]
        >>> [len(g) for g in p.plan_requests(sms)]
        [3]
        """
        return plan_by_body(batch, self.capabilities.bulk_max)

    def request_key(self, sms: PreparedSms) -> Hashable:
        """Messages share a request only with equal body, sender, schedule and options."""
        return body_key(sms)

    def _payload(self, group: Sequence[PreparedSms], msisdns: list[str], dry_run: bool) -> dict[str, Any]:
        first = group[0]
        msg = first.message
        sender = msg.sender or self.settings.sender
        if not sender:
            raise InvalidRequest(
                "ME-SMS needs a sender name (≤ 11 characters, approved on the Senders page)",
                field="sender",
                provider=self.name,
            )
        if len(sender) > 11:
            raise InvalidRequest(
                f"the sender {sender!r} is {len(sender)} characters; ME-SMS allows 11",
                field="sender",
                provider=self.name,
            )
        body: dict[str, Any] = {"sender": sender, "msisdns": msisdns}
        template_id = msg.options.get("template_id")
        if template_id is not None:
            body["templateId"] = int(template_id)
            body["variables"] = dict(msg.options.get("variables") or {})
        else:
            body["content"] = first.body
        if msg.send_at is not None:
            if msg.send_at.tzinfo is None:
                raise InvalidRequest("send_at needs a time zone", field="send_at", provider=self.name)
            # seed: scheduledTime carries its offset, e.g. 2026-06-01T10:00:00+07:00.
            body["scheduledTime"] = msg.send_at.astimezone(_BANGKOK).isoformat(timespec="seconds")
        if dry_run:
            body["dryRun"] = True
        return body

    @staticmethod
    def _thai(e164: str) -> bool:
        return e164.startswith("+66")

    def send(self, batch: Sequence[PreparedSms], *, dry_run: bool = False) -> BatchOutcome:
        """Send messages that share one body in one request (see :meth:`plan_requests`)."""
        groups = self.plan_requests(batch)
        if len(groups) != 1:
            # The client sends one planned group per call; a direct caller may not.
            return join_outcomes([self.send(g, dry_run=dry_run) for g in groups])
        group = groups[0]
        results: dict[int, RecipientResult] = {}
        wire: list[str] = []
        positions: list[int] = []
        for pos, sms in enumerate(group):
            if not self._thai(sms.to):
                # https://me-sms.com/en/api-docs send: only 66…/0… numbers; refuse one, keep the rest.
                results[pos] = RecipientResult(
                    to=sms.to,
                    status=Status.REJECTED,
                    key=sms.key,
                    parts=sms.parts,
                    error=f"ME-SMS sends only to Thai numbers (+66…); {sms.to} is not one",
                )
                continue
            wire.append(to_wire(sms.to, "digits"))
            positions.append(pos)
        batch_id: str | None = None
        if wire:
            payload = self._payload(group, wire, dry_run)
            data = self.transport.request("POST", "/api/v2/sms/send", json=payload, idempotent=False).json()
            if not isinstance(data, dict):
                data = {}
            batch_id = None if dry_run else str(data.get("uuid") or "") or None
            if not dry_run and batch_id is None:
                raise ProviderServerError("ME-SMS accepted the send but returned no uuid", provider=self.name)
            status = Status.SCHEDULED if "scheduledTime" in payload else Status.QUEUED
            parts = int(data.get("parts") or group[0].parts)
            for pos, msisdn in zip(positions, wire, strict=True):
                sms = group[pos]
                results[pos] = RecipientResult(
                    to=sms.to,
                    status=status,
                    message_id=f"{batch_id}:{msisdn}" if batch_id else None,
                    parts=parts,
                    key=sms.key,
                )
        return BatchOutcome(batch_id, [results[i] for i in range(len(group))])

    def quote(self, batch: Sequence[PreparedSms]) -> Quote | None:
        """The credits a send would cost, from ``POST /api/v2/sms/preview`` per request."""
        total = Decimal(0)
        raw: list[Any] = []
        for group in self.plan_requests(batch):
            wire = [to_wire(s.to, "digits") for s in group if self._thai(s.to)]
            if not wire:
                continue
            payload = self._payload(group, wire, dry_run=False)
            payload.pop("scheduledTime", None)
            data = self.transport.request("POST", "/api/v2/sms/preview", json=payload, idempotent=True).json()
            total += Decimal(str(data.get("credits", 0)))
            raw.append(data)
        return Quote(total, "credits", {"previews": raw})

    # -- status and events ----------------------------------------------------------------
    def iter_recipients(self, batch_uuid: str, *, status: str | None = None, after: str = "0") -> Iterator[Delivery]:
        """Stream a batch's recipient reports page by page; memory stays flat at any size.

        ``status`` filters by ME-SMS status (``pending``, ``success``, ``failed``, …).

        >>> for report in provider.iter_recipients(uuid, status="failed"):  # doctest: +SKIP
        ...     print(report.phone, report.reason)
        """
        pages = self._pages(batch_uuid, status=status, after=after, limit=self.page_size, prefetch=True)
        for _cursor, rows in pages:
            for row in rows:
                event = self._delivery(batch_uuid, row)
                if event is not None:
                    yield event

    def _pages(
        self, batch_uuid: str, *, status: str | None, after: str, limit: int, prefetch: bool = False
    ) -> Iterator[tuple[str | None, list[Any]]]:
        if status is not None and status not in STATUS_FILTERS:
            raise InvalidRequest(
                f"unknown ME-SMS recipient status {status!r}; one of {', '.join(STATUS_FILTERS)}",
                field="status",
                provider=self.name,
            )
        path = f"/api/v2/sms/{batch_uuid}/recipients"

        def fetch(cursor: str) -> tuple[str | None, list[Any]]:
            params: dict[str, Any] = {"after": cursor, "limit": limit}
            if status:
                params["status"] = status
            data = self.transport.request("GET", path, params=params).json()
            rows = data.get("data") if isinstance(data, dict) else None
            if not isinstance(rows, list):
                raise ProviderServerError("ME-SMS answered /recipients without a data list", provider=self.name)
            nxt = data.get("nextCursor")
            return (str(nxt) if data.get("hasMore") and nxt is not None else None), rows

        if not prefetch:
            cursor: str | None = after
            while cursor is not None:
                cursor, rows = fetch(cursor)
                yield cursor, rows
            return
        # Read one page ahead while the caller works through this one: at most two
        # pages are held, so memory stays flat, and the network wait overlaps the work.
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smsrelay-mesms-page")
        try:
            ahead = pool.submit(fetch, after)
            while True:
                cursor, rows = ahead.result()
                if cursor is not None:
                    ahead = pool.submit(fetch, cursor)
                yield cursor, rows
                if cursor is None:
                    return
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _delivery(self, batch_uuid: str, row: Any) -> Delivery | None:
        if not isinstance(row, dict) or not isinstance(row.get("msisdn"), str):
            log.warning("mesms: skipped a malformed recipient row: %s", redact(str(row)[:200]))
            return None
        raw_status = str(row.get("status") or "")
        status = STATUS.get(raw_status, Status.UNKNOWN)
        msisdn = row["msisdn"]
        phone = "+66" + msisdn[1:] if msisdn.startswith("0") else "+" + msisdn
        return Delivery(
            # Built from ME-SMS's own ids (batch uuid, number) and the status, so a re-read
            # dedupes; no hashing, as a million-recipient batch makes a million of these.
            event_id=f"mesms:delivery:{batch_uuid}:{msisdn}:{raw_status}",
            provider=self.name,
            phone=phone,
            occurred_at=_time(row.get("updatedAt")) or self.clock.now(),
            message_id=f"{batch_uuid}:{msisdn}",
            raw=row,
            status=status,
            raw_status=raw_status,
            reason=REASONS.get(raw_status),
            batch_id=batch_uuid,
        )

    def status(self, message_ids: Sequence[str]) -> list[Delivery]:
        """Reports for ``<uuid>:<msisdn>`` ids; a bare ``<uuid>`` gives all its recipients.

        A batch's pages are read only until every asked-for number is found.
        """
        wanted: dict[str, set[str] | None] = {}
        for mid in message_ids:
            batch, msisdn = _split_id(mid)
            if msisdn is None:
                wanted[batch] = None
            elif batch not in wanted or wanted[batch] is not None:
                bucket = wanted.setdefault(batch, set())
                assert bucket is not None
                bucket.add(msisdn)
        out: list[Delivery] = []
        for batch, numbers in wanted.items():
            missing = set(numbers) if numbers is not None else None
            for report in self.iter_recipients(batch):
                number = _split_id(report.message_id or "")[1] or ""
                if missing is None:
                    out.append(report)
                elif number in missing:
                    out.append(report)
                    missing.discard(number)
                    if not missing:
                        break
        return out

    def poll_events(self, cursor: str | None, *, limit: int = 500) -> EventPage:
        """Final ``Delivery`` events of every batch, once it has settled.

        ME-SMS's recipient list has no "changed since" filter, so a position in it is
        only stable once no recipient is pending. Each batch is therefore read once,
        after it settles (``drSummary`` has no ``pending``), in creation order. The
        cursor (opaque) holds the newest batch seen, the batches still open and the
        position inside the batch being read.
        """
        state = self._decode(cursor)
        if state is None:
            state = {"seen": None, "open": []}
        self._discover(state)
        events: list[Delivery] = []
        more = False
        remaining = max(1, limit)
        for entry in list(state["open"]):
            batch_uuid, after = entry[0], entry[1]
            try:
                info = self.message(batch_uuid)
            except NotFound:
                log.warning("mesms: batch %s no longer exists; its reports are skipped", batch_uuid)
                state["open"].remove(entry)
                continue
            if info.status == Status.CANCELLED:
                state["open"].remove(entry)
                continue
            if info.status != Status.SENT or not info.dr_summary or info.dr_summary.get("pending", 0):
                continue
            pos = after
            for nxt, rows in self._pages(batch_uuid, status=None, after=str(after), limit=min(remaining, PAGE_SIZE)):
                for row in rows:
                    event = self._delivery(batch_uuid, row)
                    if event is not None:
                        events.append(event)
                remaining -= len(rows)
                pos = int(nxt) if nxt is not None else -1
                if nxt is None or remaining <= 0:
                    break
            if pos < 0:
                state["open"].remove(entry)
            else:
                entry[1] = pos
            if remaining <= 0:
                more = pos >= 0 or len(state["open"]) > 0
                break
        return EventPage(events, self._encode(state), more)

    def _discover(self, state: dict[str, Any]) -> None:
        """Add batches created since the newest one seen to the open list, oldest first."""
        seen: str | None = state.get("seen")
        at = set(state.get("at") or [])
        new: list[tuple[str, str]] = []
        page = 1
        while True:
            data = self.transport.request("GET", "/api/v2/sms", params={"page": page, "limit": 100}).json()
            rows = data.get("data") if isinstance(data, dict) else None
            if not isinstance(rows, list) or not rows:
                break
            stop = False
            for row in rows:
                when = _time(row.get("createdAt"))
                stamp = when.isoformat() if when else ""
                if seen is not None and stamp < seen:
                    stop = True
                    break
                if stamp != seen or str(row.get("uuid")) not in at:
                    new.append((stamp, str(row.get("uuid"))))
            if stop or len(rows) < 100:
                break
            page += 1
        known = {u for u, _ in state["open"]}
        for _stamp, batch_uuid in sorted(set(new)):
            if batch_uuid not in known:
                state["open"].append([batch_uuid, 0])
                known.add(batch_uuid)
        if new:
            newest = max(s for s, _ in new)
            if seen is None or newest > seen:
                at = set()
            state["seen"] = newest
            state["at"] = sorted(at | {u for s, u in new if s == newest})

    @staticmethod
    def _encode(state: dict[str, Any]) -> str:
        return "mesms1." + base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()

    def _decode(self, cursor: str | None) -> dict[str, Any] | None:
        if not cursor:
            return None
        try:
            if not cursor.startswith("mesms1."):
                raise ValueError
            state = json.loads(base64.urlsafe_b64decode(cursor[7:].encode()))
            if not isinstance(state, dict) or not isinstance(state.get("open"), list):
                raise ValueError
            return state
        except ValueError:
            raise InvalidRequest(
                "the events cursor is not an ME-SMS cursor; pass the cursor a previous page returned",
                field="cursor",
                provider=self.name,
            ) from None

    # -- messages and account ---------------------------------------------------------------
    def message(self, batch_uuid: str) -> MeSmsBatch:
        """One send, with ``drSummary`` (counts per recipient status) once complete."""
        data = self.transport.request("GET", f"/api/v2/sms/{_split_id(batch_uuid)[0]}").json()
        return self._batch(data)

    def messages(self, *, status: str | None = None, page: int = 1, limit: int = 20) -> list[MeSmsBatch]:
        """The account's sends, most recent first; ``status`` filters (sent, failed, pending, …)."""
        if status is not None and status not in MESSAGE_STATUS:
            raise InvalidRequest(
                f"unknown ME-SMS message status {status!r}; one of {', '.join(MESSAGE_STATUS)}",
                field="status",
                provider=self.name,
            )
        params: dict[str, Any] = {"page": page, "limit": limit}
        if status:
            params["status"] = status
        data = self.transport.request("GET", "/api/v2/sms", params=params).json()
        return [self._batch(row) for row in data.get("data") or []]

    @staticmethod
    def _batch(row: Mapping[str, Any]) -> MeSmsBatch:
        raw_status = str(row.get("status") or "")
        summary = row.get("drSummary")
        return MeSmsBatch(
            uuid=str(row.get("uuid")),
            status=MESSAGE_STATUS.get(raw_status, Status.UNKNOWN),
            raw_status=raw_status,
            sender=row.get("sender"),
            recipients=int(row.get("recipients") or 0),
            created_at=_time(row.get("createdAt")),
            scheduled_at=_time(row.get("scheduledTime")),
            dr_summary={str(k): int(v) for k, v in summary.items()} if isinstance(summary, dict) else None,
            raw=row,
        )

    def cancel(self, message_id: str) -> None:
        """Cancel a scheduled send (``<uuid>`` or any ``<uuid>:<msisdn>`` of it).

        Raises ``NotCancellable`` with ``reason`` NOT_SCHEDULED, ALREADY_CANCELLED or
        ALREADY_PROCESSING.
        """
        batch_uuid = _split_id(message_id)[0]
        self.transport.request("POST", f"/api/v2/sms/{batch_uuid}/cancel", json={})

    def balance(self) -> Balance:
        data = self.transport.request("GET", "/api/v2/credits").json()
        try:
            amount = Decimal(str(data.get("balance")))
        except InvalidOperation:
            raise ProviderServerError("ME-SMS answered a balance that is not a number", provider=self.name) from None
        return Balance(amount, "credits", data)

    def senders(self) -> list[Sender]:
        """Sender names on the account; send only from ``approved`` ones."""
        data = self.transport.request("GET", "/api/v2/senders").json()
        return [Sender(str(r.get("name")), str(r.get("status"))) for r in data.get("data") or []]

    def check(self) -> None:
        self.transport.request("GET", "/api/v2/credits")
