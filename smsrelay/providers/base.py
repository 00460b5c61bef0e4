"""The provider contract: what every adapter implements, and its capability flags.

An adapter speaks one provider's wire format and nothing else: it knows no
integration, and it never renders templates or picks idempotency keys (the client
does). A method the provider cannot serve raises ``Unsupported``.
"""

from __future__ import annotations

import abc
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from smsrelay.clock import Clock, SystemClock
from smsrelay.errors import Unsupported
from smsrelay.model import Capabilities, Delivery, Event, PreparedSms, RecipientResult
from smsrelay.phone import WireFormat

if TYPE_CHECKING:
    from smsrelay.config import ProviderSettings
    from smsrelay.transport import ErrorMapper, Limiter, Transport
    from smsrelay.webhooks import WebhookRequest

__all__ = ["Balance", "BatchOutcome", "EventPage", "Provider", "Quote", "Webhook"]


@dataclass(frozen=True)
class BatchOutcome:
    """What one provider call returned: a batch id, and a result per recipient."""

    batch_id: str | None
    results: Sequence[RecipientResult]


@dataclass(frozen=True)
class EventPage:
    """A page of polled events and the cursor to ask from next time.

    Iterating a page yields its events.
    """

    events: Sequence[Event]
    cursor: str | None
    more: bool = False

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)


@dataclass(frozen=True)
class Balance:
    """The account's credit, in the provider's unit."""

    amount: Decimal
    currency: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Quote:
    """What a send would cost, where the provider can tell."""

    amount: Decimal
    currency: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Webhook:
    """A webhook subscription at the provider. ``url`` is shown redacted in reprs."""

    id: str
    url: str = field(repr=False)
    events: tuple[str, ...] = ()
    name: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


