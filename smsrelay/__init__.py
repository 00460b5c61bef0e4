"""smsrelay: one SMS client for Kudosity, SMSKit, ME-SMS, Kaleyra and an embedded sandbox.

>>> from smsrelay import Client
>>> client = Client("sandbox")  # doctest: +SKIP
>>> result = client.send(["+61491570156", "+61491570157"], "Hi {{ name }}", vars={"name": "team"})  # doctest: +SKIP
>>> [r.status.value for r in result.results]  # doctest: +SKIP
['queued', 'queued']
"""

import importlib
from typing import TYPE_CHECKING, Any

from smsrelay.approval import (
    APPROVE_WORDS,
    REJECT_WORDS,
    Approval,
    Gate,
    GateVerdict,
    Outbound,
    ReplyWords,
    decide_gate,
    gate_code,
)
from smsrelay.client import Client, Preview
from smsrelay.clock import Clock, ManualClock, SystemClock
from smsrelay.config import ProviderSettings, load_settings
from smsrelay.errors import (
    AmbiguousSend,
    AuthError,
    ConfigError,
    InsufficientCredit,
    InvalidRequest,
    NotCancellable,
    NotFound,
    ProviderServerError,
    RateLimited,
    SmsRelayError,
    TemplateError,
    TransportError,
    Unsupported,
    WebhookError,
)
from smsrelay.lifecycle import merge
from smsrelay.model import (
    Capabilities,
    Delivery,
    Event,
    LinkHit,
    Message,
    OptOut,
    Recipient,
    RecipientResult,
    Reply,
    SendResult,
    Status,
    event_from_dict,
    event_to_dict,
)
from smsrelay.phone import mask as mask_phone
from smsrelay.phone import normalize as normalize_phone
from smsrelay.providers.base import Balance, EventPage, Quote
from smsrelay.redaction import redact
from smsrelay.routing import (
    AmbiguousRoute,
    Refusal,
    RoutedResult,
    RoutedSend,
    Router,
    RoutingConfig,
    load_routing,
)

if TYPE_CHECKING:
    from smsrelay.feed import Feed
    from smsrelay.inbox import Inbox, open_inbox

# The event feed and inbox (SQLite, psycopg) load on first use: a plain send needs neither.
_LAZY = {"Feed": "smsrelay.feed", "Inbox": "smsrelay.inbox", "open_inbox": "smsrelay.inbox"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'smsrelay' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__version__ = "0.1.0"

__all__ = [
    "APPROVE_WORDS",
    "REJECT_WORDS",
    "AmbiguousRoute",
    "AmbiguousSend",
    "Approval",
    "AuthError",
    "Balance",
    "Capabilities",
    "Client",
    "Clock",
    "ConfigError",
    "Delivery",
    "Event",
    "EventPage",
    "Feed",
    "Gate",
    "GateVerdict",
    "Inbox",
    "InsufficientCredit",
    "InvalidRequest",
    "LinkHit",
    "ManualClock",
    "Message",
    "NotCancellable",
    "NotFound",
    "OptOut",
    "Outbound",
    "Preview",
    "ProviderServerError",
    "ProviderSettings",
    "Quote",
    "RateLimited",
    "Recipient",
    "RecipientResult",
    "Refusal",
    "Reply",
    "ReplyWords",
    "RoutedResult",
    "RoutedSend",
    "Router",
    "RoutingConfig",
    "SendResult",
    "SmsRelayError",
    "Status",
    "SystemClock",
    "TemplateError",
    "TransportError",
    "Unsupported",
    "WebhookError",
    "decide_gate",
    "event_from_dict",
    "event_to_dict",
    "gate_code",
    "load_routing",
    "load_settings",
    "mask_phone",
    "merge",
    "normalize_phone",
    "open_inbox",
    "redact",
]
