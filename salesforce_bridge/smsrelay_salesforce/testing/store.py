"""The org emulator's records: the object model, storage, validated writes, rendering,
sessions, faults and the request dispatch that every API shares."""

from __future__ import annotations

import itertools
import json
import logging
import pathlib
import re
import secrets
import ssl
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from smsrelay import Clock
from smsrelay.emulators.base import Emulator, EmuRequest, EmuResponse, json_response
from smsrelay_salesforce.schema import (
    UI_METADATA,
    FieldSchema,
    ObjectSchema,
    OrgSchema,
    default_metadata_dir,
    ignored_metadata,
    load_schema,
)
from smsrelay_salesforce.testing import soql
from smsrelay_salesforce.testing.values import (
    _ERROR_DEFAULTS,
    RecordError,
    RequestError,
    _coerce,
    _json_refusal,
    _json_value,
    salesforce_id,
    to_18,
)

log = logging.getLogger("smsrelay.salesforce.emulator")

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


MAX_URI_BYTES = 16_384


def _describe_ignored(found: Mapping[str, list[str]]) -> str:
    """``2 Lightning apps (A, B); 3 tabs (...)``: what the emulator loaded but does not enforce."""
    return "; ".join(f"{len(names)} {UI_METADATA[kind]} ({', '.join(names)})" for kind, names in found.items())


class OrgStore(Emulator):
    """An HTTPS Salesforce org on loopback. See the module docstring.

    ``metadata_dir``: DX source-format metadata to load (default: the bridge's
    shipped metadata). ``certificate_pem``: the connected app's certificate for
    JWT bearer. ``daily_api_limit``: the ``DailyApiRequests`` allocation.
    ``session_seconds``: access-token lifetime on the emulator's clock.
    ``bulk_processing_seconds``: emulator time an ingest job takes after
    ``UploadComplete`` (0: processed beside the close's answer, done before any later request is
    answered). ``latency`` seconds (± uniform ``jitter``,
    reproducible with ``seed``) pass on ``clock`` before each answer, token endpoint included,
    as the provider emulators do (:class:`smsrelay.emulators.base.Emulator`).
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
        latency: float = 0.0,
        jitter: float = 0.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            clock=clock, host=host, port=port, ssl_context=ssl_context, latency=latency, jitter=jitter, seed=seed
        )
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
        self._processing: list[threading.Thread] = []  # Bulk jobs being processed beside a close's answer
        self._processing_lock = threading.Lock()
        self.org_id = salesforce_id("00D", 0x5A17)
        self._init_state()

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
        # Wall seconds spent handling API requests (latency excluded): what the emulator itself
        # adds to each round trip, so a benchmark can tell it from the client's time.
        self.serve_seconds = 0.0
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
        self._settle()
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
            self.serve_seconds = 0.0

    def set_api_usage(self, used: int, limit: int | None = None) -> None:
        """Set the org's API usage (and allocation), e.g. to test a bridge's usage ceiling."""
        with self.lock:
            self.api_used = used
            if limit is not None:
                self.api_limit = limit

    def _settle(self) -> None:
        """Wait for the Bulk jobs processed beside a close's answer (never under ``self.lock``)."""
        while True:
            with self._processing_lock:
                if not self._processing:
                    return
                thread = self._processing.pop()
            thread.join()

    def state(self) -> dict[str, Any]:
        self._settle()
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
            value = new.get(f.name) if new is not None else None
            if value is not None and old is not None and old.get(f.name) == value:
                ids = idx.get(self._key(f, value))
                if ids and ids[-1] == record_id:
                    continue  # unchanged, and already where removing and adding it back would leave it
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
        fields = obj.fields
        for key, raw in data.items():
            if key == "attributes" or key.lower() in fields:
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
        fields = obj.fields
        for key, raw in data.items():
            if key == "attributes" or raw is None:
                continue
            f = fields.get(key.lower())
            if f is None:
                continue
            why = _json_refusal(f, raw)
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
        fields = obj.fields
        for key, raw in data.items():
            if key == "attributes" or (skip is not None and key.lower() == skip.lower()):
                continue
            known = fields.get(key.lower())
            if known is not None:
                f = known
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
        self._settle()
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
        self._settle()
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
        # client that sleeps on a shared manual clock sees it however fast it polls; so does a
        # job processed beside its close's answer.
        self._settle()
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
        # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm:
        # every REST response carries Sforce-Limit-Info: api-usage=N/M.
        resp.headers["Sforce-Limit-Info"] = f"api-usage={self.api_used}/{self.api_limit}"
        return resp

    def _route_name(self, req: EmuRequest) -> str:
        for method, pattern, attr in self._routes:
            if method == req.method and pattern.fullmatch(req.path):
                return attr
        return "other"

    def handle(self, req: EmuRequest) -> EmuResponse:
        started = time.perf_counter()
        try:
            return self._handle(req)
        finally:
            with self.lock:
                self.serve_seconds += time.perf_counter() - started

    def _handle(self, req: EmuRequest) -> EmuResponse:
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
