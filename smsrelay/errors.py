"""The error taxonomy: every failure smsrelay raises is one of these.

A message says what was wrong, where (field, recipient, file and line) and what to
do. It never contains a secret: provider texts pass through :func:`redact` first.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from smsrelay.redaction import redact

if TYPE_CHECKING:
    from smsrelay.model import SendResult

__all__ = [
    "AmbiguousSend",
    "AuthError",
    "ConfigError",
    "InsufficientCredit",
    "InvalidRequest",
    "NotCancellable",
    "NotFound",
    "ProviderServerError",
    "RateLimited",
    "SmsRelayError",
    "TemplateError",
    "TransportError",
    "Unsupported",
    "WebhookError",
]


class SmsRelayError(Exception):
    """Base of every smsrelay error.

    ``provider`` names the backend, ``status_code`` the HTTP status where there was
    one, and ``provider_message`` keeps the provider's own text (redacted).
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        provider_message: str | None = None,
        code: str | None = None,
    ) -> None:
        self.message = redact(message)
        self.provider = provider
        self.status_code = status_code
        self.provider_message = redact(provider_message) if provider_message else None
        self.code = code
        super().__init__(self.message)

    def __str__(self) -> str:
        parts = [self.message]
        if self.provider_message and self.provider_message not in self.message:
            parts.append(f"(provider said: {self.provider_message})")
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ConfigError(SmsRelayError):
    """Settings are missing or invalid. ``field``, ``file`` and ``line`` say where.

    ``detail`` is the message without that location, so an integration can name the
    field in its own words (the CLI's ``--from`` for ``sender``).
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        file: str | None = None,
        line: int | None = None,
        provider: str | None = None,
    ) -> None:
        self.field = field
        self.file = file
        self.line = line
        self.detail = redact(message)
        where = []
        if file:
            where.append(f"{file}:{line}" if line else file)
        if field:
            where.append(f"field {field!r}")
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(prefix + message, provider=provider)


class InvalidRequest(SmsRelayError):
    """The request is wrong: a bad number, an empty or over-long body, a bad field.

    ``field`` names the offending field and ``recipient`` the recipient, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        recipient: str | None = None,
        provider: str | None = None,
        status_code: int | None = None,
        provider_message: str | None = None,
        code: str | None = None,
    ) -> None:
        self.field = field
        self.recipient = recipient
        super().__init__(
            message,
            provider=provider,
            status_code=status_code,
            provider_message=provider_message,
            code=code,
        )


class TemplateError(InvalidRequest):
    """A template failed to render, e.g. a variable is missing for a recipient."""


class AuthError(SmsRelayError):
    """The credentials were refused (401), or lack a scope or resource (403)."""


class InsufficientCredit(SmsRelayError):
    """The account has no credit left for this send (402 and provider equivalents)."""


class RateLimited(SmsRelayError):
    """The provider said 429. ``retry_after`` is its hint, if it gave one."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        retry_after: timedelta | None = None,
        provider: str | None = None,
        status_code: int | None = None,
        provider_message: str | None = None,
        code: str | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(
            message, provider=provider, status_code=status_code, provider_message=provider_message, code=code
        )


class NotFound(SmsRelayError):
    """The message, batch or resource does not exist (404)."""


class NotCancellable(SmsRelayError):
    """The message cannot be cancelled; ``reason`` says why (e.g. ALREADY_PROCESSING)."""

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        provider: str | None = None,
        status_code: int | None = None,
        provider_message: str | None = None,
        code: str | None = None,
    ) -> None:
        self.reason = reason
        super().__init__(
            message, provider=provider, status_code=status_code, provider_message=provider_message, code=code
        )


class ProviderServerError(SmsRelayError):
    """The provider failed on its side (5xx). Retryable where it is safe."""

    retryable = True


class TransportError(SmsRelayError):
    """The network failed: refused, reset or timed out.

    ``request_sent`` is True when the request may have reached the provider, so a
    non-idempotent call may have taken effect.
    """

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        request_sent: bool = False,
        provider: str | None = None,
        status_code: int | None = None,
        provider_message: str | None = None,
        code: str | None = None,
    ) -> None:
        self.request_sent = request_sent
        super().__init__(
            message, provider=provider, status_code=status_code, provider_message=provider_message, code=code
        )


class AmbiguousSend(SmsRelayError):
    """A send may or may not have been accepted, and the provider could not tell us.

    Sending again could deliver twice, so smsrelay stops and says so. ``keys`` lists
    the idempotency keys in doubt; settle them later with ``Client.reconcile(keys)``
    (or ``smsrelay reconcile KEY…``). ``result`` is the whole send, in the caller's
    order: the settled results, and an ``in_doubt`` result for each key.
    """

    result: SendResult | None

    def __init__(
        self,
        message: str,
        *,
        keys: list[str],
        result: SendResult | None = None,
        provider: str | None = None,
        status_code: int | None = None,
        provider_message: str | None = None,
    ) -> None:
        self.keys = keys
        self.result = result
        super().__init__(message, provider=provider, status_code=status_code, provider_message=provider_message)


class Unsupported(SmsRelayError):
    """The provider lacks the capability this call needs (see ``Capabilities``)."""


class WebhookError(SmsRelayError):
    """A webhook request is not authentic (``status_code`` 401) or malformed (400)."""
