"""Kudosity V2, the "Transmit Message" API: ``x-api-key``, JSON, one recipient per call,
webhooks managed through ``/v2/webhook``.

Citations: OAS2 is the V2 OpenAPI (https://developers.kudosity.com/openapi/public-openapi.yaml), OAS1 the V1
OpenAPI (https://developers.kudosity.com/openapi/api_documentation.yml), "Kudosity docs" the docs' source
(https://github.com/kudosity/kudosity-dev-docs); each with the fact it gives.

>>> from smsrelay.config import ProviderSettings
>>> KudosityProvider(ProviderSettings("kudosity", api_key="k")).api
'v2'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from smsrelay.errors import (
    ConfigError,
    InvalidRequest,
    WebhookError,
)
from smsrelay.model import (
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
from smsrelay.providers.base import BatchOutcome, EventPage, Webhook
from smsrelay.providers.kudosity.base import (
    KudosityProvider,
    _Cursor,
    _hook_name,
    _int,
    _obj,
    _path_id,
    _rfc3339,
    _short,
    _str,
    kudosity_error,
    parse_time,
)
from smsrelay.providers.kudosity.tables import (
    DEFAULT_EVENTS,
    EVENT_TYPES,
    OPT_OUT_WORDS,
    V2_BASE_URL,
    V2_CAPABILITIES,
    V2_REASONS,
    V2_STATUS,
)
from smsrelay.redaction import redact
from smsrelay.webhooks import WebhookRequest, constant_time_equals, json_body

__all__ = ["KudosityV2"]


class KudosityV2(KudosityProvider):
    """Kudosity's V2 API (``api: v2``, the default)."""

    api: ClassVar[str] = "v2"
    capabilities = V2_CAPABILITIES
    default_base_url = V2_BASE_URL

    def _credentials(self) -> dict[str, Any]:
        return {"headers": {"x-api-key": self.settings.api_key, "Accept": "application/json"}}

    # -- sending ---------------------------------------------------------------------------
    def _submit(self, batch: Sequence[PreparedSms]) -> BatchOutcome:
        return BatchOutcome(None, [self._send_one(p) for p in batch])

    def _send_one(self, sms: PreparedSms) -> RecipientResult:
        if sms.message.send_at is not None:
            raise InvalidRequest("Kudosity's V2 API cannot schedule; use api: v1", field="send_at")
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
            count = int(data.get("sms_count") or parts)  # OAS2 SMSResponse: sms_count is a string
        except (TypeError, ValueError):
            count = parts
        status = V2_STATUS.get(raw.upper(), Status.QUEUED)
        return RecipientResult(to, status, str(data.get("id") or "") or None, count, key=key, raw=dict(data))

    def lookup(self, keys: Sequence[str]) -> dict[str, RecipientResult]:
        """V2: find messages by ``message_ref`` (the idempotency key), one ``GET /v2/sms`` each.

        One pass: OAS2 ``GET /v2/sms`` lists a message only seconds after it was accepted, so "not
        found" is no proof by itself; the client asks again, with backoff, for its
        reconciliation window before it takes absence as proof.
        """
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

    # -- status and polling ----------------------------------------------------------------
    def status(self, message_ids: Sequence[str]) -> list[Delivery]:
        """The current status of each message: ``GET /v2/sms/{id}``."""
        return [self._status_v2(mid) for mid in message_ids]

    def get_sms(self, message_id: str) -> dict[str, Any]:
        """V2 ``GET /v2/sms/{id}``, retrying the documented read-after-write 404 (OAS2)."""
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

    def poll_events(self, cursor: str | None, *, limit: int = 500) -> EventPage:
        """Final statuses and replies from ``GET /v2/sms``."""
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
            total = _int(data.get("total_records")) or 0  # OAS2 ListSMSResponse: a string
            if not chunk or len(rows) >= total:
                return rows
            page += 1

    def _poll_v2(self, cursor: str | None, limit: int) -> EventPage:
        """Replies are new IN messages; deliveries are OUT messages that reached a final status.

        The cursor keeps a watermark per direction (a created_at, second precision)
        and the ids already reported at or after it, so a resumed poll neither
        replays nor skips. The OUT watermark stays at the oldest message still in
        flight (for at most ``poll_window``), and neither passes ``now - read_lag``,
        since rows younger than that may not be listed yet (OAS2 ``GET /v2/sms/{id}``).
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

    # -- webhooks --------------------------------------------------------------------------
    def verify_webhook(self, request: WebhookRequest) -> None:
        """The ``token`` query parameter equals ``webhook_secret``."""
        secret = self.settings.webhook_secret
        if not secret:
            raise WebhookError(
                "webhook_secret is not set, so this Kudosity V2 webhook cannot be authenticated",
                provider=self.name,
                status_code=401,
            )
        tokens = [v for k, v in request.params if k == "token"]
        # Kudosity docs (about-webhooks): V2 signs no webhooks; the URL's token is the credential.
        if len(tokens) != 1 or not constant_time_equals(tokens[0], secret):
            raise WebhookError("missing or wrong webhook token", provider=self.name, status_code=401)

    def _parse(self, request: WebhookRequest) -> list[Event]:
        return self.parse_v2_event(json_body(request, self.name))

    def parse_v2_event(self, data: Any) -> list[Event]:
        """Core events from one decoded V2 webhook body (OAS2, webhooks)."""
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
                    # Kudosity docs (about-webhooks): redeliveries are byte-identical, so id+status+time dedupes.
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
                # OAS2 webhook SMS_INBOUND: replies thread through mo.last_message.message_ref.
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
        body = {
            "name": _hook_name(name),
            "url": self._hook_url(url),
            "filter": {"event_type": self._event_types(events)},
        }
        return self._webhook(self.transport.request("POST", "/v2/webhook", json=body).json())

    def list_webhooks(self) -> list[Webhook]:
        data = self.transport.request("GET", "/v2/webhook").json()
        return [self._webhook(h) for h in data.get("webhooks") or []]

    def get_webhook(self, webhook_id: str) -> Webhook:
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
        """``PUT /v2/webhook/{id}``: a full replace, so every current field is sent again (OAS2 WebhookRequest)."""
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
        self.transport.request("DELETE", f"/v2/webhook/{_path_id(webhook_id)}")

    def check(self) -> None:
        """``GET /v2/sms?limit=1``, as https://github.com/kudosity/kudosity-claude-sms-plugin verifies V2 keys."""
        self.transport.request("GET", "/v2/sms", params={"limit": "1"})
