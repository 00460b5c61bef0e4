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
from smsrelay.clock import Clock, ManualClock, ScaledClock, SystemClock
from smsrelay.config import (
    SECRET_FIELDS,
    ProviderSettings,
    known_settings,
    load_settings,
    missing_credentials,
    provider_names,
    read_yaml,
    settings_from_mapping,
)
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
from smsrelay.lifecycle import merge, precedence, supersedes
from smsrelay.model import (
    Capabilities,
    Delivery,
    Event,
    LinkHit,
    Message,
    OptOut,
    PreparedSms,
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
from smsrelay.recipients import CsvRecipient, read_recipients_csv
from smsrelay.redaction import redact, register_secret
from smsrelay.segments import Segments
from smsrelay.segments import analyse as analyse_segments
from smsrelay.shared_limit import SharedRateLimiter
from smsrelay.templates import compile_template
from smsrelay.templates import render as render_template

if TYPE_CHECKING:
    from smsrelay.client import Client, Preview
    from smsrelay.feed import Feed
    from smsrelay.inbox import Inbox, InboxPage, open_inbox
    from smsrelay.routing import (
        AmbiguousRoute,
        Refusal,
        RoutedEvent,
        RoutedEventPage,
        RoutedResult,
        RoutedSend,
        Router,
        RoutingConfig,
        load_routing,
        routing_from_mapping,
    )

# The event feed and inbox (SQLite, psycopg) load on first use: a plain send needs neither.
_LAZY = {
    "Feed": "smsrelay.feed",
    "Inbox": "smsrelay.inbox",
    "InboxPage": "smsrelay.inbox",
    "open_inbox": "smsrelay.inbox",
    # The client and the router (requests and phonenumbers behind them) load on first use,
    # so importing a name like APPROVE_WORDS (an Airflow DAG at parse time) stays cheap.
    "Client": "smsrelay.client",
    "Preview": "smsrelay.client",
    "AmbiguousRoute": "smsrelay.routing",
    "Refusal": "smsrelay.routing",
    "RoutedEvent": "smsrelay.routing",
    "RoutedEventPage": "smsrelay.routing",
    "RoutedResult": "smsrelay.routing",
    "RoutedSend": "smsrelay.routing",
    "Router": "smsrelay.routing",
    "RoutingConfig": "smsrelay.routing",
    "load_routing": "smsrelay.routing",
    "routing_from_mapping": "smsrelay.routing",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'smsrelay' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__version__ = "0.1.0"

__all__ = [
    "APPROVE_WORDS",
    "REJECT_WORDS",
    "SECRET_FIELDS",
    "AmbiguousRoute",
    "AmbiguousSend",
    "Approval",
    "AuthError",
    "Balance",
    "Capabilities",
    "Client",
    "Clock",
    "ConfigError",
    "CsvRecipient",
    "Delivery",
    "Event",
    "EventPage",
    "Feed",
    "Gate",
    "GateVerdict",
    "Inbox",
    "InboxPage",
    "InsufficientCredit",
    "InvalidRequest",
    "LinkHit",
    "ManualClock",
    "Message",
    "NotCancellable",
    "NotFound",
    "OptOut",
    "Outbound",
    "PreparedSms",
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
    "RoutedEvent",
    "RoutedEventPage",
    "RoutedResult",
    "RoutedSend",
    "Router",
    "RoutingConfig",
    "ScaledClock",
    "Segments",
    "SendResult",
    "SharedRateLimiter",
    "SmsRelayError",
    "Status",
    "SystemClock",
    "TemplateError",
    "TransportError",
    "Unsupported",
    "WebhookError",
    "analyse_segments",
    "compile_template",
    "decide_gate",
    "event_from_dict",
    "event_to_dict",
    "gate_code",
    "known_settings",
    "load_routing",
    "load_settings",
    "mask_phone",
    "merge",
    "missing_credentials",
    "normalize_phone",
    "open_inbox",
    "precedence",
    "provider_names",
    "read_recipients_csv",
    "read_yaml",
    "redact",
    "register_secret",
    "render_template",
    "routing_from_mapping",
    "settings_from_mapping",
    "supersedes",
]
