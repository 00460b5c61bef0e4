"""Phone numbers: E.164 normalisation, and each provider's wire format.

>>> normalize("0491 570 156", "AU")
'+61491570156'
>>> to_wire("+61491570156", "digits")
'61491570156'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from smsrelay.errors import InvalidRequest

if TYPE_CHECKING:  # phonenumbers (~17 ms to import) loads on first use: mask() and DAG parsing need none of it
    import phonenumbers

__all__ = ["WireFormat", "from_wire", "mask", "normalize", "to_wire"]

# e164: "+61491570156" · digits: "61491570156" · national: "0491570156"
WireFormat = Literal["e164", "digits", "national"]


def normalize(number: str, default_region: str | None = None) -> str:
    """Return ``number`` in E.164, or raise ``InvalidRequest`` naming it and why.

    A number without ``+`` is read in ``default_region`` (ISO 3166 code, e.g. "AU").

    >>> normalize("+1 (202) 555-0143")
    '+12025550143'
    """
    import phonenumbers

    raw = (number or "").strip()
    if not raw:
        raise InvalidRequest("the phone number is empty", field="to", recipient=number)
    region = (default_region or "").upper() or None
    candidate = raw
    if not raw.startswith("+") and region is None:
        if raw.startswith("00"):
            candidate = "+" + raw[2:]
        elif raw.isdigit() and len(raw) > 10:
            # Digits with a country code but no "+", as many providers write them.
            candidate = "+" + raw
    try:
        parsed = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException as exc:
        hint = "" if region or raw.startswith("+") else " (no default country is set: write it as +<country code>…)"
        raise InvalidRequest(f"{raw!r} is not a phone number: {exc._msg}{hint}", field="to", recipient=raw) from None
    if not phonenumbers.is_valid_number(parsed):
        reason = _invalid_reason(parsed)
        raise InvalidRequest(f"{raw!r} is not a valid phone number: {reason}", field="to", recipient=raw)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _invalid_reason(parsed: phonenumbers.PhoneNumber) -> str:
    import phonenumbers

    result = phonenumbers.is_possible_number_with_reason(parsed)
    reasons = {
        phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
        phonenumbers.ValidationResult.TOO_SHORT: "too short",
        phonenumbers.ValidationResult.TOO_LONG: "too long",
        phonenumbers.ValidationResult.INVALID_LENGTH: "wrong length for its country",
    }
    return reasons.get(result, "no such number range in its country")


def to_wire(e164: str, style: WireFormat) -> str:
    """Write an E.164 number the way a provider's API wants it.

    >>> to_wire("+66812345678", "national")
    '0812345678'
    """
    if style == "e164":
        return e164
    if style == "digits":
        return e164.lstrip("+")
    import phonenumbers

    parsed = phonenumbers.parse(e164, None)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL).replace(" ", "").replace("-", "")


def from_wire(number: str, default_region: str | None = None) -> str:
    """Read a number a provider sent back (``61491…``, ``+61491…``) as E.164.

    Falls back to the input with a ``+`` if it cannot be parsed, so an event is
    never lost over a number format.

    >>> from_wire("61491570156")
    '+61491570156'
    """
    raw = number.strip()
    try:
        return normalize(raw if raw.startswith("+") or default_region else "+" + raw, default_region)
    except InvalidRequest:
        digits = "".join(ch for ch in raw if ch.isdigit())
        return "+" + digits if digits else raw


def mask(number: str) -> str:
    """A number with its middle hidden, for logs and reprs: enough to tell senders apart, not to dial.

    >>> mask("+61491570156")
    '+614•••••156'
    """
    digits = number.lstrip("+")
    plus = "+" if number.startswith("+") else ""
    if len(digits) < 7:
        return plus + "•" * max(len(digits) - 2, 1) + digits[-2:]
    return plus + digits[:3] + "•" * (len(digits) - 6) + digits[-3:]
