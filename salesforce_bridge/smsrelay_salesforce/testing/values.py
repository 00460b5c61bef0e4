"""The org emulator's Salesforce ids, field values and error shapes.

Ids are 15 characters plus the 3-character case suffix; values are coerced and checked as
the REST and Bulk APIs do (:func:`coerce`), or refused before any record as the JSON
deserializer does (:func:`json_refusal`); :class:`RecordError` is one record's failure and
:class:`RequestError` the whole request's.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any

from smsrelay.emulators.base import EmuResponse, json_response
from smsrelay_salesforce.schema import FieldSchema

log = logging.getLogger("smsrelay.salesforce.emulator")

DEFAULT_API_VERSION = "59.0"  # simple-salesforce 1.12.10's DEFAULT_API_VERSION
_V = r"/services/data/v(?P<version>\d+\.\d)"
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
_TEXT_TYPES = frozenset({"string", "textarea", "phone", "email", "url", "picklist", "multipicklist"})
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
COLLECTION_MAX = 200  # REST API guide, sObject Collections: "up to 200 records"
QUERY_PAGE = 2000  # REST API guide, Query: "batches of up to 2,000 records"
LONG_TEXT_PAGE = 200


def _is_long_text(f: FieldSchema) -> bool:
    """A long text area (or rich text): a textarea longer than a plain text area's 255 characters."""
    return f.type == "textarea" and f.length > 255


BULK_JOB_PREFIX = "750"
QUERY_LOCATOR_PREFIX = "01g"

# REST API guide, "Status Codes and Error Responses", with the messages Salesforce sends.
_ERROR_DEFAULTS: dict[str, tuple[int, str]] = {
    "UNABLE_TO_LOCK_ROW": (400, "unable to obtain exclusive access to this record"),
    "REQUEST_LIMIT_EXCEEDED": (403, "TotalRequests Limit exceeded."),
    "INVALID_SESSION_ID": (401, "Session expired or invalid"),
    "SERVER_UNAVAILABLE": (503, "Server temporarily unavailable"),
    "UNKNOWN_EXCEPTION": (500, "An unexpected error occurred. Please include this ErrorId if you contact support."),
    "API_TEMPORARILY_UNAVAILABLE": (503, "API temporarily unavailable"),
}


# --------------------------------------------------------------------------- ids


@lru_cache(maxsize=65_536)  # the same Ids come back call after call
def _suffix(id15: str) -> str:
    # The 18-character id's checksum: one character per 5-character chunk, a bit per upper-case letter.
    out = ""
    for i in (0, 5, 10):
        bits = 0
        for j in range(5):
            if "A" <= id15[i + j] <= "Z":
                bits |= 1 << j
        out += _SUFFIX[bits]
    return out


def salesforce_id(prefix: str, n: int) -> str:
    """An 18-character Salesforce-style Id with the object's key prefix.

    >>> salesforce_id("003", 1)
    '0035g0000000001AAA'
    """
    digits = ""
    while True:
        n, r = divmod(n, 62)
        digits = _B62[r] + digits
        if n == 0:
            break
    body = f"{prefix}5g0{digits.rjust(9, '0')}"
    return body + _suffix(body)


def to_18(value: str) -> str | None:
    """The 18-character form of a 15- or 18-character Id, or ``None`` if it is not one.

    >>> to_18("0035g0000000001")
    '0035g0000000001AAA'
    """
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        return None
    return value[:15] + _suffix(value[:15])


# --------------------------------------------------------------------------- values


def _format_datetime(v: datetime) -> str:
    # REST API: dateTime values come back as 2026-01-31T09:00:00.000+0000.
    v = v.astimezone(UTC)
    return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}+0000"


def _json_value(v: Any) -> Any:
    if isinstance(v, datetime):
        return _format_datetime(v)
    if isinstance(v, date):
        return v.isoformat()
    return v


def _csv_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(_json_value(v))


_DT_RE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?))?\s*(Z|[+-]\d{2}:?\d{2})?")


