"""ME-SMS (``me-sms.com``, the Thai bulk provider) API v2, as a local server.

Source: ME-SMS's API documentation, https://me-sms.com/en/api-docs (statuses, errors,
preview, balance) and https://v2.me-sms.com/zh/api-docs (send); cited below as *seed* or
"ME-SMS docs" with the section and the fact. ME-SMS publishes no
OpenAPI spec, so every path and field the documents leave open is marked
``ASSUMPTION`` with its reason.

One send takes up to 2,000,000 ``msisdns`` and answers one batch ``uuid``; there are
no per-recipient ids. Recipient statuses are *derived* from each number and the
clock, never stored per recipient, so a million-recipient batch costs the emulator
only its list of numbers (or nothing, for :meth:`MeSmsEmulator.create_batch`).

Outcomes by the recipient's last four digits (as the sandbox's, as far as ME-SMS can
say it): 0001 ``failed``, 0002 ``expired``, 0003 ``blocked`` (rejected), 0008
``timeout`` (no report); anything else ``success``. ME-SMS has no inbound messages
or link tracking, so 0004-0007 and 0009 are simply delivered. A number that is not
``66XXXXXXXX(X)``/``0XXXXXXXX(X)`` is ``invalid``.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from smsrelay.emulators.base import Emulator, EmuRequest, EmuResponse, json_response, route
from smsrelay.segments import analyse

__all__ = ["RECIPIENT_STATUSES", "MeSmsEmulator", "synthetic_msisdn"]

# seed: the recipient status filter values, in the doc's order.
RECIPIENT_STATUSES = ("pending", "success", "failed", "invalid", "blocked", "expired", "timeout")
# seed: the message list filter values.
MESSAGE_STATUSES = ("sent", "failed", "pending", "scheduled", "cancelled")
OUTCOMES = {"0001": "failed", "0002": "expired", "0003": "blocked", "0008": "timeout"}
MAX_MSISDNS = 2_000_000  # seed: "Up to 2,000,000 numbers per request"
MAX_CONTENT = 1_000  # ME-SMS docs, send: content ≤ 1,000 chars
MAX_SENDER = 11  # ME-SMS docs, send: sender ≤ 11 chars
# ASSUMPTION: the page size of /recipients is not documented; 1,000 keeps a page ~60 kB.
MAX_PAGE = 1_000
THAI = re.compile(r"(?:66|0)[689]\d{8}|(?:66|0)[2-7]\d{7}")
BANGKOK = timezone(timedelta(hours=7))  # seed: times are written with their offset, e.g. +07:00
SYNTHETIC_BASE = 66_800_000_000


def synthetic_msisdn(index: int) -> str:
    """The number at ``index`` of a synthetic batch: ``66800000000 + index``.

    >>> synthetic_msisdn(1)
    '66800000001'
    """
    return str(SYNTHETIC_BASE + index)


class _Synthetic(Sequence[str]):
    """A million numbers without a million strings: each is computed from its index."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [synthetic_msisdn(j) for j in range(*i.indices(self.n))]
        if not 0 <= i < self.n:
            raise IndexError(i)
        return synthetic_msisdn(i)


def _national(msisdn: str) -> str:
    """The number without its 66 or 0 prefix: the two spellings of one number in ME-SMS docs, send."""
    return msisdn[2:] if msisdn.startswith("66") else msisdn.removeprefix("0")


def _iso(dt: datetime) -> str:
    return dt.astimezone(BANGKOK).isoformat(timespec="seconds")


@dataclass
class _Batch:
    uuid: str
    sender: str
    content: str
    msisdns: Sequence[str]
    parts: int
    created_at: datetime
    dispatch_at: datetime
    scheduled: bool
    cancelled: bool = False
    summaries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


