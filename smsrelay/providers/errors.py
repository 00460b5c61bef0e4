"""HTTP status to core error, read from each adapter's table.

An adapter keeps its mapping as a module-level dict from status to :class:`ErrorRule`,
readable as a table (the way courier's provider handlers keep theirs); the body
parsing (which text, which code, which field) stays in the adapter, and this one
function turns the status and that text into the error.

>>> rule = error_for_status({401: ErrorRule(AuthError, "refused ({status})")}, 401, provider="x", text="no")
>>> type(rule).__name__, rule.message
('AuthError', 'refused (401)')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from smsrelay.errors import (
    AuthError,
    InsufficientCredit,
    InvalidRequest,
    NotFound,
    ProviderServerError,
    RateLimited,
    SmsRelayError,
)

__all__ = ["DEFAULT_ERRORS", "OTHER", "SERVER_ERROR", "ErrorRule", "StatusTable", "error_for_status"]

SERVER_ERROR = 500  # the key of the rule for every 5xx a table does not list by number
OTHER = "other"  # the key of the rule for every status a table does not list (before the defaults)


@dataclass(frozen=True)
class ErrorRule:
    """The error a status maps to: its class, its message and the field it names.

    ``message`` is a format string over ``status``, ``text`` (the provider's own words,
    redacted) and ``code`` (the provider's error code, or empty).
    """

    error: type[SmsRelayError]
    message: str
    field: str | None = None
    code: str | None = None


# Keys are HTTP statuses, or the provider's error codes where a code decides more than the
# status does (ME-SMS answers INSUFFICIENT_CREDITS whatever the status).
StatusTable = Mapping[int | str, ErrorRule]

# What every provider's status means when its table says nothing more specific.
DEFAULT_ERRORS: StatusTable = {
    401: ErrorRule(AuthError, "{provider} answered {status}: the credentials were refused; check the API key"),
    402: ErrorRule(InsufficientCredit, "{provider} answered {status}: not enough credit"),
    403: ErrorRule(AuthError, "{provider} answered {status}: the credentials were refused; check the API key"),
    404: ErrorRule(NotFound, "{provider} answered {status}: not found"),
    429: ErrorRule(RateLimited, "{provider} answered {status}: rate limited"),
    SERVER_ERROR: ErrorRule(ProviderServerError, "{provider} answered {status}: provider error"),
}
_REFUSED = ErrorRule(InvalidRequest, "{provider} answered {status}: the request was refused")


def error_for_status(
    table: StatusTable,
    status: int,
    *,
    provider: str,
    text: str | None,
    code: str | None = None,
    field: str | None = None,
    key: str | None = None,
    words: Mapping[str, str] | None = None,
    **extra: Any,
) -> SmsRelayError:
    """The core error: the table's rule for ``key`` (default: ``code``), else for the status, else the default's.

    A rule's own ``field`` wins over ``field`` (parsed from the body); ``words`` are more values for
    the message's format string; ``extra`` goes to the error's constructor (``retry_after``).
    """
    bucket = SERVER_ERROR if status >= 500 else status
    named = key if key is not None else code
    rule = (table.get(named) if named else None) or table.get(status) or table.get(bucket) or table.get(OTHER)
    rule = rule or DEFAULT_ERRORS.get(status) or DEFAULT_ERRORS.get(bucket) or _REFUSED
    message = rule.message.format(
        provider=provider, status=status, text=text or "", code=code or "", **(words or {})
    ).strip()
    kw: dict[str, Any] = {"provider": provider, "status_code": status, "provider_message": text, **extra}
    kw["code"] = rule.code or code
    if issubclass(rule.error, InvalidRequest):
        kw["field"] = rule.field or field
    return rule.error(message, **kw)
