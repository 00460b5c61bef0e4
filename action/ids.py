"""Message ids that carry a phone number: masked in outputs, restored when fed back.

Some providers build the message id from the number: Kudosity V1's is
``<send id>:<number>`` (``339683245:61491570156``) and ME-SMS's is
``<batch uuid>:<msisdn>``. Outputs and the job summary travel beyond the masked log,
so there the number's digits become a token, ``masked-<n><tag><cipher>``:

* ``n`` is the number of digits (two decimal digits), so the token ends unambiguously;
* ``tag`` is the first 8 bytes of HMAC-SHA256(key, full id), in hex: it seeds the
  cipher and proves, on the way back, that the token was made with the same key;
* ``cipher`` is the digits XOR an HMAC-SHA256(key, tag) key stream, in hex.

The key is derived from the provider's credentials, which a later step that follows
the messages (``message-ids`` input) must have anyway; so that step turns the token
back into the provider's id, and nobody without the credentials can. This is SIV-style
deterministic encryption: the same id always masks the same way, and two numbers in one
ME-SMS batch get independent key streams.

>>> mask = IdMask(["api-key-123"])
>>> shown = mask.mask("339683245:61491570156", "+61491570156")
>>> shown.startswith("339683245:masked-11") and "61491570156" not in shown
True
>>> mask.unmask(shown)
('339683245:61491570156', '61491570156')
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

__all__ = ["IdMask", "MaskedIdError"]

MARK = "masked-"
_TOKEN = re.compile(re.escape(MARK) + r"(\d{2})([0-9a-f]{16})")
_TAG_BYTES = 8


class MaskedIdError(ValueError):
    """A masked id that these credentials did not mask (or that was altered)."""


class IdMask:
    """Masks the number inside message ids, and restores it, with one key per credentials."""

    def __init__(self, credentials: Sequence[str | None]) -> None:
        material = "\0".join(c or "" for c in credentials).encode()
        self._key = hashlib.sha256(b"smsrelay-action message ids\0" + material).digest()

    def _tag(self, message_id: str) -> bytes:
        return hmac.new(self._key, b"id\0" + message_id.encode(), hashlib.sha256).digest()[:_TAG_BYTES]

    def _stream(self, tag: bytes, length: int) -> bytes:
        # Phone numbers have at most 15 digits (E.164), well within one 32-byte block.
        return hmac.new(self._key, b"stream\0" + tag, hashlib.sha256).digest()[:length]

    def mask(self, message_id: str, number: str) -> str:
        """``message_id`` with ``number``'s digits (E.164 without ``+``) replaced by a token.

        An id that does not contain the number is returned unchanged.
        """
        digits = number.lstrip("+")
        if len(digits) < 5 or len(digits) > 15 or not digits.isdigit() or digits not in message_id:
            return message_id
        tag = self._tag(message_id)
        cipher = bytes(a ^ b for a, b in zip(digits.encode(), self._stream(tag, len(digits)), strict=True))
        head, _, tail = message_id.partition(digits)
        return f"{head}{MARK}{len(digits):02d}{tag.hex()}{cipher.hex()}{tail}"

    def unmask(self, shown: str) -> tuple[str, str | None]:
        """The provider's id for a shown one, and the digits of the number it held.

        An id with no token is returned unchanged, with None. Raises
        :class:`MaskedIdError` if the token was made with other credentials or altered.
        """
        found = _TOKEN.search(shown)
        if found is None:
            return shown, None
        length, tag = int(found.group(1)), bytes.fromhex(found.group(2))
        start = found.end()
        cipher_hex = shown[start : start + 2 * length]
        if len(cipher_hex) != 2 * length or not re.fullmatch(r"[0-9a-f]*", cipher_hex):
            raise MaskedIdError("the masked number is cut short")
        digits = bytes(a ^ b for a, b in zip(bytes.fromhex(cipher_hex), self._stream(tag, length), strict=True))
        full = shown[: found.start()] + digits.decode("latin-1") + shown[start + 2 * length :]
        if not digits.isdigit() or not hmac.compare_digest(self._tag(full), tag):
            raise MaskedIdError("it was masked with other credentials, or altered")
        return full, digits.decode("ascii")
