"""Webhook requests as providers send them: raw bytes, headers and the raw query.

Parsers take a :class:`WebhookRequest` rather than a framework's request object, so
the same verification and parsing serve the receiver, tests and integrations.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

__all__ = ["WebhookRequest", "constant_time_equals", "find_header"]


@dataclass(frozen=True)
class WebhookRequest:
    """One inbound HTTP request. ``query`` is the raw query string, in arrival order.

    >>> WebhookRequest("GET", "/hook", query="a=1&b=2").params
    [('a', '1'), ('b', '2')]
    """

    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def params(self) -> list[tuple[str, str]]:
        """Query parameters, decoded, in their order of arrival."""
        return parse_qsl(self.query, keep_blank_values=True)

    def header(self, name: str, default: str | None = None) -> str | None:
        """A header by case-insensitive name."""
        return find_header(self.headers, name, default)


def find_header(headers: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    """A header's value by case-insensitive name.

    >>> find_header({"X-Token": "t"}, "x-token")
    't'
    """
    lname = name.lower()
    for key, value in headers.items():
        if key.lower() == lname:
            return value
    return default


def constant_time_equals(a: str | bytes | None, b: str | bytes | None) -> bool:
    """Compare secrets without leaking their length of common prefix by timing.

    >>> constant_time_equals("abc", "abc"), constant_time_equals("abc", None)
    (True, False)
    """
    if a is None or b is None:
        return False
    ab = a.encode() if isinstance(a, str) else a
    bb = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(ab, bb)
