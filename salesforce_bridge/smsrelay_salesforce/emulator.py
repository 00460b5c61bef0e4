"""A Salesforce org on loopback HTTPS, for the bridge's tests and for admins trying ``bridge.yaml`` offline.

Built on the core emulator kit (:mod:`smsrelay.emulators.base`). It speaks the
REST API that unmodified ``simple-salesforce`` 1.12 uses:

- ``POST /services/oauth2/token``: JWT bearer (RS256 signature checked against the
  connected app's certificate; ``iss``/``sub``/``aud``/``exp`` checked) and client
  credentials;
- ``/services/data/vXX.X/``: ``query``/``queryAll`` and ``query/<locator>`` (pages
  of 2,000), ``sobjects`` (describe, create, get, update, delete, upsert by
  External ID), ``composite/sobjects`` (create, update, upsert, retrieve, delete,
  with ``allOrNone``), Bulk API 2.0 ingest jobs and ``limits``;
- ``Sforce-Limit-Info: api-usage=N/M`` on every REST response, and a call counter
  (:attr:`OrgEmulator.api_calls`, :attr:`OrgEmulator.calls`) for tests and benchmarks.

Writes are checked against the object model loaded from DX metadata
(:mod:`smsrelay_salesforce.schema`): unknown fields, read-only fields, types,
lengths, restricted picklists, required fields and External ID uniqueness, with
Salesforce's error codes and shapes. Faults: :meth:`OrgEmulator.inject_error`
(``UNABLE_TO_LOCK_ROW``, ``REQUEST_LIMIT_EXCEEDED``, 5xx ...),
:meth:`OrgEmulator.fail_records` (per-record errors inside a Collections or Bulk
response), :meth:`OrgEmulator.expire_sessions` (401 ``INVALID_SESSION_ID``) and
:meth:`OrgEmulator.slow`.

>>> with OrgEmulator(ssl_context=ctx) as org:  # doctest: +SKIP
...     token = org.issue_token()
...     sf = Salesforce(instance_url=org.url, session_id=token, session=trusting_session)
...     sf.query("SELECT Id FROM Contact")["totalSize"]
0

Run standalone with ``python -m smsrelay_salesforce.emulator`` (or
``smsrelay-salesforce emulate-org``): see :func:`main`.

Sources: ``research/salesforce.md`` (§2 the REST API and simple-salesforce 1.12,
§2.8 limits and ``Sforce-Limit-Info``, the appendix on HTTPS with trustme), and the
Salesforce REST API Developer Guide pages named at each behaviour.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import csv
import functools
import hashlib
import hmac
import io
import itertools
import json
import logging
import math
import os
import pathlib
import re
import secrets
import ssl
import sys
import tempfile
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

from smsrelay.clock import Clock
from smsrelay.emulators.base import Emulator, EmuRequest, EmuResponse, _RequestHandler, json_response, route
from smsrelay_salesforce import soql
from smsrelay_salesforce.schema import (
    UI_METADATA,
    FieldSchema,
    ObjectSchema,
    OrgSchema,
    default_metadata_dir,
    ignored_metadata,
    load_schema,
)

__all__ = [
    "DEFAULT_API_VERSION",
    "JwtCredentials",
    "OrgEmulator",
    "RecordError",
    "TlsFiles",
    "main",
    "make_jwt_credentials",
    "make_tls",
    "salesforce_id",
    "serve",
    "to_18",
]

log = logging.getLogger("smsrelay.salesforce.emulator")

DEFAULT_API_VERSION = "59.0"  # simple-salesforce 1.12.10's DEFAULT_API_VERSION
_V = r"/services/data/v(?P<version>\d+\.\d)"
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
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


def _coerce(f: FieldSchema, raw: Any) -> Any:
    """A value of field ``f`` from JSON (or CSV text); raises :class:`RecordError` naming the field."""
    if raw is None:
        return False if f.type == "boolean" else None
    t = f.type
    if t in {"string", "textarea", "phone", "email", "url", "picklist", "multipicklist"}:
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
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
        return round(value, f.scale) if f.precision else value
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
_JSON_TYPES = {"double": "double", "currency": "double", "percent": "double", "int": "int", "boolean": "boolean"}


def _json_refusal(f: FieldSchema, raw: Any) -> str | None:
    """Why Salesforce's JSON deserializer refuses ``raw`` for field ``f`` (``"double from VALUE_STRING value
    abc"``), or None when it takes it (a record-level check may still refuse it)."""
    token = (
        "VALUE_TRUE" if raw is True else "VALUE_FALSE" if raw is False
        else "VALUE_STRING" if isinstance(raw, str)
        else "START_OBJECT" if isinstance(raw, Mapping)
        else "START_ARRAY" if isinstance(raw, list)
        else "VALUE_NUMBER"
    )  # fmt: skip
    t = f.type
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


# --------------------------------------------------------------------------- TLS and JWT material


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA and a server certificate for loopback HTTPS."""

    ssl_context: ssl.SSLContext
    ca_path: pathlib.Path


def make_tls(directory: str | pathlib.Path, hosts: Sequence[str] = ()) -> TlsFiles:
    """Make a trustme CA, write its PEM to ``directory/ca.pem``, return a server context for loopback.

    The certificate also names ``*.my.salesforce.com`` and ``login.salesforce.com``,
    so clients that route Salesforce host names to the emulator can verify it.
    """
    try:
        import trustme
    except ImportError as exc:  # pragma: no cover - trustme ships with the dev extra
        raise RuntimeError("the org emulator needs trustme for its certificate: pip install trustme") from exc
    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    names = ["127.0.0.1", "localhost", "::1", "login.salesforce.com", "test.salesforce.com", "*.my.salesforce.com",
             *hosts]  # fmt: skip
    cert = ca.issue_cert(*names)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    ca_path = d / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    return TlsFiles(ctx, ca_path)


@dataclass(frozen=True)
class JwtCredentials:
    """An RSA key pair and self-signed certificate, as an admin uploads to an External Client App."""

    private_key_path: pathlib.Path
    certificate_path: pathlib.Path
    private_key_pem: bytes
    certificate_pem: bytes


def make_jwt_credentials(directory: str | pathlib.Path) -> JwtCredentials:
    """Generate ``server.key`` and ``server.crt`` in ``directory`` (2048-bit RSA, self-signed)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smsrelay-salesforce integration")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_path, cert_path = d / "server.key", d / "server.crt"
    key_path.write_bytes(key_pem)
    key_path.chmod(0o600)
    cert_path.write_bytes(cert_pem)
    return JwtCredentials(key_path, cert_path, key_pem, cert_pem)


# --------------------------------------------------------------------------- state


@dataclass
class _Session:
    token: str
    user_id: str
    username: str
    expires_at: datetime


@dataclass
class _Cursor:
    bound: soql.Bound
    ids: list[str]
    size: int


@dataclass
class _Job:
    id: str
    object: str
    operation: str
    external_id: str | None
    line_ending: str
    delimiter: str
    created_by: str
    created: datetime
    api_version: str
    state: str = "Open"
    modified: datetime | None = None
    chunks: list[bytes] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    successes: list[tuple[str, bool, list[str]]] = field(default_factory=list)
    failures: list[tuple[str, str, list[str]]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)
    error_message: str | None = None
    processing_ms: int = 0
    duplicates: set[Any] = field(default_factory=set)  # External ID values an upsert job repeats


@dataclass(frozen=True)
class _ObjectMeta:
    """Per-object lists the write path needs on every record, computed once."""

    defaults: dict[str, Any]
    required: tuple[str, ...]
    indexed: tuple[FieldSchema, ...]  # External IDs and unique fields
    unique: tuple[FieldSchema, ...]
    master_detail: tuple[FieldSchema, ...]
    auto_number: str | None
    computed_name: bool
    has_owner: bool

    @classmethod
    def of(cls, obj: ObjectSchema) -> _ObjectMeta:
        fields = list(obj.fields.values())
        defaults: dict[str, Any] = {}
        for f in fields:
            if f.default is not None and f.createable:
                defaults[f.name] = f.default
            elif f.type == "boolean" and not f.calculated and f.createable:
                defaults[f.name] = False
        name = obj.fields.get("name")
        indexed = tuple(obj.external_ids())
        return cls(
            defaults=defaults,
            required=tuple(f.name for f in fields if f.required and f.createable),
            indexed=indexed,
            unique=tuple(f for f in indexed if f.unique),
            master_detail=tuple(f for f in fields if f.master_detail),
            auto_number=name.auto_number if name is not None else None,
            computed_name=name is not None and name.calculated,
            has_owner="ownerid" in obj.fields,
        )


@dataclass(frozen=True)
class _Plan:
    """Rendering of one object's part of a query row: (JSON key, field, nested plan for a relationship)."""

    obj: ObjectSchema
    items: list[tuple[str, FieldSchema, _Plan | None]]


@dataclass
class _RecordFault:
    code: str
    message: str | None
    sobject: str | None
    times: int


_DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
_BULK_OPERATIONS = frozenset({"insert", "update", "upsert", "delete", "hardDelete"})
_SYSTEM_AUDIT = ("CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById", "SystemModstamp")


class _NoDelayHandler(_RequestHandler):
    disable_nagle_algorithm = True


MAX_URI_BYTES = 16_384


def _describe_ignored(found: Mapping[str, list[str]]) -> str:
    """``2 Lightning apps (A, B); 3 tabs (...)``: what the emulator loaded but does not enforce."""
    return "; ".join(f"{len(names)} {UI_METADATA[kind]} ({', '.join(names)})" for kind, names in found.items())


