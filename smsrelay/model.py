"""The one message model and the one event model, shared by every provider.

>>> msg = Message("Hi {{ name }}", sender="Acme")
>>> Recipient("+61491570156", vars={"name": "Ann"}).to
'+61491570156'
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

__all__ = [
    "Capabilities",
    "Delivery",
    "Encoding",
    "Event",
    "LinkHit",
    "Message",
    "OptOut",
    "PreparedSms",
    "Recipient",
    "RecipientResult",
    "Reply",
    "SendResult",
    "Status",
    "event_from_dict",
    "event_id_for",
    "event_to_dict",
]


class Status(enum.StrEnum):
    """The canonical lifecycle: ``scheduled → queued → sent → delivered``.

    ``failed``, ``expired``, ``rejected``, ``cancelled`` and ``unknown`` are final too.

    >>> Status.DELIVERED.final, Status.SENT.final
    (True, False)
    """

    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @property
    def final(self) -> bool:
        """True when no later report may change this status."""
        return self in _FINAL

    @property
    def ok(self) -> bool:
        """True for the statuses on the way to, or at, delivery."""
        return self in (Status.SCHEDULED, Status.QUEUED, Status.SENT, Status.DELIVERED)


_FINAL = frozenset(
    {
        Status.DELIVERED,
        Status.FAILED,
        Status.EXPIRED,
        Status.REJECTED,
        Status.CANCELLED,
        Status.UNKNOWN,
    }
)

Encoding = Literal["GSM-7", "UCS-2"]


@dataclass(frozen=True)
class Recipient:
    """One recipient, with the template variables that are only theirs.

    ``key`` is the caller's idempotency key for this recipient; when None, the
    client derives one from the message and the recipient.
    """

    to: str
    vars: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None


@dataclass(frozen=True)
class Message:
    """What to send: a jinja2 body template and the options of the send.

    ``ref`` is the idempotency context of the whole send (e.g. an Airflow task
    instance, a Salesforce record); each recipient's key is derived from it.
    ``options`` holds provider-specific fields (e.g. Kaleyra ``type``).
    """

    body: str
    sender: str | None = None
    vars: Mapping[str, Any] = field(default_factory=dict)
    ref: str | None = None
    send_at: datetime | None = None
    validity: timedelta | None = None
    track_links: bool = False
    priority: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PreparedSms:
    """One rendered, validated SMS, ready for a provider adapter.

    ``to`` is E.164 with ``+``; adapters convert it to their wire format.
    """

    to: str
    body: str
    key: str
    encoding: Encoding
    parts: int
    message: Message


@dataclass(frozen=True)
class RecipientResult:
    """The outcome of one recipient of a send.

    ``message_id`` is None where the provider gives only a batch id (ME-SMS), or
    where the recipient was rejected before sending; ``error`` then says why.

    Besides accepted (``status.ok``) and refused (``rejected``), a result can be:

    - **in doubt** (``in_doubt``, status ``unknown``): the request may have reached
      the provider and it could not tell us whether it took the message. smsrelay
      never sends it again on its own; ``key`` settles it later (``Client.reconcile``).
    - **not sent, retry later** (``retry_after`` set, status ``failed``): the provider
      throttled the request (429) beyond the client's longest wait.
    - **not sent** (status ``failed``, no ``retry_after``): the network failed before
      the request was written (e.g. connection refused); sending again is safe.

    >>> RecipientResult("+61491570156", Status.UNKNOWN, key="k1", in_doubt=True).retryable
    False
    """

    to: str
    status: Status
    message_id: str | None = None
    parts: int = 0
    error: str | None = None
    key: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    in_doubt: bool = False
    retry_after: timedelta | None = None

    @property
    def accepted(self) -> bool:
        """True when the provider took the message."""
        return self.status.ok

    @property
    def retryable(self) -> bool:
        """True when the message was certainly not sent and may be sent again as it is.

        Throttled (``retry_after``) and network failures before the request was
        written; never an in-doubt result, and never a refusal of the message itself.
        """
        return self.status is Status.FAILED and not self.in_doubt and not self.message_id


@dataclass(frozen=True)
class SendResult:
    """A send: the provider's batch id (if any) and one result per recipient.

    >>> r = SendResult(provider="sandbox", batch_id=None, results=())
    >>> r.all_accepted
    True
    """

    provider: str
    batch_id: str | None
    results: tuple[RecipientResult, ...]
    dry_run: bool = False

    @property
    def accepted(self) -> list[RecipientResult]:
        return [r for r in self.results if r.accepted]

    @property
    def failed(self) -> list[RecipientResult]:
        return [r for r in self.results if not r.accepted]

    @property
    def all_accepted(self) -> bool:
        return all(r.accepted for r in self.results)

    @property
    def message_ids(self) -> list[str]:
        return [r.message_id for r in self.results if r.message_id]

    @property
    def in_doubt(self) -> list[RecipientResult]:
        """Results the provider may or may not have accepted; settle them by ``key``."""
        return [r for r in self.results if r.in_doubt]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict, e.g. for XCom, a CLI ``--json`` or Action outputs."""
        return {
            "provider": self.provider,
            "batch_id": self.batch_id,
            "dry_run": self.dry_run,
            "results": [
                {
                    "to": r.to,
                    "message_id": r.message_id,
                    "status": r.status.value,
                    "parts": r.parts,
                    "error": r.error,
                    "key": r.key,
                    "in_doubt": r.in_doubt,
                    "retry_after": r.retry_after.total_seconds() if r.retry_after is not None else None,
                }
                for r in self.results
            ],
        }


