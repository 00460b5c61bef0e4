"""Kudosity's tables, shared by both APIs: hosts, status maps, capabilities, error rules.

Citations: OAS2 is the V2 OpenAPI (https://developers.kudosity.com/openapi/public-openapi.yaml), OAS1 the V1
OpenAPI (https://developers.kudosity.com/openapi/api_documentation.yml), "Kudosity docs" the docs' source
(https://github.com/kudosity/kudosity-dev-docs); each with the fact it gives."""

from __future__ import annotations

from smsrelay.errors import AuthError, InsufficientCredit, InvalidRequest, NotFound, ProviderServerError, RateLimited
from smsrelay.model import Capabilities, Status
from smsrelay.transport import OTHER, SERVER_ERROR, ErrorRule, StatusTable

__all__ = [
    "DEFAULT_EVENTS",
    "ERRORS",
    "EVENT_TYPES",
    "OPT_OUT_WORDS",
    "V1_BASE_URL",
    "V1_CAPABILITIES",
    "V1_STATUS",
    "V2_BASE_URL",
    "V2_CAPABILITIES",
    "V2_REASONS",
    "V2_STATUS",
]

V2_BASE_URL = "https://api.transmitmessage.com"

V1_BASE_URL = "https://api.transmitsms.com"

# OAS2 Status enum (13 values) and MessageStatus (webhooks: the same plus INVALID),
# matched case-insensitively: send and list answer lowercase, get and webhooks
# uppercase (https://developers.kudosity.com/openapi/public-openapi.yaml, Status and MessageStatus).
V2_STATUS: dict[str, Status] = {
    "PENDING": Status.QUEUED,  # queued
    "PENDING_APPROVAL": Status.QUEUED,  # awaiting approval by Kudosity support
    "SUBMITTED": Status.SENT,  # submitted to provider
    "SENT": Status.SENT,  # submitted to provider
    "ACCEPTED": Status.SENT,  # accepted by provider, delivery not confirmed (OAS2 MessageStatus: ≠ delivered)
    "DELIVERED": Status.DELIVERED,
    "READ": Status.DELIVERED,  # read by recipient: delivered, and then some
    "FAILED": Status.FAILED,
    "HARD_BOUNCE": Status.FAILED,  # handset disconnected
    "UNDELIVERABLE": Status.FAILED,
    # OAS1 send-sms validity: an expired message is reported as a soft bounce.
    "SOFT_BOUNCE": Status.EXPIRED,
    "REJECTED": Status.REJECTED,  # pending-approval message rejected by support
    "INVALID": Status.REJECTED,  # ASSUMPTION: webhook-only value, read as an invalid destination
    "OTHER": Status.UNKNOWN,  # any other DLR
}

# OAS1 send-sms dlr_callback `status`; courier maps the same four values.
V1_STATUS: dict[str, Status] = {
    "delivered": Status.DELIVERED,
    "pending": Status.SENT,  # no DLR yet; allow up to 72 h
    "soft-bounce": Status.EXPIRED,  # expiry is reported as a soft bounce (OAS1 send-sms `validity`)
    "hard-bounce": Status.FAILED,
}

V2_REASONS = {
    "SOFT_BOUNCE": "handset off or out of range until the message expired",
    "HARD_BOUNCE": "handset disconnected",
    "REJECTED": "rejected by Kudosity support",
    "UNDELIVERABLE": "undeliverable",
    "INVALID": "invalid destination",
}

# Core event kinds -> V2 EventType, for `register_webhook(events=[...])`.
EVENT_TYPES = {"delivery": "SMS_STATUS", "reply": "SMS_INBOUND", "link_hit": "LINK_HIT", "opt_out": "OPT_OUT"}

DEFAULT_EVENTS = ("SMS_STATUS", "SMS_INBOUND", "LINK_HIT", "OPT_OUT")

OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})

V2_CAPABILITIES = Capabilities(
    bulk_max=1,  # https://developers.kudosity.com/openapi/public-openapi.yaml SendSMSRequest: one recipient per call
    concurrency=8,
    status_poll=True,
    dlr_push=True,
    inbound_push=True,
    inbound_poll=True,
    event_poll=True,
    lookup_by_ref=True,
    link_tracking=True,
    # ASSUMPTION: V2 documents no limit; Kudosity's own OpenClaw plugin caps at 1600.
    max_chars=1600,
    webhook_api=True,
    requires_sender=True,  # OAS2 SendSMSRequest: `sender` is required
    sender_max_chars=11,  # OAS2 SendSMSRequest.sender: an alphanumeric sender is ≤ 11 characters
)

V1_CAPABILITIES = Capabilities(
    bulk_max=500,  # OAS1 send-sms `to`: up to 500 comma-separated numbers
    concurrency=4,
    schedule=True,
    cancel=True,
    status_poll=True,
    dlr_push=True,
    inbound_push=True,
    inbound_poll=True,
    event_poll=True,
    follow_sends=True,
    balance=True,
    link_tracking=True,
    max_chars=612,  # OAS1 send-sms `message`: up to 612 characters
    # OAS1 send-sms would fall back to a shared number, but the adapter writes `from` on every call.
    requires_sender=True,
    sender_max_chars=11,  # OAS1 send-sms `from`: "an 11-character alphanumeric" sender
)

# An error response as a core error: by the V1 error code where there is one, else by status.
_SAID = "kudosity answered {status}{coded}: {text}; "

_AUTH = ErrorRule(AuthError, _SAID + "check the API key (and, for V1, the API secret)")

_CREDIT = ErrorRule(InsufficientCredit, _SAID + "top up the Kudosity account")

_SLOW = ErrorRule(RateLimited, _SAID + "slow down or ask Kudosity to raise the account's limit")

_NOT_FOUND = ErrorRule(NotFound, _SAID + "check the id")

_SERVER = ErrorRule(ProviderServerError, _SAID + "Kudosity failed on its side; try again later")

_FIX = ErrorRule(InvalidRequest, _SAID + "fix the request")

ERRORS: StatusTable = {
    "AUTH_FAILED_NO_DATA": _AUTH,
    "AUTH_FAILED": _AUTH,
    "NOT_IMPLEMENTED": _FIX,
    "OVER_LIMIT": _SLOW,
    "FIELD_EMPTY": _FIX,
    "FIELD_INVALID": _FIX,
    "MISSING_PARAM": _FIX,
    "NO_ACCESS": _AUTH,
    "KEY_EXISTS": _FIX,
    "LEDGER_ERROR": _CREDIT,
    "BAD_CALLER_ID": _FIX,
    "LIST_EMPTY": _FIX,
    "RECIPIENTS_ERROR": _FIX,
    "TOO-MANY-REQUESTS": _SLOW,
    429: _SLOW,
    401: _AUTH,
    403: _AUTH,
    402: _CREDIT,
    404: _NOT_FOUND,
    SERVER_ERROR: _SERVER,
    OTHER: _FIX,
}