@lru_cache(maxsize=1024)  # a write-back repeats one timestamp across its records; datetimes are immutable
def _parse_datetime(text: str) -> datetime | None:
    m = _DT_RE.fullmatch(text.strip())
    if not m:
        return None
    d, t, tz = m.groups()
    tz = tz or "+00:00"  # ASSUMPTION: a value without an offset is UTC (the API user's zone is GMT here)
    if tz == "Z":
        tz = "+00:00"
    elif ":" not in tz:
        tz = tz[:3] + ":" + tz[3:]
    try:
        return datetime.fromisoformat(f"{d}T{t or '00:00:00'}{tz}").astimezone(UTC)
    except ValueError:
        return None


class RecordError(Exception):
    """A per-record failure: Salesforce's ``{statusCode, message, fields}``."""

    def __init__(self, code: str, message: str, fields: Sequence[str] = ()) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.fields = list(fields)

    def as_dict(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}


class RequestError(Exception):
    """A whole-request failure: HTTP status and Salesforce's ``[{message, errorCode, fields}]``."""

    def __init__(self, status: int, code: str, message: str, fields: Sequence[str] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields

    def response(self) -> EmuResponse:
        body: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            body["fields"] = list(self.fields)
        return json_response([body], self.status)


def _round_half_up(value: float, scale: int) -> float:
    """A number rounded to the field's scale half away from zero, as Salesforce stores it
    (Salesforce Help, "Custom Field Types", Number: "Salesforce rounds" to the decimal places
    given; 2.5 becomes 3), not Python's round-half-to-even (``round(2.5) == 2``)."""
    if scale >= 0 and float(value).is_integer():
        return float(value)  # a whole number has nothing to round (Attempts__c, Parts__c): no Decimal
    quantum = Decimal(1).scaleb(-scale)
    return float(Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_UP))


def _coerce(f: FieldSchema, raw: Any) -> Any:
    """A value of field ``f`` from JSON (or CSV text); raises :class:`RecordError` naming the field."""
    if raw is None:
        return False if f.type == "boolean" else None
    t = f.type
    if t in _TEXT_TYPES:
        if type(raw) is not str and (isinstance(raw, bool) or not isinstance(raw, str | int | float)):
            raise RecordError(
                "INVALID_TYPE_ON_FIELD_IN_RECORD", f"{f.label}: value not of required type: {raw}", [f.name]
            )
        text = raw if isinstance(raw, str) else str(raw)
        if text == "":
            return None  # Salesforce stores an empty text value as null
        if f.length and len(text) > f.length:
            # The real message quotes the value; ours names the length without echoing the data.
            raise RecordError(
                "STRING_TOO_LONG", f"{f.label}: data value too large: {len(text)} characters (max length={f.length})",
                [f.name],
            )  # fmt: skip
        if t == "email" and not _EMAIL_RE.fullmatch(text):
            raise RecordError("INVALID_EMAIL_ADDRESS", f"{f.label}: invalid email address: {text}", [f.name])
        if t == "picklist" and f.restricted_picklist and text not in f.picklist_values:
            raise RecordError(
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{f.label}: bad value for restricted picklist field: {text}",
                [f.name],
            )
        return text
    if t in {"double", "currency", "percent", "int"}:
        value: float
        if isinstance(raw, bool):
            raise RecordError(
                "INVALID_TYPE_ON_FIELD_IN_RECORD", f"{f.label}: value not of required type: {raw}", [f.name]
            )
        if isinstance(raw, int | float):
            value = float(raw)
        elif isinstance(raw, str):
            if raw.strip() == "":
                return None
            try:
                value = float(raw)
            except ValueError:
                raise RecordError(
                    "INVALID_TYPE_ON_FIELD_IN_RECORD", f"{f.label}: value not of required type: {raw}", [f.name]
                ) from None
        else:
            raise RecordError(
                "INVALID_TYPE_ON_FIELD_IN_RECORD", f"{f.label}: value not of required type: {raw}", [f.name]
            )
        if not math.isfinite(value):
            raise RecordError(
                "INVALID_TYPE_ON_FIELD_IN_RECORD", f"{f.label}: value not of required type: {raw}", [f.name]
            )
        if f.precision and abs(value) >= 10 ** (f.precision - f.scale):
            raise RecordError(
                "NUMBER_OUTSIDE_VALID_RANGE",
                f"{f.label}: value outside of valid range on numeric field: {raw}",
                [f.name],
            )
        return _round_half_up(value, f.scale) if f.precision else value
    if t == "boolean":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in {"true", "false", "1", "0"}:
            return raw.strip().lower() in {"true", "1"}
        raise RecordError("INVALID_TYPE_ON_FIELD_IN_RECORD", f"{f.label}: value not of required type: {raw}", [f.name])
    if t == "datetime":
        parsed = _parse_datetime(raw) if isinstance(raw, str) else None
        if parsed is None:
            if isinstance(raw, str) and raw == "":
                return None
            raise RecordError(
                "INVALID_TYPE_ON_FIELD_IN_RECORD", f"{f.label}: value not of required type: {raw}", [f.name]
            )
        return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)
    if t == "date":
        if isinstance(raw, str):
            try:
                return date.fromisoformat(raw.strip()[:10])
            except ValueError:
                pass
        raise RecordError("INVALID_TYPE_ON_FIELD_IN_RECORD", f"{f.label}: value not of required type: {raw}", [f.name])
    if t in {"reference", "id"}:
        if not isinstance(raw, str):
            raise RecordError("MALFORMED_ID", f"{f.label}: id value of incorrect type: {raw}", [f.name])
        if raw == "":
            return None
        full = to_18(raw)
        if full is None:
            raise RecordError("MALFORMED_ID", f"{f.label}: id value of incorrect type: {raw}", [f.name])
        return full
    raise RecordError("INVALID_TYPE_ON_FIELD_IN_RECORD", f"{f.label}: unsupported field type {t}", [f.name])