def event_id_for(provider: str, kind: str, *parts: object) -> str:
    """A stable event id from the fields that identify an event.

    Used where a provider gives no id of its own, so a redelivery dedupes.

    >>> event_id_for("sandbox", "delivery", "m1", "delivered") == event_id_for(
    ...     "sandbox", "delivery", "m1", "delivered")
    True
    """
    blob = json.dumps([provider, kind, *[str(p) for p in parts]], ensure_ascii=False)
    return f"{provider}:{kind}:" + hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class _EventBase:
    event_id: str
    provider: str
    phone: str
    occurred_at: datetime
    message_id: str | None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Delivery(_EventBase):
    """A delivery report: the message ``message_id`` reached ``status``."""

    status: Status = Status.UNKNOWN
    raw_status: str | None = None
    reason: str | None = None
    message_ref: str | None = None
    batch_id: str | None = None
    parts: int | None = None

    @property
    def final(self) -> bool:
        return self.status.final

    kind: Literal["delivery"] = "delivery"


@dataclass(frozen=True)
class LinkHit(_EventBase):
    """A recipient opened a tracked link in message ``message_id``."""

    url: str | None = None
    hits: int = 1
    message_ref: str | None = None
    kind: Literal["link_hit"] = "link_hit"


@dataclass(frozen=True)
class OptOut(_EventBase):
    """``phone`` opted out (e.g. replied STOP); never send to it again."""

    source: str = "reply"
    text: str | None = None
    kind: Literal["opt_out"] = "opt_out"


@dataclass(frozen=True)
class Reply(_EventBase):
    """An inbound SMS from ``phone``; ``message_id`` is the reply's own id.

    ``in_reply_to`` is the provider id of the outbound message it answers, and
    ``message_ref`` that message's reference, where the provider threads replies.
    """

    text: str = ""
    to: str | None = None
    in_reply_to: str | None = None
    message_ref: str | None = None
    kind: Literal["reply"] = "reply"


Event = Delivery | Reply | LinkHit | OptOut


@dataclass(frozen=True)
class Capabilities:
    """What a provider can do. The client checks these and raises ``Unsupported``.

    ``bulk_max`` is the most recipients one API call takes (1: no bulk).
    ``event_poll``: the adapter lists events (``Provider.poll_events``); without it the
    feed follows messages by id (``status``). ``follow_sends``: its event listing needs
    the sent ids handed over first (``Provider.follow_sends``, Kudosity V1).

    The client also refuses locally, in every integration and in dry runs, what the
    provider would refuse (see :mod:`smsrelay.preflight`): ``requires_sender`` (no
    send without a sender), ``countries`` (the ISO 3166 regions it reaches; ``None``:
    any) and ``sender_max_chars`` (the longest alphanumeric sender it takes).
    """

    bulk_max: int = 1
    concurrency: int = 8
    schedule: bool = False
    cancel: bool = False
    dry_run: bool = False
    status_poll: bool = False
    dlr_push: bool = False
    inbound_push: bool = False
    inbound_poll: bool = False
    event_poll: bool = False
    follow_sends: bool = False
    idempotency: bool = False
    lookup_by_ref: bool = False
    balance: bool = False
    link_tracking: bool = False
    max_chars: int = 1600
    webhook_api: bool = False
    requires_sender: bool = False
    countries: frozenset[str] | None = None
    sender_max_chars: int | None = None

    def flags(self) -> dict[str, Any]:
        """The flags as a dict, e.g. for the capability matrix in the docs."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


_EVENT_TYPES: dict[str, type[Delivery] | type[Reply] | type[LinkHit] | type[OptOut]] = {
    "delivery": Delivery,
    "reply": Reply,
    "link_hit": LinkHit,
    "opt_out": OptOut,
}


def event_to_dict(event: Event) -> dict[str, Any]:
    """A JSON-safe dict of an event; :func:`event_from_dict` reads it back.

    >>> from datetime import datetime, UTC
    >>> e = OptOut("e1", "sandbox", "+61491570156", datetime(2026, 1, 1, tzinfo=UTC), None)
    >>> event_from_dict(event_to_dict(e)) == e
    True
    """
    out: dict[str, Any] = {}
    for name in event.__dataclass_fields__:
        value = getattr(event, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Status):
            value = value.value
        elif isinstance(value, Mapping):
            value = dict(value)
        out[name] = value
    return out


def event_from_dict(data: Mapping[str, Any]) -> Event:
    """Rebuild an event from :func:`event_to_dict` output."""
    cls = _EVENT_TYPES[data["kind"]]
    kw = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
    kw["occurred_at"] = datetime.fromisoformat(kw["occurred_at"])
    if "status" in kw:
        kw["status"] = Status(kw["status"])
    return cls(**kw)
