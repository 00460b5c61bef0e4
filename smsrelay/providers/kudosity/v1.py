"""Kudosity V1, the classic "Transmit SMS" API: HTTP Basic ``api_key:api_secret``, form
bodies, ``.json`` paths, up to 500 recipients per call, and signed GET callbacks.

Citations: OAS2 is the V2 OpenAPI (https://developers.kudosity.com/openapi/public-openapi.yaml), OAS1 the V1
OpenAPI (https://developers.kudosity.com/openapi/api_documentation.yml), "Kudosity docs" the docs' source
(https://github.com/kudosity/kudosity-dev-docs); each with the fact it gives.

>>> from smsrelay.config import ProviderSettings
>>> p = KudosityProvider(ProviderSettings("kudosity", api_key="k", api_secret="s", options={"api": "v1"}))
>>> p.capabilities.bulk_max, p.api
(500, 'v1')
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Hashable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from smsrelay.clock import Clock
from smsrelay.errors import (
    ConfigError,
    InvalidRequest,
    NotCancellable,
    NotFound,
    ProviderServerError,
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
from smsrelay.providers.base import Balance, BatchOutcome, EventPage
from smsrelay.providers.batching import body_key, plan_by_body
from smsrelay.providers.kudosity._php import php_json_of_query
from smsrelay.providers.kudosity.base import KudosityProvider, _Cursor, _int, _opts, _req, _v1_time, log, parse_time
from smsrelay.providers.kudosity.tables import OPT_OUT_WORDS, V1_BASE_URL, V1_CAPABILITIES, V1_STATUS
from smsrelay.webhooks import WebhookRequest, constant_time_equals

__all__ = ["KudosityV1", "v1_signature"]


def v1_signature(query: str, secret: str) -> str:
    """The ``x-transmitsms-signature`` of a V1 callback's raw query string.

    HMAC-SHA256 keyed with the API secret over :func:`php_json_of_query`, in hex.

    >>> len(v1_signature("message_id=1&status=delivered", "secret"))
    64
    """
    payload = php_json_of_query(query).encode("utf-8")
    return hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).hexdigest()


class KudosityV1(KudosityProvider):
    """Kudosity's V1 API (``api: v1``); needs ``api_secret``."""

    api: ClassVar[str] = "v1"
    capabilities = V1_CAPABILITIES
    default_base_url = V1_BASE_URL

    def __init__(self, settings: Any, *, clock: Clock | None = None) -> None:
        if not settings.api_secret:
            raise ConfigError(
                "Kudosity's V1 API needs api_secret as well as api_key (Settings → API Settings); "
                "set it in the config or as SMSRELAY_KUDOSITY_API_SECRET",
                field="api_secret",
                provider=self.name,
            )
        super().__init__(settings, clock=clock)
        self._seen_lock = threading.Lock()
        # Sends whose delivery reports poll_events must still fetch (get-sms-sent
        # needs a message_id); handed into the next cursor, where they stay durable.
        self._follow: set[str] = set()

    def _credentials(self) -> dict[str, Any]:
        return {"auth": (self.settings.api_key, self.settings.api_secret)}

    # -- sending ---------------------------------------------------------------------------
    def plan_requests(self, batch: Sequence[PreparedSms]) -> list[list[PreparedSms]]:
        """One body to ≤500 numbers a request (``providers/batching.py``)."""
        return plan_by_body(batch, self.capabilities.bulk_max)

    def request_key(self, sms: PreparedSms) -> Hashable:
        """Messages share a request only with equal body, sender, schedule and options."""
        return body_key(sms)

    def _submit(self, batch: Sequence[PreparedSms]) -> BatchOutcome:
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
            batch_id, rs = self._send_group(group)
            if batch_id:
                batch_ids.append(batch_id)
            results.update((r.key or r.to, r) for r in rs)
        return BatchOutcome(",".join(batch_ids) or None, [results[p.key] for p in batch])

    def _send_group(self, group: list[PreparedSms]) -> tuple[str | None, list[RecipientResult]]:
        first = group[0]
        m = first.message
        form: dict[str, str] = {
            "message": first.body,
            "to": ",".join(to_wire(p.to, "digits") for p in group),
            "from": self._sender(first),
        }
        now = self.clock.now()
        if m.send_at is not None and m.send_at > now:
            form["send_at"] = _v1_time(m.send_at)  # OAS1 send-sms send_at: YYYY-MM-DD HH:MM:SS, UTC
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
                "tracked_link_url needs the placeholder [tracked-link] in the message (OAS1 send-sms tracked_link_url)",
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
            # OAS1 send-sms: "invalid numbers will be ignored"; ask which were taken.
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
        with self._seen_lock:
            self._follow.update(campaigns)

    def follow_sends(self, message_ids: Sequence[str]) -> None:
        """The feed hands recorded sends over (``capabilities.follow_sends``): follow them."""
        self.follow(message_ids)

    # -- status and polling ----------------------------------------------------------------
    def status(self, message_ids: Sequence[str]) -> list[Delivery]:
        """The current status of each message: ``get-sms-sent``."""
        return self._status_v1(message_ids)

    def _v1_recipients(self, message_id: str, delivery: str | None = None) -> list[dict[str, Any]]:
        """Every recipient of a V1 send with its delivery status (``get-sms-sent``, paged)."""
        return self._v1_sent(message_id, delivery)[1]

    def _v1_sent(self, message_id: str, delivery: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """``get-sms-sent``, every page: the send's ``message`` block and its recipients."""
        rows: list[dict[str, Any]] = []
        message: dict[str, Any] = {}
        page = 1
        while True:
            form = {"message_id": message_id, "page": str(page), "max": "100"}  # OAS1 pagination: max ≤ 100
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
        """Replies from ``get-sms-responses``, then delivery reports from ``get-sms-sent``
        for the sends being followed (see :meth:`follow`)."""
        return self._poll_v1(cursor, limit)

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
                # The emulator and Kudosity answer FIELD_INVALID for an unknown message_id (OAS1 error codes).
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
            # OAS1 get-sms-sent: allow up to 72 h for a DLR; past poll_window none will come.
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

    # -- callbacks -------------------------------------------------------------------------
    def verify_webhook(self, request: WebhookRequest) -> None:
        """The ``x-transmitsms-signature`` header is the HMAC of the query (:func:`v1_signature`)."""
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

    def _parse(self, request: WebhookRequest) -> list[Event]:
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

    # -- account ---------------------------------------------------------------------------
    def cancel(self, message_id: str) -> None:
        """V1 ``cancel-sms``: cancel a scheduled send (every recipient of it)."""
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
        data = self.transport.request("GET", "/get-balance.json").json()
        try:
            amount = Decimal(str(data.get("balance")))
        except InvalidOperation:
            raise ProviderServerError(f"kudosity get-balance answered {data}", provider=self.name) from None
        return Balance(amount, data.get("currency"), raw=data)

    def stats(self, message_id: str) -> dict[str, Any]:
        """V1 ``get-sms-stats``: counts of delivered, bounced, replies, opt-outs and link hits."""
        campaign = message_id.partition(":")[0]
        data = self.transport.request("POST", "/get-sms-stats.json", data={"message_id": campaign}, idempotent=True)
        stats: dict[str, Any] = data.json().get("stats") or {}
        return stats

    def format_number(self, msisdn: str, countrycode: str) -> dict[str, Any]:
        """V1 ``format-number``: Kudosity's own reading of a number in a country."""
        form = {"msisdn": "".join(ch for ch in msisdn if ch.isdigit()), "countrycode": countrycode}
        data = self.transport.request("POST", "/format-number.json", data=form, idempotent=True).json()
        number: dict[str, Any] = data.get("number") or {}
        return number

    def check(self) -> None:
        """``get-balance``, as https://github.com/kudosity/kudosity-claude-sms-plugin verifies V1 credentials."""
        self.transport.request("GET", "/get-balance.json")
