"""The one redaction function: secrets never reach a log, an error or a repr.

Every credential smsrelay loads is registered here, and :func:`redact` replaces it
(and anything that looks like a credential in a header, URL or form) with ``***``.
"""

from __future__ import annotations

import re
import threading

__all__ = ["MASK", "redact", "register_secret"]

MASK = "***"

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None

# Names whose values are credentials wherever they appear: headers, query, form, JSON.
SECRET_NAMES = (
    "api[-_]?key",
    "api[-_]?secret",
    "x-api-key",
    "authorization",
    "password",
    "secret",
    "token",
    "access_token",
    "refresh_token",
    "client_secret",
    "private_key",
)
# A quoted name takes a quoted value ('api_key': 'v'); an unquoted one any value
# (api_key=v). So a label such as "field 'kudosity.api_key': kudosity needs…" is kept.
_NAMED = re.compile(
    r"(?i)(?P<name>\b(?:" + "|".join(SECRET_NAMES) + r")\b(?:[\"']\s*[:=]\s*[\"']|\s*[:=]\s*[\"']?))"
    r"(?P<value>(?:Basic |Bearer )?[^\s\"'&,;}]+)"
)
# Userinfo up to the last "@" before the path, since a password may hold an "@". In an HTTP URL
# the user may be an API key (Basic auth), so both go; in a DSN (postgresql://…) the user stays.
_URL_USERINFO = re.compile(r"(?P<scheme>https?://)[^/\s:@]+:[^/\s]*@")
_URL_PASSWORD = re.compile(r"(?P<user>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^/\s]*@")


def register_secret(value: str | None) -> None:
    """Remember a credential so that :func:`redact` masks it everywhere.

    >>> register_secret("s3cr3t-key"); redact("key is s3cr3t-key")
    'key is ***'
    """
    global _pattern
    if not value or len(value) < 4:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    """Mask registered secrets and credential-shaped values in ``text``.

    >>> redact("x-api-key: abc123 sent")
    'x-api-key: *** sent'
    >>> redact("postgresql://app:s3cret@db:5432/smsrelay"), redact("host=db user=app password=s3cret")
    ('postgresql://app:***@db:5432/smsrelay', 'host=db user=app password=***')
    """
    if not text:
        return text
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    text = _URL_USERINFO.sub(r"\g<scheme>***@", text)
    text = _URL_PASSWORD.sub(r"\g<user>***@", text)
    return _NAMED.sub(lambda m: m.group("name") + MASK, text)
