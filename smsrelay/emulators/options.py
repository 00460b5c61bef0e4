"""The values of ``smsrelay emulate``'s realism options: durations, numbers and rate limits.

A bad value is a :class:`~smsrelay.errors.ConfigError` naming the option (the CLI exits 2).

>>> parse_duration("150ms", "--latency"), parse_duration("0.15s", "--latency"), parse_duration("0.15", "--latency")
(0.15, 0.15, 0.15)
>>> parse_rate_limit("50000/5min", None)
RateLimit(requests=50000, per=300.0, retry_after=False, source='--rate-limit')
"""

from __future__ import annotations

import math
import re
from dataclasses import replace

from smsrelay.emulators.base import RateLimit
from smsrelay.errors import ConfigError

__all__ = ["parse_duration", "parse_number", "parse_rate_limit"]

_DURATION = re.compile(r"(?P<n>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s)?")
_PERIOD = re.compile(r"(?P<n>\d+(?:\.\d*)?|\.\d+)?\s*(?P<unit>ms|s|sec|m|min|h|hour|d|day)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}
_RATE_HELP = "documented, off, or requests per period such as 15/s, 100/h or 50000/5min"


def parse_duration(text: str, flag: str) -> float:
    """Seconds from ``150ms``, ``0.15s`` or ``0.15``.

    >>> parse_duration("30ms", "--jitter")
    0.03
    """
    m = _DURATION.fullmatch(text.strip().lower())
    if m is None:
        raise ConfigError(f"a duration such as 150ms, 0.15s or 0.15, got {text!r}", field=flag)
    return round(float(m["n"]) * _UNIT_SECONDS[m["unit"] or "s"], 9)


def parse_number(text: str, flag: str, kind: type[float] | type[int] = float) -> float:
    """A finite number (an ``int`` when ``kind`` is ``int``).

    >>> parse_number("100", "--clock-speed")
    100.0
    """
    try:
        value = kind(text)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise ConfigError(f"{noun} is needed, got {text!r}", field=flag) from None
    if not math.isfinite(value):
        raise ConfigError(f"a finite number is needed, got {text!r}", field=flag)
    return value


def parse_rate_limit(text: str, documented: RateLimit | None) -> RateLimit | bool:
    """``documented`` (``True``), ``off`` (``False``), or requests per period as a :class:`RateLimit`.

    A limit given by hand answers like the provider's own: with ``Retry-After`` only if
    ``documented`` (the provider's documented limit) has it.

    >>> parse_rate_limit("documented", None), parse_rate_limit("off", None)
    (True, False)
    >>> parse_rate_limit("15/s", RateLimit(100, 3600, retry_after=True)).describe()
    '15 requests per 1 s (429 with Retry-After)'
    """
    value = text.strip().lower()
    if value in ("documented", "off"):
        return value == "documented"
    count, _, period = value.partition("/")
    m = _PERIOD.fullmatch(period.strip())
    if not count.strip().isdigit() or int(count) < 1 or m is None or float(m["n"] or 1) <= 0:
        raise ConfigError(f"{_RATE_HELP}, got {text!r}", field="--rate-limit")
    per = round(float(m["n"] or 1) * _UNIT_SECONDS[m["unit"]], 9)
    if documented is not None:
        return replace(documented, requests=int(count), per=per, source="--rate-limit")
    return RateLimit(int(count), per, source="--rate-limit")