class Provider(abc.ABC):
    """Base of every adapter. Subclasses set ``name``, ``capabilities`` and ``wire_format``.

    ``options`` declares the provider-specific settings and their types, so that
    config files are validated before anything is sent (a typo is an error).
    ``required`` lists the credentials that must be set.
    """

    name: ClassVar[str]
    capabilities: Capabilities = Capabilities()
    wire_format: ClassVar[WireFormat] = "e164"
    options: ClassVar[Mapping[str, type]] = {}
    required: ClassVar[tuple[str, ...]] = ("api_key",)
    default_base_url: ClassVar[str] = ""
    default_rate_limit: ClassVar[float | None] = None
    # The documented limit as the provider words it, "N requests per period (s)": paced as a
    # sliding window, which lets a short send go as fast as that window allows.
    default_rate_window: ClassVar[tuple[int, float] | None] = None
    # The adapter's HTTP, built by :meth:`make_transport`; None for one that speaks no HTTP.
    transport: Transport | None = None

    def __init__(self, settings: ProviderSettings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()

    def make_transport(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        error_mapper: ErrorMapper | None = None,
        limiter: Limiter | None = None,
        min_read_timeout: float = 0.0,
    ) -> Transport:
        """The one transport factory: every adapter's HTTP with the same defaults from its settings.

        Connect within ``min(5 s, timeout)``, read within ``timeout`` (at least
        ``min_read_timeout``), retry ``retries`` times, pace at ``rate_limit`` (else
        the adapter's documented ``default_rate_window`` or ``default_rate_limit``) unless ``limiter`` is given,
        in a bucket shared across processes when ``rate_limit_store`` is set (it wins),
        and pool a connection per concurrent worker.
        """
        # Imported here: requests loads only when an adapter speaks HTTP (the sandbox does not).
        from smsrelay.shared_limit import shared_limiter
        from smsrelay.transport import RetryPolicy, Transport, WindowLimiter

        settings = self.settings
        concurrency = settings.concurrency or self.capabilities.concurrency
        rate = settings.rate_limit or self.default_rate_limit
        if limiter is None and not settings.rate_limit and self.default_rate_window:
            limiter = WindowLimiter(*self.default_rate_window, clock=self.clock)
        # rate_limit_store: one schedule for the account across processes, in place of this process's.
        limiter = shared_limiter(settings, self.name, base_url, rate, self.clock) or limiter
        return Transport(
            base_url,
            provider=self.name,
            headers=headers,
            auth=auth,
            timeout=(min(5.0, settings.timeout), max(settings.timeout, min_read_timeout)),
            retry=RetryPolicy(attempts=max(1, settings.retries)),
            rate_limit=rate,
            limiter=limiter,
            pool_size=max(16, concurrency),
            error_mapper=error_mapper,
            clock=self.clock,
        )

    def take_turn(self) -> None:
        """Wait for the rate limit's turn of this thread's next request now, not when it is made.

        The client claims a request's keys once its turn has come, so a crash while it waits
        leaves them unclaimed.
        """
        if self.transport is not None:
            self.transport.take_turn()

    @property
    def limiter(self) -> Limiter | None:
        """What paces this adapter's requests, if anything does (``Client.estimate`` asks it)."""
        return self.transport.limiter if self.transport is not None else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.settings.base_url or self.default_base_url!r})"

    # -- sending ---------------------------------------------------------
    @abc.abstractmethod
    def send(self, batch: Sequence[PreparedSms], *, dry_run: bool = False) -> BatchOutcome:
        """Submit up to ``capabilities.bulk_max`` messages in one provider call.

        Raise ``TransportError(request_sent=True)`` or ``ProviderServerError`` when
        the outcome is unknown; the client then reconciles with :meth:`lookup`.
        """

    def plan_requests(self, batch: Sequence[PreparedSms]) -> list[list[PreparedSms]]:
        """The requests a send takes: chunks of ``capabilities.bulk_max``, in order.

        An adapter whose one request carries one body for many numbers (ME-SMS, Kaleyra)
        plans one chunk per distinct body instead (``providers/batching.py``).
        """
        size = max(1, self.capabilities.bulk_max)
        return [list(batch[i : i + size]) for i in range(0, len(batch), size)]

    def request_key(self, sms: PreparedSms) -> Hashable:
        """What messages that share a request have in common: :meth:`plan_requests` never mixes keys.

        The default (one key for all) lets any messages share a request; an adapter that
        plans one body per request returns ``batching.body_key``. ``send_many`` keeps the
        messages still waiting for a request by this key (``RequestStream``).
        """
        return None

    def lookup(self, keys: Sequence[str]) -> dict[str, RecipientResult]:
        """Find messages previously sent with these idempotency keys.

        Returns only the keys the provider knows. Used after an ambiguous send.
        """
        raise Unsupported(f"{self.name} cannot look messages up by reference", provider=self.name)

    def quote(self, batch: Sequence[PreparedSms]) -> Quote | None:
        """The cost of a send, if the provider can tell without sending."""
        return None

    # -- status and events ----------------------------------------------
    def status(self, message_ids: Sequence[str]) -> list[Delivery]:
        """The current delivery report of each message id."""
        raise Unsupported(f"{self.name} has no status lookup", provider=self.name)

    def poll_events(self, cursor: str | None, *, limit: int = 500) -> EventPage:
        """Events (deliveries, replies, link hits, opt-outs) after ``cursor``.

        An adapter that implements this sets ``capabilities.event_poll``.
        """
        raise Unsupported(f"{self.name} has no event polling; use webhooks", provider=self.name)

    def follow_sends(self, message_ids: Sequence[str]) -> None:
        """Hand over sent ids whose reports :meth:`poll_events` must fetch by id.

        Only an adapter with ``capabilities.follow_sends`` needs them (Kudosity V1);
        the default keeps nothing, since listing events finds every send.
        """
        return None

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Raise ``WebhookError`` (401) unless the request is authentic."""
        raise Unsupported(f"{self.name} pushes no webhooks", provider=self.name)

    def parse_webhook(self, request: WebhookRequest) -> list[Event]:
        """Parse an authentic webhook request into events; ``WebhookError`` (400) if malformed."""
        raise Unsupported(f"{self.name} pushes no webhooks", provider=self.name)

    # -- webhook registration (providers with a webhook API) -------------------
    def register_webhook(self, url: str, *, events: Sequence[str] | None = None, name: str | None = None) -> Webhook:
        """Register ``url`` (carrying its secret token) for the given event types."""
        raise Unsupported(f"{self.name} has no webhook API", provider=self.name)

    def list_webhooks(self) -> list[Webhook]:
        raise Unsupported(f"{self.name} has no webhook API", provider=self.name)

    def delete_webhook(self, webhook_id: str) -> None:
        raise Unsupported(f"{self.name} has no webhook API", provider=self.name)

    # -- account ----------------------------------------------------------
    def devices(self) -> list[Mapping[str, Any]]:
        """The sending devices of the account (phone gateways such as SMSKit)."""
        raise Unsupported(f"{self.name} has no devices", provider=self.name)

    def cancel(self, message_id: str) -> None:
        """Cancel a scheduled message; ``NotCancellable`` says why not."""
        raise Unsupported(f"{self.name} cannot cancel messages", provider=self.name)

    def balance(self) -> Balance:
        raise Unsupported(f"{self.name} does not report a balance", provider=self.name)

    def check(self) -> None:
        """Make one cheap authenticated call; raise ``AuthError`` if refused."""
        return None

    def close(self) -> None:
        """Release connections."""
        return None
