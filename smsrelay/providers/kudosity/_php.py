"""PHP's ``parse_str`` and ``json_encode``, as Kudosity V1 runs them to sign callbacks.

A V1 callback's ``x-transmitsms-signature`` is an HMAC over the JSON that PHP makes of
the parsed query, so reproducing the signature means reproducing PHP's quirks: ``a[b]=``
nesting, integer keys, ``+`` as space, and ``json_encode``'s escaped slashes.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_to_bytes

__all__ = ["php_json_of_query", "php_parse_str"]


def _php_urldecode(text: str) -> str:
    # PHP urldecode: "+" is a space, %XX is a byte, a malformed escape stays literal.
    raw = unquote_to_bytes(text.replace("+", " "))
    return raw.decode("utf-8")  # invalid UTF-8 makes json_encode fail: UnicodeDecodeError


def _php_key(key: str) -> str:
    # parse_str: leading spaces are dropped; " " and "." become "_" (before any "[").
    key = key.lstrip(" ")
    head, bracket, tail = key.partition("[")
    head = head.replace(" ", "_").replace(".", "_")
    if bracket and "]" not in tail:
        # An unclosed "[" is kept, but turned into "_" like PHP does.
        return head + "_" + tail
    return head + bracket + tail


_PHP_INT = re.compile(r"-?(0|[1-9][0-9]*)")


def php_parse_str(query: str) -> dict[str, Any]:
    """The array PHP's ``parse_str`` builds from a query string, in PHP's key order.

    Supports flat keys and one level of ``name[]``/``name[key]``; a repeated key
    keeps its first position and its last value, as PHP arrays do.

    >>> php_parse_str("b=2&a=x+y&b=3")
    {'b': '3', 'a': 'x y'}
    """
    out: dict[str, Any] = {}
    for piece in query.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        key = _php_key(_php_urldecode(name))
        if not key:
            continue
        val = _php_urldecode(value)
        m = re.fullmatch(r"([^\[]+)\[([^\]]*)\](.*)", key)
        if m is None:
            out[key] = val
            continue
        base, sub = m.group(1), m.group(2)
        arr = out.get(base)
        if not isinstance(arr, dict):
            arr = {}
            out[base] = arr
        if sub == "":
            ints = [int(k) for k in arr if _PHP_INT.fullmatch(k)]
            sub = str(max(ints) + 1 if ints else 0)
        arr[sub] = val
    return out


def _php_json(value: Any) -> str:
    if isinstance(value, dict):
        if not value:
            return "[]"  # PHP cannot tell an empty array from an empty list
        keys = list(value)
        if all(_PHP_INT.fullmatch(k) for k in keys) and [int(k) for k in keys] == list(range(len(keys))):
            return "[" + ",".join(_php_json(v) for v in value.values()) + "]"
        return "{" + ",".join(_php_json_str(k) + ":" + _php_json(v) for k, v in value.items()) + "}"
    return _php_json_str(str(value))


_PHP_ESCAPES = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _php_json_str(text: str) -> str:
    # json_encode defaults: "/" escaped as "\/", other controls as \u00XX, non-ASCII as
    # \uXXXX (lowercase hex, surrogate pairs), and DEL (0x7f) left as it is.
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _PHP_ESCAPES:
            out.append(_PHP_ESCAPES[ch])
        elif code < 0x20:
            out.append(f"\\u{code:04x}")
        elif code < 0x80:
            out.append(ch)
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
    out.append('"')
    return "".join(out)


def php_json_of_query(query: str) -> str:
    """PHP ``json_encode(parse_str(query))``: the text Kudosity signs
    (https://developers.kudosity.com/docs/validating-webhook-signatures-from-kudosity).

    >>> php_json_of_query("message_id=1&datetime=2021-04-26+04%3A18%3A00&url=a/b")
    '{"message_id":"1","datetime":"2021-04-26 04:18:00","url":"a\\\\/b"}'
    """
    return _php_json(php_parse_str(query))