_JSON_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?")
_SCALARS = frozenset({str, int, float})
_DATE_TYPES = frozenset({"datetime", "date"})
_JSON_TYPES = {"double": "double", "currency": "double", "percent": "double", "int": "int", "boolean": "boolean"}


def _json_refusal(f: FieldSchema, raw: Any) -> str | None:
    """Why Salesforce's JSON deserializer refuses ``raw`` for field ``f`` (``"double from VALUE_STRING value
    abc"``), or None when it takes it (a record-level check may still refuse it)."""
    t = f.type
    if type(raw) in _SCALARS and t not in _JSON_TYPES and t not in _DATE_TYPES:
        return None  # what the checks below conclude for text, numbers and ids, found without them
    token = (
        "VALUE_TRUE" if raw is True else "VALUE_FALSE" if raw is False
        else "VALUE_STRING" if isinstance(raw, str)
        else "START_OBJECT" if isinstance(raw, Mapping)
        else "START_ARRAY" if isinstance(raw, list)
        else "VALUE_NUMBER"
    )  # fmt: skip
    if t in _JSON_TYPES and t != "boolean":
        if isinstance(raw, bool | Mapping | list):
            return f"{_JSON_TYPES[t]} from {token}"
        if isinstance(raw, str):
            try:
                float(raw)
            except ValueError:
                return f"{_JSON_TYPES[t]} from {token} value {raw}"
        return None
    if t == "boolean":
        if isinstance(raw, bool) or (isinstance(raw, str) and raw.strip().lower() in {"true", "false"}):
            return None
        return f"boolean from {token}" + (f" value {raw}" if isinstance(raw, str) else "")
    if t == "datetime":
        if isinstance(raw, str) and (raw == "" or _JSON_DATETIME.fullmatch(raw)):
            return None
        return f"datetime from {token}" + (f" value {raw}" if isinstance(raw, str) else "")
    if t == "date":
        if isinstance(raw, str) and (raw == "" or re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw)):
            return None
        return f"date from {token}" + (f" value {raw}" if isinstance(raw, str) else "")
    if isinstance(raw, Mapping | list) and t not in {"reference"}:
        return f"{t} from {token}"
    return None
