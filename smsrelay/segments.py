"""SMS encoding and segments: GSM-7 or UCS-2, how many parts, and length limits.

>>> analyse("Hello").parts, analyse("Hello").encoding
(1, 'GSM-7')
>>> analyse("Hi 👋").encoding
'UCS-2'
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from smsrelay.errors import InvalidRequest
from smsrelay.model import Encoding

__all__ = ["Segments", "analyse", "check_length"]

# 3GPP TS 23.038 basic character set.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each costs an escape plus the character, so counts as two.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

SINGLE = {"GSM-7": 160, "UCS-2": 70}
MULTI = {"GSM-7": 153, "UCS-2": 67}


@dataclass(frozen=True)
class Segments:
    """The encoding of a text, its length in encoding units, and its part count."""

    encoding: Encoding
    units: int
    parts: int
    characters: int

    @property
    def per_part(self) -> int:
        return SINGLE[self.encoding] if self.parts <= 1 else MULTI[self.encoding]


def _ucs2_units(text: str) -> int:
    # UCS-2 on the wire is UTF-16: characters outside the BMP (emoji) take two units.
    return len(text.encode("utf-16-le")) // 2


@functools.lru_cache(maxsize=256)  # a shared body is analysed once per send, not once per recipient
def analyse(text: str) -> Segments:
    """Detect the encoding of ``text`` and count its parts.

    >>> analyse("x" * 161).parts
    2
    >>> analyse("[]").units
    4
    """
    units = 0
    gsm = True
    for ch in text:
        if ch in GSM7_BASIC:
            units += 1
        elif ch in GSM7_EXTENSION:
            units += 2
        else:
            gsm = False
            break
    encoding: Encoding
    if gsm:
        encoding = "GSM-7"
    else:
        encoding = "UCS-2"
        units = _ucs2_units(text)
    if units == 0:
        parts = 0
    elif units <= SINGLE[encoding]:
        parts = 1
    else:
        parts = -(-units // MULTI[encoding])
    return Segments(encoding=encoding, units=units, parts=parts, characters=len(text))


def check_length(
    text: str,
    *,
    max_chars: int,
    provider: str,
    recipient: str | None = None,
    max_parts: int | None = None,
) -> Segments:
    """Analyse ``text`` and raise ``InvalidRequest`` if it is empty or too long.

    The error names the provider's limit, so the user knows what to cut.

    >>> check_length("hi", max_chars=1600, provider="sandbox").parts
    1
    """
    seg = analyse(text)
    if not text.strip():
        raise InvalidRequest("the message is empty", field="message", recipient=recipient, provider=provider)
    if seg.characters > max_chars:
        raise InvalidRequest(
            f"the message is {seg.characters} characters, over {provider}'s limit of {max_chars}",
            field="message",
            recipient=recipient,
            provider=provider,
        )
    if max_parts is not None and seg.parts > max_parts:
        raise InvalidRequest(
            f"the message needs {seg.parts} {seg.encoding} parts, over {provider}'s limit of {max_parts}",
            field="message",
            recipient=recipient,
            provider=provider,
        )
    return seg
