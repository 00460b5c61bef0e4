"""Webhook requests as providers send them: raw bytes, headers and the raw query.

Parsers take a :class:`WebhookRequest` rather than a framework's request object, so
the same verification and parsing serve the receiver, tests and integrations.
"""

from __future__ import annotations

import hmac
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from smsrelay.errors import WebhookError

__all__ = ["WebhookRequest", "constant_time_equals", "find_header", "json_body"]

# Deeper than any provider's event (Kudosity V2 nests 3 levels), far below the
# interpreter's recursion limit: a body of 100,000 "[" is refused before it is parsed.
MAX_JSON_DEPTH = 64


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


def _not_finite(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


def _depth(text: str) -> int:
    """The deepest nesting of ``[`` and ``{`` outside strings (a linear scan, no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def json_body(request: WebhookRequest, provider: str, *, what: str = "the webhook body") -> Any:
    """The request body as strict JSON, or ``WebhookError`` (400) saying why not.

    Strict: UTF-8 only, no ``NaN``/``Infinity``, at most :data:`MAX_JSON_DEPTH` levels
    deep, and integers within Python's digit limit. A hostile body is refused as
    malformed, never answered 5xx (which a provider would retry forever).

    >>> json_body(WebhookRequest("POST", "/", body=b'{"a": [1]}'), "sandbox")
    {'a': [1]}
    """
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookError(f"{what} is not UTF-8", provider=provider, status_code=400) from None
    # Only a body with many brackets can be too deep: most skip the scan.
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _depth(text) > MAX_JSON_DEPTH:
        raise WebhookError(
            f"{what} nests deeper than {MAX_JSON_DEPTH} levels", provider=provider, status_code=400
        ) from None
    try:
        return json.loads(text, parse_constant=_not_finite, parse_float=_finite)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and integers beyond sys.get_int_max_str_digits().
        raise WebhookError(f"{what} is not JSON ({type(exc).__name__})", provider=provider, status_code=400) from None


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