class MeSmsEmulator(Emulator):
    """The ME-SMS v2 endpoints. ``api_keys`` maps each accepted key to its scopes.

    ``sent_after`` is how long a batch stays ``pending`` before it is dispatched,
    ``delivered_after`` when its recipients get their final status (seconds).
    """

    name = "mesms"
    # ME-SMS docs (seed 002, error format) list "429 Rate limit exceeded" but publish no number
    # and no Retry-After: there is no documented limit to enforce. A RateLimit given by hand
    # answers with the documented 429 body (rate_limited below), without Retry-After.
    documented_rate_limit = None

    def __init__(
        self,
        *,
        api_keys: Mapping[str, tuple[str, ...]] | None = None,
        senders: Mapping[str, str] | None = None,
        credits: float = 10_000_000,
        templates: Mapping[int, str] | None = None,
        contact_groups: Mapping[int, Sequence[str]] | None = None,
        sent_after: float = 1.0,
        delivered_after: float = 3.0,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        # ME-SMS docs, auth: send needs scope sms:send or *; other endpoints take any valid key.
        self.api_keys = dict(api_keys or {"test-key": ("*",), "read-only-key": ("sms:read",)})
        # seed: only senders with status "approved" may send.
        self.senders = dict(senders or {"Acme": "approved", "MeSMS": "approved", "NewBrand": "pending"})
        self.credits = float(credits)
        self.templates = dict(templates or {1: "Hello {{name}}, your code is {{code}}"})
        self.contact_groups = {k: list(v) for k, v in (contact_groups or {7: ["66812340000", "0812340002"]}).items()}
        self.sent_after = sent_after
        self.delivered_after = delivered_after
        self.batches: dict[str, _Batch] = {}
        # ME-SMS docs, recipients' statuses, "Number is on the blocklist": national number -> when added.
        self.blocklist: dict[str, datetime] = {}

    # -- errors ----------------------------------------------------------------------
    @staticmethod
    def _error(status: int, message: str, code: str | None = None) -> EmuResponse:
        # seed: "When the API responds with a 4xx/5xx status code, the body is always JSON
        # in the same shape: {error, code}"; code is "present on some endpoints".
        body: dict[str, Any] = {"error": message}
        if code:
            body["code"] = code
        return json_response(body, status)

    def not_found(self, req: EmuRequest) -> EmuResponse:
        return self._error(404, "Resource not found", "NOT_FOUND")

    def rate_limited(self, req: EmuRequest, headers: dict[str, str]) -> EmuResponse:
        resp = self._error(429, "Rate limit exceeded", "RATE_LIMITED")
        resp.headers.update(headers)
        return resp

    def _auth(self, req: EmuRequest, scope: str | None = None) -> EmuResponse | None:
        key = req.header("x-api-key") or ""
        scopes = self.api_keys.get(key)
        if scopes is None and self.key_accepted(key, ()):
            scopes = ("*",)  # --any-key: a newcomer's own key may do anything
        if scopes is None:
            return self._error(401, "Missing or invalid API key", "UNAUTHORIZED")
        if scope and scope not in scopes and "*" not in scopes:
            # seed: 403 "Scope insufficient or you're not the resource owner".
            return self._error(403, f"Scope insufficient: this endpoint requires {scope}", "FORBIDDEN")
        return None

    # -- simulated state ---------------------------------------------------------------
    def create_batch(self, n: int, *, sender: str = "Acme", content: str = "Hello", settled: bool = True) -> str:
        """Add a batch of ``n`` synthetic numbers (``66800000000 + i``) without sending; its uuid.

        For scale tests: nothing per recipient is stored. With ``settled`` the batch
        was dispatched long enough ago that every recipient has its final status.
        """
        now = self.clock.now()
        back = timedelta(seconds=self.delivered_after + 1 if settled else 0)
        batch = _Batch(
            uuid=str(uuid.uuid4()),
            sender=sender,
            content=content,
            msisdns=_Synthetic(n),
            parts=analyse(content).parts,
            created_at=now - back,
            dispatch_at=now - back,
            scheduled=False,
        )
        with self.lock:
            self.batches[batch.uuid] = batch
        return batch.uuid

    def recipient_status(self, batch: _Batch, msisdn: str, now: datetime | None = None) -> str:
        """A recipient's status at ``now``, derived from its number and the clock."""
        if not THAI.fullmatch(msisdn):
            return "invalid"
        now = now or self.clock.now()
        if batch.cancelled or now < batch.dispatch_at + timedelta(seconds=self.delivered_after):
            return "pending"
        blocked_at = self.blocklist.get(_national(msisdn))
        if blocked_at is not None and blocked_at <= batch.created_at:
            return "blocked"
        return OUTCOMES.get(msisdn[-4:], "success")

    def message_status(self, batch: _Batch) -> str:
        now = self.clock.now()
        if batch.cancelled:
            return "cancelled"
        if now < batch.dispatch_at:
            return "scheduled" if batch.scheduled else "pending"
        if now < batch.dispatch_at + timedelta(seconds=self.sent_after):
            return "pending"
        return "sent"

    def _updated_at(self, batch: _Batch, status: str) -> datetime:
        if status == "pending":
            return batch.created_at
        return batch.dispatch_at + timedelta(seconds=self.delivered_after)

    def summary(self, batch: _Batch) -> list[dict[str, Any]]:
        """Per-status counts (``summary[]``/``drSummary``); cached once final."""
        settled = batch.cancelled or self.clock.now() >= batch.dispatch_at + timedelta(seconds=self.delivered_after)
        phase = "final" if settled else "pending"
        cached = batch.summaries.get(phase)
        if cached is not None:
            return cached
        counts = dict.fromkeys(RECIPIENT_STATUSES, 0)
        now = self.clock.now()
        for m in batch.msisdns:
            counts[self.recipient_status(batch, m, now)] += 1
        result = [{"status": s, "count": c} for s, c in counts.items() if c]
        if settled:
            batch.summaries[phase] = result
        return result

    def _control(self, req: EmuRequest) -> EmuResponse:
        """Extra control call: ``POST batches`` {n, sender?, content?} adds a synthetic batch."""
        if (req.method, req.path.rstrip("/")) == ("POST", "/_emulator/batches"):
            try:
                spec = req.json()
                n = int(spec["n"])
                if not 1 <= n <= MAX_MSISDNS:
                    raise ValueError(f"n must be 1-{MAX_MSISDNS}")
                batch_uuid = self.create_batch(
                    n, sender=str(spec.get("sender", "Acme")), content=str(spec.get("content", "Hello"))
                )
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                return json_response({"error": f"bad control request: {exc!r}"}, 400)
            return json_response({"uuid": batch_uuid}, 201)
        return super()._control(req)

    def state(self) -> dict[str, Any]:
        return {
            "credits": self.credits,
            "batches": [
                {"uuid": b.uuid, "status": self.message_status(b), "recipients": len(b.msisdns)}
                for b in self.batches.values()
            ],
        }

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.batches.clear()
            self.blocklist.clear()

    # -- the kit's control API: ME-SMS has no inbound messages or link tracking (ME-SMS docs) --
    def control_opt_out(self, phone: str) -> dict[str, Any]:
        """Put ``phone`` on the account's blocklist: later sends to it end ``blocked``."""
        msisdn = phone.lstrip("+")
        now = self.clock.now()
        with self.lock:
            self.blocklist[_national(msisdn)] = now
        return {"msisdn": msisdn, "blocked_at": _iso(now)}

    def control_messages(self) -> Iterable[dict[str, Any]]:
        for batch in self.batches.values():
            for msisdn in batch.msisdns:
                yield {
                    # The id the adapter gives each recipient: <batch uuid>:<msisdn>.
                    "id": f"{batch.uuid}:{msisdn}",
                    "to": "+66" + msisdn[1:] if msisdn.startswith("0") else "+" + msisdn,
                    "from": batch.sender,
                    "body": batch.content,
                    "status": self.recipient_status(batch, msisdn),
                }

    # -- send -------------------------------------------------------------------------
    def _parse_send(self, req: EmuRequest) -> tuple[dict[str, Any], EmuResponse | None]:
        try:
            body = req.json()
        except ValueError:
            return {}, self._error(400, "Invalid JSON body", "INVALID_PARAMETER")
        if not isinstance(body, dict):
            return {}, self._error(400, "Body must be a JSON object", "INVALID_PARAMETER")
        content = body.get("content")
        template_id = body.get("templateId")
        if content is None and template_id is None:
            return body, self._error(400, "content or templateId is required", "INVALID_PARAMETER")
        if content is not None and (not isinstance(content, str) or not content.strip()):
            return body, self._error(400, "content must be non-empty text", "INVALID_PARAMETER")
        if isinstance(content, str) and len(content) > MAX_CONTENT:
            return body, self._error(400, f"content exceeds {MAX_CONTENT} characters", "CONTENT_TOO_LONG")
        if content is None:
            template = self.templates.get(template_id) if isinstance(template_id, int) else None
            if template is None:
                return body, self._error(400, f"templateId {template_id!r} not found", "TEMPLATE_NOT_FOUND")
            variables = body.get("variables") or {}
            if not isinstance(variables, dict):
                return body, self._error(400, "variables must be an object", "INVALID_PARAMETER")
            # seed: variables fill placeholders like {{name}}.
            content = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: str(variables.get(m.group(1), "")), template)
        body["_content"] = content
        msisdns = body.get("msisdns")
        group = body.get("contactGroupId")
        if msisdns is None and group is None:
            return body, self._error(400, "msisdns or contactGroupId is required", "INVALID_PARAMETER")
        if msisdns is None:
            if group not in self.contact_groups:
                return body, self._error(404, f"contactGroupId {group!r} not found", "NOT_FOUND")
            msisdns = self.contact_groups[group]
        if not isinstance(msisdns, list) or not msisdns:
            return body, self._error(400, "msisdns must be a non-empty array", "INVALID_PARAMETER")
        if len(msisdns) > MAX_MSISDNS:
            return body, self._error(400, f"msisdns exceeds {MAX_MSISDNS:,} numbers", "TOO_MANY_RECIPIENTS")
        for i, m in enumerate(msisdns):
            # ASSUMPTION: a non-numeric entry fails the request (seed: 400 "invalid number");
            # a numeric one outside the Thai ranges is accepted and reported `invalid`.
            if not isinstance(m, str) or not m.isdigit():
                return body, self._error(400, f"msisdns[{i}] is not a phone number: {m!r}", "INVALID_MSISDN")
        body["_msisdns"] = msisdns
        sender = body.get("sender")
        if not isinstance(sender, str) or not sender:
            return body, self._error(400, "sender is required", "INVALID_PARAMETER")
        if len(sender) > MAX_SENDER:
            return body, self._error(400, f"sender exceeds {MAX_SENDER} characters", "INVALID_PARAMETER")
        if self.senders.get(sender) != "approved":
            return body, self._error(400, f"sender {sender!r} is not approved", "SENDER_NOT_APPROVED")
        when = body.get("scheduledTime")
        body["_when"] = None
        if when is not None:
            try:
                at = datetime.fromisoformat(str(when))
            except ValueError:
                at = None
            # seed: scheduledTime carries its offset, e.g. 2026-06-01T10:00:00+07:00.
            if at is None or at.tzinfo is None:
                return body, self._error(400, "scheduledTime must be ISO 8601 with an offset", "INVALID_PARAMETER")
            if at <= self.clock.now():
                return body, self._error(400, "scheduledTime must be in the future", "INVALID_PARAMETER")
            body["_when"] = at
        return body, None

    def _estimate(self, body: Mapping[str, Any]) -> dict[str, Any]:
        parts = analyse(body["_content"]).parts
        recipients = len(body["_msisdns"])
        # ASSUMPTION: one credit per part per recipient (seed: credits track parts).
        return {"recipients": recipients, "parts": parts, "credits": parts * recipients}

    @route("POST", r"/api/v2/sms/send")
    def send(self, req: EmuRequest) -> EmuResponse:
        if denied := self._auth(req, "sms:send"):
            return denied
        body, bad = self._parse_send(req)
        if bad:
            return bad
        est = self._estimate(body)
        if body.get("dryRun") is True:
            # seed: dryRun estimates cost and parts "without consuming credits or actually sending".
            return json_response({"dryRun": True, **est, "balance": self.credits})
        with self.lock:
            if est["credits"] > self.credits:
                return self._error(402, "Insufficient credits", "INSUFFICIENT_CREDITS")
            self.credits -= est["credits"]
            now = self.clock.now()
            when = body["_when"]
            batch = _Batch(
                uuid=str(uuid.uuid4()),
                sender=body["sender"],
                content=body["_content"],
                msisdns=list(body["_msisdns"]),
                parts=est["parts"],
                created_at=now,
                dispatch_at=when or now,
                scheduled=when is not None,
            )
            self.batches[batch.uuid] = batch
        # ME-SMS docs, send: "200 OK: Message has been queued" and a uuid; the rest of the shape is an
        # ASSUMPTION (counts as the preview gives them).
        return json_response(
            {
                "uuid": batch.uuid,
                "status": self.message_status(batch),
                "message": "Message has been queued",
                **est,
                "scheduledTime": _iso(when) if when else None,
            }
        )

    @route("POST", r"/api/v2/sms/preview")
    def preview(self, req: EmuRequest) -> EmuResponse:
        # ASSUMPTION: ME-SMS docs name preview but give no path; /sms/preview sits beside /sms/send.
        if denied := self._auth(req):
            return denied
        body, bad = self._parse_send(req)
        if bad:
            return bad
        return json_response({**self._estimate(body), "balance": self.credits})

    # -- messages ---------------------------------------------------------------------
    def _batch(self, batch_uuid: str) -> _Batch | None:
        with self.lock:
            return self.batches.get(batch_uuid)

    def _message(self, batch: _Batch, detail: bool = False) -> dict[str, Any]:
        status = self.message_status(batch)
        out: dict[str, Any] = {
            "uuid": batch.uuid,
            "sender": batch.sender,
            "content": batch.content,
            "status": status,
            "recipients": len(batch.msisdns),
            "parts": batch.parts,
            "createdAt": _iso(batch.created_at),
            "scheduledTime": _iso(batch.dispatch_at) if batch.scheduled else None,
        }
        if detail:
            # seed: drSummary (count per status) "once the send is complete".
            out["drSummary"] = {s["status"]: s["count"] for s in self.summary(batch)} if status == "sent" else None
        return out

    @route("POST", r"/api/v2/sms/(?P<batch_uuid>[^/]+)/cancel")
    def cancel(self, req: EmuRequest, batch_uuid: str) -> EmuResponse:
        # ASSUMPTION: the seed names no path; POST /sms/{uuid}/cancel, with the uuid /send gave.
        if denied := self._auth(req, "sms:send"):
            return denied
        with self.lock:
            batch = self.batches.get(batch_uuid)
            if batch is None:
                return self.not_found(req)
            # seed: "HTTP 400 or 409 with code: NOT_SCHEDULED / ALREADY_CANCELLED / ALREADY_PROCESSING".
            if batch.cancelled:
                return self._error(409, "This SMS has already been cancelled", "ALREADY_CANCELLED")
            if not batch.scheduled:
                return self._error(400, "Only scheduled SMS can be cancelled", "NOT_SCHEDULED")
            if self.clock.now() >= batch.dispatch_at:
                return self._error(409, "This SMS is already processing", "ALREADY_PROCESSING")
            batch.cancelled = True
            refund = batch.parts * len(batch.msisdns)
            self.credits += refund  # seed: "Credits are refunded after cancellation"
        return json_response({"uuid": batch.uuid, "status": "cancelled", "refundedCredits": refund})

    @route("GET", r"/api/v2/sms")
    def list_messages(self, req: EmuRequest) -> EmuResponse:
        # ASSUMPTION: the list's path and paging (page/limit, total) are not documented.
        if denied := self._auth(req):
            return denied
        q = req.params
        status = q.get("status")
        if status and status not in MESSAGE_STATUSES:
            return self._error(400, f"status must be one of {', '.join(MESSAGE_STATUSES)}", "INVALID_PARAMETER")
        try:
            page = int(q.get("page", 1))
            limit = int(q.get("limit", 20))
        except ValueError:
            return self._error(400, "page and limit must be integers", "INVALID_PARAMETER")
        if page < 1 or not 1 <= limit <= 100:
            return self._error(400, "page must be ≥ 1 and limit 1-100", "INVALID_PARAMETER")
        with self.lock:
            # seed: "most recent first".
            rows = sorted(self.batches.values(), key=lambda b: b.created_at, reverse=True)
        listed = [self._message(b) for b in rows]
        if status:
            listed = [m for m in listed if m["status"] == status]
        chunk = listed[(page - 1) * limit : page * limit]
        return json_response({"data": chunk, "total": len(listed), "page": page, "limit": limit})

    @route("GET", r"/api/v2/sms/(?P<batch_uuid>[^/]+)")
    def get_message(self, req: EmuRequest, batch_uuid: str) -> EmuResponse:
        if denied := self._auth(req):
            return denied
        batch = self._batch(batch_uuid)
        if batch is None:
            return self.not_found(req)
        return json_response(self._message(batch, detail=True))

    @route("GET", r"/api/v2/sms/(?P<batch_uuid>[^/]+)/recipients")
    def recipients(self, req: EmuRequest, batch_uuid: str) -> EmuResponse:
        if denied := self._auth(req):
            return denied
        batch = self._batch(batch_uuid)
        if batch is None:
            return self.not_found(req)
        q = req.params
        status = q.get("status")
        if status and status not in RECIPIENT_STATUSES:
            return self._error(400, f"status must be one of {', '.join(RECIPIENT_STATUSES)}", "INVALID_PARAMETER")
        try:
            limit = int(q.get("limit", 100))
            after = int(q["after"]) if "after" in q else None
            page = int(q.get("page", 1))
        except ValueError:
            return self._error(400, "after, page and limit must be integers", "INVALID_PARAMETER")
        if not 1 <= limit <= MAX_PAGE or (after is not None and after < 0) or page < 1:
            return self._error(400, f"limit must be 1-{MAX_PAGE}; after and page non-negative", "INVALID_PARAMETER")
        n = len(batch.msisdns)
        # ASSUMPTION: the cursor is the index after the last returned recipient, as a
        # string; the seed says only that the first page starts at 0.
        start = after if after is not None else (page - 1) * limit
        rows: list[dict[str, Any]] = []
        now = self.clock.now()
        stamps: dict[str, str] = {}
        i = start
        for i in itertools.islice(self._matching(batch, start, status, now), limit):
            msisdn = batch.msisdns[i]
            state = self.recipient_status(batch, msisdn, now)
            stamp = stamps.get(state) or stamps.setdefault(state, _iso(self._updated_at(batch, state)))
            # ASSUMPTION: a row's fields beyond msisdn and status are not documented.
            rows.append({"msisdn": msisdn, "status": state, "updatedAt": stamp})
        end = i + 1 if rows else n
        body: dict[str, Any] = {"data": rows, "summary": self.summary(batch)}
        if after is not None:
            # seed: "When using after, the response carries nextCursor + hasMore in place of total".
            more = any(True for _ in itertools.islice(self._matching(batch, end, status, now), 1))
            body["nextCursor"] = str(end) if more else None
            body["hasMore"] = more
        else:
            body["total"] = n if not status else sum(s["count"] for s in body["summary"] if s["status"] == status)
            body["page"] = page
        return json_response(body)

    def _matching(self, batch: _Batch, start: int, status: str | None, now: datetime) -> Iterator[int]:
        for i in range(start, len(batch.msisdns)):
            if status is None or self.recipient_status(batch, batch.msisdns[i], now) == status:
                yield i

    # -- account ----------------------------------------------------------------------
    @route("GET", r"/api/v2/credits")
    def credit_balance(self, req: EmuRequest) -> EmuResponse:
        # ASSUMPTION: ME-SMS docs name a balance call but no path; /credits.
        if denied := self._auth(req):
            return denied
        return json_response({"balance": self.credits, "unit": "credits"})

    @route("GET", r"/api/v2/senders")
    def list_senders(self, req: EmuRequest) -> EmuResponse:
        if denied := self._auth(req):
            return denied
        return json_response({"data": [{"name": n, "status": s} for n, s in self.senders.items()]})
