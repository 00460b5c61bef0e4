"""What Kudosity's two adapters share: the base class, error mapping, time and body readers.

Sources are cited as OAS2 (the V2 OpenAPI, https://developers.kudosity.com/openapi/public-openapi.yaml),
OAS1 (the V1 OpenAPI, https://developers.kudosity.com/openapi/api_documentation.yml) and the docs'
source (https://github.com/kudosity/kudosity-dev-docs), each with the fact it gives.
"""

from __future__ import annotations

import abc
import base64
import functools
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import requests

from smsrelay.clock import Clock
from smsrelay.errors import (
    ConfigError,
    InvalidRequest,
    SmsRelayError,
    Unsupported,
    WebhookError,
)
from smsrelay.model import (
    Event,
    PreparedSms,
    RecipientResult,
    Status,
)
from smsrelay.providers.base import Balance, BatchOutcome, Provider, Webhook
from smsrelay.providers.kudosity.tables import ERRORS, V2_BASE_URL, V2_CAPABILITIES
from smsrelay.redaction import redact
from smsrelay.transport import Transport, error_for_status
from smsrelay.webhooks import WebhookRequest

log = logging.getLogger("smsrelay.providers.kudosity")


# -- time ------------------------------------------------------------------------------
def parse_time(value: Any) -> datetime | None:
    """A tolerant RFC 3339 / V1 ``YYYY-MM-DD HH:MM:SS`` parser; always UTC (V1 timestamps doc).

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
    # https://github.com/kudosity/kudosity-dev-docs (API Overview, timestamps): V1 times are UTC, without a zone.
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _v1_time(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _rfc3339(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    """Kudosity: ``KudosityProvider(settings)`` is a :class:`KudosityV2` (``api: v2``, the
    default) or a :class:`KudosityV1` (``api: v1``, needs ``api_secret``).

    This base holds what both APIs share (settings, transport, errors, the sender) and
    refuses, naming the other API, what only one of them has.

    >>> from smsrelay.config import ProviderSettings
    >>> p = KudosityProvider(ProviderSettings("kudosity", api_key="k", api_secret="s", options={"api": "v1"}))
    >>> p.capabilities.bulk_max
    500
    """

    name: ClassVar[str] = "kudosity"
    api: ClassVar[str] = "v2"
    transport: Transport
    capabilities = V2_CAPABILITIES
    wire_format = "digits"  # OAS2 SendSMSRequest.recipient: E.164 digits, no "+"
    options: ClassVar[dict[str, type]] = {
        "api": str,
        "read_lag": float,  # seconds a fresh V2 message may 404 (OAS2 GET /v2/sms/{id})
        "max_chars": int,
        "dlr_callback": str,
        "reply_callback": str,
        "link_hits_callback": str,
        "poll_window": float,  # hours of V2 history polling looks back for final statuses
    }
    required: ClassVar[tuple[str, ...]] = ("api_key",)
    default_base_url = V2_BASE_URL
    # Kudosity docs (API Overview, rate limiting): "15 calls per sec" per account; the rest is dropped.
    default_rate_limit: ClassVar[float | None] = 15.0
    default_rate_window: ClassVar[tuple[int, float] | None] = (15, 1.0)

    def __new__(cls, settings: Any, *, clock: Clock | None = None) -> KudosityProvider:
        # The registry's one name: the `api` option picks the class. A subclass of this
        # base written before the split (overriding, say, `lookup`) gets the API's methods
        # under its own: a class of both, made once per pair.
        if cls is KudosityProvider:
            cls = api_class(settings)
        elif not issubclass(cls, _api_classes()):
            cls = _with_api(cls, api_class(settings))
        return super().__new__(cls)

    def __init__(self, settings: Any, *, clock: Clock | None = None) -> None:
        super().__init__(settings, clock=clock)
        self.read_lag = float(settings.option("read_lag", 5.0))
        self.poll_window = timedelta(hours=float(settings.option("poll_window", 72.0)))
        self.transport = self.make_transport(
            settings.base_url or self.default_base_url, error_mapper=kudosity_error, **self._credentials()
        )

    @abc.abstractmethod
    def _credentials(self) -> dict[str, Any]:
        """The transport's ``headers`` and ``auth`` for this API."""

    def __repr__(self) -> str:
        return f"KudosityProvider(api={self.api!r}, base_url={redact(self.transport.base_url)!r})"

    def close(self) -> None:
        self.transport.close()

    @property
    def requests_made(self) -> int:
        """HTTP requests made so far (benchmarks and tests count them)."""
        return self.transport.requests_made

    def send(self, batch: Sequence[PreparedSms], *, dry_run: bool = False) -> BatchOutcome:
        """V2: one ``POST /v2/sms`` per message. V1: one ``send-sms`` per distinct body."""
        if not batch:
            return BatchOutcome(None, [])
        if dry_run:
            return BatchOutcome(None, [RecipientResult(p.to, Status.QUEUED, None, p.parts, key=p.key) for p in batch])
        return self._submit(batch)

    @abc.abstractmethod
    def _submit(self, batch: Sequence[PreparedSms]) -> BatchOutcome:
        """Send a non-empty batch, for real."""

    def _sender(self, sms: PreparedSms) -> str:
        sender = sms.message.sender or self.settings.sender
        if not sender:
            raise InvalidRequest(
                "Kudosity needs a sender: set `sender` in the settings or pass sender=…",
                field="sender",
                provider=self.name,
            )
        return sender.lstrip("+") if sender.lstrip("+").isdigit() else sender

    def parse_webhook(self, request: WebhookRequest) -> list[Event]:
        """V2 JSON events (``SMS_STATUS``, ``SMS_INBOUND``, ``LINK_HIT``, ``OPT_OUT``) or V1 GET callbacks."""
        try:
            return self._parse(request)
        except WebhookError:
            raise
        except Exception as exc:  # a malformed payload is a 400, never a crash
            raise WebhookError(
                f"malformed Kudosity webhook: {type(exc).__name__}: {redact(str(exc))[:200]}",
                provider=self.name,
                status_code=400,
            ) from None

    @abc.abstractmethod
    def _parse(self, request: WebhookRequest) -> list[Event]:
        """Events from an authentic webhook request; any exception becomes a 400."""

    # -- what one API has and the other lacks: refused, naming the API that has it ----------
    def _lacks(self, what: str) -> Unsupported:
        other = "v1" if self.api == "v2" else "v2"
        return Unsupported(f"Kudosity's {self.api.upper()} API has no {what}; use api: {other}", provider=self.name)

    def follow(self, message_ids: Sequence[str]) -> None:
        """V1: poll these sends' delivery reports in the event feed (see ``KudosityV1.follow``)."""
        raise self._lacks("get-sms-sent")

    def lookup(self, keys: Sequence[str]) -> dict[str, RecipientResult]:
        raise self._lacks("lookup by reference")

    def get_sms(self, message_id: str) -> dict[str, Any]:
        """V2 ``GET /v2/sms/{id}``."""
        raise self._lacks("GET /v2/sms/{id}")

    def replies(self, message_id: str | None = None, *, start: datetime | None = None) -> list[dict[str, Any]]:
        """V1 ``get-sms-responses``."""
        raise self._lacks("get-sms-responses")

    def register_webhook(self, url: str, *, events: Sequence[str] | None = None, name: str | None = None) -> Webhook:
        raise self._lacks("webhook API (set callbacks per send or in the account settings)")

    def list_webhooks(self) -> list[Webhook]:
        raise self._lacks("webhook API")

    def get_webhook(self, webhook_id: str) -> Webhook:
        raise self._lacks("webhook API")

    def update_webhook(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        name: str | None = None,
        rate_limit: int | None = None,
    ) -> Webhook:
        raise self._lacks("webhook API")

    def delete_webhook(self, webhook_id: str) -> None:
        raise self._lacks("webhook API")

    def cancel(self, message_id: str) -> None:
        raise self._lacks("cancel")

    def balance(self) -> Balance:
        raise self._lacks("balance call")

    def stats(self, message_id: str) -> dict[str, Any]:
        """V1 ``get-sms-stats``."""
        raise self._lacks("get-sms-stats")

    def format_number(self, msisdn: str, countrycode: str) -> dict[str, Any]:
        """V1 ``format-number``."""
        raise self._lacks("format-number")


def _api_classes() -> tuple[type[KudosityProvider], ...]:
    """The two API adapters (imported late: they import this module)."""
    from smsrelay.providers.kudosity.v1 import KudosityV1
    from smsrelay.providers.kudosity.v2 import KudosityV2

    return (KudosityV1, KudosityV2)


@functools.cache
def _with_api(cls: type[KudosityProvider], api: type[KudosityProvider]) -> type[KudosityProvider]:
    """``cls`` on top of ``api``: its overrides first, then the API adapter's methods."""
    return type(cls.__name__, (cls, api), {"__module__": cls.__module__, "__qualname__": cls.__qualname__})


def api_class(settings: Any) -> type[KudosityProvider]:
    """The adapter class for the settings' ``api`` option (``v2`` by default)."""
    api = str(settings.option("api", "v2")).lower().strip()
    if api == "v2":
        from smsrelay.providers.kudosity.v2 import KudosityV2

        return KudosityV2
    if api == "v1":
        from smsrelay.providers.kudosity.v1 import KudosityV1

        return KudosityV1
    raise ConfigError(f"api must be v2 or v1, got {api!r}", field="kudosity.api", provider="kudosity")


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
