"""smsrelay: one SMS client for Kudosity, SMSKit, ME-SMS, Kaleyra and an embedded sandbox.

>>> from smsrelay import Client
>>> client = Client("sandbox")  # doctest: +SKIP
>>> result = client.send(["+61491570156", "+61491570157"], "Hi {{ name }}", vars={"name": "team"})  # doctest: +SKIP
>>> [r.status.value for r in result.results]  # doctest: +SKIP
['queued', 'queued']
"""

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
from smsrelay.feed import Feed
from smsrelay.inbox import Inbox, open_inbox
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
from smsrelay.providers.base import Balance, EventPage, Quote
from smsrelay.redaction import redact

__version__ = "0.1.0"

__all__ = [
    "AmbiguousSend",
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
    "Inbox",
    "InsufficientCredit",
    "InvalidRequest",
    "LinkHit",
    "ManualClock",
    "Message",
    "NotCancellable",
    "NotFound",
    "OptOut",
    "Preview",
    "ProviderServerError",
    "ProviderSettings",
    "Quote",
    "RateLimited",
    "Recipient",
    "RecipientResult",
    "Reply",
    "SendResult",
    "SmsRelayError",
    "Status",
    "SystemClock",
    "TemplateError",
    "TransportError",
    "Unsupported",
    "WebhookError",
    "event_from_dict",
    "event_to_dict",
    "load_settings",
    "merge",
    "open_inbox",
    "redact",
]