class OrgEmulator(Emulator):
    """An HTTPS Salesforce org on loopback. See the module docstring.

    ``metadata_dir``: DX source-format metadata to load (default: the bridge's
    shipped metadata). ``certificate_pem``: the connected app's certificate for
    JWT bearer. ``daily_api_limit``: the ``DailyApiRequests`` allocation.
    ``session_seconds``: access-token lifetime on the emulator's clock.
    ``bulk_processing_seconds``: emulator time an ingest job takes after
    ``UploadComplete`` (0 completes it at once).
    """

    name = "salesforce-org"
    max_recorded_requests: ClassVar[int] = 50_000

    def __init__(
        self,
        *,
        metadata_dir: str | pathlib.Path | None = None,
        use_default_metadata: bool = True,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        consumer_key: str = "smsrelay-emulator-consumer-key",
        consumer_secret: str | None = None,
        certificate_pem: bytes | None = None,
        username: str = "integration@smsrelay.example",
        my_domain: str = "smsrelay-emulator.my.salesforce.com",
        daily_api_limit: int = 15_000,
        session_seconds: float = 7200.0,
        bulk_processing_seconds: float = 0.0,
    ) -> None:
        super().__init__(clock=clock, host=host, port=port, ssl_context=ssl_context)
        if metadata_dir is None and use_default_metadata:
            metadata_dir = default_metadata_dir()
            if metadata_dir is None:
                log.warning("org emulator: the shipped metadata was not found; serving the standard objects only")
        self.metadata_dir = pathlib.Path(metadata_dir) if metadata_dir else None
        self.schema: OrgSchema = load_schema(self.metadata_dir)
        # Loaded for the object model only; the rest is UI and access metadata no API call touches.
        self.ignored_metadata = ignored_metadata(self.metadata_dir)
        if self.ignored_metadata:
            log.info("org emulator: ignoring UI metadata: %s", _describe_ignored(self.ignored_metadata))
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret or secrets.token_urlsafe(24)
        self.certificate_pem = certificate_pem
        self.username = username
        self.my_domain = my_domain
        self.api_limit = daily_api_limit
        self.session_seconds = session_seconds
        self.bulk_processing_seconds = bulk_processing_seconds
        self.org_id = salesforce_id("00D", 0x5A17)
        self._init_state()

    def _spawn(self, target: Callable[[], None], what: str) -> None:
        if what == "serve" and self._server is not None:
            # Headers and body leave in two writes; with Nagle on, keep-alive clients wait ~40 ms for the
            # delayed ACK on every call, which would dominate 10,000-record benchmarks.
            self._server.RequestHandlerClass = _NoDelayHandler
            # A short poll interval makes stop() quick: tests start and stop an org per test.
            target = functools.partial(self._server.serve_forever, poll_interval=0.05)
        super()._spawn(target, what)

    # ------------------------------------------------------------------ state
    def _init_state(self) -> None:
        self.tables: dict[str, dict[str, dict[str, Any]]] = {o.name: {} for o in self.schema}
        self._by15: dict[str, tuple[str, str]] = {}
        self._unique: dict[tuple[str, str], dict[Any, list[str]]] = {}
        self._children: dict[tuple[str, str], Counter[str]] = {}
        self._ids: Iterator[int] = itertools.count(1)
        self._autonumber: Counter[str] = Counter()
        self.sessions: dict[str, _Session] = {}
        self.cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self.jobs: dict[str, _Job] = {}
        self.record_faults: list[_RecordFault] = []
        self.api_used = 0
        self.calls: Counter[str] = Counter()
        self._undo: list[tuple[str, str, dict[str, Any] | None]] | None = None
        self._meta: dict[str, _ObjectMeta] = {o.name: _ObjectMeta.of(o) for o in self.schema}
        for obj in self.schema:
            for f in obj.external_ids():
                self._unique[(obj.name, f.name)] = {}
        self.user_id = self.insert("User", [{"Username": self.username, "LastName": "Integration",
                                             "FirstName": "smsrelay", "Email": "integration@smsrelay.example",
                                             "Alias": "smsrly"}], validate=False)[0]  # fmt: skip

    def reset(self) -> None:
        """Forget records, sessions, jobs, counters and faults; keep the schema and the integration user."""
        super().reset()
        with self.lock:
            self._init_state()

    @property
    def api_calls(self) -> int:
        """REST API calls counted against ``DailyApiRequests`` so far."""
        return self.api_used

    def reset_calls(self) -> None:
        """Zero the call counter and its per-endpoint breakdown (the daily usage too)."""
        with self.lock:
            self.api_used = 0
            self.calls.clear()

    def set_api_usage(self, used: int, limit: int | None = None) -> None:
        """Set the org's API usage (and allocation), e.g. to test a bridge's usage ceiling."""
        with self.lock:
            self.api_used = used
            if limit is not None:
                self.api_limit = limit

    def state(self) -> dict[str, Any]:
        return {
            "objects": {name: len(rows) for name, rows in self.tables.items()},
            "api_usage": {"used": self.api_used, "max": self.api_limit},
            "calls": dict(self.calls),
            "jobs": {j.id: j.state for j in self.jobs.values()},
            "sessions": len(self.sessions),
        }

    # ------------------------------------------------------------------ tokens and sessions
    def issue_token(self, username: str | None = None) -> str:
        """An access token for ``username`` (default: the integration user), as the token endpoint gives."""
        with self.lock:
            user = self._user(username or self.username)
            if user is None:
                raise KeyError(f"no active user {username!r} in the org emulator")
            token = f"{self.org_id[:15]}!{secrets.token_urlsafe(48)}"
            self.sessions[token] = _Session(
                token, user["Id"], user["Username"], self.clock.now() + timedelta(seconds=self.session_seconds)
            )
            return token

    def expire_sessions(self) -> int:
        """Invalidate every access token (the next call answers 401 ``INVALID_SESSION_ID``); return how many."""
        with self.lock:
            n = len(self.sessions)
            self.sessions.clear()
            return n

    def _user(self, username: str) -> dict[str, Any] | None:
        for u in self.tables["User"].values():
            if u.get("Username", "").lower() == username.lower() and u.get("IsActive", True):
                return u
        return None

    def _session(self, req: EmuRequest) -> _Session | None:
        auth = req.header("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() not in {"bearer", "oauth"} or not token:
            return None
        s = self.sessions.get(token.strip())
        if s is None or s.expires_at <= self.clock.now():
            return None
        return s

    # ------------------------------------------------------------------ faults
    def inject_error(
        self,
        code: str,
        *,
        status: int | None = None,
        message: str | None = None,
        method: str | None = None,
        path: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` matching requests with Salesforce's error shape.

        ``code``: ``UNABLE_TO_LOCK_ROW`` (400), ``REQUEST_LIMIT_EXCEEDED`` (403),
        ``INVALID_SESSION_ID`` (401), ``SERVER_UNAVAILABLE`` (503), ``UNKNOWN_EXCEPTION``
        (500) or any other code with an explicit ``status``. ``path`` is a regex.
        """
        default_status, default_message = _ERROR_DEFAULTS.get(code, (400, code.replace("_", " ").lower()))
        body = json.dumps([{"message": message or default_message, "errorCode": code}])
        self.inject(
            "status", status=status or default_status, body=body, method=method, path=path, times=times,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip

    def fail_records(
        self,
        code: str = "UNABLE_TO_LOCK_ROW",
        *,
        sobject: str | None = None,
        times: int = 1,
        message: str | None = None,
    ) -> None:
        """Fail the next ``times`` record writes (REST, Collections or Bulk) with a per-record error."""
        with self.lock:
            self.record_faults.append(_RecordFault(code, message, sobject, times))

    def slow(self, seconds: float, *, path: str | None = None, method: str | None = None, times: int = 1) -> None:
        """Delay the next ``times`` matching responses by ``seconds`` of real time."""
        self.inject("delay", seconds=seconds, path=path, method=method, times=times)

    def _take_record_fault(self, obj: str, record_id: str | None) -> RecordError | None:
        for rf in self.record_faults:
            if rf.sobject is None or rf.sobject.lower() == obj.lower():
                rf.times -= 1
                if rf.times <= 0:
                    self.record_faults.remove(rf)
                default = _ERROR_DEFAULTS.get(rf.code, (400, rf.code))[1]
                if rf.code == "UNABLE_TO_LOCK_ROW":
                    default = f"unable to obtain exclusive access to this record or 1 records: {record_id or ''}"
                return RecordError(rf.code, rf.message or default, [])
        return None

    # ------------------------------------------------------------------ storage primitives
    def _obj(self, name: str) -> ObjectSchema:
        try:
            return self.schema.object(name)
        except KeyError:
            raise RequestError(
                404, "NOT_FOUND", f"The requested resource does not exist: sObject type {name}"
            ) from None

    def _key(self, f: FieldSchema, value: Any) -> Any:
        if isinstance(value, str) and not f.case_sensitive and f.type not in {"id", "reference"}:
            return value.casefold()
        if isinstance(value, str) and f.type in {"id", "reference"}:
            return value[:15]
        return value

    def _put(self, obj: ObjectSchema, record_id: str, new: dict[str, Any] | None) -> None:
        """Store (or delete, with ``None``) a record, keeping indexes and roll-up counts, with undo."""
        table = self.tables[obj.name]
        old = table.get(record_id)
        if self._undo is not None:
            self._undo.append((obj.name, record_id, old))
        meta = self._meta[obj.name]
        for f in meta.indexed:
            idx = self._unique[(obj.name, f.name)]
            if old is not None and old.get(f.name) is not None:
                ids = idx.get(self._key(f, old[f.name]), [])
                if record_id in ids:
                    ids.remove(record_id)
                    if not ids:
                        idx.pop(self._key(f, old[f.name]), None)
            if new is not None and new.get(f.name) is not None:
                idx.setdefault(self._key(f, new[f.name]), []).append(record_id)
        for f in meta.master_detail:
            counts = self._children.setdefault((obj.name, f.name), Counter())
            if old is not None and old.get(f.name):
                counts[old[f.name]] -= 1
            if new is not None and new.get(f.name):
                counts[new[f.name]] += 1
        if new is None:
            table.pop(record_id, None)
            self._by15.pop(record_id[:15], None)
        else:
            table[record_id] = new
            self._by15[record_id[:15]] = (obj.name, record_id)

    def _begin(self) -> None:
        self._undo = []

    def _rollback(self) -> None:
        undo, self._undo = self._undo or [], None
        for obj_name, rid, old in reversed(undo):
            self._put(self.schema.object(obj_name), rid, old)

    def _commit(self) -> None:
        self._undo = None

    def lookup(self, ref: str) -> tuple[ObjectSchema, dict[str, Any]] | None:
        """The object and record with Id ``ref`` (15 or 18 characters), if it exists."""
        hit = self._by15.get(ref[:15]) if isinstance(ref, str) else None
        if hit is None:
            return None
        rec = self.tables[hit[0]].get(hit[1])
        return (self.schema.object(hit[0]), rec) if rec is not None else None

    def _fetch(self, obj_name: str, ref: str) -> dict[str, Any] | None:
        hit = self._by15.get(ref[:15])
        if hit is None or hit[0].lower() != obj_name.lower():
            return None
        return self.tables[hit[0]].get(hit[1])

    def _find_by(self, obj: ObjectSchema, f: FieldSchema, value: Any) -> list[str]:
        if f.name == "Id":
            full = to_18(value) if isinstance(value, str) else None
            return [full] if full and full in self.tables[obj.name] else []
        idx = self._unique.get((obj.name, f.name))
        if idx is not None:
            return list(idx.get(self._key(f, value), []))
        return [rid for rid, r in self.tables[obj.name].items() if r.get(f.name) == value]

    # ------------------------------------------------------------------ writes
    def _resolve_relationship(self, obj: ObjectSchema, rel: FieldSchema, raw: Any) -> str:
        # REST API guide, "Insert or Update (Upsert) a Record Using an External ID": a lookup set by the
        # parent's External ID, e.g. {"Message__r": {"Provider_Message_Id__c": "m-1"}}.
        target = self.schema.object(rel.reference_to[0])
        if not isinstance(raw, Mapping):
            raise RequestError(400, "INVALID_FIELD", f"{rel.relationship_name} must be an object naming an External ID")
        keys = [k for k in raw if k != "attributes"]
        if len(keys) != 1 or not target.has(keys[0]) or not target.field(keys[0]).id_lookup:
            raise RequestError(
                400,
                "INVALID_FIELD",
                f"{rel.relationship_name}: give exactly one External ID field of {target.name}, got {keys}",
            )
        ext = target.field(keys[0])
        value = raw[keys[0]]
        ids = self._find_by(target, ext, value)
        if len(ids) != 1:
            what = "not found" if not ids else "matched more than one record"
            raise RecordError(
                "INVALID_FIELD",
                f"Foreign key external ID: {value} {what} for field {ext.name} in entity {target.name}",
                [rel.name],
            )
        return ids[0]

    def _check_fields(self, obj: ObjectSchema, data: Mapping[str, Any]) -> None:
        """Unknown fields fail the whole request, as Salesforce's deserializer does."""
        for key, raw in data.items():
            if key == "attributes":
                continue
            if obj.has(key):
                continue
            rel = obj.relationship(key)
            if rel is not None and isinstance(raw, Mapping):
                continue
            raise RequestError(400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}", [key])

    def _check_json(self, obj: ObjectSchema, data: Mapping[str, Any]) -> None:
        """What Salesforce's JSON deserializer refuses fails the whole request, before any record is saved.

        REST API Developer Guide, "Status Codes and Error Responses": 400 JSON_PARSER_ERROR, e.g.
        "Cannot deserialize instance of double from VALUE_STRING value abc or request may be missing
        a required field at [line:1, column:42]". A number field takes a JSON number or a numeric
        string; a dateTime takes ISO 8601 with a time ("2026-12-05T10:00:00.000Z"); "2026-12-05 10:00"
        and a bare "2026-12-05" are refused, as the issue measured against an org. One such value in a
        200-record Collections call sinks all 200.
        """
        self._check_fields(obj, data)
        for key, raw in data.items():
            if key == "attributes" or raw is None or not obj.has(key):
                continue
            why = _json_refusal(obj.field(key), raw)
            if why:
                # ASSUMPTION: no line and column: the emulator parses the JSON before it reads fields.
                raise RequestError(
                    400,
                    "JSON_PARSER_ERROR",
                    f"Cannot deserialize instance of {why} or request may be missing a required field",
                )

    def _prepare(
        self, obj: ObjectSchema, data: Mapping[str, Any], *, existing: dict[str, Any] | None, skip: str | None = None
    ) -> dict[str, Any]:
        """Coerce and check ``data``; return the changed fields. Raises :class:`RecordError`."""
        changes: dict[str, Any] = {}
        read_only: list[str] = []
        for key, raw in data.items():
            if key == "attributes" or (skip is not None and key.lower() == skip.lower()):
                continue
            if obj.has(key):
                f = obj.field(key)
                if f.name == "Id":
                    continue
                value = _coerce(f, raw)
            else:
                rel = obj.relationship(key)
                assert rel is not None  # _check_fields ran first
                f, value = rel, self._resolve_relationship(obj, rel, raw)
            writable = f.createable if existing is None else f.updateable
            if not writable:
                # ASSUMPTION: rewriting a non-reparentable master-detail with its current value is accepted,
                # so that replaying an upsert is idempotent; any other change to a read-only field fails.
                if existing is not None and f.master_detail and existing.get(f.name) == value:
                    continue
                read_only.append(f.name)
                continue
            if f.type == "reference" and value is not None:
                target_names = {t.lower() for t in f.reference_to}
                hit = self._by15.get(value[:15])
                prefixes = {self.schema.object(t).key_prefix for t in f.reference_to if self.schema.has(t)}
                if value[:3] not in prefixes:
                    raise RecordError(
                        "FIELD_INTEGRITY_EXCEPTION", f"{f.label}: id value of incorrect type: {value}", [f.name]
                    )
                if hit is None or hit[0].lower() not in target_names:
                    raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [f.name])
            changes[f.name] = value
        if read_only:
            raise RecordError(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(read_only)}. Please check the security settings of "
                "this field and verify that it is read/write for your profile or permission set.",
                read_only,
            )
        return changes

    def _apply(
        self,
        obj: ObjectSchema,
        changes: dict[str, Any],
        *,
        existing: dict[str, Any] | None,
        user_id: str,
        check_required: bool = True,
    ) -> tuple[str, bool]:
        """Validate the merged record (required, unique) and store it; return (id, created)."""
        now = self.clock.now()
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        meta = self._meta[obj.name]
        if existing is None:
            record: dict[str, Any] = {**meta.defaults, **changes}
            rid = salesforce_id(obj.key_prefix, next(self._ids))
            record.update(
                {"Id": rid, "IsDeleted": False, "CreatedDate": now, "CreatedById": user_id}
            )  # fmt: skip
            if meta.has_owner and not record.get("OwnerId"):
                record["OwnerId"] = user_id
            if meta.auto_number:
                self._autonumber[obj.name] += 1
                record["Name"] = re.sub(
                    r"\{(0+)\}", lambda m: str(self._autonumber[obj.name]).zfill(len(m.group(1))), meta.auto_number
                )
            created = True
        else:
            record = {**existing, **changes}
            rid = existing["Id"]
            created = False
        record.update({"LastModifiedDate": now, "LastModifiedById": user_id, "SystemModstamp": now})
        if meta.computed_name:
            record["Name"] = " ".join(p for p in (record.get("FirstName"), record.get("LastName")) if p) or None
        missing = [name for name in meta.required if record.get(name) in (None, "")]
        if missing and check_required:
            raise RecordError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing)
        for f in meta.unique:
            value = record.get(f.name)
            if value is None:
                continue
            others = [i for i in self._unique[(obj.name, f.name)].get(self._key(f, value), []) if i != rid]
            if others:
                raise RecordError(
                    "DUPLICATE_VALUE",
                    f"duplicate value found: {f.name} duplicates value on record with id: {others[0]}",
                )
        fault = self._take_record_fault(obj.name, rid if not created else None)
        if fault is not None:
            raise fault
        self._put(obj, rid, record)
        return rid, created

    def _create(self, obj: ObjectSchema, data: Mapping[str, Any], user_id: str) -> str:
        if any(k.lower() == "id" and v not in (None, "") for k, v in data.items()):
            raise RecordError("INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id in an insert call", ["Id"])
        changes = self._prepare(obj, data, existing=None)
        return self._apply(obj, changes, existing=None, user_id=user_id)[0]

    def _update(self, obj: ObjectSchema, record_id: str, data: Mapping[str, Any], user_id: str) -> str:
        full = to_18(record_id)
        if full is None:
            raise RecordError("MALFORMED_ID", f"Record ID: id value of incorrect type: {record_id}", ["Id"])
        existing = self.tables[obj.name].get(full)
        if existing is None:
            # ASSUMPTION: an unknown Id in an update is ENTITY_IS_DELETED when its prefix fits, like a deleted row.
            code = "ENTITY_IS_DELETED" if full[:3] == obj.key_prefix else "MALFORMED_ID"
            raise RecordError(code, "entity is deleted" if code == "ENTITY_IS_DELETED" else "bad id " + record_id, [])
        changes = self._prepare(obj, data, existing=existing)
        return self._apply(obj, changes, existing=existing, user_id=user_id)[0]

    def _ext_field(self, obj: ObjectSchema, name: str) -> FieldSchema:
        if not obj.has(name) or not obj.field(name).id_lookup:
            raise RequestError(
                404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {name}"
            )  # fmt: skip
        return obj.field(name)

    def _upsert(
        self, obj: ObjectSchema, ext: FieldSchema, value: Any, data: Mapping[str, Any], user_id: str
    ) -> tuple[str, bool]:
        if value is None or value == "":
            raise RecordError("MISSING_ARGUMENT", f"{ext.name} not specified", [ext.name])
        key_value = _coerce(ext, value) if ext.name != "Id" else value
        ids = self._find_by(obj, ext, key_value)
        body_value = next((v for k, v in data.items() if k.lower() == ext.name.lower()), None)
        if body_value is not None and _coerce(ext, body_value) != key_value and ext.name != "Id":
            raise RecordError("INVALID_FIELD", f"{ext.name} in the body differs from the External ID given", [ext.name])
        if len(ids) > 1:
            raise RecordError("MULTIPLE_CHOICES", f"More than one record found for {ext.name}: {value}", [ext.name])
        if ids:
            existing = self.tables[obj.name][ids[0]]
            changes = self._prepare(obj, data, existing=existing, skip=ext.name)
            return self._apply(obj, changes, existing=existing, user_id=user_id)
        if ext.name == "Id":
            raise RecordError("NOT_FOUND", f"Provided external ID field value does not exist: {value}", ["Id"])
        changes = self._prepare(obj, data, existing=None, skip=ext.name)
        changes[ext.name] = key_value
        return self._apply(obj, changes, existing=None, user_id=user_id)

    def _delete(self, obj: ObjectSchema | None, record_id: str) -> str:
        full = to_18(record_id)
        hit = self.lookup(full) if full else None
        if hit is None or (obj is not None and hit[0].name != obj.name):
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [])
        rid: str = hit[1]["Id"]
        self._put(hit[0], rid, None)
        return rid

    # ------------------------------------------------------------------ seeding and inspection (tests)
    def insert(self, sobject: str, records: Iterable[Mapping[str, Any]], *, validate: bool = True) -> list[str]:
        """Create records directly (no API call counted); return their Ids. Raises :class:`RecordError`.

        ``validate=False`` skips required-field checks (for fixtures that build odd states).
        """
        with self.lock:
            obj = self.schema.object(sobject)
            ids = []
            for data in records:
                self._check_fields(obj, data)
                changes = self._prepare(obj, data, existing=None)
                user = getattr(self, "user_id", "")
                ids.append(self._apply(obj, changes, existing=None, user_id=user, check_required=validate)[0])
            return ids

    def records(self, sobject: str, where: str | None = None) -> list[dict[str, Any]]:
        """The records of ``sobject`` (every field, Python values), optionally filtered by a SOQL ``WHERE``.

        >>> org.records("SMS_Message__c", "Status__c = 'Sent'")  # doctest: +SKIP
        """
        with self.lock:
            obj = self.schema.object(sobject)
            if where is None:
                return [self._full(obj, r) for r in self.tables[obj.name].values()]
            bound = soql.bind(soql.parse(f"SELECT Id FROM {obj.name} WHERE {where}"), self.schema)
            rows = soql.execute(bound, self.schema, self._candidates(bound), self._fetch, self.clock.now(), self._value)
            return [self._full(obj, r) for r in rows]

    def _full(self, obj: ObjectSchema, record: Mapping[str, Any]) -> dict[str, Any]:
        """Every field of the record (``None`` where unset), roll-ups computed; Python values, not JSON."""
        return {f.name: self._value(obj, f, record) for f in obj.fields.values()}

    def get(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        """A copy of one record, or ``None``."""
        with self.lock:
            obj = self.schema.object(sobject)
            rec = self.tables[obj.name].get(to_18(record_id) or "")
            return self._full(obj, rec) if rec is not None else None

    def count(self, sobject: str, where: str | None = None) -> int:
        """How many records of ``sobject`` match ``where``."""
        return len(self.records(sobject, where))

    # ------------------------------------------------------------------ dispatch: auth, counting, headers
    def dispatch(self, req: EmuRequest) -> EmuResponse:
        if not req.path.startswith("/services/data/v"):
            return super().dispatch(req)
        # What fell due on the clock (a Bulk job finishing) happens before the answer, so a
        # client that sleeps on a shared manual clock sees it however fast it polls.
        self.tick()
        if len(req.path) + 1 + len(req.query) > MAX_URI_BYTES:
            # REST API Developer Guide, "Limits": a URI is at most 16,384 bytes; a longer one is
            # refused with HTTP 414 before it reaches the API (a long SOQL IN list in a GET).
            # ASSUMPTION: the body is the API's error shape; the front end's is not documented.
            self.requests.append(req)
            return RequestError(414, "URI_TOO_LONG", "URI Too Long").response()
        with self.lock:
            session = self._session(req)
            if session is not None:
                if self.api_used >= self.api_limit:
                    self.requests.append(req)
                    resp = RequestError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.").response()
                    return self._with_limit_header(resp)
                self.api_used += 1
                self.calls[self._route_name(req)] += 1
        resp = super().dispatch(req)
        with self.lock:
            # A long-running org (emulate-org, 100,000-event benchmarks) keeps only recent requests.
            if len(self.requests) > self.max_recorded_requests * 1.1:
                del self.requests[: len(self.requests) - self.max_recorded_requests]
        return self._with_limit_header(resp)

    def _with_limit_header(self, resp: EmuResponse) -> EmuResponse:
        # research/salesforce.md §2.8: every REST response carries Sforce-Limit-Info: api-usage=N/M.
        resp.headers["Sforce-Limit-Info"] = f"api-usage={self.api_used}/{self.api_limit}"
        return resp

    def _route_name(self, req: EmuRequest) -> str:
        for method, pattern, attr in self._routes:
            if method == req.method and pattern.fullmatch(req.path):
                return attr
        return "other"

    def handle(self, req: EmuRequest) -> EmuResponse:
        with self.lock:
            if req.path.startswith("/services/data/v") and self._session(req) is None:
                return RequestError(401, "INVALID_SESSION_ID", "Session expired or invalid").response()
            for method, pattern, attr in self._routes:
                m = pattern.fullmatch(req.path)
                if m and method == req.method:
                    try:
                        resp: EmuResponse = getattr(self, attr)(req, **m.groupdict())
                        return resp
                    except RequestError as exc:
                        return exc.response()
                    except Exception:  # an emulator bug answers Salesforce's 500, never hangs the client
                        log.exception("org emulator: handler %s failed", attr)
                        return RequestError(
                            500, "UNKNOWN_EXCEPTION", _ERROR_DEFAULTS["UNKNOWN_EXCEPTION"][1]
                        ).response()
            if any(p.fullmatch(req.path) for _, p, _ in self._routes):
                return self.method_not_allowed(req)
            return self.not_found(req)

    def not_found(self, req: EmuRequest) -> EmuResponse:
        return RequestError(404, "NOT_FOUND", "The requested resource does not exist").response()

    def method_not_allowed(self, req: EmuRequest) -> EmuResponse:
        return RequestError(
            405, "METHOD_NOT_ALLOWED", f"HTTP Method '{req.method}' not allowed. Allowed are GET,PATCH,POST,DELETE"
        ).response()

    def _user_of(self, req: EmuRequest) -> str:
        s = self._session(req)
        return s.user_id if s else self.user_id

    def _body(self, req: EmuRequest) -> Any:
        try:
            return req.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(400, "JSON_PARSER_ERROR", f"The request body is not valid JSON: {exc}") from None

    # ------------------------------------------------------------------ OAuth
    @route("POST", r"/services/oauth2/token")
    def token(self, req: EmuRequest) -> EmuResponse:
        form = req.form()
        grant = form.get("grant_type", "")
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self._jwt_bearer(req, form.get("assertion", ""))
        if grant == "client_credentials":
            return self._client_credentials(req, form)
        # Username-password and refresh flows are not offered: research/salesforce.md §2.1.
        return self._oauth_error("unsupported_grant_type", "grant type not supported")

    def _oauth_error(self, error: str, description: str, status: int = 400) -> EmuResponse:
        return json_response({"error": error, "error_description": description}, status)

    def _token_response(self, username: str) -> EmuResponse:
        token = self.issue_token(username)
        user = self._user(username)
        issued = str(int(self.clock.now().timestamp() * 1000))
        signature = base64.b64encode(
            hmac.new(self.consumer_secret.encode(), (self.url + issued).encode(), hashlib.sha256).digest()
        ).decode()
        return json_response(
            {
                "access_token": token,
                "scope": "api",
                "instance_url": self.url,
                "id": f"{self.url}/id/{self.org_id}/{user['Id'] if user else ''}",
                "token_type": "Bearer",
                "issued_at": issued,
                "signature": signature,
            }
        )

    def _jwt_bearer(self, req: EmuRequest, assertion: str) -> EmuResponse:
        # OAuth 2.0 JWT Bearer Flow for Server-to-Server Integration (Salesforce Help).
        import jwt

        if self.certificate_pem is None:
            return self._oauth_error("invalid_grant", "no certificate is configured for JWT bearer in this org")
        from cryptography import x509

        try:
            public_key = x509.load_pem_x509_certificate(self.certificate_pem).public_key()
            claims = jwt.decode(
                assertion,
                key=public_key,  # type: ignore[arg-type]
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_aud": False, "verify_iss": False, "verify_signature": True},
            )
        except jwt.InvalidTokenError:
            return self._oauth_error("invalid_grant", "invalid assertion")
        if claims.get("iss") != self.consumer_key:
            return self._oauth_error("invalid_client_id", "client identifier invalid")
        audiences = {
            "https://login.salesforce.com",
            "https://test.salesforce.com",
            f"https://{self.my_domain}",
            self.url,
        }
        aud = claims.get("aud")
        if (aud if isinstance(aud, str) else None) not in audiences:
            return self._oauth_error("invalid_grant", "audience is invalid")
        # simple-salesforce sends exp as a numeric string; Salesforce accepts it.
        try:
            exp = float(claims.get("exp"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return self._oauth_error("invalid_grant", "expiration is missing or not a number")
        # The signer stamps exp from its real clock, so it is checked against real time, not the emulator's
        # (possibly manual) clock, which only drives record timestamps and session expiry.
        now = datetime.now(UTC).timestamp()
        if exp <= now:
            return self._oauth_error("invalid_grant", "expired authorization code")
        # The flow's docs: exp must be "within 3 minutes" of now. ASSUMPTION: 5 s of leeway for clock skew.
        if exp > now + 180 + 5:
            return self._oauth_error("invalid_grant", "expiration is more than 3 minutes away")
        sub = claims.get("sub")
        if not isinstance(sub, str) or self._user(sub) is None:
            return self._oauth_error("invalid_grant", "user hasn't approved this consumer")
        return self._token_response(sub)

    def _client_credentials(self, req: EmuRequest, form: Mapping[str, str]) -> EmuResponse:
        # OAuth 2.0 Client Credentials Flow: only on My Domain, never on login/test.salesforce.com.
        host = (req.header("Host") or "").split(":")[0].lower()
        if host in {"login.salesforce.com", "test.salesforce.com"}:
            return self._oauth_error("unsupported_grant_type", "request not supported on this domain")
        key, secret = form.get("client_id"), form.get("client_secret")
        auth = req.header("Authorization") or ""
        if auth.lower().startswith("basic "):
            try:
                key, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return self._oauth_error("invalid_client", "invalid client credentials")
        ok_key = hmac.compare_digest((key or "").encode(), self.consumer_key.encode())
        ok_secret = hmac.compare_digest((secret or "").encode(), self.consumer_secret.encode())
        if not (ok_key and ok_secret):
            return self._oauth_error("invalid_client", "invalid client credentials")
        return self._token_response(self.username)

    # ------------------------------------------------------------------ discovery and limits
    @route("GET", r"/services/data/?")
    def versions(self, req: EmuRequest) -> EmuResponse:
        return json_response(
            [{"label": f"v{v}", "url": f"/services/data/v{v}", "version": v} for v in ("58.0", "59.0", "60.0", "62.0")]
        )

    @route("GET", _V + r"/?")
    def resources(self, req: EmuRequest, version: str) -> EmuResponse:
        base = f"/services/data/v{version}"
        names = ["sobjects", "query", "queryAll", "composite", "limits", "jobs"]
        return json_response({n: f"{base}/{n}" for n in names})

    @route("GET", _V + r"/limits/?")
    def limits(self, req: EmuRequest, version: str) -> EmuResponse:
        # REST API guide, "Limits": Max and Remaining per allocation.
        remaining = max(0, self.api_limit - self.api_used)
        ingest = sum(1 for _ in self.jobs.values())
        return json_response(
            {
                "DailyApiRequests": {"Max": self.api_limit, "Remaining": remaining},
                "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000 - ingest},
                "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
                "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
                "DataStorageMB": {"Max": 5, "Remaining": 5},
            }
        )

    # ------------------------------------------------------------------ describe
    def _field_describe(self, obj: ObjectSchema, f: FieldSchema) -> dict[str, Any]:
        soap = {"string": "xsd:string", "double": "xsd:double", "boolean": "xsd:boolean", "datetime": "xsd:dateTime",
                "date": "xsd:date", "id": "tns:ID", "reference": "tns:ID"}  # fmt: skip
        return {
            "name": f.name,
            "label": f.label,
            "type": f.type,
            "soapType": soap.get(f.type, "xsd:string"),
            "length": f.length if f.type not in {"double", "boolean", "datetime", "date"} else 0,
            "precision": f.precision,
            "scale": f.scale,
            "nillable": not f.required and f.type != "boolean" and f.name != "Id",
            "createable": f.createable,
            "updateable": f.updateable,
            "calculated": f.calculated,
            "custom": f.name.endswith("__c"),
            "externalId": f.external_id,
            "unique": f.unique,
            "caseSensitive": f.case_sensitive,
            "idLookup": f.id_lookup,
            "autoNumber": f.auto_number is not None,
            "defaultedOnCreate": f.default is not None or f.name in _SYSTEM_AUDIT or f.name in {"Id", "OwnerId"},
            "defaultValue": f.default if isinstance(f.default, str | bool | float) else None,
            "referenceTo": list(f.reference_to),
            "relationshipName": f.relationship_name,
            "cascadeDelete": f.master_detail,
            "restrictedPicklist": f.restricted_picklist,
            "picklistValues": [
                {"value": v, "label": v, "active": True, "defaultValue": v == f.default, "validFor": None}
                for v in f.picklist_values
            ],
            "filterable": not (f.type == "textarea" and f.length > 255),
            "sortable": not (f.type == "textarea" and f.length > 255),
        }

    def _object_summary(self, obj: ObjectSchema, version: str) -> dict[str, Any]:
        base = f"/services/data/v{version}/sobjects/{obj.name}"
        return {
            "name": obj.name,
            "label": obj.label,
            "labelPlural": obj.label + "s",
            "keyPrefix": obj.key_prefix,
            "custom": obj.custom,
            "createable": True,
            "updateable": True,
            "deletable": True,
            "queryable": True,
            "urls": {"sobject": base, "describe": base + "/describe", "rowTemplate": base + "/{ID}"},
        }

    @route("GET", _V + r"/sobjects/?")
    def describe_global(self, req: EmuRequest, version: str) -> EmuResponse:
        return json_response(
            {
                "encoding": "UTF-8",
                "maxBatchSize": COLLECTION_MAX,
                "sobjects": [self._object_summary(o, version) for o in self.schema],
            }
        )

    @route("GET", _V + r"/sobjects/(?P<sobject>\w+)/describe/?")
    def describe(self, req: EmuRequest, version: str, sobject: str) -> EmuResponse:
        obj = self._obj(sobject)
        children = []
        for other in self.schema:
            for f in other.fields.values():
                if f.reference_to and f.reference_to[0].lower() == obj.name.lower() and f.relationship_name:
                    children.append(
                        {"childSObject": other.name, "field": f.name, "cascadeDelete": f.master_detail,
                         "relationshipName": None}
                    )  # fmt: skip
        return json_response(
            {
                **self._object_summary(obj, version),
                "fields": [self._field_describe(obj, f) for f in obj.fields.values()],
                "childRelationships": children,
            }
        )

    @route("GET", _V + r"/sobjects/(?P<sobject>\w+)/?")
    def sobject_info(self, req: EmuRequest, version: str, sobject: str) -> EmuResponse:
        obj = self._obj(sobject)
        recent = [self._render(obj, r, version, ["Id", "Name"] if obj.has("Name") else ["Id"])
                  for r in list(self.tables[obj.name].values())[-5:]]  # fmt: skip
        return json_response({"objectDescribe": self._object_summary(obj, version), "recentItems": recent})

    # ------------------------------------------------------------------ rendering
    def _summary_value(self, obj: ObjectSchema, f: FieldSchema, record: Mapping[str, Any]) -> Any:
        assert f.summary is not None
        op, child_name, fk, summarized = f.summary
        if not self.schema.has(child_name):
            return None
        child = self.schema.object(child_name)
        fk_name = child.field(fk).name if child.has(fk) else fk
        if op == "count":
            return float(self._children.get((child.name, fk_name), Counter()).get(record["Id"], 0))
        values: list[Any] = [
            r.get(summarized)
            for r in self.tables[child.name].values()
            if r.get(fk_name) == record["Id"] and summarized and r.get(summarized) is not None
        ]
        if op == "sum":
            return float(sum(values))
        if not values:
            return None
        return min(values) if op == "min" else max(values)

    def _value(self, obj: ObjectSchema, f: FieldSchema, record: Mapping[str, Any]) -> Any:
        if f.summary is not None:
            return self._summary_value(obj, f, record)
        if f.formula is not None and f.name not in record:
            return self._formula_value(obj, f, record)
        return record.get(f.name)

    def _formula_value(self, obj: ObjectSchema, f: FieldSchema, record: Mapping[str, Any]) -> Any:
        """A formula that is a field or a relationship path (``Contact__r.MobilePhone``), the common
        cross-object formula; ASSUMPTION: any other expression is not evaluated (null), so a test
        that needs one seeds the value."""
        assert f.formula is not None
        path = f.formula.strip()
        if not re.fullmatch(r"[A-Za-z]\w*(\.[A-Za-z]\w*)*", path):
            return None
        try:
            return soql.resolve(self.schema, obj, record, path.split("."), self._fetch, self._value)
        except KeyError:
            return None

    def _attributes(self, obj: ObjectSchema, record: Mapping[str, Any], version: str) -> dict[str, str]:
        return {"type": obj.name, "url": f"/services/data/v{version}/sobjects/{obj.name}/{record['Id']}"}

    def _render(
        self, obj: ObjectSchema, record: Mapping[str, Any], version: str, fields: Sequence[str] | None = None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"attributes": self._attributes(obj, record, version)}
        names = fields if fields is not None else [f.name for f in obj.fields.values()]
        for name in names:
            f = obj.field(name)
            out[f.name] = _json_value(self._value(obj, f, record))
        return out

    def _plan(self, obj: ObjectSchema, paths: Sequence[tuple[str, ...]]) -> _Plan:
        """How to render rows for these SELECT paths, worked out once per page rather than per row."""
        items: list[tuple[str, FieldSchema, _Plan | None]] = []
        nested: dict[str, list[tuple[str, ...]]] = {}
        for path in paths:
            if len(path) == 1:
                items.append((path[0], obj.field(path[0]), None))
            elif path[0].lower() not in nested:
                nested[path[0].lower()] = [path[1:]]
                rel = obj.relationship(path[0])
                assert rel is not None  # bound by soql.bind
                items.append((rel.relationship_name or path[0], rel, None))
            else:
                nested[path[0].lower()].append(path[1:])
        resolved: list[tuple[str, FieldSchema, _Plan | None]] = []
        for key, f, _ in items:
            if f.relationship_name == key and key.lower() in nested:
                target = self.schema.object(f.reference_to[0])
                resolved.append((key, f, self._plan(target, nested[key.lower()])))
            else:
                resolved.append((f.name, f, None))
        return _Plan(obj, resolved)

    def _render_plan(self, plan: _Plan, record: Mapping[str, Any], version: str) -> dict[str, Any]:
        obj = plan.obj
        out: dict[str, Any] = {
            "attributes": {"type": obj.name, "url": f"/services/data/v{version}/sobjects/{obj.name}/{record['Id']}"}
        }
        for key, f, sub in plan.items:
            if sub is None:
                value = self._value(obj, f, record) if f.calculated else record.get(f.name)
                out[key] = _json_value(value)
                continue
            ref = record.get(f.name)
            child = self._fetch(sub.obj.name, ref) if ref else None
            out[key] = None if child is None else self._render_plan(sub, child, version)
        return out

    # ------------------------------------------------------------------ query
    def _candidates(self, bound: soql.Bound) -> Iterable[Mapping[str, Any]]:
        """Rows that may match: an index hit for ``Field = 'x'``/``IN`` on Id or a unique field, else all."""
        table = self.tables[bound.obj.name]
        where = bound.query.where
        conds = where.items if isinstance(where, soql.And) else (where,) if where is not None else ()
        for c in conds:
            if not isinstance(c, soql.Comparison) or c.op not in {"=", "IN"} or len(c.field.path) != 1:
                continue
            f = bound.fields[c.field]
            values = c.value if isinstance(c.value, tuple) else (c.value,)
            if not all(isinstance(v, str) for v in values):
                continue
            if f.name == "Id" or (bound.obj.name, f.name) in self._unique:
                ids: list[str] = []
                for v in values:
                    ids.extend(self._find_by(bound.obj, f, v))
                seen = dict.fromkeys(ids)
                # Keep creation order, as a scan would.
                return [table[i] for i in sorted(seen, key=lambda i: i[6:15]) if i in table]
        return table.values()

    def _run_query(self, req: EmuRequest, version: str) -> EmuResponse:
        q = req.params.get("q")
        if not q:
            raise RequestError(400, "MALFORMED_QUERY", "A query string has to be specified")
        try:
            bound = soql.bind(soql.parse(q), self.schema)
        except soql.SoqlError as exc:
            raise RequestError(400, exc.code, exc.message) from None
        rows = soql.execute(bound, self.schema, self._candidates(bound), self._fetch, self.clock.now(), self._value)
        if bound.query.count:
            return json_response({"totalSize": len(rows), "done": True, "records": []})
        size = QUERY_PAGE
        options = req.header("Sforce-Query-Options") or ""
        m = re.search(r"batchSize\s*=\s*(\d+)", options)
        if m:
            # REST API guide, "Query Options Header": batchSize 200..2,000, a hint Salesforce may round.
            size = min(QUERY_PAGE, max(200, int(m.group(1))))
        long_text = [
            f
            for ref, f in bound.fields.items()
            if ref in bound.query.fields and _is_long_text(f) and f.name.endswith("__c")
        ]
        if len(long_text) >= 2:
            # REST API guide, "Query Options Header": "If the SOQL statement selects two or more custom
            # fields of type long text, the batch size can't be more than 200 records."
            size = min(size, LONG_TEXT_PAGE)
        cursor = _Cursor(bound, [r["Id"] for r in rows], size)
        return self._page(cursor, 0, version)

    def _page(self, cursor: _Cursor, start: int, version: str) -> EmuResponse:
        ids = cursor.ids[start : start + cursor.size]
        obj = cursor.bound.obj
        table = self.tables[obj.name]
        paths = [ref.path for ref in cursor.bound.query.fields]
        # ASSUMPTION: a page shows the rows' values at the time it is fetched; a row deleted since is skipped.
        plan = self._plan(obj, paths)
        records = [self._render_plan(plan, table[i], version) for i in ids if i in table]
        body: dict[str, Any] = {"totalSize": len(cursor.ids), "done": start + cursor.size >= len(cursor.ids),
                                "records": records}  # fmt: skip
        if not body["done"]:
            locator = next((k for k, c in self.cursors.items() if c is cursor), None)
            if locator is None:
                locator = f"{QUERY_LOCATOR_PREFIX}{secrets.token_hex(6)[:12].upper()}"
                self.cursors[locator] = cursor
                # ASSUMPTION: like an org's open-cursor limit, the oldest cursors are dropped beyond 50.
                while len(self.cursors) > 50:
                    self.cursors.popitem(last=False)
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{start + cursor.size}"
        return json_response(body)

    @route("GET", _V + r"/(?:query|queryAll)/?")
    def query(self, req: EmuRequest, version: str) -> EmuResponse:
        return self._run_query(req, version)

    @route("GET", _V + r"/(?:query|queryAll)/(?P<locator>01g\w+)-(?P<start>\d+)")
    def query_more(self, req: EmuRequest, version: str, locator: str, start: str) -> EmuResponse:
        cursor = self.cursors.get(locator)
        if cursor is None:
            raise RequestError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        self.cursors.move_to_end(locator)
        resp = self._page(cursor, int(start), version)
        if int(start) + cursor.size >= len(cursor.ids):
            self.cursors.pop(locator, None)
        return resp

    # ------------------------------------------------------------------ sObject rows
    @route("POST", _V + r"/sobjects/(?P<sobject>\w+)/?")
    def create(self, req: EmuRequest, version: str, sobject: str) -> EmuResponse:
        obj = self._obj(sobject)
        data = self._body(req)
        if not isinstance(data, dict):
            raise RequestError(400, "JSON_PARSER_ERROR", "the body must be a JSON object")
        self._check_json(obj, data)
        try:
            rid = self._create(obj, data, self._user_of(req))
        except RecordError as exc:
            raise RequestError(400, exc.code, exc.message, exc.fields) from None
        return json_response({"id": rid, "success": True, "errors": []}, 201)

    @route("GET", _V + r"/sobjects/(?P<sobject>\w+)/(?P<record_id>[A-Za-z0-9]{15}|[A-Za-z0-9]{18})/?")
    def retrieve(self, req: EmuRequest, version: str, sobject: str, record_id: str) -> EmuResponse:
        obj = self._obj(sobject)
        rec = self.tables[obj.name].get(to_18(record_id) or "")
        if rec is None:
            raise RequestError(404, "NOT_FOUND", "The requested resource does not exist")
        return json_response(self._render(obj, rec, version, self._fields_param(obj, req)))

    def _fields_param(self, obj: ObjectSchema, req: EmuRequest) -> list[str] | None:
        raw = req.params.get("fields")
        if not raw:
            return None
        names = [n.strip() for n in raw.split(",") if n.strip()]
        for n in names:
            if not obj.has(n):
                raise RequestError(400, "INVALID_FIELD", f"No such column '{n}' on entity '{obj.name}'.")
        return names

    @route("PATCH", _V + r"/sobjects/(?P<sobject>\w+)/(?P<record_id>[A-Za-z0-9]{15}|[A-Za-z0-9]{18})/?")
    def update(self, req: EmuRequest, version: str, sobject: str, record_id: str) -> EmuResponse:
        obj = self._obj(sobject)
        if to_18(record_id) not in self.tables[obj.name]:
            raise RequestError(404, "NOT_FOUND", "The requested resource does not exist")
        data = self._body(req)
        if not isinstance(data, dict):
            raise RequestError(400, "JSON_PARSER_ERROR", "the body must be a JSON object")
        self._check_json(obj, data)
        try:
            self._update(obj, record_id, data, self._user_of(req))
        except RecordError as exc:
            raise RequestError(400, exc.code, exc.message, exc.fields) from None
        return EmuResponse(204, b"")

    @route("DELETE", _V + r"/sobjects/(?P<sobject>\w+)/(?P<record_id>[A-Za-z0-9]{15}|[A-Za-z0-9]{18})/?")
    def delete(self, req: EmuRequest, version: str, sobject: str, record_id: str) -> EmuResponse:
        obj = self._obj(sobject)
        try:
            self._delete(obj, record_id)
        except RecordError:
            raise RequestError(404, "NOT_FOUND", "The requested resource does not exist") from None
        return EmuResponse(204, b"")

    @route("GET", _V + r"/sobjects/(?P<sobject>\w+)/(?P<ext>\w+)/(?P<value>[^/]+)/?")
    def retrieve_by_external_id(self, req: EmuRequest, version: str, sobject: str, ext: str, value: str) -> EmuResponse:
        from urllib.parse import unquote

        obj = self._obj(sobject)
        f = self._ext_field(obj, ext)
        ids = self._find_by(obj, f, _coerce(f, unquote(value)) if f.name != "Id" else unquote(value))
        if not ids:
            raise RequestError(404, "NOT_FOUND", "The requested resource does not exist")
        if len(ids) > 1:
            return json_response([f"/services/data/v{version}/sobjects/{obj.name}/{i}" for i in ids], 300)
        return json_response(self._render(obj, self.tables[obj.name][ids[0]], version, self._fields_param(obj, req)))

    @route("PATCH", _V + r"/sobjects/(?P<sobject>\w+)/(?P<ext>\w+)/(?P<value>[^/]+)/?")
    def upsert(self, req: EmuRequest, version: str, sobject: str, ext: str, value: str) -> EmuResponse:
        from urllib.parse import unquote

        obj = self._obj(sobject)
        f = self._ext_field(obj, ext)
        data = self._body(req)
        if not isinstance(data, dict):
            raise RequestError(400, "JSON_PARSER_ERROR", "the body must be a JSON object")
        self._check_json(obj, data)
        raw = unquote(value)
        try:
            ids = self._find_by(obj, f, _coerce(f, raw) if f.name != "Id" else raw)
            if len(ids) > 1:
                return json_response([f"/services/data/v{version}/sobjects/{obj.name}/{i}" for i in ids], 300)
            rid, created = self._upsert(obj, f, raw, data, self._user_of(req))
        except RecordError as exc:
            raise RequestError(400, exc.code, exc.message, exc.fields) from None
        # REST API guide, upsert: 201 with the new id when created, 200 with the body when updated (API 46.0+).
        return json_response({"id": rid, "success": True, "errors": [], "created": created}, 201 if created else 200)

    # ------------------------------------------------------------------ sObject Collections
    def _collection(self, req: EmuRequest) -> tuple[list[Any], bool]:
        body = self._body(req)
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise RequestError(400, "JSON_PARSER_ERROR", "the body must be an object with a records list")
        records = body["records"]
        if len(records) > COLLECTION_MAX:
            raise RequestError(
                400, "EXCEEDED_ID_LIMIT", f"record limit reached. cannot submit more than {COLLECTION_MAX} records "
                "into this call", []
            )  # fmt: skip
        all_or_none = bool(body.get("allOrNone", False))
        return records, all_or_none

    def _record_type(self, rec: Any, default: ObjectSchema | None) -> ObjectSchema:
        if not isinstance(rec, dict):
            raise RequestError(400, "JSON_PARSER_ERROR", "each record must be a JSON object")
        attrs = rec.get("attributes")
        name = attrs.get("type") if isinstance(attrs, dict) else None
        if name is None:
            if default is not None:
                return default
            raise RequestError(400, "INVALID_FIELD", "Each record must have attributes with a type", [])
        obj = self._obj(name)
        if default is not None and obj.name != default.name:
            raise RequestError(400, "INVALID_FIELD", f"Record type {name} differs from {default.name} in the URL", [])
        return obj

    def _run_collection(
        self,
        items: list[tuple[ObjectSchema, Any]],
        all_or_none: bool,
        op: Callable[[ObjectSchema, Any], dict[str, Any]],
    ) -> EmuResponse:
        results: list[dict[str, Any]] = []
        self._begin()
        failed = False
        try:
            for obj, rec in items:
                try:
                    results.append({**op(obj, rec), "success": True, "errors": []})  # op may add "_new"
                except RecordError as exc:
                    failed = True
                    rid = to_18(rec.get("Id", "")) if isinstance(rec, dict) and rec.get("Id") else None
                    results.append({"id": rid, "success": False, "errors": [exc.as_dict()]})
            if failed and all_or_none:
                self._rollback()
                # REST API guide, sObject Collections: with allOrNone, nothing is saved, and the records that
                # were valid report ALL_OR_NONE_OPERATION_ROLLED_BACK.
                rolled = {
                    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "message": "Record rolled back because not all records were valid and the request was using "
                    "AllOrNone header",
                    "fields": [],
                }
                for r in results:
                    if r["success"]:
                        r.update({"success": False, "errors": [rolled]})
                        if r.get("_new") or r.get("created"):
                            r["id"] = None  # the record no longer exists
                        r.pop("created", None)
        finally:
            if self._undo is not None:
                self._commit()
        for r in results:
            r.pop("_new", None)
        return json_response(results)

    @route("POST", _V + r"/composite/sobjects/?")
    def collection_create(self, req: EmuRequest, version: str) -> EmuResponse:
        records, all_or_none = self._collection(req)
        items = [(self._record_type(r, None), r) for r in records]
        for obj, rec in items:
            self._check_json(obj, rec)
        user = self._user_of(req)
        return self._run_collection(
            items, all_or_none, lambda obj, rec: {"id": self._create(obj, rec, user), "_new": True}
        )

    @route("PATCH", _V + r"/composite/sobjects/?")
    def collection_update(self, req: EmuRequest, version: str) -> EmuResponse:
        records, all_or_none = self._collection(req)
        items = [(self._record_type(r, None), r) for r in records]
        for obj, rec in items:
            self._check_json(obj, rec)
        user = self._user_of(req)

        def op(obj: ObjectSchema, rec: dict[str, Any]) -> dict[str, Any]:
            if not rec.get("Id"):
                raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call", [])
            return {"id": self._update(obj, rec["Id"], rec, user)}

        return self._run_collection(items, all_or_none, op)

    @route("PATCH", _V + r"/composite/sobjects/(?P<sobject>\w+)/(?P<ext>\w+)/?")
    def collection_upsert(self, req: EmuRequest, version: str, sobject: str, ext: str) -> EmuResponse:
        obj = self._obj(sobject)
        f = self._ext_field(obj, ext)
        records, all_or_none = self._collection(req)
        items = []
        for r in records:
            rec_obj = (
                self._record_type(r, None) if isinstance(r, dict) and "attributes" in r else self._record_type(r, obj)
            )
            if rec_obj.name != obj.name:
                raise RequestError(400, "INVALID_FIELD", f"Record type {rec_obj.name} differs from {obj.name}", [])
            self._check_json(obj, r)
            items.append((obj, r))
        # REST API guide, Collections upsert: two records with the same External ID both fail.
        keys = Counter(
            self._key(f, str(v))
            for _, r in items
            if (v := next((x for k, x in r.items() if k.lower() == f.name.lower()), None)) is not None
        )
        user = self._user_of(req)

        def op(o: ObjectSchema, rec: dict[str, Any]) -> dict[str, Any]:
            value = next((x for k, x in rec.items() if k.lower() == f.name.lower()), None)
            if value is None:
                raise RecordError("MISSING_ARGUMENT", f"{f.name} not specified", [f.name])
            if keys[self._key(f, str(value))] > 1:
                raise RecordError("DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {value}", [f.name])
            rid, created = self._upsert(o, f, value, rec, user)
            return {"id": rid, "created": created}

        return self._run_collection(items, all_or_none, op)

    @route("GET", _V + r"/composite/sobjects/(?P<sobject>\w+)/?")
    def collection_retrieve(self, req: EmuRequest, version: str, sobject: str) -> EmuResponse:
        obj = self._obj(sobject)
        ids = [i for i in req.params.get("ids", "").split(",") if i]
        fields = self._fields_param(obj, req)
        if not ids or fields is None:
            raise RequestError(400, "MISSING_ARGUMENT", "ids and fields are required")
        out = []
        for i in ids[:2000]:
            rec = self.tables[obj.name].get(to_18(i) or "")
            out.append(self._render(obj, rec, version, fields) if rec else None)
        return json_response(out)

    @route("DELETE", _V + r"/composite/sobjects/?")
    def collection_delete(self, req: EmuRequest, version: str) -> EmuResponse:
        ids = [i for i in req.params.get("ids", "").split(",") if i]
        if len(ids) > COLLECTION_MAX:
            raise RequestError(400, "EXCEEDED_ID_LIMIT", f"cannot delete more than {COLLECTION_MAX} records", [])
        all_or_none = req.params.get("allOrNone", "false").lower() == "true"
        items: list[tuple[ObjectSchema, Any]] = [(self.schema.object("User"), {"Id": i}) for i in ids]
        return self._run_collection(items, all_or_none, lambda _o, rec: {"id": self._delete(None, rec["Id"])})

    # ------------------------------------------------------------------ Bulk API 2.0 ingest
    def _job_info(self, job: _Job) -> dict[str, Any]:
        info: dict[str, Any] = {
            "id": job.id,
            "operation": job.operation,
            "object": job.object,
            "createdById": job.created_by,
            "createdDate": _format_datetime(job.created),
            "systemModstamp": _format_datetime(job.modified or job.created),
            "state": job.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(job.api_version),
            "jobType": "V2Ingest",
            "lineEnding": job.line_ending,
            "columnDelimiter": next(k for k, v in _DELIMITERS.items() if v == job.delimiter),
            "contentUrl": f"services/data/v{job.api_version}/jobs/ingest/{job.id}/batches",
            "numberRecordsProcessed": len(job.successes) + len(job.failures),
            "numberRecordsFailed": len(job.failures),
            "retries": 0,
            "totalProcessingTime": job.processing_ms,
            "apiActiveProcessingTime": job.processing_ms,
            "apexProcessingTime": 0,
        }
        if job.external_id:
            info["externalIdFieldName"] = job.external_id
        if job.error_message:
            info["errorMessage"] = job.error_message
        return info

    def _job(self, job_id: str) -> _Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise RequestError(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    @route("POST", _V + r"/jobs/ingest/?")
    def bulk_create(self, req: EmuRequest, version: str) -> EmuResponse:
        spec = self._body(req)
        if not isinstance(spec, dict):
            raise RequestError(400, "JSON_PARSER_ERROR", "the body must be a JSON object")
        operation = spec.get("operation")
        if operation not in _BULK_OPERATIONS:
            raise RequestError(400, "INVALIDJOB", f"InvalidJob : operation must be one of {sorted(_BULK_OPERATIONS)}")
        obj = self._obj(str(spec.get("object", "")))
        ext = spec.get("externalIdFieldName")
        if operation == "upsert":
            if not ext:
                raise RequestError(400, "INVALIDJOB", "InvalidJob : External ID was blank for upsert")
            ext = self._ext_field(obj, ext).name
        if spec.get("contentType", "CSV") != "CSV":
            raise RequestError(400, "INVALIDJOB", "InvalidJob : contentType must be CSV")
        delimiter = _DELIMITERS.get(spec.get("columnDelimiter", "COMMA"))
        line_ending = spec.get("lineEnding", "LF")
        if delimiter is None or line_ending not in {"LF", "CRLF"}:
            raise RequestError(400, "INVALIDJOB", "InvalidJob : unsupported columnDelimiter or lineEnding")
        job = _Job(
            id=salesforce_id(BULK_JOB_PREFIX, next(self._ids)),
            object=obj.name,
            operation=operation,
            external_id=ext,
            line_ending=line_ending,
            delimiter=delimiter,
            created_by=self._user_of(req),
            created=self.clock.now(),
            api_version=version,
        )
        self.jobs[job.id] = job
        return json_response(self._job_info(job))

    @route("GET", _V + r"/jobs/ingest/?")
    def bulk_list(self, req: EmuRequest, version: str) -> EmuResponse:
        return json_response({"done": True, "records": [self._job_info(j) for j in self.jobs.values()],
                              "nextRecordsUrl": None})  # fmt: skip

    @route("PUT", _V + r"/jobs/ingest/(?P<job_id>\w+)/batches/?")
    def bulk_upload(self, req: EmuRequest, version: str, job_id: str) -> EmuResponse:
        job = self._job(job_id)
        if job.state != "Open":
            raise RequestError(409, "INVALIDJOBSTATE", f"Job {job.id} is not open for uploads (state {job.state})")
        if not (req.header("Content-Type") or "").lower().startswith("text/csv"):
            raise RequestError(400, "INVALIDCONTENT", "Content-Type must be text/csv")
        job.chunks.append(req.body)
        return EmuResponse(201, b"")

    @route("PATCH", _V + r"/jobs/ingest/(?P<job_id>\w+)/?")
    def bulk_state(self, req: EmuRequest, version: str, job_id: str) -> EmuResponse:
        job = self._job(job_id)
        body = self._body(req)
        state = body.get("state") if isinstance(body, dict) else None
        if state == "UploadComplete":
            if job.state != "Open":
                raise RequestError(409, "INVALIDJOBSTATE", f"Job {job.id} is not open (state {job.state})")
            job.state = "UploadComplete"
            job.modified = self.clock.now()
            info = self._job_info(job)
            job.state = "InProgress"
            if self.bulk_processing_seconds <= 0:
                # "0 completes it at once": done before the close answers, so the first poll sees
                # JobComplete whatever the machine's load, and call counts are deterministic. A
                # positive value gives Salesforce's asynchronous processing on the emulator's clock.
                self._process_job(job)
            else:
                self.after(self.bulk_processing_seconds, lambda: self._process_job(job))
            return json_response(info)
        if state == "Aborted":
            if job.state in {"JobComplete", "Failed", "Aborted"}:
                raise RequestError(409, "INVALIDJOBSTATE", f"Job {job.id} has already finished (state {job.state})")
            job.state = "Aborted"
            job.modified = self.clock.now()
            return json_response(self._job_info(job))
        raise RequestError(400, "INVALIDJOBSTATE", f"state must be UploadComplete or Aborted, got {state!r}")

    @route("GET", _V + r"/jobs/ingest/(?P<job_id>\w+)/?")
    def bulk_info(self, req: EmuRequest, version: str, job_id: str) -> EmuResponse:
        return json_response(self._job_info(self._job(job_id)))

    @route("DELETE", _V + r"/jobs/ingest/(?P<job_id>\w+)/?")
    def bulk_delete(self, req: EmuRequest, version: str, job_id: str) -> EmuResponse:
        job = self._job(job_id)
        if job.state not in {"UploadComplete", "JobComplete", "Aborted", "Failed"}:
            raise RequestError(400, "INVALIDJOBSTATE", "Only a finished or aborted job can be deleted")
        del self.jobs[job.id]
        return EmuResponse(204, b"")

    def _csv_response(self, header: list[str], rows: Iterable[list[str]], job: _Job) -> EmuResponse:
        buf = io.StringIO()
        w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n" if job.line_ending == "LF" else "\r\n")
        w.writerow(header)
        w.writerows(rows)
        return EmuResponse(200, buf.getvalue().encode("utf-8"), {"Content-Type": "text/csv"})

    @route("GET", _V + r"/jobs/ingest/(?P<job_id>\w+)/successfulResults/?")
    def bulk_successes(self, req: EmuRequest, version: str, job_id: str) -> EmuResponse:
        job = self._job(job_id)
        rows = ([rid, "true" if created else "false", *row] for rid, created, row in job.successes)
        return self._csv_response(["sf__Id", "sf__Created", *job.columns], rows, job)

    @route("GET", _V + r"/jobs/ingest/(?P<job_id>\w+)/failedResults/?")
    def bulk_failures(self, req: EmuRequest, version: str, job_id: str) -> EmuResponse:
        job = self._job(job_id)
        rows = ([rid, err, *row] for rid, err, row in job.failures)
        return self._csv_response(["sf__Id", "sf__Error", *job.columns], rows, job)

    @route("GET", _V + r"/jobs/ingest/(?P<job_id>\w+)/unprocessedrecords/?")
    def bulk_unprocessed(self, req: EmuRequest, version: str, job_id: str) -> EmuResponse:
        job = self._job(job_id)
        return self._csv_response(job.columns, job.unprocessed, job)

    def _process_job(self, job: _Job) -> None:
        """Run an uploaded ingest job row by row (Bulk API 2.0 has no all-or-none), taking the lock per chunk."""
        with self.lock:
            if job.state == "Aborted":
                return
            started = self.clock.now()
            obj = self.schema.object(job.object)
            try:
                rows = self._job_rows(job)
            except RequestError as exc:
                job.state = "Failed"
                job.error_message = exc.message
                job.modified = self.clock.now()
                return
            job.duplicates = self._duplicate_keys(job, obj, rows)
        for start in range(0, len(rows), 1000):
            with self.lock:
                if job.state == "Aborted":
                    job.unprocessed.extend(raw for raw, _ in rows[start:])
                    return
                self._process_rows(job, obj, rows[start : start + 1000])
        with self.lock:
            job.processing_ms = int((self.clock.now() - started).total_seconds() * 1000)
            job.state = "JobComplete"
            job.modified = self.clock.now()

    def _duplicate_keys(self, job: _Job, obj: ObjectSchema, rows: list[tuple[list[str], dict[str, Any]]]) -> set[Any]:
        """External ID values an upsert job names more than once: each such row fails, none wins.

        Bulk API 2.0 Developer Guide, "Prepare Data to Upsert": a job upserts by one External ID
        field, and Salesforce refuses rows whose value repeats within the job (measured against an
        org, issue 15) rather than letting the last row win; the rows fail with the code the
        Collections upsert gives for the same case.
        """
        if job.operation != "upsert" or job.external_id is None:
            return set()
        f = obj.field(job.external_id)
        counts = Counter(
            self._key(f, str(v))
            for _, data in rows
            if (v := next((x for k, x in data.items() if k.lower() == f.name.lower()), None)) not in (None, "")
        )
        return {k for k, n in counts.items() if n > 1}

    def _process_rows(self, job: _Job, obj: ObjectSchema, rows: list[tuple[list[str], dict[str, Any]]]) -> None:
        for raw_row, data in rows:
            try:
                if job.operation == "insert":
                    rid, created = self._create(obj, data, job.created_by), True
                elif job.operation == "update":
                    if not data.get("Id"):
                        raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
                    rid, created = self._update(obj, data["Id"], data, job.created_by), False
                elif job.operation == "upsert":
                    assert job.external_id is not None
                    f = obj.field(job.external_id)
                    value = next((v for k, v in data.items() if k.lower() == f.name.lower()), None)
                    if value not in (None, "") and self._key(f, str(value)) in job.duplicates:
                        why = f"Duplicate external id specified: {value}"
                        raise RecordError("DUPLICATE_EXTERNAL_ID", why, [f.name])
                    rid, created = self._upsert(obj, f, value, data, job.created_by)
                else:
                    rid, created = self._delete(obj, data.get("Id", "")), False
                job.successes.append((rid, created, raw_row))
            except RecordError as exc:
                # ASSUMPTION: sf__Error is "CODE:message:fields --", the shape Bulk API result files show.
                err = f"{exc.code}:{exc.message}:{','.join(exc.fields)} --"
                rid_raw = data.get("Id") if isinstance(data.get("Id"), str) else ""
                job.failures.append((rid_raw or "", err, raw_row))
            except RequestError as exc:
                job.failures.append(("", f"{exc.code}:{exc.message}: --", raw_row))

    def _job_rows(self, job: _Job) -> list[tuple[list[str], dict[str, Any]]]:
        obj = self.schema.object(job.object)
        text = b"".join(job.chunks).decode("utf-8-sig")
        if not text.strip():
            raise RequestError(400, "INVALIDBATCH", "InvalidBatch : no data was uploaded")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=job.delimiter)
        header = next(reader)
        job.columns = header
        names: list[tuple[str, str | None]] = []  # (field or relationship, ext field for relationship columns)
        for col in header:
            base, _, sub = col.partition(".")
            if sub:
                rel = obj.relationship(base)
                if rel is None:
                    raise RequestError(400, "INVALIDBATCH", f"InvalidBatch : Field name not found : {col}")
                names.append((rel.relationship_name or base, sub))
            elif obj.has(col):
                names.append((obj.field(col).name, None))
            else:
                raise RequestError(400, "INVALIDBATCH", f"InvalidBatch : Field name not found : {col}")
        if job.operation in {"delete", "hardDelete"} and [n for n, _ in names] != ["Id"]:
            raise RequestError(400, "INVALIDBATCH", "InvalidBatch : The 'delete' batch must contain only ids")
        out = []
        for row in reader:
            if not row:
                continue
            data: dict[str, Any] = {}
            for (name, ext_field), value in zip(names, row, strict=False):
                if value == "":
                    continue  # Bulk API 2.0: an empty value leaves the field unchanged
                parsed: Any = None if value == "#N/A" else value  # "#N/A" sets the field to null
                if ext_field is not None:
                    data[name] = {ext_field: parsed}
                else:
                    data[name] = parsed
            out.append((row, data))
        return out

    # ------------------------------------------------------------------ control API additions
    def _control(self, req: EmuRequest) -> EmuResponse:
        op = req.path.removeprefix("/_emulator/").rstrip("/")
        try:
            if req.method == "POST" and op.startswith("records/"):
                body = req.json()
                ids = self.insert(op.split("/", 1)[1], body if isinstance(body, list) else [body])
                return json_response({"ids": ids}, 201)
            if req.method == "GET" and op.startswith("records/"):
                where = req.params.get("where")
                rows = self.records(op.split("/", 1)[1], where)
                return json_response([{k: _json_value(v) for k, v in r.items()} for r in rows])
            if (req.method, op) == ("POST", "token"):
                return json_response({"access_token": self.issue_token(), "instance_url": self.url})
            if (req.method, op) == ("POST", "sessions/expire"):
                return json_response({"expired": self.expire_sessions()})
            if (req.method, op) == ("POST", "api-usage"):
                spec = req.json()
                self.set_api_usage(int(spec["used"]), spec.get("max"))
                return json_response({"used": self.api_used, "max": self.api_limit})
            if (req.method, op) == ("POST", "errors"):
                spec = req.json()
                self.inject_error(spec.pop("code"), **spec)
                return json_response({"ok": True}, 201)
            if (req.method, op) == ("POST", "record-faults"):
                spec = req.json()
                self.fail_records(spec.pop("code", "UNABLE_TO_LOCK_ROW"), **spec)
                return json_response({"ok": True}, 201)
        except RecordError as exc:
            return json_response([{"message": exc.message, "errorCode": exc.code, "fields": exc.fields}], 400)
        except (KeyError, ValueError, TypeError) as exc:
            return json_response({"error": str(exc)}, 400)
        return super()._control(req)


# --------------------------------------------------------------------------- standalone


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    metadata_dir: str | pathlib.Path | None = None,
    state_dir: str | pathlib.Path | None = None,
    daily_api_limit: int = 15_000,
    seed: int = 0,
    out: Any = None,
) -> OrgEmulator:
    """Start an HTTPS org emulator with fresh TLS and JWT material; print how to connect; return it running.

    ``state_dir`` receives ``ca.pem``, ``server.key`` and ``server.crt`` (default: a new
    temporary directory). ``seed`` creates that many Contacts and queued
    ``SMS_Message__c`` records for a first ``sync --dry-run``.
    """
    out = out or sys.stdout
    directory = pathlib.Path(state_dir) if state_dir else pathlib.Path(tempfile.mkdtemp(prefix="sf-org-emulator-"))
    tls = make_tls(directory)
    creds = make_jwt_credentials(directory)
    org = OrgEmulator(
        host=host,
        port=port,
        ssl_context=tls.ssl_context,
        metadata_dir=metadata_dir,
        certificate_pem=creds.certificate_pem,
        daily_api_limit=daily_api_limit,
    )
    org.start()
    if seed:
        seed_demo(org, seed)
    token = org.issue_token()
    print(f"Salesforce org emulator listening on {org.url}", file=out)
    print(f"  CA bundle:        {tls.ca_path}   (export REQUESTS_CA_BUNDLE={tls.ca_path})", file=out)
    print(f"  instance_url:     {org.url}", file=out)
    print(f"  access_token:     {token}", file=out)
    print(f"  JWT consumer key: {org.consumer_key}", file=out)
    print(f"  JWT username:     {org.username}", file=out)
    print(f"  JWT private key:  {creds.private_key_path}", file=out)
    print(f"  client secret:    {org.consumer_secret}", file=out)
    print(f"  objects:          {', '.join(o.name for o in org.schema)}", file=out)
    if org.ignored_metadata:
        print(f"  ignored (UI):     {_describe_ignored(org.ignored_metadata)}", file=out)
    out.flush()
    return org


def seed_demo(org: OrgEmulator, n: int) -> None:
    """``n`` Contacts with mobiles and one queued outbound ``SMS_Message__c`` each (if the object exists)."""
    # Last four digits from 1000 up: plain deliveries under the sandbox's magic-number table.
    phones = [f"+6149157{1000 + i % 9000:04d}" for i in range(1, n + 1)]
    contacts = org.insert(
        "Contact", [{"FirstName": f"Demo{i}", "LastName": "Contact", "MobilePhone": p} for i, p in enumerate(phones, 1)]
    )
    if org.schema.has("SMS_Message__c"):
        obj = org.schema.object("SMS_Message__c")
        rows = []
        for i, cid in enumerate(contacts, start=1):
            row: dict[str, Any] = {"Contact__c": cid} if obj.has("Contact__c") else {}
            if obj.has("To__c"):
                row["To__c"] = phones[i - 1]
            if obj.has("Status__c"):
                row["Status__c"] = "Queued"
            if obj.has("Direction__c"):
                f = obj.field("Direction__c")
                row["Direction__c"] = "Outbound" if "Outbound" in f.picklist_values or not f.picklist_values else None
            rows.append({k: v for k, v in row.items() if v is not None})
        org.insert("SMS_Message__c", rows)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m smsrelay_salesforce.emulator [--port N] [--metadata-dir D] [--state-dir D] [--seed N]``."""
    p = argparse.ArgumentParser(prog="smsrelay-salesforce emulate-org", description="Run the Salesforce org emulator.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=int(os.environ.get("SF_EMULATOR_PORT", "0")))
    p.add_argument("--metadata-dir", default=None, help="DX metadata to load (default: the shipped metadata)")
    p.add_argument("--state-dir", default=None, help="where to write ca.pem, server.key and server.crt")
    p.add_argument("--api-limit", type=int, default=15_000, help="DailyApiRequests allocation")
    p.add_argument("--seed", type=int, default=0, help="create N demo Contacts with queued messages")
    args = p.parse_args(argv)
    org = serve(
        host=args.host,
        port=args.port,
        metadata_dir=args.metadata_dir,
        state_dir=args.state_dir,
        daily_api_limit=args.api_limit,
        seed=args.seed,
    )
    org.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
