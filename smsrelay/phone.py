"""Phone numbers: E.164 normalisation, and each provider's wire format.

>>> normalize("0491 570 156", "AU")
'+61491570156'
>>> to_wire("+61491570156", "digits")
'61491570156'
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Literal, NamedTuple

from smsrelay.errors import InvalidRequest

if TYPE_CHECKING:  # phonenumbers (~17 ms to import) loads on first use: mask() and DAG parsing need none of it
    import phonenumbers

__all__ = ["WireFormat", "from_wire", "mask", "normalize", "region_of", "to_wire"]

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
    plain = _plain_e164(candidate)
    if plain is not None and _valid_national(*plain):
        return candidate  # format_number(parse(candidate), E164) of a plain number is the number itself
    try:
        parsed = _number(*plain) if plain else phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException as exc:
        hint = "" if region or raw.startswith("+") else " (no default country is set: write it as +<country code>…)"
        raise InvalidRequest(f"{raw!r} is not a phone number: {exc._msg}{hint}", field="to", recipient=raw) from None
    if not _is_valid(parsed):
        reason = _invalid_reason(parsed)
        raise InvalidRequest(f"{raw!r} is not a valid phone number: {reason}", field="to", recipient=raw)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


_E164 = re.compile(r"\+[1-9][0-9]{3,16}")


def _parse_e164(number: str) -> phonenumbers.PhoneNumber | None:
    """What ``phonenumbers.parse`` returns for a plain ``+<digits>`` number (see ``_plain_e164``); else None."""
    plain = _plain_e164(number)
    return _number(*plain) if plain else None


def _number(code: int, national: str) -> phonenumbers.PhoneNumber:
    import phonenumbers

    return phonenumbers.PhoneNumber(country_code=code, national_number=int(national))


def _plain_e164(number: str) -> tuple[int, str] | None:
    """A ``+<digits>`` number as ``parse`` reads it, country code and national number; else None.

    Exact by construction: it takes only input that ``parse`` would read as country code plus
    national number untouched, and leaves the rest (a national prefix after the country code,
    leading zeros, unknown codes, other characters) to ``parse``. A send validates every number,
    and ``parse``'s general scanning was most of that cost; ``tests/unit/test_phone.py`` holds it
    equal to ``parse``.
    """
    if not _E164.fullmatch(number):
        return None
    code, national = _split_country_code(number[1:])
    if not code or len(national) < 2 or national[0] == "0":
        return None
    prefix = _national_prefix(code)
    if prefix is False or (prefix is not None and prefix.match(national)):
        return None  # no metadata; or parse may strip a national prefix or carrier code
    return code, national


def _split_country_code(digits: str) -> tuple[int, str]:
    """``digits`` (after the ``+``) as country calling code and the rest; code 0 if none is known."""
    import phonenumbers

    for size in (1, 2, 3):  # country calling codes are prefix-free: at most one length matches
        code = int(digits[:size])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return code, digits[size:]
    return 0, digits


@functools.cache
def _national_prefix(code: int) -> re.Pattern[str] | Literal[False] | None:
    """The country code's ``national_prefix_for_parsing``, compiled; False if it has no metadata."""
    import phonenumbers

    region = phonenumbers.region_code_for_country_code(code)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(code, region)
    if metadata is None:
        return False
    return re.compile(metadata.national_prefix_for_parsing) if metadata.national_prefix_for_parsing else None


# phonenumbers' number types: a number is valid if it matches the general description and any
# one of these, so the order is free; SMS goes mostly to mobiles, so they are tried first.
_TYPES = (
    "mobile", "fixed_line", "premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
    "voicemail",
)  # fmt: skip
_Desc = tuple[frozenset[int], "re.Pattern[str]"]


def _is_valid(parsed: phonenumbers.PhoneNumber) -> bool:
    """``phonenumbers.is_valid_number``, with each region's patterns compiled once.

    Exact: the same region choice (``_region_code_for_number_from_list``), descriptions,
    lengths and patterns; ``tests/unit/test_phone.py`` holds it equal.
    """
    if parsed.italian_leading_zero:
        import phonenumbers

        return phonenumbers.is_valid_number(parsed)
    return _valid_national(parsed.country_code or 0, str(parsed.national_number))


def _valid_national(code: int, nsn: str) -> bool:
    regions = _regions(code)
    if len(regions) == 1:  # the only region is the number's, unchecked
        return regions[0] is not None and regions[0].valid(nsn)
    for region in regions:
        if region is None:
            continue
        if region.leading is not None:
            if region.leading.match(nsn):
                return region.valid(nsn)
        elif region.valid(nsn):
            return True
    return False


class _Region(NamedTuple):
    """One region's validity patterns, compiled."""

    leading: re.Pattern[str] | None
    general: _Desc | None
    types: tuple[_Desc, ...]

    def valid(self, nsn: str) -> bool:
        return self.general is not None and _matches(self.general, nsn) and any(_matches(d, nsn) for d in self.types)


def _matches(desc: _Desc, nsn: str) -> bool:
    lengths, pattern = desc
    return (not lengths or len(nsn) in lengths) and pattern.fullmatch(nsn) is not None


@functools.cache
def _regions(code: int) -> tuple[_Region | None, ...]:
    import phonenumbers

    names = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code, ())
    if len(names) == 1:
        return (_region(phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(code, names[0])),)
    return tuple(_region(phonenumbers.PhoneMetadata.metadata_for_region(name, None)) for name in names)


def _region(metadata: phonenumbers.PhoneMetadata | None) -> _Region | None:
    if metadata is None:
        return None
    # With the same mobile and fixed-line patterns, phonenumbers does not test mobile on its own.
    names = _TYPES[1:] if metadata.same_mobile_and_fixed_line_pattern else _TYPES
    types = (_desc(getattr(metadata, name)) for name in names)
    leading = re.compile(metadata.leading_digits) if metadata.leading_digits is not None else None
    return _Region(leading, _desc(metadata.general_desc), tuple(desc for desc in types if desc is not None))


def _desc(desc: phonenumbers.PhoneNumberDesc | None) -> _Desc | None:
    if desc is None or not desc.national_number_pattern:
        return None  # phonenumbers: a description without a pattern matches nothing
    return frozenset(desc.possible_length), re.compile(desc.national_number_pattern)


def region_of(e164: str) -> str | None:
    """The ISO 3166 region of a normalised number, or None if its country code has none.

    >>> region_of("+66812345678")
    'TH'
    """
    import phonenumbers

    if _E164.fullmatch(e164):
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(_split_country_code(e164[1:])[0], ())
        if len(regions) == 1:
            return regions[0]  # as region_code_for_number: a code's only region needs no pattern
    parsed = _parse_e164(e164) or phonenumbers.parse(e164, None)
    return phonenumbers.region_code_for_number(parsed)


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
